/*
 * outbox.c - messages to GitHub and Slack, written before they are sent,
 * and a small key/value table (see store.h).
 *
 * The outbox is how a report survives a crash: the pipeline writes the
 * message here in the same transaction as the state change it reports, and
 * the sender delivers it later, retrying with backoff. The idempotency key
 * names the message (e.g. "gh:comment:run:12"), so a replay after a crash
 * changes nothing and an update to a PR comment edits it in place.
 */
#include "storage/store-int.h"

#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"

#define T struct sw_store_outbox
static const struct col outbox_cols[] = {
	C_I64(T, id), C_ENUM(T, target, sw__outbox_target_names), C_TEXT(T, kind),
	C_TEXT(T, idempotency_key), C_TEXT(T, payload), C_I64(T, created_at),
	C_I64(T, enqueued_at), C_INT(T, attempts), C_I64(T, next_attempt_at),
	C_TEXT(T, last_error), C_ENUM(T, state, sw__outbox_state_names), C_TEXT(T, result),
	C_I64(T, rev),
};
#undef T
static const struct rowdef outbox_def = ROWDEF(struct sw_store_outbox, outbox_cols);

#define OUTBOX_SELECT "SELECT id, target, kind, idempotency_key, payload, created_at, " \
	"enqueued_at, attempts, next_attempt_at, last_error, state, result, rev FROM outbox "

static const char *nn(const char *s)
{
	return s ? s : "(null)";
}

int sw_store_outbox_enqueue(struct sw_store *st, int64_t *id, enum sw_outbox_target target,
			    const char *kind, const char *key, const char *payload)
{
	int64_t row = 0;
	int rc;

	if (!key || !*key)
		return sw_error_setc(SW_EINVALID, "enqueue %s message: no idempotency key", nn(kind));
	/*
	 * One statement: UPDATE expressions see the row as it was, so `state`
	 * below is the old state. The WHERE makes an identical payload a no-op
	 * (no row returned).
	 */
	rc = sw__int(st, &row,
		     "INSERT INTO outbox (target, kind, idempotency_key, payload, created_at, "
		     "enqueued_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?5) "
		     "ON CONFLICT (idempotency_key) DO UPDATE SET "
		     "target = excluded.target, kind = excluded.kind, payload = excluded.payload, "
		     "rev = rev + 1, state = 'pending', "
		     "attempts = IIF(state = 'pending', attempts, 0), "
		     "last_error = IIF(state = 'pending', last_error, NULL), "
		     "next_attempt_at = IIF(state = 'pending', next_attempt_at, excluded.next_attempt_at), "
		     "enqueued_at = IIF(state = 'pending', enqueued_at, excluded.enqueued_at) "
		     "WHERE payload IS NOT excluded.payload "
		     "RETURNING id",
		     "ssssI", ENAME(sw__outbox_target_names, target), kind, key, payload,
		     sw_now_ms());
	if (rc == SW_ENOTFOUND)
		rc = sw__int(st, &row, "SELECT id FROM outbox WHERE idempotency_key = ?", "s", key);
	if (id)
		*id = rc == 0 ? row : 0;
	return CTX(rc, "enqueue %s message %s", nn(kind), key);
}

int sw_store_outbox_due(struct sw_store *st, int64_t now, int limit,
			struct sw_store_outbox_list *out)
{
	int rc = sw__list(st, &outbox_def, &out->v, &out->n,
			  OUTBOX_SELECT "WHERE state = 'pending' AND next_attempt_at <= ? "
			  "ORDER BY id LIMIT ?", "Ii", now, limit > 0 ? limit : 50);
	return CTX(rc, "list due outbox messages");
}

int sw_store_outbox_due_target(struct sw_store *st, enum sw_outbox_target target,
			       int64_t now, int limit, struct sw_store_outbox_list *out)
{
	int rc = sw__list(st, &outbox_def, &out->v, &out->n,
			  OUTBOX_SELECT "WHERE state = 'pending' AND next_attempt_at <= ? "
			  "AND target = ? ORDER BY id LIMIT ?", "Isi", now,
			  ENAME(sw__outbox_target_names, target), limit > 0 ? limit : 50);
	return CTX(rc, "list due %s outbox messages", ENAME(sw__outbox_target_names, target));
}

int sw_store_outbox_mark_sent(struct sw_store *st, int64_t id, int64_t rev,
			      const char *result, int *still_pending)
{
	int64_t pending = 0;
	int rc = sw__int(st, &pending,
			 "UPDATE outbox SET result = COALESCE(?3, result), "
			 "state = IIF(rev = ?2, 'sent', 'pending'), "
			 "last_error = IIF(rev = ?2, NULL, last_error), "
			 "next_attempt_at = IIF(rev = ?2, next_attempt_at, ?4) "
			 "WHERE id = ?1 AND state = 'pending' RETURNING state = 'pending'",
			 "IIsI", id, rev, result, sw_now_ms());
	if (rc == SW_ENOTFOUND) {
		/* Missing, or no longer pending (marked dead meanwhile): refuse. */
		int64_t one;
		rc = sw__int(st, &one, "SELECT 1 FROM outbox WHERE id = ?", "I", id);
		if (rc == 0)
			rc = sw_error_setc(SW_EINVALID, "not pending");
	}
	if (still_pending)
		*still_pending = rc == 0 && pending;
	return CTX(rc, "mark outbox message %lld sent", (long long)id);
}

int sw_store_outbox_mark_failed(struct sw_store *st, int64_t id, const char *error,
				int64_t next_attempt_at)
{
	int64_t changed = 0;
	int rc = sw__exec(st, &changed,
			  "UPDATE outbox SET attempts = attempts + 1, last_error = ?, "
			  "next_attempt_at = ? WHERE id = ? AND state = 'pending'",
			  "sII", error, next_attempt_at, id);
	if (rc == 0 && changed == 0)
		rc = sw_error_setc(SW_ENOTFOUND, "no such pending message");
	return CTX(rc, "mark outbox message %lld failed", (long long)id);
}

int sw_store_outbox_mark_dead(struct sw_store *st, int64_t id, const char *error)
{
	int64_t changed = 0;
	int rc = sw__exec(st, &changed,
			  "UPDATE outbox SET state = 'dead', last_error = COALESCE(?, last_error) "
			  "WHERE id = ?", "sI", error, id);
	if (rc == 0 && changed == 0)
		rc = sw_error_setc(SW_ENOTFOUND, "no such message");
	return CTX(rc, "mark outbox message %lld dead", (long long)id);
}

int sw_store_outbox_get(struct sw_store *st, int64_t id, struct sw_store_outbox *out)
{
	int rc = sw__one(st, &outbox_def, out, OUTBOX_SELECT "WHERE id = ?", "I", id);
	return CTX(rc, "outbox message %lld", (long long)id);
}

int sw_store_outbox_get_by_key(struct sw_store *st, const char *key,
			       struct sw_store_outbox *out)
{
	int rc = sw__one(st, &outbox_def, out, OUTBOX_SELECT "WHERE idempotency_key = ?", "s",
			 key);
	return CTX(rc, "outbox message %s", nn(key));
}

int sw_store_outbox_stats(struct sw_store *st, int64_t now, int64_t *depth,
			  int64_t *oldest_age_ms)
{
	sqlite3_stmt *s;
	int rc;

	*depth = *oldest_age_ms = 0;
	rc = sw__prepare(st, "SELECT count(*), min(enqueued_at) FROM outbox "
			 "WHERE state = 'pending'", &s);
	if (rc < 0)
		return CTX(rc, "outbox stats");
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*depth = sqlite3_column_int64(s, 0);
		if (sqlite3_column_type(s, 1) != SQLITE_NULL) {
			int64_t age = now - sqlite3_column_int64(s, 1);
			*oldest_age_ms = age > 0 ? age : 0;
		}
		rc = 0;
	} else {
		rc = sw__err(st, rc);
	}
	sw__done(s);
	return CTX(rc, "outbox stats");
}

void sw_store_outbox_release(struct sw_store_outbox *o)
{
	sw__row_release(&outbox_def, o);
}

void sw_store_outbox_list_release(struct sw_store_outbox_list *l)
{
	sw__list_release(&outbox_def, &l->v, &l->n);
}

/* ------------------------------------------------------------------ */
/* Key/value                                                           */
/* ------------------------------------------------------------------ */

int sw_store_kv_get(struct sw_store *st, const char *key, char **value)
{
	sqlite3_stmt *s;
	int rc;

	*value = NULL;
	if ((rc = sw__prepare(st, "SELECT value FROM kv WHERE key = ?", &s)) < 0)
		return CTX(rc, "kv get %s", nn(key));
	sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*value = sw_strndup((const char *)sqlite3_column_text(s, 0),
				    (size_t)sqlite3_column_bytes(s, 0));
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = sw_error_setc(SW_ENOTFOUND, "not set");
	} else {
		rc = sw__err(st, rc);
	}
	sw__done(s);
	return CTX(rc, "kv get %s", nn(key));
}

int sw_store_kv_set(struct sw_store *st, const char *key, const char *value)
{
	int rc = sw__exec(st, NULL, "INSERT INTO kv (key, value) VALUES (?, ?) "
			  "ON CONFLICT (key) DO UPDATE SET value = excluded.value", "ss",
			  key, value);
	return CTX(rc, "kv set %s", nn(key));
}

int sw_store_kv_delete(struct sw_store *st, const char *key)
{
	int rc = sw__exec(st, NULL, "DELETE FROM kv WHERE key = ?", "s", key);
	return CTX(rc, "kv delete %s", nn(key));
}
