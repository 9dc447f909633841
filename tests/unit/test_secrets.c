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
#include "pipeline/run-int.h"

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

/*
 * What each run kind is to a secret's scope (pipeline/engine.c,
 * engine_secret_ask), and the refusal the engine gives: a pull request is
 * matched on its base branch and the environment that base deploys to,
 * whatever its author named the head; push and manual runs by their
 * branch and environment, each stage by the event it was selected for.
 */
static void test_run_kinds(void **state)
{
	static const struct {
		enum sw_run_kind kind;
		const char *ref, *branch, *env;   /* the run row */
		int fork;
		unsigned plan_event;              /* the stage's; 0 = built in */
		const char *secret;
		unsigned want_event;
		const char *want_branch, *want_env, *why;   /* why NULL: given */
	} t[] = {
		{ SW_RUN_PULL_REQUEST, "main", "feature/x", NULL, 0, SW_SPEC_PULL_REQUEST, "MAIN_ONLY",
		  PR, "main", "prod", NULL },
		/* a head named main into feature/x is not main */
		{ SW_RUN_PULL_REQUEST, "feature/x", "main", NULL, 0, SW_SPEC_PULL_REQUEST, "MAIN_ONLY",
		  PR, "feature/x", NULL, "secret MAIN_ONLY is not available to branch feature/x" },
		{ SW_RUN_PULL_REQUEST, "dev", "feature/x", NULL, 0, SW_SPEC_PULL_REQUEST, "LEGACY",
		  PR, "dev", "dev", "secret LEGACY is not available to pull_request runs" },
		{ SW_RUN_PULL_REQUEST, "dev", "feature/x", NULL, 0, SW_SPEC_PULL_REQUEST, "DB",
		  PR, "dev", "dev", NULL },
		{ SW_RUN_PULL_REQUEST, "main", "feature/x", NULL, 1, SW_SPEC_PULL_REQUEST, "PR_OK",
		  PR, "main", "prod", "secret PR_OK is not given to pull requests from forks" },
		/* a pull request's stage is a pull_request stage, whatever the plan says */
		{ SW_RUN_PULL_REQUEST, "dev", "dev", NULL, 0, SW_SPEC_DEPLOY, "LEGACY",
		  PR, "dev", "dev", "secret LEGACY is not available to pull_request runs" },
		{ SW_RUN_PUSH, "refs/heads/dev", "dev", "dev", 0, SW_SPEC_PUSH, "LEGACY",
		  PUSH, "dev", "dev", NULL },
		{ SW_RUN_PUSH, "refs/heads/main", "main", "prod", 0, SW_SPEC_PUSH, "DB",
		  PUSH, "main", "prod", "secret DB is not available to push runs" },
		{ SW_RUN_PUSH, "refs/heads/main", "main", "prod", 0, SW_SPEC_DEPLOY, "DB",
		  DEPLOY, "main", "prod", NULL },
		{ SW_RUN_PUSH, "refs/heads/main", "main", "prod", 0, SW_SPEC_DEPLOY, "ONLY_DEV",
		  DEPLOY, "main", "prod", "secret ONLY_DEV is not available to environment prod" },
		{ SW_RUN_MANUAL, NULL, "dev", "dev", 0, SW_SPEC_DEPLOY, "ONLY_DEV",
		  DEPLOY, "dev", "dev", NULL },
		{ SW_RUN_MANUAL, NULL, "main", "prod", 0, SW_SPEC_DEPLOY, "PR_OK",
		  DEPLOY, "main", "prod", "secret PR_OK is not available to deploy runs" },
		{ SW_RUN_ROLLBACK, NULL, "main", "prod", 0, 0, "LEGACY", DEPLOY, "main", "prod", NULL },
		{ SW_RUN_PUSH, "refs/heads/dev", "dev", "dev", 0, 0, "NOPE",
		  PUSH, "dev", "dev", "secret NOPE is not configured on the server" },
	};
	struct sw_engine e;
	struct run r;
	struct stage s;
	memset(&e, 0, sizeof(e));
	e.d.cfg = cfg;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *names[] = { (char *)t[i].secret, NULL };
		struct sw_secret_ask a;
		memset(&r, 0, sizeof(r));
		memset(&s, 0, sizeof(s));
		r.e = &e;
		r.row.kind = t[i].kind;
		r.row.repo = (char *)"acme/shop";
		r.row.ref = (char *)t[i].ref;
		r.row.branch = (char *)t[i].branch;
		r.row.environment = (char *)t[i].env;
		r.row.from_fork = t[i].fork;
		s.run = &r;
		s.plan.kind = SW_PLAN_CONTAINER;
		s.plan.event = t[i].plan_event;
		s.plan.secrets = names;
		s.plan.nsecrets = 1;
		engine_secret_ask(&r, &s, &a);
		assert_int_equal(a.event, t[i].want_event);
		assert_string_equal(a.branch, t[i].want_branch);
		if (t[i].want_env)
			assert_string_equal(a.environment, t[i].want_env);
		else
			assert_null(a.environment);
		assert_int_equal(a.from_fork, t[i].fork);
		char *why = engine_refused_secret(&r, &s);
		if (!t[i].why && why)
			fail_msg("row %zu: refused: %s", i, why);
		if (t[i].why)
			assert_string_equal(why ? why : "(given)", t[i].why);
		free(why);
	}
}

/* Every value is masked in every log, those only an environment has too. */
static void test_mask_set(void **state)
{
	const char *want[] = { "v-legacy", "v-pr", "v-main", "v-devonly", "v-shop", "v-db-global",
			       "v-db-dev", "v-onlydev", "v-db-prod", NULL };
	const char **v = engine_secret_values(cfg);
	for (size_t i = 0; want[i]; i++) {
		int found = 0;
		for (size_t j = 0; v[j]; j++)
			found |= !strcmp(v[j], want[i]);
		if (!found)
			fail_msg("%s is not in the mask set", want[i]);
	}
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules_table),
		cmocka_unit_test(test_never_to_forks),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_reasons),
		cmocka_unit_test(test_event_names),
		cmocka_unit_test(test_run_kinds),
		cmocka_unit_test(test_mask_set),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
