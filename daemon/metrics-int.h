/*
 * metrics.h - GET /metrics in the Prometheus text format (0.0.4).
 *
 * Two kinds of figures:
 *   - counters and histograms kept in memory since the process started
 *     (deliveries, runs, stages, syncs, drift events, git fetches). They
 *     start at zero on every restart, which Prometheus' rate() and
 *     increase() handle as a counter reset. The pipeline feeds them through
 *     the sw_metrics_* functions below, called where the event happens.
 *   - gauges read at scrape time: environment sync state and health, last
 *     sync duration, managed objects by health (storage), outbox depth and
 *     oldest age (sw_outbox_stats), active runs (sw_engine_active), worker
 *     pool backlog, process figures from /proc/self.
 *
 * Threads: every function here belongs to the loop's thread (no locking).
 * Label values are copied; the number of distinct label sets is capped
 * (SW_METRICS_MAX_SERIES per family) so a peer cannot grow memory without
 * bound: beyond it, new label values are counted under "other".
 */
#ifndef SW_DAEMON_METRICS_H
#define SW_DAEMON_METRICS_H

#include <stdint.h>

#include "lib/buf.h"

struct sw_daemon;

#define SW_METRICS_MAX_SERIES 128

/*
 * A webhook delivery was handled: `event` is X-GitHub-Event ("push",
 * "pull_request", ...), `outcome` one of "mapped", "ignored", "failed",
 * "duplicate", "rejected" (bad signature or body).
 * -> slipway_deliveries_total{event,outcome}
 */
void sw_metrics_delivery(const char *event, const char *outcome);

/*
 * A run reached a final status: `kind` and `result` are storage's names
 * (sw_store_run_kind_str, sw_store_status_str); `duration_ms` from
 * started_at (or created_at when it never started) to finished_at.
 * -> slipway_runs_total{kind,result}, slipway_run_duration_seconds{kind}
 */
void sw_metrics_run_finished(const char *kind, const char *result, int64_t duration_ms);

/*
 * A stage reached a final status (skipped stages too, with duration 0).
 * -> slipway_stages_total{result}, slipway_stage_duration_seconds{result}
 */
void sw_metrics_stage_finished(const char *result, int64_t duration_ms);

/*
 * A sync of `environment` finished: `result` is "success" or "failure"
 * (sw_store_sync_status_str), `trigger` sw_store_sync_trigger_str.
 * -> slipway_syncs_total{environment,trigger,result},
 *    slipway_sync_duration_seconds{environment}
 */
void sw_metrics_sync_finished(const char *environment, const char *trigger,
			      const char *result, int64_t duration_ms);

/*
 * A drift event was recorded; `action` is sw_store_drift_action_str().
 * -> slipway_drift_events_total{environment,action}
 */
void sw_metrics_drift(const char *environment, const char *action);

/*
 * A git fetch of `repo` ended (`ok` 0 or 1) after `duration_ms`.
 * -> slipway_git_fetches_total{result}, slipway_git_fetch_duration_seconds
 */
void sw_metrics_git_fetch(const char *repo, int ok, int64_t duration_ms);

/*
 * Retention removed `removed` rows of `kind` ("deliveries", "runs",
 * "stages", "log_chunks", "drift_events", "outbox", or "pages" for the
 * database pages given back to the file system).
 * -> slipway_retention_removed_total{kind}
 */
void sw_metrics_retention(const char *kind, int64_t removed);

/* Forget every in-memory figure (tests). */
void sw_metrics_reset(void);

/* Append the whole exposition for `d` to `out`. */
void sw_metrics_render(struct sw_daemon *d, struct sw_buf *out);

#endif
