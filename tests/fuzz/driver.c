/*
 * driver.c - a plain main() for the fuzz targets, so that every compiler
 * (gcc included, no libFuzzer) can replay their seeds and regression inputs.
 *
 *     build/tests/fuzz-NAME FILE...
 *
 * feeds each FILE whole to the target's LLVMFuzzerTestOneInput(), as
 * libFuzzer would, and prints one line per file. A crash or a sanitizer
 * report ends the process, which is what `make unit` / `make check` notice.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
	int i, bad = 0;

	for (i = 1; i < argc; i++) {
		struct sw_buf b = SW_BUF_INIT;
		if (sw_buf_read_file(&b, argv[i]) < 0) {
			fprintf(stderr, "%s: %s\n", argv[i], sw_error_last());
			bad = 1;
			continue;
		}
		/* A copy of exactly the file's size: reads past it are caught. */
		uint8_t *copy = malloc(b.len ? b.len : 1);
		if (!copy)
			abort();
		if (b.len)
			memcpy(copy, b.ptr, b.len);
		LLVMFuzzerTestOneInput(copy, b.len);
		free(copy);
		sw_buf_release(&b);
	}
	return bad;
}
