/*
 * tmpdir.c - scratch directories for the unit tests (tmpdir.h).
 */
#define _XOPEN_SOURCE 700
#include "tests/unit/tmpdir.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

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
