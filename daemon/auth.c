/*
 * auth.c - the API token, login sessions and CSRF tokens (see auth.h for
 * the rules and the formats).
 *
 * Sessions are stateless: the cookie carries its own expiry and a MAC under
 * a key derived from the API token, so they survive a restart and all end
 * when the token changes. Logging out clears the cookies in the browser; a
 * copied session value stays valid until it expires (12 h), which is the
 * price of keeping no session table.
 */
#include <ctype.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/audit-int.h"
#include "daemon/auth-int.h"
#include "daemon/tokens-int.h"
#include "httpd/httpd.h"
#include "lib/base64.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"

#define NONCE_BYTES 16
#define FORM_MAX (64 * 1024)

/* HMAC-SHA256(key, msg) as 64 hex digits. */
static void mac_hex(char out[65], const unsigned char *key, size_t klen, const char *msg)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), md, &mdlen);
	sw_hex(out, md, 32);
}

/* The session key: HMAC-SHA256(token, label), so the token itself signs nothing. */
static void session_key(unsigned char key[32], const char *token)
{
	static const char label[] = "slipway session key v1";
	unsigned int len = 0;
	HMAC(EVP_sha256(), token, (int)strlen(token), (const unsigned char *)label,
	     sizeof(label) - 1, key, &len);
}

int sw_auth_equal(const char *a, const char *b)
{
	unsigned char ha[SHA256_DIGEST_LENGTH], hb[SHA256_DIGEST_LENGTH];
	if (!a || !b)
		return 0;
	/* hashing first makes the comparison independent of both lengths */
	SHA256((const unsigned char *)a, strlen(a), ha);
	SHA256((const unsigned char *)b, strlen(b), hb);
	return CRYPTO_memcmp(ha, hb, sizeof(ha)) == 0;
}

static void session_mac(char out[65], const char *token, long long exp, const char *nonce)
{
	unsigned char key[32];
	char msg[96];
	session_key(key, token);
	snprintf(msg, sizeof(msg), "s1.%lld.%s", exp, nonce);
	mac_hex(out, key, sizeof(key), msg);
	OPENSSL_cleanse(key, sizeof(key));
}

int sw_auth_session_new(char out[SW_AUTH_VALUE_MAX], const char *token, int64_t now_s,
			int64_t ttl_s)
{
	unsigned char raw[NONCE_BYTES];
	char nonce[2 * NONCE_BYTES + 1], mac[65];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return sw_error_set("no random bytes for a session");
	sw_hex(nonce, raw, sizeof(raw));
	long long exp = (long long)(now_s + ttl_s);
	session_mac(mac, token, exp, nonce);
	snprintf(out, SW_AUTH_VALUE_MAX, "%lld.%s.%s", exp, nonce, mac);
	return 0;
}

/* Split "EXP.NONCE.MAC"; 0 when the shape is right. */
static int session_parse(const char *v, long long *exp, char nonce[2 * NONCE_BYTES + 1],
			 const char **mac)
{
	const char *p = v;
	char *end;
	if (!v || !isdigit((unsigned char)*v))
		return SW_EINVALID;
	*exp = strtoll(p, &end, 10);
	if (*end != '.')
		return SW_EINVALID;
	p = end + 1;
	for (int i = 0; i < 2 * NONCE_BYTES; i++)
		if (!isxdigit((unsigned char)p[i]))
			return SW_EINVALID;
	if (p[2 * NONCE_BYTES] != '.')
		return SW_EINVALID;
	memcpy(nonce, p, 2 * NONCE_BYTES);
	nonce[2 * NONCE_BYTES] = 0;
	*mac = p + 2 * NONCE_BYTES + 1;
	return strlen(*mac) == 64 ? 0 : SW_EINVALID;
}

int sw_auth_session_verify(const char *value, const char *token, int64_t now_s)
{
	long long exp;
	char nonce[2 * NONCE_BYTES + 1], want[65];
	const char *mac;
	if (!token)
		return sw_error_setc(SW_EINVALID, "no API token is configured");
	if (session_parse(value, &exp, nonce, &mac) < 0)
		return sw_error_setc(SW_EINVALID, "malformed session");
	session_mac(want, token, exp, nonce);
	if (!sw_auth_equal(want, mac))
		return sw_error_setc(SW_EINVALID, "session signature does not match");
	if (exp <= now_s)
		return sw_error_setc(SW_EINVALID, "session expired");
	return 0;
}

void sw_auth_csrf_for(char out[SW_AUTH_VALUE_MAX], const char *value, const char *token)
{
	unsigned char key[32];
	char msg[64], mac[65];
	const char *dot = strchr(value, '.');
	session_key(key, token);
	/* bound to the session's nonce (what follows the expiry) */
	snprintf(msg, sizeof(msg), "csrf.%.32s", dot ? dot + 1 : "");
	mac_hex(mac, key, sizeof(key), msg);
	OPENSSL_cleanse(key, sizeof(key));
	snprintf(out, SW_AUTH_VALUE_MAX, "%s", mac);
}

/* --- GitHub users' sessions ------------------------------------------------- */

static void user_key(unsigned char key[32], const char *secret)
{
	static const char label[] = "slipway user session v1";
	unsigned int len = 0;
	HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)label,
	     sizeof(label) - 1, key, &len);
}

static void user_mac(char out[65], const char *secret, const char *msg, size_t len)
{
	unsigned char key[32], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	user_key(key, secret);
	HMAC(EVP_sha256(), key, sizeof(key), (const unsigned char *)msg, len, md, &mdlen);
	OPENSSL_cleanse(key, sizeof(key));
	sw_hex(out, md, 32);
}

static int login_ok(const char *s, size_t n)
{
	if (!n || n >= SW_AUTH_LOGIN_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return 0;
	return 1;
}

int sw_auth_user_session_new(char out[SW_AUTH_USER_MAX], const char *secret, const char *login,
			     const char *teams, int64_t now_s, int64_t ttl_s)
{
	unsigned char raw[NONCE_BYTES];
	char nonce[2 * NONCE_BYTES + 1], mac[65];
	if (!login || !login_ok(login, strlen(login)))
		return sw_error_setc(SW_EINVALID, "'%s' is not a GitHub login", login ? login : "");
	for (const char *p = teams; p && *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-_./+", *p))
			return sw_error_setc(SW_EINVALID, "a team name holds '%c'", *p);
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return sw_error_set("no random bytes for a session");
	sw_hex(nonce, raw, sizeof(raw));
	int n = snprintf(out, SW_AUTH_USER_MAX, "u1.%lld.%s.%s.%s", (long long)(now_s + ttl_s),
			 nonce, login, teams && *teams ? teams : "-");
	if (n < 0 || n + 66 >= SW_AUTH_USER_MAX)
		return sw_error_setc(SW_EINVALID, "the session of %s does not fit a cookie", login);
	user_mac(mac, secret, out, (size_t)n);
	snprintf(out + n, SW_AUTH_USER_MAX - (size_t)n, ".%s", mac);
	return 0;
}

int sw_auth_user_session_verify(const char *value, const char *secret, int64_t now_s,
				char login[SW_AUTH_LOGIN_MAX], char teams[SW_AUTH_USER_MAX])
{
	char want[65];
	const char *v = value, *f[5];
	size_t len = value ? strlen(value) : 0;
	int k = 0;
	if (!secret)
		return sw_error_setc(SW_EINVALID, "sign-in with GitHub is not configured");
	/* u1 . EXP . NONCE . LOGIN . TEAMS . MAC: the MAC is the last 64 */
	if (len < 70 || strncmp(v, "u1.", 3) || v[len - 65] != '.')
		return sw_error_setc(SW_EINVALID, "malformed session");
	user_mac(want, secret, v, len - 65);
	if (!sw_auth_equal(want, v + len - 64))
		return sw_error_setc(SW_EINVALID, "session signature does not match");
	for (const char *p = v + 3; p < v + len - 65 && k < 5; p++)
		if (p == v + 3 || p[-1] == '.')
			f[k++] = p;
	if (k != 4)
		return sw_error_setc(SW_EINVALID, "malformed session");
	char *end;
	long long exp = strtoll(f[0], &end, 10);
	if (*end != '.' || exp <= now_s)
		return sw_error_setc(SW_EINVALID, *end != '.' ? "malformed session" : "session expired");
	size_t ln = (size_t)(f[3] - f[2] - 1), tn = (size_t)(v + len - 65 - f[3]);
	if (!login_ok(f[2], ln) || tn >= SW_AUTH_USER_MAX)
		return sw_error_setc(SW_EINVALID, "malformed session");
	memcpy(login, f[2], ln);
	login[ln] = 0;
	if (tn == 1 && f[3][0] == '-')
		tn = 0;
	memcpy(teams, f[3], tn);
	teams[tn] = 0;
	return 0;
}

void sw_auth_user_csrf(char out[SW_AUTH_VALUE_MAX], const char *value, const char *secret)
{
	char msg[64], mac[65];
	const char *dot = value ? strchr(value + (strlen(value) > 3 ? 3 : 0), '.') : NULL;
	/* bound to the session's nonce (what follows the expiry) */
	snprintf(msg, sizeof(msg), "ucsrf.%.32s", dot ? dot + 1 : "");
	user_mac(mac, secret, msg, strlen(msg));
	snprintf(out, SW_AUTH_VALUE_MAX, "%s", mac);
}

/* The CSRF check of a cookie-authenticated write: 0, or 403 with the slot set. */
static int csrf_check(const struct sw_auth_req *r, const char *want)
{
	char cookie[SW_AUTH_VALUE_MAX];
	const char *sent = r->csrf_header && *r->csrf_header ? r->csrf_header : r->csrf_field;
	if (!sent || !*sent) {
		sw_error_set("missing CSRF token: send the %s cookie's value in an %s header "
			     "or a %s form field", SW_AUTH_CSRF_COOKIE, SW_AUTH_CSRF_HEADER,
			     SW_AUTH_CSRF_FIELD);
		return 403;
	}
	if (sw_auth_cookie(r->cookies, SW_AUTH_CSRF_COOKIE, cookie, sizeof(cookie)) < 0 ||
	    !sw_auth_equal(sent, cookie) || !sw_auth_equal(sent, want)) {
		sw_error_set("CSRF token does not match this session");
		return 403;
	}
	return 0;
}

int sw_auth_cookie(const char *cookies, const char *name, char *out, size_t n)
{
	size_t nl = strlen(name);
	const char *p = cookies;
	while (p && *p) {
		while (*p == ' ' || *p == ';' || *p == '\t')
			p++;
		const char *end = strchr(p, ';');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len > nl && !strncmp(p, name, nl) && p[nl] == '=') {
			size_t vl = len - nl - 1;
			const char *v = p + nl + 1;
			while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			if (vl >= n)
				return SW_ENOTFOUND;
			memcpy(out, v, vl);
			out[vl] = 0;
			return 0;
		}
		p = end;
	}
	return SW_ENOTFOUND;
}

/* The token of "Bearer TOKEN"; NULL when the header is another scheme. */
static const char *bearer(const char *h, char *out, size_t n)
{
	while (*h == ' ')
		h++;
	if (strncasecmp(h, "Bearer ", 7))
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	size_t len = strlen(h);
	while (len && (h[len - 1] == ' ' || h[len - 1] == '\t'))
		len--;
	if (len >= n)
		len = n - 1;   /* a longer value cannot equal the token anyway */
	memcpy(out, h, len);
	out[len] = 0;
	return out;
}

int sw_auth_decide(struct sw_auth_req *r, int write)
{
	char session[SW_AUTH_VALUE_MAX], buf[1024];
	r->kind = SW_ACTOR_ANONYMOUS;
	r->presented[0] = 0;
	if (!write && !r->read_requires_token)
		return 0;
	if (r->authorization && *r->authorization) {
		const char *t = bearer(r->authorization, buf, sizeof(buf));
		if (t && !strncmp(t, SW_TOKEN_PREFIX, strlen(SW_TOKEN_PREFIX)) &&
		    strlen(t) < sizeof(r->presented)) {
			/* an API token: storage decides */
			snprintf(r->presented, sizeof(r->presented), "%s", t);
			OPENSSL_cleanse(buf, sizeof(buf));
			r->kind = SW_ACTOR_TOKEN;
			return 0;
		}
		int ok = t && r->token && sw_auth_equal(t, r->token);
		OPENSSL_cleanse(buf, sizeof(buf));
		if (!r->token) {
			sw_error_set("changes are disabled: server.api_token is not configured "
				     "and this is no API token");
			return 403;
		}
		if (!t) {
			sw_error_set("expected Authorization: Bearer TOKEN");
			return 401;
		}
		if (!ok) {
			sw_error_set("wrong API token");
			return 401;
		}
		r->kind = SW_ACTOR_API_TOKEN;
		return 0;
	}
	char user[SW_AUTH_USER_MAX];
	if (r->user_secret && r->cookies &&
	    sw_auth_cookie(r->cookies, SW_AUTH_USER_COOKIE, user, sizeof(user)) == 0) {
		char want[SW_AUTH_VALUE_MAX];
		int code;
		if (sw_auth_user_session_verify(user, r->user_secret, r->now_s, r->login,
						r->teams) < 0) {
			sw_error_prefix("sign in again at /login/github");
			return 401;
		}
		sw_auth_user_csrf(want, user, r->user_secret);
		if (write && (code = csrf_check(r, want)) != 0)
			return code;
		r->kind = SW_ACTOR_USER;
		return 0;
	}
	if (!r->token) {
		sw_error_set("this needs an API token (Authorization: Bearer TOKEN); "
			     "server.api_token is not configured, so there is no login");
		return 403;
	}
	if (r->cookies && sw_auth_cookie(r->cookies, SW_AUTH_SESSION_COOKIE, session,
					 sizeof(session)) == 0) {
		if (sw_auth_session_verify(session, r->token, r->now_s) < 0) {
			sw_error_prefix("log in again at /login");
			return 401;
		}
		if (!write) {
			r->kind = SW_ACTOR_API_TOKEN;
			return 0;
		}
		char want[SW_AUTH_VALUE_MAX];
		int code;
		sw_auth_csrf_for(want, session, r->token);
		if ((code = csrf_check(r, want)) != 0)
			return code;
		r->kind = SW_ACTOR_API_TOKEN;
		return 0;
	}
	sw_error_set("this needs an API token: send Authorization: Bearer TOKEN, or log in at /login");
	return 401;
}

/* --- HTTP ------------------------------------------------------------------ */

static const char *in_header(struct evhttp_request *req, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

static int is_api(struct evhttp_request *req)
{
	const char *uri = evhttp_request_get_uri(req);
	return uri && !strncmp(uri, "/api/", 5);
}

static int wants_json(struct evhttp_request *req)
{
	const char *acc = in_header(req, "Accept");
	return is_api(req) || (acc && strstr(acc, "application/json"));
}

static void html_escape(struct sw_buf *b, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': sw_buf_adds(b, "&lt;"); break;
		case '>': sw_buf_adds(b, "&gt;"); break;
		case '&': sw_buf_adds(b, "&amp;"); break;
		case '"': sw_buf_adds(b, "&quot;"); break;
		case '\'': sw_buf_adds(b, "&#39;"); break;
		default: sw_buf_addch(b, *s);
		}
	}
}

static void reply_html(struct evhttp_request *req, int code, const struct sw_buf *body)
{
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evbuffer_add(b, body->ptr, body->len);
	evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(req, code, NULL, b);
	evbuffer_free(b);
}

/* A login form; `next` is where to go afterwards, `msg` an optional notice. */
static void send_login_page(struct evhttp_request *req, int code, const char *next,
			    const char *msg)
{
	struct sw_buf b = SW_BUF_INIT;
	sw_buf_adds(&b, "<!doctype html><html><head><meta charset=utf-8>"
		    "<meta name=viewport content=\"width=device-width,initial-scale=1\">"
		    "<title>slipway: log in</title><style>body{font:16px system-ui,sans-serif;"
		    "max-width:24em;margin:4em auto;padding:0 1em}input{font:inherit;width:100%;"
		    "margin:.3em 0;padding:.4em;box-sizing:border-box}.msg{color:#b00}</style>"
		    "</head><body><h1>slipway</h1>");
	if (msg) {
		sw_buf_adds(&b, "<p class=msg>");
		html_escape(&b, msg);
		sw_buf_adds(&b, "</p>");
	}
	sw_buf_adds(&b, "<form method=post action=/login><label>API token "
		    "<input type=password name=token autocomplete=current-password autofocus>"
		    "</label><input type=hidden name=next value=\"");
	html_escape(&b, next ? next : "/");
	sw_buf_adds(&b, "\"><input type=submit value=\"Log in\"></form></body></html>\n");
	reply_html(req, code, &b);
	sw_buf_release(&b);
}

static void send_denied(struct evhttp_request *req, int code, const char *msg)
{
	if (code == 401)
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
				  "Bearer realm=\"slipway\"");
	if (wants_json(req)) {
		sw_reply_error(req, code, "%s", msg);
		return;
	}
	const char *uri = evhttp_request_get_uri(req);
	if (code == 401)
		send_login_page(req, 401, evhttp_request_get_command(req) == EVHTTP_REQ_GET ? uri : "/",
				msg);
	else {
		struct sw_buf b = SW_BUF_INIT;
		sw_buf_adds(&b, "<!doctype html><title>slipway: forbidden</title><p>");
		html_escape(&b, msg);
		sw_buf_adds(&b, "</p>\n");
		reply_html(req, code, &b);
		sw_buf_release(&b);
	}
}

/* The body as a form (application/x-www-form-urlencoded); 0 when parsed. */
static int read_form(struct evhttp_request *req, struct evkeyvalq *form)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	const char *ct = in_header(req, "Content-Type");
	size_t len = evbuffer_get_length(in);
	TAILQ_INIT(form);
	if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) || len > FORM_MAX)
		return SW_EINVALID;
	char *s = sw_malloc(len + 1);
	evbuffer_copyout(in, s, len);
	s[len] = 0;
	int rc = evhttp_parse_query_str(s, form);
	OPENSSL_cleanse(s, len);
	free(s);
	return rc == 0 ? 0 : SW_EINVALID;
}

static void fill_req(struct sw_auth_req *a, struct sw_daemon *d, struct evhttp_request *req)
{
	memset(a, 0, sizeof(*a));
	a->token = d->cfg->api_token.value;
	a->read_requires_token = d->cfg->read_requires_token;
	a->authorization = in_header(req, "Authorization");
	a->cookies = in_header(req, "Cookie");
	a->csrf_header = in_header(req, SW_AUTH_CSRF_HEADER);
	a->now_s = sw_now_ms() / 1000;
	a->user_secret = d->cfg->oauth_client_id ? d->cfg->oauth_client_secret.value : NULL;
}

/* The limiter key of the client `req` comes from, into `key` (at least 80 bytes). */
static void client_key(char *key, size_t n, char *client, size_t cn, struct sw_daemon *d,
		       struct evhttp_request *req)
{
	sw_request_client(client, cn, req, d->cfg->trusted_proxies, d->cfg->ntrusted_proxies);
	sw_limiter_key(key, n, client);
}

/* 429 with Retry-After when the client has failed too often; 1 when sent. */
static int limited(struct sw_limiter *l, const char *key, const char *client,
		   struct evhttp_request *req, const char *what)
{
	int64_t wait = l ? sw_limiter_check(l, key, sw_now_ms()) : 0;
	char secs[24];
	if (wait <= 0)
		return 0;
	snprintf(secs, sizeof(secs), "%lld", (long long)((wait + 999) / 1000));
	log_info("auth.limited", "client=%s what=%s retry_after_s=%s", sw_q(client), what, secs);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", secs);
	sw_reply_error(req, 429, "too many failed %s from %s; try again in %s s", what, client,
		       secs);
	return 1;
}

/* Record a refusal in the audit log and the log, and answer it. */
static void refuse(struct sw_daemon *d, struct evhttp_request *req, const struct sw_actor *a,
		   int code, const char *action, const char *target, const char *msg)
{
	log_info("auth.denied", "status=%d client=%s actor=%s kind=%s path=%s reason=%s", code,
		 sw_q(a->client), sw_q(a->name), sw_actor_kind_str(a->kind),
		 sw_q(evhttp_request_get_uri(req)), sw_q(msg));
	if (action)
		sw_audit_record(d, a, action, target, "refused", msg);
	send_denied(req, code, msg);
}

int sw_auth_require(struct sw_daemon *d, struct evhttp_request *req, enum sw_role need,
		    const char *env, const char *action, const char *target,
		    struct sw_actor *out)
{
	static const struct sw_actor init = SW_ACTOR_INIT;
	struct sw_actor tmp;
	struct sw_auth_req a;
	struct evkeyvalq form;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	int have_form = 0, code, write = cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD;
	char key[96], msg[512];

	if (!out)
		out = &tmp;
	*out = init;
	fill_req(&a, d, req);
	client_key(key, sizeof(key), out->client, sizeof(out->client), d, req);
	if (need <= SW_ROLE_VIEWER && !a.read_requires_token && !write) {
		if (out == &tmp)
			sw_actor_release(out);
		return 0;
	}
	a.read_requires_token = 1;   /* from here on, who it is matters */
	int has_bearer = a.authorization && *a.authorization;
	/* a bearer token is a guess until proven: limited per client */
	if (has_bearer && limited(d->token_fails, key, out->client, req, "API tokens"))
		goto refused;
	if (write && !has_bearer && !a.csrf_header && read_form(req, &form) == 0) {
		have_form = 1;
		a.csrf_field = evhttp_find_header(&form, SW_AUTH_CSRF_FIELD);
	}
	code = sw_auth_decide(&a, write);
	if (have_form)
		evhttp_clear_headers(&form);
	if (code == 0 && a.kind == SW_ACTOR_TOKEN)
		code = sw_token_verify(d, a.presented, out);
	OPENSSL_cleanse(a.presented, sizeof(a.presented));
	if (code == 0 && a.kind == SW_ACTOR_API_TOKEN) {
		out->kind = SW_ACTOR_API_TOKEN;
		snprintf(out->name, sizeof(out->name), "api_token");
	} else if (code == 0 && a.kind == SW_ACTOR_USER) {
		sw_actor_set_user(out, a.login, a.teams);
	}
	if (code != 0) {
		if (code == 401 && has_bearer && d->token_fails)
			sw_limiter_fail(d->token_fails, key, sw_now_ms());
		snprintf(msg, sizeof(msg), "%s", sw_error_last());
		/* a credential that does not hold is worth a row whatever was asked;
		 * a request with none is only logged (anyone could fill the table) */
		int presented = has_bearer || (a.cookies && strstr(a.cookies, SW_AUTH_SESSION_COOKIE));
		refuse(d, req, out, code, !presented ? NULL : action ? action : "auth", target, msg);
		goto refused;
	}
	if (!sw_roles_allows(d->cfg, out, need, env)) {
		sw_roles_refusal(msg, sizeof(msg), d->cfg, out, action ? action : "this", need, env);
		refuse(d, req, out, 403, action, target, msg);
		goto refused;
	}
	if (out == &tmp)
		sw_actor_release(out);
	return 0;
refused:
	sw_actor_release(out);
	return SW_EINVALID;
}

int sw_auth_check_read(struct sw_daemon *d, struct evhttp_request *req)
{
	return sw_auth_require(d, req, SW_ROLE_VIEWER, NULL, NULL, NULL, NULL);
}

int sw_auth_check_write(struct sw_daemon *d, struct evhttp_request *req)
{
	return sw_auth_require(d, req, SW_ROLE_ADMIN, NULL, NULL, NULL, NULL);
}

int sw_auth_actor(struct sw_daemon *d, struct evhttp_request *req, struct sw_actor *out)
{
	static const struct sw_actor init = SW_ACTOR_INIT;
	struct sw_auth_req a;
	char key[96];
	int bearer = 0, ok;
	*out = init;
	fill_req(&a, d, req);
	client_key(key, sizeof(key), out->client, sizeof(out->client), d, req);
	a.read_requires_token = 1;   /* ask whether credentials are present and right */
	if (a.authorization && *a.authorization && d->token_fails) {
		/* the same limit as sw_auth_require(): no oracle for token guesses */
		if (sw_limiter_check(d->token_fails, key, sw_now_ms()) > 0)
			return 0;
		bearer = 1;
	}
	ok = sw_auth_decide(&a, 0) == 0;
	if (ok && a.kind == SW_ACTOR_TOKEN) {
		ok = sw_token_verify(d, a.presented, out) == 0;
	} else if (ok && a.kind == SW_ACTOR_API_TOKEN) {
		out->kind = SW_ACTOR_API_TOKEN;
		snprintf(out->name, sizeof(out->name), "api_token");
	} else if (ok && a.kind == SW_ACTOR_USER) {
		sw_actor_set_user(out, a.login, a.teams);
	}
	OPENSSL_cleanse(a.presented, sizeof(a.presented));
	if (!ok && bearer)
		sw_limiter_fail(d->token_fails, key, sw_now_ms());
	if (!ok) {
		sw_actor_release(out);
		*out = init;
	}
	return ok;
}

int sw_auth_is_authenticated(struct sw_daemon *d, struct evhttp_request *req)
{
	struct sw_actor who;
	int ok = sw_auth_actor(d, req, &who);
	sw_actor_release(&who);
	return ok;
}

char *sw_auth_csrf_token(struct sw_daemon *d, struct evhttp_request *req)
{
	char session[SW_AUTH_USER_MAX], csrf[SW_AUTH_VALUE_MAX], login[SW_AUTH_LOGIN_MAX];
	char teams[SW_AUTH_USER_MAX];
	const char *token = d->cfg->api_token.value, *cookies = in_header(req, "Cookie");
	const char *secret = d->cfg->oauth_client_id ? d->cfg->oauth_client_secret.value : NULL;
	int64_t now = sw_now_ms() / 1000;
	if (!cookies)
		return NULL;
	if (secret && sw_auth_cookie(cookies, SW_AUTH_USER_COOKIE, session, sizeof(session)) == 0 &&
	    sw_auth_user_session_verify(session, secret, now, login, teams) == 0) {
		sw_auth_user_csrf(csrf, session, secret);
		return sw_strdup(csrf);
	}
	if (!token || sw_auth_cookie(cookies, SW_AUTH_SESSION_COOKIE, session, SW_AUTH_VALUE_MAX) < 0 ||
	    sw_auth_session_verify(session, token, now) < 0)
		return NULL;
	sw_auth_csrf_for(csrf, session, token);
	return sw_strdup(csrf);
}

/* Only same-site paths: "/x", never "//host" or "http://...". */
static const char *safe_next(const char *next)
{
	if (!next || next[0] != '/' || next[1] == '/' || next[1] == '\\' || strpbrk(next, "\r\n"))
		return "/";
	return next;
}

const char *sw_auth_cookie_attrs(struct sw_daemon *d, int lax)
{
	int secure = d->ssl || (d->cfg->public_url && !strncmp(d->cfg->public_url, "https:", 6));
	if (lax)
		return secure ? "; Path=/; SameSite=Lax; Secure" : "; Path=/; SameSite=Lax";
	return secure ? "; Path=/; SameSite=Strict; Secure" : "; Path=/; SameSite=Strict";
}

static const char *cookie_attrs(struct sw_daemon *d)
{
	return sw_auth_cookie_attrs(d, 0);
}

void sw_auth_login_form(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	struct evkeyvalq q;
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *query = u ? evhttp_uri_get_query(u) : NULL;
	TAILQ_INIT(&q);
	if (query)
		evhttp_parse_query_str(query, &q);
	send_login_page(req, 200, safe_next(evhttp_find_header(&q, "next")), NULL);
	evhttp_clear_headers(&q);
}

void sw_auth_login(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	struct evkeyvalq form;
	const char *token = d->cfg->api_token.value;
	int64_t now = sw_now_ms();
	char session[SW_AUTH_VALUE_MAX], csrf[SW_AUTH_VALUE_MAX], client[64], key[96];

	client_key(key, sizeof(key), client, sizeof(client), d, req);
	if (limited(d->login_fails, key, client, req, "logins"))
		return;
	if (!token) {
		send_denied(req, 403, "logging in is disabled: server.api_token is not configured");
		return;
	}
	if (read_form(req, &form) < 0) {
		sw_reply_error(req, 400, "expected a form (application/x-www-form-urlencoded) "
			       "with the field token");
		return;
	}
	const char *given = evhttp_find_header(&form, "token");
	const char *next = safe_next(evhttp_find_header(&form, "next"));
	if (!given || !sw_auth_equal(given, token)) {
		struct sw_actor anon = SW_ACTOR_INIT;
		snprintf(anon.client, sizeof(anon.client), "%s", client);
		if (d->login_fails)
			sw_limiter_fail(d->login_fails, key, now);
		log_info("auth.login_failed", "client=%s reason=%s", sw_q(client),
			 given ? "wrong token" : "no token");
		sw_audit_record(d, &anon, "sign_in", NULL, "refused",
				given ? "wrong token" : "no token");
		if (wants_json(req))
			sw_reply_error(req, 401, "wrong API token");
		else
			send_login_page(req, 401, next, "Wrong token.");
		evhttp_clear_headers(&form);
		return;
	}
	if (sw_auth_session_new(session, token, now / 1000, SW_AUTH_SESSION_TTL_S) < 0) {
		sw_reply_error(req, 500, "%s", sw_error_last());
		evhttp_clear_headers(&form);
		return;
	}
	sw_auth_csrf_for(csrf, session, token);
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char *c1 = sw_asprintf("%s=%s; Max-Age=%d; HttpOnly%s", SW_AUTH_SESSION_COOKIE, session,
			       SW_AUTH_SESSION_TTL_S, cookie_attrs(d));
	char *c2 = sw_asprintf("%s=%s; Max-Age=%d%s", SW_AUTH_CSRF_COOKIE, csrf,
			       SW_AUTH_SESSION_TTL_S, cookie_attrs(d));
	evhttp_add_header(h, "Set-Cookie", c1);
	evhttp_add_header(h, "Set-Cookie", c2);
	evhttp_add_header(h, "Cache-Control", "no-store");
	free(c1);
	free(c2);
	log_info("auth.login", "client=%s expires_in_s=%d", sw_q(client), SW_AUTH_SESSION_TTL_S);
	{
		struct sw_actor who = { .kind = SW_ACTOR_API_TOKEN, .name = "api_token" };
		snprintf(who.client, sizeof(who.client), "%s", client);
		sw_audit_record(d, &who, "sign_in", NULL, "ok", NULL);
	}
	if (wants_json(req)) {
		sw_reply_json(req, 200, json_pack("{s:b, s:s, s:I}", "ok", 1, "csrf", csrf,
						  "expires_at", (json_int_t)(now / 1000 +
									     SW_AUTH_SESSION_TTL_S) * 1000));
	} else {
		evhttp_add_header(h, "Location", next);
		evhttp_send_reply(req, 303, "See Other", NULL);
	}
	evhttp_clear_headers(&form);
}

void sw_auth_logout(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char *c1 = sw_asprintf("%s=; Max-Age=0; HttpOnly%s", SW_AUTH_SESSION_COOKIE, cookie_attrs(d));
	char *c2 = sw_asprintf("%s=; Max-Age=0%s", SW_AUTH_CSRF_COOKIE, cookie_attrs(d));
	char *c3 = sw_asprintf("%s=; Max-Age=0; HttpOnly%s", SW_AUTH_USER_COOKIE,
			       sw_auth_cookie_attrs(d, 1));
	evhttp_add_header(h, "Set-Cookie", c1);
	evhttp_add_header(h, "Set-Cookie", c2);
	evhttp_add_header(h, "Set-Cookie", c3);
	free(c1);
	free(c2);
	free(c3);
	if (wants_json(req)) {
		sw_reply_json(req, 200, json_pack("{s:b}", "ok", 1));
	} else {
		evhttp_add_header(h, "Location", "/");
		evhttp_send_reply(req, 303, "See Other", NULL);
	}
}
