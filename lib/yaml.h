/*
 * yaml.h - YAML read with libyaml into a tree that remembers where each node
 * came from, so every error can say file:line:col.
 *
 * One parser serves the server config, .slipway.yml and Kubernetes manifests.
 * Aliases are kept as pointers to their anchored node (the tree is a DAG):
 * nothing is copied at parse time, and sw_yaml_to_json() bounds how many nodes
 * an expansion may produce, so a "billion laughs" file is rejected instead of
 * eating the machine.
 *
 * Scalars are resolved the way kubectl reads YAML (go-yaml v2, YAML 1.1):
 * plain `yes`/`on`/`y` are booleans, `0777` is octal, `0x1F` hex, `1_000`
 * has underscores, `~`/`null`/empty are null; quoted scalars and `!!str` are
 * always strings. Checked against `kubectl label --local -o json` (kubectl
 * 1.32) in tests/unit/test_yaml.c. Where slipway deliberately differs:
 *   - a key defined twice in one mapping is an error (kubectl keeps the last);
 *   - invalid UTF-8 is an error (kubectl passes the bytes through);
 *   - `.inf`/`.nan` are errors (JSON cannot hold them);
 *   - timestamps stay strings, as they do for kubectl.
 * Merge keys follow go-yaml v2, not the YAML spec: pairs apply in order, so
 * a `<<` overrides keys written before it and keys after it override the
 * merge; in `<<: [*a, *b]` the earlier mapping wins.
 */
#ifndef SW_YAML_H
#define SW_YAML_H

#include <jansson.h>
#include <stddef.h>

#include "lib/error.h"

enum sw_yaml_type { SW_YAML_SCALAR, SW_YAML_SEQ, SW_YAML_MAP };

struct sw_yaml_mark {
	int line;  /* 1-based */
	int col;   /* 1-based */
};

struct sw_yaml_node {
	enum sw_yaml_type type;
	struct sw_yaml_mark mark;
	char *tag;               /* explicit tag ("!!str", "tag:yaml.org,2002:int") or NULL */
	int quoted;              /* scalar written with quotes or as a block (| >) */
	char *value;             /* scalar text, NUL-terminated; NULL otherwise */
	size_t len;              /* scalar length in bytes */
	size_t n;                /* seq: items; map: pairs */
	struct sw_yaml_node **items; /* seq: items[i]; map: items[2i] key, items[2i+1] value */
	/* private */
	size_t cap;              /* allocated slots in items */
	size_t expanded;         /* nodes a full expansion produces (saturates at SIZE_MAX) */
};

struct sw_yaml_doc {
	struct sw_yaml_node *root;   /* NULL for an empty document */
	struct sw_yaml_mark start;   /* where the document starts */
};

struct sw_yaml_stream {
	char *file;                  /* name used in messages */
	size_t ndocs;
	struct sw_yaml_doc *docs;
	/* private */
	struct sw_yaml_node **all;
	size_t nall, capall;
};

/*
 * Parse every document of `data`. `file` names the input in messages.
 * On error returns SW_EINVALID with "file:line:col: problem" in the slot.
 * The caller frees *out with sw_yaml_free().
 */
int sw_yaml_parse(struct sw_yaml_stream **out, const char *file, const char *data, size_t len);
/* Read and parse a file. */
int sw_yaml_parse_file(struct sw_yaml_stream **out, const char *path);
void sw_yaml_free(struct sw_yaml_stream *s);

/* Map lookup by scalar key; NULL when absent or `map` is not a map. */
const struct sw_yaml_node *sw_yaml_get(const struct sw_yaml_node *map, const char *key);

/* Resolved scalar kinds (YAML 1.1 as go-yaml v2 resolves plain scalars). */
enum sw_yaml_kind { SW_YK_NULL, SW_YK_BOOL, SW_YK_INT, SW_YK_FLOAT, SW_YK_STR };
struct sw_yaml_scalar {
	enum sw_yaml_kind kind;
	int b;
	long long i;
	double f;
};
void sw_yaml_resolve(const struct sw_yaml_node *scalar, struct sw_yaml_scalar *out);

/*
 * Default bound on the nodes one to_json expansion may produce. The size of
 * every expansion is known from parsing (aliases are counted, not copied), so
 * a document over the bound is rejected before anything is built.
 */
#define SW_YAML_MAX_NODES 1000000

/*
 * Convert a node to JSON as kubectl would (map keys become strings, `<<`
 * merge keys are applied, integral floats such as `1e3` become integers as
 * Go's encoding/json prints them, `!!binary` is decoded). `max_nodes` bounds
 * the output (0 = default). Errors (too many nodes from aliases, .inf/.nan,
 * duplicate or null keys, `!!int abc`) return SW_EINVALID naming s->file with
 * the node's line and column. `n` NULL gives JSON null. *out is a new
 * reference.
 */
int sw_yaml_to_json(json_t **out, const struct sw_yaml_stream *s,
		    const struct sw_yaml_node *n, size_t max_nodes);

/* "mapping", "sequence" or "scalar", for messages. */
const char *sw_yaml_type_name(enum sw_yaml_type t);

#endif
