/*
 * checks.c - drift checks of the environments' Terraform root modules.
 *
 * Per environment with infra modules and a drift interval: a one-shot
 * timer; when it fires, the environment's last applied commit (kv
 * `infra:commit:ENV`, written by the infra stage, else the synced commit)
 * is checked out on a worker into DATA_DIR/terraform/drift-ENV, then each
 * root module gets sw_tf_drift(). Drift found -> drift events (api_version
 * "terraform", kind "resource" or "output", name = address, namespace = the
 * root module), a Slack message through the outbox and the environment's
 * infra_status "drift: N resources"; with heal auto an sw_tf_apply() follows
 * and the events are recorded as healed (or heal_failed); with heal report
 * they are recorded as reported, once: the same drift found again by later
 * checks (same commit, addresses, actions, attributes) is not recorded or
 * sent again until a check finds the module clean. The timer is armed
 * again when the check is over, so checks of one environment never overlap.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/pool.h"
#include "lib/strv.h"
#include "infra/infra.h"
#include "report/report.h"
#include "git/git.h"
#include "storage/store.h"

struct ienv {
	struct sw_infra *in;
	char *name;
	struct event *timer;
	int busy;                  /* checkout job or terraform op in flight */
	struct sw_tf_op *op;
	char *commit, *dir;
	char **modules;            /* copied at the start of a check */
	size_t idx;
	struct sw_tf_result *drift;   /* waiting for its heal */
	/* heal: report: what was last reported per root module ("module\n"
	 * then drift_key()), so a drift that stays is reported once, not at
	 * every check; forgotten when a check finds the module clean. */
	char **reported;
	size_t nreported;
};

struct sw_infra {
	struct sw_infra_opts o;    /* o.cfg follows sw_infra_reconfigure */
	struct ienv **envs;
	size_t n;
	int stopped;
};

static void arm(struct ienv *ev)
{
	struct sw_infra *in = ev->in;
	const struct sw_cfg_env *ce = sw_config_env(in->o.cfg, ev->name);
	if (in->stopped || ev->busy || !ce || !ce->infra.nmodules || ce->infra.drift_interval_s <= 0)
		return;
	struct timeval tv = { (time_t)ce->infra.drift_interval_s, 0 };
	evtimer_add(ev->timer, &tv);
}

static void set_status(struct ienv *ev, const char *st)
{
	struct sw_store_env_update u = SW_STORE_ENV_UPDATE_INIT;
	u.infra_status = st;
	if (sw_store_env_set(ev->in->o.store, ev->name, &u) < 0)
		log_error("infra.store", "env=%s err=%s", ev->name, sw_q(sw_error_last()));
}

static void check_end(struct ienv *ev)
{
	ev->busy = 0;
	ev->op = NULL;
	sw_strv_free(ev->modules);
	ev->modules = NULL;
	if (ev->drift) {
		sw_tf_result_free(ev->drift);
		ev->drift = NULL;
	}
	arm(ev);
}

/* --- recording ------------------------------------------------------------- */

/* "module\n" + the commit and every drifted address with its actions and attributes. */
static char *drift_key(const struct ienv *ev, const struct sw_tf_result *d)
{
	struct sw_buf b = SW_BUF_INIT;
	sw_buf_addf(&b, "%s\n%s", d->module, ev->commit ? ev->commit : "");
	for (size_t i = 0; i < d->ndrift + d->noutput_drift; i++) {
		int out = i >= d->ndrift;
		const struct sw_tf_change *ch = out ? &d->output_drift[i - d->ndrift] : &d->drift[i];
		sw_buf_addf(&b, "\n%s %s %s", out ? "output" : "resource", ch->address,
			    ch->actions ? ch->actions : "");
		for (char **a = ch->attrs; a && *a; a++)
			sw_buf_addf(&b, " %s", *a);
	}
	return sw_buf_detach(&b, NULL);
}

/* The slot of `module` in ev->reported, or NULL. */
static char **reported_slot(struct ienv *ev, const char *module)
{
	size_t n = strlen(module);
	for (size_t i = 0; i < ev->nreported; i++)
		if (!strncmp(ev->reported[i], module, n) && ev->reported[i][n] == '\n')
			return &ev->reported[i];
	return NULL;
}

/*
 * heal: report: remember `key` as reported for its module; returns 0 when
 * exactly this drift was reported before (nothing new to say). `key` is
 * taken. key NULL forgets the module (its check found no drift).
 */
static int remember_report(struct ienv *ev, const char *module, char *key)
{
	char **slot = reported_slot(ev, module);
	if (!key) {
		if (slot) {
			free(*slot);
			*slot = ev->reported[--ev->nreported];
		}
		return 1;
	}
	if (slot && !strcmp(*slot, key)) {
		free(key);
		return 0;
	}
	if (!slot) {
		ev->reported = sw_realloc(ev->reported, (ev->nreported + 1) * sizeof(char *));
		slot = &ev->reported[ev->nreported++];
		*slot = NULL;
	}
	free(*slot);
	*slot = key;
	return 1;
}

static void record(struct ienv *ev, const struct sw_tf_result *d, enum sw_drift_action action,
		   const char *heal_error)
{
	struct sw_infra *in = ev->in;
	struct sw_store *st = in->o.store;
	const struct sw_config *c = in->o.cfg;
	const struct sw_cfg_env *ce = sw_config_env(c, ev->name);
	size_t n = d->ndrift + d->noutput_drift;
	int64_t first = 0;
	struct sw_buf names = SW_BUF_INIT, note = SW_BUF_INIT;

	for (size_t i = 0; i < n; i++) {
		int out = i >= d->ndrift;
		const struct sw_tf_change *ch = out ? &d->output_drift[i - d->ndrift] : &d->drift[i];
		json_t *f = json_array();
		for (char **a = ch->attrs; a && *a; a++)
			json_array_append_new(f, json_string(*a));
		char *fields = json_dumps(f, JSON_COMPACT);
		json_decref(f);
		char *msg = action == SW_DRIFT_HEALED ? sw_asprintf("changed outside Terraform; applied again")
			    : action == SW_DRIFT_HEAL_FAILED ? sw_asprintf("changed outside Terraform; the apply failed: %s", heal_error ? heal_error : "error")
			    : sw_asprintf("changed outside Terraform (%s); reported only", ch->actions ? ch->actions : "update");
		struct sw_store_drift_in di = {
			.environment = ev->name,
			.ref = { .api_version = "terraform", .kind = out ? "output" : "resource",
				 .namespace = d->module, .name = ch->address },
			.fields = fields,
			.manager = "outside terraform",
			.action = action,
			.message = msg,
		};
		int64_t id = 0;
		if (sw_store_drift_insert(st, &id, &di) < 0)
			log_error("infra.drift_store", "env=%s err=%s", ev->name, sw_q(sw_error_last()));
		if (!first)
			first = id;
		if (i < 10)
			sw_buf_addf(&names, "%s%s%s", i ? ", " : "", out ? "output " : "", ch->address);
		else if (i == 10)
			sw_buf_adds(&names, ", ...");
		log_info("infra.drift", "env=%s module=%s %s=%s action=%s", ev->name, d->module,
			 out ? "output" : "resource", ch->address, sw_store_drift_action_str(action));
		free(fields);
		free(msg);
	}
	char *status = sw_asprintf("drift: %zu resource%s%s in %s at %.7s", n, n == 1 ? "" : "s",
				   action == SW_DRIFT_HEALED ? ", healed" :
				   action == SW_DRIFT_HEAL_FAILED ? ", heal failed" : "",
				   d->module, ev->commit);
	set_status(ev, status);
	free(status);

	struct sw_outbox *ob = in->o.outbox;
	if (ob && (c->slack_webhook_url.value || c->slack_bot_token.value)) {
		char key[96];
		struct sw_report_run rr = {
			.kind = "drift", .repo = ce && ce->repo ? ce->repo : "", .environment = ev->name,
			.status = action == SW_DRIFT_HEALED ? "success" : "failure",
			.commit = ev->commit, .public_url = c->public_url,
		};
		sw_buf_addf(&note, "Terraform %s: %s changed outside Terraform (%s)%s", d->module,
			    names.ptr ? names.ptr : "", action == SW_DRIFT_HEALED ? "applied again" :
			    action == SW_DRIFT_HEAL_FAILED ? "the apply failed" : "reported only",
			    d->ndestructive ? "; the plan now would destroy something" : "");
		json_t *m = sw_report_slack(&rr, SW_REPORT_DRIFT, note.ptr);
		snprintf(key, sizeof(key), "tfdrift:%lld", (long long)first);
		if (sw_outbox_slack(st, ce ? ce->slack_channel : NULL, key, m) == 0)
			sw_outbox_kick(ob);
		json_decref(m);
	}
	sw_buf_release(&names);
	sw_buf_release(&note);
}

/* --- the check ------------------------------------------------------------- */

static void drift_next(struct ienv *ev);

static void tf_log(int stream, const char *p, size_t n, void *arg)
{
	(void)stream; (void)p; (void)n; (void)arg;   /* the result carries the errors */
}

static void heal_done(struct sw_tf_result *res, void *arg)
{
	struct ienv *ev = arg;
	ev->op = NULL;
	if (res->status == SW_ECANCELLED) {
		sw_tf_result_free(res);
		check_end(ev);
		return;
	}
	record(ev, ev->drift, res->status == 0 ? SW_DRIFT_HEALED : SW_DRIFT_HEAL_FAILED, res->error);
	sw_tf_result_free(ev->drift);
	ev->drift = NULL;
	sw_tf_result_free(res);
	ev->idx++;
	drift_next(ev);
}

static struct sw_tf_req make_req(struct ienv *ev, const struct sw_cfg_env *ce, const char *module)
{
	struct sw_tf_req q = SW_TF_REQ_INIT;
	q.env = ev->name;
	q.checkout = ev->dir;
	q.module = module;
	q.infra = &ce->infra;
	q.label = "drift";
	q.on_output = tf_log;
	q.arg = ev;
	return q;
}

static void drift_done(struct sw_tf_result *res, void *arg)
{
	struct ienv *ev = arg;
	const struct sw_cfg_env *ce = sw_config_env(ev->in->o.cfg, ev->name);

	ev->op = NULL;
	if (res->status == SW_ECANCELLED || ev->in->stopped || !ce) {
		sw_tf_result_free(res);
		check_end(ev);
		return;
	}
	if (res->status < 0) {
		char *st = sw_asprintf("drift check failed: %s", res->error);
		if (strlen(st) > 500)
			strcpy(st + 497, "...");
		log_warn("infra.drift_failed", "env=%s err=%s", ev->name, sw_q(res->error));
		set_status(ev, st);
		free(st);
	} else if (res->drifted) {
		if (ce->infra.heal == SW_HEAL_AUTO) {
			struct sw_tf_req q = make_req(ev, ce, res->module);
			ev->drift = res;
			if (sw_tf_apply(ev->in->o.tf, &q, heal_done, ev, &ev->op) == 0)
				return;
			record(ev, res, SW_DRIFT_HEAL_FAILED, sw_error_last());
			ev->drift = NULL;
		} else if (remember_report(ev, res->module, drift_key(ev, res))) {
			record(ev, res, SW_DRIFT_REPORTED, NULL);
		} else {
			log_info("infra.drift_unchanged", "env=%s module=%s commit=%.12s",
				 ev->name, res->module, ev->commit);
		}
	} else {
		struct sw_store_env cur;
		remember_report(ev, res->module, NULL);
		log_info("infra.no_drift", "env=%s module=%s commit=%.12s", ev->name, res->module,
			 ev->commit);
		if (sw_store_env_get(ev->in->o.store, ev->name, &cur) == 0) {
			if (cur.infra_status && !strncmp(cur.infra_status, "drift", 5)) {
				char *st = sw_asprintf("no drift at %.7s", ev->commit);
				set_status(ev, st);
				free(st);
			}
			sw_store_env_release(&cur);
		}
	}
	sw_tf_result_free(res);
	ev->idx++;
	drift_next(ev);
}

static void drift_next(struct ienv *ev)
{
	const struct sw_cfg_env *ce = sw_config_env(ev->in->o.cfg, ev->name);
	const char *module = ev->modules ? ev->modules[ev->idx] : NULL;
	if (!module || !ce || ev->in->stopped) {
		check_end(ev);
		return;
	}
	struct sw_tf_req q = make_req(ev, ce, module);
	if (sw_tf_drift(ev->in->o.tf, &q, drift_done, ev, &ev->op) < 0) {
		log_warn("infra.drift_failed", "env=%s module=%s err=%s", ev->name, module,
			 sw_q(sw_error_last()));
		ev->idx++;
		drift_next(ev);
	}
}

struct job {
	struct ienv *ev;
	char *data_dir, *commit, *dir;
	struct sw_source_remote remote;
	int rc;
	char *error;
};

static void job_free(struct job *j)
{
	free(j->data_dir);
	sw_source_remote_release(&j->remote);
	free(j->commit);
	free(j->dir);
	free(j->error);
	free(j);
}

static void checkout_work(void *arg)
{
	struct job *j = arg;
	char *root = sw_asprintf("%s/terraform", j->data_dir);
	mkdir(root, 0700);
	free(root);
	sw_workspace_remove(j->dir);
	/* the applied commit came from the mirror: fetch only when it is gone */
	j->rc = sw_source_checkout(j->data_dir, j->remote.name, j->commit, j->dir);
	if (j->rc == SW_ENOTFOUND) {
		sw_workspace_remove(j->dir);
		if ((j->rc = sw_source_fetch(&j->remote.repo, j->data_dir, j->commit)) == 0)
			j->rc = sw_source_checkout(j->data_dir, j->remote.name, j->commit, j->dir);
	}
	if (j->rc < 0)
		j->error = sw_strdup(sw_error_last());
}

static void checkout_done(void *arg)
{
	struct job *j = arg;
	struct ienv *ev = j->ev;
	if (j->rc < 0 || ev->in->stopped) {
		if (j->rc < 0)
			log_warn("infra.drift_checkout", "env=%s commit=%.12s err=%s", ev->name,
				 j->commit, sw_q(j->error));
		job_free(j);
		check_end(ev);
		return;
	}
	job_free(j);
	ev->idx = 0;
	drift_next(ev);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct ienv *ev = arg;
	struct sw_infra *in = ev->in;
	const struct sw_config *c = in->o.cfg;
	const struct sw_cfg_env *ce = sw_config_env(c, ev->name);
	const struct sw_cfg_repo *repo = ce && ce->repo ? sw_config_repo(c, ce->repo) : NULL;
	char *commit = NULL;
	(void)fd; (void)what;

	if (in->stopped || ev->busy || !ce || !ce->infra.nmodules || !repo)
		return;
	char *key = sw_asprintf("infra:commit:%s", ev->name);
	if (sw_store_kv_get(in->o.store, key, &commit) < 0) {
		struct sw_store_env cur;
		commit = NULL;
		if (sw_store_env_get(in->o.store, ev->name, &cur) == 0) {
			if (cur.synced_commit && *cur.synced_commit)
				commit = sw_strdup(cur.synced_commit);
			sw_store_env_release(&cur);
		}
	}
	free(key);
	if (!commit) {   /* nothing applied yet */
		arm(ev);
		return;
	}
	free(ev->commit);
	ev->commit = commit;
	ev->modules = sw_calloc(ce->infra.nmodules + 1, sizeof(char *));
	for (size_t i = 0; i < ce->infra.nmodules; i++)
		ev->modules[i] = sw_strdup(ce->infra.modules[i]);
	struct job *j = sw_calloc(1, sizeof(*j));
	j->ev = ev;
	j->data_dir = sw_strdup(c->data_dir);
	sw_source_remote_copy(&j->remote, repo);
	j->commit = sw_strdup(commit);
	j->dir = sw_strdup(ev->dir);
	ev->busy = 1;
	log_info("infra.drift_check", "env=%s commit=%.12s", ev->name, commit);
	if (sw_pool_submit(in->o.pool, checkout_work, checkout_done, j) < 0) {
		job_free(j);
		check_end(ev);
	}
}

/* --- life cycle -------------------------------------------------------------- */

static void add_envs(struct sw_infra *in)
{
	const struct sw_config *c = in->o.cfg;
	for (size_t i = 0; i < c->nenvs; i++) {
		const struct sw_cfg_env *ce = &c->envs[i];
		struct ienv *ev = NULL;
		for (size_t k = 0; k < in->n; k++)
			if (!strcmp(in->envs[k]->name, ce->name))
				ev = in->envs[k];
		if (!ev) {
			if (!ce->infra.nmodules)
				continue;
			ev = sw_calloc(1, sizeof(*ev));
			ev->in = in;
			ev->name = sw_strdup(ce->name);
			ev->dir = sw_asprintf("%s/terraform/drift-%s", c->data_dir, ce->name);
			ev->timer = evtimer_new(in->o.base, on_timer, ev);
			in->envs = sw_realloc(in->envs, (in->n + 1) * sizeof(*in->envs));
			in->envs[in->n++] = ev;
		}
		if (!ev->busy) {
			evtimer_del(ev->timer);
			arm(ev);
		}
	}
}

int sw_infra_new(struct sw_infra **out, const struct sw_infra_opts *opts)
{
	struct sw_infra *in = sw_calloc(1, sizeof(*in));
	in->o = *opts;
	add_envs(in);
	*out = in;
	return 0;
}

void sw_infra_reconfigure(struct sw_infra *in, const struct sw_config *cfg)
{
	in->o.cfg = cfg;
	if (!in->stopped)
		add_envs(in);
}

void sw_infra_stop(struct sw_infra *in)
{
	in->stopped = 1;
	for (size_t i = 0; i < in->n; i++) {
		evtimer_del(in->envs[i]->timer);
		if (in->envs[i]->op)
			sw_tf_cancel(in->envs[i]->op);   /* reports, maybe from inside */
	}
}

int sw_infra_busy(const struct sw_infra *in)
{
	for (size_t i = 0; i < in->n; i++)
		if (in->envs[i]->busy)
			return 1;
	return 0;
}

void sw_infra_free(struct sw_infra *in)
{
	if (!in)
		return;
	for (size_t i = 0; i < in->n; i++) {
		struct ienv *ev = in->envs[i];
		event_free(ev->timer);
		free(ev->name);
		free(ev->commit);
		free(ev->dir);
		sw_strv_free(ev->modules);
		if (ev->drift)
			sw_tf_result_free(ev->drift);
		for (size_t k = 0; k < ev->nreported; k++)
			free(ev->reported[k]);
		free(ev->reported);
		free(ev);
	}
	free(in->envs);
	free(in);
}
