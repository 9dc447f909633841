/*
 * httpd.h - the HTTP front: what one client of the daemon's HTTP server may
 * send, hold and try, between the sockets and evhttp's routes (daemon/).
 * It knows no routes, no configuration file and no daemon, only the limits
 * it is given; it calls lib/ (and libevent, OpenSSL).
 *
 * The connections (conn.c, issue 11, defect 3). Every accepted connection
 * passes through a filter that follows the framing of its requests as the
 * bytes arrive, before evhttp parses them, and
 *  - answers 414 / 431 / 413 in the API's JSON error shape when the request
 *    target, the request line and headers, or the body are too large, as
 *    soon as the limit is crossed (nothing beyond it is buffered);
 *  - closes a connection whose request has not arrived whole (headers and
 *    body) within read_timeout_s of its first byte, or of the accept for
 *    the first request, whatever the client trickles meanwhile (408);
 *  - keeps at most max_connections open: at the cap the connection idle
 *    longest (keep-alive between requests, or still sending headers) is
 *    closed for the new one, else the new one gets 503;
 *  - pauses accepting for a moment when accept() fails (EMFILE, ENFILE),
 *    with one log line per episode, and frees a descriptor by closing the
 *    longest-idle connection.
 *
 *     struct sw_conns_opts o = SW_CONNS_OPTS_INIT;
 *     o.base = base; o.http = http; o.listener = bound; o.ssl = ctx_or_null;
 *     o.limits.max_header = cfg->max_header_size; ...
 *     sw_conns_new(&cs, &o);
 *     ...                                  // in each route's handler:
 *     sw_conns_request(cs, req);
 *     ...                                  // on reload:
 *     sw_conns_limits(cs, &limits);
 *
 * The client's address (conn.c): the peer, or behind a trusted proxy the
 * last untrusted hop of X-Forwarded-For.
 *
 * Failures per client (limit.c, issue 11, defect 9), in fixed windows: what
 * /login and bearer tokens use, so one client's wrong guesses lock out that
 * client, not everyone.
 *
 *     sw_limiter_new(&l, 20, 60000, 4096);   // 20 failures a minute each
 *     if ((wait = sw_limiter_check(l, key, now)) > 0) ... 429, Retry-After
 *     ...
 *     sw_limiter_fail(l, key, now);          // after a wrong guess
 *
 * The table holds at most `max_keys` clients; when it is full, expired
 * windows go first, then the window that started longest ago (a client
 * evicted that way starts again from zero: the table's size is what keeps
 * memory bounded under a flood of addresses). IPv6 clients are counted per
 * /64 (sw_limiter_key), the block one host is usually given.
 */
#ifndef SW_HTTPD_H
#define SW_HTTPD_H

#include <event2/http.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/cidr.h"

/* --- the connections ---------------------------------------------------- */

struct sw_conns;

/* The largest request body (GitHub caps webhook payloads at 25 MB). */
#define SW_MAX_BODY (25 * 1024 * 1024)

/* What one client may send and hold (the daemon's server.* settings). */
struct sw_conns_limits {
	int64_t max_header;      /* request line and headers, bytes: more gets 431 */
	int64_t max_uri;         /* the request target, bytes: more gets 414 */
	int64_t max_body;        /* bytes: more gets 413 */
	int64_t read_timeout_s;  /* a request arrives whole within it, else 408 */
	int max_connections;     /* open at once; 0 = derived from RLIMIT_NOFILE */
};

struct sw_conns_opts {
	struct event_base *base;
	struct evhttp *http;                   /* the connections it makes */
	struct evhttp_bound_socket *listener;  /* NULL: no accept-error handling */
	SSL_CTX *ssl;                          /* NULL: plain HTTP */
	struct sw_conns_limits limits;
};
#define SW_CONNS_OPTS_INIT { NULL, NULL, NULL, NULL, { 64 * 1024, 8 * 1024, SW_MAX_BODY, 10, 0 } }

/* Install the connection set on o->http (TLS under the filter when o->ssl). */
int sw_conns_new(struct sw_conns **out, const struct sw_conns_opts *o);
/* New limits (a reload): connections accepted from now on get them; the cap
 * holds at once. */
void sw_conns_limits(struct sw_conns *cs, const struct sw_conns_limits *lim);
/* After evhttp_free (which frees the connections). NULL is a no-op. */
void sw_conns_free(struct sw_conns *cs);
/* Stop handling accept errors (the listener is going away). */
void sw_conns_unlisten(struct sw_conns *cs);

/* A handler got `req`: its connection is busy until the answer is sent. */
void sw_conns_request(struct sw_conns *cs, struct evhttp_request *req);

/* Numbers for /metrics and the log. */
struct sw_conns_stats {
	size_t open;             /* counted against the cap */
	int max;                 /* the cap in force */
	uint64_t evicted, refused, timed_out, too_large, accept_pauses;
};
void sw_conns_stats(const struct sw_conns *cs, struct sw_conns_stats *out);

/* --- the client's address ------------------------------------------------ */

/*
 * The address a request comes from: `peer` unless it is in `trusted`, then
 * X-Forwarded-For read from the right, the first hop not in `trusted`
 * (the leftmost when all are). The peer when the header is missing; a hop
 * that is not an address stops the walk at the hop read before it.
 * Written to `out` (`n` bytes).
 */
void sw_client_addr(char *out, size_t n, const char *peer, const char *xff,
		    const struct sw_cidr *trusted, size_t ntrusted);

/* The same for `req`. */
void sw_request_client(char *out, size_t n, struct evhttp_request *req,
		       const struct sw_cidr *trusted, size_t ntrusted);

/* --- failures per client ------------------------------------------------- */

struct sw_limiter;

void sw_limiter_new(struct sw_limiter **out, int max_fails, int64_t window_ms, size_t max_keys);
void sw_limiter_free(struct sw_limiter *l);   /* NULL is a no-op */

/* 0 when `key` may try now, else the milliseconds until it may (> 0). */
int64_t sw_limiter_check(struct sw_limiter *l, const char *key, int64_t now_ms);
/* Count a failure of `key`. */
void sw_limiter_fail(struct sw_limiter *l, const char *key, int64_t now_ms);
/* Clients with a window open (for tests and /metrics). */
size_t sw_limiter_size(const struct sw_limiter *l);

/* The key for an address: IPv4 as a.b.c.d (also when written ::ffff:a.b.c.d),
 * IPv6 as its /64 ("2001:db8:1:2::/64"), anything else as given. */
void sw_limiter_key(char *out, size_t n, const char *addr);

#endif
