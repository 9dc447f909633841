/*
 * form.c - fuzz target: a form-encoded delivery body
 * (application/x-www-form-urlencoded, GitHub's other content type) through
 * sw_webhook_payload(), which finds the `payload` field and percent-decodes
 * it; what comes out is checked as JSON and parsed as a push, as the hook
 * handler does. Seeds: the GitHub fixtures (as unencoded bodies they exercise
 * the field search; the fuzzer finds `payload=` from the dictionary of
 * comparisons) and hand-made form bodies in seeds/form.
 */
#include "fuzz.h"
#include "webhooks/webhooks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sw_buf json = SW_BUF_INIT;

	fuzz_init();
	if (sw_webhook_payload(&json, "Application/X-WWW-Form-Urlencoded", (const char *)data,
			       size) == 0) {
		struct sw_gh_event ev = SW_GH_EVENT_INIT;
		if (sw_webhook_json_check(json.ptr, json.len) == 0)
			sw_webhook_parse(&ev, "push", json.ptr, json.len);
		sw_gh_event_release(&ev);
	}
	sw_buf_release(&json);
	return 0;
}
