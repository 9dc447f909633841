/*
 * test_report.c - pipeline/report: UTF-8 cleaning and cutting, commit
 * status bodies, PR comments (size cap, fence safety) and Slack messages
 * (escaping, Block Kit limits).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/utf8.h"
#include "report/report.h"

#define T0 1700000000000LL

/* Valid UTF-8 is what sw_report_utf8_clean leaves alone. */
static void assert_valid_utf8(const char *s)
{
	char *c = sw_report_utf8_clean(s, strlen(s), 0);
	assert_string_equal(c, s);
	free(c);
}

static struct sw_report_stage stage(const char *name, const char *status, int64_t secs)
{
	struct sw_report_stage st = { name, status, T0, T0 + secs * 1000, -1, NULL, NULL };
	return st;
}

static struct sw_report_run base_run(void)
{
	struct sw_report_run r;
	memset(&r, 0, sizeof(r));
	r.id = 42;
	r.kind = "pull_request";
	r.repo = "acme/shop";
	r.commit = "0123456789abcdef0123456789abcdef01234567";
	r.branch = "feature/cart";
	r.pr_number = 12;
	r.pr_title = "Make the cart faster";
	r.pr_url = "https://github.com/acme/shop/pull/12";
	r.author = "alice";
	r.message = "Speed up the cart\n\nLong body.";
	r.status = "success";
	r.started_ms = T0;
	r.finished_ms = T0 + 63000;
	r.public_url = "https://cd.example.com/";
	return r;
}

/* ---- UTF-8 ------------------------------------------------------------ */

static void test_utf8_cut(void **state)
{
	struct sw_buf b = SW_BUF_INIT;
	char *c;
	(void)state;
	c = sw_report_utf8_cut("short", 140);
	assert_string_equal(c, "short");
	free(c);

	for (int i = 0; i < 200; i++)
		sw_buf_adds(&b, "a");
	c = sw_report_utf8_cut(b.ptr, 140);
	assert_int_equal(sw_utf8_count(c), 140);
	assert_int_equal(strlen(c), 139 + 3);
	assert_string_equal(c + 139, "\xe2\x80\xa6");
	free(c);

	/* exactly 140 characters is not cut */
	sw_buf_truncate(&b, 140);
	c = sw_report_utf8_cut(b.ptr, 140);
	assert_string_equal(c, b.ptr);
	free(c);

	/* 2-, 3- and 4-byte characters are never split */
	const char *const chars[] = { "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x9a\x80" };
	for (int k = 0; k < 3; k++) {
		sw_buf_reset(&b);
		sw_buf_adds(&b, "x");
		for (int i = 0; i < 300; i++)
			sw_buf_adds(&b, chars[k]);
		c = sw_report_utf8_cut(b.ptr, 140);
		assert_int_equal(sw_utf8_count(c), 140);
		assert_int_equal(strlen(c), 1 + 138 * strlen(chars[k]) + 3);
		assert_valid_utf8(c);
		free(c);
	}
	sw_buf_release(&b);
}

static void test_utf8_clean(void **state)
{
	char *c;
	(void)state;
	/* invalid bytes, overlong, surrogate, truncated sequence */
	c = sw_report_utf8_clean("a\xff" "b\xc0\xaf" "c\xed\xa0\x80" "d\xe2\x82", 13, 0);
	assert_valid_utf8(c);
	assert_non_null(strstr(c, "a\xef\xbf\xbd" "b"));
	assert_null(strstr(c, "\xc0"));
	free(c);
	/* terminal colours, OSC titles, other controls; \r\n -> \n; lone \r -> \n */
	c = sw_report_utf8_clean("\x1b[1;31mred\x1b[0m\x1b]0;title\x07 ok\x01\x7f\r\nx\ry", 35, 1);
	assert_string_equal(c, "red ok\nx\ny");
	free(c);
	/* an embedded NUL never ends the string early or reaches JSON */
	c = sw_report_utf8_clean("a\0b", 3, 0);
	assert_string_equal(c, "a\xef\xbf\xbd" "b");
	free(c);
	c = sw_report_utf8_clean(NULL, 5, 1);
	assert_string_equal(c, "");
	free(c);
}

static void test_duration(void **state)
{
	char b[32];
	(void)state;
	sw_report_duration(b, sizeof(b), 850);
	assert_string_equal(b, "850ms");
	sw_report_duration(b, sizeof(b), 12400);
	assert_string_equal(b, "12s");
	sw_report_duration(b, sizeof(b), 187000);
	assert_string_equal(b, "3m 07s");
	sw_report_duration(b, sizeof(b), 3720000);
	assert_string_equal(b, "1h 02m");
	sw_report_duration(b, sizeof(b), -5);
	assert_string_equal(b, "0ms");
}

/* ---- commit status ---------------------------------------------------- */

static void test_github_state(void **state)
{
	(void)state;
	assert_string_equal(sw_report_github_state("queued"), "pending");
	assert_string_equal(sw_report_github_state("running"), "pending");
	assert_string_equal(sw_report_github_state("success"), "success");
	assert_string_equal(sw_report_github_state("skipped"), "success");
	assert_string_equal(sw_report_github_state("failure"), "failure");
	assert_string_equal(sw_report_github_state("error"), "error");
	assert_string_equal(sw_report_github_state("cancelled"), "error");
	assert_string_equal(sw_report_github_state("interrupted"), "error");
	assert_string_equal(sw_report_github_state("bogus"), "error");
	assert_string_equal(sw_report_github_state(NULL), "error");
}

static void test_commit_status(void **state)
{
	struct sw_report_run r = base_run();
	struct sw_report_stage st[2] = { stage("lint", "success", 12), stage("test", "failure", 63) };
	struct sw_buf name = SW_BUF_INIT;
	json_t *o;
	const char *key;
	json_t *v;
	(void)state;
	st[1].exit_code = 2;
	r.stages = st;
	r.nstages = 2;
	r.status = "failure";

	o = sw_report_commit_status(&r, &st[1]);
	assert_int_equal(json_object_size(o), 4);
	json_object_foreach(o, key, v)
		assert_true(json_is_string(v));
	assert_string_equal(json_string_value(json_object_get(o, "state")), "failure");
	assert_string_equal(json_string_value(json_object_get(o, "context")), "slipway/test");
	assert_string_equal(json_string_value(json_object_get(o, "description")),
			    "test failed (exit 2) in 1m 03s");
	assert_string_equal(json_string_value(json_object_get(o, "target_url")),
			    "https://cd.example.com/runs/42");
	json_decref(o);

	/* the whole run names its first failed stage */
	o = sw_report_commit_status(&r, NULL);
	assert_string_equal(json_string_value(json_object_get(o, "context")), "slipway");
	assert_string_equal(json_string_value(json_object_get(o, "description")),
			    "Pull request #12 failed at test in 1m 03s");
	json_decref(o);

	/* running: pending, no duration; no public URL: no target_url */
	st[0].status = "running";
	st[0].finished_ms = 0;
	r.public_url = NULL;
	o = sw_report_commit_status(&r, &st[0]);
	assert_string_equal(json_string_value(json_object_get(o, "state")), "pending");
	assert_string_equal(json_string_value(json_object_get(o, "description")),
			    "lint is running");
	assert_null(json_object_get(o, "target_url"));
	json_decref(o);

	/* a stage name of 300 multi-byte characters: description <= 140 characters */
	for (int i = 0; i < 300; i++)
		sw_buf_adds(&name, "\xc3\xa9");
	st[0].name = name.ptr;
	o = sw_report_commit_status(&r, &st[0]);
	const char *d = json_string_value(json_object_get(o, "description"));
	assert_true(sw_utf8_count(d) <= 140);
	assert_valid_utf8(d);
	/* invalid UTF-8 in a name still gives valid JSON strings */
	json_decref(o);
	st[0].name = "bad\xff\xfename";
	o = sw_report_commit_status(&r, &st[0]);
	assert_non_null(json_object_get(o, "context"));
	assert_string_equal(json_string_value(json_object_get(o, "context")),
			    "slipway/bad\xef\xbf\xbd\xef\xbf\xbdname");
	json_decref(o);
	sw_buf_release(&name);
}

/* ---- PR comment ------------------------------------------------------- */

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void test_comment_basic(void **state)
{
	struct sw_report_run r = base_run();
	struct sw_report_stage st[3] = { stage("lint", "success", 12), stage("test", "failure", 63),
					 stage("deploy", "skipped", 0) };
	char *md;
	(void)state;
	st[1].exit_code = 1;
	st[1].log_tail = "line 1\nline 2\nline 3\nFAIL: cart_test\n";
	st[2].started_ms = 0;
	r.stages = st;
	r.nstages = 3;
	r.status = "failure";
	md = sw_report_pr_comment(&r, 2);
	assert_memory_equal(md, "<!-- slipway:run:42 -->\n", 24);
	assert_non_null(strstr(md, "### \xe2\x9d\x8c Pull request #12 failed"));
	assert_non_null(strstr(md, "| \xe2\x9c\x85 | lint | success | 12s |"));
	assert_non_null(strstr(md, "| \xe2\x9d\x8c | test | failure (exit 1) | 1m 03s |"));
	assert_non_null(strstr(md, "| deploy | skipped | \xe2\x80\x94 |"));
	assert_non_null(strstr(md, "`0123456`"));
	/* the last 2 lines only, marked as cut */
	assert_non_null(strstr(md, "```text\n\xe2\x80\xa6\nline 3\nFAIL: cart_test\n```"));
	assert_null(strstr(md, "line 2"));
	assert_non_null(strstr(md, "[View run #42 on slipway](https://cd.example.com/runs/42)"));
	free(md);
	char marker[64];
	sw_report_comment_marker(marker, sizeof(marker), 7);
	assert_string_equal(marker, "<!-- slipway:run:7 -->");
}

/* A log cannot close the fence, nor inject Markdown outside it. */
static void test_comment_fence(void **state)
{
	struct sw_report_run r = base_run();
	struct sw_report_stage st = stage("te|st`", "failure", 1);
	char *md;
	(void)state;
	st.log_tail = "ok\n```\n# Injected heading\n[click](http://evil)\n````\n~~~\n`x`\n";
	r.stages = &st;
	r.nstages = 1;
	r.status = "failure";
	r.pr_title = "Title with **bold** and <b>html</b> | pipe";
	r.branch = "we`ird|branch";
	md = sw_report_pr_comment(&r, 50);
	/* exactly one fence opens and one closes */
	assert_int_equal(count(md, "```"), 2);
	assert_non_null(strstr(md, "```text\nok\n\xcb\x8b\xcb\x8b\xcb\x8b\n# Injected heading\n"));
	assert_non_null(strstr(md, "\\*\\*bold\\*\\* and \\<b\\>html\\</b\\> \\| pipe"));
	/* a table cell cannot be split by a | in the stage name */
	assert_non_null(strstr(md, "| te\\|st\\` |"));
	assert_non_null(strstr(md, "`we\xcb\x8bird\\|branch`"));
	free(md);
}

static void test_comment_cap(void **state)
{
	struct sw_report_run r = base_run();
	struct sw_report_stage st[2] = { stage("build", "failure", 5), stage("e2e", "error", 9) };
	struct sw_buf log = SW_BUF_INIT;
	char *md;
	(void)state;
	/* 5 MB of log lines, some of them backticks (which grow when replaced) */
	for (int i = 0; sw_buf_adds(&log, i % 3 ? "``````````````````````````````\n" :
				    "error: something went wrong here \xe2\x9d\x8c\n"),
	     log.len < 5 * 1024 * 1024; i++)
		;
	st[0].log_tail = log.ptr;
	st[1].log_tail = log.ptr;
	r.stages = st;
	r.nstages = 2;
	r.status = "failure";
	md = sw_report_pr_comment(&r, 100000);
	assert_true(strlen(md) <= SW_REPORT_COMMENT_MAX);
	assert_true(strlen(md) > SW_REPORT_COMMENT_MAX - 4096);   /* the room is used */
	assert_valid_utf8(md);
	assert_int_equal(count(md, "```"), 4);
	assert_non_null(strstr(md, "<!-- slipway:run:42 -->"));
	assert_non_null(strstr(md, "| build |"));
	assert_non_null(strstr(md, "[View run #42 on slipway]"));
	assert_non_null(strstr(md, "</details>\n\n[View run"));
	free(md);
	sw_buf_release(&log);
}

/* So many stages that the table alone would pass the cap. */
static void test_comment_many_stages(void **state)
{
	struct sw_report_run r = base_run();
	size_t n = 5000;
	struct sw_report_stage *st = sw_calloc(n, sizeof(*st));
	char (*names)[32] = sw_calloc(n, 32);
	char *md;
	(void)state;
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], 32, "stage-number-%zu", i);
		st[i] = stage(names[i], i == n - 1 ? "failure" : "success", 3);
		st[i].log_tail = "boom\n";
	}
	r.stages = st;
	r.nstages = n;
	r.status = "failure";
	md = sw_report_pr_comment(&r, 10);
	assert_true(strlen(md) <= SW_REPORT_COMMENT_MAX);
	assert_non_null(strstr(md, "more stages"));
	assert_non_null(strstr(md, "[View run #42 on slipway]"));
	free(md);
	free(st);
	free(names);
}

/* ---- Slack ------------------------------------------------------------ */

static size_t json_chars(const json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	size_t n = sw_utf8_count(s);
	free(s);
	return n;
}

/* Block Kit limits, as the recorder and Slack check them. */
static void assert_slack_limits(const json_t *msg)
{
	json_t *blocks = json_object_get(msg, "blocks"), *b;
	size_t i;
	assert_true(json_is_string(json_object_get(msg, "text")));
	assert_true(json_string_length(json_object_get(msg, "text")) > 0);
	assert_true(json_is_array(blocks));
	assert_true(json_array_size(blocks) >= 1 && json_array_size(blocks) <= 50);
	json_array_foreach(blocks, i, b) {
		const char *type = json_string_value(json_object_get(b, "type"));
		assert_non_null(type);
		if (!strcmp(type, "header")) {
			json_t *t = json_object_get(b, "text");
			assert_string_equal(json_string_value(json_object_get(t, "type")),
					    "plain_text");
			assert_true(sw_utf8_count(json_string_value(
				json_object_get(t, "text"))) <= 150);
		} else if (!strcmp(type, "section")) {
			json_t *t = json_object_get(b, "text"), *f = json_object_get(b, "fields");
			assert_true(t || f);
			if (t) {
				size_t n = sw_utf8_count(json_string_value(
					json_object_get(t, "text")));
				assert_true(n >= 1 && n <= 3000);
			}
			if (f) {
				size_t k;
				json_t *e;
				assert_true(json_array_size(f) <= 10);
				json_array_foreach(f, k, e)
					assert_true(sw_utf8_count(json_string_value(
						json_object_get(e, "text"))) <= 2000);
			}
		} else {
			assert_string_equal(type, "context");
			assert_true(json_array_size(json_object_get(b, "elements")) <= 10);
		}
	}
	assert_true(json_chars(msg) < 12000);
}

/* The text of the first block of `type` (fields joined). */
static char *block_text(const json_t *msg, const char *type, int nth)
{
	json_t *blocks = json_object_get(msg, "blocks"), *b;
	size_t i;
	struct sw_buf out = SW_BUF_INIT;
	json_array_foreach(blocks, i, b) {
		if (strcmp(json_string_value(json_object_get(b, "type")), type) || nth--)
			continue;
		if (json_object_get(b, "text"))
			sw_buf_adds(&out, json_string_value(json_object_get(json_object_get(b, "text"), "text")));
		json_t *f = json_object_get(b, "fields"), *e;
		size_t k;
		json_array_foreach(f, k, e) {
			sw_buf_adds(&out, json_string_value(json_object_get(e, "text")));
			sw_buf_addch(&out, '\n');
		}
		json_t *els = json_object_get(b, "elements");
		json_array_foreach(els, k, e)
			sw_buf_adds(&out, json_string_value(json_object_get(e, "text")));
		break;
	}
	return sw_buf_detach(&out, NULL);
}

static void test_slack_shape_and_escaping(void **state)
{
	struct sw_report_run r = base_run();
	struct sw_report_stage st[2] = { stage("lint", "success", 12), stage("test", "failure", 63) };
	json_t *msg;
	char *t;
	(void)state;
	st[1].exit_code = 3;
	r.stages = st;
	r.nstages = 2;
	r.status = "failure";
	r.kind = "push";
	r.pr_number = 0;
	r.environment = "dev";
	r.author = "Tom & <Jerry>";
	r.message = "Fix <b>&amp; things</b>\nsecond line";
	r.pr_url = NULL;

	msg = sw_report_slack(&r, SW_REPORT_FAILED, "see <https://x|y> & more");
	assert_slack_limits(msg);
	t = block_text(msg, "header", 0);
	assert_string_equal(t, "\xe2\x9d\x8c Deploy to dev failed");
	free(t);
	t = block_text(msg, "section", 0);
	assert_non_null(strstr(t, "*Environment*\ndev"));
	assert_non_null(strstr(t, "*Commit*\n`0123456` Fix &lt;b&gt;&amp;amp; things&lt;/b&gt;\n"));
	assert_null(strstr(t, "second line"));
	assert_non_null(strstr(t, "*Author*\nTom &amp; &lt;Jerry&gt;"));
	assert_non_null(strstr(t, "*Duration*\n1m 03s"));
	free(t);
	t = block_text(msg, "section", 1);
	assert_string_equal(t, "\xe2\x9c\x85 *lint* success 12s\n"
			       "\xe2\x9d\x8c *test* failure (exit 3) 1m 03s\n");
	free(t);
	t = block_text(msg, "section", 2);
	assert_string_equal(t, "see &lt;https://x|y&gt; &amp; more");
	free(t);
	t = block_text(msg, "context", 0);
	assert_string_equal(t, "<https://cd.example.com/runs/42|Run #42>");
	free(t);
	assert_null(strstr(json_string_value(json_object_get(msg, "text")), "<b>"));
	json_decref(msg);

	/* a manual sync names who asked for it (issue 13) */
	r.kind = "manual";
	r.author = "ci-dev";
	msg = sw_report_slack(&r, SW_REPORT_FAILED, NULL);
	t = block_text(msg, "section", 0);
	assert_non_null(strstr(t, "*Requested by*\nci-dev"));
	assert_null(strstr(t, "*Author*"));
	free(t);
	json_decref(msg);

	/* a PR run: the link to the PR, its title escaped; a URL cannot break the link */
	r = base_run();
	r.pr_title = "Use a|b <and> c";
	r.pr_url = "https://github.com/acme/shop/pull/12?a=1&b=|>";
	msg = sw_report_slack(&r, SW_REPORT_STARTED, NULL);
	assert_slack_limits(msg);
	t = block_text(msg, "header", 0);
	assert_string_equal(t, "\xf0\x9f\x9a\x80 Pull request #12 started");
	free(t);
	t = block_text(msg, "context", 0);
	assert_string_equal(t, "<https://cd.example.com/runs/42|Run #42>  \xc2\xb7  "
			       "<https://github.com/acme/shop/pull/12?a=1&amp;b=%7C%3E|PR #12: "
			       "Use a|b &lt;and&gt; c>");
	free(t);
	json_decref(msg);

	msg = sw_report_slack(&r, SW_REPORT_PASSED, NULL);
	t = block_text(msg, "header", 0);
	assert_string_equal(t, "\xe2\x9c\x85 Pull request #12 passed");
	free(t);
	json_decref(msg);

	r.environment = "prod";
	msg = sw_report_slack(&r, SW_REPORT_ROLLBACK, "rolled back to abc1234");
	assert_slack_limits(msg);
	t = block_text(msg, "header", 0);
	assert_string_equal(t, "\xe2\x8f\xaa Rolled back prod");
	free(t);
	json_decref(msg);
	msg = sw_report_slack(&r, SW_REPORT_DRIFT, "3 objects changed outside git");
	t = block_text(msg, "header", 0);
	assert_string_equal(t, "\xf0\x9f\x94\x80 Drift in prod");
	free(t);
	json_decref(msg);
}

static void test_slack_limits(void **state)
{
	struct sw_report_run r = base_run();
	struct sw_report_stage st[80];
	char names[80][80];
	struct sw_buf huge = SW_BUF_INIT;
	json_t *msg;
	char *t;
	(void)state;
	for (int i = 0; i < 80; i++) {
		snprintf(names[i], sizeof(names[i]), "a-rather-long-stage-name-for-stage-%02d-&-<x>", i);
		st[i] = stage(names[i], i % 7 == 3 ? "failure" : "success", 61 + i);
	}
	for (int i = 0; i < 5000; i++)
		sw_buf_adds(&huge, "<&> ");
	r.stages = st;
	r.nstages = 80;
	r.status = "failure";
	r.pr_title = huge.ptr;
	r.message = huge.ptr;
	r.author = huge.ptr;
	r.branch = huge.ptr;
	r.environment = huge.ptr;
	msg = sw_report_slack(&r, SW_REPORT_FAILED, huge.ptr);
	assert_slack_limits(msg);
	/* too many stages for one section: the passed ones are counted */
	t = block_text(msg, "section", 1);
	assert_non_null(strstr(t, "stages passed"));
	assert_non_null(strstr(t, "stage-03-&amp;-&lt;x&gt;* failure"));
	free(t);
	json_decref(msg);

	/* 1000 failed stages: even the compact list is cut */
	struct sw_report_stage *many = sw_calloc(1000, sizeof(*many));
	for (int i = 0; i < 1000; i++)
		many[i] = stage("failing-stage", "failure", 1);
	r.stages = many;
	r.nstages = 1000;
	msg = sw_report_slack(&r, SW_REPORT_FAILED, NULL);
	assert_slack_limits(msg);
	t = block_text(msg, "section", 1);
	assert_non_null(strstr(t, "and more"));
	free(t);
	json_decref(msg);
	free(many);
	sw_buf_release(&huge);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_cut),
		cmocka_unit_test(test_utf8_clean),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_github_state),
		cmocka_unit_test(test_commit_status),
		cmocka_unit_test(test_comment_basic),
		cmocka_unit_test(test_comment_fence),
		cmocka_unit_test(test_comment_cap),
		cmocka_unit_test(test_comment_many_stages),
		cmocka_unit_test(test_slack_shape_and_escaping),
		cmocka_unit_test(test_slack_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
