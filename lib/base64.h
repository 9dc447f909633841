/*
 * base64.h - RFC 4648 base64, the one copy for Kubernetes' CA bundles,
 * kubeconfigs' *-data keys, YAML's !!binary and the masker's encoded forms
 * of a secret; and its base16 (lower-case hex) for digests and MACs.
 *
 *     sw_base64_encode(&b, pem, strlen(pem), 0);                 // "LS0tLS1C..."
 *     if (sw_base64_decode(&der, v, strlen(v), SW_BASE64_LOOSE) < 0)
 *             return at(c, n, "%s: not valid base64 (%s)", key, sw_error_last());
 *
 * Encoding cannot fail. Decoding skips CR and LF (wrapped text) always and
 * is otherwise strict unless the flags say more: a character of neither
 * alphabet, '=' before the third character of a group, anything after the
 * padding or a group cut short is an error whose message names the byte.
 * Bits left over in a last group are ignored, as Go's base64.StdEncoding
 * ignores them. Allocation failure aborts, as in buf.h.
 */
#ifndef SW_LIB_BASE64_H
#define SW_LIB_BASE64_H

#include <stddef.h>

#include "lib/buf.h"

enum {
	/* RFC 4648 section 5's alphabet: '-' and '_' for '+' and '/' */
	SW_BASE64_URL = 1 << 0,
	/* encode: no '=' at the end; decode: the '=' may be missing */
	SW_BASE64_NOPAD = 1 << 1,
	/* decode: either alphabet, mixed */
	SW_BASE64_ANY = 1 << 2,
	/* decode: spaces and tabs are skipped too */
	SW_BASE64_SPACE = 1 << 3,
};

/* What kubeconfigs' *-data keys get: either alphabet, padding optional,
 * white space anywhere. */
#define SW_BASE64_LOOSE (SW_BASE64_NOPAD | SW_BASE64_ANY | SW_BASE64_SPACE)

/* Length of the encoding of n bytes with these flags. */
size_t sw_base64_len(size_t n, unsigned flags);

/* Append the encoding of data[0..n) to b. */
void sw_base64_encode(struct sw_buf *b, const void *data, size_t n, unsigned flags);

/*
 * Append the bytes that in[0..len) encodes to out. Returns 0, or SW_ERR
 * (SW_EINVALID) with out as it was and a message such as "byte 7: not a
 * base64 character" (never the byte itself: the text may be a secret's).
 */
int sw_base64_decode(struct sw_buf *out, const char *in, size_t len, unsigned flags);

/* data[0..n) as 2n lower-case hex digits and a NUL, into out (2n + 1 bytes). */
void sw_hex(char *out, const void *data, size_t n);

#endif
