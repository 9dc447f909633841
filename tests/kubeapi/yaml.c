/*
 * yaml.c - the first document of a YAML stream as a jansson value, for
 * `application/apply-patch+yaml` bodies that are YAML rather than JSON.
 * Plain scalars are typed as YAML 1.2's core schema does (null, booleans,
 * integers, floats); quoted scalars are always strings. Anchors and aliases
 * are not supported (Kubernetes manifests do not use them in practice).
 */
#include "tests/kubeapi/kubeapi.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

static json_t *scalar(const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return json_stringn(s, n);
	if (!n || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
		return json_null();
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return json_true();
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return json_false();
	char *end;
	errno = 0;
	long long ll = strtoll(s, &end, 10);
	if (*end == 0 && errno == 0 && (s[0] != '0' || n == 1))
		return json_integer(ll);
	if (strspn(s, "+-0123456789.eE") == n && strpbrk(s, "0123456789")) {
		double d = strtod(s, &end);
		if (*end == 0)
			return json_real(d);
	}
	return json_stringn(s, n);
}

static json_t *node(yaml_parser_t *p, yaml_event_t *ev, const char **err, int depth);

static json_t *next_node(yaml_parser_t *p, const char **err, int depth)
{
	yaml_event_t ev;
	if (!yaml_parser_parse(p, &ev)) {
		*err = p->problem ? p->problem : "yaml parse error";
		return NULL;
	}
	json_t *v = node(p, &ev, err, depth);
	yaml_event_delete(&ev);
	return v;
}

static json_t *node(yaml_parser_t *p, yaml_event_t *ev, const char **err, int depth)
{
	if (depth > 100) {
		*err = "yaml nested too deeply";
		return NULL;
	}
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		return scalar(ev);
	case YAML_ALIAS_EVENT:
		*err = "yaml aliases are not supported";
		return NULL;
	case YAML_SEQUENCE_START_EVENT: {
		json_t *a = json_array();
		for (;;) {
			yaml_event_t e;
			if (!yaml_parser_parse(p, &e)) {
				*err = p->problem ? p->problem : "yaml parse error";
				json_decref(a);
				return NULL;
			}
			if (e.type == YAML_SEQUENCE_END_EVENT) {
				yaml_event_delete(&e);
				return a;
			}
			json_t *v = node(p, &e, err, depth + 1);
			yaml_event_delete(&e);
			if (!v) {
				json_decref(a);
				return NULL;
			}
			json_array_append_new(a, v);
		}
	}
	case YAML_MAPPING_START_EVENT: {
		json_t *o = json_object();
		for (;;) {
			yaml_event_t e;
			if (!yaml_parser_parse(p, &e)) {
				*err = p->problem ? p->problem : "yaml parse error";
				json_decref(o);
				return NULL;
			}
			if (e.type == YAML_MAPPING_END_EVENT) {
				yaml_event_delete(&e);
				return o;
			}
			if (e.type != YAML_SCALAR_EVENT) {
				yaml_event_delete(&e);
				*err = "yaml mapping keys must be scalars";
				json_decref(o);
				return NULL;
			}
			char *key = ka_strdup((const char *)e.data.scalar.value);
			yaml_event_delete(&e);
			json_t *v = next_node(p, err, depth + 1);
			if (!v) {
				free(key);
				json_decref(o);
				return NULL;
			}
			json_object_set_new(o, key, v);
			free(key);
		}
	}
	default:
		*err = "unexpected yaml event";
		return NULL;
	}
}

json_t *ka_yaml_load(const char *buf, size_t len, const char **err)
{
	yaml_parser_t p;
	yaml_event_t ev;
	json_t *v = NULL;
	*err = NULL;
	if (!yaml_parser_initialize(&p)) {
		*err = "yaml init failed";
		return NULL;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	for (;;) {
		if (!yaml_parser_parse(&p, &ev)) {
			*err = p.problem ? p.problem : "yaml parse error";
			break;
		}
		yaml_event_type_t t = ev.type;
		if (t == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			*err = "empty yaml document";
			break;
		}
		if (t == YAML_STREAM_START_EVENT || t == YAML_DOCUMENT_START_EVENT) {
			yaml_event_delete(&ev);
			continue;
		}
		v = node(&p, &ev, err, 0);
		yaml_event_delete(&ev);
		break;
	}
	yaml_parser_delete(&p);
	return v;
}
