/*
 * pricing.c - the AWS Price List Query API: GetProducts with filters, and
 * the one on-demand price its answer holds.
 *
 * The API is the JSON 1.1 protocol on POST / (X-Amz-Target:
 * AWSPriceListService.GetProducts), served from us-east-1 (and two other
 * regions); the prices of every region are there, named by the filters
 * (regionCode). Its answer's PriceList is an array of strings, each a
 * whole product document in JSON:
 *
 *   {"product": {"sku": "X", "attributes": {...}},
 *    "terms": {"OnDemand": {"X.T": {"effectiveDate": "2026-11-01T00:00:00Z",
 *        "priceDimensions": {"X.T.D": {"unit": "Hrs", "beginRange": "0",
 *            "pricePerUnit": {"USD": "0.0960000000"}}}}}}}
 *
 * A price is believed only when every product the filters match says the
 * same: filters too wide to name one thing are an error, not a guess.
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

#define PRICING_REGION "us-east-1"
#define PRICING_PAGES 5

/* The first dimension of the first on-demand term, the one starting at 0. */
static int product_price(struct sw_aws_price *p, json_t *doc)
{
	json_t *od = json_object_get(json_object_get(doc, "terms"), "OnDemand");
	const char *k, *k2;
	json_t *term, *dim;

	json_object_foreach(od, k, term) {
		json_t *dims = json_object_get(term, "priceDimensions");
		json_object_foreach(dims, k2, dim) {
			const char *begin = json_string_value(json_object_get(dim, "beginRange"));
			const char *usd = json_string_value(
				json_object_get(json_object_get(dim, "pricePerUnit"), "USD"));
			const char *unit = json_string_value(json_object_get(dim, "unit"));
			const char *date = json_string_value(json_object_get(term, "effectiveDate"));
			char *end;
			if (begin && strcmp(begin, "0"))
				continue;
			if (!usd || !unit)
				return sw_error_setc(SW_EINVALID, "a price dimension without "
						     "pricePerUnit.USD or unit");
			errno = 0;
			double v = strtod(usd, &end);
			if (errno || end == usd || *end || !isfinite(v) || v < 0)
				return sw_error_setc(SW_EINVALID, "price %.40s is not a number", usd);
			p->usd = v;
			snprintf(p->unit, sizeof(p->unit), "%s", unit);
			snprintf(p->date, sizeof(p->date), "%.10s", date ? date : "");
			return 0;
		}
	}
	return sw_error_setc(SW_ENOTFOUND, "no on-demand price");
}

int sw_aws_pricing_parse(struct sw_aws_price *p, struct sw_buf *next, const char *text,
			 size_t len)
{
	json_error_t je;
	json_t *j = json_loadb(text, len, 0, &je), *item;
	size_t i;
	int rc = 0;

	if (!json_is_object(j)) {
		json_decref(j);
		return sw_error_setc(SW_EINVALID, "GetProducts answer is not a JSON object (%s)",
				     j ? "another value" : je.text);
	}
	json_t *list = json_object_get(j, "PriceList");
	if (!json_is_array(list)) {
		json_decref(j);
		return sw_error_setc(SW_EINVALID, "GetProducts answer has no PriceList array");
	}
	json_array_foreach(list, i, item) {
		struct sw_aws_price one = { 0 };
		const char *s = json_string_value(item);
		json_t *doc = s ? json_loads(s, 0, &je) : json_incref(item);
		rc = doc ? product_price(&one, doc) : sw_error_setc(SW_EINVALID,
			"PriceList[%zu] is not a product document: %s", i, je.text);
		json_decref(doc);
		if (rc == SW_ENOTFOUND) {    /* e.g. only reserved terms */
			rc = 0;
			continue;
		}
		if (rc < 0) {
			sw_error_prefix("PriceList[%zu]", i);
			break;
		}
		if (p->products && (fabs(one.usd - p->usd) > 1e-9 || strcmp(one.unit, p->unit))) {
			rc = sw_error_setc(SW_EINVALID, "the filters match products at different "
					   "prices (%g per %s and %g per %s)", p->usd, p->unit,
					   one.usd, one.unit);
			break;
		}
		one.products = p->products + 1;
		*p = one;
	}
	const char *tok = json_string_value(json_object_get(j, "NextToken"));
	if (rc == 0 && tok && *tok && next)
		sw_buf_adds(next, tok);
	json_decref(j);
	return rc;
}

int sw_aws_price_get(struct sw_aws_price *out, const struct sw_aws_cred *c, const char *service,
		     const struct sw_aws_price_filter *f, size_t nf, long timeout_ms)
{
	struct sw_buf token = SW_BUF_INIT;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	for (int page = 0; page < PRICING_PAGES && rc == 0; page++) {
		json_t *filters = json_array();
		for (size_t i = 0; i < nf; i++)
			json_array_append_new(filters, json_pack("{s:s, s:s, s:s}", "Type",
				f[i].type ? f[i].type : "TERM_MATCH", "Field", f[i].field,
				"Value", f[i].value));
		json_t *q = json_pack("{s:s, s:o, s:s, s:i}", "ServiceCode", service, "Filters",
				      filters, "FormatVersion", "aws_v1", "MaxResults", 100);
		if (token.len)
			json_object_set_new(q, "NextToken", json_string(token.ptr));
		char *body = json_dumps(q, JSON_COMPACT);
		json_decref(q);
		sw_buf_reset(&token);
		struct aws_call call = { .service = "pricing", .region = PRICING_REGION,
					 .method = "POST",
					 .content_type = "application/x-amz-json-1.1",
					 .target = "AWSPriceListService.GetProducts", .body = body,
					 .timeout_ms = timeout_ms };
		struct aws_answer a;
		if ((rc = aws_call(&a, &call, c)) == 0)
			rc = sw_aws_pricing_parse(out, &token, a.body.ptr, a.body.len);
		aws_answer_release(&a);
		free(body);
		if (!token.len)
			break;
	}
	sw_buf_release(&token);
	if (rc == 0 && !out->products)
		rc = sw_error_setc(SW_ENOTFOUND, "no product matches");
	if (rc < 0) {
		struct sw_buf what = SW_BUF_INIT;
		for (size_t i = 0; i < nf && i < 6; i++)
			sw_buf_addf(&what, "%s%s=%s", i ? ", " : "", f[i].field, f[i].value);
		sw_error_prefix("pricing:GetProducts %s (%s)", service, what.ptr ? what.ptr : "");
		sw_buf_release(&what);
	}
	return rc;
}
