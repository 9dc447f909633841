/*
 * test_sync.c - the sync engine against the real test API server
 * (build/tests/kubeapi, next to this binary), real git repositories made
 * with the git CLI, real storage and a real worker pool.
 *
 * Covers: a first sync of the guestbook fixture plus a kustomize directory
 * (created, healthy, inventory, history); an image change (configured, the
 * rest unchanged); a deleted file (pruned; objects of others never pruned);
 * prune-everything refused unless allow_empty_prune; an invalid manifest
 * (failure with file:line:col, live state untouched); a CRD and its custom
 * resource in one sync; a workload that never gets ready (health timeout);
 * the API server stopped mid-sync and restarted; superseded requests; dry
 * runs; the desired state and sw_sync_apply_one.
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "tests/unit/kubeapi-util.h"
#include "tests/unit/scratch.h"
#include "tests/unit/slow.h"
#include "lib/clock.h"
#include "config/config.h"
#include "lib/http.h"
#include "lib/pool.h"
#include "lib/proc.h"
#include "manifests/manifests.h"
#include "deploy/deploy.h"
#include "git/git.h"
#include "storage/store.h"

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libpcre2-8.so\n";
}

#define REPO "acme/shop"
#define ENV "dev"


struct fx {
	struct event_base *base;
	struct sw_http *http;
	struct sw_proc_mgr *procs;
	struct sw_pool *pool;
	struct sw_store *store;
	struct sw_syncer *sync;
	struct sw_test_kubeapi srv;
	char tmp[64];
	char origin[128];
	char data[128];
	char state[128];
	char kubeconfig[128];
	char **manifests;
	struct sw_cfg_env env;
};

static char kubeapi[PATH_MAX];
static char fixtures[PATH_MAX];

/* Output of a shell command (trailing newline cut). */
static char *sh_out(const char *fmt, ...) SW_PRINTF(1, 2);
static char *sh_out(const char *fmt, ...)
{
	struct sw_buf b = SW_BUF_INIT, o = SW_BUF_INIT;
	char chunk[4096];
	size_t n;
	va_list ap;
	FILE *p;
	va_start(ap, fmt);
	sw_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	p = popen(b.ptr, "r");
	assert_non_null(p);
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		sw_buf_add(&o, chunk, n);
	pclose(p);
	sw_buf_release(&b);
	while (o.len && o.ptr[o.len - 1] == '\n')
		sw_buf_truncate(&o, o.len - 1);
	return sw_buf_detach(&o, NULL);
}

/* ---- the API server ---------------------------------------------------- */

static void server_start(struct fx *f, int port, const char *const *extra)
{
	const char *args[24];
	int n = 0;
	args[n++] = "--state-file";
	args[n++] = f->state;
	for (int i = 0; extra && extra[i] && n < 23; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	assert_int_equal(sw_test_kubeapi_start(&f->srv, kubeapi, port, 50, args), 0);
}

static void server_stop(struct sw_test_kubeapi *s)
{
	sw_test_kubeapi_stop(s);
}

/* ---- the repository ----------------------------------------------------- */

static void commit(struct fx *f, char sha[41], const char *script)
{
	char *out;
	assert_int_equal(sw_test_sh("set -e; cd '%s'; %s; git add -A; git commit -q --allow-empty -m step",
			    f->origin, script), 0);
	out = sh_out("git -C '%s' rev-parse HEAD", f->origin);
	assert_int_equal(strlen(out), 40);
	memcpy(sha, out, 41);
	free(out);
	char *url = sw_asprintf("file://%s", f->origin);
	struct sw_source_repo r = { .name = REPO, .url = url };
	assert_int_equal(sw_source_fetch(&r, f->data, sha), 0);
	free(url);
}

/* ---- the loop ----------------------------------------------------------- */

static void run_until(struct fx *f, const int *counter, int want, long ms)
{
	int64_t end = sw_mono_ms() + sw_test_ms(ms);
	while (*counter < want && sw_mono_ms() < end)
		event_base_loop(f->base, EVLOOP_ONCE);
}

struct outcome {
	int done;
	int superseded;
	enum sw_sync_status status;
	enum sw_health health;
	char msg[2048];
	int64_t sync_id, ms;
	size_t counts[SW_OBJ_FAILED + 1];
	json_t *objs;   /* key -> "created"/... */
};

static void on_done(const struct sw_sync_result *r, void *arg)
{
	struct outcome *o = arg;
	o->done++;
	o->superseded = r->superseded;
	o->status = r->status;
	o->health = r->health;
	snprintf(o->msg, sizeof(o->msg), "%s", r->message);
	o->sync_id = r->sync_id;
	o->ms = r->duration_ms;
	memcpy(o->counts, r->counts, sizeof(o->counts));
	o->objs = json_object();
	for (size_t i = 0; i < r->nobjects; i++)
		json_object_set_new(o->objs, r->objects[i].key,
				    json_string(sw_store_object_result_str(r->objects[i].result)));
}

static void outcome_release(struct outcome *o)
{
	json_decref(o->objs);
	memset(o, 0, sizeof(*o));
}

static void sync_once(struct fx *f, const char *sha, int dry, struct outcome *o)
{
	struct sw_sync_req rq = SW_SYNC_REQ_INIT;
	memset(o, 0, sizeof(*o));
	rq.repo = REPO;
	rq.commit = sha;
	rq.trigger = SW_TRIGGER_MERGE;
	rq.dry_run = dry;
	assert_int_equal(sw_sync_start(f->sync, &rq, on_done, o), 0);
	run_until(f, &o->done, 1, 30000);
	assert_int_equal(o->done, 1);
}

static const char *result_of(const struct outcome *o, const char *key)
{
	return json_string_value(json_object_get(o->objs, key));
}

/* `kubectl get` as JSON, or NULL when it fails (not found). */
static json_t *kget(struct fx *f, const char *what)
{
	char *out = sh_out("kubectl --server %s get %s -o json 2>/dev/null", f->srv.url, what);
	json_t *j = json_loads(out, 0, NULL);
	free(out);
	return j;
}

static const char *jpath(const json_t *j, const char *a, const char *b, const char *c)
{
	const json_t *v = json_object_get(json_object_get(j, a), b);
	if (c)
		v = json_object_get(v, c);
	return json_string_value(v);
}

/* ---- fixture ----------------------------------------------------------- */

static void syncer_make(struct fx *f, struct sw_kube_opts *ko)
{
	struct sw_syncer_opts o = SW_SYNCER_OPTS_INIT;
	o.base = f->base;
	o.pool = f->pool;
	o.store = f->store;
	o.http = f->http;
	o.procs = f->procs;
	o.env = &f->env;
	o.data_dir = f->data;
	o.checkout = sw_source_checkout;
	o.history_limit = 20;
	o.health_poll_ms = 50;
	if (ko)
		o.kube = *ko;
	o.kube.backoff_ms = o.kube.backoff_ms ? o.kube.backoff_ms : 20;
	o.kube.discovery_interval_ms = 100;
	if (sw_syncer_new(&f->sync, &o) < 0)
		fail_msg("syncer: %s", sw_error_last());
}

static void write_kubeconfig(struct fx *f)
{
	FILE *fp = fopen(f->kubeconfig, "w");
	assert_non_null(fp);
	fprintf(fp, "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
		"clusters:\n- name: c\n  cluster:\n    server: %s\n"
		"contexts:\n- name: test\n  context: {cluster: c, user: u}\n"
		"users:\n- name: u\n  user: {}\n", f->srv.url);
	fclose(fp);
}

static int setup(void **state)
{
	struct fx *f = sw_calloc(1, sizeof(*f));
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/test_sync.XXXXXX");
	if (!mkdtemp(f->tmp))
		return -1;
	snprintf(f->origin, sizeof(f->origin), "%s/origin", f->tmp);
	snprintf(f->data, sizeof(f->data), "%s/data", f->tmp);
	snprintf(f->state, sizeof(f->state), "%s/kubeapi.json", f->tmp);
	snprintf(f->kubeconfig, sizeof(f->kubeconfig), "%s/kubeconfig", f->tmp);
	mkdir(f->data, 0700);
	f->base = event_base_new();
	assert_int_equal(sw_http_new(&f->http, f->base), 0);
	assert_int_equal(sw_proc_mgr_new(&f->procs, f->base), 0);
	assert_int_equal(sw_pool_new(&f->pool, f->base, 2), 0);
	assert_int_equal(sw_store_open(&f->store, f->data), 0);
	assert_int_equal(sw_store_env_upsert(f->store, ENV, "dev"), 0);
	assert_int_equal(sw_test_sh("set -e; git init -q -b dev '%s'", f->origin), 0);

	f->manifests = sw_calloc(2, sizeof(char *));
	f->manifests[0] = sw_strdup("deploy");
	f->env.name = ENV;
	f->env.repo = REPO;
	f->env.branch = "dev";
	f->env.kubeconfig = f->kubeconfig;
	f->env.namespace = "shop";
	f->env.manifests = f->manifests;
	f->env.nmanifests = 1;
	f->env.prune = 1;
	f->env.health_timeout_s = sw_test_s(20);
	*state = f;
	return 0;
}

/* Start the server and the syncer (after the test adjusted f->env). */
static void start(struct fx *f, const char *const *extra, struct sw_kube_opts *ko)
{
	if (access(kubeapi, X_OK) != 0) {
		fprintf(stderr, "no %s: build it with make\n", kubeapi);
		skip();
	}
	server_start(f, 0, extra);
	write_kubeconfig(f);
	syncer_make(f, ko);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	sw_syncer_free(f->sync);
	server_stop(&f->srv);
	sw_pool_free(f->pool);
	sw_store_close(f->store);
	sw_proc_mgr_free(f->procs);
	sw_http_free(f->http);
	event_base_free(f->base);
	free(f->manifests[0]);
	free(f->manifests);
	sw_test_sh("rm -rf '%s'", f->tmp);
	free(f);
	return 0;
}

/* The base layout: a Namespace, the guestbook fixture, a kustomize directory. */
static void base_commit(struct fx *f, char sha[41])
{
	char *script = sw_asprintf(
	    "mkdir -p deploy/guestbook deploy/kustom;"
	    "cp '%s'/manifests/guestbook/*.yaml deploy/guestbook/;"
	    "printf 'apiVersion: v1\\nkind: Namespace\\nmetadata:\\n  name: shop\\n' > deploy/00-ns.yaml;"
	    "printf 'resources:\\n- cm.yaml\\ncommonLabels:\\n  tier: config\\n' > deploy/kustom/kustomization.yaml;"
	    "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: settings\\ndata:\\n  mode: fast\\n' > deploy/kustom/cm.yaml",
	    fixtures);
	commit(f, sha, script);
	free(script);
}

#define K_NS "/Namespace//shop"
#define K_DEP "apps/Deployment/shop/guestbook-ui"
#define K_SVC "/Service/shop/guestbook-ui"
#define K_CM "/ConfigMap/shop/settings"

/* ---- tests ------------------------------------------------------------- */

static void test_lifecycle(void **state)
{
	struct fx *f = *state;
	char a[41], b[41], c[41], d[41];
	struct outcome o;
	struct sw_store_inv_list inv;
	struct sw_store_sync hist;
	struct sw_store_env env;

	start(f, NULL, NULL);
	base_commit(f, a);

	/* first sync: everything created and healthy */
	sync_once(f, a, 0, &o);
	assert_int_equal(o.status, SW_SYNC_SUCCESS);
	assert_string_equal(o.msg, "");
	assert_int_equal(o.health, SW_HEALTH_HEALTHY);
	assert_int_equal(o.counts[SW_OBJ_CREATED], 4);
	assert_string_equal(result_of(&o, K_NS), "created");
	assert_string_equal(result_of(&o, K_DEP), "created");
	assert_string_equal(result_of(&o, K_CM), "created");
	fprintf(stderr, "first sync of 4 objects: %lld ms\n", (long long)o.ms);
	assert_int_equal(sw_store_inventory_list(f->store, ENV, &inv), 0);
	assert_int_equal(inv.n, 4);
	for (size_t i = 0; i < inv.n; i++)
		assert_int_equal(inv.v[i].health, SW_HEALTH_HEALTHY);
	sw_store_inv_list_release(&inv);
	assert_int_equal(sw_store_sync_get(f->store, o.sync_id, &hist), 0);
	assert_int_equal(hist.status, SW_SYNC_SUCCESS);
	assert_int_equal(hist.nobjects, 4);
	assert_int_equal(hist.trigger, SW_TRIGGER_MERGE);
	sw_store_sync_release(&hist);
	assert_int_equal(sw_store_env_get(f->store, ENV, &env), 0);
	assert_string_equal(env.synced_commit, a);
	assert_int_equal(env.sync_status, SW_ENV_SYNCED);
	assert_int_equal(env.health, SW_HEALTH_HEALTHY);
	sw_store_env_release(&env);
	outcome_release(&o);

	/* kubectl sees the tracking label and annotation, and the kustomize label */
	json_t *dep = kget(f, "deployment guestbook-ui -n shop");
	assert_non_null(dep);
	assert_string_equal(jpath(dep, "metadata", "labels", SW_SYNC_LABEL), ENV);
	assert_string_equal(jpath(dep, "metadata", "annotations", SW_SYNC_TRACKING_ANNOTATION),
			    ENV ":" K_DEP);
	json_decref(dep);
	json_t *cm = kget(f, "configmap settings -n shop");
	assert_non_null(cm);
	assert_string_equal(jpath(cm, "metadata", "labels", "tier"), "config");
	json_decref(cm);

	/* the desired state, and healing one object with apply_one */
	const json_t *des = sw_sync_desired(f->sync);
	assert_non_null(des);
	assert_int_equal(json_object_size(des), 4);
	json_t *dd = json_loads(json_string_value(json_object_get(des, ENV ":" K_DEP)), 0, NULL);
	assert_non_null(dd);
	assert_string_equal(jpath(dd, "metadata", "labels", SW_SYNC_LABEL), ENV);
	json_decref(dd);
	assert_string_equal(sw_sync_desired_commit(f->sync), a);
	assert_int_equal(sw_test_sh("kubectl --server %s -n shop patch configmap settings --type=merge "
			    "-p '{\"data\":{\"mode\":\"slow\"}}' >/dev/null", f->srv.url), 0);
	assert_int_equal(sw_sync_apply_one(f->sync, "nope", NULL, NULL, NULL), SW_ENOTFOUND);

	/* the same commit again: unchanged, except the drifted ConfigMap */
	sync_once(f, a, 0, &o);
	assert_int_equal(o.status, SW_SYNC_SUCCESS);
	assert_int_equal(o.counts[SW_OBJ_UNCHANGED], 3);
	assert_string_equal(result_of(&o, K_CM), "configured");
	outcome_release(&o);
	cm = kget(f, "configmap settings -n shop");
	assert_string_equal(jpath(cm, "data", "mode", NULL), "fast");
	json_decref(cm);

	/* a new image: the Deployment is configured, the rest unchanged; a dry run first */
	commit(f, b, "sed -i 's/gb-frontend:v5/gb-frontend:v6/' deploy/guestbook/guestbook-ui-deployment.yaml");
	dep = kget(f, "deployment guestbook-ui -n shop");
	char *rv = sw_strdup(jpath(dep, "metadata", "resourceVersion", NULL));
	json_decref(dep);
	sync_once(f, b, 1, &o);
	assert_int_equal(o.status, SW_SYNC_SUCCESS);
	assert_int_equal(o.sync_id, 0);
	assert_string_equal(result_of(&o, K_DEP), "configured");
	assert_int_equal(o.counts[SW_OBJ_UNCHANGED], 3);
	outcome_release(&o);
	dep = kget(f, "deployment guestbook-ui -n shop");
	assert_string_equal(jpath(dep, "metadata", "resourceVersion", NULL), rv);
	json_decref(dep);
	free(rv);

	sync_once(f, b, 0, &o);
	assert_int_equal(o.status, SW_SYNC_SUCCESS);
	assert_int_equal(o.health, SW_HEALTH_HEALTHY);
	assert_string_equal(result_of(&o, K_DEP), "configured");
	assert_string_equal(result_of(&o, K_SVC), "unchanged");
	assert_string_equal(result_of(&o, K_NS), "unchanged");
	assert_string_equal(result_of(&o, K_CM), "unchanged");
	outcome_release(&o);
	char *img = sh_out("kubectl --server %s -n shop get deployment guestbook-ui "
			   "-o jsonpath='{.spec.template.spec.containers[0].image}'", f->srv.url);
	assert_string_equal(img, "gcr.io/google-samples/gb-frontend:v6");
	free(img);

	/* objects of others: no annotation, or another environment's */
	assert_int_equal(sw_test_sh("printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: foreign\\n"
			    "  namespace: shop\\n  labels: {%s: %s}\\n---\\napiVersion: v1\\nkind: ConfigMap\\n"
			    "metadata:\\n  name: other\\n  namespace: shop\\n  labels: {%s: %s}\\n"
			    "  annotations: {%s: \\\"prod:/ConfigMap/shop/other\\\"}\\n' | "
			    "kubectl --server %s apply --server-side --validate=false --field-manager=someone -f - >/dev/null",
			    SW_SYNC_LABEL, ENV, SW_SYNC_LABEL, ENV, SW_SYNC_TRACKING_ANNOTATION, f->srv.url), 0);

	/* a file deleted: pruned */
	commit(f, c, "git rm -q deploy/guestbook/guestbook-ui-svc.yaml");
	sync_once(f, c, 0, &o);
	assert_int_equal(o.status, SW_SYNC_SUCCESS);
	assert_string_equal(result_of(&o, K_SVC), "pruned");
	assert_int_equal(o.counts[SW_OBJ_PRUNED], 1);
	assert_int_equal(o.counts[SW_OBJ_UNCHANGED], 3);
	outcome_release(&o);
	json_t *svc = kget(f, "service guestbook-ui -n shop");
	assert_null(svc);
	json_t *x = kget(f, "configmap foreign -n shop");
	assert_non_null(x);
	json_decref(x);
	x = kget(f, "configmap other -n shop");
	assert_non_null(x);
	json_decref(x);
	assert_int_equal(sw_store_inventory_list(f->store, ENV, &inv), 0);
	assert_int_equal(inv.n, 3);
	sw_store_inv_list_release(&inv);

	/* everything removed: refused, then allowed */
	commit(f, d, "git rm -q -r deploy; mkdir -p deploy; echo \"# nothing here\" > deploy/empty.yaml");
	sync_once(f, d, 0, &o);
	assert_int_equal(o.status, SW_SYNC_FAILURE);
	assert_non_null(strstr(o.msg, "refusing to prune"));
	outcome_release(&o);
	dep = kget(f, "deployment guestbook-ui -n shop");
	assert_non_null(dep);
	json_decref(dep);
	assert_int_equal(sw_store_env_get(f->store, ENV, &env), 0);
	assert_int_equal(env.sync_status, SW_ENV_FAILED);
	assert_string_equal(env.synced_commit, c);
	sw_store_env_release(&env);

	f->env.allow_empty_prune = 1;
	assert_int_equal(sw_syncer_reconfigure(f->sync, &f->env, 20), 0);
	sync_once(f, d, 0, &o);
	assert_int_equal(o.status, SW_SYNC_SUCCESS);
	assert_int_equal(o.counts[SW_OBJ_PRUNED], 3);
	outcome_release(&o);
	/* gone, or going (the Namespace's deletion takes what is in it) */
	dep = kget(f, "deployment guestbook-ui -n shop");
	assert_true(!dep || jpath(dep, "metadata", "deletionTimestamp", NULL));
	json_decref(dep);
	x = kget(f, "namespace shop");
	assert_true(!x || jpath(x, "metadata", "deletionTimestamp", NULL));
	json_decref(x);

	struct sw_store_sync_list hl;
	assert_int_equal(sw_store_sync_history(f->store, ENV, 0, &hl), 0);
	assert_int_equal(hl.n, 6);   /* dry runs are not recorded */
	sw_store_sync_list_release(&hl);
}

struct one {
	int done, error;
	char msg[512];
};

static void one_done(const struct sw_kube_result *r, void *arg)
{
	struct one *o = arg;
	o->done++;
	o->error = r->error;
	snprintf(o->msg, sizeof(o->msg), "%s", r->error_msg);
}

static void test_apply_one(void **state)
{
	struct fx *f = *state;
	char a[41];
	struct outcome o;
	struct one one = { 0 };

	start(f, NULL, NULL);
	base_commit(f, a);
	sync_once(f, a, 0, &o);
	assert_int_equal(o.status, SW_SYNC_SUCCESS);
	outcome_release(&o);
	assert_int_equal(sw_sync_desired_version(f->sync), 1);
	assert_int_equal(sw_test_sh("kubectl --server %s -n shop delete configmap settings >/dev/null",
			    f->srv.url), 0);
	assert_int_equal(sw_sync_apply_one(f->sync, ENV ":" K_CM, one_done, &one, NULL), 0);
	run_until(f, &one.done, 1, 10000);
	assert_int_equal(one.error, 0);
	json_t *cm = kget(f, "configmap settings -n shop");
	assert_non_null(cm);
	assert_string_equal(jpath(cm, "data", "mode", NULL), "fast");
	json_decref(cm);
}

static void test_invalid_manifest(void **state)
{
	struct fx *f = *state;
	char a[41], b[41];
	struct outcome o;
	struct sw_store_sync hist;

	start(f, NULL, NULL);
	base_commit(f, a);
	sync_once(f, a, 0, &o);
	assert_int_equal(o.status, SW_SYNC_SUCCESS);
	outcome_release(&o);
	json_t *before = kget(f, "deployment guestbook-ui -n shop");

	/* an image change and a broken file in one commit: nothing is applied */
	commit(f, b, "sed -i 's/gb-frontend:v5/gb-frontend:v9/' deploy/guestbook/guestbook-ui-deployment.yaml;"
		     "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: bad\\ndata: [unclosed\\n' > deploy/bad.yaml");
	sync_once(f, b, 0, &o);
	assert_int_equal(o.status, SW_SYNC_FAILURE);
	assert_non_null(strstr(o.msg, "deploy/bad.yaml:"));
	assert_int_equal(json_object_size(o.objs), 0);
	int64_t failed_id = o.sync_id;
	outcome_release(&o);
	json_t *after = kget(f, "deployment guestbook-ui -n shop");
	assert_string_equal(jpath(before, "metadata", "resourceVersion", NULL),
			    jpath(after, "metadata", "resourceVersion", NULL));
	json_decref(before);
	json_decref(after);
	assert_null(kget(f, "configmap bad -n shop"));
	assert_int_equal(sw_store_sync_get(f->store, failed_id, &hist), 0);
	assert_int_equal(hist.status, SW_SYNC_FAILURE);
	assert_non_null(strstr(hist.message, "deploy/bad.yaml:"));
	sw_store_sync_release(&hist);

	/* an unknown kind fails before anything is applied, naming the file */
	commit(f, b, "rm deploy/bad.yaml; printf 'apiVersion: example.com/v1\\nkind: Gadget\\nmetadata:\\n  name: g\\n' > deploy/gadget.yaml");
	sync_once(f, b, 0, &o);
	assert_int_equal(o.status, SW_SYNC_FAILURE);
	assert_non_null(strstr(o.msg, "unknown kind example.com/v1 Gadget in deploy/gadget.yaml:1:1"));
	outcome_release(&o);
	after = kget(f, "deployment guestbook-ui -n shop");
	char *img = sh_out("kubectl --server %s -n shop get deployment guestbook-ui "
			   "-o jsonpath='{.spec.template.spec.containers[0].image}'", f->srv.url);
	assert_string_equal(img, "gcr.io/google-samples/gb-frontend:v5");
	free(img);
	json_decref(after);
}

static void test_crd_and_cr(void **state)
{
	struct fx *f = *state;
	char a[41];
	struct outcome o;

	start(f, NULL, NULL);
	commit(f, a,
	       "mkdir -p deploy;"
	       "printf 'apiVersion: v1\\nkind: Namespace\\nmetadata:\\n  name: shop\\n' > deploy/ns.yaml;"
	       "printf 'apiVersion: apiextensions.k8s.io/v1\\nkind: CustomResourceDefinition\\n"
	       "metadata:\\n  name: widgets.example.com\\nspec:\\n  group: example.com\\n"
	       "  scope: Namespaced\\n  names:\\n    plural: widgets\\n    singular: widget\\n"
	       "    kind: Widget\\n    listKind: WidgetList\\n  versions:\\n  - name: v1\\n"
	       "    served: true\\n    storage: true\\n    schema:\\n      openAPIV3Schema:\\n"
	       "        type: object\\n        x-kubernetes-preserve-unknown-fields: true\\n' > deploy/crd.yaml;"
	       "printf 'apiVersion: example.com/v1\\nkind: Widget\\nmetadata:\\n  name: w1\\nspec:\\n  size: 3\\n' > deploy/a-widget.yaml");

	/* a dry run cannot apply the CR yet, but says it would be created */
	sync_once(f, a, 1, &o);
	assert_int_equal(o.status, SW_SYNC_SUCCESS);
	assert_string_equal(result_of(&o, "example.com/Widget/shop/w1"), "created");
	outcome_release(&o);

	sync_once(f, a, 0, &o);
	if (o.status != SW_SYNC_SUCCESS)
		fail_msg("sync: %s", o.msg);
	assert_string_equal(result_of(&o, "apiextensions.k8s.io/CustomResourceDefinition//widgets.example.com"),
			    "created");
	assert_string_equal(result_of(&o, "example.com/Widget/shop/w1"), "created");
	outcome_release(&o);
	json_t *w = kget(f, "widgets.example.com w1 -n shop");
	assert_non_null(w);
	assert_string_equal(jpath(w, "metadata", "annotations", SW_SYNC_TRACKING_ANNOTATION),
			    ENV ":example.com/Widget/shop/w1");
	json_decref(w);

	/* again: unchanged */
	sync_once(f, a, 0, &o);
	assert_int_equal(o.status, SW_SYNC_SUCCESS);
	assert_int_equal(o.counts[SW_OBJ_UNCHANGED], 3);
	outcome_release(&o);
}

static void test_never_ready(void **state)
{
	struct fx *f = *state;
	char a[41];
	struct outcome o;
	struct sw_store_env env;

	f->env.health_timeout_s = 1;
	start(f, NULL, NULL);
	base_commit(f, a);
	commit(f, a, "sed -i 's/^  name: guestbook-ui$/  name: guestbook-ui\\n  annotations:\\n    kubeapi.slipway.dev\\/never-ready: \"true\"/' "
		     "deploy/guestbook/guestbook-ui-deployment.yaml");
	int64_t t0 = sw_mono_ms();
	sync_once(f, a, 0, &o);
	int64_t took = sw_mono_ms() - t0;
	assert_int_equal(o.status, SW_SYNC_FAILURE);
	assert_int_not_equal(o.health, SW_HEALTH_HEALTHY);
	assert_non_null(strstr(o.msg, "not healthy"));
	assert_non_null(strstr(o.msg, "guestbook-ui"));
	assert_true(took < sw_test_ms(5000));
	assert_string_equal(result_of(&o, K_DEP), "created");
	outcome_release(&o);
	assert_int_equal(sw_store_env_get(f->store, ENV, &env), 0);
	assert_int_equal(env.sync_status, SW_ENV_FAILED);
	assert_non_null(strstr(env.message, "guestbook-ui"));
	sw_store_env_release(&env);
}

/*
 * Twelve Deployments (more than one health list's worth): health is read
 * with a list per kind and all become healthy; then one that never becomes
 * ready fails the sync by name. An object that existed before, created by
 * someone else without our label, is "configured" (the apply adds the
 * label), not "created".
 */
static void test_many_workloads(void **state)
{
	struct fx *f = *state;
	char a[41];
	struct outcome o;
	struct sw_kube_stats st0, st1;
	/* ready once read twice, however long that takes: a fixed number of
	 * health reads (3), where a 100 ms ready delay made it the machine's
	 * speed */
	static const char *const fast[] = { "--ready-after-reads", "2", NULL };

	f->env.health_timeout_s = sw_test_s(2);
	start(f, fast, NULL);
	assert_int_equal(sw_test_sh("printf 'apiVersion: v1\\nkind: Namespace\\nmetadata: {name: shop}\\n---\\n"
			    "apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: before, namespace: shop}\\n"
			    "data: {a: b}\\n' | kubectl --server %s apply --server-side --validate=false "
			    "-f - >/dev/null", f->srv.url), 0);
	commit(f, a, "mkdir -p deploy; printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n"
		     "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: before\ndata:\n  a: b\n' > deploy/00.yaml;"
		     "for i in $(seq 1 12); do printf -- '---\napiVersion: apps/v1\nkind: Deployment\n"
		     "metadata:\n  name: web-%s\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web-%s}\n"
		     "  template:\n    metadata:\n      labels: {app: web-%s}\n    spec:\n      containers:\n"
		     "      - {name: web, image: nginx}\n' $i $i $i; done > deploy/web.yaml");
	sw_kube_stats(sw_syncer_kube(f->sync), &st0);
	sync_once(f, a, 0, &o);
	sw_kube_stats(sw_syncer_kube(f->sync), &st1);
	fprintf(stderr, "sync of 14 objects: %llu requests\n",
		(unsigned long long)(st1.requests - st0.requests));
	assert_int_equal(o.status, SW_SYNC_SUCCESS);
	assert_int_equal(o.health, SW_HEALTH_HEALTHY);
	assert_int_equal(o.counts[SW_OBJ_CREATED], 12);
	assert_int_equal(o.counts[SW_OBJ_CONFIGURED], 2);   /* the namespace and "before" */
	assert_string_equal(result_of(&o, "/ConfigMap/shop/before"), "configured");
	assert_string_equal(result_of(&o, "apps/Deployment/shop/web-12"), "created");
	/* lists + 14 applies + a list per health read: far fewer than a get per
	 * Deployment per read */
	assert_true(st1.requests - st0.requests < 14 + 20);
	outcome_release(&o);

	commit(f, a, "printf -- '---\\napiVersion: apps/v1\\nkind: Deployment\\nmetadata:\\n  name: stuck\\n"
		     "  annotations: {kubeapi.slipway.dev/never-ready: \"true\"}\\nspec:\\n  replicas: 1\\n"
		     "  selector:\\n    matchLabels: {app: stuck}\\n  template:\\n    metadata:\\n"
		     "      labels: {app: stuck}\\n    spec:\\n      containers:\\n      - {name: web, image: nginx}\\n'"
		     " >> deploy/web.yaml");
	sync_once(f, a, 0, &o);
	assert_int_equal(o.status, SW_SYNC_FAILURE);
	assert_non_null(strstr(o.msg, "not healthy"));
	assert_non_null(strstr(o.msg, "shop/stuck"));
	assert_null(strstr(o.msg, "web-"));
	assert_int_equal(o.counts[SW_OBJ_UNCHANGED], 14);
	outcome_release(&o);
}

struct killer {
	struct fx *f;
	struct event *ev;
	char seen[4096];
	size_t len;
};

/* The server's stdout: stop it once it says it holds a write (mid-apply). */
static void kill_cb(evutil_socket_t fd, short what, void *arg)
{
	struct killer *k = arg;
	ssize_t n = read(fd, k->seen + k->len, sizeof(k->seen) - 1 - k->len);
	if (n > 0) {
		k->len += (size_t)n;
		k->seen[k->len] = '\0';
	}
	if (n <= 0 || strstr(k->seen, "held ") || k->len == sizeof(k->seen) - 1) {
		event_del(k->ev);
		server_stop(&k->f->srv);
	}
}

static void test_server_stopped(void **state)
{
	struct fx *f = *state;
	char a[41];
	struct outcome o;
	struct sw_kube_opts ko = SW_KUBE_OPTS_INIT;
	/* the Namespace is applied; the next write is held, and announced */
	const char *hold[] = { "--hold-writes-after", "1", NULL };
	struct sw_sync_req rq = SW_SYNC_REQ_INIT;
	struct sw_store_sync hist;
	struct killer k = { .f = f };

	ko.max_attempts = 3;
	ko.backoff_ms = 20;
	ko.timeout_ms = sw_test_ms(2000);
	start(f, hold, &ko);
	base_commit(f, a);

	/* stop the server while the sync is under way: once a write is held */
	k.ev = event_new(f->base, f->srv.out_fd, EV_READ | EV_PERSIST, kill_cb, &k);
	event_add(k.ev, NULL);
	memset(&o, 0, sizeof(o));
	rq.repo = REPO;
	rq.commit = a;
	assert_int_equal(sw_sync_start(f->sync, &rq, on_done, &o), 0);
	int64_t t0 = sw_mono_ms();
	run_until(f, &o.done, 1, 30000);
	fprintf(stderr, "sync against a stopped server failed after %lld ms: %s\n",
		(long long)(sw_mono_ms() - t0), o.msg);
	event_free(k.ev);
	assert_int_equal(o.done, 1);
	assert_int_equal(o.status, SW_SYNC_FAILURE);
	assert_true(o.msg[0] != '\0');
	assert_true(sw_mono_ms() - t0 < sw_test_ms(15000));
	assert_true(o.counts[SW_OBJ_CREATED] >= 1);   /* it was under way */
	assert_true(o.counts[SW_OBJ_FAILED] >= 1);
	assert_int_equal(sw_store_sync_get(f->store, o.sync_id, &hist), 0);
	assert_int_equal(hist.status, SW_SYNC_FAILURE);
	sw_store_sync_release(&hist);
	outcome_release(&o);

	/* restarted on the same port: the next sync succeeds */
	server_start(f, f->srv.port, NULL);
	sync_once(f, a, 0, &o);
	if (o.status != SW_SYNC_SUCCESS)
		fail_msg("sync after restart: %s", o.msg);
	assert_int_equal(o.health, SW_HEALTH_HEALTHY);
	outcome_release(&o);
}

static void test_superseded(void **state)
{
	struct fx *f = *state;
	char a[41], b[41], c[41];
	struct outcome o1, o2, o3, o4;
	struct sw_sync_req rq = SW_SYNC_REQ_INIT;
	size_t queued;

	start(f, NULL, NULL);
	base_commit(f, a);
	commit(f, b, "sed -i 's/gb-frontend:v5/gb-frontend:v6/' deploy/guestbook/guestbook-ui-deployment.yaml");
	commit(f, c, "sed -i 's/gb-frontend:v6/gb-frontend:v7/' deploy/guestbook/guestbook-ui-deployment.yaml");
	memset(&o1, 0, sizeof(o1));
	memset(&o2, 0, sizeof(o2));
	memset(&o3, 0, sizeof(o3));
	memset(&o4, 0, sizeof(o4));
	rq.repo = REPO;
	rq.commit = a;
	assert_int_equal(sw_sync_start(f->sync, &rq, on_done, &o1), 0);
	event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);   /* a starts */
	assert_int_equal(sw_syncer_busy(f->sync, &queued), 1);
	rq.commit = b;
	assert_int_equal(sw_sync_start(f->sync, &rq, on_done, &o2), 0);
	rq.commit = c;
	assert_int_equal(sw_sync_start(f->sync, &rq, on_done, &o3), 0);
	/* a diff queued now replaces no sync, and runs after the waiting one */
	rq.dry_run = 1;
	assert_int_equal(sw_sync_start(f->sync, &rq, on_done, &o4), 0);
	run_until(f, &o4.done, 1, 30000);
	assert_int_equal(o4.superseded, 0);
	assert_int_equal(o4.status, SW_SYNC_SUCCESS);
	assert_int_equal(o4.counts[SW_OBJ_UNCHANGED], 4);   /* c is applied already */
	assert_int_equal(o1.done, 1);
	assert_int_equal(o1.status, SW_SYNC_SUCCESS);
	assert_int_equal(o2.done, 1);
	assert_int_equal(o2.superseded, 1);
	assert_int_equal(o3.done, 1);
	assert_int_equal(o3.status, SW_SYNC_SUCCESS);
	assert_string_equal(result_of(&o3, K_DEP), "configured");
	outcome_release(&o1);
	outcome_release(&o2);
	outcome_release(&o3);
	outcome_release(&o4);
	assert_int_equal(sw_syncer_busy(f->sync, &queued), 0);
	assert_int_equal(queued, 0);
}

static int group_setup(void **state)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return -1;
	self[n] = '\0';
	snprintf(kubeapi, sizeof(kubeapi), "%s/kubeapi", dirname(self));
	/* ../shared/fixtures from the repository root, else /work/shared/fixtures */
	if (access("../shared/fixtures/manifests/guestbook", R_OK) == 0 &&
	    !realpath("../shared/fixtures", fixtures))
		fixtures[0] = '\0';
	if (!fixtures[0] || access(fixtures, R_OK) != 0)
		snprintf(fixtures, sizeof(fixtures), "/work/shared/fixtures");
	sw_test_git_env();
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_manifest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crd_and_cr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_never_ready, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_workloads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_server_stopped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_superseded, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, NULL);
}
