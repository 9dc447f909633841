/*
 * utf8.h - UTF-8 as slipway checks, counts and cuts it: the one copy that
 * webhooks, reports, the API, the pages, Terraform's summaries and the CLI
 * use.
 *
 *     if (!sw_utf8_valid(body, len))              // strict: RFC 3629
 *             return reject("not UTF-8");
 *     sw_buf_truncate(&b, sw_utf8_floor(b.ptr, b.len, max));  // no half characters
 *
 * "Well-formed" is RFC 3629's: no overlong forms, no surrogates
 * (U+D800..U+DFFF), nothing above U+10FFFF. Counting and cutting only look
 * at continuation bytes (10xxxxxx), so they never read past the bytes
 * given and work on any input; on valid text they count code points.
 * Nothing here allocates except sw_utf8_clean(), which appends to a buffer.
 */
#ifndef SW_LIB_UTF8_H
#define SW_LIB_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/* U+FFFD, what a byte that is no character becomes. */
#define SW_UTF8_REPLACEMENT "\xEF\xBF\xBD"

/* Whether byte c continues a character (10xxxxxx). */
static inline int sw_utf8_is_cont(unsigned char c)
{
	return (c & 0xC0) == 0x80;
}

/*
 * How long a character that starts with byte c is: 1 for ASCII, 2 to 4
 * for a lead byte, 0 for a continuation byte or one that never starts a
 * character (0xF8 and above). The bytes after it are not checked.
 */
size_t sw_utf8_lead_len(unsigned char c);

/* Length (1 to 4) of the well-formed character at s[0..n), 0 when there is none. */
size_t sw_utf8_seq(const char *s, size_t n);

/* Whether s[0..n) is well-formed UTF-8 (NUL bytes are characters too). */
int sw_utf8_valid(const char *s, size_t n);

/* Characters (bytes that are no continuation) in NUL-terminated s. */
size_t sw_utf8_count(const char *s);

/* Byte offset just past the first `chars` characters of NUL-terminated s
 * (its length when it has fewer). */
size_t sw_utf8_offset(const char *s, size_t chars);

/*
 * Character boundaries in s[0..len): sw_utf8_floor() is the largest offset
 * <= at (and <= len) that does not split a character, for cutting at a
 * maximum; sw_utf8_ceil() the smallest >= at, for starting in the middle.
 * Both move over at most three continuation bytes, as a character has.
 */
size_t sw_utf8_floor(const char *s, size_t len, size_t at);
size_t sw_utf8_ceil(const char *s, size_t len, size_t at);

/*
 * How many bytes at the end of s[0..len) are the start of a character cut
 * short (0 to 3), to hold back until the rest arrives.
 */
size_t sw_utf8_partial(const char *s, size_t len);

/* Write code point u (<= U+10FFFF, no surrogate) to out; returns its length. */
size_t sw_utf8_encode(char out[4], uint32_t u);

/* Append s[0..n) to b with each byte that starts no well-formed character
 * replaced by U+FFFD. */
void sw_utf8_clean(struct sw_buf *b, const char *s, size_t n);

/* Line and column (1-based; columns in characters) of byte offset `off`
 * of s, for messages about text that has no marks of its own. */
void sw_utf8_position(const char *s, size_t off, size_t *line, size_t *col);

#endif
