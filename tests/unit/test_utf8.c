/*
 * test_utf8.c - lib/utf8.h: RFC 3629's well-formed sequences (the table of
 * its section 4 and the ill-formed cases of Unicode's chapter 3 around it),
 * counting, cutting on character boundaries, partial sequences at the end
 * of a read, encoding, and replacing bytes that are no characters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/utf8.h"

#define S(lit) lit, sizeof(lit) - 1

static void test_seq(void **state)
{
	/* the first and last of each length */
	assert_int_equal(sw_utf8_seq(S("\x00")), 1);
	assert_int_equal(sw_utf8_seq(S("\x7F")), 1);
	assert_int_equal(sw_utf8_seq(S("\xC2\x80")), 2);
	assert_int_equal(sw_utf8_seq(S("\xDF\xBF")), 2);
	assert_int_equal(sw_utf8_seq(S("\xE0\xA0\x80")), 3);
	assert_int_equal(sw_utf8_seq(S("\xEF\xBF\xBF")), 3);
	assert_int_equal(sw_utf8_seq(S("\xF0\x90\x80\x80")), 4);
	assert_int_equal(sw_utf8_seq(S("\xF4\x8F\xBF\xBF")), 4);   /* U+10FFFF */
	/* ill-formed */
	assert_int_equal(sw_utf8_seq(S("\x80")), 0);                /* lone continuation */
	assert_int_equal(sw_utf8_seq(S("\xC0\xAF")), 0);            /* overlong '/' */
	assert_int_equal(sw_utf8_seq(S("\xC1\xBF")), 0);
	assert_int_equal(sw_utf8_seq(S("\xE0\x9F\xBF")), 0);        /* overlong U+07FF */
	assert_int_equal(sw_utf8_seq(S("\xED\xA0\x80")), 0);        /* U+D800, a surrogate */
	assert_int_equal(sw_utf8_seq(S("\xED\xBF\xBF")), 0);        /* U+DFFF */
	assert_int_equal(sw_utf8_seq(S("\xED\x9F\xBF")), 3);        /* U+D7FF is fine */
	assert_int_equal(sw_utf8_seq(S("\xF0\x8F\xBF\xBF")), 0);    /* overlong U+FFFF */
	assert_int_equal(sw_utf8_seq(S("\xF4\x90\x80\x80")), 0);    /* U+110000 */
	assert_int_equal(sw_utf8_seq(S("\xF5\x80\x80\x80")), 0);
	assert_int_equal(sw_utf8_seq(S("\xFF")), 0);
	assert_int_equal(sw_utf8_seq(S("\xE2\x82")), 0);            /* cut short */
	assert_int_equal(sw_utf8_seq(S("\xE2\x28\xA1")), 0);        /* bad continuation */
	assert_int_equal(sw_utf8_seq("", 0), 0);
	/* never reads past n */
	assert_int_equal(sw_utf8_seq("\xC3\xA9", 1), 0);

	assert_true(sw_utf8_valid(S("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80")));
	assert_true(sw_utf8_valid(S("a\0b")));
	assert_true(sw_utf8_valid("", 0));
	assert_false(sw_utf8_valid(S("ok \xED\xA0\x80")));
	assert_false(sw_utf8_valid(S("\xF0\x9F\x98")));

	assert_int_equal(sw_utf8_lead_len('a'), 1);
	assert_int_equal(sw_utf8_lead_len(0x80), 0);
	assert_int_equal(sw_utf8_lead_len(0xC3), 2);
	assert_int_equal(sw_utf8_lead_len(0xE2), 3);
	assert_int_equal(sw_utf8_lead_len(0xF0), 4);
	assert_int_equal(sw_utf8_lead_len(0xF8), 0);
}

static void test_count_and_cut(void **state)
{
	const char *s = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z";   /* a é € 😀 z: 11 bytes */
	size_t n = strlen(s);

	assert_int_equal(sw_utf8_count(s), 5);
	assert_int_equal(sw_utf8_count(""), 0);
	assert_int_equal(sw_utf8_offset(s, 0), 0);
	assert_int_equal(sw_utf8_offset(s, 2), 3);
	assert_int_equal(sw_utf8_offset(s, 4), 10);
	assert_int_equal(sw_utf8_offset(s, 99), n);

	/* floor: cut at most `at` bytes without half a character */
	assert_int_equal(sw_utf8_floor(s, n, 2), 1);
	assert_int_equal(sw_utf8_floor(s, n, 3), 3);
	assert_int_equal(sw_utf8_floor(s, n, 5), 3);
	assert_int_equal(sw_utf8_floor(s, n, 9), 6);
	assert_int_equal(sw_utf8_floor(s, n, 10), 10);
	assert_int_equal(sw_utf8_floor(s, n, 50), n);
	/* ceil: start reading on a whole character */
	assert_int_equal(sw_utf8_ceil(s, n, 2), 3);
	assert_int_equal(sw_utf8_ceil(s, n, 7), 10);
	assert_int_equal(sw_utf8_ceil(s, n, 0), 0);
	assert_int_equal(sw_utf8_ceil(s, 8, 7), 8);
	/* garbage is not walked further than a character is long */
	assert_int_equal(sw_utf8_ceil(S("\x80\x80\x80\x80\x80x"), 0), 3);
	assert_int_equal(sw_utf8_floor(S("x\x80\x80\x80\x80\x80"), 5), 2);
}

static void test_partial(void **state)
{
	assert_int_equal(sw_utf8_partial(S("abc")), 0);
	assert_int_equal(sw_utf8_partial(S("ab\xC3")), 1);
	assert_int_equal(sw_utf8_partial(S("ab\xC3\xA9")), 0);
	assert_int_equal(sw_utf8_partial(S("ab\xE2\x82")), 2);
	assert_int_equal(sw_utf8_partial(S("ab\xF0\x9F\x98")), 3);
	assert_int_equal(sw_utf8_partial(S("ab\xF0\x9F\x98\x80")), 0);
	assert_int_equal(sw_utf8_partial(S("\x80\x80")), 0);    /* no lead: nothing to wait for */
	assert_int_equal(sw_utf8_partial("", 0), 0);
}

static void test_encode(void **state)
{
	const uint32_t cps[] = { 0, 0x41, 0x7F, 0x80, 0xE9, 0x7FF, 0x800, 0x20AC, 0xFFFD, 0xFFFF,
				 0x10000, 0x1F600, 0x10FFFF };
	const size_t lens[] = { 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4 };
	char o[4];

	for (size_t i = 0; i < sizeof(cps) / sizeof(cps[0]); i++) {
		size_t k = sw_utf8_encode(o, cps[i]);
		assert_int_equal(k, lens[i]);
		assert_int_equal(sw_utf8_seq(o, k), k);   /* what it writes is well-formed */
	}
	assert_int_equal(sw_utf8_encode(o, 0x20AC), 3);
	assert_memory_equal(o, "\xE2\x82\xAC", 3);
}

static void test_clean_and_position(void **state)
{
	struct sw_buf b = SW_BUF_INIT;
	size_t line, col;

	sw_utf8_clean(&b, S("ok \xC3\xA9 \xFF\xC3 \xED\xA0\x80!"));
	assert_string_equal(b.ptr, "ok \xC3\xA9 \xEF\xBF\xBD\xEF\xBF\xBD "
			    "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD!");
	assert_true(sw_utf8_valid(b.ptr, b.len));
	sw_buf_release(&b);

	sw_utf8_position("ab\n\xC3\xA9x", 5, &line, &col);   /* the 'x' */
	assert_int_equal(line, 2);
	assert_int_equal(col, 2);
	sw_utf8_position("abc", 0, &line, &col);
	assert_int_equal(line, 1);
	assert_int_equal(col, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seq),
		cmocka_unit_test(test_count_and_cut),
		cmocka_unit_test(test_partial),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_clean_and_position),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
