#!/usr/bin/env python3
"""recorder.py - a recording HTTP server standing in for GitHub's REST API and
Slack (incoming webhook and Web API) in slipway's end-to-end tests.

    recorder.py --port 0 --out requests.jsonl [--fail RULE]... [--script FILE]
                [--token TOKEN] [--slack-token TOKEN] [--host 127.0.0.1]
                [--app-id ID --app-public-key PEM [--app-install REPO=ID]...
                 [--app-token-ttl SECONDS]] [--git-root DIR]

With --app-id the recorder is a GitHub App's GitHub: it answers
GET /repos/{o}/{r}/installation and POST /app/installations/{id}/access_tokens
for a JWT it verifies with the App's public key (openssl dgst in a
subprocess: signature, alg, iss, iat/exp window), hands out installation
tokens that expire after --app-token-ttl seconds, and accepts only those,
unexpired and of the repository's installation, on the REST routes.
POST /_recorder/revoke?installation=N forgets an installation (404 from then
on, as GitHub answers for an uninstalled App). --git-root serves the bare
repositories under DIR over smart HTTP at /git/OWNER/REPO.git through
`git http-backend`, behind Basic authentication (user x-access-token, the
installation token, or --token without an App).

Prints the port it listens on (one line, flushed), then serves until killed.
Every request is appended to --out as one JSON line:

    {"seq", "method", "path", "query", "headers", "body", "route", "status",
     "valid", "reason", "injected"}

`body` is the parsed JSON when the body is JSON (a dict of lists for a form),
else the text. `valid` is false, with `reason`, when the request breaks what
the real service demands (see README.md); such requests are answered with
the real service's error shape. Tokens are never written out: the
Authorization header is recorded as "Bearer <N chars>".

Fault injection (--fail, repeatable, or one rule per line in --script):
    'METHOD PATHGLOB:STATUS[:COUNT[:RETRY_AFTER]]'
answers STATUS to the first COUNT (default 1, 0 = every) matching requests,
with Retry-After: RETRY_AFTER (default 1 for 429) and the service's error
shape. The request is still validated and recorded, with "injected": STATUS.
"""
import argparse
import base64
import binascii
import fnmatch
import itertools
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GITHUB_DOCS = "https://docs.github.com/rest"
STATES = ("pending", "success", "failure", "error")
BLOCK_TYPES = ("header", "section", "context", "divider", "actions", "image",
               "rich_text", "input", "file", "video")


class Invalid(Exception):
    """A request the real service would refuse: (status, body, reason)."""

    def __init__(self, status, body, reason, ctype="application/json"):
        super().__init__(reason)
        self.status, self.body, self.reason, self.ctype = status, body, reason, ctype


class Rule:
    def __init__(self, text):
        parts = text.strip().rsplit(":", 3)
        # The path may hold no ':'; fields after it are numbers.
        while len(parts) > 1 and not parts[1].isdigit():
            parts = [parts[0] + ":" + parts[1]] + parts[2:]
        if len(parts) < 2 or " " not in parts[0]:
            raise ValueError("bad rule %r: want 'METHOD PATHGLOB:STATUS[:COUNT[:RETRY_AFTER]]'" % text)
        self.method, self.glob = parts[0].split(" ", 1)
        self.status = int(parts[1])
        self.count = int(parts[2]) if len(parts) > 2 else 1
        self.retry_after = parts[3] if len(parts) > 3 else ("1" if self.status == 429 else None)
        self.used = 0

    def take(self, method, path):
        if self.method not in ("*", method) or not fnmatch.fnmatchcase(path, self.glob):
            return False
        if self.count and self.used >= self.count:
            return False
        self.used += 1
        return True


class State:
    def __init__(self, args):
        self.out = open(args.out, "a", encoding="utf-8")
        self.rules = [Rule(r) for r in args.fail]
        if args.script:
            with open(args.script, encoding="utf-8") as f:
                self.rules += [Rule(l) for l in f if l.strip() and not l.lstrip().startswith("#")]
        self.token = args.token
        self.slack_token = args.slack_token
        # sign-in with GitHub: who signs in, and what the flow has issued
        self.oauth = None
        if args.oauth_client_id:
            self.oauth = {"client_id": args.oauth_client_id,
                          "client_secret": args.oauth_client_secret or "",
                          "user": args.oauth_user or "octocat",
                          "teams": [t for t in (args.oauth_teams or "").split(",") if t],
                          "refuse_code": args.oauth_refuse_code,
                          "codes": {}, "tokens": set()}
        self.lock = threading.Lock()
        self.seq = itertools.count(1)
        self.ids = itertools.count(1001)
        self.comments = {}   # id -> ["owner/repo#n", body]
        self.ts = itertools.count(1)
        # the GitHub App, when --app-id is given
        self.app_id = args.app_id
        self.app_pub = args.app_public_key
        self.app_ttl = args.app_token_ttl
        self.installs = {}   # "owner/repo" -> installation id; {} = every repo is in 1
        for spec in args.app_install:
            repo, _, iid = spec.partition("=")
            self.installs[repo] = int(iid)
        self.known = set(self.installs.values()) or {1}
        self.inst_tokens = {}  # token -> (installation, expires_at epoch, number)
        self.token_seq = itertools.count(1)
        self.git_root = args.git_root

    def installation_of(self, repo):
        with self.lock:
            iid = self.installs.get(repo, None if self.installs else 1)
            return iid if iid in self.known else None

    def record(self, rec):
        with self.lock:
            rec["seq"] = next(self.seq)
            self.out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            self.out.flush()

    def fault(self, method, path):
        with self.lock:
            for r in self.rules:
                if r.take(method, path):
                    return r
        return None


def gh_error(status, message, errors=None):
    body = {"message": message, "documentation_url": GITHUB_DOCS}
    if errors:
        body["errors"] = errors
    return Invalid(status, body, message)


def gh_validation(field, message):
    e = gh_error(422, "Validation Failed",
                 [{"resource": "Status", "code": "custom", "field": field, "message": message}])
    e.reason = "%s: %s" % (field, message)
    return e


def bearer(headers):
    auth = headers.get("authorization", "")
    m = re.fullmatch(r"(?i)(bearer|token) +(\S+)", auth)
    return m.group(2) if m else None


def check_github_headers(h, state, app_route=False, repo=None, rec=None):
    if not h.get("user-agent"):
        raise Invalid(403, "Request forbidden by administrative rules. Please make sure your "
                      "request has a User-Agent header (https://docs.github.com/en/rest/overview"
                      "/resources-in-the-rest-api#user-agent-required).",
                      "missing User-Agent", "text/plain")
    tok = bearer(h)
    if not tok or not h.get("authorization", "").lower().startswith("bearer "):
        raise gh_error(401, "Requires authentication") if not tok else \
            gh_error(401, "Bad credentials: expected Authorization: Bearer <token>")
    if app_route:
        pass
    elif state.app_id:
        check_installation_token(tok, repo, state, rec)
    elif state.token and tok != state.token:
        raise gh_error(401, "Bad credentials")
    if h.get("accept", "") != "application/vnd.github+json":
        e = gh_error(415, "Unsupported 'Accept' header: %r; expected application/vnd.github+json"
                     % h.get("accept", ""))
        raise e
    if h.get("x-github-api-version", "") != "2022-11-28":
        raise gh_error(400, "Invalid or missing X-GitHub-Api-Version header: %r (want 2022-11-28)"
                       % h.get("x-github-api-version", ""))


def b64url(s):
    try:
        return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url")


def verify_jwt(tok, state):
    """The App's JWT as GitHub checks it; returns the claims or raises ValueError."""
    parts = tok.split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT (want three dot-separated parts)")
    if any(c in p for p in parts for c in "+/="):
        raise ValueError("not base64url without padding")
    try:
        header = json.loads(b64url(parts[0]))
        claims = json.loads(b64url(parts[1]))
    except ValueError:
        raise ValueError("header or claims are not base64url JSON")
    if not isinstance(header, dict) or header.get("alg") != "RS256":
        raise ValueError("alg is %r, want RS256" % (header.get("alg") if isinstance(header, dict) else None))
    if header.get("typ", "JWT") != "JWT":
        raise ValueError("typ is %r" % header.get("typ"))
    sig = b64url(parts[2])
    with tempfile.NamedTemporaryFile() as f:
        f.write(sig)
        f.flush()
        p = subprocess.run(["openssl", "dgst", "-sha256", "-verify", state.app_pub,
                            "-signature", f.name], input=(parts[0] + "." + parts[1]).encode(),
                           capture_output=True)
    if p.returncode != 0:
        raise ValueError("signature does not verify with the App's public key")
    if not isinstance(claims, dict):
        raise ValueError("claims are not an object")
    iat, exp, iss = claims.get("iat"), claims.get("exp"), claims.get("iss")
    if str(iss) != state.app_id:
        raise ValueError("iss is %r, want %s" % (iss, state.app_id))
    if not isinstance(iat, int) or not isinstance(exp, int):
        raise ValueError("iat and exp must be integers")
    now = int(time.time())
    if exp - iat > 600:
        raise ValueError("exp - iat is %d s, at most 600" % (exp - iat))
    if iat > now + 60:
        raise ValueError("iat is %d s in the future" % (iat - now))
    if exp <= now:
        raise ValueError("expired %d s ago" % (now - exp))
    if exp > now + 600:
        raise ValueError("exp is more than 10 minutes ahead")
    return claims


def app_jwt(h, state, rec):
    tok = bearer(h)
    check_github_headers(h, state, app_route=True)
    try:
        rec["jwt"] = verify_jwt(tok or "", state)
    except ValueError as e:
        rec["jwt"] = {"invalid": str(e)}
        ex = gh_error(401, "A JSON web token could not be decoded")
        ex.reason = "JWT: %s" % e
        raise ex
    rec["auth"] = "jwt"


def app_routes(method, path, h, state, rec):
    """The App's own endpoints; None when the path is not one."""
    m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/installation", path)
    if m and method == "GET":
        app_jwt(h, state, rec)
        repo = "%s/%s" % (m[1], m[2])
        iid = state.installation_of(repo)
        if iid is None:
            raise gh_error(404, "Not Found")
        return "github.app.installation", 200, {
            "id": iid, "app_id": int(state.app_id) if state.app_id.isdigit() else state.app_id,
            "account": {"login": m[1]}, "repository_selection": "selected",
            "permissions": {"statuses": "write", "pull_requests": "write",
                            "contents": "read", "issues": "write"}}
    m = re.fullmatch(r"/app/installations/([0-9]+)/access_tokens", path)
    if m and method == "POST":
        app_jwt(h, state, rec)
        iid = int(m[1])
        with state.lock:
            known = iid in state.known
        if not known:
            raise gh_error(404, "Not Found")
        tok = "ghs_" + secrets.token_hex(18)
        exp = int(time.time()) + state.app_ttl
        with state.lock:
            no = next(state.token_seq)
            state.inst_tokens[tok] = (iid, exp, no)
        rec["installation"], rec["expires_at"], rec["token_no"] = iid, exp, no
        return "github.app.token", 201, {
            "token": tok, "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp)),
            "permissions": {"statuses": "write", "contents": "read"},
            "repository_selection": "all"}
    return None


def check_installation_token(tok, repo, state, rec):
    """With an App: the REST routes take only an unexpired installation token
    of the repository's installation."""
    with state.lock:
        got = state.inst_tokens.get(tok)
    if got is None:
        rec["auth"] = "other"
        raise gh_error(401, "Bad credentials")
    iid, exp, rec["token_no"] = got
    rec["auth"] = "installation:%d" % iid
    if exp <= time.time():
        rec["token_expired"] = True
        raise gh_error(401, "Bad credentials")
    want = state.installation_of(repo)
    if want != iid:
        raise gh_error(403 if want is not None else 404, "Resource not accessible by integration")


def json_body(raw, h):
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise gh_error(400, "Problems parsing JSON")
    if not isinstance(body, dict):
        raise gh_error(400, "Problems parsing JSON")
    if not h.get("content-type", "").lower().startswith("application/json"):
        raise gh_error(415, "Content-Type must be application/json, got %r"
                       % h.get("content-type", ""))
    return body


def github(method, path, h, raw, state, rec):
    """Returns (route, status, body) or raises Invalid."""
    if state.app_id:
        got = app_routes(method, path, h, state, rec)
        if got:
            return got
    m = re.match(r"/repos/([^/]+)/([^/]+)/", path)
    repo = "%s/%s" % (m[1], m[2]) if m else None
    m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/statuses/([^/]+)", path)
    if m and method == "POST":
        check_github_headers(h, state, repo=repo, rec=rec)
        body = json_body(raw, h)
        if not re.fullmatch(r"[0-9a-f]{40}", m.group(3)):
            raise gh_error(422, "No commit found for SHA: %s" % m.group(3))
        st = body.get("state")
        if st not in STATES:
            raise gh_validation("state", "state is not included in the list (got %r)" % (st,))
        for k in ("description", "context", "target_url"):
            if k in body and body[k] is not None and not isinstance(body[k], str):
                raise gh_validation(k, "%s must be a string" % k)
        desc = body.get("description") or ""
        if len(desc) > 140:
            raise gh_validation("description", "description is too long (maximum is 140 "
                                "characters, got %d)" % len(desc))
        tu = body.get("target_url")
        if tu and not re.match(r"https?://", tu):
            raise gh_validation("target_url", "target_url must be an http(s) URL")
        sid = next(state.ids)
        return "github.status", 201, {
            "id": sid, "url": "https://api.github.com%s" % path, "state": st,
            "description": body.get("description"), "target_url": tu,
            "context": body.get("context") or "default",
            "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
            "creator": {"login": "slipway-bot", "id": 1}}
    m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/issues/([0-9]+)/comments", path)
    if m and method == "POST":
        check_github_headers(h, state, repo=repo, rec=rec)
        text = comment_body(json_body(raw, h))
        cid = next(state.ids)
        with state.lock:
            state.comments[cid] = ["%s/%s#%s" % (m[1], m[2], m[3]), text]
        return "github.comment.create", 201, {
            "id": cid, "body": text,
            "url": "https://api.github.com/repos/%s/%s/issues/comments/%d" % (m[1], m[2], cid),
            "html_url": "https://github.com/%s/%s/pull/%s#issuecomment-%d" % (m[1], m[2], m[3], cid)}
    m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/issues/comments/([0-9]+)", path)
    if m and method == "PATCH":
        check_github_headers(h, state, repo=repo, rec=rec)
        text = comment_body(json_body(raw, h))
        cid = int(m.group(3))
        with state.lock:
            known = cid in state.comments
            if known:
                state.comments[cid][1] = text
        if not known:
            raise gh_error(404, "Not Found")
        return "github.comment.update", 200, {"id": cid, "body": text}
    m = re.fullmatch(r"/repos/([^/]+)/([^/]+)/issues/([0-9]+)/comments", path)
    if m and method == "GET":
        # listing a PR's comments: how a sender finds its own comment after
        # losing the answer to a POST
        check_github_headers(h, state, repo=repo, rec=rec)
        issue = "%s/%s#%s" % (m[1], m[2], m[3])
        with state.lock:
            found = [{"id": cid, "body": body, "user": {"login": "slipway-bot", "id": 1},
                      "created_at": "2024-01-01T00:00:00Z",
                      "updated_at": "2024-01-01T00:00:00Z"}
                     for cid, (key, body) in sorted(state.comments.items()) if key == issue]
        return "github.comment.list", 200, found
    raise gh_error(404, "Not Found")


def comment_body(body):
    text = body.get("body")
    if not isinstance(text, str) or not text:
        e = gh_error(422, "Validation Failed",
                     [{"resource": "IssueComment", "code": "missing_field", "field": "body"}])
        e.reason = "body: missing"
        raise e
    if len(text) > 65536:
        e = gh_error(422, "Validation Failed",
                     [{"resource": "IssueComment", "code": "custom", "field": "body",
                       "message": "body is too long (maximum is 65536 characters)"}])
        e.reason = "body: %d characters, maximum is 65536" % len(text)
        raise e
    return text


def slack_text_obj(t, where, plain_only=False, maxlen=3000):
    if not isinstance(t, dict) or t.get("type") not in ("plain_text", "mrkdwn"):
        raise ValueError("%s: expected a text object" % where)
    if plain_only and t["type"] != "plain_text":
        raise ValueError("%s: must be plain_text" % where)
    s = t.get("text")
    if not isinstance(s, str) or not (1 <= len(s) <= maxlen):
        raise ValueError("%s: text must be 1..%d characters" % (where, maxlen))


def check_blocks(blocks):
    if not isinstance(blocks, list):
        raise ValueError("blocks: expected an array")
    if len(blocks) > 50:
        raise ValueError("blocks: %d blocks, at most 50" % len(blocks))
    for i, b in enumerate(blocks):
        w = "blocks[%d]" % i
        if not isinstance(b, dict) or b.get("type") not in BLOCK_TYPES:
            raise ValueError("%s: unknown block type" % w)
        if b["type"] == "header":
            slack_text_obj(b.get("text"), w + ".text", True, 150)
        elif b["type"] == "section":
            if "text" not in b and "fields" not in b:
                raise ValueError("%s: section needs text or fields" % w)
            if "text" in b:
                slack_text_obj(b["text"], w + ".text")
            if "fields" in b:
                f = b["fields"]
                if not isinstance(f, list) or not (1 <= len(f) <= 10):
                    raise ValueError("%s.fields: 1..10 items" % w)
                for k, t in enumerate(f):
                    slack_text_obj(t, "%s.fields[%d]" % (w, k), maxlen=2000)
        elif b["type"] == "context":
            el = b.get("elements")
            if not isinstance(el, list) or not (1 <= len(el) <= 10):
                raise ValueError("%s.elements: 1..10 items" % w)
            for k, t in enumerate(el):
                if isinstance(t, dict) and t.get("type") == "image":
                    continue
                slack_text_obj(t, "%s.elements[%d]" % (w, k))


def check_message(body, raw_text):
    """Slack message rules shared by the webhook and chat.*; raises ValueError."""
    text, blocks = body.get("text"), body.get("blocks")
    if text is None and blocks is None:
        raise ValueError("no_text: neither text nor blocks")
    if text is not None and not isinstance(text, str):
        raise ValueError("text: expected a string")
    if blocks is not None:
        check_blocks(blocks)
        if not text:
            raise ValueError("text: a fallback text is expected with blocks")
    if len(raw_text) > 12000:
        raise ValueError("payload: %d characters, keep under 12000" % len(raw_text))


def slack_webhook(method, h, raw):
    def bad(reason, code="invalid_payload", status=400):
        return Invalid(status, code, reason, "text/plain")
    if method != "POST":
        raise bad("method %s" % method, "invalid_method", 405)
    try:
        raw_text = raw.decode("utf-8")
        body = json.loads(raw_text)
    except (UnicodeDecodeError, ValueError):
        raise bad("body is not JSON")
    if not isinstance(body, dict):
        raise bad("body is not a JSON object")
    if not h.get("content-type", "").lower().startswith("application/json"):
        raise bad("Content-Type %r is not application/json" % h.get("content-type", ""))
    try:
        check_message(body, raw_text)
    except ValueError as e:
        raise bad(str(e), "no_text" if str(e).startswith("no_text") else "invalid_payload")
    return "slack.webhook", 200, "ok"


def slack_api(method, path, h, raw, state):
    api = path[len("/api/"):]

    def bad(err, reason=None):
        return Invalid(200, {"ok": False, "error": err}, reason or err)
    if method != "POST":
        raise bad("invalid_request", "method %s" % method)
    tok = bearer(h)
    if not tok or not h.get("authorization", "").lower().startswith("bearer "):
        raise bad("not_authed")
    if state.slack_token and tok != state.slack_token:
        raise bad("invalid_auth")
    ctype = h.get("content-type", "").lower()
    raw_text = raw.decode("utf-8", "replace")
    if ctype.startswith("application/json"):
        try:
            body = json.loads(raw_text)
        except ValueError:
            raise bad("invalid_json")
        if not isinstance(body, dict):
            raise bad("invalid_json")
    elif ctype.startswith("application/x-www-form-urlencoded"):
        body = {k: v[0] for k, v in urllib.parse.parse_qs(raw_text).items()}
        if isinstance(body.get("blocks"), str):
            try:
                body["blocks"] = json.loads(body["blocks"])
            except ValueError:
                raise bad("invalid_blocks_format")
    else:
        raise bad("invalid_form_data", "Content-Type %r" % ctype)
    if api not in ("chat.postMessage", "chat.update"):
        raise bad("unknown_method")
    if not body.get("channel"):
        raise bad("channel_not_found", "channel: missing")
    if api == "chat.update" and not body.get("ts"):
        raise bad("message_not_found", "ts: missing")
    try:
        check_message(body, raw_text)
    except ValueError as e:
        raise bad("no_text" if str(e).startswith("no_text") else "invalid_blocks", str(e))
    ts = body.get("ts") or "1700000000.%06d" % next(state.ts)
    return "slack." + api, 200, {"ok": True, "channel": body["channel"], "ts": ts,
                                 "message": {"text": body.get("text", ""), "ts": ts}}


# --- GitHub's OAuth web flow (sign-in with GitHub) -------------------------------
# GitHub's own answers: the token endpoint says 200 with an "error" field for
# a bad code or bad client credentials; a code is single-use and bound to the
# redirect_uri it was issued for (docs.github.com "Authorizing OAuth apps").

def oauth_form(raw, h):
    if not h.get("content-type", "").lower().startswith("application/x-www-form-urlencoded"):
        raise Invalid(400, {"error": "unsupported_content_type"},
                      "token exchange not form-encoded: %r" % h.get("content-type", ""))
    return {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode("utf-8", "replace")).items()}


def oauth(method, path, query, h, raw, state):
    """Returns (route, status, body, extra headers) or raises Invalid."""
    o = state.oauth
    if path == "/login/oauth/authorize" and method == "GET":
        q = {k: v[0] for k, v in query.items()}
        if q.get("client_id") != o["client_id"]:
            raise Invalid(404, "Not Found", "unknown client_id %r" % q.get("client_id"), "text/plain")
        ru, st = q.get("redirect_uri", ""), q.get("state", "")
        if not re.match(r"https?://", ru) or len(st) < 16:
            raise Invalid(400, "redirect_uri and state (16+ characters) are required",
                          "authorize without redirect_uri or a state", "text/plain")
        if "read:org" not in q.get("scope", "").split(" "):
            raise Invalid(400, "scope read:org is needed for /user/teams", "no read:org scope",
                          "text/plain")
        code = "code%d" % next(state.ids)
        with state.lock:
            o["codes"][code] = ru
        sep = "&" if "?" in ru else "?"
        loc = "%s%scode=%s&state=%s" % (ru, sep, code, urllib.parse.quote(st))
        return "oauth.authorize", 302, "", {"Location": loc}
    if path == "/login/oauth/access_token" and method == "POST":
        if "application/json" not in h.get("accept", ""):
            raise Invalid(400, "access_token=&error=want_json", "token exchange without "
                          "Accept: application/json (GitHub would answer a form)", "text/plain")
        f = oauth_form(raw, h)
        if f.get("client_id") != o["client_id"] or f.get("client_secret") != o["client_secret"]:
            return "oauth.token", 200, {"error": "incorrect_client_credentials",
                                        "error_description": "The client_id and/or client_secret passed are incorrect."}, {}
        with state.lock:
            ru = o["codes"].pop(f.get("code", ""), None)
        if ru is None or f.get("redirect_uri") != ru or o["refuse_code"]:
            return "oauth.token", 200, {"error": "bad_verification_code",
                                        "error_description": "The code passed is incorrect or expired."}, {}
        tok = "gho_%d" % next(state.ids)
        with state.lock:
            o["tokens"].add(tok)
        return "oauth.token", 200, {"access_token": tok, "token_type": "bearer",
                                    "scope": "read:org"}, {}
    if path in ("/user", "/user/teams") and method == "GET":
        if not h.get("user-agent"):
            raise Invalid(403, "User-Agent required", "missing User-Agent", "text/plain")
        tok = bearer(h)
        if tok not in o["tokens"]:
            raise gh_error(401, "Bad credentials")
        if h.get("accept", "") != "application/vnd.github+json":
            raise gh_error(415, "Unsupported 'Accept' header")
        if path == "/user":
            return "oauth.user", 200, {"login": o["user"], "id": 4242, "type": "User"}, {}
        teams = [{"slug": t.split("/", 1)[1], "name": t.split("/", 1)[1],
                  "organization": {"login": t.split("/", 1)[0]}} for t in o["teams"]]
        return "oauth.teams", 200, teams, {}
    raise gh_error(404, "Not Found")


def fault_body(path, status):
    if path.startswith("/slack/"):
        codes = {429: "rate_limited", 500: "rollup_error", 403: "action_prohibited",
                 404: "channel_not_found", 410: "channel_is_archived"}
        return "text/plain", codes.get(status, "error")
    if path.startswith("/api/"):
        return "application/json", {"ok": False, "error": "ratelimited" if status == 429
                                    else "internal_error"}
    msg = {429: "API rate limit exceeded", 403: "You have exceeded a secondary rate limit",
           502: "Server Error", 503: "Service Unavailable"}.get(status, "Server Error")
    return "application/json", {"message": msg, "documentation_url": GITHUB_DOCS}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "slipway-recorder/1"

    def log_message(self, fmt, *args):  # quiet: the JSONL file is the log
        pass

    def handle_any(self):
        state = self.server.state
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path, urllib.parse.parse_qs(url.query)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = self.read_chunked()
        else:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n > 0 else b""
        if path == "/_recorder/health":
            return self.reply(200, "text/plain", "ok")
        if path == "/_recorder/revoke" and self.command == "POST":
            iid = int(query.get("installation", ["0"])[0])
            with state.lock:
                state.known.discard(iid)
                state.inst_tokens = {t: v for t, v in state.inst_tokens.items() if v[0] != iid}
            return self.reply(200, "text/plain", "revoked")
        if path == "/_recorder/oauth" and state.oauth:
            # the test picks who signs in next: ?user=LOGIN&teams=org/a,org/b
            with state.lock:
                state.oauth["user"] = query.get("user", ["octocat"])[0]
                state.oauth["teams"] = [t for t in query.get("teams", [""])[0].split(",") if t]
            return self.reply(200, "text/plain", "ok")
        h = {k.lower(): v for k, v in self.headers.items()}
        rec = {"method": self.command, "path": path, "query": query,
               "headers": dict(h), "valid": True}
        if "authorization" in h:
            tok = bearer(h)
            rec["headers"]["authorization"] = "%s <%d chars>" % (
                h["authorization"].split(" ", 1)[0], len(tok or ""))
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            body = raw.decode("utf-8", "replace")
        rec["body"] = body
        extra = {}
        if path.startswith("/login/oauth/access_token") and isinstance(body, str):
            # the client secret and the code never reach the record
            rec["body"] = {k: "<%d chars>" % len(v[0]) if k in ("client_secret", "code") else v[0]
                           for k, v in urllib.parse.parse_qs(body).items()}
        try:
            if state.oauth and (path.startswith("/login/oauth/") or path in ("/user", "/user/teams")):
                route, status, resp, extra = oauth(self.command, path, query, h, raw, state)
            elif path == "/slack/webhook":
                route, status, resp = slack_webhook(self.command, h, raw)
            elif path.startswith("/api/"):
                route, status, resp = slack_api(self.command, path, h, raw, state)
            elif path.startswith("/git/") and state.git_root:
                return self.git(path, url.query, h, raw, rec)
            else:
                route, status, resp = github(self.command, path, h, raw, state, rec)
            ctype = "text/plain" if isinstance(resp, str) else "application/json"
        except Invalid as e:
            route, status, resp, ctype = "invalid", e.status, e.body, e.ctype
            rec["valid"], rec["reason"] = False, e.reason
        rec["route"] = route
        rule = state.fault(self.command, path)
        if rule:
            ctype, resp = fault_body(path, rule.status)
            status = rule.status
            rec["injected"] = status
            if rule.retry_after is not None:
                extra["Retry-After"] = rule.retry_after
            if not path.startswith("/slack/") and not path.startswith("/api/"):
                extra["X-RateLimit-Remaining"] = "0" if status in (403, 429) else "4999"
        rec["status"] = status
        state.record(rec)
        self.reply(status, ctype, resp, extra)

    def read_chunked(self):
        out = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return out
            out += self.rfile.read(size)
            self.rfile.readline()

    def git(self, path, query, h, raw, rec):
        """Smart HTTP through `git http-backend`, behind Basic authentication."""
        state = self.server.state
        rec["route"] = "git"
        rec["body"] = None
        m = re.match(r"/git/([^/]+)/([^/]+?)(\.git)?/", path)
        repo = "%s/%s" % (m[1], m[2]) if m else None
        auth = h.get("authorization", "")
        user = pw = None
        if auth.lower().startswith("basic "):
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                pass
            rec["headers"]["authorization"] = "Basic <user %s, %d chars>" % (user, len(pw or ""))
        why = None
        if not pw:
            why = "no credentials"
        elif user != "x-access-token":
            why = "user %r, want x-access-token" % user
        elif state.app_id:
            try:
                check_installation_token(pw, repo, state, rec)
            except Invalid as e:
                why = "installation token: %s" % e.reason
        elif state.token and pw != state.token:
            why = "wrong token"
        if why:
            # git asks for credentials on a 401; a refused one is a 401 too
            rec["status"], rec["valid"] = 401, not pw
            if pw:
                rec["reason"] = why
            state.record(rec)
            return self.reply(401, "text/plain", "Authentication failed\n",
                              {"WWW-Authenticate": 'Basic realm="GitHub"'})
        env = dict(os.environ, GIT_PROJECT_ROOT=state.git_root, GIT_HTTP_EXPORT_ALL="1",
                   PATH_INFO=path[len("/git"):], QUERY_STRING=query,
                   REQUEST_METHOD=self.command, CONTENT_TYPE=h.get("content-type", ""),
                   CONTENT_LENGTH=str(len(raw)), REMOTE_USER=user or "",
                   REMOTE_ADDR="127.0.0.1", GIT_PROTOCOL=h.get("git-protocol", ""),
                   HTTP_CONTENT_ENCODING=h.get("content-encoding", ""))
        p = subprocess.run(["git", "http-backend"], input=raw, env=env, capture_output=True)
        head, _, body = p.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, body = p.stdout.partition(b"\n\n")
        status, hdrs = 200, {}
        for line in head.decode("latin-1").splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k:
                hdrs[k.strip()] = v.strip()
        rec["status"] = status
        state.record(rec)
        self.send_response(status)
        for k, v in hdrs.items():
            if k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reply(self, status, ctype, resp, extra=None):
        data = (resp if isinstance(resp, str) else json.dumps(resp)).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype + ("; charset=utf-8" if ctype == "application/json"
                                                  else ""))
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = handle_any


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--out", required=True, help="JSON lines file, appended to")
    ap.add_argument("--fail", action="append", default=[], metavar="RULE",
                    help="'METHOD PATHGLOB:STATUS[:COUNT[:RETRY_AFTER]]'")
    ap.add_argument("--script", help="file of --fail rules, one per line")
    ap.add_argument("--token", help="the GitHub token to expect (default: any)")
    ap.add_argument("--slack-token", help="the Slack bot token to expect (default: any)")
    ap.add_argument("--app-id", help="be a GitHub App's GitHub: the App's id (the JWT's iss)")
    ap.add_argument("--app-public-key", help="PEM public key that verifies the App's JWTs")
    ap.add_argument("--app-install", action="append", default=[], metavar="REPO=ID",
                    help="repository REPO has installation ID (default: every repo, 1)")
    ap.add_argument("--app-token-ttl", type=int, default=3600,
                    help="installation tokens expire after this many seconds")
    ap.add_argument("--git-root", help="serve the bare repositories under DIR at /git/")
    ap.add_argument("--oauth-client-id", help="serve GitHub's OAuth web flow for this app")
    ap.add_argument("--oauth-client-secret", help="its client secret")
    ap.add_argument("--oauth-user", help="the login who signs in (default octocat)")
    ap.add_argument("--oauth-teams", help="their teams, org/slug,org/slug")
    ap.add_argument("--oauth-refuse-code", action="store_true",
                    help="answer every code bad_verification_code")
    args = ap.parse_args()
    if args.app_id and not args.app_public_key:
        ap.error("--app-id needs --app-public-key")
    try:
        state = State(args)
    except (OSError, ValueError) as e:
        print("recorder: %s" % e, file=sys.stderr)
        return 2
    srv = ThreadingHTTPServer((args.host, args.port), Handler)
    srv.daemon_threads = True
    srv.state = state
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
