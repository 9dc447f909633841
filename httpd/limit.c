/*
 * limit.c - per-client failure windows (see limit-int.h). A small open
 * table scanned linearly: it is consulted only on the login and bearer
 * paths and holds a few thousand entries at most.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "httpd/httpd.h"
#include "lib/buf.h"
#include "lib/cidr.h"

struct entry {
	char key[64];
	int64_t start_ms;
	int fails;
};

struct sw_limiter {
	int max_fails;
	int64_t window_ms;
	size_t max_keys, n;
	struct entry *v;
};

void sw_limiter_new(struct sw_limiter **out, int max_fails, int64_t window_ms, size_t max_keys)
{
	struct sw_limiter *l = sw_calloc(1, sizeof(*l));
	l->max_fails = max_fails;
	l->window_ms = window_ms;
	l->max_keys = max_keys ? max_keys : 1;
	l->v = sw_calloc(l->max_keys, sizeof(*l->v));
	*out = l;
}

void sw_limiter_free(struct sw_limiter *l)
{
	if (!l)
		return;
	free(l->v);
	free(l);
}

static struct entry *find(struct sw_limiter *l, const char *key, int64_t now)
{
	for (size_t i = 0; i < l->n; i++) {
		struct entry *e = &l->v[i];
		if (strcmp(e->key, key))
			continue;
		if (now - e->start_ms >= l->window_ms) {   /* a new window */
			e->start_ms = now;
			e->fails = 0;
		}
		return e;
	}
	return NULL;
}

int64_t sw_limiter_check(struct sw_limiter *l, const char *key, int64_t now_ms)
{
	struct entry *e = find(l, key, now_ms);
	if (!e || e->fails < l->max_fails)
		return 0;
	return e->start_ms + l->window_ms - now_ms;
}

void sw_limiter_fail(struct sw_limiter *l, const char *key, int64_t now_ms)
{
	struct entry *e = find(l, key, now_ms);
	if (!e) {
		if (l->n == l->max_keys) {
			/* drop the expired windows, else the oldest one */
			size_t keep = 0, oldest = 0;
			for (size_t i = 0; i < l->n; i++)
				if (now_ms - l->v[i].start_ms < l->window_ms)
					l->v[keep++] = l->v[i];
			if (keep == l->n) {
				for (size_t i = 1; i < l->n; i++)
					if (l->v[i].start_ms < l->v[oldest].start_ms)
						oldest = i;
				l->v[oldest] = l->v[--keep];
			}
			l->n = keep;
		}
		e = &l->v[l->n++];
		snprintf(e->key, sizeof(e->key), "%s", key);
		e->start_ms = now_ms;
		e->fails = 0;
	}
	e->fails++;
}

size_t sw_limiter_size(const struct sw_limiter *l)
{
	return l->n;
}

void sw_limiter_key(char *out, size_t n, const char *addr)
{
	unsigned char a[16];
	int fam;
	char text[INET6_ADDRSTRLEN];
	if (!addr || sw_cidr_addr_parse(a, &fam, addr) < 0) {
		snprintf(out, n, "%s", addr ? addr : "-");
		return;
	}
	if (fam == AF_INET) {   /* one key for both spellings of an IPv4 client */
		inet_ntop(AF_INET, a, text, sizeof(text));
		snprintf(out, n, "%s", text);
		return;
	}
	memset(a + 8, 0, 8);
	inet_ntop(AF_INET6, a, text, sizeof(text));
	snprintf(out, n, "%s/64", text);
}
