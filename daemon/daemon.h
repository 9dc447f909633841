/*
 * daemon.h - slipwayd: the event loop and what hangs off it.
 *
 * One struct sw_daemon owns the single event_base, the HTTP server, the
 * storage handle used on the loop, the worker pool for blocking work and the
 * libcurl multi client for outbound HTTP. Everything in daemon/ works on it;
 * subsystems below (pipeline, runners, manifests, webhooks, storage, lib)
 * never include this header.
 */
#ifndef SW_DAEMON_H
#define SW_DAEMON_H

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "config/config.h"
#include "lib/error.h"

struct sw_store;
struct sw_pool;
struct sw_http;
struct sw_hooks;
struct sw_engine;
struct sw_runner;
struct sw_outbox;
struct sw_github_app;
struct sw_proc_mgr;
struct sw_action;
struct sw_daemon;
struct sw_deployer;
struct sw_syncer;
struct sw_deploy_ops;
struct sw_retention;
struct sw_costs;
struct sw_tz;
struct sw_report_cost;
struct sw_conns;
struct sw_limiter;

/*
 * Environment actions of the JSON API that another subsystem performs (the
 * sync engine, manifests/). Each member may be NULL: the API then answers
 * 501 saying the action is not available. daemon/api.c has already checked
 * the token, that `env` is a configured environment and (rollback) resolved
 * the revision. A function either
 *  - returns <0 with the error slot set: the API answers the error itself
 *    (SW_ENOTFOUND 404, SW_EINVALID 400, SW_EAGAIN/SW_EEXISTS 409, else
 *    500), and `a` must not be used; or
 *  - returns 0 and answers exactly once through sw_action_done() or
 *    sw_action_fail(), before returning or later from the loop thread
 *    (a diff may render on a worker first).
 */
struct sw_api_actions {
	/* Sync `env` to its branch now; answer e.g. 202 {"sync": ID}. */
	int (*sync)(struct sw_daemon *d, const char *env, struct sw_action *a);
	/* Roll `env` back to `commit`; `sync_id` > 0 when the user named a sync
	 * of the history instead of a commit. */
	int (*rollback)(struct sw_daemon *d, const char *env, const char *commit,
			int64_t sync_id, struct sw_action *a);
	/* What a sync would change; answer 200 with the body docs/api.md shows. */
	int (*diff)(struct sw_daemon *d, const char *env, struct sw_action *a);
	void *arg;   /* for the provider; the API never reads it */
};

/* Answer a pending action with `status` and `body` (stolen; NULL = {}). */
void sw_action_done(struct sw_action *a, int status, json_t *body);
/* Answer a pending action with an error: `rc` is a SW_E* code, `msg` the text. */
void sw_action_fail(struct sw_action *a, int rc, const char *msg);
/* Who asked for the action ("api_token", a token's or a user's name). */
const char *sw_action_by(const struct sw_action *a);

struct sw_daemon {
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *listener;
	struct sw_conns *conns;       /* per-connection limits (httpd/) */
	/* failed logins and bearer tokens per client (daemon/auth.c) */
	struct sw_limiter *login_fails, *token_fails;
	SSL_CTX *ssl;
	struct sw_config *cfg;        /* replaced as a whole on SIGHUP */
	char *cfg_path;
	struct sw_store *store;       /* the loop's connection */
	struct sw_pool *pool;         /* blocking work */
	struct sw_http *client;       /* outbound HTTP (curl multi) */
	struct sw_proc_mgr *procs;    /* child processes */
	struct sw_runner *runner;     /* runs pipeline steps */
	/* Terraform's runner when it is not `runner`'s kind: docker for
	 * terraform.image, else local (the host's terraform) */
	struct sw_runner *tf_runner;
	struct sw_outbox *outbox;     /* sends GitHub and Slack notifications */
	struct sw_github_app *github; /* github.app's tokens, for the outbox and git */
	struct sw_engine *engine;     /* the pipeline engine */
	struct sw_hooks *hooks;       /* webhook receiver */
	struct sw_deployer *deployer; /* clusters: sync and drift per environment */
	struct sw_api_actions actions;/* sync, rollback, diff (NULL: 501) */
	struct event *sig_term, *sig_int, *sig_hup;
	struct event *stop_timer;     /* polls for in-flight work while stopping */
	struct event *trim_timer;     /* hands freed heap back to the system */
	struct event *sweep_timer;    /* the second leftover-container sweep */
	struct sw_retention *retention; /* removes old rows (daemon/retention.c) */
	struct sw_costs *costs;       /* what the environments cost (daemon/cost.c) */
	struct sw_runner *sweep_runner;  /* a docker runner (borrowed), or NULL */
	int stopping;
	int exit_code;
	int64_t started_ms;
};

/*
 * Load the config, bind the listener, open storage, start the pool and the
 * HTTP client. On failure returns <0 with one clear line in the error slot,
 * and nothing is left running (or half-written on disk).
 */
int sw_daemon_new(struct sw_daemon **out, const char *cfg_path);

/* Run the loop until SIGTERM/SIGINT; returns the process exit code. */
int sw_daemon_run(struct sw_daemon *d);

void sw_daemon_free(struct sw_daemon *d);

/* Re-read the config file; keep the old one (and log why) when invalid. */
int sw_daemon_reload(struct sw_daemon *d);

/* --- the API's sync, rollback and diff actions (daemon/actions.c) -------- */

/* Provide them (d->actions); they use d->deployer and d->engine. */
void sw_actions_install(struct sw_daemon *d);

/* --- retention (daemon/retention.c) ------------------------------------- */

/*
 * Every retention.interval (first after at most 30 s) remove old rows on a
 * pool worker with its own storage handle, and give the space back.
 */
int sw_retention_new(struct sw_retention **out, struct sw_daemon *d);
/* While stopping: no new pass; a running one stops after its batch. */
void sw_retention_stop(struct sw_retention *rt);
/* After the pool is freed (its done callback uses `rt`). NULL is a no-op. */
void sw_retention_free(struct sw_retention *rt);

/* --- cost (daemon/cost.c) ----------------------------------------------- */

/*
 * With a cost: block, once a UTC day per environment ask Cost Explorer for
 * its daily figures (first at start), keep them, and send the Slack report
 * at cost.at (docs/aws.md "What the environments cost").
 */
int sw_costs_new(struct sw_costs **out, struct sw_daemon *d);
void sw_costs_stop(struct sw_costs *c);
void sw_costs_free(struct sw_costs *c);   /* after the pool: no job in flight */
/* `env`'s summary for the page (NULL: off or nothing known yet); loop thread. */
const struct sw_report_cost *sw_costs_get(const struct sw_costs *c, const char *env);
/* Each service's figure of yesterday (UTC) for `env`. */
void sw_costs_yesterday(const struct sw_costs *c, const char *env,
			void (*each)(const char *service, int64_t micro_usd, void *arg), void *arg);
/* The report's slot at `now_s`: the local date ("YYYY-MM-DD") of the latest
 * scheduled moment at or before it (cost.report, .day, .at in `tz`); 0 when
 * reports are off. Pure. */
int sw_cost_slot(char out[11], int64_t now_s, const struct sw_tz *tz, int report, int weekday,
		 int at_min);

/* --- backup (daemon/backup.c) ------------------------------------------- */

/* POST /api/v1/backup (api_token): the database as one SQLite file. */
void sw_backup_post(struct sw_daemon *d, struct evhttp_request *req, const char *rest);

/* --- webhooks (daemon/hooks.c) ------------------------------------------ */

int sw_hooks_new(struct sw_hooks **out, struct sw_daemon *d);
/* Flushes (commits and answers) what is pending, then frees. */
void sw_hooks_free(struct sw_hooks *h);
/* The POST /hooks/github handler. */
void sw_hooks_github(struct sw_daemon *d, struct evhttp_request *req);

/* --- HTTP (daemon/http.c) ------------------------------------------------ */

/*
 * A route: `path` is exact, or a prefix when it ends in '/' (the handler
 * gets the rest of the path, e.g. "12/logs" for "/api/v1/runs/" +
 * "12/logs"). Each feature keeps its own table, ended by a zero entry:
 * daemon/api.c (the JSON API), daemon/page.c (the status page and
 * /metrics); http.c tries them in that order after its own.
 */
typedef void (*sw_route_fn)(struct sw_daemon *d, struct evhttp_request *req, const char *rest);
struct sw_route {
	enum evhttp_cmd_type method;
	const char *path;
	sw_route_fn fn;
};
extern const struct sw_route sw_api_routes[];
extern const struct sw_route sw_page_routes[];

/* Install the router as the evhttp generic callback. */
void sw_http_routes_install(struct sw_daemon *d);

/* Reply helpers: JSON body with Content-Type set; `j` is stolen. */
void sw_reply_json(struct evhttp_request *req, int code, json_t *j);
/* {"error": "..."} with the given status. */
void sw_reply_error(struct evhttp_request *req, int code, const char *fmt, ...) SW_PRINTF(3, 4);

#endif
