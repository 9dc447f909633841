/*
 * mask.c - streaming secret masking (see mask.h).
 */
#include "pipeline/mask.h"

#include <stdlib.h>
#include <string.h>

#define SECRET_MIN 3   /* shorter values would mask ordinary text */

void sw_mask_init(struct sw_mask *m, const char *const *secrets)
{
	size_t cap = 0;
	memset(m, 0, sizeof(*m));
	sw_buf_init(&m->pending);
	for (const char *const *s = secrets; s && *s; s++)
		cap++;
	m->secrets = sw_calloc(cap + 1, sizeof(char *));
	m->lens = sw_calloc(cap + 1, sizeof(size_t));
	for (const char *const *s = secrets; s && *s; s++) {
		size_t len = strlen(*s);
		int dup = 0;
		if (len < SECRET_MIN)
			continue;
		for (size_t i = 0; i < m->n; i++)
			dup |= !strcmp(m->secrets[i], *s);
		if (dup)
			continue;
		/* insertion sort, longest first */
		size_t at = m->n;
		while (at > 0 && m->lens[at - 1] < len) {
			m->secrets[at] = m->secrets[at - 1];
			m->lens[at] = m->lens[at - 1];
			at--;
		}
		m->secrets[at] = sw_strdup(*s);
		m->lens[at] = len;
		m->n++;
		if (len > m->maxlen)
			m->maxlen = len;
	}
}

/* Emit from pending; with `final` unset keep a tail that may start a secret. */
static void drain(struct sw_mask *m, struct sw_buf *out, int final)
{
	const char *p = m->pending.ptr;
	size_t len = m->pending.len, i = 0, plain = 0;

	while (i < len) {
		size_t left = len - i, hit = 0;
		int partial = 0;
		for (size_t k = 0; k < m->n; k++) {
			size_t sl = m->lens[k];
			if (left >= sl) {
				if (!memcmp(p + i, m->secrets[k], sl)) {
					hit = sl;
					break;
				}
			} else if (!final && !memcmp(p + i, m->secrets[k], left)) {
				/* the rest may complete this (longer) secret: wait,
				 * even if a shorter one matches already */
				partial = 1;
				break;
			}
		}
		if (hit) {
			sw_buf_add(out, p + plain, i - plain);
			sw_buf_adds(out, "***");
			i += hit;
			plain = i;
		} else if (partial) {
			break;
		} else {
			i++;
		}
	}
	sw_buf_add(out, p + plain, i - plain);
	sw_buf_consume(&m->pending, i);
}

void sw_mask_feed(struct sw_mask *m, const char *p, size_t len, struct sw_buf *out)
{
	if (!m->n) {
		sw_buf_add(out, p, len);
		return;
	}
	sw_buf_add(&m->pending, p, len);
	drain(m, out, 0);
}

void sw_mask_finish(struct sw_mask *m, struct sw_buf *out)
{
	drain(m, out, 1);
}

void sw_mask_release(struct sw_mask *m)
{
	for (size_t i = 0; i < m->n; i++) {
		memset(m->secrets[i], 0, m->lens[i]);
		free(m->secrets[i]);
	}
	free(m->secrets);
	free(m->lens);
	sw_buf_release(&m->pending);
	memset(m, 0, sizeof(*m));
}
