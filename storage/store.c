/*
 * store.c - opening the database, the schema and its migrations,
 * transactions, and the small machinery every other storage/ file uses:
 * the prepared-statement cache, parameter binding and the row mapper.
 *
 * The table-specific code lives in runs.c (deliveries, runs, stages, logs),
 * envs.c (environments, syncs, inventory, drift) and outbox.c (outbox, kv).
 */
#include "storage/store-int.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"


/*
 * The schema, one migration per entry: entry i brings the database to
 * version i + 1 (PRAGMA user_version). Never edit an entry once released;
 * append a new one (and bump SW_STORE_SCHEMA_VERSION).
 *
 * Conventions: ids are INTEGER PRIMARY KEY (rowid), times are INTEGER ms
 * since the epoch, enums are TEXT with a CHECK, JSON is TEXT. A Kubernetes
 * namespace is '' for cluster-scoped objects, never NULL, so it can sit in a
 * primary key. References that would need an index only to serve a cascade
 * (deliveries.run_id, runs.delivery_id, runs.superseded_by, syncs.run_id,
 * drift_events.sync_id) are plain integers, not foreign keys.
 */
static const char *const builtin_migrations[] = {
	/* 1: the initial schema */
	"PRAGMA application_id = 1397510231;\n"
	"CREATE TABLE deliveries (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  guid TEXT NOT NULL UNIQUE,\n"
	"  event TEXT NOT NULL,\n"
	"  action TEXT,\n"
	"  repo TEXT,\n"
	"  received_at INTEGER NOT NULL,\n"
	"  headers TEXT,\n"
	"  body BLOB,\n"
	"  state TEXT NOT NULL DEFAULT 'queued'\n"
	"    CHECK (state IN ('queued','mapped','ignored','failed')),\n"
	"  reason TEXT,\n"
	"  run_id INTEGER\n"
	");\n"
	"CREATE INDEX deliveries_state ON deliveries(state, id);\n"
	"\n"
	"CREATE TABLE runs (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  delivery_id INTEGER,\n"
	"  kind TEXT NOT NULL CHECK (kind IN\n"
	"    ('pull_request','push','deploy','manual','rollback','drift')),\n"
	"  repo TEXT NOT NULL,\n"
	"  ref TEXT,\n"
	"  branch TEXT,\n"
	"  commit_sha TEXT NOT NULL,\n"
	"  pr_number INTEGER,\n"
	"  pr_title TEXT,\n"
	"  author TEXT,\n"
	"  message TEXT,\n"
	"  environment TEXT,\n"
	"  status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN\n"
	"    ('queued','running','success','failure','error','cancelled','interrupted')),\n"
	"  reason TEXT,\n"
	"  created_at INTEGER NOT NULL,\n"
	"  started_at INTEGER,\n"
	"  finished_at INTEGER,\n"
	"  superseded_by INTEGER,\n"
	"  attempt INTEGER NOT NULL DEFAULT 1\n"
	");\n"
	/* Listing pages: newest first within one filter value. */
	"CREATE INDEX runs_status ON runs(status, id);\n"
	"CREATE INDEX runs_env ON runs(environment, id);\n"
	"CREATE INDEX runs_repo ON runs(repo, id);\n"
	"CREATE INDEX runs_kind ON runs(kind, id);\n"
	/* Supersede lookups only ever want active runs: keep these small. */
	"CREATE INDEX runs_active_pr ON runs(repo, pr_number)\n"
	"  WHERE status IN ('queued','running');\n"
	"CREATE INDEX runs_active_branch ON runs(repo, branch)\n"
	"  WHERE status IN ('queued','running');\n"
	"\n"
	"CREATE TABLE stages (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,\n"
	"  idx INTEGER NOT NULL,\n"
	"  name TEXT NOT NULL,\n"
	"  image TEXT,\n"
	"  status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN\n"
	"    ('queued','running','success','failure','error','cancelled','interrupted',\n"
	"     'skipped')),\n"
	"  exit_code INTEGER,\n"
	"  reason TEXT,\n"
	"  started_at INTEGER,\n"
	"  finished_at INTEGER,\n"
	"  container_id TEXT,\n"
	"  UNIQUE (run_id, idx)\n"
	");\n"
	"\n"
	/* off/len: the chunk's byte range in the stage's log, so a read at any
	 * offset finds its first chunk through log_chunks_off. */
	"CREATE TABLE log_chunks (\n"
	"  stage_id INTEGER NOT NULL REFERENCES stages(id) ON DELETE CASCADE,\n"
	"  seq INTEGER NOT NULL,\n"
	"  off INTEGER NOT NULL,\n"
	"  len INTEGER NOT NULL,\n"
	"  ts INTEGER NOT NULL,\n"
	"  data BLOB NOT NULL,\n"
	"  PRIMARY KEY (stage_id, seq)\n"
	");\n"
	"CREATE UNIQUE INDEX log_chunks_off ON log_chunks(stage_id, off);\n"
	"\n"
	"CREATE TABLE environments (\n"
	"  name TEXT PRIMARY KEY,\n"
	"  branch TEXT,\n"
	"  desired_commit TEXT,\n"
	"  synced_commit TEXT,\n"
	"  sync_status TEXT NOT NULL DEFAULT 'unknown' CHECK (sync_status IN\n"
	"    ('unknown','synced','syncing','out_of_sync','rolled_back','failed')),\n"
	"  health TEXT NOT NULL DEFAULT 'unknown' CHECK (health IN\n"
	"    ('unknown','healthy','progressing','degraded','missing')),\n"
	"  rolled_back_to TEXT,\n"
	"  last_sync_at INTEGER,\n"
	"  last_sync_ms INTEGER,\n"
	"  message TEXT,\n"
	"  infra_status TEXT,\n"
	"  updated_at INTEGER NOT NULL\n"
	");\n"
	"\n"
	"CREATE TABLE syncs (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  environment TEXT NOT NULL REFERENCES environments(name) ON DELETE CASCADE,\n"
	"  commit_sha TEXT NOT NULL,\n"
	"  \"trigger\" TEXT NOT NULL CHECK (\"trigger\" IN\n"
	"    ('merge','drift','manual','rollback','poll')),\n"
	"  status TEXT NOT NULL DEFAULT 'running'\n"
	"    CHECK (status IN ('running','success','failure')),\n"
	"  health TEXT NOT NULL DEFAULT 'unknown' CHECK (health IN\n"
	"    ('unknown','healthy','progressing','degraded','missing')),\n"
	"  started_at INTEGER NOT NULL,\n"
	"  finished_at INTEGER,\n"
	"  message TEXT,\n"
	"  run_id INTEGER\n"
	");\n"
	"CREATE INDEX syncs_env ON syncs(environment, id);\n"
	"CREATE INDEX syncs_env_healthy ON syncs(environment, id)\n"
	"  WHERE status = 'success' AND health = 'healthy';\n"
	"\n"
	"CREATE TABLE sync_objects (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  sync_id INTEGER NOT NULL REFERENCES syncs(id) ON DELETE CASCADE,\n"
	"  api_version TEXT NOT NULL,\n"
	"  kind TEXT NOT NULL,\n"
	"  namespace TEXT NOT NULL DEFAULT '',\n"
	"  name TEXT NOT NULL,\n"
	"  result TEXT NOT NULL CHECK (result IN\n"
	"    ('created','configured','unchanged','pruned','failed')),\n"
	"  message TEXT\n"
	");\n"
	"CREATE INDEX sync_objects_sync ON sync_objects(sync_id, id);\n"
	"\n"
	"CREATE TABLE inventory (\n"
	"  environment TEXT NOT NULL REFERENCES environments(name) ON DELETE CASCADE,\n"
	"  api_version TEXT NOT NULL,\n"
	"  kind TEXT NOT NULL,\n"
	"  namespace TEXT NOT NULL DEFAULT '',\n"
	"  name TEXT NOT NULL,\n"
	"  uid TEXT,\n"
	"  health TEXT NOT NULL DEFAULT 'unknown' CHECK (health IN\n"
	"    ('unknown','healthy','progressing','degraded','missing')),\n"
	"  message TEXT,\n"
	"  PRIMARY KEY (environment, api_version, kind, namespace, name)\n"
	") WITHOUT ROWID;\n"
	"\n"
	"CREATE TABLE drift_events (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  environment TEXT NOT NULL REFERENCES environments(name) ON DELETE CASCADE,\n"
	"  api_version TEXT NOT NULL,\n"
	"  kind TEXT NOT NULL,\n"
	"  namespace TEXT NOT NULL DEFAULT '',\n"
	"  name TEXT NOT NULL,\n"
	"  fields TEXT,\n"
	"  manager TEXT,\n"
	"  detected_at INTEGER NOT NULL,\n"
	"  action TEXT NOT NULL CHECK (action IN ('healed','reported','heal_failed')),\n"
	"  message TEXT,\n"
	"  sync_id INTEGER\n"
	");\n"
	"CREATE INDEX drift_events_env ON drift_events(environment, id);\n"
	"\n"
	/* rev: bumped when a pending payload is replaced, so a send that was in
	 * flight meanwhile does not mark the newer payload sent. */
	"CREATE TABLE outbox (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  target TEXT NOT NULL CHECK (target IN ('github','slack')),\n"
	"  kind TEXT NOT NULL,\n"
	"  idempotency_key TEXT NOT NULL UNIQUE,\n"
	"  payload TEXT NOT NULL,\n"
	"  created_at INTEGER NOT NULL,\n"
	"  enqueued_at INTEGER NOT NULL,\n"
	"  attempts INTEGER NOT NULL DEFAULT 0,\n"
	"  next_attempt_at INTEGER NOT NULL,\n"
	"  last_error TEXT,\n"
	"  state TEXT NOT NULL DEFAULT 'pending'\n"
	"    CHECK (state IN ('pending','sent','dead')),\n"
	"  result TEXT,\n"
	"  rev INTEGER NOT NULL DEFAULT 1\n"
	");\n"
	"CREATE INDEX outbox_due ON outbox(next_attempt_at, id) WHERE state = 'pending';\n"
	"\n"
	"CREATE TABLE kv (\n"
	"  key TEXT PRIMARY KEY,\n"
	"  value TEXT NOT NULL\n"
	") WITHOUT ROWID;\n",

	/* 2: pull requests from forks get no secrets, also after a restart */
	"ALTER TABLE runs ADD COLUMN from_fork INTEGER NOT NULL DEFAULT 0;\n",

	/* 3: the Terraform outputs applied with a sync (JSON, sensitive values
	 * already replaced) */
	"ALTER TABLE syncs ADD COLUMN infra_outputs TEXT;\n",

	/* 4: the SHA-256 of a delivery's event and body, to know a replay under
	 * a new GUID */
	"ALTER TABLE deliveries ADD COLUMN digest BLOB;\n"
	"CREATE INDEX deliveries_digest ON deliveries(digest, received_at) WHERE digest IS NOT NULL;\n",

	/* 5: API tokens (only the SHA-256 of their secret) and the audit log.
	 * A token's id is the random lookup id it carries; a name is unique
	 * among the tokens not revoked. */
	"CREATE TABLE api_tokens (\n"
	"  id TEXT PRIMARY KEY,\n"
	"  name TEXT NOT NULL,\n"
	"  role TEXT NOT NULL CHECK (role IN ('viewer','deployer','admin')),\n"
	"  environments TEXT,\n"
	"  hash BLOB NOT NULL,\n"
	"  created_by TEXT NOT NULL,\n"
	"  created_at INTEGER NOT NULL,\n"
	"  expires_at INTEGER,\n"
	"  last_used_at INTEGER,\n"
	"  revoked_at INTEGER,\n"
	"  revoked_by TEXT\n"
	") WITHOUT ROWID;\n"
	"CREATE UNIQUE INDEX api_tokens_name ON api_tokens(name) WHERE revoked_at IS NULL;\n"
	"\n"
	"CREATE TABLE audit (\n"
	"  id INTEGER PRIMARY KEY,\n"
	"  at INTEGER NOT NULL,\n"
	"  actor TEXT NOT NULL,\n"
	"  actor_kind TEXT NOT NULL CHECK (actor_kind IN\n"
	"    ('anonymous','api_token','token','user','system')),\n"
	"  token_id TEXT,\n"
	"  client TEXT,\n"
	"  action TEXT NOT NULL,\n"
	"  target TEXT,\n"
	"  outcome TEXT NOT NULL CHECK (outcome IN ('started','ok','refused','failed')),\n"
	"  reason TEXT\n"
	");\n"
	"CREATE INDEX audit_actor ON audit(actor, id);\n"
	"CREATE INDEX audit_action ON audit(action, id);\n"
	"CREATE INDEX audit_at ON audit(at);\n",

	/* 6: what each environment cost, per day and service (Cost Explorer;
	 * daemon/cost.c), in micro-dollars */
	"CREATE TABLE cost_daily (\n"
	"  env TEXT NOT NULL,\n"
	"  day TEXT NOT NULL,\n"
	"  service TEXT NOT NULL,\n"
	"  micro_usd INTEGER NOT NULL,\n"
	"  estimated INTEGER NOT NULL DEFAULT 0,\n"
	"  fetched_at INTEGER NOT NULL,\n"
	"  PRIMARY KEY (env, day, service)\n"
	") WITHOUT ROWID;\n",
};

_Static_assert(sizeof(builtin_migrations) / sizeof(builtin_migrations[0])
	       == SW_STORE_SCHEMA_VERSION, "SW_STORE_SCHEMA_VERSION != number of migrations");

static const char *const *migrations = builtin_migrations;
static size_t nmigrations = SW_STORE_SCHEMA_VERSION;

void sw__store_set_migrations(const char *const *m, size_t n)
{
	if (m) {
		migrations = m;
		nmigrations = n;
	} else {
		migrations = builtin_migrations;
		nmigrations = SW_STORE_SCHEMA_VERSION;
	}
}

/* ------------------------------------------------------------------ */
/* Enumerations                                                        */
/* ------------------------------------------------------------------ */

const char *const sw__delivery_state_names[4] = { "queued", "mapped", "ignored", "failed" };
const char *const sw__run_kind_names[6] = {
	"pull_request", "push", "deploy", "manual", "rollback", "drift",
};
const char *const sw__status_names[8] = {
	"queued", "running", "success", "failure", "error", "cancelled", "interrupted", "skipped",
};
const char *const sw__env_sync_names[6] = {
	"unknown", "synced", "syncing", "out_of_sync", "rolled_back", "failed",
};
const char *const sw__health_names[5] = {
	"unknown", "healthy", "progressing", "degraded", "missing",
};
const char *const sw__sync_trigger_names[5] = { "merge", "drift", "manual", "rollback", "poll" };
const char *const sw__sync_status_names[3] = { "running", "success", "failure" };
const char *const sw__object_result_names[5] = {
	"created", "configured", "unchanged", "pruned", "failed",
};
const char *const sw__drift_action_names[3] = { "healed", "reported", "heal_failed" };
const char *const sw__outbox_target_names[2] = { "github", "slack" };
const char *const sw__outbox_state_names[3] = { "pending", "sent", "dead" };

const char *sw__ename(const char *const *names, int n, int v)
{
	return v >= 0 && v < n ? names[v] : NULL;
}

static int eparse(const char *const *names, int n, const char *what, const char *s, int *out)
{
	for (int i = 0; s && i < n; i++) {
		if (!strcmp(names[i], s)) {
			*out = i;
			return 0;
		}
	}
	return sw_error_setc(SW_EINVALID, "unknown %s '%s'", what, s ? s : "(null)");
}

#define ENUM_FUNCS(fn, type, tab, what)                                         \
	const char *sw_store_##fn##_str(type v)                                 \
	{                                                                       \
		const char *s = ENAME(tab, v);                                  \
		return s ? s : "?";                                             \
	}
#define ENUM_PARSE(fn, type, tab, what)                                         \
	int sw_store_##fn##_parse(const char *s, type *out)                     \
	{                                                                       \
		int v = 0, rc = eparse(tab, (int)(sizeof(tab) / sizeof(tab[0])), what, s, &v); \
		if (rc == 0)                                                    \
			*out = (type)v;                                         \
		return rc;                                                      \
	}

ENUM_FUNCS(delivery_state, enum sw_delivery_state, sw__delivery_state_names, "delivery state")
ENUM_FUNCS(run_kind, enum sw_run_kind, sw__run_kind_names, "run kind")
ENUM_FUNCS(status, enum sw_status, sw__status_names, "status")
ENUM_FUNCS(env_sync, enum sw_env_sync, sw__env_sync_names, "sync status")
ENUM_FUNCS(health, enum sw_health, sw__health_names, "health")
ENUM_FUNCS(sync_trigger, enum sw_sync_trigger, sw__sync_trigger_names, "sync trigger")
ENUM_FUNCS(sync_status, enum sw_sync_status, sw__sync_status_names, "sync status")
ENUM_FUNCS(object_result, enum sw_object_result, sw__object_result_names, "object result")
ENUM_FUNCS(drift_action, enum sw_drift_action, sw__drift_action_names, "drift action")
ENUM_FUNCS(outbox_target, enum sw_outbox_target, sw__outbox_target_names, "outbox target")
ENUM_FUNCS(outbox_state, enum sw_outbox_state, sw__outbox_state_names, "outbox state")
ENUM_PARSE(delivery_state, enum sw_delivery_state, sw__delivery_state_names, "delivery state")
ENUM_PARSE(run_kind, enum sw_run_kind, sw__run_kind_names, "run kind")
ENUM_PARSE(status, enum sw_status, sw__status_names, "status")
ENUM_PARSE(env_sync, enum sw_env_sync, sw__env_sync_names, "sync status")
ENUM_PARSE(health, enum sw_health, sw__health_names, "health")
ENUM_PARSE(sync_trigger, enum sw_sync_trigger, sw__sync_trigger_names, "sync trigger")

int sw_store_status_is_final(enum sw_status v)
{
	return v != SW_STATUS_QUEUED && v != SW_STATUS_RUNNING;
}

/* ------------------------------------------------------------------ */
/* Statement cache, binding, errors                                    */
/* ------------------------------------------------------------------ */

struct stmt_entry {
	struct stmt_entry *next;
	sqlite3_stmt *stmt;
	char sql[];
};

#define NBUCKETS 128

static size_t hash_sql(const char *s)
{
	size_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

int sw__err(struct sw_store *st, int rc)
{
	int code;

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = SW_EAGAIN;
		break;
	case SQLITE_CONSTRAINT:
	case SQLITE_NOTADB:
	case SQLITE_MISMATCH:
	case SQLITE_TOOBIG:
		code = SW_EINVALID;
		break;
	default:
		code = SW_ERR;
	}
	return sw_error_setc(code, "%s", st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
}

int sw__prepare(struct sw_store *st, const char *sql, sqlite3_stmt **out)
{
	size_t b = hash_sql(sql) % st->nbuckets;
	struct stmt_entry *e;
	sqlite3_stmt *s = NULL;
	int rc;

	for (e = st->stmts[b]; e; e = e->next) {
		if (!strcmp(e->sql, sql)) {
			sqlite3_reset(e->stmt);
			sqlite3_clear_bindings(e->stmt);
			*out = e->stmt;
			return 0;
		}
	}
	rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
	if (rc != SQLITE_OK) {
		*out = NULL;
		rc = sw__err(st, rc);
		return CTX(rc, "prepare \"%.60s\"", sql);
	}
	size_t len = strlen(sql);
	e = sw_malloc(sizeof(*e) + len + 1);
	memcpy(e->sql, sql, len + 1);
	e->stmt = s;
	e->next = st->stmts[b];
	st->stmts[b] = e;
	*out = s;
	return 0;
}

void sw__done(sqlite3_stmt *s)
{
	if (s) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
}

int sw__vbind(struct sw_store *st, sqlite3_stmt *s, const char *fmt, va_list ap)
{
	int rc = SQLITE_OK, i = 1;

	for (const char *f = fmt; *f && rc == SQLITE_OK; f++, i++) {
		switch (*f) {
		case 's': {
			const char *v = va_arg(ap, const char *);
			rc = v ? sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT)
			       : sqlite3_bind_null(s, i);
			break;
		}
		case 'S': {
			const char *v = va_arg(ap, const char *);
			rc = v && *v ? sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT)
				     : sqlite3_bind_null(s, i);
			break;
		}
		case 'i':
			rc = sqlite3_bind_int(s, i, va_arg(ap, int));
			break;
		case 'I':
			rc = sqlite3_bind_int64(s, i, va_arg(ap, int64_t));
			break;
		case 'Z': {
			int64_t v = va_arg(ap, int64_t);
			rc = v ? sqlite3_bind_int64(s, i, v) : sqlite3_bind_null(s, i);
			break;
		}
		case 'b':
		case 'B': {   /* a blob; B binds NULL for a NULL pointer, b an empty one */
			const void *p = va_arg(ap, const void *);
			size_t n = va_arg(ap, size_t);
			rc = !p && *f == 'B' ? sqlite3_bind_null(s, i)
			     : sqlite3_bind_blob64(s, i, p ? p : "", p ? n : 0, SQLITE_TRANSIENT);
			break;
		}
		default:
			assert(!"bad bind format");
			return sw_error_setc(SW_EINVALID, "bad bind format '%c'", *f);
		}
	}
	if (rc != SQLITE_OK) {
		rc = sw__err(st, rc);
		return CTX(rc, "bind parameter %d", i - 1);
	}
	return 0;
}

static int vprepare_bind(struct sw_store *st, sqlite3_stmt **s, const char *sql,
			 const char *fmt, va_list ap)
{
	int rc = sw__prepare(st, sql, s);
	if (rc == 0 && (rc = sw__vbind(st, *s, fmt, ap)) < 0)
		sw__done(*s);
	return rc;
}

int sw__exec(struct sw_store *st, int64_t *changes, const char *sql, const char *fmt, ...)
{
	sqlite3_stmt *s;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vprepare_bind(st, &s, sql, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE)
		rc = sw__err(st, rc);
	else
		rc = 0;
	if (rc == 0 && changes)
		*changes = sqlite3_changes64(st->db);
	sw__done(s);
	return rc;
}

int sw__int(struct sw_store *st, int64_t *out, const char *sql, const char *fmt, ...)
{
	sqlite3_stmt *s;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vprepare_bind(st, &s, sql, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return rc;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(s, 0);
		/* Run to the end: an INSERT ... RETURNING is only done at SQLITE_DONE. */
		while ((rc = sqlite3_step(s)) == SQLITE_ROW)
			;
		rc = rc == SQLITE_DONE ? 0 : sw__err(st, rc);
	} else if (rc == SQLITE_DONE) {
		rc = sw_error_setc(SW_ENOTFOUND, "not found");
	} else {
		rc = sw__err(st, rc);
	}
	sw__done(s);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The row mapper                                                      */
/* ------------------------------------------------------------------ */

static void row_zero(const struct rowdef *def, void *rec)
{
	memset(rec, 0, def->size);
	for (size_t i = 0; i < def->ncols; i++)
		if (def->cols[i].type == COL_BUF)
			sw_buf_init((struct sw_buf *)((char *)rec + def->cols[i].off));
}

static void row_read(const struct rowdef *def, sqlite3_stmt *s, void *rec)
{
	assert((size_t)sqlite3_column_count(s) == def->ncols);
	row_zero(def, rec);
	for (size_t i = 0; i < def->ncols; i++) {
		const struct col *c = &def->cols[i];
		char *field = (char *)rec + c->off;
		int ci = (int)i, null = sqlite3_column_type(s, ci) == SQLITE_NULL;

		assert(!strcmp(sqlite3_column_name(s, ci), c->name));
		switch (c->type) {
		case COL_I64:
			*(int64_t *)field = null ? c->dflt : sqlite3_column_int64(s, ci);
			break;
		case COL_INT:
			*(int *)field = null ? (int)c->dflt : sqlite3_column_int(s, ci);
			break;
		case COL_TEXT:
			if (!null) {
				const char *t = (const char *)sqlite3_column_text(s, ci);
				*(char **)field = sw_strndup(t, (size_t)sqlite3_column_bytes(s, ci));
			}
			break;
		case COL_BUF:
			if (!null) {
				const void *p = sqlite3_column_blob(s, ci);
				sw_buf_add((struct sw_buf *)field, p, (size_t)sqlite3_column_bytes(s, ci));
			}
			break;
		case COL_ENUM: {
			const char *t = (const char *)sqlite3_column_text(s, ci);
			int v = (int)c->dflt;
			for (int k = 0; t && k < c->nnames; k++)
				if (!strcmp(t, c->names[k]))
					v = k;
			*(int *)field = v;
			break;
		}
		}
	}
}

void sw__row_release(const struct rowdef *def, void *rec)
{
	if (!rec)
		return;
	for (size_t i = 0; i < def->ncols; i++) {
		char *field = (char *)rec + def->cols[i].off;
		if (def->cols[i].type == COL_TEXT)
			free(*(char **)field);
		else if (def->cols[i].type == COL_BUF)
			sw_buf_release((struct sw_buf *)field);
	}
	row_zero(def, rec);
}

void sw__list_release(const struct rowdef *def, void *v, size_t *n)
{
	char **arr = v;

	for (size_t i = 0; *arr && i < *n; i++)
		sw__row_release(def, *arr + i * def->size);
	free(*arr);
	*arr = NULL;
	*n = 0;
}

int sw__one(struct sw_store *st, const struct rowdef *def, void *rec,
	    const char *sql, const char *fmt, ...)
{
	sqlite3_stmt *s;
	va_list ap;
	int rc;

	row_zero(def, rec);
	va_start(ap, fmt);
	rc = vprepare_bind(st, &s, sql, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return rc;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		row_read(def, s, rec);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = sw_error_setc(SW_ENOTFOUND, "not found");
	} else {
		rc = sw__err(st, rc);
	}
	sw__done(s);
	return rc;
}

int sw__list_stmt(struct sw_store *st, const struct rowdef *def, void *v, size_t *n,
		  sqlite3_stmt *s)
{
	char **arr = v;
	size_t cap = 0;
	int rc;

	*arr = NULL;
	*n = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			*arr = sw_realloc(*arr, cap * def->size);
		}
		row_read(def, s, *arr + *n * def->size);
		(*n)++;
	}
	if (rc != SQLITE_DONE) {
		rc = sw__err(st, rc);
		sw__list_release(def, v, n);
	} else {
		rc = 0;
	}
	sw__done(s);
	return rc;
}

int sw__list(struct sw_store *st, const struct rowdef *def, void *v, size_t *n,
	     const char *sql, const char *fmt, ...)
{
	sqlite3_stmt *s;
	va_list ap;
	int rc;

	*(void **)v = NULL;
	*n = 0;
	va_start(ap, fmt);
	rc = vprepare_bind(st, &s, sql, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return rc;
	return sw__list_stmt(st, def, v, n, s);
}

/* ------------------------------------------------------------------ */
/* Transactions                                                        */
/* ------------------------------------------------------------------ */

static int exec_plain(struct sw_store *st, const char *sql)
{
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : sw__err(st, rc);
}

int sw_store_in_transaction(const struct sw_store *st)
{
	return !sqlite3_get_autocommit(st->db);
}

int sw_store_begin(struct sw_store *st)
{
	if (sw_store_in_transaction(st))
		return sw_error_setc(SW_EINVALID, "begin transaction on %s: one is already open",
				     st->path);
	int rc = exec_plain(st, "BEGIN IMMEDIATE");
	return CTX(rc, "begin transaction on %s", st->path);
}

int sw_store_commit(struct sw_store *st)
{
	if (!sw_store_in_transaction(st))
		return sw_error_setc(SW_EINVALID, "commit on %s: no transaction open", st->path);
	int rc = exec_plain(st, "COMMIT");
	if (rc < 0) {
		/* Leave no half-open transaction behind: the batch is lost as a whole. */
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return CTX(rc, "commit on %s", st->path);
	}
	return 0;
}

int sw_store_rollback(struct sw_store *st)
{
	if (!sw_store_in_transaction(st))
		return 0;
	int rc = exec_plain(st, "ROLLBACK");
	return CTX(rc, "rollback on %s", st->path);
}

int sw__atomic_begin(struct sw_store *st, int *nested)
{
	*nested = sw_store_in_transaction(st);
	return exec_plain(st, *nested ? "SAVEPOINT sw_atomic" : "BEGIN IMMEDIATE");
}

int sw__atomic_end(struct sw_store *st, int nested, int ok)
{
	int rc;

	if (ok == 0) {
		rc = exec_plain(st, nested ? "RELEASE sw_atomic" : "COMMIT");
		if (rc == 0)
			return 0;
		ok = rc;
	}
	/* Keep the first error's message: the rollback's own is not news. */
	if (nested)
		sqlite3_exec(st->db, "ROLLBACK TO sw_atomic; RELEASE sw_atomic", NULL, NULL, NULL);
	else
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return ok;
}

/* ------------------------------------------------------------------ */
/* Opening and closing                                                 */
/* ------------------------------------------------------------------ */

/*
 * mkdir -p with mode 0700 for what it creates. `*created` says whether the
 * last component was created here (so a failed open can remove it again).
 */
static int make_dir(const char *dir, int *created)
{
	char *p = sw_strdup(dir);
	struct stat sb;
	int rc = 0;

	*created = 0;
	for (char *q = p + 1;; q++) {
		int last = *q == '\0';
		if (*q != '/' && !last)
			continue;
		*q = '\0';
		if (mkdir(p, 0700) == 0) {
			*created = last;
		} else if (errno != EEXIST) {
			rc = sw_error_errno("data directory %s: cannot create %s", dir, p);
			break;
		} else if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
			errno = ENOTDIR;
			rc = sw_error_errno("data directory %s: cannot create %s", dir, p);
			break;
		}
		if (last)
			break;
		*q = '/';
	}
	free(p);
	return rc;
}

static int pragma_int(struct sw_store *st, const char *sql, int64_t *out)
{
	return sw__int(st, out, sql, "");
}

static int migrate(struct sw_store *st)
{
	int64_t version = 0;
	int rc;

	/* Up to date (the usual start): no transaction, so a start while another
	 * process holds the write lock (a backup) does not fail here. */
	if (pragma_int(st, "PRAGMA user_version", &version) == 0 && version >= (int64_t)nmigrations)
		return 0;
	for (size_t v = 1; v <= nmigrations; v++) {
		if ((rc = exec_plain(st, "BEGIN IMMEDIATE")) < 0)
			return CTX(rc, "database %s: migrate to schema version %zu", st->path, v);
		/* Read inside the transaction: another process may have migrated. */
		rc = pragma_int(st, "PRAGMA user_version", &version);
		if (rc == 0 && version < (int64_t)v) {
			char *set = sw_asprintf("PRAGMA user_version = %zu", v);
			rc = exec_plain(st, migrations[v - 1]);
			if (rc == 0)
				rc = exec_plain(st, set);
			free(set);
			if (rc == 0)
				rc = exec_plain(st, "COMMIT");
			if (rc == 0)
				log_info("store.migrate", "db=%s version=%zu", sw_q(st->path), v);
		} else if (rc == 0) {
			rc = exec_plain(st, "COMMIT");
		}
		if (rc < 0) {
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			return CTX(rc, "database %s: migrate to schema version %zu", st->path, v);
		}
	}
	return 0;
}

/* Refuse files that are not ours, or newer than this build. */
static int check_version(struct sw_store *st)
{
	int64_t version = 0, app = 0, objects = 0;
	int rc;

	if ((rc = pragma_int(st, "PRAGMA user_version", &version)) < 0 ||
	    (rc = pragma_int(st, "PRAGMA application_id", &app)) < 0 ||
	    (rc = pragma_int(st, "SELECT count(*) FROM sqlite_schema", &objects)) < 0)
		return CTX(rc, "database %s", st->path);
	if (app != APPLICATION_ID && (version != 0 || objects != 0))
		return sw_error_setc(SW_EINVALID,
				     "database %s is an SQLite database but not slipway's "
				     "(application_id %lld): use another data directory",
				     st->path, (long long)app);
	if (version > (int64_t)nmigrations)
		return sw_error_setc(SW_EINVALID,
				     "database %s has schema version %lld, newer than this "
				     "slipwayd (%zu): upgrade slipwayd or use another data directory",
				     st->path, (long long)version, nmigrations);
	return 0;
}

/*
 * Deletes give pages back to the file system only with
 * auto_vacuum=INCREMENTAL (retention then runs PRAGMA incremental_vacuum).
 * A new file gets it before its first table; an existing one switches only
 * through one VACUUM, which rewrites the file: done here once, at start-up,
 * before the daemon serves anything.
 */
static int set_auto_vacuum(struct sw_store *st)
{
	int64_t mode = 0, objects = 0, t0;
	int rc;

	if ((rc = pragma_int(st, "PRAGMA auto_vacuum", &mode)) < 0 || mode == 2)
		return CTX(rc, "database %s", st->path);
	if ((rc = exec_plain(st, "PRAGMA auto_vacuum = INCREMENTAL")) < 0 ||
	    (rc = pragma_int(st, "SELECT count(*) FROM sqlite_schema", &objects)) < 0 ||
	    objects == 0)
		return CTX(rc, "database %s: set auto_vacuum", st->path);
	log_info("store.vacuum", "db=%s why=%s", sw_q(st->path),
		 sw_q("switch to auto_vacuum=incremental (once)"));
	t0 = sw_now_ms();
	if ((rc = exec_plain(st, "VACUUM")) == SW_EAGAIN) {
		/* Another handle is busy with it: the next start-up switches. */
		log_warn("store.vacuum_skipped", "db=%s err=%s", sw_q(st->path),
			 sw_q(sw_error_last()));
		return 0;
	}
	if (rc < 0)
		return CTX(rc, "database %s: VACUUM to switch to auto_vacuum=incremental", st->path);
	log_info("store.vacuumed", "db=%s ms=%lld", sw_q(st->path), (long long)(sw_now_ms() - t0));
	return 0;
}

static void remove_db_files(const char *path)
{
	static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };

	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		char *p = sw_asprintf("%s%s", path, suffix[i]);
		unlink(p);
		free(p);
	}
}

int sw_store_open(struct sw_store **out, const char *data_dir)
{
	struct sw_store_opts opts = SW_STORE_OPTS_INIT;
	return sw_store_open_opts(out, data_dir, &opts);
}

int sw_store_open_opts(struct sw_store **out, const char *data_dir,
		       const struct sw_store_opts *opts)
{
	struct sw_store *st = NULL;
	int dir_created = 0, file_created = 0, rc;
	struct stat sb;
	char mode[16] = "";

	*out = NULL;
	if (!data_dir || !*data_dir)
		return sw_error_setc(SW_EINVALID, "data directory not set");
	if ((rc = make_dir(data_dir, &dir_created)) < 0)
		return rc;
	if (access(data_dir, W_OK | X_OK) != 0) {
		rc = sw_error_errno("data directory %s is not writable", data_dir);
		goto fail;
	}

	st = sw_calloc(1, sizeof(*st));
	st->nbuckets = NBUCKETS;
	st->stmts = sw_calloc(st->nbuckets, sizeof(*st->stmts));
	st->path = sw_asprintf("%s/slipway.db", data_dir);
	file_created = stat(st->path, &sb) != 0 && errno == ENOENT;

	rc = sqlite3_open_v2(st->path, &st->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = sw__err(st, rc);
		rc = CTX(rc, "open database %s", st->path);
		goto fail;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, opts->busy_timeout_ms);

	/* Before WAL mode writes the header, or a new file keeps auto_vacuum=none. */
	if (file_created && (rc = exec_plain(st, "PRAGMA auto_vacuum = INCREMENTAL")) < 0) {
		rc = CTX(rc, "database %s", st->path);
		goto fail;
	}
	/* The first statement that reads the file: a non-database fails here. */
	{
		sqlite3_stmt *s;
		if ((rc = sw__prepare(st, "PRAGMA journal_mode = WAL", &s)) == 0) {
			int step = sqlite3_step(s);
			if (step == SQLITE_ROW)
				snprintf(mode, sizeof(mode), "%s", sqlite3_column_text(s, 0));
			else
				rc = sw__err(st, step);
			sw__done(s);
		}
		if (rc < 0) {
			rc = CTX(rc, "database %s", st->path);
			goto fail;
		}
		if (strcmp(mode, "wal")) {
			rc = sw_error_setc(SW_EINVALID, "database %s: cannot use WAL journal "
					   "(got '%s')", st->path, mode);
			goto fail;
		}
	}
	if ((rc = exec_plain(st, opts->sync_full ? "PRAGMA synchronous = FULL"
						: "PRAGMA synchronous = NORMAL")) < 0 ||
	    (rc = exec_plain(st, "PRAGMA foreign_keys = ON")) < 0) {
		rc = CTX(rc, "database %s", st->path);
		goto fail;
	}
	if ((rc = check_version(st)) < 0 || (rc = set_auto_vacuum(st)) < 0 ||
	    (rc = migrate(st)) < 0)
		goto fail;

	*out = st;
	return 0;

fail:
	if (st) {
		sw_store_close(st);
		st = NULL;
	}
	if (file_created) {
		char *path = sw_asprintf("%s/slipway.db", data_dir);
		remove_db_files(path);
		free(path);
	}
	if (dir_created)
		rmdir(data_dir);
	return rc;
}

void sw_store_close(struct sw_store *st)
{
	if (!st)
		return;
	for (size_t b = 0; b < st->nbuckets; b++) {
		struct stmt_entry *e = st->stmts[b], *next;
		for (; e; e = next) {
			next = e->next;
			sqlite3_finalize(e->stmt);
			free(e);
		}
	}
	free(st->stmts);
	if (st->db) {
		if (!sqlite3_get_autocommit(st->db))
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		if (sqlite3_close(st->db) != SQLITE_OK)
			log_warn("store.close", "db=%s error=%s", sw_q(st->path),
				 sw_q(sqlite3_errmsg(st->db)));
	}
	free(st->path);
	free(st);
}

const char *sw_store_path(const struct sw_store *st)
{
	return st->path;
}
