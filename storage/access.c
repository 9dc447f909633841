/*
 * access.c - API tokens (only their hashes) and the audit log (store.h).
 *
 * A token is found by the lookup id it carries (the primary key), so a
 * request pays one indexed read; the caller compares the hash. The audit
 * log is append-only but for the outcome of an action recorded as started
 * before it was performed.
 */
#include "storage/store-int.h"

#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"

#define T struct sw_store_token
static const struct col token_cols[] = {
	C_TEXT(T, id), C_TEXT(T, name), C_TEXT(T, role), C_TEXT(T, environments),
	C_BUF(T, hash), C_TEXT(T, created_by), C_I64(T, created_at), C_I64(T, expires_at),
	C_I64(T, last_used_at), C_I64(T, revoked_at), C_TEXT(T, revoked_by),
};
#undef T
static const struct rowdef token_def = ROWDEF(struct sw_store_token, token_cols);

#define TOKEN_SELECT "SELECT id, name, role, environments, hash, created_by, created_at, " \
	"expires_at, last_used_at, revoked_at, revoked_by FROM api_tokens "

int sw_store_token_insert(struct sw_store *st, const struct sw_store_token *in)
{
	int64_t one;
	int rc = sw__int(st, &one, "SELECT 1 FROM api_tokens WHERE name = ? AND revoked_at IS NULL",
			 "s", in->name);
	if (rc == 0)
		return sw_error_setc(SW_EEXISTS, "a token named %s exists already; revoke it first",
				     in->name);
	if (rc != SW_ENOTFOUND)
		return CTX(rc, "store token %s", in->name);
	rc = sw__exec(st, NULL,
			  "INSERT INTO api_tokens (id, name, role, environments, hash, created_by, "
			  "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			  "ssssbsIZ", in->id, in->name, in->role, in->environments, in->hash.ptr,
			  in->hash.len, in->created_by, in->created_at, in->expires_at);
	return CTX(rc, "store token %s", in->name ? in->name : "(null)");
}

int sw_store_token_get(struct sw_store *st, const char *id, struct sw_store_token *out)
{
	int rc = sw__one(st, &token_def, out, TOKEN_SELECT "WHERE id = ?", "s", id);
	if (rc == SW_ENOTFOUND)
		return sw_error_setc(SW_ENOTFOUND, "no token %s", id);
	return CTX(rc, "read token %s", id);
}

int sw_store_token_list(struct sw_store *st, struct sw_store_token_list *out)
{
	int rc = sw__list(st, &token_def, &out->v, &out->n,
			  TOKEN_SELECT "ORDER BY created_at DESC, id", "");
	return CTX(rc, "list tokens");
}

int sw_store_token_revoke(struct sw_store *st, const char *id, const char *by, int64_t now)
{
	int64_t changed = 0, one;
	int rc = sw__exec(st, &changed, "UPDATE api_tokens SET revoked_at = ?, revoked_by = ? "
			  "WHERE id = ? AND revoked_at IS NULL", "Iss", now, by, id);
	if (rc == 0 && !changed) {
		rc = sw__int(st, &one, "SELECT 1 FROM api_tokens WHERE id = ?", "s", id);
		rc = rc == SW_ENOTFOUND ? sw_error_setc(SW_ENOTFOUND, "no token %s", id)
		     : rc == 0 ? sw_error_setc(SW_EEXISTS, "token %s is revoked already", id) : rc;
		return rc;
	}
	return CTX(rc, "revoke token %s", id);
}

int sw_store_token_touch(struct sw_store *st, const char *id, int64_t now)
{
	int rc = sw__exec(st, NULL, "UPDATE api_tokens SET last_used_at = ?1 WHERE id = ?2 AND "
			  "(last_used_at IS NULL OR last_used_at < ?1 - 60000)", "Is", now, id);
	return CTX(rc, "note the use of token %s", id);
}

void sw_store_token_release(struct sw_store_token *t)
{
	sw__row_release(&token_def, t);
}

void sw_store_token_list_release(struct sw_store_token_list *l)
{
	sw__list_release(&token_def, &l->v, &l->n);
}

/* --- the audit log --------------------------------------------------------------- */

#define T struct sw_store_audit
static const struct col audit_cols[] = {
	C_I64(T, id), C_I64(T, at), C_TEXT(T, actor), C_TEXT(T, actor_kind), C_TEXT(T, token_id),
	C_TEXT(T, client), C_TEXT(T, action), C_TEXT(T, target), C_TEXT(T, outcome),
	C_TEXT(T, reason),
};
#undef T
static const struct rowdef audit_def = ROWDEF(struct sw_store_audit, audit_cols);

#define AUDIT_SELECT "SELECT id, at, actor, actor_kind, token_id, client, action, target, " \
	"outcome, reason FROM audit "

int sw_store_audit_insert(struct sw_store *st, int64_t *id, const struct sw_store_audit *in)
{
	int64_t row = 0;
	int rc = sw__int(st, &row,
			 "INSERT INTO audit (at, actor, actor_kind, token_id, client, action, target, "
			 "outcome, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
			 "IssSSsSsS", in->at ? in->at : sw_now_ms(), in->actor, in->actor_kind,
			 in->token_id, in->client, in->action, in->target, in->outcome, in->reason);
	if (id)
		*id = rc == 0 ? row : 0;
	return CTX(rc, "record %s in the audit log", in->action ? in->action : "(null)");
}

int sw_store_audit_finish(struct sw_store *st, int64_t id, const char *outcome,
			  const char *reason)
{
	int rc = sw__exec(st, NULL, "UPDATE audit SET outcome = ?, reason = ? WHERE id = ?",
			  "sSI", outcome, reason, id);
	return CTX(rc, "record the outcome of audit row %lld", (long long)id);
}

int sw_store_audit_list(struct sw_store *st, const struct sw_store_audit_filter *f,
			struct sw_store_audit_list *out)
{
	/* Only the conditions given, so the planner picks the index of the
	 * equality (actor or action) or walks the primary key backwards. */
	struct sw_buf sql = SW_BUF_INIT;
	sw_buf_adds(&sql, AUDIT_SELECT "WHERE id < ?1");
	if (f->actor)
		sw_buf_adds(&sql, " AND actor = ?2");
	if (f->action)
		sw_buf_adds(&sql, " AND action = ?3");
	if (f->since > 0)
		sw_buf_adds(&sql, " AND at >= ?4");
	sw_buf_adds(&sql, " ORDER BY id DESC LIMIT ?5");
	int rc = sw__list(st, &audit_def, &out->v, &out->n, sql.ptr, "IssIi",
			  f->before_id > 0 ? f->before_id : INT64_MAX, f->actor ? f->actor : "",
			  f->action ? f->action : "", f->since, f->limit > 0 ? f->limit : 50);
	sw_buf_release(&sql);
	return CTX(rc, "list the audit log");
}

void sw_store_audit_release(struct sw_store_audit *a)
{
	sw__row_release(&audit_def, a);
}

void sw_store_audit_list_release(struct sw_store_audit_list *l)
{
	sw__list_release(&audit_def, &l->v, &l->n);
}
