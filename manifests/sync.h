/*
 * sync.h - the sync engine: keep one environment's cluster equal to the
 * manifests at a commit (a section of the manifests subsystem's public API).
 *
 * Life cycle (everything on the event loop of `base`):
 *
 *     struct sw_syncer_opts o = SW_SYNCER_OPTS_INIT;
 *     o.base = base; o.pool = pool; o.store = store; o.http = http;
 *     o.procs = procs; o.env = sw_config_env(cfg, "dev");
 *     o.data_dir = cfg->data_dir; o.history_limit = cfg->history_limit;
 *     o.checkout = sw_source_checkout;      // pipeline/source.h
 *     if (sw_syncer_new(&s, &o) < 0)        // loads the env's kubeconfig
 *             fail(sw_error_last());
 *
 *     struct sw_sync_req rq = SW_SYNC_REQ_INIT;
 *     rq.repo = "acme/shop"; rq.commit = sha; rq.trigger = SW_TRIGGER_MERGE;
 *     sw_sync_start(s, &rq, done, arg);     // done(result, arg) later, on the loop
 *     ...
 *     sw_syncer_free(s);
 *
 * One sync (the steps below) runs at a time per syncer. A request made
 * while one runs waits; a newer waiting request replaces an older waiting
 * one of the same kind (real sync or dry run: a diff never replaces a
 * sync), whose callback is then called with `superseded` set (a running
 * sync is never interrupted). Waiting real syncs run before waiting dry runs.
 *
 * Steps of a sync:
 *  1. On a pool worker: opts.checkout() of the commit from the mirror (the
 *     caller has fetched it) into DATA_DIR/sync/ENV-COMMIT, then
 *     sw_render_dir() of the environment's manifest paths. A render error
 *     fails the sync before anything touches the cluster; its message
 *     carries file:line:col.
 *  2. Default namespaces from discovery: a namespaced kind without one gets
 *     the environment's namespace (else the kubeconfig context's); a
 *     cluster-scoped kind must have none. A kind discovery does not know is
 *     looked up again after one discovery refresh; a custom resource whose
 *     CustomResourceDefinition is in the same set takes its scope from the
 *     CRD. Still unknown: the sync fails ("unknown kind example.com/v1 Foo
 *     in apps/foo.yaml:3:1") before anything is applied. Duplicates after
 *     filling fail the same way.
 *  3. Every object gets the label SW_SYNC_LABEL=ENV and the annotation
 *     SW_SYNC_TRACKING_ANNOTATION=ENV:group/kind/namespace/name (the
 *     "tracking id"; Argo CD style).
 *  4. Live state: each kind of the set and of the stored inventory is
 *     listed once with the label selector. Then server-side apply
 *     (fieldManager slipway, force) stage by stage
 *     (sw_objset_sort_for_apply: wave, then phase), every object of a stage
 *     concurrently (the client keeps at most sw_kube_opts.max_inflight
 *     requests on the wire); after a stage holding CRDs, each is waited for
 *     until Established. Result per object: created (the apply answered 201
 *     Created), configured (its resourceVersion changed, or it existed
 *     without our label), unchanged (the apply left its resourceVersion as
 *     it was). A failed apply fails the sync; later stages are not applied.
 *  5. Prune, when the environment has `prune`: live objects carrying our
 *     label AND our tracking annotation naming this environment, of the
 *     kinds listed in step 4, that are not in the rendered set, deleted in
 *     reverse apply order (phase). An object without the annotation naming
 *     this environment is never deleted. When the rendered set is empty and
 *     something would be pruned, the sync fails unless `allow_empty_prune`.
 *  6. Health: every applied object is judged with sw_kube_health (the apply
 *     answer first, then polled with get) until all are healthy, one is
 *     degraded, or the environment's health_timeout_s passes.
 *  7. Record: the sync row with its per-object results (storage), the
 *     inventory replaced with the applied set and its health, the
 *     environment's state (desired/synced commit, sync_status
 *     synced/failed, health, last sync time and duration, message), then the
 *     history trimmed to opts.history_limit.
 *
 * A dry run (req.dry_run, for `slipway diff ENV`) does steps 1-3, reads the
 * live state, applies every object with dryRun=All and reports what a sync
 * would do (created/configured/unchanged/pruned) without storing anything,
 * in the cluster or in storage; health is not waited for.
 *
 * Desired state: once a (non-dry-run) sync has got past step 3, the set it
 * applied is the syncer's desired state (each object as applied, with
 * namespace, label and annotation, keyed by tracking id), whether or not the
 * apply and health steps then succeed. It is held as compact JSON text, not
 * as parsed trees: a parsed Kubernetes object costs several times its text
 * in jansson nodes, and 10,000 of them would be most of slipwayd's memory. The drift watcher (manifests/drift.c)
 * compares live objects with it and heals with sw_sync_apply_one().
 *
 * Errors name the object and carry the API server's Status.message
 * ("apps/v1 Deployment shop/web: ... (422 Unprocessable Entity)"). A server
 * that goes away mid-sync fails the sync once the client's bounded retries
 * are spent; the failure is recorded and the next sync starts afresh.
 */
#ifndef SW_SYNC_H
#define SW_SYNC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"
#include "manifests/kube.h"
#include "storage/store.h"

struct event_base;
struct sw_http;
struct sw_pool;
struct sw_proc_mgr;
struct sw_cfg_env;

/* What every managed object carries. */
#define SW_SYNC_LABEL "slipway.dev/environment"
#define SW_SYNC_TRACKING_ANNOTATION "slipway.dev/tracking-id"

/* ---- the syncer ---- */

/*
 * Check out `commit_sha` of `repo_name`'s mirror under `data_dir` into
 * `dest_dir`; blocks, called on a pool worker. sw_source_checkout()
 * (pipeline/source.h) has this shape; it is passed in rather than called
 * directly because manifests/ sits below pipeline/ in the dependency order.
 */
typedef int (*sw_sync_checkout_fn)(const char *data_dir, const char *repo_name,
				   const char *commit_sha, const char *dest_dir);

struct sw_syncer_opts {
	struct event_base *base;       /* required: every callback runs on it */
	struct sw_pool *pool;          /* required: checkout and render run there */
	struct sw_store *store;        /* required: the loop's handle; the env row must exist */
	struct sw_http *http;          /* required: the Kubernetes client's transport */
	struct sw_proc_mgr *procs;     /* exec credential plugins; may be NULL without them */
	/*
	 * Required. Read at sw_syncer_new (and sw_syncer_reconfigure): name,
	 * kubeconfig + context, namespace, manifests, prune,
	 * allow_empty_prune, health_timeout_s. Nothing is kept borrowed.
	 */
	const struct sw_cfg_env *env;
	const char *data_dir;          /* required: mirrors and DATA_DIR/sync/ live there */
	sw_sync_checkout_fn checkout;  /* required unless every request gives req.dir */
	int64_t history_limit;         /* syncs kept per environment; <= 0 = 50 */
	/*
	 * The cluster: a loaded kubeconfig, taken by the syncer (also on
	 * failure); NULL loads env->kubeconfig with env->context.
	 */
	struct sw_kubeconfig *kubeconfig;
	/* Client tuning (http/procs are filled in from above). */
	struct sw_kube_opts kube;
	long health_poll_ms;           /* between health reads; 0 = 250 */
	int keep_checkouts;            /* leave DATA_DIR/sync/ENV-COMMIT behind (debugging) */
	/*
	 * Called on the loop after the desired state changed (a sync got past
	 * step 3), so a drift watcher can re-read sw_sync_desired(). May be NULL.
	 */
	void (*on_desired)(void *arg);
	void *on_desired_arg;
};
#define SW_SYNCER_OPTS_INIT { 0 }

struct sw_syncer;

/*
 * Create a syncer for opts->env. Loads the kubeconfig (blocking file reads:
 * call at start-up) unless one is given; sends nothing yet. Returns 0, or
 * SW_EINVALID (no kubeconfig configured, missing required option) /
 * the kubeconfig loader's error, with *out NULL.
 */
int sw_syncer_new(struct sw_syncer **out, const struct sw_syncer_opts *opts);

/*
 * Stop: a running sync is abandoned without recording more and no callback
 * (sync or apply_one) is called any more; the Kubernetes client is freed.
 * The pool may still be running the sync's render; it cleans up after
 * itself. NULL is a no-op. Not from inside one of the syncer's callbacks.
 */
void sw_syncer_free(struct sw_syncer *s);

/*
 * Take new settings (manifests, namespace, prune, allow_empty_prune,
 * health_timeout_s, history_limit) after a config reload; the running sync
 * keeps the ones it started with. The kubeconfig is not reloaded.
 */
int sw_syncer_reconfigure(struct sw_syncer *s, const struct sw_cfg_env *env,
			  int64_t history_limit);

/* The environment's name; the Kubernetes client (for the drift watcher's watches). */
const char *sw_syncer_env(const struct sw_syncer *s);
struct sw_kube *sw_syncer_kube(struct sw_syncer *s);

/* 1 while a sync runs, 0 when idle; queued requests in *queued (may be NULL). */
int sw_syncer_busy(const struct sw_syncer *s, size_t *queued);

/* ---- one sync ---- */

struct sw_sync_req {
	const char *repo;              /* mirror name "owner/repo"; required unless dir */
	const char *commit;            /* commit sha (recorded); required */
	enum sw_sync_trigger trigger;  /* merge, drift, manual, rollback, poll */
	int64_t run_id;                /* the pipeline run it belongs to, 0 = none */
	int dry_run;                   /* diff only: report, touch nothing */
	/*
	 * Render this existing directory instead of checking out (it is not
	 * removed afterwards). NULL = check out repo@commit.
	 */
	const char *dir;
};
#define SW_SYNC_REQ_INIT { NULL, NULL, SW_TRIGGER_MANUAL, 0, 0, NULL }

/* One object's outcome. */
struct sw_sync_obj {
	const char *key;               /* "group/kind/namespace/name" */
	const char *api_version, *kind, *ns, *name;  /* ns "" when cluster-scoped */
	enum sw_object_result result;  /* created/configured/unchanged/pruned/failed */
	enum sw_health health;         /* after the wait; UNKNOWN when not judged */
	const char *message;           /* why failed / health message; "" when none */
};

struct sw_sync_result {
	enum sw_sync_status status;    /* SW_SYNC_SUCCESS or SW_SYNC_FAILURE */
	/*
	 * Set when the request never ran: a newer request replaced it while it
	 * waited. status is FAILURE then, nothing else is filled in.
	 */
	int superseded;
	int dry_run;
	enum sw_health health;         /* worst of the objects' (HEALTHY when none) */
	const char *message;           /* "" on success without remarks */
	const char *commit;
	int64_t sync_id;               /* history row; 0 for a dry run or superseded */
	int64_t duration_ms;
	/* counts[r] = objects with result r (enum sw_object_result). */
	size_t counts[SW_OBJ_FAILED + 1];
	/* In apply order, pruned objects last. */
	const struct sw_sync_obj *objects;
	size_t nobjects;
};

/* Called once per request, on the loop; `r` is valid during the call only. */
typedef void (*sw_sync_done_fn)(const struct sw_sync_result *r, void *arg);

/*
 * Queue a sync (see the steps above). Strings in `req` are copied.
 * Returns 0 (the callback follows, never from inside this call), or
 * SW_EINVALID for a bad request (then no callback).
 */
int sw_sync_start(struct sw_syncer *s, const struct sw_sync_req *req, sw_sync_done_fn cb,
		  void *arg);

/* ---- desired state, for the drift watcher ---- */

/*
 * The desired state: a JSON object mapping tracking id
 * ("ENV:group/kind/namespace/name") to the object as applied, as a JSON
 * string holding its compact JSON text (json_loads it to look inside). Borrowed:
 * valid until the next sync replaces it (on_desired says when) or the
 * syncer is freed; json_incref to keep it. NULL before any sync got
 * that far. Do not modify.
 */
const json_t *sw_sync_desired(const struct sw_syncer *s);

/* The commit the desired state came from, or NULL. */
const char *sw_sync_desired_commit(const struct sw_syncer *s);

/* Bumped each time the desired state is replaced (0 = none yet). */
uint64_t sw_sync_desired_version(const struct sw_syncer *s);

/*
 * Re-apply one desired object (server-side apply, force) by tracking id,
 * e.g. to heal drift. `cb` gets the client's result (the live object on
 * success; errors name the object). Returns 0, or SW_ENOTFOUND when the id
 * is not in the desired state (no callback then). A handle for
 * sw_kube_cancel goes to *op when not NULL.
 */
int sw_sync_apply_one(struct sw_syncer *s, const char *tracking_id, sw_kube_done_fn cb,
		      void *arg, struct sw_kube_op **op);

/* Append "ENV:key" to out. */
void sw_sync_tracking_id(struct sw_buf *out, const char *env, const char *key);

#endif
