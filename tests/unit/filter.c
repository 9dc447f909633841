/*
 * filter.c - one cmocka test, or a few, from any unit-test binary:
 *
 *   SW_TEST_FILTER='test_fake_*' build/tests/test_runner
 *
 * runs only the tests whose names match the pattern (cmocka's '*' and
 * '?'). Linked into every unit-test binary (like slow.c); it sets the
 * filter before main() so that no test's main needs to know.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

__attribute__((constructor)) static void sw_test_filter(void)
{
	const char *p = getenv("SW_TEST_FILTER");
	if (p && *p)
		cmocka_set_test_filter(p);
}
