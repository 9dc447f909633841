/*
 * xml.c - the text of one element of an AWS XML answer (STS speaks the
 * query protocol: its answers and errors are XML). Not an XML parser: a
 * scanner of tags that knows declarations, comments, CDATA, attributes,
 * empty elements and the five entities and numeric references, which is
 * all an AWS answer holds; anything else malformed is an error at its byte.
 */
#include <string.h>

#include "aws/aws.h"
#include "lib/buf.h"
#include "lib/error.h"
#include "lib/utf8.h"

#define MAX_DEPTH 32

struct scan {
	const char *p, *end, *start;
};

static int bad(const struct scan *s, const char *what)
{
	return sw_error_setc(SW_EINVALID, "XML: %s at byte %zu", what, (size_t)(s->p - s->start));
}

static int skip_past(struct scan *s, const char *token)
{
	size_t n = strlen(token);
	for (; s->p + n <= s->end; s->p++)
		if (!memcmp(s->p, token, n)) {
			s->p += n;
			return 0;
		}
	return -1;
}

/* Append text[0..n) with its references decoded. */
static int decode(struct sw_buf *out, const struct scan *s, const char *t, size_t n)
{
	static const struct { const char *name; char c; } ent[] = {
		{ "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' }, { "apos;", '\'' },
	};
	for (size_t i = 0; i < n; i++) {
		if (t[i] != '&') {
			sw_buf_addch(out, t[i]);
			continue;
		}
		size_t k, left = n - i - 1;
		for (k = 0; k < sizeof(ent) / sizeof(ent[0]); k++) {
			size_t el = strlen(ent[k].name);
			if (left >= el && !memcmp(t + i + 1, ent[k].name, el)) {
				sw_buf_addch(out, ent[k].c);
				i += el;
				break;
			}
		}
		if (k < sizeof(ent) / sizeof(ent[0]))
			continue;
		if (left >= 3 && t[i + 1] == '#') {
			unsigned long cp = 0;
			size_t j = i + 2;
			int base = 10, digits = 0;
			if (t[j] == 'x') {
				base = 16;
				j++;
			}
			for (; j < n && t[j] != ';' && digits < 8; j++, digits++) {
				int c = (unsigned char)t[j], v;
				if (c >= '0' && c <= '9')
					v = c - '0';
				else if (base == 16 && ((c | 32) >= 'a' && (c | 32) <= 'f'))
					v = (c | 32) - 'a' + 10;
				else
					break;
				cp = cp * (unsigned long)base + (unsigned long)v;
			}
			if (j < n && t[j] == ';' && digits && cp && cp <= 0x10FFFF &&
			    !(cp >= 0xD800 && cp <= 0xDFFF)) {
				char u[4];
				size_t ul = sw_utf8_encode(u, (uint32_t)cp);
				sw_buf_add(out, u, ul);
				i = j;
				continue;
			}
		}
		return sw_error_setc(SW_EINVALID, "XML: an unknown reference at byte %zu",
				     (size_t)(t + i - s->start));
	}
	return 0;
}

/* The local name (after any prefix) of the tag at s->p (after '<' or '</'). */
static int tag_name(struct scan *s, const char **name, size_t *n)
{
	const char *b = s->p;
	while (s->p < s->end && !strchr(" \t\r\n/>", *s->p))
		s->p++;
	if (s->p == b)
		return bad(s, "a tag without a name");
	const char *colon = memchr(b, ':', (size_t)(s->p - b));
	*name = colon ? colon + 1 : b;
	*n = (size_t)(s->p - *name);
	return 0;
}

int sw_aws_xml_text(struct sw_buf *out, const char *xml, size_t len, const char *path)
{
	struct scan s = { xml, xml + len, xml };
	const char *stack[MAX_DEPTH];
	size_t stack_n[MAX_DEPTH], depth = 0;
	const char *want[MAX_DEPTH];
	size_t want_n[MAX_DEPTH], nwant = 0;
	int matched = 0;   /* depth at which the path matched, 0 = not inside it */

	for (const char *p = path; *p && nwant < MAX_DEPTH;) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		want[nwant] = p;
		want_n[nwant++] = n;
		p += n + (e ? 1 : 0);
	}
	while (s.p < s.end) {
		const char *lt = memchr(s.p, '<', (size_t)(s.end - s.p));
		if (!lt) {
			s.p = s.end;
			break;
		}
		if (matched && decode(out, &s, s.p, (size_t)(lt - s.p)) < 0)
			return SW_EINVALID;
		s.p = lt + 1;
		if (s.p < s.end && (*s.p == '?' || *s.p == '!')) {
			const char *close = "?>";
			if (s.end - s.p >= 3 && !memcmp(s.p, "!--", 3))
				close = "-->";
			else if (s.end - s.p >= 8 && !memcmp(s.p, "![CDATA[", 8)) {
				const char *b = s.p + 8;
				s.p = b;
				if (skip_past(&s, "]]>") < 0)
					return bad(&s, "CDATA without its end");
				if (matched)
					sw_buf_add(out, b, (size_t)(s.p - 3 - b));
				continue;
			} else if (*s.p == '!')
				close = ">";
			if (skip_past(&s, close) < 0)
				return bad(&s, "a declaration or comment without its end");
			continue;
		}
		int closing = s.p < s.end && *s.p == '/';
		const char *name = NULL;
		size_t n = 0;
		if (closing)
			s.p++;
		if (tag_name(&s, &name, &n) < 0)
			return SW_EINVALID;
		/* attributes, up to the end of the tag (quotes may hold '>') */
		char q = 0;
		for (; s.p < s.end && (q || *s.p != '>'); s.p++)
			if (q && *s.p == q)
				q = 0;
			else if (!q && (*s.p == '"' || *s.p == '\''))
				q = *s.p;
		if (s.p >= s.end)
			return bad(&s, "a tag without its end");
		int empty = !closing && s.p[-1] == '/';
		s.p++;
		if (closing) {
			if (!depth || stack_n[depth - 1] != n || memcmp(stack[depth - 1], name, n))
				return bad(&s, "a closing tag that does not match");
			if (matched == (int)depth)
				return 0;
			depth--;
			continue;
		}
		if (empty) {
			if (!matched && depth + 1 == nwant && want_n[depth] == n &&
			    !memcmp(want[depth], name, n))
				return 0;   /* found, and empty */
			continue;
		}
		if (depth == MAX_DEPTH)
			return bad(&s, "elements nested too deep");
		stack[depth] = name;
		stack_n[depth++] = n;
		if (!matched && depth == nwant) {
			size_t i;
			for (i = 0; i < nwant; i++)
				if (want_n[i] != stack_n[i] || memcmp(want[i], stack[i], stack_n[i]))
					break;
			if (i == nwant)
				matched = (int)depth;
		}
	}
	if (depth)
		return bad(&s, "the document ends inside an element");
	return sw_error_setc(SW_ENOTFOUND, "XML: no %s", path);
}
