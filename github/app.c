/*
 * app.c - slipway as a GitHub App: the JWT, the installation lookup and
 * token exchange, and the token cache the loop and the workers share (see
 * github.h for the design).
 *
 * A fetch is two steps for one repository entry: the lookup (unless the
 * installation is known or configured) and the exchange. The same judge
 * functions read the answers whether they came through lib/http on the
 * loop or blocking (sw_http_fetch) on a worker; only the transport differs.
 */
#include "github/github.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "config/config.h"
#include "lib/base64.h"
#include "lib/buf.h"
#include "lib/clock.h"
#include "lib/http.h"
#include "lib/log.h"
#include "lib/version.h"

#define TOKEN_MAX 1024          /* bytes of an installation token we accept */
#define ANSWER_MAX (256 * 1024) /* bytes of an answer from GitHub we read */

/* ------------------------------------------------------------------ */
/* Pieces                                                              */
/* ------------------------------------------------------------------ */

int sw_github_key_parse(EVP_PKEY **out, const char *pem)
{
	BIO *bio;
	EVP_PKEY *key;

	*out = NULL;
	if (!pem || !*pem)
		return sw_error_setc(SW_EINVALID, "no private key");
	bio = BIO_new_mem_buf(pem, -1);
	key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"") : NULL;
	BIO_free(bio);
	ERR_clear_error();
	if (!key)
		return sw_error_setc(SW_EINVALID, "not a PEM private key");
	if (EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
		EVP_PKEY_free(key);
		return sw_error_setc(SW_EINVALID, "not an RSA key (a GitHub App's key is RSA)");
	}
	*out = key;
	return 0;
}

int sw_github_jwt(char **out, EVP_PKEY *key, const char *app_id, int64_t now_s)
{
	struct sw_buf b = SW_BUF_INIT;
	EVP_MD_CTX *md = NULL;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	json_t *claims;
	char *text;
	int rc = SW_ERR;

	*out = NULL;
	if (!key || !app_id || !*app_id)
		return sw_error_setc(SW_EINVALID, "JWT: no key or App id");
	sw_base64_encode(&b, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", 27,
			 SW_BASE64_URL | SW_BASE64_NOPAD);
	sw_buf_addch(&b, '.');
	claims = json_pack("{s:I, s:I, s:s}", "iat", (json_int_t)(now_s - 60),
			   "exp", (json_int_t)(now_s + 540), "iss", app_id);
	text = claims ? json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(claims);
	if (!text) {
		sw_error_set("JWT: cannot build the claims");
		goto done;
	}
	sw_base64_encode(&b, text, strlen(text), SW_BASE64_URL | SW_BASE64_NOPAD);
	free(text);
	/* RS256: RSASSA-PKCS1-v1_5 with SHA-256, OpenSSL's default padding for RSA */
	if (!(md = EVP_MD_CTX_new()) ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)b.ptr, b.len) != 1 ||
	    !(sig = malloc(siglen)) ||
	    EVP_DigestSign(md, sig, &siglen, (const unsigned char *)b.ptr, b.len) != 1) {
		unsigned long e = ERR_get_error();
		char msg[256];
		ERR_error_string_n(e, msg, sizeof(msg));
		ERR_clear_error();
		sw_error_set("JWT: signing failed: %s", e ? msg : "out of memory");
		goto done;
	}
	sw_buf_addch(&b, '.');
	sw_base64_encode(&b, sig, siglen, SW_BASE64_URL | SW_BASE64_NOPAD);
	*out = sw_buf_detach(&b, NULL);
	rc = 0;
done:
	free(sig);
	EVP_MD_CTX_free(md);
	sw_buf_release(&b);
	return rc;
}

void sw_github_token_release(struct sw_github_token *t)
{
	if (t->token) {
		memset(t->token, 0, strlen(t->token));
		free(t->token);
	}
	t->token = NULL;
	t->expires_s = 0;
}

int64_t sw_github_parse_time(const char *s)
{
	struct tm tm;
	int n = 0;

	if (!s)
		return -1;
	memset(&tm, 0, sizeof(tm));
	for (int i = 0; i < 19; i++) {
		int want_digit = i != 4 && i != 7 && i != 10 && i != 13 && i != 16;
		if (!s[i] || (want_digit && !isdigit((unsigned char)s[i])))
			return -1;
	}
	if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' ||
	    s[16] != ':')
		return -1;
	if (sscanf(s, "%4d-%2d-%2d%*c%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 || n != 19)
		return -1;
	s += 19;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return -1;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if (strcmp(s, "Z") && strcmp(s, "z") && strcmp(s, "+00:00"))
		return -1;
	if (tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
	    tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

int sw_github_parse_token(struct sw_github_token *out, const char *body, size_t len)
{
	json_t *j = json_loadb(body ? body : "", body ? len : 0, 0, NULL);
	const char *tok = json_string_value(json_object_get(j, "token"));
	const char *exp = json_string_value(json_object_get(j, "expires_at"));
	int64_t e;
	int rc = SW_EINVALID;

	out->token = NULL;
	out->expires_s = 0;
	if (!json_is_object(j)) {
		sw_error_setc(rc, "access token answer: not a JSON object");
		goto done;
	}
	if (!tok || !*tok) {
		sw_error_setc(rc, "access token answer: no \"token\"");
		goto done;
	}
	if (strlen(tok) > TOKEN_MAX) {
		sw_error_setc(rc, "access token answer: token longer than %d bytes", TOKEN_MAX);
		goto done;
	}
	for (const char *p = tok; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f) {
			/* it goes into a header and a git credential: no controls */
			sw_error_setc(rc, "access token answer: token holds a space or a control character");
			goto done;
		}
	if ((e = sw_github_parse_time(exp)) < 0) {
		sw_error_setc(rc, "access token answer: \"expires_at\" is not an RFC 3339 UTC time");
		goto done;
	}
	out->token = sw_strdup(tok);
	out->expires_s = e;
	rc = 0;
done:
	json_decref(j);
	return rc;
}

int sw_github_parse_installation(int64_t *out, const char *body, size_t len)
{
	json_t *j = json_loadb(body ? body : "", body ? len : 0, 0, NULL);
	json_t *id = json_object_get(j, "id");
	int rc = 0;

	*out = 0;
	if (!json_is_integer(id) || json_integer_value(id) <= 0)
		rc = sw_error_setc(SW_EINVALID, "installation answer: no positive \"id\"");
	else
		*out = json_integer_value(id);
	json_decref(j);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The cache                                                           */
/* ------------------------------------------------------------------ */

/* One repository's state. Every field is under app->mu. */
struct entry {
	char *repo;
	int64_t installation;    /* 0 = not known yet */
	struct sw_github_token tok;
	int64_t minted_s;        /* when tok arrived */
	int fetching;            /* FETCH_LOOP and/or FETCH_WORKER: fetches under way */
	int err;                 /* the last fetch's failure, 0 = none */
	char *errmsg;
	int64_t err_until;       /* sw_mono_ms(): answer err until then */
	struct entry *next;
};

/*
 * Who fetches. A worker waits for another worker's fetch, never for the
 * loop's: at shutdown the loop waits for the workers (lib/pool), so a
 * worker waiting on the loop would never wake. The loop never waits.
 */
#define FETCH_LOOP 1
#define FETCH_WORKER 2

/* What a fetch needs, copied under the lock (the config may change). */
struct conf {
	char *api;               /* without trailing '/' */
	char *app_id;
	EVP_PKEY *key;           /* a reference */
	int64_t installation;    /* configured, or 0 */
	uint64_t gen;
};

struct sw_github_app {
	pthread_mutex_t mu;
	pthread_cond_t cv;       /* a fetch finished */
	struct sw_http *http;
	struct sw_github_app_opts opts;
	char *user_agent;
	struct conf c;           /* c.app_id NULL = no App */
	struct entry *entries;
	struct pending *pending; /* loop fetches in flight */
	void (*on_ready)(void *);
	void *on_ready_arg;
	uint64_t njwt, ntokens;
};

static void conf_release(struct conf *c)
{
	free(c->api);
	free(c->app_id);
	EVP_PKEY_free(c->key);
	memset(c, 0, sizeof(*c));
}

static void conf_copy(struct conf *dst, const struct conf *src)
{
	dst->api = src->api ? sw_strdup(src->api) : NULL;
	dst->app_id = src->app_id ? sw_strdup(src->app_id) : NULL;
	dst->key = src->key;
	if (dst->key)
		EVP_PKEY_up_ref(dst->key);
	dst->installation = src->installation;
	dst->gen = src->gen;
}

static void entry_free(struct entry *e)
{
	sw_github_token_release(&e->tok);
	free(e->repo);
	free(e->errmsg);
	free(e);
}

/* Under mu. */
static struct entry *entry_get(struct sw_github_app *app, const char *repo)
{
	struct entry *e;

	for (e = app->entries; e; e = e->next)
		if (!strcmp(e->repo, repo))
			return e;
	e = sw_calloc(1, sizeof(*e));
	e->repo = sw_strdup(repo);
	e->next = app->entries;
	app->entries = e;
	return e;
}

static int64_t app_now(const struct sw_github_app *app)
{
	return app->opts.now_s ? app->opts.now_s() : sw_now_ms() / 1000;
}

/* Under mu: a token that is still good for a while. */
static int entry_fresh(const struct sw_github_app *app, const struct entry *e, int64_t now_s)
{
	int64_t life, margin;

	if (!e->tok.token)
		return 0;
	life = e->tok.expires_s - e->minted_s;
	margin = app->opts.margin_s;
	if (life / 2 < margin)
		margin = life / 2;
	return now_s < e->tok.expires_s - margin;
}

int sw_github_app_new(struct sw_github_app **out, struct sw_http *http,
		      const struct sw_github_app_opts *opts)
{
	struct sw_github_app_opts def = SW_GITHUB_APP_OPTS_INIT;
	struct sw_github_app *app = sw_calloc(1, sizeof(*app));

	pthread_mutex_init(&app->mu, NULL);
	pthread_cond_init(&app->cv, NULL);
	app->http = http;
	app->opts = opts ? *opts : def;
	if (app->opts.margin_s <= 0)
		app->opts.margin_s = def.margin_s;
	if (app->opts.fail_hold_ms <= 0)
		app->opts.fail_hold_ms = def.fail_hold_ms;
	if (app->opts.timeout_ms <= 0)
		app->opts.timeout_ms = def.timeout_ms;
	app->user_agent = sw_strdup(opts && opts->user_agent ? opts->user_agent
				    : "slipway/" SLIPWAY_VERSION);
	app->opts.user_agent = NULL;
	*out = app;
	return 0;
}

static int str_differs(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

void sw_github_app_set_config(struct sw_github_app *app, const struct sw_config *cfg)
{
	const struct sw_cfg_github_app *a = &cfg->github_app;
	struct conf n = { 0 };
	size_t len;
	int same;

	if (a->id && a->private_key.value && sw_github_key_parse(&n.key, a->private_key.value) == 0) {
		n.app_id = sw_strdup(a->id);
		n.installation = a->installation_id;
	} else if (a->id) {
		log_error("github.app_key", "err=%s", sw_q(sw_error_last()));
	}
	len = cfg->github_api_url ? strlen(cfg->github_api_url) : 0;
	while (len > 0 && cfg->github_api_url[len - 1] == '/')
		len--;
	n.api = sw_strndup(cfg->github_api_url ? cfg->github_api_url : "", len);

	pthread_mutex_lock(&app->mu);
	same = !str_differs(n.api, app->c.api) && !str_differs(n.app_id, app->c.app_id) &&
	       n.installation == app->c.installation &&
	       ((!n.key && !app->c.key) || (n.key && app->c.key && EVP_PKEY_eq(n.key, app->c.key) == 1));
	if (same) {
		pthread_mutex_unlock(&app->mu);
		conf_release(&n);
		return;
	}
	n.gen = app->c.gen + 1;
	conf_release(&app->c);
	app->c = n;
	/* entries being fetched are kept (their fetcher frees nothing) but emptied */
	for (struct entry **pe = &app->entries; *pe;) {
		struct entry *e = *pe;
		if (e->fetching) {
			sw_github_token_release(&e->tok);
			e->installation = 0;
			e->err = 0;
			pe = &e->next;
		} else {
			*pe = e->next;
			entry_free(e);
		}
	}
	pthread_cond_broadcast(&app->cv);
	pthread_mutex_unlock(&app->mu);
	log_info("github.app_config", "app=%s installation=%lld", n.app_id ? n.app_id : "none",
		 (long long)n.installation);
}

int sw_github_app_enabled(struct sw_github_app *app)
{
	int on;

	if (!app)
		return 0;
	pthread_mutex_lock(&app->mu);
	on = app->c.app_id != NULL;
	pthread_mutex_unlock(&app->mu);
	return on;
}

void sw_github_app_on_ready(struct sw_github_app *app, void (*fn)(void *arg), void *arg)
{
	app->on_ready = fn;
	app->on_ready_arg = arg;
}

size_t sw_github_app_failures(struct sw_github_app *app, struct sw_buf *msg)
{
	size_t n = 0;

	if (!app)
		return 0;
	pthread_mutex_lock(&app->mu);
	for (struct entry *e = app->entries; e; e = e->next)
		if (e->err && !e->tok.token) {
			if (!n++ && msg)
				sw_buf_adds(msg, e->errmsg ? e->errmsg : "unknown error");
		}
	pthread_mutex_unlock(&app->mu);
	return n;
}

void sw_github_app_counts(struct sw_github_app *app, uint64_t *jwts, uint64_t *tokens)
{
	pthread_mutex_lock(&app->mu);
	*jwts = app->njwt;
	*tokens = app->ntokens;
	pthread_mutex_unlock(&app->mu);
}

int64_t sw_github_app_installation(struct sw_github_app *app, const char *repo)
{
	int64_t id = 0;

	if (!app || !repo)
		return 0;
	pthread_mutex_lock(&app->mu);
	for (struct entry *e = app->entries; e; e = e->next)
		if (!strcmp(e->repo, repo))
			id = e->installation;
	if (!id)
		id = app->c.installation;
	pthread_mutex_unlock(&app->mu);
	return id;
}

void sw_github_app_invalidate(struct sw_github_app *app, const char *repo, const char *token)
{
	if (!app || !repo)
		return;
	pthread_mutex_lock(&app->mu);
	for (struct entry *e = app->entries; e; e = e->next)
		if (!strcmp(e->repo, repo) && e->tok.token && (!token || !strcmp(e->tok.token, token))) {
			sw_github_token_release(&e->tok);
			log_info("github.token_dropped", "repo=%s installation=%lld", repo,
				 (long long)e->installation);
		}
	pthread_mutex_unlock(&app->mu);
}

/* ------------------------------------------------------------------ */
/* One fetch, whatever carries it                                      */
/* ------------------------------------------------------------------ */

enum step { STEP_LOOKUP, STEP_TOKEN };

/* What a fetch holds between its steps (its own copies: no lock needed). */
struct fetch {
	struct sw_github_app *app;
	struct conf c;
	char *repo;
	int64_t installation;
	enum step step;
	int who;                 /* FETCH_LOOP or FETCH_WORKER */
	struct sw_github_token tok;
};

static void fetch_free(struct fetch *f)
{
	if (!f)
		return;
	conf_release(&f->c);
	free(f->repo);
	sw_github_token_release(&f->tok);
	free(f);
}

/*
 * Under mu: claim the entry for a fetch. Returns a fetch to run, or NULL
 * when the entry is fresh, held in failure or fetched by someone else.
 */
static struct fetch *fetch_claim(struct sw_github_app *app, struct entry *e, int who)
{
	struct fetch *f;

	if ((e->fetching & (who == FETCH_LOOP ? FETCH_LOOP | FETCH_WORKER : FETCH_WORKER)) ||
	    !app->c.app_id)
		return NULL;
	f = sw_calloc(1, sizeof(*f));
	f->app = app;
	conf_copy(&f->c, &app->c);
	f->repo = sw_strdup(e->repo);
	f->installation = e->installation ? e->installation : app->c.installation;
	f->step = f->installation ? STEP_TOKEN : STEP_LOOKUP;
	f->who = who;
	e->fetching |= who;
	return f;
}

/* The request of the fetch's current step: URL and headers (with a new JWT). */
static int fetch_request(struct fetch *f, char **url, char **auth)
{
	char *jwt = NULL;
	int rc;

	*url = *auth = NULL;
	if ((rc = sw_github_jwt(&jwt, f->c.key, f->c.app_id, sw_now_ms() / 1000)) < 0)
		return rc;
	pthread_mutex_lock(&f->app->mu);
	f->app->njwt++;
	pthread_mutex_unlock(&f->app->mu);
	*auth = sw_asprintf("Authorization: Bearer %s", jwt);
	memset(jwt, 0, strlen(jwt));
	free(jwt);
	if (f->step == STEP_LOOKUP)
		*url = sw_asprintf("%s/repos/%s/installation", f->c.api, f->repo);
	else
		*url = sw_asprintf("%s/app/installations/%lld/access_tokens", f->c.api,
				   (long long)f->installation);
	return 0;
}

/*
 * Judge one step's answer. Returns 1 when another step follows, 0 when the
 * token is in f->tok, or <0 with the message.
 */
static int fetch_judge(struct fetch *f, int neterr, const char *netmsg, long status,
		       const struct sw_buf *body)
{
	const char *what = f->step == STEP_LOOKUP ? "installation lookup" : "token exchange";

	if (neterr)
		return sw_error_setc(SW_ERR, "GitHub App %s for %s: %s", what, f->repo, netmsg);
	if (status == 401)
		return sw_error_setc(SW_EINVALID, "GitHub refused the App's JWT (HTTP 401 on the %s "
				     "for %s): check github.app.id and github.app.private_key",
				     what, f->repo);
	if (f->step == STEP_LOOKUP) {
		if (status == 404)
			return sw_error_setc(SW_ENOTFOUND, "GitHub App %s is not installed on %s "
					     "(GET /repos/%s/installation: 404): install it on the "
					     "repository", f->c.app_id, f->repo, f->repo);
		if (status != 200)
			return sw_error_setc(status >= 500 ? SW_ERR : SW_EINVALID,
					     "GitHub App installation lookup for %s: HTTP %ld",
					     f->repo, status);
		if (sw_github_parse_installation(&f->installation, body->ptr, body->len) < 0)
			return sw_error_prefix("GitHub App installation lookup for %s", f->repo);
		f->step = STEP_TOKEN;
		return 1;
	}
	if (status == 404)
		return sw_error_setc(SW_ENOTFOUND, "GitHub App installation %lld (for %s) is unknown "
				     "to GitHub: revoked or uninstalled? (POST /app/installations/%lld/"
				     "access_tokens: 404)", (long long)f->installation, f->repo,
				     (long long)f->installation);
	if (status == 403)
		return sw_error_setc(SW_EINVALID, "GitHub App installation %lld (for %s) is "
				     "suspended or lacks permissions (HTTP 403)",
				     (long long)f->installation, f->repo);
	if (status != 201 && status != 200)
		return sw_error_setc(status >= 500 ? SW_ERR : SW_EINVALID,
				     "GitHub App token exchange for %s: HTTP %ld", f->repo, status);
	if (sw_github_parse_token(&f->tok, body->ptr, body->len) < 0)
		return sw_error_prefix("GitHub App token exchange for %s", f->repo);
	return 0;
}

/* Record the end of a fetch in its entry (takes mu) and wake the waiters. */
static void fetch_finish(struct fetch *f, int rc)
{
	struct sw_github_app *app = f->app;
	int64_t expires = 0;
	struct entry *e;

	pthread_mutex_lock(&app->mu);
	e = entry_get(app, f->repo);
	e->fetching &= ~f->who;
	if (f->c.gen == app->c.gen) {
		if (rc == 0) {
			sw_github_token_release(&e->tok);
			e->tok = f->tok;
			f->tok.token = NULL;
			e->minted_s = app_now(app);
			e->installation = f->installation;
			e->err = 0;
			expires = e->tok.expires_s;
			app->ntokens++;
		} else {
			/* a fetch happens only for a token that is no longer good */
			sw_github_token_release(&e->tok);
			e->err = rc;
			free(e->errmsg);
			e->errmsg = sw_strdup(sw_error_last());
			e->err_until = sw_mono_ms() + app->opts.fail_hold_ms;
			/* an unknown installation is looked up again next time */
			if (rc == SW_ENOTFOUND)
				e->installation = 0;
		}
	}
	pthread_cond_broadcast(&app->cv);
	pthread_mutex_unlock(&app->mu);
	if (rc == 0)
		log_info("github.token", "repo=%s installation=%lld expires_in_s=%lld", f->repo,
			 (long long)f->installation,
			 (long long)(expires - sw_now_ms() / 1000));
	else
		log_error("github.token_failed", "repo=%s err=%s", f->repo, sw_q(sw_error_last()));
}

/* Under mu: answer from the entry. 1 = go fetch (or wait), else the answer. */
static int entry_answer(struct sw_github_app *app, struct entry *e, char **token,
			int64_t *installation)
{
	if (entry_fresh(app, e, app_now(app))) {
		*token = sw_strdup(e->tok.token);
		if (installation)
			*installation = e->installation;
		return 0;
	}
	if (e->err && sw_mono_ms() < e->err_until)
		return sw_error_setc(e->err, "%s", e->errmsg);
	return 1;
}

/* ------------------------------------------------------------------ */
/* The loop's way: lib/http                                            */
/* ------------------------------------------------------------------ */

struct pending {
	struct fetch *f;
	struct sw_http_call *call;
	struct pending *next;
};

static void pending_remove(struct sw_github_app *app, struct pending *p)
{
	for (struct pending **pp = &app->pending; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
}

static int async_step(struct pending *p);

static void async_done(struct sw_http_result *r, void *arg)
{
	struct pending *p = arg;
	struct sw_github_app *app = p->f->app;
	int rc;

	p->call = NULL;
	rc = fetch_judge(p->f, r->error, r->error_msg, r->status, r->body);
	if (rc == 1 && (rc = async_step(p)) == 0)
		return;
	fetch_finish(p->f, rc);
	pending_remove(app, p);
	fetch_free(p->f);
	free(p);
	if (app->on_ready)
		app->on_ready(app->on_ready_arg);
}

/* The request of f's current step, for either way; step_free() its strings. */
struct step_req {
	struct sw_http_opts o;
	char *url, *auth, *ua;
	const char *hdrs[5];
};

static int step_init(struct step_req *q, struct fetch *f)
{
	struct sw_github_app *app = f->app;
	int rc;

	memset(q, 0, sizeof(*q));
	if ((rc = fetch_request(f, &q->url, &q->auth)) < 0)
		return rc;
	q->ua = sw_asprintf("User-Agent: %s", app->user_agent);
	q->hdrs[0] = SW_GITHUB_ACCEPT;
	q->hdrs[1] = SW_GITHUB_API_VERSION;
	q->hdrs[2] = q->ua;
	q->hdrs[3] = q->auth;
	q->o = (struct sw_http_opts)SW_HTTP_OPTS_INIT;
	q->o.method = f->step == STEP_LOOKUP ? "GET" : "POST";
	q->o.url = q->url;
	q->o.headers = q->hdrs;
	q->o.timeout_ms = app->opts.timeout_ms;
	q->o.max_response = ANSWER_MAX;
	return 0;
}

static void step_free(struct step_req *q)
{
	if (q->auth)
		memset(q->auth, 0, strlen(q->auth));
	free(q->url);
	free(q->auth);
	free(q->ua);
}

static int async_step(struct pending *p)
{
	struct step_req q;
	int rc;

	if ((rc = step_init(&q, p->f)) == 0) {
		q.o.on_done = async_done;
		q.o.arg = p;
		rc = sw_http_start(p->f->app->http, &q.o, &p->call);
	}
	step_free(&q);
	return rc;
}

int sw_github_app_token(struct sw_github_app *app, const char *repo, char **token,
			int64_t *installation)
{
	struct fetch *f = NULL;
	struct entry *e;
	int rc;

	*token = NULL;
	if (installation)
		*installation = 0;
	pthread_mutex_lock(&app->mu);
	if (!app->c.app_id) {
		pthread_mutex_unlock(&app->mu);
		return sw_error_setc(SW_EINVALID, "github.app is not configured");
	}
	e = entry_get(app, repo);
	rc = entry_answer(app, e, token, installation);
	if (rc == 1 && app->http)
		f = fetch_claim(app, e, FETCH_LOOP);
	pthread_mutex_unlock(&app->mu);
	if (rc != 1)
		return rc;
	if (f) {
		struct pending *p = sw_calloc(1, sizeof(*p));
		p->f = f;
		p->next = app->pending;
		app->pending = p;
		if ((rc = async_step(p)) < 0) {
			fetch_finish(f, rc);
			pending_remove(app, p);
			fetch_free(f);
			free(p);
			return rc;
		}
	}
	return sw_error_setc(SW_EAGAIN, "GitHub App token for %s: being fetched", repo);
}

int sw_github_app_token_wait(struct sw_github_app *app, const char *repo, int refresh,
			     char **token)
{
	struct fetch *f = NULL;
	struct entry *e;
	int rc;

	*token = NULL;
	pthread_mutex_lock(&app->mu);
	if (!app->c.app_id) {
		pthread_mutex_unlock(&app->mu);
		return sw_error_setc(SW_EINVALID, "github.app is not configured");
	}
	e = entry_get(app, repo);
	if (refresh && !(e->fetching & FETCH_WORKER))
		sw_github_token_release(&e->tok);
	for (;;) {
		rc = entry_answer(app, e, token, NULL);
		if (rc != 1 || !(e->fetching & FETCH_WORKER))
			break;
		/* another worker fetches it: wait for its answer (a failure
		 * comes back through entry_answer, held for fail_hold_ms) */
		pthread_cond_wait(&app->cv, &app->mu);
		/* a reload may have dropped the entry meanwhile */
		e = entry_get(app, repo);
	}
	if (rc == 1)
		f = fetch_claim(app, e, FETCH_WORKER);
	pthread_mutex_unlock(&app->mu);
	if (rc != 1)
		return rc;
	if (!f)
		return sw_error_set("GitHub App token for %s: no App configured", repo);
	for (;;) {
		struct sw_http_reply r;
		struct step_req q;
		if ((rc = step_init(&q, f)) < 0)
			break;
		int neterr = sw_http_fetch(&q.o, &r) < 0;
		char *msg = sw_strdup(neterr ? sw_error_last() : "");
		step_free(&q);
		rc = fetch_judge(f, neterr, msg, r.status, &r.body);
		sw_http_reply_release(&r);
		free(msg);
		if (rc != 1)
			break;
	}
	if (rc == 0)
		*token = sw_strdup(f->tok.token);
	{
		char *msg = rc < 0 ? sw_strdup(sw_error_last()) : NULL;
		fetch_finish(f, rc);
		if (msg)
			sw_error_setc(rc, "%s", msg);
		free(msg);
	}
	fetch_free(f);
	return rc;
}

int sw_github_app_git_token(char **out, const char *repo, int refresh, void *arg)
{
	struct sw_github_app *app = arg;

	*out = NULL;
	if (!sw_github_app_enabled(app)) {
		sw_error_clear();
		return SW_ENOTFOUND;
	}
	return sw_github_app_token_wait(app, repo, refresh, out);
}

int sw_github_app_check(struct sw_github_app *app, const struct sw_config *cfg, void *out)
{
	FILE *fp = out;
	int failed = 0;

	for (size_t i = 0; i < cfg->nrepos; i++) {
		const char *repo = cfg->repos[i].name;
		char *tok = NULL;
		if (!repo)
			continue;
		int rc = sw_github_app_token_wait(app, repo, 0, &tok);
		if (rc == SW_ERR) {
			fprintf(fp, "github.app: %s: not checked, GitHub is out of reach: %s\n", repo,
				sw_error_last());
		} else if (rc < 0) {
			fprintf(fp, "github.app: %s: %s\n", repo, sw_error_last());
			failed++;
		} else {
			fprintf(fp, "github.app: %s: ok (installation %lld)\n", repo,
				(long long)sw_github_app_installation(app, repo));
			memset(tok, 0, strlen(tok));
		}
		free(tok);
	}
	return failed;
}

void sw_github_app_free(struct sw_github_app *app)
{
	if (!app)
		return;
	while (app->pending) {
		struct pending *p = app->pending;
		app->pending = p->next;
		sw_http_cancel(p->call);
		fetch_free(p->f);
		free(p);
	}
	while (app->entries) {
		struct entry *e = app->entries;
		app->entries = e->next;
		entry_free(e);
	}
	conf_release(&app->c);
	free(app->user_agent);
	pthread_cond_destroy(&app->cv);
	pthread_mutex_destroy(&app->mu);
	free(app);
}
