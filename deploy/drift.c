/*
 * drift.c - watch an environment's managed objects, compare them with the
 * desired state, record drift and heal it (deploy/deploy.h says the contract).
 *
 * State per desired object (struct dobj, stable pointers in a sorted
 * array): the desired JSON, the resourceVersion last known equal, at most
 * one request in flight (a dry run, a GET or a heal) plus the newest live
 * state that arrived meanwhile, and the backoff of its heals. Live objects
 * are not kept: a watch event is compared when it arrives and dropped,
 * which keeps memory to the desired set plus a few strings per object.
 * The comparison itself is diff.c's.
 */
#include "deploy/deploy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "config/config.h"
#include "lib/log.h"
#include "manifests/manifests.h"

struct sw_drift;

struct dobj {
	struct sw_drift *dw;
	char *id;               /* tracking id (the desired map's key) */
	char *key;              /* group/kind/ns/name (ns as written: may be "") */
	char *api_version, *kind, *ns, *name;
	int is_secret;
	json_t *desired;        /* its compact JSON text (a JSON string): see desired_of() */
	char *clean_rv;         /* live resourceVersion known equal (or ours) */
	int seen;               /* found in the current full comparison */
	int taken;              /* carried over into a new desired set */

	struct sw_kube_op *op;  /* the one request in flight */
	struct heal_ctx *heal;  /* its context when it is a heal */
	json_t *live;           /* the live state being checked (during a dry run or a blame) */
	json_t *blame_diffs;    /* a confirmed drift waiting for a GET that names its manager */
	json_t *pending;        /* newest state that arrived while busy */
	int pending_gone;       /* ... or: it went away (probe with GET) */

	/* backoff */
	int burst;              /* heals in the current burst */
	long backoff_ms;        /* wait before the next heal */
	int64_t last_heal_ms;   /* mono */
	int64_t next_ok_ms;     /* mono: no heal before */
	struct event *timer;    /* deferred heal */
	char *last_manager;

	/* reporting */
	int drifted;            /* reported / failed and not healed */
	char *reported_fields;  /* the fields of the last report (no repeats) */
};

/*
 * The desired object, parsed (a new reference). Held as text: parsed
 * Kubernetes objects cost several times their text, and are looked at only
 * when a live object changed or in a full comparison.
 */
static json_t *desired_of(const struct dobj *o)
{
	return json_loads(json_string_value(o->desired), 0, NULL);
}

struct kwatch {
	struct sw_drift *dw;
	char *api_version, *kind;
	struct sw_kube_watch *w;
	struct sw_kube_op *list;  /* a periodic list in flight */
	int keep;
	int fresh;                /* its first list has not arrived yet */
};

struct sw_drift {
	struct event_base *base;
	struct sw_kube *kube;
	struct sw_store *store;
	struct sw_syncer *syncer;
	uint64_t desired_version;  /* of the syncer's set we hold */
	int sync_busy;          /* the syncer was running at the last look */
	struct event *tick;     /* looks at the syncer once a second */
	char *env;
	char *selector;
	char *manager;
	int self_heal;
	int hold;
	long backoff_min_ms, backoff_max_ms, quiet_ms, resync_ms;
	sw_drift_notify_fn notify;
	void *notify_arg;

	struct dobj **objs;     /* sorted by key */
	size_t nobjs;
	struct kwatch **watches;
	size_t nwatches;
	struct event *resync_timer;
	size_t ndrifted;
	int env_marked;         /* we set out_of_sync */
	struct sw_drift_stats st;
};

struct heal_ctx {
	struct dobj *o;
	char *fields;
	char *manager;
	char *summary;
	int fighting;
};

static void check_live(struct dobj *o, const json_t *live);
static void probe(struct dobj *o);

static void heal_ctx_free(struct heal_ctx *h)
{
	if (!h)
		return;
	free(h->fields);
	free(h->manager);
	free(h->summary);
	free(h);
}

/* Drop the request in flight and what waited for it; no callback follows. */
static void dobj_cancel(struct dobj *o)
{
	sw_kube_cancel(o->op);
	o->op = NULL;
	heal_ctx_free(o->heal);
	o->heal = NULL;
	json_decref(o->live);
	o->live = NULL;
	json_decref(o->blame_diffs);
	o->blame_diffs = NULL;
	json_decref(o->pending);
	o->pending = NULL;
	o->pending_gone = 0;
}

/* Stopped on purpose (hold, a sync running)? */
static int held(const struct sw_drift *dw)
{
	return dw->hold || (dw->syncer && sw_syncer_busy(dw->syncer, NULL));
}

/* ---- small helpers ---- */

static const char *jstr(const json_t *o, const char *a, const char *b)
{
	const json_t *v = json_object_get(o, a);
	if (b)
		v = json_object_get(v, b);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *live_rv(const json_t *live)
{
	const char *rv = jstr(live, "metadata", "resourceVersion");
	return rv ? rv : "";
}

static void set_str(char **dst, const char *s)
{
	free(*dst);
	*dst = s ? sw_strdup(s) : NULL;
}

static int dobj_cmp(const void *a, const void *b)
{
	return strcmp((*(struct dobj *const *)a)->key, (*(struct dobj *const *)b)->key);
}

static struct dobj *find_key(struct sw_drift *dw, const char *key)
{
	size_t lo = 0, hi = dw->nobjs;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(key, dw->objs[mid]->key);
		if (!c)
			return dw->objs[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* The desired object a live one is, or NULL when it is not ours. */
static struct dobj *find_live(struct sw_drift *dw, const json_t *live)
{
	const char *av = jstr(live, "apiVersion", NULL), *kind = jstr(live, "kind", NULL);
	const char *ns = jstr(live, "metadata", "namespace");
	const char *name = jstr(live, "metadata", "name");
	struct sw_buf key = SW_BUF_INIT;
	struct dobj *o;

	if (!av || !kind || !name)
		return NULL;
	sw_obj_key(&key, av, kind, ns ? ns : "", name);
	o = find_key(dw, key.ptr);
	if (!o && ns && *ns && !strcmp(ns, sw_kube_config(dw->kube)->ns)) {
		/* Written without a namespace: the kubeconfig's default. */
		sw_buf_reset(&key);
		sw_obj_key(&key, av, kind, "", name);
		o = find_key(dw, key.ptr);
	}
	sw_buf_release(&key);
	return o;
}

static int same_kind(const struct dobj *o, const struct kwatch *w)
{
	return !strcmp(o->api_version, w->api_version) && !strcmp(o->kind, w->kind);
}

static void objref(const struct dobj *o, struct sw_store_objref *r)
{
	r->api_version = o->api_version;
	r->kind = o->kind;
	r->namespace = o->ns;
	r->name = o->name;
}

/* ---- environment state ---- */

static void env_update(struct sw_drift *dw)
{
	struct sw_store_env_update u = SW_STORE_ENV_UPDATE_INIT;
	struct sw_store_env env = { 0 };
	char msg[128];

	if (!dw->store)
		return;
	if (dw->ndrifted && !dw->env_marked) {
		snprintf(msg, sizeof(msg), "drift: %zu object%s differ from git", dw->ndrifted,
			 dw->ndrifted == 1 ? "" : "s");
		u.sync_status = SW_ENV_OUT_OF_SYNC;
		u.message = msg;
		if (sw_store_env_set(dw->store, dw->env, &u) < 0)
			log_warn("drift.env", "env=%s err=%s", dw->env, sw_q(sw_error_last()));
		else
			dw->env_marked = 1;
	} else if (!dw->ndrifted && dw->env_marked) {
		dw->env_marked = 0;
		if (sw_store_env_get(dw->store, dw->env, &env) < 0)
			return;
		/* Only undo what we did: a sync may have moved it on since. */
		if (env.sync_status == SW_ENV_OUT_OF_SYNC) {
			u.sync_status = env.rolled_back_to ? SW_ENV_ROLLED_BACK : SW_ENV_SYNCED;
			u.message = "drift resolved";
			if (sw_store_env_set(dw->store, dw->env, &u) < 0)
				log_warn("drift.env", "env=%s err=%s", dw->env,
					 sw_q(sw_error_last()));
		}
		sw_store_env_release(&env);
	}
}

static void set_drifted(struct dobj *o, int on)
{
	struct sw_drift *dw = o->dw;
	if (on == o->drifted)
		return;
	o->drifted = on;
	if (on)
		dw->ndrifted++;
	else
		dw->ndrifted--;
	if (!on)
		set_str(&o->reported_fields, NULL);
	env_update(dw);
}

/* The live state equals the desired one. */
static void mark_clean(struct dobj *o, const char *rv)
{
	set_str(&o->clean_rv, rv);
	set_drifted(o, 0);
}

/* ---- recording ---- */

/* Stored form of the differences: paths, values unless a Secret. */
static char *fields_json(const struct dobj *o, const json_t *diffs)
{
	json_t *a = json_array();
	size_t i;
	const json_t *d;
	char *s;

	json_array_foreach(diffs, i, d) {
		json_t *e = json_pack("{s:O}", "path", json_object_get(d, "path"));
		if (!o->is_secret) {
			json_object_set(e, "desired", json_object_get(d, "desired"));
			json_object_set(e, "live", json_object_get(d, "live"));
		}
		json_array_append_new(a, e);
	}
	s = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return s;
}

static void record(struct dobj *o, enum sw_drift_action action, const char *fields,
		   const char *manager, const char *message, int fighting)
{
	struct sw_drift *dw = o->dw;
	struct sw_store_drift_in in = { 0 };
	struct sw_drift_note n = { 0 };
	int64_t id = 0;

	in.environment = dw->env;
	objref(o, &in.ref);
	in.fields = fields;
	in.manager = manager;
	in.action = action;
	in.message = message;
	if (dw->store && sw_store_drift_insert(dw->store, &id, &in) < 0)
		log_warn("drift.record", "env=%s obj=%s err=%s", dw->env, o->key,
			 sw_q(sw_error_last()));
	log_info("drift.event", "env=%s obj=%s action=%s manager=%s fighting=%d msg=%s",
		 dw->env, o->key, sw_store_drift_action_str(action), sw_q(manager ? manager : ""),
		 fighting, sw_q(message));
	if (dw->notify) {
		n.environment = dw->env;
		n.ref = in.ref;
		n.action = action;
		n.fields = fields;
		n.manager = manager;
		n.message = message;
		n.event_id = id;
		n.fighting = fighting;
		dw->notify(&n, dw->notify_arg);
	}
}

/* ---- healing ---- */

static void next_pending(struct dobj *o);

static void healed(const struct sw_kube_result *r, void *arg)
{
	struct heal_ctx *h = arg;
	struct dobj *o = h->o;
	struct sw_drift *dw = o->dw;
	char *msg;

	o->op = NULL;
	o->heal = NULL;
	if (o->pending) {
		/* Seen while we wrote: older or newer than our write, no way to
		 * tell without comparing resourceVersions (opaque). Read it again. */
		json_decref(o->pending);
		o->pending = NULL;
		o->pending_gone = 1;
	}
	if (!r->error) {
		dw->st.healed++;
		/* The MODIFIED event of our own write carries this version. */
		mark_clean(o, live_rv(r->obj));
		msg = sw_asprintf("%s; re-applied", h->summary);
		record(o, SW_DRIFT_HEALED, h->fields, h->manager, msg, h->fighting);
	} else {
		dw->st.heal_failed++;
		msg = sw_asprintf("%s; re-apply failed: %s", h->summary, r->error_msg);
		set_drifted(o, 1);
		record(o, SW_DRIFT_HEAL_FAILED, h->fields, h->manager, msg, h->fighting);
	}
	free(msg);
	heal_ctx_free(h);
	next_pending(o);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dobj *o = arg;
	/* The backoff is over: look again, the fight may have stopped. */
	if (!held(o->dw))
		probe(o);
}

/*
 * Heal now or later. Returns 1 when a heal started (the object is busy),
 * 0 when it was put off.
 */
static int heal(struct dobj *o, const char *fields, const char *manager, const char *summary)
{
	struct sw_drift *dw = o->dw;
	int64_t now = sw_mono_ms();
	struct heal_ctx *h;
	int rc;
	int fighting;

	if (o->burst && now - o->next_ok_ms > dw->quiet_ms) {
		/* Quiet long enough: whatever fought us has stopped. */
		o->burst = 0;
		o->backoff_ms = 0;
	}
	if (o->burst && now < o->next_ok_ms) {
		dw->st.deferred++;
		if (!evtimer_pending(o->timer, NULL)) {
			long ms = (long)(o->next_ok_ms - now);
			struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
			evtimer_add(o->timer, &tv);
		}
		log_debug("drift.backoff", "env=%s obj=%s wait_ms=%ld", dw->env, o->key,
			  (long)(o->next_ok_ms - now));
		return 0;
	}
	fighting = o->burst >= 1;
	o->burst++;
	o->backoff_ms = o->backoff_ms ? o->backoff_ms * 2 : dw->backoff_min_ms;
	if (o->backoff_ms > dw->backoff_max_ms)
		o->backoff_ms = dw->backoff_max_ms;
	o->last_heal_ms = now;
	o->next_ok_ms = now + o->backoff_ms;

	h = sw_calloc(1, sizeof(*h));
	h->o = o;
	h->fields = sw_strdup(fields);
	h->manager = manager ? sw_strdup(manager) : NULL;
	if (fighting)
		h->summary = sw_asprintf("%s; fighting with %s: drift came back %d time%s, "
					 "next heal no sooner than %lds", summary,
					 manager ? manager : "another manager", o->burst - 1,
					 o->burst == 2 ? "" : "s", o->backoff_ms / 1000);
	else
		h->summary = sw_strdup(summary);
	h->fighting = fighting;
	o->heal = h;
	if (dw->syncer) {
		rc = sw_sync_apply_one(dw->syncer, o->id, healed, h, &o->op);
	} else {
		json_t *d = desired_of(o);
		rc = sw_kube_apply(dw->kube, d, 0, healed, h, &o->op);
		json_decref(d);
	}
	if (rc < 0) {
		struct sw_kube_result r = { 0 };
		r.error = SW_ERR;
		r.error_msg = sw_error_last();
		o->op = NULL;
		/* healed() frees h and moves on; keep the object busy-free. */
		healed(&r, h);
		return 1;
	}
	return 1;
}

/*
 * A confirmed drift with `diffs` (NULL live: the object is missing); the
 * manager to blame is read from `managed` (the object with its
 * managedFields; NULL: unknown). Returns 1 when a request started.
 */
static int drifted(struct dobj *o, const json_t *live, const json_t *diffs,
		   const json_t *managed)
{
	struct sw_drift *dw = o->dw;
	char *fields, *summary;
	const char *manager = NULL;
	struct sw_buf s = SW_BUF_INIT;
	size_t i;
	const json_t *d;
	int started = 0;

	dw->st.detected++;
	if (live) {
		fields = fields_json(o, diffs);
		manager = managed ? sw_drift_manager(managed, diffs, dw->manager) : NULL;
		sw_buf_addf(&s, "%s %s%s%s: ", o->kind, o->ns, *o->ns ? "/" : "", o->name);
		json_array_foreach(diffs, i, d) {
			if (i == 5) {
				sw_buf_addf(&s, ", ... (%zu fields)", json_array_size(diffs));
				break;
			}
			sw_buf_addf(&s, "%s%s", i ? ", " : "",
				    json_string_value(json_object_get(d, "path")));
		}
		sw_buf_addf(&s, " changed%s%s", manager ? " by " : "", manager ? manager : "");
	} else {
		fields = sw_strdup("[{\"path\":\"\",\"live\":\"deleted\"}]");
		sw_buf_addf(&s, "%s %s%s%s: deleted", o->kind, o->ns, *o->ns ? "/" : "", o->name);
	}
	summary = sw_buf_detach(&s, NULL);

	if (dw->self_heal) {
		started = heal(o, fields, manager, summary);
	} else {
		/* Report once per distinct drift, not per event. */
		if (!o->drifted || !o->reported_fields || strcmp(o->reported_fields, fields)) {
			char *msg = sw_asprintf("%s; self-heal is off", summary);
			dw->st.reported++;
			set_drifted(o, 1);
			set_str(&o->reported_fields, fields);
			record(o, SW_DRIFT_REPORTED, fields, manager, msg, 0);
			free(msg);
		}
	}
	free(fields);
	free(summary);
	return started;
}

/* ---- checking ---- */

/* Lists (a relist after a watch expired) bring objects without
 * managedFields: kube.h. */
static int has_managed_fields(const json_t *live)
{
	return json_object_get(json_object_get(live, "metadata"), "managedFields") != NULL;
}

static void blamed(const struct sw_kube_result *r, void *arg)
{
	struct dobj *o = arg;
	json_t *live = o->live, *diffs = o->blame_diffs;
	int started = 0;

	o->op = NULL;
	o->live = NULL;
	o->blame_diffs = NULL;
	if (!held(o->dw))
		started = drifted(o, live, diffs, r->error ? NULL : r->obj);
	json_decref(diffs);
	json_decref(live);
	if (!started)
		next_pending(o);
}

/*
 * A drift found in a listed object: GET it for its managedFields, so that
 * the event names who made the change as one found by a watch does. Takes
 * `live`; returns 1 when the GET started (blamed() follows).
 */
static int blame(struct dobj *o, json_t *live, json_t *diffs)
{
	if (sw_kube_get(o->dw->kube, o->api_version, o->kind, o->ns, o->name, blamed, o,
			&o->op) < 0) {
		o->op = NULL;
		return 0;
	}
	o->live = live;
	o->blame_diffs = json_incref(diffs);
	return 1;
}

static void dry_run_done(const struct sw_kube_result *r, void *arg)
{
	struct dobj *o = arg;
	struct sw_drift *dw = o->dw;
	json_t *live = o->live, *diffs = NULL, *desired;
	int started = 0;

	o->op = NULL;
	o->live = NULL;
	if (held(dw)) {
		json_decref(live);
		next_pending(o);
		return;
	}
	desired = desired_of(o);
	if (r->error) {
		/* Cannot confirm: trust the local comparison. */
		log_warn("drift.dry_run", "env=%s obj=%s err=%s", dw->env, o->key,
			 sw_q(r->error_msg));
		sw_drift_diff(desired, NULL, live, &diffs);
	} else {
		sw_drift_diff(desired, r->obj, live, &diffs);
	}
	json_decref(desired);
	if (!json_array_size(diffs)) {
		mark_clean(o, live_rv(live)); /* only a normalised value differed */
	} else if (!has_managed_fields(live) && blame(o, live, diffs)) {
		json_decref(diffs);
		return;   /* blamed() goes on; it owns live now */
	} else {
		started = drifted(o, live, diffs, live);
	}
	json_decref(diffs);
	json_decref(live);
	if (!started)
		next_pending(o);
}

static void check_live(struct dobj *o, const json_t *live)
{
	struct sw_drift *dw = o->dw;
	const char *rv = live_rv(live);
	json_t *desired;
	int rc;

	if (o->op) {
		json_decref(o->pending);
		o->pending = json_deep_copy(live);
		o->pending_gone = 0;
		return;
	}
	if (o->clean_rv && *rv && !strcmp(o->clean_rv, rv)) {
		dw->st.skipped_own++;
		return;
	}
	dw->st.compares++;
	desired = desired_of(o);
	if (sw_drift_diff(desired, NULL, live, NULL) == 0) {
		json_decref(desired);
		mark_clean(o, rv);
		return;
	}
	/* Looks different: ask the server what a re-apply would give. */
	dw->st.dry_runs++;
	o->live = json_deep_copy(live);
	rc = sw_kube_apply(dw->kube, desired, SW_KUBE_DRY_RUN, dry_run_done, o, &o->op);
	json_decref(desired);
	if (rc < 0) {
		struct sw_kube_result r = { 0 };
		r.error = SW_ERR;
		r.error_msg = sw_error_last();
		o->op = NULL;
		dry_run_done(&r, o);
	}
}

static void probed(const struct sw_kube_result *r, void *arg)
{
	struct dobj *o = arg;
	struct sw_drift *dw = o->dw;
	int started = 0;

	o->op = NULL;
	if (held(dw)) {
		next_pending(o);
		return;
	}
	if (!r->error) {
		/* Still there (e.g. it lost the tracking label): compare it. */
		check_live(o, r->obj);
		if (!o->op)
			next_pending(o);
		return;
	}
	if (r->error == SW_ENOTFOUND) {
		dw->st.compares++;
		started = drifted(o, NULL, NULL, NULL);
	} else {
		log_warn("drift.get", "env=%s obj=%s err=%s", dw->env, o->key,
			 sw_q(r->error_msg));
	}
	if (!started)
		next_pending(o);
}

/* The object went away or its state is unknown: GET it. */
static void probe(struct dobj *o)
{
	struct sw_drift *dw = o->dw;
	if (o->op) {
		json_decref(o->pending);
		o->pending = NULL;
		o->pending_gone = 1;
		return;
	}
	if (sw_kube_get(dw->kube, o->api_version, o->kind, o->ns, o->name, probed, o,
			&o->op) < 0) {
		o->op = NULL;
		log_warn("drift.get", "env=%s obj=%s err=%s", dw->env, o->key,
			 sw_q(sw_error_last()));
	}
}

/* A request finished: look at what arrived meanwhile. */
static void next_pending(struct dobj *o)
{
	if (o->op || held(o->dw))
		return;
	if (o->pending) {
		json_t *p = o->pending;
		o->pending = NULL;
		check_live(o, p);
		json_decref(p);
	} else if (o->pending_gone) {
		o->pending_gone = 0;
		probe(o);
	}
}

/* ---- watches ---- */

static int set_desired(struct sw_drift *dw, const json_t *desired);

/*
 * Keep up with the syncer: a new desired set once it is idle, and a full
 * comparison when a sync has ended. Returns 1 when the desired set was
 * replaced (watches may have been stopped).
 */
static int follow_syncer(struct sw_drift *dw)
{
	int busy;
	uint64_t v;

	if (!dw->syncer)
		return 0;
	busy = sw_syncer_busy(dw->syncer, NULL);
	v = sw_sync_desired_version(dw->syncer);
	if (busy) {
		dw->sync_busy = 1;
		return 0;
	}
	if (v != dw->desired_version) {
		dw->desired_version = v;
		dw->sync_busy = 0;
		set_desired(dw, sw_sync_desired(dw->syncer));
		return 1;
	}
	if (dw->sync_busy) {
		dw->sync_busy = 0;
		sw_drift_resync(dw);
	}
	return 0;
}

/* A full list of one kind: every desired object of the kind is compared. */
static void compare_list(struct sw_drift *dw, struct kwatch *w, const json_t *list)
{
	const json_t *items = json_object_get(list, "items"), *it;
	size_t i;

	dw->st.resyncs++;
	for (i = 0; i < dw->nobjs; i++)
		dw->objs[i]->seen = 0;
	json_array_foreach(items, i, it) {
		struct dobj *o = find_live(dw, it);
		if (!o)
			continue;
		o->seen = 1;
		check_live(o, it);
	}
	for (i = 0; i < dw->nobjs; i++) {
		struct dobj *o = dw->objs[i];
		if (!o->seen && same_kind(o, w)) {
			/* Not in the list: deleted, or lost its tracking label. */
			set_str(&o->clean_rv, NULL);
			probe(o);
		}
	}
}

static void on_event(const struct sw_kube_event *ev, void *arg)
{
	struct kwatch *w = arg;
	struct sw_drift *dw = w->dw;
	struct dobj *o;

	if (ev->type == SW_KUBE_SYNC)
		w->fresh = 0;
	if (ev->type == SW_KUBE_WATCH_ERROR) {
		log_warn("drift.watch", "env=%s kind=%s err=%s", dw->env, w->kind,
			 sw_q(ev->message));
		return;
	}
	if (follow_syncer(dw))
		return; /* the watches were renewed and everything is compared again */
	if (held(dw))
		return;
	if (ev->type == SW_KUBE_SYNC) {
		compare_list(dw, w, ev->obj);
		return;
	}
	o = find_live(dw, ev->obj);
	if (!o)
		return;
	dw->st.events++;
	if (ev->type == SW_KUBE_DELETED) {
		set_str(&o->clean_rv, NULL);
		probe(o);
	} else {
		check_live(o, ev->obj);
	}
}

static void listed(const struct sw_kube_result *r, void *arg)
{
	struct kwatch *w = arg;
	w->list = NULL;
	if (r->error) {
		log_warn("drift.list", "env=%s kind=%s err=%s", w->dw->env, w->kind,
			 sw_q(r->error_msg));
		return;
	}
	if (!held(w->dw))
		compare_list(w->dw, w, r->obj);
}

static void kwatch_free(struct kwatch *w)
{
	if (!w)
		return;
	sw_kube_watch_stop(w->w);
	sw_kube_cancel(w->list);
	free(w->api_version);
	free(w->kind);
	free(w);
}

static struct kwatch *find_watch(struct sw_drift *dw, const char *av, const char *kind)
{
	for (size_t i = 0; i < dw->nwatches; i++)
		if (!strcmp(dw->watches[i]->api_version, av) && !strcmp(dw->watches[i]->kind, kind))
			return dw->watches[i];
	return NULL;
}

static int kwatch_start(struct sw_drift *dw, const char *av, const char *kind)
{
	struct sw_kube_watch_opts wo = SW_KUBE_WATCH_OPTS_INIT;
	struct kwatch *w = sw_calloc(1, sizeof(*w));

	w->dw = dw;
	w->api_version = sw_strdup(av);
	w->kind = sw_strdup(kind);
	w->keep = 1;
	w->fresh = 1;
	wo.api_version = av;
	wo.kind = kind;
	wo.label_selector = dw->selector;
	wo.on_event = on_event;
	wo.arg = w;
	if (sw_kube_watch(dw->kube, &wo, &w->w) < 0) {
		kwatch_free(w);
		return sw_error_prefix("drift: watch %s %s", av, kind);
	}
	dw->watches = sw_realloc(dw->watches, (dw->nwatches + 1) * sizeof(*dw->watches));
	dw->watches[dw->nwatches++] = w;
	log_debug("drift.watch.start", "env=%s kind=%s/%s", dw->env, av, kind);
	return 0;
}

int sw_drift_resync(struct sw_drift *dw)
{
	int rc = 0;
	for (size_t i = 0; i < dw->nwatches; i++) {
		struct kwatch *w = dw->watches[i];
		if (w->list || w->fresh)
			continue; /* a list is coming anyway */
		if (sw_kube_list(dw->kube, w->api_version, w->kind, NULL, dw->selector, listed, w,
				 &w->list) < 0) {
			w->list = NULL;
			rc = SW_ERR;
		}
	}
	return rc;
}

static void resync_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sw_drift *dw = arg;
	if (!held(dw))
		sw_drift_resync(dw);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	follow_syncer(arg);
}

/* ---- life cycle ---- */

static void dobj_free(struct dobj *o)
{
	if (!o)
		return;
	dobj_cancel(o);
	if (o->timer)
		event_free(o->timer);
	json_decref(o->desired);
	free(o->id);
	free(o->key);
	free(o->api_version);
	free(o->kind);
	free(o->ns);
	free(o->name);
	free(o->clean_rv);
	free(o->last_manager);
	free(o->reported_fields);
	free(o);
}

int sw_drift_new(struct sw_drift **out, struct event_base *base, struct sw_kube *kube,
		 struct sw_store *store, struct sw_syncer *syncer,
		 const struct sw_cfg_env *env, const struct sw_drift_opts *opts)
{
	struct sw_drift_opts def = SW_DRIFT_OPTS_INIT;
	struct timeval second = { 1, 0 };
	struct sw_drift *dw;

	*out = NULL;
	if (!kube && syncer)
		kube = sw_syncer_kube(syncer);
	if (!base || !kube || !env || !env->name)
		return sw_error_setc(SW_EINVALID, "drift: base, a client and env are required");
	if (!opts)
		opts = &def;
	dw = sw_calloc(1, sizeof(*dw));
	dw->base = base;
	dw->kube = kube;
	dw->store = store;
	dw->syncer = syncer;
	dw->env = sw_strdup(env->name);
	dw->selector = sw_asprintf("%s=%s", SW_SYNC_LABEL, env->name);
	dw->manager = sw_strdup(opts->field_manager ? opts->field_manager : "slipway");
	dw->self_heal = env->self_heal;
	dw->notify = opts->notify;
	dw->notify_arg = opts->notify_arg;
	dw->backoff_min_ms = opts->backoff_min_ms > 0 ? opts->backoff_min_ms : 1000;
	dw->backoff_max_ms = opts->backoff_max_ms > 0 ? opts->backoff_max_ms : 300000;
	dw->quiet_ms = opts->quiet_ms > 0 ? opts->quiet_ms : 60000;
	if (opts->resync_interval_ms)
		dw->resync_ms = opts->resync_interval_ms;
	else
		dw->resync_ms = env->resync_interval_s > 0 ? (long)env->resync_interval_s * 1000
							   : 300000;
	if (dw->resync_ms > 0) {
		struct timeval tv = { dw->resync_ms / 1000, (dw->resync_ms % 1000) * 1000 };
		dw->resync_timer = event_new(base, -1, EV_PERSIST, resync_cb, dw);
		evtimer_add(dw->resync_timer, &tv);
	}
	if (syncer) {
		dw->tick = event_new(base, -1, EV_PERSIST, tick_cb, dw);
		evtimer_add(dw->tick, &second);
		follow_syncer(dw);
	}
	*out = dw;
	return 0;
}

void sw_drift_free(struct sw_drift *dw)
{
	if (!dw)
		return;
	for (size_t i = 0; i < dw->nwatches; i++)
		kwatch_free(dw->watches[i]);
	free(dw->watches);
	for (size_t i = 0; i < dw->nobjs; i++)
		dobj_free(dw->objs[i]);
	free(dw->objs);
	if (dw->resync_timer)
		event_free(dw->resync_timer);
	if (dw->tick)
		event_free(dw->tick);
	free(dw->env);
	free(dw->selector);
	free(dw->manager);
	free(dw);
}

static int set_desired(struct sw_drift *dw, const json_t *desired)
{
	size_t n = json_is_object(desired) ? json_object_size(desired) : 0, k = 0, i;
	struct dobj **objs = n ? sw_calloc(n, sizeof(*objs)) : NULL;
	const char *id;
	json_t *val;
	int rc = 0;

	json_object_foreach((json_t *)desired, id, val) {
		/* The syncer's values are JSON text; tools may give objects. */
		json_t *obj = json_is_string(val) ? json_loads(json_string_value(val), 0, NULL)
						  : json_incref(val);
		const char *av = jstr(obj, "apiVersion", NULL), *kind = jstr(obj, "kind", NULL);
		const char *ns = jstr(obj, "metadata", "namespace");
		const char *name = jstr(obj, "metadata", "name");
		struct sw_buf key = SW_BUF_INIT;
		struct dobj *o;

		if (!av || !kind || !name || k == n) {
			json_decref(obj);
			continue; /* the renderer refuses these */
		}
		sw_obj_key(&key, av, kind, ns ? ns : "", name);
		o = find_key(dw, key.ptr);
		if (o && !o->taken) {
			/* Kept: its backoff and report state go on. */
			o->taken = 1;
			dobj_cancel(o);
			json_decref(o->desired);
			set_str(&o->clean_rv, NULL);
			set_str(&o->api_version, av);
			set_str(&o->id, id);
			sw_buf_release(&key);
		} else {
			o = sw_calloc(1, sizeof(*o));
			o->dw = dw;
			o->id = sw_strdup(id);
			o->key = sw_buf_detach(&key, NULL);
			o->api_version = sw_strdup(av);
			o->kind = sw_strdup(kind);
			o->ns = sw_strdup(ns ? ns : "");
			o->name = sw_strdup(name);
			o->timer = evtimer_new(dw->base, timer_cb, o);
			o->taken = 1;
		}
		o->is_secret = !strcmp(kind, "Secret") && !strcmp(av, "v1");
		if (json_is_string(val)) {
			o->desired = json_incref(val);
		} else {
			char *text = json_dumps(obj, JSON_COMPACT);
			o->desired = json_string_nocheck(text);
			free(text);
		}
		json_decref(obj);
		objs[k++] = o;
	}
	/* Objects that left the desired set: no longer ours to heal. */
	for (i = 0; i < dw->nobjs; i++) {
		struct dobj *o = dw->objs[i];
		if (o->taken)
			continue;
		if (o->drifted)
			dw->ndrifted--;
		dobj_free(o);
	}
	free(dw->objs);
	dw->objs = objs;
	dw->nobjs = k;
	for (i = 0; i < k; i++)
		objs[i]->taken = 0;
	if (k)
		qsort(dw->objs, k, sizeof(*dw->objs), dobj_cmp);

	/* Watches: one per kind present. */
	for (i = 0; i < dw->nwatches; i++)
		dw->watches[i]->keep = 0;
	for (i = 0; i < dw->nobjs; i++) {
		struct kwatch *w = find_watch(dw, dw->objs[i]->api_version, dw->objs[i]->kind);
		if (w) {
			w->keep = 1;
		} else if (kwatch_start(dw, dw->objs[i]->api_version, dw->objs[i]->kind) < 0) {
			log_warn("drift.watch", "env=%s err=%s", dw->env, sw_q(sw_error_last()));
			rc = SW_ERR;
		}
	}
	for (i = 0; i < dw->nwatches;) {
		if (!dw->watches[i]->keep) {
			kwatch_free(dw->watches[i]);
			dw->watches[i] = dw->watches[--dw->nwatches];
		} else {
			i++;
		}
	}
	env_update(dw);
	/* New watches list first (SW_KUBE_SYNC); the ones kept list now. */
	if (!held(dw))
		sw_drift_resync(dw);
	log_info("drift.desired", "env=%s objects=%zu kinds=%zu", dw->env, dw->nobjs,
		 dw->nwatches);
	return rc;
}

int sw_drift_set_desired(struct sw_drift *dw, const json_t *desired)
{
	return set_desired(dw, desired);
}

void sw_drift_set_self_heal(struct sw_drift *dw, int on)
{
	dw->self_heal = on;
}

void sw_drift_hold(struct sw_drift *dw, int on)
{
	if (dw->hold == !!on)
		return;
	dw->hold = !!on;
	if (!held(dw))
		sw_drift_resync(dw);
}

void sw_drift_stats(const struct sw_drift *dw, struct sw_drift_stats *out)
{
	*out = dw->st;
	out->drifted = dw->ndrifted;
}
