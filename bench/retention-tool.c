/*
 * bench/retention-tool.c - the store API as slipwayd uses it, for
 * bench/retention.sh. Built by bench/retention.sh against
 * build/libslipway.a.
 *
 *   retention-tool ingest DATA_DIR RUNS LINES
 *       what a busy day writes, through the store API: per run a delivery,
 *       the run, 3 stages, LINES log lines per stage (one append per 5
 *       lines, as the engine flushes), the status changes. Prints
 *       "ingest runs=N ms=M runs_per_s=R".
 *   retention-tool retain DATA_DIR
 *       one retention pass with the default policy (the config's defaults),
 *       then the incremental vacuum (128 pages a step), as the daemon's
 *       worker does. Prints the rows removed, the pass time and the longest
 *       retention step (its read and its delete transactions) and vacuum
 *       step (one write transaction).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "storage/store.h"

#define DAY_MS (86400LL * 1000)

static int die(const char *what)
{
	fprintf(stderr, "retention-tool: %s: %s\n", what, sw_error_last());
	return 1;
}

static int ingest(const char *dir, int runs, int lines)
{
	struct sw_store *st;
	char line[96], guid[64], body[7500];
	int64_t t0, id, run, stage;

	memset(body, 'x', sizeof(body));
	if (sw_store_open(&st, dir) < 0)
		return die("open");
	t0 = sw_mono_ms();
	for (int r = 0; r < runs; r++) {
		struct sw_store_delivery_in d = { .event = "push", .repo = "acme/shop",
						  .body = body, .body_len = sizeof(body) };
		snprintf(guid, sizeof(guid), "ingest-%lld-%d", (long long)t0, r);
		d.guid = guid;
		if (sw_store_delivery_insert(st, &id, &d) < 0)
			return die("delivery");
		struct sw_store_run_in in = { .delivery_id = id, .kind = SW_RUN_PULL_REQUEST,
					      .repo = "acme/shop", .branch = "feature",
					      .commit_sha = "0123456789abcdef0123456789abcdef01234567" };
		if (sw_store_run_create(st, &run, &in) < 0 ||
		    sw_store_run_set_status(st, run, SW_STATUS_RUNNING, NULL) < 0)
			return die("run");
		for (int s = 0; s < 3; s++) {
			if (sw_store_stage_create(st, &stage, run, s, "build", "alpine") < 0 ||
			    sw_store_stage_set_status(st, stage, SW_STATUS_RUNNING, -1, NULL) < 0)
				return die("stage");
			struct sw_buf chunk = SW_BUF_INIT;
			for (int l = 0; l < lines; l++) {
				snprintf(line, sizeof(line), "%5d step output of a busy build, line "
					 "after line after line ..............\n", l);
				sw_buf_adds(&chunk, line);
				if ((l + 1) % 5 == 0 || l == lines - 1) {
					if (sw_store_log_append(st, stage, 0, chunk.ptr, chunk.len,
								NULL) < 0)
						return die("log");
					sw_buf_truncate(&chunk, 0);
				}
			}
			sw_buf_release(&chunk);
			if (sw_store_stage_set_status(st, stage, SW_STATUS_SUCCESS, 0, NULL) < 0)
				return die("stage");
		}
		if (sw_store_run_set_status(st, run, SW_STATUS_SUCCESS, NULL) < 0)
			return die("run");
	}
	int64_t ms = sw_mono_ms() - t0;
	printf("ingest runs=%d ms=%lld runs_per_s=%.0f\n", runs, (long long)ms,
	       ms > 0 ? runs * 1000.0 / (double)ms : 0.0);
	sw_store_close(st);
	return 0;
}

static int retain(const char *dir)
{
	struct sw_store *st;
	struct sw_store_retention pol = {
		.deliveries_age_ms = 30 * DAY_MS, .logs_age_ms = 90 * DAY_MS,
		.runs_age_ms = 365 * DAY_MS, .drift_age_ms = 90 * DAY_MS,
		.outbox_age_ms = 30 * DAY_MS, .batch = 500,
	};
	struct sw_store_retention_result res = { 0 };
	int64_t now = sw_now_ms(), t0, worst = 0, vworst = 0, steps = 0, left = 1, vt0;
	int more = 1;

	if (sw_store_open(&st, dir) < 0)
		return die("open");
	t0 = sw_mono_ms();
	while (more) {
		int64_t s0 = sw_mono_ms();
		if (sw_store_retention_step(st, &pol, now, &res, &more) < 0)
			return die("retention");
		if (sw_mono_ms() - s0 > worst)
			worst = sw_mono_ms() - s0;
		steps++;
	}
	vt0 = sw_mono_ms();
	while (left > 0) {
		int64_t s0 = sw_mono_ms();
		if (sw_store_vacuum_step(st, 128, &res.pages_freed, &left) < 0)
			return die("vacuum");
		if (sw_mono_ms() - s0 > vworst)
			vworst = sw_mono_ms() - s0;
	}
	printf("retain deliveries=%lld runs=%lld stages=%lld log_chunks=%lld pages_freed=%lld "
	       "steps=%lld ms=%lld vacuum_ms=%lld worst_step_ms=%lld worst_vacuum_step_ms=%lld\n",
	       (long long)res.deliveries, (long long)res.runs, (long long)res.stages,
	       (long long)res.log_chunks, (long long)res.pages_freed, (long long)steps,
	       (long long)(sw_mono_ms() - t0), (long long)(sw_mono_ms() - vt0), (long long)worst,
	       (long long)vworst);
	sw_store_close(st);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "ingest"))
		return ingest(argv[2], atoi(argv[3]), atoi(argv[4]));
	if (argc == 3 && !strcmp(argv[1], "retain"))
		return retain(argv[2]);
	fprintf(stderr, "usage: retention-tool ingest DATA_DIR RUNS LINES | retain DATA_DIR\n");
	return 2;
}
