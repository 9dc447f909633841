/*
 * test_conn.c - httpd/: the request scanner frames requests
 * as evhttp does (request line, headers, Content-Length or chunked bodies,
 * trailers, pipelining, bytes split anywhere) and stops at the byte that
 * crosses a limit with the status to answer; the client address is the
 * peer unless a trusted proxy forwarded the request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd/httpd-int.h"

#define HDR 1024
#define URI 64
#define BODY 100

/* Feed `text` in pieces of `step` bytes; the number of requests that ended,
 * or minus the status of the first error (with *at its offset). */
static int feed(const char *text, size_t step, size_t *at)
{
	struct sw_scan s;
	size_t n = strlen(text), off = 0;
	int done = 0;
	sw_scan_init(&s, HDR, URI, BODY);
	while (off < n) {
		size_t len = n - off < step ? n - off : step, used = 0;
		int rc = sw_scan_feed(&s, (const unsigned char *)text + off, len, &used);
		assert_true(used <= len);
		off += used;
		if (rc == 1) {
			done++;
			continue;
		}
		if (rc) {
			if (at)
				*at = off;
			return -rc;
		}
	}
	return s.in_request ? -1 : done;   /* -1: a request is unfinished */
}

static void each_step(const char *text, int want)
{
	for (size_t step = 1; step <= strlen(text); step++) {
		int got = feed(text, step, NULL);
		if (got != want)
			fail_msg("step %zu: got %d, want %d for %s", step, got, want, text);
	}
}

static void test_framing(void **state)
{
	each_step("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1);
	each_step("\r\nGET / HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n", 2);   /* pipelined */
	each_step("POST /h HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n", 2);
	each_step("POST /h HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		  "5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nTrail: 1\r\n\r\n", 1);
	/* chunked wins over Content-Length */
	each_step("POST /h HTTP/1.1\r\nContent-Length: 3\r\ntransfer-encoding: Chunked\r\n\r\n"
		  "0\r\n\r\n", 1);
	/* bare \n line ends work too */
	each_step("GET / HTTP/1.1\nHost: x\n\n", 1);
	assert_int_equal(feed("GET / HTTP/1.1\r\nHost: x\r\n", 100, NULL), -1);
	assert_int_equal(feed("POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc", 100, NULL), -1);
}

static void test_limits(void **state)
{
	char buf[4096];
	size_t at = 0;
	/* a target of URI bytes passes, one more is 414 at that byte */
	snprintf(buf, sizeof(buf), "GET /%.*s HTTP/1.1\r\n\r\n", URI - 1,
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(feed(buf, 7, NULL), 1);
	snprintf(buf, sizeof(buf), "GET /%.*s HTTP/1.1\r\n\r\n", URI,
		 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_int_equal(feed(buf, 7, &at), -414);
	assert_int_equal(at, 4 + URI);
	/* headers: 431 at the first byte beyond HDR */
	memset(buf, 0, sizeof(buf));
	strcpy(buf, "GET / HTTP/1.1\r\nX: ");
	memset(buf + strlen(buf), 'b', HDR);
	assert_int_equal(feed(buf, 13, &at), -431);
	assert_int_equal(at, HDR);
	/* trailers count as headers */
	memset(buf, 0, sizeof(buf));
	strcpy(buf, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: ");
	memset(buf + strlen(buf), 'c', HDR);
	assert_int_equal(feed(buf, 100, NULL), -431);
	/* bodies: by Content-Length before any of it arrives, or by chunks */
	assert_int_equal(feed("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n", 5, NULL), -1);
	assert_int_equal(feed("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 5, &at), -413);
	assert_int_equal(at, strlen("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r"));
	assert_int_equal(feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			      "40\r\n", 5, NULL), -1);
	assert_int_equal(feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			      "40\r\n", 5, NULL), -1);
	char chunks[400];
	snprintf(chunks, sizeof(chunks), "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "32\r\n%050d\r\n33\r\n", 0);
	assert_int_equal(feed(chunks, 9, NULL), -413);
}

static void test_malformed(void **state)
{
	assert_int_equal(feed("POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 100, NULL), -400);
	assert_int_equal(feed("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
			      100, NULL), -400);
	assert_int_equal(feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 100,
			      NULL), -400);
	assert_int_equal(feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			      "1\r\nab\r\n", 100, NULL), -400);   /* data longer than its size */
	assert_int_equal(feed("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			      "fffffffffffffffffff\r\n", 100, NULL), -400);
}

static void client(const char *want, const char *peer, const char *xff)
{
	struct sw_cidr t[2];
	char out[64];
	assert_int_equal(sw_cidr_parse(&t[0], "10.0.0.0/8"), 0);
	assert_int_equal(sw_cidr_parse(&t[1], "::1"), 0);
	sw_client_addr(out, sizeof(out), peer, xff, t, 2);
	if (strcmp(out, want))
		fail_msg("peer %s xff %s: got %s, want %s", peer, xff ? xff : "-", out, want);
}

static void test_client_addr(void **state)
{
	client("203.0.113.5", "203.0.113.5", "1.2.3.4");          /* untrusted peer: ignored */
	client("1.2.3.4", "10.0.0.1", "1.2.3.4");
	client("198.51.100.7", "10.0.0.1", "1.2.3.4, 198.51.100.7"); /* the last untrusted hop */
	client("198.51.100.7", "10.0.0.1", "1.2.3.4,198.51.100.7 , 10.9.9.9");
	client("10.1.1.1", "10.0.0.1", "10.1.1.1, 10.2.2.2");      /* all trusted: leftmost */
	client("10.0.0.1", "10.0.0.1", NULL);
	client("10.2.2.2", "10.0.0.1", "junk, 10.2.2.2");          /* stops at what it cannot read */
	client("2001:db8::9", "::1", "2001:db8::9");
	client("-", NULL, "1.2.3.4");
	struct sw_cidr none;
	char out[64];
	sw_client_addr(out, sizeof(out), "10.0.0.1", "1.2.3.4", &none, 0);
	assert_string_equal(out, "10.0.0.1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_framing),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_client_addr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
