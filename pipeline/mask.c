/*
 * mask.c - streaming secret masking (see mask.h for what is masked).
 *
 * sw_mask_init() turns each secret into its patterns (the value, its lines,
 * their encodings) once; drain() then matches every pattern at every
 * position, looking only at the patterns that begin with the byte there.
 */
#include "pipeline/mask-int.h"

#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"

#define SECRET_MIN 3   /* shorter values would mask ordinary text */
#define FORM_MIN 4     /* nor may a shorter line or encoding of one */

enum { JSON_SLASH = 1, JSON_HTML = 2 };
enum { URL_FORM = 1, URL_KEEP_SLASH = 2, URL_JS = 4 };

/* Empty `b`, wiping what it held (a form of a secret). */
static void wipe(struct sw_buf *b)
{
	if (b->len)
		memset(b->ptr, 0, b->len);
	sw_buf_truncate(b, 0);
}

static void add_pattern(struct sw_mask *m, const char *p, size_t len, size_t min)
{
	if (len < min)
		return;
	for (size_t i = 0; i < m->n; i++)
		if (m->pats[i].len == len && !memcmp(m->pats[i].s, p, len))
			return;
	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->pats = sw_realloc(m->pats, m->cap * sizeof(*m->pats));
	}
	m->pats[m->n].s = sw_malloc(len);
	memcpy(m->pats[m->n].s, p, len);
	m->pats[m->n].len = len;
	m->n++;
}

static void json_escape(struct sw_buf *b, const char *p, size_t n, int flags)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		switch (c) {
		case '"': sw_buf_adds(b, "\\\""); break;
		case '\\': sw_buf_adds(b, "\\\\"); break;
		case '\b': sw_buf_adds(b, "\\b"); break;
		case '\f': sw_buf_adds(b, "\\f"); break;
		case '\n': sw_buf_adds(b, "\\n"); break;
		case '\r': sw_buf_adds(b, "\\r"); break;
		case '\t': sw_buf_adds(b, "\\t"); break;
		case '/':
			sw_buf_adds(b, flags & JSON_SLASH ? "\\/" : "/");
			break;
		default:
			if (c < 0x20 || ((flags & JSON_HTML) && (c == '<' || c == '>' || c == '&')))
				sw_buf_addf(b, "\\u%04x", c);
			else
				sw_buf_addch(b, (char)c);
		}
	}
}

static void url_encode(struct sw_buf *b, const char *p, size_t n, int flags)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    (c && strchr("-._~", c)) || (c == '/' && (flags & URL_KEEP_SLASH)) ||
		    (c && (flags & URL_JS) && strchr("!'()*", c))) {
			sw_buf_addch(b, (char)c);
		} else if (c == ' ' && (flags & URL_FORM)) {
			sw_buf_addch(b, '+');
		} else {
			sw_buf_addch(b, '%');
			sw_buf_addch(b, hex[c >> 4]);
			sw_buf_addch(b, hex[c & 15]);
		}
	}
}

/* `p` itself (at least `min` bytes), JSON-escaped and URL-encoded. */
static void add_text_forms(struct sw_mask *m, const char *p, size_t n, size_t min)
{
	static const int json[] = { 0, JSON_SLASH, JSON_HTML };
	static const int url[] = { 0, URL_FORM, URL_KEEP_SLASH, URL_JS };
	struct sw_buf b = SW_BUF_INIT;

	add_pattern(m, p, n, min);
	for (size_t i = 0; i < sizeof(json) / sizeof(json[0]); i++) {
		json_escape(&b, p, n, json[i]);
		add_pattern(m, b.ptr, b.len, FORM_MIN);
		wipe(&b);
	}
	for (size_t i = 0; i < sizeof(url) / sizeof(url[0]); i++) {
		url_encode(&b, p, n, url[i]);
		add_pattern(m, b.ptr, b.len, FORM_MIN);
		wipe(&b);
	}
	sw_buf_release(&b);
}

/*
 * Base64 of the value. Of an encoding the first 4*(n/3) + n%3 characters
 * depend on the value alone, whatever follows it; the value starting at
 * another alignment in a longer encoding shows as the encoding of the value
 * without its first one or two bytes.
 */
static void add_base64_forms(struct sw_mask *m, const char *value, size_t len)
{
	static const unsigned alphabet[] = { 0, SW_BASE64_URL };
	static const size_t wrap[] = { 64, 76 };
	struct sw_buf b = SW_BUF_INIT, w = SW_BUF_INIT;

	for (size_t shift = 0; shift < 3 && shift < len; shift++) {
		size_t n = len - shift, fixed = 4 * (n / 3) + n % 3;
		for (size_t a = 0; a < 2; a++) {
			sw_base64_encode(&b, value + shift, n, alphabet[a]);
			add_pattern(m, b.ptr, fixed, FORM_MIN);
			if (shift == 0) {
				size_t unpadded = b.len;
				while (unpadded && b.ptr[unpadded - 1] == '=')
					unpadded--;
				add_pattern(m, b.ptr, b.len, FORM_MIN);
				add_pattern(m, b.ptr, unpadded, FORM_MIN);
				for (size_t k = 0; k < 2 && fixed > wrap[k]; k++) {
					for (size_t i = 0; i < fixed; i += wrap[k]) {
						if (i)
							sw_buf_addch(&w, '\n');
						sw_buf_add(&w, b.ptr + i, fixed - i < wrap[k] ? fixed - i : wrap[k]);
					}
					add_pattern(m, w.ptr, w.len, FORM_MIN);
					wipe(&w);
				}
			}
			wipe(&b);
		}
	}
	sw_buf_release(&b);
	sw_buf_release(&w);
}

static int cmp_pattern(const void *a, const void *b)
{
	const struct sw_mask_pattern *x = a, *y = b;
	unsigned char cx = (unsigned char)x->s[0], cy = (unsigned char)y->s[0];
	if (cx != cy)
		return cx < cy ? -1 : 1;
	return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;   /* longest first */
}

void sw_mask_init(struct sw_mask *m, const char *const *secrets)
{
	memset(m, 0, sizeof(*m));
	sw_buf_init(&m->pending);
	for (const char *const *s = secrets; s && *s; s++) {
		const char *v = *s, *line, *end;
		size_t len = strlen(v);
		int lines = strchr(v, '\n') != NULL;
		if (len < SECRET_MIN)
			continue;
		add_text_forms(m, v, len, SECRET_MIN);
		add_base64_forms(m, v, len);
		for (line = v; lines && line <= v + len; line = end + 1) {
			end = strchr(line, '\n');
			if (!end)
				end = v + len;
			const char *a = line, *z = end;
			while (a < z && strchr(" \t\r", *a))
				a++;
			while (z > a && strchr(" \t\r", z[-1]))
				z--;
			add_text_forms(m, a, (size_t)(z - a), FORM_MIN);
		}
	}
	if (m->n)
		qsort(m->pats, m->n, sizeof(*m->pats), cmp_pattern);
	for (size_t i = 0, c = 0; c <= 256; c++) {
		while (i < m->n && (unsigned char)m->pats[i].s[0] < c)
			i++;
		m->start[c] = i;
	}
}

/* Emit from pending; with `final` unset keep a tail that may start a pattern. */
static void drain(struct sw_mask *m, struct sw_buf *out, int final)
{
	const char *p = m->pending.ptr;
	size_t len = m->pending.len, i = 0, plain = 0;

	while (i < len) {
		unsigned char c = (unsigned char)p[i];
		size_t left = len - i, hit = 0;
		int partial = 0;
		for (size_t k = m->start[c]; k < m->start[c + 1]; k++) {
			const struct sw_mask_pattern *pt = &m->pats[k];
			if (left >= pt->len) {
				if (!memcmp(p + i, pt->s, pt->len)) {
					hit = pt->len;
					break;
				}
			} else if (!final && !memcmp(p + i, pt->s, left)) {
				/* the rest may complete this (longer) pattern: wait,
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
		memset(m->pats[i].s, 0, m->pats[i].len);
		free(m->pats[i].s);
	}
	free(m->pats);
	wipe(&m->pending);
	sw_buf_release(&m->pending);
	memset(m, 0, sizeof(*m));
}
