/*
 * audit-int.h - the audit log: who did what, from where, when, and how it
 * ended (docs/api.md "Audit log"). Private to daemon/.
 *
 * Durable before answered: a row is written (autocommit on the loop's
 * handle, so it is in the WAL before the call returns) before the request
 * it records is answered. An action is recorded as `started` before it is
 * performed; when that write fails the action is not performed and the
 * client gets 503. Its outcome (ok or failed) is written before its answer.
 */
#ifndef SW_DAEMON_AUDIT_INT_H
#define SW_DAEMON_AUDIT_INT_H

#include <stdint.h>

#include "daemon/daemon.h"
#include "daemon/roles-int.h"

/*
 * One finished event (a refusal, a sign-in, a reload) as one row.
 * `outcome` is "ok", "refused" or "failed". 0, or <0 (logged with the
 * whole row, so the log still has it).
 */
int sw_audit_record(struct sw_daemon *d, const struct sw_actor *a, const char *action,
		    const char *target, const char *outcome, const char *reason);

/*
 * An action about to be performed: `*id` for sw_audit_finish(). <0 when it
 * could not be written (logged): answer 503 and do nothing.
 */
int sw_audit_start(struct sw_daemon *d, const struct sw_actor *a, const char *action,
		   const char *target, int64_t *id);
/* Its outcome ("ok", "failed"); id 0 is a no-op. */
void sw_audit_finish(struct sw_daemon *d, int64_t id, const char *outcome, const char *reason);

#endif
