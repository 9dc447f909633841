/*
 * json.h - private to webhooks/: a validating one-pass JSON scanner that
 * keeps only the values at a few object paths.
 *
 * A delivery's payload is mostly what slipway never reads (a push carries
 * ~300 keys, slipway reads a dozen). Building a tree for it (jansson: a hash
 * table per object, a string per key) was most of the cost of a delivery, so
 * parse.c scans instead: the whole document is checked at least as strictly
 * as json_loadb(JSON_REJECT_DUPLICATES) checks it, without allocating, and the
 * value at each wanted path is remembered as a span of the input.
 *
 * What is rejected, as jansson rejects it: anything that is not one object
 * or array with only whitespace around it; invalid UTF-8; control characters
 * and \u0000 in strings; bad escapes and unpaired surrogates; malformed
 * numbers, integers outside int64 and reals that overflow a double; a key
 * twice in one object (compared after unescaping); nesting deeper than
 * 2048. And a NUL byte anywhere, as RFC 8259 says (jansson 2.14 lets one
 * through right after a number or literal: "[1\0]" loads; the scanner is
 * stricter there). The scanner is iterative: hostile input cannot grow the
 * C stack.
 */
#ifndef SW_WEBHOOKS_JSON_H
#define SW_WEBHOOKS_JSON_H

#include <stddef.h>
#include <stdint.h>

/*
 * A wanted path is a node in a small tree given as a table: node 0 is the
 * document's root (parent -1, key NULL); every other node names a key of
 * its parent, which must come earlier in the table. A node's value is
 * recorded only when every step above it is an object.
 */
struct sw_webhook_json_path {
	int parent;
	const char *key;
};

#define SW_WEBHOOK_JSON_MAX_PATHS 64

enum sw_webhook_json_type {
	SW_WJ_ABSENT = 0,
	SW_WJ_OBJECT,
	SW_WJ_ARRAY,
	SW_WJ_STRING,
	SW_WJ_INTEGER,
	SW_WJ_REAL,
	SW_WJ_TRUE,
	SW_WJ_FALSE,
	SW_WJ_NULL,
};

/* The value found at a path; spans point into the scanned input. */
struct sw_webhook_json_value {
	enum sw_webhook_json_type type;
	size_t off, len;   /* STRING: the raw text between the quotes */
	int escaped;       /* STRING: the raw text holds backslash escapes */
	int64_t integer;   /* INTEGER: its value */
};

/*
 * Scan `json[0..len)` (need not be NUL-terminated) and fill `vals[i]` for
 * each of the `npaths` (at most SW_WEBHOOK_JSON_MAX_PATHS) nodes of `paths`;
 * values not present are SW_WJ_ABSENT. Returns 0, or SW_EINVALID with
 * "REASON at line L column C" in the error slot (vals are then undefined).
 */
int sw_webhook_json_scan(const char *json, size_t len, const struct sw_webhook_json_path *paths,
			 size_t npaths, struct sw_webhook_json_value *vals);

/*
 * The decoded text of a STRING value of `json` (the same input the scan
 * saw), NUL-terminated; the caller frees it. Never NULL.
 */
char *sw_webhook_json_string(const char *json, const struct sw_webhook_json_value *v);

/* The value of a hex digit (either case), or -1. */
int sw_webhook_hexval(unsigned char c);

/* "object", "array", "string", "number", "boolean", "null" (or "absent"). */
const char *sw_webhook_json_type_name(enum sw_webhook_json_type t);

#endif
