/*
 * test_outbox.c - the outbox sender against a real store in a temporary
 * directory and a small evhttp server on the same loop standing in for the
 * GitHub REST API (/gh/...), the Slack Web API (/slack/api/...) and a Slack
 * incoming webhook (/hooks/...).
 *
 * The server records every request (method, path, body, the headers that
 * matter, when it arrived) and answers from a script of canned responses,
 * falling back to what GitHub and Slack answer on success. Everything the
 * sender logs goes to a file (fd 2 is redirected during each test); teardown
 * fails the test when a secret appears in it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "config/config.h"
#include "github/github.h"
#include "lib/http.h"
#include "report/report.h"
#include "storage/store.h"
#include "tests/unit/slow.h"

#define TOKEN "ghp_SeCrEtToKeN123"
#define BOT "xoxb-SeCrEtBoT456"
#define HOOK_PATH "/hooks/services/T000/B000/HookSecret789"
#define SHA "0123456789abcdef0123456789abcdef01234567"
#define SHA2 "89abcdef0123456789abcdef0123456789abcdef"

#define MAX_REQS 64
#define MAX_SCRIPT 32

struct recd {
	char method[8];
	char path[256];
	char query[128];
	char *body;
	char accept[64], apiver[32], ua[64], auth[96], ctype[64];
	int64_t t;
};

struct canned {
	int status;
	const char *body;
	const char *h1, *v1;     /* one extra response header */
	const char *h2, *v2;
	int hang;                /* do what the default would, but never answer */
};

struct comment {
	int id, issue;
	char *body;
};

struct fixture {
	struct event_base *base;
	struct evhttp *srv;
	struct sw_http *http;
	struct sw_store *store;
	struct sw_outbox *ob;
	struct sw_outbox_opts opts;
	struct sw_config cfg;
	char url[128];
	char tmpdir[64];
	char gh_url[160], slack_api[160], hook_url[256];
	struct event *guard;
	int guard_fired;

	struct recd reqs[MAX_REQS];
	int nreqs;
	struct canned script[MAX_SCRIPT];
	int nscript, script_pos;
	int next_comment_id;
	struct comment comments[16];
	int ncomments;

	char logpath[128];
	int saved_stderr;

	struct sw_github_app *app;   /* the App tests' */
	int minted;                  /* installation tokens the stand-in made */
};

/* ---- server ---------------------------------------------------------- */

static const char *method_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "OTHER";
	}
}

static void copy_in(char *dst, size_t n, struct evhttp_request *req, const char *name)
{
	const char *v = evhttp_find_header(evhttp_request_get_input_headers(req), name);
	snprintf(dst, n, "%s", v ? v : "");
}

static void reply(struct evhttp_request *req, int status, const char *body)
{
	struct evbuffer *b = evbuffer_new();
	evbuffer_add(b, body, strlen(body));
	evhttp_send_reply(req, status, "X", b);
	evbuffer_free(b);
}

/* What GitHub and Slack do and answer on success; `answer` 0: do it, answer nothing. */
static void default_route(struct fixture *f, struct evhttp_request *req, const struct recd *r,
			  int answer)
{
	const char *path = r->path;
	char buf[256];
	int issue;

	if (!strncmp(path, "/gh/", 4) && strstr(path, "/statuses/")) {
		if (answer)
			reply(req, 201, "{\"id\":1,\"state\":\"success\"}");
	} else if (!strncmp(path, "/gh/", 4) && strstr(path, "/issues/comments/")) {
		int id = atoi(strrchr(path, '/') + 1);
		json_t *in = json_loads(r->body, 0, NULL);
		int found = 0;
		for (int i = 0; i < f->ncomments; i++) {
			if (f->comments[i].id != id)
				continue;
			free(f->comments[i].body);
			f->comments[i].body = strdup(json_string_value(json_object_get(in, "body")));
			found = 1;
		}
		json_decref(in);
		snprintf(buf, sizeof(buf), "{\"id\":%d}", id);
		if (answer)
			reply(req, found ? 200 : 404, found ? buf : "{\"message\":\"Not Found\"}");
	} else if (!strncmp(path, "/gh/", 4) && strstr(path, "/comments") &&
		   sscanf(strstr(path, "/issues/"), "/issues/%d/comments", &issue) == 1 &&
		   !strcmp(r->method, "GET")) {
		json_t *list = json_array();
		for (int i = 0; i < f->ncomments; i++)
			if (f->comments[i].issue == issue)
				json_array_append_new(list, json_pack("{s:i, s:s}", "id",
					f->comments[i].id, "body", f->comments[i].body));
		char *text = json_dumps(list, JSON_COMPACT);
		json_decref(list);
		if (answer)
			reply(req, 200, text);
		free(text);
	} else if (!strncmp(path, "/gh/", 4) && strstr(path, "/comments") &&
		   sscanf(strstr(path, "/issues/"), "/issues/%d/comments", &issue) == 1) {
		json_t *in = json_loads(r->body, 0, NULL);
		struct comment *c = &f->comments[f->ncomments++];
		c->id = f->next_comment_id++;
		c->issue = issue;
		c->body = strdup(json_string_value(json_object_get(in, "body")));
		json_decref(in);
		snprintf(buf, sizeof(buf), "{\"id\":%d,\"body\":\"x\"}", c->id);
		if (answer)
			reply(req, 201, buf);
	} else if (!answer) {
		return;
	} else if (!strcmp(path, HOOK_PATH)) {
		reply(req, 200, "ok");
	} else if (!strcmp(path, "/slack/api/chat.postMessage")) {
		reply(req, 200, "{\"ok\":true,\"channel\":\"C123\",\"ts\":\"1700000000.000100\"}");
	} else if (!strcmp(path, "/slack/api/chat.update")) {
		reply(req, 200, "{\"ok\":true,\"channel\":\"C123\",\"ts\":\"1700000000.000100\"}");
	} else {
		reply(req, 404, "{\"message\":\"Not Found\"}");
	}
}

static void server_cb(struct evhttp_request *req, void *arg)
{
	struct fixture *f = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	struct recd *r;
	size_t n = evbuffer_get_length(in);
	const char *query;

	assert_true(f->nreqs < MAX_REQS);
	r = &f->reqs[f->nreqs++];
	snprintf(r->method, sizeof(r->method), "%s", method_name(evhttp_request_get_command(req)));
	snprintf(r->path, sizeof(r->path), "%s", path);
	query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	snprintf(r->query, sizeof(r->query), "%s", query ? query : "");
	r->body = calloc(1, n + 1);
	evbuffer_copyout(in, r->body, n);
	copy_in(r->accept, sizeof(r->accept), req, "Accept");
	copy_in(r->apiver, sizeof(r->apiver), req, "X-GitHub-Api-Version");
	copy_in(r->ua, sizeof(r->ua), req, "User-Agent");
	copy_in(r->auth, sizeof(r->auth), req, "Authorization");
	copy_in(r->ctype, sizeof(r->ctype), req, "Content-Type");
	r->t = sw_mono_ms();

	/* A GitHub App's endpoints answer outside the script: acme/shop is in
	 * installation 11, octo/app in 12; tokens "ghs_INST_N". */
	if (!strncmp(path, "/gh/app/installations/", 22) || strstr(path, "/installation")) {
		char buf[160];
		if (strncmp(r->auth, "Bearer ey", 9) != 0) {
			reply(req, 401, "{\"message\":\"A JSON web token could not be decoded\"}");
		} else if (strstr(path, "/installation") && !strstr(path, "/installations/")) {
			snprintf(buf, sizeof(buf), "{\"id\":%d}", strstr(path, "acme/shop") ? 11 : 12);
			reply(req, 200, buf);
		} else {
			snprintf(buf, sizeof(buf), "{\"token\":\"ghs_%d_%d\",\"expires_at\":"
				 "\"2999-01-01T00:00:00Z\"}", atoi(path + 22), ++f->minted);
			reply(req, 201, buf);
		}
		return;
	}
	if (f->script_pos < f->nscript) {
		struct canned *c = &f->script[f->script_pos++];
		if (c->hang) {
			default_route(f, req, r, 0);
			return;
		}
		if (c->h1)
			evhttp_add_header(out, c->h1, c->v1);
		if (c->h2)
			evhttp_add_header(out, c->h2, c->v2);
		reply(req, c->status, c->body ? c->body : "");
		return;
	}
	default_route(f, req, r, 1);
}

static void script(struct fixture *f, struct canned c)
{
	assert_true(f->nscript < MAX_SCRIPT);
	f->script[f->nscript++] = c;
}

/* ---- fixture --------------------------------------------------------- */

static void guard_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fixture *f = arg;
	f->guard_fired = 1;
}

static void start_outbox(struct fixture *f)
{
	assert_int_equal(sw_outbox_new_opts(&f->ob, f->base, f->http, f->store, &f->cfg,
					    &f->opts), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd;

	snprintf(f->tmpdir, sizeof(f->tmpdir), "/tmp/sw-outbox-XXXXXX");
	assert_non_null(mkdtemp(f->tmpdir));

	/* Capture what is logged. */
	snprintf(f->logpath, sizeof(f->logpath), "%s/log", f->tmpdir);
	fd = open(f->logpath, O_CREAT | O_TRUNC | O_WRONLY | O_APPEND, 0600);
	assert_true(fd >= 0);
	f->saved_stderr = dup(2);
	dup2(fd, 2);
	close(fd);

	assert_int_equal(sw_store_open(&f->store, f->tmpdir), 0);

	f->base = event_base_new();
	f->srv = evhttp_new(f->base);
	evhttp_set_allowed_methods(f->srv, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
				   EVHTTP_REQ_PATCH | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
	evhttp_set_gencb(f->srv, server_cb, f);
	bs = evhttp_bind_socket_with_handle(f->srv, "127.0.0.1", 0);
	assert_non_null(bs);
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl);
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d",
		 ntohs(((struct sockaddr_in *)&ss)->sin_port));
	assert_int_equal(sw_http_new(&f->http, f->base), 0);
	f->guard = evtimer_new(f->base, guard_cb, f);
	f->next_comment_id = 1001;

	/* GitHub configured; Slack per test. Trailing slash on purpose. */
	snprintf(f->gh_url, sizeof(f->gh_url), "%s/gh/", f->url);
	snprintf(f->slack_api, sizeof(f->slack_api), "%s/slack/api", f->url);
	snprintf(f->hook_url, sizeof(f->hook_url), "%s%s", f->url, HOOK_PATH);
	f->cfg.github_api_url = f->gh_url;
	f->cfg.github_token.value = TOKEN;
	f->cfg.slack_api_url = f->slack_api;
	f->cfg.notify_give_up_s = 86400;

	f->opts = (struct sw_outbox_opts)SW_OUTBOX_OPTS_INIT;
	f->opts.poll_ms = 20;
	f->opts.backoff_base_ms = 100;
	f->opts.backoff_max_ms = 400;
	f->opts.secondary_min_ms = 200;
	f->opts.slack_interval_ms = 50;
	f->opts.timeout_ms = sw_test_ms(5000);
	*state = f;
	return 0;
}

static char *read_log(struct fixture *f)
{
	struct sw_buf b = SW_BUF_INIT;
	sw_buf_read_file(&b, f->logpath);
	return sw_buf_detach(&b, NULL);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char *log;
	int leak;

	sw_outbox_free(f->ob);
	sw_github_app_free(f->app);
	free(f->cfg.github_app.id);
	free(f->cfg.github_app.private_key.value);
	sw_http_free(f->http);
	evhttp_free(f->srv);
	event_free(f->guard);
	event_base_free(f->base);
	sw_store_close(f->store);
	for (int i = 0; i < f->nreqs; i++)
		free(f->reqs[i].body);
	for (int i = 0; i < f->ncomments; i++)
		free(f->comments[i].body);

	dup2(f->saved_stderr, 2);
	close(f->saved_stderr);
	log = read_log(f);
	leak = strstr(log, "SeCrEt") || strstr(log, "HookSecret");
	/* Show cmocka's own messages, and the whole log on a leak or on request. */
	for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n"))
		if (leak || getenv("OUTBOX_TEST_LOG") || strncmp(line, "ts=", 3) != 0)
			fprintf(stderr, "%s\n", line);
	if (leak)
		fprintf(stderr, "a secret appeared in the log\n");
	free(log);

	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", f->tmpdir);
	free(f);
	return leak ? -1 : 0;
}

/* ---- running the loop ------------------------------------------------ */

/* Run the loop until pred(f, arg) holds or `ms` pass; returns pred's value. */
static int run_loop(struct fixture *f, int (*pred)(struct fixture *, const void *),
		    const void *arg, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	f->guard_fired = 0;
	evtimer_add(f->guard, &tv);
	while (!pred(f, arg) && !f->guard_fired)
		event_base_loop(f->base, EVLOOP_ONCE);
	evtimer_del(f->guard);
	return pred(f, arg);
}

static int never(struct fixture *f, const void *arg)
{
	return 0;
}

/* The same with `ms` a deadline: scaled by SW_TEST_SLOW. */
static int run_until(struct fixture *f, int (*pred)(struct fixture *, const void *),
		     const void *arg, int ms)
{
	return run_loop(f, pred, arg, sw_test_ms(ms));
}

/* Run the loop for `ms` (a duration the test observes: not scaled). */
static void run_for(struct fixture *f, int ms)
{
	run_loop(f, never, NULL, ms);
}

static int have_reqs(struct fixture *f, const void *arg)
{
	return f->nreqs >= *(const int *)arg;
}

static void wait_reqs(struct fixture *f, int n, int ms)
{
	run_until(f, have_reqs, &n, ms);
	assert_int_equal(f->nreqs, n);
}

struct want_state { const char *key; enum sw_outbox_state state; };

static int row_in_state(struct fixture *f, const void *arg)
{
	const struct want_state *w = arg;
	struct sw_store_outbox row = { 0 };
	int ok = sw_store_outbox_get_by_key(f->store, w->key, &row) == 0 &&
		row.state == w->state;
	sw_store_outbox_release(&row);
	return ok;
}

/* Run until the row with `key` is in `state`, then check it is. */
static void wait_state(struct fixture *f, const char *key, enum sw_outbox_state state, int ms)
{
	struct want_state w = { key, state };
	assert_true(run_until(f, row_in_state, &w, ms));
}

static void get_row(struct fixture *f, const char *key, struct sw_store_outbox *row)
{
	assert_int_equal(sw_store_outbox_get_by_key(f->store, key, row), 0);
}

static json_t *status_body(const char *state, const char *context)
{
	return json_pack("{s:s, s:s, s:s}", "state", state, "context", context,
			 "description", state);
}

static void enqueue_status(struct fixture *f, const char *sha, const char *state)
{
	json_t *b = status_body(state, "slipway");
	assert_int_equal(sw_outbox_github_status(f->store, "octo/app", sha, "slipway", b), 0);
	json_decref(b);
}

static const char *body_str(const struct recd *r, const char *field, json_t **hold)
{
	*hold = json_loads(r->body, 0, NULL);
	assert_non_null(*hold);
	return json_string_value(json_object_get(*hold, field));
}

#define STATUS_KEY "gh:status:octo/app:" SHA ":slipway"

/* ---- tests ----------------------------------------------------------- */

static void test_status_delivered(void **state)
{
	struct fixture *f = *state;
	struct sw_outbox_stats st;
	json_t *j;

	enqueue_status(f, SHA, "success");
	start_outbox(f);
	wait_state(f, STATUS_KEY, SW_OUTBOX_SENT, 3000);
	assert_int_equal(f->nreqs, 1);
	assert_string_equal(f->reqs[0].method, "POST");
	assert_string_equal(f->reqs[0].path, "/gh/repos/octo/app/statuses/" SHA);
	assert_string_equal(f->reqs[0].accept, "application/vnd.github+json");
	assert_string_equal(f->reqs[0].apiver, "2022-11-28");
	assert_true(!strncmp(f->reqs[0].ua, "slipway/", 8));
	assert_string_equal(f->reqs[0].auth, "Bearer " TOKEN);
	assert_string_equal(f->reqs[0].ctype, "application/json");
	assert_string_equal(body_str(&f->reqs[0], "state", &j), "success");
	assert_string_equal(json_string_value(json_object_get(j, "context")), "slipway");
	assert_string_equal(json_string_value(json_object_get(j, "description")), "success");
	json_decref(j);

	assert_int_equal(sw_outbox_stats(f->ob, &st), 0);
	assert_int_equal(st.sent, 1);
	assert_int_equal(st.failed, 0);
	assert_int_equal(st.dead, 0);
	assert_int_equal(st.depth, 0);

	/* A replay of the same status (after a crash) sends nothing. */
	enqueue_status(f, SHA, "success");
	sw_outbox_kick(f->ob);
	run_for(f, 150);
	assert_int_equal(f->nreqs, 1);
}

static void test_bad_input_refused(void **state)
{
	struct fixture *f = *state;
	json_t *b = status_body("success", "slipway");

	assert_int_equal(sw_outbox_github_status(f->store, "octo", SHA, "c", b), SW_EINVALID);
	assert_int_equal(sw_outbox_github_status(f->store, "octo/a/b", SHA, "c", b), SW_EINVALID);
	assert_int_equal(sw_outbox_github_status(f->store, "octo/..", SHA, "c", b), SW_EINVALID);
	assert_int_equal(sw_outbox_github_status(f->store, "octo/app", "abc", "c", b),
			 SW_EINVALID);
	assert_int_equal(sw_outbox_github_status(f->store, "octo/app", SHA, "", b), SW_EINVALID);
	assert_int_equal(sw_outbox_github_comment(f->store, "octo/app", 0, 1, "x"), SW_EINVALID);
	assert_int_equal(sw_outbox_slack(f->store, NULL, "", b), SW_EINVALID);
	json_decref(b);
}

static void test_5xx_then_retry(void **state)
{
	struct fixture *f = *state;
	struct sw_store_outbox row = { 0 };
	struct sw_outbox_stats st;

	script(f, (struct canned){ .status = 500, .body = "{\"message\":\"boom\"}" });
	script(f, (struct canned){ .status = 502, .body = "bad gateway" });
	enqueue_status(f, SHA, "pending");
	start_outbox(f);
	wait_state(f, STATUS_KEY, SW_OUTBOX_SENT, 5000);
	assert_int_equal(f->nreqs, 3);
	/* Exponential backoff: 100 ms, then 200 ms. */
	assert_true(f->reqs[1].t - f->reqs[0].t >= 90);
	assert_true(f->reqs[2].t - f->reqs[1].t >= 190);
	get_row(f, STATUS_KEY, &row);
	assert_null(row.last_error);
	sw_store_outbox_release(&row);
	assert_int_equal(sw_outbox_stats(f->ob, &st), 0);
	assert_int_equal(st.sent, 1);
	assert_int_equal(st.failed, 2);
}

static void test_retry_after_honoured(void **state)
{
	struct fixture *f = *state;
	struct sw_store_outbox row = { 0 };

	script(f, (struct canned){ .status = 429, .body = "{\"message\":\"slow down\"}",
				   .h1 = "Retry-After", .v1 = "1" });
	enqueue_status(f, SHA, "success");
	/* A second row behind it waits for the same limit (same installation). */
	json_t *b = status_body("success", "slipway");
	assert_int_equal(sw_outbox_github_status(f->store, "octo/app", SHA2, "slipway", b), 0);
	json_decref(b);
	start_outbox(f);
	wait_reqs(f, 1, 2000);
	run_for(f, 100);
	get_row(f, STATUS_KEY, &row);
	assert_int_equal(row.state, SW_OUTBOX_PENDING);
	assert_int_equal(row.attempts, 1);
	assert_non_null(strstr(row.last_error, "429"));
	sw_store_outbox_release(&row);
	wait_reqs(f, 3, 4000);
	assert_true(f->reqs[1].t - f->reqs[0].t >= 990);
	assert_true(f->reqs[2].t - f->reqs[0].t >= 990);
	wait_state(f, STATUS_KEY, SW_OUTBOX_SENT, 1000);
	wait_state(f, "gh:status:octo/app:" SHA2 ":slipway", SW_OUTBOX_SENT, 1000);
}

static void test_ratelimit_reset(void **state)
{
	struct fixture *f = *state;
	char reset[32];

	snprintf(reset, sizeof(reset), "%lld", (long long)(sw_now_ms() / 1000 + 1));
	script(f, (struct canned){ .status = 403,
				   .body = "{\"message\":\"API rate limit exceeded\"}",
				   .h1 = "x-ratelimit-remaining", .v1 = "0",
				   .h2 = "x-ratelimit-reset", .v2 = reset });
	enqueue_status(f, SHA, "success");
	start_outbox(f);
	wait_reqs(f, 1, 2000);
	int64_t t0 = sw_now_ms();
	wait_state(f, STATUS_KEY, SW_OUTBOX_SENT, 4000);
	assert_int_equal(f->nreqs, 2);
	/* Not before the reset second is over. */
	assert_true(t0 + (f->reqs[1].t - f->reqs[0].t) >= atoll(reset) * 1000 + 900);
}

static void test_secondary_limit(void **state)
{
	struct fixture *f = *state;

	script(f, (struct canned){ .status = 403, .body =
		"{\"message\":\"You have exceeded a secondary rate limit\"}" });
	enqueue_status(f, SHA, "success");
	start_outbox(f);
	wait_state(f, STATUS_KEY, SW_OUTBOX_SENT, 3000);
	assert_int_equal(f->nreqs, 2);
	/* The floor (secondary_min_ms = 200), above the 100 ms backoff. */
	assert_true(f->reqs[1].t - f->reqs[0].t >= 190);
}

static void test_422_dead(void **state)
{
	struct fixture *f = *state;
	struct sw_store_outbox row = { 0 };
	struct sw_outbox_stats st;
	char *log;

	script(f, (struct canned){ .status = 422,
				   .body = "{\"message\":\"Validation Failed\"}" });
	enqueue_status(f, SHA, "success");
	start_outbox(f);
	wait_state(f, STATUS_KEY, SW_OUTBOX_DEAD, 3000);
	run_for(f, 300);
	assert_int_equal(f->nreqs, 1);
	get_row(f, STATUS_KEY, &row);
	assert_non_null(strstr(row.last_error, "422"));
	assert_non_null(strstr(row.last_error, "Validation Failed"));
	sw_store_outbox_release(&row);
	assert_int_equal(sw_outbox_stats(f->ob, &st), 0);
	assert_int_equal(st.dead, 1);
	assert_int_equal(st.sent, 0);
	log = read_log(f);
	assert_non_null(strstr(log, "level=error event=outbox.dead"));
	assert_non_null(strstr(log, "status=422"));
	free(log);
}

static void test_give_up(void **state)
{
	struct fixture *f = *state;
	struct sw_store_outbox row = { 0 };
	char *log;

	/* Nothing listens on port 1: every attempt is a network error. */
	f->cfg.github_api_url = "http://127.0.0.1:1";
	f->cfg.notify_give_up_s = 1;
	enqueue_status(f, SHA, "success");
	start_outbox(f);
	wait_state(f, STATUS_KEY, SW_OUTBOX_DEAD, 4000);
	get_row(f, STATUS_KEY, &row);
	assert_non_null(strstr(row.last_error, "gave up after 1s"));
	assert_true(row.attempts >= 2);
	sw_store_outbox_release(&row);
	log = read_log(f);
	assert_non_null(strstr(log, "level=warn event=outbox.retry"));
	assert_non_null(strstr(log, "level=error event=outbox.dead"));
	free(log);
}

static void test_comment_edited_in_place(void **state)
{
	struct fixture *f = *state;
	const char *key = "gh:comment:octo/app:42";
	char *id = NULL;
	json_t *j;

	assert_int_equal(sw_outbox_github_comment(f->store, "octo/app", 7, 42, "v1"), 0);
	start_outbox(f);
	wait_state(f, key, SW_OUTBOX_SENT, 3000);
	assert_int_equal(f->nreqs, 1);
	assert_string_equal(f->reqs[0].method, "POST");
	assert_string_equal(f->reqs[0].path, "/gh/repos/octo/app/issues/7/comments");
	assert_string_equal(body_str(&f->reqs[0], "body", &j), "v1");
	json_decref(j);
	assert_int_equal(sw_store_kv_get(f->store, "outbox:" "gh:comment:octo/app:42", &id), 0);
	assert_string_equal(id, "1001");
	free(id);

	assert_int_equal(sw_outbox_github_comment(f->store, "octo/app", 7, 42, "v2"), 0);
	sw_outbox_kick(f->ob);
	wait_reqs(f, 2, 3000);
	wait_state(f, key, SW_OUTBOX_SENT, 3000);
	assert_string_equal(f->reqs[1].method, "PATCH");
	assert_string_equal(f->reqs[1].path, "/gh/repos/octo/app/issues/comments/1001");
	assert_string_equal(body_str(&f->reqs[1], "body", &j), "v2");
	json_decref(j);

	/* "Restart": a new sender on the same store edits the same comment. */
	sw_outbox_free(f->ob);
	f->ob = NULL;
	assert_int_equal(sw_outbox_github_comment(f->store, "octo/app", 7, 42, "v3"), 0);
	start_outbox(f);
	wait_reqs(f, 3, 3000);
	wait_state(f, key, SW_OUTBOX_SENT, 3000);
	assert_string_equal(f->reqs[2].method, "PATCH");
	assert_string_equal(f->reqs[2].path, "/gh/repos/octo/app/issues/comments/1001");
	assert_string_equal(body_str(&f->reqs[2], "body", &j), "v3");
	json_decref(j);
}

static void test_comment_restart_mid_send(void **state)
{
	struct fixture *f = *state;
	const char *key = "gh:comment:octo/app:43";
	const char *v1 = "<!-- slipway:run:43 -->\nv1";
	const char *v2 = "<!-- slipway:run:43 -->\nv2";
	char *id = NULL;

	/* A comment about another run on the same PR must not be taken for ours. */
	f->comments[f->ncomments++] = (struct comment){ 999, 8,
		strdup("<!-- slipway:run:4 -->\nold") };
	/*
	 * The first POST creates the comment but its answer never comes back;
	 * the sender is freed with it in flight, as in a crash.
	 */
	script(f, (struct canned){ .hang = 1 });
	assert_int_equal(sw_outbox_github_comment(f->store, "octo/app", 8, 43, v1), 0);
	start_outbox(f);
	wait_reqs(f, 1, 3000);
	assert_int_equal(f->ncomments, 2);
	sw_outbox_free(f->ob);
	f->ob = NULL;

	/* The new sender looks for the comment first and edits it: no duplicate. */
	assert_int_equal(sw_outbox_github_comment(f->store, "octo/app", 8, 43, v2), 0);
	start_outbox(f);
	wait_state(f, key, SW_OUTBOX_SENT, 3000);
	assert_int_equal(f->nreqs, 3);
	assert_string_equal(f->reqs[1].method, "GET");
	assert_string_equal(f->reqs[1].path, "/gh/repos/octo/app/issues/8/comments");
	assert_non_null(strstr(f->reqs[1].query, "since="));
	assert_non_null(strstr(f->reqs[1].query, "per_page=100"));
	assert_string_equal(f->reqs[1].auth, "Bearer " TOKEN);
	assert_string_equal(f->reqs[2].method, "PATCH");
	assert_string_equal(f->reqs[2].path, "/gh/repos/octo/app/issues/comments/1001");
	assert_int_equal(f->ncomments, 2);
	assert_string_equal(f->comments[1].body, v2);
	assert_int_equal(sw_store_kv_get(f->store, "outbox:gh:comment:octo/app:43", &id), 0);
	assert_string_equal(id, "1001");
	free(id);
}

static void test_comment_lost_post_not_found(void **state)
{
	struct fixture *f = *state;
	const char *key = "gh:comment:octo/app:45";

	/* A POST that failed with a 502: the lookup finds nothing, so it posts. */
	script(f, (struct canned){ .status = 502, .body = "bad gateway" });
	assert_int_equal(sw_outbox_github_comment(f->store, "octo/app", 3, 45,
						  "<!-- slipway:run:45 -->\nv1"), 0);
	start_outbox(f);
	wait_state(f, key, SW_OUTBOX_SENT, 3000);
	assert_int_equal(f->nreqs, 3);
	assert_string_equal(f->reqs[0].method, "POST");
	assert_string_equal(f->reqs[1].method, "GET");
	assert_string_equal(f->reqs[2].method, "POST");
	assert_int_equal(f->ncomments, 1);
}

static void test_comment_deleted_reposts(void **state)
{
	struct fixture *f = *state;
	const char *key = "gh:comment:octo/app:44";

	assert_int_equal(sw_outbox_github_comment(f->store, "octo/app", 9, 44, "v1"), 0);
	start_outbox(f);
	wait_state(f, key, SW_OUTBOX_SENT, 3000);
	/* Someone deleted the comment: the edit 404s, so a new one is posted. */
	script(f, (struct canned){ .status = 404, .body = "{\"message\":\"Not Found\"}" });
	assert_int_equal(sw_outbox_github_comment(f->store, "octo/app", 9, 44, "v2"), 0);
	sw_outbox_kick(f->ob);
	wait_reqs(f, 3, 3000);
	wait_state(f, key, SW_OUTBOX_SENT, 3000);
	assert_string_equal(f->reqs[1].method, "PATCH");
	assert_string_equal(f->reqs[2].method, "POST");
	assert_string_equal(f->reqs[2].path, "/gh/repos/octo/app/issues/9/comments");
}

static void test_coalescing(void **state)
{
	struct fixture *f = *state;
	json_t *j;

	enqueue_status(f, SHA, "pending");
	enqueue_status(f, SHA, "success");
	start_outbox(f);
	wait_state(f, STATUS_KEY, SW_OUTBOX_SENT, 3000);
	run_for(f, 100);
	assert_int_equal(f->nreqs, 1);
	assert_string_equal(body_str(&f->reqs[0], "state", &j), "success");
	json_decref(j);
}

static void test_newer_while_in_flight(void **state)
{
	struct fixture *f = *state;
	json_t *j;

	/* A new state arrives while the old one is on the wire: both go out, in order. */
	enqueue_status(f, SHA, "pending");
	start_outbox(f);
	wait_reqs(f, 1, 3000);
	enqueue_status(f, SHA, "failure");
	wait_reqs(f, 2, 3000);
	wait_state(f, STATUS_KEY, SW_OUTBOX_SENT, 3000);
	assert_string_equal(body_str(&f->reqs[0], "state", &j), "pending");
	json_decref(j);
	assert_string_equal(body_str(&f->reqs[1], "state", &j), "failure");
	json_decref(j);
}

static void test_slack_webhook(void **state)
{
	struct fixture *f = *state;
	json_t *m, *j;
	char *log;

	f->cfg.slack_webhook_url.value = f->hook_url;
	m = json_pack("{s:s}", "text", "started");
	assert_int_equal(sw_outbox_slack(f->store, NULL, "run:5", m), 0);
	json_decref(m);
	start_outbox(f);
	wait_state(f, "slack:run:5", SW_OUTBOX_SENT, 3000);
	assert_int_equal(f->nreqs, 1);
	assert_string_equal(f->reqs[0].method, "POST");
	assert_string_equal(f->reqs[0].path, HOOK_PATH);
	assert_string_equal(f->reqs[0].auth, "");
	assert_string_equal(body_str(&f->reqs[0], "text", &j), "started");
	json_decref(j);

	/* The next state is a new message (a webhook cannot edit). */
	script(f, (struct canned){ .status = 500, .body = "rollup_error" });
	m = json_pack("{s:s}", "text", "passed");
	assert_int_equal(sw_outbox_slack(f->store, NULL, "run:5", m), 0);
	json_decref(m);
	sw_outbox_kick(f->ob);
	wait_state(f, "slack:run:5", SW_OUTBOX_SENT, 3000);
	wait_reqs(f, 3, 1000);
	assert_string_equal(f->reqs[2].path, HOOK_PATH);
	assert_string_equal(body_str(&f->reqs[2], "text", &j), "passed");
	json_decref(j);

	/* The webhook URL is a secret: the log names only its host. */
	log = read_log(f);
	assert_non_null(strstr(log, "target=slack"));
	assert_non_null(strstr(log, "url=" "http://127.0.0.1"));
	assert_non_null(strstr(log, "/hooks/..."));
	assert_null(strstr(log, "HookSecret"));
	free(log);

	/* A plain-text 4xx is final. */
	script(f, (struct canned){ .status = 404, .body = "channel_not_found" });
	m = json_pack("{s:s}", "text", "x");
	assert_int_equal(sw_outbox_slack(f->store, NULL, "run:6", m), 0);
	json_decref(m);
	sw_outbox_kick(f->ob);
	wait_state(f, "slack:run:6", SW_OUTBOX_DEAD, 3000);
}

static void test_slack_chat(void **state)
{
	struct fixture *f = *state;
	json_t *m, *j;

	f->cfg.slack_bot_token.value = BOT;
	f->cfg.slack_channel = "#deploys";
	f->cfg.slack_webhook_url.value = f->hook_url;  /* the bot token wins */
	m = json_pack("{s:s}", "text", "started");
	assert_int_equal(sw_outbox_slack(f->store, NULL, "run:7", m), 0);
	json_decref(m);
	start_outbox(f);
	wait_state(f, "slack:run:7", SW_OUTBOX_SENT, 3000);
	assert_int_equal(f->nreqs, 1);
	assert_string_equal(f->reqs[0].path, "/slack/api/chat.postMessage");
	assert_string_equal(f->reqs[0].auth, "Bearer " BOT);
	assert_string_equal(f->reqs[0].ctype, "application/json; charset=utf-8");
	assert_string_equal(body_str(&f->reqs[0], "channel", &j), "#deploys");
	assert_string_equal(json_string_value(json_object_get(j, "text")), "started");
	json_decref(j);

	/* ratelimited inside a 200 is retried; then chat.update of the stored ts. */
	script(f, (struct canned){ .status = 200,
				   .body = "{\"ok\":false,\"error\":\"ratelimited\"}" });
	m = json_pack("{s:s}", "text", "passed");
	assert_int_equal(sw_outbox_slack(f->store, NULL, "run:7", m), 0);
	json_decref(m);
	sw_outbox_kick(f->ob);
	wait_reqs(f, 3, 3000);
	wait_state(f, "slack:run:7", SW_OUTBOX_SENT, 3000);
	assert_string_equal(f->reqs[2].path, "/slack/api/chat.update");
	assert_string_equal(body_str(&f->reqs[2], "channel", &j), "C123");
	assert_string_equal(json_string_value(json_object_get(j, "ts")), "1700000000.000100");
	assert_string_equal(json_string_value(json_object_get(j, "text")), "passed");
	json_decref(j);

	/* An environment's own channel; a final Slack error kills the row. */
	script(f, (struct canned){ .status = 200,
				   .body = "{\"ok\":false,\"error\":\"channel_not_found\"}" });
	m = json_pack("{s:s}", "text", "x");
	assert_int_equal(sw_outbox_slack(f->store, "#prod", "run:8", m), 0);
	json_decref(m);
	sw_outbox_kick(f->ob);
	wait_state(f, "slack:run:8", SW_OUTBOX_DEAD, 3000);
	assert_string_equal(body_str(&f->reqs[3], "channel", &j), "#prod");
	json_decref(j);
}

static void test_slack_paced(void **state)
{
	struct fixture *f = *state;
	char key[16];

	f->cfg.slack_webhook_url.value = f->hook_url;
	f->opts.slack_interval_ms = 200;
	for (int i = 0; i < 3; i++) {
		json_t *m = json_pack("{s:i}", "n", i);
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(sw_outbox_slack(f->store, NULL, key, m), 0);
		json_decref(m);
	}
	start_outbox(f);
	wait_reqs(f, 3, 3000);
	assert_true(f->reqs[1].t - f->reqs[0].t >= 190);
	assert_true(f->reqs[2].t - f->reqs[1].t >= 190);
}

static void test_lanes_independent(void **state)
{
	struct fixture *f = *state;
	struct sw_outbox_stats st;
	json_t *m;

	/* GitHub hangs; Slack still goes out. */
	script(f, (struct canned){ .hang = 1 });
	f->cfg.slack_webhook_url.value = f->hook_url;
	enqueue_status(f, SHA, "success");
	start_outbox(f);
	wait_reqs(f, 1, 3000);
	m = json_pack("{s:s}", "text", "hi");
	assert_int_equal(sw_outbox_slack(f->store, NULL, "run:9", m), 0);
	json_decref(m);
	sw_outbox_kick(f->ob);
	wait_state(f, "slack:run:9", SW_OUTBOX_SENT, 3000);
	assert_int_equal(sw_outbox_stats(f->ob, &st), 0);
	assert_int_equal(st.in_flight, 1);
	assert_int_equal(st.depth, 1);
	assert_int_equal(st.sent, 1);
}

static void test_set_config(void **state)
{
	struct fixture *f = *state;
	struct sw_config cfg2;
	char url2[192];
	json_t *m;

	/* A 429 holds GitHub; a new token (another installation) lifts the hold. */
	script(f, (struct canned){ .status = 429, .h1 = "Retry-After", .v1 = "30" });
	enqueue_status(f, SHA, "success");
	start_outbox(f);
	wait_reqs(f, 1, 3000);
	run_for(f, 100);
	m = json_pack("{s:s}", "text", "x");
	assert_int_equal(sw_outbox_slack(f->store, NULL, "run:11", m), 0);
	json_decref(m);

	cfg2 = f->cfg;
	snprintf(url2, sizeof(url2), "%s/gh", f->url);
	cfg2.github_api_url = url2;
	cfg2.github_token.value = "ghp_SeCrEtOtHeR";
	cfg2.slack_webhook_url.value = f->hook_url;
	sw_outbox_set_config(f->ob, &cfg2);
	/* The row itself still waits for its Retry-After... */
	run_for(f, 200);
	assert_int_equal(f->nreqs, 2);
	assert_string_equal(f->reqs[1].path, HOOK_PATH);
	/* ...but a new row goes out at once, with the new token. */
	enqueue_status(f, SHA2, "success");
	sw_outbox_kick(f->ob);
	wait_reqs(f, 3, 3000);
	assert_string_equal(f->reqs[2].path, "/gh/repos/octo/app/statuses/" SHA2);
	assert_string_equal(f->reqs[2].auth, "Bearer ghp_SeCrEtOtHeR");
}

static void test_not_configured_dead(void **state)
{
	struct fixture *f = *state;
	json_t *m = json_pack("{s:s}", "text", "x");

	/* No Slack at all: nothing to send to, dead rather than pending forever. */
	assert_int_equal(sw_outbox_slack(f->store, NULL, "run:10", m), 0);
	json_decref(m);
	start_outbox(f);
	wait_state(f, "slack:run:10", SW_OUTBOX_DEAD, 3000);
	assert_int_equal(f->nreqs, 0);
}

/* ---- with a GitHub App ------------------------------------------------ */

/* github.app on the fixture's config (a key made here) and the sender on it. */
static void start_app_outbox(struct fixture *f)
{
	EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL);
	EVP_PKEY *key = NULL;
	BIO *bio = BIO_new(BIO_s_mem());
	char *p;
	long n;

	assert_int_equal(EVP_PKEY_keygen_init(kc), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(kc, 2048), 1);
	assert_int_equal(EVP_PKEY_keygen(kc, &key), 1);
	assert_int_equal(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(bio, &p);
	f->cfg.github_app.private_key.value = sw_strndup(p, (size_t)n);
	f->cfg.github_app.id = sw_strdup("4242");
	BIO_free(bio);
	EVP_PKEY_free(key);
	EVP_PKEY_CTX_free(kc);
	assert_int_equal(sw_github_app_new(&f->app, f->http, NULL), 0);
	sw_github_app_set_config(f->app, &f->cfg);
	start_outbox(f);
	sw_outbox_set_github_app(f->ob, f->app);
}

/* The n-th request to path `suffix`, or NULL. */
static const struct recd *nth_req(struct fixture *f, const char *part, int nth)
{
	for (int i = 0; i < f->nreqs; i++)
		if (strstr(f->reqs[i].path, part) && nth-- == 0)
			return &f->reqs[i];
	return NULL;
}

/* With an App a status goes out with the repository's installation token,
 * not github.token; a 401 to it drops it and the row is sent once more at
 * once with a new one; a second 401 in a row is final. */
static void test_app_token_and_401(void **state)
{
	struct fixture *f = *state;

	script(f, (struct canned){ .status = 401, .body = "{\"message\":\"Bad credentials\"}" });
	enqueue_status(f, SHA, "success");
	start_app_outbox(f);
	wait_state(f, STATUS_KEY, SW_OUTBOX_SENT, 4000);
	/* lookup, token, status (401), token, status */
	assert_int_equal(f->nreqs, 5);
	assert_string_equal(nth_req(f, "/installation", 0)->path, "/gh/repos/octo/app/installation");
	assert_string_equal(nth_req(f, "/statuses/", 0)->auth, "Bearer ghs_12_1");
	assert_string_equal(nth_req(f, "/statuses/", 1)->auth, "Bearer ghs_12_2");
	assert_string_equal(f->reqs[3].path, "/gh/app/installations/12/access_tokens");
	assert_int_equal(f->minted, 2);

	script(f, (struct canned){ .status = 401, .body = "{\"message\":\"Bad credentials\"}" });
	script(f, (struct canned){ .status = 401, .body = "{\"message\":\"Bad credentials\"}" });
	json_t *b = status_body("failure", "slipway");
	assert_int_equal(sw_outbox_github_status(f->store, "octo/app", SHA2, "slipway", b), 0);
	json_decref(b);
	sw_outbox_kick(f->ob);
	wait_state(f, "gh:status:octo/app:" SHA2 ":slipway", SW_OUTBOX_DEAD, 4000);
	assert_int_equal(f->minted, 3);    /* refreshed once, not twice */
	for (int i = 0; i < f->nreqs; i++)
		assert_null(strstr(f->reqs[i].auth, TOKEN));
}

/* A rate limit holds only the rows of the installation that hit it. */
static void test_app_rate_limit_per_installation(void **state)
{
	struct fixture *f = *state;
	struct sw_store_outbox row = { 0 };

	script(f, (struct canned){ .status = 403, .body = "{\"message\":\"API rate limit exceeded\"}",
				   .h1 = "Retry-After", .v1 = "60" });
	enqueue_status(f, SHA, "success");                 /* octo/app: installation 12 */
	json_t *b = status_body("success", "slipway");
	assert_int_equal(sw_outbox_github_status(f->store, "octo/app", SHA2, "slipway", b), 0);
	assert_int_equal(sw_outbox_github_status(f->store, "acme/shop", SHA, "slipway", b), 0);
	json_decref(b);
	start_app_outbox(f);
	wait_state(f, "gh:status:acme/shop:" SHA ":slipway", SW_OUTBOX_SENT, 4000);
	assert_string_equal(nth_req(f, "/repos/acme/shop/statuses/", 0)->auth, "Bearer ghs_11_2");
	/* installation 12's rows wait for its limit: one was refused, the other never sent */
	get_row(f, STATUS_KEY, &row);
	assert_int_equal(row.state, SW_OUTBOX_PENDING);
	assert_true(row.next_attempt_at > sw_now_ms() + 50000);
	sw_store_outbox_release(&row);
	get_row(f, "gh:status:octo/app:" SHA2 ":slipway", &row);
	assert_int_equal(row.state, SW_OUTBOX_PENDING);
	assert_non_null(strstr(row.last_error, "rate limited (installation 12)"));
	sw_store_outbox_release(&row);
	assert_null(nth_req(f, "/repos/octo/app/statuses/", 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status_delivered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_5xx_then_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_after_honoured, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ratelimit_reset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secondary_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_422_dead, setup, teardown),
		cmocka_unit_test_setup_teardown(test_give_up, setup, teardown),
		cmocka_unit_test_setup_teardown(test_comment_edited_in_place, setup, teardown),
		cmocka_unit_test_setup_teardown(test_comment_restart_mid_send, setup, teardown),
		cmocka_unit_test_setup_teardown(test_comment_lost_post_not_found, setup, teardown),
		cmocka_unit_test_setup_teardown(test_comment_deleted_reposts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coalescing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_while_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slack_webhook, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slack_chat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slack_paced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lanes_independent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_app_token_and_401, setup, teardown),
		cmocka_unit_test_setup_teardown(test_app_rate_limit_per_installation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_configured_dead, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
