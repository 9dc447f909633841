/*
 * ce.c - AWS Cost Explorer: what was spent, per day and service, on what
 * carries one cost-allocation tag (ce:GetCostAndUsage).
 *
 * The API is the JSON 1.1 protocol on POST / (X-Amz-Target:
 * AWSInsightsIndexService.GetCostAndUsage), served from us-east-1 only.
 * Its answer, a page of days:
 *
 *   {"GroupDefinitions": [{"Type": "DIMENSION", "Key": "SERVICE"}],
 *    "ResultsByTime": [{"TimePeriod": {"Start": "2026-12-01", "End": "2026-12-02"},
 *        "Total": {}, "Estimated": true,
 *        "Groups": [{"Keys": ["Amazon Elastic Compute Cloud - Compute"],
 *                    "Metrics": {"UnblendedCost": {"Amount": "4.608", "Unit": "USD"}}}]}],
 *    "NextPageToken": "..."}
 *
 * Every figure must be in USD and a number: an answer that is not is an
 * error, never a figure shown as right. Each call is billed (USD 0.01), so
 * callers ask once a day and keep what came (daemon/cost.c).
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws-int.h"
#include "lib/buf.h"
#include "lib/error.h"

#define CE_REGION "us-east-1"
#define CE_PAGES 20
#define CE_METRIC "UnblendedCost"

void sw_aws_costs_release(struct sw_aws_costs *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].service);
	free(c->v);
	memset(c, 0, sizeof(*c));
}

static int is_day(const char *s)
{
	int y, m, d;
	char tail;
	return s && strlen(s) == 10 && sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) == 3 &&
	       s[4] == '-' && s[7] == '-' && m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

static int add_group(struct sw_aws_costs *c, const char *day, int estimated, json_t *g)
{
	json_t *keys = json_object_get(g, "Keys");
	json_t *m = json_object_get(json_object_get(g, "Metrics"), CE_METRIC);
	const char *service = json_string_value(json_array_get(keys, 0));
	const char *amount = json_string_value(json_object_get(m, "Amount"));
	const char *unit = json_string_value(json_object_get(m, "Unit"));
	char *end;

	if (!service || !*service)
		return sw_error_setc(SW_EINVALID, "a group without Keys[0]");
	if (!amount || !unit)
		return sw_error_setc(SW_EINVALID, "group %.80s has no %s Amount and Unit",
				     service, CE_METRIC);
	if (strcmp(unit, "USD"))
		return sw_error_setc(SW_EINVALID, "group %.80s is in %.8s, not USD", service, unit);
	errno = 0;
	double v = strtod(amount, &end);
	if (errno || end == amount || *end || !isfinite(v))
		return sw_error_setc(SW_EINVALID, "group %.80s: amount %.40s is not a number",
				     service, amount);
	if (c->n == c->alloc) {
		c->alloc = c->alloc ? c->alloc * 2 : 64;
		c->v = sw_realloc(c->v, c->alloc * sizeof(*c->v));
	}
	struct sw_aws_cost_row *r = &c->v[c->n++];
	memcpy(r->day, day, 11);
	r->service = sw_strdup(service);
	r->usd = v;
	r->estimated = estimated;
	return 0;
}

int sw_aws_ce_parse(struct sw_aws_costs *c, struct sw_buf *next, const char *text, size_t len)
{
	json_error_t je;
	json_t *j = json_loadb(text, len, 0, &je), *day, *g;
	size_t i, k;
	int rc = 0;

	if (!json_is_object(j)) {
		json_decref(j);
		return sw_error_setc(SW_EINVALID, "GetCostAndUsage answer is not a JSON object (%s)",
				     j ? "another value" : je.text);
	}
	json_t *days = json_object_get(j, "ResultsByTime");
	if (!json_is_array(days)) {
		json_decref(j);
		return sw_error_setc(SW_EINVALID, "GetCostAndUsage answer has no ResultsByTime array");
	}
	json_array_foreach(days, i, day) {
		const char *start = json_string_value(
			json_object_get(json_object_get(day, "TimePeriod"), "Start"));
		json_t *groups = json_object_get(day, "Groups");
		if (!is_day(start)) {
			rc = sw_error_setc(SW_EINVALID, "ResultsByTime[%zu]: TimePeriod.Start is not "
					   "YYYY-MM-DD", i);
			break;
		}
		if (groups && !json_is_array(groups)) {
			rc = sw_error_setc(SW_EINVALID, "ResultsByTime[%zu]: Groups is not an array", i);
			break;
		}
		int est = json_is_true(json_object_get(day, "Estimated"));
		json_array_foreach(groups, k, g) {
			if ((rc = add_group(c, start, est, g)) < 0)
				break;
		}
		if (rc < 0) {
			sw_error_prefix("ResultsByTime[%zu] (%s)", i, start);
			break;
		}
	}
	const char *tok = json_string_value(json_object_get(j, "NextPageToken"));
	if (rc == 0 && tok && *tok && next)
		sw_buf_adds(next, tok);
	json_decref(j);
	return rc;
}

int sw_aws_cost_get(struct sw_aws_costs *out, const struct sw_aws_cred *cred,
		    const struct sw_aws_cost_query *q, long timeout_ms)
{
	struct sw_buf token = SW_BUF_INIT;
	int rc = 0, page;

	memset(out, 0, sizeof(*out));
	if (!is_day(q->start) || !is_day(q->end) || strcmp(q->start, q->end) >= 0)
		return sw_error_setc(SW_EINVALID, "ce:GetCostAndUsage: the period %s to %s is not "
				     "two days in order", q->start ? q->start : "?",
				     q->end ? q->end : "?");
	for (page = 0; page < CE_PAGES && rc == 0; page++) {
		json_t *body = json_pack("{s:{s:s, s:s}, s:s, s:[s], s:[{s:s, s:s}]}",
			"TimePeriod", "Start", q->start, "End", q->end, "Granularity", "DAILY",
			"Metrics", CE_METRIC, "GroupBy", "Type", "DIMENSION", "Key", "SERVICE");
		if (q->tag_key)
			json_object_set_new(body, "Filter", json_pack("{s:{s:s, s:[s], s:[s]}}",
				"Tags", "Key", q->tag_key, "Values", q->tag_value ? q->tag_value : "",
				"MatchOptions", "EQUALS"));
		if (token.len)
			json_object_set_new(body, "NextPageToken", json_string(token.ptr));
		char *text = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		sw_buf_reset(&token);
		struct aws_call call = { .service = "ce", .endpoint = "cost-explorer",
					 .region = CE_REGION, .method = "POST",
					 .content_type = "application/x-amz-json-1.1",
					 .target = "AWSInsightsIndexService.GetCostAndUsage",
					 .body = text, .timeout_ms = timeout_ms };
		struct aws_answer a;
		if ((rc = aws_call(&a, &call, cred)) == 0)
			rc = sw_aws_ce_parse(out, &token, a.body.ptr, a.body.len);
		aws_answer_release(&a);
		free(text);
		if (!token.len)
			break;
	}
	if (rc == 0 && token.len)
		rc = sw_error_setc(SW_EINVALID, "more than %d pages", CE_PAGES);
	sw_buf_release(&token);
	if (rc < 0) {
		sw_aws_costs_release(out);
		if (q->tag_key)
			sw_error_prefix("ce:GetCostAndUsage %s to %s, tag %s=%s", q->start, q->end,
					q->tag_key, q->tag_value ? q->tag_value : "");
		else
			sw_error_prefix("ce:GetCostAndUsage %s to %s", q->start, q->end);
	}
	return rc;
}
