/*
 * run-int.h - private to the engine's files: what they share of a run in
 * memory. engine.c holds the state machine (writes, the run list,
 * container stages, advancing, scheduling, cancelling, life cycle); the
 * built-in stages have files of their own (stage-deploy.c, stage-tf.c), as
 * do preparing a run on a worker (prepare.c) and where runs come from
 * (intake.c: deliveries, polls, the API, recovery after a crash).
 */
#ifndef SW_PIPELINE_RUN_INT_H
#define SW_PIPELINE_RUN_INT_H

#include <jansson.h>
#include <stdint.h>

#include "lib/buf.h"
#include "pipeline/engine-int.h"
#include "pipeline/mask-int.h"
#include "pipeline/pipeline.h"
#include "storage/store.h"

struct event;
struct sw_runner_step;
struct sw_tf_op;

#define LOG_FLUSH_MS 250
#define LOG_FLUSH_BYTES (64 * 1024)
#define REMAP_MS 500

enum phase { PH_QUEUED, PH_PREPARING, PH_RUNNING };

struct stage {
	struct run *run;
	int idx;                   /* in the run; storage names the stage by it */
	struct sw_plan_stage plan;
	enum sw_status status;
	struct sw_runner_step *step;   /* a container stage's step in flight */
	int busy;                  /* a step, a deploy or a Terraform operation in flight */
	struct sw_mask mask;
	struct sw_buf logbuf;      /* masked output not yet stored */
	char *reason;
	/* SW_PLAN_TF_*: the operation in flight, which module is next, and
	 * what the modules done so far gave */
	struct sw_tf_op *tfop;
	size_t tf_idx;
	int tf_failed, tf_cancelled;
	char *tf_error;
	struct sw_buf tf_md;       /* PR report: markdown of every module */
	size_t tf_add, tf_change, tf_destroy;
	json_t *tf_outputs;        /* apply: {module: outputs} */
	char *kubeconfig;          /* cluster_access: the file written for it, removed after */
};

struct run {
	struct sw_engine *e;
	struct sw_store_run row;
	char *key;                 /* engine_supersede key */
	enum phase phase;
	struct stage *stages;
	size_t nstages;
	size_t running;            /* steps in flight */
	char *workspace;
	int cancelled;             /* a cancel was asked for */
	char *cancel_reason;
	char *rollback_to;         /* commit a rollback stage deploys */
	char *rollback_note;       /* why there is no rollback, or how it went */
	int cancelling;            /* cancel_run is cancelling stages: do not engine_advance */
	struct run *next;
};

struct sw_engine {
	struct sw_engine_deps d;
	struct run *runs;          /* active runs, oldest first */
	struct event *flush_timer;
	struct sw_infra *infra;    /* drift checks (NULL without d.tf) */
	struct sw_poll *poll;      /* fallback polling of tracked branches */
	struct event *commit_ev;   /* commits a batch of delivery outcomes */
	struct sw_writeq *wq;      /* transitions waiting for a locked database */
	int64_t *remap;            /* deliveries to map again (their outcome was refused) */
	size_t nremap;
	int64_t remap_since;       /* when the oldest of them was refused */
	struct event *remap_timer;
	int recover_later;         /* runs left RUNNING wait for the lock to go */
	int64_t recover_since;     /* since when */
	struct event *recover_timer;
	int stopping;
	/* prices for PR plans (NULL: aws.pricing off or no Terraform); a
	 * pricer replaced by a reload is kept until the end, as a worker may
	 * still be using it */
	struct sw_tf_pricer *pricer;
	char *pricer_sig;          /* the aws: settings it was made with */
	struct sw_tf_pricer **retired;
	size_t nretired;
};

/*
 * Preparation markers (kv). "run:ID:preparing" is written, durably, before a
 * run's preparation starts and deleted when it ends: a start-up that finds
 * it knows the previous daemon died while preparing that run (a parser
 * crash would do it at every start). "run:ID:prepare_interrupts" carries
 * to a retry how many attempts before it died so.
 */
#define PREPARING_KEY_FMT "run:%lld:preparing"
#define PREP_INTERRUPTS_KEY_FMT "run:%lld:prepare_interrupts"
/* after this many interrupted preparations the run fails instead */
#define MAX_PREP_INTERRUPTS 2

/* --- writes (engine.c) ---------------------------------------------------------
 *
 * Every write the engine makes about a run goes through one queue (see
 * pipeline/writeq.c) as a struct wop: a transition together with the
 * reports it causes, in one transaction, so a commit status is queued in
 * the outbox exactly when the state it reports is stored. When the
 * database is locked the wop waits in memory, in order, and is retried
 * until it is written; nothing in it refers to memory the run frees (a
 * stage is named by its run and index).
 */
enum wkind { W_RUN, W_STAGE_NEW, W_STAGE, W_LOG, W_SUPERSEDED, W_KV, W_ENV_INFRA,
	     W_INFRA_OUTPUTS, W_FORGET, W_REPORT };

struct wop {
	struct sw_engine *e;
	enum wkind kind;
	int64_t run_id;
	int idx;                 /* the stage (W_STAGE_NEW, W_STAGE, W_LOG, report_stage) */
	enum sw_status status;
	int exit_code;
	int64_t at;              /* when it happened: stamps and log chunks keep it */
	int64_t other;           /* W_SUPERSEDED: the newer run */
	char *a, *b;             /* reason | name, image | key, value | env, text */
	struct sw_buf data;      /* W_LOG */
	int notice;              /* then report the run (enum sw_notice); -1: no */
	int report_stage;        /* then report stage idx */
	int mark_preparing;      /* W_RUN: and write the preparation marker */
	char **promote;          /* W_RUN success: the environments that follow, to start */
	int64_t *promoted;       /* ... their runs, made in the same transaction */
	size_t npromoted;
	void (*then)(struct sw_engine *e, void *arg);   /* once committed */
	void (*then_free)(void *arg);                   /* then_arg when never run */
	void *then_arg;
};

/* A new write of `kind` about run `run_id` (stamped now) for the caller to
 * fill and put; wop_put writes it now, or as soon as storage takes it. */
struct wop *engine_wop_new(struct sw_engine *e, enum wkind kind, int64_t run_id);
/* Load a stored run, queue it, report it queued (intake.c). */
int engine_queue_run(struct sw_engine *e, int64_t id);
void engine_wop_put(struct wop *w);
/* Report the run (enum sw_notice), in order with the writes before it. */
void engine_report_run(struct sw_engine *e, int64_t run_id, enum sw_notice n);
void engine_put_kv(struct sw_engine *e, int64_t run_id, const char *key, const char *value);
/* The run's new status in memory now, and its write (reporting `notice`
 * afterwards, -1 for none) for the caller to complete and put; set_ puts it. */
struct wop *engine_run_op(struct run *r, enum sw_status st, const char *reason, int notice);
void engine_set_run_status(struct run *r, enum sw_status st, const char *reason, int notice);
/* The stage's new status, written with its commit status when `report`. */
void engine_set_stage_status(struct stage *s, enum sw_status st, int exit_code, const char *reason,
			     int report);
/* A stage ends: the rest of its log, then its status with its commit status. */
void engine_finish_stage(struct stage *s, enum sw_status st, int exit_code, const char *reason);
/* Text slipway itself adds to a stage's log (errors, time-outs), masked. */
void engine_log_note(struct stage *s, const char *fmt, const char *arg);
/* A step's output (a runner's on_output), masked into the stage's log. */
void engine_step_output(int stream, const char *p, size_t n, void *arg);
/* The secret values to mask in every log (NULL-terminated; free the array only). */
const char **engine_secret_values(const struct sw_config *c);
/* Scoped secrets (config.h): what stage `s` of `r` is to a secret's scope
 * (borrowing from the run and the config), and the first secret it asks
 * for and may not have, as the reason it fails with (NULL: none; free it). */
void engine_secret_ask(const struct run *r, const struct stage *s, struct sw_secret_ask *a);
char *engine_refused_secret(const struct run *r, const struct stage *s);

/* The run list (engine.c): find an active run, load one from storage into
 * memory (queued), take one out of the list, free it. */
struct run *engine_run_find(struct sw_engine *e, int64_t id);
struct run *engine_run_load(struct sw_engine *e, int64_t id);
void engine_run_unlink(struct run *r);
void engine_run_free(struct run *r);
/* Finishing (engine.c): the run's final status from its stages, its
 * workspace removed; drop_run takes it out without a final report. */
void engine_finish_run(struct run *r);
void engine_drop_run(struct run *r);
/* Start what can start of the run, finish it when nothing is left. */
void engine_advance(struct run *r);
/* Start preparing queued runs up to max_concurrent_runs. */
void engine_schedule(struct sw_engine *e);
/* Runs with the key of `newer` that are older are cancelled as superseded. */
void engine_supersede(struct sw_engine *e, struct run *newer);
/* The event a run's stages are selected by ("pull_request", "push", "deploy"). */
const char *engine_event_name(const struct sw_store_run *row);
/* A copy of `s` in lower case ("" for NULL). */
char *engine_lower(const char *s);

/* The preparation markers: the kv key PREPARING_KEY_FMT or
 * PREP_INTERRUPTS_KEY_FMT of a run; forget_store deletes both. */
char *engine_prep_key(const char *fmt, int64_t run_id);
int engine_prep_forget_store(struct sw_store *st, int64_t id);

/* The stages of their own files: prepare.c starts a run's preparation;
 * stage-deploy.c a deploy or rollback stage, and after a failed deploy or
 * acceptance stage maybe_rollback adds a rollback stage (returns 1 then);
 * stage-tf.c a Terraform stage. */
void engine_start_prepare(struct run *r);
void engine_start_deploy(struct run *r, struct stage *s);
int engine_maybe_rollback(struct run *r);
void engine_start_tf(struct run *r, struct stage *s);

/* intake.c: its events and the poller, made and freed with the engine;
 * _flush commits the outcomes of deliveries still waiting for the turn's end. */
void engine_intake_new(struct sw_engine *e);
void engine_intake_flush(struct sw_engine *e);
void engine_intake_free(struct sw_engine *e);

#endif
