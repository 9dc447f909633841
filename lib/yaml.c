/*
 * yaml.c - libyaml events into a located node tree, YAML 1.1 scalar
 * resolution, and conversion to JSON with bounded alias expansion (see yaml.h).
 */
#include "lib/yaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "lib/base64.h"
#include "lib/buf.h"
#include "lib/utf8.h"

#define MAX_DEPTH 512

static size_t sat_add(size_t a, size_t b)
{
	return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static struct sw_yaml_node *node_new(struct sw_yaml_stream *s, enum sw_yaml_type t,
				     const yaml_mark_t *m, const yaml_char_t *tag)
{
	struct sw_yaml_node *n = sw_calloc(1, sizeof(*n));
	n->type = t;
	n->mark.line = (int)m->line + 1;
	n->mark.col = (int)m->column + 1;
	n->expanded = 1;
	if (tag)
		n->tag = sw_strdup((const char *)tag);
	if (s->nall == s->capall) {
		s->capall = s->capall ? s->capall * 2 : 64;
		s->all = sw_realloc(s->all, s->capall * sizeof(*s->all));
	}
	s->all[s->nall++] = n;
	return n;
}

static void node_push(struct sw_yaml_node *parent, struct sw_yaml_node *child)
{
	/* while a container is open, len counts raw items (keys and values) */
	if (parent->len == parent->cap) {
		parent->cap = parent->cap ? parent->cap * 2 : 8;
		parent->items = sw_realloc(parent->items, parent->cap * sizeof(*parent->items));
	}
	parent->items[parent->len++] = child;
	parent->n = parent->type == SW_YAML_MAP ? parent->len / 2 : parent->len;
	/* children are complete when attached, aliases included */
	parent->expanded = sat_add(parent->expanded, child->expanded);
}

/*
 * Anchors: a small open-addressing hash table, so a file with many anchors
 * parses in linear time. Names are owned by the table.
 */
struct anchor {
	char *name;
	struct sw_yaml_node *node;
};

struct parse_state {
	struct sw_yaml_stream *s;
	struct sw_yaml_node *stack[MAX_DEPTH];
	char *stack_anchor[MAX_DEPTH];
	int depth;
	struct anchor *anchors;    /* cap slots, power of two */
	size_t nanchors, capanchors;
};

static size_t str_hash(const char *s)
{
	size_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct anchor *anchor_slot(struct anchor *tab, size_t cap, const char *name)
{
	size_t i = str_hash(name) & (cap - 1);
	while (tab[i].name && strcmp(tab[i].name, name))
		i = (i + 1) & (cap - 1);
	return &tab[i];
}

static void anchor_set(struct parse_state *ps, const char *name, struct sw_yaml_node *n)
{
	struct anchor *a;

	if (2 * (ps->nanchors + 1) > ps->capanchors) {
		size_t cap = ps->capanchors ? ps->capanchors * 2 : 16;
		struct anchor *tab = sw_calloc(cap, sizeof(*tab));
		for (size_t i = 0; i < ps->capanchors; i++)
			if (ps->anchors[i].name)
				*anchor_slot(tab, cap, ps->anchors[i].name) = ps->anchors[i];
		free(ps->anchors);
		ps->anchors = tab;
		ps->capanchors = cap;
	}
	a = anchor_slot(ps->anchors, ps->capanchors, name);
	if (!a->name) {
		a->name = sw_strdup(name);
		ps->nanchors++;
	}
	a->node = n;   /* YAML allows redefining an anchor */
}

static struct sw_yaml_node *anchor_get(struct parse_state *ps, const char *name)
{
	if (!ps->nanchors)
		return NULL;
	return anchor_slot(ps->anchors, ps->capanchors, name)->node;
}

static void anchors_clear(struct parse_state *ps)
{
	for (size_t i = 0; i < ps->capanchors; i++)
		free(ps->anchors[i].name);
	free(ps->anchors);
	ps->anchors = NULL;
	ps->nanchors = ps->capanchors = 0;
}

/* Attach a finished node to its parent, or make it the document's root. */
static void attach(struct parse_state *ps, struct sw_yaml_node *n)
{
	if (ps->depth > 0)
		node_push(ps->stack[ps->depth - 1], n);
	else
		ps->s->docs[ps->s->ndocs - 1].root = n;
}

static int parser_error(const yaml_parser_t *p, const char *file, const char *data, size_t len)
{
	const char *problem = p->problem ? p->problem : "invalid YAML";
	size_t line = p->problem_mark.line + 1, col = p->problem_mark.column + 1;

	if (p->error == YAML_READER_ERROR) {
		/* libyaml's reader errors (bad UTF-8, control characters)
		 * carry a byte offset but no mark */
		sw_utf8_position(data, p->problem_offset < len ? p->problem_offset : len,
				 &line, &col);
		if (p->problem_value != -1)
			return sw_error_setc(SW_EINVALID, "%s:%zu:%zu: %s (byte 0x%02X)", file,
					     line, col, problem, (unsigned)p->problem_value & 0xFF);
		return sw_error_setc(SW_EINVALID, "%s:%zu:%zu: %s", file, line, col, problem);
	}
	if (p->error == YAML_MEMORY_ERROR)
		return sw_error_set("%s: out of memory while parsing YAML", file);
	if (p->context)
		return sw_error_setc(SW_EINVALID, "%s:%zu:%zu: %s (%s at line %zu column %zu)",
				     file, line, col, problem, p->context,
				     p->context_mark.line + 1, p->context_mark.column + 1);
	return sw_error_setc(SW_EINVALID, "%s:%zu:%zu: %s", file, line, col, problem);
}

int sw_yaml_parse(struct sw_yaml_stream **out, const char *file, const char *data, size_t len)
{
	yaml_parser_t p;
	yaml_event_t ev;
	struct parse_state ps;
	struct sw_yaml_stream *s = sw_calloc(1, sizeof(*s));
	int rc = 0, done = 0;

	memset(&ps, 0, sizeof(ps));
	ps.s = s;
	s->file = sw_strdup(file ? file : "<input>");
	*out = NULL;
	if (!yaml_parser_initialize(&p)) {
		rc = sw_error_set("%s: cannot initialise YAML parser", s->file);
		sw_yaml_free(s);
		return rc;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)data, len);

	while (!done) {
		if (!yaml_parser_parse(&p, &ev)) {
			rc = parser_error(&p, s->file, data, len);
			break;
		}
		struct sw_yaml_node *n = NULL;
		const yaml_mark_t *m = &ev.start_mark;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			s->docs = sw_realloc(s->docs, (s->ndocs + 1) * sizeof(*s->docs));
			s->docs[s->ndocs].root = NULL;
			s->docs[s->ndocs].start.line = (int)m->line + 1;
			s->docs[s->ndocs].start.col = (int)m->column + 1;
			s->ndocs++;
			anchors_clear(&ps);  /* anchors do not cross documents */
			break;
		case YAML_SCALAR_EVENT:
			n = node_new(s, SW_YAML_SCALAR, m, ev.data.scalar.tag);
			n->value = sw_strndup((const char *)ev.data.scalar.value, ev.data.scalar.length);
			n->len = ev.data.scalar.length;
			n->quoted = ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
			if (ev.data.scalar.anchor)
				anchor_set(&ps, (const char *)ev.data.scalar.anchor, n);
			attach(&ps, n);
			break;
		case YAML_ALIAS_EVENT:
			n = anchor_get(&ps, (const char *)ev.data.alias.anchor);
			if (!n) {
				rc = sw_error_setc(SW_EINVALID, "%s:%d:%d: unknown anchor '%s' (or an anchor that refers to itself)",
						   s->file, (int)m->line + 1, (int)m->column + 1,
						   ev.data.alias.anchor);
				done = 1;
				break;
			}
			attach(&ps, n);
			break;
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT:
			if (ps.depth == MAX_DEPTH) {
				rc = sw_error_setc(SW_EINVALID, "%s:%d:%d: nesting deeper than %d levels",
						   s->file, (int)m->line + 1, (int)m->column + 1, MAX_DEPTH);
				done = 1;
				break;
			}
			if (ev.type == YAML_SEQUENCE_START_EVENT)
				n = node_new(s, SW_YAML_SEQ, m, ev.data.sequence_start.tag);
			else
				n = node_new(s, SW_YAML_MAP, m, ev.data.mapping_start.tag);
			{
				const yaml_char_t *a = ev.type == YAML_SEQUENCE_START_EVENT ?
					ev.data.sequence_start.anchor : ev.data.mapping_start.anchor;
				ps.stack_anchor[ps.depth] = a ? sw_strdup((const char *)a) : NULL;
			}
			ps.stack[ps.depth++] = n;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			n = ps.stack[--ps.depth];
			n->len = 0; /* len is only meaningful for scalars */
			/* anchors register when complete, so a node cannot contain itself */
			if (ps.stack_anchor[ps.depth]) {
				anchor_set(&ps, ps.stack_anchor[ps.depth], n);
				free(ps.stack_anchor[ps.depth]);
				ps.stack_anchor[ps.depth] = NULL;
			}
			attach(&ps, n);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	for (int i = 0; i < ps.depth; i++)
		free(ps.stack_anchor[i]);
	anchors_clear(&ps);
	if (rc < 0) {
		sw_yaml_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

int sw_yaml_parse_file(struct sw_yaml_stream **out, const char *path)
{
	struct sw_buf b = SW_BUF_INIT;
	int rc = sw_buf_read_file(&b, path);
	if (rc == 0)
		rc = sw_yaml_parse(out, path, b.ptr, b.len);
	sw_buf_release(&b);
	return rc;
}

void sw_yaml_free(struct sw_yaml_stream *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nall; i++) {
		free(s->all[i]->tag);
		free(s->all[i]->value);
		free(s->all[i]->items);
		free(s->all[i]);
	}
	free(s->all);
	free(s->docs);
	free(s->file);
	free(s);
}

const struct sw_yaml_node *sw_yaml_get(const struct sw_yaml_node *map, const char *key)
{
	if (!map || map->type != SW_YAML_MAP)
		return NULL;
	for (size_t i = 0; i < map->n; i++) {
		const struct sw_yaml_node *k = map->items[2 * i];
		if (k->type == SW_YAML_SCALAR && !strcmp(k->value, key))
			return map->items[2 * i + 1];
	}
	return NULL;
}

const char *sw_yaml_type_name(enum sw_yaml_type t)
{
	switch (t) {
	case SW_YAML_SCALAR: return "scalar";
	case SW_YAML_SEQ: return "sequence";
	case SW_YAML_MAP: return "mapping";
	}
	return "?";
}

/* --- scalar resolution (go-yaml v2's resolve table) -------------------- */

static int in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(s, *list))
			return 1;
	return 0;
}

static const char *const nulls[] = { "", "~", "null", "Null", "NULL", NULL };
static const char *const trues[] = { "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE",
				      "on", "On", "ON", NULL };
static const char *const falses[] = { "n", "N", "no", "No", "NO", "false", "False", "FALSE",
				       "off", "Off", "OFF", NULL };
static const char *const pinfs[] = { ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL };
static const char *const ninfs[] = { "-.inf", "-.Inf", "-.INF", NULL };
static const char *const nans[] = { ".nan", ".NaN", ".NAN", NULL };

enum { INT_OK, INT_UINT64, INT_TOO_BIG, INT_SYNTAX };

/*
 * Go's strconv.ParseInt(s, 0, 64), then ParseUint(s, 0, 64), on a string
 * whose underscores are already gone: sign, 0x/0o/0b or a leading 0 (octal).
 * INT_OK sets *out; INT_UINT64 (2^63 .. 2^64-1) sets *u; INT_TOO_BIG means
 * the digits are valid but overflow 64 bits.
 */
static int parse_int(const char *p, long long *out, unsigned long long *u)
{
	int neg = 0, base = 10, big = 0;
	unsigned long long v = 0;

	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	if (!*p)
		return INT_SYNTAX;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		base = 16, p += 2;
	else if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B'))
		base = 2, p += 2;
	else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O'))
		base = 8, p += 2;
	else if (p[0] == '0' && p[1])
		base = 8, p += 1;
	if (!*p)
		return INT_SYNTAX;
	for (; *p; p++) {
		unsigned d;
		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (*p >= 'a' && *p <= 'f')
			d = (unsigned)(*p - 'a' + 10);
		else if (*p >= 'A' && *p <= 'F')
			d = (unsigned)(*p - 'A' + 10);
		else
			return INT_SYNTAX;
		if (d >= (unsigned)base)
			return INT_SYNTAX;
		if (v > (~0ULL - d) / (unsigned)base)
			big = 1;
		else
			v = v * (unsigned)base + d;
	}
	if (big)
		return INT_TOO_BIG;
	if (neg) {
		if (v > 9223372036854775808ULL)
			return INT_TOO_BIG;   /* ParseUint refuses a sign */
		*out = v == 9223372036854775808ULL ? (-9223372036854775807LL - 1) : -(long long)v;
		return INT_OK;
	}
	if (v > 9223372036854775807ULL) {
		*u = v;
		return INT_UINT64;
	}
	*out = (long long)v;
	return INT_OK;
}

/* go-yaml v2's float pattern: ^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$ */
static int is_float(const char *s)
{
	const char *p = s;
	int digits = 0;
	if (*p == '+' || *p == '-')
		p++;
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9')
			p++, digits++;
		if (!digits)
			return 0;
	} else {
		while (*p >= '0' && *p <= '9')
			p++, digits++;
		if (!digits)
			return 0;
		if (*p == '.') {
			p++;
			while (*p >= '0' && *p <= '9')
				p++;
		}
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return 0;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return *p == '\0';
}

/* Go's ParseFloat on a string is_float() accepted: out of range is an error there. */
static int parse_float(const char *s, double *out)
{
	errno = 0;
	*out = strtod(s, NULL);
	return isinf(*out) ? -1 : 0;
}

static int tag_is(const char *tag, const char *shortname)
{
	char longname[64];
	if (!tag)
		return 0;
	snprintf(longname, sizeof(longname), "tag:yaml.org,2002:%s", shortname + 2);
	return !strcmp(tag, shortname) || !strcmp(tag, longname);
}

/* go-yaml v2 resolves only these tags; any other keeps the scalar's text. */
static int tag_resolvable(const char *tag)
{
	return !tag || tag_is(tag, "!!bool") || tag_is(tag, "!!int") ||
	       tag_is(tag, "!!float") || tag_is(tag, "!!timestamp");
}

/* The text of a plain scalar, resolved as go-yaml v2's resolve() does. */
static void resolve_text(const char *v, size_t len, struct sw_yaml_scalar *out)
{
	out->kind = SW_YK_STR;
	if (in_list(v, nulls)) {
		out->kind = SW_YK_NULL;
	} else if (in_list(v, trues)) {
		out->kind = SW_YK_BOOL;
		out->b = 1;
	} else if (in_list(v, falses)) {
		out->kind = SW_YK_BOOL;
	} else if (in_list(v, pinfs)) {
		out->kind = SW_YK_FLOAT;
		out->f = INFINITY;
	} else if (in_list(v, ninfs)) {
		out->kind = SW_YK_FLOAT;
		out->f = -INFINITY;
	} else if (in_list(v, nans)) {
		out->kind = SW_YK_FLOAT;
		out->f = NAN;
	} else if (v[0] == '.') {
		/* ParseFloat on the text as written: no underscores here */
		if (is_float(v) && parse_float(v, &out->f) == 0)
			out->kind = SW_YK_FLOAT;
	} else if ((v[0] >= '0' && v[0] <= '9') || v[0] == '+' || v[0] == '-') {
		char *plain = sw_malloc(len + 1);
		size_t o = 0;
		unsigned long long u = 0;
		for (size_t i = 0; i < len; i++)
			if (v[i] != '_')
				plain[o++] = v[i];
		plain[o] = '\0';
		switch (parse_int(plain, &out->i, &u)) {
		case INT_OK:
			out->kind = SW_YK_INT;
			break;
		case INT_UINT64:
			/* a uint64 in Go; kubectl's JSON round trip makes it a float64 */
			out->kind = SW_YK_FLOAT;
			out->f = (double)u;
			break;
		default:
			if (is_float(plain) && parse_float(plain, &out->f) == 0)
				out->kind = SW_YK_FLOAT;
			break;
		}
		free(plain);
	}
}

void sw_yaml_resolve(const struct sw_yaml_node *n, struct sw_yaml_scalar *out)
{
	memset(out, 0, sizeof(*out));
	out->kind = SW_YK_STR;
	if (n->type != SW_YAML_SCALAR)
		return;
	if (!tag_resolvable(n->tag))
		return;   /* !!str, !!binary, local tags: the text as written */
	if (n->quoted && !n->tag)
		return;
	resolve_text(n->value ? n->value : "", n->len, out);
}

/* --- to JSON ------------------------------------------------------------ */

struct conv {
	const struct sw_yaml_stream *s;
	size_t produced, max;
	int depth;
};

static int conv_err(struct conv *c, const struct sw_yaml_node *n, const char *fmt, ...) SW_PRINTF(3, 4);

static int conv_err(struct conv *c, const struct sw_yaml_node *n, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return sw_error_setc(SW_EINVALID, "%s:%d:%d: %s", c->s->file, n->mark.line, n->mark.col, msg);
}

/* "tag:yaml.org,2002:int" -> "!!int", for messages. */
static const char *short_tag(const char *tag)
{
	static const char pfx[] = "tag:yaml.org,2002:";
	if (!strncmp(tag, pfx, sizeof(pfx) - 1)) {
		static _Thread_local char buf[64];
		snprintf(buf, sizeof(buf), "!!%s", tag + sizeof(pfx) - 1);
		return buf;
	}
	return tag;
}

static int convert(struct conv *c, const struct sw_yaml_node *n, json_t **out);

static void format_float(char *buf, size_t sz, double f)
{
	/* Go's strconv.FormatFloat(f, 'g', -1, 64) for the common cases */
	if (f == floor(f) && fabs(f) < 1e21) {
		snprintf(buf, sz, "%.0f", f);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, sz, "%.*g", prec, f);
		if (strtod(buf, NULL) == f)
			return;
	}
}

/* The JSON key for a scalar mapping key, as sigs.k8s.io/yaml writes it. */
static int key_text(struct conv *c, const struct sw_yaml_node *k, struct sw_buf *key)
{
	struct sw_yaml_scalar sc;
	char tmp[64];

	sw_buf_reset(key);
	if (k->type != SW_YAML_SCALAR)
		return conv_err(c, k, "a mapping key must be a scalar, not a %s",
				sw_yaml_type_name(k->type));
	sw_yaml_resolve(k, &sc);
	switch (sc.kind) {
	case SW_YK_NULL:
		return conv_err(c, k, "a null mapping key cannot be converted to JSON");
	case SW_YK_BOOL:
		sw_buf_adds(key, sc.b ? "true" : "false");
		break;
	case SW_YK_INT:
		sw_buf_addf(key, "%lld", sc.i);
		break;
	case SW_YK_FLOAT:
		if (isnan(sc.f) || isinf(sc.f))
			return conv_err(c, k, "mapping key %s cannot be represented in JSON", k->value);
		format_float(tmp, sizeof(tmp), sc.f);
		sw_buf_adds(key, tmp);
		break;
	case SW_YK_STR:
		sw_buf_add(key, k->value, k->len);
		break;
	}
	return 0;
}

static int is_merge_key(const struct sw_yaml_node *k)
{
	return k->type == SW_YAML_SCALAR && !strcmp(k->value, "<<") &&
	       ((!k->quoted && !k->tag) || tag_is(k->tag, "!!merge"));
}

/* Copy every key of mapping node `v` into `dst`, replacing what is there. */
static int merge_one(struct conv *c, json_t *dst, const struct sw_yaml_node *v)
{
	json_t *m, *val;
	const char *k;
	size_t klen;
	void *tmp;
	int rc;

	if (v->type != SW_YAML_MAP)
		return conv_err(c, v, "merge key '<<' needs a mapping or a list of mappings, not a %s",
				sw_yaml_type_name(v->type));
	if ((rc = convert(c, v, &m)) < 0)
		return rc;
	json_object_keylen_foreach_safe(m, tmp, k, klen, val)
		json_object_setn(dst, k, klen, val);
	json_decref(m);
	return 0;
}

/*
 * go-yaml v2 applies a mapping's pairs in order, a merge included, so later
 * pairs win; within `<<: [a, b]` the list is applied backwards, so a wins.
 * Duplicates are checked among explicitly written keys only.
 */
static int convert_map(struct conv *c, const struct sw_yaml_node *n, json_t **out)
{
	json_t *obj = json_object(), *seen = json_object();
	struct sw_buf key = SW_BUF_INIT;
	int rc = 0;

	for (size_t i = 0; i < n->n && rc == 0; i++) {
		const struct sw_yaml_node *k = n->items[2 * i], *v = n->items[2 * i + 1];
		json_t *jv;

		if (is_merge_key(k)) {
			if (v->type == SW_YAML_SEQ) {
				for (size_t j = v->n; j-- > 0 && rc == 0;)
					rc = merge_one(c, obj, v->items[j]);
			} else {
				rc = merge_one(c, obj, v);
			}
			continue;
		}
		if (++c->produced > c->max) {
			rc = conv_err(c, k, "document expands to more than %zu nodes (alias bomb?)", c->max);
			break;
		}
		if ((rc = key_text(c, k, &key)) < 0)
			break;
		if (json_object_getn(seen, key.ptr, key.len)) {
			rc = conv_err(c, k, "key \"%.*s\" is defined twice in this mapping",
				      (int)(key.len > 200 ? 200 : key.len), key.ptr);
			break;
		}
		if ((rc = convert(c, v, &jv)) < 0)
			break;
		json_object_setn_new(seen, key.ptr, key.len, json_true());
		if (json_object_setn_new(obj, key.ptr, key.len, jv) < 0)
			rc = conv_err(c, k, "mapping key is not valid UTF-8");
	}
	sw_buf_release(&key);
	json_decref(seen);
	if (rc < 0) {
		json_decref(obj);
		return rc;
	}
	*out = obj;
	return 0;
}

static int convert_scalar(struct conv *c, const struct sw_yaml_node *n, json_t **out)
{
	struct sw_yaml_scalar sc;

	sw_yaml_resolve(n, &sc);
	/* an explicit !!int/!!bool/!!float must fit, as go-yaml insists */
	if (n->tag && tag_resolvable(n->tag)) {
		if (tag_is(n->tag, "!!float") && sc.kind == SW_YK_INT) {
			sc.kind = SW_YK_FLOAT;
			sc.f = (double)sc.i;
		}
		if ((tag_is(n->tag, "!!int") && sc.kind != SW_YK_INT) ||
		    (tag_is(n->tag, "!!bool") && sc.kind != SW_YK_BOOL) ||
		    (tag_is(n->tag, "!!float") && sc.kind != SW_YK_FLOAT))
			/* no value in the message: it may be a Secret's */
			return conv_err(c, n, "the value is not a valid %s", short_tag(n->tag));
	}
	switch (sc.kind) {
	case SW_YK_NULL:
		*out = json_null();
		break;
	case SW_YK_BOOL:
		*out = json_boolean(sc.b);
		break;
	case SW_YK_INT:
		*out = json_integer(sc.i);
		break;
	case SW_YK_FLOAT:
		if (isnan(sc.f) || isinf(sc.f))
			return conv_err(c, n, "%s cannot be represented in JSON", n->value);
		/* Go's encoding/json prints 1e3 as 1000: the API server reads an integer */
		if (sc.f == floor(sc.f) && fabs(sc.f) < 9223372036854775807.0)
			*out = json_integer((json_int_t)sc.f);
		else
			*out = json_real(sc.f);
		break;
	case SW_YK_STR:
		if (tag_is(n->tag, "!!binary")) {
			struct sw_buf b = SW_BUF_INIT;
			/* as Go's base64.StdEncoding.DecodeString: padding
			 * required, CR and LF skipped */
			if (sw_base64_decode(&b, n->value, n->len, 0) < 0) {
				sw_buf_release(&b);
				return conv_err(c, n, "!!binary value contains invalid base64 data (%s)",
						sw_error_last());
			}
			*out = json_stringn(b.ptr, b.len);
			sw_buf_release(&b);
			if (!*out)
				return conv_err(c, n, "!!binary data is not UTF-8 text, which JSON cannot hold");
			break;
		}
		*out = json_stringn(n->value, n->len);
		if (!*out)
			return conv_err(c, n, "scalar is not valid UTF-8");
		break;
	}
	return 0;
}

static int convert(struct conv *c, const struct sw_yaml_node *n, json_t **out)
{
	int rc = 0;

	*out = NULL;
	if (++c->produced > c->max)
		return conv_err(c, n, "document expands to more than %zu nodes (alias bomb?)", c->max);
	if (++c->depth > MAX_DEPTH) {
		c->depth--;
		return conv_err(c, n, "nesting deeper than %d levels", MAX_DEPTH);
	}
	switch (n->type) {
	case SW_YAML_MAP:
		rc = convert_map(c, n, out);
		break;
	case SW_YAML_SEQ: {
		json_t *arr = json_array();
		for (size_t i = 0; i < n->n; i++) {
			json_t *v;
			if ((rc = convert(c, n->items[i], &v)) < 0)
				break;
			json_array_append_new(arr, v);
		}
		if (rc < 0)
			json_decref(arr);
		else
			*out = arr;
		break;
	}
	case SW_YAML_SCALAR:
		rc = convert_scalar(c, n, out);
		break;
	}
	c->depth--;
	return rc;
}

int sw_yaml_to_json(json_t **out, const struct sw_yaml_stream *s,
		    const struct sw_yaml_node *n, size_t max_nodes)
{
	struct conv c = { s, 0, max_nodes ? max_nodes : SW_YAML_MAX_NODES, 0 };
	*out = NULL;
	if (!n) {
		*out = json_null();
		return 0;
	}
	/* sizes are known from parsing: refuse an alias bomb before building it */
	if (n->expanded > c.max)
		return conv_err(&c, n, "document expands to more than %zu nodes through aliases (alias bomb?)",
				c.max);
	return convert(&c, n, out);
}
