/*
 * cidr.c - address ranges and membership (see cidr.h). inet_pton does the
 * parsing of addresses; what is here is the prefix and the comparison.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/cidr.h"
#include "lib/error.h"

static const unsigned char v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int sw_cidr_addr_parse(unsigned char addr[16], int *family, const char *text)
{
	unsigned char a6[16];
	memset(addr, 0, 16);
	if (!text || !*text)
		return sw_error_setc(SW_EINVALID, "empty address");
	if (inet_pton(AF_INET, text, addr) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, a6) == 1) {
		if (!memcmp(a6, v4_mapped, sizeof(v4_mapped))) {
			memcpy(addr, a6 + 12, 4);
			*family = AF_INET;
		} else {
			memcpy(addr, a6, 16);
			*family = AF_INET6;
		}
		return 0;
	}
	return sw_error_setc(SW_EINVALID, "%s is not an IPv4 or IPv6 address", text);
}

int sw_cidr_parse(struct sw_cidr *out, const char *text)
{
	char buf[64];
	const char *slash = text ? strchr(text, '/') : NULL;
	size_t alen = slash ? (size_t)(slash - text) : (text ? strlen(text) : 0);
	int max, bits;

	memset(out, 0, sizeof(*out));
	if (!text || !*text)
		return sw_error_setc(SW_EINVALID, "empty address range");
	if (alen >= sizeof(buf))
		return sw_error_setc(SW_EINVALID, "%.40s...: not an address range", text);
	memcpy(buf, text, alen);
	buf[alen] = 0;
	if (sw_cidr_addr_parse(out->addr, &out->family, buf) < 0)
		return sw_error_setc(SW_EINVALID, "%s: %s is not an IPv4 or IPv6 address", text,
				     buf);
	/* ::ffff:a.b.c.d/N counts its bits in the IPv6 address */
	int mapped = out->family == AF_INET && strchr(buf, ':');
	max = out->family == AF_INET ? 32 : 128;
	bits = max;
	if (slash) {
		const char *p = slash + 1;
		char *end;
		long v;
		if (!isdigit((unsigned char)*p))
			return sw_error_setc(SW_EINVALID, "%s: expected a prefix length after /",
					     text);
		v = strtol(p, &end, 10);
		if (*end || v < 0 || v > (mapped ? 128 : max))
			return sw_error_setc(SW_EINVALID, "%s: prefix length must be 0 to %d", text,
					     mapped ? 128 : max);
		if (mapped) {
			if (v < 96)
				return sw_error_setc(SW_EINVALID, "%s: an IPv4-mapped range needs a "
						     "prefix of at least 96", text);
			v -= 96;
		}
		bits = (int)v;
	}
	out->bits = bits;
	/* host bits must be zero */
	for (int i = bits; i < max; i++)
		if (out->addr[i / 8] & (0x80 >> (i % 8)))
			return sw_error_setc(SW_EINVALID, "%s: bits beyond the /%d prefix are set "
					     "(the range starts at a lower address)", text,
					     slash ? atoi(slash + 1) : bits);
	return 0;
}

int sw_cidr_match(const struct sw_cidr *c, const char *text)
{
	unsigned char a[16];
	int family, full, rest;
	if (sw_cidr_addr_parse(a, &family, text) < 0 || family != c->family)
		return 0;
	full = c->bits / 8;
	rest = c->bits % 8;
	if (memcmp(a, c->addr, (size_t)full))
		return 0;
	if (rest) {
		unsigned char mask = (unsigned char)(0xff << (8 - rest));
		if ((a[full] & mask) != (c->addr[full] & mask))
			return 0;
	}
	return 1;
}

int sw_cidr_match_any(const struct sw_cidr *v, size_t n, const char *text)
{
	for (size_t i = 0; i < n; i++)
		if (sw_cidr_match(&v[i], text))
			return 1;
	return 0;
}
