/*
 * test_limit.c - httpd/httpd.h: each client has its own window of
 * failures (one locked-out client locks out nobody else), the window ends
 * on time, the wait reported is what is left of it, the table stays within
 * its size, and IPv6 clients count per /64.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "httpd/httpd.h"

static void test_per_client(void **state)
{
	struct sw_limiter *l;
	sw_limiter_new(&l, 3, 60000, 16);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sw_limiter_check(l, "192.0.2.1", 1000 + i), 0);
		sw_limiter_fail(l, "192.0.2.1", 1000 + i);
	}
	assert_int_equal(sw_limiter_check(l, "192.0.2.1", 11000), 50000);   /* the rest */
	assert_int_equal(sw_limiter_check(l, "192.0.2.2", 11000), 0);       /* others free */
	assert_int_equal(sw_limiter_check(l, "192.0.2.1", 60999), 1);
	assert_int_equal(sw_limiter_check(l, "192.0.2.1", 61000), 0);       /* a new window */
	sw_limiter_fail(l, "192.0.2.1", 61000);
	assert_int_equal(sw_limiter_check(l, "192.0.2.1", 61001), 0);
	sw_limiter_free(l);
	sw_limiter_free(NULL);
}

static void test_bounded(void **state)
{
	struct sw_limiter *l;
	char key[32];
	sw_limiter_new(&l, 1, 60000, 4);
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "10.0.0.%d", i);
		sw_limiter_fail(l, key, 1000 + i);
		assert_true(sw_limiter_size(l) <= 4);
	}
	/* the newest stay; the oldest went to make room */
	assert_true(sw_limiter_check(l, "10.0.0.99", 2000) > 0);
	assert_int_equal(sw_limiter_check(l, "10.0.0.0", 2000), 0);
	/* expired windows go first */
	sw_limiter_fail(l, "203.0.113.1", 200000);
	assert_int_equal(sw_limiter_size(l), 1);
	sw_limiter_free(l);
}

static void test_key(void **state)
{
	char k[80];
	sw_limiter_key(k, sizeof(k), "192.0.2.7");
	assert_string_equal(k, "192.0.2.7");
	sw_limiter_key(k, sizeof(k), "2001:db8:1:2:aaaa:bbbb:cccc:dddd");
	assert_string_equal(k, "2001:db8:1:2::/64");
	sw_limiter_key(k, sizeof(k), "::ffff:192.0.2.7");   /* IPv4 on a dual-stack socket */
	assert_string_equal(k, "192.0.2.7");
	sw_limiter_key(k, sizeof(k), NULL);
	assert_string_equal(k, "-");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_per_client),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_key),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
