/*
 * github.h - the github room: slipway as a GitHub App. It signs the App's
 * JWT (RS256 with OpenSSL), finds each repository's installation, exchanges
 * it for an installation access token and keeps that token until a little
 * before it expires, for the REST API (report/outbox.c) and for git over
 * https (git/source.c, through the token provider the daemon installs).
 * The code is github/app.c. May call: lib/, config/. Called by report/,
 * pipeline/ and daemon/.
 *
 * The flow (docs/github-app.md):
 *   JWT      {"alg":"RS256","typ":"JWT"} . {"iat": now-60, "exp": now+540,
 *            "iss": github.app.id}, signed PKCS#1 v1.5 SHA-256, base64url
 *            without padding; a new one for every request to GitHub (a
 *            signature costs well under a millisecond).
 *   lookup   GET /repos/{owner}/{repo}/installation with the JWT -> "id";
 *            skipped when github.app.installation_id is configured.
 *   token    POST /app/installations/{id}/access_tokens with the JWT ->
 *            {"token", "expires_at"}; used as "Authorization: Bearer" on
 *            the REST API and as the password of user x-access-token for
 *            git over https.
 *
 * The cache and its threads. One struct sw_github_app lives as long as the
 * daemon; it holds one entry per repository (installation id, token, expiry,
 * the last failure) behind one mutex that is only ever held for a few
 * pointer moves, never across a request, so the loop never waits on a
 * worker's network. Two ways in:
 *   - the loop (the outbox): sw_github_app_token() answers from the cache
 *     at once or starts the lookup and exchange through lib/http.h (async,
 *     curl multi) and answers SW_EAGAIN; when that finishes the on_ready
 *     callback runs on the loop (the outbox kicks itself);
 *   - a worker (a git fetch): sw_github_app_token_wait() answers from the
 *     cache, or fetches the token itself with a blocking curl easy request.
 *     An entry being fetched by a worker is marked, and a second worker
 *     waits on a condition variable for that fetch instead of fetching
 *     again, so two workers never both mint a token. A worker does not
 *     wait for the loop's fetch (at shutdown the loop waits for the
 *     workers, so it could never answer): it fetches beside it, and the
 *     loop does not start one while a worker's is under way (the outbox's
 *     next tick asks again).
 * A token counts as valid until `margin` before its expires_at, the margin
 * being 5 minutes or half the token's lifetime, whichever is shorter (a
 * test's 10-second tokens are refreshed after 5). A failure (the App not
 * installed on the repository: 404; the installation revoked: 404 on the
 * exchange; the JWT refused: 401) is kept for a while (fail_hold_ms) and
 * answered from the cache meanwhile, with a message that says which.
 *
 * A configuration change (SIGHUP) that touches github.api_url or
 * github.app drops every entry; answers to requests started under the old
 * one are dropped too.
 *
 * Errors: 0 or a negative SW_E* code with the message in the error slot.
 * Tokens and keys never reach a message or a log line.
 */
#ifndef SW_GITHUB_H
#define SW_GITHUB_H

#include <stddef.h>
#include <stdint.h>

/* The media type and API version every GitHub REST request names
 * (docs.github.com/rest: "Accept" and "X-GitHub-Api-Version"). */
#define SW_GITHUB_ACCEPT "Accept: application/vnd.github+json"
#define SW_GITHUB_API_VERSION "X-GitHub-Api-Version: 2022-11-28"

#include "lib/error.h"

struct evp_pkey_st;
struct sw_buf;
struct sw_config;
struct sw_http;
struct sw_github_app;

/* ---- pieces, pure (exposed for tests and the fuzz target) ----------- */

/*
 * Read an RSA private key from PEM text (PKCS#1 "RSA PRIVATE KEY" or
 * PKCS#8 "PRIVATE KEY", as GitHub hands it out). Returns 0 and *out (free
 * with EVP_PKEY_free), or SW_EINVALID with a message that never quotes the
 * key.
 */
int sw_github_key_parse(struct evp_pkey_st **out, const char *pem);

/*
 * The App's JWT at `now_s` (Unix seconds): iat = now_s - 60, exp = now_s +
 * 540 (GitHub allows at most 10 minutes), iss = app_id, RS256. *out is a
 * new string the caller frees.
 */
int sw_github_jwt(char **out, struct evp_pkey_st *key, const char *app_id, int64_t now_s);

/* An installation token as GitHub answers POST .../access_tokens. */
struct sw_github_token {
	char *token;             /* never NULL after a successful parse */
	int64_t expires_s;       /* expires_at, Unix seconds */
};
#define SW_GITHUB_TOKEN_INIT { NULL, 0 }
/* Wipes the token. */
void sw_github_token_release(struct sw_github_token *t);

/*
 * Parse the answer to POST /app/installations/{id}/access_tokens: a JSON
 * object with "token" (a non-empty string of printable ASCII without
 * spaces, at most 1024 bytes) and "expires_at" (RFC 3339 UTC,
 * "2016-07-11T22:14:10Z"). SW_EINVALID with the reason otherwise.
 */
int sw_github_parse_token(struct sw_github_token *out, const char *body, size_t len);

/* The "id" (a positive integer) of GET /repos/{o}/{r}/installation's answer. */
int sw_github_parse_installation(int64_t *out, const char *body, size_t len);

/* "2016-07-11T22:14:10Z" (an optional fraction, Z or +00:00) to Unix
 * seconds; -1 when it is not that. */
int64_t sw_github_parse_time(const char *s);

/* ---- the App -------------------------------------------------------- */

struct sw_github_app_opts {
	int64_t margin_s;        /* refresh this long before expiry at most; 300 */
	int64_t fail_hold_ms;    /* a failure is answered from the cache this long; 10000 */
	long timeout_ms;         /* one request to GitHub; 30000 */
	const char *user_agent;  /* copied; NULL = "slipway/<version>" */
	/* The clock tokens are judged fresh by (Unix seconds; NULL = the
	 * real one): tests move it. JWTs always carry the real time. */
	int64_t (*now_s)(void);
};
#define SW_GITHUB_APP_OPTS_INIT { .margin_s = 300, .fail_hold_ms = 10000, \
		.timeout_ms = 30000, .user_agent = NULL, .now_s = NULL }

/*
 * A new App cache. `http` (the loop's client; may be NULL, then the loop
 * path fetches nothing and answers SW_EAGAIN forever: for tools that only
 * use the blocking path) is borrowed. `opts` may be NULL. Configure it with
 * sw_github_app_set_config() before use; without github.app it is off.
 */
int sw_github_app_new(struct sw_github_app **out, struct sw_http *http,
		      const struct sw_github_app_opts *opts);

/*
 * Take github.app and github.api_url from `cfg` (copied: cfg may be freed
 * afterwards). Drops the cache when either changed. On the loop's thread.
 */
void sw_github_app_set_config(struct sw_github_app *app, const struct sw_config *cfg);

/* Whether a GitHub App is configured (any thread). */
int sw_github_app_enabled(struct sw_github_app *app);

/*
 * Called on the loop (with `arg`) whenever an asynchronous fetch has
 * finished, well or not: whoever got SW_EAGAIN may ask again.
 */
void sw_github_app_on_ready(struct sw_github_app *app, void (*fn)(void *arg), void *arg);

/*
 * On the loop: the installation token for `repo` ("owner/repo"). Returns 0
 * and *token (a copy, the caller frees it, wiping it), and *installation
 * (may be NULL); SW_EAGAIN when a fetch is under way (on_ready follows);
 * or the failure kept for the repository (SW_ENOTFOUND: the App is not
 * installed there or the installation is gone; SW_EINVALID: GitHub refused
 * the JWT or answered nonsense; SW_ERR: the network).
 */
int sw_github_app_token(struct sw_github_app *app, const char *repo, char **token,
			int64_t *installation);

/*
 * On a worker: the same, blocking until the token is there (fetched on
 * this thread with curl easy, or by whoever fetches it already). With
 * `refresh` set a cached token is dropped first (it was refused).
 */
int sw_github_app_token_wait(struct sw_github_app *app, const char *repo, int refresh,
			     char **token);

/*
 * The installation of `repo` when known (any thread), else 0: the outbox
 * keeps its rate-limit holds per installation.
 */
int64_t sw_github_app_installation(struct sw_github_app *app, const char *repo);

/*
 * `token` was refused (a 401): forget it for `repo`, when it is still the
 * cached one, so the next ask fetches a new one (any thread).
 */
void sw_github_app_invalidate(struct sw_github_app *app, const char *repo, const char *token);

/*
 * The token provider git/ asks on a worker (git.h sw_source_set_token_provider):
 * `arg` is the App. When no App is configured returns SW_ENOTFOUND without a
 * message, and git uses the repository's static token.
 */
int sw_github_app_git_token(char **out, const char *repo, int refresh, void *arg);

/*
 * For `slipwayd --check`: fetch a token for every configured repository
 * with the blocking path and print one line per repository to `out` (a
 * FILE *). Returns the number of repositories GitHub refused (not
 * installed, installation revoked, JWT refused); a network failure is
 * printed as "not checked" and not counted.
 */
int sw_github_app_check(struct sw_github_app *app, const struct sw_config *cfg, void *out);

/*
 * How many repositories have no token because their last fetch failed
 * (any thread; cleared by the next success or a new config), with the
 * first one's message appended to `msg` (may be NULL): for the page.
 */
size_t sw_github_app_failures(struct sw_github_app *app, struct sw_buf *msg);

/* Counters for tests and metrics: JWTs signed, tokens minted. */
void sw_github_app_counts(struct sw_github_app *app, uint64_t *jwts, uint64_t *tokens);

/* Cancel what is in flight and free. Workers must be done. NULL is a no-op. */
void sw_github_app_free(struct sw_github_app *app);

#endif
