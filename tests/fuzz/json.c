/*
 * json.c - fuzz target, differential: the webhooks JSON scanner
 * (webhooks/json.c, json-int.h) against jansson's json_loadb() with
 * JSON_REJECT_DUPLICATES, which it claims to match. Both must accept and
 * reject the same documents, and for what the scanner extracts (the root's
 * members and their members, found from jansson's tree, plus a few fixed
 * keys the payload parser reads) give the same type, the same integer and
 * the same decoded string. A difference is a delivery the daemon would read
 * otherwise than any other JSON reader; the scanner is what decides whether
 * a body is accepted (400 or 202). Seeds: the GitHub payloads.
 *
 * One exception: jansson 2.14 lets a NUL byte through right after a number
 * or a literal ("[1\0]", "{\"a\":false\0}" load), as its one-byte push-back
 * loses a NUL. RFC 8259 allows no NUL byte anywhere in a JSON text (it is not
 * whitespace, and not allowed raw in a string), so an input with one must
 * simply be rejected by the scanner, whatever jansson says
 * (regress/json/nul-after-*).
 */
#include <jansson.h>

#include "fuzz.h"
#include "webhooks/json-int.h"

#define MAX_PATHS SW_WEBHOOK_JSON_MAX_PATHS

struct table {
	struct sw_webhook_json_path p[MAX_PATHS];
	const json_t *want[MAX_PATHS];   /* jansson's value there, NULL: absent */
	size_t n;
};

static int add(struct table *t, int parent, const char *key, const json_t *want)
{
	if (t->n == MAX_PATHS)
		return -1;
	t->p[t->n].parent = parent;
	t->p[t->n].key = key;
	t->want[t->n] = want;
	return (int)t->n++;
}

static enum sw_webhook_json_type type_of(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT: return SW_WJ_OBJECT;
	case JSON_ARRAY: return SW_WJ_ARRAY;
	case JSON_STRING: return SW_WJ_STRING;
	case JSON_INTEGER: return SW_WJ_INTEGER;
	case JSON_REAL: return SW_WJ_REAL;
	case JSON_TRUE: return SW_WJ_TRUE;
	case JSON_FALSE: return SW_WJ_FALSE;
	case JSON_NULL: return SW_WJ_NULL;
	}
	return SW_WJ_ABSENT;
}

static void differ(const char *what, const uint8_t *data, size_t size)
{
	fprintf(stderr, "fuzz json: scanner and jansson differ: %s\ninput (%zu bytes): %.*s\n",
		what, size, (int)(size > 400 ? 400 : size), (const char *)data);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const fixed[] = { "ref", "after", "number", "action", "zen", "" };
	struct sw_webhook_json_value vals[MAX_PATHS];
	struct table t = { .n = 0 };
	const char *text = (const char *)data;
	json_error_t je;
	json_t *root = json_loadb(text, size, JSON_REJECT_DUPLICATES, &je);
	const char *k;
	json_t *v;
	size_t i;
	int rc, node;

	fuzz_init();
	if (memchr(data, 0, size)) {
		if (sw_webhook_json_scan(text, size, NULL, 0, NULL) == 0)
			differ("the scanner accepts a NUL byte", data, size);
		json_decref(root);
		return 0;
	}
	/* Accept and reject alike (no paths: the check sw_webhook_json_check does). */
	rc = sw_webhook_json_scan(text, size, NULL, 0, NULL);
	if ((rc == 0) != (root != NULL)) {
		char msg[512];
		snprintf(msg, sizeof(msg), "scanner %s, jansson %s",
			 rc == 0 ? "accepts" : sw_error_last(), root ? "accepts" : je.text);
		differ(msg, data, size);
	}
	if (!root)
		return 0;

	/* Paths: the root, its members, and the members of object members. */
	add(&t, -1, NULL, root);
	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (!json_is_object(root) || !json_object_get(root, fixed[i]))
			add(&t, 0, fixed[i], NULL);
	if (json_is_object(root)) {
		json_object_foreach(root, k, v) {
			if ((node = add(&t, 0, k, v)) < 0)
				break;
			if (json_is_object(v)) {
				const char *k2;
				json_t *v2;
				json_object_foreach(v, k2, v2)
					if (add(&t, node, k2, v2) < 0)
						break;
			}
		}
	}
	if (sw_webhook_json_scan(text, size, t.p, t.n, vals) != 0)
		differ("a path table makes the scan fail", data, size);
	for (i = 0; i < t.n; i++) {
		const json_t *w = t.want[i];
		char msg[256];
		if (!w) {
			if (vals[i].type != SW_WJ_ABSENT) {
				snprintf(msg, sizeof(msg), "key %s: scanner finds a %s, jansson nothing",
					 t.p[i].key, sw_webhook_json_type_name(vals[i].type));
				differ(msg, data, size);
			}
			continue;
		}
		if (vals[i].type != type_of(w)) {
			snprintf(msg, sizeof(msg), "path %zu (%s): scanner %s, jansson type %d", i,
				 t.p[i].key ? t.p[i].key : "root",
				 sw_webhook_json_type_name(vals[i].type), (int)json_typeof(w));
			differ(msg, data, size);
		}
		if (vals[i].type == SW_WJ_INTEGER && vals[i].integer != json_integer_value(w))
			differ("an integer's value", data, size);
		if (vals[i].type == SW_WJ_STRING) {
			char *s = sw_webhook_json_string(text, &vals[i]);
			if (strlen(s) != json_string_length(w) ||
			    memcmp(s, json_string_value(w), json_string_length(w)) != 0)
				differ("a string's decoded text", data, size);
			free(s);
		}
	}
	json_decref(root);
	return 0;
}
