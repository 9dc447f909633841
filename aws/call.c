/*
 * call.c - how aws/ reaches AWS: the endpoints as the SDKs find them, one
 * blocking request (sw_http_fetch: a worker thread or a short-lived
 * process, never the loop), a request signed with SigV4, and AWS's error
 * answers (the Query protocol's XML, the JSON protocols' __type/message)
 * turned into one line that names AWS's code.
 */
#include <ctype.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws/aws-int.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/error.h"
#include "lib/http.h"

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

int aws_request(struct aws_answer *a, const char *method, const char *url,
		const char *const *headers, const char *body, long timeout_ms)
{
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	struct sw_http_reply r;
	/* the URL may hold a presigned query: messages name only its start */
	const char *q = strchr(url, '?');
	char *shown = q ? sw_strndup(url, (size_t)(q - url)) : NULL;
	int rc;

	memset(a, 0, sizeof(*a));
	o.method = method;
	o.url = url;
	o.display_url = shown;
	o.headers = headers;
	o.body = body;
	o.body_len = body ? strlen(body) : 0;
	o.timeout_ms = timeout_ms > 0 ? timeout_ms : 5000L;
	o.connect_timeout_ms = timeout_ms > 0 && timeout_ms < 2000 ? timeout_ms : 2000L;
	o.max_response = AWS_MAX_ANSWER;
	rc = sw_http_fetch(&o, &r);
	a->status = r.status;
	a->body = r.body;
	free(shown);
	return rc < 0 ? SW_ERR : 0;
}

void aws_answer_release(struct aws_answer *a)
{
	if (a->body.ptr)        /* STS answers carry credentials */
		OPENSSL_cleanse(a->body.ptr, a->body.len);
	sw_buf_release(&a->body);
}

int aws_split_url(const char *url, char **host, const char **path)
{
	const char *h = strstr(url, "://");
	h = h ? h + 3 : url;
	size_t n = strcspn(h, "/");
	*host = sw_strndup(h, n);
	*path = h[n] ? h + n : "/";
	return (int)(h + n - url);
}

char *sw_aws_endpoint(const char *service, const char *region)
{
	char name[64];
	size_t i;
	snprintf(name, sizeof(name), "AWS_ENDPOINT_URL_%s", service);
	for (i = strlen("AWS_ENDPOINT_URL_"); name[i]; i++)
		name[i] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
	const char *v = env(name);
	if (!v)
		v = env("AWS_ENDPOINT_URL");
	if (v) {
		size_t n = strlen(v);
		while (n && v[n - 1] == '/')
			n--;
		return sw_strndup(v, n);
	}
	/* the two that do not follow SERVICE.REGION (AWS's endpoint lists) */
	if (!strcmp(service, "pricing"))
		return sw_asprintf("https://api.pricing.%s.amazonaws.com", region);
	if (!strcmp(service, "cost-explorer"))
		return sw_asprintf("https://ce.%s.amazonaws.com", region);
	return sw_asprintf("https://%s.%s.amazonaws.com", service, region);
}

/* --- what AWS says when it refuses ------------------------------------------ */

/* "Code: message" of a Query-protocol XML error or a JSON-protocol one
 * ({"__type": "ns#Code", "message": ...}); "HTTP N" when neither. */
char *aws_error_text(const struct aws_answer *a)
{
	struct sw_buf code = SW_BUF_INIT, msg = SW_BUF_INIT;
	const char *xml = a->body.ptr;
	size_t len = a->body.len;
	char *s = NULL;

	if (len && sw_aws_xml_text(&code, xml, len, "ErrorResponse/Error/Code") == 0) {
		sw_aws_xml_text(&msg, xml, len, "ErrorResponse/Error/Message");
		s = sw_asprintf("%s: %.300s", code.ptr, msg.len ? msg.ptr : "(no message)");
	} else if (len) {
		json_t *j = json_loadb(xml, len, 0, NULL);
		const char *t = json_string_value(json_object_get(j, "__type"));
		const char *m = json_string_value(json_object_get(j, "message"));
		if (!m)
			m = json_string_value(json_object_get(j, "Message"));
		if (t && strchr(t, '#'))
			t = strchr(t, '#') + 1;
		if (t)
			s = sw_asprintf("%s: %.300s", t, m ? m : "(no message)");
		else if (m)
			s = sw_asprintf("HTTP %ld: %.300s", a->status, m);
		json_decref(j);
	}
	sw_buf_release(&code);
	sw_buf_release(&msg);
	return s ? s : sw_asprintf("HTTP %ld", a->status);
}

int aws_refused(const struct aws_answer *a)
{
	char *why = aws_error_text(a);
	int code = SW_ERR;
	if (a->status == 429 || strstr(why, "Throttl") || strstr(why, "TooManyRequests") ||
	    strstr(why, "LimitExceeded"))
		code = SW_EAGAIN;
	else if (a->status == 404 || strstr(why, "NotFound"))
		code = SW_ENOTFOUND;
	else if (a->status >= 400 && a->status < 500)
		code = SW_EINVALID;
	int rc = sw_error_setc(code, "%s", why);
	free(why);
	return rc;
}

/* --- a signed request --------------------------------------------------------- */

int aws_call(struct aws_answer *a, const struct aws_call *c, const struct sw_aws_cred *cred)
{
	char *base = sw_aws_endpoint(c->endpoint ? c->endpoint : c->service, c->region);
	char *host, *url = NULL;
	const char *bpath;
	struct sw_buf path = SW_BUF_INIT;
	const char *hdrs[4 + SW_SIGV4_MAX_ADD + 1];
	char *own[3 + SW_SIGV4_MAX_ADD] = { NULL };
	struct sw_sigv4_header sh[3];
	size_t nh = 0, ns = 0, no = 0;
	struct sw_sigv4 sig;
	int rc = 0;

	memset(a, 0, sizeof(*a));
	memset(&sig, 0, sizeof(sig));
	int origin = aws_split_url(base, &host, &bpath);
	sw_buf_adds(&path, strcmp(bpath, "/") ? bpath : "");
	sw_buf_adds(&path, c->path && *c->path ? c->path : "/");
	url = sw_asprintf("%.*s%s%s%s", origin, base, path.ptr, c->query ? "?" : "",
			  c->query ? c->query : "");
	sh[ns++] = (struct sw_sigv4_header){ "Host", host };
	if (c->content_type) {
		sh[ns++] = (struct sw_sigv4_header){ "Content-Type", c->content_type };
		hdrs[nh++] = own[no++] = sw_asprintf("Content-Type: %s", c->content_type);
	}
	if (c->target) {
		sh[ns++] = (struct sw_sigv4_header){ "X-Amz-Target", c->target };
		hdrs[nh++] = own[no++] = sw_asprintf("X-Amz-Target: %s", c->target);
	}
	hdrs[nh++] = c->accept ? c->accept : "Accept: application/json";
	if (cred) {
		struct sw_aws_creds v;
		struct sw_sigv4_req rq = { c->method, path.ptr, c->query, sh, ns, c->body,
					   c->body ? strlen(c->body) : 0 };
		struct sw_sigv4_opts o = SW_SIGV4_OPTS_INIT;
		o.region = c->region;
		o.service = c->service;
		o.now = (c->now_ms ? c->now_ms : sw_now_ms()) / 1000;
		sw_aws_cred_view(cred, &v);
		if ((rc = sw_sigv4_sign(&sig, &v, &rq, &o)) < 0)
			goto done;
		for (size_t i = 0; i < sig.nadd; i++)
			hdrs[nh++] = own[no++] = sw_asprintf("%s: %s", sig.add[i].name,
							     sig.add[i].value);
	}
	hdrs[nh] = NULL;
	if ((rc = aws_request(a, c->method, url, hdrs, c->body, c->timeout_ms)) == 0 &&
	    (a->status < 200 || a->status >= 300))
		rc = aws_refused(a);
done:
	for (size_t i = 0; i < no; i++) {
		OPENSSL_cleanse(own[i], strlen(own[i]));
		free(own[i]);
	}
	sw_sigv4_release(&sig);
	sw_buf_release(&path);
	free(url);
	free(host);
	free(base);
	return rc;
}
