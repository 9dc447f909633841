/*
 * stage-tf.c - the built-in Terraform stages: a pull request's plan of each
 * touched root module (terraform-ENV, with its PR comment section) and a
 * deploy's apply of the environment's modules in order (infra), through
 * infra/infra.h.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "infra/infra.h"
#include "lib/log.h"
#include "lib/pool.h"
#include "pipeline/run-int.h"

/* --- Terraform stages ------------------------------------------------------ */

static void tf_output(int stream, const char *p, size_t n, void *arg)
{
	engine_step_output(stream, p, n, arg);
}

static void tf_next(struct run *r, struct stage *s);

/* Every module done (or the stage stopped): record and report the stage. */
static void tf_finish(struct run *r, struct stage *s)
{
	struct sw_engine *e = r->e;
	int apply = s->plan.kind == SW_PLAN_TF_APPLY;
	const char *env = s->plan.tf_env;

	s->busy = 0;
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
			engine_put_kv(e, r->row.id, key, r->row.commit_sha);
			free(key);
		}
		if (strlen(st) > 500)
			strcpy(st + 497, "...");
		struct wop *w = engine_wop_new(e, W_ENV_INFRA, r->row.id);
		w->a = sw_strdup(env);
		w->b = sw_strdup(st);
		engine_wop_put(w);
		log_info("infra.applied", "run=%lld env=%s ok=%d status=%s", (long long)r->row.id, env,
			 !s->tf_failed, sw_q(st));
		free(st);
	}
	if (s->tf_cancelled) {
		if (e->stopping && r->cancel_reason && !strcmp(r->cancel_reason, "slipwayd stopped")) {
			engine_log_note(s, "%s", "interrupted: slipwayd stopped");
			engine_finish_stage(s, SW_STATUS_INTERRUPTED, -1, "slipwayd stopped");
		} else {
			engine_log_note(s, "cancelled: %s", r->cancel_reason ? r->cancel_reason : "cancelled");
			engine_finish_stage(s, SW_STATUS_CANCELLED, -1, r->cancel_reason);
		}
	} else if (s->tf_failed) {
		engine_finish_stage(s, SW_STATUS_FAILURE, -1, s->tf_error ? s->tf_error : "terraform failed");
	} else {
		engine_finish_stage(s, SW_STATUS_SUCCESS, 0, NULL);
	}
	if (!r->cancelling)
		engine_advance(r);
}

static void tf_fail(struct stage *s, const char *msg)
{
	if (!s->tf_failed) {
		s->tf_failed = 1;
		s->tf_error = sw_strdup(msg && *msg ? msg : "terraform failed");
	}
}

/* --- the cost of a PR's plan (a worker asks AWS; infra/cost.c) -------------- */

struct pricing {
	struct stage *s;
	struct sw_tf_result *res;
	struct sw_tf_pricer *pricer;
	struct sw_tf_cost cost;
	int rc;
	char *why;                 /* rc < 0: why there are no prices */
};

static void pricing_work(void *arg)
{
	struct pricing *j = arg;
	if ((j->rc = sw_tf_price_plan(&j->cost, j->pricer, j->res)) < 0)
		j->why = sw_strdup(sw_error_last());
}

static void tf_module_done(struct run *r, struct stage *s, int apply);

static void pricing_done(void *arg)
{
	struct pricing *j = arg;
	struct stage *s = j->s;
	struct run *r = s->run;
	const char *env = s->plan.tf_env;
	char *md = sw_tf_cost_markdown(j->rc < 0 ? NULL : &j->cost, env, j->why, 8000);
	char *key = sw_asprintf(SW_TF_REPORT_KEY_FMT, (long long)r->row.id, env);

	sw_buf_adds(&s->tf_md, "\n");
	sw_buf_adds(&s->tf_md, md);
	engine_put_kv(r->e, r->row.id, key, s->tf_md.ptr);
	char *line = j->rc < 0 ? sw_asprintf("cost of %s: not shown: %s", j->res->module, j->why)
		: sw_asprintf("cost of %s: %s%+.2f USD a month (%zu priced, %zu unknown)",
			      j->res->module, j->cost.unknown ? "at least " : "", j->cost.delta,
			      j->cost.priced, j->cost.unknown);
	engine_log_note(s, "%s", line);
	free(line);
	log_info("cost.plan", "run=%lld env=%s module=%s ok=%d delta=%.2f unknown=%zu err=%s",
		 (long long)r->row.id, env, j->res->module, j->rc == 0, j->cost.delta,
		 j->cost.unknown, sw_q(j->why ? j->why : ""));
	free(key);
	free(md);
	free(j->why);
	sw_tf_cost_release(&j->cost);
	sw_tf_result_free(j->res);
	free(j);
	tf_module_done(r, s, 0);
}

/* Does the plan change anything AWS bills for? */
static int plans_aws(const struct sw_tf_result *res)
{
	for (size_t i = 0; i < res->nchanges; i++)
		if (res->changes[i].type && !strncmp(res->changes[i].type, "aws_", 4))
			return 1;
	return 0;
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
		engine_log_note(s, "%s", res->error);
		tf_fail(s, res->error);
	}
	if (!apply && res->status != SW_ECANCELLED) {
		char *md = sw_tf_report_markdown(res, env, 16000);
		char *key = sw_asprintf(SW_TF_REPORT_KEY_FMT, (long long)r->row.id, env);
		if (s->tf_md.len)
			sw_buf_adds(&s->tf_md, "\n");
		sw_buf_adds(&s->tf_md, md);
		engine_put_kv(e, r->row.id, key, s->tf_md.ptr);
		free(key);
		free(md);
		if (res->status == 0) {
			char line[200];
			snprintf(line, sizeof(line), "plan of %s: %zu to add, %zu to change, %zu to destroy",
				 res->module, res->nadd, res->nchange, res->ndestroy);
			engine_log_note(s, "%s", line);
		}
	}
	if (apply && res->status == 0) {
		s->tf_add += res->nadd;
		s->tf_change += res->nchange;
		s->tf_destroy += res->ndestroy;
		engine_log_note(s, res->applied ? "applied %s" : "%s: no changes to apply", res->module);
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
			engine_put_kv(e, r->row.id, key, txt);
			free(key);
			free(txt);
			struct sw_buf b = SW_BUF_INIT;
			sw_buf_addf(&b, "\n[slipway] outputs of %s: %s\n", res->module, kept);
			sw_mask_feed(&s->mask, b.ptr, b.len, &s->logbuf);
			sw_buf_release(&b);
			free(kept);
		}
	}
	if (!apply && res->status == 0 && e->pricer && !r->cancelled && plans_aws(res)) {
		struct pricing *j = sw_calloc(1, sizeof(*j));
		j->s = s;
		j->res = res;
		j->pricer = e->pricer;
		if (sw_pool_submit(e->d.pool, pricing_work, pricing_done, j) == 0)
			return;          /* pricing_done goes on */
		free(j);
	}
	sw_tf_result_free(res);
	tf_module_done(r, s, apply);
}

/* One module is done: the next, or the end. */
static void tf_module_done(struct run *r, struct stage *s, int apply)
{
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
		engine_log_note(s, "error: %s", why);
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
		engine_log_note(s, "%s", b.ptr);
		sw_buf_release(&b);
	}
	int rc = apply ? sw_tf_apply(e->d.tf, &q, tf_done, s, &s->tfop)
		       : sw_tf_plan(e->d.tf, &q, tf_done, s, &s->tfop);
	if (rc < 0) {
		engine_log_note(s, "error: %s", sw_error_last());
		tf_fail(s, sw_error_last());
		s->tf_idx++;
		if (apply)
			tf_finish(r, s);
		else
			tf_next(r, s);
	}
}

void engine_start_tf(struct run *r, struct stage *s)
{
	engine_set_stage_status(s, SW_STATUS_RUNNING, -1, NULL, 1);
	s->busy = 1;
	r->running++;
	s->tf_idx = 0;
	tf_next(r, s);
}
