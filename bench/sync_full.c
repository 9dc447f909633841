/*
 * bench/sync_full.c - LD_PRELOAD shim for the ingest benchmark: turns
 * slipwayd's "PRAGMA synchronous = NORMAL" into "PRAGMA synchronous = FULL"
 * (storage/ has the option, struct sw_store_opts.sync_full, but no config
 * key reaches it yet). Every other statement passes through untouched, so
 * the binary measured is the one built by `make`.
 *
 *   cc -shared -fPIC -O2 -o sync_full.so bench/sync_full.c -ldl
 *   LD_PRELOAD=./sync_full.so slipwayd -c ...
 *
 * Prints one line on stderr per rewritten connection, so a run shows it
 * took effect.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct sqlite3 sqlite3;
typedef int (*exec_fn)(sqlite3 *, const char *, int (*)(void *, int, char **, char **), void *,
		       char **);

int sqlite3_exec(sqlite3 *db, const char *sql, int (*cb)(void *, int, char **, char **), void *arg,
		 char **err);

int sqlite3_exec(sqlite3 *db, const char *sql, int (*cb)(void *, int, char **, char **), void *arg,
		 char **err)
{
	static exec_fn real;
	if (!real)
		real = (exec_fn)dlsym(RTLD_NEXT, "sqlite3_exec");
	if (sql && !strcasecmp(sql, "PRAGMA synchronous = NORMAL")) {
		fprintf(stderr, "bench.sync_full: PRAGMA synchronous = FULL\n");
		sql = "PRAGMA synchronous = FULL";
	}
	return real(db, sql, cb, arg, err);
}
