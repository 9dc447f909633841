/*
 * page-html.h - the small text transforms the status page is built from:
 * HTML escaping, ANSI colour to HTML, and times shown to people.
 *
 * Private to daemon/ (page.c, sse.c and their tests). Nothing here touches
 * the loop or storage: every function appends to a struct sw_buf and cannot
 * fail (sw_buf aborts on allocation failure).
 */
#ifndef SW_DAEMON_PAGE_HTML_H
#define SW_DAEMON_PAGE_HTML_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

/*
 * Append `s` (NUL-terminated; NULL is "") HTML-escaped, safe both as element
 * text and inside a double- or single-quoted attribute: & < > " ' become
 * entities; control characters other than tab and newline are dropped.
 */
void sw_html_esc(struct sw_buf *out, const char *s);
/* The same for `len` bytes that may hold NULs (which are dropped). */
void sw_html_escn(struct sw_buf *out, const char *s, size_t len);

/* Append `s` percent-encoded for one URL path segment or query value. */
void sw_url_esc(struct sw_buf *out, const char *s);

/*
 * ANSI terminal output to HTML, fed in pieces as a log grows.
 *
 * Colour SGR sequences (ESC [ ... m: bold, italic, underline, the 8 basic
 * and 8 bright colours, fore- and background) become
 * <span class="...">: classes f0..f15 (foreground), g0..g15 (background),
 * b (bold), i (italic), u (underline). 256-colour and RGB colours are
 * dropped (their text stays, uncoloured, except indexes 0..15 which map to
 * the basic colours). Every other escape sequence (cursor movement, erase,
 * OSC titles and hyperlinks, DCS, charset selection) and every control
 * character but tab and newline is dropped, never shown. A sequence split
 * across two feeds is understood; an unterminated or overlong one is given
 * up on after SW_ANSI_MAX_SEQ bytes and dropped.
 *
 * Each call's output is balanced HTML on its own: spans still open at the
 * end are closed and re-opened at the start of the next call, so each piece
 * can be appended to a page as it comes (the SSE stream does that). A
 * trailing incomplete UTF-8 sequence is held back until the next call (or
 * sw_ansi_finish), so a piece never ends in half a character.
 */
#define SW_ANSI_MAX_SEQ 256
#define SW_ANSI_MAX_PARAMS 16

struct sw_ansi {
	/* the colour state */
	int fg, bg;              /* -1 = default, else 0..15 */
	unsigned bold : 1, italic : 1, underline : 1;
	/* the escape-sequence parser */
	int state;               /* private: where the parser is */
	size_t seq_len;          /* bytes of the current sequence so far */
	int params[SW_ANSI_MAX_PARAMS];
	int nparams;
	int bad;                 /* the CSI is not a plain SGR */
	char utf8[4];            /* held-back start of a UTF-8 character */
	int nutf8;
};
#define SW_ANSI_INIT { .fg = -1, .bg = -1 }

void sw_ansi_init(struct sw_ansi *a);
void sw_ansi_feed(struct sw_ansi *a, const char *in, size_t len, struct sw_buf *out);
/* Flush what was held back (as text, escaped) and reset the state. */
void sw_ansi_finish(struct sw_ansi *a, struct sw_buf *out);
/* Whole text in one call: init, feed, finish. */
void sw_ansi_to_html(const char *in, size_t len, struct sw_buf *out);

/* "2026-11-21T22:01:02Z" for a time in ms since the epoch (UTC). */
void sw_time_iso(struct sw_buf *out, int64_t ms);
/* "just now", "42s ago", "3m ago", "5h ago", "2d ago", "in 3m" (clock skew). */
void sw_time_ago(struct sw_buf *out, int64_t ms, int64_t now_ms);
/* A duration: "850ms", "42s", "3m 05s", "2h 10m". */
void sw_duration(struct sw_buf *out, int64_t ms);
/*
 * <time datetime="ISO" title="ISO">3m ago</time>, or "-" for 0 ("never").
 */
void sw_html_time(struct sw_buf *out, int64_t ms, int64_t now_ms);

#endif
