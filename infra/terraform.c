/*
 * terraform.c - Terraform operations (PR plan, merge apply, drift check) as
 * chains of runner steps on the event loop, one at a time per root module,
 * applies first; plus the PR comment section and the "which modules does
 * this change touch" scan.
 *
 * Each operation is a small state machine: a list of phases, each one
 * `terraform <command>` run as a runner step (`cd MODULE` then the command,
 * under `sh -e`), whose result decides the next phase. Output is streamed
 * to the caller except for the JSON commands, whose stdout is kept here.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/strv.h"
#include "lib/utf8.h"
#include "infra/infra-int.h"
#include "runners/runner.h"

void sw_tf_changes_free(struct sw_tf_change *v, size_t n);

#define PLAN_TEXT_MAX (1024 * 1024)          /* plan output kept for the comment */
#define JSON_MAX ((size_t)256 * 1024 * 1024) /* show -json / output -json */
#define ERR_TAIL_MAX (16 * 1024)             /* stderr kept for the message */
#define DEFAULT_TIMEOUT_S (30 * 60)

enum phase {
	PH_INIT, PH_VALIDATE, PH_FMT, PH_PLAN, PH_SHOW, PH_APPLY, PH_OUTPUT,
	PH_REFRESH, PH_REFRESH_SHOW, PH_END
};

static const char *const phase_name[] = {
	[PH_INIT] = "init", [PH_VALIDATE] = "validate", [PH_FMT] = "fmt", [PH_PLAN] = "plan",
	[PH_SHOW] = "show", [PH_APPLY] = "apply", [PH_OUTPUT] = "output",
	[PH_REFRESH] = "plan -refresh-only", [PH_REFRESH_SHOW] = "show", [PH_END] = "",
};

/* The phases of each kind, in order. */
static const enum phase plan_phases[] = { PH_INIT, PH_VALIDATE, PH_FMT, PH_PLAN, PH_SHOW, PH_END };
static const enum phase apply_phases[] = { PH_INIT, PH_VALIDATE, PH_PLAN, PH_SHOW, PH_APPLY,
					   PH_OUTPUT, PH_END };
static const enum phase drift_phases[] = { PH_INIT, PH_REFRESH, PH_REFRESH_SHOW, PH_PLAN, PH_SHOW,
					   PH_END };

struct tf_lock {
	char *key;                  /* env "\n" module */
	struct sw_tf_op *running;
	struct sw_tf_op *queue;     /* FIFO; applies are taken first */
	struct event *kick;         /* starts the next operation outside callers' frames */
	struct sw_tf *tf;
	struct tf_lock *next;
};

struct sw_tf {
	struct event_base *base;
	struct sw_runner *runner;
	char *data_dir, *terraform, *image, *plans_dir, *cache_dir;
	char *cli_config;           /* "TF_CLI_CONFIG_FILE=..." or NULL */
	int docker;
	/* docker: the plans and plugin-cache directories and opts.mounts,
	 * each bound at its own path; the user the daemon runs as */
	char **binds;
	char user[48];
	int lock_timeout_s;
	struct tf_lock *locks;
	size_t pending;
	unsigned long seq;
};

struct sw_tf_op {
	struct sw_tf *tf;
	struct tf_lock *lk;
	struct sw_tf_op *qnext;
	unsigned long id;
	enum sw_tf_kind kind;
	char *env, *checkout, *module, *var_file, *label;
	char **vars, **env_vars;
	long timeout_ms;
	sw_tf_output_fn on_output;
	void *oarg;
	sw_tf_done_fn done;
	void *darg;

	const enum phase *phases;
	size_t at;                  /* index into phases */
	struct sw_runner_step *step;
	int cancelled;
	int orphan;                 /* sw_tf_free() ran while the step was running */
	int quiet_stdout;           /* JSON commands: keep stdout, do not stream it */
	struct sw_buf out, err;
	char *plan_host;            /* current plan file, or NULL */
	struct sw_tf_result *res;
};

/* ---- small helpers ---------------------------------------------------- */

/* Shell single-quoting: 'it'\''s'. */
static void add_quoted(struct sw_buf *b, const char *s)
{
	sw_buf_addch(b, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			sw_buf_adds(b, "'\\''");
		else
			sw_buf_addch(b, *s);
	}
	sw_buf_addch(b, '\'');
}

static int mkdir_mode(const char *path, mode_t mode)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return sw_error_errno("mkdir %s", path);
	if (chmod(path, mode) < 0)
		return sw_error_errno("chmod %s", path);
	return 0;
}

/* "infra/environment/dev/" -> "infra/environment/dev"; "./x" -> "x". */
static char *norm_module(const char *m)
{
	while (m[0] == '.' && m[1] == '/')
		m += 2;
	char *r = sw_strdup(m);
	size_t n = strlen(r);
	while (n > 1 && r[n - 1] == '/')
		r[--n] = 0;
	return r;
}

/* ---- set-up ----------------------------------------------------------- */

static void remove_leftover_plans(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char *p = sw_asprintf("%s/%s", dir, de->d_name);
		if (unlink(p) == 0)
			log_warn("tf.plan_leftover", "removed=%s", sw_q(p));
		free(p);
	}
	closedir(d);
}

int sw_tf_new(struct sw_tf **out, const struct sw_tf_opts *o)
{
	struct sw_tf *tf;
	char *top;
	int rc;

	*out = NULL;
	if (!o || !o->base || !o->runner || !o->data_dir || !*o->data_dir)
		return sw_error_setc(SW_EINVALID, "terraform: base, runner and data_dir are required");
	int docker = !strcmp(sw_runner_kind(o->runner), "docker");
	if (docker && (!o->image || !*o->image))
		return sw_error_setc(SW_EINVALID, "terraform: the docker runner needs an image with terraform");
	top = sw_asprintf("%s/terraform", o->data_dir);
	tf = sw_calloc(1, sizeof(*tf));
	tf->base = o->base;
	tf->runner = o->runner;
	tf->docker = docker;
	tf->data_dir = sw_strdup(o->data_dir);
	tf->terraform = sw_strdup(o->terraform && *o->terraform ? o->terraform : "terraform");
	tf->image = o->image ? sw_strdup(o->image) : NULL;
	tf->cli_config = o->cli_config ? sw_asprintf("TF_CLI_CONFIG_FILE=%s", o->cli_config) : NULL;
	tf->lock_timeout_s = o->lock_timeout_s > 0 ? o->lock_timeout_s : 60;
	tf->plans_dir = sw_asprintf("%s/plans", top);
	tf->cache_dir = sw_asprintf("%s/plugin-cache", top);
	if ((rc = mkdir_mode(top, 0700)) < 0 || (rc = mkdir_mode(tf->plans_dir, 0700)) < 0 ||
	    (rc = mkdir_mode(tf->cache_dir, 0700)) < 0) {
		sw_error_prefix("terraform");
		free(top);
		sw_tf_free(tf);
		return rc;
	}
	free(top);
	if (docker) {
		/* Every path is the same inside the container as on the host
		 * (the checkout is mounted at its own path too), so plan files,
		 * -var-file and the plugin cache need no translation; and the
		 * container runs as our user, so what terraform writes (plan
		 * files 0600 under umask 077, .terraform/) stays ours. */
		size_t n = 0;
		while (o->mounts && o->mounts[n])
			n++;
		tf->binds = sw_calloc(n + 3, sizeof(char *));
		tf->binds[0] = sw_asprintf("%s:%s", tf->plans_dir, tf->plans_dir);
		tf->binds[1] = sw_asprintf("%s:%s", tf->cache_dir, tf->cache_dir);
		for (size_t i = 0; i < n; i++) {
			if (o->mounts[i][0] != '/' || strchr(o->mounts[i], ':')) {
				rc = sw_error_setc(SW_EINVALID, "terraform: mount %s is not an "
						   "absolute path without ':'", o->mounts[i]);
				sw_tf_free(tf);
				return rc;
			}
			tf->binds[2 + i] = sw_asprintf("%s:%s", o->mounts[i], o->mounts[i]);
		}
		snprintf(tf->user, sizeof(tf->user), "%u:%u", (unsigned)getuid(), (unsigned)getgid());
	}
	remove_leftover_plans(tf->plans_dir);
	*out = tf;
	return 0;
}

size_t sw_tf_pending(const struct sw_tf *tf)
{
	return tf ? tf->pending : 0;
}

/* ---- results ---------------------------------------------------------- */

void sw_tf_result_free(struct sw_tf_result *res)
{
	if (!res)
		return;
	free(res->env);
	free(res->module);
	free(res->error);
	free(res->fmt_files);
	sw_tf_changes_free(res->changes, res->nchanges);
	sw_tf_changes_free(res->drift, res->ndrift);
	sw_tf_changes_free(res->output_drift, res->noutput_drift);
	free(res->plan_text);
	free(res->outputs_json);
	free(res);
}

/* ---- operations: life cycle -------------------------------------------- */

static void drop_plan_file(struct sw_tf_op *op)
{
	if (op->plan_host) {
		if (unlink(op->plan_host) < 0 && errno != ENOENT)
			log_warn("tf.plan_unlink", "file=%s err=%s", sw_q(op->plan_host),
				 sw_q(strerror(errno)));
		free(op->plan_host);
		op->plan_host = NULL;
	}
}

static void op_free(struct sw_tf_op *op)
{
	drop_plan_file(op);
	free(op->env);
	free(op->checkout);
	free(op->module);
	free(op->var_file);
	free(op->label);
	sw_strv_free(op->vars);
	sw_strv_free(op->env_vars);
	sw_buf_release(&op->out);
	sw_buf_release(&op->err);
	sw_tf_result_free(op->res);
	free(op);
}

static void lock_maybe_free(struct tf_lock *lk)
{
	if (lk->running || lk->queue)
		return;
	struct tf_lock **pp = &lk->tf->locks;
	while (*pp && *pp != lk)
		pp = &(*pp)->next;
	if (*pp)
		*pp = lk->next;
	event_free(lk->kick);
	free(lk->key);
	free(lk);
}

static void schedule_kick(struct tf_lock *lk)
{
	struct timeval tv = { 0, 0 };
	evtimer_add(lk->kick, &tv);
}

/* Hand the result to the caller; the op is gone afterwards. */
static void op_finish(struct sw_tf_op *op)
{
	struct tf_lock *lk = op->lk;
	struct sw_tf_result *res = op->res;

	drop_plan_file(op);
	res->finished_ms = sw_now_ms();
	if (res->status == 0 && !res->error)
		res->error = sw_strdup("");
	if (!res->error)
		res->error = sw_strdup("failed");
	if (!res->phase)
		res->phase = "";
	log_info("tf.done", "env=%s module=%s kind=%d status=%d phase=%s add=%zu change=%zu destroy=%zu",
		 sw_q(op->env), sw_q(op->module), (int)op->kind, res->status, sw_q(res->phase),
		 res->nadd, res->nchange, res->ndestroy);
	op->res = NULL;
	if (lk->running == op)
		lk->running = NULL;
	op->tf->pending--;
	sw_tf_done_fn done = op->done;
	void *darg = op->darg;
	op_free(op);
	if (lk->queue)
		schedule_kick(lk);
	else
		lock_maybe_free(lk);
	if (done)
		done(res, darg);
	else
		sw_tf_result_free(res);
}

static void op_fail(struct sw_tf_op *op, int code, const char *fmt, ...) SW_PRINTF(3, 4);
static void op_fail(struct sw_tf_op *op, int code, const char *fmt, ...)
{
	struct sw_buf b = SW_BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	sw_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	free(op->res->error);
	op->res->error = sw_buf_detach(&b, NULL);
	op->res->status = code;
	op_finish(op);
}

/* ---- one command ------------------------------------------------------ */

static void emit(struct sw_tf_op *op, int stream, const char *s)
{
	if (op->on_output)
		op->on_output(stream, s, strlen(s), op->oarg);
}

static void step_output(int stream, const char *p, size_t n, void *arg)
{
	struct sw_tf_op *op = arg;

	if (op->orphan)
		return;
	if (stream == SW_STEP_STDOUT) {
		size_t max = op->quiet_stdout ? JSON_MAX : PLAN_TEXT_MAX;
		if (op->out.len < max)
			sw_buf_add(&op->out, p, n < max - op->out.len ? n : max - op->out.len);
		if (op->quiet_stdout)
			return;
	} else {
		sw_buf_add(&op->err, p, n);
		if (op->err.len > 2 * ERR_TAIL_MAX)
			sw_buf_consume(&op->err, op->err.len - ERR_TAIL_MAX);
	}
	if (op->on_output)
		op->on_output(stream, p, n, op->oarg);
}

/* Terraform's own message: its stderr (or stdout when that is empty), trimmed. */
static char *tf_message(struct sw_tf_op *op)
{
	struct sw_buf *src = op->err.len ? &op->err : &op->out;
	const char *s = src->ptr;
	size_t n = src->len;

	if (n > ERR_TAIL_MAX) {
		s += n - ERR_TAIL_MAX;
		n = ERR_TAIL_MAX;
	}
	while (n && (*s == '\n' || *s == ' ' || *s == '\r' || *s == '\t')) {
		s++;
		n--;
	}
	while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r' || s[n - 1] == '\t'))
		n--;
	if (!n)
		return sw_strdup("no output");
	return sw_strndup(s, n);
}

static void new_plan_file(struct sw_tf_op *op, int n)
{
	drop_plan_file(op);
	op->plan_host = sw_asprintf("%s/op-%lu-%d.tfplan", op->tf->plans_dir, op->id, n);
}

static void add_vars(struct sw_buf *cmd, const struct sw_tf_op *op)
{
	if (op->var_file) {
		struct sw_buf p = SW_BUF_INIT;
		sw_buf_addf(&p, "%s/%s", op->checkout, op->var_file);
		sw_buf_adds(cmd, " -var-file=");
		add_quoted(cmd, p.ptr);
		sw_buf_release(&p);
	}
	for (char **v = op->vars; v && *v; v++) {
		sw_buf_adds(cmd, " -var ");
		add_quoted(cmd, *v);
	}
}

static void step_done(const struct sw_runner_result *r, void *arg);

/* Build and start the command of the current phase. */
static void run_phase(struct sw_tf_op *op)
{
	struct sw_tf *tf = op->tf;
	enum phase ph = op->phases[op->at];
	struct sw_buf cmd = SW_BUF_INIT, cd = SW_BUF_INIT, shown = SW_BUF_INIT;
	char lockto[48];
	const char *pin;

	snprintf(lockto, sizeof(lockto), " -lock-timeout=%ds", tf->lock_timeout_s);
	op->res->phase = phase_name[ph];
	op->quiet_stdout = 0;
	sw_buf_reset(&op->out);
	sw_buf_reset(&op->err);

	if (ph == PH_PLAN || ph == PH_REFRESH)
		new_plan_file(op, ph == PH_REFRESH ? 1 : 2);
	pin = op->plan_host;

	add_quoted(&cmd, tf->terraform);
	switch (ph) {
	case PH_INIT:
		sw_buf_adds(&cmd, " init -input=false -no-color");
		break;
	case PH_VALIDATE:
		sw_buf_adds(&cmd, " validate -no-color");
		break;
	case PH_FMT:
		sw_buf_adds(&cmd, " fmt -check -recursive -no-color");
		break;
	case PH_PLAN:
	case PH_REFRESH:
		sw_buf_addf(&cmd, " plan%s -input=false -no-color%s -detailed-exitcode -out=",
			    ph == PH_REFRESH ? " -refresh-only" : "", lockto);
		add_quoted(&cmd, pin);
		add_vars(&cmd, op);
		break;
	case PH_SHOW:
	case PH_REFRESH_SHOW:
		sw_buf_adds(&cmd, " show -json -no-color ");
		add_quoted(&cmd, pin);
		op->quiet_stdout = 1;
		break;
	case PH_APPLY:
		sw_buf_addf(&cmd, " apply -input=false -no-color%s ", lockto);
		add_quoted(&cmd, pin);
		break;
	case PH_OUTPUT:
		sw_buf_adds(&cmd, " output -json -no-color");
		op->quiet_stdout = 1;
		break;
	case PH_END:
		break;
	}
	/* umask: the plan file terraform writes is for us only. */
	sw_buf_adds(&cd, "umask 077; cd ");
	add_quoted(&cd, op->module);

	sw_buf_addf(&shown, "$ terraform %s%s\n", phase_name[ph],
		    ph == PH_SHOW || ph == PH_REFRESH_SHOW ? " -json PLANFILE" :
		    ph == PH_OUTPUT ? " -json" : "");
	emit(op, SW_STEP_STDOUT, shown.ptr);

	char *tmo = sw_asprintf("TF_PLUGIN_CACHE_DIR=%s", tf->cache_dir);
	size_t nenv = 0;
	while (op->env_vars && op->env_vars[nenv])
		nenv++;
	const char **env = sw_calloc(nenv + 6, sizeof(*env));
	size_t k = 0;
	env[k++] = "TF_IN_AUTOMATION=1";
	env[k++] = "TF_INPUT=0";
	env[k++] = "CHECKPOINT_DISABLE=1";
	env[k++] = tmo;
	if (tf->cli_config)
		env[k++] = tf->cli_config;
	for (size_t i = 0; i < nenv; i++)
		env[k++] = op->env_vars[i];

	const char *cmds[] = { cd.ptr, cmd.ptr, NULL };
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	s.image = tf->image;
	s.commands = cmds;
	s.env = env;
	s.workspace = op->checkout;
	if (tf->docker) {
		s.workdir = op->checkout;
		s.binds = (const char *const *)tf->binds;
		s.user = tf->user;
	}
	s.timeout_ms = op->timeout_ms;
	s.label = op->label;
	s.on_output = step_output;
	s.on_done = step_done;
	s.arg = op;
	int rc = sw_runner_start(tf->runner, &s, &op->step);
	free(env);
	free(tmo);
	sw_buf_release(&cmd);
	sw_buf_release(&cd);
	sw_buf_release(&shown);
	if (rc < 0)
		op_fail(op, rc, "terraform %s in %s: %s", phase_name[ph], op->module, sw_error_last());
}

static void next_phase(struct sw_tf_op *op)
{
	op->at++;
	/* Apply only what changes something; outputs are read either way. */
	if (op->phases[op->at] == PH_APPLY && op->res->plan_exit == 0)
		op->at++;
	if (op->phases[op->at] == PH_END) {
		if (op->res->fmt_ok == 0) {
			op_fail(op, SW_EINVALID,
				"terraform fmt in %s: files not formatted (run `terraform fmt -recursive`): %s",
				op->module, op->res->fmt_files);
			return;
		}
		op->res->status = 0;
		op->res->phase = "";
		op_finish(op);
		return;
	}
	run_phase(op);
}

static void step_done(const struct sw_runner_result *r, void *arg)
{
	struct sw_tf_op *op = arg;
	enum phase ph = op->phases[op->at];
	const char *pn = phase_name[ph];

	op->step = NULL;
	if (op->orphan) {
		op_free(op);
		return;
	}
	if (op->cancelled || r->outcome == SW_STEP_CANCELLED) {
		op_fail(op, SW_ECANCELLED, "terraform %s in %s: cancelled", pn, op->module);
		return;
	}
	if (r->outcome == SW_STEP_TIMED_OUT) {
		op_fail(op, SW_ERR, "terraform %s in %s: timed out after %lds", pn, op->module,
			op->timeout_ms / 1000);
		return;
	}
	if (r->outcome == SW_STEP_ERROR) {
		op_fail(op, SW_ERR, "terraform %s in %s: could not run: %s", pn, op->module,
			r->error_msg && *r->error_msg ? r->error_msg : "runner error");
		return;
	}
	int x = r->exit_code;
	if (x == 127) {
		char *m = tf_message(op);
		op_fail(op, SW_ERR, "terraform %s in %s: %s (is %s installed%s?)", pn, op->module, m,
			op->tf->terraform, op->tf->docker ? " in the image" : " and in PATH");
		free(m);
		return;
	}
	switch (ph) {
	case PH_FMT:
		op->res->fmt_ok = x == 0;
		if (x != 0) {
			char *m = op->out.len ? sw_strndup(op->out.ptr, op->out.len) : tf_message(op);
			size_t n = strlen(m);
			while (n && m[n - 1] == '\n')
				m[--n] = 0;
			free(op->res->fmt_files);
			op->res->fmt_files = m;
		}
		next_phase(op);
		return;
	case PH_PLAN:
	case PH_REFRESH:
		if (x != 0 && x != 2)
			break;
		if (op->plan_host)
			chmod(op->plan_host, 0600);
		if (ph == PH_PLAN) {
			op->res->plan_exit = x;
			free(op->res->plan_text);
			op->res->plan_text = sw_strndup(op->out.ptr, op->out.len);
			/* The rest names the plan file under DATA_DIR and how to
			 * apply it by hand: nothing for a PR comment. */
			char *saved = strstr(op->res->plan_text, "\nSaved the plan to:");
			if (saved)
				saved[1] = 0;
		}
		next_phase(op);
		return;
	case PH_SHOW:
	case PH_REFRESH_SHOW:
		if (x != 0)
			break;
		/* A PR plan and a drift check need the file no longer. */
		if (op->kind != SW_TF_APPLY)
			drop_plan_file(op);
		if (sw_tf_parse_show(op->res, op->out.ptr, op->out.len, ph == PH_REFRESH_SHOW) < 0) {
			op_fail(op, SW_ERR, "terraform show in %s: %s", op->module, sw_error_last());
			return;
		}
		next_phase(op);
		return;
	case PH_APPLY:
		drop_plan_file(op);
		if (x != 0)
			break;
		op->res->applied = 1;
		next_phase(op);
		return;
	case PH_OUTPUT:
		if (x != 0)
			break;
		free(op->res->outputs_json);
		op->res->outputs_json = sw_strndup(op->out.ptr, op->out.len);
		next_phase(op);
		return;
	default:
		if (x != 0)
			break;
		next_phase(op);
		return;
	}
	char *m = tf_message(op);
	op_fail(op, SW_ERR, "terraform %s in %s: %s", pn, op->module, m);
	free(m);
}

/* ---- operations: queueing ---------------------------------------------- */

static void lock_kick(evutil_socket_t fd, short what, void *arg)
{
	struct tf_lock *lk = arg;
	struct sw_tf_op **pp, **pick = NULL;

	if (lk->running)
		return;
	for (pp = &lk->queue; *pp; pp = &(*pp)->qnext) {
		if ((*pp)->kind == SW_TF_APPLY) {
			pick = pp;
			break;
		}
	}
	if (!pick)
		pick = &lk->queue;
	if (!*pick) {
		lock_maybe_free(lk);
		return;
	}
	struct sw_tf_op *op = *pick;
	*pick = op->qnext;
	op->qnext = NULL;
	lk->running = op;
	op->res->started_ms = sw_now_ms();
	log_info("tf.start", "env=%s module=%s kind=%d waited_ms=%lld", sw_q(op->env),
		 sw_q(op->module), (int)op->kind,
		 (long long)(op->res->started_ms - op->res->queued_ms));
	run_phase(op);
}

static struct tf_lock *lock_get(struct sw_tf *tf, const char *env, const char *module)
{
	char *key = sw_asprintf("%s\n%s", env, module);
	struct tf_lock *lk;

	for (lk = tf->locks; lk; lk = lk->next) {
		if (!strcmp(lk->key, key)) {
			free(key);
			return lk;
		}
	}
	lk = sw_calloc(1, sizeof(*lk));
	lk->key = key;
	lk->tf = tf;
	lk->kick = evtimer_new(tf->base, lock_kick, lk);
	lk->next = tf->locks;
	tf->locks = lk;
	return lk;
}

static int op_start(struct sw_tf *tf, enum sw_tf_kind kind, const struct sw_tf_req *q,
		    sw_tf_done_fn done, void *arg, struct sw_tf_op **out)
{
	if (out)
		*out = NULL;
	if (!tf || !q || !q->env || !*q->env || !q->checkout || !*q->checkout || !q->module ||
	    !*q->module)
		return sw_error_setc(SW_EINVALID, "terraform: env, checkout and module are required");
	char *mod = norm_module(q->module);
	if (mod[0] == '/' || !strcmp(mod, "..") || !strncmp(mod, "../", 3) || strstr(mod, "/../")) {
		sw_error_setc(SW_EINVALID, "terraform: module path %s leaves the checkout", q->module);
		free(mod);
		return SW_EINVALID;
	}
	const struct sw_cfg_infra *inf = q->infra;
	struct sw_tf_op *op = sw_calloc(1, sizeof(*op));
	op->tf = tf;
	op->id = ++tf->seq;
	op->kind = kind;
	op->env = sw_strdup(q->env);
	op->checkout = sw_strdup(q->checkout);
	op->module = mod;
	op->label = q->label ? sw_strdup(q->label) : NULL;
	op->var_file = inf && inf->var_file && *inf->var_file ? sw_strdup(inf->var_file) : NULL;
	op->vars = inf && inf->nvars ? sw_strv_dupn((const char *const *)inf->vars, inf->nvars) : NULL;
	op->env_vars = q->env_vars ? sw_strv_dup(q->env_vars) : NULL;
	op->timeout_ms = 1000L * (inf && inf->timeout_s > 0 ? inf->timeout_s : DEFAULT_TIMEOUT_S);
	op->on_output = q->on_output;
	op->oarg = q->arg;
	op->done = done;
	op->darg = arg;
	op->phases = kind == SW_TF_PLAN ? plan_phases : kind == SW_TF_APPLY ? apply_phases : drift_phases;
	op->out = (struct sw_buf)SW_BUF_INIT;
	op->err = (struct sw_buf)SW_BUF_INIT;
	op->res = sw_calloc(1, sizeof(*op->res));
	op->res->kind = kind;
	op->res->env = sw_strdup(op->env);
	op->res->module = sw_strdup(op->module);
	op->res->fmt_ok = -1;
	op->res->fmt_files = sw_strdup("");
	op->res->plan_exit = -1;
	op->res->plan_text = sw_strdup("");
	op->res->status = SW_ERR;
	op->res->queued_ms = sw_now_ms();

	op->lk = lock_get(tf, op->env, op->module);
	struct sw_tf_op **pp = &op->lk->queue;
	while (*pp)
		pp = &(*pp)->qnext;
	*pp = op;
	tf->pending++;
	if (!op->lk->running)
		schedule_kick(op->lk);
	else
		log_info("tf.wait", "env=%s module=%s kind=%d behind=%d", sw_q(op->env),
			 sw_q(op->module), (int)kind, (int)op->lk->running->kind);
	if (out)
		*out = op;
	return 0;
}

int sw_tf_plan(struct sw_tf *tf, const struct sw_tf_req *req, sw_tf_done_fn done, void *arg,
	       struct sw_tf_op **out)
{
	return op_start(tf, SW_TF_PLAN, req, done, arg, out);
}

int sw_tf_apply(struct sw_tf *tf, const struct sw_tf_req *req, sw_tf_done_fn done, void *arg,
		struct sw_tf_op **out)
{
	return op_start(tf, SW_TF_APPLY, req, done, arg, out);
}

int sw_tf_drift(struct sw_tf *tf, const struct sw_tf_req *req, sw_tf_done_fn done, void *arg,
		struct sw_tf_op **out)
{
	return op_start(tf, SW_TF_DRIFT, req, done, arg, out);
}

void sw_tf_cancel(struct sw_tf_op *op)
{
	if (!op || op->cancelled)
		return;
	op->cancelled = 1;
	if (op->lk->running == op) {
		if (op->step)
			sw_runner_cancel(op->step);
		return;
	}
	struct sw_tf_op **pp = &op->lk->queue;
	while (*pp && *pp != op)
		pp = &(*pp)->qnext;
	if (*pp)
		*pp = op->qnext;
	op->res->phase = "";
	op_fail(op, SW_ECANCELLED, "terraform in %s: cancelled before it started", op->module);
}

void sw_tf_free(struct sw_tf *tf)
{
	if (!tf)
		return;
	while (tf->locks) {
		struct tf_lock *lk = tf->locks;
		tf->locks = lk->next;
		while (lk->queue) {
			struct sw_tf_op *op = lk->queue;
			lk->queue = op->qnext;
			op_free(op);
		}
		if (lk->running) {
			/* Its step's callback may still come (the runner outlives
			 * us): the op stays as an orphan that frees itself there. */
			struct sw_tf_op *op = lk->running;
			op->orphan = 1;
			drop_plan_file(op);
			if (op->step)
				sw_runner_cancel(op->step);
			else
				op_free(op);
		}
		event_free(lk->kick);
		free(lk->key);
		free(lk);
	}
	free(tf->data_dir);
	free(tf->terraform);
	free(tf->image);
	free(tf->plans_dir);
	free(tf->cache_dir);
	free(tf->cli_config);
	sw_strv_free(tf->binds);
	free(tf);
}

/* ---- the PR comment section -------------------------------------------- */

void tf_add_clean(struct sw_buf *b, const char *s, size_t n, int mode)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;

	while (p < end) {
		unsigned c = *p;
		if (c == 0x1b) {     /* ESC [ ... final byte */
			p++;
			if (p < end && *p == '[') {
				p++;
				while (p < end && (*p < 0x40 || *p > 0x7e))
					p++;
			}
			if (p < end)
				p++;
			continue;
		}
		if (c < 0x80) {
			p++;
			if (c == '`' && (mode & (CL_CODE | CL_CELL)))
				sw_buf_adds(b, "\xcb\x8b");
			else if (c == '|' && (mode & CL_CELL))
				sw_buf_adds(b, "\\|");
			else if (c == '\n' && (mode & CL_CELL))
				sw_buf_addch(b, ' ');
			else if (c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7f))
				sw_buf_addch(b, (char)c);
			continue;
		}
		size_t len = sw_utf8_seq((const char *)p, (size_t)(end - p));
		if (!len) {
			sw_buf_adds(b, SW_UTF8_REPLACEMENT);
			p++;
			continue;
		}
		sw_buf_add(b, p, len);
		p += len;
	}
}

/* Cut to at most `max` bytes on a UTF-8 boundary. */
static void cut_utf8(struct sw_buf *b, size_t max)
{
	sw_buf_truncate(b, sw_utf8_floor(b->ptr, b->len, max));
}

static const char *action_word(const struct sw_tf_change *c)
{
	const char *a = c->actions;
	if (!strcmp(a, "create"))
		return "create";
	if (!strcmp(a, "delete"))
		return "**destroy**";
	if (!strcmp(a, "update"))
		return "update";
	if (!strcmp(a, "delete,create"))
		return "**replace** (destroy, then create)";
	if (!strcmp(a, "create,delete"))
		return "**replace** (create, then destroy)";
	return NULL;
}

static void add_row(struct sw_buf *b, const struct sw_tf_change *c, int attrs)
{
	const char *w = action_word(c);
	sw_buf_adds(b, "| ");
	if (w)
		sw_buf_adds(b, w);
	else
		tf_add_clean(b, c->actions, strlen(c->actions), CL_CELL);
	sw_buf_adds(b, " | `");
	tf_add_clean(b, c->address, strlen(c->address), CL_CELL);
	sw_buf_adds(b, "` |");
	if (attrs) {
		sw_buf_adds(b, " ");
		for (char **a = c->attrs; a && *a; a++) {
			sw_buf_adds(b, a == c->attrs ? "`" : ", `");
			tf_add_clean(b, *a, strlen(*a), CL_CELL);
			sw_buf_adds(b, "`");
		}
		sw_buf_adds(b, " |");
	}
	sw_buf_addch(b, '\n');
}

/* Rows of `v` into b while they fit in `room` bytes; then a count of the rest. */
static void add_rows(struct sw_buf *b, const struct sw_tf_change *v, size_t n, int attrs, size_t room)
{
	struct sw_buf row = SW_BUF_INIT;
	size_t start = b->len, i;

	for (i = 0; i < n; i++) {
		sw_buf_reset(&row);
		add_row(&row, &v[i], attrs);
		if (b->len - start + row.len + 64 > room)
			break;
		sw_buf_add(b, row.ptr, row.len);
	}
	if (i < n)
		sw_buf_addf(b, "\n…and %zu more (see the run's log).\n", n - i);
	sw_buf_release(&row);
}

char *sw_tf_report_markdown(const struct sw_tf_result *res, const char *env, size_t max)
{
	struct sw_buf b = SW_BUF_INIT, head = SW_BUF_INIT;
	const char *what = res->kind == SW_TF_APPLY ? "apply" : res->kind == SW_TF_DRIFT ? "drift check" : "plan";

	if (max < 256)
		max = 256;
	if (!env)
		env = res->env ? res->env : "?";
	sw_buf_adds(&head, "### Terraform ");
	sw_buf_adds(&head, what);
	sw_buf_adds(&head, ": `");
	tf_add_clean(&head, env, strlen(env), CL_CELL);
	sw_buf_adds(&head, "` (`");
	tf_add_clean(&head, res->module ? res->module : "", res->module ? strlen(res->module) : 0, CL_CELL);
	sw_buf_adds(&head, "`)\n\n");

	if (res->status == 0)
		sw_buf_adds(&head, ":white_check_mark: **Succeeded**");
	else if (res->status == SW_ECANCELLED)
		sw_buf_adds(&head, ":no_entry_sign: **Cancelled**");
	else
		sw_buf_adds(&head, ":x: **Failed**");
	if (res->plan_exit >= 0) {
		if (res->nadd + res->nchange + res->ndestroy == 0)
			sw_buf_adds(&head, " · No changes.");
		else
			sw_buf_addf(&head, " · Plan: **%zu** to add, **%zu** to change, **%zu** to destroy.",
				    res->nadd, res->nchange, res->ndestroy);
	}
	if (res->kind == SW_TF_APPLY && res->applied)
		sw_buf_adds(&head, " Applied.");
	else if (res->kind == SW_TF_APPLY && res->status != 0)
		sw_buf_adds(&head, " Nothing was applied.");
	sw_buf_adds(&head, "\n\n");
	if (res->status != 0 && res->error && *res->error) {
		struct sw_buf e = SW_BUF_INIT;
		tf_add_clean(&e, res->error, strlen(res->error), CL_CODE);
		cut_utf8(&e, max / 4);
		sw_buf_adds(&head, "```text\n");
		sw_buf_add(&head, e.ptr, e.len);
		sw_buf_adds(&head, "\n```\n\n");
		sw_buf_release(&e);
	}
	if (res->fmt_ok == 0 && res->fmt_files && *res->fmt_files) {
		struct sw_buf e = SW_BUF_INIT;
		tf_add_clean(&e, res->fmt_files, strlen(res->fmt_files), CL_CODE);
		cut_utf8(&e, max / 8);
		sw_buf_adds(&head, ":warning: Not formatted (`terraform fmt -check`):\n```text\n");
		sw_buf_add(&head, e.ptr, e.len);
		sw_buf_adds(&head, "\n```\n\n");
		sw_buf_release(&e);
	}
	cut_utf8(&head, max / 2);
	sw_buf_add(&b, head.ptr, head.len);
	sw_buf_release(&head);

	/* Destructive actions first, then everything. */
	if (res->ndestructive) {
		struct sw_tf_change *d = sw_calloc(res->ndestructive, sizeof(*d));
		size_t k = 0;
		for (size_t i = 0; i < res->nchanges && k < res->ndestructive; i++)
			if (res->changes[i].destructive)
				d[k++] = res->changes[i];
		sw_buf_addf(&b, ":warning: **%zu destructive change%s:**\n\n| Action | Resource |\n| --- | --- |\n",
			    k, k == 1 ? "" : "s");
		add_rows(&b, d, k, 0, max > b.len ? (max - b.len) / 3 : 0);
		sw_buf_adds(&b, "\n");
		free(d);
	}
	if (res->kind == SW_TF_DRIFT && res->drifted) {
		sw_buf_addf(&b, ":warning: **Changed outside Terraform:** %zu resource%s, %zu output%s\n\n",
			    res->ndrift, res->ndrift == 1 ? "" : "s", res->noutput_drift,
			    res->noutput_drift == 1 ? "" : "s");
		if (res->ndrift) {
			sw_buf_adds(&b, "| Action | Resource | Attributes |\n| --- | --- | --- |\n");
			add_rows(&b, res->drift, res->ndrift, 1, max > b.len ? (max - b.len) / 3 : 0);
			sw_buf_adds(&b, "\n");
		}
		if (res->noutput_drift) {
			sw_buf_adds(&b, "| Action | Output |\n| --- | --- |\n");
			add_rows(&b, res->output_drift, res->noutput_drift, 0,
				 max > b.len ? (max - b.len) / 4 : 0);
			sw_buf_adds(&b, "\n");
		}
	}
	if (res->nchanges) {
		sw_buf_adds(&b, "| Action | Resource |\n| --- | --- |\n");
		add_rows(&b, res->changes, res->nchanges, 0, max > b.len ? (max - b.len) / 2 : 0);
		sw_buf_adds(&b, "\n");
	}

	static const char open[] = "<details><summary>Plan output</summary>\n\n```text\n";
	static const char close_cut[] = "\n…(cut)\n```\n</details>\n";
	if (res->plan_text && *res->plan_text &&
	    b.len + sizeof(open) + sizeof(close_cut) + 64 < max) {
		struct sw_buf t = SW_BUF_INIT;
		tf_add_clean(&t, res->plan_text, strlen(res->plan_text), CL_CODE);
		size_t room = max - b.len - sizeof(open) - sizeof(close_cut);
		int cut = t.len > room;
		cut_utf8(&t, room);
		while (t.len && t.ptr[t.len - 1] == '\n')
			sw_buf_truncate(&t, t.len - 1);
		sw_buf_adds(&b, open);
		sw_buf_add(&b, t.ptr, t.len);
		sw_buf_adds(&b, cut ? close_cut : "\n```\n</details>\n");
		sw_buf_release(&t);
	}
	/* The pieces above keep to their shares; this is the last guard. */
	cut_utf8(&b, max - 1);
	return sw_buf_detach(&b, NULL);
}

/* ---- which modules a change touches ------------------------------------ */

/* Join "a/b" and "../c" into "a/c"; NULL when it leaves the checkout. */
static char *path_join_norm(const char *dir, const char *rel)
{
	char *all = sw_asprintf("%s/%s", dir, rel);
	char **parts = sw_calloc(strlen(all) + 1, sizeof(*parts));
	size_t n = 0;
	char *save = NULL, *tok;

	for (tok = strtok_r(all, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (!strcmp(tok, "."))
			continue;
		if (!strcmp(tok, "..")) {
			if (!n) {
				free(parts);
				free(all);
				return NULL;
			}
			n--;
			continue;
		}
		parts[n++] = tok;
	}
	struct sw_buf b = SW_BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		if (i)
			sw_buf_addch(&b, '/');
		sw_buf_adds(&b, parts[i]);
	}
	free(parts);
	free(all);
	if (!b.len) {
		sw_buf_release(&b);
		return sw_strdup(".");
	}
	return sw_buf_detach(&b, NULL);
}

/* Every `source = "./..."` / `"../..."` in text, resolved against dir, added to *v. */
static void scan_sources(const char *text, const char *dir, char ***v, size_t *n)
{
	const char *p = text;

	while ((p = strstr(p, "source"))) {
		int at_start = p == text || p[-1] == '\n' || p[-1] == ' ' || p[-1] == '\t' ||
			       p[-1] == '{' || p[-1] == ';';
		const char *q = p + 6;
		p = q;
		if (!at_start)
			continue;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q != '=')
			continue;
		q++;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q != '"')
			continue;
		q++;
		const char *e = strchr(q, '"');
		const char *nl = strchr(q, '\n');
		if (!e || (nl && nl < e))
			continue;
		if (strncmp(q, "./", 2) && strncmp(q, "../", 3))
			continue;
		char *rel = sw_strndup(q, (size_t)(e - q));
		char *full = path_join_norm(dir, rel);
		free(rel);
		if (!full)
			continue;
		int dup = 0;
		for (size_t i = 0; i < *n && !dup; i++)
			dup = !strcmp((*v)[i], full);
		if (dup) {
			free(full);
			continue;
		}
		*v = sw_realloc(*v, (*n + 2) * sizeof(**v));
		(*v)[(*n)++] = full;
		(*v)[*n] = NULL;
	}
}

int sw_tf_module_deps(char ***out, const char *checkout, const char *module)
{
	char **v = sw_calloc(2, sizeof(*v));
	size_t n = 0;

	*out = NULL;
	v[n] = path_join_norm(".", module);
	if (!v[n]) {
		free(v);
		return sw_error_setc(SW_EINVALID, "module path %s leaves the checkout", module);
	}
	n++;
	/* Breadth first over a list that grows as sources are found. */
	for (size_t i = 0; i < n; i++) {
		char *abs = sw_asprintf("%s/%s", checkout, v[i]);
		DIR *d = opendir(abs);
		struct dirent *de;
		if (!d) {
			free(abs);
			continue;   /* a missing module is terraform init's to report */
		}
		while ((de = readdir(d))) {
			size_t l = strlen(de->d_name);
			if (l < 4 || strcmp(de->d_name + l - 3, ".tf"))
				continue;
			char *f = sw_asprintf("%s/%s", abs, de->d_name);
			struct sw_buf b = SW_BUF_INIT;
			if (sw_buf_read_file(&b, f) == 0)
				scan_sources(b.ptr, v[i], &v, &n);
			sw_buf_release(&b);
			free(f);
		}
		closedir(d);
		free(abs);
	}
	*out = v;
	return 0;
}

static int under(const char *path, const char *dir)
{
	if (!strcmp(dir, "."))
		return 1;
	size_t n = strlen(dir);
	return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == 0);
}

int sw_tf_affected(unsigned char *hit, const char *checkout, const struct sw_cfg_infra *infra,
		   const char *const *changed, size_t nchanged)
{
	int count = 0;

	if (!infra)
		return 0;
	char *vf = infra->var_file ? path_join_norm(".", infra->var_file) : NULL;
	for (size_t m = 0; m < infra->nmodules; m++) {
		char **deps;
		hit[m] = 0;
		if (sw_tf_module_deps(&deps, checkout, infra->modules[m]) < 0) {
			free(vf);
			return sw_error_prefix("terraform affected");
		}
		for (size_t c = 0; c < nchanged && !hit[m]; c++) {
			const char *p = changed[c];
			while (p[0] == '.' && p[1] == '/')
				p += 2;
			if (vf && !strcmp(p, vf))
				hit[m] = 1;
			for (char **d = deps; *d && !hit[m]; d++)
				hit[m] = (unsigned char)under(p, *d);
		}
		count += hit[m];
		sw_strv_free(deps);
	}
	free(vf);
	return count;
}
