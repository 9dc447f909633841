/*
 * test_plan.c - what a run executes: .slipway.yml stages selected per event,
 * with the builtin deploy stage between the push checks and the acceptance
 * stages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "pipeline/engine-int.h"

static const char spec[] =
	"stages:\n"
	"  - name: lint\n"
	"    image: x\n"
	"    commands: [make lint]\n"
	"  - name: unit\n"
	"    image: x\n"
	"    when: {event: [pull_request, push]}\n"
	"    commands: [make test]\n"
	"  - name: acceptance\n"
	"    image: x\n"
	"    when: {event: deploy, environment: [dev]}\n"
	"    depends_on: [lint]\n"
	"    commands: [make acceptance]\n";

static int has_dep(const struct sw_plan_stage *s, size_t idx)
{
	for (size_t i = 0; i < s->ndeps; i++)
		if (s->deps[i] == idx)
			return 1;
	return 0;
}

static void names(const struct sw_plan *p, char *buf, size_t size)
{
	buf[0] = '\0';
	for (size_t i = 0; i < p->nstages; i++) {
		strncat(buf, i ? "," : "", size - strlen(buf) - 1);
		strncat(buf, p->stages[i].name, size - strlen(buf) - 1);
	}
}

static void test_pull_request(void **state)
{
	struct sw_plan p;
	struct sw_plan_ctx ctx = { .event = "pull_request", .branch = "main" };
	char got[256];
	assert_int_equal(sw_plan_build(&p, ".slipway.yml", spec, strlen(spec), &ctx, NULL), 0);
	names(&p, got, sizeof(got));
	assert_string_equal(got, "lint,unit");
	assert_int_equal(p.stages[0].kind, SW_PLAN_CONTAINER);
	sw_plan_release(&p);
}

static void test_deploy_run_to_dev(void **state)
{
	struct sw_plan p;
	struct sw_plan_ctx ctx = { .event = "push", .branch = "dev", .environment = "dev",
				   .deploy = 1, .pre_event = "push" };
	char got[256];
	assert_int_equal(sw_plan_build(&p, ".slipway.yml", spec, strlen(spec), &ctx, NULL), 0);
	names(&p, got, sizeof(got));
	/* lint runs for every event, but once per run */
	assert_string_equal(got, "lint,unit,deploy,acceptance");
	assert_int_equal(p.stages[2].kind, SW_PLAN_DEPLOY);
	assert_true(has_dep(&p.stages[2], 0) && has_dep(&p.stages[2], 1));
	/* acceptance waits for the deploy and for the lint already in the plan */
	assert_true(has_dep(&p.stages[3], 2));
	assert_true(has_dep(&p.stages[3], 0));
	sw_plan_release(&p);
}

static void test_prod_has_no_acceptance(void **state)
{
	struct sw_plan p;
	struct sw_plan_ctx ctx = { .event = "push", .branch = "main", .environment = "prod",
				   .deploy = 1, .pre_event = "push" };
	char got[256];
	assert_int_equal(sw_plan_build(&p, ".slipway.yml", spec, strlen(spec), &ctx, NULL), 0);
	names(&p, got, sizeof(got));
	assert_string_equal(got, "lint,unit,deploy");
	sw_plan_release(&p);
}

static void test_rollback_and_no_spec(void **state)
{
	struct sw_plan p;
	struct sw_plan_ctx ctx = { .event = "deploy", .environment = "dev", .deploy = 1,
				   .no_acceptance = 1 };
	char got[256];
	assert_int_equal(sw_plan_build(&p, ".slipway.yml", spec, strlen(spec), &ctx, NULL), 0);
	names(&p, got, sizeof(got));
	assert_string_equal(got, "deploy");
	sw_plan_release(&p);
	/* no .slipway.yml at the commit: a deploy run still deploys */
	ctx.no_acceptance = 0;
	assert_int_equal(sw_plan_build(&p, ".slipway.yml", NULL, 0, &ctx, NULL), 0);
	assert_true(p.no_spec);
	names(&p, got, sizeof(got));
	assert_string_equal(got, "deploy");
	sw_plan_release(&p);
}

static void test_invalid_spec_is_located(void **state)
{
	struct sw_plan p;
	struct sw_plan_ctx ctx = { .event = "push", .branch = "dev" };
	const char bad[] = "stages:\n  - name: a\n    commands: [x]\n    colour: blue\n";
	assert_int_equal(sw_plan_build(&p, ".slipway.yml", bad, strlen(bad), &ctx, NULL), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), ".slipway.yml:4:5:"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pull_request),
		cmocka_unit_test(test_deploy_run_to_dev),
		cmocka_unit_test(test_prod_has_no_acceptance),
		cmocka_unit_test(test_rollback_and_no_spec),
		cmocka_unit_test(test_invalid_spec_is_located),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
