/*
 * metrics.c - the /metrics exposition (Prometheus text format 0.0.4): the
 * in-memory counters and histograms fed by sw_metrics_* (see metrics.h),
 * then gauges read from storage, the outbox, the engine and /proc/self at
 * scrape time. One scrape costs a few indexed SQLite statements per
 * environment.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "httpd/httpd.h"
#include "daemon/daemon.h"
#include "daemon/metrics-int.h"
#include "daemon/page-int.h"
#include "lib/clock.h"
#include "lib/pool.h"
#include "lib/version.h"
#include "report/report.h"
#include "pipeline/pipeline.h"
#include "storage/store.h"

/* ------------------------------------------------------------------ */
/* In-memory families                                                  */
/* ------------------------------------------------------------------ */

#define MAX_BOUNDS 12
#define MAX_LABELS 3

struct series {
	char *labels;                  /* rendered: a="x",b="y" */
	uint64_t count;                /* counter value, or histogram count */
	uint64_t buckets[MAX_BOUNDS];  /* non-cumulative counts per bound */
	double sum;                    /* histogram sum (seconds) */
};

struct family {
	const char *name, *help;
	int histogram;
	const double *bounds;
	int nbounds;
	struct series *v;
	size_t n;
};

static const double run_bounds[] = { 1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600 };
static const double sync_bounds[] = { 1, 2, 5, 10, 30, 60, 120, 300, 600 };
static const double fetch_bounds[] = { 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };
#define NB(a) ((int)(sizeof(a) / sizeof((a)[0])))

static struct family f_deliveries = { "slipway_deliveries_total",
	"Webhook deliveries handled, by GitHub event and outcome.", 0, NULL, 0, NULL, 0 };
static struct family f_runs = { "slipway_runs_total",
	"Pipeline runs that reached a final status, by kind and result.", 0, NULL, 0, NULL, 0 };
static struct family f_run_dur = { "slipway_run_duration_seconds",
	"Duration of finished pipeline runs.", 1, run_bounds, NB(run_bounds), NULL, 0 };
static struct family f_stages = { "slipway_stages_total",
	"Pipeline stages that reached a final status, by result.", 0, NULL, 0, NULL, 0 };
static struct family f_stage_dur = { "slipway_stage_duration_seconds",
	"Duration of finished pipeline stages.", 1, run_bounds, NB(run_bounds), NULL, 0 };
static struct family f_syncs = { "slipway_syncs_total",
	"Finished syncs (deploys), by environment, trigger and result.", 0, NULL, 0, NULL, 0 };
static struct family f_sync_dur = { "slipway_sync_duration_seconds",
	"Duration of finished syncs, by environment.", 1, sync_bounds, NB(sync_bounds), NULL, 0 };
static struct family f_drift = { "slipway_drift_events_total",
	"Drift events recorded, by environment and action taken.", 0, NULL, 0, NULL, 0 };
static struct family f_fetches = { "slipway_git_fetches_total",
	"Git fetches of repository mirrors, by result.", 0, NULL, 0, NULL, 0 };
static struct family f_fetch_dur = { "slipway_git_fetch_duration_seconds",
	"Duration of git fetches.", 1, fetch_bounds, NB(fetch_bounds), NULL, 0 };

static struct family f_retention = { "slipway_retention_removed_total",
	"Rows removed by retention, by kind (database pages given back: kind=\"pages\").",
	0, NULL, 0, NULL, 0 };

static struct family *const families[] = {
	&f_deliveries, &f_runs, &f_run_dur, &f_stages, &f_stage_dur, &f_syncs, &f_sync_dur,
	&f_drift, &f_fetches, &f_fetch_dur, &f_retention,
};

/* Label value escaping of the text format: \\, \", \n. */
static void label_value(struct sw_buf *b, const char *v)
{
	for (v = v ? v : ""; *v; v++) {
		if (*v == '\\')
			sw_buf_adds(b, "\\\\");
		else if (*v == '"')
			sw_buf_adds(b, "\\\"");
		else if (*v == '\n')
			sw_buf_adds(b, "\\n");
		else
			sw_buf_addch(b, *v);
	}
}

/* names and values: `n` pairs; a NULL-valued pair is left out */
static char *render_labels(const char *const *names, const char *const *values, int n)
{
	struct sw_buf b = SW_BUF_INIT;
	for (int i = 0; i < n; i++) {
		if (!values[i])
			continue;
		sw_buf_addf(&b, "%s%s=\"", b.len ? "," : "", names[i]);
		label_value(&b, values[i]);
		sw_buf_addch(&b, '"');
	}
	return sw_buf_detach(&b, NULL);
}

static struct series *series_get(struct family *f, const char *const *names,
				 const char *const *values, int n)
{
	char *labels = render_labels(names, values, n);
	const char *other[MAX_LABELS] = { "other", "other", "other" };

	for (size_t i = 0; i < f->n; i++)
		if (!strcmp(f->v[i].labels, labels)) {
			free(labels);
			return &f->v[i];
		}
	if (f->n >= SW_METRICS_MAX_SERIES) {
		/* bounded: fold new label sets into one "other" series */
		free(labels);
		labels = render_labels(names, other, n);
		for (size_t i = 0; i < f->n; i++)
			if (!strcmp(f->v[i].labels, labels)) {
				free(labels);
				return &f->v[i];
			}
		if (f->n >= SW_METRICS_MAX_SERIES + 1) {
			free(labels);
			return &f->v[f->n - 1];
		}
	}
	f->v = sw_realloc(f->v, (f->n + 1) * sizeof(*f->v));
	memset(&f->v[f->n], 0, sizeof(f->v[f->n]));
	f->v[f->n].labels = labels;
	return &f->v[f->n++];
}

static void count(struct family *f, const char *const *names, const char *const *values, int n)
{
	series_get(f, names, values, n)->count++;
}

static void observe(struct family *f, const char *const *names, const char *const *values,
		    int n, int64_t ms)
{
	struct series *s = series_get(f, names, values, n);
	double secs = (ms < 0 ? 0 : (double)ms) / 1000.0;
	s->count++;
	s->sum += secs;
	for (int i = 0; i < f->nbounds; i++)
		if (secs <= f->bounds[i]) {
			s->buckets[i]++;
			break;
		}
}

void sw_metrics_delivery(const char *event, const char *outcome)
{
	const char *names[] = { "event", "outcome" }, *values[] = { event ? event : "", outcome };
	count(&f_deliveries, names, values, 2);
}

void sw_metrics_run_finished(const char *kind, const char *result, int64_t duration_ms)
{
	const char *names[] = { "kind", "result" }, *values[] = { kind, result };
	count(&f_runs, names, values, 2);
	observe(&f_run_dur, names, values, 1, duration_ms);
}

void sw_metrics_stage_finished(const char *result, int64_t duration_ms)
{
	const char *names[] = { "result" }, *values[] = { result };
	count(&f_stages, names, values, 1);
	observe(&f_stage_dur, names, values, 1, duration_ms);
}

void sw_metrics_sync_finished(const char *environment, const char *trigger,
			      const char *result, int64_t duration_ms)
{
	const char *names[] = { "environment", "trigger", "result" };
	const char *values[] = { environment, trigger, result };
	count(&f_syncs, names, values, 3);
	observe(&f_sync_dur, names, values, 1, duration_ms);
}

void sw_metrics_drift(const char *environment, const char *action)
{
	const char *names[] = { "environment", "action" }, *values[] = { environment, action };
	count(&f_drift, names, values, 2);
}

void sw_metrics_git_fetch(const char *repo, int ok, int64_t duration_ms)
{
	/* no repo label: one histogram is enough for a dashboard, and it
	 * keeps the series count independent of the repositories */
	const char *names[] = { "result" }, *values[] = { ok ? "success" : "failure" };
	count(&f_fetches, names, values, 1);
	observe(&f_fetch_dur, names, values, 0, duration_ms);
}

void sw_metrics_retention(const char *kind, int64_t removed)
{
	const char *names[] = { "kind" }, *values[] = { kind };
	series_get(&f_retention, names, values, 1)->count += removed > 0 ? (uint64_t)removed : 0;
}

void sw_metrics_reset(void)
{
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		struct family *f = families[i];
		for (size_t j = 0; j < f->n; j++)
			free(f->v[j].labels);
		free(f->v);
		f->v = NULL;
		f->n = 0;
	}
}

/* ------------------------------------------------------------------ */
/* Rendering                                                           */
/* ------------------------------------------------------------------ */

static void header(struct sw_buf *o, const char *name, const char *type, const char *help)
{
	sw_buf_addf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void num(struct sw_buf *o, double v)
{
	sw_buf_addf(o, " %.9g\n", v);
}

static void render_family(struct sw_buf *o, const struct family *f)
{
	header(o, f->name, f->histogram ? "histogram" : "counter", f->help);
	for (size_t i = 0; i < f->n; i++) {
		const struct series *s = &f->v[i];
		const char *sep = s->labels[0] ? "," : "";
		if (!f->histogram) {
			sw_buf_addf(o, "%s{%s} %llu\n", f->name, s->labels,
				    (unsigned long long)s->count);
			continue;
		}
		uint64_t cum = 0;
		for (int b = 0; b < f->nbounds; b++) {
			cum += s->buckets[b];
			sw_buf_addf(o, "%s_bucket{%s%sle=\"%g\"} %llu\n", f->name, s->labels, sep,
				    f->bounds[b], (unsigned long long)cum);
		}
		sw_buf_addf(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels, sep,
			    (unsigned long long)s->count);
		sw_buf_addf(o, "%s_sum{%s}", f->name, s->labels);
		num(o, s->sum);
		sw_buf_addf(o, "%s_count{%s} %llu\n", f->name, s->labels,
			    (unsigned long long)s->count);
	}
}

/* gauge line: name{label="value"} v */
static void gauge1(struct sw_buf *o, const char *name, const char *label, const char *value,
		   double v)
{
	sw_buf_addf(o, "%s{%s=\"", name, label);
	label_value(o, value);
	sw_buf_adds(o, "\"}");
	num(o, v);
}

static void gauge2(struct sw_buf *o, const char *name, const char *l1, const char *v1,
		   const char *l2, const char *v2, double v)
{
	sw_buf_addf(o, "%s{%s=\"", name, l1);
	label_value(o, v1);
	sw_buf_addf(o, "\",%s=\"", l2);
	label_value(o, v2);
	sw_buf_adds(o, "\"}");
	num(o, v);
}

static void render_environments(struct sw_daemon *d, struct sw_buf *o)
{
	const struct sw_config *c = d->cfg;
	struct sw_store_env *envs = sw_calloc(c->nenvs + 1, sizeof(*envs));
	int *have = sw_calloc(c->nenvs + 1, sizeof(*have));
	int64_t (*counts)[SW_HEALTH__COUNT] = sw_calloc(c->nenvs + 1, sizeof(*counts));
	int *have_counts = sw_calloc(c->nenvs + 1, sizeof(*have_counts));

	for (size_t i = 0; i < c->nenvs; i++) {
		have[i] = sw_store_env_get(d->store, c->envs[i].name, &envs[i]) == 0;
		have_counts[i] = sw_store_inventory_health_counts(d->store, c->envs[i].name,
								  counts[i]) == 0;
	}

	header(o, "slipway_environment_sync_state", "gauge",
	       "1 for the environment's current sync state, 0 for the others.");
	for (size_t i = 0; i < c->nenvs; i++)
		for (int s = SW_ENV_UNKNOWN; s <= SW_ENV_FAILED; s++)
			gauge2(o, "slipway_environment_sync_state", "environment", c->envs[i].name,
			       "state", sw_store_env_sync_str((enum sw_env_sync)s),
			       have[i] && envs[i].sync_status == (enum sw_env_sync)s);
	header(o, "slipway_environment_health", "gauge",
	       "1 for the environment's current health, 0 for the others.");
	for (size_t i = 0; i < c->nenvs; i++)
		for (int h = 0; h < SW_HEALTH__COUNT; h++)
			gauge2(o, "slipway_environment_health", "environment", c->envs[i].name,
			       "health", sw_store_health_str((enum sw_health)h),
			       have[i] && envs[i].health == (enum sw_health)h);
	header(o, "slipway_environment_last_sync_timestamp_seconds", "gauge",
	       "When the environment's last sync finished (0: never).");
	for (size_t i = 0; i < c->nenvs; i++)
		gauge1(o, "slipway_environment_last_sync_timestamp_seconds", "environment",
		       c->envs[i].name, have[i] ? (double)envs[i].last_sync_at / 1000.0 : 0);
	header(o, "slipway_environment_last_sync_duration_seconds", "gauge",
	       "How long the environment's last sync took.");
	for (size_t i = 0; i < c->nenvs; i++)
		gauge1(o, "slipway_environment_last_sync_duration_seconds", "environment",
		       c->envs[i].name, have[i] ? (double)envs[i].last_sync_ms / 1000.0 : 0);
	header(o, "slipway_managed_objects", "gauge",
	       "Kubernetes objects in each environment's inventory, by health.");
	for (size_t i = 0; i < c->nenvs; i++)
		for (int h = 0; h < SW_HEALTH__COUNT && have_counts[i]; h++)
			gauge2(o, "slipway_managed_objects", "environment", c->envs[i].name,
			       "health", sw_store_health_str((enum sw_health)h),
			       (double)counts[i][h]);
	header(o, "slipway_drift_last_timestamp_seconds", "gauge",
	       "When drift was last detected in the environment (0: never).");
	for (size_t i = 0; i < c->nenvs; i++) {
		struct sw_store_drift dr = { 0 };
		int found = sw_store_drift_latest(d->store, c->envs[i].name, &dr) == 0;
		gauge1(o, "slipway_drift_last_timestamp_seconds", "environment", c->envs[i].name,
		       found ? (double)dr.detected_at / 1000.0 : 0);
		sw_store_drift_release(&dr);
	}
	for (size_t i = 0; i < c->nenvs; i++)
		sw_store_env_release(&envs[i]);
	free(envs);
	free(have);
	free(counts);
	free(have_counts);
}

static void render_process(struct sw_daemon *d, struct sw_buf *o)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned long long vsz = 0, rss = 0;
	struct rusage ru;
	struct rlimit rl;
	FILE *f;
	DIR *dir;

	if ((f = fopen("/proc/self/statm", "r"))) {
		if (fscanf(f, "%llu %llu", &vsz, &rss) != 2)
			vsz = rss = 0;
		fclose(f);
	}
	header(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
	sw_buf_adds(o, "process_resident_memory_bytes");
	num(o, (double)rss * (double)page);
	header(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
	sw_buf_adds(o, "process_virtual_memory_bytes");
	num(o, (double)vsz * (double)page);
	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
			     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
		header(o, "process_cpu_seconds_total", "counter",
		       "Total user and system CPU time spent in seconds.");
		sw_buf_adds(o, "process_cpu_seconds_total");
		num(o, cpu);
	}
	if ((dir = opendir("/proc/self/fd"))) {
		long n = 0;
		struct dirent *e;
		while ((e = readdir(dir)))
			if (e->d_name[0] != '.')
				n++;
		closedir(dir);
		header(o, "process_open_fds", "gauge", "Number of open file descriptors.");
		sw_buf_adds(o, "process_open_fds");
		num(o, (double)(n - 1));       /* not the one opendir holds */
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		header(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
		sw_buf_adds(o, "process_max_fds");
		num(o, rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur);
	}
	header(o, "process_start_time_seconds", "gauge",
	       "Start time of the process since unix epoch in seconds.");
	sw_buf_adds(o, "process_start_time_seconds");
	num(o, (double)d->started_ms / 1000.0);
}

/* What the environments cost, as Cost Explorer last said (daemon/cost.c). */
struct cost_each { struct sw_buf *o; const char *env; };

static void cost_service(const char *service, int64_t micro, void *arg)
{
	struct cost_each *ce = arg;
	gauge2(ce->o, "slipway_cost_daily_usd", "environment", ce->env, "service", service,
	       (double)micro / 1e6);
}

static void render_costs(struct sw_daemon *d, struct sw_buf *o)
{
	const struct sw_config *c = d->cfg;
	if (!c->cost.enabled || !d->costs)
		return;
	header(o, "slipway_cost_month_usd", "gauge",
	       "Cost of the month so far (UTC days to yesterday), from AWS Cost Explorer.");
	for (size_t i = 0; i < c->nenvs; i++) {
		const struct sw_report_cost *k = sw_costs_get(d->costs, c->envs[i].name);
		if (k && k->have)
			gauge1(o, "slipway_cost_month_usd", "environment", c->envs[i].name,
			       (double)k->so_far / 1e6);
	}
	header(o, "slipway_cost_daily_usd", "gauge",
	       "Cost of yesterday (UTC) by service, from AWS Cost Explorer.");
	for (size_t i = 0; i < c->nenvs; i++) {
		struct cost_each ce = { o, c->envs[i].name };
		sw_costs_yesterday(d->costs, c->envs[i].name, cost_service, &ce);
	}
	header(o, "slipway_cost_fetch_ok", "gauge",
	       "1 when the last ask of Cost Explorer for the environment succeeded.");
	for (size_t i = 0; i < c->nenvs; i++) {
		const struct sw_report_cost *k = sw_costs_get(d->costs, c->envs[i].name);
		if (k)
			gauge1(o, "slipway_cost_fetch_ok", "environment", c->envs[i].name,
			       k->error ? 0 : 1);
	}
}

void sw_metrics_render(struct sw_daemon *d, struct sw_buf *o)
{
	header(o, "slipway_build_info", "gauge", "slipwayd version; always 1.");
	sw_buf_addf(o, "slipway_build_info{version=\"%s\"} 1\n", SLIPWAY_VERSION);
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
		render_family(o, families[i]);

	header(o, "slipway_runs_active", "gauge", "Runs queued, preparing or running.");
	sw_buf_adds(o, "slipway_runs_active");
	num(o, d->engine ? (double)sw_engine_active(d->engine) : 0);
	header(o, "slipway_pool_pending", "gauge", "Blocking jobs queued or running on workers.");
	sw_buf_adds(o, "slipway_pool_pending");
	num(o, d->pool ? (double)sw_pool_pending(d->pool) : 0);
	header(o, "slipway_log_streams", "gauge", "Open live-log (SSE) connections.");
	sw_buf_adds(o, "slipway_log_streams");
	num(o, (double)sw_sse_active());

	if (d->conns) {
		struct sw_conns_stats c;
		sw_conns_stats(d->conns, &c);
		header(o, "slipway_http_connections", "gauge",
		       "HTTP connections open, counted against server.max_connections.");
		sw_buf_addf(o, "slipway_http_connections %zu\n", c.open);
		header(o, "slipway_http_max_connections", "gauge", "The connection cap in force.");
		sw_buf_addf(o, "slipway_http_max_connections %d\n", c.max);
		header(o, "slipway_http_closed_total", "counter",
		       "HTTP connections slipwayd closed for its limits, by reason, since start.");
		const struct { const char *reason; uint64_t n; } closed[] = {
			{ "read_timeout", c.timed_out }, { "too_large", c.too_large },
			{ "evicted", c.evicted }, { "refused", c.refused },
		};
		for (size_t i = 0; i < sizeof(closed) / sizeof(closed[0]); i++)
			sw_buf_addf(o, "slipway_http_closed_total{reason=\"%s\"} %llu\n",
				    closed[i].reason, (unsigned long long)closed[i].n);
		header(o, "slipway_http_accept_pauses_total", "counter",
		       "Episodes of accept() failing (out of descriptors), since start.");
		sw_buf_addf(o, "slipway_http_accept_pauses_total %llu\n",
			    (unsigned long long)c.accept_pauses);
	}
	if (d->outbox) {
		struct sw_outbox_stats s = { 0 };
		sw_outbox_stats(d->outbox, &s);
		header(o, "slipway_outbox_depth", "gauge", "Notifications waiting to be sent.");
		sw_buf_adds(o, "slipway_outbox_depth");
		num(o, (double)s.depth);
		header(o, "slipway_outbox_oldest_age_seconds", "gauge",
		       "Age of the oldest notification waiting to be sent.");
		sw_buf_adds(o, "slipway_outbox_oldest_age_seconds");
		num(o, (double)s.oldest_age_ms / 1000.0);
		header(o, "slipway_outbox_sent_total", "counter",
		       "Notifications sent since start.");
		sw_buf_addf(o, "slipway_outbox_sent_total %llu\n", (unsigned long long)s.sent);
		header(o, "slipway_outbox_failed_total", "counter",
		       "Notification attempts that failed and will be retried, since start.");
		sw_buf_addf(o, "slipway_outbox_failed_total %llu\n", (unsigned long long)s.failed);
		header(o, "slipway_outbox_dead_total", "counter",
		       "Notifications given up on, since start.");
		sw_buf_addf(o, "slipway_outbox_dead_total %llu\n", (unsigned long long)s.dead);
	}
	if (d->store && d->cfg)
		render_environments(d, o);
	render_costs(d, o);
	render_process(d, o);
}
