/*
 * deploy.h - the deploy room: keeps each environment's cluster equal to its
 * branch. It owns the syncer (deploy/sync.c: check out, render, apply in
 * phases and waves, wait for health, prune, record history, roll back) and
 * the drift watcher (deploy/drift.c: watch what is live, compare with the
 * desired state, heal, report drift).
 *
 * May call: lib/, config/, storage/, kube/ (the client), git/ (checkouts),
 * manifests/ (the desired state), report/ (the Slack message of a drift
 * event). Called by pipeline/ (the deploy operations) and daemon/.
 *
 * Sections below: Sync, Drift, then the Deployer that holds both per
 * environment and gives the pipeline its deploy operations. Everything runs on the event loop
 * given in the options; blocking work (checkout, render) goes to the pool.
 */
#ifndef SW_DEPLOY_H
#define SW_DEPLOY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "kube/kube.h"
#include "lib/error.h"
#include "storage/store.h"

/* ======================================================================
 * Sync (deploy/sync.c)
 * ======================================================================
 *
 * The syncer keeps one environment's cluster equal to the manifests at a
 * commit.
 *
 * Life cycle (everything on the event loop of `base`):
 *
 *     struct sw_syncer_opts o = SW_SYNCER_OPTS_INIT;
 *     o.base = base; o.pool = pool; o.store = store; o.http = http;
 *     o.procs = procs; o.env = sw_config_env(cfg, "dev");
 *     o.data_dir = cfg->data_dir; o.history_limit = cfg->history_limit;
 *     o.checkout = sw_source_checkout;      // git/git.h
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
 * in jansson nodes, and 10,000 of them would be most of slipwayd's memory. The drift watcher (deploy/drift.c)
 * compares live objects with it and heals with sw_sync_apply_one().
 *
 * Errors name the object and carry the API server's Status.message
 * ("apps/v1 Deployment shop/web: ... (422 Unprocessable Entity)"). A server
 * that goes away mid-sync fails the sync once the client's bounded retries
 * are spent; the failure is recorded and the next sync starts afresh.
 */

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
 * (git/git.h) has this shape; it is passed in rather than called
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

/* ======================================================================
 * Drift (deploy/drift.c)
 * ======================================================================
 *
 * Drift detection and self-heal for one environment.
 *
 * Life cycle:
 *
 *     struct sw_drift *dw;
 *     struct sw_drift_opts o = SW_DRIFT_OPTS_INIT;
 *     o.notify = on_drift;                  // Slack, the page
 *     sw_drift_new(&dw, base, NULL, store, syncer, env_cfg, &o);
 *     ...                                   // runs by itself from here
 *     sw_drift_free(dw);
 *
 * With a syncer (deploy/deploy.h) the desired state is the syncer's:
 * sw_sync_desired(), re-read whenever sw_sync_desired_version() moves
 * (checked on every watch event and once a second), and heals go through
 * sw_sync_apply_one(). While sw_syncer_busy() nothing is compared or
 * healed (the cluster is changing on purpose, and the desired set may be
 * newer than what is applied yet); when the sync is over everything is
 * compared again. Without a syncer (tests, tools) the caller gives the set
 * with sw_drift_set_desired() and heals are plain sw_kube_apply() calls.
 *
 * Watches. One watch per kind the desired set holds ((apiVersion, kind)),
 * cluster-wide (all namespaces), with the label selector
 * `slipway.dev/environment=ENV`. Cluster-wide per kind rather than one per
 * (kind, namespace): far fewer streams (a few dozen kinds against hundreds of
 * namespaces at 10,000 objects), and a namespace that appears later needs no
 * new watch; it needs list/watch on the kind across namespaces, which the
 * sync engine's apply and prune need anyway. sw_kube_watch keeps the
 * resourceVersion, follows BOOKMARKs and relists on 410; a relist (an
 * SW_KUBE_SYNC event) is compared in full, missing objects included.
 *
 * Comparison. Only the fields the desired object sets count: every path in
 * the desired object (except apiVersion, kind, status and metadata other
 * than labels and annotations) must be equal in the live object. Lists of
 * maps with a merge key (containers, initContainers, env, volumes,
 * volumeMounts, ports, imagePullSecrets, ...) are matched element by element
 * by their key; other lists are compared by position and length. Fields the
 * server or other managers add (status, uid, resourceVersion, managedFields,
 * defaulted fields, foreign labels) are not in the desired object and so
 * never count. When that local comparison finds a difference, a server-side
 * apply dry run of the desired object (fieldManager slipway, force) tells
 * what the live object would be after a re-apply; the drift is the set of
 * desired paths where that dry-run result and the live object differ. So a
 * value the server normalises ("500m" vs "0.5") never counts as drift, and
 * the dry run costs one request only when something looks different.
 *
 * No hot loop on our own writes: the resourceVersion of our own apply's
 * result, and of every live state found equal, is remembered per object; an
 * event carrying it is skipped without comparing.
 *
 * Drift. Recorded in storage (sw_store_drift_insert: the object, the fields
 * as JSON `[{"path":"spec.replicas","desired":3,"live":5}]` - for kind
 * Secret paths only - the manager that changed them, action healed /
 * reported / heal_failed), then healed by a server-side apply of the desired
 * object (self_heal) or only reported. A missing object is recreated
 * (fields `[{"path":"","live":"deleted"}]`). The manager is the most recent
 * non-slipway manager with operation Update in live metadata.managedFields
 * whose fieldsV1 covers a changed path, else the most recent non-slipway one.
 * While any object is reported and not healed (self_heal off, or a heal that
 * failed) the environment's sync_status is out_of_sync; it goes back to what
 * it was (synced, rolled_back) when every object compares equal again.
 *
 * Fighting another controller. Per object: the first heal is immediate; when
 * the drift comes back, the next heal waits backoff_min_ms, then twice that,
 * ... up to backoff_max_ms; after quiet_ms without drift past the wait, the
 * object starts over. One drift event per heal at most, and from the second
 * heal of a burst its message says "fighting with MANAGER".
 *
 * Rollback: the drift watcher heals to whatever the desired set is; while
 * an environment is rolled back, the caller passes the rolled-back
 * revision's set, and that is what self-heal holds.
 *
 * Everything runs on the loop of `base`; no function blocks, except for the
 * short SQLite writes on the loop's store handle.
 */

struct event_base;
struct sw_cfg_env;
struct sw_syncer;
struct sw_drift;


/* What the notify callback receives; valid during the call only. */
struct sw_drift_note {
	const char *environment;
	struct sw_store_objref ref;
	enum sw_drift_action action;   /* healed, reported, heal_failed */
	const char *fields;            /* the JSON stored with the event */
	const char *manager;           /* may be NULL (unknown, e.g. deleted) */
	const char *message;           /* human summary, never a Secret value */
	int64_t event_id;              /* the drift row */
	int fighting;                  /* the drift came back within the backoff */
};
typedef void (*sw_drift_notify_fn)(const struct sw_drift_note *n, void *arg);

struct sw_drift_opts {
	sw_drift_notify_fn notify;     /* may be NULL */
	void *notify_arg;
	const char *field_manager;     /* ours; NULL = "slipway" */
	long backoff_min_ms;           /* wait before the 2nd heal of a burst; 0 = 1000 */
	long backoff_max_ms;           /* cap; 0 = 300000 (5 min) */
	long quiet_ms;                 /* drift-free time that ends a burst; 0 = 60000 */
	/* Periodic full comparison; 0 = env->resync_interval_s (and 0 there:
	 * 300 s); < 0 = none. */
	long resync_interval_ms;
};
#define SW_DRIFT_OPTS_INIT { 0 }

/*
 * Create a drift watcher for `env` (borrowed: name, self_heal,
 * resync_interval_s are read now; the struct is not kept). `kube`, `store`
 * and `syncer` are borrowed and must outlive it; `kube` NULL means the
 * syncer's client (sw_syncer_kube); `syncer` may be NULL (see above); `store`
 * may be NULL (nothing recorded, for benchmarks). With a syncer whose
 * desired state exists, watching starts at once.
 */
int sw_drift_new(struct sw_drift **out, struct event_base *base, struct sw_kube *kube,
		 struct sw_store *store, struct sw_syncer *syncer,
		 const struct sw_cfg_env *env, const struct sw_drift_opts *opts);

/* Stop every watch, timer and request; free. NULL is a no-op. Not from a callback. */
void sw_drift_free(struct sw_drift *dw);

/*
 * The desired state to hold, in the shape sw_sync_desired() gives: a JSON
 * object mapping tracking id to object (borrowed; the objects are
 * referenced, not copied). Namespaced objects should carry their namespace
 * (the sync engine fills the default); one without is matched in the
 * kubeconfig's namespace. Starts watches for new kinds, stops those of
 * kinds no longer present, keeps the backoff state of objects still
 * present, and compares everything again. NULL or {} stops watching. With
 * a syncer this is done for you; calling it anyway replaces the set until
 * the syncer's version moves again.
 */
int sw_drift_set_desired(struct sw_drift *dw, const json_t *desired);

/*
 * Turn self-heal on or off (the environment's config was reloaded). Off:
 * drift is reported and left alone.
 */
void sw_drift_set_self_heal(struct sw_drift *dw, int on);

/*
 * Hold (on = 1) while a sync of this environment runs: events are ignored
 * and nothing is healed, since the cluster is changing on purpose. Release
 * (on = 0) compares everything again.
 */
void sw_drift_hold(struct sw_drift *dw, int on);

/* Compare every desired object against the cluster now (list each kind). */
int sw_drift_resync(struct sw_drift *dw);

/* Counters, for tests and metrics. */
struct sw_drift_stats {
	uint64_t events;          /* watch events about managed objects */
	uint64_t skipped_own;     /* events skipped: a resourceVersion known equal */
	uint64_t compares;        /* local comparisons */
	uint64_t dry_runs;        /* SSA dry runs to confirm a difference */
	uint64_t detected;        /* drifts confirmed */
	uint64_t healed, heal_failed, reported;
	uint64_t deferred;        /* heals put off by the backoff */
	uint64_t resyncs;         /* full comparisons (relists and periodic) */
	uint64_t drifted;         /* objects now reported and not healed */
};
void sw_drift_stats(const struct sw_drift *dw, struct sw_drift_stats *out);

/* ---- the comparison, exposed for tests (pure: no I/O) ---- */

/*
 * Compare `live` (may be NULL: missing) with `desired` on the paths
 * `desired` sets, taking the expected values from `expected` (a dry-run
 * result; NULL = `desired` itself). Returns the number of differing paths
 * (at most 100 are listed) and, when `out` is not NULL, a new array
 * `[{"path": "...", "desired": V, "live": V|null, "segs": [...]}]` where
 * segs is the path as fieldsV1 would name it ("spec", {"name":"web"}, 0 ...).
 */
int sw_drift_diff(const json_t *desired, const json_t *expected, const json_t *live,
		  json_t **out);

/*
 * The manager to blame for the differences `diffs` (as sw_drift_diff gives)
 * in `live`, never `self`: see the header comment. NULL when none is known.
 * Returns a pointer into `live`.
 */
const char *sw_drift_manager(const json_t *live, const json_t *diffs, const char *self);

/* ======================================================================
 * Deployer (deploy/deployer.c)
 * ======================================================================
 *
 * The clusters of a server: a syncer and a drift watcher per environment
 * with a kubeconfig, and the deploy operations below on top of them.
 */

/*
 * The deploy operations the pipeline engine calls (pipeline/pipeline.h's
 * sw_engine_deps.deploy): the deployer's (sw_deployer_ops), or a test's. A
 * run that deploys has a `deploy` stage: after the `push` stages, before
 * the `deploy`-event (acceptance) stages. When the deploy or an acceptance
 * stage fails and the environment has rollback_on_failure, a `rollback`
 * stage re-deploys the last healthy revision.
 */
typedef void (*sw_deploy_log_fn)(void *ctx, const char *line);
typedef void (*sw_deploy_done_fn)(void *ctx, int ok, const char *message);

struct sw_deploy_ops {
	/*
	 * Deploy `commit` of `repo` to `env` (its mirror already holds the
	 * commit). `trigger` says why (merge, poll, manual,
	 * rollback) and goes on the sync's history row. Progress lines go to log(ctx, line) while it
	 * runs; done(ctx, ok, message) follows exactly once, later, on the
	 * loop. Returns 0, or <0 with the error slot set (then no callback).
	 */
	int (*deploy)(void *arg, const char *env, const char *repo, const char *commit,
		      enum sw_sync_trigger trigger, int64_t run_id, sw_deploy_log_fn log,
		      sw_deploy_done_fn done, void *ctx);
	/*
	 * The commit to roll `env` back to after `failed_commit` failed: the
	 * last healthy deploy of another commit. NULL when there is none. The
	 * caller frees it.
	 */
	char *(*rollback_target)(void *arg, const char *env, const char *failed_commit);
	/* Extra "K=V" environment for acceptance stages of `env` (NULL-terminated,
	 * caller frees each and the array); may be NULL. */
	char **(*stage_env)(void *arg, const char *env);
	/*
	 * environments[].acceptance.cluster_access: a kubeconfig of `env`'s
	 * cluster alone (one cluster, user and context: its server, CA and
	 * credential: a static token, the token file's content now, or a
	 * client certificate and key, all embedded), as text in *out, and the
	 * credential's values to mask in logs in *secrets (NULL-terminated,
	 * the caller frees each and the array). SW_EINVALID with the reason
	 * when `env` has no cluster or its credential cannot leave the daemon
	 * (an exec plugin runs a command of the daemon's host). May be NULL.
	 */
	int (*stage_kubeconfig)(void *arg, const char *env, struct sw_buf *out, char ***secrets);
	void *arg;
};

struct sw_deployer;
struct sw_outbox;
struct sw_config;

struct sw_deployer_opts {
	struct event_base *base;
	struct sw_pool *pool;
	struct sw_store *store;        /* the loop's handle */
	struct sw_http *http;          /* the API client of the clusters */
	struct sw_proc_mgr *procs;     /* exec credential plugins */
	struct sw_outbox *outbox;      /* drift events to Slack; may be NULL */
	const struct sw_config *cfg;   /* borrowed; replace with sw_deployer_reconfigure */
	/* Metrics (may be NULL): a sync ended ("success" or "failure", not
	 * called for a superseded one); a drift event was recorded
	 * (sw_store_drift_action_str). */
	void (*on_sync_finished)(const char *env, const char *trigger, const char *result,
				 int64_t duration_ms);
	void (*on_drift)(const char *env, const char *action);
};

/* A syncer and a drift watcher per environment of opts->cfg with a cluster. */
int sw_deployer_new(struct sw_deployer **out, const struct sw_deployer_opts *opts);
/* Abandons syncs in flight without calling their callbacks. */
void sw_deployer_free(struct sw_deployer *dp);
/* What the pipeline engine calls to deploy; valid as long as `dp`. */
const struct sw_deploy_ops *sw_deployer_ops(struct sw_deployer *dp);
/* After a config reload: sync settings and self-heal per environment (new
 * or removed environments take a restart). */
void sw_deployer_reconfigure(struct sw_deployer *dp, const struct sw_config *cfg);
/* The environment's syncer, or NULL when it has no cluster. */
struct sw_syncer *sw_deployer_syncer(struct sw_deployer *dp, const char *env);
/* 1 while any environment syncs. */
int sw_deployer_busy(const struct sw_deployer *dp);

#endif
