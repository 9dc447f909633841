/*
 * test_source.c - mirrors and checkouts against real git repositories made
 * with the git command line in a temporary directory.
 *
 * The origin repository (made once, in the group set-up):
 *   A (main)  README, .slipway.yml v1, run.sh (0755), link -> README,
 *             dir/sub/file.txt
 *   B (main)  .slipway.yml v2, dir/sub/file.txt removed, new.txt added
 *   C (dev)   branched from A, adds dev.txt
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/buf.h"
#include "git/git.h"
#include "tests/unit/scratch.h"
#include "tests/unit/slow.h"

/*
 * libgit2 1.5's git_regexp_match() (used when it looks up remote config)
 * leaks its pcre2 match data on some paths; fixed upstream by
 * libgit2/libgit2#6382. Only pcre2 allocations are suppressed, so our own
 * leaks of libgit2 objects are still reported under SAN=1.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libpcre2-8.so\n";
}

static char tmp[256];        /* the test's temporary directory */
static char origin[300];     /* the origin repository (working tree) */
static char file_url[320];
static char sha_a[41], sha_b[41], sha_c[41];

static void rev_parse(char out[41], const char *rev)
{
	struct sw_buf b = SW_BUF_INIT;
	char *f = sw_asprintf("%s/rev.txt", tmp);
	assert_int_equal(sw_test_sh("git -C '%s' rev-parse '%s' > '%s'", origin, rev, f), 0);
	assert_int_equal(sw_buf_read_file(&b, f), 0);
	assert_true(b.len >= 40);
	memcpy(out, b.ptr, 40);
	out[40] = 0;
	sw_buf_release(&b);
	free(f);
}

static int group_setup(void **state)
{
	strcpy(tmp, "/tmp/sw-source-XXXXXX");
	if (!mkdtemp(tmp))
		return -1;
	snprintf(origin, sizeof(origin), "%s/origin", tmp);
	snprintf(file_url, sizeof(file_url), "file://%s", origin);
	sw_test_git_env();
	int rc = sw_test_sh("set -e; cd '%s'; git init -q -b main origin; cd origin;"
		    "echo hello > README; printf 'stages: v1\\n' > .slipway.yml;"
		    "printf '#!/bin/sh\\necho run\\n' > run.sh; chmod 755 run.sh;"
		    "ln -s README link; mkdir -p dir/sub; echo x > dir/sub/file.txt;"
		    "git add -A; git commit -q -m A;"
		    "git branch dev;"
		    "printf 'stages: v2\\n' > .slipway.yml; git rm -q dir/sub/file.txt;"
		    "echo new > new.txt; git add -A; git commit -q -m B;"
		    "git checkout -q dev; echo dev > dev.txt; git add dev.txt; git commit -q -m C;"
		    "git checkout -q main", tmp);
	if (rc != 0)
		return -1;
	rev_parse(sha_a, "main~1");
	rev_parse(sha_b, "main");
	rev_parse(sha_c, "dev");
	return 0;
}

static int group_teardown(void **state)
{
	sw_workspace_remove(tmp);
	return 0;
}

/* A fresh data directory per test, so each starts without a mirror. */
static char *data_dir(const char *name)
{
	char *d = sw_asprintf("%s/data-%s", tmp, name);
	mkdir(d, 0755);
	return d;
}

static struct sw_source_repo repo_file(void)
{
	struct sw_source_repo r = { .name = "acme/shop", .url = file_url };
	return r;
}

/* Every path under `dir` (files, links, directories), sorted, as lines. */
static void list_tree(struct sw_buf *out, const char *dir, const char *prefix)
{
	char *full = *prefix ? sw_asprintf("%s/%s", dir, prefix) : sw_strdup(dir);
	struct dirent **ents;
	int n = scandir(full, &ents, NULL, alphasort);
	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		const char *nm = ents[i]->d_name;
		if (strcmp(nm, ".") && strcmp(nm, "..")) {
			char *rel = *prefix ? sw_asprintf("%s/%s", prefix, nm) : sw_strdup(nm);
			char *p = sw_asprintf("%s/%s", dir, rel);
			struct stat st;
			assert_int_equal(lstat(p, &st), 0);
			sw_buf_addf(out, "%s%s\n", rel, S_ISDIR(st.st_mode) ? "/" : "");
			if (S_ISDIR(st.st_mode))
				list_tree(out, dir, rel);
			free(rel);
			free(p);
		}
		free(ents[i]);
	}
	free(ents);
	free(full);
}

static void test_mirror_path(void **state)
{
	char *p = sw_source_mirror_path("/var/lib/slipway", "acme/shop");
	assert_string_equal(p, "/var/lib/slipway/mirrors/acme__shop.git");
	free(p);
}

static void test_fetch_file_url_creates_mirror(void **state)
{
	char *dd = data_dir("file"), *mp = sw_source_mirror_path(dd, "acme/shop"), *p;
	struct sw_source_repo r = repo_file();
	unsigned long before = sw_source_fetch_count();
	char sha[41];
	struct stat st;

	assert_int_equal(sw_source_fetch(&r, dd, NULL), 0);
	assert_int_equal(sw_source_fetch_count(), before + 1);
	assert_int_equal(stat(mp, &st), 0);
	p = sw_asprintf("%s/HEAD", mp);
	assert_int_equal(stat(p, &st), 0);   /* bare: HEAD at the top */
	free(p);
	assert_int_equal(sw_source_resolve(sha, dd, "acme/shop", "main"), 0);
	assert_string_equal(sha, sha_b);
	assert_int_equal(sw_source_resolve(sha, dd, "acme/shop", "dev"), 0);
	assert_string_equal(sha, sha_c);
	assert_int_equal(sw_source_resolve(sha, dd, "acme/shop", "refs/heads/dev"), 0);
	assert_string_equal(sha, sha_c);
	assert_int_equal(sw_source_resolve(sha, dd, "acme/shop", "nope"), SW_ENOTFOUND);
	assert_non_null(strstr(sw_error_last(), "nope"));
	free(mp);
	free(dd);
}

static void test_fetch_plain_path(void **state)
{
	char *dd = data_dir("plain");
	struct sw_source_repo r = { .name = "acme/shop", .url = origin };
	char sha[41];

	assert_int_equal(sw_source_fetch(&r, dd, sha_c), 0);
	assert_int_equal(sw_source_resolve(sha, dd, "acme/shop", "main"), 0);
	assert_string_equal(sha, sha_b);
	free(dd);
}

static void check_checkout(const char *dd, const char *sha, const char *expect, double *ms)
{
	char *dest = sw_asprintf("%s/ws-%s", dd, sha);
	struct sw_buf list = SW_BUF_INIT;
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(sw_source_checkout(dd, "acme/shop", sha, dest), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (ms)
		*ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	list_tree(&list, dest, "");
	assert_string_equal(list.ptr, expect);
	sw_buf_release(&list);

	/* modes: the script is executable, README is not, link is a symlink */
	struct stat st;
	char *p = sw_asprintf("%s/run.sh", dest), target[64];
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode) && (st.st_mode & S_IXUSR));
	free(p);
	p = sw_asprintf("%s/README", dest);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode) && !(st.st_mode & S_IXUSR));
	free(p);
	p = sw_asprintf("%s/link", dest);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	ssize_t n = readlink(p, target, sizeof(target) - 1);
	assert_true(n > 0);
	target[n] = 0;
	assert_string_equal(target, "README");
	free(p);
	sw_workspace_remove(dest);
	assert_int_equal(lstat(dest, &st), -1);
	free(dest);
}

static void test_checkout_each_commit(void **state)
{
	char *dd = data_dir("checkout");
	struct sw_source_repo r = repo_file();
	double ms;

	assert_int_equal(sw_source_fetch(&r, dd, NULL), 0);
	check_checkout(dd, sha_a, ".slipway.yml\nREADME\ndir/\ndir/sub/\ndir/sub/file.txt\n"
		       "link\nrun.sh\n", &ms);
	print_message("checkout of A (5 files): %.2f ms\n", ms);
	check_checkout(dd, sha_b, ".slipway.yml\nREADME\nlink\nnew.txt\nrun.sh\n", NULL);
	check_checkout(dd, sha_c, ".slipway.yml\nREADME\ndev.txt\ndir/\ndir/sub/\n"
		       "dir/sub/file.txt\nlink\nrun.sh\n", NULL);
	/* an abbreviated sha works too */
	char short_a[9];
	memcpy(short_a, sha_a, 8);
	short_a[8] = 0;
	check_checkout(dd, short_a, ".slipway.yml\nREADME\ndir/\ndir/sub/\ndir/sub/file.txt\n"
		       "link\nrun.sh\n", NULL);
	free(dd);
}

static void test_checkout_errors(void **state)
{
	char *dd = data_dir("errors"), *dest = sw_asprintf("%s/ws", dd), *p;
	struct sw_source_repo r = repo_file();

	/* before any fetch */
	assert_int_equal(sw_source_checkout(dd, "acme/shop", sha_a, dest), SW_ENOTFOUND);
	assert_non_null(strstr(sw_error_last(), "not fetched yet"));

	assert_int_equal(sw_source_fetch(&r, dd, NULL), 0);
	assert_int_equal(sw_source_checkout(dd, "acme/shop", "abc123", dest), SW_ENOTFOUND);
	p = sw_asprintf("commit abc123 not found in acme/shop (fetched from %s)", file_url);
	assert_string_equal(sw_error_last(), p);
	free(p);
	assert_int_equal(sw_source_checkout(dd, "acme/shop", "not-a-sha", dest), SW_EINVALID);

	/* a non-empty destination is refused */
	assert_int_equal(sw_test_sh("mkdir -p '%s' && touch '%s/stray'", dest, dest), 0);
	assert_int_equal(sw_source_checkout(dd, "acme/shop", sha_a, dest), SW_EEXISTS);
	assert_non_null(strstr(sw_error_last(), "not empty"));
	sw_workspace_remove(dest);
	/* an empty one is fine */
	assert_int_equal(mkdir(dest, 0755), 0);
	assert_int_equal(sw_source_checkout(dd, "acme/shop", sha_a, dest), 0);
	sw_workspace_remove(dest);
	free(dest);
	free(dd);
}

static void test_read_file(void **state)
{
	char *dd = data_dir("read");
	struct sw_source_repo r = repo_file();
	struct sw_buf b = SW_BUF_INIT;

	assert_int_equal(sw_source_fetch(&r, dd, NULL), 0);
	assert_int_equal(sw_source_read_file(&b, dd, "acme/shop", sha_a, ".slipway.yml"), 0);
	assert_string_equal(b.ptr, "stages: v1\n");
	sw_buf_reset(&b);
	assert_int_equal(sw_source_read_file(&b, dd, "acme/shop", sha_b, ".slipway.yml"), 0);
	assert_string_equal(b.ptr, "stages: v2\n");
	sw_buf_reset(&b);
	assert_int_equal(sw_source_read_file(&b, dd, "acme/shop", sha_a, "dir/sub/file.txt"), 0);
	assert_string_equal(b.ptr, "x\n");
	sw_buf_reset(&b);
	assert_int_equal(sw_source_read_file(&b, dd, "acme/shop", sha_b, "dir/sub/file.txt"),
			 SW_ENOTFOUND);
	assert_int_equal(sw_source_read_file(&b, dd, "acme/shop", sha_a, "dir"), SW_EINVALID);
	assert_int_equal(sw_source_read_file(&b, dd, "acme/shop", sha_a, "link"), SW_EINVALID);
	assert_int_equal(sw_source_read_file(&b, dd, "acme/shop", "0123456789", ".slipway.yml"),
			 SW_ENOTFOUND);
	assert_int_equal(b.len, 0);
	sw_buf_release(&b);
	free(dd);
}

static void test_commit_info(void **state)
{
	char *dd = data_dir("info");
	struct sw_source_repo r = repo_file();
	struct sw_source_commit c = SW_SOURCE_COMMIT_INIT;

	assert_int_equal(sw_source_fetch(&r, dd, NULL), 0);
	assert_int_equal(sw_source_commit_info(&c, dd, "acme/shop", sha_c), 0);
	assert_string_equal(c.title, "C");
	assert_string_equal(c.message, "C\n");
	assert_string_equal(c.author, "t");
	sw_source_commit_release(&c);
	assert_null(c.title);
	assert_int_equal(sw_source_commit_info(&c, dd, "acme/shop", "0123456789"), SW_ENOTFOUND);
	assert_null(c.message);
	sw_source_commit_release(&c);
	free(dd);
}

static void test_present_commit_skips_network(void **state)
{
	char *dd = data_dir("skip"), *moved = sw_asprintf("%s/origin-moved", tmp);
	struct sw_source_repo r = repo_file();
	unsigned long before;

	assert_int_equal(sw_source_fetch(&r, dd, NULL), 0);
	before = sw_source_fetch_count();
	assert_int_equal(sw_source_fetch(&r, dd, sha_b), 0);
	assert_int_equal(sw_source_fetch(&r, dd, sha_c), 0);
	assert_int_equal(sw_source_fetch_count(), before);

	/* with the origin gone, a present commit still succeeds... */
	assert_int_equal(rename(origin, moved), 0);
	assert_int_equal(sw_source_fetch(&r, dd, sha_a), 0);
	assert_int_equal(sw_source_fetch_count(), before);
	/* ...and a missing one fails, naming repository and URL */
	int rc = sw_source_fetch(&r, dd, "0123456789abcdef0123456789abcdef01234567");
	assert_true(rc < 0);
	char *prefix = sw_asprintf("fetch acme/shop from %s: ", file_url);
	assert_memory_equal(sw_error_last(), prefix, strlen(prefix));
	free(prefix);
	assert_int_equal(rename(moved, origin), 0);
	free(moved);
	free(dd);
}

/* ---- concurrency ---- */

struct fetch_thread {
	const char *dd;
	const char *want;
	pthread_barrier_t *bar;
	int rc;
};

static void *fetch_main(void *arg)
{
	struct fetch_thread *t = arg;
	struct sw_source_repo r = repo_file();
	pthread_barrier_wait(t->bar);
	t->rc = sw_source_fetch(&r, t->dd, t->want);
	return NULL;
}

static void slow_hook(const char *name)
{
	usleep((useconds_t)sw_test_ms(200) * 1000);   /* hold the fetch open so every thread arrives during it */
}

static void run_threads(const char *dd, const char *want, unsigned long expect_fetches)
{
	enum { N = 8 };
	pthread_t th[N];
	struct fetch_thread t[N];
	pthread_barrier_t bar;
	unsigned long before = sw_source_fetch_count();

	pthread_barrier_init(&bar, NULL, N);
	for (int i = 0; i < N; i++) {
		t[i] = (struct fetch_thread){ .dd = dd, .want = want, .bar = &bar };
		assert_int_equal(pthread_create(&th[i], NULL, fetch_main, &t[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(t[i].rc, 0);
	}
	pthread_barrier_destroy(&bar);
	assert_int_equal(sw_source_fetch_count() - before, expect_fetches);
}

static void test_concurrent_fetches_deduplicated(void **state)
{
	char *dd1 = data_dir("threads1"), *dd2 = data_dir("threads2"), sha[41];

	/* a fresh mirror, all wanting B: one fetch; whoever comes later finds B */
	run_threads(dd1, sha_b, 1);
	assert_int_equal(sw_source_resolve(sha, dd1, "acme/shop", "dev"), 0);
	assert_string_equal(sha, sha_c);

	/* no commit named: the seven arriving during the (slowed) fetch reuse it */
	sw_source_set_fetch_hook(slow_hook);
	run_threads(dd2, NULL, 1);
	sw_source_set_fetch_hook(NULL);
	free(dd1);
	free(dd2);
}

/*
 * A caller wanting a commit pushed after a running fetch had already
 * talked to the remote waits for that fetch, finds the commit missing and
 * fetches once more; a caller wanting nothing in particular just reuses it.
 */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_stage;       /* 1: first fetch done, D pushed; 2: waiters queued */
static char sha_late[41];

static void gate_hook(const char *name)
{
	pthread_mutex_lock(&gate_mu);
	if (gate_stage == 0) {
		/* the first fetch has its refs; now origin gets a new commit */
		assert_int_equal(sw_test_sh("set -e; cd '%s'; echo late > late.txt; git add late.txt;"
				    "git commit -q -m late", origin), 0);
		rev_parse(sha_late, "main");
		gate_stage = 1;
		pthread_cond_broadcast(&gate_cv);
		while (gate_stage < 2)
			pthread_cond_wait(&gate_cv, &gate_mu);
	}
	pthread_mutex_unlock(&gate_mu);
}

struct late_thread {
	const char *dd;
	const char *want;
	int rc;
};

static void *late_main(void *arg)
{
	struct late_thread *t = arg;
	struct sw_source_repo r = repo_file();
	t->rc = sw_source_fetch(&r, t->dd, t->want);
	return NULL;
}

static void test_waiter_refetches_for_a_missing_commit(void **state)
{
	char *dd = data_dir("late"), sha[41];
	struct late_thread first = { .dd = dd }, want_late = { .dd = dd }, any = { .dd = dd };
	pthread_t t1, t2, t3;
	unsigned long before = sw_source_fetch_count();

	gate_stage = 0;
	sw_source_set_fetch_hook(gate_hook);
	assert_int_equal(pthread_create(&t1, NULL, late_main, &first), 0);
	pthread_mutex_lock(&gate_mu);
	while (gate_stage < 1)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
	want_late.want = sha_late;
	assert_int_equal(pthread_create(&t2, NULL, late_main, &want_late), 0);
	assert_int_equal(pthread_create(&t3, NULL, late_main, &any), 0);
	usleep((useconds_t)sw_test_ms(100) * 1000);   /* let both queue up behind the first fetch */
	pthread_mutex_lock(&gate_mu);
	gate_stage = 2;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	pthread_join(t3, NULL);
	sw_source_set_fetch_hook(NULL);

	assert_int_equal(first.rc, 0);
	assert_int_equal(any.rc, 0);
	assert_int_equal(want_late.rc, 0);
	/* the first fetch, then one more for the late commit; `any` fetched nothing */
	assert_int_equal(sw_source_fetch_count() - before, 2);
	assert_int_equal(sw_source_resolve(sha, dd, "acme/shop", "main"), 0);
	assert_string_equal(sha, sha_late);

	assert_int_equal(sw_test_sh("cd '%s' && git reset -q --hard HEAD~1", origin), 0);
	free(dd);
}

static void test_new_commit_is_fetched(void **state)
{
	char *dd = data_dir("newcommit"), sha[41], sha_d[41];
	struct sw_source_repo r = repo_file();
	struct sw_buf b = SW_BUF_INIT;
	unsigned long before;

	assert_int_equal(sw_source_fetch(&r, dd, NULL), 0);
	assert_int_equal(sw_test_sh("set -e; cd '%s'; echo d > d.txt; git add d.txt; git commit -q -m D;"
			    "git tag v1", origin), 0);
	rev_parse(sha_d, "main");
	assert_int_equal(sw_source_read_file(&b, dd, "acme/shop", sha_d, "d.txt"), SW_ENOTFOUND);
	before = sw_source_fetch_count();
	assert_int_equal(sw_source_fetch(&r, dd, sha_d), 0);
	assert_int_equal(sw_source_fetch_count(), before + 1);
	assert_int_equal(sw_source_resolve(sha, dd, "acme/shop", "main"), 0);
	assert_string_equal(sha, sha_d);
	assert_int_equal(sw_source_resolve(sha, dd, "acme/shop", "v1"), 0);
	assert_string_equal(sha, sha_d);
	assert_int_equal(sw_source_read_file(&b, dd, "acme/shop", sha_d, "d.txt"), 0);
	assert_string_equal(b.ptr, "d\n");

	/* put origin back where the other tests expect it */
	assert_int_equal(sw_test_sh("set -e; cd '%s'; git tag -d v1 >/dev/null; git reset -q --hard HEAD~1",
			    origin), 0);
	/* the deleted branch tip is pruned from the mirror on the next fetch */
	assert_int_equal(sw_source_fetch(&r, dd, NULL), 0);
	assert_int_equal(sw_source_resolve(sha, dd, "acme/shop", "main"), 0);
	assert_string_equal(sha, sha_b);
	assert_int_equal(sw_source_resolve(sha, dd, "acme/shop", "v1"), SW_ENOTFOUND);
	sw_buf_release(&b);
	free(dd);
}

static void test_changed_paths_and_merge_base(void **state)
{
	char *dd = data_dir("diff"), **paths, mb[41];
	struct sw_source_repo r = repo_file();
	size_t n;

	assert_int_equal(sw_source_fetch(&r, dd, NULL), 0);
	assert_int_equal(sw_source_changed_paths(&paths, &n, dd, "acme/shop", sha_a, sha_b), 0);
	assert_int_equal(n, 3);
	assert_string_equal(paths[0], ".slipway.yml");
	assert_string_equal(paths[1], "dir/sub/file.txt");
	assert_string_equal(paths[2], "new.txt");
	assert_null(paths[3]);
	sw_source_paths_free(paths);

	assert_int_equal(sw_source_merge_base(mb, dd, "acme/shop", sha_b, sha_c), 0);
	assert_string_equal(mb, sha_a);
	assert_int_equal(sw_source_changed_paths(&paths, &n, dd, "acme/shop", mb, sha_c), 0);
	assert_int_equal(n, 1);
	assert_string_equal(paths[0], "dev.txt");
	sw_source_paths_free(paths);

	assert_int_equal(sw_source_changed_paths(&paths, &n, dd, "acme/shop", NULL, sha_a), 0);
	assert_int_equal(n, 5);
	sw_source_paths_free(paths);
	free(dd);
}

static void test_token_never_in_messages(void **state)
{
	char *dd = data_dir("token");
	struct sw_source_repo r = {
		.name = "acme/shop",
		.url = "https://x-access-token:SECRET123@127.0.0.1:1/acme/shop.git",
		.token = "SECRET123",
	};
	int rc = sw_source_fetch(&r, dd, NULL);
	assert_true(rc < 0);
	assert_null(strstr(sw_error_last(), "SECRET123"));
	assert_non_null(strstr(sw_error_last(),
			       "fetch acme/shop from https://<masked>@127.0.0.1:1/acme/shop.git: "));
	free(dd);
}

/*
 * https-style auth over plain http: a small Python server in front of
 * `git http-backend` that demands Basic auth x-access-token:<token>, as
 * GitHub does. Skipped when python3 is missing.
 */
static const char http_server_py[] =
	"import http.server, subprocess, base64, os, sys\n"
	"root, token, portfile = sys.argv[1], sys.argv[2], sys.argv[3]\n"
	"want = 'Basic ' + base64.b64encode(('x-access-token:' + token).encode()).decode()\n"
	"class H(http.server.BaseHTTPRequestHandler):\n"
	"    def log_message(self, *a): pass\n"
	"    def do_GET(self): self.go()\n"
	"    def do_POST(self): self.go()\n"
	"    def go(self):\n"
	"        if self.headers.get('Authorization', '') != want:\n"
	"            self.send_response(401)\n"
	"            self.send_header('WWW-Authenticate', 'Basic realm=\"git\"')\n"
	"            self.send_header('Content-Length', '0')\n"
	"            self.end_headers()\n"
	"            return\n"
	"        body = b''\n"
	"        if self.headers.get('Transfer-Encoding', '') == 'chunked':\n"
	"            while True:\n"
	"                n = int(self.rfile.readline().strip(), 16)\n"
	"                chunk = self.rfile.read(n); self.rfile.readline()\n"
	"                if n == 0: break\n"
	"                body += chunk\n"
	"        else:\n"
	"            body = self.rfile.read(int(self.headers.get('Content-Length') or 0))\n"
	"        path, _, qs = self.path.partition('?')\n"
	"        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL='1',\n"
	"                   PATH_INFO=path, QUERY_STRING=qs, REQUEST_METHOD=self.command,\n"
	"                   CONTENT_TYPE=self.headers.get('Content-Type', ''),\n"
	"                   HTTP_CONTENT_ENCODING=self.headers.get('Content-Encoding', ''),\n"
	"                   GIT_PROTOCOL=self.headers.get('Git-Protocol', ''),\n"
	"                   REMOTE_USER='x-access-token', REMOTE_ADDR='127.0.0.1')\n"
	"        out = subprocess.run(['git', 'http-backend'], input=body, env=env,\n"
	"                             capture_output=True).stdout\n"
	"        head, _, rest = out.partition(b'\\r\\n\\r\\n')\n"
	"        status, hdrs = 200, []\n"
	"        for line in head.decode().split('\\r\\n'):\n"
	"            k, _, v = line.partition(':')\n"
	"            if k.lower() == 'status': status = int(v.split()[0])\n"
	"            elif k: hdrs.append((k, v.strip()))\n"
	"        self.send_response(status)\n"
	"        for k, v in hdrs: self.send_header(k, v)\n"
	"        self.send_header('Content-Length', str(len(rest)))\n"
	"        self.end_headers()\n"
	"        self.wfile.write(rest)\n"
	"s = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
	"open(portfile + '.tmp', 'w').write(str(s.server_address[1]))\n"
	"os.rename(portfile + '.tmp', portfile)\n"
	"s.serve_forever()\n";

static void test_https_token_auth(void **state)
{
	char *py = sw_asprintf("%s/srv.py", tmp), *portf = sw_asprintf("%s/port", tmp);
	char *pidf = sw_asprintf("%s/srv.pid", tmp), *url = NULL;
	char *dd = data_dir("http"), *dd2 = data_dir("http2"), *dd3 = data_dir("http3");
	struct sw_buf b = SW_BUF_INIT;
	FILE *f;

	if (sw_test_sh("command -v python3 >/dev/null") != 0) {
		print_message("python3 missing: skipped\n");
		skip();
	}
	assert_non_null(f = fopen(py, "w"));
	fputs(http_server_py, f);
	fclose(f);
	/* serve the directory holding origin/ (its .git inside) */
	/* the system python when there is one: a version manager's shim can
	 * take seconds to start on a loaded machine; wait for the port file
	 * for as long as a start can take there (a minute, scaled) */
	assert_int_equal(sw_test_sh("py=python3; [ -x /usr/bin/python3 ] && py=/usr/bin/python3; "
				    "$py '%s' '%s' tok-s3cr3t-value '%s' & echo $! > '%s'",
				    py, tmp, portf, pidf), 0);
	for (long i = 0; i < sw_test_ms(1200) && sw_buf_read_file(&b, portf) < 0; i++)
		usleep(50 * 1000);
	assert_true(b.len > 0);
	url = sw_asprintf("http://127.0.0.1:%s/origin/.git", b.ptr);

	struct sw_source_repo r = { .name = "acme/shop", .url = url, .token = "tok-s3cr3t-value" };
	int rc = sw_source_fetch(&r, dd, sha_b);
	if (rc != 0)
		fail_msg("%s", sw_error_last());
	char sha[41];
	assert_int_equal(sw_source_resolve(sha, dd, "acme/shop", "dev"), 0);
	assert_string_equal(sha, sha_c);

	/* a wrong token: rejected once, not retried forever, never shown */
	r.token = "wrong-token-value";
	assert_true(sw_source_fetch(&r, dd2, NULL) < 0);
	assert_non_null(strstr(sw_error_last(), "token rejected"));
	assert_null(strstr(sw_error_last(), "wrong-token-value"));
	/* no token at all */
	r.token = NULL;
	assert_true(sw_source_fetch(&r, dd3, NULL) < 0);
	assert_non_null(strstr(sw_error_last(), "no token configured"));

	sw_buf_reset(&b);
	assert_int_equal(sw_buf_read_file(&b, pidf), 0);
	kill((pid_t)atol(b.ptr), SIGTERM);
	sw_buf_release(&b);
	free(url);
	free(py);
	free(portf);
	free(pidf);
	free(dd);
	free(dd2);
	free(dd3);
}

static void test_workspace_remove(void **state)
{
	char *ws = sw_asprintf("%s/ws-rm", tmp), *outside = sw_asprintf("%s/outside", tmp), *p;
	struct stat st;

	assert_int_equal(sw_test_sh("set -e; mkdir -p '%s/ro/deep' '%s'; echo keep > '%s/keep';"
			    "echo x > '%s/ro/deep/f'; chmod 555 '%s/ro/deep' '%s/ro';"
			    "ln -s '%s' '%s/escape'; ln -s '%s/keep' '%s/keeplink'",
			    ws, outside, outside, ws, ws, ws, outside, ws, outside, ws), 0);
	sw_workspace_remove(ws);
	assert_int_equal(lstat(ws, &st), -1);
	p = sw_asprintf("%s/keep", outside);
	assert_int_equal(stat(p, &st), 0);   /* the symlinks' targets survive */
	free(p);
	sw_workspace_remove(ws);             /* missing: no-op */
	sw_workspace_remove(outside);
	free(ws);
	free(outside);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mirror_path),
		cmocka_unit_test(test_fetch_file_url_creates_mirror),
		cmocka_unit_test(test_fetch_plain_path),
		cmocka_unit_test(test_checkout_each_commit),
		cmocka_unit_test(test_checkout_errors),
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_commit_info),
		cmocka_unit_test(test_present_commit_skips_network),
		cmocka_unit_test(test_concurrent_fetches_deduplicated),
		cmocka_unit_test(test_waiter_refetches_for_a_missing_commit),
		cmocka_unit_test(test_new_commit_is_fetched),
		cmocka_unit_test(test_changed_paths_and_merge_base),
		cmocka_unit_test(test_token_never_in_messages),
		cmocka_unit_test(test_https_token_auth),
		cmocka_unit_test(test_workspace_remove),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
