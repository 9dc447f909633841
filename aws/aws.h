/*
 * aws.h - the AWS room: talking to AWS as its SDKs do, in C. Today it holds
 * Signature Version 4 (sigv4.c); credentials, STS, EKS tokens and cost
 * build on it (issue 17). May call: lib/ (and OpenSSL).
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

#endif
