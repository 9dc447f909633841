/*
 * test_yaml.c - lib/yaml against what kubectl does.
 *
 * Every expectation marked "kubectl" was produced by kubectl 1.32 reading the
 * same text offline: `kubectl label --local -f FILE x=y -o json` (its reader
 * is sigs.k8s.io/yaml over go-yaml v2). Where slipway deliberately differs,
 * the test says so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <cmocka.h>

#include "lib/buf.h"
#include "lib/error.h"
#include "lib/yaml.h"

/* Parse `text`, convert document `doc`; returns the rc, *out the JSON or NULL. */
static int to_json(const char *text, size_t doc, json_t **out)
{
	struct sw_yaml_stream *s = NULL;
	int rc;

	*out = NULL;
	rc = sw_yaml_parse(&s, "t.yaml", text, strlen(text));
	if (rc < 0)
		return rc;
	assert_true(doc < s->ndocs);
	rc = sw_yaml_to_json(out, s, s->docs[doc].root, 0);
	sw_yaml_free(s);
	return rc;
}

/* Assert that `yaml` converts to the JSON text `want`. */
static void check_json(const char *yaml, const char *want)
{
	json_t *got, *exp;
	json_error_t jerr;

	if (to_json(yaml, 0, &got) < 0)
		fail_msg("%s: %s", yaml, sw_error_last());
	exp = json_loads(want, JSON_DECODE_ANY, &jerr);
	assert_non_null(exp);
	if (!json_equal(got, exp)) {
		char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_SORT_KEYS);
		fail_msg("%s\n  got  %s\n  want %s", yaml, g, want);
	}
	/* an integer must stay an integer (the API server refuses 1.0 for int32) */
	if (json_is_integer(exp) && !json_is_integer(got))
		fail_msg("%s: want an integer", yaml);
	json_decref(got);
	json_decref(exp);
}

/* Assert that `yaml` fails with a message containing `want`. */
static void check_error(const char *yaml, const char *want)
{
	json_t *got;
	int rc = to_json(yaml, 0, &got);
	if (rc >= 0)
		fail_msg("%s: expected an error containing '%s'", yaml, want);
	assert_int_equal(rc, SW_EINVALID);
	if (!strstr(sw_error_last(), want))
		fail_msg("%s: error '%s' lacks '%s'", yaml, sw_error_last(), want);
}

/* --- scalars ----------------------------------------------------------- */

struct scalar_case {
	const char *yaml;   /* the value as written after "v: " */
	const char *json;   /* kubectl's JSON for it */
};

static const struct scalar_case scalars[] = {
	/* YAML 1.1 booleans (kubectl) */
	{ "yes", "true" }, { "Yes", "true" }, { "YES", "true" }, { "y", "true" }, { "Y", "true" },
	{ "on", "true" }, { "On", "true" }, { "true", "true" }, { "True", "true" },
	{ "no", "false" }, { "n", "false" }, { "N", "false" }, { "off", "false" },
	{ "OFF", "false" }, { "false", "false" }, { "FALSE", "false" },
	{ "tRUE", "\"tRUE\"" }, { "yEs", "\"yEs\"" }, { "nUll", "\"nUll\"" },
	/* nulls */
	{ "~", "null" }, { "null", "null" }, { "Null", "null" }, { "NULL", "null" }, { "", "null" },
	/* integers: octal, hex, binary, underscores, signs, 64-bit edges */
	{ "0", "0" }, { "-0", "0" }, { "42", "42" }, { "+12", "12" }, { "0777", "511" },
	{ "0o17", "15" }, { "-017", "-15" }, { "0x1F", "31" }, { "+0x10", "16" },
	{ "0x_1F", "31" }, { "0b101", "5" }, { "1_000", "1000" }, { "-1_0", "-10" },
	{ "9223372036854775807", "9223372036854775807" },
	{ "-9223372036854775808", "-9223372036854775808" },
	/* beyond int64: a float, as kubectl sends it */
	{ "9223372036854775808", "9223372036854775808.0" },
	{ "18446744073709551616", "18446744073709551616.0" },
	{ "0xFFFFFFFFFFFFFFFF", "18446744073709551615.0" },
	{ "08", "8" },         /* not octal; the float pattern takes it */
	/* floats; integral ones print as integers, as Go's encoding/json does */
	{ "1.5", "1.5" }, { "1e3", "1000" }, { "1E3", "1000" }, { "1.", "1" }, { ".5", "0.5" },
	{ "1_0.5", "10.5" }, { "-2.5e-3", "-0.0025" },
	/* strings that look like something else */
	{ "1e", "\"1e\"" }, { "1:20", "\"1:20\"" }, { "2001-12-14", "\"2001-12-14\"" },
	{ "0x", "\"0x\"" }, { "1e400", "\"1e400\"" }, { "._5", "\"._5\"" }, { "a:b", "\"a:b\"" },
	{ "0x1_0000000000000000", "\"0x1_0000000000000000\"" },
	/* quoting and tags keep the text */
	{ "\"yes\"", "\"yes\"" }, { "'on'", "\"on\"" }, { "\"\"", "\"\"" }, { "'0777'", "\"0777\"" },
	{ "!!str 123", "\"123\"" }, { "!!str true", "\"true\"" }, { "!!str ~", "\"~\"" },
	{ "!!int \"42\"", "42" }, { "!!float 1", "1" }, { "!!bool \"yes\"", "true" },
	{ "!!binary aGVsbG8=", "\"hello\"" }, { "!!binary |\n  aGVs\n  bG8=", "\"hello\"" },
	{ "!local 12", "\"12\"" },
	/* flow collections */
	{ "[1, \"2\", yes]", "[1, \"2\", true]" }, { "{a: 1}", "{\"a\": 1}" }, { "[]", "[]" },
};

static void test_scalars(void **state)
{
	char doc[256];
	for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++) {
		char want[256];
		snprintf(doc, sizeof(doc), "v: %s\n", scalars[i].yaml);
		snprintf(want, sizeof(want), "{\"v\": %s}", scalars[i].json);
		check_json(doc, want);
	}
}

static void test_resolve_api(void **state)
{
	struct sw_yaml_stream *s;
	struct sw_yaml_scalar sc;
	const char *text = "a: 0x1F\nb: 'yes'\nc: off\n";

	assert_int_equal(sw_yaml_parse(&s, "r.yaml", text, strlen(text)), 0);
	sw_yaml_resolve(sw_yaml_get(s->docs[0].root, "a"), &sc);
	assert_int_equal(sc.kind, SW_YK_INT);
	assert_int_equal(sc.i, 31);
	sw_yaml_resolve(sw_yaml_get(s->docs[0].root, "b"), &sc);
	assert_int_equal(sc.kind, SW_YK_STR);
	sw_yaml_resolve(sw_yaml_get(s->docs[0].root, "c"), &sc);
	assert_int_equal(sc.kind, SW_YK_BOOL);
	assert_int_equal(sc.b, 0);
	assert_null(sw_yaml_get(s->docs[0].root, "zz"));
	assert_int_equal(sw_yaml_get(s->docs[0].root, "c")->mark.line, 3);
	assert_int_equal(sw_yaml_get(s->docs[0].root, "c")->mark.col, 4);
	sw_yaml_free(s);
}

static void test_bad_scalars(void **state)
{
	check_error("v: .inf\n", "t.yaml:1:4: .inf cannot be represented in JSON");
	check_error("v: -.Inf\n", "cannot be represented");
	check_error("v: .nan\n", "cannot be represented");
	/* kubectl: cannot decode !!str `abc` as a !!int */
	/* (slipway leaves the value out: it may be a Secret's) */
	check_error("v: !!int abc\n", "t.yaml:1:4: the value is not a valid !!int");
	check_error("v: !!bool maybe\n", "not a valid !!bool");
	assert_null(strstr(sw_error_last(), "maybe"));
	check_error("v: !!binary '***'\n", "invalid base64");
	/* Go's StdEncoding wants the padding */
	check_error("v: !!binary aGVsbG8\n", "t.yaml:1:4: !!binary value contains invalid base64 "
		    "data (byte 7: the last group of four is cut short)");
}

/* Keys become strings the way sigs.k8s.io/yaml writes them (kubectl). */
static void test_keys(void **state)
{
	check_json("1: a\ntrue: b\n1.5: c\n0x10: d\n\"True\": e\n1e3: f\n",
		   "{\"1\": \"a\", \"true\": \"b\", \"1.5\": \"c\", \"16\": \"d\", \"True\": \"e\", \"1000\": \"f\"}");
	/* kubectl: "unsupported map key of type: <nil>" */
	check_error("~: a\n", "t.yaml:1:1: a null mapping key");
	check_error("[a]: b\n", "a mapping key must be a scalar");
}

/* Block scalars (kubectl). */
static void test_block_scalars(void **state)
{
	check_json("lit: |\n  line1\n  line2\nnext: 1\n", "{\"lit\": \"line1\\nline2\\n\", \"next\": 1}");
	check_json("fold: >\n  a\n  b\n", "{\"fold\": \"a b\\n\"}");
	check_json("keep: |+\n  k\n\nx: 1\n", "{\"keep\": \"k\\n\\n\", \"x\": 1}");
	check_json("strip: |-\n  s\n", "{\"strip\": \"s\"}");
	check_json("num: |\n  123\n", "{\"num\": \"123\\n\"}");   /* a block is never a number */
	/* and a plain key `n` is the boolean false (kubectl: "false") */
	check_json("n: 1\n", "{\"false\": 1}");
	check_json("word: >-\n  yes\n", "{\"word\": \"yes\"}");
}

/* --- anchors, aliases, merge keys ------------------------------------- */

static void test_anchors(void **state)
{
	check_json("a: &x {k: 1}\nb: *x\nc: &s hello\nd: *s\n",
		   "{\"a\": {\"k\": 1}, \"b\": {\"k\": 1}, \"c\": \"hello\", \"d\": \"hello\"}");
	/* an anchor may be redefined; an alias uses the latest */
	check_json("a: &x 1\nb: &x 2\nc: *x\n", "{\"a\": 1, \"b\": 2, \"c\": 2}");
	/* kubectl: yaml: unknown anchor 'nope' referenced */
	check_error("a: *nope\n", "t.yaml:1:4: unknown anchor 'nope'");
	/* a node cannot contain itself */
	check_error("a: &x [1, *x]\n", "unknown anchor 'x'");
}

static void test_anchors_do_not_cross_documents(void **state)
{
	struct sw_yaml_stream *s;
	const char *text = "a: &x 1\n---\nb: *x\n";
	assert_int_equal(sw_yaml_parse(&s, "t.yaml", text, strlen(text)), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "t.yaml:3:4: unknown anchor 'x'"));
}

/* Merge keys as go-yaml v2 applies them; each case checked with kubectl. */
static void test_merge_keys(void **state)
{
	/* a list: the earlier mapping wins; explicit keys after the merge win */
	check_json("o: &o {b: \"3\", c: \"4\"}\nb: &b {a: \"1\", b: \"2\"}\n"
		   "data:\n  <<: [*o, *b]\n  a: \"0\"\n",
		   "{\"o\": {\"b\": \"3\", \"c\": \"4\"}, \"b\": {\"a\": \"1\", \"b\": \"2\"},"
		   " \"data\": {\"a\": \"0\", \"b\": \"3\", \"c\": \"4\"}}");
	/* a merge after an explicit key overrides it (go-yaml v2, not the spec) */
	check_json("base: &b {a: \"1\", b: \"1\"}\ndata:\n  a: \"0\"\n  <<: *b\n  c: \"2\"\n",
		   "{\"base\": {\"a\": \"1\", \"b\": \"1\"}, \"data\": {\"a\": \"1\", \"b\": \"1\", \"c\": \"2\"}}");
	/* two merge keys: the later wins */
	check_json("b1: &b1 {a: \"1\"}\nb2: &b2 {a: \"2\"}\ndata:\n  <<: *b1\n  <<: *b2\n",
		   "{\"b1\": {\"a\": \"1\"}, \"b2\": {\"a\": \"2\"}, \"data\": {\"a\": \"2\"}}");
	/* a quoted or tagged "<<" is an ordinary key */
	check_json("data:\n  \"<<\": x\n  s: !!str <<\n", "{\"data\": {\"<<\": \"x\", \"s\": \"<<\"}}");
	/* kubectl: map merge requires map or sequence of maps as the value */
	check_error("data:\n  <<: x\n", "t.yaml:2:7: merge key '<<' needs a mapping");
	check_error("data:\n  <<: [{a: 1}, 2]\n", "needs a mapping");
}

/* kubectl keeps the last of two equal keys; slipway refuses the file. */
static void test_duplicate_keys(void **state)
{
	check_error("a: 1\nb:\n  c: 1\n  c: 2\n", "t.yaml:4:3: key \"c\" is defined twice");
	/* yes and on are both the key "true" once resolved */
	check_error("yes: 1\non: 2\n", "t.yaml:2:1: key \"true\" is defined twice");
	/* a key written once beside a merged one is not a duplicate */
	check_json("m: &m {a: 1}\nd:\n  <<: *m\n  a: 2\n", "{\"m\": {\"a\": 1}, \"d\": {\"a\": 2}}");
}

/* --- alias bombs --------------------------------------------------------- */

static const char laughs[] =
	"a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
	"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
	"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
	"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
	"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
	"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
	"g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
	"h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
	"i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";

static long maxrss_kb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* kubectl: "document contains excessive aliasing". */
static void test_billion_laughs(void **state)
{
	struct sw_buf big = SW_BUF_INIT;
	long rss0 = maxrss_kb();
	json_t *j;

	check_error(laughs, "t.yaml:1:1: document expands to more than 1000000 nodes");
	/* ten more levels: the count saturates instead of overflowing */
	sw_buf_adds(&big, laughs);
	for (char c = 'j'; c <= 's'; c++)
		sw_buf_addf(&big, "%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n", c, c,
			    c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1, c - 1);
	check_error(big.ptr, "alias bomb");
	sw_buf_release(&big);
	/* rejected before anything is built: no big allocation */
	assert_true(maxrss_kb() - rss0 < 20 * 1024);

	/* a small bound applies to ordinary documents too */
	{
		struct sw_yaml_stream *s;
		const char *text = "a: [1, 2, 3]\n";
		assert_int_equal(sw_yaml_parse(&s, "t.yaml", text, strlen(text)), 0);
		/* the mapping, its key, the sequence and three items */
		assert_int_equal(sw_yaml_to_json(&j, s, s->docs[0].root, 5), SW_EINVALID);
		assert_int_equal(sw_yaml_to_json(&j, s, s->docs[0].root, 6), 0);
		json_decref(j);
		sw_yaml_free(s);
	}
}

/* Aliases below the bound still expand in full. */
static void test_aliases_under_bound(void **state)
{
	json_t *j;
	const char *text = "a: &a [1, 2, 3]\nb: &b [*a, *a, *a]\nc: [*b, *b]\n";
	assert_int_equal(to_json(text, 0, &j), 0);
	assert_int_equal(json_array_size(json_object_get(j, "c")), 2);
	assert_int_equal(json_integer_value(json_array_get(json_array_get(
		json_array_get(json_object_get(j, "c"), 1), 2), 0)), 1);
	json_decref(j);
}

/* --- errors -------------------------------------------------------------- */

static void test_syntax_errors(void **state)
{
	struct sw_yaml_stream *s;
	/* kubectl: yaml: line 6: did not find expected ',' or ']' */
	const char *flow = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: t\ndata:\n  a: [1, 2\n  b: c\n";
	/* kubectl: yaml: line 4: found character that cannot start any token */
	const char *tab = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: a\n";
	const char *indent = "a:\n  b: 1\n c: 2\n";

	assert_int_equal(sw_yaml_parse(&s, "dir/cm.yaml", flow, strlen(flow)), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "dir/cm.yaml:7:4: did not find expected ',' or ']'"));
	assert_non_null(strstr(sw_error_last(), "while parsing a flow sequence at line 6 column 6"));
	assert_int_equal(sw_yaml_parse(&s, "tab.yaml", tab, strlen(tab)), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "tab.yaml:4:1: found character that cannot start any token"));
	assert_int_equal(sw_yaml_parse(&s, "i.yaml", indent, strlen(indent)), SW_EINVALID);
	assert_true(!strncmp(sw_error_last(), "i.yaml:3:2: ", 12));
}

/* Nesting is bounded (a stack of 100000 '[' must not crash anything). */
static void test_deep_nesting(void **state)
{
	struct sw_yaml_stream *s;
	size_t n = 100000;
	char *deep = malloc(n + 1);
	memset(deep, '[', n);
	deep[n] = '\0';
	assert_int_equal(sw_yaml_parse(&s, "deep.yaml", deep, n), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "deep.yaml:1:"));
	free(deep);
}

/* --- documents and text -------------------------------------------------- */

static void test_multi_document(void **state)
{
	struct sw_yaml_stream *s;
	json_t *j;
	/* kubectl reads configmap/a and configmap/b from this */
	const char *text = "---\n---\nkind: A\n---\n# only a comment\n---\nkind: B\n...\n";

	assert_int_equal(sw_yaml_parse(&s, "m.yaml", text, strlen(text)), 0);
	assert_int_equal(s->ndocs, 4);
	assert_int_equal(s->docs[1].start.line, 2);
	assert_int_equal(s->docs[3].start.line, 6);
	for (size_t i = 0; i < s->ndocs; i++) {
		assert_int_equal(sw_yaml_to_json(&j, s, s->docs[i].root, 0), 0);
		if (i == 1 || i == 3)
			assert_true(json_is_object(j));
		else
			assert_true(json_is_null(j));   /* empty documents convert to null */
		json_decref(j);
	}
	sw_yaml_free(s);

	/* an empty stream has no documents; an implicit document starts at its content */
	assert_int_equal(sw_yaml_parse(&s, "e.yaml", "", 0), 0);
	assert_int_equal(s->ndocs, 0);
	sw_yaml_free(s);
	assert_int_equal(sw_yaml_parse(&s, "c.yaml", "# hi\n\nkind: A\n", 14), 0);
	assert_int_equal(s->ndocs, 1);
	assert_int_equal(s->docs[0].start.line, 3);
	assert_int_equal(s->docs[0].start.col, 1);
	sw_yaml_free(s);
}

static void test_utf8(void **state)
{
	struct sw_yaml_stream *s;
	json_t *j;
	const char *bad = "a: 1\nbb: \"h\xc3\xa9\xff\"\n";

	/* kubectl: "h\u00e9llo \u2713 \ud83d\ude00" and escapes decoded */
	check_json("a: \"h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80\"\nb: \"\\u00e9\\U0001F600\"\n"
		   "\xc3\xa9: plain \xe2\x9c\x93\n",
		   "{\"a\": \"h\\u00e9llo \\u2713 \\ud83d\\ude00\", \"b\": \"\\u00e9\\ud83d\\ude00\","
		   " \"\\u00e9\": \"plain \\u2713\"}");
	/* a UTF-8 byte order mark is allowed */
	check_json("\xef\xbb\xbf" "a: 1\n", "{\"a\": 1}");
	/* invalid UTF-8: kubectl passes it through, slipway names the place (column in characters) */
	assert_int_equal(sw_yaml_parse(&s, "u.yaml", bad, strlen(bad)), SW_EINVALID);
	assert_non_null(strstr(sw_error_last(), "u.yaml:2:8: invalid leading UTF-8 octet"));
	/* an escape that makes a NUL stays in the string */
	assert_int_equal(to_json("a: \"x\\0y\"\n", 0, &j), 0);
	assert_int_equal(json_string_length(json_object_get(j, "a")), 3);
	json_decref(j);
}

/*
 * Long keys are not cut short. (An implicit key is limited to 1024
 * characters by YAML itself, in libyaml and go-yaml alike: use `? key`.)
 */
static void test_long_key(void **state)
{
	struct sw_buf b = SW_BUF_INIT;
	json_t *j;
	sw_buf_adds(&b, "? ");
	for (int i = 0; i < 3000; i++)
		sw_buf_addch(&b, 'k');
	sw_buf_adds(&b, "\n: 1\n");
	assert_int_equal(to_json(b.ptr, 0, &j), 0);
	assert_int_equal(json_object_size(j), 1);
	{
		const char *k;
		json_t *v;
		json_object_foreach(j, k, v)
			assert_int_equal(strlen(k), 3000);
	}
	json_decref(j);
	sw_buf_release(&b);
}

/* Many anchors are all kept and found (in a hash table, so in linear time:
 * how fast is a benchmark's question, not a test's; a 5 s bound here
 * failed under a loaded make check). */
static void test_many_anchors(void **state)
{
	struct sw_buf b = SW_BUF_INIT;
	struct sw_yaml_stream *s;
	json_t *j;
	for (int i = 0; i < 100000; i++)
		sw_buf_addf(&b, "k%d: &a%d %d\n", i, i, i);
	sw_buf_adds(&b, "last: *a99999\n");
	assert_int_equal(sw_yaml_parse(&s, "a.yaml", b.ptr, b.len), 0);
	assert_int_equal(sw_yaml_to_json(&j, s, s->docs[0].root, 0), 0);
	assert_int_equal(json_integer_value(json_object_get(j, "last")), 99999);
	json_decref(j);
	sw_yaml_free(s);
	sw_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars),
		cmocka_unit_test(test_resolve_api),
		cmocka_unit_test(test_bad_scalars),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_block_scalars),
		cmocka_unit_test(test_anchors),
		cmocka_unit_test(test_anchors_do_not_cross_documents),
		cmocka_unit_test(test_merge_keys),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_billion_laughs),
		cmocka_unit_test(test_aliases_under_bound),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_multi_document),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_long_key),
		cmocka_unit_test(test_many_anchors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
