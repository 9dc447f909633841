/*
 * test_terraform.c - manifests/terraform against the real terraform binary
 * (the local runner), with root modules made of `terraform_data` resources
 * and a `terraform_remote_state` data source on the local backend, copied
 * from tests/fixtures/terraform into a temporary checkout per test.
 *
 * Without `terraform` in PATH the tests that need it are skipped, with a
 * note on stderr; the pure ones (show -json parsing, the comment section,
 * the affected-module scan) always run. Fixtures are found under $SRC (the
 * repository root; default: the current directory, where make runs tests).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "lib/proc.h"
#include "infra/infra.h"
#include "runners/runner.h"
#include "tests/unit/scratch.h"
#include "tests/unit/slow.h"

#define FIX "tests/fixtures/terraform"

struct env {
	struct event_base *base;
	struct sw_proc_mgr *procs;
	struct sw_runner *local;
	struct sw_tf *tf;
	int have_tf;
	char src[512];
	char data[128];      /* DATA_DIR */
	char repo[256];      /* the checkout */
};

static struct env E;

/* ---- helpers ---------------------------------------------------------- */

struct rec {
	int done;
	struct sw_tf_result *res;
	struct sw_buf log;
	int order;           /* completion order */
	int plan_mode;       /* mode of the plan file seen during show, or -1 */
	const char *plan_dir;
};

static int finish_counter;

static void rec_init(struct rec *r)
{
	memset(r, 0, sizeof(*r));
	r->log = (struct sw_buf)SW_BUF_INIT;
	r->plan_mode = -1;
}

static void rec_release(struct rec *r)
{
	sw_tf_result_free(r->res);
	sw_buf_release(&r->log);
	memset(r, 0, sizeof(*r));
}

/* While `terraform show` runs, the plan file exists: look at its mode. */
static void on_out(int stream, const char *p, size_t n, void *arg)
{
	struct rec *r = arg;
	sw_buf_add(&r->log, p, n);
	if (r->plan_dir && n >= 15 && !strncmp(p, "$ terraform show", 16 < n ? 16 : n)) {
		DIR *d = opendir(r->plan_dir);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char path[512];
			struct stat st;
			snprintf(path, sizeof(path), "%s/%s", r->plan_dir, de->d_name);
			if (stat(path, &st) == 0)
				r->plan_mode = (int)(st.st_mode & 0777);
		}
		if (d)
			closedir(d);
	}
}

static void on_done(struct sw_tf_result *res, void *arg)
{
	struct rec *r = arg;
	r->res = res;
	r->done = 1;
	r->order = ++finish_counter;
}

static void wait_for(struct rec *r)
{
	time_t until = time(NULL) + sw_test_s(120);
	while (!r->done && time(NULL) < until)
		event_base_loop(E.base, EVLOOP_ONCE);
	assert_true(r->done);
}

static const char *dev_vars[] = { "stage=dev", NULL };

static struct sw_cfg_infra infra_dev(int with_vars)
{
	struct sw_cfg_infra in;
	memset(&in, 0, sizeof(in));
	if (with_vars) {
		in.vars = (char **)dev_vars;
		in.nvars = 1;
	}
	in.timeout_s = sw_test_s(120);
	return in;
}

static void req_dev(struct sw_tf_req *q, const struct sw_cfg_infra *in, struct rec *r)
{
	*q = (struct sw_tf_req)SW_TF_REQ_INIT;
	q->env = "dev";
	q->checkout = E.repo;
	q->module = "infra/environment/dev";
	q->infra = in;
	q->on_output = on_out;
	q->arg = r;
}

enum { PLAN, APPLY, DRIFT };

/* Run one operation on dev and wait for it; the result is in r->res. */
static void run_op(struct sw_tf *tf, int kind, int with_vars, struct rec *r)
{
	struct sw_cfg_infra in = infra_dev(with_vars);
	struct sw_tf_req q;
	rec_init(r);
	req_dev(&q, &in, r);
	int rc = kind == PLAN ? sw_tf_plan(tf, &q, on_done, r, NULL) :
		 kind == APPLY ? sw_tf_apply(tf, &q, on_done, r, NULL) :
				 sw_tf_drift(tf, &q, on_done, r, NULL);
	assert_int_equal(rc, 0);
	wait_for(r);
	if (r->res->status != 0)
		fprintf(stderr, "  (op %d: %s)\n", kind, r->res->error);
}

static const struct sw_tf_change *find_change(const struct sw_tf_change *v, size_t n,
					      const char *addr)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].address, addr))
			return &v[i];
	return NULL;
}

static size_t count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n;
}

static char *read_all(const char *path)
{
	struct sw_buf b = SW_BUF_INIT;
	if (sw_buf_read_file(&b, path) < 0) {
		sw_buf_release(&b);
		return NULL;
	}
	return sw_buf_detach(&b, NULL);
}

static char *state_path(void)
{
	return sw_asprintf("%s/infra/environment/dev/terraform.tfstate", E.repo);
}

static char *plans_dir(void)
{
	return sw_asprintf("%s/terraform/plans", E.data);
}

/* ---- fixtures --------------------------------------------------------- */

static int group_setup(void **state)
{
	const char *src = getenv("SRC");
	snprintf(E.src, sizeof(E.src), "%s", src && *src ? src : ".");
	E.have_tf = system("command -v terraform >/dev/null 2>&1") == 0;
	if (!E.have_tf)
		fprintf(stderr, "NOTE test_terraform: `terraform` is not in PATH: the tests that run "
				"it are skipped (CI machines have it in /usr/local/bin)\n");
	E.base = event_base_new();
	if (sw_proc_mgr_new(&E.procs, E.base) < 0 || sw_runner_local_new(&E.local, E.procs) < 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	sw_runner_free(E.local);
	sw_proc_mgr_free(E.procs);
	event_base_free(E.base);
	return 0;
}

/* A fresh DATA_DIR and checkout (the fixture repo) per test, and an engine. */
static int setup(void **state)
{
	snprintf(E.data, sizeof(E.data), "/tmp/sw-tf-XXXXXX");
	if (!mkdtemp(E.data))
		return -1;
	snprintf(E.repo, sizeof(E.repo), "%s/checkout", E.data);
	if (sw_test_sh("cp -r '%s/" FIX "/repo' '%s'", E.src, E.repo) != 0)
		return -1;
	struct sw_tf_opts o = SW_TF_OPTS_INIT;
	o.base = E.base;
	o.runner = E.local;
	o.data_dir = E.data;
	o.lock_timeout_s = 2;
	return sw_tf_new(&E.tf, &o) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	assert_int_equal(sw_tf_pending(E.tf), 0);
	sw_tf_free(E.tf);
	E.tf = NULL;
	sw_test_sh("rm -rf '%s'", E.data);
	return 0;
}

#define NEED_TF() do { if (!E.have_tf) skip(); } while (0)

static void extra(const char *name)
{
	assert_int_equal(sw_test_sh("cp '%s/" FIX "/extra/%s' '%s/infra/environment/dev/'", E.src, name,
			    E.repo), 0);
}

static void unextra(const char *name)
{
	assert_int_equal(sw_test_sh("rm -f '%s/infra/environment/dev/%s'", E.repo, name), 0);
}

/* ---- tests with terraform -------------------------------------------- */

/* Apply the base module: state written, outputs returned; plan dir stays empty. */
static void test_apply_records_outputs(void **state)
{
	struct rec r;
	NEED_TF();
	char *pd = plans_dir();
	struct stat st;
	assert_int_equal(stat(pd, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);

	run_op(E.tf, APPLY, 1, &r);
	assert_int_equal(r.res->status, 0);
	assert_string_equal(r.res->error, "");
	assert_int_equal(r.res->applied, 1);
	assert_int_equal(r.res->plan_exit, 2);
	assert_int_equal(r.res->nadd, 2);   /* terraform_data.app + module.shared.terraform_data.shared */
	assert_non_null(find_change(r.res->changes, r.res->nchanges, "terraform_data.app"));
	assert_non_null(find_change(r.res->changes, r.res->nchanges,
				    "module.shared.terraform_data.shared"));
	assert_non_null(r.res->outputs_json);
	assert_non_null(strstr(r.res->outputs_json, "\"upstream_version\""));
	assert_non_null(strstr(r.res->outputs_json, "\"app\""));
	assert_non_null(strstr(r.res->plan_text, "Plan: 2 to add"));
	assert_non_null(strstr(r.log.ptr, "Apply complete"));
	char *sp = state_path();
	char *s = read_all(sp);
	assert_non_null(s);
	assert_non_null(strstr(s, "\"terraform_data\""));
	free(s);
	free(sp);
	assert_int_equal(count_files(pd), 0);
	rec_release(&r);

	/* Nothing to do the second time: no apply, outputs still read. */
	run_op(E.tf, APPLY, 1, &r);
	assert_int_equal(r.res->status, 0);
	assert_int_equal(r.res->plan_exit, 0);
	assert_int_equal(r.res->applied, 0);
	assert_non_null(r.res->outputs_json);
	rec_release(&r);
	free(pd);
}

/* A sensitive output: terraform shows its value in clear; what slipway keeps does not. */
static void test_apply_sensitive_output(void **state)
{
	struct rec r;
	char *kept = NULL;
	NEED_TF();
	extra("secret.tf");
	run_op(E.tf, APPLY, 1, &r);
	assert_int_equal(r.res->status, 0);
	assert_non_null(strstr(r.res->outputs_json, "hunter2-in-clear"));
	assert_int_equal(sw_tf_outputs_redact(&kept, r.res->outputs_json,
					      strlen(r.res->outputs_json)), 0);
	assert_null(strstr(kept, "hunter2"));
	assert_non_null(strstr(kept, "\"db_password\":\"(sensitive)\""));
	assert_non_null(strstr(kept, "\"upstream_version\":\"1\""));
	assert_null(strstr(r.log.ptr, "hunter2"));   /* output -json is not streamed */
	free(kept);
	rec_release(&r);
}

/* A PR adding a resource: one to add, with its address, in the comment. */
static void test_plan_add(void **state)
{
	struct rec r;
	NEED_TF();
	run_op(E.tf, APPLY, 1, &r);
	assert_int_equal(r.res->status, 0);
	rec_release(&r);

	extra("add.tf");
	char *pd = plans_dir();
	struct sw_cfg_infra in = infra_dev(1);
	struct sw_tf_req q;
	rec_init(&r);
	r.plan_dir = pd;
	req_dev(&q, &in, &r);
	assert_int_equal(sw_tf_plan(E.tf, &q, on_done, &r, NULL), 0);
	wait_for(&r);
	assert_int_equal(r.res->status, 0);
	assert_int_equal(r.res->fmt_ok, 1);
	assert_int_equal(r.res->plan_exit, 2);
	assert_int_equal(r.res->nadd, 1);
	assert_int_equal(r.res->nchange, 0);
	assert_int_equal(r.res->ndestroy, 0);
	assert_int_equal(r.res->ndestructive, 0);
	assert_int_equal(r.res->nchanges, 1);
	assert_string_equal(r.res->changes[0].address, "terraform_data.extra");
	assert_string_equal(r.res->changes[0].actions, "create");
	assert_int_equal(r.plan_mode, 0600);          /* while it existed */
	assert_int_equal(count_files(pd), 0);         /* and gone after */
	assert_non_null(strstr(r.log.ptr, "$ terraform init"));
	assert_non_null(strstr(r.log.ptr, "$ terraform fmt"));
	assert_non_null(strstr(r.log.ptr, "Plan: 1 to add, 0 to change, 0 to destroy"));

	char *md = sw_tf_report_markdown(r.res, "dev", 65536);
	assert_non_null(strstr(md, "`terraform_data.extra`"));
	assert_non_null(strstr(md, "**1** to add"));
	assert_non_null(strstr(md, "<details>"));
	assert_null(strstr(md, "destructive"));
	assert_null(strstr(md, E.data));   /* no plan file path in the comment */
	free(md);
	/* a PR plan applies nothing */
	char *sp = state_path();
	char *s = read_all(sp);
	assert_null(strstr(s, "extra"));
	free(s);
	free(sp);
	free(pd);
	rec_release(&r);
}

/* Removing a resource: destroy called out at the top of the comment. */
static void test_plan_destroy(void **state)
{
	struct rec r;
	NEED_TF();
	extra("add.tf");
	run_op(E.tf, APPLY, 1, &r);
	assert_int_equal(r.res->status, 0);
	rec_release(&r);
	unextra("add.tf");
	/* and replace another: the shared module's input changes through triggers */
	assert_int_equal(sw_test_sh("sed -i 's/input = var.name/input = var.name\\n  triggers_replace = [\"v2\"]/' "
			    "'%s/infra/modules/shared/main.tf' && cd '%s' && terraform fmt -recursive >/dev/null",
			    E.repo, E.repo), 0);

	run_op(E.tf, PLAN, 1, &r);
	assert_int_equal(r.res->status, 0);
	assert_int_equal(r.res->ndestroy, 2);
	assert_int_equal(r.res->nadd, 1);
	assert_int_equal(r.res->ndestructive, 2);
	const struct sw_tf_change *c = find_change(r.res->changes, r.res->nchanges,
						   "terraform_data.extra");
	assert_non_null(c);
	assert_string_equal(c->actions, "delete");
	assert_true(c->destructive);
	c = find_change(r.res->changes, r.res->nchanges, "module.shared.terraform_data.shared");
	assert_non_null(c);
	assert_string_equal(c->actions, "delete,create");
	char *md = sw_tf_report_markdown(r.res, "dev", 65536);
	char *warn = strstr(md, "2 destructive changes");
	assert_non_null(warn);
	char *table = strstr(warn + 1, "| Action | Resource |\n| --- | --- |\n| create");
	(void)table;
	/* destructive list comes before the full table and the plan text */
	assert_true(warn < strstr(md, "<details>"));
	assert_non_null(strstr(md, "**destroy** | `terraform_data.extra`"));
	free(md);
	rec_release(&r);
}

/* Change an upstream output out of band: drift found, healed by apply. */
static void test_drift_and_heal(void **state)
{
	struct rec r;
	NEED_TF();
	run_op(E.tf, APPLY, 1, &r);
	assert_int_equal(r.res->status, 0);
	rec_release(&r);

	run_op(E.tf, DRIFT, 1, &r);
	assert_int_equal(r.res->status, 0);
	assert_int_equal(r.res->drifted, 0);
	assert_int_equal(r.res->nchanges, 0);
	rec_release(&r);

	assert_int_equal(sw_test_sh("sed -i 's/\"value\": \"1\"/\"value\": \"2\"/; s/\"serial\": 1/\"serial\": 2/' "
			    "'%s/infra/upstream/terraform.tfstate'", E.repo), 0);
	run_op(E.tf, DRIFT, 1, &r);
	assert_int_equal(r.res->status, 0);
	assert_int_equal(r.res->drifted, 1);
	/* terraform_data's read returns its state as it is, so the refresh
	 * sees no resource drift; the remote state's change shows in the
	 * root outputs and in the normal plan. */
	assert_int_equal(r.res->ndrift, 0);
	assert_int_equal(r.res->noutput_drift, 1);
	assert_string_equal(r.res->output_drift[0].address, "upstream_version");
	assert_int_equal(r.res->nchange, 1);
	assert_string_equal(r.res->changes[0].address, "terraform_data.app");
	char *md = sw_tf_report_markdown(r.res, "dev", 65536);
	assert_non_null(strstr(md, "Changed outside Terraform"));
	assert_non_null(strstr(md, "`upstream_version`"));
	free(md);
	rec_release(&r);

	/* heal: the caller applies */
	run_op(E.tf, APPLY, 1, &r);
	assert_int_equal(r.res->status, 0);
	assert_int_equal(r.res->applied, 1);
	assert_non_null(strstr(r.res->outputs_json, "\"2\""));
	rec_release(&r);
	run_op(E.tf, DRIFT, 1, &r);
	assert_int_equal(r.res->status, 0);
	assert_int_equal(r.res->drifted, 0);
	assert_int_equal(r.res->nchanges, 0);
	char *pd = plans_dir();
	assert_int_equal(count_files(pd), 0);
	free(pd);
	rec_release(&r);
}

/* A module that does not validate, then one that does not parse: terraform's
 * message with what slipway was doing, nothing applied, the next run works. */
static void test_broken_module(void **state)
{
	struct rec r;
	NEED_TF();
	extra("broken.tf");
	run_op(E.tf, APPLY, 1, &r);
	assert_true(r.res->status < 0);
	assert_int_equal(r.res->applied, 0);
	assert_string_equal(r.res->phase, "validate");
	assert_non_null(strstr(r.res->error, "terraform validate in infra/environment/dev: "));
	assert_non_null(strstr(r.res->error, "Reference to undeclared resource"));
	assert_null(r.res->outputs_json);
	char *md = sw_tf_report_markdown(r.res, "dev", 4096);
	assert_non_null(strstr(md, "Failed"));
	assert_non_null(strstr(md, "Reference to undeclared resource"));
	assert_non_null(strstr(md, "Nothing was applied"));
	free(md);
	rec_release(&r);
	char *sp = state_path();
	assert_int_equal(access(sp, F_OK), -1);   /* nothing was applied */

	unextra("broken.tf");
	extra("syntax.tf");
	run_op(E.tf, PLAN, 1, &r);
	assert_true(r.res->status < 0);
	assert_non_null(strstr(r.res->error, "terraform init in infra/environment/dev: "));
	assert_non_null(strstr(r.res->error, "Unclosed configuration block"));
	rec_release(&r);

	unextra("syntax.tf");
	run_op(E.tf, APPLY, 1, &r);
	assert_int_equal(r.res->status, 0);
	assert_int_equal(r.res->applied, 1);
	assert_int_equal(access(sp, F_OK), 0);
	rec_release(&r);
	free(sp);
}

/* A missing variable fails the plan; a var_file supplies it. */
static void test_missing_variable(void **state)
{
	struct rec r;
	NEED_TF();
	run_op(E.tf, PLAN, 0, &r);
	assert_true(r.res->status < 0);
	assert_string_equal(r.res->phase, "plan");
	assert_non_null(strstr(r.res->error, "terraform plan in infra/environment/dev: "));
	assert_non_null(strstr(r.res->error, "No value for required variable"));
	assert_int_equal(r.res->plan_exit, -1);
	rec_release(&r);

	assert_int_equal(sw_test_sh("cp '%s/" FIX "/extra/dev.tfvars' '%s/infra/'", E.src, E.repo), 0);
	struct sw_cfg_infra in = infra_dev(0);
	in.var_file = (char *)"infra/dev.tfvars";
	struct sw_tf_req q;
	rec_init(&r);
	req_dev(&q, &in, &r);
	assert_int_equal(sw_tf_apply(E.tf, &q, on_done, &r, NULL), 0);
	wait_for(&r);
	assert_int_equal(r.res->status, 0);
	char *sp = state_path();
	char *s = read_all(sp);
	assert_non_null(strstr(s, "dev-from-file"));
	free(s);
	free(sp);
	rec_release(&r);
}

/* The state lock held by another process: terraform's lock error within the
 * lock timeout, then the next run works. */
static void test_state_lock_held(void **state)
{
	struct rec r;
	NEED_TF();
	run_op(E.tf, APPLY, 1, &r);
	assert_int_equal(r.res->status, 0);
	rec_release(&r);

	/* The local backend locks the state file with fcntl(F_SETLK); so do we
	 * (a lock of this process, which terraform's processes conflict with). */
	char *sp = state_path();
	int fd = open(sp, O_RDWR);
	assert_true(fd >= 0);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	assert_int_equal(fcntl(fd, F_SETLK, &fl), 0);
	extra("add.tf");
	run_op(E.tf, APPLY, 1, &r);
	assert_true(r.res->status < 0);
	assert_int_equal(r.res->applied, 0);
	assert_non_null(strstr(r.res->error, "terraform plan in infra/environment/dev: "));
	assert_non_null(strstr(r.res->error, "Error acquiring the state lock"));
	/* -lock-timeout=2s, plus init and validate */
	assert_true(r.res->finished_ms - r.res->started_ms < sw_test_ms(60000));
	rec_release(&r);
	close(fd);

	run_op(E.tf, APPLY, 1, &r);
	assert_int_equal(r.res->status, 0);
	assert_int_equal(r.res->nadd, 1);
	rec_release(&r);
	free(sp);
}

/* terraform not installed: the message says so; the next operation works. */
static void test_not_installed(void **state)
{
	struct rec r;
	struct sw_tf *tf;
	struct sw_tf_opts o = SW_TF_OPTS_INIT;
	NEED_TF();
	o.base = E.base;
	o.runner = E.local;
	o.data_dir = E.data;
	o.terraform = "/nonexistent/terraform";
	assert_int_equal(sw_tf_new(&tf, &o), 0);
	run_op(tf, PLAN, 1, &r);
	assert_true(r.res->status < 0);
	assert_non_null(strstr(r.res->error, "terraform init in infra/environment/dev: "));
	assert_non_null(strstr(r.res->error, "installed"));
	rec_release(&r);
	sw_tf_free(tf);
	run_op(E.tf, PLAN, 1, &r);
	assert_int_equal(r.res->status, 0);
	rec_release(&r);
}

/* Not formatted: the plan still runs, the result fails naming the file. */
static void test_fmt_fails(void **state)
{
	struct rec r;
	NEED_TF();
	extra("ugly.tf");
	run_op(E.tf, PLAN, 1, &r);
	assert_int_equal(r.res->status, SW_EINVALID);
	assert_int_equal(r.res->fmt_ok, 0);
	assert_non_null(strstr(r.res->fmt_files, "ugly.tf"));
	assert_non_null(strstr(r.res->error, "terraform fmt in infra/environment/dev"));
	assert_int_equal(r.res->plan_exit, 2);
	assert_non_null(find_change(r.res->changes, r.res->nchanges, "terraform_data.ugly"));
	char *md = sw_tf_report_markdown(r.res, "dev", 65536);
	assert_non_null(strstr(md, "Not formatted"));
	free(md);
	rec_release(&r);
}

/* Two operations at once on one module run one after the other; a waiting
 * apply goes ahead of plans queued before it. */
static void test_serialised_apply_first(void **state)
{
	struct rec a, b, c, d;
	struct sw_cfg_infra in = infra_dev(1);
	struct sw_tf_req q;
	NEED_TF();

	rec_init(&a);
	rec_init(&b);
	rec_init(&c);
	rec_init(&d);
	finish_counter = 0;
	req_dev(&q, &in, &a);
	assert_int_equal(sw_tf_plan(E.tf, &q, on_done, &a, NULL), 0);
	while (!a.log.len)    /* a is running */
		event_base_loop(E.base, EVLOOP_ONCE);
	req_dev(&q, &in, &b);
	assert_int_equal(sw_tf_plan(E.tf, &q, on_done, &b, NULL), 0);
	req_dev(&q, &in, &c);
	assert_int_equal(sw_tf_apply(E.tf, &q, on_done, &c, NULL), 0);
	/* one queued and then cancelled reports at once */
	struct sw_tf_op *op;
	req_dev(&q, &in, &d);
	assert_int_equal(sw_tf_drift(E.tf, &q, on_done, &d, &op), 0);
	assert_int_equal(sw_tf_pending(E.tf), 4);
	sw_tf_cancel(op);
	assert_true(d.done);
	assert_int_equal(d.res->status, SW_ECANCELLED);

	wait_for(&a);
	wait_for(&b);
	wait_for(&c);
	assert_int_equal(a.res->status, 0);
	assert_int_equal(b.res->status, 0);
	assert_int_equal(c.res->status, 0);
	/* a first (it was running), then the apply, then b */
	assert_int_equal(a.order, 2);
	assert_int_equal(c.order, 3);
	assert_int_equal(b.order, 4);
	assert_true(c.res->started_ms >= a.res->finished_ms);
	assert_true(b.res->started_ms >= c.res->finished_ms);
	/* b planned after the apply: nothing left to do */
	assert_int_equal(b.res->plan_exit, 0);
	rec_release(&a);
	rec_release(&b);
	rec_release(&c);
	rec_release(&d);
}

/* Cancelling a running operation kills terraform; nothing is left behind. */
static void test_cancel_running(void **state)
{
	struct rec r;
	struct sw_cfg_infra in = infra_dev(1);
	struct sw_tf_req q;
	struct sw_tf_op *op;
	NEED_TF();
	rec_init(&r);
	req_dev(&q, &in, &r);
	assert_int_equal(sw_tf_apply(E.tf, &q, on_done, &r, &op), 0);
	while (!strstr(r.log.ptr ? r.log.ptr : "", "$ terraform validate") && !r.done)
		event_base_loop(E.base, EVLOOP_ONCE);
	sw_tf_cancel(op);
	wait_for(&r);
	assert_int_equal(r.res->status, SW_ECANCELLED);
	assert_int_equal(r.res->applied, 0);
	rec_release(&r);
	char *pd = plans_dir();
	assert_int_equal(count_files(pd), 0);
	free(pd);
}

/* ---- pure tests ------------------------------------------------------- */

static void test_affected(void **state)
{
	char *mods[] = { "infra/environment/dev", "infra/environment/prod/" };
	struct sw_cfg_infra in;
	unsigned char hit[2];
	memset(&in, 0, sizeof(in));
	in.modules = mods;
	in.nmodules = 2;
	in.var_file = (char *)"infra/dev.tfvars";

	char **deps;
	assert_int_equal(sw_tf_module_deps(&deps, E.repo, "infra/environment/prod"), 0);
	assert_string_equal(deps[0], "infra/environment/prod");
	assert_string_equal(deps[1], "infra/modules/net");
	assert_string_equal(deps[2], "infra/modules/shared");   /* through net */
	assert_null(deps[3]);
	for (char **p = deps; *p; p++)
		free(*p);
	free(deps);

	const char *c1[] = { "infra/modules/shared/main.tf" };
	assert_int_equal(sw_tf_affected(hit, E.repo, &in, c1, 1), 2);
	assert_true(hit[0] && hit[1]);
	const char *c2[] = { "README.md", "infra/modules/net/main.tf" };
	assert_int_equal(sw_tf_affected(hit, E.repo, &in, c2, 2), 1);
	assert_true(!hit[0] && hit[1]);
	const char *c3[] = { "infra/environment/dev/main.tf", "apps/x.yaml" };
	assert_int_equal(sw_tf_affected(hit, E.repo, &in, c3, 2), 1);
	assert_true(hit[0] && !hit[1]);
	const char *c4[] = { "infra/environment/development/x.tf", "infra/modules/sharedx/a.tf",
			     "docs/infra.md" };
	assert_int_equal(sw_tf_affected(hit, E.repo, &in, c4, 3), 0);
	const char *c5[] = { "infra/dev.tfvars" };
	assert_int_equal(sw_tf_affected(hit, E.repo, &in, c5, 1), 2);
}

static char *fixture(const char *name)
{
	char path[700];
	snprintf(path, sizeof(path), "%s/" FIX "/%s", E.src, name);
	char *s = read_all(path);
	assert_non_null(s);
	return s;
}

/* Free what parsing put into a result on the stack. */
static void free_stack_res(struct sw_tf_result *res)
{
	struct sw_tf_result *h = sw_malloc(sizeof(*h));
	*h = *res;
	sw_tf_result_free(h);
}

static void test_parse_plan(void **state)
{
	struct sw_tf_result res;
	memset(&res, 0, sizeof(res));
	char *j = fixture("show-plan.json");
	assert_int_equal(sw_tf_parse_show(&res, j, strlen(j), 0), 0);
	/* read and no-op are left out; a replacement is one add and one destroy;
	 * forget is an unknown action, counted as a change */
	assert_int_equal(res.nchanges, 5);
	assert_int_equal(res.nadd, 2);
	assert_int_equal(res.nchange, 2);
	assert_int_equal(res.ndestroy, 2);
	assert_int_equal(res.ndestructive, 2);
	assert_string_equal(res.changes[2].actions, "delete,create");
	assert_int_equal(sw_tf_parse_show(&res, "{\"x\":1}", 7, 0), SW_EINVALID);
	assert_int_equal(sw_tf_parse_show(&res, "not json", 8, 0), SW_EINVALID);

	/* the comment: cleaned cells and code, destructive first, within budget */
	res.env = (char *)"prod";
	res.module = (char *)"infra/environment/prod";
	res.plan_exit = 2;
	res.fmt_ok = -1;
	struct sw_buf t = SW_BUF_INIT;
	for (int i = 0; i < 20000; i++)
		sw_buf_addf(&t, "  # line %d with ``` and \x1b[31mred\x1b[0m and \xff\n", i);
	res.plan_text = t.ptr;
	res.error = (char *)"";
	char *md = sw_tf_report_markdown(&res, NULL, 8192);
	assert_true(strlen(md) < 8192);
	assert_non_null(strstr(md, "`prod`"));
	assert_non_null(strstr(md, "2 destructive changes"));
	assert_non_null(strstr(md, "main[\"a\\|b\"]"));          /* | escaped in a cell */
	assert_non_null(strstr(md, "terraform_data.\xcb\x8bgone\xcb\x8b")); /* no stray backticks */
	assert_true(strstr(md, "destructive") < strstr(md, "<details>"));
	assert_null(strstr(md, "\x1b"));
	assert_non_null(strstr(md, "(cut)"));
	assert_non_null(strstr(md, "</details>"));
	/* one fence opens the plan text and one closes it: no ``` inside */
	char *open = strstr(md, "```text");
	assert_non_null(open);
	char *close = strstr(open + 7, "```");
	assert_non_null(close);
	assert_non_null(strstr(close, "</details>"));
	assert_null(strstr(close + 3, "```"));
	free(md);
	/* a tiny budget still gives a valid, bounded section */
	md = sw_tf_report_markdown(&res, "prod", 300);
	assert_true(strlen(md) < 300);
	free(md);
	res.env = res.module = res.plan_text = res.error = NULL;
	sw_buf_release(&t);
	free_stack_res(&res);
	free(j);
}

static void test_outputs_redact(void **state)
{
	char *out = NULL;
	const char *in = "{\"b\":{\"sensitive\":false,\"type\":[\"object\",{}],\"value\":{\"x\":[1,2]}},"
			 "\"a\":{\"sensitive\":true,\"type\":\"string\",\"value\":\"s3cret\"},"
			 "\"c\":{\"type\":\"string\",\"value\":\"unmarked\"},"
			 "\"d\":{\"sensitive\":false,\"type\":\"string\"}}";
	assert_int_equal(sw_tf_outputs_redact(&out, in, strlen(in)), 0);
	/* sorted; sensitive and unmarked values replaced; no value is null */
	assert_string_equal(out, "{\"a\":\"(sensitive)\",\"b\":{\"x\":[1,2]},"
				 "\"c\":\"(sensitive)\",\"d\":null}");
	free(out);
	assert_int_equal(sw_tf_outputs_redact(&out, "{}", 2), 0);
	assert_string_equal(out, "{}");
	free(out);
	assert_int_equal(sw_tf_outputs_redact(&out, "[1]", 3), SW_EINVALID);
	assert_null(out);
	assert_int_equal(sw_tf_outputs_redact(&out, "{\"a\":", 5), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "terraform output -json"));
}

static void test_parse_drift(void **state)
{
	struct sw_tf_result res;
	memset(&res, 0, sizeof(res));
	char *j = fixture("show-drift.json");
	assert_int_equal(sw_tf_parse_show(&res, j, strlen(j), 1), 0);
	assert_int_equal(res.drifted, 1);
	/* the update with equal before/after is noise and dropped */
	assert_int_equal(res.ndrift, 2);
	assert_string_equal(res.drift[0].address, "aws_instance.web");
	assert_string_equal(res.drift[0].attrs[0], "instance_type");
	assert_string_equal(res.drift[0].attrs[1], "tags");
	assert_null(res.drift[0].attrs[2]);
	assert_string_equal(res.drift[1].address, "aws_s3_bucket.logs");
	assert_true(res.drift[1].destructive);
	assert_int_equal(res.noutput_drift, 1);
	assert_string_equal(res.output_drift[0].address, "size");
	res.kind = SW_TF_DRIFT;
	res.plan_exit = -1;
	char *md = sw_tf_report_markdown(&res, "prod", 65536);
	assert_non_null(strstr(md, "`instance_type`, `tags`"));
	free(md);
	free(j);
	free_stack_res(&res);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_parse_plan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_drift, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outputs_redact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_affected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_records_outputs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apply_sensitive_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plan_add, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plan_destroy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drift_and_heal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broken_module, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_variable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_lock_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_installed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fmt_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_serialised_apply_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_running, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
