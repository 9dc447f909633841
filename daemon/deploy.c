/*
 * deploy.c - the clusters: one sync engine and one drift watcher per
 * environment that has a cluster, and the deploy operations the pipeline
 * engine calls (deploy a commit, pick a rollback target, the environment of
 * acceptance stages).
 *
 * A deploy is a sync (deploy/deploy.h) of the commit; it succeeds when the
 * sync does and nothing ends degraded. A rollback is a sync with trigger
 * "rollback"; afterwards the environment says it is rolled back, and the
 * drift watcher, which follows the syncer's desired state, holds that
 * revision until the next merge deploys.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/metrics-int.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/pool.h"
#include "manifests/manifests.h"
#include "deploy/deploy.h"
#include "deploy/deploy.h"
#include "report/report.h"
#include "pipeline/pipeline.h"
#include "report/report.h"
#include "git/git.h"
#include "storage/store.h"

struct env_rt {
	char *name;
	struct sw_syncer *syncer;
	struct sw_drift *drift;
	struct sw_deployer *dp;
};

struct sw_deployer {
	struct sw_daemon *d;
	struct env_rt *envs;
	size_t n;
	struct sw_deploy_ops ops;
};

static struct env_rt *sw_deployer_env(struct sw_deployer *dp, const char *name)
{
	for (size_t i = 0; i < dp->n; i++)
		if (!strcmp(dp->envs[i].name, name))
			return &dp->envs[i];
	return NULL;
}

struct sw_syncer *sw_deployer_syncer(struct sw_deployer *dp, const char *env)
{
	struct env_rt *e = sw_deployer_env(dp, env);
	return e ? e->syncer : NULL;
}

/* --- deploy ---------------------------------------------------------------- */

struct deploy_ctx {
	struct sw_deployer *dp;
	char *env, *commit, *trigger;
	sw_deploy_log_fn log;
	sw_deploy_done_fn done;
	void *ctx;
};

static void sync_done(const struct sw_sync_result *r, void *arg)
{
	struct deploy_ctx *c = arg;
	struct sw_daemon *d = c->dp->d;
	struct sw_buf line = SW_BUF_INIT, msg = SW_BUF_INIT;
	int ok;

	for (size_t i = 0; i < r->nobjects; i++) {
		const struct sw_sync_obj *o = &r->objects[i];
		sw_buf_reset(&line);
		sw_buf_addf(&line, "%-10s %s %s %s%s%s", sw_store_object_result_str(o->result),
			    o->api_version, o->kind, o->ns && *o->ns ? o->ns : "",
			    o->ns && *o->ns ? "/" : "", o->name);
		if (o->health != SW_HEALTH_UNKNOWN)
			sw_buf_addf(&line, "  [%s]", sw_store_health_str(o->health));
		if (o->message && *o->message)
			sw_buf_addf(&line, "  %s", o->message);
		c->log(c->ctx, line.ptr);
	}
	ok = r->status == SW_SYNC_SUCCESS && r->health != SW_HEALTH_DEGRADED && !r->superseded;
	if (r->superseded)
		sw_buf_adds(&msg, "superseded by a newer deploy of this environment");
	else
		sw_buf_addf(&msg, "sync %lld: %zu created, %zu configured, %zu unchanged, %zu pruned, "
			    "%zu failed; %s in %lld ms%s%s", (long long)r->sync_id,
			    r->counts[SW_OBJ_CREATED], r->counts[SW_OBJ_CONFIGURED],
			    r->counts[SW_OBJ_UNCHANGED], r->counts[SW_OBJ_PRUNED], r->counts[SW_OBJ_FAILED],
			    sw_store_health_str(r->health), (long long)r->duration_ms,
			    r->message && *r->message ? ": " : "", r->message ? r->message : "");
	if (ok) {
		struct sw_store_env_update u = SW_STORE_ENV_UPDATE_INIT;
		if (!strcmp(c->trigger, "rollback")) {
			u.sync_status = SW_ENV_ROLLED_BACK;
			u.rolled_back_to = c->commit;
		} else {
			u.rolled_back_to = "";
		}
		if (sw_store_env_set(d->store, c->env, &u) < 0)
			log_error("deploy.store", "env=%s err=%s", c->env, sw_q(sw_error_last()));
	}
	log_info("deploy.done", "env=%s commit=%.12s trigger=%s ok=%d msg=%s", c->env, c->commit,
		 c->trigger, ok, sw_q(msg.ptr));
	if (!r->superseded)
		sw_metrics_sync_finished(c->env, c->trigger, ok ? "success" : "failure", r->duration_ms);
	c->done(c->ctx, ok, msg.ptr);
	sw_buf_release(&line);
	sw_buf_release(&msg);
	free(c->env);
	free(c->commit);
	free(c->trigger);
	free(c);
}

static int op_deploy(void *arg, const char *env, const char *repo, const char *commit,
		     const char *trigger, int64_t run_id, sw_deploy_log_fn log,
		     sw_deploy_done_fn done, void *ctx)
{
	struct sw_deployer *dp = arg;
	struct env_rt *e = sw_deployer_env(dp, env);
	struct sw_sync_req rq = SW_SYNC_REQ_INIT;
	enum sw_sync_trigger t;

	if (!e || !e->syncer)
		return sw_error_setc(SW_EINVALID, "environment %s has no cluster configured", env);
	if (sw_store_sync_trigger_parse(trigger, &t) < 0)
		t = SW_TRIGGER_MANUAL;
	struct deploy_ctx *c = sw_calloc(1, sizeof(*c));
	c->dp = dp;
	c->env = sw_strdup(env);
	c->commit = sw_strdup(commit);
	c->trigger = sw_strdup(trigger);
	c->log = log;
	c->done = done;
	c->ctx = ctx;
	rq.repo = repo;
	rq.commit = commit;
	rq.trigger = t;
	rq.run_id = run_id;
	if (sw_sync_start(e->syncer, &rq, sync_done, c) < 0) {
		free(c->env);
		free(c->commit);
		free(c->trigger);
		free(c);
		return SW_ERR;
	}
	return 0;
}

static char *op_rollback_target(void *arg, const char *env, const char *failed_commit)
{
	struct sw_deployer *dp = arg;
	struct sw_store_sync s;
	int64_t before = 0;
	char *out = NULL;

	/* the newest healthy sync of another commit */
	for (int tries = 0; tries < 50 && !out; tries++) {
		if (sw_store_sync_last_healthy(dp->d->store, env, before, &s) < 0)
			break;
		if (s.commit_sha && strcmp(s.commit_sha, failed_commit))
			out = sw_strdup(s.commit_sha);
		before = s.id;
		sw_store_sync_release(&s);
	}
	return out;
}

static char **op_stage_env(void *arg, const char *env)
{
	struct sw_deployer *dp = arg;
	struct env_rt *e = sw_deployer_env(dp, env);
	const struct sw_cfg_env *ce = sw_config_env(dp->d->cfg, env);
	char **v = sw_calloc(4, sizeof(char *));
	size_t n = 0;
	if (e && e->syncer) {
		const struct sw_kubeconfig *kc = sw_kube_config(sw_syncer_kube(e->syncer));
		if (kc && kc->server)
			v[n++] = sw_asprintf("SLIPWAY_KUBE_SERVER=%s", kc->server);
	}
	if (ce && ce->namespace)
		v[n++] = sw_asprintf("SLIPWAY_KUBE_NAMESPACE=%s", ce->namespace);
	v[n] = NULL;
	return v;
}

/* --- drift notifications ------------------------------------------------------ */

static void on_drift(const struct sw_drift_note *n, void *arg)
{
	struct env_rt *e = arg;
	struct sw_daemon *d = e->dp->d;
	const struct sw_config *c = d->cfg;
	const struct sw_cfg_env *ce = sw_config_env(c, e->name);
	char key[64], note[1024];

	log_info("drift.event", "env=%s object=%s/%s/%s action=%s manager=%s fighting=%d",
		 e->name, n->ref.kind, n->ref.namespace ? n->ref.namespace : "", n->ref.name,
		 sw_store_drift_action_str(n->action), sw_q(n->manager ? n->manager : ""),
		 n->fighting);
	sw_metrics_drift(e->name, sw_store_drift_action_str(n->action));
	if (!d->outbox || !(c->slack_webhook_url.value || c->slack_bot_token.value))
		return;
	struct sw_report_run rr = {
		.id = 0, .kind = "drift", .repo = ce ? ce->repo : "", .environment = e->name,
		.status = n->action == SW_DRIFT_HEALED ? "success" : "failure",
		.commit = sw_sync_desired_commit(e->syncer), .public_url = c->public_url,
	};
	snprintf(note, sizeof(note), "%s %s%s%s: %s%s%s", n->ref.kind,
		 n->ref.namespace && *n->ref.namespace ? n->ref.namespace : "",
		 n->ref.namespace && *n->ref.namespace ? "/" : "", n->ref.name,
		 n->message ? n->message : sw_store_drift_action_str(n->action),
		 n->manager ? ", changed by " : "", n->manager ? n->manager : "");
	json_t *msg = sw_report_slack(&rr, SW_REPORT_DRIFT, note);
	snprintf(key, sizeof(key), "drift:%lld", (long long)n->event_id);
	if (sw_outbox_slack(d->store, ce ? ce->slack_channel : NULL, key, msg) == 0)
		sw_outbox_kick(d->outbox);
	json_decref(msg);
}

/* --- life cycle --------------------------------------------------------------- */

int sw_deployer_new(struct sw_deployer **out, struct sw_daemon *d)
{
	struct sw_deployer *dp = sw_calloc(1, sizeof(*dp));
	const struct sw_config *c = d->cfg;

	dp->d = d;
	dp->envs = sw_calloc(c->nenvs + 1, sizeof(*dp->envs));
	dp->ops.deploy = op_deploy;
	dp->ops.rollback_target = op_rollback_target;
	dp->ops.stage_env = op_stage_env;
	dp->ops.arg = dp;
	for (size_t i = 0; i < c->nenvs; i++) {
		const struct sw_cfg_env *ce = &c->envs[i];
		struct env_rt *e = &dp->envs[dp->n++];
		e->name = sw_strdup(ce->name);
		e->dp = dp;
		if (!ce->kubeconfig)
			continue;
		struct sw_syncer_opts o = SW_SYNCER_OPTS_INIT;
		o.base = d->base;
		o.pool = d->pool;
		o.store = d->store;
		o.http = d->client;
		o.procs = d->procs;
		o.env = ce;
		o.data_dir = c->data_dir;
		o.checkout = sw_source_checkout;
		o.history_limit = c->history_limit;
		if (sw_syncer_new(&e->syncer, &o) < 0) {
			sw_error_prefix("environment %s", ce->name);
			sw_deployer_free(dp);
			*out = NULL;
			return SW_ERR;
		}
		struct sw_drift_opts dopts = SW_DRIFT_OPTS_INIT;
		dopts.notify = on_drift;
		dopts.notify_arg = e;
		if (sw_drift_new(&e->drift, d->base, NULL, d->store, e->syncer, ce, &dopts) < 0) {
			sw_error_prefix("environment %s: drift watcher", ce->name);
			sw_deployer_free(dp);
			*out = NULL;
			return SW_ERR;
		}
	}
	*out = dp;
	return 0;
}

const struct sw_deploy_ops *sw_deployer_ops(struct sw_deployer *dp)
{
	return &dp->ops;
}

void sw_deployer_reconfigure(struct sw_deployer *dp, const struct sw_config *cfg)
{
	for (size_t i = 0; i < dp->n; i++) {
		struct env_rt *e = &dp->envs[i];
		const struct sw_cfg_env *ce = sw_config_env(cfg, e->name);
		if (!ce || !e->syncer)
			continue;   /* new or removed environments take a restart */
		sw_syncer_reconfigure(e->syncer, ce, cfg->history_limit);
		sw_drift_set_self_heal(e->drift, ce->self_heal);
	}
}

int sw_deployer_busy(const struct sw_deployer *dp)
{
	for (size_t i = 0; dp && i < dp->n; i++)
		if (dp->envs[i].syncer && sw_syncer_busy(dp->envs[i].syncer, NULL))
			return 1;
	return 0;
}

void sw_deployer_free(struct sw_deployer *dp)
{
	if (!dp)
		return;
	for (size_t i = 0; i < dp->n; i++) {
		sw_drift_free(dp->envs[i].drift);
		sw_syncer_free(dp->envs[i].syncer);
		free(dp->envs[i].name);
	}
	free(dp->envs);
	free(dp);
}

/* --- API actions: sync now, roll back, diff ------------------------------------- */

enum action_kind { ACT_SYNC, ACT_DIFF };

struct action_job {
	struct sw_daemon *d;
	struct sw_action *a;
	enum action_kind kind;
	char *env, *branch, *data_dir;
	struct sw_source_remote remote;
	char commit[41];
	int rc;
	char *error;
};

static void action_job_free(struct action_job *j)
{
	free(j->env);
	free(j->branch);
	free(j->data_dir);
	sw_source_remote_release(&j->remote);
	free(j->error);
	free(j);
}

/* Worker: bring the mirror up to date and find the branch's head. */
static void fetch_work(void *arg)
{
	struct action_job *j = arg;
	if ((j->rc = sw_source_fetch(&j->remote.repo, j->data_dir, NULL)) == 0)
		j->rc = sw_source_resolve(j->commit, j->data_dir, j->remote.name, j->branch);
	if (j->rc < 0)
		j->error = sw_strdup(sw_error_last());
}

static void diff_done(const struct sw_sync_result *r, void *arg)
{
	struct action_job *j = arg;
	json_t *objs = json_array();
	for (size_t i = 0; i < r->nobjects; i++) {
		const struct sw_sync_obj *o = &r->objects[i];
		json_array_append_new(objs, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
			"key", o->key, "api_version", o->api_version, "kind", o->kind,
			"namespace", o->ns ? o->ns : "", "name", o->name,
			"result", sw_store_object_result_str(o->result),
			"message", o->message ? o->message : ""));
	}
	if (r->status != SW_SYNC_SUCCESS && !r->nobjects) {
		sw_action_fail(j->a, SW_EINVALID, r->message && *r->message ? r->message : "diff failed");
		json_decref(objs);
	} else {
		json_t *counts = json_object();
		for (int k = SW_OBJ_CREATED; k <= SW_OBJ_FAILED; k++)
			json_object_set_new(counts, sw_store_object_result_str((enum sw_object_result)k),
					    json_integer((json_int_t)r->counts[k]));
		sw_action_done(j->a, 200, json_pack("{s:s, s:s, s:o, s:o, s:s}", "environment", j->env,
						    "commit", j->commit, "counts", counts,
						    "objects", objs, "message",
						    r->message ? r->message : ""));
	}
	action_job_free(j);
}

static void fetch_done(void *arg)
{
	struct action_job *j = arg;
	struct sw_daemon *d = j->d;
	int64_t run_id = 0;

	if (j->rc < 0) {
		sw_action_fail(j->a, j->rc, j->error);
		action_job_free(j);
		return;
	}
	if (j->kind == ACT_SYNC) {
		if (sw_engine_submit(d->engine, &run_id, "manual", j->remote.name, j->branch, j->commit,
				     j->env, "Sync now") < 0)
			sw_action_fail(j->a, SW_ERR, sw_error_last());
		else
			sw_action_done(j->a, 202, json_pack("{s:I, s:s, s:s}", "run", (json_int_t)run_id,
							    "commit", j->commit, "environment", j->env));
		action_job_free(j);
		return;
	}
	struct sw_syncer *s = sw_deployer_syncer(d->deployer, j->env);
	struct sw_sync_req rq = SW_SYNC_REQ_INIT;
	rq.repo = j->remote.name;
	rq.commit = j->commit;
	rq.dry_run = 1;
	if (!s || sw_sync_start(s, &rq, diff_done, j) < 0) {
		sw_action_fail(j->a, SW_EINVALID, s ? sw_error_last() : "no cluster configured");
		action_job_free(j);
	}
}

static int start_fetch(struct sw_daemon *d, const char *env, enum action_kind kind,
		       struct sw_action *a)
{
	const struct sw_cfg_env *ce = sw_config_env(d->cfg, env);
	const struct sw_cfg_repo *repo = ce && ce->repo ? sw_config_repo(d->cfg, ce->repo) : NULL;
	if (!ce)
		return sw_error_setc(SW_ENOTFOUND, "no environment %s", env);
	if (!repo)
		return sw_error_setc(SW_EINVALID, "environment %s has no repository", env);
	if (!ce->kubeconfig)
		return sw_error_setc(SW_EINVALID, "environment %s has no cluster configured", env);
	struct action_job *j = sw_calloc(1, sizeof(*j));
	j->d = d;
	j->a = a;
	j->kind = kind;
	j->env = sw_strdup(env);
	j->branch = sw_strdup(ce->branch);
	j->data_dir = sw_strdup(d->cfg->data_dir);
	sw_source_remote_copy(&j->remote, repo);
	if (sw_pool_submit(d->pool, fetch_work, fetch_done, j) < 0) {
		action_job_free(j);
		return SW_EAGAIN;
	}
	return 0;
}

static int act_sync(struct sw_daemon *d, const char *env, struct sw_action *a)
{
	return start_fetch(d, env, ACT_SYNC, a);
}

static int act_diff(struct sw_daemon *d, const char *env, struct sw_action *a)
{
	return start_fetch(d, env, ACT_DIFF, a);
}

static int act_rollback(struct sw_daemon *d, const char *env, const char *commit,
			int64_t sync_id, struct sw_action *a)
{
	const struct sw_cfg_env *ce = sw_config_env(d->cfg, env);
	int64_t run_id = 0;
	if (!ce || !ce->kubeconfig)
		return sw_error_setc(SW_EINVALID, "environment %s has no cluster configured", env);
	if (sw_engine_submit(d->engine, &run_id, "rollback", ce->repo, ce->branch, commit, env,
			     "Roll back") < 0)
		return SW_ERR;
	sw_action_done(a, 202, json_pack("{s:I, s:s, s:s}", "run", (json_int_t)run_id, "commit", commit,
					 "environment", env));
	return 0;
}

void sw_deployer_install_actions(struct sw_daemon *d)
{
	d->actions.sync = act_sync;
	d->actions.rollback = act_rollback;
	d->actions.diff = act_diff;
}
