/*
 * engine.c - runs and stages as state machines on the loop (see pipeline.h).
 *
 * In memory the engine keeps only what is active: one struct run per queued,
 * preparing or running run, each with its stages. Storage is written before
 * anything is reported, and is what recovery reads after a crash.
 */
#include <ctype.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/pool.h"
#include "lib/strv.h"
#include "infra/infra.h"
#include "pipeline/engine-int.h"
#include "pipeline/mask-int.h"
#include "pipeline/pipeline.h"
#include "git/git.h"
#include "runners/runner.h"
#include "storage/store.h"
#include "webhooks/webhooks.h"

#define LOG_FLUSH_MS 250
#define LOG_FLUSH_BYTES (64 * 1024)
#define REMAP_MS 500

enum phase { PH_QUEUED, PH_PREPARING, PH_RUNNING };

struct stage {
	struct run *run;
	int idx;                   /* in the run; storage names the stage by it */
	struct sw_plan_stage plan;
	enum sw_status status;
	struct sw_runner_step *step;
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
};

struct run {
	struct sw_engine *e;
	struct sw_store_run row;
	char *key;                 /* supersede key */
	enum phase phase;
	struct stage *stages;
	size_t nstages;
	size_t running;            /* steps in flight */
	char *workspace;
	int cancelled;             /* a cancel was asked for */
	char *cancel_reason;
	char *rollback_to;         /* commit a rollback stage deploys */
	char *rollback_note;       /* why there is no rollback, or how it went */
	int cancelling;            /* cancel_run is cancelling stages: do not advance */
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
};

static void schedule(struct sw_engine *e);
static void advance(struct run *r);
static void prep_forget(struct sw_engine *e, int64_t id);

/* --- small helpers -------------------------------------------------------- */

static char *lower(const char *s)
{
	char *c = sw_strdup(s ? s : "");
	for (char *p = c; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return c;
}

/* Runs with the same key supersede each other. */
static char *run_key(const struct sw_store_run *row)
{
	char *repo = lower(row->repo), *k;
	if (row->kind == SW_RUN_PULL_REQUEST)
		k = sw_asprintf("pr:%s#%lld", repo, (long long)row->pr_number);
	else if (row->environment)
		k = sw_asprintf("push:%s:%s", repo, row->environment);
	else
		k = sw_asprintf("branch:%s:%s", repo, row->branch ? row->branch : "");
	free(repo);
	return k;
}

static const char *event_name(const struct sw_store_run *row)
{
	switch (row->kind) {
	case SW_RUN_PULL_REQUEST: return "pull_request";
	case SW_RUN_PUSH: return "push";
	default: return "deploy";
	}
}

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

static char *prep_key(const char *fmt, int64_t run_id)
{
	return sw_asprintf(fmt, (long long)run_id);
}

/* --- writes ------------------------------------------------------------------
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
static const char *const wkind_names[] = { "run", "stage_new", "stage", "log", "superseded",
	"kv", "env_infra", "infra_outputs", "forget", "report" };

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
	void (*then)(struct sw_engine *e, void *arg);   /* once committed */
	void (*then_free)(void *arg);                   /* then_arg when never run */
	void *then_arg;
};

static int prep_forget_store(struct sw_store *st, int64_t id);

static struct wop *wop_new(struct sw_engine *e, enum wkind kind, int64_t run_id)
{
	struct wop *w = sw_calloc(1, sizeof(*w));
	w->e = e;
	w->kind = kind;
	w->run_id = run_id;
	w->notice = -1;
	w->at = sw_now_ms();
	sw_buf_init(&w->data);
	return w;
}

static int wop_apply(struct sw_store *st, void *arg)
{
	struct wop *w = arg;
	int64_t id = 0;
	int rc = 0;

	switch (w->kind) {
	case W_RUN:
		rc = sw_store_run_set_status_at(st, w->run_id, w->status, w->a, w->at);
		if (rc == 0 && w->mark_preparing) {
			char *key = prep_key(PREPARING_KEY_FMT, w->run_id);
			rc = sw_store_kv_set(st, key, "1");
			free(key);
		}
		break;
	case W_STAGE_NEW:
		rc = sw_store_stage_create(st, &id, w->run_id, w->idx, w->a, w->b);
		break;
	case W_STAGE:
		if ((rc = sw_store_stage_find(st, w->run_id, w->idx, &id)) == 0)
			rc = sw_store_stage_set_status_at(st, id, w->status, w->exit_code, w->a, w->at);
		break;
	case W_LOG:
		if ((rc = sw_store_stage_find(st, w->run_id, w->idx, &id)) == 0)
			rc = sw_store_log_append(st, id, w->at, w->data.ptr, w->data.len, NULL);
		break;
	case W_SUPERSEDED:
		rc = sw_store_run_mark_superseded(st, w->run_id, w->other);
		break;
	case W_KV:
		rc = sw_store_kv_set(st, w->a, w->b);
		break;
	case W_ENV_INFRA: {
		struct sw_store_env_update u = SW_STORE_ENV_UPDATE_INIT;
		u.infra_status = w->b;
		rc = sw_store_env_set(st, w->a, &u);
		break;
	}
	case W_INFRA_OUTPUTS:
		rc = sw_store_sync_set_infra_outputs(st, w->a, w->run_id, w->b);
		if (rc == SW_ENOTFOUND)   /* the run made no sync */
			rc = 0;
		break;
	case W_FORGET:
		rc = prep_forget_store(st, w->run_id);
		break;
	case W_REPORT:
		break;
	}
	if (rc == SW_EAGAIN)
		return rc;
	if (rc < 0)
		log_error("engine.store", "run=%lld write=%s err=%s", (long long)w->run_id,
			  wkind_names[w->kind], sw_q(sw_error_last()));
	if (w->report_stage && sw_notify_stage(&w->e->d, w->run_id, w->idx) == SW_EAGAIN)
		return SW_EAGAIN;
	if (w->notice >= 0 && sw_notify_run(&w->e->d, w->run_id, w->notice) == SW_EAGAIN)
		return SW_EAGAIN;
	return 0;
}

static void wop_done(void *arg)
{
	struct wop *w = arg;
	if (w->then) {
		void *a = w->then_arg;
		w->then_arg = NULL;
		w->then(w->e, a);
	}
}

static void wop_release(void *arg)
{
	struct wop *w = arg;
	if (w->then_arg && w->then_free)
		w->then_free(w->then_arg);
	free(w->a);
	free(w->b);
	sw_buf_release(&w->data);
	free(w);
}

/* Write `w` now, or as soon as storage takes it; takes `w`. */
static void wop_put(struct wop *w)
{
	struct sw_write wr = { wop_apply, wop_done, wop_release, w };
	sw_writeq_put(w->e->wq, &wr);
}

/* Report, in order with the writes before it. */
static void report_run(struct sw_engine *e, int64_t run_id, enum sw_notice n)
{
	struct wop *w = wop_new(e, W_REPORT, run_id);
	w->notice = (int)n;
	wop_put(w);
}

static void put_kv(struct sw_engine *e, int64_t run_id, const char *key, const char *value)
{
	struct wop *w = wop_new(e, W_KV, run_id);
	w->a = sw_strdup(key);
	w->b = sw_strdup(value ? value : "");
	wop_put(w);
}

/*
 * The run's new status in memory now, and its write (reporting `notice`
 * afterwards, -1 for none) for the caller to complete and wop_put().
 */
static struct wop *run_op(struct run *r, enum sw_status st, const char *reason, int notice)
{
	struct wop *w = wop_new(r->e, W_RUN, r->row.id);
	w->status = st;
	w->a = reason ? sw_strdup(reason) : NULL;
	w->notice = notice;
	r->row.status = st;
	if (reason) {
		free(r->row.reason);
		r->row.reason = sw_strdup(reason);
	}
	if (st == SW_STATUS_RUNNING && !r->row.started_at)
		r->row.started_at = sw_now_ms();
	if (sw_store_status_is_final(st)) {
		r->row.finished_at = sw_now_ms();
		if (r->e->d.on_run_finished)
			r->e->d.on_run_finished(sw_store_run_kind_str(r->row.kind), sw_store_status_str(st),
						r->row.started_at ? r->row.finished_at - r->row.started_at : 0);
	}
	log_info("run.status", "run=%lld status=%s repo=%s commit=%.12s%s%s", (long long)r->row.id,
		 sw_store_status_str(st), r->row.repo, r->row.commit_sha,
		 reason ? " reason=" : "", reason ? sw_q(reason) : "");
	return w;
}

static void set_run_status(struct run *r, enum sw_status st, const char *reason, int notice)
{
	wop_put(run_op(r, st, reason, notice));
}

/* The stage's new status, written with its commit status when `report`. */
static void set_stage_status(struct stage *s, enum sw_status st, int exit_code, const char *reason,
			     int report)
{
	struct wop *w = wop_new(s->run->e, W_STAGE, s->run->row.id);
	w->idx = s->idx;
	w->status = st;
	w->exit_code = exit_code;
	w->a = reason ? sw_strdup(reason) : NULL;
	w->report_stage = report;
	wop_put(w);
	s->status = st;
	if (st == SW_STATUS_RUNNING)
		s->plan.started_ms = sw_now_ms();
	if (sw_store_status_is_final(st)) {
		s->plan.finished_ms = sw_now_ms();
		if (s->run->e->d.on_stage_finished)
			s->run->e->d.on_stage_finished(sw_store_status_str(st), s->plan.started_ms ?
						       s->plan.finished_ms - s->plan.started_ms : 0);
	}
	if (exit_code >= 0)
		s->plan.exit_code = exit_code;
	if (reason) {
		free(s->reason);
		s->reason = sw_strdup(reason);
	}
	log_info("stage.status", "run=%lld stage=%s status=%s%s%s", (long long)s->run->row.id,
		 s->plan.name, sw_store_status_str(st), reason ? " reason=" : "",
		 reason ? sw_q(reason) : "");
}

static void flush_log(struct stage *s, int final)
{
	if (final)
		sw_mask_finish(&s->mask, &s->logbuf);
	if (!s->logbuf.len)
		return;
	struct wop *w = wop_new(s->run->e, W_LOG, s->run->row.id);
	w->idx = s->idx;
	w->data = s->logbuf;
	sw_buf_init(&s->logbuf);
	wop_put(w);
}

/* A stage ends: the rest of its log, then its status with its commit status. */
static void finish_stage(struct stage *s, enum sw_status st, int exit_code, const char *reason)
{
	flush_log(s, 1);
	set_stage_status(s, st, exit_code, reason, 1);
}

/* Text slipway itself adds to a stage's log (errors, time-outs). */
static void log_note(struct stage *s, const char *fmt, const char *arg)
{
	struct sw_buf b = SW_BUF_INIT;
	sw_buf_adds(&b, "\n[slipway] ");
	sw_buf_addf(&b, fmt, arg);
	sw_buf_addch(&b, '\n');
	sw_mask_feed(&s->mask, b.ptr, b.len, &s->logbuf);
	sw_buf_release(&b);
}

static void on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sw_engine *e = arg;
	for (struct run *r = e->runs; r; r = r->next)
		for (size_t i = 0; i < r->nstages; i++)
			if (r->stages[i].step)
				flush_log(&r->stages[i], 0);
}

/* The secret values to mask in every log: all the server knows. */
static const char **secret_values(const struct sw_config *c)
{
	size_t n = 0, cap = c->nsecrets + c->nrepos + 8;
	const char **v = sw_calloc(cap, sizeof(*v));
	const struct sw_secret *fixed[] = { &c->webhook_secret, &c->github_token, &c->api_token,
		&c->slack_webhook_url, &c->slack_bot_token };
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (fixed[i]->value)
			v[n++] = fixed[i]->value;
	for (size_t i = 0; i < c->nsecrets; i++)
		if (c->secrets[i].secret.value)
			v[n++] = c->secrets[i].secret.value;
	for (size_t i = 0; i < c->nrepos; i++)
		if (c->repos[i].token.value)
			v[n++] = c->repos[i].token.value;
	v[n] = NULL;
	return v;
}

/* --- the run list -------------------------------------------------------- */

static void run_free(struct run *r)
{
	for (size_t i = 0; i < r->nstages; i++) {
		struct stage *s = &r->stages[i];
		sw_mask_release(&s->mask);
		sw_buf_release(&s->logbuf);
		sw_plan_stage_release(&s->plan);
		free(s->reason);
		free(s->tf_error);
		sw_buf_release(&s->tf_md);
		if (s->tf_outputs)
			json_decref(s->tf_outputs);
	}
	free(r->stages);
	sw_store_run_release(&r->row);
	free(r->key);
	free(r->workspace);
	free(r->cancel_reason);
	free(r->rollback_to);
	free(r->rollback_note);
	free(r);
}

static void run_unlink(struct run *r)
{
	struct sw_engine *e = r->e;
	for (struct run **pp = &e->runs; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			return;
		}
	}
}

static void run_append(struct sw_engine *e, struct run *r)
{
	struct run **pp = &e->runs;
	while (*pp)
		pp = &(*pp)->next;
	r->next = NULL;
	*pp = r;
}

static struct run *run_find(struct sw_engine *e, int64_t id)
{
	for (struct run *r = e->runs; r; r = r->next)
		if (r->row.id == id)
			return r;
	return NULL;
}

/* Load a run from storage into memory as QUEUED. */
static struct run *run_load(struct sw_engine *e, int64_t id)
{
	struct run *r = sw_calloc(1, sizeof(*r));
	r->e = e;
	if (sw_store_run_get(e->d.store, id, &r->row) < 0) {
		log_error("run.load", "run=%lld err=%s", (long long)id, sw_q(sw_error_last()));
		free(r);
		return NULL;
	}
	r->key = run_key(&r->row);
	r->phase = PH_QUEUED;
	run_append(e, r);
	return r;
}

/* --- finishing ------------------------------------------------------------- */

static void cleanup_work(void *arg)
{
	sw_workspace_remove(arg);
}

static void cleanup_done(void *arg)
{
	free(arg);
}

/*
 * Forget a run that is over: its workspace is removed on a worker (rm -rf
 * blocks; inline only when the pool refuses work, i.e. while stopping),
 * and the next queued run may start.
 */
static void drop_run(struct run *r)
{
	struct sw_engine *e = r->e;
	if (r->workspace && sw_pool_submit(e->d.pool, cleanup_work, cleanup_done, r->workspace) == 0)
		r->workspace = NULL;
	else if (r->workspace)
		sw_workspace_remove(r->workspace);
	run_unlink(r);
	run_free(r);
	schedule(e);
}

static void finish_run(struct run *r)
{
	struct sw_engine *e = r->e;
	enum sw_status st = SW_STATUS_SUCCESS;
	const char *reason = NULL;
	char why[256] = "";

	for (size_t i = 0; i < r->nstages; i++) {
		struct stage *s = &r->stages[i];
		flush_log(s, 1);
		if (s->status == SW_STATUS_FAILURE && st != SW_STATUS_FAILURE) {
			st = SW_STATUS_FAILURE;
			snprintf(why, sizeof(why), "stage %s failed", s->plan.name);
		} else if (s->status == SW_STATUS_ERROR && st == SW_STATUS_SUCCESS) {
			st = SW_STATUS_ERROR;
			snprintf(why, sizeof(why), "stage %s: %s", s->plan.name,
				 s->reason ? s->reason : "error");
		}
	}
	if (why[0] && r->rollback_note) {
		size_t n = strlen(why);
		snprintf(why + n, sizeof(why) - n, "; %s", r->rollback_note);
	}
	if (why[0])
		reason = why;
	if (r->cancelled) {
		st = SW_STATUS_CANCELLED;
		reason = r->cancel_reason;
	}
	if (e->stopping && r->cancelled && !strcmp(r->cancel_reason, "slipwayd stopped")) {
		/* leave it RUNNING in storage: the next start retries it */
		log_info("run.interrupted", "run=%lld reason=%s", (long long)r->row.id,
			 sw_q("slipwayd stopped; the next start retries it"));
	} else {
		set_run_status(r, st, reason, SW_NOTICE_END);
	}
	drop_run(r);
}

/* --- stages ---------------------------------------------------------------- */

static void step_output(int stream, const char *p, size_t n, void *arg)
{
	struct stage *s = arg;
	sw_mask_feed(&s->mask, p, n, &s->logbuf);
	if (s->logbuf.len >= LOG_FLUSH_BYTES)
		flush_log(s, 0);
}

static void step_done(const struct sw_runner_result *res, void *arg)
{
	struct stage *s = arg;
	struct run *r = s->run;
	char why[512];

	s->step = NULL;
	r->running--;
	switch (res->outcome) {
	case SW_STEP_EXITED:
		if (res->exit_code == 0) {
			finish_stage(s, SW_STATUS_SUCCESS, 0, NULL);
		} else {
			snprintf(why, sizeof(why), "exit code %d", res->exit_code);
			finish_stage(s, SW_STATUS_FAILURE, res->exit_code, why);
		}
		break;
	case SW_STEP_TIMED_OUT:
		snprintf(why, sizeof(why), "timed out after %lds, killed", s->plan.timeout_ms / 1000);
		log_note(s, "%s", why);
		finish_stage(s, SW_STATUS_FAILURE, res->exit_code, why);
		break;
	case SW_STEP_CANCELLED:
		if (r->e->stopping && r->cancel_reason && !strcmp(r->cancel_reason, "slipwayd stopped")) {
			log_note(s, "%s", "interrupted: slipwayd stopped");
			finish_stage(s, SW_STATUS_INTERRUPTED, res->exit_code, "slipwayd stopped");
		} else {
			log_note(s, "cancelled: %s", r->cancel_reason ? r->cancel_reason : "cancelled");
			finish_stage(s, SW_STATUS_CANCELLED, res->exit_code, r->cancel_reason);
		}
		break;
	case SW_STEP_ERROR:
		log_note(s, "error: %s", res->error_msg);
		finish_stage(s, SW_STATUS_ERROR, -1, res->error_msg);
		break;
	}
	advance(r);
}

/* --- deploy and rollback stages ------------------------------------------- */

static void deploy_log(void *ctx, const char *line)
{
	struct stage *s = ctx;
	sw_mask_feed(&s->mask, line, strlen(line), &s->logbuf);
	sw_mask_feed(&s->mask, "\n", 1, &s->logbuf);
}

/*
 * The deploy of a run that applied Terraform first: its outputs go on the
 * sync the deploy recorded (the run's first one; a rollback stage's sync
 * after it gets none).
 */
static void record_infra_outputs(struct run *r)
{
	const json_t *outs = NULL;
	for (size_t i = 0; i < r->nstages && !outs; i++)
		if (r->stages[i].plan.kind == SW_PLAN_TF_APPLY)
			outs = r->stages[i].tf_outputs;
	if (!outs || !r->row.environment)
		return;
	char *txt = json_dumps(outs, JSON_COMPACT | JSON_SORT_KEYS);
	if (!txt) {
		log_error("infra.outputs", "run=%lld env=%s err=%s", (long long)r->row.id,
			  r->row.environment, sw_q("cannot write JSON"));
		return;
	}
	struct wop *w = wop_new(r->e, W_INFRA_OUTPUTS, r->row.id);
	w->a = sw_strdup(r->row.environment);
	w->b = txt;
	wop_put(w);
}

static void deploy_done(void *ctx, int ok, const char *message)
{
	struct stage *s = ctx;
	struct run *r = s->run;

	s->step = NULL;
	r->running--;
	if (s->plan.kind == SW_PLAN_DEPLOY)
		record_infra_outputs(r);
	if (message && *message)
		log_note(s, "%s", message);
	if (s->plan.kind == SW_PLAN_ROLLBACK) {
		free(r->rollback_note);
		r->rollback_note = ok ? sw_asprintf("rolled back to %.7s", r->rollback_to)
				      : sw_asprintf("rollback to %.7s failed", r->rollback_to);
	}
	if (ok)
		finish_stage(s, SW_STATUS_SUCCESS, 0, NULL);
	else
		finish_stage(s, SW_STATUS_FAILURE, -1, message && *message ? message : "deploy failed");
	if (s->plan.kind == SW_PLAN_ROLLBACK)
		report_run(r->e, r->row.id, SW_NOTICE_ROLLBACK);
	advance(r);
}

/* A non-NULL, distinct pointer that marks a deploy in flight in stage->step. */
static char deploying;

static void start_deploy(struct run *r, struct stage *s)
{
	const struct sw_deploy_ops *ops = r->e->d.deploy;
	int rollback = s->plan.kind == SW_PLAN_ROLLBACK;
	const char *commit = rollback ? r->rollback_to : r->row.commit_sha;
	/* a push run without a delivery is one the poller found */
	enum sw_sync_trigger trigger = rollback ? SW_TRIGGER_ROLLBACK :
		r->row.kind == SW_RUN_PUSH ? (r->row.delivery_id ? SW_TRIGGER_MERGE : SW_TRIGGER_POLL) :
		r->row.kind == SW_RUN_ROLLBACK ? SW_TRIGGER_ROLLBACK : SW_TRIGGER_MANUAL;
	char line[160];

	set_stage_status(s, SW_STATUS_RUNNING, -1, NULL, 1);
	snprintf(line, sizeof(line), "%s %.12s to %s", rollback ? "rolling back to" : "deploying",
		 commit, r->row.environment);
	deploy_log(s, line);
	if (!ops || ops->deploy(ops->arg, r->row.environment, r->row.repo, commit, trigger,
				r->row.id, deploy_log, deploy_done, s) < 0) {
		const char *why = ops ? sw_error_last() : "this server does not deploy";
		log_note(s, "error: %s", why);
		finish_stage(s, SW_STATUS_ERROR, -1, why);
		return;
	}
	s->step = (struct sw_runner_step *)&deploying;
	r->running++;
}

/*
 * After a failed deploy or acceptance stage: add a rollback stage when the
 * environment wants one and there is a healthy revision to go back to.
 * Returns 1 when a rollback stage was added.
 */
static int maybe_rollback(struct run *r)
{
	const struct sw_config *c = r->e->d.cfg;
	const struct sw_cfg_env *env = r->row.environment ? sw_config_env(c, r->row.environment) : NULL;
	const struct sw_deploy_ops *ops = r->e->d.deploy;
	struct stage *deploy = NULL;
	int failed = 0;

	if (!env || !env->rollback_on_failure || !ops || !ops->rollback_target || r->cancelled ||
	    r->rollback_to || r->rollback_note)
		return 0;
	for (size_t i = 0; i < r->nstages; i++) {
		struct stage *s = &r->stages[i];
		if (s->plan.kind == SW_PLAN_DEPLOY)
			deploy = s;
		else if (deploy && (s->status == SW_STATUS_FAILURE || s->status == SW_STATUS_ERROR))
			failed = 1;
	}
	if (!deploy || deploy->status == SW_STATUS_SKIPPED || deploy->status == SW_STATUS_QUEUED)
		return 0;   /* nothing reached the cluster */
	if (deploy->status == SW_STATUS_FAILURE || deploy->status == SW_STATUS_ERROR)
		failed = 1;
	if (!failed)
		return 0;
	r->rollback_to = ops->rollback_target(ops->arg, r->row.environment, r->row.commit_sha);
	if (!r->rollback_to) {
		r->rollback_note = sw_strdup("no earlier healthy revision to roll back to");
		return 0;
	}
	/* a new stage at the end of the run */
	r->stages = sw_realloc(r->stages, (r->nstages + 1) * sizeof(*r->stages));
	for (size_t i = 0; i < r->nstages; i++)   /* the array moved: fix back-pointers' users */
		r->stages[i].run = r;
	struct stage *s = &r->stages[r->nstages];
	memset(s, 0, sizeof(*s));
	s->run = r;
	struct sw_plan tmp = { 0 };
	struct sw_plan_stage *ps = sw_plan_add_builtin(&tmp, SW_PLAN_ROLLBACK, "rollback");
	s->plan = *ps;
	free(tmp.stages);
	s->status = SW_STATUS_QUEUED;
	{
		const char **secrets = secret_values(c);
		sw_mask_init(&s->mask, secrets);
		free(secrets);
	}
	sw_buf_init(&s->logbuf);
	s->idx = (int)r->nstages;
	struct wop *w = wop_new(r->e, W_STAGE_NEW, r->row.id);
	w->idx = s->idx;
	w->a = sw_strdup("rollback");
	wop_put(w);
	r->nstages++;
	log_info("run.rollback", "run=%lld env=%s to=%.12s", (long long)r->row.id,
		 r->row.environment, r->rollback_to);
	start_deploy(r, s);
	return 1;
}

/* --- Terraform stages ------------------------------------------------------ */

static void tf_output(int stream, const char *p, size_t n, void *arg)
{
	step_output(stream, p, n, arg);
}

static void tf_next(struct run *r, struct stage *s);

/* Every module done (or the stage stopped): record and report the stage. */
static void tf_finish(struct run *r, struct stage *s)
{
	struct sw_engine *e = r->e;
	int apply = s->plan.kind == SW_PLAN_TF_APPLY;
	const char *env = s->plan.tf_env;

	s->step = NULL;
	r->running--;
	if (apply && !s->tf_cancelled) {
		char *st;
		if (s->tf_failed) {
			st = sw_asprintf("apply of %.7s failed: %s", r->row.commit_sha,
					 s->tf_error ? s->tf_error : "error");
		} else {
			st = sw_asprintf("applied %.7s: %zu added, %zu changed, %zu destroyed",
					 r->row.commit_sha, s->tf_add, s->tf_change, s->tf_destroy);
			char *key = sw_asprintf("infra:commit:%s", env);
			put_kv(e, r->row.id, key, r->row.commit_sha);
			free(key);
		}
		if (strlen(st) > 500)
			strcpy(st + 497, "...");
		struct wop *w = wop_new(e, W_ENV_INFRA, r->row.id);
		w->a = sw_strdup(env);
		w->b = sw_strdup(st);
		wop_put(w);
		log_info("infra.applied", "run=%lld env=%s ok=%d status=%s", (long long)r->row.id, env,
			 !s->tf_failed, sw_q(st));
		free(st);
	}
	if (s->tf_cancelled) {
		if (e->stopping && r->cancel_reason && !strcmp(r->cancel_reason, "slipwayd stopped")) {
			log_note(s, "%s", "interrupted: slipwayd stopped");
			finish_stage(s, SW_STATUS_INTERRUPTED, -1, "slipwayd stopped");
		} else {
			log_note(s, "cancelled: %s", r->cancel_reason ? r->cancel_reason : "cancelled");
			finish_stage(s, SW_STATUS_CANCELLED, -1, r->cancel_reason);
		}
	} else if (s->tf_failed) {
		finish_stage(s, SW_STATUS_FAILURE, -1, s->tf_error ? s->tf_error : "terraform failed");
	} else {
		finish_stage(s, SW_STATUS_SUCCESS, 0, NULL);
	}
	if (!r->cancelling)
		advance(r);
}

static void tf_fail(struct stage *s, const char *msg)
{
	if (!s->tf_failed) {
		s->tf_failed = 1;
		s->tf_error = sw_strdup(msg && *msg ? msg : "terraform failed");
	}
}

static void tf_done(struct sw_tf_result *res, void *arg)
{
	struct stage *s = arg;
	struct run *r = s->run;
	struct sw_engine *e = r->e;
	const char *env = s->plan.tf_env;
	int apply = s->plan.kind == SW_PLAN_TF_APPLY;

	s->tfop = NULL;
	if (res->status == SW_ECANCELLED) {
		s->tf_cancelled = 1;
	} else if (res->status < 0) {
		log_note(s, "%s", res->error);
		tf_fail(s, res->error);
	}
	if (!apply && res->status != SW_ECANCELLED) {
		char *md = sw_tf_report_markdown(res, env, 16000);
		char *key = sw_asprintf(SW_TF_REPORT_KEY_FMT, (long long)r->row.id, env);
		if (s->tf_md.len)
			sw_buf_adds(&s->tf_md, "\n");
		sw_buf_adds(&s->tf_md, md);
		put_kv(e, r->row.id, key, s->tf_md.ptr);
		free(key);
		free(md);
		if (res->status == 0) {
			char line[200];
			snprintf(line, sizeof(line), "plan of %s: %zu to add, %zu to change, %zu to destroy",
				 res->module, res->nadd, res->nchange, res->ndestroy);
			log_note(s, "%s", line);
		}
	}
	if (apply && res->status == 0) {
		s->tf_add += res->nadd;
		s->tf_change += res->nchange;
		s->tf_destroy += res->ndestroy;
		log_note(s, res->applied ? "applied %s" : "%s: no changes to apply", res->module);
		if (res->outputs_json) {
			/* `output -json` holds sensitive values in clear text:
			 * only the redacted form is kept, logged or shown */
			char *kept = NULL;
			if (sw_tf_outputs_redact(&kept, res->outputs_json,
						 strlen(res->outputs_json)) < 0) {
				log_warn("infra.outputs", "run=%lld env=%s module=%s err=%s",
					 (long long)r->row.id, env, res->module, sw_q(sw_error_last()));
				kept = sw_strdup("{}");
			}
			if (!s->tf_outputs)
				s->tf_outputs = json_object();
			json_t *o = json_loads(kept, 0, NULL);
			json_object_set_new(s->tf_outputs, res->module, o ? o : json_object());
			char *key = sw_asprintf("infra:outputs:%s", env);
			char *txt = json_dumps(s->tf_outputs, JSON_COMPACT | JSON_SORT_KEYS);
			put_kv(e, r->row.id, key, txt);
			free(key);
			free(txt);
			struct sw_buf b = SW_BUF_INIT;
			sw_buf_addf(&b, "\n[slipway] outputs of %s: %s\n", res->module, kept);
			sw_mask_feed(&s->mask, b.ptr, b.len, &s->logbuf);
			sw_buf_release(&b);
			free(kept);
		}
	}
	sw_tf_result_free(res);
	s->tf_idx++;
	if (s->tf_cancelled || r->cancelled || (apply && s->tf_failed))
		tf_finish(r, s);
	else
		tf_next(r, s);
}

static void tf_next(struct run *r, struct stage *s)
{
	struct sw_engine *e = r->e;
	const struct sw_cfg_env *cenv = sw_config_env(e->d.cfg, s->plan.tf_env);
	const char *module = s->plan.tf_modules ? s->plan.tf_modules[s->tf_idx] : NULL;
	int apply = s->plan.kind == SW_PLAN_TF_APPLY;
	char label[128];

	if (!module) {
		tf_finish(r, s);
		return;
	}
	if (!e->d.tf || !cenv || !r->workspace) {
		const char *why = !e->d.tf ? "this server does not run terraform"
			: !cenv ? "the environment is no longer configured" : "no checkout";
		log_note(s, "error: %s", why);
		tf_fail(s, why);
		tf_finish(r, s);
		return;
	}
	struct sw_tf_req q = SW_TF_REQ_INIT;
	snprintf(label, sizeof(label), "run=%lld stage=%s", (long long)r->row.id, s->plan.name);
	q.env = s->plan.tf_env;
	q.checkout = r->workspace;
	q.module = module;
	q.infra = &cenv->infra;
	q.label = label;
	q.on_output = tf_output;
	q.arg = s;
	{
		struct sw_buf b = SW_BUF_INIT;
		sw_buf_addf(&b, "terraform %s of %s for %s at %.12s", apply ? "apply" : "plan", module,
			    s->plan.tf_env, r->row.commit_sha);
		log_note(s, "%s", b.ptr);
		sw_buf_release(&b);
	}
	int rc = apply ? sw_tf_apply(e->d.tf, &q, tf_done, s, &s->tfop)
		       : sw_tf_plan(e->d.tf, &q, tf_done, s, &s->tfop);
	if (rc < 0) {
		log_note(s, "error: %s", sw_error_last());
		tf_fail(s, sw_error_last());
		s->tf_idx++;
		if (apply)
			tf_finish(r, s);
		else
			tf_next(r, s);
	}
}

static void start_tf(struct run *r, struct stage *s)
{
	set_stage_status(s, SW_STATUS_RUNNING, -1, NULL, 1);
	s->step = (struct sw_runner_step *)&deploying;
	r->running++;
	s->tf_idx = 0;
	tf_next(r, s);
}

static char **stage_env(struct run *r, struct stage *s, char **missing)
{
	const struct sw_config *c = r->e->d.cfg;
	struct sw_store_run *row = &r->row;
	const struct sw_deploy_ops *ops = r->e->d.deploy;
	char **extra = NULL;
	size_t nextra = 0;
	if (row->environment && ops && ops->stage_env)
		extra = ops->stage_env(ops->arg, row->environment);
	for (char **p = extra; p && *p; p++)
		nextra++;
	size_t cap = 16 + s->plan.nenv + s->plan.nsecrets + nextra, n = 0;
	char **env = sw_calloc(cap, sizeof(char *));

	*missing = NULL;
	env[n++] = sw_strdup("CI=true");
	env[n++] = sw_strdup("SLIPWAY=true");
	env[n++] = sw_asprintf("SLIPWAY_RUN_ID=%lld", (long long)row->id);
	env[n++] = sw_asprintf("SLIPWAY_STAGE=%s", s->plan.name);
	env[n++] = sw_asprintf("SLIPWAY_EVENT=%s", event_name(row));
	env[n++] = sw_asprintf("SLIPWAY_REPO=%s", row->repo);
	env[n++] = sw_asprintf("SLIPWAY_COMMIT=%s", row->commit_sha);
	if (row->branch)
		env[n++] = sw_asprintf("SLIPWAY_BRANCH=%s", row->branch);
	if (row->pr_number)
		env[n++] = sw_asprintf("SLIPWAY_PR=%lld", (long long)row->pr_number);
	if (row->environment)
		env[n++] = sw_asprintf("SLIPWAY_ENVIRONMENT=%s", row->environment);
	for (size_t i = 0; i < nextra; i++)
		env[n++] = extra[i];     /* taken */
	free(extra);
	for (size_t i = 0; i < s->plan.nenv; i++)
		env[n++] = sw_strdup(s->plan.env[i]);
	for (size_t i = 0; i < s->plan.nsecrets; i++) {
		const char *v = sw_config_secret(c, s->plan.secrets[i]);
		if (row->from_fork) {
			/* a fork's code must not read the server's secrets */
			*missing = sw_asprintf("%s (secrets are not given to pull requests from forks)",
					       s->plan.secrets[i]);
			break;
		}
		if (!v) {
			*missing = sw_asprintf("%s is not configured on the server", s->plan.secrets[i]);
			break;
		}
		env[n++] = sw_asprintf("%s=%s", s->plan.secrets[i], v);
	}
	env[n] = NULL;
	return env;
}

/* A pull request's stages (a fork's always) get runner.pr_network, unless
 * the server config trusts the repository's own branches with the network. */
static const char *stage_network(const struct sw_config *c, const struct sw_store_run *row)
{
	if (row->kind != SW_RUN_PULL_REQUEST)
		return c->runner_network;
	for (size_t i = 0; !row->from_fork && i < c->nrunner_pr_network_repos; i++)
		if (!strcmp(c->runner_pr_network_repos[i], row->repo))
			return c->runner_network;
	return c->runner_pr_network;
}

static void start_stage(struct run *r, struct stage *s)
{
	if (s->plan.kind == SW_PLAN_TF_PLAN || s->plan.kind == SW_PLAN_TF_APPLY) {
		start_tf(r, s);
		return;
	}
	if (s->plan.kind != SW_PLAN_CONTAINER) {
		start_deploy(r, s);
		return;
	}
	const struct sw_config *c = r->e->d.cfg;
	struct sw_runner_spec spec = SW_RUNNER_SPEC_INIT;
	char *missing, label[96];
	char **env = stage_env(r, s, &missing);

	set_stage_status(s, SW_STATUS_RUNNING, -1, NULL, 1);
	if (missing) {
		char *why = sw_asprintf("secret %s", missing);
		log_note(s, "%s", why);
		finish_stage(s, SW_STATUS_ERROR, -1, why);
		free(why);
		free(missing);
		sw_strv_free_wipe(env);
		return;
	}
	snprintf(label, sizeof(label), "run=%lld stage=%s", (long long)r->row.id, s->plan.name);
	spec.image = s->plan.image;
	spec.commands = (const char *const *)s->plan.commands;
	spec.env = (const char *const *)env;
	spec.workspace = r->workspace;
	spec.memory_bytes = c->runner_memory;
	spec.nano_cpus = c->runner_nano_cpus;
	spec.network = stage_network(c, &r->row);
	spec.cap_add = (const char *const *)c->runner_cap_add;
	spec.pids_limit = c->runner_pids;
	spec.user = c->runner_user;
	spec.timeout_ms = s->plan.timeout_ms;
	spec.label = label;
	spec.on_output = step_output;
	spec.on_done = step_done;
	spec.arg = s;
	if (sw_runner_start(r->e->d.runner, &spec, &s->step) < 0) {
		char *why = sw_strdup(sw_error_last());
		log_note(s, "error: %s", why);
		finish_stage(s, SW_STATUS_ERROR, -1, why);
		free(why);
	} else {
		r->running++;
	}
	sw_strv_free_wipe(env);
}

/* Start what can start; finish the run when nothing is left. */
static void advance(struct run *r)
{
	int progressed;
	do {
		progressed = 0;
		for (size_t i = 0; i < r->nstages; i++) {
			struct stage *s = &r->stages[i];
			int ready = 1, blocked = 0;
			const char *blocker = NULL;
			if (s->status != SW_STATUS_QUEUED)
				continue;
			if (r->cancelled) {
				set_stage_status(s, SW_STATUS_SKIPPED, -1, r->cancel_reason, 0);
				progressed = 1;
				continue;
			}
			for (size_t d = 0; d < s->plan.ndeps; d++) {
				struct stage *dep = &r->stages[s->plan.deps[d]];
				if (dep->status == SW_STATUS_SUCCESS)
					continue;
				if (sw_store_status_is_final(dep->status)) {
					blocked = 1;
					blocker = dep->plan.name;
				}
				ready = 0;
			}
			if (blocked) {
				char *why = sw_asprintf("stage %s did not succeed", blocker);
				set_stage_status(s, SW_STATUS_SKIPPED, -1, why, 1);
				free(why);
				progressed = 1;
			} else if (ready) {
				start_stage(r, s);
				progressed = 1;
			}
		}
	} while (progressed);
	if (r->running == 0 && maybe_rollback(r) && r->running > 0)
		return;
	if (r->running == 0)
		finish_run(r);
	else
		report_run(r->e, r->row.id, SW_NOTICE_PROGRESS);
}

/* --- prepare (worker thread) ------------------------------------------------ */

struct prep {
	struct sw_engine *e;
	int64_t run_id;
	/* inputs, owned copies: the worker touches nothing else */
	char *data_dir, *commit, *workspace;
	struct sw_source_remote remote;   /* the repository and its credentials */
	struct sw_plan_ctx ctx;
	char **secret_names;
	/* pull request: the base branch, and the environments of the
	 * repository with root modules (copies: a reload may free the config) */
	char *base_branch;
	struct prep_tf { char *name; struct sw_cfg_infra infra; } *tf;
	size_t ntf;
	char **apply_modules;      /* deploy: ctx.infra_modules */
	int checked_out;
	/* outputs */
	int rc;
	char *error;
	struct sw_plan plan;
};

static void prep_free(struct prep *p)
{
	free(p->base_branch);
	for (size_t i = 0; i < p->ntf; i++) {
		free(p->tf[i].name);
		sw_strv_free(p->tf[i].infra.modules);
		free(p->tf[i].infra.var_file);
		sw_strv_free(p->tf[i].infra.vars);
	}
	free(p->tf);
	sw_strv_free(p->apply_modules);
	free(p->data_dir);
	sw_source_remote_release(&p->remote);
	free(p->commit);
	free(p->workspace);
	free((char *)p->ctx.event);
	free((char *)p->ctx.branch);
	free((char *)p->ctx.environment);
	for (char **s = p->secret_names; s && *s; s++)
		free(*s);
	free(p->secret_names);
	free(p->error);
	sw_plan_release(&p->plan);
	free(p);
}

/*
 * Pull request: the paths it changes (from the merge base with the base
 * branch's head), and for each environment with root modules the ones
 * those paths touch: a `terraform-ENV` stage plans them. Needs the
 * checkout, so it is made here.
 */
static int prep_tf_plans(struct prep *p)
{
	char base_head[41], mb[41];
	char **changed = NULL;
	size_t nchanged = 0;
	int rc;
	char *ref = sw_asprintf("refs/heads/%s", p->base_branch ? p->base_branch : "");

	rc = sw_source_resolve(base_head, p->data_dir, p->remote.name, ref);
	free(ref);
	if (rc == 0 && sw_source_merge_base(mb, p->data_dir, p->remote.name, base_head, p->commit) == 0)
		rc = sw_source_changed_paths(&changed, &nchanged, p->data_dir, p->remote.name, mb,
					     p->commit);
	else   /* no base to compare with: every file of the head counts */
		rc = sw_source_changed_paths(&changed, &nchanged, p->data_dir, p->remote.name, NULL,
					     p->commit);
	if (rc < 0)
		return rc;
	if (!nchanged) {
		sw_source_paths_free(changed);
		return 0;
	}
	if ((rc = sw_source_checkout(p->data_dir, p->remote.name, p->commit, p->workspace)) < 0) {
		sw_source_paths_free(changed);
		return rc;
	}
	p->checked_out = 1;
	for (size_t i = 0; i < p->ntf; i++) {
		const struct sw_cfg_infra *inf = &p->tf[i].infra;
		unsigned char *hit = sw_calloc(inf->nmodules + 1, 1);
		const char **mods = sw_calloc(inf->nmodules + 1, sizeof(char *));
		size_t n = 0;
		if (sw_tf_affected(hit, p->workspace, inf, (const char *const *)changed, nchanged) > 0) {
			for (size_t m = 0; m < inf->nmodules; m++)
				if (hit[m])
					mods[n++] = inf->modules[m];
		}
		if (n) {
			char *name = sw_asprintf("terraform-%s", p->tf[i].name);
			sw_plan_add_tf(&p->plan, SW_PLAN_TF_PLAN, name, p->tf[i].name, mods, n, 0);
			free(name);
		}
		free(hit);
		free(mods);
	}
	sw_source_paths_free(changed);
	return 0;
}

static void prep_work(void *arg)
{
	struct prep *p = arg;
	struct sw_buf file = SW_BUF_INIT;
	int rc;

	/* A run requeued after a crash (or a workspace left by an earlier
	 * daemon under the same run id) finds a half-written checkout here:
	 * every run starts from a clean workspace. */
	sw_workspace_remove(p->workspace);
	if ((rc = sw_source_fetch(&p->remote.repo, p->data_dir, p->commit)) < 0)
		goto fail;
	rc = sw_source_read_file(&file, p->data_dir, p->remote.name, p->commit, ".slipway.yml");
	if (rc < 0 && rc != SW_ENOTFOUND)
		goto fail;
	if ((rc = sw_plan_build(&p->plan, ".slipway.yml", rc == SW_ENOTFOUND ? NULL : file.ptr,
				file.len, &p->ctx, (const char *const *)p->secret_names)) < 0)
		goto fail;
	if (p->ntf && (rc = prep_tf_plans(p)) < 0)
		goto fail;
	for (size_t i = 0; i < p->plan.nstages && !p->checked_out; i++) {
		if (p->plan.stages[i].kind == SW_PLAN_DEPLOY || p->plan.stages[i].kind == SW_PLAN_ROLLBACK)
			continue;
		if ((rc = sw_source_checkout(p->data_dir, p->remote.name, p->commit, p->workspace)) < 0)
			goto fail;
		p->checked_out = 1;
	}
	sw_buf_release(&file);
	p->rc = 0;
	return;
fail:
	p->rc = rc;
	p->error = sw_strdup(sw_error_last());
	sw_buf_release(&file);
}

static void prep_done(void *arg)
{
	struct prep *p = arg;
	struct sw_engine *e = p->e;
	struct run *r = run_find(e, p->run_id);

	if (!r) {       /* cannot happen: a preparing run stays in the list */
		prep_free(p);
		return;
	}
	prep_forget(e, r->row.id);   /* the preparation is over, whatever it gave */
	if (p->rc < 0) {
		log_warn("run.prepare_failed", "run=%lld err=%s", (long long)r->row.id, sw_q(p->error));
		r->phase = PH_RUNNING;
		if (r->cancelled) {      /* the cancel is what the run ends with */
			prep_free(p);
			finish_run(r);
			return;
		}
		set_run_status(r, SW_STATUS_ERROR, p->error, SW_NOTICE_END);
		prep_free(p);
		drop_run(r);
		return;
	}
	r->phase = PH_RUNNING;
	if (e->stopping && !r->cancelled) {
		r->cancelled = 1;
		r->cancel_reason = sw_strdup("slipwayd stopped");
	}
	/* adopt the plan's stages */
	r->nstages = p->plan.nstages;
	r->stages = sw_calloc(r->nstages ? r->nstages : 1, sizeof(*r->stages));
	const char **secrets = secret_values(e->d.cfg);
	for (size_t i = 0; i < r->nstages; i++) {
		struct stage *s = &r->stages[i];
		s->run = r;
		s->plan = p->plan.stages[i];
		memset(&p->plan.stages[i], 0, sizeof(p->plan.stages[i]));
		s->status = SW_STATUS_QUEUED;
		s->plan.exit_code = -1;
		if (!s->plan.timeout_ms)
			s->plan.timeout_ms = e->d.cfg->step_timeout_s * 1000;
		sw_mask_init(&s->mask, secrets);
		sw_buf_init(&s->logbuf);
		s->idx = (int)i;
		struct wop *w = wop_new(e, W_STAGE_NEW, r->row.id);
		w->idx = s->idx;
		w->a = sw_strdup(s->plan.name);
		w->b = s->plan.image ? sw_strdup(s->plan.image) : NULL;
		w->report_stage = 1;   /* pending */
		wop_put(w);
	}
	free(secrets);
	if (!r->nstages) {
		const char *why = p->plan.no_spec ? "no .slipway.yml at this commit: nothing to run"
						  : "no stage runs for this event";
		free(r->row.reason);
		r->row.reason = sw_strdup(why);
		struct wop *w = wop_new(e, W_RUN, r->row.id);
		w->status = SW_STATUS_RUNNING;
		w->a = sw_strdup(why);
		wop_put(w);
	}
	prep_free(p);
	advance(r);
}

/* The preparation of run `id` is over (or never started): drop its markers. */
static int prep_forget_store(struct sw_store *st, int64_t id)
{
	const char *fmts[] = { PREPARING_KEY_FMT, PREP_INTERRUPTS_KEY_FMT };
	int rc = 0;
	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]) && rc == 0; i++) {
		char *key = prep_key(fmts[i], id);
		rc = sw_store_kv_delete(st, key);
		free(key);
	}
	return rc;
}

static void prep_forget(struct sw_engine *e, int64_t id)
{
	wop_put(wop_new(e, W_FORGET, id));
}

static void prep_free_arg(void *arg)
{
	prep_free(arg);
}

/*
 * The run is RUNNING in storage with its preparation marker: start the
 * work. Runs from the write's `done`, so a crash during the work always
 * finds the marker.
 */
static void prep_submit(struct sw_engine *e, void *arg)
{
	struct prep *p = arg;
	struct run *r = run_find(e, p->run_id);

	if (!r) {       /* cannot happen: a preparing run stays in the list */
		prep_free(p);
		return;
	}
	if (sw_pool_submit(e->d.pool, prep_work, prep_done, p) < 0) {
		set_run_status(r, SW_STATUS_ERROR, sw_error_last(), SW_NOTICE_END);
		prep_forget(e, r->row.id);
		prep_free(p);
		run_unlink(r);
		run_free(r);
	}
}

static void start_prepare(struct run *r)
{
	struct sw_engine *e = r->e;
	const struct sw_config *c = e->d.cfg;
	const struct sw_cfg_repo *repo = sw_config_repo(c, r->row.repo);
	struct prep *p;

	r->phase = PH_PREPARING;
	if (!repo) {
		char *why = sw_asprintf("repository %s is no longer configured", r->row.repo);
		set_run_status(r, SW_STATUS_RUNNING, NULL, SW_NOTICE_START);
		set_run_status(r, SW_STATUS_ERROR, why, SW_NOTICE_END);
		free(why);
		run_unlink(r);
		run_free(r);
		return;
	}
	p = sw_calloc(1, sizeof(*p));
	p->e = e;
	p->run_id = r->row.id;
	p->data_dir = sw_strdup(c->data_dir);
	sw_source_remote_copy(&p->remote, repo);
	p->commit = sw_strdup(r->row.commit_sha);
	r->workspace = sw_asprintf("%s/workspaces/run-%lld", c->data_dir, (long long)r->row.id);
	p->workspace = sw_strdup(r->workspace);
	p->ctx.event = sw_strdup(event_name(&r->row));
	p->ctx.branch = sw_strdup(r->row.kind == SW_RUN_PULL_REQUEST && r->row.ref ?
				  r->row.ref : (r->row.branch ? r->row.branch : ""));
	p->ctx.environment = r->row.environment ? sw_strdup(r->row.environment) : NULL;
	p->ctx.require_image = !strcmp(c->runner_backend, "docker");
	const struct sw_cfg_env *cenv = r->row.environment ? sw_config_env(c, r->row.environment) : NULL;
	int infra = cenv && cenv->infra.nmodules && e->d.tf && r->row.kind != SW_RUN_PULL_REQUEST &&
		    r->row.kind != SW_RUN_ROLLBACK;
	if (cenv && ((cenv->kubeconfig && e->d.deploy) || infra) && r->row.kind != SW_RUN_PULL_REQUEST) {
		p->ctx.deploy = 1;
		p->ctx.pre_event = r->row.kind == SW_RUN_PUSH ? "push" : NULL;
		p->ctx.no_acceptance = r->row.kind == SW_RUN_ROLLBACK;
		if (infra) {
			p->apply_modules = sw_strv_dupn((const char *const *)cenv->infra.modules, cenv->infra.nmodules);
			p->ctx.infra_modules = (const char *const *)p->apply_modules;
		}
		p->ctx.no_deploy_stage = !(cenv->kubeconfig && e->d.deploy);
	}
	/* no Terraform for a fork's code: a plan can run code (external data
	 * sources, provisioners of modules) next to the state and credentials */
	if (r->row.kind == SW_RUN_PULL_REQUEST && e->d.tf && !r->row.from_fork) {
		p->tf = sw_calloc(c->nenvs + 1, sizeof(*p->tf));
		for (size_t i = 0; i < c->nenvs; i++) {
			const struct sw_cfg_env *ce = &c->envs[i];
			if (!ce->infra.nmodules || !ce->repo || strcasecmp(ce->repo, repo->name))
				continue;
			struct prep_tf *t = &p->tf[p->ntf++];
			t->name = sw_strdup(ce->name);
			t->infra = ce->infra;
			t->infra.modules = sw_strv_dupn((const char *const *)ce->infra.modules, ce->infra.nmodules);
			t->infra.var_file = ce->infra.var_file ? sw_strdup(ce->infra.var_file) : NULL;
			t->infra.vars = sw_strv_dupn((const char *const *)ce->infra.vars, ce->infra.nvars);
		}
		p->base_branch = sw_strdup(r->row.ref ? r->row.ref : "");
	}
	p->secret_names = sw_calloc(c->nsecrets + 1, sizeof(char *));
	for (size_t i = 0; i < c->nsecrets; i++)
		p->secret_names[i] = sw_strdup(c->secrets[i].name);
	{
		char *ws_root = sw_asprintf("%s/workspaces", c->data_dir);
		mkdir(ws_root, 0700);
		free(ws_root);
	}
	/* RUNNING with the preparation marker, durably, before the work
	 * starts: a crash from then on is one while preparing (see
	 * recover_running) */
	struct wop *w = run_op(r, SW_STATUS_RUNNING, NULL, SW_NOTICE_START);
	w->mark_preparing = 1;
	w->then = prep_submit;
	w->then_arg = p;
	w->then_free = prep_free_arg;
	wop_put(w);
}

static void schedule(struct sw_engine *e)
{
	size_t active = 0;
	if (e->stopping)
		return;
	for (struct run *r = e->runs; r; r = r->next)
		if (r->phase != PH_QUEUED)
			active++;
	for (struct run *r = e->runs; r && active < (size_t)e->d.cfg->max_concurrent_runs;) {
		struct run *next = r->next;
		if (r->phase == PH_QUEUED) {
			start_prepare(r);
			active++;
		}
		r = next;
	}
}

/* --- cancel and supersede ---------------------------------------------------- */

static int cancel_run(struct run *r, const char *reason)
{
	if (r->cancelled)
		return 0;
	r->cancelled = 1;
	r->cancel_reason = sw_strdup(reason);
	log_info("run.cancel", "run=%lld reason=%s", (long long)r->row.id, sw_q(reason));
	switch (r->phase) {
	case PH_QUEUED:
		set_run_status(r, SW_STATUS_CANCELLED, reason, SW_NOTICE_END);
		run_unlink(r);
		run_free(r);
		break;
	case PH_PREPARING:
		break;  /* prep_done finishes it */
	case PH_RUNNING:
		r->cancelling = 1;
		for (size_t i = 0; i < r->nstages; i++) {
			if (r->stages[i].step && r->stages[i].plan.kind == SW_PLAN_CONTAINER)
				sw_runner_cancel(r->stages[i].step);
			else if (r->stages[i].tfop)
				sw_tf_cancel(r->stages[i].tfop);   /* may report from inside */
		}
		r->cancelling = 0;
		if (r->running == 0)
			advance(r);
		break;
	}
	return 0;
}

static void supersede(struct sw_engine *e, struct run *newer)
{
	for (struct run *r = e->runs, *next; r; r = next) {
		next = r->next;
		if (r == newer || r->row.id > newer->row.id || strcmp(r->key, newer->key))
			continue;
		char *why = sw_asprintf("superseded by run %lld (commit %.7s)",
					(long long)newer->row.id, newer->row.commit_sha);
		struct wop *w = wop_new(e, W_SUPERSEDED, r->row.id);
		w->other = newer->row.id;
		wop_put(w);
		cancel_run(r, why);
		free(why);
	}
}

int sw_engine_cancel(struct sw_engine *e, int64_t run_id, const char *reason)
{
	struct run *r = run_find(e, run_id);
	if (!r)
		return sw_error_setc(SW_ENOTFOUND, "run %lld is not queued or running", (long long)run_id);
	cancel_run(r, reason ? reason : "cancelled");
	return 0;
}

/* --- creating runs -------------------------------------------------------------- */

static int queue_run(struct sw_engine *e, int64_t id)
{
	struct run *r = run_load(e, id);
	if (!r)
		return SW_ERR;
	supersede(e, r);
	report_run(e, id, SW_NOTICE_QUEUED);
	schedule(e);
	return 0;
}

/*
 * Store the run a RUN decision asks for, QUEUED; `delivery_id` 0 means the
 * poller found the commit. The webhook and the poller both come here, so a
 * polled commit gets exactly the run its push delivery would have.
 */
static int store_run(struct sw_store *st, int64_t *run_id, int64_t delivery_id,
		     const struct sw_webhook_decision *dec)
{
	struct sw_store_run_in in = {
		.delivery_id = delivery_id,
		.repo = dec->repo,
		.branch = dec->branch,
		.commit_sha = dec->commit,
		.pr_number = dec->pr_number,
		.pr_title = dec->title,
		.author = dec->author,
		.message = dec->message,
		.environment = dec->environment,
		.from_fork = dec->from_fork,
	};
	char *ref;
	int rc;

	if (!strcmp(dec->kind, "pull_request")) {
		in.kind = SW_RUN_PULL_REQUEST;
		ref = sw_strdup(dec->base ? dec->base : "");  /* `when.branch` matches the base */
	} else {
		in.kind = SW_RUN_PUSH;
		ref = sw_asprintf("refs/heads/%s", dec->branch);
	}
	in.ref = ref;
	rc = sw_store_run_create(st, run_id, &in);
	free(ref);
	return rc;
}

/*
 * The run that already deploys a push decision's commit: the environment's
 * newest push or manual run, when it is at that commit; 0 when none.
 * `*polled` (may be NULL) is set when that run is one the poller started.
 */
static int64_t head_run(struct sw_engine *e, const struct sw_webhook_decision *dec, int *polled)
{
	struct sw_store_run r;
	int64_t id = 0;

	if (polled)
		*polled = 0;
	if (!dec->environment ||
	    sw_store_run_latest_head(e->d.store, dec->repo, dec->environment, &r) < 0)
		return 0;
	if (r.commit_sha && !strcasecmp(r.commit_sha, dec->commit)) {
		id = r.id;
		if (polled)
			*polled = r.kind == SW_RUN_PUSH && !r.delivery_id;
	}
	sw_store_run_release(&r);
	return id;
}

/*
 * The queued or running run that already tests a pull request decision's
 * head commit, or 0: another delivery for the same head (reopened, a replay
 * with a different body) joins it instead of running the same head twice.
 */
static int64_t pr_head_run(struct sw_engine *e, const struct sw_webhook_decision *dec)
{
	char *repo = lower(dec->repo);
	char *key = sw_asprintf("pr:%s#%lld", repo, (long long)dec->pr_number);
	int64_t id = 0;
	free(repo);
	for (struct run *r = e->runs; r && !id; r = r->next)
		if (!r->cancelled && !strcmp(r->key, key) && r->row.commit_sha &&
		    !strcasecmp(r->row.commit_sha, dec->commit))
			id = r->row.id;
	free(key);
	return id;
}

/*
 * Map a parsed delivery (parse_rc < 0: it did not parse, `parse_err` says
 * why) and record the outcome, with the action and repository the payload
 * names. Creates and queues the run it asks for, unless the poller already
 * started that run for this commit: then the delivery is recorded as mapped
 * to the poller's run.
 */
/*
 * A delivery whose outcome could not be written (the database was locked):
 * it stays QUEUED in storage and is mapped again once writes go through.
 */
static void remap_later(struct sw_engine *e, int64_t id)
{
	struct timeval tv = { 0, REMAP_MS * 1000 };
	for (size_t i = 0; i < e->nremap; i++)
		if (e->remap[i] == id)
			return;
	if (!e->nremap)
		e->remap_since = sw_now_ms();
	e->remap = sw_realloc(e->remap, (e->nremap + 1) * sizeof(*e->remap));
	e->remap[e->nremap++] = id;
	log_warn("delivery.delayed", "delivery=%lld err=%s", (long long)id, sw_q(sw_error_last()));
	evtimer_add(e->remap_timer, &tv);
}

/* The outcome of a delivery that did not map to a run; SW_EAGAIN when locked. */
static int resolve(struct sw_engine *e, int64_t id, const char *event, const struct sw_gh_event *ev,
		   enum sw_delivery_state state, const char *why)
{
	int rc = sw_store_delivery_resolve(e->d.store, id, ev->action, ev->repo, state, why, 0);
	if (rc == SW_EAGAIN)
		return rc;
	if (rc < 0)
		log_error("delivery.store", "delivery=%lld err=%s", (long long)id,
			  sw_q(sw_error_last()));
	if (e->d.on_delivery)
		e->d.on_delivery(event, sw_store_delivery_state_str(state));
	return 0;
}

static void map_delivery(struct sw_engine *e, int64_t id, const char *event,
			 struct sw_gh_event *evp, int parse_rc, const char *parse_err)
{
	struct sw_gh_event ev = *evp;
	struct sw_webhook_decision dec = SW_WEBHOOK_DECISION_INIT;
	struct sw_store *st = e->d.store;
	int64_t run_id = 0;
	int polled = 0, joined = 0;

	*evp = (struct sw_gh_event)SW_GH_EVENT_INIT;   /* taken */
	if (parse_rc < 0) {
		log_warn("delivery.failed", "delivery=%lld err=%s", (long long)id, sw_q(parse_err));
		if (resolve(e, id, event, &ev, SW_DELIVERY_FAILED, parse_err) == SW_EAGAIN)
			remap_later(e, id);
		goto out;
	}
	if (sw_webhook_map(&dec, e->d.cfg, &ev) < 0) {
		char *why = sw_strdup(sw_error_last());
		if (resolve(e, id, event, &ev, SW_DELIVERY_FAILED, why) == SW_EAGAIN)
			remap_later(e, id);
		free(why);
		goto out;
	}
	if (dec.verdict != SW_WEBHOOK_RUN) {
		const char *why = dec.verdict == SW_WEBHOOK_PING ? "ping" : dec.reason;
		log_info("delivery.ignored", "delivery=%lld event=%s reason=%s", (long long)id, event,
			 sw_q(why));
		if (resolve(e, id, event, &ev, SW_DELIVERY_IGNORED, why) == SW_EAGAIN)
			remap_later(e, id);
		goto out;
	}
	{
		int own_txn = !sw_store_in_transaction(st);
		int rc = 0;
		char *why = NULL;
		/* the run and the delivery's outcome together, or neither */
		if (own_txn && sw_store_begin(st) < 0) {
			remap_later(e, id);
			goto out;
		}
		if (!strcmp(dec.kind, "push") && (run_id = head_run(e, &dec, &polled)) && polled) {
			why = sw_asprintf("commit %.12s was found by polling first: run %lld deploys it",
					  dec.commit, (long long)run_id);
		} else if (!strcmp(dec.kind, "pull_request") && (run_id = pr_head_run(e, &dec))) {
			joined = 1;
			why = sw_asprintf("run %lld already tests %.12s, the head of #%lld",
					  (long long)run_id, dec.commit, (long long)dec.pr_number);
		} else {
			rc = store_run(st, &run_id, id, &dec);
		}
		if (rc == 0)
			rc = sw_store_delivery_resolve(st, id, ev.action, ev.repo, SW_DELIVERY_MAPPED,
						       why, run_id);
		if (own_txn)
			rc = rc == 0 ? sw_store_commit(st) : (sw_store_rollback(st), rc);
		free(why);
		if (rc == SW_EAGAIN && own_txn) {
			remap_later(e, id);
			goto out;
		}
		if (rc < 0) {
			log_error("delivery.store", "delivery=%lld err=%s", (long long)id,
				  sw_q(sw_error_last()));
			goto out;
		}
	}
	if (e->d.on_delivery)
		e->d.on_delivery(event, "mapped");
	log_info("delivery.mapped", "delivery=%lld run=%lld kind=%s repo=%s commit=%.12s%s",
		 (long long)id, (long long)run_id, dec.kind, dec.repo, dec.commit,
		 polled ? " found_by=poll" : joined ? " joined=1" : "");
	if (!polled && !joined)
		queue_run(e, run_id);
out:
	sw_webhook_decision_release(&dec);
	sw_gh_event_release(&ev);
}

void sw_engine_delivery(struct sw_engine *e, int64_t id, const char *event, const char *payload,
			size_t len)
{
	struct sw_gh_event ev = SW_GH_EVENT_INIT;
	int rc = sw_webhook_parse(&ev, event, payload, len);
	char *err = rc < 0 ? sw_strdup(sw_error_last()) : NULL;
	map_delivery(e, id, event, &ev, rc, err);
	free(err);
	sw_gh_event_release(&ev);
}

/* Map again the deliveries whose outcome a locked database refused. */
static void on_remap(evutil_socket_t fd, short what, void *arg)
{
	struct sw_engine *e = arg;
	int64_t *ids = e->remap;
	size_t n = e->nremap;

	if (sw_writeq_pending(e->wq)) {   /* still locked: wait for the queue */
		struct timeval tv = { 0, REMAP_MS * 1000 };
		evtimer_add(e->remap_timer, &tv);
		return;
	}
	e->remap = NULL;
	e->nremap = 0;
	for (size_t i = 0; i < n; i++) {
		struct sw_store_delivery d;
		int rc = sw_store_delivery_get(e->d.store, ids[i], &d);
		if (rc == 0 && d.state == SW_DELIVERY_QUEUED)
			sw_engine_delivery(e, d.id, d.event, d.body.ptr, d.body.len);
		else if (rc < 0)
			log_error("delivery.load", "delivery=%lld err=%s", (long long)ids[i],
				  sw_q(sw_error_last()));
		if (rc == 0)
			sw_store_delivery_release(&d);
	}
	free(ids);
}

/*
 * Deliveries arriving in bulk: the JSON is parsed on a worker (it is most of
 * the cost of a delivery), and the outcomes of one loop turn are written in
 * one transaction, committed by commit_ev at the end of the turn.
 */
struct parse_job {
	struct sw_engine *e;
	int64_t id;
	char *event;
	struct sw_buf payload;
	struct sw_gh_event ev;
	int rc;
	char *err;
};

static void parse_work(void *arg)
{
	struct parse_job *j = arg;
	j->rc = sw_webhook_parse(&j->ev, j->event, j->payload.ptr, j->payload.len);
	if (j->rc < 0)
		j->err = sw_strdup(sw_error_last());
}

static void parse_done(void *arg)
{
	struct parse_job *j = arg;
	struct sw_engine *e = j->e;

	if (!sw_store_in_transaction(e->d.store) && sw_store_begin(e->d.store) == 0)
		event_active(e->commit_ev, EV_TIMEOUT, 0);
	map_delivery(e, j->id, j->event, &j->ev, j->rc, j->err);
	sw_gh_event_release(&j->ev);
	sw_buf_release(&j->payload);
	free(j->event);
	free(j->err);
	free(j);
}

static void on_commit(evutil_socket_t fd, short what, void *arg)
{
	struct sw_engine *e = arg;
	if (sw_store_in_transaction(e->d.store) && sw_store_commit(e->d.store) < 0)
		log_error("delivery.commit", "err=%s", sw_q(sw_error_last()));
}

void sw_engine_delivery_async(struct sw_engine *e, int64_t id, const char *event,
			      struct sw_buf *payload)
{
	struct parse_job *j = sw_calloc(1, sizeof(*j));
	j->e = e;
	j->id = id;
	j->event = sw_strdup(event);
	j->payload = *payload;
	sw_buf_init(payload);
	j->ev = (struct sw_gh_event)SW_GH_EVENT_INIT;
	if (sw_pool_submit(e->d.pool, parse_work, parse_done, j) < 0) {
		/* shutting down: the delivery stays queued for the next start */
		sw_buf_release(&j->payload);
		free(j->event);
		free(j);
	}
}

/* The poller's sw_poll_head_fn (engine-int.h says what it does). */
static int poll_head(void *arg, int64_t *run_id, const char *repo, const char *branch,
		     const char *commit, const struct sw_source_commit *info)
{
	struct sw_engine *e = arg;
	struct sw_gh_event ev = SW_GH_EVENT_INIT;
	struct sw_webhook_decision dec = SW_WEBHOOK_DECISION_INIT;
	struct sw_store_env env;
	int rc, synced = 0;

	*run_id = 0;
	/* the push delivery GitHub would have sent, through the same mapping */
	ev.kind = SW_GH_PUSH;
	ev.event = sw_strdup("push");
	ev.repo = sw_strdup(repo);
	ev.push.ref = sw_asprintf("refs/heads/%s", branch);
	ev.push.branch = sw_strdup(branch);
	ev.push.after = sw_strdup(commit);
	ev.push.head_id = sw_strdup(commit);
	if (info) {
		ev.push.head_title = info->title ? sw_strdup(info->title) : NULL;
		ev.push.head_message = info->message ? sw_strdup(info->message) : NULL;
		ev.push.head_author = info->author ? sw_strdup(info->author) : NULL;
	}
	if ((rc = sw_webhook_map(&dec, e->d.cfg, &ev)) < 0 || dec.verdict != SW_WEBHOOK_RUN ||
	    strcmp(dec.kind, "push"))
		goto out;
	if (head_run(e, &dec, NULL))   /* a webhook, an earlier poll or a sync now */
		goto out;
	if (sw_store_env_get(e->d.store, dec.environment, &env) == 0) {
		synced = env.synced_commit && !strcasecmp(env.synced_commit, commit);
		sw_store_env_release(&env);
	}
	if (synced)
		goto out;
	if ((rc = store_run(e->d.store, run_id, 0, &dec)) == 0)
		rc = queue_run(e, *run_id);
out:
	sw_webhook_decision_release(&dec);
	sw_gh_event_release(&ev);
	return rc;
}

int sw_engine_submit(struct sw_engine *e, int64_t *run_id, const char *kind, const char *repo,
		     const char *branch, const char *commit, const char *environment,
		     const char *title)
{
	struct sw_store_run_in in = { .repo = repo, .branch = branch, .commit_sha = commit,
				      .environment = environment, .pr_title = title };
	enum sw_run_kind k;
	if (sw_store_run_kind_parse(kind, &k) < 0)
		return sw_error_setc(SW_EINVALID, "unknown run kind %s", kind);
	in.kind = k;
	if (sw_store_run_create(e->d.store, run_id, &in) < 0)
		return SW_ERR;
	return queue_run(e, *run_id);
}

int sw_engine_retry(struct sw_engine *e, int64_t run_id, int64_t *new_id)
{
	struct sw_store_run old;
	int rc;
	if ((rc = sw_store_run_get(e->d.store, run_id, &old)) < 0)
		return rc;
	if (!sw_store_status_is_final(old.status)) {
		sw_store_run_release(&old);
		return sw_error_setc(SW_EINVALID, "run %lld is still %s", (long long)run_id,
				     sw_store_status_str(old.status));
	}
	struct sw_store_run_in in = {
		.delivery_id = old.delivery_id, .kind = old.kind, .repo = old.repo, .ref = old.ref,
		.branch = old.branch, .commit_sha = old.commit_sha, .pr_number = old.pr_number,
		.pr_title = old.pr_title, .author = old.author, .message = old.message,
		.environment = old.environment, .attempt = old.attempt + 1,
		.from_fork = old.from_fork,
	};
	rc = sw_store_run_create(e->d.store, new_id, &in);
	sw_store_run_release(&old);
	return rc < 0 ? rc : queue_run(e, *new_id);
}

/* --- recovery ---------------------------------------------------------------------- */

/* A failed recovery write: SW_EAGAIN (locked) aborts the run's recovery. */
#define RECOVER_TRY(call) do { int rc_ = (call); \
		if (rc_ == SW_EAGAIN) { rc = rc_; goto out; } \
		if (rc_ < 0) log_error("run.recover", "run=%lld err=%s", (long long)old->id, \
				       sw_q(sw_error_last())); } while (0)

/*
 * Recover one run that was RUNNING when the daemon stopped, inside the
 * caller's transaction: its stages, its retry (`*new_id`, 0 for none, for
 * the caller to queue once committed), its status and report. SW_EAGAIN
 * when the database is locked: the caller rolls it all back and retries.
 */
static int recover_running(struct sw_engine *e, struct sw_store_run *old, int64_t *new_id)
{
	struct sw_store *st = e->d.store;
	struct sw_store_stage_list stages = { 0 };
	char *where = NULL, *why = NULL, *v = NULL;
	char *pkey = prep_key(PREPARING_KEY_FMT, old->id);
	char *ikey = prep_key(PREP_INTERRUPTS_KEY_FMT, old->id);
	int interrupts = 0;   /* attempts that died preparing, this one included */
	int rc = 0;

	*new_id = 0;
	if (sw_store_kv_get(st, pkey, &v) == 0) {
		free(v);
		v = NULL;
		if (sw_store_kv_get(st, ikey, &v) == 0)
			interrupts = atoi(v);
		free(v);
		interrupts++;
	}
	if (sw_store_stages_list(st, old->id, &stages) == 0) {
		for (size_t i = 0; i < stages.n; i++) {
			struct sw_store_stage *s = &stages.v[i];
			if (s->status == SW_STATUS_RUNNING) {
				if (!where)
					where = sw_strdup(s->name);
				RECOVER_TRY(sw_store_stage_set_status(st, s->id, SW_STATUS_INTERRUPTED, -1,
					"slipwayd stopped or crashed while this stage ran"));
			} else if (s->status == SW_STATUS_QUEUED) {
				RECOVER_TRY(sw_store_stage_set_status(st, s->id, SW_STATUS_SKIPPED, -1,
					"the run was interrupted"));
			}
		}
	}
	if (interrupts >= MAX_PREP_INTERRUPTS) {
		/* not blindly again: what killed the daemon may be this run's
		 * input (a parser crash), and would kill every start */
		why = sw_strdup("slipwayd stopped twice while preparing this run; not retried");
		RECOVER_TRY(sw_store_run_set_status(st, old->id, SW_STATUS_ERROR, why));
		RECOVER_TRY(prep_forget_store(st, old->id));
		RECOVER_TRY(sw_notify_run(&e->d, old->id, SW_NOTICE_END));
		log_error("run.recovered", "run=%lld status=error reason=%s", (long long)old->id,
			  sw_q(why));
		goto out;
	}
	if (old->attempt < SW_ENGINE_MAX_ATTEMPTS) {
		struct sw_store_run_in in = {
			.delivery_id = old->delivery_id, .kind = old->kind, .repo = old->repo,
			.ref = old->ref, .branch = old->branch, .commit_sha = old->commit_sha,
			.pr_number = old->pr_number, .pr_title = old->pr_title, .author = old->author,
			.message = old->message, .environment = old->environment,
			.attempt = old->attempt + 1, .from_fork = old->from_fork,
		};
		RECOVER_TRY(sw_store_run_create(st, new_id, &in));
	}
	if (*new_id && interrupts) {
		char *nkey = prep_key(PREP_INTERRUPTS_KEY_FMT, *new_id), n[16];
		snprintf(n, sizeof(n), "%d", interrupts);
		rc = sw_store_kv_set(st, nkey, n);
		free(nkey);
		RECOVER_TRY(rc);
	}
	RECOVER_TRY(prep_forget_store(st, old->id));
	if (*new_id)
		why = sw_asprintf("slipwayd stopped or crashed %s%s; retried as run %lld",
				  where ? "during stage " : "while preparing", where ? where : "",
				  (long long)*new_id);
	else
		why = sw_asprintf("slipwayd stopped or crashed %s%s; not retried after %d attempts",
				  where ? "during stage " : "while preparing", where ? where : "",
				  old->attempt);
	RECOVER_TRY(sw_store_run_set_status(st, old->id, SW_STATUS_INTERRUPTED, why));
	RECOVER_TRY(sw_notify_run(&e->d, old->id, SW_NOTICE_END));
	log_warn("run.recovered", "run=%lld reason=%s", (long long)old->id, sw_q(why));
	rc = 0;
out:
	if (rc < 0)
		*new_id = 0;
	sw_store_stage_list_release(&stages);
	free(pkey);
	free(ikey);
	free(where);
	free(why);
	return rc;
}
#undef RECOVER_TRY

/*
 * The runs that were RUNNING, each recovered in one transaction. When the
 * database is locked the rest waits for a timer (storage shows it as one
 * pending write); nothing of a run's recovery is half-written.
 */
static void recover_all_running(struct sw_engine *e)
{
	struct sw_store_run_list l = { 0 };
	struct sw_store *st = e->d.store;

	e->recover_later = 0;
	if (sw_store_runs_by_status(st, SW_STATUS_RUNNING, &l) < 0)
		return;
	for (size_t i = 0; i < l.n; i++) {
		int64_t new_id = 0;
		int rc;
		if (run_find(e, l.v[i].id))   /* this process runs it */
			continue;
		if ((rc = sw_store_begin(st)) == 0) {
			rc = recover_running(e, &l.v[i], &new_id);
			rc = rc == 0 ? sw_store_commit(st) : rc;
			if (rc < 0)
				sw_store_rollback(st);
		}
		if (rc < 0) {
			struct timeval tv = { 0, REMAP_MS * 1000 };
			log_warn("run.recover_delayed", "run=%lld err=%s", (long long)l.v[i].id,
				 sw_q(sw_error_last()));
			if (!e->recover_since)
				e->recover_since = sw_now_ms();
			e->recover_later = 1;
			evtimer_add(e->recover_timer, &tv);
			break;
		}
		if (new_id)
			queue_run(e, new_id);
	}
	if (!e->recover_later)
		e->recover_since = 0;
	sw_store_run_list_release(&l);
}

static void on_recover(evutil_socket_t fd, short what, void *arg)
{
	struct sw_engine *e = arg;
	if (e->stopping)   /* they stay RUNNING in storage for the next start */
		return;
	recover_all_running(e);
}

int sw_engine_recover(struct sw_engine *e)
{
	struct sw_store_run_list l = { 0 };
	struct sw_store_delivery_list dl = { 0 };

	recover_all_running(e);
	if (sw_store_runs_by_status(e->d.store, SW_STATUS_QUEUED, &l) == 0) {
		for (size_t i = 0; i < l.n; i++)
			if (!run_find(e, l.v[i].id)) {
				log_info("run.requeued", "run=%lld", (long long)l.v[i].id);
				queue_run(e, l.v[i].id);
			}
		sw_store_run_list_release(&l);
	}
	if (sw_store_deliveries_queued(e->d.store, &dl) == 0) {
		for (size_t i = 0; i < dl.n; i++) {
			log_info("delivery.recovered", "delivery=%lld guid=%s", (long long)dl.v[i].id,
				 dl.v[i].guid);
			sw_engine_delivery(e, dl.v[i].id, dl.v[i].event, dl.v[i].body.ptr,
					   dl.v[i].body.len);
		}
		sw_store_delivery_list_release(&dl);
	}
	return 0;
}

/* --- life cycle ----------------------------------------------------------------------- */

int sw_engine_new(struct sw_engine **out, const struct sw_engine_deps *deps)
{
	struct sw_engine *e = sw_calloc(1, sizeof(*e));
	struct timeval tv = { 0, LOG_FLUSH_MS * 1000 };
	e->d = *deps;
	e->flush_timer = event_new(deps->base, -1, EV_PERSIST, on_flush_timer, e);
	e->commit_ev = event_new(deps->base, -1, 0, on_commit, e);
	sw_writeq_new(&e->wq, deps->base, deps->store);
	e->remap_timer = evtimer_new(deps->base, on_remap, e);
	e->recover_timer = evtimer_new(deps->base, on_recover, e);
	event_add(e->flush_timer, &tv);
	if (deps->tf && sw_infra_new(&e->infra, &e->d) < 0)
		log_error("infra.start", "err=%s", sw_q(sw_error_last()));
	sw_poll_new(&e->poll, &e->d, poll_head, e);
	*out = e;
	return 0;
}

void sw_engine_set_config(struct sw_engine *e, const struct sw_config *cfg)
{
	e->d.cfg = cfg;
	if (e->infra)
		sw_infra_reconfigure(e->infra);
	sw_poll_reconfigure(e->poll);
	schedule(e);
}

void sw_engine_stop(struct sw_engine *e)
{
	e->stopping = 1;
	if (e->infra)
		sw_infra_stop(e->infra);
	sw_poll_stop(e->poll);
	for (struct run *r = e->runs, *next; r; r = next) {
		next = r->next;
		if (r->phase == PH_QUEUED) {
			/* stays QUEUED in storage; the next start picks it up */
			run_unlink(r);
			run_free(r);
		} else {
			cancel_run(r, "slipwayd stopped");
		}
	}
}

int sw_engine_busy(const struct sw_engine *e)
{
	return e->runs != NULL || (e->infra && sw_infra_busy(e->infra)) || sw_poll_busy(e->poll) ||
	       sw_writeq_pending(e->wq);
}

size_t sw_engine_active(const struct sw_engine *e)
{
	size_t n = 0;
	for (struct run *r = e->runs; r; r = r->next)
		n++;
	return n;
}

void sw_engine_free(struct sw_engine *e)
{
	if (!e)
		return;
	while (e->runs) {
		struct run *r = e->runs;
		e->runs = r->next;
		run_free(r);
	}
	if (e->flush_timer)
		event_free(e->flush_timer);
	if (e->commit_ev) {
		on_commit(-1, 0, e);
		event_free(e->commit_ev);
	}
	sw_writeq_free(e->wq);
	if (e->nremap)   /* still QUEUED in storage: the next start maps them */
		log_warn("delivery.delayed", "count=%zu reason=%s", e->nremap,
			 sw_q("stopped while the database was locked; the next start maps them"));
	free(e->remap);
	if (e->remap_timer)
		event_free(e->remap_timer);
	if (e->recover_timer)
		event_free(e->recover_timer);
	sw_infra_free(e->infra);
	sw_poll_free(e->poll);
	sw_tf_free(e->d.tf);   /* owned; cancels what runs without callbacks */
	free(e);
}

void sw_engine_storage_state(const struct sw_engine *e, struct sw_storage_state *out)
{
	sw_writeq_state(e->wq, out);
	out->pending_writes += e->nremap + (size_t)e->recover_later;
	if (e->nremap && (!out->since_ms || e->remap_since < out->since_ms))
		out->since_ms = e->remap_since;
	if (e->recover_later && (!out->since_ms || e->recover_since < out->since_ms))
		out->since_ms = e->recover_since;
	if ((e->nremap || e->recover_later) && !out->error)
		out->error = "a delivery's outcome could not be written (database locked)";
}
