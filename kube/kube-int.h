/*
 * kube-int.h - private to kube/ (and tests/): the parsers of what the
 * client reads from outside, exposed so that tests/fuzz can feed them.
 */
#ifndef SW_KUBE_INT_H
#define SW_KUBE_INT_H

#include <stddef.h>
#include <stdint.h>

/* A credential an exec plugin printed; the strings are owned (or NULL). */
struct sw_kube_cred {
	char *bearer;                /* status.token */
	char *cert_pem, *key_pem;    /* status.clientCertificateData / clientKeyData */
	int64_t expiry_ms;           /* status.expirationTimestamp, 0 when none */
};

/*
 * Parse an exec plugin's stdout, text[0..len), as an ExecCredential of
 * `api_version`. Returns 0 with *out filled (the caller frees its strings),
 * or SW_ERR with a new message in *err ("output is not JSON: ...",
 * "ExecCredential has only one of clientCertificateData and clientKeyData").
 */
int sw_kube_exec_cred_parse(struct sw_kube_cred *out, const char *text, size_t len,
			    const char *api_version, char **err);

/*
 * Cut every "managedFields" member out of the JSON text p[0..n), in place
 * (list and apply answers are parsed without them); returns the new length.
 * Valid JSON stays valid JSON.
 */
size_t sw_kube_strip_managed_fields(char *p, size_t n);

#endif
