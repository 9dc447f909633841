/*
 * store-int.h - private to storage/: the handle, the statement cache, and
 * the row mapper that copies a result row into a public struct.
 *
 * A row type is described once, as a table of columns (name, C type, offset
 * in the struct). The SELECT that reads it lists the same columns in the same
 * order (an assert checks the names), and one generic function fills the
 * struct and one frees it, so every _release() is the same code.
 */
#ifndef SW_STORE_INT_H
#define SW_STORE_INT_H

#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/store.h"

struct stmt_entry;

/* PRAGMA application_id: "SLPW", so another program's SQLite file is refused. */
#define APPLICATION_ID 0x534C5057

struct sw_store {
	sqlite3 *db;
	char *path;
	struct stmt_entry **stmts;  /* hash table of prepared statements by SQL text */
	size_t nbuckets;
};

/* Column kinds for the row mapper. */
enum col_type {
	COL_I64,        /* int64_t; NULL -> dflt */
	COL_INT,        /* int; NULL -> dflt */
	COL_TEXT,       /* char *; NULL -> NULL */
	COL_BUF,        /* struct sw_buf (blob or text) */
	COL_ENUM,       /* int-sized enum stored as one of names[]; unknown -> dflt */
};

struct col {
	const char *name;
	enum col_type type;
	size_t off;
	const char *const *names;
	int nnames;
	int64_t dflt;
};

struct rowdef {
	size_t size;
	const struct col *cols;
	size_t ncols;
};

#define ROWDEF(type, cols) { sizeof(type), cols, sizeof(cols) / sizeof(cols[0]) }
#define C_I64(t, f)       { #f, COL_I64, offsetof(t, f), NULL, 0, 0 }
#define C_I64D(t, f, d)   { #f, COL_I64, offsetof(t, f), NULL, 0, d }
#define C_INT(t, f)       { #f, COL_INT, offsetof(t, f), NULL, 0, 0 }
#define C_INTD(t, f, d)   { #f, COL_INT, offsetof(t, f), NULL, 0, d }
#define C_TEXT(t, f)      { #f, COL_TEXT, offsetof(t, f), NULL, 0, 0 }
#define C_BUF(t, f)       { #f, COL_BUF, offsetof(t, f), NULL, 0, 0 }
#define C_ENUM(t, f, n)   { #f, COL_ENUM, offsetof(t, f), n, (int)(sizeof(n) / sizeof(n[0])), 0 }

/* Enum name tables, shared with the _str()/_parse() functions. */
extern const char *const sw__delivery_state_names[4];
extern const char *const sw__run_kind_names[6];
extern const char *const sw__status_names[8];
extern const char *const sw__env_sync_names[6];
extern const char *const sw__health_names[5];
extern const char *const sw__sync_trigger_names[5];
extern const char *const sw__sync_status_names[3];
extern const char *const sw__object_result_names[5];
extern const char *const sw__drift_action_names[3];
extern const char *const sw__outbox_target_names[2];
extern const char *const sw__outbox_state_names[3];

/* names[v], or NULL when v is out of range (a NOT NULL/CHECK then refuses it). */
#define ENAME(tab, v) sw__ename(tab, (int)(sizeof(tab) / sizeof(tab[0])), (int)(v))
const char *sw__ename(const char *const *names, int n, int v);

/*
 * Statements. sw__prepare() returns the cached statement for `sql`, reset
 * and with bindings cleared, ready to bind. Whoever steps it calls
 * sw__done() before returning (a statement left un-reset keeps a read
 * transaction open and blocks WAL checkpoints).
 */
int sw__prepare(struct sw_store *st, const char *sql, sqlite3_stmt **out);
void sw__done(sqlite3_stmt *s);

/*
 * Bind parameters 1.. from `fmt`, one letter each:
 *   s  const char *          text, NULL binds NULL
 *   S  const char *          text, NULL or "" binds NULL
 *   i  int
 *   I  int64_t
 *   Z  int64_t               0 binds NULL (optional ids, times)
 *   b  const void *, size_t  blob (NULL/0 binds an empty blob)
 *   B  const void *, size_t  blob, or NULL when the pointer is NULL
 */
int sw__vbind(struct sw_store *st, sqlite3_stmt *s, const char *fmt, va_list ap);

/* Translate a SQLite result code into SW_E* with the connection's message. */
int sw__err(struct sw_store *st, int rc);

/*
 * Run a statement that returns no rows; `*changes` (may be NULL) gets the
 * number of rows it changed.
 */
int sw__exec(struct sw_store *st, int64_t *changes, const char *sql, const char *fmt, ...);
/* A statement whose first row's first column is an integer; SW_ENOTFOUND without a row. */
int sw__int(struct sw_store *st, int64_t *out, const char *sql, const char *fmt, ...);
/* Read the first row into `rec` (zeroed first); SW_ENOTFOUND without a row. */
int sw__one(struct sw_store *st, const struct rowdef *def, void *rec,
	    const char *sql, const char *fmt, ...);
/* Read every row into a new array `*v` of `*n` records. */
int sw__list(struct sw_store *st, const struct rowdef *def, void *v, size_t *n,
	     const char *sql, const char *fmt, ...);
/* Step `s` (already bound) over all rows into `*v`, `*n`; resets `s`. */
int sw__list_stmt(struct sw_store *st, const struct rowdef *def, void *v, size_t *n,
		  sqlite3_stmt *s);

void sw__row_release(const struct rowdef *def, void *rec);
void sw__list_release(const struct rowdef *def, void *v, size_t *n);

/*
 * Atomic section inside a store function: a SAVEPOINT when the caller has a
 * transaction open, BEGIN IMMEDIATE otherwise; `*nested` remembers which.
 * sw__atomic_end() commits when ok is 0 (returning the commit's result) and
 * rolls back otherwise (returning ok, message untouched).
 */
int sw__atomic_begin(struct sw_store *st, int *nested);
int sw__atomic_end(struct sw_store *st, int nested, int ok);

/* "context: message" keeping the code: return CTX(rc, "insert run %s", x); */
#define CTX(rc, ...) ((rc) < 0 ? (sw_error_prefix(__VA_ARGS__), (rc)) : (rc))

/* For the tests: the SQL sw_store_run_list() runs for `f`; free() it. */
char *sw__run_list_sql(const struct sw_store_run_filter *f);

/* Test hook: replace the migration list (NULL restores the built-in one). */
void sw__store_set_migrations(const char *const *m, size_t n);

#endif
