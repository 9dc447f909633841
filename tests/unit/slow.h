/*
 * slow.h - one factor for every deadline in the unit tests.
 *
 * A deadline in a test is how long to wait for an event before calling it
 * lost. It is never a guess at how long the work takes: a slow machine
 * (sanitizers, a shared CI runner, CPU hogs) only makes the wait longer.
 * SW_TEST_SLOW (a number >= 1, default 1; `make check` sets 3) multiplies
 * every such deadline; durations that are the subject of a test (a 200 ms
 * timeout that must fire) stay as they are.
 */
#ifndef SW_TEST_SLOW_H
#define SW_TEST_SLOW_H

/* The factor: SW_TEST_SLOW when it is a number >= 1, else 1. */
double sw_test_slow(void);

/* `ms` scaled by the factor (at least `ms`). */
long sw_test_ms(long ms);

/* `s` seconds scaled by the factor, rounded up. */
int sw_test_s(int s);

#endif
