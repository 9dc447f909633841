/*
 * sigv4.c - AWS Signature Version 4 (see aws.h for what is signed how).
 */
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/aws.h"
#include "lib/base64.h"
#include "lib/buf.h"
#include "lib/error.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

static void sha256_hex(char out[65], const void *p, size_t n)
{
	unsigned char md[32];
	unsigned int len = 0;
	EVP_Digest(p ? p : "", n, md, &len, EVP_sha256(), NULL);
	sw_hex(out, md, 32);
}

static void hmac(unsigned char out[32], const void *key, size_t klen, const char *msg, size_t n)
{
	unsigned int len = 32;
	HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, n, out, &len);
}

static int unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

void sw_aws_uri_encode(struct sw_buf *out, const char *s, size_t n, int keep_slash)
{
	static const char up[] = "0123456789ABCDEF";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (unreserved(c) || (keep_slash && c == '/')) {
			sw_buf_addch(out, (char)c);
		} else {
			char e[3] = { '%', up[c >> 4], up[c & 15] };
			sw_buf_add(out, e, 3);
		}
	}
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode s[0..n) (a '+' stays a '+': SigV4 is not form decoding). */
static int uri_decode(struct sw_buf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			sw_buf_addch(out, s[i]);
			continue;
		}
		int h = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
		int l = h >= 0 ? hexval((unsigned char)s[i + 2]) : -1;
		if (l < 0)
			return sw_error_setc(SW_EINVALID, "SigV4: a broken percent-escape in the query "
					     "at byte %zu", i);
		sw_buf_addch(out, (char)(h << 4 | l));
		i += 2;
	}
	return 0;
}

/* --- the canonical path ----------------------------------------------------- */

/* Dot segments and empty segments removed; a trailing slash kept. */
static void normalize(struct sw_buf *out, const char *path)
{
	size_t len = strlen(path), nseg = 0;
	size_t *starts = sw_calloc(len / 2 + 2, sizeof(size_t));
	const char *p = path;
	while (*p) {
		while (*p == '/')
			p++;
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 0)
			break;
		if (n == 1 && p[0] == '.') {
			/* nothing */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (nseg) {
				nseg--;
				sw_buf_truncate(out, starts[nseg]);
			}
		} else {
			starts[nseg++] = out->len;
			sw_buf_addch(out, '/');
			sw_buf_add(out, p, n);
		}
		p += n;
	}
	if (out->len == 0 || (len > 1 && path[len - 1] == '/'))
		sw_buf_addch(out, '/');
	free(starts);
}

/* --- the canonical query ------------------------------------------------------ */

struct param {
	char *name, *value;   /* encoded */
};

static int param_cmp(const void *a, const void *b)
{
	const struct param *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->value, y->value);
}

static void encoded(char **out, const char *s, size_t n)
{
	struct sw_buf b = SW_BUF_INIT;
	sw_aws_uri_encode(&b, s, n, 0);
	*out = sw_buf_detach(&b, NULL);
}

static void param_push(struct param **v, size_t *n, size_t *cap, const char *name,
		       size_t nl, const char *value, size_t vl)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 16;
		*v = sw_realloc(*v, *cap * sizeof(**v));
	}
	encoded(&(*v)[*n].name, name, nl);
	encoded(&(*v)[*n].value, value, vl);
	(*n)++;
}

/* Add one "name=value" of a query as given (decoded, then encoded). */
static int param_parse(struct param **v, size_t *n, size_t *cap, const char *s, size_t len)
{
	struct sw_buf name = SW_BUF_INIT, value = SW_BUF_INIT;
	const char *eq = memchr(s, '=', len);
	size_t nl = eq ? (size_t)(eq - s) : len;
	int rc = uri_decode(&name, s, nl);
	if (rc == 0 && eq)
		rc = uri_decode(&value, eq + 1, len - nl - 1);
	if (rc == 0)
		param_push(v, n, cap, name.ptr, name.len, value.ptr, value.len);
	sw_buf_release(&name);
	sw_buf_release(&value);
	return rc;
}

/* --- the canonical headers ---------------------------------------------------- */

struct header {
	char *name;           /* lowercased */
	struct sw_buf value;  /* canonical; repeated names joined with ',' */
	size_t order;
};

static int header_cmp(const void *a, const void *b)
{
	const struct header *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : (x->order > y->order) - (x->order < y->order);
}

/* The value trimmed, each run of whitespace (folded lines too) one space. */
static void canon_value(struct sw_buf *out, const char *v)
{
	int space = 0;
	while (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')
		v++;
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n') {
			space = 1;
			continue;
		}
		if (space)
			sw_buf_addch(out, ' ');
		space = 0;
		sw_buf_addch(out, *v);
	}
}

static int header_name_ok(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if (*s == ':' || (unsigned char)*s <= ' ' || *s == 127)
			return 0;
	return 1;
}

static void header_add(struct header *h, size_t *n, const char *name, const char *value)
{
	struct header *x = &h[(*n)++];
	x->name = sw_strdup(name);
	for (char *p = x->name; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	sw_buf_init(&x->value);
	canon_value(&x->value, value);
	x->order = *n;
}

/* --- signing ---------------------------------------------------------------- */

static void add_out(struct sw_sigv4 *s, const char *name, const char *value)
{
	s->add[s->nadd].name = sw_strdup(name);
	s->add[s->nadd].value = sw_strdup(value);
	s->nadd++;
}

static void query_param(struct sw_buf *q, const char *name, const char *value)
{
	if (q->len)
		sw_buf_addch(q, '&');
	sw_buf_adds(q, name);
	sw_buf_addch(q, '=');
	sw_aws_uri_encode(q, value, strlen(value), 0);
}

int sw_sigv4_sign(struct sw_sigv4 *out, const struct sw_aws_creds *cr,
		  const struct sw_sigv4_req *rq, const struct sw_sigv4_opts *o)
{
	char amzdate[17], date[9], payload[65], hash[65], expires[24];
	struct sw_buf scope = SW_BUF_INIT, signed_h = SW_BUF_INIT, cred = SW_BUF_INIT;
	struct header *h = NULL;
	struct param *pv = NULL;
	size_t nh = 0, np = 0, pcap = 0;
	int presign = o->expires_s > 0, rc = 0;
	const char *token = cr && cr->session_token && *cr->session_token ? cr->session_token : NULL;
	struct tm tm;
	time_t t = (time_t)o->now;

	memset(out, 0, sizeof(*out));
	sw_buf_init(&out->canonical);
	sw_buf_init(&out->string_to_sign);
	if (!cr || !cr->access_key_id || !*cr->access_key_id || !cr->secret_access_key ||
	    !*cr->secret_access_key)
		return sw_error_setc(SW_EINVALID, "SigV4: no access key id or secret access key");
	if (!rq->method || !*rq->method || !rq->path || rq->path[0] != '/')
		return sw_error_setc(SW_EINVALID, "SigV4: a request needs a method and a path "
				     "starting with '/'");
	if (!o->region || !*o->region || !o->service || !*o->service)
		return sw_error_setc(SW_EINVALID, "SigV4: no region or service");
	for (size_t i = 0; i < rq->nheaders; i++)
		if (!header_name_ok(rq->headers[i].name) || !rq->headers[i].value)
			return sw_error_setc(SW_EINVALID, "SigV4: header %zu has no valid name or "
					     "no value", i);
	if (!gmtime_r(&t, &tm))
		return sw_error_setc(SW_EINVALID, "SigV4: the time %lld is out of range",
				     (long long)o->now);
	strftime(amzdate, sizeof(amzdate), "%Y%m%dT%H%M%SZ", &tm);
	strftime(date, sizeof(date), "%Y%m%d", &tm);
	sw_buf_addf(&scope, "%s/%s/%s/aws4_request", date, o->region, o->service);
	sw_buf_addf(&cred, "%s/%s", cr->access_key_id, scope.ptr);

	if (o->payload_hash)
		snprintf(payload, sizeof(payload), "%s", o->payload_hash);
	else
		sha256_hex(payload, rq->body, rq->body_len);

	/* the headers signed */
	h = sw_calloc(rq->nheaders + 3, sizeof(*h));
	for (size_t i = 0; i < rq->nheaders; i++)
		header_add(h, &nh, rq->headers[i].name, rq->headers[i].value);
	if (!presign) {
		header_add(h, &nh, "x-amz-date", amzdate);
		if (o->content_sha256)
			header_add(h, &nh, "x-amz-content-sha256", payload);
		if (token && !o->token_after)
			header_add(h, &nh, "x-amz-security-token", token);
	}
	qsort(h, nh, sizeof(*h), header_cmp);
	size_t w = 0;   /* repeated names: one line, values in order */
	for (size_t i = 0; i < nh; i++) {
		if (w && !strcmp(h[w - 1].name, h[i].name)) {
			sw_buf_addch(&h[w - 1].value, ',');
			sw_buf_add(&h[w - 1].value, h[i].value.ptr, h[i].value.len);
			free(h[i].name);
			sw_buf_release(&h[i].value);
			continue;
		}
		h[w++] = h[i];
	}
	nh = w;
	for (size_t i = 0; i < nh; i++) {
		if (i)
			sw_buf_addch(&signed_h, ';');
		sw_buf_adds(&signed_h, h[i].name);
	}

	/* the query */
	const char *q = rq->query ? rq->query : "";
	while (*q && rc == 0) {
		const char *amp = strchr(q, '&');
		size_t n = amp ? (size_t)(amp - q) : strlen(q);
		if (n)
			rc = param_parse(&pv, &np, &pcap, q, n);
		q += n + (amp ? 1 : 0);
	}
	if (rc < 0)
		goto done;
	snprintf(expires, sizeof(expires), "%lld", (long long)o->expires_s);
	if (presign) {
		const char *x[][2] = {
			{ "X-Amz-Algorithm", ALGORITHM }, { "X-Amz-Credential", cred.ptr },
			{ "X-Amz-Date", amzdate }, { "X-Amz-Expires", expires },
			{ "X-Amz-SignedHeaders", signed_h.ptr },
			{ "X-Amz-Security-Token", token && !o->token_after ? token : NULL },
		};
		for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++)
			if (x[i][1])
				param_push(&pv, &np, &pcap, x[i][0], strlen(x[i][0]), x[i][1],
					   strlen(x[i][1]));
	}
	if (np > 1)
		qsort(pv, np, sizeof(*pv), param_cmp);

	/* the canonical request */
	struct sw_buf *c = &out->canonical;
	sw_buf_adds(c, rq->method);
	sw_buf_addch(c, '\n');
	if (o->normalize_path) {
		struct sw_buf np_ = SW_BUF_INIT;
		normalize(&np_, rq->path);
		sw_aws_uri_encode(c, np_.ptr, np_.len, 1);
		sw_buf_release(&np_);
	} else {
		sw_aws_uri_encode(c, rq->path, strlen(rq->path), 1);
	}
	sw_buf_addch(c, '\n');
	for (size_t i = 0; i < np; i++)
		sw_buf_addf(c, "%s%s=%s", i ? "&" : "", pv[i].name, pv[i].value);
	sw_buf_addch(c, '\n');
	for (size_t i = 0; i < nh; i++)
		sw_buf_addf(c, "%s:%s\n", h[i].name, h[i].value.ptr);
	sw_buf_addf(c, "\n%s\n%s", signed_h.ptr, payload);

	/* the string to sign, the key, the signature */
	sha256_hex(hash, c->ptr, c->len);
	sw_buf_addf(&out->string_to_sign, ALGORITHM "\n%s\n%s\n%s", amzdate, scope.ptr, hash);
	{
		unsigned char k[32];
		struct sw_buf secret = SW_BUF_INIT;
		sw_buf_addf(&secret, "AWS4%s", cr->secret_access_key);
		hmac(k, secret.ptr, secret.len, date, strlen(date));
		OPENSSL_cleanse(secret.ptr, secret.len);
		sw_buf_release(&secret);
		hmac(k, k, 32, o->region, strlen(o->region));
		hmac(k, k, 32, o->service, strlen(o->service));
		hmac(k, k, 32, "aws4_request", 12);
		hmac(k, k, 32, out->string_to_sign.ptr, out->string_to_sign.len);
		sw_hex(out->signature, k, 32);
		OPENSSL_cleanse(k, sizeof(k));
	}

	if (presign) {
		struct sw_buf qs = SW_BUF_INIT;
		if (rq->query && *rq->query)
			sw_buf_adds(&qs, rq->query);
		query_param(&qs, "X-Amz-Algorithm", ALGORITHM);
		query_param(&qs, "X-Amz-Credential", cred.ptr);
		query_param(&qs, "X-Amz-Date", amzdate);
		query_param(&qs, "X-Amz-SignedHeaders", signed_h.ptr);
		query_param(&qs, "X-Amz-Expires", expires);
		if (token)
			query_param(&qs, "X-Amz-Security-Token", token);
		query_param(&qs, "X-Amz-Signature", out->signature);
		out->query = sw_buf_detach(&qs, NULL);
	} else {
		struct sw_buf a = SW_BUF_INIT;
		if (token)
			add_out(out, "X-Amz-Security-Token", token);
		add_out(out, "X-Amz-Date", amzdate);
		if (o->content_sha256)
			add_out(out, "x-amz-content-sha256", payload);
		sw_buf_addf(&a, ALGORITHM " Credential=%s, SignedHeaders=%s, Signature=%s", cred.ptr,
			    signed_h.ptr, out->signature);
		add_out(out, "Authorization", a.ptr);
		sw_buf_release(&a);
	}

done:
	for (size_t i = 0; i < nh; i++) {
		free(h[i].name);
		sw_buf_release(&h[i].value);
	}
	free(h);
	for (size_t i = 0; i < np; i++) {
		free(pv[i].name);
		free(pv[i].value);
	}
	free(pv);
	sw_buf_release(&scope);
	sw_buf_release(&signed_h);
	sw_buf_release(&cred);
	return rc;
}

void sw_sigv4_release(struct sw_sigv4 *s)
{
	if (!s)
		return;
	sw_buf_release(&s->canonical);
	sw_buf_release(&s->string_to_sign);
	for (size_t i = 0; i < s->nadd; i++) {
		free(s->add[i].name);
		free(s->add[i].value);
	}
	s->nadd = 0;
	free(s->query);
	s->query = NULL;
}
