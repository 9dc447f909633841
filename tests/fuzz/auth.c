/*
 * auth.c - fuzz target: what a client presents to be let in. The input's
 * first line is the Authorization header, the rest the Cookie header; both
 * go through sw_auth_decide() (bearer scheme, the API token, the session
 * cookies, the API token's and a GitHub user's, and their CSRF tokens), and a value that looks like an API token
 * through sw_token_parse(), as sw_auth_require() does before asking
 * storage. The whole input is also an --expires value and a token name
 * (an admin's input, but a parser all the same). Seeds: seeds/auth.
 */
#include "daemon/auth-int.h"
#include "daemon/tokens-int.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sw_auth_req r = { .token = "fuzz-api-token", .read_requires_token = 1,
				 .now_s = 1700000000, .user_secret = "fuzz-oauth-secret" };
	char login[SW_AUTH_LOGIN_MAX], teams[SW_AUTH_USER_MAX];
	char *s = malloc(size + 1), *nl, id[SW_TOKEN_ID_HEX + 1];
	unsigned char hash[32];
	int64_t at;

	fuzz_init();
	memcpy(s, data, size);
	s[size] = 0;
	nl = strchr(s, '\n');
	if (nl)
		*nl = 0;
	r.authorization = s;
	r.cookies = nl ? nl + 1 : NULL;
	r.csrf_header = nl ? nl + 1 : NULL;
	for (int write = 0; write < 2; write++)
		if (sw_auth_decide(&r, write) == 0 && r.kind == SW_ACTOR_TOKEN)
			sw_token_parse(r.presented, id, hash);
	sw_token_parse(s, id, hash);
	sw_auth_user_session_verify(s, "fuzz-oauth-secret", 1700000000, login, teams);
	r.authorization = NULL;
	sw_auth_decide(&r, 1);
	sw_token_expiry(s, 0, &at);
	sw_token_name_check(s);
	free(s);
	return 0;
}
