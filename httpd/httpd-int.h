/*
 * httpd-int.h - the request scanner the connections' filter runs (pure;
 * unit-tested and fuzzed).
 */
#ifndef SW_HTTPD_INT_H
#define SW_HTTPD_INT_H

#include "httpd/httpd.h"

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

#endif
