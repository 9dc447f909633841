/*
 * test_http.c - lib/http against a small evhttp server on the same loop:
 * one on 127.0.0.1 (ephemeral port) and one on an AF_UNIX socket.
 *
 * Server routes:
 *   /echo[?status=N]   echoes method, body and X-Test; sets Retry-After,
 *                      X-RateLimit-Remaining and X-Peer-Port (client port)
 *   /chunked?n=N       N chunks "chunk<i>\n", 10 ms apart (chunked encoding)
 *   /big?n=N           N bytes of 'x'
 *   /hang              never answers (freed with the server)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "lib/buf.h"
#include "lib/http.h"
#include "tests/unit/slow.h"

struct fixture {
	struct event_base *base;
	struct evhttp *srv;
	struct evhttp *usrv;
	struct sw_http *http;
	int port;
	char url[128];
	char sock_path[108];
	char tmpdir[64];
	struct event *guard;
};

/* ---- server ---------------------------------------------------------- */

struct chunker {
	struct evhttp_request *req;
	struct event *ev;
	int i, n;
};

/* The client went away mid-stream (an aborted or cancelled call). */
static void chunk_closed(struct evhttp_connection *c, void *arg)
{
	struct chunker *ck = arg;
	/* libevent 2.1 detaches a request whose reply is still being sent
	 * and leaves it to its user; one still attached is freed with the
	 * connection. */
	if (!evhttp_request_get_connection(ck->req))
		evhttp_request_free(ck->req);
	event_free(ck->ev);
	free(ck);
}

static void chunk_cb(evutil_socket_t fd, short what, void *arg)
{
	struct chunker *ck = arg;
	struct evbuffer *b;

	if (ck->i == ck->n) {
		evhttp_connection_set_closecb(evhttp_request_get_connection(ck->req), NULL, NULL);
		evhttp_send_reply_end(ck->req);
		event_free(ck->ev);
		free(ck);
		return;
	}
	b = evbuffer_new();
	evbuffer_add_printf(b, "chunk%d\n", ck->i++);
	evhttp_send_reply_chunk(ck->req, b);
	evbuffer_free(b);
	struct timeval tv = { 0, 10000 };
	evtimer_add(ck->ev, &tv);
}

static int query_int(struct evhttp_request *req, const char *key, int def)
{
	struct evkeyvalq q;
	const char *v;
	int r = def;
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));

	if (!query)
		return def;
	evhttp_parse_query_str(query, &q);
	v = evhttp_find_header(&q, key);
	if (v)
		r = atoi(v);
	evhttp_clear_headers(&q);
	return r;
}

static const char *method_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_PATCH: return "PATCH";
	case EVHTTP_REQ_HEAD: return "HEAD";
	default: return "OTHER";
	}
}

static void server_cb(struct evhttp_request *req, void *arg)
{
	struct fixture *f = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct evbuffer *reply;

	if (strcmp(path, "/hang") == 0)
		return;
	reply = evbuffer_new();
	if (strcmp(path, "/echo") == 0) {
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		const char *xt = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Test");
		char *peer = NULL;
		ev_uint16_t pport = 0;
		char portbuf[16];

		evhttp_connection_get_peer(evhttp_request_get_connection(req), &peer, &pport);
		snprintf(portbuf, sizeof(portbuf), "%u", pport);
		evhttp_add_header(out, "X-Peer-Port", portbuf);
		evhttp_add_header(out, "Retry-After", "7");
		evhttp_add_header(out, "X-RateLimit-Remaining", "0");
		evhttp_add_header(out, "Content-Type", "text/plain");
		evbuffer_add_printf(reply, "%s %s|", method_name(evhttp_request_get_command(req)),
				    xt ? xt : "-");
		evbuffer_add_buffer(reply, in);
		evhttp_send_reply(req, query_int(req, "status", 200), "X", reply);
	} else if (strcmp(path, "/chunked") == 0) {
		struct chunker *ck = calloc(1, sizeof(*ck));
		ck->req = req;
		ck->n = query_int(req, "n", 3);
		ck->ev = evtimer_new(f->base, chunk_cb, ck);
		evhttp_connection_set_closecb(evhttp_request_get_connection(req), chunk_closed, ck);
		evhttp_send_reply_start(req, 200, "OK");
		event_active(ck->ev, 0, 0);
	} else if (strcmp(path, "/big") == 0) {
		int n = query_int(req, "n", 1000);
		char *x = malloc((size_t)n);
		memset(x, 'x', (size_t)n);
		evbuffer_add(reply, x, (size_t)n);
		free(x);
		evhttp_send_reply(req, 200, "OK", reply);
	} else {
		evhttp_send_reply(req, 404, "Not Found", reply);
	}
	evbuffer_free(reply);
}

static void guard_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fixture *f = arg;
	fprintf(stderr, "test loop ran too long\n");
	event_base_loopbreak(f->base);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct sockaddr_un sun;
	int fd;

	f->base = event_base_new();
	f->srv = evhttp_new(f->base);
	evhttp_set_allowed_methods(f->srv, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
				   EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(f->srv, server_cb, f);
	bs = evhttp_bind_socket_with_handle(f->srv, "127.0.0.1", 0);
	assert_non_null(bs);
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl);
	f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", f->port);

	/* The same server on a unix socket, as Docker's API is reached. */
	snprintf(f->tmpdir, sizeof(f->tmpdir), "/tmp/sw-http-XXXXXX");
	assert_non_null(mkdtemp(f->tmpdir));
	snprintf(f->sock_path, sizeof(f->sock_path), "%s/s.sock", f->tmpdir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", f->sock_path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(fd, 128), 0);
	f->usrv = evhttp_new(f->base);
	evhttp_set_gencb(f->usrv, server_cb, f);
	struct evconnlistener *l = evconnlistener_new(f->base, NULL, NULL,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	assert_non_null(l);
	assert_non_null(evhttp_bind_listener(f->usrv, l));

	assert_int_equal(sw_http_new(&f->http, f->base), 0);
	f->guard = evtimer_new(f->base, guard_cb, f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	sw_http_free(f->http);
	evhttp_free(f->srv);
	evhttp_free(f->usrv);
	event_free(f->guard);
	event_base_free(f->base);
	unlink(f->sock_path);
	rmdir(f->tmpdir);
	free(f);
	return 0;
}

/* Run the loop until `*v` reaches `n` or 10 s (scaled) pass. */
static void run_until_n(struct fixture *f, int *v, int n)
{
	long ms = sw_test_ms(10000);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(f->guard, &tv);
	while (*v < n && evtimer_pending(f->guard, NULL)) {
		if (event_base_loop(f->base, EVLOOP_ONCE) != 0)
			break;
	}
	evtimer_del(f->guard);
}

static void run_until(struct fixture *f, int *flag)
{
	run_until_n(f, flag, 1);
}

/* ---- a recorder for one call ----------------------------------------- */

struct rec {
	int done;
	int error;
	int timed_out;
	long status;
	struct sw_buf body;
	struct sw_buf streamed;
	char msg[512];
	char retry_after[32];
	char ratelimit[32];
	char ctype[64];
	char peer_port[16];
	int stop_after;        /* on_data returns 1 after this many pieces */
	long response_status;  /* from on_response */
	int pieces_at_response;
	int pieces;
	int *counter;          /* incremented on done, for many calls */
};

#define REC_INIT { .body = SW_BUF_INIT, .streamed = SW_BUF_INIT }

static void copy_hdr(char *dst, size_t n, const struct sw_http_result *r, const char *name)
{
	const char *v = sw_http_result_header(r, name);
	snprintf(dst, n, "%s", v ? v : "");
}

static void rec_done(struct sw_http_result *r, void *arg)
{
	struct rec *rc = arg;
	rc->done++;
	rc->error = r->error;
	rc->timed_out = r->timed_out;
	rc->status = r->status;
	snprintf(rc->msg, sizeof(rc->msg), "%s", r->error_msg);
	/* Take the body's memory, as a caller may. */
	struct sw_buf tmp = rc->body;
	rc->body = *r->body;
	*r->body = tmp;
	copy_hdr(rc->retry_after, sizeof(rc->retry_after), r, "retry-after");
	copy_hdr(rc->ratelimit, sizeof(rc->ratelimit), r, "X-RateLimit-Remaining");
	copy_hdr(rc->ctype, sizeof(rc->ctype), r, "content-type");
	copy_hdr(rc->peer_port, sizeof(rc->peer_port), r, "x-peer-port");
	if (rc->counter)
		(*rc->counter)++;
}

static int rec_data(const char *p, size_t n, void *arg)
{
	struct rec *rc = arg;
	sw_buf_add(&rc->streamed, p, n);
	rc->pieces++;
	if (rc->stop_after && rc->pieces >= rc->stop_after)
		return 1;
	return 0;
}

static int rec_response(long status, void *arg)
{
	struct rec *rc = arg;
	rc->response_status = status;
	rc->pieces_at_response = rc->pieces;
	return 0;
}

static void rec_release(struct rec *rc)
{
	sw_buf_release(&rc->body);
	sw_buf_release(&rc->streamed);
}

static void start(struct fixture *f, struct sw_http_opts *o, const char *path, struct rec *rc,
		  struct sw_http_call **call)
{
	char url[256];
	snprintf(url, sizeof(url), "%s%s", f->url, path);
	o->url = url;
	o->on_done = rec_done;
	o->arg = rc;
	assert_int_equal(sw_http_start(f->http, o, call), 0);
}

/* ---- tests ----------------------------------------------------------- */

static void test_get(void **state)
{
	struct fixture *f = *state;
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	struct rec rc = REC_INIT;
	const char *hdrs[] = { "X-Test: hello", NULL };

	o.headers = hdrs;
	start(f, &o, "/echo", &rc, NULL);
	assert_int_equal(sw_http_pending(f->http), 1);
	run_until(f, &rc.done);
	assert_int_equal(rc.done, 1);
	assert_int_equal(rc.error, 0);
	assert_int_equal(rc.status, 200);
	assert_string_equal(rc.body.ptr, "GET hello|");
	assert_string_equal(rc.retry_after, "7");
	assert_string_equal(rc.ratelimit, "0");
	assert_string_equal(rc.ctype, "text/plain");
	assert_string_equal(rc.msg, "");
	assert_int_equal(sw_http_pending(f->http), 0);
	rec_release(&rc);
}

static void test_post_body_and_methods(void **state)
{
	struct fixture *f = *state;
	const char *methods[] = { "POST", "PUT", "PATCH", "DELETE" };

	for (size_t i = 0; i < 4; i++) {
		struct sw_http_opts o = SW_HTTP_OPTS_INIT;
		struct rec rc = REC_INIT;
		char body[64];
		const char *hdrs[] = { "X-Test: m", "Content-Type: application/json", NULL };

		snprintf(body, sizeof(body), "{\"n\":%zu}", i);
		o.method = methods[i];
		o.headers = hdrs;
		o.body = body;
		o.body_len = strlen(body);
		start(f, &o, "/echo?status=201", &rc, NULL);
		/* The body was copied: scribbling over ours changes nothing. */
		memset(body, '#', sizeof(body) - 1);
		run_until(f, &rc.done);
		assert_int_equal(rc.error, 0);
		assert_int_equal(rc.status, 201);
		char want[128];
		snprintf(want, sizeof(want), "%s m|{\"n\":%zu}", methods[i], i);
		assert_string_equal(rc.body.ptr, want);
		rec_release(&rc);
	}
}

static void test_post_large_body(void **state)
{
	struct fixture *f = *state;
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	struct rec rc = REC_INIT;
	size_t n = 3 * 1024 * 1024;
	char *big = malloc(n);

	for (size_t i = 0; i < n; i++)
		big[i] = (char)('a' + i % 26);
	o.body = big;
	o.body_len = n;
	start(f, &o, "/echo", &rc, NULL);
	run_until(f, &rc.done);
	assert_int_equal(rc.error, 0);
	assert_int_equal(rc.status, 200);
	assert_int_equal(rc.body.len, n + strlen("POST -|"));
	assert_memory_equal(rc.body.ptr + strlen("POST -|"), big, n);
	free(big);
	rec_release(&rc);
}

static void test_status_codes(void **state)
{
	struct fixture *f = *state;
	long codes[] = { 204, 404, 429, 500, 503 };

	for (size_t i = 0; i < 5; i++) {
		struct sw_http_opts o = SW_HTTP_OPTS_INIT;
		struct rec rc = REC_INIT;
		char path[64];
		snprintf(path, sizeof(path), "/echo?status=%ld", codes[i]);
		start(f, &o, path, &rc, NULL);
		run_until(f, &rc.done);
		assert_int_equal(rc.error, 0);
		assert_int_equal(rc.status, codes[i]);
		assert_string_equal(rc.retry_after, "7");
		rec_release(&rc);
	}
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	struct rec rc = REC_INIT;
	start(f, &o, "/nowhere", &rc, NULL);
	run_until(f, &rc.done);
	assert_int_equal(rc.status, 404);
	rec_release(&rc);
}

static void test_keepalive_reuse(void **state)
{
	struct fixture *f = *state;
	char first[16] = "";

	for (int i = 0; i < 5; i++) {
		struct sw_http_opts o = SW_HTTP_OPTS_INIT;
		struct rec rc = REC_INIT;
		start(f, &o, "/echo", &rc, NULL);
		run_until(f, &rc.done);
		assert_int_equal(rc.status, 200);
		if (i == 0)
			snprintf(first, sizeof(first), "%s", rc.peer_port);
		else
			assert_string_equal(rc.peer_port, first);  /* same connection */
		rec_release(&rc);
	}
}

static void test_streaming_chunked(void **state)
{
	struct fixture *f = *state;
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	struct rec rc = REC_INIT;

	o.on_data = rec_data;
	o.on_response = rec_response;
	start(f, &o, "/chunked?n=20", &rc, NULL);
	run_until(f, &rc.done);
	assert_int_equal(rc.error, 0);
	assert_int_equal(rc.status, 200);
	assert_true(rc.pieces >= 2);     /* arrived over time, not at once */
	assert_int_equal(rc.response_status, 200);
	assert_int_equal(rc.pieces_at_response, 0);   /* headers before body */
	struct sw_buf want = SW_BUF_INIT;
	for (int i = 0; i < 20; i++)
		sw_buf_addf(&want, "chunk%d\n", i);
	assert_string_equal(rc.streamed.ptr, want.ptr);
	assert_int_equal(rc.body.len, 0);
	sw_buf_release(&want);
	rec_release(&rc);
}

static void test_streaming_abort(void **state)
{
	struct fixture *f = *state;
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	struct rec rc = REC_INIT;

	o.on_data = rec_data;
	rc.stop_after = 1;
	start(f, &o, "/chunked?n=50", &rc, NULL);
	run_until(f, &rc.done);
	assert_int_equal(rc.done, 1);
	assert_int_equal(rc.error, SW_ECANCELLED);
	assert_int_equal(rc.pieces, 1);
	rec_release(&rc);
}

/* A non-2xx body is not streamed: it is kept for the error message. */
static void test_streaming_error_body_buffered(void **state)
{
	struct fixture *f = *state;
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	struct rec rc = REC_INIT;

	o.on_data = rec_data;
	o.method = "POST";
	o.body = "oops";
	o.body_len = 4;
	start(f, &o, "/echo?status=409", &rc, NULL);
	run_until(f, &rc.done);
	assert_int_equal(rc.status, 409);
	assert_int_equal(rc.pieces, 0);
	assert_string_equal(rc.body.ptr, "POST -|oops");
	rec_release(&rc);
}

static void test_timeout(void **state)
{
	struct fixture *f = *state;
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	struct rec rc = REC_INIT;

	o.timeout_ms = 200;
	start(f, &o, "/hang", &rc, NULL);
	run_until(f, &rc.done);
	assert_int_equal(rc.done, 1);
	assert_int_equal(rc.error, SW_ERR);
	assert_true(rc.timed_out);
	assert_non_null(strstr(rc.msg, "GET "));
	assert_non_null(strstr(rc.msg, "/hang"));
	rec_release(&rc);
}

static void cancel_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sw_http_call **call = arg;
	sw_http_cancel(*call);
	*call = NULL;
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	struct rec rc = REC_INIT;
	struct sw_http_call *call;
	struct timeval tv = { 0, 50000 };

	start(f, &o, "/hang", &rc, &call);
	assert_non_null(call);
	struct event *ev = evtimer_new(f->base, cancel_cb, &call);
	evtimer_add(ev, &tv);
	/* Run 300 ms: the cancel fires after 50 ms; no callback follows. */
	struct timeval stop = { 0, 300000 };
	event_base_loopexit(f->base, &stop);
	event_base_dispatch(f->base);
	assert_null(call);
	assert_int_equal(rc.done, 0);
	assert_int_equal(sw_http_pending(f->http), 0);
	event_free(ev);
	rec_release(&rc);
}

/* on_data cancels its own call: nothing more is called. */
static int cancel_self_data(const char *p, size_t n, void *arg)
{
	struct rec *rc = arg;
	rc->pieces++;
	sw_http_cancel(*(struct sw_http_call **)rc->counter);
	rc->counter = NULL;
	return 0;
}

static void test_cancel_from_on_data(void **state)
{
	struct fixture *f = *state;
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	struct rec rc = REC_INIT;
	struct sw_http_call *call;

	o.on_data = cancel_self_data;
	start(f, &o, "/chunked?n=30", &rc, &call);
	rc.counter = (int *)&call;
	struct timeval stop = { 0, 500000 };
	event_base_loopexit(f->base, &stop);
	event_base_dispatch(f->base);
	assert_int_equal(rc.pieces, 1);
	assert_int_equal(rc.done, 0);
	assert_int_equal(sw_http_pending(f->http), 0);
	rec_release(&rc);
}

static void test_max_size(void **state)
{
	struct fixture *f = *state;
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	struct rec rc = REC_INIT;

	o.max_response = 1000;
	start(f, &o, "/big?n=100000", &rc, NULL);
	run_until(f, &rc.done);
	assert_int_equal(rc.error, SW_EINVALID);
	assert_non_null(strstr(rc.msg, "larger than 1000 bytes"));
	assert_true(rc.body.len <= 1000);
	rec_release(&rc);

	struct sw_http_opts o2 = SW_HTTP_OPTS_INIT;
	struct rec rc2 = REC_INIT;
	o2.max_response = 100000;
	start(f, &o2, "/big?n=100000", &rc2, NULL);
	run_until(f, &rc2.done);
	assert_int_equal(rc2.error, 0);
	assert_int_equal(rc2.body.len, 100000);
	rec_release(&rc2);
}

static void test_connection_refused(void **state)
{
	struct fixture *f = *state;
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	struct rec rc = REC_INIT;

	/* Port 1 on localhost: nothing listens there. */
	o.url = "http://127.0.0.1:1/x";
	o.on_done = rec_done;
	o.arg = &rc;
	assert_int_equal(sw_http_start(f->http, &o, NULL), 0);
	assert_int_equal(rc.done, 0);     /* never called before returning */
	run_until(f, &rc.done);
	assert_int_equal(rc.error, SW_ERR);
	assert_int_equal(rc.status, 0);
	assert_false(rc.timed_out);
	assert_non_null(strstr(rc.msg, "http://127.0.0.1:1/x"));
	rec_release(&rc);

	struct sw_http_opts bad = SW_HTTP_OPTS_INIT;
	assert_int_equal(sw_http_start(f->http, &bad, NULL), SW_EINVALID);
}

static void test_many_concurrent(void **state)
{
	struct fixture *f = *state;
	enum { N = 100 };
	struct rec *rc = calloc(N, sizeof(*rc));
	int count = 0;

	for (int i = 0; i < N; i++) {
		struct sw_http_opts o = SW_HTTP_OPTS_INIT;
		char body[32];
		rc[i].body = (struct sw_buf)SW_BUF_INIT;
		rc[i].streamed = (struct sw_buf)SW_BUF_INIT;
		rc[i].counter = &count;
		snprintf(body, sizeof(body), "%d", i);
		o.body = body;
		o.body_len = strlen(body);
		start(f, &o, "/echo", &rc[i], NULL);
	}
	assert_int_equal(sw_http_pending(f->http), N);
	run_until_n(f, &count, N);
	assert_int_equal(count, N);
	for (int i = 0; i < N; i++) {
		char want[32];
		snprintf(want, sizeof(want), "POST -|%d", i);
		assert_int_equal(rc[i].error, 0);
		assert_int_equal(rc[i].status, 200);
		assert_string_equal(rc[i].body.ptr, want);
		rec_release(&rc[i]);
	}
	assert_int_equal(sw_http_pending(f->http), 0);
	free(rc);
}

static void test_unix_socket(void **state)
{
	struct fixture *f = *state;
	struct rec rc = REC_INIT;
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;

	o.url = "http://docker/echo?status=202";
	o.unix_socket = f->sock_path;
	o.method = "POST";
	o.body = "via unix";
	o.body_len = 8;
	o.on_done = rec_done;
	o.arg = &rc;
	assert_int_equal(sw_http_start(f->http, &o, NULL), 0);
	run_until(f, &rc.done);
	assert_int_equal(rc.error, 0);
	assert_int_equal(rc.status, 202);
	assert_string_equal(rc.body.ptr, "POST -|via unix");
	rec_release(&rc);
}

/* Free with calls in flight: no callback, no leak (ASan checks). */
static void test_free_in_flight(void **state)
{
	struct fixture *f = *state;
	struct sw_http *h;
	struct rec rc = REC_INIT;

	assert_int_equal(sw_http_new(&h, f->base), 0);
	for (int i = 0; i < 3; i++) {
		struct sw_http_opts o = SW_HTTP_OPTS_INIT;
		char url[128];
		snprintf(url, sizeof(url), "%s/hang", f->url);
		o.url = url;
		o.on_done = rec_done;
		o.arg = &rc;
		assert_int_equal(sw_http_start(h, &o, NULL), 0);
	}
	struct timeval stop = { 0, 100000 };
	event_base_loopexit(f->base, &stop);
	event_base_dispatch(f->base);
	sw_http_free(h);
	assert_int_equal(rc.done, 0);
	rec_release(&rc);
}

static void test_escape(void **state)
{
	struct sw_buf b = SW_BUF_INIT;
	sw_http_escape(&b, "busybox:1.36 a/b&c=d~_.-");
	assert_string_equal(b.ptr, "busybox%3A1.36%20a%2Fb%26c%3Dd~_.-");
	sw_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_body_and_methods, setup, teardown),
		cmocka_unit_test_setup_teardown(test_post_large_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_codes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keepalive_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_streaming_chunked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_streaming_abort, setup, teardown),
		cmocka_unit_test_setup_teardown(test_streaming_error_body_buffered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_from_on_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unix_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_in_flight, setup, teardown),
		cmocka_unit_test(test_escape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
