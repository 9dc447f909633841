/*
 * parse.c - GitHub event payloads into struct sw_gh_event (see webhooks.h).
 *
 * The payload is scanned once (json.h: validated as strictly as jansson
 * with JSON_REJECT_DUPLICATES, without building a tree) keeping only the
 * values at the paths listed below. Field access goes through a few helpers
 * that record the first problem, so each event reader is a flat list of
 * fields and reports "push payload: ref: missing".
 */
#include "webhooks/webhooks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "webhooks/json-int.h"

/* Every path any event reader looks at; the scan keeps these values only. */
enum node {
	N_ROOT,
	N_ACTION,
	N_REPO, N_REPO_FULL_NAME, N_REPO_CLONE_URL, N_REPO_SSH_URL, N_REPO_DEFAULT_BRANCH,
	N_SENDER, N_SENDER_LOGIN,
	N_REF, N_BEFORE, N_AFTER, N_CREATED, N_DELETED, N_FORCED,
	N_HEAD, N_HEAD_ID, N_HEAD_MESSAGE, N_HEAD_AUTHOR, N_HEAD_AUTHOR_NAME,
	N_PUSHER, N_PUSHER_NAME, N_COMPARE,
	N_NUMBER,
	N_PR, N_PR_NUMBER, N_PR_TITLE, N_PR_DRAFT, N_PR_STATE, N_PR_MERGED, N_PR_MERGE_SHA,
	N_PR_HEAD, N_PR_HEAD_REF, N_PR_HEAD_SHA, N_PR_HEAD_REPO, N_PR_HEAD_REPO_NAME,
	N_PR_BASE, N_PR_BASE_REF, N_PR_BASE_SHA, N_PR_HTML_URL, N_PR_USER, N_PR_USER_LOGIN,
	N_ZEN, N_HOOK_ID, N_HOOK, N_HOOK_HOOK_ID,
	N_COUNT
};

static const struct sw_webhook_json_path paths[N_COUNT] = {
	[N_ROOT] = { -1, NULL },
	[N_ACTION] = { N_ROOT, "action" },
	[N_REPO] = { N_ROOT, "repository" },
	[N_REPO_FULL_NAME] = { N_REPO, "full_name" },
	[N_REPO_CLONE_URL] = { N_REPO, "clone_url" },
	[N_REPO_SSH_URL] = { N_REPO, "ssh_url" },
	[N_REPO_DEFAULT_BRANCH] = { N_REPO, "default_branch" },
	[N_SENDER] = { N_ROOT, "sender" },
	[N_SENDER_LOGIN] = { N_SENDER, "login" },
	[N_REF] = { N_ROOT, "ref" },
	[N_BEFORE] = { N_ROOT, "before" },
	[N_AFTER] = { N_ROOT, "after" },
	[N_CREATED] = { N_ROOT, "created" },
	[N_DELETED] = { N_ROOT, "deleted" },
	[N_FORCED] = { N_ROOT, "forced" },
	[N_HEAD] = { N_ROOT, "head_commit" },
	[N_HEAD_ID] = { N_HEAD, "id" },
	[N_HEAD_MESSAGE] = { N_HEAD, "message" },
	[N_HEAD_AUTHOR] = { N_HEAD, "author" },
	[N_HEAD_AUTHOR_NAME] = { N_HEAD_AUTHOR, "name" },
	[N_PUSHER] = { N_ROOT, "pusher" },
	[N_PUSHER_NAME] = { N_PUSHER, "name" },
	[N_COMPARE] = { N_ROOT, "compare" },
	[N_NUMBER] = { N_ROOT, "number" },
	[N_PR] = { N_ROOT, "pull_request" },
	[N_PR_NUMBER] = { N_PR, "number" },
	[N_PR_TITLE] = { N_PR, "title" },
	[N_PR_DRAFT] = { N_PR, "draft" },
	[N_PR_STATE] = { N_PR, "state" },
	[N_PR_MERGED] = { N_PR, "merged" },
	[N_PR_MERGE_SHA] = { N_PR, "merge_commit_sha" },
	[N_PR_HEAD] = { N_PR, "head" },
	[N_PR_HEAD_REF] = { N_PR_HEAD, "ref" },
	[N_PR_HEAD_SHA] = { N_PR_HEAD, "sha" },
	[N_PR_HEAD_REPO] = { N_PR_HEAD, "repo" },
	[N_PR_HEAD_REPO_NAME] = { N_PR_HEAD_REPO, "full_name" },
	[N_PR_BASE] = { N_PR, "base" },
	[N_PR_BASE_REF] = { N_PR_BASE, "ref" },
	[N_PR_BASE_SHA] = { N_PR_BASE, "sha" },
	[N_PR_HTML_URL] = { N_PR, "html_url" },
	[N_PR_USER] = { N_PR, "user" },
	[N_PR_USER_LOGIN] = { N_PR_USER, "login" },
	[N_ZEN] = { N_ROOT, "zen" },
	[N_HOOK_ID] = { N_ROOT, "hook_id" },
	[N_HOOK] = { N_ROOT, "hook" },
	[N_HOOK_HOOK_ID] = { N_HOOK, "id" },
};

struct reader {
	const char *json;
	struct sw_webhook_json_value vals[N_COUNT];
	const char *what;     /* "push payload" */
	int rc;               /* first failure, 0 while none */
};

/* "pull_request.head.sha" for a node, in `buf`. */
static const char *path_name(enum node n, char *buf, size_t size)
{
	const char *steps[8];
	size_t k = 0, used = 0;
	for (int i = (int)n; i > 0 && k < 8; i = paths[i].parent)
		steps[k++] = paths[i].key;
	buf[0] = '\0';
	while (k--) {
		int w = snprintf(buf + used, size - used, "%s%s", used ? "." : "", steps[k]);
		if (w < 0 || (size_t)w >= size - used)
			break;
		used += (size_t)w;
	}
	return buf;
}

static void fail(struct reader *r, enum node n, const char *fmt, const char *arg)
{
	char detail[128], path[96];

	if (r->rc)
		return;
	r->rc = SW_EINVALID;
	snprintf(detail, sizeof(detail), fmt, arg);
	sw_error_setc(SW_EINVALID, "%s: %s: %s", r->what, path_name(n, path, sizeof(path)), detail);
}

/*
 * The value at a node, or NULL when any step is missing or null (the scan
 * records a node only below objects, as the old lookup stepped through
 * objects only).
 */
static const struct sw_webhook_json_value *lookup(struct reader *r, enum node n)
{
	const struct sw_webhook_json_value *v = &r->vals[n];
	return v->type == SW_WJ_ABSENT || v->type == SW_WJ_NULL ? NULL : v;
}

/* A string field: NULL when absent or null; mistyped or required-but-absent fail. */
static char *get_str(struct reader *r, enum node n, int required)
{
	const struct sw_webhook_json_value *v = lookup(r, n);
	if (!v) {
		if (required)
			fail(r, n, "%s", "missing");
		return NULL;
	}
	if (v->type != SW_WJ_STRING) {
		fail(r, n, "expected a string, found %s", sw_webhook_json_type_name(v->type));
		return NULL;
	}
	return sw_webhook_json_string(r->json, v);
}

static int get_bool(struct reader *r, enum node n)
{
	const struct sw_webhook_json_value *v = lookup(r, n);
	if (!v)
		return 0;
	if (v->type != SW_WJ_TRUE && v->type != SW_WJ_FALSE) {
		fail(r, n, "expected a boolean, found %s", sw_webhook_json_type_name(v->type));
		return 0;
	}
	return v->type == SW_WJ_TRUE;
}

/* An integer field; 0 when absent; `*found` tells whether it was there. */
static int64_t get_int(struct reader *r, enum node n, int *found)
{
	const struct sw_webhook_json_value *v = lookup(r, n);
	if (found)
		*found = 0;
	if (!v)
		return 0;
	if (v->type != SW_WJ_INTEGER) {
		fail(r, n, "expected an integer, found %s", sw_webhook_json_type_name(v->type));
		return 0;
	}
	if (found)
		*found = 1;
	return v->integer;
}

static char *first_line(const char *s)
{
	if (!s)
		return NULL;
	return sw_strndup(s, strcspn(s, "\r\n"));
}

static char *strip_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	if (s && !strncmp(s, prefix, n) && s[n])
		return sw_strdup(s + n);
	return NULL;
}

static void read_common(struct reader *r, struct sw_gh_event *ev, int repo_required)
{
	ev->action = get_str(r, N_ACTION, 0);
	ev->repo = get_str(r, N_REPO_FULL_NAME, repo_required);
	ev->clone_url = get_str(r, N_REPO_CLONE_URL, 0);
	ev->ssh_url = get_str(r, N_REPO_SSH_URL, 0);
	ev->default_branch = get_str(r, N_REPO_DEFAULT_BRANCH, 0);
	ev->sender = get_str(r, N_SENDER_LOGIN, 0);
}

static void read_push(struct reader *r, struct sw_gh_event *ev)
{
	ev->push.ref = get_str(r, N_REF, 1);
	ev->push.branch = strip_prefix(ev->push.ref, "refs/heads/");
	ev->push.tag = strip_prefix(ev->push.ref, "refs/tags/");
	ev->push.before = get_str(r, N_BEFORE, 0);
	ev->push.after = get_str(r, N_AFTER, 1);
	ev->push.created = get_bool(r, N_CREATED);
	ev->push.deleted = get_bool(r, N_DELETED);
	ev->push.forced = get_bool(r, N_FORCED);
	ev->push.head_id = get_str(r, N_HEAD_ID, 0);
	ev->push.head_message = get_str(r, N_HEAD_MESSAGE, 0);
	ev->push.head_title = first_line(ev->push.head_message);
	ev->push.head_author = get_str(r, N_HEAD_AUTHOR_NAME, 0);
	ev->push.pusher = get_str(r, N_PUSHER_NAME, 0);
	ev->push.compare = get_str(r, N_COMPARE, 0);
}

static void read_pull_request(struct reader *r, struct sw_gh_event *ev)
{
	int found = 0;
	const struct sw_webhook_json_value *pr = lookup(r, N_PR);

	if (!ev->action)
		fail(r, N_ACTION, "%s", "missing");
	if (!pr || pr->type != SW_WJ_OBJECT)
		fail(r, N_PR, "%s", pr ? "expected an object" : "missing");
	ev->pr.number = get_int(r, N_NUMBER, &found);
	if (!found)
		ev->pr.number = get_int(r, N_PR_NUMBER, &found);
	if (!found)
		fail(r, N_NUMBER, "%s", "missing");
	else if (ev->pr.number <= 0)
		fail(r, N_NUMBER, "%s", "expected a positive integer");
	ev->pr.title = get_str(r, N_PR_TITLE, 0);
	ev->pr.draft = get_bool(r, N_PR_DRAFT);
	ev->pr.state = get_str(r, N_PR_STATE, 0);
	ev->pr.merged = get_bool(r, N_PR_MERGED);
	/* GitHub fills merge_commit_sha with a test merge too; only a merge makes it real. */
	if (ev->pr.merged)
		ev->pr.merge_commit_sha = get_str(r, N_PR_MERGE_SHA, 0);
	ev->pr.head_ref = get_str(r, N_PR_HEAD_REF, 1);
	ev->pr.head_sha = get_str(r, N_PR_HEAD_SHA, 1);
	ev->pr.head_repo = get_str(r, N_PR_HEAD_REPO_NAME, 0);
	ev->pr.base_ref = get_str(r, N_PR_BASE_REF, 1);
	ev->pr.base_sha = get_str(r, N_PR_BASE_SHA, 0);
	ev->pr.html_url = get_str(r, N_PR_HTML_URL, 0);
	ev->pr.user = get_str(r, N_PR_USER_LOGIN, 0);
}

static void read_ping(struct reader *r, struct sw_gh_event *ev)
{
	int found = 0;
	ev->ping.zen = get_str(r, N_ZEN, 0);
	ev->ping.hook_id = get_int(r, N_HOOK_ID, &found);
	if (!found)
		ev->ping.hook_id = get_int(r, N_HOOK_HOOK_ID, NULL);
}

int sw_webhook_parse(struct sw_gh_event *out, const char *event_name,
		     const char *json, size_t len)
{
	struct reader r;
	char what[96];

	if (!event_name || !*event_name)
		return sw_error_setc(SW_EINVALID, "missing X-GitHub-Event header");
	out->event = sw_strdup(event_name);
	if (!strcmp(event_name, "push"))
		out->kind = SW_GH_PUSH;
	else if (!strcmp(event_name, "pull_request"))
		out->kind = SW_GH_PULL_REQUEST;
	else if (!strcmp(event_name, "ping"))
		out->kind = SW_GH_PING;
	else
		out->kind = SW_GH_OTHER;
	snprintf(what, sizeof(what), "%.64s payload", event_name);
	r.what = what;
	r.rc = 0;
	r.json = json ? json : "";

	if (sw_webhook_json_scan(r.json, json ? len : 0, paths, N_COUNT, r.vals) < 0) {
		sw_error_prefix("%s: not JSON", what);
		return SW_EINVALID;
	}
	if (r.vals[N_ROOT].type != SW_WJ_OBJECT)
		return sw_error_setc(SW_EINVALID, "%s: expected a JSON object, found %s",
				     what, sw_webhook_json_type_name(r.vals[N_ROOT].type));

	read_common(&r, out, out->kind == SW_GH_PUSH || out->kind == SW_GH_PULL_REQUEST);
	switch (out->kind) {
	case SW_GH_PUSH: read_push(&r, out); break;
	case SW_GH_PULL_REQUEST: read_pull_request(&r, out); break;
	case SW_GH_PING: read_ping(&r, out); break;
	case SW_GH_OTHER: break;
	}
	return r.rc;
}

void sw_gh_event_release(struct sw_gh_event *ev)
{
	if (!ev)
		return;
	free(ev->event);
	free(ev->action);
	free(ev->repo);
	free(ev->clone_url);
	free(ev->ssh_url);
	free(ev->default_branch);
	free(ev->sender);
	free(ev->push.ref);
	free(ev->push.branch);
	free(ev->push.tag);
	free(ev->push.before);
	free(ev->push.after);
	free(ev->push.head_id);
	free(ev->push.head_title);
	free(ev->push.head_message);
	free(ev->push.head_author);
	free(ev->push.pusher);
	free(ev->push.compare);
	free(ev->pr.title);
	free(ev->pr.state);
	free(ev->pr.merge_commit_sha);
	free(ev->pr.head_ref);
	free(ev->pr.head_sha);
	free(ev->pr.head_repo);
	free(ev->pr.base_ref);
	free(ev->pr.base_sha);
	free(ev->pr.html_url);
	free(ev->pr.user);
	free(ev->ping.zen);
	memset(ev, 0, sizeof(*ev));
	ev->kind = SW_GH_OTHER;
}
