/*
 * retention.c - removing old rows in small batches, giving the space back
 * to the file system (incremental vacuum), and the online backup (store.h).
 *
 * Every pass has two halves: a read that picks at most one batch of ids
 * (outside any transaction: in WAL mode it blocks no writer, however long
 * the scan), then one short write transaction that deletes exactly those
 * rows, re-checking the conditions that could have changed in between (a
 * run requeued, a delivery still queued). So the write lock is held for a
 * few hundred row deletions at a time and the loop's own writes slip in
 * between batches.
 */
#include "storage/store-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"

#define DEFAULT_BATCH 500
/* A run takes its stages and their logs along: fewer runs per batch. */
#define ROWS_PER_RUN 25

/* Runs no limit removes (store.h says why). */
#define KEEP_RUNS \
	"SELECT run_id FROM syncs WHERE run_id IS NOT NULL " \
	"UNION SELECT max(id) FROM runs WHERE environment IS NOT NULL GROUP BY environment, kind"

struct ids {
	int64_t *v;
	size_t n;
};

static void ids_release(struct ids *l)
{
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/* Read the first column of every row of `sql` into `out`. */
static int select_ids(struct sw_store *st, struct ids *out, const char *sql, const char *fmt, ...)
{
	sqlite3_stmt *s;
	size_t cap = 0;
	va_list ap;
	int rc;

	out->v = NULL;
	out->n = 0;
	if ((rc = sw__prepare(st, sql, &s)) < 0)
		return rc;
	va_start(ap, fmt);
	rc = sw__vbind(st, s, fmt, ap);
	va_end(ap);
	if (rc < 0) {
		sw__done(s);
		return rc;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (out->n == cap) {
			cap = cap ? cap * 2 : 64;
			out->v = sw_realloc(out->v, cap * sizeof(*out->v));
		}
		out->v[out->n++] = sqlite3_column_int64(s, 0);
	}
	rc = rc == SQLITE_DONE ? 0 : sw__err(st, rc);
	sw__done(s);
	if (rc < 0)
		ids_release(out);
	return rc;
}

/*
 * Delete the rows of `ids` with `sql` (one id parameter) in one
 * transaction; `*n` gets the number of rows the statement removed.
 */
static int delete_ids(struct sw_store *st, const struct ids *ids, const char *sql, int64_t *n)
{
	int64_t c = 0;
	int nested, rc;

	*n = 0;
	if (!ids->n)
		return 0;
	if ((rc = sw__atomic_begin(st, &nested)) < 0)
		return rc;
	for (size_t i = 0; i < ids->n && rc == 0; i++) {
		rc = sw__exec(st, &c, sql, "I", ids->v[i]);
		*n += rc == 0 ? c : 0;
	}
	rc = sw__atomic_end(st, nested, rc);
	if (rc < 0)
		*n = 0;
	return rc;
}

/* The id of the `keep`-th newest row of `table` (0: keep all). */
static int count_cutoff(struct sw_store *st, const char *sql, int64_t keep, int64_t *id)
{
	*id = 0;
	if (keep <= 0)
		return 0;
	int rc = sw__int(st, id, sql, "I", keep);
	if (rc == SW_ENOTFOUND) {
		*id = 0;
		rc = 0;
	}
	return rc;
}

static int64_t age_cutoff(int64_t now, int64_t age_ms)
{
	return age_ms > 0 ? now - age_ms : 0;
}

/* Remove the stage's log chunks, `batch` rows per transaction. */
static int purge_stage_logs(struct sw_store *st, int64_t stage_id, int batch, int64_t *n)
{
	int64_t c;
	int rc;

	do {
		rc = sw__exec(st, &c,
			      "DELETE FROM log_chunks WHERE rowid IN (SELECT rowid FROM log_chunks "
			      "WHERE stage_id = ?1 LIMIT ?2)", "Ii", stage_id, batch);
		if (rc < 0)
			return CTX(rc, "remove logs of stage %lld", (long long)stage_id);
		*n += c;
	} while (c >= batch);
	return 0;
}

static int step_runs(struct sw_store *st, const struct sw_store_retention *pol,
		     int64_t now, int batch, struct sw_store_retention_result *res, int *more)
{
	struct ids runs = { 0 }, stages = { 0 };
	int64_t cut_id, n = 0;
	int nruns = batch / ROWS_PER_RUN > 0 ? batch / ROWS_PER_RUN : 1;
	int rc;

	if (!pol->runs_age_ms && !pol->runs_keep)
		return 0;
	if ((rc = count_cutoff(st, "SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET ?1",
			       pol->runs_keep, &cut_id)) < 0 ||
	    (rc = select_ids(st, &runs,
			     "SELECT id FROM runs WHERE (id <= ?1 OR created_at < ?2) "
			     "AND status NOT IN ('queued','running') "
			     "AND id NOT IN (" KEEP_RUNS ") ORDER BY id LIMIT ?3", "IIi",
			     cut_id, age_cutoff(now, pol->runs_age_ms), nruns)) < 0)
		goto done;
	for (size_t i = 0; i < runs.n && rc == 0; i++) {
		rc = select_ids(st, &stages, "SELECT id FROM stages WHERE run_id = ?1", "I",
				runs.v[i]);
		for (size_t k = 0; k < stages.n && rc == 0; k++)
			rc = purge_stage_logs(st, stages.v[k], batch, &res->log_chunks);
		ids_release(&stages);
	}
	if (rc < 0)
		goto done;
	/* Stages and the run in one transaction: no run is ever seen half gone. */
	if ((rc = delete_ids(st, &runs, "DELETE FROM stages WHERE run_id = ?1 AND run_id IN "
			     "(SELECT id FROM runs WHERE status NOT IN ('queued','running'))",
			     &n)) < 0)
		goto done;
	res->stages += n;
	if ((rc = delete_ids(st, &runs, "DELETE FROM runs WHERE id = ?1 "
			     "AND status NOT IN ('queued','running')", &n)) < 0)
		goto done;
	res->runs += n;
	*more |= runs.n >= (size_t)nruns;
done:
	ids_release(&runs);
	ids_release(&stages);
	return CTX(rc, "retention of runs");
}

/*
 * The logs of finished runs older than logs_age_ms whose run is kept: up to
 * `batch` chunks, in stage order from res->log_cursor, in one transaction.
 * The cursor saves each step from rescanning the stages already emptied.
 */
static int step_logs(struct sw_store *st, const struct sw_store_retention *pol,
		     int64_t now, int batch, struct sw_store_retention_result *res, int *more)
{
	struct ids chunks = { 0 };
	sqlite3_stmt *s;
	int64_t last_stage = 0, n = 0;
	size_t cap = 0;
	int rc, step;

	if (!pol->logs_age_ms)
		return 0;
	if ((rc = sw__prepare(st,
			      "SELECT l.rowid, s.id FROM stages s JOIN runs r ON r.id = s.run_id "
			      "JOIN log_chunks l ON l.stage_id = s.id "
			      "WHERE s.id > ?1 AND coalesce(r.finished_at, r.created_at) < ?2 "
			      "AND r.status NOT IN ('queued','running') "
			      "AND r.id NOT IN (" KEEP_RUNS ") "
			      "ORDER BY s.id LIMIT ?3", &s)) < 0)
		return CTX(rc, "retention of logs");
	sqlite3_bind_int64(s, 1, res->log_cursor);
	sqlite3_bind_int64(s, 2, age_cutoff(now, pol->logs_age_ms));
	sqlite3_bind_int(s, 3, batch);
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		if (chunks.n == cap) {
			cap = cap ? cap * 2 : 256;
			chunks.v = sw_realloc(chunks.v, cap * sizeof(*chunks.v));
		}
		chunks.v[chunks.n++] = sqlite3_column_int64(s, 0);
		last_stage = sqlite3_column_int64(s, 1);
	}
	rc = step == SQLITE_DONE ? 0 : sw__err(st, step);
	sw__done(s);
	if (rc == 0)
		rc = delete_ids(st, &chunks, "DELETE FROM log_chunks WHERE rowid = ?1", &n);
	if (rc == 0) {
		res->log_chunks += n;
		if (chunks.n >= (size_t)batch) {
			/* the last stage may have more: look at it again */
			res->log_cursor = last_stage - 1;
			*more = 1;
		} else if (chunks.n) {
			res->log_cursor = last_stage;
		}
	}
	ids_release(&chunks);
	return CTX(rc, "retention of logs");
}

/*
 * A kind whose rows go one by one (no children): past `age_ms` by its time
 * column, or older than its `keep` newest rows, unless a condition in
 * `select` says the row must stay; `del` checks that condition again.
 */
struct flat_kind {
	const char *what, *select, *del, *cutoff;
};

static const struct flat_kind deliveries_kind = {
	"deliveries",
	"SELECT id FROM deliveries WHERE (id <= ?1 OR received_at < ?2) "
	"AND state <> 'queued' ORDER BY id LIMIT ?3",
	"DELETE FROM deliveries WHERE id = ?1 AND state <> 'queued'",
	"SELECT id FROM deliveries ORDER BY id DESC LIMIT 1 OFFSET ?1",
};
/* The newest event of each environment stays: the page shows open drift. */
static const struct flat_kind drift_kind = {
	"drift events",
	"SELECT id FROM drift_events WHERE (id <= ?1 OR detected_at < ?2) "
	"AND id NOT IN (SELECT max(id) FROM drift_events GROUP BY environment) "
	"ORDER BY id LIMIT ?3",
	"DELETE FROM drift_events WHERE id = ?1",
	"SELECT id FROM drift_events ORDER BY id DESC LIMIT 1 OFFSET ?1",
};
/* Only what was sent or given up on; the age counts from when it was queued. */
static const struct flat_kind outbox_kind = {
	"outbox",
	"SELECT id FROM outbox WHERE (id <= ?1 OR enqueued_at < ?2) "
	"AND state IN ('sent','dead') ORDER BY id LIMIT ?3",
	"DELETE FROM outbox WHERE id = ?1 AND state IN ('sent','dead')",
	"SELECT id FROM outbox ORDER BY id DESC LIMIT 1 OFFSET ?1",
};

/* The audit log: only by age and count. */
static const struct flat_kind audit_kind = {
	"audit",
	"SELECT id FROM audit WHERE (id <= ?1 OR at < ?2) ORDER BY id LIMIT ?3",
	"DELETE FROM audit WHERE id = ?1",
	"SELECT id FROM audit ORDER BY id DESC LIMIT 1 OFFSET ?1",
};

static int step_flat(struct sw_store *st, const struct flat_kind *k, int64_t age_ms,
		     int64_t keep, int64_t now, int batch, int64_t *removed, int *more)
{
	struct ids ids = { 0 };
	int64_t cut_id, n = 0;
	int rc;

	if (!age_ms && !keep)
		return 0;
	if ((rc = count_cutoff(st, k->cutoff, keep, &cut_id)) == 0 &&
	    (rc = select_ids(st, &ids, k->select, "IIi", cut_id, age_cutoff(now, age_ms),
			     batch)) == 0 &&
	    (rc = delete_ids(st, &ids, k->del, &n)) == 0) {
		*removed += n;
		*more |= ids.n >= (size_t)batch;
	}
	ids_release(&ids);
	return CTX(rc, "retention of %s", k->what);
}

int sw_store_retention_step(struct sw_store *st, const struct sw_store_retention *pol,
			    int64_t now, struct sw_store_retention_result *res, int *more)
{
	int batch = pol->batch > 0 ? pol->batch : DEFAULT_BATCH;
	int rc;

	*more = 0;
	if (sw_store_in_transaction(st))
		return sw_error_setc(SW_EINVALID, "retention on %s: not inside a transaction",
				     st->path);
	if ((rc = step_flat(st, &deliveries_kind, pol->deliveries_age_ms, pol->deliveries_keep,
			    now, batch, &res->deliveries, more)) < 0 ||
	    (rc = step_runs(st, pol, now, batch, res, more)) < 0 ||
	    (rc = step_logs(st, pol, now, batch, res, more)) < 0 ||
	    (rc = step_flat(st, &drift_kind, pol->drift_age_ms, pol->drift_keep,
			    now, batch, &res->drift_events, more)) < 0 ||
	    (rc = step_flat(st, &outbox_kind, pol->outbox_age_ms, 0,
			    now, batch, &res->outbox, more)) < 0 ||
	    (rc = step_flat(st, &audit_kind, pol->audit_age_ms, pol->audit_keep,
			    now, batch, &res->audit, more)) < 0)
		return CTX(rc, "database %s", st->path);
	return 0;
}

int sw_store_vacuum_step(struct sw_store *st, int pages, int64_t *freed, int64_t *left)
{
	int64_t before = 0, after = 0;
	char sql[64];
	int rc;

	snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%d)", pages > 0 ? pages : 1);
	if ((rc = sw__int(st, &before, "PRAGMA freelist_count", "")) == 0 && before > 0)
		rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL) == SQLITE_OK
		     ? 0 : sw__err(st, sqlite3_errcode(st->db));
	if (rc == 0)
		rc = sw__int(st, &after, "PRAGMA freelist_count", "");
	if (rc == 0) {
		*freed += before > after ? before - after : 0;
		if (left)
			*left = after;
	}
	return CTX(rc, "incremental vacuum of %s", st->path);
}

/* ------------------------------------------------------------------ */
/* Backup                                                              */
/* ------------------------------------------------------------------ */

static int db_err(sqlite3 *db, const char *what, const char *path)
{
	return sw_error_setc(SW_ERR, "%s %s: %s", what, path,
			     db ? sqlite3_errmsg(db) : "out of memory");
}

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
	if (fd < 0 || fsync(fd) != 0)
		rc = sw_error_errno("sync %s", path);
	if (fd >= 0)
		close(fd);
	return rc;
}

int sw_store_backup_check(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	const char *ok = NULL;
	int64_t app = 0;
	int rc = 0;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		rc = db_err(db, "open backup", path);
		goto done;
	}
	if (sqlite3_prepare_v2(db, "PRAGMA application_id", -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW) {
		rc = db_err(db, "read backup", path);
		goto done;
	}
	app = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	s = NULL;
	if (app != APPLICATION_ID) {
		rc = sw_error_setc(SW_EINVALID, "backup %s is not a slipway database", path);
		goto done;
	}
	if (sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW ||
	    !(ok = (const char *)sqlite3_column_text(s, 0)) || strcmp(ok, "ok"))
		rc = sw_error_setc(SW_EINVALID, "check backup %s: %s", path,
				   ok ? ok : sqlite3_errmsg(db));
done:
	sqlite3_finalize(s);
	sqlite3_close(db);
	return rc;
}

int sw_store_backup(const char *data_dir, const char *dest, int64_t *bytes)
{
	char *src_path = sw_asprintf("%s/slipway.db", data_dir);
	char *tmp = sw_asprintf("%s.tmp", dest);
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *b = NULL;
	struct stat sb;
	int rc = 0, step;

	if (bytes)
		*bytes = 0;
	if (stat(src_path, &sb) != 0) {
		rc = sw_error_errno("back up %s", src_path);
		goto done;
	}
	/* Read-only and no migration: the running daemon owns the schema. */
	if (sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		rc = db_err(src, "open", src_path);
		goto done;
	}
	sqlite3_busy_timeout(src, 5000);
	unlink(tmp);
	if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		rc = db_err(dst, "create", tmp);
		goto done;
	}
	sqlite3_busy_timeout(dst, 5000);
	if (!(b = sqlite3_backup_init(dst, "main", src, "main"))) {
		rc = db_err(dst, "back up into", tmp);
		goto done;
	}
	/*
	 * All pages in one step: one read transaction, one snapshot. In WAL
	 * mode that blocks no writer, and a write meanwhile does not restart
	 * the copy as it would with several steps.
	 */
	do {
		step = sqlite3_backup_step(b, -1);
		if (step == SQLITE_BUSY || step == SQLITE_LOCKED)
			sqlite3_sleep(20);
	} while (step == SQLITE_OK || step == SQLITE_BUSY || step == SQLITE_LOCKED);
	sqlite3_backup_finish(b);
	if (step != SQLITE_DONE) {
		rc = sw_error_setc(SW_ERR, "back up %s into %s: %s", src_path, tmp,
				   sqlite3_errstr(step));
		goto done;
	}
	/* A standalone file: no -wal beside it to forget when copying it. */
	if (sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL) != SQLITE_OK) {
		rc = db_err(dst, "finish backup", tmp);
		goto done;
	}
	if (sqlite3_close(dst) != SQLITE_OK) {
		rc = db_err(dst, "close", tmp);
		goto done;
	}
	dst = NULL;
	if ((rc = sw_store_backup_check(tmp)) < 0 || (rc = fsync_path(tmp)) < 0)
		goto done;
	if (rename(tmp, dest) != 0) {
		rc = sw_error_errno("rename %s to %s", tmp, dest);
		goto done;
	}
	if (bytes && stat(dest, &sb) == 0)
		*bytes = sb.st_size;
done:
	if (dst)
		sqlite3_close(dst);
	if (src)
		sqlite3_close(src);
	if (rc < 0)
		unlink(tmp);
	free(src_path);
	free(tmp);
	return rc;
}
