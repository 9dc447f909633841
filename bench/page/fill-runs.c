/*
 * fill-runs.c - fill a slipway data directory with N runs through
 * storage's own API (storage/store.h), for bench/page.sh.
 *
 *   fill-runs DATA_DIR [N]     (N defaults to 10000)
 *
 * Each run has 3 stages (lint, test, build) with a short coloured log, a
 * mix of kinds and statuses, PR titles and commit messages with characters
 * that need escaping; the environments dev and prod get a sync history with
 * objects, an inventory and a drift event, so every card is filled.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "storage/store.h"

static void die(const char *what)
{
	fprintf(stderr, "fill-runs: %s: %s\n", what, sw_error_last());
	exit(1);
}

int main(int argc, char **argv)
{
	struct sw_store *st;
	long n = argc > 2 ? strtol(argv[2], NULL, 10) : 10000;
	int64_t now = sw_now_ms(), t0 = now - (int64_t)n * 60000;
	static const char *names[] = { "lint", "test", "build" };
	static const char log[] = "\x1b[1mstep\x1b[0m running <checks> & more\n"
				  "\x1b[32mok\x1b[0m 42 passed\n";

	if (argc < 2) {
		fprintf(stderr, "usage: fill-runs DATA_DIR [N]\n");
		return 2;
	}
	if (sw_store_open(&st, argv[1]) < 0)
		die("open");
	if (sw_store_env_upsert(st, "dev", "dev") < 0 || sw_store_env_upsert(st, "prod", "main") < 0)
		die("environments");
	if (sw_store_begin(st) < 0)
		die("begin");
	for (long i = 0; i < n; i++) {
		struct sw_store_run_in in = { 0 };
		char sha[41], title[96], msg[128];
		int64_t id, sid, created = t0 + i * 60000;
		int pr = i % 3 == 0;

		snprintf(sha, sizeof(sha), "%040lx", (unsigned long)(0x9e3779b97f4a7c15ULL * (unsigned long)(i + 1)));
		snprintf(title, sizeof(title), "Change <%ld> & \"fix\" things", i);
		snprintf(msg, sizeof(msg), "commit %ld: tidy the <b>parser</b>\n\nlonger body", i);
		in.kind = pr ? SW_RUN_PULL_REQUEST : SW_RUN_PUSH;
		in.repo = "acme/shop";
		in.ref = pr ? "refs/pull/1/head" : "refs/heads/main";
		in.branch = pr ? "feature/x" : "main";
		in.commit_sha = sha;
		in.pr_number = pr ? i + 1 : 0;
		in.pr_title = pr ? title : NULL;
		in.author = "Dev Eloper";
		in.message = msg;
		in.environment = pr ? NULL : "prod";
		in.created_at = created;
		if (sw_store_run_create(st, &id, &in) < 0)
			die("run");
		if (sw_store_run_set_status(st, id, SW_STATUS_RUNNING, NULL) < 0)
			die("run status");
		for (int s = 0; s < 3; s++) {
			if (sw_store_stage_create(st, &sid, id, s, names[s], "alpine:3.20") < 0)
				die("stage");
			sw_store_stage_set_status(st, sid, SW_STATUS_RUNNING, -1, NULL);
			if (sw_store_log_append(st, sid, created, log, sizeof(log) - 1, NULL) < 0)
				die("log");
			sw_store_stage_set_status(st, sid, i % 7 == 3 && s == 1 ? SW_STATUS_FAILURE :
						  SW_STATUS_SUCCESS, i % 7 == 3 && s == 1 ? 1 : 0, NULL);
		}
		if (sw_store_run_set_status(st, id, i % 7 == 3 ? SW_STATUS_FAILURE : SW_STATUS_SUCCESS,
					    NULL) < 0)
			die("run final");
		if (i % 1000 == 999) {
			if (sw_store_commit(st) < 0 || sw_store_begin(st) < 0)
				die("commit");
		}
	}
	for (int e = 0; e < 2; e++) {
		const char *env = e ? "prod" : "dev";
		struct sw_store_objref o = { "apps/v1", "Deployment", "shop", "web" };
		struct sw_store_inv_in inv[2] = {
			{ { "apps/v1", "Deployment", "shop", "web" }, "uid-1", SW_HEALTH_HEALTHY, NULL },
			{ { "v1", "Service", "shop", "web" }, "uid-2", SW_HEALTH_HEALTHY, NULL },
		};
		struct sw_store_drift_in dr = { 0 };
		struct sw_store_env_update u = SW_STORE_ENV_UPDATE_INIT;
		int64_t sync;
		for (int k = 0; k < 20; k++) {
			if (sw_store_sync_start(st, &sync, env, "0123456789abcdef0123456789abcdef01234567",
						SW_TRIGGER_MERGE, 0) < 0)
				die("sync");
			sw_store_sync_add_object(st, sync, &o, SW_OBJ_CONFIGURED, NULL);
			sw_store_sync_finish(st, sync, SW_SYNC_SUCCESS, SW_HEALTH_HEALTHY, "synced");
		}
		sw_store_inventory_replace(st, env, inv, 2);
		dr.environment = env;
		dr.ref = o;
		dr.fields = "{\"spec.replicas\": [3, 5]}";
		dr.manager = "kubectl-edit";
		dr.action = SW_DRIFT_HEALED;
		sw_store_drift_insert(st, &sync, &dr);
		u.synced_commit = u.desired_commit = "0123456789abcdef0123456789abcdef01234567";
		u.sync_status = SW_ENV_SYNCED;
		u.health = SW_HEALTH_HEALTHY;
		u.last_sync_at = now - 120000;
		u.last_sync_ms = 4200;
		sw_store_env_set(st, env, &u);
	}
	if (sw_store_commit(st) < 0)
		die("commit");
	sw_store_close(st);
	printf("fill-runs: %ld runs in %s\n", n, argv[1]);
	return 0;
}
