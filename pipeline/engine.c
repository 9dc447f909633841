/*
 * engine.c - runs and stages as state machines on the loop (see pipeline.h).
 *
 * In memory the engine keeps only what is active: one struct run per queued,
 * preparing or running run, each with its stages. Storage is written before
 * anything is reported, and is what recovery reads after a crash.
 *
 * This file is the state machine: writes, the run list, finishing,
 * container stages, advancing, scheduling, cancelling and the life cycle.
 * Runs arrive through intake.c, are prepared by prepare.c, and run the
 * built-in stages of stage-deploy.c and stage-tf.c (what they share:
 * run-int.h).
 */
#include <jansson.h>
#include <event2/event.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "git/git.h"
#include "infra/infra.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/pool.h"
#include "lib/strv.h"
#include "pipeline/run-int.h"
#include "runners/runner.h"


/* --- small helpers -------------------------------------------------------- */

char *engine_lower(const char *s)
{
	char *c = sw_strdup(s ? s : "");
	for (char *p = c; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return c;
}

/* Runs with the same key engine_supersede each other. */
static char *run_key(const struct sw_store_run *row)
{
	char *repo = engine_lower(row->repo), *k;
	if (row->kind == SW_RUN_PULL_REQUEST)
		k = sw_asprintf("pr:%s#%lld", repo, (long long)row->pr_number);
	else if (row->environment)
		k = sw_asprintf("push:%s:%s", repo, row->environment);
	else
		k = sw_asprintf("branch:%s:%s", repo, row->branch ? row->branch : "");
	free(repo);
	return k;
}

const char *engine_event_name(const struct sw_store_run *row)
{
	switch (row->kind) {
	case SW_RUN_PULL_REQUEST: return "pull_request";
	case SW_RUN_PUSH: return "push";
	default: return "deploy";
	}
}


char *engine_prep_key(const char *fmt, int64_t run_id)
{
	return sw_asprintf(fmt, (long long)run_id);
}

/* --- writes (the queue and struct wop: run-int.h) --------------------------- */
static const char *const wkind_names[] = { "run", "stage_new", "stage", "log", "superseded",
	"kv", "env_infra", "infra_outputs", "forget", "report" };


struct wop *engine_wop_new(struct sw_engine *e, enum wkind kind, int64_t run_id)
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

/*
 * A deploy went through: the runs of the environments that follow it, at
 * the same commit, in the transaction of its status (nothing is lost to a
 * crash in between).
 */
static int promote(struct sw_store *st, struct wop *w)
{
	struct sw_store_run row;
	int rc = sw_store_run_get(st, w->run_id, &row);
	size_t n = 0;
	if (rc < 0)
		return rc;
	while (w->promote[n])
		n++;
	free(w->promoted);      /* a retried batch makes them again */
	w->promoted = sw_calloc(n + 1, sizeof(*w->promoted));
	w->npromoted = 0;
	char *ref = sw_asprintf("refs/heads/%s", row.branch ? row.branch : "");
	char *title = sw_asprintf("%s (after %s)", row.pr_title ? row.pr_title : row.commit_sha,
				  row.environment);
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct sw_store_run_in in = { .kind = SW_RUN_PUSH, .repo = row.repo,
			.branch = row.branch, .ref = ref, .commit_sha = row.commit_sha,
			.pr_title = title, .author = row.author, .message = row.message,
			.environment = w->promote[i] };
		if ((rc = sw_store_run_create(st, &w->promoted[w->npromoted], &in)) == 0)
			w->npromoted++;
	}
	free(title);
	free(ref);
	sw_store_run_release(&row);
	return rc;
}

static int wop_apply(struct sw_store *st, void *arg)
{
	struct wop *w = arg;
	int64_t id = 0;
	int rc = 0;

	switch (w->kind) {
	case W_RUN:
		rc = sw_store_run_set_status_at(st, w->run_id, w->status, w->a, w->at);
		if (rc == 0 && w->promote)
			rc = promote(st, w);
		if (rc == 0 && w->mark_preparing) {
			char *key = engine_prep_key(PREPARING_KEY_FMT, w->run_id);
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
		rc = engine_prep_forget_store(st, w->run_id);
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
	for (size_t i = 0; i < w->npromoted; i++) {
		log_info("run.promoted", "run=%lld after=%lld environment=%s", (long long)w->promoted[i],
			 (long long)w->run_id, w->promote[i]);
		engine_queue_run(w->e, w->promoted[i]);
	}
	w->npromoted = 0;
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
	sw_strv_free(w->promote);
	free(w->promoted);
	sw_buf_release(&w->data);
	free(w);
}

/* Write `w` now, or as soon as storage takes it; takes `w`. */
void engine_wop_put(struct wop *w)
{
	struct sw_write wr = { wop_apply, wop_done, wop_release, w };
	sw_writeq_put(w->e->wq, &wr);
}

/* Report, in order with the writes before it. */
void engine_report_run(struct sw_engine *e, int64_t run_id, enum sw_notice n)
{
	struct wop *w = engine_wop_new(e, W_REPORT, run_id);
	w->notice = (int)n;
	engine_wop_put(w);
}

void engine_put_kv(struct sw_engine *e, int64_t run_id, const char *key, const char *value)
{
	struct wop *w = engine_wop_new(e, W_KV, run_id);
	w->a = sw_strdup(key);
	w->b = sw_strdup(value ? value : "");
	engine_wop_put(w);
}

/*
 * The run's new status in memory now, and its write (reporting `notice`
 * afterwards, -1 for none) for the caller to complete and engine_wop_put().
 */
struct wop *engine_run_op(struct run *r, enum sw_status st, const char *reason, int notice)
{
	struct wop *w = engine_wop_new(r->e, W_RUN, r->row.id);
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

void engine_set_run_status(struct run *r, enum sw_status st, const char *reason, int notice)
{
	engine_wop_put(engine_run_op(r, st, reason, notice));
}

/* The stage's new status, written with its commit status when `report`. */
void engine_set_stage_status(struct stage *s, enum sw_status st, int exit_code, const char *reason,
			     int report)
{
	struct wop *w = engine_wop_new(s->run->e, W_STAGE, s->run->row.id);
	w->idx = s->idx;
	w->status = st;
	w->exit_code = exit_code;
	w->a = reason ? sw_strdup(reason) : NULL;
	w->report_stage = report;
	engine_wop_put(w);
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
	struct wop *w = engine_wop_new(s->run->e, W_LOG, s->run->row.id);
	w->idx = s->idx;
	w->data = s->logbuf;
	sw_buf_init(&s->logbuf);
	engine_wop_put(w);
}

/* A stage ends: the rest of its log, then its status with its commit status. */
void engine_finish_stage(struct stage *s, enum sw_status st, int exit_code, const char *reason)
{
	flush_log(s, 1);
	engine_set_stage_status(s, st, exit_code, reason, 1);
}

/* Text slipway itself adds to a stage's log (errors, time-outs). */
void engine_log_note(struct stage *s, const char *fmt, const char *arg)
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
			if (r->stages[i].busy)
				flush_log(&r->stages[i], 0);
}

/* The secret values to mask in every log: all the server knows, every
 * environment's own secrets too. */
const char **engine_secret_values(const struct sw_config *c)
{
	size_t n = 0, cap = c->nsecrets + c->nrepos + 8;
	for (size_t i = 0; i < c->nenvs; i++)
		cap += c->envs[i].nsecrets;
	const char **v = sw_calloc(cap, sizeof(*v));
	const struct sw_secret *fixed[] = { &c->webhook_secret, &c->github_token, &c->api_token,
		&c->github_app.private_key, &c->oauth_client_secret,
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
	for (size_t i = 0; i < c->nenvs; i++)
		for (size_t j = 0; j < c->envs[i].nsecrets; j++)
			if (c->envs[i].secrets[j].secret.value)
				v[n++] = c->envs[i].secrets[j].secret.value;
	v[n] = NULL;
	return v;
}

/* The config's event bits are the spec's, so a stage's event passes as is. */
_Static_assert((unsigned)SW_SECRET_EV_PULL_REQUEST == (unsigned)SW_SPEC_PULL_REQUEST &&
	       (unsigned)SW_SECRET_EV_PUSH == (unsigned)SW_SPEC_PUSH &&
	       (unsigned)SW_SECRET_EV_DEPLOY == (unsigned)SW_SPEC_DEPLOY,
	       "secret events are spec events");

void engine_secret_ask(const struct run *r, const struct stage *s, struct sw_secret_ask *a)
{
	const struct sw_config *c = r->e->d.cfg;
	const struct sw_store_run *row = &r->row;

	memset(a, 0, sizeof(*a));
	a->repo = row->repo;
	a->from_fork = row->from_fork;
	if (row->kind == SW_RUN_PULL_REQUEST) {
		/* the base branch: a PR's author names its head (it could be `main`);
		 * the environment the base deploys to, if any */
		const struct sw_cfg_env *env = row->ref && row->repo ?
			sw_config_env_for_branch(c, row->repo, row->ref) : NULL;
		a->event = SW_SECRET_EV_PULL_REQUEST;
		a->branch = row->ref;
		a->environment = env ? env->name : NULL;
		return;
	}
	a->event = s->plan.event ? s->plan.event : sw_spec_event_parse(engine_event_name(row));
	a->branch = row->branch;
	a->environment = row->environment;
}

char *engine_refused_secret(const struct run *r, const struct stage *s)
{
	for (size_t i = 0; s->plan.kind == SW_PLAN_CONTAINER && i < s->plan.nsecrets; i++) {
		struct sw_secret_ask ask;
		const char *v;
		enum sw_secret_verdict verdict;
		engine_secret_ask(r, s, &ask);
		verdict = sw_config_secret_scope(r->e->d.cfg, s->plan.secrets[i], &ask, &v);
		if (verdict != SW_SECRET_GIVEN)
			return sw_config_secret_why(verdict, s->plan.secrets[i], &ask);
	}
	return NULL;
}

/* --- the run list -------------------------------------------------------- */

static void drop_kubeconfig(struct stage *s);

void engine_run_free(struct run *r)
{
	for (size_t i = 0; i < r->nstages; i++) {
		struct stage *s = &r->stages[i];
		drop_kubeconfig(s);
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

void engine_run_unlink(struct run *r)
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

struct run *engine_run_find(struct sw_engine *e, int64_t id)
{
	for (struct run *r = e->runs; r; r = r->next)
		if (r->row.id == id)
			return r;
	return NULL;
}

/* Load a run from storage into memory as QUEUED. */
struct run *engine_run_load(struct sw_engine *e, int64_t id)
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
void engine_drop_run(struct run *r)
{
	struct sw_engine *e = r->e;
	if (r->workspace && sw_pool_submit(e->d.pool, cleanup_work, cleanup_done, r->workspace) == 0)
		r->workspace = NULL;
	else if (r->workspace)
		sw_workspace_remove(r->workspace);
	engine_run_unlink(r);
	engine_run_free(r);
	engine_schedule(e);
}

/* The environments whose deploy follows this run's (NULL-terminated, or NULL). */
static char **followers(const struct sw_config *c, const struct run *r)
{
	const struct sw_cfg_env *env = r->row.environment ? sw_config_env(c, r->row.environment)
		: NULL;
	char **v = NULL;
	size_t n = 0;
	if (!env || (r->row.kind != SW_RUN_PUSH && r->row.kind != SW_RUN_DEPLOY))
		return NULL;
	for (size_t i = 0; i < c->nenvs; i++) {
		if (sw_config_env_before(c, &c->envs[i]) != env)
			continue;
		v = sw_realloc(v, (n + 2) * sizeof(*v));
		v[n++] = sw_strdup(c->envs[i].name);
		v[n] = NULL;
	}
	return v;
}

void engine_finish_run(struct run *r)
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
		struct wop *w = engine_run_op(r, st, reason, SW_NOTICE_END);
		if (st == SW_STATUS_SUCCESS)
			w->promote = followers(e->d.cfg, r);
		engine_wop_put(w);
	}
	engine_drop_run(r);
}

/* --- stages ---------------------------------------------------------------- */

void engine_step_output(int stream, const char *p, size_t n, void *arg)
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
	s->busy = 0;
	r->running--;
	drop_kubeconfig(s);
	switch (res->outcome) {
	case SW_STEP_EXITED:
		if (res->exit_code == 0) {
			engine_finish_stage(s, SW_STATUS_SUCCESS, 0, NULL);
		} else {
			snprintf(why, sizeof(why), "exit code %d", res->exit_code);
			engine_finish_stage(s, SW_STATUS_FAILURE, res->exit_code, why);
		}
		break;
	case SW_STEP_TIMED_OUT:
		snprintf(why, sizeof(why), "timed out after %lds, killed", s->plan.timeout_ms / 1000);
		engine_log_note(s, "%s", why);
		engine_finish_stage(s, SW_STATUS_FAILURE, res->exit_code, why);
		break;
	case SW_STEP_CANCELLED:
		if (r->e->stopping && r->cancel_reason && !strcmp(r->cancel_reason, "slipwayd stopped")) {
			engine_log_note(s, "%s", "interrupted: slipwayd stopped");
			engine_finish_stage(s, SW_STATUS_INTERRUPTED, res->exit_code, "slipwayd stopped");
		} else {
			engine_log_note(s, "cancelled: %s", r->cancel_reason ? r->cancel_reason : "cancelled");
			engine_finish_stage(s, SW_STATUS_CANCELLED, res->exit_code, r->cancel_reason);
		}
		break;
	case SW_STEP_ERROR:
		engine_log_note(s, "error: %s", res->error_msg);
		engine_finish_stage(s, SW_STATUS_ERROR, -1, res->error_msg);
		break;
	}
	engine_advance(r);
}

/* The stage's kubeconfig file goes when the stage does. */
static void drop_kubeconfig(struct stage *s)
{
	if (!s->kubeconfig)
		return;
	if (unlink(s->kubeconfig) < 0 && errno != ENOENT)
		log_warn("stage.kubeconfig_left", "run=%lld stage=%s err=%s", (long long)s->run->row.id,
			 s->plan.name, sw_q(strerror(errno)));
	free(s->kubeconfig);
	s->kubeconfig = NULL;
}

/*
 * environments[].acceptance.cluster_access: an acceptance stage (selected
 * for the deploy event) of a run of that environment, never a pull
 * request's, gets a kubeconfig of that environment's cluster alone,
 * written 0600 into the run's workspace for the stage and removed when it
 * ends; the credential in it joins the stage's mask. Returns
 * "KUBECONFIG=PATH" (the path as the stage sees it), NULL when the stage
 * has no grant; *why when it has one that cannot be honoured.
 */
static char *stage_kubeconfig(struct run *r, struct stage *s, char **why)
{
	const struct sw_config *c = r->e->d.cfg;
	const struct sw_deploy_ops *ops = r->e->d.deploy;
	const struct sw_cfg_env *env = r->row.environment ? sw_config_env(c, r->row.environment) : NULL;
	struct sw_buf text = SW_BUF_INIT;
	char **creds = NULL, *dir = NULL, *var = NULL;
	int fd = -1;

	*why = NULL;
	if (!env || !env->acceptance_cluster_access || r->row.kind == SW_RUN_PULL_REQUEST ||
	    s->plan.event != SW_SPEC_DEPLOY || !r->workspace)
		return NULL;
	if (!ops || !ops->stage_kubeconfig) {
		*why = sw_asprintf("cluster access: environment %s has no cluster here", env->name);
		return NULL;
	}
	if (ops->stage_kubeconfig(ops->arg, env->name, &text, &creds) < 0) {
		*why = sw_asprintf("cluster access: %s", sw_error_last());
		goto done;
	}
	dir = sw_asprintf("%s/.slipway", r->workspace);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		*why = sw_asprintf("cluster access: %s: %s", dir, strerror(errno));
		goto done;
	}
	s->kubeconfig = sw_asprintf("%s/kubeconfig-%d", dir, s->idx);
	unlink(s->kubeconfig);
	fd = open(s->kubeconfig, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text.ptr, text.len) != (ssize_t)text.len || close(fd) < 0) {
		*why = sw_asprintf("cluster access: %s: %s", s->kubeconfig, strerror(errno));
		if (fd >= 0)
			close(fd);
		drop_kubeconfig(s);
		goto done;
	}
	{   /* what the credential looks like in a log is masked too */
		const char **known = engine_secret_values(c);
		size_t nk = sw_strv_len(known), nc = sw_strv_len((const char *const *)creds);
		const char **all = sw_calloc(nk + nc + 1, sizeof(char *));
		memcpy(all, known, nk * sizeof(char *));
		memcpy(all + nk, creds, nc * sizeof(char *));
		sw_mask_release(&s->mask);
		sw_mask_init(&s->mask, all);
		free(all);
		free(known);
	}
	if (!strcmp(c->runner_backend, "docker"))   /* the workspace is /workspace there */
		var = sw_asprintf("KUBECONFIG=/workspace/.slipway/kubeconfig-%d", s->idx);
	else
		var = sw_asprintf("KUBECONFIG=%s", s->kubeconfig);
	log_info("stage.cluster_access", "run=%lld stage=%s env=%s", (long long)r->row.id,
		 s->plan.name, env->name);
done:
	if (text.ptr)
		memset(text.ptr, 0, text.len);
	sw_buf_release(&text);
	sw_strv_free_wipe(creds);
	free(dir);
	return var;
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
	env[n++] = sw_asprintf("SLIPWAY_EVENT=%s", engine_event_name(row));
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
	/* the second guard: the run's plan was checked (engine_refused_secret),
	 * but a reload may have narrowed a scope since */
	if ((*missing = engine_refused_secret(r, s)))
		goto done;
	for (size_t i = 0; i < s->plan.nsecrets; i++) {
		struct sw_secret_ask ask;
		const char *v;
		engine_secret_ask(r, s, &ask);
		sw_config_secret_scope(c, s->plan.secrets[i], &ask, &v);
		env[n++] = sw_asprintf("%s=%s", s->plan.secrets[i], v);
	}
	char *kc = stage_kubeconfig(r, s, missing);
	if (kc)
		env[n++] = kc;
done:
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
		engine_start_tf(r, s);
		return;
	}
	if (s->plan.kind != SW_PLAN_CONTAINER) {
		engine_start_deploy(r, s);
		return;
	}
	const struct sw_config *c = r->e->d.cfg;
	struct sw_runner_spec spec = SW_RUNNER_SPEC_INIT;
	char *missing, label[96];
	char **env = stage_env(r, s, &missing);

	engine_set_stage_status(s, SW_STATUS_RUNNING, -1, NULL, 1);
	if (missing) {
		engine_log_note(s, "%s", missing);
		engine_finish_stage(s, SW_STATUS_ERROR, -1, missing);
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
	spec.on_output = engine_step_output;
	spec.on_done = step_done;
	spec.arg = s;
	if (sw_runner_start(r->e->d.runner, &spec, &s->step) < 0) {
		char *why = sw_strdup(sw_error_last());
		drop_kubeconfig(s);
		engine_log_note(s, "error: %s", why);
		engine_finish_stage(s, SW_STATUS_ERROR, -1, why);
		free(why);
	} else {
		s->busy = 1;
		r->running++;
	}
	sw_strv_free_wipe(env);
}

/* Start what can start; finish the run when nothing is left. */
void engine_advance(struct run *r)
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
				engine_set_stage_status(s, SW_STATUS_SKIPPED, -1, r->cancel_reason, 0);
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
				engine_set_stage_status(s, SW_STATUS_SKIPPED, -1, why, 1);
				free(why);
				progressed = 1;
			} else if (ready) {
				start_stage(r, s);
				progressed = 1;
			}
		}
	} while (progressed);
	if (r->running == 0 && engine_maybe_rollback(r) && r->running > 0)
		return;
	if (r->running == 0)
		engine_finish_run(r);
	else
		engine_report_run(r->e, r->row.id, SW_NOTICE_PROGRESS);
}

void engine_schedule(struct sw_engine *e)
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
			engine_start_prepare(r);
			active++;
		}
		r = next;
	}
}

/* --- cancel and engine_supersede ---------------------------------------------------- */

static int cancel_run(struct run *r, const char *reason)
{
	if (r->cancelled)
		return 0;
	r->cancelled = 1;
	r->cancel_reason = sw_strdup(reason);
	log_info("run.cancel", "run=%lld reason=%s", (long long)r->row.id, sw_q(reason));
	switch (r->phase) {
	case PH_QUEUED:
		engine_set_run_status(r, SW_STATUS_CANCELLED, reason, SW_NOTICE_END);
		engine_run_unlink(r);
		engine_run_free(r);
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
			engine_advance(r);
		break;
	}
	return 0;
}

void engine_supersede(struct sw_engine *e, struct run *newer)
{
	for (struct run *r = e->runs, *next; r; r = next) {
		next = r->next;
		if (r == newer || r->row.id > newer->row.id || strcmp(r->key, newer->key))
			continue;
		char *why = sw_asprintf("superseded by run %lld (commit %.7s)",
					(long long)newer->row.id, newer->row.commit_sha);
		struct wop *w = engine_wop_new(e, W_SUPERSEDED, r->row.id);
		w->other = newer->row.id;
		engine_wop_put(w);
		cancel_run(r, why);
		free(why);
	}
}

int sw_engine_cancel(struct sw_engine *e, int64_t run_id, const char *reason)
{
	struct run *r = engine_run_find(e, run_id);
	if (!r)
		return sw_error_setc(SW_ENOTFOUND, "run %lld is not queued or running", (long long)run_id);
	cancel_run(r, reason ? reason : "cancelled");
	return 0;
}

/* --- life cycle ----------------------------------------------------------------------- */

/* The pricer for cfg's aws: settings: made, kept, or replaced. */
static void pricer_config(struct sw_engine *e, const struct sw_config *cfg)
{
	const struct sw_cfg_aws *a = &cfg->aws;
	char *sig = sw_asprintf("%s|%s|%s", a->region ? a->region : "",
				a->profile ? a->profile : "", a->role_arn ? a->role_arn : "");
	int want = a->pricing && e->d.tf;

	if (e->pricer && (!want || strcmp(sig, e->pricer_sig))) {
		e->retired = sw_realloc(e->retired, (e->nretired + 1) * sizeof(*e->retired));
		e->retired[e->nretired++] = e->pricer;
		e->pricer = NULL;
	}
	if (want && !e->pricer) {
		sw_tf_pricer_new(&e->pricer, a, cfg->data_dir);
		log_info("cost.pricing", "region=%s", sw_tf_pricer_region(e->pricer));
	}
	free(e->pricer_sig);
	e->pricer_sig = sig;
}

int sw_engine_new(struct sw_engine **out, const struct sw_engine_deps *deps)
{
	struct sw_engine *e = sw_calloc(1, sizeof(*e));
	struct timeval tv = { 0, LOG_FLUSH_MS * 1000 };
	e->d = *deps;
	e->flush_timer = event_new(deps->base, -1, EV_PERSIST, on_flush_timer, e);
	sw_writeq_new(&e->wq, deps->base, deps->store);
	engine_intake_new(e);
	event_add(e->flush_timer, &tv);
	if (deps->tf) {
		struct sw_infra_opts io = { deps->base, deps->pool, deps->store, deps->outbox,
					    deps->cfg, deps->tf };
		if (sw_infra_new(&e->infra, &io) < 0)
			log_error("infra.start", "err=%s", sw_q(sw_error_last()));
	}
	pricer_config(e, deps->cfg);
	*out = e;
	return 0;
}

void sw_engine_set_config(struct sw_engine *e, const struct sw_config *cfg)
{
	e->d.cfg = cfg;
	if (e->infra)
		sw_infra_reconfigure(e->infra, cfg);
	pricer_config(e, cfg);
	sw_poll_reconfigure(e->poll);
	engine_schedule(e);
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
			engine_run_unlink(r);
			engine_run_free(r);
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
		engine_run_free(r);
	}
	if (e->flush_timer)
		event_free(e->flush_timer);
	engine_intake_flush(e);
	sw_writeq_free(e->wq);
	engine_intake_free(e);
	sw_infra_free(e->infra);
	sw_tf_free(e->d.tf);   /* owned; cancels what runs without callbacks */
	sw_tf_pricer_free(e->pricer);
	for (size_t i = 0; i < e->nretired; i++)
		sw_tf_pricer_free(e->retired[i]);
	free(e->retired);
	free(e->pricer_sig);
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

