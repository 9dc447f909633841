/*
 * base64.c - RFC 4648 base64 (see base64.h).
 */
#include "lib/base64.h"

#include <stdint.h>

#include "lib/error.h"

static const char std_abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t sw_base64_len(size_t n, unsigned flags)
{
	if (flags & SW_BASE64_NOPAD)
		return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
	return (n + 2) / 3 * 4;
}

void sw_base64_encode(struct sw_buf *b, const void *data, size_t n, unsigned flags)
{
	const unsigned char *p = data;
	const char *abc = flags & SW_BASE64_URL ? url_abc : std_abc;
	int pad = !(flags & SW_BASE64_NOPAD);

	sw_buf_grow(b, sw_base64_len(n, flags));
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
			     (i + 2 < n ? p[i + 2] : 0);
		sw_buf_addch(b, abc[v >> 18 & 63]);
		sw_buf_addch(b, abc[v >> 12 & 63]);
		if (i + 1 < n)
			sw_buf_addch(b, abc[v >> 6 & 63]);
		else if (pad)
			sw_buf_addch(b, '=');
		if (i + 2 < n)
			sw_buf_addch(b, abc[v & 63]);
		else if (pad)
			sw_buf_addch(b, '=');
	}
}

/* The six bits character ch stands for, -1 when the flags' alphabet has no ch. */
static int value(unsigned char ch, unsigned flags)
{
	int url = (flags & (SW_BASE64_URL | SW_BASE64_ANY)) != 0;
	int std = !(flags & SW_BASE64_URL) || (flags & SW_BASE64_ANY);

	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if ((ch == '+' && std) || (ch == '-' && url))
		return 62;
	if ((ch == '/' && std) || (ch == '_' && url))
		return 63;
	return -1;
}

static int fail(struct sw_buf *out, size_t keep, size_t at, const char *what)
{
	sw_buf_truncate(out, keep);
	return sw_error_setc(SW_EINVALID, "byte %zu: %s", at + 1, what);
}

int sw_base64_decode(struct sw_buf *out, const char *in, size_t len, unsigned flags)
{
	size_t keep = out->len, quad = 0, last = 0;
	int nbits = 0, pad = 0;
	uint32_t acc = 0;

	sw_buf_grow(out, len / 4 * 3 + 3);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)in[i];
		int v;

		if (ch == '\r' || ch == '\n' ||
		    ((flags & SW_BASE64_SPACE) && (ch == ' ' || ch == '\t')))
			continue;
		last = i;
		if (ch == '=') {
			/* four characters encode three bytes; '=' stands only for
			 * the third and fourth when there are one or two */
			if (quad < 2)
				return fail(out, keep, i, "'=' before the third character of a group of four");
			pad = 1;
			quad = (quad + 1) % 4;
			continue;
		}
		if (pad)
			return fail(out, keep, i, "data after the padding");
		if ((v = value(ch, flags)) < 0)
			return fail(out, keep, i, "not a base64 character");
		acc = (acc << 6 | (uint32_t)v) & 0xFFFFFF;
		nbits += 6;
		quad = (quad + 1) % 4;
		if (nbits >= 8) {
			nbits -= 8;
			sw_buf_addch(out, (char)(acc >> nbits & 0xFF));
		}
	}
	/* one character is six bits, no byte; two or three want their '='
	 * unless it may be left out (or the padding has begun) */
	if (quad == 1 || (quad && (pad || !(flags & SW_BASE64_NOPAD))))
		return fail(out, keep, last, "the last group of four is cut short");
	return 0;
}

void sw_hex(char *out, const void *data, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = data;
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = 0;
}
