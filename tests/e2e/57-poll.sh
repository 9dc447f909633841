#!/bin/bash
# Polling, the fallback for a missed webhook: with poll_interval 1s, a commit
# pushed to the tracked branch without a webhook gets the run a push delivery
# would start (push stages, then the deploy into the test API server, sync
# trigger "poll"); the webhook for the same commit arriving later maps to
# that run instead of a second one; a commit whose webhook came first gets
# nothing more from the poller; an unreachable remote is logged and retried;
# SIGHUP changes the interval; SIGTERM stops cleanly.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/webhook.sh"
. "$SRC/tests/lib/kubeapi.sh"
T=$TMPDIR
FIX=$(shared_dir)/fixtures/github
export WEBHOOK_SECRET=poll-secret

pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	sw_kubeapi_stop "$T/dev"
}
trap cleanup EXIT
sw_kubeapi_start "$T/dev" || fail "dev cluster"
kdev() { kubectl --kubeconfig "$T/dev/kubeconfig" "$@"; }

# the repository: one ConfigMap and a push stage
git init -q --bare "$T/origin.git"
git clone -q "$T/origin.git" "$T/work" 2>/dev/null
cd "$T/work"
git config user.email dev@example.com; git config user.name Dev
git checkout -q -b dev
mkdir deploy
cat > .slipway.yml <<'YML'
stages:
  - name: build
    when: {event: push}
    commands: ["echo building $SLIPWAY_COMMIT"]
YML
cm() { printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {version: "%s"}\n' "$1" > deploy/app.yaml; }
commit() {   # commit VERSION: commit and push to dev, no webhook; prints the sha
	cm "$1" && git add -A && git commit -qm "version $1" && git push -q origin dev && git rev-parse HEAD
}
C1=$(commit 1)
cd "$T"

port=$(free_port)
URL=http://127.0.0.1:$port
config() {   # config POLL_INTERVAL
	cat > "$T/slipway.yaml" <<YAML
server: {listen: 127.0.0.1:$port, data_dir: data, log_level: debug}
github: {webhook_secret: {secret_env: WEBHOOK_SECRET}}
runner: {backend: local}
repositories:
  - {name: acme/shop, url: "file://$T/origin.git", poll_interval: $1}
environments:
  - name: dev
    branch: dev
    cluster: {kubeconfig: $T/dev/kubeconfig}
    manifests: [deploy]
    health_timeout: 5s
YAML
}
config 1s
"$BUILD/slipwayd" -c "$T/slipway.yaml" 2>> "$T/daemon.log" &
pid=$!
wait_for curl -sf "$URL/readyz" || { tail -30 "$T/daemon.log"; fail "daemon did not start"; }

runs_at() { q "select count(*) from runs where commit_sha='$1'"; }
run_at() { q "select id from runs where commit_sha='$1' order by id limit 1"; }
polled() {   # polled SHA VERSION: the poller's run of SHA deployed VERSION
	local r sha=$1
	wait_until 'test -n "$(run_at "$sha")"' 5 || { tail -20 "$T/daemon.log" >&2; fail "no run for $1 from polling"; }
	r=$(run_at "$1")
	[ "$(wait_final "$r" 30)" = success ] || fail "run $r: $(q "select name||':'||status||':'||coalesce(reason,'') from stages where run_id=$r")"
	[ "$(q "select kind||':'||coalesce(delivery_id,0)||':'||branch from runs where id=$r")" = push:0:dev ] || fail "run $r: $(q "select * from runs where id=$r")"
	[ "$(q "select pr_title||':'||author from runs where id=$r")" = "version $2:Dev" ] || fail "title of $r"
	[ "$(q "select group_concat(name||':'||status, ',') from stages where run_id=$r")" = "build:success,deploy:success" ] || fail "stages of $r"
	[ "$(q "select \"trigger\"||':'||commit_sha from syncs where run_id=$r")" = "poll:$1" ] || fail "sync of $r: $(q "select * from syncs where run_id=$r")"
	[ "$(kdev get configmap app -o jsonpath='{.data.version}')" = "$2" ] || fail "version $2 not live"
	[ "$(q "select synced_commit from environments where name='dev'")" = "$1" ] || fail "env not synced to $1"
	echo "$r"
}
push() {   # push SHA GUID: the webhook GitHub sends for a push to dev
	jq --arg sha "$1" '.ref="refs/heads/dev" | .after=$sha | .head_commit.id=$sha
		| .repository.full_name="acme/shop" | .deleted=false' "$FIX/push-branch.json" > "$T/push.json"
	[ "$(deliver push "$T/push.json" "$2")" = 202 ] || fail "push $2 answered $(cat "$T/resp")"
	local guid=$2
	wait_until 'test -n "$(run_of "$guid")"' || fail "delivery $2 not mapped: $(q "select state, reason from deliveries where guid='$2'")"
}

# 1. the head at start-up and a commit pushed without a webhook are deployed
R1=$(polled "$C1" 1) || exit 1
C2=$(cd "$T/work" && commit 2)
R2=$(polled "$C2" 2) || exit 1
[ "$(grep -c 'poll.found.*dev@' "$T/daemon.log")" = 2 ] || fail "one poll.found line per new commit: $(grep poll.found "$T/daemon.log")"
ok "polling deployed ${C1:0:7} at start-up and ${C2:0:7} pushed without a webhook (trigger poll)"

# 2. the webhook for that commit, late: no second run
push "$C2" late-1
[ "$(run_of late-1)" = "$R2" ] || fail "late webhook mapped to $(run_of late-1), not $R2"
q "select reason from deliveries where guid='late-1'" | grep -q "found by polling" || fail "delivery reason"
sleep 1.5
[ "$(runs_at "$C2")" = 1 ] || fail "$(runs_at "$C2") runs for $C2"
ok "the late webhook for ${C2:0:7} maps to the poller's run $R2, no second run"

# 3. webhook first (polling paused by a reload to 1h): the poller, back at 1s, adds nothing
config 1h; kill -HUP "$pid"
wait_until 'grep -q "poll.start repo=acme/shop interval=3600s" "$T/daemon.log"' || fail "reload to 1h"
C3=$(cd "$T/work" && commit 3)
push "$C3" first-1
R3=$(run_of first-1)
[ "$(wait_final "$R3" 30)" = success ] || fail "webhook run $R3"
[ "$(q "select \"trigger\" from syncs where run_id=$R3")" = merge ] || fail "webhook sync trigger"
polls=$(grep -c poll.nothing_new "$T/daemon.log")
config 1s; kill -HUP "$pid"
wait_until 'test "$(grep -c poll.nothing_new "$T/daemon.log")" -ge $((polls + 2))' 5 || fail "no polls after the reload to 1s"
[ "$(runs_at "$C3")" = 1 ] || fail "$(runs_at "$C3") runs for $C3"
ok "webhook first: run $R3 for ${C3:0:7}, the poller starts nothing more"

# 4. the remote unreachable: logged, retried, never fatal
mv "$T/origin.git" "$T/gone.git"
wait_until 'grep -q "poll.failed repo=acme/shop retry_in=1s" "$T/daemon.log"' 5 || fail "no poll.failed line"
mv "$T/gone.git" "$T/origin.git"
C4=$(cd "$T/work" && commit 4)
polled "$C4" 4 > /dev/null || exit 1
curl -sf "$URL/healthz" > /dev/null || fail "daemon unhealthy"
ok "an unreachable remote is logged and retried; ${C4:0:7} deployed once it is back"

kill -TERM "$pid"; wait_gone "$pid" 20 || fail "no clean stop"; wait "$pid"; rc=$?; pid=
[ $rc = 0 ] || fail "exit $rc"
ok "clean stop"
