/*
 * local.c - the local runner backend: a step is `sh -e -c SCRIPT` run as a
 * plain child process of the daemon in the workspace directory, through
 * lib/proc (own process group, killed as a group on timeout and cancel).
 *
 * Not isolated (see runner.h): the image, memory, CPU and network settings
 * of a spec are ignored. Its environment is built from scratch — PATH of
 * the daemon, HOME and PWD set to the workspace, then the spec's env — so
 * secrets in the daemon's own environment do not leak into steps.
 */
#include "runners/backend-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/proc.h"
#include "lib/strv.h"

struct local_runner {
	struct sw_runner base;
	struct sw_proc_mgr *procs;
	struct local_step *steps;
};

struct local_step {
	struct sw_runner_step base;
	struct local_runner *lr;
	struct local_step *prev, *next;
	struct sw_proc *proc;
	sw_step_output_fn on_output;
	sw_step_done_fn on_done;
	void *arg;
	int cancelled;
};

static void unlink_step(struct local_step *s)
{
	struct local_runner *lr = s->lr;
	if (s->prev)
		s->prev->next = s->next;
	else
		lr->steps = s->next;
	if (s->next)
		s->next->prev = s->prev;
	lr->base.active--;
}

static void on_proc_output(int stream, const char *p, size_t n, void *arg)
{
	struct local_step *s = arg;
	if (s->on_output)
		s->on_output(stream == SW_PROC_STDERR ? SW_STEP_STDERR : SW_STEP_STDOUT, p, n, s->arg);
}

static void on_proc_exit(const struct sw_proc_result *pr, void *arg)
{
	struct local_step *s = arg;
	struct sw_runner_result r;
	char id[32];

	memset(&r, 0, sizeof(r));
	snprintf(id, sizeof(id), "pid %d", (int)sw_proc_pid(s->proc));
	r.id = id;
	r.error_msg = pr->error_msg;
	r.duration_ms = pr->duration_ms;
	r.exit_code = pr->exited ? pr->exit_code : (pr->signal ? 128 + pr->signal : -1);
	if (pr->error)
		r.outcome = SW_STEP_ERROR;
	else if (pr->timed_out)
		r.outcome = SW_STEP_TIMED_OUT;
	else if (pr->killed)
		r.outcome = SW_STEP_CANCELLED;
	else
		r.outcome = SW_STEP_EXITED;
	log_info("runner.done", "kind=local id=%s outcome=%d exit=%d ms=%.0f", sw_q(id),
		 (int)r.outcome, r.exit_code, r.duration_ms);
	unlink_step(s);
	if (s->on_done)
		s->on_done(&r, s->arg);
	free(s);
}

static int local_start(struct sw_runner *r, const struct sw_runner_spec *spec,
		       struct sw_runner_step **out)
{
	struct local_runner *lr = (struct local_runner *)r;
	struct sw_proc_opts o = SW_PROC_OPTS_INIT;
	struct local_step *s;
	char *script, **env;
	const char *path = getenv("PATH");
	size_t n = 0, k = 0;
	int rc;

	for (n = 0; spec->env && spec->env[n]; n++)
		;
	env = sw_calloc(n + 4, sizeof(*env));
	env[k++] = sw_asprintf("PATH=%s", path ? path : "/usr/local/bin:/usr/bin:/bin");
	if (spec->workspace) {
		env[k++] = sw_asprintf("HOME=%s", spec->workspace);
		env[k++] = sw_asprintf("PWD=%s", spec->workspace);
	}
	for (size_t i = 0; i < n; i++)
		env[k++] = sw_strdup(spec->env[i]);
	script = sw_runner_script(spec->commands);
	const char *argv[] = { "/bin/sh", "-e", "-c", script, NULL };

	s = sw_calloc(1, sizeof(*s));
	s->base.runner = r;
	s->lr = lr;
	s->on_output = spec->on_output;
	s->on_done = spec->on_done;
	s->arg = spec->arg;

	o.argv = argv;
	o.env = (const char *const *)env;
	o.cwd = spec->workspace;
	o.timeout_ms = spec->timeout_ms;
	o.on_output = on_proc_output;
	o.on_exit = on_proc_exit;
	o.arg = s;
	rc = sw_proc_spawn(lr->procs, &o, &s->proc);
	if (rc < 0) {
		sw_error_prefix("local step");
		free(s);
		s = NULL;
	} else {
		s->next = lr->steps;
		if (lr->steps)
			lr->steps->prev = s;
		lr->steps = s;
		lr->base.active++;
		log_info("runner.start", "kind=local pid=%d label=%s", (int)sw_proc_pid(s->proc),
			 sw_q(spec->label ? spec->label : "1"));
	}
	free(script);
	sw_strv_free(env);
	if (out)
		*out = (struct sw_runner_step *)s;
	return rc;
}

static void local_cancel(struct sw_runner_step *step)
{
	struct local_step *s = (struct local_step *)step;
	s->cancelled = 1;
	sw_proc_kill(s->proc);
}

static void local_free(struct sw_runner *r)
{
	struct local_runner *lr = (struct local_runner *)r;

	/* No callbacks: kill, and let the proc manager reap on its own. */
	while (lr->steps) {
		struct local_step *s = lr->steps;
		sw_proc_kill(s->proc);
		sw_proc_detach(s->proc);
		unlink_step(s);
		free(s);
	}
	free(lr);
}

static const struct sw_runner_ops local_ops = {
	.kind = "local",
	.start = local_start,
	.cancel = local_cancel,
	.free = local_free,
};

int sw_runner_local_new(struct sw_runner **out, struct sw_proc_mgr *procs)
{
	struct local_runner *lr = sw_calloc(1, sizeof(*lr));
	lr->base.ops = &local_ops;
	lr->procs = procs;
	*out = &lr->base;
	return 0;
}
