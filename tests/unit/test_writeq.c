/*
 * test_writeq.c - pipeline/writeq.c against a real SQLite file whose write
 * lock a second connection holds (BEGIN EXCLUSIVE), as another process
 * would: writes wait in order, the loop is not held, and once the lock goes
 * every write lands once, in order.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "pipeline/engine-int.h"
#include "pipeline/pipeline.h"
#include "storage/store.h"
#include "tests/unit/scratch.h"
#include "tests/unit/slow.h"

struct fx {
	char dir[64];
	struct sw_store *st;
	struct event_base *base;
	struct sw_writeq *q;
	sqlite3 *other;        /* the "other process" */
	int done, released;
};

/* One write: append `c` to kv "order", so the test sees the order of commits. */
struct w {
	struct fx *f;
	char c;
	int refuse;            /* fail for good (not retried) */
};

static int setup(void **state)
{
	struct fx *f = sw_calloc(1, sizeof(*f));
	struct sw_store_opts o = SW_STORE_OPTS_INIT;
	if (sw_test_tmpdir(f->dir, sizeof(f->dir), "writeq") < 0)
		return -1;
	o.busy_timeout_ms = 10;
	if (sw_store_open_opts(&f->st, f->dir, &o) < 0)
		return -1;
	f->base = event_base_new();
	sw_writeq_new(&f->q, f->base, f->st);
	if (sqlite3_open(sw_store_path(f->st), &f->other) != SQLITE_OK)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	sqlite3_close(f->other);
	sw_writeq_free(f->q);
	event_base_free(f->base);
	sw_store_close(f->st);
	sw_test_rmtree(f->dir);
	free(f);
	return 0;
}

static int w_apply(struct sw_store *st, void *arg)
{
	struct w *w = arg;
	char *cur = NULL, buf[64];
	int rc;
	if (w->refuse)
		return 0;   /* logged and dropped, as an engine write refused for good */
	rc = sw_store_kv_get(st, "order", &cur);
	if (rc < 0 && rc != SW_ENOTFOUND)
		return rc;
	snprintf(buf, sizeof(buf), "%s%c", cur ? cur : "", w->c);
	free(cur);
	return sw_store_kv_set(st, "order", buf);
}

static void w_done(void *arg)
{
	((struct w *)arg)->f->done++;
}

static void w_release(void *arg)
{
	((struct w *)arg)->f->released++;
	free(arg);
}

static void put(struct fx *f, char c, int refuse)
{
	struct w *w = sw_calloc(1, sizeof(*w));
	w->f = f;
	w->c = c;
	w->refuse = refuse;
	struct sw_write wr = { w_apply, w_done, w_release, w };
	sw_writeq_put(f->q, &wr);
}

/* The writes committed so far, in commit order, are `want`. */
static void assert_order(struct fx *f, const char *want)
{
	char *v = NULL;
	if (sw_store_kv_get(f->st, "order", &v) < 0)
		v = sw_strdup("");
	assert_string_equal(v, want);
	free(v);
}

static void lock(struct fx *f, int on)
{
	assert_int_equal(sqlite3_exec(f->other, on ? "BEGIN EXCLUSIVE" : "ROLLBACK", NULL, NULL,
				      NULL), SQLITE_OK);
}

/* Run the loop until the queue is empty, for at most `ms`. */
static void drain(struct fx *f, int64_t ms)
{
	int64_t end = sw_now_ms() + ms;
	while (sw_writeq_pending(f->q) && sw_now_ms() < end)
		event_base_loop(f->base, EVLOOP_ONCE);
}

static void test_direct(void **state)
{
	struct fx *f = *state;
	put(f, 'a', 0);
	put(f, 'b', 0);
	assert_int_equal(sw_writeq_pending(f->q), 0);
	assert_order(f, "ab");
	assert_int_equal(f->done, 2);
	assert_int_equal(f->released, 2);
}

static void test_locked_waits_in_order(void **state)
{
	struct fx *f = *state;
	struct sw_storage_state s;

	put(f, 'a', 0);
	lock(f, 1);
	int64_t t0 = sw_now_ms();
	put(f, 'b', 0);
	put(f, 'x', 1);
	put(f, 'c', 0);
	/* one short wait for the first, none for the writes behind it */
	assert_true(sw_now_ms() - t0 < sw_test_ms(1000));
	assert_int_equal(sw_writeq_pending(f->q), 3);
	sw_writeq_state(f->q, &s);
	assert_int_equal(s.pending_writes, 3);
	assert_true(s.since_ms >= t0);
	assert_non_null(s.error);
	assert_non_null(strstr(s.error, "locked"));
	/* retries while the lock is held change nothing */
	int64_t end = sw_now_ms() + 300;
	while (sw_now_ms() < end)
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(sw_writeq_pending(f->q), 3);
	assert_int_equal(f->done, 1);
	lock(f, 0);
	drain(f, 10000);
	assert_int_equal(sw_writeq_pending(f->q), 0);
	assert_order(f, "abc");    /* each once, in order; 'x' refused once */
	assert_int_equal(f->done, 4);
	assert_int_equal(f->released, 4);
	sw_writeq_state(f->q, &s);
	assert_int_equal(s.pending_writes, 0);
	assert_null(s.error);
}

/* A write inside the caller's transaction joins it. */
static void test_in_transaction(void **state)
{
	struct fx *f = *state;
	assert_int_equal(sw_store_begin(f->st), 0);
	put(f, 'a', 0);
	assert_int_equal(sw_store_rollback(f->st), 0);
	assert_order(f, "");
	assert_int_equal(f->done, 1);
}

/* Freed with writes unwritten: each is released once. */
static void test_free_pending(void **state)
{
	struct fx *f = *state;
	lock(f, 1);
	put(f, 'a', 0);
	put(f, 'b', 0);
	sw_writeq_free(f->q);
	f->q = NULL;
	sw_writeq_new(&f->q, f->base, f->st);
	lock(f, 0);
	assert_int_equal(f->released, 2);
	assert_int_equal(f->done, 0);
}

/* Stage transitions written late keep the time they happened. */
static void test_store_at(void **state)
{
	struct fx *f = *state;
	struct sw_store_run_in in = { .kind = SW_RUN_PUSH, .repo = "a/b", .commit_sha = "abc" };
	struct sw_store_stage sg;
	struct sw_store_run r;
	int64_t run, stage, found;

	assert_int_equal(sw_store_run_create(f->st, &run, &in), 0);
	assert_int_equal(sw_store_stage_create(f->st, &stage, run, 3, "lint", NULL), 0);
	assert_int_equal(sw_store_stage_find(f->st, run, 3, &found), 0);
	assert_int_equal(found, stage);
	assert_int_equal(sw_store_stage_find(f->st, run, 4, &found), SW_ENOTFOUND);
	assert_int_equal(found, 0);
	assert_int_equal(sw_store_stage_set_status_at(f->st, stage, SW_STATUS_RUNNING, -1, NULL,
						      1000), 0);
	assert_int_equal(sw_store_stage_set_status_at(f->st, stage, SW_STATUS_FAILURE, 3, "x",
						      2000), 0);
	assert_int_equal(sw_store_stage_get(f->st, stage, &sg), 0);
	assert_int_equal(sg.started_at, 1000);
	assert_int_equal(sg.finished_at, 2000);
	sw_store_stage_release(&sg);
	assert_int_equal(sw_store_run_set_status_at(f->st, run, SW_STATUS_RUNNING, NULL, 1500), 0);
	assert_int_equal(sw_store_run_set_status_at(f->st, run, SW_STATUS_FAILURE, NULL, 2500), 0);
	assert_int_equal(sw_store_run_get(f->st, run, &r), 0);
	assert_int_equal(r.started_at, 1500);
	assert_int_equal(r.finished_at, 2500);
	sw_store_run_release(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_direct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locked_waits_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_at, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
