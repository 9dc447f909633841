/*
 * tokens-int.h - API tokens for CI and scripts (docs/api.md "API tokens").
 * Private to daemon/.
 *
 * A token is "swt_" + a 16-hex-digit lookup id + "_" + 64 hex digits of a
 * random 32-byte secret. Storage keeps the id and the SHA-256 of the
 * secret, never the token: checking one is one read by primary key and a
 * constant-time compare of the digests. The whole token is shown once, in
 * the answer to its creation.
 */
#ifndef SW_DAEMON_TOKENS_INT_H
#define SW_DAEMON_TOKENS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/daemon.h"
#include "daemon/roles-int.h"

#define SW_TOKEN_PREFIX "swt_"
#define SW_TOKEN_ID_HEX 16
#define SW_TOKEN_SECRET_BYTES 32
/* "swt_" ID "_" SECRET, with NUL */
#define SW_TOKEN_MAX (4 + SW_TOKEN_ID_HEX + 1 + 2 * SW_TOKEN_SECRET_BYTES + 1)
#define SW_TOKEN_NAME_MAX 64
/* --expires: from one minute to ten years, or never */
#define SW_TOKEN_EXPIRES_MIN_S 60
#define SW_TOKEN_EXPIRES_MAX_S (3650LL * 86400)

/* --- the pieces, without HTTP or storage (unit-tested) ------------------- */

/*
 * A new token into `token`, its id into `id` and the SHA-256 of its secret
 * into `hash`. 0, or SW_ERR when there is no randomness.
 */
int sw_token_generate(char token[SW_TOKEN_MAX], char id[SW_TOKEN_ID_HEX + 1],
		      unsigned char hash[32]);
/*
 * Split a presented token: its id and the SHA-256 of its secret. 0, or
 * SW_EINVALID ("malformed API token ...") when the shape is wrong.
 */
int sw_token_parse(const char *token, char id[SW_TOKEN_ID_HEX + 1], unsigned char hash[32]);
/*
 * --expires: "90d", "12h", "30m", "1h30m" (a unit is required) or "never".
 * `*expires_at` gets now_ms + the span, or 0 for never. SW_EINVALID with
 * what is wrong otherwise.
 */
int sw_token_expiry(const char *s, int64_t now_ms, int64_t *expires_at);
/* A name: 1 to 64 of letters, digits, '.', '_' and '-'. SW_EINVALID otherwise. */
int sw_token_name_check(const char *name);

/* --- with storage and HTTP ----------------------------------------------- */

/*
 * Check a presented API token against storage at now: 0 with `*a` filled
 * in (kind, name, id, role, envs), or 401 (malformed, unknown, forged,
 * expired, revoked) / 503 (storage) with the reason in the slot and a log
 * line.
 */
int sw_token_verify(struct sw_daemon *d, const char *token, struct sw_actor *a);

/* GET/POST /api/v1/tokens, DELETE /api/v1/tokens/ID (admin). */
void sw_tokens_list(struct sw_daemon *d, struct evhttp_request *req, const char *rest);
void sw_tokens_create(struct sw_daemon *d, struct evhttp_request *req, const char *rest);
void sw_tokens_revoke(struct sw_daemon *d, struct evhttp_request *req, const char *rest);

#endif
