/*
 * test_base64.c - lib/base64.h: RFC 4648's test vectors (section 10) both
 * ways, the URL-safe alphabet and unpadded forms, wrapped input, and the
 * errors a decoder must give (bad characters, misplaced padding, groups
 * cut short) without touching what the buffer held.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"
#include "lib/buf.h"
#include "lib/error.h"

static const struct {
	const char *plain, *b64;
} rfc4648[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

#define NVEC (sizeof(rfc4648) / sizeof(rfc4648[0]))

static void assert_decodes(const char *in, unsigned flags, const void *want, size_t n)
{
	struct sw_buf b = SW_BUF_INIT;

	assert_int_equal(sw_base64_decode(&b, in, strlen(in), flags), 0);
	assert_int_equal(b.len, n);
	if (n)
		assert_memory_equal(b.ptr, want, n);
	sw_buf_release(&b);
}

/* Fails, names byte `at` (1-based) in its message and leaves b alone. */
static void assert_rejects(const char *in, unsigned flags, size_t at)
{
	struct sw_buf b = SW_BUF_INIT;
	char want[32];

	sw_buf_adds(&b, "kept");
	assert_int_equal(sw_base64_decode(&b, in, strlen(in), flags), SW_EINVALID);
	assert_string_equal(b.ptr, "kept");
	snprintf(want, sizeof(want), "byte %zu: ", at);
	if (strncmp(sw_error_last(), want, strlen(want)))
		fail_msg("%s: \"%s\" does not start with \"%s\"", in, sw_error_last(), want);
	sw_buf_release(&b);
}

static void test_rfc4648_vectors(void **state)
{
	for (size_t i = 0; i < NVEC; i++) {
		struct sw_buf b = SW_BUF_INIT;
		size_t n = strlen(rfc4648[i].plain);

		sw_base64_encode(&b, rfc4648[i].plain, n, 0);
		assert_string_equal(b.ptr ? b.ptr : "", rfc4648[i].b64);
		assert_int_equal(sw_base64_len(n, 0), b.len);
		sw_buf_release(&b);
		assert_decodes(rfc4648[i].b64, 0, rfc4648[i].plain, n);
		assert_decodes(rfc4648[i].b64, SW_BASE64_LOOSE, rfc4648[i].plain, n);

		/* unpadded: the same without the '=' */
		size_t unpadded = strcspn(rfc4648[i].b64, "=");
		sw_base64_encode(&b, rfc4648[i].plain, n, SW_BASE64_NOPAD);
		assert_int_equal(b.len, unpadded);
		if (unpadded)
			assert_memory_equal(b.ptr, rfc4648[i].b64, unpadded);
		assert_int_equal(sw_base64_len(n, SW_BASE64_NOPAD), unpadded);
		sw_buf_release(&b);
	}
	assert_decodes("Zm9vYg", SW_BASE64_NOPAD, "foob", 4);
	assert_decodes("Zm9vYmE", SW_BASE64_NOPAD, "fooba", 5);
	assert_decodes("Zm9vYg==", SW_BASE64_NOPAD, "foob", 4);   /* padding still fine */
}

static void test_alphabets(void **state)
{
	const unsigned char bytes[] = { 0xFB, 0xFF, 0xBF };   /* 111110 111111 111110 111111 */
	struct sw_buf b = SW_BUF_INIT;

	sw_base64_encode(&b, bytes, 3, 0);
	assert_string_equal(b.ptr, "+/+/");
	sw_buf_truncate(&b, 0);
	sw_base64_encode(&b, bytes, 3, SW_BASE64_URL);
	assert_string_equal(b.ptr, "-_-_");
	sw_buf_truncate(&b, 0);
	/* appends */
	sw_base64_encode(&b, "f", 1, SW_BASE64_URL | SW_BASE64_NOPAD);
	sw_base64_encode(&b, "f", 1, 0);
	assert_string_equal(b.ptr, "ZgZg==");
	sw_buf_release(&b);

	assert_decodes("+/+/", 0, bytes, 3);
	assert_decodes("-_-_", SW_BASE64_URL, bytes, 3);
	assert_decodes("-/+_", SW_BASE64_ANY, bytes, 3);
	assert_rejects("-_-_", 0, 1);
	assert_rejects("+/+/", SW_BASE64_URL, 1);

	/* all 256 byte values round-trip, in both alphabets */
	unsigned char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	for (unsigned f = 0; f <= (SW_BASE64_URL | SW_BASE64_NOPAD); f++) {
		struct sw_buf e = SW_BUF_INIT, d = SW_BUF_INIT;
		sw_base64_encode(&e, all, sizeof(all), f);
		assert_int_equal(sw_base64_decode(&d, e.ptr, e.len, f), 0);
		assert_int_equal(d.len, sizeof(all));
		assert_memory_equal(d.ptr, all, sizeof(all));
		sw_buf_release(&e);
		sw_buf_release(&d);
	}
}

static void test_wrapped_and_spaces(void **state)
{
	/* CR and LF are skipped always (PEM, `base64` wraps at 76) */
	assert_decodes("Zm9v\nYmFy\r\n", 0, "foobar", 6);
	assert_decodes("Zm\n9vYg=\n=", 0, "foob", 4);
	/* spaces and tabs only when asked */
	assert_rejects("Zm9v YmFy", 0, 5);
	assert_decodes(" Zm9v\tYmFy ", SW_BASE64_SPACE, "foobar", 6);
}

static void test_errors(void **state)
{
	assert_rejects("Zm9v*mFy", 0, 5);          /* not an alphabet character */
	assert_rejects("Zm9vY", 0, 5);             /* one character: six bits */
	assert_rejects("Zm9vY", SW_BASE64_NOPAD, 5);
	assert_rejects("Zm9vYg", 0, 6);            /* padding required */
	assert_rejects("Zm9vYg=", 0, 7);           /* half the padding */
	assert_rejects("Zm9vYg=", SW_BASE64_NOPAD, 7);
	assert_rejects("Zm9v=", 0, 5);             /* '=' first in a group */
	assert_rejects("Zm9vY===", 0, 6);          /* '=' second in a group */
	assert_rejects("Zg==Zg==", 0, 5);          /* data after the padding */
	assert_rejects("Zm8==", 0, 5);             /* a fifth character of a group */
	assert_rejects("Zm9v\xC3\xA9", 0, 5);
	/* the message never shows the text (it may be a secret's) */
	assert_rejects("c2VjcmV0*", 0, 9);
	assert_null(strstr(sw_error_last(), "*"));
}

/* RFC 4648 section 10's base16 vectors, in lower case. */
static void test_hex(void **state)
{
	static const char *const v[][2] = { { "", "" }, { "f", "66" }, { "fo", "666f" },
					     { "foobar", "666f6f626172" } };
	char out[16];
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		sw_hex(out, v[i][0], strlen(v[i][0]));
		assert_string_equal(out, v[i][1]);
	}
	sw_hex(out, "\x00\xff\x10", 3);
	assert_string_equal(out, "00ff10");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_vectors),
		cmocka_unit_test(test_alphabets),
		cmocka_unit_test(test_wrapped_and_spaces),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_hex),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
