/*
 * conn.c - limits on what one client may hold (see httpd.h for what and
 * why). evhttp in libevent 2.1 has no hook between the socket and its
 * parser, no whole-request deadline (its timeout restarts on every byte)
 * and no error callback (its errors are HTML pages), so each connection's
 * bufferevent is a filter over the socket (or TLS) bufferevent: the input
 * side scans the bytes before evhttp sees them and holds back the byte
 * that crosses a limit; the answer is written under the filter, the
 * connection half-closed once it is sent, and evhttp told of an EOF, the
 * path it takes for a client that went away (so a handler holding a
 * request is never left with a freed one).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/http_struct.h>   /* the request's HTTP version */
#include <event2/listener.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "httpd/httpd-int.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"

/* --- the scanner ---------------------------------------------------------- */

enum { S_IDLE, S_LINE, S_HEADER, S_BODY, S_CHUNK_SIZE, S_CHUNK_DATA, S_CHUNK_END, S_TRAILER };

void sw_scan_init(struct sw_scan *s, int64_t max_header, int64_t max_uri, int64_t max_body)
{
	memset(s, 0, sizeof(*s));
	s->max_header = max_header;
	s->max_uri = max_uri;
	s->max_body = max_body;
	s->content_length = -1;
}

static void line_add(struct sw_scan *s, unsigned char ch)
{
	if (s->line_len < sizeof(s->line) - 1)
		s->line[s->line_len] = (char)ch;
	s->line_len++;
}

/* The current line, NUL-terminated and without its \r (truncated when long). */
static const char *line_end(struct sw_scan *s)
{
	size_t n = s->line_len < sizeof(s->line) - 1 ? s->line_len : sizeof(s->line) - 1;
	if (n && s->line[n - 1] == '\r')
		n--;
	s->line[n] = 0;
	return s->line;
}

/* "Name: value" when the name is `name`: the value, else NULL. */
static const char *header_value(const char *line, const char *name)
{
	size_t n = strlen(name);
	if (strncasecmp(line, name, n) || line[n] != ':')
		return NULL;
	line += n + 1;
	while (*line == ' ' || *line == '\t')
		line++;
	return line;
}

/* A header line has ended: note the framing it sets. 0 or 400. */
static int header_done(struct sw_scan *s)
{
	const char *l = line_end(s), *v;
	if ((v = header_value(l, "Content-Length"))) {
		char *end;
		if (s->line_len >= sizeof(s->line) - 1 || *v < '0' || *v > '9')
			return 400;
		errno = 0;
		long long cl = strtoll(v, &end, 10);
		while (*end == ' ' || *end == '\t')
			end++;
		if (errno || *end || (s->content_length >= 0 && s->content_length != cl))
			return 400;
		s->content_length = cl;
	} else if ((v = header_value(l, "Transfer-Encoding"))) {
		if (strcasestr(v, "chunked"))
			s->chunked = 1;
	}
	return 0;
}

/* The end of the headers: where the body starts, or the request's end. */
static int headers_done(struct sw_scan *s)
{
	if (s->chunked) {
		s->state = S_CHUNK_SIZE;
		return 0;
	}
	if (s->content_length > s->max_body)
		return 413;
	if (s->content_length > 0) {
		s->left = s->content_length;
		s->state = S_BODY;
		return 0;
	}
	return 1;
}

/* A chunk-size line has ended ("1a;ext=x"). 0, 400 or 413. */
static int chunk_size_done(struct sw_scan *s)
{
	const char *l = line_end(s);
	int64_t size = 0;
	int digits = 0;
	if (s->line_len >= sizeof(s->line) - 1)
		return 400;
	for (; *l && *l != ';' && *l != ' ' && *l != '\t'; l++, digits++) {
		int d = *l >= '0' && *l <= '9' ? *l - '0' : *l >= 'a' && *l <= 'f' ? *l - 'a' + 10 :
			*l >= 'A' && *l <= 'F' ? *l - 'A' + 10 : -1;
		if (d < 0 || size > (INT64_MAX >> 4))
			return 400;
		size = size * 16 + d;
	}
	if (!digits)
		return 400;
	if (size == 0) {
		s->state = S_TRAILER;
		return 0;
	}
	s->body += size;
	if (s->body > s->max_body)
		return 413;
	s->left = size;
	s->state = S_CHUNK_DATA;
	return 0;
}

int sw_scan_feed(struct sw_scan *s, const unsigned char *p, size_t n, size_t *used)
{
	size_t i = 0;
	int rc = 0;
	while (i < n) {
		unsigned char ch = p[i];
		switch (s->state) {
		case S_IDLE:
			if (ch == '\r' || ch == '\n') {   /* empty lines before a request */
				i++;
				continue;
			}
			sw_scan_init(s, s->max_header, s->max_uri, s->max_body);
			s->in_request = 1;
			s->state = S_LINE;
			continue;
		case S_LINE:
			if (ch == ' ')
				s->spaces++;
			else if (ch != '\n' && s->spaces == 1 && ++s->uri_bytes > s->max_uri) {
				rc = 414;
				goto out;
			}
			if (++s->header_bytes > s->max_header) {
				rc = 431;
				goto out;
			}
			if (ch == '\n') {
				s->state = S_HEADER;
				s->line_len = 0;
			}
			i++;
			continue;
		case S_HEADER:
		case S_TRAILER:
			if (++s->header_bytes > s->max_header) {
				rc = 431;
				goto out;
			}
			if (ch != '\n') {
				line_add(s, ch);
				i++;
				continue;
			}
			if (s->line_len == 0 || (s->line_len == 1 && s->line[0] == '\r')) {
				rc = s->state == S_TRAILER ? 1 : headers_done(s);
			} else if (s->state == S_HEADER) {
				rc = header_done(s);
			}
			s->line_len = 0;
			if (rc)
				goto out;
			i++;
			continue;
		case S_BODY:
		case S_CHUNK_DATA: {
			size_t take = n - i < (uint64_t)s->left ? n - i : (size_t)s->left;
			i += take;
			s->left -= (int64_t)take;
			if (s->state == S_CHUNK_DATA) {
				if (!s->left)
					s->state = S_CHUNK_END;
			} else {
				s->body += (int64_t)take;
				if (!s->left) {
					rc = 1;
					i--;   /* the request ends at the last byte taken */
					goto out;
				}
			}
			continue;
		}
		case S_CHUNK_END:   /* the CRLF after a chunk's data */
			if (ch == '\n') {
				s->state = S_CHUNK_SIZE;
				s->line_len = 0;
			} else if (ch != '\r') {
				rc = 400;
				goto out;
			}
			i++;
			continue;
		case S_CHUNK_SIZE:
			if (ch != '\n') {
				line_add(s, ch);
				i++;
				continue;
			}
			rc = chunk_size_done(s);
			s->line_len = 0;
			if (rc)
				goto out;
			i++;
			continue;
		}
	}
out:
	if (rc == 1) {
		i++;   /* through the request's last byte */
		s->state = S_IDLE;
		s->in_request = 0;
	}
	*used = i;
	return rc;
}

/* --- the connections ------------------------------------------------------ */

/* Descriptors kept for storage, workers, the Docker socket, git, clients. */
#define FD_RESERVE 128
#define DEFAULT_MAX_CONNECTIONS 1024
/* After accept() failed: how long to stop accepting. */
#define ACCEPT_PAUSE_MS 250
/* Accepting without an error this long ends an episode of accept errors. */
#define EPISODE_QUIET_MS 2000
/* An error answer: how long it may take to leave, then how long the client
 * may take to close before we do (closing with unread input would reset
 * the connection and could destroy the answer on its way). */
#define FLUSH_WAIT_MS 5000
#define FLUSH_POLL_MS 20
#define LINGER_MS 2000
/* Connections lingering at once, outside the cap: beyond these (a burst
 * of deadlines) the answer is sent and the connection closed at once. */
#define LINGER_MAX 64
/* What evhttp may write into the socket's buffer ahead of the kernel; the
 * rest waits in the filter, where a streaming handler (SSE) sees it. */
#define OUT_HIGH (256 * 1024)

enum phase { P_DEADLINE, P_REFUSE, P_FLUSH, P_LINGER, P_CLOSE };

struct conn {
	TAILQ_ENTRY(conn) link;
	struct sw_conns *set;
	struct bufferevent *bev;     /* the filter evhttp owns */
	struct bufferevent *under;   /* the socket or TLS bufferevent */
	struct event *timer;         /* the request deadline, then the close */
	struct event *kick;          /* runs the output filter (see on_output) */
	enum phase phase;
	struct sw_scan scan;
	int pending;                 /* requests handed to handlers, not yet answered */
	int counted;                 /* counted against the cap */
	int closing;                 /* an answer or a close is under way */
	int lingering;               /* counted in the set's `lingering` */
	int64_t idle_since_ms;       /* accept, or the last answer sent */
	int64_t flush_until_ms;
};

struct sw_conns {
	struct evhttp *http;
	SSL_CTX *ssl;
	struct sw_conns_limits lim;
	TAILQ_HEAD(, conn) list;
	size_t open;
	int max;
	struct evconnlistener *lev;
	struct event *resume;
	int paused;                  /* an accept-error episode is under way */
	int64_t paused_at_ms;
	uint64_t pause_retries;
	int derived_max;             /* from RLIMIT_NOFILE at start-up */
	int64_t last_error_ms;       /* of accept() */
	size_t lingering;            /* connections in P_LINGER */
	struct sw_conns_stats st;
	struct sw_conns *next_set;   /* the listener's error callback finds its set here */
};

/* Every set of the process (one per daemon): evhttp owns the argument of
 * the listener's callbacks, so the error callback looks its set up. */
static struct sw_conns *sets;

static int conn_idle(const struct conn *c)
{
	return !c->closing && c->pending == 0 &&
	       (c->scan.state == S_IDLE || c->scan.state == S_LINE || c->scan.state == S_HEADER);
}

static void uncount(struct conn *c)
{
	if (c->counted) {
		c->counted = 0;
		c->set->open--;
	}
}

static void arm(struct conn *c, enum phase ph, int64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	c->phase = ph;
	evtimer_add(c->timer, &tv);
}

/* Close now, the way evhttp closes for a client that went away. Only from
 * the timer: evhttp is not on the stack. `c` may be freed on return. */
static void close_now(struct conn *c)
{
	bufferevent_data_cb r, w;
	bufferevent_event_cb ev = NULL;
	void *arg = NULL;
	bufferevent_getcb(c->bev, &r, &w, &ev, &arg);
	if (ev)
		ev(c->bev, BEV_EVENT_EOF | BEV_EVENT_READING, arg);
}

/* Close `c` from anywhere (its input is dropped from now on). */
static void conn_close(struct conn *c)
{
	c->closing = 1;
	uncount(c);
	arm(c, P_CLOSE, 0);
}

static const char *reason(int code)
{
	switch (code) {
	case 400: return "Bad Request";
	case 408: return "Request Timeout";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

/*
 * Answer `code` with the API's error shape ({"error": ..., "status": ...},
 * as sw_reply_error) under the filter, then close. When a handler is still
 * answering an earlier request of the connection, an answer now would
 * interleave with it: just close.
 */
static void conn_fail(struct conn *c, int code, const char *msg)
{
	if (c->closing)
		return;
	if (c->pending) {
		conn_close(c);
		return;
	}
	c->closing = 1;
	uncount(c);
	json_t *j = json_pack("{s:s, s:i}", "error", msg, "status", code);
	char *body = json_dumps(j, JSON_COMPACT);
	struct evbuffer *out = bufferevent_get_output(c->under);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
			    "Content-Length: %zu\r\nConnection: close\r\n%s\r\n%s\n", code,
			    reason(code), strlen(body) + 1, code == 503 ? "Retry-After: 1\r\n" : "",
			    body);
	free(body);
	json_decref(j);
	bufferevent_enable(c->under, EV_WRITE);
	c->flush_until_ms = sw_mono_ms() + FLUSH_WAIT_MS;
	arm(c, P_FLUSH, 0);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	const struct sw_conns_limits *lim = &c->set->lim;
	char msg[128];
	switch (c->phase) {
	case P_DEADLINE:
		c->set->st.timed_out++;
		log_info("server.read_timeout", "fd=%d got_bytes=%lld timeout_s=%lld",
			 (int)bufferevent_getfd(c->under), (long long)c->scan.header_bytes,
			 (long long)lim->read_timeout_s);
		snprintf(msg, sizeof(msg), "the request did not arrive within server.read_timeout "
			 "(%lld s)", (long long)lim->read_timeout_s);
		conn_fail(c, 408, msg);
		return;
	case P_REFUSE:
		c->closing = 0;
		snprintf(msg, sizeof(msg), "too many connections (server.max_connections is %d); "
			 "try again", c->set->max);
		conn_fail(c, 503, msg);
		return;
	case P_FLUSH:
		if (evbuffer_get_length(bufferevent_get_output(c->under)) &&
		    sw_mono_ms() < c->flush_until_ms) {
			arm(c, P_FLUSH, FLUSH_POLL_MS);
			return;
		}
		/* sent: say so with a FIN, and give the client a moment to close
		 * (not too many at once: they hold descriptors outside the cap) */
		fd = bufferevent_getfd(c->under);
		if (fd >= 0)
			shutdown(fd, SHUT_WR);
		if (c->set->lingering >= LINGER_MAX) {
			close_now(c);
			return;
		}
		c->lingering = 1;
		c->set->lingering++;
		arm(c, P_LINGER, LINGER_MS);
		return;
	case P_LINGER:
	case P_CLOSE:
		close_now(c);
		return;
	}
}

static enum bufferevent_filter_result in_filter(struct evbuffer *src, struct evbuffer *dst,
						ev_ssize_t dst_limit, enum bufferevent_flush_mode mode,
						void *arg)
{
	struct conn *c = arg;
	const struct sw_conns_limits *lim = &c->set->lim;
	char msg[160];

	while (evbuffer_get_length(src) > 0 && !c->closing) {
		struct evbuffer_iovec v;
		size_t used = 0;
		int was_in = c->scan.in_request;
		if (evbuffer_peek(src, -1, NULL, &v, 1) < 1)
			break;
		int rc = sw_scan_feed(&c->scan, v.iov_base, v.iov_len, &used);
		if (used)
			evbuffer_remove_buffer(src, dst, used);
		if (rc == 1) {
			evtimer_del(c->timer);   /* whole: the deadline is met */
			continue;
		}
		if (!was_in && c->scan.in_request)
			arm(c, P_DEADLINE, lim->read_timeout_s * 1000);
		if (rc == 0)
			continue;
		switch (rc) {
		case 414:
			snprintf(msg, sizeof(msg), "the request target is longer than "
				 "server.max_uri_size (%lld bytes)", (long long)c->scan.max_uri);
			break;
		case 431:
			snprintf(msg, sizeof(msg), "the request line and headers are larger than "
				 "server.max_header_size (%lld bytes)", (long long)c->scan.max_header);
			break;
		case 413:
			snprintf(msg, sizeof(msg), "the request body is larger than %lld bytes",
				 (long long)c->scan.max_body);
			break;
		default:
			snprintf(msg, sizeof(msg), "malformed request framing (Content-Length or "
				 "chunked body)");
		}
		c->set->st.too_large += rc != 400;
		log_info("server.request_refused", "status=%d fd=%d reason=%s", rc,
			 (int)bufferevent_getfd(c->under), sw_q(msg));
		conn_fail(c, rc, msg);
	}
	if (c->closing)   /* what comes after an answer or a close is dropped */
		evbuffer_drain(src, evbuffer_get_length(src));
	return BEV_OK;
}

static enum bufferevent_filter_result out_filter(struct evbuffer *src, struct evbuffer *dst,
						 ev_ssize_t lim, enum bufferevent_flush_mode mode,
						 void *arg)
{
	size_t n = evbuffer_get_length(src), queued = evbuffer_get_length(dst);
	/* (a write high-watermark on the socket's bufferevent would do this,
	 * but breaks keep-alive in evhttp 2.1: the filter runs again when
	 * the socket's buffer has drained). Not BEV_OK with nothing moved:
	 * libevent 2.1 calls the filter again for as long as it says OK and
	 * data waits, so a client that stops reading would spin the loop. */
	if (queued >= OUT_HIGH)
		return BEV_NEED_MORE;
	if (n > OUT_HIGH - queued)
		n = OUT_HIGH - queued;
	if (lim > 0 && (size_t)lim < n)
		n = (size_t)lim;
	evbuffer_remove_buffer(src, dst, n);
	return BEV_OK;
}

/*
 * evhttp writes an answer into the filter and enables writing after; a
 * filter in libevent 2.1 runs its output side when data is added (writing
 * still disabled: nothing happens) or when the socket below has written,
 * not on enable, so without a nudge the answer would wait for a write
 * that never comes. Run it from the loop, once evhttp has enabled writing.
 */
static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	bufferevent_flush(c->bev, EV_WRITE, BEV_NORMAL);
}

static void on_output(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct conn *c = arg;
	if (info->n_added && c->kick)
		event_active(c->kick, EV_TIMEOUT, 0);
}

/* The filter is freed (evhttp closed the connection). After
 * sw_conns_free (event_base_free runs the last finalizers) `set` is NULL. */
static void conn_free(void *arg)
{
	struct conn *c = arg;
	if (c->set) {
		uncount(c);
		if (c->lingering)
			c->set->lingering--;
		TAILQ_REMOVE(&c->set->list, c, link);
	}
	if (c->timer)
		event_free(c->timer);
	if (c->kick)
		event_free(c->kick);
	if (c->bev)
		evbuffer_remove_cb(bufferevent_get_output(c->bev), on_output, c);
	free(c);
}

/* The connection idle longest, or NULL. */
static struct conn *oldest_idle(struct sw_conns *cs)
{
	struct conn *best = NULL, *c;
	TAILQ_FOREACH(c, &cs->list, link)
		if (conn_idle(c) && (!best || c->idle_since_ms < best->idle_since_ms))
			best = c;
	return best;
}

/* Close the longest-idle connection; 1 when there was one. */
static int evict_one(struct sw_conns *cs, const char *why)
{
	struct conn *c = oldest_idle(cs);
	if (!c)
		return 0;
	cs->st.evicted++;
	log_debug("server.conn_evicted", "fd=%d idle_ms=%lld reason=%s",
		  (int)bufferevent_getfd(c->under), (long long)(sw_mono_ms() - c->idle_since_ms),
		  why);
	conn_close(c);
	return 1;
}

static struct bufferevent *new_bev(struct event_base *base, void *arg)
{
	struct sw_conns *cs = arg;
	const struct sw_conns_limits *lim = &cs->lim;
	struct bufferevent *under;
	struct conn *c;

	/* an episode ends once accepting has worked for a while (accepts
	 * between errors are the same episode: one line, not two per retry) */
	if (cs->paused && sw_mono_ms() - cs->last_error_ms >= EPISODE_QUIET_MS) {
		cs->paused = 0;
		log_info("server.accept_resumed", "paused_ms=%lld retries=%llu connections=%zu",
			 (long long)(sw_mono_ms() - cs->paused_at_ms),
			 (unsigned long long)cs->pause_retries, cs->open);
	}
	under = cs->ssl ? bufferevent_openssl_socket_new(base, -1, SSL_new(cs->ssl),
							BUFFEREVENT_SSL_ACCEPTING,
							BEV_OPT_CLOSE_ON_FREE)
		       : bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!under)
		return NULL;
	c = sw_calloc(1, sizeof(*c));
	c->set = cs;
	c->under = under;
	c->timer = evtimer_new(base, on_timer, c);
	c->kick = event_new(base, -1, 0, on_kick, c);
	c->idle_since_ms = sw_mono_ms();
	sw_scan_init(&c->scan, lim->max_header, lim->max_uri, lim->max_body);
	/* Deferred callbacks: a filter drains what evhttp adds at once, inside
	 * the add, so an undeferred write callback would run before evhttp has
	 * set the one a chunked reply waits for (the backup's next piece) and
	 * the reply would stall after its first chunk. */
	c->bev = bufferevent_filter_new(under, in_filter, out_filter,
					BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, conn_free, c);
	if (!c->bev) {
		bufferevent_free(under);
		event_free(c->timer);
		event_free(c->kick);
		free(c);
		return NULL;
	}
	evbuffer_add_cb(bufferevent_get_output(c->bev), on_output, c);
	/* make room before joining: the newest is never the one closed */
	int full = cs->open >= (size_t)cs->max && !evict_one(cs, "max_connections");
	TAILQ_INSERT_TAIL(&cs->list, c, link);
	if (full) {
		/* every connection is busy: this one is told so and closed */
		cs->st.refused++;
		log_warn("server.conn_refused", "connections=%zu max_connections=%d", cs->open,
			 cs->max);
		/* evhttp gives the filter its socket after this returns:
		 * answer from the loop */
		c->closing = 1;
		arm(c, P_REFUSE, 0);
		return c->bev;
	}
	c->counted = 1;
	cs->open++;
	arm(c, P_DEADLINE, lim->read_timeout_s * 1000);   /* the first request, from accept */
	return c->bev;
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct sw_conns *cs = arg;
	if (cs->lev)
		evconnlistener_enable(cs->lev);
}

/*
 * accept() failed, most likely for want of descriptors. libevent would log
 * and retry at once, for as long as the condition lasts (a busy loop that
 * wrote 99 MB of log in 14 s); instead stop accepting for a moment, free
 * a descriptor by closing the longest-idle connection, and say it once.
 */
static void on_accept_error(struct evconnlistener *lev, void *arg)
{
	struct sw_conns *cs = sets;
	int err = EVUTIL_SOCKET_ERROR();
	while (cs && cs->lev != lev)
		cs = cs->next_set;
	if (!cs) {
		evconnlistener_disable(lev);
		return;
	}
	struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };
	evconnlistener_disable(lev);
	cs->pause_retries++;
	cs->last_error_ms = sw_mono_ms();
	if (!cs->paused) {
		cs->paused = 1;
		cs->paused_at_ms = sw_mono_ms();
		cs->pause_retries = 0;
		cs->st.accept_pauses++;
		log_warn("server.accept_paused", "err=%s connections=%zu pause_ms=%d reason=%s",
			 sw_q(evutil_socket_error_to_string(err)), cs->open, ACCEPT_PAUSE_MS,
			 sw_q("accept() failed; retrying until it works, logged once"));
	}
	evict_one(cs, "accept_error");
	evtimer_add(cs->resume, &tv);
}

static int derive_max(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return DEFAULT_MAX_CONNECTIONS;
	if (rl.rlim_cur <= FD_RESERVE + 16)
		return 16;
	return rl.rlim_cur - FD_RESERVE < DEFAULT_MAX_CONNECTIONS ?
		       (int)(rl.rlim_cur - FD_RESERVE) : DEFAULT_MAX_CONNECTIONS;
}

void sw_conns_limits(struct sw_conns *cs, const struct sw_conns_limits *lim)
{
	cs->lim = *lim;
	/* a cap of 0 is what was derived at start-up; evhttp's own header
	 * limit stays a backstop above ours (evhttp copies it into each
	 * connection it makes) */
	cs->max = lim->max_connections > 0 ? lim->max_connections : cs->derived_max;
	evhttp_set_max_headers_size(cs->http, (ev_ssize_t)lim->max_header + 4096);
}

int sw_conns_new(struct sw_conns **out, const struct sw_conns_opts *o)
{
	struct sw_conns *cs = sw_calloc(1, sizeof(*cs));
	cs->http = o->http;
	cs->ssl = o->ssl;
	TAILQ_INIT(&cs->list);
	cs->derived_max = derive_max();
	cs->resume = evtimer_new(o->base, on_resume, cs);
	evhttp_set_bevcb(o->http, new_bev, cs);
	sw_conns_limits(cs, &o->limits);
	if (o->listener) {
		cs->lev = evhttp_bound_socket_get_listener(o->listener);
		evconnlistener_set_error_cb(cs->lev, on_accept_error);
	}
	cs->next_set = sets;
	sets = cs;
	*out = cs;
	return 0;
}

void sw_conns_unlisten(struct sw_conns *cs)
{
	if (!cs)
		return;
	cs->lev = NULL;   /* evhttp frees the listener */
	evtimer_del(cs->resume);
}

void sw_conns_free(struct sw_conns *cs)
{
	struct conn *c;
	if (!cs)
		return;
	for (struct sw_conns **p = &sets; *p; p = &(*p)->next_set)
		if (*p == cs) {
			*p = cs->next_set;
			break;
		}
	while ((c = TAILQ_FIRST(&cs->list))) {
		TAILQ_REMOVE(&cs->list, c, link);
		c->set = NULL;
		event_free(c->timer);
		c->timer = NULL;
		event_free(c->kick);
		c->kick = NULL;
	}
	event_free(cs->resume);
	free(cs);
}

static struct conn *conn_of(struct sw_conns *cs, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	struct conn *c;
	if (!bev)
		return NULL;
	TAILQ_FOREACH(c, &cs->list, link)
		if (c->bev == bev)
			return c;
	return NULL;
}

/* Whether evhttp would close the connection after answering `req`, as
 * evhttp_send_done decides: HTTP/1.0 without keep-alive, or a
 * "Connection: close" either way. */
static int closes_after(struct evhttp_request *req)
{
	const char *in = evhttp_find_header(evhttp_request_get_input_headers(req), "Connection");
	const char *out = evhttp_find_header(evhttp_request_get_output_headers(req), "Connection");
	if ((in && !strcasecmp(in, "close")) || (out && !strcasecmp(out, "close")))
		return 1;
	return (req->major < 1 || (req->major == 1 && req->minor < 1)) &&
	       !(in && !strcasecmp(in, "keep-alive"));
}

/*
 * evhttp has handed `req`'s whole answer to the filter (it runs this just
 * before it decides whether to close). Were evhttp to close now, it would
 * shutdown() the socket under the answer still waiting in the socket's
 * bufferevent, and the client would get nothing: a "Connection: close" or
 * HTTP/1.0 client never saw an answer. So evhttp is told the connection
 * stays (the headers it decides by are rewritten; the answer already went
 * out with them), and the filter closes it once the answer has left, the
 * way it closes after its own error answers.
 */
static void on_complete(struct evhttp_request *req, void *arg)
{
	struct conn *c = conn_of(arg, req);
	if (!c)
		return;
	if (c->pending > 0 && --c->pending == 0)
		c->idle_since_ms = sw_mono_ms();
	if (!closes_after(req) || c->closing)
		return;
	evhttp_remove_header(evhttp_request_get_input_headers(req), "Connection");
	evhttp_remove_header(evhttp_request_get_output_headers(req), "Connection");
	evhttp_add_header(evhttp_request_get_input_headers(req), "Connection", "keep-alive");
	c->closing = 1;
	uncount(c);
	c->flush_until_ms = sw_mono_ms() + FLUSH_WAIT_MS;
	arm(c, P_FLUSH, 0);
}

void sw_conns_request(struct sw_conns *cs, struct evhttp_request *req)
{
	struct conn *c = cs ? conn_of(cs, req) : NULL;
	if (!c)
		return;
	c->pending++;
	evhttp_request_set_on_complete_cb(req, on_complete, cs);
}

void sw_conns_stats(const struct sw_conns *cs, struct sw_conns_stats *out)
{
	*out = cs->st;
	out->open = cs->open;
	out->max = cs->max;
}

/* --- the client's address ------------------------------------------------- */

static int trusted(const char *addr, const struct sw_cidr *t, size_t n)
{
	return sw_cidr_match_any(t, n, addr);
}

void sw_client_addr(char *out, size_t n, const char *peer, const char *xff,
		    const struct sw_cidr *t, size_t nt)
{
	unsigned char a[16];
	int fam;
	snprintf(out, n, "%s", peer ? peer : "-");
	if (!peer || !xff || !nt || !trusted(peer, t, nt))
		return;
	/* from the right: each hop was added by the one after it; the first
	 * hop we do not trust is the client as far as anyone can tell */
	const char *end = xff + strlen(xff);
	while (end > xff) {
		const char *start = end;
		while (start > xff && start[-1] != ',')
			start--;
		const char *b = start, *e = end;
		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		char hop[64];
		size_t len = (size_t)(e - b);
		if (len == 0 || len >= sizeof(hop))
			return;
		memcpy(hop, b, len);
		hop[len] = 0;
		if (sw_cidr_addr_parse(a, &fam, hop) < 0)
			return;   /* the hops so far stand: the last one we could read */
		snprintf(out, n, "%s", hop);
		if (!trusted(hop, t, nt))
			return;
		end = start > xff ? start - 1 : xff;
	}
}

void sw_request_client(char *out, size_t n, struct evhttp_request *req,
		       const struct sw_cidr *trusted, size_t ntrusted)
{
	char *peer = NULL;
	ev_uint16_t port = 0;
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	if (c)
		evhttp_connection_get_peer(c, &peer, &port);
	sw_client_addr(out, n, peer,
		       evhttp_find_header(evhttp_request_get_input_headers(req), "X-Forwarded-For"),
		       trusted, ntrusted);
}
