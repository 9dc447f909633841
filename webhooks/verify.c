/*
 * verify.c - the delivery's envelope: X-Hub-Signature-256 and the payload
 * inside a JSON or form-encoded body (see webhooks.h).
 */
#include "webhooks/webhooks.h"

#include "webhooks/json-int.h"

#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define SIG_HEADER "X-Hub-Signature-256"
#define SIG_PREFIX "sha256="
#define SHA256_LEN 32

int sw_webhook_verify(const char *secret, const void *body, size_t len,
		      const char *header_value)
{
	unsigned char want[SHA256_LEN], got[EVP_MAX_MD_SIZE];
	unsigned int got_len = 0;
	const char *hex;
	size_t hexlen;
	int bad = 0;

	if (!secret || !*secret)
		return sw_error_set("webhook secret is not configured");
	if (!header_value || !*header_value)
		return sw_error_setc(SW_EINVALID, "missing " SIG_HEADER " header");
	if (strncmp(header_value, SIG_PREFIX, strlen(SIG_PREFIX)) != 0)
		return sw_error_setc(SW_EINVALID, SIG_HEADER ": expected the prefix " SIG_PREFIX);
	hex = header_value + strlen(SIG_PREFIX);
	hexlen = strlen(hex);
	if (hexlen != 2 * SHA256_LEN)
		return sw_error_setc(SW_EINVALID,
				     SIG_HEADER ": expected %d hex digits, found %zu characters",
				     2 * SHA256_LEN, hexlen);
	for (size_t i = 0; i < SHA256_LEN; i++) {
		int hi = sw_webhook_hexval((unsigned char)hex[2 * i]);
		int lo = sw_webhook_hexval((unsigned char)hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			bad = 1;
		want[i] = (unsigned char)((hi & 0xf) << 4 | (lo & 0xf));
	}
	if (bad)
		return sw_error_setc(SW_EINVALID, SIG_HEADER ": not a hex digest");

	/* HMAC() with a NULL body pointer is fine for len 0 but be explicit. */
	if (!HMAC(EVP_sha256(), secret, (int)strlen(secret),
		  len ? body : (const void *)"", len, got, &got_len) ||
	    got_len != SHA256_LEN) {
		unsigned long e = ERR_get_error();
		char msg[256] = "unknown error";
		if (e)
			ERR_error_string_n(e, msg, sizeof(msg));
		return sw_error_set("HMAC-SHA256: %s", msg);
	}
	if (CRYPTO_memcmp(want, got, SHA256_LEN) != 0)
		return sw_error_setc(SW_EINVALID, SIG_HEADER ": signature does not match the body");
	return 0;
}

int sw_webhook_digest(unsigned char out[SW_WEBHOOK_DIGEST_LEN], const char *event,
		      const void *body, size_t len)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned int n = 0;
	int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
		 EVP_DigestUpdate(c, event, strlen(event) + 1) &&
		 EVP_DigestUpdate(c, len ? body : (const void *)"", len) &&
		 EVP_DigestFinal_ex(c, out, &n) && n == SW_WEBHOOK_DIGEST_LEN;
	EVP_MD_CTX_free(c);
	return ok ? 0 : sw_error_set("SHA-256 of the delivery failed");
}

/* Length of the media type in a Content-Type value, trailing blanks cut. */
static size_t media_type_len(const char *ct)
{
	size_t n = strcspn(ct, ";");
	while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
		n--;
	return n;
}

static int media_is(const char *ct, size_t n, const char *want)
{
	return n == strlen(want) && !strncasecmp(ct, want, n);
}

/*
 * Percent-decode s[0..n) with '+' as space, appending to out. Returns 0 or
 * SW_EINVALID naming the offset of a bad escape.
 */
static int form_decode(struct sw_buf *out, const char *s, size_t n, size_t base)
{
	sw_buf_grow(out, n);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '+') {
			sw_buf_addch(out, ' ');
		} else if (c == '%') {
			int hi = i + 2 < n ? sw_webhook_hexval((unsigned char)s[i + 1]) : -1;
			int lo = i + 2 < n ? sw_webhook_hexval((unsigned char)s[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return sw_error_setc(SW_EINVALID,
						     "payload field: bad percent escape at offset %zu",
						     base + i);
			sw_buf_addch(out, (char)(hi << 4 | lo));
			i += 2;
		} else {
			sw_buf_addch(out, c);
		}
	}
	return 0;
}

int sw_webhook_payload(struct sw_buf *out, const char *content_type,
		       const char *body, size_t len)
{
	size_t n;

	if (!content_type || !*content_type)
		return sw_error_setc(SW_EINVALID, "missing Content-Type header");
	while (*content_type == ' ' || *content_type == '\t')
		content_type++;
	n = media_type_len(content_type);
	if (media_is(content_type, n, "application/json")) {
		sw_buf_add(out, body, len);
		return 0;
	}
	if (!media_is(content_type, n, "application/x-www-form-urlencoded"))
		return sw_error_setc(SW_EINVALID, "unsupported content type %.*s",
				     (int)(n > 100 ? 100 : n), content_type);

	/* Walk name=value pairs separated by '&'; the first `payload` wins. */
	for (size_t i = 0; i < len;) {
		const char *pair = body + i;
		const char *end = memchr(pair, '&', len - i);
		size_t plen = end ? (size_t)(end - pair) : len - i;
		const char *eq = memchr(pair, '=', plen);
		size_t klen = eq ? (size_t)(eq - pair) : plen;
		if (klen == 7 && !memcmp(pair, "payload", 7)) {
			size_t voff = eq ? klen + 1 : plen;
			return form_decode(out, pair + voff, plen - voff, i + voff);
		}
		i += plen + 1;
	}
	return sw_error_setc(SW_EINVALID, "form body has no payload field");
}
