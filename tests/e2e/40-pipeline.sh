#!/bin/bash
# Webhooks to pipeline runs in real containers (Podman), reported to a
# recording GitHub/Slack stand-in. Covers: PR opened -> stages -> statuses
# and comment; redelivery; bad signature; tag push and deleted branch
# ignored; a failing stage with its log tail; an invalid .slipway.yml with
# file:line:col on the PR; a newer commit superseding a running run; GitHub
# answering 500 then 201; secrets masked in stored logs (the lines of a
# multi-line one, env, base64, also in the API and the page); kill -9 mid-run and
# a restart that retries the run and loses no delivery.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/webhook.sh"
. "$SRC/tests/lib/podman.sh"
. "$SRC/tests/lib/recorder.sh"
T=$TMPDIR
SHARED=$(shared_dir)
FIX=$SHARED/fixtures/github
export WEBHOOK_SECRET="It's a Secret to Everybody"
export GH_TOKEN=ghp_e2e_token_0123456789
export SLACK_URL=placeholder
export NPM_TOKEN=npm_Sup3rS3cretValue
# a key file of three lines, as a deploy key or a PEM file would be
printf 'first-line-Alpha1\nsecond-line-Bravo2\nthird-line-Charlie3\n' > "$T/multi.key"
MULTI_LINES=(first-line-Alpha1 second-line-Bravo2 third-line-Charlie3)
MULTI_B64=$(printf '%s' "$(cat "$T/multi.key")" | base64 -w0)

pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	sw_recorder_stop "$T/rec"
	sw_podman_stop "$T/podman"
}
trap cleanup EXIT

sw_podman_start "$T/podman" || fail "podman service"
# the first commit status GitHub receives is answered 500: it must still arrive
sw_recorder_start "$T/rec" --token "$GH_TOKEN" --fail 'POST /repos/*/statuses/*:500:1' || fail "recorder"
export SLACK_URL=$SW_RECORDER_URL/slack/webhook

# --- a repository with a pipeline ---------------------------------------------
git init -q --bare "$T/origin.git"
git clone -q "$T/origin.git" "$T/work" 2>/dev/null
cd "$T/work"
git config user.email dev@example.com
git config user.name Dev
git checkout -q -b main
cat > .slipway.yml <<'YML'
stages:
  - name: lint
    image: slipway-busybox:latest
    commands:
      - echo "linting $SLIPWAY_COMMIT"
      - if grep -q FAIL app.txt; then echo "found FAIL marker in app.txt" >&2; exit 3; fi
      - sleep "$(cat sleep.txt 2>/dev/null || echo 0)"
  - name: test
    image: slipway-busybox:latest
    secrets: [NPM_TOKEN, MULTI]
    commands:
      - echo "token is $NPM_TOKEN"
      - echo "line two is $(echo "$MULTI" | sed -n 2p)"
      - env | sort
      - printf '%s' "$MULTI" | base64 | tr -d '\n'; echo
      - echo "$MULTI" | base64
      - cat app.txt
YML
echo hello > app.txt
git add -A && git commit -qm "initial" && git push -q origin main
git checkout -q -b feature
commit() { echo "$1" > app.txt; [ -n "${2:-}" ] && echo "$2" > sleep.txt || rm -f sleep.txt; git add -A; git commit -qm "$3"; git push -q -f origin feature; git rev-parse HEAD; }
C_OK=$(commit "hello world" "" "passing change")
C_FAIL=$(commit "FAIL here" "" "failing change")
sed -i 's/^  - name: test/  - name: test\n    colour: blue/' .slipway.yml
C_BAD=$(commit "hello" "" "broken pipeline file")
git checkout -q main -- .slipway.yml
C_SLOW=$(commit "slow" 20 "slow change")
C_FAST=$(commit "fast" "" "fast change")
C_MID=$(commit "mid" 6 "medium change")
cd "$T"

# --- the daemon ----------------------------------------------------------------
port=$(free_port)
URL=http://127.0.0.1:$port
cat > "$T/slipway.yaml" <<YAML
server:
  listen: 127.0.0.1:$port
  public_url: $URL
  data_dir: data
  max_concurrent_runs: 4
github:
  api_url: $SW_RECORDER_URL
  webhook_secret: {secret_env: WEBHOOK_SECRET}
  token: {secret_env: GH_TOKEN}
slack:
  webhook_url: {secret_env: SLACK_URL}
runner:
  backend: docker
  docker_socket: $SW_PODMAN_SOCK
  network: none
  timeout: 2m
secrets:                # pull requests get a secret only when it names pull_request
  NPM_TOKEN: {value: {secret_env: NPM_TOKEN}, events: [pull_request, push, deploy]}
  MULTI: {value: {secret_file: $T/multi.key}, events: [pull_request, push, deploy]}
repositories:
  - name: acme/shop
    url: file://$T/origin.git
environments:
  - name: dev
    branch: dev
YAML
start_daemon


wait_stage_running() {
	local i
	for i in $(seq 1 $(sw_slow_ticks 60)); do
		[ "$(q "select count(*) from stages where run_id=$1 and status='running'")" -ge 1 ] && return 0
		sleep 0.1
	done
	return 1
}

# 1. PR opened -> stages run in containers -> success
pr "$C_OK" opened 1 > "$T/pr1.json"
code=$(deliver pull_request "$T/pr1.json" guid-pr1)
[ "$code" = 202 ] || fail "PR delivery answered $code: $(cat "$T/resp")"
jq -e '.delivery == "guid-pr1" and .state == "queued"' "$T/resp" >/dev/null || fail "202 body: $(cat "$T/resp")"
wait_until 'test -n "$(run_of guid-pr1)"'
R1=$(run_of guid-pr1)
[ -n "$R1" ] && [ "$R1" != 0 ] || fail "no run for the PR delivery"
st=$(wait_final "$R1")
[ "$st" = success ] || { tail -40 "$T/daemon.log"; fail "run $R1 ended $st: $(q "select name,status,reason from stages where run_id=$R1")"; }
[ "$(q "select group_concat(name||':'||status, ',') from stages where run_id=$R1")" = "lint:success,test:success" ] || fail "stages of run $R1"
log=$(q "select group_concat(data, '') from log_chunks where stage_id=(select id from stages where run_id=$R1 and name='test')")
echo "$log" | grep -q "token is \*\*\*" || fail "test log: $log"
echo "$log" | grep -q "hello world" || fail "test log lacks the checkout's file: $log"
q "select count(*) from log_chunks where instr(cast(data as text), '$NPM_TOKEN') > 0" | grep -qx 0 || fail "the secret reached stored logs"
# a multi-line secret: one line of it, env, its base64 (issue 11, defect 5)
echo "$log" | grep -q '^line two is \*\*\*$' || fail "sed -n 2p not masked: $log"
echo "$log" | grep -q '^MULTI=\*\*\*' || fail "env not masked: $log"
curl -sf "$URL/api/v1/runs/$R1/stages/test/log?max=1048576" > "$T/log.json" || fail "GET the test stage's log"
jq -e '.data | contains("line two is ***")' "$T/log.json" >/dev/null || fail "API log: $(cat "$T/log.json")"
curl -sf "$URL/runs/$R1" > "$T/run1.html" || fail "GET /runs/$R1"
grep -qF 'line two is ***' "$T/run1.html" || fail "the page lacks the masked log"
for s in "${MULTI_LINES[@]}" "$MULTI_B64" "${MULTI_B64:0:40}"; do
	q "select count(*) from log_chunks where instr(cast(data as text), '$s') > 0" | grep -qx 0 ||
		fail "'$s' reached the stored log: $log"
	grep -qF "$s" "$T/log.json" && fail "'$s' reached the API"
	grep -qF "$s" "$T/run1.html" && fail "'$s' reached the page"
done
ok "PR opened: run $R1 ran lint and test in containers; the secrets are masked (a multi-line one line by line, env, base64; stored, API, page)"

# statuses and the comment arrive (the first status was answered 500)
have_final_status() {
	sw_recorder_count "$T/rec" "r['route']=='github.status' and r['status']==201 and r['path'].endswith('$C_OK') and r['body']['context']=='$1' and r['body']['state']=='success'"
}
for ctx in slipway/lint slipway/test slipway; do
	for i in $(seq 1 $(sw_slow_ticks 40)); do [ "$(have_final_status $ctx)" -ge 1 ] && break; sleep 0.1; done
	[ "$(have_final_status $ctx)" -ge 1 ] || fail "no success status for $ctx"
done
[ "$(sw_recorder_count "$T/rec" "r['route']=='github.status' and r.get('injected')==500")" = 1 ] || fail "the injected 500 was not hit"
for i in $(seq 1 $(sw_slow_ticks 20)); do [ "$(sw_recorder_count "$T/rec" "r['route'].startswith('github.comment') and 'slipway:run:$R1' in str(r['body'])")" -ge 1 ] && break; sleep 0.1; done
[ "$(sw_recorder_count "$T/rec" "r['route']=='github.comment.create' and 'slipway:run:$R1' in str(r['body'])")" = 1 ] || fail "PR comment for run $R1 not created exactly once"
sw_recorder_count "$T/rec" "r['route']=='github.status' and r['body']['target_url']=='$URL/runs/$R1'" | grep -qv '^0$' || fail "status target_url"
[ "$(sw_recorder_count "$T/rec" "r['route']=='slack.webhook'")" -ge 1 ] || fail "no Slack message"
ok "statuses (after a 500), one PR comment and Slack messages reached the stand-in"

# 2. redelivery, bad signature, ignored events
code=$(deliver pull_request "$T/pr1.json" guid-pr1)
[ "$code" = 200 ] && jq -e '.duplicate == true' "$T/resp" >/dev/null || fail "redelivery answered $code $(cat "$T/resp")"
[ "$(q "select count(*) from runs where commit_sha='$C_OK'")" = 1 ] || fail "redelivery started a second run"
# the same signed body replayed under new GUIDs: duplicates, nothing recorded
n=$(q "select count(*) from deliveries")
for g in replay-1 replay-2 replay-3; do
	code=$(deliver pull_request "$T/pr1.json" "$g")
	[ "$code" = 200 ] && jq -e '.duplicate == true and .state == "duplicate"' "$T/resp" >/dev/null \
		|| fail "replay $g answered $code $(cat "$T/resp")"
done
[ "$(q "select count(*) from runs where commit_sha='$C_OK'")" = 1 ] || fail "a replay started a second run"
[ "$(q "select count(*) from deliveries")" = "$n" ] || fail "replays were recorded"
grep -q 'webhook.duplicate.*guid=replay-3.*replays delivery' "$T/daemon.log" || fail "no duplicate line for the replay"
# a signed body that is not JSON: 400 with the parse error, nothing recorded
printf '{"action": "opened", "number": 1,' > "$T/broken.json"
code=$(deliver pull_request "$T/broken.json" guid-broken)
[ "$code" = 400 ] && jq -e --arg m "payload: string or '}' expected at line 1 column 34" '.error == $m' "$T/resp" >/dev/null \
	|| fail "invalid JSON answered $code $(cat "$T/resp")"
[ "$(q "select count(*) from deliveries")" = "$n" ] || fail "the invalid delivery was stored"
n=$(q "select count(*) from deliveries")
code=$(deliver pull_request "$T/pr1.json" guid-badsig "wrong secret")
[ "$code" = 401 ] || fail "bad signature answered $code"
[ "$(q "select count(*) from deliveries")" = "$n" ] || fail "a badly signed delivery was stored"
jq '.ref="refs/tags/v1.0" | .repository.full_name="acme/shop"' "$FIX/push-branch.json" > "$T/tag.json"
[ "$(deliver push "$T/tag.json" guid-tag)" = 202 ] || fail "tag push not accepted"
jq '.ref="refs/heads/dev" | .deleted=true | .after="0000000000000000000000000000000000000000" | .head_commit=null | .repository.full_name="acme/shop"' "$FIX/push-branch.json" > "$T/del.json"
[ "$(deliver push "$T/del.json" guid-del)" = 202 ] || fail "branch deletion not accepted"
wait_until 'test "$(q "select state from deliveries where guid='\''guid-del'\''")" = ignored'
[ "$(q "select reason from deliveries where guid='guid-tag'")" = "tag push" ] || fail "tag push reason: $(q "select state, reason from deliveries where guid='guid-tag'")"
q "select reason from deliveries where guid='guid-del'" | grep -q "branch dev deleted" || fail "deleted branch reason"
[ "$(deliver ping "$FIX/ping.json" guid-ping)" = 200 ] || fail "ping"
ok "redelivery is a no-op, bad signatures are refused, tag pushes and deleted branches are ignored"

# 3. a failing stage: failure status with the log tail in the comment
pr "$C_FAIL" synchronize 1 > "$T/pr1b.json"
[ "$(deliver pull_request "$T/pr1b.json" guid-fail)" = 202 ] || fail "failing PR delivery"
wait_until 'test -n "$(run_of guid-fail)"'
R2=$(run_of guid-fail)
[ "$(wait_final "$R2")" = failure ] || fail "run $R2 should fail"
[ "$(q "select status||':'||exit_code from stages where run_id=$R2 and name='lint'")" = "failure:3" ] || fail "lint stage of run $R2"
[ "$(q "select status from stages where run_id=$R2 and name='test'")" = skipped ] || fail "test stage should be skipped"
for i in $(seq 1 $(sw_slow_ticks 20)); do [ "$(sw_recorder_count "$T/rec" "r['route'].startswith('github.comment') and 'slipway:run:$R2' in str(r['body']) and 'found FAIL marker' in str(r['body'])")" -ge 1 ] && break; sleep 0.1; done
[ "$(sw_recorder_count "$T/rec" "r['route'].startswith('github.comment') and 'found FAIL marker' in str(r['body'])")" -ge 1 ] || fail "the comment lacks the failed log tail"
for i in $(seq 1 $(sw_slow_ticks 20)); do [ "$(sw_recorder_count "$T/rec" "r['route']=='github.status' and r['path'].endswith('$C_FAIL') and r['body']['context']=='slipway/lint' and r['body']['state']=='failure'")" -ge 1 ] && break; sleep 0.1; done
[ "$(sw_recorder_count "$T/rec" "r['route']=='github.status' and r['path'].endswith('$C_FAIL') and r['body']['context']=='slipway/lint' and r['body']['state']=='failure'")" -ge 1 ] || fail "no failure status for lint"
ok "a failing stage fails the run, skips the next stage, and the comment shows its log tail"

# 3b. a pull request from a fork gets no secrets; a form-encoded delivery works;
#     a body over 25 MiB is refused with 413 and not stored
pr "$C_OK" opened 9 | jq '.pull_request.head.repo.full_name="someone/shop-fork"' > "$T/fork.json"
printf 'payload=' > "$T/fork.form"
jq -sRr @uri < "$T/fork.json" | tr -d '\n' >> "$T/fork.form"
sig=$(openssl dgst -sha256 -hmac "$WEBHOOK_SECRET" "$T/fork.form" | sed 's/^.*= //')
code=$(curl -s -o "$T/resp" -w '%{http_code}' -H "X-GitHub-Event: pull_request" -H "X-GitHub-Delivery: guid-fork" \
	-H "X-Hub-Signature-256: sha256=$sig" -H 'Content-Type: application/x-www-form-urlencoded' \
	--data-binary "@$T/fork.form" "$URL/hooks/github")
[ "$code" = 202 ] || fail "form-encoded delivery answered $code: $(cat "$T/resp")"
wait_until 'test -n "$(run_of guid-fork)"'
RF=$(run_of guid-fork)
[ "$(wait_final "$RF")" = error ] || fail "fork run $RF should end in error (no secrets)"
q "select reason from stages where run_id=$RF and name='test'" | grep -q "not given to pull requests from forks" || fail "fork stage reason: $(q "select name, status, reason from stages where run_id=$RF")"
[ "$(q "select status from stages where run_id=$RF and name='lint'")" = skipped ] || fail "the fork's run should not start: lint is $(q "select status from stages where run_id=$RF and name='lint'")"
n=$(q "select count(*) from deliveries")
code=$(head -c 27000000 /dev/zero | tr '\0' ' ' | curl -s -o /dev/null -w '%{http_code}' -H "X-GitHub-Event: push" \
	-H "X-GitHub-Delivery: guid-huge" -H "X-Hub-Signature-256: sha256=00" -H 'Content-Type: application/json' \
	--data-binary @- "$URL/hooks/github")
[ "$code" = 413 ] || fail "a 27 MB body answered $code, want 413"
[ "$(q "select count(*) from deliveries")" = "$n" ] || fail "the oversized delivery was stored"
curl -sf "$URL/healthz" >/dev/null || fail "not alive after the oversized body"
ok "fork PRs get no secrets; form-encoded deliveries work; 27 MB is refused with 413"

# 4. an invalid .slipway.yml: the error with file:line:col is what the PR shows
pr "$C_BAD" synchronize 1 > "$T/pr1c.json"
[ "$(deliver pull_request "$T/pr1c.json" guid-bad)" = 202 ] || fail "bad-spec delivery"
wait_until 'test -n "$(run_of guid-bad)"'
R3=$(run_of guid-bad)
[ "$(wait_final "$R3")" = error ] || fail "run $R3 should be error"
reason=$(q "select reason from runs where id=$R3")
echo "$reason" | grep -q '\.slipway\.yml:[0-9]*:[0-9]*: .*colour' || fail "reason lacks the location: $reason"
for i in $(seq 1 $(sw_slow_ticks 20)); do [ "$(sw_recorder_count "$T/rec" "r['route'].startswith('github.comment') and 'slipway:run:$R3' in str(r['body']) and '.slipway.yml:' in str(r['body'])")" -ge 1 ] && break; sleep 0.1; done
[ "$(sw_recorder_count "$T/rec" "r['route'].startswith('github.comment') and 'slipway:run:$R3' in str(r['body']) and '.slipway.yml:' in str(r['body'])")" -ge 1 ] || fail "the PR comment lacks the located error"
ok "an invalid .slipway.yml fails the run with $reason"

# 5. a newer commit on the same PR supersedes the running run
pr "$C_SLOW" synchronize 2 > "$T/pr2a.json"
[ "$(deliver pull_request "$T/pr2a.json" guid-slow)" = 202 ] || fail "slow delivery"
wait_until 'test -n "$(run_of guid-slow)"'
R4=$(run_of guid-slow)
wait_stage_running "$R4" || fail "slow run $R4 never started a stage"
# another delivery for the same head (a different body) joins the running run
jq '.action="reopened"' "$T/pr2a.json" > "$T/pr2r.json"
[ "$(deliver pull_request "$T/pr2r.json" guid-slow-again)" = 202 ] || fail "reopened delivery"
wait_until 'test -n "$(run_of guid-slow-again)"' || fail "the reopened delivery was not mapped"
[ "$(run_of guid-slow-again)" = "$R4" ] || fail "the same head got run $(run_of guid-slow-again) beside $R4"
q "select reason from deliveries where guid='guid-slow-again'" | grep -q "run $R4 already tests" || fail "join reason: $(q "select reason from deliveries where guid='guid-slow-again'")"
[ "$(q "select status from runs where id=$R4")" = running ] || fail "run $R4 was disturbed by the second delivery"
pr "$C_FAST" synchronize 2 > "$T/pr2b.json"
[ "$(deliver pull_request "$T/pr2b.json" guid-fast)" = 202 ] || fail "fast delivery"
wait_until 'test -n "$(run_of guid-fast)"'
R5=$(run_of guid-fast)
[ "$(wait_final "$R4" 30)" = cancelled ] || fail "run $R4 was not cancelled"
q "select reason from runs where id=$R4" | grep -q "superseded by run $R5" || fail "supersede reason: $(q "select reason from runs where id=$R4")"
[ "$(q "select superseded_by from runs where id=$R4")" = "$R5" ] || fail "superseded_by not recorded"
[ "$(wait_final "$R5")" = success ] || fail "run $R5 should succeed"
ok "run $R5 superseded and cancelled run $R4"

# 6. kill -9 mid-run: the restart retries the run; a delivery acknowledged just
#    before the crash is not lost
pr "$C_MID" synchronize 3 > "$T/pr3.json"
[ "$(deliver pull_request "$T/pr3.json" guid-mid)" = 202 ] || fail "mid delivery"
wait_until 'test -n "$(run_of guid-mid)"'
R6=$(run_of guid-mid)
wait_stage_running "$R6" || fail "run $R6 never started a stage"
pr "$C_OK" opened 4 > "$T/pr4.json"
[ "$(deliver pull_request "$T/pr4.json" guid-last)" = 202 ] || fail "last delivery"
kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=
start_daemon
[ "$(wait_final "$R6" 30)" = interrupted ] || fail "run $R6 not interrupted after the crash"
q "select reason from runs where id=$R6" | grep -q "retried as run" || fail "interrupted reason: $(q "select reason from runs where id=$R6")"
R7=$(q "select id from runs where commit_sha='$C_MID' and attempt=2")
[ -n "$R7" ] || fail "no second attempt of run $R6"
[ "$(wait_final "$R7")" = success ] || fail "retried run $R7 did not succeed"
# mapped before or after the crash, and perhaps retried: its last attempt succeeds
wait_until 'test -n "$(run_of guid-last)"'
[ -n "$(run_of guid-last)" ] || fail "the delivery acknowledged before the crash was lost"
wait_until 'test -n "$(q "select id from runs where delivery_id=(select id from deliveries where guid='\''guid-last'\'') and status not in ('\''interrupted'\'')")"'
RL=$(q "select id from runs where delivery_id=(select id from deliveries where guid='guid-last') order by id desc limit 1")
[ -n "$RL" ] && [ "$(wait_final "$RL")" = success ] || fail "the run of the last delivery did not succeed"
ok "after kill -9, run $R6 was retried as run $R7 and the last delivery ran as $RL"

# nothing invalid was sent, and no container is left behind
sw_recorder_invalid "$T/rec" || fail "invalid requests reached the GitHub/Slack stand-in"
# (a container the killed daemon was still creating goes with the second
# leftover sweep, 5 s after the restart)
labelled() { curl -s --unix-socket "$SW_PODMAN_SOCK" 'http://d/v1.41/containers/json?all=1&filters=%7B%22label%22%3A%5B%22slipway.run%22%5D%7D' | jq length; }
wait_until '[ "$(labelled)" = 0 ]' 15
left=$(labelled)
[ "$left" = 0 ] || fail "$left containers left behind"
stop_daemon
ok "no invalid report, no leftover container, clean stop"
