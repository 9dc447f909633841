/*
 * test_config.c - the config loader: the example config, and bad files
 * that must fail with file:line:col and the key path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "config/config.h"

static char dir[256];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/slipway-test-config.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

static char *write_file(const char *name, const char *text)
{
	char *path = sw_asprintf("%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* Load `text` as slipway.yaml; returns rc, the config (or NULL) in *out. */
static int load(const char *text, struct sw_config **out)
{
	char *path = write_file("slipway.yaml", text);
	int rc = sw_config_load(out, path);
	free(path);
	return rc;
}

/* Assert that loading fails and the message contains `want`. */
static void expect_error(const char *text, const char *want)
{
	struct sw_config *c = NULL;
	int rc = load(text, &c);
	if (rc >= 0 || !strstr(sw_error_last(), want))
		fail_msg("wanted an error containing \"%s\", got rc=%d: %s", want, rc, sw_error_last());
	assert_null(c);
}

#define MINIMAL "server:\n  data_dir: data\n"

static void test_example_config(void **state)
{
	struct sw_buf ex = SW_BUF_INIT, out = SW_BUF_INIT;
	struct sw_config *c;

	assert_int_equal(sw_buf_read_file(&ex, "contrib/slipway.example.yaml"), 0);
	/* point the example's /etc/slipway/ at files we create */
	for (const char *p = ex.ptr; *p;) {
		const char *hit = strstr(p, "/etc/slipway/");
		if (!hit) {
			sw_buf_adds(&out, p);
			break;
		}
		sw_buf_add(&out, p, (size_t)(hit - p));
		sw_buf_addf(&out, "%s/", dir);
		p = hit + strlen("/etc/slipway/");
	}
	free(write_file("api-token", "tok-api\n"));
	free(write_file("github-token", "ghp_example\n"));
	setenv("SLIPWAY_WEBHOOK_SECRET", "It's a Secret to Everybody", 1);
	setenv("SLIPWAY_SLACK_WEBHOOK", "https://hooks.slack.invalid/x", 1);
	setenv("NPM_TOKEN", "npm-secret", 1);
	setenv("NPM_READ_TOKEN", "npm-read-secret", 1);
	setenv("DEV_DB_URL", "postgres://dev", 1);
	setenv("PROD_DB_URL", "postgres://prod", 1);

	if (load(out.ptr, &c) < 0)
		fail_msg("example config rejected: %s", sw_error_last());
	assert_string_equal(c->listen_host, "127.0.0.1");
	assert_int_equal(c->listen_port, 8080);
	assert_string_equal(c->data_dir, "/var/lib/slipway");
	assert_string_equal(c->api_token.value, "tok-api");
	assert_string_equal(c->webhook_secret.value, "It's a Secret to Everybody");
	assert_string_equal(c->webhook_secret.source, "env SLIPWAY_WEBHOOK_SECRET");
	assert_string_equal(c->github_token.value, "ghp_example");
	assert_int_equal(c->runner_memory, 2LL * 1024 * 1024 * 1024);
	assert_int_equal(c->runner_nano_cpus, 1500000000LL);
	assert_int_equal(c->step_timeout_s, 1800);
	assert_int_equal(c->replay_window_s, 24 * 3600);
	assert_string_equal(sw_config_secret(c, "NPM_TOKEN"), "npm-secret");
	assert_int_equal(c->nsecrets, 2);
	assert_int_equal(c->secrets[0].short_form, 1);
	assert_int_equal(c->secrets[1].events, SW_SECRET_EV_PULL_REQUEST | SW_SECRET_EV_PUSH |
			 SW_SECRET_EV_DEPLOY);
	assert_int_equal(c->secrets[1].nbranches, 3);
	assert_int_equal(c->nrepos, 1);
	/* the repository inherits github.token for https */
	assert_string_equal(c->repos[0].token.value, "ghp_example");
	assert_int_equal(c->repos[0].poll_interval_s, 300);
	assert_int_equal(c->nenvs, 2);

	const struct sw_cfg_env *dev = sw_config_env(c, "dev");
	assert_non_null(dev);
	assert_string_equal(dev->branch, "dev");
	assert_string_equal(dev->repo, "acme/shop");
	assert_string_equal(dev->namespace, "shop");
	assert_int_equal(dev->nmanifests, 1);
	assert_string_equal(dev->manifests[0], "deploy/k8s");
	assert_int_equal(dev->infra.nmodules, 1);
	assert_int_equal(dev->infra.heal, SW_HEAL_AUTO);
	assert_int_equal(dev->infra.nvars, 1);
	assert_string_equal(dev->infra.vars[0], "region=eu-west-1");
	assert_int_equal(dev->health_timeout_s, 300);

	const struct sw_cfg_env *prod = sw_config_env_for_branch(c, "ACME/shop", "main");
	assert_non_null(prod);
	assert_string_equal(prod->name, "prod");
	assert_string_equal(prod->repo, "acme/shop");   /* filled in: one repository */
	assert_int_equal(prod->infra.heal, SW_HEAL_REPORT);
	assert_int_equal(prod->self_heal, 1);            /* default */
	assert_int_equal(prod->nsecrets, 1);
	assert_string_equal(prod->secrets[0].secret.value, "postgres://prod");
	assert_int_equal(prod->secrets[0].events, SW_SECRET_EV_DEPLOY);
	assert_string_equal(sw_config_env(c, "dev")->secrets[0].secret.value, "postgres://dev");
	assert_null(sw_config_env_for_branch(c, "acme/shop", "feature"));
	sw_config_free(c);
	sw_buf_release(&ex);
	sw_buf_release(&out);
}

static void test_defaults_and_relative_paths(void **state)
{
	struct sw_config *c;
	char *want = sw_asprintf("%s/data", dir);
	assert_int_equal(load(MINIMAL, &c), 0);
	assert_string_equal(c->data_dir, want);      /* relative to the config file */
	assert_string_equal(c->runner_backend, "docker");
	assert_int_equal(c->max_concurrent_runs, 4);
	assert_int_equal(c->durability_full, 0);
	assert_string_equal(c->public_url, "http://127.0.0.1:8080");
	assert_null(c->webhook_secret.value);
	sw_config_free(c);
	free(want);
	assert_int_equal(load(MINIMAL "  durability: full\n", &c), 0);
	assert_int_equal(c->durability_full, 1);
	sw_config_free(c);
}

static void test_wrong_type_located(void **state)
{
	expect_error(MINIMAL
		     "repositories:\n"
		     "  - {name: acme/shop, url: file:///x}\n"
		     "environments:\n"
		     "  - name: dev\n"
		     "    branch: dev\n"
		     "  - name: prod\n"
		     "    branch: [main]\n",
		     "slipway.yaml:9:13: environments[1].branch: expected a string, found sequence");
}

static void test_unknown_key(void **state)
{
	expect_error(MINIMAL "  listn: 1.2.3.4:5\n",
		     "slipway.yaml:3:3: server: unknown key 'listn'");
	expect_error(MINIMAL "githb: {}\n", "slipway.yaml:3:1: (top level): unknown key 'githb'");
}

/* aws: and terraform.cli_config: defaults, values, and what is refused where. */
static void test_aws_block(void **state)
{
	struct sw_config *c;
	assert_int_equal(load(MINIMAL, &c), 0);
	assert_int_equal(c->aws.pricing, 1);
	assert_null(c->aws.region);
	sw_config_free(c);
	assert_int_equal(load(MINIMAL "aws: {region: eu-west-1, pricing: false, role_arn: "
			      "\"arn:aws:iam::1:role/x\"}\nterraform: {cli_config: tf.rc}\n", &c), 0);
	assert_string_equal(c->aws.region, "eu-west-1");
	assert_int_equal(c->aws.pricing, 0);
	assert_string_equal(c->aws.role_arn, "arn:aws:iam::1:role/x");
	assert_true(c->tf_cli_config[0] == '/' && strstr(c->tf_cli_config, "/tf.rc"));
	sw_config_free(c);
	expect_error(MINIMAL "aws: {region: EU West}\n",
		     "slipway.yaml:3:15: aws.region: expected a region name such as eu-west-1, found EU West");
	expect_error(MINIMAL "aws: {role_arn: slipway}\n",
		     "slipway.yaml:3:17: aws.role_arn: expected an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME), found slipway");
	expect_error(MINIMAL "aws: {regoin: x}\n", "slipway.yaml:3:7: aws: unknown key 'regoin'");
}

static void test_cost_block(void **state)
{
	struct sw_config *c;
	(void)state;
	assert_int_equal(load(MINIMAL, &c), 0);
	assert_int_equal(c->cost.enabled, 0);
	sw_config_free(c);
	assert_int_equal(load(MINIMAL "cost: {}\n", &c), 0);
	assert_int_equal(c->cost.enabled, 1);
	assert_int_equal(c->cost.report, SW_COST_OFF);
	assert_int_equal(c->cost.at_min, 9 * 60);
	assert_string_equal(c->cost.timezone, "UTC");
	assert_string_equal(c->cost.tag, "environment");
	sw_config_free(c);
	assert_int_equal(load(MINIMAL "cost: {report: weekly, day: fri, at: \"17:45\", timezone: UTC, "
			      "channel: \"#costs\", tag: env}\n", &c), 0);
	assert_int_equal(c->cost.report, SW_COST_WEEKLY);
	assert_int_equal(c->cost.weekday, 5);
	assert_int_equal(c->cost.at_min, 17 * 60 + 45);
	assert_string_equal(c->cost.channel, "#costs");
	assert_string_equal(c->cost.tag, "env");
	sw_config_free(c);
	expect_error(MINIMAL "cost: {report: hourly}\n",
		     "slipway.yaml:3:16: cost.report: expected daily, weekly or off, found hourly");
	expect_error(MINIMAL "cost: {at: \"9am\"}\n",
		     "slipway.yaml:3:12: cost.at: expected a time of day as HH:MM (24 h), found 9am");
	expect_error(MINIMAL "cost: {at: \"24:00\"}\n", "cost.at: expected a time of day");
	expect_error(MINIMAL "cost: {day: monday}\n",
		     "slipway.yaml:3:13: cost.day: expected sun, mon, tue, wed, thu, fri or sat, found monday");
	expect_error(MINIMAL "cost: {timezone: Mars/Base}\n",
		     "slipway.yaml:3:18: cost.timezone: time zone Mars/Base: no such zone");
	expect_error(MINIMAL "cost: {timezone: ../../etc/passwd}\n",
		     "cost.timezone: time zone ../../etc/passwd is not a zone name");
}

static void test_ignore_differences(void **state)
{
	struct sw_config *c;
	(void)state;
	assert_int_equal(load(MINIMAL "repositories:\n  - {name: a/b, url: \"file:///x\"}\n"
		"environments:\n  - name: dev\n    branch: dev\n    ignore_differences:\n"
		"      - {group: apps, kind: Deployment, name: web, json_pointers: [/spec/replicas, \"/metadata/annotations/a~1b\"]}\n"
		"      - {kind: ConfigMap, json_pointers: [/data/x]}\n", &c), 0);
	assert_int_equal(c->envs[0].nignore, 2);
	assert_string_equal(c->envs[0].ignore[0].group, "apps");
	assert_string_equal(c->envs[0].ignore[0].pointers[1], "/metadata/annotations/a~1b");
	assert_string_equal(c->envs[0].ignore[1].group, "");
	assert_null(c->envs[0].ignore[1].name);
	sw_config_free(c);
	expect_error(MINIMAL "repositories:\n  - {name: a/b, url: \"file:///x\"}\n"
		"environments:\n  - name: dev\n    branch: dev\n    ignore_differences:\n"
		"      - {kind: ConfigMap, json_pointers: [data.x]}\n",
		"environments[0].ignore_differences[0].json_pointers: 'data.x' is not a JSON pointer: a JSON pointer starts with /");
	expect_error(MINIMAL "repositories:\n  - {name: a/b, url: \"file:///x\"}\n"
		"environments:\n  - name: dev\n    branch: dev\n    ignore_differences:\n"
		"      - {kind: ConfigMap, json_pointers: [\"/a~2\"]}\n", "~ must be followed by 0 (~) or 1 (/)");
	expect_error(MINIMAL "repositories:\n  - {name: a/b, url: \"file:///x\"}\n"
		"environments:\n  - name: dev\n    branch: dev\n    ignore_differences:\n"
		"      - {json_pointers: [/a]}\n", "ignore_differences[0].kind: missing");
}

/* A key written twice is an error at its second place, in any mapping. */
static void test_repeated_key(void **state)
{
	expect_error(MINIMAL "  data_dir: other\n",
		     "slipway.yaml:3:3: server: key 'data_dir' appears twice (first at 2:3)");
	expect_error(MINIMAL "secrets:\n  A: {secret_env: HOME}\n  A: {secret_env: HOME}\n",
		     "slipway.yaml:5:3: secrets: key 'A' appears twice (first at 4:3)");
}

static void test_missing_required(void **state)
{
	expect_error(MINIMAL "repositories:\n  - name: acme/shop\n",
		     "slipway.yaml:4:5: repositories[0].url: missing");
	expect_error("server:\n  listen: 127.0.0.1:1\n", "server.data_dir: missing");
}

static void test_inline_secret_refused(void **state)
{
	expect_error(MINIMAL "github:\n  webhook_secret: hunter2\n",
		     "slipway.yaml:4:19: github.webhook_secret: write {secret_file: PATH} or {secret_env: NAME}");
	/* and the secret itself never appears in the message */
	assert_null(strstr(sw_error_last(), "hunter2"));
}

static void test_secret_sources(void **state)
{
	unsetenv("SLIPWAY_NOT_SET");
	expect_error(MINIMAL "github:\n  webhook_secret: {secret_env: SLIPWAY_NOT_SET}\n",
		     "github.webhook_secret: environment variable SLIPWAY_NOT_SET is not set");
	expect_error(MINIMAL "github:\n  webhook_secret: {secret_file: nope.txt}\n",
		     "github.webhook_secret: cannot read secret file");
	expect_error(MINIMAL "github:\n  webhook_secret: {secret_file: a, secret_env: B}\n",
		     "give exactly one of secret_file or secret_env");
	/* only a regular file of at most 1 MiB: /dev/zero would be read forever */
	expect_error(MINIMAL "github:\n  webhook_secret: {secret_file: /dev/zero}\n",
		     "github.webhook_secret: secret file /dev/zero is not a regular file");
	expect_error(MINIMAL "github:\n  webhook_secret: {secret_file: /}\n",
		     "secret file / is not a regular file");
	char *big = sw_calloc(1, 1024 * 1024 + 2);
	memset(big, 'x', 1024 * 1024 + 1);
	free(write_file("big-secret", big));
	free(big);
	expect_error(MINIMAL "github:\n  webhook_secret: {secret_file: big-secret}\n",
		     "secret file");
	assert_non_null(strstr(sw_error_last(), "big-secret is larger than 1 MiB"));
}

/* github.app: the key must parse at load, and the message never shows it. */
static void test_github_app(void **state)
{
	struct sw_config *c = NULL;

	char *cmd = sw_asprintf("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
				"-out %s/app.pem 2>/dev/null", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	assert_int_equal(load(MINIMAL "github:\n  app:\n    id: 4242\n"
			      "    private_key: {secret_file: app.pem}\n    installation_id: 77\n", &c), 0);
	assert_string_equal(c->github_app.id, "4242");
	assert_non_null(strstr(c->github_app.private_key.value, "PRIVATE KEY"));
	assert_int_equal(c->github_app.installation_id, 77);
	assert_true(sw_config_github_auth(c));
	sw_config_free(c);
	assert_int_equal(load(MINIMAL "github:\n  app: {id: Iv1.abc123, private_key: {secret_file: app.pem}}\n",
			      &c), 0);
	assert_string_equal(c->github_app.id, "Iv1.abc123");
	assert_int_equal(c->github_app.installation_id, 0);
	sw_config_free(c);

	free(write_file("bad.pem", "-----BEGIN PRIVATE KEY-----\nS3CR3TK3YT3XT\n-----END PRIVATE KEY-----\n"));
	expect_error(MINIMAL "github:\n  app: {id: 1, private_key: {secret_file: bad.pem}}\n",
		     "github.app.private_key: file ");
	assert_non_null(strstr(sw_error_last(), "bad.pem: not a PEM private key"));
	assert_null(strstr(sw_error_last(), "S3CR3T"));
	expect_error(MINIMAL "github:\n  app: {id: 1}\n", "github.app: private_key: missing");
	expect_error(MINIMAL "github:\n  app: {private_key: {secret_file: app.pem}}\n",
		     "github.app.id: missing");
	expect_error(MINIMAL "github:\n  app: {id: \"a b\", private_key: {secret_file: app.pem}}\n",
		     "github.app.id: expected the App's id");
	expect_error(MINIMAL "github:\n  app: {id: 1, private_key: {secret_file: app.pem}, "
		     "installation_id: -3}\n", "github.app.installation_id: expected a positive number");
	expect_error(MINIMAL "github:\n  app: {id: 1, private_key: {secret_file: app.pem}, "
		     "owner: x}\n", "owner");
	assert_int_equal(load(MINIMAL, &c), 0);
	assert_false(sw_config_github_auth(c));
	sw_config_free(c);
}

/* Stage isolation: the defaults ship locked down; the admin changes them. */
static void test_runner_isolation(void **state)
{
	struct sw_config *c = NULL;

	assert_int_equal(load(MINIMAL, &c), 0);
	assert_int_equal(c->nrunner_cap_add, 6);
	assert_string_equal(c->runner_cap_add[0], "CHOWN");
	assert_null(c->runner_cap_add[6]);
	assert_int_equal(c->runner_pids, 1024);
	assert_null(c->runner_user);
	assert_string_equal(c->runner_network, "bridge");
	assert_string_equal(c->runner_pr_network, "none");
	assert_int_equal(c->nrunner_pr_network_repos, 0);
	sw_config_free(c);

	assert_int_equal(load(MINIMAL "runner:\n  cap_add: []\n  pids: 64\n  user: \"1000:1000\"\n"
			      "  pr_network: slipway-pr\n  pr_network_repos: [acme/web]\n", &c), 0);
	assert_int_equal(c->nrunner_cap_add, 0);
	assert_null(c->runner_cap_add[0]);
	assert_int_equal(c->runner_pids, 64);
	assert_string_equal(c->runner_user, "1000:1000");
	assert_string_equal(c->runner_pr_network, "slipway-pr");
	assert_string_equal(c->runner_pr_network_repos[0], "acme/web");
	sw_config_free(c);

	expect_error(MINIMAL "runner:\n  pids: many\n", "runner.pids: expected an integer");
	/* cpus is bounded: .inf and 1e300 nanoseconds do not fit an int64 */
	assert_int_equal(load(MINIMAL "runner:\n  cpus: 4096\n", &c), 0);
	assert_int_equal(c->runner_nano_cpus, 4096000000000LL);
	sw_config_free(c);
	expect_error(MINIMAL "runner:\n  cpus: .inf\n", "runner.cpus: expected a positive number of at most 4096");
	expect_error(MINIMAL "runner:\n  cpus: 1e300\n", "runner.cpus: expected a positive number");
	expect_error(MINIMAL "runner:\n  cpus: 4097\n", "runner.cpus: expected a positive number");
	expect_error(MINIMAL "runner:\n  cpus: .nan\n", "runner.cpus: expected a positive number");
}

static void test_yaml_syntax_error(void **state)
{
	expect_error("server:\n  data_dir: [unclosed\n", "slipway.yaml:3:1:");
	expect_error("a: 1\n---\nb: 2\n", "slipway.yaml:2:1: expected exactly one YAML document");
}

static void test_every_error_reported(void **state)
{
	struct sw_config *c = NULL;
	int rc = load("server:\n  listen: nope\n  data_dir: d\n  log_level: loud\n"
		      "  durability: always\n"
		      "runner:\n  backend: kubernetes\n  timeout: soon\n", &c);
	assert_int_equal(rc, SW_EINVALID);
	const char *e = sw_error_last();
	assert_non_null(strstr(e, "slipway.yaml:2:11: server.listen: expected HOST:PORT"));
	assert_non_null(strstr(e, "slipway.yaml:4:14: server.log_level: expected debug, info, warn or error"));
	assert_non_null(strstr(e, "slipway.yaml:5:15: server.durability: expected normal or full"));
	assert_non_null(strstr(e, "slipway.yaml:7:12: runner.backend: expected docker or local"));
	assert_non_null(strstr(e, "slipway.yaml:8:12: runner.timeout: expected a duration"));
}

static void test_links_between_sections(void **state)
{
	expect_error(MINIMAL
		     "repositories:\n  - {name: acme/shop, url: file:///x}\n"
		     "environments:\n  - {name: dev, branch: dev, repository: acme/other}\n",
		     "environments[0]: repository acme/other is not in repositories");
	expect_error(MINIMAL
		     "repositories:\n  - {name: acme/shop, url: file:///x}\n"
		     "environments:\n  - {name: dev, branch: dev}\n  - {name: dev, branch: main}\n",
		     "environment dev is defined twice");
	/* cluster: in-cluster, or a mapping */
	struct sw_config *ic;
	assert_int_equal(load(MINIMAL "repositories:\n  - {name: acme/shop, url: file:///x}\n"
		"environments:\n  - {name: a, branch: dev, cluster: in-cluster, manifests: [k]}\n", &ic), 0);
	assert_true(ic->envs[0].in_cluster);
	assert_true(sw_cfg_env_has_cluster(&ic->envs[0]));
	assert_null(ic->envs[0].kubeconfig);
	sw_config_free(ic);
	expect_error(MINIMAL "repositories:\n  - {name: acme/shop, url: file:///x}\n"
		"environments:\n  - {name: a, branch: dev, cluster: incluster}\n",
		"cluster: expected in-cluster or a mapping with kubeconfig, found incluster");
	/* several on one branch: in order, in parallel, or after another */
	struct sw_config *c;
	assert_int_equal(load(MINIMAL "repositories:\n  - {name: acme/shop, url: file:///x}\n"
		"environments:\n  - {name: s, branch: dev, after: a}\n  - {name: a, branch: dev}\n"
		"  - {name: b, branch: dev}\n  - {name: p, branch: dev, parallel: true}\n"
		"  - {name: m, branch: main}\n", &c), 0);
	assert_string_equal(sw_config_env_for_branch(c, "acme/shop", "dev")->name, "a");
	assert_string_equal(sw_config_env_before(c, &c->envs[0])->name, "a");
	assert_null(sw_config_env_before(c, &c->envs[1]));
	assert_string_equal(sw_config_env_before(c, &c->envs[2])->name, "a");
	assert_null(sw_config_env_before(c, &c->envs[3]));
	assert_null(sw_config_env_before(c, &c->envs[4]));
	sw_config_free(c);
	expect_error(MINIMAL
		     "repositories:\n  - {name: acme/shop, url: file:///x}\n"
		     "environments:\n  - {name: a, branch: dev, after: b}\n  - {name: b, branch: dev, after: a}\n",
		     "the environments of branch dev follow each other in a circle (after:)");
	expect_error(MINIMAL
		     "repositories:\n  - {name: acme/shop, url: file:///x}\n"
		     "environments:\n  - {name: a, branch: dev}\n  - {name: b, branch: main, after: a}\n",
		     "after: a deploys dev of acme/shop, not main of acme/shop: a promotion follows an environment of the same branch");
	expect_error(MINIMAL
		     "repositories:\n  - {name: acme/shop, url: file:///x}\n"
		     "environments:\n  - {name: a, branch: dev, after: nope}\n",
		     "after: no environment is named nope");
	expect_error(MINIMAL
		     "repositories:\n  - {name: acme/shop, url: file:///x}\n"
		     "environments:\n  - {name: a, branch: dev}\n  - {name: b, branch: dev, after: a, parallel: true}\n",
		     "parallel and after exclude each other");
	expect_error(MINIMAL
		     "repositories:\n  - {name: acme/shop, url: file:///x}\n"
		     "environments:\n  - {name: a, branch: dev, manifests: [k8s]}\n",
		     "manifests are listed but cluster.kubeconfig is not set");
}

static void test_terraform_section(void **state)
{
	struct sw_config *c;
	char *want = sw_asprintf("%s/state", dir);

	assert_int_equal(load(MINIMAL, &c), 0);
	assert_null(c->tf_image);                    /* default: the host's terraform */
	assert_int_equal(c->ntf_mounts, 0);
	sw_config_free(c);

	assert_int_equal(load(MINIMAL "terraform:\n  image: hashicorp/terraform:1.11\n"
			      "  mounts: [state, /etc/slipway/aws]\n", &c), 0);
	assert_string_equal(c->tf_image, "hashicorp/terraform:1.11");
	assert_int_equal(c->ntf_mounts, 2);
	assert_string_equal(c->tf_mounts[0], want);  /* relative to the config file */
	assert_string_equal(c->tf_mounts[1], "/etc/slipway/aws");
	assert_null(c->tf_mounts[2]);                /* NULL-terminated */
	sw_config_free(c);
	free(want);

	expect_error(MINIMAL "terraform:\n  mounts: [/srv/state]\n",
		     "slipway.yaml:4:11: terraform.mounts: mounts are for terraform.image");
	expect_error(MINIMAL "terraform:\n  image: tf\n  mounts: [\"/a:/b\"]\n",
		     "terraform.mounts: [0]: a path cannot hold ':'");
	expect_error(MINIMAL "terraform:\n  image: tf\n  binary: x\n",
		     "terraform: unknown key 'binary'");
	expect_error(MINIMAL "terraform:\n  image: [a]\n", "terraform.image: expected a string");
}

static void test_retention_section(void **state)
{
	struct sw_config *c;

	assert_int_equal(load(MINIMAL, &c), 0);
	assert_int_equal(c->retention.interval_s, 3600);
	assert_int_equal(c->retention.deliveries_age_s, 30 * 86400);
	assert_int_equal(c->retention.logs_age_s, 90 * 86400);
	assert_int_equal(c->retention.runs_age_s, 365 * 86400);
	assert_int_equal(c->retention.drift_age_s, 90 * 86400);
	assert_int_equal(c->retention.runs_count, 0);
	sw_config_free(c);

	assert_int_equal(load(MINIMAL "retention:\n  interval: 10m\n  batch: 100\n"
			      "  runs: {age: 0, count: 5000}\n  logs: {age: 14d}\n", &c), 0);
	assert_int_equal(c->retention.interval_s, 600);
	assert_int_equal(c->retention.batch, 100);
	assert_int_equal(c->retention.runs_age_s, 0);
	assert_int_equal(c->retention.runs_count, 5000);
	assert_int_equal(c->retention.logs_age_s, 14 * 86400);
	assert_int_equal(c->retention.deliveries_age_s, 30 * 86400);  /* untouched */
	sw_config_free(c);

	expect_error(MINIMAL "retention:\n  logs: {count: 3}\n",
		     "retention.logs: unknown key 'count'");
	expect_error(MINIMAL "retention:\n  runs: {age: 1y}\n",
		     "slipway.yaml:4:15: retention.runs.age: expected a duration");
	expect_error(MINIMAL "retention:\n  builds: {age: 1d}\n",
		     "retention: unknown key 'builds'");
}

static void test_missing_file(void **state)
{
	struct sw_config *c = NULL;
	assert_true(sw_config_load(&c, "/nonexistent/slipway.yaml") < 0);
	assert_non_null(strstr(sw_error_last(), "/nonexistent/slipway.yaml: No such file or directory"));
}

static void test_server_limits(void **state)
{
	struct sw_config *c;
	assert_int_equal(load(MINIMAL, &c), 0);
	assert_int_equal(c->max_header_size, 64 * 1024);
	assert_int_equal(c->max_uri_size, 8 * 1024);
	assert_int_equal(c->read_timeout_s, 10);
	assert_int_equal(c->max_connections, 0);   /* derived at start-up */
	assert_int_equal(c->ntrusted_proxies, 0);
	sw_config_free(c);
	assert_int_equal(load(MINIMAL "  max_header_size: 16k\n  max_uri_size: 2k\n"
			      "  read_timeout: 3s\n  max_connections: 100\n"
			      "  trusted_proxies: [10.0.0.0/8, \"::1\"]\n", &c), 0);
	assert_int_equal(c->max_header_size, 16 * 1024);
	assert_int_equal(c->max_uri_size, 2048);
	assert_int_equal(c->read_timeout_s, 3);
	assert_int_equal(c->max_connections, 100);
	assert_int_equal(c->ntrusted_proxies, 2);
	assert_true(sw_cidr_match(&c->trusted_proxies[0], "10.1.2.3"));
	assert_true(sw_cidr_match(&c->trusted_proxies[1], "::1"));
	sw_config_free(c);
	expect_error(MINIMAL "  trusted_proxies:\n    - 10.0.0.0/8\n    - 10.1.0.0/8\n",
		     "slipway.yaml:5:7: server.trusted_proxies: [1]: 10.1.0.0/8: bits beyond");
	expect_error(MINIMAL "  max_header_size: 10\n",
		     "server.max_header_size: expected a size from 1k to 16m, found 10 bytes");
	expect_error(MINIMAL "  read_timeout: 0s\n", "server.read_timeout: expected a duration "
		     "from 1s to 1h");
	expect_error(MINIMAL "  max_connections: 3\n", "server.max_connections: expected an "
		     "integer from 16");
}

static void test_durations_and_sizes(void **state)
{
	assert_int_equal(sw_parse_duration("90"), 90);
	assert_int_equal(sw_parse_duration("30s"), 30);
	assert_int_equal(sw_parse_duration("5m"), 300);
	assert_int_equal(sw_parse_duration("1h30m"), 5400);
	assert_int_equal(sw_parse_duration("2d"), 172800);
	assert_int_equal(sw_parse_duration(""), -1);
	assert_int_equal(sw_parse_duration("m"), -1);
	assert_int_equal(sw_parse_duration("5x"), -1);
	assert_int_equal(sw_parse_duration("-5s"), -1);
	assert_int_equal(sw_parse_size("512"), 512);
	assert_int_equal(sw_parse_size("64k"), 65536);
	assert_int_equal(sw_parse_size("512m"), 512LL << 20);
	assert_int_equal(sw_parse_size("2G"), 2LL << 30);
	assert_int_equal(sw_parse_size("2gb"), 2LL << 30);
	assert_int_equal(sw_parse_size("2Gi"), 2LL << 30);
	assert_int_equal(sw_parse_size("lots"), -1);
	assert_int_equal(sw_parse_size("3t"), -1);
}

/* Scoped secrets: each mistake is an error at the node, with its path. */
static void test_scoped_secret_errors(void **state)
{
	setenv("T_SCOPED", "v", 1);
	expect_error(MINIMAL "secrets:\n  A: {value: {secret_env: T_SCOPED}, branches: [\"rel[ease\"]}\n",
		     "slipway.yaml:4:49: secrets.A.branches: invalid glob 'rel[ease': '[' without a closing ']'");
	expect_error(MINIMAL "secrets:\n  A: {value: {secret_env: T_SCOPED}, events: [pull_request, pr]}\n",
		     "slipway.yaml:4:61: secrets.A.events: unknown event 'pr' (expected pull_request, push or deploy)");
	expect_error(MINIMAL "secrets:\n  A: {value: {secret_env: T_SCOPED}, environments: [stage]}\n",
		     "slipway.yaml:4:53: secrets.A: environments: unknown environment 'stage'");
	expect_error(MINIMAL "secrets:\n  A: {value: {secret_env: T_SCOPED}, repositories: [o/x]}\n",
		     "slipway.yaml:4:53: secrets.A: repositories: unknown repository 'o/x'");
	expect_error(MINIMAL "secrets:\n  A: {value: {secret_env: T_SCOPED}, secret_env: T_SCOPED}\n",
		     "slipway.yaml:4:6: secrets.A: give the value under value: {secret_env|secret_file} "
		     "or write the short form alone, not both");
	expect_error(MINIMAL "secrets:\n  A: {value: {secret_env: T_SCOPED}, when: push}\n",
		     "slipway.yaml:4:38: secrets.A: unknown key 'when'");
	expect_error(MINIMAL "secrets:\n  A: {value: hunter2}\n",
		     "slipway.yaml:4:14: secrets.A.value: write {secret_file: PATH} or {secret_env: NAME}");
	expect_error(MINIMAL "secrets:\n  A: {value: {secret_env: T_SCOPED}, branches: []}\n",
		     "slipway.yaml:4:48: secrets.A.branches: empty list");
	/* an environment's own secrets: no `environments`, names checked */
	expect_error(MINIMAL "repositories: [{name: o/r, url: 'file:///x'}]\n"
		     "environments:\n  - name: dev\n    branch: dev\n    secrets:\n"
		     "      DB: {value: {secret_env: T_SCOPED}, environments: [dev]}\n",
		     "slipway.yaml:8:43: environments[0].secrets.DB: unknown key 'environments'");
	expect_error(MINIMAL "repositories: [{name: o/r, url: 'file:///x'}]\n"
		     "environments:\n  - name: dev\n    branch: dev\n    secrets:\n"
		     "      DB: {value: {secret_env: T_SCOPED}, repositories: [o/q]}\n",
		     "slipway.yaml:8:58: environments[0].secrets.DB: repositories: unknown repository 'o/q'");
	expect_error(MINIMAL "repositories: [{name: o/r, url: 'file:///x'}]\n"
		     "environments:\n  - name: dev\n    branch: dev\n    secrets:\n"
		     "      9DB: {secret_env: T_SCOPED}\n",
		     "slipway.yaml:8:7: environments[0].secrets: '9DB' is not a valid environment variable name");
	expect_error(MINIMAL "repositories: [{name: o/r, url: 'file:///x'}]\n"
		     "environments:\n  - name: dev\n    branch: dev\n    acceptance: {cluster_access: true}\n",
		     "slipway.yaml:7:17: environments[0].acceptance: cluster_access needs cluster.kubeconfig");
}

static void test_scoped_secrets_read(void **state)
{
	struct sw_config *c;
	setenv("T_SCOPED", "v-global", 1);
	setenv("T_SCOPED_DEV", "v-dev", 1);
	assert_int_equal(load(MINIMAL "secrets:\n  A: {secret_env: T_SCOPED}\n"
			      "  B:\n    value: {secret_env: T_SCOPED}\n    events: [pull_request]\n"
			      "    branches: [main, 'release/*']\n    environments: [dev]\n"
			      "    repositories: [o/r]\n"
			      "repositories: [{name: o/r, url: 'file:///x'}]\n"
			      "environments:\n  - name: dev\n    branch: dev\n"
			      "    secrets: {A: {secret_env: T_SCOPED_DEV}}\n", &c), 0);
	assert_int_equal(c->nsecrets, 2);
	assert_int_equal(c->secrets[0].short_form, 1);
	assert_int_equal(c->secrets[0].events, SW_SECRET_EV_SHORT_FORM);
	assert_int_equal(c->secrets[1].short_form, 0);
	assert_int_equal(c->secrets[1].events, SW_SECRET_EV_PULL_REQUEST);
	assert_int_equal(c->secrets[1].nbranches, 2);
	assert_string_equal(c->secrets[1].branches[1], "release/*");
	assert_int_equal(c->secrets[1].nenvironments, 1);
	assert_int_equal(c->secrets[1].nrepositories, 1);
	assert_int_equal(c->envs[0].nsecrets, 1);
	assert_string_equal(c->envs[0].secrets[0].secret.value, "v-dev");
	assert_string_equal(sw_config_secret(c, "A"), "v-global");
	assert_int_equal(c->envs[0].acceptance_cluster_access, 0);
	sw_config_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example_config),
		cmocka_unit_test(test_defaults_and_relative_paths),
		cmocka_unit_test(test_wrong_type_located),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_aws_block),
		cmocka_unit_test(test_cost_block),
		cmocka_unit_test(test_ignore_differences),
		cmocka_unit_test(test_repeated_key),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_inline_secret_refused),
		cmocka_unit_test(test_secret_sources),
		cmocka_unit_test(test_yaml_syntax_error),
		cmocka_unit_test(test_every_error_reported),
		cmocka_unit_test(test_runner_isolation),
		cmocka_unit_test(test_links_between_sections),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_terraform_section),
		cmocka_unit_test(test_durations_and_sizes),
		cmocka_unit_test(test_server_limits),
		cmocka_unit_test(test_retention_section),
		cmocka_unit_test(test_github_app),
		cmocka_unit_test(test_scoped_secret_errors),
		cmocka_unit_test(test_scoped_secrets_read),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
