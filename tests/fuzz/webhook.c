/*
 * webhook.c - fuzz target: a delivery's body through what POST /hooks/github
 * does with it after the signature check: sw_webhook_payload() (as
 * application/json), then sw_webhook_parse() as a ping, a push and a
 * pull_request, then sw_webhook_map() against a config that tracks the
 * fixtures' repository. The body is the one thing an attacker with the hook
 * secret, or GitHub itself, fully controls. Seeds: the real GitHub payloads
 * in shared/fixtures/github.
 */
#include "fuzz.h"
#include "webhooks/webhooks.h"

static struct sw_config *config(void)
{
	static struct sw_config *cfg;
	static const char text[] =
		"server:\n"
		"  data_dir: /nonexistent/sw-fuzz\n"
		"repositories:\n"
		"  - name: Codertocat/Hello-World\n"
		"    url: https://github.com/Codertocat/Hello-World.git\n"
		"environments:\n"
		"  - name: prod\n"
		"    branch: master\n";
	if (!cfg) {
		const char *p = fuzz_file("slipway.yaml", (const uint8_t *)text, sizeof(text) - 1);
		if (!p || sw_config_load(&cfg, p) != 0) {
			fprintf(stderr, "fuzz webhook: config: %s\n", sw_error_last());
			abort();
		}
	}
	return cfg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const events[] = { "ping", "push", "pull_request", "issues" };
	struct sw_buf json = SW_BUF_INIT;
	size_t i;

	fuzz_init();
	if (sw_webhook_payload(&json, "application/json; charset=utf-8", (const char *)data,
			       size) == 0) {
		sw_webhook_json_check(json.ptr, json.len);
		for (i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
			struct sw_gh_event ev = SW_GH_EVENT_INIT;
			struct sw_webhook_decision d = SW_WEBHOOK_DECISION_INIT;
			if (sw_webhook_parse(&ev, events[i], json.ptr, json.len) == 0)
				sw_webhook_map(&d, config(), &ev);
			sw_webhook_decision_release(&d);
			sw_gh_event_release(&ev);
		}
	}
	sw_buf_release(&json);
	return 0;
}
