/*
 * test_storage.c - storage/ against real SQLite files in a temporary
 * directory: opening and migrations, every table's API, and crash safety.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "storage/store.h"
#include "storage/store-int.h"
#include "tests/unit/slow.h"
#include "tests/unit/scratch.h"

struct fx {
	char dir[64];
	struct sw_store *st;
};

static char *path_in(const struct fx *f, const char *name)
{
	return sw_asprintf("%s/%s", f->dir, name);
}

static int exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0;
}

/* Fixture: an empty temporary directory and, for most tests, an open store. */
static int setup_dir(void **state)
{
	struct fx *f = sw_calloc(1, sizeof(*f));
	if (sw_test_tmpdir(f->dir, sizeof(f->dir), "store") < 0)
		return -1;
	*state = f;
	return 0;
}

static int setup_store(void **state)
{
	if (setup_dir(state))
		return -1;
	struct fx *f = *state;
	char *data = path_in(f, "data");
	int rc = sw_store_open(&f->st, data);
	free(data);
	if (rc)
		fprintf(stderr, "open: %s\n", sw_error_last());
	return rc;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	sw_store_close(f->st);
	sw__store_set_migrations(NULL, 0);
	sw_test_rmtree(f->dir);
	free(f);
	return 0;
}

/* Raw access to the file, for what the API deliberately does not show. */
static int64_t raw_int(const char *db_path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int64_t v = -1;

	assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void raw_exec(const char *db_path, const char *sql)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* ------------------------------------------------------------------ */
/* Opening and migrations                                              */
/* ------------------------------------------------------------------ */

/*
 * An up-to-date database opens while another process holds its write lock
 * (a backup, a sqlite3 shell): opening writes nothing then, so a restart
 * during such a lock comes up, and the engine's writes wait for the lock.
 */
static void test_open_while_locked(void **state)
{
	struct fx *f = *state;
	struct sw_store_opts o = SW_STORE_OPTS_INIT;
	char *data = path_in(f, "data");
	char *db = sw_asprintf("%s/slipway.db", data);
	struct sw_store *st = NULL;
	sqlite3 *other;

	assert_int_equal(sw_store_open(&st, data), 0);
	sw_store_close(st);
	st = NULL;
	assert_int_equal(sqlite3_open(db, &other), SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
	o.busy_timeout_ms = 10;
	assert_int_equal(sw_store_open_opts(&st, data, &o), 0);
	assert_int_equal(sw_store_kv_set(st, "k", "v"), SW_EAGAIN);   /* locked */
	assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sw_store_kv_set(st, "k", "v"), 0);
	sw_store_close(st);
	sqlite3_close(other);
	free(db);
	free(data);
}

static void test_open_fresh(void **state)
{
	struct fx *f = *state;
	char *data = path_in(f, "a/b/data");
	char *db = sw_asprintf("%s/slipway.db", data);
	struct sw_store *st = NULL;
	struct stat sb;
	sqlite3 *raw;
	sqlite3_stmt *s;

	assert_int_equal(sw_store_open(&st, data), 0);
	assert_string_equal(sw_store_path(st), db);
	assert_int_equal(stat(data, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	sw_store_close(st);

	assert_int_equal(raw_int(db, "PRAGMA user_version"), SW_STORE_SCHEMA_VERSION);
	assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
	sqlite3_finalize(s);
	sqlite3_close(raw);

	/* Reopening applies nothing and keeps the data. */
	struct sw_store_opts o = SW_STORE_OPTS_INIT;
	o.sync_full = 1;
	assert_int_equal(sw_store_open_opts(&st, data, &o), 0);
	assert_int_equal(sw_store_kv_set(st, "k", "v"), 0);
	sw_store_close(st);
	assert_int_equal(sw_store_open(&st, data), 0);
	char *v = NULL;
	assert_int_equal(sw_store_kv_get(st, "k", &v), 0);
	assert_string_equal(v, "v");
	free(v);
	sw_store_close(st);
	free(db);
	free(data);
}

static void test_migrations_and_newer_refused(void **state)
{
	struct fx *f = *state;
	char *data = path_in(f, "data");
	char *db = sw_asprintf("%s/slipway.db", data);
	struct sw_store *st = NULL;
	/* The built-in versions are already applied, so their text is never
	 * run here; one more migration follows them. */
	enum { N = SW_STORE_SCHEMA_VERSION };
	char *want;
	const char *more[N + 1];
	for (int i = 0; i < N; i++)
		more[i] = "SELECT nothing_here";
	more[N] = "CREATE TABLE extra (x);";

	assert_int_equal(sw_store_open(&st, data), 0);
	sw_store_close(st);

	sw__store_set_migrations(more, N + 1);
	assert_int_equal(sw_store_open(&st, data), 0);
	sw_store_close(st);
	assert_int_equal(raw_int(db, "PRAGMA user_version"), N + 1);
	/* Again: CREATE TABLE extra would fail if it ran twice. */
	assert_int_equal(sw_store_open(&st, data), 0);
	sw_store_close(st);

	/* This build knows N migrations; the file is at N + 1. */
	sw__store_set_migrations(NULL, 0);
	assert_int_equal(sw_store_open(&st, data), SW_EINVALID);
	assert_null(st);
	want = sw_asprintf("database %s has schema version %d, newer than this slipwayd "
				 "(%d): upgrade slipwayd or use another data directory", db, N + 1, N);
	assert_string_equal(sw_error_last(), want);
	free(want);

	raw_exec(db, "PRAGMA user_version = 7");
	assert_int_equal(sw_store_open(&st, data), SW_EINVALID);
	want = sw_asprintf("has schema version 7, newer than this slipwayd (%d)", N);
	assert_non_null(strstr(sw_error_last(), want));
	free(want);
	assert_int_equal(raw_int(db, "PRAGMA user_version"), 7);
	free(db);
	free(data);
}

static void test_failed_migration_leaves_nothing(void **state)
{
	struct fx *f = *state;
	char *data = path_in(f, "data");
	char *db = sw_asprintf("%s/slipway.db", data);
	char *wal = sw_asprintf("%s-wal", db);
	struct sw_store *st = NULL;
	static const char *const bad[] = { "CREATE TABLE t (x); CREATE TABLE oops (" };

	sw__store_set_migrations(bad, 1);
	assert_true(sw_store_open(&st, data) < 0);
	assert_null(st);
	assert_non_null(strstr(sw_error_last(), "migrate to schema version 1"));
	assert_non_null(strstr(sw_error_last(), db));
	assert_false(exists(db));
	assert_false(exists(wal));
	assert_false(exists(data));
	free(wal);
	free(db);
	free(data);
}

static void test_unwritable_dir(void **state)
{
	struct fx *f = *state;
	char *file = path_in(f, "FILE");
	char *data = sw_asprintf("%s/sub", file);
	struct sw_store *st = NULL;
	FILE *fp = fopen(file, "w");

	assert_non_null(fp);
	fclose(fp);
	/* A directory under a regular file cannot be made, even by root. */
	assert_true(sw_store_open(&st, data) < 0);
	assert_null(st);
	assert_non_null(strstr(sw_error_last(), data));
	assert_non_null(strstr(sw_error_last(), "Not a directory"));
	struct stat sb;
	assert_int_equal(stat(file, &sb), 0);
	assert_int_equal(sb.st_size, 0);
	free(data);
	free(file);

	/* Permissions only stop a non-root user. */
	if (geteuid() != 0) {
		char *ro = path_in(f, "ro");
		char *under = sw_asprintf("%s/data", ro);
		char *db = sw_asprintf("%s/slipway.db", ro);
		assert_int_equal(mkdir(ro, 0500), 0);
		assert_true(sw_store_open(&st, under) < 0);
		assert_non_null(strstr(sw_error_last(), under));
		assert_true(sw_store_open(&st, ro) < 0);
		assert_non_null(strstr(sw_error_last(), "is not writable"));
		assert_false(exists(db));
		chmod(ro, 0700);
		free(db);
		free(under);
		free(ro);
	}
}

static void test_not_a_database(void **state)
{
	struct fx *f = *state;
	char *db = path_in(f, "slipway.db");
	struct sw_store *st = NULL;
	char junk[4096];
	FILE *fp = fopen(db, "w");

	memset(junk, 'x', sizeof(junk));
	memcpy(junk, "this is not a database", 22);
	assert_int_equal(fwrite(junk, 1, sizeof(junk), fp), sizeof(junk));
	fclose(fp);
	assert_int_equal(sw_store_open(&st, f->dir), SW_EINVALID);
	assert_null(st);
	assert_non_null(strstr(sw_error_last(), db));
	assert_non_null(strstr(sw_error_last(), "not a database"));
	/* Left alone: not ours to remove. */
	struct sw_buf b = SW_BUF_INIT;
	assert_int_equal(sw_buf_read_file(&b, db), 0);
	assert_int_equal(b.len, sizeof(junk));
	assert_memory_equal(b.ptr, junk, sizeof(junk));
	sw_buf_release(&b);

	/* Another program's SQLite database is refused too. */
	unlink(db);
	raw_exec(db, "CREATE TABLE theirs (x)");
	assert_int_equal(sw_store_open(&st, f->dir), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "not slipway's"));
	free(db);
}

static void test_transactions(void **state)
{
	struct fx *f = *state;
	char *v = NULL;

	assert_int_equal(sw_store_begin(f->st), 0);
	assert_true(sw_store_in_transaction(f->st));
	assert_int_equal(sw_store_begin(f->st), SW_EINVALID);
	assert_int_equal(sw_store_kv_set(f->st, "a", "1"), 0);
	assert_int_equal(sw_store_rollback(f->st), 0);
	assert_false(sw_store_in_transaction(f->st));
	assert_int_equal(sw_store_kv_get(f->st, "a", &v), SW_ENOTFOUND);

	assert_int_equal(sw_store_begin(f->st), 0);
	assert_int_equal(sw_store_kv_set(f->st, "a", "1"), 0);
	assert_int_equal(sw_store_kv_set(f->st, "a", "2"), 0);
	assert_int_equal(sw_store_commit(f->st), 0);
	assert_int_equal(sw_store_commit(f->st), SW_EINVALID);
	assert_int_equal(sw_store_rollback(f->st), 0);
	assert_int_equal(sw_store_kv_get(f->st, "a", &v), 0);
	assert_string_equal(v, "2");
	free(v);
	assert_int_equal(sw_store_kv_delete(f->st, "a"), 0);
	assert_int_equal(sw_store_kv_delete(f->st, "a"), 0);
	assert_int_equal(sw_store_kv_get(f->st, "a", &v), SW_ENOTFOUND);
	assert_null(v);
}

/* ------------------------------------------------------------------ */
/* Deliveries                                                          */
/* ------------------------------------------------------------------ */

static void test_deliveries(void **state)
{
	struct fx *f = *state;
	struct sw_store_delivery_in in = {
		.guid = "g-1", .event = "push", .repo = "acme/app", .received_at = 1000,
		.headers = "{\"X-GitHub-Event\":\"push\"}", .body = "{\"a\":1}", .body_len = 7,
	};
	struct sw_store_delivery d = { 0 };
	struct sw_store_delivery_list l = { 0 };
	int64_t id = 0, id2 = 0, id3 = 0;

	assert_int_equal(sw_store_delivery_insert(f->st, &id, &in), 0);
	assert_true(id > 0);

	/* GitHub redelivers: same GUID, another body. */
	in.body = "{\"changed\":true}";
	in.body_len = 16;
	in.event = "pull_request";
	assert_int_equal(sw_store_delivery_insert(f->st, &id2, &in), SW_EEXISTS);
	assert_int_equal(id2, id);
	assert_non_null(strstr(sw_error_last(), "g-1"));

	assert_int_equal(sw_store_delivery_get(f->st, id, &d), 0);
	assert_string_equal(d.guid, "g-1");
	assert_string_equal(d.event, "push");
	assert_null(d.action);
	assert_int_equal(d.received_at, 1000);
	assert_int_equal(d.body.len, 7);
	assert_memory_equal(d.body.ptr, "{\"a\":1}", 7);
	assert_int_equal(d.state, SW_DELIVERY_QUEUED);
	assert_int_equal(d.run_id, 0);
	sw_store_delivery_release(&d);
	assert_null(d.guid);
	sw_store_delivery_release(&d);  /* twice is fine */

	in.guid = "g-2";
	in.action = "opened";
	assert_int_equal(sw_store_delivery_insert(f->st, &id3, &in), 0);
	assert_int_equal(sw_store_delivery_set_outcome(f->st, id, SW_DELIVERY_IGNORED,
						       "branch not configured", 0), 0);
	assert_int_equal(sw_store_delivery_set_outcome(f->st, 999, SW_DELIVERY_MAPPED, NULL, 1),
			 SW_ENOTFOUND);

	assert_int_equal(sw_store_deliveries_queued(f->st, &l), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.v[0].id, id3);
	assert_int_equal(l.v[0].body.len, 16);
	sw_store_delivery_list_release(&l);

	assert_int_equal(sw_store_deliveries_recent(f->st, 10, 0, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.v[0].id, id3);
	assert_int_equal(l.v[1].id, id);
	assert_int_equal(l.v[1].state, SW_DELIVERY_IGNORED);
	assert_string_equal(l.v[1].reason, "branch not configured");
	assert_int_equal(l.v[1].body.len, 0);
	sw_store_delivery_list_release(&l);
	assert_int_equal(sw_store_deliveries_recent(f->st, 10, 1, &l), 0);
	assert_int_equal(l.n, 1);
	sw_store_delivery_list_release(&l);

	assert_int_equal(sw_store_delivery_get(f->st, 12345, &d), SW_ENOTFOUND);
	assert_null(d.guid);
	in.guid = NULL;
	assert_int_equal(sw_store_delivery_insert(f->st, &id, &in), SW_EINVALID);
}

/* The same digest under a new GUID is a replay while its window is open. */
static void test_delivery_replays(void **state)
{
	struct fx *f = *state;
	unsigned char dg[SW_DIGEST_LEN] = { 1, 2, 3 }, other[SW_DIGEST_LEN] = { 9 };
	struct sw_store_delivery_in in = {
		.guid = "g-1", .event = "pull_request", .received_at = 10000,
		.body = "{}", .body_len = 2, .digest = dg, .replay_since = 1,
	};
	int64_t id = 0, id2 = 0;

	assert_int_equal(sw_store_delivery_insert(f->st, &id, &in), 0);
	in.guid = "g-2";
	in.received_at = 10500;
	assert_int_equal(sw_store_delivery_insert(f->st, &id2, &in), SW_EEXISTS);
	assert_int_equal(id2, id);
	assert_string_equal(sw_error_last(), "delivery g-2 replays delivery 1 (the same event and body)");
	/* another digest, or the first one outside the window: new deliveries */
	in.digest = other;
	assert_int_equal(sw_store_delivery_insert(f->st, &id2, &in), 0);
	assert_true(id2 > id);
	in.guid = "g-3";
	in.digest = dg;
	in.replay_since = 10001;
	assert_int_equal(sw_store_delivery_insert(f->st, &id2, &in), 0);
	/* no digest (replay_window 0): only the GUID counts */
	in.guid = "g-4";
	in.digest = NULL;
	in.replay_since = 0;
	assert_int_equal(sw_store_delivery_insert(f->st, &id2, &in), 0);
	assert_int_equal(sw_store_delivery_insert(f->st, &id2, &in), SW_EEXISTS);
}

/* ------------------------------------------------------------------ */
/* Runs                                                                */
/* ------------------------------------------------------------------ */

static int64_t mkrun(struct sw_store *st, enum sw_run_kind kind, const char *repo,
		     const char *branch, int64_t pr, const char *env)
{
	struct sw_store_run_in in = {
		.kind = kind, .repo = repo, .branch = branch, .commit_sha = "abc123",
		.pr_number = pr, .environment = env, .author = "ann",
	};
	int64_t id = 0;
	assert_int_equal(sw_store_run_create(st, &id, &in), 0);
	return id;
}

static void test_runs(void **state)
{
	struct fx *f = *state;
	struct sw_store_run r = { 0 };
	struct sw_store_run_list l = { 0 };
	struct sw_store_run_filter flt = SW_STORE_RUN_FILTER_INIT;
	int64_t ids[30];

	assert_int_equal(sw_store_begin(f->st), 0);
	for (int i = 0; i < 30; i++)
		ids[i] = mkrun(f->st, i % 3 == 0 ? SW_RUN_DEPLOY : SW_RUN_PULL_REQUEST,
			       i % 2 ? "acme/app" : "acme/lib", i % 3 == 0 ? "main" : "feature",
			       i % 3 == 0 ? 0 : 7, i % 3 == 0 ? "dev" : NULL);
	assert_int_equal(sw_store_commit(f->st), 0);

	assert_int_equal(sw_store_run_get(f->st, ids[0], &r), 0);
	assert_int_equal(r.kind, SW_RUN_DEPLOY);
	assert_string_equal(r.repo, "acme/lib");
	assert_string_equal(r.environment, "dev");
	assert_int_equal(r.status, SW_STATUS_QUEUED);
	assert_int_equal(r.attempt, 1);
	assert_true(r.created_at > 0);
	assert_int_equal(r.started_at, 0);
	assert_int_equal(r.pr_number, 0);
	sw_store_run_release(&r);

	/* Paging: 30 runs, 12 a page, newest first, no overlap. */
	flt.limit = 12;
	size_t seen = 0;
	int64_t last = INT64_MAX;
	for (int page = 0; page < 4; page++) {
		assert_int_equal(sw_store_run_list(f->st, &flt, &l), 0);
		for (size_t i = 0; i < l.n; i++) {
			assert_true(l.v[i].id < last);
			last = l.v[i].id;
		}
		seen += l.n;
		if (l.n)
			flt.before_id = l.v[l.n - 1].id;
		sw_store_run_list_release(&l);
	}
	assert_int_equal(seen, 30);

	/* Filters. */
	flt = (struct sw_store_run_filter)SW_STORE_RUN_FILTER_INIT;
	flt.kind = SW_RUN_DEPLOY;
	assert_int_equal(sw_store_run_list(f->st, &flt, &l), 0);
	assert_int_equal(l.n, 10);
	sw_store_run_list_release(&l);
	flt.repo = "acme/app";
	assert_int_equal(sw_store_run_list(f->st, &flt, &l), 0);
	assert_int_equal(l.n, 5);
	for (size_t i = 0; i < l.n; i++)
		assert_string_equal(l.v[i].repo, "acme/app");
	sw_store_run_list_release(&l);
	flt = (struct sw_store_run_filter)SW_STORE_RUN_FILTER_INIT;
	flt.environment = "dev";
	flt.status = SW_STATUS_QUEUED;
	assert_int_equal(sw_store_run_list(f->st, &flt, &l), 0);
	assert_int_equal(l.n, 10);
	sw_store_run_list_release(&l);
	flt.status = 99;
	assert_int_equal(sw_store_run_list(f->st, &flt, &l), SW_EINVALID);

	/* Transitions. */
	assert_int_equal(sw_store_run_set_status(f->st, ids[1], SW_STATUS_RUNNING, NULL), 0);
	assert_int_equal(sw_store_run_get(f->st, ids[1], &r), 0);
	assert_int_equal(r.status, SW_STATUS_RUNNING);
	assert_true(r.started_at > 0);
	assert_int_equal(r.finished_at, 0);
	int64_t started = r.started_at;
	sw_store_run_release(&r);
	assert_int_equal(sw_store_run_set_status(f->st, ids[1], SW_STATUS_RUNNING, NULL), 0);
	assert_int_equal(sw_store_run_set_status(f->st, ids[1], SW_STATUS_FAILURE,
						 "stage test exited 1"), 0);
	assert_int_equal(sw_store_run_get(f->st, ids[1], &r), 0);
	assert_int_equal(r.status, SW_STATUS_FAILURE);
	assert_int_equal(r.started_at, started);
	assert_true(r.finished_at >= started);
	assert_string_equal(r.reason, "stage test exited 1");
	sw_store_run_release(&r);
	/* Final is final; repeating the same final status is harmless. */
	assert_int_equal(sw_store_run_set_status(f->st, ids[1], SW_STATUS_SUCCESS, NULL),
			 SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "already failure"));
	assert_int_equal(sw_store_run_set_status(f->st, ids[1], SW_STATUS_FAILURE, NULL), 0);
	assert_int_equal(sw_store_run_set_status(f->st, 9999, SW_STATUS_RUNNING, NULL),
			 SW_ENOTFOUND);
	assert_int_equal(sw_store_run_set_status(f->st, ids[2], SW_STATUS_SKIPPED, NULL),
			 SW_EINVALID);
	/* Cancelled while queued: finished, never started. */
	assert_int_equal(sw_store_run_set_status(f->st, ids[2], SW_STATUS_CANCELLED, "user"), 0);
	assert_int_equal(sw_store_run_get(f->st, ids[2], &r), 0);
	assert_int_equal(r.started_at, 0);
	assert_true(r.finished_at > 0);
	sw_store_run_release(&r);

	/* Restart recovery. */
	assert_int_equal(sw_store_run_set_status(f->st, ids[4], SW_STATUS_RUNNING, NULL), 0);
	assert_int_equal(sw_store_runs_by_status(f->st, SW_STATUS_RUNNING, &l), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.v[0].id, ids[4]);
	sw_store_run_list_release(&l);
	assert_int_equal(sw_store_runs_by_status(f->st, SW_STATUS_QUEUED, &l), 0);
	assert_int_equal(l.n, 27);
	assert_true(l.v[0].id < l.v[1].id);
	sw_store_run_list_release(&l);

	/* Supersede lookups: PR 7 of acme/app is ids 1, 5, 7, 11, ... (odd i, i % 3 != 0). */
	assert_int_equal(sw_store_runs_active_for_pr(f->st, "acme/app", 7, &l), 0);
	for (size_t i = 0; i < l.n; i++) {
		assert_int_equal(l.v[i].pr_number, 7);
		assert_int_not_equal(l.v[i].id, ids[1]);  /* finished */
	}
	size_t active_pr = l.n;
	assert_true(active_pr > 0);
	int64_t old = l.v[0].id;
	sw_store_run_list_release(&l);
	int64_t newer = mkrun(f->st, SW_RUN_PULL_REQUEST, "acme/app", "feature", 7, NULL);
	assert_int_equal(sw_store_run_mark_superseded(f->st, old, newer), 0);
	assert_int_equal(sw_store_run_set_status(f->st, old, SW_STATUS_CANCELLED,
						 "superseded"), 0);
	assert_int_equal(sw_store_run_get(f->st, old, &r), 0);
	assert_int_equal(r.superseded_by, newer);
	sw_store_run_release(&r);
	assert_int_equal(sw_store_runs_active_for_pr(f->st, "acme/app", 7, &l), 0);
	assert_int_equal(l.n, active_pr);  /* one finished, one new */
	assert_int_equal(l.v[l.n - 1].id, newer);
	sw_store_run_list_release(&l);
	assert_int_equal(sw_store_runs_active_for_pr(f->st, "acme/app", 8, &l), 0);
	assert_int_equal(l.n, 0);
	sw_store_run_list_release(&l);

	assert_int_equal(sw_store_runs_active_for_branch(f->st, "acme/lib", "main", &l), 0);
	assert_int_equal(l.n, 5);
	for (size_t i = 0; i < l.n; i++)
		assert_string_equal(l.v[i].branch, "main");
	sw_store_run_list_release(&l);
	assert_int_equal(sw_store_run_mark_superseded(f->st, 99999, 1), SW_ENOTFOUND);
}

/* The newest push or manual run of an environment: what the poller compares with. */
static void test_run_latest_head(void **state)
{
	struct fx *f = *state;
	struct sw_store_run r = { 0 };

	assert_int_equal(sw_store_run_latest_head(f->st, "acme/app", "dev", &r), SW_ENOTFOUND);
	sw_store_run_release(&r);
	int64_t push = mkrun(f->st, SW_RUN_PUSH, "acme/app", "dev", 0, "dev");
	mkrun(f->st, SW_RUN_PUSH, "acme/app", "main", 0, "prod");
	mkrun(f->st, SW_RUN_PULL_REQUEST, "acme/app", "feature", 3, NULL);
	assert_int_equal(sw_store_run_latest_head(f->st, "acme/app", "dev", &r), 0);
	assert_int_equal(r.id, push);
	sw_store_run_release(&r);
	/* a finished manual run counts; a rollback or another repository's run does not */
	int64_t manual = mkrun(f->st, SW_RUN_MANUAL, "acme/app", "dev", 0, "dev");
	assert_int_equal(sw_store_run_set_status(f->st, manual, SW_STATUS_FAILURE, "no"), 0);
	mkrun(f->st, SW_RUN_ROLLBACK, "acme/app", "dev", 0, "dev");
	mkrun(f->st, SW_RUN_PUSH, "acme/other", "dev", 0, "dev");
	assert_int_equal(sw_store_run_latest_head(f->st, "acme/app", "dev", &r), 0);
	assert_int_equal(r.id, manual);
	assert_int_equal(r.kind, SW_RUN_MANUAL);
	sw_store_run_release(&r);
}

static int plan_ok(sqlite3 *db, const char *sql, char *why, size_t whylen)
{
	char *q = sw_asprintf("EXPLAIN QUERY PLAN %s", sql);
	sqlite3_stmt *s;
	int ok = 1;

	assert_int_equal(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(s, 3);
		/* A full scan that is not walking an index, or a sort of every match. */
		if (strstr(d, "TEMP B-TREE") || (strstr(d, "SCAN") && !strstr(d, "INDEX") &&
						 !strstr(d, "PRIMARY KEY") && strcmp(d, "SCAN runs"))) {
			snprintf(why, whylen, "%s: %s", sql, d);
			ok = 0;
		}
	}
	sqlite3_finalize(s);
	free(q);
	return ok;
}

static void test_runs_many_fast(void **state)
{
	struct fx *f = *state;
	struct sw_store_run_list l = { 0 };
	const int N = 12000;
	char why[512] = "";

	assert_int_equal(sw_store_begin(f->st), 0);
	for (int i = 0; i < N; i++) {
		char repo[32];
		snprintf(repo, sizeof(repo), "acme/r%d", i % 40);
		mkrun(f->st, (enum sw_run_kind)(i % 6), repo, i % 5 ? "main" : "dev", i % 100,
		      i % 4 ? "dev" : "prod");
	}
	assert_int_equal(sw_store_commit(f->st), 0);
	for (int i = 1; i <= N; i += 7)
		assert_int_equal(sw_store_run_set_status(f->st, i, SW_STATUS_RUNNING, NULL), 0);

	/* Every filter combination pages from an index, never sorting all matches. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(sw_store_path(f->st), &db), SQLITE_OK);
	for (int mask = 0; mask < 32; mask++) {
		struct sw_store_run_filter flt = SW_STORE_RUN_FILTER_INIT;
		if (mask & 1) flt.status = SW_STATUS_RUNNING;
		if (mask & 2) flt.kind = SW_RUN_PUSH;
		if (mask & 4) flt.environment = "prod";
		if (mask & 8) flt.repo = "acme/r3";
		if (mask & 16) flt.before_id = N / 2;
		char *sql = sw__run_list_sql(&flt);
		if (!plan_ok(db, sql, why, sizeof(why)))
			fail_msg("bad plan: %s", why);
		free(sql);

		int64_t t0 = sw_mono_ms();
		assert_int_equal(sw_store_run_list(f->st, &flt, &l), 0);
		int64_t dt = sw_mono_ms() - t0;
		if (mask == 0)
			assert_int_equal(l.n, 50);
		/* Generous for sanitizer builds; an unindexed sort is far slower. */
		if (dt > sw_test_ms(200))
			fail_msg("run list mask %d took %lld ms", mask, (long long)dt);
		sw_store_run_list_release(&l);
	}
	/* The supersede lookups use the partial indexes. */
	const char *sup[] = {
		"SELECT id FROM runs WHERE repo = 'a' AND pr_number = 1 AND status IN ('queued','running')",
		"SELECT id FROM runs WHERE repo = 'a' AND branch = 'b' AND status IN ('queued','running')",
	};
	for (size_t i = 0; i < 2; i++) {
		char *q = sw_asprintf("EXPLAIN QUERY PLAN %s", sup[i]);
		sqlite3_stmt *s;
		assert_int_equal(sqlite3_prepare_v2(db, q, -1, &s, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_step(s), SQLITE_ROW);
		assert_non_null(strstr((const char *)sqlite3_column_text(s, 3), "runs_active_"));
		sqlite3_finalize(s);
		free(q);
	}
	/* The poller's lookup walks runs_env from the newest run, without a sort. */
	if (!plan_ok(db, "SELECT id FROM runs WHERE environment = 'prod' AND repo = 'acme/r3' AND "
		     "kind IN ('push','manual') ORDER BY id DESC LIMIT 1", why, sizeof(why)))
		fail_msg("bad plan: %s", why);
	sqlite3_close(db);
}

/* ------------------------------------------------------------------ */
/* Stages and logs                                                     */
/* ------------------------------------------------------------------ */

static void test_stages_and_logs(void **state)
{
	struct fx *f = *state;
	int64_t run = mkrun(f->st, SW_RUN_PUSH, "acme/app", "main", 0, NULL);
	int64_t s0, s1, s2, end = 0, next = 0, size = 0;
	struct sw_store_stage_list l = { 0 };
	struct sw_store_stage sg = { 0 };
	struct sw_buf b = SW_BUF_INIT, want = SW_BUF_INIT;

	assert_int_equal(sw_store_stage_create(f->st, &s1, run, 1, "test", "alpine:3"), 0);
	assert_int_equal(sw_store_stage_create(f->st, &s0, run, 0, "lint", NULL), 0);
	assert_int_equal(sw_store_stage_create(f->st, &s2, run, 1, "dup", NULL), SW_EINVALID);
	assert_int_equal(sw_store_stage_create(f->st, &s2, run, 2, "deploy", NULL), 0);
	int64_t bad = 5;
	assert_int_equal(sw_store_stage_create(f->st, &bad, 4242, 0, "x", NULL), SW_EINVALID);
	assert_int_equal(bad, 0);

	assert_int_equal(sw_store_stage_set_status(f->st, s0, SW_STATUS_RUNNING, -1, NULL), 0);
	assert_int_equal(sw_store_stage_set_container(f->st, s0, "c0ffee"), 0);
	assert_int_equal(sw_store_stage_set_status(f->st, s0, SW_STATUS_SUCCESS, 0, NULL), 0);
	assert_int_equal(sw_store_stage_set_status(f->st, s1, SW_STATUS_SKIPPED, -1,
						   "lint failed"), 0);
	assert_int_equal(sw_store_stage_set_status(f->st, 777, SW_STATUS_SKIPPED, -1, NULL),
			 SW_ENOTFOUND);
	assert_int_equal(sw_store_stages_list(f->st, run, &l), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0].name, "lint");
	assert_int_equal(l.v[0].status, SW_STATUS_SUCCESS);
	assert_int_equal(l.v[0].exit_code, 0);
	assert_string_equal(l.v[0].container_id, "c0ffee");
	assert_true(l.v[0].started_at > 0 && l.v[0].finished_at >= l.v[0].started_at);
	assert_int_equal(l.v[1].status, SW_STATUS_SKIPPED);
	assert_int_equal(l.v[1].exit_code, -1);
	assert_string_equal(l.v[1].reason, "lint failed");
	assert_null(l.v[2].image);
	sw_store_stage_list_release(&l);
	assert_int_equal(sw_store_stage_get(f->st, s2, &sg), 0);
	assert_int_equal(sg.status, SW_STATUS_QUEUED);
	sw_store_stage_release(&sg);

	/* A log in uneven chunks: 1, 2, ..., 40 bytes. */
	assert_int_equal(sw_store_log_size(f->st, s0, &size), 0);
	assert_int_equal(size, 0);
	for (int i = 1; i <= 40; i++) {
		char chunk[64];
		for (int k = 0; k < i; k++)
			chunk[k] = (char)('A' + (want.len + (size_t)k) % 26);
		sw_buf_add(&want, chunk, (size_t)i);
		assert_int_equal(sw_store_log_append(f->st, s0, 0, chunk, (size_t)i, &end), 0);
		assert_int_equal(end, (int64_t)want.len);
	}
	assert_int_equal(sw_store_log_append(f->st, s0, 0, "", 0, &end), 0);
	assert_int_equal(end, (int64_t)want.len);
	assert_int_equal(sw_store_log_size(f->st, s0, &size), 0);
	assert_int_equal(size, 820);

	/* Everything at once. */
	assert_int_equal(sw_store_log_read(f->st, s0, 0, 0, &b, &next), 0);
	assert_int_equal(b.len, 820);
	assert_memory_equal(b.ptr, want.ptr, 820);
	assert_int_equal(next, 820);
	sw_buf_reset(&b);

	/* From every offset, in reads of awkward sizes that split chunks. */
	size_t maxes[] = { 1, 7, 33, 100 };
	for (size_t m = 0; m < 4; m++) {
		for (int64_t off = 0; off <= 820; off += 13) {
			int64_t pos = off;
			sw_buf_reset(&b);
			do {
				size_t before = b.len;
				assert_int_equal(sw_store_log_read(f->st, s0, pos, maxes[m], &b, &next), 0);
				assert_true(b.len - before <= maxes[m]);
				assert_int_equal(next, pos + (int64_t)(b.len - before));
				if (b.len == before)
					break;
				pos = next;
			} while (1);
			assert_int_equal(b.len, 820 - (size_t)off);
			assert_memory_equal(b.ptr, want.ptr + off, b.len);
		}
	}
	sw_buf_reset(&b);
	assert_int_equal(sw_store_log_read(f->st, s0, 5000, 10, &b, &next), 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(next, 5000);
	/* Another stage's log is separate. */
	assert_int_equal(sw_store_log_append(f->st, s1, 0, "hello", 5, NULL), 0);
	assert_int_equal(sw_store_log_read(f->st, s1, 0, 0, &b, &next), 0);
	assert_int_equal(b.len, 5);
	assert_int_equal(sw_store_log_append(f->st, 31337, 0, "x", 1, NULL), SW_EINVALID);
	sw_buf_release(&b);
	sw_buf_release(&want);
}

/* ------------------------------------------------------------------ */
/* Environments, syncs, inventory, drift                               */
/* ------------------------------------------------------------------ */

static void test_environments(void **state)
{
	struct fx *f = *state;
	struct sw_store_env e = { 0 };
	struct sw_store_env_list l = { 0 };
	struct sw_store_env_update u = SW_STORE_ENV_UPDATE_INIT;

	assert_int_equal(sw_store_env_upsert(f->st, "dev", "dev"), 0);
	assert_int_equal(sw_store_env_upsert(f->st, "prod", "main"), 0);
	assert_int_equal(sw_store_env_get(f->st, "dev", &e), 0);
	assert_int_equal(e.sync_status, SW_ENV_UNKNOWN);
	assert_int_equal(e.health, SW_HEALTH_UNKNOWN);
	assert_null(e.desired_commit);
	sw_store_env_release(&e);

	u.desired_commit = "d1";
	u.synced_commit = "d1";
	u.sync_status = SW_ENV_SYNCED;
	u.health = SW_HEALTH_HEALTHY;
	u.last_sync_at = 5000;
	u.last_sync_ms = 1200;
	u.message = "applied 12 objects";
	assert_int_equal(sw_store_env_set(f->st, "dev", &u), 0);
	assert_int_equal(sw_store_env_set(f->st, "nope", &u), SW_ENOTFOUND);
	u = (struct sw_store_env_update)SW_STORE_ENV_UPDATE_INIT;
	u.health = 77;
	assert_int_equal(sw_store_env_set(f->st, "dev", &u), SW_EINVALID);

	/* The config is loaded again at start-up: state stays. */
	assert_int_equal(sw_store_env_upsert(f->st, "dev", "develop"), 0);
	assert_int_equal(sw_store_env_get(f->st, "dev", &e), 0);
	assert_string_equal(e.branch, "develop");
	assert_string_equal(e.desired_commit, "d1");
	assert_string_equal(e.synced_commit, "d1");
	assert_int_equal(e.sync_status, SW_ENV_SYNCED);
	assert_int_equal(e.health, SW_HEALTH_HEALTHY);
	assert_int_equal(e.last_sync_at, 5000);
	assert_int_equal(e.last_sync_ms, 1200);
	assert_string_equal(e.message, "applied 12 objects");
	sw_store_env_release(&e);

	/* NULL keeps, "" clears. */
	u = (struct sw_store_env_update)SW_STORE_ENV_UPDATE_INIT;
	u.rolled_back_to = "c0";
	u.sync_status = SW_ENV_ROLLED_BACK;
	u.message = "";
	assert_int_equal(sw_store_env_set(f->st, "dev", &u), 0);
	assert_int_equal(sw_store_env_get(f->st, "dev", &e), 0);
	assert_string_equal(e.rolled_back_to, "c0");
	assert_int_equal(e.sync_status, SW_ENV_ROLLED_BACK);
	assert_null(e.message);
	assert_string_equal(e.desired_commit, "d1");
	assert_int_equal(e.health, SW_HEALTH_HEALTHY);
	sw_store_env_release(&e);

	assert_int_equal(sw_store_env_list(f->st, &l), 0);
	assert_int_equal(l.n, 2);
	assert_string_equal(l.v[0].name, "dev");
	assert_string_equal(l.v[1].name, "prod");
	sw_store_env_list_release(&l);
	assert_int_equal(sw_store_env_get(f->st, "staging", &e), SW_ENOTFOUND);
}

static void test_syncs(void **state)
{
	struct fx *f = *state;
	struct sw_store_sync s = { 0 };
	struct sw_store_sync_list l = { 0 };
	struct sw_store_objref dep = { "apps/v1", "Deployment", "web", "api" };
	struct sw_store_objref nsobj = { "v1", "Namespace", NULL, "web" };
	int64_t id[8], deleted = 0;

	assert_int_equal(sw_store_env_upsert(f->st, "dev", "dev"), 0);
	assert_int_equal(sw_store_env_upsert(f->st, "prod", "main"), 0);
	assert_int_equal(sw_store_sync_start(f->st, &id[0], "nope", "c", SW_TRIGGER_MERGE, 0),
			 SW_EINVALID);

	/* dev: 0 healthy, 1 failure, 2 healthy, 3 degraded, 4..7 failures. */
	for (int i = 0; i < 8; i++) {
		char sha[8];
		snprintf(sha, sizeof(sha), "c%d", i);
		assert_int_equal(sw_store_sync_start(f->st, &id[i], "dev", sha,
						     SW_TRIGGER_MERGE, 0), 0);
		assert_int_equal(sw_store_sync_add_object(f->st, id[i], &nsobj,
							  SW_OBJ_UNCHANGED, NULL), 0);
		assert_int_equal(sw_store_sync_add_object(f->st, id[i], &dep,
							  i ? SW_OBJ_CONFIGURED : SW_OBJ_CREATED,
							  "ok"), 0);
		int healthy = i == 0 || i == 2, degraded = i == 3;
		assert_int_equal(sw_store_sync_finish(f->st, id[i],
						      healthy || degraded ? SW_SYNC_SUCCESS
									  : SW_SYNC_FAILURE,
						      healthy ? SW_HEALTH_HEALTHY
							      : degraded ? SW_HEALTH_DEGRADED
									 : SW_HEALTH_UNKNOWN,
						      healthy ? NULL : "boom"), 0);
	}
	int64_t p;
	assert_int_equal(sw_store_sync_start(f->st, &p, "prod", "m1", SW_TRIGGER_MANUAL, 0), 0);

	assert_int_equal(sw_store_sync_get(f->st, id[0], &s), 0);
	assert_string_equal(s.environment, "dev");
	assert_string_equal(s.commit_sha, "c0");
	assert_int_equal(s.trigger, SW_TRIGGER_MERGE);
	assert_int_equal(s.status, SW_SYNC_SUCCESS);
	assert_int_equal(s.health, SW_HEALTH_HEALTHY);
	assert_true(s.finished_at >= s.started_at && s.started_at > 0);
	assert_int_equal(s.nobjects, 2);
	assert_string_equal(s.objects[0].kind, "Namespace");
	assert_string_equal(s.objects[0].namespace, "");
	assert_string_equal(s.objects[1].name, "api");
	assert_int_equal(s.objects[1].result, SW_OBJ_CREATED);
	sw_store_sync_release(&s);
	assert_null(s.objects);

	assert_int_equal(sw_store_sync_history(f->st, "dev", 3, &l), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.v[0].id, id[7]);
	assert_int_equal(l.v[2].id, id[5]);
	assert_int_equal(l.v[0].nobjects, 0);
	sw_store_sync_list_release(&l);

	assert_int_equal(sw_store_sync_last_healthy(f->st, "dev", 0, &s), 0);
	assert_int_equal(s.id, id[2]);
	sw_store_sync_release(&s);
	assert_int_equal(sw_store_sync_last_healthy(f->st, "dev", id[2], &s), 0);
	assert_int_equal(s.id, id[0]);
	sw_store_sync_release(&s);
	assert_int_equal(sw_store_sync_last_healthy(f->st, "prod", 0, &s), SW_ENOTFOUND);

	/* Keep 3: 5, 6, 7 stay, and 2 as the newest healthy one. */
	assert_int_equal(sw_store_sync_trim(f->st, "dev", 3, &deleted), 0);
	assert_int_equal(deleted, 4);
	assert_int_equal(sw_store_sync_history(f->st, "dev", 100, &l), 0);
	assert_int_equal(l.n, 4);
	assert_int_equal(l.v[0].id, id[7]);
	assert_int_equal(l.v[3].id, id[2]);
	sw_store_sync_list_release(&l);
	assert_int_equal(sw_store_sync_get(f->st, id[1], &s), SW_ENOTFOUND);
	/* Their objects went with them. */
	char *db = sw_asprintf("%s", sw_store_path(f->st));
	assert_int_equal(raw_int(db, "SELECT count(*) FROM sync_objects"), 4 * 2);
	free(db);

	/* All environments at once. */
	assert_int_equal(sw_store_sync_trim(f->st, NULL, 1, &deleted), 0);
	assert_int_equal(deleted, 2);  /* dev 5 and 6; 7 newest, 2 healthy; prod has one */
	assert_int_equal(sw_store_sync_history(f->st, "dev", 100, &l), 0);
	assert_int_equal(l.n, 2);
	sw_store_sync_list_release(&l);
	assert_int_equal(sw_store_sync_history(f->st, "prod", 100, &l), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.v[0].status, SW_SYNC_RUNNING);
	sw_store_sync_list_release(&l);
}

/* Terraform outputs go on the first sync of the run; v2 databases gain the column. */
static void test_sync_infra_outputs(void **state)
{
	struct fx *f = *state;
	struct sw_store_sync s = { 0 };
	struct sw_store_sync_list l = { 0 };
	const char *outs = "{\"infra/environment/dev\":{\"id\":\"abc\",\"db_password\":\"(sensitive)\"}}";
	int64_t old, deploy, rollback;

	assert_int_equal(sw_store_env_upsert(f->st, "dev", "dev"), 0);
	assert_int_equal(sw_store_env_upsert(f->st, "prod", "main"), 0);
	assert_int_equal(sw_store_sync_start(f->st, &old, "dev", "c0", SW_TRIGGER_MERGE, 4), 0);

	/* A database of schema version 2: no column yet, one sync in it. */
	char *db = sw_asprintf("%s", sw_store_path(f->st));
	char *data = path_in(f, "data");
	sw_store_close(f->st);
	f->st = NULL;
	raw_exec(db, "ALTER TABLE syncs DROP COLUMN infra_outputs; DROP INDEX deliveries_digest; "
		     "ALTER TABLE deliveries DROP COLUMN digest; DROP TABLE api_tokens; "
		     "DROP TABLE audit; DROP TABLE cost_daily; PRAGMA user_version = 2");
	assert_int_equal(sw_store_open(&f->st, data), 0);
	assert_int_equal(raw_int(db, "PRAGMA user_version"), SW_STORE_SCHEMA_VERSION);
	assert_int_equal(sw_store_sync_get(f->st, old, &s), 0);
	assert_string_equal(s.commit_sha, "c0");
	assert_null(s.infra_outputs);
	sw_store_sync_release(&s);

	/* Run 5 deployed c1 and then rolled back to c0: the deploy gets them. */
	assert_int_equal(sw_store_sync_start(f->st, &deploy, "dev", "c1", SW_TRIGGER_MERGE, 5), 0);
	assert_int_equal(sw_store_sync_start(f->st, &rollback, "dev", "c0", SW_TRIGGER_ROLLBACK, 5), 0);
	assert_int_equal(sw_store_sync_set_infra_outputs(f->st, "dev", 5, outs), 0);
	assert_int_equal(sw_store_sync_get(f->st, deploy, &s), 0);
	assert_string_equal(s.infra_outputs, outs);
	sw_store_sync_release(&s);
	assert_int_equal(sw_store_sync_get(f->st, rollback, &s), 0);
	assert_null(s.infra_outputs);
	sw_store_sync_release(&s);
	assert_int_equal(sw_store_sync_history(f->st, "dev", 10, &l), 0);
	assert_int_equal(l.n, 3);
	assert_null(l.v[0].infra_outputs);
	assert_string_equal(l.v[1].infra_outputs, outs);
	assert_null(l.v[2].infra_outputs);
	sw_store_sync_list_release(&l);

	/* No sync of that run in that environment. */
	assert_int_equal(sw_store_sync_set_infra_outputs(f->st, "prod", 5, outs), SW_ENOTFOUND);
	assert_non_null(strstr(sw_error_last(), "infra outputs of run 5 on prod"));
	assert_int_equal(sw_store_sync_set_infra_outputs(f->st, "dev", 6, outs), SW_ENOTFOUND);
	free(db);
	free(data);
}

static void test_inventory(void **state)
{
	struct fx *f = *state;
	struct sw_store_inv_list l = { 0 };
	int64_t counts[SW_HEALTH__COUNT];
	struct sw_store_inv_in items[] = {
		{ { "apps/v1", "Deployment", "web", "api" }, "u1", SW_HEALTH_HEALTHY, NULL },
		{ { "v1", "Service", "web", "api" }, "u2", SW_HEALTH_HEALTHY, NULL },
		{ { "v1", "Namespace", NULL, "web" }, "u3", SW_HEALTH_HEALTHY, NULL },
		{ { "apps/v1", "Deployment", "web", "worker" }, "u4", SW_HEALTH_DEGRADED, "0/2" },
	};

	assert_int_equal(sw_store_env_upsert(f->st, "dev", "dev"), 0);
	assert_int_equal(sw_store_inventory_replace(f->st, "dev", items, 4), 0);
	assert_int_equal(sw_store_inventory_list(f->st, "dev", &l), 0);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.v[0].kind, "Deployment");
	assert_string_equal(l.v[0].name, "api");
	assert_string_equal(l.v[1].name, "worker");
	assert_string_equal(l.v[1].message, "0/2");
	assert_string_equal(l.v[2].kind, "Namespace");
	assert_string_equal(l.v[2].namespace, "");
	sw_store_inv_list_release(&l);
	assert_int_equal(sw_store_inventory_health_counts(f->st, "dev", counts), 0);
	assert_int_equal(counts[SW_HEALTH_HEALTHY], 3);
	assert_int_equal(counts[SW_HEALTH_DEGRADED], 1);
	assert_int_equal(counts[SW_HEALTH_MISSING], 0);

	/* Upsert changes one; delete removes one. */
	items[3].health = SW_HEALTH_HEALTHY;
	items[3].message = NULL;
	assert_int_equal(sw_store_inventory_upsert(f->st, "dev", &items[3]), 0);
	assert_int_equal(sw_store_inventory_delete(f->st, "dev", &items[1].ref), 0);
	assert_int_equal(sw_store_inventory_delete(f->st, "dev", &items[1].ref), SW_ENOTFOUND);
	assert_int_equal(sw_store_inventory_health_counts(f->st, "dev", counts), 0);
	assert_int_equal(counts[SW_HEALTH_HEALTHY], 3);
	assert_int_equal(counts[SW_HEALTH_DEGRADED], 0);

	/* Replace drops what is not in the new set; a failure changes nothing. */
	assert_int_equal(sw_store_inventory_replace(f->st, "dev", items, 1), 0);
	assert_int_equal(sw_store_inventory_list(f->st, "dev", &l), 0);
	assert_int_equal(l.n, 1);
	sw_store_inv_list_release(&l);
	struct sw_store_inv_in broken[] = {
		items[1],
		{ { "v1", NULL, "web", "x" }, NULL, SW_HEALTH_UNKNOWN, NULL },
	};
	assert_int_equal(sw_store_inventory_replace(f->st, "dev", broken, 2), SW_EINVALID);
	assert_int_equal(sw_store_inventory_list(f->st, "dev", &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.v[0].uid, "u1");
	sw_store_inv_list_release(&l);

	/* Inside a caller's transaction it is a savepoint: the caller decides. */
	assert_int_equal(sw_store_begin(f->st), 0);
	assert_int_equal(sw_store_inventory_replace(f->st, "dev", broken, 2), SW_EINVALID);
	assert_true(sw_store_in_transaction(f->st));
	assert_int_equal(sw_store_inventory_replace(f->st, "dev", items, 3), 0);
	assert_int_equal(sw_store_rollback(f->st), 0);
	assert_int_equal(sw_store_inventory_list(f->st, "dev", &l), 0);
	assert_int_equal(l.n, 1);
	sw_store_inv_list_release(&l);
	assert_int_equal(sw_store_inventory_replace(f->st, "unknown-env", items, 1), SW_EINVALID);
}

static void test_drift(void **state)
{
	struct fx *f = *state;
	struct sw_store_drift d = { 0 };
	struct sw_store_drift_list l = { 0 };
	struct sw_store_drift_in in = {
		.environment = "dev",
		.ref = { "apps/v1", "Deployment", "web", "api" },
		.fields = "[\"spec.replicas\"]", .manager = "kubectl-edit",
		.action = SW_DRIFT_HEALED,
	};
	int64_t a, b;

	assert_int_equal(sw_store_env_upsert(f->st, "dev", "dev"), 0);
	assert_int_equal(sw_store_drift_latest(f->st, "dev", &d), SW_ENOTFOUND);
	assert_int_equal(sw_store_drift_insert(f->st, &a, &in), 0);
	in.action = SW_DRIFT_HEAL_FAILED;
	in.message = "conflict";
	in.sync_id = 42;
	in.detected_at = 777;
	assert_int_equal(sw_store_drift_insert(f->st, &b, &in), 0);
	assert_int_equal(sw_store_drift_latest(f->st, "dev", &d), 0);
	assert_int_equal(d.id, b);
	assert_int_equal(d.action, SW_DRIFT_HEAL_FAILED);
	assert_int_equal(d.sync_id, 42);
	assert_int_equal(d.detected_at, 777);
	assert_string_equal(d.fields, "[\"spec.replicas\"]");
	assert_string_equal(d.manager, "kubectl-edit");
	sw_store_drift_release(&d);
	assert_int_equal(sw_store_drift_list(f->st, "dev", 10, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.v[0].id, b);
	assert_int_equal(l.v[1].id, a);
	assert_int_equal(l.v[1].sync_id, 0);
	assert_true(l.v[1].detected_at > 0);
	sw_store_drift_list_release(&l);
	assert_int_equal(sw_store_drift_list(f->st, "dev", 1, &l), 0);
	assert_int_equal(l.n, 1);
	sw_store_drift_list_release(&l);
}

/* ------------------------------------------------------------------ */
/* Outbox                                                              */
/* ------------------------------------------------------------------ */

static void test_outbox(void **state)
{
	struct fx *f = *state;
	struct sw_store_outbox o = { 0 };
	struct sw_store_outbox_list l = { 0 };
	int64_t a, a2, b, c, depth, age;
	int pending = -1;
	int64_t now = sw_now_ms();

	assert_int_equal(sw_store_outbox_enqueue(f->st, &a, SW_OUTBOX_GITHUB, "pr_comment",
						 "gh:comment:run:1", "{\"v\":1}"), 0);
	assert_int_equal(sw_store_outbox_enqueue(f->st, &b, SW_OUTBOX_SLACK, "chat",
						 "slack:run:1:done", "{\"text\":\"done\"}"), 0);
	/* Updates to one comment coalesce into the pending row. */
	assert_int_equal(sw_store_outbox_enqueue(f->st, &a2, SW_OUTBOX_GITHUB, "pr_comment",
						 "gh:comment:run:1", "{\"v\":2}"), 0);
	assert_int_equal(a2, a);
	assert_int_equal(sw_store_outbox_enqueue(f->st, NULL, SW_OUTBOX_GITHUB, "x", "", "{}"),
			 SW_EINVALID);

	assert_int_equal(sw_store_outbox_due(f->st, now + 1000, 10, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.v[0].id, a);  /* oldest first */
	assert_string_equal(l.v[0].payload, "{\"v\":2}");
	assert_int_equal(l.v[0].rev, 2);
	assert_int_equal(l.v[0].target, SW_OUTBOX_GITHUB);
	assert_int_equal(l.v[1].target, SW_OUTBOX_SLACK);
	assert_int_equal(l.v[1].state, SW_OUTBOX_PENDING);
	sw_store_outbox_list_release(&l);
	assert_int_equal(sw_store_outbox_due_target(f->st, SW_OUTBOX_SLACK, now + 1000, 10, &l), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.v[0].id, b);
	sw_store_outbox_list_release(&l);
	assert_int_equal(sw_store_outbox_due(f->st, now - 100000, 10, &l), 0);
	assert_int_equal(l.n, 0);
	sw_store_outbox_list_release(&l);

	assert_int_equal(sw_store_outbox_stats(f->st, now + 5000, &depth, &age), 0);
	assert_int_equal(depth, 2);
	assert_true(age >= 5000 - 1000 && age <= 5000 + 1000);

	/* Slack fails twice, then is due again only after its backoff. */
	assert_int_equal(sw_store_outbox_mark_failed(f->st, b, "HTTP 503", now + 60000), 0);
	assert_int_equal(sw_store_outbox_mark_failed(f->st, b, "HTTP 503", now + 120000), 0);
	assert_int_equal(sw_store_outbox_due(f->st, now + 1000, 10, &l), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.v[0].id, a);
	sw_store_outbox_list_release(&l);
	assert_int_equal(sw_store_outbox_due(f->st, now + 120000, 10, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(l.v[1].attempts, 2);
	assert_string_equal(l.v[1].last_error, "HTTP 503");
	sw_store_outbox_list_release(&l);
	assert_int_equal(sw_store_outbox_mark_dead(f->st, b, "gave up after 2 attempts"), 0);
	assert_int_equal(sw_store_outbox_get(f->st, b, &o), 0);
	assert_int_equal(o.state, SW_OUTBOX_DEAD);
	assert_string_equal(o.last_error, "gave up after 2 attempts");
	sw_store_outbox_release(&o);
	assert_int_equal(sw_store_outbox_mark_failed(f->st, b, "x", now), SW_ENOTFOUND);

	/* The comment's send of rev 2 is in flight when rev 3 arrives. */
	assert_int_equal(sw_store_outbox_enqueue(f->st, NULL, SW_OUTBOX_GITHUB, "pr_comment",
						 "gh:comment:run:1", "{\"v\":3}"), 0);
	assert_int_equal(sw_store_outbox_mark_sent(f->st, a, 2, "{\"comment_id\":99}",
						   &pending), 0);
	assert_true(pending);
	assert_int_equal(sw_store_outbox_get_by_key(f->st, "gh:comment:run:1", &o), 0);
	assert_int_equal(o.state, SW_OUTBOX_PENDING);
	assert_int_equal(o.rev, 3);
	assert_string_equal(o.result, "{\"comment_id\":99}");
	sw_store_outbox_release(&o);
	assert_int_equal(sw_store_outbox_mark_sent(f->st, a, 3, NULL, &pending), 0);
	assert_false(pending);
	assert_int_equal(sw_store_outbox_mark_sent(f->st, a, 3, NULL, &pending), SW_EINVALID);
	assert_int_equal(sw_store_outbox_get(f->st, a, &o), 0);
	assert_int_equal(o.state, SW_OUTBOX_SENT);
	assert_string_equal(o.result, "{\"comment_id\":99}");
	sw_store_outbox_release(&o);

	/* A replay after a crash sends nothing twice. */
	assert_int_equal(sw_store_outbox_enqueue(f->st, &c, SW_OUTBOX_GITHUB, "pr_comment",
						 "gh:comment:run:1", "{\"v\":3}"), 0);
	assert_int_equal(c, a);
	assert_int_equal(sw_store_outbox_enqueue(f->st, &c, SW_OUTBOX_SLACK, "chat",
						 "slack:run:1:done", "{\"text\":\"done\"}"), 0);
	assert_int_equal(c, b);
	assert_int_equal(sw_store_outbox_stats(f->st, now, &depth, &age), 0);
	assert_int_equal(depth, 0);
	assert_int_equal(age, 0);

	/* A later change to the sent comment edits it: pending again, result kept. */
	assert_int_equal(sw_store_outbox_enqueue(f->st, &c, SW_OUTBOX_GITHUB, "pr_comment",
						 "gh:comment:run:1", "{\"v\":4}"), 0);
	assert_int_equal(c, a);
	assert_int_equal(sw_store_outbox_get(f->st, a, &o), 0);
	assert_int_equal(o.state, SW_OUTBOX_PENDING);
	assert_int_equal(o.attempts, 0);
	assert_string_equal(o.result, "{\"comment_id\":99}");
	assert_int_equal(o.rev, 4);
	sw_store_outbox_release(&o);
	assert_int_equal(sw_store_outbox_get_by_key(f->st, "nope", &o), SW_ENOTFOUND);
}

/* ------------------------------------------------------------------ */
/* Crash safety                                                        */
/* ------------------------------------------------------------------ */

static void test_crash_keeps_committed(void **state)
{
	struct fx *f = *state;
	char *data = path_in(f, "crash");
	struct sw_store *st = NULL;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct sw_store_delivery_in in = { .guid = "kept", .event = "push" };
		int64_t id;
		if (sw_store_open(&st, data) || sw_store_delivery_insert(st, &id, &in) ||
		    sw_store_begin(st) || sw_store_kv_set(st, "batch", "1"))
			_exit(2);
		for (int i = 0; i < 100; i++) {
			char guid[16];
			snprintf(guid, sizeof(guid), "batch-%d", i);
			in.guid = guid;
			if (sw_store_delivery_insert(st, &id, &in))
				_exit(3);
		}
		if (sw_store_commit(st))
			_exit(4);
		/* Written but never committed: must vanish. */
		in.guid = "lost";
		if (sw_store_begin(st) || sw_store_delivery_insert(st, &id, &in))
			_exit(5);
		_exit(0);  /* no close, no checkpoint */
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	assert_int_equal(sw_store_open(&st, data), 0);
	struct sw_store_delivery_list l = { 0 };
	assert_int_equal(sw_store_deliveries_queued(st, &l), 0);
	assert_int_equal(l.n, 101);
	assert_string_equal(l.v[0].guid, "kept");
	for (size_t i = 0; i < l.n; i++)
		assert_string_not_equal(l.v[i].guid, "lost");
	sw_store_delivery_list_release(&l);
	char *v = NULL;
	assert_int_equal(sw_store_kv_get(st, "batch", &v), 0);
	free(v);
	sw_store_close(st);
	free(data);
}

/* A second handle (a worker's) reads while the loop's handle writes. */
static void test_two_handles(void **state)
{
	struct fx *f = *state;
	struct sw_store *worker = NULL;
	char *data = path_in(f, "data");
	char *v = NULL;

	assert_int_equal(sw_store_open(&worker, data), 0);
	assert_int_equal(sw_store_kv_set(f->st, "a", "1"), 0);
	assert_int_equal(sw_store_begin(f->st), 0);
	assert_int_equal(sw_store_kv_set(f->st, "a", "2"), 0);
	/* The reader is not blocked and sees the last commit. */
	assert_int_equal(sw_store_kv_get(worker, "a", &v), 0);
	assert_string_equal(v, "1");
	free(v);
	assert_int_equal(sw_store_commit(f->st), 0);
	assert_int_equal(sw_store_kv_get(worker, "a", &v), 0);
	assert_string_equal(v, "2");
	free(v);
	sw_store_close(worker);
	free(data);
}

static void test_enum_names(void **state)
{
	(void)state;
	enum sw_status s;
	enum sw_run_kind k;
	enum sw_health h;

	assert_string_equal(sw_store_status_str(SW_STATUS_INTERRUPTED), "interrupted");
	assert_string_equal(sw_store_status_str((enum sw_status)42), "?");
	assert_string_equal(sw_store_env_sync_str(SW_ENV_OUT_OF_SYNC), "out_of_sync");
	assert_string_equal(sw_store_drift_action_str(SW_DRIFT_HEAL_FAILED), "heal_failed");
	assert_int_equal(sw_store_status_parse("cancelled", &s), 0);
	assert_int_equal(s, SW_STATUS_CANCELLED);
	assert_int_equal(sw_store_run_kind_parse("pull_request", &k), 0);
	assert_int_equal(k, SW_RUN_PULL_REQUEST);
	assert_int_equal(sw_store_health_parse("sick", &h), SW_EINVALID);
	assert_true(sw_store_status_is_final(SW_STATUS_SKIPPED));
	assert_false(sw_store_status_is_final(SW_STATUS_RUNNING));
}

/* API tokens: insert, a name unique among live tokens, revoke, touch; the
 * audit log: started then finished, filters and paging newest first. */
static void test_tokens_and_audit(void **state)
{
	struct fx *f = *state;
	struct sw_store_token t = { .id = "00000000000000aa", .name = "ci", .role = "deployer",
		.environments = "dev", .created_by = "api_token", .created_at = 1000,
		.expires_at = 5000 }, got = { 0 };
	struct sw_store_token_list tl = { 0 };
	struct sw_store_audit_list al = { 0 };
	struct sw_store_audit_filter flt = SW_STORE_AUDIT_FILTER_INIT;
	int64_t id = 0;

	sw_buf_add(&t.hash, "0123456789abcdef0123456789abcdef", 32);
	assert_int_equal(sw_store_token_insert(f->st, &t), 0);
	assert_int_equal(sw_store_token_get(f->st, "00000000000000aa", &got), 0);
	assert_string_equal(got.name, "ci");
	assert_string_equal(got.environments, "dev");
	assert_int_equal(got.hash.len, 32);
	assert_int_equal(got.expires_at, 5000);
	assert_int_equal(got.last_used_at, 0);
	sw_store_token_release(&got);
	/* the same name while the first lives: refused; another id */
	t.id = "00000000000000bb";
	assert_int_equal(sw_store_token_insert(f->st, &t), SW_EEXISTS);
	assert_non_null(strstr(sw_error_last(), "a token named ci exists already"));
	/* a bad role is refused by the table */
	t.name = "odd";
	t.role = "root";
	assert_int_equal(sw_store_token_insert(f->st, &t), SW_EINVALID);
	assert_int_equal(sw_store_token_touch(f->st, "00000000000000aa", 100000), 0);
	assert_int_equal(sw_store_token_touch(f->st, "00000000000000aa", 100001), 0);
	assert_int_equal(sw_store_token_get(f->st, "00000000000000aa", &got), 0);
	assert_int_equal(got.last_used_at, 100000);   /* at most once a minute */
	sw_store_token_release(&got);
	assert_int_equal(sw_store_token_revoke(f->st, "00000000000000aa", "boss", 7000), 0);
	assert_int_equal(sw_store_token_revoke(f->st, "00000000000000aa", "boss", 7001), SW_EEXISTS);
	assert_int_equal(sw_store_token_revoke(f->st, "nope", "boss", 7001), SW_ENOTFOUND);
	assert_int_equal(sw_store_token_get(f->st, "nope", &got), SW_ENOTFOUND);
	/* revoked: the name is free again */
	t.name = "ci";
	t.role = "viewer";
	assert_int_equal(sw_store_token_insert(f->st, &t), 0);
	assert_int_equal(sw_store_token_list(f->st, &tl), 0);
	assert_int_equal(tl.n, 2);
	assert_int_equal(tl.v[0].revoked_at + tl.v[1].revoked_at, 7000);
	sw_store_token_list_release(&tl);
	sw_buf_release(&t.hash);

	struct sw_store_audit row = { .at = 10, .actor = "ci", .actor_kind = "token",
		.token_id = "00000000000000aa", .client = "10.0.0.1", .action = "sync",
		.target = "dev", .outcome = "started" };
	assert_int_equal(sw_store_audit_insert(f->st, &id, &row), 0);
	assert_true(id > 0);
	assert_int_equal(sw_store_audit_finish(f->st, id, "ok", "run 3"), 0);
	row.at = 20;
	row.target = "prod";
	row.outcome = "refused";
	row.reason = "sync of prod needs the deployer role on prod";
	assert_int_equal(sw_store_audit_insert(f->st, NULL, &row), 0);
	struct sw_store_audit other = { .at = 30, .actor = "api_token", .actor_kind = "api_token",
		.action = "token.revoke", .target = "00000000000000aa", .outcome = "ok" };
	assert_int_equal(sw_store_audit_insert(f->st, NULL, &other), 0);
	other.outcome = "maybe";
	assert_int_equal(sw_store_audit_insert(f->st, NULL, &other), SW_EINVALID);
	other.outcome = "ok";
	other.actor_kind = "robot";
	assert_int_equal(sw_store_audit_insert(f->st, NULL, &other), SW_EINVALID);

	assert_int_equal(sw_store_audit_list(f->st, &flt, &al), 0);
	assert_int_equal(al.n, 3);
	assert_string_equal(al.v[0].action, "token.revoke");   /* newest first */
	assert_null(al.v[0].client);
	assert_string_equal(al.v[2].outcome, "ok");
	assert_string_equal(al.v[2].reason, "run 3");
	sw_store_audit_list_release(&al);
	flt.actor = "ci";
	flt.action = "sync";
	flt.since = 15;
	assert_int_equal(sw_store_audit_list(f->st, &flt, &al), 0);
	assert_int_equal(al.n, 1);
	assert_string_equal(al.v[0].target, "prod");
	sw_store_audit_list_release(&al);
	flt = (struct sw_store_audit_filter)SW_STORE_AUDIT_FILTER_INIT;
	flt.limit = 1;
	flt.before_id = id + 1;
	assert_int_equal(sw_store_audit_list(f->st, &flt, &al), 0);
	assert_int_equal(al.n, 1);
	assert_int_equal(al.v[0].id, id);
	sw_store_audit_list_release(&al);

	/* retention.audit: the newest row kept by count, then all by age */
	struct sw_store_retention pol = { .audit_keep = 1 };
	struct sw_store_retention_result res = { 0 };
	int more = 0;
	assert_int_equal(sw_store_retention_step(f->st, &pol, 1000, &res, &more), 0);
	assert_int_equal(res.audit, 2);
	flt = (struct sw_store_audit_filter)SW_STORE_AUDIT_FILTER_INIT;
	assert_int_equal(sw_store_audit_list(f->st, &flt, &al), 0);
	assert_int_equal(al.n, 1);
	assert_string_equal(al.v[0].action, "token.revoke");
	sw_store_audit_list_release(&al);
	pol = (struct sw_store_retention){ .audit_age_ms = 10 };
	assert_int_equal(sw_store_retention_step(f->st, &pol, 1000, &res, &more), 0);
	assert_int_equal(res.audit, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tokens_and_audit, setup_store, teardown),
		cmocka_unit_test_setup_teardown(test_open_fresh, setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_open_while_locked, setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_migrations_and_newer_refused, setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_failed_migration_leaves_nothing, setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_unwritable_dir, setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_database, setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_transactions, setup_store, teardown),
		cmocka_unit_test_setup_teardown(test_deliveries, setup_store, teardown),
		cmocka_unit_test_setup_teardown(test_delivery_replays, setup_store, teardown),
		cmocka_unit_test_setup_teardown(test_runs, setup_store, teardown),
		cmocka_unit_test_setup_teardown(test_run_latest_head, setup_store, teardown),
		cmocka_unit_test_setup_teardown(test_runs_many_fast, setup_store, teardown),
		cmocka_unit_test_setup_teardown(test_stages_and_logs, setup_store, teardown),
		cmocka_unit_test_setup_teardown(test_environments, setup_store, teardown),
		cmocka_unit_test_setup_teardown(test_syncs, setup_store, teardown),
		cmocka_unit_test_setup_teardown(test_sync_infra_outputs, setup_store, teardown),
		cmocka_unit_test_setup_teardown(test_inventory, setup_store, teardown),
		cmocka_unit_test_setup_teardown(test_drift, setup_store, teardown),
		cmocka_unit_test_setup_teardown(test_outbox, setup_store, teardown),
		cmocka_unit_test_setup_teardown(test_crash_keeps_committed, setup_dir, teardown),
		cmocka_unit_test_setup_teardown(test_two_handles, setup_store, teardown),
		cmocka_unit_test(test_enum_names),
	};
	sw_log_set_level(SW_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
