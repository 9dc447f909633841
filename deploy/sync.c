/*
 * sync.c - the sync engine (deploy/deploy.h): render a commit, apply it
 * stage by stage with server-side apply, prune, wait for health, record.
 * This file holds the syncer and a run's start and end; the steps against
 * the cluster are in apply.c (sync-int.h).
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
#include "deploy/sync-int.h"

/* ---- small helpers ---------------------------------------------------- */

static void envcfg_release(struct envcfg *c)
{
	free(c->name);
	free(c->ns);
	free(c->kubeconfig);
	free(c->context);
	for (size_t i = 0; i < c->nmanifests; i++)
		free(c->manifests[i]);
	free(c->manifests);
	json_decref(c->ignore);
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
	dst->ignore = json_incref(src->ignore);   /* never changed once made */
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
	c.ignore = json_array();
	for (size_t i = 0; i < e->nignore; i++) {
		const struct sw_cfg_ignore *g = &e->ignore[i];
		json_t *ps = json_array();
		for (size_t k = 0; k < g->npointers; k++)
			json_array_append_new(ps, json_string(g->pointers[k]));
		json_t *rule = json_pack("{s:s, s:s, s:o}", "group", g->group, "kind", g->kind,
					 "pointers", ps);
		if (g->name)
			json_object_set_new(rule, "name", json_string(g->name));
		if (g->ns)
			json_object_set_new(rule, "namespace", json_string(g->ns));
		json_array_append_new(c.ignore, rule);
	}
	envcfg_copy(dst, &c);
	json_decref(c.ignore);
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

void sync_fail(struct run *r, const char *fmt, ...)
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

void sync_note(struct run *r, const char *fmt, ...)
{
	struct sw_buf one = SW_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	sw_buf_vaddf(&one, fmt, ap);
	va_end(ap);
	log_info("sync.note", "env=%s note=%s", r->cfg.name, sw_q(one.ptr));
	if (r->notes.len < 2000) {
		if (r->notes.len)
			sw_buf_adds(&r->notes, "; ");
		sw_buf_add(&r->notes, one.ptr, one.len);
	} else if (!strstr(r->notes.ptr, "; and more")) {
		sw_buf_adds(&r->notes, "; and more");
	}
	sw_buf_release(&one);
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
		if (!sw_cfg_env_has_cluster(o->env))
			return sw_error_setc(SW_EINVALID, "sync %s: no kubeconfig configured", o->env->name);
		if ((rc = o->env->in_cluster ? sw_kubeconfig_in_cluster(&kc) :
		     sw_kubeconfig_load(&kc, o->env->kubeconfig, o->env->context)) < 0) {
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

static void render_done(void *arg)
{
	struct run *r = arg;
	r->in_pool = 0;
	if (r->orphan) {
		run_free(r);
		return;
	}
	if (r->render_rc < 0) {
		sync_fail(r, "%s", r->render_err);
		sync_finish(r);
		return;
	}
	sw_objset_sort_for_apply(r->set);
	for (size_t i = 0; i < r->set->n; i++)
		if ((r->set->objs[i].hook & SW_HOOK_SKIP) && r->set->objs[i].notes)
			sync_note(r, "%s: %s", r->set->objs[i].key, r->set->objs[i].notes);
	sw_objset_take_hooks(r->set, &r->hooks, &r->nhooks);
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
	sync_list_kinds(r, 0);
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

void sync_finish(struct run *r)
{
	struct sw_syncer *s = r->s;
	struct sw_sync_result res;
	struct sw_sync_obj *objs;
	size_t n = 0;
	enum sw_health worst = SW_HEALTH_HEALTHY;

	/* the hooks of the end: PostSync after a sync that went through,
	 * SyncFail after one that failed once its objects were known */
	if (!r->failed && sync_has_hooks(r, SW_HOOK_POSTSYNC)) {
		sync_hooks(r, SW_HOOK_POSTSYNC, sync_finish);
		return;
	}
	if (r->failed && r->set && sync_has_hooks(r, SW_HOOK_SYNCFAIL)) {
		r->hooks_ran |= SW_HOOK_PRESYNC | SW_HOOK_SYNC | SW_HOOK_POSTSYNC;
		sync_hooks(r, SW_HOOK_SYNCFAIL, sync_finish);
		return;
	}
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
	res.message = r->msg.len ? r->msg.ptr : r->notes.len ? r->notes.ptr : "";
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
	json_decref(it->ignore);
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
	if (r->hook_op)
		sw_kube_cancel(r->hook_op);
	for (size_t i = 0; i < r->nhooks; i++)
		sw_obj_release(&r->hooks[i]);
	free(r->hooks);
	json_decref(r->hook_json);
	free(r->hook_ns);
	free(r->hook_name);
	if (r->timer)
		event_free(r->timer);
	sw_objset_free(r->set);
	free(r->render_err);
	json_decref(r->kinds);
	json_decref(r->crd_kinds);
	json_decref(r->live);
	sw_store_inv_list_release(&r->inv);
	sw_buf_release(&r->msg);
	sw_buf_release(&r->notes);
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
	r->timer = evtimer_new(s->base, sync_timer_cb, r);
	sw_buf_init(&r->msg);
	sw_buf_init(&r->notes);
	s->running = r;
	log_info("sync_start", "env=%s commit=%s trigger=%s dry_run=%d", r->cfg.name, q->commit,
		 sw_store_sync_trigger_str(q->trigger), q->dry_run);
	if (!q->dry_run) {
		if (sw_store_sync_start(s->store, &r->sync_id, r->cfg.name, q->commit, q->trigger,
					q->run_id) < 0) {
			sync_fail(r, "record sync: %s", sw_error_last());
			r->sync_id = 0;
			sync_finish(r);
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
		sync_fail(r, "render: %s", sw_error_last());
		sync_finish(r);
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
