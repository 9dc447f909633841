/*
 * proc.h - child processes on the libevent loop: spawn with argv, env and
 * cwd; stdout and stderr delivered as they arrive; an exit callback once the
 * process is gone and its output drained; kill; a time limit.
 *
 * Used by the local runner and by anything that runs a tool (kustomize,
 * helm, terraform). Modelled on tmux's job.c: non-blocking pipes watched by
 * the loop, SIGCHLD caught with an evsignal and answered by a
 * waitpid(WNOHANG) loop.
 *
 *     struct sw_proc_opts o = SW_PROC_OPTS_INIT;
 *     const char *argv[] = { "kustomize", "build", dir, NULL };
 *     o.argv = argv;
 *     o.timeout_ms = 60000;
 *     o.on_output = got_output;
 *     o.on_exit = exited;
 *     o.arg = ctx;
 *     if (sw_proc_spawn(procs, &o, &ctx->proc) < 0) ...
 *
 * Reaping: the manager waits only for the pids it spawned (waitpid(pid,
 * WNOHANG) for each), never waitpid(-1), so children forked elsewhere in the
 * process (system(), a library) are left to whoever forked them.
 *
 * Process groups: each child leads its own process group. A kill (timeout,
 * sw_proc_kill) signals the whole group; and when the child exits, whatever
 * it left running in its group is killed too, so nothing it started in the
 * background outlives it or holds its pipes open. (A grandchild that left
 * the group with setsid() escapes; its pipes are closed SW_PROC_DRAIN_MS
 * after the child's exit.)
 *
 * Limits: libevent delivers signals to one event_base per process, so there
 * is one manager per process. Loop thread only.
 */
#ifndef SW_PROC_H
#define SW_PROC_H

#include <stddef.h>
#include <sys/types.h>

#include "lib/error.h"

struct event_base;
struct sw_proc_mgr;
struct sw_proc;

/* After the child exited, how long its pipes may stay open. */
#define SW_PROC_DRAIN_MS 2000

struct sw_proc_result {
	/*
	 * 0: the process ran and ended (see exited/exit_code/signal).
	 * SW_ERR: it could not be started (exec failed: error_msg says why,
	 *         e.g. "exec kustomize: No such file or directory").
	 */
	int error;
	const char *error_msg;   /* "" when error == 0 */
	int exited;              /* ended through exit(): exit_code is valid */
	int exit_code;
	int signal;              /* killed by this signal (when !exited) */
	int timed_out;           /* killed because timeout_ms passed */
	int killed;              /* killed by sw_proc_kill() */
	double duration_ms;
};

/* Stream numbers for on_output. */
enum { SW_PROC_STDOUT = 1, SW_PROC_STDERR = 2 };

/*
 * Output as it arrives. Order is kept within each stream; between stdout
 * and stderr it is the order in which the loop read the two pipes, which
 * matches the writer's order only at a coarse grain. May call
 * sw_proc_kill() on its own process.
 */
typedef void (*sw_proc_output_fn)(int stream, const char *p, size_t n, void *arg);

/*
 * Called once when the process has ended and both pipes reached EOF (or the
 * drain time passed), also when exec failed. The handle is freed right
 * after it returns.
 */
typedef void (*sw_proc_exit_fn)(const struct sw_proc_result *r, void *arg);

struct sw_proc_opts {
	/* Program and arguments, NULL-terminated; argv[0] without a slash is
	 * searched in the daemon's PATH (execvp semantics). Required. */
	const char *const *argv;
	/* The child's whole environment ("K=V", NULL-terminated); NULL
	 * inherits the daemon's. */
	const char *const *env;
	const char *cwd;          /* NULL: the daemon's */
	/* Written to the child's stdin, then stdin is closed; NULL means
	 * stdin is /dev/null. Copied. */
	const void *stdin_data;
	size_t stdin_len;
	long timeout_ms;          /* 0 = no limit */
	/* On timeout or kill: SIGTERM to the group, then SIGKILL after this
	 * long; 0 = SIGKILL at once. */
	long kill_grace_ms;
	sw_proc_output_fn on_output;  /* optional: without it output is dropped */
	sw_proc_exit_fn on_exit;      /* optional */
	void *arg;
};

#define SW_PROC_OPTS_INIT { 0 }

/* Create the manager (installs the SIGCHLD event on `base`). */
int sw_proc_mgr_new(struct sw_proc_mgr **out, struct event_base *base);

/*
 * SIGKILL every process group still running, reap them (this waits, but
 * only for processes already killed), free without calling callbacks.
 * NULL is a no-op. Not from inside a callback of this manager.
 */
void sw_proc_mgr_free(struct sw_proc_mgr *m);

/*
 * Start a process. Returns 0 and sets *out (may be NULL) to a handle valid
 * until on_exit returns; or <0 with the error slot set when no process
 * could be made (pipe/fork failure, bad options). An exec failure is
 * reported through on_exit, never before this returns.
 */
int sw_proc_spawn(struct sw_proc_mgr *m, const struct sw_proc_opts *o, struct sw_proc **out);

/*
 * Kill the process group (with the grace period of opts.kill_grace_ms).
 * on_exit still follows, with killed set. Repeated calls are no-ops; NULL
 * is a no-op.
 */
void sw_proc_kill(struct sw_proc *p);

/*
 * Forget the callbacks of `p`: neither on_output nor on_exit is called
 * again and the handle is invalid once this returns. The process itself is
 * left alone (kill it first if it should die) and is still reaped by the
 * manager. For owners that go away before their process does.
 */
void sw_proc_detach(struct sw_proc *p);

pid_t sw_proc_pid(const struct sw_proc *p);

/* Processes the manager is still tracking. */
size_t sw_proc_count(const struct sw_proc_mgr *m);

#endif
