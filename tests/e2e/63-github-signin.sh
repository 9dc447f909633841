#!/bin/bash
# Sign-in with GitHub (issue 13): the OAuth web flow against the stand-in
# (tests/recorder checks the client id, the redirect_uri, the state, the
# client secret, a single-use code and the user's token): the state bound
# to the browser by a cookie, the code exchanged server-side, the user and
# their teams read with the user's token, which is then dropped; the
# session cookie (HttpOnly, SameSite=Lax); alice of acme/platform syncs
# prod, bob (acme/web) syncs dev and is refused on prod with the role
# named, also on the page; a state that does not match, a code GitHub
# refuses, a forged session; sign-out; the audit log names the users.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/webhook.sh"
. "$SRC/tests/lib/kubeapi.sh"
. "$SRC/tests/lib/recorder.sh"
T=$TMPDIR
export WEBHOOK_SECRET=signin-secret
export OAUTH_SECRET="oauth_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export API_TOKEN="adm_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
rec=$T/rec

pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	sw_recorder_stop "$rec"
	sw_kubeapi_stop "$T/dev"
	sw_kubeapi_stop "$T/prod"
}
trap cleanup EXIT
sw_kubeapi_start "$T/dev" || fail "dev cluster"
sw_kubeapi_start "$T/prod" || fail "prod cluster"
sw_recorder_start "$rec" --oauth-client-id slipway-app --oauth-client-secret "$OAUTH_SECRET" \
	--oauth-user alice --oauth-teams acme/platform,acme/web || fail "recorder did not start"
# github_as LOGIN TEAMS: who the stand-in signs in next
github_as() { curl -sf "$SW_RECORDER_URL/_recorder/oauth?user=$1&teams=$2" >/dev/null || fail "recorder"; }

new_origin
git checkout -q -b dev
mkdir deploy
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {version: "1"}\n' > deploy/app.yaml
printf 'stages:\n  - name: build\n    when: {event: push}\n    commands: ["true"]\n' > .slipway.yml
git add -A && git commit -qm "version 1" && git push -q origin dev
git push -q origin dev:main
cd "$T"

port=$(free_port)
URL=http://127.0.0.1:$port
cat > "$T/slipway.yaml" <<YAML
server:
  listen: 127.0.0.1:$port
  data_dir: data
  api_token: {secret_env: API_TOKEN}
github:
  webhook_secret: {secret_env: WEBHOOK_SECRET}
  api_url: $SW_RECORDER_URL
  oauth: {client_id: slipway-app, client_secret: {secret_env: OAUTH_SECRET}, url: $SW_RECORDER_URL}
runner: {backend: local}
access:
  deployers: ["*"]
repositories:
  - {name: acme/shop, url: "file://$T/origin.git"}
environments:
  - name: dev
    branch: dev
    cluster: {kubeconfig: $T/dev/kubeconfig}
    manifests: [deploy]
    health_timeout: 5s
  - name: prod
    branch: main
    cluster: {kubeconfig: $T/prod/kubeconfig}
    manifests: [deploy]
    health_timeout: 5s
    deployers: [acme/platform]
YAML
start_daemon

jar=$T/jar
rcount() { jq -s "[.[] | select($1)] | length" "$rec/requests.jsonl"; }
csrf() { awk '$6=="sw_csrf"{v=$7} END{print v}' "$jar"; }
# sign_in: the browser's round trip, following every redirect; prints the last code and URL
sign_in() { rm -f "$jar"; curl -s -c "$jar" -b "$jar" -L -o "$T/page" -D "$T/hdrs" -w '%{http_code} %{url_effective}' "$URL/login/github"; }
post() { curl -s -o "$T/body" -w '%{http_code}' -b "$jar" -H "X-CSRF-Token: $(csrf)" -H 'Accept: application/json' -X POST "$URL$1"; }

# 1. alice signs in: the flow as GitHub sees it
[ "$(sign_in)" = "200 $URL/" ] || fail "sign-in: $(cat "$T/hdrs")"
grep -qi '^location: '"$SW_RECORDER_URL"'/login/oauth/authorize?client_id=slipway-app&redirect_uri=http%3A%2F%2F127.0.0.1%3A'"$port"'%2Flogin%2Fgithub%2Fcallback&scope=read%3Aorg&state=[0-9a-f]\{32\}' "$T/hdrs" || fail "authorize redirect: $(grep -i location "$T/hdrs")"
grep -i '^set-cookie: sw_user=u1\.' "$T/hdrs" | grep -q 'HttpOnly; Path=/; SameSite=Lax' || fail "session cookie: $(grep -i set-cookie "$T/hdrs")"
grep -i '^set-cookie: sw_oauth_state=;' "$T/hdrs" | grep -q 'Max-Age=0' || fail "the state cookie is not cleared"
grep -qi '^set-cookie: sw_user=.*Secure' "$T/hdrs" && fail "Secure over plain http"
[ "$(rcount '.route=="oauth.token" and .body.client_secret=="<'${#OAUTH_SECRET}' chars>" and .body.client_id=="slipway-app"')" = 1 ] || fail "token exchange: $(cat "$rec/requests.jsonl")"
[ "$(rcount '.route=="oauth.user" and (.headers.authorization|startswith("Bearer"))')" = 1 ] || fail "GET /user"
[ "$(rcount '.route=="oauth.teams" and .query.per_page==["100"]')" = 1 ] || fail "GET /user/teams"
sw_recorder_invalid "$rec" || fail "slipway sent requests GitHub would refuse"
grep -q 'gho_' "$T/daemon.log" && fail "the user's token is in the log"
grep -rqa 'gho_' "$T/data" && fail "the user's token is stored"
grep -q "$OAUTH_SECRET" "$T/daemon.log" && fail "the client secret is in the log"
grep -q 'auth.login via=github user=alice teams=acme/platform' "$T/daemon.log" || fail "login line: $(grep auth.login "$T/daemon.log")"
grep -q 'Log out' "$T/page" || fail "the page does not show alice signed in"
ok "alice signed in through the stand-in: state cookie, code exchanged with the secret, /user and /user/teams with her token, dropped"

# 2. alice (acme/platform) syncs prod; the run names her
[ "$(post /api/v1/environments/prod/sync)" = 202 ] || fail "alice syncs prod: $(cat "$T/body")"
R=$(jq .run "$T/body")
[ "$(wait_final "$R" 60)" = success ] || fail "run $R"
[ "$(q "select author from runs where id=$R")" = alice ] || fail "run author"
[ "$(curl -s -o /dev/null -w '%{http_code}' -b "$jar" -X POST "$URL/api/v1/environments/prod/sync")" = 403 ] || fail "no CSRF token: 403"
ok "alice synced prod (run $R, by alice); without the CSRF token: 403"

# 3. bob (acme/web) syncs dev, is refused on prod, with the role named, on the page too
github_as bob acme/web
[ "$(sign_in)" = "200 $URL/" ] || fail "bob's sign-in"
[ "$(post /api/v1/environments/dev/sync)" = 202 ] || fail "bob syncs dev: $(cat "$T/body")"
[ "$(wait_final "$(jq .run "$T/body")" 60)" = success ] || fail "bob's dev run"
[ "$(post /api/v1/environments/prod/sync)" = 403 ] && jq -e '.error=="sync of prod needs the deployer role on prod (bob has deployer)"' "$T/body" >/dev/null || fail "bob on prod: $(cat "$T/body")"
code=$(curl -s -o "$T/refused.html" -w '%{http_code}' -b "$jar" -H "X-CSRF-Token: $(csrf)" -X POST "$URL/api/v1/environments/prod/rollback" -H 'Content-Type: application/x-www-form-urlencoded' -d revision=abcdef1)
[ "$code" = 403 ] && grep -q "rollback of prod needs the deployer role on prod" "$T/refused.html" || fail "rollback refusal: $code $(cat "$T/refused.html")"
[ "$(curl -s -o /dev/null -w '%{http_code}' -b "$jar" "$URL/audit")" = 403 ] || fail "bob on /audit"
curl -s -b "$jar" "$URL/environments/prod" > "$T/prod.html"
grep -q 'Sync or rollback of prod needs the deployer role on prod (bob has deployer)' "$T/prod.html" && ! grep -q 'Sync now' "$T/prod.html" || fail "prod's page offers bob the buttons"
curl -s -b "$jar" "$URL/environments/dev" | grep -q 'Sync now' || fail "dev's page lacks bob's buttons"
ok "bob synced dev and was refused on prod: 403 'sync of prod needs the deployer role on prod'"

# 4. bad input: a state that does not match, a code GitHub refuses, a forged session
rm -f "$jar"
loc=$(curl -s -c "$jar" -o /dev/null -w '%{redirect_url}' "$URL/login/github")
state=$(sed -n 's/.*state=\([0-9a-f]*\).*/\1/p' <<<"$loc")
[ ${#state} = 32 ] || fail "no state in $loc"
[ "$(curl -s -b "$jar" -o "$T/body" -w '%{http_code}' "$URL/login/github/callback?code=x&state=0123456789abcdef0123456789abcdef")" = 400 ] && jq -e '.error|test("state does not match")' "$T/body" >/dev/null || fail "state mismatch: $(cat "$T/body")"
[ "$(curl -s -o "$T/body" -w '%{http_code}' "$URL/login/github/callback?code=x&state=$state")" = 400 ] || fail "no state cookie"
[ "$(curl -s -b "$jar" -c "$jar" -o "$T/body" -D "$T/hdrs" -w '%{http_code}' "$URL/login/github/callback?code=bogus&state=$state")" = 401 ] && jq -e '.error|test("GitHub refused the code: bad_verification_code")' "$T/body" >/dev/null || fail "bad code: $(cat "$T/body")"
grep -qi '^set-cookie: sw_user=u1' "$T/hdrs" && fail "a session without a user"
[ "$(sign_in)" = "200 $URL/" ] || fail "sign-in again"
sed -i 's/\(sw_user\t[^\t]*\)bob/\1alice/; s/\.bob\./.alice./' "$jar"
[ "$(post /api/v1/environments/prod/sync)" = 401 ] && jq -e '.error|test("signature does not match")' "$T/body" >/dev/null || fail "forged session: $(cat "$T/body")"
ok "a state that does not match, a refused code, a forged session: 400, 401, 401, no session"

# 5. a real browser: headless Chromium signs bob in through GitHub and lands on
# the page signed in (the Lax session cookie survives the cross-site
# redirect), then sees prod's refusal rendered
CHROME=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROME" ]; then
	echo "note: chromium is not installed: the browser sign-in is skipped"
else
	prof=$(mktemp -d)
	chrome() { timeout 60 "$CHROME" --headless --no-sandbox --disable-gpu --disable-background-networking \
		--disable-component-update --disable-sync --no-first-run --user-data-dir="$prof" "$@" 2>>"$T/chrome.log"; }
	chrome --dump-dom "$URL/login/github" > "$T/dom-signin.html"
	grep -q 'Log out' "$T/dom-signin.html" && ! grep -q 'Sign in with GitHub' "$T/dom-signin.html" \
		|| fail "Chromium is not signed in after the flow: $(head -c 600 "$T/dom-signin.html")"
	chrome --dump-dom "$URL/audit" > "$T/dom-audit.html"
	grep -q 'audit.read needs the admin role (bob has deployer)' "$T/dom-audit.html" \
		|| fail "the refusal is not shown: $(head -c 600 "$T/dom-audit.html")"
	chrome --dump-dom "$URL/environments/prod" > "$T/dom-prod.html"
	grep -q 'Sync or rollback of prod needs the deployer role on prod (bob has deployer)' "$T/dom-prod.html" \
		|| fail "prod's refusal is not on the page in the browser"
	chrome --screenshot="$T/signed-in.png" --window-size=1280,900 "$URL/environments/prod" >/dev/null
	[ -s "$T/signed-in.png" ] || fail "no screenshot"
	[ -n "${SW_KEEP_SHOTS:-}" ] && cp "$T"/signed-in.png "$SW_KEEP_SHOTS"/ 2>/dev/null
	rm -rf "$prof"
	ok "headless Chromium signed in through GitHub, was refused /audit with the role named"
fi

# 6. sign-out, and the audit log names the users
[ "$(sign_in)" = "200 $URL/" ] || fail "sign-in before sign-out"
curl -s -b "$jar" -c "$jar" -o /dev/null -X POST "$URL/logout"
grep -q 'sw_user' "$jar" && fail "sign-out left the session: $(cat "$jar")"
[ "$(curl -s -o "$T/body" -w '%{http_code}' -H "Authorization: Bearer $API_TOKEN" "$URL/api/v1/audit?limit=200")" = 200 ] || fail "audit"
for sel in '.action=="sign_in" and .actor=="alice" and .actor_kind=="user" and .outcome=="ok" and .reason=="acme/platform"' \
	'.action=="sync" and .actor=="alice" and .target=="prod" and .outcome=="ok"' \
	'.action=="sync" and .actor=="bob" and .target=="prod" and .outcome=="refused"' \
	'.action=="sign_in" and .outcome=="refused" and (.reason|test("state does not match"))' \
	'.action=="sign_in" and .outcome=="refused" and (.reason|test("bad_verification_code"))'; do
	jq -e "[.audit[] | select($sel)] | length >= 1" "$T/body" >/dev/null || fail "no audit row $sel"
done
ok "sign-out clears the session; the audit log names alice and bob, the refused sign-ins too"
stop_daemon
