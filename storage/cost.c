/*
 * cost.c - what each environment cost per day and service, as Cost
 * Explorer said (see store.h). Amounts are kept in micro-dollars: exact
 * integers, summed without drift.
 */
#include "storage/store-int.h"

#include <string.h>

#define T struct sw_store_cost
static const struct col cost_cols[] = {
	C_TEXT(T, env), C_TEXT(T, day), C_TEXT(T, service), C_I64(T, micro_usd),
	C_INT(T, estimated), C_I64(T, fetched_at),
};
#undef T
static const struct rowdef cost_def = ROWDEF(struct sw_store_cost, cost_cols);

int sw_store_cost_replace(struct sw_store *st, const char *env, const char *from,
			  const char *to, const struct sw_store_cost *v, size_t n,
			  int64_t fetched_at)
{
	int nested, rc;

	for (size_t i = 0; i < n; i++)
		if (!v[i].day || !v[i].service || strcmp(v[i].day, from) < 0 ||
		    strcmp(v[i].day, to) >= 0)
			return sw_error_setc(SW_EINVALID, "keep the cost of %s from %s to %s: "
					     "row %zu is of day %s", env, from, to, i,
					     v[i].day ? v[i].day : "(none)");
	rc = sw__atomic_begin(st, &nested);

	if (rc == 0)
		rc = sw__exec(st, NULL, "DELETE FROM cost_daily WHERE env = ? AND day >= ? "
			      "AND day < ?", "sss", env, from, to);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = sw__exec(st, NULL, "INSERT INTO cost_daily (env, day, service, micro_usd, "
			      "estimated, fetched_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (env, "
			      "day, service) DO UPDATE SET micro_usd = micro_usd + "
			      "excluded.micro_usd", "sssIiI", env, v[i].day, v[i].service,
			      v[i].micro_usd, v[i].estimated, fetched_at);
	rc = sw__atomic_end(st, nested, rc);
	return CTX(rc, "keep the cost of %s from %s to %s", env, from, to);
}

int sw_store_cost_list(struct sw_store *st, const char *env, const char *from, const char *to,
		       struct sw_store_cost_list *out)
{
	int rc = sw__list(st, &cost_def, &out->v, &out->n,
			  "SELECT env, day, service, micro_usd, estimated, fetched_at FROM "
			  "cost_daily WHERE env = ? AND day >= ? AND day < ? ORDER BY day, service",
			  "sss", env, from, to);
	return CTX(rc, "the cost of %s from %s to %s", env, from, to);
}

void sw_store_cost_list_release(struct sw_store_cost_list *l)
{
	sw__list_release(&cost_def, &l->v, &l->n);
}
