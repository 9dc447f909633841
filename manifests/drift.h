/*
 * drift.h - drift detection and self-heal for one environment (a section of
 * the manifests subsystem's public header; manifests.h includes it).
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
 * With a syncer (manifests/sync.h) the desired state is the syncer's:
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
#ifndef SW_DRIFT_H
#define SW_DRIFT_H

#include <jansson.h>
#include <stdint.h>

#include "lib/error.h"
#include "manifests/kube.h"
#include "storage/store.h"

struct event_base;
struct sw_cfg_env;
struct sw_syncer;
struct sw_drift;

/* The label every managed object carries: slipway.dev/environment=ENV. */
#ifndef SW_TRACKING_LABEL
#define SW_TRACKING_LABEL "slipway.dev/environment"
#endif

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

#endif
