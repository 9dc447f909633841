/*
 * test_cidr.c - lib/cidr.h: IPv4 and IPv6 ranges, bare addresses, the
 * IPv4-mapped spelling on either side, prefixes that are not byte aligned,
 * and input that is refused with a message saying what is wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/socket.h>

#include "lib/cidr.h"
#include "lib/error.h"

static int in(const char *range, const char *addr)
{
	struct sw_cidr c;
	assert_int_equal(sw_cidr_parse(&c, range), 0);
	return sw_cidr_match(&c, addr);
}

static void test_ipv4(void **state)
{
	assert_true(in("10.0.0.0/8", "10.255.1.2"));
	assert_false(in("10.0.0.0/8", "11.0.0.1"));
	assert_true(in("192.168.4.0/22", "192.168.7.255"));
	assert_false(in("192.168.4.0/22", "192.168.8.0"));
	assert_false(in("192.168.4.0/22", "192.168.3.255"));
	assert_true(in("127.0.0.1", "127.0.0.1"));
	assert_false(in("127.0.0.1", "127.0.0.2"));
	assert_true(in("0.0.0.0/0", "203.0.113.9"));
	assert_false(in("0.0.0.0/0", "::1"));   /* a family never matches the other */
	assert_false(in("10.0.0.0/8", "not an address"));
	assert_false(in("10.0.0.0/8", ""));
}

static void test_ipv6(void **state)
{
	assert_true(in("::1", "::1"));
	assert_true(in("::1/128", "0:0:0:0:0:0:0:1"));
	assert_false(in("::1", "::2"));
	assert_true(in("fd00::/8", "fd12:3456::1"));
	assert_false(in("fd00::/8", "fe80::1"));
	assert_true(in("2001:db8:80::/41", "2001:db8:ff::1"));
	assert_false(in("2001:db8:80::/41", "2001:db8:7f::1"));
	assert_true(in("::/0", "2001:db8::1"));
	assert_false(in("::/0", "10.0.0.1"));
}

static void test_mapped(void **state)
{
	/* a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d */
	assert_true(in("10.0.0.0/8", "::ffff:10.1.2.3"));
	assert_true(in("::ffff:10.0.0.0/104", "10.9.9.9"));
	assert_false(in("::ffff:10.0.0.0/104", "11.0.0.1"));
	struct sw_cidr c;
	assert_int_equal(sw_cidr_parse(&c, "::ffff:127.0.0.1"), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.bits, 32);
}

static void refused(const char *range, const char *says)
{
	struct sw_cidr c;
	assert_int_equal(sw_cidr_parse(&c, range), SW_EINVALID);
	if (!strstr(sw_error_last(), says))
		fail_msg("%s: message \"%s\" lacks \"%s\"", range, sw_error_last(), says);
}

static void test_refused(void **state)
{
	refused("", "empty");
	refused("10.0.0.0/33", "0 to 32");
	refused("::/129", "0 to 128");
	refused("10.0.0.0/", "prefix length");
	refused("10.0.0.0/8x", "0 to 32");
	refused("10.0.0.0/-1", "prefix length");
	refused("10.1.0.0/8", "beyond the /8");
	refused("fd00::1/8", "beyond the /8");
	refused("300.0.0.1", "not an IPv4 or IPv6 address");
	refused("example.com/8", "not an IPv4 or IPv6 address");
	refused("::ffff:10.0.0.0/8", "at least 96");
}

static void test_match_any(void **state)
{
	struct sw_cidr v[2];
	assert_int_equal(sw_cidr_parse(&v[0], "10.0.0.0/8"), 0);
	assert_int_equal(sw_cidr_parse(&v[1], "::1"), 0);
	assert_true(sw_cidr_match_any(v, 2, "::1"));
	assert_true(sw_cidr_match_any(v, 2, "10.2.3.4"));
	assert_false(sw_cidr_match_any(v, 2, "192.0.2.1"));
	assert_false(sw_cidr_match_any(v, 0, "10.2.3.4"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_mapped),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_match_any),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
