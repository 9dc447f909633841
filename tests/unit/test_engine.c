/*
 * test_engine.c - the engine's intake (pipeline/intake.c) and the run
 * through it, on the loop: real GitHub payloads (the shared fixtures, with
 * the repository, refs and commits of a real git repository made here),
 * real storage, the local runner, and deploy operations of the test's own
 * that record what the engine asks of them (the deployer is tested against
 * a cluster in test_deployer.c).
 *
 * The origin repository (made once, in the group set-up):
 *   main     .slipway.yml: `lint` (fails with 3 when app.txt says FAIL) and
 *            `acceptance` (deploy only: finds the marker the deploy wrote)
 *   feature  C_OK (app.txt "fine"), then C_FAIL (app.txt "FAIL")
 *   dev      C_OK
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/pool.h"
#include "lib/proc.h"
#include "config/config.h"
#include "storage/store.h"
#include "runners/runner.h"
#include "deploy/deploy.h"
#include "pipeline/pipeline.h"
#include "pipeline/run-int.h"
#include "tests/unit/slow.h"
#include "tests/unit/scratch.h"

/* libgit2 1.5 leaks pcre2 match data (see test_source.c). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libpcre2-8.so\n";
}

static char tmp[256], origin[300], fixtures[300];
static char c_ok[41], c_fail[41];

/* One engine per test, on a data directory of its own. */
static struct {
	struct event_base *base;
	struct sw_pool *pool;
	struct sw_proc_mgr *procs;
	struct sw_store *store;
	struct sw_runner *runner;
	struct sw_config *cfg;
	struct sw_engine *engine;
	char data[320];
} E;

/* What the engine asked of the deploy operations. */
static struct {
	int calls;
	char env[32], repo[64], commit[41];
	enum sw_sync_trigger trigger;
	int64_t run_id;
	int fail;                    /* answer done(ok = 0) */
	sw_deploy_done_fn done;
	void *ctx;
	struct event *later;
} D;

static int finished;             /* runs that reached a final status */

static void on_run_finished(const char *kind, const char *status, int64_t ms)
{
	finished++;
}

static void rev_parse(char out[41], const char *rev)
{
	struct sw_buf b = SW_BUF_INIT;
	char *f = sw_asprintf("%s/rev.txt", tmp);
	assert_int_equal(sw_test_sh("git -C '%s/work' rev-parse '%s' > '%s'", tmp, rev, f), 0);
	assert_int_equal(sw_buf_read_file(&b, f), 0);
	memcpy(out, b.ptr, 40);
	out[40] = 0;
	sw_buf_release(&b);
	free(f);
}

/* ---- deploy operations of the test ---- */

static void deploy_answer(evutil_socket_t fd, short what, void *arg)
{
	char *marker = sw_asprintf("%s/deployed-%s", tmp, D.commit);
	if (!D.fail) {
		FILE *f = fopen(marker, "w");
		assert_non_null(f);
		fclose(f);
	}
	free(marker);
	D.done(D.ctx, !D.fail, D.fail ? "health: web not ready after 4s" : "synced");
}

static int op_deploy(void *arg, const char *env, const char *repo, const char *commit,
		     enum sw_sync_trigger trigger, int64_t run_id, sw_deploy_log_fn log,
		     sw_deploy_done_fn done, void *ctx)
{
	struct timeval now = { 0, 0 };

	D.calls++;
	snprintf(D.env, sizeof(D.env), "%s", env);
	snprintf(D.repo, sizeof(D.repo), "%s", repo);
	snprintf(D.commit, sizeof(D.commit), "%s", commit);
	D.trigger = trigger;
	D.run_id = run_id;
	D.done = done;
	D.ctx = ctx;
	log(ctx, "applying 1 object");
	/* done follows later, on the loop, as the contract says */
	evtimer_add(D.later, &now);
	return 0;
}

static const struct sw_deploy_ops ops = { .deploy = op_deploy };

/* ---- set-up ---- */

static int group_setup(void **state)
{
	static const char *const dirs[] = { "../shared/fixtures/github",
					    "/work/shared/fixtures/github" };
	FILE *f;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && !fixtures[0]; i++)
		if (access(dirs[i], R_OK) == 0)
			snprintf(fixtures, sizeof(fixtures), "%s", dirs[i]);
	if (!fixtures[0] || sw_test_tmpdir(tmp, sizeof(tmp), "engine") < 0)
		return -1;
	snprintf(origin, sizeof(origin), "%s/origin.git", tmp);
	if (sw_test_sh("git init -q --bare '%s' && git clone -q '%s' '%s/work' 2>/dev/null", origin, origin,
	       tmp))
		return -1;
	char *spec = sw_asprintf("%s/work/.slipway.yml", tmp);
	if (!(f = fopen(spec, "w")))
		return -1;
	fprintf(f, "stages:\n"
		   "  - name: lint\n"
		   "    commands:\n"
		   "      - echo \"lint $SLIPWAY_COMMIT\"\n"
		   "      - if grep -q FAIL app.txt; then echo FAIL found >&2; exit 3; fi\n"
		   "  - name: acceptance\n"
		   "    commands:\n"
		   "      - test -f \"%s/deployed-$SLIPWAY_COMMIT\"\n"
		   "    when: {event: deploy}\n", tmp);
	fclose(f);
	free(spec);
	if (sw_test_sh("cd '%s/work' && git config user.email t@example.com && git config user.name T &&"
	       " git checkout -q -b main && echo hello > app.txt && git add -A &&"
	       " git commit -qm initial && git push -q origin main &&"
	       " git checkout -q -b feature && echo fine > app.txt && git commit -qam ok &&"
	       " git push -q origin feature", tmp))
		return -1;
	rev_parse(c_ok, "HEAD");
	if (sw_test_sh("cd '%s/work' && git push -q origin HEAD:dev && echo FAIL > app.txt &&"
	       " git commit -qam fail && git push -q origin feature", tmp))
		return -1;
	rev_parse(c_fail, "HEAD");
	return 0;
}

static int group_teardown(void **state)
{
	sw_test_rmtree(tmp);
	return 0;
}

static int setup(void **state)
{
	static int n;
	struct sw_engine_deps deps = { 0 };
	char *path;
	FILE *f;

	memset(&D, 0, sizeof(D));
	finished = 0;
	snprintf(E.data, sizeof(E.data), "%s/data-%d", tmp, ++n);
	path = sw_asprintf("%s/slipway-%d.yaml", tmp, n);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "server:\n  data_dir: %s\n"
		   "runner:\n  backend: local\n  timeout: 1m\n"
		   "repositories:\n  - name: acme/shop\n    url: file://%s\n"
		   "environments:\n"
		   "  - name: dev\n    branch: dev\n"
		   "    cluster: {kubeconfig: %s/kubeconfig, namespace: default}\n"
		   "    manifests: [deploy]\n", E.data, origin, tmp);
	fclose(f);
	assert_int_equal(sw_config_load(&E.cfg, path), 0);
	free(path);

	E.base = event_base_new();
	D.later = evtimer_new(E.base, deploy_answer, NULL);
	assert_int_equal(sw_store_open(&E.store, E.data), 0);
	assert_int_equal(sw_pool_new(&E.pool, E.base, 2), 0);
	assert_int_equal(sw_proc_mgr_new(&E.procs, E.base), 0);
	assert_int_equal(sw_runner_local_new(&E.runner, E.procs), 0);
	deps.base = E.base;
	deps.pool = E.pool;
	deps.store = E.store;
	deps.runner = E.runner;
	deps.cfg = E.cfg;
	deps.deploy = &ops;
	deps.on_run_finished = on_run_finished;
	assert_int_equal(sw_engine_new(&E.engine, &deps), 0);
	return 0;
}

/* Run the loop until `*counter` reaches `want`; false when that did not
 * happen within the (scaled) deadline. */
static int loop_until(const int *counter, int want)
{
	int64_t deadline = sw_mono_ms() + sw_test_ms(60000);
	struct timeval tick = { 0, 20 * 1000 };

	while (*counter < want && sw_mono_ms() < deadline) {
		event_base_loopexit(E.base, &tick);
		event_base_dispatch(E.base);
	}
	return *counter >= want;
}

static int teardown(void **state)
{
	sw_engine_stop(E.engine);
	for (int i = 0; i < 500 && sw_engine_busy(E.engine); i++) {
		struct timeval tick = { 0, 10 * 1000 };
		event_base_loopexit(E.base, &tick);
		event_base_dispatch(E.base);
	}
	sw_engine_free(E.engine);
	sw_runner_free(E.runner);
	sw_proc_mgr_free(E.procs);
	sw_pool_free(E.pool);
	sw_store_close(E.store);
	event_free(D.later);
	event_base_free(E.base);
	sw_config_free(E.cfg);
	memset(&E, 0, sizeof(E));
	return 0;
}

/* ---- deliveries ---- */

static json_t *fixture(const char *name)
{
	char *p = sw_asprintf("%s/%s", fixtures, name);
	json_t *j = json_load_file(p, 0, NULL);
	free(p);
	assert_non_null(j);
	return j;
}

/* Set a.b.c = v (a string) in j, making the objects on the way. */
static void set_str(json_t *j, const char *path, const char *v)
{
	char *p = sw_strdup(path), *save = NULL, *k = strtok_r(p, ".", &save), *next;
	while ((next = strtok_r(NULL, ".", &save))) {
		json_t *c = json_object_get(j, k);
		if (!json_is_object(c)) {
			c = json_object();
			json_object_set_new(j, k, c);
		}
		j = c;
		k = next;
	}
	json_object_set_new(j, k, json_string(v));
	free(p);
}

/* Store a delivery and hand it to the engine, as the webhook receiver does. */
static int64_t deliver(const char *event, const char *guid, json_t *payload)
{
	struct sw_store_delivery_in in = { 0 };
	char *body = json_dumps(payload, JSON_COMPACT);
	int64_t id = 0;

	in.guid = guid;
	in.event = event;
	in.repo = "acme/shop";
	in.headers = "{}";
	in.body = body;
	in.body_len = strlen(body);
	assert_int_equal(sw_store_delivery_insert(E.store, &id, &in), 0);
	sw_engine_delivery(E.engine, id, event, body, strlen(body));
	free(body);
	json_decref(payload);
	return id;
}

static json_t *pr_payload(const char *sha, int number)
{
	json_t *j = fixture("pull_request-opened.json");
	set_str(j, "action", "opened");
	json_object_set_new(j, "number", json_integer(number));
	json_object_set_new(json_object_get(j, "pull_request"), "number", json_integer(number));
	json_object_set_new(json_object_get(j, "pull_request"), "draft", json_false());
	set_str(j, "pull_request.head.sha", sha);
	set_str(j, "pull_request.head.ref", "feature");
	set_str(j, "pull_request.base.ref", "main");
	set_str(j, "pull_request.title", "Change");
	set_str(j, "repository.full_name", "acme/shop");
	set_str(j, "pull_request.head.repo.full_name", "acme/shop");
	return j;
}

static json_t *push_payload(const char *ref, const char *sha)
{
	json_t *j = fixture("push-branch.json");
	set_str(j, "ref", ref);
	set_str(j, "after", sha);
	set_str(j, "head_commit.id", sha);
	set_str(j, "repository.full_name", "acme/shop");
	json_object_set_new(j, "deleted", json_false());
	return j;
}

/* The delivery's state and run (0 = none). */
static enum sw_delivery_state delivery(int64_t id, int64_t *run_id, char *reason, size_t n)
{
	struct sw_store_delivery d;
	assert_int_equal(sw_store_delivery_get(E.store, id, &d), 0);
	enum sw_delivery_state st = d.state;
	if (run_id)
		*run_id = d.run_id;
	if (reason)
		snprintf(reason, n, "%s", d.reason ? d.reason : "");
	sw_store_delivery_release(&d);
	return st;
}

/* "name:status[:exit]" of each stage, comma-separated. */
static void stages(int64_t run_id, char *out, size_t n)
{
	struct sw_store_stage_list l = { 0 };
	struct sw_buf b = SW_BUF_INIT;
	assert_int_equal(sw_store_stages_list(E.store, run_id, &l), 0);
	for (size_t i = 0; i < l.n; i++) {
		sw_buf_addf(&b, "%s%s:%s", i ? "," : "", l.v[i].name,
			    sw_store_status_str(l.v[i].status));
		if (l.v[i].exit_code >= 0)
			sw_buf_addf(&b, ":%d", l.v[i].exit_code);
	}
	snprintf(out, n, "%s", b.ptr ? b.ptr : "");
	sw_buf_release(&b);
	sw_store_stage_list_release(&l);
}

static enum sw_status run_status(int64_t id, struct sw_store_run *keep)
{
	struct sw_store_run r;
	assert_int_equal(sw_store_run_get(E.store, id, &r), 0);
	enum sw_status st = r.status;
	if (keep)
		*keep = r;
	else
		sw_store_run_release(&r);
	return st;
}

/* A PR runs its checks and never deploys; a failing check fails the run
 * with the stage's exit code. */
static void test_pull_request(void **state)
{
	char st[200];
	int64_t ok, bad, r1, r2;
	struct sw_store_run row;

	ok = deliver("pull_request", "guid-pr-ok", pr_payload(c_ok, 7));
	assert_int_equal(delivery(ok, &r1, NULL, 0), SW_DELIVERY_MAPPED);
	assert_true(r1 > 0);
	assert_true(loop_until(&finished, 1));
	assert_int_equal(run_status(r1, &row), SW_STATUS_SUCCESS);
	assert_int_equal(row.kind, SW_RUN_PULL_REQUEST);
	assert_int_equal(row.pr_number, 7);
	assert_string_equal(row.commit_sha, c_ok);
	sw_store_run_release(&row);
	stages(r1, st, sizeof(st));
	assert_string_equal(st, "lint:success:0");

	bad = deliver("pull_request", "guid-pr-fail", pr_payload(c_fail, 8));
	assert_int_equal(delivery(bad, &r2, NULL, 0), SW_DELIVERY_MAPPED);
	assert_true(loop_until(&finished, 2));
	assert_int_equal(run_status(r2, NULL), SW_STATUS_FAILURE);
	stages(r2, st, sizeof(st));
	assert_string_equal(st, "lint:failure:3");
	assert_int_equal(D.calls, 0);
}

/* A push to dev: checks, then the deploy through the operations (trigger
 * merge, this commit and run), then acceptance, which sees the deploy. */
static void test_push_deploys(void **state)
{
	char st[200];
	int64_t id, run;
	struct sw_store_run row;

	id = deliver("push", "guid-push-dev", push_payload("refs/heads/dev", c_ok));
	assert_int_equal(delivery(id, &run, NULL, 0), SW_DELIVERY_MAPPED);
	assert_true(loop_until(&finished, 1));
	assert_int_equal(run_status(run, &row), SW_STATUS_SUCCESS);
	assert_string_equal(row.environment, "dev");
	sw_store_run_release(&row);
	stages(run, st, sizeof(st));
	assert_string_equal(st, "lint:success:0,deploy:success:0,acceptance:success:0");
	assert_int_equal(D.calls, 1);
	assert_string_equal(D.env, "dev");
	assert_string_equal(D.repo, "acme/shop");
	assert_string_equal(D.commit, c_ok);
	assert_int_equal(D.trigger, SW_TRIGGER_MERGE);
	assert_int_equal(D.run_id, run);
}

/* A deploy that fails fails the run with its message; acceptance is
 * skipped, never run against what did not deploy. */
static void test_deploy_fails(void **state)
{
	char st[200];
	int64_t id, run;
	struct sw_store_run row;

	D.fail = 1;
	id = deliver("push", "guid-push-bad", push_payload("refs/heads/dev", c_ok));
	assert_int_equal(delivery(id, &run, NULL, 0), SW_DELIVERY_MAPPED);
	assert_true(loop_until(&finished, 1));
	assert_int_equal(run_status(run, &row), SW_STATUS_FAILURE);
	sw_store_run_release(&row);
	stages(run, st, sizeof(st));
	assert_string_equal(st, "lint:success:0,deploy:failure,acceptance:skipped");
	struct sw_store_stage_list l = { 0 };
	assert_int_equal(sw_store_stages_list(E.store, run, &l), 0);
	assert_non_null(strstr(l.v[1].reason, "health: web not ready"));
	sw_store_stage_list_release(&l);
}

/* What maps to nothing is IGNORED with a reason and makes no run. */
static void test_ignored(void **state)
{
	char why[300];
	int64_t run = -1, id;
	json_t *j;

	id = deliver("push", "guid-tag", push_payload("refs/tags/v1", c_ok));
	assert_int_equal(delivery(id, &run, why, sizeof(why)), SW_DELIVERY_IGNORED);
	assert_int_equal(run, 0);
	assert_true(why[0]);

	j = push_payload("refs/heads/feature", c_ok);
	set_str(j, "repository.full_name", "someone/else");
	id = deliver("push", "guid-other-repo", j);
	assert_int_equal(delivery(id, &run, why, sizeof(why)), SW_DELIVERY_IGNORED);
	assert_int_equal(run, 0);
	assert_non_null(strstr(why, "someone/else"));

	id = deliver("ping", "guid-ping", fixture("ping.json"));
	assert_int_equal(delivery(id, &run, why, sizeof(why)), SW_DELIVERY_IGNORED);
	assert_int_equal(run, 0);
	assert_int_equal(D.calls, 0);
}

/* A delivery stored but not yet mapped when the daemon stopped is mapped
 * at start-up, and its run runs. */
static void test_recover_delivery(void **state)
{
	struct sw_store_delivery_in in = { 0 };
	json_t *j = pr_payload(c_ok, 9);
	char *body = json_dumps(j, JSON_COMPACT);
	int64_t id = 0, run = 0;

	in.guid = "guid-left";
	in.event = "pull_request";
	in.repo = "acme/shop";
	in.headers = "{}";
	in.body = body;
	in.body_len = strlen(body);
	assert_int_equal(sw_store_delivery_insert(E.store, &id, &in), 0);
	assert_int_equal(delivery(id, NULL, NULL, 0), SW_DELIVERY_QUEUED);
	assert_int_equal(sw_engine_recover(E.engine), 0);
	assert_int_equal(delivery(id, &run, NULL, 0), SW_DELIVERY_MAPPED);
	assert_true(loop_until(&finished, 1));
	assert_int_equal(run_status(run, NULL), SW_STATUS_SUCCESS);
	free(body);
	json_decref(j);
}

/* A run left RUNNING is marked INTERRUPTED and retried as a new attempt;
 * one that was interrupted while preparing a second time is not retried
 * blindly (its input may be what killed the daemon): ERROR with a reason. */
static void test_recover_runs(void **state)
{
	struct sw_store_run_in in = { 0 };
	struct sw_store_run_list l = { 0 };
	struct sw_store_run_filter f = SW_STORE_RUN_FILTER_INIT;
	struct sw_store_run row;
	int64_t left, crashed;
	char key[80];

	in.kind = SW_RUN_PULL_REQUEST;
	in.repo = "acme/shop";
	in.ref = "refs/pull/10/head";
	in.branch = "feature";
	in.commit_sha = c_ok;
	in.pr_number = 10;
	in.attempt = 1;
	assert_int_equal(sw_store_run_create(E.store, &left, &in), 0);
	assert_int_equal(sw_store_run_set_status(E.store, left, SW_STATUS_RUNNING, NULL), 0);
	in.pr_number = 11;
	assert_int_equal(sw_store_run_create(E.store, &crashed, &in), 0);
	assert_int_equal(sw_store_run_set_status(E.store, crashed, SW_STATUS_RUNNING, NULL), 0);
	snprintf(key, sizeof(key), PREPARING_KEY_FMT, (long long)crashed);
	assert_int_equal(sw_store_kv_set(E.store, key, "1"), 0);
	snprintf(key, sizeof(key), PREP_INTERRUPTS_KEY_FMT, (long long)crashed);
	assert_int_equal(sw_store_kv_set(E.store, key, "1"), 0);

	assert_int_equal(sw_engine_recover(E.engine), 0);
	assert_int_equal(run_status(left, &row), SW_STATUS_INTERRUPTED);
	assert_non_null(strstr(row.reason, "retried as run"));
	sw_store_run_release(&row);
	assert_int_equal(run_status(crashed, &row), SW_STATUS_ERROR);
	assert_non_null(strstr(row.reason, "stopped twice while preparing"));
	sw_store_run_release(&row);

	/* the retry: attempt 2 of the same commit, and it runs */
	assert_true(loop_until(&finished, 1));
	assert_int_equal(sw_store_run_list(E.store, &f, &l), 0);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.v[0].pr_number, 10);   /* newest first */
	assert_int_equal(l.v[0].attempt, 2);
	assert_int_equal(l.v[0].status, SW_STATUS_SUCCESS);
	sw_store_run_list_release(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pull_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_push_deploys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deploy_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_delivery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_runs, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
