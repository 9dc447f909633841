/*
 * aws.c - fuzz target: what AWS and the user's AWS files say, as aws/
 * reads it: the input as an STS answer (sw_aws_cred_parse_sts for both
 * actions, sw_aws_xml_text of an error's code), as container or instance
 * credentials (sw_aws_cred_parse_json), as a DescribeCluster answer
 * (sw_eks_parse_cluster), as a Price List GetProducts answer
 * (sw_aws_pricing_parse, PriceList's strings parsed again), as a Cost
 * Explorer GetCostAndUsage page (sw_aws_ce_parse) and as a shared
 * credentials/config file (sw_aws_ini_get). STS, EKS and the metadata services are peers slipway
 * does not control, and a stand-in in front of them is easy to put up.
 * Seeds: seeds/aws.
 */
#include "aws/aws.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct sw_aws_cred c;
	struct sw_eks_cluster k;
	struct sw_buf b = SW_BUF_INIT;

	fuzz_init();
	if (sw_aws_cred_parse_sts(&c, s, size, "AssumeRoleWithWebIdentity") == 0)
		sw_aws_cred_release(&c);
	if (sw_aws_cred_parse_sts(&c, s, size, "AssumeRole") == 0)
		sw_aws_cred_release(&c);
	sw_aws_xml_text(&b, s, size, "ErrorResponse/Error/Code");
	if (sw_aws_cred_parse_json(&c, s, size) == 0)
		sw_aws_cred_release(&c);
	if (sw_eks_parse_cluster(&k, s, size) == 0)
		sw_eks_cluster_release(&k);
	struct sw_aws_price p = { 0 };
	sw_buf_reset(&b);
	sw_aws_pricing_parse(&p, &b, s, size);
	sw_buf_reset(&b);
	struct sw_aws_costs costs = { 0 };
	sw_aws_ce_parse(&costs, &b, s, size);
	sw_aws_costs_release(&costs);
	sw_buf_reset(&b);
	sw_aws_ini_get(&b, s, size, "default", "aws_secret_access_key");
	sw_buf_reset(&b);
	sw_aws_ini_get(&b, s, size, "profile ops", "role_arn");
	sw_buf_release(&b);
	return 0;
}
