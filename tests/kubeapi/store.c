/*
 * store.c - resource types and objects of the test API server.
 *
 * Every resource type (struct ka_rtype) owns a hash map "ns/name" -> object,
 * so get/put/delete are O(1) and only lists walk a map. One resource type
 * covers all its served versions: apps/v1 Deployment is one object whatever
 * version it is read through. resourceVersions come from one global counter,
 * as etcd's revision does; every write is also appended to a bounded ring of
 * events so a watch can resume from a resourceVersion it has seen, and a
 * resourceVersion older than the ring gets 410 Expired.
 */
#include "tests/kubeapi/kubeapi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t ka_rv = 1;
uint64_t ka_ring_dropped;
struct ka_rtype *ka_rtypes;

static struct ka_map rt_by_gp;   /* "group/plural" -> rtype */
static struct ka_map rt_by_gk;   /* "group/Kind" -> rtype */
static struct ka_map ns_counts;  /* namespace -> (uintptr_t) objects in it */

static struct ka_event *ring;
static size_t ring_cap, ring_head, ring_len;

static char *lower(const char *s)
{
	char *p = ka_strdup(s);
	for (char *q = p; *q; q++)
		if (*q >= 'A' && *q <= 'Z')
			*q = (char)(*q - 'A' + 'a');
	return p;
}

bool ka_rtype_serves(const struct ka_rtype *rt, const char *version)
{
	for (int i = 0; i < rt->nversions; i++)
		if (!strcmp(rt->versions[i], version))
			return true;
	return false;
}

struct ka_rtype *ka_rtype_find(const char *group, const char *version, const char *plural)
{
	char key[512];
	snprintf(key, sizeof(key), "%s/%s", group, plural);
	struct ka_rtype *rt = ka_map_get(&rt_by_gp, key);
	if (!rt || !rt->active || (version && !ka_rtype_serves(rt, version)))
		return NULL;
	return rt;
}

struct ka_rtype *ka_rtype_by_gk(const char *group, const char *kind)
{
	char key[512];
	snprintf(key, sizeof(key), "%s/%s", group, kind);
	struct ka_rtype *rt = ka_map_get(&rt_by_gk, key);
	return rt && rt->active ? rt : NULL;
}

struct ka_rtype *ka_rtype_add(const char *group, const char *version, const char *plural,
    const char *singular, const char *kind, bool namespaced, const char *shorts,
    bool has_status, bool all_cat)
{
	char key[512];
	snprintf(key, sizeof(key), "%s/%s", group, plural);
	struct ka_rtype *rt = ka_map_get(&rt_by_gp, key);
	if (!rt) {
		rt = ka_calloc(1, sizeof(*rt));
		rt->group = ka_strdup(group);
		rt->plural = ka_strdup(plural);
		rt->next = NULL;
		struct ka_rtype **pp = &ka_rtypes;
		while (*pp)
			pp = &(*pp)->next;
		*pp = rt;
		ka_map_put(&rt_by_gp, key, rt);
	} else {
		/* A CRD coming back or changing: reset what it declares. */
		for (int i = 0; i < rt->nversions; i++)
			free(rt->versions[i]);
		for (int i = 0; i < rt->nshort; i++)
			free(rt->short_names[i]);
		rt->nversions = rt->nshort = 0;
		free(rt->singular);
		free(rt->kind);
		free(rt->list_kind);
	}
	rt->versions[rt->nversions++] = ka_strdup(version);
	rt->singular = singular ? ka_strdup(singular) : lower(kind);
	rt->kind = ka_strdup(kind);
	rt->list_kind = ka_asprintf("%sList", kind);
	rt->namespaced = namespaced;
	rt->has_status = has_status;
	rt->all_category = all_cat;
	rt->active = true;
	for (const char *p = shorts; p && *p && rt->nshort < 6;) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);
		char *s = ka_malloc(n + 1);
		memcpy(s, p, n);
		s[n] = 0;
		rt->short_names[rt->nshort++] = s;
		p += n + (c ? 1 : 0);
	}
	snprintf(key, sizeof(key), "%s/%s", group, kind);
	ka_map_put(&rt_by_gk, key, rt);
	return rt;
}

static void add_version(struct ka_rtype *rt, const char *v)
{
	if (rt->nversions < 8 && !ka_rtype_serves(rt, v))
		rt->versions[rt->nversions++] = ka_strdup(v);
}

struct ka_obj *ka_obj_get(struct ka_rtype *rt, const char *ns, const char *name)
{
	char key[640];
	snprintf(key, sizeof(key), "%s/%s", rt->namespaced && ns ? ns : "", name);
	return ka_map_get(&rt->objs, key);
}

size_t ka_ns_count(const char *ns)
{
	return (size_t)(uintptr_t)ka_map_get(&ns_counts, ns);
}

static void ns_count_add(const char *ns, int d)
{
	if (!ns || !*ns)
		return;
	uintptr_t n = (uintptr_t)ka_map_get(&ns_counts, ns);
	n = (uintptr_t)((intptr_t)n + d);
	if (n)
		ka_map_put(&ns_counts, ns, (void *)n);
	else
		ka_map_del(&ns_counts, ns);
}

static void stamp_rv(json_t *o, uint64_t rv)
{
	char s[32];
	snprintf(s, sizeof(s), "%llu", (unsigned long long)rv);
	json_object_set_new(ka_jobj(o, "metadata"), "resourceVersion", json_string(s));
}

static void ring_push(enum ka_ev_type type, struct ka_rtype *rt, const char *ns,
    json_t *obj, json_t *old)
{
	if (!ring) {
		ring_cap = ka_set.event_ring > 0 ? (size_t)ka_set.event_ring : 1;
		ring = ka_calloc(ring_cap, sizeof(*ring));
	}
	struct ka_event *e;
	if (ring_len == ring_cap) {
		e = &ring[ring_head];
		ka_ring_dropped = e->rv;
		json_decref(e->obj);
		json_decref(e->old);
		free(e->ns);
		ring_head = (ring_head + 1) % ring_cap;
		ring_len--;
	}
	e = &ring[(ring_head + ring_len) % ring_cap];
	ring_len++;
	e->rv = ka_rv;
	e->type = type;
	e->rt = rt;
	e->ns = ns ? ka_strdup(ns) : NULL;
	e->obj = json_incref(obj);
	e->old = old ? json_incref(old) : NULL;
	ka_watch_notify(e);
}

bool ka_ring_since(uint64_t from, void (*fn)(const struct ka_event *, void *), void *arg)
{
	if (from < ka_ring_dropped)
		return false;
	/* Binary search the first event with rv > from (the ring is sorted). */
	size_t lo = 0, hi = ring_len;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (ring[(ring_head + mid) % ring_cap].rv <= from)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < ring_len; i++)
		fn(&ring[(ring_head + i) % ring_cap], arg);
	return true;
}

struct ka_obj *ka_store_put(struct ka_rtype *rt, struct ka_obj *cur, json_t *o)
{
	json_t *old = NULL;
	ka_rv++;
	stamp_rv(o, ka_rv);
	if (!cur) {
		const char *ns = rt->namespaced ? ka_jstr(o, "metadata.namespace") : NULL;
		const char *name = ka_jstr(o, "metadata.name");
		cur = ka_calloc(1, sizeof(*cur));
		cur->rt = rt;
		cur->ns = ns ? ka_strdup(ns) : NULL;
		cur->name = ka_strdup(name);
		cur->key = ka_asprintf("%s/%s", ns ? ns : "", name);
		ka_map_put(&rt->objs, cur->key, cur);
		ns_count_add(cur->ns, 1);
	} else {
		old = cur->o;
	}
	cur->o = o;
	cur->rv = ka_rv;
	ring_push(old ? KA_MODIFIED : KA_ADDED, rt, cur->ns, o, old);
	ka_ctrl_on_write(cur, old);
	if (rt->is_crd == false && !strcmp(rt->group, "apiextensions.k8s.io"))
		ka_crd_sync(o, false);
	json_decref(old);
	return cur;
}

void ka_store_remove(struct ka_obj *cur, json_t *final)
{
	struct ka_rtype *rt = cur->rt;
	ka_rv++;
	stamp_rv(final, ka_rv);
	ka_map_del(&rt->objs, cur->key);
	ns_count_add(cur->ns, -1);
	ka_ctrl_on_delete(cur);
	ring_push(KA_DELETED, rt, cur->ns, final, cur->o);
	if (!strcmp(rt->group, "apiextensions.k8s.io"))
		ka_crd_sync(final, true);
	json_decref(cur->o);
	json_decref(final);
	free(cur->key);
	free(cur->ns);
	free(cur->name);
	free(cur);
}

/* The built-in types: group, version, plural, Kind, namespaced, short names,
 * status subresource, "all" category. */
static const struct {
	const char *g, *v, *plural, *kind;
	bool ns;
	const char *shorts;
	bool status, all;
} builtin[] = {
	{"", "v1", "pods", "Pod", true, "po", true, true},
	{"", "v1", "services", "Service", true, "svc", true, true},
	{"", "v1", "configmaps", "ConfigMap", true, "cm", false, false},
	{"", "v1", "secrets", "Secret", true, NULL, false, false},
	{"", "v1", "namespaces", "Namespace", false, "ns", true, false},
	{"", "v1", "serviceaccounts", "ServiceAccount", true, "sa", false, false},
	{"", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, "pvc", true, false},
	{"", "v1", "persistentvolumes", "PersistentVolume", false, "pv", true, false},
	{"", "v1", "endpoints", "Endpoints", true, "ep", false, false},
	{"", "v1", "events", "Event", true, "ev", false, false},
	{"", "v1", "nodes", "Node", false, "no", true, false},
	{"", "v1", "replicationcontrollers", "ReplicationController", true, "rc", true, true},
	{"", "v1", "limitranges", "LimitRange", true, "limits", false, false},
	{"", "v1", "resourcequotas", "ResourceQuota", true, "quota", true, false},
	{"apps", "v1", "deployments", "Deployment", true, "deploy", true, true},
	{"apps", "v1", "statefulsets", "StatefulSet", true, "sts", true, true},
	{"apps", "v1", "daemonsets", "DaemonSet", true, "ds", true, true},
	{"apps", "v1", "replicasets", "ReplicaSet", true, "rs", true, true},
	{"apps", "v1", "controllerrevisions", "ControllerRevision", true, NULL, false, false},
	{"batch", "v1", "jobs", "Job", true, NULL, true, true},
	{"batch", "v1", "cronjobs", "CronJob", true, "cj", true, true},
	{"networking.k8s.io", "v1", "ingresses", "Ingress", true, "ing", true, false},
	{"networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, "netpol", false, false},
	{"networking.k8s.io", "v1", "ingressclasses", "IngressClass", false, NULL, false, false},
	{"rbac.authorization.k8s.io", "v1", "roles", "Role", true, NULL, false, false},
	{"rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, NULL, false, false},
	{"rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, NULL, false, false},
	{"rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, NULL, false, false},
	{"policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, "pdb", true, false},
	{"autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", true, "hpa", true, true},
	{"coordination.k8s.io", "v1", "leases", "Lease", true, NULL, false, false},
	{"apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false, "crd,crds", true, false},
	{"storage.k8s.io", "v1", "storageclasses", "StorageClass", false, "sc", false, false},
};

static void seed_namespace(const char *name)
{
	char uid[37], ts[32];
	ka_uuid(uid);
	ka_time_now(ts);
	json_t *o = json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:{s:s}},s:{s:[s]},s:{s:s}}",
	    "apiVersion", "v1", "kind", "Namespace",
	    "metadata", "name", name, "uid", uid, "creationTimestamp", ts,
	    "labels", "kubernetes.io/metadata.name", name,
	    "spec", "finalizers", "kubernetes", "status", "phase", "Active");
	ka_store_put(ka_rtype_find("", "v1", "namespaces"), NULL, o);
}

void ka_store_init(void)
{
	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++) {
		struct ka_rtype *rt = ka_rtype_add(builtin[i].g, builtin[i].v, builtin[i].plural,
		    NULL, builtin[i].kind, builtin[i].ns, builtin[i].shorts, builtin[i].status,
		    builtin[i].all);
		if (!strcmp(builtin[i].plural, "deployments") || !strcmp(builtin[i].plural, "statefulsets") ||
		    !strcmp(builtin[i].plural, "replicasets"))
			rt->has_scale = true;
		/* Kinds whose strategy keeps metadata.generation in 1.32. */
		const char *g = builtin[i].g;
		rt->has_generation = !strcmp(g, "apps") || !strcmp(g, "batch") ||
		    !strcmp(g, "networking.k8s.io") || !strcmp(g, "policy") || !strcmp(g, "autoscaling") ||
		    !strcmp(g, "apiextensions.k8s.io") || !strcmp(builtin[i].plural, "replicationcontrollers");
	}
	/* autoscaling/v1 is still served for HPAs. */
	add_version(ka_rtype_find("autoscaling", NULL, "horizontalpodautoscalers"), "v1");
	seed_namespace("default");
	seed_namespace("kube-system");
	seed_namespace("kube-public");
	seed_namespace("kube-node-lease");
}

/*
 * --state-file: every object as one JSON document {"resourceVersion": N,
 * "objects": [...]}, CRDs and namespaces first so that loading recreates
 * types and namespaces before what lives in them.
 */
static int state_rank(const struct ka_rtype *rt)
{
	if (!strcmp(rt->group, "apiextensions.k8s.io"))
		return 0;
	if (!*rt->group && !strcmp(rt->plural, "namespaces"))
		return 1;
	return 2;
}

int ka_state_save(const char *path)
{
	json_t *objs = json_array();
	for (int rank = 0; rank < 3; rank++)
		for (struct ka_rtype *rt = ka_rtypes; rt; rt = rt->next) {
			if (!rt->active || state_rank(rt) != rank)
				continue;
			KA_MAP_FOREACH(&rt->objs, e)
				json_array_append(objs, ((struct ka_obj *)e->val)->o);
		}
	json_t *doc = json_pack("{s:I,s:o}", "resourceVersion", (json_int_t)ka_rv, "objects", objs);
	char *tmp = ka_asprintf("%s.tmp", path);
	int rc = json_dump_file(doc, tmp, JSON_COMPACT);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -1;
	if (rc != 0)
		fprintf(stderr, "kubeapi: cannot save state to %s\n", path);
	free(tmp);
	json_decref(doc);
	return rc;
}

int ka_state_load(const char *path)
{
	json_error_t je;
	json_t *doc = json_load_file(path, 0, &je);
	if (!doc) {
		fprintf(stderr, "kubeapi: state file %s: %s (line %d)\n", path, je.text, je.line);
		return -1;
	}
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(doc, "objects"), i, o) {
		const char *av = ka_jstr(o, "apiVersion"), *kind = ka_jstr(o, "kind");
		if (!av || !kind)
			continue;
		char group[256] = "";
		const char *slash = strchr(av, '/');
		if (slash && (size_t)(slash - av) < sizeof(group)) {
			memcpy(group, av, (size_t)(slash - av));
			group[slash - av] = 0;
		}
		struct ka_rtype *rt = ka_rtype_by_gk(group, kind);
		const char *name = ka_jstr(o, "metadata.name");
		if (!rt || !name)
			continue;
		struct ka_obj *cur = ka_obj_get(rt, ka_jstr(o, "metadata.namespace"), name);
		ka_store_put(rt, cur, json_deep_copy(o));
	}
	json_int_t rv = json_integer_value(json_object_get(doc, "resourceVersion"));
	if ((uint64_t)rv > ka_rv)
		ka_rv = (uint64_t)rv;
	/* Resuming watches from before the restart is not possible. */
	ka_ring_dropped = ka_rv;
	json_decref(doc);
	return 0;
}
