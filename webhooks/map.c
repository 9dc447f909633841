/*
 * map.c - from a parsed event to what slipway should do about it (see
 * webhooks.h for the rules). The decision is all strings so the caller can
 * store it as is; nothing here looks at storage or the clock.
 */
#include "webhooks/webhooks.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int ignore(struct sw_webhook_decision *d, char *reason)
{
	d->verdict = SW_WEBHOOK_IGNORE;
	d->reason = reason;
	return 0;
}

static char *lower(const char *s)
{
	char *o = sw_strdup(s);
	for (char *p = o; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return o;
}

static int all_zeros(const char *sha)
{
	if (!sha || !*sha)
		return 0;
	for (; *sha; sha++)
		if (*sha != '0')
			return 0;
	return 1;
}

static int map_push(struct sw_webhook_decision *d, const struct sw_config *cfg,
		    const struct sw_gh_event *ev, const struct sw_cfg_repo *repo)
{
	const struct sw_cfg_env *env;
	char *key;

	if (!ev->push.ref || !ev->push.after)
		return sw_error_setc(SW_EINVALID, "push event without ref or after");
	if (ev->push.tag || !strncmp(ev->push.ref, "refs/tags/", 10))
		return ignore(d, sw_strdup("tag push"));
	if (!ev->push.branch)
		return ignore(d, sw_asprintf("ref %s is not a branch", ev->push.ref));
	if (ev->push.deleted || all_zeros(ev->push.after))
		return ignore(d, sw_asprintf("branch %s deleted", ev->push.branch));
	env = sw_config_env_for_branch(cfg, repo->name, ev->push.branch);
	if (!env)
		return ignore(d, sw_asprintf("branch %s is not tracked by any environment",
					     ev->push.branch));

	d->verdict = SW_WEBHOOK_RUN;
	d->kind = sw_strdup("push");
	d->repo = sw_strdup(repo->name);
	d->environment = sw_strdup(env->name);
	d->commit = sw_strdup(ev->push.after);
	d->branch = sw_strdup(ev->push.branch);
	if (ev->push.head_title)
		d->title = sw_strdup(ev->push.head_title);
	if (ev->push.head_message)
		d->message = sw_strdup(ev->push.head_message);
	if (ev->push.head_author)
		d->author = sw_strdup(ev->push.head_author);
	else if (ev->push.pusher)
		d->author = sw_strdup(ev->push.pusher);
	else if (ev->sender)
		d->author = sw_strdup(ev->sender);
	if (ev->push.compare)
		d->url = sw_strdup(ev->push.compare);
	key = lower(repo->name);
	d->supersede_key = sw_asprintf("push:%s:%s", key, env->name);
	free(key);
	return 0;
}

static int runs_on(const char *action)
{
	static const char *const run_actions[] = {
		"opened", "reopened", "synchronize", "ready_for_review", NULL
	};
	for (size_t i = 0; run_actions[i]; i++)
		if (!strcmp(action, run_actions[i]))
			return 1;
	return 0;
}

static int map_pull_request(struct sw_webhook_decision *d, const struct sw_gh_event *ev,
			    const struct sw_cfg_repo *repo)
{
	char *key;

	if (!ev->action || !ev->pr.head_sha || !ev->pr.head_ref || !ev->pr.base_ref)
		return sw_error_setc(SW_EINVALID,
				     "pull_request event without action, head or base");
	if (!runs_on(ev->action))
		return ignore(d, sw_asprintf("pull request action %s is not run", ev->action));
	if (ev->pr.draft)
		return ignore(d, sw_asprintf("pull request #%lld is a draft",
					     (long long)ev->pr.number));

	d->verdict = SW_WEBHOOK_RUN;
	d->kind = sw_strdup("pull_request");
	d->repo = sw_strdup(repo->name);
	d->commit = sw_strdup(ev->pr.head_sha);
	d->branch = sw_strdup(ev->pr.head_ref);
	d->base = sw_strdup(ev->pr.base_ref);
	d->pr_number = ev->pr.number;
	if (ev->pr.title)
		d->title = sw_strdup(ev->pr.title);
	if (ev->pr.user)
		d->author = sw_strdup(ev->pr.user);
	else if (ev->sender)
		d->author = sw_strdup(ev->sender);
	if (ev->pr.html_url)
		d->url = sw_strdup(ev->pr.html_url);
	d->from_fork = !ev->pr.head_repo || strcasecmp(ev->pr.head_repo, ev->repo) != 0;
	key = lower(repo->name);
	d->supersede_key = sw_asprintf("pr:%s#%lld", key, (long long)ev->pr.number);
	free(key);
	return 0;
}

int sw_webhook_map(struct sw_webhook_decision *out, const struct sw_config *cfg,
		   const struct sw_gh_event *ev)
{
	const struct sw_cfg_repo *repo;

	if (!ev->event)
		return sw_error_setc(SW_EINVALID, "event has no name");
	if (ev->kind == SW_GH_PING) {
		out->verdict = SW_WEBHOOK_PING;
		out->reason = sw_strdup(ev->ping.zen ? ev->ping.zen : "ping");
		return 0;
	}
	if (ev->kind != SW_GH_PUSH && ev->kind != SW_GH_PULL_REQUEST)
		return ignore(out, sw_asprintf("event %.64s is not handled", ev->event));
	if (!ev->repo)
		return sw_error_setc(SW_EINVALID, "%s event without a repository", ev->event);
	repo = sw_config_repo(cfg, ev->repo);
	if (!repo)
		return ignore(out, sw_asprintf("repository %.200s is not configured", ev->repo));
	if (ev->kind == SW_GH_PUSH)
		return map_push(out, cfg, ev, repo);
	return map_pull_request(out, ev, repo);
}

void sw_webhook_decision_release(struct sw_webhook_decision *d)
{
	if (!d)
		return;
	free(d->reason);
	free(d->kind);
	free(d->repo);
	free(d->environment);
	free(d->commit);
	free(d->branch);
	free(d->base);
	free(d->title);
	free(d->message);
	free(d->author);
	free(d->url);
	free(d->supersede_key);
	memset(d, 0, sizeof(*d));
	d->verdict = SW_WEBHOOK_IGNORE;
}

const char *sw_webhook_verdict_str(enum sw_webhook_verdict v)
{
	switch (v) {
	case SW_WEBHOOK_IGNORE: return "ignore";
	case SW_WEBHOOK_PING: return "ping";
	case SW_WEBHOOK_RUN: return "run";
	}
	return "?";
}
