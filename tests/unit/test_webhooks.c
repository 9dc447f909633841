/*
 * test_webhooks.c - webhooks/: signatures, payload extraction, parsing of
 * the real GitHub payloads in the shared fixtures, and the mapping rules
 * against a config read from a temporary YAML file.
 *
 * Fixtures are found relative to the repository root the test runs from
 * (../shared/fixtures/github), falling back to /work/shared/fixtures/github.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "config/config.h"
#include "webhooks/json-int.h"   /* private: the scanner parse.c uses */
#include "webhooks/webhooks.h"

#define S(lit) lit, sizeof(lit) - 1

static const char *fixture_dir(void)
{
	static const char *const dirs[] = { "../shared/fixtures/github",
					    "/work/shared/fixtures/github" };
	for (size_t i = 0; i < 2; i++)
		if (access(dirs[i], R_OK) == 0)
			return dirs[i];
	return NULL;
}

static void load_fixture(struct sw_buf *b, const char *name)
{
	const char *dir = fixture_dir();
	char path[512];
	assert_non_null(dir);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	sw_buf_reset(b);
	assert_int_equal(sw_buf_read_file(b, path), 0);
}

/* "sha256=<hex>" for body under secret. */
static void sign(char out[72], const char *secret, const void *body, size_t len)
{
	unsigned char mac[32];
	unsigned int n = 0;
	HMAC(EVP_sha256(), secret, (int)strlen(secret), body, len, mac, &n);
	assert_int_equal(n, 32);
	strcpy(out, "sha256=");
	for (int i = 0; i < 32; i++)
		sprintf(out + 7 + 2 * i, "%02x", mac[i]);
}

static int parse_file(struct sw_gh_event *ev, const char *event, const char *file)
{
	struct sw_buf b = SW_BUF_INIT;
	int rc;
	load_fixture(&b, file);
	rc = sw_webhook_parse(ev, event, b.ptr, b.len);
	sw_buf_release(&b);
	return rc;
}

/* ---- signatures ------------------------------------------------------ */

static void test_verify_vector(void **state)
{
	(void)state;
	assert_int_equal(sw_webhook_verify("It's a Secret to Everybody", "Hello, World!", 13,
		"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"), 0);
	/* upper-case hex is the same digest */
	assert_int_equal(sw_webhook_verify("It's a Secret to Everybody", "Hello, World!", 13,
		"sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17"), 0);
}

static void expect_bad(const char *hdr, const char *msg_part)
{
	int rc = sw_webhook_verify("It's a Secret to Everybody", "Hello, World!", 13, hdr);
	assert_int_equal(rc, SW_EINVALID);
	if (!strstr(sw_error_last(), msg_part))
		fail_msg("header %s: message \"%s\" lacks \"%s\"", hdr ? hdr : "(null)",
			 sw_error_last(), msg_part);
}

/* The replay digest: SHA-256 of the event, a NUL and the body (as python's hashlib says). */
static void test_digest(void **state)
{
	unsigned char d[SW_WEBHOOK_DIGEST_LEN], e[SW_WEBHOOK_DIGEST_LEN];
	char hex[2 * SW_WEBHOOK_DIGEST_LEN + 1];
	(void)state;
	assert_int_equal(sw_webhook_digest(d, "push", "{}", 2), 0);
	for (size_t i = 0; i < sizeof(d); i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	assert_string_equal(hex, "6fef9c1a2eb55d2aedef0b7b6c8c047c1403b9b74ed0d8c017f3567c93d60021");
	/* the event is part of it: the same body under another event differs */
	assert_int_equal(sw_webhook_digest(e, "pull_request", "{}", 2), 0);
	assert_memory_not_equal(d, e, sizeof(d));
}

static void test_verify_bad(void **state)
{
	(void)state;
	expect_bad(NULL, "missing X-Hub-Signature-256");
	expect_bad("", "missing X-Hub-Signature-256");
	expect_bad("sha1=757107ea0eb2509fc211221cce984b8a37570b6d", "prefix sha256=");
	expect_bad("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
		   "prefix sha256=");
	expect_bad("sha256=757107ea", "expected 64 hex digits, found 8");
	expect_bad("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1700",
		   "found 66");
	expect_bad("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1g",
		   "not a hex digest");
	expect_bad("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e18",
		   "does not match");
	/* right digest, other body / other secret */
	assert_int_equal(sw_webhook_verify("It's a Secret to Everybody", "Hello, World?", 13,
		"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
		SW_EINVALID);
	assert_int_equal(sw_webhook_verify("another secret", "Hello, World!", 13,
		"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
		SW_EINVALID);
	/* no secret configured is our fault, not the sender's */
	assert_int_equal(sw_webhook_verify(NULL, "x", 1, "sha256=00"), SW_ERR);
	assert_int_equal(sw_webhook_verify("", "x", 1, "sha256=00"), SW_ERR);
}

static void test_verify_empty_and_binary_body(void **state)
{
	char sig[72];
	const char bin[] = { 'a', 0, 'b', (char)0xff };
	(void)state;
	sign(sig, "s", "", 0);
	assert_int_equal(sw_webhook_verify("s", NULL, 0, sig), 0);
	sign(sig, "s", bin, sizeof(bin));
	assert_int_equal(sw_webhook_verify("s", bin, sizeof(bin), sig), 0);
	assert_int_equal(sw_webhook_verify("s", bin, 1, sig), SW_EINVALID);
}

/* ---- payload extraction --------------------------------------------- */

static void form_encode(struct sw_buf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~')
			sw_buf_addch(out, (char)c);
		else if (c == ' ')
			sw_buf_addch(out, '+');
		else
			sw_buf_addf(out, "%%%02X", c);
	}
}

static void test_payload_json(void **state)
{
	struct sw_buf out = SW_BUF_INIT;
	(void)state;
	assert_int_equal(sw_webhook_payload(&out, "application/json", "{\"a\":1}", 7), 0);
	assert_string_equal(out.ptr, "{\"a\":1}");
	sw_buf_reset(&out);
	assert_int_equal(sw_webhook_payload(&out, "Application/JSON ; charset=utf-8",
					    "{}", 2), 0);
	assert_string_equal(out.ptr, "{}");
	sw_buf_reset(&out);
	assert_int_equal(sw_webhook_payload(&out, "text/plain", "{}", 2), SW_EINVALID);
	assert_string_equal(sw_error_last(), "unsupported content type text/plain");
	assert_int_equal(sw_webhook_payload(&out, "application/jsonx", "{}", 2), SW_EINVALID);
	assert_int_equal(sw_webhook_payload(&out, NULL, "{}", 2), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "missing Content-Type"));
	sw_buf_release(&out);
}

static void test_payload_form(void **state)
{
	struct sw_buf out = SW_BUF_INIT;
	const char *ct = "application/x-www-form-urlencoded";
	(void)state;
	assert_int_equal(sw_webhook_payload(&out, ct, "x=1&payload=%7B%22a%22%3A+1%7D&y=2",
					    34), 0);
	assert_string_equal(out.ptr, "{\"a\": 1}");
	sw_buf_reset(&out);
	/* the first payload field wins; others are ignored */
	assert_int_equal(sw_webhook_payload(&out, ct, "payload=a%2Bb&payload=c", 23), 0);
	assert_string_equal(out.ptr, "a+b");
	sw_buf_reset(&out);
	assert_int_equal(sw_webhook_payload(&out, ct, "payloadx=1&other=2", 18), SW_EINVALID);
	assert_string_equal(sw_error_last(), "form body has no payload field");
	assert_int_equal(sw_webhook_payload(&out, ct, "payload=%7", 10), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "bad percent escape at offset 8"));
	assert_int_equal(sw_webhook_payload(&out, ct, "payload=%zz", 11), SW_EINVALID);
	sw_buf_reset(&out);
	assert_int_equal(sw_webhook_payload(&out, ct, "payload", 7), 0);
	assert_int_equal(out.len, 0);
	sw_buf_release(&out);
}

/* A fixture form-encoded as GitHub sends it: signed over the raw form body. */
static void test_payload_form_fixture(void **state)
{
	struct sw_buf json = SW_BUF_INIT, body = SW_BUF_INIT, out = SW_BUF_INIT;
	struct sw_gh_event ev = SW_GH_EVENT_INIT;
	char sig[72];
	(void)state;
	load_fixture(&json, "push-branch.json");
	sw_buf_adds(&body, "payload=");
	form_encode(&body, json.ptr, json.len);
	sign(sig, "topsecret", body.ptr, body.len);
	assert_int_equal(sw_webhook_verify("topsecret", body.ptr, body.len, sig), 0);
	/* the signature covers the form body, not the JSON inside it */
	assert_int_equal(sw_webhook_verify("topsecret", json.ptr, json.len, sig), SW_EINVALID);
	assert_int_equal(sw_webhook_payload(&out, "application/x-www-form-urlencoded",
					    body.ptr, body.len), 0);
	assert_int_equal(out.len, json.len);
	assert_memory_equal(out.ptr, json.ptr, json.len);
	assert_int_equal(sw_webhook_parse(&ev, "push", out.ptr, out.len), 0);
	assert_string_equal(ev.push.after, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
	sw_gh_event_release(&ev);
	sw_buf_release(&json);
	sw_buf_release(&body);
	sw_buf_release(&out);
}

/* ---- parsing ---------------------------------------------------------- */

/* Every fixture parses under the event its file name names. */
static void test_parse_all_fixtures(void **state)
{
	const char *dir = fixture_dir();
	DIR *d;
	struct dirent *de;
	int n = 0;
	(void)state;
	assert_non_null(dir);
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		char event[64];
		struct sw_gh_event ev = SW_GH_EVENT_INIT;
		size_t len = strlen(de->d_name);
		if (len < 6 || strcmp(de->d_name + len - 5, ".json"))
			continue;
		snprintf(event, sizeof(event), "%.*s", (int)strcspn(de->d_name, "-."),
			 de->d_name);
		if (parse_file(&ev, event, de->d_name) != 0)
			fail_msg("%s: %s", de->d_name, sw_error_last());
		assert_non_null(ev.repo);
		assert_non_null(ev.sender);
		assert_int_not_equal(ev.kind, SW_GH_OTHER);
		sw_gh_event_release(&ev);
		n++;
	}
	closedir(d);
	assert_true(n >= 6);
}

static void test_parse_push(void **state)
{
	struct sw_gh_event ev = SW_GH_EVENT_INIT;
	(void)state;
	assert_int_equal(parse_file(&ev, "push", "push-branch.json"), 0);
	assert_int_equal(ev.kind, SW_GH_PUSH);
	assert_string_equal(ev.event, "push");
	assert_null(ev.action);
	assert_string_equal(ev.repo, "Codertocat/Hello-World");
	assert_string_equal(ev.clone_url, "https://github.com/Codertocat/Hello-World.git");
	assert_string_equal(ev.ssh_url, "git@github.com:Codertocat/Hello-World.git");
	assert_string_equal(ev.default_branch, "master");
	assert_string_equal(ev.push.ref, "refs/heads/master");
	assert_string_equal(ev.push.branch, "master");
	assert_null(ev.push.tag);
	assert_string_equal(ev.push.before, "0000000000000000000000000000000000000000");
	assert_string_equal(ev.push.after, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
	assert_true(ev.push.created);
	assert_false(ev.push.deleted);
	assert_false(ev.push.forced);
	assert_string_equal(ev.push.head_id, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
	assert_string_equal(ev.push.head_title, "Initial commit");
	assert_string_equal(ev.push.head_message, "Initial commit");
	assert_string_equal(ev.push.head_author, "Codertocat");
	assert_string_equal(ev.push.pusher, "Codertocat");
	assert_string_equal(ev.sender, "Codertocat");
	assert_non_null(strstr(ev.push.compare, "github.com/Codertocat/Hello-World"));
	sw_gh_event_release(&ev);
	assert_null(ev.repo);

	assert_int_equal(parse_file(&ev, "push", "push-tag-deleted.json"), 0);
	assert_string_equal(ev.push.tag, "simple-tag");
	assert_null(ev.push.branch);
	assert_true(ev.push.deleted);
	assert_null(ev.push.head_id);
	assert_null(ev.push.head_title);
	assert_string_equal(ev.push.after, "0000000000000000000000000000000000000000");
	sw_gh_event_release(&ev);
}

static void test_parse_pull_request(void **state)
{
	struct sw_gh_event ev = SW_GH_EVENT_INIT;
	(void)state;
	assert_int_equal(parse_file(&ev, "pull_request", "pull_request-opened.json"), 0);
	assert_int_equal(ev.kind, SW_GH_PULL_REQUEST);
	assert_string_equal(ev.action, "opened");
	assert_int_equal(ev.pr.number, 2);
	assert_string_equal(ev.pr.title, "Update the README with new information.");
	assert_false(ev.pr.draft);
	assert_string_equal(ev.pr.state, "open");
	assert_false(ev.pr.merged);
	assert_null(ev.pr.merge_commit_sha);
	assert_string_equal(ev.pr.head_ref, "changes");
	assert_string_equal(ev.pr.head_sha, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
	assert_string_equal(ev.pr.head_repo, "Codertocat/Hello-World");
	assert_string_equal(ev.pr.base_ref, "master");
	assert_non_null(ev.pr.base_sha);
	assert_string_equal(ev.pr.html_url, "https://github.com/Codertocat/Hello-World/pull/2");
	assert_string_equal(ev.pr.user, "Codertocat");
	sw_gh_event_release(&ev);

	/* closed without a merge: merge_commit_sha is a test merge, not kept */
	assert_int_equal(parse_file(&ev, "pull_request", "pull_request-closed.json"), 0);
	assert_string_equal(ev.action, "closed");
	assert_string_equal(ev.pr.state, "closed");
	assert_false(ev.pr.merged);
	assert_null(ev.pr.merge_commit_sha);
	sw_gh_event_release(&ev);

	assert_int_equal(parse_file(&ev, "pull_request", "pull_request-synchronize.json"), 0);
	assert_string_equal(ev.action, "synchronize");
	sw_gh_event_release(&ev);
}

static void test_parse_ping(void **state)
{
	struct sw_gh_event ev = SW_GH_EVENT_INIT;
	(void)state;
	assert_int_equal(parse_file(&ev, "ping", "ping.json"), 0);
	assert_int_equal(ev.kind, SW_GH_PING);
	assert_string_equal(ev.ping.zen, "Anything added dilutes everything else.");
	assert_int_equal(ev.ping.hook_id, 109948940);
	assert_string_equal(ev.repo, "Octocoders/Hello-World");
	sw_gh_event_release(&ev);
	/* an organisation hook's ping has no repository and still parses */
	assert_int_equal(sw_webhook_parse(&ev, "ping", S("{\"zen\":\"z\",\"hook\":{\"id\":7}}")), 0);
	assert_int_equal(ev.ping.hook_id, 7);
	assert_null(ev.repo);
	sw_gh_event_release(&ev);
}

static void expect_parse_error(const char *event, const char *json, const char *msg_part)
{
	struct sw_gh_event ev = SW_GH_EVENT_INIT;
	int rc = sw_webhook_parse(&ev, event, json, json ? strlen(json) : 0);
	assert_int_equal(rc, SW_EINVALID);
	if (!strstr(sw_error_last(), msg_part))
		fail_msg("%s %s: message \"%s\" lacks \"%s\"", event ? event : "(null)",
			 json ? json : "(null)", sw_error_last(), msg_part);
	sw_gh_event_release(&ev);
}

#define REPO "\"repository\":{\"full_name\":\"o/r\"}"

static void test_parse_robust(void **state)
{
	struct sw_gh_event ev = SW_GH_EVENT_INIT;
	(void)state;
	expect_parse_error(NULL, "{}", "missing X-GitHub-Event");
	expect_parse_error("push", "", "push payload: not JSON");
	expect_parse_error("push", NULL, "not JSON");
	expect_parse_error("push", "{\"ref\":", "not JSON");
	expect_parse_error("push", "[1,2]", "expected a JSON object, found array");
	expect_parse_error("push", "{\"a\":1,\"a\":2}", "not JSON");
	expect_parse_error("push", "{}", "push payload: repository.full_name: missing");
	expect_parse_error("push", "{\"repository\":null,\"ref\":\"x\",\"after\":\"y\"}",
			   "repository.full_name: missing");
	expect_parse_error("push", "{\"repository\":[],\"ref\":\"x\",\"after\":\"y\"}",
			   "repository.full_name: missing");
	expect_parse_error("push", "{" REPO ",\"after\":\"y\"}", "push payload: ref: missing");
	expect_parse_error("push", "{" REPO ",\"ref\":\"refs/heads/a\"}", "after: missing");
	expect_parse_error("push", "{" REPO ",\"ref\":7,\"after\":\"y\"}",
			   "ref: expected a string, found number");
	expect_parse_error("push", "{" REPO ",\"ref\":\"r\",\"after\":\"y\",\"deleted\":\"no\"}",
			   "deleted: expected a boolean, found string");
	expect_parse_error("pull_request", "{" REPO "}", "pull_request payload: action: missing");
	expect_parse_error("pull_request", "{" REPO ",\"action\":\"opened\"}",
			   "pull_request: missing");
	expect_parse_error("pull_request",
			   "{" REPO ",\"action\":\"opened\",\"pull_request\":{}}", "number: missing");
	expect_parse_error("pull_request",
			   "{" REPO ",\"action\":\"opened\",\"number\":\"2\",\"pull_request\":{}}",
			   "number: expected an integer, found string");
	expect_parse_error("pull_request",
			   "{" REPO ",\"action\":\"opened\",\"number\":2,\"pull_request\":"
			   "{\"head\":{\"ref\":\"a\"},\"base\":{\"ref\":\"b\"}}}",
			   "pull_request.head.sha: missing");
	expect_parse_error("ping", "{\"hook_id\":1.5}", "hook_id: expected an integer");

	/* a deleted fork: head.repo is null, which is allowed */
	assert_int_equal(sw_webhook_parse(&ev, "pull_request", S(
		"{" REPO ",\"action\":\"opened\",\"number\":3,\"pull_request\":{\"head\":{\"ref\":\"a\","
		"\"sha\":\"abc\",\"repo\":null},\"base\":{\"ref\":\"main\"},\"title\":null,\"user\":null,"
		"\"draft\":null}}")), 0);
	assert_null(ev.pr.head_repo);
	assert_null(ev.pr.title);
	assert_int_equal(ev.pr.number, 3);
	sw_gh_event_release(&ev);

	/* unknown events only need to be an object */
	assert_int_equal(sw_webhook_parse(&ev, "issues", S("{\"action\":\"opened\"}")), 0);
	assert_int_equal(ev.kind, SW_GH_OTHER);
	assert_string_equal(ev.action, "opened");
	sw_gh_event_release(&ev);

	/* a message with several lines: title is the first */
	assert_int_equal(sw_webhook_parse(&ev, "push", S("{" REPO ",\"ref\":\"refs/heads/x\","
		"\"after\":\"a\",\"head_commit\":{\"message\":\"Fix it\\r\\n\\nbody\"}}")), 0);
	assert_string_equal(ev.push.head_title, "Fix it");
	assert_string_equal(ev.push.head_message, "Fix it\r\n\nbody");
	sw_gh_event_release(&ev);
}

/* Deep nesting is refused by jansson's depth limit, not by a crash. */
static void test_parse_deep(void **state)
{
	struct sw_buf b = SW_BUF_INIT;
	struct sw_gh_event ev = SW_GH_EVENT_INIT;
	(void)state;
	sw_buf_adds(&b, "{\"repository\":");
	for (int i = 0; i < 100000; i++)
		sw_buf_adds(&b, "{\"a\":");
	sw_buf_adds(&b, "1");
	for (int i = 0; i < 100000; i++)
		sw_buf_addch(&b, '}');
	sw_buf_addch(&b, '}');
	assert_int_equal(sw_webhook_parse(&ev, "push", b.ptr, b.len), SW_EINVALID);
	sw_gh_event_release(&ev);
	sw_buf_release(&b);
}

/* Random mutations of a fixture never crash the parser. */
static void test_parse_mutations(void **state)
{
	struct sw_buf b = SW_BUF_INIT;
	(void)state;
	load_fixture(&b, "pull_request-opened.json");
	srand(1);
	for (int i = 0; i < 300; i++) {
		char *copy = sw_malloc(b.len);
		struct sw_gh_event ev = SW_GH_EVENT_INIT;
		size_t cut = (size_t)rand() % b.len;
		memcpy(copy, b.ptr, b.len);
		for (int k = 0; k < 4; k++)
			copy[(size_t)rand() % b.len] = "{}[]\",:0n \x01\xff"[rand() % 12];
		(void)sw_webhook_parse(&ev, "pull_request", copy, i % 2 ? b.len : cut);
		sw_gh_event_release(&ev);
		free(copy);
	}
	sw_buf_release(&b);
}

/* ---- the JSON scanner against jansson ------------------------------- */

/*
 * parse.c used to build a jansson tree with JSON_REJECT_DUPLICATES; the
 * scanner that replaced it must accept and reject the same documents.
 */
static int jansson_accepts(const char *s, size_t n)
{
	json_error_t e;
	json_t *j = json_loadb(s, n, JSON_REJECT_DUPLICATES, &e);
	json_decref(j);
	return j != NULL;
}

static int scanner_accepts(const char *s, size_t n)
{
	static const struct sw_webhook_json_path root[] = { { -1, NULL } };
	struct sw_webhook_json_value v[1];
	return sw_webhook_json_scan(s, n, root, 1, v) == 0;
}

static void expect_same(const char *s, size_t n)
{
	int j = jansson_accepts(s, n), w = scanner_accepts(s, n);
	if (j != w)
		fail_msg("jansson %s, the scanner %s: \"%.*s\" (%s)", j ? "accepts" : "rejects",
			 w ? "accepts" : "rejects", (int)(n > 200 ? 200 : n), s,
			 w ? "" : sw_error_last());
}

static void test_json_scan_cases(void **state)
{
	static const char *const cases[] = {
		"{}", "[]", " {} ", "\t\r\n[ ]\n", "", " ", "1", "\"s\"", "true", "null",
		"{} {}", "{}x", "[1,]", "[,1]", "{\"a\":1,}", "{,}", "{\"a\"}", "{\"a\":}",
		"{\"a\" 1}", "{1:2}", "{'a':1}", "[01]", "[-0]", "[-]", "[-01]", "[1.]", "[.5]",
		"[1e]", "[1e+]", "[1E-3]", "[1.5e300]", "[1e400]", "[-1e400]", "[1e-400]",
		"[9223372036854775807]", "[9223372036854775808]", "[-9223372036854775808]",
		"[-9223372036854775809]", "[00]", "[1a]", "[tru]", "[truex]", "[true1]",
		"[nul]", "[True]", "[\"\\u0000\"]", "{\"\\u0000\":1}", "[\"\\u00e9\"]",
		"[\"\\ud83d\\ude00\"]", "[\"\\ud83d\"]", "[\"\\ude00\"]", "[\"\\ud83dx\"]",
		"[\"\\ud83d\\u0041\"]", "[\"\\uZZZZ\"]", "[\"\\u12\"]", "[\"\\x\"]", "[\"\\/\"]",
		"[\"\\b\\f\\n\\r\\t\\\"\\\\\"]", "[\"a\tb\"]", "[\"a\x01\"]", "[\"\x7f\"]",
		"[\"\xc3\xa9\"]", "[\"\xc3\"]", "[\"\xc0\xaf\"]", "[\"\xe0\x80\xaf\"]",
		"[\"\xed\xa0\x80\"]", "[\"\xf4\x90\x80\x80\"]", "[\"\xf0\x9f\x98\x80\"]",
		"[\"\xff\"]", "[\xc3\xa9]", "{\"a\":1,\"a\":2}", "{\"a\":1,\"\\u0061\":2}",
		"{\"a\":{\"b\":1},\"b\":{\"b\":2}}", "{\"a\":{\"b\":1,\"b\":2}}",
		"[{\"a\":1},{\"a\":1}]", "{\"\":1,\"\":2}", "{\"ab\":1,\"a\\u0062\":2}",
		"{\"x\":[{\"y\":1,\"y\":1}]}", "[\"unterminated", "{\"a\":1", "[[[", "]",
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_same(cases[i], strlen(cases[i]));
	/* a NUL byte inside the buffer, in a string and between tokens */
	expect_same("[\"a\0b\"]", 7);
	expect_same("[1,\0 2]", 7);
	/* right after a number or literal jansson 2.14 loses a NUL byte and
	 * accepts; RFC 8259 allows none, and the scanner says where it is
	 * (found by tests/fuzz/json) */
	assert_false(scanner_accepts("[1\0]", 4));
	assert_string_equal(sw_error_last(), "',' or ']' expected at line 1 column 3 (a NUL byte)");
	assert_false(scanner_accepts("{\"a\":false\0}", 12));
	assert_false(scanner_accepts("[null\0]", 7));
	/* many keys in one object: the duplicate filter saturates */
	{
		struct sw_buf b = SW_BUF_INIT;
		sw_buf_addch(&b, '{');
		for (int i = 0; i < 2000; i++)
			sw_buf_addf(&b, "%s\"k%d\":%d", i ? "," : "", i, i);
		sw_buf_addch(&b, '}');
		expect_same(b.ptr, b.len);
		sw_buf_truncate(&b, b.len - 1);
		sw_buf_adds(&b, ",\"k1999\":0}");
		expect_same(b.ptr, b.len);
		sw_buf_release(&b);
	}
	/* jansson's depth limit (2048 nested containers) */
	for (int depth = 2047; depth <= 2049; depth++) {
		struct sw_buf b = SW_BUF_INIT;
		for (int i = 0; i < depth; i++)
			sw_buf_adds(&b, i % 2 ? "{\"a\":" : "[");
		for (int i = depth; i-- > 0;)
			sw_buf_addch(&b, i % 2 ? '}' : ']');
		expect_same(b.ptr, b.len);
		sw_buf_release(&b);
	}
}

/* Random mutations of every fixture: the scanner agrees with jansson on each. */
static void test_json_scan_mutations(void **state)
{
	static const char *const names[] = { "push-branch.json", "pull_request-opened.json",
					     "ping.json", "push-tag-deleted.json" };
	static const char alphabet[] = "{}[]\",:0-1e.\\u nt \x01\x7f\xc3\xa9\xff";
	struct sw_buf b = SW_BUF_INIT;
	(void)state;
	srand(7);
	for (size_t f = 0; f < sizeof(names) / sizeof(names[0]); f++) {
		load_fixture(&b, names[f]);
		expect_same(b.ptr, b.len);
		for (int i = 0; i < 400; i++) {
			char *copy = sw_malloc(b.len + 1);
			size_t n = b.len;
			memcpy(copy, b.ptr, b.len);
			for (int k = 0, m = 1 + rand() % 3; k < m; k++) {
				size_t at = (size_t)rand() % n;
				switch (rand() % 3) {
				case 0:   /* replace */
					copy[at] = alphabet[(size_t)rand() % (sizeof(alphabet) - 1)];
					break;
				case 1:   /* delete */
					memmove(copy + at, copy + at + 1, n - at - 1);
					n--;
					break;
				default:  /* truncate now and then */
					if (rand() % 8 == 0)
						n = at + 1;
				}
			}
			expect_same(copy, n);
			free(copy);
		}
	}
	sw_buf_release(&b);
}

/* Strings with escapes come out as jansson decodes them. */
static void test_json_scan_strings(void **state)
{
	static const char doc[] = "{\"repository\":{\"full_name\":\"o/r\"},\"after\":\"y\","
		"\"ref\":\"refs/heads/caf\\u00e9-\\ud83d\\ude00-\\\"q\\\"\\\\\\/\\t\\n\xc3\xa9\"}";
	struct sw_gh_event ev = SW_GH_EVENT_INIT;
	json_t *j = json_loads(doc, JSON_REJECT_DUPLICATES, NULL);
	(void)state;
	assert_non_null(j);
	assert_int_equal(sw_webhook_parse(&ev, "push", doc, strlen(doc)), 0);
	assert_string_equal(ev.push.ref, json_string_value(json_object_get(j, "ref")));
	assert_string_equal(ev.push.branch, "caf\xc3\xa9-\xf0\x9f\x98\x80-\"q\"\\/\t\n\xc3\xa9");
	json_decref(j);
	sw_gh_event_release(&ev);
	/* an escaped key still names the field */
	assert_int_equal(sw_webhook_parse(&ev, "push", S("{\"repository\":{\"full_\\u006eame\":"
							 "\"o/r\"},\"r\\u0065f\":\"x\",\"after\":\"y\"}")),
			 0);
	assert_string_equal(ev.repo, "o/r");
	assert_string_equal(ev.push.ref, "x");
	sw_gh_event_release(&ev);
	/* a wanted key below something that is not an object is absent */
	expect_parse_error("push", "{\"repository\":[{\"full_name\":\"o/r\"}],\"ref\":\"x\","
			   "\"after\":\"y\"}", "repository.full_name: missing");
	expect_parse_error("push", "{\"repository\":{\"owner\":{\"full_name\":\"o/r\"}},"
			   "\"ref\":\"x\",\"after\":\"y\"}", "repository.full_name: missing");
	expect_parse_error("pull_request", "{" REPO ",\"action\":\"opened\",\"number\":1.5,"
			   "\"pull_request\":{}}", "number: expected an integer, found number");
	expect_parse_error("push", "{" REPO ",\"ref\":\"x\",\"after\":\"y\",\"x\":[1,1e999]}",
			   "push payload: not JSON: real number overflow");
}

/* ---- mapping ---------------------------------------------------------- */

struct map_fixture {
	char dir[64];
	struct sw_config *cfg;
};

static int map_setup(void **state)
{
	struct map_fixture *f = sw_calloc(1, sizeof(*f));
	char path[128];
	FILE *fp;
	strcpy(f->dir, "/tmp/sw-test-webhooks.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(path, sizeof(path), "%s/slipway.yaml", f->dir);
	fp = fopen(path, "w");
	if (!fp)
		return -1;
	fprintf(fp,
		"server:\n"
		"  data_dir: %s/data\n"
		"repositories:\n"
		"  - name: Acme/Shop\n"
		"    url: https://github.com/acme/shop.git\n"
		"  - name: acme/other\n"
		"    url: https://github.com/acme/other.git\n"
		"environments:\n"
		"  - name: dev\n"
		"    repository: Acme/Shop\n"
		"    branch: dev\n"
		"  - name: prod\n"
		"    repository: Acme/Shop\n"
		"    branch: main\n", f->dir);
	fclose(fp);
	if (sw_config_load(&f->cfg, path) != 0) {
		fprintf(stderr, "config: %s\n", sw_error_last());
		return -1;
	}
	*state = f;
	return 0;
}

static int map_teardown(void **state)
{
	struct map_fixture *f = *state;
	char cmd[128];
	sw_config_free(f->cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/*
 * Load a fixture, apply edits with jansson (repository.full_name and any
 * "dotted.path=json" pairs), parse and map it.
 */
static void map_fixture(struct sw_webhook_decision *d, const struct sw_config *cfg,
			const char *event, const char *file, const char *repo, ...)
{
	struct sw_buf b = SW_BUF_INIT;
	struct sw_gh_event ev = SW_GH_EVENT_INIT;
	json_error_t jerr;
	json_t *root;
	char *text;
	va_list ap;
	const char *edit;

	load_fixture(&b, file);
	root = json_loadb(b.ptr, b.len, 0, &jerr);
	assert_non_null(root);
	if (repo)
		json_object_set_new(json_object_get(root, "repository"), "full_name",
				    json_string(repo));
	va_start(ap, repo);
	while ((edit = va_arg(ap, const char *))) {
		const char *eq = strchr(edit, '=');
		char path[128], *p, *dot;
		json_t *obj = root, *val;
		snprintf(path, sizeof(path), "%.*s", (int)(eq - edit), edit);
		p = path;
		while ((dot = strchr(p, '.'))) {
			*dot = '\0';
			obj = json_object_get(obj, p);
			p = dot + 1;
		}
		val = json_loads(eq + 1, JSON_DECODE_ANY, &jerr);
		assert_non_null(val);
		json_object_set_new(obj, p, val);
	}
	va_end(ap);
	text = json_dumps(root, 0);
	if (sw_webhook_parse(&ev, event, text, strlen(text)) != 0)
		fail_msg("parse %s: %s", file, sw_error_last());
	if (sw_webhook_map(d, cfg, &ev) != 0)
		fail_msg("map %s: %s", file, sw_error_last());
	free(text);
	json_decref(root);
	sw_gh_event_release(&ev);
	sw_buf_release(&b);
}

static void expect_ignored(struct sw_webhook_decision *d, const char *reason)
{
	assert_int_equal(d->verdict, SW_WEBHOOK_IGNORE);
	assert_string_equal(d->reason, reason);
	assert_null(d->kind);
	assert_null(d->supersede_key);
	sw_webhook_decision_release(d);
}

static void test_map_ping_and_unknown(void **state)
{
	struct map_fixture *f = *state;
	struct sw_webhook_decision d = SW_WEBHOOK_DECISION_INIT;
	struct sw_gh_event ev = SW_GH_EVENT_INIT;
	map_fixture(&d, f->cfg, "ping", "ping.json", NULL, NULL);
	assert_int_equal(d.verdict, SW_WEBHOOK_PING);
	assert_string_equal(d.reason, "Anything added dilutes everything else.");
	assert_string_equal(sw_webhook_verdict_str(d.verdict), "ping");
	sw_webhook_decision_release(&d);

	assert_int_equal(sw_webhook_parse(&ev, "issues", S("{" REPO "}")), 0);
	assert_int_equal(sw_webhook_map(&d, f->cfg, &ev), 0);
	expect_ignored(&d, "event issues is not handled");
	sw_gh_event_release(&ev);
}

static void test_map_push(void **state)
{
	struct map_fixture *f = *state;
	struct sw_webhook_decision d = SW_WEBHOOK_DECISION_INIT;

	/* the fixture as is: Codertocat/Hello-World is not configured */
	map_fixture(&d, f->cfg, "push", "push-branch.json", NULL, NULL);
	expect_ignored(&d, "repository Codertocat/Hello-World is not configured");

	/* rewritten to the configured repository (other case), tracked branch */
	map_fixture(&d, f->cfg, "push", "push-branch.json", "acme/shop",
		    "ref=\"refs/heads/dev\"", "head_commit.message=\"Fix the cart\\n\\nDetails.\"",
		    NULL);
	assert_int_equal(d.verdict, SW_WEBHOOK_RUN);
	assert_string_equal(sw_webhook_verdict_str(d.verdict), "run");
	assert_string_equal(d.kind, "push");
	assert_string_equal(d.repo, "Acme/Shop");
	assert_string_equal(d.environment, "dev");
	assert_string_equal(d.commit, "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
	assert_string_equal(d.branch, "dev");
	assert_null(d.base);
	assert_int_equal(d.pr_number, 0);
	assert_string_equal(d.title, "Fix the cart");
	assert_string_equal(d.message, "Fix the cart\n\nDetails.");
	assert_string_equal(d.author, "Codertocat");
	assert_non_null(d.url);
	assert_string_equal(d.supersede_key, "push:acme/shop:dev");
	assert_null(d.reason);
	sw_webhook_decision_release(&d);

	map_fixture(&d, f->cfg, "push", "push-branch.json", "Acme/Shop",
		    "ref=\"refs/heads/main\"", NULL);
	assert_int_equal(d.verdict, SW_WEBHOOK_RUN);
	assert_string_equal(d.environment, "prod");
	assert_string_equal(d.supersede_key, "push:acme/shop:prod");
	sw_webhook_decision_release(&d);

	/* untracked branch; branch names are case-sensitive */
	map_fixture(&d, f->cfg, "push", "push-branch.json", "Acme/Shop", NULL);
	expect_ignored(&d, "branch master is not tracked by any environment");
	map_fixture(&d, f->cfg, "push", "push-branch.json", "Acme/Shop",
		    "ref=\"refs/heads/Dev\"", NULL);
	expect_ignored(&d, "branch Dev is not tracked by any environment");
	/* a configured repository no environment uses */
	map_fixture(&d, f->cfg, "push", "push-branch.json", "acme/other",
		    "ref=\"refs/heads/dev\"", NULL);
	expect_ignored(&d, "branch dev is not tracked by any environment");

	/* deletions: the flag, or after all zeros */
	map_fixture(&d, f->cfg, "push", "push-branch.json", "Acme/Shop",
		    "ref=\"refs/heads/dev\"", "deleted=true", NULL);
	expect_ignored(&d, "branch dev deleted");
	map_fixture(&d, f->cfg, "push", "push-branch.json", "Acme/Shop",
		    "ref=\"refs/heads/dev\"", "after=\"0000000000000000000000000000000000000000\"",
		    NULL);
	expect_ignored(&d, "branch dev deleted");

	/* tags, pushed or deleted */
	map_fixture(&d, f->cfg, "push", "push-tag-deleted.json", "Acme/Shop", NULL);
	expect_ignored(&d, "tag push");
	map_fixture(&d, f->cfg, "push", "push-branch.json", "Acme/Shop",
		    "ref=\"refs/tags/v1.0\"", NULL);
	expect_ignored(&d, "tag push");
	map_fixture(&d, f->cfg, "push", "push-branch.json", "Acme/Shop",
		    "ref=\"refs/notes/commits\"", NULL);
	expect_ignored(&d, "ref refs/notes/commits is not a branch");

	/* no head commit (a push of nothing new): author falls back to the pusher */
	map_fixture(&d, f->cfg, "push", "push-branch.json", "Acme/Shop",
		    "ref=\"refs/heads/dev\"", "head_commit=null", "pusher.name=\"pat\"", NULL);
	assert_int_equal(d.verdict, SW_WEBHOOK_RUN);
	assert_null(d.title);
	assert_string_equal(d.author, "pat");
	sw_webhook_decision_release(&d);
}

static void test_map_pull_request(void **state)
{
	struct map_fixture *f = *state;
	struct sw_webhook_decision d = SW_WEBHOOK_DECISION_INIT;
	static const char *const run_actions[] = { "opened", "reopened", "synchronize",
						   "ready_for_review" };

	map_fixture(&d, f->cfg, "pull_request", "pull_request-opened.json", NULL, NULL);
	expect_ignored(&d, "repository Codertocat/Hello-World is not configured");

	for (size_t i = 0; i < 4; i++) {
		char action[64];
		snprintf(action, sizeof(action), "action=\"%s\"", run_actions[i]);
		map_fixture(&d, f->cfg, "pull_request", "pull_request-synchronize.json",
			    "ACME/SHOP", action,
			    "pull_request.head.repo.full_name=\"ACME/shop\"", NULL);
		assert_int_equal(d.verdict, SW_WEBHOOK_RUN);
		assert_string_equal(d.kind, "pull_request");
		assert_string_equal(d.repo, "Acme/Shop");
		assert_null(d.environment);
		assert_string_equal(d.commit, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
		assert_string_equal(d.branch, "changes");
		assert_string_equal(d.base, "master");
		assert_int_equal(d.pr_number, 2);
		assert_string_equal(d.title, "Update the README with new information.");
		assert_string_equal(d.author, "Codertocat");
		assert_string_equal(d.url, "https://github.com/Codertocat/Hello-World/pull/2");
		assert_string_equal(d.supersede_key, "pr:acme/shop#2");
		assert_false(d.from_fork);
		sw_webhook_decision_release(&d);
	}

	/* from a fork, or a fork since deleted */
	map_fixture(&d, f->cfg, "pull_request", "pull_request-opened.json", "Acme/Shop",
		    "pull_request.head.repo.full_name=\"mallory/shop\"", NULL);
	assert_int_equal(d.verdict, SW_WEBHOOK_RUN);
	assert_true(d.from_fork);
	sw_webhook_decision_release(&d);
	map_fixture(&d, f->cfg, "pull_request", "pull_request-opened.json", "Acme/Shop",
		    "pull_request.head.repo=null", NULL);
	assert_int_equal(d.verdict, SW_WEBHOOK_RUN);
	assert_true(d.from_fork);
	sw_webhook_decision_release(&d);

	map_fixture(&d, f->cfg, "pull_request", "pull_request-closed.json", "Acme/Shop", NULL);
	expect_ignored(&d, "pull request action closed is not run");
	map_fixture(&d, f->cfg, "pull_request", "pull_request-opened.json", "Acme/Shop",
		    "action=\"labeled\"", NULL);
	expect_ignored(&d, "pull request action labeled is not run");
	map_fixture(&d, f->cfg, "pull_request", "pull_request-opened.json", "Acme/Shop",
		    "number=5", "pull_request.draft=true", NULL);
	expect_ignored(&d, "pull request #5 is a draft");
	map_fixture(&d, f->cfg, "pull_request", "pull_request-opened.json", "Acme/Shop",
		    "action=\"converted_to_draft\"", "pull_request.draft=true", NULL);
	expect_ignored(&d, "pull request action converted_to_draft is not run");
}

/* A hand-made event missing what its kind needs is refused, not mapped. */
static void test_map_incomplete_event(void **state)
{
	struct map_fixture *f = *state;
	struct sw_webhook_decision d = SW_WEBHOOK_DECISION_INIT;
	struct sw_gh_event ev = SW_GH_EVENT_INIT;
	ev.kind = SW_GH_PUSH;
	ev.event = sw_strdup("push");
	assert_int_equal(sw_webhook_map(&d, f->cfg, &ev), SW_EINVALID);
	ev.repo = sw_strdup("acme/shop");
	assert_int_equal(sw_webhook_map(&d, f->cfg, &ev), SW_EINVALID);
	sw_webhook_decision_release(&d);
	sw_gh_event_release(&ev);
	sw_gh_event_release(NULL);
	sw_webhook_decision_release(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_vector),
		cmocka_unit_test(test_verify_bad),
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_verify_empty_and_binary_body),
		cmocka_unit_test(test_payload_json),
		cmocka_unit_test(test_payload_form),
		cmocka_unit_test(test_payload_form_fixture),
		cmocka_unit_test(test_parse_all_fixtures),
		cmocka_unit_test(test_parse_push),
		cmocka_unit_test(test_parse_pull_request),
		cmocka_unit_test(test_parse_ping),
		cmocka_unit_test(test_parse_robust),
		cmocka_unit_test(test_parse_deep),
		cmocka_unit_test(test_parse_mutations),
		cmocka_unit_test(test_json_scan_cases),
		cmocka_unit_test(test_json_scan_mutations),
		cmocka_unit_test(test_json_scan_strings),
		cmocka_unit_test_setup_teardown(test_map_ping_and_unknown, map_setup, map_teardown),
		cmocka_unit_test_setup_teardown(test_map_push, map_setup, map_teardown),
		cmocka_unit_test_setup_teardown(test_map_pull_request, map_setup, map_teardown),
		cmocka_unit_test_setup_teardown(test_map_incomplete_event, map_setup, map_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
