/*
 * yamlschema.c - checking a located YAML tree against what a reader expects
 * (see yamlschema.h).
 */
#include "lib/yamlschema.h"

#include <stdlib.h>
#include <string.h>

#include "lib/strv.h"

int sw_yaml_verror(struct sw_yaml_reader *r, const struct sw_yaml_node *n, const char *path,
		   const char *fmt, va_list ap)
{
	int max = r->max_errors > 0 ? r->max_errors : SW_YAML_MAX_ERRORS;

	if (++r->nerrors > max)
		return -1;
	if (r->errors.len)
		sw_buf_addch(&r->errors, '\n');
	sw_buf_addf(&r->errors, "%s:%d:%d: ", r->file, n ? n->mark.line : 1, n ? n->mark.col : 1);
	if (path && *path)
		sw_buf_addf(&r->errors, "%s: ", path);
	sw_buf_vaddf(&r->errors, fmt, ap);
	return -1;
}

int sw_yaml_error(struct sw_yaml_reader *r, const struct sw_yaml_node *n, const char *path,
		  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sw_yaml_verror(r, n, path, fmt, ap);
	va_end(ap);
	return -1;
}

int sw_yaml_reader_done(struct sw_yaml_reader *r)
{
	int max = r->max_errors > 0 ? r->max_errors : SW_YAML_MAX_ERRORS;
	int rc = 0;

	if (r->nerrors) {
		if (r->nerrors > max)
			sw_buf_addf(&r->errors, "\n(%d more errors not shown)", r->nerrors - max);
		rc = sw_error_setc(SW_EINVALID, "%s", r->errors.ptr);
	}
	sw_buf_release(&r->errors);
	r->nerrors = 0;
	return rc;
}

const char *sw_yaml_describe(const struct sw_yaml_node *n)
{
	struct sw_yaml_scalar sc;

	if (!n)
		return "null";
	if (n->type != SW_YAML_SCALAR)
		return sw_yaml_type_name(n->type);
	sw_yaml_resolve(n, &sc);
	switch (sc.kind) {
	case SW_YK_NULL: return "null";
	case SW_YK_BOOL: return "a boolean";
	case SW_YK_INT: return "an integer";
	case SW_YK_FLOAT: return "a number";
	default: return "a string";
	}
}

int sw_yaml_is_null(const struct sw_yaml_node *n)
{
	struct sw_yaml_scalar sc;

	if (!n)
		return 1;
	if (n->type != SW_YAML_SCALAR)
		return 0;
	sw_yaml_resolve(n, &sc);
	return sc.kind == SW_YK_NULL;
}

char *sw_yaml_path(const char *path, const char *key)
{
	return path && *path ? sw_asprintf("%s.%s", path, key) : sw_strdup(key);
}

int sw_yaml_want_map(struct sw_yaml_reader *r, const struct sw_yaml_node *n, const char *path,
		     const char *const *allowed)
{
	if (!n || n->type != SW_YAML_MAP)
		return sw_yaml_error(r, n, path, "expected a mapping, found %s", sw_yaml_describe(n));
	for (size_t i = 0; i < n->n; i++) {
		const struct sw_yaml_node *k = n->items[2 * i];
		int known = !allowed;

		if (k->type != SW_YAML_SCALAR) {
			sw_yaml_error(r, k, path, "keys must be strings");
			continue;
		}
		for (const char *const *a = allowed; a && *a; a++)
			known |= !strcmp(*a, k->value);
		if (!known) {
			struct sw_buf list = SW_BUF_INIT;
			for (const char *const *a = allowed; *a; a++)
				sw_buf_addf(&list, "%s%s", a == allowed ? "" : ", ", *a);
			sw_yaml_error(r, k, path, "unknown key '%s' (expected one of: %s)", k->value,
				      list.ptr);
			sw_buf_release(&list);
			continue;
		}
		/* quadratic, but a hand-written mapping has a handful of keys */
		for (size_t j = 0; j < i; j++) {
			const struct sw_yaml_node *prev = n->items[2 * j];
			if (prev->type == SW_YAML_SCALAR && !strcmp(prev->value, k->value)) {
				sw_yaml_error(r, k, path, "key '%s' appears twice (first at %d:%d)",
					      k->value, prev->mark.line, prev->mark.col);
				break;
			}
		}
	}
	return 0;
}

char *sw_yaml_want_str(struct sw_yaml_reader *r, const struct sw_yaml_node *n, const char *path)
{
	if (!n || n->type != SW_YAML_SCALAR || sw_yaml_is_null(n)) {
		sw_yaml_error(r, n, path, "expected a string, found %s", sw_yaml_describe(n));
		return NULL;
	}
	return sw_strdup(n->value);
}

size_t sw_yaml_want_strv(char ***out, const struct sw_yaml_node ***nodes,
			 struct sw_yaml_reader *r, const struct sw_yaml_node *n, const char *path,
			 unsigned flags)
{
	const struct sw_yaml_node *const *items = &n;
	size_t nitems = 1, cnt = 0;

	*out = NULL;
	if (nodes)
		*nodes = NULL;
	if ((flags & SW_YAML_NULL_ABSENT) && sw_yaml_is_null(n))
		return 0;
	if (n && n->type == SW_YAML_SEQ) {
		items = (const struct sw_yaml_node *const *)n->items;
		nitems = n->n;
	} else if (!n || n->type != SW_YAML_SCALAR || sw_yaml_is_null(n) ||
		   (flags & SW_YAML_LIST_ONLY)) {
		sw_yaml_error(r, n, path, "expected %s, found %s",
			      flags & SW_YAML_LIST_ONLY ? "a list of strings" :
			      "a string or a list of strings", sw_yaml_describe(n));
		return 0;
	}
	if (nitems == 0 && (flags & SW_YAML_NONEMPTY)) {
		sw_yaml_error(r, n, path, "empty list (leave the key out instead)");
		return 0;
	}
	*out = sw_calloc(nitems + 1, sizeof(char *));
	if (nodes)
		*nodes = sw_calloc(nitems ? nitems : 1, sizeof(**nodes));
	for (size_t i = 0; i < nitems; i++) {
		const struct sw_yaml_node *it = items[i];
		if (it->type != SW_YAML_SCALAR || sw_yaml_is_null(it)) {
			char *p = sw_asprintf("%s[%zu]", path ? path : "", i);
			sw_yaml_error(r, it, p, "expected a string, found %s", sw_yaml_describe(it));
			free(p);
			continue;
		}
		if (nodes)
			(*nodes)[cnt] = it;
		(*out)[cnt++] = sw_strdup(it->value);
	}
	return cnt;
}

/*
 * The value of `key` in `map`, or NULL when absent (after SW_YAML_REQUIRED
 * reported it) or null under SW_YAML_NULL_ABSENT; *missing says whether
 * that absence is an error.
 */
static const struct sw_yaml_node *lookup(struct sw_yaml_reader *r, const struct sw_yaml_node *map,
					 const char *path, const char *key, unsigned flags,
					 const char *expected, int *missing)
{
	const struct sw_yaml_node *n = sw_yaml_get(map, key);

	*missing = 0;
	if (n && (flags & SW_YAML_NULL_ABSENT) && sw_yaml_is_null(n))
		n = NULL;
	if (!n && (flags & SW_YAML_REQUIRED)) {
		char *p = sw_yaml_path(path, key);
		*missing = sw_yaml_error(r, map, p, "missing (expected %s)", expected);
		free(p);
	}
	return n;
}

int sw_yaml_get_str(char **out, struct sw_yaml_reader *r, const struct sw_yaml_node *map,
		    const char *path, const char *key, unsigned flags)
{
	int missing;
	const struct sw_yaml_node *n = lookup(r, map, path, key, flags, "a string", &missing);
	char *p, *v;

	if (!n)
		return missing;
	p = sw_yaml_path(path, key);
	v = sw_yaml_want_str(r, n, p);
	free(p);
	if (!v)
		return -1;
	free(*out);
	*out = v;
	return 0;
}

int sw_yaml_get_bool(int *out, struct sw_yaml_reader *r, const struct sw_yaml_node *map,
		     const char *path, const char *key, unsigned flags)
{
	int missing, rc = 0;
	const struct sw_yaml_node *n = lookup(r, map, path, key, flags, "true or false", &missing);
	struct sw_yaml_scalar sc;
	char *p;

	if (!n)
		return missing;
	if (n->type == SW_YAML_SCALAR && (sw_yaml_resolve(n, &sc), sc.kind == SW_YK_BOOL)) {
		*out = sc.b;
		return 0;
	}
	p = sw_yaml_path(path, key);
	rc = sw_yaml_error(r, n, p, "expected true or false, found %s", sw_yaml_describe(n));
	free(p);
	return rc;
}

int sw_yaml_get_int(int *out, struct sw_yaml_reader *r, const struct sw_yaml_node *map,
		    const char *path, const char *key, int min, int max, unsigned flags)
{
	int missing, rc;
	const struct sw_yaml_node *n = lookup(r, map, path, key, flags, "an integer", &missing);
	struct sw_yaml_scalar sc;
	char *p;

	if (!n)
		return missing;
	if (n->type == SW_YAML_SCALAR && (sw_yaml_resolve(n, &sc), sc.kind == SW_YK_INT) &&
	    sc.i >= min && sc.i <= max) {
		*out = (int)sc.i;
		return 0;
	}
	p = sw_yaml_path(path, key);
	rc = sw_yaml_error(r, n, p, "expected an integer from %d to %d, found %s", min, max,
			   n->type == SW_YAML_SCALAR ? n->value : sw_yaml_describe(n));
	free(p);
	return rc;
}

int sw_yaml_get_strv(char ***out, size_t *count, struct sw_yaml_reader *r,
		     const struct sw_yaml_node *map, const char *path, const char *key,
		     unsigned flags)
{
	int missing, before = r->nerrors;
	const struct sw_yaml_node *n = lookup(r, map, path, key, flags, "a list of strings",
					      &missing);
	char **v, *p;
	size_t cnt;

	if (!n)
		return missing;
	p = sw_yaml_path(path, key);
	cnt = sw_yaml_want_strv(&v, NULL, r, n, p, flags);
	free(p);
	if (v) {
		sw_strv_free(*out);
		*out = v;
		*count = cnt;
	}
	return r->nerrors > before ? -1 : 0;
}
