/*
 * page-html.c - HTML escaping, ANSI terminal output to HTML, and times for
 * people (see page-html.h). Pure functions over struct sw_buf, unit-tested
 * in tests/unit/test_page.c against hostile input.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "daemon/page-html-int.h"
#include "lib/utf8.h"

/* ------------------------------------------------------------------ */
/* Escaping                                                            */
/* ------------------------------------------------------------------ */

/* One byte of text; returns nothing, appends its escaped form (or nothing). */
static void esc_byte(struct sw_buf *out, unsigned char c)
{
	switch (c) {
	case '&': sw_buf_add(out, "&amp;", 5); return;
	case '<': sw_buf_add(out, "&lt;", 4); return;
	case '>': sw_buf_add(out, "&gt;", 4); return;
	case '"': sw_buf_add(out, "&quot;", 6); return;
	case '\'': sw_buf_add(out, "&#39;", 5); return;
	case '\t': case '\n':
		sw_buf_addch(out, (char)c);
		return;
	}
	if (c < 0x20 || c == 0x7f)
		return;        /* control characters are never shown */
	sw_buf_addch(out, (char)c);
}

void sw_html_escn(struct sw_buf *out, const char *s, size_t len)
{
	size_t start = 0;
	sw_buf_grow(out, len + len / 8);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		/* copy runs of harmless bytes in one go */
		if (c >= 0x20 && c != 0x7f && c != '&' && c != '<' && c != '>' && c != '"' &&
		    c != '\'')
			continue;
		if (i > start)
			sw_buf_add(out, s + start, i - start);
		esc_byte(out, c);
		start = i + 1;
	}
	if (len > start)
		sw_buf_add(out, s + start, len - start);
}

void sw_html_esc(struct sw_buf *out, const char *s)
{
	if (s)
		sw_html_escn(out, s, strlen(s));
}

void sw_url_esc(struct sw_buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			sw_buf_addch(out, (char)c);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			sw_buf_add(out, e, 3);
		}
	}
}

/* ------------------------------------------------------------------ */
/* ANSI to HTML                                                        */
/* ------------------------------------------------------------------ */

enum {
	A_TEXT,       /* plain text */
	A_ESC,        /* after ESC */
	A_ESC_INTER,  /* ESC + intermediate bytes, waiting for the final byte */
	A_CSI,        /* ESC [ ... */
	A_STR,        /* OSC / DCS / SOS / PM / APC body, until BEL or ESC \ */
	A_STR_ESC,    /* ESC inside such a string */
};

/* Strings (OSC 8 hyperlinks carry URLs) may be longer than CSIs. */
#define A_MAX_STR 4096

void sw_ansi_init(struct sw_ansi *a)
{
	struct sw_ansi z = SW_ANSI_INIT;
	*a = z;
}

static int styled(const struct sw_ansi *a)
{
	return a->fg >= 0 || a->bg >= 0 || a->bold || a->italic || a->underline;
}

static void open_span(const struct sw_ansi *a, struct sw_buf *out)
{
	const char *sep = "";
	sw_buf_adds(out, "<span class=\"");
	if (a->fg >= 0) {
		sw_buf_addf(out, "f%d", a->fg);
		sep = " ";
	}
	if (a->bg >= 0) {
		sw_buf_addf(out, "%sg%d", sep, a->bg);
		sep = " ";
	}
	if (a->bold) {
		sw_buf_addf(out, "%sb", sep);
		sep = " ";
	}
	if (a->italic) {
		sw_buf_addf(out, "%si", sep);
		sep = " ";
	}
	if (a->underline)
		sw_buf_addf(out, "%su", sep);
	sw_buf_adds(out, "\">");
}

/* `*open` says whether a span is open in this call's output. */
static void text_byte(struct sw_ansi *a, unsigned char c, struct sw_buf *out, int *open)
{
	if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
		return;
	if (!*open && styled(a) && c != '\n') {
		open_span(a, out);
		*open = 1;
	}
	esc_byte(out, c);
}

static void style_changed(struct sw_buf *out, int *open)
{
	if (*open) {
		sw_buf_adds(out, "</span>");
		*open = 0;
	}
}

/* 38;5;N / 48;5;N: only the 16 basic indexes map; *i is moved past the colour. */
static int extended_colour(const struct sw_ansi *a, int *i)
{
	int n = a->nparams, mode = *i + 1 < n ? a->params[*i + 1] : -1;
	if (mode == 5) {
		int idx = *i + 2 < n ? a->params[*i + 2] : -1;
		*i += 2;
		return idx >= 0 && idx < 16 ? idx : -2;
	}
	if (mode == 2) {
		*i += 4;
		return -2;
	}
	*i = n;        /* malformed: ignore the rest */
	return -2;
}

static void apply_sgr(struct sw_ansi *a)
{
	for (int i = 0; i < a->nparams; i++) {
		int p = a->params[i] < 0 ? 0 : a->params[i], c;
		if (p == 0) {
			a->fg = a->bg = -1;
			a->bold = a->italic = a->underline = 0;
		} else if (p == 1) {
			a->bold = 1;
		} else if (p == 3) {
			a->italic = 1;
		} else if (p == 4) {
			a->underline = 1;
		} else if (p == 22) {
			a->bold = 0;
		} else if (p == 23) {
			a->italic = 0;
		} else if (p == 24) {
			a->underline = 0;
		} else if (p >= 30 && p <= 37) {
			a->fg = p - 30;
		} else if (p == 39) {
			a->fg = -1;
		} else if (p >= 40 && p <= 47) {
			a->bg = p - 40;
		} else if (p == 49) {
			a->bg = -1;
		} else if (p >= 90 && p <= 97) {
			a->fg = p - 90 + 8;
		} else if (p >= 100 && p <= 107) {
			a->bg = p - 100 + 8;
		} else if (p == 38 || p == 48) {
			c = extended_colour(a, &i);
			if (c >= 0) {
				if (p == 38)
					a->fg = c;
				else
					a->bg = c;
			}
		}
		/* anything else (dim, blink, reverse, ...) is ignored */
	}
}

void sw_ansi_feed(struct sw_ansi *a, const char *in, size_t len, struct sw_buf *out)
{
	const unsigned char *s = (const unsigned char *)in;
	int open = 0;
	size_t i = 0;

	/* finish a character held back by the previous call */
	if (a->nutf8 > 0) {
		int need = (int)sw_utf8_lead_len((unsigned char)a->utf8[0]);
		while (a->nutf8 < need && i < len && sw_utf8_is_cont(s[i]))
			a->utf8[a->nutf8++] = (char)s[i++];
		if (a->nutf8 < need && i == len)
			return;        /* still incomplete: keep holding it */
		if (styled(a)) {
			open_span(a, out);
			open = 1;
		}
		sw_buf_add(out, a->utf8, (size_t)a->nutf8);
		a->nutf8 = 0;
	}

	while (i < len) {
		unsigned char c = s[i];
		a->seq_len++;
		switch (a->state) {
		case A_TEXT:
			a->seq_len = 0;
			if (c == 0x1b) {
				a->state = A_ESC;
				a->seq_len = 1;
				i++;
				continue;
			}
			if (c >= 0xc0) {
				int need = (int)sw_utf8_lead_len(c);
				size_t have = 1;
				while (have < (size_t)need && i + have < len && sw_utf8_is_cont(s[i + have]))
					have++;
				if (have < (size_t)need && i + have == len) {
					/* the character goes on in the next piece */
					memcpy(a->utf8, s + i, have);
					a->nutf8 = (int)have;
					i = len;
					continue;
				}
				if (!open && styled(a)) {
					open_span(a, out);
					open = 1;
				}
				sw_buf_add(out, s + i, have);
				i += have;
				continue;
			}
			text_byte(a, c, out, &open);
			i++;
			continue;
		case A_ESC:
			if (c == '[') {
				a->state = A_CSI;
				a->nparams = 1;
				a->params[0] = -1;
				a->bad = 0;
			} else if (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_') {
				a->state = A_STR;
			} else if (c >= 0x20 && c <= 0x2f) {
				a->state = A_ESC_INTER;
			} else if (c >= 0x30 && c <= 0x7e) {
				a->state = A_TEXT;     /* a two-byte escape: dropped */
			} else if (c == 0x1b) {
				a->seq_len = 1;
			} else {
				a->state = A_TEXT;     /* not an escape after all */
				continue;              /* reprocess c as text */
			}
			i++;
			continue;
		case A_ESC_INTER:
			if (c >= 0x30 && c <= 0x7e)
				a->state = A_TEXT;
			else if (c < 0x20 || c > 0x7e) {
				a->state = A_TEXT;
				continue;
			}
			i++;
			continue;
		case A_CSI:
			if (c >= '0' && c <= '9') {
				int *p = &a->params[a->nparams - 1];
				*p = (*p < 0 ? 0 : *p) * 10 + (c - '0');
				if (*p > 9999)
					*p = 9999;
			} else if (c == ';' || c == ':') {
				if (a->nparams < SW_ANSI_MAX_PARAMS)
					a->params[a->nparams++] = -1;
				else
					a->bad = 1;
			} else if (c >= 0x3c && c <= 0x3f) {
				a->bad = 1;            /* private parameters: not SGR */
			} else if (c >= 0x20 && c <= 0x2f) {
				a->bad = 1;            /* intermediates: not SGR */
			} else if (c >= 0x40 && c <= 0x7e) {
				if (c == 'm' && !a->bad) {
					apply_sgr(a);
					style_changed(out, &open);
				}
				a->state = A_TEXT;     /* any other CSI is dropped */
			} else if (c == 0x1b) {
				a->state = A_ESC;      /* a new sequence interrupts this one */
				a->seq_len = 1;
			} else if (c >= 0x80) {
				a->state = A_TEXT;     /* garbage: drop the sequence */
				continue;
			}
			/* C0 controls inside a CSI are dropped */
			if (a->state == A_CSI && a->seq_len > SW_ANSI_MAX_SEQ)
				a->state = A_TEXT;     /* overlong: give up on it */
			i++;
			continue;
		case A_STR:
			if (c == 0x07)
				a->state = A_TEXT;
			else if (c == 0x1b)
				a->state = A_STR_ESC;
			else if (a->seq_len > A_MAX_STR)
				a->state = A_TEXT;
			i++;
			continue;
		case A_STR_ESC:
			if (c == '\\') {
				a->state = A_TEXT;
				i++;
			} else {
				a->state = A_ESC;      /* ESC ended the string, starts another */
				a->seq_len = 1;
			}
			continue;
		}
	}
	if (open)
		sw_buf_adds(out, "</span>");
}

void sw_ansi_finish(struct sw_ansi *a, struct sw_buf *out)
{
	/* half a character at the very end: let the browser show U+FFFD */
	if (a->nutf8 > 0)
		sw_buf_add(out, a->utf8, (size_t)a->nutf8);
	sw_ansi_init(a);
}

void sw_ansi_to_html(const char *in, size_t len, struct sw_buf *out)
{
	struct sw_ansi a = SW_ANSI_INIT;
	sw_ansi_feed(&a, in, len, out);
	sw_ansi_finish(&a, out);
}

/* ------------------------------------------------------------------ */
/* Times                                                               */
/* ------------------------------------------------------------------ */

void sw_time_iso(struct sw_buf *out, int64_t ms)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char s[32];
	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm);
	sw_buf_adds(out, s);
}

void sw_time_ago(struct sw_buf *out, int64_t ms, int64_t now_ms)
{
	int64_t d = now_ms - ms, a = d < 0 ? -d : d;
	const char *pre = d < 0 ? "in " : "", *post = d < 0 ? "" : " ago";
	if (a < 5000) {
		sw_buf_adds(out, "just now");
		return;
	}
	a /= 1000;
	if (a < 60)
		sw_buf_addf(out, "%s%llds%s", pre, (long long)a, post);
	else if (a < 3600)
		sw_buf_addf(out, "%s%lldm%s", pre, (long long)(a / 60), post);
	else if (a < 86400)
		sw_buf_addf(out, "%s%lldh%s", pre, (long long)(a / 3600), post);
	else
		sw_buf_addf(out, "%s%lldd%s", pre, (long long)(a / 86400), post);
}

void sw_duration(struct sw_buf *out, int64_t ms)
{
	long long s;
	if (ms < 0)
		ms = 0;
	if (ms < 1000) {
		sw_buf_addf(out, "%lldms", (long long)ms);
		return;
	}
	if (ms < 10000) {
		sw_buf_addf(out, "%.1fs", (double)ms / 1000.0);
		return;
	}
	s = (long long)(ms / 1000);
	if (s < 60)
		sw_buf_addf(out, "%llds", s);
	else if (s < 3600)
		sw_buf_addf(out, "%lldm %02llds", s / 60, s % 60);
	else
		sw_buf_addf(out, "%lldh %02lldm", s / 3600, s % 3600 / 60);
}

void sw_html_time(struct sw_buf *out, int64_t ms, int64_t now_ms)
{
	if (ms <= 0) {
		sw_buf_adds(out, "&ndash;");
		return;
	}
	sw_buf_adds(out, "<time datetime=\"");
	sw_time_iso(out, ms);
	sw_buf_adds(out, "\" title=\"");
	sw_time_iso(out, ms);
	sw_buf_adds(out, "\">");
	sw_time_ago(out, ms, now_ms);
	sw_buf_adds(out, "</time>");
}
