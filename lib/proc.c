/*
 * proc.c - child processes on the loop (see proc.h).
 *
 * A child is forked with three descriptors: stdin (a socketpair end, so
 * writing to it after the child exited gives EPIPE instead of SIGPIPE, or
 * /dev/null), stdout and stderr (pipes). A fourth, close-on-exec pipe tells
 * the parent why exec failed: the child writes errno into it and exits 127;
 * a successful exec closes it. Between fork and exec the child only calls
 * async-signal-safe functions, since other threads of the daemon may hold
 * locks (malloc's among them) at the moment of fork.
 *
 * A process is finished when waitpid() reported it AND both output pipes
 * reached EOF (or SW_PROC_DRAIN_MS passed since the exit); only then is
 * on_exit called, so no output arrives after it.
 */
#include "lib/proc.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "lib/buf.h"
#include "lib/log.h"

struct sw_proc_mgr {
	struct event_base *base;
	struct event *sigchld;
	struct sw_proc *procs;
	size_t nprocs;
};

struct sw_proc {
	struct sw_proc_mgr *m;
	struct sw_proc *prev, *next;
	pid_t pid;
	int out_fd, err_fd, in_fd, exec_fd;
	struct event *ev_out, *ev_err, *ev_in;
	struct event *timeout, *grace, *drain;
	char *prog;            /* argv[0], for messages */
	char *cwd;
	char *in_data;
	size_t in_len, in_off;
	long kill_grace_ms;
	sw_proc_output_fn on_output;
	sw_proc_exit_fn on_exit;
	void *arg;
	double started;

	int status;            /* from waitpid */
	int reaped;
	int timed_out;
	int killed;
	int killing;           /* a kill was sent */
	int finishing;         /* on_exit running */
};

/* Where a child failed before exec, as written to the exec pipe. */
enum { STAGE_FDS = 1, STAGE_CHDIR = 2, STAGE_EXEC = 3 };

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void close_fd(int *fd, struct event **ev)
{
	if (*ev) {
		event_free(*ev);
		*ev = NULL;
	}
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static void proc_free(struct sw_proc *p)
{
	struct sw_proc_mgr *m = p->m;

	if (p->prev)
		p->prev->next = p->next;
	else
		m->procs = p->next;
	if (p->next)
		p->next->prev = p->prev;
	m->nprocs--;
	close_fd(&p->out_fd, &p->ev_out);
	close_fd(&p->err_fd, &p->ev_err);
	close_fd(&p->in_fd, &p->ev_in);
	if (p->exec_fd >= 0)
		close(p->exec_fd);
	if (p->timeout)
		event_free(p->timeout);
	if (p->grace)
		event_free(p->grace);
	if (p->drain)
		event_free(p->drain);
	free(p->in_data);
	free(p->prog);
	free(p->cwd);
	free(p);
}

static void set_ms(struct timeval *tv, long ms)
{
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

/* ---- finishing ------------------------------------------------------- */

static void maybe_finish(struct sw_proc *p)
{
	struct sw_proc_result r;
	char msg[256];
	int err[2] = { 0, 0 };

	if (!p->reaped || p->out_fd >= 0 || p->err_fd >= 0 || p->finishing)
		return;
	p->finishing = 1;
	memset(&r, 0, sizeof(r));
	msg[0] = '\0';
	/* Did the child fail before exec? It wrote {stage, errno}. */
	if (p->exec_fd >= 0 && read(p->exec_fd, err, sizeof(err)) == (ssize_t)sizeof(err)) {
		r.error = SW_ERR;
		if (err[0] == STAGE_CHDIR)
			snprintf(msg, sizeof(msg), "chdir %s: %s", p->cwd ? p->cwd : "",
				 strerror(err[1]));
		else if (err[0] == STAGE_EXEC)
			snprintf(msg, sizeof(msg), "exec %s: %s", p->prog, strerror(err[1]));
		else
			snprintf(msg, sizeof(msg), "spawn %s: %s", p->prog, strerror(err[1]));
	}
	r.error_msg = msg;
	if (WIFEXITED(p->status)) {
		r.exited = 1;
		r.exit_code = WEXITSTATUS(p->status);
	} else if (WIFSIGNALED(p->status)) {
		r.signal = WTERMSIG(p->status);
	}
	r.timed_out = p->timed_out;
	r.killed = p->killed;
	r.duration_ms = now_ms() - p->started;
	if (p->on_exit)
		p->on_exit(&r, p->arg);
	proc_free(p);
}

/* ---- events ---------------------------------------------------------- */

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sw_proc *p = arg;
	int stream = fd == p->out_fd ? SW_PROC_STDOUT : SW_PROC_STDERR;
	char buf[65536];
	ssize_t n;

	/* A few reads per wakeup, so one chatty stream cannot starve the loop. */
	for (int i = 0; i < 4; i++) {
		n = read(fd, buf, sizeof(buf));
		if (n > 0) {
			if (p->on_output)
				p->on_output(stream, buf, (size_t)n, p->arg);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		/* EOF or a hard error: this stream is done. */
		if (stream == SW_PROC_STDOUT)
			close_fd(&p->out_fd, &p->ev_out);
		else
			close_fd(&p->err_fd, &p->ev_err);
		maybe_finish(p);
		return;
	}
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sw_proc *p = arg;

	while (p->in_off < p->in_len) {
		ssize_t n = send(fd, p->in_data + p->in_off, p->in_len - p->in_off, MSG_NOSIGNAL);
		if (n > 0) {
			p->in_off += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		break;      /* EPIPE: the child does not read its stdin */
	}
	close_fd(&p->in_fd, &p->ev_in);
}

static void signal_group(struct sw_proc *p, int sig)
{
	/* The child may not have run setpgid yet; the parent did it too. */
	if (kill(-p->pid, sig) < 0 && errno == ESRCH && !p->reaped)
		kill(p->pid, sig);
}

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sw_proc *p = arg;
	if (!p->reaped)
		signal_group(p, SIGKILL);
}

static void start_kill(struct sw_proc *p)
{
	struct timeval tv;

	if (p->killing || p->reaped)
		return;
	p->killing = 1;
	if (p->kill_grace_ms > 0) {
		signal_group(p, SIGTERM);
		set_ms(&tv, p->kill_grace_ms);
		evtimer_add(p->grace, &tv);
	} else {
		signal_group(p, SIGKILL);
	}
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sw_proc *p = arg;
	if (p->reaped)
		return;
	p->timed_out = 1;
	log_info("proc.timeout", "pid=%d", (int)p->pid);
	start_kill(p);
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sw_proc *p = arg;
	/* Something outside the group still holds the pipes: give up on them,
	 * after taking what is already buffered. */
	if (p->out_fd >= 0)
		read_cb(p->out_fd, EV_READ, p);
	if (p->err_fd >= 0)
		read_cb(p->err_fd, EV_READ, p);
	close_fd(&p->out_fd, &p->ev_out);
	close_fd(&p->err_fd, &p->ev_err);
	maybe_finish(p);
}

static void reaped(struct sw_proc *p, int status)
{
	struct timeval tv;

	p->reaped = 1;
	p->status = status;
	evtimer_del(p->timeout);
	evtimer_del(p->grace);
	/* Whatever the child left in its group goes with it. */
	kill(-p->pid, SIGKILL);
	close_fd(&p->in_fd, &p->ev_in);
	set_ms(&tv, SW_PROC_DRAIN_MS);
	evtimer_add(p->drain, &tv);
}

static void sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct sw_proc_mgr *m = arg;
	struct sw_proc *p, *next;
	int status;

	/* First mark every reaped child, then finish them: maybe_finish runs
	 * callbacks that may spawn (adding at the head of the list). */
	for (p = m->procs; p; p = p->next) {
		if (p->reaped)
			continue;
		pid_t r = waitpid(p->pid, &status, WNOHANG);
		if (r == p->pid)
			reaped(p, status);
	}
	for (p = m->procs; p; p = next) {
		next = p->next;
		if (p->reaped && !p->finishing)
			maybe_finish(p);
	}
}

/* ---- spawning -------------------------------------------------------- */

/* Resolve argv[0] through PATH in the parent (no allocation after fork). */
static char *resolve(const char *name)
{
	const char *path = getenv("PATH");
	const char *s, *e;

	if (strchr(name, '/'))
		return sw_strdup(name);
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (s = path; ; s = e + 1) {
		e = strchr(s, ':');
		size_t len = e ? (size_t)(e - s) : strlen(s);
		char *cand = len ? sw_asprintf("%.*s/%s", (int)len, s, name)
				 : sw_asprintf("./%s", name);
		struct stat st;
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
			return cand;
		free(cand);
		if (!e)
			break;
	}
	return sw_strdup(name);   /* execve fails with ENOENT: reported */
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

extern char **environ;

/* In the child: only async-signal-safe calls from here to exec. */
static void child(const char *path, char *const argv[], char *const envp[], const char *cwd,
		  int in_fd, int out_fd, int err_fd, int exec_fd)
{
	sigset_t all;
	int e[2];

	setpgid(0, 0);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	e[0] = STAGE_FDS;
	if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
		goto fail;
	e[0] = STAGE_CHDIR;
	if (cwd && chdir(cwd) < 0)
		goto fail;
	e[0] = STAGE_EXEC;
	/* Every other descriptor of the daemon closes on exec; exec_fd too. */
	for (int fd = 3; fd < 1024; fd++)
		if (fd != exec_fd)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	execve(path, argv, envp);
fail:
	e[1] = errno;
	if (write(exec_fd, e, sizeof(e)) < 0)
		_exit(126);
	_exit(127);
}

int sw_proc_spawn(struct sw_proc_mgr *m, const struct sw_proc_opts *o, struct sw_proc **out)
{
	struct sw_proc *p;
	int in[2] = { -1, -1 }, outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, ex[2] = { -1, -1 };
	char *path = NULL;
	char **argv = NULL, **envp = NULL;
	size_t n;
	int rc = SW_ERR;
	pid_t pid;

	if (out)
		*out = NULL;
	if (!o->argv || !o->argv[0])
		return sw_error_setc(SW_EINVALID, "spawn: no program given");

	/* Everything the child needs is built before fork. */
	for (n = 0; o->argv[n]; n++)
		;
	argv = sw_calloc(n + 1, sizeof(*argv));
	for (size_t i = 0; i < n; i++)
		argv[i] = (char *)o->argv[i];
	if (o->env) {
		for (n = 0; o->env[n]; n++)
			;
		envp = sw_calloc(n + 1, sizeof(*envp));
		for (size_t i = 0; i < n; i++)
			envp[i] = (char *)o->env[i];
	}
	path = resolve(o->argv[0]);

	if (o->stdin_data) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0) {
			sw_error_errno("spawn %s: socketpair", o->argv[0]);
			goto done;
		}
	} else {
		in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (in[0] < 0) {
			sw_error_errno("spawn %s: /dev/null", o->argv[0]);
			goto done;
		}
	}
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || pipe2(ex, O_CLOEXEC) < 0) {
		sw_error_errno("spawn %s: pipe", o->argv[0]);
		goto done;
	}

	pid = fork();
	if (pid < 0) {
		sw_error_errno("spawn %s: fork", o->argv[0]);
		goto done;
	}
	if (pid == 0)
		child(path, argv, envp ? envp : environ, o->cwd, in[0], outp[1], errp[1], ex[1]);

	/* Parent. Setting the group here too closes the race with a kill
	 * that comes before the child ran setpgid. */
	setpgid(pid, pid);
	p = sw_calloc(1, sizeof(*p));
	p->m = m;
	p->pid = pid;
	p->prog = sw_strdup(o->argv[0]);
	p->cwd = o->cwd ? sw_strdup(o->cwd) : NULL;
	p->started = now_ms();
	p->kill_grace_ms = o->kill_grace_ms;
	p->on_output = o->on_output;
	p->on_exit = o->on_exit;
	p->arg = o->arg;
	p->out_fd = outp[0];
	p->err_fd = errp[0];
	p->exec_fd = ex[0];
	p->in_fd = -1;
	outp[0] = errp[0] = ex[0] = -1;
	set_nonblock(p->out_fd);
	set_nonblock(p->err_fd);
	set_nonblock(p->exec_fd);
	p->ev_out = event_new(m->base, p->out_fd, EV_READ | EV_PERSIST, read_cb, p);
	p->ev_err = event_new(m->base, p->err_fd, EV_READ | EV_PERSIST, read_cb, p);
	event_add(p->ev_out, NULL);
	event_add(p->ev_err, NULL);
	if (o->stdin_data) {
		p->in_fd = in[1];
		in[1] = -1;
		set_nonblock(p->in_fd);
		p->in_len = o->stdin_len;
		p->in_data = sw_malloc(o->stdin_len ? o->stdin_len : 1);
		memcpy(p->in_data, o->stdin_data, o->stdin_len);
		p->ev_in = event_new(m->base, p->in_fd, EV_WRITE | EV_PERSIST, write_cb, p);
		event_add(p->ev_in, NULL);
	}
	p->timeout = evtimer_new(m->base, timeout_cb, p);
	p->grace = evtimer_new(m->base, grace_cb, p);
	p->drain = evtimer_new(m->base, drain_cb, p);
	if (o->timeout_ms > 0) {
		struct timeval tv;
		set_ms(&tv, o->timeout_ms);
		evtimer_add(p->timeout, &tv);
	}
	p->next = m->procs;
	if (m->procs)
		m->procs->prev = p;
	m->procs = p;
	m->nprocs++;
	log_debug("proc.spawn", "pid=%d prog=%s", (int)pid, sw_q(o->argv[0]));
	/* A child that already exited before the event was added: its SIGCHLD
	 * is pending in libevent anyway, nothing to do here. */
	if (out)
		*out = p;
	rc = 0;
done:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
		if (ex[i] >= 0)
			close(ex[i]);
	}
	free(path);
	free(argv);
	free(envp);
	return rc;
}

void sw_proc_kill(struct sw_proc *p)
{
	if (!p || p->reaped)
		return;
	p->killed = 1;
	start_kill(p);
}

void sw_proc_detach(struct sw_proc *p)
{
	if (!p)
		return;
	p->on_output = NULL;
	p->on_exit = NULL;
	p->arg = NULL;
}

pid_t sw_proc_pid(const struct sw_proc *p)
{
	return p->pid;
}

size_t sw_proc_count(const struct sw_proc_mgr *m)
{
	return m->nprocs;
}

int sw_proc_mgr_new(struct sw_proc_mgr **out, struct event_base *base)
{
	struct sw_proc_mgr *m = sw_calloc(1, sizeof(*m));

	m->base = base;
	m->sigchld = evsignal_new(base, SIGCHLD, sigchld_cb, m);
	if (!m->sigchld || evsignal_add(m->sigchld, NULL) < 0) {
		if (m->sigchld)
			event_free(m->sigchld);
		free(m);
		*out = NULL;
		return sw_error_set("process manager: cannot watch SIGCHLD");
	}
	*out = m;
	return 0;
}

void sw_proc_mgr_free(struct sw_proc_mgr *m)
{
	if (!m)
		return;
	while (m->procs) {
		struct sw_proc *p = m->procs;
		if (!p->reaped) {
			int status;
			kill(-p->pid, SIGKILL);
			kill(p->pid, SIGKILL);
			while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
				;
		}
		proc_free(p);
	}
	event_free(m->sigchld);
	free(m);
}
