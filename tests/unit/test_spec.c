/*
 * test_spec.c - `.slipway.yml` parsing, located errors, and stage selection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "pipeline/pipeline.h"

static struct sw_spec *parse_ok(const char *yaml, const struct sw_spec_check *chk)
{
	struct sw_spec *s = NULL;
	int rc = sw_spec_parse(&s, ".slipway.yml", yaml, strlen(yaml), chk);
	if (rc != 0)
		fail_msg("parse failed: %s", sw_error_last());
	return s;
}

/* Parse must fail and the message must contain `expect` (one line). */
static void parse_err(const char *yaml, const struct sw_spec_check *chk, const char *expect)
{
	struct sw_spec *s = NULL;
	int rc = sw_spec_parse(&s, ".slipway.yml", yaml, strlen(yaml), chk);
	assert_int_equal(rc, SW_EINVALID);
	assert_null(s);
	if (!strstr(sw_error_last(), expect))
		fail_msg("expected '%s' in:\n%s", expect, sw_error_last());
}

/* The plan as "name<dep,dep> name<> ..." for compact comparisons. */
static char *plan_str(const struct sw_spec *spec, unsigned event, const char *branch,
		      const char *env)
{
	struct sw_spec_ctx ctx = { .event = event, .branch = branch, .environment = env };
	struct sw_spec_plan *p;
	struct sw_buf b = SW_BUF_INIT;
	assert_int_equal(sw_spec_select(&p, spec, &ctx), 0);
	for (size_t i = 0; i < p->n; i++) {
		sw_buf_addf(&b, "%s%s<", i ? " " : "", p->stages[i].stage->name);
		for (size_t k = 0; k < p->stages[i].ndeps; k++) {
			assert_true(p->stages[i].deps[k] < i);   /* a valid order */
			sw_buf_addf(&b, "%s%s", k ? "," : "", p->stages[p->stages[i].deps[k]].stage->name);
		}
		sw_buf_addch(&b, '>');
	}
	sw_spec_plan_free(p);
	return sw_buf_detach(&b, NULL);
}

static void expect_plan(const struct sw_spec *spec, unsigned event, const char *branch,
			const char *env, const char *expect)
{
	char *got = plan_str(spec, event, branch, env);
	assert_string_equal(got, expect);
	free(got);
}

static void test_example_parses(void **state)
{
	struct sw_buf b = SW_BUF_INIT;
	struct sw_spec *s = NULL;
	const char *secrets[] = { "REGISTRY_PASSWORD", "NPM_TOKEN" };
	struct sw_spec_check chk = { .secrets = secrets, .nsecrets = 2, .require_image = 1 };

	assert_int_equal(sw_buf_read_file(&b, "contrib/examples/slipway.yml"), 0);
	if (sw_spec_parse(&s, "slipway.yml", b.ptr, b.len, &chk) != 0)
		fail_msg("%s", sw_error_last());
	assert_int_equal(s->nstages, 5);
	const struct sw_spec_stage *t = sw_spec_stage(s, "test");
	assert_non_null(t);
	assert_string_equal(t->image, "golang:1.22");
	assert_int_equal(t->ncommands, 2);
	assert_string_equal(t->commands[1], "go test -race ./...");
	assert_int_equal(t->nenv, 2);
	assert_string_equal(t->env[0].name, "GOFLAGS");
	assert_string_equal(t->env[0].value, "-mod=mod");
	assert_string_equal(t->env[1].value, "1");
	assert_int_equal(t->timeout_s, 900);
	assert_true(t->explicit_deps);
	assert_int_equal(t->ndeps, 0);
	const struct sw_spec_stage *p = sw_spec_stage(s, "publish");
	assert_int_equal(p->events, SW_SPEC_PUSH);
	assert_int_equal(p->nbranches, 2);
	assert_string_equal(p->secrets[0], "REGISTRY_PASSWORD");

	expect_plan(s, SW_SPEC_PULL_REQUEST, "main", NULL, "lint<> test<> build<lint,test>");
	expect_plan(s, SW_SPEC_PUSH, "main", NULL,
		    "lint<> test<> build<lint,test> publish<build>");
	expect_plan(s, SW_SPEC_PUSH, "release/1.4", NULL,
		    "lint<> test<> build<lint,test> publish<build>");
	expect_plan(s, SW_SPEC_PUSH, "feature/x", NULL, "lint<> test<> build<lint,test>");
	expect_plan(s, SW_SPEC_DEPLOY, "main", "dev",
		    "lint<> test<> build<lint,test> acceptance<>");
	expect_plan(s, SW_SPEC_DEPLOY, "main", "prod", "lint<> test<> build<lint,test>");
	sw_spec_free(s);
	sw_buf_release(&b);
}

static void test_default_sequential_dependencies(void **state)
{
	struct sw_spec *s = parse_ok("stages:\n"
				     "  - {name: a, commands: [x]}\n"
				     "  - {name: b, commands: [x]}\n"
				     "  - {name: c, commands: [x]}\n", NULL);
	expect_plan(s, SW_SPEC_PUSH, "main", NULL, "a<> b<a> c<b>");
	expect_plan(s, SW_SPEC_PULL_REQUEST, NULL, NULL, "a<> b<a> c<b>");
	sw_spec_free(s);
}

static void test_explicit_depends_on_orders_topologically(void **state)
{
	/* written out of order: `deploy` first, depending on later stages */
	struct sw_spec *s = parse_ok("stages:\n"
				     "  - name: deploy\n"
				     "    commands: [x]\n"
				     "    depends_on: [build, test]\n"
				     "  - name: build\n"
				     "    commands: [x]\n"
				     "    depends_on: []\n"
				     "  - name: test\n"
				     "    commands: [x]\n"
				     "  - name: docs\n"
				     "    commands: [x]\n"
				     "    depends_on: []\n", NULL);
	/* test defaults to depending on build (the stage before it) */
	expect_plan(s, SW_SPEC_PUSH, "main", NULL, "build<> test<build> deploy<build,test> docs<>");
	sw_spec_free(s);
}

static void test_selection_restricts_dependencies(void **state)
{
	struct sw_spec *s = parse_ok("stages:\n"
				     "  - {name: lint, commands: [x]}\n"
				     "  - name: build\n"
				     "    commands: [x]\n"
				     "    when: {event: push}\n"
				     "  - {name: test, commands: [x]}\n"
				     "  - name: prod-only\n"
				     "    commands: [x]\n"
				     "    when: {event: deploy, environment: prod, branch: main}\n",
				     NULL);
	expect_plan(s, SW_SPEC_PUSH, "main", NULL, "lint<> build<lint> test<build>");
	/* without build, test still waits for lint (through build) */
	expect_plan(s, SW_SPEC_PULL_REQUEST, "main", NULL, "lint<> test<lint>");
	expect_plan(s, SW_SPEC_DEPLOY, "main", "prod", "lint<> test<lint> prod-only<test>");
	expect_plan(s, SW_SPEC_DEPLOY, "dev", "prod", "lint<> test<lint>");
	expect_plan(s, SW_SPEC_DEPLOY, "main", "dev", "lint<> test<lint>");
	expect_plan(s, SW_SPEC_DEPLOY, "main", NULL, "lint<> test<lint>");
	sw_spec_free(s);
}

static void test_branch_globs(void **state)
{
	struct sw_spec *s = parse_ok("stages:\n"
				     "  - name: rel\n"
				     "    commands: [x]\n"
				     "    when:\n"
				     "      branch: [main, \"release/*\", \"hotfix-[0-9]*\"]\n", NULL);
	expect_plan(s, SW_SPEC_PUSH, "main", NULL, "rel<>");
	expect_plan(s, SW_SPEC_PUSH, "release/2.0", NULL, "rel<>");
	expect_plan(s, SW_SPEC_PUSH, "hotfix-7", NULL, "rel<>");
	expect_plan(s, SW_SPEC_PUSH, "hotfix-x", NULL, "");
	expect_plan(s, SW_SPEC_PUSH, "mainline", NULL, "");
	expect_plan(s, SW_SPEC_PUSH, NULL, NULL, "");
	sw_spec_free(s);
}

static void test_errors_are_located(void **state)
{
	parse_err("stages:\n  - name: a\n    commands: [x]\n    colour: red\n", NULL,
		  ".slipway.yml:4:5: stages[0]: unknown key 'colour'");
	parse_err("stages:\n  - name: a\n    commands: make\n", NULL,
		  ".slipway.yml:3:15: stages[0].commands: expected a list of commands, found a string");
	parse_err("stages:\n  - name: a\n    image: alpine\n", NULL,
		  ".slipway.yml:2:5: stages[0].commands: missing");
	parse_err("stages:\n  - {name: a, commands: [x]}\n  - {name: a, commands: [y]}\n", NULL,
		  ".slipway.yml:3:12: stages[1].name: duplicate stage name 'a' (first at line 2)");
	parse_err("stages:\n  - name: a\n    commands: [x]\n    depends_on: [nope]\n", NULL,
		  ".slipway.yml:4:18: stages[0].depends_on: unknown stage 'nope'");
	parse_err("stages:\n  - name: a\n    commands: [x]\n    when: {branch: \"rel[ease\"}\n", NULL,
		  ".slipway.yml:4:20: stages[0].when.branch: invalid glob 'rel[ease': '[' without a closing ']'");
	parse_err("stages:\n  - name: a\n    commands: [x]\n    timeout: 10 minutes\n", NULL,
		  ".slipway.yml:4:14: stages[0].timeout: invalid duration '10 minutes'");
	parse_err("stages:\n  - name: a\n    commands: [x]\n    when:\n      event: [push, pr]\n", NULL,
		  ".slipway.yml:5:21: stages[0].when.event: unknown event 'pr'");
	parse_err("stages:\n  - name: Lint\n    commands: [x]\n", NULL,
		  ".slipway.yml:2:11: stages[0].name: invalid name 'Lint'");
	parse_err("stages:\n  - name: a\n    commands: [x]\n    env: {A: [1]}\n", NULL,
		  ".slipway.yml:4:14: stages[0].env: A: expected a plain value, found sequence");
	parse_err("stages:\n  - name: a\n    commands: [x]\n    when: {when: push}\n", NULL,
		  ".slipway.yml:4:12: stages[0].when: unknown key 'when'");
	parse_err("stage:\n  - name: a\n", NULL, ".slipway.yml:1:1: unknown key 'stage'");
	parse_err("", NULL, ".slipway.yml:1:1: empty file");
	parse_err("stages: []\n", NULL, "stages: empty");
	parse_err("stages:\n  - name: a\n    commands: [x]\n    depends_on: a b\n", NULL,
		  "unknown stage 'a b'");
}

/* A key written twice is an error at its second place, env names included
 * (the spec reader once kept the first and ignored the second). */
static void test_repeated_key(void **state)
{
	parse_err("stages:\n  - name: a\n    commands: [x]\n    name: b\n", NULL,
		  ".slipway.yml:4:5: stages[0]: key 'name' appears twice (first at 2:5)");
	parse_err("stages:\n  - name: a\n    commands: [x]\n    env: {A: 1, A: 2}\n", NULL,
		  ".slipway.yml:4:17: stages[0].env: key 'A' appears twice (first at 4:11)");
}

static void test_secrets_checked_against_config(void **state)
{
	const char *secrets[] = { "NPM_TOKEN" };
	struct sw_spec_check chk = { .secrets = secrets, .nsecrets = 1 };
	struct sw_spec *s = parse_ok("stages:\n  - name: a\n    commands: [x]\n"
				     "    secrets: [NPM_TOKEN]\n", &chk);
	sw_spec_free(s);
	parse_err("stages:\n  - name: a\n    commands: [x]\n    secrets: [NPM_TOKEN, AWS_KEY]\n",
		  &chk, ".slipway.yml:4:26: stages[0].secrets: unknown secret 'AWS_KEY'");
	/* without a list to check against, any name is accepted */
	s = parse_ok("stages:\n  - name: a\n    commands: [x]\n    secrets: AWS_KEY\n", NULL);
	assert_int_equal(s->stages[0].nsecrets, 1);
	sw_spec_free(s);
	/* the docker runner needs images */
	struct sw_spec_check img = { .require_image = 1 };
	parse_err("stages:\n  - name: a\n    commands: [x]\n", &img,
		  ".slipway.yml:2:5: stages[0].image: missing");
}

static void test_cycles_are_named(void **state)
{
	parse_err("stages:\n"
		  "  - name: a\n    commands: [x]\n    depends_on: [c]\n"
		  "  - name: b\n    commands: [x]\n    depends_on: [a]\n"
		  "  - name: c\n    commands: [x]\n    depends_on: [b]\n", NULL,
		  "dependency cycle: a -> c -> b -> a");
	/* a self-dependency */
	parse_err("stages:\n  - name: a\n    commands: [x]\n    depends_on: a\n", NULL,
		  ".slipway.yml:4:17: stages[0].depends_on: dependency cycle: a -> a");
	/* a cycle through a default (sequential) dependency */
	parse_err("stages:\n"
		  "  - name: a\n    commands: [x]\n    depends_on: [b]\n"
		  "  - name: b\n    commands: [x]\n", NULL,
		  "dependency cycle: a -> b -> a");
	/* through a stage without a name (crashed slipwayd: a NULL name in the message) */
	parse_err("stages:\n"
		  "  - name: a\n    commands: [x]\n    depends_on: [b]\n"
		  "  - commands: [x]\n"
		  "  - name: b\n    commands: [x]\n", NULL,
		  "dependency cycle: a -> b -> stages[1] -> a");
	parse_err("stages:\n"
		  "  - name: a\n    commands: [x]\n    depends_on: [b]\n"
		  "  - commands: [x]\n"
		  "  - name: b\n    commands: [x]\n", NULL,
		  "stages[1].name: missing");
	/* closed on the stage without a name (sw_buf_adds(NULL) before) */
	parse_err("stages:\n"
		  "  - commands: [x]\n    depends_on: [b]\n"
		  "  - name: b\n    commands: [x]\n", NULL,
		  "dependency cycle: stages[0] -> b -> stages[0]");
}

static void test_all_errors_collected(void **state)
{
	struct sw_spec *s = NULL;
	const char *y = "stages:\n"
			"  - name: a\n"
			"    commands: [x]\n"
			"    timeout: soon\n"
			"  - name: a\n"
			"    when: {event: merge}\n";
	assert_int_equal(sw_spec_parse(&s, "f.yml", y, strlen(y), NULL), SW_EINVALID);
	const char *e = sw_error_last();
	assert_non_null(strstr(e, "f.yml:4:14: stages[0].timeout: invalid duration 'soon'"));
	assert_non_null(strstr(e, "f.yml:5:5: stages[1].commands: missing"));
	assert_non_null(strstr(e, "f.yml:6:19: stages[1].when.event: unknown event 'merge'"));
	assert_non_null(strstr(e, "f.yml:5:11: stages[1].name: duplicate stage name 'a'"));
	int lines = 1;
	for (const char *p = e; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 4);
}

static void test_yaml_syntax_error(void **state)
{
	parse_err("stages:\n  - name: [a\n", NULL, ".slipway.yml:");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example_parses),
		cmocka_unit_test(test_default_sequential_dependencies),
		cmocka_unit_test(test_explicit_depends_on_orders_topologically),
		cmocka_unit_test(test_selection_restricts_dependencies),
		cmocka_unit_test(test_branch_globs),
		cmocka_unit_test(test_errors_are_located),
		cmocka_unit_test(test_repeated_key),
		cmocka_unit_test(test_secrets_checked_against_config),
		cmocka_unit_test(test_cycles_are_named),
		cmocka_unit_test(test_all_errors_collected),
		cmocka_unit_test(test_yaml_syntax_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
