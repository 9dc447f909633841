/*
 * sse.c - a running stage's log, live, as Server-Sent Events.
 *
 * Each connection polls storage on its own timer (SW_SSE_POLL_MS; the
 * engine flushes logs at least that often) with sw_store_log_read() from
 * the offset it has sent, converts the new bytes to HTML (page-html.h, the
 * ANSI state carried across pieces) and sends them as one event whose id is
 * the offset after it. A reconnecting EventSource sends that id back as
 * Last-Event-ID and the stream resumes exactly there. When the stage is
 * final and its log read to the end, an `end` event carries the status and
 * the reply ends.
 *
 * Bounded: at most SW_SSE_MAX_STREAMS connections; at most SSE_READ_MAX
 * bytes read per poll; nothing is read while more than SSE_OUT_MAX bytes
 * wait unsent for a slow client.
 *
 * libevent: when the client goes away mid-reply, the connection's close
 * callback runs after evhttp detached the unfinished request from it
 * (req->evcon == NULL); such a request is ours to free, which
 * evhttp_send_reply_end() does. When evhttp_free() tears the connection
 * down instead (shutdown), the request is still attached and evhttp frees
 * it.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/page-html-int.h"
#include "daemon/page-int.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "storage/store.h"

#define SSE_READ_MAX (64 * 1024)       /* per read */
#define SSE_READS_PER_POLL 4           /* then the next poll goes on */
#define SSE_OUT_MAX (1024 * 1024)      /* unsent bytes before we stop reading */
#define SSE_PING_MS 15000              /* comment line to keep proxies open */
#define SSE_CONN_TIMEOUT_S 300         /* instead of the server's 30 s */
#define SSE_RETRY_MS 2000              /* client reconnect delay */

struct sse {
	struct sw_daemon *d;
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	struct event *timer;
	int64_t run_id, stage_id;
	int64_t offset;                /* next log byte to send */
	int64_t last_write_ms;         /* monotonic */
	struct sw_ansi ansi;
};

static int active;

int sw_sse_active(void)
{
	return active;
}

static void sse_free(struct sse *s)
{
	if (s->timer)
		event_free(s->timer);
	active--;
	free(s);
}

/* The client went away, or the server is being freed. */
static void on_close(struct evhttp_connection *evcon, void *arg)
{
	struct sse *s = arg;
	log_debug("sse.closed", "run=%lld stage_id=%lld offset=%lld", (long long)s->run_id,
		  (long long)s->stage_id, (long long)s->offset);
	if (!evhttp_request_get_connection(s->req))
		evhttp_send_reply_end(s->req);     /* detached: frees it */
	sse_free(s);
}

/* End the reply normally; `status` (may be NULL) goes out as an end event. */
static void finish(struct sse *s, const char *status)
{
	if (status) {
		struct evbuffer *b = evbuffer_new();
		evbuffer_add_printf(b, "id: %lld\nevent: end\ndata: %s\n\n", (long long)s->offset,
				    status);
		evhttp_send_reply_chunk(s->req, b);
		evbuffer_free(b);
	}
	evhttp_connection_set_closecb(s->evcon, NULL, NULL);
	evhttp_connection_set_timeout(s->evcon, 30);
	evhttp_send_reply_end(s->req);
	sse_free(s);
}

/* One event: `html` may hold newlines, each becomes a data: line. */
static void send_event(struct sse *s, const struct sw_buf *html)
{
	struct evbuffer *b = evbuffer_new();
	const char *p = html->ptr, *end = html->ptr + html->len;
	evbuffer_add_printf(b, "id: %lld\n", (long long)s->offset);
	while (p <= end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		evbuffer_add(b, "data: ", 6);
		evbuffer_add(b, p, n);
		evbuffer_add(b, "\n", 1);
		if (!nl)
			break;
		p = nl + 1;
	}
	evbuffer_add(b, "\n", 1);
	evhttp_send_reply_chunk(s->req, b);
	evbuffer_free(b);
	s->last_write_ms = sw_mono_ms();
}

static size_t unsent(struct sse *s)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(s->evcon);
	return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static void poll_log(evutil_socket_t fd, short what, void *arg)
{
	struct sse *s = arg;
	struct sw_store_stage st = { 0 };
	struct sw_buf raw = SW_BUF_INIT, html = SW_BUF_INIT;
	int at_end = 0, rc;

	if (s->d->stopping) {
		/* no end event: the browser reconnects to the next slipwayd */
		finish(s, NULL);
		return;
	}
	if (unsent(s) > SSE_OUT_MAX)
		return;        /* a slow reader: let it drain first */
	/* status first, then the log: a stage seen final has all its log stored */
	if ((rc = sw_store_stage_get(s->d->store, s->stage_id, &st)) < 0) {
		log_warn("sse.stage", "run=%lld stage_id=%lld err=%s", (long long)s->run_id,
			 (long long)s->stage_id, sw_q(sw_error_last()));
		sw_store_stage_release(&st);
		finish(s, "error");
		return;
	}
	for (int i = 0; i < SSE_READS_PER_POLL; i++) {
		int64_t next = s->offset;
		sw_buf_reset(&raw);
		if (sw_store_log_read(s->d->store, s->stage_id, s->offset, SSE_READ_MAX, &raw,
				      &next) < 0) {
			log_warn("sse.read", "run=%lld stage_id=%lld err=%s", (long long)s->run_id,
				 (long long)s->stage_id, sw_q(sw_error_last()));
			break;
		}
		if (raw.len) {
			sw_buf_reset(&html);
			sw_ansi_feed(&s->ansi, raw.ptr, raw.len, &html);
			s->offset = next;
			if (html.len)
				send_event(s, &html);
		}
		if (raw.len < SSE_READ_MAX) {
			at_end = 1;
			break;
		}
	}
	if (at_end && sw_store_status_is_final(st.status)) {
		sw_buf_reset(&html);
		sw_ansi_finish(&s->ansi, &html);
		if (html.len)
			send_event(s, &html);
		finish(s, sw_store_status_str(st.status));
	} else if (sw_mono_ms() - s->last_write_ms >= SSE_PING_MS) {
		struct evbuffer *b = evbuffer_new();
		evbuffer_add(b, ": ping\n\n", 8);
		evhttp_send_reply_chunk(s->req, b);
		evbuffer_free(b);
		s->last_write_ms = sw_mono_ms();
	}
	sw_store_stage_release(&st);
	sw_buf_release(&raw);
	sw_buf_release(&html);
}

static int64_t parse_offset(const char *v)
{
	char *end;
	long long n;
	if (!v || !*v)
		return 0;
	n = strtoll(v, &end, 10);
	return *end || n < 0 ? 0 : (int64_t)n;
}

void sw_sse_log(struct sw_daemon *d, struct evhttp_request *req, int64_t run_id,
		const char *stage)
{
	struct sw_store_stage_list stages = { 0 };
	struct evkeyvalq q;
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	const char *last = evhttp_find_header(evhttp_request_get_input_headers(req),
					      "Last-Event-ID");
	int64_t stage_id = 0, offset;
	struct sse *s;
	struct timeval tv = { 0, SW_SSE_POLL_MS * 1000 };

	if (sw_store_stages_list(d->store, run_id, &stages) < 0) {
		sw_reply_error(req, 500, "stages of run %lld: %s", (long long)run_id,
			       sw_error_last());
		return;
	}
	for (size_t i = 0; i < stages.n; i++)
		if (!strcmp(stages.v[i].name, stage))
			stage_id = stages.v[i].id;
	sw_store_stage_list_release(&stages);
	if (!stage_id) {
		sw_reply_error(req, 404, "run %lld has no stage %s", (long long)run_id, stage);
		return;
	}
	if (active >= SW_SSE_MAX_STREAMS) {
		evhttp_add_header(hdr, "Retry-After", "5");
		sw_reply_error(req, 503, "too many live-log connections (%d)", active);
		return;
	}

	memset(&q, 0, sizeof(q));
	TAILQ_INIT(&q);
	offset = 0;
	if (query && evhttp_parse_query_str(query, &q) == 0)
		offset = parse_offset(evhttp_find_header(&q, "offset"));
	evhttp_clear_headers(&q);
	if (last)
		offset = parse_offset(last);   /* a reconnect resumes where it stopped */

	s = sw_calloc(1, sizeof(*s));
	s->d = d;
	s->req = req;
	s->evcon = evhttp_request_get_connection(req);
	s->run_id = run_id;
	s->stage_id = stage_id;
	s->offset = offset;
	s->last_write_ms = sw_mono_ms();
	sw_ansi_init(&s->ansi);
	active++;

	evhttp_add_header(hdr, "Content-Type", "text/event-stream; charset=utf-8");
	evhttp_add_header(hdr, "Cache-Control", "no-cache");
	evhttp_add_header(hdr, "X-Accel-Buffering", "no");
	evhttp_connection_set_timeout(s->evcon, SSE_CONN_TIMEOUT_S);
	evhttp_connection_set_closecb(s->evcon, on_close, s);
	evhttp_send_reply_start(req, 200, "OK");
	{
		struct evbuffer *b = evbuffer_new();
		evbuffer_add_printf(b, "retry: %d\n\n", SSE_RETRY_MS);
		evhttp_send_reply_chunk(req, b);
		evbuffer_free(b);
	}
	s->timer = event_new(d->base, -1, EV_PERSIST, poll_log, s);
	event_add(s->timer, &tv);
	log_debug("sse.open", "run=%lld stage=%s offset=%lld", (long long)run_id, stage,
		  (long long)offset);
	poll_log(-1, 0, s);    /* what is stored already goes out at once */
}
