/*
 * http.c - the asynchronous HTTP client (see http.h).
 *
 * Structure follows curl's docs/examples/hiperfifo.c: curl tells us which
 * sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to wake it
 * (CURLMOPT_TIMERFUNCTION); libevent watches them and hands readiness back
 * with curl_multi_socket_action(); finished transfers are collected with
 * curl_multi_info_read() and reported.
 *
 * libcurl refuses multi calls (add/remove handle) from inside its own
 * callbacks, and our users' on_data runs inside the write callback. So while
 * curl is running (h->in_curl) a start or a cancel is only recorded, and a
 * "deferred" event finishes it once curl has returned to the loop.
 */
#include "lib/http.h"

#include <assert.h>
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "lib/log.h"
#include "lib/version.h"

struct sw_http {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct event *deferred;      /* runs deferred adds and cancels */
	int in_curl;                 /* inside curl_multi_socket_action */
	struct sw_http_call *calls;  /* all live calls, doubly linked */
	size_t ncalls;
	struct sockinfo *socks;      /* every watched socket */
};

struct sw_http_call {
	struct sw_http *h;
	struct sw_http_call *prev, *next;
	CURL *easy;
	struct curl_slist *hdrs;
	struct curl_slist *connect_to;
	char *method;                /* for messages */
	char *url;                   /* for messages: display_url or url */
	char *body;                  /* the request body we own */
	size_t max_response;
	sw_http_response_fn on_response;
	sw_http_data_fn on_data;
	sw_http_done_fn on_done;
	void *arg;

	struct sw_buf resp;          /* buffered response body */
	struct sw_buf headers;       /* "name\0value\0" pairs, names lowercased */
	int added;                   /* handed to the multi handle */
	int cancelled;               /* sw_http_cancel(): no callback, free soon */
	int aborted;                 /* on_data or on_response asked to stop */
	int responded;               /* on_response was called */
	int follow;                  /* follow_redirects: 3xx are not final */
	int too_large;               /* body or headers over their maximum */
	int failed_early;            /* could not be added: report from loop */
	int finished;                /* off the multi handle, report pending */
	CURLcode rc;                 /* curl's result once finished */
	struct sw_http_call *done_next;
	char errbuf[CURL_ERROR_SIZE];
};

/* Per-socket state, attached with curl_multi_assign(). */
struct sockinfo {
	struct sw_http *h;
	struct sockinfo *prev, *next;
	curl_socket_t fd;
	struct event ev;
	int assigned;
};

static void sockinfo_free(struct sockinfo *si)
{
	struct sw_http *h = si->h;
	if (si->assigned)
		event_del(&si->ev);
	if (si->prev)
		si->prev->next = si->next;
	else
		h->socks = si->next;
	if (si->next)
		si->next->prev = si->prev;
	free(si);
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void arm_deferred(struct sw_http *h)
{
	event_active(h->deferred, 0, 0);
}

static void call_unlink(struct sw_http_call *c)
{
	struct sw_http *h = c->h;
	if (c->prev)
		c->prev->next = c->next;
	else
		h->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	h->ncalls--;
}

/* Remove from the multi handle (if added) and free. Not inside curl. */
static void call_free(struct sw_http_call *c)
{
	struct sw_http *h = c->h;
	if (h) {
		assert(!h->in_curl);
		if (c->added)
			curl_multi_remove_handle(h->multi, c->easy);
		call_unlink(c);
	}
	curl_easy_cleanup(c->easy);
	curl_slist_free_all(c->hdrs);
	curl_slist_free_all(c->connect_to);
	free(c->method);
	free(c->url);
	free(c->body);
	sw_buf_release(&c->resp);
	sw_buf_release(&c->headers);
	free(c);
}

/* ---- curl callbacks -------------------------------------------------- */

static long response_code(struct sw_http_call *c)
{
	long code = 0;
	curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct sw_http_call *c = arg;
	size_t n = size * nmemb;
	long code;

	if (c->cancelled || c->aborted)
		return 0;
	code = response_code(c);
	if (c->on_data && code >= 200 && code < 300) {
		if (c->on_data(p, n, c->arg) != 0) {
			/* on_data may have cancelled its own call instead. */
			if (!c->cancelled)
				c->aborted = 1;
			return 0;
		}
		return c->cancelled ? 0 : n;
	}
	if (c->resp.len + n > c->max_response) {
		c->too_large = 1;
		return 0;
	}
	sw_buf_add(&c->resp, p, n);
	return n;
}

static size_t header_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct sw_http_call *c = arg;
	size_t n = size * nmemb, i, e;

	if (c->cancelled)
		return 0;
	/* A new status line starts a new response (100 Continue, redirects):
	 * keep only the final response's headers. */
	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		sw_buf_reset(&c->headers);
		return n;
	}
	if (c->headers.len + n + 2 > SW_HTTP_MAX_HEADERS) {
		c->too_large = 1;
		return 0;
	}
	if (n <= 2 && (p[0] == '\r' || p[0] == '\n')) {
		/* The blank line ending a header block. */
		long code = response_code(c);
		int hop = c->follow && code >= 300 && code < 400;
		if (code >= 200 && !hop && c->on_response && !c->responded) {
			c->responded = 1;
			if (c->on_response(code, c->arg) != 0) {
				if (!c->cancelled)
					c->aborted = 1;
				return 0;
			}
			if (c->cancelled)
				return 0;
		}
		return n;
	}
	for (i = 0; i < n && p[i] != ':'; i++)
		;
	if (i == 0 || i == n)
		return n;            /* junk */
	for (size_t k = 0; k < i; k++)
		sw_buf_addch(&c->headers, (char)tolower((unsigned char)p[k]));
	sw_buf_addch(&c->headers, '\0');
	i++;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	e = n;
	while (e > i && (p[e - 1] == '\r' || p[e - 1] == '\n' || p[e - 1] == ' '))
		e--;
	sw_buf_add(&c->headers, p + i, e - i);
	sw_buf_addch(&c->headers, '\0');
	return n;
}

static void check_multi_info(struct sw_http *h);

static void socket_action(struct sw_http *h, curl_socket_t fd, int flags)
{
	int running;
	h->in_curl = 1;
	curl_multi_socket_action(h->multi, fd, flags, &running);
	h->in_curl = 0;
	check_multi_info(h);
}

static void event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sw_http *h = arg;
	int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
		    ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	socket_action(h, fd, flags);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	socket_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

static int multi_timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
	struct sw_http *h = arg;
	struct timeval tv;

	if (timeout_ms < 0) {
		evtimer_del(h->timer);
		return 0;
	}
	/* Even 0 goes through the loop: calling socket_action from here
	 * would re-enter curl. */
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(h->timer, &tv);
	return 0;
}

static int multi_sock_cb(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
	struct sw_http *h = arg;
	struct sockinfo *si = sockp;
	short kind;

	if (what == CURL_POLL_REMOVE) {
		if (si) {
			curl_multi_assign(h->multi, fd, NULL);
			sockinfo_free(si);
		}
		return 0;
	}
	if (!si) {
		si = sw_calloc(1, sizeof(*si));
		si->h = h;
		si->fd = fd;
		si->next = h->socks;
		if (h->socks)
			h->socks->prev = si;
		h->socks = si;
		curl_multi_assign(h->multi, fd, si);
	}
	if (si->assigned)
		event_del(&si->ev);
	kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
	       ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	event_assign(&si->ev, h->base, fd, kind, event_cb, h);
	event_add(&si->ev, NULL);
	si->assigned = 1;
	return 0;
}

/* ---- completion ------------------------------------------------------ */

/* What curl's `rc` for call `c` means, in `r` (its message in msg). */
static void result_fill(struct sw_http_call *c, CURLcode rc, struct sw_http_result *r,
			char *msg, size_t msgsz)
{
	double secs = 0;

	memset(r, 0, sizeof(*r));
	r->call = c;
	r->body = &c->resp;
	r->status = response_code(c);
	curl_easy_getinfo(c->easy, CURLINFO_TOTAL_TIME, &secs);
	r->total_ms = secs * 1000.0;
	msg[0] = '\0';
	if (c->too_large) {
		r->error = SW_EINVALID;
		snprintf(msg, msgsz, "%s %s: response larger than %zu bytes",
			 c->method, c->url, c->max_response);
	} else if (c->aborted) {
		r->error = SW_ECANCELLED;
		snprintf(msg, msgsz, "%s %s: stopped by the receiver", c->method, c->url);
	} else if (rc != CURLE_OK) {
		r->error = SW_ERR;
		r->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
		snprintf(msg, msgsz, "%s %s: %s%s%s", c->method, c->url,
			 curl_easy_strerror(rc), c->errbuf[0] ? ": " : "", c->errbuf);
	}
	r->error_msg = msg;
	if (r->error)
		log_debug("http.fail", "method=%s url=%s err=%s", c->method,
			  sw_q(c->url), sw_q(msg));
}

static void report(struct sw_http_call *c, CURLcode rc)
{
	struct sw_http_result r;
	char msg[CURL_ERROR_SIZE + 512];

	result_fill(c, rc, &r, msg, sizeof(msg));
	if (c->on_done)
		c->on_done(&r, c->arg);
}

/*
 * Collect every finished transfer first, then report them one by one: a
 * callback may cancel another finished call, which must then be skipped.
 */
static void check_multi_info(struct sw_http *h)
{
	struct sw_http_call *done = NULL, **tail = &done, *c, *next;
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(h->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
		c->rc = m->data.result;
		c->finished = 1;
		*tail = c;
		tail = &c->done_next;
	}
	/* A finished call stays on h->calls until reported; sw_http_cancel()
	 * only marks it (c->finished), so this list cannot dangle. */
	for (c = done; c; c = next) {
		next = c->done_next;
		if (!c->cancelled)
			report(c, c->rc);
		call_free(c);
	}
}

/* ---- deferred work --------------------------------------------------- */

static void add_call(struct sw_http_call *c)
{
	struct sw_http *h = c->h;
	CURLMcode mc = curl_multi_add_handle(h->multi, c->easy);
	if (mc != CURLM_OK) {
		snprintf(c->errbuf, sizeof(c->errbuf), "%s", curl_multi_strerror(mc));
		c->failed_early = 1;
		arm_deferred(h);
		return;
	}
	c->added = 1;
}

static void deferred_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sw_http *h = arg;
	struct sw_http_call *c, *next;

again:
	for (c = h->calls; c; c = next) {
		next = c->next;
		if (c->finished) {
			continue;
		} else if (c->cancelled) {
			call_free(c);
		} else if (c->failed_early) {
			/* The callback may start or cancel anything: rescan. */
			c->finished = 1;
			if (!c->cancelled)
				report(c, CURLE_FAILED_INIT);
			call_free(c);
			goto again;
		} else if (!c->added) {
			add_call(c);
		}
	}
}

/* ---- public ---------------------------------------------------------- */

int sw_http_new(struct sw_http **out, struct event_base *base)
{
	struct sw_http *h;

	*out = NULL;
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return sw_error_set("curl_global_init: %s", curl_easy_strerror(global_rc));
	h = sw_calloc(1, sizeof(*h));
	h->base = base;
	h->multi = curl_multi_init();
	h->timer = evtimer_new(base, timer_cb, h);
	h->deferred = event_new(base, -1, 0, deferred_cb, h);
	if (!h->multi || !h->timer || !h->deferred) {
		sw_http_free(h);
		return sw_error_set("http client: cannot allocate curl multi handle or events");
	}
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, multi_sock_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	*out = h;
	return 0;
}

void sw_http_free(struct sw_http *h)
{
	if (!h)
		return;
	assert(!h->in_curl);
	while (h->calls)
		call_free(h->calls);
	/* Closes cached connections; sock_cb frees their sockinfo. */
	if (h->multi)
		curl_multi_cleanup(h->multi);
	/* curl does not always say CURL_POLL_REMOVE while cleaning up. */
	while (h->socks)
		sockinfo_free(h->socks);
	if (h->timer)
		event_free(h->timer);
	if (h->deferred)
		event_free(h->deferred);
	free(h);
}

size_t sw_http_pending(const struct sw_http *h)
{
	return h->ncalls;
}

static int is_unreserved(unsigned char ch)
{
	return isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

void sw_http_escape(struct sw_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (is_unreserved(ch))
			sw_buf_addch(b, (char)ch);
		else
			sw_buf_addf(b, "%%%02X", ch);
	}
}

static int set_blob(CURL *e, CURLoption opt, const char *pem)
{
	struct curl_blob blob;
	blob.data = (void *)pem;
	blob.len = strlen(pem);
	blob.flags = CURL_BLOB_COPY;
	return curl_easy_setopt(e, opt, &blob) == CURLE_OK ? 0 : -1;
}

/* Point the URL at tls_server_name and connect to the real host instead. */
static int set_server_name(CURL *e, const char *url, const char *name, char **newurl,
			   struct curl_slist **connect_to)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL, *nu = NULL;
	int rc = -1;

	if (!u)
		return -1;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_HOST, name, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &nu, 0) != CURLUE_OK)
		goto done;
	char *line = sw_asprintf("%s:%s:%s:%s", name, port, host, port);
	*connect_to = curl_slist_append(NULL, line);
	free(line);
	*newurl = sw_strdup(nu);
	rc = 0;
done:
	curl_free(host);
	curl_free(port);
	curl_free(nu);
	curl_url_cleanup(u);
	return rc;
}

/*
 * A call for `o`, its easy handle set up, not yet handed to anyone (c->h is
 * NULL). <0 with the error slot set for bad options.
 */
static int call_new(const struct sw_http_opts *o, struct sw_http_call **out)
{
	struct sw_http_call *c;
	struct curl_slist *connect_to = NULL;
	char *tls_url = NULL;
	const char *method;
	int rc = SW_EINVALID;
	CURL *e;

	*out = NULL;
	if (!o->url || !*o->url)
		return sw_error_setc(SW_EINVALID, "http request without a URL");
	method = o->method ? o->method : (o->body ? "POST" : "GET");
	/* From here on messages name display_url, never a secret URL. */

	c = sw_calloc(1, sizeof(*c));
	c->resp = (struct sw_buf)SW_BUF_INIT;
	c->headers = (struct sw_buf)SW_BUF_INIT;
	c->method = sw_strdup(method);
	c->url = sw_strdup(o->display_url ? o->display_url : o->url);
	c->max_response = o->max_response ? o->max_response : SW_HTTP_MAX_RESPONSE_DEFAULT;
	c->on_response = o->on_response;
	c->follow = o->follow_redirects;
	c->on_data = o->on_data;
	c->on_done = o->on_done;
	c->arg = o->arg;
	c->easy = e = curl_easy_init();
	if (!e) {
		sw_error_set("%s %s: curl_easy_init failed", method, c->url);
		goto fail;
	}

	curl_easy_setopt(e, CURLOPT_PRIVATE, c);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000L);
	if (o->timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms);
	if (o->stall_secs > 0) {
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, o->stall_secs);
	}
	if (o->follow_redirects) {
		curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
	}
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "slipway/" SLIPWAY_VERSION);
	if (o->unix_socket &&
	    curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, o->unix_socket) != CURLE_OK) {
		sw_error_set("%s %s: this libcurl cannot use unix sockets", method, c->url);
		goto fail;
	}

	/* Method and body. */
	if (strcmp(method, "GET") == 0 && !o->body) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else {
		if (o->body_len) {
			c->body = sw_malloc(o->body_len);
			memcpy(c->body, o->body, o->body_len);
		}
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body ? c->body : "");
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	}

	c->hdrs = curl_slist_append(NULL, "Expect:");
	for (const char *const *hp = o->headers; hp && *hp; hp++) {
		struct curl_slist *n = curl_slist_append(c->hdrs, *hp);
		if (!n) {
			sw_error_set("%s %s: cannot add header", method, c->url);
			goto fail;
		}
		c->hdrs = n;
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdrs);

	/* TLS. */
	if (o->ca_pem) {
		if (set_blob(e, CURLOPT_CAINFO_BLOB, o->ca_pem) < 0) {
			sw_error_set("%s %s: this libcurl cannot take CA data in memory", method, c->url);
			goto fail;
		}
	} else if (o->ca_file) {
		curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
	}
	if (o->cert_pem) {
		curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
		if (set_blob(e, CURLOPT_SSLCERT_BLOB, o->cert_pem) < 0) {
			sw_error_set("%s %s: this libcurl cannot take a client certificate in memory",
				     method, c->url);
			goto fail;
		}
	} else if (o->cert_file) {
		curl_easy_setopt(e, CURLOPT_SSLCERT, o->cert_file);
	}
	if (o->key_pem) {
		curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
		if (set_blob(e, CURLOPT_SSLKEY_BLOB, o->key_pem) < 0) {
			sw_error_set("%s %s: this libcurl cannot take a client key in memory",
				     method, c->url);
			goto fail;
		}
	} else if (o->key_file) {
		curl_easy_setopt(e, CURLOPT_SSLKEY, o->key_file);
	}
	if (o->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (o->tls_server_name && *o->tls_server_name) {
		if (set_server_name(e, o->url, o->tls_server_name, &tls_url, &connect_to) < 0) {
			sw_error_set("%s %s: cannot apply tls server name %s", method, c->url,
				     o->tls_server_name);
			goto fail;
		}
		curl_easy_setopt(e, CURLOPT_CONNECT_TO, connect_to);
	}
	if (curl_easy_setopt(e, CURLOPT_URL, tls_url ? tls_url : o->url) != CURLE_OK) {
		sw_error_set("%s %s: bad URL", method, c->url);
		goto fail;
	}
	free(tls_url);
	/* curl reads the list for as long as the handle lives. */
	c->connect_to = connect_to;
	*out = c;
	return 0;

fail:
	free(tls_url);
	curl_slist_free_all(connect_to);
	if (c->easy)
		curl_easy_cleanup(c->easy);
	curl_slist_free_all(c->hdrs);
	free(c->method);
	free(c->url);
	free(c->body);
	free(c);
	return rc;
}

int sw_http_start(struct sw_http *h, const struct sw_http_opts *o, struct sw_http_call **out)
{
	struct sw_http_call *c;
	int rc;

	if (out)
		*out = NULL;
	if ((rc = call_new(o, &c)) < 0)
		return rc;
	c->h = h;
	/* Link in, then hand to curl now or from the loop. */
	c->next = h->calls;
	if (h->calls)
		h->calls->prev = c;
	h->calls = c;
	h->ncalls++;
	if (h->in_curl)
		arm_deferred(h);
	else
		add_call(c);
	if (out)
		*out = c;
	return 0;
}

int sw_http_fetch(const struct sw_http_opts *o, struct sw_http_reply *out)
{
	struct sw_http_result r;
	struct sw_http_call *c;
	char msg[CURL_ERROR_SIZE + 512];
	int rc;

	memset(out, 0, sizeof(*out));
	sw_buf_init(&out->body);
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK)
		return sw_error_set("curl_global_init: %s", curl_easy_strerror(global_rc));
	if ((rc = call_new(o, &c)) < 0)
		return rc;
	result_fill(c, curl_easy_perform(c->easy), &r, msg, sizeof(msg));
	out->error = r.error;
	out->timed_out = r.timed_out;
	out->status = r.status;
	out->body = c->resp;
	c->resp = (struct sw_buf)SW_BUF_INIT;
	if (r.error)
		sw_error_setc(r.error, "%s", msg);
	call_free(c);
	return r.error;
}

void sw_http_reply_release(struct sw_http_reply *r)
{
	sw_buf_release(&r->body);
}

void sw_http_cancel(struct sw_http_call *c)
{
	struct sw_http *h;
	if (!c || c->cancelled)
		return;
	h = c->h;
	c->cancelled = 1;
	/* Inside curl the handle cannot be removed; a finished call is freed
	 * by the loop reporting it. */
	if (c->finished)
		return;
	if (h->in_curl)
		arm_deferred(h);
	else
		call_free(c);
}

const char *sw_http_result_header(const struct sw_http_result *r, const char *name)
{
	const struct sw_buf *b = &r->call->headers;
	size_t off = 0;

	while (off < b->len) {
		const char *k = b->ptr + off;
		size_t kl = strlen(k);
		const char *v = k + kl + 1;
		if (strcasecmp(k, name) == 0)
			return v;
		off += kl + 1 + strlen(v) + 1;
	}
	return NULL;
}
