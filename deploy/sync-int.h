/*
 * sync-int.h - private to deploy/: what the two halves of the sync engine
 * share. sync.c owns the syncer (its queue, a run's start and end, the
 * checkout and render on a worker, the record); apply.c owns the steps
 * that talk to the cluster (list the live state, apply stage by stage,
 * wait for CRDs, prune, wait for health).
 *
 * A run goes sync.c (render) -> sync_list_kinds() -> apply.c's steps ->
 * sync_finish(); its one timer fires sync_timer_cb().
 */
#ifndef SW_DEPLOY_SYNC_INT_H
#define SW_DEPLOY_SYNC_INT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/util.h>
#include <jansson.h>

#include "lib/buf.h"
#include "lib/error.h"
#include "deploy/deploy.h"

/* The environment settings one sync uses (a snapshot: reloads do not reach a running sync). */
struct envcfg {
	char *name, *ns, *kubeconfig, *context;
	char **manifests;
	size_t nmanifests;
	int prune, allow_empty;
	int64_t health_timeout_s, history_limit;
	json_t *ignore;      /* ignore_differences: [{group, kind, name?, namespace?, pointers}] */
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
	int forced;                    /* Force=true: deleted for an immutable field, applied again */
	json_t *ignore;                /* JSON pointers left to others (ignore_differences), or NULL */
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
	struct sw_buf notes;           /* remarks of a sync that went through (sync_note) */
	size_t stage_start, stage_end;
	size_t prune_start, prune_end;
	struct event *timer;
	int64_t deadline;
	int polls;                     /* reads so far in this wait (poll_later) */
	int waiting_crds;             /* waiting for CRDs to be Established */
	int listed_crd_kinds;          /* round 1 of the lists was started */
	int prepared;                  /* got past step 3: inventory is rewritten */
	enum sw_health health;

	/* hooks (hooks.c): taken out of the set, run around the apply */
	struct sw_obj *hooks;
	size_t nhooks;
	unsigned hooks_ran;            /* SW_HOOK_* phases done */
	unsigned hook_phase;           /* the phase running, 0 when none */
	void (*hook_then)(struct run *r);
	size_t hook_i;                 /* the hook at hand */
	enum { HOOK_START, HOOK_DELETE, HOOK_GONE, HOOK_CREATE, HOOK_WAIT } hook_step;
	json_t *hook_json;             /* what is created */
	char *hook_ns, *hook_name;     /* where, and the name the server gave it */
	int hook_polls;
	int64_t hook_deadline;
	struct sw_kube_op *hook_op;
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


/*
 * Step 2 (apply.c): list the live objects of every kind the run renders or
 * its inventory names (crd_round 1: the kinds that CRDs of this sync
 * define, once those are Established), then go on to the next step.
 */
void sync_list_kinds(struct run *r, int crd_round);

/* The run's one timer (apply.c): the next read of CRDs or of health. */
void sync_timer_cb(evutil_socket_t fd, short what, void *arg);

/* Mark the run failed and add a message (the first three are kept). */
void sync_fail(struct run *r, const char *fmt, ...) SW_PRINTF(2, 3);

/* Run the hooks of `phase` (hooks.c), then then(r); a PreSync, Sync or
 * PostSync hook that fails has failed the run (sync_fail) by then. */
void sync_hooks(struct run *r, unsigned phase, void (*then)(struct run *r));
/* Whether `phase` has hooks still to run (none in a dry run). */
int sync_has_hooks(const struct run *r, unsigned phase);
/* The run's timer while a hook is waited on. */
void sync_hook_tick(struct run *r);

/* A remark for the sync's message (options noted, objects kept), once each;
 * logged as sync.note. */
void sync_note(struct run *r, const char *fmt, ...) SW_PRINTF(2, 3);

/* Step 7 (sync.c): record the result, report, free the run, start the
 * next queued one. */
void sync_finish(struct run *r);

#endif
