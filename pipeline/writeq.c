/*
 * writeq.c - the engine's writes that must not be lost when the database is
 * locked for a while (see engine-int.h).
 *
 * A write is tried at once in its own transaction when nothing waits. When
 * the database stays locked past the loop connection's short busy timeout
 * (SW_EAGAIN), the transaction is rolled back and the write is kept, in
 * order behind anything already kept, and a timer retries the oldest with
 * backoff. While anything waits, new writes go behind it without a try, so
 * a locked database costs the loop one short wait per retry, not one per
 * write, and writes land in the order they were made.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "pipeline/engine-int.h"
#include "pipeline/pipeline.h"
#include "storage/store.h"

#define RETRY_FIRST_MS 50
#define RETRY_MAX_MS 2000

struct item {
	struct sw_write w;
	struct item *next;
};

struct sw_writeq {
	struct sw_store *st;
	struct event *timer;
	struct item *head, **tail;
	size_t n;
	int64_t since;           /* first failed try of this episode, 0 = none */
	char *error;             /* why the oldest is waiting */
	long delay_ms;
	uint64_t written, delayed;
};

static void item_free(struct item *it)
{
	if (it->w.release)
		it->w.release(it->w.arg);
	free(it);
}

/*
 * Try one write. 0: written (or refused for good, which its apply logged);
 * SW_EAGAIN: not written, keep it. A transaction that cannot begin or
 * commit (locked, or an I/O error such as a full disk) is kept too: it is
 * retried until it succeeds.
 */
static int try_write(struct sw_writeq *q, const struct sw_write *w)
{
	int own = !sw_store_in_transaction(q->st);
	int rc;

	if (own && sw_store_begin(q->st) < 0)
		return SW_EAGAIN;
	rc = w->apply(q->st, w->arg);
	if (rc == SW_EAGAIN) {
		if (own)
			sw_store_rollback(q->st);
		return rc;
	}
	if (own && sw_store_commit(q->st) < 0) {
		sw_store_rollback(q->st);
		return SW_EAGAIN;
	}
	q->written++;
	if (w->done)
		w->done(w->arg);
	return 0;
}

static void arm(struct sw_writeq *q)
{
	struct timeval tv = { q->delay_ms / 1000, (q->delay_ms % 1000) * 1000 };
	evtimer_add(q->timer, &tv);
}

static void note_locked(struct sw_writeq *q)
{
	const char *why = sw_error_last();
	if (!q->since) {
		q->since = sw_now_ms();
		q->delay_ms = RETRY_FIRST_MS;
		log_warn("storage.unavailable", "pending=%zu err=%s", q->n, sw_q(why));
	}
	if (!q->error || strcmp(q->error, why)) {
		free(q->error);
		q->error = sw_strdup(why);
	}
}

/* Write what waits, oldest first, until the queue is empty or the database
 * is still locked. */
static void drain(struct sw_writeq *q)
{
	while (q->head) {
		struct item *it = q->head;
		if (try_write(q, &it->w) == SW_EAGAIN) {
			note_locked(q);
			arm(q);
			if (q->delay_ms < RETRY_MAX_MS)
				q->delay_ms = q->delay_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : q->delay_ms * 2;
			return;
		}
		q->head = it->next;
		if (!q->head)
			q->tail = &q->head;
		q->n--;
		item_free(it);
	}
	if (q->since) {
		log_info("storage.available", "unavailable_ms=%lld delayed=%llu",
			 (long long)(sw_now_ms() - q->since), (unsigned long long)q->delayed);
		q->since = 0;
		free(q->error);
		q->error = NULL;
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	drain(arg);
}

int sw_writeq_new(struct sw_writeq **out, struct event_base *base, struct sw_store *st)
{
	struct sw_writeq *q = sw_calloc(1, sizeof(*q));
	q->st = st;
	q->tail = &q->head;
	q->delay_ms = RETRY_FIRST_MS;
	q->timer = evtimer_new(base, on_timer, q);
	*out = q;
	return 0;
}

void sw_writeq_put(struct sw_writeq *q, const struct sw_write *w)
{
	if (!q->head && try_write(q, w) == 0) {
		if (w->release)
			w->release(w->arg);
		return;
	}
	struct item *it = sw_calloc(1, sizeof(*it));
	it->w = *w;
	*q->tail = it;
	q->tail = &it->next;
	q->n++;
	q->delayed++;
	if (q->n == 1) {   /* the try above just failed */
		note_locked(q);
		arm(q);
	}
}

void sw_writeq_state(const struct sw_writeq *q, struct sw_storage_state *out)
{
	out->pending_writes = q->n;
	out->since_ms = q->n ? q->since : 0;
	out->error = q->n ? q->error : NULL;
}

size_t sw_writeq_pending(const struct sw_writeq *q)
{
	return q ? q->n : 0;
}

void sw_writeq_flush(struct sw_writeq *q)
{
	if (q && q->head) {
		evtimer_del(q->timer);
		drain(q);
	}
}

void sw_writeq_free(struct sw_writeq *q)
{
	if (!q)
		return;
	sw_writeq_flush(q);
	if (q->n)
		log_error("storage.writes_lost", "pending=%zu err=%s", q->n,
			  sw_q(q->error ? q->error : "stopped"));
	while (q->head) {
		struct item *it = q->head;
		q->head = it->next;
		item_free(it);
	}
	event_free(q->timer);
	free(q->error);
	free(q);
}
