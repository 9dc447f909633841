/*
 * bench/harness.c - the real syncer (deploy/deploy.h) and drift watcher
 * (deploy/deploy.h) on one loop, as slipwayd runs them, for the
 * Kubernetes benchmarks. Built by bench/lib.sh (build_harness) against
 * build/libslipway.a.
 *
 *   harness heal  KUBECONFIG MANIFEST_DIR DATA_DIR
 *   harness apply KUBECONFIG MANIFEST_DIR DATA_DIR [SYNCS]
 *
 * heal (bench/drift-heal.sh): one sync of MANIFEST_DIR as environment
 * "bench" (self_heal on), then the drift watcher; prints "ready" once the
 * watches have settled, heals until SIGTERM/SIGINT, then prints its
 * counters ("healed=N ...") and exits.
 *
 * apply (bench/apply.sh): SYNCS (default 2) syncs of MANIFEST_DIR one after
 * the other, each timed from sw_sync_start to its result (render, live
 * state, server-side apply in waves, health), one line per sync:
 *   sync=1 ms=812 created=2000 configured=0 unchanged=0 failed=0 status=success
 * Exits 1 when a sync fails.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lib/clock.h"
#include "config/config.h"
#include "lib/http.h"
#include "lib/log.h"
#include "lib/pool.h"
#include "lib/proc.h"
#include "deploy/deploy.h"
#include "storage/store.h"

struct h {
	struct event_base *base;
	struct sw_store *store;
	struct sw_syncer *syncer;
	struct sw_drift *dw;
	struct sw_cfg_env env;
	struct event *ready;
	const char *dir;
	int heal;                      /* heal mode, else apply */
	int syncs, done, failed_sync;
	int64_t started_ms;
	int healed, failed;
};

static void on_note(const struct sw_drift_note *n, void *arg)
{
	struct h *h = arg;
	if (n->action == SW_DRIFT_HEALED)
		h->healed++;
	else
		h->failed++;
}

static void ready_cb(evutil_socket_t fd, short what, void *arg)
{
	printf("ready\n");
	fflush(stdout);
}

static int start_sync(struct h *h);

static void start_watching(struct h *h)
{
	struct sw_drift_opts o = SW_DRIFT_OPTS_INIT;
	struct timeval settle = { 1, 0 };

	o.notify = on_note;
	o.notify_arg = h;
	if (sw_drift_new(&h->dw, h->base, NULL, h->store, h->syncer, &h->env, &o) < 0) {
		fprintf(stderr, "harness: %s\n", sw_error_last());
		event_base_loopbreak(h->base);
		return;
	}
	h->ready = evtimer_new(h->base, ready_cb, h);
	evtimer_add(h->ready, &settle);
}

static void synced(const struct sw_sync_result *r, void *arg)
{
	struct h *h = arg;

	h->done++;
	if (!h->heal)
		printf("sync=%d ms=%lld engine_ms=%lld created=%zu configured=%zu unchanged=%zu failed=%zu status=%s\n",
		       h->done, (long long)(sw_mono_ms() - h->started_ms), (long long)r->duration_ms,
		       r->counts[SW_OBJ_CREATED], r->counts[SW_OBJ_CONFIGURED],
		       r->counts[SW_OBJ_UNCHANGED], r->counts[SW_OBJ_FAILED],
		       r->status == SW_SYNC_SUCCESS ? "success" : "failure");
	fflush(stdout);
	if (r->status != SW_SYNC_SUCCESS) {
		fprintf(stderr, "harness: sync %d failed: %s\n", h->done, r->message);
		h->failed_sync = 1;
		event_base_loopbreak(h->base);
		return;
	}
	if (h->heal)
		start_watching(h);
	else if (h->done < h->syncs && start_sync(h) < 0)
		event_base_loopbreak(h->base);
	else if (h->done == h->syncs)
		event_base_loopbreak(h->base);
}

static int start_sync(struct h *h)
{
	struct sw_sync_req rq = SW_SYNC_REQ_INIT;

	rq.commit = "bench";
	rq.dir = h->dir;
	h->started_ms = sw_mono_ms();
	if (sw_sync_start(h->syncer, &rq, synced, h) < 0) {
		fprintf(stderr, "harness: %s\n", sw_error_last());
		h->failed_sync = 1;
		return -1;
	}
	return 0;
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
	static char *manifests[] = { (char *)"." };
	struct sw_syncer_opts so = SW_SYNCER_OPTS_INIT;
	struct sw_http *http;
	struct sw_proc_mgr *procs;
	struct sw_pool *pool;
	struct event *sigterm, *sigint;
	struct sw_drift_stats st = { 0 };
	struct h h = { 0 };

	if (argc < 5 || argc > 6 || (strcmp(argv[1], "heal") && strcmp(argv[1], "apply")) ||
	    (argc == 6 && strcmp(argv[1], "apply"))) {
		fprintf(stderr, "usage: harness heal KUBECONFIG MANIFEST_DIR DATA_DIR\n"
				"       harness apply KUBECONFIG MANIFEST_DIR DATA_DIR [SYNCS]\n");
		return 2;
	}
	h.heal = !strcmp(argv[1], "heal");
	h.dir = argv[3];
	h.syncs = argc == 6 ? atoi(argv[5]) : 2;
	if (h.syncs < 1)
		h.syncs = 1;
	signal(SIGPIPE, SIG_IGN);
	sw_log_set_level(SW_LOG_WARN);
	h.base = event_base_new();
	if (sw_http_new(&http, h.base) < 0 || sw_proc_mgr_new(&procs, h.base) < 0 ||
	    sw_pool_new(&pool, h.base, 2) < 0 || sw_store_open(&h.store, argv[4]) < 0 ||
	    sw_store_env_upsert(h.store, "bench", "main") < 0) {
		fprintf(stderr, "harness: %s\n", sw_error_last());
		return 1;
	}
	h.env.name = (char *)"bench";
	h.env.kubeconfig = argv[2];
	h.env.namespace = (char *)"default";
	h.env.manifests = manifests;
	h.env.nmanifests = 1;
	h.env.self_heal = 1;
	h.env.health_timeout_s = 60;
	h.env.resync_interval_s = 300;
	so.base = h.base;
	so.pool = pool;
	so.store = h.store;
	so.http = http;
	so.procs = procs;
	so.env = &h.env;
	so.data_dir = argv[4];
	if (sw_syncer_new(&h.syncer, &so) < 0) {
		fprintf(stderr, "harness: %s\n", sw_error_last());
		return 1;
	}
	if (start_sync(&h) < 0)
		return 1;
	sigterm = evsignal_new(h.base, SIGTERM, stop_cb, h.base);
	sigint = evsignal_new(h.base, SIGINT, stop_cb, h.base);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	event_base_dispatch(h.base);

	if (h.heal) {
		if (h.dw)
			sw_drift_stats(h.dw, &st);
		printf("healed=%d failed=%d events=%llu skipped_own=%llu compares=%llu "
		       "dry_runs=%llu deferred=%llu\n", h.healed, h.failed,
		       (unsigned long long)st.events, (unsigned long long)st.skipped_own,
		       (unsigned long long)st.compares, (unsigned long long)st.dry_runs,
		       (unsigned long long)st.deferred);
		fflush(stdout);
	}
	sw_drift_free(h.dw);
	sw_syncer_free(h.syncer);
	if (h.ready)
		event_free(h.ready);
	event_free(sigterm);
	event_free(sigint);
	sw_pool_free(pool);
	sw_proc_mgr_free(procs);
	sw_http_free(http);
	sw_store_close(h.store);
	event_base_free(h.base);
	return h.failed_sync;
}
