/*
 * notify.c - turn what storage says about a run into outbox messages:
 * a commit status per stage, one PR comment per run edited in place, and
 * Slack messages when a run starts and ends (report/report.h builds the
 * bodies; report/report.h sends them).
 */
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "pipeline/engine-int.h"
#include "pipeline/pipeline.h"
#include "report/report.h"
#include "storage/store.h"

#define LOG_TAIL_BYTES 8192
#define TF_STAGE_PREFIX "terraform-"
/* room the Terraform sections may take in the PR comment */
#define TF_COMMENT_BYTES 40000



struct snapshot {
	struct sw_store_run run;
	struct sw_store_stage_list stages;
	struct sw_report_stage *rs;
	struct sw_buf *tails;
	struct sw_report_run rr;
	char *pr_url;
};

static void snapshot_release(struct snapshot *s)
{
	for (size_t i = 0; i < s->stages.n; i++)
		sw_buf_release(&s->tails[i]);
	free(s->tails);
	free(s->rs);
	free(s->pr_url);
	sw_store_stage_list_release(&s->stages);
	sw_store_run_release(&s->run);
}

/*
 * Load run + stages into report structs; with `tails`, also the log tails
 * of failed stages (only the PR comment and Slack show them).
 */
static int snapshot_load(struct snapshot *s, struct sw_store *st, const struct sw_config *c,
			 int64_t run_id, int tails)
{
	int rc;

	memset(s, 0, sizeof(*s));
	if ((rc = sw_store_run_get(st, run_id, &s->run)) < 0)
		return rc;
	if ((rc = sw_store_stages_list(st, run_id, &s->stages)) < 0) {
		sw_store_run_release(&s->run);
		return rc;
	}
	s->rs = sw_calloc(s->stages.n + 1, sizeof(*s->rs));
	s->tails = sw_calloc(s->stages.n + 1, sizeof(*s->tails));
	for (size_t i = 0; i < s->stages.n; i++) {
		struct sw_store_stage *g = &s->stages.v[i];
		struct sw_report_stage *r = &s->rs[i];
		sw_buf_init(&s->tails[i]);
		r->name = g->name;
		r->status = sw_store_status_str(g->status);
		r->started_ms = g->started_at;
		r->finished_ms = g->finished_at;
		r->exit_code = g->exit_code;
		r->reason = g->status == SW_STATUS_ERROR ? g->reason : NULL;
		if (tails && (g->status == SW_STATUS_FAILURE || g->status == SW_STATUS_ERROR)) {
			int64_t size = 0, next;
			sw_store_log_size(st, g->id, &size);
			sw_store_log_read(st, g->id, size > LOG_TAIL_BYTES ? size - LOG_TAIL_BYTES : 0,
					  LOG_TAIL_BYTES, &s->tails[i], &next);
			if (!s->tails[i].len && g->reason)
				sw_buf_adds(&s->tails[i], g->reason);
			r->log_tail = s->tails[i].ptr;
		}
	}
	if (s->run.pr_number)
		s->pr_url = sw_asprintf("https://github.com/%s/pull/%lld", s->run.repo,
					(long long)s->run.pr_number);
	s->rr = (struct sw_report_run){
		.id = s->run.id,
		.kind = sw_store_run_kind_str(s->run.kind),
		.repo = s->run.repo,
		.commit = s->run.commit_sha,
		.branch = s->run.branch,
		.pr_number = s->run.pr_number,
		.pr_title = s->run.pr_title,
		.pr_url = s->pr_url,
		.author = s->run.author,
		.message = s->run.message,
		.environment = s->run.environment,
		.status = sw_store_status_str(s->run.status),
		.started_ms = s->run.started_at,
		.finished_ms = s->run.finished_at,
		.stages = s->rs,
		.nstages = s->stages.n,
		.public_url = c->public_url,
	};
	return 0;
}

/* The cost trend of `env` for a deploy's last Slack message, from the
 * figures daemon/cost.c keeps (a few rows; NULL when there are none). */
static char *cost_line(struct sw_store *st, const char *env)
{
	struct sw_store_cost_list l = { 0 };
	struct sw_report_cost c;
	char today[11], from[11];
	char *line = NULL;

	sw_report_utc_day(today, sw_now_ms() / 1000);
	if (sw_report_cost_window(from, today) < 0 ||
	    sw_store_cost_list(st, env, from, today, &l) < 0)
		return NULL;
	if (l.n && sw_report_cost_sum(&c, l.v, l.n, today) == 0)
		line = sw_report_cost_line(&c);
	sw_store_cost_list_release(&l);
	return line;
}

/* Append the Terraform plan sections of the run's terraform-ENV stages. */
static char *with_tf_sections(char *md, struct sw_store *st, const struct snapshot *s)
{
	struct sw_buf b = SW_BUF_INIT;
	size_t used = 0, mdlen = strlen(md);
	size_t budget = mdlen + 1024 < SW_REPORT_COMMENT_MAX ? SW_REPORT_COMMENT_MAX - mdlen - 1024 : 0;
	if (budget > TF_COMMENT_BYTES)
		budget = TF_COMMENT_BYTES;
	for (size_t i = 0; i < s->stages.n; i++) {
		const char *name = s->stages.v[i].name;
		char *v = NULL;
		if (strncmp(name, TF_STAGE_PREFIX, strlen(TF_STAGE_PREFIX)))
			continue;
		char *key = sw_asprintf(SW_TF_REPORT_KEY_FMT, (long long)s->run.id,
					name + strlen(TF_STAGE_PREFIX));
		if (sw_store_kv_get(st, key, &v) == 0 && v) {
			if (!b.len)
				sw_buf_adds(&b, md);
			size_t n = strlen(v);
			if (used + n > budget) {
				sw_buf_addf(&b, "\n_Terraform plan of %s left out: the comment is full._\n",
					    name + strlen(TF_STAGE_PREFIX));
			} else {
				sw_buf_adds(&b, "\n");
				sw_buf_adds(&b, v);
				used += n;
			}
		}
		free(v);
		free(key);
	}
	if (!b.len)
		return md;
	free(md);
	return sw_buf_detach(&b, NULL);
}

static int reporting_on(const struct sw_config *c)
{
	return sw_config_github_auth(c) || c->slack_webhook_url.value || c->slack_bot_token.value;
}

/*
 * A failed report is logged; SW_EAGAIN (the database is locked) is returned
 * so that the transition it reports is retried with it.
 */
static int report_failed(int rc, const char *what, int64_t run_id)
{
	if (rc == SW_EAGAIN)
		return rc;
	log_error(what, "run=%lld err=%s", (long long)run_id, sw_q(sw_error_last()));
	return 0;
}

int sw_notify_stage(const struct sw_engine_deps *deps, int64_t run_id, int idx)
{
	const struct sw_config *c = deps->cfg;
	struct sw_store *st = deps->store;
	struct snapshot s;
	int rc = 0;

	if (!deps->outbox || !sw_config_github_auth(c))
		return 0;
	if ((rc = snapshot_load(&s, st, c, run_id, 0)) < 0)
		return report_failed(rc, "report.status", run_id);
	for (size_t i = 0; i < s.stages.n && rc == 0; i++) {
		if (s.stages.v[i].idx != idx)
			continue;
		json_t *body = sw_report_commit_status(&s.rr, &s.rs[i]);
		const char *name = s.stages.v[i].name;
		char *ctx;
		if (!strncmp(name, TF_STAGE_PREFIX, strlen(TF_STAGE_PREFIX))) {
			/* a Terraform plan: one status per environment, and on failure
			 * Terraform's own message as the description */
			ctx = sw_asprintf("slipway/terraform/%s", name + strlen(TF_STAGE_PREFIX));
			json_object_set_new(body, "context", json_string(ctx));
			if (s.stages.v[i].status == SW_STATUS_FAILURE && s.stages.v[i].reason) {
				char *d = sw_report_utf8_cut(s.stages.v[i].reason, SW_REPORT_DESCRIPTION_MAX);
				json_object_set_new(body, "description", json_string(d));
				free(d);
			}
		} else {
			ctx = sw_asprintf("slipway/%s", name);
		}
		if ((rc = sw_outbox_github_status(st, s.run.repo, s.run.commit_sha, ctx, body)) < 0)
			rc = report_failed(rc, "report.status", run_id);
		free(ctx);
		json_decref(body);
	}
	snapshot_release(&s);
	sw_outbox_kick(deps->outbox);
	return rc;
}

int sw_notify_run(const struct sw_engine_deps *deps, int64_t run_id, enum sw_notice n)
{
	const struct sw_config *c = deps->cfg;
	struct sw_store *st = deps->store;
	struct snapshot s;
	char key[64];
	int rc;

	if (!deps->outbox || !reporting_on(c))
		return 0;
	if ((rc = snapshot_load(&s, st, c, run_id, 1)) < 0)
		return report_failed(rc, "report.run", run_id);
	if (sw_config_github_auth(c)) {
		/* the run as a whole: pending while it goes, then its result; for
		 * a run that failed before any stage (a bad .slipway.yml) this is
		 * where the error shows */
		if (n != SW_NOTICE_PROGRESS && n != SW_NOTICE_ROLLBACK) {
			json_t *body = sw_report_commit_status(&s.rr, NULL);
			if (s.run.status == SW_STATUS_ERROR && s.run.reason) {
				char *d = sw_report_utf8_cut(s.run.reason, SW_REPORT_DESCRIPTION_MAX);
				json_object_set_new(body, "description", json_string(d));
				free(d);
			}
			rc = sw_outbox_github_status(st, s.run.repo, s.run.commit_sha, "slipway", body);
			json_decref(body);
			if (rc < 0 && (rc = report_failed(rc, "report.status", run_id)) < 0)
				goto out;
		}
		if (s.run.pr_number && n != SW_NOTICE_QUEUED) {
			char *md = sw_report_pr_comment(&s.rr, SW_REPORT_LOG_LINES);
			if (s.run.status == SW_STATUS_ERROR && s.run.reason && !s.stages.n) {
				/* no stage ran: the comment carries the whole error */
				struct sw_buf b = SW_BUF_INIT;
				sw_buf_adds(&b, md);
				sw_buf_adds(&b, "\n**Error:**\n\n```\n");
				char *clean = sw_report_utf8_clean(s.run.reason, strlen(s.run.reason), 1);
				for (char *p = clean; *p; p++)
					if (*p == '`')
						*p = '\'';
				sw_buf_adds(&b, clean);
				sw_buf_adds(&b, "\n```\n");
				free(clean);
				free(md);
				md = sw_buf_detach(&b, NULL);
			}
			md = with_tf_sections(md, st, &s);
			rc = sw_outbox_github_comment(st, s.run.repo, s.run.pr_number, run_id, md);
			free(md);
			if (rc < 0 && (rc = report_failed(rc, "report.comment", run_id)) < 0)
				goto out;
		}
	}
	if ((c->slack_webhook_url.value || c->slack_bot_token.value) &&
	    (n == SW_NOTICE_START || n == SW_NOTICE_END || n == SW_NOTICE_ROLLBACK)) {
		enum sw_report_event ev = SW_REPORT_STARTED;
		const char *note = NULL;
		char rb[160];
		if (n == SW_NOTICE_END) {
			ev = s.run.status == SW_STATUS_SUCCESS ? SW_REPORT_PASSED : SW_REPORT_FAILED;
			note = s.run.reason;
		} else if (n == SW_NOTICE_ROLLBACK) {
			const struct sw_store_stage *last = s.stages.n ? &s.stages.v[s.stages.n - 1] : NULL;
			ev = SW_REPORT_ROLLBACK;
			snprintf(rb, sizeof(rb), "%s rolled back after a failed deploy of %.7s: %s",
				 s.run.environment ? s.run.environment : "?", s.run.commit_sha,
				 last && last->status == SW_STATUS_SUCCESS ? "done" : "the rollback failed");
			note = rb;
		}
		char *cost = n == SW_NOTICE_END && c->cost.enabled && s.run.environment ?
			cost_line(st, s.run.environment) : NULL;
		s.rr.cost = cost;
		json_t *msg = sw_report_slack(&s.rr, ev, note);
		s.rr.cost = NULL;
		free(cost);
		const char *channel = NULL;
		const struct sw_cfg_env *env = s.run.environment ? sw_config_env(c, s.run.environment) : NULL;
		if (env && env->slack_channel)
			channel = env->slack_channel;
		/* a bot token edits one message per run; a webhook posts each state */
		/* a rollback is its own message */
		if (n == SW_NOTICE_ROLLBACK)
			snprintf(key, sizeof(key), "run:%lld:rollback", (long long)run_id);
		else
			snprintf(key, sizeof(key), c->slack_bot_token.value ? "run:%lld" : "run:%lld:%s",
				 (long long)run_id, n == SW_NOTICE_END ? "end" : "start");
		rc = sw_outbox_slack(st, channel, key, msg);
		json_decref(msg);
		if (rc < 0)
			rc = report_failed(rc, "report.slack", run_id);
	}
out:
	snapshot_release(&s);
	sw_outbox_kick(deps->outbox);
	return rc;
}
