#!/bin/bash
# 80-retention-backup: the real slipwayd removes old rows (runs with their
# stages and logs by age, deliveries by age and by count) while it keeps the
# run of a deploy in the history and the environment's newest run; then a
# backup is taken through the API (`slipway backup`) and locally
# (`slipwayd --backup`) while webhooks keep arriving and a run is half-way;
# the backup restored into a new data directory resumes: the half-way run
# is retried and deploys, the outbox sends the commit statuses it had not
# sent, the branch is polled again and the drift watch heals a change made
# in the cluster.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/webhook.sh"
. "$SRC/tests/lib/kubeapi.sh"
. "$SRC/tests/lib/recorder.sh"
T=$TMPDIR
FIX=$(shared_dir)/fixtures/github
SLOW=${SW_TEST_SLOW:-1}
export WEBHOOK_SECRET=retention-secret SW_E2E_TOKEN=admin-token-e2e SW_E2E_GH=ghp_e2e0123
command -v sqlite3 >/dev/null || { echo "skip: no sqlite3 CLI"; exit 0; }

pid=
hooks=
cleanup() {
	[ -n "$hooks" ] && kill "$hooks" 2>/dev/null
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	sw_recorder_stop "$T/rec"
	sw_kubeapi_stop "$T/dev"
}
trap cleanup EXIT
sw_kubeapi_start "$T/dev" || fail "dev cluster"
kdev() { kubectl --kubeconfig "$T/dev/kubeconfig" "$@"; }
sw_recorder_start "$T/rec" || fail "recorder"
GH=$SW_RECORDER_URL

# the repository: one ConfigMap and a push stage
git init -q --bare "$T/origin.git"
git clone -q "$T/origin.git" "$T/work" 2>/dev/null
cd "$T/work"
git config user.email dev@example.com; git config user.name Dev
git checkout -q -b dev
mkdir deploy
stage() {   # stage COMMAND: the push stage's command
	printf 'stages:\n  - name: build\n    when: {event: push}\n    commands: ["%s"]\n' "$1" > .slipway.yml
}
cm() { printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {version: "%s"}\n' "$1" > deploy/app.yaml; }
commit() {   # commit VERSION: commit and push to dev, no webhook; prints the sha
	cm "$1" && git add -A && git commit -qm "version $1" && git push -q origin dev && git rev-parse HEAD
}
stage "echo building"
C1=$(commit 1)
cd "$T"

port=$(free_port)
URL=http://127.0.0.1:$port
config() {   # config DATA_DIR GITHUB_URL POLL_INTERVAL
	cat > "$T/slipway.yaml" <<YAML
server: {listen: 127.0.0.1:$port, data_dir: $1, log_level: debug,
         api_token: {secret_env: SW_E2E_TOKEN}}
github: {webhook_secret: {secret_env: WEBHOOK_SECRET}, api_url: "$2", token: {secret_env: SW_E2E_GH}}
runner: {backend: local}
retention:
  interval: 1s
  batch: 50
  deliveries: {age: 30d, count: 100}
  runs: {age: 365d}
repositories:
  - {name: acme/shop, url: "file://$T/origin.git", poll_interval: $3}
environments:
  - name: dev
    branch: dev
    cluster: {kubeconfig: $T/dev/kubeconfig}
    manifests: [deploy]
    health_timeout: 5s
YAML
}
start() {
	"$BUILD/slipwayd" -c "$T/slipway.yaml" 2>> "$T/daemon.log" &
	pid=$!
	wait_for curl -sf "$URL/readyz" || { tail -30 "$T/daemon.log"; fail "daemon did not start"; }
}
stop() {
	kill -TERM "$pid"; wait_gone "$pid" $((20 * SLOW)) || fail "no clean stop"; wait "$pid"; rc=$?; pid=
	[ $rc = 0 ] || fail "exit $rc"
}
push() {   # push SHA GUID: the webhook GitHub sends for a push to dev
	jq --arg sha "$1" '.ref="refs/heads/dev" | .after=$sha | .head_commit.id=$sha
		| .repository.full_name="acme/shop" | .deleted=false' "$FIX/push-branch.json" > "$T/push-$2.json"
	[ "$(deliver push "$T/push-$2.json" "$2")" = 202 ] || fail "push $2 answered $(cat "$T/resp")"
	local guid=$2
	wait_until 'test -n "$(run_of "$guid")"' $((10 * SLOW)) || fail "delivery $2 not mapped"
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
DAY=86400000

# Phase A: GitHub unreachable (a closed port): every commit status stays in the outbox.
DEAD=http://127.0.0.1:$(free_port)
config data "$DEAD" 0
start

# An old run whose deploy is in the history (a sync links to it): kept.
OLD=$(( $(now_ms) - 730 * DAY ))
q "BEGIN;
   INSERT INTO runs (kind, repo, commit_sha, environment, status, created_at, finished_at)
     VALUES ('push', 'acme/shop', 'keptsha', 'dev', 'success', $OLD, $OLD);
   INSERT INTO syncs (environment, commit_sha, \"trigger\", status, health, started_at, finished_at, run_id)
     VALUES ('dev', 'keptsha', 'merge', 'success', 'healthy', $OLD, $OLD,
             (SELECT id FROM runs WHERE commit_sha = 'keptsha'));
   COMMIT;" || fail "insert the kept run"
KEPT=$(q "select id from runs where commit_sha='keptsha'")

push "$C1" c1
R1=$(run_of c1)
[ "$(wait_final "$R1" $((60 * SLOW)))" = success ] || fail "run $R1: $(q "select name||':'||status||':'||coalesce(reason,'') from stages where run_id=$R1")"
[ "$(kdev get configmap app -o jsonpath='{.data.version}')" = 1 ] || fail "version 1 not live"
unsent() { q "select count(*) from outbox where kind='commit_status' and state='pending' and attempts > 0"; }
wait_until 'test "$(unsent)" -ge 1' $((10 * SLOW)) \
	|| fail "no commit status waiting in the outbox: $(q "select kind, state, attempts from outbox")"
ok "run $R1 deployed ${C1:0:7}; its commit statuses wait in the outbox (GitHub unreachable)"

# A year of history, two years old: 30 pull request runs (newer ids than
# R1, so not the newest of a kind per environment) with stages and logs; deliveries
# 40 days old; and 120 recent ones, more than deliveries.count keeps.
q "BEGIN;
   WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 30)
   INSERT INTO runs (kind, repo, commit_sha, environment, status, created_at, finished_at)
     SELECT 'pull_request', 'acme/shop', 'old' || k, NULL, 'failure', $OLD + k, $OLD + k + 1000 FROM n;
   INSERT INTO stages (run_id, idx, name, status)
     SELECT id, 0, 'build', 'failure' FROM runs WHERE commit_sha LIKE 'old%';
   WITH RECURSIVE n(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM n WHERE k < 49)
   INSERT INTO log_chunks (stage_id, seq, off, len, ts, data)
     SELECT s.id, k, k * 32, 32, $OLD, randomblob(32) FROM stages s
     JOIN runs r ON r.id = s.run_id, n WHERE r.commit_sha LIKE 'old%';
   WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 20)
   INSERT INTO deliveries (guid, event, received_at, body, state)
     SELECT 'old-' || k, 'push', $(( $(now_ms) - 40 * DAY )), randomblob(1000), 'ignored' FROM n;
   WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < 120)
   INSERT INTO deliveries (guid, event, received_at, body, state)
     SELECT 'recent-' || k, 'ping', $(( $(now_ms) - DAY )), randomblob(1000), 'ignored' FROM n;
   COMMIT;" || fail "insert history"
[ "$(q "select count(*) from log_chunks")" -ge 1500 ] || fail "logs not inserted"
old_runs() { q "select count(*) from runs where commit_sha like 'old%'"; }
wait_until 'test "$(old_runs)" = 0' $((20 * SLOW)) \
	|| { tail -20 "$T/daemon.log"; fail "old runs not removed: $(q "select count(*) from runs")"; }
wait_until 'test "$(q "select count(*) from deliveries")" = 100' $((20 * SLOW)) \
	|| fail "deliveries: $(q "select count(*) from deliveries") left, want 100"
[ "$(q "select count(*) from deliveries where guid like 'old-%'")" = 0 ] || fail "old deliveries kept"
# by count: the 100 newest are the inserted ones; c1's (older id) went too
[ "$(q "select count(*) from deliveries where guid like 'recent-%'")" = 100 ] || fail "count limit"
[ "$(q "select count(*) from deliveries where guid = 'c1'")" = 0 ] || fail "c1 kept past the count"
[ "$(q "select count(*) from runs where id in ($KEPT, $R1)")" = 2 ] || fail "the deployed runs went"
[ "$(q "select count(*) from stages where run_id = $R1")" -ge 1 ] || fail "run $R1 lost its stages"
[ "$(q "select count(*) from log_chunks l join stages s on s.id = l.stage_id join runs r on r.id = s.run_id where r.commit_sha like 'old%'")" = 0 ] \
	|| fail "logs of removed runs left"
[ "$(q "select count(*) from log_chunks")" -lt 100 ] || fail "log chunks left: $(q "select count(*) from log_chunks")"
grep -q 'event=retention.done deliveries=[0-9]* runs=30 stages=30 log_chunks=1500' "$T/daemon.log" \
	|| fail "no retention line for the 30 runs: $(grep retention.done "$T/daemon.log" | grep -v 'runs=0 ' | head -3)"
curl -sf "$URL/metrics" | grep -q '^slipway_retention_removed_total{kind="runs"} 30$' || fail "retention metric"
[ "$(q "pragma auto_vacuum")" = 2 ] || fail "auto_vacuum is $(q "pragma auto_vacuum")"
ok "retention: 30 two-year-old runs with stages and logs, old deliveries and those past the newest 100 removed; run $KEPT (in the deploy history) and $R1 kept"

# A run half-way when the backup is taken: its stage waits for a file.
GATE=$T/gate
cd "$T/work"
stage "while [ ! -f $GATE ]; do sleep 0.1; done"
C2=$(commit 2)
cd "$T"
push "$C2" c2
R2=$(run_of c2)
build_status() { q "select status from stages where run_id=$1 and name='build'"; }
wait_until 'test "$(build_status $R2)" = running' $((30 * SLOW)) \
	|| fail "run $R2 did not start its stage"

# Webhooks keep coming while the backups are taken.
# (each its own body: the same body again would be a replay, not recorded)
( i=0; while [ ! -f "$T/hooks.stop" ]; do i=$((i + 1))
	jq -c --arg g "bg-$i" '.zen = $g' "$FIX/push-branch.json" > "$T/bg.json"
	deliver ping "$T/bg.json" "bg-$i" > /dev/null; done ) &
hooks=$!
background() { q "select count(*) from deliveries where guid like 'bg-%'"; }
wait_until 'test "$(background)" -ge 20' $((10 * SLOW)) || fail "background webhooks"
"$BUILD/slipway" --server "$URL" --token wrong backup "$T/nope.db" 2> "$T/err"; rc=$?
[ $rc = 4 ] && [ ! -e "$T/nope.db" ] && [ ! -e "$T/nope.db.tmp" ] || fail "wrong token: exit $rc, $(cat "$T/err")"
"$BUILD/slipway" --server "$URL" --token "$SW_E2E_TOKEN" backup "$T/api.db" > "$T/out" || fail "slipway backup: $(cat "$T/out")"
grep -q "api.db: [0-9]* bytes, checked" "$T/out" || fail "backup output: $(cat "$T/out")"
"$BUILD/slipwayd" -c "$T/slipway.yaml" --backup "$T/local.db" > "$T/out" || fail "slipwayd --backup: $(cat "$T/out")"
touch "$T/hooks.stop"; wait "$hooks"; hooks=
for f in api local; do
	[ "$(sqlite3 "$T/$f.db" "pragma quick_check")" = ok ] || fail "$f backup damaged"
	[ "$(sqlite3 "$T/$f.db" "select status from runs where id=$R2")" = running ] || fail "$f backup: run $R2"
	[ "$(sqlite3 "$T/$f.db" "select count(*) from deliveries where guid like 'bg-%'")" -ge 20 ] || fail "$f backup: deliveries"
	[ ! -e "$T/$f.db-wal" ] || fail "$f backup has a -wal file"
done
ls "$T/data" | grep -q '^backup-' && fail "a backup file left in the data directory"
grep -q 'event=backup.sent' "$T/daemon.log" || fail "no backup.sent line"
PENDING=$(sqlite3 "$T/api.db" "select count(*) from outbox where state='pending'")
[ "$PENDING" -ge 1 ] || fail "backup holds no pending outbox row"
ok "backups through the API and with slipwayd --backup while webhooks arrive; run $R2 half-way, $PENDING outbox rows unsent"
stop

# Phase B: a lost machine. A new data directory holding only the backup,
# GitHub reachable again, polling on.
mkdir -m 700 "$T/restored"
cp "$T/api.db" "$T/restored/slipway.db"
touch "$GATE"
config restored "$GH" 1s
start
q2() { sqlite3 -cmd '.timeout 5000' "$T/restored/slipway.db" "$1"; }
grep -q "event=run.recovered run=$R2 " "$T/daemon.log" || fail "run $R2 not recovered"
R3=$(q2 "select id from runs where commit_sha='$C2' and attempt=2")
[ -n "$R3" ] || fail "no retry of run $R2"
wait_until 'test "$(q2 "select status from runs where id=$R3")" = success' $((60 * SLOW)) || fail "retry $R3: $(q2 "select status, reason from runs where id=$R3")"
wait_until 'test "$(kdev get configmap app -o jsonpath="{.data.version}")" = 2' $((20 * SLOW)) || fail "version 2 not live"
ok "restored: run $R2 retried as run $R3, which deployed ${C2:0:7}"

status_sent() { sw_recorder_count "$T/rec" "r['route'] == 'github.status' and '$1' in r['path']"; }
wait_until 'test "$(status_sent $C1)" -ge 1' $((90 * SLOW)) \
	|| fail "the status for ${C1:0:7} was never sent: $(q2 "select idempotency_key, state, next_attempt_at from outbox")"
ok "restored: the outbox sent the commit status for ${C1:0:7} it had not sent before the backup"

cd "$T/work"; stage "echo building"; C3=$(commit 3); cd "$T"
wait_until 'test "$(kdev get configmap app -o jsonpath="{.data.version}")" = 3' $((60 * SLOW)) || fail "${C3:0:7} not deployed by polling"
kdev patch configmap app --type merge -p '{"data":{"version":"tampered"}}' > /dev/null || fail "patch"
healed() { q2 "select count(*) from drift_events where environment='dev' and action='healed'"; }
wait_until 'test "$(healed)" -ge 1' $((30 * SLOW)) \
	|| fail "drift not healed: $(q2 "select * from drift_events")"
wait_until 'test "$(kdev get configmap app -o jsonpath="{.data.version}")" = 3' $((20 * SLOW)) || fail "not healed back to 3"
ok "restored: the branch is polled again (${C3:0:7} deployed) and the drift watch heals a change in the cluster"
stop
ok "clean stop"
