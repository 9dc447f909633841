/*
 * report.h - the report room: what slipway tells GitHub and Slack, and the
 * durable sender that gets it there. It owns the bodies (report/report.c:
 * commit statuses, the PR comment edited in place, Slack messages;
 * report/cost.c: what the environments cost; pure functions) and the outbox sender (report/outbox.c: storage's `outbox`
 * rows delivered with retries, pacing and rate limits).
 *
 * May call: lib/, config/, storage/. Called by pipeline/, infra's callers
 * and daemon/.
 *
 * Sections below: Bodies, then Outbox.
 */
#ifndef SW_REPORT_H
#define SW_REPORT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

/* ======================================================================
 * Bodies (report/report.c)
 * ======================================================================
 *
 * What slipway tells GitHub and Slack about a run, as JSON bodies ready
 * for the outbox. Pure functions: no I/O, no clock, no storage; the engine fills the plain structs below from storage and hands the
 * result to the outbox sender.
 *
 * All text from users and logs (titles, messages, branch and stage names,
 * log tails) may be anything: invalid UTF-8 is replaced with U+FFFD, control
 * characters and terminal escape sequences are dropped, and each target's
 * markup is escaped, so a body is always valid JSON and within the target's
 * documented limits (see /work/shared/notes/protocols.md):
 *   commit status description  <= 140 characters
 *   PR comment body            <= 65536 characters (bytes, to be safe)
 *   Slack message              <= 50 blocks, section text <= 3000 characters,
 *                              whole payload well under 12,000 characters
 */

#define SW_REPORT_DESCRIPTION_MAX 140      /* characters */
#define SW_REPORT_COMMENT_MAX 65536        /* bytes, so characters too */
#define SW_REPORT_SLACK_SECTION_MAX 3000   /* characters */
#define SW_REPORT_SLACK_TOTAL_MAX 12000    /* characters of the JSON payload */
#define SW_REPORT_LOG_LINES 50             /* default log tail in a PR comment */

/*
 * Statuses are the storage names (storage/store.h sw_store_status_str):
 * "queued", "running", "success", "failure", "error", "cancelled",
 * "interrupted", "skipped". An unknown or NULL status reads as "error".
 * Every pointer is borrowed; NULL means "not known" unless said otherwise.
 */
struct sw_report_stage {
	const char *name;        /* never NULL */
	const char *status;
	int64_t started_ms;      /* Unix ms; 0 = not started */
	int64_t finished_ms;     /* Unix ms; 0 = not finished */
	int exit_code;           /* of the failing step; -1 = none */
	const char *log_tail;    /* the last bytes of the stage's (masked) log */
	const char *reason;      /* why it ended in error (a secret it may not have), or NULL */
};

struct sw_report_run {
	int64_t id;
	const char *kind;        /* "pull_request", "push", "deploy", "manual", "rollback", "drift" */
	const char *repo;        /* "owner/repo" */
	const char *commit;      /* full sha */
	const char *branch;
	int64_t pr_number;       /* 0 = not a PR run */
	const char *pr_title;
	const char *pr_url;
	const char *author;
	const char *message;     /* commit message; the first line is shown */
	const char *environment; /* deploy target, or NULL */
	const char *status;
	int64_t started_ms;
	int64_t finished_ms;
	const struct sw_report_stage *stages;
	size_t nstages;
	const char *public_url;  /* status page base, e.g. "https://cd.example.com"; may be NULL */
	const char *cost;        /* a deploy's environment's cost trend (sw_report_cost_line), or NULL */
};

/*
 * GitHub commit-status state for a run or stage status:
 *   queued, running          -> pending
 *   success, skipped         -> success   (a skipped stage did not fail)
 *   failure                  -> failure   (the code under test failed)
 *   error, cancelled, interrupted, unknown
 *                            -> error     (slipway or its infrastructure did
 *                                          not finish the job: not the
 *                                          commit's fault, as Travis and
 *                                          Jenkins report aborted builds)
 * Returns a static string.
 */
const char *sw_report_github_state(const char *status);

/*
 * The link to a run on the status page: "<public_url>/runs/<id>" (one
 * trailing slash of public_url dropped). NULL when public_url is NULL or
 * empty. The caller frees the result.
 */
char *sw_report_run_url(const struct sw_report_run *run);

/*
 * Body for POST /repos/{o}/{r}/statuses/{sha}:
 *   {"state", "context": "slipway/<stage>", "description", "target_url"}
 * for `stage`, or for the whole run with context "slipway" when stage is
 * NULL. description is cut to 140 characters; target_url is left out when
 * there is no public_url. Returns a new reference (json_decref it).
 */
json_t *sw_report_commit_status(const struct sw_report_run *run,
				const struct sw_report_stage *stage);

/*
 * Markdown for the PR comment about a run (new or edited in place). It
 * starts with the hidden marker "<!-- slipway:run:ID -->", then a header
 * with the result, a table of stages (status emoji, status, duration), the
 * last `log_lines` lines of each failed stage's log in a fenced block
 * (backticks in the log become U+02CB so the fence cannot be closed from
 * inside), and a link to the run. At most SW_REPORT_COMMENT_MAX bytes: the
 * log tails are cut first, then the stage table. Returns a NUL-terminated
 * string the caller frees.
 */
char *sw_report_pr_comment(const struct sw_report_run *run, size_t log_lines);

/* The marker a comment about run `id` starts with, into buf (>= 48 bytes). */
void sw_report_comment_marker(char *buf, size_t size, int64_t id);

enum sw_report_event {
	SW_REPORT_STARTED,
	SW_REPORT_PASSED,
	SW_REPORT_FAILED,
	SW_REPORT_DRIFT,         /* drift found (and healed or reported): see `note` */
	SW_REPORT_ROLLBACK,      /* rolled back after a failed deploy: see `note` */
};

/*
 * Slack message about a run: {"text": fallback, "blocks": [header, section
 * with fields (environment, commit, author, duration), section with stage
 * results, optional section with `note`, context with links]}. Works for
 * an incoming webhook as is; for chat.postMessage / chat.update the caller
 * adds "channel" (and "ts"). `note` (may be NULL) is free text such as the
 * drift summary. Returns a new reference.
 */
json_t *sw_report_slack(const struct sw_report_run *run, enum sw_report_event event,
			const char *note);

/* ---- helpers, exposed for tests and for other reporters ------------- */

/*
 * A copy of s[0..len) that is valid UTF-8: invalid bytes become U+FFFD;
 * with `strip` set, C0 controls other than \n and \t, DEL, and ANSI escape
 * sequences (ESC [ ... final byte) are dropped and \r\n becomes \n. The
 * caller frees the result.
 */
char *sw_report_utf8_clean(const char *s, size_t len, int strip);

/*
 * A copy of valid UTF-8 `s` of at most `max` characters (code points; max
 * >= 1): when longer, cut on a character boundary and end with "…"
 * (U+2026), which counts as one. The caller frees the result.
 */
char *sw_report_utf8_cut(const char *s, size_t max);


/* "850ms", "12s", "3m 07s", "1h 02m"; into buf. Negative reads as 0. */
void sw_report_duration(char *buf, size_t size, int64_t ms);

/* ======================================================================
 * What the environments cost (report/cost.c)
 * ======================================================================
 *
 * Cost Explorer's daily figures of one environment (storage's cost_daily
 * rows) summed for a report: the month of yesterday so far against the
 * month before to the same day, the services that moved most, the last 30
 * days. Days are UTC dates, as Cost Explorer's. Amounts in micro-dollars.
 */
#define SW_REPORT_COST_DAYS 30
#define SW_REPORT_COST_MOVERS 5

struct sw_store_cost;
struct sw_report_cost {
	const char *env;             /* set by the caller */
	int have;                    /* there were figures */
	char month[12], prev_month[12];  /* "December", "November" */
	int days;                    /* days of `month` counted */
	int64_t so_far, prev_same, prev_whole;
	struct { const char *service; int64_t now, before; } movers[SW_REPORT_COST_MOVERS];
	size_t nmovers;              /* services borrowed from the rows */
	int64_t daily[SW_REPORT_COST_DAYS];  /* oldest first, ending yesterday */
	char first_day[11];
	int estimated;               /* a day counted was not closed yet */
	const char *error;           /* why the figures are missing or old; set by the caller */
};

/* The UTC date of `now_s` (seconds since the epoch), "YYYY-MM-DD". */
void sw_report_utc_day(char out[11], int64_t now_s);
/* The first day of the rows a summary on `today` ("YYYY-MM-DD", UTC) needs. */
int sw_report_cost_window(char from[11], const char *today);
/* Sum `rows` (any order; other days ignored) for a report on `today`. */
int sw_report_cost_sum(struct sw_report_cost *out, const struct sw_store_cost *rows, size_t n,
		       const char *today);
/* "$123.45 in December so far (4 days); $100.00 in November's first 4: +23%"; free it. */
char *sw_report_cost_line(const struct sw_report_cost *c);
/* The Slack report of `n` environments under `title`, `note` as its footer. */
json_t *sw_report_cost_slack(const struct sw_report_cost *envs, size_t n, const char *title,
			     const char *note);
/* The last 30 days as a small inline SVG bar chart (each bar titled with
 * its day and amount); free it. */
char *sw_report_cost_svg(const struct sw_report_cost *c);
/* "Cost report, Saturday 5 December" for the report of `day` ("YYYY-MM-DD") */
void sw_report_cost_title(char *buf, size_t size, const char *day, int weekly);
/* "$1,234.56" */
void sw_report_usd(char *buf, size_t size, int64_t micro);

/* ======================================================================
 * Outbox (report/outbox.c)
 * ======================================================================
 *
 * The sender delivers the durable outbox (storage's `outbox` table) to
 * GitHub and Slack from the event loop.
 *
 * Whoever reports writes the message first, with one of the enqueue
 * functions below (usually in the same transaction as the state change it
 * reports), then calls sw_outbox_kick(). The sender picks due rows oldest
 * first and sends them through lib/http, retrying with backoff until they go
 * through, fail for good (a 4xx that no retry can fix) or are older than
 * `notify_give_up_s`. Nothing here blocks the loop beyond a few small SQLite
 * statements, and only one row per target is in memory at a time, so a
 * backlog costs rows in the database, not memory.
 *
 * Pacing, as /work/shared/notes/protocols.md asks:
 *   GitHub  mutating requests one at a time; a rate limit (403/429 with
 *           retry-after, or x-ratelimit-remaining: 0) holds every GitHub row
 *           sent with the same credentials until it lifts: those of the
 *           same App installation, or all rows of the personal access
 *           token. A held row is rescheduled to when the limit lifts.
 *
 * Credentials: with a GitHub App (sw_outbox_set_github_app(), github.app
 * configured) every GitHub row goes out with its repository's installation
 * token (github/github.h): while the token is being fetched the lane waits
 * for it (the App kicks the outbox when it is there); when none can be had
 * (the App is not installed on the repository, the installation was
 * revoked, GitHub refused the JWT) the row is retried with backoff, the
 * reason as its last error and in the log. A 401 to an installation token
 * drops it and retries the row once at once with a new one; a second 401
 * is dead. Without an App, github.token.
 *   Slack   about one message per second, one at a time.
 * GitHub and Slack are separate lanes: a slow or failing one never holds up
 * the other.
 *
 * Outcomes of one attempt:
 *   2xx                                  sent (comment id / Slack channel+ts kept)
 *   403/429 with retry-after             retry after that many seconds
 *   403 with x-ratelimit-remaining: 0    retry at x-ratelimit-reset
 *   403 "secondary rate limit", 429      exponential backoff, GitHub >= 60 s
 *   5xx, 408, network error, timeout     exponential backoff (5 s, 10 s, ... 10 min)
 *   PATCH comment 404, Slack             the stored id is forgotten and the
 *     message_not_found                  message posted anew
 *   other 4xx (401, 404, 422, ...)       dead, logged as an error
 *   Slack {ok:false}                     ratelimited and server-side errors
 *                                        retry; anything else dead
 * A row still failing `notify_give_up_s` after it last became pending is
 * dead, logged as an error. One log line per outcome (event=outbox.sent,
 * outbox.retry, outbox.dead) with the row id, key and target; never a token
 * nor the Slack webhook URL.
 *
 * Threads: everything here belongs to the loop's thread, like lib/http.
 */

struct event_base;
struct sw_http;
struct sw_store;
struct sw_config;
struct sw_outbox;

/* Outbox `kind` values the sender understands. */
#define SW_OUTBOX_KIND_STATUS "commit_status"
#define SW_OUTBOX_KIND_COMMENT "pr_comment"
#define SW_OUTBOX_KIND_SLACK "slack"

/* ------------------------------------------------------------------ */
/* Enqueueing (no sender needed: these only write the store)           */
/* ------------------------------------------------------------------ */

/*
 * Queue a commit status for `sha` of `repo` ("owner/repo"). `body` is the
 * JSON of POST /repos/{o}/{r}/statuses/{sha} (sw_report_commit_status()),
 * borrowed. Key "gh:status:REPO:SHA:CONTEXT": a newer state for the same
 * context replaces one not yet sent. Returns 0, SW_EINVALID for a bad repo,
 * sha or context, or a store error.
 */
int sw_outbox_github_status(struct sw_store *st, const char *repo, const char *sha,
			    const char *context, const json_t *body);

/*
 * Queue the PR comment about run `run_id` on PR `pr_number` of `repo`,
 * `markdown` being its whole body (sw_report_pr_comment()). Key
 * "gh:comment:REPO:RUN". The first send POSTs and keeps the returned
 * comment id (kv "outbox:gh:comment:REPO:RUN"); every later version PATCHes
 * that comment, also after a restart: one comment per run.
 */
int sw_outbox_github_comment(struct sw_store *st, const char *repo, int64_t pr_number,
			     int64_t run_id, const char *markdown);

/*
 * Queue a Slack message (sw_report_slack(), borrowed) under `key`, e.g.
 * "run:12" (stored as "slack:KEY"). `channel` overrides slack.channel for
 * the bot token (an environment's slack_channel); NULL for the default.
 * With a bot token configured the first send is chat.postMessage and later
 * versions chat.update the same message (channel and ts kept in kv
 * "outbox:slack:KEY"); with only an incoming webhook each version is a new
 * message. Versions enqueued before the previous one went out coalesce.
 */
int sw_outbox_slack(struct sw_store *st, const char *channel, const char *key,
		    const json_t *message);

/* ------------------------------------------------------------------ */
/* The sender                                                          */
/* ------------------------------------------------------------------ */

struct sw_outbox_opts {
	int64_t poll_ms;           /* look for due rows this often; 1000 */
	int64_t backoff_base_ms;   /* first retry delay, doubled each time; 5000 */
	int64_t backoff_max_ms;    /* 600000 (10 min) */
	int64_t secondary_min_ms;  /* floor for GitHub's secondary limits; 60000 */
	int64_t slack_interval_ms; /* between two Slack messages; 1000 */
	long timeout_ms;           /* one request, whole; 30000 */
	int batch;                 /* due rows loaded at once per target; 4 */
	const char *user_agent;    /* copied; NULL = "slipway/<version>" */
};
#define SW_OUTBOX_OPTS_INIT { .poll_ms = 1000, .backoff_base_ms = 5000, \
		.backoff_max_ms = 600000, .secondary_min_ms = 60000, \
		.slack_interval_ms = 1000, .timeout_ms = 30000, .batch = 4 }

/*
 * Create a sender on `base` that sends through `http` and keeps state in
 * `store`; all three and `cfg` are borrowed and must outlive it (cfg until
 * replaced with sw_outbox_set_config()). It starts looking for due rows at
 * once. Returns 0 and sets *out, or <0 with the error slot set.
 */
int sw_outbox_new(struct sw_outbox **out, struct event_base *base, struct sw_http *http,
		  struct sw_store *store, const struct sw_config *cfg);
/* The same with options (NULL = defaults); zero fields take the default. */
int sw_outbox_new_opts(struct sw_outbox **out, struct event_base *base, struct sw_http *http,
		       struct sw_store *store, const struct sw_config *cfg,
		       const struct sw_outbox_opts *opts);

/*
 * Use `cfg` from now on (after SIGHUP); the old one may be freed when this
 * returns (requests in flight copied what they need). A change of GitHub
 * URL or token lifts a rate-limit hold.
 */
void sw_outbox_set_config(struct sw_outbox *ob, const struct sw_config *cfg);

/*
 * Send GitHub rows with `app`'s installation tokens whenever it has an App
 * configured (borrowed; it must outlive the sender). Sets the App's
 * on_ready callback to kick this sender.
 */
struct sw_github_app;
void sw_outbox_set_github_app(struct sw_outbox *ob, struct sw_github_app *app);

/* Something was enqueued: look for due rows on the next loop turn. */
void sw_outbox_kick(struct sw_outbox *ob);

/*
 * Cancel requests in flight (their rows stay pending and go out after a
 * restart) and free. Call it before freeing the http client it was given.
 * NULL is a no-op.
 */
void sw_outbox_free(struct sw_outbox *ob);

struct sw_outbox_stats {
	int64_t depth;             /* pending rows (store) */
	int64_t oldest_age_ms;     /* age of the oldest pending row (store) */
	uint64_t sent;             /* counted since sw_outbox_new() */
	uint64_t failed;           /* attempts that will be retried */
	uint64_t dead;             /* rows given up */
	int in_flight;             /* requests now on the wire (0..2) */
};

/* Fill `out`; <0 (store error) leaves the depth and age at 0. */
int sw_outbox_stats(struct sw_outbox *ob, struct sw_outbox_stats *out);

#endif
