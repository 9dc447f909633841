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

#include "lib/buf.h"
#include "lib/yaml.h"

struct kc {
	const struct sw_yaml_stream *s;
	const char *file;        /* for messages */
	char *dir;               /* for relative paths, with trailing '/' ("" for cwd) */
};

static int at(const struct kc *c, const struct sw_yaml_node *n, int code, const char *fmt, ...)
	SW_PRINTF(4, 5);

static int at(const struct kc *c, const struct sw_yaml_node *n, int code, const char *fmt, ...)
{
	struct sw_buf b = SW_BUF_INIT;
	va_list ap;
	int line = n ? n->mark.line : 1, col = n ? n->mark.col : 1;

	va_start(ap, fmt);
	sw_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	sw_error_setc(code, "%s:%d:%d: %s", c->file, line, col, b.ptr);
	sw_buf_release(&b);
	return code;
}

static int is_null(const struct sw_yaml_node *n)
{
	struct sw_yaml_scalar sc;
	if (!n)
		return 1;
	if (n->type != SW_YAML_SCALAR)
		return 0;
	sw_yaml_resolve(n, &sc);
	return sc.kind == SW_YK_NULL;
}

/* A string field: absent or null leaves *out NULL. */
static int get_str(const struct kc *c, const struct sw_yaml_node *map, const char *key,
		   const char *where, char **out)
{
	const struct sw_yaml_node *n = sw_yaml_get(map, key);

	*out = NULL;
	if (is_null(n))
		return 0;
	if (n->type != SW_YAML_SCALAR)
		return at(c, n, SW_EINVALID, "%s.%s: expected a string, found a %s", where, key,
			  sw_yaml_type_name(n->type));
	*out = sw_strndup(n->value, n->len);
	return 0;
}

static int get_bool(const struct kc *c, const struct sw_yaml_node *map, const char *key,
		    const char *where, int *out)
{
	const struct sw_yaml_node *n = sw_yaml_get(map, key);
	struct sw_yaml_scalar sc;

	*out = 0;
	if (is_null(n))
		return 0;
	if (n->type == SW_YAML_SCALAR) {
		sw_yaml_resolve(n, &sc);
		if (sc.kind == SW_YK_BOOL) {
			*out = sc.b;
			return 0;
		}
	}
	return at(c, n, SW_EINVALID, "%s.%s: expected true or false", where, key);
}

static int b64val(int ch)
{
	if (ch >= 'A' && ch <= 'Z') return ch - 'A';
	if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9') return ch - '0' + 52;
	if (ch == '+' || ch == '-') return 62;
	if (ch == '/' || ch == '_') return 63;
	return -1;
}

/* Standard base64 (whitespace ignored, padding optional); NULL when invalid. */
static char *unbase64(const char *s, size_t len)
{
	char *out = sw_malloc(len * 3 / 4 + 4);
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0, pad = 0;

	for (size_t i = 0; i < len; i++) {
		int ch = (unsigned char)s[i], v;
		if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t')
			continue;
		if (ch == '=') {
			pad++;
			continue;
		}
		if (pad || (v = b64val(ch)) < 0) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	return out;
}

static char *resolve_path(const struct kc *c, const char *p)
{
	if (p[0] == '/')
		return sw_strdup(p);
	return sw_asprintf("%s%s", c->dir, p);
}

/*
 * PEM from `<key>-data` (base64) or `<key>` (a file). *out stays NULL when
 * neither is set.
 */
static int get_pem(const struct kc *c, const struct sw_yaml_node *map, const char *key,
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
		*out = unbase64(v, strlen(v));
		free(v);
		if (!*out)
			return at(c, n, SW_EINVALID, "%s.%s: not valid base64", where, datakey);
		return 0;
	}
	if ((rc = get_str(c, map, key, where, &v)) < 0 || !v)
		return rc;
	n = sw_yaml_get(map, key);
	path = resolve_path(c, v);
	free(v);
	if (sw_buf_read_file(&b, path) < 0) {
		rc = at(c, n, SW_ERR, "%s.%s: %s", where, key, sw_error_last());
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
static int find_named(const struct kc *c, const struct sw_yaml_node *root, const char *seqkey,
		      const char *inner, const char *what, const char *name,
		      const struct sw_yaml_node **out, struct sw_buf *where)
{
	const struct sw_yaml_node *seq = sw_yaml_get(root, seqkey);

	*out = NULL;
	if (!is_null(seq) && seq->type != SW_YAML_SEQ)
		return at(c, seq, SW_EINVALID, "%s: expected a list, found a %s", seqkey,
			  sw_yaml_type_name(seq->type));
	for (size_t i = 0; seq && seq->type == SW_YAML_SEQ && i < seq->n; i++) {
		const struct sw_yaml_node *it = seq->items[i], *nm, *in;
		if (it->type != SW_YAML_MAP)
			return at(c, it, SW_EINVALID, "%s[%zu]: expected a mapping", seqkey, i);
		nm = sw_yaml_get(it, "name");
		if (!nm || nm->type != SW_YAML_SCALAR)
			return at(c, it, SW_EINVALID, "%s[%zu]: missing name", seqkey, i);
		if (strcmp(nm->value, name) != 0)
			continue;
		in = sw_yaml_get(it, inner);
		if (is_null(in))
			return at(c, it, SW_EINVALID, "%s[%zu] (%s): missing %s", seqkey, i, name,
				  inner);
		if (in->type != SW_YAML_MAP)
			return at(c, in, SW_EINVALID, "%s[%zu].%s: expected a mapping", seqkey, i,
				  inner);
		sw_buf_reset(where);
		sw_buf_addf(where, "%s[%zu].%s", seqkey, i, inner);
		*out = in;
		return 0;
	}
	return sw_error_setc(SW_ENOTFOUND, "%s %s not found in %s", what, name, c->file);
}

static char **str_list_new(size_t n)
{
	return sw_calloc(n + 1, sizeof(char *));
}

static void str_list_free(char **l)
{
	for (size_t i = 0; l && l[i]; i++)
		free(l[i]);
	free(l);
}

static void exec_free(struct sw_kube_exec *e)
{
	if (!e)
		return;
	free(e->api_version);
	free(e->command);
	str_list_free(e->args);
	str_list_free(e->env);
	free(e->install_hint);
	free(e);
}

static int parse_exec(const struct kc *c, const struct sw_yaml_node *n, const char *where,
		      struct sw_kube_exec **out)
{
	struct sw_kube_exec *e = sw_calloc(1, sizeof(*e));
	const struct sw_yaml_node *args, *env;
	char *cmd = NULL;
	int rc;

	*out = NULL;
	if (n->type != SW_YAML_MAP) {
		rc = at(c, n, SW_EINVALID, "%s.exec: expected a mapping", where);
		goto fail;
	}
	if ((rc = get_str(c, n, "apiVersion", where, &e->api_version)) < 0 ||
	    (rc = get_str(c, n, "command", where, &cmd)) < 0 ||
	    (rc = get_str(c, n, "installHint", where, &e->install_hint)) < 0 ||
	    (rc = get_bool(c, n, "provideClusterInfo", where, &e->provide_cluster_info)) < 0)
		goto fail;
	if (!e->api_version) {
		rc = at(c, n, SW_EINVALID, "%s.exec: missing apiVersion", where);
		goto fail;
	}
	if (strcmp(e->api_version, "client.authentication.k8s.io/v1") != 0 &&
	    strcmp(e->api_version, "client.authentication.k8s.io/v1beta1") != 0) {
		rc = at(c, sw_yaml_get(n, "apiVersion"), SW_EINVALID,
			"%s.exec.apiVersion: %s is not supported (use client.authentication.k8s.io/v1 or v1beta1)",
			where, e->api_version);
		goto fail;
	}
	if (!cmd || !*cmd) {
		rc = at(c, n, SW_EINVALID, "%s.exec: missing command", where);
		goto fail;
	}
	/* client-go: a relative command with a '/' is relative to the file. */
	e->command = (cmd[0] != '/' && strchr(cmd, '/')) ? resolve_path(c, cmd) : sw_strdup(cmd);

	args = sw_yaml_get(n, "args");
	if (!is_null(args) && args->type != SW_YAML_SEQ) {
		rc = at(c, args, SW_EINVALID, "%s.exec.args: expected a list", where);
		goto fail;
	}
	e->args = str_list_new(is_null(args) ? 0 : args->n);
	for (size_t i = 0; !is_null(args) && i < args->n; i++) {
		if (args->items[i]->type != SW_YAML_SCALAR) {
			rc = at(c, args->items[i], SW_EINVALID, "%s.exec.args[%zu]: expected a string",
				where, i);
			goto fail;
		}
		e->args[i] = sw_strdup(args->items[i]->value);
	}

	env = sw_yaml_get(n, "env");
	if (!is_null(env) && env->type != SW_YAML_SEQ) {
		rc = at(c, env, SW_EINVALID, "%s.exec.env: expected a list", where);
		goto fail;
	}
	e->env = str_list_new(is_null(env) ? 0 : env->n);
	for (size_t i = 0; !is_null(env) && i < env->n; i++) {
		const struct sw_yaml_node *it = env->items[i];
		char *name = NULL, *value = NULL;
		if (it->type != SW_YAML_MAP) {
			rc = at(c, it, SW_EINVALID, "%s.exec.env[%zu]: expected {name, value}", where, i);
			goto fail;
		}
		if ((rc = get_str(c, it, "name", where, &name)) < 0 ||
		    (rc = get_str(c, it, "value", where, &value)) < 0) {
			free(name);
			goto fail;
		}
		if (!name || !*name || strchr(name, '=')) {
			free(name);
			free(value);
			rc = at(c, it, SW_EINVALID, "%s.exec.env[%zu]: missing or bad name", where, i);
			goto fail;
		}
		e->env[i] = sw_asprintf("%s=%s", name, value ? value : "");
		free(name);
		free(value);
	}
	free(cmd);
	*out = e;
	return 0;
fail:
	free(cmd);
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

static int parse_tree(struct sw_kubeconfig *cfg, const struct kc *c, const char *want)
{
	const struct sw_yaml_node *root = c->s->ndocs ? c->s->docs[0].root : NULL;
	const struct sw_yaml_node *ctx, *cl, *us, *n;
	struct sw_buf where = SW_BUF_INIT;
	char *cur = NULL, *cluster = NULL, *user = NULL, *tf = NULL;
	int rc;

	if (!root || root->type != SW_YAML_MAP) {
		rc = at(c, root, SW_EINVALID, "not a kubeconfig (expected a mapping)");
		goto done;
	}
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
		rc = at(c, ctx, SW_EINVALID, "context %s names no cluster", cfg->context);
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
		rc = at(c, cl, SW_EINVALID, "%s: missing server", where.ptr);
		goto done;
	}
	if (strncmp(cfg->server, "https://", 8) != 0 && strncmp(cfg->server, "http://", 7) != 0) {
		rc = at(c, sw_yaml_get(cl, "server"), SW_EINVALID,
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
			rc = at(c, us, SW_EINVALID, "%s: client-certificate and client-key go together",
				where.ptr);
			goto done;
		}
		n = sw_yaml_get(us, "exec");
		if (!is_null(n) && (rc = parse_exec(c, n, where.ptr, &cfg->exec)) < 0)
			goto done;
		if (!is_null(sw_yaml_get(us, "auth-provider"))) {
			rc = at(c, sw_yaml_get(us, "auth-provider"), SW_EINVALID,
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
