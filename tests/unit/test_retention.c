/*
 * test_retention.c - storage/retention.c against real SQLite files: old rows
 * removed by age and by count in small batches, what must stay stays, the
 * file shrinks, an old file switches to incremental vacuum, and the online
 * backup is a consistent, usable copy while another handle writes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "storage/store.h"
#include "storage/store-int.h"
#include "tests/unit/scratch.h"

#define DAY (86400LL * 1000)

struct fx {
	char dir[64];
	char *data;
	struct sw_store *st;
};

static int setup(void **state)
{
	struct fx *f = sw_calloc(1, sizeof(*f));
	if (sw_test_tmpdir(f->dir, sizeof(f->dir), "ret") < 0)
		return -1;
	f->data = sw_asprintf("%s/data", f->dir);
	*state = f;
	if (sw_store_open(&f->st, f->data) < 0) {
		fprintf(stderr, "open: %s\n", sw_error_last());
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	sw_store_close(f->st);
	sw_test_rmtree(f->dir);
	free(f->data);
	free(f);
	return 0;
}

static void sql(struct sw_store *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *q = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	char *err = NULL;
	if (sqlite3_exec(st->db, q, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", q, err);
	sqlite3_free(q);
}

static int64_t count(struct sw_store *st, const char *fmt, ...)
{
	va_list ap;
	sqlite3_stmt *s;
	va_start(ap, fmt);
	char *q = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	assert_int_equal(sqlite3_prepare_v2(st->db, q, -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_free(q);
	return v;
}

/* A finished run `age` ms old with two stages of `lines` log chunks each. */
static int64_t old_run(struct sw_store *st, int64_t now, int64_t age, const char *env,
		       const char *kind, const char *status, int lines)
{
	int64_t at = now - age;
	sql(st, "INSERT INTO runs (kind, repo, commit_sha, environment, status, created_at, "
	    "finished_at) VALUES (%Q, 'o/r', 'abc', %Q, %Q, %lld, %lld)", kind, env, status,
	    (long long)at, (long long)at + 1000);
	int64_t run = sqlite3_last_insert_rowid(st->db);
	for (int i = 0; i < 2; i++) {
		sql(st, "INSERT INTO stages (run_id, idx, name, status) VALUES (%lld, %d, 's%d', %Q)",
		    (long long)run, i, i, status);
		int64_t stage = sqlite3_last_insert_rowid(st->db);
		sql(st, "WITH RECURSIVE n(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM n WHERE k < %d) "
		    "INSERT INTO log_chunks (stage_id, seq, off, len, ts, data) "
		    "SELECT %lld, k, k * 200, 200, %lld, randomblob(200) FROM n",
		    lines - 1, (long long)stage, (long long)at);
	}
	return run;
}

static void run_all(struct sw_store *st, const struct sw_store_retention *pol, int64_t now,
		    struct sw_store_retention_result *res, int *steps)
{
	int more = 1;
	*steps = 0;
	while (more) {
		assert_int_equal(sw_store_retention_step(st, pol, now, res, &more), 0);
		(*steps)++;
		assert_true(*steps < 10000);
	}
}

static void test_runs_by_age_keep_what_pages_need(void **state)
{
	struct fx *f = *state;
	struct sw_store *st = f->st;
	int64_t now = sw_now_ms(), sync_id;
	struct sw_store_retention pol = { .runs_age_ms = 365 * DAY, .logs_age_ms = 90 * DAY,
					  .batch = 50 };
	struct sw_store_retention_result res = { 0 };
	int steps;

	assert_int_equal(sw_store_env_upsert(st, "prod", "main"), 0);
	/* 60 old push runs of prod, the oldest the last healthy deploy */
	int64_t healthy = old_run(st, now, 800 * DAY, "prod", "push", "success", 10);
	assert_int_equal(sw_store_sync_start(st, &sync_id, "prod", "abc", SW_TRIGGER_MERGE,
					     healthy), 0);
	assert_int_equal(sw_store_sync_finish(st, sync_id, SW_SYNC_SUCCESS, SW_HEALTH_HEALTHY,
					      "ok"), 0);
	int64_t first_doomed = 0;
	for (int i = 0; i < 60; i++) {
		int64_t id = old_run(st, now, (700 - i) * DAY, "prod", "push", "failure", 10);
		if (!first_doomed)
			first_doomed = id;
	}
	/* a pull request run still running after two years: an active run stays */
	int64_t running = old_run(st, now, 730 * DAY, NULL, "pull_request", "running", 3);
	/* a run younger than a year whose logs are past 90 days */
	int64_t old_logs = old_run(st, now, 120 * DAY, NULL, "pull_request", "success", 10);
	/* the same age, but the newest of its kind: the page shows it, logs too */
	int64_t newest = old_run(st, now, 120 * DAY, "prod", "manual", "success", 10);
	/* recent runs stay whole */
	int64_t recent = old_run(st, now, 10 * DAY, "prod", "push", "success", 10);

	run_all(st, &pol, now, &res, &steps);
	assert_true(steps > 2);   /* batches, not one big delete */
	assert_int_equal(res.runs, 60);
	assert_int_equal(res.stages, 120);
	assert_int_equal(res.log_chunks, 60 * 2 * 10 + 2 * 10);
	assert_int_equal(count(st, "SELECT count(*) FROM runs WHERE id = %lld", first_doomed), 0);
	/* the last healthy deploy's run, with its stages and logs */
	assert_int_equal(count(st, "SELECT count(*) FROM runs WHERE id = %lld", healthy), 1);
	assert_int_equal(count(st, "SELECT count(*) FROM log_chunks l JOIN stages s ON "
			       "s.id = l.stage_id WHERE s.run_id = %lld", healthy), 20);
	assert_int_equal(count(st, "SELECT count(*) FROM runs WHERE id = %lld", running), 1);
	/* kept, logs gone */
	assert_int_equal(count(st, "SELECT count(*) FROM stages WHERE run_id = %lld", old_logs), 2);
	assert_int_equal(count(st, "SELECT count(*) FROM log_chunks l JOIN stages s ON "
			       "s.id = l.stage_id WHERE s.run_id = %lld", old_logs), 0);
	assert_int_equal(count(st, "SELECT count(*) FROM log_chunks l JOIN stages s ON "
			       "s.id = l.stage_id WHERE s.run_id = %lld", recent), 20);
	assert_int_equal(count(st, "SELECT count(*) FROM log_chunks l JOIN stages s ON "
			       "s.id = l.stage_id WHERE s.run_id = %lld", newest), 20);

	/* a second pass finds nothing more */
	struct sw_store_retention_result again = { 0 };
	run_all(st, &pol, now, &again, &steps);
	assert_int_equal(steps, 1);
	assert_int_equal(again.runs + again.stages + again.log_chunks, 0);
}

static void test_counts_deliveries_drift_outbox(void **state)
{
	struct fx *f = *state;
	struct sw_store *st = f->st;
	int64_t now = sw_now_ms();
	struct sw_store_retention pol = { .runs_keep = 5, .deliveries_age_ms = 30 * DAY,
					  .drift_keep = 3, .outbox_age_ms = 30 * DAY, .batch = 7 };
	struct sw_store_retention_result res = { 0 };
	int steps;

	assert_int_equal(sw_store_env_upsert(st, "prod", "main"), 0);
	assert_int_equal(sw_store_env_upsert(st, "staging", "main"), 0);
	for (int i = 0; i < 20; i++)
		old_run(st, now, DAY, NULL, "pull_request", "success", 1);
	for (int i = 0; i < 40; i++)
		sql(st, "INSERT INTO deliveries (guid, event, received_at, body, state) VALUES "
		    "('g%d', 'push', %lld, randomblob(300), %Q)", i,
		    (long long)(now - (i < 30 ? 40 : 1) * DAY), i == 0 ? "queued" : "mapped");
	/* staging's only drift event is old: it stays (the open drift) */
	sql(st, "INSERT INTO drift_events (environment, api_version, kind, name, detected_at, "
	    "action) VALUES ('staging', 'v1', 'ConfigMap', 'c', 1, 'reported')");
	for (int i = 0; i < 10; i++)
		sql(st, "INSERT INTO drift_events (environment, api_version, kind, name, "
		    "detected_at, action) VALUES ('prod', 'v1', 'ConfigMap', 'c', %lld, 'healed')",
		    (long long)(now - i));
	for (int i = 0; i < 10; i++)
		sql(st, "INSERT INTO outbox (target, kind, idempotency_key, payload, created_at, "
		    "enqueued_at, next_attempt_at, state) VALUES ('github', 'commit_status', "
		    "'k%d', '{}', %lld, %lld, 0, %Q)", i, (long long)(now - 40 * DAY),
		    (long long)(now - 40 * DAY), i < 8 ? "sent" : "pending");

	run_all(st, &pol, now, &res, &steps);
	assert_int_equal(res.runs, 15);
	assert_int_equal(count(st, "SELECT count(*) FROM runs"), 5);
	assert_int_equal(res.deliveries, 29);   /* 30 old, one of them queued */
	assert_int_equal(count(st, "SELECT count(*) FROM deliveries WHERE guid = 'g0'"), 1);
	assert_int_equal(count(st, "SELECT count(*) FROM deliveries"), 11);
	/* newest 3 kept by count, and staging's newest however old */
	assert_int_equal(res.drift_events, 7);
	assert_int_equal(count(st, "SELECT count(*) FROM drift_events WHERE environment = "
			       "'staging'"), 1);
	assert_int_equal(res.outbox, 8);
	assert_int_equal(count(st, "SELECT count(*) FROM outbox WHERE state = 'pending'"), 2);
}

static int64_t file_size(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 ? sb.st_size : -1;
}

static void test_file_shrinks(void **state)
{
	struct fx *f = *state;
	struct sw_store *st = f->st;
	int64_t now = sw_now_ms(), freed = 0, left = -1;
	struct sw_store_retention pol = { .runs_age_ms = DAY, .batch = 500 };
	struct sw_store_retention_result res = { 0 };
	int steps;

	assert_int_equal(count(st, "PRAGMA auto_vacuum"), 2);
	for (int i = 0; i < 100; i++)
		old_run(st, now, 2 * DAY, NULL, "pull_request", "success", 20);
	sql(st, "PRAGMA wal_checkpoint(TRUNCATE)");
	int64_t big = file_size(sw_store_path(st));
	run_all(st, &pol, now, &res, &steps);
	assert_int_equal(res.runs, 100);
	do
		assert_int_equal(sw_store_vacuum_step(st, 100, &freed, &left), 0);
	while (left > 0);
	sql(st, "PRAGMA wal_checkpoint(TRUNCATE)");
	int64_t small = file_size(sw_store_path(st));
	assert_true(freed > 0);
	assert_true(small < big / 4);
}

static void test_old_file_switches_to_incremental(void **state)
{
	struct fx *f = *state;
	sqlite3 *db;

	sw_store_close(f->st);
	f->st = NULL;
	char *path = sw_asprintf("%s/slipway.db", f->data);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA auto_vacuum = NONE; VACUUM;", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(sw_store_open(&f->st, f->data), 0);
	assert_int_equal(count(f->st, "PRAGMA auto_vacuum"), 2);
	free(path);
}

struct writer {
	const char *data;
	volatile int stop;
	int64_t rows;
};

static void *write_loop(void *arg)
{
	struct writer *w = arg;
	struct sw_store *st;
	int64_t id;
	if (sw_store_open(&st, w->data) < 0)
		return NULL;
	while (!w->stop) {
		struct sw_store_delivery_in in = { .event = "push", .body = "{}", .body_len = 2 };
		char guid[32];
		snprintf(guid, sizeof(guid), "w%lld", (long long)w->rows);
		in.guid = guid;
		if (sw_store_delivery_insert(st, &id, &in) == 0)
			w->rows++;
	}
	sw_store_close(st);
	return NULL;
}

static void test_backup_while_writing(void **state)
{
	struct fx *f = *state;
	struct writer w = { .data = f->data };
	pthread_t t;
	int64_t bytes = 0, now = sw_now_ms();

	for (int i = 0; i < 50; i++)
		old_run(f->st, now, DAY, "prod", "push", "success", 20);
	assert_int_equal(pthread_create(&t, NULL, write_loop, &w), 0);
	while (w.rows < 50)
		usleep(1000);
	char *dest = sw_asprintf("%s/backup.db", f->dir);
	int rc = sw_store_backup(f->data, dest, &bytes);
	int64_t during = w.rows;
	w.stop = 1;
	pthread_join(t, NULL);
	assert_int_equal(rc, 0);
	assert_true(bytes > 0);
	assert_int_equal(file_size(dest), bytes);

	/* restore: the copy is a data directory's whole database */
	char *restored = sw_asprintf("%s/restored", f->dir);
	char *db = sw_asprintf("%s/slipway.db", restored);
	assert_int_equal(mkdir(restored, 0700), 0);
	assert_int_equal(rename(dest, db), 0);
	struct sw_store *r;
	assert_int_equal(sw_store_open(&r, restored), 0);
	assert_int_equal(count(r, "SELECT count(*) FROM runs"), 50);
	assert_int_equal(count(r, "SELECT count(*) FROM log_chunks"), 50 * 2 * 20);
	int64_t copied = count(r, "SELECT count(*) FROM deliveries");
	assert_true(copied >= 50 && copied <= during + 1);
	assert_string_equal(sqlite3_db_readonly(r->db, "main") ? "ro" : "rw", "rw");
	sw_store_close(r);

	/* a failed backup leaves the destination alone */
	assert_true(sw_store_backup(f->data, "/nonexistent/dir/x.db", NULL) < 0);
	assert_non_null(strstr(sw_error_last(), "/nonexistent/dir/x.db"));
	free(db);
	free(restored);
	free(dest);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_runs_by_age_keep_what_pages_need, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counts_deliveries_drift_outbox, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_shrinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_file_switches_to_incremental, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backup_while_writing, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
