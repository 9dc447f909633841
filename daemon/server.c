/*
 * server.c - slipwayd's life cycle: start (config, listener, storage, pool,
 * HTTP client), the loop, SIGHUP reload, and a clean stop on SIGTERM/SIGINT.
 *
 * Start-up order matters for "bad input loses nothing": the config is
 * checked first, the listener is bound before the database is touched (so a
 * port in use leaves no files behind), and storage is opened last.
 */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <event2/bufferevent_ssl.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "daemon/auth-int.h"
#include "httpd/httpd.h"
#include "daemon/audit-int.h"
#include "daemon/daemon.h"
#include "daemon/metrics-int.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/http.h"
#include "lib/log.h"
#include "lib/pool.h"
#include "lib/sdnotify.h"
#include "lib/proc.h"
#include "lib/version.h"
#include "deploy/deploy.h"
#include "git/git.h"
#include "github/github.h"
#include "infra/infra.h"
#include "report/report.h"
#include "pipeline/pipeline.h"
#include "runners/runner.h"
#include "storage/store.h"

#define WORKERS 4
#define LOOP_BUSY_TIMEOUT_MS 50         /* see sw_store_open_opts below */

static const char *ssl_error(void)
{
	static _Thread_local char buf[256];
	unsigned long e = ERR_get_error();
	if (!e)
		return "unknown TLS error";
	ERR_error_string_n(e, buf, sizeof(buf));
	return buf;
}

static int tls_setup(struct sw_daemon *d)
{
	const struct sw_config *c = d->cfg;
	if (!c->tls_cert)
		return 0;
	d->ssl = SSL_CTX_new(TLS_server_method());
	if (!d->ssl)
		return sw_error_set("TLS: %s", ssl_error());
	SSL_CTX_set_min_proto_version(d->ssl, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(d->ssl, c->tls_cert) != 1)
		return sw_error_set("TLS certificate %s: %s", c->tls_cert, ssl_error());
	if (SSL_CTX_use_PrivateKey_file(d->ssl, c->tls_key, SSL_FILETYPE_PEM) != 1)
		return sw_error_set("TLS key %s: %s", c->tls_key, ssl_error());
	if (SSL_CTX_check_private_key(d->ssl) != 1)
		return sw_error_set("TLS key %s does not match %s", c->tls_key, c->tls_cert);
	return 0;   /* each connection's TLS is set up in httpd/conn.c */
}

/* What one client may send and hold, from server.* */
static void conns_limits(struct sw_conns_limits *l, const struct sw_config *c)
{
	l->max_header = c->max_header_size;
	l->max_uri = c->max_uri_size;
	l->max_body = SW_MAX_BODY;
	l->read_timeout_s = c->read_timeout_s;
	l->max_connections = c->max_connections;
}

static int listen_http(struct sw_daemon *d)
{
	const struct sw_config *c = d->cfg;
	d->http = evhttp_new(d->base);
	if (!d->http)
		return sw_error_set("cannot create HTTP server");
	/* the limits are httpd/'s; evhttp's are a backstop behind them */
	evhttp_set_max_body_size(d->http, SW_MAX_BODY);
	evhttp_set_timeout(d->http, 30);
	evhttp_set_allowed_methods(d->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
	if (tls_setup(d) < 0)
		return SW_ERR;
	errno = 0;
	d->listener = evhttp_bind_socket_with_handle(d->http, c->listen_host,
						     (ev_uint16_t)c->listen_port);
	if (!d->listener)
		return sw_error_set("listen %s:%d: %s", c->listen_host, c->listen_port,
				    errno ? strerror(errno) : "cannot bind");
	struct sw_conns_opts o = SW_CONNS_OPTS_INIT;
	o.base = d->base;
	o.http = d->http;
	o.listener = d->listener;
	o.ssl = d->ssl;
	conns_limits(&o.limits, c);
	if (sw_conns_new(&d->conns, &o) < 0)
		return SW_ERR;
	sw_http_routes_install(d);
	return 0;
}

/* The port actually bound (differs from the config when it says 0). */
static int bound_port(struct sw_daemon *d)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	evutil_socket_t fd = evhttp_bound_socket_get_fd(d->listener);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

static void apply_log_level(const struct sw_config *c)
{
	enum sw_log_level lvl;
	if (sw_log_parse_level(c->log_level, &lvl) == 0)
		sw_log_set_level(lvl);
}

/* Make storage know every configured environment (state is kept). */
static void sync_environments(struct sw_daemon *d)
{
	for (size_t i = 0; i < d->cfg->nenvs; i++)
		if (sw_store_env_upsert(d->store, d->cfg->envs[i].name, d->cfg->envs[i].branch) < 0)
			log_error("env.store", "env=%s err=%s", d->cfg->envs[i].name,
				  sw_q(sw_error_last()));
}

/* Whether the Terraform runner settings (fixed at start-up) differ. */
static int terraform_changed(const struct sw_config *a, const struct sw_config *b)
{
	if (!!a->tf_image != !!b->tf_image || (a->tf_image && strcmp(a->tf_image, b->tf_image)) ||
	    a->ntf_mounts != b->ntf_mounts || !!a->tf_cli_config != !!b->tf_cli_config ||
	    (a->tf_cli_config && strcmp(a->tf_cli_config, b->tf_cli_config)))
		return 1;
	for (size_t i = 0; i < a->ntf_mounts; i++)
		if (strcmp(a->tf_mounts[i], b->tf_mounts[i]))
			return 1;
	return 0;
}

int sw_daemon_reload(struct sw_daemon *d)
{
	struct sw_config *next;
	if (sw_config_load(&next, d->cfg_path) < 0) {
		/* one log line per error, old config kept */
		char *errs = sw_strdup(sw_error_last()), *save = NULL;
		for (char *line = strtok_r(errs, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
			log_error("config.reload_failed", "file=%s err=%s", sw_q(d->cfg_path), sw_q(line));
		log_warn("config.kept", "file=%s reason=%s", sw_q(d->cfg_path),
			 sw_q("the new config is invalid; the running config stays in force"));
		free(errs);
		return SW_EINVALID;
	}
	const struct sw_config *old = d->cfg;
	sw_config_warn_secrets(next);
	if (strcmp(old->listen_host, next->listen_host) || old->listen_port != next->listen_port ||
	    strcmp(old->data_dir, next->data_dir) || !!old->tls_cert != !!next->tls_cert ||
	    old->durability_full != next->durability_full)
		log_warn("config.restart_needed", "reason=%s",
			 sw_q("listen address, data_dir, durability and TLS change only on restart"));
	if (terraform_changed(old, next))
		log_warn("config.restart_needed", "reason=%s",
			 sw_q("terraform.image and terraform.mounts change only on restart"));
	/* keep what the running server is bound to */
	free(next->listen_host);
	next->listen_host = sw_strdup(old->listen_host);
	next->listen_port = old->listen_port;
	free(next->data_dir);
	next->data_dir = sw_strdup(old->data_dir);
	struct sw_config *old_cfg = d->cfg;
	d->cfg = next;
	if (d->conns) {
		struct sw_conns_limits l;
		conns_limits(&l, next);
		sw_conns_limits(d->conns, &l);
	}
	if (d->engine)
		sw_engine_set_config(d->engine, next);
	if (d->outbox)
		sw_outbox_set_config(d->outbox, next);
	if (d->github)
		sw_github_app_set_config(d->github, next);
	if (d->deployer)
		sw_deployer_reconfigure(d->deployer, next);
	sync_environments(d);
	sw_config_free(old_cfg);
	apply_log_level(next);
	log_info("config.reloaded", "file=%s environments=%zu repositories=%zu",
		 sw_q(d->cfg_path), next->nenvs, next->nrepos);
	return 0;
}

/* While stopping: wait for in-flight work, then leave the loop. */
static void stop_poll(evutil_socket_t fd, short what, void *arg)
{
	struct sw_daemon *d = arg;
	int pending = d->pool ? sw_pool_pending(d->pool) : 0;
	int runs = d->engine && sw_engine_busy(d->engine);
	if (pending > 0 || runs) {
		log_debug("daemon.draining", "jobs=%d runs=%zu", pending,
			  d->engine ? sw_engine_active(d->engine) : 0);
		return;
	}
	event_base_loopexit(d->base, NULL);
}

/* Tell a service manager (systemd's Type=notify) how it goes. */
static void notify(struct sw_daemon *d, const char *state)
{
	(void)d;
	if (sw_sd_notify(state) < 0)
		log_warn("daemon.notify", "state=%s err=%s", sw_q(state), strerror(errno));
}

static void begin_stop(struct sw_daemon *d, const char *why)
{
	struct timeval tv = { 0, 100 * 1000 };
	if (d->stopping) {
		log_warn("daemon.stop_forced", "signal=%s", why);
		event_base_loopbreak(d->base);
		return;
	}
	d->stopping = 1;
	log_info("daemon.stopping", "signal=%s", why);
	notify(d, "STOPPING=1");
	/* stop accepting: close the listening socket, let open requests finish */
	if (d->listener) {
		sw_conns_unlisten(d->conns);
		evhttp_del_accept_socket(d->http, d->listener);
		d->listener = NULL;
	}
	if (d->engine)
		sw_engine_stop(d->engine);   /* running stages are killed and recorded */
	sw_retention_stop(d->retention);
	sw_costs_stop(d->costs);
	d->stop_timer = event_new(d->base, -1, EV_PERSIST, stop_poll, d);
	event_add(d->stop_timer, &tv);
	stop_poll(-1, 0, d);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct sw_daemon *d = arg;
	switch (sig) {
	case SIGHUP:
		log_info("config.reload", "signal=SIGHUP file=%s", sw_q(d->cfg_path));
		{
			struct sw_actor sys = { .kind = SW_ACTOR_SYSTEM, .name = "SIGHUP" };
			if (sw_sd_notify_reloading() < 0)
				log_warn("daemon.notify", "state=RELOADING err=%s", strerror(errno));
			int ok = sw_daemon_reload(d) == 0;
			notify(d, ok ? "READY=1\nSTATUS=config reloaded"
			       : "READY=1\nSTATUS=config reload failed: the previous config stays");
			sw_audit_record(d, &sys, "config.reload", d->cfg_path, ok ? "ok" : "failed",
					ok ? NULL : sw_error_last());
		}
		break;
	case SIGTERM:
		begin_stop(d, "SIGTERM");
		break;
	case SIGINT:
		begin_stop(d, "SIGINT");
		break;
	}
}

static void leftovers_done(int result, const char *msg, void *arg)
{
	if (result > 0)
		log_warn("runner.leftovers", "removed=%d reason=%s", result,
			 sw_q("containers of an earlier slipwayd were still there"));
	else if (result < 0)
		log_warn("runner.unavailable", "err=%s", sw_q(msg));
}

/*
 * Remove an earlier daemon's containers (any docker runner's sweep covers
 * the process: see sw_docker_remove_leftovers), now and once more a few
 * seconds later: a container the engine was still creating when the old
 * daemon died appears after the first sweep.
 */
#define SWEEP_AGAIN_S 5

static void sweep_again(evutil_socket_t fd, short what, void *arg)
{
	struct sw_daemon *d = arg;
	sw_docker_remove_leftovers(d->sweep_runner, leftovers_done, d);
}

static void sweep_leftovers(struct sw_daemon *d, struct sw_runner *r)
{
	struct timeval tv = { SWEEP_AGAIN_S, 0 };
	if (d->sweep_runner)
		return;   /* one sweep covers every runner of the process */
	d->sweep_runner = r;
	sw_docker_remove_leftovers(r, leftovers_done, d);
	d->sweep_timer = evtimer_new(d->base, sweep_again, d);
	evtimer_add(d->sweep_timer, &tv);
}

/* Runner, outbox sender, engine and webhook receiver, then recovery. */
static int start_pipeline(struct sw_daemon *d)
{
	const struct sw_config *c = d->cfg;
	struct sw_engine_deps deps = { 0 };
	int rc;

	if ((rc = sw_proc_mgr_new(&d->procs, d->base)) < 0)
		return rc;
	if (!strcmp(c->runner_backend, "local")) {
		rc = sw_runner_local_new(&d->runner, d->procs);
	} else {
		struct sw_docker_opts o = SW_DOCKER_OPTS_INIT;
		o.socket = c->docker_socket;
		rc = sw_runner_docker_new(&d->runner, d->base, d->client, &o);
		if (rc == 0)
			sweep_leftovers(d, d->runner);
	}
	if (rc < 0)
		return sw_error_prefix("runner");
	if ((rc = sw_outbox_new(&d->outbox, d->base, d->client, d->store, c)) < 0)
		return sw_error_prefix("outbox");
	/* the App's tokens: the outbox on the loop, git fetches on workers */
	sw_github_app_new(&d->github, d->client, NULL);
	sw_github_app_set_config(d->github, c);
	sw_outbox_set_github_app(d->outbox, d->github);
	sw_source_set_token_provider(sw_github_app_git_token, d->github);
	deps.base = d->base;
	deps.pool = d->pool;
	deps.store = d->store;
	deps.runner = d->runner;
	deps.outbox = d->outbox;
	deps.cfg = c;
	deps.on_delivery = sw_metrics_delivery;
	deps.on_run_finished = sw_metrics_run_finished;
	deps.on_stage_finished = sw_metrics_stage_finished;
	sync_environments(d);   /* environment rows first: syncs refer to them */
	{
		struct sw_deployer_opts o = { 0 };
		o.base = d->base;
		o.pool = d->pool;
		o.store = d->store;
		o.http = d->client;
		o.procs = d->procs;
		o.outbox = d->outbox;
		o.cfg = c;
		o.on_sync_finished = sw_metrics_sync_finished;
		o.on_drift = sw_metrics_drift;
		if ((rc = sw_deployer_new(&d->deployer, &o)) < 0)
			return rc;
	}
	deps.deploy = sw_deployer_ops(d->deployer);
	{
		/* Terraform runs in containers of terraform.image through the
		 * Docker API when that is set, else the host's binary through a
		 * local runner, as Atlantis does; whichever backend runs the
		 * pipeline's stages. The engine owns the Terraform engine. */
		struct sw_runner *tfr = d->runner;
		int want_docker = c->tf_image != NULL;
		if (want_docker != !strcmp(c->runner_backend, "docker")) {
			if (want_docker) {
				struct sw_docker_opts o = SW_DOCKER_OPTS_INIT;
				o.socket = c->docker_socket;
				rc = sw_runner_docker_new(&d->tf_runner, d->base, d->client, &o);
				if (rc == 0)
					sweep_leftovers(d, d->tf_runner);
			} else {
				rc = sw_runner_local_new(&d->tf_runner, d->procs);
			}
			if (rc < 0)
				log_warn("terraform.unavailable", "err=%s", sw_q(sw_error_last()));
			tfr = d->tf_runner;
		}
		struct sw_tf_opts to = SW_TF_OPTS_INIT;
		to.base = d->base;
		to.runner = tfr;
		to.data_dir = c->data_dir;
		to.image = c->tf_image;
		to.mounts = (const char *const *)c->tf_mounts;
		to.cli_config = c->tf_cli_config;
		if (tfr && sw_tf_new(&deps.tf, &to) < 0)
			log_warn("terraform.unavailable", "err=%s", sw_q(sw_error_last()));
		else if (tfr)
			log_info("terraform.runner", "kind=%s image=%s", sw_runner_kind(tfr),
				 sw_q(c->tf_image ? c->tf_image : "-"));
	}
	if ((rc = sw_engine_new(&d->engine, &deps)) < 0)
		return rc;
	sw_actions_install(d);
	if ((rc = sw_hooks_new(&d->hooks, d)) < 0)
		return rc;
	return sw_engine_recover(d->engine);
}

/*
 * Every few seconds, give the memory malloc holds free back to the system.
 * A sync or a drift relist of thousands of objects parses them all at once
 * and frees them a moment later; glibc keeps those pages (spread over the
 * worker threads' arenas) until told, so resident memory would stay at the
 * high-water mark of the biggest sync (measured: bench/memory.sh).
 */
#define TRIM_INTERVAL_S 5

static void trim_cb(evutil_socket_t fd, short what, void *arg)
{
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

int sw_daemon_new(struct sw_daemon **out, const char *cfg_path)
{
	struct sw_daemon *d = sw_calloc(1, sizeof(*d));
	int rc;

	*out = NULL;
	d->cfg_path = sw_strdup(cfg_path);
	d->started_ms = sw_now_ms();
	if ((rc = sw_config_load(&d->cfg, cfg_path)) < 0)
		goto fail;
	apply_log_level(d->cfg);
	sw_config_warn_secrets(d->cfg);
	sw_limiter_new(&d->login_fails, SW_AUTH_FAILS_PER_WINDOW, SW_AUTH_FAIL_WINDOW_MS,
		       SW_AUTH_LIMIT_CLIENTS);
	sw_limiter_new(&d->token_fails, SW_AUTH_FAILS_PER_WINDOW, SW_AUTH_FAIL_WINDOW_MS,
		       SW_AUTH_LIMIT_CLIENTS);

	evthread_use_pthreads();
	json_object_seed(0);   /* before worker threads parse JSON */
	sw_log_route_libevent();
	d->base = event_base_new();
	if (!d->base) {
		rc = sw_error_set("cannot create event loop");
		goto fail;
	}
	if ((rc = listen_http(d)) < 0)
		goto fail;
	struct sw_store_opts sopts = SW_STORE_OPTS_INIT;
	sopts.sync_full = d->cfg->durability_full;
	/* the loop's connection: a statement waits this long for another
	 * process's write lock, then fails; the engine keeps such writes and
	 * retries them (pipeline/writeq.c), so a locked database never holds
	 * the loop for seconds */
	sopts.busy_timeout_ms = LOOP_BUSY_TIMEOUT_MS;
	if ((rc = sw_store_open_opts(&d->store, d->cfg->data_dir, &sopts)) < 0) {
		sw_error_prefix("storage");
		goto fail;
	}
	if ((rc = sw_pool_new(&d->pool, d->base, WORKERS)) < 0)
		goto fail;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		rc = sw_error_set("libcurl initialisation failed");
		goto fail;
	}
	if ((rc = sw_http_new(&d->client, d->base)) < 0)
		goto fail;
	if ((rc = start_pipeline(d)) < 0)
		goto fail;
	if ((rc = sw_retention_new(&d->retention, d)) < 0)
		goto fail;
	if ((rc = sw_costs_new(&d->costs, d)) < 0)
		goto fail;

	signal(SIGPIPE, SIG_IGN);
	d->sig_term = evsignal_new(d->base, SIGTERM, on_signal, d);
	d->sig_int = evsignal_new(d->base, SIGINT, on_signal, d);
	d->sig_hup = evsignal_new(d->base, SIGHUP, on_signal, d);
	event_add(d->sig_term, NULL);
	event_add(d->sig_int, NULL);
	event_add(d->sig_hup, NULL);
	{
		struct timeval tv = { TRIM_INTERVAL_S, 0 };
		d->trim_timer = event_new(d->base, -1, EV_PERSIST, trim_cb, d);
		event_add(d->trim_timer, &tv);
	}
	*out = d;
	return 0;
fail:
	sw_daemon_free(d);
	return rc < 0 ? rc : SW_ERR;
}

int sw_daemon_run(struct sw_daemon *d)
{
	log_info("daemon.start", "version=%s listen=%s:%d tls=%s data_dir=%s durability=%s config=%s",
		 SLIPWAY_VERSION, d->cfg->listen_host, bound_port(d), d->ssl ? "on" : "off",
		 sw_q(d->cfg->data_dir), d->cfg->durability_full ? "full" : "normal",
		 sw_q(d->cfg_path));
	{
		char st[160];
		snprintf(st, sizeof(st), "READY=1\nSTATUS=listening on %s:%d", d->cfg->listen_host,
			 bound_port(d));
		notify(d, st);
	}
	event_base_dispatch(d->base);
	log_info("daemon.stopped", "uptime_ms=%lld", (long long)(sw_now_ms() - d->started_ms));
	return d->exit_code;
}

void sw_daemon_free(struct sw_daemon *d)
{
	if (!d)
		return;
	if (d->stop_timer)
		event_free(d->stop_timer);
	if (d->trim_timer)
		event_free(d->trim_timer);
	if (d->sweep_timer)
		event_free(d->sweep_timer);
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
	if (d->sig_hup)
		event_free(d->sig_hup);
	sw_hooks_free(d->hooks);     /* commits and answers what is pending */
	/* let blocking jobs finish while what their callbacks use still exists */
	sw_pool_free(d->pool);
	d->pool = NULL;
	sw_retention_free(d->retention);
	sw_costs_free(d->costs);
	sw_deployer_free(d->deployer); /* abandons syncs without callbacks */
	sw_engine_free(d->engine);   /* and the Terraform engine it owns */
	sw_runner_free(d->tf_runner);
	sw_outbox_free(d->outbox);   /* unsent rows stay pending in storage */
	if (d->github) {             /* the workers that asked it are done */
		sw_source_set_token_provider(NULL, NULL);
		sw_github_app_free(d->github);
	}
	sw_runner_free(d->runner);
	sw_http_free(d->client);   /* cancels outbound requests still in flight */
	sw_proc_mgr_free(d->procs);
	if (d->http)
		evhttp_free(d->http);
	sw_conns_free(d->conns);   /* connections evhttp freed may finish later */
	if (d->ssl)
		SSL_CTX_free(d->ssl);
	sw_store_close(d->store);  /* after everything that may still write */
	if (d->base)
		event_base_free(d->base);
	sw_config_free(d->cfg);
	sw_limiter_free(d->login_fails);
	sw_limiter_free(d->token_fails);
	free(d->cfg_path);
	free(d);
}
