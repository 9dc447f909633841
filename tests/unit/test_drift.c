/*
 * test_drift.c - drift detection and self-heal against the real test API
 * server (build/tests/kubeapi, next to this binary) and kubectl.
 *
 * Each test starts a server, makes a first sync with the real syncer
 * (deploy/deploy.h) from a directory of manifests, starts a drift watcher
 * on it, then edits the cluster out of band with kubectl: a patched managed
 * field is healed and recorded with its path and manager, a deleted object
 * is recreated, self_heal off only reports (and marks the environment
 * out_of_sync), unmanaged changes and our own applies are no drift, a
 * controller that keeps fighting is backed off, and drift is still found
 * after the watch had to relist (410). The comparison itself is tested
 * without a server first.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "tests/unit/kubeapi-util.h"
#include "tests/unit/slow.h"
#include "lib/clock.h"
#include "config/config.h"
#include "lib/http.h"
#include "lib/pool.h"
#include "lib/proc.h"
#include "deploy/deploy.h"
#include "manifests/manifests.h"
#include "storage/store.h"

/* ---- the comparison, no server ---------------------------------------- */

static json_t *load(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);
	if (!j)
		fail_msg("%s: %s", s, e.text);
	return j;
}

static const char DEP[] =
	"{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\","
	"\"namespace\":\"default\",\"labels\":{\"app\":\"web\"}},\"spec\":{\"replicas\":2,"
	"\"template\":{\"spec\":{\"containers\":[{\"name\":\"web\",\"image\":\"nginx:1\","
	"\"ports\":[{\"containerPort\":80}],\"env\":[{\"name\":\"A\",\"value\":\"1\"}]}]}}}}";

static void test_diff(void **state)
{
	json_t *d = load(DEP), *l, *diffs = NULL;

	/* Server additions (status, uid, defaults, foreign labels, a sidecar) are no drift. */
	l = load("{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"web\","
		 "\"namespace\":\"default\",\"uid\":\"u\",\"resourceVersion\":\"9\",\"generation\":3,"
		 "\"labels\":{\"app\":\"web\",\"team\":\"x\"}},\"spec\":{\"replicas\":2.0,"
		 "\"strategy\":{\"type\":\"RollingUpdate\"},\"template\":{\"spec\":{\"containers\":["
		 "{\"name\":\"sidecar\",\"image\":\"envoy\"},{\"name\":\"web\",\"image\":\"nginx:1\","
		 "\"imagePullPolicy\":\"IfNotPresent\",\"ports\":[{\"containerPort\":80,"
		 "\"protocol\":\"TCP\"}],\"env\":[{\"name\":\"B\",\"value\":\"2\"},{\"name\":\"A\","
		 "\"value\":\"1\"}]}]}}},\"status\":{\"replicas\":2}}");
	assert_int_equal(sw_drift_diff(d, NULL, l, &diffs), 0);
	assert_int_equal(json_array_size(diffs), 0);
	json_decref(diffs);

	/* A changed image and replicas, an env var gone. */
	json_object_set_new(json_object_get(l, "spec"), "replicas", json_integer(5));
	{
		json_t *c = json_array_get(json_object_get(json_object_get(json_object_get(
			json_object_get(l, "spec"), "template"), "spec"), "containers"), 1);
		json_object_set_new(c, "image", json_string("nginx:2"));
		json_array_remove(json_object_get(c, "env"), 1);
	}
	assert_int_equal(sw_drift_diff(d, NULL, l, &diffs), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(diffs, 0), "path")),
			    "spec.replicas");
	assert_string_equal(json_string_value(json_object_get(json_array_get(diffs, 1), "path")),
			    "spec.template.spec.containers[name=web].image");
	assert_string_equal(json_string_value(json_object_get(json_array_get(diffs, 2), "path")),
			    "spec.template.spec.containers[name=web].env[name=A]");

	/* Blame: the Update manager whose fields cover the path, not slipway. */
	json_object_set_new(json_object_get(l, "metadata"), "managedFields", load(
		"[{\"manager\":\"slipway\",\"operation\":\"Apply\",\"time\":\"2026-01-01T00:00:09Z\","
		"\"fieldsV1\":{\"f:spec\":{\"f:replicas\":{}}}},"
		"{\"manager\":\"hpa\",\"operation\":\"Update\",\"time\":\"2026-01-01T00:00:05Z\","
		"\"fieldsV1\":{\"f:spec\":{\"f:replicas\":{}}}},"
		"{\"manager\":\"other\",\"operation\":\"Update\",\"time\":\"2026-01-01T00:00:07Z\","
		"\"fieldsV1\":{\"f:metadata\":{\"f:labels\":{\"f:team\":{}}}}}]"));
	json_array_remove(diffs, 2);
	json_array_remove(diffs, 1);
	assert_string_equal(sw_drift_manager(l, diffs, "slipway"), "hpa");
	/* Nobody covers the image: the latest non-slipway manager. */
	json_decref(diffs);
	sw_drift_diff(d, NULL, l, &diffs);
	json_array_remove(diffs, 0);
	assert_string_equal(sw_drift_manager(l, diffs, "slipway"), "other");
	json_decref(diffs);

	/* Gone altogether. */
	assert_int_equal(sw_drift_diff(d, NULL, NULL, NULL), 1);
	/* An expected (dry-run) value decides over the desired one. */
	{
		json_t *e = json_deep_copy(d);
		json_object_set_new(json_object_get(e, "spec"), "replicas", json_integer(5));
		json_t *l2 = json_deep_copy(d);
		json_object_set_new(json_object_get(l2, "spec"), "replicas", json_integer(5));
		assert_int_equal(sw_drift_diff(d, e, l2, NULL), 0);
		json_decref(e);
		json_decref(l2);
	}
	json_decref(l);
	json_decref(d);
}

/* ---- harness ---------------------------------------------------------- */

struct fx {
	struct event_base *base;
	struct sw_http *http;
	struct sw_proc_mgr *procs;
	struct sw_pool *pool;
	struct event *guard;
	char kubeapi[PATH_MAX];
	char tmp[64];
	char url[128];
	char kc[128];
	pid_t srv;
	int srv_fd;
	pid_t fighter;
	struct sw_store *store;
	struct sw_syncer *syncer;
	struct sw_drift *dw;
	struct sw_cfg_env env;
	/* notifications */
	int notes, healed, reported, failed, fighting;
	char last_manager[64];
};

static void guard_cb(evutil_socket_t fd, short what, void *arg)
{
}

static void run_loop(struct fx *f, const int *counter, int want, long ms)
{
	int64_t end = sw_mono_ms() + ms;
	while (*counter < want && sw_mono_ms() < end)
		event_base_loop(f->base, EVLOOP_ONCE);
}

/* Run the loop until *counter reaches want; ms is a deadline (scaled). */
static void run_until(struct fx *f, const int *counter, int want, long ms)
{
	run_loop(f, counter, want, sw_test_ms(ms));
}

/* Run the loop for ms (a duration the test observes: not scaled). */
static void run_for(struct fx *f, long ms)
{
	int never = 0;
	run_loop(f, &never, 1, ms);
}

static void server_start(struct fx *f, const char *const *extra)
{
	struct sw_test_kubeapi k;
	assert_int_equal(sw_test_kubeapi_start(&k, f->kubeapi, 0, 20, extra), 0);
	f->srv = k.pid;
	f->srv_fd = k.out_fd;
	snprintf(f->url, sizeof(f->url), "%s", k.url);
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

static void on_note(const struct sw_drift_note *n, void *arg)
{
	struct fx *f = arg;
	f->notes++;
	f->healed += n->action == SW_DRIFT_HEALED;
	f->reported += n->action == SW_DRIFT_REPORTED;
	f->failed += n->action == SW_DRIFT_HEAL_FAILED;
	f->fighting += n->fighting;
	snprintf(f->last_manager, sizeof(f->last_manager), "%s", n->manager ? n->manager : "");
}

static const char MANIFESTS[] =
	"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n"
	"  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n"
	"    spec:\n      containers:\n      - name: web\n        image: nginx:1.25\n"
	"        ports:\n        - containerPort: 80\n"
	"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: fast\n"
	"---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: hunter2\n";

struct syncdone {
	int done;
	enum sw_sync_status status;
	char msg[512];
};

static void synced(const struct sw_sync_result *r, void *arg)
{
	struct syncdone *d = arg;
	d->done++;
	d->status = r->status;
	snprintf(d->msg, sizeof(d->msg), "%s", r->message);
}

/*
 * A server (extra args), a store with env "dev", the syncer with a first
 * sync of MANIFESTS, and a drift watcher.
 */
static void start(struct fx *f, const char *const *extra, int self_heal,
		  const struct sw_drift_opts *dopts)
{
	struct sw_syncer_opts so = SW_SYNCER_OPTS_INIT;
	struct sw_sync_req rq = SW_SYNC_REQ_INIT;
	struct sw_drift_opts def = SW_DRIFT_OPTS_INIT;
	struct syncdone d = { 0 };
	static char *manifests[] = { (char *)"." };
	char dir[128], path[160], *cfg;

	if (access(f->kubeapi, X_OK) != 0) {
		fprintf(stderr, "no %s: build it with make\n", f->kubeapi);
		skip();
	}
	server_start(f, extra);
	snprintf(f->kc, sizeof(f->kc), "%s/kubeconfig", f->tmp);
	cfg = sw_asprintf("apiVersion: v1\nkind: Config\ncurrent-context: t\n"
			  "clusters: [{name: c, cluster: {server: '%s'}}]\n"
			  "contexts: [{name: t, context: {cluster: c, user: u}}]\n"
			  "users: [{name: u, user: {}}]\n", f->url);
	write_file(f->kc, cfg);
	free(cfg);
	snprintf(dir, sizeof(dir), "%s/repo", f->tmp);
	mkdir(dir, 0755);
	snprintf(path, sizeof(path), "%s/app.yaml", dir);
	write_file(path, MANIFESTS);

	assert_int_equal(sw_store_open(&f->store, f->tmp), 0);
	assert_int_equal(sw_store_env_upsert(f->store, "dev", "dev"), 0);
	memset(&f->env, 0, sizeof(f->env));
	f->env.name = (char *)"dev";
	f->env.kubeconfig = f->kc;
	f->env.namespace = (char *)"default";
	f->env.manifests = manifests;
	f->env.nmanifests = 1;
	f->env.self_heal = self_heal;
	f->env.health_timeout_s = sw_test_s(10);
	f->env.resync_interval_s = 60;

	so.base = f->base;
	so.pool = f->pool;
	so.store = f->store;
	so.http = f->http;
	so.procs = f->procs;
	so.env = &f->env;
	so.data_dir = f->tmp;
	so.kube.backoff_ms = 20;
	so.kube.watch_timeout_s = 1;   /* streams end each second: reconnects are exercised */
	if (sw_syncer_new(&f->syncer, &so) < 0)
		fail_msg("syncer: %s", sw_error_last());
	rq.commit = "c0ffee";
	rq.dir = dir;
	assert_int_equal(sw_sync_start(f->syncer, &rq, synced, &d), 0);
	run_until(f, &d.done, 1, 20000);
	assert_int_equal(d.done, 1);
	if (d.status != SW_SYNC_SUCCESS)
		fail_msg("first sync: %s", d.msg);

	if (!dopts)
		dopts = &def;
	{
		struct sw_drift_opts o = *dopts;
		o.notify = on_note;
		o.notify_arg = f;
		if (sw_drift_new(&f->dw, f->base, NULL, f->store, f->syncer, &f->env, &o) < 0)
			fail_msg("drift: %s", sw_error_last());
	}
	/* Let the watches list and settle: nothing has drifted yet. */
	run_for(f, 400);
	assert_int_equal(f->notes, 0);
}

/* Run kubectl against the server; returns its exit status. */
static int kubectl(struct fx *f, const char *fmt, ...) SW_PRINTF(2, 3);
static int kubectl(struct fx *f, const char *fmt, ...)
{
	char args[1024], *cmd;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	cmd = sw_asprintf("kubectl --kubeconfig %s --cache-dir %s/cache --request-timeout=%ds %s "
			  ">/dev/null 2>%s/kubectl.err", f->kc, f->tmp, sw_test_s(10), args, f->tmp);
	rc = system(cmd);
	free(cmd);
	return rc;
}

struct res {
	int done;
	int error;
	char msg[512];
	json_t *obj;
};

static void collect(const struct sw_kube_result *r, void *arg)
{
	struct res *x = arg;
	x->done++;
	x->error = r->error;
	snprintf(x->msg, sizeof(x->msg), "%s", r->error_msg);
	x->obj = r->obj ? json_incref(r->obj) : NULL;
}

/* GET an object (NULL when it does not exist). */
static json_t *get(struct fx *f, const char *av, const char *kind, const char *name)
{
	struct res x = { 0 };
	assert_int_equal(sw_kube_get(sw_syncer_kube(f->syncer), av, kind, "default", name,
				     collect, &x, NULL), 0);
	run_until(f, &x.done, 1, 10000);
	assert_int_equal(x.done, 1);
	return x.obj;
}

static json_int_t replicas(struct fx *f)
{
	json_t *o = get(f, "apps/v1", "Deployment", "web");
	json_int_t n;
	assert_non_null(o);
	n = json_integer_value(json_object_get(json_object_get(o, "spec"), "replicas"));
	json_decref(o);
	return n;
}

/* Wait until replicas is `want` (the heal stored). */
static int wait_replicas(struct fx *f, json_int_t want, long ms)
{
	int64_t end = sw_mono_ms() + sw_test_ms(ms);
	while (sw_mono_ms() < end) {
		if (replicas(f) == want)
			return 1;
		run_for(f, 20);
	}
	return 0;
}

static const char PATCH_REPLICAS[] =
	"patch deployment web -n default --type=merge -p '{\"spec\":{\"replicas\":%d}}'";

/* The newest drift event of dev; asserts there is one. */
static void latest(struct fx *f, struct sw_store_drift *d)
{
	if (sw_store_drift_latest(f->store, "dev", d) < 0)
		fail_msg("no drift event: %s", sw_error_last());
}

static int count_events(struct fx *f)
{
	struct sw_store_drift_list l = { 0 };
	int n;
	assert_int_equal(sw_store_drift_list(f->store, "dev", 1000, &l), 0);
	n = (int)l.n;
	sw_store_drift_list_release(&l);
	return n;
}

/* ---- tests against the server ------------------------------------------ */

/* kubectl patch of replicas and of the image: healed, recorded with path and manager. */
static void test_patch_healed(void **state)
{
	struct fx *f = *state;
	struct sw_store_drift d = { 0 };
	json_t *o;
	const char *img;

	start(f, NULL, 1, NULL);
	assert_int_equal(kubectl(f, PATCH_REPLICAS, 5), 0);
	run_until(f, &f->healed, 1, 5000);
	assert_int_equal(f->healed, 1);
	assert_true(wait_replicas(f, 2, 2000));
	latest(f, &d);
	assert_string_equal(sw_store_drift_action_str(d.action), "healed");
	assert_string_equal(d.kind, "Deployment");
	assert_string_equal(d.name, "web");
	assert_string_equal(d.manager, "kubectl-patch");
	if (!strstr(d.fields, "\"path\":\"spec.replicas\"") || !strstr(d.fields, "\"desired\":2") ||
	    !strstr(d.fields, "\"live\":5"))
		fail_msg("fields: %s", d.fields);
	sw_store_drift_release(&d);

	/* The image, inside the containers list (merge key name). */
	assert_int_equal(kubectl(f, "patch deployment web -n default --type=merge -p "
				 "'{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":"
				 "\"web\",\"image\":\"evil:1\"}]}}}}'"), 0);
	run_until(f, &f->healed, 2, 5000);
	assert_int_equal(f->healed, 2);
	o = get(f, "apps/v1", "Deployment", "web");
	img = json_string_value(json_object_get(json_array_get(json_object_get(json_object_get(
		json_object_get(json_object_get(o, "spec"), "template"), "spec"), "containers"), 0),
		"image"));
	assert_string_equal(img, "nginx:1.25");
	json_decref(o);
	latest(f, &d);
	if (!strstr(d.fields, "spec.template.spec.containers[name=web].image") ||
	    !strstr(d.fields, "evil:1"))
		fail_msg("fields: %s", d.fields);
	assert_string_equal(d.manager, "kubectl-patch");
	sw_store_drift_release(&d);

	/* A Secret's drift is recorded by path only. */
	assert_int_equal(kubectl(f, "patch secret creds -n default --type=merge -p "
				 "'{\"stringData\":{\"password\":\"stolen\"}}'"), 0);
	run_until(f, &f->healed, 3, 5000);
	assert_int_equal(f->healed, 3);
	latest(f, &d);
	assert_string_equal(d.kind, "Secret");
	if (strstr(d.fields, "hunter2") || strstr(d.fields, "stolen") || !strstr(d.fields, "path"))
		fail_msg("fields: %s", d.fields);
	sw_store_drift_release(&d);
	run_for(f, 500);
	assert_int_equal(f->notes, 3); /* no echo from our own heals */
}

/* kubectl delete: recreated, recorded. */
static void test_delete_recreated(void **state)
{
	struct fx *f = *state;
	struct sw_store_drift d = { 0 };
	json_t *o;

	start(f, NULL, 1, NULL);
	assert_int_equal(kubectl(f, "delete configmap settings -n default"), 0);
	run_until(f, &f->healed, 1, 5000);
	assert_int_equal(f->healed, 1);
	o = get(f, "v1", "ConfigMap", "settings");
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "data"), "mode")),
			    "fast");
	json_decref(o);
	latest(f, &d);
	assert_string_equal(d.kind, "ConfigMap");
	assert_string_equal(sw_store_drift_action_str(d.action), "healed");
	if (!strstr(d.fields, "deleted") || !strstr(d.message, "deleted"))
		fail_msg("%s / %s", d.fields, d.message);
	sw_store_drift_release(&d);
}

/* self_heal off: reported once, left as patched, env out_of_sync until it is equal again. */
static void test_report_only(void **state)
{
	struct fx *f = *state;
	struct sw_store_drift d = { 0 };
	struct sw_store_env env = { 0 };

	start(f, NULL, 0, NULL);
	assert_int_equal(kubectl(f, PATCH_REPLICAS, 4), 0);
	run_until(f, &f->reported, 1, 5000);
	assert_int_equal(f->reported, 1);
	run_for(f, 700);   /* controller status updates follow: no new report */
	assert_int_equal(f->notes, 1);
	assert_int_equal(replicas(f), 4);
	latest(f, &d);
	assert_string_equal(sw_store_drift_action_str(d.action), "reported");
	assert_string_equal(d.manager, "kubectl-patch");
	sw_store_drift_release(&d);
	assert_int_equal(sw_store_env_get(f->store, "dev", &env), 0);
	assert_string_equal(sw_store_env_sync_str(env.sync_status), "out_of_sync");
	sw_store_env_release(&env);

	/* Someone puts it back: in sync again. */
	assert_int_equal(kubectl(f, PATCH_REPLICAS, 2), 0);
	int64_t end = sw_mono_ms() + sw_test_ms(5000);
	for (;;) {
		run_for(f, 50);
		assert_int_equal(sw_store_env_get(f->store, "dev", &env), 0);
		if (env.sync_status == SW_ENV_SYNCED || sw_mono_ms() >= end)
			break;
		sw_store_env_release(&env);
	}
	assert_string_equal(sw_store_env_sync_str(env.sync_status), "synced");
	sw_store_env_release(&env);
	assert_int_equal(f->notes, 1);
}

/* Unmanaged changes (a foreign label, status from the controller) and our own apply: nothing. */
static void test_no_false_drift(void **state)
{
	struct fx *f = *state;
	struct res x = { 0 };
	struct sw_buf id = SW_BUF_INIT;
	struct sw_drift_stats st;

	start(f, NULL, 1, NULL);
	assert_int_equal(kubectl(f, "label deployment web -n default team=payments"), 0);
	assert_int_equal(kubectl(f, "annotate configmap settings -n default note=hello"), 0);
	sw_sync_tracking_id(&id, "dev", "apps/Deployment/default/web");
	assert_int_equal(sw_sync_apply_one(f->syncer, id.ptr, collect, &x, NULL), 0);
	sw_buf_release(&id);
	run_until(f, &x.done, 1, 5000);
	if (x.error)
		fail_msg("%s", x.msg);
	json_decref(x.obj);
	run_for(f, 1000);
	assert_int_equal(f->notes, 0);
	assert_int_equal(count_events(f), 0);
	sw_drift_stats(f->dw, &st);
	assert_true(st.events >= 2);
	assert_int_equal(st.detected, 0);
}

/* Another controller that keeps patching replicas: heals backed off, fighting reported. */
static void test_fighting(void **state)
{
	struct fx *f = *state;
	struct sw_store_drift_list l = { 0 };
	int fought = 0;
	int64_t t0;

	start(f, NULL, 1, NULL);
	f->fighter = fork();
	assert_true(f->fighter >= 0);
	if (f->fighter == 0) {
		char cmd[1024];
		setpgid(0, 0);
		snprintf(cmd, sizeof(cmd),
			 "while :; do kubectl --kubeconfig %s --cache-dir %s/cache patch deployment "
			 "web -n default --type=merge -p '{\"spec\":{\"replicas\":7}}' >/dev/null "
			 "2>&1; sleep 0.1; done", f->kc, f->tmp);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	setpgid(f->fighter, f->fighter);
	run_until(f, &f->healed, 1, 5000);
	assert_int_equal(f->healed, 1);
	t0 = sw_mono_ms();
	run_for(f, 5000);
	/* Heals at about 0, 1, 3 s after the first, then 7 s: at most 4 in 5 s. */
	fprintf(stderr, "heals in %lld ms: %d\n", (long long)(sw_mono_ms() - t0), f->healed);
	assert_true(f->healed >= 2);
	assert_true(f->healed <= 4);
	assert_true(f->fighting >= 1);
	assert_int_equal(sw_store_drift_list(f->store, "dev", 100, &l), 0);
	assert_int_equal((int)l.n, f->healed);
	for (size_t i = 0; i < l.n; i++)
		if (l.v[i].message && strstr(l.v[i].message, "fighting with kubectl-patch"))
			fought++;
	sw_store_drift_list_release(&l);
	assert_true(fought >= 1);
}

/* The watch falls out of the server's event window (410) and relists: drift still found. */
static void test_watch_gone(void **state)
{
	struct fx *f = *state;
	const char *args[] = { "--event-ring", "3", "--bookmark-ms", "600000", NULL };
	struct sw_kube_stats ks;
	struct sw_store_drift d = { 0 };

	start(f, args, 1, NULL);
	/* Writes the selector hides move the window on; no BOOKMARKs. */
	for (int i = 0; i < 10; i++) {
		struct res x = { 0 };
		json_t *cm = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:i}}", "apiVersion", "v1",
				       "kind", "ConfigMap", "metadata", "name", "other",
				       "namespace", "default", "data", "n", i);
		json_object_set_new(json_object_get(cm, "data"), "n", json_sprintf("%d", i));
		assert_int_equal(sw_kube_apply(sw_syncer_kube(f->syncer), cm, 0, collect, &x,
					       NULL), 0);
		run_until(f, &x.done, 1, 5000);
		json_decref(x.obj);
		json_decref(cm);
	}
	/* streams end each second and come back with an old version: relist */
	int64_t end = sw_mono_ms() + sw_test_ms(5000);
	do {
		run_for(f, 50);
		sw_kube_stats(sw_syncer_kube(f->syncer), &ks);
	} while (ks.watch_relists < 1 && sw_mono_ms() < end);
	assert_true(ks.watch_relists >= 1);
	assert_int_equal(f->notes, 0);
	assert_int_equal(kubectl(f, PATCH_REPLICAS, 9), 0);
	run_until(f, &f->healed, 1, 5000);
	assert_int_equal(f->healed, 1);
	assert_true(wait_replicas(f, 2, 2000));
	latest(f, &d);
	/* found after a relist or from a watch event: blamed alike */
	assert_non_null(d.manager);
	assert_string_equal(d.manager, "kubectl-patch");
	sw_store_drift_release(&d);
}

static int group_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char exe[PATH_MAX], *slash;
	ssize_t n;
	struct timeval tv = { 0, 100000 };

	signal(SIGPIPE, SIG_IGN);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -1;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	*slash = '\0';
	snprintf(f->kubeapi, sizeof(f->kubeapi), "%s/kubeapi", exe);
	f->base = event_base_new();
	if (sw_http_new(&f->http, f->base) < 0 || sw_proc_mgr_new(&f->procs, f->base) < 0 ||
	    sw_pool_new(&f->pool, f->base, 2) < 0)
		return -1;
	f->guard = event_new(f->base, -1, EV_PERSIST, guard_cb, NULL);
	event_add(f->guard, &tv);
	*state = f;
	return 0;
}

static int group_teardown(void **state)
{
	struct fx *f = *state;
	event_free(f->guard);
	sw_pool_free(f->pool);
	sw_proc_mgr_free(f->procs);
	sw_http_free(f->http);
	event_base_free(f->base);
	free(f);
	return 0;
}

static int setup(void **state)
{
	struct fx *f = *state;
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/test_drift.XXXXXX");
	if (!mkdtemp(f->tmp))
		return -1;
	f->srv = 0;
	f->fighter = 0;
	f->store = NULL;
	f->syncer = NULL;
	f->dw = NULL;
	f->notes = f->healed = f->reported = f->failed = f->fighting = 0;
	f->last_manager[0] = '\0';
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];
	int st;

	if (f->fighter > 0) {
		kill(-f->fighter, SIGKILL);
		waitpid(f->fighter, &st, 0);
	}
	sw_drift_free(f->dw);
	sw_syncer_free(f->syncer);
	/* The pool may still hand back work of the syncer: drain it. */
	run_for(f, 50);
	sw_store_close(f->store);
	if (f->srv > 0) {
		kill(f->srv, SIGTERM);
		waitpid(f->srv, &st, 0);
		close(f->srv_fd);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->tmp);
	if (system(cmd) != 0)
		return -1;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_diff),
		cmocka_unit_test_setup_teardown(test_patch_healed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete_recreated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_false_drift, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fighting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_gone, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
