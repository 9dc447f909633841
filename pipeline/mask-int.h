/*
 * mask.h - replace secret values in a byte stream with "***" before it is
 * stored (private to pipeline/).
 *
 * What is masked, for each secret value of at least 3 bytes:
 *  - the value itself;
 *  - each line of a multi-line value, without the blanks around it (a tty
 *    turns "\n" into "\r\n", and `sed -n 2p` prints one line), when the
 *    line keeps at least 4 bytes: shorter lines ("}", "--") are ordinary
 *    text;
 *  - the value and each such line JSON-escaped (also with "\/" and with
 *    Go's \u003c \u003e \u0026) and URL-encoded (RFC 3986; "+" for spaces as
 *    forms do; "/" kept as Python's quote() does; JavaScript's
 *    encodeURIComponent);
 *  - base64 of the value, standard and URL-safe, padded or not, whatever
 *    follows it (the characters that depend only on the value: `echo "$S" |
 *    base64` encodes a newline too), wrapped at 64 or 76 columns (openssl,
 *    coreutils), and at the two other alignments inside a longer encoding
 *    ("user:secret" in a basic-auth header). At most 3 characters that
 *    also encode a neighbouring byte stay.
 * Every form of at least 4 bytes (3 for the value itself) is one pattern.
 *
 * Output arrives in arbitrary pieces, so a pattern may be split across two
 * pieces. The masker holds back a tail of what it has seen while that tail
 * is the start of some pattern, until more input (or the end) decides.
 * Longer patterns are tried first, so a secret that contains another is
 * masked whole.
 */
#ifndef SW_PIPELINE_MASK_H
#define SW_PIPELINE_MASK_H

#include <stddef.h>

#include "lib/buf.h"

struct sw_mask_pattern {
	char *s;               /* owned, wiped on release */
	size_t len;
};

struct sw_mask {
	struct sw_mask_pattern *pats;   /* by first byte, then longest first */
	size_t n, cap;
	size_t start[257];     /* pats[start[c] .. start[c + 1]) begin with byte c */
	struct sw_buf pending;  /* seen, not yet emitted */
};

/* `secrets` is NULL-terminated; empty, short and NULL values are skipped. Copied. */
void sw_mask_init(struct sw_mask *m, const char *const *secrets);
/* Feed `len` bytes; append what is certainly safe to `out`. */
void sw_mask_feed(struct sw_mask *m, const char *p, size_t len, struct sw_buf *out);
/* End of stream: append the rest to `out`. */
void sw_mask_finish(struct sw_mask *m, struct sw_buf *out);
/* Wipe and free the patterns; `m` may be initialised again. */
void sw_mask_release(struct sw_mask *m);

#endif
