/*
 * test_render.c - manifests/render.c and objset.c on real files in a
 * temporary directory, with the real `kubectl kustomize` (and helm when it
 * is installed), and fake tools on PATH for failures and hangs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/error.h"
#include "manifests/manifests.h"
#include "tests/unit/slow.h"

static char tmp[256];       /* this test's checkout */
static char *saved_path;    /* PATH before a test changed it */

/* --- helpers -------------------------------------------------------------- */

static void mkdirs(const char *path)
{
	char *p = strdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s == '/') {
			*s = '\0';
			mkdir(p, 0755);
			*s = '/';
		}
	}
	mkdir(p, 0755);
	free(p);
}

/* Write `text` to tmp/rel, creating directories. */
static void put(const char *rel, const char *text)
{
	char *path = sw_asprintf("%s/%s", tmp, rel);
	char *slash = strrchr(path, '/');
	FILE *f;

	*slash = '\0';
	mkdirs(path);
	*slash = '/';
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	free(path);
}

static void put_exec(const char *rel, const char *text)
{
	char *path = sw_asprintf("%s/%s", tmp, rel);
	put(rel, text);
	chmod(path, 0755);
	free(path);
}

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
	return remove(p);
}

static int setup(void **state)
{
	snprintf(tmp, sizeof(tmp), "/tmp/sw-render-XXXXXX");
	assert_non_null(mkdtemp(tmp));
	saved_path = strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
	return 0;
}

static int teardown(void **state)
{
	setenv("PATH", saved_path, 1);
	free(saved_path);
	nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* Put tmp/bin first on PATH (for fake tools). */
static void path_with_bin(void)
{
	char *p = sw_asprintf("%s/bin:%s", tmp, saved_path);
	setenv("PATH", p, 1);
	free(p);
}

static int render(struct sw_objset **set, const char *root, const char *path,
		  const struct sw_render_opts *o)
{
	const char *paths[] = { path };
	return sw_render_dir(set, root, paths, 1, o);
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("'%s'\n  does not contain '%s'", hay, needle);
}

static const char *label(const struct sw_obj *o, const char *k)
{
	return json_string_value(json_object_get(
		json_object_get(json_object_get(o->json, "metadata"), "labels"), k));
}

static int have(const char *tool)
{
	char *cmd = sw_asprintf("command -v %s >/dev/null 2>&1", tool);
	int rc = system(cmd);
	free(cmd);
	return rc == 0;
}

/* --- files ------------------------------------------------------------------ */

static void test_guestbook(void **state)
{
	const char *fx = getenv("SW_FIXTURES") ? getenv("SW_FIXTURES") : "/work/shared/fixtures";
	char *root = sw_asprintf("%s/manifests", fx);
	struct sw_objset *set;
	struct stat st;

	if (stat(root, &st) < 0) {
		free(root);
		skip();
	}
	if (render(&set, root, "guestbook", NULL) < 0)
		fail_msg("%s", sw_error_last());
	assert_int_equal(set->n, 2);
	assert_string_equal(set->objs[0].source, "guestbook/guestbook-ui-deployment.yaml");
	assert_string_equal(set->objs[0].kind, "Deployment");
	assert_string_equal(set->objs[0].name, "guestbook-ui");
	assert_string_equal(set->objs[0].key, "apps/Deployment//guestbook-ui");
	assert_int_equal(set->objs[0].line, 1);
	assert_int_equal(set->objs[0].col, 1);
	assert_string_equal(set->objs[1].source, "guestbook/guestbook-ui-svc.yaml");
	assert_string_equal(set->objs[1].key, "/Service//guestbook-ui");
	assert_string_equal(set->objs[1].ns, "");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(set->objs[0].json, "spec"),
							     "replicas")), 1);
	/* the same input renders the same way every time */
	{
		struct sw_objset *again;
		assert_int_equal(render(&again, root, "./guestbook/", NULL), 0);
		for (size_t i = 0; i < 2; i++) {
			assert_string_equal(again->objs[i].key, set->objs[i].key);
			assert_true(json_equal(again->objs[i].json, set->objs[i].json));
		}
		sw_objset_free(again);
	}
	/* apply order: the Service before the Deployment, in two stages */
	sw_objset_sort_for_apply(set);
	assert_string_equal(set->objs[0].kind, "Service");
	assert_int_equal(set->objs[0].stage, 0);
	assert_int_equal(set->objs[1].stage, 1);
	sw_objset_free(set);
	free(root);
}

static const char cm_fmt[] = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  k: v\n";

static void test_tree(void **state)
{
	struct sw_objset *set;
	char *a_b = sw_asprintf(cm_fmt, "cm-dash");

	/* '-' sorts before '.', and "list.yaml" before "nested/": byte-wise on paths */
	put("app/a-b.yaml", a_b);
	put("app/a.yaml",
	    "# leading comment\n"
	    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-a\n  namespace: web\n"
	    "---\n"
	    "---\n"
	    "# nothing here\n"
	    "---\n"
	    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s-a\nstringData:\n  password: hunter2\n");
	put("app/c.json",
	    "{\"apiVersion\": \"v1\", \"kind\": \"Service\", \"metadata\": {\"name\": \"svc-j\"},\n"
	    " \"spec\": {\"ports\": [{\"port\": 80.0}]}}\n"
	    "{\"apiVersion\": \"v1\", \"kind\": \"ServiceAccount\", \"metadata\": {\"name\": \"sa-j\"}}\n");
	put("app/list.yaml",
	    "apiVersion: v1\nkind: List\nitems:\n"
	    "- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: cm-l1\n"
	    "- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: cm-l2\n"
	    "---\n"
	    "apiVersion: v1\nkind: ConfigMapList\nitems:\n"
	    "- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: cm-l3\n"
	    "- apiVersion: v1\n  kind: List\n  items:\n"
	    "  - {apiVersion: v1, kind: ConfigMap, metadata: {name: cm-l4}}\n");
	put("app/nested/deep/b.yml",
	    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n"
	    "    slipway.dev/sync-wave: \"2\"\nspec:\n  replicas: 1e1\n");
	put("app/README.md", "not: [valid yaml\n");
	put("app/notes.txt", "kind: nope\n");
	put("app/.github/workflows/ci.yml", "on: push\n");
	put("app/empty.yaml", "");

	if (render(&set, tmp, "app", NULL) < 0)
		fail_msg("%s", sw_error_last());
	assert_int_equal(set->n, 10);
	{
		static const char *const want[][3] = {
			{ "app/a-b.yaml", "cm-dash", "1" },
			{ "app/a.yaml", "cm-a", "2" },
			{ "app/a.yaml", "s-a", "11" },
			{ "app/c.json", "svc-j", "1" },
			{ "app/c.json", "sa-j", "3" },
			{ "app/list.yaml", "cm-l1", "4" },
			{ "app/list.yaml", "cm-l2", "8" },
			{ "app/list.yaml", "cm-l3", "16" },
			{ "app/list.yaml", "cm-l4", "23" },
			{ "app/nested/deep/b.yml", "web", "1" },
		};
		for (size_t i = 0; i < 10; i++) {
			assert_string_equal(set->objs[i].source, want[i][0]);
			assert_string_equal(set->objs[i].name, want[i][1]);
			if (set->objs[i].line != atoi(want[i][2]))
				fail_msg("%s line %d, want %s", set->objs[i].name, set->objs[i].line,
					 want[i][2]);
		}
	}
	assert_string_equal(set->objs[1].key, "/ConfigMap/web/cm-a");
	assert_true(set->objs[2].is_secret);
	assert_false(set->objs[1].is_secret);
	assert_int_equal(set->objs[5].col, 3);   /* the list item, not the list */
	/* numbers as kubectl sends them: 80.0 and 1e1 are integers */
	assert_true(json_is_integer(json_object_get(json_array_get(json_object_get(
		json_object_get(set->objs[3].json, "spec"), "ports"), 0), "port")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(set->objs[9].json, "spec"),
							     "replicas")), 10);
	assert_int_equal(set->objs[9].wave, 2);
	{
		struct sw_buf w = SW_BUF_INIT;
		sw_obj_where(&set->objs[2], &w);
		assert_string_equal(w.ptr, "app/a.yaml:11:1");
		sw_buf_release(&w);
	}
	sw_objset_free(set);

	/* a file named directly is read whatever its name; "." is the whole checkout */
	assert_int_equal(render(&set, tmp, "app/nested/deep/b.yml", NULL), 0);
	assert_int_equal(set->n, 1);
	sw_objset_free(set);
	free(a_b);
}

/* Reals too big for an integer stay reals (the conversion is not tried: it is undefined). */
static void test_huge_reals(void **state)
{
	struct sw_objset *set;
	json_t *d;

	put("big.json", "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": "
	    "{\"name\": \"big\"}, \"x\": [1e300, -1e300, 9.3e18, -9.3e18, 4.0, -2.0]}\n");
	assert_int_equal(render(&set, tmp, "big.json", NULL), 0);
	assert_int_equal(set->n, 1);
	d = json_object_get(set->objs[0].json, "x");
	assert_true(json_is_real(json_array_get(d, 0)));
	assert_true(json_real_value(json_array_get(d, 1)) == -1e300);
	assert_true(json_is_real(json_array_get(d, 2)));
	assert_true(json_is_real(json_array_get(d, 3)));
	assert_int_equal(json_integer_value(json_array_get(d, 4)), 4);
	assert_int_equal(json_integer_value(json_array_get(d, 5)), -2);
	sw_objset_free(set);
}

static void test_invalid_yaml(void **state)
{
	struct sw_objset *set = (void *)1;
	char *ok = sw_asprintf(cm_fmt, "fine");

	put("m/ok.yaml", ok);
	put("m/bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n  y: z\n");
	put("m/bad.json", "{\"apiVersion\": \"v1\",\n  \"kind\": }\n");
	put("m/dupkey.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: d\n  name: e\n");
	assert_int_equal(render(&set, tmp, "m", NULL), SW_EINVALID);
	assert_null(set);
	assert_contains(sw_error_last(), "m/bad.json:2:11: ");
	assert_contains(sw_error_last(), "\nm/bad.yaml:5:4: did not find expected ',' or ']'");
	assert_contains(sw_error_last(), "\nm/dupkey.yaml:5:3: key \"name\" is defined twice");
	free(ok);
}

static void test_missing_fields(void **state)
{
	struct sw_render_opts o = SW_RENDER_OPTS_INIT;
	struct sw_buf all = SW_BUF_INIT;
	struct sw_objset *set;
	const char *e;

	put("f/x.yaml",
	    "kind: ConfigMap\nmetadata:\n  name: no-api\n"
	    "---\n"
	    "apiVersion: v1\nmetadata:\n  name: no-kind\n"
	    "---\n"
	    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {a: b}\n"
	    "---\n"
	    "apiVersion: v1\nkind: Pod\nmetadata:\n  generateName: p-\n"
	    "---\n"
	    "- just\n- a list\n"
	    "---\n"
	    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w\n  annotations:\n"
	    "    slipway.dev/sync-wave: soon\n"
	    "---\n"
	    "{}\n"
	    "---\n"
	    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: no\n");
	o.errors = &all;
	assert_int_equal(render(&set, tmp, "f", &o), SW_EINVALID);
	e = sw_error_last();
	assert_contains(e, "f/x.yaml:1:1: missing apiVersion");
	assert_contains(e, "\nf/x.yaml:5:1: missing kind");
	assert_contains(e, "\nf/x.yaml:9:1: missing metadata.name");
	assert_contains(e, "\nf/x.yaml:14:1: metadata.generateName is for hooks only");
	assert_contains(e, "\nf/x.yaml:19:1: document is a list, not a Kubernetes object");
	assert_contains(e, "\nf/x.yaml:22:1: annotation slipway.dev/sync-wave must be an integer");
	assert_contains(e, "\nf/x.yaml:29:1: missing apiVersion; missing kind; missing metadata.name");
	/* the YAML 1.1 trap: `namespace: no` is false */
	assert_contains(e, "\nf/x.yaml:31:1: metadata.namespace must be a string, not a boolean (quote it");
	/* the caller's buffer holds the same list */
	assert_string_equal(all.ptr, e);
	sw_buf_release(&all);
}

static void test_duplicates(void **state)
{
	struct sw_objset *set;
	const char *dep = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n";
	const char *old = "---\napiVersion: apps/v1beta1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n";
	const char *other_ns = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n";

	put("d/a.yaml", dep);
	put("d/b.yaml", old);
	put("d/c.yaml", other_ns);   /* no namespace written: not the same key (yet) */
	assert_int_equal(render(&set, tmp, "d", NULL), SW_EINVALID);
	assert_string_equal(sw_error_last(),
			    "d/b.yaml:2:1: duplicate object apps/Deployment/shop/web, first defined at d/a.yaml:1:1");

	/* the engine fills default namespaces, then checks again */
	remove(strcat(strcpy((char[512]){ 0 }, tmp), "/d/b.yaml"));
	assert_int_equal(render(&set, tmp, "d", NULL), 0);
	assert_int_equal(sw_objset_check_duplicates(set, NULL), 0);
	sw_obj_set_namespace(&set->objs[1], "shop");
	assert_string_equal(set->objs[1].key, "apps/Deployment/shop/web");
	assert_string_equal(json_string_value(json_object_get(json_object_get(set->objs[1].json,
			    "metadata"), "namespace")), "shop");
	assert_int_equal(sw_objset_check_duplicates(set, NULL), SW_EINVALID);
	assert_contains(sw_error_last(), "d/c.yaml:1:1: duplicate object apps/Deployment/shop/web");
	sw_objset_free(set);
}

/* Values never reach messages, so a Secret's data cannot leak through one. */
static void test_secret_values_stay_out_of_errors(void **state)
{
	struct sw_objset *set;
	put("s/secret.yaml",
	    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  token: !!int hunter2\n");
	assert_int_equal(render(&set, tmp, "s", NULL), SW_EINVALID);
	assert_contains(sw_error_last(), "s/secret.yaml:6:10: the value is not a valid !!int");
	assert_null(strstr(sw_error_last(), "hunter2"));
}

static void test_paths_and_links(void **state)
{
	struct sw_objset *set;
	char *cm = sw_asprintf(cm_fmt, "in");
	char *link = sw_asprintf("%s/l/passwd.yaml", tmp);
	char *dirlink = sw_asprintf("%s/l/loop", tmp);

	put("l/in.yaml", cm);
	assert_int_equal(symlink("/etc/passwd", link), 0);
	assert_int_equal(symlink("..", dirlink), 0);   /* not followed: no loop */
	{
		char *other = sw_asprintf("%s/l/hosts", tmp);
		assert_int_equal(symlink("/etc/hosts", other), 0);   /* not a manifest: ignored */
		free(other);
	}
	assert_int_equal(render(&set, tmp, "l", NULL), SW_EINVALID);
	assert_string_equal(sw_error_last(), "l/passwd.yaml: symbolic link leads outside the checkout");
	assert_null(strstr(sw_error_last(), "root:"));
	remove(link);
	assert_int_equal(render(&set, tmp, "l", NULL), 0);
	assert_int_equal(set->n, 1);
	sw_objset_free(set);

	assert_int_equal(render(&set, tmp, "../etc", NULL), SW_EINVALID);
	assert_contains(sw_error_last(), "must be relative and stay inside the checkout");
	assert_int_equal(render(&set, tmp, "/etc", NULL), SW_EINVALID);
	assert_int_equal(render(&set, tmp, "nowhere", NULL), SW_EINVALID);
	assert_string_equal(sw_error_last(), "nowhere: No such file or directory in the checkout");
	free(cm);
	free(link);
	free(dirlink);
}

static void test_limits(void **state)
{
	struct sw_render_opts o = SW_RENDER_OPTS_INIT;
	struct sw_objset *set;
	struct sw_buf big = SW_BUF_INIT;

	for (int i = 0; i < 5; i++)
		sw_buf_addf(&big, "---\n" "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c%d\n", i);
	put("lim/many.yaml", big.ptr);
	o.max_objects = 3;
	assert_int_equal(render(&set, tmp, "lim", &o), SW_EINVALID);
	assert_string_equal(sw_error_last(), "lim/many.yaml:17:1: more than 3 objects; stopped reading");

	o.max_objects = 0;
	o.max_file_bytes = 64;
	assert_int_equal(render(&set, tmp, "lim", &o), SW_EINVALID);
	assert_contains(sw_error_last(), "lim/many.yaml: file is ");
	assert_contains(sw_error_last(), "bytes, more than the limit of 64");

	/* a long list is cut at a line in the slot, whole in opts.errors */
	{
		struct sw_buf docs = SW_BUF_INIT, all = SW_BUF_INIT;
		o.max_file_bytes = 0;
		o.errors = &all;
		for (int i = 0; i < 48; i++)   /* 48 lines of 40 bytes: more than the slot keeps */
			sw_buf_addf(&docs, "---\nkind: ConfigMap\nmetadata: {name: n%d}\n", i);
		put("lim/many.yaml", docs.ptr);
		assert_int_equal(render(&set, tmp, "lim", &o), SW_EINVALID);
		assert_true(strlen(sw_error_last()) < 2000);
		assert_contains(sw_error_last(), "missing apiVersion\n... and ");
		assert_contains(all.ptr, "lim/many.yaml:143:1: missing apiVersion");
		assert_null(strstr(sw_error_last(), "lim/many.yaml:143:1"));
		o.errors = NULL;
		sw_buf_release(&docs);
		sw_buf_release(&all);
	}
	/* problems stop being collected at max_errors */
	o.max_file_bytes = 0;
	o.max_errors = 2;
	put("lim/many.yaml", "a: 1\n---\nb: 1\n---\nc: 1\n---\nd: 1\n");
	assert_int_equal(render(&set, tmp, "lim", &o), SW_EINVALID);
	assert_contains(sw_error_last(), "lim/many.yaml:3:1: missing apiVersion");
	assert_contains(sw_error_last(), "\nstopped after 2 problems");
	assert_null(strstr(sw_error_last(), "lim/many.yaml:5:1"));
	sw_buf_release(&big);
}

/* --- kustomize and helm ----------------------------------------------------------- */

static void test_kustomize(void **state)
{
	struct sw_objset *set;
	char *cm = sw_asprintf(cm_fmt, "settings");

	if (!have("kubectl") && !have("kustomize"))
		skip();
	put("k/base/kustomization.yaml",
	    "resources:\n- cm.yaml\n- deploy.yaml\nnamePrefix: dev-\ncommonLabels:\n  team: blue\n");
	put("k/base/cm.yaml", cm);
	put("k/base/deploy.yaml",
	    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n"
	    "  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n"
	    "      labels: {app: web}\n    spec:\n      containers:\n      - name: c\n        image: nginx\n");
	/* a file beside the kustomization is not read on its own */
	put("k/base/ignored.yaml", "not a manifest: [\n");
	put("k/plain/z.yaml", cm);

	if (render(&set, tmp, "k", NULL) < 0)
		fail_msg("%s", sw_error_last());
	assert_int_equal(set->n, 3);
	/* kustomize's own order: ConfigMap, Deployment */
	assert_string_equal(set->objs[0].name, "dev-settings");
	assert_string_equal(set->objs[0].source, "kustomize k/base");
	assert_true(set->objs[0].rendered);
	assert_string_equal(label(&set->objs[0], "team"), "blue");
	assert_string_equal(set->objs[1].name, "dev-web");
	assert_string_equal(label(&set->objs[1], "team"), "blue");
	assert_string_equal(set->objs[2].source, "k/plain/z.yaml");
	{
		struct sw_buf w = SW_BUF_INIT;
		sw_obj_where(&set->objs[1], &w);
		assert_contains(w.ptr, "kustomize k/base (output ");
		sw_buf_release(&w);
	}
	sw_objset_free(set);
	free(cm);
}

static void test_kustomize_fails(void **state)
{
	struct sw_objset *set;

	if (!have("kubectl") && !have("kustomize"))
		skip();
	/* what is not in the checkout is refused before kustomize runs */
	put("kf/kustomization.yaml", "resources:\n- missing.yaml\n");
	assert_int_equal(render(&set, tmp, "kf", NULL), SW_EINVALID);
	assert_string_equal(sw_error_last(),
			    "kf/kustomization.yaml: resources[0]: 'missing.yaml' is not in the checkout");
	/* kustomize's own complaint, with its stderr */
	put("kf/kustomization.yaml", "resources:\n- bad.yaml\n");
	put("kf/bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n");
	assert_int_equal(render(&set, tmp, "kf", NULL), SW_EINVALID);
	assert_contains(sw_error_last(), "kustomize kf: exit status 1: ");
	assert_contains(sw_error_last(), "bad.yaml");   /* from the tool's stderr */
}

/* A tool that hangs is killed with its whole process group. */
static void test_tool_timeout(void **state)
{
	struct sw_render_opts o = SW_RENDER_OPTS_INIT;
	struct sw_objset *set;
	char *pidfile = sw_asprintf("%s/sleeper.pid", tmp);
	char *script = sw_asprintf("#!/bin/sh\necho 'building...' >&2\nsleep 60 &\necho $! > %s\nwait\n",
				   pidfile);
	int64_t t0;
	FILE *f;
	int pid = 0;

	put_exec("bin/kustomize", script);
	put("hang/kustomization.yaml", "resources: []\n");
	path_with_bin();
	o.timeout_ms = 500;
	t0 = sw_mono_ms();
	assert_int_equal(render(&set, tmp, "hang", &o), SW_EINVALID);
	assert_true(sw_mono_ms() - t0 < sw_test_ms(3000));
	assert_string_equal(sw_error_last(),
			    "kustomize hang: timed out after 500 ms; its process group was killed: building...");
	/* the grandchild (sleep) is gone too: absent, or a zombie awaiting init */
	f = fopen(pidfile, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%d", &pid), 1);
	fclose(f);
	long tries = sw_test_ms(50);
	for (long i = 0; i < tries; i++) {
		char *stat = sw_asprintf("/proc/%d/stat", pid);
		char buf[512] = "";
		FILE *s = fopen(stat, "r");
		free(stat);
		if (!s)
			break;
		if (fgets(buf, sizeof(buf), s) && strstr(buf, ") Z ")) {
			fclose(s);
			break;
		}
		fclose(s);
		if (i == tries - 1)
			fail_msg("process %d still runs", pid);
		usleep(20000);
	}
	free(pidfile);
	free(script);
}

/* A tool's exit status and stderr, and one that cannot be run at all. */
static void test_tool_errors(void **state)
{
	struct sw_objset *set;

	put_exec("bin/kustomize", "#!/bin/sh\necho 'Error: accumulating resources' >&2\n"
		 "echo 'second line' >&2\nexit 3\n");
	put("kx/Kustomization", "resources: []\n");
	path_with_bin();
	assert_int_equal(render(&set, tmp, "kx", NULL), SW_EINVALID);
	assert_string_equal(sw_error_last(),
			    "kustomize kx: exit status 3: Error: accumulating resources\n    second line");
	/* the daemon's secrets stay out of a tool's environment */
	setenv("SLIPWAY_GITHUB_TOKEN", "ghp_secret", 1);
	put_exec("bin/kustomize", "#!/bin/sh\nprintf 'apiVersion: v1\\nkind: ConfigMap\\n"
		 "metadata:\\n  name: env\\ndata:\\n  token: \"%s\"\\n  home: \"%s\"\\n' "
		 "\"$SLIPWAY_GITHUB_TOKEN\" \"$HOME\"\n");
	assert_int_equal(render(&set, tmp, "kx", NULL), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(set->objs[0].json,
			    "data"), "token")), "");
	if (getenv("HOME"))
		assert_string_equal(json_string_value(json_object_get(json_object_get(set->objs[0].json,
				    "data"), "home")), getenv("HOME"));
	sw_objset_free(set);
	unsetenv("SLIPWAY_GITHUB_TOKEN");
	/* big output still buffered when the tool exits is read in full */
	put_exec("bin/kustomize", "#!/bin/sh\ni=0\nwhile [ $i -lt 3000 ]; do\n"
		 "printf -- '---\\napiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: c%d\\n"
		 "data:\\n  pad: \"%0200d\"\\n' $i 0\ni=$((i+1))\ndone\n");
	assert_int_equal(render(&set, tmp, "kx", NULL), 0);
	assert_int_equal(set->n, 3000);
	sw_objset_free(set);
	/* a tool that exits but leaves a child holding its output is not trusted */
	put_exec("bin/kustomize", "#!/bin/sh\necho 'kind: X' \n(sleep 30) &\nexit 0\n");
	assert_int_equal(render(&set, tmp, "kx", NULL), SW_EINVALID);
	assert_contains(sw_error_last(), "kustomize kx: exited, but a process it started kept its output open");
	/* tool output is parsed and checked like files, located in the output */
	put_exec("bin/kustomize", "#!/bin/sh\nprintf 'apiVersion: v1\\nkind: ConfigMap\\n"
		 "metadata:\\n  name: a\\n---\\nkind: Oops\\n'\n");
	assert_int_equal(render(&set, tmp, "kx", NULL), SW_EINVALID);
	assert_string_equal(sw_error_last(), "kustomize kx:6:1: missing apiVersion; missing metadata.name");
}

static void test_helm(void **state)
{
	struct sw_render_opts o = SW_RENDER_OPTS_INIT;
	struct sw_objset *set;

	put("chart/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
	put("chart/templates/cm.yaml",
	    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n"
	    "  namespace: {{ .Release.Namespace }}\n");
	o.helm_namespace = "shop";
	if (have("helm")) {
		/* helm is here: render for real */
		if (render(&set, tmp, "chart", &o) < 0)
			fail_msg("%s", sw_error_last());
		assert_int_equal(set->n, 1);
		assert_string_equal(set->objs[0].name, "chart-cm");
		assert_string_equal(set->objs[0].ns, "shop");
		assert_string_equal(set->objs[0].source, "helm chart");
		sw_objset_free(set);
	} else {
		assert_int_equal(render(&set, tmp, "chart", &o), SW_EINVALID);
		assert_string_equal(sw_error_last(), "chart: Chart.yaml found but helm is not installed");
	}
	/* with a fake helm: the arguments slipway passes */
	put_exec("bin/helm", "#!/bin/sh\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n"
		 "  name: args\\ndata:\\n  argv: \"%s\"\\n' \"$*\"\n");
	path_with_bin();
	o.helm_release = "rel";
	assert_int_equal(render(&set, tmp, "chart", &o), 0);
	{
		char *want = sw_asprintf("template rel %s/chart --namespace shop --include-crds", tmp);
		assert_string_equal(json_string_value(json_object_get(json_object_get(set->objs[0].json,
				    "data"), "argv")), want);
		free(want);
	}
	sw_objset_free(set);
}

/* --- reading outside the checkout (issue 11, defect 7) ------------------------------ */

/* A link at tmp/rel pointing at `target` (made absolute under tmp when relative to it). */
static void put_link(const char *rel, const char *target)
{
	char *path = sw_asprintf("%s/%s", tmp, rel);
	char *to = target[0] == '/' ? strdup(target) : sw_asprintf("%s/%s", tmp, target);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	mkdirs(path);
	*slash = '/';
	assert_int_equal(symlink(to, path), 0);
	free(path);
	free(to);
}

/* Render tmp/repo/`path` (the checkout is tmp/repo): it must fail with `want` in the error. */
static void assert_refused(const char *path, const char *want)
{
	struct sw_objset *set = NULL;
	char *root = sw_asprintf("%s/repo", tmp);
	int rc = render(&set, root, path, NULL);
	if (rc == 0) {
		char *txt = set->n ? json_dumps(set->objs[0].json, JSON_COMPACT) : strdup("(none)");
		fail_msg("%s rendered %zu objects (%s), want the error '%s'", path, set->n, txt, want);
	}
	assert_int_equal(rc, SW_EINVALID);
	assert_contains(sw_error_last(), want);
	assert_null(strstr(sw_error_last(), "from-outside"));   /* nothing of what is there */
	free(root);
}

/* Everything a kustomization names resolves inside the checkout, after links. */
static void test_kustomize_stays_inside(void **state)
{
	char *cm = sw_asprintf(cm_fmt, "inner");
	struct sw_objset *set;
	char *root = sw_asprintf("%s/repo", tmp);

	if (!have("kubectl") && !have("kustomize"))
		skip();
	/* outside the checkout: a base, a file, a patch, a secret */
	put("outside/base/kustomization.yaml", "resources:\n- cm.yaml\n");
	put("outside/base/cm.yaml",
	    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stolen\ndata:\n  k: from-outside\n");
	put("outside/cm.yaml",
	    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stolen\ndata:\n  k: from-outside\n");
	put("outside/secret.txt", "from-outside\n");
	put("outside/patch.yaml",
	    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: inner\ndata:\n  k: from-outside\n");

	/* the reported case: a base up and out */
	put("repo/up/kustomization.yaml", "resources:\n- ../../outside/base\n");
	assert_refused("up", "up/kustomization.yaml: resources[0]: '../../outside/base' leads outside the checkout");
	/* a link inside the checkout that points out, as a base and as a file */
	put("repo/linked/kustomization.yaml", "resources:\n- base\n");
	put_link("repo/linked/base", "outside/base");
	assert_refused("linked", "linked/kustomization.yaml: resources[0]: 'base' leads outside the checkout");
	put("repo/filelink/kustomization.yaml", "resources:\n- cm.yaml\n");
	put_link("repo/filelink/cm.yaml", "outside/cm.yaml");
	assert_refused("filelink", "filelink/kustomization.yaml: resources[0]: 'cm.yaml' leads outside the checkout");
	/* a kustomization file that is itself a link out */
	put_link("repo/kzlink/kustomization.yaml", "outside/base/kustomization.yaml");
	assert_refused("kzlink", "kzlink/kustomization.yaml: leads outside the checkout");
	/* deeper: an inner base (inside) whose own base is outside */
	put("repo/overlay/kustomization.yaml", "bases:\n- ../mid\n");
	put("repo/mid/kustomization.yaml", "resources:\n- cm.yaml\ncomponents:\n- ../../outside/base\n");
	put("repo/mid/cm.yaml", cm);
	assert_refused("overlay", "mid/kustomization.yaml: components[0]: '../../outside/base' leads outside the checkout");
	/* files of generators and patches; keys in any case, as Go's JSON decoder reads them */
	put("repo/gen/kustomization.yaml",
	    "configMapGenerator:\n- name: g\n  files:\n  - key=../../outside/secret.txt\n");
	assert_refused("gen", "gen/kustomization.yaml: configMapGenerator[0].files[0]: '../../outside/secret.txt' leads outside the checkout");
	put("repo/gen2/kustomization.yaml",
	    "secretGenerator:\n- name: g\n  envs: [../../outside/secret.txt]\n");
	assert_refused("gen2", "'../../outside/secret.txt' leads outside the checkout");
	put("repo/patch/kustomization.yaml",
	    "resources: [cm.yaml]\nPatches:\n- Path: ../../outside/patch.yaml\n");
	put("repo/patch/cm.yaml", cm);
	assert_refused("patch", "patch/kustomization.yaml: Patches[0].Path: '../../outside/patch.yaml' leads outside the checkout");
	put("repo/smp/kustomization.yaml",
	    "resources: [cm.yaml]\npatchesStrategicMerge:\n- ../../outside/patch.yaml\n");
	put("repo/smp/cm.yaml", cm);
	assert_refused("smp", "smp/kustomization.yaml: patchesStrategicMerge[0]: '../../outside/patch.yaml' leads outside the checkout");
	/* a merge key does not hide a field */
	put("repo/merge/kustomization.yaml", "x: &x {resources: [../../outside/base]}\n<<: *x\n");
	assert_refused("merge", "'../../outside/base' leads outside the checkout");
	/* remote bases are not fetched: only what is in the checkout is rendered */
	put("repo/remote/kustomization.yaml",
	    "resources:\n- https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0\n");
	assert_refused("remote", "remote/kustomization.yaml: resources[0]: 'https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0' is not in the checkout");

	/* inside is fine, "../" and links included; inline patches are not paths */
	put("repo/base/kustomization.yaml", "resources:\n- cm.yaml\n");
	put("repo/base/cm.yaml", cm);
	put("repo/envs/dev/kustomization.yaml",
	    "resources:\n- ../../base\n- ../../shared\npatchesStrategicMerge:\n- |-\n"
	    "  apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: inner\n  data:\n    k: patched\n");
	put_link("repo/shared", "repo/sharedreal");
	put("repo/sharedreal/kustomization.yaml", "resources: [other.yaml]\n");
	{
		char *other = sw_asprintf(cm_fmt, "other");
		put("repo/sharedreal/other.yaml", other);
		free(other);
	}
	if (render(&set, root, "envs/dev", NULL) < 0)
		fail_msg("%s", sw_error_last());
	assert_int_equal(set->n, 2);
	sw_objset_free(set);
	/* a cycle of bases is checked once each; kustomize names the cycle */
	put("repo/c1/kustomization.yaml", "resources: [../c2]\n");
	put("repo/c2/kustomization.yaml", "resources: [../c1]\n");
	assert_int_equal(render(&set, root, "c1", NULL), SW_EINVALID);
	assert_contains(sw_error_last(), "kustomize c1: exit status 1: ");
	free(root);
	free(cm);
}

/* A chart is read by helm with its links followed: none may lead out. */
static void test_helm_stays_inside(void **state)
{
	put("outside/values.yaml", "k: from-outside\n");
	put("outside/tpl/cm.yaml", "kind: ConfigMap\n");
	put("repo/chart/Chart.yaml", "apiVersion: v2\nname: web\nversion: 0.1.0\n");
	put("repo/chart/templates/cm.yaml", "kind: ConfigMap\n");
	put_link("repo/chart/values.yaml", "outside/values.yaml");
	/* a fake helm that would print what it was given */
	put_exec("bin/helm", "#!/bin/sh\necho 'kind: from-outside'\n");
	path_with_bin();
	assert_refused("chart", "chart/values.yaml: symbolic link leads outside the checkout");
	{
		char *values = sw_asprintf("%s/repo/chart/values.yaml", tmp);
		remove(values);
		free(values);
	}
	put_link("repo/chart/templates/more", "outside/tpl");
	assert_refused("chart", "chart/templates/more: symbolic link leads outside the checkout");
	/* links inside, a loop among them, are fine */
	{
		char *more = sw_asprintf("%s/repo/chart/templates/more", tmp);
		char *root = sw_asprintf("%s/repo", tmp);
		struct sw_objset *set;
		remove(more);
		put_link("repo/chart/templates/loop", "repo/chart");
		put_exec("bin/helm", "#!/bin/sh\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: ok\\n'\n");
		if (render(&set, root, "chart", NULL) < 0)
			fail_msg("%s", sw_error_last());
		assert_int_equal(set->n, 1);
		sw_objset_free(set);
		free(more);
		free(root);
	}
}

/* --- apply order --------------------------------------------------------------- */

static json_t *obj(const char *av, const char *kind, const char *name, const char *wave)
{
	json_t *j = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", av, "kind", kind,
			      "metadata", "name", name);
	if (wave)
		json_object_set_new(json_object_get(j, "metadata"), "annotations",
				    json_pack("{s:s}", SW_SYNC_WAVE_ANNOTATION, wave));
	return j;
}

static void test_sort_for_apply(void **state)
{
	struct sw_objset *set = sw_objset_new();
	static const char *const in[][4] = {
		{ "networking.k8s.io/v1", "Ingress", "web", NULL },
		{ "apps/v1", "Deployment", "web", NULL },
		{ "batch/v1", "Job", "migrate", "-1" },
		{ "v1", "Service", "web", NULL },
		{ "serving.knative.dev/v1", "Service", "kn", NULL },
		{ "v1", "ConfigMap", "b", NULL },
		{ "v1", "ConfigMap", "a", NULL },
		{ "rbac.authorization.k8s.io/v1", "Role", "r", NULL },
		{ "v1", "ServiceAccount", "sa", NULL },
		{ "apiextensions.k8s.io/v1", "CustomResourceDefinition", "crd", NULL },
		{ "v1", "Namespace", "ns", NULL },
		{ "example.com/v1", "Widget", "w", "+3" },
		{ "v1", "Namespace", "late", "3" },
	};
	static const char *const want[][2] = {
		/* wave -1 */
		{ "Job", "0" },
		/* wave 0: phases */
		{ "Namespace", "1" }, { "CustomResourceDefinition", "1" },   /* by key: "/..." < "apiext..." */
		{ "ServiceAccount", "2" }, { "Role", "2" },
		{ "ConfigMap", "3" }, { "ConfigMap", "3" },
		{ "Service", "4" },
		{ "Deployment", "5" },
		{ "Ingress", "6" }, { "Service", "6" },
		/* wave 3 */
		{ "Namespace", "7" }, { "Widget", "8" },
	};
	size_t n = sizeof(in) / sizeof(in[0]), stages = 0;

	for (size_t i = 0; i < n; i++)
		assert_int_equal(sw_objset_add(set, obj(in[i][0], in[i][1], in[i][2], in[i][3]),
					       "t.yaml", (int)i + 1, 1, 0), 0);
	sw_objset_sort_for_apply(set);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(set->objs[i].kind, want[i][0]) || set->objs[i].stage != (size_t)atoi(want[i][1]))
			fail_msg("position %zu: %s stage %zu, want %s stage %s", i, set->objs[i].kind,
				 set->objs[i].stage, want[i][0], want[i][1]);
	}
	/* ties broken by key: "/ConfigMap//a" before "/ConfigMap//b" */
	assert_string_equal(set->objs[5].name, "a");
	assert_string_equal(set->objs[9].key, "networking.k8s.io/Ingress//web");
	assert_string_equal(set->objs[10].key, "serving.knative.dev/Service//kn");
	assert_int_equal(set->objs[0].wave, -1);
	assert_int_equal(set->objs[12].wave, 3);
	/* stage_end walks the groups */
	for (size_t i = 0, j; i < n; i = j, stages++) {
		j = sw_objset_stage_end(set, i);
		assert_true(j > i);
		for (size_t k = i; k < j; k++)
			assert_int_equal(set->objs[k].stage, stages);
	}
	assert_int_equal(stages, 9);
	assert_int_equal(sw_kind_phase("", "Secret"), SW_PHASE_CONFIG);
	assert_int_equal(sw_kind_phase("apps", "Service"), SW_PHASE_OTHER);
	sw_objset_free(set);

	/* an empty set sorts and walks fine */
	set = sw_objset_new();
	sw_objset_sort_for_apply(set);
	assert_int_equal(sw_objset_stage_end(set, 0), 0);
	sw_objset_free(set);
}

static json_t *annotated(const char *name, const char *k1, const char *v1, const char *k2,
			 const char *v2)
{
	json_t *ann = json_object();
	json_object_set_new(ann, k1, json_string(v1));
	if (k2)
		json_object_set_new(ann, k2, json_string(v2));
	return json_pack("{s:s, s:s, s:{s:s, s:o}}", "apiVersion", "v1", "kind", "ConfigMap",
			 "metadata", "name", name, "annotations", ann);
}

/* Argo CD's spelling of waves and its per-object options (docs/argocd.md). */
static void test_argocd_annotations(void **state)
{
	(void)state;
	struct sw_objset *set = sw_objset_new();
	assert_int_equal(sw_objset_add(set, annotated("a", "argocd.argoproj.io/sync-wave", "-2",
						      NULL, NULL), "t.yaml", 1, 1, 0), 0);
	assert_int_equal(set->objs[0].wave, -2);
	assert_int_equal(sw_objset_add(set, annotated("b", "argocd.argoproj.io/sync-wave", "3",
						      "slipway.dev/sync-wave", "3"), "t.yaml", 5, 1, 0), 0);
	assert_int_equal(set->objs[1].wave, 3);
	assert_int_equal(sw_objset_add(set, annotated("c", "argocd.argoproj.io/sync-wave", "3",
						      "slipway.dev/sync-wave", "4"), "t.yaml", 9, 1, 0),
			 SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "t.yaml:9:1: annotations slipway.dev/sync-wave and "
				"argocd.argoproj.io/sync-wave give different waves"));
	assert_int_equal(sw_objset_add(set, annotated("d", "argocd.argoproj.io/sync-wave", "one",
						      NULL, NULL), "t.yaml", 12, 1, 0), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "annotation argocd.argoproj.io/sync-wave must be an integer"));

	/* options: acted on, noted, refused */
	assert_int_equal(sw_objset_add(set, annotated("e", "argocd.argoproj.io/sync-options",
		"Prune=false, Validate=false,Force=true,Replace=true", "argocd.argoproj.io/compare-options",
		"IgnoreExtraneous"), "t.yaml", 14, 1, 0), 0);
	struct sw_obj *o = &set->objs[2];
	assert_int_equal(o->opts, SW_OPT_NO_PRUNE | SW_OPT_NO_VALIDATE | SW_OPT_FORCE | SW_OPT_REPLACE |
			 SW_OPT_IGNORE_EXTRANEOUS);
	assert_null(o->notes);
	assert_int_equal(sw_objset_add(set, annotated("f", "slipway.dev/sync-options",
		"Prune=confirm,CreateNamespace=true,ServerSideApply=false,Prunne=false", NULL, NULL),
		"t.yaml", 20, 1, 0), 0);
	o = &set->objs[3];
	assert_int_equal(o->opts, SW_OPT_NO_PRUNE);
	assert_non_null(strstr(o->notes, "Prune=confirm: slipway asks no one; kept as Prune=false"));
	assert_non_null(strstr(o->notes, "CreateNamespace is an Argo CD Application option"));
	assert_non_null(strstr(o->notes, "ServerSideApply=false: slipway always applies server-side"));
	assert_non_null(strstr(o->notes, "unknown option Prunne=false, ignored"));
	assert_int_equal(sw_objset_add(set, annotated("g", "argocd.argoproj.io/sync-options",
		"Prune=flase", NULL, NULL), "t.yaml", 30, 1, 0), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "t.yaml:30:1: annotation argocd.argoproj.io/sync-options: "
				"option Prune takes true|false|confirm, not \"flase\""));
	assert_int_equal(sw_objset_add(set, annotated("h", "argocd.argoproj.io/sync-options",
		"prune=false", NULL, NULL), "t.yaml", 33, 1, 0), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "option prune=false is spelt Prune"));
	assert_int_equal(set->n, 4);
	sw_objset_free(set);
}

static json_t *hook_obj(const char *name, const char *gen, const char *k1, const char *v1,
			const char *k2, const char *v2)
{
	json_t *o = annotated(name ? name : "x", k1, v1, k2, v2);
	json_t *md = json_object_get(o, "metadata");
	if (!name) {
		json_object_del(md, "name");
		json_object_set_new(md, "generateName", json_string(gen));
	}
	return o;
}

/* Argo CD's hooks and Helm's as Argo CD maps them. */
static void test_hooks(void **state)
{
	(void)state;
	struct sw_objset *set = sw_objset_new();
	struct sw_obj *hooks;
	size_t nhooks;

	assert_int_equal(sw_objset_add(set, hook_obj(NULL, "smoke-", "argocd.argoproj.io/hook",
		"PostSync", "argocd.argoproj.io/hook-delete-policy", "HookSucceeded,HookFailed"),
		"h.yaml", 1, 1, 0), 0);
	assert_int_equal(set->objs[0].hook, SW_HOOK_POSTSYNC);
	assert_int_equal(set->objs[0].hook_delete, SW_HOOK_DELETE_SUCCEEDED | SW_HOOK_DELETE_FAILED);
	assert_string_equal(set->objs[0].generate_name, "smoke-");
	assert_string_equal(set->objs[0].name, "");
	assert_int_equal(sw_objset_add(set, hook_obj("migrate", NULL, "helm.sh/hook",
		"pre-install,pre-upgrade", "helm.sh/hook-weight", "-5"), "h.yaml", 10, 1, 0), 0);
	assert_int_equal(set->objs[1].hook, SW_HOOK_PRESYNC);
	assert_int_equal(set->objs[1].hook_delete, SW_HOOK_DELETE_BEFORE);   /* the default */
	assert_int_equal(set->objs[1].wave, -5);
	assert_int_equal(sw_objset_add(set, hook_obj("test", NULL, "helm.sh/hook", "test", NULL,
						     NULL), "h.yaml", 20, 1, 0), 0);
	assert_int_equal(set->objs[2].hook, SW_HOOK_SKIP);
	assert_non_null(strstr(set->objs[2].notes, "helm.sh/hook test is not run"));
	assert_int_equal(sw_objset_add(set, hook_obj("crds", NULL, "helm.sh/hook", "crd-install",
						     NULL, NULL), "h.yaml", 25, 1, 0), 0);
	assert_int_equal(set->objs[3].hook, 0);                  /* an ordinary object */
	assert_int_equal(sw_objset_add(set, annotated("plain", "x", "y", NULL, NULL), "h.yaml", 30,
				       1, 0), 0);
	/* bad input: named, with its place */
	assert_int_equal(sw_objset_add(set, hook_obj(NULL, "gen-", "x", "y", NULL, NULL), "h.yaml",
				       40, 1, 0), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "h.yaml:40:1: metadata.generateName is for hooks only"));
	assert_int_equal(sw_objset_add(set, hook_obj("a", NULL, "argocd.argoproj.io/hook", "PreSynk",
						     NULL, NULL), "h.yaml", 50, 1, 0), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "h.yaml:50:1: annotation argocd.argoproj.io/hook: "
				"PreSynk is not PreSync, Sync, PostSync, SyncFail or Skip"));
	assert_int_equal(sw_objset_add(set, hook_obj("b", NULL, "argocd.argoproj.io/hook", "PreSync",
		"argocd.argoproj.io/hook-delete-policy", "OnSuccess"), "h.yaml", 60, 1, 0), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "OnSuccess is not HookSucceeded, HookFailed or BeforeHookCreation"));
	assert_int_equal(sw_objset_add(set, hook_obj(NULL, "s-", "argocd.argoproj.io/hook", "Skip",
						     NULL, NULL), "h.yaml", 70, 1, 0), SW_EINVALID);

	sw_objset_sort_for_apply(set);
	sw_objset_take_hooks(set, &hooks, &nhooks);
	assert_int_equal(nhooks, 2);
	assert_string_equal(hooks[0].name, "migrate");          /* wave -5 first */
	assert_string_equal(hooks[1].generate_name, "smoke-");
	assert_int_equal(set->n, 2);                             /* the Skip one is gone */
	assert_int_equal(set->objs[0].stage, 0);
	for (size_t i = 0; i < nhooks; i++)
		sw_obj_release(&hooks[i]);
	free(hooks);
	sw_objset_free(set);
}

static void test_json_pointer(void **state)
{
	(void)state;
	json_t *d = json_loads("{\"spec\":{\"replicas\":3,\"x\":[1,2,3]},\"metadata\":{\"annotations\":"
			       "{\"a/b\":\"1\",\"c~d\":\"2\"}}}", 0, NULL);
	sw_json_pointer_remove(d, "/spec/replicas");
	sw_json_pointer_remove(d, "/spec/x/1");
	sw_json_pointer_remove(d, "/metadata/annotations/a~1b");
	sw_json_pointer_remove(d, "/metadata/annotations/c~0d");
	sw_json_pointer_remove(d, "/no/such/thing");
	sw_json_pointer_remove(d, "/spec/x/9");
	char *t = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(t, "{\"metadata\":{\"annotations\":{}},\"spec\":{\"x\":[1,3]}}");
	free(t);
	json_decref(d);
	struct sw_objset *set = sw_objset_new();
	assert_int_equal(sw_objset_add(set, annotated("a", "slipway.dev/ignore-differences",
		" /data/k , /data/j", NULL, NULL), "i.yaml", 1, 1, 0), 0);
	assert_int_equal(json_array_size(set->objs[0].ignore), 2);
	assert_string_equal(json_string_value(json_array_get(set->objs[0].ignore, 1)), "/data/j");
	assert_int_equal(sw_objset_add(set, annotated("b", "slipway.dev/ignore-differences",
		"data.k", NULL, NULL), "i.yaml", 9, 1, 0), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "i.yaml:9:1: annotation slipway.dev/ignore-differences: "
				"'data.k' is not a JSON pointer"));
	sw_objset_free(set);
}

static void test_keys(void **state)
{
	struct sw_buf k = SW_BUF_INIT;
	sw_obj_key(&k, "apps/v1beta1", "Deployment", "", "x");
	assert_string_equal(k.ptr, "apps/Deployment//x");
	sw_buf_reset(&k);
	sw_obj_key(&k, "v1", "Pod", "ns", "p");
	assert_string_equal(k.ptr, "/Pod/ns/p");
	sw_buf_release(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_guestbook, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_huge_reals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_yaml, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secret_values_stay_out_of_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paths_and_links, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kustomize, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kustomize_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tool_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tool_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_helm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kustomize_stays_inside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_helm_stays_inside, setup, teardown),
		cmocka_unit_test(test_sort_for_apply),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_argocd_annotations),
		cmocka_unit_test(test_hooks),
		cmocka_unit_test(test_json_pointer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
