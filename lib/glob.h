/*
 * glob.h - fnmatch(3) patterns as slipway reads them from YAML (branch
 * globs of .slipway.yml stages and of scoped server secrets): fnmatch
 * accepts any pattern, so the few ways one can be broken are checked once,
 * where the pattern is written.
 */
#ifndef SW_LIB_GLOB_H
#define SW_LIB_GLOB_H

#include <stddef.h>

/* Why `g` is no usable pattern ("empty pattern", "'[' without a closing
 * ']'", "empty '[]'", "ends with a backslash"), or NULL when it is fine. */
const char *sw_glob_problem(const char *g);

/* Whether `s` matches one of the n patterns (fnmatch, no flags). */
int sw_glob_any(char *const *globs, size_t n, const char *s);

#endif
