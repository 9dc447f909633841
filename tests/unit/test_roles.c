/*
 * test_roles.c - daemon/roles and daemon/tokens without a daemon: who may
 * do what, from a real config (table-driven), the refusal's wording, the
 * access: keys' errors, and the API token's format, hash, expiry and name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "daemon/roles-int.h"
#include "daemon/tokens-int.h"
#include "lib/buf.h"
#include "tests/unit/scratch.h"

static char dir[256];

static int setup(void **state)
{
	return sw_test_tmpdir(dir, sizeof(dir), "roles");
}

static int teardown(void **state)
{
	sw_test_rmtree(dir);
	return 0;
}

/* Load a config: server, one repository, dev/qa (no own deployers) and
 * prod (its own), plus `extra` at the top level and `read`. */
static int load(struct sw_config **out, const char *read, const char *access,
		const char *prod_deployers)
{
	char *path = sw_asprintf("%s/slipway.yaml", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "server: {data_dir: %s/data, read_access: %s, api_token: {secret_env: HOME}}\n"
		"repositories: [{name: acme/shop, url: 'file:///x'}]\n"
		"%s\n"
		"environments:\n"
		"  - {name: dev, branch: dev}\n"
		"  - {name: qa, branch: qa}\n"
		"  - {name: prod, branch: main%s%s}\n", dir, read, access,
		prod_deployers ? ", deployers: " : "", prod_deployers ? prod_deployers : "");
	fclose(f);
	int rc = sw_config_load(out, path);
	free(path);
	return rc;
}

struct actor_case {
	const char *what;
	enum sw_actor_kind kind;
	const char *name;
	const char *teams;        /* comma list of org/team */
	enum sw_role token_role;
	const char *token_envs;
	enum sw_role need;
	const char *env;
	int allowed;
};

static void run_cases(const struct sw_config *c, const struct actor_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct actor_case *k = &cases[i];
		struct sw_actor a = SW_ACTOR_INIT;
		char *teams[8] = { 0 }, *copy = k->teams ? sw_strdup(k->teams) : NULL, *save = NULL;
		size_t nt = 0;
		for (char *t = copy ? strtok_r(copy, ",", &save) : NULL; t && nt < 8;
		     t = strtok_r(NULL, ",", &save))
			teams[nt++] = t;
		a.kind = k->kind;
		snprintf(a.name, sizeof(a.name), "%s", k->name);
		a.teams = (const char *const *)teams;
		a.nteams = nt;
		a.role = k->token_role;
		a.envs = k->token_envs ? sw_strdup(k->token_envs) : NULL;
		int got = sw_roles_allows(c, &a, k->need, k->env);
		if (got != k->allowed)
			fail_msg("case %zu (%s): %s %s needs %s on %s: got %d, want %d", i, k->what,
				 sw_actor_kind_str(k->kind), k->name, sw_role_str(k->need),
				 k->env ? k->env : "-", got, k->allowed);
		sw_actor_release(&a);
		free(copy);
	}
}

#define U SW_ACTOR_USER
#define TK SW_ACTOR_TOKEN
#define V SW_ROLE_VIEWER
#define D SW_ROLE_DEPLOYER
#define A SW_ROLE_ADMIN

static void test_roles_table(void **state)
{
	struct sw_config *c = NULL;
	assert_int_equal(load(&c, "token", "access: {viewers: [auditor], deployers: ['*'], "
			      "admins: [Boss, acme/owners]}", "[acme/platform, carol]"), 0);
	static const struct actor_case cases[] = {
		/* reading with read_access: token */
		{ "anonymous may not read", SW_ACTOR_ANONYMOUS, "anonymous", NULL, 0, NULL, V, NULL, 0 },
		{ "a viewer reads", U, "auditor", NULL, 0, NULL, V, NULL, 1 },
		{ "'*' makes every user a deployer, so a reader", U, "dave", NULL, 0, NULL, V, NULL, 1 },
		{ "the api_token reads", SW_ACTOR_API_TOKEN, "api_token", NULL, 0, NULL, V, NULL, 1 },
		{ "a viewer token reads", TK, "ro", NULL, V, NULL, V, NULL, 1 },
		/* deploying */
		{ "everyone syncs dev", U, "dave", NULL, 0, NULL, D, "dev", 1 },
		{ "and qa", U, "dave", NULL, 0, NULL, D, "qa", 1 },
		{ "but prod has its own list", U, "dave", NULL, 0, NULL, D, "prod", 0 },
		{ "the platform team deploys prod", U, "erin", "acme/platform", 0, NULL, D, "prod", 1 },
		{ "team names are case-insensitive", U, "erin", "ACME/Platform", 0, NULL, D, "prod", 1 },
		{ "another team does not", U, "erin", "acme/web", 0, NULL, D, "prod", 0 },
		{ "a login on prod's list", U, "Carol", NULL, 0, NULL, D, "prod", 1 },
		{ "a viewer does not deploy", U, "auditor", NULL, 0, NULL, D, "dev", 1 /* '*' */ },
		{ "admins deploy everywhere", U, "boss", NULL, 0, NULL, D, "prod", 1 },
		{ "admins by team", U, "frank", "acme/owners", 0, NULL, A, NULL, 1 },
		{ "a run without environment: global deployers", U, "dave", NULL, 0, NULL, D, NULL, 1 },
		/* admin */
		{ "a deployer is no admin", U, "erin", "acme/platform", 0, NULL, A, NULL, 0 },
		{ "the api_token is admin", SW_ACTOR_API_TOKEN, "api_token", NULL, 0, NULL, A, NULL, 1 },
		{ "the system is admin", SW_ACTOR_SYSTEM, "SIGHUP", NULL, 0, NULL, A, NULL, 1 },
		/* tokens */
		{ "a dev token syncs dev", TK, "ci", NULL, D, "dev", D, "dev", 1 },
		{ "and not prod", TK, "ci", NULL, D, "dev", D, "prod", 0 },
		{ "nor qa", TK, "ci", NULL, D, "dev", D, "qa", 0 },
		{ "a dev,qa token syncs qa", TK, "ci", NULL, D, "dev,qa", D, "qa", 1 },
		{ "no prefix match", TK, "ci", NULL, D, "dev", D, "de", 0 },
		{ "a dev token and a PR run", TK, "ci", NULL, D, "dev", D, NULL, 0 },
		{ "a deployer token without envs deploys prod", TK, "ci", NULL, D, NULL, D, "prod", 1 },
		{ "a deployer token reads", TK, "ci", NULL, D, "dev", V, NULL, 1 },
		{ "a deployer token is no admin", TK, "ci", NULL, D, NULL, A, NULL, 0 },
		{ "a viewer token does not sync", TK, "ro", NULL, V, NULL, D, "dev", 0 },
		{ "an admin token does everything", TK, "root", NULL, A, NULL, A, NULL, 1 },
		{ "an admin token deploys prod", TK, "root", NULL, A, NULL, D, "prod", 1 },
		{ "anonymous does not deploy", SW_ACTOR_ANONYMOUS, "anonymous", NULL, 0, NULL, D, "dev", 0 },
	};
	run_cases(c, cases, sizeof(cases) / sizeof(cases[0]));
	sw_config_free(c);
}

static void test_roles_open_and_empty(void **state)
{
	struct sw_config *c = NULL;
	/* no access: key: nobody but the api_token and tokens; prod: [] = admins only */
	assert_int_equal(load(&c, "open", "", "[]"), 0);
	static const struct actor_case cases[] = {
		{ "open: anonymous reads", SW_ACTOR_ANONYMOUS, "anonymous", NULL, 0, NULL, V, NULL, 1 },
		{ "a user in no role reads (open)", U, "dave", NULL, 0, NULL, V, NULL, 1 },
		{ "a user in no role does not sync", U, "dave", NULL, 0, NULL, D, "dev", 0 },
		{ "prod: [] keeps everyone off", U, "dave", NULL, 0, NULL, D, "prod", 0 },
		{ "but the api_token", SW_ACTOR_API_TOKEN, "api_token", NULL, 0, NULL, D, "prod", 1 },
		{ "an empty login matches nothing", U, "", NULL, 0, NULL, D, "dev", 0 },
	};
	run_cases(c, cases, sizeof(cases) / sizeof(cases[0]));
	assert_true(c->envs[2].has_deployers);
	assert_int_equal(c->envs[2].ndeployers, 0);
	assert_false(c->envs[0].has_deployers);
	sw_config_free(c);
}

static void test_refusal(void **state)
{
	struct sw_config *c = NULL;
	struct sw_actor a = SW_ACTOR_INIT;
	char msg[256];
	assert_int_equal(load(&c, "open", "access: {viewers: [dave]}", NULL), 0);
	a.kind = TK;
	snprintf(a.name, sizeof(a.name), "ci");
	a.role = D;
	a.envs = sw_strdup("dev");
	sw_roles_refusal(msg, sizeof(msg), c, &a, "rollback", D, "prod");
	assert_string_equal(msg, "rollback of prod needs the deployer role on prod "
			    "(token ci has deployer on dev)");
	sw_roles_refusal(msg, sizeof(msg), c, &a, "token.create", A, NULL);
	assert_string_equal(msg, "token.create needs the admin role (token ci has deployer on dev)");
	sw_actor_release(&a);
	a.kind = U;
	snprintf(a.name, sizeof(a.name), "dave");
	sw_roles_refusal(msg, sizeof(msg), c, &a, "sync", D, "dev");
	assert_string_equal(msg, "sync of dev needs the deployer role on dev (dave has viewer)");
	/* cut short, still a string */
	sw_roles_refusal(msg, 10, c, &a, "sync", D, "dev");
	assert_string_equal(msg, "sync of d");
	sw_config_free(c);
}

static void test_role_names(void **state)
{
	enum sw_role r;
	assert_int_equal(sw_role_parse("deployer", &r), 0);
	assert_int_equal(r, D);
	assert_int_equal(sw_role_parse("Admin", &r), SW_EINVALID);
	assert_int_equal(sw_role_parse("none", &r), SW_EINVALID);
	assert_int_equal(sw_role_parse(NULL, &r), SW_EINVALID);
	assert_string_equal(sw_role_str(A), "admin");
	assert_string_equal(sw_actor_kind_str(TK), "token");
	assert_true(sw_roles_env_in(NULL, "x"));
	assert_true(sw_roles_env_in("a,bb,c", "bb"));
	assert_false(sw_roles_env_in("a,bb,c", "b"));
	assert_false(sw_roles_env_in("", "a"));
	assert_false(sw_roles_env_in("a", NULL));
}

static void test_access_errors(void **state)
{
	struct sw_config *c = NULL;
	assert_int_equal(load(&c, "open", "access: {viewers: ['a b']}", NULL), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "access.viewers: expected a GitHub login, an "
			       "org/team name or *, found 'a b'"));
	assert_int_equal(load(&c, "open", "access: {admins: [acme/]}", NULL), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "found 'acme/'"));
	assert_int_equal(load(&c, "open", "access: {admins: [a/b/c]}", NULL), SW_EINVALID);
	assert_int_equal(load(&c, "open", "access: {owners: [x]}", NULL), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "owners"));
	assert_int_equal(load(&c, "open", "", "[/team]"), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "environments[2].deployers"));
	if (load(&c, "open", "retention: {audit: {age: 30d, count: 1000}}", NULL) < 0)
		fail_msg("%s", sw_error_last());
	assert_int_equal(c->retention.audit_age_s, 30 * 86400);
	assert_int_equal(c->retention.audit_count, 1000);
	sw_config_free(c);
	assert_int_equal(load(&c, "open", "", NULL), 0);
	assert_int_equal(c->retention.audit_age_s, 365 * 86400);
	sw_config_free(c);
}

/* --- tokens ---------------------------------------------------------------- */

static void test_token_format(void **state)
{
	char t1[SW_TOKEN_MAX], t2[SW_TOKEN_MAX], id[SW_TOKEN_ID_HEX + 1], id2[SW_TOKEN_ID_HEX + 1];
	unsigned char h1[32], h2[32], want[32], secret[32];
	assert_int_equal(sw_token_generate(t1, id, h1), 0);
	assert_int_equal(strlen(t1), SW_TOKEN_MAX - 1);
	assert_int_equal(strncmp(t1, "swt_", 4), 0);
	assert_int_equal(strncmp(t1 + 4, id, SW_TOKEN_ID_HEX), 0);
	assert_int_equal(t1[4 + SW_TOKEN_ID_HEX], '_');
	/* the hash is SHA-256 of the 32 secret bytes */
	for (int i = 0; i < 32; i++) {
		unsigned v;
		assert_int_equal(sscanf(t1 + 21 + 2 * i, "%2x", &v), 1);
		secret[i] = (unsigned char)v;
	}
	SHA256(secret, 32, want);
	assert_memory_equal(h1, want, 32);
	/* parse gives back the id and the same hash */
	assert_int_equal(sw_token_parse(t1, id2, h2), 0);
	assert_string_equal(id, id2);
	assert_memory_equal(h1, h2, 32);
	/* two tokens differ in id and secret */
	assert_int_equal(sw_token_generate(t2, id2, h2), 0);
	assert_string_not_equal(id, id2);
	assert_memory_not_equal(h1, h2, 32);
	/* one changed digit of the secret: another hash */
	t1[30] = t1[30] == 'a' ? 'b' : 'a';
	assert_int_equal(sw_token_parse(t1, id2, h2), 0);
	assert_memory_not_equal(h1, h2, 32);
}

static void test_token_malformed(void **state)
{
	char t[SW_TOKEN_MAX], id[SW_TOKEN_ID_HEX + 1];
	unsigned char h[32];
	const char *bad[] = { "", "swt_", "swt_zz", "api_token",
		"swt_0123456789abcdef_0123",                      /* short */
		"swt_0123456789abcdef-" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"swt_0123456789ABCDEF_" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"swt_0123456789abcdef_" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
		"swt_0123456789abcdef_" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sw_token_parse(bad[i], id, h), SW_EINVALID);
		assert_non_null(strstr(sw_error_last(), "malformed API token"));
	}
	assert_int_equal(sw_token_parse(NULL, id, h), SW_EINVALID);
	assert_int_equal(sw_token_generate(t, id, h), 0);
	assert_int_equal(sw_token_parse(t, id, h), 0);
}

static void test_token_expiry(void **state)
{
	const int64_t now = 1700000000000LL;
	int64_t at;
	assert_int_equal(sw_token_expiry("90d", now, &at), 0);
	assert_int_equal(at, now + 90LL * 86400 * 1000);
	assert_int_equal(sw_token_expiry("1h30m", now, &at), 0);
	assert_int_equal(at, now + 5400LL * 1000);
	assert_int_equal(sw_token_expiry("1m", now, &at), 0);
	assert_int_equal(sw_token_expiry("never", now, &at), 0);
	assert_int_equal(at, 0);
	assert_int_equal(sw_token_expiry("3650d", now, &at), 0);
	static const char *const bad[] = { "", "90", "soon", "1y", "-1d", "59s", "3651d", "d",
		"90d ", " 90d", "Never" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		at = 42;
		if (sw_token_expiry(bad[i], now, &at) != SW_EINVALID)
			fail_msg("expiry '%s' accepted", bad[i]);
		assert_int_equal(at, 0);
		assert_non_null(strstr(sw_error_last(), "expires: "));
	}
	assert_int_equal(sw_token_expiry(NULL, now, &at), SW_EINVALID);
}

static void test_token_name(void **state)
{
	char name[80];
	assert_int_equal(sw_token_name_check("ci-dev.deploy_1"), 0);
	assert_int_equal(sw_token_name_check(""), SW_EINVALID);
	assert_string_equal(sw_error_last(), "name: a token needs a name");
	assert_int_equal(sw_token_name_check(NULL), SW_EINVALID);
	memset(name, 'n', 64);
	name[64] = 0;
	assert_int_equal(sw_token_name_check(name), 0);
	name[64] = 'n';
	name[65] = 0;
	assert_int_equal(sw_token_name_check(name), SW_EINVALID);
	assert_string_equal(sw_error_last(), "name: 65 characters, at most 64");
	assert_int_equal(sw_token_name_check("a b"), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "found ' ' at 2"));
	assert_int_equal(sw_token_name_check("caf\xc3\xa9"), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "found '?' at 4"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roles_table),
		cmocka_unit_test(test_roles_open_and_empty),
		cmocka_unit_test(test_refusal),
		cmocka_unit_test(test_role_names),
		cmocka_unit_test(test_access_errors),
		cmocka_unit_test(test_token_format),
		cmocka_unit_test(test_token_malformed),
		cmocka_unit_test(test_token_expiry),
		cmocka_unit_test(test_token_name),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
