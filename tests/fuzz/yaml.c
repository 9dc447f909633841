/*
 * yaml.c - fuzz target: lib/yaml.c, the YAML reader under every YAML input
 * slipway takes (.slipway.yml from pull requests, manifests, kubeconfigs,
 * the server config): sw_yaml_parse() of the whole stream, then each
 * document to JSON as kubectl would (merge keys, aliases counted against a
 * bound, !!binary, resolved scalars) with a small node bound so alias bombs
 * are refused quickly. Seeds: the manifests fixtures, the example config and
 * .slipway.yml.
 */
#include <jansson.h>

#include "fuzz.h"
#include "lib/yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sw_yaml_stream *s = NULL;
	size_t i;

	fuzz_init();
	if (sw_yaml_parse(&s, "fuzz.yaml", (const char *)data, size) == 0) {
		for (i = 0; i < s->ndocs; i++) {
			json_t *j = NULL;
			if (sw_yaml_to_json(&j, s, s->docs[i].root, 100000) == 0) {
				char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
				free(text);
			}
			json_decref(j);
		}
	}
	sw_yaml_free(s);
	return 0;
}
