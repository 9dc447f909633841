/*
 * deployer.c - the clusters: one syncer and one drift watcher per
 * environment that has a cluster, and the deploy operations the pipeline
 * engine calls (deploy a commit, pick a rollback target, the environment of
 * acceptance stages).
 *
 * A deploy is a sync of the commit; it succeeds when the sync does and
 * nothing ends degraded. A rollback is a sync with trigger "rollback";
 * afterwards the environment says it is rolled back, and the drift watcher,
 * which follows the syncer's desired state, holds that revision until the
 * next merge deploys. A drift event goes to Slack (report/) when the server
 * has Slack configured.
 */
#include <stdlib.h>
#include <string.h>

#include "deploy/deploy.h"
#include "config/config.h"
#include "git/git.h"
#include "lib/base64.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/strv.h"
#include "report/report.h"
#include "storage/store.h"

struct env_rt {
	char *name;
	struct sw_syncer *syncer;
	struct sw_drift *drift;
	struct sw_deployer *dp;
};

struct sw_deployer {
	struct sw_deployer_opts o;     /* o.cfg follows sw_deployer_reconfigure */
	struct env_rt *envs;
	size_t n;
	struct sw_deploy_ops ops;
};

static struct env_rt *env_find(struct sw_deployer *dp, const char *name)
{
	for (size_t i = 0; i < dp->n; i++)
		if (!strcmp(dp->envs[i].name, name))
			return &dp->envs[i];
	return NULL;
}

struct sw_syncer *sw_deployer_syncer(struct sw_deployer *dp, const char *env)
{
	struct env_rt *e = env_find(dp, env);
	return e ? e->syncer : NULL;
}

/* --- deploy ---------------------------------------------------------------- */

struct deploy_ctx {
	struct sw_deployer *dp;
	char *env, *commit;
	enum sw_sync_trigger trigger;
	sw_deploy_log_fn log;
	sw_deploy_done_fn done;
	void *ctx;
};

static void sync_done(const struct sw_sync_result *r, void *arg)
{
	struct deploy_ctx *c = arg;
	const struct sw_deployer_opts *opt = &c->dp->o;
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
		if (c->trigger == SW_TRIGGER_ROLLBACK) {
			u.sync_status = SW_ENV_ROLLED_BACK;
			u.rolled_back_to = c->commit;
		} else {
			u.rolled_back_to = "";
		}
		if (sw_store_env_set(opt->store, c->env, &u) < 0)
			log_error("deploy.store", "env=%s err=%s", c->env, sw_q(sw_error_last()));
	}
	log_info("deploy.done", "env=%s commit=%.12s trigger=%s ok=%d msg=%s", c->env, c->commit,
		 sw_store_sync_trigger_str(c->trigger), ok, sw_q(msg.ptr));
	if (!r->superseded && opt->on_sync_finished)
		opt->on_sync_finished(c->env, sw_store_sync_trigger_str(c->trigger),
				    ok ? "success" : "failure", r->duration_ms);
	c->done(c->ctx, ok, msg.ptr);
	sw_buf_release(&line);
	sw_buf_release(&msg);
	free(c->env);
	free(c->commit);
	free(c);
}

static int op_deploy(void *arg, const char *env, const char *repo, const char *commit,
		     enum sw_sync_trigger trigger, int64_t run_id, sw_deploy_log_fn log,
		     sw_deploy_done_fn done, void *ctx)
{
	struct sw_deployer *dp = arg;
	struct env_rt *e = env_find(dp, env);
	struct sw_sync_req rq = SW_SYNC_REQ_INIT;

	if (!e || !e->syncer)
		return sw_error_setc(SW_EINVALID, "environment %s has no cluster configured", env);
	struct deploy_ctx *c = sw_calloc(1, sizeof(*c));
	c->dp = dp;
	c->env = sw_strdup(env);
	c->commit = sw_strdup(commit);
	c->trigger = trigger;
	c->log = log;
	c->done = done;
	c->ctx = ctx;
	rq.repo = repo;
	rq.commit = commit;
	rq.trigger = trigger;
	rq.run_id = run_id;
	if (sw_sync_start(e->syncer, &rq, sync_done, c) < 0) {
		free(c->env);
		free(c->commit);
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
		if (sw_store_sync_last_healthy(dp->o.store, env, before, &s) < 0)
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
	struct env_rt *e = env_find(dp, env);
	const struct sw_cfg_env *ce = sw_config_env(dp->o.cfg, env);
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

/* A value for a stage's kubeconfig: a secret one is also to be masked. */
static void kc_secret(char ***v, size_t *n, const char *value)
{
	*v = sw_realloc(*v, (*n + 2) * sizeof(char *));
	(*v)[(*n)++] = sw_strdup(value);
	(*v)[*n] = NULL;
}

static char *kc_b64(const char *pem)
{
	struct sw_buf b = SW_BUF_INIT;
	sw_base64_encode(&b, pem, strlen(pem), 0);
	return sw_buf_detach(&b, NULL);
}

static int op_stage_kubeconfig(void *arg, const char *env, struct sw_buf *out, char ***secrets)
{
	struct sw_deployer *dp = arg;
	struct env_rt *e = env_find(dp, env);
	const struct sw_kubeconfig *kc = e && e->syncer ? sw_kube_config(sw_syncer_kube(e->syncer)) : NULL;
	struct sw_buf tok = SW_BUF_INIT;
	char **v = NULL, *b64;
	size_t n = 0;
	int rc = 0;

	*secrets = NULL;
	if (!kc || !kc->server)
		return sw_error_setc(SW_EINVALID, "environment %s has no cluster", env);
	if (kc->exec)
		return sw_error_setc(SW_EINVALID, "the kubeconfig of %s gets its credential from an "
				     "exec plugin, which cannot be given to a stage", env);
	json_t *cluster = json_pack("{s:s}", "server", kc->server);
	json_t *user = json_object();
	if (kc->ca_pem) {
		json_object_set_new(cluster, "certificate-authority-data", json_string(b64 = kc_b64(kc->ca_pem)));
		free(b64);
	}
	if (kc->insecure)
		json_object_set_new(cluster, "insecure-skip-tls-verify", json_true());
	if (kc->tls_server_name)
		json_object_set_new(cluster, "tls-server-name", json_string(kc->tls_server_name));
	if (kc->token) {
		json_object_set_new(user, "token", json_string(kc->token));
		kc_secret(&v, &n, kc->token);
	} else if (kc->token_file) {
		/* a file of the daemon's host: what it holds now (a projected
		 * token rotates; the stage is short) */
		if (sw_buf_read_file(&tok, kc->token_file) < 0) {
			rc = sw_error_prefix("environment %s: token file", env);
			goto done;
		}
		while (tok.len && (tok.ptr[tok.len - 1] == '\n' || tok.ptr[tok.len - 1] == '\r'))
			sw_buf_truncate(&tok, tok.len - 1);
		json_object_set_new(user, "token", json_string(tok.ptr));
		kc_secret(&v, &n, tok.ptr);
	}
	if (kc->cert_pem && kc->key_pem) {
		json_object_set_new(user, "client-certificate-data", json_string(b64 = kc_b64(kc->cert_pem)));
		free(b64);
		json_object_set_new(user, "client-key-data", json_string(b64 = kc_b64(kc->key_pem)));
		free(b64);
		kc_secret(&v, &n, kc->key_pem);
	}
	json_t *doc = json_pack("{s:s, s:s, s:s, s:[{s:s, s:o}], s:[{s:s, s:o}], s:[{s:s, s:{s:s, s:s, s:s}}]}",
		"apiVersion", "v1", "kind", "Config", "current-context", env,
		"clusters", "name", env, "cluster", cluster,
		"users", "name", env, "user", user,
		"contexts", "name", env, "context", "cluster", env, "user", env, "namespace", kc->ns ? kc->ns : "default");
	cluster = user = NULL;
	char *text = json_dumps(doc, JSON_INDENT(2));
	json_decref(doc);
	sw_buf_adds(out, text);
	sw_buf_addch(out, '\n');
	memset(text, 0, strlen(text));
	free(text);
	*secrets = v;
	v = NULL;
done:
	if (cluster)
		json_decref(cluster);
	if (user)
		json_decref(user);
	if (tok.ptr)
		memset(tok.ptr, 0, tok.len);
	sw_buf_release(&tok);
	sw_strv_free_wipe(v);
	return rc;
}

/* --- drift notifications ------------------------------------------------------ */

static void on_drift(const struct sw_drift_note *n, void *arg)
{
	struct env_rt *e = arg;
	const struct sw_deployer_opts *o = &e->dp->o;
	const struct sw_config *c = o->cfg;
	const struct sw_cfg_env *ce = sw_config_env(c, e->name);
	char key[64], note[1024];

	log_info("drift.event", "env=%s object=%s/%s/%s action=%s manager=%s fighting=%d",
		 e->name, n->ref.kind, n->ref.namespace ? n->ref.namespace : "", n->ref.name,
		 sw_store_drift_action_str(n->action), sw_q(n->manager ? n->manager : ""),
		 n->fighting);
	if (o->on_drift)
		o->on_drift(e->name, sw_store_drift_action_str(n->action));
	if (!o->outbox || !(c->slack_webhook_url.value || c->slack_bot_token.value))
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
	if (sw_outbox_slack(o->store, ce ? ce->slack_channel : NULL, key, msg) == 0)
		sw_outbox_kick(o->outbox);
	json_decref(msg);
}

/* --- life cycle --------------------------------------------------------------- */

int sw_deployer_new(struct sw_deployer **out, const struct sw_deployer_opts *opts)
{
	struct sw_deployer *dp = sw_calloc(1, sizeof(*dp));
	const struct sw_config *c = opts->cfg;

	dp->o = *opts;
	dp->envs = sw_calloc(c->nenvs + 1, sizeof(*dp->envs));
	dp->ops.deploy = op_deploy;
	dp->ops.rollback_target = op_rollback_target;
	dp->ops.stage_env = op_stage_env;
	dp->ops.stage_kubeconfig = op_stage_kubeconfig;
	dp->ops.arg = dp;
	for (size_t i = 0; i < c->nenvs; i++) {
		const struct sw_cfg_env *ce = &c->envs[i];
		struct env_rt *e = &dp->envs[dp->n++];
		e->name = sw_strdup(ce->name);
		e->dp = dp;
		if (!sw_cfg_env_has_cluster(ce))
			continue;
		struct sw_syncer_opts o = SW_SYNCER_OPTS_INIT;
		o.base = opts->base;
		o.pool = opts->pool;
		o.store = opts->store;
		o.http = opts->http;
		o.procs = opts->procs;
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
		if (sw_drift_new(&e->drift, opts->base, NULL, opts->store, e->syncer, ce, &dopts) < 0) {
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
	dp->o.cfg = cfg;
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
