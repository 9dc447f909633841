/*
 * test_github.c - github/github.h: the App's JWT (signed, then verified with
 * OpenSSL against the public key; its claims), the access-token answer's
 * parser, and the token cache against a small GitHub stand-in (an evhttp
 * server on a thread of its own, so that the blocking path can wait on it)
 * that verifies every JWT it gets: one token minted for many askers, kept
 * until a margin before its expiry and refreshed then, dropped and minted
 * again after a refusal, the loop's fetch, workers sharing one, a missing
 * installation and a revoked one as clear errors, and the credential git
 * is given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "config/config.h"
#include "git/git.h"
#include "github/github.h"
#include "lib/base64.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/http.h"
#include "tests/unit/slow.h"

#define APP_ID "4242"
#define INST 77

static EVP_PKEY *key;        /* made once per run */
static char *key_pem;

/* ---- the stand-in ----------------------------------------------------- */

static struct {
	pthread_mutex_t mu;
	int port;
	struct event_base *base;
	pthread_t thread;
	/* what it answers */
	int lookup_status, token_status;
	int64_t ttl_s;
	/* what it saw */
	int lookups, mints, bad_jwts;
	char last_token[64];
} S = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* The stand-in's own check of a JWT: signature with the public key, claims. */
static int jwt_ok(const char *auth)
{
	const char *jwt = auth && !strncmp(auth, "Bearer ", 7) ? auth + 7 : NULL;
	const char *d1 = jwt ? strchr(jwt, '.') : NULL, *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	struct sw_buf sig = SW_BUF_INIT, claims = SW_BUF_INIT;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = 0;

	if (!d2)
		goto done;
	if (sw_base64_decode(&sig, d2 + 1, strlen(d2 + 1), SW_BASE64_URL | SW_BASE64_NOPAD) < 0 ||
	    sw_base64_decode(&claims, d1 + 1, (size_t)(d2 - d1 - 1),
			     SW_BASE64_URL | SW_BASE64_NOPAD) < 0)
		goto done;
	if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestVerify(md, (unsigned char *)sig.ptr, sig.len, (const unsigned char *)jwt,
			     (size_t)(d2 - jwt)) != 1)
		goto done;
	json_t *c = json_loadb(claims.ptr, claims.len, 0, NULL);
	int64_t now = sw_now_ms() / 1000;
	json_int_t iat = json_integer_value(json_object_get(c, "iat"));
	json_int_t exp = json_integer_value(json_object_get(c, "exp"));
	const char *iss = json_string_value(json_object_get(c, "iss"));
	ok = iss && !strcmp(iss, APP_ID) && exp - iat <= 600 && iat <= now + 60 && exp > now;
	json_decref(c);
done:
	EVP_MD_CTX_free(md);
	sw_buf_release(&sig);
	sw_buf_release(&claims);
	return ok;
}

static void serve(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req),
					      "Authorization");
	struct evbuffer *out = evbuffer_new();
	int status = 404;

	pthread_mutex_lock(&S.mu);
	if (!jwt_ok(auth)) {
		S.bad_jwts++;
		status = 401;
		evbuffer_add_printf(out, "{\"message\":\"A JSON web token could not be decoded\"}");
	} else if (!strcmp(uri, "/repos/acme/shop/installation") ||
		   !strcmp(uri, "/repos/acme/web/installation")) {
		S.lookups++;
		status = S.lookup_status;
		if (status == 200)
			evbuffer_add_printf(out, "{\"id\":%d,\"app_id\":%s}", INST, APP_ID);
	} else if (!strncmp(uri, "/app/installations/", 19)) {
		int inst = atoi(uri + 19);
		status = inst == INST ? S.token_status : 404;
		if (status == 201) {
			char when[32];
			time_t t = (time_t)(sw_now_ms() / 1000 + S.ttl_s);
			struct tm tm;
			S.mints++;
			snprintf(S.last_token, sizeof(S.last_token), "ghs_test%06d", S.mints);
			gmtime_r(&t, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			evbuffer_add_printf(out, "{\"token\":\"%s\",\"expires_at\":\"%s\"}",
					    S.last_token, when);
		}
	}
	pthread_mutex_unlock(&S.mu);
	if (status == 404)
		evbuffer_add_printf(out, "{\"message\":\"Not Found\"}");
	evhttp_send_reply(req, status, "x", out);
	evbuffer_free(out);
}

static void *server_main(void *arg)
{
	event_base_loop(S.base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static void server_reset(void)
{
	pthread_mutex_lock(&S.mu);
	S.lookup_status = 200;
	S.token_status = 201;
	S.ttl_s = 3600;
	S.lookups = S.mints = S.bad_jwts = 0;
	pthread_mutex_unlock(&S.mu);
}

static int group_setup(void **state)
{
	EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL);
	BIO *bio = BIO_new(BIO_s_mem());
	struct evhttp *http;
	struct evhttp_bound_socket *bs;
	char *p;
	long n;

	assert_non_null(kc);
	assert_int_equal(EVP_PKEY_keygen_init(kc), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(kc, 2048), 1);
	assert_int_equal(EVP_PKEY_keygen(kc, &key), 1);
	EVP_PKEY_CTX_free(kc);
	assert_int_equal(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(bio, &p);
	key_pem = sw_strndup(p, (size_t)n);
	BIO_free(bio);

	curl_global_init(CURL_GLOBAL_DEFAULT);
	evthread_use_pthreads();
	S.base = event_base_new();
	http = evhttp_new(S.base);
	evhttp_set_gencb(http, serve, NULL);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	bs = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	assert_non_null(bs);
	{
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &len);
		S.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	pthread_create(&S.thread, NULL, server_main, NULL);
	return 0;
}

static int group_teardown(void **state)
{
	event_base_loopbreak(S.base);
	pthread_join(S.thread, NULL);
	EVP_PKEY_free(key);
	free(key_pem);
	return 0;
}

/* ---- a config and an App on it ---------------------------------------- */

static int64_t fake_now;     /* 0 = the real clock */
static int64_t test_now(void)
{
	return fake_now ? fake_now : sw_now_ms() / 1000;
}

struct fix {
	struct sw_config cfg;
	struct event_base *base;
	struct sw_http *http;
	struct sw_github_app *app;
	int ready;
};

static void fix_init(struct fix *f, int64_t installation)
{
	struct sw_github_app_opts o = SW_GITHUB_APP_OPTS_INIT;

	memset(f, 0, sizeof(*f));
	server_reset();
	fake_now = 0;
	f->cfg.github_api_url = sw_asprintf("http://127.0.0.1:%d/", S.port);
	f->cfg.github_app.id = sw_strdup(APP_ID);
	f->cfg.github_app.private_key.value = sw_strdup(key_pem);
	f->cfg.github_app.installation_id = installation;
	f->base = event_base_new();
	assert_int_equal(sw_http_new(&f->http, f->base), 0);
	o.now_s = test_now;
	o.fail_hold_ms = 60000;
	assert_int_equal(sw_github_app_new(&f->app, f->http, &o), 0);
	sw_github_app_set_config(f->app, &f->cfg);
}

static void fix_release(struct fix *f)
{
	sw_github_app_free(f->app);
	sw_http_free(f->http);
	event_base_free(f->base);
	free(f->cfg.github_api_url);
	free(f->cfg.github_app.id);
	free(f->cfg.github_app.private_key.value);
}

static void on_ready(void *arg)
{
	struct fix *f = arg;
	f->ready++;
	event_base_loopbreak(f->base);
}

/* Run the loop until on_ready has been called `n` times (scaled deadline). */
static void wait_ready(struct fix *f, int n)
{
	int64_t end = sw_mono_ms() + sw_test_ms(10000);
	while (f->ready < n && sw_mono_ms() < end) {
		struct timeval tv = { 0, 50000 };
		event_base_loopexit(f->base, &tv);
		event_base_dispatch(f->base);
	}
	assert_int_equal(f->ready, n);
}

/* ---- the JWT ---------------------------------------------------------- */

static void test_jwt_signed_and_claims(void **state)
{
	char *jwt = NULL, *auth;
	int64_t now = 1700000000;
	struct sw_buf b = SW_BUF_INIT;

	assert_int_equal(sw_github_jwt(&jwt, key, APP_ID, now), 0);
	/* three base64url parts, no padding */
	assert_null(strpbrk(jwt, "+/= "));
	char *d1 = strchr(jwt, '.'), *d2 = strchr(d1 + 1, '.');
	assert_non_null(d2);
	assert_null(strchr(d2 + 1, '.'));
	assert_int_equal(sw_base64_decode(&b, jwt, (size_t)(d1 - jwt),
					  SW_BASE64_URL | SW_BASE64_NOPAD), 0);
	json_t *h = json_loadb(b.ptr, b.len, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "RS256");
	assert_string_equal(json_string_value(json_object_get(h, "typ")), "JWT");
	json_decref(h);
	sw_buf_reset(&b);
	assert_int_equal(sw_base64_decode(&b, d1 + 1, (size_t)(d2 - d1 - 1),
					  SW_BASE64_URL | SW_BASE64_NOPAD), 0);
	json_t *c = json_loadb(b.ptr, b.len, 0, NULL);
	assert_int_equal(json_integer_value(json_object_get(c, "iat")), now - 60);
	assert_int_equal(json_integer_value(json_object_get(c, "exp")), now + 540);
	assert_string_equal(json_string_value(json_object_get(c, "iss")), APP_ID);
	json_decref(c);
	sw_buf_release(&b);
	/* the signature verifies with the public key (the stand-in's check,
	 * here at the real time, so sign one now) */
	free(jwt);
	assert_int_equal(sw_github_jwt(&jwt, key, APP_ID, sw_now_ms() / 1000), 0);
	auth = sw_asprintf("Bearer %s", jwt);
	assert_true(jwt_ok(auth));
	/* and a byte changed in the claims does not */
	d1 = strchr(auth + 7, '.');
	d1[2] = d1[2] == 'A' ? 'B' : 'A';
	assert_false(jwt_ok(auth));
	free(auth);
	free(jwt);
}

static void test_key_parse(void **state)
{
	EVP_PKEY *k = NULL;

	assert_int_equal(sw_github_key_parse(&k, key_pem), 0);
	assert_int_equal(EVP_PKEY_eq(k, key), 1);
	EVP_PKEY_free(k);
	assert_int_equal(sw_github_key_parse(&k, "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n"
					     "-----END RSA PRIVATE KEY-----\n"), SW_EINVALID);
	assert_null(k);
	assert_null(strstr(sw_error_last(), "AAAA"));
	assert_int_equal(sw_github_key_parse(&k, "hello"), SW_EINVALID);
}

/* ---- the answers ------------------------------------------------------ */

static void test_parse_token(void **state)
{
	struct sw_github_token t = SW_GITHUB_TOKEN_INIT;
	const char *ok = "{\"token\":\"ghs_16C7e42F292c6912E7710c838347Ae178B4a\","
			 "\"expires_at\":\"2016-07-11T22:14:10Z\",\"permissions\":{}}";
	static const char *const bad[] = {
		"", "[]", "{\"token\":\"x\"}", "{\"expires_at\":\"2016-07-11T22:14:10Z\"}",
		"{\"token\":\"\",\"expires_at\":\"2016-07-11T22:14:10Z\"}",
		"{\"token\":\"a b\",\"expires_at\":\"2016-07-11T22:14:10Z\"}",
		"{\"token\":\"a\\nb\",\"expires_at\":\"2016-07-11T22:14:10Z\"}",
		"{\"token\":\"abc\",\"expires_at\":\"2016-07-11 22:14:10\"}",
		"{\"token\":\"abc\",\"expires_at\":\"2016-13-11T22:14:10Z\"}",
		"{\"token\":\"abc\",\"expires_at\":1468275250}",
		"{\"token\":7,\"expires_at\":\"2016-07-11T22:14:10Z\"}",
	};

	assert_int_equal(sw_github_parse_token(&t, ok, strlen(ok)), 0);
	assert_string_equal(t.token, "ghs_16C7e42F292c6912E7710c838347Ae178B4a");
	assert_int_equal(t.expires_s, 1468275250);
	sw_github_token_release(&t);
	assert_null(t.token);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sw_github_parse_token(&t, bad[i], strlen(bad[i])), SW_EINVALID);
		assert_null(t.token);
	}
	assert_int_equal(sw_github_parse_time("2016-07-11T22:14:10.123Z"), 1468275250);
	assert_int_equal(sw_github_parse_time("2016-07-11T22:14:10+00:00"), 1468275250);
	assert_int_equal(sw_github_parse_time("2016-07-11T22:14:10+02:00"), -1);
	assert_int_equal(sw_github_parse_time("2016-07-11T22:14"), -1);

	int64_t id;
	assert_int_equal(sw_github_parse_installation(&id, "{\"id\":77}", 9), 0);
	assert_int_equal(id, 77);
	assert_int_equal(sw_github_parse_installation(&id, "{\"id\":-1}", 9), SW_EINVALID);
	assert_int_equal(sw_github_parse_installation(&id, "{\"id\":\"7\"}", 10), SW_EINVALID);
}

/* ---- the cache -------------------------------------------------------- */

/* One mint for many askers on a worker; the lookup happens once. */
static void test_cache_blocking(void **state)
{
	struct fix f;
	char *a = NULL, *b = NULL;
	uint64_t jwts, toks;

	fix_init(&f, 0);
	assert_true(sw_github_app_enabled(f.app));
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/shop", 0, &a), 0);
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/shop", 0, &b), 0);
	assert_string_equal(a, b);
	assert_string_equal(a, "ghs_test000001");
	assert_int_equal(sw_github_app_installation(f.app, "acme/shop"), INST);
	pthread_mutex_lock(&S.mu);
	assert_int_equal(S.lookups, 1);
	assert_int_equal(S.mints, 1);
	assert_int_equal(S.bad_jwts, 0);
	pthread_mutex_unlock(&S.mu);
	sw_github_app_counts(f.app, &jwts, &toks);
	assert_int_equal(jwts, 2);
	assert_int_equal(toks, 1);
	free(a);
	free(b);
	fix_release(&f);
}

/* Kept until the margin before expires_at (5 minutes of an hour's token),
 * refreshed after it, while the old one would still be accepted. */
static void test_cache_refresh_before_expiry(void **state)
{
	struct fix f;
	char *a = NULL, *b = NULL, *c = NULL;
	int64_t t0 = sw_now_ms() / 1000;

	fix_init(&f, INST);      /* configured: no lookup */
	fake_now = t0;
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/shop", 0, &a), 0);
	fake_now = t0 + 3600 - 300 - 5;
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/shop", 0, &b), 0);
	assert_string_equal(a, b);
	fake_now = t0 + 3600 - 300 + 5;   /* inside the margin, before expiry */
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/shop", 0, &c), 0);
	assert_string_not_equal(a, c);
	pthread_mutex_lock(&S.mu);
	assert_int_equal(S.lookups, 0);
	assert_int_equal(S.mints, 2);
	pthread_mutex_unlock(&S.mu);
	free(a);
	free(b);
	free(c);
	fix_release(&f);
}

/* A short-lived token: the margin is half its life. */
static void test_cache_short_token(void **state)
{
	struct fix f;
	char *a = NULL, *b = NULL;
	int64_t t0 = sw_now_ms() / 1000;

	fix_init(&f, INST);
	S.ttl_s = 20;
	fake_now = t0;
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/shop", 0, &a), 0);
	fake_now = t0 + 11;
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/shop", 0, &b), 0);
	assert_string_not_equal(a, b);
	free(a);
	free(b);
	fix_release(&f);
}

/* A refused token (a 401): invalidate drops it, once; an old token does
 * not drop the new one; refresh mints anew. */
static void test_cache_401_refresh(void **state)
{
	struct fix f;
	char *a = NULL, *b = NULL, *c = NULL, *d = NULL;

	fix_init(&f, 0);
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/shop", 0, &a), 0);
	sw_github_app_invalidate(f.app, "acme/shop", a);
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/shop", 0, &b), 0);
	assert_string_not_equal(a, b);
	sw_github_app_invalidate(f.app, "acme/shop", a);   /* stale: b stays */
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/shop", 0, &c), 0);
	assert_string_equal(b, c);
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/shop", 1, &d), 0);
	assert_string_not_equal(c, d);
	pthread_mutex_lock(&S.mu);
	assert_int_equal(S.mints, 3);
	assert_int_equal(S.lookups, 1);    /* the installation is kept */
	pthread_mutex_unlock(&S.mu);
	free(a);
	free(b);
	free(c);
	free(d);
	fix_release(&f);
}

struct waiter {
	struct sw_github_app *app;
	char *token;
	int rc;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;
	w->rc = sw_github_app_token_wait(w->app, "acme/shop", 0, &w->token);
	return NULL;
}

/* The loop's fetch: SW_EAGAIN (asking again starts nothing more), then
 * on_ready, then the token from the cache. */
static void test_cache_async(void **state)
{
	struct fix f;
	char *tok = NULL, *again = NULL;
	int64_t inst = 0;

	fix_init(&f, 0);
	sw_github_app_on_ready(f.app, on_ready, &f);
	assert_int_equal(sw_github_app_token(f.app, "acme/shop", &tok, &inst), SW_EAGAIN);
	assert_int_equal(sw_github_app_token(f.app, "acme/shop", &tok, &inst), SW_EAGAIN);
	assert_null(tok);
	wait_ready(&f, 1);
	assert_int_equal(sw_github_app_token(f.app, "acme/shop", &tok, &inst), 0);
	assert_int_equal(inst, INST);
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/shop", 0, &again), 0);
	assert_string_equal(again, tok);
	pthread_mutex_lock(&S.mu);
	assert_int_equal(S.mints, 1);
	assert_int_equal(S.lookups, 1);
	pthread_mutex_unlock(&S.mu);
	free(tok);
	free(again);
	fix_release(&f);
}

/* Workers asking at once: one fetches, the others wait for it; one mint. */
static void test_cache_workers_share(void **state)
{
	struct fix f;
	struct waiter w[4];
	pthread_t t[4];

	fix_init(&f, 0);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct waiter){ .app = f.app };
		pthread_create(&t[i], NULL, waiter_main, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].rc, 0);
		assert_string_equal(w[i].token, "ghs_test000001");
		free(w[i].token);
	}
	pthread_mutex_lock(&S.mu);
	assert_int_equal(S.mints, 1);
	assert_int_equal(S.lookups, 1);
	pthread_mutex_unlock(&S.mu);
	fix_release(&f);
}

/* Not installed (404 on the lookup) and revoked (404 on the exchange):
 * clear errors, kept for fail_hold_ms on both paths. */
static void test_cache_not_installed_revoked(void **state)
{
	struct fix f;
	char *tok = NULL;

	fix_init(&f, 0);
	S.lookup_status = 404;
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/shop", 0, &tok), SW_ENOTFOUND);
	assert_non_null(strstr(sw_error_last(), "not installed on acme/shop"));
	assert_int_equal(sw_github_app_token(f.app, "acme/shop", &tok, NULL), SW_ENOTFOUND);
	assert_non_null(strstr(sw_error_last(), "not installed on acme/shop"));
	pthread_mutex_lock(&S.mu);
	assert_int_equal(S.lookups, 1);    /* the failure was answered from the cache */
	pthread_mutex_unlock(&S.mu);
	fix_release(&f);

	fix_init(&f, 999);                /* an installation GitHub does not know */
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/shop", 0, &tok), SW_ENOTFOUND);
	assert_non_null(strstr(sw_error_last(), "installation 999"));
	assert_non_null(strstr(sw_error_last(), "revoked"));
	fix_release(&f);

	fix_init(&f, 0);
	S.token_status = 401;
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/web", 0, &tok), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "JWT"));
	assert_null(tok);
	fix_release(&f);
}

/* A new config drops the cache; without github.app it is off. */
static void test_cache_reconfigure(void **state)
{
	struct fix f;
	char *a = NULL, *b = NULL;

	fix_init(&f, 0);
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/shop", 0, &a), 0);
	f.cfg.github_app.installation_id = INST;
	sw_github_app_set_config(f.app, &f.cfg);
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/shop", 0, &b), 0);
	assert_string_not_equal(a, b);
	free(f.cfg.github_app.id);
	f.cfg.github_app.id = NULL;
	sw_github_app_set_config(f.app, &f.cfg);
	assert_false(sw_github_app_enabled(f.app));
	free(a);
	free(b);
	fix_release(&f);
}

/* What libgit2 is handed for an https remote: user x-access-token and the
 * installation token; on the second request a fresh one; without an App
 * the repository's static token, once. */
static void test_git_credential(void **state)
{
	struct fix f;
	struct sw_source_repo r = { .name = "acme/shop", .url = "https://example.com/acme/shop.git",
				    .token = "ghp_static" };
	char *user = NULL, *pw = NULL, *tok = NULL;

	fix_init(&f, 0);
	sw_source_set_token_provider(sw_github_app_git_token, f.app);
	assert_int_equal(sw_source_https_credential(&user, &pw, &r, 1), 0);
	assert_string_equal(user, "x-access-token");
	assert_int_equal(sw_github_app_token_wait(f.app, "acme/shop", 0, &tok), 0);
	assert_string_equal(pw, tok);
	assert_string_equal(pw, "ghs_test000001");
	free(user);
	free(pw);
	free(tok);
	assert_int_equal(sw_source_https_credential(&user, &pw, &r, 2), 0);
	assert_string_equal(pw, "ghs_test000002");
	free(user);
	free(pw);

	/* the App not installed: the fetch fails with the App's reason */
	S.lookup_status = 404;
	assert_true(sw_source_https_credential(&user, &pw, &(struct sw_source_repo){
		.name = "acme/web", .url = r.url }, 1) < 0);
	assert_non_null(strstr(sw_error_last(), "not installed on acme/web"));

	/* no App: the static token, and only once */
	free(f.cfg.github_app.id);
	f.cfg.github_app.id = NULL;
	sw_github_app_set_config(f.app, &f.cfg);
	assert_int_equal(sw_source_https_credential(&user, &pw, &r, 1), 0);
	assert_string_equal(pw, "ghp_static");
	free(user);
	free(pw);
	assert_true(sw_source_https_credential(&user, &pw, &r, 2) < 0);
	sw_source_set_token_provider(NULL, NULL);
	fix_release(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jwt_signed_and_claims),
		cmocka_unit_test(test_key_parse),
		cmocka_unit_test(test_parse_token),
		cmocka_unit_test(test_cache_blocking),
		cmocka_unit_test(test_cache_refresh_before_expiry),
		cmocka_unit_test(test_cache_short_token),
		cmocka_unit_test(test_cache_401_refresh),
		cmocka_unit_test(test_cache_async),
		cmocka_unit_test(test_cache_workers_share),
		cmocka_unit_test(test_cache_not_installed_revoked),
		cmocka_unit_test(test_cache_reconfigure),
		cmocka_unit_test(test_git_credential),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
