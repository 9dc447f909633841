/*
 * discovery.c - API discovery: which resource serves a kind of a group
 * version, namespaced or not, read once per group version (/api,
 * /apis/GROUP/VERSION) and shared by the ops that wait for it.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "kube/kube-int.h"
#include "kube/kube.h"
#include "lib/clock.h"
#include "lib/log.h"

/* ---- discovery -------------------------------------------------------- */

void kube_ents_free(struct disc_ent *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].group);
		free(e[i].version);
		free(e[i].kind);
		free(e[i].plural);
	}
	free(e);
}

const struct disc_ent *kube_disc_find(const struct sw_kube *k, const char *group,
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

	kube_split_api_version(api_version, &g, &v);
	e = kube_disc_find(k, g, v, kind);
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
		kube_ents_free(k->nw, k->nnw);
	} else {
		kube_ents_free(k->ents, k->nents);
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
		kube_op_wake(op);
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
		const char *name = kube_jstr(it, "name"), *kind = kube_jstr(it, "kind");
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
	kube_op_free(op);
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
		const char *m = kube_jstr(st, "message");
		if (r->error)
			sw_buf_addf(&b, "GET %s: %s", op->path, r->error_msg);
		else
			sw_buf_addf(&b, "GET %s: %s%s(%ld %s)", op->path, m ? m : "", m ? " " : "",
				    r->status, kube_reason_phrase(r->status));
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
			const char *g = kube_jstr(it, "name");
			size_t j;
			if (!g)
				continue;
			json_array_foreach(vs, j, v) {
				const char *ver = kube_jstr(v, "version");
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
	kube_op_free(op);
	disc_one_done(k);
}

static struct sw_kube_op *disc_get(struct sw_kube *k, const char *path, op_internal_fn fn,
				   const char *group, const char *version)
{
	struct sw_kube_op *op = kube_op_new(k, OP_RAW);
	op->path = sw_strdup(path);
	op->internal = fn;
	op->group = sw_strdup(group);
	op->version = sw_strdup(version);
	k->disc_outstanding++;
	kube_op_wake(op);
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

void kube_disc_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sw_kube *k = arg;
	if (!k->disc_running)
		disc_start(k);
}

/* Start a discovery now, or when the interval allows. */
void kube_disc_request(struct sw_kube *k)
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
