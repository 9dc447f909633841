/*
 * stage-deploy.c - the built-in deploy and rollback stages: a sync of the run's commit
 * through the deploy operations (deploy/deploy.h), and after a failed
 * deploy or acceptance stage a rollback to the last healthy revision.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "pipeline/run-int.h"

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
	struct wop *w = engine_wop_new(r->e, W_INFRA_OUTPUTS, r->row.id);
	w->a = sw_strdup(r->row.environment);
	w->b = txt;
	engine_wop_put(w);
}

static void deploy_done(void *ctx, int ok, const char *message)
{
	struct stage *s = ctx;
	struct run *r = s->run;

	s->busy = 0;
	r->running--;
	if (s->plan.kind == SW_PLAN_DEPLOY)
		record_infra_outputs(r);
	if (message && *message)
		engine_log_note(s, "%s", message);
	if (s->plan.kind == SW_PLAN_ROLLBACK) {
		free(r->rollback_note);
		r->rollback_note = ok ? sw_asprintf("rolled back to %.7s", r->rollback_to)
				      : sw_asprintf("rollback to %.7s failed", r->rollback_to);
	}
	if (ok)
		engine_finish_stage(s, SW_STATUS_SUCCESS, 0, NULL);
	else
		engine_finish_stage(s, SW_STATUS_FAILURE, -1, message && *message ? message : "deploy failed");
	if (s->plan.kind == SW_PLAN_ROLLBACK)
		engine_report_run(r->e, r->row.id, SW_NOTICE_ROLLBACK);
	engine_advance(r);
}

void engine_start_deploy(struct run *r, struct stage *s)
{
	const struct sw_deploy_ops *ops = r->e->d.deploy;
	int rollback = s->plan.kind == SW_PLAN_ROLLBACK;
	const char *commit = rollback ? r->rollback_to : r->row.commit_sha;
	/* a push run without a delivery is one the poller found */
	enum sw_sync_trigger trigger = rollback ? SW_TRIGGER_ROLLBACK :
		r->row.kind == SW_RUN_PUSH ? (r->row.delivery_id ? SW_TRIGGER_MERGE : SW_TRIGGER_POLL) :
		r->row.kind == SW_RUN_ROLLBACK ? SW_TRIGGER_ROLLBACK : SW_TRIGGER_MANUAL;
	char line[160];

	engine_set_stage_status(s, SW_STATUS_RUNNING, -1, NULL, 1);
	snprintf(line, sizeof(line), "%s %.12s to %s", rollback ? "rolling back to" : "deploying",
		 commit, r->row.environment);
	deploy_log(s, line);
	if (!ops || ops->deploy(ops->arg, r->row.environment, r->row.repo, commit, trigger,
				r->row.id, deploy_log, deploy_done, s) < 0) {
		const char *why = ops ? sw_error_last() : "this server does not deploy";
		engine_log_note(s, "error: %s", why);
		engine_finish_stage(s, SW_STATUS_ERROR, -1, why);
		return;
	}
	s->busy = 1;
	r->running++;
}

/*
 * After a failed deploy or acceptance stage: add a rollback stage when the
 * environment wants one and there is a healthy revision to go back to.
 * Returns 1 when a rollback stage was added.
 */
int engine_maybe_rollback(struct run *r)
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
		const char **secrets = engine_secret_values(c);
		sw_mask_init(&s->mask, secrets);
		free(secrets);
	}
	sw_buf_init(&s->logbuf);
	s->idx = (int)r->nstages;
	struct wop *w = engine_wop_new(r->e, W_STAGE_NEW, r->row.id);
	w->idx = s->idx;
	w->a = sw_strdup("rollback");
	engine_wop_put(w);
	r->nstages++;
	log_info("run.rollback", "run=%lld env=%s to=%.12s", (long long)r->row.id,
		 r->row.environment, r->rollback_to);
	engine_start_deploy(r, s);
	return 1;
}
