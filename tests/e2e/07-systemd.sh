#!/bin/bash
# slipwayd under systemd: `make install` puts the unit in place and
# `systemd-analyze verify` finds nothing to say about it; the notify
# protocol as systemd reads it, from a datagram socket of this test's own
# (a path, then the abstract namespace): READY=1 once it listens,
# RELOADING=1 with MONOTONIC_USEC then READY=1 on SIGHUP, STOPPING=1 on
# SIGTERM; and nothing sent, nothing changed, without $NOTIFY_SOCKET.
set -u
. "$SRC/tests/lib/common.sh"
T=$TMPDIR
PY=$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)

# 1. the unit, installed as `make install` installs it
make -s -C "$SRC" BUILD="$BUILD" DESTDIR="$T/root" PREFIX=/usr install > "$T/install.log" 2>&1 ||
	fail "make install: $(cat "$T/install.log")"
unit=$T/root/usr/lib/systemd/system/slipwayd.service
[ -f "$unit" ] || fail "make install did not install the unit: $(find "$T/root")"
grep -qx "ExecStart=/usr/bin/slipwayd -c /etc/slipway/slipway.yaml" "$unit" || fail "ExecStart: $(grep ExecStart "$unit")"
if command -v systemd-analyze >/dev/null 2>&1; then
	# verify wants the program to exist where ExecStart says
	sed "s|/usr/bin/slipwayd|$BUILD/slipwayd|" "$unit" > "$T/slipwayd.service"
	systemd-analyze verify "$T/slipwayd.service" > "$T/verify.out" 2>&1 || fail "systemd-analyze verify: $(cat "$T/verify.out")"
	[ ! -s "$T/verify.out" ] || fail "systemd-analyze verify has something to say: $(cat "$T/verify.out")"
	ok "make install puts the unit in place; systemd-analyze verify finds nothing to say"
else
	echo "SKIP: systemd-analyze is not installed (the unit's check)"
fi

# 2. the notify protocol
listen() {   # listen ADDRESS OUT: print each datagram to OUT, one JSON string a line
	$PY -c 'import json, socket, sys
a = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + a[1:] if a.startswith("@") else a)
open(sys.argv[2] + ".ready", "w").close()
with open(sys.argv[2], "a") as out:
    while True:
        out.write(json.dumps(s.recv(4096).decode()) + "\n")
        out.flush()' "$1" "$2" &
	lpid=$!
	wait_for test -e "$2.ready" || fail "the notify listener did not start"
}
got() { grep -c "$2" "$1" 2>/dev/null || true; }
port=$(free_port)
cat > "$T/slipway.yaml" <<YAML
server: {listen: 127.0.0.1:$port, data_dir: data}
YAML
for addr in "$T/notify.sock" "@slipway-e2e-$$"; do
	out=$T/notify.$(echo "$addr" | tr -c 'a-z0-9\n' _ | tail -c 20)
	rm -f "$out"
	listen "$addr" "$out"
	NOTIFY_SOCKET=$addr "$BUILD/slipwayd" -c "$T/slipway.yaml" 2>> "$T/daemon.log" &
	pid=$!
	wait_until "test \"\$(got '$out' 'READY=1')\" -ge 1" || fail "no READY=1 at $addr: $(cat "$out" 2>/dev/null)"
	grep -q "READY=1\\\\nSTATUS=listening on 127.0.0.1:$port" "$out" || fail "READY without its STATUS: $(cat "$out")"
	curl -sf "http://127.0.0.1:$port/healthz" > /dev/null || fail "READY=1 before it answers"
	kill -HUP "$pid"
	wait_until "test \"\$(got '$out' 'READY=1')\" -ge 2" || fail "no READY=1 after SIGHUP: $(cat "$out")"
	grep -q '"RELOADING=1\\nMONOTONIC_USEC=[0-9]*"' "$out" || fail "no RELOADING=1 with MONOTONIC_USEC: $(cat "$out")"
	[ "$(grep -n RELOADING "$out" | cut -d: -f1)" -lt "$(grep -n 'config reloaded' "$out" | cut -d: -f1)" ] ||
		fail "RELOADING after READY: $(cat "$out")"
	kill -TERM "$pid"
	wait_gone "$pid" 20 || fail "no clean stop"
	wait "$pid"; rc=$?
	[ $rc = 0 ] || fail "exit $rc on SIGTERM"
	[ "$(got "$out" 'STOPPING=1')" = 1 ] || fail "no STOPPING=1: $(cat "$out")"
	kill "$lpid" 2>/dev/null; wait "$lpid" 2>/dev/null
done
ok "the notify protocol on a path and an abstract socket: READY (with STATUS), RELOADING then READY on SIGHUP, STOPPING on SIGTERM"

# 3. a NOTIFY_SOCKET that is not there: a warning, and slipwayd runs on
NOTIFY_SOCKET=$T/nobody.sock "$BUILD/slipwayd" -c "$T/slipway.yaml" 2> "$T/daemon2.log" &
pid=$!
wait_for curl -sf "http://127.0.0.1:$port/readyz" || fail "slipwayd did not start with a dead NOTIFY_SOCKET: $(cat "$T/daemon2.log")"
grep -q 'daemon.notify.*state="READY=1' "$T/daemon2.log" || fail "no warning about the dead socket: $(cat "$T/daemon2.log")"
kill -TERM "$pid"; wait "$pid"
ok "a NOTIFY_SOCKET nobody listens on: a warning in the log, slipwayd runs as before"
