/*
 * objset.c - a set of desired objects with their origin: identity checks,
 * keys, duplicate detection and apply order (see manifests.h, "Rendering
 * desired state"). Pure data: no I/O, no logging of object contents.
 */
#include "manifests/manifests.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"

struct sw_objset *sw_objset_new(void)
{
	return sw_calloc(1, sizeof(struct sw_objset));
}

void sw_obj_release(struct sw_obj *o)
{
	json_decref(o->json);
	free(o->source);
	free(o->api_version);
	free(o->group);
	free(o->kind);
	free(o->ns);
	free(o->name);
	free(o->key);
	free(o->notes);
	free(o->generate_name);
	json_decref(o->ignore);
}

void sw_objset_free(struct sw_objset *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		sw_obj_release(&set->objs[i]);
	free(set->objs);
	free(set);
}

static void group_of(struct sw_buf *out, const char *api_version)
{
	const char *slash = strchr(api_version, '/');
	if (slash)
		sw_buf_add(out, api_version, (size_t)(slash - api_version));
}

void sw_obj_key(struct sw_buf *out, const char *api_version, const char *kind,
		const char *ns, const char *name)
{
	group_of(out, api_version);
	sw_buf_addf(out, "/%s/%s/%s", kind, ns ? ns : "", name);
}

void sw_obj_where(const struct sw_obj *o, struct sw_buf *out)
{
	if (o->rendered)
		sw_buf_addf(out, "%s (output %d:%d)", o->source, o->line, o->col);
	else
		sw_buf_addf(out, "%s:%d:%d", o->source, o->line, o->col);
}

struct kind_phase {
	const char *group, *kind;
	enum sw_phase phase;
};

static const struct kind_phase phases[] = {
	{ "", "Namespace", SW_PHASE_CLUSTER },
	{ "apiextensions.k8s.io", "CustomResourceDefinition", SW_PHASE_CLUSTER },
	{ "", "ServiceAccount", SW_PHASE_RBAC },
	{ "rbac.authorization.k8s.io", "ClusterRole", SW_PHASE_RBAC },
	{ "rbac.authorization.k8s.io", "ClusterRoleBinding", SW_PHASE_RBAC },
	{ "rbac.authorization.k8s.io", "Role", SW_PHASE_RBAC },
	{ "rbac.authorization.k8s.io", "RoleBinding", SW_PHASE_RBAC },
	{ "", "ConfigMap", SW_PHASE_CONFIG },
	{ "", "Secret", SW_PHASE_CONFIG },
	{ "", "PersistentVolume", SW_PHASE_CONFIG },
	{ "", "PersistentVolumeClaim", SW_PHASE_CONFIG },
	{ "storage.k8s.io", "StorageClass", SW_PHASE_CONFIG },
	{ "", "Service", SW_PHASE_SERVICE },
	{ "apps", "Deployment", SW_PHASE_WORKLOAD },
	{ "apps", "StatefulSet", SW_PHASE_WORKLOAD },
	{ "apps", "DaemonSet", SW_PHASE_WORKLOAD },
	{ "apps", "ReplicaSet", SW_PHASE_WORKLOAD },
	{ "extensions", "Deployment", SW_PHASE_WORKLOAD },
	{ "extensions", "DaemonSet", SW_PHASE_WORKLOAD },
	{ "extensions", "ReplicaSet", SW_PHASE_WORKLOAD },
	{ "batch", "Job", SW_PHASE_WORKLOAD },
	{ "batch", "CronJob", SW_PHASE_WORKLOAD },
	{ "", "Pod", SW_PHASE_WORKLOAD },
};

/* The group matters: a Knative serving.knative.dev Service is not a Service. */
enum sw_phase sw_kind_phase(const char *group, const char *kind)
{
	for (size_t i = 0; i < sizeof(phases) / sizeof(phases[0]); i++)
		if (!strcmp(phases[i].kind, kind) && !strcmp(phases[i].group, group))
			return phases[i].phase;
	return SW_PHASE_OTHER;
}

/* A non-empty JSON string member, or NULL. */
static const char *str_member(json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);
	return json_is_string(v) && json_string_length(v) > 0 ? json_string_value(v) : NULL;
}

/* Parse the sync-wave annotation: an optionally signed decimal integer. */
static int parse_wave(const char *s, long *out)
{
	char *end;
	errno = 0;
	if (!*s || !(*s == '-' || *s == '+' || (*s >= '0' && *s <= '9')))
		return -1;
	*out = strtol(s, &end, 10);
	if (errno || *end)
		return -1;
	return 0;
}

/* ---- per-object options (Argo CD's sync-options and compare-options) ---- */

struct opt_rule {
	const char *name;
	const char *values;      /* "|"-separated values taken; NULL: any */
	unsigned set_if_false, set_if_true;
	const char *note;        /* noted when given (NULL: acted on, quietly) */
};

static const struct opt_rule sync_rules[] = {
	{ "Prune", "true|false|confirm", SW_OPT_NO_PRUNE, 0, NULL },
	{ "Delete", "true|false|confirm", SW_OPT_NO_DELETE, 0, NULL },
	{ "Replace", "true|false", 0, SW_OPT_REPLACE, NULL },
	{ "Force", "true|false", 0, SW_OPT_FORCE, NULL },
	{ "Validate", "true|false", SW_OPT_NO_VALIDATE, 0, NULL },
	{ "ServerSideApply", "true|false", 0, 0, NULL },
	{ "PruneLast", "true|false", 0, 0, NULL },
	{ "SkipDryRunOnMissingResource", "true|false", 0, 0, NULL },
	{ "CreateNamespace", "true|false", 0, 0,
	  "CreateNamespace is an Argo CD Application option; write the Namespace as a manifest" },
	{ "ApplyOutOfSyncOnly", "true|false", 0, 0,
	  "ApplyOutOfSyncOnly is an Argo CD Application option; slipway applies every object" },
	{ "RespectIgnoreDifferences", "true|false", 0, 0,
	  "RespectIgnoreDifferences is an Argo CD Application option" },
	{ "PrunePropagationPolicy", "foreground|background|orphan", 0, 0,
	  "PrunePropagationPolicy is an Argo CD Application option; slipway prunes in the background" },
	{ "FailOnSharedResource", "true|false", 0, 0,
	  "FailOnSharedResource is an Argo CD Application option" },
};

static const struct opt_rule compare_rules[] = {
	{ "IgnoreExtraneous", NULL, 0, SW_OPT_IGNORE_EXTRANEOUS, NULL },
	{ "ServerSideDiff", "true|false", 0, 0, NULL },
	{ "IncludeMutationWebhook", "true|false", 0, 0, NULL },
};

static int value_in(const char *v, size_t n, const char *values)
{
	for (const char *p = values; p && *p;) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == n && !strncmp(p, v, n))
			return 1;
		p = bar ? bar + 1 : p + len;
	}
	return 0;
}

static void note(struct sw_buf *notes, const char *fmt, const char *a, const char *b)
{
	if (notes->len)
		sw_buf_adds(notes, "; ");
	sw_buf_addf(notes, fmt, a, b);
}

/* One annotation's comma-separated options, by `rules`. */
static int read_options(const char *ann, const char *text, const struct opt_rule *rules,
			size_t nrules, unsigned *opts, struct sw_buf *notes)
{
	char *copy = sw_strdup(text), *save = NULL;
	int rc = 0;

	for (char *tok = strtok_r(copy, ",", &save); tok && rc == 0;
	     tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		size_t len = strlen(tok);
		while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
			tok[--len] = 0;
		if (!len)
			continue;
		char *eq = strchr(tok, '=');
		size_t nlen = eq ? (size_t)(eq - tok) : len;
		const char *val = eq ? eq + 1 : "";
		const struct opt_rule *r = NULL;
		for (size_t i = 0; i < nrules; i++) {
			if (strlen(rules[i].name) != nlen)
				continue;
			if (!strncmp(rules[i].name, tok, nlen)) {
				r = &rules[i];
				break;
			}
			if (!strncasecmp(rules[i].name, tok, nlen)) {
				rc = sw_error_setc(SW_EINVALID, "annotation %s: option %s is spelt %s",
						   ann, tok, rules[i].name);
				break;
			}
		}
		if (rc < 0)
			break;
		if (!r) {
			note(notes, "%s: unknown option %s, ignored", ann, tok);
			continue;
		}
		if (r->values && !value_in(val, strlen(val), r->values)) {
			rc = sw_error_setc(SW_EINVALID, "annotation %s: option %.*s takes %s, not "
					   "\"%s\"", ann, (int)nlen, tok, r->values, val);
			break;
		}
		int off = !strcmp(val, "false") || !strcmp(val, "confirm");
		if (off)
			*opts |= r->set_if_false;
		else if (!r->values || !strcmp(val, "true"))
			*opts |= r->set_if_true;
		if (r->note)
			note(notes, "%s%s", r->note, "");
		else if (!strcmp(r->name, "ServerSideApply") && off)
			note(notes, "%s%s", "ServerSideApply=false: slipway always applies server-side", "");
		else if (!strcmp(val, "confirm"))
			note(notes, "%s=confirm: slipway asks no one; kept as %s=false", r->name, r->name);
	}
	free(copy);
	return rc;
}

int sw_sync_options(json_t *annotations, unsigned *opts, struct sw_buf *notes)
{
	static const char *const names[] = { SW_SYNC_OPTIONS_ANNOTATION,
		SW_ARGO_SYNC_OPTIONS_ANNOTATION };
	json_t *v;
	int rc = 0;

	*opts = 0;
	for (int i = 0; i < 2 && rc == 0; i++) {
		if (!(v = json_object_get(annotations, names[i])))
			continue;
		if (!json_is_string(v))
			return sw_error_setc(SW_EINVALID, "annotation %s must be a string", names[i]);
		rc = read_options(names[i], json_string_value(v), sync_rules,
				  sizeof(sync_rules) / sizeof(sync_rules[0]), opts, notes);
	}
	if (rc == 0 && (v = json_object_get(annotations, SW_ARGO_COMPARE_OPTIONS_ANNOTATION))) {
		if (!json_is_string(v))
			return sw_error_setc(SW_EINVALID, "annotation %s must be a string",
					     SW_ARGO_COMPARE_OPTIONS_ANNOTATION);
		rc = read_options(SW_ARGO_COMPARE_OPTIONS_ANNOTATION, json_string_value(v),
				  compare_rules, sizeof(compare_rules) / sizeof(compare_rules[0]),
				  opts, notes);
	}
	return rc;
}

static void problem(struct sw_buf *msg, const char *fmt, const char *arg)
{
	sw_buf_adds(msg, msg->len ? "; " : "");
	sw_buf_addf(msg, fmt, arg);
}

/* ---- JSON pointers (RFC 6901) -------------------------------------------- */

/* The next reference token of *p, unescaped, into `out`; 0 at the end. */
static int next_token(const char **p, struct sw_buf *out)
{
	if (**p != '/')
		return 0;
	sw_buf_reset(out);
	for ((*p)++; **p && **p != '/'; (*p)++) {
		if (**p == '~' && ((*p)[1] == '0' || (*p)[1] == '1')) {
			sw_buf_addch(out, (*p)[1] == '0' ? '~' : '/');
			(*p)++;
		} else {
			sw_buf_addch(out, **p);
		}
	}
	sw_buf_addch(out, 0);   /* an empty token is "" */
	out->len--;
	return 1;
}

static json_t *child(json_t *v, const char *tok)
{
	if (json_is_object(v))
		return json_object_get(v, tok);
	if (json_is_array(v) && *tok >= '0' && *tok <= '9')
		return json_array_get(v, strtoul(tok, NULL, 10));
	return NULL;
}

void sw_json_pointer_remove(json_t *doc, const char *p)
{
	struct sw_buf tok = SW_BUF_INIT, last = SW_BUF_INIT;
	json_t *parent = NULL, *v = doc;

	while (v && next_token(&p, &tok)) {
		parent = v;
		sw_buf_reset(&last);
		sw_buf_add(&last, tok.ptr, tok.len);
		sw_buf_addch(&last, 0);
		v = child(v, tok.ptr);
	}
	if (v && parent && !*p) {
		if (json_is_object(parent))
			json_object_del(parent, last.ptr);
		else if (json_is_array(parent))
			json_array_remove(parent, strtoul(last.ptr, NULL, 10));
	}
	sw_buf_release(&tok);
	sw_buf_release(&last);
}

/* The pointers of a slipway.dev/ignore-differences annotation. */
static json_t *read_ignore(const char *text, struct sw_buf *msg)
{
	json_t *a = json_array();
	char *copy = sw_strdup(text), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ')
			t++;
		size_t n = strlen(t);
		while (n && t[n - 1] == ' ')
			t[--n] = 0;
		if (!n)
			continue;
		const char *why = sw_json_pointer_problem(t);
		if (why) {
			sw_buf_adds(msg, msg->len ? "; " : "");
			sw_buf_addf(msg, "annotation " SW_IGNORE_DIFFERENCES_ANNOTATION ": '%s' is not a "
				    "JSON pointer: %s", t, why);
			continue;
		}
		json_array_append_new(a, json_string(t));
	}
	free(copy);
	if (!json_array_size(a)) {
		json_decref(a);
		return NULL;
	}
	return a;
}

/* ---- hooks (Argo CD's, and Helm's as Argo CD maps them) ----------------- */

/* The next comma-separated word of *p (spaces trimmed), or NULL at the end. */
static const char *next_word(const char **p, size_t *len)
{
	const char *s = *p, *e, *t;
	while (*s == ' ' || *s == ',')
		s++;
	if (!*s)
		return NULL;
	for (e = s; *e && *e != ','; e++)
		;
	for (t = e; t > s && t[-1] == ' '; t--)
		;
	*p = e;
	*len = (size_t)(t - s);
	return s;
}

static int in_list(const char *list, const char *word)
{
	const char *p = list ? list : "", *w;
	size_t n;
	while ((w = next_word(&p, &n)))
		if (n == strlen(word) && !strncmp(w, word, n))
			return 1;
	return 0;
}

/* The first comma-separated word of `list` that is not one of `words`. */
static const char *unknown_word(const char *list, const char *const *words, char *buf,
				size_t size)
{
	const char *p = list ? list : "", *w;
	size_t n;
	while ((w = next_word(&p, &n))) {
		int known = 0;
		for (size_t i = 0; words[i]; i++)
			known |= strlen(words[i]) == n && !strncmp(words[i], w, n);
		if (!known) {
			snprintf(buf, size, "%.*s", (int)n, w);
			return buf;
		}
	}
	return NULL;
}

/* A delete policy's words (succeeded, failed, before creation, in that
 * order in `words`) as SW_HOOK_DELETE_* bits. */
static unsigned delete_policy(const char *ann, const char *v, const char *const *words,
			      struct sw_buf *msg)
{
	static const unsigned bits[] = { SW_HOOK_DELETE_SUCCEEDED, SW_HOOK_DELETE_FAILED,
		SW_HOOK_DELETE_BEFORE };
	unsigned del = 0;
	char bad[64];
	if (unknown_word(v, words, bad, sizeof(bad))) {
		sw_buf_adds(msg, msg->len ? "; " : "");
		sw_buf_addf(msg, "annotation %s: %s is not %s, %s or %s", ann, bad, words[0],
			    words[1], words[2]);
	}
	for (int i = 0; i < 3; i++)
		if (in_list(v, words[i]))
			del |= bits[i];
	return del;
}

/* The hook and delete policy of an object's annotations; a problem into `msg`. */
static void read_hook(json_t *ann, struct sw_buf *msg, struct sw_buf *notes, unsigned *hook,
		      unsigned *del, long *wave, int have_wave)
{
	static const char *const argo[] = { "PreSync", "Sync", "PostSync", "SyncFail", "Skip", NULL };
	static const char *const argo_del[] = { "HookSucceeded", "HookFailed",
		"BeforeHookCreation", NULL };
	static const char *const helm[] = { "pre-install", "pre-upgrade", "post-install",
		"post-upgrade", "crd-install", "pre-delete", "post-delete", "pre-rollback",
		"post-rollback", "test", "test-success", "test-failure", NULL };
	static const char *const helm_del[] = { "hook-succeeded", "hook-failed",
		"before-hook-creation", NULL };
	const char *a = json_string_value(json_object_get(ann, SW_ARGO_HOOK_ANNOTATION));
	const char *h = json_string_value(json_object_get(ann, SW_HELM_HOOK_ANNOTATION));
	const char *ad = json_string_value(json_object_get(ann, SW_ARGO_HOOK_DELETE_ANNOTATION));
	const char *hd = json_string_value(json_object_get(ann, SW_HELM_HOOK_DELETE_ANNOTATION));
	char bad[64];

	*hook = *del = 0;
	if (a) {
		if (unknown_word(a, argo, bad, sizeof(bad)))
			problem(msg, "annotation " SW_ARGO_HOOK_ANNOTATION ": %s is not PreSync, "
				"Sync, PostSync, SyncFail or Skip", bad);
		for (int i = 0; argo[i]; i++)
			if (in_list(a, argo[i]))
				*hook |= 1u << i;
	} else if (h) {   /* Argo CD's own annotation wins, as in Argo CD */
		if (unknown_word(h, helm, bad, sizeof(bad)))
			problem(msg, "annotation " SW_HELM_HOOK_ANNOTATION ": %s is not a Helm hook",
				bad);
		if (in_list(h, "pre-install") || in_list(h, "pre-upgrade"))
			*hook |= SW_HOOK_PRESYNC;
		if (in_list(h, "post-install") || in_list(h, "post-upgrade"))
			*hook |= SW_HOOK_POSTSYNC;
		if (!*hook && !in_list(h, "crd-install")) {
			*hook = SW_HOOK_SKIP;
			if (notes->len)
				sw_buf_adds(notes, "; ");
			sw_buf_addf(notes, "helm.sh/hook %s is not run (nor by Argo CD)", h);
		}
		const char *w = json_string_value(json_object_get(ann, SW_HELM_HOOK_WEIGHT_ANNOTATION));
		if (*hook && w && !have_wave && parse_wave(w, wave) < 0)
			problem(msg, "%s", "annotation " SW_HELM_HOOK_WEIGHT_ANNOTATION
				" must be an integer in a string");
	}
	if (!*hook)
		return;
	if (ad)
		*del = delete_policy(SW_ARGO_HOOK_DELETE_ANNOTATION, ad, argo_del, msg);
	else if (hd)
		*del = delete_policy(SW_HELM_HOOK_DELETE_ANNOTATION, hd, helm_del, msg);
	if (!*del)
		*del = SW_HOOK_DELETE_BEFORE;
}

void sw_objset_take_hooks(struct sw_objset *set, struct sw_obj **hooks, size_t *nhooks)
{
	size_t keep = 0, n = 0;
	*hooks = NULL;
	for (size_t i = 0; i < set->n; i++)
		if (set->objs[i].hook && !(set->objs[i].hook & SW_HOOK_SKIP))
			n++;
	*hooks = sw_calloc(n + 1, sizeof(**hooks));
	*nhooks = 0;
	for (size_t i = 0; i < set->n; i++) {
		struct sw_obj *o = &set->objs[i];
		if (!o->hook)
			set->objs[keep++] = *o;
		else if (o->hook & SW_HOOK_SKIP)
			sw_obj_release(o);
		else
			(*hooks)[(*nhooks)++] = *o;
	}
	set->n = keep;
	sw_objset_sort_for_apply(set);   /* stages numbered again without them */
}

/*
 * An identity field: absent, or present with the wrong type. `name: no` or
 * `namespace: on` are booleans in YAML 1.1, which deserves a hint.
 */
static const char *field(struct sw_buf *msg, json_t *obj, const char *member, const char *label)
{
	json_t *v = json_object_get(obj, member);

	if (json_is_string(v) && json_string_length(v) > 0)
		return json_string_value(v);
	sw_buf_adds(msg, msg->len ? "; " : "");
	if (!v || json_is_null(v))
		sw_buf_addf(msg, "missing %s", label);
	else if (json_is_boolean(v) || json_is_number(v))
		sw_buf_addf(msg, "%s must be a string, not %s (quote it: YAML reads yes/no/on/off/y/n "
			    "as booleans)", label, json_is_boolean(v) ? "a boolean" : "a number");
	else
		sw_buf_addf(msg, "%s must be a non-empty string", label);
	return NULL;
}

int sw_objset_add(struct sw_objset *set, json_t *json, const char *source,
		  int line, int col, int rendered)
{
	struct sw_buf msg = SW_BUF_INIT, key = SW_BUF_INIT, group = SW_BUF_INIT;
	const char *av = NULL, *kind = NULL, *name = NULL, *ns = "";
	json_t *meta = NULL, *v;
	long wave = 0;
	unsigned opts = 0, hook = 0, hook_delete = 0;
	const char *gen = NULL;
	json_t *ignore = NULL;
	struct sw_buf notes = SW_BUF_INIT;
	struct sw_obj *o;
	int rc = 0;

	if (!json_is_object(json)) {
		problem(&msg, "document is %s, not a Kubernetes object",
			json_is_array(json) ? "a list" : "a scalar");
		goto done;
	}
	/* "which field": name each one that is missing or of the wrong type */
	av = field(&msg, json, "apiVersion", "apiVersion");
	kind = field(&msg, json, "kind", "kind");
	meta = json_object_get(json, "metadata");
	if (meta && !json_is_object(meta)) {
		problem(&msg, "%s", "metadata must be a mapping");
		meta = NULL;
	}
	json_t *ann0 = meta ? json_object_get(meta, "annotations") : NULL;
	gen = meta && !json_object_get(meta, "name") ? str_member(meta, "generateName") : NULL;
	if (gen && !json_object_get(ann0, SW_ARGO_HOOK_ANNOTATION) &&
	    !json_object_get(ann0, SW_HELM_HOOK_ANNOTATION))
		problem(&msg, "%s", "metadata.generateName is for hooks only (an "
			SW_ARGO_HOOK_ANNOTATION " annotation); set metadata.name");
	else if (!gen)
		name = field(&msg, meta, "name", "metadata.name");
	if (meta && (v = json_object_get(meta, "namespace")) && !json_is_null(v)) {
		if (json_is_string(v))
			ns = json_string_value(v);
		else
			field(&msg, meta, "namespace", "metadata.namespace");
	}
	json_t *ann = meta ? json_object_get(meta, "annotations") : NULL;
	static const char *const wave_names[] = { SW_SYNC_WAVE_ANNOTATION, SW_ARGO_WAVE_ANNOTATION };
	int have_wave = 0;
	for (int i = 0; i < 2; i++) {
		long w = 0;
		if (!(v = json_object_get(ann, wave_names[i])))
			continue;
		if (!json_is_string(v) || parse_wave(json_string_value(v), &w) < 0)
			problem(&msg, "annotation %s must be an integer in a string (\"-1\", \"2\")",
				wave_names[i]);
		else if (have_wave && w != wave)
			problem(&msg, "%s", "annotations " SW_SYNC_WAVE_ANNOTATION " and "
				SW_ARGO_WAVE_ANNOTATION " give different waves");
		else
			wave = w;
		have_wave = 1;
	}
	if (ann && sw_sync_options(ann, &opts, &notes) < 0)
		problem(&msg, "%s", sw_error_last());
	if (ann)
		read_hook(ann, &msg, &notes, &hook, &hook_delete, &wave, have_wave);
	if ((v = json_object_get(ann, SW_IGNORE_DIFFERENCES_ANNOTATION))) {
		if (!json_is_string(v))
			problem(&msg, "%s", "annotation " SW_IGNORE_DIFFERENCES_ANNOTATION
				" must be a string of JSON pointers");
		else
			ignore = read_ignore(json_string_value(v), &msg);
	}
	if (gen && !msg.len && (!hook || hook == SW_HOOK_SKIP))
		problem(&msg, "%s", "metadata.generateName is for hooks only; set metadata.name");
done:
	if (msg.len) {
		rc = sw_error_setc(SW_EINVALID, "%s:%d:%d: %s", source, line, col, msg.ptr);
		json_decref(json);
		json_decref(ignore);
		sw_buf_release(&msg);
		sw_buf_release(&notes);
		return rc;
	}
	if (set->n == set->cap) {
		set->cap = set->cap ? set->cap * 2 : 64;
		set->objs = sw_realloc(set->objs, set->cap * sizeof(*set->objs));
	}
	o = &set->objs[set->n++];
	memset(o, 0, sizeof(*o));
	o->json = json;
	o->source = sw_strdup(source);
	o->line = line;
	o->col = col;
	o->rendered = rendered;
	o->api_version = sw_strdup(av);
	group_of(&group, av);
	o->group = sw_buf_detach(&group, NULL);
	o->kind = sw_strdup(kind);
	o->ns = sw_strdup(ns);
	o->name = sw_strdup(name ? name : "");
	o->generate_name = gen ? sw_strdup(gen) : NULL;
	o->hook = hook;
	o->hook_delete = hook_delete;
	o->ignore = ignore;
	sw_obj_key(&key, av, kind, ns, name ? name : gen);
	o->key = sw_buf_detach(&key, NULL);
	o->wave = wave;
	o->opts = opts;
	o->notes = notes.len ? sw_buf_detach(&notes, NULL) : NULL;
	sw_buf_release(&notes);
	o->phase = sw_kind_phase(o->group, o->kind);
	o->is_secret = !strcmp(o->group, "") && !strcmp(o->kind, "Secret");
	return 0;
}

void sw_obj_set_namespace(struct sw_obj *o, const char *ns)
{
	struct sw_buf key = SW_BUF_INIT;
	json_t *meta = json_object_get(o->json, "metadata");

	if (!ns)
		ns = "";
	if (*ns)
		json_object_set_new(meta, "namespace", json_string(ns));
	else
		json_object_del(meta, "namespace");
	free(o->ns);
	o->ns = sw_strdup(ns);
	sw_obj_key(&key, o->api_version, o->kind, o->ns, o->name);
	free(o->key);
	o->key = sw_buf_detach(&key, NULL);
}

/*
 * qsort over indexes: by key, then by position, so "first defined" is the
 * earlier one. qsort_r differs between libcs; a thread-local context serves.
 */
static _Thread_local const struct sw_objset *cmp_set;

static int cmp_key_index(const void *a, const void *b)
{
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	int c = strcmp(cmp_set->objs[i].key, cmp_set->objs[j].key);
	if (c)
		return c;
	return i < j ? -1 : i > j;
}

int sw_objset_check_duplicates(const struct sw_objset *set, struct sw_buf *errors)
{
	struct sw_buf msg = SW_BUF_INIT;
	size_t *idx, ndup = 0;
	int rc = 0;

	if (set->n < 2)
		return 0;
	idx = sw_malloc(set->n * sizeof(*idx));
	for (size_t i = 0; i < set->n; i++)
		idx[i] = i;
	cmp_set = set;
	qsort(idx, set->n, sizeof(*idx), cmp_key_index);
	cmp_set = NULL;
	for (size_t k = 1, run = 0; k < set->n; k++) {
		const struct sw_obj *first = &set->objs[idx[run]], *dup = &set->objs[idx[k]];
		if (strcmp(first->key, dup->key)) {
			run = k;   /* a new key starts a new run */
			continue;
		}
		if (msg.len)
			sw_buf_addch(&msg, '\n');
		sw_obj_where(dup, &msg);
		sw_buf_addf(&msg, ": duplicate object %s, first defined at ", dup->key);
		sw_obj_where(first, &msg);
		ndup++;
	}
	free(idx);
	if (ndup) {
		if (errors) {
			if (errors->len)
				sw_buf_addch(errors, '\n');
			sw_buf_add(errors, msg.ptr, msg.len);
		}
		rc = sw_error_setc(SW_EINVALID, "%s", msg.ptr);
	}
	sw_buf_release(&msg);
	return rc;
}

static int cmp_apply(const void *a, const void *b)
{
	const struct sw_obj *x = a, *y = b;
	if (x->wave != y->wave)
		return x->wave < y->wave ? -1 : 1;
	if (x->phase != y->phase)
		return x->phase < y->phase ? -1 : 1;
	return strcmp(x->key, y->key);
}

void sw_objset_sort_for_apply(struct sw_objset *set)
{
	size_t stage = 0;

	if (set->n > 1)
		qsort(set->objs, set->n, sizeof(*set->objs), cmp_apply);
	for (size_t i = 0; i < set->n; i++) {
		if (i > 0 && (set->objs[i].wave != set->objs[i - 1].wave ||
			      set->objs[i].phase != set->objs[i - 1].phase))
			stage++;
		set->objs[i].stage = stage;
	}
}

size_t sw_objset_stage_end(const struct sw_objset *set, size_t start)
{
	size_t j = start;
	while (j < set->n && set->objs[j].stage == set->objs[start].stage)
		j++;
	return j;
}
