/*
 * tlsgen.c - a throwaway PKI for the test API server: a CA, a server
 * certificate for 127.0.0.1 / ::1 / localhost, and a client certificate
 * (CN=kubeapi-admin, O=system:masters) that the server accepts as an
 * authenticated user. ECDSA P-256 keys, written as PEM files into DIR:
 * ca.crt ca.key server.crt server.key client.crt client.key. Existing files
 * are reused, so a restarted server keeps the identity clients trust.
 */
#include "tests/kubeapi/kubeapi.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

static void ssl_err(const char *what)
{
	unsigned long e = ERR_get_error();
	char b[256];
	ERR_error_string_n(e, b, sizeof(b));
	fprintf(stderr, "kubeapi: tls %s: %s\n", what, b);
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ex)
		return -1;
	int r = X509_add_ext(cert, ex, -1) ? 0 : -1;
	X509_EXTENSION_free(ex);
	return r;
}

/* Issue a certificate for key `pk`; issuer NULL means self-signed. */
static X509 *issue(EVP_PKEY *pk, const char *cn, const char *org, X509 *issuer, EVP_PKEY *ikey,
    const char *const *exts)
{
	X509 *c = X509_new();
	unsigned char serial[16];
	BIGNUM *bn = NULL;
	if (!c)
		return NULL;
	X509_set_version(c, 2);
	RAND_bytes(serial, sizeof(serial));
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c));
	BN_free(bn);
	X509_gmtime_adj(X509_getm_notBefore(c), -3600);
	X509_gmtime_adj(X509_getm_notAfter(c), 60L * 60 * 24 * 365);
	X509_set_pubkey(c, pk);
	X509_NAME *n = X509_get_subject_name(c);
	if (org)
		X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)org, -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : n);
	for (; exts && exts[0]; exts += 2) {
		int nid = OBJ_txt2nid(exts[0]);
		if (add_ext(c, issuer ? issuer : c, nid, exts[1]) < 0) {
			X509_free(c);
			return NULL;
		}
	}
	if (!X509_sign(c, ikey ? ikey : pk, EVP_sha256())) {
		X509_free(c);
		return NULL;
	}
	return c;
}

static int write_pem(const char *dir, const char *name, X509 *c, EVP_PKEY *k)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		return -1;
	}
	int ok = c ? PEM_write_X509(f, c) : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	if (!c)
		fchmod(fileno(f), 0600);
	fclose(f);
	return ok ? 0 : -1;
}

static bool exists(const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, R_OK) == 0;
}

int ka_tls_ensure(const char *dir)
{
	static const char *const ca_ext[] = {"basicConstraints", "critical,CA:TRUE",
	    "keyUsage", "critical,keyCertSign,cRLSign,digitalSignature",
	    "subjectKeyIdentifier", "hash", NULL};
	static const char *const srv_ext[] = {"basicConstraints", "critical,CA:FALSE",
	    "keyUsage", "critical,digitalSignature,keyEncipherment", "extendedKeyUsage", "serverAuth",
	    "subjectAltName", "IP:127.0.0.1,IP:::1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default",
	    "authorityKeyIdentifier", "keyid", NULL};
	static const char *const cli_ext[] = {"basicConstraints", "critical,CA:FALSE",
	    "keyUsage", "critical,digitalSignature,keyEncipherment", "extendedKeyUsage", "clientAuth",
	    "authorityKeyIdentifier", "keyid", NULL};
	int rc = -1;
	EVP_PKEY *cak = NULL, *sk = NULL, *ck = NULL;
	X509 *ca = NULL, *sc = NULL, *cc = NULL;

	mkdir(dir, 0700);
	if (exists(dir, "ca.crt") && exists(dir, "server.crt") && exists(dir, "server.key") &&
	    exists(dir, "client.crt") && exists(dir, "client.key"))
		return 0;
	cak = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	sk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ck = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!cak || !sk || !ck) {
		ssl_err("keygen");
		goto done;
	}
	if (!(ca = issue(cak, "kubeapi-ca", NULL, NULL, NULL, ca_ext)) ||
	    !(sc = issue(sk, "kubeapi", NULL, ca, cak, srv_ext)) ||
	    !(cc = issue(ck, "kubeapi-admin", "system:masters", ca, cak, cli_ext))) {
		ssl_err("issue");
		goto done;
	}
	if (write_pem(dir, "ca.crt", ca, NULL) || write_pem(dir, "ca.key", NULL, cak) ||
	    write_pem(dir, "server.crt", sc, NULL) || write_pem(dir, "server.key", NULL, sk) ||
	    write_pem(dir, "client.crt", cc, NULL) || write_pem(dir, "client.key", NULL, ck))
		goto done;
	rc = 0;
done:
	X509_free(ca);
	X509_free(sc);
	X509_free(cc);
	EVP_PKEY_free(cak);
	EVP_PKEY_free(sk);
	EVP_PKEY_free(ck);
	return rc;
}
