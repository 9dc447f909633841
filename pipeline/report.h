/*
 * report.h - what slipway tells GitHub and Slack about a run, as JSON
 * bodies ready for the outbox. Pure functions: no I/O, no clock, no storage;
 * the engine fills the plain structs below from storage and hands the
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
#ifndef SW_PIPELINE_REPORT_H
#define SW_PIPELINE_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

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

/* Number of code points in valid UTF-8 `s`. */
size_t sw_report_utf8_len(const char *s);

/* "850ms", "12s", "3m 07s", "1h 02m"; into buf. Negative reads as 0. */
void sw_report_duration(char *buf, size_t size, int64_t ms);

#endif
