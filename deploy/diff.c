/*
 * diff.c - the drift comparison (deploy/deploy.h: sw_drift_diff,
 * sw_drift_manager): which fields a live object differs in from its
 * desired state, compared the way server-side apply merges (lists by their
 * merge keys, only the paths the desired object sets), and which field
 * manager to blame. Pure: no I/O, no state, so tests and the watcher in
 * drift.c call it alike.
 */
#include "deploy/deploy.h"

#include <stdint.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/clock.h"

#define MAX_DIFFS 100

static const char *const K_NAME[] = { "name", NULL };
static const char *const K_MOUNT[] = { "mountPath", NULL };
static const char *const K_DEV[] = { "devicePath", NULL };
static const char *const K_IP[] = { "ip", NULL };
static const char *const K_TYPE[] = { "type", NULL };
static const char *const K_CPORT[] = { "containerPort", "protocol", NULL };
static const char *const K_PORT[] = { "port", "protocol", NULL };
static const char *const K_TSC[] = { "topologyKey", "whenUnsatisfiable", NULL };

static int list_has_keys(const json_t *l, const char *const *keys)
{
	size_t i;
	const json_t *e;
	json_array_foreach(l, i, e) {
		if (!json_is_object(e))
			return 0;
		for (const char *const *k = keys; *k; k++)
			if (!json_object_get(e, *k) && strcmp(*k, "protocol"))
				return 0;
	}
	return 1;
}

/*
 * The merge keys of the list `field` as the built-in schemas declare them
 * (the same table the API server uses), or NULL for an atomic list.
 */
static const char *const *merge_keys(const char *field, const json_t *list)
{
	const char *const *keys = NULL;
	const json_t *first = json_array_get(list, 0);

	if (!field || !first)
		return NULL;
	if (!strcmp(field, "containers") || !strcmp(field, "initContainers") ||
	    !strcmp(field, "ephemeralContainers") || !strcmp(field, "env") ||
	    !strcmp(field, "volumes") || !strcmp(field, "imagePullSecrets"))
		keys = K_NAME;
	else if (!strcmp(field, "volumeMounts"))
		keys = K_MOUNT;
	else if (!strcmp(field, "volumeDevices"))
		keys = K_DEV;
	else if (!strcmp(field, "hostAliases"))
		keys = K_IP;
	else if (!strcmp(field, "conditions"))
		keys = K_TYPE;
	else if (!strcmp(field, "topologySpreadConstraints"))
		keys = K_TSC;
	else if (!strcmp(field, "ports"))
		keys = json_object_get(first, "containerPort") ? K_CPORT : K_PORT;
	return keys && list_has_keys(list, keys) ? keys : NULL;
}

/* {"name":"web"} / {"containerPort":80,"protocol":"TCP"}: the element's key. */
static json_t *elem_key(const json_t *e, const char *const *keys)
{
	json_t *k = json_object();
	for (; *keys; keys++) {
		json_t *v = json_object_get(e, *keys);
		if (v)
			json_object_set(k, *keys, v);
		else if (!strcmp(*keys, "protocol"))
			json_object_set_new(k, *keys, json_string("TCP"));
	}
	return k;
}

static int values_equal(const json_t *a, const json_t *b)
{
	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	return json_equal(a, b);
}

/* Does element `e` carry `key`? A missing protocol is the default, TCP. */
static int elem_matches(const json_t *e, const json_t *key)
{
	const char *k;
	json_t *kv;
	if (!json_is_object(e))
		return 0;
	json_object_foreach((json_t *)key, k, kv) {
		const json_t *v = json_object_get(e, k);
		if (!v && !strcmp(k, "protocol") && json_is_string(kv) &&
		    !strcmp(json_string_value(kv), "TCP"))
			continue;
		if (!v || !values_equal(v, kv))
			return 0;
	}
	return 1;
}

static const json_t *find_elem(const json_t *list, const json_t *key)
{
	size_t i;
	const json_t *e;
	if (!json_is_array(list))
		return NULL;
	json_array_foreach(list, i, e)
		if (elem_matches(e, key))
			return e;
	return NULL;
}

struct diffctx {
	json_t *out;            /* may be NULL: count only */
	int n;
	struct sw_buf path;
	json_t *segs;           /* the current path as fieldsV1 segments */
};

static void add_diff(struct diffctx *c, const json_t *expected, const json_t *live)
{
	c->n++;
	if (!c->out || json_array_size(c->out) >= MAX_DIFFS)
		return;
	json_array_append_new(c->out, json_pack("{s:s, s:O, s:O, s:o}", "path",
						c->path.len ? c->path.ptr : "",
						"desired", expected ? expected : json_null(),
						"live", live ? live : json_null(),
						"segs", json_deep_copy(c->segs)));
}

static void walk(struct diffctx *c, const json_t *d, const json_t *exp, const json_t *live,
		 const char *field);

static void walk_member(struct diffctx *c, const char *k, const json_t *d, const json_t *exp,
			const json_t *live)
{
	size_t len = c->path.len;
	if (len)
		sw_buf_addch(&c->path, '.');
	sw_buf_adds(&c->path, k);
	json_array_append_new(c->segs, json_string(k));
	walk(c, d, exp, live, k);
	json_array_remove(c->segs, json_array_size(c->segs) - 1);
	sw_buf_truncate(&c->path, len);
}

static void walk_object(struct diffctx *c, const json_t *d, const json_t *exp, const json_t *live)
{
	const char *k;
	json_t *dv;
	json_object_foreach((json_t *)d, k, dv) {
		const json_t *ev = json_is_object(exp) ? json_object_get(exp, k) : NULL;
		walk_member(c, k, dv, ev ? ev : dv, json_object_get(live, k));
	}
}

static void walk(struct diffctx *c, const json_t *d, const json_t *exp, const json_t *live,
		 const char *field)
{
	const char *const *keys;
	size_t i, len = c->path.len;
	const json_t *e;

	if (json_is_object(d)) {
		if (!json_is_object(live)) {
			add_diff(c, exp, live);
			return;
		}
		walk_object(c, d, exp, live);
		return;
	}
	if (!json_is_array(d)) {
		if (!live || !values_equal(exp, live))
			add_diff(c, exp, live);
		return;
	}
	if (!json_is_array(live)) {
		add_diff(c, exp, live);
		return;
	}
	keys = merge_keys(field, d);
	if (keys && list_has_keys(live, keys)) {
		/* Associative list: each desired element by its key; elements
		 * others added are theirs. */
		json_array_foreach(d, i, e) {
			json_t *key = elem_key(e, keys);
			const json_t *le = find_elem(live, key), *ee = find_elem(exp, key);
			const char *kk;
			json_t *kv;
			int first = 1;
			sw_buf_addch(&c->path, '[');
			json_object_foreach(key, kk, kv) {
				char *s = json_dumps(kv, JSON_ENCODE_ANY | JSON_COMPACT);
				sw_buf_addf(&c->path, "%s%s=%s", first ? "" : ",", kk,
					    json_is_string(kv) ? json_string_value(kv) : s);
				free(s);
				first = 0;
			}
			sw_buf_addch(&c->path, ']');
			json_array_append(c->segs, key);
			if (!le)
				add_diff(c, ee ? ee : e, NULL);
			else
				walk_object(c, e, ee ? ee : e, le);
			json_array_remove(c->segs, json_array_size(c->segs) - 1);
			sw_buf_truncate(&c->path, len);
			json_decref(key);
		}
		return;
	}
	/* Atomic list: same length, then element by element (so a default the
	 * server fills inside an element does not count). */
	if (json_array_size(live) != json_array_size(d) ||
	    (json_is_array(exp) && json_array_size(exp) != json_array_size(d))) {
		add_diff(c, exp, live);
		return;
	}
	json_array_foreach(d, i, e) {
		const json_t *ee = json_is_array(exp) ? json_array_get(exp, i) : e;
		sw_buf_addf(&c->path, "[%zu]", i);
		json_array_append_new(c->segs, json_integer((json_int_t)i));
		walk(c, e, ee ? ee : e, json_array_get(live, i), NULL);
		json_array_remove(c->segs, json_array_size(c->segs) - 1);
		sw_buf_truncate(&c->path, len);
	}
}

int sw_drift_diff(const json_t *desired, const json_t *expected, const json_t *live,
		  json_t **out)
{
	struct diffctx c = { NULL, 0, SW_BUF_INIT, json_array() };
	const char *k;
	json_t *dv;

	if (out)
		*out = c.out = json_array();
	if (!expected)
		expected = desired;
	if (!live) {
		add_diff(&c, NULL, NULL);
		goto done;
	}
	json_object_foreach((json_t *)desired, k, dv) {
		const json_t *ev = json_object_get(expected, k), *lv = json_object_get(live, k);
		if (!strcmp(k, "apiVersion") || !strcmp(k, "kind") || !strcmp(k, "status"))
			continue;
		if (!ev)
			ev = dv;
		if (!strcmp(k, "metadata")) {
			/* Only labels and annotations: the rest is identity or
			 * server-set. */
			static const char *const kept[] = { "labels", "annotations", NULL };
			for (const char *const *m = kept; *m; m++) {
				const json_t *d2 = json_object_get(dv, *m);
				const json_t *e2 = json_object_get(ev, *m);
				if (!json_is_object(d2))
					continue;
				sw_buf_adds(&c.path, "metadata");
				json_array_append_new(c.segs, json_string("metadata"));
				walk_member(&c, *m, d2, e2 ? e2 : d2, json_object_get(lv, *m));
				json_array_clear(c.segs);
				sw_buf_reset(&c.path);
			}
			continue;
		}
		walk_member(&c, k, dv, ev, lv);
	}
done:
	sw_buf_release(&c.path);
	json_decref(c.segs);
	return c.n;
}

/* ---- blame ---- */

/* Does the field set `fs` (fieldsV1) cover the path `segs`? */
static int fs_covers(const json_t *fs, const json_t *segs)
{
	size_t i;
	const json_t *s;
	const json_t *node = fs;

	json_array_foreach(segs, i, s) {
		const json_t *next = NULL;
		if (!json_is_object(node))
			return 0;
		/* A leaf above the path owns everything below it (an atomic
		 * list or map). */
		if (i > 0 && (json_object_size(node) == 0 ||
			      (json_object_size(node) == 1 && json_object_get(node, "."))))
			return 1;
		if (json_is_string(s)) {
			char key[512];
			snprintf(key, sizeof(key), "f:%s", json_string_value(s));
			next = json_object_get(node, key);
		} else if (json_is_integer(s)) {
			char key[64];
			snprintf(key, sizeof(key), "i:%lld", (long long)json_integer_value(s));
			next = json_object_get(node, key);
		} else if (json_is_object(s)) {
			const char *k;
			json_t *v;
			json_object_foreach((json_t *)node, k, v) {
				json_t *kj;
				if (strncmp(k, "k:", 2))
					continue;
				kj = json_loads(k + 2, JSON_DECODE_ANY, NULL);
				if (kj && elem_matches(kj, s) && elem_matches(s, kj))
					next = v;
				json_decref(kj);
				if (next)
					break;
			}
		}
		if (!next)
			return 0;
		node = next;
	}
	return 1;
}

const char *sw_drift_manager(const json_t *live, const json_t *diffs, const char *self)
{
	const json_t *mf = json_object_get(json_object_get(live, "metadata"), "managedFields");
	const char *best = NULL, *latest = NULL;
	int64_t best_t = INT64_MIN, latest_t = INT64_MIN;
	size_t i;
	const json_t *e;

	if (!self)
		self = "slipway";
	json_array_foreach(mf, i, e) {
		const char *m = json_string_value(json_object_get(e, "manager"));
		const char *op = json_string_value(json_object_get(e, "operation"));
		const char *ts = json_string_value(json_object_get(e, "time"));
		const json_t *fs = json_object_get(e, "fieldsV1");
		int64_t t = 0;
		size_t j;
		const json_t *d;
		int covers = 0;

		if (!m || !strcmp(m, self))
			continue;
		if (!ts || sw_parse_rfc3339(ts, &t) < 0)
			t = 0;
		/* >=: a later entry wins a tie (times have second precision). */
		if (t >= latest_t) {
			latest = m;
			latest_t = t;
		}
		if (!op || strcmp(op, "Update"))
			continue;
		json_array_foreach(diffs, j, d)
			if (fs_covers(fs, json_object_get(d, "segs"))) {
				covers = 1;
				break;
			}
		if (covers && t >= best_t) {
			best = m;
			best_t = t;
		}
	}
	return best ? best : latest;
}
