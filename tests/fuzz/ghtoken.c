/*
 * ghtoken.c - fuzz target: what GitHub answers a GitHub App (github/app.c):
 * POST /app/installations/{id}/access_tokens through sw_github_parse_token()
 * (token, expires_at), GET /repos/{o}/{r}/installation through
 * sw_github_parse_installation(), and the whole input as a timestamp
 * through sw_github_parse_time(). A token that parses must be printable
 * ASCII without spaces (it goes into a header and a git credential) and
 * its expiry a time after 1970. Seeds: seeds/ghtoken.
 */
#include "fuzz.h"
#include "github/github.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sw_github_token t = SW_GITHUB_TOKEN_INIT;
	int64_t id;
	char *text;

	fuzz_init();
	if (sw_github_parse_token(&t, (const char *)data, size) == 0) {
		if (!t.token || !*t.token || t.expires_s < 0)
			abort();
		for (const char *p = t.token; *p; p++)
			if (*p <= 0x20 || *p >= 0x7f)
				abort();
		sw_github_token_release(&t);
	} else if (t.token) {
		abort();
	}
	if (sw_github_parse_installation(&id, (const char *)data, size) == 0 && id <= 0)
		abort();
	text = strndup((const char *)data, size);
	if (text)
		sw_github_parse_time(text);
	free(text);
	return 0;
}
