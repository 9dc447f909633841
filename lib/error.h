/*
 * error.h - one thread-local error slot, as libgit2 does it.
 *
 * Functions in slipway return 0 on success and a negative code on failure,
 * leaving a message with context in the calling thread's slot:
 *
 *     if (sqlite3_step(st) != SQLITE_DONE)
 *             return sw_error_set("insert delivery %s: %s", guid, sqlite3_errmsg(db));
 *
 * Callers higher up add their own context in front with sw_error_prefix(),
 * so the final line reads "config slipway.yaml: data directory /x: Permission denied".
 */
#ifndef SW_ERROR_H
#define SW_ERROR_H

#include <stdarg.h>

/* Return codes. Anything below zero is a failure; the slot says why. */
enum {
	SW_OK = 0,
	SW_ERR = -1,        /* generic failure */
	SW_ENOTFOUND = -2,  /* the thing asked for does not exist */
	SW_EEXISTS = -3,    /* already there (e.g. a duplicate delivery) */
	SW_EINVALID = -4,   /* bad input from a user or a peer */
	SW_EAGAIN = -5,     /* try again later (busy, rate limited) */
	SW_ECANCELLED = -6, /* stopped on request */
};

#define SW_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Replace the slot's message. Always returns SW_ERR, for `return sw_error_set(...)`. */
int sw_error_set(const char *fmt, ...) SW_PRINTF(1, 2);

/* Same, returning `code` instead of SW_ERR. */
int sw_error_setc(int code, const char *fmt, ...) SW_PRINTF(2, 3);

/* Prepend "<context>: " to the current message. Returns SW_ERR. */
int sw_error_prefix(const char *fmt, ...) SW_PRINTF(1, 2);

/* Same with errno's strerror appended: "open x: No such file or directory". */
int sw_error_errno(const char *fmt, ...) SW_PRINTF(1, 2);

/* The calling thread's last message; never NULL ("" when none). */
const char *sw_error_last(void);

void sw_error_clear(void);

#endif
