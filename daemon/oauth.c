/*
 * oauth.c - sign-in with GitHub: the OAuth web flow (docs/api.md "Sign in
 * with GitHub").
 *
 *   GET /login/github           a random `state`, kept in an HttpOnly cookie
 *                               for 10 minutes, and a redirect to GitHub's
 *                               authorize page
 *   GET /login/github/callback  `state` checked against the cookie; the
 *                               `code` exchanged for the user's token (a
 *                               server-side POST with the client secret);
 *                               the user (GET /user) and their teams (GET
 *                               /user/teams) read with it; the token is then
 *                               dropped and a signed session cookie set
 *
 * Everything outbound goes through the loop's HTTP client, so the loop
 * never waits; a client that goes away meanwhile cancels the flow. Nothing
 * half-done: no session is set unless the user was read, and a refusal at
 * any step is an answer, a log line and an audit row.
 */
#include <ctype.h>
#include <event2/http.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon/audit-int.h"
#include "daemon/auth-int.h"
#include "httpd/httpd.h"
#include "github/github.h"
#include "lib/base64.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/http.h"
#include "lib/log.h"

#define STATE_COOKIE "sw_oauth_state"
#define STATE_TTL_S 600
#define CALL_TIMEOUT_MS 15000
#define MAX_TEAMS_BODY (1024 * 1024)

enum step { STEP_TOKEN, STEP_USER, STEP_TEAMS };

struct flow {
	struct sw_daemon *d;
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	struct sw_http_call *call;
	enum step step;
	char client[SW_ACTOR_CLIENT_MAX];
	char *token;               /* the user's, wiped and freed as soon as the teams are in */
	char login[SW_AUTH_LOGIN_MAX];
};

/* Before any answer: an answer may close the connection (and free it). */
static void detach(struct flow *f)
{
	if (f->evcon)
		evhttp_connection_set_closecb(f->evcon, NULL, NULL);
	f->evcon = NULL;
}

static void flow_free(struct flow *f)
{
	detach(f);
	if (f->token) {
		OPENSSL_cleanse(f->token, strlen(f->token));
		free(f->token);
	}
	free(f);
}

static void on_close(struct evhttp_connection *evcon, void *arg)
{
	struct flow *f = arg;
	log_info("oauth.aborted", "client=%s step=%d", sw_q(f->client), (int)f->step);
	sw_http_cancel(f->call);
	f->evcon = NULL;
	flow_free(f);
}

static void clear_state_cookie(struct sw_daemon *d, struct evhttp_request *req)
{
	char *c = sw_asprintf("%s=; Max-Age=0; HttpOnly%s", STATE_COOKIE, sw_auth_cookie_attrs(d, 1));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie", c);
	free(c);
}

/* A refused sign-in: `code` with `msg`, a log line and an audit row. */
static void refuse(struct sw_daemon *d, struct evhttp_request *req, const char *client,
		   const char *login, int code, const char *msg)
{
	struct sw_actor a = SW_ACTOR_INIT;
	snprintf(a.client, sizeof(a.client), "%s", client);
	if (login && *login) {
		a.kind = SW_ACTOR_USER;
		snprintf(a.name, sizeof(a.name), "%s", login);
	}
	log_info("auth.login_failed", "via=github client=%s user=%s reason=%s", sw_q(client),
		 sw_q(login), sw_q(msg));
	sw_audit_record(d, &a, "sign_in", "github", "refused", msg);
	clear_state_cookie(d, req);
	sw_reply_error(req, code, "sign-in with GitHub failed: %s", msg);
}

static void flow_fail(struct flow *f, int code, const char *msg)
{
	detach(f);
	refuse(f->d, f->req, f->client, f->login, code, msg);
	flow_free(f);
}

static char *callback_url(struct sw_daemon *d)
{
	const char *base = d->cfg->public_url;
	size_t n = strlen(base);
	return sw_asprintf("%.*s/login/github/callback", (int)(n && base[n - 1] == '/' ? n - 1 : n),
			   base);
}

void sw_oauth_start(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	unsigned char raw[16];
	char state[33];
	struct sw_buf loc = SW_BUF_INIT;
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	if (!d->cfg->oauth_client_id) {
		sw_reply_error(req, 404, "sign-in with GitHub is not configured (github.oauth)");
		return;
	}
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		sw_reply_error(req, 500, "no random bytes for the OAuth state");
		return;
	}
	sw_hex(state, raw, sizeof(raw));
	char *cookie = sw_asprintf("%s=%s; Max-Age=%d; HttpOnly%s", STATE_COOKIE, state, STATE_TTL_S,
				   sw_auth_cookie_attrs(d, 1));
	char *cb = callback_url(d);
	sw_buf_addf(&loc, "%s/login/oauth/authorize?client_id=", d->cfg->oauth_url);
	sw_http_escape(&loc, d->cfg->oauth_client_id);
	sw_buf_adds(&loc, "&redirect_uri=");
	sw_http_escape(&loc, cb);
	sw_buf_addf(&loc, "&scope=read%%3Aorg&state=%s", state);
	evhttp_add_header(h, "Set-Cookie", cookie);
	evhttp_add_header(h, "Location", loc.ptr);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(req, 302, "Found", NULL);
	free(cookie);
	free(cb);
	sw_buf_release(&loc);
}

static void step_done(struct sw_http_result *r, void *arg);

/* GET `path` of the REST API with the user's token. */
static int api_get(struct flow *f, const char *path)
{
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	char *url = sw_asprintf("%s%s", f->d->cfg->github_api_url, path);
	char *auth = sw_asprintf("Authorization: Bearer %s", f->token);
	const char *hdrs[] = { auth, SW_GITHUB_ACCEPT, SW_GITHUB_API_VERSION, NULL };
	o.url = url;
	o.headers = hdrs;
	o.timeout_ms = CALL_TIMEOUT_MS;
	o.max_response = MAX_TEAMS_BODY;
	o.on_done = step_done;
	o.arg = f;
	int rc = sw_http_start(f->d->client, &o, &f->call);
	OPENSSL_cleanse(auth, strlen(auth));
	free(auth);
	free(url);
	return rc;
}

/* Is org/team `name` one of `list`'s entries? */
static int team_named(char **list, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strchr(list[i], '/') && !strcasecmp(list[i], name))
			return 1;
	return 0;
}

/* The user's org/team names that the config mentions, '+'-joined into `out`. */
static void wanted_teams(struct sw_buf *out, const struct sw_config *c, json_t *teams)
{
	size_t i;
	json_t *t;
	json_array_foreach(teams, i, t) {
		const char *slug = json_string_value(json_object_get(t, "slug"));
		const char *org = json_string_value(json_object_get(json_object_get(t, "organization"),
								    "login"));
		if (!slug || !org)
			continue;
		char *name = sw_asprintf("%s/%s", org, slug);
		/* only what a role rule can use, so the cookie stays small */
		int named = team_named(c->access.viewers, c->access.nviewers, name) ||
			    team_named(c->access.deployers, c->access.ndeployers, name) ||
			    team_named(c->access.admins, c->access.nadmins, name);
		for (size_t e = 0; e < c->nenvs; e++)
			named |= team_named(c->envs[e].deployers, c->envs[e].ndeployers, name);
		int ok = 1;
		for (const char *p = name; *p; p++)
			if (!(isalnum((unsigned char)*p) || strchr("-_./", *p)))
				ok = 0;
		if (named && ok && out->len + strlen(name) + 1 < SW_AUTH_USER_MAX - 200)
			sw_buf_addf(out, "%s%s", out->len ? "+" : "", name);
		free(name);
	}
}

static void signed_in(struct flow *f, const char *teams)
{
	struct sw_daemon *d = f->d;
	struct evhttp_request *req = f->req;
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char session[SW_AUTH_USER_MAX], csrf[SW_AUTH_VALUE_MAX];
	int64_t now = sw_now_ms() / 1000;
	struct sw_actor who = SW_ACTOR_INIT;

	detach(f);
	if (sw_auth_user_session_new(session, d->cfg->oauth_client_secret.value, f->login, teams,
				     now, SW_AUTH_SESSION_TTL_S) < 0) {
		flow_fail(f, 500, sw_error_last());
		return;
	}
	sw_auth_user_csrf(csrf, session, d->cfg->oauth_client_secret.value);
	sw_actor_set_user(&who, f->login, teams);
	snprintf(who.client, sizeof(who.client), "%s", f->client);
	/* durable before answered: no row, no session */
	if (sw_audit_record(d, &who, "sign_in", "github", "ok", teams && *teams ? teams : NULL) < 0) {
		sw_actor_release(&who);
		clear_state_cookie(d, req);
		sw_reply_error(req, 503, "could not record the sign-in; try again");
		flow_free(f);
		return;
	}
	sw_actor_release(&who);
	char *c1 = sw_asprintf("%s=%s; Max-Age=%d; HttpOnly%s", SW_AUTH_USER_COOKIE, session,
			       SW_AUTH_SESSION_TTL_S, sw_auth_cookie_attrs(d, 1));
	char *c2 = sw_asprintf("%s=%s; Max-Age=%d%s", SW_AUTH_CSRF_COOKIE, csrf,
			       SW_AUTH_SESSION_TTL_S, sw_auth_cookie_attrs(d, 0));
	evhttp_add_header(h, "Set-Cookie", c1);
	evhttp_add_header(h, "Set-Cookie", c2);
	clear_state_cookie(d, req);
	evhttp_add_header(h, "Location", "/");
	evhttp_add_header(h, "Cache-Control", "no-store");
	log_info("auth.login", "via=github user=%s teams=%s client=%s expires_in_s=%d", f->login,
		 sw_q(teams), sw_q(f->client), SW_AUTH_SESSION_TTL_S);
	evhttp_send_reply(req, 303, "See Other", NULL);
	free(c1);
	free(c2);
	flow_free(f);
}

static void step_done(struct sw_http_result *r, void *arg)
{
	struct flow *f = arg;
	json_t *j = NULL;
	char msg[512];

	f->call = NULL;
	if (r->error < 0) {
		snprintf(msg, sizeof(msg), "GitHub could not be reached: %s", r->error_msg);
		flow_fail(f, 502, msg);
		return;
	}
	j = json_loadb(r->body->ptr, r->body->len, 0, NULL);
	if (f->step == STEP_TOKEN) {
		const char *tok = json_string_value(json_object_get(j, "access_token"));
		const char *err = json_string_value(json_object_get(j, "error"));
		const char *desc = json_string_value(json_object_get(j, "error_description"));
		if (r->status != 200 || !tok || !*tok) {
			snprintf(msg, sizeof(msg), "GitHub refused the code: %s%s%s (HTTP %ld)",
				 err ? err : "no access_token in the answer", desc ? ": " : "",
				 desc ? desc : "", r->status);
			json_decref(j);
			flow_fail(f, 401, msg);
			return;
		}
		f->token = sw_strdup(tok);
		json_decref(j);
		OPENSSL_cleanse(r->body->ptr, r->body->len);
		f->step = STEP_USER;
		if (api_get(f, "/user") < 0)
			flow_fail(f, 502, sw_error_last());
		return;
	}
	if (r->status != 200 || (!json_is_object(j) && f->step == STEP_USER)) {
		snprintf(msg, sizeof(msg), "GitHub answered %ld to GET %s", r->status,
			 f->step == STEP_USER ? "/user" : "/user/teams");
		json_decref(j);
		flow_fail(f, 502, msg);
		return;
	}
	if (f->step == STEP_USER) {
		const char *login = json_string_value(json_object_get(j, "login"));
		if (!login || !*login || strlen(login) >= sizeof(f->login)) {
			json_decref(j);
			flow_fail(f, 502, "GitHub's /user has no login");
			return;
		}
		snprintf(f->login, sizeof(f->login), "%s", login);
		json_decref(j);
		f->step = STEP_TEAMS;
		if (api_get(f, "/user/teams?per_page=100") < 0)
			flow_fail(f, 502, sw_error_last());
		return;
	}
	/* the teams: the token has done its work */
	OPENSSL_cleanse(f->token, strlen(f->token));
	free(f->token);
	f->token = NULL;
	if (!json_is_array(j)) {
		json_decref(j);
		flow_fail(f, 502, "GitHub's /user/teams is not a list");
		return;
	}
	struct sw_buf teams = SW_BUF_INIT;
	wanted_teams(&teams, f->d->cfg, j);
	json_decref(j);
	signed_in(f, teams.ptr ? teams.ptr : "");
	sw_buf_release(&teams);
}

void sw_oauth_callback(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *qs = u ? evhttp_uri_get_query(u) : NULL;
	const char *cookies = evhttp_find_header(evhttp_request_get_input_headers(req), "Cookie");
	struct evkeyvalq q;
	char want[64], client[SW_ACTOR_CLIENT_MAX], key[96];
	struct sw_buf body = SW_BUF_INIT;

	sw_request_client(client, sizeof(client), req, d->cfg->trusted_proxies,
			  d->cfg->ntrusted_proxies);
	if (!d->cfg->oauth_client_id) {
		sw_reply_error(req, 404, "sign-in with GitHub is not configured (github.oauth)");
		return;
	}
	sw_limiter_key(key, sizeof(key), client);
	if (d->login_fails && sw_limiter_check(d->login_fails, key, sw_now_ms()) > 0) {
		sw_reply_error(req, 429, "too many failed logins from %s; try again later", client);
		return;
	}
	TAILQ_INIT(&q);
	if (qs)
		evhttp_parse_query_str(qs, &q);
	const char *state = evhttp_find_header(&q, "state"), *code = evhttp_find_header(&q, "code");
	const char *gh_err = evhttp_find_header(&q, "error");
	if (!cookies || sw_auth_cookie(cookies, STATE_COOKIE, want, sizeof(want)) < 0 || !state ||
	    !sw_auth_equal(state, want)) {
		if (d->login_fails)
			sw_limiter_fail(d->login_fails, key, sw_now_ms());
		refuse(d, req, client, NULL, 400, !state ? "no state in the callback" :
		       "the OAuth state does not match this browser's (start again at /login/github)");
		goto out;
	}
	if (gh_err || !code || !*code) {
		char msg[256];
		snprintf(msg, sizeof(msg), "GitHub said %s", gh_err ? gh_err : "nothing: no code");
		refuse(d, req, client, NULL, 401, msg);
		goto out;
	}
	struct flow *f = sw_calloc(1, sizeof(*f));
	f->d = d;
	f->req = req;
	f->evcon = evhttp_request_get_connection(req);
	f->step = STEP_TOKEN;
	snprintf(f->client, sizeof(f->client), "%s", client);
	char *cb = callback_url(d), *url = sw_asprintf("%s/login/oauth/access_token",
						       d->cfg->oauth_url);
	sw_buf_adds(&body, "client_id=");
	sw_http_escape(&body, d->cfg->oauth_client_id);
	sw_buf_adds(&body, "&client_secret=");
	sw_http_escape(&body, d->cfg->oauth_client_secret.value);
	sw_buf_adds(&body, "&code=");
	sw_http_escape(&body, code);
	sw_buf_adds(&body, "&redirect_uri=");
	sw_http_escape(&body, cb);
	const char *hdrs[] = { "Accept: application/json",
		"Content-Type: application/x-www-form-urlencoded", NULL };
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	o.method = "POST";
	o.url = url;
	o.headers = hdrs;
	o.body = body.ptr;
	o.body_len = body.len;
	o.timeout_ms = CALL_TIMEOUT_MS;
	o.max_response = 64 * 1024;
	o.on_done = step_done;
	o.arg = f;
	int rc = sw_http_start(d->client, &o, &f->call);
	OPENSSL_cleanse(body.ptr, body.len);
	free(cb);
	free(url);
	if (rc < 0) {
		f->evcon = NULL;
		flow_fail(f, 502, sw_error_last());
		goto out;
	}
	if (f->evcon)
		evhttp_connection_set_closecb(f->evcon, on_close, f);
out:
	sw_buf_release(&body);
	evhttp_clear_headers(&q);
}
