/*
 * test_mask.c - secrets never survive into stored logs, however the output
 * is split.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "pipeline/mask.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_multiline_secret),
		cmocka_unit_test(test_longest_first_and_overlaps),
		cmocka_unit_test(test_no_secrets_is_identity),
		cmocka_unit_test(test_held_back_only_when_needed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
