/*
 * test_deployer.c - the deployer (deploy/deployer.c) through the deploy
 * operations the engine calls, against the test API server
 * (build/tests/kubeapi, next to this binary), a real git mirror and real
 * storage: a deploy syncs and says what it did, a rollback marks the
 * environment, the rollback target is the last healthy other commit, an
 * environment without a cluster is an error, acceptance stages get the
 * cluster's address, and a drift healed in the cluster becomes a Slack
 * message in the outbox (kubectl makes the drift).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/error.h"
#include "lib/http.h"
#include "lib/pool.h"
#include "lib/proc.h"
#include "config/config.h"
#include "storage/store.h"
#include "git/git.h"
#include "report/report.h"
#include "deploy/deploy.h"
#include "tests/unit/kubeapi-util.h"
#include "tests/unit/slow.h"
#include "tests/unit/scratch.h"

/* libgit2 1.5 leaks pcre2 match data (see test_source.c). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libpcre2-8.so\n";
}

static char kubeapi[PATH_MAX];

static struct {
	char tmp[256], origin[300], data[300], kubeconfig[300];
	struct event_base *base;
	struct sw_http *http;
	struct sw_proc_mgr *procs;
	struct sw_pool *pool;
	struct sw_store *store;
	struct sw_config *cfg;
	struct sw_outbox *outbox;
	struct sw_deployer *dp;
	const struct sw_deploy_ops *ops;
	struct sw_test_kubeapi srv;
} F;

/* What the deploy operations reported back. */
struct answer {
	int done, ok;
	char msg[1024];
	struct sw_buf log;
};

static int syncs_finished;
static char last_trigger[16], last_result[16];

static void on_sync_finished(const char *env, const char *trigger, const char *result,
			     int64_t ms)
{
	syncs_finished++;
	snprintf(last_trigger, sizeof(last_trigger), "%s", trigger);
	snprintf(last_result, sizeof(last_result), "%s", result);
}

static void run_until(const int *counter, int want, long ms)
{
	int64_t end = sw_mono_ms() + sw_test_ms(ms);
	struct timeval tick = { 0, 20 * 1000 };
	while (*counter < want && sw_mono_ms() < end) {
		event_base_loopexit(F.base, &tick);
		event_base_dispatch(F.base);
	}
}

/* Commit `release` as the ConfigMap's data and fetch it into the mirror. */
static void commit(char sha[41], const char *release)
{
	struct sw_buf b = SW_BUF_INIT;
	char *rev = sw_asprintf("%s/rev.txt", F.tmp);

	assert_int_equal(sw_test_sh("set -e; cd '%s'; mkdir -p deploy;"
			    " printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: app\\n"
			    "data:\\n  release: \"%s\"\\n' > deploy/cm.yaml;"
			    " git add -A; git commit -q -m '%s'; git rev-parse HEAD > '%s'",
			    F.origin, release, release, rev), 0);
	assert_int_equal(sw_buf_read_file(&b, rev), 0);
	memcpy(sha, b.ptr, 40);
	sha[40] = 0;
	char *url = sw_asprintf("file://%s", F.origin);
	struct sw_source_repo r = { .name = "acme/shop", .url = url };
	assert_int_equal(sw_source_fetch(&r, F.data, sha), 0);
	free(url);
	free(rev);
	sw_buf_release(&b);
}

static void on_log(void *ctx, const char *line)
{
	struct answer *a = ctx;
	sw_buf_addf(&a->log, "%s\n", line);
}

static void on_done(void *ctx, int ok, const char *message)
{
	struct answer *a = ctx;
	a->done++;
	a->ok = ok;
	snprintf(a->msg, sizeof(a->msg), "%s", message);
}

/* Deploy `sha` to dev through the operations and wait for the answer. */
static void deploy(struct answer *a, const char *sha, enum sw_sync_trigger trigger)
{
	memset(a, 0, sizeof(*a));
	a->log = (struct sw_buf)SW_BUF_INIT;
	assert_int_equal(F.ops->deploy(F.ops->arg, "dev", "acme/shop", sha, trigger, 0, on_log,
				       on_done, a), 0);
	run_until(&a->done, 1, 60000);
	assert_int_equal(a->done, 1);
}

static int setup(void **state)
{
	struct sw_deployer_opts o = { 0 };
	char *path;
	FILE *f;

	if (access(kubeapi, X_OK) != 0) {
		fprintf(stderr, "no %s: build it with make\n", kubeapi);
		return -1;
	}
	memset(&F, 0, sizeof(F));
	syncs_finished = 0;
	if (sw_test_tmpdir(F.tmp, sizeof(F.tmp), "deployer") < 0)
		return -1;
	snprintf(F.origin, sizeof(F.origin), "%s/origin", F.tmp);
	snprintf(F.data, sizeof(F.data), "%s/data", F.tmp);
	snprintf(F.kubeconfig, sizeof(F.kubeconfig), "%s/kubeconfig", F.tmp);
	assert_int_equal(sw_test_sh("git init -q -b dev '%s'", F.origin), 0);

	path = sw_asprintf("%s/kubeapi.json", F.tmp);
	const char *args[] = { "--state-file", path, NULL };
	assert_int_equal(sw_test_kubeapi_start(&F.srv, kubeapi, 0, 50, args), 0);
	free(path);
	assert_non_null(f = fopen(F.kubeconfig, "w"));
	fprintf(f, "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
		   "clusters:\n- name: c\n  cluster:\n    server: %s\n"
		   "contexts:\n- name: test\n  context: {cluster: c, user: u}\n"
		   "users:\n- name: u\n  user: {}\n", F.srv.url);
	fclose(f);

	/* Slack at a port nobody answers: messages stay in the outbox */
	setenv("SLACK_URL", "http://127.0.0.1:9/hook", 1);
	path = sw_asprintf("%s/slipway.yaml", F.tmp);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "server:\n  data_dir: %s\n"
		   "slack:\n  webhook_url: {secret_env: SLACK_URL}\n"
		   "repositories:\n  - name: acme/shop\n    url: file://%s\n"
		   "environments:\n"
		   "  - name: dev\n    branch: dev\n"
		   "    cluster: {kubeconfig: %s, namespace: default}\n"
		   "    manifests: [deploy]\n    health_timeout: %ds\n"
		   "  - name: prod\n    branch: main\n", F.data, F.origin, F.kubeconfig,
		sw_test_s(20));
	fclose(f);
	assert_int_equal(sw_config_load(&F.cfg, path), 0);
	free(path);

	F.base = event_base_new();
	assert_int_equal(sw_http_new(&F.http, F.base), 0);
	assert_int_equal(sw_proc_mgr_new(&F.procs, F.base), 0);
	assert_int_equal(sw_pool_new(&F.pool, F.base, 2), 0);
	assert_int_equal(sw_store_open(&F.store, F.data), 0);
	assert_int_equal(sw_store_env_upsert(F.store, "dev", "dev"), 0);
	assert_int_equal(sw_outbox_new(&F.outbox, F.base, F.http, F.store, F.cfg), 0);
	o.base = F.base;
	o.pool = F.pool;
	o.store = F.store;
	o.http = F.http;
	o.procs = F.procs;
	o.outbox = F.outbox;
	o.cfg = F.cfg;
	o.on_sync_finished = on_sync_finished;
	assert_int_equal(sw_deployer_new(&F.dp, &o), 0);
	F.ops = sw_deployer_ops(F.dp);
	return 0;
}

static int teardown(void **state)
{
	sw_deployer_free(F.dp);
	sw_outbox_free(F.outbox);
	sw_test_kubeapi_stop(&F.srv);
	sw_pool_free(F.pool);
	sw_store_close(F.store);
	sw_proc_mgr_free(F.procs);
	sw_http_free(F.http);
	event_base_free(F.base);
	sw_config_free(F.cfg);
	sw_test_rmtree(F.tmp);
	return 0;
}

/* A deploy syncs the commit, logs each object, says what it did, and is
 * counted; a rollback marks the environment rolled back to its commit,
 * the next deploy clears that; the rollback target is the newest healthy
 * deploy of another commit. */
static void test_deploy_and_rollback(void **state)
{
	struct answer a;
	struct sw_store_env env;
	char one[41], two[41], *target;

	commit(one, "one");
	deploy(&a, one, SW_TRIGGER_MERGE);
	assert_true(a.ok);
	assert_non_null(strstr(a.msg, "1 created"));
	assert_non_null(strstr(a.msg, "healthy"));
	assert_non_null(strstr(a.log.ptr, "created    v1 ConfigMap default/app"));
	assert_int_equal(syncs_finished, 1);
	assert_string_equal(last_trigger, "merge");
	assert_string_equal(last_result, "success");
	sw_buf_release(&a.log);

	commit(two, "two");
	deploy(&a, two, SW_TRIGGER_MERGE);
	assert_true(a.ok);
	assert_non_null(strstr(a.msg, "1 configured"));
	sw_buf_release(&a.log);

	target = F.ops->rollback_target(F.ops->arg, "dev", two);
	assert_non_null(target);
	assert_string_equal(target, one);
	deploy(&a, target, SW_TRIGGER_ROLLBACK);
	assert_true(a.ok);
	assert_string_equal(last_trigger, "rollback");
	sw_buf_release(&a.log);
	assert_int_equal(sw_store_env_get(F.store, "dev", &env), 0);
	assert_int_equal(env.sync_status, SW_ENV_ROLLED_BACK);
	assert_string_equal(env.rolled_back_to, one);
	sw_store_env_release(&env);
	free(target);

	deploy(&a, two, SW_TRIGGER_MERGE);
	assert_true(a.ok);
	sw_buf_release(&a.log);
	assert_int_equal(sw_store_env_get(F.store, "dev", &env), 0);
	assert_int_not_equal(env.sync_status, SW_ENV_ROLLED_BACK);
	assert_true(!env.rolled_back_to || !*env.rolled_back_to);
	sw_store_env_release(&env);
	assert_int_equal(syncs_finished, 4);
}

/* No cluster, no deploy: an error at once, and no callback. Acceptance
 * stages of dev learn where its cluster is. */
static void test_no_cluster_and_stage_env(void **state)
{
	struct answer a = { 0 };
	char **env;

	assert_int_equal(F.ops->deploy(F.ops->arg, "prod", "acme/shop", "0123456789abcdef0123",
				       SW_TRIGGER_MERGE, 0, on_log, on_done, &a), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "environment prod has no cluster configured"));
	assert_int_equal(a.done, 0);
	assert_null(F.ops->rollback_target(F.ops->arg, "dev", "0123456789abcdef0123"));

	env = F.ops->stage_env(F.ops->arg, "dev");
	char *server = sw_asprintf("SLIPWAY_KUBE_SERVER=%s", F.srv.url);
	assert_string_equal(env[0], server);
	assert_string_equal(env[1], "SLIPWAY_KUBE_NAMESPACE=default");
	assert_null(env[2]);
	free(server);
	for (size_t i = 0; env[i]; i++)
		free(env[i]);
	free(env);
}

static int slack_rows;

/* Count the drift messages waiting for Slack. */
static void count_drift_messages(char *payload, size_t n)
{
	struct sw_store_outbox_list l = { 0 };
	slack_rows = 0;
	assert_int_equal(sw_store_outbox_due(F.store, INT64_MAX, 100, &l), 0);
	for (size_t i = 0; i < l.n; i++)
		if (!strncmp(l.v[i].idempotency_key, "slack:drift:", 12)) {
			slack_rows++;
			snprintf(payload, n, "%s", l.v[i].payload);
		}
	sw_store_outbox_list_release(&l);
}

/* A change made in the cluster is healed by the drift watcher, and the
 * healed drift goes to Slack through the outbox, naming the object, the
 * field and the field manager that made the change (also when the watcher
 * found it in a list, which brings no managedFields). */
static void test_drift_to_slack(void **state)
{
	struct answer a;
	char one[41], payload[8192] = "";
	int64_t end;

	commit(one, "one");
	deploy(&a, one, SW_TRIGGER_MERGE);
	assert_true(a.ok);
	sw_buf_release(&a.log);
	/* the watcher follows the syncer's desired state within a second */
	end = sw_mono_ms() + sw_test_ms(20000);
	while (sw_mono_ms() < end) {
		int rc = sw_test_sh("kubectl --kubeconfig '%s' --cache-dir '%s/cache' --request-timeout=%ds"
			    " patch configmap app -n default --type=merge"
			    " -p '{\"data\":{\"release\":\"hand-made\"}}' >/dev/null 2>&1",
			    F.kubeconfig, F.tmp, sw_test_s(10));
		assert_int_equal(rc, 0);
		int64_t wait = sw_mono_ms() + sw_test_ms(3000);
		while (sw_mono_ms() < wait && !slack_rows) {
			struct timeval tick = { 0, 50 * 1000 };
			event_base_loopexit(F.base, &tick);
			event_base_dispatch(F.base);
			count_drift_messages(payload, sizeof(payload));
		}
		if (slack_rows)
			break;
	}
	assert_true(slack_rows >= 1);
	assert_non_null(strstr(payload, "ConfigMap default/app: data.release changed by kubectl-patch"));
	assert_non_null(strstr(payload, "re-applied"));
}

static int group_setup(void **state)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return -1;
	self[n] = '\0';
	snprintf(kubeapi, sizeof(kubeapi), "%s/kubeapi", dirname(self));
	sw_test_git_env();
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_deploy_and_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_cluster_and_stage_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drift_to_slack, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
