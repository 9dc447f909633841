/*
 * json.c - the validating one-pass scanner behind parse.c (see json.h).
 *
 * One loop over the input with an explicit stack of open containers (no
 * recursion on the sender's data). Each open object keeps its keys on a
 * shared key stack (a span and a hash of the unescaped text) plus a 256-bit
 * filter of those hashes, so a duplicate check is one bit test for almost
 * every key and a short scan of equal hashes otherwise. Both stacks start
 * on the C stack and move to the heap only for unusually deep or wide
 * documents.
 */
#include "webhooks/json-int.h"
#include "webhooks/webhooks.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/error.h"
#include "lib/utf8.h"

#define MAX_DEPTH 2048   /* jansson's JSON_PARSER_MAX_DEPTH */

struct key {
	uint32_t hash;
	int escaped;
	size_t off, len;
};

struct frame {
	int is_obj;
	int node;            /* the wanted node this object is, or -1 */
	size_t kbase;        /* its first key on the key stack */
	uint64_t filter[4];  /* bits of its keys' hashes */
};

struct scan {
	const char *s;
	size_t n, p;
	const struct sw_webhook_json_path *paths;
	struct sw_webhook_json_value *vals;
	int first_child[SW_WEBHOOK_JSON_MAX_PATHS], next_sibling[SW_WEBHOOK_JSON_MAX_PATHS];
	size_t key_len[SW_WEBHOOK_JSON_MAX_PATHS];

	struct frame *frames, frames_inline[32];
	size_t nframes, frames_cap;
	struct key *keys, keys_inline[256];
	size_t nkeys, keys_cap;
	struct sw_buf tmp_a, tmp_b;   /* unescaped keys, only for keys with escapes */
};

static int fail_at(struct scan *sc, size_t at, const char *what)
{
	size_t line = 1, col = 1;
	for (size_t i = 0; i < at && i < sc->n; i++) {
		if (sc->s[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	/* a NUL byte shows as nothing in a log: name it */
	return sw_error_setc(SW_EINVALID, "%s at line %zu column %zu%s", what, line, col,
			     at < sc->n && sc->s[at] == '\0' ? " (a NUL byte)" : "");
}

/* Grow a stack that starts in an inline array. */
static void *grow(void *v, const void *inline_v, size_t *cap, size_t size)
{
	size_t ncap = *cap * 2;
	void *nv;
	if (v == inline_v) {
		nv = sw_malloc(ncap * size);
		memcpy(nv, v, *cap * size);
	} else {
		nv = sw_realloc(v, ncap * size);
	}
	*cap = ncap;
	return nv;
}

int sw_webhook_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The 4 hex digits at s[0..4), or -1. */
static long hex4(const unsigned char *s)
{
	long v = 0;
	for (int i = 0; i < 4; i++) {
		int h = sw_webhook_hexval(s[i]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

/*
 * A string whose opening quote is just before sc->p: checks it, leaves sc->p
 * after the closing quote; *off and *len span the text between the quotes.
 */
static int scan_string(struct scan *sc, size_t *off, size_t *len, int *escaped)
{
	const unsigned char *s = (const unsigned char *)sc->s;
	size_t p = sc->p, n = sc->n;

	*off = p;
	*escaped = 0;
	for (;;) {
		while (p < n && s[p] >= 0x20 && s[p] < 0x80 && s[p] != '"' && s[p] != '\\')
			p++;
		if (p >= n)
			return fail_at(sc, n, "premature end of input in a string");
		unsigned c = s[p];
		if (c == '"')
			break;
		if (c == '\\') {
			*escaped = 1;
			if (p + 1 >= n)
				return fail_at(sc, n, "premature end of input in a string");
			c = s[p + 1];
			if (c != 'u') {
				if (!c || !strchr("\"\\/bfnrt", (int)c))
					return fail_at(sc, p, "invalid escape");
				p += 2;
				continue;
			}
			long u = p + 6 <= n ? hex4(s + p + 2) : -1;
			if (u < 0)
				return fail_at(sc, p, "invalid escape");
			if (u == 0)
				return fail_at(sc, p, "\\u0000 is not allowed");
			if (u >= 0xDC00 && u <= 0xDFFF)
				return fail_at(sc, p, "invalid Unicode escape (a lone low surrogate)");
			if (u >= 0xD800 && u <= 0xDBFF) {
				long lo = p + 12 <= n && s[p + 6] == '\\' && s[p + 7] == 'u'
						  ? hex4(s + p + 8) : -1;
				if (lo < 0xDC00 || lo > 0xDFFF)
					return fail_at(sc, p, "invalid Unicode escape (an unpaired high surrogate)");
				p += 6;
			}
			p += 6;
			continue;
		}
		if (c < 0x20) {
			char what[48];
			snprintf(what, sizeof(what), "control character 0x%x in a string", c);
			return fail_at(sc, p, what);
		}
		size_t k = sw_utf8_seq((const char *)s + p, n - p);
		if (!k)
			return fail_at(sc, p, "invalid UTF-8");
		p += k;
	}
	*len = p - *off;
	sc->p = p + 1;
	return 0;
}

static int is_digit(const struct scan *sc, size_t p)
{
	return p < sc->n && sc->s[p] >= '0' && sc->s[p] <= '9';
}

/* A number at sc->p; `out` (may be NULL) gets its type and integer value. */
static int scan_number(struct scan *sc, struct sw_webhook_json_value *out)
{
	const char *s = sc->s;
	size_t p = sc->p, start = p;
	int neg = 0, real = 0;

	if (s[p] == '-') {
		neg = 1;
		p++;
	}
	if (!is_digit(sc, p))
		return fail_at(sc, start, "invalid token");
	if (s[p] == '0') {
		if (is_digit(sc, ++p))
			return fail_at(sc, start, "invalid token (a leading zero)");
	} else {
		while (is_digit(sc, p))
			p++;
	}
	if (p < sc->n && s[p] == '.') {
		real = 1;
		if (!is_digit(sc, ++p))
			return fail_at(sc, start, "invalid token");
		while (is_digit(sc, p))
			p++;
	}
	if (p < sc->n && (s[p] == 'e' || s[p] == 'E')) {
		real = 1;
		p++;
		if (p < sc->n && (s[p] == '+' || s[p] == '-'))
			p++;
		if (!is_digit(sc, p))
			return fail_at(sc, start, "invalid token");
		while (is_digit(sc, p))
			p++;
	}
	if (!real) {
		uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
		for (size_t i = start + (size_t)neg; i < p; i++) {
			unsigned d = (unsigned)(s[i] - '0');
			if (v > (lim - d) / 10)
				return fail_at(sc, start, neg ? "too big negative integer"
							      : "too big integer");
			v = v * 10 + d;
		}
		if (out) {
			out->type = SW_WJ_INTEGER;
			out->integer = !neg ? (int64_t)v : v == lim ? INT64_MIN : -(int64_t)v;
		}
	} else {
		/* jansson refuses a real that overflows a double; so does this */
		char small[64], *buf = small;
		size_t tl = p - start;
		double d;
		int over;
		if (tl >= sizeof(small))
			buf = sw_malloc(tl + 1);
		memcpy(buf, s + start, tl);
		buf[tl] = '\0';
		errno = 0;
		d = strtod(buf, NULL);
		over = (d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE;
		if (buf != small)
			free(buf);
		if (over)
			return fail_at(sc, start, "real number overflow");
		if (out)
			out->type = SW_WJ_REAL;
	}
	sc->p = p;
	return 0;
}

/* Append the unescaped text of raw[0..len), a string scan_string() accepted. */
static void unescape(struct sw_buf *out, const char *raw, size_t len)
{
	size_t i = 0;
	while (i < len) {
		const char *bs = memchr(raw + i, '\\', len - i);
		size_t run = bs ? (size_t)(bs - (raw + i)) : len - i;
		sw_buf_add(out, raw + i, run);
		i += run;
		if (i >= len)
			break;
		char c = raw[i + 1];
		if (c == 'u') {
			uint32_t u = (uint32_t)hex4((const unsigned char *)raw + i + 2);
			i += 6;
			if (u >= 0xD800 && u <= 0xDBFF) {
				uint32_t lo = (uint32_t)hex4((const unsigned char *)raw + i + 2);
				u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
				i += 6;
			}
			char o[4];
			sw_buf_add(out, o, sw_utf8_encode(o, u));
			continue;
		}
		switch (c) {
		case 'b': c = '\b'; break;
		case 'f': c = '\f'; break;
		case 'n': c = '\n'; break;
		case 'r': c = '\r'; break;
		case 't': c = '\t'; break;
		default: break;   /* " \ / stand for themselves */
		}
		sw_buf_addch(out, c);
		i += 2;
	}
}

static uint32_t hash_bytes(const char *s, size_t n)
{
	uint32_t h = 2166136261u;   /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

/* The key's text as compared: raw when it has no escapes, else unescaped into b. */
static const char *key_text(struct scan *sc, struct sw_buf *b, size_t off, size_t len, int escaped,
			    size_t *tlen)
{
	if (!escaped) {
		*tlen = len;
		return sc->s + off;
	}
	sw_buf_reset(b);
	unescape(b, sc->s + off, len);
	*tlen = b->len;
	return b->ptr;
}

/*
 * Record the key spanning off/len in the innermost (object) frame; fails on
 * a duplicate. *node gets the wanted child node it names, or -1.
 */
static int add_key(struct scan *sc, size_t off, size_t len, int escaped, int *node)
{
	struct frame *f = &sc->frames[sc->nframes - 1];
	size_t tlen;
	const char *t = key_text(sc, &sc->tmp_a, off, len, escaped, &tlen);
	uint32_t h = hash_bytes(t, tlen);
	uint64_t bit = (uint64_t)1 << (h & 63);
	unsigned word = (h >> 6) & 3;

	if (f->filter[word] & bit) {
		for (size_t i = f->kbase; i < sc->nkeys; i++) {
			const struct key *k = &sc->keys[i];
			size_t olen;
			const char *o;
			if (k->hash != h)
				continue;
			o = key_text(sc, &sc->tmp_b, k->off, k->len, k->escaped, &olen);
			if (olen == tlen && !memcmp(o, t, tlen))
				return fail_at(sc, off - 1, "duplicate object key");
		}
	}
	f->filter[word] |= bit;
	if (sc->nkeys == sc->keys_cap)
		sc->keys = grow(sc->keys, sc->keys_inline, &sc->keys_cap, sizeof(*sc->keys));
	sc->keys[sc->nkeys++] = (struct key){ .hash = h, .escaped = escaped, .off = off, .len = len };

	*node = -1;
	if (f->node >= 0) {
		/* t is still this key's text: the duplicate scan used tmp_b */
		for (int c = sc->first_child[f->node]; c >= 0; c = sc->next_sibling[c]) {
			if (sc->key_len[c] == tlen && !memcmp(sc->paths[c].key, t, tlen)) {
				*node = c;
				break;
			}
		}
	}
	return 0;
}

static void skip_ws(struct scan *sc)
{
	while (sc->p < sc->n) {
		char c = sc->s[sc->p];
		if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
			break;
		sc->p++;
	}
}

static int literal(struct scan *sc, const char *word, enum sw_webhook_json_type type,
		   struct sw_webhook_json_value *v)
{
	size_t k = strlen(word);
	if (sc->n - sc->p < k || memcmp(sc->s + sc->p, word, k))
		return fail_at(sc, sc->p, "invalid token");
	sc->p += k;
	if (v)
		v->type = type;
	return 0;
}

static int scan(struct scan *sc, size_t npaths)
{
	const char *s = sc->s;
	int node = npaths ? 0 : -1;   /* the wanted node the next value is, or -1 */
	struct frame *f;
	int rc;

	skip_ws(sc);
	if (sc->p >= sc->n || (s[sc->p] != '{' && s[sc->p] != '['))
		return fail_at(sc, sc->p, "'[' or '{' expected");

value:
	skip_ws(sc);
	if (sc->p >= sc->n)
		return fail_at(sc, sc->p, "premature end of input");
	{
		struct sw_webhook_json_value *v = node >= 0 ? &sc->vals[node] : NULL;
		char c = s[sc->p];
		switch (c) {
		case '{':
		case '[':
			if (sc->nframes == MAX_DEPTH)
				return fail_at(sc, sc->p, "maximum parsing depth reached");
			if (sc->nframes == sc->frames_cap)
				sc->frames = grow(sc->frames, sc->frames_inline, &sc->frames_cap,
						  sizeof(*sc->frames));
			f = &sc->frames[sc->nframes++];
			*f = (struct frame){ .is_obj = c == '{', .kbase = sc->nkeys, .node = -1 };
			if (c == '{' && node >= 0 && sc->first_child[node] >= 0)
				f->node = node;
			if (v)
				v->type = c == '{' ? SW_WJ_OBJECT : SW_WJ_ARRAY;
			sc->p++;
			skip_ws(sc);
			if (sc->p < sc->n && s[sc->p] == (c == '{' ? '}' : ']')) {
				sc->p++;
				sc->nframes--;
				goto after;
			}
			if (c == '{')
				goto key;
			node = -1;
			goto value;
		case '"': {
			size_t off, len;
			int esc;
			sc->p++;
			if ((rc = scan_string(sc, &off, &len, &esc)) < 0)
				return rc;
			if (v)
				*v = (struct sw_webhook_json_value){ .type = SW_WJ_STRING, .off = off,
								     .len = len, .escaped = esc };
			goto after;
		}
		case 't':
			rc = literal(sc, "true", SW_WJ_TRUE, v);
			break;
		case 'f':
			rc = literal(sc, "false", SW_WJ_FALSE, v);
			break;
		case 'n':
			rc = literal(sc, "null", SW_WJ_NULL, v);
			break;
		default:
			if (c != '-' && (c < '0' || c > '9'))
				return fail_at(sc, sc->p, "invalid token");
			rc = scan_number(sc, v);
		}
		if (rc < 0)
			return rc;
		goto after;
	}

key:
	/* sc->p is at the first non-blank after '{' or ',' */
	if (sc->p >= sc->n || s[sc->p] != '"')
		return fail_at(sc, sc->p, "string or '}' expected");
	{
		size_t off, len;
		int esc;
		sc->p++;
		if ((rc = scan_string(sc, &off, &len, &esc)) < 0 ||
		    (rc = add_key(sc, off, len, esc, &node)) < 0)
			return rc;
	}
	skip_ws(sc);
	if (sc->p >= sc->n || s[sc->p] != ':')
		return fail_at(sc, sc->p, "':' expected");
	sc->p++;
	goto value;

after:
	skip_ws(sc);
	if (!sc->nframes) {
		if (sc->p != sc->n)
			return fail_at(sc, sc->p, "end of file expected");
		return 0;
	}
	f = &sc->frames[sc->nframes - 1];
	if (sc->p >= sc->n)
		return fail_at(sc, sc->p, "premature end of input");
	if (s[sc->p] == ',') {
		sc->p++;
		skip_ws(sc);
		if (f->is_obj)
			goto key;
		node = -1;
		goto value;
	}
	if (s[sc->p] == (f->is_obj ? '}' : ']')) {
		sc->p++;
		sc->nkeys = f->kbase;
		sc->nframes--;
		goto after;
	}
	return fail_at(sc, sc->p, f->is_obj ? "',' or '}' expected" : "',' or ']' expected");
}

int sw_webhook_json_scan(const char *json, size_t len, const struct sw_webhook_json_path *paths,
			 size_t npaths, struct sw_webhook_json_value *vals)
{
	struct scan sc;
	int rc;

	assert(npaths <= SW_WEBHOOK_JSON_MAX_PATHS);
	sc.s = json ? json : "";
	sc.n = json ? len : 0;
	sc.p = 0;
	sc.paths = paths;
	sc.vals = vals;
	sc.frames = sc.frames_inline;
	sc.frames_cap = sizeof(sc.frames_inline) / sizeof(sc.frames_inline[0]);
	sc.nframes = 0;
	sc.keys = sc.keys_inline;
	sc.keys_cap = sizeof(sc.keys_inline) / sizeof(sc.keys_inline[0]);
	sc.nkeys = 0;
	sw_buf_init(&sc.tmp_a);
	sw_buf_init(&sc.tmp_b);
	for (size_t i = 0; i < npaths; i++) {
		vals[i] = (struct sw_webhook_json_value){ .type = SW_WJ_ABSENT };
		sc.first_child[i] = sc.next_sibling[i] = -1;
		sc.key_len[i] = paths[i].key ? strlen(paths[i].key) : 0;
	}
	/* children in table order (prepend while walking backwards) */
	for (size_t i = npaths; i-- > 1;) {
		int parent = paths[i].parent;
		assert(parent >= 0 && (size_t)parent < i);
		sc.next_sibling[i] = sc.first_child[parent];
		sc.first_child[parent] = (int)i;
	}

	rc = scan(&sc, npaths);

	if (sc.frames != sc.frames_inline)
		free(sc.frames);
	if (sc.keys != sc.keys_inline)
		free(sc.keys);
	sw_buf_release(&sc.tmp_a);
	sw_buf_release(&sc.tmp_b);
	return rc;
}

char *sw_webhook_json_string(const char *json, const struct sw_webhook_json_value *v)
{
	struct sw_buf b = SW_BUF_INIT;
	if (!v->escaped)
		return sw_strndup(json + v->off, v->len);
	unescape(&b, json + v->off, v->len);
	return sw_buf_detach(&b, NULL);
}

const char *sw_webhook_json_type_name(enum sw_webhook_json_type t)
{
	switch (t) {
	case SW_WJ_OBJECT: return "object";
	case SW_WJ_ARRAY: return "array";
	case SW_WJ_STRING: return "string";
	case SW_WJ_INTEGER:
	case SW_WJ_REAL: return "number";
	case SW_WJ_TRUE:
	case SW_WJ_FALSE: return "boolean";
	case SW_WJ_NULL: return "null";
	case SW_WJ_ABSENT: break;
	}
	return "absent";
}

int sw_webhook_json_check(const char *json, size_t len)
{
	return sw_webhook_json_scan(json, len, NULL, 0, NULL);
}
