/*
 * webhooks.h - GitHub webhook deliveries: signature check, payload
 * extraction, event parsing and the mapping from an event to what should run.
 *
 * Everything here is a pure function: no I/O, no event loop, no globals.
 * The daemon's `POST /hooks/github` handler calls them in this order:
 *
 *     sw_webhook_verify(secret, body, len, hdr("X-Hub-Signature-256"))
 *     sw_webhook_payload(&json, hdr("Content-Type"), body, len)
 *     sw_webhook_parse(&ev, hdr("X-GitHub-Event"), json.ptr, json.len)
 *     sw_webhook_map(&dec, cfg, &ev)
 *
 * Every function returns 0 or a negative SW_E* code with the reason in the
 * thread's error slot (lib/error.h). Input comes from the network and is
 * treated as hostile: sizes are checked, nothing recurses on it (the JSON
 * scanner in json.c is iterative and depth-limited), and missing or
 * mistyped fields give SW_EINVALID naming the field rather than a crash.
 */
#ifndef SW_WEBHOOKS_H
#define SW_WEBHOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "config/config.h"
#include "lib/error.h"

/* ------------------------------------------------------------------ */
/* Signature and payload                                               */
/* ------------------------------------------------------------------ */

/*
 * Check `header_value` (the X-Hub-Signature-256 header, "sha256=<64 hex>")
 * against HMAC-SHA256(secret, body[0..len)). The comparison is constant time.
 *
 * Returns 0 when it matches. SW_EINVALID otherwise, with one of:
 *   "missing X-Hub-Signature-256 header"
 *   "X-Hub-Signature-256: expected the prefix sha256="
 *   "X-Hub-Signature-256: expected 64 hex digits, found N characters"
 *   "X-Hub-Signature-256: not a hex digest"
 *   "X-Hub-Signature-256: signature does not match the body"
 * SW_ERR when no secret is configured (NULL or empty) or OpenSSL fails.
 * Hex digits are accepted in either case.
 */
int sw_webhook_verify(const char *secret, const void *body, size_t len,
		      const char *header_value);

/*
 * SHA-256 over the event name, a NUL and the body: what makes two deliveries
 * the same one (a replay under a new X-GitHub-Delivery GUID, which the
 * signature does not cover). Returns 0, or SW_ERR when OpenSSL fails.
 */
#define SW_WEBHOOK_DIGEST_LEN 32
int sw_webhook_digest(unsigned char out[SW_WEBHOOK_DIGEST_LEN], const char *event,
		      const void *body, size_t len);

/*
 * Extract the JSON payload of a delivery into `out` (appended; the caller
 * owns and releases the buffer). `content_type` is the Content-Type header
 * value; parameters such as "; charset=utf-8" are ignored, the media type is
 * compared case-insensitively.
 *   application/json                   the body as is
 *   application/x-www-form-urlencoded  the `payload` field, percent-decoded
 *                                      with `+` as space; other fields ignored
 * Returns 0, or SW_EINVALID: "unsupported content type X", "missing
 * Content-Type header", "form body has no payload field", "payload field:
 * bad percent escape at offset N".
 */
int sw_webhook_payload(struct sw_buf *out, const char *content_type,
		       const char *body, size_t len);

/*
 * Whether json[0..len) is one well-formed JSON document, read by the same
 * one-pass scanner that later parses it (webhooks/json.c). Returns 0, or
 * SW_EINVALID with where and why ("offset 12: expected ':'").
 */
int sw_webhook_json_check(const char *json, size_t len);

/* ------------------------------------------------------------------ */
/* Parsed events                                                       */
/* ------------------------------------------------------------------ */

enum sw_gh_event_kind {
	SW_GH_OTHER,          /* any event slipway does not look into */
	SW_GH_PING,
	SW_GH_PUSH,
	SW_GH_PULL_REQUEST,
};

/*
 * One delivery, parsed. Every string is owned by the struct (NULL when the
 * payload did not carry it) and freed by sw_gh_event_release(). Booleans are
 * 0/1; a missing boolean reads as 0.
 */
struct sw_gh_event {
	enum sw_gh_event_kind kind;
	char *event;              /* X-GitHub-Event as given, never NULL after parse */
	char *action;             /* "opened", ...; NULL for push and ping */

	/* repository (required for push and pull_request) */
	char *repo;               /* full_name, "owner/repo" */
	char *clone_url;
	char *ssh_url;
	char *default_branch;
	char *sender;             /* sender.login */

	struct {                  /* kind == SW_GH_PUSH */
		char *ref;            /* required */
		char *branch;         /* ref without refs/heads/, else NULL */
		char *tag;            /* ref without refs/tags/, else NULL */
		char *before;
		char *after;          /* required */
		int created, deleted, forced;
		char *head_id;        /* head_commit.id; NULL when head_commit is null */
		char *head_title;     /* first line of head_commit.message */
		char *head_message;   /* the full message */
		char *head_author;    /* head_commit.author.name */
		char *pusher;         /* pusher.name */
		char *compare;        /* compare URL */
	} push;

	struct {                  /* kind == SW_GH_PULL_REQUEST */
		int64_t number;       /* required (top-level number or pull_request.number) */
		char *title;
		int draft;
		char *state;          /* "open" / "closed" */
		int merged;
		char *merge_commit_sha; /* kept only when merged (else meaningless) */
		char *head_ref;       /* required */
		char *head_sha;       /* required */
		char *head_repo;      /* head.repo.full_name; NULL when the fork is gone */
		char *base_ref;       /* required */
		char *base_sha;
		char *html_url;
		char *user;           /* pull_request.user.login */
	} pr;

	struct {                  /* kind == SW_GH_PING */
		char *zen;
		int64_t hook_id;      /* hook_id, or hook.id; 0 when absent */
	} ping;
};

#define SW_GH_EVENT_INIT { .kind = SW_GH_OTHER }

/*
 * Parse the payload `json[0..len)` of an event named `event_name` (the
 * X-GitHub-Event header) into `out`, which must be SW_GH_EVENT_INIT or
 * released. Events other than ping, push and pull_request are accepted with
 * only the common fields (kind SW_GH_OTHER) so they can be recorded and
 * ignored.
 *
 * Returns 0, or SW_EINVALID ("push payload: ref: missing", "pull_request
 * payload: pull_request.head.sha: expected a string, found number", "not
 * JSON: ..."). On failure `out` holds whatever was read; release it either
 * way.
 */
int sw_webhook_parse(struct sw_gh_event *out, const char *event_name,
		     const char *json, size_t len);

/* Free the strings; `ev` is SW_GH_EVENT_INIT again. NULL is a no-op. */
void sw_gh_event_release(struct sw_gh_event *ev);

/* ------------------------------------------------------------------ */
/* Mapping                                                             */
/* ------------------------------------------------------------------ */

enum sw_webhook_verdict {
	SW_WEBHOOK_IGNORE,        /* nothing to do; `reason` says why */
	SW_WEBHOOK_PING,          /* answer the ping; `reason` holds the zen */
	SW_WEBHOOK_RUN,           /* start a run as described */
};

/*
 * What a delivery asks for. Strings are owned by the struct and freed by
 * sw_webhook_decision_release(); those not relevant to the verdict are NULL.
 */
struct sw_webhook_decision {
	enum sw_webhook_verdict verdict;
	char *reason;             /* IGNORE: "tag push", ...; PING: the zen */

	/* RUN */
	char *kind;               /* "pull_request" or "push" (storage run kinds) */
	char *repo;               /* the repository's name as configured */
	char *environment;        /* push: the environment to deploy; PR: NULL */
	char *commit;             /* PR: head sha; push: after */
	char *branch;             /* PR: head ref; push: the branch */
	char *base;               /* PR: base ref; push: NULL */
	int64_t pr_number;        /* PR only, else 0 */
	char *title;              /* PR title; push: first line of the head commit */
	char *message;            /* push: the full head commit message */
	char *author;             /* PR: user login; push: head commit author, else pusher */
	char *url;                /* PR: html_url; push: compare URL */
	int from_fork;            /* PR head lives in another (or a deleted) repository:
				   * the engine should not hand it secrets */
	/*
	 * Runs with the same key supersede each other: a newer commit cancels
	 * the older run. "pr:owner/repo#12" or "push:owner/repo:ENV" (ENV is the
	 * environment name). The repository part is lower-cased, since GitHub
	 * names are case-insensitive.
	 */
	char *supersede_key;
};

#define SW_WEBHOOK_DECISION_INIT { .verdict = SW_WEBHOOK_IGNORE }

/*
 * Decide what `ev` asks for under `cfg` (both borrowed). `out` must be
 * SW_WEBHOOK_DECISION_INIT or released. The rules:
 *   ping                                    -> PING
 *   push/pull_request of an unconfigured repository (full name compared
 *     case-insensitively)                   -> IGNORE "repository X is not configured"
 *   push of a tag                           -> IGNORE "tag push"
 *   push deleting a branch (deleted, or after is 40 zeros)
 *                                           -> IGNORE "branch X deleted"
 *   push to a branch no environment tracks  -> IGNORE "branch X is not tracked by any environment"
 *   push to a tracked branch                -> RUN kind push, at `after`
 *   pull_request opened, reopened, synchronize, ready_for_review on a
 *     non-draft PR                          -> RUN kind pull_request, at head.sha
 *   pull_request, other action              -> IGNORE "pull request action X is not run"
 *   pull_request, draft                     -> IGNORE "pull request #N is a draft"
 *   anything else                           -> IGNORE "event X is not handled"
 * Returns 0 (an IGNORE is a success), or SW_EINVALID when `ev` lacks what its
 * kind needs (it was not produced by sw_webhook_parse).
 */
int sw_webhook_map(struct sw_webhook_decision *out, const struct sw_config *cfg,
		   const struct sw_gh_event *ev);

/* Free the strings; `d` is SW_WEBHOOK_DECISION_INIT again. NULL is a no-op. */
void sw_webhook_decision_release(struct sw_webhook_decision *d);

/* "ignore", "ping" or "run". */
const char *sw_webhook_verdict_str(enum sw_webhook_verdict v);

#endif
