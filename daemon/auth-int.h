/*
 * auth.h - who may read and who may act: the API token, the login session
 * cookie and its CSRF token. Used by the JSON API (daemon/api.c) and the
 * status page (daemon/page.c).
 *
 * The rules (docs/api.md, "Authentication"):
 *  - Reading needs the token only when `server.read_access: token`.
 *  - Every request that changes something needs the token, sent either as
 *    `Authorization: Bearer TOKEN`, or as the session cookie that
 *    `POST /login` sets; a cookie-authenticated request must also echo the
 *    `sw_csrf` cookie's value in an `X-CSRF-Token` header or a `csrf` form
 *    field (double submit). A bearer header needs no CSRF token: browsers
 *    never send it on their own.
 *  - Without `server.api_token` nothing can be changed (403).
 *
 * The session cookie `sw_session` is "EXPIRY.NONCE.MAC": the expiry in
 * seconds since the epoch, 16 random bytes (hex), and an HMAC-SHA256 over
 * both under a key derived from the API token. It never holds the token;
 * changing the token ends every session. The CSRF token is an HMAC of the
 * session's nonce, so it is bound to one session and cannot be forged
 * without the key. Every comparison is constant-time; the token is never
 * logged.
 */
#ifndef SW_DAEMON_AUTH_H
#define SW_DAEMON_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/daemon.h"
#include "daemon/roles-int.h"

#define SW_AUTH_SESSION_COOKIE "sw_session"
#define SW_AUTH_CSRF_COOKIE "sw_csrf"
#define SW_AUTH_CSRF_HEADER "X-CSRF-Token"
#define SW_AUTH_CSRF_FIELD "csrf"
/* Failed logins, and failed bearer tokens, each client may have per window
 * before it gets 429 with Retry-After until the window ends. */
#define SW_AUTH_FAILS_PER_WINDOW 20
#define SW_AUTH_FAIL_WINDOW_MS 60000
/* Clients remembered by each limiter (see daemon/limit-int.h). */
#define SW_AUTH_LIMIT_CLIENTS 4096
/* How long a login lasts. */
#define SW_AUTH_SESSION_TTL_S (12 * 3600)
/* Room for a session value ("EXPIRY.NONCE.MAC") or a CSRF token, with NUL. */
#define SW_AUTH_VALUE_MAX 128
/* A GitHub user's session: "u1.EXPIRY.NONCE.LOGIN.TEAMS.MAC" (daemon/oauth.c
 * makes it), TEAMS the user's org/team names that the config names, joined
 * by '+', or "-"; signed with a key derived from github.oauth.client_secret. */
#define SW_AUTH_USER_COOKIE "sw_user"
#define SW_AUTH_USER_MAX 1024
#define SW_AUTH_LOGIN_MAX 40

/* --- for handlers -------------------------------------------------------- */

/*
 * Who is `req`, and may they do `action` on `target`, which needs role
 * `need` on environment `env` (NULL: none; roles-int.h has the rules)?
 * Returns 0 with `*out` (may be NULL; release with sw_actor_release) the
 * actor and the client address. Otherwise it has answered (401 for no,
 * bad, expired or revoked credentials; 403 with the role needed; 429 when
 * the client guessed too often; 503 when the token could not be checked),
 * logged the refusal, recorded it in the audit log when `action` is set
 * or credentials were presented, and returns SW_EINVALID: the caller just
 * returns. A request that is no GET needs a CSRF token with a session
 * cookie. With need viewer and server.read_access open it returns 0 at
 * once, for everyone (`*out` is then anonymous).
 */
int sw_auth_require(struct sw_daemon *d, struct evhttp_request *req, enum sw_role need,
		    const char *env, const char *action, const char *target,
		    struct sw_actor *out);

/*
 * May `req` read? Returns 0, or sends 401 (JSON for /api/, else a short
 * page pointing at /login) and returns SW_EINVALID: the caller just returns.
 */
int sw_auth_check_read(struct sw_daemon *d, struct evhttp_request *req);

/*
 * May `req` change something? Returns 0, or sends 401 (no or wrong
 * credentials) / 403 (cookie without a matching CSRF token, or no token
 * configured) and returns SW_EINVALID. Reads the request body for the
 * `csrf` form field (the body stays in the input buffer).
 */
int sw_auth_check_write(struct sw_daemon *d, struct evhttp_request *req);

/*
 * The CSRF token to embed in forms for the session `req` carries, as a
 * heap string the caller frees; NULL when the request has no valid session
 * (a bearer client needs none).
 */
char *sw_auth_csrf_token(struct sw_daemon *d, struct evhttp_request *req);

/*
 * Who `req` is, quietly (no answer, no audit row; a wrong bearer token
 * counts towards its client's limit): 1 with `*out` filled (release it),
 * or 0 and `*out` anonymous when it carries no valid credentials.
 */
int sw_auth_actor(struct sw_daemon *d, struct evhttp_request *req, struct sw_actor *out);

/* Does `req` carry valid credentials (bearer or session)? 1 or 0. */
int sw_auth_is_authenticated(struct sw_daemon *d, struct evhttp_request *req);

/* "; Path=/; SameSite=Strict|Lax[; Secure]" for this server's cookies
 * (Secure behind TLS or an https public_url). */
const char *sw_auth_cookie_attrs(struct sw_daemon *d, int lax);

/* Sign-in with GitHub (daemon/oauth.c): GET /login/github and
 * GET /login/github/callback. */
void sw_oauth_start(struct sw_daemon *d, struct evhttp_request *req, const char *rest);
void sw_oauth_callback(struct sw_daemon *d, struct evhttp_request *req, const char *rest);

/* The routes GET /login (a form), POST /login, POST /logout. */
void sw_auth_login_form(struct sw_daemon *d, struct evhttp_request *req, const char *rest);
void sw_auth_login(struct sw_daemon *d, struct evhttp_request *req, const char *rest);
void sw_auth_logout(struct sw_daemon *d, struct evhttp_request *req, const char *rest);

/* --- the pieces, without HTTP (unit-tested) ------------------------------ */


/* Constant-time equality of two NUL-terminated strings (NULL equals nothing). */
int sw_auth_equal(const char *a, const char *b);

/*
 * A new session value for `token`, valid until now_s + ttl_s, written to
 * `out` (SW_AUTH_VALUE_MAX bytes). Returns 0 or SW_ERR (no randomness).
 */
int sw_auth_session_new(char out[SW_AUTH_VALUE_MAX], const char *token, int64_t now_s,
			int64_t ttl_s);

/*
 * Check a session value: well formed, MAC right under `token`, not expired
 * at now_s. Returns 0, or SW_EINVALID with the reason in the slot.
 */
int sw_auth_session_verify(const char *value, const char *token, int64_t now_s);

/*
 * A GitHub user's session value for `login` with `teams` ('+'-joined, or
 * NULL), valid until now_s + ttl_s, into `out` (SW_AUTH_USER_MAX bytes).
 * SW_EINVALID when it does not fit or the login is not a GitHub login.
 */
int sw_auth_user_session_new(char out[SW_AUTH_USER_MAX], const char *secret, const char *login,
			     const char *teams, int64_t now_s, int64_t ttl_s);
/* Check one: 0 with the login and teams ("" for none) copied out, or
 * SW_EINVALID with the reason in the slot. */
int sw_auth_user_session_verify(const char *value, const char *secret, int64_t now_s,
				char login[SW_AUTH_LOGIN_MAX], char teams[SW_AUTH_USER_MAX]);
/* The CSRF token of a (verified) user session. */
void sw_auth_user_csrf(char out[SW_AUTH_VALUE_MAX], const char *value, const char *secret);

/* The CSRF token bound to session `value` (must have been verified). */
void sw_auth_csrf_for(char out[SW_AUTH_VALUE_MAX], const char *value, const char *token);

/* What a request presents, borrowed; any field may be NULL. */
struct sw_auth_req {
	const char *token;          /* server.api_token; NULL = not configured */
	int read_requires_token;    /* server.read_access: token */
	const char *authorization;  /* the Authorization header */
	const char *cookies;        /* the Cookie header */
	const char *csrf_header;    /* X-CSRF-Token */
	const char *csrf_field;     /* the `csrf` form field */
	int64_t now_s;
	/* out: what authenticated the request (SW_ACTOR_ANONYMOUS when
	 * nothing was needed); for SW_ACTOR_TOKEN the bearer value, which
	 * the caller checks against storage and then wipes */
	enum sw_actor_kind kind;
	char presented[SW_AUTH_VALUE_MAX];
	/* in: github.oauth.client_secret (NULL: no user sessions); out, for
	 * SW_ACTOR_USER: the login and the '+'-joined teams */
	const char *user_secret;
	char login[SW_AUTH_LOGIN_MAX];
	char teams[SW_AUTH_USER_MAX];
};

/*
 * The decision: 0 allowed, or 401 / 403 with the reason in the slot.
 * `write` is 1 for a request that changes something. A bearer value that
 * looks like an API token (SW_TOKEN_PREFIX) is 0 with kind
 * SW_ACTOR_TOKEN: only storage can tell whether it is one.
 */
int sw_auth_decide(struct sw_auth_req *r, int write);

/*
 * The value of cookie `name` in a Cookie header, copied to `out`
 * (`n` bytes); 0 when found and it fits, SW_ENOTFOUND otherwise.
 */
int sw_auth_cookie(const char *cookies, const char *name, char *out, size_t n);

#endif
