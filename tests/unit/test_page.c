/*
 * test_page.c - the status page's text transforms against hostile input:
 * HTML escaping, ANSI colours to spans (everything else dropped, never
 * shown), pieces split anywhere, times and durations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "daemon/page-html-int.h"

static char *esc(const char *s)
{
	struct sw_buf b = SW_BUF_INIT;
	sw_html_esc(&b, s);
	return sw_buf_detach(&b, NULL);
}

static char *ansi(const char *s)
{
	struct sw_buf b = SW_BUF_INIT;
	sw_ansi_to_html(s, strlen(s), &b);
	return sw_buf_detach(&b, NULL);
}

/* Feed `s` in pieces of `step` bytes, concatenating the output. */
static char *ansi_split(const char *s, size_t step)
{
	struct sw_buf b = SW_BUF_INIT;
	struct sw_ansi a = SW_ANSI_INIT;
	size_t len = strlen(s);
	for (size_t i = 0; i < len; i += step)
		sw_ansi_feed(&a, s + i, len - i < step ? len - i : step, &b);
	sw_ansi_finish(&a, &b);
	return sw_buf_detach(&b, NULL);
}

#define EXPECT(fn, in, want) do { \
	char *got_ = fn(in); \
	assert_string_equal(got_, want); \
	free(got_); \
} while (0)

/* No raw '<', '>', quote or control byte may reach the page. */
static void assert_inert(const char *html)
{
	for (const char *p = html; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == 0x1b || (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
			fail_msg("control byte 0x%02x in \"%s\"", c, html);
	}
	/* every '<' starts one of our own tags */
	for (const char *p = strchr(html, '<'); p; p = strchr(p + 1, '<'))
		if (strncmp(p, "<span class=\"", 13) && strncmp(p, "</span>", 7))
			fail_msg("stray tag at \"%.20s\" in \"%s\"", p, html);
}

static void test_escape(void **state)
{
	EXPECT(esc, "<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;");
	EXPECT(esc, "a & b \"c\" 'd'", "a &amp; b &quot;c&quot; &#39;d&#39;");
	EXPECT(esc, "\" onmouseover=\"x", "&quot; onmouseover=&quot;x");
	EXPECT(esc, "tab\tnl\nbell\a esc\x1b[31m del\x7f", "tab\tnl\nbell esc[31m del");
	EXPECT(esc, "héllo ✓", "héllo ✓");
	EXPECT(esc, "", "");
	char *e = esc(NULL);
	assert_string_equal(e, "");
	free(e);
	/* embedded NULs are dropped, the rest is kept */
	struct sw_buf b = SW_BUF_INIT;
	sw_html_escn(&b, "a\0<b", 4);
	assert_string_equal(b.ptr, "a&lt;b");
	sw_buf_release(&b);
}

static void test_url_escape(void **state)
{
	struct sw_buf b = SW_BUF_INIT;
	sw_url_esc(&b, "feat/x y&z\"<");
	assert_string_equal(b.ptr, "feat%2Fx%20y%26z%22%3C");
	sw_buf_release(&b);
}

static void test_ansi_colours(void **state)
{
	EXPECT(ansi, "plain", "plain");
	EXPECT(ansi, "\x1b[31mred\x1b[0m ok", "<span class=\"f1\">red</span> ok");
	EXPECT(ansi, "\x1b[1;32mbold green\x1b[m", "<span class=\"f2 b\">bold green</span>");
	EXPECT(ansi, "\x1b[91;44mbright\x1b[39mbg only\x1b[49m",
	       "<span class=\"f9 g4\">bright</span><span class=\"g4\">bg only</span>");
	EXPECT(ansi, "\x1b[1mb\x1b[22mn", "<span class=\"b\">b</span>n");
	EXPECT(ansi, "\x1b[3;4mx\x1b[23;24my", "<span class=\"i u\">x</span>y");
	/* unclosed colour at the end is closed */
	EXPECT(ansi, "\x1b[33mwarn", "<span class=\"f3\">warn</span>");
	/* a colour over a newline */
	EXPECT(ansi, "\x1b[35ma\nb\x1b[0m", "<span class=\"f5\">a\nb</span>");
	/* escaping inside colour */
	EXPECT(ansi, "\x1b[31m<script>alert(1)</script>\x1b[0m",
	       "<span class=\"f1\">&lt;script&gt;alert(1)&lt;/script&gt;</span>");
}

static void test_ansi_dropped(void **state)
{
	/* 256-colour and RGB: the colour goes, the text stays */
	EXPECT(ansi, "\x1b[38;5;208morange\x1b[0m", "orange");
	EXPECT(ansi, "\x1b[38;2;255;0;0mrgb\x1b[0m", "rgb");
	EXPECT(ansi, "\x1b[48;5;1mlow\x1b[0m", "<span class=\"g1\">low</span>");
	EXPECT(ansi, "\x1b[38;5;208;1mthen bold", "<span class=\"b\">then bold</span>");
	/* cursor movement, erase, private modes */
	EXPECT(ansi, "a\x1b[2K\x1b[1Gb\x1b[?25lc\x1b[?25h\x1b[10;20Hd\x1b[Ae", "abcde");
	EXPECT(ansi, "progress\r\x1b[K50%\r100%\n", "progress50%100%\n");
	/* OSC title and hyperlink (BEL and ST terminated), DCS */
	EXPECT(ansi, "\x1b]0;title\x07x", "x");
	EXPECT(ansi, "\x1b]8;;http://e.com/\x1b\\link\x1b]8;;\x1b\\", "link");
	EXPECT(ansi, "\x1bPq#0;2;0;0;0\x1b\\y", "y");
	/* two-byte escapes and charset selection */
	EXPECT(ansi, "\x1b" "7a\x1b" "8\x1b(Bb\x1b" "c", "ab");
	/* broken sequences never show ESC */
	EXPECT(ansi, "bad\x1b", "bad");
	EXPECT(ansi, "bad\x1b[", "bad");
	EXPECT(ansi, "bad\x1b[31", "bad");
	EXPECT(ansi, "x\x1b\x1b[31my", "x<span class=\"f1\">y</span>");
	EXPECT(ansi, "x\x1b[3\x1b[32my", "x<span class=\"f2\">y</span>");
	/* a CSI with a non-SGR final never colours */
	EXPECT(ansi, "\x1b[31;1xz", "z");
	/* other C0 controls */
	EXPECT(ansi, "a\a\bb\x0e\x0f\x7f", "ab");
}

static void test_ansi_overlong(void **state)
{
	/* a CSI that never ends is given up on; the text after it shows */
	struct sw_buf in = SW_BUF_INIT, out = SW_BUF_INIT;
	sw_buf_adds(&in, "\x1b[");
	for (int i = 0; i < 1000; i++)
		sw_buf_adds(&in, "1;");
	sw_buf_adds(&in, "visible");
	sw_ansi_to_html(in.ptr, in.len, &out);
	assert_non_null(strstr(out.ptr, "visible"));
	assert_inert(out.ptr);
	/* an OSC that never ends swallows at most a few KiB */
	sw_buf_reset(&in);
	sw_buf_reset(&out);
	sw_buf_adds(&in, "\x1b]0;");
	for (int i = 0; i < 1000; i++)
		sw_buf_adds(&in, "abcdefgh");
	sw_buf_adds(&in, "END");
	sw_ansi_to_html(in.ptr, in.len, &out);
	assert_non_null(strstr(out.ptr, "END"));
	assert_true(out.len < 8000);
	assert_inert(out.ptr);
	sw_buf_release(&in);
	sw_buf_release(&out);
}

static void test_ansi_split_anywhere(void **state)
{
	const char *in = "start \x1b[1;31mred <b>&\x1b[0m \x1b]0;t\x07"
			 "caf\xc3\xa9 \xe2\x9c\x93 \x1b[38;5;12mblue\x1b[0m\x1b[2K end\n";
	char *whole = ansi(in);
	assert_inert(whole);
	for (size_t step = 1; step <= strlen(in); step++) {
		char *got = ansi_split(in, step);
		/* the same text and colours; spans may be cut at piece boundaries */
		struct sw_buf a = SW_BUF_INIT, b = SW_BUF_INIT;
		assert_inert(got);
		for (const char *p = whole; *p; p++)
			if (*p == '<')
				p = strchr(p, '>');
			else
				sw_buf_addch(&a, *p);
		for (const char *p = got; *p; p++)
			if (*p == '<')
				p = strchr(p, '>');
			else
				sw_buf_addch(&b, *p);
		if (strcmp(a.ptr, b.ptr))
			fail_msg("step %zu: \"%s\" vs \"%s\"", step, b.ptr, a.ptr);
		sw_buf_release(&a);
		sw_buf_release(&b);
		free(got);
	}
	assert_non_null(strstr(whole, "caf\xc3\xa9"));
	assert_non_null(strstr(whole, "<span class=\"f1 b\">red &lt;b&gt;&amp;</span>"));
	assert_non_null(strstr(whole, "<span class=\"f12\">blue</span>"));
	free(whole);
}

static void test_ansi_pieces_balanced(void **state)
{
	/* each piece is balanced HTML on its own; a held-back UTF-8 character
	 * comes out whole in the next piece */
	struct sw_ansi a = SW_ANSI_INIT;
	struct sw_buf b = SW_BUF_INIT;
	sw_ansi_feed(&a, "\x1b[32mgo\xe2\x9c", 9, &b);
	assert_string_equal(b.ptr, "<span class=\"f2\">go</span>");
	sw_buf_reset(&b);
	sw_ansi_feed(&a, "\x93!", 2, &b);
	assert_string_equal(b.ptr, "<span class=\"f2\">\xe2\x9c\x93!</span>");
	sw_buf_reset(&b);
	sw_ansi_feed(&a, "\x1b[0", 3, &b);
	assert_string_equal(b.ptr, "");
	sw_ansi_feed(&a, "m.", 2, &b);
	assert_string_equal(b.ptr, ".");
	sw_buf_release(&b);
}

static void test_times(void **state)
{
	struct sw_buf b = SW_BUF_INIT;
	int64_t now = 1790000000000LL;
	sw_time_iso(&b, 0);
	assert_string_equal(b.ptr, "1970-01-01T00:00:00Z");
	sw_buf_reset(&b);
	sw_time_ago(&b, now - 1000, now);
	assert_string_equal(b.ptr, "just now");
	sw_buf_reset(&b);
	sw_time_ago(&b, now - 42000, now);
	assert_string_equal(b.ptr, "42s ago");
	sw_buf_reset(&b);
	sw_time_ago(&b, now - 3 * 60000 - 5000, now);
	assert_string_equal(b.ptr, "3m ago");
	sw_buf_reset(&b);
	sw_time_ago(&b, now - 5 * 3600000LL, now);
	assert_string_equal(b.ptr, "5h ago");
	sw_buf_reset(&b);
	sw_time_ago(&b, now - 2 * 86400000LL, now);
	assert_string_equal(b.ptr, "2d ago");
	sw_buf_reset(&b);
	sw_time_ago(&b, now + 180000, now);
	assert_string_equal(b.ptr, "in 3m");
	sw_buf_reset(&b);
	sw_duration(&b, 850);
	assert_string_equal(b.ptr, "850ms");
	sw_buf_reset(&b);
	sw_duration(&b, 4200);
	assert_string_equal(b.ptr, "4.2s");
	sw_buf_reset(&b);
	sw_duration(&b, 185000);
	assert_string_equal(b.ptr, "3m 05s");
	sw_buf_reset(&b);
	sw_duration(&b, 7800000);
	assert_string_equal(b.ptr, "2h 10m");
	sw_buf_reset(&b);
	sw_html_time(&b, now - 60000, now);
	assert_non_null(strstr(b.ptr, "title=\""));
	assert_non_null(strstr(b.ptr, ">1m ago</time>"));
	sw_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_url_escape),
		cmocka_unit_test(test_ansi_colours),
		cmocka_unit_test(test_ansi_dropped),
		cmocka_unit_test(test_ansi_overlong),
		cmocka_unit_test(test_ansi_split_anywhere),
		cmocka_unit_test(test_ansi_pieces_balanced),
		cmocka_unit_test(test_times),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
