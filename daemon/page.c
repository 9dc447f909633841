/*
 * page.c - the status page and /metrics.
 *
 *   GET /                             environment cards, then recent runs (?before=ID pages)
 *   GET /runs/{id}                    one run: trigger, commit, stages with their logs
 *   GET /runs/{id}/stages/{name}/events   live log (Server-Sent Events, sse.c)
 *   GET /environments/{name}          deploy history, drift, inventory, actions
 *   GET /metrics                      Prometheus text format (metrics.c)
 *
 * Pages are built in one sw_buf from short indexed queries (a page of runs
 * costs the same with 10 or 100,000 stored), with inline CSS and a few lines
 * of inline JS, and no external asset. Every string that comes from a user
 * or a peer (commit messages, branch names, PR titles, logs, object names)
 * goes through sw_html_esc() or sw_ansi_feed(); a per-response CSP nonce
 * keeps any script that slipped through from running. `?tv=1` gives large
 * type and a refresh every 15 s for a wall screen.
 */
#include <event2/buffer.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <event2/bufferevent.h>
#include <jansson.h>

#include "daemon/auth-int.h"
#include "daemon/daemon.h"
#include "daemon/metrics-int.h"
#include "daemon/page-html-int.h"
#include "daemon/page-int.h"
#include "lib/base64.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/utf8.h"
#include "report/report.h"
#include "lib/version.h"
#include "github/github.h"
#include "pipeline/pipeline.h"
#include "storage/store.h"

#define RUNS_PER_PAGE 30
#define HISTORY_ON_PAGE 30
#define DRIFT_ON_PAGE 30
/* The run page shows at most this much of each stage's log (its end). */
#define LOG_ON_PAGE (256 * 1024)

/* ------------------------------------------------------------------ */
/* Layout                                                              */
/* ------------------------------------------------------------------ */

static const char css[] =
	":root{--bg:#f5f6f8;--card:#fff;--fg:#1c2330;--mute:#657080;--line:#e1e5ea;"
	"--ok:#1a7f37;--bad:#cf222e;--warn:#b35900;--run:#0969da;--q:#8c959f;"
	"--logbg:#0f141a;--logfg:#e6edf3}"
	"@media(prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#161b22;--fg:#e6edf3;"
	"--mute:#8b949e;--line:#30363d;--run:#4493f8}}"
	"*{box-sizing:border-box}"
	"body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;"
	"background:var(--bg);color:var(--fg)}"
	"header{display:flex;align-items:center;gap:1rem;padding:.6rem 1.2rem;"
	"background:var(--card);border-bottom:1px solid var(--line)}"
	".brand{font-weight:700;font-size:1.15rem;color:inherit;text-decoration:none}"
	".brand:before{content:'';display:inline-block;width:.8em;height:.8em;margin-right:.45em;"
	"border-radius:.2em .2em .5em .5em;background:linear-gradient(135deg,#0969da,#1a7f37)}"
	"nav{margin-left:auto;display:flex;gap:1rem;align-items:center}"
	"a{color:var(--run);text-decoration:none}a:hover{text-decoration:underline}"
	"main{max-width:1280px;margin:0 auto;padding:1rem 1.2rem 2rem}"
	"h1{font-size:1.4rem;margin:.3rem 0 1rem;display:flex;gap:.6rem;align-items:center;flex-wrap:wrap}"
	"h2{font-size:1.1rem;margin:1.6rem 0 .6rem}"
	".cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:1rem}"
	".card{background:var(--card);border:1px solid var(--line);border-radius:10px;"
	"padding:.9rem 1rem;border-top:4px solid var(--q)}"
	".card.synced{border-top-color:var(--ok)}.card.failed{border-top-color:var(--bad)}"
	".card.out_of_sync,.card.rolled_back{border-top-color:var(--warn)}"
	".card.syncing{border-top-color:var(--run)}"
	".card h3{margin:0 0 .6rem;font-size:1.15rem;display:flex;gap:.5rem;align-items:center;"
	"flex-wrap:wrap}.card h3 a{color:inherit}"
	"dl{display:grid;grid-template-columns:auto 1fr;gap:.3rem .9rem;margin:0}"
	"dt{color:var(--mute)}dd{margin:0;min-width:0;overflow-wrap:anywhere}"
	".badge{display:inline-block;padding:.08rem .55rem;border-radius:999px;font-size:.78rem;"
	"font-weight:600;color:#fff;background:var(--q);white-space:nowrap;vertical-align:middle}"
	".chips{display:flex;flex-wrap:wrap;gap:.25rem}"
	".chip{font-size:.75rem;padding:.05rem .45rem;border-radius:4px;color:#fff;background:var(--q)}"
	".s-success,.s-synced,.s-healthy,.s-created,.s-configured,.s-healed{background:var(--ok)}"
	".s-failure,.s-failed,.s-degraded,.s-error,.s-heal_failed{background:var(--bad)}"
	".s-running,.s-syncing,.s-progressing{background:var(--run)}"
	".s-out_of_sync,.s-rolled_back,.s-interrupted,.s-missing,.s-reported,.s-pruned"
	"{background:var(--warn)}"
	".s-skipped,.s-unchanged{background:#d0d7de;color:#3b434b}.s-cancelled{background:#6e7781}"
	".badge+.badge{margin-left:.3rem}"
	".s-running{animation:pulse 1.6s ease-in-out infinite}@keyframes pulse{50%{opacity:.55}}"
	".tbl{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:10px}"
	"table{width:100%;border-collapse:collapse}"
	"th,td{text-align:left;padding:.5rem .7rem;border-bottom:1px solid var(--line);vertical-align:top}"
	"tr:last-child td{border-bottom:0}"
	"th{font-size:.75rem;color:var(--mute);text-transform:uppercase;letter-spacing:.04em;font-weight:600}"
	"a.chip:hover{text-decoration:none;filter:brightness(1.1)}"
	"code,.sha{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em}"
	".mute{color:var(--mute)}.small{font-size:.85rem}"
	".msg{display:block;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;max-width:30rem}"
	".pager{display:flex;gap:1.2rem;margin-top:.8rem}"
	".stage{background:var(--card);border:1px solid var(--line);border-radius:10px;"
	"padding:.8rem 1rem;margin-bottom:.9rem}"
	".stage h3{margin:0;font-size:1.05rem;display:flex;gap:.6rem;align-items:center;flex-wrap:wrap}"
	"pre.log{background:var(--logbg);color:var(--logfg);padding:.7rem .9rem;border-radius:8px;"
	"overflow:auto;max-height:70vh;margin:.6rem 0 0;white-space:pre-wrap;overflow-wrap:anywhere;"
	"font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}"
	"pre.log:empty:before{content:'(no output yet)';color:#8b949e}"
	".log .b{font-weight:700}.log .i{font-style:italic}.log .u{text-decoration:underline}"
	"button{font:inherit;padding:.35rem .9rem;border-radius:6px;border:1px solid var(--line);"
	"background:var(--card);color:var(--fg);cursor:pointer}"
	"button.primary{background:var(--run);color:#fff;border-color:var(--run)}"
	"select{font:inherit;padding:.3rem;border-radius:6px;border:1px solid var(--line);"
	"background:var(--card);color:var(--fg);max-width:100%}"
	".actions{display:flex;gap:1rem;flex-wrap:wrap;align-items:center;margin:.2rem 0 1rem}"
	".actions form{display:flex;gap:.5rem;align-items:center;margin:0}"
	"details summary{cursor:pointer}"
	".notice{background:var(--card);border:1px solid var(--line);border-left:4px solid var(--warn);"
	"padding:.6rem .9rem;border-radius:6px;margin:.6rem 0;overflow-wrap:anywhere}"
	"footer{max-width:1280px;margin:0 auto;padding:0 1.2rem 1.5rem;color:var(--mute);font-size:.8rem}"
	"body.tv{font-size:21px}body.tv main,body.tv footer{max-width:none}"
	"body.tv .cards{grid-template-columns:repeat(auto-fill,minmax(460px,1fr))}"
	"body.tv .msg{max-width:40rem}"
	"@media(max-width:700px){main{padding:.6rem}.hide-sm{display:none}th,td{padding:.4rem}"
	".msg{max-width:11rem}.cards{grid-template-columns:1fr}header{padding:.5rem .7rem}}"
	"svg.cost{display:block;margin:.2rem 0}svg.cost rect{fill:var(--run)}";

static const char *const palette[16] = {
	"#5c6370", "#ff7b72", "#3fb950", "#d29922", "#58a6ff", "#bc8cff", "#39c5cf", "#b1bac4",
	"#8b949e", "#ffa198", "#56d364", "#e3b341", "#79c0ff", "#d2a8ff", "#56d4dd", "#ffffff",
};

/* Small scripts: relative times keep ticking; live logs; action forms. */
static const char js_common[] =
	"(function(){function ago(t){var d=(Date.now()-t)/1000,a=Math.abs(d),s;"
	"if(a<5)return'just now';s=a<60?Math.floor(a)+'s':a<3600?Math.floor(a/60)+'m':"
	"a<86400?Math.floor(a/3600)+'h':Math.floor(a/86400)+'d';return d<0?'in '+s:s+' ago'}"
	"function tick(){document.querySelectorAll('time[datetime]').forEach(function(e){"
	"e.textContent=ago(Date.parse(e.getAttribute('datetime')))})}setInterval(tick,15000);"
	"document.querySelectorAll('pre[data-live]').forEach(function(p){"
	"var es=new EventSource(p.dataset.live+'?offset='+p.dataset.offset);"
	"es.onmessage=function(e){var end=p.scrollTop+p.clientHeight>=p.scrollHeight-24;"
	"p.insertAdjacentHTML('beforeend',e.data);if(end)p.scrollTop=p.scrollHeight};"
	"es.addEventListener('end',function(e){es.close();var b=document.getElementById(p.dataset.badge);"
	"if(b){b.textContent=e.data;b.className='badge s-'+e.data}})});"
	"document.querySelectorAll('form[data-api]').forEach(function(f){f.addEventListener('submit',"
	"function(ev){ev.preventDefault();var o=f.querySelector('output'),c=f.elements.csrf;"
	"o.textContent='\\u2026';fetch(f.action,{method:'POST',credentials:'same-origin',"
	"headers:{'X-CSRF-Token':c?c.value:''},body:new URLSearchParams(new FormData(f))})"
	".then(function(r){return r.json().then(function(j){o.textContent=r.ok?'accepted':"
	"(j.error||r.status)})}).catch(function(e){o.textContent=String(e)})})})})();";

struct page {
	struct sw_buf b;
	char nonce[33];
	int tv;
	int64_t now;
};

static void page_nonce(struct page *p)
{
	unsigned char r[16];
	if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
		/* no entropy yet (early boot): still unique per response */
		uint64_t t = (uint64_t)sw_mono_ms() ^ ((uint64_t)(uintptr_t)p << 16);
		for (size_t i = 0; i < sizeof(r); i++)
			r[i] = (unsigned char)(t >> (8 * (i % 8))) ^ (unsigned char)(i * 37);
	}
	sw_hex(p->nonce, r, sizeof(r));
}

static const char *palette_css(void)
{
	static char buf[2048];
	if (!buf[0]) {
		size_t n = 0;
		for (int i = 0; i < 16; i++)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, ".log .f%d{color:%s}"
					      ".log .g%d{background:%s}", i, palette[i], i,
					      palette[i]);
	}
	return buf;
}

/*
 * When the database is locked (another process holds its write lock), the
 * engine's writes wait in memory and what the page reads may be behind.
 */
static void storage_banner(struct page *p, struct sw_daemon *d)
{
	struct sw_storage_state s = { 0 };
	if (d->engine)
		sw_engine_storage_state(d->engine, &s);
	if (!s.pending_writes)
		return;
	sw_buf_addf(&p->b, "<p class=notice role=alert><b>Storage is unavailable</b>: %zu "
		    "change%s wait%s to be written, since ", s.pending_writes,
		    s.pending_writes == 1 ? "" : "s", s.pending_writes == 1 ? "s" : "");
	sw_time_iso(&p->b, s.since_ms);
	sw_buf_adds(&p->b, " (");
	sw_html_esc(&p->b, s.error ? s.error : "unknown error");
	sw_buf_adds(&p->b, "). What this page shows may be behind; nothing is lost, slipway "
		    "writes it when the database takes writes again.</p>");
}

/* The GitHub App cannot get a token for some repository: say why. */
static void github_banner(struct page *p, struct sw_daemon *d)
{
	struct sw_buf msg = SW_BUF_INIT;
	size_t n = sw_github_app_failures(d->github, &msg);

	if (n) {
		sw_buf_addf(&p->b, "<p class=notice role=alert><b>GitHub App</b>: no token for %zu "
			    "repositor%s, so statuses and comments wait and fetches fail: ", n,
			    n == 1 ? "y" : "ies");
		sw_html_esc(&p->b, msg.ptr);
		sw_buf_adds(&p->b, "</p>");
	}
	sw_buf_release(&msg);
}

static void page_begin(struct page *p, struct sw_daemon *d, struct evhttp_request *req,
		       const char *title, int refresh)
{
	sw_buf_init(&p->b);
	p->now = sw_now_ms();
	page_nonce(p);
	sw_buf_adds(&p->b, "<!doctype html><html lang=en><head><meta charset=utf-8>"
		    "<meta name=viewport content=\"width=device-width,initial-scale=1\">");
	if (refresh)
		sw_buf_addf(&p->b, "<meta http-equiv=refresh content=%d>", refresh);
	sw_buf_adds(&p->b, "<title>");
	sw_html_esc(&p->b, title);
	sw_buf_adds(&p->b, " \xc2\xb7 slipway</title><link rel=icon href=\"data:,\"><style>");
	sw_buf_add(&p->b, css, sizeof(css) - 1);
	sw_buf_adds(&p->b, palette_css());
	sw_buf_addf(&p->b, "</style></head><body%s><header><a class=brand href=\"/%s\">slipway</a>"
		    "<nav><a href=\"/%s\">Status</a><a href=\"/metrics\" class=hide-sm>Metrics</a>",
		    p->tv ? " class=tv" : "", p->tv ? "?tv=1" : "", p->tv ? "?tv=1" : "");
	struct sw_actor who;
	if (sw_auth_actor(d, req, &who)) {
		if (sw_roles_allows(d->cfg, &who, SW_ROLE_ADMIN, NULL))
			sw_buf_adds(&p->b, "<a href=\"/audit\">Audit</a>");
		sw_actor_release(&who);
		sw_buf_adds(&p->b, "<form method=post action=\"/logout\" style=\"margin:0\">"
			    "<button type=submit>Log out</button></form>");
	} else {
		if (d->cfg->oauth_client_id)
			sw_buf_adds(&p->b, "<a href=\"/login/github\">Sign in with GitHub</a>");
		sw_buf_adds(&p->b, "<a href=\"/login\">Log in</a>");
	}
	sw_buf_adds(&p->b, "</nav></header><main>");
	storage_banner(p, d);
	github_banner(p, d);
}

static void page_end(struct page *p)
{
	sw_buf_addf(&p->b, "</main><footer>slipway %s &middot; rendered ", SLIPWAY_VERSION);
	sw_time_iso(&p->b, p->now);
	sw_buf_addf(&p->b, "</footer><script nonce=\"%s\">%s</script></body></html>\n", p->nonce,
		    js_common);
}

/*
 * A page is larger than one segment; with Nagle on, its last short segment
 * waits for the ACK of the previous one, which a keep-alive client delays
 * by up to 40 ms. The page is written whole, so there is nothing to
 * coalesce: send at once.
 */
static void no_delay(struct evhttp_request *req)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Send the page and free it. */
static void page_send(struct page *p, struct evhttp_request *req, int code)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *out = evbuffer_new();
	struct sw_buf csp = SW_BUF_INIT;
	sw_buf_addf(&csp, "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
		    "script-src 'nonce-%s'; connect-src 'self'; form-action 'self'; "
		    "base-uri 'none'; frame-ancestors 'none'", p->nonce);
	evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "Content-Security-Policy", csp.ptr);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "Referrer-Policy", "same-origin");
	evbuffer_add(out, p->b.ptr, p->b.len);
	no_delay(req);
	evhttp_send_reply(req, code, NULL, out);
	evbuffer_free(out);
	sw_buf_release(&csp);
	sw_buf_release(&p->b);
}

static void page_error(struct sw_daemon *d, struct evhttp_request *req, struct page *p,
		       int code, const char *msg)
{
	page_begin(p, d, req, code == 404 ? "Not found" : "Error", 0);
	sw_buf_addf(&p->b, "<h1>%d</h1><p class=notice>", code);
	sw_html_esc(&p->b, msg);
	sw_buf_adds(&p->b, "</p><p><a href=\"/\">Back to the status page</a></p>");
	page_end(p);
	page_send(p, req, code);
}

/* ------------------------------------------------------------------ */
/* Small pieces                                                        */
/* ------------------------------------------------------------------ */

static void badge(struct sw_buf *b, const char *state, const char *id)
{
	sw_buf_adds(b, "<span class=\"badge s-");
	sw_html_esc(b, state);
	sw_buf_adds(b, "\"");
	if (id) {
		sw_buf_adds(b, " id=\"");
		sw_html_esc(b, id);
		sw_buf_adds(b, "\"");
	}
	sw_buf_adds(b, ">");
	for (const char *s = state; *s; s++)
		sw_buf_addch(b, *s == '_' ? ' ' : *s);   /* "out of sync" */
	sw_buf_adds(b, "</span>");
}

/* A commit: short sha linked to GitHub. */
static void commit_link(struct sw_buf *b, const char *repo, const char *sha)
{
	if (!sha || !*sha) {
		sw_buf_adds(b, "<span class=mute>&ndash;</span>");
		return;
	}
	if (repo && *repo) {
		sw_buf_adds(b, "<a class=sha href=\"https://github.com/");
		sw_html_esc(b, repo);
		sw_buf_adds(b, "/commit/");
		sw_html_esc(b, sha);
		sw_buf_adds(b, "\">");
	} else {
		sw_buf_adds(b, "<span class=sha>");
	}
	sw_html_escn(b, sha, strnlen(sha, 7));
	sw_buf_adds(b, repo && *repo ? "</a>" : "</span>");
}

/* The first line of a commit message. */
static void first_line(struct sw_buf *b, const char *msg)
{
	const char *nl;
	if (!msg)
		return;
	nl = strchr(msg, '\n');
	sw_html_escn(b, msg, nl ? (size_t)(nl - msg) : strlen(msg));
}

static void run_trigger(struct sw_buf *b, const struct sw_store_run *r)
{
	if (r->kind == SW_RUN_PULL_REQUEST && r->pr_number > 0) {
		sw_buf_adds(b, "<a href=\"https://github.com/");
		sw_html_esc(b, r->repo);
		sw_buf_addf(b, "/pull/%lld\">PR #%lld</a> ", (long long)r->pr_number,
			    (long long)r->pr_number);
		sw_html_esc(b, r->pr_title);
	} else {
		sw_html_esc(b, sw_store_run_kind_str(r->kind));
		if (r->branch) {
			sw_buf_adds(b, " <code>");
			sw_html_esc(b, r->branch);
			sw_buf_adds(b, "</code>");
		}
		if (r->environment) {
			sw_buf_adds(b, " &rarr; <a href=\"/environments/");
			sw_url_esc(b, r->environment);
			sw_buf_adds(b, "\">");
			sw_html_esc(b, r->environment);
			sw_buf_adds(b, "</a>");
		}
	}
}

static int64_t run_duration(const struct sw_store_run *r, int64_t now)
{
	if (!r->started_at)
		return -1;
	return (r->finished_at ? r->finished_at : now) - r->started_at;
}

static int64_t stage_duration(const struct sw_store_stage *s, int64_t now)
{
	if (!s->started_at)
		return -1;
	return (s->finished_at ? s->finished_at : now) - s->started_at;
}

static int query_get(struct evhttp_request *req, struct evkeyvalq *q)
{
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	TAILQ_INIT(q);
	return query ? evhttp_parse_query_str(query, q) : 0;
}

static int64_t query_int(struct evkeyvalq *q, const char *key)
{
	const char *v = evhttp_find_header(q, key);
	char *end;
	long long n;
	if (!v || !*v)
		return 0;
	n = strtoll(v, &end, 10);
	return *end || n < 0 ? 0 : (int64_t)n;
}

/* ------------------------------------------------------------------ */
/* GET /                                                               */
/* ------------------------------------------------------------------ */

/* The run that deployed `sha` to `env`, for its message and author. */
static int deployed_run(struct sw_daemon *d, const char *env, const char *sha,
			struct sw_store_run *out)
{
	struct sw_store_sync_list h = { 0 };
	struct sw_store_run_filter f = SW_STORE_RUN_FILTER_INIT;
	struct sw_store_run_list l = { 0 };
	int found = 0;

	if (!sha)
		return 0;
	if (sw_store_sync_history(d->store, env, 1, &h) == 0 && h.n && h.v[0].run_id &&
	    sw_store_run_get(d->store, h.v[0].run_id, out) == 0) {
		if (out->commit_sha && !strcmp(out->commit_sha, sha))
			found = 1;
		else
			sw_store_run_release(out);
	}
	sw_store_sync_list_release(&h);
	if (found)
		return 1;
	f.environment = env;
	f.limit = 10;
	if (sw_store_run_list(d->store, &f, &l) == 0)
		for (size_t i = 0; i < l.n && !found; i++)
			if (l.v[i].commit_sha && !strcmp(l.v[i].commit_sha, sha)) {
				*out = l.v[i];
				memset(&l.v[i], 0, sizeof(l.v[i]));
				found = 1;
			}
	sw_store_run_list_release(&l);
	return found;
}

/* The card's cost: the month so far against the month before, the last
 * 30 days as bars, or why there are no figures (only with a cost: block). */
static void cost_row(struct sw_daemon *d, struct sw_buf *b, const char *env)
{
	const struct sw_report_cost *c = sw_costs_get(d->costs, env);
	if (!d->cfg->cost.enabled)
		return;
	sw_buf_adds(b, "</dd><dt>cost</dt><dd>");
	if (!c) {
		sw_buf_adds(b, "<span class=mute>not known yet</span>");
		return;
	}
	char *line = sw_report_cost_line(c);
	if (c->have) {
		char *svg = sw_report_cost_svg(c);
		sw_buf_adds(b, svg);
		free(svg);
	}
	sw_buf_addf(b, "<span class=\"%s\">", c->have ? "small" : "mute small");
	sw_html_esc(b, line);
	sw_buf_adds(b, "</span>");
	if (c->have && c->error) {
		sw_buf_adds(b, "<br><span class=\"mute small\">kept from before: ");
		sw_html_esc(b, c->error);
		sw_buf_adds(b, "</span>");
	}
	free(line);
}

static void env_card(struct sw_daemon *d, struct page *p, const struct sw_cfg_env *ce)
{
	struct sw_buf *b = &p->b;
	struct sw_store_env e = { 0 };
	struct sw_store_run r = { 0 };
	struct sw_store_drift dr = { 0 };
	int have = sw_store_env_get(d->store, ce->name, &e) == 0;
	const char *state = have ? sw_store_env_sync_str(e.sync_status) : "unknown";
	const char *sha = have ? (e.synced_commit ? e.synced_commit : NULL) : NULL;
	int have_run = have && deployed_run(d, ce->name, sha, &r);

	sw_buf_addf(b, "<section class=\"card %s\"><h3><a href=\"/environments/", state);
	sw_url_esc(b, ce->name);
	sw_buf_adds(b, "\">");
	sw_html_esc(b, ce->name);
	sw_buf_adds(b, "</a> ");
	badge(b, state, NULL);
	if (have && e.health != SW_HEALTH_UNKNOWN)
		badge(b, sw_store_health_str(e.health), NULL);
	sw_buf_adds(b, "</h3><dl><dt>branch</dt><dd><code>");
	sw_html_esc(b, ce->branch);
	sw_buf_adds(b, "</code></dd><dt>deployed</dt><dd>");
	commit_link(b, ce->repo, sha);
	if (have_run) {
		sw_buf_adds(b, " <span class=msg title=\"");
		sw_html_esc(b, r.message);
		sw_buf_adds(b, "\">");
		first_line(b, r.message);
		sw_buf_adds(b, "</span><span class=\"mute small\">");
		sw_html_esc(b, r.author);
		sw_buf_adds(b, "</span>");
	}
	if (have && e.desired_commit && sha && strcmp(e.desired_commit, sha)) {
		sw_buf_adds(b, "<br><span class=\"mute small\">wanted</span> ");
		commit_link(b, ce->repo, e.desired_commit);
	}
	if (have && e.rolled_back_to) {
		sw_buf_adds(b, "<br><span class=\"mute small\">rolled back to</span> ");
		commit_link(b, ce->repo, e.rolled_back_to);
	}
	sw_buf_adds(b, "</dd><dt>last sync</dt><dd>");
	if (have && e.last_sync_at > 0) {
		sw_html_time(b, e.last_sync_at, p->now);
		sw_buf_adds(b, " <span class=mute>in ");
		sw_duration(b, e.last_sync_ms);
		sw_buf_adds(b, "</span>");
	} else {
		sw_buf_adds(b, "<span class=mute>never</span>");
	}
	sw_buf_adds(b, "</dd><dt>drift</dt><dd>");
	if (sw_store_drift_latest(d->store, ce->name, &dr) == 0) {
		badge(b, sw_store_drift_action_str(dr.action), NULL);
		sw_buf_adds(b, " <code>");
		sw_html_esc(b, dr.kind);
		sw_buf_adds(b, "/");
		sw_html_esc(b, dr.name);
		sw_buf_adds(b, "</code> ");
		sw_html_time(b, dr.detected_at, p->now);
	} else {
		sw_buf_adds(b, "<span class=mute>none</span>");
	}
	sw_buf_adds(b, "</dd><dt>infra</dt><dd>");
	if (have && e.infra_status && *e.infra_status)
		sw_html_esc(b, e.infra_status);
	else
		sw_buf_adds(b, "<span class=mute>&ndash;</span>");
	cost_row(d, b, ce->name);
	sw_buf_adds(b, "</dd></dl>");
	if (have && e.message && *e.message) {
		sw_buf_adds(b, "<p class=\"mute small\" style=\"margin:.6rem 0 0\">");
		sw_html_esc(b, e.message);
		sw_buf_adds(b, "</p>");
	}
	sw_buf_adds(b, "</section>");
	sw_store_drift_release(&dr);
	sw_store_run_release(&r);
	sw_store_env_release(&e);
}

static void stage_chips(struct sw_daemon *d, struct sw_buf *b, const struct sw_store_run *r)
{
	struct sw_store_stage_list l = { 0 };
	sw_buf_adds(b, "<div class=chips>");
	if (sw_store_stages_list(d->store, r->id, &l) == 0)
		for (size_t i = 0; i < l.n; i++) {
			const char *st = sw_store_status_str(l.v[i].status);
			sw_buf_addf(b, "<a class=\"chip s-%s\" title=\"", st);
			sw_html_esc(b, l.v[i].name);
			sw_buf_addf(b, ": %s\" href=\"/runs/%lld#stage-", st, (long long)r->id);
			sw_url_esc(b, l.v[i].name);
			sw_buf_adds(b, "\">");
			sw_html_esc(b, l.v[i].name);
			sw_buf_adds(b, "</a>");
		}
	sw_store_stage_list_release(&l);
	sw_buf_adds(b, "</div>");
}

static void runs_table(struct sw_daemon *d, struct page *p, const struct sw_store_run_list *l)
{
	struct sw_buf *b = &p->b;
	if (!l->n) {
		sw_buf_adds(b, "<p class=mute>No runs yet.</p>");
		return;
	}
	sw_buf_adds(b, "<div class=tbl><table><thead><tr><th>run</th><th>status</th>"
		    "<th>trigger</th><th class=hide-sm>commit</th><th>stages</th><th class=hide-sm>started</th>"
		    "<th class=hide-sm>took</th></tr></thead><tbody>");
	for (size_t i = 0; i < l->n; i++) {
		const struct sw_store_run *r = &l->v[i];
		int64_t dur = run_duration(r, p->now);
		sw_buf_addf(b, "<tr><td><a href=\"/runs/%lld\">#%lld</a></td><td>", (long long)r->id,
			    (long long)r->id);
		badge(b, sw_store_status_str(r->status), NULL);
		sw_buf_adds(b, "</td><td>");
		run_trigger(b, r);
		sw_buf_adds(b, "</td><td class=hide-sm>");
		commit_link(b, r->repo, r->commit_sha);
		sw_buf_adds(b, " <span class=msg title=\"");
		sw_html_esc(b, r->message);
		sw_buf_adds(b, "\">");
		first_line(b, r->message);
		sw_buf_adds(b, "</span><span class=\"mute small\">");
		sw_html_esc(b, r->author);
		sw_buf_adds(b, "</span></td><td>");
		stage_chips(d, b, r);
		sw_buf_adds(b, "</td><td class=hide-sm>");
		sw_html_time(b, r->created_at, p->now);
		sw_buf_adds(b, "</td><td class=hide-sm>");
		if (dur >= 0)
			sw_duration(b, dur);
		sw_buf_adds(b, "</td></tr>");
	}
	sw_buf_adds(b, "</tbody></table></div>");
}

static void index_page(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	struct page p = { 0 };
	struct evkeyvalq q;
	struct sw_store_run_filter f = SW_STORE_RUN_FILTER_INIT;
	struct sw_store_run_list runs = { 0 };
	const char *tvq;

	if (*rest) {
		/* "/" is the catch-all prefix of the last route table */
		if (!strncmp(evhttp_request_get_uri(req), "/api/", 5))
			sw_reply_error(req, 404, "no such path: %s", evhttp_request_get_uri(req));
		else
			page_error(d, req, &p, 404, "There is no page here.");
		return;
	}
	if (sw_auth_check_read(d, req) < 0)
		return;
	query_get(req, &q);
	p.tv = query_int(&q, "tv") == 1;
	tvq = p.tv ? "&tv=1" : "";
	f.before_id = query_int(&q, "before");
	f.limit = RUNS_PER_PAGE;
	evhttp_clear_headers(&q);

	page_begin(&p, d, req, "Status", p.tv ? 15 : 0);
	if (!f.before_id) {
		sw_buf_adds(&p.b, "<h1>Environments</h1>");
		if (!d->cfg->nenvs)
			sw_buf_adds(&p.b, "<p class=mute>No environment is configured.</p>");
		sw_buf_adds(&p.b, "<div class=cards>");
		for (size_t i = 0; i < d->cfg->nenvs; i++)
			env_card(d, &p, &d->cfg->envs[i]);
		sw_buf_adds(&p.b, "</div><h2>Recent runs</h2>");
	} else {
		sw_buf_addf(&p.b, "<h1>Runs before #%lld</h1>", (long long)f.before_id);
	}
	if (sw_store_run_list(d->store, &f, &runs) < 0) {
		sw_buf_adds(&p.b, "<p class=notice>Runs cannot be read: ");
		sw_html_esc(&p.b, sw_error_last());
		sw_buf_adds(&p.b, "</p>");
	}
	runs_table(d, &p, &runs);
	sw_buf_adds(&p.b, "<div class=pager>");
	if (f.before_id)
		sw_buf_addf(&p.b, "<a href=\"/%s\">&larr; newest</a>", p.tv ? "?tv=1" : "");
	if (runs.n == (size_t)f.limit)
		sw_buf_addf(&p.b, "<a href=\"/?before=%lld%s\">older &rarr;</a>",
			    (long long)runs.v[runs.n - 1].id, tvq);
	sw_buf_adds(&p.b, "</div>");
	sw_store_run_list_release(&runs);
	page_end(&p);
	page_send(&p, req, 200);
}

/* ------------------------------------------------------------------ */
/* GET /runs/{id}                                                      */
/* ------------------------------------------------------------------ */

static void stage_log(struct sw_daemon *d, struct sw_buf *b, const struct sw_store_stage *s,
		      int64_t run_id)
{
	int64_t size = 0, start, next = 0;
	struct sw_buf raw = SW_BUF_INIT;
	size_t skip = 0;
	int live = !sw_store_status_is_final(s->status);

	if (sw_store_log_size(d->store, s->id, &size) < 0)
		size = 0;
	start = size > LOG_ON_PAGE ? size - LOG_ON_PAGE : 0;
	if (size > 0 && sw_store_log_read(d->store, s->id, start, LOG_ON_PAGE, &raw, &next) < 0)
		next = start;
	if (start > 0) {
		/* begin on a whole character */
		skip = sw_utf8_ceil(raw.ptr, raw.len, 0);
		sw_buf_addf(b, "<p class=\"mute small\">The first %lld KiB of this log are not "
			    "shown.</p>", (long long)(start + (int64_t)skip) / 1024);
	}
	sw_buf_adds(b, "<pre class=log");
	if (live) {
		sw_buf_addf(b, " data-live=\"/runs/%lld/stages/", (long long)run_id);
		sw_url_esc(b, s->name);
		sw_buf_addf(b, "/events\" data-offset=\"%lld\" data-badge=\"badge-",
			    (long long)(size > 0 ? next : 0));
		sw_html_esc(b, s->name);
		sw_buf_adds(b, "\"");
	}
	sw_buf_adds(b, ">");
	sw_ansi_to_html(raw.ptr + skip, raw.len - skip, b);
	sw_buf_adds(b, "</pre>");
	sw_buf_release(&raw);
}

static void run_page(struct sw_daemon *d, struct evhttp_request *req, int64_t id)
{
	struct page p = { 0 };
	struct sw_store_run r = { 0 };
	struct sw_store_stage_list stages = { 0 };
	struct sw_buf *b = &p.b;
	struct sw_buf title = SW_BUF_INIT;
	int rc = sw_store_run_get(d->store, id, &r);
	int64_t dur;

	if (rc < 0) {
		page_error(d, req, &p, rc == SW_ENOTFOUND ? 404 : 500,
			   rc == SW_ENOTFOUND ? "No such run." : sw_error_last());
		return;
	}
	sw_buf_addf(&title, "Run #%lld", (long long)id);
	page_begin(&p, d, req, title.ptr, 0);
	sw_buf_release(&title);
	sw_buf_addf(b, "<h1>Run #%lld ", (long long)id);
	badge(b, sw_store_status_str(r.status), NULL);
	sw_buf_adds(b, "</h1><section class=card><dl><dt>trigger</dt><dd>");
	run_trigger(b, &r);
	sw_buf_adds(b, "</dd><dt>repository</dt><dd>");
	sw_html_esc(b, r.repo);
	if (r.branch) {
		sw_buf_adds(b, " <code>");
		sw_html_esc(b, r.branch);
		sw_buf_adds(b, "</code>");
	}
	sw_buf_adds(b, "</dd><dt>commit</dt><dd>");
	commit_link(b, r.repo, r.commit_sha);
	sw_buf_adds(b, " ");
	first_line(b, r.message);
	sw_buf_adds(b, " <span class=mute>");
	sw_html_esc(b, r.author);
	sw_buf_adds(b, "</span></dd><dt>created</dt><dd>");
	sw_html_time(b, r.created_at, p.now);
	if (r.attempt > 1)
		sw_buf_addf(b, " <span class=mute>(attempt %d)</span>", r.attempt);
	sw_buf_adds(b, "</dd>");
	if ((dur = run_duration(&r, p.now)) >= 0) {
		sw_buf_adds(b, "<dt>took</dt><dd>");
		sw_duration(b, dur);
		if (!r.finished_at)
			sw_buf_adds(b, " <span class=mute>so far</span>");
		sw_buf_adds(b, "</dd>");
	}
	if (r.superseded_by)
		sw_buf_addf(b, "<dt>superseded by</dt><dd><a href=\"/runs/%lld\">#%lld</a></dd>",
			    (long long)r.superseded_by, (long long)r.superseded_by);
	sw_buf_adds(b, "</dl>");
	if (r.reason && *r.reason) {
		sw_buf_adds(b, "<pre class=notice style=\"white-space:pre-wrap;margin-bottom:0\">");
		sw_html_esc(b, r.reason);
		sw_buf_adds(b, "</pre>");
	}
	sw_buf_adds(b, "</section><h2>Stages</h2>");
	if (sw_store_stages_list(d->store, id, &stages) < 0 || !stages.n)
		sw_buf_adds(b, "<p class=mute>No stages (yet).</p>");
	for (size_t i = 0; i < stages.n; i++) {
		const struct sw_store_stage *s = &stages.v[i];
		struct sw_buf bid = SW_BUF_INIT;
		int64_t sd = stage_duration(s, p.now);
		sw_buf_adds(b, "<section class=stage id=\"stage-");
		sw_html_esc(b, s->name);
		sw_buf_adds(b, "\"><h3>");
		sw_html_esc(b, s->name);
		sw_buf_adds(b, " ");
		sw_buf_addf(&bid, "badge-%s", s->name);
		badge(b, sw_store_status_str(s->status), bid.ptr);
		sw_buf_release(&bid);
		sw_buf_adds(b, "<span class=\"mute small\">");
		if (sd >= 0)
			sw_duration(b, sd);
		if (s->exit_code >= 0 && sw_store_status_is_final(s->status))
			sw_buf_addf(b, " &middot; exit %d", s->exit_code);
		if (s->image) {
			sw_buf_adds(b, " &middot; <code>");
			sw_html_esc(b, s->image);
			sw_buf_adds(b, "</code>");
		}
		sw_buf_adds(b, "</span></h3>");
		if (s->reason && *s->reason) {
			sw_buf_adds(b, "<p class=\"mute small\">");
			sw_html_esc(b, s->reason);
			sw_buf_adds(b, "</p>");
		}
		stage_log(d, b, s, id);
		sw_buf_adds(b, "</section>");
	}
	sw_store_stage_list_release(&stages);
	sw_store_run_release(&r);
	page_end(&p);
	page_send(&p, req, 200);
}

/* /runs/{id} and /runs/{id}/stages/{name}/events */
static void runs_route(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	struct page p = { 0 };
	char *end;
	long long id = strtoll(rest, &end, 10);

	if (sw_auth_check_read(d, req) < 0)
		return;
	if (end == rest || id <= 0) {
		page_error(d, req, &p, 404, "No such run.");
		return;
	}
	if (!*end) {
		run_page(d, req, id);
		return;
	}
	if (!strncmp(end, "/stages/", 8)) {
		const char *name = end + 8, *slash = strchr(name, '/');
		if (slash && !strcmp(slash, "/events") && slash > name) {
			char *raw = sw_strndup(name, (size_t)(slash - name));
			char *dec = evhttp_uridecode(raw, 0, NULL);
			if (dec)
				sw_sse_log(d, req, id, dec);
			else
				sw_reply_error(req, 400, "bad stage name");
			free(dec);
			free(raw);
			return;
		}
	}
	page_error(d, req, &p, 404, "There is no page here.");
}

/* ------------------------------------------------------------------ */
/* GET /environments/{name}                                            */
/* ------------------------------------------------------------------ */

static void env_actions(struct sw_daemon *d, struct evhttp_request *req, struct page *p,
			const struct sw_cfg_env *ce, const struct sw_store_sync_list *hist)
{
	struct sw_buf *b = &p->b;
	struct sw_actor who;
	char *csrf, why[512];

	if (!sw_auth_actor(d, req, &who)) {
		sw_buf_adds(b, "<p class=mute><a href=\"/login?next=/environments/");
		sw_url_esc(b, ce->name);
		sw_buf_adds(b, "\">Log in</a> to sync or roll back.</p>");
		return;
	}
	if (!sw_roles_allows(d->cfg, &who, SW_ROLE_DEPLOYER, ce->name)) {
		/* what the API would answer, said before the click */
		sw_roles_refusal(why, sizeof(why), d->cfg, &who, "Sync or rollback", SW_ROLE_DEPLOYER,
				 ce->name);
		sw_buf_adds(b, "<p class=\"notice refused\">");
		sw_html_esc(b, why);
		sw_buf_adds(b, ".</p>");
		sw_actor_release(&who);
		return;
	}
	sw_actor_release(&who);
	csrf = sw_auth_csrf_token(d, req);
	sw_buf_adds(b, "<div class=actions><form data-api method=post action=\"/api/v1/environments/");
	sw_url_esc(b, ce->name);
	sw_buf_adds(b, "/sync\">");
	if (csrf) {
		sw_buf_adds(b, "<input type=hidden name=csrf value=\"");
		sw_html_esc(b, csrf);
		sw_buf_adds(b, "\">");
	}
	sw_buf_adds(b, "<button class=primary type=submit>Sync now</button><output></output></form>");
	sw_buf_adds(b, "<form data-api method=post action=\"/api/v1/environments/");
	sw_url_esc(b, ce->name);
	sw_buf_adds(b, "/rollback\">");
	if (csrf) {
		sw_buf_adds(b, "<input type=hidden name=csrf value=\"");
		sw_html_esc(b, csrf);
		sw_buf_adds(b, "\">");
	}
	sw_buf_adds(b, "<select name=revision aria-label=revision>");
	int any = 0;
	for (size_t i = 0; i < hist->n; i++) {
		const struct sw_store_sync *s = &hist->v[i];
		if (s->status != SW_SYNC_SUCCESS || !s->commit_sha)
			continue;
		any = 1;
		sw_buf_adds(b, "<option value=\"");
		sw_html_esc(b, s->commit_sha);
		sw_buf_addf(b, "\">#%lld &middot; ", (long long)s->id);
		sw_html_escn(b, s->commit_sha, strnlen(s->commit_sha, 7));
		sw_buf_adds(b, " &middot; ");
		sw_time_iso(b, s->started_at);
		sw_buf_adds(b, "</option>");
	}
	if (!any)
		sw_buf_adds(b, "<option value=\"\">no successful deploy yet</option>");
	sw_buf_addf(b, "</select><button type=submit%s>Roll back</button><output></output></form>"
		    "</div>", any ? "" : " disabled");
	free(csrf);
}

/* One Kubernetes object as a table row: kind/namespace/name, a badge, a message. */
static void object_row(struct sw_buf *b, const char *kind, const char *ns, const char *name,
		       const char *state, const char *message)
{
	sw_buf_adds(b, "<tr><td><code>");
	sw_html_esc(b, kind);
	sw_buf_adds(b, "/");
	if (ns && *ns) {
		sw_html_esc(b, ns);
		sw_buf_adds(b, "/");
	}
	sw_html_esc(b, name);
	sw_buf_adds(b, "</code></td><td>");
	badge(b, state, NULL);
	sw_buf_adds(b, "</td><td class=small>");
	sw_html_esc(b, message);
	sw_buf_adds(b, "</td></tr>");
}

static void sync_objects(struct sw_daemon *d, struct sw_buf *b, int64_t sync_id)
{
	struct sw_store_sync s = { 0 };
	size_t counts[SW_OBJ_FAILED + 1] = { 0 };
	if (sw_store_sync_get(d->store, sync_id, &s) < 0 || !s.nobjects) {
		sw_buf_adds(b, "<span class=mute>&ndash;</span>");
		sw_store_sync_release(&s);
		return;
	}
	for (size_t i = 0; i < s.nobjects; i++)
		if (s.objects[i].result <= SW_OBJ_FAILED)
			counts[s.objects[i].result]++;
	sw_buf_addf(b, "<details><summary>%zu object%s", s.nobjects, s.nobjects == 1 ? "" : "s");
	for (int r = 0; r <= SW_OBJ_FAILED; r++)
		if (counts[r])
			sw_buf_addf(b, " &middot; %zu %s", counts[r],
				    sw_store_object_result_str((enum sw_object_result)r));
	sw_buf_adds(b, "</summary><table>");
	for (size_t i = 0; i < s.nobjects; i++) {
		const struct sw_store_sync_object *o = &s.objects[i];
		object_row(b, o->kind, o->namespace, o->name,
			   sw_store_object_result_str(o->result), o->message);
	}
	sw_buf_adds(b, "</table></details>");
	sw_store_sync_release(&s);
}

/* The Terraform outputs of a sync ({"MODULE": {"NAME": value}}, already redacted), folded. */
static void sync_infra_outputs(struct sw_buf *b, const char *outputs)
{
	json_t *doc = outputs ? json_loads(outputs, 0, NULL) : NULL, *mod, *v;
	const char *mname, *name;
	size_t n = 0;

	json_object_foreach(doc, mname, mod)
		n += json_object_size(mod);
	if (!n) {
		json_decref(doc);
		return;
	}
	sw_buf_addf(b, "<details><summary>%zu Terraform output%s</summary><table>", n,
		    n == 1 ? "" : "s");
	json_object_foreach(doc, mname, mod) {
		json_object_foreach(mod, name, v) {
			char *txt = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
			sw_buf_adds(b, "<tr><td><code>");
			sw_html_esc(b, name);
			sw_buf_adds(b, "</code><div class=\"small mute\">");
			sw_html_esc(b, mname);
			sw_buf_adds(b, "</div></td><td class=small><code>");
			if (txt && strlen(txt) > 200) {
				sw_html_escn(b, txt, 200);
				sw_buf_adds(b, "&hellip;");
			} else {
				sw_html_esc(b, txt ? txt : "");
			}
			sw_buf_adds(b, "</code></td></tr>");
			free(txt);
		}
	}
	sw_buf_adds(b, "</table></details>");
	json_decref(doc);
}

static void env_page(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	struct page p = { 0 };
	struct sw_buf *b = &p.b;
	char *name = evhttp_uridecode(rest, 0, NULL);
	const struct sw_cfg_env *ce = name ? sw_config_env(d->cfg, name) : NULL;
	struct sw_store_sync_list hist = { 0 };
	struct sw_store_drift_list drift = { 0 };
	struct sw_store_inv_list inv = { 0 };

	if (sw_auth_check_read(d, req) < 0)
		goto out;
	if (!ce) {
		page_error(d, req, &p, 404, "No such environment.");
		goto out;
	}
	page_begin(&p, d, req, ce->name, 0);
	sw_buf_adds(b, "<h1>");
	sw_html_esc(b, ce->name);
	sw_buf_adds(b, "</h1>");
	sw_store_sync_history(d->store, ce->name, HISTORY_ON_PAGE, &hist);
	env_actions(d, req, &p, ce, &hist);
	sw_buf_adds(b, "<div class=cards>");
	env_card(d, &p, ce);
	sw_buf_adds(b, "</div>");

	sw_buf_adds(b, "<h2>Deploy history</h2>");
	if (!hist.n) {
		sw_buf_adds(b, "<p class=mute>No deploy yet.</p>");
	} else {
		sw_buf_adds(b, "<div class=tbl><table><thead><tr><th>sync</th><th>commit</th>"
			    "<th>trigger</th><th>result</th><th>started</th><th>took</th>"
			    "<th>objects</th></tr></thead><tbody>");
		for (size_t i = 0; i < hist.n; i++) {
			const struct sw_store_sync *s = &hist.v[i];
			sw_buf_addf(b, "<tr><td>#%lld</td><td>", (long long)s->id);
			commit_link(b, ce->repo, s->commit_sha);
			if (s->run_id)
				sw_buf_addf(b, " <a class=small href=\"/runs/%lld\">run #%lld</a>",
					    (long long)s->run_id, (long long)s->run_id);
			sw_buf_adds(b, "</td><td>");
			sw_html_esc(b, sw_store_sync_trigger_str(s->trigger));
			sw_buf_adds(b, "</td><td>");
			badge(b, sw_store_sync_status_str(s->status), NULL);
			if (s->status != SW_SYNC_RUNNING)
				badge(b, sw_store_health_str(s->health), NULL);
			if (s->message && *s->message) {
				sw_buf_adds(b, "<div class=\"small mute\">");
				sw_html_esc(b, s->message);
				sw_buf_adds(b, "</div>");
			}
			sw_buf_adds(b, "</td><td>");
			sw_html_time(b, s->started_at, p.now);
			sw_buf_adds(b, "</td><td>");
			if (s->finished_at)
				sw_duration(b, s->finished_at - s->started_at);
			sw_buf_adds(b, "</td><td>");
			sync_objects(d, b, s->id);
			sync_infra_outputs(b, s->infra_outputs);
			sw_buf_adds(b, "</td></tr>");
		}
		sw_buf_adds(b, "</tbody></table></div>");
	}

	sw_buf_adds(b, "<h2>Drift events</h2>");
	if (sw_store_drift_list(d->store, ce->name, DRIFT_ON_PAGE, &drift) < 0 || !drift.n) {
		sw_buf_adds(b, "<p class=mute>No drift detected.</p>");
	} else {
		sw_buf_adds(b, "<div class=tbl><table><thead><tr><th>detected</th><th>object</th>"
			    "<th>action</th><th>changed</th><th>by</th></tr></thead><tbody>");
		for (size_t i = 0; i < drift.n; i++) {
			const struct sw_store_drift *e = &drift.v[i];
			sw_buf_adds(b, "<tr><td>");
			sw_html_time(b, e->detected_at, p.now);
			sw_buf_adds(b, "</td><td><code>");
			sw_html_esc(b, e->kind);
			sw_buf_adds(b, "/");
			if (e->namespace && *e->namespace) {
				sw_html_esc(b, e->namespace);
				sw_buf_adds(b, "/");
			}
			sw_html_esc(b, e->name);
			sw_buf_adds(b, "</code></td><td>");
			badge(b, sw_store_drift_action_str(e->action), NULL);
			if (e->message && *e->message) {
				sw_buf_adds(b, "<div class=\"small mute\">");
				sw_html_esc(b, e->message);
				sw_buf_adds(b, "</div>");
			}
			sw_buf_adds(b, "</td><td><code class=small>");
			if (e->fields && strlen(e->fields) > 300) {
				sw_html_escn(b, e->fields, 300);
				sw_buf_adds(b, "&hellip;");
			} else {
				sw_html_esc(b, e->fields);
			}
			sw_buf_adds(b, "</code></td><td>");
			sw_html_esc(b, e->manager);
			sw_buf_adds(b, "</td></tr>");
		}
		sw_buf_adds(b, "</tbody></table></div>");
	}

	sw_buf_adds(b, "<h2>Managed objects</h2>");
	if (sw_store_inventory_list(d->store, ce->name, &inv) < 0 || !inv.n) {
		sw_buf_adds(b, "<p class=mute>None recorded.</p>");
	} else {
		sw_buf_adds(b, "<div class=tbl><table><thead><tr><th>object</th><th>health</th>"
			    "<th>message</th></tr></thead><tbody>");
		for (size_t i = 0; i < inv.n; i++) {
			const struct sw_store_inv *o = &inv.v[i];
			object_row(b, o->kind, o->namespace, o->name,
				   sw_store_health_str(o->health), o->message);
		}
		sw_buf_adds(b, "</tbody></table></div>");
	}
	page_end(&p);
	page_send(&p, req, 200);
out:
	sw_store_inv_list_release(&inv);
	sw_store_drift_list_release(&drift);
	sw_store_sync_list_release(&hist);
	free(name);
}

/* ------------------------------------------------------------------ */
/* GET /metrics                                                        */
/* ------------------------------------------------------------------ */

static void metrics_route(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	struct sw_buf b = SW_BUF_INIT;
	struct evbuffer *out;
	if (sw_auth_check_read(d, req) < 0)
		return;
	sw_metrics_render(d, &b);
	out = evbuffer_new();
	evbuffer_add(out, b.ptr, b.len);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; version=0.0.4; charset=utf-8");
	no_delay(req);
	evhttp_send_reply(req, 200, NULL, out);
	evbuffer_free(out);
	sw_buf_release(&b);
}

/* ------------------------------------------------------------------ */
/* GET /audit: the audit log (admin)                                   */
/* ------------------------------------------------------------------ */

#define AUDIT_ON_PAGE 100

static void audit_page(struct sw_daemon *d, struct evhttp_request *req, const char *rest)
{
	struct sw_store_audit_filter f = SW_STORE_AUDIT_FILTER_INIT;
	struct sw_store_audit_list l = { 0 };
	struct evkeyvalq q;
	struct page p = { 0 };
	const char *v;

	if (sw_auth_require(d, req, SW_ROLE_ADMIN, NULL, "audit.read", NULL, NULL) < 0)
		return;
	query_get(req, &q);
	f.before_id = query_int(&q, "before");
	if ((v = evhttp_find_header(&q, "actor")) && *v)
		f.actor = v;
	if ((v = evhttp_find_header(&q, "action")) && *v)
		f.action = v;
	f.limit = AUDIT_ON_PAGE;
	page_begin(&p, d, req, "Audit log", 0);
	sw_buf_adds(&p.b, "<h1>Audit log</h1>");
	if (f.actor || f.action) {
		sw_buf_adds(&p.b, "<p class=mute>Only");
		if (f.actor) {
			sw_buf_adds(&p.b, " by <code>");
			sw_html_esc(&p.b, f.actor);
			sw_buf_adds(&p.b, "</code>");
		}
		if (f.action) {
			sw_buf_adds(&p.b, " of <code>");
			sw_html_esc(&p.b, f.action);
			sw_buf_adds(&p.b, "</code>");
		}
		sw_buf_adds(&p.b, ". <a href=\"/audit\">Everything</a></p>");
	}
	if (sw_store_audit_list(d->store, &f, &l) < 0) {
		sw_buf_adds(&p.b, "<p class=notice>The audit log cannot be read: ");
		sw_html_esc(&p.b, sw_error_last());
		sw_buf_adds(&p.b, "</p>");
	} else if (!l.n) {
		sw_buf_adds(&p.b, "<p class=mute>Nothing recorded yet.</p>");
	} else {
		sw_buf_adds(&p.b, "<div class=tbl><table><thead><tr><th>when</th><th>who</th>"
			    "<th>from</th><th>action</th><th>target</th><th>outcome</th></tr>"
			    "</thead><tbody>");
		for (size_t i = 0; i < l.n; i++) {
			const struct sw_store_audit *r = &l.v[i];
			sw_buf_adds(&p.b, "<tr><td>");
			sw_html_time(&p.b, r->at, p.now);
			sw_buf_adds(&p.b, "</td><td><a href=\"/audit?actor=");
			sw_url_esc(&p.b, r->actor);
			sw_buf_adds(&p.b, "\">");
			sw_html_esc(&p.b, r->actor);
			sw_buf_adds(&p.b, "</a> <span class=\"small mute\">");
			sw_html_esc(&p.b, r->actor_kind);
			sw_buf_adds(&p.b, "</span></td><td><code class=small>");
			sw_html_esc(&p.b, r->client ? r->client : "-");
			sw_buf_adds(&p.b, "</code></td><td><a href=\"/audit?action=");
			sw_url_esc(&p.b, r->action);
			sw_buf_adds(&p.b, "\">");
			sw_html_esc(&p.b, r->action);
			sw_buf_adds(&p.b, "</a></td><td>");
			sw_html_esc(&p.b, r->target ? r->target : "");
			sw_buf_adds(&p.b, "</td><td>");
			badge(&p.b, r->outcome, NULL);
			if (r->reason && *r->reason) {
				sw_buf_adds(&p.b, "<div class=\"small mute\">");
				sw_html_esc(&p.b, r->reason);
				sw_buf_adds(&p.b, "</div>");
			}
			sw_buf_adds(&p.b, "</td></tr>");
		}
		sw_buf_adds(&p.b, "</tbody></table></div>");
	}
	sw_buf_adds(&p.b, "<div class=pager>");
	if (f.before_id)
		sw_buf_adds(&p.b, "<a href=\"/audit\">&larr; newest</a>");
	if (l.n == (size_t)f.limit) {
		sw_buf_addf(&p.b, "<a href=\"/audit?before=%lld", (long long)l.v[l.n - 1].id);
		if (f.actor) {
			sw_buf_adds(&p.b, "&amp;actor=");
			sw_url_esc(&p.b, f.actor);
		}
		if (f.action) {
			sw_buf_adds(&p.b, "&amp;action=");
			sw_url_esc(&p.b, f.action);
		}
		sw_buf_adds(&p.b, "\">older &rarr;</a>");
	}
	sw_buf_adds(&p.b, "</div>");
	evhttp_clear_headers(&q);
	sw_store_audit_list_release(&l);
	page_end(&p);
	page_send(&p, req, 200);
}

/* "/" last: as a prefix route it catches whatever no table matched. */
const struct sw_route sw_page_routes[] = {
	{ EVHTTP_REQ_GET, "/metrics", metrics_route },
	{ EVHTTP_REQ_GET, "/runs/", runs_route },
	{ EVHTTP_REQ_GET, "/environments/", env_page },
	{ EVHTTP_REQ_GET, "/audit", audit_page },
	{ EVHTTP_REQ_GET, "/", index_page },
	{ 0, NULL, NULL },
};
