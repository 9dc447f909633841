/*
 * prepare.c - preparing a run on a worker thread: fetch the mirror, read
 * .slipway.yml at the commit, build the plan, plan Terraform, check out the
 * workspace; then, on the loop, the run's stages.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "git/git.h"
#include "infra/infra.h"
#include "lib/log.h"
#include "lib/pool.h"
#include "lib/strv.h"
#include "pipeline/run-int.h"

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

static void prep_forget(struct sw_engine *e, int64_t id);

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

/*
 * Scoped secrets, decided when the run is planned: a stage asking for a
 * secret it may not have ends ERROR with the reason before anything of
 * the run starts (its commit status and the PR comment say why, as for
 * any stage error), and every other stage is skipped.
 */
static void refuse_secrets(struct run *r)
{
	char *first = NULL;
	for (size_t i = 0; i < r->nstages; i++) {
		struct stage *s = &r->stages[i];
		char *why = engine_refused_secret(r, s);
		if (!why)
			continue;
		log_warn("run.secret_refused", "run=%lld stage=%s reason=%s", (long long)r->row.id,
			 s->plan.name, sw_q(why));
		engine_log_note(s, "%s", why);
		engine_finish_stage(s, SW_STATUS_ERROR, -1, why);
		free(why);
		if (!first)
			first = sw_asprintf("the run did not start: stage %s asks for a secret it may "
					    "not have", s->plan.name);
	}
	for (size_t i = 0; first && i < r->nstages; i++)
		if (r->stages[i].status == SW_STATUS_QUEUED)
			engine_set_stage_status(&r->stages[i], SW_STATUS_SKIPPED, -1, first, 1);
	free(first);
}

static void prep_done(void *arg)
{
	struct prep *p = arg;
	struct sw_engine *e = p->e;
	struct run *r = engine_run_find(e, p->run_id);

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
			engine_finish_run(r);
			return;
		}
		engine_set_run_status(r, SW_STATUS_ERROR, p->error, SW_NOTICE_END);
		prep_free(p);
		engine_drop_run(r);
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
	const char **secrets = engine_secret_values(e->d.cfg);
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
		struct wop *w = engine_wop_new(e, W_STAGE_NEW, r->row.id);
		w->idx = s->idx;
		w->a = sw_strdup(s->plan.name);
		w->b = s->plan.image ? sw_strdup(s->plan.image) : NULL;
		w->report_stage = 1;   /* pending */
		engine_wop_put(w);
	}
	free(secrets);
	if (!r->cancelled)
		refuse_secrets(r);
	if (!r->nstages) {
		const char *why = p->plan.no_spec ? "no .slipway.yml at this commit: nothing to run"
						  : "no stage runs for this event";
		free(r->row.reason);
		r->row.reason = sw_strdup(why);
		struct wop *w = engine_wop_new(e, W_RUN, r->row.id);
		w->status = SW_STATUS_RUNNING;
		w->a = sw_strdup(why);
		engine_wop_put(w);
	}
	prep_free(p);
	engine_advance(r);
}

/* The preparation of run `id` is over (or never started): drop its markers. */
int engine_prep_forget_store(struct sw_store *st, int64_t id)
{
	const char *fmts[] = { PREPARING_KEY_FMT, PREP_INTERRUPTS_KEY_FMT };
	int rc = 0;
	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]) && rc == 0; i++) {
		char *key = engine_prep_key(fmts[i], id);
		rc = sw_store_kv_delete(st, key);
		free(key);
	}
	return rc;
}

static void prep_forget(struct sw_engine *e, int64_t id)
{
	engine_wop_put(engine_wop_new(e, W_FORGET, id));
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
	struct run *r = engine_run_find(e, p->run_id);

	if (!r) {       /* cannot happen: a preparing run stays in the list */
		prep_free(p);
		return;
	}
	if (sw_pool_submit(e->d.pool, prep_work, prep_done, p) < 0) {
		engine_set_run_status(r, SW_STATUS_ERROR, sw_error_last(), SW_NOTICE_END);
		prep_forget(e, r->row.id);
		prep_free(p);
		engine_run_unlink(r);
		engine_run_free(r);
	}
}

void engine_start_prepare(struct run *r)
{
	struct sw_engine *e = r->e;
	const struct sw_config *c = e->d.cfg;
	const struct sw_cfg_repo *repo = sw_config_repo(c, r->row.repo);
	struct prep *p;

	r->phase = PH_PREPARING;
	if (!repo) {
		char *why = sw_asprintf("repository %s is no longer configured", r->row.repo);
		engine_set_run_status(r, SW_STATUS_RUNNING, NULL, SW_NOTICE_START);
		engine_set_run_status(r, SW_STATUS_ERROR, why, SW_NOTICE_END);
		free(why);
		engine_run_unlink(r);
		engine_run_free(r);
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
	p->ctx.event = sw_strdup(engine_event_name(&r->row));
	p->ctx.branch = sw_strdup(r->row.kind == SW_RUN_PULL_REQUEST && r->row.ref ?
				  r->row.ref : (r->row.branch ? r->row.branch : ""));
	p->ctx.environment = r->row.environment ? sw_strdup(r->row.environment) : NULL;
	p->ctx.require_image = !strcmp(c->runner_backend, "docker");
	const struct sw_cfg_env *cenv = r->row.environment ? sw_config_env(c, r->row.environment) : NULL;
	int infra = cenv && cenv->infra.nmodules && e->d.tf && r->row.kind != SW_RUN_PULL_REQUEST &&
		    r->row.kind != SW_RUN_ROLLBACK;
	if (cenv && ((sw_cfg_env_has_cluster(cenv) && e->d.deploy) || infra) && r->row.kind != SW_RUN_PULL_REQUEST) {
		p->ctx.deploy = 1;
		p->ctx.pre_event = r->row.kind == SW_RUN_PUSH ? "push" : NULL;
		p->ctx.no_acceptance = r->row.kind == SW_RUN_ROLLBACK;
		if (infra) {
			p->apply_modules = sw_strv_dupn((const char *const *)cenv->infra.modules, cenv->infra.nmodules);
			p->ctx.infra_modules = (const char *const *)p->apply_modules;
		}
		p->ctx.no_deploy_stage = !(sw_cfg_env_has_cluster(cenv) && e->d.deploy);
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
	p->secret_names = sw_config_secret_names(c);
	{
		char *ws_root = sw_asprintf("%s/workspaces", c->data_dir);
		mkdir(ws_root, 0700);
		free(ws_root);
	}
	/* RUNNING with the preparation marker, durably, before the work
	 * starts: a crash from then on is one while preparing (see
	 * recover_running) */
	struct wop *w = engine_run_op(r, SW_STATUS_RUNNING, NULL, SW_NOTICE_START);
	w->mark_preparing = 1;
	w->then = prep_submit;
	w->then_arg = p;
	w->then_free = prep_free_arg;
	engine_wop_put(w);
}
