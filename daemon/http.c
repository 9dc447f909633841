/*
 * http.c - the daemon's HTTP routes: a table of method + path patterns and
 * small helpers for JSON replies. Handlers never block.
 */
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <string.h>

#include "httpd/httpd.h"
#include "daemon/daemon.h"
#include "lib/buf.h"
#include "lib/log.h"
#include "lib/version.h"
#include "pipeline/pipeline.h"

void sw_reply_json(struct evhttp_request *req, int code, json_t *j)
{
	struct evbuffer *b = evbuffer_new();
	char *s = json_dumps(j, JSON_COMPACT);
	evbuffer_add(b, s, strlen(s));
	evbuffer_add(b, "\n", 1);
	free(s);
	json_decref(j);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evhttp_send_reply(req, code, NULL, b);
	evbuffer_free(b);
}

void sw_reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
	struct sw_buf msg = SW_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	sw_buf_vaddf(&msg, fmt, ap);
	va_end(ap);
	sw_reply_json(req, code, json_pack("{s:s, s:i}", "error", msg.ptr, "status", code));
	sw_buf_release(&msg);
}

static void healthz(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	sw_reply_json(req, 200, json_pack("{s:s, s:s}", "status", "alive",
					  "version", SLIPWAY_VERSION));
}

/*
 * Whether the engine's writes reach the database. Unavailable (another
 * process holds its write lock) is still ready: webhooks are taken and the
 * engine keeps its writes until the lock goes.
 */
static json_t *storage_json(struct sw_daemon *d)
{
	struct sw_storage_state s = { 0 };
	if (d->engine)
		sw_engine_storage_state(d->engine, &s);
	json_t *o = json_pack("{s:s, s:I}", "status", s.pending_writes ? "unavailable" : "ok",
			      "pending_writes", (json_int_t)s.pending_writes);
	if (s.pending_writes) {
		json_object_set_new(o, "since", json_integer(s.since_ms));
		json_object_set_new(o, "error", json_string(s.error ? s.error : "unknown"));
	}
	return o;
}

static void readyz(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	if (d->stopping)
		sw_reply_json(req, 503, json_pack("{s:s, s:s}", "status", "stopping",
						  "reason", "shutting down"));
	else if (!d->store)
		sw_reply_json(req, 503, json_pack("{s:s, s:s}", "status", "not ready",
						  "reason", "storage is not open"));
	else if (!d->cfg)
		sw_reply_json(req, 503, json_pack("{s:s, s:s}", "status", "not ready",
						  "reason", "no config loaded"));
	else
		sw_reply_json(req, 200, json_pack("{s:s, s:s, s:o}", "status", "ready",
						  "config", d->cfg->file, "storage",
						  storage_json(d)));
}

static void hook_github(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	sw_hooks_github(d, req);
}

static const struct sw_route core_routes[] = {
	{ EVHTTP_REQ_POST, "/hooks/github", hook_github },
	{ EVHTTP_REQ_GET, "/healthz", healthz },
	{ EVHTTP_REQ_GET, "/readyz", readyz },
	{ 0, NULL, NULL },
};

static const struct sw_route *const tables[] = { core_routes, sw_api_routes, sw_page_routes };

static const char *method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "OTHER";
	}
}

static void dispatch(struct evhttp_request *req, void *arg)
{
	struct sw_daemon *d = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evhttp_uri *u = evhttp_uri_parse(uri);
	const char *path = u ? evhttp_uri_get_path(u) : NULL;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	int path_matched = 0;

	sw_conns_request(d->conns, req);
	if (!path || !*path)
		path = "/";
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
	for (const struct sw_route *r = tables[t]; r->path; r++) {
		size_t n = strlen(r->path);
		int prefix = r->path[n - 1] == '/';
		if (prefix ? strncmp(path, r->path, n) : strcmp(path, r->path))
			continue;
		path_matched = 1;
		if (r->method != m && !(m == EVHTTP_REQ_HEAD && r->method == EVHTTP_REQ_GET))
			continue;
		r->fn(d, req, prefix ? path + n : "");
		evhttp_uri_free(u);
		return;
	}
	if (path_matched)
		sw_reply_error(req, 405, "method %s not allowed on %s", method_name(m), path);
	else
		sw_reply_error(req, 404, "no such path: %s", path);
	evhttp_uri_free(u);
}

void sw_http_routes_install(struct sw_daemon *d)
{
	evhttp_set_gencb(d->http, dispatch, d);
}
