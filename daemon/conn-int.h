/*
 * conn-int.h - what one client may hold (issue 11, defect 3): every
 * accepted connection passes through a filter that follows the framing of
 * its requests as the bytes arrive, before evhttp parses them, and
 *  - answers 414 / 431 / 413 in the API's JSON error shape when the request
 *    target, the request line and headers, or the body are too large, as
 *    soon as the limit is crossed (nothing beyond it is buffered);
 *  - closes a connection whose request has not arrived whole (headers and
 *    body) within server.read_timeout of its first byte, or of the accept
 *    for the first request, whatever the client trickles meanwhile (408);
 *  - keeps at most server.max_connections open: at the cap the connection
 *    idle longest (keep-alive between requests, or still sending headers)
 *    is closed for the new one, else the new one gets 503;
 *  - pauses accepting for ACCEPT_PAUSE_MS when accept() fails (EMFILE,
 *    ENFILE), with one log line per episode, and frees a descriptor by
 *    closing the longest-idle connection.
 *
 * Also here: which address a request comes from (the peer, or behind a
 * trusted proxy the last untrusted hop of X-Forwarded-For), for the
 * per-client limits of daemon/auth.c.
 */
#ifndef SW_DAEMON_CONN_H
#define SW_DAEMON_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/daemon.h"
#include "lib/cidr.h"

/* The largest request body (GitHub caps webhook payloads at 25 MB). */
#define SW_MAX_BODY (25 * 1024 * 1024)

/* --- the request scanner (pure; unit-tested) ------------------------------ */

/*
 * Follows HTTP/1.1 request framing: optional empty lines, the request
 * line, header lines up to an empty one, then a body of Content-Length
 * bytes or chunks (Transfer-Encoding: chunked wins over Content-Length, as
 * in evhttp) and trailers. It only counts and frames; evhttp still parses.
 */
struct sw_scan {
	int state;
	int64_t max_header, max_uri, max_body;
	int64_t header_bytes;    /* of the request line and headers (and trailers) */
	int64_t uri_bytes;       /* of the request target so far */
	int spaces;              /* on the request line */
	int64_t content_length;  /* -1: none */
	int chunked;
	int64_t left;            /* bytes of the body or the chunk still to come */
	int64_t body;            /* body bytes so far */
	char line[128];          /* the start of the current header or chunk line */
	size_t line_len;         /* bytes of the current line (may exceed `line`) */
	int in_request;          /* a request has begun and not ended */
};

void sw_scan_init(struct sw_scan *s, int64_t max_header, int64_t max_uri, int64_t max_body);

/*
 * Scan `n` bytes. Returns 0 when all were taken and the request goes on
 * (or none has begun), 1 when a request ended after the first *used bytes
 * (call again with the rest), or an HTTP status when the request breaks a
 * limit or its framing: 414 target, 431 line and headers, 413 body, 400
 * malformed framing; *used is then the bytes before the offending one.
 */
int sw_scan_feed(struct sw_scan *s, const unsigned char *p, size_t n, size_t *used);

/* --- the connections ---------------------------------------------------- */

struct sw_conns;

/* The set of `d`'s connections, installed on d->http and d->listener (TLS
 * under the filter when d->ssl). */
int sw_conns_new(struct sw_conns **out, struct sw_daemon *d);
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
 * that is not an address stops the walk at the hop read before it. Written to `out` (`n` bytes).
 */
void sw_client_addr(char *out, size_t n, const char *peer, const char *xff,
		    const struct sw_cidr *trusted, size_t ntrusted);

/* The same for a request of `d` (server.trusted_proxies). */
void sw_request_client(char *out, size_t n, struct sw_daemon *d, struct evhttp_request *req);

#endif
