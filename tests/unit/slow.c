/*
 * slow.c - the deadline factor of the unit tests (see slow.h).
 */
#include "tests/unit/slow.h"

#include <math.h>
#include <stdlib.h>

double sw_test_slow(void)
{
	const char *v = getenv("SW_TEST_SLOW");
	char *end;
	double f;
	if (!v || !*v)
		return 1;
	f = strtod(v, &end);
	if (*end || !(f >= 1) || f > 1000)
		return 1;
	return f;
}

long sw_test_ms(long ms)
{
	return (long)ceil((double)ms * sw_test_slow());
}

int sw_test_s(int s)
{
	return (int)ceil((double)s * sw_test_slow());
}
