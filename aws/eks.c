/*
 * eks.c - reaching an EKS cluster without the aws CLI: the bearer token
 * (a presigned STS GetCallerIdentity, as aws-iam-authenticator reads it) and
 * the cluster's endpoint and CA (eks:DescribeCluster).
 */
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws-int.h"
#include "lib/base64.h"
#include "lib/buf.h"
#include "lib/error.h"

#define TOKEN_PREFIX "k8s-aws-v1."
#define PRESIGN_S 60
/* EKS accepts a token for 15 minutes; clients renew it a minute before. */
#define TOKEN_LIFE_MS (14 * 60 * 1000)

int sw_eks_token(char **out, int64_t *expires_ms, const struct sw_aws_cred *c,
		 const char *cluster, const char *region, int64_t now_ms)
{
	char *base = sw_aws_endpoint("sts", region), *host;
	const char *path;
	struct sw_aws_creds v;
	struct sw_sigv4 s;
	struct sw_buf url = SW_BUF_INIT, tok = SW_BUF_INIT;
	int rc;

	*out = NULL;
	if (!cluster || !*cluster) {
		free(base);
		return sw_error_setc(SW_EINVALID, "EKS token: no cluster name");
	}
	int origin = aws_split_url(base, &host, &path);
	struct sw_sigv4_header h[] = { { "Host", host }, { "x-k8s-aws-id", cluster } };
	struct sw_sigv4_req rq = { "GET", path, "Action=GetCallerIdentity&Version=2011-06-15", h, 2,
				   NULL, 0 };
	struct sw_sigv4_opts o = SW_SIGV4_OPTS_INIT;
	o.region = region;
	o.service = "sts";
	o.now = now_ms / 1000;
	o.expires_s = PRESIGN_S;
	sw_aws_cred_view(c, &v);
	if ((rc = sw_sigv4_sign(&s, &v, &rq, &o)) == 0) {
		sw_buf_addf(&url, "%.*s%s?%s", origin, base, path, s.query);
		sw_buf_adds(&tok, TOKEN_PREFIX);
		sw_base64_encode(&tok, url.ptr, url.len, SW_BASE64_URL | SW_BASE64_NOPAD);
		*out = sw_buf_detach(&tok, NULL);
		*expires_ms = now_ms + TOKEN_LIFE_MS;
	} else {
		sw_error_prefix("EKS token for %s", cluster);
	}
	OPENSSL_cleanse(url.ptr, url.len);
	sw_buf_release(&url);
	sw_sigv4_release(&s);
	free(host);
	free(base);
	return rc;
}

void sw_eks_cluster_release(struct sw_eks_cluster *c)
{
	free(c->endpoint);
	free(c->ca_pem);
	free(c->status);
	memset(c, 0, sizeof(*c));
}

int sw_eks_parse_cluster(struct sw_eks_cluster *out, const char *text, size_t len)
{
	json_error_t je;
	json_t *j = json_loadb(text, len, 0, &je), *cl;
	struct sw_buf pem = SW_BUF_INIT;
	int rc = 0;
	memset(out, 0, sizeof(*out));
	cl = json_object_get(j, "cluster");
	const char *ep = json_string_value(json_object_get(cl, "endpoint"));
	const char *ca = json_string_value(json_object_get(json_object_get(cl,
							"certificateAuthority"), "data"));
	const char *st = json_string_value(json_object_get(cl, "status"));
	if (!json_is_object(cl))
		rc = sw_error_setc(SW_EINVALID, "DescribeCluster: no cluster in the answer");
	else if (!ep || strncmp(ep, "https://", 8))
		rc = sw_error_setc(SW_EINVALID, "DescribeCluster: the cluster has no https "
				   "endpoint (status %.32s)", st ? st : "unknown");
	else if (!ca || sw_base64_decode(&pem, ca, strlen(ca), SW_BASE64_LOOSE) < 0)
		rc = sw_error_setc(SW_EINVALID, "DescribeCluster: certificateAuthority.data is "
				   "not base64");
	if (rc == 0) {
		out->endpoint = sw_strdup(ep);
		out->ca_pem = sw_buf_detach(&pem, NULL);
		out->status = sw_strdup(st ? st : "");
	}
	sw_buf_release(&pem);
	json_decref(j);
	return rc;
}

int sw_eks_describe(struct sw_eks_cluster *out, const struct sw_aws_cred *c, const char *name,
		    const char *region, int64_t now_ms, long timeout_ms)
{
	struct sw_buf path = SW_BUF_INIT;
	struct aws_answer a;
	int rc;

	memset(out, 0, sizeof(*out));
	sw_buf_adds(&path, "/clusters/");
	sw_aws_uri_encode(&path, name, strlen(name), 0);
	struct aws_call call = { .service = "eks", .region = region, .method = "GET",
				 .path = path.ptr, .timeout_ms = timeout_ms, .now_ms = now_ms };
	if ((rc = aws_call(&a, &call, c)) == 0)
		rc = sw_eks_parse_cluster(out, a.body.ptr, a.body.len);
	if (rc < 0)
		sw_error_prefix("EKS DescribeCluster %s in %s", name, region);
	aws_answer_release(&a);
	sw_buf_release(&path);
	return rc;
}
