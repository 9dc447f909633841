/*
 * kubeapi.h - internals of the test Kubernetes API server (tests/kubeapi).
 *
 * The server is one process, one thread, one libevent loop. Its pieces:
 *
 *   main.c      options, listening socket, TLS, kubeconfig files, signals
 *   http.c      routing, auth, discovery, the REST verbs, watches
 *   store.c     resource types, objects, resourceVersions, the event ring
 *   ssa.c       field sets (FieldsV1), server-side apply, merge patches
 *   ctrl.c      simulated controllers that make workloads ready
 *   tlsgen.c    CA, server and client certificates (OpenSSL 3 API)
 *   yaml.c      YAML documents to jansson values (apply-patch+yaml bodies)
 *   util.c      hash map, buffers, time, ids, selectors
 *
 * Stored objects are immutable: every write builds a new json_t and the old
 * one stays valid for whoever still holds a reference (event ring, a watch
 * replay, a list in progress). That is why lists and watches can hand out
 * the stored values themselves with json_incref instead of copying.
 *
 * Nothing here is part of slipway proper; it is a stand-in for EKS in tests.
 */
#ifndef KUBEAPI_H
#define KUBEAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#define KA_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---- settings (main.c) ---- */

struct ka_settings {
	const char *listen;        /* "127.0.0.1:PORT" */
	const char *tls_dir;       /* NULL: plain http */
	const char *token;         /* NULL: no bearer token required */
	const char *kubeconfig_out;/* extra kubeconfig path, NULL: none */
	const char *state_file;    /* unused for now; accepted for compatibility */
	int latency_ms;            /* added to every request, by timer */
	int ready_delay_ms;        /* simulated controllers: time to ready */
	int ready_after_reads;     /* > 0: ready after that many reads instead */
	int hold_writes_after;     /* >= 0: writes after that many are held */
	int event_ring;            /* events kept for watch replay */
	int bookmark_ms;           /* BOOKMARK period on watches */
	int verbose;               /* log every request to stderr */
	/* EKS tokens (k8s-aws-v1.): checked as EKS's authenticator does, by
	 * GETting the presigned STS URL (which must start with eks_sts) with
	 * x-k8s-aws-id: eks_cluster; refused eks_token_life_s after its
	 * X-Amz-Date (EKS: 15 minutes) */
	const char *eks_sts;
	const char *eks_cluster;
	int eks_token_life_s;
};
extern struct ka_settings ka_set;
extern struct event_base *ka_base;

/* ---- util.c ---- */

void *ka_malloc(size_t n);
void *ka_calloc(size_t n, size_t sz);
void *ka_realloc(void *p, size_t n);
char *ka_strdup(const char *s);
char *ka_asprintf(const char *fmt, ...) KA_PRINTF(1, 2);

/* String-keyed hash map of borrowed values; keys are copied. */
struct ka_map_ent {
	char *key;
	uint32_t hash;
	void *val;
	struct ka_map_ent *next;
};
struct ka_map {
	struct ka_map_ent **b;
	size_t nb, n;
};
void *ka_map_get(const struct ka_map *m, const char *key);
/* Insert or replace; returns the previous value or NULL. */
void *ka_map_put(struct ka_map *m, const char *key, void *val);
/* Remove; returns the removed value or NULL. */
void *ka_map_del(struct ka_map *m, const char *key);
/* Call fn on every entry; fn must not change the map. */
#define KA_MAP_FOREACH(m, e)                                              \
	for (size_t ka__i = 0; ka__i < (m)->nb; ka__i++)                      \
		for (struct ka_map_ent *e = (m)->b[ka__i]; e; e = e->next)

/* RFC 3339 UTC time, second precision, into a 32-byte buffer. */
void ka_time_now(char out[32]);
/* Monotonic milliseconds. */
uint64_t ka_now_ms(void);
/* Random RFC 4122 v4 uuid into a 37-byte buffer. */
void ka_uuid(char out[37]);
/* Random lowercase alphanumerics for generateName. */
void ka_rand_suffix(char *out, size_t n);

char *ka_base64(const void *data, size_t len);
/* Returns malloc'd bytes (NUL-terminated) or NULL when invalid. */
char *ka_unbase64(const char *s, size_t *len);

/* Label selectors: a=b, a==b, a!=b, a in (x,y), a notin (x), a, !a. */
struct ka_selector;
/* NULL input or "" gives a selector that matches everything.
 * Returns NULL and sets *err (static string) on a parse error. */
struct ka_selector *ka_selector_parse(const char *s, const char **err);
bool ka_selector_match_labels(const struct ka_selector *sel, json_t *labels);
/* Field selectors: dotted paths compared as strings, with =, == and !=. */
bool ka_selector_match_fields(const struct ka_selector *sel, json_t *obj);
void ka_selector_free(struct ka_selector *sel);

/* Path helpers on jansson values. */
json_t *ka_jpath(json_t *v, const char *dotted);
const char *ka_jstr(json_t *v, const char *dotted);   /* NULL unless a string */
json_t *ka_jobj(json_t *parent, const char *key);     /* get-or-create object */

/* ---- store.c ---- */

struct ka_watch;

struct ka_rtype {
	char *group;          /* "" for core */
	char *versions[8];    /* served versions; [0] is preferred/storage */
	int nversions;
	char *plural, *singular, *kind, *list_kind;
	char *short_names[6];
	int nshort;
	bool namespaced;
	bool has_status;      /* a /status subresource exists */
	bool has_scale;
	bool has_generation;  /* metadata.generation is kept (spec-bearing kinds) */
	bool all_category;    /* in the "all" category */
	bool is_crd;
	bool active;          /* false once its CRD is deleted */
	char *crd_name;       /* name of the owning CRD */
	struct ka_map objs;   /* "ns/name" -> struct ka_obj */
	struct ka_watch *watchers;
	struct ka_rtype *next;
};

struct ka_obj {
	struct ka_rtype *rt;
	char *key;            /* "ns/name" ("/name" cluster-scoped) */
	char *ns, *name;
	json_t *o;            /* immutable snapshot */
	uint64_t rv;
	struct event *ctrl_ev;/* pending controller work, or NULL */
	int64_t ctrl_gen;     /* generation the pending work is for */
	int ctrl_phase;       /* 0: report progress next, 1: report the outcome */
	int64_t ctrl_done_gen;/* generation whose outcome has been reported */
	int ctrl_reads;       /* reads since the outcome was scheduled (--ready-after-reads) */
};

enum ka_ev_type { KA_ADDED, KA_MODIFIED, KA_DELETED };

struct ka_event {
	uint64_t rv;
	enum ka_ev_type type;
	struct ka_rtype *rt;
	char *ns;
	json_t *obj;          /* the object after (before, for DELETED) */
	json_t *old;          /* the object before, or NULL */
};

extern uint64_t ka_rv;            /* last resourceVersion handed out */
extern uint64_t ka_ring_dropped;  /* highest rv no longer in the ring */
extern struct ka_rtype *ka_rtypes;

void ka_store_init(void);
struct ka_rtype *ka_rtype_find(const char *group, const char *version, const char *plural);
struct ka_rtype *ka_rtype_by_gk(const char *group, const char *kind);
struct ka_rtype *ka_rtype_add(const char *group, const char *version, const char *plural,
    const char *singular, const char *kind, bool namespaced, const char *shorts,
    bool has_status, bool all_cat);
bool ka_rtype_serves(const struct ka_rtype *rt, const char *version);

struct ka_obj *ka_obj_get(struct ka_rtype *rt, const char *ns, const char *name);
/* Store `o` (reference stolen) as the new state, stamping a fresh
 * resourceVersion into it; `cur` is the existing entry or NULL. */
struct ka_obj *ka_store_put(struct ka_rtype *rt, struct ka_obj *cur, json_t *o);
/* Remove the entry; `final` (stolen) is the last state, stamped with a new rv. */
void ka_store_remove(struct ka_obj *cur, json_t *final);
/* Number of objects in namespace `ns` across all types. */
size_t ka_ns_count(const char *ns);
/* Save every object to path / load them back (--state-file). */
int ka_state_save(const char *path);
int ka_state_load(const char *path);
/* Iterate over events with rv > from in the ring; returns false when from is too old. */
bool ka_ring_since(uint64_t from, void (*fn)(const struct ka_event *, void *), void *arg);

/* ---- http.c ---- */

void ka_http_setup(struct evhttp *http);
/* Tell watchers of ev->rt about a change (called by the store). */
void ka_watch_notify(const struct ka_event *ev);
/* Close every watch on rt (its CRD went away). */
void ka_watch_close_all(struct ka_rtype *rt);
/* Apply the common write path for a controller's status update. */
void ka_controller_write_status(struct ka_obj *cur, json_t *status);
/* A CRD was written or deleted: register or retire its resource type. */
void ka_crd_sync(json_t *crd, bool deleted);

/* ---- ctrl.c ---- */

/* Called after every stored write of an object. */
void ka_ctrl_on_write(struct ka_obj *ob, json_t *old);
void ka_ctrl_on_delete(struct ka_obj *ob);
/* Called for each object a get or a list hands out (--ready-after-reads). */
void ka_ctrl_on_read(struct ka_obj *ob);

/* ---- ssa.c ---- */

/* RFC 7386 JSON merge patch; returns a new value. */
json_t *ka_merge_patch(json_t *target, json_t *patch);
/* Strategic merge patch, simplified: merge patch plus merge-keyed lists,
 * "$patch": "delete"|"replace" and "$..." directives dropped. */
json_t *ka_strategic_patch(json_t *target, json_t *patch);
/* RFC 6902 JSON patch; returns a new value or NULL with *err set. */
json_t *ka_json_patch(json_t *target, json_t *ops, const char **err);

/*
 * Recompute metadata.managedFields of `nw` (modified in place) for an
 * Update-operation write by `manager` on subresource `sub` ("" or "status").
 * `old` is the previous object or NULL on create.
 */
void ka_mf_update(json_t *old, json_t *nw, const char *manager, const char *sub,
    const char *api_version, bool has_status);

/*
 * Server-side apply of `cfg` by `manager`. `live` is the current object or
 * NULL (apply creates). On success returns the new object (owned; identity
 * metadata copied from live) and NULL *err. On conflict returns NULL and
 * *err holds a Status (owned) to send.
 */
json_t *ka_ssa_apply(json_t *live, json_t *cfg, const char *manager, bool force,
    const char *sub, const char *api_version, bool has_status, json_t **err);

/* The object without fields the field manager ignores (shallow copies). */
json_t *ka_mf_view(json_t *obj, const char *sub, bool has_status);

/* ---- tlsgen.c ---- */

/* Ensure DIR holds ca.crt, server.crt/key, client.crt/key; 0 or -1 (stderr). */
int ka_tls_ensure(const char *dir);

/* ---- yaml.c ---- */

/* Parse the first YAML document of buf; NULL with *err (static) on failure. */
json_t *ka_yaml_load(const char *buf, size_t len, const char **err);

#endif
