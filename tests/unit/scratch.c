/*
 * scratch.c - scratch directories, shell commands and git's environment
 * for the unit tests (scratch.h).
 */
#define _XOPEN_SOURCE 700
#include "tests/unit/scratch.h"

#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/buf.h"

int sw_test_tmpdir(char *buf, size_t n, const char *name)
{
	if ((size_t)snprintf(buf, n, "/tmp/sw-%s-XXXXXX", name) >= n)
		return -1;
	return mkdtemp(buf) ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(path);
}

void sw_test_rmtree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int sw_test_sh(const char *fmt, ...)
{
	struct sw_buf b = SW_BUF_INIT;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	sw_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	rc = system(b.ptr);
	sw_buf_release(&b);
	return rc;
}

void sw_test_git_env(void)
{
	setenv("GIT_AUTHOR_NAME", "t", 1);
	setenv("GIT_AUTHOR_EMAIL", "t@example.com", 1);
	setenv("GIT_COMMITTER_NAME", "t", 1);
	setenv("GIT_COMMITTER_EMAIL", "t@example.com", 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
}
