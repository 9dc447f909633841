/*
 * kubeconfig.c - read a kubeconfig and pick one context (see kube.h).
 *
 * Walks the located YAML tree directly rather than its JSON form, so every
 * complaint can point at the node (file:line:col). Only what a client needs
 * is read; unknown keys (extensions, preferences, proxy-url) are ignored, as
 * kubectl ignores what it does not use.
 */
#include "kube/kube.h"

#include <stdlib.h>
#include <string.h>

#include "lib/base64.h"
#include "lib/buf.h"
#include "lib/strv.h"
#include "lib/yaml.h"
#include "lib/yamlschema.h"

struct kc {
	const struct sw_yaml_stream *s;
	const char *file;        /* for messages */
	char *dir;               /* for relative paths, with trailing '/' ("" for cwd) */
	struct sw_yaml_reader r; /* the first problem ends the reading */
};

/* The reader's messages into the error slot: SW_EINVALID. */
static int fail(struct kc *c)
{
	return sw_yaml_reader_done(&c->r);
}

static int at(struct kc *c, const struct sw_yaml_node *n, const char *fmt, ...) SW_PRINTF(3, 4);

static int at(struct kc *c, const struct sw_yaml_node *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sw_yaml_verror(&c->r, n, NULL, fmt, ap);
	va_end(ap);
	return fail(c);
}

/*
 * A mapping; its keys are not checked against a list (kubectl ignores what
 * it does not use, and so does this) but a key written twice is an error.
 */
static int want_map(struct kc *c, const struct sw_yaml_node *n, const char *where)
{
	sw_yaml_want_map(&c->r, n, where, NULL);
	return c->r.nerrors ? fail(c) : 0;
}

/* A string field: absent or null leaves *out NULL. */
static int get_str(struct kc *c, const struct sw_yaml_node *map, const char *key,
		   const char *where, char **out)
{
	*out = NULL;
	return sw_yaml_get_str(out, &c->r, map, where, key, SW_YAML_NULL_ABSENT) < 0 ? fail(c) : 0;
}

static int get_bool(struct kc *c, const struct sw_yaml_node *map, const char *key,
		    const char *where, int *out)
{
	*out = 0;
	return sw_yaml_get_bool(out, &c->r, map, where, key, SW_YAML_NULL_ABSENT) < 0 ? fail(c) : 0;
}

static char *resolve_path(struct kc *c, const char *p)
{
	if (p[0] == '/')
		return sw_strdup(p);
	return sw_asprintf("%s%s", c->dir, p);
}

/*
 * PEM from `<key>-data` (base64) or `<key>` (a file). *out stays NULL when
 * neither is set.
 */
static int get_pem(struct kc *c, const struct sw_yaml_node *map, const char *key,
		   const char *where, char **out)
{
	char datakey[64], *v = NULL, *path;
	const struct sw_yaml_node *n;
	struct sw_buf b = SW_BUF_INIT;
	int rc;

	*out = NULL;
	snprintf(datakey, sizeof(datakey), "%s-data", key);
	if ((rc = get_str(c, map, datakey, where, &v)) < 0)
		return rc;
	if (v) {
		n = sw_yaml_get(map, datakey);
		/* either alphabet, padding optional, white space anywhere */
		rc = sw_base64_decode(&b, v, strlen(v), SW_BASE64_LOOSE);
		free(v);
		if (rc < 0) {
			sw_buf_release(&b);
			return at(c, n, "%s.%s: not valid base64 (%s)", where, datakey,
				  sw_error_last());
		}
		*out = sw_buf_detach(&b, NULL);
		return 0;
	}
	if ((rc = get_str(c, map, key, where, &v)) < 0 || !v)
		return rc;
	n = sw_yaml_get(map, key);
	path = resolve_path(c, v);
	free(v);
	if (sw_buf_read_file(&b, path) < 0) {
		rc = at(c, n, "%s.%s: %s", where, key, sw_error_last());
		free(path);
		return rc;
	}
	free(path);
	*out = sw_buf_detach(&b, NULL);
	return 0;
}

/*
 * Find the item of sequence `seqkey` whose `name` is `name`; *out is its
 * `inner` mapping ("cluster", "user", "context"). `where` receives
 * "clusters[2].cluster" for messages.
 */
static int find_named(struct kc *c, const struct sw_yaml_node *root, const char *seqkey,
		      const char *inner, const char *what, const char *name,
		      const struct sw_yaml_node **out, struct sw_buf *where)
{
	const struct sw_yaml_node *seq = sw_yaml_get(root, seqkey);
	int rc;

	*out = NULL;
	if (!sw_yaml_is_null(seq) && seq->type != SW_YAML_SEQ)
		return at(c, seq, "%s: expected a list, found %s", seqkey, sw_yaml_describe(seq));
	for (size_t i = 0; seq && seq->type == SW_YAML_SEQ && i < seq->n; i++) {
		const struct sw_yaml_node *it = seq->items[i], *nm, *in;
		if (it->type != SW_YAML_MAP)
			return at(c, it, "%s[%zu]: expected a mapping", seqkey, i);
		sw_buf_reset(where);
		sw_buf_addf(where, "%s[%zu]", seqkey, i);
		if ((rc = want_map(c, it, where->ptr)) < 0)
			return rc;
		nm = sw_yaml_get(it, "name");
		if (!nm || nm->type != SW_YAML_SCALAR)
			return at(c, it, "%s[%zu]: missing name", seqkey, i);
		if (strcmp(nm->value, name) != 0)
			continue;
		in = sw_yaml_get(it, inner);
		if (sw_yaml_is_null(in))
			return at(c, it, "%s[%zu] (%s): missing %s", seqkey, i, name,
				  inner);
		if (in->type != SW_YAML_MAP)
			return at(c, in, "%s[%zu].%s: expected a mapping", seqkey, i,
				  inner);
		sw_buf_addf(where, ".%s", inner);
		if ((rc = want_map(c, in, where->ptr)) < 0)
			return rc;
		*out = in;
		return 0;
	}
	return sw_error_setc(SW_ENOTFOUND, "%s %s not found in %s", what, name, c->file);
}

static void exec_free(struct sw_kube_exec *e)
{
	if (!e)
		return;
	free(e->api_version);
	free(e->command);
	sw_strv_free(e->args);
	sw_strv_free(e->env);
	free(e->install_hint);
	free(e);
}

static int parse_exec(struct kc *c, const struct sw_yaml_node *n, const char *where,
		      struct sw_kube_exec **out)
{
	struct sw_kube_exec *e = sw_calloc(1, sizeof(*e));
	const struct sw_yaml_node *env;
	char *cmd = NULL, *p = sw_asprintf("%s.exec", where);
	int rc;

	*out = NULL;
	if ((rc = want_map(c, n, p)) < 0)
		goto fail;
	if ((rc = get_str(c, n, "apiVersion", where, &e->api_version)) < 0 ||
	    (rc = get_str(c, n, "command", where, &cmd)) < 0 ||
	    (rc = get_str(c, n, "installHint", where, &e->install_hint)) < 0 ||
	    (rc = get_bool(c, n, "provideClusterInfo", where, &e->provide_cluster_info)) < 0)
		goto fail;
	if (!e->api_version) {
		rc = at(c, n, "%s.exec: missing apiVersion", where);
		goto fail;
	}
	if (strcmp(e->api_version, "client.authentication.k8s.io/v1") != 0 &&
	    strcmp(e->api_version, "client.authentication.k8s.io/v1beta1") != 0) {
		rc = at(c, sw_yaml_get(n, "apiVersion"),
			"%s.exec.apiVersion: %s is not supported (use client.authentication.k8s.io/v1 or v1beta1)",
			where, e->api_version);
		goto fail;
	}
	if (!cmd || !*cmd) {
		rc = at(c, n, "%s.exec: missing command", where);
		goto fail;
	}
	/* client-go: a relative command with a '/' is relative to the file. */
	e->command = (cmd[0] != '/' && strchr(cmd, '/')) ? resolve_path(c, cmd) : sw_strdup(cmd);

	free(p);
	p = sw_asprintf("%s.exec.args", where);
	sw_yaml_want_strv(&e->args, NULL, &c->r, sw_yaml_get(n, "args"), p,
			  SW_YAML_LIST_ONLY | SW_YAML_NULL_ABSENT);
	if (c->r.nerrors) {
		rc = fail(c);
		goto fail;
	}
	if (!e->args)
		e->args = sw_calloc(1, sizeof(char *));

	env = sw_yaml_get(n, "env");
	if (!sw_yaml_is_null(env) && env->type != SW_YAML_SEQ) {
		rc = at(c, env, "%s.exec.env: expected a list", where);
		goto fail;
	}
	e->env = sw_calloc(sw_yaml_is_null(env) ? 1 : env->n + 1, sizeof(char *));
	for (size_t i = 0; !sw_yaml_is_null(env) && i < env->n; i++) {
		const struct sw_yaml_node *it = env->items[i];
		char *name = NULL, *value = NULL;
		if (it->type != SW_YAML_MAP) {
			rc = at(c, it, "%s.exec.env[%zu]: expected {name, value}", where, i);
			goto fail;
		}
		free(p);
		p = sw_asprintf("%s.exec.env[%zu]", where, i);
		if ((rc = want_map(c, it, p)) < 0)
			goto fail;
		if ((rc = get_str(c, it, "name", where, &name)) < 0 ||
		    (rc = get_str(c, it, "value", where, &value)) < 0) {
			free(name);
			goto fail;
		}
		if (!name || !*name || strchr(name, '=')) {
			free(name);
			free(value);
			rc = at(c, it, "%s.exec.env[%zu]: missing or bad name", where, i);
			goto fail;
		}
		e->env[i] = sw_asprintf("%s=%s", name, value ? value : "");
		free(name);
		free(value);
	}
	free(cmd);
	free(p);
	*out = e;
	return 0;
fail:
	free(cmd);
	free(p);
	exec_free(e);
	return rc;
}

void sw_kubeconfig_free(struct sw_kubeconfig *cfg)
{
	if (!cfg)
		return;
	free(cfg->path);
	free(cfg->context);
	free(cfg->cluster);
	free(cfg->user);
	free(cfg->ns);
	free(cfg->server);
	free(cfg->ca_pem);
	free(cfg->tls_server_name);
	free(cfg->token);
	free(cfg->token_file);
	free(cfg->cert_pem);
	free(cfg->key_pem);
	exec_free(cfg->exec);
	free(cfg);
}

static int parse_tree(struct sw_kubeconfig *cfg, struct kc *c, const char *want)
{
	const struct sw_yaml_node *root = c->s->ndocs ? c->s->docs[0].root : NULL;
	const struct sw_yaml_node *ctx, *cl, *us, *n;
	struct sw_buf where = SW_BUF_INIT;
	char *cur = NULL, *cluster = NULL, *user = NULL, *tf = NULL;
	int rc;

	if (!root || root->type != SW_YAML_MAP) {
		rc = at(c, root, "not a kubeconfig (expected a mapping)");
		goto done;
	}
	if ((rc = want_map(c, root, NULL)) < 0)
		goto done;
	if ((rc = get_str(c, root, "current-context", "", &cur)) < 0)
		goto done;
	if (want && *want)
		cfg->context = sw_strdup(want);
	else if (cur && *cur)
		cfg->context = sw_strdup(cur);
	else {
		rc = sw_error_setc(SW_ENOTFOUND, "no context chosen and no current-context in %s",
				   c->file);
		goto done;
	}

	if ((rc = find_named(c, root, "contexts", "context", "context", cfg->context, &ctx,
			     &where)) < 0)
		goto done;
	if ((rc = get_str(c, ctx, "cluster", where.ptr, &cluster)) < 0 ||
	    (rc = get_str(c, ctx, "user", where.ptr, &user)) < 0 ||
	    (rc = get_str(c, ctx, "namespace", where.ptr, &cfg->ns)) < 0)
		goto done;
	if (!cfg->ns || !*cfg->ns) {
		free(cfg->ns);
		cfg->ns = sw_strdup("default");
	}
	if (!cluster || !*cluster) {
		rc = at(c, ctx, "context %s names no cluster", cfg->context);
		goto done;
	}
	cfg->cluster = sw_strdup(cluster);

	if ((rc = find_named(c, root, "clusters", "cluster", "cluster", cluster, &cl, &where)) < 0) {
		sw_error_prefix("context %s", cfg->context);
		goto done;
	}
	if ((rc = get_str(c, cl, "server", where.ptr, &cfg->server)) < 0)
		goto done;
	if (!cfg->server || !*cfg->server) {
		rc = at(c, cl, "%s: missing server", where.ptr);
		goto done;
	}
	if (strncmp(cfg->server, "https://", 8) != 0 && strncmp(cfg->server, "http://", 7) != 0) {
		rc = at(c, sw_yaml_get(cl, "server"),
			"%s.server: %s is not an http(s) URL", where.ptr, cfg->server);
		goto done;
	}
	while (strlen(cfg->server) > 8 && cfg->server[strlen(cfg->server) - 1] == '/')
		cfg->server[strlen(cfg->server) - 1] = '\0';
	if ((rc = get_pem(c, cl, "certificate-authority", where.ptr, &cfg->ca_pem)) < 0 ||
	    (rc = get_bool(c, cl, "insecure-skip-tls-verify", where.ptr, &cfg->insecure)) < 0 ||
	    (rc = get_str(c, cl, "tls-server-name", where.ptr, &cfg->tls_server_name)) < 0)
		goto done;

	cfg->user = sw_strdup(user ? user : "");
	if (user && *user) {
		if ((rc = find_named(c, root, "users", "user", "user", user, &us, &where)) < 0) {
			sw_error_prefix("context %s", cfg->context);
			goto done;
		}
		if ((rc = get_str(c, us, "token", where.ptr, &cfg->token)) < 0 ||
		    (rc = get_str(c, us, "tokenFile", where.ptr, &tf)) < 0 ||
		    (rc = get_pem(c, us, "client-certificate", where.ptr, &cfg->cert_pem)) < 0 ||
		    (rc = get_pem(c, us, "client-key", where.ptr, &cfg->key_pem)) < 0)
			goto done;
		if (tf && *tf)
			cfg->token_file = resolve_path(c, tf);
		if (!cfg->cert_pem != !cfg->key_pem) {
			rc = at(c, us, "%s: client-certificate and client-key go together",
				where.ptr);
			goto done;
		}
		n = sw_yaml_get(us, "exec");
		if (!sw_yaml_is_null(n) && (rc = parse_exec(c, n, where.ptr, &cfg->exec)) < 0)
			goto done;
		if (!sw_yaml_is_null(sw_yaml_get(us, "auth-provider"))) {
			rc = at(c, sw_yaml_get(us, "auth-provider"),
				"%s.auth-provider: not supported (use an exec plugin)", where.ptr);
			goto done;
		}
	}
	rc = 0;
done:
	free(cur);
	free(cluster);
	free(user);
	free(tf);
	sw_buf_release(&where);
	return rc;
}

int sw_kubeconfig_parse(struct sw_kubeconfig **out, const char *name, const char *data,
			size_t len, const char *context)
{
	struct sw_yaml_stream *s = NULL;
	struct sw_kubeconfig *cfg;
	struct kc c;
	const char *slash;
	int rc;

	*out = NULL;
	if ((rc = sw_yaml_parse(&s, name, data, len)) < 0)
		return rc;
	cfg = sw_calloc(1, sizeof(*cfg));
	cfg->path = sw_strdup(name);
	c.s = s;
	c.file = name;
	c.r = (struct sw_yaml_reader)SW_YAML_READER_INIT(name);
	slash = strrchr(name, '/');
	c.dir = slash ? sw_strndup(name, (size_t)(slash - name) + 1) : sw_strdup("");
	rc = parse_tree(cfg, &c, context);
	free(c.dir);
	sw_yaml_free(s);
	if (rc < 0) {
		sw_kubeconfig_free(cfg);
		return rc;
	}
	*out = cfg;
	return 0;
}

int sw_kubeconfig_load(struct sw_kubeconfig **out, const char *path, const char *context)
{
	struct sw_buf b = SW_BUF_INIT;
	int rc;

	*out = NULL;
	if ((rc = sw_buf_read_file(&b, path)) < 0) {
		sw_error_prefix("kubeconfig");
		goto done;
	}
	rc = sw_kubeconfig_parse(out, path, b.ptr, b.len, context);
done:
	sw_buf_release(&b);
	return rc;
}

/* ---- in the cluster: the pod's service account -------------------------- */

int sw_kubeconfig_in_cluster(struct sw_kubeconfig **out)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	const char *dir = getenv("SLIPWAY_SERVICEACCOUNT_DIR");
	struct sw_buf ca = SW_BUF_INIT, ns = SW_BUF_INIT;
	struct sw_kubeconfig *kc;
	char *path;

	*out = NULL;
	if (!dir || !*dir)
		dir = SW_SERVICEACCOUNT_DIR;
	if (!host || !*host || !port || !*port)
		return sw_error_setc(SW_EINVALID, "in-cluster: KUBERNETES_SERVICE_HOST and "
				     "KUBERNETES_SERVICE_PORT are not set (is slipwayd running in a pod?)");
	path = sw_asprintf("%s/ca.crt", dir);
	if (sw_buf_read_file(&ca, path) < 0) {
		int rc = sw_error_setc(SW_ERR, "in-cluster: cannot read %s (is a service account "
				       "token mounted?)", path);
		free(path);
		sw_buf_release(&ca);
		return rc;
	}
	free(path);
	path = sw_asprintf("%s/namespace", dir);
	sw_buf_read_file(&ns, path);
	free(path);
	while (ns.len && (ns.ptr[ns.len - 1] == '\n' || ns.ptr[ns.len - 1] == ' '))
		ns.ptr[--ns.len] = 0;
	kc = sw_calloc(1, sizeof(*kc));
	kc->path = sw_strdup("in-cluster");
	kc->context = sw_strdup("in-cluster");
	kc->cluster = sw_strdup("in-cluster");
	kc->user = sw_strdup("service-account");
	kc->ns = sw_strdup(ns.len ? ns.ptr : "default");
	/* an IPv6 address goes in brackets */
	kc->server = strchr(host, ':') ? sw_asprintf("https://[%s]:%s", host, port)
		: sw_asprintf("https://%s:%s", host, port);
	kc->ca_pem = sw_buf_detach(&ca, NULL);
	kc->token_file = sw_asprintf("%s/token", dir);   /* re-read as it rotates */
	sw_buf_release(&ns);
	*out = kc;
	return 0;
}
