/*
 * kube.c - the Kubernetes API client (see kube.h).
 *
 * Every operation is a struct sw_kube_op that moves through a few states on
 * the loop:
 *
 *   NEW --resolve kind--> (DISC: wait for discovery) --credentials-->
 *   (CRED: wait for the exec plugin) --> FLIGHT (an HTTP call) -->
 *   RETRY (timer) --> FLIGHT ... --> finished: callback, freed.
 *
 * An op never moves because of something another op did, directly: a
 * finished discovery or exec run only arms the waiting ops' own zero-delay
 * timers (kube_op_wake), so each op continues from its own loop callback and a
 * user callback that cancels other ops can never leave a loop here holding
 * a freed op. The same rule makes "no callback before the starting function
 * returns" hold: sw_kube_get() and friends only arm the timer.
 *
 * Internal requests (discovery, watch streams) are ops too, with an
 * `internal` completion instead of a user callback, so they share the
 * credential, retry and 401 handling.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "kube/kube-int.h"
#include "kube/kube.h"
#include "lib/log.h"
#include "lib/proc.h"

static void op_advance(struct sw_kube_op *op);
static void op_send(struct sw_kube_op *op);

/* ---- small helpers ---------------------------------------------------- */

const char *kube_jstr(const json_t *o, const char *key)
{
	const json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
	return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *kube_reason_phrase(long code)
{
	switch (code) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 413: return "Request Entity Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return code >= 500 ? "Server Error" : code >= 400 ? "Client Error" : "";
	}
}

static int code_for_status(long st)
{
	if (st == 404)
		return SW_ENOTFOUND;
	if (st == 409)
		return SW_EEXISTS;
	if (st == 400 || st == 422)
		return SW_EINVALID;
	if (st == 429 || st >= 500)
		return SW_EAGAIN;
	return SW_ERR;
}

void kube_split_api_version(const char *av, char **group, char **version)
{
	const char *slash = strchr(av, '/');
	if (slash) {
		*group = sw_strndup(av, (size_t)(slash - av));
		*version = sw_strdup(slash + 1);
	} else {
		*group = sw_strdup("");
		*version = sw_strdup(av);
	}
}

/* ---- ops: life cycle -------------------------------------------------- */

static void op_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	op_advance(arg);
}

struct sw_kube_op *kube_op_new(struct sw_kube *k, enum op_type type)
{
	struct sw_kube_op *op = sw_calloc(1, sizeof(*op));
	op->k = k;
	op->type = type;
	op->timer = evtimer_new(k->base, op_timer_cb, op);
	if (!op->timer)
		abort();
	op->next = k->ops;
	if (k->ops)
		k->ops->prev = op;
	k->ops = op;
	k->nops++;
	return op;
}

static void slot_release(struct sw_kube_op *op);
static void unqueue(struct sw_kube_op *op);

void kube_op_free(struct sw_kube_op *op)
{
	struct sw_kube *k = op->k;

	if (op->call)
		sw_http_cancel(op->call);
	if (op->state == ST_QUEUED)
		unqueue(op);
	slot_release(op);
	event_free(op->timer);
	if (op->prev)
		op->prev->next = op->next;
	else
		k->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	k->nops--;
	free(op->api_version);
	free(op->group);
	free(op->version);
	free(op->kind);
	free(op->ns);
	free(op->name);
	free(op->selector);
	free(op->plural);
	free(op->path);
	free(op->body);
	free(op->cont);
	free(op->pending_error);
	json_decref(op->items);
	free(op);
}

/* Continue `op` from the loop after `ms` milliseconds (0: next turn). */
static void op_wake_in(struct sw_kube_op *op, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(op->timer, &tv);
}

void kube_op_wake(struct sw_kube_op *op)
{
	op_wake_in(op, 0);
}

/* "apps/v1 Deployment shop/web", for messages. */
static void op_what(const struct sw_kube_op *op, struct sw_buf *b)
{
	if (op->type == OP_RAW) {
		sw_buf_addf(b, "GET %s", op->path);
		return;
	}
	sw_buf_addf(b, "%s %s", op->api_version, op->kind);
	if (op->type == OP_LIST || op->type == OP_WATCH) {
		sw_buf_addf(b, " %s", op->type == OP_LIST ? "list" : "watch");
		if (op->ns && *op->ns)
			sw_buf_addf(b, " in %s", op->ns);
		if (op->selector && *op->selector)
			sw_buf_addf(b, " (%s)", op->selector);
		return;
	}
	if (op->ns && *op->ns && (!op->resolved || op->namespaced))
		sw_buf_addf(b, " %s/%s", op->ns, op->name);
	else
		sw_buf_addf(b, " %s", op->name);
}

/*
 * Finish `op` with a result: the user callback (or the internal one, with a
 * synthetic HTTP result for failures that had none) and free.
 */
static void op_finish(struct sw_kube_op *op, int error, long status, const char *reason,
		      const json_t *status_obj, json_t *obj, const char *msg)
{
	struct sw_kube_result r;

	op->finishing = 1;
	if (op->internal) {
		struct sw_buf empty = SW_BUF_INIT;
		struct sw_http_result hr;
		memset(&hr, 0, sizeof(hr));
		hr.error = error ? error : SW_ERR;
		hr.error_msg = msg ? msg : "";
		hr.status = status;
		hr.body = &empty;
		op->internal(op, &hr);   /* frees op */
		sw_buf_release(&empty);
		return;
	}
	memset(&r, 0, sizeof(r));
	r.error = error;
	r.error_msg = msg ? msg : "";
	r.status = status;
	r.reason = reason ? reason : "";
	r.status_obj = status_obj;
	r.obj = obj;
	if (op->cb)
		op->cb(&r, op->arg);
	kube_op_free(op);
}

/* Fail with "<what>: <msg>" (internal owners add their own context). */
static void op_fail(struct sw_kube_op *op, int code, const char *msg)
{
	struct sw_buf b = SW_BUF_INIT;
	if (!op->internal) {
		op_what(op, &b);
		sw_buf_adds(&b, ": ");
	}
	sw_buf_adds(&b, msg);
	op_finish(op, code, 0, NULL, NULL, NULL, b.ptr);
	sw_buf_release(&b);
}

/* Fail from an HTTP answer: the API's Status.message and the code. */
static void op_fail_http(struct sw_kube_op *op, struct sw_http_result *r)
{
	struct sw_buf b = SW_BUF_INIT;
	json_t *st = NULL;
	const char *reason = NULL, *m = NULL;

	op_what(op, &b);
	sw_buf_adds(&b, ": ");
	if (r->error) {
		sw_buf_adds(&b, r->error_msg);
		op_finish(op, r->error == SW_ECANCELLED ? SW_ERR : r->error, 0, NULL, NULL, NULL,
			  b.ptr);
		sw_buf_release(&b);
		return;
	}
	if (r->body->len)
		st = json_loadb(r->body->ptr, r->body->len, 0, NULL);
	if (st && (m = kube_jstr(st, "message")) && *m) {
		reason = kube_jstr(st, "reason");
		sw_buf_adds(&b, m);
	} else if (r->body->len) {
		/* Not a Status (a proxy's page): a bounded, single-line excerpt. */
		size_t n = r->body->len < 200 ? r->body->len : 200;
		for (size_t i = 0; i < n; i++) {
			char ch = r->body->ptr[i];
			sw_buf_addch(&b, (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' : ch);
		}
		while (b.len && b.ptr[b.len - 1] == ' ')
			sw_buf_truncate(&b, b.len - 1);
		if (r->body->len > n)
			sw_buf_adds(&b, "...");
	} else {
		sw_buf_adds(&b, "no message");
	}
	sw_buf_addf(&b, " (%ld %s)", r->status, kube_reason_phrase(r->status));
	op_finish(op, code_for_status(r->status), r->status, reason, st, NULL, b.ptr);
	json_decref(st);
	sw_buf_release(&b);
}

void sw_kube_cancel(struct sw_kube_op *op)
{
	if (!op || op->finishing)
		return;
	kube_op_free(op);
}

size_t sw_kube_pending(const struct sw_kube *k)
{
	return k->nops;
}

/* ---- ops: requests ---------------------------------------------------- */

static void path_prefix(struct sw_buf *b, const struct sw_kube_op *op)
{
	if (!*op->group)
		sw_buf_addf(b, "/api/%s", op->version);
	else
		sw_buf_addf(b, "/apis/%s/%s", op->group, op->version);
	if (op->namespaced && op->ns && *op->ns) {
		sw_buf_adds(b, "/namespaces/");
		sw_http_escape(b, op->ns);
	}
	sw_buf_addf(b, "/%s", op->plural);
}

/* The request path and query of the current page / attempt. */
static void op_build_path(struct sw_kube_op *op)
{
	struct sw_kube *k = op->k;
	struct sw_buf b = SW_BUF_INIT;
	char sep = '?';

	if (op->type == OP_RAW)
		return;
	path_prefix(&b, op);
	switch (op->type) {
	case OP_GET:
	case OP_DELETE:
		sw_buf_addch(&b, '/');
		sw_http_escape(&b, op->name);
		break;
	case OP_APPLY:
		sw_buf_addch(&b, '/');
		sw_http_escape(&b, op->name);
		sw_buf_adds(&b, "?fieldManager=");
		sw_http_escape(&b, k->field_manager);
		sw_buf_adds(&b, "&force=true");
		if (op->flags & SW_KUBE_DRY_RUN)
			sw_buf_adds(&b, "&dryRun=All");
		if (op->flags & SW_KUBE_NO_VALIDATE)
			sw_buf_adds(&b, "&fieldValidation=Ignore");
		break;
	case OP_CREATE:
		sw_buf_adds(&b, "?fieldManager=");
		sw_http_escape(&b, k->field_manager);
		break;
	case OP_LIST:
		sw_buf_addf(&b, "?limit=%ld", k->page_size);
		sep = '&';
		if (op->cont) {
			sw_buf_adds(&b, "&continue=");
			sw_http_escape(&b, op->cont);
		}
		break;
	case OP_WATCH: {
		struct sw_kube_watch *w = op->iarg;
		sw_buf_addf(&b, "?watch=1&allowWatchBookmarks=true&timeoutSeconds=%ld",
			    k->watch_timeout_s);
		sep = '&';
		if (w->rv && *w->rv) {
			sw_buf_adds(&b, "&resourceVersion=");
			sw_http_escape(&b, w->rv);
		}
		break;
	}
	case OP_RAW:
		break;
	}
	if ((op->type == OP_LIST || op->type == OP_WATCH) && op->selector && *op->selector) {
		sw_buf_addf(&b, "%clabelSelector=", sep);
		sw_http_escape(&b, op->selector);
	}
	free(op->path);
	op->path = sw_buf_detach(&b, NULL);
}

/* Find the kind; 1 when resolved, 0 when waiting for discovery. */
static int op_resolve(struct sw_kube_op *op)
{
	struct sw_kube *k = op->k;
	const struct disc_ent *e;

	if (op->resolved || op->type == OP_RAW)
		return 1;
	e = kube_disc_find(k, op->group, op->version, op->kind);
	if (e) {
		op->resolved = 1;
		op->namespaced = e->namespaced;
		op->plural = sw_strdup(e->plural);
		if (op->namespaced && (!op->ns || !*op->ns) && op->type != OP_LIST &&
		    op->type != OP_WATCH) {
			free(op->ns);
			op->ns = sw_strdup(k->cfg->ns);
		}
		if (!op->namespaced && op->type != OP_LIST && op->type != OP_WATCH) {
			free(op->ns);
			op->ns = sw_strdup("");
		}
		return 1;
	}
	if (op->disc_want && k->disc_completed >= op->disc_want) {
		struct sw_buf b = SW_BUF_INIT;
		sw_buf_addf(&b, "the API server has no kind %s in %s", op->kind, op->api_version);
		op_fail(op, SW_EINVALID, b.ptr);
		sw_buf_release(&b);
		return -1;
	}
	/* A discovery that starts from now on sees whatever was there when we
	 * asked (a CRD applied just before); one already running may not. */
	if (!op->disc_want)
		op->disc_want = k->disc_started + 1;
	op->state = ST_DISC;
	kube_disc_request(k);
	return 0;
}

static void op_http_done(struct sw_http_result *r, void *arg);

static int op_stream_data(const char *p, size_t n, void *arg)
{
	struct sw_kube_op *op = arg;
	op->got_data = 1;
	return op->on_data(p, n, op->iarg);
}

/*
 * Request slots: at most k->max_inflight object requests (get, list,
 * apply, delete) are on the wire at once; more wait in FIFO order. A real
 * API server (and its listen backlog) is not flooded by a sync of
 * thousands of objects, and connections are reused instead of opened by
 * the hundred. Watch streams and discovery do not take slots: they are few,
 * and an operation waiting for discovery must never hold up discovery.
 */
static int needs_slot(const struct sw_kube_op *op)
{
	return op->type != OP_WATCH && op->type != OP_RAW;
}

static void unqueue(struct sw_kube_op *op)
{
	struct sw_kube *k = op->k;
	if (op->qprev)
		op->qprev->qnext = op->qnext;
	else
		k->qhead = op->qnext;
	if (op->qnext)
		op->qnext->qprev = op->qprev;
	else
		k->qtail = op->qprev;
	op->qprev = op->qnext = NULL;
}

/* Give up op's slot; the first waiting op gets it and goes next turn. */
static void slot_release(struct sw_kube_op *op)
{
	struct sw_kube *k = op->k;
	struct sw_kube_op *next = k->qhead;

	if (!op->slot)
		return;
	op->slot = 0;
	k->inflight--;
	if (next) {
		unqueue(next);
		next->slot = 1;
		next->state = ST_NEW;
		k->inflight++;
		kube_op_wake(next);
	}
}

static void op_send(struct sw_kube_op *op)
{
	struct sw_kube *k = op->k;
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	const char *hdrs[6];
	char *auth = NULL, *ua, *ct = NULL, *url;
	size_t nh = 0;
	int rc;

	if (!op->slot && needs_slot(op)) {
		if (k->inflight >= k->max_inflight) {
			k->stats.queued++;
			op->state = ST_QUEUED;
			op->qprev = k->qtail;
			if (k->qtail)
				k->qtail->qnext = op;
			else
				k->qhead = op;
			k->qtail = op;
			return;
		}
		op->slot = 1;
		k->inflight++;
	}
	op_build_path(op);
	url = sw_asprintf("%s%s", k->cfg->server, op->path);
	ua = sw_asprintf("User-Agent: %s", k->user_agent);
	hdrs[nh++] = "Accept: application/json";
	hdrs[nh++] = ua;
	if (k->bearer) {
		auth = sw_asprintf("Authorization: Bearer %s", k->bearer);
		hdrs[nh++] = auth;
	}
	if (op->content_type) {
		ct = sw_asprintf("Content-Type: %s", op->content_type);
		hdrs[nh++] = ct;
	}
	hdrs[nh] = NULL;

	o.method = op->method ? op->method : "GET";
	o.url = url;
	o.headers = hdrs;
	o.body = op->body;
	o.body_len = op->body_len;
	o.timeout_ms = op->type == OP_WATCH ? (k->watch_timeout_s + 60) * 1000 : k->timeout_ms;
	o.ca_pem = k->cfg->ca_pem;
	o.cert_pem = k->cert_pem ? k->cert_pem : k->cfg->cert_pem;
	o.key_pem = k->cert_pem ? k->key_pem : k->cfg->key_pem;
	o.insecure = k->cfg->insecure;
	o.tls_server_name = k->cfg->tls_server_name;
	o.on_done = op_http_done;
	o.on_data = op->on_data ? op_stream_data : NULL;
	o.arg = op;

	op->cred_gen = k->cred_gen;
	op->got_data = 0;
	op->state = ST_FLIGHT;
	k->stats.requests++;
	if (op->attempt++ > 0)
		k->stats.retries++;
	rc = sw_http_start(k->http, &o, &op->call);
	free(url);
	free(ua);
	free(auth);
	free(ct);
	if (rc < 0) {
		op->call = NULL;
		op_fail(op, rc, sw_error_last());
	}
}

/* Where an op goes next; called from its own timer. */
static void op_advance(struct sw_kube_op *op)
{
	struct sw_kube *k = op->k;
	char *err = NULL;
	int rc;

	if (op->pending_error) {
		char *e = op->pending_error;
		op->pending_error = NULL;
		op_fail(op, op->pending_code ? op->pending_code : SW_ERR, e);
		free(e);
		return;
	}
	if ((rc = op_resolve(op)) <= 0)
		return;
	if (!kube_cred_ready(k, &err)) {
		if (err) {
			op_fail(op, SW_ERR, err);
			free(err);
			return;
		}
		op->state = ST_CRED;
		if (kube_exec_start(k, &err) < 0) {
			op_fail(op, SW_ERR, err);
			free(err);
		}
		return;
	}
	op_send(op);
}

long kube_backoff_delay(const struct sw_kube *k, int attempt)
{
	long d = k->backoff_ms;
	for (int i = 1; i < attempt && d < k->backoff_max_ms; i++)
		d *= 2;
	if (d > k->backoff_max_ms)
		d = k->backoff_max_ms;
	/* Up to a quarter more, so many clients do not retry in step. */
	return d + (d >= 4 ? rand() % (d / 4) : 0);
}

/* Retry-After in milliseconds (seconds form only), or -1. */
static long retry_after(const struct sw_http_result *r)
{
	const char *v = sw_http_result_header(r, "retry-after");
	char *end;
	long s;

	if (!v)
		return -1;
	errno = 0;
	s = strtol(v, &end, 10);
	if (errno || end == v || s < 0)
		return -1;
	return s * 1000 > RETRY_AFTER_MAX_MS ? RETRY_AFTER_MAX_MS : s * 1000;
}

static void op_complete(struct sw_kube_op *op, struct sw_http_result *r);

static void op_http_done(struct sw_http_result *r, void *arg)
{
	struct sw_kube_op *op = arg;
	struct sw_kube *k = op->k;
	int transient;

	op->call = NULL;
	slot_release(op);
	/* A stream that delivered data has simply ended: its owner reconnects. */
	transient = !op->got_data && r->error != SW_ECANCELLED &&
		    ((r->error == SW_ERR) ||
		     (!r->error && (r->status == 429 || r->status >= 500)));
	if (transient && op->attempt < k->max_attempts) {
		long d = kube_backoff_delay(k, op->attempt);
		long ra = (!r->error && (r->status == 429 || r->status == 503)) ? retry_after(r) : -1;
		if (ra >= 0)
			d = ra;
		log_debug("kube.retry", "path=%s attempt=%d status=%ld delay_ms=%ld err=%s",
			  sw_q(op->path), op->attempt, r->status, d, sw_q(r->error_msg));
		op->state = ST_RETRY;
		op_wake_in(op, d);
		return;
	}
	if (!r->error && r->status == 401 && !op->auth_retried &&
	    (kube_have_exec(k) || k->cfg->token_file)) {
		/* The credential was revoked or expired early: get a new one,
		 * once per credential however many requests saw the 401. */
		op->auth_retried = 1;
		if (op->cred_gen == k->cred_gen && k->cred_valid) {
			log_info("kube.auth.refresh", "context=%s path=%s", sw_q(k->cfg->context),
				 sw_q(op->path));
			k->cred_valid = 0;
		}
		op->attempt = 0;
		op_advance(op);
		return;
	}
	op_complete(op, r);
}

/* Give each list item its apiVersion and kind (the API leaves them out). */
static void list_add_items(struct sw_kube_op *op, json_t *page)
{
	json_t *items = json_object_get(page, "items"), *it;
	size_t i;

	json_array_foreach(items, i, it) {
		if (!json_is_object(it))
			continue;
		if (!json_object_get(it, "apiVersion"))
			json_object_set_new(it, "apiVersion", json_string(op->api_version));
		if (!json_object_get(it, "kind"))
			json_object_set_new(it, "kind", json_string(op->kind));
		json_array_append(op->items, it);
	}
}

/*
 * Cut every "managedFields" member out of JSON text, in place; returns the
 * new length. Listed objects and apply answers are parsed without them:
 * they are often half of an object's text and most of its parsed size, and
 * neither the sync nor the drift watcher reads them there (watch events and
 * gets keep them: the drift watcher names the manager that changed a field
 * from those). A plain scan: strings (with escapes) are skipped whole, so
 * only a key followed by ':' matches.
 */
static size_t skip_value(const char *p, size_t i, size_t n)
{
	int depth = 0, str = 0;
	for (; i < n; i++) {
		char c = p[i];
		if (str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				str = 0;
			continue;
		}
		if (c == '"')
			str = 1;
		else if (c == '{' || c == '[')
			depth++;
		else if (c == '}' || c == ']') {
			if (depth == 0)
				return i;   /* end of the enclosing object: a scalar ended */
			if (--depth == 0)
				return i + 1;
		} else if (c == ',' && depth == 0)
			return i;
	}
	return n;
}

size_t sw_kube_strip_managed_fields(char *p, size_t n)
{
	static const char key[] = "\"managedFields\"";
	size_t i = 0, o = 0, kl = sizeof(key) - 1;
	int str = 0;

	while (i < n) {
		char c = p[i];
		if (str) {
			p[o++] = c;
			if (c == '\\' && i + 1 < n)
				p[o++] = p[++i];
			else if (c == '"')
				str = 0;
			i++;
			continue;
		}
		if (c == '"' && n - i > kl && !memcmp(p + i, key, kl)) {
			size_t j = i + kl, back = o;
			while (j < n && isspace((unsigned char)p[j]))
				j++;
			if (j < n && p[j] == ':') {
				j = skip_value(p, j + 1, n);
				while (back > 0 && isspace((unsigned char)p[back - 1]))
					back--;
				if (back > 0 && p[back - 1] == ',') {
					o = back - 1;            /* drop the comma before */
				} else {
					while (j < n && isspace((unsigned char)p[j]))
						j++;
					if (j < n && p[j] == ',')
						j++;             /* first member: drop the one after */
				}
				i = j;
				continue;
			}
		}
		if (c == '"')
			str = 1;
		p[o++] = c;
		i++;
	}
	return o;
}

static void op_complete(struct sw_kube_op *op, struct sw_http_result *r)
{
	json_t *obj = NULL;
	json_error_t je;

	if (op->internal) {
		op->finishing = 1;
		op->internal(op, r);
		return;
	}
	if (!r->error && r->status == 410 && op->type == OP_LIST && op->cont &&
	    op->restarts < LIST_MAX_RESTARTS) {
		/* The continue token expired: the list must start over. */
		log_debug("kube.list.restart", "path=%s", sw_q(op->path));
		op->restarts++;
		op->k->stats.list_restarts++;
		free(op->cont);
		op->cont = NULL;
		json_array_clear(op->items);
		op->attempt = 0;
		op_advance(op);
		return;
	}
	if (r->error || r->status < 200 || r->status >= 300) {
		op_fail_http(op, r);
		return;
	}
	if ((op->type == OP_LIST || op->type == OP_APPLY || op->type == OP_CREATE) && r->body->len)
		sw_buf_truncate(r->body, sw_kube_strip_managed_fields(r->body->ptr, r->body->len));
	obj = json_loadb(r->body->ptr, r->body->len, 0, &je);
	if (!obj) {
		struct sw_buf b = SW_BUF_INIT;
		sw_buf_addf(&b, "answer is not JSON: %s (%ld %s)", je.text, r->status,
			    kube_reason_phrase(r->status));
		op_fail(op, SW_ERR, b.ptr);
		sw_buf_release(&b);
		return;
	}
	if (op->type == OP_LIST) {
		const char *cont = kube_jstr(json_object_get(obj, "metadata"), "continue");
		const char *rv = kube_jstr(json_object_get(obj, "metadata"), "resourceVersion");
		list_add_items(op, obj);
		if (cont && *cont) {
			free(op->cont);
			op->cont = sw_strdup(cont);
			op->attempt = 0;
			json_decref(obj);
			op_advance(op);
			return;
		}
		json_t *list = json_pack("{s:s, s:s+, s:{s:s}, s:O}", "apiVersion",
					 op->api_version, "kind", op->kind, "List", "metadata",
					 "resourceVersion", rv ? rv : "", "items", op->items);
		json_decref(obj);
		obj = list;
	}
	op_finish(op, 0, r->status, NULL, NULL, obj, NULL);
	json_decref(obj);
}

/* ---- public operations ------------------------------------------------ */

static int op_common(struct sw_kube *k, enum op_type type, const char *api_version,
		     const char *kind, const char *ns, const char *name, sw_kube_done_fn cb,
		     void *arg, struct sw_kube_op **out, struct sw_kube_op **opp)
{
	struct sw_kube_op *op;

	if (out)
		*out = NULL;
	if (!api_version || !*api_version || !kind || !*kind)
		return sw_error_setc(SW_EINVALID, "kubernetes: apiVersion and kind are required");
	if ((type == OP_GET || type == OP_APPLY || type == OP_DELETE) && (!name || !*name))
		return sw_error_setc(SW_EINVALID, "%s %s: metadata.name is required", api_version,
				     kind);
	op = kube_op_new(k, type);
	op->api_version = sw_strdup(api_version);
	kube_split_api_version(api_version, &op->group, &op->version);
	op->kind = sw_strdup(kind);
	op->ns = sw_strdup(ns ? ns : "");
	op->name = sw_strdup(name ? name : "");
	op->cb = cb;
	op->arg = arg;
	if (out)
		*out = op;
	*opp = op;
	return 0;
}

int sw_kube_get(struct sw_kube *k, const char *api_version, const char *kind, const char *ns,
		const char *name, sw_kube_done_fn cb, void *arg, struct sw_kube_op **out)
{
	struct sw_kube_op *op;
	int rc = op_common(k, OP_GET, api_version, kind, ns, name, cb, arg, out, &op);
	if (rc < 0)
		return rc;
	kube_op_wake(op);
	return 0;
}

int sw_kube_list(struct sw_kube *k, const char *api_version, const char *kind, const char *ns,
		 const char *label_selector, sw_kube_done_fn cb, void *arg,
		 struct sw_kube_op **out)
{
	struct sw_kube_op *op;
	int rc = op_common(k, OP_LIST, api_version, kind, ns, NULL, cb, arg, out, &op);
	if (rc < 0)
		return rc;
	op->selector = label_selector ? sw_strdup(label_selector) : NULL;
	op->items = json_array();
	kube_op_wake(op);
	return 0;
}

int sw_kube_apply(struct sw_kube *k, const json_t *obj, int flags, sw_kube_done_fn cb,
		  void *arg, struct sw_kube_op **out)
{
	const json_t *meta = json_object_get(obj, "metadata");
	const char *av = kube_jstr(obj, "apiVersion"), *kind = kube_jstr(obj, "kind");
	const char *name = kube_jstr(meta, "name"), *ns = kube_jstr(meta, "namespace");
	struct sw_kube_op *op;
	json_t *body, *m;
	int rc;

	if (out)
		*out = NULL;
	if (!json_is_object(obj))
		return sw_error_setc(SW_EINVALID, "apply: not an object");
	if ((rc = op_common(k, OP_APPLY, av, kind, ns, name, cb, arg, out, &op)) < 0)
		return rc;
	/* What we do not own or the server rejects in an apply body. */
	body = json_deep_copy(obj);
	json_object_del(body, "status");
	m = json_object_get(body, "metadata");
	json_object_del(m, "managedFields");
	json_object_del(m, "resourceVersion");
	op->body = json_dumps(body, JSON_COMPACT);
	op->body_len = strlen(op->body);
	json_decref(body);
	op->method = "PATCH";
	op->content_type = "application/apply-patch+yaml";
	op->flags = flags;
	kube_op_wake(op);
	return 0;
}

int sw_kube_create(struct sw_kube *k, const json_t *obj, sw_kube_done_fn cb, void *arg,
		   struct sw_kube_op **out)
{
	const json_t *meta = json_object_get(obj, "metadata");
	struct sw_kube_op *op;
	int rc;

	if (out)
		*out = NULL;
	if (!json_is_object(obj))
		return sw_error_setc(SW_EINVALID, "create: not an object");
	if ((rc = op_common(k, OP_CREATE, kube_jstr(obj, "apiVersion"), kube_jstr(obj, "kind"),
			    kube_jstr(meta, "namespace"), NULL, cb, arg, out, &op)) < 0)
		return rc;
	op->body = json_dumps(obj, JSON_COMPACT);
	op->body_len = strlen(op->body);
	op->method = "POST";
	op->content_type = "application/json";
	kube_op_wake(op);
	return 0;
}

int sw_kube_delete(struct sw_kube *k, const char *api_version, const char *kind,
		   const char *ns, const char *name, sw_kube_done_fn cb, void *arg,
		   struct sw_kube_op **out)
{
	static const char opts[] =
		"{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\",\"propagationPolicy\":\"Background\"}";
	struct sw_kube_op *op;
	int rc = op_common(k, OP_DELETE, api_version, kind, ns, name, cb, arg, out, &op);
	if (rc < 0)
		return rc;
	op->method = "DELETE";
	op->content_type = "application/json";
	op->body = sw_strdup(opts);
	op->body_len = sizeof(opts) - 1;
	kube_op_wake(op);
	return 0;
}

/* ---- client ----------------------------------------------------------- */

int sw_kube_new(struct sw_kube **out, struct event_base *base, struct sw_kubeconfig *cfg,
		const struct sw_kube_opts *opts)
{
	struct sw_kube_opts def = SW_KUBE_OPTS_INIT;
	struct sw_kube *k;

	*out = NULL;
	if (!opts)
		opts = &def;
	if (!cfg || !opts->http) {
		sw_kubeconfig_free(cfg);
		return sw_error_setc(SW_EINVALID, "kubernetes client: needs a kubeconfig and an HTTP client");
	}
	k = sw_calloc(1, sizeof(*k));
	k->base = base;
	k->http = opts->http;
	k->procs = opts->procs;
	k->cfg = cfg;
	k->field_manager = sw_strdup(opts->field_manager ? opts->field_manager : "slipway");
	k->user_agent = sw_strdup(opts->user_agent ? opts->user_agent : "slipway");
	k->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : 5;
	k->backoff_ms = opts->backoff_ms > 0 ? opts->backoff_ms : 200;
	k->backoff_max_ms = opts->backoff_max_ms > 0 ? opts->backoff_max_ms : 10000;
	k->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
	k->exec_timeout_ms = opts->exec_timeout_ms > 0 ? opts->exec_timeout_ms : 30000;
	k->disc_interval_ms = opts->discovery_interval_ms > 0 ? opts->discovery_interval_ms : 5000;
	k->page_size = opts->list_page_size > 0 ? opts->list_page_size : 500;
	k->watch_timeout_s = opts->watch_timeout_s > 0 ? opts->watch_timeout_s : 300;
	k->max_inflight = opts->max_inflight > 0 ? opts->max_inflight : 32;
	if (!cfg->exec && !cfg->token_file) {
		k->bearer = cfg->token ? sw_strdup(cfg->token) : NULL;
		k->cred_valid = 1;
	}
	sw_buf_init(&k->exec_out);
	sw_buf_init(&k->exec_err);
	k->disc_timer = evtimer_new(base, kube_disc_timer_cb, k);
	if (!k->disc_timer)
		abort();
	*out = k;
	return 0;
}

void sw_kube_free(struct sw_kube *k)
{
	if (!k)
		return;
	while (k->watches)
		kube_watch_free(k->watches);
	while (k->ops)
		kube_op_free(k->ops);
	if (k->exec) {
		sw_proc_kill(k->exec);
		sw_proc_detach(k->exec);
	}
	event_free(k->disc_timer);
	kube_ents_free(k->ents, k->nents);
	kube_ents_free(k->nw, k->nnw);
	free(k->disc_error);
	free(k->bearer);
	free(k->cert_pem);
	free(k->key_pem);
	sw_buf_release(&k->exec_out);
	sw_buf_release(&k->exec_err);
	free(k->field_manager);
	free(k->user_agent);
	sw_kubeconfig_free(k->cfg);
	free(k);
}

const struct sw_kubeconfig *sw_kube_config(const struct sw_kube *k)
{
	return k->cfg;
}

void sw_kube_stats(const struct sw_kube *k, struct sw_kube_stats *out)
{
	*out = k->stats;
}
