/*
 * utf8.c - checking, counting and cutting UTF-8 (see utf8.h).
 */
#include "lib/utf8.h"

size_t sw_utf8_lead_len(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if (c < 0xC0)
		return 0;
	if (c < 0xE0)
		return 2;
	if (c < 0xF0)
		return 3;
	return c < 0xF8 ? 4 : 0;
}

size_t sw_utf8_seq(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned c;

	if (!n)
		return 0;
	c = p[0];
	if (c < 0x80)
		return 1;
	if (c < 0xC2 || c > 0xF4)
		return 0;   /* continuation, overlong 2-byte lead, above U+10FFFF */
	if (c < 0xE0)
		return n >= 2 && sw_utf8_is_cont(p[1]) ? 2 : 0;
	if (c < 0xF0) {
		if (n < 3 || !sw_utf8_is_cont(p[1]) || !sw_utf8_is_cont(p[2]))
			return 0;
		if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0))
			return 0;   /* overlong, surrogate */
		return 3;
	}
	if (n < 4 || !sw_utf8_is_cont(p[1]) || !sw_utf8_is_cont(p[2]) || !sw_utf8_is_cont(p[3]))
		return 0;
	if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
		return 0;           /* overlong, above U+10FFFF */
	return 4;
}

int sw_utf8_valid(const char *s, size_t n)
{
	for (size_t i = 0, k; i < n; i += k)
		if (!(k = sw_utf8_seq(s + i, n - i)))
			return 0;
	return 1;
}

size_t sw_utf8_count(const char *s)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		n += !sw_utf8_is_cont(*p);
	return n;
}

size_t sw_utf8_offset(const char *s, size_t chars)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	for (; p[i] && chars; chars--)
		for (i++; sw_utf8_is_cont(p[i]); i++)
			;
	return i;
}

size_t sw_utf8_floor(const char *s, size_t len, size_t at)
{
	size_t n;

	if (at >= len)
		return len;
	for (n = 0; n < 3 && at > 0 && sw_utf8_is_cont((unsigned char)s[at]); n++)
		at--;
	return at;
}

size_t sw_utf8_ceil(const char *s, size_t len, size_t at)
{
	for (size_t n = 0; n < 3 && at < len && sw_utf8_is_cont((unsigned char)s[at]); n++)
		at++;
	return at < len ? at : len;
}

size_t sw_utf8_partial(const char *s, size_t len)
{
	size_t back = 0, need;

	while (back < 3 && back < len && sw_utf8_is_cont((unsigned char)s[len - 1 - back]))
		back++;
	if (back == len)
		return 0;
	need = sw_utf8_lead_len((unsigned char)s[len - 1 - back]);
	return need > back + 1 ? back + 1 : 0;
}

size_t sw_utf8_encode(char out[4], uint32_t u)
{
	if (u < 0x80) {
		out[0] = (char)u;
		return 1;
	}
	if (u < 0x800) {
		out[0] = (char)(0xC0 | u >> 6);
		out[1] = (char)(0x80 | (u & 0x3F));
		return 2;
	}
	if (u < 0x10000) {
		out[0] = (char)(0xE0 | u >> 12);
		out[1] = (char)(0x80 | (u >> 6 & 0x3F));
		out[2] = (char)(0x80 | (u & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | u >> 18);
	out[1] = (char)(0x80 | (u >> 12 & 0x3F));
	out[2] = (char)(0x80 | (u >> 6 & 0x3F));
	out[3] = (char)(0x80 | (u & 0x3F));
	return 4;
}

void sw_utf8_clean(struct sw_buf *b, const char *s, size_t n)
{
	sw_buf_grow(b, n);
	for (size_t i = 0; i < n;) {
		size_t k = sw_utf8_seq(s + i, n - i);
		if (k) {
			sw_buf_add(b, s + i, k);
			i += k;
		} else {
			sw_buf_adds(b, SW_UTF8_REPLACEMENT);
			i++;
		}
	}
}

void sw_utf8_position(const char *s, size_t off, size_t *line, size_t *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off; i++) {
		if (s[i] == '\n') {
			++*line;
			*col = 1;
		} else if (!sw_utf8_is_cont((unsigned char)s[i])) {
			++*col;
		}
	}
}
