/*
 * config.c - fuzz target: the server config loader, sw_config_load()
 * (config/config.c), on the input written to a scratch file. The config is
 * the admin's, but a config that crashes slipwayd on reload (SIGHUP) takes
 * the service down, and `slipwayd --check` must say what is wrong and where.
 * Secret files named relative to the config are read from the scratch
 * directory, where a few exist (a regular file, a directory, an empty
 * file). Seeds: contrib/slipway.example.yaml and seeds/config.
 */
#include "fuzz.h"
#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct sw_config *cfg = NULL;
	const char *path;

	fuzz_init();
	if (!ready) {
		char dir[600];
		const char *p = fuzz_file("token", (const uint8_t *)"s3cret\n", 7);
		if (!p || !fuzz_file("empty", (const uint8_t *)"", 0))
			abort();
		snprintf(dir, sizeof(dir), "%.*s/dir", (int)(strrchr(p, '/') - p), p);
		mkdir(dir, 0700);
		setenv("SW_FUZZ_SECRET", "from-env", 1);
		ready = 1;
	}
	path = fuzz_file("slipway.yaml", data, size);
	if (!path)
		abort();
	if (sw_config_load(&cfg, path) == 0)
		sw_config_free(cfg);
	return 0;
}
