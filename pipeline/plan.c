/*
 * plan.c - from .slipway.yml to the list of stages a run executes
 * (pipeline/pipeline.h parses and selects; this copies what the engine needs
 * into owned strings, so the spec can go with the worker that parsed it).
 */
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/strv.h"
#include "pipeline/engine-int.h"
#include "pipeline/pipeline.h"

static size_t find_stage(const struct sw_plan *p, const char *name)
{
	for (size_t i = 0; i < p->nstages; i++)
		if (!strcmp(p->stages[i].name, name))
			return i;
	return (size_t)-1;
}

/*
 * Append the stages `sctx` selects; each also depends on `extra` (when
 * set). A stage already in the plan (selected by an earlier event of the
 * same run: a stage without `when` runs for every event) is not added
 * again; stages depending on it depend on the one already there.
 */
static int add_selected(struct sw_plan *out, const struct sw_spec *spec,
			const struct sw_spec_ctx *sctx, const size_t *extra)
{
	struct sw_spec_plan *sel = NULL;
	size_t *at;
	int rc;

	if ((rc = sw_spec_select(&sel, spec, sctx)) < 0)
		return rc;
	at = sw_calloc(sel->n + 1, sizeof(size_t));
	out->stages = sw_realloc(out->stages, (out->nstages + sel->n + 1) * sizeof(*out->stages));
	for (size_t i = 0; i < sel->n; i++) {
		const struct sw_spec_stage *st = sel->stages[i].stage;
		if ((at[i] = find_stage(out, st->name)) != (size_t)-1)
			continue;
		at[i] = out->nstages;
		struct sw_plan_stage *ps = &out->stages[out->nstages++];
		memset(ps, 0, sizeof(*ps));
		ps->kind = SW_PLAN_CONTAINER;
		ps->name = sw_strdup(st->name);
		ps->image = st->image ? sw_strdup(st->image) : NULL;
		ps->commands = sw_strv_dupn((const char *const *)st->commands, st->ncommands);
		ps->nenv = st->nenv;
		ps->env = sw_calloc(st->nenv + 1, sizeof(char *));
		for (size_t k = 0; k < st->nenv; k++)
			ps->env[k] = sw_asprintf("%s=%s", st->env[k].name, st->env[k].value);
		ps->nsecrets = st->nsecrets;
		ps->secrets = sw_strv_dupn((const char *const *)st->secrets, st->nsecrets);
		ps->timeout_ms = (long)st->timeout_s * 1000;
		ps->event = sctx->event;
		ps->deps = sw_calloc(sel->stages[i].ndeps + 2, sizeof(size_t));
		for (size_t d = 0; d < sel->stages[i].ndeps; d++)
			ps->deps[ps->ndeps++] = at[sel->stages[i].deps[d]];
		if (extra)
			ps->deps[ps->ndeps++] = *extra;
		ps->exit_code = -1;
	}
	free(at);
	sw_spec_plan_free(sel);
	return 0;
}

struct sw_plan_stage *sw_plan_add_builtin(struct sw_plan *p, enum sw_plan_kind kind,
					  const char *name)
{
	struct sw_plan_stage *ps;
	p->stages = sw_realloc(p->stages, (p->nstages + 1) * sizeof(*p->stages));
	ps = &p->stages[p->nstages];
	memset(ps, 0, sizeof(*ps));
	ps->kind = kind;
	ps->name = sw_strdup(name);
	ps->commands = sw_calloc(1, sizeof(char *));
	ps->env = sw_calloc(1, sizeof(char *));
	ps->secrets = sw_calloc(1, sizeof(char *));
	ps->deps = sw_calloc(p->nstages + 1, sizeof(size_t));
	for (size_t i = 0; i < p->nstages; i++)
		ps->deps[ps->ndeps++] = i;
	ps->exit_code = -1;
	p->nstages++;
	return ps;
}

struct sw_plan_stage *sw_plan_add_tf(struct sw_plan *p, enum sw_plan_kind kind, const char *name,
				     const char *env, const char *const *modules, size_t n,
				     int after_all)
{
	struct sw_plan_stage *ps = sw_plan_add_builtin(p, kind, name);
	if (!after_all)
		ps->ndeps = 0;
	ps->tf_env = sw_strdup(env);
	ps->tf_modules = sw_strv_dupn(modules, n);
	return ps;
}

int sw_plan_build(struct sw_plan *out, const char *file, const char *data, size_t len,
		  const struct sw_plan_ctx *ctx, const char *const *secret_names)
{
	struct sw_spec_check chk = { 0 };
	struct sw_spec_ctx sctx = { 0 };
	struct sw_spec *spec = NULL;
	size_t nsecrets = 0, deploy_idx;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	for (const char *const *s = secret_names; s && *s; s++)
		nsecrets++;
	chk.secrets = secret_names;
	chk.nsecrets = nsecrets;
	chk.require_image = ctx->require_image;
	if (!data)
		out->no_spec = 1;
	else if ((rc = sw_spec_parse(&spec, file, data, len, &chk)) < 0)
		return rc;
	sctx.branch = ctx->branch;
	sctx.environment = ctx->environment;
	if (!ctx->deploy) {
		sctx.event = sw_spec_event_parse(ctx->event);
		if (spec)
			rc = add_selected(out, spec, &sctx, NULL);
		goto done;
	}
	/* checks, deploy, acceptance */
	if (spec && ctx->pre_event) {
		sctx.event = sw_spec_event_parse(ctx->pre_event);
		if ((rc = add_selected(out, spec, &sctx, NULL)) < 0)
			goto done;
	}
	if (ctx->infra_modules && ctx->infra_modules[0]) {
		size_t n = 0;
		while (ctx->infra_modules[n])
			n++;
		sw_plan_add_tf(out, SW_PLAN_TF_APPLY, "infra", ctx->environment, ctx->infra_modules, n, 1);
	}
	deploy_idx = out->nstages;
	if (!ctx->no_deploy_stage)
		sw_plan_add_builtin(out, SW_PLAN_DEPLOY, "deploy");
	else if (deploy_idx > 0)
		deploy_idx--;    /* acceptance follows the infra stage */
	if (!out->nstages) {   /* nothing deploys: no acceptance either */
		sw_spec_free(spec);
		return 0;
	}
	if (spec && !ctx->no_acceptance) {
		sctx.event = SW_SPEC_DEPLOY;
		rc = add_selected(out, spec, &sctx, &deploy_idx);
	}
done:
	sw_spec_free(spec);
	if (rc < 0)
		sw_plan_release(out);
	return rc;
}

void sw_plan_stage_release(struct sw_plan_stage *s)
{
	free(s->name);
	free(s->image);
	sw_strv_free(s->commands);
	sw_strv_free(s->env);
	sw_strv_free(s->secrets);
	free(s->deps);
	free(s->tf_env);
	sw_strv_free(s->tf_modules);
	memset(s, 0, sizeof(*s));
}

void sw_plan_release(struct sw_plan *p)
{
	for (size_t i = 0; i < p->nstages; i++)
		sw_plan_stage_release(&p->stages[i]);
	free(p->stages);
	memset(p, 0, sizeof(*p));
}
