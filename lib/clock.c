/*
 * clock.c - wall and monotonic milliseconds (see clock.h).
 */
#include "lib/clock.h"

#include <time.h>

static int64_t ms(clockid_t id)
{
	struct timespec ts;

	/* Cannot fail for these two clocks on any system we run on. */
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sw_now_ms(void)
{
	return ms(CLOCK_REALTIME);
}

int64_t sw_mono_ms(void)
{
	return ms(CLOCK_MONOTONIC);
}
