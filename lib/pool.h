/*
 * pool.h - a small pool of worker threads for work that blocks (libgit2,
 * long SQLite work, parsing a large manifest tree), reporting back to the
 * event loop.
 *
 *   work(arg)  runs on a worker thread; it must not touch loop-owned state.
 *   done(arg)  runs afterwards on the loop thread, in completion order.
 *
 * Workers hand finished jobs back through a pipe watched by the loop (the
 * memcached way), so no libevent locking is needed.
 */
#ifndef SW_POOL_H
#define SW_POOL_H

#include <event2/event.h>

#include "lib/error.h"

struct sw_pool;

typedef void (*sw_pool_fn)(void *arg);

/* Start `nthreads` workers whose results are delivered on `base`. */
int sw_pool_new(struct sw_pool **out, struct event_base *base, int nthreads);

/*
 * Queue a job. `work` must not be NULL; `done` may be. Returns SW_ECANCELLED
 * once the pool is shutting down (nothing is queued then).
 */
int sw_pool_submit(struct sw_pool *p, sw_pool_fn work, sw_pool_fn done, void *arg);

/* Jobs queued or running (not yet handed back), for metrics and shutdown. */
int sw_pool_pending(struct sw_pool *p);

/*
 * Stop taking jobs, let the queued and running ones finish, run their
 * `done` callbacks, join the threads and free the pool. Call on the loop
 * thread. NULL is a no-op.
 */
void sw_pool_free(struct sw_pool *p);

#endif
