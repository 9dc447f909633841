/*
 * test_cost.c - pricing a Terraform plan (infra/cost.c) and reading the
 * Price List's answers (aws/pricing.c). The plan is the real `terraform
 * show -json` of tests/fixtures/terraform/show-cost.json (made with the
 * AWS provider against nothing: a plan of new resources asks AWS nothing);
 * the prices come from a table here. And what the environments cost:
 * Cost Explorer's answers (aws/ce.c), their sums and report
 * (report/cost.c), the store's rows (storage/cost.c), and the local time
 * of the report's schedule (lib/tz.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon/daemon.h"
#include "infra/infra.h"
#include "lib/tz.h"
#include "report/report.h"
#include "storage/store.h"
#include "scratch.h"
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

static void test_ce_parse(void **state)
{
	(void)state;
	struct sw_aws_costs c = { 0 };
	struct sw_buf next = SW_BUF_INIT, text = SW_BUF_INIT;
	const char *src = getenv("SRC");
	char path[700];
	snprintf(path, sizeof(path), "%s/tests/fuzz/seeds/aws/getcostandusage.json",
		 src && *src ? src : ".");
	assert_int_equal(sw_buf_read_file(&text, path), 0);
	assert_int_equal(sw_aws_ce_parse(&c, &next, text.ptr, text.len), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.v[0].day, "2026-11-30");
	assert_string_equal(c.v[0].service, "Amazon Elastic Compute Cloud - Compute");
	assert_true(c.v[0].usd > 4.6079 && c.v[0].usd < 4.6081);
	assert_false(c.v[0].estimated);
	assert_string_equal(next.ptr, "AAMA-EFRSURBSGljOHQ");
	/* another page adds to what is there */
	assert_int_equal(sw_aws_ce_parse(&c, NULL, text.ptr, text.len), 0);
	assert_int_equal(c.n, 4);
	sw_aws_costs_release(&c);
	/* never a figure in another currency, or one that is not a number */
	const char *eur = "{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"2026-12-01\"},\"Groups\":"
			  "[{\"Keys\":[\"S3\"],\"Metrics\":{\"UnblendedCost\":{\"Amount\":\"1\",\"Unit\":\"EUR\"}}}]}]}";
	assert_int_equal(sw_aws_ce_parse(&c, NULL, eur, strlen(eur)), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "not USD"));
	assert_non_null(strstr(sw_error_last(), "2026-12-01"));
	sw_aws_costs_release(&c);
	char *nan = strdup(eur);
	memcpy(strstr(nan, "EUR"), "USD", 3);
	memcpy(strstr(nan, "\"1\""), "\"x\"", 3);
	assert_int_equal(sw_aws_ce_parse(&c, NULL, nan, strlen(nan)), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "not a number"));
	free(nan);
	sw_aws_costs_release(&c);
	assert_int_equal(sw_aws_ce_parse(&c, NULL, "{\"ResultsByTime\":[{\"TimePeriod\":{\"Start\":\"12/01\"}}]}", 48), SW_EINVALID);
	assert_int_equal(sw_aws_ce_parse(&c, NULL, "[1]", 3), SW_EINVALID);
	sw_aws_costs_release(&c);
	sw_buf_release(&next);
	sw_buf_release(&text);
}

/* Rows: two services, November at 10 + 1 a day, December at 20 + 1 a day. */
static void fill(struct sw_store_cost *rows, size_t *n, char days[][11])
{
	*n = 0;
	for (int d = 1; d <= 30; d++) {
		snprintf(days[d], 11, "2026-11-%02d", d);
		rows[(*n)++] = (struct sw_store_cost){ .day = days[d], .service = "EC2",
						     .micro_usd = 10000000 };
		rows[(*n)++] = (struct sw_store_cost){ .day = days[d], .service = "VPC",
						     .micro_usd = 1000000 };
	}
	for (int d = 1; d <= 5; d++) {
		snprintf(days[30 + d], 11, "2026-12-%02d", d);
		rows[(*n)++] = (struct sw_store_cost){ .day = days[30 + d], .service = "EC2",
						     .micro_usd = 20000000, .estimated = d == 5 };
		rows[(*n)++] = (struct sw_store_cost){ .day = days[30 + d], .service = "VPC",
						     .micro_usd = 1000000, .estimated = d == 5 };
	}
}

static void test_cost_sum(void **state)
{
	(void)state;
	struct sw_store_cost rows[80];
	char days[40][11], from[11], usd[32];
	size_t n;
	struct sw_report_cost c;

	fill(rows, &n, days);
	assert_int_equal(sw_report_cost_window(from, "2026-12-05"), 0);
	assert_string_equal(from, "2026-11-01");
	/* on the 5th: December 1-4 against November 1-4; today (the 5th) is not counted */
	assert_int_equal(sw_report_cost_sum(&c, rows, n, "2026-12-05"), 0);
	assert_true(c.have);
	assert_string_equal(c.month, "December");
	assert_string_equal(c.prev_month, "November");
	assert_int_equal(c.days, 4);
	assert_int_equal(c.so_far, 4 * 21000000);
	assert_int_equal(c.prev_same, 4 * 11000000);
	assert_int_equal(c.prev_whole, 30 * 11000000);
	assert_false(c.estimated);
	assert_int_equal(c.nmovers, 1);          /* VPC did not move */
	assert_string_equal(c.movers[0].service, "EC2");
	assert_int_equal(c.movers[0].now - c.movers[0].before, 40000000);
	assert_string_equal(c.first_day, "2026-11-05");
	assert_int_equal(c.daily[SW_REPORT_COST_DAYS - 1], 21000000);   /* the 4th */
	assert_int_equal(c.daily[0], 11000000);
	c.env = "dev";
	char *line = sw_report_cost_line(&c);
	assert_string_equal(line, "$84.00 in December so far (4 days); $44.00 in November's first 4: +91%");
	free(line);
	/* on the 1st: the month just ended against the one before */
	assert_int_equal(sw_report_cost_sum(&c, rows, n, "2026-12-01"), 0);
	assert_string_equal(c.month, "November");
	assert_int_equal(c.days, 30);
	assert_int_equal(c.so_far, 30 * 11000000);
	assert_int_equal(c.prev_same, 0);
	/* the estimate of the 5th counts on the 6th, said so */
	assert_int_equal(sw_report_cost_sum(&c, rows, n, "2026-12-06"), 0);
	assert_true(c.estimated);
	assert_int_equal(sw_report_cost_sum(&c, rows, n, "12/06"), SW_EINVALID);

	sw_report_usd(usd, sizeof(usd), 1234567890);
	assert_string_equal(usd, "$1,234.57");
	sw_report_usd(usd, sizeof(usd), -4990);
	assert_string_equal(usd, "-$0.00");
	sw_report_usd(usd, sizeof(usd), 999995000);
	assert_string_equal(usd, "$1,000.00");

	char title[64];
	sw_report_cost_title(title, sizeof(title), "2026-12-05", 0);
	assert_string_equal(title, "Cost report, Saturday 5 December");
	sw_report_cost_title(title, sizeof(title), "2026-12-07", 1);
	assert_string_equal(title, "Weekly cost report, Monday 7 December");

	/* the Slack report: a section per environment, one saying why it is empty */
	struct sw_report_cost two[2];
	assert_int_equal(sw_report_cost_sum(&two[0], rows, n, "2026-12-05"), 0);
	two[0].env = "dev";
	assert_int_equal(sw_report_cost_sum(&two[1], NULL, 0, "2026-12-05"), 0);
	two[1].env = "prod<x>";
	two[1].error = "AccessDeniedException: not authorized to perform: ce:GetCostAndUsage";
	json_t *msg = sw_report_cost_slack(two, 2, "Cost on 2026-12-05", "From Cost Explorer");
	char *text = json_dumps(msg, JSON_COMPACT);
	assert_non_null(strstr(text, "December 1\xe2\x80\x93" "4: *$84.00*"));
	assert_non_null(strstr(text, "EC2: $80.00 (+$40.00)"));
	assert_non_null(strstr(text, "*prod&lt;x&gt;*: no figures: AccessDeniedException"));
	assert_non_null(strstr(text, "ce:GetCostAndUsage"));
	assert_int_equal(json_array_size(json_object_get(msg, "blocks")), 4);
	free(text);
	json_decref(msg);
	/* a deploy's last message carries its environment's trend */
	struct sw_report_run run = { .id = 7, .kind = "push", .repo = "acme/app", .commit = "0123456789abcdef",
				     .environment = "prod", .status = "success", .cost = "$84.00 in December so far" };
	msg = sw_report_slack(&run, SW_REPORT_PASSED, NULL);
	text = json_dumps(msg, JSON_COMPACT);
	assert_non_null(strstr(text, ":moneybag: Cost of prod: $84.00 in December so far"));
	free(text);
	json_decref(msg);
	msg = sw_report_slack(&run, SW_REPORT_STARTED, NULL);
	text = json_dumps(msg, JSON_COMPACT);
	assert_null(strstr(text, "moneybag"));
	free(text);
	json_decref(msg);
	char *svg = sw_report_cost_svg(&two[0]);
	assert_non_null(strstr(svg, "<svg class=\"cost\""));
	assert_non_null(strstr(svg, "<title>2026-12-04: $21.00</title>"));
	assert_non_null(strstr(svg, "<title>2026-11-05: $11.00</title>"));
	free(svg);
}

static void test_cost_store(void **state)
{
	(void)state;
	char dir[256];
	struct sw_store *st;
	struct sw_store_cost rows[80], *got;
	struct sw_store_cost_list l = { 0 };
	char days[40][11];
	size_t n;

	fill(rows, &n, days);
	assert_int_equal(sw_test_tmpdir(dir, sizeof(dir), "cost"), 0);
	assert_int_equal(sw_store_open(&st, dir), 0);
	assert_int_equal(sw_store_cost_replace(st, "dev", "2026-11-01", "2026-12-06", rows, n, 5), 0);
	assert_int_equal(sw_store_cost_list(st, "dev", "2026-12-01", "2026-12-06", &l), 0);
	assert_int_equal(l.n, 10);
	got = l.v;
	assert_string_equal(got[0].day, "2026-12-01");
	assert_string_equal(got[0].service, "EC2");
	assert_int_equal(got[0].micro_usd, 20000000);
	assert_int_equal(got[9].estimated, 1);
	sw_store_cost_list_release(&l);
	/* a fetch again replaces its days only */
	assert_int_equal(sw_store_cost_replace(st, "dev", "2026-12-05", "2026-12-06", rows, 1, 6),
			 SW_EINVALID);
	assert_int_equal(sw_store_cost_replace(st, "dev", "2026-12-05", "2026-12-06", &rows[n - 1],
					       1, 6), 0);
	assert_int_equal(sw_store_cost_list(st, "dev", "2026-11-01", "2026-12-06", &l), 0);
	assert_int_equal(l.n, n - 2 + 1);
	sw_store_cost_list_release(&l);
	assert_int_equal(sw_store_cost_list(st, "prod", "2026-11-01", "2026-12-06", &l), 0);
	assert_int_equal(l.n, 0);
	sw_store_cost_list_release(&l);
	sw_store_close(st);
	sw_test_rmtree(dir);
}

static void test_tz(void **state)
{
	(void)state;
	struct sw_tz *tz;
	struct tm tm;

	assert_int_equal(sw_tz_load(&tz, "UTC"), 0);
	assert_int_equal(sw_tz_offset(tz, 1764950400), 0);
	sw_tz_free(tz);
	if (sw_tz_load(&tz, "Europe/Berlin") == SW_ENOTFOUND) {
		skip();    /* no tzdata */
		return;
	}
	/* 2026-12-05 12:00 UTC is 13:00 in Berlin; 2026-07-01 12:00 UTC is 14:00 */
	assert_int_equal(sw_tz_offset(tz, 1796472000), 3600);
	assert_int_equal(sw_tz_offset(tz, 1782907200), 7200);
	sw_tz_local(tz, 1796472000, &tm);
	assert_int_equal(tm.tm_hour, 13);
	assert_int_equal(tm.tm_mday, 5);
	assert_int_equal(tm.tm_mon, 11);
	assert_int_equal(tm.tm_isdst, 0);
	sw_tz_free(tz);
	assert_int_equal(sw_tz_load(&tz, "America/New_York"), 0);
	assert_int_equal(sw_tz_offset(tz, 1796472000), -5 * 3600);
	/* before the first transition: local mean time is not standard time, but the file's */
	assert_true(sw_tz_offset(tz, -4000000000LL) < 0);
	sw_tz_free(tz);
	assert_int_equal(sw_tz_load(&tz, "../etc/passwd"), SW_EINVALID);
	assert_int_equal(sw_tz_load(&tz, "/etc/localtime"), SW_EINVALID);
	assert_int_equal(sw_tz_load(&tz, "Mars/Olympus_Mons"), SW_ENOTFOUND);
	assert_non_null(strstr(sw_error_last(), "Mars/Olympus_Mons"));
	assert_int_equal(sw_tz_load(&tz, "zone.tab"), SW_EINVALID);   /* not TZif */
}

static void test_cost_slot(void **state)
{
	(void)state;
	struct sw_tz *tz;
	char slot[11];
	/* Saturday 2026-12-05 05:30 UTC is 06:30 in Berlin */
	int64_t now = 1796472000 - 6 * 3600 - 1800;

	assert_int_equal(sw_tz_load(&tz, "UTC"), 0);
	assert_int_equal(sw_cost_slot(slot, now, tz, SW_COST_OFF, 1, 0), 0);
	assert_int_equal(sw_cost_slot(slot, now, tz, SW_COST_DAILY, 1, 5 * 60 + 30), 1);
	assert_string_equal(slot, "2026-12-05");               /* due this minute */
	assert_int_equal(sw_cost_slot(slot, now, tz, SW_COST_DAILY, 1, 9 * 60), 1);
	assert_string_equal(slot, "2026-12-04");               /* today's not yet: yesterday's */
	assert_int_equal(sw_cost_slot(slot, now, tz, SW_COST_WEEKLY, 1, 9 * 60), 1);
	assert_string_equal(slot, "2026-11-30");               /* the last Monday */
	assert_int_equal(sw_cost_slot(slot, now, tz, SW_COST_WEEKLY, 6, 5 * 60), 1);
	assert_string_equal(slot, "2026-12-05");               /* this Saturday, passed */
	assert_int_equal(sw_cost_slot(slot, now, tz, SW_COST_WEEKLY, 6, 6 * 60), 1);
	assert_string_equal(slot, "2026-11-28");               /* this Saturday's not yet */
	sw_tz_free(tz);
	if (sw_tz_load(&tz, "Europe/Berlin") < 0) {
		skip();
		return;
	}
	assert_int_equal(sw_cost_slot(slot, now, tz, SW_COST_DAILY, 1, 6 * 60 + 30), 1);
	assert_string_equal(slot, "2026-12-05");               /* 06:30 local */
	assert_int_equal(sw_cost_slot(slot, now, tz, SW_COST_DAILY, 1, 6 * 60 + 31), 1);
	assert_string_equal(slot, "2026-12-04");
	sw_tz_free(tz);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_cost),
		cmocka_unit_test(test_pricing_parse),
		cmocka_unit_test(test_ce_parse),
		cmocka_unit_test(test_cost_sum),
		cmocka_unit_test(test_cost_store),
		cmocka_unit_test(test_tz),
		cmocka_unit_test(test_cost_slot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
