/*
 * test_kube.c - the Kubernetes client against the real test API server
 * (build/tests/kubeapi, next to this binary), started per test on port 0.
 *
 * Covers kubeconfig variants and their errors, discovery (and its refresh
 * after a CRD), server-side apply (create, update, dry run), get, list with
 * paging (and an expired continue token), delete, error messages, watches
 * (events by label selector, recovery from 410), 100 applies in flight, an
 * exec credential plugin (cache, expiry, 401), TLS with a client
 * certificate, and retries against a peer that refuses connections.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "lib/buf.h"
#include "tests/unit/kubeapi-util.h"
#include "tests/unit/slow.h"
#include "lib/clock.h"
#include "lib/http.h"
#include "lib/proc.h"
#include "kube/kube.h"

/* ---- harness ---------------------------------------------------------- */


struct fx {
	struct event_base *base;
	struct sw_http *http;
	struct sw_proc_mgr *procs;
	struct event *guard;
	char tmp[64];
	char kubeapi[PATH_MAX];
	char script[PATH_MAX];
	struct sw_test_kubeapi srv;
	struct sw_kube *kube;
};

static void guard_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* Start kubeapi with extra arguments (NULL-terminated); fills s->url. */
static void server_start(struct fx *f, struct sw_test_kubeapi *s, const char *const *extra)
{
	assert_int_equal(sw_test_kubeapi_start(s, f->kubeapi, 0, 50, extra), 0);
}

static void server_stop(struct sw_test_kubeapi *s)
{
	sw_test_kubeapi_stop(s);
}

static void write_file(const char *path, const char *fmt, ...) SW_PRINTF(2, 3);
static void write_file(const char *path, const char *fmt, ...)
{
	FILE *fp = fopen(path, "w");
	va_list ap;
	assert_non_null(fp);
	va_start(ap, fmt);
	vfprintf(fp, fmt, ap);
	va_end(ap);
	fclose(fp);
}

static int count_lines(const char *path)
{
	FILE *fp = fopen(path, "r");
	int n = 0, ch;
	if (!fp)
		return 0;
	while ((ch = fgetc(fp)) != EOF)
		n += ch == '\n';
	fclose(fp);
	return n;
}

/* Run the loop until *counter >= want or the time is up. */
static void run_loop(struct fx *f, const int *counter, int want, long ms)
{
	int64_t end = sw_mono_ms() + ms;
	while (*counter < want && sw_mono_ms() < end)
		event_base_loop(f->base, EVLOOP_ONCE);
}

/* ms is a deadline: scaled by SW_TEST_SLOW. */
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

/* A client from kubeconfig text. */
static struct sw_kube *kube_from(struct fx *f, const char *text, struct sw_kube_opts *o)
{
	struct sw_kube_opts def = SW_KUBE_OPTS_INIT;
	struct sw_kubeconfig *cfg;
	struct sw_kube *k;
	char path[128];

	snprintf(path, sizeof(path), "%s/kubeconfig", f->tmp);
	write_file(path, "%s", text);
	if (sw_kubeconfig_load(&cfg, path, NULL) < 0)
		fail_msg("kubeconfig: %s", sw_error_last());
	if (!o)
		o = &def;
	o->http = f->http;
	o->procs = f->procs;
	if (!o->backoff_ms)
		o->backoff_ms = 20;
	assert_int_equal(sw_kube_new(&k, f->base, cfg, o), 0);
	return k;
}

/* Plain-http kubeconfig with an optional token. */
static char *plain_config(const char *url, const char *token)
{
	return sw_asprintf("apiVersion: v1\nkind: Config\ncurrent-context: test\n"
			   "clusters:\n- name: c\n  cluster:\n    server: %s\n"
			   "contexts:\n- name: test\n  context: {cluster: c, user: u}\n"
			   "users:\n- name: u\n  user:%s%s%s\n",
			   url, token ? " {token: " : " {}", token ? token : "", token ? "}" : "");
}

struct res {
	int done;
	int error;
	long status;
	char msg[1024];
	char reason[64];
	json_t *obj;
};

static void collect(const struct sw_kube_result *r, void *arg)
{
	struct res *x = arg;
	x->done++;
	x->error = r->error;
	x->status = r->status;
	snprintf(x->msg, sizeof(x->msg), "%s", r->error_msg);
	snprintf(x->reason, sizeof(x->reason), "%s", r->reason);
	json_decref(x->obj);
	x->obj = r->obj ? json_incref(r->obj) : NULL;
}

static void res_release(struct res *x)
{
	json_decref(x->obj);
	memset(x, 0, sizeof(*x));
}

static void wait_res(struct fx *f, struct res *x)
{
	run_until(f, &x->done, 1, 15000);
	assert_int_equal(x->done, 1);
}

static json_t *configmap(const char *ns, const char *name, const char *app, const char *val)
{
	json_t *o = json_pack("{s:s, s:s, s:{s:s}, s:{s:s}}", "apiVersion", "v1", "kind",
			      "ConfigMap", "metadata", "name", name, "data", "v", val);
	json_t *m = json_object_get(o, "metadata");
	if (ns)
		json_object_set_new(m, "namespace", json_string(ns));
	if (app)
		json_object_set_new(m, "labels", json_pack("{s:s}", "app", app));
	return o;
}

/* Apply and wait; returns the result (caller releases). */
static void apply_wait(struct fx *f, struct sw_kube *k, json_t *obj, int flags, struct res *x)
{
	memset(x, 0, sizeof(*x));
	assert_int_equal(sw_kube_apply(k, obj, flags, collect, x, NULL), 0);
	wait_res(f, x);
}

static const char *jpath_str(const json_t *o, const char *a, const char *b)
{
	const json_t *v = json_object_get(json_object_get(o, a), b);
	return json_is_string(v) ? json_string_value(v) : NULL;
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
	if (!realpath("tests/lib/exec-credential.sh", f->script))
		snprintf(f->script, sizeof(f->script), "%s/../../tests/lib/exec-credential.sh", exe);
	f->base = event_base_new();
	if (sw_http_new(&f->http, f->base) < 0 || sw_proc_mgr_new(&f->procs, f->base) < 0)
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
	sw_proc_mgr_free(f->procs);
	sw_http_free(f->http);
	event_base_free(f->base);
	free(f);
	return 0;
}

/* Each test: a temporary directory and, when kubeapi exists, a plain server. */
static int setup(void **state)
{
	struct fx *f = *state;
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/test_kube.XXXXXX");
	if (!mkdtemp(f->tmp))
		return -1;
	memset(&f->srv, 0, sizeof(f->srv));
	f->kube = NULL;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];
	sw_kube_free(f->kube);
	f->kube = NULL;
	server_stop(&f->srv);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->tmp);
	if (system(cmd) != 0)
		return -1;
	return 0;
}

static void need_kubeapi(struct fx *f)
{
	if (access(f->kubeapi, X_OK) != 0) {
		fprintf(stderr, "no %s: build it with make\n", f->kubeapi);
		skip();
	}
}

/* A plain server and a token-less client on it. */
static void plain(struct fx *f, struct sw_kube_opts *o)
{
	char *cfg;
	need_kubeapi(f);
	server_start(f, &f->srv, NULL);
	cfg = plain_config(f->srv.url, NULL);
	f->kube = kube_from(f, cfg, o);
	free(cfg);
}

/* ---- kubeconfig ------------------------------------------------------- */

static const char kc_full[] =
	"apiVersion: v1\n"
	"kind: Config\n"
	"current-context: prod\n"
	"clusters:\n"
	"- name: eks\n"
	"  cluster:\n"
	"    server: https://api.example:6443/\n"
	"    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkFCQwo=\n"
	"    tls-server-name: kubernetes\n"
	"- name: local\n"
	"  cluster:\n"
	"    server: http://127.0.0.1:8080\n"
	"    certificate-authority: ca.pem\n"
	"    insecure-skip-tls-verify: true\n"
	"contexts:\n"
	"- name: prod\n"
	"  context: {cluster: eks, user: aws, namespace: shop}\n"
	"- name: dev\n"
	"  context: {cluster: local, user: dev}\n"
	"- name: certs\n"
	"  context: {cluster: local, user: certs}\n"
	"users:\n"
	"- name: aws\n"
	"  user:\n"
	"    exec:\n"
	"      apiVersion: client.authentication.k8s.io/v1beta1\n"
	"      command: aws\n"
	"      args: [eks, get-token, --cluster-name, prod]\n"
	"      env:\n"
	"      - {name: AWS_PROFILE, value: ci}\n"
	"      provideClusterInfo: true\n"
	"      interactiveMode: Never\n"
	"- name: dev\n"
	"  user:\n"
	"    tokenFile: token\n"
	"- name: certs\n"
	"  user:\n"
	"    client-certificate-data: Q0VSVA==\n"
	"    client-key: key.pem\n";

static void test_kubeconfig_variants(void **state)
{
	struct fx *f = *state;
	struct sw_kubeconfig *c;
	char path[128], ca[128], key[128];

	snprintf(path, sizeof(path), "%s/config", f->tmp);
	snprintf(ca, sizeof(ca), "%s/ca.pem", f->tmp);
	snprintf(key, sizeof(key), "%s/key.pem", f->tmp);
	write_file(path, "%s", kc_full);
	write_file(ca, "CA FILE\n");
	write_file(key, "KEY FILE\n");

	/* current-context: exec user, CA data, namespace, trailing slash */
	assert_int_equal(sw_kubeconfig_load(&c, path, NULL), 0);
	assert_string_equal(c->context, "prod");
	assert_string_equal(c->cluster, "eks");
	assert_string_equal(c->ns, "shop");
	assert_string_equal(c->server, "https://api.example:6443");
	assert_string_equal(c->ca_pem, "-----BEGIN CERTIFICATE-----\nABC\n");
	assert_string_equal(c->tls_server_name, "kubernetes");
	assert_false(c->insecure);
	assert_non_null(c->exec);
	assert_string_equal(c->exec->command, "aws");
	assert_string_equal(c->exec->args[0], "eks");
	assert_string_equal(c->exec->args[3], "prod");
	assert_null(c->exec->args[4]);
	assert_string_equal(c->exec->env[0], "AWS_PROFILE=ci");
	assert_true(c->exec->provide_cluster_info);
	assert_null(c->token);
	sw_kubeconfig_free(c);

	/* a named context: CA file and tokenFile relative to the kubeconfig */
	assert_int_equal(sw_kubeconfig_load(&c, path, "dev"), 0);
	assert_string_equal(c->ns, "default");
	assert_string_equal(c->ca_pem, "CA FILE\n");
	assert_true(c->insecure);
	assert_non_null(c->token_file);
	assert_true(strstr(c->token_file, f->tmp) == c->token_file);
	assert_null(c->exec);
	sw_kubeconfig_free(c);

	/* client certificate as data, key as a file */
	assert_int_equal(sw_kubeconfig_load(&c, path, "certs"), 0);
	assert_string_equal(c->cert_pem, "CERT");
	assert_string_equal(c->key_pem, "KEY FILE\n");
	sw_kubeconfig_free(c);

	/* a static token */
	assert_int_equal(sw_kubeconfig_parse(&c, "inline",
		"current-context: a\nclusters: [{name: c, cluster: {server: 'http://h:1'}}]\n"
		"contexts: [{name: a, context: {cluster: c, user: u}}]\n"
		"users: [{name: u, user: {token: abc}}]\n", 167, NULL), 0);
	assert_string_equal(c->token, "abc");
	sw_kubeconfig_free(c);
	/* *-data keys: wrapped, unpadded, either alphabet (as before lib/base64) */
	const char *wrapped =
		"current-context: a\n"
		"clusters:\n- name: c\n  cluster:\n    server: 'http://h:1'\n"
		"    certificate-authority-data: |\n      LS0tLS1CRUdJTiBDRVJU\n"
		"      SUZJQ0FURS0tLS0tCkFCQwo\n"
		"contexts: [{name: a, context: {cluster: c, user: u}}]\n"
		"users: [{name: u, user: {client-certificate-data: '-_-_', client-key-data: Q0VS}}]\n";
	assert_int_equal(sw_kubeconfig_parse(&c, "inline", wrapped, strlen(wrapped), NULL), 0);
	assert_string_equal(c->ca_pem, "-----BEGIN CERTIFICATE-----\nABC\n");
	assert_memory_equal(c->cert_pem, "\xFB\xFF\xBF", 4);
	assert_string_equal(c->key_pem, "CER");
	sw_kubeconfig_free(c);
}

static void expect_error(const char *text, const char *ctx, int code, const char *msg)
{
	struct sw_kubeconfig *c = NULL;
	int rc = sw_kubeconfig_parse(&c, "/etc/kc", text, strlen(text), ctx);
	if (rc != code || !strstr(sw_error_last(), msg))
		fail_msg("got %d \"%s\", want %d with \"%s\"", rc, sw_error_last(), code, msg);
	assert_null(c);
}

static void test_kubeconfig_errors(void **state)
{
	struct fx *f = *state;
	char path[128];

	expect_error("current-context: x\ncontexts: []\n", NULL, SW_ENOTFOUND,
		     "context x not found in /etc/kc");
	expect_error("contexts: []\n", "dev", SW_ENOTFOUND, "context dev not found in /etc/kc");
	expect_error("clusters: []\ncontexts: [{name: a, context: {cluster: c}}]\n", NULL,
		     SW_ENOTFOUND, "no context chosen and no current-context in /etc/kc");
	expect_error("contexts: [{name: a, context: {cluster: c}}]\nclusters: []\n", "a",
		     SW_ENOTFOUND, "context a: cluster c not found in /etc/kc");
	expect_error("current-context: a\n"
		     "contexts:\n- name: a\n  context: {cluster: c, user: u}\n"
		     "clusters:\n- name: c\n  cluster:\n    server: [1, 2]\n", NULL, SW_EINVALID,
		     "/etc/kc:8:13: clusters[0].cluster.server: expected a string");
	expect_error("current-context: a\n"
		     "contexts:\n- name: a\n  context: {cluster: c, user: u}\n"
		     "clusters:\n- name: c\n  cluster: {server: 'https://x'}\n", NULL, SW_ENOTFOUND,
		     "user u not found");
	expect_error("current-context: a\n"
		     "contexts:\n- name: a\n  context: {cluster: c}\n"
		     "clusters:\n- name: c\n  cluster:\n    server: https://x\n"
		     "    certificate-authority-data: '%%%'\n", NULL, SW_EINVALID,
		     "/etc/kc:9:33: clusters[0].cluster.certificate-authority-data: not valid base64 "
		     "(byte 1: not a base64 character)");
	expect_error("current-context: a\n"
		     "contexts:\n- name: a\n  context: {cluster: c}\n"
		     "clusters:\n- name: c\n  cluster:\n    server: https://x\n"
		     "    insecure-skip-tls-verify: maybe\n", NULL, SW_EINVALID,
		     "/etc/kc:9:31: clusters[0].cluster.insecure-skip-tls-verify: expected true or false");
	expect_error("current-context: a\n"
		     "contexts:\n- name: a\n  context: {cluster: c, user: u}\n"
		     "clusters:\n- name: c\n  cluster: {server: 'https://x'}\n"
		     "users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1alpha1\n"
		     "      command: x\n", NULL, SW_EINVALID, "/etc/kc:12:19: users[0].user.exec.apiVersion");
	expect_error("current-context: a\n"
		     "contexts:\n- name: a\n  context: {cluster: c}\n"
		     "clusters:\n- name: c\n  cluster:\n    server: ftp://x\n", NULL, SW_EINVALID,
		     "is not an http(s) URL");
	/* a key written twice, wherever it is read, is an error at its second place */
	expect_error("current-context: a\ncurrent-context: b\n", NULL, SW_EINVALID,
		     "/etc/kc:2:1: key 'current-context' appears twice (first at 1:1)");
	expect_error("current-context: a\n"
		     "contexts:\n- name: a\n  context: {cluster: c}\n"
		     "clusters:\n- name: c\n  cluster:\n    server: https://x\n    server: https://y\n",
		     NULL, SW_EINVALID,
		     "/etc/kc:9:5: clusters[0].cluster: key 'server' appears twice (first at 8:5)");
	expect_error("current-context: a\n"
		     "contexts:\n- name: a\n  context: {cluster: c, user: u}\n"
		     "clusters:\n- name: c\n  cluster: {server: 'https://x'}\n"
		     "users:\n- name: u\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
		     "      command: x\n      env: [{name: A, value: 1, name: B}]\n", NULL, SW_EINVALID,
		     "/etc/kc:14:33: users[0].user.exec.env[0]: key 'name' appears twice (first at 14:14)");
	expect_error("a: [\n", NULL, SW_EINVALID, "/etc/kc:");
	expect_error("- 1\n", NULL, SW_EINVALID, "/etc/kc:1:1: not a kubeconfig");

	/* a CA file that is not there: the node and the OS error */
	snprintf(path, sizeof(path), "%s/config", f->tmp);
	write_file(path, "current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n"
		   "clusters:\n- name: c\n  cluster:\n    server: https://x\n"
		   "    certificate-authority: /nonexistent/ca.pem\n");
	{
		struct sw_kubeconfig *c;
		assert_true(sw_kubeconfig_load(&c, path, NULL) < 0);
		assert_non_null(strstr(sw_error_last(), ":7:28: clusters[0].cluster.certificate-authority: "));
		assert_non_null(strstr(sw_error_last(), "No such file"));
		snprintf(path, sizeof(path), "%s/missing", f->tmp);
		assert_true(sw_kubeconfig_load(&c, path, NULL) < 0);
		assert_non_null(strstr(sw_error_last(), "kubeconfig: "));
	}
}

static void test_parse_time(void **state)
{
	int64_t ms;
	assert_int_equal(sw_parse_rfc3339("1970-01-01T00:00:01Z", &ms), 0);
	assert_int_equal(ms, 1000);
	assert_int_equal(sw_parse_rfc3339("1970-01-01T01:00:01.5+01:00", &ms), 0);
	assert_int_equal(ms, 1500);
	assert_int_equal(sw_parse_rfc3339("2026-03-04T05:06:07.123456789Z", &ms), 0);
	assert_int_equal(ms % 1000, 123);
	assert_true(sw_parse_rfc3339("2026-03-04 05:06:07", &ms) < 0);
	assert_true(sw_parse_rfc3339("2026-03-04T05:06:07", &ms) < 0);
}

/* ---- discovery -------------------------------------------------------- */

static void test_discovery(void **state)
{
	struct fx *f = *state;
	struct sw_kube_resource r;
	struct res x = { 0 };

	plain(f, NULL);
	/* Nothing known before the first operation. */
	assert_int_equal(sw_kube_lookup(f->kube, "apps/v1", "Deployment", &r), SW_ENOTFOUND);
	assert_int_equal(sw_kube_get(f->kube, "v1", "Namespace", NULL, "default", collect, &x,
				     NULL), 0);
	wait_res(f, &x);
	assert_int_equal(x.error, 0);
	assert_string_equal(jpath_str(x.obj, "metadata", "name"), "default");
	res_release(&x);

	assert_int_equal(sw_kube_lookup(f->kube, "apps/v1", "Deployment", &r), 0);
	assert_string_equal(r.plural, "deployments");
	assert_string_equal(r.group, "apps");
	assert_true(r.namespaced);
	assert_int_equal(sw_kube_lookup(f->kube, "v1", "Namespace", &r), 0);
	assert_string_equal(r.plural, "namespaces");
	assert_false(r.namespaced);
	assert_int_equal(sw_kube_lookup(f->kube, "v1", "ConfigMap", &r), 0);
	assert_true(r.namespaced);
	assert_int_equal(sw_kube_lookup(f->kube, "v1", "Pod", &r), 0);
	assert_string_equal(r.plural, "pods");
	assert_int_equal(sw_kube_lookup(f->kube, "apps/v1", "StatefulSet", &r), 0);
	assert_int_equal(sw_kube_lookup(f->kube, "rbac.authorization.k8s.io/v1", "ClusterRole", &r), 0);
	assert_false(r.namespaced);
	assert_int_equal(sw_kube_lookup(f->kube, "apiextensions.k8s.io/v1",
					"CustomResourceDefinition", &r), 0);
	assert_false(r.namespaced);
	/* kind Deployment appears once per version; no subresource leaked in */
	assert_int_equal(sw_kube_lookup(f->kube, "apps/v1", "Scale", &r), SW_ENOTFOUND);
	assert_true(sw_kube_resources(f->kube, NULL, NULL) > 10);
}

static void test_crd_refresh(void **state)
{
	struct fx *f = *state;
	struct sw_kube_opts o = SW_KUBE_OPTS_INIT;
	struct sw_kube_stats st;
	struct sw_kube_resource r;
	struct res x;
	json_t *crd, *w;

	o.discovery_interval_ms = 300;
	plain(f, &o);
	crd = json_loads("{\"apiVersion\":\"apiextensions.k8s.io/v1\",\"kind\":"
			 "\"CustomResourceDefinition\",\"metadata\":{\"name\":\"widgets.example.com\"},"
			 "\"spec\":{\"group\":\"example.com\",\"scope\":\"Namespaced\",\"names\":{"
			 "\"plural\":\"widgets\",\"singular\":\"widget\",\"kind\":\"Widget\",\"listKind\":"
			 "\"WidgetList\"},\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,"
			 "\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\","
			 "\"x-kubernetes-preserve-unknown-fields\":true}}}]}}", 0, NULL);
	assert_non_null(crd);
	apply_wait(f, f->kube, crd, 0, &x);
	if (x.error)
		fail_msg("%s", x.msg);
	res_release(&x);
	json_decref(crd);
	assert_int_equal(sw_kube_lookup(f->kube, "example.com/v1", "Widget", &r), SW_ENOTFOUND);

	/* Right after: the unknown kind refreshes discovery, then applies. */
	w = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:i}}", "apiVersion", "example.com/v1", "kind",
		      "Widget", "metadata", "name", "w1", "namespace", "default", "spec", "size", 3);
	apply_wait(f, f->kube, w, 0, &x);
	if (x.error)
		fail_msg("%s", x.msg);
	res_release(&x);
	json_decref(w);
	assert_int_equal(sw_kube_lookup(f->kube, "example.com/v1", "Widget", &r), 0);
	assert_string_equal(r.plural, "widgets");
	assert_true(r.namespaced);
	sw_kube_stats(f->kube, &st);
	assert_int_equal(st.discoveries, 2);

	/* A kind nobody defined fails after one more refresh, and names it. */
	w = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "example.com/v1", "kind", "Gadget",
		      "metadata", "name", "g");
	apply_wait(f, f->kube, w, 0, &x);
	json_decref(w);
	assert_int_equal(x.error, SW_EINVALID);
	assert_non_null(strstr(x.msg, "example.com/v1 Gadget g: the API server has no kind Gadget in example.com/v1"));
	res_release(&x);
	sw_kube_stats(f->kube, &st);
	assert_int_equal(st.discoveries, 3);
}

/* ---- apply, get, delete, errors --------------------------------------- */

static int has_manager(const json_t *obj, const char *mgr)
{
	const json_t *mf = json_object_get(json_object_get(obj, "metadata"), "managedFields"), *e;
	size_t i;
	json_array_foreach(mf, i, e) {
		const json_t *v = json_object_get(e, "manager");
		if (json_is_string(v) && strcmp(json_string_value(v), mgr) == 0)
			return 1;
	}
	return 0;
}

static void test_apply_get_delete(void **state)
{
	struct fx *f = *state;
	struct res x, g;
	json_t *cm;
	const char *uid;
	char uid1[64];

	plain(f, NULL);
	/* create */
	cm = configmap(NULL, "web", NULL, "1");
	apply_wait(f, f->kube, cm, 0, &x);
	if (x.error)
		fail_msg("%s", x.msg);
	uid = jpath_str(x.obj, "metadata", "uid");
	assert_non_null(uid);
	snprintf(uid1, sizeof(uid1), "%s", uid);
	assert_string_equal(jpath_str(x.obj, "metadata", "namespace"), "default");
	/* the answer comes without managedFields; the object has ours */
	assert_null(json_object_get(json_object_get(x.obj, "metadata"), "managedFields"));
	res_release(&x);
	sw_kube_get(f->kube, "v1", "ConfigMap", "default", "web", collect, &x, NULL);
	wait_res(f, &x);
	assert_true(has_manager(x.obj, "slipway"));
	res_release(&x);

	/* update (a body with status/resourceVersion/managedFields is cleaned) */
	json_decref(cm);
	cm = configmap("default", "web", NULL, "2");
	json_object_set_new(json_object_get(cm, "metadata"), "resourceVersion", json_string("1"));
	json_object_set_new(json_object_get(cm, "metadata"), "managedFields",
			    json_pack("[{s:s}]", "manager", "kubectl"));
	json_object_set_new(cm, "status", json_pack("{s:s}", "x", "y"));
	apply_wait(f, f->kube, cm, 0, &x);
	if (x.error)
		fail_msg("%s", x.msg);
	assert_string_equal(jpath_str(x.obj, "metadata", "uid"), uid1);
	assert_string_equal(jpath_str(x.obj, "data", "v"), "2");
	res_release(&x);
	json_decref(cm);

	memset(&g, 0, sizeof(g));
	assert_int_equal(sw_kube_get(f->kube, "v1", "ConfigMap", "default", "web", collect, &g, NULL), 0);
	wait_res(f, &g);
	assert_int_equal(g.error, 0);
	assert_string_equal(jpath_str(g.obj, "data", "v"), "2");
	res_release(&g);

	/* dry run: answered, not stored */
	cm = configmap("default", "dry", NULL, "x");
	apply_wait(f, f->kube, cm, SW_KUBE_DRY_RUN, &x);
	if (x.error)
		fail_msg("%s", x.msg);
	assert_string_equal(jpath_str(x.obj, "data", "v"), "x");
	res_release(&x);
	json_decref(cm);
	memset(&g, 0, sizeof(g));
	sw_kube_get(f->kube, "v1", "ConfigMap", NULL, "dry", collect, &g, NULL);
	wait_res(f, &g);
	assert_int_equal(g.error, SW_ENOTFOUND);
	assert_int_equal(g.status, 404);
	assert_string_equal(g.reason, "NotFound");
	assert_non_null(strstr(g.msg, "v1 ConfigMap default/dry: "));
	assert_non_null(strstr(g.msg, "(404 Not Found)"));
	res_release(&g);

	/* delete, then it is gone */
	memset(&x, 0, sizeof(x));
	assert_int_equal(sw_kube_delete(f->kube, "v1", "ConfigMap", "default", "web", collect, &x,
					NULL), 0);
	wait_res(f, &x);
	if (x.error)
		fail_msg("%s", x.msg);
	res_release(&x);
	memset(&g, 0, sizeof(g));
	sw_kube_get(f->kube, "v1", "ConfigMap", "default", "web", collect, &g, NULL);
	wait_res(f, &g);
	assert_int_equal(g.error, SW_ENOTFOUND);
	res_release(&g);

	/* deleting what is not there: 404 with the object named */
	memset(&x, 0, sizeof(x));
	sw_kube_delete(f->kube, "v1", "ConfigMap", "default", "web", collect, &x, NULL);
	wait_res(f, &x);
	assert_int_equal(x.error, SW_ENOTFOUND);
	res_release(&x);
}

static void test_errors(void **state)
{
	struct fx *f = *state;
	struct res x;
	json_t *d, *bad;

	plain(f, NULL);
	d = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:i, s:{s:{s:s}}, s:{s:{s:{s:s}}, s:{s:[{s:s, s:s}]}}}}",
		      "apiVersion", "apps/v1", "kind", "Deployment", "metadata", "name", "web",
		      "namespace", "shop", "spec", "replicas", 1, "selector", "matchLabels", "app",
		      "web", "template", "metadata", "labels", "app", "web", "spec", "containers",
		      "name", "web", "image", "nginx");
	apply_wait(f, f->kube, d, 0, &x);
	assert_int_equal(x.error, SW_ENOTFOUND);
	assert_int_equal(x.status, 404);
	if (!strstr(x.msg, "apps/v1 Deployment shop/web: namespaces \"shop\" not found (404 Not Found)"))
		fail_msg("message: %s", x.msg);
	res_release(&x);
	json_decref(d);

	/* bad arguments fail at once, no callback */
	bad = json_pack("{s:s, s:s}", "apiVersion", "v1", "kind", "ConfigMap");
	assert_int_equal(sw_kube_apply(f->kube, bad, 0, collect, &x, NULL), SW_EINVALID);
	json_decref(bad);
	assert_int_equal(sw_kube_get(f->kube, "v1", NULL, NULL, "x", collect, &x, NULL), SW_EINVALID);

	/* a wrong selector: the API's 400 */
	memset(&x, 0, sizeof(x));
	sw_kube_list(f->kube, "v1", "ConfigMap", "default", "a in (", collect, &x, NULL);
	wait_res(f, &x);
	assert_int_equal(x.error, SW_EINVALID);
	assert_non_null(strstr(x.msg, "v1 ConfigMap list in default (a in (): "));
	assert_non_null(strstr(x.msg, "(400 Bad Request)"));
	res_release(&x);

	/* cancel: no callback */
	{
		struct sw_kube_op *op;
		memset(&x, 0, sizeof(x));
		sw_kube_get(f->kube, "v1", "Namespace", NULL, "default", collect, &x, &op);
		sw_kube_cancel(op);
		run_for(f, 200);
		assert_int_equal(x.done, 0);
		assert_int_equal(sw_kube_pending(f->kube), 0);
	}
}

/* ---- lists ------------------------------------------------------------ */

struct burst {
	struct fx *f;
	int fired;
	int done;
	struct res r[20];
};

static void burst_cb(evutil_socket_t fd, short what, void *arg)
{
	struct burst *b = arg;
	b->fired = 1;
	for (int i = 0; i < 20; i++) {
		char name[32];
		json_t *cm;
		snprintf(name, sizeof(name), "other-%d", i);
		cm = configmap("default", name, "other", "x");
		sw_kube_apply(b->f->kube, cm, 0, collect, &b->r[i], NULL);
		json_decref(cm);
	}
}

static void test_list_paging(void **state)
{
	struct fx *f = *state;
	struct sw_kube_opts o = SW_KUBE_OPTS_INIT;
	const char *args[] = { "--event-ring", "5", "--latency-ms", "20", NULL };
	struct sw_kube_stats st0, st1;
	struct res x, a[12];
	struct burst *b;
	struct event *ev;
	char *cfg;
	int done = 0;

	need_kubeapi(f);
	server_start(f, &f->srv, args);
	cfg = plain_config(f->srv.url, NULL);
	o.list_page_size = 2;
	f->kube = kube_from(f, cfg, &o);
	free(cfg);

	memset(a, 0, sizeof(a));
	for (int i = 0; i < 12; i++) {
		char name[32];
		json_t *cm;
		snprintf(name, sizeof(name), "item-%02d", i);
		cm = configmap("default", name, i < 9 ? "paged" : "else", "v");
		sw_kube_apply(f->kube, cm, 0, collect, &a[i], NULL);
		json_decref(cm);
	}
	for (int i = 0; i < 12; i++) {
		run_until(f, &a[i].done, 1, 10000);
		assert_int_equal(a[i].error, 0);
		done += a[i].done;
		res_release(&a[i]);
	}
	assert_int_equal(done, 12);

	/* 9 matching items in pages of 2 */
	sw_kube_stats(f->kube, &st0);
	memset(&x, 0, sizeof(x));
	sw_kube_list(f->kube, "v1", "ConfigMap", "default", "app=paged", collect, &x, NULL);
	wait_res(f, &x);
	assert_int_equal(x.error, 0);
	assert_string_equal(json_string_value(json_object_get(x.obj, "kind")), "ConfigMapList");
	assert_int_equal(json_array_size(json_object_get(x.obj, "items")), 9);
	assert_string_equal(json_string_value(json_object_get(json_array_get(
		json_object_get(x.obj, "items"), 0), "kind")), "ConfigMap");
	assert_non_null(jpath_str(x.obj, "metadata", "resourceVersion"));
	sw_kube_stats(f->kube, &st1);
	assert_int_equal(st1.requests - st0.requests, 5);
	res_release(&x);

	/* Writes in the middle push the list's continue token out of the
	 * server's 5-event window: 410, and the list starts over. */
	b = calloc(1, sizeof(*b));
	b->f = f;
	ev = evtimer_new(f->base, burst_cb, b);
	{
		struct timeval tv = { 0, 30000 };
		evtimer_add(ev, &tv);
	}
	sw_kube_stats(f->kube, &st0);
	memset(&x, 0, sizeof(x));
	sw_kube_list(f->kube, "v1", "ConfigMap", "default", "app=paged", collect, &x, NULL);
	wait_res(f, &x);
	if (x.error)
		fail_msg("%s", x.msg);
	assert_int_equal(json_array_size(json_object_get(x.obj, "items")), 9);
	sw_kube_stats(f->kube, &st1);
	/* 5 pages without a restart; more with one */
	assert_true(st1.requests - st0.requests - 20 > 5);
	assert_true(st1.list_restarts - st0.list_restarts >= 1);
	res_release(&x);
	for (int i = 0; i < 20; i++) {
		run_until(f, &b->r[i].done, 1, 10000);
		res_release(&b->r[i]);
	}
	event_free(ev);
	free(b);
}

/* ---- many at once ----------------------------------------------------- */

static void test_many_applies(void **state)
{
	struct fx *f = *state;
	struct res *r = calloc(100, sizeof(*r));
	int ok = 0;

	plain(f, NULL);
	for (int i = 0; i < 100; i++) {
		char name[32];
		json_t *cm;
		snprintf(name, sizeof(name), "many-%03d", i);
		cm = configmap("default", name, "many", "v");
		assert_int_equal(sw_kube_apply(f->kube, cm, 0, collect, &r[i], NULL), 0);
		json_decref(cm);
	}
	assert_int_equal(sw_kube_pending(f->kube), 100);
	for (int i = 0; i < 100; i++) {
		run_until(f, &r[i].done, 1, 20000);
		if (r[i].done && !r[i].error)
			ok++;
		else
			fprintf(stderr, "apply %d: %s\n", i, r[i].msg);
		res_release(&r[i]);
	}
	assert_int_equal(ok, 100);
	assert_int_equal(sw_kube_pending(f->kube), 0);
	free(r);
	/* 32 on the wire at once (the default); the other 68 waited their turn. */
	struct sw_kube_stats st;
	sw_kube_stats(f->kube, &st);
	assert_int_equal(st.queued, 68);

	struct res x = { 0 };
	sw_kube_list(f->kube, "v1", "ConfigMap", "default", "app=many", collect, &x, NULL);
	wait_res(f, &x);
	assert_int_equal(json_array_size(json_object_get(x.obj, "items")), 100);
	/* listed objects come without managedFields; a get keeps them */
	const json_t *first = json_array_get(json_object_get(x.obj, "items"), 0);
	assert_null(json_object_get(json_object_get(first, "metadata"), "managedFields"));
	res_release(&x);
	sw_kube_get(f->kube, "v1", "ConfigMap", "default", "many-000", collect, &x, NULL);
	wait_res(f, &x);
	assert_true(has_manager(x.obj, "slipway"));
	res_release(&x);
}

/*
 * max_inflight 3: requests beyond it wait in order and go as slots free;
 * a waiting request can be cancelled (no callback), and a watch does not
 * take a slot, so it never holds up gets.
 */
static void ignore_event(const struct sw_kube_event *ev, void *arg)
{
}

static void test_inflight_limit(void **state)
{
	struct fx *f = *state;
	struct sw_kube_opts o = SW_KUBE_OPTS_INIT;
	struct sw_kube_watch_opts wo = SW_KUBE_WATCH_OPTS_INIT;
	struct sw_kube_watch *w1, *w2, *w3, *w4;
	struct sw_kube_op *ops[10];
	struct sw_kube_stats st;
	struct res r[10];
	json_t *cm;
	int done = 0;

	o.max_inflight = 3;
	plain(f, &o);
	cm = configmap("default", "slots", NULL, "v");
	memset(r, 0, sizeof(r));
	apply_wait(f, f->kube, cm, 0, &r[0]);
	assert_int_equal(r[0].error, 0);
	res_release(&r[0]);
	json_decref(cm);

	/* Four watches stay open without taking any of the three slots. */
	wo.api_version = "v1";
	wo.kind = "Secret";
	wo.on_event = ignore_event;
	assert_int_equal(sw_kube_watch(f->kube, &wo, &w1), 0);
	assert_int_equal(sw_kube_watch(f->kube, &wo, &w2), 0);
	assert_int_equal(sw_kube_watch(f->kube, &wo, &w3), 0);
	assert_int_equal(sw_kube_watch(f->kube, &wo, &w4), 0);
	run_for(f, 300);

	for (int i = 0; i < 10; i++)
		assert_int_equal(sw_kube_get(f->kube, "v1", "ConfigMap", "default",
					     i % 2 ? "slots" : "missing", collect, &r[i], &ops[i]), 0);
	sw_kube_cancel(ops[5]);    /* waiting for a slot: never sent, never called back */
	for (int i = 0; i < 10; i++) {
		if (i == 5)
			continue;
		run_until(f, &r[i].done, 1, 10000);
		assert_int_equal(r[i].done, 1);
		assert_int_equal(r[i].error, i % 2 ? 0 : SW_ENOTFOUND);
		done++;
	}
	run_for(f, 50);
	assert_int_equal(r[5].done, 0);
	assert_int_equal(done, 9);
	sw_kube_stats(f->kube, &st);
	assert_true(st.queued >= 6);   /* 10 asked, 3 slots (the watches' lists may take turns too) */
	for (int i = 0; i < 10; i++)
		res_release(&r[i]);
	sw_kube_watch_stop(w1);
	sw_kube_watch_stop(w2);
	sw_kube_watch_stop(w3);
	sw_kube_watch_stop(w4);
	assert_int_equal(sw_kube_pending(f->kube), 0);
}

/* ---- watches ---------------------------------------------------------- */

struct wlog {
	int n, added, modified, deleted, syncs, errors;
	int sync_items;
	char seen[64][48];
	char last_rv[32];
	int stop_after;       /* stop the watch from the callback after n events */
	struct sw_kube_watch *w;
};

static void on_event(const struct sw_kube_event *ev, void *arg)
{
	struct wlog *l = arg;
	const char *name = ev->obj ? jpath_str(ev->obj, "metadata", "name") : NULL;
	static const char *tn[] = { "ADDED", "MODIFIED", "DELETED", "SYNC", "ERROR" };

	l->n++;
	switch (ev->type) {
	case SW_KUBE_ADDED: l->added++; break;
	case SW_KUBE_MODIFIED: l->modified++; break;
	case SW_KUBE_DELETED: l->deleted++; break;
	case SW_KUBE_SYNC:
		l->syncs++;
		l->sync_items = (int)json_array_size(json_object_get(ev->obj, "items"));
		break;
	case SW_KUBE_WATCH_ERROR:
		l->errors++;
		fprintf(stderr, "watch error: %s\n", ev->message);
		break;
	}
	if (l->n <= 64)
		snprintf(l->seen[l->n - 1], sizeof(l->seen[0]), "%s %s", tn[ev->type],
			 name ? name : "-");
	snprintf(l->last_rv, sizeof(l->last_rv), "%s", ev->resource_version);
	if (l->stop_after && l->n == l->stop_after) {
		sw_kube_watch_stop(l->w);
		l->w = NULL;
	}
}

static void test_watch(void **state)
{
	struct fx *f = *state;
	struct sw_kube_watch_opts o = SW_KUBE_WATCH_OPTS_INIT;
	struct wlog l;
	struct res x;
	json_t *cm;

	plain(f, NULL);
	memset(&l, 0, sizeof(l));
	cm = configmap("default", "before", "w", "0");
	apply_wait(f, f->kube, cm, 0, &x);
	res_release(&x);
	json_decref(cm);

	o.api_version = "v1";
	o.kind = "ConfigMap";
	o.ns = "default";
	o.label_selector = "app=w";
	o.on_event = on_event;
	o.arg = &l;
	assert_int_equal(sw_kube_watch(f->kube, &o, &l.w), 0);
	run_until(f, &l.syncs, 1, 5000);
	assert_int_equal(l.syncs, 1);
	assert_int_equal(l.sync_items, 1);
	run_for(f, 100);

	cm = configmap("default", "a", "w", "1");
	apply_wait(f, f->kube, cm, 0, &x);
	res_release(&x);
	json_decref(cm);
	cm = configmap("default", "other", "not-w", "1");   /* not selected */
	apply_wait(f, f->kube, cm, 0, &x);
	res_release(&x);
	json_decref(cm);
	cm = configmap("default", "a", "w", "2");
	apply_wait(f, f->kube, cm, 0, &x);
	res_release(&x);
	json_decref(cm);
	memset(&x, 0, sizeof(x));
	sw_kube_delete(f->kube, "v1", "ConfigMap", "default", "a", collect, &x, NULL);
	wait_res(f, &x);
	res_release(&x);

	run_until(f, &l.deleted, 1, 5000);
	assert_int_equal(l.added, 1);
	assert_int_equal(l.modified, 1);
	assert_int_equal(l.deleted, 1);
	assert_int_equal(l.errors, 0);
	assert_string_equal(l.seen[1], "ADDED a");
	assert_string_equal(l.seen[2], "MODIFIED a");
	assert_string_equal(l.seen[3], "DELETED a");
	assert_true(atoi(l.last_rv) > 0);

	/* stopping from inside the callback */
	l.stop_after = l.n + 1;
	cm = configmap("default", "b", "w", "1");
	apply_wait(f, f->kube, cm, 0, &x);
	res_release(&x);
	json_decref(cm);
	run_until(f, &l.added, 2, 5000);
	assert_null(l.w);
	run_for(f, 100);
	assert_int_equal(l.added, 2);
}

static void test_watch_gone(void **state)
{
	struct fx *f = *state;
	struct sw_kube_watch_opts o = SW_KUBE_WATCH_OPTS_INIT;
	const char *args[] = { "--event-ring", "3", "--bookmark-ms", "100", NULL };
	struct sw_kube_opts ko = SW_KUBE_OPTS_INIT;
	struct wlog l;
	struct res x;
	char *cfg;

	need_kubeapi(f);
	server_start(f, &f->srv, args);
	cfg = plain_config(f->srv.url, NULL);
	ko.watch_timeout_s = 1;   /* the stream ends each second: reconnects too */
	f->kube = kube_from(f, cfg, &ko);
	free(cfg);

	for (int i = 0; i < 8; i++) {
		char name[16];
		json_t *cm;
		snprintf(name, sizeof(name), "g%d", i);
		cm = configmap("default", name, "g", "v");
		apply_wait(f, f->kube, cm, 0, &x);
		res_release(&x);
		json_decref(cm);
	}
	/* From a resourceVersion long gone: 410, relist, go on from there. */
	memset(&l, 0, sizeof(l));
	o.api_version = "v1";
	o.kind = "ConfigMap";
	o.ns = "default";
	o.label_selector = "app=g";
	o.resource_version = "2";
	o.on_event = on_event;
	o.arg = &l;
	assert_int_equal(sw_kube_watch(f->kube, &o, &l.w), 0);
	run_until(f, &l.syncs, 1, 5000);
	assert_int_equal(l.syncs, 1);
	assert_int_equal(l.sync_items, 8);
	assert_int_equal(l.errors, 0);
	{
		struct sw_kube_stats st;
		sw_kube_stats(f->kube, &st);
		assert_int_equal(st.watch_relists, 1);
	}

	/* Writes the selector hides push the server's window past the
	 * watch's last event; BOOKMARKs keep its resourceVersion current, so
	 * the reconnect after the stream's 1 s timeout needs no relist. */
	for (int i = 0; i < 8; i++) {
		char name[16];
		json_t *cm;
		snprintf(name, sizeof(name), "h%d", i);
		cm = configmap("default", name, "hidden", "v");
		apply_wait(f, f->kube, cm, 0, &x);
		res_release(&x);
		json_decref(cm);
	}
	run_for(f, 1500);
	{
		struct sw_kube_stats st;
		sw_kube_stats(f->kube, &st);
		assert_int_equal(st.watch_relists, 1);
		assert_int_equal(l.syncs, 1);
	}
	{
		json_t *cm = configmap("default", "late", "g", "v");
		apply_wait(f, f->kube, cm, 0, &x);
		res_release(&x);
		json_decref(cm);
	}
	run_until(f, &l.added, 1, 5000);
	assert_int_equal(l.added, 1);
	assert_int_equal(l.syncs, 1);
	assert_int_equal(l.errors, 0);
	sw_kube_watch_stop(l.w);
}

/* ---- exec plugin ------------------------------------------------------ */

static char *exec_config(struct fx *f, const char *url, int ttl)
{
	return sw_asprintf("apiVersion: v1\nkind: Config\ncurrent-context: test\n"
			   "clusters:\n- name: c\n  cluster:\n    server: %s\n"
			   "contexts:\n- name: test\n  context: {cluster: c, user: u}\n"
			   "users:\n- name: u\n  user:\n    exec:\n"
			   "      apiVersion: client.authentication.k8s.io/v1\n"
			   "      command: %s\n      args: ['%s', '%d']\n"
			   "      env: [{name: EXTRA, value: x}]\n"
			   "      provideClusterInfo: true\n"
			   "      interactiveMode: Never\n",
			   url, f->script, f->tmp, ttl);
}

static void get_many(struct fx *f, struct sw_kube *k, int n)
{
	struct res *r = calloc((size_t)n, sizeof(*r));
	for (int i = 0; i < n; i++)
		sw_kube_get(k, "v1", "Namespace", NULL, "default", collect, &r[i], NULL);
	for (int i = 0; i < n; i++) {
		run_until(f, &r[i].done, 1, 10000);
		if (r[i].error)
			fail_msg("get %d: %s", i, r[i].msg);
		res_release(&r[i]);
	}
	free(r);
}

static void test_exec_plugin(void **state)
{
	struct fx *f = *state;
	const char *args[] = { "--token", "good", NULL };
	char calls[128], tokens[128], info[128], *cfg;
	struct sw_kube_stats st;
	struct sw_buf b = SW_BUF_INIT;

	need_kubeapi(f);
	server_start(f, &f->srv, args);
	snprintf(calls, sizeof(calls), "%s/calls", f->tmp);
	snprintf(tokens, sizeof(tokens), "%s/tokens", f->tmp);
	snprintf(info, sizeof(info), "%s/info", f->tmp);
	write_file(tokens, "good\n");

	/* One run for many requests while the token is valid (2 s). */
	cfg = exec_config(f, f->srv.url, 2);
	f->kube = kube_from(f, cfg, NULL);
	free(cfg);
	get_many(f, f->kube, 20);
	assert_int_equal(count_lines(calls), 1);
	get_many(f, f->kube, 5);
	assert_int_equal(count_lines(calls), 1);
	assert_int_equal(sw_buf_read_file(&b, info), 0);
	assert_non_null(strstr(b.ptr, "\"interactive\":false"));
	assert_non_null(strstr(b.ptr, f->srv.url));     /* provideClusterInfo */
	sw_buf_release(&b);

	/* Expired: run again. */
	run_for(f, 2200);
	get_many(f, f->kube, 5);
	assert_int_equal(count_lines(calls), 2);
	sw_kube_stats(f->kube, &st);
	assert_int_equal(st.exec_runs, 2);
	sw_kube_free(f->kube);
	f->kube = NULL;

	/* A token the server refuses: 401, run again (once), retry, fine. */
	unlink(calls);
	write_file(tokens, "wrong\ngood\n");
	cfg = exec_config(f, f->srv.url, 3600);
	f->kube = kube_from(f, cfg, NULL);
	free(cfg);
	get_many(f, f->kube, 10);
	assert_int_equal(count_lines(calls), 2);
	get_many(f, f->kube, 3);
	assert_int_equal(count_lines(calls), 2);
	sw_kube_free(f->kube);
	f->kube = NULL;

	/* Always wrong: the 401 surfaces after one refresh, with the message. */
	unlink(calls);
	write_file(tokens, "wrong\n");
	cfg = exec_config(f, f->srv.url, 3600);
	f->kube = kube_from(f, cfg, NULL);
	free(cfg);
	{
		struct res x = { 0 };
		sw_kube_get(f->kube, "v1", "Namespace", NULL, "default", collect, &x, NULL);
		wait_res(f, &x);
		assert_int_equal(x.error, SW_ERR);
		assert_non_null(strstr(x.msg, "401 Unauthorized"));
		res_release(&x);
	}
	assert_int_equal(count_lines(calls), 2);
}

static void test_exec_plugin_fails(void **state)
{
	struct fx *f = *state;
	struct res x = { 0 };
	char *cfg;

	need_kubeapi(f);
	server_start(f, &f->srv, NULL);
	cfg = sw_asprintf("current-context: t\nclusters: [{name: c, cluster: {server: '%s'}}]\n"
			  "contexts: [{name: t, context: {cluster: c, user: u}}]\n"
			  "users:\n- name: u\n  user:\n    exec:\n"
			  "      apiVersion: client.authentication.k8s.io/v1\n"
			  "      command: sh\n"
			  "      args: [-c, 'echo no credentials for you >&2; exit 3']\n",
			  f->srv.url);
	f->kube = kube_from(f, cfg, NULL);
	free(cfg);
	sw_kube_get(f->kube, "v1", "Namespace", NULL, "default", collect, &x, NULL);
	wait_res(f, &x);
	assert_int_equal(x.error, SW_ERR);
	if (!strstr(x.msg, "exec plugin sh exited with code 3: no credentials for you"))
		fail_msg("%s", x.msg);
	res_release(&x);
	sw_kube_free(f->kube);

	/* A plugin that hangs is killed at the time limit. */
	{
		struct sw_kube_opts o = SW_KUBE_OPTS_INIT;
		o.exec_timeout_ms = 300;
		cfg = sw_asprintf("current-context: t\nclusters: [{name: c, cluster: {server: '%s'}}]\n"
				  "contexts: [{name: t, context: {cluster: c, user: u}}]\n"
				  "users:\n- name: u\n  user:\n    exec:\n"
				  "      apiVersion: client.authentication.k8s.io/v1\n"
				  "      command: sleep\n      args: ['30']\n", f->srv.url);
		f->kube = kube_from(f, cfg, &o);
		free(cfg);
		sw_kube_get(f->kube, "v1", "Namespace", NULL, "default", collect, &x, NULL);
		wait_res(f, &x);
		assert_int_equal(x.error, SW_ERR);
		if (!strstr(x.msg, "exec plugin sleep: no answer within 300 ms"))
			fail_msg("%s", x.msg);
		res_release(&x);
	}
	/* A missing command says so, with the kubeconfig's installHint. */
	sw_kube_free(f->kube);
	cfg = sw_asprintf("current-context: t\nclusters: [{name: c, cluster: {server: '%s'}}]\n"
			  "contexts: [{name: t, context: {cluster: c, user: u}}]\n"
			  "users:\n- name: u\n  user:\n    exec:\n"
			  "      apiVersion: client.authentication.k8s.io/v1\n"
			  "      command: no-such-plugin-here\n"
			  "      installHint: install it with apt\n", f->srv.url);
	f->kube = kube_from(f, cfg, NULL);
	free(cfg);
	sw_kube_get(f->kube, "v1", "Namespace", NULL, "default", collect, &x, NULL);
	wait_res(f, &x);
	assert_int_equal(x.error, SW_ERR);
	if (!strstr(x.msg, "no-such-plugin-here") || !strstr(x.msg, "(install it with apt)"))
		fail_msg("%s", x.msg);
	res_release(&x);
}

/* An exec plugin (v1beta1) that hands out the server's client certificate. */
static void test_exec_client_cert(void **state)
{
	struct fx *f = *state;
	char dir[128], plugin[160], *text, *cfg;
	const char *args[] = { "--tls-dir", dir, "--token", "nobody-has-this", NULL };
	struct res x = { 0 };

	need_kubeapi(f);
	snprintf(dir, sizeof(dir), "%s/tls", f->tmp);
	server_start(f, &f->srv, args);
	snprintf(plugin, sizeof(plugin), "%s/cert-plugin.sh", f->tmp);
	text = sw_asprintf("#!/bin/sh\n"
			   "c=$(awk '{printf \"%%s\\\\n\", $0}' %s/client.crt)\n"
			   "k=$(awk '{printf \"%%s\\\\n\", $0}' %s/client.key)\n"
			   "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\","
			   "\"kind\":\"ExecCredential\",\"status\":{\"clientCertificateData\":\"%%s\","
			   "\"clientKeyData\":\"%%s\"}}\\n' \"$c\" \"$k\"\n", dir, dir);
	write_file(plugin, "%s", text);
	free(text);
	chmod(plugin, 0755);
	cfg = sw_asprintf("current-context: t\n"
			  "clusters: [{name: c, cluster: {server: '%s', certificate-authority: tls/ca.crt}}]\n"
			  "contexts: [{name: t, context: {cluster: c, user: u}}]\n"
			  "users:\n- name: u\n  user:\n    exec:\n"
			  "      apiVersion: client.authentication.k8s.io/v1beta1\n"
			  "      command: ./cert-plugin.sh\n", f->srv.url);
	f->kube = kube_from(f, cfg, NULL);
	free(cfg);
	sw_kube_get(f->kube, "v1", "Namespace", NULL, "default", collect, &x, NULL);
	wait_res(f, &x);
	if (x.error)
		fail_msg("%s", x.msg);
	res_release(&x);
}

/* ---- TLS -------------------------------------------------------------- */

static void test_tls(void **state)
{
	struct fx *f = *state;
	char dir[128], *cfg, path[160];
	const char *args[] = { "--tls-dir", dir, "--token", "sekrit", NULL };
	struct sw_kubeconfig *kc;
	struct sw_kube *k;
	struct sw_kube_opts o = SW_KUBE_OPTS_INIT;
	struct res x = { 0 };

	need_kubeapi(f);
	snprintf(dir, sizeof(dir), "%s/tls", f->tmp);
	server_start(f, &f->srv, args);
	assert_true(strncmp(f->srv.url, "https://", 8) == 0);

	/* CA and client certificate as files, no token: the certificate authenticates */
	cfg = sw_asprintf("current-context: t\n"
			  "clusters: [{name: c, cluster: {server: '%s', certificate-authority: tls/ca.crt}}]\n"
			  "contexts: [{name: t, context: {cluster: c, user: u, namespace: kube-system}}]\n"
			  "users: [{name: u, user: {client-certificate: tls/client.crt, client-key: tls/client.key}}]\n",
			  f->srv.url);
	f->kube = kube_from(f, cfg, NULL);
	free(cfg);
	sw_kube_get(f->kube, "v1", "Namespace", NULL, "kube-system", collect, &x, NULL);
	wait_res(f, &x);
	if (x.error)
		fail_msg("%s", x.msg);
	res_release(&x);
	{
		json_t *cm = configmap(NULL, "tls", NULL, "1");
		apply_wait(f, f->kube, cm, 0, &x);
		json_decref(cm);
		if (x.error)
			fail_msg("%s", x.msg);
		assert_string_equal(jpath_str(x.obj, "metadata", "namespace"), "kube-system");
		res_release(&x);
	}
	sw_kube_free(f->kube);
	f->kube = NULL;

	/* The server's own kubeconfig (embedded data) works as is. */
	snprintf(path, sizeof(path), "%s/kubeconfig", dir);
	if (sw_kubeconfig_load(&kc, path, NULL) < 0)
		fail_msg("%s", sw_error_last());
	o.http = f->http;
	assert_int_equal(sw_kube_new(&k, f->base, kc, &o), 0);
	sw_kube_get(k, "v1", "Namespace", NULL, "default", collect, &x, NULL);
	wait_res(f, &x);
	if (x.error)
		fail_msg("%s", x.msg);
	res_release(&x);
	sw_kube_free(k);

	/* Without the CA the server is not trusted, and no retry storm. */
	cfg = sw_asprintf("current-context: t\nclusters: [{name: c, cluster: {server: '%s'}}]\n"
			  "contexts: [{name: t, context: {cluster: c}}]\n", f->srv.url);
	o.max_attempts = 2;
	o.backoff_ms = 10;
	f->kube = kube_from(f, cfg, &o);
	free(cfg);
	sw_kube_get(f->kube, "v1", "Namespace", NULL, "default", collect, &x, NULL);
	wait_res(f, &x);
	assert_int_equal(x.error, SW_ERR);
	assert_non_null(strstr(x.msg, "discovery: GET /api"));
	res_release(&x);
}

/* ---- retries ---------------------------------------------------------- */

static void test_connect_retries(void **state)
{
	struct fx *f = *state;
	struct sw_kube_opts o = SW_KUBE_OPTS_INIT;
	struct sw_kube_stats st;
	struct res x = { 0 };
	char *cfg;

	/* Port 1 on loopback: connection refused at once. */
	cfg = plain_config("http://127.0.0.1:1", "t");
	o.max_attempts = 3;
	o.backoff_ms = 10;
	f->kube = kube_from(f, cfg, &o);
	free(cfg);
	sw_kube_get(f->kube, "v1", "Namespace", NULL, "default", collect, &x, NULL);
	wait_res(f, &x);
	assert_int_equal(x.error, SW_ERR);
	if (!strstr(x.msg, "v1 Namespace default: discovery: GET /api") ||
	    !strstr(x.msg, "onnect"))
		fail_msg("%s", x.msg);
	res_release(&x);
	sw_kube_stats(f->kube, &st);
	/* /api and /apis, three tries each */
	assert_int_equal(st.requests, 6);
	assert_int_equal(st.retries, 4);
}

/* ---- 429 / 5xx against a scripted server on the loop ------------------- */

/*
 * A tiny API server on the test's own loop: discovery for namespaces and
 * configmaps, and for every other request the next planned answer (then
 * 200 with a Namespace). Lets a test say exactly which codes come back.
 */
struct plan {
	int status;
	const char *retry_after;
	const char *ctype;
	const char *body;
};

struct fake {
	struct evhttp *http;
	int port;
	const struct plan *plan;
	size_t nplan, next;
	int hits;                /* non-discovery requests */
	int64_t first_ms, last_ms;
};

static void fake_reply(struct evhttp_request *req, int status, const char *ctype,
		       const char *body)
{
	struct evbuffer *b = evbuffer_new();
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	evbuffer_add(b, body, strlen(body));
	evhttp_send_reply(req, status, "X", b);
	evbuffer_free(b);
}

static void fake_cb(struct evhttp_request *req, void *arg)
{
	struct fake *fk = arg;
	const char *uri = evhttp_request_get_uri(req);

	if (strcmp(uri, "/api") == 0) {
		fake_reply(req, 200, "application/json", "{\"versions\":[\"v1\"]}");
		return;
	}
	if (strcmp(uri, "/apis") == 0) {
		fake_reply(req, 200, "application/json", "{\"groups\":[]}");
		return;
	}
	if (strcmp(uri, "/api/v1") == 0) {
		fake_reply(req, 200, "application/json",
			   "{\"resources\":[{\"name\":\"namespaces\",\"kind\":\"Namespace\","
			   "\"namespaced\":false},{\"name\":\"namespaces/status\",\"kind\":"
			   "\"Namespace\",\"namespaced\":false}]}");
		return;
	}
	fk->hits++;
	fk->last_ms = sw_mono_ms();
	if (fk->hits == 1)
		fk->first_ms = fk->last_ms;
	if (fk->next < fk->nplan) {
		const struct plan *p = &fk->plan[fk->next++];
		if (p->retry_after)
			evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After",
					  p->retry_after);
		fake_reply(req, p->status, p->ctype ? p->ctype : "application/json",
			   p->body ? p->body : "{}");
		return;
	}
	fake_reply(req, 200, "application/json",
		   "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"x\"}}");
}

static struct sw_kube *fake_client(struct fx *f, struct fake *fk, const struct plan *plan,
				   size_t n, int attempts)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct sw_kube_opts o = SW_KUBE_OPTS_INIT;
	char url[64], *cfg;
	struct sw_kube *k;

	memset(fk, 0, sizeof(*fk));
	fk->plan = plan;
	fk->nplan = n;
	fk->http = evhttp_new(f->base);
	evhttp_set_allowed_methods(fk->http, EVHTTP_REQ_GET | EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE);
	evhttp_set_gencb(fk->http, fake_cb, fk);
	bs = evhttp_bind_socket_with_handle(fk->http, "127.0.0.1", 0);
	assert_non_null(bs);
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl);
	fk->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", fk->port);
	cfg = plain_config(url, "t");
	o.max_attempts = attempts;
	o.backoff_ms = 10;
	k = kube_from(f, cfg, &o);
	free(cfg);
	return k;
}

static const char st500[] = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
	"\"message\":\"etcdserver: request timed out\",\"reason\":\"InternalError\",\"code\":500}";

static void test_retry_codes(void **state)
{
	struct fx *f = *state;
	struct fake fk;
	struct res x = { 0 };
	struct sw_kube_stats st;

	/* 503 with Retry-After: 1, then 429 with Retry-After: 0, then fine. */
	{
		static const struct plan p[] = {
			{ 503, "1", NULL, NULL }, { 429, "0", NULL, NULL },
		};
		f->kube = fake_client(f, &fk, p, 2, 5);
		sw_kube_get(f->kube, "v1", "Namespace", NULL, "x", collect, &x, NULL);
		wait_res(f, &x);
		if (x.error)
			fail_msg("%s", x.msg);
		assert_int_equal(fk.hits, 3);
		assert_true(fk.last_ms - fk.first_ms >= 950);
		sw_kube_stats(f->kube, &st);
		assert_int_equal(st.retries, 2);
		res_release(&x);
		sw_kube_free(f->kube);
		f->kube = NULL;
		evhttp_free(fk.http);
	}
	/* 500 every time: bounded attempts, SW_EAGAIN, the Status message. */
	{
		static const struct plan p[] = {
			{ 500, NULL, NULL, st500 }, { 500, NULL, NULL, st500 }, { 500, NULL, NULL, st500 },
			{ 500, NULL, NULL, st500 },
		};
		f->kube = fake_client(f, &fk, p, 4, 3);
		sw_kube_get(f->kube, "v1", "Namespace", NULL, "x", collect, &x, NULL);
		wait_res(f, &x);
		assert_int_equal(x.error, SW_EAGAIN);
		assert_int_equal(fk.hits, 3);
		assert_string_equal(x.reason, "InternalError");
		assert_string_equal(x.msg, "v1 Namespace x: etcdserver: request timed out "
			"(500 Internal Server Error)");
		res_release(&x);
		sw_kube_free(f->kube);
		f->kube = NULL;
		evhttp_free(fk.http);
	}
	/* A proxy's HTML page: an excerpt on one line. 403 is not retried. */
	{
		static const struct plan p[] = {
			{ 403, NULL, "text/html", "<html>\n<b>denied</b>\n</html>\n" },
		};
		f->kube = fake_client(f, &fk, p, 1, 5);
		sw_kube_get(f->kube, "v1", "Namespace", NULL, "x", collect, &x, NULL);
		wait_res(f, &x);
		assert_int_equal(x.error, SW_ERR);
		assert_int_equal(fk.hits, 1);
		assert_string_equal(x.msg, "v1 Namespace x: <html> <b>denied</b> </html> (403 Forbidden)");
		res_release(&x);
		sw_kube_free(f->kube);
		f->kube = NULL;
		evhttp_free(fk.http);
	}
}

/* tokenFile: re-read after a 401 (tokens rotate). */
static void test_token_file(void **state)
{
	struct fx *f = *state;
	const char *args[] = { "--token", "good", NULL };
	char tok[128], *cfg;
	struct res x = { 0 };

	need_kubeapi(f);
	server_start(f, &f->srv, args);
	snprintf(tok, sizeof(tok), "%s/token", f->tmp);
	write_file(tok, "stale\n");
	cfg = sw_asprintf("current-context: t\nclusters: [{name: c, cluster: {server: '%s'}}]\n"
			  "contexts: [{name: t, context: {cluster: c, user: u}}]\n"
			  "users: [{name: u, user: {token: ignored, tokenFile: token}}]\n",
			  f->srv.url);
	f->kube = kube_from(f, cfg, NULL);
	free(cfg);
	sw_kube_get(f->kube, "v1", "Namespace", NULL, "default", collect, &x, NULL);
	wait_res(f, &x);
	assert_int_equal(x.error, SW_ERR);
	if (!strstr(x.msg, "v1 Namespace default: discovery: GET /ap") ||
	    !strstr(x.msg, "(401 Unauthorized)"))
		fail_msg("%s", x.msg);
	res_release(&x);

	write_file(tok, "good\n");
	sw_kube_get(f->kube, "v1", "Namespace", NULL, "default", collect, &x, NULL);
	wait_res(f, &x);
	if (x.error)
		fail_msg("%s", x.msg);
	res_release(&x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kubeconfig_variants, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kubeconfig_errors, setup, teardown),
		cmocka_unit_test(test_parse_time),
		cmocka_unit_test_setup_teardown(test_discovery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crd_refresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_get_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_paging, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_applies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inflight_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watch_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_plugin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_plugin_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_client_cert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_retries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_codes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_file, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
