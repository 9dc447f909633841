/*
 * yamlschema.h - the one reader of YAML schemas (slipway.yaml, .slipway.yml,
 * kubeconfigs) over the located tree of lib/yaml.h.
 *
 * A reader walks the tree, checks each node against what it expects and
 * collects one message per problem, "file:line:col: path: what", so a user
 * sees every problem of a file at once (h2o's configurator does the same):
 *
 *     struct sw_yaml_reader r = SW_YAML_READER_INIT(file);
 *     static const char *const keys[] = { "listen", "data_dir", NULL };
 *     if (sw_yaml_want_map(&r, root, "server", keys) == 0) {
 *             sw_yaml_get_str(&c->listen, &r, root, "server", "listen", 0);
 *             sw_yaml_get_str(&c->data_dir, &r, root, "server", "data_dir",
 *                             SW_YAML_REQUIRED);
 *     }
 *     if ((rc = sw_yaml_reader_done(&r)) < 0)    // SW_EINVALID, all messages
 *             goto fail;
 *
 * One behaviour for every file: a key written twice in one mapping is an
 * error at its second place (naming the first), keys must be scalars, and
 * only sw_yaml_want_map() checks keys, so call it on every mapping read.
 * `path` is the key path for messages ("environments[1].cluster"); "" or
 * NULL leaves it out. A NULL node counts as null and is placed at 1:1.
 * Functions that fail return -1 having added their message; nothing here
 * touches the error slot but sw_yaml_reader_done().
 */
#ifndef SW_LIB_YAMLSCHEMA_H
#define SW_LIB_YAMLSCHEMA_H

#include <stdarg.h>
#include <stddef.h>

#include "lib/buf.h"
#include "lib/yaml.h"

/* Messages kept by default; further errors are only counted. */
#define SW_YAML_MAX_ERRORS 50

struct sw_yaml_reader {
	const char *file;        /* named in every message; borrowed */
	int max_errors;          /* messages kept; 0 means SW_YAML_MAX_ERRORS */
	int nerrors;             /* errors so far, kept or not */
	struct sw_buf errors;    /* kept messages, one a line */
};

#define SW_YAML_READER_INIT(file) { (file), 0, 0, SW_BUF_INIT }

/* Flags of the getters. */
enum {
	SW_YAML_REQUIRED   = 1 << 0,  /* absent is an error ("missing") */
	SW_YAML_NULL_ABSENT = 1 << 1, /* `key: ~` reads as absent, not as a wrong type */
	SW_YAML_NONEMPTY   = 1 << 2,  /* lists: `[]` is an error */
	SW_YAML_LIST_ONLY  = 1 << 3,  /* lists: a lone string is not taken as a list of one */
};

/* --- messages ------------------------------------------------------------ */

/* Add "file:line:col: path: <fmt>" for node `n`. Always returns -1. */
int sw_yaml_error(struct sw_yaml_reader *r, const struct sw_yaml_node *n, const char *path,
		  const char *fmt, ...) SW_PRINTF(4, 5);
int sw_yaml_verror(struct sw_yaml_reader *r, const struct sw_yaml_node *n, const char *path,
		   const char *fmt, va_list ap);

/*
 * End of reading: 0 when nothing was wrong; otherwise SW_EINVALID with the
 * kept messages (and "(N more errors not shown)") in the error slot. Frees
 * the messages either way; the reader may be used again.
 */
int sw_yaml_reader_done(struct sw_yaml_reader *r);

/* --- nodes --------------------------------------------------------------- */

/* "mapping", "sequence", "null", "a boolean", "an integer", "a number" or
 * "a string", for "expected X, found <this>". */
const char *sw_yaml_describe(const struct sw_yaml_node *n);

/* Whether `n` is NULL or a scalar that resolves to null (`~`, `null`, empty). */
int sw_yaml_is_null(const struct sw_yaml_node *n);

/* "path.key", or "key" when path is empty or NULL; the caller frees it. */
char *sw_yaml_path(const char *path, const char *key);

/*
 * Check that `n` is a mapping whose keys are scalars, each written once
 * and, when `allowed` (NULL-terminated) is given, one of `allowed`. Every
 * bad key is reported; returns -1 only when `n` is not a mapping at all
 * (then nothing inside it should be read).
 */
int sw_yaml_want_map(struct sw_yaml_reader *r, const struct sw_yaml_node *n, const char *path,
		     const char *const *allowed);

/* A copy of a non-null scalar's text; NULL, with an error, for anything else. */
char *sw_yaml_want_str(struct sw_yaml_reader *r, const struct sw_yaml_node *n, const char *path);

/*
 * A list of strings (or, unless SW_YAML_LIST_ONLY, one string standing for
 * a list of one). *out becomes a NULL-terminated array of copies (lib/strv.h
 * frees it), NULL when `n` is not a list; items that are not strings are
 * reported and left out. `nodes` (may be NULL) receives the node of each
 * kept item, for later messages (free() it). Returns how many were kept.
 * SW_YAML_NONEMPTY: `[]` is an error; SW_YAML_NULL_ABSENT: null is no list
 * and no error.
 */
size_t sw_yaml_want_strv(char ***out, const struct sw_yaml_node ***nodes,
			 struct sw_yaml_reader *r, const struct sw_yaml_node *n, const char *path,
			 unsigned flags);

/* --- keys of a mapping ----------------------------------------------------- */
/*
 * Each reads `key` of mapping `map` (reported as path.key) into *out. An
 * absent key leaves *out as it was and returns 0, or with SW_YAML_REQUIRED
 * reports "missing" at the mapping and returns -1. A value of the wrong
 * type is reported at the value and returns -1, leaving *out as it was.
 */

/* A string; *out is freed and replaced with a copy. */
int sw_yaml_get_str(char **out, struct sw_yaml_reader *r, const struct sw_yaml_node *map,
		    const char *path, const char *key, unsigned flags);
/* true or false (YAML 1.1: yes/no/on/off as well). */
int sw_yaml_get_bool(int *out, struct sw_yaml_reader *r, const struct sw_yaml_node *map,
		     const char *path, const char *key, unsigned flags);
/* An integer from min to max. */
int sw_yaml_get_int(int *out, struct sw_yaml_reader *r, const struct sw_yaml_node *map,
		    const char *path, const char *key, int min, int max, unsigned flags);
/*
 * A list of strings as sw_yaml_want_strv() reads it (flags as there):
 * *out, NULL-terminated, is freed with sw_strv_free() and replaced, and
 * *count set; a value that is no list leaves both as they were.
 */
int sw_yaml_get_strv(char ***out, size_t *count, struct sw_yaml_reader *r,
		     const struct sw_yaml_node *map, const char *path, const char *key,
		     unsigned flags);

#endif
