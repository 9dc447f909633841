/*
 * limit-int.h - failures counted per client in fixed windows: what
 * /login and bearer tokens use (issue 11, defect 9), so one client's wrong
 * guesses lock out that client, not everyone.
 *
 *     sw_limiter_new(&l, 20, 60000, 4096);   // 20 failures a minute each
 *     if ((wait = sw_limiter_check(l, key, now)) > 0) ... 429, Retry-After
 *     ...
 *     sw_limiter_fail(l, key, now);          // after a wrong guess
 *
 * The table holds at most `max_keys` clients; when it is full, expired
 * windows go first, then the window that started longest ago (a client
 * evicted that way starts again from zero: the table's size is what keeps
 * memory bounded under a flood of addresses). IPv6 clients are counted per
 * /64 (sw_limiter_key), the block one host is usually given.
 */
#ifndef SW_DAEMON_LIMIT_H
#define SW_DAEMON_LIMIT_H

#include <stddef.h>
#include <stdint.h>

struct sw_limiter;

void sw_limiter_new(struct sw_limiter **out, int max_fails, int64_t window_ms, size_t max_keys);
void sw_limiter_free(struct sw_limiter *l);   /* NULL is a no-op */

/* 0 when `key` may try now, else the milliseconds until it may (> 0). */
int64_t sw_limiter_check(struct sw_limiter *l, const char *key, int64_t now_ms);
/* Count a failure of `key`. */
void sw_limiter_fail(struct sw_limiter *l, const char *key, int64_t now_ms);
/* Clients with a window open (for tests and /metrics). */
size_t sw_limiter_size(const struct sw_limiter *l);

/* The key for an address: IPv4 as a.b.c.d (also when written ::ffff:a.b.c.d),
 * IPv6 as its /64 ("2001:db8:1:2::/64"), anything else as given. */
void sw_limiter_key(char *out, size_t n, const char *addr);

#endif
