/*
 * config.h - the config room: slipway's settings, read from one YAML file
 * (config/config.c). May call: lib/. Every room above may include it.
 *
 * Every field has its default set in one place (config.c: defaults()), like
 * memcached's settings. Secrets are never written inline: a secret is a
 * mapping `{secret_file: PATH}` or `{secret_env: NAME}`, resolved at load
 * time; the resolved value lives only in memory and is never logged.
 *
 * Errors name the file, line and column and the path to the key:
 *   slipway.yaml:12:5: environments[1].branch: expected a string
 * Unknown keys are errors. sw_config_load() reports every error it finds,
 * one per line, in the error slot.
 *
 * The reference for all keys is docs/config.md and contrib/slipway.example.yaml.
 */
#ifndef SW_CONFIG_H
#define SW_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "lib/cidr.h"
#include "lib/error.h"

struct sw_secret {
	char *value;    /* resolved secret, NULL when not configured */
	char *source;   /* "env SLIPWAY_X" or "file /path", safe to show */
};

struct sw_cfg_secret {     /* a named secret that pipeline stages may ask for */
	char *name;
	struct sw_secret secret;
	/* where it may go (docs/config.md "secrets"; sw_config_secret_scope) */
	unsigned events;         /* SW_SECRET_EV_* bits a stage's event must be in */
	char **branches;         /* fnmatch globs on the run's branch; 0 = any */
	size_t nbranches;
	char **environments;     /* the run's environment must be one; 0 = any (or none) */
	size_t nenvironments;
	char **repositories;     /* the run's repository must be one; 0 = any */
	size_t nrepositories;
	int short_form;          /* written as a bare {secret_env|secret_file} */
	int line, col;           /* where it is written, for the short form's warning */
};

struct sw_cfg_repo {
	char *name;              /* GitHub full name, "owner/repo" */
	char *url;               /* clone URL: https://, ssh://, git@host:, file:// */
	struct sw_secret token;  /* https token (defaults to github.token) */
	char *ssh_key;           /* private key file for ssh URLs */
	int64_t poll_interval_s; /* fallback polling of tracked branches; 0 = off */
};

enum sw_heal_mode { SW_HEAL_AUTO, SW_HEAL_REPORT };

struct sw_cfg_infra {
	char **modules;          /* root module paths in the repository */
	size_t nmodules;
	char *var_file;          /* a .tfvars path in the repository, or NULL */
	char **vars;             /* "name=value" pairs */
	size_t nvars;
	enum sw_heal_mode heal;  /* drift: apply automatically, or only report */
	int64_t drift_interval_s;
	int64_t timeout_s;
};

struct sw_cfg_env {
	char *name;
	char *repo;              /* a repositories[].name */
	char *branch;
	char *kubeconfig;        /* path; NULL = none (no cluster sync) */
	int in_cluster;          /* cluster: in-cluster (the pod's service account) */
	char *context;           /* kubeconfig context; NULL = current-context */
	char *namespace;         /* default namespace for namespaced objects */
	char **manifests;        /* manifest paths in the repository */
	size_t nmanifests;
	struct sw_cfg_infra infra;
	int self_heal;
	int prune;
	int allow_empty_prune;
	int rollback_on_failure;
	int64_t health_timeout_s;
	int64_t resync_interval_s;   /* periodic full comparison */
	char *slack_channel;         /* overrides slack.channel */
	char *cost_tag;              /* its cost.tag value; NULL = its name */
	/* several environments on one branch: each deploys after the one
	 * before it on the branch succeeded, or after `after`, or with the
	 * first (`parallel`) */
	char *after;
	int parallel;
	/* ignore_differences: fields of matching objects slipway neither
	 * reports as drift nor heals, nor applies after the first create */
	struct sw_cfg_ignore {
		char *group;             /* "" for the core group */
		char *kind;
		char *name, *ns;         /* NULL = any */
		char **pointers;         /* RFC 6901 JSON pointers, "/spec/replicas" */
		size_t npointers;
	} *ignore;
	size_t nignore;
	/* scoped secrets: this environment's own values, which win over the
	 * global ones of the same name for runs of it; and whether its
	 * acceptance stages get a kubeconfig of its cluster */
	struct sw_cfg_secret *secrets;
	size_t nsecrets;
	int acceptance_cluster_access;

	/* roles: who may sync, roll back, cancel and retry here. Set
	 * (has_deployers) replaces access.deployers for this environment;
	 * entries as in struct sw_cfg_access */
	char **deployers;
	size_t ndeployers;
	int has_deployers;
};

/*
 * access: who holds which role (docs/config.md "access"). Each entry is a
 * GitHub login, an "org/team" name or "*" (everyone signed in).
 */
struct sw_cfg_access {
	char **viewers, **deployers, **admins;   /* NULL-terminated */
	size_t nviewers, ndeployers, nadmins;
};

/*
 * retention: what old rows storage removes and how often. Ages in seconds
 * (0 = no age limit), counts are the newest rows kept (0 = no count limit).
 */
struct sw_cfg_retention {
	int64_t interval_s;      /* between passes; 0 = retention off */
	int batch;               /* rows per transaction */
	int64_t deliveries_age_s, logs_age_s, runs_age_s, drift_age_s, outbox_age_s;
	int deliveries_count, runs_count, drift_count;
	int64_t audit_age_s;     /* the audit log (retention.audit) */
	int audit_count;
};

struct sw_config {
	char *file;              /* the path it was read from */

	/* server */
	char *listen_host;
	int listen_port;
	char *public_url;        /* base for links on GitHub and Slack */
	char *data_dir;          /* absolute */
	char *tls_cert;
	char *tls_key;
	char *log_level;
	int durability_full;     /* server.durability: full = SQLite synchronous=FULL */
	int max_concurrent_runs;
	int read_requires_token; /* status page and read API need the token */
	struct sw_secret api_token;  /* for actions (sync, rollback, cancel) */
	int64_t history_limit;   /* deploy history kept per environment */
	/* what one client may hold (docs/config.md, "Limits") */
	int64_t max_header_size; /* request line and headers, bytes: more gets 431 */
	int64_t max_uri_size;    /* the request target, bytes: more gets 414 */
	int64_t read_timeout_s;  /* a request's headers and body arrive within it */
	int max_connections;     /* 0 = derived from RLIMIT_NOFILE at start-up */
	struct sw_cidr *trusted_proxies;  /* peers whose X-Forwarded-For counts */
	size_t ntrusted_proxies;

	/* github */
	char *github_api_url;
	struct sw_secret webhook_secret;
	int64_t replay_window_s; /* the same event and body again within it: a duplicate */
	struct sw_secret github_token;
	/* github.app: a GitHub App beside or instead of github.token (the App
	 * wins where both are set; docs/github-app.md). id NULL = no App. */
	struct sw_cfg_github_app {
		char *id;                /* the App id (or client id): the JWT's iss */
		struct sw_secret private_key;  /* PEM, checked to parse at load */
		int64_t installation_id; /* 0 = looked up per repository */
	} github_app;
	/* github.oauth: sign-in with GitHub (daemon/oauth.c); no client_id = off */
	char *oauth_client_id;
	struct sw_secret oauth_client_secret;
	char *oauth_url;         /* the web flow's base, https://github.com */

	/* aws: slipway's own AWS access (prices; docs/aws.md). Credentials
	 * come from the SDKs' chain (aws/aws.h); these only steer it. */
	struct sw_cfg_aws {
		char *region;        /* NULL: the chain's ($AWS_REGION, the profile's, us-east-1) */
		char *profile;       /* NULL: $AWS_PROFILE, else default */
		char *role_arn;      /* assumed on top of what the chain finds */
		int pricing;         /* price Terraform plans on PRs (default on) */
	} aws;

	/* cost: what the environments cost, from Cost Explorer, and a Slack
	 * report of it (daemon/cost.c; docs/aws.md). No block = off. */
	struct sw_cfg_cost {
		int enabled;
		enum { SW_COST_OFF, SW_COST_DAILY, SW_COST_WEEKLY } report;
		int weekday;         /* weekly: 0 = Sunday .. 6; default Monday */
		int at_min;          /* minutes after local midnight; default 09:00 */
		char *timezone;      /* a tz database name; default UTC */
		char *channel;       /* NULL: slack.channel */
		char *tag;           /* the cost-allocation tag key; default "environment" */
	} cost;

	/* slack */
	struct sw_secret slack_webhook_url;
	struct sw_secret slack_bot_token;
	char *slack_channel;
	char *slack_api_url;

	/* runner */
	char *runner_backend;    /* "docker" or "local" */
	char *docker_socket;
	int64_t runner_memory;   /* bytes, 0 = no limit */
	int64_t runner_nano_cpus;/* 1e9 = one CPU, 0 = no limit */
	char *runner_network;
	int64_t step_timeout_s;
	/* isolation (docs/config.md "runner"): capabilities kept after
	 * dropping all, NULL-terminated; process limit; the user steps run
	 * as (NULL = the image's); the network of pull-request stages (forks
	 * always) unless the repository is in pr_network_repos */
	char **runner_cap_add;
	size_t nrunner_cap_add;
	int runner_pids;         /* 0 = no limit */
	char *runner_user;
	char *runner_pr_network;
	char **runner_pr_network_repos;
	size_t nrunner_pr_network_repos;

	/* terraform: NULL image = the host's terraform through a local runner */
	char *tf_image;          /* image holding terraform: run it in containers */
	char *tf_cli_config;     /* TF_CLI_CONFIG_FILE (a provider mirror, credentials), absolute */
	char **tf_mounts;        /* absolute host directories mounted at the same path;
				  * NULL-terminated too (as every list here) */
	size_t ntf_mounts;

	/* outbox */
	int64_t notify_give_up_s;

	struct sw_cfg_retention retention;

	/* roles (access:, with environments[].deployers) */
	struct sw_cfg_access access;

	struct sw_cfg_secret *secrets;
	size_t nsecrets;
	struct sw_cfg_repo *repos;
	size_t nrepos;
	struct sw_cfg_env *envs;
	size_t nenvs;
};

/* The environment has a cluster to sync (a kubeconfig, or in-cluster). */
static inline int sw_cfg_env_has_cluster(const struct sw_cfg_env *e)
{
	return e->kubeconfig || e->in_cluster;
}

/*
 * Read and check `path`. On success *out is a new config the caller frees
 * with sw_config_free(). On failure returns SW_EINVALID (or SW_ERR when the
 * file cannot be read) and the slot holds every error, one per line.
 */
int sw_config_load(struct sw_config **out, const char *path);

/* NULL when `p` is an RFC 6901 JSON pointer ("" or "/a/b~1c"), else why not. */
const char *sw_json_pointer_problem(const char *p);
void sw_config_free(struct sw_config *cfg);

const struct sw_cfg_env *sw_config_env(const struct sw_config *cfg, const char *name);
const struct sw_cfg_repo *sw_config_repo(const struct sw_config *cfg, const char *name);
/* The environment a deploy of `e` follows: `after`, else (unless
 * `parallel`) the nearest one before it on its branch that has no `after`;
 * NULL when a push starts it. */
const struct sw_cfg_env *sw_config_env_before(const struct sw_config *cfg,
					      const struct sw_cfg_env *e);
/* The first environment a push of `branch` of `repo` starts, or NULL. */
const struct sw_cfg_env *sw_config_env_for_branch(const struct sw_config *cfg,
						  const char *repo, const char *branch);
/* Whether slipway may talk to GitHub's REST API: github.token or github.app. */
int sw_config_github_auth(const struct sw_config *cfg);
/* A named global secret's value, or NULL (whatever its scope). */
const char *sw_config_secret(const struct sw_config *cfg, const char *name);

/* --- scoped secrets (config/secrets.c) -------------------------------------
 *
 * Each secret says which stages may have it: the event the stage runs for,
 * the run's branch (a pull request's base branch: its head's name is the
 * author's to choose), the run's environment and repository. A pull
 * request from a fork never gets one. An environment's own secret of the
 * same name is tried before the global one for runs of that environment;
 * the first whose scope admits the stage gives the value.
 */
enum sw_secret_event {      /* the same bits as pipeline's SW_SPEC_* events */
	SW_SECRET_EV_PULL_REQUEST = 1 << 0,
	SW_SECRET_EV_PUSH = 1 << 1,
	SW_SECRET_EV_DEPLOY = 1 << 2,
};
/* The short form's scope: push and deploy stages of tracked branches. */
#define SW_SECRET_EV_SHORT_FORM (SW_SECRET_EV_PUSH | SW_SECRET_EV_DEPLOY)

/* A stage asking for a secret. */
struct sw_secret_ask {
	unsigned event;           /* exactly one SW_SECRET_EV_* bit: the stage's event */
	const char *repo;         /* "owner/name" */
	const char *branch;       /* push, deploy: the branch; pull request: its base */
	const char *environment;  /* the run's environment (a PR's: its base's); may be NULL */
	int from_fork;            /* a pull request from another repository */
};

enum sw_secret_verdict {
	SW_SECRET_GIVEN,          /* *value is set */
	SW_SECRET_FORK,           /* never to a fork's pull request */
	SW_SECRET_UNKNOWN,        /* no secret of that name anywhere */
	SW_SECRET_NOT_EVENT,      /* its events do not name the stage's */
	SW_SECRET_NOT_BRANCH,
	SW_SECRET_NOT_ENVIRONMENT,
	SW_SECRET_NOT_REPOSITORY,
};

/*
 * May the stage `ask` describes have secret `name`? Pure: reads `cfg`
 * only. SW_SECRET_GIVEN sets *value (borrowed from cfg); otherwise *value
 * is NULL and the verdict says why (of the environment's entry when it has
 * one, else of the global one).
 */
enum sw_secret_verdict sw_config_secret_scope(const struct sw_config *cfg, const char *name,
					      const struct sw_secret_ask *ask, const char **value);

/* The reason of a refusal as the PR shows it ("secret PROD_DB is not
 * available to pull_request runs"); NULL for SW_SECRET_GIVEN. Free it. */
char *sw_config_secret_why(enum sw_secret_verdict v, const char *name,
			   const struct sw_secret_ask *ask);

/* "pull_request", "push", "deploy" -> the bit; 0 when unknown. */
unsigned sw_secret_event_parse(const char *name);
const char *sw_secret_event_str(unsigned bit);

/* Every secret name a stage may ask for (global and per environment, each
 * once), NULL-terminated; free with sw_strv_free. */
char **sw_config_secret_names(const struct sw_config *cfg);

/* Log one warning per secret written in the short form (name, file:line):
 * such a secret reaches push and deploy stages only. */
void sw_config_warn_secrets(const struct sw_config *cfg);

/* Parse "90", "30s", "5m", "1h30m" into seconds; -1 when invalid. */
int64_t sw_parse_duration(const char *s);
/* Parse "512", "64k", "512m", "2g" (powers of 1024) into bytes; -1 when invalid. */
int64_t sw_parse_size(const char *s);

#endif
