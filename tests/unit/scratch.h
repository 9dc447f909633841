/*
 * scratch.h - what the unit tests make around them: scratch directories,
 * shell commands (git, kubectl) and a git identity of their own.
 */
#ifndef SW_TEST_SCRATCH_H
#define SW_TEST_SCRATCH_H

#include <stddef.h>

#include "lib/error.h"

/* Make a new directory /tmp/sw-NAME-XXXXXX into buf (n bytes); 0 or -1. */
int sw_test_tmpdir(char *buf, size_t n, const char *name);

/* Remove `path` and everything below it (symlinks are not followed). */
void sw_test_rmtree(const char *path);

/* Run a shell command made with printf's format; system()'s status. */
int sw_test_sh(const char *fmt, ...) SW_PRINTF(1, 2);

/* Commits the tests make are by "t" <t@example.com>, and no git config
 * of the machine's (system or global) changes how git behaves. */
void sw_test_git_env(void);

#endif
