/*
 * envs.c - environments, their deploy history (syncs and per-object
 * results), the inventory of objects each manages, and drift events
 * (see store.h).
 */
#include "storage/store-int.h"

#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"

/* Cluster-scoped objects have namespace '' in every table (it is in keys). */
static const char *ns(const char *s)
{
	return s ? s : "";
}

static const char *nn(const char *s)
{
	return s ? s : "(null)";
}

/* ------------------------------------------------------------------ */
/* Environments                                                        */
/* ------------------------------------------------------------------ */

#define T struct sw_store_env
static const struct col env_cols[] = {
	C_TEXT(T, name), C_TEXT(T, branch), C_TEXT(T, desired_commit), C_TEXT(T, synced_commit),
	C_ENUM(T, sync_status, sw__env_sync_names), C_ENUM(T, health, sw__health_names),
	C_TEXT(T, rolled_back_to), C_I64(T, last_sync_at), C_I64(T, last_sync_ms),
	C_TEXT(T, message), C_TEXT(T, infra_status), C_I64(T, updated_at),
};
#undef T
static const struct rowdef env_def = ROWDEF(struct sw_store_env, env_cols);

#define ENV_SELECT "SELECT name, branch, desired_commit, synced_commit, sync_status, health, " \
	"rolled_back_to, last_sync_at, last_sync_ms, message, infra_status, updated_at " \
	"FROM environments "

int sw_store_env_upsert(struct sw_store *st, const char *name, const char *branch)
{
	int rc = sw__exec(st, NULL,
			  "INSERT INTO environments (name, branch, updated_at) VALUES (?, ?, ?) "
			  "ON CONFLICT (name) DO UPDATE SET branch = excluded.branch, "
			  "updated_at = excluded.updated_at WHERE branch IS NOT excluded.branch",
			  "ssI", name, branch, sw_now_ms());
	return CTX(rc, "upsert environment %s", nn(name));
}

int sw_store_env_get(struct sw_store *st, const char *name, struct sw_store_env *out)
{
	int rc = sw__one(st, &env_def, out, ENV_SELECT "WHERE name = ?", "s", name);
	return CTX(rc, "environment %s", nn(name));
}

int sw_store_env_list(struct sw_store *st, struct sw_store_env_list *out)
{
	int rc = sw__list(st, &env_def, &out->v, &out->n, ENV_SELECT "ORDER BY name", "");
	return CTX(rc, "list environments");
}

int sw_store_env_set(struct sw_store *st, const char *name, const struct sw_store_env_update *u)
{
	const char *sync = ENAME(sw__env_sync_names, u->sync_status);
	const char *health = ENAME(sw__health_names, u->health);
	int64_t changed = 0;
	int rc;

	if ((u->sync_status >= 0 && !sync) || (u->health >= 0 && !health))
		return sw_error_setc(SW_EINVALID, "update environment %s: bad sync status or "
				     "health (%d, %d)", nn(name), u->sync_status, u->health);
	/* For strings NULL keeps and '' clears; for numbers -1 keeps. */
	rc = sw__exec(st, &changed,
		      "UPDATE environments SET "
		      "desired_commit = IIF(?2 IS NULL, desired_commit, NULLIF(?2, '')), "
		      "synced_commit = IIF(?3 IS NULL, synced_commit, NULLIF(?3, '')), "
		      "sync_status = COALESCE(?4, sync_status), "
		      "health = COALESCE(?5, health), "
		      "rolled_back_to = IIF(?6 IS NULL, rolled_back_to, NULLIF(?6, '')), "
		      "last_sync_at = IIF(?7 < 0, last_sync_at, ?7), "
		      "last_sync_ms = IIF(?8 < 0, last_sync_ms, ?8), "
		      "message = IIF(?9 IS NULL, message, NULLIF(?9, '')), "
		      "infra_status = IIF(?10 IS NULL, infra_status, NULLIF(?10, '')), "
		      "updated_at = ?11 WHERE name = ?1",
		      "ssssssIIssI", name, u->desired_commit, u->synced_commit, sync, health,
		      u->rolled_back_to, u->last_sync_at, u->last_sync_ms, u->message,
		      u->infra_status, sw_now_ms());
	if (rc == 0 && changed == 0)
		rc = sw_error_setc(SW_ENOTFOUND, "no such environment");
	return CTX(rc, "update environment %s", nn(name));
}

void sw_store_env_release(struct sw_store_env *e)
{
	sw__row_release(&env_def, e);
}

void sw_store_env_list_release(struct sw_store_env_list *l)
{
	sw__list_release(&env_def, &l->v, &l->n);
}

/* ------------------------------------------------------------------ */
/* Syncs                                                               */
/* ------------------------------------------------------------------ */

#define T struct sw_store_sync
static const struct col sync_cols[] = {
	C_I64(T, id), C_TEXT(T, environment), C_TEXT(T, commit_sha),
	C_ENUM(T, trigger, sw__sync_trigger_names), C_ENUM(T, status, sw__sync_status_names),
	C_ENUM(T, health, sw__health_names), C_I64(T, started_at), C_I64(T, finished_at),
	C_TEXT(T, message), C_I64(T, run_id), C_TEXT(T, infra_outputs),
};
#undef T
static const struct rowdef sync_def = ROWDEF(struct sw_store_sync, sync_cols);

#define T struct sw_store_sync_object
static const struct col syncobj_cols[] = {
	C_I64(T, sync_id), C_TEXT(T, api_version), C_TEXT(T, kind), C_TEXT(T, namespace),
	C_TEXT(T, name), C_ENUM(T, result, sw__object_result_names), C_TEXT(T, message),
};
#undef T
static const struct rowdef syncobj_def = ROWDEF(struct sw_store_sync_object, syncobj_cols);

#define SYNC_SELECT "SELECT id, environment, commit_sha, \"trigger\", status, health, " \
	"started_at, finished_at, message, run_id, infra_outputs FROM syncs "

int sw_store_sync_start(struct sw_store *st, int64_t *id, const char *environment,
			const char *commit_sha, enum sw_sync_trigger trigger, int64_t run_id)
{
	int rc;

	*id = 0;
	rc = sw__int(st, id, "INSERT INTO syncs (environment, commit_sha, \"trigger\", "
		     "started_at, run_id) VALUES (?, ?, ?, ?, ?) RETURNING id",
		     "sssIZ", environment, commit_sha, ENAME(sw__sync_trigger_names, trigger),
		     sw_now_ms(), run_id);
	return CTX(rc, "start sync of %s at %s", nn(environment), nn(commit_sha));
}

int sw_store_sync_add_object(struct sw_store *st, int64_t sync_id,
			     const struct sw_store_objref *obj,
			     enum sw_object_result result, const char *message)
{
	int rc = sw__exec(st, NULL,
			  "INSERT INTO sync_objects (sync_id, api_version, kind, namespace, name, "
			  "result, message) VALUES (?, ?, ?, ?, ?, ?, ?)",
			  "Isssss" "s", sync_id, obj->api_version, obj->kind, ns(obj->namespace),
			  obj->name, ENAME(sw__object_result_names, result), message);
	return CTX(rc, "sync %lld: record %s %s/%s", (long long)sync_id, nn(obj->kind),
		   ns(obj->namespace), nn(obj->name));
}

int sw_store_sync_finish(struct sw_store *st, int64_t id, enum sw_sync_status status,
			 enum sw_health health, const char *message)
{
	int64_t changed = 0;
	int rc = sw__exec(st, &changed,
			  "UPDATE syncs SET status = ?, health = ?, message = ?, finished_at = ? "
			  "WHERE id = ?", "sssII", ENAME(sw__sync_status_names, status),
			  ENAME(sw__health_names, health), message, sw_now_ms(), id);
	if (rc == 0 && changed == 0)
		rc = sw_error_setc(SW_ENOTFOUND, "no such sync");
	return CTX(rc, "finish sync %lld", (long long)id);
}

int sw_store_sync_set_infra_outputs(struct sw_store *st, const char *environment,
				    int64_t run_id, const char *outputs_json)
{
	int64_t changed = 0;
	int rc = sw__exec(st, &changed,
			  "UPDATE syncs SET infra_outputs = ? WHERE id = "
			  "(SELECT min(id) FROM syncs WHERE environment = ? AND run_id = ?)",
			  "ssI", outputs_json, environment, run_id);
	if (rc == 0 && changed == 0)
		rc = sw_error_setc(SW_ENOTFOUND, "no sync");
	return CTX(rc, "infra outputs of run %lld on %s", (long long)run_id, nn(environment));
}

int sw_store_sync_get(struct sw_store *st, int64_t id, struct sw_store_sync *out)
{
	int rc = sw__one(st, &sync_def, out, SYNC_SELECT "WHERE id = ?", "I", id);
	if (rc == 0) {
		rc = sw__list(st, &syncobj_def, &out->objects, &out->nobjects,
			      "SELECT sync_id, api_version, kind, namespace, name, result, message "
			      "FROM sync_objects WHERE sync_id = ? ORDER BY id", "I", id);
		if (rc < 0)
			sw_store_sync_release(out);
	}
	return CTX(rc, "sync %lld", (long long)id);
}

int sw_store_sync_history(struct sw_store *st, const char *environment, int limit,
			  struct sw_store_sync_list *out)
{
	int rc = sw__list(st, &sync_def, &out->v, &out->n,
			  SYNC_SELECT "WHERE environment = ? ORDER BY id DESC LIMIT ?", "si",
			  environment, limit > 0 ? limit : 50);
	return CTX(rc, "sync history of %s", nn(environment));
}

int sw_store_sync_last_healthy(struct sw_store *st, const char *environment,
			       int64_t before_id, struct sw_store_sync *out)
{
	/* The status and health terms match syncs_env_healthy's WHERE. */
	int rc = sw__one(st, &sync_def, out,
			 SYNC_SELECT "WHERE environment = ? AND id < ? AND status = 'success' "
			 "AND health = 'healthy' ORDER BY id DESC LIMIT 1", "sI",
			 environment, before_id > 0 ? before_id : INT64_MAX);
	if (rc == SW_ENOTFOUND)
		sw_error_setc(SW_ENOTFOUND, "no healthy sync");
	return CTX(rc, "last healthy sync of %s", nn(environment));
}

int sw_store_sync_trim(struct sw_store *st, const char *environment, int keep,
		       int64_t *deleted)
{
	int64_t n = 0;
	int rc;

	if (keep < 0)
		keep = 0;
	if (environment)
		rc = sw__exec(st, &n,
			      "DELETE FROM syncs WHERE environment = ?1 AND id <= "
			      "(SELECT id FROM syncs WHERE environment = ?1 ORDER BY id DESC "
			      "  LIMIT 1 OFFSET ?2) "
			      "AND id IS NOT (SELECT id FROM syncs WHERE environment = ?1 "
			      "  AND status = 'success' AND health = 'healthy' "
			      "  ORDER BY id DESC LIMIT 1)",
			      "si", environment, keep);
	else
		rc = sw__exec(st, &n,
			      "DELETE FROM syncs WHERE id IN (SELECT id FROM "
			      "  (SELECT id, row_number() OVER "
			      "    (PARTITION BY environment ORDER BY id DESC) AS rn FROM syncs) "
			      "  WHERE rn > ?1) "
			      "AND id NOT IN (SELECT max(id) FROM syncs WHERE status = 'success' "
			      "  AND health = 'healthy' GROUP BY environment)",
			      "i", keep);
	if (deleted)
		*deleted = rc == 0 ? n : 0;
	return CTX(rc, "trim sync history of %s", environment ? environment : "all environments");
}

void sw_store_sync_release(struct sw_store_sync *s)
{
	if (!s)
		return;
	sw__list_release(&syncobj_def, &s->objects, &s->nobjects);
	sw__row_release(&sync_def, s);
}

void sw_store_sync_list_release(struct sw_store_sync_list *l)
{
	for (size_t i = 0; l->v && i < l->n; i++)
		sw__list_release(&syncobj_def, &l->v[i].objects, &l->v[i].nobjects);
	sw__list_release(&sync_def, &l->v, &l->n);
}

/* ------------------------------------------------------------------ */
/* Inventory                                                           */
/* ------------------------------------------------------------------ */

#define T struct sw_store_inv
static const struct col inv_cols[] = {
	C_TEXT(T, environment), C_TEXT(T, api_version), C_TEXT(T, kind), C_TEXT(T, namespace),
	C_TEXT(T, name), C_TEXT(T, uid), C_ENUM(T, health, sw__health_names), C_TEXT(T, message),
};
#undef T
static const struct rowdef inv_def = ROWDEF(struct sw_store_inv, inv_cols);

static int inv_upsert(struct sw_store *st, const char *environment,
		      const struct sw_store_inv_in *it)
{
	int rc = sw__exec(st, NULL,
			  "INSERT INTO inventory (environment, api_version, kind, namespace, name, "
			  "uid, health, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
			  "ON CONFLICT (environment, api_version, kind, namespace, name) DO UPDATE "
			  "SET uid = excluded.uid, health = excluded.health, "
			  "message = excluded.message",
			  "ssssssss", environment, it->ref.api_version, it->ref.kind,
			  ns(it->ref.namespace), it->ref.name, it->uid,
			  ENAME(sw__health_names, it->health), it->message);
	return CTX(rc, "inventory of %s: %s %s/%s", nn(environment), nn(it->ref.kind),
		   ns(it->ref.namespace), nn(it->ref.name));
}

int sw_store_inventory_replace(struct sw_store *st, const char *environment,
			       const struct sw_store_inv_in *items, size_t n)
{
	int nested, rc = sw__atomic_begin(st, &nested);

	if (rc < 0)
		return CTX(rc, "replace inventory of %s", nn(environment));
	rc = sw__exec(st, NULL, "DELETE FROM inventory WHERE environment = ?", "s", environment);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = inv_upsert(st, environment, &items[i]);
	rc = sw__atomic_end(st, nested, rc);
	return CTX(rc, "replace inventory of %s", nn(environment));
}

int sw_store_inventory_upsert(struct sw_store *st, const char *environment,
			      const struct sw_store_inv_in *item)
{
	return inv_upsert(st, environment, item);
}

int sw_store_inventory_delete(struct sw_store *st, const char *environment,
			      const struct sw_store_objref *obj)
{
	int64_t changed = 0;
	int rc = sw__exec(st, &changed,
			  "DELETE FROM inventory WHERE environment = ? AND api_version = ? "
			  "AND kind = ? AND namespace = ? AND name = ?", "sssss", environment,
			  obj->api_version, obj->kind, ns(obj->namespace), obj->name);
	if (rc == 0 && changed == 0)
		rc = sw_error_setc(SW_ENOTFOUND, "not in the inventory");
	return CTX(rc, "inventory of %s: delete %s %s/%s", nn(environment), nn(obj->kind),
		   ns(obj->namespace), nn(obj->name));
}

int sw_store_inventory_list(struct sw_store *st, const char *environment,
			    struct sw_store_inv_list *out)
{
	int rc = sw__list(st, &inv_def, &out->v, &out->n,
			  "SELECT environment, api_version, kind, namespace, name, uid, health, "
			  "message FROM inventory WHERE environment = ? "
			  "ORDER BY api_version, kind, namespace, name", "s", environment);
	return CTX(rc, "inventory of %s", nn(environment));
}

int sw_store_inventory_health_counts(struct sw_store *st, const char *environment,
				     int64_t counts[SW_HEALTH__COUNT])
{
	sqlite3_stmt *s;
	int rc;

	memset(counts, 0, sizeof(int64_t) * SW_HEALTH__COUNT);
	rc = sw__prepare(st, "SELECT health, count(*) FROM inventory WHERE environment = ? "
			 "GROUP BY health", &s);
	if (rc < 0)
		return CTX(rc, "inventory health of %s", nn(environment));
	sqlite3_bind_text(s, 1, environment, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		enum sw_health h;
		if (sw_store_health_parse((const char *)sqlite3_column_text(s, 0), &h) == 0)
			counts[h] += sqlite3_column_int64(s, 1);
	}
	rc = rc == SQLITE_DONE ? 0 : sw__err(st, rc);
	sw__done(s);
	return CTX(rc, "inventory health of %s", nn(environment));
}

void sw_store_inv_release(struct sw_store_inv *i)
{
	sw__row_release(&inv_def, i);
}

void sw_store_inv_list_release(struct sw_store_inv_list *l)
{
	sw__list_release(&inv_def, &l->v, &l->n);
}

/* ------------------------------------------------------------------ */
/* Drift events                                                        */
/* ------------------------------------------------------------------ */

#define T struct sw_store_drift
static const struct col drift_cols[] = {
	C_I64(T, id), C_TEXT(T, environment), C_TEXT(T, api_version), C_TEXT(T, kind),
	C_TEXT(T, namespace), C_TEXT(T, name), C_TEXT(T, fields), C_TEXT(T, manager),
	C_I64(T, detected_at), C_ENUM(T, action, sw__drift_action_names), C_TEXT(T, message),
	C_I64(T, sync_id),
};
#undef T
static const struct rowdef drift_def = ROWDEF(struct sw_store_drift, drift_cols);

#define DRIFT_SELECT "SELECT id, environment, api_version, kind, namespace, name, fields, " \
	"manager, detected_at, action, message, sync_id FROM drift_events "

int sw_store_drift_insert(struct sw_store *st, int64_t *id, const struct sw_store_drift_in *in)
{
	int rc;

	*id = 0;
	rc = sw__int(st, id,
		     "INSERT INTO drift_events (environment, api_version, kind, namespace, name, "
		     "fields, manager, detected_at, action, message, sync_id) "
		     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
		     "sssssssIssZ", in->environment, in->ref.api_version, in->ref.kind,
		     ns(in->ref.namespace), in->ref.name, in->fields, in->manager,
		     in->detected_at ? in->detected_at : sw_now_ms(),
		     ENAME(sw__drift_action_names, in->action), in->message, in->sync_id);
	return CTX(rc, "record drift of %s %s/%s in %s", nn(in->ref.kind), ns(in->ref.namespace),
		   nn(in->ref.name), nn(in->environment));
}

int sw_store_drift_list(struct sw_store *st, const char *environment, int limit,
			struct sw_store_drift_list *out)
{
	int rc = sw__list(st, &drift_def, &out->v, &out->n,
			  DRIFT_SELECT "WHERE environment = ? ORDER BY id DESC LIMIT ?", "si",
			  environment, limit > 0 ? limit : 50);
	return CTX(rc, "drift events of %s", nn(environment));
}

int sw_store_drift_latest(struct sw_store *st, const char *environment,
			  struct sw_store_drift *out)
{
	int rc = sw__one(st, &drift_def, out,
			 DRIFT_SELECT "WHERE environment = ? ORDER BY id DESC LIMIT 1", "s",
			 environment);
	return CTX(rc, "latest drift event of %s", nn(environment));
}

void sw_store_drift_release(struct sw_store_drift *d)
{
	sw__row_release(&drift_def, d);
}

void sw_store_drift_list_release(struct sw_store_drift_list *l)
{
	sw__list_release(&drift_def, &l->v, &l->n);
}
