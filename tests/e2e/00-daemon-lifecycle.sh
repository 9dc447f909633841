#!/bin/bash
# The daemon's life cycle against the real binary: --check, /healthz and
# /readyz, SIGHUP with a broken config (old one kept), SIGHUP with a good
# one, SIGTERM (clean exit 0), and bad input that must fail with one clear
# line and leave no database behind.
set -u
. "$SRC/tests/lib/common.sh"
T=$TMPDIR
port=$(free_port)
cat > "$T/slipway.yaml" <<YAML
server:
  listen: 127.0.0.1:$port
  data_dir: data
  log_level: info
YAML

# --version and --check
"$BUILD/slipwayd" --version | grep -q '^slipwayd [0-9]' || fail "--version"
out=$("$BUILD/slipwayd" -c "$T/slipway.yaml" --check) || fail "--check rejected a good config"
echo "$out" | grep -q ": ok" || fail "--check output: $out"
printf 'server:\n  data_dir: d\n  listn: x\nrunner:\n  backend: k8s\n' > "$T/bad.yaml"
out=$("$BUILD/slipwayd" -c "$T/bad.yaml" --check 2>&1); rc=$?
[ $rc -eq 2 ] || fail "--check on a bad config exited $rc, want 2"
echo "$out" | grep -q "bad.yaml:3:3: server: unknown key 'listn'" || fail "--check message: $out"
echo "$out" | grep -q "bad.yaml:5:12: runner.backend: expected docker or local" || fail "--check lists every error: $out"
ok "--version and --check"

# start, health and readiness
"$BUILD/slipwayd" -c "$T/slipway.yaml" 2> "$T/daemon.log" &
pid=$!
wait_for curl -sf "http://127.0.0.1:$port/healthz" || { cat "$T/daemon.log"; fail "no /healthz"; }
curl -sf "http://127.0.0.1:$port/healthz" | jq -e '.status == "alive"' >/dev/null || fail "/healthz body"
curl -sf "http://127.0.0.1:$port/readyz" | jq -e '.status == "ready"' >/dev/null || fail "/readyz"
[ -f "$T/data/slipway.db" ] || fail "no database in the data dir"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/nope")
[ "$code" = 404 ] || fail "unknown path answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "http://127.0.0.1:$port/healthz")
[ "$code" = 405 ] || fail "wrong method answered $code"
grep -q 'level=info event=daemon.start' "$T/daemon.log" || fail "no structured start line"
ok "healthz, readyz, 404, 405, log line"

# SIGHUP with a broken config: old config kept, still serving
cp "$T/slipway.yaml" "$T/good.yaml"
printf 'server:\n  data_dir: data\n  listen: 127.0.0.1:%s\n  log_level: [x]\n' "$port" > "$T/slipway.yaml"
kill -HUP $pid
wait_for grep -q 'event=config.kept' "$T/daemon.log" || fail "no config.kept line after a bad reload"
grep -q 'event=config.reload_failed.*slipway.yaml:4:14: server.log_level' "$T/daemon.log" || fail "reload error not located"
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || fail "not ready after a bad reload"
# SIGHUP with a good one
cp "$T/good.yaml" "$T/slipway.yaml"
kill -HUP $pid
wait_for grep -q 'event=config.reloaded' "$T/daemon.log" || fail "good reload not logged"
ok "SIGHUP keeps the old config when the new one is broken"

# SIGTERM: clean exit 0
kill -TERM $pid
wait_gone $pid 10 || fail "slipwayd did not stop on SIGTERM"
wait $pid; rc=$?
[ "$rc" = 0 ] || fail "exit code $rc after SIGTERM"
grep -q 'event=daemon.stopped' "$T/daemon.log" || fail "no daemon.stopped line"
sqlite3 "$T/data/slipway.db" 'PRAGMA integrity_check' | grep -q '^ok$' || fail "database not intact"
ok "SIGTERM stops cleanly with exit 0"

# bad input: one clear line, non-zero, no database left behind
out=$("$BUILD/slipwayd" -c "$T/missing.yaml" 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "missing.yaml: No such file or directory" || fail "missing config: $rc $out"
printf 'server:\n  data_dir: x\n  listen: [\n' > "$T/syntax.yaml"
out=$("$BUILD/slipwayd" -c "$T/syntax.yaml" 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "syntax.yaml:4:1:" || fail "syntax error: $rc $out"
# port in use
python3 -c "import socket,time; s=socket.socket(); s.bind(('127.0.0.1',$port)); s.listen(); open('$T/held','w').close(); time.sleep(120)" &
holder=$!
wait_until 'test -e "$T/held"' || fail "the port holder did not start"
printf 'server:\n  listen: 127.0.0.1:%s\n  data_dir: data2\n' "$port" > "$T/busy.yaml"
out=$("$BUILD/slipwayd" -c "$T/busy.yaml" 2>&1); rc=$?
kill $holder 2>/dev/null
[ $rc -ne 0 ] && echo "$out" | grep -q "listen 127.0.0.1:$port: Address already in use" || fail "port in use: $rc $out"
[ ! -e "$T/data2" ] || fail "a data dir was created although the port was in use"
# a data dir that cannot be written (a path below a regular file fails even for root)
touch "$T/file"
printf 'server:\n  listen: 127.0.0.1:%s\n  data_dir: file/sub\n' "$(free_port)" > "$T/nodata.yaml"
out=$("$BUILD/slipwayd" -c "$T/nodata.yaml" 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "file/sub" || fail "unwritable data dir: $rc $out"
[ "$(echo "$out" | wc -l)" -eq 1 ] || fail "more than one line for one problem: $out"
ok "bad input fails with one clear line"
