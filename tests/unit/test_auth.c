/*
 * test_auth.c - daemon/auth: session values (signature, expiry, tampering),
 * CSRF tokens bound to a session, cookie parsing, and the read/write
 * decision for bearer headers, cookies and CSRF mismatches.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "daemon/auth-int.h"

#define TOKEN "s3cret-api-token"
#define NOW 1700000000

static void test_equal(void **state)
{
	assert_true(sw_auth_equal("abc", "abc"));
	assert_false(sw_auth_equal("abc", "abd"));
	assert_false(sw_auth_equal("abc", "abcd"));
	assert_false(sw_auth_equal("", "a"));
	assert_true(sw_auth_equal("", ""));
	assert_false(sw_auth_equal(NULL, "a"));
	assert_false(sw_auth_equal(NULL, NULL));
}

static void test_session_roundtrip(void **state)
{
	char v[SW_AUTH_VALUE_MAX], w[SW_AUTH_VALUE_MAX];
	assert_int_equal(sw_auth_session_new(v, TOKEN, NOW, 3600), 0);
	assert_null(strstr(v, TOKEN));
	assert_int_equal(sw_auth_session_verify(v, TOKEN, NOW), 0);
	assert_int_equal(sw_auth_session_verify(v, TOKEN, NOW + 3599), 0);
	/* two sessions differ (random nonce) */
	assert_int_equal(sw_auth_session_new(w, TOKEN, NOW, 3600), 0);
	assert_string_not_equal(v, w);
}

static void test_session_expiry(void **state)
{
	char v[SW_AUTH_VALUE_MAX];
	assert_int_equal(sw_auth_session_new(v, TOKEN, NOW, 60), 0);
	assert_int_equal(sw_auth_session_verify(v, TOKEN, NOW + 60), SW_EINVALID);
	assert_string_equal(sw_error_last(), "session expired");
	assert_int_equal(sw_auth_session_verify(v, TOKEN, NOW + 1000000), SW_EINVALID);
}

static void test_session_signature(void **state)
{
	char v[SW_AUTH_VALUE_MAX], t[SW_AUTH_VALUE_MAX];
	assert_int_equal(sw_auth_session_new(v, TOKEN, NOW, 60), 0);
	/* another token (rotated): every session ends */
	assert_int_equal(sw_auth_session_verify(v, "other-token", NOW), SW_EINVALID);
	assert_string_equal(sw_error_last(), "session signature does not match");
	/* a later expiry written in by hand breaks the signature */
	const char *dot = strchr(v, '.');
	snprintf(t, sizeof(t), "%d%s", NOW + 999999, dot);
	assert_int_equal(sw_auth_session_verify(t, TOKEN, NOW), SW_EINVALID);
	/* one flipped character of the MAC or the nonce */
	strcpy(t, v);
	t[strlen(t) - 1] = t[strlen(t) - 1] == '0' ? '1' : '0';
	assert_int_equal(sw_auth_session_verify(t, TOKEN, NOW), SW_EINVALID);
	strcpy(t, v);
	t[dot - v + 1] = t[dot - v + 1] == 'a' ? 'b' : 'a';
	assert_int_equal(sw_auth_session_verify(t, TOKEN, NOW), SW_EINVALID);
	/* malformed */
	assert_int_equal(sw_auth_session_verify("", TOKEN, NOW), SW_EINVALID);
	assert_int_equal(sw_auth_session_verify("123", TOKEN, NOW), SW_EINVALID);
	assert_int_equal(sw_auth_session_verify("x.y.z", TOKEN, NOW), SW_EINVALID);
	assert_int_equal(sw_auth_session_verify(NULL, TOKEN, NOW), SW_EINVALID);
	assert_int_equal(sw_auth_session_verify(v, NULL, NOW), SW_EINVALID);
}

static void test_csrf_bound(void **state)
{
	char a[SW_AUTH_VALUE_MAX], b[SW_AUTH_VALUE_MAX], ca[SW_AUTH_VALUE_MAX],
		ca2[SW_AUTH_VALUE_MAX], cb[SW_AUTH_VALUE_MAX], co[SW_AUTH_VALUE_MAX];
	sw_auth_session_new(a, TOKEN, NOW, 60);
	sw_auth_session_new(b, TOKEN, NOW, 60);
	sw_auth_csrf_for(ca, a, TOKEN);
	sw_auth_csrf_for(ca2, a, TOKEN);
	sw_auth_csrf_for(cb, b, TOKEN);
	sw_auth_csrf_for(co, a, "other-token");
	assert_string_equal(ca, ca2);
	assert_string_not_equal(ca, cb);
	assert_string_not_equal(ca, co);
	assert_int_equal(strlen(ca), 64);
}

static void test_cookie_parse(void **state)
{
	char v[32];
	assert_int_equal(sw_auth_cookie("a=1; sw_session=xyz; b=2", "sw_session", v, sizeof(v)), 0);
	assert_string_equal(v, "xyz");
	assert_int_equal(sw_auth_cookie("sw_sessionx=1;sw_session=2", "sw_session", v, sizeof(v)), 0);
	assert_string_equal(v, "2");
	assert_int_equal(sw_auth_cookie("x_sw_session=1", "sw_session", v, sizeof(v)), SW_ENOTFOUND);
	assert_int_equal(sw_auth_cookie("", "a", v, sizeof(v)), SW_ENOTFOUND);
	assert_int_equal(sw_auth_cookie("a=0123456789012345678901234567890123456789", "a", v,
					sizeof(v)), SW_ENOTFOUND);
}

/* A request with a fresh session cookie and its CSRF cookie. */
struct sess {
	char value[SW_AUTH_VALUE_MAX], csrf[SW_AUTH_VALUE_MAX], cookies[512];
};

static void make_sess(struct sess *s)
{
	sw_auth_session_new(s->value, TOKEN, NOW, 60);
	sw_auth_csrf_for(s->csrf, s->value, TOKEN);
	snprintf(s->cookies, sizeof(s->cookies), "theme=dark; sw_session=%s; sw_csrf=%s", s->value,
		 s->csrf);
}

static void test_decide_read(void **state)
{
	struct sw_auth_req r = { .token = TOKEN, .now_s = NOW };
	struct sess s;
	assert_int_equal(sw_auth_decide(&r, 0), 0);            /* open */
	r.read_requires_token = 1;
	assert_int_equal(sw_auth_decide(&r, 0), 401);
	r.authorization = "Bearer " TOKEN;
	assert_int_equal(sw_auth_decide(&r, 0), 0);
	r.authorization = "bearer   " TOKEN "  ";
	assert_int_equal(sw_auth_decide(&r, 0), 0);
	r.authorization = "Bearer nope";
	assert_int_equal(sw_auth_decide(&r, 0), 401);
	r.authorization = "Basic Zm9vOmJhcg==";
	assert_int_equal(sw_auth_decide(&r, 0), 401);
	r.authorization = NULL;
	make_sess(&s);
	r.cookies = s.cookies;
	assert_int_equal(sw_auth_decide(&r, 0), 0);            /* reads need no CSRF */
	r.now_s = NOW + 61;
	assert_int_equal(sw_auth_decide(&r, 0), 401);          /* expired */
}

static void test_decide_write(void **state)
{
	struct sw_auth_req r = { .token = TOKEN, .now_s = NOW };
	struct sess s, other;
	char cookies[512];

	assert_int_equal(sw_auth_decide(&r, 1), 401);
	r.authorization = "Bearer " TOKEN;
	assert_int_equal(sw_auth_decide(&r, 1), 0);            /* bearer: no CSRF needed */
	r.authorization = "Bearer " TOKEN "x";
	assert_int_equal(sw_auth_decide(&r, 1), 401);
	r.authorization = NULL;

	make_sess(&s);
	r.cookies = s.cookies;
	assert_int_equal(sw_auth_decide(&r, 1), 403);          /* cookie, no CSRF */
	assert_non_null(strstr(sw_error_last(), "CSRF"));
	r.csrf_header = s.csrf;
	assert_int_equal(sw_auth_decide(&r, 1), 0);
	r.csrf_header = NULL;
	r.csrf_field = s.csrf;
	assert_int_equal(sw_auth_decide(&r, 1), 0);            /* form field works too */
	r.csrf_field = "0000";
	assert_int_equal(sw_auth_decide(&r, 1), 403);          /* mismatch */

	/* another session's CSRF token, even when its cookie is planted too */
	make_sess(&other);
	snprintf(cookies, sizeof(cookies), "sw_session=%s; sw_csrf=%s", s.value, other.csrf);
	r.cookies = cookies;
	r.csrf_field = other.csrf;
	assert_int_equal(sw_auth_decide(&r, 1), 403);
	/* the right value in the header but no csrf cookie: not a double submit */
	snprintf(cookies, sizeof(cookies), "sw_session=%s", s.value);
	r.csrf_field = s.csrf;
	assert_int_equal(sw_auth_decide(&r, 1), 403);

	/* a forged session */
	snprintf(cookies, sizeof(cookies), "sw_session=%d.%032d.%064d; sw_csrf=x", NOW + 60, 0, 0);
	r.csrf_field = "x";
	assert_int_equal(sw_auth_decide(&r, 1), 401);

	/* no token configured: nothing may change, whatever is sent */
	r.token = NULL;
	r.authorization = "Bearer ";
	assert_int_equal(sw_auth_decide(&r, 1), 403);
	r.authorization = NULL;
	r.cookies = NULL;
	assert_int_equal(sw_auth_decide(&r, 1), 403);
}

/* An API token's shape is left to storage, with or without server.api_token. */
static void test_decide_api_token(void **state)
{
	struct sw_auth_req r = { .token = TOKEN, .now_s = NOW };
	r.authorization = "Bearer swt_0123_abc";
	assert_int_equal(sw_auth_decide(&r, 1), 0);
	assert_int_equal(r.kind, SW_ACTOR_TOKEN);
	assert_string_equal(r.presented, "swt_0123_abc");
	r.token = NULL;
	assert_int_equal(sw_auth_decide(&r, 0), 0);     /* reads open: nothing needed */
	assert_int_equal(r.kind, SW_ACTOR_ANONYMOUS);
	assert_int_equal(sw_auth_decide(&r, 1), 0);
	assert_int_equal(r.kind, SW_ACTOR_TOKEN);
	r.token = TOKEN;
	r.authorization = "Bearer " TOKEN;
	assert_int_equal(sw_auth_decide(&r, 1), 0);
	assert_int_equal(r.kind, SW_ACTOR_API_TOKEN);
	assert_string_equal(r.presented, "");
}

/* A GitHub user's session: round trip, expiry, forgery, the other secret. */
static void test_user_session(void **state)
{
	char v[SW_AUTH_USER_MAX], login[SW_AUTH_LOGIN_MAX], teams[SW_AUTH_USER_MAX];
	char c1[SW_AUTH_VALUE_MAX], c2[SW_AUTH_VALUE_MAX];
	const char *secret = "oauth-client-secret";
	assert_int_equal(sw_auth_user_session_new(v, secret, "alice", "acme/platform+acme/web", NOW,
						  60), 0);
	assert_null(strstr(v, secret));
	assert_int_equal(sw_auth_user_session_verify(v, secret, NOW, login, teams), 0);
	assert_string_equal(login, "alice");
	assert_string_equal(teams, "acme/platform+acme/web");
	assert_int_equal(sw_auth_user_session_verify(v, secret, NOW + 60, login, teams), SW_EINVALID);
	assert_string_equal(sw_error_last(), "session expired");
	assert_int_equal(sw_auth_user_session_verify(v, "other", NOW, login, teams), SW_EINVALID);
	assert_string_equal(sw_error_last(), "session signature does not match");
	/* another login or team written in breaks the signature */
	char forged[SW_AUTH_USER_MAX];
	snprintf(forged, sizeof(forged), "%s", v);
	char *p = strstr(forged, ".alice.");
	memcpy(p, ".bobby.", 7);
	assert_int_equal(sw_auth_user_session_verify(forged, secret, NOW, login, teams), SW_EINVALID);
	assert_int_equal(sw_auth_user_session_verify("u1.x", secret, NOW, login, teams), SW_EINVALID);
	assert_int_equal(sw_auth_user_session_verify(NULL, secret, NOW, login, teams), SW_EINVALID);
	assert_int_equal(sw_auth_user_session_verify(v, NULL, NOW, login, teams), SW_EINVALID);
	/* no teams */
	assert_int_equal(sw_auth_user_session_new(v, secret, "bob", NULL, NOW, 60), 0);
	assert_int_equal(sw_auth_user_session_verify(v, secret, NOW, login, teams), 0);
	assert_string_equal(teams, "");
	/* what is no login or team is refused */
	assert_int_equal(sw_auth_user_session_new(v, secret, "a.b", NULL, NOW, 60), SW_EINVALID);
	assert_int_equal(sw_auth_user_session_new(v, secret, "", NULL, NOW, 60), SW_EINVALID);
	assert_int_equal(sw_auth_user_session_new(v, secret, "a", "x;y", NOW, 60), SW_EINVALID);
	/* CSRF tokens differ per session */
	assert_int_equal(sw_auth_user_session_new(v, secret, "bob", NULL, NOW, 60), 0);
	sw_auth_user_csrf(c1, v, secret);
	assert_int_equal(sw_auth_user_session_new(v, secret, "bob", NULL, NOW, 60), 0);
	sw_auth_user_csrf(c2, v, secret);
	assert_string_not_equal(c1, c2);
}

/* The decision with a user's cookie: kind, login, teams; CSRF for writes. */
static void test_decide_user(void **state)
{
	struct sw_auth_req r = { .token = NULL, .now_s = NOW, .user_secret = "s" };
	char v[SW_AUTH_USER_MAX], csrf[SW_AUTH_VALUE_MAX], cookies[2048];
	assert_int_equal(sw_auth_user_session_new(v, "s", "alice", "acme/platform", NOW, 60), 0);
	sw_auth_user_csrf(csrf, v, "s");
	snprintf(cookies, sizeof(cookies), "sw_user=%s; sw_csrf=%s", v, csrf);
	r.cookies = cookies;
	assert_int_equal(sw_auth_decide(&r, 1), 403);        /* no CSRF token sent */
	r.csrf_header = csrf;
	assert_int_equal(sw_auth_decide(&r, 1), 0);
	assert_int_equal(r.kind, SW_ACTOR_USER);
	assert_string_equal(r.login, "alice");
	assert_string_equal(r.teams, "acme/platform");
	r.user_secret = NULL;                                 /* oauth switched off */
	assert_int_equal(sw_auth_decide(&r, 1), 403);
	r.user_secret = "t";                                  /* the secret changed */
	assert_int_equal(sw_auth_decide(&r, 1), 401);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_session_roundtrip),
		cmocka_unit_test(test_session_expiry),
		cmocka_unit_test(test_session_signature),
		cmocka_unit_test(test_csrf_bound),
		cmocka_unit_test(test_cookie_parse),
		cmocka_unit_test(test_decide_read),
		cmocka_unit_test(test_decide_write),
		cmocka_unit_test(test_decide_api_token),
		cmocka_unit_test(test_user_session),
		cmocka_unit_test(test_decide_user),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
