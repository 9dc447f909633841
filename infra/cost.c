/*
 * cost.c - what a Terraform plan will cost a month: each planned resource
 * of a type AWS prices by the hour or the GB-month, priced before and
 * after with on-demand prices from the AWS Price List (through a price
 * function the caller gives: AWS itself behind a cache, or a table in
 * tests), and the section of the PR comment that shows it.
 *
 * A month is 730 hours, as AWS's own calculator counts. What cannot be
 * priced from the plan alone (usage, LCUs, data, IOPS) is not guessed: the
 * resource is listed as "not priced" with the reason, and a price that
 * could not be had makes the total a lower bound, said so.
 */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infra/infra-int.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/error.h"
#include "lib/log.h"
#include "storage/store.h"

#define HOURS_A_MONTH 730.0
#define MAX_FILTERS 8

/* One resource's price query being built. */
struct query {
	const char *service;
	struct sw_aws_price_filter f[MAX_FILTERS];
	size_t nf;
	double qty;          /* hours a month are added by the unit */
	char what[96];       /* "2 × m5.large" */
};

static void filter(struct query *q, const char *field, const char *value, const char *type)
{
	if (q->nf < MAX_FILTERS)
		q->f[q->nf++] = (struct sw_aws_price_filter){ field, value, type };
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static double num(json_t *o, const char *k, double dflt)
{
	json_t *v = json_object_get(o, k);
	return json_is_number(v) ? json_number_value(v) : dflt;
}

static const char *rds_engine(const char *e)
{
	static const char *const map[][2] = {
		{ "postgres", "PostgreSQL" }, { "mysql", "MySQL" }, { "mariadb", "MariaDB" },
		{ "aurora-postgresql", "Aurora PostgreSQL" }, { "aurora-mysql", "Aurora MySQL" },
		{ "oracle-se2", "Oracle" }, { "sqlserver-ex", "SQL Server" },
	};
	for (size_t i = 0; e && i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(e, map[i][0]))
			return map[i][1];
	return NULL;
}

/*
 * The queries pricing one state of a resource (`a`: its sizing attributes)
 * into q[0..*nq): 0, SW_ENOTFOUND with *why saying why it is not priced,
 * or 1 for a type this file does not price.
 */
static int queries(struct query *q, size_t *nq, const char *type, json_t *a, const char *region,
		   const char **why)
{
	struct query *x = &q[0];

	*nq = 0;
	*why = NULL;
	memset(q, 0, 2 * sizeof(*q));
	x->qty = 1;
	filter(x, "regionCode", region, NULL);
	if (!strcmp(type, "aws_instance") || !strcmp(type, "aws_eks_node_group")) {
		const char *it = str(a, "instance_type");
		if (!strcmp(type, "aws_eks_node_group")) {
			json_t *sc = json_array_get(json_object_get(a, "scaling_config"), 0);
			it = json_string_value(json_array_get(json_object_get(a, "instance_types"), 0));
			if (!it)
				it = "t3.medium";          /* EKS's default */
			if (str(a, "capacity_type") && !strcmp(str(a, "capacity_type"), "SPOT")) {
				*why = "spot capacity: its price moves";
				return SW_ENOTFOUND;
			}
			x->qty = num(sc, "desired_size", -1);
			if (x->qty < 0) {
				*why = "scaling_config.desired_size unknown until apply";
				return SW_ENOTFOUND;
			}
		}
		if (!it) {
			*why = "instance_type unknown until apply";
			return SW_ENOTFOUND;
		}
		const char *ten = str(a, "tenancy");
		x->service = "AmazonEC2";
		filter(x, "instanceType", it, NULL);
		filter(x, "operatingSystem", "Linux", NULL);
		filter(x, "tenancy", ten && !strcmp(ten, "dedicated") ? "Dedicated" : "Shared", NULL);
		filter(x, "preInstalledSw", "NA", NULL);
		filter(x, "capacitystatus", "Used", NULL);
		snprintf(x->what, sizeof(x->what), "%g × %s", x->qty, it);
	} else if (!strcmp(type, "aws_eks_cluster")) {
		x->service = "AmazonEKS";
		filter(x, "usagetype", "AmazonEKS-Hours:perCluster", "CONTAINS");
		snprintf(x->what, sizeof(x->what), "control plane");
	} else if (!strcmp(type, "aws_nat_gateway")) {
		x->service = "AmazonEC2";
		filter(x, "productFamily", "NAT Gateway", NULL);
		filter(x, "usagetype", "NatGateway-Hours", "CONTAINS");
		snprintf(x->what, sizeof(x->what), "hours (data processed not priced)");
	} else if (!strcmp(type, "aws_lb") || !strcmp(type, "aws_alb")) {
		const char *lt = str(a, "load_balancer_type");
		const char *fam = !lt || !strcmp(lt, "application") ? "Load Balancer-Application"
			: !strcmp(lt, "network") ? "Load Balancer-Network"
			: !strcmp(lt, "gateway") ? "Load Balancer-Gateway" : NULL;
		if (!fam) {
			*why = "unknown load_balancer_type";
			return SW_ENOTFOUND;
		}
		x->service = "AWSELB";
		filter(x, "productFamily", fam, NULL);
		filter(x, "usagetype", "LoadBalancerUsage", "CONTAINS");
		snprintf(x->what, sizeof(x->what), "%s, hours (LCUs not priced)", lt ? lt : "application");
	} else if (!strcmp(type, "aws_db_instance")) {
		const char *cls = str(a, "instance_class"), *eng = rds_engine(str(a, "engine"));
		json_t *maz = json_object_get(a, "multi_az");
		const char *dep = json_is_true(maz) ? "Multi-AZ" : "Single-AZ";
		if (!cls || !eng) {
			*why = !cls ? "instance_class unknown until apply" : "engine not priced";
			return SW_ENOTFOUND;
		}
		x->service = "AmazonRDS";
		filter(x, "instanceType", cls, NULL);
		filter(x, "databaseEngine", eng, NULL);
		filter(x, "deploymentOption", dep, NULL);
		snprintf(x->what, sizeof(x->what), "%s %s %s", cls, eng, dep);
		double gb = num(a, "allocated_storage", 0);
		const char *st = str(a, "storage_type");
		const char *vt = !st || !strcmp(st, "gp2") ? "General Purpose"
			: !strcmp(st, "gp3") ? "General Purpose-GP3" : NULL;
		if (gb > 0 && vt) {
			struct query *y = &q[1];
			y->service = "AmazonRDS";
			y->qty = gb;
			filter(y, "regionCode", region, NULL);
			filter(y, "productFamily", "Database Storage", NULL);
			filter(y, "volumeType", vt, NULL);
			filter(y, "deploymentOption", dep, NULL);
			snprintf(y->what, sizeof(y->what), "%g GB %s", gb, st ? st : "gp2");
			*nq = 2;
			return 0;
		}
	} else if (!strcmp(type, "aws_ebs_volume")) {
		const char *vt = str(a, "type");
		double gb = num(a, "size", -1);
		if (gb < 0) {
			*why = "size unknown until apply";
			return SW_ENOTFOUND;
		}
		x->service = "AmazonEC2";
		x->qty = gb;
		filter(x, "productFamily", "Storage", NULL);
		filter(x, "volumeApiName", vt ? vt : "gp3", NULL);
		snprintf(x->what, sizeof(x->what), "%g GB %s", gb, vt ? vt : "gp3");
	} else if (!strcmp(type, "aws_eip")) {
		x->service = "AmazonVPC";
		filter(x, "usagetype", "PublicIPv4:InUseAddress", "CONTAINS");
		snprintf(x->what, sizeof(x->what), "public IPv4 address");
	} else if (!strcmp(type, "aws_elasticache_cluster")) {
		const char *nt = str(a, "node_type"), *eng = str(a, "engine");
		if (!nt) {
			*why = "node_type unknown until apply";
			return SW_ENOTFOUND;
		}
		x->service = "AmazonElastiCache";
		x->qty = num(a, "num_cache_nodes", 1);
		filter(x, "instanceType", nt, NULL);
		filter(x, "cacheEngine", eng && !strcmp(eng, "memcached") ? "Memcached" : "Redis", NULL);
		snprintf(x->what, sizeof(x->what), "%g × %s", x->qty, nt);
	} else {
		return 1;        /* not a type priced here */
	}
	*nq = 1;
	return 0;
}

/* A month of `p` for `qty`: hours for hourly units, as is for monthly ones. */
static int monthly(double *out, const struct sw_aws_price *p, double qty)
{
	if (!strcmp(p->unit, "Hrs") || !strcmp(p->unit, "Hours") || !strcmp(p->unit, "hours") ||
	    !strcmp(p->unit, "Hour")) {
		*out = p->usd * qty * HOURS_A_MONTH;
		return 0;
	}
	if (!strcmp(p->unit, "GB-Mo") || !strcmp(p->unit, "GB-month")) {
		*out = p->usd * qty;
		return 0;
	}
	return sw_error_setc(SW_EINVALID, "priced per %s, not per hour or GB-month", p->unit);
}

/* One state (sizing JSON text) of a resource a month: 0, 1 (a type not
 * priced here), SW_ENOTFOUND with *why (not priced from a plan), or another
 * error (a price could not be had, in the slot). */
static int state_cost(double *usd, char *what, size_t whatsz, const char *type,
		      const char *sizing, const char *region, sw_tf_price_fn price, void *arg,
		      char *date, const char **why)
{
	struct query q[2];
	size_t nq;
	json_t *a = sizing ? json_loads(sizing, 0, NULL) : json_object();
	int rc = queries(q, &nq, type, a, region, why);

	*usd = 0;
	what[0] = '\0';
	for (size_t i = 0; rc == 0 && i < nq; i++) {
		struct sw_aws_price p;
		double m = 0;
		if ((rc = price(&p, q[i].service, q[i].f, q[i].nf, arg)) < 0)
			break;
		if ((rc = monthly(&m, &p, q[i].qty)) < 0)
			break;
		*usd += m;
		if (p.date[0] && (!date[0] || strcmp(p.date, date) < 0))
			snprintf(date, 16, "%s", p.date);
		snprintf(what + strlen(what), whatsz - strlen(what), "%s%s", i ? " + " : "", q[i].what);
	}
	json_decref(a);
	return rc;
}

void sw_tf_cost_release(struct sw_tf_cost *c)
{
	for (size_t i = 0; i < c->nlines; i++) {
		free(c->lines[i].address);
		free(c->lines[i].what);
		free(c->lines[i].note);
	}
	free(c->lines);
	memset(c, 0, sizeof(*c));
}

static int by_size(const void *x, const void *y)
{
	const struct sw_tf_cost_line *a = x, *b = y;
	int ua = a->note != NULL, ub = b->note != NULL;
	if (ua != ub)
		return ua - ub;          /* priced lines first */
	double da = fabs(a->after - a->before), db = fabs(b->after - b->before);
	return da < db ? 1 : da > db ? -1 : strcmp(a->address, b->address);
}

int sw_tf_cost(struct sw_tf_cost *out, const struct sw_tf_result *res, const char *region,
	       sw_tf_price_fn price, void *arg)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->region, sizeof(out->region), "%s", region ? region : "us-east-1");
	for (size_t i = 0; i < res->nchanges; i++) {
		const struct sw_tf_change *ch = &res->changes[i];
		struct sw_tf_cost_line l = { 0 };
		char wb[96], wa[96];
		const char *why = NULL;
		int creates = strstr(ch->actions, "create") != NULL;
		int deletes = strstr(ch->actions, "delete") != NULL;
		int rc = 0;

		if (!ch->type)
			continue;
		wb[0] = wa[0] = '\0';
		if (deletes || !creates)
			rc = state_cost(&l.before, wb, sizeof(wb), ch->type, ch->size_before,
					out->region, price, arg, out->date, &why);
		if (rc == 0 && (creates || !deletes))
			rc = state_cost(&l.after, wa, sizeof(wa), ch->type, ch->size_after,
					out->region, price, arg, out->date, &why);
		if (rc == 1 && strncmp(ch->type, "aws_", 4))
			continue;    /* another provider's */
		if (rc == 1)
			why = "not priced: free, or priced by use";
		l.address = sw_strdup(ch->address);
		l.what = sw_strdup(wa[0] ? wa : wb);
		if (rc != 0) {
			l.note = sw_strdup(why ? why : sw_error_last());
			l.before = l.after = 0;
			if (!why)
				out->unknown++;
		} else {
			out->delta += l.after - l.before;
			out->priced++;
		}
		out->lines = sw_realloc(out->lines, (out->nlines + 1) * sizeof(*out->lines));
		out->lines[out->nlines++] = l;
	}
	qsort(out->lines, out->nlines, sizeof(*out->lines), by_size);
	return 0;
}

/* "+$1,234.56" (sign only when `sign`). */
static void money(struct sw_buf *b, double usd, int sign)
{
	char digits[48];
	double a = fabs(usd);
	if (a < 0.005)
		a = 0, usd = 0;
	snprintf(digits, sizeof(digits), "%.2f", a);
	if (sign)
		sw_buf_adds(b, usd > 0 ? "+" : usd < 0 ? "−" : "±");
	sw_buf_addch(b, '$');
	size_t whole = strcspn(digits, ".");
	for (size_t i = 0; digits[i]; i++) {
		if (i && i < whole && (whole - i) % 3 == 0)
			sw_buf_addch(b, ',');
		sw_buf_addch(b, digits[i]);
	}
}

char *sw_tf_cost_markdown(const struct sw_tf_cost *c, const char *env, const char *why_not,
			  size_t max)
{
	struct sw_buf b = SW_BUF_INIT, row = SW_BUF_INIT;
	size_t i;

	if (max < 256)
		max = 256;
	sw_buf_adds(&b, "#### Cost: `");
	tf_add_clean(&b, env ? env : "?", env ? strlen(env) : 1, CL_CELL);
	sw_buf_adds(&b, "`");
	if (!c) {
		sw_buf_adds(&b, "\n\nNot shown: ");
		tf_add_clean(&b, why_not ? why_not : "no prices", why_not ? strlen(why_not) : 9,
			     CL_CELL);
		sw_buf_adds(&b, "\n");
		goto out;
	}
	sw_buf_addf(&b, " (%s)\n\n", c->region);
	if (!c->nlines) {
		sw_buf_adds(&b, "No priced resource changes.\n");
		goto out;
	}
	sw_buf_adds(&b, c->unknown ? "**at least " : "**");
	money(&b, c->delta, 1);
	sw_buf_adds(&b, " a month**, on demand");
	if (c->date[0])
		sw_buf_addf(&b, " (AWS Price List, prices of %s; 730 hours a month)", c->date);
	sw_buf_adds(&b, ".");
	if (c->unknown)
		sw_buf_addf(&b, " :warning: %zu price%s could not be had; see below.", c->unknown,
			    c->unknown == 1 ? "" : "s");
	sw_buf_adds(&b, "\n\n| resource | what | a month | change |\n| --- | --- | ---: | ---: |\n");
	for (i = 0; i < c->nlines; i++) {
		const struct sw_tf_cost_line *l = &c->lines[i];
		sw_buf_reset(&row);
		sw_buf_adds(&row, "| `");
		tf_add_clean(&row, l->address, strlen(l->address), CL_CELL);
		sw_buf_adds(&row, "` | ");
		if (l->note) {
			tf_add_clean(&row, l->note, strlen(l->note), CL_CELL);
			sw_buf_adds(&row, " | | |\n");
		} else {
			tf_add_clean(&row, l->what, strlen(l->what), CL_CELL);
			sw_buf_adds(&row, " | ");
			money(&row, l->after, 0);
			sw_buf_adds(&row, " | ");
			money(&row, l->after - l->before, 1);
			sw_buf_adds(&row, " |\n");
		}
		if (b.len + row.len + 64 > max)
			break;
		sw_buf_add(&b, row.ptr, row.len);
	}
	if (i < c->nlines)
		sw_buf_addf(&b, "\n…and %zu more.\n", c->nlines - i);
out:
	sw_buf_release(&row);
	return sw_buf_detach(&b, NULL);
}

/* ---- prices from AWS, kept in the store -------------------------------- */

#define PRICE_FRESH_MS (7LL * 86400 * 1000)    /* a price list changes monthly */
#define NONE_FRESH_MS (86400LL * 1000)         /* "no such product", asked again daily */
#define NO_CREDS_HOLD_MS (5LL * 60 * 1000)     /* the chain is not asked again sooner */
#define PRICE_TRIES 4

struct sw_tf_pricer {
	struct sw_aws_provider *creds;
	char *region;
	char *data_dir;
	pthread_mutex_t lock;
	int64_t no_creds_until;      /* mono-free: wall clock ms */
	char *no_creds_why;
};

int sw_tf_pricer_new(struct sw_tf_pricer **out, const struct sw_cfg_aws *cfg,
		     const char *data_dir)
{
	struct sw_tf_pricer *p = sw_calloc(1, sizeof(*p));
	struct sw_aws_chain_opts o = SW_AWS_CHAIN_OPTS_INIT;

	o.profile = cfg->profile;
	o.region = cfg->region;
	o.role_arn = cfg->role_arn;
	sw_aws_provider_new(&p->creds, &o);
	p->region = sw_aws_region(cfg->region, cfg->profile);
	p->data_dir = sw_strdup(data_dir);
	pthread_mutex_init(&p->lock, NULL);
	*out = p;
	return 0;
}

void sw_tf_pricer_free(struct sw_tf_pricer *p)
{
	if (!p)
		return;
	sw_aws_provider_free(p->creds);
	pthread_mutex_destroy(&p->lock);
	free(p->no_creds_why);
	free(p->region);
	free(p->data_dir);
	free(p);
}

const char *sw_tf_pricer_region(const struct sw_tf_pricer *p)
{
	return p->region;
}

struct asking {
	struct sw_tf_pricer *p;
	struct sw_store *st;         /* NULL: no cache */
	struct sw_aws_cred cred;
};

/* "price:SERVICE:field=value;..." in the order given (callers build
 * filters in a fixed order). */
static char *cache_key(const char *service, const struct sw_aws_price_filter *f, size_t nf)
{
	struct sw_buf b = SW_BUF_INIT;
	sw_buf_addf(&b, "price:%s:", service);
	for (size_t i = 0; i < nf; i++)
		sw_buf_addf(&b, "%s%s%s=%s", i ? ";" : "", f[i].field,
			    f[i].type ? "~" : "", f[i].value);
	return sw_buf_detach(&b, NULL);
}

static int cached(struct sw_aws_price *out, struct sw_store *st, const char *key)
{
	char *v = NULL;
	int rc = 1;
	if (!st || sw_store_kv_get(st, key, &v) < 0)
		return 1;
	json_t *j = json_loads(v, 0, NULL);
	int64_t at = json_integer_value(json_object_get(j, "fetched_ms"));
	const char *unit = json_string_value(json_object_get(j, "unit"));
	const char *date = json_string_value(json_object_get(j, "date"));
	json_t *usd = json_object_get(j, "usd");
	if (json_is_true(json_object_get(j, "none")) && sw_now_ms() - at < NONE_FRESH_MS) {
		rc = sw_error_setc(SW_ENOTFOUND, "no product matches (cached %s)", date ? date : "");
	} else if (json_is_number(usd) && unit && sw_now_ms() - at < PRICE_FRESH_MS) {
		out->usd = json_number_value(usd);
		snprintf(out->unit, sizeof(out->unit), "%s", unit);
		snprintf(out->date, sizeof(out->date), "%s", date ? date : "");
		out->products = 1;
		rc = 0;
	}
	json_decref(j);
	free(v);
	return rc;
}

static void keep(struct sw_store *st, const char *key, const struct sw_aws_price *p, int none)
{
	if (!st)
		return;
	json_t *j = none ? json_pack("{s:b, s:I}", "none", 1, "fetched_ms", (json_int_t)sw_now_ms())
		: json_pack("{s:f, s:s, s:s, s:I}", "usd", p->usd, "unit", p->unit, "date", p->date,
			    "fetched_ms", (json_int_t)sw_now_ms());
	char *v = json_dumps(j, JSON_COMPACT);
	if (sw_store_kv_set(st, key, v) < 0)
		log_warn("cost.cache", "key=%s err=%s", sw_q(key), sw_q(sw_error_last()));
	free(v);
	json_decref(j);
}

static int ask_aws(struct sw_aws_price *out, const char *service,
		   const struct sw_aws_price_filter *f, size_t nf, void *arg)
{
	struct asking *a = arg;
	char *key = cache_key(service, f, nf);
	int rc = cached(out, a->st, key);

	for (int i = 0; rc == 1 || (rc == SW_EAGAIN && i < PRICE_TRIES); i++) {
		if (rc == SW_EAGAIN)         /* throttled: back off, 0.25 s doubling */
			usleep((useconds_t)(250000u << (i - 1)));
		rc = sw_aws_price_get(out, &a->cred, service, f, nf, 10000);
		if (rc == 0)
			keep(a->st, key, out, 0);
		else if (rc == SW_ENOTFOUND)
			keep(a->st, key, NULL, 1);
	}
	free(key);
	return rc;
}

int sw_tf_price_plan(struct sw_tf_cost *out, struct sw_tf_pricer *p,
		     const struct sw_tf_result *res)
{
	struct asking a = { .p = p };
	int rc;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&p->lock);
	if (p->no_creds_why && sw_now_ms() < p->no_creds_until) {
		rc = sw_error_setc(SW_ENOTFOUND, "%s", p->no_creds_why);
		pthread_mutex_unlock(&p->lock);
		return rc;
	}
	pthread_mutex_unlock(&p->lock);
	if ((rc = sw_aws_provider_get(p->creds, &a.cred)) < 0) {
		char *why = sw_asprintf("no AWS credentials for prices: %s", sw_error_last());
		pthread_mutex_lock(&p->lock);
		free(p->no_creds_why);
		p->no_creds_why = sw_strdup(why);
		p->no_creds_until = sw_now_ms() + NO_CREDS_HOLD_MS;
		pthread_mutex_unlock(&p->lock);
		rc = sw_error_setc(rc, "%s", why);
		free(why);
		return rc;
	}
	if (sw_store_open(&a.st, p->data_dir) < 0) {
		log_warn("cost.cache", "err=%s", sw_q(sw_error_last()));
		a.st = NULL;
	}
	rc = sw_tf_cost(out, res, p->region, ask_aws, &a);
	sw_store_close(a.st);
	sw_aws_cred_release(&a.cred);
	return rc;
}
