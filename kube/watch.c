/*
 * watch.c - watches: a list, then a watch stream from its
 * resourceVersion, events split into lines and parsed, restarted after a
 * cut or a 410 Gone with a fresh list, with backoff.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "kube/kube-int.h"
#include "kube/kube.h"
#include "lib/clock.h"
#include "lib/log.h"

/* ---- watches ---------------------------------------------------------- */

void kube_watch_free(struct sw_kube_watch *w)
{
	struct sw_kube *k = w->k;

	if (w->list_op)
		sw_kube_cancel(w->list_op);
	if (w->stream)
		kube_op_free(w->stream);
	event_free(w->timer);
	if (w->prev)
		w->prev->next = w->next;
	else
		k->watches = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w->api_version);
	free(w->kind);
	free(w->ns);
	free(w->selector);
	free(w->rv);
	sw_buf_release(&w->line);
	free(w);
}

/* Hand an event to the owner; 1 when it stopped the watch (w is gone). */
static int watch_emit(struct sw_kube_watch *w, enum sw_kube_event_type type, const json_t *obj,
		      const char *message)
{
	struct sw_kube_event ev;

	ev.type = type;
	ev.obj = obj;
	ev.message = message ? message : "";
	ev.resource_version = w->rv ? w->rv : "";
	w->in_cb = 1;
	w->cb(&ev, w->arg);
	w->in_cb = 0;
	if (w->stopped) {
		kube_watch_free(w);
		return 1;
	}
	return 0;
}

static void watch_set_rv(struct sw_kube_watch *w, const char *rv)
{
	if (!rv || !*rv)
		return;
	free(w->rv);
	w->rv = sw_strdup(rv);
}

/* Run the next step after a delay (reconnect, relist). */
static void watch_later(struct sw_kube_watch *w, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(w->timer, &tv);
}

static long watch_backoff(struct sw_kube_watch *w)
{
	w->fails++;
	return kube_backoff_delay(w->k, w->fails);
}

static void watch_listed(const struct sw_kube_result *r, void *arg)
{
	struct sw_kube_watch *w = arg;
	const char *rv;

	w->list_op = NULL;
	if (r->error) {
		if (watch_emit(w, SW_KUBE_WATCH_ERROR, NULL, r->error_msg))
			return;
		watch_later(w, watch_backoff(w));
		return;
	}
	rv = kube_jstr(json_object_get(r->obj, "metadata"), "resourceVersion");
	watch_set_rv(w, rv);
	if (watch_emit(w, SW_KUBE_SYNC, r->obj, NULL))
		return;
	kube_watch_connect(w);
}

static void watch_relist(struct sw_kube_watch *w)
{
	if (w->relist)
		w->k->stats.watch_relists++;
	free(w->rv);
	w->rv = NULL;
	w->relist = 0;
	if (sw_kube_list(w->k, w->api_version, w->kind, w->ns, w->selector, watch_listed, w,
			 &w->list_op) < 0) {
		/* Only bad arguments fail here, and those were checked at start. */
		log_error("kube.watch.relist", "err=%s", sw_q(sw_error_last()));
	}
}

static void watch_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sw_kube_watch *w = arg;
	if (!w->rv)
		watch_relist(w);
	else
		kube_watch_connect(w);
}

/* Results of watch_line. */
enum { LINE_GO = 0, LINE_END = 1, LINE_GONE = 2 };

/*
 * One line of the stream: an event. LINE_END ends the stream (410: relist;
 * another ERROR: reconnect after a pause), LINE_GONE means the owner
 * stopped the watch and `w` is freed.
 */
static int watch_line(struct sw_kube_watch *w, const char *p, size_t n)
{
	json_error_t je;
	json_t *ev = json_loadb(p, n, 0, &je), *obj;
	const char *type, *rv;
	enum sw_kube_event_type t;
	int rc = LINE_GO;

	if (!ev) {
		log_warn("kube.watch.badline", "kind=%s err=%s", sw_q(w->kind), sw_q(je.text));
		return LINE_GO;
	}
	type = kube_jstr(ev, "type");
	obj = json_object_get(ev, "object");
	rv = kube_jstr(json_object_get(obj, "metadata"), "resourceVersion");
	if (!type) {
		/* not an event: skip it */
	} else if (strcmp(type, "ERROR") == 0) {
		json_t *code = json_object_get(obj, "code");
		const char *m = kube_jstr(obj, "message");
		rc = LINE_END;
		if (json_integer_value(code) == 410) {
			log_debug("kube.watch.gone", "kind=%s rv=%s", sw_q(w->kind), sw_q(w->rv));
			w->relist = 1;
		} else {
			struct sw_buf b = SW_BUF_INIT;
			sw_buf_addf(&b, "%s %s watch: %s (%lld)", w->api_version, w->kind,
				    m ? m : "error event", json_integer_value(code));
			w->errored = 1;
			if (watch_emit(w, SW_KUBE_WATCH_ERROR, NULL, b.ptr))
				rc = LINE_GONE;
			sw_buf_release(&b);
		}
	} else if (strcmp(type, "BOOKMARK") == 0) {
		watch_set_rv(w, rv);
	} else {
		if (strcmp(type, "ADDED") == 0)
			t = SW_KUBE_ADDED;
		else if (strcmp(type, "MODIFIED") == 0)
			t = SW_KUBE_MODIFIED;
		else if (strcmp(type, "DELETED") == 0)
			t = SW_KUBE_DELETED;
		else
			goto done;
		watch_set_rv(w, rv);
		w->events++;
		w->fails = 0;
		if (watch_emit(w, t, obj, NULL))
			rc = LINE_GONE;
	}
done:
	json_decref(ev);
	return rc;
}

static int watch_data(const char *p, size_t n, void *arg)
{
	struct sw_kube_watch *w = arg;
	size_t start = 0, i;

	if (w->line.len + n > WATCH_MAX_LINE) {
		log_warn("kube.watch.toolong", "kind=%s", sw_q(w->kind));
		sw_buf_reset(&w->line);
		w->errored = 1;
		return 1;
	}
	sw_buf_add(&w->line, p, n);
	for (i = 0; i < w->line.len; i++) {
		int rc;
		if (w->line.ptr[i] != '\n')
			continue;
		rc = i > start ? watch_line(w, w->line.ptr + start, i - start) : LINE_GO;
		if (rc == LINE_GONE)
			return 1;   /* w, its stream op and call are gone */
		if (rc == LINE_END)
			return 1;
		start = i + 1;
	}
	sw_buf_consume(&w->line, start);
	return 0;
}

static void watch_stream_done(struct sw_kube_op *op, struct sw_http_result *r)
{
	struct sw_kube_watch *w = op->iarg;
	int64_t lived = sw_mono_ms() - w->stream_start;
	int ok = op->got_data || (!r->error && r->status >= 200 && r->status < 300);
	struct sw_buf msg = SW_BUF_INIT;

	if (r->status == 410 && !op->got_data)
		w->relist = 1;
	if (!w->relist && !ok) {
		/* The API's Status message, as for any operation. */
		json_t *st = r->body->len ? json_loadb(r->body->ptr, r->body->len, 0, NULL) : NULL;
		const char *m = kube_jstr(st, "message");
		sw_buf_addf(&msg, "%s %s watch", w->api_version, w->kind);
		if (w->ns && *w->ns)
			sw_buf_addf(&msg, " in %s", w->ns);
		if (r->error)
			sw_buf_addf(&msg, ": %s", r->error_msg);
		else
			sw_buf_addf(&msg, ": %s (%ld %s)", m ? m : "no message", r->status,
				    kube_reason_phrase(r->status));
		json_decref(st);
	}
	w->stream = NULL;
	kube_op_free(op);
	sw_buf_reset(&w->line);

	if (w->relist) {
		watch_relist(w);
	} else if (msg.len) {
		if (!watch_emit(w, SW_KUBE_WATCH_ERROR, NULL, msg.ptr))
			watch_later(w, watch_backoff(w));
	} else if (w->errored || (lived < 1000 && w->events == 0)) {
		/* An ERROR event, or ended at once with nothing in it: pause. */
		w->errored = 0;
		watch_later(w, watch_backoff(w));
	} else {
		log_debug("kube.watch.reconnect", "kind=%s rv=%s", sw_q(w->kind), sw_q(w->rv));
		kube_watch_connect(w);
	}
	sw_buf_release(&msg);
}

void kube_watch_connect(struct sw_kube_watch *w)
{
	struct sw_kube_op *op = kube_op_new(w->k, OP_WATCH);

	op->api_version = sw_strdup(w->api_version);
	kube_split_api_version(w->api_version, &op->group, &op->version);
	op->kind = sw_strdup(w->kind);
	op->ns = sw_strdup(w->ns ? w->ns : "");
	op->name = sw_strdup("");
	op->selector = w->selector ? sw_strdup(w->selector) : NULL;
	op->internal = watch_stream_done;
	op->on_data = watch_data;
	op->iarg = w;
	w->stream = op;
	w->stream_start = sw_mono_ms();
	w->events = 0;
	kube_op_wake(op);
}

int sw_kube_watch(struct sw_kube *k, const struct sw_kube_watch_opts *o,
		  struct sw_kube_watch **out)
{
	struct sw_kube_watch *w;

	if (out)
		*out = NULL;
	if (!o->api_version || !*o->api_version || !o->kind || !*o->kind || !o->on_event)
		return sw_error_setc(SW_EINVALID, "watch: apiVersion, kind and on_event are required");
	w = sw_calloc(1, sizeof(*w));
	w->k = k;
	w->api_version = sw_strdup(o->api_version);
	w->kind = sw_strdup(o->kind);
	w->ns = sw_strdup(o->ns ? o->ns : "");
	w->selector = o->label_selector ? sw_strdup(o->label_selector) : NULL;
	w->rv = o->resource_version && *o->resource_version ? sw_strdup(o->resource_version) : NULL;
	w->cb = o->on_event;
	w->arg = o->arg;
	sw_buf_init(&w->line);
	w->timer = evtimer_new(k->base, watch_timer_cb, w);
	if (!w->timer)
		abort();
	w->next = k->watches;
	if (k->watches)
		k->watches->prev = w;
	k->watches = w;
	/* From the loop, like every other start. */
	watch_later(w, 0);
	if (out)
		*out = w;
	return 0;
}

void sw_kube_watch_stop(struct sw_kube_watch *w)
{
	if (!w)
		return;
	if (w->in_cb) {
		w->stopped = 1;   /* freed once the callback returns */
		return;
	}
	kube_watch_free(w);
}
