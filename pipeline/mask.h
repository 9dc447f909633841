/*
 * mask.h - replace secret values in a byte stream with "***" before it is
 * stored (private to pipeline/).
 *
 * Output arrives in arbitrary pieces, so a secret may be split across two
 * pieces, and a secret may span lines. The masker holds back the last
 * (longest secret - 1) bytes of what it has seen until more input (or the
 * end) shows whether they start a secret. Longer secrets are tried first,
 * so a secret that contains another is masked whole.
 */
#ifndef SW_PIPELINE_MASK_H
#define SW_PIPELINE_MASK_H

#include <stddef.h>

#include "lib/buf.h"

struct sw_mask {
	char **secrets;      /* owned copies, longest first */
	size_t *lens;
	size_t n;
	size_t maxlen;
	struct sw_buf pending;  /* seen, not yet emitted */
};

/* `secrets` is NULL-terminated; empty and NULL values are skipped. Copied. */
void sw_mask_init(struct sw_mask *m, const char *const *secrets);
/* Feed `len` bytes; append what is certainly safe to `out`. */
void sw_mask_feed(struct sw_mask *m, const char *p, size_t len, struct sw_buf *out);
/* End of stream: append the rest to `out`. */
void sw_mask_finish(struct sw_mask *m, struct sw_buf *out);
void sw_mask_release(struct sw_mask *m);

#endif
