/*
 * util.c - small helpers for the test API server: allocation that aborts,
 * a string-keyed hash map, time and id helpers, base64, label and field
 * selectors, and dotted-path access to jansson values.
 */
#include "tests/kubeapi/kubeapi.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

static void oom(void)
{
	fputs("kubeapi: out of memory\n", stderr);
	abort();
}

void *ka_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *ka_calloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);
	if (!p)
		oom();
	return p;
}

void *ka_realloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *ka_strdup(const char *s)
{
	char *p = strdup(s ? s : "");
	if (!p)
		oom();
	return p;
}

char *ka_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		oom();
	va_end(ap);
	return p;
}

/* ---- hash map (FNV-1a, chained, doubles at load 1) ---- */

static uint32_t fnv(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static struct ka_map_ent **map_slot(const struct ka_map *m, const char *key, uint32_t h)
{
	struct ka_map_ent **pp = &m->b[h & (m->nb - 1)];
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->hash == h && !strcmp((*pp)->key, key))
			break;
	return pp;
}

void *ka_map_get(const struct ka_map *m, const char *key)
{
	if (!m->nb)
		return NULL;
	struct ka_map_ent **pp = map_slot(m, key, fnv(key));
	return *pp ? (*pp)->val : NULL;
}

static void map_grow(struct ka_map *m)
{
	size_t nb = m->nb ? m->nb * 2 : 64;
	struct ka_map_ent **b = ka_calloc(nb, sizeof(*b));
	for (size_t i = 0; i < m->nb; i++) {
		struct ka_map_ent *e = m->b[i], *next;
		for (; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(m->b);
	m->b = b;
	m->nb = nb;
}

void *ka_map_put(struct ka_map *m, const char *key, void *val)
{
	if (m->n >= m->nb)
		map_grow(m);
	uint32_t h = fnv(key);
	struct ka_map_ent **pp = map_slot(m, key, h);
	if (*pp) {
		void *old = (*pp)->val;
		(*pp)->val = val;
		return old;
	}
	struct ka_map_ent *e = ka_malloc(sizeof(*e));
	e->key = ka_strdup(key);
	e->hash = h;
	e->val = val;
	e->next = NULL;
	*pp = e;
	m->n++;
	return NULL;
}

void *ka_map_del(struct ka_map *m, const char *key)
{
	if (!m->nb)
		return NULL;
	struct ka_map_ent **pp = map_slot(m, key, fnv(key));
	struct ka_map_ent *e = *pp;
	if (!e)
		return NULL;
	void *val = e->val;
	*pp = e->next;
	free(e->key);
	free(e);
	m->n--;
	return val;
}

/* ---- time and ids ---- */

void ka_time_now(char out[32])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

uint64_t ka_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void ka_uuid(char out[37])
{
	unsigned char b[16];
	if (RAND_bytes(b, sizeof(b)) != 1)
		abort();
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
	    b[12], b[13], b[14], b[15]);
}

void ka_rand_suffix(char *out, size_t n)
{
	static const char al[] = "bcdfghjklmnpqrstvwxz2456789";
	unsigned char b[64];
	if (n > sizeof(b))
		n = sizeof(b);
	if (RAND_bytes(b, (int)n) != 1)
		abort();
	for (size_t i = 0; i < n; i++)
		out[i] = al[b[i] % (sizeof(al) - 1)];
	out[n] = 0;
}

char *ka_base64(const void *data, size_t len)
{
	char *out = ka_malloc(4 * ((len + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

char *ka_unbase64(const char *s, size_t *len)
{
	size_t n = strlen(s);
	if (n % 4)
		return NULL;
	unsigned char *out = ka_malloc(n / 4 * 3 + 1);
	int r = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
	if (r < 0) {
		free(out);
		return NULL;
	}
	while (n > 0 && s[n - 1] == '=') {
		r--;
		n--;
	}
	out[r] = 0;
	if (len)
		*len = (size_t)r;
	return (char *)out;
}

/* ---- selectors ---- */

enum sel_op { SEL_EQ, SEL_NE, SEL_IN, SEL_NOTIN, SEL_EXISTS, SEL_NOTEXISTS };

struct sel_req {
	enum sel_op op;
	char *key;
	char **vals;
	int nvals;
};

struct ka_selector {
	struct sel_req *r;
	int n;
};

static void skip_ws(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

static char *read_word(const char **p)
{
	const char *s = *p;
	while (**p && !strchr(" \t,=!()", **p))
		(*p)++;
	if (*p == s)
		return NULL;
	char *w = ka_malloc((size_t)(*p - s) + 1);
	memcpy(w, s, (size_t)(*p - s));
	w[*p - s] = 0;
	return w;
}

void ka_selector_free(struct ka_selector *sel)
{
	if (!sel)
		return;
	for (int i = 0; i < sel->n; i++) {
		free(sel->r[i].key);
		for (int j = 0; j < sel->r[i].nvals; j++)
			free(sel->r[i].vals[j]);
		free(sel->r[i].vals);
	}
	free(sel->r);
	free(sel);
}

static void add_val(struct sel_req *r, char *v)
{
	r->vals = ka_realloc(r->vals, sizeof(char *) * (size_t)(r->nvals + 1));
	r->vals[r->nvals++] = v;
}

struct ka_selector *ka_selector_parse(const char *s, const char **err)
{
	struct ka_selector *sel = ka_calloc(1, sizeof(*sel));
	const char *p = s ? s : "";
	skip_ws(&p);
	while (*p) {
		struct sel_req r = {0};
		skip_ws(&p);
		if (*p == '!') {
			p++;
			skip_ws(&p);
			r.op = SEL_NOTEXISTS;
			if (!(r.key = read_word(&p)))
				goto bad;
		} else {
			if (!(r.key = read_word(&p)))
				goto bad;
			skip_ws(&p);
			if (p[0] == '=' && p[1] == '=') {
				r.op = SEL_EQ;
				p += 2;
			} else if (p[0] == '=') {
				r.op = SEL_EQ;
				p++;
			} else if (p[0] == '!' && p[1] == '=') {
				r.op = SEL_NE;
				p += 2;
			} else if (!strncmp(p, "in", 2) && (p[2] == ' ' || p[2] == '(')) {
				r.op = SEL_IN;
				p += 2;
			} else if (!strncmp(p, "notin", 5) && (p[5] == ' ' || p[5] == '(')) {
				r.op = SEL_NOTIN;
				p += 5;
			} else {
				r.op = SEL_EXISTS;
			}
			skip_ws(&p);
			if (r.op == SEL_EQ || r.op == SEL_NE) {
				char *v = read_word(&p);
				add_val(&r, v ? v : ka_strdup(""));
			} else if (r.op == SEL_IN || r.op == SEL_NOTIN) {
				if (*p != '(')
					goto bad;
				p++;
				for (;;) {
					skip_ws(&p);
					char *v = read_word(&p);
					if (v)
						add_val(&r, v);
					skip_ws(&p);
					if (*p == ',') {
						p++;
						continue;
					}
					if (*p == ')') {
						p++;
						break;
					}
					goto bad;
				}
			}
		}
		sel->r = ka_realloc(sel->r, sizeof(r) * (size_t)(sel->n + 1));
		sel->r[sel->n++] = r;
		skip_ws(&p);
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p)
			goto bad_noreq;
		continue;
bad:
		free(r.key);
		for (int j = 0; j < r.nvals; j++)
			free(r.vals[j]);
		free(r.vals);
bad_noreq:
		ka_selector_free(sel);
		*err = "unable to parse requirement";
		return NULL;
	}
	return sel;
}

static bool req_match(const struct sel_req *r, const char *v)
{
	switch (r->op) {
	case SEL_EXISTS:
		return v != NULL;
	case SEL_NOTEXISTS:
		return v == NULL;
	case SEL_EQ:
		return v && !strcmp(v, r->vals[0]);
	case SEL_NE:
		return !v || strcmp(v, r->vals[0]);
	case SEL_IN:
	case SEL_NOTIN:
		for (int i = 0; v && i < r->nvals; i++)
			if (!strcmp(v, r->vals[i]))
				return r->op == SEL_IN;
		return r->op == SEL_NOTIN;
	}
	return false;
}

bool ka_selector_match_labels(const struct ka_selector *sel, json_t *labels)
{
	if (!sel)
		return true;
	for (int i = 0; i < sel->n; i++) {
		json_t *v = json_object_get(labels, sel->r[i].key);
		if (!req_match(&sel->r[i], json_is_string(v) ? json_string_value(v) : NULL))
			return false;
	}
	return true;
}

bool ka_selector_match_fields(const struct ka_selector *sel, json_t *obj)
{
	if (!sel)
		return true;
	for (int i = 0; i < sel->n; i++) {
		json_t *v = ka_jpath(obj, sel->r[i].key);
		char num[64];
		const char *s = NULL;
		if (json_is_string(v))
			s = json_string_value(v);
		else if (json_is_integer(v)) {
			snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
			s = num;
		} else if (json_is_boolean(v))
			s = json_is_true(v) ? "true" : "false";
		/* A field that is absent compares as the empty string. */
		if (!req_match(&sel->r[i], s ? s : ""))
			return false;
	}
	return true;
}

/* ---- json paths ---- */

json_t *ka_jpath(json_t *v, const char *dotted)
{
	char part[256];
	const char *p = dotted;
	while (v && *p) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (n >= sizeof(part))
			return NULL;
		memcpy(part, p, n);
		part[n] = 0;
		v = json_object_get(v, part);
		p += n;
		if (*p == '.')
			p++;
	}
	return v;
}

const char *ka_jstr(json_t *v, const char *dotted)
{
	json_t *s = ka_jpath(v, dotted);
	return json_is_string(s) ? json_string_value(s) : NULL;
}

json_t *ka_jobj(json_t *parent, const char *key)
{
	json_t *o = json_object_get(parent, key);
	if (!json_is_object(o)) {
		o = json_object();
		json_object_set_new(parent, key, o);
	}
	return o;
}
