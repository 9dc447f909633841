/*
 * clock.c - wall and monotonic milliseconds (see clock.h).
 */
#include "lib/clock.h"

#include <ctype.h>
#include <string.h>
#include <time.h>

#include "lib/error.h"

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	/* Cannot fail for these two clocks on any system we run on. */
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sw_now_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

int64_t sw_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

int sw_parse_rfc3339(const char *s, int64_t *ms)
{
	struct tm tm;
	int frac_ms = 0, off = 0;
	const char *p;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (!s || !(p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)))
		if (!s || !(p = strptime(s, "%Y-%m-%dt%H:%M:%S", &tm)))
			return SW_EINVALID;
	if (*p == '.') {
		int digits = 0;
		p++;
		if (!isdigit((unsigned char)*p))
			return SW_EINVALID;
		while (isdigit((unsigned char)*p)) {
			if (digits < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
			digits++;
			p++;
		}
		for (; digits < 3; digits++)
			frac_ms *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1]) &&
		   isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
		   isdigit((unsigned char)p[5])) {
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 + ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
		if (*p == '-')
			off = -off;
		p += 6;
	} else {
		return SW_EINVALID;
	}
	if (*p)
		return SW_EINVALID;
	t = timegm(&tm);
	*ms = ((int64_t)t - off) * 1000 + frac_ms;
	return 0;
}
