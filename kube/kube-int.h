/*
 * kube-int.h - private to kube/ (and tests/): what the client's files share
 * (kube.c: ops, requests, the client; auth.c: credentials; discovery.c;
 * watch.c), and the parsers of what the client reads from outside, exposed
 * so that tests/fuzz can feed them.
 */
#ifndef SW_KUBE_INT_H
#define SW_KUBE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/util.h>

#include "kube/kube.h"
#include "lib/buf.h"
#include "lib/http.h"

struct event;
struct sw_http_call;
struct sw_proc;

/* Largest exec plugin output we read, and largest watch event line. */
#define EXEC_MAX_OUTPUT (1u << 20)
#define WATCH_MAX_LINE (64u << 20)
/* Expired continue tokens: restart a list at most this often. */
#define LIST_MAX_RESTARTS 5
/* Longest Retry-After we honour as given. */
#define RETRY_AFTER_MAX_MS 60000
/* tokenFile is re-read after this long (client-go: one minute). */
#define TOKEN_FILE_TTL_MS 60000

enum op_type { OP_RAW, OP_GET, OP_LIST, OP_APPLY, OP_DELETE, OP_WATCH, OP_CREATE };
enum op_state { ST_NEW, ST_DISC, ST_CRED, ST_QUEUED, ST_FLIGHT, ST_RETRY };

struct disc_ent {
	char *group, *version, *kind, *plural;
	int namespaced;
};

struct sw_kube_op;
typedef void (*op_internal_fn)(struct sw_kube_op *op, struct sw_http_result *r);

struct sw_kube_op {
	struct sw_kube *k;
	struct sw_kube_op *prev, *next;
	enum op_type type;
	enum op_state state;

	/* what it is about */
	char *api_version, *group, *version, *kind, *ns, *name;
	char *selector;
	int flags;
	int resolved, namespaced;
	char *plural;
	char *path;              /* request path and query (RAW: given) */
	const char *method;
	const char *content_type;
	char *body;
	size_t body_len;

	/* list paging */
	json_t *items;
	char *cont;
	int restarts;

	/* progress */
	unsigned disc_want;      /* the discovery run that must finish first */
	int attempt;             /* requests sent for the current page */
	int auth_retried;
	unsigned cred_gen;       /* credential generation the request used */
	char *pending_error;     /* fail with this when woken */
	int pending_code;
	struct sw_http_call *call;
	struct event *timer;
	int finishing;
	int slot;                /* holds one of k->max_inflight request slots */
	struct sw_kube_op *qprev, *qnext;  /* waiting for a slot (ST_QUEUED) */

	/* completion */
	sw_kube_done_fn cb;
	void *arg;
	op_internal_fn internal; /* instead of cb, for requests of our own */
	sw_http_data_fn on_data; /* streams */
	void *iarg;
	int got_data;
};

struct sw_kube_watch {
	struct sw_kube *k;
	struct sw_kube_watch *prev, *next;
	char *api_version, *kind, *ns, *selector;
	char *rv;
	sw_kube_event_fn cb;
	void *arg;
	struct sw_kube_op *list_op;
	struct sw_kube_op *stream;
	struct event *timer;
	struct sw_buf line;
	int in_cb, stopped;
	int relist;              /* the stream said 410: relist when it ends */
	int errored;             /* the stream ended on an ERROR event */
	int fails;               /* consecutive failures, for backoff */
	int64_t stream_start;
	int events;              /* events on the current stream */
};

struct sw_kube {
	struct event_base *base;
	struct sw_http *http;
	struct sw_proc_mgr *procs;
	struct sw_kubeconfig *cfg;
	char *field_manager, *user_agent;
	int max_attempts;
	long backoff_ms, backoff_max_ms, timeout_ms, exec_timeout_ms;
	long disc_interval_ms, page_size, watch_timeout_s;

	/* credentials */
	char *bearer;            /* current token, or NULL */
	char *cert_pem, *key_pem;/* from the exec plugin */
	int cred_valid;
	int64_t cred_expiry_ms;  /* wall clock; 0 = never */
	unsigned cred_gen;
	int64_t token_read_ms;   /* monotonic time tokenFile was read */
	struct sw_proc *exec;
	struct sw_buf exec_out, exec_err;

	/* discovery */
	struct disc_ent *ents;
	size_t nents, capents;
	struct disc_ent *nw;     /* the table a running discovery builds */
	size_t nnw, capnw;
	unsigned disc_started, disc_completed;
	int disc_running, disc_outstanding;
	char *disc_error;        /* first failure of the running discovery */
	int64_t disc_last_start;
	struct event *disc_timer;

	struct sw_kube_op *ops;
	size_t nops;
	/* requests in flight (not watches, not discovery) and those waiting */
	int max_inflight, inflight;
	struct sw_kube_op *qhead, *qtail;
	struct sw_kube_watch *watches;
	struct sw_kube_stats stats;
};

/* --- shared helpers (kube.c) --- */
/* The delay before retry `attempt` (1, 2, ...): doubling with jitter, capped. */
long kube_backoff_delay(const struct sw_kube *k, int attempt);
/* The string member `key` of `o`, or NULL. */
const char *kube_jstr(const json_t *o, const char *key);
/* "Not Found" for 404, ... ("" when unknown). */
const char *kube_reason_phrase(long code);
/* "apps/v1" -> "apps", "v1"; "v1" -> "", "v1" (owned copies). */
void kube_split_api_version(const char *av, char **group, char **version);

/* --- ops (kube.c) --- */
struct sw_kube_op *kube_op_new(struct sw_kube *k, enum op_type type);
void kube_op_free(struct sw_kube_op *op);
/* Continue `op` from its own zero-delay timer (see kube.c's opening comment). */
void kube_op_wake(struct sw_kube_op *op);

/* --- credentials (auth.c) --- */
/* 1 when the config names an exec plugin. */
int kube_have_exec(const struct sw_kube *k);
/* 1 when a credential is at hand (a tokenFile re-read when due, an exec
 * plugin's output not expired), else 0, with *err set when reading failed. */
int kube_cred_ready(struct sw_kube *k, char **err);
/* Run the exec plugin (once, for every op waiting); <0 with *err. */
int kube_exec_start(struct sw_kube *k, char **err);

/* --- discovery (discovery.c) --- */
const struct disc_ent *kube_disc_find(const struct sw_kube *k, const char *group,
				      const char *version, const char *kind);
void kube_ents_free(struct disc_ent *e, size_t n);
/* Read the group versions waiting ops need (k->disc_timer fires it). */
void kube_disc_request(struct sw_kube *k);
void kube_disc_timer_cb(evutil_socket_t fd, short what, void *arg);

/* --- watches (watch.c) --- */
void kube_watch_connect(struct sw_kube_watch *w);
void kube_watch_free(struct sw_kube_watch *w);


/* A credential an exec plugin printed; the strings are owned (or NULL). */
struct sw_kube_cred {
	char *bearer;                /* status.token */
	char *cert_pem, *key_pem;    /* status.clientCertificateData / clientKeyData */
	int64_t expiry_ms;           /* status.expirationTimestamp, 0 when none */
};

/*
 * Parse an exec plugin's stdout, text[0..len), as an ExecCredential of
 * `api_version`. Returns 0 with *out filled (the caller frees its strings),
 * or SW_ERR with a new message in *err ("output is not JSON: ...",
 * "ExecCredential has only one of clientCertificateData and clientKeyData").
 */
int sw_kube_exec_cred_parse(struct sw_kube_cred *out, const char *text, size_t len,
			    const char *api_version, char **err);

/*
 * Cut every "managedFields" member out of the JSON text p[0..n), in place
 * (list and apply answers are parsed without them); returns the new length.
 * Valid JSON stays valid JSON. A key spelt with escapes ("managed\u0046ields")
 * is left in place: no server writes one, and the cut only saves memory.
 */
size_t sw_kube_strip_managed_fields(char *p, size_t n);

#endif
