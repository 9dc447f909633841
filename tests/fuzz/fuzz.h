/*
 * fuzz.h - what the fuzz targets share (tests/fuzz/NAME.c): a quiet log
 * and a scratch file for parsers that read paths. Header-only so that each
 * target stays one .c linked with libFuzzer or with driver.c.
 */
#ifndef SW_FUZZ_H
#define SW_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"

/* Once per process: only errors are logged (a warning per input is noise). */
static inline void fuzz_init(void)
{
	static int done;
	if (!done) {
		sw_log_set_level(SW_LOG_ERROR);
		done = 1;
	}
}

static char fuzz_scratch[256];

static inline int fuzz_rm_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
	return remove(p);
}

/* At exit: the scratch directory goes, with whatever the target left in it. */
static inline void fuzz_cleanup(void)
{
	if (*fuzz_scratch)
		nftw(fuzz_scratch, fuzz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * A scratch directory of this process (made once, under TMPDIR) and, in it,
 * `name` holding data[0..size). Returns the file's path (static storage), or
 * NULL when the file cannot be written.
 */
static inline const char *fuzz_file(const char *name, const uint8_t *data, size_t size)
{
	static char path[512];
	FILE *fp;

	if (!*fuzz_scratch) {
		const char *t = getenv("TMPDIR");
		snprintf(fuzz_scratch, sizeof(fuzz_scratch), "%s/sw-fuzz.XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(fuzz_scratch)) {
			*fuzz_scratch = 0;
			return NULL;
		}
		atexit(fuzz_cleanup);
	}
	snprintf(path, sizeof(path), "%s/%s", fuzz_scratch, name);
	fp = fopen(path, "wb");
	if (!fp)
		return NULL;
	if (size && fwrite(data, 1, size, fp) != size) {
		fclose(fp);
		return NULL;
	}
	if (fclose(fp) != 0)
		return NULL;
	return path;
}

#endif
