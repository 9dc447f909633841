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
 * timers (op_wake), so each op continues from its own loop callback and a
 * user callback that cancels other ops can never leave a loop here holding
 * a freed op. The same rule makes "no callback before the starting function
 * returns" hold: sw_kube_get() and friends only arm the timer.
 *
 * Internal requests (discovery, watch streams) are ops too, with an
 * `internal` completion instead of a user callback, so they share the
 * credential, retry and 401 handling.
 */
#include "kube/kube.h"
#include "kube/kube-int.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/http.h"
#include "lib/log.h"
#include "lib/proc.h"

extern char **environ;

/* Largest exec plugin output we read, and largest watch event line. */
#define EXEC_MAX_OUTPUT (1u << 20)
#define WATCH_MAX_LINE (64u << 20)
/* Expired continue tokens: restart a list at most this often. */
#define LIST_MAX_RESTARTS 5
/* Longest Retry-After we honour as given. */
#define RETRY_AFTER_MAX_MS 60000
/* tokenFile is re-read after this long (client-go: one minute). */
#define TOKEN_FILE_TTL_MS 60000

enum op_type { OP_RAW, OP_GET, OP_LIST, OP_APPLY, OP_DELETE, OP_WATCH };
enum op_state { ST_NEW, ST_DISC, ST_CRED, ST_QUEUED, ST_FLIGHT, ST_RETRY };

struct disc_ent {
	char *group, *version, *kind, *plural;
	int namespaced;
};

struct sw_kube_op;
typedef void (*op_internal_fn)(struct sw_kube_op *op, struct sw_http_result *r);

struct sw_kube_op {
	struct sw_kube *k;
	struct sw_kube_op *prev, *next;
	enum op_type type;
	enum op_state state;

	/* what it is about */
	char *api_version, *group, *version, *kind, *ns, *name;
	char *selector;
	int flags;
	int resolved, namespaced;
	char *plural;
	char *path;              /* request path and query (RAW: given) */
	const char *method;
	const char *content_type;
	char *body;
	size_t body_len;

	/* list paging */
	json_t *items;
	char *cont;
	int restarts;

	/* progress */
	unsigned disc_want;      /* the discovery run that must finish first */
	int attempt;             /* requests sent for the current page */
	int auth_retried;
	unsigned cred_gen;       /* credential generation the request used */
	char *pending_error;     /* fail with this when woken */
	int pending_code;
	struct sw_http_call *call;
	struct event *timer;
	int finishing;
	int slot;                /* holds one of k->max_inflight request slots */
	struct sw_kube_op *qprev, *qnext;  /* waiting for a slot (ST_QUEUED) */

	/* completion */
	sw_kube_done_fn cb;
	void *arg;
	op_internal_fn internal; /* instead of cb, for requests of our own */
	sw_http_data_fn on_data; /* streams */
	void *iarg;
	int got_data;
};

struct sw_kube_watch {
	struct sw_kube *k;
	struct sw_kube_watch *prev, *next;
	char *api_version, *kind, *ns, *selector;
	char *rv;
	sw_kube_event_fn cb;
	void *arg;
	struct sw_kube_op *list_op;
	struct sw_kube_op *stream;
	struct event *timer;
	struct sw_buf line;
	int in_cb, stopped;
	int relist;              /* the stream said 410: relist when it ends */
	int errored;             /* the stream ended on an ERROR event */
	int fails;               /* consecutive failures, for backoff */
	int64_t stream_start;
	int events;              /* events on the current stream */
};

struct sw_kube {
	struct event_base *base;
	struct sw_http *http;
	struct sw_proc_mgr *procs;
	struct sw_kubeconfig *cfg;
	char *field_manager, *user_agent;
	int max_attempts;
	long backoff_ms, backoff_max_ms, timeout_ms, exec_timeout_ms;
	long disc_interval_ms, page_size, watch_timeout_s;

	/* credentials */
	char *bearer;            /* current token, or NULL */
	char *cert_pem, *key_pem;/* from the exec plugin */
	int cred_valid;
	int64_t cred_expiry_ms;  /* wall clock; 0 = never */
	unsigned cred_gen;
	int64_t token_read_ms;   /* monotonic time tokenFile was read */
	struct sw_proc *exec;
	struct sw_buf exec_out, exec_err;

	/* discovery */
	struct disc_ent *ents;
	size_t nents, capents;
	struct disc_ent *nw;     /* the table a running discovery builds */
	size_t nnw, capnw;
	unsigned disc_started, disc_completed;
	int disc_running, disc_outstanding;
	char *disc_error;        /* first failure of the running discovery */
	int64_t disc_last_start;
	struct event *disc_timer;

	struct sw_kube_op *ops;
	size_t nops;
	/* requests in flight (not watches, not discovery) and those waiting */
	int max_inflight, inflight;
	struct sw_kube_op *qhead, *qtail;
	struct sw_kube_watch *watches;
	struct sw_kube_stats stats;
};

static void op_advance(struct sw_kube_op *op);
static void op_send(struct sw_kube_op *op);
static void disc_request(struct sw_kube *k);
static void watch_connect(struct sw_kube_watch *w);

/* ---- small helpers ---------------------------------------------------- */

static const char *jstr(const json_t *o, const char *key)
{
	const json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *reason_phrase(long code)
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

static void split_api_version(const char *av, char **group, char **version)
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

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void base64_add(struct sw_buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		sw_buf_addch(b, b64chars[(v >> 18) & 63]);
		sw_buf_addch(b, b64chars[(v >> 12) & 63]);
		sw_buf_addch(b, i + 1 < n ? b64chars[(v >> 6) & 63] : '=');
		sw_buf_addch(b, i + 2 < n ? b64chars[v & 63] : '=');
	}
}

int sw_kube_parse_time(const char *s, int64_t *ms)
{
	struct tm tm;
	int frac_ms = 0, off = 0;
	const char *p;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (!s || !(p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)))
		if (!s || !(p = strptime(s, "%Y-%m-%dt%H:%M:%S", &tm)))
			return SW_EINVALID;
	if (*p == '.') {
		int digits = 0;
		p++;
		if (!isdigit((unsigned char)*p))
			return SW_EINVALID;
		while (isdigit((unsigned char)*p)) {
			if (digits < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
			digits++;
			p++;
		}
		for (; digits < 3; digits++)
			frac_ms *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
		   isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
		   isdigit((unsigned char)p[5])) {
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 + ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
		if (*p == '-')
			off = -off;
		p += 6;
	} else {
		return SW_EINVALID;
	}
	if (*p)
		return SW_EINVALID;
	t = timegm(&tm);
	*ms = ((int64_t)t - off) * 1000 + frac_ms;
	return 0;
}

/* ---- ops: life cycle -------------------------------------------------- */

static void op_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	op_advance(arg);
}

static struct sw_kube_op *op_new(struct sw_kube *k, enum op_type type)
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

static void op_free(struct sw_kube_op *op)
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

static void op_wake(struct sw_kube_op *op)
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
	op_free(op);
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
	if (st && (m = jstr(st, "message")) && *m) {
		reason = jstr(st, "reason");
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
	sw_buf_addf(&b, " (%ld %s)", r->status, reason_phrase(r->status));
	op_finish(op, code_for_status(r->status), r->status, reason, st, NULL, b.ptr);
	json_decref(st);
	sw_buf_release(&b);
}

void sw_kube_cancel(struct sw_kube_op *op)
{
	if (!op || op->finishing)
		return;
	op_free(op);
}

size_t sw_kube_pending(const struct sw_kube *k)
{
	return k->nops;
}

/* ---- credentials ------------------------------------------------------ */

static int have_exec(const struct sw_kube *k)
{
	return k->cfg->exec != NULL;
}

/* Usable credentials right now? Reads tokenFile when due. */
static int cred_ready(struct sw_kube *k, char **err)
{
	*err = NULL;
	if (have_exec(k)) {
		if (!k->cred_valid)
			return 0;
		if (k->cred_expiry_ms && sw_now_ms() >= k->cred_expiry_ms) {
			k->cred_valid = 0;
			log_debug("kube.exec.expired", "context=%s", sw_q(k->cfg->context));
			return 0;
		}
		return 1;
	}
	if (k->cfg->token_file &&
	    (!k->cred_valid || sw_mono_ms() - k->token_read_ms >= TOKEN_FILE_TTL_MS)) {
		struct sw_buf b = SW_BUF_INIT;
		/* A small local file: reading it is as quick as a syscall gets. */
		if (sw_buf_read_file(&b, k->cfg->token_file) < 0) {
			*err = sw_asprintf("tokenFile: %s", sw_error_last());
			sw_buf_release(&b);
			return 0;
		}
		while (b.len && isspace((unsigned char)b.ptr[b.len - 1]))
			sw_buf_truncate(&b, b.len - 1);
		free(k->bearer);
		k->bearer = sw_buf_detach(&b, NULL);
		k->cred_valid = 1;
		k->cred_gen++;
		k->token_read_ms = sw_mono_ms();
	}
	return 1;
}

static void exec_output(int stream, const char *p, size_t n, void *arg)
{
	struct sw_kube *k = arg;
	struct sw_buf *b = stream == SW_PROC_STDOUT ? &k->exec_out : &k->exec_err;
	size_t max = stream == SW_PROC_STDOUT ? EXEC_MAX_OUTPUT : 8192;
	if (b->len + n > max)
		n = b->len < max ? max - b->len : 0;
	sw_buf_add(b, p, n);
}

/* Wake every op waiting for credentials; with `err`, they fail with it. */
static void cred_wake(struct sw_kube *k, const char *err)
{
	for (struct sw_kube_op *op = k->ops; op; op = op->next) {
		if (op->state != ST_CRED)
			continue;
		if (err && !op->pending_error) {
			op->pending_error = sw_strdup(err);
			op->pending_code = SW_ERR;
		}
		op_wake(op);
	}
}

/* Parse the plugin's ExecCredential; 0 or <0 with a message in *err. */
int sw_kube_exec_cred_parse(struct sw_kube_cred *out, const char *text, size_t len,
			    const char *api_version, char **err)
{
	json_error_t je;
	json_t *ec = json_loadb(text, len, 0, &je);
	const json_t *st;
	const char *av, *kind, *tok, *cert, *key, *exp;
	int64_t exp_ms = 0;
	int rc = SW_ERR;

	*err = NULL;
	memset(out, 0, sizeof(*out));
	if (!ec) {
		*err = sw_asprintf("output is not JSON: %s (line %d)", je.text, je.line);
		goto done;
	}
	av = jstr(ec, "apiVersion");
	kind = jstr(ec, "kind");
	if (!kind || strcmp(kind, "ExecCredential") != 0) {
		*err = sw_asprintf("output is not an ExecCredential (kind %s)", kind ? kind : "missing");
		goto done;
	}
	if (!av || strcmp(av, api_version) != 0) {
		*err = sw_asprintf("ExecCredential apiVersion %s, configured %s", av ? av : "missing",
				   api_version);
		goto done;
	}
	st = json_object_get(ec, "status");
	tok = jstr(st, "token");
	cert = jstr(st, "clientCertificateData");
	key = jstr(st, "clientKeyData");
	exp = jstr(st, "expirationTimestamp");
	if ((!tok || !*tok) && !(cert && *cert && key && *key)) {
		*err = sw_strdup("ExecCredential has neither status.token nor "
				 "status.clientCertificateData and clientKeyData");
		goto done;
	}
	if (!!(cert && *cert) != !!(key && *key)) {
		*err = sw_strdup("ExecCredential has only one of clientCertificateData and clientKeyData");
		goto done;
	}
	if (exp && *exp && sw_kube_parse_time(exp, &exp_ms) < 0) {
		*err = sw_asprintf("ExecCredential expirationTimestamp %s is not RFC 3339", exp);
		goto done;
	}
	out->bearer = tok && *tok ? sw_strdup(tok) : NULL;
	out->cert_pem = cert && *cert ? sw_strdup(cert) : NULL;
	out->key_pem = key && *key ? sw_strdup(key) : NULL;
	out->expiry_ms = exp_ms;
	rc = 0;
done:
	json_decref(ec);
	return rc;
}

static int exec_parse(struct sw_kube *k, char **err)
{
	struct sw_kube_cred c;
	if (sw_kube_exec_cred_parse(&c, k->exec_out.ptr, k->exec_out.len,
				    k->cfg->exec->api_version, err) < 0)
		return SW_ERR;
	free(k->bearer);
	free(k->cert_pem);
	free(k->key_pem);
	k->bearer = c.bearer;
	k->cert_pem = c.cert_pem;
	k->key_pem = c.key_pem;
	k->cred_expiry_ms = c.expiry_ms;
	k->cred_valid = 1;
	k->cred_gen++;
	return 0;
}

static void exec_exited(const struct sw_proc_result *r, void *arg)
{
	struct sw_kube *k = arg;
	const struct sw_kube_exec *x = k->cfg->exec;
	struct sw_buf msg = SW_BUF_INIT;
	char *perr = NULL;

	k->exec = NULL;
	k->stats.exec_runs++;
	if (r->error) {
		sw_buf_addf(&msg, "exec plugin: %s", r->error_msg);
		if (x->install_hint)
			sw_buf_addf(&msg, " (%s)", x->install_hint);
	} else if (r->timed_out) {
		sw_buf_addf(&msg, "exec plugin %s: no answer within %ld ms", x->command,
			    k->exec_timeout_ms);
	} else if (!r->exited || r->exit_code != 0) {
		/* The last line of stderr usually says why. */
		while (k->exec_err.len && isspace((unsigned char)k->exec_err.ptr[k->exec_err.len - 1]))
			sw_buf_truncate(&k->exec_err, k->exec_err.len - 1);
		const char *last = strrchr(k->exec_err.ptr, '\n');
		last = last ? last + 1 : k->exec_err.ptr;
		if (r->exited)
			sw_buf_addf(&msg, "exec plugin %s exited with code %d", x->command, r->exit_code);
		else
			sw_buf_addf(&msg, "exec plugin %s killed by signal %d", x->command, r->signal);
		if (*last)
			sw_buf_addf(&msg, ": %s", last);
	} else if (exec_parse(k, &perr) < 0) {
		sw_buf_addf(&msg, "exec plugin %s: %s", x->command, perr);
	}
	free(perr);
	sw_buf_reset(&k->exec_out);
	sw_buf_reset(&k->exec_err);
	if (msg.len)
		log_warn("kube.exec.fail", "context=%s err=%s", sw_q(k->cfg->context), sw_q(msg.ptr));
	else
		log_debug("kube.exec.ok", "context=%s expiry_ms=%lld", sw_q(k->cfg->context),
			  (long long)k->cred_expiry_ms);
	cred_wake(k, msg.len ? msg.ptr : NULL);
	sw_buf_release(&msg);
}

/* KUBERNETES_EXEC_INFO: the ExecCredential the plugin is asked for. */
static char *exec_info(const struct sw_kube *k)
{
	const struct sw_kubeconfig *c = k->cfg;
	json_t *spec = json_pack("{s:b}", "interactive", 0);
	json_t *info;
	char *s;

	if (c->exec->provide_cluster_info) {
		json_t *cl = json_pack("{s:s}", "server", c->server);
		if (c->tls_server_name)
			json_object_set_new(cl, "tls-server-name", json_string(c->tls_server_name));
		if (c->insecure)
			json_object_set_new(cl, "insecure-skip-tls-verify", json_true());
		if (c->ca_pem) {
			struct sw_buf b = SW_BUF_INIT;
			base64_add(&b, c->ca_pem, strlen(c->ca_pem));
			json_object_set_new(cl, "certificate-authority-data", json_string(b.ptr));
			sw_buf_release(&b);
		}
		json_object_set_new(spec, "cluster", cl);
	}
	info = json_pack("{s:s, s:s, s:o}", "apiVersion", c->exec->api_version, "kind",
			 "ExecCredential", "spec", spec);
	s = json_dumps(info, JSON_COMPACT);
	json_decref(info);
	return s;
}

static int exec_start(struct sw_kube *k, char **err)
{
	const struct sw_kube_exec *x = k->cfg->exec;
	struct sw_proc_opts o = SW_PROC_OPTS_INIT;
	const char **argv, **env;
	char *info, *info_var;
	size_t nargs = 0, nenv = 0, nx = 0, i, j;
	int rc;

	*err = NULL;
	if (k->exec)
		return 0;
	if (!k->procs) {
		*err = sw_strdup("exec plugin: the client has no process manager");
		return SW_ERR;
	}
	while (x->args[nargs])
		nargs++;
	while (environ && environ[nenv])
		nenv++;
	while (x->env[nx])
		nx++;
	argv = sw_calloc(nargs + 2, sizeof(*argv));
	argv[0] = x->command;
	for (i = 0; i < nargs; i++)
		argv[i + 1] = x->args[i];

	/* The daemon's environment, the plugin's env on top, then ours. */
	info = exec_info(k);
	info_var = sw_asprintf("KUBERNETES_EXEC_INFO=%s", info);
	env = sw_calloc(nenv + nx + 2, sizeof(*env));
	j = 0;
	for (i = 0; i < nenv; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t nl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		int overridden = nl == 20 && strncmp(environ[i], "KUBERNETES_EXEC_INFO", 20) == 0;
		for (size_t m = 0; !overridden && m < nx; m++)
			overridden = strncmp(x->env[m], environ[i], nl) == 0 && x->env[m][nl] == '=';
		if (!overridden)
			env[j++] = environ[i];
	}
	for (i = 0; i < nx; i++)
		env[j++] = x->env[i];
	env[j++] = info_var;
	env[j] = NULL;

	o.argv = argv;
	o.env = env;
	o.timeout_ms = k->exec_timeout_ms;
	o.on_output = exec_output;
	o.on_exit = exec_exited;
	o.arg = k;
	sw_buf_reset(&k->exec_out);
	sw_buf_reset(&k->exec_err);
	rc = sw_proc_spawn(k->procs, &o, &k->exec);
	if (rc < 0)
		*err = sw_asprintf("exec plugin %s: %s", x->command, sw_error_last());
	else
		log_debug("kube.exec.run", "context=%s command=%s", sw_q(k->cfg->context),
			  sw_q(x->command));
	free(argv);
	free(env);
	free(info);
	free(info_var);
	return rc;
}

/* ---- discovery -------------------------------------------------------- */

static void ents_free(struct disc_ent *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].group);
		free(e[i].version);
		free(e[i].kind);
		free(e[i].plural);
	}
	free(e);
}

static const struct disc_ent *disc_find(const struct sw_kube *k, const char *group,
					const char *version, const char *kind)
{
	for (size_t i = 0; i < k->nents; i++) {
		const struct disc_ent *e = &k->ents[i];
		if (strcmp(e->kind, kind) == 0 && strcmp(e->version, version) == 0 &&
		    strcmp(e->group, group) == 0)
			return e;
	}
	return NULL;
}

int sw_kube_lookup(struct sw_kube *k, const char *api_version, const char *kind,
		   struct sw_kube_resource *out)
{
	char *g, *v;
	const struct disc_ent *e;

	split_api_version(api_version, &g, &v);
	e = disc_find(k, g, v, kind);
	free(g);
	free(v);
	if (!e)
		return sw_error_setc(SW_ENOTFOUND, "no kind %s in %s known", kind, api_version);
	out->group = e->group;
	out->version = e->version;
	out->kind = e->kind;
	out->plural = e->plural;
	out->namespaced = e->namespaced;
	return 0;
}

size_t sw_kube_resources(struct sw_kube *k,
			 void (*fn)(const struct sw_kube_resource *r, void *arg), void *arg)
{
	for (size_t i = 0; fn && i < k->nents; i++) {
		struct sw_kube_resource r = { k->ents[i].group, k->ents[i].version,
					      k->ents[i].kind, k->ents[i].plural,
					      k->ents[i].namespaced };
		fn(&r, arg);
	}
	return k->nents;
}

static void disc_fail(struct sw_kube *k, const char *msg)
{
	if (!k->disc_error)
		k->disc_error = sw_strdup(msg);
}

static void disc_finish(struct sw_kube *k)
{
	unsigned run = k->disc_started;

	k->disc_running = 0;
	k->disc_completed = run;
	if (k->disc_error) {
		log_warn("kube.discovery.fail", "context=%s err=%s", sw_q(k->cfg->context),
			 sw_q(k->disc_error));
		ents_free(k->nw, k->nnw);
	} else {
		ents_free(k->ents, k->nents);
		k->ents = k->nw;
		k->nents = k->nnw;
		k->capents = k->capnw;
		k->stats.discoveries++;
		log_debug("kube.discovery", "context=%s kinds=%zu", sw_q(k->cfg->context), k->nents);
	}
	k->nw = NULL;
	k->nnw = k->capnw = 0;
	for (struct sw_kube_op *op = k->ops; op; op = op->next) {
		if (op->state != ST_DISC)
			continue;
		if (k->disc_error && op->disc_want <= run && !op->pending_error) {
			op->pending_error = sw_asprintf("discovery: %s", k->disc_error);
			op->pending_code = SW_ERR;
		}
		op_wake(op);
	}
	free(k->disc_error);
	k->disc_error = NULL;
}

static void disc_one_done(struct sw_kube *k)
{
	if (--k->disc_outstanding == 0)
		disc_finish(k);
}

static struct sw_kube_op *disc_get(struct sw_kube *k, const char *path, op_internal_fn fn,
				   const char *group, const char *version);

/* An APIResourceList: kinds of one group/version. */
static void disc_gv_done(struct sw_kube_op *op, struct sw_http_result *r)
{
	struct sw_kube *k = op->k;
	json_t *list = NULL, *res, *it;
	size_t i;

	if (r->error || r->status != 200 ||
	    !(list = json_loadb(r->body->ptr, r->body->len, 0, NULL))) {
		/* One broken group (an aggregated API that is down) must not
		 * take the others with it: skip it, as kubectl does. */
		log_warn("kube.discovery.skip", "path=%s status=%ld err=%s", sw_q(op->path),
			 r->status, sw_q(r->error_msg));
		goto done;
	}
	res = json_object_get(list, "resources");
	json_array_foreach(res, i, it) {
		const char *name = jstr(it, "name"), *kind = jstr(it, "kind");
		json_t *nsd = json_object_get(it, "namespaced");
		struct disc_ent *e;
		if (!name || !kind || strchr(name, '/'))
			continue;    /* subresources: deployments/status, pods/log */
		if (k->nnw == k->capnw) {
			k->capnw = k->capnw ? 2 * k->capnw : 64;
			k->nw = sw_realloc(k->nw, k->capnw * sizeof(*k->nw));
		}
		e = &k->nw[k->nnw++];
		e->group = sw_strdup(op->group);
		e->version = sw_strdup(op->version);
		e->kind = sw_strdup(kind);
		e->plural = sw_strdup(name);
		e->namespaced = json_is_true(nsd);
	}
done:
	json_decref(list);
	op_free(op);
	disc_one_done(k);
}

/* /api (APIVersions) or /apis (APIGroupList): fetch every group/version. */
static void disc_root_done(struct sw_kube_op *op, struct sw_http_result *r)
{
	struct sw_kube *k = op->k;
	int core = strcmp(op->path, "/api") == 0;
	json_t *root = NULL, *arr, *it;
	size_t i;

	if (r->error || r->status != 200) {
		struct sw_buf b = SW_BUF_INIT;
		json_t *st = r->body->len ? json_loadb(r->body->ptr, r->body->len, 0, NULL) : NULL;
		const char *m = jstr(st, "message");
		if (r->error)
			sw_buf_addf(&b, "GET %s: %s", op->path, r->error_msg);
		else
			sw_buf_addf(&b, "GET %s: %s%s(%ld %s)", op->path, m ? m : "", m ? " " : "",
				    r->status, reason_phrase(r->status));
		json_decref(st);
		disc_fail(k, b.ptr);
		sw_buf_release(&b);
		goto done;
	}
	if (!(root = json_loadb(r->body->ptr, r->body->len, 0, NULL))) {
		disc_fail(k, core ? "GET /api: not JSON" : "GET /apis: not JSON");
		goto done;
	}
	if (core) {
		arr = json_object_get(root, "versions");
		json_array_foreach(arr, i, it) {
			char *p;
			if (!json_is_string(it))
				continue;
			p = sw_asprintf("/api/%s", json_string_value(it));
			disc_get(k, p, disc_gv_done, "", json_string_value(it));
			free(p);
		}
	} else {
		arr = json_object_get(root, "groups");
		json_array_foreach(arr, i, it) {
			json_t *vs = json_object_get(it, "versions"), *v;
			const char *g = jstr(it, "name");
			size_t j;
			if (!g)
				continue;
			json_array_foreach(vs, j, v) {
				const char *ver = jstr(v, "version");
				char *p;
				if (!ver)
					continue;
				p = sw_asprintf("/apis/%s/%s", g, ver);
				disc_get(k, p, disc_gv_done, g, ver);
				free(p);
			}
		}
	}
done:
	json_decref(root);
	op_free(op);
	disc_one_done(k);
}

static struct sw_kube_op *disc_get(struct sw_kube *k, const char *path, op_internal_fn fn,
				   const char *group, const char *version)
{
	struct sw_kube_op *op = op_new(k, OP_RAW);
	op->path = sw_strdup(path);
	op->internal = fn;
	op->group = sw_strdup(group);
	op->version = sw_strdup(version);
	k->disc_outstanding++;
	op_wake(op);
	return op;
}

static void disc_start(struct sw_kube *k)
{
	k->disc_started++;
	k->disc_running = 1;
	k->disc_last_start = sw_mono_ms();
	k->disc_outstanding = 1;    /* held until both roots are queued */
	disc_get(k, "/api", disc_root_done, "", "");
	disc_get(k, "/apis", disc_root_done, "", "");
	disc_one_done(k);
}

static void disc_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sw_kube *k = arg;
	if (!k->disc_running)
		disc_start(k);
}

/* Start a discovery now, or when the interval allows. */
static void disc_request(struct sw_kube *k)
{
	int64_t since;
	long wait;
	struct timeval tv;

	if (k->disc_running || evtimer_pending(k->disc_timer, NULL))
		return;
	since = sw_mono_ms() - k->disc_last_start;
	/* The interval protects a server we know from refresh storms; until
	 * one discovery succeeded there is nothing to refresh, only to get. */
	if (k->stats.discoveries == 0 || since >= k->disc_interval_ms) {
		disc_start(k);
		return;
	}
	wait = k->disc_interval_ms - (long)since;
	tv.tv_sec = wait / 1000;
	tv.tv_usec = (wait % 1000) * 1000;
	evtimer_add(k->disc_timer, &tv);
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
	e = disc_find(k, op->group, op->version, op->kind);
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
	disc_request(k);
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
		op_wake(next);
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
	if (!cred_ready(k, &err)) {
		if (err) {
			op_fail(op, SW_ERR, err);
			free(err);
			return;
		}
		op->state = ST_CRED;
		if (exec_start(k, &err) < 0) {
			op_fail(op, SW_ERR, err);
			free(err);
		}
		return;
	}
	op_send(op);
}

static long backoff_delay(const struct sw_kube *k, int attempt)
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
		long d = backoff_delay(k, op->attempt);
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
	    (have_exec(k) || k->cfg->token_file)) {
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
	if ((op->type == OP_LIST || op->type == OP_APPLY) && r->body->len)
		sw_buf_truncate(r->body, sw_kube_strip_managed_fields(r->body->ptr, r->body->len));
	obj = json_loadb(r->body->ptr, r->body->len, 0, &je);
	if (!obj) {
		struct sw_buf b = SW_BUF_INIT;
		sw_buf_addf(&b, "answer is not JSON: %s (%ld %s)", je.text, r->status,
			    reason_phrase(r->status));
		op_fail(op, SW_ERR, b.ptr);
		sw_buf_release(&b);
		return;
	}
	if (op->type == OP_LIST) {
		const char *cont = jstr(json_object_get(obj, "metadata"), "continue");
		const char *rv = jstr(json_object_get(obj, "metadata"), "resourceVersion");
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
	op = op_new(k, type);
	op->api_version = sw_strdup(api_version);
	split_api_version(api_version, &op->group, &op->version);
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
	op_wake(op);
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
	op_wake(op);
	return 0;
}

int sw_kube_apply(struct sw_kube *k, const json_t *obj, int flags, sw_kube_done_fn cb,
		  void *arg, struct sw_kube_op **out)
{
	const json_t *meta = json_object_get(obj, "metadata");
	const char *av = jstr(obj, "apiVersion"), *kind = jstr(obj, "kind");
	const char *name = jstr(meta, "name"), *ns = jstr(meta, "namespace");
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
	op_wake(op);
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
	op_wake(op);
	return 0;
}

/* ---- watches ---------------------------------------------------------- */

static void watch_free(struct sw_kube_watch *w)
{
	struct sw_kube *k = w->k;

	if (w->list_op)
		sw_kube_cancel(w->list_op);
	if (w->stream)
		op_free(w->stream);
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
		watch_free(w);
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
	return backoff_delay(w->k, w->fails);
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
	rv = jstr(json_object_get(r->obj, "metadata"), "resourceVersion");
	watch_set_rv(w, rv);
	if (watch_emit(w, SW_KUBE_SYNC, r->obj, NULL))
		return;
	watch_connect(w);
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
		watch_connect(w);
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
	type = jstr(ev, "type");
	obj = json_object_get(ev, "object");
	rv = jstr(json_object_get(obj, "metadata"), "resourceVersion");
	if (!type) {
		/* not an event: skip it */
	} else if (strcmp(type, "ERROR") == 0) {
		json_t *code = json_object_get(obj, "code");
		const char *m = jstr(obj, "message");
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
		const char *m = jstr(st, "message");
		sw_buf_addf(&msg, "%s %s watch", w->api_version, w->kind);
		if (w->ns && *w->ns)
			sw_buf_addf(&msg, " in %s", w->ns);
		if (r->error)
			sw_buf_addf(&msg, ": %s", r->error_msg);
		else
			sw_buf_addf(&msg, ": %s (%ld %s)", m ? m : "no message", r->status,
				    reason_phrase(r->status));
		json_decref(st);
	}
	w->stream = NULL;
	op_free(op);
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
		watch_connect(w);
	}
	sw_buf_release(&msg);
}

static void watch_connect(struct sw_kube_watch *w)
{
	struct sw_kube_op *op = op_new(w->k, OP_WATCH);

	op->api_version = sw_strdup(w->api_version);
	split_api_version(w->api_version, &op->group, &op->version);
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
	op_wake(op);
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
	watch_free(w);
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
	k->disc_timer = evtimer_new(base, disc_timer_cb, k);
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
		watch_free(k->watches);
	while (k->ops)
		op_free(k->ops);
	if (k->exec) {
		sw_proc_kill(k->exec);
		sw_proc_detach(k->exec);
	}
	event_free(k->disc_timer);
	ents_free(k->ents, k->nents);
	ents_free(k->nw, k->nnw);
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
