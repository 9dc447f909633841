/*
 * apply.c - the steps of a sync that talk to the cluster (sync-int.h):
 * list the live state of every kind, find what to prune, apply stage by
 * stage (waves and phases) with server-side apply, wait for the CRDs a
 * stage defines, prune, and wait for health.
 *
 * Each step starts its calls, counts them in r->pending, and goes on to the
 * next step when the last answer arrives; a failure ends the run through
 * sync_finish().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "manifests/manifests.h"
#include "deploy/deploy.h"
#include "deploy/sync-int.h"

static void run_next_step_after_lists(struct run *r);
static void stage_start(struct run *r);
static void prune_start(struct run *r);
static void health_start(struct run *r);

static char *group_of(const char *api_version)
{
	const char *sl = strchr(api_version, '/');
	return sl ? sw_strndup(api_version, (size_t)(sl - api_version)) : sw_strdup("");
}

static void set_item_msg(struct item *it, const char *m)
{
	free(it->message);
	it->message = sw_strdup(m ? m : "");
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
		sync_fail(r, "list %s %s: %s", c->api_version, c->kind, res->error_msg);
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
void sync_list_kinds(struct run *r, int crd_round)
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
			sync_fail(r, "inventory: %s", sw_error_last());
			sync_finish(r);
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
			sync_fail(r, "list %s %s: %s", av, kind, sw_error_last());
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

/* A live object whose own options say it is never pruned (Prune=false,
 * as it was applied: the file that set it may be gone). */
static int kept_from_prune(json_t *annotations)
{
	struct sw_buf notes = SW_BUF_INIT;
	unsigned opts = 0;
	int kept = sw_sync_options(annotations, &opts, &notes) == 0 && (opts & SW_OPT_NO_PRUNE);
	sw_buf_release(&notes);
	return kept;
}

/* Add pointer `p` to what `it` leaves to others (once). */
static void ignore_add(struct item *it, const char *p)
{
	size_t i;
	json_t *v;
	if (!it->ignore)
		it->ignore = json_array();
	json_array_foreach(it->ignore, i, v)
		if (!strcmp(json_string_value(v), p))
			return;
	json_array_append_new(it->ignore, json_string(p));
}

static int rule_matches(json_t *rule, const struct sw_obj *o)
{
	const char *g = json_string_value(json_object_get(rule, "group"));
	const char *k = json_string_value(json_object_get(rule, "kind"));
	const char *n = json_string_value(json_object_get(rule, "name"));
	const char *ns = json_string_value(json_object_get(rule, "namespace"));
	return g && k && !strcmp(g, o->group) && !strcmp(k, o->kind) &&
	       (!n || !strcmp(n, o->name)) && (!ns || !strcmp(ns, o->ns));
}

/* An autoscaler's target among the items: its spec.replicas is the
 * autoscaler's (HorizontalPodAutoscaler, KEDA ScaledObject). */
static void autoscaled(struct run *r, const struct sw_obj *a)
{
	int hpa = !strcmp(a->group, "autoscaling") && !strcmp(a->kind, "HorizontalPodAutoscaler");
	int keda = !strcmp(a->group, "keda.sh") && !strcmp(a->kind, "ScaledObject");
	if (!hpa && !keda)
		return;
	json_t *ref = json_object_get(json_object_get(a->json, "spec"), "scaleTargetRef");
	const char *kind = json_string_value(json_object_get(ref, "kind"));
	const char *name = json_string_value(json_object_get(ref, "name"));
	const char *av = json_string_value(json_object_get(ref, "apiVersion"));
	if (!kind && keda)
		kind = "Deployment";
	if (!kind || !name)
		return;
	const char *slash = av ? strchr(av, '/') : NULL;
	size_t glen = slash ? (size_t)(slash - av) : 0;
	for (size_t i = 0; i < r->n; i++) {
		struct item *it = &r->items[i];
		const struct sw_obj *o = it->obj;
		if (strcmp(o->kind, kind) || strcmp(o->name, name) || strcmp(o->ns, a->ns) ||
		    (av ? strlen(o->group) != glen || strncmp(o->group, av, glen) :
			  strcmp(o->group, "apps")))
			continue;
		ignore_add(it, "/spec/replicas");
		sync_note(r, "spec.replicas of %s is left to %s %s", o->key, a->kind, a->name);
	}
}

/* What each object leaves to others: the environment's ignore_differences,
 * its own annotation, its autoscaler's replicas. Objects that exist are
 * applied without those fields (another manager may own them). */
static void ignore_fields(struct run *r)
{
	size_t i, k;
	json_t *rule, *v;
	for (i = 0; i < r->n; i++) {
		struct item *it = &r->items[i];
		json_array_foreach(r->cfg.ignore, k, rule) {
			size_t m;
			if (!rule_matches(rule, it->obj))
				continue;
			json_array_foreach(json_object_get(rule, "pointers"), m, v)
				ignore_add(it, json_string_value(v));
		}
		json_array_foreach(it->obj->ignore, k, v)
			ignore_add(it, json_string_value(v));
	}
	for (i = 0; i < r->n; i++)
		autoscaled(r, r->items[i].obj);
	for (i = 0; i < r->n; i++) {
		struct item *it = &r->items[i];
		if (!it->ignore || !it->live)
			continue;
		json_array_foreach(it->ignore, k, v)
			sw_json_pointer_remove(it->obj->json, json_string_value(v));
	}
}

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
			sync_fail(r, "unknown kind %s %s in %s", o->api_version, o->kind, where.ptr);
			bad = 1;
			continue;
		}
		if (namespaced && !*o->ns)
			sw_obj_set_namespace(o, defns);
		else if (!namespaced && *o->ns) {
			sync_fail(r, "%s: %s %s is cluster-scoped but has namespace %s", where.ptr,
				 o->api_version, o->kind, o->ns);
			bad = 1;
		}
	}
	if (!bad) {
		sw_buf_reset(&b);
		if (sw_objset_check_duplicates(r->set, &b) < 0) {
			if (b.len && b.ptr[b.len - 1] == '\n')
				sw_buf_truncate(&b, b.len - 1);
			sync_fail(r, "%s", b.len ? b.ptr : sw_error_last());
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
		if (o->notes) {
			sw_buf_reset(&where);
			sw_obj_where(o, &where);
			sync_note(r, "%s (%s): %s", where.ptr, o->key, o->notes);
		}
	}

	ignore_fields(r);

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
			json_t *lann = json_object_get(md, "annotations");
			const char *wave = json_string_value(json_object_get(lann,
							     SW_SYNC_WAVE_ANNOTATION));
			if (!wave)
				wave = json_string_value(json_object_get(lann, SW_ARGO_WAVE_ANNOTATION));
			if (json_object_get(rendered, key) || !tid)
				continue;
			sw_buf_reset(&b);
			sw_sync_tracking_id(&b, r->cfg.name, key);
			if (strcmp(tid, b.ptr) != 0)
				continue;   /* not ours, or copied from elsewhere */
			if (r->cfg.prune && kept_from_prune(lann)) {
				sync_note(r, "%s kept: Prune=false", key);
				continue;
			}
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
		struct item *it = &r->items[i];
		char *text;
		if (it->ignore) {   /* drift neither reports nor heals these */
			json_t *c = json_deep_copy(it->obj->json), *v;
			size_t k;
			json_array_foreach(it->ignore, k, v)
				sw_json_pointer_remove(c, json_string_value(v));
			text = json_dumps(c, JSON_COMPACT);
			json_decref(c);
		} else {
			text = json_dumps(it->obj->json, JSON_COMPACT);
		}
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

/* PreSync hooks done: apply, unless one failed. */
static void after_presync(struct run *r)
{
	if (r->failed)
		sync_finish(r);
	else
		stage_start(r);
}

static void run_next_step_after_lists(struct run *r)
{
	if (r->failed) {
		sync_finish(r);
		return;
	}
	if (!r->listed_crd_kinds && json_object_size(r->crd_kinds)) {
		sync_list_kinds(r, 1);
		return;
	}
	if (prepare_objects(r) < 0) {
		sync_finish(r);
		return;
	}
	/* The items hold what they need of the live state. */
	json_decref(r->live);
	r->live = json_object();
	if (r->cfg.prune && r->n == 0 && (r->nprune > 0 || r->inv.n > 0) && !r->cfg.allow_empty) {
		sync_fail(r, "refusing to prune all %zu objects of %s: the rendered set is empty "
			 "(set allow_empty_prune to allow it)",
			 r->nprune > r->inv.n ? r->nprune : r->inv.n, r->cfg.name);
		sync_finish(r);
		return;
	}
	if (r->nprune)
		qsort(r->prune, r->nprune, sizeof(*r->prune), prune_cmp);
	if (!r->rq->dry_run) {
		r->prepared = 1;
		set_desired(r);
	}
	r->stage_start = 0;
	if (sync_has_hooks(r, SW_HOOK_PRESYNC)) {
		sync_hooks(r, SW_HOOK_PRESYNC, after_presync);
		return;
	}
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

static void item_apply(struct item *it);

/* Force=true: the object is gone; create it again. */
static void forced_delete_done(const struct sw_kube_result *res, void *arg)
{
	struct item *it = arg;
	it->op = NULL;
	if (res->error && res->error != SW_ENOTFOUND) {
		it->has_result = 1;
		it->result = SW_OBJ_FAILED;
		set_item_msg(it, res->error_msg);
		sync_fail(it->run, "Force=true: delete %s: %s", it->key, res->error_msg);
		item_done(it);
		return;
	}
	json_decref(it->live);
	it->live = NULL;
	item_apply(it);
}

/* An apply refused for a field the API server will not change, on an
 * object that allows it (Force=true): delete it and create it anew. */
static int force_again(struct item *it, const struct sw_kube_result *res)
{
	struct run *r = it->run;
	if (!it->obj || !(it->obj->opts & SW_OPT_FORCE) || it->forced || r->rq->dry_run ||
	    res->status != 422 || !res->error_msg || !strstr(res->error_msg, "immutable") ||
	    !it->obj->json)
		return 0;
	it->forced = 1;
	sync_note(r, "%s replaced: %s (Force=true)", it->key, res->error_msg);
	if (sw_kube_delete(r->s->kube, it->obj->api_version, it->obj->kind, it->obj->ns,
			   it->obj->name, forced_delete_done, it, &it->op) < 0)
		return 0;
	return 1;
}

static void apply_done(const struct sw_kube_result *res, void *arg)
{
	struct item *it = arg;
	struct run *r = it->run;
	it->op = NULL;
	if (res->error && force_again(it, res))
		return;
	it->has_result = 1;
	if (res->error) {
		it->result = SW_OBJ_FAILED;
		set_item_msg(it, res->error_msg);
		sync_fail(r, "%s", res->error_msg);
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
		if (it->forced && it->result == SW_OBJ_CREATED)
			set_item_msg(it, "deleted and created again: an immutable field changed (Force=true)");
	}
	if (it->obj && it->obj->json && it->obj->opts & SW_OPT_FORCE) {
		json_decref(it->obj->json);   /* kept for a second apply; not needed now */
		it->obj->json = NULL;
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
	int flags = (r->rq->dry_run ? SW_KUBE_DRY_RUN : 0) |
		    (it->obj->opts & SW_OPT_NO_VALIDATE ? SW_KUBE_NO_VALIDATE : 0);
	if (sw_kube_apply(r->s->kube, it->obj->json, flags, apply_done, it, &it->op) == 0) {
		/* The request holds its own text now; the desired state is text
		 * (kept for Force=true, which may have to apply it again). */
		if (!(it->obj->opts & SW_OPT_FORCE) || it->forced) {
			json_decref(it->obj->json);
			it->obj->json = NULL;
		}
	} else {
		it->has_result = 1;
		it->result = SW_OBJ_FAILED;
		set_item_msg(it, sw_error_last());
		sync_fail(r, "%s", sw_error_last());
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
		sync_finish(r);
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
	if (r->stage_start >= r->n && sync_has_hooks(r, SW_HOOK_SYNC) && !r->failed) {
		sync_hooks(r, SW_HOOK_SYNC, stage_start);   /* then here again: prune */
		return;
	}
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
				sync_fail(r, "CustomResourceDefinition %s not established after %llds: %s",
					 r->items[i].name, (long long)r->cfg.health_timeout_s,
					 r->items[i].message);
		sync_finish(r);
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
		sync_fail(it->run, "prune: %s", res->error_msg);
	} else {
		it->result = SW_OBJ_PRUNED;
	}
	item_done(it);
}

static void prune_start(struct run *r)
{
	if (r->failed) {
		sync_finish(r);
		return;
	}
	r->prune_start = r->prune_end;
	if (!r->cfg.prune || r->prune_start >= r->nprune) {
		if (r->rq->dry_run || r->n == 0) {
			sync_finish(r);
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
			sync_fail(r, "prune: %s", sw_error_last());
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
void sync_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	if (r->hook_phase)
		sync_hook_tick(r);
	else if (r->waiting_crds)
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
		sync_finish(r);
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
			sync_fail(r, "not healthy (degraded): %s", b.ptr ? b.ptr : "");
		else
			sync_fail(r, "not healthy after %llds: %s", (long long)r->cfg.health_timeout_s,
				 b.ptr ? b.ptr : "");
		sw_buf_release(&b);
		sync_finish(r);
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
