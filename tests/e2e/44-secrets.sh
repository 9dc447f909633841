#!/bin/bash
# Scoped secrets end to end, with the local runner and the test API server:
# a pull request stage asking for a push-only (short form) secret fails
# before the run starts, with the reason on its commit status, the PR
# comment and Slack; a secret that names pull_request reaches a PR; a push to dev
# gets the push-only secret, deploys, and its acceptance stage gets dev's
# own value of DB_URL and, granted cluster_access, a kubeconfig of the dev
# cluster that real kubectl uses; prod's acceptance gets prod's value and no
# KUBECONFIG. No value (nor the cluster token) reaches a stored log, the log
# API or the SQLite files.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/webhook.sh"
. "$SRC/tests/lib/recorder.sh"
. "$SRC/tests/lib/kubeapi.sh"
T=$TMPDIR
SHARED=$(shared_dir)
FIX=$SHARED/fixtures/github
export WEBHOOK_SECRET=secrets-hook-secret GH_TOKEN=ghp_secrets_e2e_token SLACK_URL=placeholder
export PUSH_ONLY_V=push-only-Value-7f3a PR_V=pr-token-Value-91c2
export DB_DEV_V=postgres://dev-user:Dev-Pass-5521@db.dev/app DB_PROD_V=postgres://prod-user:Prod-Pass-8834@db.prod/app
KUBE_TOKEN=kube-Token-Secret-0e77d1
sha() { printf '%s' "$1" | sha256sum | cut -c1-16; }

pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	sw_kubeapi_stop "$T/dev"; sw_kubeapi_stop "$T/prod"
	sw_recorder_stop "$T/rec"
}
trap cleanup EXIT
sw_recorder_start "$T/rec" --token "$GH_TOKEN" || fail "recorder"
export SLACK_URL=$SW_RECORDER_URL/slack/webhook
# https with a bearer token (kubectl sends no token over plain http)
sw_kubeapi_start "$T/dev" --tls-dir "$T/dev/tls" --token "$KUBE_TOKEN" --ready-delay-ms 100 || fail "dev cluster"
DEV=$SW_KUBEAPI_URL
sw_kubeapi_start "$T/prod" --ready-delay-ms 100 || fail "prod cluster"

# --- the repository -----------------------------------------------------------
new_origin
mkdir -p deploy
cp "$SHARED"/fixtures/manifests/guestbook/*.yaml deploy/
cat > .slipway.yml <<'YML'
stages:
  - name: check
    when: {event: pull_request}
    secrets: [PR_TOKEN]
    commands:
      - echo "pr token is $PR_TOKEN"
      - echo "pr token sha $(printf '%s' "$PR_TOKEN" | sha256sum | cut -c1-16)"
  - name: publish
    when: {event: [pull_request, push]}
    secrets: [PUSH_ONLY]
    commands:
      - echo "publishing with $PUSH_ONLY"
      - echo "push sha $(printf '%s' "$PUSH_ONLY" | sha256sum | cut -c1-16)"
  - name: acceptance
    when: {event: deploy}
    secrets: [DB_URL]
    commands:
      - echo "db is $DB_URL"
      - echo "db sha $(printf '%s' "$DB_URL" | sha256sum | cut -c1-16)"
      - |
        if [ -n "${KUBECONFIG:-}" ]; then
          echo "kubeconfig at $KUBECONFIG mode $(stat -c %a "$KUBECONFIG")"
          kubectl get deployment guestbook-ui -o name
          cat "$KUBECONFIG"
        else
          echo "no kubeconfig"
        fi
YML
git add -A && git commit -qm "pipeline" && git push -q origin main
git checkout -q -b dev && git push -q origin dev
C_MAIN=$(git rev-parse HEAD)
git checkout -q -b feature
echo change > app.txt && git add -A && git commit -qm "a change" && git push -q origin feature
C_PR=$(git rev-parse HEAD)
# the second head: publish runs for pushes only, so the PR asks for PR_TOKEN alone
sed -i 's/when: {event: \[pull_request, push\]}/when: {event: push}/' .slipway.yml
git add -A && git commit -qm "publish on push only" && git push -q origin feature
C_PR2=$(git rev-parse HEAD)
cd "$T"

# --- the daemon ----------------------------------------------------------------
port=$(free_port)
URL=http://127.0.0.1:$port
cat > "$T/slipway.yaml" <<YAML
server: {listen: 127.0.0.1:$port, public_url: $URL, data_dir: data}
github:
  api_url: $SW_RECORDER_URL
  webhook_secret: {secret_env: WEBHOOK_SECRET}
  token: {secret_env: GH_TOKEN}
slack: {webhook_url: {secret_env: SLACK_URL}}
runner: {backend: local, timeout: 1m}
secrets:
  PUSH_ONLY: {secret_env: PUSH_ONLY_V}
  PR_TOKEN:
    value: {secret_env: PR_V}
    events: [pull_request]
    branches: [main]
repositories:
  - {name: acme/shop, url: "file://$T/origin.git"}
environments:
  - name: dev
    branch: dev
    cluster: {kubeconfig: $T/dev/kubeconfig, context: kubeapi-token, namespace: default}
    manifests: [deploy]
    health_timeout: 20s
    secrets:
      DB_URL: {secret_env: DB_DEV_V}
    acceptance: {cluster_access: true}
  - name: prod
    branch: main
    cluster: {kubeconfig: $T/prod/kubeconfig, namespace: default}
    manifests: [deploy]
    health_timeout: 20s
    secrets:
      DB_URL: {value: {secret_env: DB_PROD_V}, events: [deploy]}
YAML
start_daemon
grep -q "event=config.secret_short_form secret=PUSH_ONLY env=- at=$T/slipway.yaml:9" "$T/daemon.log" ||
	fail "no start-up warning for the short form: $(grep secret "$T/daemon.log")"
grep -q "event=config.secret_short_form secret=DB_URL env=dev at=$T/slipway.yaml:23" "$T/daemon.log" ||
	fail "no start-up warning for dev's short form: $(grep secret "$T/daemon.log")"
[ "$(grep -c 'event=config.secret_short_form' "$T/daemon.log")" = 2 ] || fail "one warning per short-form secret"
ok "start-up warns once per short-form secret, with file:line"

outbox_sent() { wait_until 'test "$(q "select count(*) from outbox where state != '\''sent'\''")" = 0' 60 || fail "outbox not drained: $(q "select idempotency_key, state from outbox where state != 'sent'")"; }
stage_log() { q "select group_concat(data, '') from log_chunks where stage_id=(select id from stages where run_id=$1 and name='$2')"; }
status_of() {   # status_of SHA CONTEXT: "state|description" of the last status sent
	python3 - "$T/rec" "$1" "$2" <<'PY'
import json, sys, glob
last = ""
for f in sorted(glob.glob(sys.argv[1] + "/requests.jsonl")):
    for line in open(f):
        r = json.loads(line)
        if r.get("route") == "github.status" and r["path"].endswith(sys.argv[2]) and r["body"]["context"] == sys.argv[3]:
            last = r["body"]["state"] + "|" + r["body"].get("description", "")
print(last)
PY
}

# 1. a PR stage asking for a push-only secret: the run fails before it starts
pr "$C_PR" opened 1 > "$T/pr1.json"
[ "$(deliver pull_request "$T/pr1.json" g-pr1)" = 202 ] || fail "PR delivery: $(cat "$T/resp")"
wait_until 'test -n "$(run_of g-pr1)"'; R1=$(run_of g-pr1)
[ "$(wait_final "$R1")" = error ] || fail "run $R1: $(q "select name||':'||status||':'||coalesce(reason,'') from stages where run_id=$R1")"
WHY="secret PUSH_ONLY is not available to pull_request runs"
[ "$(q "select status||'|'||reason from stages where run_id=$R1 and name='publish'")" = "error|$WHY" ] ||
	fail "publish: $(q "select status, reason from stages where run_id=$R1")"
q "select status||'|'||reason from stages where run_id=$R1 and name='check'" | grep -q '^skipped|the run did not start: stage publish asks for a secret' ||
	fail "check should not run: $(q "select status, reason from stages where run_id=$R1 and name='check'")"
[ -z "$(stage_log "$R1" check)" ] || fail "check ran: $(stage_log "$R1" check)"
q "select reason from runs where id=$R1" | grep -qF "stage publish: $WHY" || fail "run reason: $(q "select reason from runs where id=$R1")"
outbox_sent   # the machine may be loaded: wait on the database, then read the stand-in once
status_of "$C_PR" slipway/publish | grep -qF "error|publish errored: $WHY" || fail "publish status: $(status_of "$C_PR" slipway/publish)"
[ "$(sw_recorder_count "$T/rec" "r['route'].startswith('github.comment') and '$WHY' in str(r['body'])")" -ge 1 ] ||
	fail "the PR comment lacks the reason"
[ "$(sw_recorder_count "$T/rec" "r['route'] == 'slack.webhook' and '$WHY' in str(r['body'])")" -ge 1 ] ||
	fail "the Slack message lacks the reason"
ok "PR run $R1: publish asks for push-only PUSH_ONLY and fails before the run starts; status, comment and Slack say why"

# 2. a PR asking only for a secret that names pull_request (and its base, main) gets it
pr "$C_PR2" synchronize 1 > "$T/pr2.json"
[ "$(deliver pull_request "$T/pr2.json" g-pr2)" = 202 ] || fail "PR delivery: $(cat "$T/resp")"
wait_until 'test -n "$(run_of g-pr2)"'; R2=$(run_of g-pr2)
[ "$(wait_final "$R2")" = success ] || fail "run $R2: $(q "select name||':'||status||':'||coalesce(reason,'') from stages where run_id=$R2")"
stage_log "$R2" check | grep -q "pr token sha $(sha "$PR_V")" || fail "PR_TOKEN did not reach the PR: $(stage_log "$R2" check)"
stage_log "$R2" check | grep -q 'pr token is \*\*\*' || fail "PR_TOKEN not masked: $(stage_log "$R2" check)"
ok "PR run $R2 gets PR_TOKEN (events: [pull_request], branches: [main] matched on the base), masked"

# 3. a push to dev: publish gets the push-only secret; acceptance gets dev's DB_URL and the cluster
push_branch dev "$C_MAIN" g-dev
wait_until 'test -n "$(run_of g-dev)"'; R3=$(run_of g-dev)
[ "$(wait_final "$R3")" = success ] || { tail -20 "$T/daemon.log"; fail "run $R3: $(q "select name||':'||status||':'||coalesce(reason,'') from stages where run_id=$R3")"; }
[ "$(q "select group_concat(name||':'||status, ',') from stages where run_id=$R3")" = "publish:success,deploy:success,acceptance:success" ] ||
	fail "stages of $R3: $(q "select group_concat(name||':'||status, ',') from stages where run_id=$R3")"
stage_log "$R3" publish | grep -q "push sha $(sha "$PUSH_ONLY_V")" || fail "PUSH_ONLY did not reach the push: $(stage_log "$R3" publish)"
L=$(stage_log "$R3" acceptance)
echo "$L" | grep -q "db sha $(sha "$DB_DEV_V")" || fail "dev's DB_URL did not reach dev's acceptance: $L"
echo "$L" | grep -q 'db is \*\*\*' || fail "DB_URL not masked: $L"
echo "$L" | grep -q "kubeconfig at .* mode 600" || fail "no private kubeconfig: $L"
echo "$L" | grep -q "^deployment.apps/guestbook-ui" || fail "kubectl get through the granted kubeconfig: $L"
echo "$L" | grep -q "\"server\": \"$DEV\"" || fail "the kubeconfig is not dev's: $L"
echo "$L" | grep -q '"token": "\*\*\*"' || fail "the cluster token is not masked: $L"
ls "$T"/data/workspaces/run-"$R3"/.slipway/kubeconfig-* 2>/dev/null && fail "the kubeconfig was left behind"
ok "push run $R3: PUSH_ONLY reaches push stages; acceptance gets dev's DB_URL and a 0600 kubeconfig of dev that kubectl uses, masked"

# 4. a push to main (prod): prod's own value, no cluster access
push_branch main "$C_MAIN" g-prod
wait_until 'test -n "$(run_of g-prod)"'; R4=$(run_of g-prod)
[ "$(wait_final "$R4")" = success ] || fail "run $R4: $(q "select name||':'||status||':'||coalesce(reason,'') from stages where run_id=$R4")"
L=$(stage_log "$R4" acceptance)
echo "$L" | grep -q "db sha $(sha "$DB_PROD_V")" || fail "prod's DB_URL did not reach prod's acceptance: $L"
echo "$L" | grep -q "^no kubeconfig" || fail "prod's acceptance has a KUBECONFIG without a grant: $L"
ok "push run $R4 to prod: acceptance gets prod's DB_URL (same name, its own value) and no KUBECONFIG"

# 5. no value anywhere it should not be: stored logs, the log API, the database files
for R in "$R1" "$R2" "$R3" "$R4"; do
	for st in $(q "select name from stages where run_id=$R"); do
		curl -sf "$URL/api/v1/runs/$R/stages/$st/log?max=1048576" >> "$T/api-logs.json" || fail "GET log of $R/$st"
	done
done
grep -q 'db is \*\*\*' "$T/api-logs.json" || fail "the log API lacks the masked lines"
sqlite3 "$T/data/slipway.db" 'pragma wal_checkpoint(truncate)' >/dev/null
for v in "$PUSH_ONLY_V" "$PR_V" "$DB_DEV_V" "$DB_PROD_V" "$KUBE_TOKEN" "Dev-Pass-5521" "Prod-Pass-8834"; do
	grep -qF "$v" "$T/api-logs.json" && fail "'$v' reached the log API"
	grep -qaF "$v" "$T"/data/slipway.db* && fail "'$v' reached the database file"
	grep -qF "$v" "$T/daemon.log" && fail "'$v' reached the daemon's log"
	[ "$(sw_recorder_count "$T/rec" "'$v' in str(r)")" = 0 ] || fail "'$v' was sent to GitHub or Slack"
done
sw_recorder_invalid "$T/rec" || fail "the stand-in refused requests"
ok "no secret value (nor the cluster token) in the log API, the database files, the daemon log or what GitHub and Slack got"
