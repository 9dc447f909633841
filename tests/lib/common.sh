# tests/lib/common.sh - helpers shared by the end-to-end scripts.
# Source it; it expects BUILD (absolute build dir) and SRC (repo root).

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

# A free TCP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# SW_TEST_SLOW (a number >= 1, default 1; `make check` sets 3) multiplies
# every deadline below, as tests/unit/slow.h does for the unit tests. A
# deadline is how long to wait for an event before calling it lost, never a
# guess at how long the work takes: waits end as soon as the event is seen.
sw_slow_ticks() {   # SECONDS -> the number of 0.1 s ticks, scaled
	awk -v s="$1" -v f="${SW_TEST_SLOW:-1}" 'BEGIN { if (f + 0 < 1) f = 1; t = int(s * f * 10 + 0.999); print t < 1 ? 1 : t }'
}

# wait_for CMD...: retry CMD for up to 20 s (scaled).
wait_for() {
	local i n
	n=$(sw_slow_ticks 20)
	for ((i = 0; i < n; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# wait_gone PID [SECONDS]: wait for a process to exit (then `wait PID` in the
# calling shell gives its exit code); fails when it is still running.
wait_gone() {
	local pid=$1 i n
	n=$(sw_slow_ticks "${2:-10}")
	for ((i = 0; i < n; i++)); do
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
# it, so command substitutions inside run each time) until it succeeds; 20 s
# unless told, scaled.
wait_until() {
	local i n
	n=$(sw_slow_ticks "${2:-20}")
	for ((i = 0; i < n; i++)); do
		eval "$1" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
