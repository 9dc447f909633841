/*
 * test_yamlschema.c - lib/yamlschema.h: every message is file:line:col and
 * the key path, a repeated key is an error at its second place, the getters
 * leave their output alone unless they read a value of the right type, and
 * the reader collects messages up to its bound.
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
#include "lib/yaml.h"
#include "lib/yamlschema.h"

static struct sw_yaml_stream *parse(const char *text)
{
	struct sw_yaml_stream *s = NULL;
	if (sw_yaml_parse(&s, "f.yml", text, strlen(text)) < 0)
		fail_msg("parse: %s", sw_error_last());
	return s;
}

/* Finish `r`: must fail with exactly `want` in the slot. */
static void expect_messages(struct sw_yaml_reader *r, const char *want)
{
	assert_int_equal(sw_yaml_reader_done(r), SW_EINVALID);
	assert_string_equal(sw_error_last(), want);
	assert_int_equal(r->nerrors, 0);
	assert_int_equal(r->errors.len, 0);
}

static void test_repeated_key(void **state)
{
	static const char *const keys[] = { "a", "b", NULL };
	struct sw_yaml_stream *s = parse("top:\n  a: 1\n  b: 2\n  a: 3\n");
	const struct sw_yaml_node *top = sw_yaml_get(s->docs[0].root, "top");
	struct sw_yaml_reader r = SW_YAML_READER_INIT("f.yml");

	/* with a list of keys and without one: the same error */
	assert_int_equal(sw_yaml_want_map(&r, top, "top", keys), 0);
	assert_int_equal(sw_yaml_want_map(&r, top, "top", NULL), 0);
	expect_messages(&r, "f.yml:4:3: top: key 'a' appears twice (first at 2:3)\n"
			    "f.yml:4:3: top: key 'a' appears twice (first at 2:3)");
	sw_yaml_free(s);
}

static void test_map_keys(void **state)
{
	static const char *const keys[] = { "name", "url", NULL };
	struct sw_yaml_stream *s = parse("- {name: x, colour: red, [1]: y}\n- [1]\n");
	const struct sw_yaml_node *root = s->docs[0].root;
	struct sw_yaml_reader r = SW_YAML_READER_INIT("f.yml");

	assert_int_equal(sw_yaml_want_map(&r, root->items[0], "repos[0]", keys), 0);
	assert_int_equal(sw_yaml_want_map(&r, root->items[1], "repos[1]", keys), -1);
	assert_int_equal(sw_yaml_want_map(&r, NULL, "", keys), -1);
	expect_messages(&r,
		"f.yml:1:13: repos[0]: unknown key 'colour' (expected one of: name, url)\n"
		"f.yml:1:26: repos[0]: keys must be strings\n"
		"f.yml:2:3: repos[1]: expected a mapping, found sequence\n"
		"f.yml:1:1: expected a mapping, found null");
	sw_yaml_free(s);

	/* nothing wrong: 0 and the slot untouched */
	s = parse("{name: x, url: y}\n");
	sw_error_setc(SW_ERR, "untouched");
	assert_int_equal(sw_yaml_want_map(&r, s->docs[0].root, "x", keys), 0);
	assert_int_equal(sw_yaml_reader_done(&r), 0);
	assert_string_equal(sw_error_last(), "untouched");
	sw_yaml_free(s);
}

static void test_getters(void **state)
{
	struct sw_yaml_stream *s = parse("s: hello\nn: ~\nb: yes\ni: 42\nbig: 4000\nl: [a, b]\n");
	const struct sw_yaml_node *m = s->docs[0].root;
	struct sw_yaml_reader r = SW_YAML_READER_INIT("f.yml");
	char *str = sw_strdup("default");
	int b = -1, i = -1;

	/* absent: output untouched, no error unless required */
	assert_int_equal(sw_yaml_get_str(&str, &r, m, "", "nope", 0), 0);
	assert_string_equal(str, "default");
	assert_int_equal(sw_yaml_get_bool(&b, &r, m, "", "nope", 0), 0);
	assert_int_equal(sw_yaml_get_int(&i, &r, m, "", "nope", 0, 9, 0), 0);
	assert_int_equal(b, -1);
	assert_int_equal(i, -1);
	assert_int_equal(sw_yaml_reader_done(&r), 0);

	/* present and right */
	assert_int_equal(sw_yaml_get_str(&str, &r, m, "", "s", 0), 0);
	assert_string_equal(str, "hello");
	assert_int_equal(sw_yaml_get_bool(&b, &r, m, "", "b", 0), 0);
	assert_int_equal(b, 1);
	assert_int_equal(sw_yaml_get_int(&i, &r, m, "", "i", 0, 100, 0), 0);
	assert_int_equal(i, 42);
	/* null under SW_YAML_NULL_ABSENT is absent */
	assert_int_equal(sw_yaml_get_str(&str, &r, m, "", "n", SW_YAML_NULL_ABSENT), 0);
	assert_string_equal(str, "hello");
	assert_int_equal(sw_yaml_reader_done(&r), 0);

	/* wrong: output untouched, each located at its value */
	assert_int_equal(sw_yaml_get_str(&str, &r, m, "top", "n", 0), -1);
	assert_int_equal(sw_yaml_get_str(&str, &r, m, "top", "l", 0), -1);
	assert_int_equal(sw_yaml_get_bool(&b, &r, m, "top", "s", 0), -1);
	assert_int_equal(sw_yaml_get_int(&i, &r, m, "top", "big", 0, 100, 0), -1);
	assert_int_equal(sw_yaml_get_str(&str, &r, m, "top", "nope", SW_YAML_REQUIRED), -1);
	assert_string_equal(str, "hello");
	assert_int_equal(b, 1);
	assert_int_equal(i, 42);
	expect_messages(&r,
		"f.yml:2:4: top.n: expected a string, found null\n"
		"f.yml:6:4: top.l: expected a string, found sequence\n"
		"f.yml:1:4: top.s: expected true or false, found a string\n"
		"f.yml:5:6: top.big: expected an integer from 0 to 100, found 4000\n"
		"f.yml:1:1: top.nope: missing (expected a string)");
	free(str);
	sw_yaml_free(s);
}

static void test_string_lists(void **state)
{
	struct sw_yaml_stream *s = parse("one: x\nlist: [a, {b: 1}, c]\nempty: []\nnull: ~\n");
	const struct sw_yaml_node *m = s->docs[0].root;
	const struct sw_yaml_node **at;
	struct sw_yaml_reader r = SW_YAML_READER_INIT("f.yml");
	char **v;
	size_t n;

	/* a lone string is a list of one, unless lists only */
	assert_int_equal(sw_yaml_want_strv(&v, &at, &r, sw_yaml_get(m, "one"), "one", 0), 1);
	assert_string_equal(v[0], "x");
	assert_null(v[1]);
	assert_int_equal(at[0]->mark.line, 1);
	sw_strv_free(v);
	free(at);
	assert_int_equal(sw_yaml_reader_done(&r), 0);

	/* bad items are reported and left out; the rest keep their nodes */
	assert_int_equal(sw_yaml_want_strv(&v, &at, &r, sw_yaml_get(m, "list"), "list", 0), 2);
	assert_string_equal(v[0], "a");
	assert_string_equal(v[1], "c");
	assert_null(v[2]);
	assert_int_equal(at[1]->mark.col, 19);
	sw_strv_free(v);
	free(at);

	assert_int_equal(sw_yaml_want_strv(&v, NULL, &r, sw_yaml_get(m, "one"), "one",
					   SW_YAML_LIST_ONLY), 0);
	assert_null(v);
	assert_int_equal(sw_yaml_want_strv(&v, NULL, &r, sw_yaml_get(m, "empty"), "empty",
					   SW_YAML_NONEMPTY), 0);
	assert_null(v);
	assert_int_equal(sw_yaml_want_strv(&v, NULL, &r, sw_yaml_get(m, "null"), "null", 0), 0);
	assert_null(v);
	expect_messages(&r,
		"f.yml:2:11: list[1]: expected a string, found mapping\n"
		"f.yml:1:6: one: expected a list of strings, found a string\n"
		"f.yml:3:8: empty: empty list (leave the key out instead)\n"
		"f.yml:4:7: null: expected a string or a list of strings, found null");

	/* an empty list is a list (it clears a default); null may mean absent */
	assert_int_equal(sw_yaml_want_strv(&v, NULL, &r, sw_yaml_get(m, "empty"), "empty", 0), 0);
	assert_non_null(v);
	assert_null(v[0]);
	sw_strv_free(v);
	assert_int_equal(sw_yaml_want_strv(&v, NULL, &r, sw_yaml_get(m, "null"), "null",
					   SW_YAML_NULL_ABSENT), 0);
	assert_null(v);
	assert_int_equal(sw_yaml_reader_done(&r), 0);

	/* the getter replaces the old list only with a list */
	v = sw_strv_dup((const char *const[]){ "old", NULL });
	n = 1;
	assert_int_equal(sw_yaml_get_strv(&v, &n, &r, m, "", "one", SW_YAML_LIST_ONLY), -1);
	assert_string_equal(v[0], "old");
	assert_int_equal(sw_yaml_get_strv(&v, &n, &r, m, "", "empty", 0), 0);
	assert_int_equal(n, 0);
	assert_null(v[0]);
	sw_strv_free(v);
	assert_int_equal(sw_yaml_reader_done(&r), SW_EINVALID);
	sw_yaml_free(s);
}

static void test_error_bound(void **state)
{
	struct sw_yaml_reader r = SW_YAML_READER_INIT("f.yml");

	r.max_errors = 2;
	for (int i = 0; i < 5; i++)
		assert_int_equal(sw_yaml_error(&r, NULL, i % 2 ? "p" : "", "e%d", i), -1);
	expect_messages(&r, "f.yml:1:1: e0\nf.yml:1:1: p: e1\n(3 more errors not shown)");
}

static void test_describe(void **state)
{
	struct sw_yaml_stream *s = parse("[~, true, 1, 1.5, x, '1', [], {}]\n");
	const struct sw_yaml_node *l = s->docs[0].root;
	const char *want[] = { "null", "a boolean", "an integer", "a number", "a string",
			       "a string", "sequence", "mapping" };

	for (size_t i = 0; i < 8; i++)
		assert_string_equal(sw_yaml_describe(l->items[i]), want[i]);
	assert_string_equal(sw_yaml_describe(NULL), "null");
	assert_true(sw_yaml_is_null(NULL));
	assert_true(sw_yaml_is_null(l->items[0]));
	assert_false(sw_yaml_is_null(l->items[5]));
	char *p = sw_yaml_path("a.b", "c");
	assert_string_equal(p, "a.b.c");
	free(p);
	p = sw_yaml_path("", "c");
	assert_string_equal(p, "c");
	free(p);
	sw_yaml_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_repeated_key),
		cmocka_unit_test(test_map_keys),
		cmocka_unit_test(test_getters),
		cmocka_unit_test(test_string_lists),
		cmocka_unit_test(test_error_bound),
		cmocka_unit_test(test_describe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
