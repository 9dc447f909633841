/*
 * intake.c - where runs come from: webhook deliveries (parsed and mapped on
 * the loop, or on a worker when large), the poller's branch heads, the
 * API's submissions and retries, and after a crash the runs left running.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "git/git.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/pool.h"
#include "pipeline/run-int.h"
#include "webhooks/webhooks.h"

/* --- creating runs -------------------------------------------------------------- */

#define MAX_HEADS 16   /* environments one push starts at once */

int engine_queue_run(struct sw_engine *e, int64_t id)
{
	struct run *r = engine_run_load(e, id);
	if (!r)
		return SW_ERR;
	engine_supersede(e, r);
	engine_report_run(e, id, SW_NOTICE_QUEUED);
	engine_schedule(e);
	return 0;
}

/*
 * Store the run a RUN decision asks for, QUEUED; `delivery_id` 0 means the
 * poller found the commit. The webhook and the poller both come here, so a
 * polled commit gets exactly the run its push delivery would have.
 */
static int store_run(struct sw_store *st, int64_t *run_id, int64_t delivery_id,
		     const struct sw_webhook_decision *dec)
{
	struct sw_store_run_in in = {
		.delivery_id = delivery_id,
		.repo = dec->repo,
		.branch = dec->branch,
		.commit_sha = dec->commit,
		.pr_number = dec->pr_number,
		.pr_title = dec->title,
		.author = dec->author,
		.message = dec->message,
		.environment = dec->environment,
		.from_fork = dec->from_fork,
	};
	char *ref;
	int rc;

	if (!strcmp(dec->kind, "pull_request")) {
		in.kind = SW_RUN_PULL_REQUEST;
		ref = sw_strdup(dec->base ? dec->base : "");  /* `when.branch` matches the base */
	} else {
		in.kind = SW_RUN_PUSH;
		ref = sw_asprintf("refs/heads/%s", dec->branch);
	}
	in.ref = ref;
	rc = sw_store_run_create(st, run_id, &in);
	free(ref);
	return rc;
}

/*
 * The run that already deploys a push decision's commit: the environment's
 * newest push or manual run, when it is at that commit; 0 when none.
 * `*polled` (may be NULL) is set when that run is one the poller started.
 */
static int64_t head_run(struct sw_engine *e, const struct sw_webhook_decision *dec, int *polled)
{
	struct sw_store_run r;
	int64_t id = 0;

	if (polled)
		*polled = 0;
	if (!dec->environment ||
	    sw_store_run_latest_head(e->d.store, dec->repo, dec->environment, &r) < 0)
		return 0;
	if (r.commit_sha && !strcasecmp(r.commit_sha, dec->commit)) {
		id = r.id;
		if (polled)
			*polled = r.kind == SW_RUN_PUSH && !r.delivery_id;
	}
	sw_store_run_release(&r);
	return id;
}

/*
 * The other environments a push of the decision's branch starts (parallel:
 * true ones; the decision holds the first): their runs, in the caller's
 * transaction, ids into `ids` (at most `max`). A head already at or deploying
 * the commit gets none.
 */
static size_t more_heads(struct sw_engine *e, const struct sw_webhook_decision *dec,
			 int64_t delivery_id, int64_t *ids, size_t max)
{
	const struct sw_config *c = e->d.cfg;
	size_t n = 0;
	if (strcmp(dec->kind, "push"))
		return 0;
	for (size_t i = 0; i < c->nenvs && n < max; i++) {
		const struct sw_cfg_env *env = &c->envs[i];
		struct sw_webhook_decision d = *dec;
		if (!env->repo || !env->branch || strcasecmp(env->repo, dec->repo) ||
		    strcmp(env->branch, dec->branch) || !strcmp(env->name, dec->environment) ||
		    sw_config_env_before(c, env))
			continue;
		d.environment = env->name;
		if (head_run(e, &d, NULL))
			continue;
		if (store_run(e->d.store, &ids[n], delivery_id, &d) == 0)
			n++;
	}
	return n;
}

/*
 * The queued or running run that already tests a pull request decision's
 * head commit, or 0: another delivery for the same head (reopened, a replay
 * with a different body) joins it instead of running the same head twice.
 */
static int64_t pr_head_run(struct sw_engine *e, const struct sw_webhook_decision *dec)
{
	char *repo = engine_lower(dec->repo);
	char *key = sw_asprintf("pr:%s#%lld", repo, (long long)dec->pr_number);
	int64_t id = 0;
	free(repo);
	for (struct run *r = e->runs; r && !id; r = r->next)
		if (!r->cancelled && !strcmp(r->key, key) && r->row.commit_sha &&
		    !strcasecmp(r->row.commit_sha, dec->commit))
			id = r->row.id;
	free(key);
	return id;
}

/*
 * Map a parsed delivery (parse_rc < 0: it did not parse, `parse_err` says
 * why) and record the outcome, with the action and repository the payload
 * names. Creates and queues the run it asks for, unless the poller already
 * started that run for this commit: then the delivery is recorded as mapped
 * to the poller's run.
 */
/*
 * A delivery whose outcome could not be written (the database was locked):
 * it stays QUEUED in storage and is mapped again once writes go through.
 */
static void remap_later(struct sw_engine *e, int64_t id)
{
	struct timeval tv = { 0, REMAP_MS * 1000 };
	for (size_t i = 0; i < e->nremap; i++)
		if (e->remap[i] == id)
			return;
	if (!e->nremap)
		e->remap_since = sw_now_ms();
	e->remap = sw_realloc(e->remap, (e->nremap + 1) * sizeof(*e->remap));
	e->remap[e->nremap++] = id;
	log_warn("delivery.delayed", "delivery=%lld err=%s", (long long)id, sw_q(sw_error_last()));
	evtimer_add(e->remap_timer, &tv);
}

/* The outcome of a delivery that did not map to a run; SW_EAGAIN when locked. */
static int resolve(struct sw_engine *e, int64_t id, const char *event, const struct sw_gh_event *ev,
		   enum sw_delivery_state state, const char *why)
{
	int rc = sw_store_delivery_resolve(e->d.store, id, ev->action, ev->repo, state, why, 0);
	if (rc == SW_EAGAIN)
		return rc;
	if (rc < 0)
		log_error("delivery.store", "delivery=%lld err=%s", (long long)id,
			  sw_q(sw_error_last()));
	if (e->d.on_delivery)
		e->d.on_delivery(event, sw_store_delivery_state_str(state));
	return 0;
}

static void map_delivery(struct sw_engine *e, int64_t id, const char *event,
			 struct sw_gh_event *evp, int parse_rc, const char *parse_err)
{
	struct sw_gh_event ev = *evp;
	struct sw_webhook_decision dec = SW_WEBHOOK_DECISION_INIT;
	struct sw_store *st = e->d.store;
	int64_t run_id = 0, more[MAX_HEADS];
	size_t nmore = 0;
	int polled = 0, joined = 0;

	*evp = (struct sw_gh_event)SW_GH_EVENT_INIT;   /* taken */
	if (parse_rc < 0) {
		log_warn("delivery.failed", "delivery=%lld err=%s", (long long)id, sw_q(parse_err));
		if (resolve(e, id, event, &ev, SW_DELIVERY_FAILED, parse_err) == SW_EAGAIN)
			remap_later(e, id);
		goto out;
	}
	if (sw_webhook_map(&dec, e->d.cfg, &ev) < 0) {
		char *why = sw_strdup(sw_error_last());
		if (resolve(e, id, event, &ev, SW_DELIVERY_FAILED, why) == SW_EAGAIN)
			remap_later(e, id);
		free(why);
		goto out;
	}
	if (dec.verdict != SW_WEBHOOK_RUN) {
		const char *why = dec.verdict == SW_WEBHOOK_PING ? "ping" : dec.reason;
		log_info("delivery.ignored", "delivery=%lld event=%s reason=%s", (long long)id, event,
			 sw_q(why));
		if (resolve(e, id, event, &ev, SW_DELIVERY_IGNORED, why) == SW_EAGAIN)
			remap_later(e, id);
		goto out;
	}
	{
		int own_txn = !sw_store_in_transaction(st);
		int rc = 0;
		char *why = NULL;
		/* the run and the delivery's outcome together, or neither */
		if (own_txn && sw_store_begin(st) < 0) {
			remap_later(e, id);
			goto out;
		}
		if (!strcmp(dec.kind, "push") && (run_id = head_run(e, &dec, &polled)) && polled) {
			why = sw_asprintf("commit %.12s was found by polling first: run %lld deploys it",
					  dec.commit, (long long)run_id);
		} else if (!strcmp(dec.kind, "pull_request") && (run_id = pr_head_run(e, &dec))) {
			joined = 1;
			why = sw_asprintf("run %lld already tests %.12s, the head of #%lld",
					  (long long)run_id, dec.commit, (long long)dec.pr_number);
		} else {
			rc = store_run(st, &run_id, id, &dec);
			if (rc == 0)
				nmore = more_heads(e, &dec, id, more, MAX_HEADS);
		}
		if (rc == 0)
			rc = sw_store_delivery_resolve(st, id, ev.action, ev.repo, SW_DELIVERY_MAPPED,
						       why, run_id);
		if (own_txn)
			rc = rc == 0 ? sw_store_commit(st) : (sw_store_rollback(st), rc);
		free(why);
		if (rc == SW_EAGAIN && own_txn) {
			remap_later(e, id);
			goto out;
		}
		if (rc < 0) {
			log_error("delivery.store", "delivery=%lld err=%s", (long long)id,
				  sw_q(sw_error_last()));
			goto out;
		}
	}
	if (e->d.on_delivery)
		e->d.on_delivery(event, "mapped");
	log_info("delivery.mapped", "delivery=%lld run=%lld kind=%s repo=%s commit=%.12s%s",
		 (long long)id, (long long)run_id, dec.kind, dec.repo, dec.commit,
		 polled ? " found_by=poll" : joined ? " joined=1" : "");
	if (!polled && !joined)
		engine_queue_run(e, run_id);
	for (size_t i = 0; i < nmore; i++)
		engine_queue_run(e, more[i]);
out:
	sw_webhook_decision_release(&dec);
	sw_gh_event_release(&ev);
}

void sw_engine_delivery(struct sw_engine *e, int64_t id, const char *event, const char *payload,
			size_t len)
{
	struct sw_gh_event ev = SW_GH_EVENT_INIT;
	int rc = sw_webhook_parse(&ev, event, payload, len);
	char *err = rc < 0 ? sw_strdup(sw_error_last()) : NULL;
	map_delivery(e, id, event, &ev, rc, err);
	free(err);
	sw_gh_event_release(&ev);
}

/* Map again the deliveries whose outcome a locked database refused. */
static void on_remap(evutil_socket_t fd, short what, void *arg)
{
	struct sw_engine *e = arg;
	int64_t *ids = e->remap;
	size_t n = e->nremap;

	if (sw_writeq_pending(e->wq)) {   /* still locked: wait for the queue */
		struct timeval tv = { 0, REMAP_MS * 1000 };
		evtimer_add(e->remap_timer, &tv);
		return;
	}
	e->remap = NULL;
	e->nremap = 0;
	for (size_t i = 0; i < n; i++) {
		struct sw_store_delivery d;
		int rc = sw_store_delivery_get(e->d.store, ids[i], &d);
		if (rc == 0 && d.state == SW_DELIVERY_QUEUED)
			sw_engine_delivery(e, d.id, d.event, d.body.ptr, d.body.len);
		else if (rc < 0)
			log_error("delivery.load", "delivery=%lld err=%s", (long long)ids[i],
				  sw_q(sw_error_last()));
		if (rc == 0)
			sw_store_delivery_release(&d);
	}
	free(ids);
}

/*
 * Deliveries arriving in bulk: the JSON is parsed on a worker (it is most of
 * the cost of a delivery), and the outcomes of one loop turn are written in
 * one transaction, committed by commit_ev at the end of the turn.
 */
struct parse_job {
	struct sw_engine *e;
	int64_t id;
	char *event;
	struct sw_buf payload;
	struct sw_gh_event ev;
	int rc;
	char *err;
};

static void parse_work(void *arg)
{
	struct parse_job *j = arg;
	j->rc = sw_webhook_parse(&j->ev, j->event, j->payload.ptr, j->payload.len);
	if (j->rc < 0)
		j->err = sw_strdup(sw_error_last());
}

static void parse_done(void *arg)
{
	struct parse_job *j = arg;
	struct sw_engine *e = j->e;

	if (!sw_store_in_transaction(e->d.store) && sw_store_begin(e->d.store) == 0)
		event_active(e->commit_ev, EV_TIMEOUT, 0);
	map_delivery(e, j->id, j->event, &j->ev, j->rc, j->err);
	sw_gh_event_release(&j->ev);
	sw_buf_release(&j->payload);
	free(j->event);
	free(j->err);
	free(j);
}

static void on_commit(evutil_socket_t fd, short what, void *arg)
{
	struct sw_engine *e = arg;
	if (sw_store_in_transaction(e->d.store) && sw_store_commit(e->d.store) < 0)
		log_error("delivery.commit", "err=%s", sw_q(sw_error_last()));
}

void sw_engine_delivery_async(struct sw_engine *e, int64_t id, const char *event,
			      struct sw_buf *payload)
{
	struct parse_job *j = sw_calloc(1, sizeof(*j));
	j->e = e;
	j->id = id;
	j->event = sw_strdup(event);
	j->payload = *payload;
	sw_buf_init(payload);
	j->ev = (struct sw_gh_event)SW_GH_EVENT_INIT;
	if (sw_pool_submit(e->d.pool, parse_work, parse_done, j) < 0) {
		/* shutting down: the delivery stays queued for the next start */
		sw_buf_release(&j->payload);
		free(j->event);
		free(j);
	}
}

/* The poller's sw_poll_head_fn (engine-int.h says what it does). */
static int poll_head(void *arg, int64_t *run_id, const char *repo, const char *branch,
		     const char *commit, const struct sw_source_commit *info)
{
	struct sw_engine *e = arg;
	struct sw_gh_event ev = SW_GH_EVENT_INIT;
	struct sw_webhook_decision dec = SW_WEBHOOK_DECISION_INIT;
	struct sw_store_env env;
	int rc, synced = 0;

	*run_id = 0;
	/* the push delivery GitHub would have sent, through the same mapping */
	ev.kind = SW_GH_PUSH;
	ev.event = sw_strdup("push");
	ev.repo = sw_strdup(repo);
	ev.push.ref = sw_asprintf("refs/heads/%s", branch);
	ev.push.branch = sw_strdup(branch);
	ev.push.after = sw_strdup(commit);
	ev.push.head_id = sw_strdup(commit);
	if (info) {
		ev.push.head_title = info->title ? sw_strdup(info->title) : NULL;
		ev.push.head_message = info->message ? sw_strdup(info->message) : NULL;
		ev.push.head_author = info->author ? sw_strdup(info->author) : NULL;
	}
	if ((rc = sw_webhook_map(&dec, e->d.cfg, &ev)) < 0 || dec.verdict != SW_WEBHOOK_RUN ||
	    strcmp(dec.kind, "push"))
		goto out;
	if (head_run(e, &dec, NULL))   /* a webhook, an earlier poll or a sync now */
		goto out;
	if (sw_store_env_get(e->d.store, dec.environment, &env) == 0) {
		synced = env.synced_commit && !strcasecmp(env.synced_commit, commit);
		sw_store_env_release(&env);
	}
	if (synced)
		goto out;
	if ((rc = store_run(e->d.store, run_id, 0, &dec)) == 0) {
		int64_t more[MAX_HEADS];
		size_t nmore = more_heads(e, &dec, 0, more, MAX_HEADS);
		rc = engine_queue_run(e, *run_id);
		for (size_t i = 0; i < nmore; i++)
			engine_queue_run(e, more[i]);
	}
out:
	sw_webhook_decision_release(&dec);
	sw_gh_event_release(&ev);
	return rc;
}

int sw_engine_submit(struct sw_engine *e, int64_t *run_id, const char *kind, const char *repo,
		     const char *branch, const char *commit, const char *environment,
		     const char *title)
{
	return sw_engine_submit_by(e, run_id, kind, repo, branch, commit, environment, title, NULL);
}

int sw_engine_submit_by(struct sw_engine *e, int64_t *run_id, const char *kind,
			const char *repo, const char *branch, const char *commit,
			const char *environment, const char *title, const char *by)
{
	struct sw_store_run_in in = { .repo = repo, .branch = branch, .commit_sha = commit,
				      .environment = environment, .pr_title = title,
				      .author = by };
	enum sw_run_kind k;
	if (sw_store_run_kind_parse(kind, &k) < 0)
		return sw_error_setc(SW_EINVALID, "unknown run kind %s", kind);
	in.kind = k;
	if (sw_store_run_create(e->d.store, run_id, &in) < 0)
		return SW_ERR;
	return engine_queue_run(e, *run_id);
}

int sw_engine_retry(struct sw_engine *e, int64_t run_id, int64_t *new_id)
{
	struct sw_store_run old;
	int rc;
	if ((rc = sw_store_run_get(e->d.store, run_id, &old)) < 0)
		return rc;
	if (!sw_store_status_is_final(old.status)) {
		sw_store_run_release(&old);
		return sw_error_setc(SW_EINVALID, "run %lld is still %s", (long long)run_id,
				     sw_store_status_str(old.status));
	}
	struct sw_store_run_in in = {
		.delivery_id = old.delivery_id, .kind = old.kind, .repo = old.repo, .ref = old.ref,
		.branch = old.branch, .commit_sha = old.commit_sha, .pr_number = old.pr_number,
		.pr_title = old.pr_title, .author = old.author, .message = old.message,
		.environment = old.environment, .attempt = old.attempt + 1,
		.from_fork = old.from_fork,
	};
	rc = sw_store_run_create(e->d.store, new_id, &in);
	sw_store_run_release(&old);
	return rc < 0 ? rc : engine_queue_run(e, *new_id);
}

/* --- recovery ---------------------------------------------------------------------- */

/* A failed recovery write: SW_EAGAIN (locked) aborts the run's recovery. */
#define RECOVER_TRY(call) do { int rc_ = (call); \
		if (rc_ == SW_EAGAIN) { rc = rc_; goto out; } \
		if (rc_ < 0) log_error("run.recover", "run=%lld err=%s", (long long)old->id, \
				       sw_q(sw_error_last())); } while (0)

/*
 * Recover one run that was RUNNING when the daemon stopped, inside the
 * caller's transaction: its stages, its retry (`*new_id`, 0 for none, for
 * the caller to queue once committed), its status and report. SW_EAGAIN
 * when the database is locked: the caller rolls it all back and retries.
 */
static int recover_running(struct sw_engine *e, struct sw_store_run *old, int64_t *new_id)
{
	struct sw_store *st = e->d.store;
	struct sw_store_stage_list stages = { 0 };
	char *where = NULL, *why = NULL, *v = NULL;
	char *pkey = engine_prep_key(PREPARING_KEY_FMT, old->id);
	char *ikey = engine_prep_key(PREP_INTERRUPTS_KEY_FMT, old->id);
	int interrupts = 0;   /* attempts that died preparing, this one included */
	int rc = 0;

	*new_id = 0;
	if (sw_store_kv_get(st, pkey, &v) == 0) {
		free(v);
		v = NULL;
		if (sw_store_kv_get(st, ikey, &v) == 0)
			interrupts = atoi(v);
		free(v);
		interrupts++;
	}
	if (sw_store_stages_list(st, old->id, &stages) == 0) {
		for (size_t i = 0; i < stages.n; i++) {
			struct sw_store_stage *s = &stages.v[i];
			if (s->status == SW_STATUS_RUNNING) {
				if (!where)
					where = sw_strdup(s->name);
				RECOVER_TRY(sw_store_stage_set_status(st, s->id, SW_STATUS_INTERRUPTED, -1,
					"slipwayd stopped or crashed while this stage ran"));
			} else if (s->status == SW_STATUS_QUEUED) {
				RECOVER_TRY(sw_store_stage_set_status(st, s->id, SW_STATUS_SKIPPED, -1,
					"the run was interrupted"));
			}
		}
	}
	if (interrupts >= MAX_PREP_INTERRUPTS) {
		/* not blindly again: what killed the daemon may be this run's
		 * input (a parser crash), and would kill every start */
		why = sw_strdup("slipwayd stopped twice while preparing this run; not retried");
		RECOVER_TRY(sw_store_run_set_status(st, old->id, SW_STATUS_ERROR, why));
		RECOVER_TRY(engine_prep_forget_store(st, old->id));
		RECOVER_TRY(sw_notify_run(&e->d, old->id, SW_NOTICE_END));
		log_error("run.recovered", "run=%lld status=error reason=%s", (long long)old->id,
			  sw_q(why));
		goto out;
	}
	if (old->attempt < SW_ENGINE_MAX_ATTEMPTS) {
		struct sw_store_run_in in = {
			.delivery_id = old->delivery_id, .kind = old->kind, .repo = old->repo,
			.ref = old->ref, .branch = old->branch, .commit_sha = old->commit_sha,
			.pr_number = old->pr_number, .pr_title = old->pr_title, .author = old->author,
			.message = old->message, .environment = old->environment,
			.attempt = old->attempt + 1, .from_fork = old->from_fork,
		};
		RECOVER_TRY(sw_store_run_create(st, new_id, &in));
	}
	if (*new_id && interrupts) {
		char *nkey = engine_prep_key(PREP_INTERRUPTS_KEY_FMT, *new_id), n[16];
		snprintf(n, sizeof(n), "%d", interrupts);
		rc = sw_store_kv_set(st, nkey, n);
		free(nkey);
		RECOVER_TRY(rc);
	}
	RECOVER_TRY(engine_prep_forget_store(st, old->id));
	if (*new_id)
		why = sw_asprintf("slipwayd stopped or crashed %s%s; retried as run %lld",
				  where ? "during stage " : "while preparing", where ? where : "",
				  (long long)*new_id);
	else
		why = sw_asprintf("slipwayd stopped or crashed %s%s; not retried after %d attempts",
				  where ? "during stage " : "while preparing", where ? where : "",
				  old->attempt);
	RECOVER_TRY(sw_store_run_set_status(st, old->id, SW_STATUS_INTERRUPTED, why));
	RECOVER_TRY(sw_notify_run(&e->d, old->id, SW_NOTICE_END));
	log_warn("run.recovered", "run=%lld reason=%s", (long long)old->id, sw_q(why));
	rc = 0;
out:
	if (rc < 0)
		*new_id = 0;
	sw_store_stage_list_release(&stages);
	free(pkey);
	free(ikey);
	free(where);
	free(why);
	return rc;
}
#undef RECOVER_TRY

/*
 * The runs that were RUNNING, each recovered in one transaction. When the
 * database is locked the rest waits for a timer (storage shows it as one
 * pending write); nothing of a run's recovery is half-written.
 */
static void recover_all_running(struct sw_engine *e)
{
	struct sw_store_run_list l = { 0 };
	struct sw_store *st = e->d.store;

	e->recover_later = 0;
	if (sw_store_runs_by_status(st, SW_STATUS_RUNNING, &l) < 0)
		return;
	for (size_t i = 0; i < l.n; i++) {
		int64_t new_id = 0;
		int rc;
		if (engine_run_find(e, l.v[i].id))   /* this process runs it */
			continue;
		if ((rc = sw_store_begin(st)) == 0) {
			rc = recover_running(e, &l.v[i], &new_id);
			rc = rc == 0 ? sw_store_commit(st) : rc;
			if (rc < 0)
				sw_store_rollback(st);
		}
		if (rc < 0) {
			struct timeval tv = { 0, REMAP_MS * 1000 };
			log_warn("run.recover_delayed", "run=%lld err=%s", (long long)l.v[i].id,
				 sw_q(sw_error_last()));
			if (!e->recover_since)
				e->recover_since = sw_now_ms();
			e->recover_later = 1;
			evtimer_add(e->recover_timer, &tv);
			break;
		}
		if (new_id)
			engine_queue_run(e, new_id);
	}
	if (!e->recover_later)
		e->recover_since = 0;
	sw_store_run_list_release(&l);
}

static void on_recover(evutil_socket_t fd, short what, void *arg)
{
	struct sw_engine *e = arg;
	if (e->stopping)   /* they stay RUNNING in storage for the next start */
		return;
	recover_all_running(e);
}

int sw_engine_recover(struct sw_engine *e)
{
	struct sw_store_run_list l = { 0 };
	struct sw_store_delivery_list dl = { 0 };

	recover_all_running(e);
	if (sw_store_runs_by_status(e->d.store, SW_STATUS_QUEUED, &l) == 0) {
		for (size_t i = 0; i < l.n; i++)
			if (!engine_run_find(e, l.v[i].id)) {
				log_info("run.requeued", "run=%lld", (long long)l.v[i].id);
				engine_queue_run(e, l.v[i].id);
			}
		sw_store_run_list_release(&l);
	}
	if (sw_store_deliveries_queued(e->d.store, &dl) == 0) {
		for (size_t i = 0; i < dl.n; i++) {
			log_info("delivery.recovered", "delivery=%lld guid=%s", (long long)dl.v[i].id,
				 dl.v[i].guid);
			sw_engine_delivery(e, dl.v[i].id, dl.v[i].event, dl.v[i].body.ptr,
					   dl.v[i].body.len);
		}
		sw_store_delivery_list_release(&dl);
	}
	return 0;
}

/* --- life cycle (called by engine.c) ------------------------------------------------ */

void engine_intake_new(struct sw_engine *e)
{
	e->commit_ev = event_new(e->d.base, -1, 0, on_commit, e);
	e->remap_timer = evtimer_new(e->d.base, on_remap, e);
	e->recover_timer = evtimer_new(e->d.base, on_recover, e);
	sw_poll_new(&e->poll, &e->d, poll_head, e);
}

void engine_intake_flush(struct sw_engine *e)
{
	if (e->commit_ev)
		on_commit(-1, 0, e);
}

void engine_intake_free(struct sw_engine *e)
{
	if (e->commit_ev)
		event_free(e->commit_ev);
	if (e->nremap)   /* still QUEUED in storage: the next start maps them */
		log_warn("delivery.delayed", "count=%zu reason=%s", e->nremap,
			 sw_q("stopped while the database was locked; the next start maps them"));
	free(e->remap);
	if (e->remap_timer)
		event_free(e->remap_timer);
	if (e->recover_timer)
		event_free(e->recover_timer);
	sw_poll_free(e->poll);
}
