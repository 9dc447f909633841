/*
 * test_runner.c - both runner backends against real peers: the local one
 * with real processes, the docker one with real containers through Podman.
 *
 * Podman: unless SLIPWAY_TEST_DOCKER_SOCK names a Docker API socket to use
 * (whose engine then needs the image, see `tests/lib/podman.sh image SOCK`),
 * the group setup runs `tests/lib/podman.sh start DIR` (a private service
 * and store under a temporary DIR, with the busybox image imported) and the
 * group teardown `tests/lib/podman.sh stop DIR`. The script is found under
 * $SRC (the repository root; default: the current directory, which is where
 * make runs tests).
 *
 * The same behavioural tests run on both backends; a few are docker-only
 * (missing image, leftover containers) or local-only (bad workspace).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <jansson.h>

#include "lib/buf.h"
#include "lib/http.h"
#include "lib/proc.h"
#include "runners/runner.h"
#include "tests/unit/slow.h"

#define IMAGE "slipway-busybox:latest"

struct env {
	struct event_base *base;
	struct sw_http *http;
	struct sw_proc_mgr *procs;
	struct sw_runner *docker;
	struct sw_runner *local;
	char tmp[64];           /* scratch: workspaces, podman's DIR */
	char podman_dir[128];   /* set when we started podman */
	char sock[256];
	struct event *guard;
};

static struct env E;

/* One backend per test: the state is the runner to use. */
#define DOCKER (&E.docker)
#define LOCAL (&E.local)

/* ---- recording a step -------------------------------------------------- */

struct rec {
	int done;
	struct sw_runner_result r;
	char msg[1024];
	char id[96];
	struct sw_buf out, err, all;   /* all: "1:" / "2:" tagged pieces */
	size_t pieces;
	const char *cancel_on;         /* cancel when stdout holds this */
	struct sw_runner_step *step;
	int cancelled;
};

static void rec_init(struct rec *rc)
{
	memset(rc, 0, sizeof(*rc));
	rc->out = (struct sw_buf)SW_BUF_INIT;
	rc->err = (struct sw_buf)SW_BUF_INIT;
	rc->all = (struct sw_buf)SW_BUF_INIT;
}

static void rec_release(struct rec *rc)
{
	sw_buf_release(&rc->out);
	sw_buf_release(&rc->err);
	sw_buf_release(&rc->all);
}

static void on_output(int stream, const char *p, size_t n, void *arg)
{
	struct rec *rc = arg;
	assert_int_equal(rc->done, 0);       /* never after on_done */
	sw_buf_add(stream == SW_STEP_STDERR ? &rc->err : &rc->out, p, n);
	/* Tag per line so order between streams is comparable. */
	for (size_t i = 0; i < n; i++) {
		if (rc->all.len == 0 || rc->all.ptr[rc->all.len - 1] == '\n')
			sw_buf_addf(&rc->all, "%d:", stream);
		sw_buf_addch(&rc->all, p[i]);
	}
	rc->pieces++;
	if (rc->cancel_on && !rc->cancelled && strstr(rc->out.ptr, rc->cancel_on)) {
		rc->cancelled = 1;
		sw_runner_cancel(rc->step);
	}
}

static void on_done(const struct sw_runner_result *r, void *arg)
{
	struct rec *rc = arg;
	rc->done++;
	rc->r = *r;
	snprintf(rc->msg, sizeof(rc->msg), "%s", r->error_msg);
	snprintf(rc->id, sizeof(rc->id), "%s", r->id);
	rc->r.error_msg = rc->msg;
	rc->r.id = rc->id;
}

static void guard_cb(evutil_socket_t fd, short what, void *arg)
{
	fprintf(stderr, "test loop ran too long\n");
}

static void run_until(int *flag, int secs)
{
	struct timeval tv = { sw_test_s(secs), 0 };
	evtimer_add(E.guard, &tv);
	while (!*flag && evtimer_pending(E.guard, NULL))
		event_base_loop(E.base, EVLOOP_ONCE);
	evtimer_del(E.guard);
}

/* A fresh workspace directory under the scratch dir. */
static void make_workspace(char *out, size_t n)
{
	static int seq;
	snprintf(out, n, "%s/ws%d", E.tmp, ++seq);
	assert_int_equal(mkdir(out, 0777), 0);
	chmod(out, 0777);
}

/* A busybox step spec reporting into rc (started by the caller). */
static void spec_for(struct sw_runner_spec *s, struct rec *rc, const char **cmds)
{
	rec_init(rc);
	s->commands = cmds;
	s->image = IMAGE;
	s->network = "none";
	s->label = "test";
	s->on_output = on_output;
	s->on_done = on_done;
	s->arg = rc;
}

static void run_step(struct sw_runner *r, struct sw_runner_spec *s, struct rec *rc, int secs)
{
	if (!s->image)
		s->image = IMAGE;
	if (!s->network)
		s->network = "none";
	s->on_output = on_output;
	s->on_done = on_done;
	s->arg = rc;
	if (!s->label)
		s->label = "test";
	assert_int_equal(sw_runner_start(r, s, &rc->step), 0);
	assert_int_equal(rc->done, 0);
	run_until(&rc->done, secs);
	assert_int_equal(rc->done, 1);
}

/* Containers with the slipway.run label, through the API. */
struct count { int done, result; char msg[256]; };

static void counted(int result, const char *msg, void *arg)
{
	struct count *c = arg;
	c->done = 1;
	c->result = result;
	snprintf(c->msg, sizeof(c->msg), "%s", msg);
}

static int labelled_containers(void)
{
	struct count c = { 0 };
	assert_int_equal(sw_docker_count_labelled(E.docker, counted, &c), 0);
	run_until(&c.done, 30);
	assert_true(c.done);
	if (c.result < 0)
		fail_msg("count containers: %s", c.msg);
	return c.result;
}

static int is_docker(void **state)
{
	return *state == DOCKER;
}

static struct sw_runner *runner(void **state)
{
	return *(struct sw_runner **)*state;
}

/* ---- group setup --------------------------------------------------------- */

static int group_setup(void **state)
{
	const char *ext = getenv("SLIPWAY_TEST_DOCKER_SOCK");
	const char *src = getenv("SRC");
	char cmd[1024];

	snprintf(E.tmp, sizeof(E.tmp), "/tmp/sw-runner-XXXXXX");
	if (!mkdtemp(E.tmp))
		return -1;
	chmod(E.tmp, 0755);
	if (ext && *ext) {
		snprintf(E.sock, sizeof(E.sock), "%s", ext);
	} else {
		FILE *p;
		snprintf(E.podman_dir, sizeof(E.podman_dir), "%s/podman", E.tmp);
		snprintf(cmd, sizeof(cmd), "%s/tests/lib/podman.sh start %s", src ? src : ".",
			 E.podman_dir);
		p = popen(cmd, "r");
		if (!p || !fgets(E.sock, sizeof(E.sock), p)) {
			fprintf(stderr, "cannot start podman with: %s\n", cmd);
			if (p)
				pclose(p);
			return -1;
		}
		if (pclose(p) != 0)
			return -1;
		E.sock[strcspn(E.sock, "\n")] = '\0';
	}
	E.base = event_base_new();
	E.guard = evtimer_new(E.base, guard_cb, NULL);
	if (sw_http_new(&E.http, E.base) < 0 || sw_proc_mgr_new(&E.procs, E.base) < 0)
		return -1;
	struct sw_docker_opts o = SW_DOCKER_OPTS_INIT;
	o.socket = E.sock;
	o.pull_timeout_ms = sw_test_ms(30000);
	sw_runner_docker_new(&E.docker, E.base, E.http, &o);
	sw_runner_local_new(&E.local, E.procs);
	return 0;
}

static int group_teardown(void **state)
{
	char cmd[1024];
	const char *src = getenv("SRC");

	sw_runner_free(E.docker);
	sw_runner_free(E.local);
	sw_http_free(E.http);
	sw_proc_mgr_free(E.procs);
	if (E.guard)
		event_free(E.guard);
	if (E.base)
		event_base_free(E.base);
	if (E.podman_dir[0]) {
		snprintf(cmd, sizeof(cmd), "%s/tests/lib/podman.sh stop %s", src ? src : ".",
			 E.podman_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "podman stop failed\n");
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", E.tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", E.tmp);
	return 0;
}

/* ---- tests for both backends ----------------------------------------- */

static void test_stdout_stderr(void **state)
{
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	struct rec rc;
	const char *cmds[] = { "echo one", "echo two >&2", "sleep 0.1", "echo three",
			       "printf 'no newline' >&2", NULL };
	struct timespec t0, t1;

	rec_init(&rc);
	s.commands = cmds;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_step(runner(state), &s, &rc, 60);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(rc.r.outcome, SW_STEP_EXITED);
	assert_int_equal(rc.r.exit_code, 0);
	assert_string_equal(rc.msg, "");
	assert_string_equal(rc.out.ptr, "one\nthree\n");
	assert_string_equal(rc.err.ptr, "two\nno newline");
	/* The sleep separates the streams in time, so order is defined. */
	assert_non_null(strstr(rc.all.ptr, "2:two\n1:three\n"));
	assert_true(rc.id[0] != '\0');
	fprintf(stderr, "  %s: trivial step took %.0f ms (start to on_done)\n",
		sw_runner_kind(runner(state)),
		(double)(t1.tv_sec - t0.tv_sec) * 1000 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	rec_release(&rc);
	if (is_docker(state))
		assert_int_equal(labelled_containers(), 0);
}

static void test_exit_code(void **state)
{
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	struct rec rc;
	const char *cmds[] = { "echo before", "exit 3", "echo after", NULL };

	rec_init(&rc);
	s.commands = cmds;
	run_step(runner(state), &s, &rc, 60);
	assert_int_equal(rc.r.outcome, SW_STEP_EXITED);
	assert_int_equal(rc.r.exit_code, 3);
	assert_string_equal(rc.out.ptr, "before\n");
	rec_release(&rc);

	/* sh -e: a failing command stops the script with its status. */
	const char *cmds2[] = { "echo a", "false", "echo b", NULL };
	rec_init(&rc);
	s.commands = cmds2;
	run_step(runner(state), &s, &rc, 60);
	assert_int_equal(rc.r.outcome, SW_STEP_EXITED);
	assert_int_equal(rc.r.exit_code, 1);
	assert_string_equal(rc.out.ptr, "a\n");
	rec_release(&rc);
	if (is_docker(state))
		assert_int_equal(labelled_containers(), 0);
}

static void test_env_and_workspace(void **state)
{
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	struct rec rc;
	char ws[256], path[300], want[300];
	struct sw_buf b = SW_BUF_INIT;
	const char *env[] = { "FOO=bar baz", "SECOND=2", NULL };
	const char *cmds[] = { "cd sub", "echo \"$FOO/$SECOND\" > ../out.txt", "cat ../in.txt",
			       "pwd", NULL };

	rec_init(&rc);
	make_workspace(ws, sizeof(ws));
	snprintf(path, sizeof(path), "%s/sub", ws);
	assert_int_equal(mkdir(path, 0777), 0);
	snprintf(path, sizeof(path), "%s/in.txt", ws);
	FILE *f = fopen(path, "w");
	fputs("from host\n", f);
	fclose(f);
	s.commands = cmds;
	s.env = env;
	s.workspace = ws;
	s.memory_bytes = 64 * 1024 * 1024;
	s.nano_cpus = 500000000;
	run_step(runner(state), &s, &rc, 60);
	assert_int_equal(rc.r.outcome, SW_STEP_EXITED);
	assert_int_equal(rc.r.exit_code, 0);
	/* Earlier commands' shell state (cd) holds for later ones. */
	snprintf(want, sizeof(want), "from host\n%s/sub\n", is_docker(state) ? "/workspace" : ws);
	assert_string_equal(rc.out.ptr, want);
	snprintf(path, sizeof(path), "%s/out.txt", ws);
	assert_int_equal(sw_buf_read_file(&b, path), 0);
	assert_string_equal(b.ptr, "bar baz/2\n");
	sw_buf_release(&b);
	rec_release(&rc);
}

static void test_timeout(void **state)
{
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	struct rec rc;
	const char *cmds[] = { "echo started", "sleep 30", "echo never", NULL };
	struct timespec t0, t1;

	rec_init(&rc);
	s.commands = cmds;
	s.timeout_ms = 1000;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_step(runner(state), &s, &rc, 30);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(rc.r.outcome, SW_STEP_TIMED_OUT);
	assert_string_equal(rc.out.ptr, "started\n");
	/* killed, not waited for: well before the 30 s sleep would end (a
	 * container's create, kill and removal take seconds under load) */
	assert_true(t1.tv_sec - t0.tv_sec < 30);
	rec_release(&rc);
	if (is_docker(state))
		assert_int_equal(labelled_containers(), 0);
}

/* Processes left in the background by a step die with it (local). */
static void test_background_child(void **state)
{
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	struct rec rc;
	const char *cmds[] = { "sleep 30 &", "echo left", NULL };
	struct timespec t0, t1;

	rec_init(&rc);
	s.commands = cmds;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_step(runner(state), &s, &rc, 30);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(rc.r.outcome, SW_STEP_EXITED);
	assert_string_equal(rc.out.ptr, "left\n");
	/* not held by the background sleep (30 s) */
	assert_true(t1.tv_sec - t0.tv_sec < 30);
	rec_release(&rc);
}

static void test_cancel(void **state)
{
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	struct rec rc;
	const char *cmds[] = { "echo ready", "sleep 30", "echo never", NULL };

	rec_init(&rc);
	rc.cancel_on = "ready";
	s.commands = cmds;
	run_step(runner(state), &s, &rc, 30);
	assert_true(rc.cancelled);
	assert_int_equal(rc.r.outcome, SW_STEP_CANCELLED);
	assert_string_equal(rc.out.ptr, "ready\n");
	rec_release(&rc);
	if (is_docker(state))
		assert_int_equal(labelled_containers(), 0);
}

/* Cancel right after start, before the step got anywhere. */
static void test_cancel_early(void **state)
{
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	struct rec rc;
	const char *cmds[] = { "sleep 30", NULL };

	spec_for(&s, &rc, cmds);
	assert_int_equal(sw_runner_start(runner(state), &s, &rc.step), 0);
	sw_runner_cancel(rc.step);
	assert_int_equal(rc.done, 0);         /* reported from the loop */
	run_until(&rc.done, 30);
	assert_int_equal(rc.done, 1);
	assert_int_equal(rc.r.outcome, SW_STEP_CANCELLED);
	rec_release(&rc);
	assert_int_equal(sw_runner_active(runner(state)), 0);
	if (is_docker(state))
		assert_int_equal(labelled_containers(), 0);
}

/* ~1 MB on stdout arrives whole and in order. */
static void test_large_output(void **state)
{
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	struct rec rc;
	const char *cmds[] = { "seq 1 200000", "echo end >&2", NULL };
	struct sw_buf want = SW_BUF_INIT;

	rec_init(&rc);
	s.commands = cmds;
	run_step(runner(state), &s, &rc, 120);
	assert_int_equal(rc.r.outcome, SW_STEP_EXITED);
	assert_int_equal(rc.r.exit_code, 0);
	for (int i = 1; i <= 200000; i++)
		sw_buf_addf(&want, "%d\n", i);
	assert_true(want.len > 1000000);
	assert_int_equal(rc.out.len, want.len);
	assert_memory_equal(rc.out.ptr, want.ptr, want.len);
	assert_string_equal(rc.err.ptr, "end\n");
	assert_true(rc.pieces > 10);
	fprintf(stderr, "  %s: %zu bytes in %zu pieces\n", sw_runner_kind(runner(state)),
		rc.out.len, rc.pieces);
	sw_buf_release(&want);
	rec_release(&rc);
}

/* Many small writes alternating between the streams: each stream whole
 * and in order. */
static void test_many_frames(void **state)
{
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	struct rec rc;
	const char *cmds[] = { "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo out$i; "
			       "echo err$i >&2; done", NULL };
	struct sw_buf wo = SW_BUF_INIT, we = SW_BUF_INIT;

	rec_init(&rc);
	s.commands = cmds;
	run_step(runner(state), &s, &rc, 120);
	assert_int_equal(rc.r.outcome, SW_STEP_EXITED);
	for (int i = 1; i <= 2000; i++) {
		sw_buf_addf(&wo, "out%d\n", i);
		sw_buf_addf(&we, "err%d\n", i);
	}
	assert_string_equal(rc.out.ptr, wo.ptr);
	assert_string_equal(rc.err.ptr, we.ptr);
	sw_buf_release(&wo);
	sw_buf_release(&we);
	rec_release(&rc);
}

/* Several steps at once on one loop. */
static void test_concurrent_steps(void **state)
{
	enum { N = 4 };
	struct rec rc[N];
	char cmd[N][64];
	int all = 0;

	for (int i = 0; i < N; i++) {
		struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
		const char *cmds[] = { cmd[i], NULL };
		rec_init(&rc[i]);
		snprintf(cmd[i], sizeof(cmd[i]), "sleep 0.2; echo step%d; exit %d", i, i);
		s.commands = cmds;
		s.image = IMAGE;
		s.network = "none";
		s.label = "test";
		s.on_output = on_output;
		s.on_done = on_done;
		s.arg = &rc[i];
		assert_int_equal(sw_runner_start(runner(state), &s, &rc[i].step), 0);
	}
	assert_int_equal(sw_runner_active(runner(state)), N);
	struct timeval tv = { sw_test_s(60), 0 };
	evtimer_add(E.guard, &tv);
	while (evtimer_pending(E.guard, NULL)) {
		all = 1;
		for (int i = 0; i < N; i++)
			all &= rc[i].done == 1;
		if (all)
			break;
		event_base_loop(E.base, EVLOOP_ONCE);
	}
	evtimer_del(E.guard);
	assert_true(all);
	for (int i = 0; i < N; i++) {
		char want[32];
		snprintf(want, sizeof(want), "step%d\n", i);
		assert_int_equal(rc[i].r.outcome, SW_STEP_EXITED);
		assert_int_equal(rc[i].r.exit_code, i);
		assert_string_equal(rc[i].out.ptr, want);
		rec_release(&rc[i]);
	}
}

/*
 * Hundreds of short steps, failing and passing, several at once: every exit
 * code must come back as the script's (issue 11: Podman 4.3 reported two
 * `exit 7` of about 200 as 0). SW_RUNNER_STRESS sets how many (default 240).
 */
static void test_stress_exit_codes(void **state)
{
	enum { PAR = 8 };
	const char *env = getenv("SW_RUNNER_STRESS");
	int n = env && atoi(env) > 0 ? atoi(env) : 240;
	struct rec *rc = sw_calloc((size_t)n, sizeof(*rc));
	char (*cmd)[96] = sw_calloc((size_t)n, sizeof(*cmd));
	const char *(*cmds)[2] = sw_calloc((size_t)n, sizeof(*cmds));
	int next = 0, done = 0, wrong = 0, errors = 0, nonzero = 0;
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* a lost step, not a slow engine: Podman on a loaded machine took
	 * 510 s for what takes 90 s on a quiet one */
	struct timeval tv = { sw_test_s(900), 0 };
	evtimer_add(E.guard, &tv);
	while (done < n && evtimer_pending(E.guard, NULL)) {
		while (next < n && (int)sw_runner_active(runner(state)) < PAR) {
			struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
			int i = next++;
			/* every third passes; the others exit 1..199 or fail with
			 * `false` under sh -e (1) */
			if (i % 3 == 0)
				snprintf(cmd[i], sizeof(cmd[i]), "echo ok%d", i);
			else if (i % 7 == 1)
				snprintf(cmd[i], sizeof(cmd[i]), "echo f%d; false; echo not here", i);
			else
				snprintf(cmd[i], sizeof(cmd[i]), "echo e%d; exit %d", i, 1 + i % 199);
			cmds[i][0] = cmd[i];
			spec_for(&s, &rc[i], cmds[i]);
			assert_int_equal(sw_runner_start(runner(state), &s, &rc[i].step), 0);
		}
		event_base_loop(E.base, EVLOOP_ONCE);
		done = 0;
		for (int i = 0; i < next; i++)
			done += rc[i].done;
	}
	evtimer_del(E.guard);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(done, n);
	for (int i = 0; i < n; i++) {
		int want = i % 3 == 0 ? 0 : i % 7 == 1 ? 1 : 1 + i % 199;
		assert_int_equal(rc[i].done, 1);
		if (rc[i].r.outcome == SW_STEP_ERROR) {
			/* allowed (slipway could not be sure), never a wrong code */
			errors++;
			fprintf(stderr, "  step %d: error: %s\n", i, rc[i].msg);
		} else if (rc[i].r.outcome != SW_STEP_EXITED || rc[i].r.exit_code != want) {
			wrong++;
			fprintf(stderr, "  step %d: outcome %d exit %d, want exit %d (%s)\n", i,
				(int)rc[i].r.outcome, rc[i].r.exit_code, want, rc[i].msg);
		}
		nonzero += want != 0;
		rec_release(&rc[i]);
	}
	fprintf(stderr, "  %s: %d steps (%d failing), %d at once: %.1f s, %d errors, %d wrong\n",
		sw_runner_kind(runner(state)), n, nonzero, PAR,
		(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, errors,
		wrong);
	assert_int_equal(wrong, 0);
	/* Errors would be honest but mean the checks give up too soon. */
	assert_int_equal(errors, 0);
	free(rc);
	free(cmd);
	free(cmds);
	if (is_docker(state))
		assert_int_equal(labelled_containers(), 0);
}

/* ---- docker only ----------------------------------------------------- */

static void test_missing_image(void **state)
{
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	struct rec rc;
	const char *cmds[] = { "true", NULL };

	rec_init(&rc);
	s.commands = cmds;
	s.image = "busybox:x";
	run_step(E.docker, &s, &rc, 60);
	assert_int_equal(rc.r.outcome, SW_STEP_ERROR);
	assert_non_null(strstr(rc.msg, "image busybox:x not found locally and pull failed: "));
	assert_true(strlen(rc.msg) > strlen("image busybox:x not found locally and pull failed: "));
	assert_int_equal(rc.pieces, 0);
	rec_release(&rc);
}

static void test_bad_spec(void **state)
{
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	const char *cmds[] = { "true", NULL };

	assert_int_equal(sw_runner_start(E.docker, &s, NULL), SW_EINVALID);   /* no commands */
	s.commands = cmds;
	assert_int_equal(sw_runner_start(E.docker, &s, NULL), SW_EINVALID);   /* no image */
	s.image = "bad image?x=1";
	assert_int_equal(sw_runner_start(E.docker, &s, NULL), SW_EINVALID);
	s.image = IMAGE;
	s.workspace = "/nonexistent/dir";
	assert_true(sw_runner_start(E.docker, &s, NULL) < 0);
	assert_int_equal(sw_runner_active(E.docker), 0);
}

/* More binds (at the host's own path, and read-only), another working
 * directory and the user: what Terraform's containers use. */
static void test_binds_and_user(void **state)
{
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	struct rec rc;
	char ws[256], extra[256], ro[256], path[300], bind_rw[600], bind_ro[600], want[600];
	char cmd_rw[400], cmd_ro[400];
	struct sw_buf b = SW_BUF_INIT;
	struct stat st;

	rec_init(&rc);
	make_workspace(ws, sizeof(ws));
	make_workspace(extra, sizeof(extra));
	make_workspace(ro, sizeof(ro));
	snprintf(bind_rw, sizeof(bind_rw), "%s:%s", extra, extra);
	snprintf(bind_ro, sizeof(bind_ro), "%s:/ro:ro", ro);
	snprintf(cmd_rw, sizeof(cmd_rw), "id -u > '%s/uid'", extra);
	snprintf(cmd_ro, sizeof(cmd_ro), "if touch /ro/x 2>/dev/null; then echo writable; else echo read-only; fi");
	const char *binds[] = { bind_rw, bind_ro, NULL };
	const char *cmds[] = { "pwd", cmd_rw, cmd_ro, "touch here", NULL };
	s.commands = cmds;
	s.workspace = ws;
	s.workdir = ws;          /* the checkout at its host path */
	s.binds = binds;
	s.user = "4321:4321";
	run_step(E.docker, &s, &rc, 60);
	assert_int_equal(rc.r.outcome, SW_STEP_EXITED);
	assert_int_equal(rc.r.exit_code, 0);
	snprintf(want, sizeof(want), "%s\nread-only\n", ws);
	assert_string_equal(rc.out.ptr, want);
	snprintf(path, sizeof(path), "%s/uid", extra);
	assert_int_equal(sw_buf_read_file(&b, path), 0);
	assert_string_equal(b.ptr, "4321\n");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 4321);
	snprintf(path, sizeof(path), "%s/here", ws);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 4321);
	sw_buf_release(&b);
	rec_release(&rc);

	/* A bind that is not /HOST:/CONTAINER is refused before anything runs. */
	const char *bad[] = { "relative:/x", NULL };
	s.binds = bad;
	assert_int_equal(sw_runner_start(E.docker, &s, NULL), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "bind relative:/x"));
	assert_int_equal(sw_runner_active(E.docker), 0);
}

/* A container left by a "crashed daemon" is found and removed. */
struct created { int done; char id[128]; };

static void leftover_created(struct sw_http_result *r, void *arg)
{
	struct created *c = arg;
	const char *p = strstr(r->body->ptr, "\"Id\":\"");
	c->done = 1;
	assert_int_equal(r->status, 201);
	assert_non_null(p);
	snprintf(c->id, sizeof(c->id), "%.64s", p + 6);
}

static void test_leftovers(void **state)
{
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	struct created c = { 0 };
	struct count n = { 0 };
	const char *body = "{\"Image\":\"" IMAGE "\",\"Cmd\":[\"sleep\",\"30\"],"
			   "\"Labels\":{\"slipway.run\":\"orphan\"}}";
	const char *hdrs[] = { "Content-Type: application/json", NULL };

	o.url = "http://d/v1.41/containers/create";
	o.unix_socket = E.sock;
	o.headers = hdrs;
	o.body = body;
	o.body_len = strlen(body);
	o.on_done = leftover_created;
	o.arg = &c;
	assert_int_equal(sw_http_start(E.http, &o, NULL), 0);
	run_until(&c.done, 30);
	assert_int_equal(labelled_containers(), 1);

	/* A step of ours running meanwhile (a recovered run, at start-up) is
	 * not a leftover: only the other daemon's container goes. */
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	struct rec rc;
	const char *cmds[] = { "echo up", "sleep 30", NULL };
	spec_for(&s, &rc, cmds);
	assert_int_equal(sw_runner_start(E.docker, &s, &rc.step), 0);
	for (int i = 0; i < 300 && !strstr(rc.out.ptr ? rc.out.ptr : "", "up"); i++)
		event_base_loop(E.base, EVLOOP_ONCE);
	assert_non_null(strstr(rc.out.ptr, "up"));
	assert_int_equal(labelled_containers(), 2);

	assert_int_equal(sw_docker_remove_leftovers(E.docker, counted, &n), 0);
	run_until(&n.done, 30);
	assert_int_equal(n.result, 1);
	assert_int_equal(labelled_containers(), 1);
	assert_int_equal(rc.done, 0);            /* ours still running */
	sw_runner_cancel(rc.step);
	run_until(&rc.done, 30);
	assert_int_equal(rc.r.outcome, SW_STEP_CANCELLED);
	rec_release(&rc);
	assert_int_equal(labelled_containers(), 0);
}

static void test_import(void **state)
{
	struct count c = { 0 };
	/* Not a tar: the engine refuses it and the message comes back. */
	assert_int_equal(sw_docker_import(E.docker, "junk", "1", "not a tar", 9, counted, &c), 0);
	run_until(&c.done, 30);
	assert_true(c.result < 0);
	assert_true(c.msg[0] != '\0');
	assert_int_equal(sw_docker_import(E.local, "junk", "1", "x", 1, counted, &c), SW_EINVALID);
}

/* ---- docker: isolation ------------------------------------------------ */

/* A TCP service on 0.0.0.0 of the host, as a fork's stage must not reach. */
struct host_service {
	struct evconnlistener *l;
	int port, accepted;
	char ip[INET_ADDRSTRLEN];   /* a non-loopback address of the host */
};

static void host_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *a, int n,
			void *arg)
{
	struct host_service *h = arg;
	h->accepted++;
	evutil_closesocket(fd);
}

static void host_service_start(struct host_service *h)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };   /* INADDR_ANY, port 0 */
	socklen_t len = sizeof(sin);
	struct ifaddrs *ifs, *i;

	memset(h, 0, sizeof(*h));
	h->l = evconnlistener_new_bind(E.base, host_accept, h, LEV_OPT_CLOSE_ON_FREE |
				       LEV_OPT_REUSEABLE, 16, (struct sockaddr *)&sin, sizeof(sin));
	assert_non_null(h->l);
	getsockname(evconnlistener_get_fd(h->l), (struct sockaddr *)&sin, &len);
	h->port = ntohs(sin.sin_port);
	assert_int_equal(getifaddrs(&ifs), 0);
	for (i = ifs; i && !*h->ip; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
		    !(i->ifa_flags & IFF_LOOPBACK) && (i->ifa_flags & IFF_UP))
			inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, h->ip,
				  sizeof(h->ip));
	freeifaddrs(ifs);
	if (!*h->ip)
		fail_msg("the host has no non-loopback IPv4 address to test with");
}

/* Run `nc` from a step on `network` to ADDR:port; its stdout. */
static void try_connect(struct host_service *h, const char *network, const char *addr,
			char *out, size_t n)
{
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	struct rec rc;
	char cmd[300];
	const char *cmds[] = { cmd, NULL };

	snprintf(cmd, sizeof(cmd), "if nc -w 5 %s %d </dev/null; then echo reached; "
		 "else echo blocked; fi", addr, h->port);
	rec_init(&rc);
	s.commands = cmds;
	s.network = network;
	run_step(E.docker, &s, &rc, 60);
	assert_int_equal(rc.r.outcome, SW_STEP_EXITED);
	snprintf(out, n, "%s", rc.out.ptr);
	rec_release(&rc);
}

/*
 * Every step: no-new-privileges, all capabilities dropped but those asked
 * for; on network "none" (what pull requests get by default) neither the
 * host's address nor the bridge's gateway answers, while a step on the
 * bridge reaches the same service (so the test can see a connection).
 */
static void test_isolation(void **state)
{
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	struct rec rc;
	struct host_service h;
	const char *cmds[] = { "grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status",
			       "id -u", NULL };
	const char *caps[] = { "CHOWN", "SETUID", NULL };
	char out[256];

	rec_init(&rc);
	s.commands = cmds;
	s.cap_add = caps;
	s.pids_limit = 64;
	run_step(E.docker, &s, &rc, 60);
	assert_int_equal(rc.r.outcome, SW_STEP_EXITED);
	assert_int_equal(rc.r.exit_code, 0);
	/* CAP_CHOWN is bit 0, CAP_SETUID bit 7 */
	assert_string_equal(rc.out.ptr, "CapPrm:\t0000000000000081\nCapEff:\t0000000000000081\n"
			    "NoNewPrivs:\t1\n0\n");
	rec_release(&rc);

	rec_init(&rc);
	s.cap_add = NULL;
	run_step(E.docker, &s, &rc, 60);
	assert_int_equal(rc.r.exit_code, 0);
	assert_string_equal(rc.out.ptr, "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
			    "NoNewPrivs:\t1\n0\n");
	rec_release(&rc);

	host_service_start(&h);
	try_connect(&h, "none", h.ip, out, sizeof(out));
	assert_string_equal(out, "blocked\n");
	try_connect(&h, "none", "10.88.0.1", out, sizeof(out));   /* podman's bridge gateway */
	assert_string_equal(out, "blocked\n");
	assert_int_equal(h.accepted, 0);
	try_connect(&h, "bridge", h.ip, out, sizeof(out));
	assert_string_equal(out, "reached\n");
	assert_int_equal(h.accepted, 1);
	evconnlistener_free(h.l);
}

/* ---- docker: engine answers Podman cannot be made to give -------------- */

/*
 * A small Docker API server on a unix socket, for the answers a real engine
 * gives only now and then (Podman 4.3: a wait answering 0 for a container
 * that exited 7, an inspect saying exited with ExitCode 0 but no FinishedAt).
 * It plays one container "fakec0ffee" whose attach stream carries "hi\n";
 * successive waits and inspects take the next answer of their list (the
 * last one repeats). NULL in a list means 404.
 */
#define FAKE_ID "fakec0ffee"

struct fake {
	struct evhttp *http;
	char sock[300];
	struct sw_runner *runner;
	const char *const *waits;
	const char *const *inspects;
	int nwait, ninspect, ndelete;
	const char *wrapper_says;   /* written to the exit file at create, as the wrapper would */
	char exit_file[300];        /* the host side of /.slipway-exit in the create body */
};

static struct fake F;

/* Note the exit file the create body binds, and write wrapper_says to it. */
static void fake_created(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	json_t *j = json_loadb((const char *)evbuffer_pullup(in, -1), evbuffer_get_length(in), 0,
			       NULL);
	json_t *binds = json_object_get(json_object_get(j, "HostConfig"), "Binds"), *b;
	size_t i;

	F.exit_file[0] = 0;
	json_array_foreach(binds, i, b) {
		const char *v = json_string_value(b), *c = v ? strstr(v, ":/.slipway-exit:") : NULL;
		if (c)
			snprintf(F.exit_file, sizeof(F.exit_file), "%.*s", (int)(c - v), v);
	}
	if (F.wrapper_says && F.exit_file[0]) {
		FILE *f = fopen(F.exit_file, "w");
		assert_non_null(f);
		fputs(F.wrapper_says, f);
		fclose(f);
	}
	json_decref(j);
}

static const char *fake_next(const char *const *list, int *i)
{
	const char *a;
	int n = 0;
	while (list[n] && strcmp(list[n], "END"))
		n++;
	a = *i < n ? list[*i] : list[n - 1];
	(*i)++;
	return strcmp(a, "404") ? a : NULL;
}

static void fake_reply(struct evhttp_request *req, int code, const char *body)
{
	struct evbuffer *b = evbuffer_new();
	if (body)
		evbuffer_add(b, body, strlen(body));
	evhttp_send_reply(req, code, code < 300 ? "OK" : "Error", b);
	evbuffer_free(b);
}

static int starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

static void fake_cb(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	const char *p = strstr(uri, "/v1.41");
	const char *a;

	p = p ? p + 6 : uri;
	if (starts(p, "/images/")) {
		fake_reply(req, 200, "{}");
	} else if (!strcmp(p, "/containers/create")) {
		fake_created(req);
		fake_reply(req, 201, "{\"Id\":\"" FAKE_ID "\"}");
	} else if (starts(p, "/containers/" FAKE_ID "/attach?")) {
		struct evbuffer *b = evbuffer_new();
		evbuffer_add(b, "\1\0\0\0\0\0\0\3hi\n", 11);
		evhttp_send_reply(req, 200, "OK", b);
		evbuffer_free(b);
	} else if (!strcmp(p, "/containers/" FAKE_ID "/start")) {
		fake_reply(req, 204, NULL);
	} else if (!strcmp(p, "/containers/" FAKE_ID "/wait")) {
		a = fake_next(F.waits, &F.nwait);
		fake_reply(req, a ? 200 : 404, a ? a : "{\"message\":\"no such container\"}");
	} else if (!strcmp(p, "/containers/" FAKE_ID "/json")) {
		a = fake_next(F.inspects, &F.ninspect);
		fake_reply(req, a ? 200 : 404, a ? a : "{\"message\":\"no such container\"}");
	} else if (starts(p, "/containers/" FAKE_ID "?") &&
		   evhttp_request_get_command(req) == EVHTTP_REQ_DELETE) {
		F.ndelete++;
		fake_reply(req, 204, NULL);
	} else {
		fake_reply(req, 404, "{\"message\":\"fake engine: no such path\"}");
	}
}

static int fake_setup(void **state)
{
	struct sockaddr_un sun;
	struct sw_docker_opts o = SW_DOCKER_OPTS_INIT;
	int fd;

	memset(&F, 0, sizeof(F));
	snprintf(F.sock, sizeof(F.sock), "%s/fake.sock", E.tmp);
	unlink(F.sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", F.sock);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(fd, 16), 0);
	F.http = evhttp_new(E.base);
	evhttp_set_allowed_methods(F.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_DELETE);
	evhttp_set_gencb(F.http, fake_cb, NULL);
	struct evconnlistener *l = evconnlistener_new(E.base, NULL, NULL,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	assert_non_null(l);
	assert_non_null(evhttp_bind_listener(F.http, l));
	o.socket = F.sock;
	o.settle_ms = 3000;   /* the fake answers at once: 3 s of "not final" is plenty */
	assert_int_equal(sw_runner_docker_new(&F.runner, E.base, E.http, &o), 0);
	return 0;
}

static int fake_teardown(void **state)
{
	sw_runner_free(F.runner);
	evhttp_free(F.http);
	unlink(F.sock);
	return 0;
}

/* Run one step against the fake with these answers. */
static void fake_step(struct rec *rc, const char *const *waits, const char *const *inspects)
{
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	const char *cmds[] = { "exit 7", NULL };

	F.waits = waits;
	F.inspects = inspects;
	F.nwait = F.ninspect = F.ndelete = 0;
	F.exit_file[0] = 0;
	rec_init(rc);
	s.commands = cmds;
	run_step(F.runner, &s, rc, 60);
	assert_string_equal(rc->out.ptr, "hi\n");
	assert_int_equal(F.ndelete, 1);      /* removed in every case */
}

/* One step against the fake that must end as an error saying `want`. */
static void fake_error(const char *const *waits, const char *const *inspects, const char *want)
{
	struct rec rc;

	fake_step(&rc, waits, inspects);
	assert_int_equal(rc.r.outcome, SW_STEP_ERROR);
	if (!strstr(rc.msg, want))
		fail_msg("error '%s' does not say '%s'", rc.msg, want);
	rec_release(&rc);
}

#define EXITED(code) "{\"Id\":\"" FAKE_ID "\",\"State\":{\"Status\":\"exited\",\"Running\":false," \
	"\"ExitCode\":" #code ",\"StartedAt\":\"2026-12-03T20:00:00.1Z\"," \
	"\"FinishedAt\":\"2026-12-03T20:00:01.5Z\"}}"
#define RUNNING "{\"Id\":\"" FAKE_ID "\",\"State\":{\"Status\":\"running\",\"Running\":true," \
	"\"ExitCode\":0,\"StartedAt\":\"2026-12-03T20:00:00.1Z\"," \
	"\"FinishedAt\":\"0001-01-01T00:00:00Z\"}}"
/* What Podman 4.3 answered once: not running, ExitCode 0, never finished. */
#define NOT_FINISHED "{\"Id\":\"" FAKE_ID "\",\"State\":{\"Status\":\"exited\",\"Running\":false," \
	"\"ExitCode\":0,\"StartedAt\":\"2026-12-03T20:00:00.1Z\"," \
	"\"FinishedAt\":\"0001-01-01T00:00:00Z\"}}"
#define CREATED "{\"Id\":\"" FAKE_ID "\",\"State\":{\"Status\":\"created\",\"Running\":false," \
	"\"ExitCode\":0,\"StartedAt\":\"0001-01-01T00:00:00Z\"," \
	"\"FinishedAt\":\"0001-01-01T00:00:00Z\"}}"
#define UNSURE_WAIT "{\"StatusCode\":0,\"Error\":{\"Message\":\"getting exit code of container " \
	FAKE_ID " from DB: no such exit code (container in state running)\"}}"

/* The wait and a final state agree: believed, with one inspect. */
static void test_fake_agree(void **state)
{
	struct rec rc;
	const char *w7[] = { "{\"StatusCode\":7}", NULL }, *i7[] = { EXITED(7), NULL };
	const char *w0[] = { "{\"StatusCode\":0,\"Error\":null}", NULL }, *i0[] = { EXITED(0), NULL };

	fake_step(&rc, w7, i7);
	assert_int_equal(rc.r.outcome, SW_STEP_EXITED);
	assert_int_equal(rc.r.exit_code, 7);
	assert_string_equal(rc.msg, "");
	assert_int_equal(F.ninspect, 1);
	rec_release(&rc);

	fake_step(&rc, w0, i0);
	assert_int_equal(rc.r.outcome, SW_STEP_EXITED);
	assert_int_equal(rc.r.exit_code, 0);
	assert_string_equal(rc.msg, "");
	rec_release(&rc);
}

/* The wait says 0, the container's final state says 7 (twice): 7. */
static void test_fake_wait_says_zero(void **state)
{
	struct rec rc;
	const char *w[] = { "{\"StatusCode\":0}", NULL }, *i[] = { EXITED(7), NULL };

	fake_step(&rc, w, i);
	assert_int_equal(rc.r.outcome, SW_STEP_EXITED);
	assert_int_equal(rc.r.exit_code, 7);
	assert_non_null(strstr(rc.msg, "wait answered 0"));
	assert_true(F.ninspect >= 2);
	rec_release(&rc);
}

/* An unsure wait and an inspect that never shows a final state: error,
 * never success. */
static void test_fake_not_finished(void **state)
{
	const char *w[] = { UNSURE_WAIT, NULL }, *i[] = { NOT_FINISHED, NULL };
	const char *w0[] = { "{\"StatusCode\":0}", NULL };
	const char *created[] = { "{\"Id\":\"" FAKE_ID "\",\"State\":{\"Status\":\"created\","
				  "\"Running\":false,\"ExitCode\":0}}", NULL };

	fake_error(w, i, "cannot tell the exit code of container fakec0ffee");
	fake_error(w, i, "not finished");
	/* Even when the wait itself said 0 without an error. */
	fake_error(w0, created, "state created");
}

/* What Podman 4.3 showed on a loaded machine: the wait answered -1 and the
 * container stayed "created" (FinishedAt unset) for more than 12 s. A final
 * state that comes within settle_ms decides; the wait's -1 never does. */
static void test_fake_created_then_exited(void **state)
{
	struct rec rc;
	const char *w[] = { "{\"StatusCode\":-1,\"Error\":null}", NULL };
	const char *i[] = { CREATED, CREATED, CREATED, EXITED(7), NULL };

	fake_step(&rc, w, i);
	assert_int_equal(rc.r.outcome, SW_STEP_EXITED);
	assert_int_equal(rc.r.exit_code, 7);
	assert_true(F.ninspect >= 5);   /* the first final state, then one that agrees */
	rec_release(&rc);
}

/* The engine lost the final state for good (the wait -1, "created" from
 * then on): the code the step's wrapper wrote to its exit file decides;
 * without one, or with garbage in it, the step is an error. The file is
 * gone with the step. */
static void test_fake_exit_from_wrapper(void **state)
{
	struct rec rc;
	const char *w[] = { "{\"StatusCode\":-1,\"Error\":null}", NULL };
	const char *i[] = { CREATED, NULL };

	F.wrapper_says = "7\n";
	fake_step(&rc, w, i);
	assert_int_equal(rc.r.outcome, SW_STEP_EXITED);
	assert_int_equal(rc.r.exit_code, 7);
	assert_non_null(strstr(rc.msg, "as the step's wrapper recorded it"));
	assert_true(F.exit_file[0]);
	assert_int_equal(access(F.exit_file, F_OK), -1);
	rec_release(&rc);

	F.wrapper_says = "0";
	fake_step(&rc, w, i);
	assert_int_equal(rc.r.outcome, SW_STEP_EXITED);
	assert_int_equal(rc.r.exit_code, 0);
	rec_release(&rc);

	F.wrapper_says = "seven\n";
	fake_error(w, i, "state created");
	F.wrapper_says = "";
	fake_error(w, i, "state created");
	F.wrapper_says = NULL;
}

/* An unsure wait while the container still runs: wait again, then the
 * final state decides. */
static void test_fake_wait_early(void **state)
{
	struct rec rc;
	const char *w[] = { UNSURE_WAIT, "{\"StatusCode\":7}", NULL };
	const char *i[] = { RUNNING, EXITED(7), NULL };

	fake_step(&rc, w, i);
	assert_int_equal(rc.r.outcome, SW_STEP_EXITED);
	assert_int_equal(rc.r.exit_code, 7);
	assert_int_equal(F.nwait, 2);
	rec_release(&rc);
}

/* Final states that change between inspects, a container gone, garbage
 * from the wait: error. */
static void test_fake_disagree(void **state)
{
	const char *w[] = { "{\"StatusCode\":0}", NULL };
	const char *flap[] = { EXITED(7), EXITED(0), NULL };
	const char *gone[] = { "404", NULL };
	const char *junk[] = { "not json", NULL }, *i7[] = { EXITED(7), NULL };

	fake_error(w, flap, "cannot tell the exit code");
	fake_error(w, flap, "final state said exit code 7, then 0");
	fake_error(w, gone, "no such container");
	fake_error(junk, i7, "unexpected answer not json");
}

/* ---- local only ------------------------------------------------------ */

static void test_local_bad_workspace(void **state)
{
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	struct rec rc;
	const char *cmds[] = { "true", NULL };

	rec_init(&rc);
	s.commands = cmds;
	s.workspace = "/nonexistent/dir";
	run_step(E.local, &s, &rc, 30);
	assert_int_equal(rc.r.outcome, SW_STEP_ERROR);
	assert_string_equal(rc.msg, "chdir /nonexistent/dir: No such file or directory");
	rec_release(&rc);
}

/* The daemon's own environment does not leak into a local step. */
static void test_local_env_clean(void **state)
{
	struct sw_runner_spec s = SW_RUNNER_SPEC_INIT;
	struct rec rc;
	const char *cmds[] = { "echo \"[${SLIPWAY_SECRET_TEST:-unset}]\"", NULL };

	setenv("SLIPWAY_SECRET_TEST", "hunter2", 1);
	rec_init(&rc);
	s.commands = cmds;
	run_step(E.local, &s, &rc, 30);
	unsetenv("SLIPWAY_SECRET_TEST");
	assert_string_equal(rc.out.ptr, "[unset]\n");
	rec_release(&rc);
}

/* ---- lib/proc directly --------------------------------------------- */

struct prec {
	int done;
	struct sw_proc_result r;
	char msg[256];
	struct sw_buf out, err;
	struct sw_proc *proc;
	const char *kill_on;
};

static void p_output(int stream, const char *p, size_t n, void *arg)
{
	struct prec *pr = arg;
	sw_buf_add(stream == SW_PROC_STDOUT ? &pr->out : &pr->err, p, n);
	if (pr->kill_on && strstr(pr->out.ptr, pr->kill_on)) {
		pr->kill_on = NULL;
		sw_proc_kill(pr->proc);
	}
}

static void p_exit(const struct sw_proc_result *r, void *arg)
{
	struct prec *pr = arg;
	pr->done++;
	pr->r = *r;
	snprintf(pr->msg, sizeof(pr->msg), "%s", r->error_msg);
}

static void p_run(struct sw_proc_opts *o, struct prec *pr)
{
	pr->out = (struct sw_buf)SW_BUF_INIT;
	pr->err = (struct sw_buf)SW_BUF_INIT;
	o->on_output = p_output;
	o->on_exit = p_exit;
	o->arg = pr;
	assert_int_equal(sw_proc_spawn(E.procs, o, &pr->proc), 0);
	assert_int_equal(pr->done, 0);
	run_until(&pr->done, 30);
	assert_int_equal(pr->done, 1);
}

static void test_proc_stdin(void **state)
{
	struct sw_proc_opts o = SW_PROC_OPTS_INIT;
	struct prec pr = { 0 };
	const char *argv[] = { "sh", "-c", "cat; echo done >&2", NULL };
	struct sw_buf in = SW_BUF_INIT;

	for (int i = 0; i < 50000; i++)
		sw_buf_addf(&in, "line %d\n", i);    /* far more than a socket buffer */
	o.argv = argv;
	o.stdin_data = in.ptr;
	o.stdin_len = in.len;
	p_run(&o, &pr);
	assert_int_equal(pr.r.error, 0);
	assert_true(pr.r.exited);
	assert_int_equal(pr.r.exit_code, 0);
	assert_int_equal(pr.out.len, in.len);
	assert_memory_equal(pr.out.ptr, in.ptr, in.len);
	assert_string_equal(pr.err.ptr, "done\n");
	sw_buf_release(&in);
	sw_buf_release(&pr.out);
	sw_buf_release(&pr.err);
}

static void test_proc_missing_program(void **state)
{
	struct sw_proc_opts o = SW_PROC_OPTS_INIT;
	struct prec pr = { 0 };
	const char *argv[] = { "no-such-program-slipway", "x", NULL };

	o.argv = argv;
	p_run(&o, &pr);
	assert_int_equal(pr.r.error, SW_ERR);
	assert_string_equal(pr.msg, "exec no-such-program-slipway: No such file or directory");
	sw_buf_release(&pr.out);
	sw_buf_release(&pr.err);
	assert_int_equal(sw_proc_count(E.procs), 0);
}

/* A kill with a grace period lets the process clean up on SIGTERM. */
static void test_proc_kill_grace(void **state)
{
	struct sw_proc_opts o = SW_PROC_OPTS_INIT;
	struct prec pr = { 0 };
	const char *argv[] = { "sh", "-c",
			       "trap 'echo term; exit 7' TERM; echo ready; "
			       "while true; do sleep 0.05; done", NULL };

	o.argv = argv;
	o.kill_grace_ms = 5000;
	pr.kill_on = "ready";
	p_run(&o, &pr);
	assert_int_equal(pr.r.error, 0);
	assert_true(pr.r.killed);
	assert_true(pr.r.exited);
	assert_int_equal(pr.r.exit_code, 7);
	assert_string_equal(pr.out.ptr, "ready\nterm\n");   /* ended by its trap, not SIGKILL */
	sw_buf_release(&pr.out);
	sw_buf_release(&pr.err);
}

/* Without the grace period, or when SIGTERM is ignored, SIGKILL ends it. */
static void test_proc_kill_stubborn(void **state)
{
	struct sw_proc_opts o = SW_PROC_OPTS_INIT;
	struct prec pr = { 0 };
	const char *argv[] = { "sh", "-c", "trap '' TERM; echo ready; sleep 30", NULL };

	o.argv = argv;
	o.kill_grace_ms = 300;
	o.timeout_ms = 300;
	p_run(&o, &pr);
	assert_true(pr.r.timed_out);
	assert_false(pr.r.exited);
	assert_int_equal(pr.r.signal, 9);
	assert_true(pr.r.duration_ms < 30000);   /* killed, not waited for */
	sw_buf_release(&pr.out);
	sw_buf_release(&pr.err);
}

#define BOTH(t) \
	{ #t "/docker", t, NULL, NULL, DOCKER }, \
	{ #t "/local", t, NULL, NULL, LOCAL }

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_stdout_stderr),
		BOTH(test_exit_code),
		BOTH(test_env_and_workspace),
		BOTH(test_timeout),
		BOTH(test_cancel),
		BOTH(test_cancel_early),
		BOTH(test_large_output),
		BOTH(test_many_frames),
		BOTH(test_concurrent_steps),
		BOTH(test_stress_exit_codes),
		{ "test_background_child/local", test_background_child, NULL, NULL, LOCAL },
		cmocka_unit_test(test_missing_image),
		cmocka_unit_test(test_bad_spec),
		cmocka_unit_test(test_binds_and_user),
		cmocka_unit_test(test_leftovers),
		cmocka_unit_test(test_isolation),
		cmocka_unit_test(test_import),
		cmocka_unit_test_setup_teardown(test_fake_agree, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_fake_wait_says_zero, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_fake_not_finished, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_fake_exit_from_wrapper, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_fake_created_then_exited, fake_setup,
						fake_teardown),
		cmocka_unit_test_setup_teardown(test_fake_wait_early, fake_setup, fake_teardown),
		cmocka_unit_test_setup_teardown(test_fake_disagree, fake_setup, fake_teardown),
		cmocka_unit_test(test_local_bad_workspace),
		cmocka_unit_test(test_local_env_clean),
		cmocka_unit_test(test_proc_stdin),
		cmocka_unit_test(test_proc_missing_program),
		cmocka_unit_test(test_proc_kill_grace),
		cmocka_unit_test(test_proc_kill_stubborn),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
