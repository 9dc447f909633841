/*
 * pool.c - worker threads with completion handed back to the loop
 * through a notify pipe (see pool.h).
 */
#include "lib/pool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/log.h"

struct job {
	sw_pool_fn work, done;
	void *arg;
	struct job *next;
};

struct sw_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *queue_head, *queue_tail;   /* waiting for a worker */
	struct job *done_head, *done_tail;     /* finished, waiting for the loop */
	int pending;
	int stopping;
	int nthreads;
	pthread_t *threads;
	int notify[2];
	struct event *ev;
};

static void *worker(void *arg)
{
	struct sw_pool *p = arg;
	for (;;) {
		pthread_mutex_lock(&p->lock);
		while (!p->queue_head && !p->stopping)
			pthread_cond_wait(&p->cond, &p->lock);
		struct job *j = p->queue_head;
		if (!j) {   /* stopping and nothing left */
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		p->queue_head = j->next;
		if (!p->queue_head)
			p->queue_tail = NULL;
		pthread_mutex_unlock(&p->lock);

		j->work(j->arg);

		pthread_mutex_lock(&p->lock);
		j->next = NULL;
		if (p->done_tail)
			p->done_tail->next = j;
		else
			p->done_head = j;
		p->done_tail = j;
		pthread_mutex_unlock(&p->lock);
		char c = 1;
		while (write(p->notify[1], &c, 1) < 0 && errno == EINTR)
			;
	}
}

/* Run the `done` callbacks of finished jobs; returns how many ran. */
static int drain_done(struct sw_pool *p)
{
	struct job *list;
	int n = 0;

	pthread_mutex_lock(&p->lock);
	list = p->done_head;
	p->done_head = p->done_tail = NULL;
	pthread_mutex_unlock(&p->lock);
	while (list) {
		struct job *j = list;
		list = j->next;
		if (j->done)
			j->done(j->arg);
		free(j);
		n++;
	}
	pthread_mutex_lock(&p->lock);
	p->pending -= n;
	pthread_mutex_unlock(&p->lock);
	return n;
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	char buf[256];
	/* the pipe is non-blocking: empty it, then run what finished */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	drain_done(arg);
}

int sw_pool_new(struct sw_pool **out, struct event_base *base, int nthreads)
{
	struct sw_pool *p = sw_calloc(1, sizeof(*p));
	*out = NULL;
	if (pipe2(p->notify, O_CLOEXEC | O_NONBLOCK) < 0) {
		free(p);
		return sw_error_errno("worker pool: pipe");
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->ev = event_new(base, p->notify[0], EV_READ | EV_PERSIST, on_notify, p);
	event_add(p->ev, NULL);
	p->threads = sw_calloc((size_t)nthreads, sizeof(pthread_t));
	for (int i = 0; i < nthreads; i++) {
		int e = pthread_create(&p->threads[i], NULL, worker, p);
		if (e) {
			errno = e;
			sw_error_errno("worker pool: start thread %d", i);
			sw_pool_free(p);
			return SW_ERR;
		}
		p->nthreads++;
	}
	*out = p;
	return 0;
}

int sw_pool_submit(struct sw_pool *p, sw_pool_fn work, sw_pool_fn done, void *arg)
{
	struct job *j = sw_calloc(1, sizeof(*j));
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&p->lock);
	if (p->stopping) {
		pthread_mutex_unlock(&p->lock);
		free(j);
		return sw_error_setc(SW_ECANCELLED, "worker pool is shutting down");
	}
	if (p->queue_tail)
		p->queue_tail->next = j;
	else
		p->queue_head = j;
	p->queue_tail = j;
	p->pending++;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

int sw_pool_pending(struct sw_pool *p)
{
	pthread_mutex_lock(&p->lock);
	int n = p->pending;
	pthread_mutex_unlock(&p->lock);
	return n;
}

void sw_pool_free(struct sw_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	drain_done(p);   /* hand back what finished while joining */
	if (p->ev)
		event_free(p->ev);
	close(p->notify[0]);
	close(p->notify[1]);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->threads);
	free(p);
}
