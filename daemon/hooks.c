/*
 * hooks.c - POST /hooks/github: durable before acknowledged.
 *
 * A delivery is verified (HMAC over the raw body), recorded in SQLite, and
 * only then answered. Deliveries that arrive in the same loop turn share
 * one transaction: the first opens it and activates a flush event; the
 * flush commits once and answers them all (a group commit, so an fsync, when
 * synchronous=FULL, is paid once per batch rather than once per delivery).
 * If the commit fails nothing was acknowledged: every request in the batch
 * gets 503 and GitHub's redelivery can bring it again.
 *
 * After the answers the pipeline engine maps each new delivery (outside the
 * request: nothing it does delays the answer). A payload of ordinary size
 * is mapped right there on the loop, the whole batch in one transaction:
 * scanning it (webhooks/json.c) costs microseconds, less than handing it
 * to a worker thread and back. A large one (over MAP_INLINE_MAX) is parsed
 * on a worker, so a 25 MB payload never holds up the loop.
 *
 * The request path allocates little: the stored headers and the answer are
 * written by hand into buffers the receiver keeps.
 */
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/metrics-int.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/utf8.h"
#include "pipeline/pipeline.h"
#include "storage/store.h"
#include "webhooks/webhooks.h"

_Static_assert(SW_WEBHOOK_DIGEST_LEN == SW_DIGEST_LEN, "a delivery digest is a SHA-256");

/* Payloads up to this size are mapped on the loop, larger ones on a worker. */
#define MAP_INLINE_MAX (256 * 1024)

struct pending {
	struct evhttp_request *req;
	int64_t id;
	int duplicate;
	int ping;
	char *guid, *event;
	char *why;           /* duplicate: a redelivery or a replay, and of what */
	struct sw_buf payload;
	struct pending *next;
};

struct sw_hooks {
	struct sw_daemon *d;
	struct event *flush_ev;
	struct pending *head, **tail;
	int in_txn;
	struct sw_buf headers;     /* the stored headers' JSON, rebuilt per delivery */
	struct evbuffer *answer;   /* the answer's body, emptied by each reply */
};

static void pending_free(struct pending *p)
{
	free(p->guid);
	free(p->event);
	free(p->why);
	sw_buf_release(&p->payload);
	free(p);
}

/*
 * The answer: {"delivery":GUID,"id":N,"state":S,"duplicate":B}. The GUID was
 * checked by valid_guid() (letters, digits, - _ .) and the state is ours,
 * so neither needs escaping.
 */
static void reply(struct sw_hooks *h, struct pending *p, int code, const char *state)
{
	evbuffer_add_printf(h->answer,
			    "{\"delivery\":\"%s\",\"id\":%" PRId64 ",\"state\":\"%s\","
			    "\"duplicate\":%s}\n",
			    p->guid, p->id, state, p->duplicate ? "true" : "false");
	evhttp_add_header(evhttp_request_get_output_headers(p->req), "Content-Type",
			  "application/json");
	evhttp_send_reply(p->req, code, NULL, h->answer);   /* moves the body out */
}

static void flush(evutil_socket_t fd, short what, void *arg)
{
	struct sw_hooks *h = arg;
	struct sw_daemon *d = h->d;
	struct pending *list = h->head;
	int ok = 1, inline_txn = 0;

	h->head = NULL;
	h->tail = &h->head;
	if (h->in_txn) {
		h->in_txn = 0;
		/* the engine may have opened (and committed) the transaction */
		if (sw_store_in_transaction(d->store) && sw_store_commit(d->store) < 0) {
			log_error("webhook.commit_failed", "err=%s", sw_q(sw_error_last()));
			ok = 0;
		}
	}
	for (struct pending *p = list; p; p = p->next) {
		if (!ok) {
			sw_reply_error(p->req, 503, "could not record the delivery; try again");
			continue;
		}
		if (p->duplicate) {
			log_info("webhook.duplicate", "delivery=%lld guid=%s event=%s why=%s",
				 (long long)p->id, sw_q(p->guid), sw_q(p->event), sw_q(p->why));
			sw_metrics_delivery(p->event, "duplicate");
			reply(h, p, 200, "duplicate");
		} else {
			log_info("webhook.accepted", "delivery=%lld guid=%s event=%s", (long long)p->id,
				 sw_q(p->guid), sw_q(p->event));
			reply(h, p, p->ping ? 200 : 202, "queued");
		}
	}
	/* acknowledged; now act on them (the inline ones in one transaction) */
	while (list) {
		struct pending *p = list;
		list = p->next;
		if (ok && !p->duplicate && d->engine) {
			if (p->payload.len > MAP_INLINE_MAX) {
				sw_engine_delivery_async(d->engine, p->id, p->event, &p->payload);
			} else {
				if (!inline_txn && !sw_store_in_transaction(d->store))
					inline_txn = sw_store_begin(d->store) == 0;
				sw_engine_delivery(d->engine, p->id, p->event, p->payload.ptr,
						   p->payload.len);
			}
		}
		pending_free(p);
	}
	if (inline_txn && sw_store_in_transaction(d->store) && sw_store_commit(d->store) < 0)
		log_error("delivery.commit", "err=%s", sw_q(sw_error_last()));
}

static const char *hdr(struct evhttp_request *req, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

/* Append s as the body of a JSON string (the quotes are the caller's). */
static void json_escape(struct sw_buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\') {
			sw_buf_addch(b, '\\');
			sw_buf_addch(b, (char)*c);
		} else if (*c < 0x20) {
			char u[6] = { '\\', 'u', '0', '0', hex[*c >> 4], hex[*c & 15] };
			sw_buf_add(b, u, sizeof(u));
		} else {
			sw_buf_addch(b, (char)*c);
		}
	}
}

/*
 * The headers worth keeping with a delivery (never the signature), as a
 * JSON object in h->headers. Header values are bytes from the network:
 * quotes, backslashes and control characters are escaped, and a value that
 * is not UTF-8 is left out (as jansson's json_string() refused it).
 */
static const char *headers_json(struct sw_hooks *h, struct evhttp_request *req)
{
	static const char *const keep[] = { "X-GitHub-Event", "X-GitHub-Delivery", "X-GitHub-Hook-ID",
		"X-GitHub-Enterprise-Host", "User-Agent", "Content-Type", NULL };
	sw_buf_reset(&h->headers);
	sw_buf_addch(&h->headers, '{');
	for (const char *const *k = keep; *k; k++) {
		const char *v = hdr(req, *k);
		if (!v || !sw_utf8_valid(v, strlen(v)))
			continue;
		sw_buf_addf(&h->headers, "%s\"%s\":\"", h->headers.len > 1 ? "," : "", *k);
		json_escape(&h->headers, v);
		sw_buf_addch(&h->headers, '"');
	}
	sw_buf_addch(&h->headers, '}');
	return h->headers.ptr;
}

static int valid_guid(const char *g)
{
	size_t n = strlen(g);
	if (!n || n > 128)
		return 0;
	for (const char *p = g; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      *p == '-' || *p == '_' || *p == '.'))
			return 0;
	return 1;
}

void sw_hooks_github(struct sw_daemon *d, struct evhttp_request *req)
{
	struct sw_hooks *h = d->hooks;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
	const char *event = hdr(req, "X-GitHub-Event");
	const char *guid = hdr(req, "X-GitHub-Delivery");
	struct pending *p;
	int rc;

	if (d->stopping) {
		sw_reply_error(req, 503, "slipwayd is stopping");
		return;
	}
	if (sw_webhook_verify(d->cfg->webhook_secret.value, body, len,
			      hdr(req, "X-Hub-Signature-256")) < 0) {
		log_warn("webhook.rejected", "guid=%s reason=%s", sw_q(guid ? guid : ""),
			 sw_q(sw_error_last()));
		sw_reply_error(req, 401, "%s", sw_error_last());
		sw_metrics_delivery(event ? event : "unknown", "rejected");
		return;
	}
	if (!event || !*event) {
		sw_reply_error(req, 400, "missing X-GitHub-Event header");
		return;
	}
	if (!guid || !valid_guid(guid)) {
		sw_reply_error(req, 400, "missing or malformed X-GitHub-Delivery header");
		return;
	}
	p = sw_calloc(1, sizeof(*p));
	p->req = req;
	p->guid = sw_strdup(guid);
	p->event = sw_strdup(event);
	p->ping = !strcmp(event, "ping");
	sw_buf_init(&p->payload);
	if (sw_webhook_payload(&p->payload, hdr(req, "Content-Type"), body, len) < 0 ||
	    sw_webhook_json_check(p->payload.ptr, p->payload.len) < 0) {
		log_warn("webhook.invalid", "guid=%s event=%s err=%s", sw_q(guid), sw_q(event),
			 sw_q(sw_error_last()));
		sw_reply_error(req, 400, "payload: %s", sw_error_last());
		sw_metrics_delivery(event, "rejected");
		pending_free(p);
		return;
	}
	unsigned char digest[SW_WEBHOOK_DIGEST_LEN];
	int have_digest = d->cfg->replay_window_s > 0 &&
			  sw_webhook_digest(digest, event, body, len) == 0;

	/* the payload is parsed after the answer, on a worker: action and
	 * repository are filled in then */
	struct sw_store_delivery_in din = {
		.guid = guid, .event = event, .headers = headers_json(h, req), .body = body,
		.body_len = len,
		.digest = have_digest ? digest : NULL,
		.replay_since = have_digest ? sw_now_ms() - d->cfg->replay_window_s * 1000 : 0,
	};
	if (!h->in_txn) {
		if (!sw_store_in_transaction(d->store) && sw_store_begin(d->store) < 0) {
			sw_reply_error(req, 503, "could not record the delivery: %s", sw_error_last());
			pending_free(p);
			return;
		}
		h->in_txn = 1;
		event_active(h->flush_ev, EV_TIMEOUT, 0);
	}
	rc = sw_store_delivery_insert(d->store, &p->id, &din);
	if (rc == SW_EEXISTS) {
		p->duplicate = 1;
		p->why = sw_strdup(sw_error_last());
	} else if (rc < 0) {
		log_error("webhook.store", "guid=%s err=%s", sw_q(guid), sw_q(sw_error_last()));
		sw_reply_error(req, 503, "could not record the delivery; try again");
		pending_free(p);
		return;
	}
	*h->tail = p;
	h->tail = &p->next;
}

int sw_hooks_new(struct sw_hooks **out, struct sw_daemon *d)
{
	struct sw_hooks *h = sw_calloc(1, sizeof(*h));
	h->d = d;
	h->tail = &h->head;
	h->flush_ev = event_new(d->base, -1, 0, flush, h);
	sw_buf_init(&h->headers);
	h->answer = evbuffer_new();
	*out = h;
	return 0;
}

void sw_hooks_free(struct sw_hooks *h)
{
	if (!h)
		return;
	if (h->head || h->in_txn)
		flush(-1, 0, h);
	event_free(h->flush_ev);
	sw_buf_release(&h->headers);
	evbuffer_free(h->answer);
	free(h);
}
