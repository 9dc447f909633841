/*
 * outbox.c - the outbox sender: delivers storage's outbox rows to GitHub and
 * Slack from the event loop (see outbox.h for the rules it follows).
 *
 * Each target is a lane with at most one request in flight. A tick (a timer
 * every poll_ms, or at once after a kick or a finished request) asks the
 * store for the oldest due rows of each idle lane and starts the first one
 * it can build; rows that cannot be sent at all (bad payload, target not
 * configured) are marked dead on the way. Everything the sender must
 * remember across a restart (a comment id, a Slack ts) is in the store: the
 * sender itself holds only the request in flight.
 *
 * Payloads are an envelope written by the enqueue functions below:
 *   commit_status  {"repo", "sha", "body": <status JSON>}
 *   pr_comment     {"repo", "pr", "run", "body": <markdown>}
 *   slack          {"channel": <string or null>, "message": <Slack JSON>}
 */
#include "report/report.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "config/config.h"
#include "github/github.h"
#include "lib/http.h"
#include "lib/log.h"
#include "lib/version.h"
#include "storage/store.h"

#define ERR_BODY_MAX 200        /* bytes of a peer's error body kept and logged */
#define MAX_HEADERS 8
/* A peer's Retry-After or reset further away than this is taken as this. */
#define HOLD_MAX_MS (3600 * 1000)

enum op {
	OP_STATUS,          /* POST statuses/{sha} */
	OP_COMMENT_POST,    /* POST issues/{n}/comments */
	OP_COMMENT_PATCH,   /* PATCH issues/comments/{id} */
	OP_SLACK_WEBHOOK,   /* POST incoming webhook */
	OP_SLACK_POST,      /* chat.postMessage */
	OP_SLACK_UPDATE,    /* chat.update */
	OP_COMMENT_FIND,    /* GET issues/{n}/comments: did a lost POST land? */
};

static const char *const op_names[] = {
	"status", "comment_create", "comment_edit", "webhook", "chat_post", "chat_update",
	"comment_find",
};

/*
 * kv value of a comment whose POST went out without its answer being
 * recorded (in flight at a crash, a timeout, a 5xx): the comment may exist.
 * The next attempt first looks for it by the marker report.c puts in every
 * comment, so a lost answer never turns into a second comment.
 */
#define COMMENT_POSTING "posting"

struct lane;

/* One request in flight: what on_done needs to judge and record it. */
struct send {
	struct sw_outbox *ob;
	struct lane *lane;
	struct sw_http_call *call;
	int64_t id, rev;
	int64_t enqueued_at;
	int attempts;
	enum op op;
	char *key;
	char *kvkey;        /* "outbox:<key>": where the comment id / Slack ts live */
	char *method;
	char *display;      /* the URL as logged: never a secret */
	int64_t started;    /* sw_mono_ms() */
	int64_t run;        /* OP_COMMENT_FIND: the run whose marker to look for */
	char *repo;         /* GitHub: the repository, for the App's token cache */
	char *app_token;    /* GitHub: the App's installation token sent, or NULL */
	int64_t installation; /* ... and its installation (the rate-limit hold's key) */
};

/*
 * GitHub's rate limits are per installation (per token for a personal
 * access token): a limit holds only the rows sent with the same
 * credentials. Key 0 is the personal access token.
 */
#define MAX_HOLDS 32
struct hold {
	int64_t installation;
	int64_t until;       /* sw_now_ms() */
};

struct lane {
	enum sw_outbox_target target;
	const char *name;
	struct send *busy;   /* the request in flight, or NULL */
	int64_t hold_until;  /* sw_now_ms(): rate limited, send nothing before */
	int64_t next_free;   /* sw_mono_ms(): pacing between two sends */
};

struct sw_outbox {
	struct event_base *base;
	struct sw_http *http;
	struct sw_store *store;
	const struct sw_config *cfg;
	struct sw_outbox_opts opts;
	char *user_agent;
	struct event *tick;
	struct lane gh, slack;
	struct sw_github_app *app;   /* may be NULL: github.token only */
	struct hold holds[MAX_HOLDS];
	int64_t refreshed_401;       /* the row whose 401 already refreshed the token */
	uint64_t nsent, nfailed, ndead;
	int freeing;
};

/* ------------------------------------------------------------------ */
/* Enqueueing                                                          */
/* ------------------------------------------------------------------ */

/* "owner/repo" with GitHub's name characters: safe as two URL segments. */
static int valid_repo(const char *repo)
{
	const char *slash;
	size_t n;

	if (!repo || !*repo)
		return 0;
	slash = strchr(repo, '/');
	if (!slash || slash == repo || !slash[1] || strchr(slash + 1, '/'))
		return 0;
	for (const char *p = repo; *p; p++)
		if (p != slash && !isalnum((unsigned char)*p) && !strchr("._-", *p))
			return 0;
	n = (size_t)(slash - repo);
	if ((n == 1 && repo[0] == '.') || (n == 2 && !strncmp(repo, "..", 2)) ||
	    !strcmp(slash + 1, ".") || !strcmp(slash + 1, ".."))
		return 0;
	return 1;
}

/* A full commit id: 40 (SHA-1) or 64 (SHA-256) hex digits. */
static int valid_sha(const char *sha)
{
	size_t n = sha ? strlen(sha) : 0;

	if (n != 40 && n != 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)sha[i]))
			return 0;
	return 1;
}

/* Serialize `env` (stolen) and enqueue it. Sorted keys: the same message
 * always gives the same text, so a replay is recognised as one. */
static int enqueue(struct sw_store *st, enum sw_outbox_target target, const char *kind,
		   const char *key, json_t *env)
{
	char *payload;
	int rc;

	if (!env)
		return sw_error_setc(SW_EINVALID, "enqueue %s: cannot build payload", key);
	payload = json_dumps(env, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(env);
	if (!payload)
		return sw_error_setc(SW_EINVALID, "enqueue %s: cannot serialize payload", key);
	rc = sw_store_outbox_enqueue(st, NULL, target, kind, key, payload);
	free(payload);
	return rc;
}

int sw_outbox_github_status(struct sw_store *st, const char *repo, const char *sha,
			    const char *context, const json_t *body)
{
	char *key;
	int rc;

	if (!valid_repo(repo))
		return sw_error_setc(SW_EINVALID, "commit status: bad repository name %s",
				     repo ? repo : "(null)");
	if (!valid_sha(sha))
		return sw_error_setc(SW_EINVALID, "commit status %s: bad commit id", repo);
	if (!context || !*context)
		return sw_error_setc(SW_EINVALID, "commit status %s: no context", repo);
	if (!json_is_object(body))
		return sw_error_setc(SW_EINVALID, "commit status %s: body is not an object", repo);
	key = sw_asprintf("gh:status:%s:%s:%s", repo, sha, context);
	rc = enqueue(st, SW_OUTBOX_GITHUB, SW_OUTBOX_KIND_STATUS, key,
		     json_pack("{s:s, s:s, s:o}", "repo", repo, "sha", sha,
			       "body", json_deep_copy(body)));
	free(key);
	return rc;
}

int sw_outbox_github_comment(struct sw_store *st, const char *repo, int64_t pr_number,
			     int64_t run_id, const char *markdown)
{
	char *key;
	int rc;

	if (!valid_repo(repo))
		return sw_error_setc(SW_EINVALID, "PR comment: bad repository name %s",
				     repo ? repo : "(null)");
	if (pr_number <= 0 || run_id <= 0)
		return sw_error_setc(SW_EINVALID, "PR comment %s: bad PR number or run id", repo);
	if (!markdown)
		return sw_error_setc(SW_EINVALID, "PR comment %s: no body", repo);
	key = sw_asprintf("gh:comment:%s:%lld", repo, (long long)run_id);
	rc = enqueue(st, SW_OUTBOX_GITHUB, SW_OUTBOX_KIND_COMMENT, key,
		     json_pack("{s:s, s:I, s:I, s:s}", "repo", repo, "pr", (json_int_t)pr_number,
			       "run", (json_int_t)run_id, "body", markdown));
	free(key);
	return rc;
}

int sw_outbox_slack(struct sw_store *st, const char *channel, const char *key,
		    const json_t *message)
{
	char *k;
	int rc;

	if (!key || !*key)
		return sw_error_setc(SW_EINVALID, "Slack message: no key");
	if (!json_is_object(message))
		return sw_error_setc(SW_EINVALID, "Slack message %s: not an object", key);
	k = sw_asprintf("slack:%s", key);
	rc = enqueue(st, SW_OUTBOX_SLACK, SW_OUTBOX_KIND_SLACK, k,
		     json_pack("{s:o, s:o}", "channel",
			       channel && *channel ? json_string(channel) : json_null(),
			       "message", json_deep_copy(message)));
	free(k);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

/* A short printable excerpt of a peer's error body for logs and last_error. */
static char *excerpt(const struct sw_buf *b)
{
	size_t n = b->len < ERR_BODY_MAX ? b->len : ERR_BODY_MAX;
	char *s = sw_malloc(n + 4);
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)b->ptr[i];
		s[o++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	while (o > 0 && s[o - 1] == ' ')
		o--;
	if (b->len > n) {
		memcpy(s + o, "...", 3);
		o += 3;
	}
	s[o] = 0;
	return s;
}

/*
 * A URL that is itself a secret (a Slack webhook) as logged: scheme, host
 * and the first path segment only, "https://hooks.slack.com/services/...".
 */
static char *redact_url(const char *url)
{
	const char *p = strstr(url, "://");
	const char *slash;

	if (!p)
		return sw_strdup("(webhook)");
	slash = strchr(p + 3, '/');
	if (!slash)
		return sw_asprintf("%.*s", (int)strcspn(url, "?#"), url);
	p = slash + 1 + strcspn(slash + 1, "/?#");
	return sw_asprintf("%.*s/...", (int)(p - url), url);
}

/* Base URL without trailing slashes. */
static char *trim_base(const char *url)
{
	size_t n = strlen(url);

	while (n > 0 && url[n - 1] == '/')
		n--;
	return sw_strndup(url, n);
}

/*
 * A header holding whole seconds (Retry-After: GitHub and Slack send
 * seconds, not dates) or epoch seconds (x-ratelimit-reset); -1 when absent
 * or odd. At most 1e10, so that times 1000 it fits anything.
 */
static int64_t header_int(const struct sw_http_result *r, const char *name)
{
	const char *v = sw_http_result_header(r, name);
	char *end;
	long long n;

	if (!v)
		return -1;
	while (*v == ' ')
		v++;
	n = strtoll(v, &end, 10);
	if (end == v || n < 0)
		return -1;
	return n < 10000000000LL ? n : 10000000000LL;
}

static int64_t backoff(const struct sw_outbox *ob, int attempts)
{
	int64_t d = ob->opts.backoff_base_ms;

	for (int i = 0; i < attempts && d < ob->opts.backoff_max_ms; i++)
		d *= 2;
	return d < ob->opts.backoff_max_ms ? d : ob->opts.backoff_max_ms;
}

static void send_free(struct send *s)
{
	if (!s)
		return;
	free(s->key);
	free(s->kvkey);
	free(s->method);
	free(s->display);
	free(s->repo);
	if (s->app_token) {
		memset(s->app_token, 0, strlen(s->app_token));
		free(s->app_token);
	}
	free(s);
}

/* GitHub: hold the rows sent with these credentials until `until`. */
static void hold_set(struct sw_outbox *ob, int64_t installation, int64_t until)
{
	int64_t now = sw_now_ms();
	struct hold *free_slot = NULL, *oldest = &ob->holds[0];

	for (int i = 0; i < MAX_HOLDS; i++) {
		struct hold *h = &ob->holds[i];
		if (h->until > now && h->installation == installation) {
			if (until > h->until)
				h->until = until;
			return;
		}
		if (h->until <= now && !free_slot)
			free_slot = h;
		if (h->until < oldest->until)
			oldest = h;
	}
	if (!free_slot)
		free_slot = oldest;
	free_slot->installation = installation;
	free_slot->until = until;
}

/* GitHub: until when rows of these credentials are held; 0 = not held. */
static int64_t hold_get(const struct sw_outbox *ob, int64_t installation)
{
	int64_t now = sw_now_ms();

	for (int i = 0; i < MAX_HOLDS; i++)
		if (ob->holds[i].until > now && ob->holds[i].installation == installation)
			return ob->holds[i].until;
	return 0;
}

/* Hold what the lane's request was sent with: the installation on GitHub,
 * the whole lane on Slack. */
static void lane_hold(struct send *s, int64_t until)
{
	if (s->lane->target == SW_OUTBOX_GITHUB)
		hold_set(s->ob, s->installation, until);
	else
		s->lane->hold_until = until;
}

static void arm(struct sw_outbox *ob, int64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	if (ob->freeing)
		return;
	evtimer_del(ob->tick);
	evtimer_add(ob->tick, &tv);
}

/* ------------------------------------------------------------------ */
/* Recording outcomes                                                  */
/* ------------------------------------------------------------------ */

static void log_line(enum sw_log_level lvl, const char *event, const struct send *s,
		     long status, const char *fmt, ...) SW_PRINTF(5, 6);

/* One line per outcome: ids, target, request, then the caller's details. */
static void log_line(enum sw_log_level lvl, const char *event, const struct send *s,
		     long status, const char *fmt, ...)
{
	char extra[1024] = "";
	va_list ap;

	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(extra, sizeof(extra), fmt, ap);
		va_end(ap);
	}
	sw_log(lvl, event, "id=%lld key=%s target=%s op=%s method=%s url=%s status=%ld "
	       "attempts=%d ms=%lld%s%s", (long long)s->id, sw_q(s->key), s->lane->name,
	       *s->method == '-' ? "-" : op_names[s->op], s->method, sw_q(s->display), status,
	       s->attempts,
	       (long long)(sw_mono_ms() - s->started), *extra ? " " : "", extra);
}

static void record_sent(struct send *s, long status, const char *result)
{
	struct sw_outbox *ob = s->ob;
	int still = 0;

	if (sw_store_outbox_mark_sent(ob->store, s->id, s->rev, result, &still) < 0) {
		log_line(SW_LOG_WARN, "outbox.store", s, status, "err=%s", sw_q(sw_error_last()));
		return;
	}
	ob->nsent++;
	log_line(SW_LOG_INFO, "outbox.sent", s, status, "%s", still ? "newer=pending" : "");
}

static void record_dead(struct send *s, long status, const char *err)
{
	struct sw_outbox *ob = s->ob;
	struct sw_store_outbox row = { 0 };
	int rc;

	/* A newer version enqueued meanwhile deserves its own try. */
	rc = sw_store_outbox_get(ob->store, s->id, &row);
	if (rc == 0 && row.state == SW_OUTBOX_PENDING && row.rev != s->rev) {
		sw_store_outbox_release(&row);
		if (sw_store_outbox_mark_failed(ob->store, s->id, err, sw_now_ms()) < 0)
			log_line(SW_LOG_WARN, "outbox.store", s, status, "err=%s",
				 sw_q(sw_error_last()));
		ob->nfailed++;
		log_line(SW_LOG_WARN, "outbox.retry", s, status, "retry_in_ms=0 "
			 "reason=newer_version err=%s", sw_q(err));
		return;
	}
	sw_store_outbox_release(&row);
	if (sw_store_outbox_mark_dead(ob->store, s->id, err) < 0) {
		log_line(SW_LOG_WARN, "outbox.store", s, status, "err=%s", sw_q(sw_error_last()));
		return;
	}
	ob->ndead++;
	log_line(SW_LOG_ERROR, "outbox.dead", s, status, "err=%s", sw_q(err));
}

/* A failed attempt: retry after `delay` ms, unless the row is past give-up. */
static void record_retry(struct send *s, long status, int64_t delay, const char *err)
{
	struct sw_outbox *ob = s->ob;
	int64_t now = sw_now_ms();
	int64_t give_up = ob->cfg->notify_give_up_s;

	/*
	 * Counted from when the row last became pending, not from its first
	 * creation: a PR comment edited again after a day is a new message.
	 */
	if (give_up > 0 && now - s->enqueued_at >= give_up * 1000) {
		char *msg = sw_asprintf("gave up after %llds: %s", (long long)give_up, err);
		record_dead(s, status, msg);
		free(msg);
		return;
	}
	if (sw_store_outbox_mark_failed(ob->store, s->id, err, now + delay) < 0) {
		log_line(SW_LOG_WARN, "outbox.store", s, status, "err=%s", sw_q(sw_error_last()));
		return;
	}
	ob->nfailed++;
	log_line(SW_LOG_WARN, "outbox.retry", s, status, "retry_in_ms=%lld err=%s",
		 (long long)delay, sw_q(err));
}

/* The stored comment id or Slack message is gone: forget it, post anew. */
static void record_repost(struct send *s, long status, const char *err)
{
	struct sw_outbox *ob = s->ob;

	if (sw_store_kv_delete(ob->store, s->kvkey) < 0) {
		record_retry(s, status, backoff(ob, s->attempts), sw_error_last());
		return;
	}
	if (sw_store_outbox_mark_failed(ob->store, s->id, err, sw_now_ms()) < 0)
		log_line(SW_LOG_WARN, "outbox.store", s, status, "err=%s", sw_q(sw_error_last()));
	ob->nfailed++;
	log_line(SW_LOG_WARN, "outbox.retry", s, status, "retry_in_ms=0 reason=repost err=%s",
		 sw_q(err));
}

/* ------------------------------------------------------------------ */
/* Judging a response                                                  */
/* ------------------------------------------------------------------ */

static int slack_transient(const char *e)
{
	static const char *const list[] = {
		"ratelimited", "rate_limited", "internal_error", "fatal_error",
		"service_unavailable", "request_timeout", "team_added_to_org", NULL,
	};
	for (int i = 0; list[i]; i++)
		if (!strcmp(e, list[i]))
			return 1;
	return 0;
}

/* 2xx from chat.postMessage / chat.update: Slack says ok inside the body. */
static void slack_chat_done(struct send *s, struct sw_http_result *r)
{
	struct sw_outbox *ob = s->ob;
	json_error_t jerr;
	json_t *j = json_loadb(r->body->ptr, r->body->len, 0, &jerr);
	json_t *ok = json_object_get(j, "ok");
	const char *e;

	if (!json_is_boolean(ok)) {
		char *ex = excerpt(r->body);
		char *msg = sw_asprintf("HTTP %ld: not a Slack API response: %s", r->status, ex);
		record_retry(s, r->status, backoff(ob, s->attempts), msg);
		free(msg);
		free(ex);
	} else if (json_is_true(ok)) {
		char *result = NULL;
		const char *ch = json_string_value(json_object_get(j, "channel"));
		const char *ts = json_string_value(json_object_get(j, "ts"));

		if (s->op == OP_SLACK_POST && ch && ts) {
			json_t *res = json_pack("{s:s, s:s}", "channel", ch, "ts", ts);
			result = json_dumps(res, JSON_COMPACT | JSON_SORT_KEYS);
			json_decref(res);
			if (sw_store_kv_set(ob->store, s->kvkey, result) < 0)
				log_line(SW_LOG_ERROR, "outbox.store", s, r->status,
					 "err=%s", sw_q(sw_error_last()));
		}
		record_sent(s, r->status, result);
		free(result);
	} else {
		e = json_string_value(json_object_get(j, "error"));
		char *msg = sw_asprintf("slack: %s", e ? e : "unknown error");
		if (e && slack_transient(e)) {
			int64_t ra = header_int(r, "retry-after");
			int64_t d = ra >= 0 ? (ra > 0 ? ra * 1000 : 1000) : backoff(ob, s->attempts);
			if (d > HOLD_MAX_MS)
				d = HOLD_MAX_MS;
			if (!strcmp(e, "ratelimited"))
				s->lane->hold_until = sw_now_ms() + d;
			record_retry(s, r->status, d, msg);
		} else if (e && s->op == OP_SLACK_UPDATE && !strcmp(e, "message_not_found")) {
			record_repost(s, r->status, msg);
		} else {
			record_dead(s, r->status, msg);
		}
		free(msg);
	}
	json_decref(j);
}

/* 201 to a comment POST: keep the new comment's id before anything else. */
static void comment_created(struct send *s, struct sw_http_result *r)
{
	struct sw_outbox *ob = s->ob;
	json_t *j = json_loadb(r->body->ptr, r->body->len, 0, NULL);
	json_t *id = json_object_get(j, "id");
	char *result = NULL;

	if (json_is_integer(id)) {
		char idbuf[32];
		snprintf(idbuf, sizeof(idbuf), "%lld", (long long)json_integer_value(id));
		if (sw_store_kv_set(ob->store, s->kvkey, idbuf) < 0)
			log_line(SW_LOG_ERROR, "outbox.store", s, r->status, "err=%s",
				 sw_q(sw_error_last()));
		result = sw_asprintf("{\"comment_id\":%s}", idbuf);
	} else {
		/* Sent it is; without an id the next version posts a new one. */
		log_line(SW_LOG_ERROR, "outbox.noid", s, r->status,
			 "err=\"created comment has no id\"");
	}
	record_sent(s, r->status, result);
	free(result);
	json_decref(j);
}

/*
 * 200 to the lookup: remember the comment carrying our marker, or forget
 * the POST (it never landed). Either way the row is still due and the next
 * tick sends it, as a PATCH or a POST.
 */
static void comment_found(struct send *s, struct sw_http_result *r)
{
	struct sw_outbox *ob = s->ob;
	json_t *j = json_loadb(r->body->ptr, r->body->len, 0, NULL);
	char marker[64];
	json_int_t found = 0;
	size_t i;
	json_t *c;
	int rc;

	if (!json_is_array(j)) {
		record_retry(s, r->status, backoff(ob, s->attempts),
			     "comment lookup: not a JSON array");
		json_decref(j);
		return;
	}
	sw_report_comment_marker(marker, sizeof(marker), s->run);
	json_array_foreach(j, i, c) {
		const char *body = json_string_value(json_object_get(c, "body"));
		json_t *id = json_object_get(c, "id");
		if (body && json_is_integer(id) && !strncmp(body, marker, strlen(marker)))
			found = json_integer_value(id);
	}
	json_decref(j);
	if (found) {
		char idbuf[32];
		snprintf(idbuf, sizeof(idbuf), "%lld", (long long)found);
		rc = sw_store_kv_set(ob->store, s->kvkey, idbuf);
	} else {
		rc = sw_store_kv_delete(ob->store, s->kvkey);
	}
	if (rc < 0)
		record_retry(s, r->status, backoff(ob, s->attempts), sw_error_last());
	else
		log_line(SW_LOG_INFO, "outbox.lookup", s, r->status, "comment=%lld",
			 (long long)found);
}

static int mentions_rate_limit(const struct sw_buf *b)
{
	return b->len && strcasestr(b->ptr, "rate limit") != NULL;
}

static void on_done(struct sw_http_result *r, void *arg)
{
	struct send *s = arg;
	struct sw_outbox *ob = s->ob;
	long st = r->status;
	int gh = s->lane->target == SW_OUTBOX_GITHUB;

	s->lane->busy = NULL;
	if (r->error) {
		record_retry(s, st, backoff(ob, s->attempts), r->error_msg);
	} else if (st >= 200 && st < 300) {
		if (s->op == OP_COMMENT_FIND)
			comment_found(s, r);
		else if (s->op == OP_COMMENT_POST)
			comment_created(s, r);
		else if (s->op == OP_SLACK_POST || s->op == OP_SLACK_UPDATE)
			slack_chat_done(s, r);
		else
			record_sent(s, st, NULL);
	} else {
		char *ex = excerpt(r->body);
		char *msg = sw_asprintf("HTTP %ld%s%s", st, *ex ? ": " : "", ex);
		int64_t ra = header_int(r, "retry-after");
		int64_t reset = header_int(r, "x-ratelimit-reset");
		const char *rem = sw_http_result_header(r, "x-ratelimit-remaining");

		if ((st == 403 || st == 429) && ra >= 0) {
			int64_t d = ra > 0 ? ra * 1000 : 1000;
			if (d > HOLD_MAX_MS)
				d = HOLD_MAX_MS;
			lane_hold(s, sw_now_ms() + d);
			record_retry(s, st, d, msg);
		} else if ((st == 403 || st == 429) && rem && atoi(rem) == 0 && *rem == '0' &&
			   reset >= 0) {
			int64_t d = reset * 1000 + 1000 - sw_now_ms();
			if (d < 1000)
				d = 1000;
			if (d > HOLD_MAX_MS)
				d = HOLD_MAX_MS;
			lane_hold(s, sw_now_ms() + d);
			record_retry(s, st, d, msg);
		} else if (st == 429 || (st == 403 && gh && mentions_rate_limit(r->body))) {
			int64_t d = backoff(ob, s->attempts);
			if (gh && d < ob->opts.secondary_min_ms)
				d = ob->opts.secondary_min_ms;
			if (gh)
				lane_hold(s, sw_now_ms() + d);
			record_retry(s, st, d, msg);
		} else if (st >= 500 || st == 408) {
			record_retry(s, st, backoff(ob, s->attempts), msg);
		} else if (st == 401 && s->app_token && ob->refreshed_401 != s->id) {
			/* an installation token refused: a new one, and one more try */
			sw_github_app_invalidate(ob->app, s->repo, s->app_token);
			ob->refreshed_401 = s->id;
			record_retry(s, st, 0, msg);
		} else if (st == 404 && s->op == OP_COMMENT_PATCH) {
			record_repost(s, st, msg);
		} else {
			record_dead(s, st, msg);
		}
		free(ex);
		free(msg);
	}
	send_free(s);
	arm(ob, 0);
}

/* ------------------------------------------------------------------ */
/* Building and starting a request                                     */
/* ------------------------------------------------------------------ */

struct req {
	enum op op;
	int64_t run;
	char *method;
	char *url;
	char *display;
	char *body;
	char *kvkey;
	char *hdr[MAX_HEADERS + 1];
	int nhdr;
	char *repo;          /* GitHub with the App: the repository */
	char *app_token;     /* ... and the installation token in the header */
	int64_t installation;
	int token_err;       /* no token to be had: the App's error */
};

static void req_release(struct req *q)
{
	free(q->method);
	free(q->url);
	free(q->display);
	free(q->body);
	free(q->kvkey);
	free(q->repo);
	if (q->app_token) {
		memset(q->app_token, 0, strlen(q->app_token));
		free(q->app_token);
	}
	for (int i = 0; i < q->nhdr; i++) {
		memset(q->hdr[i], 0, strlen(q->hdr[i]));
		free(q->hdr[i]);
	}
	memset(q, 0, sizeof(*q));
}

static void add_hdr(struct req *q, char *h)
{
	if (q->nhdr >= MAX_HEADERS) {
		free(h);
		return;
	}
	q->hdr[q->nhdr++] = h;
}

static int build_github(struct sw_outbox *ob, const struct sw_store_outbox *row, json_t *env,
			struct req *q)
{
	const struct sw_config *cfg = ob->cfg;
	const char *repo = json_string_value(json_object_get(env, "repo"));
	const char *token = cfg->github_token.value;
	char *base;
	json_t *body = json_object_get(env, "body");

	if (!valid_repo(repo))
		return sw_error_setc(SW_EINVALID, "payload: bad repository");
	if (sw_github_app_enabled(ob->app)) {
		/* the App wins: an installation token for the repository */
		int rc = sw_github_app_token(ob->app, repo, &q->app_token, &q->installation);
		if (rc < 0) {
			q->token_err = rc;
			return rc;
		}
		token = q->app_token;
		q->repo = sw_strdup(repo);
	} else if (cfg->github_app.id) {
		q->token_err = SW_ERR;
		return sw_error_setc(SW_ERR, "github.app: the private key did not load");
	}
	if (!token || !*token)
		return sw_error_setc(SW_EINVALID, "github.token is not configured");
	if (!cfg->github_api_url || !*cfg->github_api_url)
		return sw_error_setc(SW_EINVALID, "github.api_url is not configured");
	base = trim_base(cfg->github_api_url);
	if (!strcmp(row->kind, SW_OUTBOX_KIND_STATUS)) {
		const char *sha = json_string_value(json_object_get(env, "sha"));
		if (!valid_sha(sha) || !json_is_object(body)) {
			free(base);
			return sw_error_setc(SW_EINVALID, "payload: bad commit status");
		}
		q->op = OP_STATUS;
		q->method = sw_strdup("POST");
		q->url = sw_asprintf("%s/repos/%s/statuses/%s", base, repo, sha);
		q->body = json_dumps(body, JSON_COMPACT);
	} else if (!strcmp(row->kind, SW_OUTBOX_KIND_COMMENT)) {
		json_int_t pr = json_integer_value(json_object_get(env, "pr"));
		char *id = NULL;
		int rc;

		if (pr <= 0 || !json_is_string(body)) {
			free(base);
			return sw_error_setc(SW_EINVALID, "payload: bad PR comment");
		}
		q->kvkey = sw_asprintf("outbox:%s", row->idempotency_key);
		rc = sw_store_kv_get(ob->store, q->kvkey, &id);
		if (rc < 0 && rc != SW_ENOTFOUND) {
			free(base);
			return rc;    /* the store is unwell: not the message's fault */
		}
		if (id && !strcmp(id, COMMENT_POSTING)) {
			json_int_t run = json_integer_value(json_object_get(env, "run"));
			char since[32];
			time_t t = (time_t)(row->created_at / 1000 - 3600);
			struct tm tm;

			/* Comments touched since the row was made (an hour of clock skew). */
			gmtime_r(&t, &tm);
			strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
			q->op = OP_COMMENT_FIND;
			q->run = run;
			q->method = sw_strdup("GET");
			q->url = sw_asprintf("%s/repos/%s/issues/%lld/comments?since=%s&per_page=100",
					     base, repo, (long long)pr, since);
		} else if (id && *id) {
			q->op = OP_COMMENT_PATCH;
			q->method = sw_strdup("PATCH");
			q->url = sw_asprintf("%s/repos/%s/issues/comments/%s", base, repo, id);
		} else {
			q->op = OP_COMMENT_POST;
			q->method = sw_strdup("POST");
			q->url = sw_asprintf("%s/repos/%s/issues/%lld/comments", base, repo,
					     (long long)pr);
		}
		free(id);
		if (q->op != OP_COMMENT_FIND) {
			json_t *b = json_pack("{s:O}", "body", body);
			q->body = json_dumps(b, JSON_COMPACT);
			json_decref(b);
		}
	} else {
		free(base);
		return sw_error_setc(SW_EINVALID, "unknown GitHub message kind %s", row->kind);
	}
	free(base);
	q->display = sw_strdup(q->url);
	add_hdr(q, sw_strdup(SW_GITHUB_ACCEPT));
	add_hdr(q, sw_strdup(SW_GITHUB_API_VERSION));
	add_hdr(q, sw_asprintf("User-Agent: %s", ob->user_agent));
	add_hdr(q, sw_asprintf("Authorization: Bearer %s", token));
	if (q->body)
		add_hdr(q, sw_strdup("Content-Type: application/json"));
	return 0;
}

static int build_slack(struct sw_outbox *ob, const struct sw_store_outbox *row, json_t *env,
		       struct req *q)
{
	const struct sw_config *cfg = ob->cfg;
	json_t *msg = json_object_get(env, "message");
	const char *bot = cfg->slack_bot_token.value;
	const char *hook = cfg->slack_webhook_url.value;
	json_t *out;

	if (strcmp(row->kind, SW_OUTBOX_KIND_SLACK) != 0)
		return sw_error_setc(SW_EINVALID, "unknown Slack message kind %s", row->kind);
	if (!json_is_object(msg))
		return sw_error_setc(SW_EINVALID, "payload: bad Slack message");
	out = json_deep_copy(msg);
	if (bot && *bot) {
		const char *channel = json_string_value(json_object_get(env, "channel"));
		char *stored = NULL;
		json_t *prev = NULL;
		char *base;
		int rc;

		if (!channel)
			channel = cfg->slack_channel;
		if (!channel || !*channel) {
			json_decref(out);
			return sw_error_setc(SW_EINVALID, "slack.channel is not configured");
		}
		q->kvkey = sw_asprintf("outbox:%s", row->idempotency_key);
		rc = sw_store_kv_get(ob->store, q->kvkey, &stored);
		if (rc < 0 && rc != SW_ENOTFOUND) {
			json_decref(out);
			return rc;
		}
		if (stored)
			prev = json_loads(stored, 0, NULL);
		free(stored);
		base = trim_base(cfg->slack_api_url ? cfg->slack_api_url : "https://slack.com/api");
		if (json_is_string(json_object_get(prev, "channel")) &&
		    json_is_string(json_object_get(prev, "ts"))) {
			/* chat.update wants the channel id that postMessage answered. */
			q->op = OP_SLACK_UPDATE;
			q->url = sw_asprintf("%s/chat.update", base);
			json_object_set(out, "channel", json_object_get(prev, "channel"));
			json_object_set(out, "ts", json_object_get(prev, "ts"));
		} else {
			q->op = OP_SLACK_POST;
			q->url = sw_asprintf("%s/chat.postMessage", base);
			json_object_set_new(out, "channel", json_string(channel));
		}
		free(base);
		json_decref(prev);
		q->display = sw_strdup(q->url);
		add_hdr(q, sw_asprintf("Authorization: Bearer %s", bot));
		add_hdr(q, sw_strdup("Content-Type: application/json; charset=utf-8"));
	} else if (hook && *hook) {
		q->op = OP_SLACK_WEBHOOK;
		q->url = sw_strdup(hook);
		q->display = redact_url(hook);
		add_hdr(q, sw_strdup("Content-Type: application/json"));
	} else {
		json_decref(out);
		return sw_error_setc(SW_EINVALID, "slack is not configured "
				     "(neither webhook_url nor bot_token)");
	}
	q->method = sw_strdup("POST");
	add_hdr(q, sw_asprintf("User-Agent: %s", ob->user_agent));
	q->body = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	return 0;
}

/*
 * Try to start `row` on lane `l`. Returns 1 when a request is in flight, 0
 * when the row was dealt with otherwise (marked dead or failed), <0 when
 * the store failed (stop looking this tick).
 */
static int start_row(struct sw_outbox *ob, struct lane *l, const struct sw_store_outbox *row)
{
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	struct req q = { 0 };
	struct send *s = sw_calloc(1, sizeof(*s));
	json_t *env = json_loads(row->payload ? row->payload : "", 0, NULL);
	int rc;

	s->ob = ob;
	s->lane = l;
	s->id = row->id;
	s->rev = row->rev;
	s->enqueued_at = row->enqueued_at;
	s->attempts = row->attempts;
	s->key = sw_strdup(row->idempotency_key);
	s->started = sw_mono_ms();
	if (!json_is_object(env))
		rc = sw_error_setc(SW_EINVALID, "payload is not a JSON object");
	else if (l->target == SW_OUTBOX_GITHUB)
		rc = build_github(ob, row, env, &q);
	else
		rc = build_slack(ob, row, env, &q);
	json_decref(env);
	s->op = q.op;
	s->run = q.run;
	s->method = sw_strdup(q.method ? q.method : "-");
	s->display = sw_strdup(q.display ? q.display : "-");
	if ((rc == SW_EINVALID && !q.token_err) || (rc == 0 && !q.body && q.op != OP_COMMENT_FIND)) {
		char *err = sw_strdup(rc ? sw_error_last() : "cannot serialize body");
		record_dead(s, 0, err);
		free(err);
		rc = 0;
		goto done;
	}
	if (q.token_err == SW_EAGAIN) {
		/* the App's token is being fetched: on_ready kicks the lane */
		rc = 2;
		goto done;
	}
	if (q.token_err) {
		/* no token to be had now (the App is not installed, the
		 * installation was revoked, GitHub is unreachable): the row
		 * waits, with the reason as its last error */
		char *err = sw_strdup(sw_error_last());
		record_retry(s, 0, backoff(ob, s->attempts), err);
		free(err);
		rc = 0;
		goto done;
	}
	if (rc < 0) {
		log_line(SW_LOG_WARN, "outbox.store", s, 0, "err=%s", sw_q(sw_error_last()));
		goto done;
	}
	if (l->target == SW_OUTBOX_GITHUB) {
		int64_t until = hold_get(ob, q.installation);
		if (until) {
			/* rate limited: these credentials only; others go on */
			char *err = sw_asprintf("rate limited (%s %lld) until %lld", q.installation ?
						"installation" : "token", (long long)q.installation,
						(long long)until);
			if (sw_store_outbox_mark_failed(ob->store, s->id, err, until) < 0)
				log_line(SW_LOG_WARN, "outbox.store", s, 0, "err=%s",
					 sw_q(sw_error_last()));
			free(err);
			rc = 0;
			goto done;
		}
		s->repo = q.repo;
		q.repo = NULL;
		s->app_token = q.app_token;
		q.app_token = NULL;
		s->installation = q.installation;
	}
	/* From here on the comment may exist whatever we hear back. */
	if (q.op == OP_COMMENT_POST &&
	    sw_store_kv_set(ob->store, q.kvkey, COMMENT_POSTING) < 0) {
		log_line(SW_LOG_WARN, "outbox.store", s, 0, "err=%s", sw_q(sw_error_last()));
		rc = -1;
		goto done;
	}
	s->kvkey = q.kvkey;
	q.kvkey = NULL;
	q.hdr[q.nhdr] = NULL;
	o.method = q.method;
	o.url = q.url;
	o.display_url = q.display;
	o.headers = (const char *const *)q.hdr;
	o.body = q.body;
	o.body_len = q.body ? strlen(q.body) : 0;
	o.timeout_ms = ob->opts.timeout_ms;
	/* 100 comments of up to 64 KiB each, or one small answer. */
	o.max_response = q.op == OP_COMMENT_FIND ? 16u * 1024 * 1024 : 1024 * 1024;
	o.on_done = on_done;
	o.arg = s;
	if (sw_http_start(ob->http, &o, &s->call) < 0) {
		/* Bad options come from the config: retry, SIGHUP may fix it. */
		char *err = sw_strdup(sw_error_last());
		record_retry(s, 0, backoff(ob, s->attempts), err);
		free(err);
		rc = 0;
		goto done;
	}
	l->busy = s;
	s = NULL;
	rc = 1;
	log_debug("outbox.send", "id=%lld target=%s op=%s url=%s", (long long)row->id, l->name,
		  op_names[q.op], sw_q(q.display));
done:
	send_free(s);
	req_release(&q);
	return rc;
}

/* Start the oldest due row of an idle lane, marking unsendable rows dead. */
static void lane_run(struct sw_outbox *ob, struct lane *l)
{
	/* A few rounds: a batch of unsendable rows must not stall the lane. */
	for (int round = 0; round < 4 && !l->busy; round++) {
		struct sw_store_outbox_list list = { 0 };
		int64_t now = sw_now_ms();
		int rc = 0;

		if (now < l->hold_until || sw_mono_ms() < l->next_free)
			return;
		if (sw_store_outbox_due_target(ob->store, l->target, now, ob->opts.batch,
					       &list) < 0) {
			log_warn("outbox.due", "target=%s err=%s", l->name,
				 sw_q(sw_error_last()));
			return;
		}
		for (size_t i = 0; i < list.n && !l->busy && rc >= 0 && rc != 2; i++)
			rc = start_row(ob, l, &list.v[i]);
		if (l->busy && l->target == SW_OUTBOX_SLACK)
			l->next_free = sw_mono_ms() + ob->opts.slack_interval_ms;
		int more = list.n == (size_t)ob->opts.batch;
		sw_store_outbox_list_release(&list);
		if (rc < 0 || rc == 2 || !more)
			return;
	}
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sw_outbox *ob = arg;
	int64_t next = ob->opts.poll_ms;
	int64_t mono;

	lane_run(ob, &ob->gh);
	lane_run(ob, &ob->slack);
	mono = sw_mono_ms();
	if (!ob->slack.busy && ob->slack.next_free > mono && ob->slack.next_free - mono < next)
		next = ob->slack.next_free - mono;
	arm(ob, next);
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */
/* ------------------------------------------------------------------ */

int sw_outbox_new_opts(struct sw_outbox **out, struct event_base *base, struct sw_http *http,
		       struct sw_store *store, const struct sw_config *cfg,
		       const struct sw_outbox_opts *opts)
{
	struct sw_outbox_opts def = SW_OUTBOX_OPTS_INIT;
	struct sw_outbox *ob;

	*out = NULL;
	if (!base || !http || !store || !cfg)
		return sw_error_setc(SW_EINVALID, "outbox: missing loop, client, store or config");
	ob = sw_calloc(1, sizeof(*ob));
	ob->base = base;
	ob->http = http;
	ob->store = store;
	ob->cfg = cfg;
	ob->opts = opts ? *opts : def;
#define DEF(f) if (ob->opts.f <= 0) ob->opts.f = def.f
	DEF(poll_ms);
	DEF(backoff_base_ms);
	DEF(backoff_max_ms);
	DEF(secondary_min_ms);
	DEF(slack_interval_ms);
	DEF(timeout_ms);
	DEF(batch);
#undef DEF
	ob->user_agent = opts && opts->user_agent ? sw_strdup(opts->user_agent)
		: sw_strdup("slipway/" SLIPWAY_VERSION);
	ob->opts.user_agent = NULL;
	ob->gh.target = SW_OUTBOX_GITHUB;
	ob->gh.name = "github";
	ob->slack.target = SW_OUTBOX_SLACK;
	ob->slack.name = "slack";
	ob->tick = evtimer_new(base, tick_cb, ob);
	if (!ob->tick) {
		free(ob->user_agent);
		free(ob);
		return sw_error_set("outbox: cannot create timer");
	}
	arm(ob, 0);
	*out = ob;
	return 0;
}

int sw_outbox_new(struct sw_outbox **out, struct event_base *base, struct sw_http *http,
		  struct sw_store *store, const struct sw_config *cfg)
{
	return sw_outbox_new_opts(out, base, http, store, cfg, NULL);
}

static int str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

void sw_outbox_set_config(struct sw_outbox *ob, const struct sw_config *cfg)
{
	const struct sw_config *old = ob->cfg;

	/* Another installation: its rate limit is not the old one's. */
	if (str_differs(old->github_api_url, cfg->github_api_url) ||
	    str_differs(old->github_token.value, cfg->github_token.value) ||
	    str_differs(old->github_app.id, cfg->github_app.id))
		memset(ob->holds, 0, sizeof(ob->holds));
	if (str_differs(old->slack_webhook_url.value, cfg->slack_webhook_url.value) ||
	    str_differs(old->slack_bot_token.value, cfg->slack_bot_token.value))
		ob->slack.hold_until = 0;
	ob->cfg = cfg;
	arm(ob, 0);
}

static void app_ready(void *arg)
{
	sw_outbox_kick(arg);
}

void sw_outbox_set_github_app(struct sw_outbox *ob, struct sw_github_app *app)
{
	ob->app = app;
	if (app)
		sw_github_app_on_ready(app, app_ready, ob);
}

void sw_outbox_kick(struct sw_outbox *ob)
{
	if (ob)
		arm(ob, 0);
}

void sw_outbox_free(struct sw_outbox *ob)
{
	struct lane *lanes[2];

	if (!ob)
		return;
	ob->freeing = 1;
	lanes[0] = &ob->gh;
	lanes[1] = &ob->slack;
	for (int i = 0; i < 2; i++) {
		struct send *s = lanes[i]->busy;
		if (s) {
			sw_http_cancel(s->call);
			send_free(s);
			lanes[i]->busy = NULL;
		}
	}
	event_free(ob->tick);
	free(ob->user_agent);
	free(ob);
}

int sw_outbox_stats(struct sw_outbox *ob, struct sw_outbox_stats *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	out->sent = ob->nsent;
	out->failed = ob->nfailed;
	out->dead = ob->ndead;
	out->in_flight = (ob->gh.busy != NULL) + (ob->slack.busy != NULL);
	rc = sw_store_outbox_stats(ob->store, sw_now_ms(), &out->depth, &out->oldest_age_ms);
	if (rc < 0) {
		out->depth = out->oldest_age_ms = 0;
		sw_error_prefix("outbox stats");
	}
	return rc;
}
