/*
 * http.h - asynchronous HTTP client: one libcurl multi handle driven by the
 * daemon's libevent loop (after curl's docs/examples/hiperfifo.c).
 *
 * Every outbound request of the daemon (GitHub, Slack, the Docker Engine API
 * over its unix socket, the Kubernetes API and its watch streams) goes
 * through one struct sw_http. Nothing here blocks: sw_http_start() queues a
 * transfer and returns; the loop runs it; a callback reports the outcome.
 *
 *     struct sw_http_opts o = SW_HTTP_OPTS_INIT;
 *     o.url = "http://d/v1.41/containers/json";
 *     o.unix_socket = "/var/run/docker.sock";
 *     o.on_done = listed;
 *     o.arg = ctx;
 *     if (sw_http_start(h, &o, &ctx->call) < 0)
 *             log_warn("docker.list", "err=%s", sw_q(sw_error_last()));
 *
 * Connections: the multi handle keeps a connection cache, so consecutive
 * requests to the same host (or the same unix socket) reuse one HTTP/1.1
 * keep-alive connection; many requests may be in flight at once, each on its
 * own connection (HTTPS peers may negotiate HTTP/2 through ALPN, which curl
 * then multiplexes).
 *
 * Threads: a struct sw_http and its calls belong to the thread running its
 * event_base; no function here may be called from another thread.
 */
#ifndef SW_HTTP_H
#define SW_HTTP_H

#include <stddef.h>

#include "lib/buf.h"
#include "lib/error.h"

struct event_base;
struct sw_http;
struct sw_http_call;

/* Default maximum for a buffered response body (opts.max_response == 0). */
#define SW_HTTP_MAX_RESPONSE_DEFAULT (64u * 1024 * 1024)
/* Maximum for all response header lines of one response together. */
#define SW_HTTP_MAX_HEADERS (64u * 1024)

/*
 * What on_done receives. Valid only during the on_done call, except `body`,
 * whose memory on_done may take (sw_buf_detach() or a struct swap); whatever
 * is left in it is freed after on_done returns.
 */
struct sw_http_result {
	/*
	 * 0: a whole response arrived; `status` holds its code, whatever it is
	 *    (a 404 or 500 is not an error at this level).
	 * SW_ERR: the transfer failed (connect, TLS, timeout, peer closed early);
	 *    `error_msg` says why, `timed_out` tells a timeout apart.
	 * SW_EINVALID: the response was larger than opts.max_response (or its
	 *    headers larger than SW_HTTP_MAX_HEADERS); the transfer was stopped.
	 * SW_ECANCELLED: on_data asked to stop.
	 */
	int error;
	/* "" when error == 0, else a message such as
	 * "GET http://x/y: Couldn't connect to server: Connection refused". */
	const char *error_msg;
	/* Set when the transfer hit opts.timeout_ms or the connect timeout. */
	int timed_out;
	/* HTTP status of the final response; 0 when none arrived. */
	long status;
	/*
	 * The response body. Never NULL. With on_data set, a 2xx body went to
	 * on_data and this is empty; a non-2xx body is collected here instead
	 * (so the caller can read the peer's error message).
	 */
	struct sw_buf *body;
	/* Total time of the transfer in milliseconds. */
	double total_ms;
	struct sw_http_call *call; /* private: for sw_http_result_header() */
};

/*
 * Streaming callback: `n` bytes of a 2xx response body as they arrive, in
 * order (possibly in many small pieces; a chunked encoding is already
 * undone). Return 0 to go on, non-zero to stop the transfer: on_done then
 * follows with error SW_ECANCELLED. May start new requests and cancel other
 * calls; may cancel its own call (on_done is then not called).
 */
typedef int (*sw_http_data_fn)(const char *p, size_t n, void *arg);

/*
 * Called once when the headers of the final response are in (before any of
 * its body), with its status: for a stream (a watch, a container attach)
 * this says the peer accepted it. Same rules as on_data; its return value
 * likewise stops the transfer when non-zero.
 */
typedef int (*sw_http_response_fn)(long status, void *arg);

/*
 * Completion callback, called exactly once per started call unless the call
 * was cancelled with sw_http_cancel() or the client freed first. The call
 * handle is freed right after it returns. May start new requests and cancel
 * other calls; must not free the client.
 */
typedef void (*sw_http_done_fn)(struct sw_http_result *r, void *arg);

/*
 * One request. Strings and blobs are copied by sw_http_start(): the caller
 * may free them as soon as it returns. Zero/NULL fields mean "not set".
 */
struct sw_http_opts {
	/* "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", ...; NULL means GET,
	 * or POST when body is set. */
	const char *method;
	const char *url;                 /* required; any host for unix_socket */
	/* Shown in error messages and logs instead of `url`, for URLs that
	 * carry a secret (a Slack webhook URL, a token in the query). */
	const char *display_url;
	/* NULL-terminated array of "Name: value" lines. "Expect:" is sent by
	 * default so curl never waits for a 100 Continue. */
	const char *const *headers;
	/* Request body, copied. With body == NULL and a method such as POST an
	 * empty body is sent (Content-Length: 0). */
	const void *body;
	size_t body_len;
	/* Connect through this AF_UNIX socket (Docker, Podman) instead of TCP. */
	const char *unix_socket;
	long timeout_ms;                 /* whole transfer; 0 = no limit */
	long connect_timeout_ms;         /* 0 = 10 s */
	size_t max_response;             /* buffered body limit; 0 = default */
	long stall_secs;                 /* stop below 1 byte/s for this long; 0 = never */
	int follow_redirects;            /* up to 5 */

	/* TLS. PEM data takes precedence over the file of the same kind. */
	const char *ca_file;             /* CA bundle to verify the peer */
	const char *ca_pem;              /* CA bundle as PEM text */
	const char *cert_file;           /* client certificate (PEM) */
	const char *cert_pem;
	const char *key_file;            /* client private key (PEM) */
	const char *key_pem;
	int insecure;                    /* skip peer and host verification */
	/* Verify the peer's certificate against (and send SNI for) this name
	 * instead of the URL's host (kubeconfig tls-server-name). Done by
	 * rewriting the URL host and connecting to the original host with
	 * CURLOPT_CONNECT_TO, so the Host header carries this name too. */
	const char *tls_server_name;

	sw_http_response_fn on_response; /* optional, see above */
	sw_http_data_fn on_data;         /* optional, see above */
	sw_http_done_fn on_done;         /* optional, see above */
	void *arg;                       /* passed to both */
};

#define SW_HTTP_OPTS_INIT { 0 }

/*
 * Create a client on `base`. Returns 0 and sets *out, or <0 with the error
 * slot set. The base must outlive the client.
 */
int sw_http_new(struct sw_http **out, struct event_base *base);

/*
 * Cancel every call still in flight WITHOUT calling their callbacks, close
 * all connections and free the client. NULL is a no-op. Must not be called
 * from inside one of this client's callbacks.
 */
void sw_http_free(struct sw_http *h);

/*
 * Start a request. Returns 0 and, when `out` is not NULL, sets *out to the
 * call handle, valid until on_done returns or sw_http_cancel() is called on
 * it. Returns <0 with the error slot set (bad options) and then calls
 * nothing. Never calls a callback before returning: even a request that
 * fails at once reports through on_done from the loop.
 */
int sw_http_start(struct sw_http *h, const struct sw_http_opts *opts,
		  struct sw_http_call **out);

/*
 * Stop a call in flight. Its callbacks are NOT called afterwards (not even
 * on_done), and the handle is invalid once this returns. NULL is a no-op.
 * Safe from any of this client's callbacks, including the call's own on_data.
 */
void sw_http_cancel(struct sw_http_call *call);

/*
 * The value of response header `name` (case-insensitive) of the final
 * response, e.g. "retry-after", "x-ratelimit-remaining", "content-type";
 * NULL when absent. With several, the first. Valid during on_done.
 */
const char *sw_http_result_header(const struct sw_http_result *r, const char *name);

/*
 * The blocking form, for worker threads and the command line (never the
 * loop): the request of `opts` runs in the calling thread, on_response and
 * on_data work as above, on_done is not used; what on_done would have been
 * told lands in *out. 0 when a whole response arrived (out->status holds
 * its code, whatever it is), else the error of sw_http_result with the
 * message in the error slot. Release *out either way.
 */
struct sw_http_reply {
	int error;
	int timed_out;
	long status;
	struct sw_buf body;      /* the buffered body (a non-2xx one with on_data) */
};
int sw_http_fetch(const struct sw_http_opts *opts, struct sw_http_reply *out);
void sw_http_reply_release(struct sw_http_reply *r);

/* Calls in flight on `h` (for tests and metrics). */
size_t sw_http_pending(const struct sw_http *h);

/*
 * Percent-encode `s` for a URL query value or path segment (RFC 3986
 * unreserved characters are kept) and append it to `b`.
 */
void sw_http_escape(struct sw_buf *b, const char *s);

#endif
