/*
 * api.c - the JSON API, /api/v1/... (see docs/api.md).
 *
 * Every answer is a JSON object; errors are {"error": MSG, "status": CODE}.
 * Handlers run on the loop and read storage through indexed queries only.
 * Times are integers, milliseconds since the Unix epoch, or null for "not
 * yet". Environment actions (sync, rollback, diff) go through
 * d->actions (daemon.h), which the sync engine fills in.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/audit-int.h"
#include "daemon/auth-int.h"
#include "daemon/tokens-int.h"
#include "daemon/daemon.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/utf8.h"
#include "pipeline/pipeline.h"
#include "storage/store.h"

#define LIST_DEFAULT 50
#define LIST_MAX 500
#define LOG_DEFAULT (64 * 1024)
#define LOG_MAX (1024 * 1024)
#define BODY_MAX (64 * 1024)
#define MAX_SEGS 6

/* --- small helpers ---------------------------------------------------------- */

static json_t *jstr(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *jtime(int64_t ms)
{
	return ms > 0 ? json_integer(ms) : json_null();
}

static json_t *jid(int64_t id)
{
	return id > 0 ? json_integer(id) : json_null();
}

static json_t *jduration(int64_t start, int64_t end)
{
	return start > 0 && end >= start ? json_integer(end - start) : json_null();
}

/* Strict decimal: the whole string, within [min, max]. */
static int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	if (!s || !*s || !(isdigit((unsigned char)*s) || *s == '-'))
		return SW_EINVALID;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return SW_EINVALID;
	*out = v;
	return 0;
}

/* Reply for a failed storage or engine call, from its code and the slot. */
static void reply_rc(struct evhttp_request *req, int rc, const char *msg)
{
	int code = rc == SW_ENOTFOUND ? 404 : rc == SW_EINVALID ? 400 :
		rc == SW_EEXISTS || rc == SW_EAGAIN ? 409 : 500;
	sw_reply_error(req, code, "%s", msg && *msg ? msg : "internal error");
}

static void reply_store_error(struct evhttp_request *req, int rc)
{
	if (rc != SW_ENOTFOUND && rc != SW_EINVALID)
		log_error("api.storage", "uri=%s err=%s", sw_q(evhttp_request_get_uri(req)),
			  sw_q(sw_error_last()));
	reply_rc(req, rc, sw_error_last());
}

/* The query string as key/values; release with evhttp_clear_headers(). */
static void query_of(struct evhttp_request *req, struct evkeyvalq *q)
{
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *s = u ? evhttp_uri_get_query(u) : NULL;
	TAILQ_INIT(q);
	if (s)
		evhttp_parse_query_str(s, q);
}

/* A "limit" style parameter: absent = def; else 1..max or a 400 (returns <0). */
static int param_int(struct evhttp_request *req, struct evkeyvalq *q, const char *name,
		     int64_t def, int64_t min, int64_t max, int64_t *out)
{
	const char *v = evhttp_find_header(q, name);
	*out = def;
	if (!v)
		return 0;
	if (parse_i64(v, min, max, out) < 0) {
		sw_reply_error(req, 400, "%s: expected an integer from %lld to %lld, found '%s'", name,
			       (long long)min, (long long)max, v);
		return SW_EINVALID;
	}
	return 0;
}

/* Split `rest` at '/' into percent-decoded segments; returns the count, or
 * -1 when there are too many or one is empty. Free with free_segs(). */
static int split_path(const char *rest, char *segs[MAX_SEGS])
{
	int n = 0;
	const char *p = rest;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (!len || n == MAX_SEGS)
			goto bad;
		char *raw = sw_strndup(p, len);
		segs[n] = evhttp_uridecode(raw, 0, NULL);
		free(raw);
		if (!segs[n] || !*segs[n] || strchr(segs[n], '/'))
			goto bad1;
		n++;
		p += len;
		if (*p == '/' && !*++p)
			break;   /* a trailing slash is fine */
	}
	return n;
bad1:
	n++;
bad:
	for (int i = 0; i < n; i++)
		free(segs[i]);
	return -1;
}

static void free_segs(char *segs[], int n)
{
	for (int i = 0; i < n; i++)
		free(segs[i]);
}

/* --- JSON of storage rows ---------------------------------------------------- */

static json_t *run_json(const struct sw_store_run *r)
{
	json_t *j = json_object();
	json_object_set_new(j, "id", json_integer(r->id));
	json_object_set_new(j, "kind", json_string(sw_store_run_kind_str(r->kind)));
	json_object_set_new(j, "status", json_string(sw_store_status_str(r->status)));
	json_object_set_new(j, "reason", jstr(r->reason));
	json_object_set_new(j, "repo", jstr(r->repo));
	json_object_set_new(j, "ref", jstr(r->ref));
	json_object_set_new(j, "branch", jstr(r->branch));
	json_object_set_new(j, "commit", jstr(r->commit_sha));
	json_object_set_new(j, "pr_number", jid(r->pr_number));
	json_object_set_new(j, "pr_title", jstr(r->pr_title));
	json_object_set_new(j, "author", jstr(r->author));
	json_object_set_new(j, "message", jstr(r->message));
	json_object_set_new(j, "environment", jstr(r->environment));
	json_object_set_new(j, "attempt", json_integer(r->attempt));
	json_object_set_new(j, "delivery_id", jid(r->delivery_id));
	json_object_set_new(j, "superseded_by", jid(r->superseded_by));
	json_object_set_new(j, "created_at", jtime(r->created_at));
	json_object_set_new(j, "started_at", jtime(r->started_at));
	json_object_set_new(j, "finished_at", jtime(r->finished_at));
	json_object_set_new(j, "duration_ms", jduration(r->started_at, r->finished_at));
	return j;
}

static json_t *stage_json(struct sw_store *st, const struct sw_store_stage *s)
{
	json_t *j = json_object();
	int64_t size = 0;
	sw_store_log_size(st, s->id, &size);
	json_object_set_new(j, "id", json_integer(s->id));
	json_object_set_new(j, "idx", json_integer(s->idx));
	json_object_set_new(j, "name", jstr(s->name));
	json_object_set_new(j, "image", jstr(s->image));
	json_object_set_new(j, "status", json_string(sw_store_status_str(s->status)));
	json_object_set_new(j, "exit_code", s->exit_code >= 0 ? json_integer(s->exit_code) : json_null());
	json_object_set_new(j, "reason", jstr(s->reason));
	json_object_set_new(j, "started_at", jtime(s->started_at));
	json_object_set_new(j, "finished_at", jtime(s->finished_at));
	json_object_set_new(j, "duration_ms", jduration(s->started_at, s->finished_at));
	json_object_set_new(j, "log_size", json_integer(size));
	return j;
}

static json_t *stages_json(struct sw_store *st, const struct sw_store_stage_list *l)
{
	json_t *a = json_array();
	for (size_t i = 0; i < l->n; i++)
		json_array_append_new(a, stage_json(st, &l->v[i]));
	return a;
}

static json_t *objref_json(json_t *j, const char *api_version, const char *kind,
			   const char *ns, const char *name)
{
	json_object_set_new(j, "api_version", jstr(api_version));
	json_object_set_new(j, "kind", jstr(kind));
	json_object_set_new(j, "namespace", jstr(ns && *ns ? ns : NULL));
	json_object_set_new(j, "name", jstr(name));
	return j;
}

static json_t *sync_json(const struct sw_store_sync *s, int with_objects)
{
	json_t *j = json_object();
	json_object_set_new(j, "id", json_integer(s->id));
	json_object_set_new(j, "environment", jstr(s->environment));
	json_object_set_new(j, "commit", jstr(s->commit_sha));
	json_object_set_new(j, "trigger", json_string(sw_store_sync_trigger_str(s->trigger)));
	json_object_set_new(j, "status", json_string(sw_store_sync_status_str(s->status)));
	json_object_set_new(j, "health", json_string(sw_store_health_str(s->health)));
	json_object_set_new(j, "started_at", jtime(s->started_at));
	json_object_set_new(j, "finished_at", jtime(s->finished_at));
	json_object_set_new(j, "duration_ms", jduration(s->started_at, s->finished_at));
	json_object_set_new(j, "message", jstr(s->message));
	json_object_set_new(j, "run_id", jid(s->run_id));
	json_t *outs = s->infra_outputs ? json_loads(s->infra_outputs, 0, NULL) : NULL;
	json_object_set_new(j, "infra_outputs", outs ? outs : json_null());
	if (with_objects) {
		json_t *a = json_array();
		for (size_t i = 0; i < s->nobjects; i++) {
			const struct sw_store_sync_object *o = &s->objects[i];
			json_t *oj = objref_json(json_object(), o->api_version, o->kind,
						 o->namespace, o->name);
			json_object_set_new(oj, "result", json_string(sw_store_object_result_str(o->result)));
			json_object_set_new(oj, "message", jstr(o->message));
			json_array_append_new(a, oj);
		}
		json_object_set_new(j, "objects", a);
	}
	return j;
}

static json_t *drift_json(const struct sw_store_drift *d)
{
	json_t *j = json_object();
	json_t *fields = d->fields ? json_loads(d->fields, 0, NULL) : NULL;
	json_object_set_new(j, "id", json_integer(d->id));
	json_object_set_new(j, "environment", jstr(d->environment));
	objref_json(j, d->api_version, d->kind, d->namespace, d->name);
	json_object_set_new(j, "fields", fields ? fields : jstr(d->fields));
	json_object_set_new(j, "manager", jstr(d->manager));
	json_object_set_new(j, "detected_at", jtime(d->detected_at));
	json_object_set_new(j, "action", json_string(sw_store_drift_action_str(d->action)));
	json_object_set_new(j, "message", jstr(d->message));
	json_object_set_new(j, "sync_id", jid(d->sync_id));
	return j;
}

static json_t *health_counts_json(struct sw_store *st, const char *env)
{
	int64_t counts[SW_HEALTH__COUNT] = { 0 };
	json_t *j = json_object();
	sw_store_inventory_health_counts(st, env, counts);
	for (int h = 0; h < SW_HEALTH__COUNT; h++)
		json_object_set_new(j, sw_store_health_str(h), json_integer(counts[h]));
	return j;
}

/* An environment: configuration, stored state, latest drift, object health. */
static json_t *env_json(struct sw_daemon *d, const struct sw_cfg_env *c)
{
	struct sw_store_env e = { 0 };
	struct sw_store_drift dr = { 0 };
	json_t *j = json_object();
	int have = sw_store_env_get(d->store, c->name, &e) == 0;

	json_object_set_new(j, "name", json_string(c->name));
	json_object_set_new(j, "repo", jstr(c->repo));
	json_object_set_new(j, "branch", jstr(c->branch));
	json_object_set_new(j, "cluster", json_boolean(sw_cfg_env_has_cluster(c)));
	json_object_set_new(j, "namespace", jstr(c->namespace));
	json_t *m = json_array();
	for (size_t i = 0; i < c->nmanifests; i++)
		json_array_append_new(m, json_string(c->manifests[i]));
	json_object_set_new(j, "manifests", m);
	json_object_set_new(j, "self_heal", json_boolean(c->self_heal));
	json_object_set_new(j, "prune", json_boolean(c->prune));
	json_object_set_new(j, "desired_commit", jstr(have ? e.desired_commit : NULL));
	json_object_set_new(j, "synced_commit", jstr(have ? e.synced_commit : NULL));
	json_object_set_new(j, "sync_status",
			    json_string(sw_store_env_sync_str(have ? e.sync_status : SW_ENV_UNKNOWN)));
	json_object_set_new(j, "health",
			    json_string(sw_store_health_str(have ? e.health : SW_HEALTH_UNKNOWN)));
	json_object_set_new(j, "rolled_back_to", jstr(have ? e.rolled_back_to : NULL));
	json_object_set_new(j, "last_sync_at", jtime(have ? e.last_sync_at : 0));
	json_object_set_new(j, "last_sync_ms", have && e.last_sync_at > 0 ?
			    json_integer(e.last_sync_ms) : json_null());
	json_object_set_new(j, "message", jstr(have ? e.message : NULL));
	json_object_set_new(j, "infra_status", jstr(have ? e.infra_status : NULL));
	json_object_set_new(j, "updated_at", jtime(have ? e.updated_at : 0));
	json_object_set_new(j, "drift_latest", sw_store_drift_latest(d->store, c->name, &dr) == 0 ?
			    drift_json(&dr) : json_null());
	json_object_set_new(j, "objects", health_counts_json(d->store, c->name));
	sw_store_drift_release(&dr);
	sw_store_env_release(&e);
	return j;
}

/* --- runs ---------------------------------------------------------------------- */


/*
 * A page of a list read with limit + 1 rows (one more tells whether another
 * page exists): {NAME: items (taken), "next": the id to pass as `before`
 * for the next page, or null on the last}.
 */
static json_t *page_of(const char *name, json_t *items, size_t got, int64_t limit,
		       int64_t last_id)
{
	return json_pack("{s:o, s:o}", name, items, "next",
			 got > (size_t)limit ? json_integer(last_id) : json_null());
}

static void runs_list(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	struct sw_store_run_filter f = SW_STORE_RUN_FILTER_INIT;
	struct sw_store_run_list l = { 0 };
	struct evkeyvalq q;
	int64_t limit, before;
	const char *v;
	int rc;

	if (sw_auth_check_read(d, req) < 0)
		return;
	query_of(req, &q);
	if (param_int(req, &q, "limit", LIST_DEFAULT, 1, LIST_MAX, &limit) < 0 ||
	    param_int(req, &q, "before", 0, 1, INT64_MAX, &before) < 0)
		goto out;
	if ((v = evhttp_find_header(&q, "status")) && *v) {
		enum sw_status s;
		if (sw_store_status_parse(v, &s) < 0) {
			sw_reply_error(req, 400, "status: unknown status '%s' (queued, running, "
				       "success, failure, error, cancelled, interrupted)", v);
			goto out;
		}
		f.status = (int)s;
	}
	if ((v = evhttp_find_header(&q, "kind")) && *v) {
		enum sw_run_kind k;
		if (sw_store_run_kind_parse(v, &k) < 0) {
			sw_reply_error(req, 400, "kind: unknown run kind '%s' (pull_request, push, "
				       "deploy, manual, rollback, drift)", v);
			goto out;
		}
		f.kind = (int)k;
	}
	if ((v = evhttp_find_header(&q, "env")) && *v)
		f.environment = v;
	if ((v = evhttp_find_header(&q, "repo")) && *v)
		f.repo = v;
	f.before_id = before;
	f.limit = (int)limit + 1;   /* one more tells whether another page exists */
	if ((rc = sw_store_run_list(d->store, &f, &l)) < 0) {
		reply_store_error(req, rc);
		goto out;
	}
	json_t *a = json_array();
	size_t n = l.n > (size_t)limit ? (size_t)limit : l.n;
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, run_json(&l.v[i]));
	sw_reply_json(req, 200, page_of("runs", a, l.n, limit, n ? l.v[n - 1].id : 0));
out:
	sw_store_run_list_release(&l);
	evhttp_clear_headers(&q);
}

/* Look up run `s` (a decimal id); on failure replies and returns <0. */
static int load_run(struct sw_daemon *d, struct evhttp_request *req, const char *s,
		    struct sw_store_run *r)
{
	int64_t id;
	int rc;
	if (parse_i64(s, 1, INT64_MAX, &id) < 0) {
		sw_reply_error(req, 404, "no run '%s': run ids are positive integers", s);
		return SW_EINVALID;
	}
	if ((rc = sw_store_run_get(d->store, id, r)) < 0) {
		if (rc == SW_ENOTFOUND)
			sw_reply_error(req, 404, "no run %lld", (long long)id);
		else
			reply_store_error(req, rc);
		return rc;
	}
	return 0;
}

/* `b` as a JSON string; bytes that are no UTF-8 become U+FFFD. */
static json_t *text_json(const struct sw_buf *b)
{
	json_t *s = json_stringn(b->ptr, b->len);
	if (s)
		return s;
	struct sw_buf clean = SW_BUF_INIT;
	sw_utf8_clean(&clean, b->ptr, b->len);
	s = json_stringn(clean.ptr, clean.len);
	sw_buf_release(&clean);
	return s ? s : json_string("");
}

static void stage_log(struct sw_daemon *d, struct evhttp_request *req,
		      const struct sw_store_run *run, const struct sw_store_stage *s)
{
	struct evkeyvalq q;
	struct sw_buf data = SW_BUF_INIT;
	int64_t offset, max, next = 0, size = 0;
	int rc;

	query_of(req, &q);
	if (param_int(req, &q, "offset", 0, 0, INT64_MAX, &offset) < 0 ||
	    param_int(req, &q, "max", LOG_DEFAULT, 1, LOG_MAX, &max) < 0)
		goto out;
	/* `s` was read before: a stage that was final then has all of its log
	 * stored. The size after the data: a log only grows, so what was read
	 * lies within it. */
	int final = sw_store_status_is_final(s->status) || sw_store_status_is_final(run->status);
	if ((rc = sw_store_log_read(d->store, s->id, offset, (size_t)max, &data, &next)) < 0 ||
	    (rc = sw_store_log_size(d->store, s->id, &size)) < 0) {
		reply_store_error(req, rc);
		goto out;
	}
	/* `size` is the bytes stored; next_offset never passes it (an offset
	 * beyond the end reads nothing and is told where the end is) */
	if (next < offset)
		next = offset;
	if (next > size) {
		next = size;
		sw_buf_truncate(&data, 0);
	}
	if (next < size) {
		/* a character cut at the end comes whole with the next read */
		size_t cut = sw_utf8_partial(data.ptr, data.len);
		sw_buf_truncate(&data, data.len - cut);
		next -= (int64_t)cut;
	}
	json_t *j = json_object();
	json_object_set_new(j, "run", json_integer(run->id));
	json_object_set_new(j, "stage", json_string(s->name));
	json_object_set_new(j, "status", json_string(sw_store_status_str(s->status)));
	json_object_set_new(j, "offset", json_integer(offset));
	json_object_set_new(j, "next_offset", json_integer(next));
	json_object_set_new(j, "size", json_integer(size));
	json_object_set_new(j, "complete", json_boolean(final && next >= size));
	json_object_set_new(j, "data", text_json(&data));
	sw_reply_json(req, 200, j);
out:
	sw_buf_release(&data);
	evhttp_clear_headers(&q);
}

/* GET /api/v1/runs/{id}[/stages[/{name}/log]] */
static void runs_get(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	struct sw_store_run r = { 0 };
	struct sw_store_stage_list sl = { 0 };
	char *seg[MAX_SEGS];
	int n, rc;

	if (sw_auth_check_read(d, req) < 0)
		return;
	if ((n = split_path(rest, seg)) < 1 || n == 3 || n > 4 ||
	    (n >= 2 && strcmp(seg[1], "stages")) || (n == 4 && strcmp(seg[3], "log"))) {
		sw_reply_error(req, 404, "no such path: /api/v1/runs/%s", rest);
		if (n > 0)
			free_segs(seg, n);
		return;
	}
	if (load_run(d, req, seg[0], &r) < 0)
		goto out;
	if ((rc = sw_store_stages_list(d->store, r.id, &sl)) < 0) {
		reply_store_error(req, rc);
		goto out;
	}
	if (n == 1) {
		json_t *j = run_json(&r);
		json_object_set_new(j, "stages", stages_json(d->store, &sl));
		sw_reply_json(req, 200, j);
	} else if (n == 2) {
		sw_reply_json(req, 200, json_pack("{s:I, s:o}", "run", (json_int_t)r.id, "stages",
						  stages_json(d->store, &sl)));
	} else {
		size_t i;
		for (i = 0; i < sl.n && strcmp(sl.v[i].name, seg[2]); i++)
			;
		if (i == sl.n)
			sw_reply_error(req, 404, "run %lld has no stage '%s'", (long long)r.id, seg[2]);
		else
			stage_log(d, req, &r, &sl.v[i]);
	}
out:
	sw_store_stage_list_release(&sl);
	sw_store_run_release(&r);
	free_segs(seg, n);
}

/* A refused action: its answer, a log line and an audit row. */
static void refused(struct sw_daemon *d, struct evhttp_request *req, const struct sw_actor *a,
		    int code, const char *action, const char *target, const char *fmt, ...)
	SW_PRINTF(7, 8);
static void refused(struct sw_daemon *d, struct evhttp_request *req, const struct sw_actor *a,
		    int code, const char *action, const char *target, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info("api.refused", "action=%s target=%s actor=%s client=%s status=%d reason=%s",
		 action, sw_q(target), sw_q(a->name), sw_q(a->client), code, sw_q(msg));
	sw_audit_record(d, a, action, target, "refused", msg);
	sw_reply_error(req, code, "%s", msg);
}

/* POST /api/v1/runs/{id}/cancel, /retry */
static void runs_post(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	struct sw_store_run r = { 0 };
	struct sw_actor who = SW_ACTOR_INIT;
	int64_t audit_id = 0;
	char *seg[MAX_SEGS];
	int n, rc;

	if ((n = split_path(rest, seg)) != 2 ||
	    (strcmp(seg[1], "cancel") && strcmp(seg[1], "retry"))) {
		sw_reply_error(req, n == 1 ? 405 : 404, n == 1 ? "method POST not allowed on "
			       "/api/v1/runs/%s" : "no such action: /api/v1/runs/%s", rest);
		if (n > 0)
			free_segs(seg, n);
		return;
	}
	/* the run first (its environment decides the role needed) */
	if (sw_auth_check_read(d, req) < 0 || load_run(d, req, seg[0], &r) < 0)
		goto out;
	char target[64];
	snprintf(target, sizeof(target), "run %lld", (long long)r.id);
	if (sw_auth_require(d, req, SW_ROLE_DEPLOYER, r.environment, seg[1], target, &who) < 0)
		goto out;
	if (!d->engine) {
		sw_reply_error(req, 503, "the pipeline engine is not running");
		goto out;
	}
	if (!strcmp(seg[1], "cancel")) {
		if (sw_store_status_is_final(r.status)) {
			refused(d, req, &who, 409, "cancel", target, "run %lld already finished: %s",
				(long long)r.id, sw_store_status_str(r.status));
			goto out;
		}
		if (sw_audit_start(d, &who, "cancel", target, &audit_id) < 0) {
			sw_reply_error(req, 503, "could not record the action in the audit log; "
				       "nothing was done, try again");
			goto out;
		}
		char *why = sw_asprintf("cancelled by %s through the API", who.name);
		rc = sw_engine_cancel(d->engine, r.id, why);
		free(why);
		if (rc < 0) {
			/* in storage as active but not in the engine: it is just ending */
			sw_audit_finish(d, audit_id, "failed", sw_error_last());
			sw_reply_error(req, 409, "%s", sw_error_last());
			goto out;
		}
		log_info("api.cancel", "run=%lld by=%s client=%s", (long long)r.id, sw_q(who.name),
			 sw_q(who.client));
		sw_store_run_release(&r);
		int64_t id = 0;
		parse_i64(seg[0], 1, INT64_MAX, &id);
		if (sw_store_run_get(d->store, id, &r) < 0) {
			sw_audit_finish(d, audit_id, "ok", NULL);
			reply_store_error(req, SW_ERR);
			goto out;
		}
		sw_audit_finish(d, audit_id, "ok", NULL);
		/* a queued run is cancelled at once; a running one as its stage is killed */
		json_t *j = json_pack("{s:I, s:s, s:o}", "run", (json_int_t)r.id, "status",
				      sw_store_status_str(r.status), "cancelled",
				      json_boolean(r.status == SW_STATUS_CANCELLED));
		sw_reply_json(req, 200, j);
	} else {
		int64_t new_id = 0;
		if (sw_audit_start(d, &who, "retry", target, &audit_id) < 0) {
			sw_reply_error(req, 503, "could not record the action in the audit log; "
				       "nothing was done, try again");
			goto out;
		}
		if ((rc = sw_engine_retry(d->engine, r.id, &new_id)) < 0) {
			sw_audit_finish(d, audit_id, "failed", sw_error_last());
			reply_rc(req, rc == SW_EINVALID ? SW_EAGAIN : rc, sw_error_last());
			goto out;
		}
		char *note = sw_asprintf("new run %lld", (long long)new_id);
		sw_audit_finish(d, audit_id, "ok", note);
		free(note);
		log_info("api.retry", "run=%lld new_run=%lld by=%s client=%s", (long long)r.id,
			 (long long)new_id, sw_q(who.name), sw_q(who.client));
		char *loc = sw_asprintf("/api/v1/runs/%lld", (long long)new_id);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
		free(loc);
		sw_reply_json(req, 201, json_pack("{s:I, s:I, s:i}", "run", (json_int_t)new_id,
						  "retry_of", (json_int_t)r.id, "attempt",
						  r.attempt + 1));
	}
out:
	sw_actor_release(&who);
	sw_store_run_release(&r);
	free_segs(seg, n);
}

/* --- environments ------------------------------------------------------------- */

static void envs_list(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	if (sw_auth_check_read(d, req) < 0)
		return;
	json_t *a = json_array();
	for (size_t i = 0; i < d->cfg->nenvs; i++)
		json_array_append_new(a, env_json(d, &d->cfg->envs[i]));
	sw_reply_json(req, 200, json_pack("{s:o}", "environments", a));
}

/* --- actions: the provider answers through sw_action_done/fail --------------- */

struct sw_action {
	struct evhttp_request *req;
	struct sw_daemon *d;
	char *what;    /* "sync dev", for the log */
	char by[SW_ACTOR_NAME_MAX], client[SW_ACTOR_CLIENT_MAX];
	int64_t audit_id;   /* its row in the audit log, 0 for none (a diff) */
};

const char *sw_action_by(const struct sw_action *a)
{
	return a->by[0] ? a->by : NULL;
}

void sw_action_done(struct sw_action *a, int status, json_t *body)
{
	json_t *run = body ? json_object_get(body, "run") : NULL;
	char note[64] = "";
	if (json_is_integer(run))
		snprintf(note, sizeof(note), "run %lld", (long long)json_integer_value(run));
	sw_audit_finish(a->d, a->audit_id, "ok", note[0] ? note : NULL);
	sw_reply_json(a->req, status, body ? body : json_object());
	log_info("api.action", "action=%s status=%d by=%s client=%s", sw_q(a->what), status,
		 sw_q(a->by), sw_q(a->client));
	free(a->what);
	free(a);
}

void sw_action_fail(struct sw_action *a, int rc, const char *msg)
{
	sw_audit_finish(a->d, a->audit_id, "failed", msg);
	log_info("api.action_failed", "action=%s err=%s by=%s client=%s", sw_q(a->what), sw_q(msg),
		 sw_q(a->by), sw_q(a->client));
	reply_rc(a->req, rc, msg);
	free(a->what);
	free(a);
}

static struct sw_action *action_new(struct sw_daemon *d, struct evhttp_request *req,
				    const char *verb, const char *env, const struct sw_actor *who)
{
	struct sw_action *a = sw_calloc(1, sizeof(*a));
	a->req = req;
	a->d = d;
	a->what = sw_asprintf("%s %s", verb, env);
	if (who) {
		snprintf(a->by, sizeof(a->by), "%s", who->name);
		snprintf(a->client, sizeof(a->client), "%s", who->client);
	}
	return a;
}

/*
 * An action that changes something: recorded as started before it is
 * performed; NULL (503 sent) when the audit log cannot be written.
 */
static struct sw_action *action_start(struct sw_daemon *d, struct evhttp_request *req,
				      const char *verb, const char *env, const struct sw_actor *who)
{
	int64_t id = 0;
	if (sw_audit_start(d, who, verb, env, &id) < 0) {
		sw_reply_error(req, 503, "could not record the action in the audit log; nothing "
			       "was done, try again");
		return NULL;
	}
	struct sw_action *a = action_new(d, req, verb, env, who);
	a->audit_id = id;
	return a;
}

/* After a provider returned <0: answer from the slot and drop `a`. */
static void action_refused(struct sw_action *a, int rc)
{
	sw_action_fail(a, rc, sw_error_last());
}

/* The rollback target from a JSON {"revision": ...} or a form field. */
static char *read_revision(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	size_t len = evbuffer_get_length(in);
	char *out = NULL;
	if (len > BODY_MAX)
		return NULL;
	char *s = sw_malloc(len + 1);
	evbuffer_copyout(in, s, len);
	s[len] = 0;
	/* JSON unless it is a form (curl -d sends JSON labelled as a form) */
	if (ct && !strncasecmp(ct, "application/x-www-form-urlencoded", 33) && s[0] != '{') {
		struct evkeyvalq f;
		TAILQ_INIT(&f);
		if (evhttp_parse_query_str(s, &f) == 0 && evhttp_find_header(&f, "revision"))
			out = sw_strdup(evhttp_find_header(&f, "revision"));
		evhttp_clear_headers(&f);
	} else {
		json_t *j = json_loadb(s, len, 0, NULL);
		const char *r = j ? json_string_value(json_object_get(j, "revision")) : NULL;
		if (r)
			out = sw_strdup(r);
		json_decref(j);
	}
	free(s);
	return out;
}

static int is_hex(const char *s, size_t min, size_t max)
{
	size_t n = strlen(s);
	if (n < min || n > max)
		return 0;
	for (; *s; s++)
		if (!isxdigit((unsigned char)*s))
			return 0;
	return 1;
}

static void env_rollback(struct sw_daemon *d, struct evhttp_request *req, const char *env,
			 const struct sw_actor *who)
{
	char *rev = read_revision(req);
	struct sw_store_sync s = { 0 };
	int64_t sync_id = 0;
	const char *commit = NULL;
	int rc;

	if (!rev || !*rev) {
		refused(d, req, who, 400, "rollback", env, "give the revision to roll back to: "
			"{\"revision\": \"<commit sha or sync id>\"}");
		goto out;
	}
	if (parse_i64(rev, 1, INT64_MAX, &sync_id) == 0 && strlen(rev) < 7) {
		if ((rc = sw_store_sync_get(d->store, sync_id, &s)) < 0 ||
		    strcmp(s.environment, env)) {
			if (rc < 0 && rc != SW_ENOTFOUND)
				reply_store_error(req, rc);
			else
				sw_reply_error(req, 404, "environment %s has no sync %s in its history",
					       env, rev);
			goto out;
		}
		commit = s.commit_sha;
	} else if (is_hex(rev, 7, 64)) {
		sync_id = 0;
		commit = rev;
	} else {
		refused(d, req, who, 400, "rollback", env, "revision '%s' is neither a commit sha "
			"(7 to 40 hex digits) nor a sync id", rev);
		goto out;
	}
	if (!d->actions.rollback) {
		sw_reply_error(req, 501, "rollback is not available: this slipwayd has no sync engine");
		goto out;
	}
	struct sw_action *a = action_start(d, req, "rollback", env, who);
	if (a && (rc = d->actions.rollback(d, env, commit, sync_id, a)) < 0)
		action_refused(a, rc);
out:
	sw_store_sync_release(&s);
	free(rev);
}

/* POST /api/v1/environments/{name}/sync, /rollback */
static void envs_post(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	struct sw_actor who = SW_ACTOR_INIT;
	char *seg[MAX_SEGS];
	int n, rc;
	if ((n = split_path(rest, seg)) != 2 ||
	    (strcmp(seg[1], "sync") && strcmp(seg[1], "rollback"))) {
		sw_reply_error(req, 404, "no such action: /api/v1/environments/%s", rest);
		if (n > 0)
			free_segs(seg, n);
		return;
	}
	if (sw_auth_require(d, req, SW_ROLE_DEPLOYER, seg[0], seg[1], seg[0], &who) < 0)
		goto out;
	if (!sw_config_env(d->cfg, seg[0])) {
		refused(d, req, &who, 404, seg[1], seg[0], "no environment '%s'", seg[0]);
		goto out;
	}
	if (!strcmp(seg[1], "rollback")) {
		env_rollback(d, req, seg[0], &who);
	} else if (!d->actions.sync) {
		sw_reply_error(req, 501, "sync is not available: this slipwayd has no sync engine");
	} else {
		struct sw_action *a = action_start(d, req, "sync", seg[0], &who);
		if (a && (rc = d->actions.sync(d, seg[0], a)) < 0)
			action_refused(a, rc);
	}
out:
	sw_actor_release(&who);
	free_segs(seg, n);
}

/* GET /api/v1/environments/{name}[/history[/{id}]|/drift|/inventory|/diff] */
static void envs_get(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	char *seg[MAX_SEGS];
	struct evkeyvalq q;
	int64_t limit;
	int n, rc;
	const struct sw_cfg_env *c;

	TAILQ_INIT(&q);
	if (sw_auth_check_read(d, req) < 0)
		return;
	if ((n = split_path(rest, seg)) < 1 || n > 3 || (n == 3 && strcmp(seg[1], "history"))) {
		sw_reply_error(req, 404, "no such path: /api/v1/environments/%s", rest);
		if (n > 0)
			free_segs(seg, n);
		return;
	}
	if (!(c = sw_config_env(d->cfg, seg[0]))) {
		sw_reply_error(req, 404, "no environment '%s'", seg[0]);
		goto out;
	}
	query_of(req, &q);
	if (n == 1) {
		sw_reply_json(req, 200, env_json(d, c));
	} else if (!strcmp(seg[1], "history") && n == 2) {
		struct sw_store_sync_list l = { 0 };
		if (param_int(req, &q, "limit", LIST_DEFAULT, 1, LIST_MAX, &limit) < 0)
			goto out;
		if ((rc = sw_store_sync_history(d->store, c->name, (int)limit, &l)) < 0) {
			reply_store_error(req, rc);
			goto out;
		}
		json_t *a = json_array();
		for (size_t i = 0; i < l.n; i++)
			json_array_append_new(a, sync_json(&l.v[i], 0));
		sw_store_sync_list_release(&l);
		sw_reply_json(req, 200, json_pack("{s:s, s:o}", "environment", c->name, "syncs", a));
	} else if (n == 3) {
		struct sw_store_sync s = { 0 };
		int64_t id;
		if (parse_i64(seg[2], 1, INT64_MAX, &id) < 0 ||
		    (rc = sw_store_sync_get(d->store, id, &s)) == SW_ENOTFOUND ||
		    (rc == 0 && strcmp(s.environment, c->name)))
			sw_reply_error(req, 404, "environment %s has no sync %s", c->name, seg[2]);
		else if (rc < 0)
			reply_store_error(req, rc);
		else
			sw_reply_json(req, 200, sync_json(&s, 1));
		sw_store_sync_release(&s);
	} else if (!strcmp(seg[1], "drift")) {
		struct sw_store_drift_list l = { 0 };
		if (param_int(req, &q, "limit", LIST_DEFAULT, 1, LIST_MAX, &limit) < 0)
			goto out;
		if ((rc = sw_store_drift_list(d->store, c->name, (int)limit, &l)) < 0) {
			reply_store_error(req, rc);
			goto out;
		}
		json_t *a = json_array();
		for (size_t i = 0; i < l.n; i++)
			json_array_append_new(a, drift_json(&l.v[i]));
		sw_store_drift_list_release(&l);
		sw_reply_json(req, 200, json_pack("{s:s, s:o}", "environment", c->name, "events", a));
	} else if (!strcmp(seg[1], "inventory")) {
		struct sw_store_inv_list l = { 0 };
		if ((rc = sw_store_inventory_list(d->store, c->name, &l)) < 0) {
			reply_store_error(req, rc);
			goto out;
		}
		json_t *a = json_array();
		for (size_t i = 0; i < l.n; i++) {
			const struct sw_store_inv *o = &l.v[i];
			json_t *oj = objref_json(json_object(), o->api_version, o->kind, o->namespace,
						 o->name);
			json_object_set_new(oj, "uid", jstr(o->uid));
			json_object_set_new(oj, "health", json_string(sw_store_health_str(o->health)));
			json_object_set_new(oj, "message", jstr(o->message));
			json_array_append_new(a, oj);
		}
		sw_store_inv_list_release(&l);
		sw_reply_json(req, 200, json_pack("{s:s, s:o, s:o}", "environment", c->name,
						  "counts", health_counts_json(d->store, c->name),
						  "objects", a));
	} else if (!strcmp(seg[1], "diff")) {
		if (!d->actions.diff) {
			sw_reply_error(req, 501, "diff is not available: this slipwayd has no sync engine");
		} else {
			struct sw_action *a = action_new(d, req, "diff", c->name, NULL);
			if ((rc = d->actions.diff(d, c->name, a)) < 0)
				action_refused(a, rc);
		}
	} else if (!strcmp(seg[1], "sync") || !strcmp(seg[1], "rollback")) {
		sw_reply_error(req, 405, "method GET not allowed on /api/v1/environments/%s", rest);
	} else {
		sw_reply_error(req, 404, "no such path: /api/v1/environments/%s", rest);
	}
out:
	evhttp_clear_headers(&q);
	free_segs(seg, n);
}

/* --- deliveries ------------------------------------------------------------------ */

static void deliveries_list(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	struct sw_store_delivery_list l = { 0 };
	struct evkeyvalq q;
	int64_t limit, offset;
	int rc;

	if (sw_auth_check_read(d, req) < 0)
		return;
	query_of(req, &q);
	if (param_int(req, &q, "limit", LIST_DEFAULT, 1, LIST_MAX, &limit) < 0 ||
	    param_int(req, &q, "offset", 0, 0, 1000000, &offset) < 0)
		goto out;
	if ((rc = sw_store_deliveries_recent(d->store, (int)limit, (int)offset, &l)) < 0) {
		reply_store_error(req, rc);
		goto out;
	}
	json_t *a = json_array();
	for (size_t i = 0; i < l.n; i++) {
		const struct sw_store_delivery *v = &l.v[i];
		json_t *j = json_object();
		json_object_set_new(j, "id", json_integer(v->id));
		json_object_set_new(j, "guid", jstr(v->guid));
		json_object_set_new(j, "event", jstr(v->event));
		json_object_set_new(j, "action", jstr(v->action));
		json_object_set_new(j, "repo", jstr(v->repo));
		json_object_set_new(j, "received_at", jtime(v->received_at));
		json_object_set_new(j, "state", json_string(sw_store_delivery_state_str(v->state)));
		json_object_set_new(j, "reason", jstr(v->reason));
		json_object_set_new(j, "run_id", jid(v->run_id));
		json_array_append_new(a, j);
	}
	sw_reply_json(req, 200, json_pack("{s:o}", "deliveries", a));
out:
	sw_store_delivery_list_release(&l);
	evhttp_clear_headers(&q);
}

/* --- the audit log (admin) ------------------------------------------------------- */

/* GET /api/v1/audit?actor=&action=&since=&limit=&before= */
static void audit_list(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	struct sw_store_audit_filter f = SW_STORE_AUDIT_FILTER_INIT;
	struct sw_store_audit_list l = { 0 };
	struct evkeyvalq q;
	int64_t limit, before, since;
	const char *v;
	int rc;

	if (sw_auth_require(d, req, SW_ROLE_ADMIN, NULL, "audit.read", NULL, NULL) < 0)
		return;
	query_of(req, &q);
	if (param_int(req, &q, "limit", LIST_DEFAULT, 1, LIST_MAX, &limit) < 0 ||
	    param_int(req, &q, "before", 0, 1, INT64_MAX, &before) < 0 ||
	    param_int(req, &q, "since", 0, 0, INT64_MAX, &since) < 0)
		goto out;
	if ((v = evhttp_find_header(&q, "actor")) && *v)
		f.actor = v;
	if ((v = evhttp_find_header(&q, "action")) && *v)
		f.action = v;
	f.since = since;
	f.before_id = before;
	f.limit = (int)limit + 1;   /* one more tells whether another page exists */
	if ((rc = sw_store_audit_list(d->store, &f, &l)) < 0) {
		reply_store_error(req, rc);
		goto out;
	}
	json_t *a = json_array();
	size_t n = l.n > (size_t)limit ? (size_t)limit : l.n;
	for (size_t i = 0; i < n; i++) {
		const struct sw_store_audit *r = &l.v[i];
		json_t *j = json_object();
		json_object_set_new(j, "id", json_integer(r->id));
		json_object_set_new(j, "at", jtime(r->at));
		json_object_set_new(j, "actor", jstr(r->actor));
		json_object_set_new(j, "actor_kind", jstr(r->actor_kind));
		json_object_set_new(j, "token_id", jstr(r->token_id));
		json_object_set_new(j, "client", jstr(r->client));
		json_object_set_new(j, "action", jstr(r->action));
		json_object_set_new(j, "target", jstr(r->target));
		json_object_set_new(j, "outcome", jstr(r->outcome));
		json_object_set_new(j, "reason", jstr(r->reason));
		json_array_append_new(a, j);
	}
	sw_reply_json(req, 200, page_of("audit", a, l.n, limit, n ? l.v[n - 1].id : 0));
out:
	sw_store_audit_list_release(&l);
	evhttp_clear_headers(&q);
}

static void api_unknown(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	sw_reply_error(req, 404, "no such API path: /api/v1/%s", rest);
}

const struct sw_route sw_api_routes[] = {
	{ EVHTTP_REQ_GET, "/api/v1/runs", runs_list },
	{ EVHTTP_REQ_GET, "/api/v1/runs/", runs_get },
	{ EVHTTP_REQ_POST, "/api/v1/runs/", runs_post },
	{ EVHTTP_REQ_GET, "/api/v1/environments", envs_list },
	{ EVHTTP_REQ_GET, "/api/v1/environments/", envs_get },
	{ EVHTTP_REQ_POST, "/api/v1/environments/", envs_post },
	{ EVHTTP_REQ_GET, "/api/v1/deliveries", deliveries_list },
	{ EVHTTP_REQ_POST, "/api/v1/backup", sw_backup_post },
	{ EVHTTP_REQ_GET, "/api/v1/tokens", sw_tokens_list },
	{ EVHTTP_REQ_POST, "/api/v1/tokens", sw_tokens_create },
	{ EVHTTP_REQ_DELETE, "/api/v1/tokens/", sw_tokens_revoke },
	{ EVHTTP_REQ_GET, "/api/v1/audit", audit_list },
	{ EVHTTP_REQ_GET, "/login", sw_auth_login_form },
	{ EVHTTP_REQ_GET, "/login/github", sw_oauth_start },
	{ EVHTTP_REQ_GET, "/login/github/callback", sw_oauth_callback },
	{ EVHTTP_REQ_POST, "/login", sw_auth_login },
	{ EVHTTP_REQ_POST, "/logout", sw_auth_logout },
	{ EVHTTP_REQ_GET, "/api/v1/", api_unknown },
	{ EVHTTP_REQ_POST, "/api/v1/", api_unknown },
	{ 0, NULL, NULL },
};
