/*
 * sync.c - the sync engine (deploy/deploy.h): render a commit, apply it
 * stage by stage with server-side apply, prune, wait for health, record.
 *
 * A sync is a `struct run` moving through steps on the loop; only the
 * checkout + render step runs on a pool worker, with its own copies of
 * everything it reads. Every Kubernetes call is asynchronous; counters of
 * outstanding calls (`pending`) say when a step is over.
 */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "config/config.h"
#include "lib/log.h"
#include "lib/pool.h"
#include "manifests/manifests.h"
#include "deploy/deploy.h"

/* The environment settings one sync uses (a snapshot: reloads do not reach a running sync). */
struct envcfg {
	char *name, *ns, *kubeconfig, *context;
	char **manifests;
	size_t nmanifests;
	int prune, allow_empty;
	int64_t health_timeout_s, history_limit;
};

struct qreq {
	struct qreq *next;
	char *repo, *commit, *dir;
	enum sw_sync_trigger trigger;
	int64_t run_id;
	int dry_run;
	sw_sync_done_fn cb;
	void *arg;
};

struct run;

/* One object of a sync: a rendered one (obj set) or a prune candidate. */
struct item {
	struct run *run;
	struct sw_obj *obj;            /* rendered object, or NULL for prune */
	char *key, *api_version, *kind, *ns, *name;  /* owned */
	long wave;
	int phase;
	json_t *live;                  /* live object (carrying our label) before the sync, or NULL */
	json_t *applied;               /* apply answer / last health read */
	int crd_pending;               /* kind defined by a CRD of this sync, unknown yet */
	int health_listed;             /* a health list of its kind is under way */
	enum sw_object_result result;
	int has_result;
	enum sw_kube_health kh;
	char *message;
	struct sw_kube_op *op;
};

struct run {
	struct sw_syncer *s;
	struct qreq *rq;
	struct envcfg cfg;
	char *data_dir;
	sw_sync_checkout_fn checkout;
	int keep_checkout;
	int in_pool, orphan;
	int64_t t0, sync_id;

	/* worker results */
	struct sw_objset *set;
	int render_rc;
	char *render_err;

	struct item *items;            /* set->n rendered items, in apply order */
	size_t n;
	struct item *prune;
	size_t nprune;

	/* kinds to list: "apiVersion\tkind" -> 1 (rendered) / 0 (inventory only) */
	json_t *kinds;
	json_t *crd_kinds;             /* "group/Kind" -> "Namespaced"/"Cluster" */
	json_t *live;                  /* key -> live object (listed) */
	struct sw_store_inv_list inv;
	int pending;
	int failed;
	int nfail;                     /* failure messages so far */
	struct sw_buf msg;             /* failure message, "; "-separated */
	size_t stage_start, stage_end;
	size_t prune_start, prune_end;
	struct event *timer;
	int64_t deadline;
	int polls;                     /* reads so far in this wait (poll_later) */
	int waiting_crds;             /* waiting for CRDs to be Established */
	int listed_crd_kinds;          /* round 1 of the lists was started */
	int prepared;                  /* got past step 3: inventory is rewritten */
	enum sw_health health;
};

struct sw_syncer {
	struct event_base *base;
	struct sw_pool *pool;
	struct sw_store *store;
	struct sw_kube *kube;
	struct envcfg cfg;
	char *data_dir;
	sw_sync_checkout_fn checkout;
	long health_poll_ms;
	int keep_checkouts;
	void (*on_desired)(void *arg);
	void *on_desired_arg;

	struct run *running;
	/* At most one waiting request of each kind: a dry run (a diff) never
	 * replaces a real sync, nor the reverse. */
	struct qreq *queued, *queued_dry;
	struct qreq *superseded;       /* to be told, from the kick event */
	struct event *kick;

	json_t *desired;
	char *desired_commit;
	uint64_t desired_version;
};

static void run_next_step_after_lists(struct run *r);
static void stage_start(struct run *r);
static void prune_start(struct run *r);
static void health_start(struct run *r);
static void finish(struct run *r);

/* ---- small helpers ---------------------------------------------------- */

static char *group_of(const char *api_version)
{
	const char *sl = strchr(api_version, '/');
	return sl ? sw_strndup(api_version, (size_t)(sl - api_version)) : sw_strdup("");
}

static void envcfg_release(struct envcfg *c)
{
	free(c->name);
	free(c->ns);
	free(c->kubeconfig);
	free(c->context);
	for (size_t i = 0; i < c->nmanifests; i++)
		free(c->manifests[i]);
	free(c->manifests);
	memset(c, 0, sizeof(*c));
}

static void envcfg_copy(struct envcfg *dst, const struct envcfg *src)
{
	dst->name = sw_strdup(src->name);
	dst->ns = src->ns ? sw_strdup(src->ns) : NULL;
	dst->kubeconfig = src->kubeconfig ? sw_strdup(src->kubeconfig) : NULL;
	dst->context = src->context ? sw_strdup(src->context) : NULL;
	dst->nmanifests = src->nmanifests;
	dst->manifests = sw_calloc(src->nmanifests + 1, sizeof(char *));
	for (size_t i = 0; i < src->nmanifests; i++)
		dst->manifests[i] = sw_strdup(src->manifests[i]);
	dst->prune = src->prune;
	dst->allow_empty = src->allow_empty;
	dst->health_timeout_s = src->health_timeout_s;
	dst->history_limit = src->history_limit;
}

static void envcfg_from(struct envcfg *dst, const struct sw_cfg_env *e, int64_t history_limit)
{
	struct envcfg c = { 0 };
	c.name = e->name;
	c.ns = e->namespace;
	c.kubeconfig = e->kubeconfig;
	c.context = e->context;
	c.manifests = e->manifests;
	c.nmanifests = e->nmanifests;
	c.prune = e->prune;
	c.allow_empty = e->allow_empty_prune;
	c.health_timeout_s = e->health_timeout_s > 0 ? e->health_timeout_s : 300;
	c.history_limit = history_limit > 0 ? history_limit : 50;
	envcfg_copy(dst, &c);
}

static void qreq_free(struct qreq *q)
{
	if (!q)
		return;
	free(q->repo);
	free(q->commit);
	free(q->dir);
	free(q);
}

static enum sw_health to_health(enum sw_kube_health h)
{
	switch (h) {
	case SW_KUBE_HEALTHY: return SW_HEALTH_HEALTHY;
	case SW_KUBE_PROGRESSING: return SW_HEALTH_PROGRESSING;
	case SW_KUBE_DEGRADED: return SW_HEALTH_DEGRADED;
	default: return SW_HEALTH_UNKNOWN;
	}
}

/* Worse of two healths: degraded > progressing > unknown > missing > healthy. */
static int health_rank(enum sw_health h)
{
	switch (h) {
	case SW_HEALTH_DEGRADED: return 4;
	case SW_HEALTH_PROGRESSING: return 3;
	case SW_HEALTH_UNKNOWN: return 2;
	case SW_HEALTH_MISSING: return 1;
	default: return 0;
	}
}

static void fail_msg(struct run *r, const char *fmt, ...) SW_PRINTF(2, 3);
static void fail_msg(struct run *r, const char *fmt, ...)
{
	va_list ap;
	r->failed = 1;
	if (++r->nfail > 3) {
		/* the first few say enough; the per-object results hold the rest */
		if (r->nfail == 4)
			sw_buf_adds(&r->msg, "; and more");
		return;
	}
	if (r->msg.len)
		sw_buf_adds(&r->msg, "; ");
	va_start(ap, fmt);
	sw_buf_vaddf(&r->msg, fmt, ap);
	va_end(ap);
}

static void set_item_msg(struct item *it, const char *m)
{
	free(it->message);
	it->message = sw_strdup(m ? m : "");
}

void sw_sync_tracking_id(struct sw_buf *out, const char *env, const char *key)
{
	sw_buf_addf(out, "%s:%s", env, key);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	if (remove(path) < 0)
		log_warn("sync_cleanup", "path=%s error=%s", sw_q(path), sw_q(strerror(errno)));
	return 0;
}

/* rm -rf without following symlinks or crossing file systems. */
static void remove_tree(const char *dir)
{
	struct stat st;
	if (lstat(dir, &st) < 0)
		return;
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* ---- the syncer ------------------------------------------------------- */

static void kick_cb(evutil_socket_t fd, short what, void *arg);

static void kick(struct sw_syncer *s)
{
	struct timeval tv = { 0, 0 };
	evtimer_add(s->kick, &tv);
}

int sw_syncer_new(struct sw_syncer **out, const struct sw_syncer_opts *o)
{
	struct sw_syncer *s = NULL;
	struct sw_kubeconfig *kc = o ? o->kubeconfig : NULL;
	struct sw_kube_opts ko;
	int rc;

	*out = NULL;
	if (!o || !o->base || !o->pool || !o->store || !o->http || !o->env || !o->data_dir) {
		sw_kubeconfig_free(kc);
		return sw_error_setc(SW_EINVALID, "sync: base, pool, store, http, env and data_dir are required");
	}
	if (!kc) {
		if (!o->env->kubeconfig)
			return sw_error_setc(SW_EINVALID, "sync %s: no kubeconfig configured", o->env->name);
		if ((rc = sw_kubeconfig_load(&kc, o->env->kubeconfig, o->env->context)) < 0) {
			sw_error_prefix("sync %s", o->env->name);
			return rc;
		}
	}
	ko = o->kube;
	ko.http = o->http;
	ko.procs = o->procs;
	if (!ko.discovery_interval_ms)
		ko.discovery_interval_ms = 1000;
	s = sw_calloc(1, sizeof(*s));
	if ((rc = sw_kube_new(&s->kube, o->base, kc, &ko)) < 0) {
		free(s);
		sw_error_prefix("sync %s", o->env->name);
		return rc;
	}
	s->base = o->base;
	s->pool = o->pool;
	s->store = o->store;
	envcfg_from(&s->cfg, o->env, o->history_limit);
	s->data_dir = sw_strdup(o->data_dir);
	s->checkout = o->checkout;
	s->health_poll_ms = o->health_poll_ms > 0 ? o->health_poll_ms : 250;
	s->keep_checkouts = o->keep_checkouts;
	s->on_desired = o->on_desired;
	s->on_desired_arg = o->on_desired_arg;
	s->kick = evtimer_new(o->base, kick_cb, s);
	*out = s;
	return 0;
}

int sw_syncer_reconfigure(struct sw_syncer *s, const struct sw_cfg_env *env,
			  int64_t history_limit)
{
	struct envcfg c;
	if (!env)
		return sw_error_setc(SW_EINVALID, "sync: no environment");
	envcfg_from(&c, env, history_limit);
	envcfg_release(&s->cfg);
	s->cfg = c;
	return 0;
}

const char *sw_syncer_env(const struct sw_syncer *s)
{
	return s->cfg.name;
}

struct sw_kube *sw_syncer_kube(struct sw_syncer *s)
{
	return s->kube;
}

int sw_syncer_busy(const struct sw_syncer *s, size_t *queued)
{
	if (queued)
		*queued = (s->queued ? 1 : 0) + (s->queued_dry ? 1 : 0);
	return s->running != NULL;
}

const json_t *sw_sync_desired(const struct sw_syncer *s)
{
	return s->desired;
}

const char *sw_sync_desired_commit(const struct sw_syncer *s)
{
	return s->desired_commit;
}

uint64_t sw_sync_desired_version(const struct sw_syncer *s)
{
	return s->desired_version;
}

int sw_sync_apply_one(struct sw_syncer *s, const char *tracking_id, sw_kube_done_fn cb,
		      void *arg, struct sw_kube_op **op)
{
	json_t *text = s->desired ? json_object_get(s->desired, tracking_id) : NULL;
	json_t *obj;
	int rc;
	if (!text)
		return sw_error_setc(SW_ENOTFOUND, "sync %s: %s is not in the desired state",
				     s->cfg.name, tracking_id);
	obj = json_loads(json_string_value(text), 0, NULL);
	rc = sw_kube_apply(s->kube, obj, 0, cb, arg, op);   /* copies what it sends */
	json_decref(obj);
	return rc;
}

static void run_free(struct run *r);

void sw_syncer_free(struct sw_syncer *s)
{
	if (!s)
		return;
	if (s->running) {
		struct run *r = s->running;
		s->running = NULL;
		if (r->in_pool) {
			r->orphan = 1;    /* the pool's done callback frees it */
			r->s = NULL;
		} else {
			run_free(r);   /* cancels its operations */
		}
	}
	sw_kube_free(s->kube);
	qreq_free(s->queued);
	qreq_free(s->queued_dry);
	while (s->superseded) {
		struct qreq *q = s->superseded;
		s->superseded = q->next;
		qreq_free(q);
	}
	if (s->kick)
		event_free(s->kick);
	json_decref(s->desired);
	free(s->desired_commit);
	free(s->data_dir);
	envcfg_release(&s->cfg);
	free(s);
}

int sw_sync_start(struct sw_syncer *s, const struct sw_sync_req *req, sw_sync_done_fn cb,
		  void *arg)
{
	struct qreq *q;
	if (!req || !req->commit || !*req->commit || (!req->dir && (!req->repo || !s->checkout)))
		return sw_error_setc(SW_EINVALID,
				     "sync %s: a commit and a repository (with a checkout function) or a directory are required",
				     s->cfg.name);
	q = sw_calloc(1, sizeof(*q));
	q->repo = req->repo ? sw_strdup(req->repo) : NULL;
	q->commit = sw_strdup(req->commit);
	q->dir = req->dir ? sw_strdup(req->dir) : NULL;
	q->trigger = req->trigger;
	q->run_id = req->run_id;
	q->dry_run = req->dry_run;
	q->cb = cb;
	q->arg = arg;
	struct qreq **slot = q->dry_run ? &s->queued_dry : &s->queued;
	if (*slot) {
		struct qreq **p = &s->superseded;
		while (*p)
			p = &(*p)->next;
		*p = *slot;
		log_info("sync_superseded", "env=%s commit=%s by=%s", s->cfg.name,
			 (*slot)->commit, q->commit);
	}
	*slot = q;
	kick(s);
	return 0;
}

/* ---- step 1: checkout and render, on a worker -------------------------- */

static void render_work(void *arg)
{
	struct run *r = arg;
	struct sw_render_opts ro = SW_RENDER_OPTS_INIT;
	struct sw_buf errs = SW_BUF_INIT;
	char *dir = NULL;
	int rc = 0;

	if (r->rq->dir) {
		dir = sw_strdup(r->rq->dir);
	} else {
		dir = sw_asprintf("%s/sync/%s-%s", r->data_dir, r->cfg.name, r->rq->commit);
		remove_tree(dir);
		rc = r->checkout(r->data_dir, r->rq->repo, r->rq->commit, dir);
		if (rc < 0)
			r->render_err = sw_asprintf("checkout %s@%s: %s", r->rq->repo, r->rq->commit,
						    sw_error_last());
	}
	if (rc == 0) {
		ro.errors = &errs;
		rc = sw_render_dir(&r->set, dir, (const char *const *)r->cfg.manifests,
				   r->cfg.nmanifests, &ro);
		if (rc < 0) {
			if (errs.len && errs.ptr[errs.len - 1] == '\n')
				sw_buf_truncate(&errs, errs.len - 1);
			r->render_err = sw_asprintf("render: %s", errs.len ? errs.ptr : sw_error_last());
		}
	}
	if (!r->rq->dir && !r->keep_checkout)
		remove_tree(dir);
	r->render_rc = rc;
	sw_buf_release(&errs);
	free(dir);
}

static void start_lists(struct run *r, int crd_round);

static void render_done(void *arg)
{
	struct run *r = arg;
	r->in_pool = 0;
	if (r->orphan) {
		run_free(r);
		return;
	}
	if (r->render_rc < 0) {
		fail_msg(r, "%s", r->render_err);
		finish(r);
		return;
	}
	sw_objset_sort_for_apply(r->set);
	r->n = r->set->n;
	r->items = sw_calloc(r->n + 1, sizeof(*r->items));
	for (size_t i = 0; i < r->n; i++) {
		struct item *it = &r->items[i];
		struct sw_obj *o = &r->set->objs[i];
		it->run = r;
		it->obj = o;
		it->api_version = sw_strdup(o->api_version);
		it->kind = sw_strdup(o->kind);
		it->name = sw_strdup(o->name);
		it->wave = o->wave;
		it->phase = o->phase;
		it->kh = SW_KUBE_UNKNOWN;
		if (!strcmp(o->group, "apiextensions.k8s.io") &&
		    !strcmp(o->kind, "CustomResourceDefinition")) {
			json_t *spec = json_object_get(o->json, "spec");
			const char *g = json_string_value(json_object_get(spec, "group"));
			const char *k = json_string_value(
			    json_object_get(json_object_get(spec, "names"), "kind"));
			const char *scope = json_string_value(json_object_get(spec, "scope"));
			if (g && k) {
				char *gk = sw_asprintf("%s/%s", g, k);
				json_object_set_new(r->crd_kinds, gk,
						    json_string(scope ? scope : "Namespaced"));
				free(gk);
			}
		}
	}
	start_lists(r, 0);
}

/* ---- step 2 and 4a: live state by listing each kind -------------------- */

struct listctx {
	struct run *r;
	char *api_version, *kind;
	int rendered;
};

/*
 * What a run keeps of a live object (a new reference): a shallow copy
 * without metadata.managedFields (often half of an object's text and most
 * of its parsed size; gets carry it, lists and apply answers arrive
 * without it: kube/kube.h) and without status unless asked.
 * Thousands of objects are held through a sync.
 */
static json_t *slim(const json_t *o, int keep_status)
{
	json_t *c = json_copy((json_t *)o), *md = json_object_get(c, "metadata");
	if (md) {
		md = json_copy(md);
		json_object_del(md, "managedFields");
		json_object_set_new(c, "metadata", md);
	}
	if (!keep_status)
		json_object_del(c, "status");
	return c;
}

/* The object's uid alone: what the inventory needs of a healthy object. */
static json_t *uid_only(const json_t *o)
{
	const char *uid = json_string_value(json_object_get(json_object_get(o, "metadata"), "uid"));
	return json_pack("{s:{s:s?}}", "metadata", "uid", uid);
}

static void add_live(struct run *r, const char *api_version, const char *kind, json_t *o)
{
	json_t *md = json_object_get(o, "metadata");
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	const char *name = json_string_value(json_object_get(md, "name"));
	struct sw_buf key = SW_BUF_INIT;
	if (!name)
		return;
	sw_obj_key(&key, api_version, kind, ns ? ns : "", name);
	if (!json_object_get(o, "apiVersion"))
		json_object_set_new(o, "apiVersion", json_string(api_version));
	if (!json_object_get(o, "kind"))
		json_object_set_new(o, "kind", json_string(kind));
	json_object_set_new(r->live, key.ptr, slim(o, 0));
	sw_buf_release(&key);
}

static void list_done(const struct sw_kube_result *res, void *arg)
{
	struct listctx *c = arg;
	struct run *r = c->r;
	size_t i;
	json_t *o;

	r->pending--;
	if (res->error == 0) {
		json_array_foreach(json_object_get(res->obj, "items"), i, o)
			add_live(r, c->api_version, c->kind, o);
	} else if (res->error == SW_EINVALID && res->status == 0) {
		/* Unknown kind: reported when filling namespaces (rendered kinds)
		 * or ignored (inventory kinds whose CRD is gone). */
	} else {
		fail_msg(r, "list %s %s: %s", c->api_version, c->kind, res->error_msg);
	}
	free(c->api_version);
	free(c->kind);
	free(c);
	if (r->pending == 0)
		run_next_step_after_lists(r);
}

static int crd_defined(struct run *r, const char *api_version, const char *kind,
		       const char **scope)
{
	char *g = group_of(api_version);
	char *gk = sw_asprintf("%s/%s", g, kind);
	json_t *v = json_object_get(r->crd_kinds, gk);
	free(g);
	free(gk);
	if (scope)
		*scope = json_string_value(v);
	return v != NULL;
}

/*
 * Round 0: every kind of the set not defined by one of its CRDs, and every
 * inventory kind. Round 1 (after discovery ran): kinds defined by the set's
 * CRDs that discovery already knows (their CRD exists).
 */
static void start_lists(struct run *r, int crd_round)
{
	struct sw_buf sel = SW_BUF_INIT;
	const char *k;
	json_t *v;
	void *tmp;

	if (!crd_round) {
		for (size_t i = 0; i < r->n; i++) {
			char *kk = sw_asprintf("%s\t%s", r->items[i].api_version, r->items[i].kind);
			json_object_set_new(r->kinds, kk, json_true());
			free(kk);
		}
		if (sw_store_inventory_list(r->s->store, r->cfg.name, &r->inv) < 0) {
			fail_msg(r, "inventory: %s", sw_error_last());
			finish(r);
			return;
		}
		for (size_t i = 0; i < r->inv.n; i++) {
			char *kk = sw_asprintf("%s\t%s", r->inv.v[i].api_version, r->inv.v[i].kind);
			if (!json_object_get(r->kinds, kk))
				json_object_set_new(r->kinds, kk, json_false());
			free(kk);
		}
	}
	sw_buf_addf(&sel, "%s=%s", SW_SYNC_LABEL, r->cfg.name);
	r->pending = 1;   /* held until every list is started */
	json_object_foreach_safe(r->kinds, tmp, k, v) {
		const char *tab = strchr(k, '\t');
		char *av = sw_strndup(k, (size_t)(tab - k));
		const char *kind = tab + 1;
		struct sw_kube_resource res;
		int is_crd = crd_defined(r, av, kind, NULL);
		int known = sw_kube_lookup(r->s->kube, av, kind, &res) == 0;
		if ((crd_round && !(is_crd && known)) || (!crd_round && is_crd)) {
			free(av);
			continue;
		}
		struct listctx *c = sw_calloc(1, sizeof(*c));
		c->r = r;
		c->api_version = av;
		c->kind = sw_strdup(kind);
		c->rendered = json_is_true(v);
		r->pending++;
		if (sw_kube_list(r->s->kube, av, kind, NULL, sel.ptr, list_done, c, NULL) < 0) {
			r->pending--;
			fail_msg(r, "list %s %s: %s", av, kind, sw_error_last());
			free(c->api_version);
			free(c->kind);
			free(c);
		}
	}
	sw_buf_release(&sel);
	if (crd_round)
		r->listed_crd_kinds = 1;
	r->pending--;
	if (r->pending == 0)
		run_next_step_after_lists(r);
}

/* ---- steps 2, 3, 5 (prune candidates) ----------------------------------- */

static int prepare_objects(struct run *r)
{
	const struct sw_kubeconfig *kc = sw_kube_config(r->s->kube);
	const char *defns = r->cfg.ns && *r->cfg.ns ? r->cfg.ns : kc->ns;
	struct sw_buf b = SW_BUF_INIT, where = SW_BUF_INIT;
	int bad = 0;

	for (size_t i = 0; i < r->n; i++) {
		struct item *it = &r->items[i];
		struct sw_obj *o = it->obj;
		struct sw_kube_resource res;
		const char *scope = NULL;
		int namespaced;

		sw_buf_reset(&where);
		sw_obj_where(o, &where);
		if (sw_kube_lookup(r->s->kube, o->api_version, o->kind, &res) == 0) {
			namespaced = res.namespaced;
		} else if (crd_defined(r, o->api_version, o->kind, &scope)) {
			namespaced = !scope || strcmp(scope, "Cluster") != 0;
			it->crd_pending = 1;
		} else {
			fail_msg(r, "unknown kind %s %s in %s", o->api_version, o->kind, where.ptr);
			bad = 1;
			continue;
		}
		if (namespaced && !*o->ns)
			sw_obj_set_namespace(o, defns);
		else if (!namespaced && *o->ns) {
			fail_msg(r, "%s: %s %s is cluster-scoped but has namespace %s", where.ptr,
				 o->api_version, o->kind, o->ns);
			bad = 1;
		}
	}
	if (!bad) {
		sw_buf_reset(&b);
		if (sw_objset_check_duplicates(r->set, &b) < 0) {
			if (b.len && b.ptr[b.len - 1] == '\n')
				sw_buf_truncate(&b, b.len - 1);
			fail_msg(r, "%s", b.len ? b.ptr : sw_error_last());
			bad = 1;
		}
	}
	if (bad)
		goto done;

	/* Tracking label and annotation; keys are final now. */
	for (size_t i = 0; i < r->n; i++) {
		struct item *it = &r->items[i];
		struct sw_obj *o = it->obj;
		json_t *md = json_object_get(o->json, "metadata");
		json_t *labels = json_object_get(md, "labels");
		json_t *ann = json_object_get(md, "annotations");
		if (!json_is_object(labels)) {
			labels = json_object();
			json_object_set_new(md, "labels", labels);
		}
		if (!json_is_object(ann)) {
			ann = json_object();
			json_object_set_new(md, "annotations", ann);
		}
		json_object_set_new(labels, SW_SYNC_LABEL, json_string(r->cfg.name));
		sw_buf_reset(&b);
		sw_sync_tracking_id(&b, r->cfg.name, o->key);
		json_object_set_new(ann, SW_SYNC_TRACKING_ANNOTATION, json_string(b.ptr));
		it->key = sw_strdup(o->key);
		it->ns = sw_strdup(o->ns);
		json_t *lv = json_object_get(r->live, o->key);
		if (lv) {
			it->live = json_incref(lv);
		}
	}

	/* Prune candidates: live, ours by label and annotation, not rendered. */
	{
		const char *key;
		json_t *lv;
		json_t *rendered = json_object();
		size_t cap = 0;
		for (size_t i = 0; i < r->n; i++)
			json_object_set_new(rendered, r->items[i].key, json_true());
		json_object_foreach(r->live, key, lv) {
			json_t *md = json_object_get(lv, "metadata");
			const char *tid = json_string_value(json_object_get(
			    json_object_get(md, "annotations"), SW_SYNC_TRACKING_ANNOTATION));
			const char *ns = json_string_value(json_object_get(md, "namespace"));
			const char *wave = json_string_value(json_object_get(
			    json_object_get(md, "annotations"), SW_SYNC_WAVE_ANNOTATION));
			if (json_object_get(rendered, key) || !tid)
				continue;
			sw_buf_reset(&b);
			sw_sync_tracking_id(&b, r->cfg.name, key);
			if (strcmp(tid, b.ptr) != 0)
				continue;   /* not ours, or copied from elsewhere */
			if (r->nprune == cap) {
				cap = cap ? cap * 2 : 8;
				r->prune = sw_realloc(r->prune, cap * sizeof(*r->prune));
			}
			struct item *it = &r->prune[r->nprune++];
			memset(it, 0, sizeof(*it));
			it->run = r;
			it->key = sw_strdup(key);
			it->api_version = sw_strdup(json_string_value(json_object_get(lv, "apiVersion")));
			it->kind = sw_strdup(json_string_value(json_object_get(lv, "kind")));
			it->ns = sw_strdup(ns ? ns : "");
			it->name = sw_strdup(json_string_value(json_object_get(md, "name")));
			it->live = json_incref(lv);
			it->wave = wave ? strtol(wave, NULL, 10) : 0;
			char *g = group_of(it->api_version);
			it->phase = sw_kind_phase(g, it->kind);
			free(g);
			it->kh = SW_KUBE_UNKNOWN;
		}
		json_decref(rendered);
	}
done:
	sw_buf_release(&b);
	sw_buf_release(&where);
	return bad ? -1 : 0;
}

static int prune_cmp(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	/* reverse apply order: higher wave first, then higher phase, then key */
	if (x->wave != y->wave)
		return x->wave > y->wave ? -1 : 1;
	if (x->phase != y->phase)
		return x->phase > y->phase ? -1 : 1;
	return strcmp(y->key, x->key);
}

static void set_desired(struct run *r)
{
	struct sw_syncer *s = r->s;
	json_t *d = json_object();
	struct sw_buf b = SW_BUF_INIT;
	for (size_t i = 0; i < r->n; i++) {
		char *text = json_dumps(r->items[i].obj->json, JSON_COMPACT);
		sw_buf_reset(&b);
		sw_sync_tracking_id(&b, r->cfg.name, r->items[i].key);
		json_object_set_new(d, b.ptr, json_string_nocheck(text));
		free(text);
	}
	sw_buf_release(&b);
	json_decref(s->desired);
	s->desired = d;
	free(s->desired_commit);
	s->desired_commit = sw_strdup(r->rq->commit);
	s->desired_version++;
	if (s->on_desired)
		s->on_desired(s->on_desired_arg);
}

static void run_next_step_after_lists(struct run *r)
{
	if (r->failed) {
		finish(r);
		return;
	}
	if (!r->listed_crd_kinds && json_object_size(r->crd_kinds)) {
		start_lists(r, 1);
		return;
	}
	if (prepare_objects(r) < 0) {
		finish(r);
		return;
	}
	/* The items hold what they need of the live state. */
	json_decref(r->live);
	r->live = json_object();
	if (r->cfg.prune && r->n == 0 && (r->nprune > 0 || r->inv.n > 0) && !r->cfg.allow_empty) {
		fail_msg(r, "refusing to prune all %zu objects of %s: the rendered set is empty "
			 "(set allow_empty_prune to allow it)",
			 r->nprune > r->inv.n ? r->nprune : r->inv.n, r->cfg.name);
		finish(r);
		return;
	}
	if (r->nprune)
		qsort(r->prune, r->nprune, sizeof(*r->prune), prune_cmp);
	if (!r->rq->dry_run) {
		r->prepared = 1;
		set_desired(r);
	}
	r->stage_start = 0;
	stage_start(r);
}

/* ---- step 4: apply, stage by stage ------------------------------------- */

static const char *rv_of(const json_t *o)
{
	return json_string_value(json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
}

/* A copy of an object without what the server keeps for itself. */
static json_t *comparable(const json_t *o)
{
	json_t *c = json_deep_copy(o);
	json_t *md = json_object_get(c, "metadata");
	json_object_del(md, "managedFields");
	json_object_del(md, "resourceVersion");
	json_object_del(md, "generation");
	json_object_del(c, "status");
	return c;
}

static void item_done(struct item *it);

static void apply_done(const struct sw_kube_result *res, void *arg)
{
	struct item *it = arg;
	struct run *r = it->run;
	it->op = NULL;
	it->has_result = 1;
	if (res->error) {
		it->result = SW_OBJ_FAILED;
		set_item_msg(it, res->error_msg);
		fail_msg(r, "%s", res->error_msg);
	} else {
		if (res->status == 201) {
			it->result = SW_OBJ_CREATED;
		} else if (!it->live) {
			/* It existed without our label: the apply just added it. */
			it->result = SW_OBJ_CONFIGURED;
		} else if (r->rq->dry_run) {
			json_t *a = comparable(it->live), *b = comparable(res->obj);
			it->result = json_equal(a, b) ? SW_OBJ_UNCHANGED : SW_OBJ_CONFIGURED;
			json_decref(a);
			json_decref(b);
		} else {
			const char *x = rv_of(it->live), *y = rv_of(res->obj);
			it->result = x && y && !strcmp(x, y) ? SW_OBJ_UNCHANGED : SW_OBJ_CONFIGURED;
		}
		json_decref(it->applied);
		it->applied = json_incref(res->obj);   /* apply answers come slim */
	}
	json_decref(it->live);   /* told what it needed to */
	it->live = NULL;
	item_done(it);
}

static void item_apply(struct item *it)
{
	struct run *r = it->run;
	if (r->rq->dry_run && it->crd_pending &&
	    sw_kube_lookup(r->s->kube, it->api_version, it->kind, NULL) < 0) {
		/* Its CRD does not exist yet: it would be created. */
		it->has_result = 1;
		it->result = SW_OBJ_CREATED;
		set_item_msg(it, "its CustomResourceDefinition is created by this sync");
		item_done(it);
		return;
	}
	if (sw_kube_apply(r->s->kube, it->obj->json, r->rq->dry_run ? SW_KUBE_DRY_RUN : 0,
			  apply_done, it, &it->op) == 0) {
		/* The request holds its own text now; the desired state is text. */
		json_decref(it->obj->json);
		it->obj->json = NULL;
	} else {
		it->has_result = 1;
		it->result = SW_OBJ_FAILED;
		set_item_msg(it, sw_error_last());
		fail_msg(r, "%s", sw_error_last());
		item_done(it);
	}
}

static void crd_check(struct run *r);

static int stage_has_crds(struct run *r)
{
	for (size_t i = r->stage_start; i < r->stage_end; i++)
		if (!strcmp(r->items[i].kind, "CustomResourceDefinition"))
			return 1;
	return 0;
}

static void stage_over(struct run *r)
{
	if (r->failed) {
		finish(r);
		return;
	}
	if (!r->rq->dry_run && stage_has_crds(r)) {
		r->deadline = sw_mono_ms() + r->cfg.health_timeout_s * 1000;
		r->polls = 0;
		r->waiting_crds = 1;
		crd_check(r);
		return;
	}
	r->stage_start = r->stage_end;
	stage_start(r);
}

static void item_done(struct item *it)
{
	struct run *r = it->run;
	if (--r->pending > 0)
		return;
	if (it->obj)
		stage_over(r);
	else
		prune_start(r);
}

static void stage_start(struct run *r)
{
	if (r->stage_start >= r->n) {
		r->prune_start = r->prune_end = 0;
		prune_start(r);
		return;
	}
	r->stage_end = sw_objset_stage_end(r->set, r->stage_start);
	r->pending = (int)(r->stage_end - r->stage_start) + 1;
	for (size_t i = r->stage_start; i < r->stage_end; i++)
		item_apply(&r->items[i]);
	if (--r->pending == 0)
		stage_over(r);
}

/* Wait for this stage's CRDs to be Established: read, judge, sleep, again. */
/*
 * The next read of CRDs or health: soon at first (most objects are ready
 * a moment after they are applied), then every health_poll_ms.
 */
static void poll_later(struct run *r)
{
	struct timeval tv;
	long ms = 25L << (r->polls < 4 ? r->polls : 4);
	if (ms > r->s->health_poll_ms)
		ms = r->s->health_poll_ms;
	r->polls++;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(r->timer, &tv);
}

static void crd_get_done(const struct sw_kube_result *res, void *arg)
{
	struct item *it = arg;
	struct run *r = it->run;
	it->op = NULL;
	if (res->error == 0) {
		json_decref(it->applied);
		it->applied = slim(res->obj, 1);
	}
	if (--r->pending == 0)
		crd_check(r);
}

static void crd_read(struct run *r)
{
	r->pending = 1;
	for (size_t i = r->stage_start; i < r->stage_end; i++) {
		struct item *it = &r->items[i];
		if (strcmp(it->kind, "CustomResourceDefinition") || it->kh == SW_KUBE_HEALTHY)
			continue;
		r->pending++;
		if (sw_kube_get(r->s->kube, it->api_version, it->kind, "", it->name,
				crd_get_done, it, &it->op) < 0)
			r->pending--;
	}
	if (--r->pending == 0)
		crd_check(r);
}

static void crd_check(struct run *r)
{
	size_t waiting = 0;

	for (size_t i = r->stage_start; i < r->stage_end; i++) {
		struct item *it = &r->items[i];
		char *m = NULL;
		if (strcmp(it->kind, "CustomResourceDefinition"))
			continue;
		it->kh = sw_kube_health(it->applied, &m);
		if (it->kh != SW_KUBE_HEALTHY) {
			waiting++;
			set_item_msg(it, m);
		}
		free(m);
	}
	if (!waiting) {
		r->waiting_crds = 0;
		r->stage_start = r->stage_end;
		stage_start(r);
		return;
	}
	if (sw_mono_ms() >= r->deadline) {
		for (size_t i = r->stage_start; i < r->stage_end; i++)
			if (!strcmp(r->items[i].kind, "CustomResourceDefinition") &&
			    r->items[i].kh != SW_KUBE_HEALTHY)
				fail_msg(r, "CustomResourceDefinition %s not established after %llds: %s",
					 r->items[i].name, (long long)r->cfg.health_timeout_s,
					 r->items[i].message);
		finish(r);
		return;
	}
	poll_later(r);
}

/* ---- step 5: prune ----------------------------------------------------- */

static void delete_done(const struct sw_kube_result *res, void *arg)
{
	struct item *it = arg;
	it->op = NULL;
	it->has_result = 1;
	if (res->error && res->error != SW_ENOTFOUND) {
		it->result = SW_OBJ_FAILED;
		set_item_msg(it, res->error_msg);
		fail_msg(it->run, "prune: %s", res->error_msg);
	} else {
		it->result = SW_OBJ_PRUNED;
	}
	item_done(it);
}

static void prune_start(struct run *r)
{
	if (r->failed) {
		finish(r);
		return;
	}
	r->prune_start = r->prune_end;
	if (!r->cfg.prune || r->prune_start >= r->nprune) {
		if (r->rq->dry_run || r->n == 0) {
			finish(r);
			return;
		}
		health_start(r);
		return;
	}
	/* one group: same wave and phase */
	size_t e = r->prune_start + 1;
	while (e < r->nprune && r->prune[e].wave == r->prune[r->prune_start].wave &&
	       r->prune[e].phase == r->prune[r->prune_start].phase)
		e++;
	r->prune_end = e;
	r->pending = 1;
	for (size_t i = r->prune_start; i < e; i++) {
		struct item *it = &r->prune[i];
		r->pending++;
		if (r->rq->dry_run) {
			it->has_result = 1;
			it->result = SW_OBJ_PRUNED;
			r->pending--;
			continue;
		}
		if (sw_kube_delete(r->s->kube, it->api_version, it->kind, it->ns, it->name,
				   delete_done, it, &it->op) < 0) {
			it->has_result = 1;
			it->result = SW_OBJ_FAILED;
			set_item_msg(it, sw_error_last());
			fail_msg(r, "prune: %s", sw_error_last());
			r->pending--;
		}
	}
	if (--r->pending == 0)
		prune_start(r);
}

/* ---- step 6: health ---------------------------------------------------- */

static void health_tick(evutil_socket_t fd, short what, void *arg);

static int health_degraded(const struct run *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->items[i].applied && r->items[i].kh == SW_KUBE_DEGRADED)
			return 1;
	return 0;
}

/* Judge every applied object from what we hold; 1 when the wait is over. */
static int health_judge(struct run *r, size_t *not_ready)
{
	int degraded = 0;
	*not_ready = 0;
	for (size_t i = 0; i < r->n; i++) {
		struct item *it = &r->items[i];
		char *m = NULL;
		if (!it->applied)
			continue;
		if (it->kh == SW_KUBE_HEALTHY)
			continue;
		it->kh = sw_kube_health(it->applied, &m);
		set_item_msg(it, it->kh == SW_KUBE_HEALTHY ? "" : m);
		free(m);
		if (it->kh == SW_KUBE_HEALTHY) {
			json_t *u = uid_only(it->applied);   /* judged for good */
			json_decref(it->applied);
			it->applied = u;
		}
		if (it->kh == SW_KUBE_DEGRADED)
			degraded = 1;
		else if (it->kh != SW_KUBE_HEALTHY)
			(*not_ready)++;
	}
	return degraded || *not_ready == 0;
}

static void health_get_done(const struct sw_kube_result *res, void *arg)
{
	struct item *it = arg;
	struct run *r = it->run;
	it->op = NULL;
	if (res->error == 0) {
		json_decref(it->applied);
		it->applied = slim(res->obj, 1);
	} else if (res->error == SW_ENOTFOUND) {
		json_decref(it->applied);
		it->applied = NULL;
		it->kh = SW_KUBE_UNKNOWN;
		set_item_msg(it, res->error_msg);
	}
	/* other errors: keep the last view; the deadline bounds the wait */
	if (--r->pending == 0)
		health_tick(-1, 0, r);
}

/* The run's one timer: the next read of CRDs or of health. */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	if (r->waiting_crds)
		crd_read(r);
	else
		health_tick(-1, EV_TIMEOUT, r);
}

/*
 * A kind with more objects still to read than this is read with one list
 * (label selector, all namespaces) instead of a get per object.
 */
#define HEALTH_LIST_MIN 8

struct health_list {
	struct run *r;
	char *kk;                      /* "apiVersion\tkind" */
};

static void health_list_done(const struct sw_kube_result *res, void *arg)
{
	struct health_list *c = arg;
	struct run *r = c->r;
	const char *tab = strchr(c->kk, '\t');
	json_t *seen = json_object(), *o;
	struct sw_buf key = SW_BUF_INIT;
	size_t i;

	if (res->error == 0) {
		json_array_foreach(json_object_get(res->obj, "items"), i, o) {
			json_t *md = json_object_get(o, "metadata");
			const char *ns = json_string_value(json_object_get(md, "namespace"));
			const char *name = json_string_value(json_object_get(md, "name"));
			if (!name)
				continue;
			sw_buf_reset(&key);
			sw_obj_key(&key, json_string_value(json_object_get(o, "apiVersion")),
				   tab + 1, ns ? ns : "", name);
			json_object_set(seen, key.ptr, o);
		}
	}
	for (i = 0; i < r->n; i++) {
		struct item *it = &r->items[i];
		if (!it->health_listed || strncmp(c->kk, it->api_version, (size_t)(tab - c->kk)) ||
		    it->api_version[tab - c->kk] || strcmp(tab + 1, it->kind))
			continue;
		it->health_listed = 0;
		if (res->error)
			continue;   /* keep the last view; the deadline bounds the wait */
		json_decref(it->applied);
		it->applied = json_incref(json_object_get(seen, it->key));   /* lists come slim */
		if (!it->applied) {
			it->kh = SW_KUBE_UNKNOWN;
			set_item_msg(it, "not found");
		}
	}
	json_decref(seen);
	sw_buf_release(&key);
	free(c->kk);
	free(c);
	if (--r->pending == 0)
		health_tick(-1, 0, r);
}

/* Read every object not healthy yet: a list per kind with many, else gets. */
static void health_read(struct run *r)
{
	json_t *counts = json_object();
	struct sw_buf sel = SW_BUF_INIT, kk = SW_BUF_INIT;
	const char *k;
	json_t *v;

	for (size_t i = 0; i < r->n; i++) {
		struct item *it = &r->items[i];
		if (it->kh == SW_KUBE_HEALTHY || it->result == SW_OBJ_FAILED)
			continue;
		sw_buf_reset(&kk);
		sw_buf_addf(&kk, "%s\t%s", it->api_version, it->kind);
		v = json_object_get(counts, kk.ptr);
		json_object_set_new(counts, kk.ptr, json_integer(json_integer_value(v) + 1));
	}
	sw_buf_addf(&sel, "%s=%s", SW_SYNC_LABEL, r->cfg.name);
	r->pending = 1;
	json_object_foreach(counts, k, v) {
		const char *tab = strchr(k, '\t');
		struct health_list *c;
		char *av;
		if (json_integer_value(v) <= HEALTH_LIST_MIN)
			continue;
		for (size_t i = 0; i < r->n; i++) {
			struct item *it = &r->items[i];
			it->health_listed |= it->kh != SW_KUBE_HEALTHY && it->result != SW_OBJ_FAILED &&
					     !strcmp(it->kind, tab + 1) &&
					     !strncmp(it->api_version, k, (size_t)(tab - k)) &&
					     !it->api_version[tab - k];
		}
		c = sw_calloc(1, sizeof(*c));
		c->r = r;
		c->kk = sw_strdup(k);
		av = sw_strndup(k, (size_t)(tab - k));
		r->pending++;
		if (sw_kube_list(r->s->kube, av, tab + 1, NULL, sel.ptr, health_list_done, c,
				 NULL) < 0) {
			struct sw_kube_result res = { .error = SW_ERR };
			health_list_done(&res, c);   /* clears the marks, counts down */
		}
		free(av);
	}
	for (size_t i = 0; i < r->n; i++) {
		struct item *it = &r->items[i];
		if (it->kh == SW_KUBE_HEALTHY || it->result == SW_OBJ_FAILED || it->health_listed)
			continue;
		r->pending++;
		if (sw_kube_get(r->s->kube, it->api_version, it->kind, it->ns, it->name,
				health_get_done, it, &it->op) < 0)
			r->pending--;
	}
	json_decref(counts);
	sw_buf_release(&sel);
	sw_buf_release(&kk);
	if (--r->pending == 0)
		health_tick(-1, 0, r);
}

/* fd -1, what 0: judge after reads; what EV_TIMEOUT: read again. */
static void health_tick(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	size_t not_ready;

	if (what == EV_TIMEOUT) {
		health_read(r);
		return;
	}
	int over = health_judge(r, &not_ready);
	if (over && !not_ready && !health_degraded(r)) {
		finish(r);
		return;
	}
	if (over || sw_mono_ms() >= r->deadline) {
		struct sw_buf b = SW_BUF_INIT;
		size_t shown = 0;
		for (size_t i = 0; i < r->n; i++) {
			struct item *it = &r->items[i];
			if (!it->applied || it->kh == SW_KUBE_HEALTHY)
				continue;
			if (shown++ < 5)
				sw_buf_addf(&b, "%s%s %s %s%s%s: %s", shown > 1 ? "; " : "",
					    it->api_version, it->kind, it->ns,
					    *it->ns ? "/" : "", it->name, it->message);
		}
		if (shown > 5)
			sw_buf_addf(&b, "; and %zu more", shown - 5);
		if (over)
			fail_msg(r, "not healthy (degraded): %s", b.ptr ? b.ptr : "");
		else
			fail_msg(r, "not healthy after %llds: %s", (long long)r->cfg.health_timeout_s,
				 b.ptr ? b.ptr : "");
		sw_buf_release(&b);
		finish(r);
		return;
	}
	poll_later(r);
}

static void health_start(struct run *r)
{
	r->deadline = sw_mono_ms() + r->cfg.health_timeout_s * 1000;
	r->polls = 0;
	health_tick(-1, 0, r);
}

/* ---- step 7: record, report, next ------------------------------------- */

static void fill_obj(struct sw_sync_obj *o, const struct item *it)
{
	o->key = it->key ? it->key : it->obj->key;
	o->api_version = it->api_version;
	o->kind = it->kind;
	o->ns = it->ns ? it->ns : (it->obj ? it->obj->ns : "");
	o->name = it->name;
	o->result = it->result;
	o->health = it->obj && it->applied ? to_health(it->kh) : SW_HEALTH_UNKNOWN;
	o->message = it->message ? it->message : "";
}

static void record(struct run *r, struct sw_sync_result *res)
{
	struct sw_store *st = r->s->store;
	int own_tx = !sw_store_in_transaction(st);
	int ok = 1;

	if (own_tx && sw_store_begin(st) < 0)
		own_tx = 0;
	for (size_t i = 0; i < res->nobjects; i++) {
		const struct sw_sync_obj *o = &res->objects[i];
		struct sw_store_objref ref = { o->api_version, o->kind, o->ns, o->name };
		if (sw_store_sync_add_object(st, r->sync_id, &ref, o->result, o->message) < 0)
			ok = 0;
	}
	if (sw_store_sync_finish(st, r->sync_id, res->status, res->health, res->message) < 0)
		ok = 0;

	/* Inventory: the applied set; after a failure, merged with the old one
	 * so that a later sync still lists (and may prune) those kinds. */
	if (r->prepared) {
		struct sw_store_inv_in *inv = sw_calloc(r->n + r->inv.n + 1, sizeof(*inv));
		size_t n = 0;
		json_t *seen = json_object();
		for (size_t i = 0; i < r->n; i++) {
			struct item *it = &r->items[i];
			if (!it->applied || !it->key)
				continue;
			inv[n].ref = (struct sw_store_objref){ it->api_version, it->kind, it->ns, it->name };
			inv[n].uid = json_string_value(json_object_get(
			    json_object_get(it->applied, "metadata"), "uid"));
			inv[n].health = to_health(it->kh);
			inv[n].message = it->message;
			json_object_set_new(seen, it->key, json_true());
			n++;
		}
		if (res->status != SW_SYNC_SUCCESS) {
			json_t *pruned = json_object();
			for (size_t i = 0; i < r->nprune; i++)
				if (r->prune[i].has_result && r->prune[i].result == SW_OBJ_PRUNED)
					json_object_set_new(pruned, r->prune[i].key, json_true());
			for (size_t i = 0; i < r->inv.n; i++) {
				struct sw_store_inv *v = &r->inv.v[i];
				struct sw_buf k = SW_BUF_INIT;
				sw_obj_key(&k, v->api_version, v->kind, v->namespace, v->name);
				if (!json_object_get(seen, k.ptr) && !json_object_get(pruned, k.ptr)) {
					inv[n].ref = (struct sw_store_objref){ v->api_version, v->kind,
									      v->namespace, v->name };
					inv[n].uid = v->uid;
					inv[n].health = v->health;
					inv[n].message = v->message;
					n++;
				}
				sw_buf_release(&k);
			}
			json_decref(pruned);
		}
		if (sw_store_inventory_replace(st, r->cfg.name, inv, n) < 0)
			ok = 0;
		json_decref(seen);
		free(inv);
	}

	struct sw_store_env_update u = SW_STORE_ENV_UPDATE_INIT;
	u.desired_commit = r->rq->commit;
	if (res->status == SW_SYNC_SUCCESS)
		u.synced_commit = r->rq->commit;
	u.sync_status = res->status == SW_SYNC_SUCCESS ? SW_ENV_SYNCED : SW_ENV_FAILED;
	u.health = res->health;
	u.last_sync_at = sw_now_ms();
	u.last_sync_ms = res->duration_ms;
	u.message = res->message;
	if (sw_store_env_set(st, r->cfg.name, &u) < 0)
		ok = 0;
	if (sw_store_sync_trim(st, r->cfg.name, (int)r->cfg.history_limit, NULL) < 0)
		ok = 0;
	if (own_tx) {
		if (ok)
			ok = sw_store_commit(st) == 0;
		else
			sw_store_rollback(st);
	}
	if (!ok)
		log_error("sync_record", "env=%s sync=%lld error=%s", r->cfg.name,
			  (long long)r->sync_id, sw_q(sw_error_last()));
}

static void finish(struct run *r)
{
	struct sw_syncer *s = r->s;
	struct sw_sync_result res;
	struct sw_sync_obj *objs;
	size_t n = 0;
	enum sw_health worst = SW_HEALTH_HEALTHY;

	if (r->timer)
		evtimer_del(r->timer);
	memset(&res, 0, sizeof(res));
	objs = sw_calloc(r->n + r->nprune + 1, sizeof(*objs));
	for (size_t i = 0; i < r->n; i++) {
		struct item *it = &r->items[i];
		if (!it->key)
			continue;   /* never got past preparation */
		if (!it->has_result)
			continue;   /* not reached (an earlier stage failed) */
		fill_obj(&objs[n], it);
		res.counts[it->result]++;
		if (it->applied && health_rank(objs[n].health) > health_rank(worst))
			worst = objs[n].health;
		n++;
	}
	for (size_t i = 0; i < r->nprune; i++) {
		struct item *it = &r->prune[i];
		if (!it->has_result)
			continue;
		fill_obj(&objs[n], it);
		res.counts[it->result]++;
		n++;
	}
	res.objects = objs;
	res.nobjects = n;
	res.status = r->failed ? SW_SYNC_FAILURE : SW_SYNC_SUCCESS;
	res.dry_run = r->rq->dry_run;
	/* Nothing judged: healthy only when a sync got through with nothing to judge. */
	if (r->rq->dry_run || (r->failed && !r->prepared))
		worst = SW_HEALTH_UNKNOWN;
	res.health = worst;
	res.message = r->msg.len ? r->msg.ptr : "";
	res.commit = r->rq->commit;
	res.sync_id = r->sync_id;
	res.duration_ms = sw_mono_ms() - r->t0;

	log_info("sync_done", "env=%s commit=%s sync=%lld status=%s health=%s created=%zu "
		 "configured=%zu unchanged=%zu pruned=%zu failed=%zu ms=%lld dry_run=%d%s%s",
		 r->cfg.name, r->rq->commit, (long long)r->sync_id,
		 sw_store_sync_status_str(res.status), sw_store_health_str(res.health),
		 res.counts[SW_OBJ_CREATED], res.counts[SW_OBJ_CONFIGURED],
		 res.counts[SW_OBJ_UNCHANGED], res.counts[SW_OBJ_PRUNED], res.counts[SW_OBJ_FAILED],
		 (long long)res.duration_ms, res.dry_run, r->failed ? " error=" : "",
		 r->failed ? sw_q(res.message) : "");
	if (!r->rq->dry_run && r->sync_id)
		record(r, &res);

	s->running = NULL;
	if (r->rq->cb)
		r->rq->cb(&res, r->rq->arg);
	free(objs);
	run_free(r);
	kick(s);
}

static void item_release(struct item *it)
{
	if (it->op)
		sw_kube_cancel(it->op);
	free(it->key);
	free(it->api_version);
	free(it->kind);
	free(it->ns);
	free(it->name);
	free(it->message);
	json_decref(it->live);
	json_decref(it->applied);
}

static void run_free(struct run *r)
{
	for (size_t i = 0; i < r->n; i++)
		item_release(&r->items[i]);
	for (size_t i = 0; i < r->nprune; i++)
		item_release(&r->prune[i]);
	free(r->items);
	free(r->prune);
	if (r->timer)
		event_free(r->timer);
	sw_objset_free(r->set);
	free(r->render_err);
	json_decref(r->kinds);
	json_decref(r->crd_kinds);
	json_decref(r->live);
	sw_store_inv_list_release(&r->inv);
	sw_buf_release(&r->msg);
	envcfg_release(&r->cfg);
	free(r->data_dir);
	qreq_free(r->rq);
	free(r);
}

static void run_begin(struct sw_syncer *s, struct qreq *q)
{
	struct run *r = sw_calloc(1, sizeof(*r));
	struct sw_store_env_update u = SW_STORE_ENV_UPDATE_INIT;

	r->s = s;
	r->rq = q;
	envcfg_copy(&r->cfg, &s->cfg);
	r->data_dir = sw_strdup(s->data_dir);
	r->checkout = s->checkout;
	r->keep_checkout = s->keep_checkouts;
	r->t0 = sw_mono_ms();
	r->kinds = json_object();
	r->crd_kinds = json_object();
	r->live = json_object();
	r->timer = evtimer_new(s->base, timer_cb, r);
	sw_buf_init(&r->msg);
	s->running = r;
	log_info("sync_start", "env=%s commit=%s trigger=%s dry_run=%d", r->cfg.name, q->commit,
		 sw_store_sync_trigger_str(q->trigger), q->dry_run);
	if (!q->dry_run) {
		if (sw_store_sync_start(s->store, &r->sync_id, r->cfg.name, q->commit, q->trigger,
					q->run_id) < 0) {
			fail_msg(r, "record sync: %s", sw_error_last());
			r->sync_id = 0;
			finish(r);
			return;
		}
		u.desired_commit = q->commit;
		u.sync_status = SW_ENV_SYNCING;
		if (sw_store_env_set(s->store, r->cfg.name, &u) < 0)
			log_warn("sync_state", "env=%s error=%s", r->cfg.name, sw_q(sw_error_last()));
	}
	r->in_pool = 1;
	if (sw_pool_submit(s->pool, render_work, render_done, r) < 0) {
		r->in_pool = 0;
		fail_msg(r, "render: %s", sw_error_last());
		finish(r);
	}
}

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sw_syncer *s = arg;
	while (s->superseded) {
		struct qreq *q = s->superseded;
		struct sw_sync_result res;
		s->superseded = q->next;
		memset(&res, 0, sizeof(res));
		res.status = SW_SYNC_FAILURE;
		res.superseded = 1;
		res.dry_run = q->dry_run;
		res.health = SW_HEALTH_UNKNOWN;
		res.message = "superseded by a newer request";
		res.commit = q->commit;
		if (q->cb)
			q->cb(&res, q->arg);
		qreq_free(q);
	}
	if (!s->running && (s->queued || s->queued_dry)) {
		struct qreq **slot = s->queued ? &s->queued : &s->queued_dry;
		struct qreq *q = *slot;
		*slot = NULL;
		run_begin(s, q);
	}
}
