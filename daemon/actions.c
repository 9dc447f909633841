/*
 * actions.c - the API's actions on an environment's cluster: sync now (a
 * run of the branch's head), roll back (a run that deploys an earlier
 * commit) and diff (a dry-run sync of the branch's head). The deployer
 * itself (the syncers and drift watchers) is deploy/deployer.c.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "deploy/deploy.h"
#include "git/git.h"
#include "lib/pool.h"
#include "pipeline/pipeline.h"
#include "storage/store.h"

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
		if (sw_engine_submit_by(d->engine, &run_id, "manual", j->remote.name, j->branch,
					j->commit, j->env, "Sync now", sw_action_by(j->a)) < 0)
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
	if (!sw_cfg_env_has_cluster(ce))
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
	if (!ce || !sw_cfg_env_has_cluster(ce))
		return sw_error_setc(SW_EINVALID, "environment %s has no cluster configured", env);
	if (sw_engine_submit_by(d->engine, &run_id, "rollback", ce->repo, ce->branch, commit, env,
				"Roll back", sw_action_by(a)) < 0)
		return SW_ERR;
	sw_action_done(a, 202, json_pack("{s:I, s:s, s:s}", "run", (json_int_t)run_id, "commit", commit,
					 "environment", env));
	return 0;
}

void sw_actions_install(struct sw_daemon *d)
{
	d->actions.sync = act_sync;
	d->actions.rollback = act_rollback;
	d->actions.diff = act_diff;
}
