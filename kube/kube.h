/*
 * kube.h - the kube room: the Kubernetes API client (kube/kube.c:
 * transport, auth, discovery, list, watch, apply), health rules
 * (kube/health.c) and kubeconfig (kube/kubeconfig.c). May call: lib/.
 * Called by manifests/, deploy/ and daemon/.
 *
 * Life cycle:
 *
 *     struct sw_kubeconfig *cfg;
 *     struct sw_kube *kube;
 *     struct sw_kube_opts ko = SW_KUBE_OPTS_INIT;
 *     if (sw_kubeconfig_load(&cfg, "/etc/slipway/kubeconfig", "dev") < 0)
 *             fail(sw_error_last());        // "kubeconfig:12:5: ..." or
 *                                           // "context dev not found in /etc/..."
 *     ko.http = http;                       // lib/http.h client on the loop
 *     ko.procs = procs;                     // lib/proc.h manager (exec plugins)
 *     sw_kube_new(&kube, base, cfg, &ko);   // takes cfg
 *     sw_kube_apply(kube, obj, 0, applied, ctx, NULL);
 *     ...
 *     sw_kube_free(kube);
 *
 * Everything runs on the event loop of `base`: no function here blocks
 * (except sw_kubeconfig_load, which reads files: call it at start-up or on a
 * worker), and every callback comes from the loop, never from inside the
 * function that started the operation.
 *
 * Requests: TLS from the kubeconfig; a bearer token (static, tokenFile
 * re-read at most once a minute and after a 401, or from an exec plugin) or
 * a client certificate. 429 (after Retry-After), 5xx and connection errors
 * are retried with exponential backoff up to opts.max_attempts; a 401 with
 * a tokenFile or an exec plugin refreshes the credential once and retries.
 *
 * Discovery: the first operation fetches /api, /api/v1, /apis and every
 * /apis/G/V, building (group, version, kind) -> (plural, namespaced). An
 * unknown kind (a CRD applied a moment ago) triggers a refresh, at most one
 * per opts.discovery_interval_ms; the operation waits for a refresh that
 * started after it asked, and fails only if the kind is still unknown then.
 *
 * Errors name the object and carry the API server's Status.message:
 *   "apps/v1 Deployment shop/web: namespaces \"shop\" not found (404 Not Found)"
 *
 * Secrets: tokens, keys and Secret data are never logged or put in messages.
 */
#ifndef SW_KUBE_H
#define SW_KUBE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/error.h"

struct event_base;
struct sw_http;
struct sw_proc_mgr;

/* ======================================================================
 * Health (kube/health.c)
 * ====================================================================== */

enum sw_kube_health {
	SW_KUBE_HEALTHY = 0,      /* ready / complete */
	SW_KUBE_PROGRESSING = 1,  /* not there yet (rolling out, terminating, pending) */
	SW_KUBE_DEGRADED = 2,     /* failed: will not get ready without a change */
	SW_KUBE_UNKNOWN = 3,      /* cannot tell (no object, not an object) */
};

/* "healthy", "progressing", "degraded", "unknown". */
const char *sw_kube_health_name(enum sw_kube_health h);

/*
 * Judge a live object as `kubectl rollout status` and kstatus do:
 * Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, Pod, Service
 * (LoadBalancer needs an ingress address), PersistentVolumeClaim (Bound),
 * CustomResourceDefinition (Established), then the generic conditions
 * (Stalled=True failed, Reconciling=True in progress, Ready) of any kind;
 * `deletionTimestamp` set is progressing (terminating); any other kind is
 * healthy once it exists. Pure: no I/O.
 *
 * When `message` is not NULL it receives a new string (free() it) saying
 * why, e.g. "Deployment web: 1 of 3 updated replicas are available".
 */
enum sw_kube_health sw_kube_health(const json_t *obj, char **message);

/* ======================================================================
 * kubeconfig (kube/kubeconfig.c)
 * ====================================================================== */

/* An exec credential plugin (users[].user.exec). */
struct sw_kube_exec {
	char *api_version;           /* client.authentication.k8s.io/v1 or /v1beta1 */
	char *command;               /* relative paths resolve against the kubeconfig's directory
					(when they hold a '/'), else PATH */
	char **args;                 /* NULL-terminated; never NULL */
	char **env;                  /* "NAME=value", NULL-terminated; never NULL */
	int provide_cluster_info;    /* put spec.cluster into KUBERNETES_EXEC_INFO */
	char *install_hint;          /* shown when the command cannot be run; may be NULL */
};

/*
 * The parts of a kubeconfig one context selects. Files named in it are read
 * at load time (PEM kept in memory), except tokenFile, which the client
 * re-reads (tokens rotate). Relative paths are relative to the kubeconfig's
 * directory, as kubectl resolves them. Every string is owned.
 */
struct sw_kubeconfig {
	char *path;                  /* the file it came from */
	char *context;               /* the context used */
	char *cluster;               /* its cluster's name */
	char *user;                  /* its user's name; "" when the context names none */
	char *ns;                    /* context namespace, "default" when unset */

	char *server;                /* "https://host:6443", no trailing '/' */
	char *ca_pem;                /* certificate-authority(-data), or NULL (system CAs) */
	int insecure;                /* insecure-skip-tls-verify */
	char *tls_server_name;       /* or NULL */

	char *token;                 /* static bearer token, or NULL */
	char *token_file;            /* tokenFile (absolute), or NULL */
	char *cert_pem, *key_pem;    /* client certificate and key, or NULL */
	struct sw_kube_exec *exec;   /* or NULL */
};

/*
 * Load `path` and select `context` (NULL: current-context). Returns 0 and
 * sets *out (free with sw_kubeconfig_free), or SW_EINVALID with a located
 * message ("kubeconfig:7:9: clusters[0].cluster.server: expected a string"),
 * SW_ENOTFOUND for a missing context/cluster/user ("context dev not found
 * in /path/kubeconfig"), SW_ERR when a file cannot be read.
 */
int sw_kubeconfig_load(struct sw_kubeconfig **out, const char *path, const char *context);

/*
 * The cluster slipwayd runs in, as client-go's in-cluster config finds it:
 * https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, the service
 * account's ca.crt, namespace and token (a tokenFile: re-read as the
 * projected token rotates) in SW_SERVICEACCOUNT_DIR, or
 * $SLIPWAY_SERVICEACCOUNT_DIR. SW_EINVALID outside a pod, SW_ERR when the
 * CA cannot be read.
 */
#define SW_SERVICEACCOUNT_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
int sw_kubeconfig_in_cluster(struct sw_kubeconfig **out);

/* Same from text; `name` names it in messages and anchors relative paths. */
int sw_kubeconfig_parse(struct sw_kubeconfig **out, const char *name, const char *data,
			size_t len, const char *context);

void sw_kubeconfig_free(struct sw_kubeconfig *cfg);

/* ======================================================================
 * Client (kube/kube.c)
 * ====================================================================== */

struct sw_kube;
struct sw_kube_op;
struct sw_kube_watch;

struct sw_kube_opts {
	struct sw_http *http;          /* required: every request goes through it */
	struct sw_proc_mgr *procs;     /* required only for exec plugins */
	const char *field_manager;     /* SSA fieldManager; NULL = "slipway" */
	const char *user_agent;        /* NULL = "slipway" */
	int max_attempts;              /* tries per request (429/5xx/connect); 0 = 5 */
	long backoff_ms;               /* first retry delay, doubled each time; 0 = 200 */
	long backoff_max_ms;           /* cap of the delay (and of Retry-After); 0 = 10000 */
	long timeout_ms;               /* one request (not watches); 0 = 30000 */
	long exec_timeout_ms;          /* exec plugin run; 0 = 30000 */
	long discovery_interval_ms;    /* least time between discoveries; 0 = 5000 */
	long list_page_size;           /* list `limit`; 0 = 500 */
	long watch_timeout_s;          /* watch timeoutSeconds (then reconnect); 0 = 300 */
	/*
	 * Object requests (get, list, apply, delete) on the wire at once; more
	 * wait their turn in order. Watches and discovery are not counted.
	 * 0 = 32.
	 */
	int max_inflight;
};
#define SW_KUBE_OPTS_INIT { 0 }

/*
 * Create a client for `cfg` (taken: freed with the client, also on
 * failure). `base` runs every callback. Nothing is sent yet.
 */
int sw_kube_new(struct sw_kube **out, struct event_base *base, struct sw_kubeconfig *cfg,
		const struct sw_kube_opts *opts);

/*
 * Cancel every operation and watch without calling their callbacks, stop a
 * running exec plugin, free. NULL is a no-op. Not from inside a callback.
 */
void sw_kube_free(struct sw_kube *k);

/* The configuration in use (its ns is the default namespace). */
const struct sw_kubeconfig *sw_kube_config(const struct sw_kube *k);

/* Counters, for tests and metrics. */
struct sw_kube_stats {
	uint64_t requests;             /* HTTP requests sent (including retries) */
	uint64_t retries;              /* of which were retries */
	uint64_t exec_runs;            /* exec plugin runs */
	uint64_t discoveries;          /* completed discoveries */
	uint64_t list_restarts;        /* lists started over after an expired continue */
	uint64_t queued;               /* requests that waited for a slot (max_inflight) */
	uint64_t watch_relists;        /* watches that relisted after 410 Gone */
};
void sw_kube_stats(const struct sw_kube *k, struct sw_kube_stats *out);

/* ---- discovery ---- */

/* What discovery knows about one kind. */
struct sw_kube_resource {
	const char *group;             /* "" for core */
	const char *version;           /* "v1" */
	const char *kind;              /* "Deployment" */
	const char *plural;            /* "deployments" */
	int namespaced;
};

/*
 * Look up a kind in the cached table: 0 and *out (valid until the next
 * discovery), SW_ENOTFOUND when discovery has not run or does not know it.
 * Never starts a request.
 */
int sw_kube_lookup(struct sw_kube *k, const char *api_version, const char *kind,
		   struct sw_kube_resource *out);

/* Number of (group, version, kind) entries in the table; calls fn on each when not NULL. */
size_t sw_kube_resources(struct sw_kube *k,
			 void (*fn)(const struct sw_kube_resource *r, void *arg), void *arg);

/* ---- operations ---- */

/*
 * Outcome of an operation. Valid during the callback only; take a
 * reference (json_incref) to keep `obj`.
 */
struct sw_kube_result {
	/*
	 * 0 on success; else SW_ENOTFOUND (404), SW_EEXISTS (409: AlreadyExists
	 * or Conflict, see `reason`), SW_EINVALID (400, 422, a bad object or an
	 * unknown kind), SW_EAGAIN (429/5xx after every attempt), SW_ECANCELLED
	 * (the client went away), SW_ERR (anything else: 401, 403, transport).
	 */
	int error;
	/* "" on success, else "apps/v1 Deployment shop/web: <message> (404 Not Found)". */
	const char *error_msg;
	long status;                   /* HTTP status; 0 when none arrived */
	const char *reason;            /* Status.reason ("NotFound", "Conflict"), or "" */
	const json_t *status_obj;      /* the API's Status on failure, or NULL */
	/*
	 * get/apply: the object; delete: what the server answered (the object
	 * with deletionTimestamp, or a Status); list: a List object
	 * {apiVersion, kind: "<Kind>List", metadata: {resourceVersion},
	 * items: [...]} holding every page. NULL on failure.
	 */
	json_t *obj;
};

typedef void (*sw_kube_done_fn)(const struct sw_kube_result *r, void *arg);

/* Flags for sw_kube_apply: dryRun=All; fieldValidation=Ignore (Argo CD's
 * Validate=false: unknown and duplicate fields dropped without a warning). */
enum { SW_KUBE_DRY_RUN = 1, SW_KUBE_NO_VALIDATE = 2 };

/*
 * Start an operation. Returns 0 and, if `out` is not NULL, a handle valid
 * until the callback returns (for sw_kube_cancel); or <0 with the error
 * slot set (bad arguments) and then no callback. `ns` NULL or "" means the
 * kubeconfig's namespace for namespaced kinds and is ignored for
 * cluster-scoped ones.
 */
int sw_kube_get(struct sw_kube *k, const char *api_version, const char *kind, const char *ns,
		const char *name, sw_kube_done_fn cb, void *arg, struct sw_kube_op **out);

/*
 * List with paging (limit/continue; an expired continue token, 410,
 * restarts the list). `ns` NULL or "" lists across all namespaces;
 * `label_selector` may be NULL. Items come without metadata.managedFields
 * (often half of an object and most of its parsed size: a list of
 * thousands held whole would dwarf everything else), as do apply answers;
 * get and watch events keep them.
 */
int sw_kube_list(struct sw_kube *k, const char *api_version, const char *kind, const char *ns,
		 const char *label_selector, sw_kube_done_fn cb, void *arg,
		 struct sw_kube_op **out);

/*
 * Server-side apply of `obj` (borrowed; apiVersion, kind, metadata.name,
 * and metadata.namespace or the default): PATCH with
 * application/apply-patch+yaml, fieldManager and force=true, the body
 * without managedFields, status and resourceVersion. `flags`
 * SW_KUBE_DRY_RUN adds dryRun=All (nothing is stored).
 */
int sw_kube_apply(struct sw_kube *k, const json_t *obj, int flags, sw_kube_done_fn cb,
		  void *arg, struct sw_kube_op **out);

/* Create `obj` (borrowed) with POST to its collection: metadata.name, or
 * metadata.generateName for the server to complete (the answer holds the
 * name it chose). 409 when it exists. */
int sw_kube_create(struct sw_kube *k, const json_t *obj, sw_kube_done_fn cb, void *arg,
		   struct sw_kube_op **out);

/* Delete with propagationPolicy Background. */
int sw_kube_delete(struct sw_kube *k, const char *api_version, const char *kind,
		   const char *ns, const char *name, sw_kube_done_fn cb, void *arg,
		   struct sw_kube_op **out);

/*
 * Stop an operation; its callback is not called. The handle is invalid
 * afterwards. NULL is a no-op. Safe from any callback of this client.
 */
void sw_kube_cancel(struct sw_kube_op *op);

/* Requests not yet finished, the client's own included (discovery, watch
 * streams), for tests and metrics. */
size_t sw_kube_pending(const struct sw_kube *k);

/* ---- watches ---- */

enum sw_kube_event_type {
	SW_KUBE_ADDED,
	SW_KUBE_MODIFIED,
	SW_KUBE_DELETED,
	/*
	 * A (re)list finished: `obj` is the List (see sw_kube_result.obj) and
	 * replaces whatever the receiver knew, since events may have been
	 * missed (initial list, or recovery from 410 Gone).
	 */
	SW_KUBE_SYNC,
	/* Something failed (`message`); the watch retries by itself. */
	SW_KUBE_WATCH_ERROR,
};

struct sw_kube_event {
	enum sw_kube_event_type type;
	const json_t *obj;             /* borrowed; NULL for WATCH_ERROR */
	const char *message;           /* WATCH_ERROR only, else "" */
	const char *resource_version;  /* where the watch stands after this event */
};

/* Called for each event; may call sw_kube_watch_stop on its own watch. */
typedef void (*sw_kube_event_fn)(const struct sw_kube_event *ev, void *arg);

struct sw_kube_watch_opts {
	const char *api_version;       /* required */
	const char *kind;              /* required */
	const char *ns;                /* NULL or "": all namespaces */
	const char *label_selector;    /* may be NULL */
	/* Watch from here; NULL lists first (SW_KUBE_SYNC) and watches from
	 * the list's resourceVersion. */
	const char *resource_version;
	sw_kube_event_fn on_event;     /* required */
	void *arg;
};
#define SW_KUBE_WATCH_OPTS_INIT { 0 }

/*
 * Start a watch: GET ...?watch=1&resourceVersion=RV&allowWatchBookmarks=true
 * streamed through lib/http; the resourceVersion follows events and
 * BOOKMARKs; an ended stream reconnects from it; 410 (HTTP or an ERROR
 * event) relists (SW_KUBE_SYNC) and watches on from the list. Runs until
 * sw_kube_watch_stop() or sw_kube_free().
 */
int sw_kube_watch(struct sw_kube *k, const struct sw_kube_watch_opts *o,
		  struct sw_kube_watch **out);

/* Stop and free a watch; no callback follows. NULL is a no-op. */
void sw_kube_watch_stop(struct sw_kube_watch *w);

/* ---- helpers ---- */


#endif
