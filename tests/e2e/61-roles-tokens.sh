#!/bin/bash
# Roles, API tokens and the audit log (issue 13): the admin (server.api_token)
# creates a deployer token for dev with the CLI; it syncs dev (a run into the
# test API server, its author the token's name), and is refused on prod with
# the role named (403, exit 4); bad input (empty, too long or odd names, a
# malformed --expires, an unknown environment, a duplicate) gets 400/409 and
# nothing is created; forged, unknown, expired and revoked tokens get 401
# with the reason; sign-ins and a SIGHUP reload are recorded; the audit log
# through the API (filters, paging), the CLI and the page (escaped) shows
# each action with its actor and client.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/webhook.sh"
. "$SRC/tests/lib/kubeapi.sh"
T=$TMPDIR
export WEBHOOK_SECRET=roles-secret
export API_TOKEN="adm_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SW=$BUILD/slipway

pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	sw_kubeapi_stop "$T/dev"
}
trap cleanup EXIT
sw_kubeapi_start "$T/dev" || fail "dev cluster"

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
github: {webhook_secret: {secret_env: WEBHOOK_SECRET}}
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
    deployers: [acme/platform]
YAML
start_daemon
export SLIPWAY_SERVER=$URL
unset SLIPWAY_TOKEN

api() { local p=$1; shift; curl -s -o "$T/body" -w '%{http_code}' "$@" "$URL$p"; }
ADM=(-H "Authorization: Bearer $API_TOKEN")
create() { api /api/v1/tokens "${ADM[@]}" -H 'Content-Type: application/json' -d "$1"; }
tokens_named() { q "select count(*) from api_tokens where name='$1'"; }

# 1. the admin creates a deployer token for dev; shown once, stored as a hash
"$SW" --token "$API_TOKEN" token create ci-dev --role deployer --env dev --expires 90d \
	> "$T/tok.out" 2> "$T/tok.err" || fail "token create: $(cat "$T/tok.err")"
TOK=$(cat "$T/tok.out")
[[ "$TOK" =~ ^swt_[0-9a-f]{16}_[0-9a-f]{64}$ ]] || fail "token format: $TOK"
TID=${TOK:4:16}
grep -q "token ci-dev ($TID) created: role deployer on dev, expires in 89d" "$T/tok.err" \
	|| grep -q "token ci-dev ($TID) created: role deployer on dev, expires in 90d" "$T/tok.err" \
	|| fail "create message: $(cat "$T/tok.err")"
[ "$(q "select name||':'||role||':'||environments||':'||created_by||':'||length(hash) from api_tokens where id='$TID'")" = "ci-dev:deployer:dev:api_token:32" ] \
	|| fail "stored token: $(q "select * from api_tokens")"
secret=${TOK:21}
[ "$(q "select count(*) from api_tokens where instr(hex(hash), upper('$secret')) > 0")" = 0 ] || fail "the secret is stored"
grep -q "$secret" "$T/daemon.log" && fail "the secret is in the log"
grep -rqa "$secret" "$T/data" && fail "the secret is in the data directory"
ok "an admin created deployer token ci-dev ($TID) for dev: shown once, only its SHA-256 stored"

# 2. bad input: a clear answer, a row, and nothing created
[ "$(create '{"name":"","role":"deployer"}')" = 400 ] && jq -e '.error|test("needs a name")' "$T/body" >/dev/null || fail "empty name: $(cat "$T/body")"
long=$(printf 'n%.0s' $(seq 1 65))
[ "$(create "{\"name\":\"$long\",\"role\":\"viewer\"}")" = 400 ] && jq -e '.error|test("65 characters, at most 64")' "$T/body" >/dev/null || fail "long name: $(cat "$T/body")"
[ "$(create '{"name":"<b>x","role":"viewer"}')" = 400 ] && jq -e ".error|test(\"found '<' at 1\")" "$T/body" >/dev/null || fail "odd name: $(cat "$T/body")"
[ "$(create '{"name":"ci2","role":"deployer","expires":"soon"}')" = 400 ] && jq -e '.error|test("expires: expected a duration")' "$T/body" >/dev/null || fail "bad expires: $(cat "$T/body")"
[ "$(create '{"name":"ci2","role":"deployer","expires":"90"}')" = 400 ] || fail "expires without a unit"
[ "$(create '{"name":"ci2","role":"deployer","environments":["staging"]}')" = 400 ] && jq -e ".error|test(\"'staging' is not a configured environment\")" "$T/body" >/dev/null || fail "unknown env: $(cat "$T/body")"
[ "$(create '{"name":"ci2","role":"root"}')" = 400 ] && jq -e '.error|test("unknown role")' "$T/body" >/dev/null || fail "bad role"
[ "$(create '{"name":"ci2","role":"admin","environments":["dev"]}')" = 400 ] || fail "an admin token limited to dev"
[ "$(create '{"name":"ci-dev","role":"viewer"}')" = 409 ] && jq -e '.error|test("exists already")' "$T/body" >/dev/null || fail "duplicate: $(cat "$T/body")"
[ "$(tokens_named ci2)" = 0 ] && [ "$(q "select count(*) from api_tokens")" = 1 ] || fail "a refused create stored a token"
"$SW" --token "$API_TOKEN" token create ci3 --expires 1y > /dev/null 2>&1; [ $? = 2 ] || fail "create without --role: exit 2"
"$SW" --token "$API_TOKEN" token create ci3 --role viewer --expires 1y > /dev/null 2> "$T/err"; [ $? = 1 ] || fail "--expires 1y: exit 1"
grep -q "expires: expected a duration" "$T/err" || fail "CLI bad expires: $(cat "$T/err")"
[ "$(q "select count(*) from audit where action='token.create' and outcome='refused' and actor='api_token'")" = 10 ] \
	|| fail "refused creates recorded: $(q "select reason from audit where action='token.create'")"
ok "empty, long and odd names, bad expiries, roles and environments, duplicates: 400/409, nothing stored, each recorded"

# 3. the deployer token syncs dev, and is refused on prod with the role named
"$SW" --token "$TOK" sync dev > "$T/sync.out" 2>&1 || fail "sync dev: $(cat "$T/sync.out")"
R=$(sed -n 's/^sync of dev: run \([0-9]*\) queued.*/\1/p' "$T/sync.out")
[ -n "$R" ] || fail "no run: $(cat "$T/sync.out")"
[ "$(wait_final "$R" 60)" = success ] || fail "run $R: $(q "select name||':'||status||':'||coalesce(reason,'') from stages where run_id=$R")"
[ "$(q "select kind||':'||author from runs where id=$R")" = "manual:ci-dev" ] || fail "run $R author: $(q "select kind, author from runs where id=$R")"
[ "$(kubectl --kubeconfig "$T/dev/kubeconfig" get configmap app -o jsonpath='{.data.version}')" = 1 ] || fail "not deployed"
"$SW" --token "$TOK" sync prod > /dev/null 2> "$T/err"; rc=$?
[ $rc = 4 ] || fail "sync prod: exit $rc"
grep -q "sync of prod needs the deployer role on prod (token ci-dev has deployer on dev) (HTTP 403)" "$T/err" || fail "refusal: $(cat "$T/err")"
[ "$(api /api/v1/environments/prod/rollback -H "Authorization: Bearer $TOK" -d '{"revision":"abcdef1"}')" = 403 ] \
	&& jq -e '.error=="rollback of prod needs the deployer role on prod (token ci-dev has deployer on dev)"' "$T/body" >/dev/null || fail "rollback prod: $(cat "$T/body")"
[ "$(api /api/v1/tokens -H "Authorization: Bearer $TOK")" = 403 ] && jq -e '.error|test("token.list needs the admin role")' "$T/body" >/dev/null || fail "token list by a deployer: $(cat "$T/body")"
[ "$(api /api/v1/audit -H "Authorization: Bearer $TOK")" = 403 ] || fail "audit by a deployer"
[ "$(api /api/v1/audit)" = 401 ] || fail "audit anonymously"
[ "$(api /api/v1/environments)" = 200 ] || fail "reading stays open"
[ "$(api /api/v1/runs/$R/retry -X POST -H "Authorization: Bearer $TOK")" = 201 ] || fail "retry on dev: $(cat "$T/body")"
R2=$(jq .run "$T/body")
[ "$(wait_final "$R2" 60)" = success ] || fail "retry run $R2"
grep -q "auth.denied.*status=403.*actor=\"ci-dev\"" "$T/daemon.log" || grep -q "auth.denied.*status=403.*actor=ci-dev" "$T/daemon.log" || fail "no log line for the refusal"
ok "ci-dev synced dev (run $R, author ci-dev) and retried it; sync and rollback of prod: 403 with the role needed"

# 4. forged, unknown and malformed tokens; list; revoke; expired
forged="swt_${TID}_$(printf '0%.0s' $(seq 1 64))"
[ "$(api /api/v1/environments/dev/sync -X POST -H "Authorization: Bearer $forged")" = 401 ] && jq -e '.error=="API token not recognised"' "$T/body" >/dev/null || fail "forged: $(cat "$T/body")"
[ "$(api /api/v1/environments/dev/sync -X POST -H "Authorization: Bearer swt_0000000000000000_${secret}")" = 401 ] || fail "unknown id"
[ "$(api /api/v1/environments/dev/sync -X POST -H "Authorization: Bearer swt_zz")" = 401 ] && jq -e '.error|test("malformed API token")' "$T/body" >/dev/null || fail "malformed: $(cat "$T/body")"
grep -q "auth.token_refused token=$TID reason=forged" "$T/daemon.log" || fail "no log line for the forged token"
"$SW" --token "$API_TOKEN" token list > "$T/list.out" || fail "token list"
grep -E "^$TID +ci-dev +deployer +dev +active +api_token +" "$T/list.out" >/dev/null || fail "list: $(cat "$T/list.out")"
[ "$(api /api/v1/tokens "${ADM[@]}")" = 200 ] && jq -e --arg id "$TID" '.tokens[0].id==$id and .tokens[0].last_used_at > 0 and (.tokens[0]|has("token")|not) and (.tokens[0]|has("hash")|not)' "$T/body" >/dev/null || fail "list JSON: $(cat "$T/body")"
"$SW" --token "$API_TOKEN" token revoke "$TID" | grep -q "token $TID revoked" || fail "revoke"
"$SW" --token "$API_TOKEN" token revoke "$TID" > /dev/null 2> "$T/err"; [ $? = 1 ] && grep -q "revoked already" "$T/err" || fail "revoke twice: $(cat "$T/err")"
"$SW" --token "$API_TOKEN" token revoke ffffffffffffffff > /dev/null 2>&1; [ $? = 5 ] || fail "revoke unknown: exit 5"
"$SW" --token "$TOK" sync dev > /dev/null 2> "$T/err"; [ $? = 4 ] && grep -q "API token ci-dev ($TID) was revoked" "$T/err" || fail "revoked token: $(cat "$T/err")"
grep -q "auth.token_refused token=$TID name=ci-dev reason=revoked" "$T/daemon.log" || fail "no log line for the revoked token"
[ "$(create '{"name":"ci-dev","role":"viewer","expires":"1m"}')" = 201 ] || fail "the name is free after the revoke: $(cat "$T/body")"
TOK2=$(jq -r .token "$T/body"); TID2=$(jq -r .id "$T/body")
[ "$(api /api/v1/environments/dev/sync -X POST -H "Authorization: Bearer $TOK2")" = 403 ] && jq -e '.error|test("sync of dev needs the deployer role on dev \\(token ci-dev has viewer\\)")' "$T/body" >/dev/null || fail "viewer syncs: $(cat "$T/body")"
q "update api_tokens set expires_at = 1000 where id='$TID2'"   # its minute is over
[ "$(api /api/v1/environments/dev/sync -X POST -H "Authorization: Bearer $TOK2")" = 401 ] && jq -e '.error|test("API token ci-dev \\('"$TID2"'\\) expired at 1970-01-01")' "$T/body" >/dev/null || fail "expired: $(cat "$T/body")"
ok "forged, unknown, malformed, revoked and expired tokens: 401 with the reason and a log line; list and revoke by id"

# 5. sign-ins and a reload are recorded
[ "$(api /login -d token=wrong -H 'Accept: application/json')" = 401 ] || fail "wrong login"
[ "$(api /login --data-urlencode "token=$API_TOKEN" -H 'Accept: application/json')" = 200 ] || fail "login"
kill -HUP "$pid"
wait_until '[ "$(q "select count(*) from audit where action='"'config.reload'"'")" = 1 ]' || fail "no reload row"
ok "a failed and a good sign-in and a SIGHUP reload are in the audit log"

# 6. the audit log: API (filters, paging), CLI, page
[ "$(api "/api/v1/audit?limit=500" "${ADM[@]}")" = 200 ] || fail "audit API"
cp "$T/body" "$T/audit.json"
has() { jq -e "[.audit[] | select($1)] | length >= 1" "$T/audit.json" >/dev/null || fail "no audit row with $1: $(jq -c '.audit[]' "$T/audit.json" | head -40)"; }
has '.action=="token.create" and .outcome=="ok" and .actor=="api_token" and .actor_kind=="api_token" and .client=="127.0.0.1" and .target=="'"$TID"'" and (.reason|test("role=deployer environments=dev"))'
has '.action=="sync" and .outcome=="ok" and .actor=="ci-dev" and .actor_kind=="token" and .token_id=="'"$TID"'" and .target=="dev" and .client=="127.0.0.1" and .reason=="run '"$R"'"'
has '.action=="sync" and .outcome=="refused" and .actor=="ci-dev" and .target=="prod" and (.reason|test("needs the deployer role on prod"))'
has '.action=="rollback" and .outcome=="refused" and .target=="prod"'
has '.action=="retry" and .outcome=="ok" and .target=="run '"$R"'" and .actor=="ci-dev"'
has '.action=="token.list" and .outcome=="refused" and .actor=="ci-dev"'
has '.action=="sync" and .outcome=="refused" and .actor=="ci-dev" and (.reason|test("was revoked"))'
has '.action=="sync" and .outcome=="refused" and .actor=="anonymous" and .reason=="API token not recognised"'
has '.action=="token.revoke" and .outcome=="ok" and .target=="'"$TID"'" and .actor=="api_token"'
has '.action=="token.revoke" and .outcome=="refused" and (.reason|test("revoked already"))'
has '.action=="sign_in" and .outcome=="refused" and .actor=="anonymous" and .reason=="wrong token"'
has '.action=="sign_in" and .outcome=="ok" and .actor=="api_token"'
has '.action=="config.reload" and .outcome=="ok" and .actor=="SIGHUP" and .actor_kind=="system"'
jq -e '[.audit[] | select(.outcome=="started")] | length == 0' "$T/audit.json" >/dev/null || fail "an action left started"
[ "$(api "/api/v1/audit?actor=ci-dev&action=sync" "${ADM[@]}")" = 200 ] && jq -e '(.audit|length) >= 3 and all(.audit[]; .actor=="ci-dev" and .action=="sync")' "$T/body" >/dev/null || fail "filters: $(cat "$T/body")"
[ "$(api "/api/v1/audit?limit=2" "${ADM[@]}")" = 200 ] && next=$(jq -e .next "$T/body") || fail "paging"
[ "$(api "/api/v1/audit?limit=2&before=$next" "${ADM[@]}")" = 200 ] && jq -e --argjson n "$next" '.audit[0].id < $n' "$T/body" >/dev/null || fail "page 2"
[ "$(api "/api/v1/audit?since=$(( $(date +%s) * 1000 + 3600000 ))" "${ADM[@]}")" = 200 ] && jq -e '.audit==[]' "$T/body" >/dev/null || fail "since in the future"
[ "$(api "/api/v1/audit?limit=x" "${ADM[@]}")" = 400 ] || fail "bad limit"
"$SW" --token "$API_TOKEN" audit --actor ci-dev > "$T/audit.out" || fail "slipway audit"
grep -E "ci-dev +token +127\.0\.0\.1 +sync +dev +ok +run $R" "$T/audit.out" >/dev/null || fail "CLI audit: $(cat "$T/audit.out")"
grep -E "ci-dev +token +127\.0\.0\.1 +sync +prod +refused +sync of prod needs" "$T/audit.out" >/dev/null || fail "CLI refusal row"
"$SW" --token "$API_TOKEN" audit --since 1h --action sign_in --json | jq -e '.audit | length == 2' >/dev/null || fail "CLI audit --json"
[ "$(api /audit "${ADM[@]}")" = 200 ] || fail "audit page: $(head -c 300 "$T/body")"
grep -q '<h1>Audit log</h1>' "$T/body" || fail "page title"
grep -q 'found &#39;&lt;&#39; at 1' "$T/body" || fail "the page does not escape: $(grep -o "found [^<]*at 1" "$T/body" | head -2)"
grep -q '&lt;b&gt;x' "$T/body" && ! grep -q '<b>x' "$T/body" || fail "the target is not escaped"
grep -q 'href="/audit?actor=ci-dev"' "$T/body" || fail "actor link"
grep -q '<a href="/audit">Audit</a>' "$T/body" || fail "no Audit link for the admin"
curl -s "$URL/" | grep -q '<a href="/audit">Audit</a>' && fail "an Audit link for anonymous"
[ "$(api /audit -H "Authorization: Bearer $TOK")" = 401 ] || fail "page with a revoked token"
ok "the audit log through the API (filters, paging), slipway audit and the page (escaped)"

stop_daemon
