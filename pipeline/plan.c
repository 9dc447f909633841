/*
 * plan.c - from .slipway.yml to the list of stages a run executes
 * (pipeline/spec.h parses and selects; this copies what the engine needs
 * into owned strings, so the spec can go with the worker that parsed it).
 */
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "pipeline/engine-int.h"
#include "pipeline/spec.h"

static char **strv_copy(char *const *v, size_t n)
{
	char **c = sw_calloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		c[i] = sw_strdup(v[i]);
	return c;
}

static void strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

int sw_plan_build(struct sw_plan *out, const char *file, const char *data, size_t len,
		  const struct sw_plan_ctx *ctx, const char *const *secret_names)
{
	struct sw_spec_check chk = { 0 };
	struct sw_spec_ctx sctx = { 0 };
	struct sw_spec *spec = NULL;
	struct sw_spec_plan *sel = NULL;
	size_t nsecrets = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	for (const char *const *s = secret_names; s && *s; s++)
		nsecrets++;
	chk.secrets = secret_names;
	chk.nsecrets = nsecrets;
	chk.require_image = ctx->require_image;
	if ((rc = sw_spec_parse(&spec, file, data, len, &chk)) < 0)
		return rc;
	sctx.event = sw_spec_event_parse(ctx->event);
	sctx.branch = ctx->branch;
	sctx.environment = ctx->environment;
	if ((rc = sw_spec_select(&sel, spec, &sctx)) < 0) {
		sw_spec_free(spec);
		return rc;
	}
	out->nstages = sel->n;
	out->stages = sw_calloc(sel->n ? sel->n : 1, sizeof(*out->stages));
	for (size_t i = 0; i < sel->n; i++) {
		const struct sw_spec_stage *st = sel->stages[i].stage;
		struct sw_plan_stage *ps = &out->stages[i];
		ps->name = sw_strdup(st->name);
		ps->image = st->image ? sw_strdup(st->image) : NULL;
		ps->commands = strv_copy(st->commands, st->ncommands);
		ps->nenv = st->nenv;
		ps->env = sw_calloc(st->nenv + 1, sizeof(char *));
		for (size_t k = 0; k < st->nenv; k++)
			ps->env[k] = sw_asprintf("%s=%s", st->env[k].name, st->env[k].value);
		ps->nsecrets = st->nsecrets;
		ps->secrets = strv_copy(st->secrets, st->nsecrets);
		ps->timeout_ms = (long)st->timeout_s * 1000;
		ps->ndeps = sel->stages[i].ndeps;
		ps->deps = sw_calloc(ps->ndeps + 1, sizeof(size_t));
		memcpy(ps->deps, sel->stages[i].deps, ps->ndeps * sizeof(size_t));
		ps->exit_code = -1;
	}
	sw_spec_plan_free(sel);
	sw_spec_free(spec);
	return 0;
}

void sw_plan_stage_release(struct sw_plan_stage *s)
{
	free(s->name);
	free(s->image);
	strv_free(s->commands);
	strv_free(s->env);
	strv_free(s->secrets);
	free(s->deps);
	memset(s, 0, sizeof(*s));
}

void sw_plan_release(struct sw_plan *p)
{
	for (size_t i = 0; i < p->nstages; i++)
		sw_plan_stage_release(&p->stages[i]);
	free(p->stages);
	memset(p, 0, sizeof(*p));
}
