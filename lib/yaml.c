/*
 * yaml.c - libyaml events into a located node tree, YAML 1.1 scalar
 * resolution, and conversion to JSON with bounded alias expansion (see yaml.h).
 */
#include "lib/yaml.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "lib/buf.h"

#define MAX_DEPTH 512

static struct sw_yaml_node *node_new(struct sw_yaml_stream *s, enum sw_yaml_type t,
				     const yaml_mark_t *m, const yaml_char_t *tag)
{
	struct sw_yaml_node *n = sw_calloc(1, sizeof(*n));
	n->type = t;
	n->mark.line = (int)m->line + 1;
	n->mark.col = (int)m->column + 1;
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
	parent->items = sw_realloc(parent->items, (parent->len + 1) * sizeof(*parent->items));
	parent->items[parent->len++] = child;
	parent->n = parent->type == SW_YAML_MAP ? parent->len / 2 : parent->len;
}

struct anchor {
	char *name;
	struct sw_yaml_node *node;
};

struct parse_state {
	struct sw_yaml_stream *s;
	struct sw_yaml_node *stack[MAX_DEPTH];
	char *stack_anchor[MAX_DEPTH];
	int depth;
	struct anchor *anchors;
	size_t nanchors;
};

static void anchor_set(struct parse_state *ps, const char *name, struct sw_yaml_node *n)
{
	for (size_t i = 0; i < ps->nanchors; i++) {
		if (!strcmp(ps->anchors[i].name, name)) {
			ps->anchors[i].node = n;   /* YAML allows redefining an anchor */
			return;
		}
	}
	ps->anchors = sw_realloc(ps->anchors, (ps->nanchors + 1) * sizeof(*ps->anchors));
	ps->anchors[ps->nanchors].name = sw_strdup(name);
	ps->anchors[ps->nanchors].node = n;
	ps->nanchors++;
}

static struct sw_yaml_node *anchor_get(struct parse_state *ps, const char *name)
{
	for (size_t i = 0; i < ps->nanchors; i++)
		if (!strcmp(ps->anchors[i].name, name))
			return ps->anchors[i].node;
	return NULL;
}

static void anchors_clear(struct parse_state *ps)
{
	for (size_t i = 0; i < ps->nanchors; i++)
		free(ps->anchors[i].name);
	free(ps->anchors);
	ps->anchors = NULL;
	ps->nanchors = 0;
}

/* Attach a finished node to its parent, or make it the document's root. */
static void attach(struct parse_state *ps, struct sw_yaml_node *n)
{
	if (ps->depth > 0)
		node_push(ps->stack[ps->depth - 1], n);
	else
		ps->s->docs[ps->s->ndocs - 1].root = n;
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
		sw_yaml_free(s);
		return sw_error_set("%s: cannot initialise YAML parser", file);
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)data, len);

	while (!done) {
		if (!yaml_parser_parse(&p, &ev)) {
			const yaml_mark_t *m = &p.problem_mark;
			if (p.context)
				rc = sw_error_setc(SW_EINVALID, "%s:%zu:%zu: %s %s", s->file,
						   m->line + 1, m->column + 1, p.problem, p.context);
			else
				rc = sw_error_setc(SW_EINVALID, "%s:%zu:%zu: %s", s->file,
						   m->line + 1, m->column + 1,
						   p.problem ? p.problem : "invalid YAML");
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

/* Go's strconv.ParseInt(s, 0, 64) after removing underscores. */
static int parse_int(const char *in, long long *out, int *overflow)
{
	char tmp[128];
	size_t o = 0;
	const char *p = in;
	int neg = 0, base = 10;
	unsigned long long v = 0;

	*overflow = 0;
	for (; *p && o < sizeof(tmp) - 1; p++)
		if (*p != '_')
			tmp[o++] = *p;
	if (*p)
		return -1;
	tmp[o] = '\0';
	p = tmp;
	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	if (!*p)
		return -1;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		base = 16, p += 2;
	else if (p[0] == '0' && (p[1] == 'b' || p[1] == 'B'))
		base = 2, p += 2;
	else if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O'))
		base = 8, p += 2;
	else if (p[0] == '0' && p[1])
		base = 8, p += 1;
	if (!*p)
		return -1;
	for (; *p; p++) {
		int d;
		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (*p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else if (*p >= 'A' && *p <= 'F')
			d = *p - 'A' + 10;
		else
			return -1;
		if (d >= base)
			return -1;
		if (v > (~0ULL - (unsigned)d) / (unsigned)base)
			*overflow = 1;
		else
			v = v * (unsigned)base + (unsigned)d;
	}
	if (*overflow)
		return 0;
	if (neg) {
		if (v > 9223372036854775808ULL) {
			*overflow = 1;
			return 0;
		}
		*out = v == 9223372036854775808ULL ? (-9223372036854775807LL - 1) : -(long long)v;
	} else {
		if (v > 9223372036854775807ULL) {
			*overflow = 1;  /* a uint64: JSON keeps it as a number */
			return 0;
		}
		*out = (long long)v;
	}
	return 0;
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

static int tag_is(const char *tag, const char *shortname)
{
	char longname[64];
	if (!tag)
		return 0;
	snprintf(longname, sizeof(longname), "tag:yaml.org,2002:%s", shortname + 2);
	return !strcmp(tag, shortname) || !strcmp(tag, longname);
}

void sw_yaml_resolve(const struct sw_yaml_node *n, struct sw_yaml_scalar *out)
{
	const char *v = n->value ? n->value : "";
	int overflow;

	memset(out, 0, sizeof(*out));
	out->kind = SW_YK_STR;
	if (n->type != SW_YAML_SCALAR)
		return;
	if (tag_is(n->tag, "!!str") || tag_is(n->tag, "!!binary"))
		return;
	if (n->quoted && !n->tag)
		return;
	if (n->tag && n->tag[0] == '!' && n->tag[1] != '!')
		return;   /* a local tag: kept as its text */
	if (in_list(v, nulls)) {
		out->kind = SW_YK_NULL;
		return;
	}
	if (in_list(v, trues)) {
		out->kind = SW_YK_BOOL;
		out->b = 1;
		return;
	}
	if (in_list(v, falses)) {
		out->kind = SW_YK_BOOL;
		return;
	}
	if ((v[0] >= '0' && v[0] <= '9') || v[0] == '+' || v[0] == '-' || v[0] == '.') {
		if (parse_int(v, &out->i, &overflow) == 0) {
			if (!overflow) {
				out->kind = SW_YK_INT;
				return;
			}
			out->kind = SW_YK_FLOAT;
			out->f = strtod(v, NULL);
			return;
		}
		if (is_float(v)) {
			char tmp[128];
			size_t o = 0;
			for (const char *p = v; *p && o < sizeof(tmp) - 1; p++)
				if (*p != '_')
					tmp[o++] = *p;
			tmp[o] = '\0';
			out->kind = SW_YK_FLOAT;
			out->f = strtod(tmp, NULL);
			return;
		}
		if (in_list(v, (const char *const[]){ ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL })) {
			out->kind = SW_YK_FLOAT;
			out->f = INFINITY;
			return;
		}
		if (in_list(v, (const char *const[]){ "-.inf", "-.Inf", "-.INF", NULL })) {
			out->kind = SW_YK_FLOAT;
			out->f = -INFINITY;
			return;
		}
		if (in_list(v, (const char *const[]){ ".nan", ".NaN", ".NAN", NULL })) {
			out->kind = SW_YK_FLOAT;
			out->f = NAN;
			return;
		}
	}
}

/* --- to JSON ------------------------------------------------------------ */

struct conv {
	const struct sw_yaml_stream *s;
	size_t produced, max;
	int depth;
};

static int conv_err(struct conv *c, const struct sw_yaml_node *n, const char *fmt, const char *arg)
{
	char msg[512];
	snprintf(msg, sizeof(msg), fmt, arg);
	return sw_error_setc(SW_EINVALID, "%s:%d:%d: %s", c->s->file, n->mark.line, n->mark.col, msg);
}

static int convert(struct conv *c, const struct sw_yaml_node *n, json_t **out);

static void key_text(const struct sw_yaml_node *k, char *buf, size_t sz)
{
	struct sw_yaml_scalar sc;
	sw_yaml_resolve(k, &sc);
	switch (sc.kind) {
	case SW_YK_BOOL: snprintf(buf, sz, "%s", sc.b ? "true" : "false"); break;
	case SW_YK_INT: snprintf(buf, sz, "%lld", sc.i); break;
	case SW_YK_NULL: snprintf(buf, sz, "null"); break;
	default: snprintf(buf, sz, "%s", k->value); break;
	}
}

/* Merge `src` (a mapping node, already converted) keys that `dst` lacks. */
static int merge_into(struct conv *c, json_t *dst, const struct sw_yaml_node *v)
{
	json_t *m;
	const char *k;
	json_t *val;
	int rc;

	if (v->type != SW_YAML_MAP)
		return conv_err(c, v, "%s", "merge key '<<' needs a mapping or a list of mappings");
	if ((rc = convert(c, v, &m)) < 0)
		return rc;
	json_object_foreach(m, k, val) {
		if (!json_object_get(dst, k))
			json_object_set(dst, k, val);
	}
	json_decref(m);
	return 0;
}

static int convert_map(struct conv *c, const struct sw_yaml_node *n, json_t **out)
{
	json_t *obj = json_object();
	int rc = 0;

	for (size_t i = 0; i < n->n && rc == 0; i++) {
		const struct sw_yaml_node *k = n->items[2 * i], *v = n->items[2 * i + 1];
		char key[1024];
		json_t *jv;

		if (k->type != SW_YAML_SCALAR) {
			rc = conv_err(c, k, "%s", "a mapping key must be a scalar");
			break;
		}
		if (!k->quoted && !strcmp(k->value, "<<"))
			continue;  /* merges go after explicit keys */
		key_text(k, key, sizeof(key));
		if (json_object_get(obj, key)) {
			rc = conv_err(c, k, "key \"%s\" is defined twice in this mapping", key);
			break;
		}
		if ((rc = convert(c, v, &jv)) < 0)
			break;
		json_object_set_new(obj, key, jv);
	}
	for (size_t i = 0; i < n->n && rc == 0; i++) {
		const struct sw_yaml_node *k = n->items[2 * i], *v = n->items[2 * i + 1];
		if (k->type != SW_YAML_SCALAR || k->quoted || strcmp(k->value, "<<"))
			continue;
		if (v->type == SW_YAML_SEQ) {
			for (size_t j = 0; j < v->n && rc == 0; j++)
				rc = merge_into(c, obj, v->items[j]);
		} else {
			rc = merge_into(c, obj, v);
		}
	}
	if (rc < 0) {
		json_decref(obj);
		return rc;
	}
	*out = obj;
	return 0;
}

static int convert(struct conv *c, const struct sw_yaml_node *n, json_t **out)
{
	struct sw_yaml_scalar sc;
	int rc = 0;

	*out = NULL;
	if (++c->produced > c->max)
		return conv_err(c, n, "document expands to more than %s nodes (alias bomb?)",
				c->max == SW_YAML_MAX_NODES ? "1000000" : "the allowed number of");
	if (++c->depth > MAX_DEPTH) {
		c->depth--;
		return conv_err(c, n, "%s", "nesting too deep");
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
		sw_yaml_resolve(n, &sc);
		switch (sc.kind) {
		case SW_YK_NULL: *out = json_null(); break;
		case SW_YK_BOOL: *out = json_boolean(sc.b); break;
		case SW_YK_INT: *out = json_integer(sc.i); break;
		case SW_YK_FLOAT:
			if (isnan(sc.f) || isinf(sc.f))
				rc = conv_err(c, n, "%s cannot be represented in JSON", n->value);
			else
				*out = json_real(sc.f);
			break;
		case SW_YK_STR: *out = json_stringn(n->value, n->len); break;
		}
		if (rc == 0 && !*out)
			rc = conv_err(c, n, "%s", "scalar is not valid UTF-8");
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
	return convert(&c, n, out);
}
