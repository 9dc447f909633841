/*
 * runner.h - run one pipeline step: a list of shell commands in an image (or
 * on the host), with output streamed as it arrives and one result at the end.
 *
 * Backends:
 *   docker  the Docker Engine API (v1.41) over a unix socket: Docker itself
 *           or `podman system service`. Each step is one container, removed
 *           in every case (success, failure, timeout, cancel, error after
 *           create).
 *   local   a plain process `sh -e -c SCRIPT` in the workspace. NOT
 *           isolated: the step runs as the daemon's user with the daemon's
 *           file system and network; image, memory, CPU and network
 *           settings are ignored. For trusted repositories and tests only.
 *
 * The commands of a step run in order in one `sh -e -c` script (joined with
 * newlines), so the first failing command ends the step with its exit code
 * and later commands see earlier ones' shell state (cd, variables).
 *
 *     struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
 *     const char *cmds[] = { "make", "make test", NULL };
 *     s.image = "gcc:13";
 *     s.commands = cmds;
 *     s.workspace = "/var/lib/slipway/ws/12";
 *     s.timeout_ms = 600000;
 *     s.on_output = log_chunk;
 *     s.on_done = step_done;
 *     s.arg = step;
 *     if (sw_runner_start(r, &s, &step->handle) < 0) ...
 *
 * Everything runs on the event loop; no call here blocks.
 */
#ifndef SW_RUNNER_H
#define SW_RUNNER_H

#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

struct event_base;
struct sw_http;
struct sw_proc_mgr;
struct sw_runner;
struct sw_runner_step;

enum sw_step_outcome {
	SW_STEP_EXITED = 0,   /* the script ran to its end: see exit_code */
	SW_STEP_TIMED_OUT,    /* killed after spec.timeout_ms */
	SW_STEP_CANCELLED,    /* killed by sw_runner_cancel() */
	/* could not run (image missing, API error...), or the exit code
	 * could not be told for sure (docker: no final container state). */
	SW_STEP_ERROR,
};

struct sw_runner_result {
	enum sw_step_outcome outcome;
	/* Exit code of the script when outcome is SW_STEP_EXITED; for a
	 * killed step whatever the engine reported (137 for SIGKILL), or -1. */
	int exit_code;
	/* "" unless outcome is SW_STEP_ERROR (then the reason, e.g. "image
	 * busybox:x not found locally and pull failed: ..."); may also carry
	 * a note for other outcomes (a failed container removal). */
	const char *error_msg;
	/* The container id (docker) or "pid N" (local); "" if none was made. */
	const char *id;
	double duration_ms;   /* from sw_runner_start() to on_done */
};

enum { SW_STEP_STDOUT = 1, SW_STEP_STDERR = 2 };

/*
 * Output of the step: `stream` is SW_STEP_STDOUT or SW_STEP_STDERR. Bytes
 * arrive whole and in order within each stream. Between the two streams the
 * order is kept only roughly: the engine (docker) or the loop (local) reads
 * two pipes, so writes close together may swap; writes apart in time keep
 * their order. Never called after on_done. May cancel the step.
 */
typedef void (*sw_step_output_fn)(int stream, const char *p, size_t n, void *arg);

/*
 * Called exactly once per started step, after all output was delivered and
 * the container is gone. The step handle is invalid once it returns.
 */
typedef void (*sw_step_done_fn)(const struct sw_runner_result *r, void *arg);

/* What to run. Strings are copied by sw_runner_start(). */
struct sw_runner_spec {
	const char *image;              /* docker: required; local: ignored */
	const char *const *commands;    /* NULL-terminated; at least one */
	const char *const *env;         /* NULL-terminated "K=V"; may be NULL */
	/* Host directory. docker: bind-mounted read-write at `workdir`, which
	 * is also the working directory; local: the working directory. */
	const char *workspace;
	const char *workdir;            /* docker: NULL = "/workspace" */
	/* docker: more bind mounts, "HOST:CONTAINER" or "HOST:CONTAINER:ro"
	 * (HOST absolute), NULL-terminated; may be NULL. local: ignored (the
	 * step sees the host's file system anyway). */
	const char *const *binds;
	/* docker: the container's user, "UID:GID" or a name; NULL = the
	 * image's. local: ignored (the step runs as the daemon's user). */
	const char *user;
	/* docker: every step runs with no-new-privileges and all
	 * capabilities dropped (HostConfig.CapDrop ALL) but these, e.g.
	 * "CHOWN" (NULL-terminated; NULL = none). local: ignored. */
	const char *const *cap_add;
	int64_t pids_limit;             /* docker: HostConfig.PidsLimit; 0 = none */
	int64_t memory_bytes;           /* docker: HostConfig.Memory; 0 = none */
	int64_t nano_cpus;              /* docker: HostConfig.NanoCpus; 0 = none */
	/* docker: HostConfig.NetworkMode ("none", "bridge", "host", a network
	 * name); NULL leaves the engine's default. */
	const char *network;
	/* Limit from container start (docker: pull and create not counted)
	 * or process start (local); 0 = none. */
	long timeout_ms;
	/* Value of the container label `slipway.run` (e.g. "run=12 step=lint");
	 * NULL = "1". Used to find leftovers. */
	const char *label;
	sw_step_output_fn on_output;    /* optional */
	sw_step_done_fn on_done;        /* optional, but what else tells? */
	void *arg;
};

#define SW_RUNNER_SPEC_INIT { 0 }

/* Settings of the docker backend. */
struct sw_docker_opts {
	const char *socket;       /* NULL = "/var/run/docker.sock" */
	const char *api_version;  /* NULL = "v1.41" */
	/* Timeout of an image pull; 0 = 10 minutes. */
	long pull_timeout_ms;
	/* How long after the wait answered a container may take to show a
	 * final state (inspected again, at most every second) before the step
	 * is an error; 0 = 60 s. Podman on a loaded machine was seen showing
	 * "created" for more than 12 s after its wait answered. */
	long settle_ms;
};

#define SW_DOCKER_OPTS_INIT { 0 }

/*
 * Create a docker backend on `base` using `http` (both borrowed; they must
 * outlive the runner). Makes no request yet. `o` may be NULL for defaults.
 */
int sw_runner_docker_new(struct sw_runner **out, struct event_base *base, struct sw_http *http,
			 const struct sw_docker_opts *o);

/*
 * Create a local backend spawning through `procs` (borrowed; must outlive
 * the runner). The script's environment is PATH (the daemon's), HOME and
 * PWD (the workspace), then spec.env; nothing else of the daemon's
 * environment is passed on.
 */
int sw_runner_local_new(struct sw_runner **out, struct sw_proc_mgr *procs);

/*
 * Start a step. Returns 0 and sets *out (may be NULL) to a handle valid
 * until on_done returns; or <0 with the error slot set for a bad spec (no
 * commands, no image for docker) — then no callback follows. Failures after
 * that (a missing image) come through on_done, never before this returns.
 */
int sw_runner_start(struct sw_runner *r, const struct sw_runner_spec *spec,
		    struct sw_runner_step **out);

/*
 * Stop a step: kill its container or process group. on_done still follows
 * (after removal) with SW_STEP_CANCELLED, unless the step had already ended
 * on its own, in which case its real outcome is reported. NULL is a no-op.
 */
void sw_runner_cancel(struct sw_runner_step *s);

/* Steps started and not yet reported. */
size_t sw_runner_active(const struct sw_runner *r);

/*
 * Free the backend. Steps still running are killed without callbacks
 * (docker: a forced DELETE is sent and left to the HTTP client to finish;
 * local: the process groups are killed). For a clean shutdown cancel every
 * step and wait for on_done first. NULL is a no-op.
 */
void sw_runner_free(struct sw_runner *r);

/* Backend name: "docker" or "local". */
const char *sw_runner_kind(const struct sw_runner *r);

/*
 * Completion of the docker helpers below: `result` is >= 0 on success (a
 * count where one is meaningful) or <0 with `msg` saying why.
 */
typedef void (*sw_docker_done_fn)(int result, const char *msg, void *arg);

/*
 * Docker helper, for tests and setup: import a root file system tar (copied)
 * as image NAME:TAG with POST /images/create?fromSrc=-. `r` must be a docker
 * runner. Returns <0 at once for bad arguments, else reports through done.
 */
int sw_docker_import(struct sw_runner *r, const char *name, const char *tag,
		     const void *tar, size_t len, sw_docker_done_fn done, void *arg);

/*
 * Docker helper: force-remove every container carrying the label
 * slipway.run that this process did not create (leftovers of a daemon that
 * died mid-step; the docker runners of a process label their containers
 * slipway.instance with the process's own id); `result` is the number of
 * containers removed. Call at start-up; steps may start meanwhile
 * (recovered runs do).
 */
int sw_docker_remove_leftovers(struct sw_runner *r, sw_docker_done_fn done, void *arg);

/*
 * Docker helper: count containers carrying the label slipway.run (any
 * state); `result` is the count. For tests and health checks.
 */
int sw_docker_count_labelled(struct sw_runner *r, sw_docker_done_fn done, void *arg);

#endif
