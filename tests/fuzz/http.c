/*
 * http.c - fuzz target: the bytes of a connection through the request
 * scanner of httpd/conn.c (sw_scan_feed), which frames requests and
 * enforces the size limits before evhttp parses anything, and the same
 * bytes as an X-Forwarded-For value through sw_client_addr.
 *
 * Differential against itself: the input is fed whole and again in pieces
 * cut where its first bytes say; the requests found (where each ends) and
 * the limit or framing error (status and offset) must be the same however
 * the bytes arrive, since a client chooses how they are split. The limits
 * are small (1 KiB of headers, 256 bytes of target, 4 KiB of body) so that
 * the fuzzer reaches them. The client address must be the peer or a hop
 * that is itself an address. Seeds: seeds/http (pipelined, chunked, too
 * large, malformed).
 */
#include <arpa/inet.h>

#include "httpd/httpd-int.h"
#include "fuzz.h"
#include "lib/cidr.h"

#define EVENTS 512

struct events {
	size_t n;
	size_t at[EVENTS];   /* absolute offset after the event's bytes */
	int rc[EVENTS];      /* 1: a request ended; else an HTTP status */
};

/* Feed p[0..n) in pieces cut at cut[0..ncut) (ascending); record what ends. */
static void scan(const uint8_t *p, size_t n, const size_t *cut, size_t ncut, struct events *ev)
{
	struct sw_scan s;
	size_t from = 0;
	sw_scan_init(&s, 1024, 256, 4096);
	ev->n = 0;
	for (size_t k = 0; k <= ncut && from <= n; k++) {
		size_t to = k < ncut && cut[k] < n ? cut[k] : n;
		if (to < from)
			continue;
		while (from < to) {
			size_t used = 0;
			int rc = sw_scan_feed(&s, p + from, to - from, &used);
			if (used > to - from)
				abort();
			if (rc == 0) {
				if (used != to - from)
					abort();   /* 0 means all of it was taken */
				from = to;
				break;
			}
			if (ev->n < EVENTS) {
				ev->at[ev->n] = from + used;
				ev->rc[ev->n] = rc;
				ev->n++;
			}
			if (rc != 1)
				return;   /* an error ends the connection */
			if (used == 0)
				abort();   /* a request is at least one byte */
			from += used;
		}
	}
}

/* The same requests and the same error, at the same offsets, or abort. */
static void same(const struct events *a, const struct events *b)
{
	if (a->n != b->n)
		abort();
	for (size_t i = 0; i < a->n; i++)
		if (a->at[i] != b->at[i] || a->rc[i] != b->rc[i])
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct events whole, pieces;
	size_t cut[4] = { 0 }, ncut = 0;

	fuzz_init();
	/* the first 4 bytes choose where to cut the rest */
	size_t skip = size < 4 ? size : 4;
	const uint8_t *p = data + skip;
	size_t n = size - skip, last = 0;
	for (size_t i = 0; i < skip && n; i++) {
		size_t c = last + data[i] % (n / 4 + 2);
		if (c > n)
			c = n;
		cut[ncut++] = last = c;
	}
	scan(p, n, NULL, 0, &whole);
	scan(p, n, cut, ncut, &pieces);
	same(&whole, &pieces);
	/* one byte at a time: the slowest client */
	if (n <= 2048) {
		size_t *each = malloc((n + 1) * sizeof(*each));
		for (size_t i = 0; i < n; i++)
			each[i] = i + 1;
		scan(p, n, each, n, &pieces);
		free(each);
		same(&whole, &pieces);
	}

	/* the same bytes as X-Forwarded-For behind a trusted proxy */
	struct sw_cidr trusted[2];
	char *xff = malloc(size + 1), out[64];
	unsigned char a[16];
	int fam;
	memcpy(xff, data, size);
	xff[size] = 0;
	if (sw_cidr_parse(&trusted[0], "127.0.0.0/8") < 0 || sw_cidr_parse(&trusted[1], "::1") < 0)
		abort();
	sw_client_addr(out, sizeof(out), "127.0.0.1", xff, trusted, 2);
	if (!memchr(out, 0, sizeof(out)) ||
	    (strcmp(out, "127.0.0.1") && sw_cidr_addr_parse(a, &fam, out) < 0))
		abort();
	free(xff);
	return 0;
}
