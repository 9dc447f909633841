/*
 * engine-int.h - private to pipeline/: the plan a run executes (built from
 * .slipway.yml on a worker thread) and the reporter the engine calls.
 */
#ifndef SW_PIPELINE_ENGINE_INT_H
#define SW_PIPELINE_ENGINE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

struct sw_engine;
struct sw_store;
struct sw_outbox;

enum sw_plan_kind {
	SW_PLAN_CONTAINER,   /* commands through the runner */
	SW_PLAN_DEPLOY,      /* deploy the run's commit to its environment */
	SW_PLAN_ROLLBACK,    /* re-deploy the environment's last healthy revision */
	SW_PLAN_TF_PLAN,     /* pull request: terraform plan of tf_modules of tf_env */
	SW_PLAN_TF_APPLY,    /* deploy: terraform apply of tf_modules of tf_env, in order */
};

/* One stage to run, owned strings. */
struct sw_plan_stage {
	enum sw_plan_kind kind;
	char *name;
	char *image;
	char **commands;       /* NULL-terminated */
	char **env;            /* "K=V" */
	size_t nenv;
	char **secrets;        /* names from the server config */
	size_t nsecrets;
	long timeout_ms;       /* 0 = the server's default */
	unsigned event;        /* the SW_SPEC_* event it was selected for; 0 = built in */
	size_t *deps;          /* indices of earlier stages in the plan */
	size_t ndeps;
	/* SW_PLAN_TF_*: the environment and its root modules (NULL-terminated) */
	char *tf_env;
	char **tf_modules;
	/* filled while the run executes, for reports */
	int exit_code;
	int64_t started_ms, finished_ms;
};

struct sw_plan {
	struct sw_plan_stage *stages;   /* in a valid execution order */
	size_t nstages;
	int no_spec;                    /* the commit has no .slipway.yml */
};

struct sw_plan_ctx {
	const char *event;        /* pull_request, push, deploy */
	const char *branch;       /* PR: the base branch; push: the branch */
	const char *environment;  /* deploy: the environment, else NULL */
	int require_image;        /* the docker runner needs an image per stage */
	/*
	 * Deploy to `environment`: `pre_event` stages (NULL = none), then a
	 * deploy stage, then the stages for event "deploy" (unless
	 * no_acceptance). Without a deploy, `event` selects the stages.
	 */
	int deploy;
	const char *pre_event;
	int no_acceptance;
	/*
	 * Deploy with infra: an `infra` stage (SW_PLAN_TF_APPLY of these
	 * modules, NULL-terminated) after the `pre_event` stages and before
	 * the deploy stage. no_deploy_stage: the environment has no cluster,
	 * so only the infra stage deploys (acceptance stages follow it).
	 */
	const char *const *infra_modules;
	int no_deploy_stage;
};

/*
 * Parse `.slipway.yml` (data[0..len)) and select the stages that run for
 * `ctx`. `secret_names` (NULL-terminated) are the secrets the server has: a
 * stage asking for another is an error located in the file. Blocking-free
 * but may be slow: call on a worker thread. Errors: SW_EINVALID with
 * "file:line:col: ..." lines.
 */
int sw_plan_build(struct sw_plan *out, const char *file, const char *data, size_t len,
		  const struct sw_plan_ctx *ctx, const char *const *secret_names);
void sw_plan_release(struct sw_plan *p);
/* Add a stage of `kind` named `name` depending on every stage before it. */
struct sw_plan_stage *sw_plan_add_builtin(struct sw_plan *p, enum sw_plan_kind kind,
					  const char *name);
void sw_plan_stage_release(struct sw_plan_stage *s);
/* Add a Terraform stage (SW_PLAN_TF_*) for `env` and `modules` (n of them);
 * it depends on every stage before it when `after_all`, else on none. */
struct sw_plan_stage *sw_plan_add_tf(struct sw_plan *p, enum sw_plan_kind kind, const char *name,
				     const char *env, const char *const *modules, size_t n,
				     int after_all);

/* What moment of a run is being reported. */
enum sw_notice { SW_NOTICE_QUEUED, SW_NOTICE_START, SW_NOTICE_PROGRESS, SW_NOTICE_END,
		SW_NOTICE_ROLLBACK };

/*
 * pipeline/notify.c: report a run (PR comment, run-level status, Slack) or
 * stage `idx` of it (its commit status) from what storage holds now,
 * through the outbox, with the engine's config, store and outbox (`d`; the
 * engine's own, whose cfg a reload swaps). The engine calls these inside
 * the transaction of the transition they report (sw_writeq), so both are
 * written or neither. Returns SW_EAGAIN when the database is locked (the
 * caller retries the whole transition), else 0: other failures are logged.
 *
 * The poller (poll.c) gets the same `d`: what it needs is passed in, and
 * it calls back into the engine only through the callback it is given.
 */
struct sw_engine_deps;
int sw_notify_run(const struct sw_engine_deps *d, int64_t run_id, enum sw_notice n);
int sw_notify_stage(const struct sw_engine_deps *d, int64_t run_id, int idx);

/* The kv key of the Terraform PR report of `env` in run `run_id`. */
#define SW_TF_REPORT_KEY_FMT "tf:report:%lld:%s"

/* --- pipeline/writeq.c: writes kept while the database is locked -------- */
struct sw_writeq;
struct event_base;
struct sw_storage_state;

/*
 * One write: `apply` makes it through the store inside a transaction the
 * queue opens (or the caller's, when one is open) and returns 0, or
 * SW_EAGAIN when a store call found the database locked: the transaction
 * is then rolled back and the write retried later. Any other failure is
 * apply's to log; it returns 0 for it (the write is not retried). `done`
 * (may be NULL) runs once the write is committed; `release` (may be NULL)
 * frees `arg` afterwards, or when the queue is freed with it unwritten.
 */
struct sw_write {
	int (*apply)(struct sw_store *st, void *arg);
	void (*done)(void *arg);
	void (*release)(void *arg);
	void *arg;
};

int sw_writeq_new(struct sw_writeq **out, struct event_base *base, struct sw_store *st);
/*
 * Write `w` now when nothing waits; otherwise, or when the database is
 * locked, keep it behind what waits (in order) for a timer that retries
 * with backoff (50 ms doubling to 2 s). Takes `w->arg`.
 */
void sw_writeq_put(struct sw_writeq *q, const struct sw_write *w);
/* What waits, for the page and /readyz (pointers valid until the next turn). */
void sw_writeq_state(const struct sw_writeq *q, struct sw_storage_state *out);
size_t sw_writeq_pending(const struct sw_writeq *q);
/* Try what waits once more, now. */
void sw_writeq_flush(struct sw_writeq *q);
/* A last try, then what is still unwritten is logged as lost and freed. */
void sw_writeq_free(struct sw_writeq *q);

/* --- pipeline/poll.c: fallback polling of the branches environments track -- */
struct sw_poll;
struct sw_source_commit;
/*
 * What the poller calls (on the loop) when it saw `commit` (full sha) at
 * the head of `branch` of `repo`; the engine's does this:
 * Unless the environment tracking that branch already has a push or manual
 * run at that commit (a webhook, an earlier poll, a sync now: the newest
 * such run, in any status) or is synced to it, start the run a push
 * delivery would start, through the same mapping (sw_webhook_map) and with
 * no delivery; its deploy records the sync trigger "poll". A newer commit
 * supersedes as a push does. `info` (may be NULL) gives the run's title,
 * message and author. *run_id is the new run, 0 when none was needed.
 */
typedef int (*sw_poll_head_fn)(void *arg, int64_t *run_id, const char *repo, const char *branch,
			       const char *commit, const struct sw_source_commit *info);
int sw_poll_new(struct sw_poll **out, const struct sw_engine_deps *d, sw_poll_head_fn on_head,
		void *arg);
/* Re-arm the timers after a config change (intervals, repositories). */
void sw_poll_reconfigure(struct sw_poll *p);
/* Stop the timers; a poll in flight finishes without starting runs. */
void sw_poll_stop(struct sw_poll *p);
/* 1 while a poll's fetch is in flight. */
int sw_poll_busy(const struct sw_poll *p);
/* NULL is a no-op. Call after the pool has handed back every job. */
void sw_poll_free(struct sw_poll *p);

#endif
