/*
 * aws.h - the AWS room: talking to AWS as its SDKs do, in C: Signature
 * Version 4 (sigv4.c), credentials found as the SDKs find them (creds.c),
 * the XML of STS answers (xml.c), EKS tokens and clusters (eks.c), prices
 * (pricing.c), what was spent (ce.c), over one signed request (call.c). May call: lib/ (and OpenSSL, libcurl).
 *
 * A request is signed by giving the signer what goes on the wire:
 *
 *     struct sw_aws_creds cr = { "AKID...", "secret", NULL };
 *     struct sw_sigv4_header h[] = { { "Host", "sts.us-east-1.amazonaws.com" } };
 *     struct sw_sigv4_req rq = { "GET", "/", "Action=GetCallerIdentity&Version=2011-06-15",
 *                                h, 1, NULL, 0 };
 *     struct sw_sigv4_opts o = SW_SIGV4_OPTS_INIT;
 *     o.region = "us-east-1"; o.service = "sts"; o.now = time(NULL);
 *     o.expires_s = 60;                    // a presigned URL; 0 = headers
 *     struct sw_sigv4 s;
 *     if (sw_sigv4_sign(&s, &cr, &rq, &o) < 0) ...
 *     url = "https://" host + rq.path + "?" + s.query;   // or add s.add[] as headers
 *     sw_sigv4_release(&s);
 *
 * What the signer does, after AWS's description of SigV4 and its test
 * suite (tests/unit/test_sigv4.c runs every case of ../shared/fixtures/
 * aws-sigv4, byte for byte):
 *  - the canonical path: the path as sent, with dot segments and repeated
 *    slashes removed when `normalize_path` (every service but S3), then
 *    each byte but the unreserved ones and '/' percent-encoded (AWS encodes
 *    the path as sent, so a path already encoded is encoded again, except
 *    for S3);
 *  - the canonical query: each parameter decoded, then encoded again
 *    (RFC 3986 unreserved kept), sorted by name then value; a parameter
 *    without '=' has an empty value;
 *  - the canonical headers: every header given is signed (give only those
 *    to sign), names lowercased, values trimmed with runs of spaces and
 *    folded lines made one space, repeated names joined with ',' in order,
 *    sorted by name; X-Amz-Date (headers) and X-Amz-Security-Token (unless
 *    `token_after`) are added and signed;
 *  - the payload hash: `payload_hash` when given (e.g. "UNSIGNED-PAYLOAD"),
 *    else SHA-256 of the body; sent as x-amz-content-sha256 when
 *    `content_sha256`;
 *  - the key derived from the secret, date, region and service, and the
 *    signature as HMAC-SHA256 over the string to sign.
 * The secret key is used only to derive the key; nothing here logs.
 */
#ifndef SW_AWS_H
#define SW_AWS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

struct sw_aws_creds {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;   /* NULL for long-term keys */
};

struct sw_sigv4_header {
	const char *name;
	const char *value;   /* as sent; a folded value keeps its "\n " */
};

struct sw_sigv4_req {
	const char *method;
	const char *path;    /* as on the request line, without the query */
	const char *query;   /* after '?', NULL or "" for none */
	const struct sw_sigv4_header *headers;   /* to sign; Host among them */
	size_t nheaders;
	const void *body;
	size_t body_len;
};

struct sw_sigv4_opts {
	const char *region;
	const char *service;
	int64_t now;             /* seconds since the epoch */
	int normalize_path;      /* 1, except for S3 */
	int content_sha256;      /* send and sign x-amz-content-sha256 */
	const char *payload_hash;/* NULL: SHA-256 of the body */
	int64_t expires_s;       /* > 0: sign into the query (a presigned URL) */
	int token_after;         /* add the session token unsigned, after signing */
};
#define SW_SIGV4_OPTS_INIT { NULL, NULL, 0, 1, 0, NULL, 0, 0 }

#define SW_SIGV4_MAX_ADD 4

struct sw_sigv4 {
	struct sw_buf canonical;     /* the canonical request */
	struct sw_buf string_to_sign;
	char signature[65];          /* hex */
	/* headers mode: the headers to add to the request, in this order */
	struct { char *name, *value; } add[SW_SIGV4_MAX_ADD];
	size_t nadd;
	/* query mode: the query to send (the request's, then the X-Amz-* ones) */
	char *query;
};

/*
 * Sign `rq` with `cr` as `o` says. Returns 0 and fills `out` (release it
 * with sw_sigv4_release, also after an error), or SW_EINVALID when the
 * request or the options are incomplete (no method, path, region, service,
 * keys; a header name that is empty or holds ':' or a control byte) or a
 * percent-escape in the query is broken.
 */
int sw_sigv4_sign(struct sw_sigv4 *out, const struct sw_aws_creds *cr,
		  const struct sw_sigv4_req *rq, const struct sw_sigv4_opts *o);
void sw_sigv4_release(struct sw_sigv4 *s);

/* The bytes `s` (`n` of them) percent-encoded as SigV4 encodes: all but
 * A-Z a-z 0-9 - . _ ~ (and '/' when `keep_slash`), upper-case hex. */
void sw_aws_uri_encode(struct sw_buf *out, const char *s, size_t n, int keep_slash);

/* --- credentials (creds.c) ---------------------------------------------------
 *
 * Where they come from, in this order (the SDKs' order, as issue 17 lists it):
 *  1. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 *     AWS_SESSION_TOKEN (not when a profile is asked for by name);
 *  2. a profile (opts.profile, else $AWS_PROFILE, else "default") in the
 *     shared files ($AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, then
 *     $AWS_CONFIG_FILE or ~/.aws/config): static keys, or role_arn with a
 *     source_profile (STS AssumeRole) or a web_identity_token_file; a
 *     profile named and not found is an error, not a fall-through;
 *  3. web identity (IRSA): AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, STS
 *     AssumeRoleWithWebIdentity;
 *  4. container credentials: EKS Pod Identity
 *     (AWS_CONTAINER_CREDENTIALS_FULL_URI with the token of
 *     AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE) or ECS (the RELATIVE_URI);
 *  5. EC2 instance metadata, IMDSv2 only (a token first), unless
 *     AWS_EC2_METADATA_DISABLED=true; AWS_EC2_METADATA_SERVICE_ENDPOINT
 *     moves it;
 * and then opts.role_arn, when given, assumed with what was found.
 * Endpoints as the SDKs read them: $AWS_ENDPOINT_URL_STS, $AWS_ENDPOINT_URL,
 * else https://sts.REGION.amazonaws.com. Requests are blocking (libcurl easy,
 * opts.timeout_ms each): call these from a worker thread or a process,
 * never from the loop. Secrets are wiped when released and never appear in
 * an error message.
 */

struct sw_aws_cred {
	char *access_key_id, *secret_access_key, *session_token;
	int64_t expires_ms;      /* wall clock; 0 = they do not expire */
	char source[192];        /* where they came from, safe to show */
};
void sw_aws_cred_release(struct sw_aws_cred *c);
/* The strings of `c` as the signer takes them (borrowed). */
void sw_aws_cred_view(const struct sw_aws_cred *c, struct sw_aws_creds *v);

struct sw_aws_chain_opts {
	const char *profile;       /* NULL: $AWS_PROFILE, else "default" */
	const char *region;        /* NULL: $AWS_REGION, $AWS_DEFAULT_REGION, the
				    * profile's, else us-east-1 */
	const char *role_arn;      /* assume it on top; NULL: no */
	const char *session_name;  /* NULL: "slipway" */
	long timeout_ms;           /* per request; 0: 5 s */
};
#define SW_AWS_CHAIN_OPTS_INIT { NULL, NULL, NULL, NULL, 0 }

/* Credentials from the chain above into `out` (release it). SW_ENOTFOUND
 * when no source has any, with each source's answer in the message; other
 * errors (an STS refusal, a broken profile) say which source and why. */
int sw_aws_chain_resolve(struct sw_aws_cred *out, const struct sw_aws_chain_opts *o);

/* Who `c` is: STS GetCallerIdentity's Arn and Account (blocking). */
int sw_aws_whoami(struct sw_buf *arn, struct sw_buf *account, const struct sw_aws_cred *c,
		  const char *region, long timeout_ms);

/* The region as the chain decides it (see opts.region); free it. */
char *sw_aws_region(const char *given, const char *profile);

/* The base URL of `service` ("sts", "eks", "pricing"...) in `region`,
 * without a trailing slash; free it. */
char *sw_aws_endpoint(const char *service, const char *region);

/*
 * A provider: the chain's answer kept and shared between threads, resolved
 * again five minutes before it expires (the old answer is used while it
 * lasts when that fails). get() copies into `out`: release it.
 */
struct sw_aws_provider;
void sw_aws_provider_new(struct sw_aws_provider **out, const struct sw_aws_chain_opts *o);
void sw_aws_provider_free(struct sw_aws_provider *p);   /* NULL is a no-op */
int sw_aws_provider_get(struct sw_aws_provider *p, struct sw_aws_cred *out);
/* Drop what is kept (after AWS refused it: ExpiredToken, a 401). */
void sw_aws_provider_forget(struct sw_aws_provider *p);

/* --- EKS (eks.c) ---------------------------------------------------------------
 *
 * The bearer token EKS takes from clients (what `aws eks get-token` prints,
 * what aws-iam-authenticator checks): "k8s-aws-v1." and, in base64url without
 * padding, an STS GetCallerIdentity URL presigned for 60 s with the
 * cluster's name signed as the x-k8s-aws-id header. EKS accepts it for 15
 * minutes; *expires_ms says when to make the next (14 minutes on). Pure:
 * no request is made.
 */
int sw_eks_token(char **out, int64_t *expires_ms, const struct sw_aws_cred *c,
		 const char *cluster, const char *region, int64_t now_ms);

struct sw_eks_cluster {
	char *endpoint;   /* "https://..." */
	char *ca_pem;     /* certificateAuthority.data, decoded */
	char *status;     /* "ACTIVE", "CREATING", ... */
};
void sw_eks_cluster_release(struct sw_eks_cluster *c);

/* eks:DescribeCluster of `name` (blocking; $AWS_ENDPOINT_URL_EKS moves it).
 * SW_ENOTFOUND for a cluster EKS does not know. */
int sw_eks_describe(struct sw_eks_cluster *out, const struct sw_aws_cred *c, const char *name,
		    const char *region, int64_t now_ms, long timeout_ms);

/* --- prices (pricing.c) ---------------------------------------------------------
 *
 * One on-demand price from the AWS Price List Query API (pricing:GetProducts,
 * blocking; $AWS_ENDPOINT_URL_PRICING moves it). The filters must name one
 * product, or several at one price: wider filters are SW_EINVALID, none
 * matching SW_ENOTFOUND.
 */
struct sw_aws_price_filter {
	const char *field;       /* "instanceType", "regionCode", "usagetype", ... */
	const char *value;
	const char *type;        /* NULL: "TERM_MATCH"; or "CONTAINS", "ANY_OF", ... */
};
struct sw_aws_price {
	double usd;              /* per unit */
	char unit[24];           /* "Hrs", "GB-Mo", ... */
	char date[16];           /* the term's effective date, "YYYY-MM-DD" */
	size_t products;         /* how many products said so */
};
int sw_aws_price_get(struct sw_aws_price *out, const struct sw_aws_cred *c, const char *service,
		     const struct sw_aws_price_filter *f, size_t nf, long timeout_ms);

/* --- Cost Explorer (ce.c) ----------------------------------------------------------
 *
 * What was spent, per day and service, by what carries one cost-allocation
 * tag: ce:GetCostAndUsage, daily, UnblendedCost, grouped by SERVICE, every
 * page (blocking; $AWS_ENDPOINT_URL_COST_EXPLORER moves it). Each call is
 * billed: ask once a day and keep the answer. Figures not in USD are an
 * error, never converted or guessed.
 */
struct sw_aws_cost_query {
	const char *start, *end;     /* "YYYY-MM-DD", end excluded */
	const char *tag_key;         /* NULL: the whole account */
	const char *tag_value;
};
struct sw_aws_cost_row {
	char day[11];
	char *service;               /* "Amazon Elastic Compute Cloud - Compute" */
	double usd;
	int estimated;               /* the day is not closed yet */
};
struct sw_aws_costs {
	struct sw_aws_cost_row *v;
	size_t n, alloc;
};
int sw_aws_cost_get(struct sw_aws_costs *out, const struct sw_aws_cred *c,
		    const struct sw_aws_cost_query *q, long timeout_ms);
void sw_aws_costs_release(struct sw_aws_costs *c);

/* --- what AWS sends (pure; unit-tested and fuzzed) ---------------------------- */

/* One page of a GetProducts answer, added to what `p` holds (zero it
 * first): the price every product states, or SW_EINVALID when they differ
 * or the answer is broken; its NextToken appended to `next` (may be NULL). */
int sw_aws_pricing_parse(struct sw_aws_price *p, struct sw_buf *next, const char *text,
			 size_t len);


/* One page of a GetCostAndUsage answer, its rows added to `c` (zero it
 * first); its NextPageToken appended to `next` (may be NULL). SW_EINVALID
 * for a broken answer or a figure that is not a number in USD. */
int sw_aws_ce_parse(struct sw_aws_costs *c, struct sw_buf *next, const char *text, size_t len);

/* The value of `key` in [section] of an INI text (the shared files' syntax:
 * '#' and ';' comments, also inline after white space; indented lines are
 * nested settings and skipped). SW_ENOTFOUND when absent. */
int sw_aws_ini_get(struct sw_buf *out, const char *text, size_t len, const char *section,
		   const char *key);

/* A DescribeCluster answer. */
int sw_eks_parse_cluster(struct sw_eks_cluster *out, const char *text, size_t len);

/* Container and instance credentials: {AccessKeyId, SecretAccessKey, Token,
 * Expiration[, Code: "Success"]}. */
int sw_aws_cred_parse_json(struct sw_aws_cred *out, const char *text, size_t len);

/* The Credentials of an STS `action` answer (AssumeRole,
 * AssumeRoleWithWebIdentity): ACTIONResponse/ACTIONResult/Credentials/... */
int sw_aws_cred_parse_sts(struct sw_aws_cred *out, const char *xml, size_t len,
			  const char *action);

/*
 * The text of the element at `path` ("A/B/C" from the root, local names:
 * prefixes are ignored) of an XML answer, references decoded, appended to
 * `out`. 0, SW_ENOTFOUND, or SW_EINVALID with the byte where the document
 * is broken.
 */
int sw_aws_xml_text(struct sw_buf *out, const char *xml, size_t len, const char *path);

#endif
