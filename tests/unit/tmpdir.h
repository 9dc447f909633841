/*
 * tmpdir.h - scratch directories for the unit tests.
 */
#ifndef SW_TEST_TMPDIR_H
#define SW_TEST_TMPDIR_H

#include <stddef.h>

/* Make a new directory /tmp/sw-NAME-XXXXXX into buf (n bytes); 0 or -1. */
int sw_test_tmpdir(char *buf, size_t n, const char *name);

/* Remove `path` and everything below it (symlinks are not followed). */
void sw_test_rmtree(const char *path);

#endif
