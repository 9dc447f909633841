/*
 * retention.c - the daemon's retention pass: every retention.interval a
 * pool worker, with its own storage handle, removes old rows in small
 * batches (storage/retention.c) and gives the freed pages back to the file
 * system; the loop logs and counts what went.
 *
 * A pass is cut into jobs of at most JOB_BUDGET_MS so that a first pass over
 * a year of history never holds a worker for long: when a job stops with
 * work left, the loop queues the next one behind whatever else is waiting
 * (git fetches, renders).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon.h"
#include "daemon/metrics-int.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/pool.h"
#include "storage/store.h"

#define JOB_BUDGET_MS 2000
/* The first pass runs this soon after start (or after interval if shorter). */
#define FIRST_PASS_S 30
/*
 * Pages given back per incremental_vacuum transaction (512 KiB at 4 KiB):
 * each moves pages from the end of the file and holds the write lock while
 * it does; 1024 took 0.65 s a step on a 1.6 GB file (bench/retention.sh).
 */
#define VACUUM_PAGES 128

struct sw_retention {
	struct sw_daemon *d;
	struct event *timer;
	atomic_int stop;
	int busy;                         /* a job is queued or running */
	/* the pass in progress: set on the loop, used by one job at a time */
	char *data_dir;
	struct sw_store_retention pol;
	int64_t now, started_ms;
	struct sw_store_retention_result total;
	int more;                         /* the last job left work */
	int rc;
	char *err;
};

static void schedule(struct sw_retention *rt, int64_t secs)
{
	struct timeval tv = { (time_t)secs, 0 };
	if (secs > 0)
		evtimer_add(rt->timer, &tv);
}

/* On a worker: batches until done or the budget is spent, then the vacuum. */
static void pass_work(void *arg)
{
	struct sw_retention *rt = arg;
	struct sw_store *st = NULL;
	int64_t t0 = sw_mono_ms(), left = 1;

	rt->rc = sw_store_open(&st, rt->data_dir);
	rt->more = 1;
	while (rt->rc == 0 && rt->more && !atomic_load(&rt->stop) &&
	       sw_mono_ms() - t0 < JOB_BUDGET_MS)
		rt->rc = sw_store_retention_step(st, &rt->pol, rt->now, &rt->total, &rt->more);
	while (rt->rc == 0 && !rt->more && left > 0 && !atomic_load(&rt->stop) &&
	       sw_mono_ms() - t0 < JOB_BUDGET_MS)
		rt->rc = sw_store_vacuum_step(st, VACUUM_PAGES, &rt->total.pages_freed, &left);
	if (rt->rc == 0 && left > 0)
		rt->more = 1;
	if (rt->rc < 0)
		rt->err = sw_strdup(sw_error_last());
	sw_store_close(st);
}

static void pass_done(void *arg)
{
	struct sw_retention *rt = arg;
	const struct sw_store_retention_result *t = &rt->total;

	rt->busy = 0;
	if (rt->rc < 0) {
		log_error("retention.failed", "err=%s", sw_q(rt->err));
		free(rt->err);
		rt->err = NULL;
	} else if (rt->more && !atomic_load(&rt->stop) && !rt->d->stopping) {
		rt->busy = sw_pool_submit(rt->d->pool, pass_work, pass_done, rt) == 0;
		if (rt->busy)
			return;
	}
	int removed = t->deliveries || t->runs || t->stages || t->log_chunks ||
		      t->drift_events || t->outbox || t->audit || t->pages_freed;
	sw_log(removed ? SW_LOG_INFO : SW_LOG_DEBUG, "retention.done",
	       "deliveries=%lld runs=%lld stages=%lld log_chunks=%lld "
	       "drift_events=%lld outbox=%lld audit=%lld pages_freed=%lld ms=%lld%s",
	       (long long)t->deliveries, (long long)t->runs, (long long)t->stages,
	       (long long)t->log_chunks, (long long)t->drift_events, (long long)t->outbox,
	       (long long)t->audit,
	       (long long)t->pages_freed, (long long)(sw_mono_ms() - rt->started_ms),
	       rt->more ? " cut_short=1" : "");
	sw_metrics_retention("deliveries", t->deliveries);
	sw_metrics_retention("runs", t->runs);
	sw_metrics_retention("stages", t->stages);
	sw_metrics_retention("log_chunks", t->log_chunks);
	sw_metrics_retention("drift_events", t->drift_events);
	sw_metrics_retention("outbox", t->outbox);
	sw_metrics_retention("audit", t->audit);
	sw_metrics_retention("pages", t->pages_freed);
	if (!rt->d->stopping)
		schedule(rt, rt->d->cfg->retention.interval_s);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sw_retention *rt = arg;
	const struct sw_cfg_retention *c = &rt->d->cfg->retention;

	if (rt->busy || rt->d->stopping)
		return;
	if (c->interval_s <= 0)
		return;   /* switched off by a reload; a reload back does not re-arm */
	free(rt->data_dir);
	rt->data_dir = sw_strdup(rt->d->cfg->data_dir);
	rt->pol = (struct sw_store_retention){
		.deliveries_age_ms = c->deliveries_age_s * 1000, .deliveries_keep = c->deliveries_count,
		.logs_age_ms = c->logs_age_s * 1000,
		.runs_age_ms = c->runs_age_s * 1000, .runs_keep = c->runs_count,
		.drift_age_ms = c->drift_age_s * 1000, .drift_keep = c->drift_count,
		.outbox_age_ms = c->outbox_age_s * 1000,
		.audit_age_ms = c->audit_age_s * 1000, .audit_keep = c->audit_count,
		.batch = c->batch,
	};
	rt->now = sw_now_ms();
	rt->started_ms = sw_mono_ms();
	memset(&rt->total, 0, sizeof(rt->total));
	rt->busy = sw_pool_submit(rt->d->pool, pass_work, pass_done, rt) == 0;
	if (!rt->busy)
		schedule(rt, c->interval_s);
}

int sw_retention_new(struct sw_retention **out, struct sw_daemon *d)
{
	struct sw_retention *rt = sw_calloc(1, sizeof(*rt));
	int64_t interval = d->cfg->retention.interval_s;

	rt->d = d;
	atomic_init(&rt->stop, 0);
	rt->timer = evtimer_new(d->base, on_timer, rt);
	if (!rt->timer) {
		free(rt);
		*out = NULL;
		return sw_error_set("retention: cannot create its timer");
	}
	schedule(rt, interval < FIRST_PASS_S ? interval : FIRST_PASS_S);
	*out = rt;
	return 0;
}

void sw_retention_stop(struct sw_retention *rt)
{
	if (!rt)
		return;
	atomic_store(&rt->stop, 1);
	evtimer_del(rt->timer);
}

void sw_retention_free(struct sw_retention *rt)
{
	if (!rt)
		return;
	event_free(rt->timer);
	free(rt->data_dir);
	free(rt->err);
	free(rt);
}
