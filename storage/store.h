/*
 * store.h - slipway's state in one SQLite database: DATA_DIR/slipway.db.
 *
 * Everything a person sees (page, API, CLI, Slack) is read from here, and
 * nothing is reported that was not first written here. This is the only
 * header that knows the database exists; no SQL lives outside storage/.
 *
 * Threads. A `struct sw_store` handle is used from ONE thread at a time (the
 * event loop owns one). A worker thread that needs the database opens its own
 * handle with sw_store_open() on the same data directory: the database runs in
 * WAL mode, so readers never block the writer nor the writer the readers, and
 * writers from several handles queue on busy_timeout.
 *
 * Errors. Every function returns 0 on success or a negative SW_E* code with a
 * message in the thread's error slot (lib/error.h):
 *   SW_ENOTFOUND  the row asked for does not exist
 *   SW_EEXISTS    a unique key is taken (duplicate delivery GUID)
 *   SW_EINVALID   bad input, a constraint failed, or the file is unusable
 *   SW_EAGAIN     the database stayed locked past busy_timeout
 *   SW_ERR        anything else (I/O error, disk full, ...)
 *
 * Ownership. Rows come back as structs the caller owns: the store fills
 * `*out` (overwriting it; release what it held first), and every string and
 * blob in it is heap memory freed by the type's _release() function, after
 * which the struct is empty again (all zeroes, sw_buf members SW_BUF_INIT).
 * Lists are `{ v, n }` arrays released with the list's _release(). On error
 * `*out` is left empty, so calling _release() on it is always safe. Inputs are borrowed: the store copies what
 * it needs before returning and keeps no pointer.
 *
 * NULL. Optional text comes back as NULL when absent; optional ids and times
 * come back as 0 ("none", "not yet"). Text inputs may be NULL for "none".
 *
 * Time. All times are int64 milliseconds since the Unix epoch (sw_now_ms()
 * in lib/clock.h). Where a function stamps a row itself it reads sw_now_ms().
 */
#ifndef SW_STORE_H
#define SW_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/error.h"

struct sw_store;

/* ------------------------------------------------------------------ */
/* Opening, closing, transactions                                      */
/* ------------------------------------------------------------------ */

/* The schema version this build writes (number of migrations). */
#define SW_STORE_SCHEMA_VERSION 6

struct sw_store_opts {
	/*
	 * 0 (default): PRAGMA synchronous=NORMAL. In WAL mode a committed
	 * transaction survives a crash of the process (it is in the WAL file,
	 * written before COMMIT returns), but the last transactions before a
	 * power loss or kernel panic may roll back, since the WAL is only
	 * fsync'd at checkpoints. The database is never corrupted either way.
	 * 1: synchronous=FULL, the WAL is fsync'd at every commit: survives
	 * power loss, at the cost of one fsync per transaction (group many
	 * writes in one sw_store_begin/commit to pay it once).
	 */
	int sync_full;
	/* How long a statement waits for another handle's write lock. */
	int busy_timeout_ms;
};
#define SW_STORE_OPTS_INIT { .sync_full = 0, .busy_timeout_ms = 5000 }

/*
 * Open (creating if needed) DATA_DIR/slipway.db with default options.
 * DATA_DIR is created with mode 0700 when missing (parents too). Applies the
 * schema migrations this build knows, each in its own transaction.
 *
 * Fails with SW_EINVALID when the file is not a slipway database or has a
 * newer schema than this build, and with SW_ERR when the directory cannot be
 * created or written; the message names the path. When this call created
 * the database file and then failed, the file is removed again.
 * On success `*out` is a handle to free with sw_store_close(); on failure
 * `*out` is NULL.
 */
int sw_store_open(struct sw_store **out, const char *data_dir);
int sw_store_open_opts(struct sw_store **out, const char *data_dir,
		       const struct sw_store_opts *opts);

/*
 * Finalize cached statements and close. An open transaction is rolled back.
 * NULL is a no-op.
 */
void sw_store_close(struct sw_store *st);

/* The database file's path; owned by the handle. */
const char *sw_store_path(const struct sw_store *st);

/*
 * Explicit transactions (BEGIN IMMEDIATE: the write lock is taken at once,
 * so a transaction never fails half-way on a lock upgrade). Group many small
 * writes, e.g. all deliveries received in one loop turn, into one commit.
 * They do not nest: begin inside a transaction is SW_EINVALID. Store
 * functions that need atomicity themselves (inventory replace, sync trim,
 * outbox enqueue) work inside or outside one.
 */
int sw_store_begin(struct sw_store *st);
int sw_store_commit(struct sw_store *st);
/* Always leaves the handle outside a transaction; no-op when none is open. */
int sw_store_rollback(struct sw_store *st);
int sw_store_in_transaction(const struct sw_store *st);

/* ------------------------------------------------------------------ */
/* Enumerations (stored as their lower-case names)                     */
/* ------------------------------------------------------------------ */

enum sw_delivery_state {
	SW_DELIVERY_QUEUED, SW_DELIVERY_MAPPED, SW_DELIVERY_IGNORED, SW_DELIVERY_FAILED,
};
enum sw_run_kind {
	SW_RUN_PULL_REQUEST, SW_RUN_PUSH, SW_RUN_DEPLOY, SW_RUN_MANUAL,
	SW_RUN_ROLLBACK, SW_RUN_DRIFT,
};
/* Runs and stages. SKIPPED is for stages only. */
enum sw_status {
	SW_STATUS_QUEUED, SW_STATUS_RUNNING, SW_STATUS_SUCCESS, SW_STATUS_FAILURE,
	SW_STATUS_ERROR, SW_STATUS_CANCELLED, SW_STATUS_INTERRUPTED, SW_STATUS_SKIPPED,
};
/* An environment's sync state. */
enum sw_env_sync {
	SW_ENV_UNKNOWN, SW_ENV_SYNCED, SW_ENV_SYNCING, SW_ENV_OUT_OF_SYNC,
	SW_ENV_ROLLED_BACK, SW_ENV_FAILED,
};
enum sw_health {
	SW_HEALTH_UNKNOWN, SW_HEALTH_HEALTHY, SW_HEALTH_PROGRESSING,
	SW_HEALTH_DEGRADED, SW_HEALTH_MISSING,
	SW_HEALTH__COUNT
};
enum sw_sync_trigger {
	SW_TRIGGER_MERGE, SW_TRIGGER_DRIFT, SW_TRIGGER_MANUAL, SW_TRIGGER_ROLLBACK,
	SW_TRIGGER_POLL,
};
/* One sync (deploy) in the history. */
enum sw_sync_status { SW_SYNC_RUNNING, SW_SYNC_SUCCESS, SW_SYNC_FAILURE };
enum sw_object_result {
	SW_OBJ_CREATED, SW_OBJ_CONFIGURED, SW_OBJ_UNCHANGED, SW_OBJ_PRUNED, SW_OBJ_FAILED,
};
enum sw_drift_action { SW_DRIFT_HEALED, SW_DRIFT_REPORTED, SW_DRIFT_HEAL_FAILED };
enum sw_outbox_target { SW_OUTBOX_GITHUB, SW_OUTBOX_SLACK };
enum sw_outbox_state { SW_OUTBOX_PENDING, SW_OUTBOX_SENT, SW_OUTBOX_DEAD };

/*
 * Names as stored and shown ("pull_request", "out_of_sync", ...): _str()
 * returns a static string, "?" for a value out of range; _parse() returns 0
 * or SW_EINVALID for an unknown name.
 */
const char *sw_store_delivery_state_str(enum sw_delivery_state v);
const char *sw_store_run_kind_str(enum sw_run_kind v);
const char *sw_store_status_str(enum sw_status v);
const char *sw_store_env_sync_str(enum sw_env_sync v);
const char *sw_store_health_str(enum sw_health v);
const char *sw_store_sync_trigger_str(enum sw_sync_trigger v);
const char *sw_store_sync_status_str(enum sw_sync_status v);
const char *sw_store_object_result_str(enum sw_object_result v);
const char *sw_store_drift_action_str(enum sw_drift_action v);
const char *sw_store_outbox_target_str(enum sw_outbox_target v);
const char *sw_store_outbox_state_str(enum sw_outbox_state v);
int sw_store_delivery_state_parse(const char *s, enum sw_delivery_state *out);
int sw_store_run_kind_parse(const char *s, enum sw_run_kind *out);
int sw_store_status_parse(const char *s, enum sw_status *out);
int sw_store_env_sync_parse(const char *s, enum sw_env_sync *out);
int sw_store_health_parse(const char *s, enum sw_health *out);
int sw_store_sync_trigger_parse(const char *s, enum sw_sync_trigger *out);

/* QUEUED and RUNNING are active; every other status is final. */
int sw_store_status_is_final(enum sw_status v);

/* ------------------------------------------------------------------ */
/* Deliveries: every webhook received, recorded before the 202          */
/* ------------------------------------------------------------------ */

#define SW_DIGEST_LEN 32   /* a delivery digest: SHA-256 */

struct sw_store_delivery_in {
	const char *guid;       /* X-GitHub-Delivery; required */
	const char *event;      /* X-GitHub-Event; required */
	const char *action;     /* payload "action", or NULL */
	const char *repo;       /* "owner/name", or NULL */
	int64_t received_at;    /* 0 = now */
	const char *headers;    /* JSON object of the headers that matter */
	const void *body;
	size_t body_len;
	/* SHA-256 of the event and body (sw_webhook_digest), or NULL. A delivery
	 * with the same digest received at or after replay_since (ms; 0 = do not
	 * look) is a replay under a new GUID: nothing is recorded. */
	const unsigned char *digest;
	int64_t replay_since;
};

struct sw_store_delivery {
	int64_t id;
	char *guid, *event, *action, *repo;
	int64_t received_at;
	char *headers;
	struct sw_buf body;     /* empty in list results (not loaded) */
	enum sw_delivery_state state;
	char *reason;           /* why ignored / failed */
	int64_t run_id;         /* the run it mapped to, 0 = none */
};
struct sw_store_delivery_list { struct sw_store_delivery *v; size_t n; };

/*
 * Record a delivery in state QUEUED; `*id` gets its id. A GUID already
 * recorded (GitHub redelivers), or a replay of a recorded delivery's digest
 * (see sw_store_delivery_in), returns SW_EEXISTS with `*id` set to the
 * existing row's id, which is left unchanged.
 */
int sw_store_delivery_insert(struct sw_store *st, int64_t *id,
			     const struct sw_store_delivery_in *in);
int sw_store_delivery_get(struct sw_store *st, int64_t id, struct sw_store_delivery *out);
/* Set state, reason (NULL clears) and run_id (0 = none). */
int sw_store_delivery_set_outcome(struct sw_store *st, int64_t id,
				  enum sw_delivery_state state, const char *reason,
				  int64_t run_id);
/*
 * The same, also filling in the payload's action and repository when given
 * (the receiver stores a delivery before parsing it; NULL keeps the value).
 */
int sw_store_delivery_resolve(struct sw_store *st, int64_t id, const char *action,
			      const char *repo, enum sw_delivery_state state, const char *reason,
			      int64_t run_id);
/* Deliveries still QUEUED, oldest first, bodies loaded (restart recovery). */
int sw_store_deliveries_queued(struct sw_store *st, struct sw_store_delivery_list *out);
/* Newest first, without bodies; limit <= 0 means 50. */
int sw_store_deliveries_recent(struct sw_store *st, int limit, int offset,
			       struct sw_store_delivery_list *out);
void sw_store_delivery_release(struct sw_store_delivery *d);
void sw_store_delivery_list_release(struct sw_store_delivery_list *l);

/* ------------------------------------------------------------------ */
/* Runs                                                                */
/* ------------------------------------------------------------------ */

struct sw_store_run_in {
	int64_t delivery_id;    /* 0 = none (manual, drift, ...) */
	enum sw_run_kind kind;
	const char *repo;       /* "owner/name"; required */
	const char *ref;        /* "refs/heads/main", "refs/pull/7/head" */
	const char *branch;     /* head branch for a PR, pushed branch otherwise */
	const char *commit_sha; /* required */
	int64_t pr_number;      /* 0 = not a pull request */
	const char *pr_title, *author, *message, *environment;
	int attempt;            /* 0 is taken as 1 */
	int64_t created_at;     /* 0 = now */
	int from_fork;          /* a PR from another repository: no secrets */
};

struct sw_store_run {
	int64_t id, delivery_id;
	enum sw_run_kind kind;
	char *repo, *ref, *branch, *commit_sha;
	int64_t pr_number;
	char *pr_title, *author, *message, *environment;
	enum sw_status status;
	char *reason;
	int64_t created_at, started_at, finished_at;
	int64_t superseded_by;  /* 0 = none */
	int attempt;
	int from_fork;
};
struct sw_store_run_list { struct sw_store_run *v; size_t n; };

/* Create a run in QUEUED; `*id` gets its id. */
int sw_store_run_create(struct sw_store *st, int64_t *id, const struct sw_store_run_in *in);
int sw_store_run_get(struct sw_store *st, int64_t id, struct sw_store_run *out);

/*
 * Move a run to `status` with `reason` (NULL keeps the current one).
 * RUNNING stamps started_at (once); a final status stamps finished_at.
 * A run already in a final status cannot change: SW_EINVALID (so a late
 * "success" cannot overwrite a "cancelled", or the reverse).
 */
int sw_store_run_set_status(struct sw_store *st, int64_t id, enum sw_status status,
			    const char *reason);
/*
 * The same, stamping started_at/finished_at with `at` instead of now (0 is
 * now): a transition written late, after the database was locked, keeps
 * the time it happened.
 */
int sw_store_run_set_status_at(struct sw_store *st, int64_t id, enum sw_status status,
			       const char *reason, int64_t at);

/* Filters for sw_store_run_list(); every field optional. */
struct sw_store_run_filter {
	int status;             /* enum sw_status, or -1 for any */
	int kind;               /* enum sw_run_kind, or -1 for any */
	const char *environment;
	const char *repo;
	int64_t before_id;      /* page: runs with id < before_id; 0 = from newest */
	int limit;              /* <= 0 means 50; capped at 1000 */
};
#define SW_STORE_RUN_FILTER_INIT { .status = -1, .kind = -1, .limit = 50 }

/*
 * Newest first. For the next page pass the last id of this one as before_id.
 * Every filter is served by an index, so a page costs the same at run 10 and
 * at run 100,000.
 */
int sw_store_run_list(struct sw_store *st, const struct sw_store_run_filter *f,
		      struct sw_store_run_list *out);
/* All runs in `status`, oldest first (restart recovery: QUEUED, RUNNING). */
int sw_store_runs_by_status(struct sw_store *st, enum sw_status status,
			    struct sw_store_run_list *out);
/* Active (QUEUED or RUNNING) runs of repo + PR number, oldest first. */
int sw_store_runs_active_for_pr(struct sw_store *st, const char *repo, int64_t pr_number,
				struct sw_store_run_list *out);
/*
 * Active runs of repo + branch, oldest first, of any kind (PR runs included:
 * their branch is the head branch); the caller picks what to supersede.
 */
int sw_store_runs_active_for_branch(struct sw_store *st, const char *repo,
				    const char *branch, struct sw_store_run_list *out);
/*
 * The newest run of `repo` that deploys `environment`'s branch head: kind
 * push (a webhook or the poller) or manual ("sync now"), in any status.
 * The poller compares the branch head with its commit, so a commit gets
 * one such run. SW_ENOTFOUND when there is none.
 */
int sw_store_run_latest_head(struct sw_store *st, const char *repo, const char *environment,
			     struct sw_store_run *out);
/*
 * Record that run `id` is superseded by run `by`. Only the link is written:
 * the caller stops the old run and then sets it CANCELLED.
 */
int sw_store_run_mark_superseded(struct sw_store *st, int64_t id, int64_t by);
void sw_store_run_release(struct sw_store_run *r);
void sw_store_run_list_release(struct sw_store_run_list *l);

/* ------------------------------------------------------------------ */
/* Stages and their logs                                               */
/* ------------------------------------------------------------------ */

struct sw_store_stage {
	int64_t id, run_id;
	int idx;                /* order within the run, from 0 */
	char *name, *image;
	enum sw_status status;
	int exit_code;          /* -1 = none yet */
	char *reason;
	int64_t started_at, finished_at;
	char *container_id;
};
struct sw_store_stage_list { struct sw_store_stage *v; size_t n; };

/* Create a QUEUED stage; (run_id, idx) is unique. */
int sw_store_stage_create(struct sw_store *st, int64_t *id, int64_t run_id, int idx,
			  const char *name, const char *image);
/*
 * Set status, exit code (-1 keeps the current one) and reason (NULL keeps),
 * stamping started_at/finished_at as sw_store_run_set_status() does. Stages
 * do not refuse a change out of a final status: a stage is owned by its run.
 */
int sw_store_stage_set_status(struct sw_store *st, int64_t id, enum sw_status status,
			      int exit_code, const char *reason);
/* The same with the time of the change (0 = now), as sw_store_run_set_status_at(). */
int sw_store_stage_set_status_at(struct sw_store *st, int64_t id, enum sw_status status,
				 int exit_code, const char *reason, int64_t at);
/* The id of stage `idx` of run `run_id`; SW_ENOTFOUND when it was not created. */
int sw_store_stage_find(struct sw_store *st, int64_t run_id, int idx, int64_t *id);
int sw_store_stage_set_container(struct sw_store *st, int64_t id, const char *container_id);
int sw_store_stage_get(struct sw_store *st, int64_t id, struct sw_store_stage *out);
/* A run's stages in idx order. */
int sw_store_stages_list(struct sw_store *st, int64_t run_id, struct sw_store_stage_list *out);
void sw_store_stage_release(struct sw_store_stage *s);
void sw_store_stage_list_release(struct sw_store_stage_list *l);

/*
 * Append `len` bytes (already masked) to a stage's log as one chunk, stamped
 * `ts` (0 = now). One INSERT; the store computes the chunk's sequence number
 * and byte offset. `*end` (may be NULL) gets the log's new total size.
 * Empty appends are ignored.
 */
int sw_store_log_append(struct sw_store *st, int64_t stage_id, int64_t ts,
			const void *data, size_t len, int64_t *end);
/*
 * Append to `out` up to `max` bytes of the stage's log starting at byte
 * `offset` (chunk boundaries are invisible); `*next` gets the offset to read
 * from next time (offset + bytes appended). Reading at or past the end
 * appends nothing. max == 0 means no limit.
 */
int sw_store_log_read(struct sw_store *st, int64_t stage_id, int64_t offset, size_t max,
		      struct sw_buf *out, int64_t *next);
/* Total bytes in the stage's log (0 for none). */
int sw_store_log_size(struct sw_store *st, int64_t stage_id, int64_t *size);

/* ------------------------------------------------------------------ */
/* Environments                                                        */
/* ------------------------------------------------------------------ */

struct sw_store_env {
	char *name, *branch;
	char *desired_commit, *synced_commit;
	enum sw_env_sync sync_status;
	enum sw_health health;
	char *rolled_back_to;   /* commit rolled back to, NULL when not rolled back */
	int64_t last_sync_at;   /* when the last sync finished */
	int64_t last_sync_ms;   /* how long it took */
	char *message, *infra_status;
	int64_t updated_at;
};
struct sw_store_env_list { struct sw_store_env *v; size_t n; };

/* Create the environment from config, or update its branch; state is kept. */
int sw_store_env_upsert(struct sw_store *st, const char *name, const char *branch);
int sw_store_env_get(struct sw_store *st, const char *name, struct sw_store_env *out);
/* All environments by name. */
int sw_store_env_list(struct sw_store *st, struct sw_store_env_list *out);

/*
 * Sync-state fields to change. Strings: NULL keeps the stored value, ""
 * clears it. Enums: -1 keeps. Numbers: -1 keeps.
 */
struct sw_store_env_update {
	const char *desired_commit, *synced_commit;
	int sync_status;        /* enum sw_env_sync or -1 */
	int health;             /* enum sw_health or -1 */
	const char *rolled_back_to;
	int64_t last_sync_at, last_sync_ms;
	const char *message, *infra_status;
};
#define SW_STORE_ENV_UPDATE_INIT { .sync_status = -1, .health = -1, \
		.last_sync_at = -1, .last_sync_ms = -1 }
/* Apply `u` and stamp updated_at. SW_ENOTFOUND for an unknown environment. */
int sw_store_env_set(struct sw_store *st, const char *name, const struct sw_store_env_update *u);
void sw_store_env_release(struct sw_store_env *e);
void sw_store_env_list_release(struct sw_store_env_list *l);

/* ------------------------------------------------------------------ */
/* Kubernetes objects: how syncs, inventory and drift name them         */
/* ------------------------------------------------------------------ */

/* Borrowed. namespace NULL or "" for cluster-scoped objects (stored as ""). */
struct sw_store_objref {
	const char *api_version, *kind, *namespace, *name;
};

/* ------------------------------------------------------------------ */
/* Syncs: the deploy history                                           */
/* ------------------------------------------------------------------ */

struct sw_store_sync_object {
	int64_t sync_id;
	char *api_version, *kind, *namespace, *name;
	enum sw_object_result result;
	char *message;
};

struct sw_store_sync {
	int64_t id;
	char *environment, *commit_sha;
	enum sw_sync_trigger trigger;
	enum sw_sync_status status;
	enum sw_health health;
	int64_t started_at, finished_at;
	char *message;
	int64_t run_id;         /* 0 = none */
	/* The Terraform outputs of the run's infra stage, as a JSON object
	 * {"ROOT_MODULE": {"NAME": value}} with every sensitive value stored
	 * as "(sensitive)"; NULL when the deploy applied no Terraform. */
	char *infra_outputs;
	/* Filled by sw_store_sync_get() only; in apply order. */
	struct sw_store_sync_object *objects;
	size_t nobjects;
};
struct sw_store_sync_list { struct sw_store_sync *v; size_t n; };

/* Start a RUNNING sync of `environment` (which must exist) at `commit_sha`. */
int sw_store_sync_start(struct sw_store *st, int64_t *id, const char *environment,
			const char *commit_sha, enum sw_sync_trigger trigger, int64_t run_id);
/* Record what applying (or pruning) one object did. */
int sw_store_sync_add_object(struct sw_store *st, int64_t sync_id,
			     const struct sw_store_objref *obj,
			     enum sw_object_result result, const char *message);
/* Finish: status, health after the wait, message; stamps finished_at. */
int sw_store_sync_finish(struct sw_store *st, int64_t id, enum sw_sync_status status,
			 enum sw_health health, const char *message);
/*
 * Record the Terraform outputs (JSON text, see infra_outputs above: the
 * caller has redacted sensitive values) on the first sync that run `run_id`
 * made of `environment`. SW_ENOTFOUND when the run made none.
 */
int sw_store_sync_set_infra_outputs(struct sw_store *st, const char *environment,
				    int64_t run_id, const char *outputs_json);
/* One sync with its objects. */
int sw_store_sync_get(struct sw_store *st, int64_t id, struct sw_store_sync *out);
/* Newest first, without objects; limit <= 0 means 50. */
int sw_store_sync_history(struct sw_store *st, const char *environment, int limit,
			  struct sw_store_sync_list *out);
/*
 * The newest sync of the environment that ended SUCCESS and HEALTHY (what
 * a rollback goes back to), without objects. SW_ENOTFOUND when none.
 * `before_id` > 0 only looks at syncs older than it.
 */
int sw_store_sync_last_healthy(struct sw_store *st, const char *environment,
			       int64_t before_id, struct sw_store_sync *out);
/*
 * Keep the newest `keep` syncs of `environment` (NULL: of every environment)
 * and delete older ones with their objects. The newest healthy sync of each
 * environment is always kept, since rollback needs it. `*deleted` (may be
 * NULL) gets the number of syncs removed. Drift events keep their sync_id,
 * which then points at nothing.
 */
int sw_store_sync_trim(struct sw_store *st, const char *environment, int keep,
		       int64_t *deleted);
void sw_store_sync_release(struct sw_store_sync *s);
void sw_store_sync_list_release(struct sw_store_sync_list *l);

/* ------------------------------------------------------------------ */
/* Inventory: the objects each environment manages                      */
/* ------------------------------------------------------------------ */

struct sw_store_inv_in {
	struct sw_store_objref ref;
	const char *uid;
	enum sw_health health;
	const char *message;
};

struct sw_store_inv {
	char *environment, *api_version, *kind, *namespace, *name, *uid;
	enum sw_health health;
	char *message;
};
struct sw_store_inv_list { struct sw_store_inv *v; size_t n; };

/* Replace the environment's whole inventory with `items`, atomically. */
int sw_store_inventory_replace(struct sw_store *st, const char *environment,
			       const struct sw_store_inv_in *items, size_t n);
int sw_store_inventory_upsert(struct sw_store *st, const char *environment,
			      const struct sw_store_inv_in *item);
/* SW_ENOTFOUND when the object is not in the inventory. */
int sw_store_inventory_delete(struct sw_store *st, const char *environment,
			      const struct sw_store_objref *obj);
/* Ordered by api_version, kind, namespace, name. */
int sw_store_inventory_list(struct sw_store *st, const char *environment,
			    struct sw_store_inv_list *out);
/* counts[h] = number of objects with health h. */
int sw_store_inventory_health_counts(struct sw_store *st, const char *environment,
				     int64_t counts[SW_HEALTH__COUNT]);
void sw_store_inv_release(struct sw_store_inv *i);
void sw_store_inv_list_release(struct sw_store_inv_list *l);

/* ------------------------------------------------------------------ */
/* Drift events                                                        */
/* ------------------------------------------------------------------ */

struct sw_store_drift_in {
	const char *environment;
	struct sw_store_objref ref;
	const char *fields;     /* JSON: the drifted fields */
	const char *manager;    /* field manager that changed them, if known */
	int64_t detected_at;    /* 0 = now */
	enum sw_drift_action action;
	const char *message;
	int64_t sync_id;        /* the healing sync, 0 = none */
};

struct sw_store_drift {
	int64_t id;
	char *environment, *api_version, *kind, *namespace, *name;
	char *fields, *manager;
	int64_t detected_at;
	enum sw_drift_action action;
	char *message;
	int64_t sync_id;
};
struct sw_store_drift_list { struct sw_store_drift *v; size_t n; };

int sw_store_drift_insert(struct sw_store *st, int64_t *id, const struct sw_store_drift_in *in);
/* Newest first; limit <= 0 means 50. */
int sw_store_drift_list(struct sw_store *st, const char *environment, int limit,
			struct sw_store_drift_list *out);
/* SW_ENOTFOUND when the environment has none. */
int sw_store_drift_latest(struct sw_store *st, const char *environment,
			  struct sw_store_drift *out);
void sw_store_drift_release(struct sw_store_drift *d);
void sw_store_drift_list_release(struct sw_store_drift_list *l);

/* ------------------------------------------------------------------ */
/* Outbox: every message to GitHub or Slack, written before it is sent  */
/* ------------------------------------------------------------------ */

struct sw_store_outbox {
	int64_t id;
	enum sw_outbox_target target;
	char *kind;             /* e.g. "pr_comment", "commit_status", "chat" */
	char *idempotency_key;
	char *payload;          /* JSON */
	int64_t created_at;
	int64_t enqueued_at;    /* when it last became pending */
	int attempts;           /* failed attempts since it last became pending */
	int64_t next_attempt_at;
	char *last_error;
	enum sw_outbox_state state;
	char *result;           /* JSON from the last successful send, kept across updates */
	int64_t rev;            /* bumped each time the payload is replaced */
};
struct sw_store_outbox_list { struct sw_store_outbox *v; size_t n; };

/*
 * Queue `payload` under `key` (required, unique); `*id` (may be NULL) gets
 * the row's id. The key names the message, not one version of it:
 *  - no row with the key: a new pending row, due now;
 *  - a pending row: its payload, target and kind are replaced and rev bumped
 *    (updates to one PR comment coalesce; attempts and backoff are kept);
 *  - a sent or dead row with the same payload: nothing changes (a replay
 *    after a crash sends nothing twice);
 *  - a sent or dead row with another payload: pending again, due now,
 *    attempts reset; `result` is kept, so the sender edits the comment it
 *    created (its id is in `result`) instead of posting a new one.
 */
int sw_store_outbox_enqueue(struct sw_store *st, int64_t *id, enum sw_outbox_target target,
			    const char *kind, const char *key, const char *payload);
/* Pending rows due at `now` (next_attempt_at <= now), oldest first. */
int sw_store_outbox_due(struct sw_store *st, int64_t now, int limit,
			struct sw_store_outbox_list *out);
/*
 * The same for one target only, so a sender can drain each target on its
 * own (a GitHub backlog must not hide the Slack rows behind it).
 */
int sw_store_outbox_due_target(struct sw_store *st, enum sw_outbox_target target,
			       int64_t now, int limit, struct sw_store_outbox_list *out);
/*
 * The send of revision `rev` of row `id` succeeded; `result` (JSON, may be
 * NULL to keep the stored one) is stored. If the payload was replaced while
 * the send was in flight (rev differs) the row stays pending and due now, so
 * the newer payload goes out too; `*still_pending` (may be NULL) says so.
 */
int sw_store_outbox_mark_sent(struct sw_store *st, int64_t id, int64_t rev,
			      const char *result, int *still_pending);
/* A failed attempt: attempts + 1, last_error, retry at next_attempt_at. */
int sw_store_outbox_mark_failed(struct sw_store *st, int64_t id, const char *error,
				int64_t next_attempt_at);
/* Give up: state dead with `error`. */
int sw_store_outbox_mark_dead(struct sw_store *st, int64_t id, const char *error);
int sw_store_outbox_get(struct sw_store *st, int64_t id, struct sw_store_outbox *out);
int sw_store_outbox_get_by_key(struct sw_store *st, const char *key,
			       struct sw_store_outbox *out);
/* Metrics: pending rows, and the age at `now` of the oldest (0 when none). */
int sw_store_outbox_stats(struct sw_store *st, int64_t now, int64_t *depth,
			  int64_t *oldest_age_ms);
void sw_store_outbox_release(struct sw_store_outbox *o);
void sw_store_outbox_list_release(struct sw_store_outbox_list *l);

/* ------------------------------------------------------------------ */
/* Retention, vacuum and backup (storage/retention.c)                  */
/* ------------------------------------------------------------------ */

/*
 * What to remove. Ages are in ms (0 = no age limit), counts are how many of
 * the newest rows to keep (0 = no count limit); a row goes when it is past
 * either limit. Never removed, whatever the limits say:
 *  - a queued or running run, and a queued delivery;
 *  - a run that a kept sync (the deploy history, see sw_store_sync_trim())
 *    links to, so each environment's last healthy deploy keeps its run;
 *  - the newest run of each (environment, kind), what the page shows;
 *  - the newest drift event of each environment (the open drift);
 *  - a pending outbox row (only sent and dead rows are removed).
 * A run's stages and logs go with it; `logs_age_ms` removes the logs of
 * older runs that are themselves kept (they finished before that age).
 */
struct sw_store_retention {
	int64_t deliveries_age_ms, deliveries_keep;
	int64_t logs_age_ms;
	int64_t runs_age_ms, runs_keep;
	int64_t drift_age_ms, drift_keep;
	int64_t outbox_age_ms;
	int64_t audit_age_ms, audit_keep;
	int batch;              /* rows per transaction; <= 0 means 500 */
};

/* What one or more steps removed (added to, never reset by the store). */
struct sw_store_retention_result {
	int64_t deliveries, runs, stages, log_chunks, drift_events, outbox;
	int64_t audit;
	int64_t pages_freed;    /* by sw_store_vacuum_step() */
	/* Where the log pass got to: 0 at the start of a pass (zero the whole
	 * struct), then moved by each step. */
	int64_t log_cursor;
};

/*
 * Remove one batch of each kind, each batch in its own short write
 * transaction (the write lock is never held for more than `batch` rows), as
 * of time `now`. The rows of a batch are picked by a read outside any
 * transaction, which blocks no writer. `*more` is 1 when a batch was full,
 * i.e. calling again will remove more. Counts are added to `*res`. Call
 * it outside a transaction (SW_EINVALID otherwise).
 */
int sw_store_retention_step(struct sw_store *st, const struct sw_store_retention *pol,
			    int64_t now, struct sw_store_retention_result *res, int *more);

/*
 * Give up to `pages` free pages back to the file system (PRAGMA
 * incremental_vacuum), adding their number to `*freed`; `*left` (may be
 * NULL) gets the free pages still in the file.
 */
int sw_store_vacuum_step(struct sw_store *st, int pages, int64_t *freed, int64_t *left);

/*
 * Write a consistent copy of the database of DATA_DIR to `dest` with
 * SQLite's online backup API, while a running slipwayd keeps writing (WAL
 * mode: the copy is one read snapshot and blocks no writer). Opens the file
 * read-only and applies no migration, so any slipway version can back up a
 * database. The copy is written to `dest`.tmp, checked (PRAGMA quick_check),
 * synced and renamed, so `dest` is either the whole backup or untouched.
 * `*bytes` (may be NULL) gets its size.
 */
int sw_store_backup(const char *data_dir, const char *dest, int64_t *bytes);

/*
 * Check that `path` is a whole slipway database (application_id, PRAGMA
 * quick_check), as a client does with a backup it downloaded. SW_EINVALID
 * with what is wrong; the file is opened read-only.
 */
int sw_store_backup_check(const char *path);

/* ------------------------------------------------------------------ */
/* API tokens and the audit log (storage/access.c)                     */
/* ------------------------------------------------------------------ */

/*
 * An API token: only the SHA-256 of its secret is stored. `id` is the
 * random lookup id the token carries, so checking one is one read by
 * primary key. `role` is viewer, deployer or admin; `environments` a
 * comma-separated list of environment names, NULL for all.
 */
struct sw_store_token {
	char *id;
	char *name;
	char *role;
	char *environments;
	struct sw_buf hash;
	char *created_by;
	int64_t created_at;
	int64_t expires_at;      /* 0 = never */
	int64_t last_used_at;    /* 0 = never used */
	int64_t revoked_at;      /* 0 = not revoked */
	char *revoked_by;
};
struct sw_store_token_list { struct sw_store_token *v; size_t n; };

/*
 * Store a new token (every field of `in` but last_used/revoked; `hash`
 * the digest). SW_EEXISTS when a token that is not revoked has the name
 * (or, once in 2^64, the id is taken).
 */
int sw_store_token_insert(struct sw_store *st, const struct sw_store_token *in);
/* SW_ENOTFOUND when there is no token `id`. */
int sw_store_token_get(struct sw_store *st, const char *id, struct sw_store_token *out);
/* Every token, newest first (revoked ones too, so the list says so). */
int sw_store_token_list(struct sw_store *st, struct sw_store_token_list *out);
/* Revoke `id` as `by` at `now`: SW_ENOTFOUND, or SW_EEXISTS when already revoked. */
int sw_store_token_revoke(struct sw_store *st, const char *id, const char *by, int64_t now);
/* Remember a use at `now` (written at most once a minute per token). */
int sw_store_token_touch(struct sw_store *st, const char *id, int64_t now);
void sw_store_token_release(struct sw_store_token *t);
void sw_store_token_list_release(struct sw_store_token_list *l);

/*
 * One row of the audit log: who (`actor`, its kind: anonymous, api_token,
 * token, user or system; `token_id` for a token), from where (`client`),
 * when (`at`), what (`action`, e.g. "sync", and its `target`, e.g. the
 * environment, "run 12" or a token id) and the outcome (started, ok,
 * refused or failed, with the `reason`).
 */
struct sw_store_audit {
	int64_t id;
	int64_t at;
	char *actor;
	char *actor_kind;
	char *token_id;
	char *client;
	char *action;
	char *target;
	char *outcome;
	char *reason;
};
struct sw_store_audit_list { struct sw_store_audit *v; size_t n; };

/* Append `in` (its id is ignored; `at` 0 = now); `*id` (may be NULL) gets the row's id. */
int sw_store_audit_insert(struct sw_store *st, int64_t *id, const struct sw_store_audit *in);
/* Set the outcome of row `id` (an action that was recorded as started). */
int sw_store_audit_finish(struct sw_store *st, int64_t id, const char *outcome,
			  const char *reason);

struct sw_store_audit_filter {
	const char *actor;       /* NULL = any */
	const char *action;      /* NULL = any */
	int64_t since;           /* at >= since; 0 = any time */
	int64_t before_id;       /* id < before_id; 0 = from the newest */
	int limit;
};
#define SW_STORE_AUDIT_FILTER_INIT { .limit = 50 }
/* Newest first. */
int sw_store_audit_list(struct sw_store *st, const struct sw_store_audit_filter *f,
			struct sw_store_audit_list *out);
void sw_store_audit_release(struct sw_store_audit *a);
void sw_store_audit_list_release(struct sw_store_audit_list *l);

/* ------------------------------------------------------------------ */
/* Cost: what each environment cost per day and service                 */
/* ------------------------------------------------------------------ */

struct sw_store_cost {
	char *env;
	char *day;               /* "YYYY-MM-DD" (UTC, as Cost Explorer's days) */
	char *service;
	int64_t micro_usd;       /* USD x 1,000,000 */
	int estimated;           /* the day was not closed when fetched */
	int64_t fetched_at;      /* ms */
};
struct sw_store_cost_list { struct sw_store_cost *v; size_t n; };

/* Replace what `env` cost on days [from, to) with `v` (its env and
 * fetched_at are ignored; rows of one day and service add up), atomically;
 * a row of a day outside them is SW_EINVALID. */
int sw_store_cost_replace(struct sw_store *st, const char *env, const char *from,
			  const char *to, const struct sw_store_cost *v, size_t n,
			  int64_t fetched_at);
/* `env`'s rows on days [from, to), by day then service. */
int sw_store_cost_list(struct sw_store *st, const char *env, const char *from, const char *to,
		       struct sw_store_cost_list *out);
void sw_store_cost_list_release(struct sw_store_cost_list *l);

/* ------------------------------------------------------------------ */
/* Key/value: small facts to remember across restarts                   */
/* ------------------------------------------------------------------ */

/* `*value` is a heap string the caller frees; SW_ENOTFOUND when unset. */
int sw_store_kv_get(struct sw_store *st, const char *key, char **value);
int sw_store_kv_set(struct sw_store *st, const char *key, const char *value);
/* Deleting a missing key is not an error. */
int sw_store_kv_delete(struct sw_store *st, const char *key);

#endif
