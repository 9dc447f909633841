/*
 * test_secrets.c - scoped secrets: the one rule that decides whether a
 * stage may have a server secret (config/secrets.c), table-driven over
 * event x branch x environment x repository x fork, with the reasons a
 * pull request shows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/strv.h"
#include "config/config.h"

static char dir[256];
static struct sw_config *cfg;

#define PR SW_SECRET_EV_PULL_REQUEST
#define PUSH SW_SECRET_EV_PUSH
#define DEPLOY SW_SECRET_EV_DEPLOY

static const char *const config_text =
	"server: {data_dir: data}\n"
	"secrets:\n"
	"  LEGACY: {secret_env: T_LEGACY}\n"
	"  PR_OK: {value: {secret_env: T_PR}, events: [pull_request]}\n"
	"  MAIN_ONLY:\n"
	"    value: {secret_env: T_MAIN}\n"
	"    events: [pull_request, push, deploy]\n"
	"    branches: [main, \"release/*\"]\n"
	"  DEV_ONLY: {value: {secret_env: T_DEVONLY}, environments: [dev]}\n"
	"  SHOP_ONLY: {value: {secret_env: T_SHOP}, events: [pull_request, push, deploy],\n"
	"              repositories: [acme/shop]}\n"
	"  DB: {value: {secret_env: T_DB_GLOBAL}, events: [pull_request]}\n"
	"repositories:\n"
	"  - {name: acme/shop, url: 'file:///x'}\n"
	"  - {name: acme/other, url: 'file:///y'}\n"
	"environments:\n"
	"  - name: dev\n"
	"    repository: acme/shop\n"
	"    branch: dev\n"
	"    secrets:\n"
	"      DB: {secret_env: T_DB_DEV}\n"
	"      ONLY_DEV: {secret_env: T_ONLYDEV}\n"
	"  - name: prod\n"
	"    repository: acme/shop\n"
	"    branch: main\n"
	"    secrets:\n"
	"      DB: {value: {secret_env: T_DB_PROD}, events: [deploy]}\n";

static int setup(void **state)
{
	static const char *const env[][2] = {
		{ "T_LEGACY", "v-legacy" }, { "T_PR", "v-pr" }, { "T_MAIN", "v-main" },
		{ "T_DEVONLY", "v-devonly" }, { "T_SHOP", "v-shop" }, { "T_DB_GLOBAL", "v-db-global" },
		{ "T_DB_DEV", "v-db-dev" }, { "T_ONLYDEV", "v-onlydev" }, { "T_DB_PROD", "v-db-prod" },
	};
	char path[300];
	FILE *f;
	snprintf(dir, sizeof(dir), "/tmp/slipway-test-secrets.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++)
		setenv(env[i][0], env[i][1], 1);
	snprintf(path, sizeof(path), "%s/slipway.yaml", dir);
	if (!(f = fopen(path, "w")))
		return -1;
	fputs(config_text, f);
	fclose(f);
	if (sw_config_load(&cfg, path) < 0) {
		fprintf(stderr, "%s\n", sw_error_last());
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];
	sw_config_free(cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

struct row {
	const char *name;
	unsigned event;
	const char *repo, *branch, *env;
	int fork;
	enum sw_secret_verdict want;
	const char *value;       /* when given */
};

/*
 * A pull request's branch is its base and its environment the one its
 * base deploys to (the engine fills them so: engine_secret_ask); push and
 * deploy stages have their run's branch and environment.
 */
static const struct row rows[] = {
	/* the short form: push and deploy of tracked branches only */
	{ "LEGACY", PR, "acme/shop", "dev", "dev", 0, SW_SECRET_NOT_EVENT, NULL },
	{ "LEGACY", PR, "acme/shop", "feature/x", NULL, 0, SW_SECRET_NOT_EVENT, NULL },
	{ "LEGACY", PUSH, "acme/shop", "dev", "dev", 0, SW_SECRET_GIVEN, "v-legacy" },
	{ "LEGACY", DEPLOY, "acme/shop", "main", "prod", 0, SW_SECRET_GIVEN, "v-legacy" },
	{ "LEGACY", PR, "acme/shop", "main", "prod", 1, SW_SECRET_FORK, NULL },
	/* pull_request named: pull requests only */
	{ "PR_OK", PR, "acme/shop", "feature/x", NULL, 0, SW_SECRET_GIVEN, "v-pr" },
	{ "PR_OK", PR, "acme/other", "main", NULL, 0, SW_SECRET_GIVEN, "v-pr" },
	{ "PR_OK", PUSH, "acme/shop", "dev", "dev", 0, SW_SECRET_NOT_EVENT, NULL },
	{ "PR_OK", DEPLOY, "acme/shop", "main", "prod", 0, SW_SECRET_NOT_EVENT, NULL },
	{ "PR_OK", PR, "acme/shop", "feature/x", NULL, 1, SW_SECRET_FORK, NULL },
	/* branch globs */
	{ "MAIN_ONLY", PR, "acme/shop", "main", "prod", 0, SW_SECRET_GIVEN, "v-main" },
	{ "MAIN_ONLY", PR, "acme/shop", "dev", "dev", 0, SW_SECRET_NOT_BRANCH, NULL },
	{ "MAIN_ONLY", PUSH, "acme/shop", "release/1.2", NULL, 0, SW_SECRET_GIVEN, "v-main" },
	{ "MAIN_ONLY", PUSH, "acme/shop", "release", NULL, 0, SW_SECRET_NOT_BRANCH, NULL },
	{ "MAIN_ONLY", DEPLOY, "acme/shop", "dev", "dev", 0, SW_SECRET_NOT_BRANCH, NULL },
	{ "MAIN_ONLY", PUSH, "acme/shop", NULL, NULL, 0, SW_SECRET_NOT_BRANCH, NULL },
	{ "MAIN_ONLY", PR, "acme/shop", "main", "prod", 1, SW_SECRET_FORK, NULL },
	/* environments (events default to push and deploy) */
	{ "DEV_ONLY", PUSH, "acme/shop", "dev", "dev", 0, SW_SECRET_GIVEN, "v-devonly" },
	{ "DEV_ONLY", DEPLOY, "acme/shop", "dev", "dev", 0, SW_SECRET_GIVEN, "v-devonly" },
	{ "DEV_ONLY", DEPLOY, "acme/shop", "main", "prod", 0, SW_SECRET_NOT_ENVIRONMENT, NULL },
	{ "DEV_ONLY", PUSH, "acme/shop", "dev", NULL, 0, SW_SECRET_NOT_ENVIRONMENT, NULL },
	{ "DEV_ONLY", PR, "acme/shop", "dev", "dev", 0, SW_SECRET_NOT_EVENT, NULL },
	/* repositories (names as GitHub spells them, any case) */
	{ "SHOP_ONLY", PUSH, "acme/shop", "dev", "dev", 0, SW_SECRET_GIVEN, "v-shop" },
	{ "SHOP_ONLY", PR, "ACME/Shop", "main", "prod", 0, SW_SECRET_GIVEN, "v-shop" },
	{ "SHOP_ONLY", PR, "acme/other", "main", NULL, 0, SW_SECRET_NOT_REPOSITORY, NULL },
	{ "SHOP_ONLY", DEPLOY, "acme/other", "main", NULL, 0, SW_SECRET_NOT_REPOSITORY, NULL },
	{ "SHOP_ONLY", PR, "acme/shop", "main", "prod", 1, SW_SECRET_FORK, NULL },
	/* one name, a value per environment and a global one for pull requests */
	{ "DB", PUSH, "acme/shop", "dev", "dev", 0, SW_SECRET_GIVEN, "v-db-dev" },
	{ "DB", DEPLOY, "acme/shop", "dev", "dev", 0, SW_SECRET_GIVEN, "v-db-dev" },
	{ "DB", DEPLOY, "acme/shop", "main", "prod", 0, SW_SECRET_GIVEN, "v-db-prod" },
	{ "DB", PUSH, "acme/shop", "main", "prod", 0, SW_SECRET_NOT_EVENT, NULL },
	{ "DB", PR, "acme/shop", "dev", "dev", 0, SW_SECRET_GIVEN, "v-db-global" },
	{ "DB", PR, "acme/shop", "main", "prod", 0, SW_SECRET_GIVEN, "v-db-global" },
	{ "DB", PR, "acme/shop", "feature/x", NULL, 0, SW_SECRET_GIVEN, "v-db-global" },
	{ "DB", PR, "acme/shop", "dev", "dev", 1, SW_SECRET_FORK, NULL },
	/* only an environment has it */
	{ "ONLY_DEV", PUSH, "acme/shop", "dev", "dev", 0, SW_SECRET_GIVEN, "v-onlydev" },
	{ "ONLY_DEV", DEPLOY, "acme/shop", "main", "prod", 0, SW_SECRET_NOT_ENVIRONMENT, NULL },
	{ "ONLY_DEV", PUSH, "acme/shop", "feature", NULL, 0, SW_SECRET_NOT_ENVIRONMENT, NULL },
	{ "ONLY_DEV", PR, "acme/shop", "dev", "dev", 0, SW_SECRET_NOT_EVENT, NULL },
	{ "ONLY_DEV", PR, "acme/shop", "dev", "dev", 1, SW_SECRET_FORK, NULL },
	/* nowhere */
	{ "NOPE", PUSH, "acme/shop", "dev", "dev", 0, SW_SECRET_UNKNOWN, NULL },
	{ "NOPE", PR, "acme/shop", "dev", "dev", 1, SW_SECRET_UNKNOWN, NULL },
};

static void test_rules_table(void **state)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *t = &rows[i];
		struct sw_secret_ask a = { t->event, t->repo, t->branch, t->env, t->fork };
		const char *v = (const char *)"unset";
		enum sw_secret_verdict got = sw_config_secret_scope(cfg, t->name, &a, &v);
		if (got != t->want)
			fail_msg("row %zu (%s %s %s %s fork=%d): verdict %d, wanted %d", i, t->name,
				 sw_secret_event_str(t->event), t->branch ? t->branch : "-",
				 t->env ? t->env : "-", t->fork, got, t->want);
		if (t->value)
			assert_string_equal(v, t->value);
		else
			assert_null(v);
	}
}

/* Whatever the secret, event, branch and environment: never to a fork. */
static void test_never_to_forks(void **state)
{
	char **names = sw_config_secret_names(cfg);
	const char *branches[] = { "main", "dev", "release/1", "feature/x", NULL };
	const char *envs[] = { "dev", "prod", NULL };
	const unsigned evs[] = { PR, PUSH, DEPLOY };
	size_t tried = 0;
	for (char **n = names; *n; n++)
		for (size_t e = 0; e < 3; e++)
			for (size_t b = 0; b < 5; b++)
				for (size_t en = 0; en < 3; en++) {
					struct sw_secret_ask a = { evs[e], "acme/shop", branches[b],
								   envs[en], 1 };
					const char *v;
					assert_int_equal(sw_config_secret_scope(cfg, *n, &a, &v),
							 SW_SECRET_FORK);
					assert_null(v);
					tried++;
				}
	assert_int_equal(tried, 7 * 3 * 5 * 3);
	sw_strv_free(names);
}

static void test_names(void **state)
{
	char **names = sw_config_secret_names(cfg);
	const char *want[] = { "LEGACY", "PR_OK", "MAIN_ONLY", "DEV_ONLY", "SHOP_ONLY", "DB",
			       "ONLY_DEV", NULL };
	for (size_t i = 0; want[i]; i++) {
		assert_non_null(names[i]);
		assert_string_equal(names[i], want[i]);
	}
	assert_null(names[7]);
	sw_strv_free(names);
	/* the short form is marked for the start-up warning, with its line */
	assert_int_equal(cfg->secrets[0].short_form, 1);
	assert_int_equal(cfg->secrets[0].line, 3);
	assert_int_equal(cfg->secrets[1].short_form, 0);
	assert_int_equal(cfg->envs[0].secrets[0].short_form, 1);
	assert_int_equal(cfg->envs[1].secrets[0].short_form, 0);
}

static void test_reasons(void **state)
{
	static const struct { enum sw_secret_verdict v; unsigned ev; const char *branch, *env, *want; } t[] = {
		{ SW_SECRET_NOT_EVENT, PR, "main", "prod",
		  "secret PROD_DB is not available to pull_request runs" },
		{ SW_SECRET_NOT_EVENT, PUSH, "main", "prod",
		  "secret PROD_DB is not available to push runs" },
		{ SW_SECRET_NOT_BRANCH, PUSH, "feature/x", NULL,
		  "secret PROD_DB is not available to branch feature/x" },
		{ SW_SECRET_NOT_ENVIRONMENT, DEPLOY, "dev", "dev",
		  "secret PROD_DB is not available to environment dev" },
		{ SW_SECRET_NOT_ENVIRONMENT, PR, "feature", NULL,
		  "secret PROD_DB is not available to runs without an environment" },
		{ SW_SECRET_NOT_REPOSITORY, PUSH, "main", "prod",
		  "secret PROD_DB is not available to repository o/r" },
		{ SW_SECRET_FORK, PR, "main", NULL,
		  "secret PROD_DB is not given to pull requests from forks" },
		{ SW_SECRET_UNKNOWN, PUSH, "main", NULL,
		  "secret PROD_DB is not configured on the server" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct sw_secret_ask a = { t[i].ev, "o/r", t[i].branch, t[i].env, 0 };
		char *why = sw_config_secret_why(t[i].v, "PROD_DB", &a);
		assert_string_equal(why, t[i].want);
		free(why);
	}
	struct sw_secret_ask a = { PUSH, "o/r", "main", NULL, 0 };
	assert_null(sw_config_secret_why(SW_SECRET_GIVEN, "X", &a));
}

static void test_event_names(void **state)
{
	assert_int_equal(sw_secret_event_parse("pull_request"), PR);
	assert_int_equal(sw_secret_event_parse("push"), PUSH);
	assert_int_equal(sw_secret_event_parse("deploy"), DEPLOY);
	assert_int_equal(sw_secret_event_parse("pr"), 0);
	assert_int_equal(sw_secret_event_parse(NULL), 0);
	assert_string_equal(sw_secret_event_str(DEPLOY), "deploy");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules_table),
		cmocka_unit_test(test_never_to_forks),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_reasons),
		cmocka_unit_test(test_event_names),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
