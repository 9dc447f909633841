/*
 * config.c - load and check slipway.yaml (see config.h).
 *
 * Each section has its own small reader that walks the located YAML tree
 * (lib/yaml.h) and reports errors against the node at fault, h2o-style.
 * Errors are collected, not fatal at the first, so `slipwayd --check`
 * can list them all.
 */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "lib/buf.h"
#include "lib/glob.h"
#include "lib/strv.h"
#include "lib/tz.h"
#include "lib/yaml.h"
#include "lib/yamlschema.h"

/* runner.cpus: more than any host has, few enough that the nanoseconds fit an int64 */
#define MAX_CPUS 4096
/* secret_file: a token or a key, never more */
#define MAX_SECRET_BYTES (1024 * 1024)

struct reader {
	struct sw_yaml_reader y;
	char *dir;               /* the config file's directory, for relative paths */
};

typedef const struct sw_yaml_node node_t;

/* A duration ("30s", "5m", "1h30m" or a number of seconds). */
static void get_duration(struct reader *r, node_t *map, const char *path, const char *key,
			 int64_t *out)
{
	node_t *n = sw_yaml_get(map, key);
	if (!n)
		return;
	char *p = sw_yaml_path(path, key);
	int64_t v = n->type == SW_YAML_SCALAR ? sw_parse_duration(n->value) : -1;
	if (v < 0)
		sw_yaml_error(&r->y, n, p, "expected a duration such as 30s, 5m or 1h30m, found %s",
		    n->type == SW_YAML_SCALAR ? n->value : sw_yaml_describe(n));
	else
		*out = v;
	free(p);
}

static void get_size(struct reader *r, node_t *map, const char *path, const char *key,
		     int64_t *out)
{
	node_t *n = sw_yaml_get(map, key);
	if (!n)
		return;
	char *p = sw_yaml_path(path, key);
	int64_t v = n->type == SW_YAML_SCALAR ? sw_parse_size(n->value) : -1;
	if (v < 0)
		sw_yaml_error(&r->y, n, p, "expected a size such as 512m or 2g, found %s",
		    n->type == SW_YAML_SCALAR ? n->value : sw_yaml_describe(n));
	else
		*out = v;
	free(p);
}

/* Turn a relative filesystem path into one relative to the config file. */
static void make_abs(struct reader *r, char **path)
{
	if (!*path || (*path)[0] == '/')
		return;
	char *abs = sw_asprintf("%s/%s", r->dir, *path);
	free(*path);
	*path = abs;
}

/* {secret_file: PATH} or {secret_env: NAME}; inline values are refused. */
static void get_secret(struct reader *r, node_t *map, const char *path, const char *key,
		       struct sw_secret *out)
{
	node_t *n = sw_yaml_get(map, key);
	static const char *const keys[] = { "secret_file", "secret_env", NULL };
	if (!n)
		return;
	char *p = sw_yaml_path(path, key);
	if (n->type == SW_YAML_SCALAR) {
		sw_yaml_error(&r->y, n, p,
			      "write {secret_file: PATH} or {secret_env: NAME}, not the secret itself");
		free(p);
		return;
	}
	if (sw_yaml_want_map(&r->y, n, p, keys) < 0) {
		free(p);
		return;
	}
	char *file = NULL, *env = NULL;
	sw_yaml_get_str(&file, &r->y, n, p, "secret_file", 0);
	sw_yaml_get_str(&env, &r->y, n, p, "secret_env", 0);
	if (!!file == !!env) {
		sw_yaml_error(&r->y, n, p, "give exactly one of secret_file or secret_env");
	} else if (env) {
		const char *v = getenv(env);
		if (!v || !*v)
			sw_yaml_error(&r->y, n, p, "environment variable %s is not set", env);
		else {
			out->value = sw_strdup(v);
			out->source = sw_asprintf("env %s", env);
		}
	} else {
		struct sw_buf b = SW_BUF_INIT;
		struct stat st;
		make_abs(r, &file);
		/* A device (/dev/zero) or a FIFO would be read forever or block the reload. */
		if (stat(file, &st) < 0) {
			sw_yaml_error(&r->y, n, p, "cannot read secret file: %s: %s", file,
				      strerror(errno));
		} else if (!S_ISREG(st.st_mode)) {
			sw_yaml_error(&r->y, n, p, "secret file %s is not a regular file", file);
		} else if (st.st_size > MAX_SECRET_BYTES) {
			sw_yaml_error(&r->y, n, p, "secret file %s is larger than 1 MiB", file);
		} else if (sw_buf_read_file(&b, file) < 0) {
			sw_yaml_error(&r->y, n, p, "cannot read secret file: %s", sw_error_last());
		} else if (b.len > MAX_SECRET_BYTES) {
			sw_yaml_error(&r->y, n, p, "secret file %s is larger than 1 MiB", file);
		} else {
			while (b.len && (b.ptr[b.len - 1] == '\n' || b.ptr[b.len - 1] == '\r'))
				sw_buf_truncate(&b, b.len - 1);
			if (!b.len)
				sw_yaml_error(&r->y, n, p, "secret file %s is empty", file);
			else {
				out->value = sw_buf_detach(&b, NULL);
				out->source = sw_asprintf("file %s", file);
			}
		}
		sw_buf_release(&b);
	}
	free(file);
	free(env);
	free(p);
}

/* --- sections ------------------------------------------------------------ */

static void read_listen(struct reader *r, node_t *map, struct sw_config *c)
{
	char *listen = NULL;
	if (sw_yaml_get_str(&listen, &r->y, map, "server", "listen", 0) < 0 || !listen)
		return;
	char *colon = strrchr(listen, ':');
	char *end;
	long port = colon ? strtol(colon + 1, &end, 10) : -1;
	if (!colon || colon == listen || *end || port < 0 || port > 65535) {
		sw_yaml_error(&r->y, sw_yaml_get(map, "listen"), "server.listen",
		    "expected HOST:PORT such as 127.0.0.1:8080, found %s", listen);
	} else {
		free(c->listen_host);
		*colon = '\0';
		if (listen[0] == '[' && colon[-1] == ']') {  /* [::1]:8080 */
			colon[-1] = '\0';
			c->listen_host = sw_strdup(listen + 1);
		} else {
			c->listen_host = sw_strdup(listen);
		}
		c->listen_port = (int)port;
	}
	free(listen);
}

/*
 * A key that is one of two words: *out = 0 for `no`, 1 for `yes`; left as
 * is when the key is absent.
 */
static void get_either(struct reader *r, node_t *map, const char *path, const char *key,
		       const char *no, const char *yes, int *out)
{
	node_t *n = sw_yaml_get(map, key);
	char *v = NULL, full[128];
	if (!n)
		return;
	sw_yaml_get_str(&v, &r->y, map, path, key, 0);
	snprintf(full, sizeof(full), "%s.%s", path, key);
	if (v && !strcmp(v, no))
		*out = 0;
	else if (v && !strcmp(v, yes))
		*out = 1;
	else if (v)
		sw_yaml_error(&r->y, n, full, "expected %s or %s, found %s", no, yes, v);
	free(v);
}

/* The bounds on what one client may hold; each has a floor a real client
 * never reaches, so a typo cannot make the server refuse everything. */
static void read_limits(struct reader *r, node_t *n, struct sw_config *c)
{
	static const struct { const char *key; int64_t min, max; } sizes[] = {
		{ "max_header_size", 1024, 16 * 1024 * 1024 },
		{ "max_uri_size", 256, 1024 * 1024 },
	};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int64_t *out = i == 0 ? &c->max_header_size : &c->max_uri_size, v = -1;
		get_size(r, n, "server", sizes[i].key, &v);
		if (v == -1)
			continue;
		if (v < sizes[i].min || v > sizes[i].max)
			sw_yaml_error(&r->y, sw_yaml_get(n, sizes[i].key), i == 0 ? "server.max_header_size" :
			    "server.max_uri_size", "expected a size from %lldk to %lldm, found %lld bytes",
			    (long long)sizes[i].min / 1024, (long long)sizes[i].max / 1024 / 1024,
			    (long long)v);
		else
			*out = v;
	}
	int64_t t = -1;
	get_duration(r, n, "server", "read_timeout", &t);
	if (t == 0 || t > 3600)
		sw_yaml_error(&r->y, sw_yaml_get(n, "read_timeout"), "server.read_timeout",
		    "expected a duration from 1s to 1h, found %s", sw_yaml_get(n, "read_timeout")->value);
	else if (t > 0)
		c->read_timeout_s = t;
	sw_yaml_get_int(&c->max_connections, &r->y, n, "server", "max_connections", 16, 1000000, 0);
	char **proxies = NULL;
	size_t np = 0;
	sw_yaml_get_strv(&proxies, &np, &r->y, n, "server", "trusted_proxies", 0);
	if (np) {
		c->trusted_proxies = sw_calloc(np, sizeof(*c->trusted_proxies));
		for (size_t i = 0; i < np; i++) {
			node_t *list = sw_yaml_get(n, "trusted_proxies");
			if (sw_cidr_parse(&c->trusted_proxies[c->ntrusted_proxies], proxies[i]) < 0)
				sw_yaml_error(&r->y, list->type == SW_YAML_SEQ && i < list->n ? list->items[i] : list,
				    "server.trusted_proxies", "[%zu]: %s", i, sw_error_last());
			else
				c->ntrusted_proxies++;
		}
	}
	sw_strv_free(proxies);
}

static void read_server(struct reader *r, node_t *n, struct sw_config *c)
{
	static const char *const keys[] = { "listen", "public_url", "data_dir", "tls", "log_level",
		"durability", "max_concurrent_runs", "read_access", "api_token", "history_limit",
		"max_header_size", "max_uri_size", "read_timeout", "max_connections",
		"trusted_proxies", NULL };
	static const char *const tls_keys[] = { "cert", "key", NULL };
	if (sw_yaml_want_map(&r->y, n, "server", keys) < 0)
		return;
	read_listen(r, n, c);
	sw_yaml_get_str(&c->public_url, &r->y, n, "server", "public_url", 0);
	sw_yaml_get_str(&c->data_dir, &r->y, n, "server", "data_dir", 0);
	make_abs(r, &c->data_dir);
	sw_yaml_get_str(&c->log_level, &r->y, n, "server", "log_level", 0);
	if (c->log_level && strcmp(c->log_level, "debug") && strcmp(c->log_level, "info") &&
	    strcmp(c->log_level, "warn") && strcmp(c->log_level, "error"))
		sw_yaml_error(&r->y, sw_yaml_get(n, "log_level"), "server.log_level",
		    "expected debug, info, warn or error, found %s", c->log_level);
	get_either(r, n, "server", "durability", "normal", "full", &c->durability_full);
	sw_yaml_get_int(&c->max_concurrent_runs, &r->y, n, "server", "max_concurrent_runs", 1, 256,
			0);
	int64_t hl = c->history_limit;
	node_t *h = sw_yaml_get(n, "history_limit");
	if (h) {
		int v = 0;
		sw_yaml_get_int(&v, &r->y, n, "server", "history_limit", 1, 100000, 0);
		if (v)
			hl = v;
	}
	c->history_limit = hl;
	get_either(r, n, "server", "read_access", "open", "token", &c->read_requires_token);
	get_secret(r, n, "server", "api_token", &c->api_token);
	read_limits(r, n, c);
	node_t *tls = sw_yaml_get(n, "tls");
	if (tls && sw_yaml_want_map(&r->y, tls, "server.tls", tls_keys) == 0) {
		sw_yaml_get_str(&c->tls_cert, &r->y, tls, "server.tls", "cert", SW_YAML_REQUIRED);
		sw_yaml_get_str(&c->tls_key, &r->y, tls, "server.tls", "key", SW_YAML_REQUIRED);
		make_abs(r, &c->tls_cert);
		make_abs(r, &c->tls_key);
	}
}

/*
 * github.app: {id, private_key: SECRET, installation_id}. The key must
 * parse as an RSA private key here, so that a bad one is found by
 * --check and at load, not at the first commit status; the message names
 * where the key came from, never its text.
 */
static void read_github_app(struct reader *r, node_t *n, struct sw_config *c)
{
	static const char *const keys[] = { "id", "private_key", "installation_id", NULL };
	struct sw_cfg_github_app *a = &c->github_app;
	node_t *k;
	int64_t inst = 0;

	if (sw_yaml_want_map(&r->y, n, "github.app", keys) < 0)
		return;
	if (sw_yaml_get_str(&a->id, &r->y, n, "github.app", "id", SW_YAML_REQUIRED) == 0 && a->id) {
		int ok = *a->id != 0 && strlen(a->id) <= 64;
		for (const char *p = a->id; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '.' && *p != '_' && *p != '-')
				ok = 0;
		if (!ok)
			sw_yaml_error(&r->y, sw_yaml_get(n, "id"), "github.app.id",
			    "expected the App's id (a number) or client id, found %s", a->id);
	}
	if (!sw_yaml_get(n, "private_key"))
		sw_yaml_error(&r->y, n, "github.app", "private_key: missing "
			      "(expected {secret_file: PATH} or {secret_env: NAME})");
	get_secret(r, n, "github.app", "private_key", &a->private_key);
	if (a->private_key.value) {
		BIO *bio = BIO_new_mem_buf(a->private_key.value, -1);
		EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"") : NULL;
		if (!key || EVP_PKEY_base_id(key) != EVP_PKEY_RSA)
			sw_yaml_error(&r->y, sw_yaml_get(n, "private_key"), "github.app.private_key",
			    "%s: %s", a->private_key.source, key ? "not an RSA key (a GitHub App's key is RSA)"
			    : "not a PEM private key (expected the .pem file GitHub gave for the App)");
		EVP_PKEY_free(key);
		BIO_free(bio);
	}
	if ((k = sw_yaml_get(n, "installation_id"))) {
		struct sw_yaml_scalar sc;
		if (k->type == SW_YAML_SCALAR && (sw_yaml_resolve(k, &sc), sc.kind == SW_YK_INT) &&
		    sc.i > 0)
			inst = sc.i;
		else
			sw_yaml_error(&r->y, k, "github.app.installation_id",
			    "expected a positive number, found %s",
			    k->type == SW_YAML_SCALAR ? k->value : sw_yaml_describe(k));
	}
	a->installation_id = inst;
}

/* github.oauth: {client_id, client_secret: secret, url} */
static void read_oauth(struct reader *r, node_t *gh, struct sw_config *c)
{
	static const char *const keys[] = { "client_id", "client_secret", "url", NULL };
	node_t *n = sw_yaml_get(gh, "oauth");
	if (!n || sw_yaml_want_map(&r->y, n, "github.oauth", keys) < 0)
		return;
	sw_yaml_get_str(&c->oauth_client_id, &r->y, n, "github.oauth", "client_id",
			SW_YAML_REQUIRED);
	get_secret(r, n, "github.oauth", "client_secret", &c->oauth_client_secret);
	sw_yaml_get_str(&c->oauth_url, &r->y, n, "github.oauth", "url", 0);
	if (!c->oauth_client_secret.value && !sw_yaml_get(n, "client_secret"))
		sw_yaml_error(&r->y, n, "github.oauth", "client_secret: missing");
	if (c->oauth_url && strncmp(c->oauth_url, "https://", 8) && strncmp(c->oauth_url, "http://", 7))
		sw_yaml_error(&r->y, sw_yaml_get(n, "url"), "github.oauth.url",
			      "expected an http(s) URL, found %s", c->oauth_url);
}

static void read_github(struct reader *r, node_t *n, struct sw_config *c)
{
	static const char *const keys[] = { "api_url", "webhook_secret", "token", "replay_window",
					    "app", "oauth", NULL };
	if (sw_yaml_want_map(&r->y, n, "github", keys) < 0)
		return;
	read_oauth(r, n, c);
	sw_yaml_get_str(&c->github_api_url, &r->y, n, "github", "api_url", 0);
	get_secret(r, n, "github", "webhook_secret", &c->webhook_secret);
	get_secret(r, n, "github", "token", &c->github_token);
	get_duration(r, n, "github", "replay_window", &c->replay_window_s);
	if (sw_yaml_get(n, "app"))
		read_github_app(r, sw_yaml_get(n, "app"), c);
}

/* cost: {report, day, at, timezone, channel, tag} (docs/aws.md "What the
 * environments cost"); the block's presence turns Cost Explorer on. */
static void read_cost(struct reader *r, node_t *n, struct sw_config *c)
{
	static const char *const keys[] = { "report", "day", "at", "timezone", "channel", "tag",
		NULL };
	static const char *const days[] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };
	struct sw_cfg_cost *k = &c->cost;
	char *report = NULL, *day = NULL, *at = NULL;
	unsigned hh, mm;
	char tail;

	k->enabled = 1;
	if (sw_yaml_want_map(&r->y, n, "cost", keys) < 0)
		return;
	sw_yaml_get_str(&report, &r->y, n, "cost", "report", 0);
	sw_yaml_get_str(&day, &r->y, n, "cost", "day", 0);
	sw_yaml_get_str(&at, &r->y, n, "cost", "at", 0);
	sw_yaml_get_str(&k->timezone, &r->y, n, "cost", "timezone", 0);
	sw_yaml_get_str(&k->channel, &r->y, n, "cost", "channel", 0);
	sw_yaml_get_str(&k->tag, &r->y, n, "cost", "tag", 0);
	if (report && !strcmp(report, "daily"))
		k->report = SW_COST_DAILY;
	else if (report && !strcmp(report, "weekly"))
		k->report = SW_COST_WEEKLY;
	else if (report && strcmp(report, "off"))
		sw_yaml_error(&r->y, sw_yaml_get(n, "report"), "cost.report",
			      "expected daily, weekly or off, found %s", report);
	k->weekday = 1;
	if (day) {
		k->weekday = -1;
		for (int i = 0; i < 7; i++)
			if (!strcmp(day, days[i]))
				k->weekday = i;
		if (k->weekday < 0)
			sw_yaml_error(&r->y, sw_yaml_get(n, "day"), "cost.day",
				      "expected sun, mon, tue, wed, thu, fri or sat, found %s", day);
	}
	k->at_min = 9 * 60;
	if (at) {
		if (sscanf(at, "%2u:%2u%c", &hh, &mm, &tail) != 2 || strlen(at) != 5 || hh > 23 ||
		    mm > 59)
			sw_yaml_error(&r->y, sw_yaml_get(n, "at"), "cost.at",
				      "expected a time of day as HH:MM (24 h), found %s", at);
		else
			k->at_min = (int)(hh * 60 + mm);
	}
	if (!k->timezone)
		k->timezone = sw_strdup("UTC");
	struct sw_tz *tz;
	if (sw_tz_load(&tz, k->timezone) < 0)
		sw_yaml_error(&r->y, sw_yaml_get(n, "timezone"), "cost.timezone", "%s",
			      sw_error_last());
	sw_tz_free(tz);
	if (!k->tag)
		k->tag = sw_strdup("environment");
	free(report);
	free(day);
	free(at);
}

/* aws: {region, profile, role_arn, pricing} (docs/aws.md) */
static void read_aws(struct reader *r, node_t *n, struct sw_config *c)
{
	static const char *const keys[] = { "region", "profile", "role_arn", "pricing", NULL };
	if (sw_yaml_want_map(&r->y, n, "aws", keys) < 0)
		return;
	sw_yaml_get_str(&c->aws.region, &r->y, n, "aws", "region", 0);
	sw_yaml_get_str(&c->aws.profile, &r->y, n, "aws", "profile", 0);
	sw_yaml_get_str(&c->aws.role_arn, &r->y, n, "aws", "role_arn", 0);
	sw_yaml_get_bool(&c->aws.pricing, &r->y, n, "aws", "pricing", 0);
	if (c->aws.region && (!*c->aws.region || strspn(c->aws.region,
	    "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(c->aws.region)))
		sw_yaml_error(&r->y, sw_yaml_get(n, "region"), "aws.region",
			      "expected a region name such as eu-west-1, found %s", c->aws.region);
	if (c->aws.role_arn && strncmp(c->aws.role_arn, "arn:", 4))
		sw_yaml_error(&r->y, sw_yaml_get(n, "role_arn"), "aws.role_arn",
			      "expected an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME), found %s",
			      c->aws.role_arn);
}

static void read_slack(struct reader *r, node_t *n, struct sw_config *c)
{
	static const char *const keys[] = { "webhook_url", "bot_token", "channel", "api_url", NULL };
	if (sw_yaml_want_map(&r->y, n, "slack", keys) < 0)
		return;
	get_secret(r, n, "slack", "webhook_url", &c->slack_webhook_url);
	get_secret(r, n, "slack", "bot_token", &c->slack_bot_token);
	sw_yaml_get_str(&c->slack_channel, &r->y, n, "slack", "channel", 0);
	sw_yaml_get_str(&c->slack_api_url, &r->y, n, "slack", "api_url", 0);
	if (c->slack_bot_token.value && !c->slack_channel)
		sw_yaml_error(&r->y, n, "slack", "bot_token needs a channel");
}

static void read_runner(struct reader *r, node_t *n, struct sw_config *c)
{
	static const char *const keys[] = { "backend", "docker_socket", "memory", "cpus",
		"network", "timeout", "cap_add", "pids", "user", "pr_network", "pr_network_repos",
		NULL };
	if (sw_yaml_want_map(&r->y, n, "runner", keys) < 0)
		return;
	sw_yaml_get_str(&c->runner_backend, &r->y, n, "runner", "backend", 0);
	if (strcmp(c->runner_backend, "docker") && strcmp(c->runner_backend, "local"))
		sw_yaml_error(&r->y, sw_yaml_get(n, "backend"), "runner.backend",
		    "expected docker or local, found %s", c->runner_backend);
	sw_yaml_get_str(&c->docker_socket, &r->y, n, "runner", "docker_socket", 0);
	make_abs(r, &c->docker_socket);
	get_size(r, n, "runner", "memory", &c->runner_memory);
	node_t *cpus = sw_yaml_get(n, "cpus");
	if (cpus) {
		struct sw_yaml_scalar sc;
		/* bounded, so that the nanoseconds fit Docker's int64 (.inf did not) */
		if (cpus->type == SW_YAML_SCALAR && (sw_yaml_resolve(cpus, &sc),
		    (sc.kind == SW_YK_INT && sc.i > 0 && sc.i <= MAX_CPUS) ||
		    (sc.kind == SW_YK_FLOAT && sc.f > 0 && sc.f <= MAX_CPUS)))
			c->runner_nano_cpus = (int64_t)((sc.kind == SW_YK_INT ? (double)sc.i : sc.f) * 1e9);
		else
			sw_yaml_error(&r->y, cpus, "runner.cpus",
				      "expected a positive number of at most %d such as 1.5, found %s",
				      MAX_CPUS,
				      cpus->type == SW_YAML_SCALAR ? cpus->value : sw_yaml_describe(cpus));
	}
	sw_yaml_get_str(&c->runner_network, &r->y, n, "runner", "network", 0);
	get_duration(r, n, "runner", "timeout", &c->step_timeout_s);
	sw_yaml_get_strv(&c->runner_cap_add, &c->nrunner_cap_add, &r->y, n, "runner", "cap_add", 0);
	sw_yaml_get_int(&c->runner_pids, &r->y, n, "runner", "pids", 0, 1 << 22, 0);
	sw_yaml_get_str(&c->runner_user, &r->y, n, "runner", "user", 0);
	sw_yaml_get_str(&c->runner_pr_network, &r->y, n, "runner", "pr_network", 0);
	sw_yaml_get_strv(&c->runner_pr_network_repos, &c->nrunner_pr_network_repos, &r->y, n,
			 "runner", "pr_network_repos", 0);
}

static void read_terraform(struct reader *r, node_t *n, struct sw_config *c)
{
	static const char *const keys[] = { "image", "mounts", "cli_config", NULL };
	if (sw_yaml_want_map(&r->y, n, "terraform", keys) < 0)
		return;
	sw_yaml_get_str(&c->tf_image, &r->y, n, "terraform", "image", 0);
	if (sw_yaml_get_str(&c->tf_cli_config, &r->y, n, "terraform", "cli_config", 0) == 0 &&
	    c->tf_cli_config)
		make_abs(r, &c->tf_cli_config);
	sw_yaml_get_strv(&c->tf_mounts, &c->ntf_mounts, &r->y, n, "terraform", "mounts", 0);
	for (size_t i = 0; i < c->ntf_mounts; i++) {
		make_abs(r, &c->tf_mounts[i]);
		if (strchr(c->tf_mounts[i], ':'))
			sw_yaml_error(&r->y, sw_yaml_get(n, "mounts"), "terraform.mounts",
			    "[%zu]: a path cannot hold ':', found %s", i, c->tf_mounts[i]);
	}
	if (c->ntf_mounts && !c->tf_image)
		sw_yaml_error(&r->y, sw_yaml_get(n, "mounts"), "terraform.mounts",
		    "mounts are for terraform.image (the host's terraform sees the host anyway)");
	if (c->tf_image && !*c->tf_image)
		sw_yaml_error(&r->y, sw_yaml_get(n, "image"),
			      "terraform.image", "expected an image name, found \"\"");
}

/* retention.KIND: {age: DURATION, count: N}; `count` NULL where not offered. */
static void read_retention_kind(struct reader *r, node_t *n, const char *kind,
				int64_t *age, int *count)
{
	static const char *const keys[] = { "age", "count", NULL };
	static const char *const age_only[] = { "age", NULL };
	char path[64];
	node_t *k = sw_yaml_get(n, kind);

	snprintf(path, sizeof(path), "retention.%s", kind);
	if (!k || sw_yaml_want_map(&r->y, k, path, count ? keys : age_only) < 0)
		return;
	get_duration(r, k, path, "age", age);
	if (count)
		sw_yaml_get_int(count, &r->y, k, path, "count", 0, 100000000, 0);
}

static void read_retention(struct reader *r, node_t *n, struct sw_config *c)
{
	static const char *const keys[] = { "interval", "batch", "deliveries", "logs", "runs",
		"drift_events", "outbox", "audit", NULL };
	struct sw_cfg_retention *rt = &c->retention;
	if (sw_yaml_want_map(&r->y, n, "retention", keys) < 0)
		return;
	get_duration(r, n, "retention", "interval", &rt->interval_s);
	sw_yaml_get_int(&rt->batch, &r->y, n, "retention", "batch", 1, 100000, 0);
	read_retention_kind(r, n, "deliveries", &rt->deliveries_age_s, &rt->deliveries_count);
	read_retention_kind(r, n, "logs", &rt->logs_age_s, NULL);
	read_retention_kind(r, n, "runs", &rt->runs_age_s, &rt->runs_count);
	read_retention_kind(r, n, "drift_events", &rt->drift_age_s, &rt->drift_count);
	read_retention_kind(r, n, "outbox", &rt->outbox_age_s, NULL);
	read_retention_kind(r, n, "audit", &rt->audit_age_s, &rt->audit_count);
}

/*
 * A role list (access.viewers, environments[].deployers, ...): GitHub
 * logins, "org/team" names or "*". `*has` (may be NULL) is set when the
 * key is present, even as [].
 */
static void read_principals(struct reader *r, node_t *map, const char *path, const char *key,
			    char ***out, size_t *count, int *has)
{
	node_t *n = sw_yaml_get(map, key);
	if (!n)
		return;
	if (sw_yaml_get_strv(out, count, &r->y, map, path, key, 0) < 0)
		return;
	if (has)
		*has = 1;
	if (!*out)
		return;
	for (size_t i = 0; i < *count; i++) {
		const char *v = (*out)[i], *slash = strchr(v, '/');
		int ok = *v && strlen(v) <= 100 && (!slash || (slash != v && slash[1] &&
							       !strchr(slash + 1, '/')));
		for (const char *p = v; ok && *p; p++)
			if (!(isalnum((unsigned char)*p) || strchr("-_./", *p)))
				ok = 0;
		if (!strcmp(v, "*"))
			ok = 1;
		if (!ok) {
			char *p = sw_yaml_path(path, key);
			sw_yaml_error(&r->y, n->type == SW_YAML_SEQ && i < n->n ? n->items[i] : n, p,
				      "expected a GitHub login, an org/team name or *, found '%s'", v);
			free(p);
		}
	}
}

static void read_access(struct reader *r, node_t *n, struct sw_config *c)
{
	static const char *const keys[] = { "viewers", "deployers", "admins", NULL };
	struct sw_cfg_access *a = &c->access;
	if (sw_yaml_want_map(&r->y, n, "access", keys) < 0)
		return;
	read_principals(r, n, "access", "viewers", &a->viewers, &a->nviewers, NULL);
	read_principals(r, n, "access", "deployers", &a->deployers, &a->ndeployers, NULL);
	read_principals(r, n, "access", "admins", &a->admins, &a->nadmins, NULL);
}

/* A secret's name becomes an environment variable: [A-Za-z_][A-Za-z0-9_]*. */
static int secret_name_ok(const char *v)
{
	int ok = *v && !isdigit((unsigned char)v[0]);
	for (const char *p = v; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_'))
			ok = 0;
	return ok;
}

/*
 * One entry of a `secrets` mapping (the global one, or an environment's
 * when `in_env`): `NAME: {secret_env|secret_file}` (the short form: push
 * and deploy stages only) or `NAME: {value: {...}, events, branches,
 * environments, repositories}`. Environment and repository names are
 * checked once every section is read (check_secret_links).
 */
static void read_secret_entry(struct reader *r, node_t *map, node_t *k, const char *path,
			      int in_env, struct sw_cfg_secret *s)
{
	static const char *const keys[] = { "value", "events", "branches", "environments",
		"repositories", NULL };
	static const char *const env_keys[] = { "value", "events", "branches", "repositories", NULL };
	node_t *v = sw_yaml_get(map, k->value);
	char *p = sw_yaml_path(path, k->value);

	s->name = sw_strdup(k->value);
	s->line = k->mark.line;
	s->col = k->mark.col;
	if (!v || v->type != SW_YAML_MAP || !sw_yaml_get(v, "value")) {
		s->short_form = 1;
		s->events = SW_SECRET_EV_SHORT_FORM;
		get_secret(r, map, path, k->value, &s->secret);
		goto done;
	}
	if (sw_yaml_get(v, "secret_env") || sw_yaml_get(v, "secret_file")) {
		sw_yaml_error(&r->y, v, p, "give the value under value: {secret_env|secret_file} "
			      "or write the short form alone, not both");
		goto done;
	}
	if (sw_yaml_want_map(&r->y, v, p, in_env ? env_keys : keys) < 0)
		goto done;
	get_secret(r, v, p, "value", &s->secret);
	s->events = SW_SECRET_EV_SHORT_FORM;   /* pull_request is only ever named */
	node_t *ev = sw_yaml_get(v, "events");
	if (ev) {
		char **names = NULL, *ep = sw_yaml_path(p, "events");
		node_t **at = NULL;
		size_t cnt = sw_yaml_want_strv(&names, &at, &r->y, ev, ep, 0);
		s->events = 0;
		for (size_t i = 0; i < cnt; i++) {
			unsigned bit = sw_secret_event_parse(names[i]);
			if (!bit)
				sw_yaml_error(&r->y, at[i], ep,
				    "unknown event '%s' (expected pull_request, push or deploy)", names[i]);
			s->events |= bit;
		}
		sw_strv_free(names);
		free(at);
		free(ep);
	}
	node_t *br = sw_yaml_get(v, "branches");
	if (br) {
		char *bp = sw_yaml_path(p, "branches");
		node_t **at = NULL;
		s->nbranches = sw_yaml_want_strv(&s->branches, &at, &r->y, br, bp, SW_YAML_NONEMPTY);
		for (size_t i = 0; i < s->nbranches; i++) {
			const char *why = sw_glob_problem(s->branches[i]);
			if (why)
				sw_yaml_error(&r->y, at[i], bp, "invalid glob '%s': %s", s->branches[i], why);
		}
		free(at);
		free(bp);
	}
	sw_yaml_get_strv(&s->environments, &s->nenvironments, &r->y, v, p, "environments",
			 SW_YAML_NONEMPTY);
	sw_yaml_get_strv(&s->repositories, &s->nrepositories, &r->y, v, p, "repositories",
			 SW_YAML_NONEMPTY);
done:
	free(p);
}

/* `secrets:` at the top or in an environment: NAME -> entry. */
static void read_secret_map(struct reader *r, node_t *n, const char *path, int in_env,
			    struct sw_cfg_secret **out, size_t *nout)
{
	if (sw_yaml_want_map(&r->y, n, path, NULL) < 0)
		return;
	*out = sw_calloc(n->n ? n->n : 1, sizeof(**out));
	for (size_t i = 0; i < n->n; i++) {
		node_t *k = n->items[2 * i];
		if (k->type != SW_YAML_SCALAR)
			continue;
		if (!secret_name_ok(k->value)) {
			sw_yaml_error(&r->y, k, path,
				      "'%s' is not a valid environment variable name", k->value);
			continue;
		}
		read_secret_entry(r, n, k, path, in_env, &(*out)[(*nout)++]);
	}
}

static void read_secrets(struct reader *r, node_t *n, struct sw_config *c)
{
	read_secret_map(r, n, "secrets", 0, &c->secrets, &c->nsecrets);
}

/*
 * An environment's own secrets and what its acceptance stages may reach:
 * `secrets:` (as the global ones, without `environments`) and
 * `acceptance: {cluster_access: bool}`.
 */
static void read_env_scoped(struct reader *r, node_t *m, const char *path, struct sw_cfg_env *e)
{
	static const char *const acc_keys[] = { "cluster_access", NULL };
	node_t *n = sw_yaml_get(m, "secrets");
	if (n) {
		char *sp = sw_yaml_path(path, "secrets");
		read_secret_map(r, n, sp, 1, &e->secrets, &e->nsecrets);
		free(sp);
	}
	if ((n = sw_yaml_get(m, "acceptance"))) {
		char *ap = sw_yaml_path(path, "acceptance");
		if (sw_yaml_want_map(&r->y, n, ap, acc_keys) == 0)
			sw_yaml_get_bool(&e->acceptance_cluster_access, &r->y, n, ap, "cluster_access", 0);
		if (e->acceptance_cluster_access && !sw_cfg_env_has_cluster(e))
			sw_yaml_error(&r->y, n, ap, "cluster_access needs cluster.kubeconfig");
		free(ap);
	}
}

/* The environments and repositories a scoped secret names must exist. */
static void check_secret_names(struct reader *r, node_t *map, const char *path,
			       const struct sw_cfg_secret *v, size_t n, const struct sw_config *c)
{
	for (size_t i = 0; map && map->type == SW_YAML_MAP && i < n; i++) {
		node_t *e = sw_yaml_get(map, v[i].name);
		char *p = sw_yaml_path(path, v[i].name);
		node_t *envs = e && e->type == SW_YAML_MAP ? sw_yaml_get(e, "environments") : NULL;
		node_t *repos = e && e->type == SW_YAML_MAP ? sw_yaml_get(e, "repositories") : NULL;
		for (size_t j = 0; j < v[i].nenvironments; j++)
			if (!sw_config_env(c, v[i].environments[j]))
				sw_yaml_error(&r->y, envs->type == SW_YAML_SEQ && j < envs->n ?
				    envs->items[j] : envs, p, "environments: unknown environment '%s'",
				    v[i].environments[j]);
		for (size_t j = 0; j < v[i].nrepositories; j++)
			if (!sw_config_repo(c, v[i].repositories[j]))
				sw_yaml_error(&r->y, repos->type == SW_YAML_SEQ && j < repos->n ?
				    repos->items[j] : repos, p, "repositories: unknown repository '%s'",
				    v[i].repositories[j]);
		free(p);
	}
}

static void check_secret_links(struct reader *r, node_t *root, const struct sw_config *c)
{
	node_t *envs = sw_yaml_get(root, "environments");
	check_secret_names(r, sw_yaml_get(root, "secrets"), "secrets", c->secrets, c->nsecrets, c);
	for (size_t i = 0; envs && envs->type == SW_YAML_SEQ && i < c->nenvs && i < envs->n; i++) {
		char path[80];
		node_t *m = envs->items[i];
		snprintf(path, sizeof(path), "environments[%zu].secrets", i);
		if (m->type == SW_YAML_MAP)
			check_secret_names(r, sw_yaml_get(m, "secrets"), path, c->envs[i].secrets,
					   c->envs[i].nsecrets, c);
	}
}

static void read_repos(struct reader *r, node_t *n, struct sw_config *c)
{
	static const char *const keys[] = { "name", "url", "token", "ssh_key", "poll_interval", NULL };
	if (n->type != SW_YAML_SEQ) {
		sw_yaml_error(&r->y, n, "repositories",
			      "expected a list, found %s", sw_yaml_describe(n));
		return;
	}
	c->repos = sw_calloc(n->n ? n->n : 1, sizeof(*c->repos));
	for (size_t i = 0; i < n->n; i++) {
		char path[64];
		node_t *m = n->items[i];
		struct sw_cfg_repo *rp = &c->repos[c->nrepos++];
		snprintf(path, sizeof(path), "repositories[%zu]", i);
		if (sw_yaml_want_map(&r->y, m, path, keys) < 0)
			continue;
		sw_yaml_get_str(&rp->name, &r->y, m, path, "name", SW_YAML_REQUIRED);
		sw_yaml_get_str(&rp->url, &r->y, m, path, "url", SW_YAML_REQUIRED);
		get_secret(r, m, path, "token", &rp->token);
		sw_yaml_get_str(&rp->ssh_key, &r->y, m, path, "ssh_key", 0);
		make_abs(r, &rp->ssh_key);
		get_duration(r, m, path, "poll_interval", &rp->poll_interval_s);
		if (rp->name && (!strchr(rp->name, '/') || strchr(rp->name, '/') == rp->name))
			sw_yaml_error(&r->y, sw_yaml_get(m, "name"), path,
			    "name must be the GitHub full name owner/repo, found %s", rp->name);
		for (size_t j = 0; j + 1 < c->nrepos && rp->name; j++)
			if (c->repos[j].name && !strcmp(c->repos[j].name, rp->name))
				sw_yaml_error(&r->y, sw_yaml_get(m, "name"),
					      path, "repository %s is listed twice", rp->name);
	}
}

static void read_infra(struct reader *r, node_t *n, const char *envpath, struct sw_cfg_infra *inf)
{
	static const char *const keys[] = { "modules", "var_file", "vars", "heal", "drift_interval",
		"timeout", NULL };
	char *path = sw_yaml_path(envpath, "infra");
	if (sw_yaml_want_map(&r->y, n, path, keys) < 0) {
		free(path);
		return;
	}
	sw_yaml_get_strv(&inf->modules, &inf->nmodules, &r->y, n, path, "modules", 0);
	sw_yaml_get_str(&inf->var_file, &r->y, n, path, "var_file", 0);
	node_t *vars = sw_yaml_get(n, "vars");
	if (vars) {
		char *vp = sw_yaml_path(path, "vars");
		if (sw_yaml_want_map(&r->y, vars, vp, NULL) == 0) {
			inf->vars = sw_calloc(vars->n ? vars->n : 1, sizeof(char *));
			for (size_t i = 0; i < vars->n; i++) {
				node_t *k = vars->items[2 * i], *v = vars->items[2 * i + 1];
				if (k->type != SW_YAML_SCALAR)
					continue;
				if (v->type != SW_YAML_SCALAR) {
					sw_yaml_error(&r->y, v, vp,
						      "%s: expected a string or number, found %s",
					    k->value, sw_yaml_describe(v));
					continue;
				}
				inf->vars[inf->nvars++] = sw_asprintf("%s=%s", k->value, v->value);
			}
		}
		free(vp);
	}
	node_t *heal = sw_yaml_get(n, "heal");
	if (heal) {
		char *v = NULL;
		sw_yaml_get_str(&v, &r->y, n, path, "heal", 0);
		if (v && !strcmp(v, "auto"))
			inf->heal = SW_HEAL_AUTO;
		else if (v && !strcmp(v, "report"))
			inf->heal = SW_HEAL_REPORT;
		else if (v)
			sw_yaml_error(&r->y, heal, path,
				      "heal: expected auto or report, found %s", v);
		free(v);
	}
	get_duration(r, n, path, "drift_interval", &inf->drift_interval_s);
	get_duration(r, n, path, "timeout", &inf->timeout_s);
	free(path);
}

const char *sw_json_pointer_problem(const char *p)
{
	if (!p)
		return "missing";
	if (*p && *p != '/')
		return "a JSON pointer starts with /";
	for (; *p; p++)
		if (*p == '~' && p[1] != '0' && p[1] != '1')
			return "~ must be followed by 0 (~) or 1 (/)";
	return NULL;
}

/* environments[].ignore_differences: [{group, kind, name, namespace, json_pointers}] */
static void read_ignore(struct reader *r, node_t *n, const char *path, struct sw_cfg_env *e)
{
	static const char *const keys[] = { "group", "kind", "name", "namespace", "json_pointers",
		NULL };
	char *lp = sw_yaml_path(path, "ignore_differences");
	if (n->type != SW_YAML_SEQ) {
		sw_yaml_error(&r->y, n, lp, "expected a list, found %s", sw_yaml_describe(n));
		free(lp);
		return;
	}
	e->ignore = sw_calloc(n->n ? n->n : 1, sizeof(*e->ignore));
	for (size_t i = 0; i < n->n; i++) {
		char ip[96];
		node_t *m = n->items[i], **at = NULL;
		struct sw_cfg_ignore *g = &e->ignore[e->nignore++];
		snprintf(ip, sizeof(ip), "%s[%zu]", lp, i);
		if (sw_yaml_want_map(&r->y, m, ip, keys) < 0)
			continue;
		sw_yaml_get_str(&g->group, &r->y, m, ip, "group", 0);
		sw_yaml_get_str(&g->kind, &r->y, m, ip, "kind", SW_YAML_REQUIRED);
		sw_yaml_get_str(&g->name, &r->y, m, ip, "name", 0);
		sw_yaml_get_str(&g->ns, &r->y, m, ip, "namespace", 0);
		if (!g->group)
			g->group = sw_strdup("");
		node_t *jp = sw_yaml_get(m, "json_pointers");
		char *pp = sw_yaml_path(ip, "json_pointers");
		if (!jp)
			sw_yaml_error(&r->y, m, pp, "missing");
		else
			g->npointers = sw_yaml_want_strv(&g->pointers, &at, &r->y, jp, pp,
							 SW_YAML_NONEMPTY);
		for (size_t k = 0; k < g->npointers; k++) {
			const char *why = sw_json_pointer_problem(g->pointers[k]);
			if (why)
				sw_yaml_error(&r->y, at[k], pp, "'%s' is not a JSON pointer: %s",
					      g->pointers[k], why);
		}
		free(at);
		free(pp);
	}
	free(lp);
}

static void read_envs(struct reader *r, node_t *n, struct sw_config *c)
{
	static const char *const keys[] = { "name", "repository", "branch", "cluster", "manifests",
		"infra", "self_heal", "prune", "allow_empty_prune", "rollback_on_failure",
		"health_timeout", "resync_interval", "slack_channel", "secrets", "acceptance",
		"deployers", "cost_tag", "ignore_differences", "after", "parallel", NULL };
	static const char *const cluster_keys[] = { "kubeconfig", "context", "namespace", NULL };
	if (n->type != SW_YAML_SEQ) {
		sw_yaml_error(&r->y, n, "environments",
			      "expected a list, found %s", sw_yaml_describe(n));
		return;
	}
	c->envs = sw_calloc(n->n ? n->n : 1, sizeof(*c->envs));
	for (size_t i = 0; i < n->n; i++) {
		char path[64];
		node_t *m = n->items[i];
		struct sw_cfg_env *e = &c->envs[c->nenvs++];
		snprintf(path, sizeof(path), "environments[%zu]", i);
		e->self_heal = 1;
		e->prune = 1;
		e->rollback_on_failure = 1;
		e->health_timeout_s = 300;
		e->resync_interval_s = 180;
		e->namespace = sw_strdup("default");
		e->infra.heal = SW_HEAL_REPORT;
		e->infra.drift_interval_s = 1800;
		e->infra.timeout_s = 1800;
		if (sw_yaml_want_map(&r->y, m, path, keys) < 0)
			continue;
		if (sw_yaml_get_str(&e->name, &r->y, m, path, "name", SW_YAML_REQUIRED) == 0 && e->name) {
			for (const char *p = e->name; *p; p++)
				if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_')) {
					sw_yaml_error(&r->y, sw_yaml_get(m, "name"), path,
					    "name may hold letters, digits, - and _ only, found %s", e->name);
					break;
				}
			for (size_t j = 0; j + 1 < c->nenvs; j++)
				if (c->envs[j].name && !strcmp(c->envs[j].name, e->name))
					sw_yaml_error(&r->y, sw_yaml_get(m, "name"), path,
					    "environment %s is defined twice", e->name);
		}
		sw_yaml_get_str(&e->repo, &r->y, m, path, "repository", 0);
		sw_yaml_get_str(&e->branch, &r->y, m, path, "branch", SW_YAML_REQUIRED);
		node_t *cl = sw_yaml_get(m, "cluster");
		if (cl && cl->type == SW_YAML_SCALAR) {
			if (!strcmp(cl->value, "in-cluster"))
				e->in_cluster = 1;
			else
				sw_yaml_error(&r->y, cl, path, "cluster: expected in-cluster or a "
					      "mapping with kubeconfig, found %s", cl->value);
		} else if (cl) {
			char *cp = sw_yaml_path(path, "cluster");
			if (sw_yaml_want_map(&r->y, cl, cp, cluster_keys) == 0) {
				sw_yaml_get_str(&e->kubeconfig, &r->y, cl, cp, "kubeconfig", SW_YAML_REQUIRED);
				make_abs(r, &e->kubeconfig);
				sw_yaml_get_str(&e->context, &r->y, cl, cp, "context", 0);
				sw_yaml_get_str(&e->namespace, &r->y, cl, cp, "namespace", 0);
			}
			free(cp);
		}
		sw_yaml_get_strv(&e->manifests, &e->nmanifests, &r->y, m, path, "manifests", 0);
		node_t *inf = sw_yaml_get(m, "infra");
		if (inf)
			read_infra(r, inf, path, &e->infra);
		sw_yaml_get_bool(&e->self_heal, &r->y, m, path, "self_heal", 0);
		sw_yaml_get_bool(&e->prune, &r->y, m, path, "prune", 0);
		sw_yaml_get_bool(&e->allow_empty_prune, &r->y, m, path, "allow_empty_prune", 0);
		sw_yaml_get_bool(&e->rollback_on_failure, &r->y, m, path, "rollback_on_failure", 0);
		get_duration(r, m, path, "health_timeout", &e->health_timeout_s);
		get_duration(r, m, path, "resync_interval", &e->resync_interval_s);
		sw_yaml_get_str(&e->slack_channel, &r->y, m, path, "slack_channel", 0);
		sw_yaml_get_str(&e->cost_tag, &r->y, m, path, "cost_tag", 0);
		sw_yaml_get_str(&e->after, &r->y, m, path, "after", 0);
		sw_yaml_get_bool(&e->parallel, &r->y, m, path, "parallel", 0);
		if (sw_yaml_get(m, "ignore_differences"))
			read_ignore(r, sw_yaml_get(m, "ignore_differences"), path, e);
		read_env_scoped(r, m, path, e);
		read_principals(r, m, path, "deployers", &e->deployers, &e->ndeployers,
				&e->has_deployers);
		if (e->nmanifests && !sw_cfg_env_has_cluster(e))
			sw_yaml_error(&r->y, m, path,
				      "manifests are listed but cluster.kubeconfig is not set");
	}
}

/* Several environments on one branch: `after` names one of them, `parallel`
 * and `after` exclude each other, and no chain of predecessors loops. */
static void check_order(struct reader *r, node_t *envs, struct sw_config *c)
{
	for (size_t i = 0; i < c->nenvs; i++) {
		struct sw_cfg_env *e = &c->envs[i];
		node_t *m = envs && envs->type == SW_YAML_SEQ && i < envs->n ? envs->items[i] : NULL;
		char path[64];
		snprintf(path, sizeof(path), "environments[%zu]", i);
		if (!e->after)
			continue;
		const struct sw_cfg_env *a = sw_config_env(c, e->after);
		node_t *at = m ? sw_yaml_get(m, "after") : NULL;
		if (!a)
			sw_yaml_error(&r->y, at, path, "after: no environment is named %s", e->after);
		else if (a == e)
			sw_yaml_error(&r->y, at, path, "after: an environment cannot follow itself");
		else if (!a->repo || !e->repo || strcasecmp(a->repo, e->repo) || !a->branch ||
			 !e->branch || strcmp(a->branch, e->branch))
			sw_yaml_error(&r->y, at, path, "after: %s deploys %s of %s, not %s of %s: a "
				      "promotion follows an environment of the same branch", a->name,
				      a->branch ? a->branch : "?", a->repo ? a->repo : "?",
				      e->branch ? e->branch : "?", e->repo ? e->repo : "?");
		if (e->parallel)
			sw_yaml_error(&r->y, m ? sw_yaml_get(m, "parallel") : NULL, path,
				      "parallel and after exclude each other");
	}
	for (size_t i = 0; i < c->nenvs; i++) {
		const struct sw_cfg_env *p = &c->envs[i];
		size_t steps = 0;
		while ((p = sw_config_env_before(c, p)) && steps <= c->nenvs)
			steps++;
		if (steps > c->nenvs) {
			sw_yaml_error(&r->y, envs, "environments", "the environments of branch %s "
				      "follow each other in a circle (after:)", c->envs[i].branch);
			break;
		}
	}
}

/* Cross-section checks, once every section is read. */
static void check_links(struct reader *r, node_t *root, struct sw_config *c)
{
	node_t *envs = sw_yaml_get(root, "environments");
	for (size_t i = 0; i < c->nenvs; i++) {
		struct sw_cfg_env *e = &c->envs[i];
		char path[64];
		node_t *m = envs && envs->type == SW_YAML_SEQ && i < envs->n ? envs->items[i] : root;
		snprintf(path, sizeof(path), "environments[%zu]", i);
		if (!e->repo) {
			if (c->nrepos == 1 && c->repos[0].name)
				e->repo = sw_strdup(c->repos[0].name);
			else if (c->nrepos > 1)
				sw_yaml_error(&r->y, m, path,
					      "repository: missing (required when several repositories are configured)");
			else
				sw_yaml_error(&r->y, m, path,
					      "repository: no repositories are configured");
		} else if (!sw_config_repo(c, e->repo)) {
			sw_yaml_error(&r->y, sw_yaml_get(m, "repository"), path,
			    "repository %s is not in repositories", e->repo);
		}
	}
	check_order(r, envs, c);
	for (size_t i = 0; i < c->nrepos; i++)
		if (!c->repos[i].token.value && c->github_token.value) {
			c->repos[i].token.value = sw_strdup(c->github_token.value);
			c->repos[i].token.source = sw_strdup(c->github_token.source);
		}
	if (!c->data_dir)
		sw_yaml_error(&r->y, sw_yaml_get(root, "server") ? sw_yaml_get(root, "server") : root,
			      "server.data_dir", "missing (expected a directory path)");
	if (!!c->tls_cert != !!c->tls_key)
		sw_yaml_error(&r->y, sw_yaml_get(root, "server"),
			      "server.tls", "give both cert and key");
	if (c->read_requires_token && !c->api_token.value)
		sw_yaml_error(&r->y, sw_yaml_get(root, "server"), "server.read_access",
		    "token access needs server.api_token");
}

static void defaults(struct sw_config *c)
{
	c->listen_host = sw_strdup("127.0.0.1");
	c->listen_port = 8080;
	c->log_level = sw_strdup("info");
	c->max_concurrent_runs = 4;
	c->aws.pricing = 1;
	c->history_limit = 50;
	c->max_header_size = 64 * 1024;
	c->max_uri_size = 8 * 1024;
	c->read_timeout_s = 10;
	c->replay_window_s = 24 * 3600;
	c->github_api_url = sw_strdup("https://api.github.com");
	c->oauth_url = sw_strdup("https://github.com");
	c->slack_api_url = sw_strdup("https://slack.com/api");
	c->runner_backend = sw_strdup("docker");
	c->docker_socket = sw_strdup("/var/run/docker.sock");
	c->runner_network = sw_strdup("bridge");
	c->runner_cap_add = sw_calloc(7, sizeof(char *));
	for (const char *const *k = (const char *const[]){ "CHOWN", "DAC_OVERRIDE", "FOWNER",
	     "FSETID", "SETGID", "SETUID", NULL }; *k; k++)
		c->runner_cap_add[c->nrunner_cap_add++] = sw_strdup(*k);
	c->runner_pids = 1024;
	c->runner_pr_network = sw_strdup("none");
	c->step_timeout_s = 1800;
	c->notify_give_up_s = 86400;
	c->retention = (struct sw_cfg_retention){
		.interval_s = 3600, .batch = 500,
		.deliveries_age_s = 30 * 86400, .logs_age_s = 90 * 86400,
		.runs_age_s = 365 * 86400, .drift_age_s = 90 * 86400, .outbox_age_s = 30 * 86400,
		.audit_age_s = 365 * 86400,
	};
}

int sw_config_load(struct sw_config **out, const char *path)
{
	static const char *const keys[] = { "server", "github", "slack", "runner", "terraform",
		"secrets", "repositories", "environments", "retention", "access", "aws", "cost", NULL };
	struct reader r = { SW_YAML_READER_INIT(path), NULL };
	struct sw_yaml_stream *ys = NULL;
	struct sw_config *c;
	node_t *root;
	int rc;

	*out = NULL;
	if ((rc = sw_yaml_parse_file(&ys, path)) < 0)
		return rc == SW_EINVALID ? rc : sw_error_prefix("config");
	if (ys->ndocs != 1 || !ys->docs[0].root) {
		int line = ys->ndocs > 1 ? ys->docs[1].start.line : 1;
		sw_yaml_free(ys);
		return sw_error_setc(SW_EINVALID, "%s:%d:1: expected exactly one YAML document holding a mapping",
				     path, line);
	}
	root = ys->docs[0].root;
	c = sw_calloc(1, sizeof(*c));
	c->file = sw_strdup(path);
	defaults(c);
	{
		char *slash = strrchr(path, '/');
		if (slash)
			r.dir = sw_strndup(path, (size_t)(slash - path) + (slash == path));
		else
			r.dir = get_current_dir_name();
		if (!r.dir)
			r.dir = sw_strdup(".");
		if (r.dir[0] != '/') {
			char *cwd = get_current_dir_name();
			char *abs = sw_asprintf("%s/%s", cwd ? cwd : ".", r.dir);
			free(cwd);
			free(r.dir);
			r.dir = abs;
		}
	}

	if (sw_yaml_want_map(&r.y, root, "(top level)", keys) == 0) {
		node_t *n;
		if ((n = sw_yaml_get(root, "server")))
			read_server(&r, n, c);
		if ((n = sw_yaml_get(root, "github")))
			read_github(&r, n, c);
		if ((n = sw_yaml_get(root, "slack")))
			read_slack(&r, n, c);
		if ((n = sw_yaml_get(root, "runner")))
			read_runner(&r, n, c);
		if ((n = sw_yaml_get(root, "terraform")))
			read_terraform(&r, n, c);
		if ((n = sw_yaml_get(root, "retention")))
			read_retention(&r, n, c);
		if ((n = sw_yaml_get(root, "access")))
			read_access(&r, n, c);
		if ((n = sw_yaml_get(root, "aws")))
			read_aws(&r, n, c);
		if ((n = sw_yaml_get(root, "cost")))
			read_cost(&r, n, c);
		if ((n = sw_yaml_get(root, "secrets")))
			read_secrets(&r, n, c);
		if ((n = sw_yaml_get(root, "repositories")))
			read_repos(&r, n, c);
		if ((n = sw_yaml_get(root, "environments")))
			read_envs(&r, n, c);
		check_links(&r, root, c);
		check_secret_links(&r, root, c);
	}
	if (!c->public_url)
		c->public_url = sw_asprintf("http://%s:%d", c->listen_host, c->listen_port);

	sw_yaml_free(ys);
	free(r.dir);
	if ((rc = sw_yaml_reader_done(&r.y)) < 0) {
		sw_config_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

static void secret_release(struct sw_secret *s)
{
	if (s->value) {
		/* wipe before free: secrets should not linger in freed memory */
		memset(s->value, 0, strlen(s->value));
		free(s->value);
	}
	free(s->source);
}

static void secrets_release(struct sw_cfg_secret *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		secret_release(&v[i].secret);
		sw_strv_freen(v[i].branches, v[i].nbranches);
		sw_strv_freen(v[i].environments, v[i].nenvironments);
		sw_strv_freen(v[i].repositories, v[i].nrepositories);
	}
	free(v);
}

void sw_config_free(struct sw_config *c)
{
	if (!c)
		return;
	free(c->file);
	free(c->listen_host);
	free(c->public_url);
	free(c->data_dir);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->log_level);
	secret_release(&c->api_token);
	free(c->trusted_proxies);
	free(c->github_api_url);
	secret_release(&c->webhook_secret);
	secret_release(&c->github_token);
	free(c->tf_cli_config);
	free(c->aws.region);
	free(c->aws.profile);
	free(c->aws.role_arn);
	free(c->cost.timezone);
	free(c->cost.channel);
	free(c->cost.tag);
	free(c->github_app.id);
	secret_release(&c->github_app.private_key);
	free(c->oauth_client_id);
	secret_release(&c->oauth_client_secret);
	free(c->oauth_url);
	secret_release(&c->slack_webhook_url);
	secret_release(&c->slack_bot_token);
	free(c->slack_channel);
	free(c->slack_api_url);
	free(c->runner_backend);
	free(c->docker_socket);
	free(c->runner_network);
	sw_strv_freen(c->runner_cap_add, c->nrunner_cap_add);
	free(c->runner_user);
	free(c->runner_pr_network);
	sw_strv_freen(c->runner_pr_network_repos, c->nrunner_pr_network_repos);
	free(c->tf_image);
	sw_strv_freen(c->tf_mounts, c->ntf_mounts);
	secrets_release(c->secrets, c->nsecrets);
	for (size_t i = 0; i < c->nrepos; i++) {
		free(c->repos[i].name);
		free(c->repos[i].url);
		secret_release(&c->repos[i].token);
		free(c->repos[i].ssh_key);
	}
	free(c->repos);
	for (size_t i = 0; i < c->nenvs; i++) {
		struct sw_cfg_env *e = &c->envs[i];
		free(e->name);
		free(e->repo);
		free(e->branch);
		free(e->kubeconfig);
		free(e->context);
		free(e->namespace);
		sw_strv_freen(e->manifests, e->nmanifests);
		sw_strv_freen(e->infra.modules, e->infra.nmodules);
		free(e->infra.var_file);
		sw_strv_freen(e->infra.vars, e->infra.nvars);
		free(e->slack_channel);
		free(e->cost_tag);
		free(e->after);
		for (size_t k = 0; k < e->nignore; k++) {
			free(e->ignore[k].group);
			free(e->ignore[k].kind);
			free(e->ignore[k].name);
			free(e->ignore[k].ns);
			sw_strv_free(e->ignore[k].pointers);
		}
		free(e->ignore);
		secrets_release(e->secrets, e->nsecrets);
		sw_strv_freen(e->deployers, e->ndeployers);
	}
	free(c->envs);
	sw_strv_freen(c->access.viewers, c->access.nviewers);
	sw_strv_freen(c->access.deployers, c->access.ndeployers);
	sw_strv_freen(c->access.admins, c->access.nadmins);
	free(c);
}

int sw_config_github_auth(const struct sw_config *c)
{
	return c->github_token.value || c->github_app.id;
}

const struct sw_cfg_env *sw_config_env(const struct sw_config *c, const char *name)
{
	for (size_t i = 0; i < c->nenvs; i++)
		if (c->envs[i].name && !strcmp(c->envs[i].name, name))
			return &c->envs[i];
	return NULL;
}

const struct sw_cfg_repo *sw_config_repo(const struct sw_config *c, const char *name)
{
	for (size_t i = 0; i < c->nrepos; i++)
		if (c->repos[i].name && !strcasecmp(c->repos[i].name, name))
			return &c->repos[i];
	return NULL;
}

static int same_branch(const struct sw_cfg_env *a, const struct sw_cfg_env *b)
{
	return a->repo && b->repo && a->branch && b->branch && !strcasecmp(a->repo, b->repo) &&
	       !strcmp(a->branch, b->branch);
}

const struct sw_cfg_env *sw_config_env_for_branch(const struct sw_config *c, const char *repo,
						  const char *branch)
{
	for (size_t i = 0; i < c->nenvs; i++) {
		const struct sw_cfg_env *e = &c->envs[i];
		if (e->repo && e->branch && !strcasecmp(e->repo, repo) && !strcmp(e->branch, branch) &&
		    !sw_config_env_before(c, e))
			return e;
	}
	return NULL;
}

const struct sw_cfg_env *sw_config_env_before(const struct sw_config *c,
					      const struct sw_cfg_env *e)
{
	if (e->after)
		return sw_config_env(c, e->after);
	if (e->parallel)
		return NULL;
	for (size_t i = (size_t)(e - c->envs); i-- > 0;)
		if (same_branch(&c->envs[i], e) && !c->envs[i].after)
			return &c->envs[i];
	return NULL;
}

const char *sw_config_secret(const struct sw_config *c, const char *name)
{
	for (size_t i = 0; i < c->nsecrets; i++)
		if (!strcmp(c->secrets[i].name, name))
			return c->secrets[i].secret.value;
	return NULL;
}

int64_t sw_parse_duration(const char *s)
{
	int64_t total = 0;
	const char *p = s;
	if (!s || !*s)
		return -1;
	while (*p) {
		char *end;
		if (!isdigit((unsigned char)*p))
			return -1;
		long long v = strtoll(p, &end, 10);
		if (v < 0 || v > 100000000)
			return -1;
		p = end;
		switch (*p) {
		case '\0': total += v; return p == s ? -1 : total;  /* bare seconds */
		case 's': total += v; break;
		case 'm': total += v * 60; break;
		case 'h': total += v * 3600; break;
		case 'd': total += v * 86400; break;
		default: return -1;
		}
		p++;
	}
	return total;
}

int64_t sw_parse_size(const char *s)
{
	char *end;
	if (!s || !isdigit((unsigned char)*s))
		return -1;
	long long v = strtoll(s, &end, 10);
	int64_t mul = 1;
	switch (tolower((unsigned char)*end)) {
	case '\0': break;
	case 'k': mul = 1024; end++; break;
	case 'm': mul = 1024 * 1024; end++; break;
	case 'g': mul = 1024LL * 1024 * 1024; end++; break;
	default: return -1;
	}
	if ((*end == 'b' || *end == 'B' || *end == 'i') && mul > 1)
		end++;
	if (*end == 'B')
		end++;
	if (*end || v < 0 || v > INT64_MAX / mul)
		return -1;
	return v * mul;
}
