/*
 * poll.c - the fallback for a missed webhook: every repositories[].poll_interval,
 * fetch the repository's mirror and look at the heads of the branches its
 * environments track.
 *
 * Per repository with an interval: a one-shot timer. When it fires, a job
 * on a worker fetches the mirror (sw_source_fetch, which merges it with a
 * fetch of the same repository already running for a run) and resolves
 * refs/heads/BRANCH of each tracked branch, with the head commit's title and
 * author. Back on the loop each head goes to the engine's on_head callback, which
 * starts the run a push delivery would start unless the environment already
 * has a run at that commit or is synced to it. The timer is armed again when
 * the job is over, so polls of one repository never overlap; a failed fetch
 * (remote unreachable, bad credentials) is logged and tried again at the
 * next interval.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/buf.h"
#include "lib/log.h"
#include "lib/pool.h"
#include "pipeline/engine-int.h"
#include "pipeline/pipeline.h"
#include "git/git.h"

struct prepo {
	struct sw_poll *p;
	char *name;                /* repositories[].name */
	struct event *timer;
	int64_t interval_s;        /* the interval in force, 0 = off */
	int armed;                 /* the timer is pending */
	int busy;                  /* a poll job is on a worker */
};

struct sw_poll {
	const struct sw_engine_deps *d;   /* the engine's: cfg swapped on reload */
	sw_poll_head_fn on_head;
	void *arg;
	struct event_base *base;
	struct sw_pool *pool;
	struct prepo **repos;
	size_t n;
	int stopped;
};

/* One tracked branch: filled on the worker. */
struct head {
	char *branch;
	char sha[41];
	int rc;
	char *error;
	struct sw_source_commit info;
};

struct job {
	struct prepo *pr;
	char *data_dir;
	struct sw_source_remote remote;   /* copies: a reload may free the config */
	struct head *heads;
	size_t nheads;
	int rc;                           /* the fetch */
	char *error;
};

static const struct sw_cfg_repo *repo_cfg(const struct prepo *pr)
{
	return sw_config_repo(pr->p->d->cfg, pr->name);
}

/* The interval the config asks for now; 0 = off (or stopping). */
static int64_t interval(const struct prepo *pr)
{
	const struct sw_cfg_repo *r = repo_cfg(pr);
	return r && r->poll_interval_s > 0 && !pr->p->stopped ? r->poll_interval_s : 0;
}

/* Arm the timer for the next poll (unless a job is out: its end arms it). */
static void arm(struct prepo *pr)
{
	int64_t want = interval(pr);

	if (want != pr->interval_s) {
		if (want)
			log_info("poll.start", "repo=%s interval=%llds", pr->name, (long long)want);
		else if (!pr->p->stopped)
			log_info("poll.off", "repo=%s", pr->name);
		pr->interval_s = want;
	}
	pr->armed = 0;
	if (pr->busy || !want)
		return;
	struct timeval tv = { (time_t)want, 0 };
	evtimer_add(pr->timer, &tv);
	pr->armed = 1;
}

static void job_free(struct job *j)
{
	for (size_t i = 0; i < j->nheads; i++) {
		free(j->heads[i].branch);
		free(j->heads[i].error);
		sw_source_commit_release(&j->heads[i].info);
	}
	free(j->heads);
	free(j->data_dir);
	sw_source_remote_release(&j->remote);
	free(j->error);
	free(j);
}

/* --- the worker --------------------------------------------------------- */

static void poll_work(void *arg)
{
	struct job *j = arg;

	if ((j->rc = sw_source_fetch(&j->remote.repo, j->data_dir, NULL)) < 0) {
		j->error = sw_strdup(sw_error_last());
		return;
	}
	for (size_t i = 0; i < j->nheads; i++) {
		struct head *h = &j->heads[i];
		char *ref = sw_asprintf("refs/heads/%s", h->branch);
		h->rc = sw_source_resolve(h->sha, j->data_dir, j->remote.name, ref);
		if (h->rc == 0)
			h->rc = sw_source_commit_info(&h->info, j->data_dir, j->remote.name, h->sha);
		if (h->rc < 0)
			h->error = sw_strdup(sw_error_last());
		free(ref);
	}
}

/* --- back on the loop ----------------------------------------------------- */

static void poll_done(void *arg)
{
	struct job *j = arg;
	struct prepo *pr = j->pr;
	const struct sw_cfg_repo *r = repo_cfg(pr);
	struct sw_buf found = SW_BUF_INIT;
	size_t nfound = 0;

	pr->busy = 0;
	if (pr->p->stopped || !r)
		goto out;
	if (j->rc < 0) {
		log_warn("poll.failed", "repo=%s retry_in=%llds err=%s", pr->name,
			 (long long)r->poll_interval_s, sw_q(j->error));
		goto out;
	}
	for (size_t i = 0; i < j->nheads; i++) {
		struct head *h = &j->heads[i];
		int64_t run_id = 0;
		if (h->rc < 0) {
			log_warn("poll.branch_failed", "repo=%s branch=%s retry_in=%llds err=%s",
				 pr->name, h->branch, (long long)r->poll_interval_s, sw_q(h->error));
			continue;
		}
		if (pr->p->on_head(pr->p->arg, &run_id, r->name, h->branch, h->sha, &h->info) < 0) {
			log_error("poll.run_failed", "repo=%s branch=%s commit=%.12s err=%s", pr->name,
				  h->branch, h->sha, sw_q(sw_error_last()));
			continue;
		}
		if (run_id) {
			sw_buf_addf(&found, "%s%s@%.12s:run=%lld", nfound ? "," : "", h->branch, h->sha,
				    (long long)run_id);
			nfound++;
		}
	}
	if (nfound)
		log_info("poll.found", "repo=%s new=%zu heads=%s", pr->name, nfound, found.ptr);
	else
		log_debug("poll.nothing_new", "repo=%s branches=%zu", pr->name, j->nheads);
out:
	sw_buf_release(&found);
	job_free(j);
	arm(pr);
}

static int has_branch(const struct job *j, const char *branch)
{
	for (size_t i = 0; i < j->nheads; i++)
		if (!strcmp(j->heads[i].branch, branch))
			return 1;
	return 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct prepo *pr = arg;
	const struct sw_config *c = pr->p->d->cfg;
	const struct sw_cfg_repo *r = repo_cfg(pr);
	struct job *j;
	(void)fd; (void)what;

	pr->armed = 0;
	if (pr->busy)
		return;
	if (!interval(pr)) {   /* turned off or removed by a reload, or stopping */
		arm(pr);
		return;
	}
	j = sw_calloc(1, sizeof(*j));
	j->pr = pr;
	j->heads = sw_calloc(c->nenvs + 1, sizeof(*j->heads));
	for (size_t i = 0; i < c->nenvs; i++) {
		const struct sw_cfg_env *ce = &c->envs[i];
		if (ce->repo && ce->branch && !strcasecmp(ce->repo, r->name) && !has_branch(j, ce->branch))
			j->heads[j->nheads++].branch = sw_strdup(ce->branch);
	}
	if (!j->nheads) {   /* no environment tracks this repository */
		job_free(j);
		arm(pr);
		return;
	}
	j->data_dir = sw_strdup(c->data_dir);
	sw_source_remote_copy(&j->remote, r);
	pr->busy = 1;
	if (sw_pool_submit(pr->p->pool, poll_work, poll_done, j) < 0) {   /* shutting down */
		pr->busy = 0;
		job_free(j);
	}
}

/* --- life cycle ------------------------------------------------------------ */

/*
 * Add a poller for each repository with an interval, and re-arm those whose
 * interval changed (a reload that keeps it leaves the countdown alone, so
 * frequent reloads do not postpone polls for ever).
 */
static void add_repos(struct sw_poll *p)
{
	const struct sw_config *c = p->d->cfg;
	for (size_t i = 0; i < c->nrepos; i++) {
		const struct sw_cfg_repo *r = &c->repos[i];
		int known = 0;
		for (size_t k = 0; k < p->n && !known; k++)
			known = !strcasecmp(p->repos[k]->name, r->name);
		if (known || r->poll_interval_s <= 0)
			continue;
		struct prepo *pr = sw_calloc(1, sizeof(*pr));
		pr->p = p;
		pr->name = sw_strdup(r->name);
		pr->timer = evtimer_new(p->base, on_timer, pr);
		p->repos = sw_realloc(p->repos, (p->n + 1) * sizeof(*p->repos));
		p->repos[p->n++] = pr;
	}
	for (size_t k = 0; k < p->n; k++) {
		struct prepo *pr = p->repos[k];
		if (pr->busy || (pr->armed && pr->interval_s == interval(pr)))
			continue;   /* a busy poller re-arms itself when its job is done */
		evtimer_del(pr->timer);
		arm(pr);
	}
}

int sw_poll_new(struct sw_poll **out, const struct sw_engine_deps *d, sw_poll_head_fn on_head,
		void *arg)
{
	struct sw_poll *p = sw_calloc(1, sizeof(*p));
	p->d = d;
	p->on_head = on_head;
	p->arg = arg;
	p->base = d->base;
	p->pool = d->pool;
	add_repos(p);
	*out = p;
	return 0;
}

void sw_poll_reconfigure(struct sw_poll *p)
{
	if (!p->stopped)
		add_repos(p);
}

void sw_poll_stop(struct sw_poll *p)
{
	p->stopped = 1;
	for (size_t i = 0; i < p->n; i++) {
		evtimer_del(p->repos[i]->timer);
		p->repos[i]->armed = 0;
	}
}

int sw_poll_busy(const struct sw_poll *p)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->repos[i]->busy)
			return 1;
	return 0;
}

void sw_poll_free(struct sw_poll *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		event_free(p->repos[i]->timer);
		free(p->repos[i]->name);
		free(p->repos[i]);
	}
	free(p->repos);
	free(p);
}
