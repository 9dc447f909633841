/*
 * parse.c - GitHub event payloads into struct sw_gh_event (see webhooks.h).
 *
 * Field access goes through a few helpers that follow a dotted path one
 * object at a time (iteratively: the path is ours, only the JSON is the
 * sender's) and record the first problem, so each event reader is a flat
 * list of fields and reports "push payload: ref: missing".
 */
#include "webhooks/webhooks.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct reader {
	json_t *root;
	const char *what;     /* "push payload" */
	int rc;               /* first failure, 0 while none */
};

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "object";
	case JSON_ARRAY: return "array";
	case JSON_STRING: return "string";
	case JSON_INTEGER:
	case JSON_REAL: return "number";
	case JSON_TRUE:
	case JSON_FALSE: return "boolean";
	case JSON_NULL: return "null";
	}
	return "?";
}

static void fail(struct reader *r, const char *path, const char *fmt, const char *arg)
{
	char detail[128];

	if (r->rc)
		return;
	r->rc = SW_EINVALID;
	snprintf(detail, sizeof(detail), fmt, arg);
	sw_error_setc(SW_EINVALID, "%s: %s: %s", r->what, path, detail);
}

/*
 * The value at dotted `path` below the root, or NULL when any step is
 * missing or null. Steps through objects only.
 */
static json_t *lookup(struct reader *r, const char *path)
{
	json_t *v = r->root;
	const char *p = path;
	while (v && *p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		char key[64];
		if (!json_is_object(v) || n >= sizeof(key))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		v = json_object_get(v, key);
		p += n + (dot ? 1 : 0);
	}
	return json_is_null(v) ? NULL : v;
}

/* A string field: NULL when absent or null; mistyped or required-but-absent fail. */
static char *get_str(struct reader *r, const char *path, int required)
{
	json_t *v = lookup(r, path);
	if (!v) {
		if (required)
			fail(r, path, "%s", "missing");
		return NULL;
	}
	if (!json_is_string(v)) {
		fail(r, path, "expected a string, found %s", type_name(v));
		return NULL;
	}
	return sw_strndup(json_string_value(v), json_string_length(v));
}

static int get_bool(struct reader *r, const char *path)
{
	json_t *v = lookup(r, path);
	if (!v)
		return 0;
	if (!json_is_boolean(v)) {
		fail(r, path, "expected a boolean, found %s", type_name(v));
		return 0;
	}
	return json_is_true(v);
}

/* An integer field; 0 when absent; `*found` tells whether it was there. */
static int64_t get_int(struct reader *r, const char *path, int *found)
{
	json_t *v = lookup(r, path);
	if (found)
		*found = 0;
	if (!v)
		return 0;
	if (!json_is_integer(v)) {
		fail(r, path, "expected an integer, found %s", type_name(v));
		return 0;
	}
	if (found)
		*found = 1;
	return (int64_t)json_integer_value(v);
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
	ev->action = get_str(r, "action", 0);
	ev->repo = get_str(r, "repository.full_name", repo_required);
	ev->clone_url = get_str(r, "repository.clone_url", 0);
	ev->ssh_url = get_str(r, "repository.ssh_url", 0);
	ev->default_branch = get_str(r, "repository.default_branch", 0);
	ev->sender = get_str(r, "sender.login", 0);
}

static void read_push(struct reader *r, struct sw_gh_event *ev)
{
	ev->push.ref = get_str(r, "ref", 1);
	ev->push.branch = strip_prefix(ev->push.ref, "refs/heads/");
	ev->push.tag = strip_prefix(ev->push.ref, "refs/tags/");
	ev->push.before = get_str(r, "before", 0);
	ev->push.after = get_str(r, "after", 1);
	ev->push.created = get_bool(r, "created");
	ev->push.deleted = get_bool(r, "deleted");
	ev->push.forced = get_bool(r, "forced");
	ev->push.head_id = get_str(r, "head_commit.id", 0);
	ev->push.head_message = get_str(r, "head_commit.message", 0);
	ev->push.head_title = first_line(ev->push.head_message);
	ev->push.head_author = get_str(r, "head_commit.author.name", 0);
	ev->push.pusher = get_str(r, "pusher.name", 0);
	ev->push.compare = get_str(r, "compare", 0);
}

static void read_pull_request(struct reader *r, struct sw_gh_event *ev)
{
	int found = 0;

	if (!ev->action)
		fail(r, "action", "%s", "missing");
	if (!json_is_object(lookup(r, "pull_request")))
		fail(r, "pull_request", "%s", lookup(r, "pull_request") ?
		     "expected an object" : "missing");
	ev->pr.number = get_int(r, "number", &found);
	if (!found)
		ev->pr.number = get_int(r, "pull_request.number", &found);
	if (!found)
		fail(r, "number", "%s", "missing");
	else if (ev->pr.number <= 0)
		fail(r, "number", "%s", "expected a positive integer");
	ev->pr.title = get_str(r, "pull_request.title", 0);
	ev->pr.draft = get_bool(r, "pull_request.draft");
	ev->pr.state = get_str(r, "pull_request.state", 0);
	ev->pr.merged = get_bool(r, "pull_request.merged");
	/* GitHub fills merge_commit_sha with a test merge too; only a merge makes it real. */
	if (ev->pr.merged)
		ev->pr.merge_commit_sha = get_str(r, "pull_request.merge_commit_sha", 0);
	ev->pr.head_ref = get_str(r, "pull_request.head.ref", 1);
	ev->pr.head_sha = get_str(r, "pull_request.head.sha", 1);
	ev->pr.head_repo = get_str(r, "pull_request.head.repo.full_name", 0);
	ev->pr.base_ref = get_str(r, "pull_request.base.ref", 1);
	ev->pr.base_sha = get_str(r, "pull_request.base.sha", 0);
	ev->pr.html_url = get_str(r, "pull_request.html_url", 0);
	ev->pr.user = get_str(r, "pull_request.user.login", 0);
}

static void read_ping(struct reader *r, struct sw_gh_event *ev)
{
	int found = 0;
	ev->ping.zen = get_str(r, "zen", 0);
	ev->ping.hook_id = get_int(r, "hook_id", &found);
	if (!found)
		ev->ping.hook_id = get_int(r, "hook.id", NULL);
}

int sw_webhook_parse(struct sw_gh_event *out, const char *event_name,
		     const char *json, size_t len)
{
	struct reader r = { NULL, NULL, 0 };
	json_error_t jerr;
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

	r.root = json_loadb(json ? json : "", json ? len : 0, JSON_REJECT_DUPLICATES, &jerr);
	if (!r.root)
		return sw_error_setc(SW_EINVALID, "%s: not JSON: %s at line %d column %d",
				     what, jerr.text, jerr.line, jerr.column);
	if (!json_is_object(r.root)) {
		sw_error_setc(SW_EINVALID, "%s: expected a JSON object, found %s",
			      what, type_name(r.root));
		json_decref(r.root);
		return SW_EINVALID;
	}

	read_common(&r, out, out->kind == SW_GH_PUSH || out->kind == SW_GH_PULL_REQUEST);
	switch (out->kind) {
	case SW_GH_PUSH: read_push(&r, out); break;
	case SW_GH_PULL_REQUEST: read_pull_request(&r, out); break;
	case SW_GH_PING: read_ping(&r, out); break;
	case SW_GH_OTHER: break;
	}
	json_decref(r.root);
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
