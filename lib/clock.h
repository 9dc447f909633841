/*
 * clock.h - the two clocks slipway uses.
 *
 * Wall-clock time is what gets stored and shown (timestamps in the database,
 * API, logs); monotonic time is what measures durations and schedules timers,
 * because it does not jump when the system clock is set.
 */
#ifndef SW_CLOCK_H
#define SW_CLOCK_H

#include <stdint.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t sw_now_ms(void);

/* Milliseconds on CLOCK_MONOTONIC: only differences between two calls mean anything. */
int64_t sw_mono_ms(void);

/*
 * An RFC 3339 timestamp ("2026-03-04T05:06:07Z", fractions and +hh:mm
 * offsets allowed; what Kubernetes and AWS write) as milliseconds since the
 * epoch. SW_EINVALID for anything else.
 */
int sw_parse_rfc3339(const char *s, int64_t *ms);

#endif
