/*
 * docker.c - the docker runner backend: one container per step through the
 * Docker Engine API (v1.41) on a unix socket, all requests through lib/http.
 * Works unchanged with Docker and with `podman system service`. The
 * requests themselves, image import and the sweep of leftovers are in
 * docker-api.c (docker-int.h).
 *
 * A step moves through these phases:
 *
 *   INSPECT  GET  /images/{image}/json            200: CREATE, 404: PULL
 *   PULL     POST /images/create?fromImage=&tag=  (a JSON progress stream;
 *            failure may arrive as 200 with {"error":...} in it)
 *   CREATE   POST /containers/create              201 {"Id":...}
 *   ATTACH   POST /containers/{id}/attach?stream=1&stdout=1&stderr=1&logs=1
 *            once its response headers are in (the stream is set up):
 *   START    POST /containers/{id}/start          204
 *   RUNNING  the attach stream delivers output; POST /containers/{id}/wait
 *            gives {"StatusCode":N}; on timeout or cancel
 *            POST /containers/{id}/kill
 *   REMOVE   DELETE /containers/{id}?force=1&v=1
 *
 * Why attach and not GET /containers/{id}/logs?follow=1: Podman 4.3's
 * followed log stream drops lines and ends early under load (seen: 62k of
 * 200k lines, with gaps). Attaching before start reads the container's
 * output as the engine receives it, whole and in order, on Docker and on
 * Podman alike; the stream ends when the container stops. on_done is called
 * once the wait answered, the attach stream ended (all output delivered)
 * and the container was removed.
 *
 * Log stream framing (Tty is false): an 8-byte header, byte 0 the stream
 * (1 stdout, 2 stderr), bytes 4..7 the payload length big-endian, then the
 * payload. Headers and payloads split across reads anywhere; payloads are
 * passed on as they come, never buffered whole, so a frame's size does not
 * matter.
 */
#include "runners/docker-int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/http.h"
#include "lib/log.h"


enum phase { PH_INSPECT, PH_PULL, PH_CREATE, PH_ATTACH, PH_START, PH_RUNNING, PH_REMOVE,
	      PH_DONE };

struct docker_step {
	struct sw_runner_step base;
	struct docker_runner *dr;
	struct docker_step *prev, *next;
	enum phase phase;

	char *image;
	char *create_body;            /* JSON for /containers/create */
	char *exit_file;              /* host side of /.slipway-exit (see exit_report) */
	long timeout_ms;
	sw_step_output_fn on_output;
	sw_step_done_fn on_done;
	void *arg;

	struct sw_http_call *call;    /* the control request of the phase */
	struct sw_http_call *logs;    /* the attach stream */
	struct sw_http_call *wait;
	struct sw_http_call *kill;
	struct event *timer;          /* step timeout, then log drain */
	struct event *finish_ev;      /* finish from the loop, not a caller */

	char id[80];
	int logs_done, wait_done;
	int exit_code;
	int timed_out, cancelled, failed;
	int remove_tries;
	/* the exit code: see inspected_after_wait() */
	int wait_code, wait_sure;     /* the wait's answer; no Error and >= 0 */
	int checks;                   /* inspects since the first wait answer */
	double waited_at;             /* when the wait first answered */
	int last_code;                /* the previous inspect's final code */
	struct event *check_timer;
	struct sw_buf msg;            /* error (failed) or notes */
	double started;

	struct sw_docker_demux demux; /* of the attach stream */
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- finishing ------------------------------------------------------- */

static void step_unlink(struct docker_step *s)
{
	struct docker_runner *dr = s->dr;
	if (s->prev)
		s->prev->next = s->next;
	else
		dr->steps = s->next;
	if (s->next)
		s->next->prev = s->prev;
	dr->base.active--;
}

static void step_free(struct docker_step *s)
{
	sw_http_cancel(s->call);
	sw_http_cancel(s->logs);
	sw_http_cancel(s->wait);
	sw_http_cancel(s->kill);
	if (s->timer)
		event_free(s->timer);
	if (s->finish_ev)
		event_free(s->finish_ev);
	if (s->check_timer)
		event_free(s->check_timer);
	free(s->image);
	free(s->create_body);
	if (s->exit_file) {
		unlink(s->exit_file);
		free(s->exit_file);
	}
	sw_buf_release(&s->msg);
	free(s);
}

static void finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct docker_step *s = arg;
	struct sw_runner_result r;

	memset(&r, 0, sizeof(r));
	if (s->failed)
		r.outcome = SW_STEP_ERROR;
	else if (s->timed_out)
		r.outcome = SW_STEP_TIMED_OUT;
	else if (s->cancelled)
		r.outcome = SW_STEP_CANCELLED;
	else
		r.outcome = SW_STEP_EXITED;
	r.exit_code = s->wait_done ? s->exit_code : -1;
	r.error_msg = s->msg.ptr;
	r.id = s->id;
	r.duration_ms = now_ms() - s->started;
	log_info("runner.done", "kind=docker id=%.12s outcome=%d exit=%d ms=%.0f%s%s", s->id,
		 (int)r.outcome, r.exit_code, r.duration_ms, s->msg.len ? " err=" : "",
		 s->msg.len ? sw_q(s->msg.ptr) : "");
	step_unlink(s);
	if (s->on_done)
		s->on_done(&r, s->arg);
	step_free(s);
}

static void finish(struct docker_step *s)
{
	s->phase = PH_DONE;
	evtimer_del(s->timer);
	sw_http_cancel(s->logs);
	s->logs = NULL;
	event_active(s->finish_ev, 0, 0);
}

static void fail(struct docker_step *s, const char *fmt, ...) SW_PRINTF(2, 3);
static void fail(struct docker_step *s, const char *fmt, ...)
{
	va_list ap;
	if (s->failed)
		return;     /* keep the first reason */
	s->failed = 1;
	sw_buf_reset(&s->msg);
	va_start(ap, fmt);
	sw_buf_vaddf(&s->msg, fmt, ap);
	va_end(ap);
}

static void note(struct docker_step *s, const char *fmt, ...) SW_PRINTF(2, 3);
static void note(struct docker_step *s, const char *fmt, ...)
{
	va_list ap;
	if (s->msg.len)
		sw_buf_adds(&s->msg, "; ");
	va_start(ap, fmt);
	sw_buf_vaddf(&s->msg, fmt, ap);
	va_end(ap);
}

/* ---- remove ---------------------------------------------------------- */

/*
 * A remove can fail for a moment (Podman: "unlinkat .../shm: device or
 * resource busy" while the container's mounts go away): try again after
 * 200, 400 ms before giving up with a note.
 */
#define REMOVE_TRIES 3

static void remove_container(struct docker_step *s);

static void remove_again(evutil_socket_t fd, short what, void *arg)
{
	remove_container(arg);
}

static void removed(struct sw_http_result *r, void *arg)
{
	struct docker_step *s = arg;
	s->call = NULL;
	if ((r->error || (r->status != 204 && r->status != 200 && r->status != 404)) &&
	    s->remove_tries < REMOVE_TRIES) {
		struct timeval tv = { 0, 200000L << (s->remove_tries - 1) };
		evtimer_del(s->timer);
		event_assign(s->timer, s->dr->evbase, -1, 0, remove_again, s);
		evtimer_add(s->timer, &tv);
		return;
	}
	if (r->error || (r->status != 204 && r->status != 200 && r->status != 404)) {
		struct sw_buf m = SW_BUF_INIT;
		docker_api_message(&m, r);
		log_warn("runner.remove_failed", "id=%.12s err=%s", s->id, sw_q(m.ptr));
		note(s, "remove container %.12s: %s", s->id, m.ptr);
		sw_buf_release(&m);
	}
	finish(s);
}

/* Remove the container (if one was made), then finish. */
static void remove_container(struct docker_step *s)
{
	char path[160];

	evtimer_del(s->timer);
	evtimer_del(s->check_timer);
	sw_http_cancel(s->logs);
	s->logs = NULL;
	sw_http_cancel(s->wait);
	s->wait = NULL;
	sw_http_cancel(s->kill);
	s->kill = NULL;
	if (!s->id[0]) {
		finish(s);
		return;
	}
	s->phase = PH_REMOVE;
	s->remove_tries++;
	snprintf(path, sizeof(path), "/containers/%s?force=1&v=1", s->id);
	if (docker_request(s->dr, "DELETE", path, NULL, NULL, 0, CONTROL_TIMEOUT_MS, NULL, removed, s,
		    &s->call) < 0) {
		note(s, "remove container %.12s: %s", s->id, sw_error_last());
		finish(s);
	}
}

/* ---- running --------------------------------------------------------- */

static void emit(int frame_stream, const char *p, size_t n, void *arg)
{
	struct docker_step *s = arg;
	int stream = frame_stream == 2 ? SW_STEP_STDERR : SW_STEP_STDOUT;

	/* Output may come before start answered; none once we finish. */
	if (!n || s->phase < PH_START || s->phase > PH_RUNNING)
		return;
	if (s->on_output)
		s->on_output(stream, p, n, s->arg);
}

void sw_docker_demux(struct sw_docker_demux *d, const char *p, size_t n,
		     sw_docker_demux_fn fn, void *arg)
{
	while (n) {
		if (d->left == 0) {
			size_t take = 8 - d->hdr_len;
			if (take > n)
				take = n;
			memcpy(d->hdr + d->hdr_len, p, take);
			d->hdr_len += take;
			p += take;
			n -= take;
			if (d->hdr_len < 8)
				break;
			d->hdr_len = 0;
			d->stream = d->hdr[0];
			d->left = (uint32_t)d->hdr[4] << 24 | (uint32_t)d->hdr[5] << 16 |
				  (uint32_t)d->hdr[6] << 8 | (uint32_t)d->hdr[7];
			continue;
		}
		size_t take = n < d->left ? n : d->left;
		fn(d->stream, p, take, arg);
		/* on_output may have cancelled: that only marks the step. */
		d->left -= (uint32_t)take;
		p += take;
		n -= take;
	}
}

static int logs_data(const char *p, size_t n, void *arg)
{
	struct docker_step *s = arg;
	sw_docker_demux(&s->demux, p, n, emit, s);
	return 0;
}

static void maybe_remove(struct docker_step *s)
{
	if (s->phase == PH_RUNNING && s->wait_done && s->logs_done)
		remove_container(s);
}

static void logs_done(struct sw_http_result *r, void *arg)
{
	struct docker_step *s = arg;

	s->logs = NULL;
	s->logs_done = 1;
	if (s->phase == PH_ATTACH) {
		/* Refused or broken before start: the step cannot run. */
		struct sw_buf m = SW_BUF_INIT;
		docker_api_message(&m, r);
		fail(s, "attach to container %.12s: %s", s->id, m.ptr);
		sw_buf_release(&m);
		remove_container(s);
		return;
	}
	if (r->error || r->status != 200) {
		struct sw_buf m = SW_BUF_INIT;
		docker_api_message(&m, r);
		log_warn("runner.logs_failed", "id=%.12s err=%s", s->id, sw_q(m.ptr));
		note(s, "output stream: %s", m.ptr);
		sw_buf_release(&m);
	} else if (s->demux.left || s->demux.hdr_len) {
		note(s, "output stream ended inside a frame");
	}
	maybe_remove(s);
}

static void drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct docker_step *s = arg;
	/* The wait answered long ago but the log stream is still open. */
	note(s, "output stream still open %lds after the container stopped; output may be cut",
	     LOG_DRAIN_MS / 1000);
	sw_http_cancel(s->logs);
	s->logs = NULL;
	s->logs_done = 1;
	maybe_remove(s);
}

static void waited(struct sw_http_result *r, void *arg);

/* The exit code is known: drain the output, then remove. */
static void exited(struct docker_step *s, int code)
{
	s->exit_code = code;
	s->wait_done = 1;
	if (!s->logs_done) {
		struct timeval tv = { LOG_DRAIN_MS / 1000, 0 };
		evtimer_del(s->timer);
		event_assign(s->timer, s->dr->evbase, -1, 0, drain_timeout, s);
		evtimer_add(s->timer, &tv);
	}
	maybe_remove(s);
}

static int wait_again(struct docker_step *s)
{
	char path[160];
	snprintf(path, sizeof(path), "/containers/%s/wait", s->id);
	return docker_request(s->dr, "POST", path, NULL, NULL, 0, 0, NULL, waited, s, &s->wait);
}

/*
 * The exit code comes from a state known to be final, never from the wait
 * answer alone. Podman 4.3's wait sometimes answers before the container is
 * done or without its exit code ("getting exit code of container ... from
 * DB: no such exit code (container in state running)", StatusCode 0 or -1),
 * and was seen answering a plain 0 for a script that ended with `exit 7`;
 * its inspect was seen saying `Running: false, ExitCode: 0` for a container
 * that had not finished. So after every wait answer the container is
 * inspected:
 *
 *   final    State.Status "exited", FinishedAt set (not Go's zero time
 *            0001-01-01...), ExitCode an integer.
 *   agreed   a sure wait answer (no Error, code >= 0) equal to the first
 *            final state's code: that code. Otherwise (the wait was unsure
 *            or a final state contradicted it) the code of two final
 *            inspects that agree; two final states that differ are an
 *            error at once.
 *   running  wait again.
 *   else     inspect again after a pause (100 ms, doubling, at most 1 s).
 *
 * When settle_ms (sw_docker_opts, 60 s) have passed since the first wait
 * answer without an agreed final state, the step is an error saying why
 * (for a step killed on timeout or cancel, whose outcome is known anyway,
 * the exit code is just reported as unknown). A state that stays short of
 * final for three inspects is the one case where the step's own record
 * (exit_report) decides. A false green deploys; a false error costs a retry.
 */
#define SETTLE_MS 60000L
#define NO_CODE INT_MIN

static void inspect_container(struct docker_step *s);
static int exit_report(const struct docker_step *s);

static void check_again(evutil_socket_t fd, short what, void *arg)
{
	inspect_container(arg);
}

/* No final state to believe: why, into the step. */
static void unsure(struct docker_step *s, const char *why)
{
	log_warn("runner.exit_unknown", "id=%.12s checks=%d why=%s", s->id, s->checks, sw_q(why));
	if (s->timed_out || s->cancelled) {
		note(s, "exit code of container %.12s unknown: %s", s->id, why);
		exited(s, -1);
		return;
	}
	fail(s, "cannot tell the exit code of container %.12s after %d inspects in %.0f s: %s",
	     s->id, s->checks, (now_ms() - s->waited_at) / 1000, why);
	remove_container(s);
}

/* No agreed final state for settle_ms since the wait answered: give up. */
static int settled_out(const struct docker_step *s)
{
	return now_ms() - s->waited_at >= (double)s->dr->settle_ms;
}

/* Not final yet, or not agreed: look again in a moment, or give up. */
static void recheck(struct docker_step *s, const char *why)
{
	struct timeval tv;
	long ms;

	if (settled_out(s)) {
		unsure(s, why);
		return;
	}
	ms = 100L << (s->checks > 4 ? 4 : s->checks - 1);
	if (ms > 1000)
		ms = 1000;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(s->check_timer, &tv);
}

static void inspected_after_wait(struct sw_http_result *r, void *arg)
{
	struct docker_step *s = arg;
	json_t *j = NULL, *st;
	const char *status, *finished, *started_at;
	char why[300];

	s->wait = NULL;
	if (r->error || r->status != 200) {
		struct sw_buf m = SW_BUF_INIT;
		docker_api_message(&m, r);
		snprintf(why, sizeof(why), "inspect: %s", m.ptr);
		sw_buf_release(&m);
		if (r->status == 404)
			unsure(s, why);   /* gone: no state will come */
		else
			recheck(s, why);
		return;
	}
	j = json_loadb(r->body->ptr, r->body->len, 0, NULL);
	st = json_object_get(j, "State");
	status = json_string_value(json_object_get(st, "Status"));
	finished = json_string_value(json_object_get(st, "FinishedAt"));
	started_at = json_string_value(json_object_get(st, "StartedAt"));
	if (json_is_true(json_object_get(st, "Running")) ||
	    (status && !strcmp(status, "running"))) {
		json_decref(j);
		s->last_code = NO_CODE;
		if (settled_out(s)) {
			unsure(s, "still running after the wait answered");
		} else if (wait_again(s) < 0) {
			fail(s, "wait for container %.12s: %s", s->id, sw_error_last());
			remove_container(s);
		}
		return;
	}
	if (!status || strcmp(status, "exited") || !finished || !*finished ||
	    !strncmp(finished, "0001-", 5) || !json_is_integer(json_object_get(st, "ExitCode"))) {
		snprintf(why, sizeof(why), "state %s, not finished (StartedAt %s, FinishedAt %s)",
			 status ? status : "missing", started_at && *started_at ? started_at : "missing",
			 finished && *finished ? finished : "missing");
		json_decref(j);
		int reported = exit_report(s);
		if (reported != NO_CODE && s->checks >= 3) {
			/* not running, and the engine keeps no final state: the
			 * script's wrapper said how it ended */
			log_warn("runner.exit_from_wrapper", "id=%.12s code=%d why=%s", s->id, reported,
				 sw_q(why));
			note(s, "the engine lost the container's final state (%s); exit code %d "
			     "as the step's wrapper recorded it", why, reported);
			exited(s, reported);
			return;
		}
		recheck(s, why);
		return;
	}
	int code = (int)json_integer_value(json_object_get(st, "ExitCode"));
	json_decref(j);
	if (s->wait_sure && code == s->wait_code) {
		exited(s, code);
		return;
	}
	if (code == s->last_code) {
		if (s->wait_code != code) {
			log_warn("runner.wait_wrong", "id=%.12s wait=%d exited=%d", s->id, s->wait_code,
				 code);
			note(s, "the engine's wait answered %d; exit code %d from the container's "
			     "final state", s->wait_code, code);
		}
		exited(s, code);
		return;
	}
	if (s->last_code != NO_CODE) {
		/* A final state that changes is no final state. */
		snprintf(why, sizeof(why), "its final state said exit code %d, then %d",
			 s->last_code, code);
		unsure(s, why);
		return;
	}
	snprintf(why, sizeof(why), "the wait answered %d%s, the final state says %d",
		 s->wait_code, s->wait_sure ? "" : " (unsure)", code);
	s->last_code = code;
	s->wait_sure = 0;     /* contradicted once: trusted no more */
	recheck(s, why);
}

static void inspect_container(struct docker_step *s)
{
	char path[160];

	s->checks++;
	snprintf(path, sizeof(path), "/containers/%s/json", s->id);
	if (docker_request(s->dr, "GET", path, NULL, NULL, 0, CONTROL_TIMEOUT_MS, NULL,
		    inspected_after_wait, s, &s->wait) < 0) {
		fail(s, "inspect container %.12s: %s", s->id, sw_error_last());
		remove_container(s);
	}
}

static void waited(struct sw_http_result *r, void *arg)
{
	struct docker_step *s = arg;
	json_t *j;

	s->wait = NULL;
	if (r->error || r->status != 200) {
		struct sw_buf m = SW_BUF_INIT;
		docker_api_message(&m, r);
		fail(s, "wait for container %.12s: %s", s->id, m.ptr);
		sw_buf_release(&m);
		remove_container(s);
		return;
	}
	j = json_loadb(r->body->ptr, r->body->len, 0, NULL);
	json_t *code = j ? json_object_get(j, "StatusCode") : NULL;
	if (!json_is_integer(code)) {
		fail(s, "wait for container %.12s: unexpected answer %.200s", s->id, r->body->ptr);
		json_decref(j);
		remove_container(s);
		return;
	}
	json_t *err = json_object_get(j, "Error");
	const char *emsg = json_string_value(json_object_get(err, "Message"));
	s->wait_code = (int)json_integer_value(code);
	s->wait_sure = !(emsg && *emsg) && s->wait_code >= 0;
	if (!s->waited_at)
		s->waited_at = now_ms();
	if (!s->wait_sure)
		log_info("runner.wait_unsure", "id=%.12s code=%d err=%s", s->id, s->wait_code,
			 sw_q(emsg ? emsg : ""));
	json_decref(j);
	inspect_container(s);
}

static void killed(struct sw_http_result *r, void *arg)
{
	struct docker_step *s = arg;
	s->kill = NULL;
	/* 409/500 "not running": it ended on its own meanwhile; wait reports. */
	if (r->error)
		log_warn("runner.kill_failed", "id=%.12s err=%s", s->id, sw_q(r->error_msg));
}

static void kill_container(struct docker_step *s)
{
	char path[160];

	if (s->kill || s->wait_done)
		return;
	snprintf(path, sizeof(path), "/containers/%s/kill?signal=SIGKILL", s->id);
	if (docker_request(s->dr, "POST", path, NULL, NULL, 0, CONTROL_TIMEOUT_MS, NULL, killed, s,
		    &s->kill) < 0) {
		/* Cannot even ask: removing with force kills it too. */
		note(s, "kill: %s", sw_error_last());
		remove_container(s);
	}
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct docker_step *s = arg;
	if (s->phase != PH_RUNNING || s->wait_done)
		return;
	s->timed_out = 1;
	log_info("runner.timeout", "id=%.12s ms=%ld", s->id, s->timeout_ms);
	kill_container(s);
}

static void started(struct sw_http_result *r, void *arg)
{
	struct docker_step *s = arg;

	s->call = NULL;
	if (r->error || (r->status != 204 && r->status != 304)) {
		struct sw_buf m = SW_BUF_INIT;
		docker_api_message(&m, r);
		fail(s, "start container %.12s: %s", s->id, m.ptr);
		sw_buf_release(&m);
		remove_container(s);
		return;
	}
	if (s->cancelled) {
		remove_container(s);
		return;
	}
	s->phase = PH_RUNNING;
	if (wait_again(s) < 0) {
		fail(s, "wait for container %.12s: %s", s->id, sw_error_last());
		remove_container(s);
		return;
	}
	if (s->timeout_ms > 0) {
		struct timeval tv = { s->timeout_ms / 1000, (s->timeout_ms % 1000) * 1000 };
		evtimer_add(s->timer, &tv);
	}
	log_info("runner.started", "kind=docker id=%.12s ms=%.0f", s->id, now_ms() - s->started);
}

/* The attach stream is set up: now the container may start. Runs inside
 * curl's header callback; requests made here go out from the loop. */
static int attached(long status, void *arg)
{
	struct docker_step *s = arg;
	char path[160];

	if (status != 200)
		return 0;     /* logs_done reports the refusal with its body */
	if (s->phase != PH_ATTACH)
		return 0;
	if (s->cancelled) {
		remove_container(s);
		return 0;
	}
	s->phase = PH_START;
	snprintf(path, sizeof(path), "/containers/%s/start", s->id);
	if (docker_request(s->dr, "POST", path, NULL, NULL, 0, CONTROL_TIMEOUT_MS, NULL, started, s,
		    &s->call) < 0) {
		fail(s, "start container %.12s: %s", s->id, sw_error_last());
		remove_container(s);
	}
	return 0;
}

static void created(struct sw_http_result *r, void *arg)
{
	struct docker_step *s = arg;
	json_t *j = NULL;
	char path[160];

	s->call = NULL;
	if (r->error || r->status != 201) {
		struct sw_buf m = SW_BUF_INIT;
		docker_api_message(&m, r);
		fail(s, "create container from %s: %s", s->image, m.ptr);
		sw_buf_release(&m);
		finish(s);
		return;
	}
	j = json_loadb(r->body->ptr, r->body->len, 0, NULL);
	const char *id = j ? json_string_value(json_object_get(j, "Id")) : NULL;
	if (!id || !*id || strlen(id) >= sizeof(s->id) || !docker_valid_image(id)) {
		fail(s, "create container from %s: no Id in %.200s", s->image, r->body->ptr);
		json_decref(j);
		finish(s);
		return;
	}
	snprintf(s->id, sizeof(s->id), "%s", id);
	json_decref(j);
	if (s->cancelled) {
		remove_container(s);
		return;
	}
	s->phase = PH_ATTACH;
	snprintf(path, sizeof(path), "/containers/%s/attach?stream=1&stdout=1&stderr=1&logs=1",
		 s->id);
	if (docker_request_stream(s->dr, "POST", path, attached, logs_data, logs_done, s, &s->logs) < 0) {
		fail(s, "attach to container %.12s: %s", s->id, sw_error_last());
		remove_container(s);
	}
}

static void create_container(struct docker_step *s)
{
	s->phase = PH_CREATE;
	if (docker_request(s->dr, "POST", "/containers/create", "application/json", s->create_body,
		    strlen(s->create_body), CONTROL_TIMEOUT_MS, NULL, created, s, &s->call) < 0) {
		fail(s, "create container from %s: %s", s->image, sw_error_last());
		finish(s);
	}
}

/* ---- image ----------------------------------------------------------- */

static void pulled(struct sw_http_result *r, void *arg)
{
	struct docker_step *s = arg;
	char *err = NULL;

	s->call = NULL;
	if (r->error || r->status != 200) {
		struct sw_buf m = SW_BUF_INIT;
		docker_api_message(&m, r);
		fail(s, "image %s not found locally and pull failed: %s", s->image, m.ptr);
		sw_buf_release(&m);
		finish(s);
		return;
	}
	if ((err = docker_stream_error(r->body))) {
		fail(s, "image %s not found locally and pull failed: %s", s->image, err);
		free(err);
		finish(s);
		return;
	}
	log_info("runner.pulled", "image=%s", sw_q(s->image));
	create_container(s);
}

static void pull_image(struct docker_step *s)
{
	struct sw_buf path = SW_BUF_INIT;
	const char *img = s->image, *slash = strrchr(img, '/'), *colon;
	char *repo;
	const char *tag = NULL;

	/* "reg:5000/a/b:tag" -> repo "reg:5000/a/b", tag "tag"; digests stay
	 * whole in fromImage. */
	colon = strrchr(slash ? slash : img, ':');
	if (strchr(img, '@') || !colon) {
		repo = sw_strdup(img);
		tag = strchr(img, '@') ? NULL : "latest";
	} else {
		repo = sw_strndup(img, (size_t)(colon - img));
		tag = colon + 1;
	}
	sw_buf_adds(&path, "/images/create?fromImage=");
	sw_http_escape(&path, repo);
	if (tag) {
		sw_buf_adds(&path, "&tag=");
		sw_http_escape(&path, tag);
	}
	s->phase = PH_PULL;
	log_info("runner.pull", "image=%s", sw_q(s->image));
	if (docker_request(s->dr, "POST", path.ptr, NULL, NULL, 0, s->dr->pull_timeout_ms, NULL, pulled,
		    s, &s->call) < 0) {
		fail(s, "image %s not found locally and pull failed: %s", s->image, sw_error_last());
		finish(s);
	}
	free(repo);
	sw_buf_release(&path);
}

static void inspected(struct sw_http_result *r, void *arg)
{
	struct docker_step *s = arg;

	s->call = NULL;
	if (s->cancelled) {
		finish(s);
		return;
	}
	if (!r->error && r->status == 200) {
		create_container(s);
	} else if (!r->error && r->status == 404) {
		pull_image(s);
	} else {
		struct sw_buf m = SW_BUF_INIT;
		docker_api_message(&m, r);
		fail(s, "inspect image %s: %s", s->image, m.ptr);
		sw_buf_release(&m);
		finish(s);
	}
}

/* ---- start ----------------------------------------------------------- */

/* An empty file any container user may write, for one step's exit code. */
static char *exit_file_new(void)
{
	const char *tmp = getenv("TMPDIR");
	char *path = sw_asprintf("%s/slipway-exit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0 || fchmod(fd, 0666) < 0) {
		log_warn("runner.exit_file", "path=%s err=%s", sw_q(path), sw_q(strerror(errno)));
		if (fd >= 0) {
			close(fd);
			unlink(path);
		}
		free(path);
		return NULL;
	}
	close(fd);
	return path;
}

/* The exit code the wrapper wrote, or NO_CODE (none, or not a number). */
static int exit_report(const struct docker_step *s)
{
	char buf[32], *end;
	ssize_t n;
	long v;
	int fd;

	if (!s->exit_file || (fd = open(s->exit_file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return NO_CODE;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return NO_CODE;
	buf[n] = 0;
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n') || v < 0 || v > 255)
		return NO_CODE;
	return (int)v;
}

/*
 * The script runs under a wrapper shell that writes its exit code to
 * /.slipway-exit, a file bound from the host (exit_report() reads it). The
 * engine's own record stays first; the file is read only when the engine
 * lost the container's final state (Podman 4.3 on a loaded machine was seen
 * resetting a container that had run to "created", its exit code gone).
 * The script could write the file itself, but it chooses its exit code
 * anyway: the file guards against the engine, not against the script.
 */
#define EXIT_WRAPPER "/bin/sh -e -c \"$1\"; c=$?; echo \"$c\" >/.slipway-exit 2>/dev/null; exit \"$c\""

static char *create_body(const struct sw_runner_spec *sp, const char *workspace,
			 const char *exit_file)
{
	json_t *o = json_object(), *hc = json_object(), *a;
	char *script = sw_runner_script(sp->commands);
	const char *workdir = sp->workdir ? sp->workdir : "/workspace";
	char *out, *res;

	json_object_set_new(o, "Image", json_string(sp->image));
	/* Entrypoint replaced, so images with their own entrypoint run the
	 * script the same way. */
	a = json_array();
	json_array_append_new(a, json_string("/bin/sh"));
	json_object_set_new(o, "Entrypoint", a);
	a = json_array();
	if (exit_file) {
		json_array_append_new(a, json_string("-c"));
		json_array_append_new(a, json_string(EXIT_WRAPPER));
		json_array_append_new(a, json_string("slipway-step"));
		json_array_append_new(a, json_string(script));
	} else {
		json_array_append_new(a, json_string("-e"));
		json_array_append_new(a, json_string("-c"));
		json_array_append_new(a, json_string(script));
	}
	json_object_set_new(o, "Cmd", a);
	a = json_array();
	for (size_t i = 0; sp->env && sp->env[i]; i++)
		json_array_append_new(a, json_string(sp->env[i]));
	json_object_set_new(o, "Env", a);
	json_object_set_new(o, "WorkingDir", json_string(workdir));
	json_object_set_new(o, "Tty", json_false());
	json_object_set_new(o, "OpenStdin", json_false());
	json_object_set_new(o, "AttachStdin", json_false());
	json_object_set_new(o, "AttachStdout", json_false());
	json_object_set_new(o, "AttachStderr", json_false());
	a = json_object();
	json_object_set_new(a, "slipway.run", json_string(sp->label ? sp->label : "1"));
	json_object_set_new(a, "slipway.instance", json_string(docker_instance_id()));
	json_object_set_new(o, "Labels", a);
	if (sp->user)
		json_object_set_new(o, "User", json_string(sp->user));
	a = json_array();
	if (workspace) {
		char *bind = sw_asprintf("%s:%s:rw", workspace, workdir);
		json_array_append_new(a, json_string(bind));
		free(bind);
	}
	for (size_t i = 0; sp->binds && sp->binds[i]; i++)
		json_array_append_new(a, json_string(sp->binds[i]));
	if (exit_file) {
		char *bind = sw_asprintf("%s:/.slipway-exit:rw", exit_file);
		json_array_append_new(a, json_string(bind));
		free(bind);
	}
	if (json_array_size(a))
		json_object_set_new(hc, "Binds", a);
	else
		json_decref(a);
	/* No setuid binary or file capability raises what the step has, and
	 * root in the container keeps only the capabilities asked for. */
	a = json_array();
	json_array_append_new(a, json_string("no-new-privileges"));
	json_object_set_new(hc, "SecurityOpt", a);
	a = json_array();
	json_array_append_new(a, json_string("ALL"));
	json_object_set_new(hc, "CapDrop", a);
	a = json_array();
	for (size_t i = 0; sp->cap_add && sp->cap_add[i]; i++)
		json_array_append_new(a, json_string(sp->cap_add[i]));
	json_object_set_new(hc, "CapAdd", a);
	if (sp->pids_limit > 0)
		json_object_set_new(hc, "PidsLimit", json_integer(sp->pids_limit));
	if (sp->memory_bytes > 0)
		json_object_set_new(hc, "Memory", json_integer(sp->memory_bytes));
	if (sp->nano_cpus > 0)
		json_object_set_new(hc, "NanoCpus", json_integer(sp->nano_cpus));
	if (sp->network)
		json_object_set_new(hc, "NetworkMode", json_string(sp->network));
	json_object_set_new(o, "HostConfig", hc);
	out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	free(script);
	if (!out)
		return NULL;   /* invalid UTF-8 in a string */
	res = sw_strdup(out);
	free(out);
	return res;
}

static int docker_start(struct sw_runner *r, const struct sw_runner_spec *sp,
			struct sw_runner_step **out)
{
	struct docker_runner *dr = (struct docker_runner *)r;
	struct docker_step *s;
	char *ws = NULL;
	char path[600];

	if (!sp->image || !docker_valid_image(sp->image))
		return sw_error_setc(SW_EINVALID, "docker step: bad image name %s",
				     sp->image ? sp->image : "(none)");
	if (sp->workspace) {
		ws = realpath(sp->workspace, NULL);
		if (!ws)
			return sw_error_errno("docker step: workspace %s", sp->workspace);
	}
	for (size_t i = 0; sp->binds && sp->binds[i]; i++) {
		const char *b = sp->binds[i], *colon = strchr(b, ':');
		if (b[0] != '/' || !colon || colon[1] != '/') {
			free(ws);
			return sw_error_setc(SW_EINVALID, "docker step: bind %s is not "
					     "/HOST:/CONTAINER[:ro]", b);
		}
	}
	s = sw_calloc(1, sizeof(*s));
	s->base.runner = r;
	s->dr = dr;
	s->msg = (struct sw_buf)SW_BUF_INIT;
	s->exit_file = exit_file_new();   /* NULL: no fallback, the engine's word only */
	s->create_body = create_body(sp, ws, s->exit_file);
	free(ws);
	if (!s->create_body) {
		step_free(s);
		return sw_error_setc(SW_EINVALID, "docker step: command or env is not valid UTF-8");
	}
	s->image = sw_strdup(sp->image);
	s->timeout_ms = sp->timeout_ms;
	s->on_output = sp->on_output;
	s->on_done = sp->on_done;
	s->arg = sp->arg;
	s->exit_code = -1;
	s->started = now_ms();
	s->timer = evtimer_new(dr->evbase, timeout_cb, s);
	s->finish_ev = event_new(dr->evbase, -1, 0, finish_cb, s);
	s->check_timer = evtimer_new(dr->evbase, check_again, s);
	s->last_code = NO_CODE;

	s->phase = PH_INSPECT;
	snprintf(path, sizeof(path), "/images/%s/json", s->image);
	if (docker_request(dr, "GET", path, NULL, NULL, 0, CONTROL_TIMEOUT_MS, NULL, inspected, s,
		    &s->call) < 0) {
		sw_error_prefix("docker step");
		step_free(s);
		return SW_ERR;
	}
	s->next = dr->steps;
	if (dr->steps)
		dr->steps->prev = s;
	dr->steps = s;
	dr->base.active++;
	log_info("runner.start", "kind=docker image=%s label=%s", sw_q(s->image),
		 sw_q(sp->label ? sp->label : "1"));
	if (out)
		*out = &s->base;
	return 0;
}

static void docker_cancel(struct sw_runner_step *step)
{
	struct docker_step *s = (struct docker_step *)step;

	if (s->cancelled || s->phase >= PH_REMOVE)
		return;
	if (s->phase == PH_RUNNING && s->wait_done)
		return;       /* ended on its own: report that */
	s->cancelled = 1;
	log_info("runner.cancel", "id=%.12s phase=%d", s->id, (int)s->phase);
	switch (s->phase) {
	case PH_INSPECT:
	case PH_PULL:
		/* Nothing was created yet: drop the request. */
		sw_http_cancel(s->call);
		s->call = NULL;
		finish(s);
		break;
	case PH_ATTACH:
		/* Made but not started: remove it (that drops the attach). */
		remove_container(s);
		break;
	case PH_CREATE:
	case PH_START:
		/* Let the request answer: its handler sees `cancelled` and
		 * removes the container it may have made. */
		break;
	case PH_RUNNING:
		kill_container(s);
		break;
	default:
		break;
	}
}

static void forget(struct sw_http_result *r, void *arg)
{
	(void)r;
	(void)arg;
}

static void docker_free(struct sw_runner *r)
{
	struct docker_runner *dr = (struct docker_runner *)r;

	while (dr->steps) {
		struct docker_step *s = dr->steps;
		if (s->id[0] && s->phase != PH_DONE) {
			char path[160];
			snprintf(path, sizeof(path), "/containers/%s?force=1&v=1", s->id);
			docker_request(dr, "DELETE", path, NULL, NULL, 0, CONTROL_TIMEOUT_MS, NULL, forget,
				NULL, NULL);
		}
		step_unlink(s);
		step_free(s);
	}
	free(dr->socket);
	free(dr->prefix);
	free(dr);
}

const struct sw_runner_ops docker_ops = {
	.kind = "docker",
	.start = docker_start,
	.cancel = docker_cancel,
	.free = docker_free,
};

int sw_runner_docker_new(struct sw_runner **out, struct event_base *base, struct sw_http *http,
			 const struct sw_docker_opts *o)
{
	struct docker_runner *dr = sw_calloc(1, sizeof(*dr));
	const char *api = o && o->api_version ? o->api_version : "v1.41";

	dr->base.ops = &docker_ops;
	dr->evbase = base;
	dr->http = http;
	dr->socket = sw_strdup(o && o->socket ? o->socket : "/var/run/docker.sock");
	dr->prefix = sw_asprintf("http://docker/%s", api);
	dr->pull_timeout_ms = o && o->pull_timeout_ms > 0 ? o->pull_timeout_ms : PULL_TIMEOUT_MS;
	dr->settle_ms = o && o->settle_ms > 0 ? o->settle_ms : SETTLE_MS;
	*out = &dr->base;
	return 0;
}
