/*
 * test_aws.c - aws/aws.h, the parts that read what AWS and the user's files
 * say: the XML of STS answers, the shared files' INI, container and
 * instance credentials, DescribeCluster; and the EKS token's shape. (The
 * requests themselves are tried against the stand-in in tests/e2e/25-aws.sh.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws.h"
#include "lib/base64.h"
#include "lib/buf.h"
#include "lib/clock.h"

static const char sts_ok[] =
	"<?xml version=\"1.0\"?>\n"
	"<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
	"  <!-- a comment <Credentials> -->\n"
	"  <AssumeRoleWithWebIdentityResult>\n"
	"    <SubjectFromWebIdentityToken>system:serviceaccount:slipway:slipway</SubjectFromWebIdentityToken>\n"
	"    <Credentials>\n"
	"      <SessionToken>tok&amp;en&#x2F;&#47;</SessionToken>\n"
	"      <SecretAccessKey><![CDATA[se<cr>et]]></SecretAccessKey>\n"
	"      <Expiration>2026-12-04T22:00:00Z</Expiration>\n"
	"      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>\n"
	"    </Credentials>\n"
	"    <AssumedRoleUser a='x>y'><Arn/></AssumedRoleUser>\n"
	"  </AssumeRoleWithWebIdentityResult>\n"
	"</AssumeRoleWithWebIdentityResponse>\n";

static void test_xml(void **state)
{
	struct sw_buf b = SW_BUF_INIT;
	const char *r = "AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult/";
	char p[200];
	snprintf(p, sizeof(p), "%sCredentials/SessionToken", r);
	assert_int_equal(sw_aws_xml_text(&b, sts_ok, strlen(sts_ok), p), 0);
	assert_string_equal(b.ptr, "tok&en//");
	sw_buf_reset(&b);
	snprintf(p, sizeof(p), "%sCredentials/SecretAccessKey", r);
	assert_int_equal(sw_aws_xml_text(&b, sts_ok, strlen(sts_ok), p), 0);
	assert_string_equal(b.ptr, "se<cr>et");
	sw_buf_reset(&b);
	snprintf(p, sizeof(p), "%sAssumedRoleUser/Arn", r);
	assert_int_equal(sw_aws_xml_text(&b, sts_ok, strlen(sts_ok), p), 0);
	assert_string_equal(b.ptr, "");
	snprintf(p, sizeof(p), "%sCredentials/Nothing", r);
	assert_int_equal(sw_aws_xml_text(&b, sts_ok, strlen(sts_ok), p), SW_ENOTFOUND);
	/* prefixes are not part of the name */
	const char *ns = "<a:X xmlns:a='u'><a:Y>v</a:Y></a:X>";
	sw_buf_reset(&b);
	assert_int_equal(sw_aws_xml_text(&b, ns, strlen(ns), "X/Y"), 0);
	assert_string_equal(b.ptr, "v");

	static const char *const broken[] = {
		"<a><b>x</a></b>", "<a><c>x</c>", "<a>&bogus;</a>", "<a>&#0;</a>", "<a>&#xD800;</a>",
		"<a><!-- x </a>", "<a><![CDATA[x</a>", "<a x='>", "<>x</>", "</a>",
	};
	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		sw_buf_reset(&b);
		int rc = sw_aws_xml_text(&b, broken[i], strlen(broken[i]), "a");
		if (rc != SW_EINVALID) {
			print_error("%s: %d\n", broken[i], rc);
			fail();
		}
		assert_non_null(strstr(sw_error_last(), "at byte"));
	}
	struct sw_buf deep = SW_BUF_INIT;
	for (int i = 0; i < 40; i++)
		sw_buf_adds(&deep, "<a>");
	assert_int_equal(sw_aws_xml_text(&b, deep.ptr, deep.len, "a"), SW_EINVALID);
	sw_buf_release(&deep);
	sw_buf_release(&b);
}

static void test_sts_answer(void **state)
{
	struct sw_aws_cred c;
	int64_t t;
	assert_int_equal(sw_aws_cred_parse_sts(&c, sts_ok, strlen(sts_ok), "AssumeRoleWithWebIdentity"),
			 0);
	assert_string_equal(c.access_key_id, "ASIAEXAMPLE");
	assert_string_equal(c.secret_access_key, "se<cr>et");
	assert_string_equal(c.session_token, "tok&en//");
	assert_int_equal(sw_parse_rfc3339("2026-12-04T22:00:00Z", &t), 0);
	assert_int_equal(c.expires_ms, t);
	sw_aws_cred_release(&c);
	assert_null(c.access_key_id);
	/* the right document for another action is not an answer */
	assert_int_equal(sw_aws_cred_parse_sts(&c, sts_ok, strlen(sts_ok), "AssumeRole"), SW_ENOTFOUND);
	assert_non_null(strstr(sw_error_last(), "STS AssumeRole: XML: no AssumeRoleResponse/"));
}

static void test_ini(void **state)
{
	static const char f[] =
		"# a comment\n"
		"[default]\n"
		"aws_access_key_id=AKID1\n"
		"aws_secret_access_key = s1 ; inline\n"
		"[ profile ops ]\n"
		"Role_Arn = arn:aws:iam::1:role/x#not-a-comment\n"
		"s3 =\n"
		"  max_concurrent_requests = 20\n"
		"region = eu-west-1\r\n"
		"[broken\n"
		"region = nowhere\n";
	struct sw_buf b = SW_BUF_INIT;
	assert_int_equal(sw_aws_ini_get(&b, f, strlen(f), "default", "aws_access_key_id"), 0);
	assert_string_equal(b.ptr, "AKID1");
	assert_int_equal(sw_aws_ini_get(&b, f, strlen(f), "default", "aws_secret_access_key"), 0);
	assert_string_equal(b.ptr, "s1");
	assert_int_equal(sw_aws_ini_get(&b, f, strlen(f), "profile ops", "role_arn"), 0);
	assert_string_equal(b.ptr, "arn:aws:iam::1:role/x#not-a-comment");
	assert_int_equal(sw_aws_ini_get(&b, f, strlen(f), "profile ops", "region"), 0);
	assert_string_equal(b.ptr, "eu-west-1");
	assert_int_equal(sw_aws_ini_get(&b, f, strlen(f), "profile ops", "max_concurrent_requests"),
			 SW_ENOTFOUND);
	assert_int_equal(sw_aws_ini_get(&b, f, strlen(f), "default", "region"), SW_ENOTFOUND);
	assert_int_equal(sw_aws_ini_get(&b, "", 0, "default", "x"), SW_ENOTFOUND);
	sw_buf_release(&b);
}

static void test_cred_json(void **state)
{
	struct sw_aws_cred c;
	const char *ok = "{\"Code\":\"Success\",\"AccessKeyId\":\"ASIA1\",\"SecretAccessKey\":\"s\","
			 "\"Token\":\"t\",\"Expiration\":\"2026-12-04T22:00:00Z\"}";
	assert_int_equal(sw_aws_cred_parse_json(&c, ok, strlen(ok)), 0);
	assert_string_equal(c.session_token, "t");
	assert_true(c.expires_ms > 0);
	sw_aws_cred_release(&c);
	static const char *const bad[][2] = {
		{ "{\"Code\":\"Failed\",\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\"}", "Code is Failed" },
		{ "{\"AccessKeyId\":\"A\"}", "no AccessKeyId or SecretAccessKey" },
		{ "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s\",\"Expiration\":\"soon\"}", "not a time" },
		{ "[1]", "not a JSON object" },
		{ "", "not a JSON object" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sw_aws_cred_parse_json(&c, bad[i][0], strlen(bad[i][0])), SW_EINVALID);
		assert_non_null(strstr(sw_error_last(), bad[i][1]));
		assert_null(strstr(sw_error_last(), "\"s\""));
	}
}

static void test_describe_cluster(void **state)
{
	struct sw_eks_cluster c;
	const char *ok = "{\"cluster\":{\"name\":\"dev\",\"endpoint\":\"https://ABC.gr7.us-east-1.eks.amazonaws.com\","
			 "\"status\":\"ACTIVE\",\"certificateAuthority\":{\"data\":\"LS0tLS1CRUdJTg==\"}}}";
	assert_int_equal(sw_eks_parse_cluster(&c, ok, strlen(ok)), 0);
	assert_string_equal(c.endpoint, "https://ABC.gr7.us-east-1.eks.amazonaws.com");
	assert_string_equal(c.ca_pem, "-----BEGIN");
	assert_string_equal(c.status, "ACTIVE");
	sw_eks_cluster_release(&c);
	const char *creating = "{\"cluster\":{\"status\":\"CREATING\",\"certificateAuthority\":{}}}";
	assert_int_equal(sw_eks_parse_cluster(&c, creating, strlen(creating)), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "no https endpoint (status CREATING)"));
	const char *badca = "{\"cluster\":{\"endpoint\":\"https://x\",\"certificateAuthority\":{\"data\":\"*\"}}}";
	assert_int_equal(sw_eks_parse_cluster(&c, badca, strlen(badca)), SW_EINVALID);
	assert_int_equal(sw_eks_parse_cluster(&c, "{}", 2), SW_EINVALID);
}

static void test_eks_token(void **state)
{
	struct sw_aws_cred c = { 0 };
	struct sw_buf url = SW_BUF_INIT;
	char *tok;
	int64_t exp;
	c.access_key_id = "AKIDEXAMPLE";
	c.secret_access_key = "secret";
	setenv("AWS_ENDPOINT_URL_STS", "https://sts.example.test/", 1);
	assert_int_equal(sw_eks_token(&tok, &exp, &c, "dev", "us-east-1", 1440938160000), 0);
	unsetenv("AWS_ENDPOINT_URL_STS");
	assert_int_equal(exp, 1440938160000 + 14 * 60 * 1000);
	assert_memory_equal(tok, "k8s-aws-v1.", 11);
	assert_null(strchr(tok, '='));
	assert_int_equal(sw_base64_decode(&url, tok + 11, strlen(tok + 11), SW_BASE64_URL | SW_BASE64_NOPAD), 0);
	assert_non_null(strstr(url.ptr, "https://sts.example.test/?Action=GetCallerIdentity&"
					"Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&"
					"X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fsts%2Faws4_request&"
					"X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&"
					"X-Amz-Expires=60&X-Amz-Signature="));
	assert_null(strstr(url.ptr, "secret"));
	free(tok);
	assert_int_equal(sw_eks_token(&tok, &exp, &c, "", "us-east-1", 0), SW_EINVALID);
	sw_buf_release(&url);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xml),
		cmocka_unit_test(test_sts_answer),
		cmocka_unit_test(test_ini),
		cmocka_unit_test(test_cred_json),
		cmocka_unit_test(test_describe_cluster),
		cmocka_unit_test(test_eks_token),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
