/*
 * git.h - the git room: repositories as bare libgit2 mirrors under
 * DATA_DIR/mirrors, and clean per-run checkouts made from them, plus what a
 * run reads from a commit (files, changed paths, commit info). The code is
 * git/source.c. May call: lib/, config/. Called by pipeline/ and daemon/.
 *
 * Every function here BLOCKS (network, disk) and is meant for worker
 * threads (lib/pool.h), never for the event loop. They are thread-safe:
 *   - libgit2 is initialised once, on first use;
 *   - each call opens its own git_repository, so no libgit2 object is
 *     shared between threads;
 *   - fetches of one mirror never overlap, and they are deduplicated: a
 *     caller that asks for repository R while a fetch of R is running waits
 *     for it and reuses its result (its return code and message) instead of
 *     fetching again, unless it wants a commit that fetch did not bring, in
 *     which case it fetches once more;
 *   - readers (checkout, read_file, resolve, changed_paths) take no lock:
 *     libgit2 writes packs and refs atomically, so a reader sees the mirror
 *     either before or after a concurrent fetch.
 *
 * All functions return 0 or a negative SW_E* code with the message in the
 * thread's error slot (lib/error.h). Messages never hold a token: tokens
 * travel only through the credential callback, and credentials written
 * into a URL are masked ("https://<masked>@github.com/acme/shop.git").
 */
#ifndef SW_GIT_H
#define SW_GIT_H

#include <stddef.h>

#include "lib/buf.h"
#include "lib/error.h"

/*
 * Where a repository comes from. All pointers are borrowed for the call.
 * URL forms: https://host/o/r.git (token), ssh://git@host/o/r.git or
 * git@host:o/r.git (ssh key), file:///path and plain local paths (tests).
 */
struct sw_source_repo {
	const char *name;        /* "owner/repo"; names the mirror; never NULL */
	const char *url;         /* clone URL; never NULL */
	const char *token;       /* https: sent as user x-access-token; may be NULL */
	const char *ssh_key;     /* ssh: private key file; may be NULL */
	const char *ssh_pubkey;  /* ssh: public key file; NULL = derived by libssh2 */
	const char *ssh_passphrase; /* for an encrypted key; may be NULL */
};

struct sw_cfg_repo;

/*
 * An owned copy of a configured repository's name, URL and credentials, for
 * a job on a worker thread: the config may be replaced (SIGHUP) while the
 * job runs. `repo` is the view sw_source_fetch() takes; it points into the
 * copies.
 */
struct sw_source_remote {
	struct sw_source_repo repo;
	char *name, *url, *token, *ssh_key;
};

/* Copy `r` (borrowed) into `out`. */
void sw_source_remote_copy(struct sw_source_remote *out, const struct sw_cfg_repo *r);
/* Free the copies, wiping the token first. */
void sw_source_remote_release(struct sw_source_remote *r);

/*
 * The mirror's path, DATA_DIR/mirrors/owner__repo.git ('/' becomes "__").
 * The caller frees the result.
 */
char *sw_source_mirror_path(const char *data_dir, const char *repo_name);

/*
 * Bring the mirror of `r` up to date, creating it when missing: a bare
 * repository with remote "origin" fetching every branch
 * (refs/heads/NAME), every pull request head (refs/pull/N/head) and every
 * tag (refs/tags/NAME), each to the same name
 * (deleted branches are pruned). The URL stored in the mirror follows
 * `r->url` when it changes.
 *
 * `want_commit` (a full or abbreviated sha, may be NULL) is the commit the
 * caller needs: when the mirror already has it nothing touches the network;
 * when the fetch does not bring it the call fails with SW_ENOTFOUND.
 *
 * Errors read "fetch acme/shop from https://github.com/acme/shop.git:
 * <libgit2 message>".
 */
int sw_source_fetch(const struct sw_source_repo *r, const char *data_dir,
		    const char *want_commit);

/*
 * How many fetches have really gone to the remote since the process
 * started (deduplicated and skipped ones are not counted). For tests and
 * metrics.
 */
unsigned long sw_source_fetch_count(void);

/*
 * For tests: `hook` (NULL = none) runs on the fetching thread after each
 * real fetch has talked to the remote and before its result is handed to
 * the callers waiting for it, e.g. to hold a fetch open while other threads
 * pile up behind it. Set it before starting threads.
 */
void sw_source_set_fetch_hook(void (*hook)(const char *repo_name));

/*
 * Where https tokens come from besides sw_source_repo.token: a GitHub
 * App's installation tokens (github/github.h sw_github_app_git_token). On
 * the fetching worker, when the remote asks for credentials, `fn` is
 * called with the repository's name; refresh is set on the second try
 * (the first token was refused). It returns 0 and a new string in *out
 * (wiped and freed here), SW_ENOTFOUND with an empty error slot when it
 * has nothing for the repository (the static token is used), or another
 * error (the fetch fails with its message). Set it before starting
 * threads; NULL unsets.
 */
typedef int (*sw_source_token_fn)(char **out, const char *repo_name, int refresh, void *arg);
void sw_source_set_token_provider(sw_source_token_fn fn, void *arg);

/*
 * The user and password an https remote gets on credential request number
 * `attempt` (1, 2, ...): the provider's token when it has one (a fresh
 * one on the second attempt), else r->token once. Both are new strings.
 * What the credential callback uses; exposed for tests.
 */
int sw_source_https_credential(char **user, char **password, const struct sw_source_repo *r,
			       int attempt);

/*
 * Write the tree of `commit_sha` (full or abbreviated) into `dest_dir`,
 * which is created (with its parents) and must not exist or be empty.
 * Nothing else lands there: no .git, no files from other commits.
 * Executable bits and symlinks are kept; submodules become empty
 * directories. On failure `dest_dir` may hold a partial tree; remove it
 * with sw_workspace_remove().
 *
 * Errors: SW_ENOTFOUND "commit abc123 not found in acme/shop (fetched from
 * URL)"; SW_EEXISTS when dest_dir is not empty.
 */
int sw_source_checkout(const char *data_dir, const char *repo_name,
		       const char *commit_sha, const char *dest_dir);

/*
 * Append the content of `path` (relative to the repository root, e.g.
 * ".slipway.yml") at `commit_sha` to `out`, read straight from the mirror.
 * SW_ENOTFOUND when the commit or the file does not exist; SW_EINVALID
 * when `path` is a directory, a symlink or a submodule.
 */
int sw_source_read_file(struct sw_buf *out, const char *data_dir, const char *repo_name,
			const char *commit_sha, const char *path);

/*
 * Resolve `ref` to a commit sha (40 hex digits and a NUL in `out`). `ref`
 * may be a branch name ("main", "release/1.2"), a full ref name
 * ("refs/heads/main", "refs/pull/7/head", "refs/tags/v1"), a tag name or a
 * sha. Branches win over tags of the same name. SW_ENOTFOUND when unknown.
 */
int sw_source_resolve(char out[41], const char *data_dir, const char *repo_name,
		      const char *ref);

/*
 * The paths that differ between the trees of `from_sha` and `to_sha`
 * (added, removed, modified, type-changed; a rename lists both names),
 * sorted, without duplicates. `from_sha` NULL means the empty tree (every
 * file of `to_sha`). For a pull request pass the merge base (see
 * sw_source_merge_base) as `from_sha`, as GitHub's "files changed" does.
 * *out is a NULL-terminated array owned by the caller: free it with
 * sw_source_paths_free(). `n` (may be NULL) receives the count.
 */
int sw_source_changed_paths(char ***out, size_t *n, const char *data_dir,
			    const char *repo_name, const char *from_sha, const char *to_sha);
void sw_source_paths_free(char **paths);

/*
 * What a run shows of a commit it was not told about by a webhook (the
 * poller): owned strings, freed by sw_source_commit_release(). `title` is
 * the first line of the message; `author` the author's name.
 */
struct sw_source_commit {
	char *title, *message, *author;
};
#define SW_SOURCE_COMMIT_INIT { NULL, NULL, NULL }

/* Read `commit_sha` from the mirror into `out` (SW_SOURCE_COMMIT_INIT or
 * released). SW_ENOTFOUND when the commit is not there. */
int sw_source_commit_info(struct sw_source_commit *out, const char *data_dir,
			  const char *repo_name, const char *commit_sha);
void sw_source_commit_release(struct sw_source_commit *c);

/* The best common ancestor of two commits. SW_ENOTFOUND when none. */
int sw_source_merge_base(char out[41], const char *data_dir, const char *repo_name,
			 const char *a, const char *b);

/*
 * rm -rf `dir`: removes everything under it and the directory itself,
 * never following a symlink (a link to /etc removes the link only) and
 * never crossing into another file system. Failures are logged; a missing
 * `dir` is not a failure. Refuses "/", "" and NULL.
 */
void sw_workspace_remove(const char *dir);

#endif
