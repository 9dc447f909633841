/*
 * runs.c - deliveries, runs, stages and stage logs (see store.h).
 *
 * The pipeline's records: a webhook delivery is written before the 202,
 * then mapped to a run; a run has stages; a stage has a log appended in
 * chunks as the runner streams it.
 */
#include "storage/store-int.h"

#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"

/* ------------------------------------------------------------------ */
/* Deliveries                                                          */
/* ------------------------------------------------------------------ */

#define T struct sw_store_delivery
static const struct col delivery_cols[] = {
	C_I64(T, id), C_TEXT(T, guid), C_TEXT(T, event), C_TEXT(T, action), C_TEXT(T, repo),
	C_I64(T, received_at), C_TEXT(T, headers), C_BUF(T, body),
	C_ENUM(T, state, sw__delivery_state_names), C_TEXT(T, reason), C_I64(T, run_id),
};
#undef T
static const struct rowdef delivery_def = ROWDEF(struct sw_store_delivery, delivery_cols);

#define DELIVERY_SELECT "SELECT id, guid, event, action, repo, received_at, headers, body, " \
	"state, reason, run_id FROM deliveries "
#define DELIVERY_SELECT_NOBODY "SELECT id, guid, event, action, repo, received_at, headers, " \
	"NULL AS body, state, reason, run_id FROM deliveries "

int sw_store_delivery_insert(struct sw_store *st, int64_t *id,
			     const struct sw_store_delivery_in *in)
{
	const char *guid = in->guid ? in->guid : "(null)";
	int64_t at = in->received_at ? in->received_at : sw_now_ms();
	int rc;

	*id = 0;
	if (in->digest && in->replay_since) {
		rc = sw__int(st, id, "SELECT id FROM deliveries WHERE digest = ? AND received_at >= ? "
			     "ORDER BY id LIMIT 1", "bI", in->digest, (size_t)SW_DIGEST_LEN,
			     in->replay_since);
		if (rc == 0)
			return sw_error_setc(SW_EEXISTS, "delivery %s replays delivery %lld (the same "
					     "event and body)", guid, (long long)*id);
		if (rc != SW_ENOTFOUND)
			return CTX(rc, "insert delivery %s", guid);
		*id = 0;
	}
	rc = sw__int(st, id,
		     "INSERT INTO deliveries (guid, event, action, repo, received_at, headers, body, "
		     "digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (guid) DO NOTHING RETURNING id",
		     "ssssIsbB", in->guid, in->event, in->action, in->repo, at, in->headers,
		     in->body, in->body_len, in->digest, (size_t)SW_DIGEST_LEN);
	if (rc == SW_ENOTFOUND) {
		/* DO NOTHING returned no row: the GUID is already recorded. */
		rc = sw__int(st, id, "SELECT id FROM deliveries WHERE guid = ?", "s", in->guid);
		if (rc == 0)
			return sw_error_setc(SW_EEXISTS, "delivery %s already recorded as %lld",
					     guid, (long long)*id);
	}
	return CTX(rc, "insert delivery %s", guid);
}

int sw_store_delivery_get(struct sw_store *st, int64_t id, struct sw_store_delivery *out)
{
	int rc = sw__one(st, &delivery_def, out, DELIVERY_SELECT "WHERE id = ?", "I", id);
	return CTX(rc, "delivery %lld", (long long)id);
}

int sw_store_delivery_set_outcome(struct sw_store *st, int64_t id,
				  enum sw_delivery_state state, const char *reason,
				  int64_t run_id)
{
	int64_t changed = 0;
	int rc = sw__exec(st, &changed,
			  "UPDATE deliveries SET state = ?, reason = ?, run_id = ? WHERE id = ?",
			  "ssZI", ENAME(sw__delivery_state_names, state), reason, run_id, id);
	if (rc == 0 && changed == 0)
		rc = sw_error_setc(SW_ENOTFOUND, "no such delivery");
	return CTX(rc, "set outcome of delivery %lld", (long long)id);
}

int sw_store_delivery_resolve(struct sw_store *st, int64_t id, const char *action,
			      const char *repo, enum sw_delivery_state state, const char *reason,
			      int64_t run_id)
{
	int64_t changed = 0;
	int rc = sw__exec(st, &changed,
			  "UPDATE deliveries SET action = COALESCE(?, action), repo = COALESCE(?, repo), "
			  "state = ?, reason = ?, run_id = ? WHERE id = ?",
			  "ssssZI", action, repo, ENAME(sw__delivery_state_names, state), reason,
			  run_id, id);
	if (rc == 0 && changed == 0)
		rc = sw_error_setc(SW_ENOTFOUND, "no such delivery");
	return CTX(rc, "set outcome of delivery %lld", (long long)id);
}

int sw_store_deliveries_queued(struct sw_store *st, struct sw_store_delivery_list *out)
{
	int rc = sw__list(st, &delivery_def, &out->v, &out->n,
			  DELIVERY_SELECT "WHERE state = 'queued' ORDER BY id", "");
	return CTX(rc, "list queued deliveries");
}

int sw_store_deliveries_recent(struct sw_store *st, int limit, int offset,
			       struct sw_store_delivery_list *out)
{
	int rc = sw__list(st, &delivery_def, &out->v, &out->n,
			  DELIVERY_SELECT_NOBODY "ORDER BY id DESC LIMIT ? OFFSET ?", "ii",
			  limit > 0 ? limit : 50, offset > 0 ? offset : 0);
	return CTX(rc, "list recent deliveries");
}

void sw_store_delivery_release(struct sw_store_delivery *d)
{
	sw__row_release(&delivery_def, d);
}

void sw_store_delivery_list_release(struct sw_store_delivery_list *l)
{
	sw__list_release(&delivery_def, &l->v, &l->n);
}

/* ------------------------------------------------------------------ */
/* Runs                                                                */
/* ------------------------------------------------------------------ */

#define T struct sw_store_run
static const struct col run_cols[] = {
	C_I64(T, id), C_I64(T, delivery_id), C_ENUM(T, kind, sw__run_kind_names),
	C_TEXT(T, repo), C_TEXT(T, ref), C_TEXT(T, branch), C_TEXT(T, commit_sha),
	C_I64(T, pr_number), C_TEXT(T, pr_title), C_TEXT(T, author), C_TEXT(T, message),
	C_TEXT(T, environment), C_ENUM(T, status, sw__status_names), C_TEXT(T, reason),
	C_I64(T, created_at), C_I64(T, started_at), C_I64(T, finished_at),
	C_I64(T, superseded_by), C_INTD(T, attempt, 1), C_INTD(T, from_fork, 0),
};
#undef T
static const struct rowdef run_def = ROWDEF(struct sw_store_run, run_cols);

#define RUN_SELECT "SELECT id, delivery_id, kind, repo, ref, branch, commit_sha, pr_number, " \
	"pr_title, author, message, environment, status, reason, created_at, started_at, " \
	"finished_at, superseded_by, attempt, from_fork FROM runs "

/* Statuses that may still change; the SQL twin of !sw_store_status_is_final(). */
#define ACTIVE "('queued','running')"

int sw_store_run_create(struct sw_store *st, int64_t *id, const struct sw_store_run_in *in)
{
	int rc;

	*id = 0;
	rc = sw__int(st, id,
		     "INSERT INTO runs (delivery_id, kind, repo, ref, branch, commit_sha, pr_number, "
		     "pr_title, author, message, environment, attempt, created_at, from_fork) "
		     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
		     "ZssssSZssssiIi", in->delivery_id, ENAME(sw__run_kind_names, in->kind),
		     in->repo, in->ref, in->branch, in->commit_sha, in->pr_number, in->pr_title,
		     in->author, in->message, in->environment, in->attempt > 0 ? in->attempt : 1,
		     in->created_at ? in->created_at : sw_now_ms(), in->from_fork ? 1 : 0);
	return CTX(rc, "create run for %s %s", in->repo ? in->repo : "(null)",
		   in->commit_sha ? in->commit_sha : "(null)");
}

int sw_store_run_get(struct sw_store *st, int64_t id, struct sw_store_run *out)
{
	int rc = sw__one(st, &run_def, out, RUN_SELECT "WHERE id = ?", "I", id);
	return CTX(rc, "run %lld", (long long)id);
}

int sw_store_run_set_status(struct sw_store *st, int64_t id, enum sw_status status,
			    const char *reason)
{
	return sw_store_run_set_status_at(st, id, status, reason, 0);
}

int sw_store_run_set_status_at(struct sw_store *st, int64_t id, enum sw_status status,
			       const char *reason, int64_t at)
{
	const char *name = ENAME(sw__status_names, status);
	int64_t changed = 0;
	char *cur = NULL;
	int rc;

	rc = sw__exec(st, &changed,
		      "UPDATE runs SET status = ?2, reason = COALESCE(?3, reason), "
		      "started_at = CASE WHEN ?2 = 'running' THEN COALESCE(started_at, ?4) "
		      "  ELSE started_at END, "
		      "finished_at = CASE WHEN ?2 NOT IN " ACTIVE " THEN ?4 ELSE finished_at END "
		      "WHERE id = ?1 AND status IN " ACTIVE,
		      "IssI", id, name, reason, at > 0 ? at : sw_now_ms());
	if (rc == 0 && changed == 0) {
		/* Missing, or already final: say which. */
		struct sw_store_run r;
		rc = sw__one(st, &run_def, &r, RUN_SELECT "WHERE id = ?", "I", id);
		if (rc == 0) {
			cur = sw_strdup(sw_store_status_str(r.status));
			if (r.status != status)
				rc = sw_error_setc(SW_EINVALID, "run is already %s", cur);
			sw_store_run_release(&r);
		}
	}
	free(cur);
	return CTX(rc, "set run %lld %s", (long long)id, name ? name : "?");
}

/* The list query for a filter; its parameters are bound in the same order. */
static void run_list_sql(struct sw_buf *sql, const struct sw_store_run_filter *f)
{
	sw_buf_adds(sql, RUN_SELECT "WHERE 1");
	if (f->status >= 0)
		sw_buf_adds(sql, " AND status = ?");
	if (f->kind >= 0)
		sw_buf_adds(sql, " AND kind = ?");
	if (f->environment)
		sw_buf_adds(sql, " AND environment = ?");
	if (f->repo)
		sw_buf_adds(sql, " AND repo = ?");
	if (f->before_id > 0)
		sw_buf_adds(sql, " AND id < ?");
	sw_buf_adds(sql, " ORDER BY id DESC LIMIT ?");
}

int sw_store_run_list(struct sw_store *st, const struct sw_store_run_filter *f,
		      struct sw_store_run_list *out)
{
	struct sw_buf sql = SW_BUF_INIT;
	sqlite3_stmt *s = NULL;
	int rc, i = 1, limit = f->limit > 0 ? f->limit : 50;

	out->v = NULL;
	out->n = 0;
	if (f->status >= 0 && !ENAME(sw__status_names, f->status))
		return sw_error_setc(SW_EINVALID, "list runs: bad status %d", f->status);
	if (f->kind >= 0 && !ENAME(sw__run_kind_names, f->kind))
		return sw_error_setc(SW_EINVALID, "list runs: bad kind %d", f->kind);
	run_list_sql(&sql, f);
	/* At most 2^5 distinct texts, so the statement cache stays small. */
	rc = sw__prepare(st, sql.ptr, &s);
	sw_buf_release(&sql);
	if (rc < 0)
		return CTX(rc, "list runs");
	if (f->status >= 0)
		sqlite3_bind_text(s, i++, sw__status_names[f->status], -1, SQLITE_STATIC);
	if (f->kind >= 0)
		sqlite3_bind_text(s, i++, sw__run_kind_names[f->kind], -1, SQLITE_STATIC);
	if (f->environment)
		sqlite3_bind_text(s, i++, f->environment, -1, SQLITE_TRANSIENT);
	if (f->repo)
		sqlite3_bind_text(s, i++, f->repo, -1, SQLITE_TRANSIENT);
	if (f->before_id > 0)
		sqlite3_bind_int64(s, i++, f->before_id);
	sqlite3_bind_int(s, i, limit > 1000 ? 1000 : limit);
	rc = sw__list_stmt(st, &run_def, &out->v, &out->n, s);
	return CTX(rc, "list runs");
}

int sw_store_runs_by_status(struct sw_store *st, enum sw_status status,
			    struct sw_store_run_list *out)
{
	int rc = sw__list(st, &run_def, &out->v, &out->n,
			  RUN_SELECT "WHERE status = ? ORDER BY id", "s",
			  ENAME(sw__status_names, status));
	return CTX(rc, "list %s runs", sw_store_status_str(status));
}

int sw_store_runs_active_for_pr(struct sw_store *st, const char *repo, int64_t pr_number,
				struct sw_store_run_list *out)
{
	/* The status term matches runs_active_pr's WHERE, so that index is used. */
	int rc = sw__list(st, &run_def, &out->v, &out->n,
			  RUN_SELECT "WHERE repo = ? AND pr_number = ? AND status IN " ACTIVE
			  " ORDER BY id", "sI", repo, pr_number);
	return CTX(rc, "active runs of %s#%lld", repo ? repo : "(null)", (long long)pr_number);
}

int sw_store_runs_active_for_branch(struct sw_store *st, const char *repo,
				    const char *branch, struct sw_store_run_list *out)
{
	int rc = sw__list(st, &run_def, &out->v, &out->n,
			  RUN_SELECT "WHERE repo = ? AND branch = ? AND status IN " ACTIVE
			  " ORDER BY id", "ss", repo, branch);
	return CTX(rc, "active runs of %s@%s", repo ? repo : "(null)", branch ? branch : "(null)");
}

int sw_store_run_latest_head(struct sw_store *st, const char *repo, const char *environment,
			     struct sw_store_run *out)
{
	/* walks runs_env backwards from the newest run of the environment */
	int rc = sw__one(st, &run_def, out,
			 RUN_SELECT "WHERE environment = ? AND repo = ? AND kind IN ('push','manual') "
			 "ORDER BY id DESC LIMIT 1", "ss", environment, repo);
	return CTX(rc, "latest run of %s for %s", repo ? repo : "(null)",
		   environment ? environment : "(null)");
}

int sw_store_run_mark_superseded(struct sw_store *st, int64_t id, int64_t by)
{
	int64_t changed = 0;
	int rc = sw__exec(st, &changed, "UPDATE runs SET superseded_by = ? WHERE id = ?",
			  "ZI", by, id);
	if (rc == 0 && changed == 0)
		rc = sw_error_setc(SW_ENOTFOUND, "no such run");
	return CTX(rc, "mark run %lld superseded by %lld", (long long)id, (long long)by);
}

void sw_store_run_release(struct sw_store_run *r)
{
	sw__row_release(&run_def, r);
}

void sw_store_run_list_release(struct sw_store_run_list *l)
{
	sw__list_release(&run_def, &l->v, &l->n);
}

/* For the tests: the SQL sw_store_run_list() runs for `f` (to EXPLAIN it). */
char *sw__run_list_sql(const struct sw_store_run_filter *f)
{
	struct sw_buf sql = SW_BUF_INIT;
	run_list_sql(&sql, f);
	return sw_buf_detach(&sql, NULL);
}

/* ------------------------------------------------------------------ */
/* Stages                                                              */
/* ------------------------------------------------------------------ */

#define T struct sw_store_stage
static const struct col stage_cols[] = {
	C_I64(T, id), C_I64(T, run_id), C_INT(T, idx), C_TEXT(T, name), C_TEXT(T, image),
	C_ENUM(T, status, sw__status_names), C_INTD(T, exit_code, -1), C_TEXT(T, reason),
	C_I64(T, started_at), C_I64(T, finished_at), C_TEXT(T, container_id),
};
#undef T
static const struct rowdef stage_def = ROWDEF(struct sw_store_stage, stage_cols);

#define STAGE_SELECT "SELECT id, run_id, idx, name, image, status, exit_code, reason, " \
	"started_at, finished_at, container_id FROM stages "

int sw_store_stage_create(struct sw_store *st, int64_t *id, int64_t run_id, int idx,
			  const char *name, const char *image)
{
	int rc;

	*id = 0;
	rc = sw__int(st, id, "INSERT INTO stages (run_id, idx, name, image) "
		     "VALUES (?, ?, ?, ?) RETURNING id", "Iiss", run_id, idx, name, image);
	return CTX(rc, "create stage %d (%s) of run %lld", idx, name ? name : "(null)",
		   (long long)run_id);
}

int sw_store_stage_set_status(struct sw_store *st, int64_t id, enum sw_status status,
			      int exit_code, const char *reason)
{
	return sw_store_stage_set_status_at(st, id, status, exit_code, reason, 0);
}

int sw_store_stage_set_status_at(struct sw_store *st, int64_t id, enum sw_status status,
				 int exit_code, const char *reason, int64_t at)
{
	const char *name = ENAME(sw__status_names, status);
	int64_t changed = 0;
	int rc = sw__exec(st, &changed,
			  "UPDATE stages SET status = ?2, "
			  "exit_code = CASE WHEN ?3 < 0 THEN exit_code ELSE ?3 END, "
			  "reason = COALESCE(?4, reason), "
			  "started_at = CASE WHEN ?2 = 'running' THEN COALESCE(started_at, ?5) "
			  "  ELSE started_at END, "
			  "finished_at = CASE WHEN ?2 NOT IN " ACTIVE " THEN ?5 ELSE finished_at END "
			  "WHERE id = ?1",
			  "IsisI", id, name, exit_code, reason, at > 0 ? at : sw_now_ms());
	if (rc == 0 && changed == 0)
		rc = sw_error_setc(SW_ENOTFOUND, "no such stage");
	return CTX(rc, "set stage %lld %s", (long long)id, name ? name : "?");
}

int sw_store_stage_set_container(struct sw_store *st, int64_t id, const char *container_id)
{
	int64_t changed = 0;
	int rc = sw__exec(st, &changed, "UPDATE stages SET container_id = ? WHERE id = ?",
			  "sI", container_id, id);
	if (rc == 0 && changed == 0)
		rc = sw_error_setc(SW_ENOTFOUND, "no such stage");
	return CTX(rc, "set container of stage %lld", (long long)id);
}

int sw_store_stage_find(struct sw_store *st, int64_t run_id, int idx, int64_t *id)
{
	int rc = sw__int(st, id, "SELECT id FROM stages WHERE run_id = ? AND idx = ?", "Ii",
			 run_id, idx);
	if (rc < 0)
		*id = 0;
	return CTX(rc, "stage %d of run %lld", idx, (long long)run_id);
}

int sw_store_stage_get(struct sw_store *st, int64_t id, struct sw_store_stage *out)
{
	int rc = sw__one(st, &stage_def, out, STAGE_SELECT "WHERE id = ?", "I", id);
	return CTX(rc, "stage %lld", (long long)id);
}

int sw_store_stages_list(struct sw_store *st, int64_t run_id, struct sw_store_stage_list *out)
{
	int rc = sw__list(st, &stage_def, &out->v, &out->n,
			  STAGE_SELECT "WHERE run_id = ? ORDER BY idx", "I", run_id);
	return CTX(rc, "stages of run %lld", (long long)run_id);
}

void sw_store_stage_release(struct sw_store_stage *s)
{
	sw__row_release(&stage_def, s);
}

void sw_store_stage_list_release(struct sw_store_stage_list *l)
{
	sw__list_release(&stage_def, &l->v, &l->n);
}

/* ------------------------------------------------------------------ */
/* Stage logs                                                          */
/* ------------------------------------------------------------------ */

int sw_store_log_append(struct sw_store *st, int64_t stage_id, int64_t ts,
			const void *data, size_t len, int64_t *end)
{
	int64_t e = 0;
	int rc;

	if (len == 0) {
		if (end)
			return sw_store_log_size(st, stage_id, end);
		return 0;
	}
	/* Both lookups walk the (stage_id, seq) primary key from its end. */
	rc = sw__int(st, &e,
		     "INSERT INTO log_chunks (stage_id, seq, off, ts, len, data) VALUES (?1, "
		     "COALESCE((SELECT seq + 1 FROM log_chunks WHERE stage_id = ?1 "
		     "  ORDER BY seq DESC LIMIT 1), 0), "
		     "COALESCE((SELECT off + len FROM log_chunks WHERE stage_id = ?1 "
		     "  ORDER BY seq DESC LIMIT 1), 0), "
		     "?2, ?3, ?4) RETURNING off + len",
		     "IIIb", stage_id, ts ? ts : sw_now_ms(), (int64_t)len, data, len);
	if (rc == 0 && end)
		*end = e;
	return CTX(rc, "append %zu bytes to log of stage %lld", len, (long long)stage_id);
}

int sw_store_log_read(struct sw_store *st, int64_t stage_id, int64_t offset, size_t max,
		      struct sw_buf *out, int64_t *next)
{
	sqlite3_stmt *s;
	size_t left = max ? max : SIZE_MAX;
	int rc;

	if (offset < 0)
		offset = 0;
	*next = offset;
	rc = sw__prepare(st,
			 "SELECT off, data FROM log_chunks WHERE stage_id = ?1 AND off >= "
			 "COALESCE((SELECT off FROM log_chunks WHERE stage_id = ?1 AND off <= ?2 "
			 "  ORDER BY off DESC LIMIT 1), 0) ORDER BY off", &s);
	if (rc < 0)
		return CTX(rc, "read log of stage %lld", (long long)stage_id);
	sqlite3_bind_int64(s, 1, stage_id);
	sqlite3_bind_int64(s, 2, offset);
	while (left > 0 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t off = sqlite3_column_int64(s, 0);
		const char *data = sqlite3_column_blob(s, 1);
		int64_t len = sqlite3_column_bytes(s, 1);
		int64_t skip = *next - off;

		if (skip < 0 || skip >= len)
			continue;
		size_t take = (size_t)(len - skip) < left ? (size_t)(len - skip) : left;
		sw_buf_add(out, data + skip, take);
		*next += (int64_t)take;
		left -= take;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		rc = sw__err(st, rc);
	else
		rc = 0;
	sw__done(s);
	return CTX(rc, "read log of stage %lld", (long long)stage_id);
}

int sw_store_log_size(struct sw_store *st, int64_t stage_id, int64_t *size)
{
	int rc = sw__int(st, size, "SELECT off + len FROM log_chunks WHERE stage_id = ? "
			 "ORDER BY seq DESC LIMIT 1", "I", stage_id);
	if (rc == SW_ENOTFOUND) {
		*size = 0;
		return 0;
	}
	return CTX(rc, "size of log of stage %lld", (long long)stage_id);
}
