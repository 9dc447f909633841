/*
 * kubeanswer.c - fuzz target: what the Kubernetes client reads from an API
 * server. The input is tried as a list or apply answer: managedFields cut by
 * sw_kube_strip_managed_fields() (kube/kube.c, through kube-int.h), checked
 * differentially: when jansson reads the input, the cut text must still be
 * JSON and equal jansson's tree with every managedFields member removed.
 * Then as the client uses an answer: metadata.continue/resourceVersion,
 * each item's health (sw_kube_health, kube/health.c) and its timestamps;
 * and line by line as a watch stream (one event per line, type and object).
 * An API server (or anything that answers on its address) is outside
 * slipway's control. Seeds: seeds/kubeanswer.
 */
#include <jansson.h>

#include "fuzz.h"
#include "kube/kube-int.h"
#include "kube/kube.h"
#include "lib/clock.h"

/* jansson's tree without any managedFields member, at any depth. */
static void drop_managed(json_t *j)
{
	const char *k;
	json_t *v;
	size_t i;

	if (json_is_object(j)) {
		json_object_del(j, "managedFields");
		json_object_foreach(j, k, v)
			drop_managed(v);
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v)
			drop_managed(v);
	}
}

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* What the client and the health checks read from an object. */
static void use_object(const json_t *obj)
{
	char *msg = NULL;
	int64_t ms;
	const char *t;

	sw_kube_health(obj, &msg);
	free(msg);
	t = str(json_object_get(obj, "metadata"), "creationTimestamp");
	if (t)
		sw_parse_rfc3339(t, &ms);
	t = str(json_object_get(obj, "metadata"), "deletionTimestamp");
	if (t)
		sw_parse_rfc3339(t, &ms);
}

static void differ(const char *what, const char *in, size_t n, const char *out, size_t m)
{
	fprintf(stderr, "fuzz kubeanswer: %s\ninput:  %.*s\ncut:    %.*s\n", what,
		(int)(n > 400 ? 400 : n), in, (int)(m > 400 ? 400 : m), out);
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	char *cut = malloc(size ? size : 1);
	size_t n, i, start;
	json_error_t je;
	json_t *ref, *got, *items, *it;

	fuzz_init();
	if (!cut)
		abort();
	memcpy(cut, in, size);
	n = sw_kube_strip_managed_fields(cut, size);
	if (n > size)
		differ("the cut text is longer than the input", in, size, cut, size);
	ref = json_loadb(in, size, 0, &je);
	if (ref) {
		got = json_loadb(cut, n, 0, &je);
		if (!got)
			differ(je.text, in, size, cut, n);
		drop_managed(ref);
		/*
		 * A key written with escapes ("managed\u0046ields") is not cut:
		 * harmless (the fields are only not needed), and no API server
		 * writes one. So without a backslash in the input every
		 * managedFields must be gone; with one, nothing else may change.
		 */
		if (memchr(in, '\\', size))
			drop_managed(got);
		if (!json_equal(ref, got))
			differ("the cut text is not the input without managedFields", in, size,
			       cut, n);
		json_decref(got);

		/* a list page, an apply answer */
		str(json_object_get(ref, "metadata"), "continue");
		str(json_object_get(ref, "metadata"), "resourceVersion");
		items = json_object_get(ref, "items");
		json_array_foreach(items, i, it)
			use_object(it);
		use_object(ref);
		json_decref(ref);
	}
	free(cut);

	/* a watch stream: one JSON event per line */
	for (start = 0, i = 0; i <= size; i++) {
		if (i < size && in[i] != '\n')
			continue;
		if (i > start) {
			json_t *ev = json_loadb(in + start, i - start, 0, &je);
			const json_t *obj = json_object_get(ev, "object");
			const char *type = str(ev, "type");
			if (type && strcmp(type, "ERROR") == 0)
				json_integer_value(json_object_get(obj, "code"));
			else if (obj)
				use_object(obj);
			json_decref(ev);
		}
		start = i + 1;
	}
	return 0;
}
