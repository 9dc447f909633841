/*
 * creds.c - AWS credentials found the way the SDKs find them (see aws.h for
 * the order), through the blocking requests of call.c (this
 * runs on a worker thread or in a short-lived process, never on the loop).
 */
#include <ctype.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "aws/aws-int.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/error.h"
#include "lib/http.h"

#define STS_VERSION "2011-06-15"
#define IMDS_DEFAULT "http://169.254.169.254"
#define ECS_HOST "http://169.254.170.2"
#define REFRESH_BEFORE_MS (5 * 60 * 1000)
#define MAX_SOURCE_DEPTH 4

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

void sw_aws_cred_release(struct sw_aws_cred *c)
{
	if (!c)
		return;
	if (c->secret_access_key)
		OPENSSL_cleanse(c->secret_access_key, strlen(c->secret_access_key));
	if (c->session_token)
		OPENSSL_cleanse(c->session_token, strlen(c->session_token));
	free(c->access_key_id);
	free(c->secret_access_key);
	free(c->session_token);
	memset(c, 0, sizeof(*c));
}

void sw_aws_cred_view(const struct sw_aws_cred *c, struct sw_aws_creds *v)
{
	v->access_key_id = c->access_key_id;
	v->secret_access_key = c->secret_access_key;
	v->session_token = c->session_token;
}

static void cred_set(struct sw_aws_cred *c, const char *id, const char *secret,
		     const char *token, int64_t expires_ms)
{
	c->access_key_id = sw_strdup(id);
	c->secret_access_key = sw_strdup(secret);
	c->session_token = token && *token ? sw_strdup(token) : NULL;
	c->expires_ms = expires_ms;
}

/* --- what AWS answers ---------------------------------------------------- */

int sw_aws_cred_parse_json(struct sw_aws_cred *out, const char *text, size_t len)
{
	json_error_t je;
	json_t *j = json_loadb(text, len, 0, &je);
	int64_t exp_ms = 0;
	memset(out, 0, sizeof(*out));
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return sw_error_setc(SW_EINVALID, "credentials: not a JSON object");
	}
	const char *code = json_string_value(json_object_get(j, "Code"));
	const char *id = json_string_value(json_object_get(j, "AccessKeyId"));
	const char *secret = json_string_value(json_object_get(j, "SecretAccessKey"));
	const char *token = json_string_value(json_object_get(j, "Token"));
	const char *exp = json_string_value(json_object_get(j, "Expiration"));
	int rc = 0;
	if (code && strcmp(code, "Success"))
		rc = sw_error_setc(SW_EINVALID, "credentials: the answer's Code is %.64s", code);
	else if (!id || !*id || !secret || !*secret)
		rc = sw_error_setc(SW_EINVALID, "credentials: no AccessKeyId or SecretAccessKey");
	else if (exp && sw_parse_rfc3339(exp, &exp_ms) < 0)
		rc = sw_error_setc(SW_EINVALID, "credentials: Expiration is not a time");
	else
		cred_set(out, id, secret, token, exp_ms);
	json_decref(j);
	return rc;
}

/* "Code: Message" of an AWS XML error, or the status when there is none. */
int sw_aws_cred_parse_sts(struct sw_aws_cred *out, const char *xml, size_t len,
			  const char *action)
{
	struct sw_buf v[4] = { SW_BUF_INIT, SW_BUF_INIT, SW_BUF_INIT, SW_BUF_INIT };
	static const char *const field[] = { "AccessKeyId", "SecretAccessKey", "SessionToken",
					     "Expiration" };
	int64_t exp_ms = 0;
	int rc = 0;
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < 4 && rc == 0; i++) {
		char path[160];
		snprintf(path, sizeof(path), "%sResponse/%sResult/Credentials/%s", action, action,
			 field[i]);
		rc = sw_aws_xml_text(&v[i], xml, len, path);
	}
	if (rc == 0 && (!v[0].len || !v[1].len))
		rc = sw_error_setc(SW_EINVALID, "STS %s: empty credentials", action);
	else if (rc == 0 && sw_parse_rfc3339(v[3].ptr, &exp_ms) < 0)
		rc = sw_error_setc(SW_EINVALID, "STS %s: Expiration is not a time", action);
	else if (rc < 0)
		sw_error_prefix("STS %s", action);
	if (rc == 0)
		cred_set(out, v[0].ptr, v[1].ptr, v[2].ptr, exp_ms);
	for (size_t i = 0; i < 4; i++) {
		OPENSSL_cleanse(v[i].ptr, v[i].len);
		sw_buf_release(&v[i]);
	}
	return rc;
}

/* --- the shared files ------------------------------------------------------- */

int sw_aws_ini_get(struct sw_buf *out, const char *text, size_t len, const char *section,
		   const char *key)
{
	const char *p = text, *end = text + len;
	int in = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end, *b = p;
		p = nl ? nl + 1 : end;
		if (b < e && (*b == ' ' || *b == '\t'))
			continue;   /* a nested setting (s3 = ...): not ours */
		while (e > b && isspace((unsigned char)e[-1]))
			e--;
		if (b == e || *b == '#' || *b == ';')
			continue;
		if (*b == '[') {
			const char *c = memchr(b, ']', (size_t)(e - b));
			if (!c)
				continue;   /* as the SDKs: a broken header is skipped */
			const char *s = b + 1, *se = c;
			while (s < se && isspace((unsigned char)*s))
				s++;
			while (se > s && isspace((unsigned char)se[-1]))
				se--;
			in = strlen(section) == (size_t)(se - s) && !memcmp(s, section, (size_t)(se - s));
			continue;
		}
		if (!in)
			continue;
		const char *eq = memchr(b, '=', (size_t)(e - b));
		if (!eq)
			continue;
		const char *ke = eq;
		while (ke > b && isspace((unsigned char)ke[-1]))
			ke--;
		if (strlen(key) != (size_t)(ke - b) || strncasecmp(b, key, (size_t)(ke - b)))
			continue;
		const char *v = eq + 1;
		while (v < e && isspace((unsigned char)*v))
			v++;
		/* an inline comment starts after white space */
		for (const char *c = v; c < e; c++)
			if ((*c == '#' || *c == ';') && c > v && isspace((unsigned char)c[-1])) {
				e = c;
				while (e > v && isspace((unsigned char)e[-1]))
					e--;
				break;
			}
		sw_buf_reset(out);
		sw_buf_add(out, v, (size_t)(e - v));
		return 0;
	}
	return SW_ENOTFOUND;
}

struct files {
	struct sw_buf creds, config;
	char *creds_path, *config_path;
	int have_creds, have_config;
};

static char *home_path(const char *var, const char *rel)
{
	const char *v = env(var), *home = env("HOME");
	if (v)
		return sw_strdup(v);
	return sw_asprintf("%s/%s", home ? home : "", rel);
}

static void files_load(struct files *f)
{
	sw_buf_init(&f->creds);
	sw_buf_init(&f->config);
	f->creds_path = home_path("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
	f->config_path = home_path("AWS_CONFIG_FILE", ".aws/config");
	f->have_creds = sw_buf_read_file(&f->creds, f->creds_path) == 0;
	f->have_config = sw_buf_read_file(&f->config, f->config_path) == 0;
	sw_error_clear();
}

static void files_release(struct files *f)
{
	OPENSSL_cleanse(f->creds.ptr, f->creds.len);
	sw_buf_release(&f->creds);
	sw_buf_release(&f->config);
	free(f->creds_path);
	free(f->config_path);
}

/* A profile's key: the credentials file's [NAME] first, then the config
 * file's [profile NAME] ([default] for the default). */
static int profile_get(struct sw_buf *out, const struct files *f, const char *profile,
		       const char *key)
{
	char sec[160];
	if (f->have_creds && sw_aws_ini_get(out, f->creds.ptr, f->creds.len, profile, key) == 0)
		return 0;
	snprintf(sec, sizeof(sec), strcmp(profile, "default") ? "profile %s" : "%s", profile);
	if (f->have_config && sw_aws_ini_get(out, f->config.ptr, f->config.len, sec, key) == 0)
		return 0;
	return SW_ENOTFOUND;
}

static int profile_exists(const struct files *f, const char *profile)
{
	struct sw_buf b = SW_BUF_INIT;
	static const char *const keys[] = { "aws_access_key_id", "role_arn", "region",
					    "web_identity_token_file", "credential_process" };
	int found = 0;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]) && !found; i++)
		found = profile_get(&b, f, profile, keys[i]) == 0;
	sw_buf_release(&b);
	return found;
}

/* --- STS ------------------------------------------------------------------- */

static void form_add(struct sw_buf *b, const char *k, const char *v)
{
	if (b->len)
		sw_buf_addch(b, '&');
	sw_buf_adds(b, k);
	sw_buf_addch(b, '=');
	sw_aws_uri_encode(b, v, strlen(v), 0);
}

/* POST an STS action; signed with `base` unless it is NULL. The answer's
 * XML when it is a 200, else an error naming AWS's code and message. */
static int sts_post(struct sw_buf *xml, const char *action, const char *form,
		    const struct sw_aws_cred *base, const char *region, long timeout_ms)
{
	struct aws_call c = { .service = "sts", .region = region, .method = "POST",
			      .content_type = "application/x-www-form-urlencoded; charset=utf-8",
			      .accept = "Accept: text/xml", .body = form,
			      .timeout_ms = timeout_ms };
	struct aws_answer a;
	int rc = aws_call(&a, &c, base);
	if (rc < 0)
		sw_error_prefix("STS %s", action);
	else
		sw_buf_add(xml, a.body.ptr, a.body.len);
	aws_answer_release(&a);
	return rc;
}

static int sts_call(struct sw_aws_cred *out, const char *action, const char *form,
		    const struct sw_aws_cred *base, const char *region, long timeout_ms)
{
	struct sw_buf xml = SW_BUF_INIT;
	int rc = sts_post(&xml, action, form, base, region, timeout_ms);
	if (rc == 0)
		rc = sw_aws_cred_parse_sts(out, xml.ptr, xml.len, action);
	OPENSSL_cleanse(xml.ptr, xml.len);
	sw_buf_release(&xml);
	return rc;
}

int sw_aws_whoami(struct sw_buf *arn, struct sw_buf *account, const struct sw_aws_cred *c,
		  const char *region, long timeout_ms)
{
	struct sw_buf xml = SW_BUF_INIT;
	int rc = sts_post(&xml, "GetCallerIdentity",
			  "Action=GetCallerIdentity&Version=" STS_VERSION, c, region, timeout_ms);
	if (rc == 0)
		rc = sw_aws_xml_text(arn, xml.ptr, xml.len,
				     "GetCallerIdentityResponse/GetCallerIdentityResult/Arn");
	if (rc == 0)
		rc = sw_aws_xml_text(account, xml.ptr, xml.len,
				     "GetCallerIdentityResponse/GetCallerIdentityResult/Account");
	if (rc < 0 && rc != SW_ERR && xml.len)
		sw_error_prefix("STS GetCallerIdentity");
	sw_buf_release(&xml);
	return rc;
}

static int web_identity(struct sw_aws_cred *out, const char *role, const char *token_file,
			const char *session, const char *region, long timeout_ms)
{
	struct sw_buf tok = SW_BUF_INIT, form = SW_BUF_INIT;
	int rc;
	if ((rc = sw_buf_read_file(&tok, token_file)) < 0) {
		sw_error_prefix("web identity token");
		goto done;
	}
	while (tok.len && isspace((unsigned char)tok.ptr[tok.len - 1]))
		sw_buf_truncate(&tok, tok.len - 1);
	form_add(&form, "Action", "AssumeRoleWithWebIdentity");
	form_add(&form, "Version", STS_VERSION);
	form_add(&form, "RoleArn", role);
	form_add(&form, "RoleSessionName", session);
	form_add(&form, "WebIdentityToken", tok.ptr);
	if ((rc = sts_call(out, "AssumeRoleWithWebIdentity", form.ptr, NULL, region,
			   timeout_ms)) == 0)
		snprintf(out->source, sizeof(out->source), "web identity (%s)", role);
done:
	OPENSSL_cleanse(tok.ptr, tok.len);
	OPENSSL_cleanse(form.ptr, form.len);
	sw_buf_release(&tok);
	sw_buf_release(&form);
	return rc;
}

static int assume_role(struct sw_aws_cred *out, const struct sw_aws_cred *base,
		       const char *role, const char *session, const char *region, long timeout_ms)
{
	struct sw_buf form = SW_BUF_INIT;
	int rc;
	form_add(&form, "Action", "AssumeRole");
	form_add(&form, "Version", STS_VERSION);
	form_add(&form, "RoleArn", role);
	form_add(&form, "RoleSessionName", session);
	if ((rc = sts_call(out, "AssumeRole", form.ptr, base, region, timeout_ms)) == 0)
		snprintf(out->source, sizeof(out->source), "role %s assumed with %s", role,
			 base->source);
	sw_buf_release(&form);
	return rc;
}

/* --- containers and instances ---------------------------------------------- */

static int container(struct sw_aws_cred *out, long timeout_ms)
{
	const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *tfile = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *tok = env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	struct sw_buf t = SW_BUF_INIT;
	char *url = full ? sw_strdup(full) : sw_asprintf("%s%s", ECS_HOST, rel);
	char *auth = NULL;
	const char *hdrs[3] = { "Accept: application/json", NULL, NULL };
	struct aws_answer a;
	int rc = 0;

	if (tfile) {
		if ((rc = sw_buf_read_file(&t, tfile)) < 0) {
			sw_error_prefix("container credentials token");
			goto done;
		}
		while (t.len && isspace((unsigned char)t.ptr[t.len - 1]))
			sw_buf_truncate(&t, t.len - 1);
		tok = t.ptr;
	}
	if (tok && *tok) {
		auth = sw_asprintf("Authorization: %s", tok);
		hdrs[1] = auth;
	}
	if ((rc = aws_request(&a, "GET", url, hdrs, NULL, timeout_ms)) < 0) {
		sw_error_prefix("container credentials");
		goto done;
	}
	if (a.status != 200)
		rc = sw_error_setc(SW_ERR, "container credentials: %s answered HTTP %ld", url,
				   a.status);
	else if ((rc = sw_aws_cred_parse_json(out, a.body.ptr, a.body.len)) < 0)
		sw_error_prefix("container credentials from %s", url);
	else
		snprintf(out->source, sizeof(out->source), "container credentials (%s)",
			 full ? "pod identity" : "ECS");
	aws_answer_release(&a);
done:
	if (auth)
		OPENSSL_cleanse(auth, strlen(auth));
	free(auth);
	OPENSSL_cleanse(t.ptr, t.len);
	sw_buf_release(&t);
	free(url);
	return rc;
}

static int imds(struct sw_aws_cred *out, long timeout_ms)
{
	const char *ep = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	char *base = sw_strndup(ep ? ep : IMDS_DEFAULT, strlen(ep ? ep : IMDS_DEFAULT) -
				(ep && ep[strlen(ep) - 1] == '/' ? 1 : 0));
	char *url = sw_asprintf("%s/latest/api/token", base), *th = NULL;
	const char *ttl[] = { "X-aws-ec2-metadata-token-ttl-seconds: 21600", NULL };
	const char *hdrs[2] = { NULL, NULL };
	struct aws_answer a;
	int rc;

	/* IMDSv2 only: a token first (a PUT, which a proxy cannot forward) */
	if ((rc = aws_request(&a, "PUT", url, ttl, "", timeout_ms)) < 0 || a.status != 200) {
		if (rc == 0)
			rc = sw_error_setc(SW_ERR, "instance metadata: the token request answered "
					   "HTTP %ld", a.status);
		else
			sw_error_prefix("instance metadata");
		goto done;
	}
	th = sw_asprintf("X-aws-ec2-metadata-token: %s", a.body.ptr);
	hdrs[0] = th;
	aws_answer_release(&a);
	free(url);
	url = sw_asprintf("%s/latest/meta-data/iam/security-credentials/", base);
	if ((rc = aws_request(&a, "GET", url, hdrs, NULL, timeout_ms)) < 0 || a.status != 200) {
		if (rc == 0)
			rc = sw_error_setc(SW_ENOTFOUND, "instance metadata: no instance role "
					   "(HTTP %ld)", a.status);
		goto done;
	}
	size_t rl = strcspn(a.body.ptr, "\r\n");
	char *role = sw_strndup(a.body.ptr, rl);
	aws_answer_release(&a);
	free(url);
	url = sw_asprintf("%s/latest/meta-data/iam/security-credentials/%s", base, role);
	if ((rc = aws_request(&a, "GET", url, hdrs, NULL, timeout_ms)) == 0) {
		if (a.status != 200)
			rc = sw_error_setc(SW_ERR, "instance metadata: role %s answered HTTP %ld",
					   role, a.status);
		else if ((rc = sw_aws_cred_parse_json(out, a.body.ptr, a.body.len)) < 0)
			sw_error_prefix("instance metadata, role %s", role);
		else
			snprintf(out->source, sizeof(out->source), "instance role %s", role);
	}
	free(role);
done:
	aws_answer_release(&a);
	if (th)
		OPENSSL_cleanse(th, strlen(th));
	free(th);
	free(url);
	free(base);
	return rc;
}

/* --- the chain ------------------------------------------------------------- */

static int from_profile(struct sw_aws_cred *out, const struct files *f, const char *profile,
			const char *region, const char *session, long timeout_ms, int depth)
{
	struct sw_buf id = SW_BUF_INIT, secret = SW_BUF_INIT, token = SW_BUF_INIT;
	struct sw_buf role = SW_BUF_INIT, src = SW_BUF_INIT, wif = SW_BUF_INIT;
	int rc = SW_ENOTFOUND;

	if (depth > MAX_SOURCE_DEPTH)
		return sw_error_setc(SW_EINVALID, "profile %s: source_profile goes round "
				     "(more than %d deep)", profile, MAX_SOURCE_DEPTH);
	if (profile_get(&role, f, profile, "role_arn") == 0) {
		if (profile_get(&wif, f, profile, "web_identity_token_file") == 0) {
			rc = web_identity(out, role.ptr, wif.ptr, session, region, timeout_ms);
		} else if (profile_get(&src, f, profile, "source_profile") == 0) {
			struct sw_aws_cred base = { 0 };
			if ((rc = from_profile(&base, f, src.ptr, region, session, timeout_ms,
					       depth + 1)) == 0)
				rc = assume_role(out, &base, role.ptr, session, region, timeout_ms);
			else if (rc == SW_ENOTFOUND)
				rc = sw_error_setc(SW_EINVALID, "profile %s: its source_profile %s "
						   "has no credentials", profile, src.ptr);
			sw_aws_cred_release(&base);
		} else {
			rc = sw_error_setc(SW_EINVALID, "profile %s: role_arn without "
					   "source_profile or web_identity_token_file "
					   "(credential_source is not supported)", profile);
		}
	} else if (profile_get(&id, f, profile, "aws_access_key_id") == 0) {
		if (profile_get(&secret, f, profile, "aws_secret_access_key") < 0) {
			rc = sw_error_setc(SW_EINVALID, "profile %s: aws_access_key_id without "
					   "aws_secret_access_key", profile);
		} else {
			profile_get(&token, f, profile, "aws_session_token");
			cred_set(out, id.ptr, secret.ptr, token.ptr, 0);
			snprintf(out->source, sizeof(out->source), "profile %s", profile);
			rc = 0;
		}
	} else if (profile_get(&src, f, profile, "credential_process") == 0) {
		rc = sw_error_setc(SW_EINVALID, "profile %s: credential_process is not supported",
				   profile);
	}
	OPENSSL_cleanse(secret.ptr, secret.len);
	OPENSSL_cleanse(token.ptr, token.len);
	sw_buf_release(&id);
	sw_buf_release(&secret);
	sw_buf_release(&token);
	sw_buf_release(&role);
	sw_buf_release(&src);
	sw_buf_release(&wif);
	return rc;
}

char *sw_aws_region(const char *given, const char *profile)
{
	struct files f;
	struct sw_buf r = SW_BUF_INIT;
	const char *v = given && *given ? given : env("AWS_REGION");
	if (!v)
		v = env("AWS_DEFAULT_REGION");
	if (v)
		return sw_strdup(v);
	if (!profile)
		profile = env("AWS_PROFILE") ? env("AWS_PROFILE") : "default";
	files_load(&f);
	char *out = profile_get(&r, &f, profile, "region") == 0 && r.len ? sw_strdup(r.ptr)
									 : sw_strdup("us-east-1");
	sw_buf_release(&r);
	files_release(&f);
	return out;
}

int sw_aws_chain_resolve(struct sw_aws_cred *out, const struct sw_aws_chain_opts *o)
{
	const char *profile = o->profile ? o->profile : env("AWS_PROFILE");
	const char *session = o->session_name ? o->session_name : "slipway";
	char *region = sw_aws_region(o->region, profile);
	struct sw_aws_cred base = { 0 };
	struct files f;
	int rc = SW_ENOTFOUND;

	memset(out, 0, sizeof(*out));
	files_load(&f);
	if (env("AWS_ACCESS_KEY_ID") && env("AWS_SECRET_ACCESS_KEY") && !o->profile) {
		cred_set(&base, env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"),
			 env("AWS_SESSION_TOKEN"), 0);
		snprintf(base.source, sizeof(base.source), "environment");
		rc = 0;
	}
	if (rc == SW_ENOTFOUND) {
		const char *p = profile ? profile : "default";
		if (profile && !profile_exists(&f, p))
			rc = sw_error_setc(SW_ENOTFOUND, "profile %s is in neither %s nor %s", p,
					   f.creds_path, f.config_path);
		else
			rc = from_profile(&base, &f, p, region, session, o->timeout_ms, 0);
	}
	if (rc == SW_ENOTFOUND && !profile && env("AWS_ROLE_ARN") &&
	    env("AWS_WEB_IDENTITY_TOKEN_FILE"))
		rc = web_identity(&base, env("AWS_ROLE_ARN"), env("AWS_WEB_IDENTITY_TOKEN_FILE"),
				  env("AWS_ROLE_SESSION_NAME") ? env("AWS_ROLE_SESSION_NAME")
							       : session,
				  region, o->timeout_ms);
	if (rc == SW_ENOTFOUND && !profile &&
	    (env("AWS_CONTAINER_CREDENTIALS_FULL_URI") ||
	     env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")))
		rc = container(&base, o->timeout_ms);
	if (rc == SW_ENOTFOUND && !profile) {
		const char *off = env("AWS_EC2_METADATA_DISABLED");
		if (!off || strcasecmp(off, "true"))
			rc = imds(&base, o->timeout_ms);
		if (rc < 0) {
			char *why = sw_strdup(sw_error_last());
			rc = sw_error_setc(SW_ENOTFOUND, "no AWS credentials: none in the "
					   "environment, the shared files (%s, %s), web identity, "
					   "container credentials, or instance metadata (%s)",
					   f.creds_path, f.config_path, why);
			free(why);
		}
	}
	if (rc == 0 && o->role_arn && *o->role_arn) {
		rc = assume_role(out, &base, o->role_arn, session, region, o->timeout_ms);
		sw_aws_cred_release(&base);
	} else if (rc == 0) {
		*out = base;
	} else {
		sw_aws_cred_release(&base);
	}
	files_release(&f);
	free(region);
	return rc;
}

/* --- the provider ---------------------------------------------------------- */

struct sw_aws_provider {
	pthread_mutex_t lock;
	struct sw_aws_chain_opts o;
	char *profile, *region, *role_arn, *session;
	struct sw_aws_cred cur;
	int have;
};

static char *dup_or_null(const char *s)
{
	return s ? sw_strdup(s) : NULL;
}

void sw_aws_provider_new(struct sw_aws_provider **out, const struct sw_aws_chain_opts *o)
{
	struct sw_aws_provider *p = sw_calloc(1, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	p->o = *o;
	p->o.profile = p->profile = dup_or_null(o->profile);
	p->o.region = p->region = dup_or_null(o->region);
	p->o.role_arn = p->role_arn = dup_or_null(o->role_arn);
	p->o.session_name = p->session = dup_or_null(o->session_name);
	*out = p;
}

void sw_aws_provider_free(struct sw_aws_provider *p)
{
	if (!p)
		return;
	sw_aws_cred_release(&p->cur);
	pthread_mutex_destroy(&p->lock);
	free(p->profile);
	free(p->region);
	free(p->role_arn);
	free(p->session);
	free(p);
}

static void cred_copy(struct sw_aws_cred *dst, const struct sw_aws_cred *src)
{
	cred_set(dst, src->access_key_id, src->secret_access_key, src->session_token,
		 src->expires_ms);
	memcpy(dst->source, src->source, sizeof(dst->source));
}

int sw_aws_provider_get(struct sw_aws_provider *p, struct sw_aws_cred *out)
{
	int rc = 0;
	pthread_mutex_lock(&p->lock);
	if (!p->have || (p->cur.expires_ms && sw_now_ms() >= p->cur.expires_ms - REFRESH_BEFORE_MS)) {
		struct sw_aws_cred fresh;
		if ((rc = sw_aws_chain_resolve(&fresh, &p->o)) == 0) {
			sw_aws_cred_release(&p->cur);
			p->cur = fresh;
			p->have = 1;
		} else if (p->have && p->cur.expires_ms && sw_now_ms() < p->cur.expires_ms) {
			rc = 0;   /* the old ones still hold: keep them, try again next time */
		}
	}
	if (rc == 0)
		cred_copy(out, &p->cur);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

void sw_aws_provider_forget(struct sw_aws_provider *p)
{
	pthread_mutex_lock(&p->lock);
	sw_aws_cred_release(&p->cur);
	p->have = 0;
	pthread_mutex_unlock(&p->lock);
}
