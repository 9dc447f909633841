/*
 * spec.c - fuzz target: .slipway.yml, the pipeline of a repository as any
 * pull request (forks included) may write it: sw_spec_parse()
 * (pipeline/spec.c), the `slipway validate` path and what the daemon does
 * before a run, with and without the checks for configured secrets and
 * images; then sw_spec_select() for a push, a pull request and a deploy, as
 * the engine plans a run. Issue 11's defect 1 (a cycle through a nameless
 * stage) crashed here. Seeds: contrib/examples/slipway.yml and seeds/spec.
 */
#include "fuzz.h"
#include "pipeline/pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const secrets[] = { "NPM_TOKEN", "DEPLOY_KEY" };
	const struct sw_spec_check chk = { .secrets = secrets, .nsecrets = 2, .require_image = 1 };
	const struct sw_spec_ctx ctx[] = {
		{ .event = SW_SPEC_PUSH, .branch = "main" },
		{ .event = SW_SPEC_PULL_REQUEST, .branch = "main" },
		{ .event = SW_SPEC_DEPLOY, .branch = "main", .environment = "prod" },
	};
	struct sw_spec *spec = NULL;

	fuzz_init();
	if (sw_spec_parse(&spec, ".slipway.yml", (const char *)data, size, &chk) == 0)
		sw_spec_free(spec);
	spec = NULL;
	if (sw_spec_parse(&spec, ".slipway.yml", (const char *)data, size, NULL) == 0) {
		for (size_t i = 0; i < sizeof(ctx) / sizeof(ctx[0]); i++) {
			struct sw_spec_plan *plan = NULL;
			if (sw_spec_select(&plan, spec, &ctx[i]) == 0)
				sw_spec_plan_free(plan);
		}
		sw_spec_free(spec);
	}
	return 0;
}
