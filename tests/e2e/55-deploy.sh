#!/bin/bash
# The deploy flow end to end: merges to dev and main as signed webhooks ->
# fetch, render, server-side apply into the test API servers standing in for
# the dev and prod clusters, health, the acceptance stage in a Podman
# container, statuses; a workload that never becomes ready -> failure and a
# rollback to the last healthy commit; kubectl patch and delete of managed
# objects -> healed, with drift events; self-heal off in prod -> reported only.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/webhook.sh"
. "$SRC/tests/lib/podman.sh"
. "$SRC/tests/lib/recorder.sh"
. "$SRC/tests/lib/kubeapi.sh"
T=$TMPDIR
SHARED=$(shared_dir)
FIX=$SHARED/fixtures/github
export WEBHOOK_SECRET=deploy-secret GH_TOKEN=ghp_deploy_token SLACK_URL=placeholder
export SLIPWAY_TOKEN=deploy-api-token

pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	sw_kubeapi_stop "$T/dev"; sw_kubeapi_stop "$T/prod"
	sw_recorder_stop "$T/rec"
	sw_podman_stop "$T/podman"
}
trap cleanup EXIT
sw_podman_start "$T/podman" || fail "podman"
sw_recorder_start "$T/rec" --token "$GH_TOKEN" || fail "recorder"
export SLACK_URL=$SW_RECORDER_URL/slack/webhook
sw_kubeapi_start "$T/dev" --ready-delay-ms 300 || fail "dev cluster"
DEV=$SW_KUBEAPI_URL
sw_kubeapi_start "$T/prod" --ready-delay-ms 300 || fail "prod cluster"
PROD=$SW_KUBEAPI_URL
kdev() { kubectl --kubeconfig "$T/dev/kubeconfig" "$@"; }
kprod() { kubectl --kubeconfig "$T/prod/kubeconfig" "$@"; }

# the repository: guestbook manifests and an acceptance stage for dev
git init -q --bare "$T/origin.git"
git clone -q "$T/origin.git" "$T/work" 2>/dev/null
cd "$T/work"
git config user.email dev@example.com; git config user.name Dev
git checkout -q -b dev
mkdir -p deploy
cp "$SHARED"/fixtures/manifests/guestbook/*.yaml deploy/
cat > .slipway.yml <<'YML'
stages:
  - name: acceptance
    image: slipway-busybox:latest
    when: {event: deploy, environment: [dev]}
    commands:
      - echo "testing $SLIPWAY_ENVIRONMENT at $SLIPWAY_COMMIT against $SLIPWAY_KUBE_SERVER"
      - test -n "$SLIPWAY_KUBE_SERVER"
      - if [ -f ACCEPTANCE_FAILS ]; then echo "acceptance failed" >&2; exit 1; fi
YML
git add -A && git commit -qm "guestbook" && git push -q origin dev
C1=$(git rev-parse HEAD)
cd "$T"

port=$(free_port)
URL=http://127.0.0.1:$port
cat > "$T/slipway.yaml" <<YAML
server: {listen: 127.0.0.1:$port, public_url: $URL, data_dir: data, api_token: {secret_env: SLIPWAY_TOKEN}}
github:
  api_url: $SW_RECORDER_URL
  webhook_secret: {secret_env: WEBHOOK_SECRET}
  token: {secret_env: GH_TOKEN}
slack: {webhook_url: {secret_env: SLACK_URL}}
runner: {backend: docker, docker_socket: $SW_PODMAN_SOCK, network: none}
repositories:
  - {name: acme/shop, url: "file://$T/origin.git"}
environments:
  - name: dev
    branch: dev
    cluster: {kubeconfig: $T/dev/kubeconfig, namespace: default}
    manifests: [deploy]
    health_timeout: 4s
    rollback_on_failure: true
  - name: prod
    branch: main
    cluster: {kubeconfig: $T/prod/kubeconfig, namespace: default}
    manifests: [deploy]
    self_heal: false
YAML
"$BUILD/slipwayd" -c "$T/slipway.yaml" 2>> "$T/daemon.log" &
pid=$!
wait_for curl -sf "$URL/readyz" || { tail -30 "$T/daemon.log"; fail "daemon did not start"; }

push() {   # push BRANCH SHA GUID
	jq --arg ref "refs/heads/$1" --arg sha "$2" '.ref=$ref | .after=$sha | .head_commit.id=$sha
		| .repository.full_name="acme/shop" | .deleted=false' "$FIX/push-branch.json" > "$T/push.json"
	[ "$(deliver push "$T/push.json" "$3")" = 202 ] || fail "push $3 answered $(cat "$T/resp")"
}
commit_push() {   # commit_push MSG GUID (commits what is staged in $T/work to dev)
	(cd "$T/work" && git add -A && git commit -qm "$1" && git push -q origin dev)
	push dev "$(git -C "$T/work" rev-parse HEAD)" "$2"
	wait_until 'test -n "$(run_of "$2")"'
	run_of "$2"
}

# 1. merge to dev: deploy + acceptance in a container
push dev "$C1" d1
wait_until 'test -n "$(run_of d1)"'; R1=$(run_of d1)
st=$(wait_final "$R1")
[ "$st" = success ] || { tail -30 "$T/daemon.log"; fail "run $R1: $st $(q "select name||':'||status||':'||coalesce(reason,'') from stages where run_id=$R1")"; }
[ "$(q "select group_concat(name||':'||status, ',') from stages where run_id=$R1")" = "deploy:success,acceptance:success" ] || fail "stages of $R1"
kdev get deployment guestbook-ui -o json > "$T/dep.json" || fail "guestbook-ui not in the dev cluster"
jq -e '.metadata.labels["slipway.dev/environment"] == "dev"' "$T/dep.json" >/dev/null || fail "no tracking label"
kdev get service guestbook-ui >/dev/null || fail "service not applied"
[ "$(q "select sync_status||':'||health||':'||synced_commit from environments where name='dev'")" = "synced:healthy:$C1" ] || fail "env state: $(q "select * from environments where name='dev'")"
q "select group_concat(data,'') from log_chunks where stage_id=(select id from stages where run_id=$R1 and name='acceptance')" | grep -q "testing dev at $C1 against $DEV" || fail "acceptance env"
for i in $(seq 1 $(sw_slow_ticks 20)); do [ "$(sw_recorder_count "$T/rec" "r['route']=='github.status' and r['body']['context']=='slipway/deploy' and r['body']['state']=='success'")" -ge 1 ] && break; sleep 0.1; done
[ "$(sw_recorder_count "$T/rec" "r['route']=='github.status' and r['body']['context']=='slipway/acceptance' and r['body']['state']=='success'")" -ge 1 ] || fail "no acceptance status"
ok "merge to dev: deployed $C1 (created), acceptance passed in a container, statuses sent"

# 2. an image change -> configured; 3. a file deleted -> pruned
sed -i 's#image: .*#image: gcr.io/heptio-images/ks-guestbook-demo:0.2#' "$T/work/deploy/guestbook-ui-deployment.yaml"
R2=$(commit_push "new image" d2)
[ "$(wait_final "$R2")" = success ] || fail "run $R2"
S2=$(q "select id from syncs where run_id=$R2")
[ "$(q "select result from sync_objects where sync_id=$S2 and kind='Deployment'")" = configured ] || fail "deployment not configured: $(q "select kind, result from sync_objects where sync_id=$S2")"
[ "$(q "select result from sync_objects where sync_id=$S2 and kind='Service'")" = unchanged ] || fail "service not unchanged"
kdev get deployment guestbook-ui -o jsonpath='{.spec.template.spec.containers[0].image}' | grep -q ':0.2' || fail "image not changed live"
C2=$(git -C "$T/work" rev-parse HEAD)
ok "image change: Deployment configured, Service unchanged"

# 4. drift: kubectl patch of a managed field is healed; kubectl delete is recreated
kdev patch deployment guestbook-ui --type=merge -p '{"spec":{"replicas":5}}' >/dev/null || fail "kubectl patch"
for i in $(seq 1 $(sw_slow_ticks 10)); do [ "$(kdev get deployment guestbook-ui -o jsonpath='{.spec.replicas}')" = 1 ] && break; sleep 0.1; done
[ "$(kdev get deployment guestbook-ui -o jsonpath='{.spec.replicas}')" = 1 ] || fail "replicas not healed"
wait_until 'test "$(q "select count(*) from drift_events where environment='\''dev'\'' and name='\''guestbook-ui'\'' and action='\''healed'\''")" -ge 1' || fail "no drift event"
q "select fields from drift_events where environment='dev' order by id desc limit 1" | grep -q "spec.replicas" || fail "drift fields: $(q "select fields, manager from drift_events")"
kdev delete service guestbook-ui >/dev/null || fail "kubectl delete"
wait_for kdev get service guestbook-ui || fail "service not recreated"
ok "drift: patched replicas healed, deleted service recreated, events recorded"

# 5. a workload that never becomes ready -> failure, rollback to the last healthy commit
sed -i 's#^  name: guestbook-ui#  name: guestbook-ui\n  annotations:\n    kubeapi.slipway.dev/never-ready: "true"#' "$T/work/deploy/guestbook-ui-deployment.yaml"
sed -i 's#:0.2#:0.3#' "$T/work/deploy/guestbook-ui-deployment.yaml"
R3=$(commit_push "broken rollout" d3)
[ "$(wait_final "$R3" 90)" = failure ] || fail "run $R3 should fail: $(q "select name||':'||status from stages where run_id=$R3")"
[ "$(q "select group_concat(name||':'||status, ',') from stages where run_id=$R3")" = "deploy:failure,acceptance:skipped,rollback:success" ] || fail "stages of $R3: $(q "select group_concat(name||':'||status||':'||coalesce(reason,''), ' | ') from stages where run_id=$R3")"
q "select reason from runs where id=$R3" | grep -q "rolled back to ${C2:0:7}" || fail "reason: $(q "select reason from runs where id=$R3")"
[ "$(q "select sync_status||':'||rolled_back_to from environments where name='dev'")" = "rolled_back:$C2" ] || fail "env not rolled back: $(q "select sync_status, rolled_back_to from environments where name='dev'")"
kdev get deployment guestbook-ui -o jsonpath='{.spec.template.spec.containers[0].image}' | grep -q ':0.2' || fail "live image not rolled back"
for i in $(seq 1 $(sw_slow_ticks 10)); do [ "$(sw_recorder_count "$T/rec" "r['route']=='slack.webhook' and 'rolled back' in json.dumps(r['body'])" 2>/dev/null || sw_recorder_count "$T/rec" "r['route']=='slack.webhook' and 'rolled back' in str(r['body'])")" -ge 1 ] && break; sleep 0.2; done
[ "$(sw_recorder_count "$T/rec" "r['route']=='slack.webhook' and 'rolled back' in str(r['body'])")" -ge 1 ] || fail "no Slack rollback message"
ok "never-ready workload: deploy failed, rolled back to ${C2:0:7}, Slack told"

# 6. merge to main: prod; self-heal off there -> drift only reported
(cd "$T/work" && git checkout -q -b main "$C2" && git push -q origin main)
push main "$C2" m1
wait_until 'test -n "$(run_of m1)"'; RM=$(run_of m1)
[ "$(wait_final "$RM")" = success ] || fail "prod run $RM: $(q "select name||':'||status||':'||coalesce(reason,'') from stages where run_id=$RM")"
[ "$(q "select group_concat(name, ',') from stages where run_id=$RM")" = deploy ] || fail "prod runs no acceptance stage"
kprod get deployment guestbook-ui >/dev/null || fail "not in prod"
kprod patch deployment guestbook-ui --type=merge -p '{"spec":{"replicas":3}}' >/dev/null
wait_until 'test "$(q "select count(*) from drift_events where environment='\''prod'\'' and action='\''reported'\''")" -ge 1' || fail "prod drift not reported"
sleep 1
[ "$(kprod get deployment guestbook-ui -o jsonpath='{.spec.replicas}')" = 3 ] || fail "prod drift was healed although self_heal is off"
ok "merge to main deployed prod; drift there is reported, not healed"

# 7. the CLI against the cluster: a fix pushed without a webhook (missed),
#    seen by `slipway diff`, deployed by `slipway sync`; then `slipway rollback`
git -C "$T/work" checkout -q dev
sed -i '/kubeapi.slipway.dev\/never-ready/d; /^  annotations:$/d' "$T/work/deploy/guestbook-ui-deployment.yaml"
(cd "$T/work" && git add -A && git commit -qm "ready again" && git push -q origin dev) || fail "commit the fix"
C4=$(git -C "$T/work" rev-parse HEAD)
SW="$BUILD/slipway --server $URL"
$SW --json diff dev > "$T/diff.json" || fail "slipway diff exited $?: $(cat "$T/diff.json")"
jq -e --arg c "$C4" '.commit == $c and .counts.configured >= 1' "$T/diff.json" >/dev/null || fail "diff: $(cat "$T/diff.json")"
jq -e '.objects[] | select(.kind == "Deployment" and .result == "configured")' "$T/diff.json" >/dev/null || fail "diff lacks the Deployment"
kdev get deployment guestbook-ui -o jsonpath='{.spec.template.spec.containers[0].image}' | grep -q ':0.2' || fail "diff changed the cluster"
SLIPWAY_TOKEN= $SW sync dev > /dev/null 2>&1; [ $? = 4 ] || fail "sync without a token should exit 4"
$SW --json sync dev > "$T/sync.json" || fail "slipway sync: $(cat "$T/sync.json")"
RS=$(jq -r .run "$T/sync.json")
[ "$(wait_final "$RS")" = success ] || fail "manual sync run $RS: $(q "select name||':'||status||':'||coalesce(reason,'') from stages where run_id=$RS")"
[ "$(q "select kind from runs where id=$RS")" = manual ] || fail "sync run kind"
kdev get deployment guestbook-ui -o jsonpath='{.spec.template.spec.containers[0].image}' | grep -q ':0.3' || fail "sync did not deploy $C4"
[ "$(q "select sync_status||':'||coalesce(rolled_back_to,'')||':'||synced_commit from environments where name='dev'")" = "synced::$C4" ] || fail "env after sync: $(q "select sync_status, rolled_back_to, synced_commit from environments where name='dev'")"
$SW --json rollback dev "$C1" > "$T/rb.json" || fail "slipway rollback: $(cat "$T/rb.json")"
RB=$(jq -r .run "$T/rb.json")
[ "$(wait_final "$RB")" = success ] || fail "rollback run $RB"
[ "$(q "select group_concat(name, ',') from stages where run_id=$RB")" = deploy ] || fail "a rollback runs no acceptance stage"
kdev get deployment guestbook-ui -o jsonpath='{.spec.template.spec.containers[0].image}' | grep -q 'gb-frontend:v5' || fail "rollback did not restore $C1's image"
[ "$(q "select sync_status||':'||rolled_back_to from environments where name='dev'")" = "rolled_back:$C1" ] || fail "env after rollback"
ok "slipway diff shows the missed commit, sync deploys it, rollback returns to ${C1:0:7}"

kill -TERM "$pid"; wait_gone "$pid" 20 || fail "no clean stop"; wait "$pid"; rc=$?; pid=
[ $rc = 0 ] || fail "exit $rc"
sw_recorder_invalid "$T/rec" || fail "invalid reports"
ok "clean stop"
