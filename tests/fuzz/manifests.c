/*
 * manifests.c - fuzz target: a manifest file of a pull request's checkout
 * rendered as slipway renders a plain file (manifests/render.c and
 * objset.c): a multi-document YAML stream or a JSON document (or List),
 * every document to JSON, integral reals made integers, objects checked
 * (apiVersion, kind, metadata.name, the sync-wave annotation) and added to
 * an object set, duplicates found, then sorted into apply waves. The input
 * is written to a scratch checkout as one file; no tool runs (no
 * kustomization, no chart). Seeds: the guestbook manifests fixtures and
 * seeds/manifests.
 */
#include "fuzz.h"
#include "manifests/manifests.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const paths[] = { "m.yaml" };
	struct sw_render_opts o = SW_RENDER_OPTS_INIT;
	struct sw_objset *set = NULL;
	const char *file;
	char root[512];

	fuzz_init();
	file = fuzz_file("m.yaml", data, size);
	if (!file)
		abort();
	snprintf(root, sizeof(root), "%.*s", (int)(strrchr(file, '/') - file), file);
	o.max_objects = 2000;
	if (sw_render_dir(&set, root, paths, 1, &o) == 0) {
		sw_objset_sort_for_apply(set);
		for (size_t i = 0; i < set->n;)
			i = sw_objset_stage_end(set, i);
	}
	sw_objset_free(set);
	return 0;
}
