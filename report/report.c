/*
 * report.c - commit statuses, PR comments and Slack messages about a run
 * (see report.h). Everything is built in memory from borrowed structs; the
 * only allocations returned are the JSON values and the comment string.
 *
 * Text from users and logs goes through sw_report_utf8_clean() first, then
 * through the escaping of its destination (Markdown, Slack mrkdwn), then is
 * cut to that destination's limit.
 */
#include "report/report-int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/utf8.h"

#define ELLIPSIS "\xe2\x80\xa6"          /* U+2026 */
#define SAFE_BACKTICK "\xcb\x8b"         /* U+02CB MODIFIER LETTER GRAVE ACCENT */
#define SLACK_HEADER_MAX 150
#define SLACK_FIELD_MAX 1900             /* Slack allows 2000 per field */
#define SLACK_NOTE_MAX 2000

/* ------------------------------------------------------------------ */
/* UTF-8                                                               */
/* ------------------------------------------------------------------ */

char *sw_report_utf8_clean(const char *s, size_t len, int strip)
{
	struct sw_buf b = SW_BUF_INIT;
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	if (!s)
		len = 0;
	sw_buf_grow(&b, len);
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		size_t n;
		if (strip && c == 0x1b) {
			/* CSI: ESC [ params intermediates final; OSC: ESC ] ... BEL or ESC \ */
			i++;
			if (i < len && p[i] == '[') {
				i++;
				while (i < len && p[i] >= 0x20 && p[i] <= 0x3f)
					i++;
				if (i < len && p[i] >= 0x40 && p[i] <= 0x7e)
					i++;
			} else if (i < len && p[i] == ']') {
				i++;
				while (i < len && p[i] != 0x07 && p[i] != 0x1b && p[i] != '\n')
					i++;
				if (i < len && p[i] == 0x07)
					i++;
				else if (i + 1 < len && p[i] == 0x1b && p[i + 1] == '\\')
					i += 2;
			} else if (i < len && p[i] >= 0x20 && p[i] < 0x7f) {
				i++;
			}
			continue;
		}
		if (strip && c == '\r') {
			if (!(i + 1 < len && p[i + 1] == '\n'))
				sw_buf_addch(&b, '\n');
			i++;
			continue;
		}
		if (strip && ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)) {
			i++;
			continue;
		}
		if (c == 0) {
			sw_buf_adds(&b, SW_UTF8_REPLACEMENT);
			i++;
			continue;
		}
		n = sw_utf8_seq((const char *)p + i, len - i);
		if (!n) {
			sw_buf_adds(&b, SW_UTF8_REPLACEMENT);
			i++;
			continue;
		}
		sw_buf_add(&b, p + i, n);
		i += n;
	}
	return sw_buf_detach(&b, NULL);
}

char *sw_report_utf8_cut(const char *s, size_t max)
{
	size_t off;
	char *out;

	if (!s)
		s = "";
	if (max < 1)
		max = 1;
	if (sw_utf8_count(s) <= max)
		return sw_strdup(s);
	off = sw_utf8_offset(s, max - 1);
	out = sw_malloc(off + sizeof(ELLIPSIS));
	memcpy(out, s, off);
	memcpy(out + off, ELLIPSIS, sizeof(ELLIPSIS));
	return out;
}

/* Clean (stripping controls), then cut to `max` characters. */
static char *clean_cut(const char *s, size_t max)
{
	char *c = sw_report_utf8_clean(s, s ? strlen(s) : 0, 1);
	char *o = sw_report_utf8_cut(c, max);
	free(c);
	return o;
}

/* The first line of s, cleaned and cut. */
static char *first_line(const char *s, size_t max)
{
	char *c = sw_report_utf8_clean(s, s ? strlen(s) : 0, 1);
	char *o;
	c[strcspn(c, "\n")] = '\0';
	o = sw_report_utf8_cut(c, max);
	free(c);
	return o;
}

/* ------------------------------------------------------------------ */
/* Statuses                                                            */
/* ------------------------------------------------------------------ */

struct status_info {
	const char *name;
	const char *state;   /* GitHub */
	const char *emoji;
	const char *verb;    /* "passed" */
};

static const struct status_info statuses[] = {
	{ "queued", "pending", "\xe2\x8f\xb3", "is queued" },                  /* ⏳ */
	{ "running", "pending", "\xf0\x9f\x94\x84", "is running" },            /* 🔄 */
	{ "success", "success", "\xe2\x9c\x85", "passed" },                    /* ✅ */
	{ "failure", "failure", "\xe2\x9d\x8c", "failed" },                    /* ❌ */
	{ "error", "error", "\xf0\x9f\x92\xa5", "errored" },                   /* 💥 */
	{ "cancelled", "error", "\xf0\x9f\x9a\xab", "was cancelled" },         /* 🚫 */
	{ "interrupted", "error", "\xe2\x9a\xa0\xef\xb8\x8f", "was interrupted" }, /* ⚠️ */
	{ "skipped", "success", "\xe2\x8f\xad\xef\xb8\x8f", "was skipped" },   /* ⏭️ */
};

static const struct status_info *status_of(const char *status)
{
	for (size_t i = 0; status && i < sizeof(statuses) / sizeof(statuses[0]); i++)
		if (!strcmp(status, statuses[i].name))
			return &statuses[i];
	return &statuses[4];    /* unknown reads as error */
}

static int is_failed(const char *status)
{
	const char *n = status_of(status)->name;
	return !strcmp(n, "failure") || !strcmp(n, "error");
}

const char *sw_report_github_state(const char *status)
{
	return status_of(status)->state;
}

void sw_report_duration(char *buf, size_t size, int64_t ms)
{
	int64_t s;
	if (ms < 0)
		ms = 0;
	s = ms / 1000;
	if (ms < 1000)
		snprintf(buf, size, "%" PRId64 "ms", ms);
	else if (s < 60)
		snprintf(buf, size, "%" PRId64 "s", s);
	else if (s < 3600)
		snprintf(buf, size, "%" PRId64 "m %02" PRId64 "s", s / 60, s % 60);
	else
		snprintf(buf, size, "%" PRId64 "h %02" PRId64 "m", s / 3600, s % 3600 / 60);
}

/* Duration of a stage or run into buf; "" when it has not finished. */
static void span(char *buf, size_t size, int64_t started, int64_t finished)
{
	if (started > 0 && finished >= started)
		sw_report_duration(buf, size, finished - started);
	else
		buf[0] = '\0';
}

char *sw_report_run_url(const struct sw_report_run *run)
{
	size_t n;
	if (!run->public_url || !*run->public_url)
		return NULL;
	n = strlen(run->public_url);
	if (run->public_url[n - 1] == '/')
		n--;
	return sw_asprintf("%.*s/runs/%" PRId64, (int)n, run->public_url, run->id);
}

/* A short commit id ("abc1234"), cleaned; "" when unknown. */
static void short_sha(char *buf, size_t size, const char *sha)
{
	size_t i = 0;
	for (; sha && sha[i] && i < 7 && i + 1 < size; i++)
		buf[i] = (sha[i] >= '0' && sha[i] <= '9') || (sha[i] >= 'a' && sha[i] <= 'f') ||
			 (sha[i] >= 'A' && sha[i] <= 'F') ? sha[i] : '?';
	buf[i] = '\0';
}

/* "pull request #12", "deploy to dev", "push", ... into b. */
static void run_subject(struct sw_buf *b, const struct sw_report_run *run, int capital)
{
	char *env = run->environment ? clean_cut(run->environment, 64) : NULL;
	const char *kind = run->kind ? run->kind : "run";

	if (run->pr_number > 0)
		sw_buf_addf(b, "%s #%" PRId64, capital ? "Pull request" : "pull request",
			    run->pr_number);
	else if (!strcmp(kind, "rollback") && env)
		sw_buf_addf(b, "%s %s", capital ? "Rollback of" : "rollback of", env);
	else if (!strcmp(kind, "drift") && env)
		sw_buf_addf(b, "%s %s", capital ? "Drift repair in" : "drift repair in", env);
	else if (env)
		sw_buf_addf(b, "%s %s", capital ? "Deploy to" : "deploy to", env);
	else
		sw_buf_addf(b, "%s %" PRId64, capital ? "Run" : "run", run->id);
	free(env);
}

/* ------------------------------------------------------------------ */
/* Commit status                                                       */
/* ------------------------------------------------------------------ */

json_t *sw_report_commit_status(const struct sw_report_run *run,
				const struct sw_report_stage *stage)
{
	const char *status = stage ? stage->status : run->status;
	const struct status_info *si = status_of(status);
	struct sw_buf d = SW_BUF_INIT;
	char dur[32], *name = NULL, *desc, *context, *url;
	json_t *o;

	if (stage) {
		name = clean_cut(stage->name ? stage->name : "stage", 100);
		span(dur, sizeof(dur), stage->started_ms, stage->finished_ms);
		sw_buf_addf(&d, "%s %s", name, si->verb);
		if (stage->exit_code > 0 && is_failed(status))
			sw_buf_addf(&d, " (exit %d)", stage->exit_code);
		context = sw_asprintf("slipway/%s", name);
	} else {
		span(dur, sizeof(dur), run->started_ms, run->finished_ms);
		run_subject(&d, run, 1);
		sw_buf_addf(&d, " %s", si->verb);
		/* Name the first failed stage: it is what a reader wants to know. */
		for (size_t i = 0; i < run->nstages; i++)
			if (is_failed(run->stages[i].status)) {
				char *sn = clean_cut(run->stages[i].name, 60);
				sw_buf_addf(&d, " at %s", sn);
				free(sn);
				break;
			}
		context = sw_strdup("slipway");
	}
	if (dur[0] && strcmp(si->name, "queued") && strcmp(si->name, "running"))
		sw_buf_addf(&d, " in %s", dur);
	if (stage && stage->reason && *stage->reason && !strcmp(status, "error")) {
		char *why = clean_cut(stage->reason, SW_REPORT_DESCRIPTION_MAX);
		sw_buf_addf(&d, ": %s", why);   /* the status says why, not only the comment */
		free(why);
	}
	desc = sw_report_utf8_cut(d.ptr, SW_REPORT_DESCRIPTION_MAX);

	o = json_object();
	json_object_set_new(o, "state", json_string(si->state));
	json_object_set_new(o, "context", json_string(context));
	json_object_set_new(o, "description", json_string(desc));
	url = sw_report_run_url(run);
	if (url)
		json_object_set_new(o, "target_url", json_string(url));
	free(url);
	free(desc);
	free(context);
	free(name);
	sw_buf_release(&d);
	return o;
}

/* ------------------------------------------------------------------ */
/* PR comment (GitHub-flavoured Markdown)                              */
/* ------------------------------------------------------------------ */

void sw_report_comment_marker(char *buf, size_t size, int64_t id)
{
	snprintf(buf, size, "<!-- slipway:run:%" PRId64 " -->", id);
}

/* Inline text: cleaned, cut, one line, Markdown punctuation escaped. */
static void md_text(struct sw_buf *b, const char *s, size_t max)
{
	char *c = clean_cut(s ? s : "", max);
	for (const char *p = c; *p; p++) {
		if (*p == '\n' || *p == '\t')
			sw_buf_addch(b, ' ');
		else if (strchr("\\`*_{}[]<>()#+-!|~&", *p))
			sw_buf_addf(b, "\\%c", *p);
		else
			sw_buf_addch(b, *p);
	}
	free(c);
}

/* A code span: backslashes do not escape inside, so backticks are replaced. */
static void md_code(struct sw_buf *b, const char *s, size_t max)
{
	char *c = clean_cut(s ? s : "", max);
	sw_buf_addch(b, '`');
	for (const char *p = c; *p; p++) {
		if (*p == '`')
			sw_buf_adds(b, SAFE_BACKTICK);
		else if (*p == '\n' || *p == '\t')
			sw_buf_addch(b, ' ');
		else if (*p == '|')
			sw_buf_adds(b, "\\|");   /* GFM tables split on | even in code spans */
		else
			sw_buf_addch(b, *p);
	}
	sw_buf_addch(b, '`');
	free(c);
}

/*
 * The last `lines` lines of a log, cleaned, backticks replaced, then cut
 * from the front to at most `budget` bytes (at a line start when one is
 * near, else at a character boundary).
 */
static char *log_tail(const char *log, size_t lines, size_t budget, int *cut)
{
	char *c = sw_report_utf8_clean(log, strlen(log), 1);
	struct sw_buf b = SW_BUF_INIT;
	size_t len = strlen(c), start, n = 0;

	*cut = 0;
	while (len && c[len - 1] == '\n')
		len--;
	start = len;
	while (start > 0) {
		if (c[start - 1] == '\n' && ++n >= lines)
			break;
		start--;
	}
	if (start > 0)
		*cut = 1;
	for (size_t i = start; i < len; i++) {
		if (c[i] == '`')
			sw_buf_adds(&b, SAFE_BACKTICK);
		else
			sw_buf_addch(&b, c[i]);
	}
	free(c);
	if (b.len > budget) {
		size_t from = b.len - budget;
		const char *nl;
		from = sw_utf8_ceil(b.ptr, b.len, from);
		nl = memchr(b.ptr + from, '\n', b.len - from);
		if (nl && (size_t)(nl - b.ptr) - from < 512)
			from = (size_t)(nl - b.ptr) + 1;
		sw_buf_consume(&b, from);
		*cut = 1;
	}
	return sw_buf_detach(&b, NULL);
}

char *sw_report_pr_comment(const struct sw_report_run *run, size_t log_lines)
{
	const struct status_info *si = status_of(run->status);
	struct sw_buf head = SW_BUF_INIT, table = SW_BUF_INIT, foot = SW_BUF_INIT;
	struct sw_buf out = SW_BUF_INIT;
	char marker[64], dur[32], sha[16];
	char *url = sw_report_run_url(run);
	size_t nfailed = 0, budget, per_log, shown = 0;

	if (!log_lines)
		log_lines = SW_REPORT_LOG_LINES;

	sw_report_comment_marker(marker, sizeof(marker), run->id);
	sw_buf_addf(&head, "%s\n### %s ", marker, si->emoji);
	run_subject(&head, run, 1);
	sw_buf_addf(&head, " %s\n\n", si->verb);
	if (run->pr_title) {
		sw_buf_adds(&head, "**");
		md_text(&head, run->pr_title, 256);
		sw_buf_adds(&head, "**  \n");
	}
	short_sha(sha, sizeof(sha), run->commit);
	sw_buf_addf(&head, "slipway run #%" PRId64, run->id);
	if (sha[0])
		sw_buf_addf(&head, " at `%s`", sha);
	if (run->branch) {
		sw_buf_adds(&head, " on ");
		md_code(&head, run->branch, 200);
	}
	span(dur, sizeof(dur), run->started_ms, run->finished_ms);
	if (dur[0])
		sw_buf_addf(&head, " in %s", dur);
	sw_buf_adds(&head, "\n\n");

	if (url)
		sw_buf_addf(&foot, "\n[View run #%" PRId64 " on slipway](%s)\n", run->id, url);

	/* The table may take what the header and footer leave, less a reserve. */
	if (run->nstages) {
		size_t limit = SW_REPORT_COMMENT_MAX - head.len - foot.len - 1024;
		sw_buf_adds(&table, "| | Stage | Status | Duration |\n| --- | --- | --- | --- |\n");
		for (size_t i = 0; i < run->nstages; i++) {
			const struct sw_report_stage *st = &run->stages[i];
			const struct status_info *ss = status_of(st->status);
			size_t mark = table.len;
			span(dur, sizeof(dur), st->started_ms, st->finished_ms);
			sw_buf_addf(&table, "| %s | ", ss->emoji);
			md_text(&table, st->name, 100);
			sw_buf_addf(&table, " | %s", ss->name);
			if (st->exit_code > 0 && is_failed(st->status))
				sw_buf_addf(&table, " (exit %d)", st->exit_code);
			sw_buf_addf(&table, " | %s |\n", dur[0] ? dur : "\xe2\x80\x94");
			if (table.len > limit) {
				sw_buf_truncate(&table, mark);
				sw_buf_addf(&table, "| | %s %zu more stages | | |\n", ELLIPSIS,
					    run->nstages - i);
				break;
			}
		}
		sw_buf_addch(&table, '\n');
	}

	for (size_t i = 0; i < run->nstages; i++)
		if (is_failed(run->stages[i].status) && run->stages[i].log_tail &&
		    run->stages[i].log_tail[0])
			nfailed++;

	sw_buf_add(&out, head.ptr, head.len);
	sw_buf_add(&out, table.ptr, table.len);

	/* Each failed log gets an equal share of what is left, less its wrapper. */
	budget = SW_REPORT_COMMENT_MAX - out.len - foot.len;
	per_log = nfailed ? budget / nfailed : 0;
	for (size_t i = 0; i < run->nstages && nfailed; i++) {
		const struct sw_report_stage *st = &run->stages[i];
		struct sw_buf w = SW_BUF_INIT;
		char *tail;
		int cut = 0;
		if (!is_failed(st->status) || !st->log_tail || !st->log_tail[0])
			continue;
		if (per_log < 512)
			continue;   /* no room left worth showing */
		/* the wrapper is under 400 bytes: the name is cut to 40 characters */
		tail = log_tail(st->log_tail, log_lines, per_log - 400, &cut);
		sw_buf_adds(&w, "<details open><summary><b>");
		md_text(&w, st->name, 40);
		if (cut)
			sw_buf_addf(&w, "</b>: end of the log</summary>\n\n```text\n%s\n",
				    ELLIPSIS);
		else
			sw_buf_adds(&w, "</b>: log</summary>\n\n```text\n");
		sw_buf_adds(&w, tail);
		sw_buf_adds(&w, "\n```\n\n</details>\n");
		free(tail);
		if (out.len + w.len + foot.len <= SW_REPORT_COMMENT_MAX) {
			sw_buf_add(&out, w.ptr, w.len);
			shown++;
		}
		sw_buf_release(&w);
	}
	(void)shown;
	sw_buf_add(&out, foot.ptr, foot.len);

	/* The arithmetic above keeps within the cap; this is the backstop. */
	if (out.len > SW_REPORT_COMMENT_MAX) {
		sw_buf_truncate(&out, sw_utf8_floor(out.ptr, out.len, SW_REPORT_COMMENT_MAX));
	}
	free(url);
	sw_buf_release(&head);
	sw_buf_release(&table);
	sw_buf_release(&foot);
	return sw_buf_detach(&out, NULL);
}

/* ------------------------------------------------------------------ */
/* Slack                                                               */
/* ------------------------------------------------------------------ */

/*
 * Slack mrkdwn: &, < and > are control characters and must be escaped.
 * `max` bounds the escaped output in characters; an entity is never split.
 */
void report_slack_text(struct sw_buf *b, const char *s, size_t max, int one_line)
{
	char *c = sw_report_utf8_clean(s ? s : "", s ? strlen(s) : 0, 1);
	size_t total = 0, used = 0, limit;

	for (int pass = 0; pass < 2; pass++) {
		limit = pass == 0 ? (size_t)-1 : total <= max ? total : max - 1;
		used = 0;
		for (const char *p = c; *p; p++) {
			const char *unit = NULL;
			size_t w = 1;
			switch (*p) {
			case '&': unit = "&amp;"; break;
			case '<': unit = "&lt;"; break;
			case '>': unit = "&gt;"; break;
			case '\n': if (one_line) unit = " "; break;
			default: break;
			}
			if (unit)
				w = strlen(unit);
			else if (sw_utf8_is_cont((unsigned char)*p))
				w = 0;      /* continuation byte: counted with its lead */
			if (used + w > limit)
				break;
			used += w;
			if (pass == 0)
				continue;
			if (unit)
				sw_buf_adds(b, unit);
			else
				sw_buf_addch(b, *p);
		}
		if (pass == 0)
			total = used;
	}
	if (total > max)
		sw_buf_adds(b, ELLIPSIS);
	free(c);
}

/* <url|text>; the URL's own |, <, > and spaces would end the link early. */
static void slack_link(struct sw_buf *b, const char *url, const char *text, size_t max)
{
	char *u = clean_cut(url, 1000);
	sw_buf_addch(b, '<');
	for (const char *p = u; *p; p++) {
		switch (*p) {
		case '&': sw_buf_adds(b, "&amp;"); break;
		case '<': sw_buf_adds(b, "%3C"); break;
		case '>': sw_buf_adds(b, "%3E"); break;
		case '|': sw_buf_adds(b, "%7C"); break;
		case ' ': sw_buf_adds(b, "%20"); break;
		case '\n': case '\t': break;
		default: sw_buf_addch(b, *p);
		}
	}
	sw_buf_addch(b, '|');
	report_slack_text(b, text, max, 1);
	sw_buf_addch(b, '>');
	free(u);
}

static json_t *mrkdwn(const char *text)
{
	return json_pack("{s:s, s:s}", "type", "mrkdwn", "text", text);
}

static json_t *section_text(const char *text)
{
	return json_pack("{s:s, s:o}", "type", "section", "text", mrkdwn(text));
}

/* The stage list, within one section's limit: every stage when it fits,
 * else a count of those that passed and the others one per line. */
static void slack_stages(struct sw_buf *b, const struct sw_report_run *run)
{
	const size_t limit = SW_REPORT_SLACK_SECTION_MAX - 100;
	char dur[32];
	size_t passed = 0;

	for (int compact = 0; compact < 2; compact++) {
		sw_buf_reset(b);
		if (compact) {
			for (size_t i = 0; i < run->nstages; i++)
				if (!strcmp(status_of(run->stages[i].status)->name, "success"))
					passed++;
			sw_buf_addf(b, "%s %zu stage%s passed\n", statuses[2].emoji, passed,
				    passed == 1 ? "" : "s");
		}
		for (size_t i = 0; i < run->nstages; i++) {
			const struct sw_report_stage *st = &run->stages[i];
			const struct status_info *ss = status_of(st->status);
			size_t mark = b->len;
			if (compact && !strcmp(ss->name, "success"))
				continue;
			span(dur, sizeof(dur), st->started_ms, st->finished_ms);
			sw_buf_addf(b, "%s *", ss->emoji);
			report_slack_text(b, st->name, 60, 1);
			sw_buf_addf(b, "* %s", ss->name);
			if (st->exit_code > 0 && is_failed(st->status))
				sw_buf_addf(b, " (exit %d)", st->exit_code);
			if (dur[0])
				sw_buf_addf(b, " %s", dur);
			sw_buf_addch(b, '\n');
			if (sw_utf8_count(b->ptr) > limit) {
				if (!compact)
					break;          /* retry compact */
				sw_buf_truncate(b, mark);
				sw_buf_addf(b, "%s and more\n", ELLIPSIS);
				return;
			}
			if (!compact && i + 1 == run->nstages)
				return;
		}
		if (compact || !run->nstages)
			return;
	}
}

json_t *sw_report_slack(const struct sw_report_run *run, enum sw_report_event event,
			const char *note)
{
	const struct status_info *si = status_of(run->status);
	struct sw_buf t = SW_BUF_INIT, x = SW_BUF_INIT;
	const char *emoji, *verb;
	char sha[16], dur[32], *hdr, *url = sw_report_run_url(run), *line;
	json_t *blocks = json_array(), *fields = json_array(), *msg;

	switch (event) {
	case SW_REPORT_STARTED: emoji = "\xf0\x9f\x9a\x80"; verb = "started"; break;  /* 🚀 */
	case SW_REPORT_PASSED: emoji = statuses[2].emoji; verb = "passed"; break;
	case SW_REPORT_FAILED:
		/* the run's own final status says how it failed, when it has one */
		if (is_failed(run->status) || !strcmp(si->name, "cancelled") ||
		    !strcmp(si->name, "interrupted")) {
			emoji = si->emoji;
			verb = si->verb;
		} else {
			emoji = statuses[3].emoji;
			verb = "failed";
		}
		break;
	case SW_REPORT_DRIFT: emoji = "\xf0\x9f\x94\x80"; verb = "found drift"; break;  /* 🔀 */
	case SW_REPORT_ROLLBACK: emoji = "\xe2\x8f\xaa"; verb = "rolled back"; break;   /* ⏪ */
	default: emoji = si->emoji; verb = si->verb; break;
	}
	short_sha(sha, sizeof(sha), run->commit);
	span(dur, sizeof(dur), run->started_ms, run->finished_ms);
	line = first_line(run->message ? run->message : run->pr_title, 150);

	/* header: plain text, no escaping, at most 150 characters */
	sw_buf_addf(&t, "%s ", emoji);
	run_subject(&t, run, 1);
	if (event == SW_REPORT_DRIFT) {
		char *env = clean_cut(run->environment ? run->environment : "?", 64);
		sw_buf_reset(&t);
		sw_buf_addf(&t, "%s Drift in %s", emoji, env);
		free(env);
	} else if (event == SW_REPORT_ROLLBACK) {
		char *env = clean_cut(run->environment ? run->environment : "?", 64);
		sw_buf_reset(&t);
		sw_buf_addf(&t, "%s Rolled back %s", emoji, env);
		free(env);
	} else {
		sw_buf_addf(&t, " %s", verb);
	}
	hdr = clean_cut(t.ptr, SLACK_HEADER_MAX);
	json_array_append_new(blocks, json_pack("{s:s, s:{s:s, s:s, s:b}}", "type", "header",
						"text", "type", "plain_text", "text", hdr,
						"emoji", 1));

	/* fallback text, shown in notifications */
	sw_buf_reset(&x);
	report_slack_text(&x, hdr, SLACK_HEADER_MAX, 1);
	if (run->repo) {
		sw_buf_adds(&x, ": ");
		report_slack_text(&x, run->repo, 100, 1);
	}
	if (sha[0])
		sw_buf_addf(&x, " %s", sha);
	if (line[0]) {
		sw_buf_adds(&x, " ");
		report_slack_text(&x, line, 150, 1);
	}
	msg = json_object();
	json_object_set_new(msg, "text", json_string(x.ptr));

	/* fields */
#define FIELD(label, body) do { \
		sw_buf_reset(&x); \
		sw_buf_adds(&x, "*" label "*\n"); \
		body; \
		json_array_append_new(fields, mrkdwn(x.ptr)); \
	} while (0)
	if (run->repo)
		FIELD("Repository", report_slack_text(&x, run->repo, 100, 1));
	if (run->environment)
		FIELD("Environment", report_slack_text(&x, run->environment, 64, 1));
	if (sha[0] || line[0])
		FIELD("Commit", {
			if (sha[0])
				sw_buf_addf(&x, "`%s` ", sha);
			report_slack_text(&x, line, 150, 1);
		});
	if (run->branch)
		FIELD("Branch", report_slack_text(&x, run->branch, 100, 1));
	/* a manual sync or rollback names who asked for it */
	if (run->author && run->kind && (!strcmp(run->kind, "manual") || !strcmp(run->kind, "rollback")))
		FIELD("Requested by", report_slack_text(&x, run->author, 100, 1));
	else if (run->author)
		FIELD("Author", report_slack_text(&x, run->author, 100, 1));
	if (dur[0] && event != SW_REPORT_STARTED)
		FIELD("Duration", sw_buf_adds(&x, dur));
#undef FIELD
	if (json_array_size(fields))
		json_array_append_new(blocks, json_pack("{s:s, s:o}", "type", "section",
							"fields", fields));
	else
		json_decref(fields);

	if (run->nstages && event != SW_REPORT_STARTED) {
		slack_stages(&x, run);
		json_array_append_new(blocks, section_text(x.ptr));
	}
	if (note && *note) {
		sw_buf_reset(&x);
		report_slack_text(&x, note, SLACK_NOTE_MAX, 0);
		json_array_append_new(blocks, section_text(x.ptr));
	}
	if (run->cost && *run->cost && event != SW_REPORT_STARTED) {
		sw_buf_reset(&x);
		sw_buf_adds(&x, ":moneybag: Cost of ");
		report_slack_text(&x, run->environment ? run->environment : "?", 60, 1);
		sw_buf_adds(&x, ": ");
		report_slack_text(&x, run->cost, 300, 1);
		json_array_append_new(blocks, json_pack("{s:s, s:[o]}", "type", "context",
							"elements", mrkdwn(x.ptr)));
	}

	sw_buf_reset(&x);
	if (url) {
		char label[48];
		snprintf(label, sizeof(label), "Run #%" PRId64, run->id);
		slack_link(&x, url, label, 48);
	}
	if (run->pr_number > 0) {
		struct sw_buf l = SW_BUF_INIT;
		sw_buf_addf(&l, "PR #%" PRId64, run->pr_number);
		if (run->pr_title) {
			char *pt = first_line(run->pr_title, 100);
			sw_buf_addf(&l, ": %s", pt);
			free(pt);
		}
		if (x.len)
			sw_buf_adds(&x, "  \xc2\xb7  ");
		if (run->pr_url)
			slack_link(&x, run->pr_url, l.ptr, 120);
		else
			report_slack_text(&x, l.ptr, 120, 1);
		sw_buf_release(&l);
	}
	if (x.len)
		json_array_append_new(blocks, json_pack("{s:s, s:[o]}", "type", "context",
							"elements", mrkdwn(x.ptr)));

	json_object_set_new(msg, "blocks", blocks);
	free(hdr);
	free(line);
	free(url);
	sw_buf_release(&t);
	sw_buf_release(&x);
	return msg;
}
