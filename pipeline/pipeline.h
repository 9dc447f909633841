/*
 * pipeline.h - the pipeline engine: from a recorded webhook delivery to runs
 * whose stages execute in containers, with every state change persisted
 * and reported to GitHub and Slack through the outbox.
 *
 * Life of a run
 *   1. sw_engine_delivery(): a delivery committed as QUEUED is mapped
 *      (webhooks/) to nothing (IGNORED, with the reason) or to a run
 *      (MAPPED). A newer run with the same key (the same PR, or the same
 *      environment's branch) cancels the older one that is still active.
 *      A repository with poll_interval is also polled (pipeline/poll.c): a
 *      tracked branch's head that no webhook brought becomes the same push
 *      run, without a delivery; its deploy's sync trigger is "poll".
 *   2. The run waits QUEUED until fewer than max_concurrent_runs run.
 *   3. Prepare, on a worker thread: fetch the mirror (libgit2), read and
 *      check .slipway.yml at the commit, select the stages for the event,
 *      check out the commit into the run's workspace.
 *   4. Stages run through the runner (Docker/Podman or local), each when
 *      the stages it depends on succeeded; output is masked and stored in
 *      chunks as it arrives (flushed at least every 250 ms).
 *   5. The run ends success / failure / error / cancelled; the workspace is
 *      removed on a worker thread.
 * Every transition is written to storage together with its reports (commit
 * statuses per stage, one PR comment per run edited in place, Slack: rows
 * in the outbox), in one transaction. When the database is locked by
 * another process, these writes wait in memory in order and are retried
 * until written (pipeline/writeq.c); a delivery whose outcome could not be
 * written is mapped again, and runs left RUNNING are recovered once the
 * lock goes (sw_engine_storage_state says what waits).
 *
 * Crash recovery (sw_engine_recover, at start-up): deliveries still QUEUED
 * are mapped again; QUEUED runs are queued again; runs that were RUNNING
 * are marked INTERRUPTED (their running stage too, with the reason) and
 * retried as a new attempt, up to SW_ENGINE_MAX_ATTEMPTS. A marker written
 * before a run's preparation starts (kv "run:ID:preparing") tells a run
 * interrupted while preparing: it is retried once, and when that attempt is
 * interrupted while preparing too it ends ERROR ("slipwayd stopped twice
 * while preparing this run"), since what killed the daemon may be the
 * run's own input. Preparation removes what is in the run's workspace
 * first, so a retry never meets a half-written checkout.
 *
 * Everything here runs on the loop thread except the prepare and cleanup
 * jobs, which touch no engine state.
 */
#ifndef SW_PIPELINE_H
#define SW_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "config/config.h"
#include "deploy/deploy.h"
#include "lib/error.h"

struct event_base;
struct sw_pool;
struct sw_store;
struct sw_runner;
struct sw_outbox;
struct sw_engine;
struct sw_tf;

#define SW_ENGINE_MAX_ATTEMPTS 3

struct sw_engine_deps {
	struct event_base *base;
	struct sw_pool *pool;
	struct sw_store *store;        /* the loop's handle */
	struct sw_runner *runner;
	struct sw_outbox *outbox;      /* may be NULL: nothing is reported */
	const struct sw_config *cfg;   /* borrowed; replace with sw_engine_set_config */
	const struct sw_deploy_ops *deploy;  /* may be NULL: runs do not deploy */
	/* Metrics (may be NULL): a delivery mapped/ignored/failed; a run or a
	 * stage reached a final status (storage names). */
	void (*on_delivery)(const char *event, const char *outcome);
	void (*on_run_finished)(const char *kind, const char *status, int64_t duration_ms);
	void (*on_stage_finished)(const char *status, int64_t duration_ms);
	/*
	 * Terraform (infra/infra.h); may be NULL: no infra stages and
	 * no drift checks. OWNED by the engine once sw_engine_new returns (it
	 * is freed by sw_engine_free, before the runner it uses). With it:
	 *  - a pull request run gets a `terraform-ENV` stage per environment
	 *    of its repository whose root modules the PR touches (plan; commit
	 *    status slipway/terraform/ENV; a section of the PR comment);
	 *  - a deploy run of an environment with root modules gets an `infra`
	 *    stage (apply, in order) that the deploy stage depends on;
	 *  - every infra.drift_interval each such environment's last applied
	 *    commit is checked for drift (infra/checks.c).
	 */
	struct sw_tf *tf;
};

/* All borrowed pointers in `deps` must outlive the engine. */
int sw_engine_new(struct sw_engine **out, const struct sw_engine_deps *deps);
void sw_engine_set_config(struct sw_engine *e, const struct sw_config *cfg);

/*
 * A delivery was committed in state QUEUED. Maps it now and records the
 * outcome; `event` and `payload` are borrowed for the call only.
 */
void sw_engine_delivery(struct sw_engine *e, int64_t delivery_id, const char *event,
			const char *payload, size_t len);

/*
 * The same for a delivery answered in a batch: the payload (taken; `payload`
 * is left empty) is parsed on a worker thread, and the outcomes are written
 * together at the end of the loop turn.
 */
void sw_engine_delivery_async(struct sw_engine *e, int64_t delivery_id, const char *event,
			      struct sw_buf *payload);

/* Start-up: pick up what a crash or stop left (see above). */
int sw_engine_recover(struct sw_engine *e);

/*
 * Cancel a queued or running run: queued runs end at once, running stages
 * are killed and the run ends CANCELLED with `reason`. SW_ENOTFOUND when the
 * run is not active.
 */
int sw_engine_cancel(struct sw_engine *e, int64_t run_id, const char *reason);

/* Queue a new attempt of a finished run; *new_id gets its id. */
int sw_engine_retry(struct sw_engine *e, int64_t run_id, int64_t *new_id);

/*
 * Create and queue a run without a delivery: kind is a storage run kind
 * name. "manual" deploys `commit` to `environment` and runs its acceptance
 * stages; "rollback" only deploys `commit`.
 */
int sw_engine_submit(struct sw_engine *e, int64_t *run_id, const char *kind,
		     const char *repo, const char *branch, const char *commit,
		     const char *environment, const char *title);
/* The same, naming who asked (`by`, may be NULL): the run's author, which
 * its Slack messages show. */
int sw_engine_submit_by(struct sw_engine *e, int64_t *run_id, const char *kind,
			const char *repo, const char *branch, const char *commit,
			const char *environment, const char *title, const char *by);

/*
 * Shutdown: start no new runs, kill running stages and record them as
 * INTERRUPTED by the stop (the run stays RUNNING in storage so the next
 * start retries it). sw_engine_busy() says when everything has settled.
 */
void sw_engine_stop(struct sw_engine *e);

/*
 * Whether the engine's writes reach storage. When the database stays locked
 * (another process holds its write lock), transitions, logs and their
 * reports wait in memory, in order, and are retried until they are
 * written; the page and /readyz show it from this.
 */
struct sw_storage_state {
	size_t pending_writes;     /* 0: storage is available */
	int64_t since_ms;          /* when the oldest could not be written */
	const char *error;         /* why, e.g. "database is locked"; NULL when none */
};
void sw_engine_storage_state(const struct sw_engine *e, struct sw_storage_state *out);
int sw_engine_busy(const struct sw_engine *e);

/* Runs active in memory (queued + preparing + running), for metrics. */
size_t sw_engine_active(const struct sw_engine *e);

void sw_engine_free(struct sw_engine *e);

/* ======================================================================
 * The pipeline file (pipeline/spec.c)
 * ======================================================================
 *
 * `.slipway.yml`, a repository's pipeline definition: its stages,
 * when each runs and what each waits for. The format is described in
 * docs/pipeline.md; contrib/examples/slipway.yml is a complete example.
 *
 * Life cycle: sw_spec_parse() -> sw_spec_select() per run context ->
 * sw_spec_plan_free(), sw_spec_free(). A parsed spec is immutable, so one
 * may be shared by threads.
 */

/* Events a stage can be limited to (bits of sw_spec_stage.events). */
enum sw_spec_event {
	SW_SPEC_PULL_REQUEST = 1 << 0,
	SW_SPEC_PUSH = 1 << 1,
	SW_SPEC_DEPLOY = 1 << 2,
};
#define SW_SPEC_ALL_EVENTS (SW_SPEC_PULL_REQUEST | SW_SPEC_PUSH | SW_SPEC_DEPLOY)

/* "pull_request", "push", "deploy" -> the bit; 0 when unknown. */
unsigned sw_spec_event_parse(const char *name);

struct sw_spec_env {
	char *name;
	char *value;
};

struct sw_spec_stage {
	char *name;              /* [a-z0-9_-]+, unique in the spec */
	char *image;             /* container image; NULL when not given */
	char **commands;         /* ncommands >= 1, run in order by `sh -e` */
	size_t ncommands;
	struct sw_spec_env *env; /* plain values, in file order */
	size_t nenv;
	char **secrets;          /* names of server-config secrets, exposed as env vars */
	size_t nsecrets;
	unsigned events;         /* SW_SPEC_* bits; SW_SPEC_ALL_EVENTS when `when.event` is absent */
	char **branches;         /* fnmatch globs; nbranches == 0 = any branch */
	size_t nbranches;
	char **environments;     /* nenvironments == 0 = any (or none) */
	size_t nenvironments;
	int64_t timeout_s;       /* 0 = the runner's default */
	size_t *deps;            /* stages this one waits for: indexes into sw_spec.stages
				    (explicit `depends_on`, or the stage before it) */
	size_t ndeps;
	int explicit_deps;       /* `depends_on` was written (possibly empty) */
	int line;                /* where the stage starts, for messages */
};

struct sw_spec {
	char *file;              /* name used in messages */
	struct sw_spec_stage *stages;
	size_t nstages;          /* >= 1 */
};

/* What sw_spec_parse() checks beyond the file itself. All optional. */
struct sw_spec_check {
	const char *const *secrets;  /* names of configured secrets; NULL = do not check */
	size_t nsecrets;
	int require_image;           /* every stage needs `image` (the docker runner) */
};

/*
 * Parse `data` (`len` bytes; `file` names it in messages). On success *out
 * is a new spec to free with sw_spec_free(). On failure returns SW_EINVALID
 * and the slot holds every error found, one per line, each as
 *   .slipway.yml:12:7: stages[1].when.event: unknown event 'pr' (...)
 * `chk` may be NULL.
 */
int sw_spec_parse(struct sw_spec **out, const char *file, const char *data, size_t len,
		  const struct sw_spec_check *chk);
void sw_spec_free(struct sw_spec *spec);

/* The stage named `name`, or NULL. */
const struct sw_spec_stage *sw_spec_stage(const struct sw_spec *spec, const char *name);

/* A run's context: which stages apply. */
struct sw_spec_ctx {
	unsigned event;          /* exactly one SW_SPEC_* bit */
	const char *branch;      /* the branch pushed or deployed; a PR's base branch; may be NULL */
	const char *environment; /* deploy: the environment being deployed; may be NULL */
};

struct sw_spec_plan_stage {
	const struct sw_spec_stage *stage;  /* borrowed from the spec */
	size_t *deps;            /* indexes into sw_spec_plan.stages, all < this one's */
	size_t ndeps;
};

struct sw_spec_plan {
	struct sw_spec_plan_stage *stages;  /* in a valid execution order */
	size_t n;                /* may be 0: nothing to run */
};

/*
 * Choose the stages that run in `ctx`: a stage runs when every condition
 * in its `when` holds (event, branch glob, environment). The plan lists
 * them in topological order, ties broken by file order. Dependencies are
 * restricted to the selected stages: a dependency on a stage that does not
 * run is replaced by that stage's own dependencies (transitively), so
 * `lint -> build -> test` without `build` still runs `test` after `lint`.
 * *out borrows from `spec`, which must outlive it; free it with
 * sw_spec_plan_free(). Fails only on a bad ctx (SW_EINVALID).
 */
int sw_spec_select(struct sw_spec_plan **out, const struct sw_spec *spec,
		   const struct sw_spec_ctx *ctx);
void sw_spec_plan_free(struct sw_spec_plan *plan);

#endif
