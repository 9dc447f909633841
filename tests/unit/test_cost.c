/*
 * test_cost.c - pricing a Terraform plan (infra/cost.c) and reading the
 * Price List's answers (aws/pricing.c). The plan is the real `terraform
 * show -json` of tests/fixtures/terraform/show-cost.json (made with the
 * AWS provider against nothing: a plan of new resources asks AWS nothing);
 * the prices come from a table here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "infra/infra.h"
#include "lib/buf.h"
#include "lib/error.h"

static char *read_fixture(const char *name)
{
	const char *src = getenv("SRC");
	char path[700];
	snprintf(path, sizeof(path), "%s/tests/fixtures/terraform/%s", src && *src ? src : ".",
		 name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	struct sw_buf b = SW_BUF_INIT;
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		sw_buf_add(&b, chunk, n);
	fclose(f);
	return sw_buf_detach(&b, NULL);
}

/* service, "field=value;..." every filter must be among, unit, usd */
static const struct {
	const char *service, *must, *unit;
	double usd;
} prices[] = {
	{ "AmazonEC2", "instanceType=m5.large;operatingSystem=Linux;tenancy=Shared;", "Hrs", 0.096 },
	{ "AmazonEC2", "instanceType=t3.large;operatingSystem=Linux;", "Hrs", 0.0832 },
	{ "AmazonEC2", "productFamily=NAT Gateway;usagetype=NatGateway-Hours;", "Hrs", 0.045 },
	{ "AmazonEC2", "productFamily=Storage;volumeApiName=gp3;", "GB-Mo", 0.08 },
	{ "AmazonEKS", "usagetype=AmazonEKS-Hours:perCluster;", "Hrs", 0.10 },
	{ "AWSELB", "productFamily=Load Balancer-Application;", "Hrs", 0.0225 },
	{ "AmazonRDS", "instanceType=db.t3.medium;databaseEngine=PostgreSQL;deploymentOption=Single-AZ;",
	  "Hrs", 0.072 },
	{ "AmazonRDS", "productFamily=Database Storage;volumeType=General Purpose-GP3;", "GB-Mo",
	  0.115 },
	{ "AmazonVPC", "usagetype=PublicIPv4:InUseAddress;", "Hrs", 0.005 },
	/* cache.t3.micro deliberately missing: a price not had */
};

static int calls;

static int table_price(struct sw_aws_price *out, const char *service,
		       const struct sw_aws_price_filter *f, size_t nf, void *arg)
{
	(void)arg;
	calls++;
	memset(out, 0, sizeof(*out));
	int have_region = 0;
	for (size_t i = 0; i < nf; i++)
		if (!strcmp(f[i].field, "regionCode"))
			have_region = !strcmp(f[i].value, "eu-west-1");
	assert_true(have_region);
	for (size_t k = 0; k < sizeof(prices) / sizeof(prices[0]); k++) {
		if (strcmp(prices[k].service, service))
			continue;
		/* every pair the table names must be among the filters */
		int ok = 1;
		char must[200];
		snprintf(must, sizeof(must), "%s", prices[k].must);
		for (char *save, *p = strtok_r(must, ";", &save); p && ok; p = strtok_r(NULL, ";", &save)) {
			char *eq = strchr(p, '=');
			*eq = '\0';
			int found = 0;
			for (size_t i = 0; i < nf; i++)
				if (!strcmp(f[i].field, p) && !strcmp(f[i].value, eq + 1))
					found = 1;
			ok = found;
		}
		if (ok) {
			out->usd = prices[k].usd;
			snprintf(out->unit, sizeof(out->unit), "%s", prices[k].unit);
			snprintf(out->date, sizeof(out->date), "2026-11-01");
			out->products = 1;
			return 0;
		}
	}
	return sw_error_setc(SW_ENOTFOUND, "pricing:GetProducts %s: no product matches", service);
}

static const struct sw_tf_cost_line *line(const struct sw_tf_cost *c, const char *addr)
{
	for (size_t i = 0; i < c->nlines; i++)
		if (!strcmp(c->lines[i].address, addr))
			return &c->lines[i];
	fail_msg("no cost line for %s", addr);
	return NULL;
}

static void near(double got, double want)
{
	if (got < want - 0.005 || got > want + 0.005)
		fail_msg("%.4f, want %.4f", got, want);
}

static void test_plan_cost(void **state)
{
	(void)state;
	struct sw_tf_result res;
	struct sw_tf_cost c;
	memset(&res, 0, sizeof(res));
	char *j = read_fixture("show-cost.json");
	assert_int_equal(sw_tf_parse_show(&res, j, strlen(j), 0), 0);
	assert_int_equal(res.nchanges, 10);
	/* a sensitive value (the database password) is in the plan in clear
	 * text: it never reaches what is kept for pricing */
	for (size_t i = 0; i < res.nchanges; i++)
		assert_null(res.changes[i].size_after && strstr(res.changes[i].size_after, "hunter2")
			    ? "leak" : NULL);

	assert_int_equal(sw_tf_cost(&c, &res, "eu-west-1", table_price, NULL), 0);
	near(line(&c, "aws_nat_gateway.main")->after, 0.045 * 730);
	near(line(&c, "aws_eks_node_group.workers")->after, 2 * 0.096 * 730);
	assert_string_equal(line(&c, "aws_eks_node_group.workers")->what, "2 × m5.large");
	near(line(&c, "aws_instance.web")->after, 0.0832 * 730);
	near(line(&c, "aws_ebs_volume.data")->after, 100 * 0.08);
	near(line(&c, "aws_eks_cluster.dev")->after, 73);
	near(line(&c, "aws_lb.front")->after, 0.0225 * 730);
	near(line(&c, "aws_db_instance.db")->after, 0.072 * 730 + 20 * 0.115);
	near(line(&c, "aws_eip.ip")->after, 0.005 * 730);
	/* not priced, and why */
	assert_non_null(strstr(line(&c, "aws_s3_bucket.logs")->note, "not priced"));
	assert_non_null(strstr(line(&c, "aws_elasticache_cluster.cache")->note, "no product"));
	assert_int_equal(c.unknown, 1);
	assert_int_equal(c.priced, 8);
	double total = 0.045 * 730 + 2 * 0.096 * 730 + 0.0832 * 730 + 8 + 73 + 0.0225 * 730 +
		       0.072 * 730 + 2.3 + 0.005 * 730;
	near(c.delta, total);
	/* the biggest first, the unpriced last */
	assert_string_equal(c.lines[0].address, "aws_eks_node_group.workers");
	assert_non_null(c.lines[c.nlines - 1].note);

	char *md = sw_tf_cost_markdown(&c, "dev", NULL, 65536);
	assert_non_null(strstr(md, "#### Cost: `dev` (eu-west-1)"));
	assert_non_null(strstr(md, "**at least +$"));
	assert_non_null(strstr(md, "| `aws_nat_gateway.main` | hours (data processed not priced) | $32.85 | +$32.85 |"));
	assert_non_null(strstr(md, "prices of 2026-11-01"));
	assert_null(strstr(md, "hunter2"));
	free(md);
	md = sw_tf_cost_markdown(&c, "dev", NULL, 300);   /* a small budget: cut, said so */
	assert_true(strlen(md) < 400);
	assert_non_null(strstr(md, "more."));
	free(md);
	sw_tf_cost_release(&c);

	/* an update and a delete: after - before; a destroy is negative */
	free(res.changes[6].size_before);     /* aws_instance.web: t3.large -> m5.large */
	res.changes[6].size_before = strdup("{\"instance_type\":\"t3.large\"}");
	free(res.changes[6].size_after);
	res.changes[6].size_after = strdup("{\"instance_type\":\"m5.large\"}");
	free(res.changes[6].actions);
	res.changes[6].actions = strdup("update");
	free(res.changes[8].actions);         /* the NAT gateway goes */
	res.changes[8].actions = strdup("delete");
	free(res.changes[8].size_before);
	res.changes[8].size_before = res.changes[8].size_after;
	res.changes[8].size_after = NULL;
	assert_int_equal(sw_tf_cost(&c, &res, "eu-west-1", table_price, NULL), 0);
	near(line(&c, "aws_instance.web")->after - line(&c, "aws_instance.web")->before,
	     (0.096 - 0.0832) * 730);
	near(line(&c, "aws_nat_gateway.main")->after - line(&c, "aws_nat_gateway.main")->before,
	     -0.045 * 730);
	md = sw_tf_cost_markdown(&c, "dev", NULL, 65536);
	assert_non_null(strstr(md, "−$32.85"));
	free(md);
	sw_tf_cost_release(&c);

	md = sw_tf_cost_markdown(NULL, "prod", "no AWS credentials (set aws: in the config)", 1000);
	assert_non_null(strstr(md, "Not shown: no AWS credentials"));
	free(md);

	struct sw_tf_result *h = sw_malloc(sizeof(*h));
	*h = res;
	sw_tf_result_free(h);
	free(j);
}

static void test_pricing_parse(void **state)
{
	(void)state;
	struct sw_aws_price p;
	struct sw_buf next = SW_BUF_INIT;
	const char *one =
		"{\"FormatVersion\":\"aws_v1\",\"NextToken\":\"tok2\",\"PriceList\":[\"{\\\"product\\\":{\\\"sku\\\":\\\"A\\\"},"
		"\\\"terms\\\":{\\\"OnDemand\\\":{\\\"A.T\\\":{\\\"effectiveDate\\\":\\\"2026-11-01T00:00:00Z\\\","
		"\\\"priceDimensions\\\":{\\\"A.T.D\\\":{\\\"unit\\\":\\\"Hrs\\\",\\\"beginRange\\\":\\\"0\\\","
		"\\\"pricePerUnit\\\":{\\\"USD\\\":\\\"0.0960000000\\\"}}}}}}}\"]}";
	memset(&p, 0, sizeof(p));
	assert_int_equal(sw_aws_pricing_parse(&p, &next, one, strlen(one)), 0);
	assert_true(p.usd > 0.0959 && p.usd < 0.0961);
	assert_string_equal(p.unit, "Hrs");
	assert_string_equal(p.date, "2026-11-01");
	assert_string_equal(next.ptr, "tok2");
	/* the same again agrees; another price does not */
	assert_int_equal(sw_aws_pricing_parse(&p, NULL, one, strlen(one)), 0);
	assert_int_equal(p.products, 2);
	char *other = strdup(one);
	memcpy(strstr(other, "0.0960"), "0.1920", 6);
	assert_int_equal(sw_aws_pricing_parse(&p, NULL, other, strlen(other)), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "different prices"));
	free(other);
	assert_int_equal(sw_aws_pricing_parse(&p, NULL, "[]", 2), SW_EINVALID);
	assert_int_equal(sw_aws_pricing_parse(&p, NULL, "{\"PriceList\":[\"{\"]}", 18), SW_EINVALID);
	memset(&p, 0, sizeof(p));
	const char *neg = "{\"PriceList\":[{\"terms\":{\"OnDemand\":{\"t\":{\"priceDimensions\":{\"d\":"
			  "{\"unit\":\"Hrs\",\"pricePerUnit\":{\"USD\":\"-1\"}}}}}}}]}";
	assert_int_equal(sw_aws_pricing_parse(&p, NULL, neg, strlen(neg)), SW_EINVALID);
	sw_buf_release(&next);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_cost),
		cmocka_unit_test(test_pricing_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
