/*
 * test_pool.c - worker threads hand results back to the loop thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/pool.h"

#define JOBS 200

struct ctx {
	pthread_t loop_thread;
	int worked[JOBS];
	int done_on_loop;
	int done_count;
	int work_off_loop;
	struct event_base *base;
};

struct job {
	struct ctx *c;
	int i;
};

static void work(void *arg)
{
	struct job *j = arg;
	if (!pthread_equal(pthread_self(), j->c->loop_thread))
		__atomic_add_fetch(&j->c->work_off_loop, 1, __ATOMIC_SEQ_CST);
	usleep(200);   /* something that blocks */
	j->c->worked[j->i] = 1;
}

static void done(void *arg)
{
	struct job *j = arg;
	if (pthread_equal(pthread_self(), j->c->loop_thread))
		j->c->done_on_loop++;
	assert_int_equal(j->c->worked[j->i], 1);   /* work happened before done */
	if (++j->c->done_count == JOBS)
		event_base_loopexit(j->c->base, NULL);
	free(j);
}

static void test_results_come_back_on_the_loop(void **state)
{
	struct ctx c = { .loop_thread = pthread_self() };
	struct sw_pool *p;

	c.base = event_base_new();
	assert_int_equal(sw_pool_new(&p, c.base, 4), 0);
	for (int i = 0; i < JOBS; i++) {
		struct job *j = malloc(sizeof(*j));
		j->c = &c;
		j->i = i;
		assert_int_equal(sw_pool_submit(p, work, done, j), 0);
	}
	assert_true(sw_pool_pending(p) > 0);
	event_base_dispatch(c.base);
	assert_int_equal(c.done_count, JOBS);
	assert_int_equal(c.done_on_loop, JOBS);
	assert_int_equal(c.work_off_loop, JOBS);
	assert_int_equal(sw_pool_pending(p), 0);
	sw_pool_free(p);
	event_base_free(c.base);
}

static void test_free_drains_queued_work(void **state)
{
	struct ctx c = { .loop_thread = pthread_self() };
	struct sw_pool *p;

	c.base = event_base_new();
	assert_int_equal(sw_pool_new(&p, c.base, 2), 0);
	for (int i = 0; i < JOBS; i++) {
		struct job *j = malloc(sizeof(*j));
		j->c = &c;
		j->i = i;
		assert_int_equal(sw_pool_submit(p, work, done, j), 0);
	}
	/* no loop run at all: freeing must still finish every job and call done */
	sw_pool_free(p);
	assert_int_equal(c.done_count, JOBS);
	for (int i = 0; i < JOBS; i++)
		assert_int_equal(c.worked[i], 1);
	event_base_free(c.base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_results_come_back_on_the_loop),
		cmocka_unit_test(test_free_drains_queued_work),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
