/*
 * tfplan.c - reading `terraform show -json PLANFILE`: what a plan will do
 * to each resource, and what a -refresh-only plan found changed outside
 * Terraform; and the outputs of `terraform output -json` without their
 * sensitive values.
 *
 * Format (format_version "1.x"): resource_changes[] and resource_drift[]
 * hold {address, mode, change: {actions, before, after}}; actions is one of
 * [no-op], [create], [read], [update], [delete,create], [create,delete],
 * [delete] (newer versions add [forget]). Any "delete" is destructive; an
 * action we do not know counts as a change, never as nothing.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/buf.h"
#include "infra/infra.h"

static void changes_free(struct sw_tf_change *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].address);
		free(v[i].actions);
		free(v[i].type);
		free(v[i].size_before);
		free(v[i].size_after);
		if (v[i].attrs) {
			for (char **a = v[i].attrs; *a; a++)
				free(*a);
			free(v[i].attrs);
		}
	}
	free(v);
}

/* "delete,create" from ["delete","create"]; flags what it holds. */
static char *actions_str(json_t *acts, int *has_delete, int *has_create, int *has_other,
			 int *only_noop_or_read)
{
	struct sw_buf b = SW_BUF_INIT;
	size_t i;
	json_t *a;

	*has_delete = *has_create = *has_other = 0;
	*only_noop_or_read = 1;
	json_array_foreach(acts, i, a) {
		const char *s = json_string_value(a);
		if (!s)
			s = "?";
		if (b.len)
			sw_buf_addch(&b, ',');
		sw_buf_adds(&b, s);
		if (!strcmp(s, "delete"))
			*has_delete = 1;
		else if (!strcmp(s, "create"))
			*has_create = 1;
		else if (strcmp(s, "no-op") && strcmp(s, "read"))
			*has_other = 1;
		if (strcmp(s, "no-op") && strcmp(s, "read"))
			*only_noop_or_read = 0;
	}
	if (!json_array_size(acts)) {
		sw_buf_adds(&b, "no-op");
	}
	return sw_buf_detach(&b, NULL);
}

/* Top-level keys whose values differ between two objects, sorted by key order of appearance. */
static char **changed_attrs(json_t *before, json_t *after)
{
	char **v = NULL;
	size_t n = 0;
	const char *k;
	json_t *x;

	if (!json_is_object(before) || !json_is_object(after)) {
		if (json_equal(before, after))
			return NULL;
		v = sw_calloc(2, sizeof(*v));
		v[0] = sw_strdup("(whole object)");
		return v;
	}
	json_object_foreach(before, k, x) {
		json_t *y = json_object_get(after, k);
		if (y && json_equal(x, y))
			continue;
		if (!y && json_is_null(x))
			continue;
		v = sw_realloc(v, (n + 2) * sizeof(*v));
		v[n++] = sw_strdup(k);
		v[n] = NULL;
	}
	json_object_foreach(after, k, x) {
		if (json_object_get(before, k) || json_is_null(x))
			continue;
		v = sw_realloc(v, (n + 2) * sizeof(*v));
		v[n++] = sw_strdup(k);
		v[n] = NULL;
	}
	return v;
}

/* Does a sensitivity mark hold a `true` anywhere (or is it not a mark)? */
static int marked(json_t *m)
{
	const char *k;
	json_t *x;
	size_t i;

	if (!m || json_is_false(m))
		return 0;
	if (json_is_object(m)) {
		json_object_foreach(m, k, x)
			if (marked(x))
				return 1;
		return 0;
	}
	if (json_is_array(m)) {
		json_array_foreach(m, i, x)
			if (marked(x))
				return 1;
		return 0;
	}
	return 1;
}

/* The sizing attributes of a before/after object, compact JSON, or NULL;
 * one Terraform marks sensitive (`sens`: {key: true or a nested mark}) is
 * left out, whatever it is. */
static char *sizing(json_t *obj, json_t *sens)
{
	static const char *const keys[] = { SW_TF_SIZING_KEYS };
	json_t *o;
	char *s;

	if (!json_is_object(obj))
		return NULL;
	o = json_object();
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_object_get(obj, keys[i]);
		json_t *mark = json_object_get(sens, keys[i]);
		if (marked(mark))
			continue;
		if (v && !json_is_null(v))
			json_object_set(o, keys[i], v);
	}
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

static void parse_list(json_t *list, int drift, struct sw_tf_change **out, size_t *nout,
		       struct sw_tf_result *res)
{
	size_t i;
	json_t *rc;

	json_array_foreach(list, i, rc) {
		const char *addr = json_string_value(json_object_get(rc, "address"));
		const char *mode = json_string_value(json_object_get(rc, "mode"));
		json_t *change = json_object_get(rc, "change");
		int del, cre, oth, quiet;

		if (!addr || !json_is_object(change))
			continue;
		if (mode && !strcmp(mode, "data"))
			continue;   /* data sources are read, not changed */
		char *acts = actions_str(json_object_get(change, "actions"), &del, &cre, &oth, &quiet);
		if (quiet && !drift) {
			free(acts);
			continue;
		}
		if (!drift) {
			if (cre)
				res->nadd++;
			if (del)
				res->ndestroy++;
			if (oth || (!cre && !del))
				res->nchange++;
			if (del)
				res->ndestructive++;
		}
		*out = sw_realloc(*out, (*nout + 1) * sizeof(**out));
		struct sw_tf_change *c = &(*out)[(*nout)++];
		memset(c, 0, sizeof(*c));
		c->address = sw_strdup(addr);
		c->actions = acts;
		c->destructive = del;
		if (drift) {
			c->attrs = changed_attrs(json_object_get(change, "before"),
						 json_object_get(change, "after"));
		} else {
			const char *type = json_string_value(json_object_get(rc, "type"));
			c->type = type ? sw_strdup(type) : NULL;
			c->size_before = sizing(json_object_get(change, "before"),
						json_object_get(change, "before_sensitive"));
			c->size_after = sizing(json_object_get(change, "after"),
					       json_object_get(change, "after_sensitive"));
		}
	}
}

int sw_tf_parse_show(struct sw_tf_result *res, const char *text, size_t len, int drift)
{
	json_error_t je;
	json_t *doc = json_loadb(text, len, 0, &je);
	int rc = 0;

	if (!doc)
		return sw_error_setc(SW_EINVALID, "show -json: line %d: %s", je.line, je.text);
	const char *fv = json_string_value(json_object_get(doc, "format_version"));
	if (!json_is_object(doc) || !fv || fv[0] != '1') {
		rc = sw_error_setc(SW_EINVALID, "show -json: not a plan (format_version %s)",
				   fv ? fv : "missing");
		goto done;
	}
	if (!drift) {
		changes_free(res->changes, res->nchanges);
		res->changes = NULL;
		res->nchanges = res->nadd = res->nchange = res->ndestroy = res->ndestructive = 0;
		parse_list(json_object_get(doc, "resource_changes"), 0, &res->changes,
			   &res->nchanges, res);
		goto done;
	}
	changes_free(res->drift, res->ndrift);
	changes_free(res->output_drift, res->noutput_drift);
	res->drift = res->output_drift = NULL;
	res->ndrift = res->noutput_drift = 0;
	parse_list(json_object_get(doc, "resource_drift"), 1, &res->drift, &res->ndrift, res);
	/* An "update" whose before and after are equal is noise, not drift. */
	size_t keep = 0;
	for (size_t i = 0; i < res->ndrift; i++) {
		struct sw_tf_change *c = &res->drift[i];
		if (!c->attrs && !strcmp(c->actions, "update")) {
			free(c->address);
			free(c->actions);
			continue;
		}
		res->drift[keep++] = *c;
	}
	res->ndrift = keep;
	const char *name;
	json_t *oc;
	json_object_foreach(json_object_get(doc, "output_changes"), name, oc) {
		int del, cre, oth, quiet;
		char *acts = actions_str(json_object_get(oc, "actions"), &del, &cre, &oth, &quiet);
		if (quiet) {
			free(acts);
			continue;
		}
		res->output_drift = sw_realloc(res->output_drift,
					       (res->noutput_drift + 1) * sizeof(*res->output_drift));
		struct sw_tf_change *c = &res->output_drift[res->noutput_drift++];
		memset(c, 0, sizeof(*c));
		c->address = sw_strdup(name);
		c->actions = acts;
		c->destructive = del;
	}
	res->drifted = res->ndrift + res->noutput_drift > 0;
done:
	json_decref(doc);
	return rc;
}

int sw_tf_outputs_redact(char **out, const char *json, size_t len)
{
	json_error_t je;
	json_t *doc = json_loadb(json ? json : "", json ? len : 0, 0, &je), *res, *o;
	const char *name;
	char *txt;

	*out = NULL;
	if (!json_is_object(doc)) {
		json_decref(doc);
		return sw_error_setc(SW_EINVALID, "terraform output -json: %s",
				     doc ? "not an object" : je.text);
	}
	res = json_object();
	json_object_foreach(doc, name, o) {
		json_t *v = json_object_get(o, "value");
		if (!json_is_false(json_object_get(o, "sensitive")))
			json_object_set_new(res, name, json_string("(sensitive)"));
		else
			json_object_set(res, name, v ? v : json_null());
	}
	txt = json_dumps(res, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(res);
	json_decref(doc);
	if (!txt)
		return sw_error_setc(SW_ERR, "terraform output -json: cannot write JSON");
	*out = sw_strdup(txt);
	free(txt);
	return 0;
}

/* Used by terraform.c. */
void sw_tf_changes_free(struct sw_tf_change *v, size_t n);
void sw_tf_changes_free(struct sw_tf_change *v, size_t n)
{
	changes_free(v, n);
}
