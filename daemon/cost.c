/*
 * cost.c - what the environments cost: once a UTC day per environment, a
 * pool worker asks Cost Explorer (aws/ce.c) for its daily figures by
 * service, filtered by its cost-allocation tag, and keeps them in the
 * store (cost_daily); at the `cost.at` time of `cost.timezone`, daily or on
 * `cost.day`, it sends one Slack report of every environment through the
 * outbox (report/cost.c). The loop keeps each environment's summary for the
 * page and /metrics.
 *
 * Nothing is asked or sent twice: the day of the last fetch per
 * environment (kv "cost:fetched:ENV") and the slot of the last report (kv
 * "cost:report:last", written in the transaction that queues it) survive a
 * restart; a report missed while slipwayd was down goes out once, late.
 * Throttling is retried at once twice; a fetch that still fails keeps what
 * was there (the report says so) and is tried again after a back-off: a
 * minute doubling to an hour, or an hour for a refusal (AccessDenied, no
 * credentials).
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aws/aws.h"
#include "daemon/daemon.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/pool.h"
#include "lib/tz.h"
#include "report/report.h"
#include "storage/store.h"

#define CHECK_S 60                 /* how often the loop looks */
#define RETRY_MIN_MS (60LL * 1000)
#define RETRY_MAX_MS (3600LL * 1000)
#define CE_TIMEOUT_MS 30000
#define CE_TRIES 3                 /* 0.5 s, then 1 s apart */

struct cost_env {
	char *name;
	char fetched_day[11];        /* "" = not fetched this UTC day */
	int64_t retry_at_ms, backoff_ms;
	char *error;                 /* why the last fetch failed; NULL after a success */
	struct sw_store_cost_list rows;
	struct sw_report_cost sum;   /* over rows (services borrowed from them) */
};

struct job_env {
	char *name, *tag_value;
	int fetch;                   /* in: ask Cost Explorer */
	int rc, fetched;             /* out */
	char *error;
	struct sw_store_cost_list rows;
};

struct job {
	char *data_dir, *channel, *tag_key, *note_url;
	char today[11], from[11], slot[11];
	int report, weekly;          /* in: a report is due for `slot` */
	struct job_env *e;
	size_t n;
	struct sw_aws_provider *creds;
	int sent, already, rc;       /* out */
	char *err;
};

struct sw_costs {
	struct sw_daemon *d;
	struct event *timer;
	atomic_int stop;
	int busy;
	struct cost_env *envs;
	size_t nenvs;
	char last_report[11];        /* the slot last sent, once a job has read it */
	struct sw_aws_provider *creds;
	char *creds_sig;
	struct job *job;
};

/* ---- the schedule (pure) --------------------------------------------------- */

int sw_cost_slot(char out[11], int64_t now_s, const struct sw_tz *tz, int report, int weekday,
		 int at_min)
{
	struct tm tm;
	out[0] = 0;
	if (report != SW_COST_DAILY && report != SW_COST_WEEKLY)
		return 0;
	/* the latest scheduled moment at or before now, day by day back */
	for (int back = 0; back <= 7; back++) {
		int64_t t = now_s - (int64_t)back * 86400;
		sw_tz_local(tz, t, &tm);
		if (report == SW_COST_WEEKLY && tm.tm_wday != weekday)
			continue;
		if (back == 0 && tm.tm_hour * 60 + tm.tm_min < at_min)
			continue;
		snprintf(out, 11, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
		return 1;
	}
	return 0;
}

/* ---- on a worker ------------------------------------------------------------ */

static int fetch_env(struct sw_costs *c, struct sw_store *st, struct job *j, struct job_env *e)
{
	struct sw_aws_cred cred;
	struct sw_aws_costs got;
	struct sw_aws_cost_query q = { j->from, j->today, j->tag_key, e->tag_value };
	char *key = sw_asprintf("cost:fetched:%s", e->name), *was = NULL;
	int rc;

	if (sw_store_kv_get(st, key, &was) == 0 && !strcmp(was, j->today)) {
		free(was);
		free(key);
		return 0;             /* asked already today, before a restart */
	}
	free(was);
	if ((rc = sw_aws_provider_get(j->creds, &cred)) < 0) {
		free(key);
		sw_error_prefix("no AWS credentials for Cost Explorer");
		return rc;
	}
	/* throttled: tried again at once a few times, as the SDKs do */
	for (int i = 0; (rc = sw_aws_cost_get(&got, &cred, &q, CE_TIMEOUT_MS)) == SW_EAGAIN &&
	     i < CE_TRIES - 1 && !atomic_load(&c->stop); i++)
		usleep((useconds_t)(500000u << i));
	sw_aws_cred_release(&cred);
	if (rc == 0) {
		struct sw_store_cost *rows = sw_calloc(got.n + 1, sizeof(*rows));
		for (size_t i = 0; i < got.n; i++)
			rows[i] = (struct sw_store_cost){ .day = got.v[i].day,
				.service = got.v[i].service, .estimated = got.v[i].estimated,
				.micro_usd = (int64_t)llround(got.v[i].usd * 1e6) };
		if ((rc = sw_store_begin(st)) == 0 &&
		    (rc = sw_store_cost_replace(st, e->name, j->from, j->today, rows, got.n,
						sw_now_ms())) == 0 &&
		    (rc = sw_store_kv_set(st, key, j->today)) == 0)
			rc = sw_store_commit(st);
		if (rc < 0)
			sw_store_rollback(st);
		e->fetched = rc == 0;
		free(rows);
		sw_aws_costs_release(&got);
	}
	free(key);
	return rc;
}

static void send_report(struct sw_store *st, struct job *j)
{
	struct sw_report_cost *sums = sw_calloc(j->n + 1, sizeof(*sums));
	char *last = NULL;
	int rc;

	if (sw_store_kv_get(st, "cost:report:last", &last) == 0 && !strcmp(last, j->slot)) {
		j->already = 1;
		free(last);
		free(sums);
		return;
	}
	free(last);
	for (size_t i = 0; i < j->n; i++) {
		sw_report_cost_sum(&sums[i], j->e[i].rows.v, j->e[i].rows.n, j->today);
		sums[i].env = j->e[i].name;
		sums[i].error = j->e[i].error;
	}
	char title[96];
	sw_report_cost_title(title, sizeof(title), j->slot, j->weekly);
	char *note = sw_asprintf("AWS Cost Explorer: unblended cost by the cost-allocation tag "
				 "%s, to the end of the day before %s (UTC); the last days are "
				 "estimates%s%s", j->tag_key, j->today,
				 j->note_url ? " \xc2\xb7 " : "", j->note_url ? j->note_url : "");
	json_t *msg = sw_report_cost_slack(sums, j->n, title, note);
	char *key = sw_asprintf("cost:%s", j->slot);
	if ((rc = sw_store_begin(st)) == 0 &&
	    (rc = sw_outbox_slack(st, j->channel, key, msg)) == 0 &&
	    (rc = sw_store_kv_set(st, "cost:report:last", j->slot)) == 0)
		rc = sw_store_commit(st);
	if (rc < 0) {
		sw_store_rollback(st);
		j->err = sw_strdup(sw_error_last());
	}
	j->sent = rc == 0;
	json_decref(msg);
	free(key);
	free(note);
	free(sums);
}

static void job_work(void *arg)
{
	struct sw_costs *c = arg;
	struct job *j = c->job;
	struct sw_store *st = NULL;

	if ((j->rc = sw_store_open(&st, j->data_dir)) < 0) {
		j->err = sw_strdup(sw_error_last());
		return;
	}
	for (size_t i = 0; i < j->n && !atomic_load(&c->stop); i++) {
		struct job_env *e = &j->e[i];
		if (e->fetch && (e->rc = fetch_env(c, st, j, e)) < 0)
			e->error = sw_strdup(sw_error_last());
		if (sw_store_cost_list(st, e->name, j->from, j->today, &e->rows) < 0 && !e->error)
			e->error = sw_strdup(sw_error_last());
	}
	if (j->report && !atomic_load(&c->stop))
		send_report(st, j);
	sw_store_close(st);
}

/* ---- on the loop ------------------------------------------------------------ */

static void env_clear(struct cost_env *e)
{
	free(e->name);
	free(e->error);
	sw_store_cost_list_release(&e->rows);
	memset(e, 0, sizeof(*e));
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->n; i++) {
		free(j->e[i].name);
		free(j->e[i].tag_value);
		free(j->e[i].error);
		sw_store_cost_list_release(&j->e[i].rows);
	}
	free(j->e);
	free(j->data_dir);
	free(j->channel);
	free(j->tag_key);
	free(j->note_url);
	free(j->err);
	free(j);
}

static struct cost_env *env_find(struct sw_costs *c, const char *name)
{
	for (size_t i = 0; i < c->nenvs; i++)
		if (!strcmp(c->envs[i].name, name))
			return &c->envs[i];
	return NULL;
}

/* The environments of the config, keeping what is known of those that stay. */
static void envs_follow(struct sw_costs *c, const struct sw_config *cfg)
{
	struct cost_env *v = sw_calloc(cfg->nenvs + 1, sizeof(*v));
	for (size_t i = 0; i < cfg->nenvs; i++) {
		struct cost_env *old = env_find(c, cfg->envs[i].name);
		if (old) {
			v[i] = *old;
			memset(old, 0, sizeof(*old));
		} else {
			v[i].name = sw_strdup(cfg->envs[i].name);
		}
	}
	for (size_t i = 0; i < c->nenvs; i++)
		if (c->envs[i].name)
			env_clear(&c->envs[i]);
	free(c->envs);
	c->envs = v;
	c->nenvs = cfg->nenvs;
}

/* The credentials for cfg's aws: settings: made, kept, or replaced. */
static void creds_follow(struct sw_costs *c, const struct sw_config *cfg)
{
	const struct sw_cfg_aws *a = &cfg->aws;
	char *sig = sw_asprintf("%s|%s|%s", a->region ? a->region : "",
				a->profile ? a->profile : "", a->role_arn ? a->role_arn : "");
	if (c->creds && strcmp(sig, c->creds_sig)) {
		sw_aws_provider_free(c->creds);
		c->creds = NULL;
	}
	if (!c->creds) {
		struct sw_aws_chain_opts o = SW_AWS_CHAIN_OPTS_INIT;
		o.profile = a->profile;
		o.region = a->region;
		o.role_arn = a->role_arn;
		sw_aws_provider_new(&c->creds, &o);
	}
	free(c->creds_sig);
	c->creds_sig = sig;
}

static void job_done(void *arg)
{
	struct sw_costs *c = arg;
	struct job *j = c->job;
	int64_t now = sw_now_ms();

	c->job = NULL;
	c->busy = 0;
	if (j->rc < 0)
		log_error("cost.failed", "err=%s", sw_q(j->err));
	for (size_t i = 0; i < j->n && j->rc == 0; i++) {
		struct job_env *je = &j->e[i];
		struct cost_env *e = env_find(c, je->name);
		if (!e)
			continue;         /* gone with a reload */
		sw_store_cost_list_release(&e->rows);
		e->rows = je->rows;
		memset(&je->rows, 0, sizeof(je->rows));
		if (je->fetch && je->rc == 0) {
			memcpy(e->fetched_day, j->today, sizeof(e->fetched_day));
			free(e->error);
			e->error = NULL;
			e->backoff_ms = 0;
			if (je->fetched)
				log_info("cost.fetched", "env=%s from=%s to=%s rows=%zu", sw_q(e->name),
					 j->from, j->today, e->rows.n);
		} else if (je->fetch) {
			int refused = je->rc != SW_EAGAIN && je->rc != SW_ERR;
			e->backoff_ms = refused ? RETRY_MAX_MS : e->backoff_ms ?
				(e->backoff_ms * 2 < RETRY_MAX_MS ? e->backoff_ms * 2 : RETRY_MAX_MS) :
				RETRY_MIN_MS;
			e->retry_at_ms = now + e->backoff_ms;
			free(e->error);
			e->error = sw_strdup(je->error ? je->error : "failed");
			log_warn("cost.fetch_failed", "env=%s retry_s=%lld err=%s", sw_q(e->name),
				 (long long)(e->backoff_ms / 1000), sw_q(e->error));
		}
		sw_report_cost_sum(&e->sum, e->rows.v, e->rows.n, j->today);
		e->sum.env = e->name;
		e->sum.error = e->error;
	}
	if (j->report) {
		if (j->sent || j->already)
			memcpy(c->last_report, j->slot, sizeof(c->last_report));
		if (j->sent) {
			log_info("cost.report", "slot=%s sent=1 envs=%zu", j->slot, j->n);
			sw_outbox_kick(c->d->outbox);
		} else if (j->already) {
			log_info("cost.report", "slot=%s sent=0 why=already-sent", j->slot);
		} else if (j->err) {
			log_error("cost.report_failed", "slot=%s err=%s", j->slot, sw_q(j->err));
		}
	}
	job_free(j);
}

static void tick(struct sw_costs *c)
{
	const struct sw_config *cfg = c->d->cfg;
	const struct sw_cfg_cost *k = &cfg->cost;
	int64_t now = sw_now_ms();
	char today[11], slot[11];
	struct sw_tz *tz = NULL;
	size_t nfetch = 0;

	if (c->busy || c->d->stopping || atomic_load(&c->stop) || !k->enabled)
		return;
	envs_follow(c, cfg);
	sw_report_utc_day(today, now / 1000);
	int due = sw_tz_load(&tz, k->timezone) == 0 &&
		  sw_cost_slot(slot, now / 1000, tz, k->report, k->weekday, k->at_min) &&
		  strcmp(slot, c->last_report);
	sw_tz_free(tz);
	for (size_t i = 0; i < c->nenvs; i++)
		if (strcmp(c->envs[i].fetched_day, today) && now >= c->envs[i].retry_at_ms)
			nfetch++;
	if (!due && !nfetch)
		return;
	creds_follow(c, cfg);

	struct job *j = sw_calloc(1, sizeof(*j));
	j->data_dir = sw_strdup(cfg->data_dir);
	j->channel = k->channel ? sw_strdup(k->channel) : NULL;
	j->tag_key = sw_strdup(k->tag);
	j->note_url = cfg->public_url ? sw_strdup(cfg->public_url) : NULL;
	j->creds = c->creds;
	memcpy(j->today, today, sizeof(j->today));
	sw_report_cost_window(j->from, today);
	if (due) {
		memcpy(j->slot, slot, sizeof(j->slot));
		j->report = 1;
		j->weekly = k->report == SW_COST_WEEKLY;
	}
	j->e = sw_calloc(c->nenvs + 1, sizeof(*j->e));
	j->n = c->nenvs;
	for (size_t i = 0; i < c->nenvs; i++) {
		const struct sw_cfg_env *ce = sw_config_env(cfg, c->envs[i].name);
		j->e[i].name = sw_strdup(c->envs[i].name);
		j->e[i].tag_value = sw_strdup(ce && ce->cost_tag ? ce->cost_tag : c->envs[i].name);
		j->e[i].fetch = strcmp(c->envs[i].fetched_day, today) && now >= c->envs[i].retry_at_ms;
		if (!j->e[i].fetch && c->envs[i].error)
			j->e[i].error = sw_strdup(c->envs[i].error);
	}
	c->job = j;
	c->busy = sw_pool_submit(c->d->pool, job_work, job_done, c) == 0;
	if (!c->busy) {
		c->job = NULL;
		job_free(j);
	}
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tick(arg);
}

int sw_costs_new(struct sw_costs **out, struct sw_daemon *d)
{
	struct sw_costs *c = sw_calloc(1, sizeof(*c));
	struct timeval now = { 0, 0 }, every = { CHECK_S, 0 };

	c->d = d;
	atomic_init(&c->stop, 0);
	c->timer = event_new(d->base, -1, EV_PERSIST, on_timer, c);
	if (!c->timer) {
		free(c);
		*out = NULL;
		return sw_error_set("cost: cannot create its timer");
	}
	event_add(c->timer, &every);
	event_base_once(d->base, -1, EV_TIMEOUT, on_timer, c, &now);
	*out = c;
	return 0;
}

void sw_costs_stop(struct sw_costs *c)
{
	if (!c)
		return;
	atomic_store(&c->stop, 1);
	event_del(c->timer);
}

void sw_costs_free(struct sw_costs *c)
{
	if (!c)
		return;
	event_free(c->timer);
	job_free(c->job);
	for (size_t i = 0; i < c->nenvs; i++)
		env_clear(&c->envs[i]);
	free(c->envs);
	sw_aws_provider_free(c->creds);
	free(c->creds_sig);
	free(c);
}

const struct sw_report_cost *sw_costs_get(const struct sw_costs *c, const char *env)
{
	if (!c || !c->d->cfg->cost.enabled)
		return NULL;
	for (size_t i = 0; i < c->nenvs; i++)
		if (!strcmp(c->envs[i].name, env))
			return c->envs[i].sum.env ? &c->envs[i].sum : NULL;
	return NULL;
}

void sw_costs_yesterday(const struct sw_costs *c, const char *env,
			void (*each)(const char *service, int64_t micro_usd, void *arg), void *arg)
{
	char day[11];
	if (!c)
		return;
	sw_report_utc_day(day, sw_now_ms() / 1000 - 86400);
	for (size_t i = 0; i < c->nenvs; i++) {
		if (strcmp(c->envs[i].name, env))
			continue;
		for (size_t k = 0; k < c->envs[i].rows.n; k++)
			if (!strcmp(c->envs[i].rows.v[k].day, day))
				each(c->envs[i].rows.v[k].service, c->envs[i].rows.v[k].micro_usd, arg);
	}
}
