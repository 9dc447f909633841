/*
 * test_strv.c - lib/strv.h: copies are deep and NULL-terminated, frees take
 * NULL, the count-based free stops at its count.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/buf.h"
#include "lib/strv.h"

static void test_dup(void **state)
{
	const char *v[] = { "a", "bc", "", NULL };
	char **c = sw_strv_dup(v);

	assert_int_equal(sw_strv_len(v), 3);
	assert_int_equal(sw_strv_len((const char *const *)c), 3);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(c[i], v[i]);
		assert_ptr_not_equal(c[i], v[i]);
	}
	assert_null(c[3]);
	sw_strv_free(c);
	assert_null(sw_strv_dup(NULL));
	assert_int_equal(sw_strv_len(NULL), 0);
	sw_strv_free(NULL);
	sw_strv_free_wipe(NULL);
	sw_strv_freen(NULL, 3);
}

static void test_dupn(void **state)
{
	const char *v[] = { "x", "y", "z" };   /* no NULL: only n is read */
	char **c = sw_strv_dupn(v, 2);

	assert_string_equal(c[0], "x");
	assert_string_equal(c[1], "y");
	assert_null(c[2]);
	sw_strv_free_wipe(c);
	c = sw_strv_dupn(v, 0);
	assert_non_null(c);
	assert_null(c[0]);
	sw_strv_free(c);
}

static void test_freen(void **state)
{
	/* an array of n entries without a NULL after them */
	char **v = sw_calloc(2, sizeof(*v));
	v[0] = sw_strdup("one");
	v[1] = sw_strdup("two");
	sw_strv_freen(v, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dup),
		cmocka_unit_test(test_dupn),
		cmocka_unit_test(test_freen),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
