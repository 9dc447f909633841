/*
 * audit.c - writing the audit log (see audit-int.h); daemon/api.c lists it,
 * daemon/page.c shows it.
 */
#include <stdlib.h>

#include "daemon/audit-int.h"
#include "lib/log.h"
#include "storage/store.h"

static int insert(struct sw_daemon *d, const struct sw_actor *a, const char *action,
		  const char *target, const char *outcome, const char *reason, int64_t *id)
{
	struct sw_store_audit row = {
		.actor = (char *)a->name, .actor_kind = (char *)sw_actor_kind_str(a->kind),
		.token_id = a->token_id[0] ? (char *)a->token_id : NULL,
		.client = a->client[0] ? (char *)a->client : NULL, .action = (char *)action,
		.target = (char *)target, .outcome = (char *)outcome, .reason = (char *)reason,
	};
	int rc = d->store ? sw_store_audit_insert(d->store, id, &row)
		 : sw_error_setc(SW_EINVALID, "storage is not open");
	if (rc < 0)
		/* the log keeps what the table could not */
		log_error("audit.write_failed", "actor=%s kind=%s client=%s action=%s target=%s "
			  "outcome=%s reason=%s err=%s", sw_q(a->name), sw_actor_kind_str(a->kind),
			  sw_q(a->client), sw_q(action), sw_q(target), sw_q(outcome), sw_q(reason),
			  sw_q(sw_error_last()));
	return rc;
}

int sw_audit_record(struct sw_daemon *d, const struct sw_actor *a, const char *action,
		    const char *target, const char *outcome, const char *reason)
{
	return insert(d, a, action, target, outcome, reason, NULL);
}

int sw_audit_start(struct sw_daemon *d, const struct sw_actor *a, const char *action,
		   const char *target, int64_t *id)
{
	*id = 0;
	return insert(d, a, action, target, "started", NULL, id);
}

void sw_audit_finish(struct sw_daemon *d, int64_t id, const char *outcome, const char *reason)
{
	if (id <= 0 || !d->store)
		return;
	if (sw_store_audit_finish(d->store, id, outcome, reason) < 0)
		log_error("audit.write_failed", "row=%lld outcome=%s reason=%s err=%s", (long long)id,
			  sw_q(outcome), sw_q(reason), sw_q(sw_error_last()));
}
