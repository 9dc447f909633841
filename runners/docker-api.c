/*
 * docker-api.c - the docker backend's requests to the engine (docker-int.h)
 * and what the runner does besides steps: import an image from a tar,
 * count or remove the containers an earlier slipwayd left (runner.h).
 */
#include "runners/docker-int.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "lib/clock.h"
#include "lib/error.h"

void docker_api_message(struct sw_buf *out, const struct sw_http_result *r)
{
	json_t *j;

	if (r->error) {
		sw_buf_adds(out, r->error_msg);
		return;
	}
	j = json_loadb(r->body->ptr, r->body->len, 0, NULL);
	if (j && json_is_string(json_object_get(j, "message"))) {
		sw_buf_addf(out, "status %ld: %s", r->status,
			    json_string_value(json_object_get(j, "message")));
	} else {
		size_t n = r->body->len;
		while (n && isspace((unsigned char)r->body->ptr[n - 1]))
			n--;
		sw_buf_addf(out, "status %ld: %.*s", r->status, (int)(n > 300 ? 300 : n),
			    r->body->ptr);
	}
	json_decref(j);
}

int docker_valid_image(const char *s)
{
	if (!*s || strlen(s) > 512)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-/:@", *s))
			return 0;
	return 1;
}

int docker_request(struct docker_runner *dr, const char *method, const char *path,
		   const char *ctype, const void *body, size_t len, long timeout_ms,
		   sw_http_data_fn on_data, sw_http_done_fn on_done, void *arg,
		   struct sw_http_call **call)
{
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	char *url = sw_asprintf("%s%s", dr->prefix, path);
	char *ct = ctype ? sw_asprintf("Content-Type: %s", ctype) : NULL;
	const char *hdrs[] = { ct, NULL };
	int rc;

	o.method = method;
	o.url = url;
	o.unix_socket = dr->socket;
	o.headers = ct ? hdrs : NULL;
	o.body = body;
	o.body_len = len;
	o.timeout_ms = timeout_ms;
	o.max_response = API_MAX_RESPONSE;
	o.on_data = on_data;
	o.on_done = on_done;
	o.arg = arg;
	rc = sw_http_start(dr->http, &o, call);
	free(url);
	free(ct);
	return rc;
}

int docker_request_stream(struct docker_runner *dr, const char *method, const char *path,
			  sw_http_response_fn on_response, sw_http_data_fn on_data,
			  sw_http_done_fn on_done, void *arg, struct sw_http_call **call)
{
	struct sw_http_opts o = SW_HTTP_OPTS_INIT;
	char *url = sw_asprintf("%s%s", dr->prefix, path);
	int rc;

	o.method = method;
	o.url = url;
	o.unix_socket = dr->socket;
	o.max_response = API_MAX_RESPONSE;   /* for an error body only */
	o.on_response = on_response;
	o.on_data = on_data;
	o.on_done = on_done;
	o.arg = arg;
	rc = sw_http_start(dr->http, &o, call);
	free(url);
	return rc;
}

char *docker_stream_error(const struct sw_buf *body)
{
	const char *p = body->ptr, *end = body->ptr + body->len;
	char *found = NULL;

	while (p < end && !found) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		json_t *j = json_loadb(p, len, 0, NULL);
		if (j && json_is_string(json_object_get(j, "error")))
			found = sw_strdup(json_string_value(json_object_get(j, "error")));
		json_decref(j);
		p += len + 1;
	}
	return found;
}

const char *docker_instance_id(void)
{
	static char id[48];   /* runners live on the loop thread */
	if (!id[0])
		snprintf(id, sizeof(id), "%lld-%ld", (long long)sw_now_ms(), (long)getpid());
	return id;
}

/* ---- helpers: import, leftovers --------------------------------------- */

struct helper {
	struct docker_runner *dr;
	sw_docker_done_fn done;
	void *arg;
	int remove;          /* leftovers: delete what the list found */
	int pending, removed;
	struct sw_buf err;
};

static void helper_end(struct helper *hp, int result, const char *msg)
{
	if (hp->done)
		hp->done(result, msg, hp->arg);
	sw_buf_release(&hp->err);
	free(hp);
}

static void imported(struct sw_http_result *r, void *arg)
{
	struct helper *hp = arg;
	char *err = NULL;

	if (r->error || r->status != 200) {
		struct sw_buf m = SW_BUF_INIT;
		docker_api_message(&m, r);
		helper_end(hp, SW_ERR, m.ptr);
		sw_buf_release(&m);
	} else if ((err = docker_stream_error(r->body))) {
		helper_end(hp, SW_ERR, err);
		free(err);
	} else {
		helper_end(hp, 0, "");
	}
}

int sw_docker_import(struct sw_runner *r, const char *name, const char *tag, const void *tar,
		     size_t len, sw_docker_done_fn done, void *arg)
{
	struct docker_runner *dr = (struct docker_runner *)r;
	struct sw_buf path = SW_BUF_INIT;
	struct helper *hp;
	int rc;

	if (r->ops != &docker_ops)
		return sw_error_setc(SW_EINVALID, "image import needs a docker runner");
	if (!docker_valid_image(name) || (tag && !docker_valid_image(tag)))
		return sw_error_setc(SW_EINVALID, "image import: bad name %s", name);
	hp = sw_calloc(1, sizeof(*hp));
	hp->dr = dr;
	hp->done = done;
	hp->arg = arg;
	hp->err = (struct sw_buf)SW_BUF_INIT;
	sw_buf_adds(&path, "/images/create?fromSrc=-&repo=");
	sw_http_escape(&path, name);
	sw_buf_adds(&path, "&tag=");
	sw_http_escape(&path, tag ? tag : "latest");
	rc = docker_request(dr, "POST", path.ptr, "application/x-tar", tar, len, dr->pull_timeout_ms,
		     NULL, imported, hp, NULL);
	sw_buf_release(&path);
	if (rc < 0)
		free(hp);
	return rc;
}

static void one_removed(struct sw_http_result *r, void *arg)
{
	struct helper *hp = arg;

	if (!r->error && (r->status == 204 || r->status == 200 || r->status == 404))
		hp->removed++;
	else
		docker_api_message(&hp->err, r);
	if (--hp->pending == 0)
		helper_end(hp, hp->err.len ? SW_ERR : hp->removed, hp->err.ptr);
}

static void listed(struct sw_http_result *r, void *arg)
{
	struct helper *hp = arg;
	json_t *j;
	size_t i, n;

	if (r->error || r->status != 200) {
		struct sw_buf m = SW_BUF_INIT;
		docker_api_message(&m, r);
		helper_end(hp, SW_ERR, m.ptr);
		sw_buf_release(&m);
		return;
	}
	j = json_loadb(r->body->ptr, r->body->len, 0, NULL);
	if (!json_is_array(j)) {
		json_decref(j);
		helper_end(hp, SW_ERR, "container list is not a JSON array");
		return;
	}
	n = json_array_size(j);
	if (!hp->remove || n == 0) {
		json_decref(j);
		helper_end(hp, (int)(n > INT_MAX ? INT_MAX : n), "");
		return;
	}
	hp->pending = 1;     /* held until every DELETE is out */
	for (i = 0; i < n; i++) {
		const json_t *c = json_array_get(j, i);
		const char *id = json_string_value(json_object_get(c, "Id"));
		const char *inst = json_string_value(
		    json_object_get(json_object_get(c, "Labels"), "slipway.instance"));
		char path[200];
		if (!id || strlen(id) > 100 || !docker_valid_image(id))
			continue;
		/* Ours: a step that started while the list was on its way. */
		if (inst && !strcmp(inst, docker_instance_id()))
			continue;
		snprintf(path, sizeof(path), "/containers/%s?force=1&v=1", id);
		if (docker_request(hp->dr, "DELETE", path, NULL, NULL, 0, CONTROL_TIMEOUT_MS, NULL,
			    one_removed, hp, NULL) == 0)
			hp->pending++;
	}
	json_decref(j);
	if (--hp->pending == 0)
		helper_end(hp, hp->err.len ? SW_ERR : hp->removed, hp->err.ptr);
}

static int list_labelled(struct sw_runner *r, int remove, sw_docker_done_fn done, void *arg)
{
	struct docker_runner *dr = (struct docker_runner *)r;
	struct helper *hp;
	int rc;

	if (r->ops != &docker_ops)
		return sw_error_setc(SW_EINVALID, "container listing needs a docker runner");
	hp = sw_calloc(1, sizeof(*hp));
	hp->dr = dr;
	hp->done = done;
	hp->arg = arg;
	hp->remove = remove;
	hp->err = (struct sw_buf)SW_BUF_INIT;
	/* filters={"label":["slipway.run"]} */
	rc = docker_request(dr, "GET",
		     "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22slipway.run%22%5D%7D",
		     NULL, NULL, 0, CONTROL_TIMEOUT_MS, NULL, listed, hp, NULL);
	if (rc < 0)
		free(hp);
	return rc;
}

int sw_docker_remove_leftovers(struct sw_runner *r, sw_docker_done_fn done, void *arg)
{
	return list_labelled(r, 1, done, arg);
}

int sw_docker_count_labelled(struct sw_runner *r, sw_docker_done_fn done, void *arg)
{
	return list_labelled(r, 0, done, arg);
}
