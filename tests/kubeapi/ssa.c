/*
 * ssa.c - field ownership (metadata.managedFields) and patches.
 *
 * A field set is kept in the wire format itself, FieldsV1: a JSON object
 * whose keys are path elements - "f:<field>", "k:<json of the merge keys>"
 * (an element of an associative list), "v:<json value>" (an element of a
 * set), "i:<index>" - and whose values are the sets below them. A path is a
 * member of the set when its node is {} (a leaf) or holds the key "." (the
 * node itself, with members below it too). This is how structured-merge-diff
 * serialises its sets, so what we compute is what the server sends.
 *
 * Associative lists (the merge-key lists) are recognised by field name, as
 * the built-in schemas declare them: containers/initContainers/
 * ephemeralContainers/env/volumes/imagePullSecrets by name, volumeMounts by
 * mountPath, ports by containerPort+protocol (in a container) or
 * port+protocol (in a Service), conditions by type, and a few more below. A
 * missing protocol counts as "TCP", the API default. Any other list is
 * atomic: owned and replaced whole.
 */
#include "tests/kubeapi/kubeapi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- associative lists ---- */

static const char *const K_NAME[] = {"name", NULL};
static const char *const K_MOUNT[] = {"mountPath", NULL};
static const char *const K_DEV[] = {"devicePath", NULL};
static const char *const K_TYPE[] = {"type", NULL};
static const char *const K_IP[] = {"ip", NULL};
static const char *const K_UID[] = {"uid", NULL};
static const char *const K_CPORT[] = {"containerPort", "protocol", NULL};
static const char *const K_PORT[] = {"port", "protocol", NULL};
static const char *const K_TSC[] = {"topologyKey", "whenUnsatisfiable", NULL};

static bool list_valid(json_t *l, const char *const *keys)
{
	size_t i;
	json_t *e;
	if (!l)
		return true;
	json_array_foreach(l, i, e) {
		if (!json_is_object(e))
			return false;
		for (const char *const *k = keys; *k; k++)
			if (!json_object_get(e, *k) && strcmp(*k, "protocol"))
				return false;
	}
	return true;
}

/* Merge keys of the list at `field` (a and b are its two versions, either
 * may be NULL), or NULL when the list is atomic. */
static const char *const *list_keys(const char *field, json_t *a, json_t *b)
{
	const char *const *keys = NULL;
	if (!field)
		return NULL;
	if (a && !json_is_array(a))
		a = NULL;
	if (b && !json_is_array(b))
		b = NULL;
	if (!strcmp(field, "containers") || !strcmp(field, "initContainers") ||
	    !strcmp(field, "ephemeralContainers") || !strcmp(field, "env") ||
	    !strcmp(field, "volumes") || !strcmp(field, "imagePullSecrets") ||
	    !strcmp(field, "containerStatuses") || !strcmp(field, "initContainerStatuses"))
		keys = K_NAME;
	else if (!strcmp(field, "volumeMounts"))
		keys = K_MOUNT;
	else if (!strcmp(field, "volumeDevices"))
		keys = K_DEV;
	else if (!strcmp(field, "conditions"))
		keys = K_TYPE;
	else if (!strcmp(field, "hostAliases"))
		keys = K_IP;
	else if (!strcmp(field, "ownerReferences"))
		keys = K_UID;
	else if (!strcmp(field, "topologySpreadConstraints"))
		keys = K_TSC;
	else if (!strcmp(field, "ports")) {
		json_t *first = json_array_get(a, 0);
		if (!first)
			first = json_array_get(b, 0);
		if (!first)
			return K_PORT; /* empty either way: key choice is moot */
		if (json_object_get(first, "containerPort"))
			keys = K_CPORT;
		else if (json_object_get(first, "port"))
			keys = K_PORT;
	}
	if (keys && list_valid(a, keys) && list_valid(b, keys))
		return keys;
	return NULL;
}

static json_t *key_of(json_t *e, const char *const *keys)
{
	json_t *k = json_object();
	for (; *keys; keys++) {
		json_t *v = json_object_get(e, *keys);
		if (!v && !strcmp(*keys, "protocol"))
			json_object_set_new(k, *keys, json_string("TCP"));
		else if (v)
			json_object_set(k, *keys, v);
	}
	return k;
}

static char *key_str(json_t *e, const char *const *keys)
{
	json_t *k = key_of(e, keys);
	char *s = json_dumps(k, JSON_COMPACT);
	char *r = ka_asprintf("k:%s", s);
	free(s);
	json_decref(k);
	return r;
}

static bool elem_matches(json_t *e, json_t *key)
{
	const char *k;
	json_t *kv;
	if (!json_is_object(e))
		return false;
	json_object_foreach(key, k, kv) {
		json_t *ev = json_object_get(e, k);
		if (!ev && !strcmp(k, "protocol")) {
			if (!json_is_string(kv) || strcmp(json_string_value(kv), "TCP"))
				return false;
		} else if (!ev || !json_equal(ev, kv))
			return false;
	}
	return true;
}

static long find_elem(json_t *list, json_t *key)
{
	size_t i;
	json_t *e;
	json_array_foreach(list, i, e)
		if (elem_matches(e, key))
			return (long)i;
	return -1;
}

/* Resolve one path element against a value; *idx gets the array index. */
static json_t *resolve(json_t *v, const char *pe, size_t *idx)
{
	if (!v || strlen(pe) < 2 || pe[1] != ':')
		return NULL;
	const char *rest = pe + 2;
	if (pe[0] == 'f')
		return json_is_object(v) ? json_object_get(v, rest) : NULL;
	if (!json_is_array(v))
		return NULL;
	if (pe[0] == 'i') {
		size_t i = (size_t)strtoul(rest, NULL, 10);
		if (idx)
			*idx = i;
		return json_array_get(v, i);
	}
	json_t *k = json_loads(rest, JSON_DECODE_ANY, NULL);
	json_t *r = NULL;
	if (k) {
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e) {
			if (pe[0] == 'k' ? elem_matches(e, k) : json_equal(e, k)) {
				r = e;
				if (idx)
					*idx = i;
				break;
			}
		}
		json_decref(k);
	}
	return r;
}

/* ---- sets ---- */

static bool fs_member(json_t *n)
{
	return json_object_size(n) == 0 || json_object_get(n, ".") != NULL;
}

static size_t fs_nkids(json_t *n)
{
	return json_object_size(n) - (json_object_get(n, ".") ? 1 : 0);
}

/* Make node n say "member" or not; n must keep kids when !member. */
static void fs_norm(json_t *n, bool member)
{
	if (member && fs_nkids(n) > 0)
		json_object_set_new(n, ".", json_object());
	else
		json_object_del(n, ".");
}

/* Maps whose Update sets mark the map itself ("."), as the real server's
 * schemas make them (maps of strings and optional structs). */
static bool map_dot(const char *field)
{
	static const char *const names[] = {"labels", "annotations", "matchLabels", "nodeSelector",
	    "data", "stringData", "binaryData", "limits", "requests", "rollingUpdate", "resources",
	    "securityContext", "strategy", NULL};
	for (const char *const *p = names; *p; p++)
		if (!strcmp(field, *p))
			return true;
	return false;
}

/* The set of everything in v (the value at `field`). Update sets (upd)
 * also mark maps the way the real server's Update sets do. */
static json_t *fs_of(json_t *v, const char *field, bool upd)
{
	json_t *s = json_object();
	if (json_is_object(v)) {
		const char *k;
		json_t *cv;
		json_object_foreach(v, k, cv) {
			if (json_is_null(cv))
				continue;
			char *fk = ka_asprintf("f:%s", k);
			json_object_set_new(s, fk, fs_of(cv, k, upd));
			free(fk);
		}
		if (upd && field && json_object_size(s) > 0 && map_dot(field))
			json_object_set_new(s, ".", json_object());
	} else if (json_is_array(v)) {
		const char *const *keys = list_keys(field, v, NULL);
		size_t i;
		json_t *e;
		if (keys) {
			json_array_foreach(v, i, e) {
				char *ks = key_str(e, keys);
				json_t *es = fs_of(e, NULL, upd);
				fs_norm(es, true);
				json_object_set_new(s, ks, es);
				free(ks);
			}
		}
	}
	return s;
}

static void fs_union(json_t *d, json_t *s)
{
	const char *k;
	json_t *sc;
	json_object_foreach(s, k, sc) {
		if (!strcmp(k, "."))
			continue;
		json_t *dc = json_object_get(d, k);
		if (!dc) {
			json_object_set_new(d, k, json_deep_copy(sc));
			continue;
		}
		bool m = fs_member(dc) || fs_member(sc);
		fs_union(dc, sc);
		fs_norm(dc, m);
	}
}

static void fs_subtract(json_t *a, json_t *b)
{
	const char *k;
	json_t *bc;
	json_object_foreach(b, k, bc) {
		if (!strcmp(k, "."))
			continue;
		json_t *ac = json_object_get(a, k);
		if (!ac)
			continue;
		bool am = fs_member(ac), bm = fs_member(bc);
		if (fs_nkids(ac) && fs_nkids(bc))
			fs_subtract(ac, bc);
		bool m = am && !bm;
		if (fs_nkids(ac) == 0) {
			if (m)
				json_object_clear(ac);
			else
				json_object_del(a, k);
		} else {
			fs_norm(ac, m);
		}
	}
}

/* Drop paths of s that no longer exist in v. */
static void fs_prune(json_t *s, json_t *v)
{
	const char *k;
	json_t *sc;
	void *tmp;
	json_object_foreach_safe(s, tmp, k, sc) {
		if (!strcmp(k, "."))
			continue;
		json_t *vc = resolve(v, k, NULL);
		if (!vc || json_is_null(vc)) {
			json_object_del(s, k);
			continue;
		}
		if (fs_nkids(sc)) {
			bool m = fs_member(sc);
			fs_prune(sc, vc);
			if (fs_nkids(sc) == 0) {
				if (m)
					json_object_clear(sc);
				else
					json_object_del(s, k);
			} else {
				fs_norm(sc, m);
			}
		}
	}
}

/* Paths where n differs from o (Update semantics), or NULL if none. */
static json_t *fs_diff(json_t *o, json_t *n, const char *field)
{
	if (json_equal(o, n))
		return NULL;
	if (json_is_object(o) && json_is_object(n)) {
		json_t *s = json_object();
		const char *k;
		json_t *nc;
		json_object_foreach(n, k, nc) {
			if (json_is_null(nc))
				continue;
			json_t *oc = json_object_get(o, k);
			json_t *d = oc ? fs_diff(oc, nc, k) : fs_of(nc, k, true);
			if (d) {
				char *fk = ka_asprintf("f:%s", k);
				json_object_set_new(s, fk, d);
				free(fk);
			}
		}
		if (!json_object_size(s)) {
			json_decref(s);
			return NULL;
		}
		return s;
	}
	const char *const *keys;
	if (json_is_array(o) && json_is_array(n) && (keys = list_keys(field, n, o))) {
		json_t *s = json_object();
		size_t i;
		json_t *ne;
		json_array_foreach(n, i, ne) {
			json_t *ko = key_of(ne, keys);
			long idx = find_elem(o, ko);
			json_decref(ko);
			json_t *es;
			if (idx < 0) {
				es = fs_of(ne, NULL, true);
				fs_norm(es, true);
			} else {
				es = fs_diff(json_array_get(o, (size_t)idx), ne, NULL);
			}
			if (es) {
				char *ks = key_str(ne, keys);
				json_object_set_new(s, ks, es);
				free(ks);
			}
		}
		if (!json_object_size(s)) {
			json_decref(s);
			return NULL;
		}
		return s;
	}
	return json_object();
}

/* ---- path strings for conflict messages ---- */

static void path_append(char *buf, size_t cap, const char *pe)
{
	size_t len = strlen(buf);
	if (pe[0] == 'f')
		snprintf(buf + len, cap - len, ".%s", pe + 2);
	else if (pe[0] == 'k') {
		json_t *k = json_loads(pe + 2, 0, NULL);
		const char *kk;
		json_t *kv;
		int first = 1;
		snprintf(buf + len, cap - len, "[");
		json_object_foreach(k, kk, kv) {
			char *vs = json_dumps(kv, JSON_COMPACT | JSON_ENCODE_ANY);
			len = strlen(buf);
			snprintf(buf + len, cap - len, "%s%s=%s", first ? "" : ",", kk, vs);
			free(vs);
			first = 0;
		}
		json_decref(k);
		len = strlen(buf);
		snprintf(buf + len, cap - len, "]");
	} else if (pe[0] == 'v')
		snprintf(buf + len, cap - len, "[=%s]", pe + 2);
	else
		snprintf(buf + len, cap - len, "[%s]", pe + 2);
}

/* Add path (stack of elements) to set root as a leaf. */
static void set_add_path(json_t *root, const char **stack, int depth)
{
	json_t *n = root;
	for (int i = 0; i < depth; i++) {
		json_t *c = json_object_get(n, stack[i]);
		if (!c) {
			c = json_object();
			json_object_set_new(n, stack[i], c);
			if (i < depth - 1 && n != root)
				fs_norm(n, fs_member(n));
		}
		n = c;
	}
}

struct conflicts {
	json_t *set;     /* conflicting paths with this manager */
	json_t *paths;   /* their strings */
	const char *stack[64];
	int depth;
};

static void find_conflicts(struct conflicts *c, json_t *sa, json_t *sn, json_t *av, json_t *lv)
{
	const char *k;
	json_t *sac;
	if (c->depth >= 63)
		return;
	json_object_foreach(sa, k, sac) {
		if (!strcmp(k, "."))
			continue;
		json_t *snc = json_object_get(sn, k);
		if (!snc)
			continue;
		json_t *ac = resolve(av, k, NULL);
		json_t *lc = resolve(lv, k, NULL);
		c->stack[c->depth++] = k;
		if (fs_nkids(sac) == 0) {
			if (fs_member(snc) && !(ac && lc && json_equal(ac, lc))) {
				char path[2048] = "";
				for (int i = 0; i < c->depth; i++)
					path_append(path, sizeof(path), c->stack[i]);
				json_array_append_new(c->paths, json_string(path));
				set_add_path(c->set, c->stack, c->depth);
			}
		} else {
			find_conflicts(c, sac, snc, ac, lc);
		}
		c->depth--;
	}
}

/* ---- object edits ---- */

/* Remove from v the members of rm, keeping anything `keep` (others' sets)
 * still owns below. */
static void obj_remove(json_t *v, json_t *rm, json_t *keep)
{
	const char *k;
	json_t *rc;
	json_object_foreach(rm, k, rc) {
		if (!strcmp(k, "."))
			continue;
		json_t *kc = keep ? json_object_get(keep, k) : NULL;
		size_t idx = 0;
		json_t *vc = resolve(v, k, &idx);
		if (!vc)
			continue;
		if (fs_member(rc) && !kc) {
			if (k[0] == 'f')
				json_object_del(v, k + 2);
			else
				json_array_remove(v, idx);
			continue;
		}
		if (fs_nkids(rc))
			obj_remove(vc, rc, kc);
	}
}

static void apply_merge(json_t *dst, json_t *src);

static void merge_keyed(json_t *dl, json_t *sl, const char *const *keys)
{
	size_t i;
	json_t *se;
	json_array_foreach(sl, i, se) {
		json_t *ko = key_of(se, keys);
		long idx = find_elem(dl, ko);
		json_decref(ko);
		if (idx >= 0)
			apply_merge(json_array_get(dl, (size_t)idx), se);
		else
			json_array_append_new(dl, json_deep_copy(se));
	}
}

static void apply_merge(json_t *dst, json_t *src)
{
	const char *k;
	json_t *sv;
	json_object_foreach(src, k, sv) {
		json_t *dv = json_object_get(dst, k);
		if (json_is_null(sv)) {
			json_object_del(dst, k);
			continue;
		}
		if (json_is_object(sv) && json_is_object(dv)) {
			apply_merge(dv, sv);
			continue;
		}
		const char *const *keys;
		if (json_is_array(sv) && json_is_array(dv) && (keys = list_keys(k, sv, dv))) {
			merge_keyed(dv, sv, keys);
			continue;
		}
		json_object_set_new(dst, k, json_deep_copy(sv));
	}
}

/* ---- merge patches ---- */

static json_t *strip_directives(json_t *v)
{
	if (json_is_object(v)) {
		const char *k;
		json_t *c;
		void *tmp;
		json_object_foreach_safe(v, tmp, k, c) {
			if (k[0] == '$')
				json_object_del(v, k);
			else
				strip_directives(c);
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *c;
		json_array_foreach(v, i, c)
			strip_directives(c);
	}
	return v;
}

static void merge_into(json_t *res, json_t *patch, bool strategic)
{
	const char *k;
	json_t *pv;
	json_object_foreach(patch, k, pv) {
		if (strategic && k[0] == '$')
			continue;
		if (json_is_null(pv)) {
			json_object_del(res, k);
			continue;
		}
		json_t *rv = json_object_get(res, k);
		if (json_is_object(pv)) {
			const char *pd = strategic ? ka_jstr(pv, "$patch") : NULL;
			if (pd && !strcmp(pd, "replace")) {
				json_object_set_new(res, k, strip_directives(json_deep_copy(pv)));
				continue;
			}
			if (pd && !strcmp(pd, "delete")) {
				json_object_del(res, k);
				continue;
			}
			if (!json_is_object(rv)) {
				rv = json_object();
				json_object_set_new(res, k, rv);
			}
			merge_into(rv, pv, strategic);
			continue;
		}
		const char *const *keys;
		if (strategic && json_is_array(pv) && json_is_array(rv) && (keys = list_keys(k, pv, rv))) {
			size_t i;
			json_t *pe;
			json_array_foreach(pv, i, pe) {
				json_t *ko = key_of(pe, keys);
				long idx = find_elem(rv, ko);
				json_decref(ko);
				const char *pd = ka_jstr(pe, "$patch");
				if (pd && !strcmp(pd, "delete")) {
					if (idx >= 0)
						json_array_remove(rv, (size_t)idx);
				} else if (idx >= 0) {
					merge_into(json_array_get(rv, (size_t)idx), pe, true);
				} else {
					json_array_append_new(rv, strip_directives(json_deep_copy(pe)));
				}
			}
			continue;
		}
		json_object_set_new(res, k, strategic ? strip_directives(json_deep_copy(pv)) : json_deep_copy(pv));
	}
}

json_t *ka_merge_patch(json_t *target, json_t *patch)
{
	if (!json_is_object(patch))
		return json_deep_copy(patch);
	json_t *res = json_is_object(target) ? json_deep_copy(target) : json_object();
	merge_into(res, patch, false);
	return res;
}

json_t *ka_strategic_patch(json_t *target, json_t *patch)
{
	if (!json_is_object(patch))
		return strip_directives(json_deep_copy(patch));
	json_t *res = json_is_object(target) ? json_deep_copy(target) : json_object();
	merge_into(res, patch, true);
	return res;
}

/* ---- JSON patch (RFC 6902) ---- */

/* Split a JSON pointer into its parent container and the last token. */
static json_t *pointer_parent(json_t *doc, const char *ptr, char *last, size_t cap)
{
	if (*ptr != '/')
		return NULL;
	json_t *cur = doc;
	const char *p = ptr + 1;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		char tok[512];
		size_t o = 0;
		for (size_t i = 0; i < n && o + 1 < sizeof(tok); i++) {
			if (p[i] == '~' && i + 1 < n && (p[i + 1] == '0' || p[i + 1] == '1')) {
				tok[o++] = p[i + 1] == '0' ? '~' : '/';
				i++;
			} else
				tok[o++] = p[i];
		}
		tok[o] = 0;
		if (!slash) {
			snprintf(last, cap, "%s", tok);
			return cur;
		}
		if (json_is_object(cur))
			cur = json_object_get(cur, tok);
		else if (json_is_array(cur))
			cur = json_array_get(cur, (size_t)strtoul(tok, NULL, 10));
		else
			return NULL;
		if (!cur)
			return NULL;
		p = slash + 1;
	}
}

static json_t *pointer_get(json_t *doc, const char *ptr)
{
	char last[512];
	if (!*ptr)
		return doc;
	json_t *par = pointer_parent(doc, ptr, last, sizeof(last));
	if (json_is_object(par))
		return json_object_get(par, last);
	if (json_is_array(par))
		return json_array_get(par, (size_t)strtoul(last, NULL, 10));
	return NULL;
}

static int pointer_remove(json_t *doc, const char *ptr)
{
	char last[512];
	json_t *par = pointer_parent(doc, ptr, last, sizeof(last));
	if (json_is_object(par))
		return json_object_del(par, last);
	if (json_is_array(par))
		return json_array_remove(par, (size_t)strtoul(last, NULL, 10));
	return -1;
}

static int pointer_add(json_t *doc, const char *ptr, json_t *val, bool replace)
{
	char last[512];
	json_t *par = pointer_parent(doc, ptr, last, sizeof(last));
	if (json_is_object(par)) {
		if (replace && !json_object_get(par, last))
			return -1;
		return json_object_set_new(par, last, val);
	}
	if (json_is_array(par)) {
		if (!strcmp(last, "-") && !replace)
			return json_array_append_new(par, val);
		size_t i = (size_t)strtoul(last, NULL, 10);
		if (replace)
			return json_array_set_new(par, i, val);
		return json_array_insert_new(par, i, val);
	}
	json_decref(val);
	return -1;
}

json_t *ka_json_patch(json_t *target, json_t *ops, const char **err)
{
	json_t *doc = json_deep_copy(target);
	size_t i;
	json_t *op;
	if (!json_is_array(ops)) {
		*err = "json patch must be an array of operations";
		goto fail;
	}
	json_array_foreach(ops, i, op) {
		const char *o = ka_jstr(op, "op"), *path = ka_jstr(op, "path"), *from = ka_jstr(op, "from");
		json_t *val = json_object_get(op, "value");
		if (!o || !path) {
			*err = "json patch operation needs op and path";
			goto fail;
		}
		int r = -1;
		if (!strcmp(o, "add") && val)
			r = pointer_add(doc, path, json_deep_copy(val), false);
		else if (!strcmp(o, "replace") && val)
			r = pointer_add(doc, path, json_deep_copy(val), true);
		else if (!strcmp(o, "remove"))
			r = pointer_remove(doc, path);
		else if (!strcmp(o, "test") && val)
			r = json_equal(pointer_get(doc, path), val) ? 0 : -1;
		else if ((!strcmp(o, "copy") || !strcmp(o, "move")) && from) {
			json_t *v = pointer_get(doc, from);
			if (v) {
				v = json_deep_copy(v);
				if (!strcmp(o, "move"))
					pointer_remove(doc, from);
				r = pointer_add(doc, path, v, false);
			}
		}
		if (r < 0) {
			*err = "json patch operation failed";
			goto fail;
		}
	}
	return doc;
fail:
	json_decref(doc);
	return NULL;
}

/* ---- managed fields ---- */

json_t *ka_mf_view(json_t *obj, const char *sub, bool has_status)
{
	static const char *const ignored[] = {"name", "namespace", "uid", "resourceVersion",
	    "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
	    "managedFields", "selfLink", NULL};
	if (has_status && sub && !strcmp(sub, "status")) {
		json_t *v = json_object();
		json_t *st = json_object_get(obj, "status");
		if (st)
			json_object_set(v, "status", st);
		return v;
	}
	json_t *v = json_copy(obj);
	json_object_del(v, "apiVersion");
	json_object_del(v, "kind");
	json_t *md = json_object_get(obj, "metadata");
	if (json_is_object(md)) {
		json_t *m2 = json_copy(md);
		for (const char *const *p = ignored; *p; p++)
			json_object_del(m2, *p);
		if (json_object_size(m2))
			json_object_set_new(v, "metadata", m2);
		else {
			json_decref(m2);
			json_object_del(v, "metadata");
		}
	}
	if (has_status)
		json_object_del(v, "status");
	return v;
}

static bool entry_is(json_t *e, const char *manager, const char *op, const char *sub)
{
	const char *m = ka_jstr(e, "manager"), *o = ka_jstr(e, "operation"), *s = ka_jstr(e, "subresource");
	return m && o && !strcmp(m, manager) && !strcmp(o, op) && !strcmp(s ? s : "", sub ? sub : "");
}

static json_t *new_entry(const char *manager, const char *op, const char *sub, const char *api_version)
{
	char ts[32];
	ka_time_now(ts);
	json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:s,s:{}}", "manager", manager, "operation", op,
	    "apiVersion", api_version, "time", ts, "fieldsType", "FieldsV1", "fieldsV1");
	if (sub && *sub)
		json_object_set_new(e, "subresource", json_string(sub));
	return e;
}

/* Set an entry's fields, bumping its time when they changed. */
static void entry_set_fields(json_t *e, json_t *fs, const char *api_version)
{
	if (!json_equal(json_object_get(e, "fieldsV1"), fs)) {
		char ts[32];
		ka_time_now(ts);
		json_object_set_new(e, "time", json_string(ts));
		json_object_set_new(e, "apiVersion", json_string(api_version));
	}
	json_object_set(e, "fieldsV1", fs);
}

/* Prune every entry against the object, drop empty ones, store the list. */
static void mf_finish(json_t *obj, json_t *mf)
{
	json_t *all = ka_mf_view(obj, "", false);
	for (size_t i = 0; i < json_array_size(mf);) {
		json_t *fs = json_object_get(json_array_get(mf, i), "fieldsV1");
		if (json_is_object(fs))
			fs_prune(fs, all);
		if (!json_is_object(fs) || json_object_size(fs) == 0)
			json_array_remove(mf, i);
		else
			i++;
	}
	json_decref(all);
	json_t *md = ka_jobj(obj, "metadata");
	if (json_array_size(mf))
		json_object_set(md, "managedFields", mf);
	else
		json_object_del(md, "managedFields");
}

void ka_mf_update(json_t *old, json_t *nw, const char *manager, const char *sub,
    const char *api_version, bool has_status)
{
	json_t *md = ka_jobj(nw, "metadata");
	json_t *given = json_object_get(md, "managedFields");
	json_t *oldmf = old ? ka_jpath(old, "metadata.managedFields") : NULL;
	if (given && !(oldmf && json_equal(given, oldmf))) {
		/* The client set managedFields itself: the server takes them
		 * as they are; an empty list clears them. */
		if (!json_is_array(given) || json_array_size(given) == 0)
			json_object_del(md, "managedFields");
		return;
	}
	json_t *mf = json_is_array(oldmf) ? json_deep_copy(oldmf) : json_array();
	json_t *ov = old ? ka_mf_view(old, sub, has_status) : json_object();
	json_t *nv = ka_mf_view(nw, sub, has_status);
	json_t *d = fs_diff(ov, nv, NULL);
	if (d) {
		size_t i;
		json_t *e, *mine = NULL;
		json_array_foreach(mf, i, e) {
			if (entry_is(e, manager, "Update", sub))
				mine = e;
			else if (json_is_object(json_object_get(e, "fieldsV1")))
				fs_subtract(json_object_get(e, "fieldsV1"), d);
		}
		if (!mine) {
			mine = new_entry(manager, "Update", sub, api_version);
			json_array_append_new(mf, mine);
		}
		json_t *fs = json_deep_copy(json_object_get(mine, "fieldsV1"));
		if (!json_is_object(fs)) {
			json_decref(fs);
			fs = json_object();
		}
		fs_union(fs, d);
		entry_set_fields(mine, fs, api_version);
		json_decref(fs);
		json_decref(d);
	}
	mf_finish(nw, mf);
	json_decref(mf);
	json_decref(ov);
	json_decref(nv);
}

json_t *ka_ssa_apply(json_t *live, json_t *cfg, const char *manager, bool force,
    const char *sub, const char *api_version, bool has_status, json_t **err)
{
	*err = NULL;
	json_t *cv = ka_mf_view(cfg, sub, has_status);
	json_t *sa = fs_of(cv, NULL, false);
	json_t *mf = live ? json_deep_copy(ka_jpath(live, "metadata.managedFields")) : NULL;
	if (!json_is_array(mf)) {
		json_decref(mf);
		mf = json_array();
	}
	json_t *lv = live ? ka_mf_view(live, "", false) : json_object();
	json_t *mine = NULL, *result = NULL;
	json_t *causes = json_array();
	char msg[4096] = "";
	size_t nconf = 0, i;
	json_t *e;

	json_array_foreach(mf, i, e) {
		json_t *fs = json_object_get(e, "fieldsV1");
		if (entry_is(e, manager, "Apply", sub)) {
			mine = e;
			continue;
		}
		if (!json_is_object(fs))
			continue;
		struct conflicts c = {json_object(), json_array(), {0}, 0};
		find_conflicts(&c, sa, fs, cv, lv);
		size_t n = json_array_size(c.paths);
		if (n && force) {
			fs_subtract(fs, c.set);
		} else if (n) {
			const char *m = ka_jstr(e, "manager"), *av = ka_jstr(e, "apiVersion");
			const char *esub = ka_jstr(e, "subresource");
			char who[512];
			if (esub && *esub)
				snprintf(who, sizeof(who), "\"%s\" with subresource \"%s\" using %s", m ? m : "",
				    esub, av ? av : "");
			else
				snprintf(who, sizeof(who), "\"%s\" using %s", m ? m : "", av ? av : "");
			size_t j;
			json_t *p;
			size_t len = strlen(msg);
			if (n == 1)
				snprintf(msg + len, sizeof(msg) - len, "%sconflict with %s: %s",
				    len ? "\n" : "", who, json_string_value(json_array_get(c.paths, 0)));
			else
				snprintf(msg + len, sizeof(msg) - len, "%sconflicts with %s:", len ? "\n" : "", who);
			json_array_foreach(c.paths, j, p) {
				char cm[600];
				snprintf(cm, sizeof(cm), "conflict with %s", who);
				json_array_append_new(causes, json_pack("{s:s,s:s,s:s}", "reason",
				    "FieldManagerConflict", "message", cm, "field", json_string_value(p)));
				if (n > 1) {
					len = strlen(msg);
					snprintf(msg + len, sizeof(msg) - len, "\n- %s", json_string_value(p));
				}
			}
			nconf += n;
		}
		json_decref(c.set);
		json_decref(c.paths);
	}
	if (nconf) {
		char full[4200];
		snprintf(full, sizeof(full), "Apply failed with %zu conflict%s: %s", nconf,
		    nconf == 1 ? "" : "s", msg);
		*err = json_pack("{s:s,s:s,s:{},s:s,s:s,s:s,s:{s:O},s:i}", "kind", "Status",
		    "apiVersion", "v1", "metadata", "status", "Failure", "message", full,
		    "reason", "Conflict", "details", "causes", causes, "code", 409);
		goto done;
	}

	result = live ? json_deep_copy(live) : json_object();
	if (mine && json_is_object(json_object_get(mine, "fieldsV1"))) {
		/* Fields this manager applied before and no longer does go away
		 * unless another manager still owns them. */
		json_t *others = json_object();
		json_array_foreach(mf, i, e)
			if (e != mine && json_is_object(json_object_get(e, "fieldsV1")))
				fs_union(others, json_object_get(e, "fieldsV1"));
		json_t *rm = json_deep_copy(json_object_get(mine, "fieldsV1"));
		fs_subtract(rm, sa);
		fs_subtract(rm, others);
		obj_remove(result, rm, others);
		json_decref(rm);
		json_decref(others);
	}
	apply_merge(result, cv);
	if (!mine) {
		mine = new_entry(manager, "Apply", sub, api_version);
		json_array_append_new(mf, mine);
	}
	entry_set_fields(mine, sa, api_version);
	mf_finish(result, mf);
done:
	json_decref(causes);
	json_decref(cv);
	json_decref(sa);
	json_decref(mf);
	json_decref(lv);
	return result;
}
