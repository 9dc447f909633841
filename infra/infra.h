/*
 * infra.h - the infra room: Terraform root modules of an environment: plan
 * on pull requests, plan + apply on merge, drift checks, all on the event
 * loop (infra/terraform.c), the reading of plan/show JSON (infra/tfplan.c),
 * and the periodic drift checks of each environment's applied commit
 * (infra/checks.c, last section). May call: lib/, config/, storage/,
 * runners/, git/ (checkouts), report/ (the Slack message of a drift).
 * Called by pipeline/.
 *
 * Every Terraform command runs as one step of a sw_runner (`local`: the
 * host's binary; `docker`: an image holding terraform), with
 * TF_IN_AUTOMATION=1, TF_INPUT=0, CHECKPOINT_DISABLE=1, -input=false,
 * -no-color, -lock-timeout and a per-command time limit. Output of every
 * command except the JSON ones is streamed to req->on_output, so the caller
 * can put it in the run's log.
 *
 *     struct sw_tf_opts o = SW_TF_OPTS_INIT;
 *     o.base = base; o.runner = runner; o.data_dir = cfg->data_dir;
 *     if (sw_tf_new(&tf, &o) < 0) ...
 *
 *     struct sw_tf_req q = SW_TF_REQ_INIT;
 *     q.env = "dev"; q.checkout = ws; q.module = "infra/environment/dev";
 *     q.infra = &env->infra; q.on_output = log_chunk; q.arg = run;
 *     sw_tf_plan(tf, &q, plan_done, run, NULL);
 *     ...
 *     static void plan_done(struct sw_tf_result *res, void *arg)
 *     {
 *             status "slipway/terraform/<env>" = res->status == 0 ? success : failure;
 *             md = sw_tf_report_markdown(res, env, budget);
 *             sw_tf_result_free(res);
 *     }
 *
 * Serialisation: one operation at a time per (environment, root module) in
 * one sw_tf (which belongs to one data directory), on top of Terraform's
 * own state lock. Waiting applies (sw_tf_apply) start before waiting plans
 * and drift checks, so a merge apply waits at most for the one operation
 * already running, never for a queue of PR plans.
 *
 * Plan files hold secrets in clear text. They live only in
 * DATA_DIR/terraform/plans (0700), are written under umask 077 and made
 * 0600, and are deleted as soon as the operation no longer needs them
 * (after `show`, or after `apply`); sw_tf_new() removes leftovers of a
 * daemon that died. With the docker runner each command is a container
 * of opts.image running as the daemon's uid:gid, with the checkout, the
 * plans directory, the plugin cache (DATA_DIR/terraform/plugin-cache) and
 * opts.mounts bind-mounted each at its own host path, so every path means
 * the same inside and out and what terraform writes belongs to the daemon.
 *
 * Loop thread only, except sw_tf_affected() and sw_tf_report_markdown(),
 * which touch no loop state (sw_tf_affected reads files: call it on a
 * worker).
 */
#ifndef SW_INFRA_H
#define SW_INFRA_H

#include <stddef.h>
#include <stdint.h>

#include "aws/aws.h"
#include "config/config.h"
#include "lib/error.h"

struct event_base;
struct sw_runner;
struct sw_tf;
struct sw_tf_op;

/* ---- set-up ----------------------------------------------------------- */

struct sw_tf_opts {
	struct event_base *base;     /* borrowed; required */
	struct sw_runner *runner;    /* borrowed; required; local or docker */
	const char *data_dir;        /* required; plans and plugin cache go under DATA_DIR/terraform */
	const char *terraform;       /* program; NULL = "terraform" (found in PATH) */
	const char *image;           /* docker runner: image with terraform; required there */
	/* docker runner: more host directories (absolute, no ':') mounted
	 * read-write at the same path, e.g. a local state directory or
	 * credentials; NULL-terminated, may be NULL. Copied. */
	const char *const *mounts;
	int lock_timeout_s;          /* -lock-timeout; 0 = 60 */
	/* TF_CLI_CONFIG_FILE for every command (provider mirrors, registry
	 * credentials); NULL = Terraform's default (HOME is the checkout).
	 * With an image, it must be under a mount. Copied. */
	const char *cli_config;
};

#define SW_TF_OPTS_INIT { 0 }

/*
 * Create the engine: makes DATA_DIR/terraform/plans (0700, emptied of
 * leftovers) and DATA_DIR/terraform/plugin-cache. Strings are copied.
 */
int sw_tf_new(struct sw_tf **out, const struct sw_tf_opts *o);

/*
 * Free the engine. Running operations are cancelled without callbacks
 * (their plan files are removed); for a clean shutdown cancel each and wait
 * for its callback first. NULL is a no-op.
 */
void sw_tf_free(struct sw_tf *tf);

/* Operations started and not yet reported (queued or running). */
size_t sw_tf_pending(const struct sw_tf *tf);

/* ---- operations ------------------------------------------------------- */

/* Output of a Terraform command: stream is SW_STEP_STDOUT / SW_STEP_STDERR. */
typedef void (*sw_tf_output_fn)(int stream, const char *p, size_t n, void *arg);

/* What to run on. Strings are copied by the start functions. */
struct sw_tf_req {
	const char *env;              /* environment name; required */
	const char *checkout;         /* host directory of the checkout; required */
	const char *module;           /* root module path inside it; required */
	/* var_file (relative to the checkout), vars and timeout_s (per
	 * command; 0 = 30 minutes) are taken from here; may be NULL. */
	const struct sw_cfg_infra *infra;
	const char *const *env_vars;  /* extra "K=V" for terraform (credentials); may be NULL */
	const char *label;            /* runner label, e.g. "run=12 tf=dev"; may be NULL */
	sw_tf_output_fn on_output;    /* optional */
	void *arg;                    /* for on_output */
};

#define SW_TF_REQ_INIT { 0 }

enum sw_tf_kind { SW_TF_PLAN, SW_TF_APPLY, SW_TF_DRIFT };

/* One resource instance and what Terraform will do (or found) to it. */
struct sw_tf_change {
	char *address;        /* "module.vpc.aws_subnet.a[0]" */
	char *actions;        /* "create", "update", "delete", "delete,create", ... */
	int destructive;      /* the actions hold "delete" */
	/* Drift only: top-level attribute names whose value differs between
	 * before and after (NULL-terminated; NULL when none or not drift). */
	char **attrs;
	/* Plans: the resource type ("aws_instance") and, for pricing it, the
	 * few attributes cost.c reads (SW_TF_SIZING_KEYS: sizes and types,
	 * never a secret) before and after, as compact JSON objects; NULL
	 * when the plan has no such object. */
	char *type;
	char *size_before, *size_after;
};

/* The attributes kept in size_before/size_after. */
#define SW_TF_SIZING_KEYS "instance_type", "tenancy", "instance_class", "engine", "multi_az", \
	"allocated_storage", "storage_type", "node_type", "num_cache_nodes", "size", "type", \
	"load_balancer_type", "scaling_config", "instance_types", "capacity_type", "domain", \
	"connectivity_type"

struct sw_tf_result {
	enum sw_tf_kind kind;
	char *env, *module;
	/*
	 * 0: the operation did all it should (for a PR plan that includes
	 * `fmt -check` passing); <0 when it failed, with `error` saying what
	 * slipway was doing and Terraform's own message:
	 *   "terraform plan in infra/environment/dev: Error: Reference to undeclared ..."
	 * SW_ECANCELLED when cancelled.
	 */
	int status;
	char *error;          /* "" when status == 0 */
	const char *phase;    /* static: "init", "validate", "fmt", "plan", "show", "apply", "output", or "" */
	int fmt_ok;           /* PR plan: 1 formatted, 0 not (fmt_files lists them), -1 not checked */
	char *fmt_files;      /* newline-separated; "" when none */
	int plan_exit;        /* -detailed-exitcode of the (normal) plan: 0, 2, or -1 = not run / failed */
	/* From `show -json` of the normal plan (managed resources; no-op and
	 * read actions are left out of `changes`). Replacements count once
	 * in nadd and once in ndestroy, as Terraform's own summary does. */
	size_t nadd, nchange, ndestroy;
	struct sw_tf_change *changes;
	size_t nchanges;
	size_t ndestructive;
	char *plan_text;      /* stdout of the plan command (bounded), "" when none */
	/* Apply: 1 when `apply` ran and succeeded. Nothing is applied when any
	 * earlier command failed. */
	int applied;
	char *outputs_json;   /* apply: `output -json` (a JSON object); NULL otherwise */
	/* Drift: from the -refresh-only plan's `resource_drift` (the only
	 * thing trusted: its exit code alone is not, hashicorp/terraform#36403)
	 * and its `output_changes` other than no-op (root outputs whose value
	 * changed outside Terraform, e.g. through a terraform_remote_state). */
	struct sw_tf_change *drift;
	size_t ndrift;
	struct sw_tf_change *output_drift;   /* address = output name */
	size_t noutput_drift;
	int drifted;          /* ndrift + noutput_drift > 0 */
	int64_t started_ms, finished_ms;     /* wall clock: when it got the lock, and finished */
	int64_t queued_ms;                   /* when it was asked for */
};

/*
 * Called once per started operation, on the loop. The caller owns `res`
 * and frees it with sw_tf_result_free(). The op handle is invalid once
 * this is called.
 */
typedef void (*sw_tf_done_fn)(struct sw_tf_result *res, void *arg);

/*
 * Pull-request plan: init, validate, fmt -check -recursive, plan
 * -detailed-exitcode -out=PLAN (with -var-file / -var), show -json PLAN;
 * the plan file is deleted right after. A formatting problem fails the
 * result (fmt_ok = 0) but the plan still runs so the comment can show it.
 * Returns <0 with the error slot set for a bad request (then no callback);
 * everything else comes through `done`. `out` (may be NULL) gets a handle
 * for sw_tf_cancel().
 */
int sw_tf_plan(struct sw_tf *tf, const struct sw_tf_req *req, sw_tf_done_fn done, void *arg,
	       struct sw_tf_op **out);

/*
 * Merge apply: init, validate, plan -out=PLAN, show -json, then (only when
 * the plan has changes) apply -input=false PLAN, then output -json into
 * res->outputs_json. Goes ahead of waiting plans and drift checks.
 */
int sw_tf_apply(struct sw_tf *tf, const struct sw_tf_req *req, sw_tf_done_fn done, void *arg,
		struct sw_tf_op **out);

/*
 * Drift check: init, plan -refresh-only -detailed-exitcode -out=P1 + show
 * -json P1 (drift, output_drift, drifted), then a normal plan + show (the
 * counts and changes an apply would make now). Nothing is applied: on
 * drift with heal auto the caller calls sw_tf_apply().
 */
int sw_tf_drift(struct sw_tf *tf, const struct sw_tf_req *req, sw_tf_done_fn done, void *arg,
		struct sw_tf_op **out);

/*
 * Cancel: a queued operation reports SW_ECANCELLED at once (from inside
 * this call); a running one has its command killed and reports after.
 * Its plan file is removed either way. NULL is a no-op.
 */
void sw_tf_cancel(struct sw_tf_op *op);

void sw_tf_result_free(struct sw_tf_result *res);

/* ---- show -json (infra/tfplan.c) ----------------------------------- */

/*
 * Fill res's counts and `changes` from the JSON of `terraform show -json`
 * of a normal plan; with `drift` set instead fill `drift` (with changed
 * attributes) and `output_drift` from a -refresh-only plan. Earlier
 * contents of those fields are freed. SW_EINVALID when the text is not a
 * plan document.
 */
int sw_tf_parse_show(struct sw_tf_result *res, const char *json, size_t len, int drift);

/*
 * What may be kept of `terraform output -json` ({"NAME": {"sensitive": B,
 * "type": T, "value": V}}): {"NAME": V}, with the value of every output
 * marked sensitive (or whose marking is missing or not a boolean) replaced
 * by the string "(sensitive)". Sensitive values are in clear text in
 * Terraform's JSON; only this form may be stored, logged or shown. *out
 * gets compact JSON with sorted keys (caller frees); SW_EINVALID when the
 * text is not a JSON object.
 */
int sw_tf_outputs_redact(char **out, const char *json, size_t len);

/* ---- reporting and selection ------------------------------------------- */

/*
 * Markdown section for the run's PR comment, at most `max_bytes` (>= 256)
 * bytes: a heading with the environment and module, the result (or the
 * error), the counts, destructive actions at the top, a table of every
 * address with its action, then the plan text folded in <details>. The
 * plan text is cut first, then the table, to fit. Text from Terraform is
 * cleaned (valid UTF-8, no control characters) and cannot close its code
 * fence. `env` may be NULL (res->env is used). The caller frees the result.
 */
char *sw_tf_report_markdown(const struct sw_tf_result *res, const char *env, size_t max_bytes);

/* ---- cost (infra/cost.c) ------------------------------------------------ */

/*
 * A price for `service` at filters `f` (see aws/aws.h): 0 with *out set,
 * or <0 with the error slot saying why there is none. May block: cost is
 * computed on a worker thread.
 */
typedef int (*sw_tf_price_fn)(struct sw_aws_price *out, const char *service,
			      const struct sw_aws_price_filter *f, size_t nf, void *arg);

struct sw_tf_cost_line {
	char *address;
	char *what;          /* "2 × m5.large", "100 GB gp3" */
	double before, after;/* USD a month; 0 for what does not exist */
	char *note;          /* not priced, and why; NULL when priced */
};

struct sw_tf_cost {
	struct sw_tf_cost_line *lines;   /* priced first, biggest change first */
	size_t nlines;
	double delta;        /* USD a month, of the priced lines */
	size_t priced;
	size_t unknown;      /* lines whose price could not be had (delta is a lower bound) */
	char region[32];
	char date[16];       /* the oldest price's date */
};

/*
 * Price the changes of a plan result in `region`: a line per resource of a
 * type priced by the hour or the GB-month (aws_instance, aws_eks_cluster,
 * aws_eks_node_group, aws_nat_gateway, aws_lb, aws_db_instance,
 * aws_ebs_volume, aws_eip, aws_elasticache_cluster), before and after; other
 * aws_* resources as "not priced". Never fails: a price not had is a line
 * with its reason. Release with sw_tf_cost_release.
 */
int sw_tf_cost(struct sw_tf_cost *out, const struct sw_tf_result *res, const char *region,
	       sw_tf_price_fn price, void *arg);
void sw_tf_cost_release(struct sw_tf_cost *c);

/*
 * Prices from AWS (pricing:GetProducts with the credentials of the
 * config's `aws:`, through the SDKs' chain), kept in the store's kv for a
 * week ("not found" for a day). sw_tf_price_plan blocks (a worker
 * thread): 0 with `out` filled, or <0 when there can be no prices at all,
 * the slot saying why (no credentials: the chain's answer, held for five
 * minutes before the chain is asked again). Thread-safe.
 */
struct sw_tf_pricer;
int sw_tf_pricer_new(struct sw_tf_pricer **out, const struct sw_cfg_aws *cfg,
		     const char *data_dir);
void sw_tf_pricer_free(struct sw_tf_pricer *p);      /* NULL is a no-op */
const char *sw_tf_pricer_region(const struct sw_tf_pricer *p);
int sw_tf_price_plan(struct sw_tf_cost *out, struct sw_tf_pricer *p,
		     const struct sw_tf_result *res);

/* The PR comment's cost section for `env`, at most about `max` bytes; with
 * c == NULL a line saying why there is none (`why_not`). Free it. */
char *sw_tf_cost_markdown(const struct sw_tf_cost *c, const char *env, const char *why_not,
			  size_t max);

/*
 * Which root modules of `infra` a change touches: hit[i] (infra->nmodules
 * entries) is set when a path in `changed` lies under module i, under a
 * local module it uses (`source = "./..."` or `"../..."` in its *.tf
 * files, followed transitively) or is the environment's var_file. Paths
 * are relative to the checkout at `checkout`, which is read to find the
 * module sources. Returns the number of modules hit, or <0 on error.
 * Blocking (reads files).
 */
int sw_tf_affected(unsigned char *hit, const char *checkout, const struct sw_cfg_infra *infra,
		   const char *const *changed, size_t nchanged);

/*
 * The local module directories `module` uses, transitively, as
 * checkout-relative paths (the module itself first). NULL-terminated,
 * caller frees each and the array. Blocking.
 */
int sw_tf_module_deps(char ***out, const char *checkout, const char *module);

/* ======================================================================
 * Drift checks (infra/checks.c)
 * ======================================================================
 *
 * Per environment with infra modules and infra.drift_interval, a one-shot
 * timer; when it fires, the environment's last applied commit (kv
 * `infra:commit:ENV`, else its synced commit) is checked out on a worker
 * and each root module gets sw_tf_drift(). Drift found is recorded as
 * drift events, sent to Slack once and shown as the environment's
 * infra_status; with heal auto an apply follows. Checks of one environment
 * never overlap.
 */
struct sw_infra;
struct sw_outbox;
struct sw_store;
struct sw_pool;
struct event_base;

struct sw_infra_opts {
	struct event_base *base;
	struct sw_pool *pool;
	struct sw_store *store;        /* the loop's handle */
	struct sw_outbox *outbox;      /* drift to Slack; may be NULL */
	const struct sw_config *cfg;   /* borrowed; replace with sw_infra_reconfigure */
	struct sw_tf *tf;              /* borrowed */
};

int sw_infra_new(struct sw_infra **out, const struct sw_infra_opts *opts);
/* A new config: re-arm the timers (new environments get theirs). */
void sw_infra_reconfigure(struct sw_infra *in, const struct sw_config *cfg);
/* Stop timers and cancel running checks; sw_infra_busy says when all settled. */
void sw_infra_stop(struct sw_infra *in);
int sw_infra_busy(const struct sw_infra *in);
/* NULL is a no-op. */
void sw_infra_free(struct sw_infra *in);

#endif
