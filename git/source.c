/*
 * source.c - bare libgit2 mirrors and clean checkouts (see source.h).
 *
 * Fetch deduplication: each mirror has a small record (struct mirror) in a
 * process-wide list. A record counts the fetches started and finished and
 * keeps the last one's result. A caller that finds a fetch running waits
 * on the record's condition variable for that fetch to finish and takes
 * its result; only when it still lacks the commit it wants, and the fetch
 * it waited for had started before the caller arrived, does it fetch
 * again. So N callers arriving during one fetch cause no more than one
 * further fetch, and none when the first brought what they need.
 *
 * The records live as long as the process (one per repository, a few
 * hundred bytes) so no reference counting is needed.
 */
#include "git/git.h"
#include "config/config.h"

#include <errno.h>
#include <ftw.h>
#include <git2.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>
#include <unistd.h>

#include "lib/log.h"

/* ---- libgit2 set-up and error translation ------------------------------ */

static pthread_once_t git_once = PTHREAD_ONCE_INIT;

static void git_init_once(void)
{
	git_libgit2_init();
}

static void init(void)
{
	pthread_once(&git_once, git_init_once);
}

static const char *git_msg(void)
{
	const git_error *e = git_error_last();
	return e && e->message ? e->message : "unknown libgit2 error";
}

/* Map a libgit2 return code to ours. */
static int git_code(int gerr)
{
	switch (gerr) {
	case GIT_ENOTFOUND: return SW_ENOTFOUND;
	case GIT_EEXISTS: return SW_EEXISTS;
	case GIT_EAMBIGUOUS:
	case GIT_EINVALIDSPEC:
	case GIT_EINVALID: return SW_EINVALID;
	case GIT_EUSER: return SW_ECANCELLED;
	default: return SW_ERR;
	}
}

/*
 * A URL safe to show: credentials written into it are masked
 * ("https://user:tok@host/x" becomes "https://<masked>@host/x"). Any userinfo of an
 * http(s) URL counts as a credential; "ssh://git@host" keeps its user name
 * unless a password follows it. The caller frees the result.
 */
static char *redact_url(const char *url)
{
	const char *scheme_end, *auth_end, *host;
	if (!url)
		return sw_strdup("(no URL)");
	scheme_end = strstr(url, "://");
	if (!scheme_end)
		return sw_strdup(url);
	host = scheme_end + 3;
	auth_end = host + strcspn(host, "/@");
	if (*auth_end != '@')
		return sw_strdup(url);
	int http = !strncmp(url, "http", 4);
	if (!http && !memchr(host, ':', (size_t)(auth_end - host)))
		return sw_strdup(url);
	return sw_asprintf("%.*s<masked>%s", (int)(host - url), url, auth_end);
}

/* Replace each occurrence of `secret` in `s` with "***" (in place in a new string). */
static char *mask(const char *s, const char *secret)
{
	struct sw_buf b = SW_BUF_INIT;
	size_t sl = secret ? strlen(secret) : 0;
	const char *p;
	if (sl < 4) {   /* too short to be a real secret; masking would mangle text */
		sw_buf_adds(&b, s);
		return sw_buf_detach(&b, NULL);
	}
	while ((p = strstr(s, secret))) {
		sw_buf_add(&b, s, (size_t)(p - s));
		sw_buf_adds(&b, "***");
		s = p + sl;
	}
	sw_buf_adds(&b, s);
	return sw_buf_detach(&b, NULL);
}

/* ---- paths and opening ------------------------------------------------- */

char *sw_source_mirror_path(const char *data_dir, const char *repo_name)
{
	struct sw_buf b = SW_BUF_INIT;
	sw_buf_addf(&b, "%s/mirrors/", data_dir);
	for (const char *p = repo_name; *p; p++) {
		if (*p == '/')
			sw_buf_adds(&b, "__");
		else
			sw_buf_addch(&b, *p);
	}
	sw_buf_adds(&b, ".git");
	return sw_buf_detach(&b, NULL);
}

static int valid_repo_name(const char *name)
{
	if (!name || !*name || name[0] == '.' || strstr(name, ".."))
		return 0;
	for (const char *p = name; *p; p++)
		if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') ||
		      ('0' <= *p && *p <= '9') || strchr("-_./", *p)))
			return 0;
	return 1;
}

static int is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The origin URL recorded in the mirror, redacted; for messages. */
static char *origin_url(git_repository *repo)
{
	git_remote *remote = NULL;
	char *url;
	if (git_remote_lookup(&remote, repo, "origin") < 0) {
		git_error_clear();
		return sw_strdup("(no origin)");
	}
	url = redact_url(git_remote_url(remote));
	git_remote_free(remote);
	return url;
}

static int open_mirror(git_repository **out, const char *data_dir, const char *repo_name)
{
	char *path;
	int rc = 0;

	*out = NULL;
	init();
	if (!valid_repo_name(repo_name))
		return sw_error_setc(SW_EINVALID, "invalid repository name '%s'", repo_name ? repo_name : "");
	path = sw_source_mirror_path(data_dir, repo_name);
	if (!is_dir(path)) {
		rc = sw_error_setc(SW_ENOTFOUND, "%s has no mirror at %s (not fetched yet)",
				   repo_name, path);
	} else if (git_repository_open_ext(out, path, GIT_REPOSITORY_OPEN_NO_SEARCH |
					   GIT_REPOSITORY_OPEN_BARE, NULL) < 0) {
		rc = sw_error_set("open mirror %s: %s", path, git_msg());
		*out = NULL;
	}
	free(path);
	return rc;
}

/* Is `s` 4..40 hex digits? */
static int is_sha(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n < 4 || n > GIT_OID_HEXSZ)
		return 0;
	return strspn(s, "0123456789abcdefABCDEF") == n;
}

/*
 * Look up a commit by full or abbreviated sha. Errors name the repository
 * and where it was fetched from.
 */
static int lookup_commit(git_commit **out, git_repository *repo, const char *repo_name,
			 const char *sha)
{
	git_oid oid;
	int gerr;
	char *url;

	*out = NULL;
	if (!is_sha(sha))
		return sw_error_setc(SW_EINVALID, "'%s' is not a commit sha", sha ? sha : "");
	if (git_oid_fromstrn(&oid, sha, strlen(sha)) < 0)
		return sw_error_setc(SW_EINVALID, "'%s' is not a commit sha", sha);
	gerr = git_commit_lookup_prefix(out, repo, &oid, strlen(sha));
	if (gerr == 0)
		return 0;
	*out = NULL;
	url = origin_url(repo);
	if (gerr == GIT_EAMBIGUOUS)
		sw_error_setc(SW_EINVALID, "commit %s is ambiguous in %s (fetched from %s)",
			      sha, repo_name, url);
	else if (gerr == GIT_ENOTFOUND || gerr == GIT_EINVALIDSPEC)
		sw_error_setc(SW_ENOTFOUND, "commit %s not found in %s (fetched from %s)",
			      sha, repo_name, url);
	else
		sw_error_set("commit %s in %s: %s", sha, repo_name, git_msg());
	free(url);
	return gerr == GIT_ENOTFOUND || gerr == GIT_EINVALIDSPEC ? SW_ENOTFOUND : git_code(gerr);
}

/* Does the mirror at `path` hold commit `sha`? Never sets the error slot. */
static int mirror_has_commit(const char *path, const char *sha)
{
	git_repository *repo = NULL;
	git_commit *c = NULL;
	git_oid oid;
	int has = 0;

	if (!is_dir(path) || !is_sha(sha))
		return 0;
	if (git_repository_open_ext(&repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH |
				    GIT_REPOSITORY_OPEN_BARE, NULL) == 0 &&
	    git_oid_fromstrn(&oid, sha, strlen(sha)) == 0 &&
	    git_commit_lookup_prefix(&c, repo, &oid, strlen(sha)) == 0)
		has = 1;
	git_commit_free(c);
	git_repository_free(repo);
	git_error_clear();
	return has;
}

/* ---- fetch ------------------------------------------------------------- */

struct mirror {
	struct mirror *next;
	char *path;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int fetching;              /* a fetch is running */
	unsigned long started;     /* fetches started; the running one is number `started` */
	unsigned long finished;    /* number of the last finished fetch */
	int last_rc;               /* its result */
	char *last_err;            /* its message, when last_rc < 0 */
};

static pthread_mutex_t mirrors_mu = PTHREAD_MUTEX_INITIALIZER;
static struct mirror *mirrors;
static unsigned long fetch_count;
static void (*fetch_hook)(const char *repo_name);

void sw_source_set_fetch_hook(void (*hook)(const char *repo_name))
{
	fetch_hook = hook;
}

static sw_source_token_fn token_fn;
static void *token_arg;

void sw_source_set_token_provider(sw_source_token_fn fn, void *arg)
{
	token_fn = fn;
	token_arg = arg;
}

int sw_source_https_credential(char **user, char **password, const struct sw_source_repo *r,
			       int attempt)
{
	*user = *password = NULL;
	if (token_fn) {
		char *tok = NULL;
		int rc = token_fn(&tok, r->name, attempt > 1, token_arg);
		if (rc == 0 && tok) {
			*user = sw_strdup("x-access-token");
			*password = tok;
			return 0;
		}
		if (rc != SW_ENOTFOUND || *sw_error_last())
			return rc < 0 ? rc : SW_ERR;
		/* the provider has nothing for this repository: the static token */
	}
	if (attempt > 1)
		return sw_error_setc(SW_EINVALID, "token rejected");
	if (!r->token || !*r->token)
		return sw_error_setc(SW_ENOTFOUND, "no token configured");
	*user = sw_strdup("x-access-token");
	*password = sw_strdup(r->token);
	return 0;
}

unsigned long sw_source_fetch_count(void)
{
	return __atomic_load_n(&fetch_count, __ATOMIC_SEQ_CST);
}

static struct mirror *mirror_get(const char *path)
{
	struct mirror *m;
	pthread_mutex_lock(&mirrors_mu);
	for (m = mirrors; m; m = m->next)
		if (!strcmp(m->path, path))
			break;
	if (!m) {
		m = sw_calloc(1, sizeof(*m));
		m->path = sw_strdup(path);
		pthread_mutex_init(&m->mu, NULL);
		pthread_cond_init(&m->cv, NULL);
		m->next = mirrors;
		mirrors = m;
	}
	pthread_mutex_unlock(&mirrors_mu);
	return m;
}

struct cred_state {
	const struct sw_source_repo *r;
	int attempts;
};

/*
 * libgit2 calls this again after a rejected credential, forever if we let
 * it; each kind is offered once and then the fetch fails.
 */
static int cred_cb(git_credential **out, const char *url, const char *username_from_url,
		   unsigned int allowed, void *payload)
{
	struct cred_state *st = payload;
	const struct sw_source_repo *r = st->r;
	const char *user = username_from_url && *username_from_url ? username_from_url : "git";

	if (++st->attempts > 3) {
		git_error_set_str(GIT_ERROR_NET, "authentication failed (credentials rejected)");
		return GIT_EAUTH;
	}
	if ((allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) && ((r->token && *r->token) || token_fn)) {
		/* the first try, and once more with a fresh token from the provider */
		char *u = NULL, *pw = NULL;
		int rc;
		sw_error_clear();
		if (st->attempts > 2 || sw_source_https_credential(&u, &pw, r, st->attempts) < 0) {
			char *msg = sw_asprintf("authentication failed: %s", st->attempts > 2 ?
						"token rejected" : sw_error_last());
			git_error_set_str(GIT_ERROR_NET, msg);
			free(msg);
			return GIT_EAUTH;
		}
		rc = git_credential_userpass_plaintext_new(out, u, pw);
		memset(pw, 0, strlen(pw));
		free(pw);
		free(u);
		return rc;
	}
	if ((allowed & GIT_CREDENTIAL_USERNAME))
		return git_credential_username_new(out, user);
	if ((allowed & GIT_CREDENTIAL_SSH_KEY) && r->ssh_key && *r->ssh_key) {
		if (st->attempts > 2) {
			git_error_set_str(GIT_ERROR_NET, "authentication failed: ssh key rejected");
			return GIT_EAUTH;
		}
		return git_credential_ssh_key_new(out, user, r->ssh_pubkey, r->ssh_key,
						  r->ssh_passphrase);
	}
	git_error_set_str(GIT_ERROR_NET, (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT)
			  ? "authentication required and no token configured"
			  : (allowed & GIT_CREDENTIAL_SSH_KEY)
			  ? "authentication required and no ssh key configured"
			  : "authentication required");
	return GIT_EAUTH;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char *p = sw_strdup(path);
	int rc = 0;
	for (char *s = p + 1; ; s++) {
		if (*s == '/' || !*s) {
			char c = *s;
			*s = 0;
			if (mkdir(p, mode) < 0 && errno != EEXIST) {
				rc = sw_error_errno("mkdir %s", p);
				break;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	free(p);
	return rc;
}

/*
 * Create the bare mirror at `path`: built under a temporary name and
 * renamed into place, so a crash never leaves a half-made mirror behind.
 */
static int mirror_create(const char *path, const char *url)
{
	git_repository *repo = NULL;
	git_remote *remote = NULL;
	char *dir = sw_strdup(path), *slash, *tmp;
	int rc = 0;

	if ((slash = strrchr(dir, '/')))
		*slash = 0;
	tmp = sw_asprintf("%s.tmp-%ld-%lx", path, (long)getpid(), (unsigned long)pthread_self());
	if ((rc = mkdir_p(dir, 0755)) < 0)
		goto done;
	if (git_repository_init(&repo, tmp, 1) < 0 ||
	    git_remote_create_with_fetchspec(&remote, repo, "origin", url,
					     "+refs/heads/*:refs/heads/*") < 0 ||
	    git_remote_add_fetch(repo, "origin", "+refs/pull/*/head:refs/pull/*/head") < 0 ||
	    git_remote_add_fetch(repo, "origin", "+refs/tags/*:refs/tags/*") < 0) {
		rc = sw_error_set("create mirror %s: %s", path, git_msg());
		goto done;
	}
	git_remote_free(remote);
	remote = NULL;
	git_repository_free(repo);
	repo = NULL;
	if (rename(tmp, path) < 0) {
		if (errno == EEXIST || errno == ENOTEMPTY) {
			/* another process made it first; use theirs */
			sw_workspace_remove(tmp);
		} else {
			rc = sw_error_errno("create mirror %s: rename", path);
		}
	}
done:
	if (rc < 0 && tmp)
		sw_workspace_remove(tmp);
	git_remote_free(remote);
	git_repository_free(repo);
	free(tmp);
	free(dir);
	return rc;
}

/* Create the mirror if needed and fetch into it. Sets the error slot. */
static int do_fetch(const struct sw_source_repo *r, const char *path)
{
	git_repository *repo = NULL;
	git_remote *remote = NULL;
	git_fetch_options opts;
	struct cred_state st = { .r = r };
	int rc = 0;

	git_fetch_options_init(&opts, GIT_FETCH_OPTIONS_VERSION);
	if (!is_dir(path) && (rc = mirror_create(path, r->url)) < 0)
		return rc;
	if (git_repository_open_ext(&repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH |
				    GIT_REPOSITORY_OPEN_BARE, NULL) < 0) {
		rc = sw_error_set("open mirror %s: %s", path, git_msg());
		goto done;
	}
	if (git_remote_lookup(&remote, repo, "origin") < 0) {
		rc = sw_error_set("mirror %s: %s", path, git_msg());
		goto done;
	}
	if (strcmp(git_remote_url(remote), r->url) != 0) {
		/* the configured URL changed: follow it */
		git_remote_free(remote);
		remote = NULL;
		if (git_remote_set_url(repo, "origin", r->url) < 0 ||
		    git_remote_lookup(&remote, repo, "origin") < 0) {
			rc = sw_error_set("mirror %s: set URL: %s", path, git_msg());
			goto done;
		}
	}
	opts.callbacks.credentials = cred_cb;
	opts.callbacks.payload = &st;
	opts.prune = GIT_FETCH_PRUNE;
	opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;   /* the tag refspec does it */
	__atomic_add_fetch(&fetch_count, 1, __ATOMIC_SEQ_CST);
	if (git_remote_fetch(remote, NULL, &opts, NULL) < 0)
		rc = sw_error_set("%s", git_msg());
	if (fetch_hook)
		fetch_hook(r->name);
done:
	git_remote_free(remote);
	git_repository_free(repo);
	return rc;
}

/* Copy a finished fetch's result into this thread's slot. */
static int reuse(const struct mirror *m)
{
	if (m->last_rc < 0)
		return sw_error_setc(m->last_rc, "%s", m->last_err ? m->last_err : "fetch failed");
	return 0;
}

int sw_source_fetch(const struct sw_source_repo *r, const char *data_dir,
		    const char *want_commit)
{
	struct mirror *m;
	char *path, *url = NULL, *msg;
	unsigned long arrived, mine;
	int rc = 0;

	init();
	if (!r || !r->url || !*r->url)
		return sw_error_setc(SW_EINVALID, "fetch: no URL");
	if (!valid_repo_name(r->name))
		return sw_error_setc(SW_EINVALID, "fetch: invalid repository name '%s'",
				     r->name ? r->name : "");
	if (want_commit && !is_sha(want_commit))
		return sw_error_setc(SW_EINVALID, "fetch %s: '%s' is not a commit sha",
				     r->name, want_commit);
	path = sw_source_mirror_path(data_dir, r->name);
	if (want_commit && mirror_has_commit(path, want_commit)) {
		free(path);
		return 0;
	}

	m = mirror_get(path);
	pthread_mutex_lock(&m->mu);
	arrived = m->started;
	while (m->fetching) {
		unsigned long running = m->started;
		while (m->finished < running)
			pthread_cond_wait(&m->cv, &m->mu);
		/* fetch number `running` (or a later one) is done: use it */
		if (!want_commit || m->last_rc < 0) {
			rc = reuse(m);
			pthread_mutex_unlock(&m->mu);
			goto done;
		}
		pthread_mutex_unlock(&m->mu);
		int has = mirror_has_commit(path, want_commit);
		pthread_mutex_lock(&m->mu);
		if (has) {
			pthread_mutex_unlock(&m->mu);
			goto done;
		}
		if (running > arrived) {
			/* it started after we asked and still lacks the commit */
			pthread_mutex_unlock(&m->mu);
			goto missing;
		}
		/* it started before the commit was asked for: fetch again */
	}
	m->fetching = 1;
	mine = ++m->started;
	pthread_mutex_unlock(&m->mu);

	rc = do_fetch(r, path);
	if (rc < 0) {
		url = redact_url(r->url);
		msg = mask(sw_error_last(), r->token);
		rc = sw_error_setc(rc, "fetch %s from %s: %s", r->name, url, msg);
		free(msg);
		log_warn("source.fetch_failed", "repo=%s error=%s", r->name, sw_q(sw_error_last()));
	} else {
		log_debug("source.fetched", "repo=%s", r->name);
	}

	pthread_mutex_lock(&m->mu);
	m->last_rc = rc;
	free(m->last_err);
	m->last_err = rc < 0 ? sw_strdup(sw_error_last()) : NULL;
	m->finished = mine;
	m->fetching = 0;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);

	if (rc < 0 || !want_commit || mirror_has_commit(path, want_commit))
		goto done;
missing:
	if (!url)
		url = redact_url(r->url);
	rc = sw_error_setc(SW_ENOTFOUND, "fetch %s from %s: commit %s not found after fetching",
			   r->name, url, want_commit);
done:
	free(url);
	free(path);
	return rc;
}

/* ---- reading the mirror ------------------------------------------------ */

static int dir_usable(const char *dest)
{
	DIR *d;
	struct dirent *e;
	int rc = 0;

	if (!is_dir(dest)) {
		struct stat st;
		if (lstat(dest, &st) == 0)
			return sw_error_setc(SW_EEXISTS, "checkout into %s: exists and is not a directory", dest);
		return mkdir_p(dest, 0755);
	}
	if (!(d = opendir(dest)))
		return sw_error_errno("checkout into %s", dest);
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			rc = sw_error_setc(SW_EEXISTS, "checkout into %s: directory is not empty", dest);
			break;
		}
	}
	closedir(d);
	return rc;
}

int sw_source_checkout(const char *data_dir, const char *repo_name,
		       const char *commit_sha, const char *dest_dir)
{
	git_repository *repo = NULL;
	git_commit *commit = NULL;
	git_tree *tree = NULL;
	git_checkout_options opts;
	int rc;

	git_checkout_options_init(&opts, GIT_CHECKOUT_OPTIONS_VERSION);
	if ((rc = open_mirror(&repo, data_dir, repo_name)) < 0 ||
	    (rc = lookup_commit(&commit, repo, repo_name, commit_sha)) < 0)
		goto done;
	if (git_commit_tree(&tree, commit) < 0) {
		rc = sw_error_set("checkout %s %s: %s", repo_name, commit_sha, git_msg());
		goto done;
	}
	if ((rc = dir_usable(dest_dir)) < 0)
		goto done;
	/*
	 * The mirror is bare and has no index on disk, so the baseline is the
	 * empty tree and every file of `tree` is written. The index is never
	 * written: concurrent checkouts from one mirror must not race on it.
	 */
	opts.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX |
				 GIT_CHECKOUT_DONT_WRITE_INDEX;
	opts.target_directory = dest_dir;
	if (git_checkout_tree(repo, (const git_object *)tree, &opts) < 0)
		rc = sw_error_set("checkout %s %s into %s: %s", repo_name, commit_sha,
				  dest_dir, git_msg());
done:
	git_tree_free(tree);
	git_commit_free(commit);
	git_repository_free(repo);
	return rc;
}

int sw_source_read_file(struct sw_buf *out, const char *data_dir, const char *repo_name,
			const char *commit_sha, const char *path)
{
	git_repository *repo = NULL;
	git_commit *commit = NULL;
	git_tree *tree = NULL;
	git_tree_entry *entry = NULL;
	git_blob *blob = NULL;
	int rc, gerr;

	while (path && path[0] == '/')
		path++;
	if (!path || !*path)
		return sw_error_setc(SW_EINVALID, "read file: empty path");
	if ((rc = open_mirror(&repo, data_dir, repo_name)) < 0 ||
	    (rc = lookup_commit(&commit, repo, repo_name, commit_sha)) < 0)
		goto done;
	if (git_commit_tree(&tree, commit) < 0) {
		rc = sw_error_set("read %s at %s: %s", path, commit_sha, git_msg());
		goto done;
	}
	gerr = git_tree_entry_bypath(&entry, tree, path);
	if (gerr == GIT_ENOTFOUND) {
		rc = sw_error_setc(SW_ENOTFOUND, "%s: no file %s at %s", repo_name, path, commit_sha);
		goto done;
	} else if (gerr < 0) {
		rc = sw_error_set("read %s at %s: %s", path, commit_sha, git_msg());
		goto done;
	}
	if (git_tree_entry_type(entry) != GIT_OBJECT_BLOB ||
	    git_tree_entry_filemode(entry) == GIT_FILEMODE_LINK) {
		rc = sw_error_setc(SW_EINVALID, "%s: %s at %s is not a regular file",
				   repo_name, path, commit_sha);
		goto done;
	}
	if (git_blob_lookup(&blob, repo, git_tree_entry_id(entry)) < 0) {
		rc = sw_error_set("read %s at %s: %s", path, commit_sha, git_msg());
		goto done;
	}
	sw_buf_add(out, git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob));
done:
	git_blob_free(blob);
	git_tree_entry_free(entry);
	git_tree_free(tree);
	git_commit_free(commit);
	git_repository_free(repo);
	return rc;
}

/* Peel a reference name to a commit id; GIT_ENOTFOUND when there is no such ref. */
static int peel_ref(git_oid *out, git_repository *repo, const char *name)
{
	git_reference *ref = NULL;
	git_object *obj = NULL;
	int gerr = git_reference_lookup(&ref, repo, name);
	if (gerr == 0 && (gerr = git_reference_peel(&obj, ref, GIT_OBJECT_COMMIT)) == 0)
		git_oid_cpy(out, git_object_id(obj));
	git_object_free(obj);
	git_reference_free(ref);
	return gerr;
}

int sw_source_resolve(char out[41], const char *data_dir, const char *repo_name,
		      const char *ref)
{
	git_repository *repo = NULL;
	git_oid oid;
	int rc, gerr = GIT_ENOTFOUND;

	out[0] = 0;
	if (!ref || !*ref)
		return sw_error_setc(SW_EINVALID, "resolve: empty ref");
	if ((rc = open_mirror(&repo, data_dir, repo_name)) < 0)
		return rc;
	if (!strncmp(ref, "refs/", 5)) {
		gerr = peel_ref(&oid, repo, ref);
	} else {
		const char *prefixes[] = { "refs/heads/", "refs/tags/" };
		for (size_t i = 0; i < 2 && gerr == GIT_ENOTFOUND; i++) {
			char *name = sw_asprintf("%s%s", prefixes[i], ref);
			gerr = peel_ref(&oid, repo, name);
			free(name);
			if (gerr == GIT_EINVALIDSPEC)
				gerr = GIT_ENOTFOUND;
		}
		if (gerr == GIT_ENOTFOUND && is_sha(ref)) {
			git_commit *c = NULL;
			if ((rc = lookup_commit(&c, repo, repo_name, ref)) < 0)
				goto done;
			git_oid_cpy(&oid, git_commit_id(c));
			git_commit_free(c);
			gerr = 0;
		}
	}
	if (gerr == GIT_ENOTFOUND || gerr == GIT_EINVALIDSPEC)
		rc = sw_error_setc(SW_ENOTFOUND, "%s: no branch, tag or commit '%s'", repo_name, ref);
	else if (gerr < 0)
		rc = sw_error_setc(git_code(gerr), "%s: resolve %s: %s", repo_name, ref, git_msg());
	else
		git_oid_tostr(out, 41, &oid);
done:
	git_repository_free(repo);
	return rc;
}

int sw_source_commit_info(struct sw_source_commit *out, const char *data_dir,
			  const char *repo_name, const char *commit_sha)
{
	git_repository *repo = NULL;
	git_commit *commit = NULL;
	const git_signature *who;
	const char *msg;
	int rc;

	if ((rc = open_mirror(&repo, data_dir, repo_name)) < 0 ||
	    (rc = lookup_commit(&commit, repo, repo_name, commit_sha)) < 0)
		goto done;
	msg = git_commit_message(commit);
	who = git_commit_author(commit);
	out->message = sw_strdup(msg ? msg : "");
	out->title = sw_strndup(out->message, strcspn(out->message, "\r\n"));
	out->author = who && who->name ? sw_strdup(who->name) : NULL;
done:
	git_commit_free(commit);
	git_repository_free(repo);
	return rc;
}

void sw_source_commit_release(struct sw_source_commit *c)
{
	if (!c)
		return;
	free(c->title);
	free(c->message);
	free(c->author);
	c->title = c->message = c->author = NULL;
}

int sw_source_merge_base(char out[41], const char *data_dir, const char *repo_name,
			 const char *a, const char *b)
{
	git_repository *repo = NULL;
	git_commit *ca = NULL, *cb = NULL;
	git_oid oid;
	int rc, gerr;

	out[0] = 0;
	if ((rc = open_mirror(&repo, data_dir, repo_name)) < 0 ||
	    (rc = lookup_commit(&ca, repo, repo_name, a)) < 0 ||
	    (rc = lookup_commit(&cb, repo, repo_name, b)) < 0)
		goto done;
	gerr = git_merge_base(&oid, repo, git_commit_id(ca), git_commit_id(cb));
	if (gerr == GIT_ENOTFOUND)
		rc = sw_error_setc(SW_ENOTFOUND, "%s: %s and %s have no common ancestor",
				   repo_name, a, b);
	else if (gerr < 0)
		rc = sw_error_set("%s: merge base of %s and %s: %s", repo_name, a, b, git_msg());
	else
		git_oid_tostr(out, 41, &oid);
done:
	git_commit_free(ca);
	git_commit_free(cb);
	git_repository_free(repo);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct paths {
	char **v;
	size_t n, cap;
};

static void paths_add(struct paths *p, const char *s)
{
	if (!s)
		return;
	if (p->n + 2 > p->cap) {
		p->cap = p->cap ? 2 * p->cap : 16;
		p->v = sw_realloc(p->v, p->cap * sizeof(*p->v));
	}
	p->v[p->n++] = sw_strdup(s);
	p->v[p->n] = NULL;
}

void sw_source_paths_free(char **paths)
{
	for (char **p = paths; p && *p; p++)
		free(*p);
	free(paths);
}

int sw_source_changed_paths(char ***out, size_t *n, const char *data_dir,
			    const char *repo_name, const char *from_sha, const char *to_sha)
{
	git_repository *repo = NULL;
	git_commit *cfrom = NULL, *cto = NULL;
	git_tree *tfrom = NULL, *tto = NULL;
	git_diff *diff = NULL;
	git_diff_options dopts;
	struct paths p = { 0 };
	int rc;

	*out = NULL;
	if (n)
		*n = 0;
	git_diff_options_init(&dopts, GIT_DIFF_OPTIONS_VERSION);
	if ((rc = open_mirror(&repo, data_dir, repo_name)) < 0 ||
	    (from_sha && (rc = lookup_commit(&cfrom, repo, repo_name, from_sha)) < 0) ||
	    (rc = lookup_commit(&cto, repo, repo_name, to_sha)) < 0)
		goto done;
	if ((cfrom && git_commit_tree(&tfrom, cfrom) < 0) || git_commit_tree(&tto, cto) < 0 ||
	    git_diff_tree_to_tree(&diff, repo, tfrom, tto, &dopts) < 0) {
		rc = sw_error_set("%s: diff %s..%s: %s", repo_name, from_sha ? from_sha : "(empty)",
				  to_sha, git_msg());
		goto done;
	}
	for (size_t i = 0; i < git_diff_num_deltas(diff); i++) {
		const git_diff_delta *d = git_diff_get_delta(diff, i);
		paths_add(&p, d->old_file.path);
		if (!d->old_file.path || strcmp(d->old_file.path, d->new_file.path ? d->new_file.path : ""))
			paths_add(&p, d->new_file.path);
	}
	if (!p.v)
		p.v = sw_calloc(1, sizeof(*p.v));
	qsort(p.v, p.n, sizeof(*p.v), cmp_str);
	/* drop duplicates */
	size_t w = 0;
	for (size_t i = 0; i < p.n; i++) {
		if (w && !strcmp(p.v[w - 1], p.v[i]))
			free(p.v[i]);
		else
			p.v[w++] = p.v[i];
	}
	p.v[w] = NULL;
	*out = p.v;
	p.v = NULL;
	if (n)
		*n = w;
done:
	sw_source_paths_free(p.v);
	git_diff_free(diff);
	git_tree_free(tfrom);
	git_tree_free(tto);
	git_commit_free(cfrom);
	git_commit_free(cto);
	git_repository_free(repo);
	return rc;
}

/* ---- workspaces -------------------------------------------------------- */

static __thread int rm_failures;

/* First pass: make every directory writable and searchable by us, so a
 * build that left read-only directories (Go's module cache does) can be
 * emptied. */
static int rm_chmod_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if ((type == FTW_D || type == FTW_DNR) && (st->st_mode & 0700) != 0700)
		(void)chmod(path, (st->st_mode & 07777) | 0700);
	return 0;
}

static int rm_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	int r = (type == FTW_DP || type == FTW_D || type == FTW_DNR) ? rmdir(path) : unlink(path);
	if (r < 0 && errno != ENOENT) {
		if (rm_failures++ < 3)
			log_warn("workspace.remove_failed", "path=%s error=%s", sw_q(path),
				 sw_q(strerror(errno)));
	}
	return 0;
}

void sw_workspace_remove(const char *dir)
{
	struct stat st;
	if (!dir || !*dir || !strcmp(dir, "/")) {
		log_error("workspace.remove_refused", "path=%s", sw_q(dir ? dir : ""));
		return;
	}
	if (lstat(dir, &st) < 0)
		return;
	rm_failures = 0;
	if (S_ISDIR(st.st_mode))
		(void)nftw(dir, rm_chmod_cb, 16, FTW_PHYS | FTW_MOUNT);
	/* FTW_PHYS: symlinks are removed, never followed; FTW_MOUNT: stay on this fs */
	(void)nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

void sw_source_remote_copy(struct sw_source_remote *out, const struct sw_cfg_repo *r)
{
	memset(out, 0, sizeof(*out));
	out->name = sw_strdup(r->name);
	out->url = sw_strdup(r->url);
	out->token = r->token.value ? sw_strdup(r->token.value) : NULL;
	out->ssh_key = r->ssh_key ? sw_strdup(r->ssh_key) : NULL;
	out->repo.name = out->name;
	out->repo.url = out->url;
	out->repo.token = out->token;
	out->repo.ssh_key = out->ssh_key;
}

void sw_source_remote_release(struct sw_source_remote *r)
{
	if (r->token) {
		memset(r->token, 0, strlen(r->token));
		free(r->token);
	}
	free(r->name);
	free(r->url);
	free(r->ssh_key);
	memset(r, 0, sizeof(*r));
}
