/*
 * cidr.h - address ranges ("10.0.0.0/8", "fd00::/8", or one address) and
 * whether an address falls in one: server.trusted_proxies, the peers whose
 * X-Forwarded-For header the daemon believes.
 *
 *     struct sw_cidr c;
 *     if (sw_cidr_parse(&c, "192.168.0.0/16") < 0) ...   // message in the slot
 *     sw_cidr_match(&c, "192.168.4.20")                  // 1
 *
 * An IPv4 address written as IPv6 (::ffff:192.168.4.20, what a dual-stack
 * socket reports) is taken as the IPv4 address, on both sides, so one rule
 * covers both spellings. Nothing here allocates.
 */
#ifndef SW_LIB_CIDR_H
#define SW_LIB_CIDR_H

#include <stddef.h>

struct sw_cidr {
	int family;               /* AF_INET or AF_INET6 */
	unsigned char addr[16];   /* network byte order; 4 bytes used for AF_INET */
	int bits;                 /* prefix length: 0-32 or 0-128 */
};

/*
 * Parse "ADDRESS/BITS" or a bare ADDRESS (all its bits) into `out`. Bits
 * below the prefix must be zero ("10.1.0.0/8" is refused: it says what it
 * means badly). Returns 0, or SW_EINVALID with the reason in the slot.
 */
int sw_cidr_parse(struct sw_cidr *out, const char *text);

/*
 * Parse one address (IPv4 or IPv6, IPv4-mapped IPv6 taken as IPv4) into
 * `addr` and `family`. Returns 0, or SW_EINVALID with the reason.
 */
int sw_cidr_addr_parse(unsigned char addr[16], int *family, const char *text);

/* 1 when the address `text` lies in `c`, 0 when not or not an address. */
int sw_cidr_match(const struct sw_cidr *c, const char *text);

/* 1 when `text` lies in any of the `n` ranges. */
int sw_cidr_match_any(const struct sw_cidr *v, size_t n, const char *text);

#endif
