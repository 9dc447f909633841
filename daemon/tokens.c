/*
 * tokens.c - API tokens: their format, checking a presented one, and the
 * admin's routes to create, list and revoke them (see tokens-int.h).
 */
#include <ctype.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/audit-int.h"
#include "daemon/auth-int.h"
#include "daemon/page-html-int.h"
#include "daemon/tokens-int.h"
#include "lib/base64.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "storage/store.h"

#define BODY_MAX (16 * 1024)

static int unhex(unsigned char *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int v = 0;
		for (int k = 0; k < 2; k++) {
			char c = s[2 * i + k];
			int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
			if (d < 0)
				return SW_EINVALID;
			v = v * 16 + d;
		}
		out[i] = (unsigned char)v;
	}
	return 0;
}

int sw_token_generate(char token[SW_TOKEN_MAX], char id[SW_TOKEN_ID_HEX + 1],
		      unsigned char hash[32])
{
	unsigned char raw_id[SW_TOKEN_ID_HEX / 2], secret[SW_TOKEN_SECRET_BYTES];
	char secret_hex[2 * SW_TOKEN_SECRET_BYTES + 1];
	if (RAND_bytes(raw_id, sizeof(raw_id)) != 1 || RAND_bytes(secret, sizeof(secret)) != 1)
		return sw_error_set("no random bytes for a token");
	sw_hex(id, raw_id, sizeof(raw_id));
	sw_hex(secret_hex, secret, sizeof(secret));
	SHA256(secret, sizeof(secret), hash);
	snprintf(token, SW_TOKEN_MAX, "%s%s_%s", SW_TOKEN_PREFIX, id, secret_hex);
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(secret_hex, sizeof(secret_hex));
	return 0;
}

int sw_token_parse(const char *token, char id[SW_TOKEN_ID_HEX + 1], unsigned char hash[32])
{
	size_t plen = strlen(SW_TOKEN_PREFIX);
	unsigned char secret[SW_TOKEN_SECRET_BYTES];
	if (!token || strncmp(token, SW_TOKEN_PREFIX, plen) ||
	    strlen(token) != SW_TOKEN_MAX - 1 || token[plen + SW_TOKEN_ID_HEX] != '_' ||
	    unhex(secret, token + plen, SW_TOKEN_ID_HEX / 2) < 0 ||
	    unhex(secret, token + plen + SW_TOKEN_ID_HEX + 1, SW_TOKEN_SECRET_BYTES) < 0) {
		OPENSSL_cleanse(secret, sizeof(secret));
		return sw_error_setc(SW_EINVALID, "malformed API token (expected %sID_SECRET, "
				     "lower-case hex)", SW_TOKEN_PREFIX);
	}
	memcpy(id, token + plen, SW_TOKEN_ID_HEX);
	id[SW_TOKEN_ID_HEX] = 0;
	SHA256(secret, sizeof(secret), hash);
	OPENSSL_cleanse(secret, sizeof(secret));
	return 0;
}

int sw_token_expiry(const char *s, int64_t now_ms, int64_t *expires_at)
{
	size_t n = s ? strlen(s) : 0;
	*expires_at = 0;
	if (s && !strcmp(s, "never"))
		return 0;
	int64_t secs = n && isalpha((unsigned char)s[n - 1]) ? sw_parse_duration(s) : -1;
	if (secs < 0)
		return sw_error_setc(SW_EINVALID, "expires: expected a duration such as 90d, 12h or "
				     "30m, or never; found '%s'", s ? s : "");
	if (secs < SW_TOKEN_EXPIRES_MIN_S || secs > SW_TOKEN_EXPIRES_MAX_S)
		return sw_error_setc(SW_EINVALID, "expires: '%s' is outside 1m to 3650d", s);
	*expires_at = now_ms + secs * 1000;
	return 0;
}

int sw_token_name_check(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (!n)
		return sw_error_setc(SW_EINVALID, "name: a token needs a name");
	if (n > SW_TOKEN_NAME_MAX)
		return sw_error_setc(SW_EINVALID, "name: %zu characters, at most %d", n,
				     SW_TOKEN_NAME_MAX);
	for (const char *p = name; *p; p++)
		if (!(isalnum((unsigned char)*p) || strchr("._-", *p)))
			return sw_error_setc(SW_EINVALID, "name: letters, digits, '.', '_' and '-' "
					     "only, found '%c' at %zu", isprint((unsigned char)*p) ?
					     *p : '?', (size_t)(p - name) + 1);
	return 0;
}

/* --- checking a presented token ---------------------------------------------------- */

int sw_token_verify(struct sw_daemon *d, const char *token, struct sw_actor *a)
{
	char id[SW_TOKEN_ID_HEX + 1];
	unsigned char hash[32];
	struct sw_store_token t = { 0 };
	int64_t now = sw_now_ms();
	int rc, code = 401;

	if (sw_token_parse(token, id, hash) < 0) {
		log_info("auth.token_refused", "reason=malformed");
		return 401;
	}
	snprintf(a->token_id, sizeof(a->token_id), "%s", id);
	if ((rc = sw_store_token_get(d->store, id, &t)) < 0 || t.hash.len != sizeof(hash) ||
	    CRYPTO_memcmp(t.hash.ptr, hash, sizeof(hash))) {
		if (rc < 0 && rc != SW_ENOTFOUND) {
			log_error("auth.token_check", "token=%s err=%s", id, sw_q(sw_error_last()));
			sw_error_set("could not check the API token: %s; try again", sw_error_last());
			code = 503;
		} else {
			log_info("auth.token_refused", "token=%s reason=%s", id,
				 rc < 0 ? "unknown" : "forged");
			sw_error_set("API token not recognised");
		}
		goto out;
	}
	snprintf(a->name, sizeof(a->name), "%s", t.name);
	a->kind = SW_ACTOR_TOKEN;
	if (t.revoked_at) {
		log_info("auth.token_refused", "token=%s name=%s reason=revoked", id, sw_q(t.name));
		sw_error_set("API token %s (%s) was revoked", t.name, id);
		goto out;
	}
	if (t.expires_at && t.expires_at <= now) {
		struct sw_buf when = SW_BUF_INIT;
		sw_time_iso(&when, t.expires_at);
		log_info("auth.token_refused", "token=%s name=%s reason=expired", id, sw_q(t.name));
		sw_error_set("API token %s (%s) expired at %s", t.name, id, when.ptr);
		sw_buf_release(&when);
		goto out;
	}
	if (sw_role_parse(t.role, &a->role) < 0) {
		sw_error_set("API token %s (%s) has an unknown role", t.name, id);
		goto out;
	}
	a->envs = t.environments ? sw_strdup(t.environments) : NULL;
	if (sw_store_token_touch(d->store, id, now) < 0)
		log_debug("auth.token_touch", "token=%s err=%s", id, sw_q(sw_error_last()));
	code = 0;
out:
	OPENSSL_cleanse(hash, sizeof(hash));
	sw_store_token_release(&t);
	return code;
}

/* --- the routes ---------------------------------------------------------------------- */

static json_t *jtime(int64_t ms)
{
	return ms > 0 ? json_integer(ms) : json_null();
}

static json_t *envs_json(const char *envs)
{
	json_t *a;
	if (!envs)
		return json_null();
	a = json_array();
	for (const char *p = envs; *p;) {
		const char *comma = strchr(p, ',');
		size_t l = comma ? (size_t)(comma - p) : strlen(p);
		json_array_append_new(a, json_stringn(p, l));
		p += l + (comma != NULL);
	}
	return a;
}

static json_t *token_json(const struct sw_store_token *t, int64_t now)
{
	const char *state = t->revoked_at ? "revoked" : t->expires_at && t->expires_at <= now ?
		"expired" : "active";
	json_t *j = json_object();
	json_object_set_new(j, "id", json_string(t->id));
	json_object_set_new(j, "name", json_string(t->name));
	json_object_set_new(j, "role", json_string(t->role));
	json_object_set_new(j, "environments", envs_json(t->environments));
	json_object_set_new(j, "created_by", json_string(t->created_by));
	json_object_set_new(j, "created_at", jtime(t->created_at));
	json_object_set_new(j, "expires_at", jtime(t->expires_at));
	json_object_set_new(j, "last_used_at", jtime(t->last_used_at));
	json_object_set_new(j, "revoked_at", jtime(t->revoked_at));
	json_object_set_new(j, "revoked_by", t->revoked_by ? json_string(t->revoked_by) : json_null());
	json_object_set_new(j, "state", json_string(state));
	return j;
}

void sw_tokens_list(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	struct sw_store_token_list l = { 0 };
	int64_t now = sw_now_ms();
	if (sw_auth_require(d, req, SW_ROLE_ADMIN, NULL, "token.list", NULL, NULL) < 0)
		return;
	if (sw_store_token_list(d->store, &l) < 0) {
		log_error("api.storage", "what=tokens err=%s", sw_q(sw_error_last()));
		sw_reply_error(req, 503, "%s", sw_error_last());
		return;
	}
	json_t *a = json_array();
	for (size_t i = 0; i < l.n; i++)
		json_array_append_new(a, token_json(&l.v[i], now));
	sw_store_token_list_release(&l);
	sw_reply_json(req, 200, json_pack("{s:o}", "tokens", a));
}

/* The request body as a JSON object, or NULL with a 400 sent. */
static json_t *body_json(struct evhttp_request *req, struct sw_buf *err)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t je;
	json_t *j;
	if (len > BODY_MAX) {
		sw_buf_addf(err, "the body is %zu bytes, at most %d", len, BODY_MAX);
		return NULL;
	}
	char *s = sw_malloc(len + 1);
	evbuffer_copyout(in, s, len);
	s[len] = 0;
	j = json_loadb(s, len, 0, &je);
	free(s);
	if (!j || !json_is_object(j)) {
		sw_buf_addf(err, "expected a JSON object {\"name\", \"role\", \"environments\", "
			    "\"expires\"}%s%s", j ? "" : ": ", j ? "" : je.text);
		json_decref(j);
		return NULL;
	}
	return j;
}

/* The environments field as a comma list into `out`; <0 with `err` set. */
static int read_envs(struct sw_daemon *d, json_t *v, enum sw_role role, struct sw_buf *out,
		     struct sw_buf *err)
{
	size_t i;
	json_t *e;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v)) {
		sw_buf_adds(err, "environments: expected a list of environment names");
		return SW_EINVALID;
	}
	if (json_array_size(v) && role != SW_ROLE_DEPLOYER) {
		sw_buf_addf(err, "environments: only a deployer token is limited to environments "
			    "(the %s role holds everywhere)", sw_role_str(role));
		return SW_EINVALID;
	}
	json_array_foreach(v, i, e) {
		const char *name = json_string_value(e);
		if (!name || !sw_config_env(d->cfg, name)) {
			sw_buf_addf(err, "environments[%zu]: %s%s%s is not a configured environment", i,
				    name ? "'" : "", name ? name : "not a string", name ? "'" : "");
			return SW_EINVALID;
		}
		sw_buf_addf(out, "%s%s", out->len ? "," : "", name);
	}
	return 0;
}

/* Answer a refused request: 4xx, a log line and a row. */
static void bad_request(struct sw_daemon *d, struct evhttp_request *req,
			const struct sw_actor *a, int code, const char *action, const char *target,
			const char *msg)
{
	log_info("api.refused", "action=%s actor=%s client=%s status=%d reason=%s", action,
		 sw_q(a->name), sw_q(a->client), code, sw_q(msg));
	sw_audit_record(d, a, action, target, "refused", msg);
	sw_reply_error(req, code, "%s", msg);
}

static const char *jfield(json_t *j, const char *key)
{
	return json_string_value(json_object_get(j, key));
}

void sw_tokens_create(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	struct sw_actor a;
	struct sw_buf err = SW_BUF_INIT, envs = SW_BUF_INIT;
	struct sw_store_token t = { 0 };
	char token[SW_TOKEN_MAX], id[SW_TOKEN_ID_HEX + 1];
	unsigned char hash[32];
	enum sw_role role = SW_ROLE_NONE;
	int64_t now = sw_now_ms(), expires = 0;
	json_t *body = NULL;
	const char *name = NULL;
	int own = 0, rc;

	if (sw_auth_require(d, req, SW_ROLE_ADMIN, NULL, "token.create", NULL, &a) < 0)
		return;
	if (!(body = body_json(req, &err)))
		goto bad;
	name = jfield(body, "name");
	json_t *jexp = json_object_get(body, "expires");
	if (sw_token_name_check(name) < 0 ||
	    sw_role_parse(jfield(body, "role") ? jfield(body, "role") : "", &role) < 0 ||
	    sw_token_expiry(jexp ? json_string_value(jexp) : "90d", now, &expires) < 0) {
		sw_buf_adds(&err, sw_error_last());
		goto bad;
	}
	if (read_envs(d, json_object_get(body, "environments"), role, &envs, &err) < 0)
		goto bad;
	if (sw_token_generate(token, id, hash) < 0) {
		sw_audit_record(d, &a, "token.create", name, "failed", sw_error_last());
		sw_reply_error(req, 500, "%s", sw_error_last());
		goto out;
	}
	t.id = id;
	t.name = (char *)name;
	t.role = (char *)sw_role_str(role);
	t.environments = envs.len ? envs.ptr : NULL;
	sw_buf_add(&t.hash, hash, sizeof(hash));
	t.created_by = a.name;
	t.created_at = now;
	t.expires_at = expires;
	/* the token and the row that records it: one transaction, or neither */
	own = !sw_store_in_transaction(d->store);
	if ((own && (rc = sw_store_begin(d->store)) < 0) ||
	    (rc = sw_store_token_insert(d->store, &t)) < 0) {
		if (own && sw_store_in_transaction(d->store))
			sw_store_rollback(d->store);
		if (rc == SW_EEXISTS) {
			sw_buf_adds(&err, sw_error_last());
			sw_buf_release(&t.hash);
			t = (struct sw_store_token){ 0 };
			bad_request(d, req, &a, 409, "token.create", name, err.ptr);
			goto out;
		}
		goto failed;
	}
	{
		struct sw_store_audit row = { .actor = a.name,
			.actor_kind = (char *)sw_actor_kind_str(a.kind),
			.token_id = a.token_id[0] ? a.token_id : NULL, .client = a.client,
			.action = "token.create", .target = id, .outcome = "ok" };
		char *reason = sw_asprintf("name=%s role=%s environments=%s", name, sw_role_str(role),
					   envs.len ? envs.ptr : "all");
		row.reason = reason;
		rc = sw_store_audit_insert(d->store, NULL, &row);
		free(reason);
	}
	if (rc < 0 || (own && (rc = sw_store_commit(d->store)) < 0)) {
		if (own)
			sw_store_rollback(d->store);
		goto failed;
	}
	log_info("token.created", "token=%s name=%s role=%s environments=%s by=%s client=%s", id,
		 sw_q(name), sw_role_str(role), sw_q(envs.len ? envs.ptr : "all"), sw_q(a.name),
		 sw_q(a.client));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	json_t *j = token_json(&t, now);
	json_object_set_new(j, "token", json_string(token));
	sw_reply_json(req, 201, j);
	goto out;
failed:
	log_error("token.create_failed", "name=%s err=%s", sw_q(name), sw_q(sw_error_last()));
	sw_reply_error(req, 503, "could not store the token (%s); nothing was created, try again",
		       sw_error_last());
	goto out;
bad:
	bad_request(d, req, &a, 400, "token.create", name, err.ptr ? err.ptr : "bad request");
out:
	OPENSSL_cleanse(token, sizeof(token));
	sw_buf_release(&t.hash);
	sw_buf_release(&err);
	sw_buf_release(&envs);
	json_decref(body);
	sw_actor_release(&a);
}

void sw_tokens_revoke(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	struct sw_actor a;
	int own, rc;
	if (sw_auth_require(d, req, SW_ROLE_ADMIN, NULL, "token.revoke", rest, &a) < 0)
		return;
	if (!*rest || strchr(rest, '/') || strlen(rest) > SW_TOKEN_ID_HEX) {
		bad_request(d, req, &a, 404, "token.revoke", rest, "give the token's id: "
			    "DELETE /api/v1/tokens/ID");
		goto out;
	}
	own = !sw_store_in_transaction(d->store);
	if ((own && (rc = sw_store_begin(d->store)) < 0) ||
	    (rc = sw_store_token_revoke(d->store, rest, a.name, sw_now_ms())) < 0) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", sw_error_last());
		if (own && sw_store_in_transaction(d->store))
			sw_store_rollback(d->store);
		if (rc == SW_ENOTFOUND || rc == SW_EEXISTS)
			bad_request(d, req, &a, rc == SW_ENOTFOUND ? 404 : 409, "token.revoke", rest, msg);
		else
			sw_reply_error(req, 503, "could not revoke token %s (%s); try again", rest, msg);
		goto out;
	}
	struct sw_store_audit row = { .actor = a.name, .actor_kind = (char *)sw_actor_kind_str(a.kind),
		.token_id = a.token_id[0] ? a.token_id : NULL, .client = a.client,
		.action = "token.revoke", .target = (char *)rest, .outcome = "ok" };
	if ((rc = sw_store_audit_insert(d->store, NULL, &row)) < 0 ||
	    (own && (rc = sw_store_commit(d->store)) < 0)) {
		if (own)
			sw_store_rollback(d->store);
		sw_reply_error(req, 503, "could not revoke token %s (%s); try again", rest,
			       sw_error_last());
		goto out;
	}
	log_info("token.revoked", "token=%s by=%s client=%s", rest, sw_q(a.name), sw_q(a.client));
	sw_reply_json(req, 200, json_pack("{s:s, s:b}", "id", rest, "revoked", 1));
out:
	sw_actor_release(&a);
}
