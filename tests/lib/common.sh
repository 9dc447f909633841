# tests/lib/common.sh - helpers shared by the end-to-end scripts.
# Source it; it expects BUILD (absolute build dir) and SRC (repo root).

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# A free TCP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_for CMD...: retry CMD for up to 10 s.
wait_for() {
	local i
	for i in $(seq 1 100); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# wait_gone PID [SECONDS]: wait for a process to exit (then `wait PID` in the
# calling shell gives its exit code); fails when it is still running.
wait_gone() {
	local pid=$1 secs=${2:-10} i
	for i in $(seq 1 $((secs * 10))); do
		kill -0 "$pid" 2>/dev/null || return 0
		# a zombie child counts as gone
		[ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ] && return 0
		sleep 0.1
	done
	return 1
}

# The shared fixtures, next to the repository (CI) or in /work/shared.
shared_dir() {
	if [ -d "$SRC/../shared/fixtures" ]; then (cd "$SRC/../shared" && pwd)
	else echo /work/shared; fi
}

# wait_until 'SHELL EXPRESSION' [SECONDS]: re-evaluate the expression (quote
# it, so command substitutions inside run each time) until it succeeds.
wait_until() {
	local i
	for i in $(seq 1 $(( ${2:-10} * 10 ))); do
		eval "$1" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
