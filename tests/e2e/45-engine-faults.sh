#!/bin/bash
# The engine against faults of its own machine (issue 11, defects 10, 1 and
# 4), with the local runner:
#  - a run whose workspace directory is already there, half-written (a
#    crash during an earlier checkout), starts from a clean workspace;
#  - a run whose preparation is interrupted by kill -9 is retried once, and
#    when the retry is interrupted while preparing too it fails with a
#    reason instead of being retried again (a crash in the parser would
#    otherwise kill every start until the attempts run out);
#  - another process holding the database's write lock while a stage
#    finishes: /healthz stays fast, the API and the page say storage is
#    unavailable, and when the lock goes the stage, the run and their commit
#    statuses catch up, each outbox message once.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/webhook.sh"
. "$SRC/tests/lib/recorder.sh"
T=$TMPDIR
FIX=$(shared_dir)/fixtures/github
export WEBHOOK_SECRET=faults-secret
export GH_TOKEN=ghp_faults_token_0123456789

pid= hang= locker=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	[ -n "$hang" ] && kill "$hang" 2>/dev/null
	[ -n "$locker" ] && kill "$locker" 2>/dev/null
	sw_recorder_stop "$T/rec"
}
trap cleanup EXIT
sw_recorder_start "$T/rec" --token "$GH_TOKEN" || fail "recorder"

# the repository: one stage that waits for a file the test creates, then
# fails with exit 3 (or passes when the commit says so)
git init -q --bare "$T/origin.git"
git clone -q "$T/origin.git" "$T/work" 2>/dev/null
cd "$T/work"
git config user.email dev@example.com; git config user.name Dev
git checkout -q -b main
cat > .slipway.yml <<YML
stages:
  - name: wait
    commands:
      - cat app.txt
      - while [ ! -e "$T/go-\$SLIPWAY_RUN_ID" ]; do sleep 0.05; done
      - if grep -q FAIL app.txt; then exit 3; fi
YML
echo hello > app.txt
git add -A && git commit -qm initial && git push -q origin main
C_OK=$(git rev-parse HEAD)
echo FAIL > app.txt
git add -A && git commit -qm failing && git push -q origin main
C_FAIL=$(git rev-parse HEAD)
cd "$T"

# a "git server" that accepts connections and never answers: a fetch from it
# hangs, so the daemon can be killed while a run is preparing
hport=$(free_port)
python3 - "$hport" "$T/hang.conns" <<'PY' &
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
held = []
while True:
    c, _ = s.accept(); held.append(c)
    with open(sys.argv[2], "a") as f: f.write("conn\n")
PY
hang=$!

port=$(free_port)
URL=http://127.0.0.1:$port
cat > "$T/slipway.yaml" <<YAML
server: {listen: 127.0.0.1:$port, public_url: $URL, data_dir: data, log_level: debug}
github:
  api_url: $SW_RECORDER_URL
  webhook_secret: {secret_env: WEBHOOK_SECRET}
  token: {secret_env: GH_TOKEN}
runner: {backend: local}
repositories:
  - {name: acme/shop, url: "file://$T/origin.git"}
  - {name: acme/hang, url: "http://127.0.0.1:$hport/hang.git"}
YAML
api() { curl -s "$URL$1"; }
# hold_lock: another process takes the database's write lock (BEGIN
# EXCLUSIVE) and keeps it until release_lock
hold_lock() {
	rm -f "$T/locked" "$T/unlock"
	python3 - "$T/data/slipway.db" "$T/locked" "$T/unlock" <<'PY' &
import os, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.05)
db.execute("ROLLBACK")
PY
	locker=$!
	wait_until "test -e '$T/locked'" 10 || fail "the lock was not taken"
}
release_lock() { touch "$T/unlock"; wait "$locker"; locker=; }
start_daemon

# --- defect 10: a half-written workspace of the run's own id ----------------
next=$(( $(q "select coalesce(max(id), 0) from runs") + 1 ))
stop_daemon
mkdir -p "$T/data/workspaces/run-$next/.git/objects"
echo "half" > "$T/data/workspaces/run-$next/app.txt"
echo "leftover" > "$T/data/workspaces/run-$next/stale.txt"
start_daemon
pr "$C_OK" opened 1 > "$T/pr1.json"
[ "$(deliver pull_request "$T/pr1.json" guid-ws)" = 202 ] || fail "delivery answered $(cat "$T/resp")"
wait_until 'test -n "$(run_of guid-ws)"'
R1=$(run_of guid-ws)
[ "$R1" = "$next" ] || fail "run $R1 is not run $next, the one with the leftover workspace"
wait_until "test -e '$T/data/workspaces/run-$R1/app.txt' && grep -q hello '$T/data/workspaces/run-$R1/app.txt'" 30
[ -e "$T/data/workspaces/run-$R1/stale.txt" ] && fail "the leftover file is still in run $R1's workspace"
touch "$T/go-$R1"
st=$(wait_final "$R1" 60)
[ "$st" = success ] || fail "run $R1 with a leftover workspace ended $st: $(q "select reason from runs where id=$R1")"
ok "run $R1 started from a clean workspace over a half-written one"

# --- defect 1: kill -9 while preparing, twice --------------------------------
pr "$C_OK" opened 2 acme/hang > "$T/pr2.json"
: > "$T/hang.conns"
[ "$(deliver pull_request "$T/pr2.json" guid-hang)" = 202 ] || fail "hang delivery answered $(cat "$T/resp")"
wait_until 'test -n "$(run_of guid-hang)"'
R2=$(run_of guid-hang)
wait_until "test -s '$T/hang.conns'" 30 || fail "run $R2 never fetched"
kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=
: > "$T/hang.conns"
start_daemon
[ "$(wait_final "$R2" 30)" = interrupted ] || fail "run $R2 not interrupted after the crash"
R3=$(q "select id from runs where delivery_id=(select delivery_id from runs where id=$R2) and attempt=2")
[ -n "$R3" ] || fail "run $R2 was not retried once: $(q "select id, attempt, status, reason from runs where id>=$R2")"
wait_until "test -s '$T/hang.conns'" 30 || fail "retry $R3 never fetched"
kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=
start_daemon
st=$(wait_final "$R3" 30)
[ "$st" = error ] || fail "run $R3 interrupted while preparing again ended $st: $(q "select reason from runs where id=$R3")"
reason=$(q "select reason from runs where id=$R3")
echo "$reason" | grep -q "slipwayd stopped twice while preparing this run" || fail "run $R3 reason: $reason"
[ "$(q "select count(*) from runs where delivery_id=(select delivery_id from runs where id=$R2)")" = 2 ] ||
	fail "run $R3 was retried again: $(q "select id, attempt, status from runs where id>=$R2")"
wait_until "test \"\$(sw_recorder_count '$T/rec' \"r['route']=='github.status' and r['body']['context']=='slipway' and r['body']['state']=='error' and 'twice' in r['body'].get('description', '')\")\" -ge 1" 30 ||
	fail "the failed run $R3 was not reported"
ok "a run interrupted twice while preparing ($R2, $R3) fails with: $reason"

# --- defect 4: the database locked while a stage finishes ----------------------
pr "$C_FAIL" opened 3 > "$T/pr3.json"
[ "$(deliver pull_request "$T/pr3.json" guid-lock)" = 202 ] || fail "lock delivery answered $(cat "$T/resp")"
wait_until 'test -n "$(run_of guid-lock)"'
R4=$(run_of guid-lock)
wait_until "test \"\$(q \"select status from stages where run_id=$R4 and name='wait'\")\" = running" 30 || fail "run $R4 never ran its stage"
# the running status has been sent: nothing is in flight to the stand-in
wait_until "test \"\$(q \"select count(*) from outbox where state='pending'\")\" = 0" 30 || fail "outbox did not drain"
# another process takes the write lock and keeps it until told
hold_lock
touch "$T/go-$R4"
# the stage ends while the database is locked: the engine keeps the writes
wait_until "curl -s '$URL/readyz' | jq -e '.storage.status == \"unavailable\" and .storage.pending_writes > 0'" 30 ||
	fail "readyz does not say storage is unavailable: $(curl -s "$URL/readyz")"
api / | grep -q 'Storage is unavailable' || fail "the page shows no storage banner"
slow=$(for i in $(seq 1 20); do curl -s -o /dev/null -w '%{time_total}\n' "$URL/healthz"; done | sort -n | tail -1)
python3 -c "import sys; sys.exit(0 if float('$slow') < 1.0 else 1)" || fail "/healthz took ${slow}s while the database was locked"
[ "$(q "select status from stages where run_id=$R4 and name='wait'")" = running ] || fail "a write went through the lock"
release_lock
st=$(wait_final "$R4" 60)
[ "$st" = failure ] || fail "run $R4 ended $st after the lock went"
[ "$(q "select status||':'||exit_code from stages where run_id=$R4 and name='wait'")" = failure:3 ] ||
	fail "stage of run $R4: $(q "select status, exit_code, reason from stages where run_id=$R4")"
q "select group_concat(data, '') from log_chunks where stage_id=(select id from stages where run_id=$R4)" | grep -q FAIL ||
	fail "the stage's log was lost"
wait_until "curl -s '$URL/readyz' | jq -e '.storage.status == \"ok\" and .storage.pending_writes == 0'" 30 ||
	fail "storage not back to ok: $(curl -s "$URL/readyz")"
[ "$(q "select count(*) from outbox where idempotency_key like '%$C_FAIL%slipway/wait%'")" = 1 ] ||
	fail "outbox rows of the stage: $(q "select idempotency_key, state from outbox where idempotency_key like '%$C_FAIL%'")"
fstatus() { sw_recorder_count "$T/rec" "r['route']=='github.status' and r['path'].endswith('$C_FAIL') and r['body']['context']=='$1' and r['body']['state']=='failure'"; }
wait_until "test \"\$(fstatus slipway/wait)\" -ge 1 && test \"\$(fstatus slipway)\" -ge 1" 30 ||
	fail "the failure statuses did not reach GitHub: $(fstatus slipway/wait) $(fstatus slipway)"
[ "$(fstatus slipway/wait)" = 1 ] || fail "the stage's failure status was sent $(fstatus slipway/wait) times"
[ "$(fstatus slipway)" = 1 ] || fail "the run's failure status was sent $(fstatus slipway) times"
api / | grep -q 'Storage is unavailable' && fail "the storage banner stayed"
ok "a locked database delayed run $R4's writes without blocking the loop (slowest of 20 /healthz: ${slow}s); all caught up once"

# --- defect 4: recovery after a crash while the database is locked ----------
# A run killed mid-stage, and a delivery acknowledged just before the crash
# (the row is what the receiver commits before its 202); the restart finds
# the database locked.
pr "$C_OK" opened 6 > "$T/pr6.json"
[ "$(deliver pull_request "$T/pr6.json" guid-crash)" = 202 ] || fail "crash delivery answered $(cat "$T/resp")"
wait_until 'test -n "$(run_of guid-crash)"'
R6=$(run_of guid-crash)
wait_until "test \"\$(q \"select status from stages where run_id=$R6 and name='wait'\")\" = running" 30 || fail "run $R6 never ran its stage"
kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=
pr "$C_OK" opened 5 > "$T/pr5.json"
python3 - "$T/data/slipway.db" "$T/pr5.json" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
db.execute("INSERT INTO deliveries (guid, event, received_at, headers, body) VALUES (?, ?, ?, ?, ?)",
           ("guid-acked", "pull_request", int(time.time() * 1000), "{}", open(sys.argv[2], "rb").read()))
db.commit()
PY
hold_lock
start_daemon
wait_until "curl -s '$URL/readyz' | jq -e '.storage.status == \"unavailable\"'" 30 ||
	fail "readyz does not say storage is unavailable at start: $(curl -s "$URL/readyz")"
[ "$(q "select state from deliveries where guid='guid-acked'")" = queued ] || fail "mapped through the lock?"
[ "$(q "select status from runs where id=$R6")" = running ] || fail "recovered through the lock?"
release_lock
[ "$(wait_final "$R6" 30)" = interrupted ] || fail "run $R6 was not recovered after the lock went: $(q "select status, reason from runs where id=$R6")"
R7=$(q "select id from runs where delivery_id=(select delivery_id from runs where id=$R6) and attempt=2")
[ -n "$R7" ] || fail "run $R6 was not retried: $(q "select reason from runs where id=$R6")"
[ "$(q "select count(*) from runs where delivery_id=(select delivery_id from runs where id=$R6)")" = 2 ] || fail "run $R6 retried more than once"
wait_until "test -e '$T/data/workspaces/run-$R7/app.txt'" 30
touch "$T/go-$R7"
[ "$(wait_final "$R7" 60)" = success ] || fail "retry $R7 of run $R6 did not succeed"
wait_until 'test -n "$(run_of guid-acked)"' 30 || fail "the delivery mapped while locked was lost: $(q "select state, reason from deliveries where guid='guid-acked'")"
R5=$(run_of guid-acked)
wait_until "test -e '$T/data/workspaces/run-$R5/app.txt'" 30
touch "$T/go-$R5"
[ "$(wait_final "$R5" 60)" = success ] || fail "run $R5 of the delayed delivery did not succeed"
[ "$(q "select count(*) from runs where delivery_id=(select id from deliveries where guid='guid-acked')")" = 1 ] ||
	fail "the delayed delivery started more than one run"
ok "recovery waited for the lock: run $R6 retried once as $R7, the acknowledged delivery ran once as $R5"

stop_daemon
ok "clean stop"
