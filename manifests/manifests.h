/*
 * manifests.h - the manifests room: the desired state only, read from an
 * environment's checkout (manifests/render.c: plain YAML and JSON,
 * kustomize, helm) into a set of objects (manifests/objset.c: order, waves,
 * lookup). May call: lib/, kube/ (object identity). Called by deploy/.
 */
#ifndef SW_MANIFESTS_H
#define SW_MANIFESTS_H

#include <jansson.h>
#include <stddef.h>

#include "lib/buf.h"
#include "lib/error.h"
#include "kube/kube.h"

/* ======================================================================
 * Rendering desired state (manifests/render.c, manifests/objset.c)
 * ======================================================================
 *
 * sw_render_dir() turns manifest paths in a checkout into a set of objects,
 * each with the place it came from, and checks them before anything touches
 * a cluster. It blocks (file I/O, kustomize, helm): call it on a worker
 * thread, never on the event loop.
 *
 *     struct sw_render_opts o = SW_RENDER_OPTS_INIT;
 *     struct sw_objset *set;
 *     const char *paths[] = { "apps/guestbook" };
 *     if (sw_render_dir(&set, "/var/lib/slipway/checkouts/dev", paths, 1, &o) < 0)
 *             report(sw_error_last());      // one problem per line
 *     sw_objset_sort_for_apply(set);
 *     for (size_t i = 0, j; i < set->n; i = j) {
 *             j = sw_objset_stage_end(set, i);
 *             apply set->objs[i..j) concurrently, wait for them
 *     }
 *     sw_objset_free(set);
 *
 * Secrets: objects of kind Secret are rendered like any other. Nothing here
 * logs object contents, and error messages name places, kinds, names and
 * keys, never values. Callers must keep it so (log sw_obj_where() and the
 * key, not the JSON).
 */

/* Apply phases by kind, lowest first (see sw_kind_phase). */
enum sw_phase {
	SW_PHASE_CLUSTER = 0,   /* Namespace, CustomResourceDefinition */
	SW_PHASE_RBAC = 1,      /* ServiceAccount, ClusterRole(Binding), Role(Binding) */
	SW_PHASE_CONFIG = 2,    /* ConfigMap, Secret, PersistentVolume(Claim), StorageClass */
	SW_PHASE_SERVICE = 3,   /* Service */
	SW_PHASE_WORKLOAD = 4,  /* Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod */
	SW_PHASE_OTHER = 5,     /* everything else: custom resources, Ingress, ... */
};

/* The annotation that orders objects across waves (an integer, default 0),
 * and Argo CD's spelling of it, read the same (both on one object must agree). */
#define SW_SYNC_WAVE_ANNOTATION "slipway.dev/sync-wave"
#define SW_ARGO_WAVE_ANNOTATION "argocd.argoproj.io/sync-wave"

/*
 * Options of one object (docs/argocd.md), as Argo CD writes them,
 * comma-separated "Name=value": slipway.dev/sync-options or
 * argocd.argoproj.io/sync-options, and argocd.argoproj.io/compare-options.
 */
#define SW_SYNC_OPTIONS_ANNOTATION "slipway.dev/sync-options"
#define SW_ARGO_SYNC_OPTIONS_ANNOTATION "argocd.argoproj.io/sync-options"
#define SW_ARGO_COMPARE_OPTIONS_ANNOTATION "argocd.argoproj.io/compare-options"
enum {
	SW_OPT_NO_PRUNE = 1 << 0,         /* Prune=false (or confirm): never pruned */
	SW_OPT_NO_DELETE = 1 << 1,        /* Delete=false: slipway deletes nothing else anyway */
	SW_OPT_REPLACE = 1 << 2,          /* Replace=true: applied server-side all the same */
	SW_OPT_FORCE = 1 << 3,            /* Force=true: delete and create on an immutable field */
	SW_OPT_NO_VALIDATE = 1 << 4,      /* Validate=false: fieldValidation=Ignore */
	SW_OPT_IGNORE_EXTRANEOUS = 1 << 5,/* compare-options IgnoreExtraneous */
};

/* JSON pointers (comma-separated) of fields of this object that slipway
 * leaves to others: not drift, not healed, not applied after the create. */
#define SW_IGNORE_DIFFERENCES_ANNOTATION "slipway.dev/ignore-differences"

/* Remove what the JSON pointer `p` names from `doc`; absent is no error. */
void sw_json_pointer_remove(json_t *doc, const char *p);

/*
 * Hooks (docs/argocd.md): objects created around a sync instead of applied
 * with it, as Argo CD runs them; Helm's hook annotations are mapped as Argo
 * CD maps them (pre-install/pre-upgrade PreSync, post-install/post-upgrade
 * PostSync, helm.sh/hook-weight a wave, the others not run).
 */
#define SW_ARGO_HOOK_ANNOTATION "argocd.argoproj.io/hook"
#define SW_ARGO_HOOK_DELETE_ANNOTATION "argocd.argoproj.io/hook-delete-policy"
#define SW_HELM_HOOK_ANNOTATION "helm.sh/hook"
#define SW_HELM_HOOK_WEIGHT_ANNOTATION "helm.sh/hook-weight"
#define SW_HELM_HOOK_DELETE_ANNOTATION "helm.sh/hook-delete-policy"
enum {
	SW_HOOK_PRESYNC = 1 << 0,   /* before the manifests; must succeed */
	SW_HOOK_SYNC = 1 << 1,      /* after they are applied, before the health wait */
	SW_HOOK_POSTSYNC = 1 << 2,  /* after every object is healthy */
	SW_HOOK_SYNCFAIL = 1 << 3,  /* when the sync failed */
	SW_HOOK_SKIP = 1 << 4,      /* never applied */
};
enum {
	SW_HOOK_DELETE_BEFORE = 1 << 0,     /* BeforeHookCreation (the default) */
	SW_HOOK_DELETE_SUCCEEDED = 1 << 1,  /* HookSucceeded */
	SW_HOOK_DELETE_FAILED = 1 << 2,     /* HookFailed */
};


/*
 * The options of an object's annotations (`annotations` may be NULL) into
 * *opts. Options slipway does not act on (Argo CD Application options,
 * ServerSideApply=false, unknown names) are appended to `notes`, "; "-
 * separated, for the sync to report once; SW_EINVALID (message in the slot)
 * for a known option with a value it cannot take, or a name in the wrong
 * case ("prune=false": Argo CD would ignore it silently).
 */
int sw_sync_options(json_t *annotations, unsigned *opts, struct sw_buf *notes);

/* One desired object and where it came from. Every string is owned by the set. */
struct sw_obj {
	json_t *json;          /* the object; one reference held by the set */
	char *source;          /* file relative to the checkout ("apps/ui.yaml"), or
				  "kustomize DIR" / "helm DIR" for a tool's output */
	int line, col;         /* 1-based start of its document's content (of the item
				  for a List); for tool output, the place in the output */
	int rendered;          /* 1 when a tool (kustomize, helm) produced it */
	char *api_version;     /* "apps/v1" */
	char *group;           /* "apps"; "" for the core group */
	char *kind;            /* "Deployment" */
	char *ns;              /* metadata.namespace; "" when not written (the sync
				  engine fills the default for namespaced kinds) */
	char *name;            /* metadata.name; "" for a hook named by generateName */
	char *key;             /* "group/kind/namespace/name", e.g. "apps/Deployment//ui" */
	long wave;             /* slipway.dev/sync-wave (or Argo CD's), 0 when absent */
	unsigned opts;         /* SW_OPT_* */
	unsigned hook;         /* SW_HOOK_*: 0 for an object applied with the sync */
	unsigned hook_delete;  /* SW_HOOK_DELETE_* */
	char *generate_name;   /* metadata.generateName of a hook without a name, or NULL */
	json_t *ignore;        /* its slipway.dev/ignore-differences pointers (array), or NULL */
	char *notes;           /* options noted but not acted on (sw_sync_options), or NULL */
	int phase;             /* enum sw_phase of its kind */
	size_t stage;          /* set by sw_objset_sort_for_apply: 0, 1, 2, ... one per
				  distinct (wave, phase), in apply order */
	int is_secret;         /* kind Secret (core group): never log its data */
};

struct sw_objset {
	struct sw_obj *objs;   /* objs[0..n) */
	size_t n;
	/* private */
	size_t cap;
};

struct sw_render_opts {
	int timeout_ms;             /* limit for each kustomize/helm run; 0 = 60000 */
	size_t max_file_bytes;      /* largest manifest file; 0 = 16 MiB */
	size_t max_output_bytes;    /* largest tool output; 0 = 64 MiB */
	size_t max_objects;         /* most objects in one render; 0 = 50000 */
	size_t max_errors;          /* problems collected before stopping; 0 = 50 */
	const char *helm_release;   /* release name; NULL = the chart directory's name */
	const char *helm_namespace; /* `helm template --namespace`; NULL = "default" */
	struct sw_buf *errors;      /* optional: receives every problem, one per line
				       (the error slot holds only the first 2 KiB) */
};
#define SW_RENDER_OPTS_INIT { 0, 0, 0, 0, 0, NULL, NULL, NULL }

/*
 * Render `paths` (relative to `checkout_root`; a file or a directory, "."
 * for the whole checkout) into *out, a new set the caller frees with
 * sw_objset_free(). `opts` may be NULL for the defaults.
 *
 * For each path, in the order given:
 *  - a directory holding kustomization.yaml, kustomization.yml or
 *    Kustomization is rendered by `kustomize build DIR` (or `kubectl
 *    kustomize DIR` when kustomize is not on PATH); one holding Chart.yaml by
 *    `helm template RELEASE DIR --namespace NS --include-crds`;
 *  - any other directory is walked recursively: every *.yaml, *.yml and
 *    *.json, in byte-wise order of their relative paths (a nested
 *    kustomization or chart directory takes its place in that order). Names
 *    starting with '.' are skipped, symbolic links to directories are not
 *    followed, and no link may lead outside the checkout;
 *  - a file is read whatever its extension.
 * Nothing outside the checkout is read, after symbolic links: before a tool
 * runs, every path a kustomization names (resources, bases, components,
 * patches, generator files, ...; field names in any case, as kustomize
 * reads them) must exist and resolve inside, and every kustomization
 * directory named is checked in turn; no link under a chart directory may
 * lead outside. A reference that is not in the checkout (a remote base) is
 * refused too. kustomize runs with --load-restrictor LoadRestrictionsRootOnly.
 * Files hold YAML documents separated by `---`, or JSON (a file whose first
 * non-blank character is '{', as kubectl decides). Tools run with stdin
 * from /dev/null and only PATH, HOME, USER, LANG, LC_*, TZ, TMPDIR, XDG_*,
 * HELM_* and KUSTOMIZE_* from the environment. Empty documents are
 * skipped; List and *List documents (with `items`) are expanded.
 *
 * Checks: YAML/JSON syntax (path:line:col), apiVersion, kind and
 * metadata.name present, the sync-wave annotation an integer, no object
 * twice (group, kind, namespace, name: apps/v1 and apps/v1beta1 are the
 * same object), the size limits. Problems are collected (up to
 * max_errors) and returned together: SW_EINVALID with one per line in the
 * error slot, *out NULL. A tool that fails or times out is reported with
 * its stderr; a timed-out tool's process group is killed.
 */
int sw_render_dir(struct sw_objset **out, const char *checkout_root,
		  const char *const *paths, size_t npaths, const struct sw_render_opts *opts);

struct sw_objset *sw_objset_new(void);
/* Free the set and every object in it. NULL is fine. */
void sw_objset_free(struct sw_objset *set);

/*
 * Add `json` (the set takes the reference, also on failure) as an object
 * that came from source:line:col. Checks the object's identity and wave;
 * on a problem returns SW_EINVALID with "source:line:col: missing
 * metadata.name" (and every other problem of that object, "; "-separated)
 * in the slot, adding nothing.
 */
int sw_objset_add(struct sw_objset *set, json_t *json, const char *source,
		  int line, int col, int rendered);

/*
 * Check that no two objects share a key. On duplicates returns SW_EINVALID,
 * appending one line per duplicate to `errors` (if not NULL) and leaving
 * them in the slot: "b.yaml:1:1: duplicate object apps/Deployment//ui,
 * first defined at a.yaml:3:1". The sync engine calls this again after
 * filling default namespaces.
 */
int sw_objset_check_duplicates(const struct sw_objset *set, struct sw_buf *errors);

/*
 * Set (ns non-empty) or remove (ns "" or NULL) metadata.namespace, keeping
 * obj->ns and obj->key in step.
 */
void sw_obj_set_namespace(struct sw_obj *obj, const char *ns);

/*
 * Sort for applying: wave (lower first), then phase, then key; and number
 * the stages. Objects of one stage may be applied concurrently; a stage
 * starts only when the one before is done.
 */
void sw_objset_sort_for_apply(struct sw_objset *set);

/*
 * Take the hooks out of `set` (after sw_objset_sort_for_apply: they keep
 * their order) into *hooks (*nhooks of them; free each with
 * sw_obj_release, the array with free); Skip objects are dropped. The set
 * keeps what is applied.
 */
void sw_objset_take_hooks(struct sw_objset *set, struct sw_obj **hooks, size_t *nhooks);
void sw_obj_release(struct sw_obj *o);

/* The end (exclusive) of the stage that starts at index `start`. */
size_t sw_objset_stage_end(const struct sw_objset *set, size_t start);

/* The apply phase of a kind in an API group ("" is core). */
enum sw_phase sw_kind_phase(const char *group, const char *kind);

/* "group/kind/namespace/name" from an apiVersion ("apps/v1" -> "apps"). */
void sw_obj_key(struct sw_buf *out, const char *api_version, const char *kind,
		const char *ns, const char *name);

/* Append where obj came from: "apps/ui.yaml:3:1" or "kustomize overlays/dev (output 12:1)". */
void sw_obj_where(const struct sw_obj *obj, struct sw_buf *out);

/* ====================== end of Rendering desired state ================= */

#endif
