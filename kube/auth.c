/*
 * auth.c - credentials of the client: a bearer token (static, or a
 * tokenFile re-read every minute), client certificates, and exec plugins
 * (ExecCredential) run through lib/proc with their output parsed and
 * cached until it expires.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>


#include "kube/kube-int.h"
#include "kube/kube.h"
#include "lib/base64.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/proc.h"

extern char **environ;

/* ---- credentials ------------------------------------------------------ */

int kube_have_exec(const struct sw_kube *k)
{
	return k->cfg->exec != NULL;
}

/* Usable credentials right now? Reads tokenFile when due. */
int kube_cred_ready(struct sw_kube *k, char **err)
{
	*err = NULL;
	if (kube_have_exec(k)) {
		if (!k->cred_valid)
			return 0;
		if (k->cred_expiry_ms && sw_now_ms() >= k->cred_expiry_ms) {
			k->cred_valid = 0;
			log_debug("kube.exec.expired", "context=%s", sw_q(k->cfg->context));
			return 0;
		}
		return 1;
	}
	if (k->cfg->token_file &&
	    (!k->cred_valid || sw_mono_ms() - k->token_read_ms >= TOKEN_FILE_TTL_MS)) {
		struct sw_buf b = SW_BUF_INIT;
		/* A small local file: reading it is as quick as a syscall gets. */
		if (sw_buf_read_file(&b, k->cfg->token_file) < 0) {
			*err = sw_asprintf("tokenFile: %s", sw_error_last());
			sw_buf_release(&b);
			return 0;
		}
		while (b.len && isspace((unsigned char)b.ptr[b.len - 1]))
			sw_buf_truncate(&b, b.len - 1);
		free(k->bearer);
		k->bearer = sw_buf_detach(&b, NULL);
		k->cred_valid = 1;
		k->cred_gen++;
		k->token_read_ms = sw_mono_ms();
	}
	return 1;
}

static void exec_output(int stream, const char *p, size_t n, void *arg)
{
	struct sw_kube *k = arg;
	struct sw_buf *b = stream == SW_PROC_STDOUT ? &k->exec_out : &k->exec_err;
	size_t max = stream == SW_PROC_STDOUT ? EXEC_MAX_OUTPUT : 8192;
	if (b->len + n > max)
		n = b->len < max ? max - b->len : 0;
	sw_buf_add(b, p, n);
}

/* Wake every op waiting for credentials; with `err`, they fail with it. */
static void cred_wake(struct sw_kube *k, const char *err)
{
	for (struct sw_kube_op *op = k->ops; op; op = op->next) {
		if (op->state != ST_CRED)
			continue;
		if (err && !op->pending_error) {
			op->pending_error = sw_strdup(err);
			op->pending_code = SW_ERR;
		}
		kube_op_wake(op);
	}
}

/* Parse the plugin's ExecCredential; 0 or <0 with a message in *err. */
int sw_kube_exec_cred_parse(struct sw_kube_cred *out, const char *text, size_t len,
			    const char *api_version, char **err)
{
	json_error_t je;
	json_t *ec = json_loadb(text, len, 0, &je);
	const json_t *st;
	const char *av, *kind, *tok, *cert, *key, *exp;
	int64_t exp_ms = 0;
	int rc = SW_ERR;

	*err = NULL;
	memset(out, 0, sizeof(*out));
	if (!ec) {
		*err = sw_asprintf("output is not JSON: %s (line %d)", je.text, je.line);
		goto done;
	}
	av = kube_jstr(ec, "apiVersion");
	kind = kube_jstr(ec, "kind");
	if (!kind || strcmp(kind, "ExecCredential") != 0) {
		*err = sw_asprintf("output is not an ExecCredential (kind %s)", kind ? kind : "missing");
		goto done;
	}
	if (!av || strcmp(av, api_version) != 0) {
		*err = sw_asprintf("ExecCredential apiVersion %s, configured %s", av ? av : "missing",
				   api_version);
		goto done;
	}
	st = json_object_get(ec, "status");
	tok = kube_jstr(st, "token");
	cert = kube_jstr(st, "clientCertificateData");
	key = kube_jstr(st, "clientKeyData");
	exp = kube_jstr(st, "expirationTimestamp");
	if ((!tok || !*tok) && !(cert && *cert && key && *key)) {
		*err = sw_strdup("ExecCredential has neither status.token nor "
				 "status.clientCertificateData and clientKeyData");
		goto done;
	}
	if (!!(cert && *cert) != !!(key && *key)) {
		*err = sw_strdup("ExecCredential has only one of clientCertificateData and clientKeyData");
		goto done;
	}
	if (exp && *exp && sw_parse_rfc3339(exp, &exp_ms) < 0) {
		*err = sw_asprintf("ExecCredential expirationTimestamp %s is not RFC 3339", exp);
		goto done;
	}
	out->bearer = tok && *tok ? sw_strdup(tok) : NULL;
	out->cert_pem = cert && *cert ? sw_strdup(cert) : NULL;
	out->key_pem = key && *key ? sw_strdup(key) : NULL;
	out->expiry_ms = exp_ms;
	rc = 0;
done:
	json_decref(ec);
	return rc;
}

static int exec_parse(struct sw_kube *k, char **err)
{
	struct sw_kube_cred c;
	if (sw_kube_exec_cred_parse(&c, k->exec_out.ptr, k->exec_out.len,
				    k->cfg->exec->api_version, err) < 0)
		return SW_ERR;
	free(k->bearer);
	free(k->cert_pem);
	free(k->key_pem);
	k->bearer = c.bearer;
	k->cert_pem = c.cert_pem;
	k->key_pem = c.key_pem;
	k->cred_expiry_ms = c.expiry_ms;
	k->cred_valid = 1;
	k->cred_gen++;
	return 0;
}

static void exec_exited(const struct sw_proc_result *r, void *arg)
{
	struct sw_kube *k = arg;
	const struct sw_kube_exec *x = k->cfg->exec;
	struct sw_buf msg = SW_BUF_INIT;
	char *perr = NULL;

	k->exec = NULL;
	k->stats.exec_runs++;
	if (r->error) {
		sw_buf_addf(&msg, "exec plugin: %s", r->error_msg);
		if (x->install_hint)
			sw_buf_addf(&msg, " (%s)", x->install_hint);
	} else if (r->timed_out) {
		sw_buf_addf(&msg, "exec plugin %s: no answer within %ld ms", x->command,
			    k->exec_timeout_ms);
	} else if (!r->exited || r->exit_code != 0) {
		/* The last line of stderr usually says why. */
		while (k->exec_err.len && isspace((unsigned char)k->exec_err.ptr[k->exec_err.len - 1]))
			sw_buf_truncate(&k->exec_err, k->exec_err.len - 1);
		const char *last = strrchr(k->exec_err.ptr, '\n');
		last = last ? last + 1 : k->exec_err.ptr;
		if (r->exited)
			sw_buf_addf(&msg, "exec plugin %s exited with code %d", x->command, r->exit_code);
		else
			sw_buf_addf(&msg, "exec plugin %s killed by signal %d", x->command, r->signal);
		if (*last)
			sw_buf_addf(&msg, ": %s", last);
	} else if (exec_parse(k, &perr) < 0) {
		sw_buf_addf(&msg, "exec plugin %s: %s", x->command, perr);
	}
	free(perr);
	sw_buf_reset(&k->exec_out);
	sw_buf_reset(&k->exec_err);
	if (msg.len)
		log_warn("kube.exec.fail", "context=%s err=%s", sw_q(k->cfg->context), sw_q(msg.ptr));
	else
		log_debug("kube.exec.ok", "context=%s expiry_ms=%lld", sw_q(k->cfg->context),
			  (long long)k->cred_expiry_ms);
	cred_wake(k, msg.len ? msg.ptr : NULL);
	sw_buf_release(&msg);
}

/* KUBERNETES_EXEC_INFO: the ExecCredential the plugin is asked for. */
static char *exec_info(const struct sw_kube *k)
{
	const struct sw_kubeconfig *c = k->cfg;
	json_t *spec = json_pack("{s:b}", "interactive", 0);
	json_t *info;
	char *s;

	if (c->exec->provide_cluster_info) {
		json_t *cl = json_pack("{s:s}", "server", c->server);
		if (c->tls_server_name)
			json_object_set_new(cl, "tls-server-name", json_string(c->tls_server_name));
		if (c->insecure)
			json_object_set_new(cl, "insecure-skip-tls-verify", json_true());
		if (c->ca_pem) {
			struct sw_buf b = SW_BUF_INIT;
			sw_base64_encode(&b, c->ca_pem, strlen(c->ca_pem), 0);
			json_object_set_new(cl, "certificate-authority-data", json_string(b.ptr));
			sw_buf_release(&b);
		}
		json_object_set_new(spec, "cluster", cl);
	}
	info = json_pack("{s:s, s:s, s:o}", "apiVersion", c->exec->api_version, "kind",
			 "ExecCredential", "spec", spec);
	s = json_dumps(info, JSON_COMPACT);
	json_decref(info);
	return s;
}

int kube_exec_start(struct sw_kube *k, char **err)
{
	const struct sw_kube_exec *x = k->cfg->exec;
	struct sw_proc_opts o = SW_PROC_OPTS_INIT;
	const char **argv, **env;
	char *info, *info_var;
	size_t nargs = 0, nenv = 0, nx = 0, i, j;
	int rc;

	*err = NULL;
	if (k->exec)
		return 0;
	if (!k->procs) {
		*err = sw_strdup("exec plugin: the client has no process manager");
		return SW_ERR;
	}
	while (x->args[nargs])
		nargs++;
	while (environ && environ[nenv])
		nenv++;
	while (x->env[nx])
		nx++;
	argv = sw_calloc(nargs + 2, sizeof(*argv));
	argv[0] = x->command;
	for (i = 0; i < nargs; i++)
		argv[i + 1] = x->args[i];

	/* The daemon's environment, the plugin's env on top, then ours. */
	info = exec_info(k);
	info_var = sw_asprintf("KUBERNETES_EXEC_INFO=%s", info);
	env = sw_calloc(nenv + nx + 2, sizeof(*env));
	j = 0;
	for (i = 0; i < nenv; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t nl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		int overridden = nl == 20 && strncmp(environ[i], "KUBERNETES_EXEC_INFO", 20) == 0;
		for (size_t m = 0; !overridden && m < nx; m++)
			overridden = strncmp(x->env[m], environ[i], nl) == 0 && x->env[m][nl] == '=';
		if (!overridden)
			env[j++] = environ[i];
	}
	for (i = 0; i < nx; i++)
		env[j++] = x->env[i];
	env[j++] = info_var;
	env[j] = NULL;

	o.argv = argv;
	o.env = env;
	o.timeout_ms = k->exec_timeout_ms;
	o.on_output = exec_output;
	o.on_exit = exec_exited;
	o.arg = k;
	sw_buf_reset(&k->exec_out);
	sw_buf_reset(&k->exec_err);
	rc = sw_proc_spawn(k->procs, &o, &k->exec);
	if (rc < 0)
		*err = sw_asprintf("exec plugin %s: %s", x->command, sw_error_last());
	else
		log_debug("kube.exec.run", "context=%s command=%s", sw_q(k->cfg->context),
			  sw_q(x->command));
	free(argv);
	free(env);
	free(info);
	free(info_var);
	return rc;
}
