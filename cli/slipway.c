/*
 * slipway.c - the command-line client: the JSON API (docs/api.md) as
 * commands with readable tables, `--json` for scripts, and `validate`,
 * which checks a checkout offline with the server's own parsers.
 *
 * A CLI may block, so HTTP is sw_http_fetch (blocking). Exit codes (docs/cli.md):
 * 0 ok, 1 the thing failed or is invalid, 2 usage, 3 server unreachable,
 * 4 unauthorized, 5 not found.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aws/aws.h"
#include "daemon/daemon.h"
#include "lib/base64.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/http.h"
#include "lib/utf8.h"
#include "lib/version.h"
#include "manifests/manifests.h"
#include "pipeline/pipeline.h"
#include "storage/store.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3,
       EXIT_UNAUTHORIZED = 4, EXIT_NOTFOUND = 5 };

#define MAX_RESPONSE (64u * 1024 * 1024)
#define FOLLOW_POLL_MS 500

struct cli {
	const char *server;
	const char *token;
	int json;
	int color;
	/* command options */
	const char *env, *status, *repo, *kind;
	long limit, before;
	int follow;
	const char **manifests;
	size_t nmanifests;
	const char *region, *role_arn;
	/* token and audit options */
	const char **envs;          /* every --env, for token create */
	size_t nenvs;
	const char *role, *expires, *actor, *action, *since;
};

/* --- usage ------------------------------------------------------------------- */

struct command {
	const char *name;
	const char *args;
	const char *help;
	const char *opts;     /* which command options it takes: letters below */
	int (*fn)(struct cli *c, int argc, char **argv);
	int min, max;         /* positional arguments */
};

static const struct command commands[];

static void usage_all(FILE *f)
{
	fprintf(f, "usage: slipway [--server URL] [--token TOKEN] [--json] COMMAND [ARGS]\n\n"
		"Commands:\n");
	for (const struct command *k = commands; k->name; k++)
		if (strlen(k->args) <= 22)
			fprintf(f, "  %-14s %-22s %s\n", k->name, k->args, k->help);
		else   /* a long synopsis: the help under it */
			fprintf(f, "  %-14s %s\n  %-14s %-22s %s\n", k->name, k->args, "", "", k->help);
	fprintf(f, "\nOptions for every command:\n"
		"  --server URL    slipwayd's address ($SLIPWAY_SERVER, default http://127.0.0.1:8080)\n"
		"  --token TOKEN   the API token ($SLIPWAY_TOKEN)\n"
		"  --json          print the API's JSON instead of tables\n"
		"  -h, --help      help (`slipway COMMAND --help` for one command)\n"
		"  --version       print the version\n\n"
		"Exit codes: 0 ok, 1 failed or invalid, 2 usage error, 3 server unreachable,\n"
		"4 unauthorized, 5 not found. See docs/cli.md.\n");
}

static void usage_cmd(FILE *f, const struct command *k)
{
	fprintf(f, "usage: slipway %s %s\n\n  %s\n", k->name, k->args, k->help);
	if (strchr(k->opts, 'e') && strchr(k->opts, 'R'))
		fprintf(f, "\n  --role ROLE      viewer, deployer or admin\n"
			"  --env ENV        a deployer token deploys only here (repeat for more;\n"
			"                   none: every environment)\n"
			"  --expires SPAN   90d (default), 12h, 30m, ... or never\n");
	else if (strchr(k->opts, 'e'))
		fprintf(f, "\n  --env ENV        only runs of this environment\n");
	if (strchr(k->opts, 'A'))
		fprintf(f, "\n  --actor NAME     only what NAME did (api_token, a token's or a user's name)\n"
			"  --action X       only this action (sync, rollback, cancel, retry, sign_in,\n"
			"                   token.create, token.revoke, config.reload, auth, ...)\n"
			"  --since SPAN     only the last SPAN (1h, 7d)\n");
	if (strchr(k->opts, 's'))
		fprintf(f, "  --status S       queued, running, success, failure, error, cancelled, interrupted\n");
	if (strchr(k->opts, 'r'))
		fprintf(f, "  --repo OWNER/NAME\n");
	if (strchr(k->opts, 'k'))
		fprintf(f, "  --kind K         pull_request, push, deploy, manual, rollback, drift\n");
	if (strchr(k->opts, 'n'))
		fprintf(f, "  --limit N        at most N (default %d)\n", strchr(k->opts, 'A') ? 50 : 20);
	if (strchr(k->opts, 'b'))
		fprintf(f, "  --before ID      the page of %s older than %s ID\n",
			strchr(k->opts, 'A') ? "rows" : "runs", strchr(k->opts, 'A') ? "row" : "run");
	if (strchr(k->opts, 'f'))
		fprintf(f, "\n  -f, --follow     keep printing as the log grows, until the stage (or run) ends;\n"
			"                   then exit 0 when it succeeded, 1 when not\n");
	if (strchr(k->opts, 'G'))
		fprintf(f, "\n  --region R       the AWS region (default: $AWS_REGION, the profile's, us-east-1)\n");
	if (strchr(k->opts, 'O'))
		fprintf(f, "  --role-arn ARN   assume this role with the credentials found\n");
	if (strchr(k->opts, 'm'))
		fprintf(f, "\n  --manifests PATH manifest path in DIR to render and check (repeatable),\n"
			"                   as in the environment's `manifests` config\n");
	fprintf(f, "\nAlso: --server URL, --token TOKEN, --json (see `slipway --help`).\n");
}

/* --- output helpers ------------------------------------------------------------ */

static const char *s_or(json_t *o, const char *key, const char *def)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : def;
}

static long long i_or(json_t *o, const char *key, long long def)
{
	json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? (long long)json_integer_value(v) : def;
}

static void fmt_ago(char *out, size_t n, long long ms)
{
	if (ms <= 0) {
		snprintf(out, n, "-");
		return;
	}
	long long s = (sw_now_ms() - ms) / 1000;
	if (s < 5)
		snprintf(out, n, "just now");
	else if (s < 60)
		snprintf(out, n, "%llds ago", s);
	else if (s < 3600)
		snprintf(out, n, "%lldm ago", s / 60);
	else if (s < 86400)
		snprintf(out, n, "%lldh ago", s / 3600);
	else
		snprintf(out, n, "%lldd ago", s / 86400);
}

static void fmt_duration(char *out, size_t n, long long ms)
{
	if (ms < 0)
		snprintf(out, n, "-");
	else if (ms < 1000)
		snprintf(out, n, "%lldms", ms);
	else if (ms < 60000)
		snprintf(out, n, "%.1fs", ms / 1000.0);
	else if (ms < 3600000)
		snprintf(out, n, "%lldm%02llds", ms / 60000, ms / 1000 % 60);
	else
		snprintf(out, n, "%lldh%02lldm", ms / 3600000, ms / 60000 % 60);
}

static const char *status_color(const char *s)
{
	if (!strcmp(s, "success") || !strcmp(s, "synced") || !strcmp(s, "healthy"))
		return "\033[32m";
	if (!strcmp(s, "failure") || !strcmp(s, "error") || !strcmp(s, "failed") ||
	    !strcmp(s, "degraded") || !strcmp(s, "missing") || !strcmp(s, "out_of_sync"))
		return "\033[31m";
	if (!strcmp(s, "running") || !strcmp(s, "queued") || !strcmp(s, "syncing") ||
	    !strcmp(s, "progressing"))
		return "\033[33m";
	if (!strcmp(s, "cancelled") || !strcmp(s, "skipped") || !strcmp(s, "interrupted"))
		return "\033[90m";
	return NULL;
}

/* A table: rows of cells, printed with aligned columns. */
struct table {
	size_t ncols, nrows;
	char **cells;           /* nrows * ncols */
	int color_col[16];      /* columns whose values get status colours */
};

static void table_init(struct table *t, size_t ncols, const char *const *head)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->cells = sw_calloc(ncols, sizeof(char *));
	for (size_t i = 0; i < ncols; i++)
		t->cells[i] = sw_strdup(head[i]);
	t->nrows = 1;
}

static void table_row(struct table *t, const char *const *vals)
{
	t->cells = sw_realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));
	for (size_t i = 0; i < t->ncols; i++) {
		const char *v = vals[i] ? vals[i] : "-";
		char *s = sw_strdup(*v ? v : "-");
		for (char *p = s; *p; p++)   /* one line per row, no terminal escapes */
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = ' ';
		t->cells[t->nrows * t->ncols + i] = s;
	}
	t->nrows++;
}

static void table_print(struct table *t, const struct cli *c)
{
	size_t w[32] = { 0 };
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols; i++) {
			size_t l = sw_utf8_count(t->cells[r * t->ncols + i]);
			if (l > w[i])
				w[i] = l;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t i = 0; i < t->ncols; i++) {
			const char *v = t->cells[r * t->ncols + i];
			const char *col = r > 0 && c->color && t->color_col[i] ? status_color(v) : NULL;
			int last = i + 1 == t->ncols;
			if (r == 0 && c->color)
				printf("\033[1m");
			printf("%s%s%s", col ? col : "", v, col ? "\033[0m" : "");
			if (r == 0 && c->color)
				printf("\033[0m");
			if (!last)
				printf("%*s", (int)(w[i] - sw_utf8_count(v) + 2), "");
		}
		printf("\n");
	}
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2));
	printf("%s\n", s ? s : "null");
	free(s);
}

/* --- HTTP ---------------------------------------------------------------------- */

/*
 * One request to the server: its URL, headers and options, released by
 * request_free(). The transfer itself is sw_http_fetch's.
 */
struct request {
	struct sw_http_opts o;
	const char *hdrs[4];
	char *url, *auth;
	int server_len;         /* c->server without trailing slashes */
};

static void request_init(struct request *r, const struct cli *c, const char *method,
			 const char *path, const char *body_s, const char *accept)
{
	size_t sl = strlen(c->server), n = 0;

	while (sl && c->server[sl - 1] == '/')
		sl--;
	memset(r, 0, sizeof(*r));
	r->server_len = (int)sl;
	r->url = sw_asprintf("%.*s%s", (int)sl, c->server, path);
	r->auth = c->token ? sw_asprintf("Authorization: Bearer %s", c->token) : NULL;
	r->hdrs[n++] = accept;
	if (r->auth)
		r->hdrs[n++] = r->auth;
	if (body_s)
		r->hdrs[n++] = "Content-Type: application/json";
	r->o = (struct sw_http_opts)SW_HTTP_OPTS_INIT;
	r->o.method = method;
	r->o.url = r->url;
	r->o.headers = r->hdrs;
	r->o.body = body_s;
	r->o.body_len = body_s ? strlen(body_s) : 0;
	r->o.connect_timeout_ms = 5000;
	r->o.max_response = MAX_RESPONSE;
}

static void request_free(struct request *r)
{
	free(r->url);
	free(r->auth);
}

/* Print why a request failed (rc from sw_http_fetch); returns the exit code for it. */
static int request_failed(const struct request *r, int rc, long code,
			  const struct sw_buf *resp, const char *server)
{
	if (rc < 0) {
		fprintf(stderr, "slipway: cannot reach %.*s: %s\n", r->server_len, server,
			sw_error_last());
		return EXIT_UNREACHABLE;
	}
	json_t *j = json_loadb(resp->ptr, resp->len, 0, NULL);
	const char *msg = j ? json_string_value(json_object_get(j, "error")) : NULL;
	fprintf(stderr, "slipway: %s (HTTP %ld)\n", msg ? msg : "the server refused the request",
		code);
	json_decref(j);
	return code == 401 || code == 403 ? EXIT_UNAUTHORIZED : code == 404 ? EXIT_NOTFOUND :
		EXIT_FAILED;
}

/*
 * method PATH [body JSON]; on 2xx returns 0 with *out the parsed JSON
 * (caller decrefs). Otherwise prints why and returns the exit code.
 * `*status` (may be NULL) gets the HTTP status (0 when none).
 */
static int api(const struct cli *c, const char *method, const char *path, json_t *body,
	       json_t **out, long *status)
{
	struct request r;
	struct sw_http_reply resp;
	char *body_s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	int rc;

	*out = NULL;
	request_init(&r, c, method, path, body_s, "Accept: application/json");
	r.o.timeout_ms = 120000;
	int fr = sw_http_fetch(&r.o, &resp);
	if (status)
		*status = resp.status;
	if (fr < 0 || resp.status < 200 || resp.status >= 300) {
		rc = request_failed(&r, fr, resp.status, &resp.body, c->server);
		goto done;
	}
	json_error_t je;
	json_t *j = json_loadb(resp.body.ptr, resp.body.len, 0, &je);
	if (!j) {
		fprintf(stderr, "slipway: %s %s: the answer is not JSON: %s\n", method, path,
			je.text);
		rc = EXIT_FAILED;
		goto done;
	}
	*out = j;
	rc = 0;
done:
	request_free(&r);
	free(body_s);
	sw_http_reply_release(&resp);
	return rc;
}

/* --- backup --------------------------------------------------------------------- */

struct sink {
	FILE *f;
	int64_t bytes;
	int failed;             /* a write to the file failed */
};

/* A 2xx answer goes to the file (anything else is kept in the reply to print). */
static int on_backup_data(const char *p, size_t n, void *arg)
{
	struct sink *k = arg;
	if (fwrite(p, 1, n, k->f) != n) {
		k->failed = 1;
		return 1;
	}
	k->bytes += (int64_t)n;
	return 0;
}

static int cmd_backup(struct cli *c, int argc, char **argv)
{
	const char *dest = argv[0];
	char *tmp = sw_asprintf("%s.tmp", dest);
	struct sink k = { 0 };
	struct sw_http_reply resp;
	struct request r;
	int rc = EXIT_FAILED;

	if (!(k.f = fopen(tmp, "wb"))) {
		fprintf(stderr, "slipway: cannot write %s: %s\n", tmp, strerror(errno));
		free(tmp);
		return EXIT_FAILED;
	}
	request_init(&r, c, "POST", "/api/v1/backup", NULL, "Accept: application/vnd.sqlite3");
	r.o.on_data = on_backup_data;
	r.o.arg = &k;
	/* no overall limit (a big database takes time), but not stalled for a minute */
	r.o.stall_secs = 60;
	int fr = sw_http_fetch(&r.o, &resp);
	int closed = fclose(k.f);
	if (k.failed || closed != 0) {
		fprintf(stderr, "slipway: cannot write %s: %s\n", tmp, strerror(errno));
	} else if (fr < 0 || resp.status != 200) {
		/* a short body too: fewer bytes than Content-Length */
		rc = request_failed(&r, fr, resp.status, &resp.body, c->server);
	} else if (sw_store_backup_check(tmp) < 0) {
		fprintf(stderr, "slipway: %s\n", sw_error_last());
	} else if (rename(tmp, dest) != 0) {
		fprintf(stderr, "slipway: rename %s to %s: %s\n", tmp, dest, strerror(errno));
	} else {
		rc = EXIT_OK;
		if (c->json) {
			json_t *j = json_pack("{s:s, s:I}", "file", dest, "bytes", (json_int_t)k.bytes);
			print_json(j);
			json_decref(j);
		} else
			printf("%s: %lld bytes, checked\n", dest, (long long)k.bytes);
	}
	if (rc != EXIT_OK)
		unlink(tmp);
	request_free(&r);
	sw_http_reply_release(&resp);
	free(tmp);
	return rc;
}

static char *path1(const char *fmt1, const char *arg, const char *tail)
{
	struct sw_buf b = SW_BUF_INIT;
	sw_buf_adds(&b, fmt1);
	sw_http_escape(&b, arg);
	sw_buf_adds(&b, tail);
	return sw_buf_detach(&b, NULL);
}

/* A run id: digits only (also "#12"). 0 when not. */
/* A run id from the command line ("12" or "#12"); 0, with a message, when it is not one. */
static long long run_id(const char *arg)
{
	const char *s = arg;
	char *end;
	if (*s == '#')
		s++;
	long long v = strtoll(s, &end, 10);
	if (*s && !*end && v > 0)
		return v;
	fprintf(stderr, "slipway: '%s' is not a run id\n", arg);
	return 0;
}

/* --- status, runs, run ----------------------------------------------------------- */

static void runs_table(const struct cli *c, json_t *runs)
{
	static const char *const head[] = { "RUN", "STATUS", "KIND", "REPO", "REF", "COMMIT",
		"ENV", "CREATED", "DURATION" };
	struct table t;
	size_t i;
	json_t *r;
	table_init(&t, 9, head);
	t.color_col[1] = 1;
	json_array_foreach(runs, i, r) {
		char id[24], ref[256], commit[16], ago[32], dur[32];
		snprintf(id, sizeof(id), "%lld", i_or(r, "id", 0));
		if (i_or(r, "pr_number", 0) > 0)
			snprintf(ref, sizeof(ref), "#%lld %s", i_or(r, "pr_number", 0),
				 s_or(r, "branch", ""));
		else
			snprintf(ref, sizeof(ref), "%s", s_or(r, "branch", "-"));
		snprintf(commit, sizeof(commit), "%.7s", s_or(r, "commit", "-"));
		fmt_ago(ago, sizeof(ago), i_or(r, "created_at", 0));
		long long st = i_or(r, "started_at", 0), fin = i_or(r, "finished_at", 0);
		fmt_duration(dur, sizeof(dur), st ? (fin ? fin : sw_now_ms()) - st : -1);
		const char *row[] = { id, s_or(r, "status", "?"), s_or(r, "kind", "?"),
			s_or(r, "repo", "-"), ref, commit, s_or(r, "environment", "-"), ago, dur };
		table_row(&t, row);
	}
	if (t.nrows == 1)
		printf("no runs\n");
	else
		table_print(&t, c);
	if (t.nrows == 1) {
		free(t.cells[0]);
		for (size_t k = 1; k < t.ncols; k++)
			free(t.cells[k]);
		free(t.cells);
	}
}

static int cmd_status(struct cli *c, int argc, char **argv)
{
	json_t *envs, *runs;
	int rc;
	if ((rc = api(c, "GET", "/api/v1/environments", NULL, &envs, NULL)))
		return rc;
	if ((rc = api(c, "GET", "/api/v1/runs?limit=10", NULL, &runs, NULL))) {
		json_decref(envs);
		return rc;
	}
	if (c->json) {
		json_t *j = json_pack("{s:O, s:O}", "environments", json_object_get(envs, "environments"),
				      "runs", json_object_get(runs, "runs"));
		print_json(j);
		json_decref(j);
	} else {
		static const char *const head[] = { "ENVIRONMENT", "BRANCH", "SYNC", "HEALTH",
			"SYNCED", "DESIRED", "LAST SYNC", "DRIFT" };
		struct table t;
		size_t i;
		json_t *e;
		table_init(&t, 8, head);
		t.color_col[2] = t.color_col[3] = 1;
		json_array_foreach(json_object_get(envs, "environments"), i, e) {
			char synced[16], desired[16], last[32], drift[256] = "none";
			snprintf(synced, sizeof(synced), "%.7s", s_or(e, "synced_commit", "-"));
			snprintf(desired, sizeof(desired), "%.7s", s_or(e, "desired_commit", "-"));
			fmt_ago(last, sizeof(last), i_or(e, "last_sync_at", 0));
			json_t *d = json_object_get(e, "drift_latest");
			if (json_is_object(d)) {
				char ago[32];
				fmt_ago(ago, sizeof(ago), i_or(d, "detected_at", 0));
				snprintf(drift, sizeof(drift), "%s %s/%s %s", s_or(d, "action", ""),
					 s_or(d, "kind", ""), s_or(d, "name", ""), ago);
			}
			const char *row[] = { s_or(e, "name", "?"), s_or(e, "branch", "-"),
				s_or(e, "sync_status", "-"), s_or(e, "health", "-"), synced, desired,
				last, drift };
			table_row(&t, row);
		}
		if (t.nrows > 1)
			table_print(&t, c);
		else {
			printf("no environments configured\n");
			for (size_t k = 0; k < t.ncols; k++)
				free(t.cells[k]);
			free(t.cells);
		}
		printf("\n");
		runs_table(c, json_object_get(runs, "runs"));
	}
	json_decref(envs);
	json_decref(runs);
	return 0;
}

/* PATH?limit=N[&before=ID][&KEY=VALUE]... for a list; NULL values are left out. */
static void list_path(struct sw_buf *p, const struct cli *c, const char *path, long def,
		      const char *const *keys, const char *const *vals, int n)
{
	sw_buf_addf(p, "%s?limit=%ld", path, c->limit > 0 ? c->limit : def);
	if (c->before > 0)
		sw_buf_addf(p, "&before=%ld", c->before);
	for (int i = 0; i < n; i++)
		if (vals[i]) {
			sw_buf_addf(p, "&%s=", keys[i]);
			sw_http_escape(p, vals[i]);
		}
}

static int cmd_runs(struct cli *c, int argc, char **argv)
{
	struct sw_buf p = SW_BUF_INIT;
	json_t *j;
	int rc;
	const char *keys[] = { "env", "status", "repo", "kind" };
	const char *vals[] = { c->env, c->status, c->repo, c->kind };
	list_path(&p, c, "/api/v1/runs", 20, keys, vals, 4);
	rc = api(c, "GET", p.ptr, NULL, &j, NULL);
	sw_buf_release(&p);
	if (rc)
		return rc;
	if (c->json) {
		print_json(j);
	} else {
		runs_table(c, json_object_get(j, "runs"));
		json_t *next = json_object_get(j, "next");
		if (json_is_integer(next) && isatty(2))
			fprintf(stderr, "(more: slipway runs --before %lld)\n",
				(long long)json_integer_value(next));
	}
	json_decref(j);
	return 0;
}

static int cmd_run(struct cli *c, int argc, char **argv)
{
	long long id = run_id(argv[0]);
	json_t *r;
	int rc;
	if (!id)
		return EXIT_USAGE;
	char *p = sw_asprintf("/api/v1/runs/%lld", id);
	rc = api(c, "GET", p, NULL, &r, NULL);
	free(p);
	if (rc)
		return rc;
	if (c->json) {
		print_json(r);
		json_decref(r);
		return 0;
	}
	char ago[32], dur[32];
	long long st = i_or(r, "started_at", 0), fin = i_or(r, "finished_at", 0);
	fmt_ago(ago, sizeof(ago), i_or(r, "created_at", 0));
	fmt_duration(dur, sizeof(dur), st ? (fin ? fin : sw_now_ms()) - st : -1);
	const char *status = s_or(r, "status", "?");
	const char *col = c->color ? status_color(status) : NULL;
	printf("run %lld  %s%s%s\n", id, col ? col : "", status, col ? "\033[0m" : "");
	if (json_is_string(json_object_get(r, "reason")))
		printf("  reason:  %s\n", s_or(r, "reason", ""));
	if (i_or(r, "pr_number", 0) > 0)
		printf("  trigger: pull request #%lld %s\n", i_or(r, "pr_number", 0),
		       s_or(r, "pr_title", ""));
	else
		printf("  trigger: %s\n", s_or(r, "kind", "?"));
	printf("  repo:    %s  %s\n", s_or(r, "repo", "-"), s_or(r, "branch", ""));
	printf("  commit:  %s", s_or(r, "commit", "-"));
	if (json_is_string(json_object_get(r, "message"))) {
		const char *m = s_or(r, "message", "");
		printf("  %.*s", (int)strcspn(m, "\n"), m);
	}
	printf("\n");
	if (json_is_string(json_object_get(r, "author")))
		printf("  author:  %s\n", s_or(r, "author", ""));
	if (json_is_string(json_object_get(r, "environment")))
		printf("  env:     %s\n", s_or(r, "environment", ""));
	printf("  created: %s   duration: %s   attempt: %lld\n\n", ago, dur, i_or(r, "attempt", 1));

	static const char *const head[] = { "STAGE", "STATUS", "EXIT", "DURATION", "LOG", "REASON" };
	struct table t;
	size_t i;
	json_t *s;
	table_init(&t, 6, head);
	t.color_col[1] = 1;
	json_array_foreach(json_object_get(r, "stages"), i, s) {
		char ex[16] = "-", sd[32], lg[32];
		long long sst = i_or(s, "started_at", 0), sfin = i_or(s, "finished_at", 0);
		if (json_is_integer(json_object_get(s, "exit_code")))
			snprintf(ex, sizeof(ex), "%lld", i_or(s, "exit_code", 0));
		fmt_duration(sd, sizeof(sd), sst ? (sfin ? sfin : sw_now_ms()) - sst : -1);
		snprintf(lg, sizeof(lg), "%lld B", i_or(s, "log_size", 0));
		const char *row[] = { s_or(s, "name", "?"), s_or(s, "status", "?"), ex, sd, lg,
			s_or(s, "reason", "") };
		table_row(&t, row);
	}
	table_print(&t, c);
	json_decref(r);
	return 0;
}

/* --- logs ------------------------------------------------------------------------- */

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/*
 * Print stage `name` of run `id` from `*offset`: all that is there, or with
 * `follow` until the API says the log is complete. *status gets the stage's
 * status at the end. Returns 0 or an exit code.
 */
static int print_stage_log(const struct cli *c, long long id, const char *name, int follow,
			   char *status, size_t status_len)
{
	long long offset = 0;
	for (;;) {
		struct sw_buf p = SW_BUF_INIT;
		json_t *j;
		sw_buf_addf(&p, "/api/v1/runs/%lld/stages/", id);
		sw_http_escape(&p, name);
		sw_buf_addf(&p, "/log?offset=%lld&max=262144", offset);
		int rc = api(c, "GET", p.ptr, NULL, &j, NULL);
		sw_buf_release(&p);
		if (rc)
			return rc;
		const char *data = s_or(j, "data", "");
		long long next = i_or(j, "next_offset", offset);
		int complete = json_is_true(json_object_get(j, "complete"));
		snprintf(status, status_len, "%s", s_or(j, "status", "?"));
		if (c->json) {
			char *s = json_dumps(j, JSON_COMPACT);
			printf("%s\n", s);
			free(s);
		} else {
			fwrite(data, 1, strlen(data), stdout);
		}
		fflush(stdout);
		int progressed = next > offset;
		long long size = i_or(j, "size", next);
		offset = next;
		json_decref(j);
		if (complete)
			return 0;
		if (!progressed || offset >= size) {
			if (!follow)
				return 0;
			sleep_ms(FOLLOW_POLL_MS);
		}
	}
}

static int cmd_logs(struct cli *c, int argc, char **argv)
{
	long long id = run_id(argv[0]);
	const char *only = argc > 1 ? argv[1] : NULL;
	char status[32] = "";
	int rc, printed = 0;
	if (!id)
		return EXIT_USAGE;
	char *path = sw_asprintf("/api/v1/runs/%lld", id);
	for (size_t next_stage = 0;;) {
		json_t *r;
		if ((rc = api(c, "GET", path, NULL, &r, NULL)))
			goto out;
		json_t *stages = json_object_get(r, "stages");
		const char *run_status = s_or(r, "status", "?");
		int run_final = strcmp(run_status, "queued") && strcmp(run_status, "running");
		if (only) {
			size_t i;
			json_t *s;
			int found = 0;
			json_array_foreach(stages, i, s)
				found |= !strcmp(s_or(s, "name", ""), only);
			if (!found) {
				if (run_final || !c->follow) {
					fprintf(stderr, "slipway: run %lld has no stage '%s'\n", id, only);
					json_decref(r);
					rc = EXIT_NOTFOUND;
					goto out;
				}
				json_decref(r);
				sleep_ms(FOLLOW_POLL_MS);   /* stages appear once the run is prepared */
				continue;
			}
			json_decref(r);
			rc = print_stage_log(c, id, only, c->follow, status, sizeof(status));
			if (rc == 0 && c->follow && strcmp(status, "success"))
				rc = EXIT_FAILED;
			goto out;
		}
		if (next_stage < json_array_size(stages)) {
			char *name = sw_strdup(s_or(json_array_get(stages, next_stage), "name", ""));
			json_decref(r);
			if (!c->json && (json_array_size(stages) > 1 || printed) && isatty(1))
				printf("%s==> %s <==%s\n", c->color ? "\033[1m" : "", name,
				       c->color ? "\033[0m" : "");
			rc = print_stage_log(c, id, name, c->follow, status, sizeof(status));
			free(name);
			if (rc)
				goto out;
			printed++;
			next_stage++;
			continue;
		}
		if (!c->follow || run_final) {
			rc = c->follow && strcmp(run_status, "success") ? EXIT_FAILED : 0;
			json_decref(r);
			goto out;
		}
		json_decref(r);
		sleep_ms(FOLLOW_POLL_MS);
	}
out:
	free(path);
	return rc;
}

/* --- actions ------------------------------------------------------------------------ */

static int cmd_cancel(struct cli *c, int argc, char **argv)
{
	long long id = run_id(argv[0]);
	json_t *j;
	int rc;
	if (!id)
		return EXIT_USAGE;
	char *p = sw_asprintf("/api/v1/runs/%lld/cancel", id);
	rc = api(c, "POST", p, NULL, &j, NULL);
	free(p);
	if (rc)
		return rc;
	if (c->json)
		print_json(j);
	else
		printf("run %lld %s\n", id, json_is_true(json_object_get(j, "cancelled")) ?
		       "cancelled" : "is being cancelled");
	json_decref(j);
	return 0;
}

static int cmd_retry(struct cli *c, int argc, char **argv)
{
	long long id = run_id(argv[0]);
	json_t *j;
	int rc;
	if (!id)
		return EXIT_USAGE;
	char *p = sw_asprintf("/api/v1/runs/%lld/retry", id);
	rc = api(c, "POST", p, NULL, &j, NULL);
	free(p);
	if (rc)
		return rc;
	if (c->json)
		print_json(j);
	else
		printf("run %lld queued (attempt %lld, retry of run %lld)\n", i_or(j, "run", 0),
		       i_or(j, "attempt", 0), id);
	json_decref(j);
	return 0;
}

/* Print an action's answer: the run it queued, its "message", or `fallback`. */
static void print_action(const struct cli *c, json_t *j, const char *fallback)
{
	if (c->json)
		print_json(j);
	else if (i_or(j, "run", 0) > 0)
		printf("%s: run %lld queued (commit %.7s)\n", fallback, i_or(j, "run", 0),
		       s_or(j, "commit", "-"));
	else if (json_is_string(json_object_get(j, "message")) && *s_or(j, "message", ""))
		printf("%s\n", s_or(j, "message", ""));
	else
		printf("%s\n", fallback);
}

static int cmd_sync(struct cli *c, int argc, char **argv)
{
	json_t *j;
	char *p = path1("/api/v1/environments/", argv[0], "/sync");
	int rc = api(c, "POST", p, NULL, &j, NULL);
	free(p);
	if (rc)
		return rc;
	char *fb = sw_asprintf("sync of %s", argv[0]);
	print_action(c, j, fb);
	free(fb);
	json_decref(j);
	return 0;
}

static int cmd_rollback(struct cli *c, int argc, char **argv)
{
	json_t *j, *body = json_pack("{s:s}", "revision", argv[1]);
	char *p = path1("/api/v1/environments/", argv[0], "/rollback");
	int rc = api(c, "POST", p, body, &j, NULL);
	free(p);
	json_decref(body);
	if (rc)
		return rc;
	char *fb = sw_asprintf("rollback of %s to %s", argv[0], argv[1]);
	print_action(c, j, fb);
	free(fb);
	json_decref(j);
	return 0;
}

static int cmd_diff(struct cli *c, int argc, char **argv)
{
	json_t *j, *changes, *ch;
	size_t i;
	char *p = path1("/api/v1/environments/", argv[0], "/diff");
	int rc = api(c, "GET", p, NULL, &j, NULL);
	free(p);
	if (rc)
		return rc;
	changes = json_object_get(j, "changes");
	json_t *objs = json_object_get(j, "objects");
	if (!c->json && !json_is_array(changes) && json_is_array(objs)) {
		/* the sync engine's dry run: one row per object it would touch */
		static const char *const head[] = { "RESULT", "KIND", "NAMESPACE", "NAME", "MESSAGE" };
		struct table t;
		table_init(&t, 5, head);
		json_array_foreach(objs, i, ch) {
			if (!strcmp(s_or(ch, "result", ""), "unchanged"))
				continue;
			const char *row[] = { s_or(ch, "result", "?"), s_or(ch, "kind", "?"),
				s_or(ch, "namespace", ""), s_or(ch, "name", "?"), s_or(ch, "message", "") };
			table_row(&t, row);
		}
		printf("%s at %.7s: ", argv[0], s_or(j, "commit", "-"));
		if (t.nrows == 1) {
			printf("in sync, a sync would change nothing\n");
			for (size_t k = 0; k < t.ncols; k++)
				free(t.cells[k]);
			free(t.cells);
		} else {
			printf("%zu object%s would change\n", t.nrows - 1, t.nrows == 2 ? "" : "s");
			table_print(&t, c);
		}
	} else if (c->json || !json_is_array(changes)) {
		print_json(j);
	} else if (json_array_size(changes) == 0) {
		printf("%s is in sync: a sync would change nothing\n", argv[0]);
	} else {
		json_array_foreach(changes, i, ch) {
			const char *ns = s_or(ch, "namespace", "");
			printf("%s %s %s%s%s\n", s_or(ch, "action", "?"), s_or(ch, "kind", "?"), ns,
			       *ns ? "/" : "", s_or(ch, "name", "?"));
			if (json_is_string(json_object_get(ch, "diff")))
				printf("%s\n", s_or(ch, "diff", ""));
		}
	}
	json_decref(j);
	return 0;
}

/* --- validate ------------------------------------------------------------------------ */

/* Print each line of `errs`, with "DIR/" in front of a path that is in DIR. */
static void print_errors(const char *dir, const char *errs, json_t *arr)
{
	const char *p = errs;
	while (*p) {
		size_t len = strcspn(p, "\n");
		char *line = sw_strndup(p, len);
		char *shown = line;
		size_t plen = strcspn(line, ":");
		if (strcmp(dir, ".") && line[plen] == ':') {
			char *f = sw_asprintf("%s/%.*s", dir, (int)plen, line);
			struct stat sb;
			if (stat(f, &sb) == 0)
				shown = sw_asprintf("%s/%s", dir, line);
			free(f);
		}
		if (*shown) {
			if (arr)
				json_array_append_new(arr, json_string(shown));
			else
				fprintf(stderr, "%s\n", shown);
		}
		if (shown != line)
			free(shown);
		free(line);
		p += len;
		if (*p)
			p++;
	}
}

static int cmd_validate(struct cli *c, int argc, char **argv)
{
	const char *dir = argc > 0 ? argv[0] : ".";
	struct sw_buf file = SW_BUF_INIT, errs = SW_BUF_INIT;
	struct sw_spec *spec = NULL;
	struct sw_objset *set = NULL;
	json_t *arr = c->json ? json_array() : NULL;
	int bad = 0;
	long long nstages = -1, nobjects = -1;
	struct stat sb;

	if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "slipway: %s is not a directory\n", dir);
		json_decref(arr);
		return EXIT_USAGE;
	}
	char *path = sw_asprintf("%s/.slipway.yml", dir);
	const char *shown = strcmp(dir, ".") ? path : ".slipway.yml";
	if (stat(path, &sb) < 0) {
		if (!c->nmanifests) {
			char *m = sw_asprintf("%s: no such file (nothing to validate)", shown);
			print_errors(".", m, arr);
			free(m);
			bad = 1;
		}
	} else if (sw_buf_read_file(&file, path) < 0) {
		print_errors(".", sw_error_last(), arr);
		bad = 1;
	} else if (sw_spec_parse(&spec, shown, file.ptr, file.len, NULL) < 0) {
		print_errors(".", sw_error_last(), arr);
		bad = 1;
	} else {
		nstages = (long long)spec->nstages;
	}
	if (c->nmanifests) {
		struct sw_render_opts o = SW_RENDER_OPTS_INIT;
		o.errors = &errs;
		if (sw_render_dir(&set, dir, c->manifests, c->nmanifests, &o) < 0) {
			print_errors(dir, errs.len ? errs.ptr : sw_error_last(), arr);
			bad = 1;
		} else {
			nobjects = (long long)set->n;
		}
	}
	if (arr) {
		json_t *j = json_pack("{s:b, s:o}", "valid", !bad, "errors", arr);
		if (nstages >= 0)
			json_object_set_new(j, "stages", json_integer(nstages));
		if (nobjects >= 0)
			json_object_set_new(j, "objects", json_integer(nobjects));
		print_json(j);
		json_decref(j);
	} else if (!bad) {
		if (nstages >= 0)
			printf("%s: ok (%lld stage%s)\n", shown, nstages, nstages == 1 ? "" : "s");
		if (nobjects >= 0)
			printf("manifests: ok (%lld object%s)\n", nobjects, nobjects == 1 ? "" : "s");
	}
	sw_spec_free(spec);
	sw_objset_free(set);
	sw_buf_release(&file);
	sw_buf_release(&errs);
	free(path);
	return bad ? EXIT_FAILED : 0;
}

/* --- API tokens and the audit log (admin) ------------------------------------------ */

/* An expiry or other time as "in 89d", "3h ago" or "never". */
static void fmt_when(char *out, size_t n, long long ms, const char *none)
{
	long long s = (ms - sw_now_ms()) / 1000;
	if (ms <= 0)
		snprintf(out, n, "%s", none);
	else if (s <= 0)
		fmt_ago(out, n, ms);
	else if (s < 3600)
		snprintf(out, n, "in %lldm", s / 60 + 1);
	else if (s < 86400)
		snprintf(out, n, "in %lldh", s / 3600);
	else
		snprintf(out, n, "in %lldd", s / 86400);
}

/* ["dev", "qa"] as "dev,qa"; null as "all". */
static void envs_str(struct sw_buf *b, json_t *envs)
{
	size_t i;
	json_t *e;
	if (!json_is_array(envs)) {
		sw_buf_adds(b, "all");
		return;
	}
	json_array_foreach(envs, i, e)
		sw_buf_addf(b, "%s%s", i ? "," : "", json_string_value(e) ? json_string_value(e) : "?");
}

static int token_create(struct cli *c, const char *name)
{
	json_t *j, *envs = json_array(), *body;
	for (size_t i = 0; i < c->nenvs; i++)
		json_array_append_new(envs, json_string(c->envs[i]));
	body = json_pack("{s:s, s:s, s:s}", "name", name, "role", c->role ? c->role : "",
			 "expires", c->expires ? c->expires : "90d");
	json_object_set_new(body, "environments", c->nenvs ? envs : json_null());
	if (!c->nenvs)
		json_decref(envs);
	int rc = api(c, "POST", "/api/v1/tokens", body, &j, NULL);
	json_decref(body);
	if (rc)
		return rc;
	if (c->json) {
		print_json(j);
	} else {
		struct sw_buf e = SW_BUF_INIT;
		char exp[32];
		envs_str(&e, json_object_get(j, "environments"));
		fmt_when(exp, sizeof(exp), i_or(j, "expires_at", 0), "never");
		fprintf(stderr, "token %s (%s) created: role %s on %s, expires %s.\n"
			"It is shown this once; slipwayd keeps only its hash.\n",
			s_or(j, "name", "?"), s_or(j, "id", "?"), s_or(j, "role", "?"), e.ptr, exp);
		printf("%s\n", s_or(j, "token", ""));
		sw_buf_release(&e);
	}
	json_decref(j);
	return 0;
}

/* GET `path` into `*out`; with --json it is printed instead and `*out` is NULL. */
static int get_or_print(const struct cli *c, const char *path, json_t **out)
{
	int rc = api(c, "GET", path, NULL, out, NULL);
	if (rc == 0 && c->json) {
		print_json(*out);
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

static int token_list(struct cli *c)
{
	static const char *const head[] = { "ID", "NAME", "ROLE", "ENVS", "STATE", "CREATED BY",
		"CREATED", "EXPIRES", "LAST USED" };
	struct table t;
	json_t *j, *tok;
	size_t i;
	int rc = get_or_print(c, "/api/v1/tokens", &j);
	if (rc || !j)
		return rc;
	table_init(&t, 9, head);
	json_array_foreach(json_object_get(j, "tokens"), i, tok) {
		struct sw_buf e = SW_BUF_INIT;
		char created[32], expires[32], used[32];
		envs_str(&e, json_object_get(tok, "environments"));
		fmt_ago(created, sizeof(created), i_or(tok, "created_at", 0));
		fmt_when(expires, sizeof(expires), i_or(tok, "expires_at", 0), "never");
		fmt_ago(used, sizeof(used), i_or(tok, "last_used_at", 0));
		const char *row[] = { s_or(tok, "id", "-"), s_or(tok, "name", "-"),
			s_or(tok, "role", "-"), e.ptr, s_or(tok, "state", "-"),
			s_or(tok, "created_by", "-"), created, expires, used };
		table_row(&t, row);
		sw_buf_release(&e);
	}
	table_print(&t, c);
	json_decref(j);
	return 0;
}

static int token_revoke(struct cli *c, const char *id)
{
	json_t *j;
	char *p = path1("/api/v1/tokens/", id, "");
	int rc = api(c, "DELETE", p, NULL, &j, NULL);
	free(p);
	if (rc)
		return rc;
	if (c->json)
		print_json(j);
	else
		printf("token %s revoked\n", id);
	json_decref(j);
	return 0;
}

static int cmd_token(struct cli *c, int argc, char **argv)
{
	const char *sub = argv[0];
	int create = !strcmp(sub, "create");
	if ((c->role || c->expires || c->nenvs) && !create) {
		fprintf(stderr, "slipway token %s: --role, --env and --expires are for create\n", sub);
		return EXIT_USAGE;
	}
	if (create && argc == 2) {
		if (!c->role) {
			fprintf(stderr, "slipway token create: give --role viewer, deployer or admin\n");
			return EXIT_USAGE;
		}
		return token_create(c, argv[1]);
	}
	if (!strcmp(sub, "list") && argc == 1)
		return token_list(c);
	if (!strcmp(sub, "revoke") && argc == 2)
		return token_revoke(c, argv[1]);
	fprintf(stderr, "usage: slipway token create NAME --role ROLE [--env ENV]... "
		"[--expires 90d|never]\n       slipway token list\n       slipway token revoke ID\n");
	return EXIT_USAGE;
}

static int cmd_audit(struct cli *c, int argc, char **argv)
{
	static const char *const head[] = { "ID", "WHEN", "ACTOR", "KIND", "CLIENT", "ACTION",
		"TARGET", "OUTCOME", "REASON" };
	struct sw_buf p = SW_BUF_INIT;
	struct table t;
	json_t *j, *row;
	size_t i;
	int rc;
	const char *keys[] = { "actor", "action" };
	const char *vals[] = { c->actor, c->action };
	list_path(&p, c, "/api/v1/audit", 50, keys, vals, 2);
	if (c->since) {
		int64_t secs = sw_parse_duration(c->since);
		if (secs < 0) {
			fprintf(stderr, "slipway audit: --since: expected a duration such as 1h or 7d, "
				"found '%s'\n", c->since);
			sw_buf_release(&p);
			return EXIT_USAGE;
		}
		sw_buf_addf(&p, "&since=%lld", (long long)(sw_now_ms() - secs * 1000));
	}
	rc = get_or_print(c, p.ptr, &j);
	sw_buf_release(&p);
	if (rc || !j)
		return rc;
	table_init(&t, 9, head);
	json_array_foreach(json_object_get(j, "audit"), i, row) {
		char id[24], when[32];
		snprintf(id, sizeof(id), "%lld", i_or(row, "id", 0));
		fmt_ago(when, sizeof(when), i_or(row, "at", 0));
		const char *r[] = { id, when, s_or(row, "actor", "-"), s_or(row, "actor_kind", "-"),
			s_or(row, "client", "-"), s_or(row, "action", "-"), s_or(row, "target", "-"),
			s_or(row, "outcome", "-"), s_or(row, "reason", "-") };
		table_row(&t, r);
	}
	table_print(&t, c);
	json_t *next = json_object_get(j, "next");
	if (json_is_integer(next) && isatty(2))
		fprintf(stderr, "(more: slipway audit --before %lld)\n",
			(long long)json_integer_value(next));
	json_decref(j);
	return 0;
}

/* --- main ------------------------------------------------------------------------------ */

/* --- AWS ------------------------------------------------------------------------ */

/* Credentials the way slipwayd finds them (docs/aws.md), or a message. */
static int aws_creds(struct cli *c, struct sw_aws_cred *cr, char **region)
{
	struct sw_aws_chain_opts o = SW_AWS_CHAIN_OPTS_INIT;
	o.region = c->region;
	o.role_arn = c->role_arn;
	*region = sw_aws_region(c->region, NULL);
	if (sw_aws_chain_resolve(cr, &o) < 0) {
		fprintf(stderr, "slipway: %s\n", sw_error_last());
		free(*region);
		return EXIT_FAILED;
	}
	return EXIT_OK;
}

static int cmd_aws_identity(struct cli *c, int argc, char **argv)
{
	struct sw_aws_cred cr;
	struct sw_buf arn = SW_BUF_INIT, account = SW_BUF_INIT;
	char *region;
	int rc = aws_creds(c, &cr, &region);
	if (rc)
		return rc;
	if (sw_aws_whoami(&arn, &account, &cr, region, 0) < 0) {
		fprintf(stderr, "slipway: %s (credentials from %s)\n", sw_error_last(), cr.source);
		rc = EXIT_FAILED;
	} else if (c->json) {
		json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "arn", arn.ptr, "account",
				      account.ptr, "access_key_id", cr.access_key_id, "source",
				      cr.source, "region", region);
		if (cr.expires_ms)
			json_object_set_new(j, "expires_ms", json_integer(cr.expires_ms));
		print_json(j);
		json_decref(j);
	} else {
		printf("arn       %s\naccount   %s\nkey       %s\nsource    %s\nregion    %s\n",
		       arn.ptr, account.ptr, cr.access_key_id, cr.source, region);
		if (cr.expires_ms) {
			time_t t = (time_t)(cr.expires_ms / 1000);
			char when[32];
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
			printf("expires   %s\n", when);
		}
	}
	sw_buf_release(&arn);
	sw_buf_release(&account);
	sw_aws_cred_release(&cr);
	free(region);
	return rc;
}

/* A kubeconfig exec plugin, as `aws eks get-token` is: an ExecCredential
 * with the token, in the apiVersion kubectl asks for. */
static int cmd_eks_token(struct cli *c, int argc, char **argv)
{
	struct sw_aws_cred cr;
	char *region, *token, when[32];
	int64_t exp_ms;
	int rc = aws_creds(c, &cr, &region);
	if (rc)
		return rc;
	if (sw_eks_token(&token, &exp_ms, &cr, argv[0], region, sw_now_ms()) < 0) {
		fprintf(stderr, "slipway: %s\n", sw_error_last());
		rc = EXIT_FAILED;
	} else {
		const char *api = "client.authentication.k8s.io/v1beta1";
		const char *info = getenv("KUBERNETES_EXEC_INFO");
		json_error_t je;
		json_t *ji = info ? json_loads(info, 0, &je) : NULL;
		const char *want = json_string_value(json_object_get(ji, "apiVersion"));
		if (want && !strncmp(want, "client.authentication.k8s.io/", 29))
			api = want;
		time_t t = (time_t)(exp_ms / 1000);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
		json_t *j = json_pack("{s:s, s:s, s:{}, s:{s:s, s:s}}", "kind", "ExecCredential",
				      "apiVersion", api, "spec", "status", "expirationTimestamp",
				      when, "token", token);
		char *out = json_dumps(j, JSON_INDENT(2));
		puts(out);
		free(out);
		json_decref(j);
		json_decref(ji);
		free(token);
	}
	sw_aws_cred_release(&cr);
	free(region);
	return rc;
}

/* What `aws eks update-kubeconfig` writes, with slipway as the plugin: the
 * endpoint and CA from eks:DescribeCluster. */
static int cmd_eks_kubeconfig(struct cli *c, int argc, char **argv)
{
	struct sw_aws_cred cr;
	struct sw_eks_cluster k;
	struct sw_buf ca = SW_BUF_INIT, y = SW_BUF_INIT;
	char *region, self[4096];
	int rc = aws_creds(c, &cr, &region);
	if (rc)
		return rc;
	if (sw_eks_describe(&k, &cr, argv[0], region, sw_now_ms(), 0) < 0) {
		fprintf(stderr, "slipway: %s (credentials from %s)\n", sw_error_last(), cr.source);
		sw_aws_cred_release(&cr);
		free(region);
		return EXIT_FAILED;
	}
	/* the plugin is this very program, wherever it is installed */
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = 0;
	sw_base64_encode(&ca, k.ca_pem, strlen(k.ca_pem), 0);
	sw_buf_addf(&y, "apiVersion: v1\nkind: Config\nclusters:\n- name: %s\n  cluster:\n"
		    "    server: %s\n    certificate-authority-data: %s\nusers:\n- name: %s\n"
		    "  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n"
		    "      command: %s\n      args: [eks-token, %s, --region, %s",
		    argv[0], k.endpoint, ca.ptr, argv[0], n > 0 ? self : "slipway", argv[0], region);
	if (c->role_arn)
		sw_buf_addf(&y, ", --role-arn, '%s'", c->role_arn);
	sw_buf_addf(&y, "]\n      interactiveMode: Never\ncontexts:\n- name: %s\n  context:\n"
		    "    cluster: %s\n    user: %s\ncurrent-context: %s\n", argv[0], argv[0],
		    argv[0], argv[0]);
	if (argc > 1) {
		FILE *f = fopen(argv[1], "w");
		if (!f || fwrite(y.ptr, 1, y.len, f) != y.len || fclose(f) != 0) {
			fprintf(stderr, "slipway: %s: %s\n", argv[1], strerror(errno));
			rc = EXIT_FAILED;
		} else {
			fprintf(stderr, "%s: cluster %s (%s) at %s\n", argv[1], argv[0], k.status,
				k.endpoint);
		}
	} else {
		fputs(y.ptr, stdout);
	}
	sw_buf_release(&ca);
	sw_buf_release(&y);
	sw_eks_cluster_release(&k);
	sw_aws_cred_release(&cr);
	free(region);
	return rc;
}

static const struct command commands[] = {
	{ "status", "", "environments and the latest runs", "", cmd_status, 0, 0 },
	{ "runs", "[--env E] [--status S] [--limit N]", "list runs, newest first", "esrknb",
	  cmd_runs, 0, 0 },
	{ "run", "RUN", "one run and its stages", "", cmd_run, 1, 1 },
	{ "logs", "RUN [STAGE] [-f]", "a run's logs (all stages, or one)", "f", cmd_logs, 1, 2 },
	{ "cancel", "RUN", "cancel a queued or running run", "", cmd_cancel, 1, 1 },
	{ "retry", "RUN", "run a finished run again as a new attempt", "", cmd_retry, 1, 1 },
	{ "sync", "ENV", "sync an environment to its branch now", "", cmd_sync, 1, 1 },
	{ "rollback", "ENV REVISION", "roll back to a commit or a sync id of the history", "",
	  cmd_rollback, 2, 2 },
	{ "diff", "ENV", "what a sync of ENV would change", "", cmd_diff, 1, 1 },
	{ "backup", "FILE", "download a consistent copy of the database (admin token)", "",
	  cmd_backup, 1, 1 },
	{ "aws-identity", "[--region R] [--role-arn ARN]",
	  "who slipway is on AWS: the credentials found and STS GetCallerIdentity", "GO",
	  cmd_aws_identity, 0, 0 },
	{ "eks-token", "CLUSTER [--region R] [--role-arn ARN]",
	  "an EKS token as a kubeconfig exec plugin prints it (as `aws eks get-token`)", "GO",
	  cmd_eks_token, 1, 1 },
	{ "eks-kubeconfig", "CLUSTER [FILE] [--region R] [--role-arn ARN]",
	  "a kubeconfig for an EKS cluster (eks:DescribeCluster) using eks-token", "GO",
	  cmd_eks_kubeconfig, 1, 2 },
	{ "token", "create NAME --role R [--env E]... [--expires 90d] | list | revoke ID",
	  "API tokens for CI and scripts (admin)", "eRX", cmd_token, 1, 2 },
	{ "audit", "[--actor A] [--action X] [--since 24h] [--limit N] [--before ID]",
	  "who did what, from where, and how it ended (admin)", "AaInb", cmd_audit, 0, 0 },
	{ "validate", "[DIR] [--manifests PATH]...",
	  "check DIR/.slipway.yml and manifests offline (default DIR .)", "m", cmd_validate, 0, 1 },
	{ NULL, NULL, NULL, NULL, NULL, 0, 0 },
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 'S' },
		{ "token", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "env", required_argument, NULL, 'e' },
		{ "status", required_argument, NULL, 's' },
		{ "repo", required_argument, NULL, 'r' },
		{ "kind", required_argument, NULL, 'k' },
		{ "limit", required_argument, NULL, 'n' },
		{ "before", required_argument, NULL, 'b' },
		{ "follow", no_argument, NULL, 'f' },
		{ "manifests", required_argument, NULL, 'm' },
		{ "region", required_argument, NULL, 'G' },
		{ "role-arn", required_argument, NULL, 'O' },
		{ "role", required_argument, NULL, 'R' },
		{ "expires", required_argument, NULL, 'X' },
		{ "actor", required_argument, NULL, 'A' },
		{ "action", required_argument, NULL, 'a' },
		{ "since", required_argument, NULL, 'I' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli c = { 0 };
	char used[16] = "";
	int help = 0, o, rc;

	c.server = getenv("SLIPWAY_SERVER");
	c.token = getenv("SLIPWAY_TOKEN");
	while ((o = getopt_long(argc, argv, "hfn:", opts, NULL)) != -1) {
		char *end;
		switch (o) {
		case 'S': c.server = optarg; break;
		case 'T': c.token = optarg; break;
		case 'J': c.json = 1; break;
		case 'h': help = 1; break;
		case 'V': printf("slipway %s\n", SLIPWAY_VERSION); return 0;
		case 'e':
			c.env = optarg;
			c.envs = sw_realloc(c.envs, (c.nenvs + 1) * sizeof(char *));
			c.envs[c.nenvs++] = optarg;
			break;
		case 'R': c.role = optarg; break;
		case 'X': c.expires = optarg; break;
		case 'A': c.actor = optarg; break;
		case 'a': c.action = optarg; break;
		case 'I': c.since = optarg; break;
		case 's': c.status = optarg; break;
		case 'r': c.repo = optarg; break;
		case 'k': c.kind = optarg; break;
		case 'f': c.follow = 1; break;
		case 'G': c.region = optarg; break;
		case 'O': c.role_arn = optarg; break;
		case 'm':
			c.manifests = sw_realloc(c.manifests, (c.nmanifests + 1) * sizeof(char *));
			c.manifests[c.nmanifests++] = optarg;
			break;
		case 'n':
		case 'b': {
			long v = strtol(optarg, &end, 10);
			if (*end || v <= 0) {
				fprintf(stderr, "slipway: --%s: expected a positive number, found '%s'\n",
					o == 'n' ? "limit" : "before", optarg);
				free(c.manifests);
				free(c.envs);
				return EXIT_USAGE;
			}
			*(o == 'n' ? &c.limit : &c.before) = v;
			break;
		}
		default:
			fprintf(stderr, "(see slipway --help)\n");
			free(c.manifests);
			free(c.envs);
			return EXIT_USAGE;
		}
		if (strchr("esrknbfmGORXAaI", o) && !strchr(used, o) && strlen(used) < sizeof(used) - 1)
			used[strlen(used)] = (char)o;
	}
	if (optind >= argc) {
		usage_all(help ? stdout : stderr);
		free(c.manifests);
		free(c.envs);
		return help ? 0 : EXIT_USAGE;
	}
	const char *name = argv[optind];
	if (!strcmp(name, "help")) {
		help = 1;
		name = optind + 1 < argc ? argv[optind + 1] : NULL;
		optind++;
		if (!name) {
			usage_all(stdout);
			return 0;
		}
	}
	if (!strcmp(name, "version")) {
		printf("slipway %s\n", SLIPWAY_VERSION);
		return 0;
	}
	const struct command *k;
	for (k = commands; k->name && strcmp(k->name, name); k++)
		;
	if (!k->name) {
		fprintf(stderr, "slipway: unknown command '%s'\n\n", name);
		usage_all(stderr);
		free(c.manifests);
		free(c.envs);
		return EXIT_USAGE;
	}
	if (help) {
		usage_cmd(stdout, k);
		free(c.manifests);
		free(c.envs);
		return 0;
	}
	int nargs = argc - optind - 1;
	for (const char *u = used; *u; u++)
		if (!strchr(k->opts, *u)) {
			fprintf(stderr, "slipway %s: option not accepted here (see slipway %s --help)\n",
				k->name, k->name);
			free(c.manifests);
			free(c.envs);
			return EXIT_USAGE;
		}
	if (nargs < k->min || nargs > k->max) {
		usage_cmd(stderr, k);
		free(c.manifests);
		free(c.envs);
		return EXIT_USAGE;
	}
	if (!c.server || !*c.server)
		c.server = "http://127.0.0.1:8080";
	if (c.token && !*c.token)
		c.token = NULL;
	c.color = isatty(1) && !getenv("NO_COLOR");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = k->fn(&c, nargs, argv + optind + 1);
	curl_global_cleanup();
	free(c.manifests);
	free(c.envs);
	return rc;
}
