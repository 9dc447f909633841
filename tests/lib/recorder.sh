#!/bin/bash
# tests/lib/recorder.sh - start and stop tests/recorder/recorder.py (the
# stand-in for GitHub's and Slack's APIs) from end-to-end scripts.
#
# Sourced:
#     . "$SRC/tests/lib/recorder.sh"
#     sw_recorder_start "$TMPDIR/rec" [recorder options...]   # e.g. --fail 'POST /slack/*:500:1'
#     curl "$SW_RECORDER_URL/slack/webhook" ...
#     sw_recorder_count "$TMPDIR/rec" '.route == "slack.webhook"'   # needs jq, else python3
#     sw_recorder_invalid "$TMPDIR/rec"     # prints invalid requests; fails when there are any
#     sw_recorder_stop "$TMPDIR/rec"
#
# DIR holds requests.jsonl (one JSON line per request), pid, port and log.
# Sets SW_RECORDER_PORT and SW_RECORDER_URL (http://127.0.0.1:PORT).

SW_RECORDER_PY=${SW_RECORDER_PY:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/recorder/recorder.py}

# sw_wait_port HOST PORT [TIMEOUT_S]: wait until a TCP port accepts connections.
sw_wait_port() {
	local host=$1 port=$2 t=${3:-10} i
	for ((i = 0; i < t * 20; i++)); do
		(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "sw_wait_port: $host:$port not up after ${t}s" >&2
	return 1
}

# sw_recorder_start DIR [options]: start in the background; returns once it answers.
sw_recorder_start() {
	local dir=$1 i
	shift
	mkdir -p "$dir" || return 1
	: >"$dir/requests.jsonl"
	python3 "$SW_RECORDER_PY" --port 0 --out "$dir/requests.jsonl" "$@" \
		>"$dir/port" 2>"$dir/log" &
	echo $! >"$dir/pid"
	for ((i = 0; i < 200; i++)); do
		[ -s "$dir/port" ] && break
		if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
			echo "recorder failed to start:" >&2
			cat "$dir/log" >&2
			return 1
		fi
		sleep 0.05
	done
	SW_RECORDER_PORT=$(head -n1 "$dir/port")
	[ -n "$SW_RECORDER_PORT" ] || { echo "recorder printed no port" >&2; return 1; }
	SW_RECORDER_URL=http://127.0.0.1:$SW_RECORDER_PORT
	export SW_RECORDER_PORT SW_RECORDER_URL
	sw_wait_port 127.0.0.1 "$SW_RECORDER_PORT" 10
}

# sw_recorder_stop DIR: stop the recorder started in DIR (only that pid).
# Safe under set -e and from an EXIT trap.
sw_recorder_stop() {
	local dir=$1 pid
	[ -f "$dir/pid" ] || return 0
	pid=$(cat "$dir/pid")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	rm -f "$dir/pid"
	return 0
}

# sw_recorder_count DIR PY_EXPR: how many recorded requests satisfy a Python
# expression over `r` (the record), e.g. 'r["route"] == "github.status"'.
sw_recorder_count() {
	python3 - "$1/requests.jsonl" "$2" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    if eval(sys.argv[2], {}, {"r": r}):
        n += 1
print(n)
PY
}

# sw_recorder_invalid DIR: print each invalid request; status 1 when any.
sw_recorder_invalid() {
	python3 - "$1/requests.jsonl" <<'PY'
import json, sys
bad = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
bad = [r for r in bad if not r.get("valid")]
for r in bad:
    print("invalid: %s %s: %s" % (r["method"], r["path"], r.get("reason")))
sys.exit(1 if bad else 0)
PY
}
