/*
 * kubeapi - a Kubernetes-API-compatible test server (stands in for EKS in
 * slipway's tests, demo and benchmarks; kubectl 1.32 is the client it is
 * held against).
 *
 * Usage:
 *   kubeapi --listen 127.0.0.1:PORT [--tls-dir DIR] [--token TOKEN]
 *           [--latency-ms N] [--ready-delay-ms N] [--ready-after-reads N]
 *           [--hold-writes-after N] [--state-file F] [--kubeconfig-out F]
 *           [--event-ring N] [--bookmark-ms N] [--verbose]
 *
 *   --listen ADDR:PORT   where to listen; port 0 picks a free port. Once
 *                        ready, prints "listening on http(s)://ADDR:PORT".
 *   --tls-dir DIR        serve HTTPS. DIR gets (or keeps) ca.crt, ca.key,
 *                        server.crt/key (127.0.0.1, ::1, localhost) and
 *                        client.crt/key (CN=kubeapi-admin, O=system:masters),
 *                        plus DIR/kubeconfig once the port is known.
 *                        A client certificate signed by the CA authenticates.
 *   --token TOKEN        require "Authorization: Bearer TOKEN" (or, with TLS,
 *                        a valid client certificate); otherwise 401 Status.
 *                        /version and /healthz stay public.
 *   --latency-ms N       delay every request by N ms (a timer, never a sleep).
 *   --ready-delay-ms N   simulated controllers report workloads ready after
 *                        N ms (default 200).
 *   --ready-after-reads N  instead of after a time, once the object was read
 *                        (get or list) N times since it was written: the
 *                        number of health reads no longer depends on speed.
 *   --hold-writes-after N  answer the first N writes (POST/PUT/PATCH/DELETE);
 *                        hold every later one unanswered and print
 *                        "held METHOD URI" on stdout for each.
 *   --state-file F       load objects from F at start (if it exists) and save
 *                        them there on SIGTERM/SIGINT; state is otherwise
 *                        in memory only. Watches cannot resume across it.
 *   --kubeconfig-out F   also write a kubeconfig to F (useful for plain http).
 *   --event-ring N       events kept for watch resumption (default 10000);
 *                        older resourceVersions and continue tokens get 410.
 *   --bookmark-ms N      BOOKMARK period on watches that allow them (5000).
 *   --verbose            log each request to stderr.
 *   --eks-sts URL --eks-cluster NAME [--eks-token-life S]
 *                        also take EKS bearer tokens (k8s-aws-v1.): decoded,
 *                        the presigned URL must start with URL; it is GETted
 *                        with x-k8s-aws-id: NAME, as EKS's authenticator
 *                        does, and must answer 200 with an Arn; a token is
 *                        refused S seconds after its X-Amz-Date (default
 *                        900, EKS's 15 minutes). Checked once per token.
 *
 * SIGTERM and SIGINT exit 0.
 */
#include "tests/kubeapi/kubeapi.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

struct ka_settings ka_set = {
	.listen = NULL,
	.ready_delay_ms = 200,
	.hold_writes_after = -1,
	.event_ring = 10000,
	.bookmark_ms = 5000,
};
struct event_base *ka_base;

static SSL_CTX *ssl_ctx;

static void usage(FILE *f)
{
	fputs("usage: kubeapi --listen 127.0.0.1:PORT [--tls-dir DIR] [--token TOKEN]\n"
	      "               [--latency-ms N] [--ready-delay-ms N] [--ready-after-reads N]\n"
	      "               [--hold-writes-after N] [--state-file F]\n"
	      "               [--kubeconfig-out F] [--event-ring N] [--bookmark-ms N] [--verbose]\n"
	      "               [--eks-sts URL --eks-cluster NAME [--eks-token-life S]]\n"
	      "\n"
	      "A Kubernetes-API-compatible test server. Port 0 picks a free port; once\n"
	      "ready it prints \"listening on http(s)://ADDR:PORT\". --tls-dir DIR serves\n"
	      "HTTPS with a generated CA (DIR/ca.crt), server and client certificates and\n"
	      "writes DIR/kubeconfig. --token requires a bearer token or a client cert.\n"
	      "--latency-ms delays each request; --ready-delay-ms is how long simulated\n"
	      "controllers take to make workloads ready (default 200). The annotation\n"
	      "kubeapi.slipway.dev/never-ready: \"true\" keeps a workload from ever\n"
	      "becoming ready. --ready-after-reads N makes them ready once read N times\n"
	      "instead. --hold-writes-after N leaves the writes after the first N\n"
	      "unanswered, printing \"held METHOD URI\" for each. --state-file F loads objects from F at start and saves\n"
	      "them on SIGTERM. --kubeconfig-out F writes a kubeconfig (also for http).\n"
	      "--event-ring N bounds watch resumption (older resourceVersions get 410).\n"
	      "SIGTERM exits 0.\n", f);
}

static struct bufferevent *bevcb(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(ssl_ctx);
	return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE);
}

static int tls_setup(const char *dir)
{
	char crt[4096], key[4096], ca[4096];
	if (ka_tls_ensure(dir) < 0)
		return -1;
	snprintf(crt, sizeof(crt), "%s/server.crt", dir);
	snprintf(key, sizeof(key), "%s/server.key", dir);
	snprintf(ca, sizeof(ca), "%s/ca.crt", dir);
	ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (!ssl_ctx || SSL_CTX_use_certificate_chain_file(ssl_ctx, crt) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ssl_ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_load_verify_locations(ssl_ctx, ca, NULL) != 1) {
		ERR_print_errors_fp(stderr);
		return -1;
	}
	SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION);
	/* Ask for a client certificate from our CA, but do not require one:
	 * bearer tokens and anonymous clients are decided per request. */
	SSL_CTX_set_client_CA_list(ssl_ctx, SSL_load_client_CA_file(ca));
	SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_PEER, NULL);
	return 0;
}

static char *read_file_b64(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return ka_strdup("");
	char *data = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len + 4096 > cap)
			data = ka_realloc(data, cap = cap * 2 + 8192);
		size_t n = fread(data + len, 1, 4096, f);
		if (!n)
			break;
		len += n;
	}
	fclose(f);
	char *b = ka_base64(data, len);
	free(data);
	return b;
}

/*
 * A kubeconfig with one cluster and up to three users/contexts:
 * "kubeapi" (client certificate with TLS, else token or anonymous, the
 * current context), "kubeapi-token" (bearer token) when --token is set, and
 * "kubeapi-anonymous". Certificate data is embedded, so the file stands on
 * its own.
 */
static int write_kubeconfig(const char *path, const char *url)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		perror(path);
		return -1;
	}
	const char *dir = ka_set.tls_dir;
	char p[4096];
	fprintf(f, "apiVersion: v1\nkind: Config\nclusters:\n- name: kubeapi\n  cluster:\n    server: %s\n", url);
	if (dir) {
		snprintf(p, sizeof(p), "%s/ca.crt", dir);
		char *ca = read_file_b64(p);
		fprintf(f, "    certificate-authority-data: %s\n", ca);
		free(ca);
	}
	fprintf(f, "users:\n");
	if (dir) {
		snprintf(p, sizeof(p), "%s/client.crt", dir);
		char *c = read_file_b64(p);
		snprintf(p, sizeof(p), "%s/client.key", dir);
		char *k = read_file_b64(p);
		fprintf(f, "- name: kubeapi\n  user:\n    client-certificate-data: %s\n    client-key-data: %s\n", c, k);
		free(c);
		free(k);
	} else if (ka_set.token) {
		fprintf(f, "- name: kubeapi\n  user:\n    token: %s\n", ka_set.token);
	} else {
		fprintf(f, "- name: kubeapi\n  user: {}\n");
	}
	if (ka_set.token)
		fprintf(f, "- name: kubeapi-token\n  user:\n    token: %s\n", ka_set.token);
	fprintf(f, "- name: kubeapi-anonymous\n  user: {}\n");
	fprintf(f, "contexts:\n- name: kubeapi\n  context:\n    cluster: kubeapi\n    user: kubeapi\n    namespace: default\n");
	if (ka_set.token)
		fprintf(f, "- name: kubeapi-token\n  context:\n    cluster: kubeapi\n    user: kubeapi-token\n    namespace: default\n");
	fprintf(f, "- name: kubeapi-anonymous\n  context:\n    cluster: kubeapi\n    user: kubeapi-anonymous\n    namespace: default\n");
	fprintf(f, "current-context: kubeapi\n");
	fchmod(fileno(f), 0600);
	return fclose(f) == 0 ? 0 : -1;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopexit(ka_base, NULL);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"tls-dir", required_argument, NULL, 't'},
		{"token", required_argument, NULL, 'T'},
		{"latency-ms", required_argument, NULL, 'L'},
		{"ready-delay-ms", required_argument, NULL, 'r'},
		{"ready-after-reads", required_argument, NULL, 'R'},
		{"hold-writes-after", required_argument, NULL, 'H'},
		{"state-file", required_argument, NULL, 's'},
		{"kubeconfig-out", required_argument, NULL, 'k'},
		{"event-ring", required_argument, NULL, 'e'},
		{"bookmark-ms", required_argument, NULL, 'b'},
		{"verbose", no_argument, NULL, 'v'},
		{"eks-sts", required_argument, NULL, 'E'},
		{"eks-cluster", required_argument, NULL, 'C'},
		{"eks-token-life", required_argument, NULL, 'F'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
		switch (c) {
		case 'l': ka_set.listen = optarg; break;
		case 't': ka_set.tls_dir = optarg; break;
		case 'T': ka_set.token = optarg; break;
		case 'L': ka_set.latency_ms = atoi(optarg); break;
		case 'r': ka_set.ready_delay_ms = atoi(optarg); break;
		case 'R': ka_set.ready_after_reads = atoi(optarg); break;
		case 'H': ka_set.hold_writes_after = atoi(optarg); break;
		case 's': ka_set.state_file = optarg; break;
		case 'k': ka_set.kubeconfig_out = optarg; break;
		case 'e': ka_set.event_ring = atoi(optarg); break;
		case 'b': ka_set.bookmark_ms = atoi(optarg); break;
		case 'v': ka_set.verbose = 1; break;
		case 'E': ka_set.eks_sts = optarg; break;
		case 'C': ka_set.eks_cluster = optarg; break;
		case 'F': ka_set.eks_token_life_s = atoi(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!ka_set.listen || optind != argc) {
		usage(stderr);
		return 2;
	}

	char host[256];
	const char *colon = strrchr(ka_set.listen, ':');
	if (!colon || (size_t)(colon - ka_set.listen) >= sizeof(host)) {
		fprintf(stderr, "kubeapi: --listen wants ADDR:PORT\n");
		return 2;
	}
	memcpy(host, ka_set.listen, (size_t)(colon - ka_set.listen));
	host[colon - ka_set.listen] = 0;
	int port = atoi(colon + 1);

	signal(SIGPIPE, SIG_IGN);
	/* Benchmarks hold many connections and watches: use the hard limit. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	ka_base = event_base_new();
	if (!ka_base)
		return 1;
	if (ka_set.tls_dir && tls_setup(ka_set.tls_dir) < 0)
		return 1;

	struct evhttp *http = evhttp_new(ka_base);
	ka_http_setup(http);
	if (ssl_ctx)
		evhttp_set_bevcb(http, bevcb, NULL);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
	if (!bs) {
		fprintf(stderr, "kubeapi: cannot listen on %s: %s\n", ka_set.listen, strerror(errno));
		return 1;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl);
	if (ss.ss_family == AF_INET)
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	static char listen_buf[300];
	snprintf(listen_buf, sizeof(listen_buf), "%s:%d", host, port);
	ka_set.listen = listen_buf;

	ka_store_init();
	if (ka_set.state_file && access(ka_set.state_file, R_OK) == 0 && ka_state_load(ka_set.state_file) < 0)
		return 1;

	char url[400];
	snprintf(url, sizeof(url), "%s://%s%s%s:%d", ssl_ctx ? "https" : "http",
	    strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);
	if (ka_set.tls_dir) {
		char p[4096];
		snprintf(p, sizeof(p), "%s/kubeconfig", ka_set.tls_dir);
		if (write_kubeconfig(p, url) < 0)
			return 1;
	}
	if (ka_set.kubeconfig_out && write_kubeconfig(ka_set.kubeconfig_out, url) < 0)
		return 1;

	struct event *sigterm = evsignal_new(ka_base, SIGTERM, on_signal, NULL);
	struct event *sigint = evsignal_new(ka_base, SIGINT, on_signal, NULL);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);

	printf("listening on %s\n", url);
	fflush(stdout);
	event_base_dispatch(ka_base);

	if (ka_set.state_file && ka_state_save(ka_set.state_file) < 0)
		return 1;
	event_free(sigterm);
	event_free(sigint);
	evhttp_free(http);
	if (ssl_ctx)
		SSL_CTX_free(ssl_ctx);
	/* Objects and types live until exit; the OS reclaims them. */
	return 0;
}
