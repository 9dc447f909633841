/*
 * tfplan.c - fuzz target: `terraform show -json` output read by
 * sw_tf_parse_show() (infra/tfplan.c) as a plan and as a drift check
 * (resource_changes, resource_drift, output_changes, changed attributes),
 * and `terraform output -json` through sw_tf_outputs_redact(). Terraform and
 * its providers print this; a provider is third-party code and the plan
 * holds values from the pull request's modules. Seeds: tests/fixtures/
 * terraform/show-*.json.
 */
#include "fuzz.h"
#include "infra/infra.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sw_tf_result *res = calloc(1, sizeof(*res));
	char *out = NULL;

	fuzz_init();
	if (!res)
		abort();
	sw_tf_parse_show(res, (const char *)data, size, 0);
	sw_tf_parse_show(res, (const char *)data, size, 1);
	sw_tf_result_free(res);
	if (sw_tf_outputs_redact(&out, (const char *)data, size) == 0)
		free(out);
	return 0;
}
