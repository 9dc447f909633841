/*
 * execcred.c - fuzz target: an exec credential plugin's stdout (EKS: `aws
 * eks get-token`), parsed by sw_kube_exec_cred_parse() (kube/kube.c, through
 * kube-int.h) as an ExecCredential: kind, apiVersion, status.token or the
 * client certificate pair, and expirationTimestamp through
 * sw_parse_rfc3339(), which also gets the whole input as a timestamp. The
 * plugin is a program slipway runs; what it prints is not checked by anyone
 * else. Seeds: seeds/execcred.
 */
#include "fuzz.h"
#include "kube/kube-int.h"
#include "kube/kube.h"
#include "lib/clock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sw_kube_cred c;
	char *err = NULL, *text;
	int64_t ms;

	fuzz_init();
	if (sw_kube_exec_cred_parse(&c, (const char *)data, size,
				    "client.authentication.k8s.io/v1", &err) == 0) {
		free(c.bearer);
		free(c.cert_pem);
		free(c.key_pem);
	}
	free(err);
	text = strndup((const char *)data, size);
	if (text)
		sw_parse_rfc3339(text, &ms);
	free(text);
	return 0;
}
