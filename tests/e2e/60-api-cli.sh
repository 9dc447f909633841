#!/bin/bash
# The JSON API and the `slipway` CLI against a daemon running pipelines with
# the local runner: runs list (paging, filters), run detail, logs by offset,
# `logs -f` following a running stage, cancel (401 / 403 without CSRF / 200),
# retry (cookie + CSRF), deliveries, environments, actions without a sync
# engine (501), read_access: token, the CLI's tables, --json and exit codes,
# and `slipway validate` on a good and a bad checkout.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/webhook.sh"
T=$TMPDIR
FIX=$(shared_dir)/fixtures/github
export WEBHOOK_SECRET="api-cli-secret"
export API_TOKEN="tok_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SW=$BUILD/slipway

pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; }
trap cleanup EXIT

# --- a repository with a pipeline ----------------------------------------------
git init -q --bare "$T/origin.git"
git clone -q "$T/origin.git" "$T/work" 2>/dev/null
cd "$T/work"
git config user.email dev@example.com
git config user.name Dev
git checkout -q -b main
cat > .slipway.yml <<'YML'
stages:
  - name: lint
    commands:
      - echo "linting $SLIPWAY_COMMIT"
      - n=$(cat lines.txt 2>/dev/null || echo 0); i=1; while [ $i -le $n ]; do echo "line $i"; sleep 0.3; i=$((i+1)); done
  - name: test
    commands:
      - echo "tests ok"
YML
git add -A && git commit -qm "initial" && git push -q origin main
git checkout -q -b feature
commit() { echo "$1" > lines.txt; git add -A; git commit -qm "$2"; git push -q -f origin feature; git rev-parse HEAD; }
C_OK=$(commit 0 "quick change")
C_SLOW=$(commit 8 "slow change")
C_LONG=$(commit 200 "very slow change")
cd "$T"

# --- the daemon -------------------------------------------------------------------
port=$(free_port)
URL=http://127.0.0.1:$port
write_config() {
	cat > "$T/slipway.yaml" <<YAML
server:
  listen: 127.0.0.1:$port
  data_dir: data
  read_access: $1
  api_token: {secret_env: API_TOKEN}
github:
  webhook_secret: {secret_env: WEBHOOK_SECRET}
runner:
  backend: local
repositories:
  - name: acme/shop
    url: file://$T/origin.git
environments:
  - name: dev
    branch: dev
YAML
}
write_config open
start_daemon
export SLIPWAY_SERVER=$URL
unset SLIPWAY_TOKEN

# api PATH [curl args...]: GET (or as told) with the JSON body in $T/body; prints the code
api() { local p=$1; shift; curl -s -o "$T/body" -w '%{http_code}' "$@" "$URL$p"; }
B=(-H "Authorization: Bearer $API_TOKEN")
# start_pr SHA NUMBER GUID: deliver and print the run id
start_pr() {
	pr "$1" opened "$2" > "$T/pr$2.json"
	[ "$(deliver pull_request "$T/pr$2.json" "$3")" = 202 ] || fail "delivery $3: $(cat "$T/resp")"
	local i r
	for i in $(seq 1 $(sw_slow_ticks 20)); do
		r=$(curl -s "${B[@]}" "$URL/api/v1/deliveries?limit=20" | jq -r --arg g "$3" '.deliveries[] | select(.guid==$g) | .run_id // empty')
		[ -n "$r" ] && { echo "$r"; return 0; }
		sleep 0.1
	done
	fail "no run for delivery $3"
}
# wait_final RUN: until the run's status is final; prints it
wait_final() {
	local i s
	for i in $(seq 1 $(sw_slow_ticks 60)); do
		s=$(curl -s "${B[@]}" "$URL/api/v1/runs/$1" | jq -r .status)
		case "$s" in queued|running|"") sleep 0.1 ;; *) echo "$s"; return 0 ;; esac
	done
	echo "timeout:$s"
}

# 1. a quick run; detail, stages, logs by offset
R1=$(start_pr "$C_OK" 1 guid-1)
[ "$(wait_final "$R1")" = success ] || { tail -20 "$T/daemon.log"; fail "run $R1 did not succeed"; }
[ "$(api /api/v1/runs/$R1)" = 200 ] || fail "run detail"
jq -e --arg c "$C_OK" '.commit==$c and .kind=="pull_request" and .pr_number==1 and .pr_title=="Change 1"
	and .status=="success" and ([.stages[].name]==["lint","test"]) and (.stages[0].log_size > 0)
	and (.duration_ms >= 0)' "$T/body" >/dev/null || fail "run detail body: $(cat "$T/body")"
[ "$(api /api/v1/runs/$R1/stages)" = 200 ] && jq -e '.stages | length == 2' "$T/body" >/dev/null || fail "stages"
[ "$(api "/api/v1/runs/$R1/stages/lint/log?offset=0&max=5")" = 200 ] || fail "log"
jq -e '.data=="linti" and .offset==0 and .next_offset==5 and .complete==false' "$T/body" >/dev/null || fail "log page 1: $(cat "$T/body")"
[ "$(api "/api/v1/runs/$R1/stages/lint/log?offset=5")" = 200 ] || fail "log page 2"
jq -e --arg c "$C_OK" '(.data | startswith("ng " + $c)) and .complete==true and .next_offset==.size' "$T/body" >/dev/null || fail "log page 2: $(cat "$T/body")"
[ "$(api "/api/v1/runs/$R1/stages/lint/log?offset=99999")" = 200 ] && jq -e '.data=="" and .complete' "$T/body" >/dev/null || fail "log past the end"
[ "$(api "/api/v1/runs/$R1/stages/nope/log")" = 404 ] || fail "log of a missing stage"
[ "$(api "/api/v1/runs/$R1/stages/lint/log?max=abc")" = 400 ] && jq -e '.status==400 and (.error|test("max"))' "$T/body" >/dev/null || fail "bad max"
[ "$(api /api/v1/runs/424242)" = 404 ] && jq -e '.status==404 and (.error|test("no run 424242"))' "$T/body" >/dev/null || fail "missing run: $(cat "$T/body")"
[ "$(api /api/v1/nothing)" = 404 ] || fail "unknown API path"
ok "run detail, stages, and the log read by offsets"

# 2. slipway logs -f follows a running stage to its end
R2=$(start_pr "$C_SLOW" 2 guid-2)
start=$(date +%s%N)
"$SW" logs "$R2" lint -f > "$T/follow.out" 2> "$T/follow.err"; rc=$?
[ $rc = 0 ] || fail "logs -f exit $rc: $(cat "$T/follow.err")"
for i in 1 4 8; do grep -qx "line $i" "$T/follow.out" || fail "logs -f lacks line $i: $(cat "$T/follow.out")"; done
[ "$(grep -c '^line' "$T/follow.out")" = 8 ] || fail "logs -f printed lines twice or lost some: $(cat "$T/follow.out")"
[ $(( ($(date +%s%N) - start) / 1000000 )) -ge 1500 ] || fail "logs -f returned before the stage ended"
[ "$(curl -s "$URL/api/v1/runs/$R2/stages" | jq -r '.stages[0].status')" = success ] || fail "the followed stage is not final"
"$SW" logs "$R2" > "$T/all.out" || fail "logs of all stages"
grep -q "tests ok" "$T/all.out" && grep -q "line 8" "$T/all.out" || fail "logs of all stages: $(cat "$T/all.out")"
ok "slipway logs -f followed the running stage of run $R2 to its end"

# 3. cancel: 401 without a token, 403 with a cookie but no CSRF, 200 with the bearer
R3=$(start_pr "$C_LONG" 3 guid-3)
for i in $(seq 1 $(sw_slow_ticks 20)); do [ "$(curl -s "$URL/api/v1/runs/$R3" | jq -r .status)" = running ] && break; sleep 0.1; done
[ "$(api /api/v1/runs/$R3/cancel -X POST)" = 401 ] && jq -e '.status==401' "$T/body" >/dev/null || fail "cancel without a token: $(cat "$T/body")"
[ "$(api /api/v1/runs/$R3/cancel -X POST -H 'Authorization: Bearer wrong')" = 401 ] || fail "cancel with a wrong token"
[ "$(curl -s -o /dev/null -w '%{http_code}' -c "$T/jar" --data-urlencode token=wrong "$URL/login")" = 401 ] || fail "login with a wrong token"
[ "$(curl -s -o /dev/null -w '%{http_code}' -c "$T/jar" -D "$T/login.h" --data-urlencode "token=$API_TOKEN" --data-urlencode next=/runs/1 "$URL/login")" = 303 ] || fail "login"
grep -qi '^set-cookie: sw_session=.*HttpOnly.*SameSite=Strict' "$T/login.h" || fail "session cookie attributes: $(cat "$T/login.h")"
grep -q "$API_TOKEN" "$T/login.h" "$T/jar" && fail "the token itself is in a cookie"
grep -qi '^location: /runs/1' "$T/login.h" || fail "login redirect"
CSRF=$(awk '$6=="sw_csrf"{print $7}' "$T/jar")
[ -n "$CSRF" ] || fail "no csrf cookie"
[ "$(api /api/v1/runs/$R3/cancel -X POST -b "$T/jar")" = 403 ] && jq -e '.error|test("CSRF")' "$T/body" >/dev/null || fail "cookie without CSRF: $(cat "$T/body")"
[ "$(api /api/v1/runs/$R3/cancel -X POST -b "$T/jar" -H "X-CSRF-Token: ${CSRF}x")" = 403 ] || fail "cookie with a wrong CSRF token"
[ "$(curl -s "$URL/api/v1/runs/$R3" | jq -r .status)" = running ] || fail "run $R3 stopped by a refused request"
"$SW" cancel "$R3" > "$T/cancel.out" 2>&1 && fail "cancel without a token succeeded"
"$SW" --token wrong cancel "$R3" > /dev/null 2>&1; [ $? = 4 ] || fail "cancel with a bad token: exit not 4"
[ "$(api /api/v1/runs/$R3/cancel -X POST "${B[@]}")" = 200 ] || fail "cancel with the bearer: $(cat "$T/body")"
jq -e --argjson r "$R3" '.run==$r' "$T/body" >/dev/null || fail "cancel body $(cat "$T/body")"
[ "$(wait_final "$R3")" = cancelled ] || fail "run $R3 not cancelled"
"$SW" --token "$API_TOKEN" cancel "$R3" > /dev/null 2> "$T/cancel.err"; [ $? = 1 ] || fail "cancelling a finished run: exit not 1"
grep -q "already finished" "$T/cancel.err" || fail "cancel message: $(cat "$T/cancel.err")"
ok "cancel: 401 without a token, 403 for a cookie without CSRF, 200 with the bearer; 1 for a finished run"

# 4. retry with the cookie and its CSRF token (a form field works like the header)
[ "$(api /api/v1/runs/$R1/retry -X POST -b "$T/jar" -H "X-CSRF-Token: $CSRF")" = 201 ] || fail "retry with cookie + CSRF: $(cat "$T/body")"
R4=$(jq -r .run "$T/body")
jq -e --argjson r "$R1" '.retry_of==$r and .attempt==2' "$T/body" >/dev/null || fail "retry body: $(cat "$T/body")"
[ "$(wait_final "$R4")" = success ] || fail "retried run $R4"
[ "$(api /api/v1/runs/$R4/retry -X POST -b "$T/jar" --data-urlencode "csrf=$CSRF")" = 201 ] || fail "retry with a csrf form field: $(cat "$T/body")"
R5=$(jq -r .run "$T/body")
wait_final "$R5" >/dev/null
"$SW" --token "$API_TOKEN" retry "$R1" > "$T/retry.out" || fail "slipway retry"
grep -q "queued (attempt 2, retry of run $R1)" "$T/retry.out" || fail "retry output: $(cat "$T/retry.out")"
R6=$(awk '{print $2}' "$T/retry.out")
wait_final "$R6" >/dev/null
[ "$(api /logout -X POST -b "$T/jar" -D "$T/logout.h")" = 303 ] || fail "logout"
[ "$(grep -ci '^set-cookie: sw_\(session\|csrf\)=; Max-Age=0' "$T/logout.h")" = 2 ] || fail "logout does not clear the cookies: $(cat "$T/logout.h")"
[ "$(api /api/v1/runs/$R1/retry -X POST -H "Cookie: sw_session=1.$(printf %032d 0).$(printf %064d 0); sw_csrf=$CSRF" -H "X-CSRF-Token: $CSRF")" = 401 ] || fail "a forged session was accepted"
ok "retry: with a session cookie and CSRF header or form field (runs $R4, $R5), and from the CLI ($R6); logout"

# 5. runs: paging and filters
[ "$(api "/api/v1/runs?limit=2")" = 200 ] || fail "runs"
jq -e --argjson r "$R6" '(.runs|length)==2 and .runs[0].id==$r and .runs[0].id > .runs[1].id and (.next|type)=="number"' "$T/body" >/dev/null || fail "page 1: $(cat "$T/body")"
next=$(jq .next "$T/body"); seen=$(jq '[.runs[].id]' "$T/body")
all=$(jq '.runs|length' "$T/body")
while [ "$next" != null ]; do
	[ "$(api "/api/v1/runs?limit=2&before=$next")" = 200 ] || fail "page before $next"
	jq -e --argjson n "$next" 'all(.runs[]; .id < $n)' "$T/body" >/dev/null || fail "page before $next has newer runs"
	all=$((all + $(jq '.runs|length' "$T/body"))); next=$(jq .next "$T/body")
done
[ "$all" = "$R6" ] || fail "paging saw $all runs, expected $R6"
[ "$(api "/api/v1/runs?status=cancelled")" = 200 ] && jq -e --argjson r "$R3" '[.runs[].id]==[$r] and .next==null' "$T/body" >/dev/null || fail "status filter: $(cat "$T/body")"
[ "$(api "/api/v1/runs?kind=pull_request&repo=acme/shop&limit=100")" = 200 ] && jq -e --argjson n "$R6" '(.runs|length)==$n' "$T/body" >/dev/null || fail "kind/repo filter"
[ "$(api "/api/v1/runs?env=dev")" = 200 ] && jq -e '.runs==[]' "$T/body" >/dev/null || fail "env filter"
[ "$(api "/api/v1/runs?status=bogus")" = 400 ] && jq -e '.error|test("bogus")' "$T/body" >/dev/null || fail "bad status filter"
[ "$(api "/api/v1/runs?limit=0")" = 400 ] || fail "limit=0"
[ "$(api "/api/v1/runs" -X PUT)" = 405 ] || fail "PUT runs"
ok "runs: paging by id with a next cursor over $all runs, filters, 400 for bad ones"

# 6. deliveries, environments, actions without a sync engine
[ "$(api "/api/v1/deliveries?limit=10")" = 200 ] || fail "deliveries"
jq -e --argjson r "$R1" '.deliveries | any(.guid=="guid-1" and .state=="mapped" and .run_id==$r and .event=="pull_request" and .repo=="acme/shop")' "$T/body" >/dev/null || fail "deliveries: $(cat "$T/body")"
jq '.ref="refs/tags/v1" | .repository.full_name="acme/shop"' "$FIX/push-branch.json" > "$T/tag.json"
[ "$(deliver push "$T/tag.json" guid-tag)" = 202 ] || fail "tag push"
for i in $(seq 1 $(sw_slow_ticks 10)); do api "/api/v1/deliveries" >/dev/null; jq -e '.deliveries[0].state=="ignored"' "$T/body" >/dev/null && break; sleep 0.1; done
jq -e '.deliveries[0] | .guid=="guid-tag" and .state=="ignored" and .reason=="tag push" and .run_id==null' "$T/body" >/dev/null || fail "ignored delivery: $(cat "$T/body")"
[ "$(api /api/v1/environments)" = 200 ] && jq -e '.environments | length==1 and .[0].name=="dev" and .[0].branch=="dev" and .[0].sync_status=="unknown" and .[0].drift_latest==null' "$T/body" >/dev/null || fail "environments: $(cat "$T/body")"
[ "$(api /api/v1/environments/dev)" = 200 ] || fail "environment dev"
[ "$(api /api/v1/environments/dev/history)" = 200 ] && jq -e '.syncs==[]' "$T/body" >/dev/null || fail "history"
[ "$(api /api/v1/environments/dev/drift)" = 200 ] && jq -e '.events==[]' "$T/body" >/dev/null || fail "drift"
[ "$(api /api/v1/environments/dev/inventory)" = 200 ] && jq -e '.objects==[] and .counts.healthy==0' "$T/body" >/dev/null || fail "inventory"
[ "$(api /api/v1/environments/dev/history/99)" = 404 ] || fail "missing sync"
[ "$(api /api/v1/environments/prod)" = 404 ] || fail "missing environment"
[ "$(api /api/v1/environments/dev/sync -X POST)" = 401 ] || fail "sync without a token"
# dev has no cluster: without a sync engine the answer is 501, with one a refusal
refused() { case "$1" in 400|409|501) jq -e --argjson c "$1" '.status==$c and (.error|length)>0' "$T/body" >/dev/null ;; *) return 1 ;; esac; }
refused "$(api /api/v1/environments/dev/sync -X POST "${B[@]}")" || fail "sync of an environment without a cluster: $(cat "$T/body")"
[ "$(api /api/v1/environments/dev/rollback -X POST "${B[@]}" -d '{}')" = 400 ] || fail "rollback without a revision"
[ "$(api /api/v1/environments/dev/rollback -X POST "${B[@]}" -d '{"revision":"zz"}')" = 400 ] || fail "rollback to garbage"
[ "$(api /api/v1/environments/dev/rollback -X POST "${B[@]}" -d '{"revision":"7"}')" = 404 ] || fail "rollback to a missing sync"
refused "$(api /api/v1/environments/dev/rollback -X POST "${B[@]}" -d "{\"revision\":\"$C_OK\"}")" || fail "rollback without a cluster: $(cat "$T/body")"
refused "$(api /api/v1/environments/dev/diff)" || fail "diff without a cluster: $(cat "$T/body")"
"$SW" --token "$API_TOKEN" sync dev 2> "$T/sync.err"; [ $? = 1 ] || fail "slipway sync exit"
"$SW" diff prod 2>/dev/null; [ $? = 5 ] || fail "slipway diff of a missing environment: exit not 5"
ok "deliveries (mapped and ignored with reason), environments, history/drift/inventory, and sync/rollback/diff refused for an environment without a cluster"

# 7. the CLI: tables, --json, exit codes
"$SW" runs --limit 3 > "$T/runs.out" || fail "slipway runs"
head -1 "$T/runs.out" | grep -q '^RUN  *STATUS  *KIND  *REPO  *REF  *COMMIT  *ENV  *CREATED  *DURATION$' || fail "runs table header: $(head -1 "$T/runs.out")"
[ "$(wc -l < "$T/runs.out")" = 4 ] || fail "runs table rows: $(cat "$T/runs.out")"
grep -Eq "^$R6 +success +pull_request +acme/shop +#1 feature +${C_OK:0:7} +- +(just now|[0-9]+s ago) +[0-9.]+m?s$" "$T/runs.out" || fail "runs row: $(cat "$T/runs.out")"
"$SW" runs --status cancelled --json | jq -e --argjson r "$R3" '.runs[0].id==$r' >/dev/null || fail "runs --json"
"$SW" run "$R2" > "$T/run.out" || fail "slipway run"
grep -q "pull request #2 Change 2" "$T/run.out" && grep -q "^lint  *success  *0 " "$T/run.out" || fail "run output: $(cat "$T/run.out")"
"$SW" run "$R2" --json | jq -e '.stages|length==2' >/dev/null || fail "run --json"
"$SW" status > "$T/status.out" || fail "slipway status"
grep -q '^ENVIRONMENT' "$T/status.out" && grep -q '^dev  *dev  *unknown' "$T/status.out" && grep -q '^RUN' "$T/status.out" || fail "status output: $(cat "$T/status.out")"
"$SW" status --json | jq -e '.environments[0].name=="dev" and (.runs|length)>0' >/dev/null || fail "status --json"
"$SW" run 999999 2> "$T/err"; [ $? = 5 ] || fail "missing run: exit not 5"
grep -q "no run 999999" "$T/err" || fail "missing run message"
"$SW" --server http://127.0.0.1:1 runs 2> "$T/err"; [ $? = 3 ] || fail "dead server: exit not 3"
grep -q "cannot reach" "$T/err" || fail "dead server message: $(cat "$T/err")"
"$SW" runs --bogus 2>/dev/null; [ $? = 2 ] || fail "unknown option: exit not 2"
"$SW" frobnicate 2>/dev/null; [ $? = 2 ] || fail "unknown command: exit not 2"
"$SW" logs 2>/dev/null; [ $? = 2 ] || fail "missing argument: exit not 2"
"$SW" cancel --env dev 3 2>/dev/null; [ $? = 2 ] || fail "option of another command: exit not 2"
"$SW" logs --help | grep -q -- "--follow" || fail "logs --help"
"$SW" --version | grep -q '^slipway [0-9]' || fail "--version"
"$SW" --help | grep -q "validate" || fail "--help"
ok "CLI tables, --json, --help and exit codes 2, 3, 4, 5"

# 8. read_access: token
stop_daemon
write_config token
start_daemon
[ "$(api /api/v1/runs)" = 401 ] && jq -e '.status==401' "$T/body" >/dev/null || fail "read without a token in token mode"
[ "$(api /api/v1/environments)" = 401 ] || fail "environments without a token"
[ "$(api /api/v1/runs "${B[@]}")" = 200 ] || fail "read with the token"
[ "$(curl -s -o /dev/null -w '%{http_code}' -c "$T/jar2" --data-urlencode "token=$API_TOKEN" "$URL/login")" = 303 ] || fail "login (token mode)"
[ "$(api /api/v1/runs/$R1 -b "$T/jar2")" = 200 ] || fail "read with the session cookie"
"$SW" runs > /dev/null 2>&1; [ $? = 4 ] || fail "CLI without a token in token mode: exit not 4"
"$SW" --token nope runs > /dev/null 2>&1; [ $? = 4 ] || fail "CLI with a bad token: exit not 4"
SLIPWAY_TOKEN=$API_TOKEN "$SW" runs > /dev/null || fail "CLI with SLIPWAY_TOKEN"
grep -q "$API_TOKEN" "$T/daemon.log" && fail "the token reached the log"
ok "read_access: token refuses reads without the token (401, CLI exit 4) and accepts bearer and cookie"

# 9. slipway validate
mkdir -p "$T/work/deploy"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  a: "1"\n' > "$T/work/deploy/app.yaml"
"$SW" validate "$T/work" --manifests deploy > "$T/val.out" 2>&1 || fail "validate of a good checkout: $(cat "$T/val.out")"
grep -q "ok (2 stages)" "$T/val.out" && grep -q "ok (1 object)" "$T/val.out" || fail "validate output: $(cat "$T/val.out")"
(cd "$T/work" && "$SW" validate) > /dev/null || fail "validate in the current directory"
cp -r "$T/work" "$T/bad"
cat > "$T/bad/.slipway.yml" <<'YML'
stages:
  - name: lint
    colour: blue
    commands: [true]
YML
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {}\n' > "$T/bad/deploy/noname.yaml"
"$SW" validate "$T/bad" --manifests deploy > "$T/val.out" 2> "$T/val.err"; rc=$?
[ $rc = 1 ] || fail "validate of a bad checkout: exit $rc"
grep -q "^$T/bad/.slipway.yml:3:5: .*colour" "$T/val.err" || fail "spec error location: $(cat "$T/val.err")"
grep -q "^$T/bad/deploy/noname.yaml:[0-9]*:[0-9]*: .*metadata.name" "$T/val.err" || fail "manifest error location: $(cat "$T/val.err")"
"$SW" validate "$T/bad" --json | jq -e '.valid==false and (.errors|length)==1' >/dev/null || fail "validate --json"
"$SW" validate "$T/nonexistent" 2>/dev/null; [ $? = 2 ] || fail "validate of a missing directory: exit not 2"
ok "slipway validate: 0 for a good checkout, 1 with file:line:col for a bad one"

stop_daemon
