/*
 * test_mask.c - secrets never survive into stored logs, however the output
 * is split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/mask-int.h"

/* Feed `in` in pieces of `step` bytes and return the masked result. */
static char *run(const char *const *secrets, const char *in, size_t step)
{
	struct sw_mask m;
	struct sw_buf out = SW_BUF_INIT;
	size_t len = strlen(in);
	sw_mask_init(&m, secrets);
	for (size_t i = 0; i < len; i += step)
		sw_mask_feed(&m, in + i, len - i < step ? len - i : step, &out);
	sw_mask_finish(&m, &out);
	sw_mask_release(&m);
	return sw_buf_detach(&out, NULL);
}

static void test_every_split(void **state)
{
	const char *secrets[] = { "s3cr3t-token", "hunter2", NULL };
	const char *in = "login with s3cr3t-token and hunter2, again s3cr3t-token.\n";
	const char *want = "login with *** and ***, again ***.\n";
	for (size_t step = 1; step <= strlen(in); step++) {
		char *got = run(secrets, in, step);
		if (strcmp(got, want))
			fail_msg("step %zu: got \"%s\"", step, got);
		free(got);
	}
}

static void test_multiline_secret(void **state)
{
	const char *secrets[] = { "-----BEGIN KEY-----\nabc\ndef\n-----END KEY-----", NULL };
	const char *in = "key:\n-----BEGIN KEY-----\nabc\ndef\n-----END KEY-----\ndone\n";
	for (size_t step = 1; step < 10; step++) {
		char *got = run(secrets, in, step);
		assert_string_equal(got, "key:\n***\ndone\n");
		free(got);
	}
}

static void test_longest_first_and_overlaps(void **state)
{
	const char *secrets[] = { "abc", "abcdef", NULL };
	char *got = run(secrets, "xabcdefx abcx", 1);
	assert_string_equal(got, "x***x ***x");
	free(got);
	/* a near miss is emitted unchanged, even at the very end */
	got = run(secrets, "ab", 1);
	assert_string_equal(got, "ab");
	free(got);
}

static void test_no_secrets_is_identity(void **state)
{
	const char *none[] = { "", "ab", NULL };   /* too short to mask */
	char *got = run(none, "plain ab text", 3);
	assert_string_equal(got, "plain ab text");
	free(got);
	got = run(NULL, "x", 1);
	assert_string_equal(got, "x");
	free(got);
}

static void test_held_back_only_when_needed(void **state)
{
	const char *secrets[] = { "password", NULL };
	struct sw_mask m;
	struct sw_buf out = SW_BUF_INIT;
	sw_mask_init(&m, secrets);
	sw_mask_feed(&m, "hello pass", 10, &out);
	assert_string_equal(out.ptr, "hello ");    /* "pass" may start the secret */
	sw_mask_feed(&m, "port\n", 5, &out);
	assert_string_equal(out.ptr, "hello passport\n");
	sw_mask_finish(&m, &out);
	sw_mask_release(&m);
	sw_buf_release(&out);
}

/* Every line of a multi-line secret, however the tool prints it (issue 11, defect 5). */
static void test_lines_of_a_multiline_secret(void **state)
{
	const char *secrets[] = { "first\nsecond\nthird", NULL };
	struct { const char *in, *want; } cases[] = {
		{ "second\n", "***\n" },                                 /* sed -n 2p */
		{ "MULTI=first\nsecond\nthird\n", "MULTI=***\n" },      /* env, whole */
		{ "MULTI=first\r\nsecond\r\nthird\r\n", "MULTI=***\r\n***\r\n***\r\n" },   /* a tty */
		{ "x third y\n", "x *** y\n" },
		{ "fir\n", "fir\n" },                                    /* no line, a prefix */
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
		for (size_t step = 1; step <= strlen(cases[c].in); step++) {
			char *got = run(secrets, cases[c].in, step);
			if (strcmp(got, cases[c].want))
				fail_msg("'%s' in steps of %zu: got '%s'", cases[c].in, step, got);
			free(got);
		}
}

static void test_short_and_blank_lines_stay(void **state)
{
	/* lines under 4 bytes, or only blanks, would mask ordinary text */
	const char *secrets[] = { "{\n  \n\tkey: v4lu3-long\n}", NULL };
	char *got = run(secrets, "{ ok }\n  key: v4lu3-long  \n", 1);
	assert_string_equal(got, "{ ok }\n  ***  \n");
	free(got);
}

/* The encodings tools print: each is masked, split anywhere. */
static void test_encodings(void **state)
{
	const char *secrets[] = { "p@ss w/rd\"x\n2nd-line?", NULL };
	const char *in[] = {
		"cEBzcyB3L3JkIngKMm5kLWxpbmU/",    /* base64, no padding needed */
		"cEBzcyB3L3JkIngKMm5kLWxpbmU_",    /* base64url */
		"p%40ss%20w%2Frd%22x%0A2nd-line%3F",   /* URL-encoded */
		"p%40ss+w%2Frd%22x%0A2nd-line%3F",     /* form-encoded */
		"p@ss w/rd\\\"x\\n2nd-line?",        /* JSON string content */
		"p@ss w\\/rd\\\"x\\n2nd-line?",      /* JSON with escaped slashes */
	};
	for (size_t c = 0; c < sizeof(in) / sizeof(in[0]); c++) {
		char *text = sw_asprintf("<%s>", in[c]);
		for (size_t step = 1; step <= strlen(text); step++) {
			char *got = run(secrets, text, step);
			if (strcmp(got, "<***>"))
				fail_msg("'%s' in steps of %zu: got '%s'", text, step, got);
			free(got);
		}
		free(text);
	}
}

static void test_base64_forms(void **state)
{
	/* 16 bytes: the last group has one byte, so padding "==" */
	const char *secrets[] = { "npm_S3cretValue1", NULL };
	const char *want[][2] = {
		{ "bnBtX1MzY3JldFZhbHVlMQ==", "***" },            /* echo -n | base64 */
		{ "bnBtX1MzY3JldFZhbHVlMQ", "***" },              /* unpadded */
		{ "bnBtX1MzY3JldFZhbHVlMQo=", "***o=" },           /* echo | base64: a newline
								     follows, 4 bits of it show */
		/* inside a longer encoding ("user:" first), at each alignment */
		{ "dXNlcjpucG1fUzNjcmV0VmFsdWUx", "dXNlcjpu***" },
		{ "dTpucG1fUzNjcmV0VmFsdWUx", "dTpu***" },
		{ "Om5wbV9TM2NyZXRWYWx1ZTE=", "Om5w***" },
	};
	for (size_t c = 0; c < sizeof(want) / sizeof(want[0]); c++) {
		for (size_t step = 1; step <= strlen(want[c][0]); step++) {
			char *got = run(secrets, want[c][0], step);
			if (strncmp(got, want[c][1], strlen(want[c][1])) || strstr(got, "UzNjcmV0VmFs") ||
			    strstr(got, "TM2NyZXRWYWx1") || strstr(got, "MzY3JldFZhbHVl"))
				fail_msg("'%s' in steps of %zu: got '%s'", want[c][0], step, got);
			free(got);
		}
	}
}

/* `base64` wraps at 76 columns: a long secret's encoding is masked across the breaks. */
static void test_base64_wrapped(void **state)
{
	char secret[200], cmd[300], in[400];
	const char *secrets[] = { secret, NULL };
	size_t n;
	FILE *f;

	for (int i = 0; i < 199; i++)
		secret[i] = (char)('a' + i % 26);
	secret[199] = '\0';
	snprintf(cmd, sizeof(cmd), "echo %s | base64", secret);   /* coreutils: wrapped */
	assert_non_null(f = popen(cmd, "r"));
	n = fread(in, 1, sizeof(in) - 1, f);
	pclose(f);
	in[n] = '\0';
	assert_true(n > 200 && strchr(in, '\n') < in + n - 1);   /* it did wrap */
	for (size_t step = 1; step <= n; step += 7) {
		char *got = run(secrets, in, step);
		/* all but the last few characters, which encode the newline too */
		if (strncmp(got, "***", 3) || strlen(got) > 8)
			fail_msg("steps of %zu: got '%s'", step, got);
		free(got);
	}
}

static void test_forms_become_patterns(void **state)
{
	const char *secrets[] = { "first\nsecond", NULL };
	struct sw_mask m;
	sw_mask_init(&m, secrets);
	assert_true(m.n >= 3);   /* the value, its lines, its encodings */
	sw_mask_release(&m);
	assert_int_equal(m.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_multiline_secret),
		cmocka_unit_test(test_longest_first_and_overlaps),
		cmocka_unit_test(test_no_secrets_is_identity),
		cmocka_unit_test(test_held_back_only_when_needed),
		cmocka_unit_test(test_lines_of_a_multiline_secret),
		cmocka_unit_test(test_short_and_blank_lines_stay),
		cmocka_unit_test(test_encodings),
		cmocka_unit_test(test_base64_forms),
		cmocka_unit_test(test_base64_wrapped),
		cmocka_unit_test(test_forms_become_patterns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
