/*
 * http.c - the REST surface of the test API server.
 *
 * Routing follows the real server: /version, /api, /api/v1, /apis,
 * /apis/G, /apis/G/V for discovery; /api/v1/... and /apis/G/V/... for
 * resources, namespaced as .../namespaces/NS/RES[/NAME[/SUB]] and cluster
 * scoped (or cluster-wide lists) as .../RES[/NAME[/SUB]]. Errors are Status
 * objects. Every write goes through write_obj(), which fixes the identity
 * metadata, bumps generation on spec changes, records managedFields,
 * honours dryRun and stores the result (or answers a no-op with the
 * unchanged object and its old resourceVersion, as the real server does).
 *
 * Watches are long chunked responses, one JSON event per line. A watch is
 * told about every change of its resource type as the change is stored
 * (ka_watch_notify); a watch that resumes from a resourceVersion is first
 * replayed from the event ring. Closed client connections are noticed by
 * keeping the socket readable (see watch_start).
 */
#include "tests/kubeapi/kubeapi.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define MAXQ 24

struct rq {
	struct evhttp_request *req;
	enum evhttp_cmd_type method;
	char *path;
	char *qk[MAXQ], *qv[MAXQ];
	int nq;
	const char *body;
	size_t blen;
};

struct target {
	struct ka_rtype *rt;
	const char *group, *version;
	char gv[300];        /* "apps/v1" or "v1" */
	const char *ns, *name, *sub;
	char res[300];       /* "deployments.apps" for messages */
};

struct ka_watch {
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	struct ka_rtype *rt;
	char *ns;
	char gv[300];
	struct ka_selector *lsel, *fsel;
	bool bookmarks, dead;
	struct event *bm_ev, *to_ev;
	struct ka_watch *next;
};

static struct event *sweep_ev;
static unsigned svc_ip_next = 1;

/* ---- request helpers ---- */

static const char *qget(const struct rq *r, const char *k)
{
	for (int i = 0; i < r->nq; i++)
		if (!strcmp(r->qk[i], k))
			return r->qv[i];
	return NULL;
}

static bool qtrue(const struct rq *r, const char *k)
{
	const char *v = qget(r, k);
	return v && (!strcmp(v, "true") || !strcmp(v, "1"));
}

static char *pct_decode(const char *s, size_t n, bool plus)
{
	char *out = ka_malloc(n + 1), *o = out;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
		    isxdigit((unsigned char)s[i + 2])) {
			char h[3] = {s[i + 1], s[i + 2], 0};
			*o++ = (char)strtol(h, NULL, 16);
			i += 2;
		} else if (plus && s[i] == '+')
			*o++ = ' ';
		else
			*o++ = s[i];
	}
	*o = 0;
	return out;
}

static void parse_query(struct rq *r, const char *q)
{
	while (q && *q && r->nq < MAXQ) {
		const char *amp = strchr(q, '&');
		size_t n = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', n);
		if (n) {
			size_t kn = eq ? (size_t)(eq - q) : n;
			r->qk[r->nq] = pct_decode(q, kn, true);
			r->qv[r->nq] = eq ? pct_decode(eq + 1, n - kn - 1, true) : ka_strdup("");
			r->nq++;
		}
		q += n + (amp ? 1 : 0);
	}
}

static void rq_free(struct rq *r)
{
	for (int i = 0; i < r->nq; i++) {
		free(r->qk[i]);
		free(r->qv[i]);
	}
	free(r->path);
}

static const char *phrase(int code)
{
	switch (code) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 500: return "Internal Server Error";
	}
	return "Unknown";
}

static void send_raw(struct rq *r, int code, const char *ctype, const char *data, size_t len)
{
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-cache, private");
	evbuffer_add(b, data, len);
	evhttp_send_reply(r->req, code, phrase(code), b);
	evbuffer_free(b);
	if (ka_set.verbose)
		fprintf(stderr, "kubeapi: %s %d\n", r->path, code);
}

static void free_dumped(const void *data, size_t len, void *arg)
{
	free(arg);
}

/* Send j (reference stolen) as the JSON body; the serialised text is
 * handed to the evbuffer by reference, so large lists are not copied. */
static void send_json(struct rq *r, int code, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-cache, private");
	evbuffer_add_reference(b, s, strlen(s), free_dumped, s);
	evhttp_send_reply(r->req, code, phrase(code), b);
	evbuffer_free(b);
	if (ka_set.verbose)
		fprintf(stderr, "kubeapi: %s %d\n", r->path, code);
}

static const char *reason_for(int code)
{
	switch (code) {
	case 400: return "BadRequest";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "NotFound";
	case 405: return "MethodNotAllowed";
	case 406: return "NotAcceptable";
	case 409: return "Conflict";
	case 410: return "Expired";
	case 415: return "UnsupportedMediaType";
	case 422: return "Invalid";
	}
	return "InternalError";
}

static json_t *status_obj(int code, const char *reason, json_t *details, const char *msg)
{
	json_t *s = json_pack("{s:s,s:s,s:{},s:s,s:s,s:s,s:i}", "kind", "Status", "apiVersion", "v1",
	    "metadata", "status", "Failure", "message", msg, "reason", reason ? reason : reason_for(code),
	    "code", code);
	if (details)
		json_object_set_new(s, "details", details);
	return s;
}

static void send_status(struct rq *r, int code, const char *reason, json_t *details,
    const char *fmt, ...) KA_PRINTF(5, 6);
static void send_status(struct rq *r, int code, const char *reason, json_t *details,
    const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	send_json(r, code, status_obj(code, reason, details, msg));
}

static json_t *details(const struct target *t, const char *name)
{
	json_t *d = json_pack("{s:s,s:s}", "name", name ? name : "", "kind", t->rt->plural);
	if (*t->rt->group)
		json_object_set_new(d, "group", json_string(t->rt->group));
	return d;
}

static void not_found(struct rq *r, const struct target *t, const char *name)
{
	send_status(r, 404, "NotFound", details(t, name), "%s \"%s\" not found", t->res, name);
}

/* ---- discovery ---- */

static json_t *resource_list(const char *group, const char *version)
{
	json_t *res = json_array();
	for (struct ka_rtype *rt = ka_rtypes; rt; rt = rt->next) {
		if (!rt->active || strcmp(rt->group, group) || !ka_rtype_serves(rt, version))
			continue;
		json_t *e = json_pack("{s:s,s:s,s:b,s:s,s:[s,s,s,s,s,s,s,s]}", "name", rt->plural,
		    "singularName", rt->singular, "namespaced", rt->namespaced, "kind", rt->kind,
		    "verbs", "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch");
		if (rt->nshort) {
			json_t *sn = json_array();
			for (int i = 0; i < rt->nshort; i++)
				json_array_append_new(sn, json_string(rt->short_names[i]));
			json_object_set_new(e, "shortNames", sn);
		}
		if (rt->all_category)
			json_object_set_new(e, "categories", json_pack("[s]", "all"));
		char *h = ka_base64(rt->kind, strlen(rt->kind) > 8 ? 8 : strlen(rt->kind));
		json_object_set_new(e, "storageVersionHash", json_string(h));
		free(h);
		json_array_append_new(res, e);
		if (rt->has_status) {
			char *n = ka_asprintf("%s/status", rt->plural);
			json_array_append_new(res, json_pack("{s:s,s:s,s:b,s:s,s:[s,s,s]}", "name", n,
			    "singularName", "", "namespaced", rt->namespaced, "kind", rt->kind,
			    "verbs", "get", "patch", "update"));
			free(n);
		}
	}
	char gv[300];
	snprintf(gv, sizeof(gv), "%s%s%s", group, *group ? "/" : "", version);
	return json_pack("{s:s,s:s,s:s,s:o}", "kind", "APIResourceList", "apiVersion", "v1",
	    "groupVersion", gv, "resources", res);
}

static json_t *group_obj(const char *group)
{
	json_t *vers = json_array(), *pref = NULL;
	for (struct ka_rtype *rt = ka_rtypes; rt; rt = rt->next) {
		if (!rt->active || strcmp(rt->group, group))
			continue;
		for (int i = 0; i < rt->nversions; i++) {
			size_t j;
			json_t *v;
			bool seen = false;
			json_array_foreach(vers, j, v)
				if (!strcmp(ka_jstr(v, "version"), rt->versions[i]))
					seen = true;
			if (seen)
				continue;
			char gv[300];
			snprintf(gv, sizeof(gv), "%s/%s", group, rt->versions[i]);
			json_t *e = json_pack("{s:s,s:s}", "groupVersion", gv, "version", rt->versions[i]);
			if (!pref)
				pref = json_deep_copy(e);
			json_array_append_new(vers, e);
		}
	}
	if (!pref) {
		json_decref(vers);
		return NULL;
	}
	return json_pack("{s:s,s:o,s:o}", "name", group, "versions", vers, "preferredVersion", pref);
}

static json_t *group_list(void)
{
	json_t *groups = json_array();
	struct ka_map seen = {0};
	for (struct ka_rtype *rt = ka_rtypes; rt; rt = rt->next) {
		if (!rt->active || !*rt->group || ka_map_get(&seen, rt->group))
			continue;
		ka_map_put(&seen, rt->group, rt);
		json_t *g = group_obj(rt->group);
		if (g)
			json_array_append_new(groups, g);
	}
	for (size_t i = 0; i < seen.nb; i++) {
		struct ka_map_ent *e = seen.b[i], *n;
		for (; e; e = n) {
			n = e->next;
			free(e->key);
			free(e);
		}
	}
	free(seen.b);
	return json_pack("{s:s,s:s,s:o}", "kind", "APIGroupList", "apiVersion", "v1", "groups", groups);
}

/* ---- object helpers ---- */

static json_t *out_obj(json_t *o, const char *gv)
{
	const char *av = ka_jstr(o, "apiVersion");
	if (av && !strcmp(av, gv))
		return json_incref(o);
	json_t *c = json_copy(o);
	json_object_set_new(c, "apiVersion", json_string(gv));
	return c;
}

static bool spec_equal(json_t *a, json_t *b)
{
	const char *k;
	json_t *v;
	json_object_foreach(a, k, v) {
		if (!strcmp(k, "metadata") || !strcmp(k, "status") || !strcmp(k, "apiVersion") || !strcmp(k, "kind"))
			continue;
		if (!json_equal(v, json_object_get(b, k)))
			return false;
	}
	json_object_foreach(b, k, v) {
		if (!strcmp(k, "metadata") || !strcmp(k, "status") || !strcmp(k, "apiVersion") || !strcmp(k, "kind"))
			continue;
		if (!json_object_get(a, k))
			return false;
	}
	return true;
}

static const char *manager_of(const struct rq *r)
{
	static char ua[128];
	const char *fm = qget(r, "fieldManager");
	if (fm && *fm)
		return fm;
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(r->req), "User-Agent");
	if (!h || !*h)
		return "unknown";
	size_t n = strcspn(h, "/ ");
	if (n >= sizeof(ua))
		n = sizeof(ua) - 1;
	memcpy(ua, h, n);
	ua[n] = 0;
	return ua;
}

static struct ka_rtype *ns_rt(void)
{
	return ka_rtype_find("", "v1", "namespaces");
}

/* Defaults the real API server would fill in, applied on every write. */
static void apply_defaults(const struct target *t, json_t *o, bool create)
{
	const char *g = t->rt->group, *p = t->rt->plural;
	if ((!strcmp(g, "apps") && (!strcmp(p, "deployments") || !strcmp(p, "statefulsets") ||
	    !strcmp(p, "replicasets"))) || (!*g && !strcmp(p, "replicationcontrollers"))) {
		json_t *spec = ka_jobj(o, "spec");
		if (!json_object_get(spec, "replicas"))
			json_object_set_new(spec, "replicas", json_integer(1));
	}
	if (!*g && !strcmp(p, "services")) {
		json_t *spec = ka_jobj(o, "spec");
		const char *type = ka_jstr(spec, "type");
		if (!type)
			json_object_set_new(spec, "type", json_string(type = "ClusterIP"));
		if (strcmp(type, "ExternalName") && !json_object_get(spec, "clusterIP") && create) {
			char ip[32];
			snprintf(ip, sizeof(ip), "10.96.%u.%u", (svc_ip_next >> 8) & 255, svc_ip_next & 255);
			svc_ip_next++;
			json_object_set_new(spec, "clusterIP", json_string(ip));
			json_object_set_new(spec, "clusterIPs", json_pack("[s]", ip));
		}
		if (!json_object_get(spec, "sessionAffinity"))
			json_object_set_new(spec, "sessionAffinity", json_string("None"));
		size_t i;
		json_t *port;
		json_array_foreach(json_object_get(spec, "ports"), i, port) {
			if (!json_is_object(port))
				continue;
			if (!json_object_get(port, "protocol"))
				json_object_set_new(port, "protocol", json_string("TCP"));
			if (!json_object_get(port, "targetPort") && json_object_get(port, "port"))
				json_object_set(port, "targetPort", json_object_get(port, "port"));
		}
		if (!json_object_get(o, "status"))
			json_object_set_new(o, "status", json_pack("{s:{}}", "loadBalancer"));
	}
	if (!*g && !strcmp(p, "namespaces")) {
		json_t *md = ka_jobj(o, "metadata");
		json_t *labels = ka_jobj(md, "labels");
		json_object_set_new(labels, "kubernetes.io/metadata.name", json_string(ka_jstr(md, "name")));
		if (!json_object_get(o, "spec"))
			json_object_set_new(o, "spec", json_pack("{s:[s]}", "finalizers", "kubernetes"));
		if (!json_object_get(o, "status"))
			json_object_set_new(o, "status", json_pack("{s:s}", "phase", "Active"));
	}
}

static void ns_try_finish(const char *ns);

/* Delete now: the final state (copy of the stored one) goes into the DELETED event. */
static json_t *remove_now(struct ka_obj *cur)
{
	char *ns = cur->ns ? ka_strdup(cur->ns) : NULL;
	json_t *final = json_deep_copy(cur->o);
	json_incref(final);
	ka_store_remove(cur, final);
	if (ns)
		ns_try_finish(ns); /* the last object of a terminating namespace */
	free(ns);
	return final;
}

/*
 * Finish a write of nw (owned) over cur (NULL: create). Fixes identity
 * metadata, generation, managedFields (unless mf_done), defaults; stores
 * unless dryRun; answers the request.
 */
static void write_obj(struct rq *r, struct target *t, struct ka_obj *cur, json_t *nw,
    const char *manager, bool mf_done)
{
	bool dry = qget(r, "dryRun") != NULL;
	const char *sub = t->sub ? t->sub : "";
	json_t *md = ka_jobj(nw, "metadata");
	json_object_set_new(nw, "apiVersion", json_string(t->gv));
	json_object_set_new(nw, "kind", json_string(t->rt->kind));
	if (!cur) {
		char uid[37], ts[32];
		ka_uuid(uid);
		ka_time_now(ts);
		json_object_set_new(md, "uid", json_string(uid));
		json_object_set_new(md, "creationTimestamp", json_string(ts));
		if (t->rt->has_generation)
			json_object_set_new(md, "generation", json_integer(1));
		else
			json_object_del(md, "generation");
		json_object_del(md, "resourceVersion");
		json_object_del(md, "deletionTimestamp");
		json_object_del(md, "deletionGracePeriodSeconds");
		json_object_del(md, "selfLink");
		if (t->rt->has_status)
			json_object_del(nw, "status");
		if (!mf_done)
			ka_mf_update(NULL, nw, manager, "", t->gv, t->rt->has_status);
		apply_defaults(t, nw, true);
		if (dry) {
			send_json(r, 201, out_obj(nw, t->gv));
			json_decref(nw);
			return;
		}
		struct ka_obj *ob = ka_store_put(t->rt, NULL, nw);
		send_json(r, 201, out_obj(ob->o, t->gv));
		return;
	}

	json_t *old = cur->o, *omd = json_object_get(old, "metadata");
	/* Optimistic concurrency: a resourceVersion in the body must match. */
	const char *want = ka_jstr(md, "resourceVersion");
	char have[32];
	snprintf(have, sizeof(have), "%llu", (unsigned long long)cur->rv);
	if (want && *want && strcmp(want, have)) {
		send_status(r, 409, "Conflict", details(t, cur->name),
		    "Operation cannot be fulfilled on %s \"%s\": the object has been modified; "
		    "please apply your changes to the latest version and try again", t->res, cur->name);
		json_decref(nw);
		return;
	}
	if (!strcmp(sub, "status")) {
		/* Through /status only the status changes. */
		json_t *st = json_incref(json_object_get(nw, "status"));
		json_t *mf = json_incref(json_object_get(md, "managedFields"));
		json_decref(nw);
		nw = json_deep_copy(old);
		md = json_object_get(nw, "metadata");
		if (st)
			json_object_set_new(nw, "status", st);
		else
			json_object_del(nw, "status");
		if (mf)
			json_object_set_new(md, "managedFields", mf);
	} else if (t->rt->has_status) {
		json_t *st = json_object_get(old, "status");
		if (st)
			json_object_set(nw, "status", st);
		else
			json_object_del(nw, "status");
	}
	static const char *const keep[] = {"name", "namespace", "uid", "creationTimestamp",
	    "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "resourceVersion", NULL};
	for (const char *const *k = keep; *k; k++) {
		json_t *v = json_object_get(omd, *k);
		if (v)
			json_object_set(md, *k, v);
		else
			json_object_del(md, *k);
	}
	json_object_del(md, "selfLink");
	apply_defaults(t, nw, false);
	if (t->rt->has_generation && !spec_equal(old, nw))
		json_object_set_new(md, "generation",
		    json_integer(json_integer_value(json_object_get(omd, "generation")) + 1));
	if (!mf_done)
		ka_mf_update(old, nw, manager, sub, t->gv, t->rt->has_status);
	if (json_equal(old, nw)) {
		json_decref(nw);
		send_json(r, 200, out_obj(old, t->gv));
		return;
	}
	if (dry) {
		send_json(r, 200, out_obj(nw, t->gv));
		json_decref(nw);
		return;
	}
	json_t *fin = json_object_get(md, "finalizers");
	if (json_object_get(md, "deletionTimestamp") && json_array_size(fin) == 0) {
		/* The last finalizer went away: the deletion completes. */
		json_decref(nw);
		json_t *final = remove_now(cur);
		send_json(r, 200, out_obj(final, t->gv));
		json_decref(final);
		return;
	}
	struct ka_obj *ob = ka_store_put(t->rt, cur, nw);
	send_json(r, 200, out_obj(ob->o, t->gv));
}

/* ---- body parsing ---- */

static json_t *body_json(struct rq *r, bool yaml_ok)
{
	json_error_t je;
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(r->req), "Content-Type");
	json_t *j = NULL;
	size_t i = 0;
	if (ct && strstr(ct, "protobuf")) {
		send_status(r, 415, "UnsupportedMediaType", NULL, "the body of the request was in an unknown "
		    "format - accepted media types include: application/json, application/yaml");
		return NULL;
	}
	while (i < r->blen && strchr(" \t\r\n", r->body[i]))
		i++;
	if (i < r->blen && (r->body[i] == '{' || r->body[i] == '[')) {
		j = json_loadb(r->body, r->blen, 0, &je);
		if (!j)
			send_status(r, 400, "BadRequest", NULL, "couldn't get version/kind; json parse error: %s",
			    je.text);
		return j;
	}
	if (yaml_ok || (ct && strstr(ct, "yaml"))) {
		const char *err = NULL;
		j = ka_yaml_load(r->body, r->blen, &err);
		if (!j)
			send_status(r, 400, "BadRequest", NULL, "error decoding YAML: %s", err ? err : "?");
		return j;
	}
	send_status(r, 400, "BadRequest", NULL, "the body of the request was in an unknown format");
	return NULL;
}

/* ---- namespaces ---- */

static bool ns_check(struct rq *r, const struct target *t, bool creating)
{
	if (!t->rt->namespaced)
		return true;
	struct ka_obj *ns = ka_obj_get(ns_rt(), NULL, t->ns);
	if (!ns) {
		send_status(r, 404, "NotFound", json_pack("{s:s,s:s}", "name", t->ns, "kind", "namespaces"),
		    "namespaces \"%s\" not found", t->ns);
		return false;
	}
	if (creating && ka_jpath(ns->o, "metadata.deletionTimestamp")) {
		send_status(r, 403, "Forbidden", details(t, ""),
		    "%s is forbidden: unable to create new content in namespace %s because it is being terminated",
		    t->res, t->ns);
		return false;
	}
	return true;
}

static void ns_try_finish(const char *ns)
{
	struct ka_obj *n = ka_obj_get(ns_rt(), NULL, ns);
	if (!n || !ka_jpath(n->o, "metadata.deletionTimestamp") || ka_ns_count(ns) > 0 ||
	    json_array_size(ka_jpath(n->o, "metadata.finalizers")) > 0)
		return;
	json_t *final = remove_now(n);
	json_decref(final);
}

/* Begin deleting cur; returns the object to answer with (owned). */
static json_t *delete_obj(struct ka_obj *cur)
{
	json_t *fin = ka_jpath(cur->o, "metadata.finalizers");
	bool is_ns = !*cur->rt->group && !strcmp(cur->rt->plural, "namespaces");
	if (json_array_size(fin) == 0 && !is_ns)
		return remove_now(cur);
	if (ka_jpath(cur->o, "metadata.deletionTimestamp"))
		return json_incref(cur->o);
	char ts[32];
	ka_time_now(ts);
	json_t *nw = json_deep_copy(cur->o);
	json_t *md = ka_jobj(nw, "metadata");
	json_object_set_new(md, "deletionTimestamp", json_string(ts));
	json_object_set_new(md, "deletionGracePeriodSeconds", json_integer(0));
	if (is_ns)
		json_object_set_new(ka_jobj(nw, "status"), "phase", json_string("Terminating"));
	else if (cur->rt->has_generation)
		json_object_set_new(md, "generation",
		    json_integer(json_integer_value(json_object_get(md, "generation")) + 1));
	struct ka_obj *ob = ka_store_put(cur->rt, cur, nw);
	json_t *ret = json_incref(ob->o);
	if (is_ns) {
		/* Delete everything in the namespace, then the namespace itself. */
		char *name = ka_strdup(ob->name);
		for (struct ka_rtype *rt = ka_rtypes; rt; rt = rt->next) {
			if (!rt->namespaced || !rt->objs.n)
				continue;
			size_t n = 0;
			struct ka_obj **v = ka_calloc(rt->objs.n, sizeof(*v));
			KA_MAP_FOREACH(&rt->objs, e) {
				struct ka_obj *o = e->val;
				if (o->ns && !strcmp(o->ns, name))
					v[n++] = o;
			}
			for (size_t i = 0; i < n; i++)
				json_decref(delete_obj(v[i]));
			free(v);
		}
		ns_try_finish(name);
		free(name);
	}
	return ret;
}

/* ---- CRDs ---- */

void ka_crd_sync(json_t *crd, bool deleted)
{
	const char *group = ka_jstr(crd, "spec.group"), *plural = ka_jstr(crd, "spec.names.plural");
	const char *kind = ka_jstr(crd, "spec.names.kind"), *scope = ka_jstr(crd, "spec.scope");
	if (!group || !plural || !kind)
		return;
	struct ka_rtype *rt = ka_rtype_find(group, NULL, plural);
	if (deleted) {
		if (!rt || !rt->is_crd)
			return;
		ka_watch_close_all(rt);
		while (rt->objs.n) {
			struct ka_obj *o = NULL;
			KA_MAP_FOREACH(&rt->objs, e) {
				o = e->val;
				break;
			}
			if (!o)
				break;
			json_decref(remove_now(o));
		}
		rt->active = false;
		return;
	}
	if (rt && !rt->is_crd)
		return; /* never shadow a built-in type */
	const char *versions[8];
	int nv = 0;
	bool has_status = false;
	size_t i;
	json_t *v;
	json_array_foreach(ka_jpath(crd, "spec.versions"), i, v) {
		const char *name = ka_jstr(v, "name");
		if (!name || json_is_false(json_object_get(v, "served")) || nv >= 8)
			continue;
		/* The storage version is preferred: list it first. */
		if (json_is_true(json_object_get(v, "storage")) && nv > 0) {
			versions[nv++] = versions[0];
			versions[0] = name;
		} else
			versions[nv++] = name;
		if (ka_jpath(v, "subresources.status"))
			has_status = true;
	}
	if (!nv)
		return;
	char shorts[256] = "";
	json_array_foreach(ka_jpath(crd, "spec.names.shortNames"), i, v) {
		if (!json_is_string(v))
			continue;
		size_t len = strlen(shorts);
		snprintf(shorts + len, sizeof(shorts) - len, "%s%s", len ? "," : "", json_string_value(v));
	}
	bool all = false;
	json_array_foreach(ka_jpath(crd, "spec.names.categories"), i, v)
		if (json_is_string(v) && !strcmp(json_string_value(v), "all"))
			all = true;
	rt = ka_rtype_add(group, versions[0], plural, ka_jstr(crd, "spec.names.singular"), kind,
	    !scope || strcmp(scope, "Cluster"), shorts, has_status, all);
	for (int j = 1; j < nv; j++)
		if (rt->nversions < 8)
			rt->versions[rt->nversions++] = ka_strdup(versions[j]);
	rt->is_crd = true;
	rt->has_generation = true;
	if (!rt->crd_name)
		rt->crd_name = ka_strdup(ka_jstr(crd, "metadata.name"));
}

/* ---- watches ---- */

static void watch_sweep(evutil_socket_t fd, short what, void *arg)
{
	for (struct ka_rtype *rt = ka_rtypes; rt; rt = rt->next) {
		struct ka_watch **pp = &rt->watchers;
		while (*pp) {
			struct ka_watch *w = *pp;
			if (!w->dead) {
				pp = &w->next;
				continue;
			}
			*pp = w->next;
			if (w->bm_ev)
				event_free(w->bm_ev);
			if (w->to_ev)
				event_free(w->to_ev);
			ka_selector_free(w->lsel);
			ka_selector_free(w->fsel);
			free(w->ns);
			free(w);
		}
	}
}

static void watch_kill(struct ka_watch *w)
{
	if (w->dead)
		return;
	w->dead = true;
	if (!sweep_ev)
		sweep_ev = event_new(ka_base, -1, 0, watch_sweep, NULL);
	event_active(sweep_ev, 0, 0);
}

/* End the response normally (timeout, CRD gone, 410). */
static void watch_end(struct ka_watch *w)
{
	if (w->dead)
		return;
	if (w->evcon)
		evhttp_connection_set_closecb(w->evcon, NULL, NULL);
	if (w->req)
		evhttp_send_reply_end(w->req);
	w->req = NULL;
	watch_kill(w);
}

static void watch_closed(struct evhttp_connection *evcon, void *arg)
{
	struct ka_watch *w = arg;
	/* A failed connection detaches the unfinished request, which is then ours to free. */
	if (w->req && evhttp_request_get_connection(w->req) == NULL)
		evhttp_request_free(w->req);
	w->req = NULL;
	w->evcon = NULL;
	watch_kill(w);
}

static void watch_send(struct ka_watch *w, const char *type, json_t *obj)
{
	if (w->dead || !w->req)
		return;
	if (!evhttp_request_get_connection(w->req)) {
		evhttp_request_free(w->req);
		w->req = NULL;
		watch_kill(w);
		return;
	}
	json_t *o = out_obj(obj, w->gv);
	json_t *ev = json_pack("{s:s,s:o}", "type", type, "object", o);
	char *s = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, s, strlen(s));
	evbuffer_add(b, "\n", 1);
	free(s);
	evhttp_send_reply_chunk(w->req, b);
	evbuffer_free(b);
}

static bool watch_match(const struct ka_watch *w, json_t *o)
{
	return o && ka_selector_match_labels(w->lsel, ka_jpath(o, "metadata.labels")) &&
	    ka_selector_match_fields(w->fsel, o);
}

static void watch_deliver(struct ka_watch *w, const struct ka_event *ev)
{
	if (w->dead || ev->rt != w->rt)
		return;
	if (w->ns && (!ev->ns || strcmp(w->ns, ev->ns)))
		return;
	bool mn = watch_match(w, ev->obj), mo = ev->old && watch_match(w, ev->old);
	switch (ev->type) {
	case KA_ADDED:
		if (mn)
			watch_send(w, "ADDED", ev->obj);
		break;
	case KA_MODIFIED:
		if (mn && mo)
			watch_send(w, "MODIFIED", ev->obj);
		else if (mn)
			watch_send(w, "ADDED", ev->obj);
		else if (mo)
			watch_send(w, "DELETED", ev->obj);
		break;
	case KA_DELETED:
		if (mn || mo)
			watch_send(w, "DELETED", ev->obj);
		break;
	}
}

void ka_watch_notify(const struct ka_event *ev)
{
	for (struct ka_watch *w = ev->rt->watchers; w; w = w->next)
		watch_deliver(w, ev);
}

void ka_watch_close_all(struct ka_rtype *rt)
{
	for (struct ka_watch *w = rt->watchers; w; w = w->next)
		watch_end(w);
}

static void send_bookmark(struct ka_watch *w, bool initial_end)
{
	char rv[32];
	snprintf(rv, sizeof(rv), "%llu", (unsigned long long)ka_rv);
	json_t *o = json_pack("{s:s,s:s,s:{s:s}}", "kind", w->rt->kind, "apiVersion", w->gv,
	    "metadata", "resourceVersion", rv);
	if (initial_end)
		json_object_set_new(json_object_get(o, "metadata"), "annotations",
		    json_pack("{s:s}", "k8s.io/initial-events-end", "true"));
	watch_send(w, "BOOKMARK", o);
	json_decref(o);
}

static void watch_bookmark_cb(evutil_socket_t fd, short what, void *arg)
{
	send_bookmark(arg, false);
}

static void watch_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	watch_end(arg);
}

static void replay_cb(const struct ka_event *ev, void *arg)
{
	watch_deliver(arg, ev);
}

static void watch_start(struct rq *r, struct target *t, struct ka_selector *lsel,
    struct ka_selector *fsel)
{
	struct ka_watch *w = ka_calloc(1, sizeof(*w));
	w->req = r->req;
	w->evcon = evhttp_request_get_connection(r->req);
	w->rt = t->rt;
	w->ns = t->ns ? ka_strdup(t->ns) : NULL;
	snprintf(w->gv, sizeof(w->gv), "%s", t->gv);
	w->lsel = lsel;
	w->fsel = fsel;
	w->bookmarks = qtrue(r, "allowWatchBookmarks");
	w->next = t->rt->watchers;
	t->rt->watchers = w;

	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "Cache-Control", "no-cache, private");
	/* One watch per connection, closed at the end: the connection is
	 * never reused, so it is safe to keep reading it (below). */
	evhttp_add_header(h, "Connection", "close");
	evhttp_send_reply_start(r->req, 200, "OK");
	if (w->evcon) {
		evhttp_connection_set_closecb(w->evcon, watch_closed, w);
		/* evhttp stops reading while it writes a response, so a
		 * client that goes away would only be noticed at the next
		 * write. Reading again with a huge low-watermark never calls
		 * evhttp's read callback but does deliver EOF and errors to
		 * its error callback, which fails the connection. */
		struct bufferevent *bev = evhttp_connection_get_bufferevent(w->evcon);
		bufferevent_set_timeouts(bev, NULL, NULL);
		bufferevent_setwatermark(bev, EV_READ, (size_t)1 << 30, 0);
		bufferevent_enable(bev, EV_READ);
	}

	const char *rvs = qget(r, "resourceVersion");
	if (rvs && *rvs && strcmp(rvs, "0")) {
		char *end;
		unsigned long long from = strtoull(rvs, &end, 10);
		if (*end || !ka_ring_since(from, replay_cb, w)) {
			char msg[128];
			snprintf(msg, sizeof(msg), "too old resource version: %s (%llu)", rvs,
			    (unsigned long long)ka_ring_dropped + 1);
			json_t *st = status_obj(410, "Expired", NULL, msg);
			/* watch_send rewrites apiVersion; the Status must keep v1. */
			json_t *ev = json_pack("{s:s,s:o}", "type", "ERROR", "object", st);
			char *s = json_dumps(ev, JSON_COMPACT);
			json_decref(ev);
			struct evbuffer *b = evbuffer_new();
			evbuffer_add_printf(b, "%s\n", s);
			free(s);
			evhttp_send_reply_chunk(r->req, b);
			evbuffer_free(b);
			watch_end(w);
			return;
		}
	} else {
		/* No resourceVersion: the current state as ADDED events first. */
		KA_MAP_FOREACH(&t->rt->objs, e) {
			struct ka_obj *o = e->val;
			if (w->ns && (!o->ns || strcmp(o->ns, w->ns)))
				continue;
			if (watch_match(w, o->o))
				watch_send(w, "ADDED", o->o);
		}
		if (w->bookmarks && qtrue(r, "sendInitialEvents"))
			send_bookmark(w, true);
	}
	if (w->bookmarks && ka_set.bookmark_ms > 0) {
		struct timeval tv = {ka_set.bookmark_ms / 1000, (ka_set.bookmark_ms % 1000) * 1000};
		w->bm_ev = event_new(ka_base, -1, EV_PERSIST, watch_bookmark_cb, w);
		event_add(w->bm_ev, &tv);
	}
	const char *ts = qget(r, "timeoutSeconds");
	if (ts && atoi(ts) > 0) {
		struct timeval tv = {atoi(ts), 0};
		w->to_ev = evtimer_new(ka_base, watch_timeout_cb, w);
		evtimer_add(w->to_ev, &tv);
	}
}

/* ---- verbs ---- */

static int cmp_obj(const void *a, const void *b)
{
	return strcmp((*(struct ka_obj *const *)a)->key, (*(struct ka_obj *const *)b)->key);
}

static bool parse_selectors(struct rq *r, struct ka_selector **ls, struct ka_selector **fs)
{
	const char *err = NULL;
	*ls = *fs = NULL;
	const char *l = qget(r, "labelSelector"), *f = qget(r, "fieldSelector");
	if (l && *l && !(*ls = ka_selector_parse(l, &err))) {
		send_status(r, 400, "BadRequest", NULL, "unable to parse requirement: %s: %s", l, err);
		return false;
	}
	if (f && *f && !(*fs = ka_selector_parse(f, &err))) {
		ka_selector_free(*ls);
		send_status(r, 400, "BadRequest", NULL, "invalid field selector: %s: %s", f, err);
		return false;
	}
	return true;
}

static void do_list(struct rq *r, struct target *t)
{
	struct ka_selector *ls, *fs;
	if (!parse_selectors(r, &ls, &fs))
		return;
	if (qtrue(r, "watch")) {
		watch_start(r, t, ls, fs);
		return;
	}
	const char *lim = qget(r, "limit"), *cont = qget(r, "continue");
	long limit = lim ? atol(lim) : 0;
	uint64_t list_rv = ka_rv;
	char *start = NULL;
	if (cont && *cont) {
		char *raw = ka_unbase64(cont, NULL);
		json_t *c = raw ? json_loads(raw, 0, NULL) : NULL;
		free(raw);
		if (!c || !json_is_integer(json_object_get(c, "rv")) || !ka_jstr(c, "start")) {
			json_decref(c);
			ka_selector_free(ls);
			ka_selector_free(fs);
			send_status(r, 400, "BadRequest", NULL, "continue key is not valid");
			return;
		}
		list_rv = (uint64_t)json_integer_value(json_object_get(c, "rv"));
		start = ka_strdup(ka_jstr(c, "start"));
		json_decref(c);
		if (list_rv < ka_ring_dropped) {
			free(start);
			ka_selector_free(ls);
			ka_selector_free(fs);
			send_status(r, 410, "Expired", NULL,
			    "The provided continue parameter is too old to display a consistent list result. "
			    "You can start a new list without the continue parameter.");
			return;
		}
	}
	size_t n = 0;
	struct ka_obj **v = ka_calloc(t->rt->objs.n + 1, sizeof(*v));
	KA_MAP_FOREACH(&t->rt->objs, e) {
		struct ka_obj *o = e->val;
		if (t->ns && (!o->ns || strcmp(o->ns, t->ns)))
			continue;
		if (start && strcmp(o->key, start) <= 0)
			continue;
		if (!ka_selector_match_labels(ls, ka_jpath(o->o, "metadata.labels")) ||
		    !ka_selector_match_fields(fs, o->o))
			continue;
		v[n++] = o;
	}
	qsort(v, n, sizeof(*v), cmp_obj);
	size_t take = limit > 0 && (size_t)limit < n ? (size_t)limit : n;
	json_t *items = json_array();
	for (size_t i = 0; i < take; i++) {
		json_array_append_new(items, out_obj(v[i]->o, t->gv));
		ka_ctrl_on_read(v[i]);
	}
	char rvs[32];
	snprintf(rvs, sizeof(rvs), "%llu", (unsigned long long)list_rv);
	json_t *meta = json_pack("{s:s}", "resourceVersion", rvs);
	if (take < n) {
		json_t *c = json_pack("{s:I,s:s}", "rv", (json_int_t)list_rv, "start", v[take - 1]->key);
		char *cs = json_dumps(c, JSON_COMPACT);
		char *tok = ka_base64(cs, strlen(cs));
		json_object_set_new(meta, "continue", json_string(tok));
		json_object_set_new(meta, "remainingItemCount", json_integer((json_int_t)(n - take)));
		free(tok);
		free(cs);
		json_decref(c);
	}
	send_json(r, 200, json_pack("{s:s,s:s,s:o,s:o}", "kind", t->rt->list_kind, "apiVersion", t->gv,
	    "metadata", meta, "items", items));
	free(v);
	free(start);
	ka_selector_free(ls);
	ka_selector_free(fs);
}

static void do_create(struct rq *r, struct target *t)
{
	json_t *o = body_json(r, false);
	if (!o)
		return;
	if (!json_is_object(o)) {
		json_decref(o);
		send_status(r, 400, "BadRequest", NULL, "the body of the request must be an object");
		return;
	}
	const char *kind = ka_jstr(o, "kind"), *av = ka_jstr(o, "apiVersion");
	if ((kind && strcmp(kind, t->rt->kind)) || (av && strcmp(av, t->gv))) {
		send_status(r, 400, "BadRequest", NULL,
		    "the API version in the data (%s) does not match the expected API version (%s)",
		    av ? av : "", t->gv);
		json_decref(o);
		return;
	}
	json_t *md = ka_jobj(o, "metadata");
	const char *name = ka_jstr(md, "name"), *gen = ka_jstr(md, "generateName");
	char nbuf[300];
	if ((!name || !*name) && gen && *gen) {
		char suf[8];
		ka_rand_suffix(suf, 5);
		snprintf(nbuf, sizeof(nbuf), "%s%s", gen, suf);
		json_object_set_new(md, "name", json_string(nbuf));
		name = ka_jstr(md, "name");
	}
	if (!name || !*name) {
		json_t *d = details(t, "");
		json_object_set_new(d, "causes", json_pack("[{s:s,s:s,s:s}]", "reason", "FieldValueRequired",
		    "message", "Required value: name or generateName is required", "field", "metadata.name"));
		send_status(r, 422, "Invalid", d, "%s \"\" is invalid: metadata.name: Required value: "
		    "name or generateName is required", t->rt->kind);
		json_decref(o);
		return;
	}
	if (t->rt->namespaced) {
		const char *bns = ka_jstr(md, "namespace");
		if (bns && *bns && strcmp(bns, t->ns)) {
			send_status(r, 400, "BadRequest", NULL, "the namespace of the provided object does "
			    "not match the namespace sent on the request");
			json_decref(o);
			return;
		}
		json_object_set_new(md, "namespace", json_string(t->ns));
	} else {
		json_object_del(md, "namespace");
	}
	if (!strcmp(t->rt->plural, "customresourcedefinitions")) {
		const char *p = ka_jstr(o, "spec.names.plural"), *g = ka_jstr(o, "spec.group");
		char want[600];
		snprintf(want, sizeof(want), "%s.%s", p ? p : "", g ? g : "");
		if (!p || !g || strcmp(want, name)) {
			send_status(r, 422, "Invalid", details(t, name), "CustomResourceDefinition.apiextensions.k8s.io "
			    "\"%s\" is invalid: metadata.name: Invalid value: \"%s\": must be spec.names.plural+\".\"+spec.group",
			    name, name);
			json_decref(o);
			return;
		}
	}
	if (!ns_check(r, t, true)) {
		json_decref(o);
		return;
	}
	if (ka_obj_get(t->rt, t->ns, name)) {
		send_status(r, 409, "AlreadyExists", details(t, name), "%s \"%s\" already exists", t->res, name);
		json_decref(o);
		return;
	}
	write_obj(r, t, NULL, o, manager_of(r), false);
}

static void do_update(struct rq *r, struct target *t, struct ka_obj *cur)
{
	json_t *o = body_json(r, false);
	if (!o)
		return;
	const char *name = ka_jstr(o, "metadata.name");
	if (!json_is_object(o) || (name && strcmp(name, t->name))) {
		send_status(r, 400, "BadRequest", NULL, "the name of the object (%s) does not match the name "
		    "on the URL (%s)", name ? name : "", t->name);
		json_decref(o);
		return;
	}
	if (!cur) {
		not_found(r, t, t->name);
		json_decref(o);
		return;
	}
	write_obj(r, t, cur, o, manager_of(r), false);
}

/* Fields the API server refuses to change once set, as the real one does
 * (422 Invalid, "field is immutable"); NULL when `res` may replace `cur`. */
static const char *immutable_field(const struct target *t, json_t *cur, json_t *res)
{
	static const struct { const char *group, *kind, *field; } rules[] = {
		{ "apps", "Deployment", "spec.selector" },
		{ "apps", "StatefulSet", "spec.selector" },
		{ "apps", "DaemonSet", "spec.selector" },
		{ "batch", "Job", "spec.selector" },
		{ "batch", "Job", "spec.template" },
	};
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		if (strcmp(t->rt->group, rules[i].group) || strcmp(t->rt->kind, rules[i].kind))
			continue;
		json_t *a = ka_jpath(cur, rules[i].field), *b = ka_jpath(res, rules[i].field);
		if (a && !json_equal(a, b))
			return rules[i].field;
	}
	return NULL;
}

static void do_apply(struct rq *r, struct target *t, struct ka_obj *cur)
{
	const char *fm = qget(r, "fieldManager");
	if (!fm || !*fm) {
		send_status(r, 400, "BadRequest", NULL, "PATCH, application/apply-patch+yaml requires "
		    "fieldManager to be set");
		return;
	}
	json_t *cfg = body_json(r, true);
	if (!cfg)
		return;
	const char *kind = ka_jstr(cfg, "kind"), *av = ka_jstr(cfg, "apiVersion");
	const char *name = ka_jstr(cfg, "metadata.name"), *ns = ka_jstr(cfg, "metadata.namespace");
	const char *err = NULL;
	if (!json_is_object(cfg) || !kind || !av)
		err = "apply configuration must have apiVersion and kind";
	else if (strcmp(kind, t->rt->kind) || strcmp(av, t->gv))
		err = "apply configuration kind or apiVersion does not match the request";
	else if (name && strcmp(name, t->name))
		err = "the name of the object does not match the name on the URL";
	else if (t->rt->namespaced && ns && *ns && strcmp(ns, t->ns))
		err = "the namespace of the provided object does not match the namespace sent on the request";
	else if (ka_jpath(cfg, "metadata.managedFields"))
		err = "metadata.managedFields must be nil";
	if (err) {
		send_status(r, 400, "BadRequest", NULL, "%s", err);
		json_decref(cfg);
		return;
	}
	if (!cur && t->sub) {
		not_found(r, t, t->name);
		json_decref(cfg);
		return;
	}
	if (!cur && !ns_check(r, t, true)) {
		json_decref(cfg);
		return;
	}
	json_t *cerr = NULL;
	json_t *res = ka_ssa_apply(cur ? cur->o : NULL, cfg, fm, qtrue(r, "force"), t->sub ? t->sub : "",
	    t->gv, t->rt->has_status, &cerr);
	/* A resourceVersion in the apply configuration is a precondition. */
	const char *want = ka_jstr(cfg, "metadata.resourceVersion");
	json_decref(cfg);
	if (!res) {
		send_json(r, 409, cerr);
		return;
	}
	const char *fixed = cur ? immutable_field(t, cur->o, res) : NULL;
	if (fixed) {
		send_status(r, 422, "Invalid", details(t, t->name), "%s.%s \"%s\" is invalid: %s: "
		    "Invalid value: field is immutable", t->rt->kind, t->rt->group, t->name, fixed);
		json_decref(res);
		return;
	}
	json_t *md = ka_jobj(res, "metadata");
	if (want)
		json_object_set_new(md, "resourceVersion", json_string(want));
	if (!cur) {
		json_object_set_new(md, "name", json_string(t->name));
		if (t->rt->namespaced)
			json_object_set_new(md, "namespace", json_string(t->ns));
	}
	write_obj(r, t, cur, res, fm, true);
}

static void do_patch(struct rq *r, struct target *t, struct ka_obj *cur)
{
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(r->req), "Content-Type");
	if (ct && !strncmp(ct, "application/apply-patch", 23)) {
		do_apply(r, t, cur);
		return;
	}
	if (!cur) {
		not_found(r, t, t->name);
		return;
	}
	json_t *p = body_json(r, false);
	if (!p)
		return;
	json_t *nw = NULL;
	if (ct && !strncmp(ct, "application/merge-patch+json", 28))
		nw = ka_merge_patch(cur->o, p);
	else if (ct && !strncmp(ct, "application/strategic-merge-patch+json", 38)) {
		if (t->rt->is_crd) {
			json_decref(p);
			send_status(r, 415, "UnsupportedMediaType", NULL, "the body of the request was in an "
			    "unknown format - accepted media types include: application/json-patch+json, "
			    "application/merge-patch+json, application/apply-patch+yaml");
			return;
		}
		nw = ka_strategic_patch(cur->o, p);
	} else if (ct && !strncmp(ct, "application/json-patch+json", 27)) {
		const char *err = NULL;
		nw = ka_json_patch(cur->o, p, &err);
		if (!nw) {
			json_decref(p);
			send_status(r, 422, "Invalid", NULL, "%s", err);
			return;
		}
	} else {
		json_decref(p);
		send_status(r, 415, "UnsupportedMediaType", NULL, "the body of the request was in an unknown "
		    "format - accepted media types include: application/json-patch+json, "
		    "application/merge-patch+json, application/apply-patch+yaml, "
		    "application/strategic-merge-patch+json");
		return;
	}
	json_decref(p);
	if (!json_is_object(nw)) {
		json_decref(nw);
		send_status(r, 422, "Invalid", NULL, "patch result is not an object");
		return;
	}
	/* A resourceVersion the patch did not set is the current one. */
	write_obj(r, t, cur, nw, manager_of(r), false);
}

static void do_delete(struct rq *r, struct target *t, struct ka_obj *cur)
{
	json_t *opts = NULL;
	if (r->blen) {
		json_error_t je;
		opts = json_loadb(r->body, r->blen, 0, &je);
		if (!opts) {
			send_status(r, 400, "BadRequest", NULL, "invalid DeleteOptions: %s", je.text);
			return;
		}
	}
	const char *pp = ka_jstr(opts, "propagationPolicy");
	if (!pp)
		pp = qget(r, "propagationPolicy");
	if (pp && strcmp(pp, "Orphan") && strcmp(pp, "Background") && strcmp(pp, "Foreground")) {
		send_status(r, 422, "Invalid", NULL, "propagationPolicy: Unsupported value: \"%s\": "
		    "supported values: \"Foreground\", \"Background\", \"Orphan\"", pp);
		json_decref(opts);
		return;
	}
	bool dry = qget(r, "dryRun") != NULL || json_array_size(json_object_get(opts, "dryRun")) > 0;
	if (!cur) {
		json_decref(opts);
		/* No name: delete the collection (label/field selectors apply). */
		if (!t->name) {
			struct ka_selector *ls, *fs;
			if (!parse_selectors(r, &ls, &fs))
				return;
			size_t n = 0;
			struct ka_obj **v = ka_calloc(t->rt->objs.n + 1, sizeof(*v));
			KA_MAP_FOREACH(&t->rt->objs, e) {
				struct ka_obj *o = e->val;
				if (t->ns && (!o->ns || strcmp(o->ns, t->ns)))
					continue;
				if (ka_selector_match_labels(ls, ka_jpath(o->o, "metadata.labels")) &&
				    ka_selector_match_fields(fs, o->o))
					v[n++] = o;
			}
			qsort(v, n, sizeof(*v), cmp_obj);
			json_t *items = json_array();
			for (size_t i = 0; i < n; i++) {
				json_t *d = dry ? json_incref(v[i]->o) : delete_obj(v[i]);
				json_array_append_new(items, out_obj(d, t->gv));
				json_decref(d);
			}
			free(v);
			ka_selector_free(ls);
			ka_selector_free(fs);
			char rvs[32];
			snprintf(rvs, sizeof(rvs), "%llu", (unsigned long long)ka_rv);
			send_json(r, 200, json_pack("{s:s,s:s,s:{s:s},s:o}", "kind", t->rt->list_kind,
			    "apiVersion", t->gv, "metadata", "resourceVersion", rvs, "items", items));
			return;
		}
		not_found(r, t, t->name);
		return;
	}
	const char *puid = ka_jstr(opts, "preconditions.uid"), *prv = ka_jstr(opts, "preconditions.resourceVersion");
	char have[32];
	snprintf(have, sizeof(have), "%llu", (unsigned long long)cur->rv);
	if ((puid && strcmp(puid, ka_jstr(cur->o, "metadata.uid"))) || (prv && strcmp(prv, have))) {
		send_status(r, 409, "Conflict", details(t, cur->name), "Operation cannot be fulfilled on %s "
		    "\"%s\": the precondition was not met", t->res, cur->name);
		json_decref(opts);
		return;
	}
	json_decref(opts);
	if (dry) {
		send_json(r, 200, out_obj(cur->o, t->gv));
		return;
	}
	json_t *d = delete_obj(cur);
	send_json(r, 200, out_obj(d, t->gv));
	json_decref(d);
}

void ka_controller_write_status(struct ka_obj *cur, json_t *status)
{
	json_t *nw = json_copy(cur->o);
	json_t *md = json_copy(json_object_get(cur->o, "metadata"));
	json_object_set_new(nw, "metadata", md);
	json_object_set(nw, "status", status);
	char gv[300];
	snprintf(gv, sizeof(gv), "%s%s%s", cur->rt->group, *cur->rt->group ? "/" : "", cur->rt->versions[0]);
	ka_mf_update(cur->o, nw, "kube-controller-manager", cur->rt->has_status ? "status" : "", gv,
	    cur->rt->has_status);
	ka_store_put(cur->rt, cur, nw);
}

/* ---- EKS tokens ---- */

struct eks_answer {
	char buf[4096];
	size_t len;
};

static size_t eks_body(char *p, size_t size, size_t n, void *arg)
{
	struct eks_answer *b = arg;
	size_t take = size * n;
	if (take > sizeof(b->buf) - 1 - b->len)
		take = sizeof(b->buf) - 1 - b->len;
	memcpy(b->buf + b->len, p, take);
	b->len += take;
	b->buf[b->len] = 0;
	return size * n;
}

/* base64url without padding, decoded into out (NUL-terminated); -1 if not. */
static int b64url_decode(char *out, size_t cap, const char *in)
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned v = 0;
	int bits = 0;
	size_t n = 0;
	for (; *in; in++) {
		const char *c = strchr(al, *in);
		if (!c)
			return -1;
		v = v << 6 | (unsigned)(c - al);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n + 1 >= cap)
				return -1;
			out[n++] = (char)(v >> bits & 0xff);
		}
	}
	out[n] = 0;
	return 0;
}

/* The tokens STS accepted so far (a small ring: tests make a handful). */
static char *eks_seen[64];
static unsigned eks_nseen;

static bool eks_token_ok(const char *tok)
{
	char url[4096], date[17] = "";
	if (!ka_set.eks_sts || strncmp(tok, "k8s-aws-v1.", 11) ||
	    b64url_decode(url, sizeof(url), tok + 11) < 0 ||
	    strncmp(url, ka_set.eks_sts, strlen(ka_set.eks_sts)))
		return false;
	const char *d = strstr(url, "X-Amz-Date=");
	if (d)
		snprintf(date, sizeof(date), "%.16s", d + 11);
	struct tm tm = {0};
	if (!d || !strptime(date, "%Y%m%dT%H%M%SZ", &tm))
		return false;
	int life = ka_set.eks_token_life_s > 0 ? ka_set.eks_token_life_s : 900;
	if (time(NULL) > timegm(&tm) + life) {
		fprintf(stderr, "kubeapi: EKS token of %s expired\n", date);
		return false;
	}
	for (unsigned i = 0; i < sizeof(eks_seen) / sizeof(eks_seen[0]); i++)
		if (eks_seen[i] && !strcmp(eks_seen[i], tok))
			return true;
	/* what aws-iam-authenticator does: GET the presigned URL with the
	 * cluster's header (blocking: a test double, once per token) */
	struct eks_answer body = { "", 0 };
	char hdr[300];
	snprintf(hdr, sizeof(hdr), "x-k8s-aws-id: %s", ka_set.eks_cluster ? ka_set.eks_cluster : "");
	CURL *h = curl_easy_init();
	struct curl_slist *hl = curl_slist_append(NULL, hdr);
	long status = 0;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, eks_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	CURLcode cc = curl_easy_perform(h);
	if (cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	bool ok = cc == CURLE_OK && status == 200 && strstr(body.buf, "<Arn>");
	fprintf(stderr, "kubeapi: EKS token of %s: STS answered %ld%s\n", date, status,
		ok ? "" : " (refused)");
	if (ok) {
		unsigned i = eks_nseen++ % (sizeof(eks_seen) / sizeof(eks_seen[0]));
		free(eks_seen[i]);
		eks_seen[i] = ka_strdup(tok);
	}
	return ok;
}

/* ---- dispatch ---- */

static bool authenticated(struct evhttp_request *req)
{
	if (!ka_set.token && !ka_set.eks_sts)
		return true;
	const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (a && !strncasecmp(a, "Bearer ", 7)) {
		const char *tok = a + 7;
		size_t n = ka_set.token ? strlen(ka_set.token) : 0;
		if (ka_set.token && strlen(tok) == n && CRYPTO_memcmp(tok, ka_set.token, n) == 0)
			return true;
		if (eks_token_ok(tok))
			return true;
	}

	struct evhttp_connection *c = evhttp_request_get_connection(req);
	struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	if (ssl) {
		X509 *peer = SSL_get1_peer_certificate(ssl);
		bool ok = peer && SSL_get_verify_result(ssl) == X509_V_OK;
		X509_free(peer);
		if (ok)
			return true;
	}
	return false;
}

static void handle_resource(struct rq *r, const char *group, const char *version, char **seg, int nseg)
{
	struct target t = {0};
	t.group = group;
	t.version = version;
	snprintf(t.gv, sizeof(t.gv), "%s%s%s", group, *group ? "/" : "", version);
	int i = 0;
	if (nseg >= 3 && !strcmp(seg[0], "namespaces") && strcmp(seg[2], "status") &&
	    strcmp(seg[2], "finalize")) {
		t.ns = seg[1];
		i = 2;
	}
	if (i >= nseg) {
		send_status(r, 404, "NotFound", NULL, "the server could not find the requested resource");
		return;
	}
	t.rt = ka_rtype_find(group, version, seg[i]);
	if (!t.rt || nseg - i > 3) {
		send_status(r, 404, "NotFound", NULL, "the server could not find the requested resource");
		return;
	}
	snprintf(t.res, sizeof(t.res), "%s%s%s", t.rt->plural, *group ? "." : "", group);
	t.name = i + 1 < nseg ? seg[i + 1] : NULL;
	t.sub = i + 2 < nseg ? seg[i + 2] : NULL;
	if (t.sub && !strcmp(t.sub, "finalize") && !strcmp(t.rt->plural, "namespaces"))
		t.sub = NULL; /* PUT .../finalize behaves as an update here */
	if (t.sub && (strcmp(t.sub, "status") || !t.rt->has_status)) {
		send_status(r, 404, "NotFound", NULL, "the server could not find the requested resource");
		return;
	}
	if (t.ns && !t.rt->namespaced) {
		send_status(r, 404, "NotFound", NULL, "the server could not find the requested resource");
		return;
	}
	if (t.name && t.rt->namespaced && !t.ns) {
		send_status(r, 404, "NotFound", NULL, "the server could not find the requested resource");
		return;
	}
	struct ka_obj *cur = t.name ? ka_obj_get(t.rt, t.ns, t.name) : NULL;
	switch (r->method) {
	case EVHTTP_REQ_GET:
		if (!t.name) {
			do_list(r, &t);
		} else if (!cur) {
			not_found(r, &t, t.name);
		} else {
			send_json(r, 200, out_obj(cur->o, t.gv));
			ka_ctrl_on_read(cur);
		}
		return;
	case EVHTTP_REQ_POST:
		if (t.name)
			break;
		do_create(r, &t);
		return;
	case EVHTTP_REQ_PUT:
		if (!t.name)
			break;
		do_update(r, &t, cur);
		return;
	case EVHTTP_REQ_PATCH:
		if (!t.name)
			break;
		do_patch(r, &t, cur);
		return;
	case EVHTTP_REQ_DELETE:
		if (t.sub)
			break;
		do_delete(r, &t, cur);
		return;
	default:
		break;
	}
	send_status(r, 405, "MethodNotAllowed", NULL, "the server does not allow this method on the "
	    "requested resource");
}

static void dispatch(struct evhttp_request *req)
{
	struct rq r = {0};
	r.req = req;
	r.method = evhttp_request_get_command(req);
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *path = evhttp_uri_get_path(u);
	r.path = ka_strdup(path ? path : "/");
	parse_query(&r, evhttp_uri_get_query(u));
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	r.blen = evbuffer_get_length(in);
	r.body = r.blen ? (const char *)evbuffer_pullup(in, -1) : "";
	if (ka_set.verbose)
		fprintf(stderr, "kubeapi: %d %s?%s\n", (int)r.method, r.path,
		    evhttp_uri_get_query(u) ? evhttp_uri_get_query(u) : "");

	/* Split the path into decoded segments. */
	char *seg[16];
	int nseg = 0;
	for (char *p = r.path; *p && nseg < 16;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		char *s = strchr(p, '/');
		size_t n = s ? (size_t)(s - p) : strlen(p);
		seg[nseg++] = pct_decode(p, n, false);
		p += n;
	}

	bool public_path = nseg == 1 && (!strcmp(seg[0], "healthz") || !strcmp(seg[0], "livez") ||
	    !strcmp(seg[0], "readyz") || !strcmp(seg[0], "version"));
	if (!public_path && !authenticated(req)) {
		send_status(&r, 401, "Unauthorized", NULL, "Unauthorized");
		goto done;
	}
	if (nseg == 0) {
		send_json(&r, 200, json_pack("{s:[s,s,s,s]}", "paths", "/api", "/apis", "/version", "/healthz"));
	} else if (nseg == 1 && (!strcmp(seg[0], "healthz") || !strcmp(seg[0], "livez") || !strcmp(seg[0], "readyz"))) {
		send_raw(&r, 200, "text/plain; charset=utf-8", "ok", 2);
	} else if (nseg == 1 && !strcmp(seg[0], "version")) {
		send_json(&r, 200, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "major", "1",
		    "minor", "32", "gitVersion", "v1.32.0-kubeapi", "gitCommit",
		    "0000000000000000000000000000000000000000", "gitTreeState", "clean", "buildDate",
		    "2025-01-01T00:00:00Z", "goVersion", "go1.23.4", "compiler", "gc", "platform", "linux/amd64"));
	} else if (!strcmp(seg[0], "api")) {
		if (nseg == 1) {
			char addr[128];
			snprintf(addr, sizeof(addr), "%s", ka_set.listen);
			send_json(&r, 200, json_pack("{s:s,s:[s],s:[{s:s,s:s}]}", "kind", "APIVersions",
			    "versions", "v1", "serverAddressByClientCIDRs", "clientCIDR", "0.0.0.0/0",
			    "serverAddress", addr));
		} else if (strcmp(seg[1], "v1")) {
			send_status(&r, 404, "NotFound", NULL, "the server could not find the requested resource");
		} else if (nseg == 2) {
			send_json(&r, 200, resource_list("", "v1"));
		} else {
			handle_resource(&r, "", "v1", seg + 2, nseg - 2);
		}
	} else if (!strcmp(seg[0], "apis")) {
		if (nseg == 1) {
			send_json(&r, 200, group_list());
		} else if (nseg == 2) {
			json_t *g = group_obj(seg[1]);
			if (g) {
				json_object_set_new(g, "kind", json_string("APIGroup"));
				json_object_set_new(g, "apiVersion", json_string("v1"));
				send_json(&r, 200, g);
			} else {
				send_status(&r, 404, "NotFound", NULL, "the server could not find the requested resource");
			}
		} else {
			bool served = false;
			for (struct ka_rtype *rt = ka_rtypes; rt; rt = rt->next)
				if (rt->active && !strcmp(rt->group, seg[1]) && ka_rtype_serves(rt, seg[2]))
					served = true;
			if (!served)
				send_status(&r, 404, "NotFound", NULL, "the server could not find the requested resource");
			else if (nseg == 3)
				send_json(&r, 200, resource_list(seg[1], seg[2]));
			else
				handle_resource(&r, seg[1], seg[2], seg + 3, nseg - 3);
		}
	} else {
		send_status(&r, 404, "NotFound", NULL, "the server could not find the requested resource");
	}
done:
	for (int i = 0; i < nseg; i++)
		free(seg[i]);
	rq_free(&r);
}

static void delayed(evutil_socket_t fd, short what, void *arg)
{
	struct evhttp_request *req = arg;
	if (!evhttp_request_get_connection(req)) {
		evhttp_request_free(req); /* the client went away meanwhile */
		return;
	}
	dispatch(req);
}

/*
 * --hold-writes-after N: the writes after the first N get no answer, ever;
 * each held one is announced on stdout ("held METHOD URI") so that a test
 * can act while a write is known to be in flight (stop the server mid-sync).
 */
static bool hold(struct evhttp_request *req)
{
	static int writes;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	if (ka_set.hold_writes_after < 0 || (m != EVHTTP_REQ_POST && m != EVHTTP_REQ_PUT &&
	    m != EVHTTP_REQ_PATCH && m != EVHTTP_REQ_DELETE))
		return false;
	if (writes++ < ka_set.hold_writes_after)
		return false;
	printf("held %s %s\n", m == EVHTTP_REQ_POST ? "POST" : m == EVHTTP_REQ_PUT ? "PUT" :
	    m == EVHTTP_REQ_PATCH ? "PATCH" : "DELETE", evhttp_request_get_uri(req));
	fflush(stdout);
	return true;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	if (hold(req))
		return;
	if (ka_set.latency_ms > 0) {
		struct timeval tv = {ka_set.latency_ms / 1000, (ka_set.latency_ms % 1000) * 1000};
		event_base_once(ka_base, -1, EV_TIMEOUT, delayed, req, &tv);
		return;
	}
	dispatch(req);
}

void ka_http_setup(struct evhttp *http)
{
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
	    EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
	evhttp_set_gencb(http, on_request, NULL);
}
