#!/bin/bash
# bench/slowloris.sh - slipwayd's resident memory, descriptors and /healthz
# latency while N slow clients trickle their headers (issue 11, defect 3:
# 2,000 such clients stayed open for good and 256 MiB of headers were
# accepted, RSS 14 -> 272 MB).
#
# Method: slipwayd (the build's binary, runner local, log level warn) on a
# free port. tests/lib/clients.py `slowloris` opens N connections, each
# sending a request line and then one header line every INTERVAL seconds,
# never ending its headers; a connection the server closes is opened again
# INTERVAL seconds later (a patient attacker). Beside it `probe` sends
# GET /healthz on a new connection every 0.25 s and samples slipwayd's
# VmRSS and open descriptors from /proc. Three passes of SECONDS each:
#   limits   the defaults: server.read_timeout 10 s, max_connections derived
#            from the descriptor limit (1024 at most)
#   open     the deadline and the cap as far off as the config allows
#            (read_timeout 1h, max_connections 1000000): what the limits buy
#   headers  the defaults, and F clients sending header lines as fast as
#            they can (max_header_size 64 KiB: 431), reconnecting; a
#            quarter of SECONDS (it keeps a CPU busy)
#
#   bench/slowloris.sh [N] [INTERVAL] [SECONDS] [F]
#
# Defaults 1500 5 40 8: N above the cap of 1024, kept modest for a machine
# of 2 CPUs shared with others (the issue's 2,000 works the same: raise N).
# Env: BUILD (default ./build); PASSES (default "limits open headers"; a
# build from before the limits knows none of their keys: "limits headers"
# runs it with the same clients); BENCH_PORT, a first port to use (the passes
# take it and the next two) instead of free ones.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/lib.sh"
N=${1:-1500}
INTERVAL=${2:-5}
SECONDS_RUN=${3:-40}
F=${4:-8}
need python3 curl jq
PY=$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)
CLIENTS="$PY $SRC/tests/lib/clients.py"
bench_dir slowloris
# the clients and the daemon each hold N descriptors and more
ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" -ge $((N + 256)) ] ||
	{ echo "slowloris: ulimit -n is $(ulimit -n), N=$N needs more" >&2; exit 1; }

# pass NAME EXTRA-CONFIG: one run; prints the client's and the probe's JSON
pass() {
	local name=$1 extra=$2 port dpid secs=$SECONDS_RUN
	if [ -n "${BENCH_PORT:-}" ]; then port=$BENCH_PORT; BENCH_PORT=$((BENCH_PORT + 1)); else port=$(free_port); fi
	# the fat clients keep a CPU busy: a quarter of the time shows the point
	[ "$name" = headers ] && secs=$(((SECONDS_RUN + 3) / 4))
	mkdir -p "$W/$name"
	cat > "$W/$name/slipway.yaml" <<YAML
server:
  listen: 127.0.0.1:$port
  data_dir: $W/$name/data
  log_level: warn
$extra
runner:
  backend: local
YAML
	"$BUILD/slipwayd" -c "$W/$name/slipway.yaml" > "$W/$name/daemon.log" 2>&1 &
	dpid=$!
	PIDS="$PIDS $dpid"
	wait_http "http://127.0.0.1:$port/readyz" ||
		{ echo "slowloris: slipwayd did not start: $(tail -5 "$W/$name/daemon.log")" >&2; exit 1; }
	sleep 1   # idle: nothing connected yet
	idle=$(awk '$1 == "VmRSS:" { printf "%.1f", $2 / 1024 }' "/proc/$dpid/status")
	if [ "$name" = headers ]; then
		$CLIENTS fat "$port" "$F" "$secs" > "$W/$name/clients.json" &
	else
		$CLIENTS slowloris "$port" "$N" "$INTERVAL" "$SECONDS_RUN" > "$W/$name/clients.json" &
	fi
	local cpid=$!
	PIDS="$PIDS $cpid"
	$CLIENTS probe "$port" "$secs" "$dpid" > "$W/$name/probe.json"
	wait "$cpid"
	local lines
	lines=$(grep -c '' "$W/$name/daemon.log")
	jq -r --arg n "$name" --arg idle "$idle" --arg lines "$lines" -s '.[0] as $c | .[1] as $p |
		"  \($n): VmRSS idle \($idle) MB, peak \($p.rss_peak_mb) MB, at the end \($p.rss_last_mb) MB;" +
		" descriptors at most \($p.fds_peak)\n" +
		"    /healthz: \($p.probes) probes, \($p.failures) failed, p50 \($p.p50_ms) ms, p99 \($p.p99_ms) ms," +
		" max \($p.max_ms) ms\n" +
		(if $c.fat_clients then "    clients: \($c.fat_clients) sent \($c.header_mb_sent) MB of headers, answered \($c.answers)"
		 else "    clients: \($c.clients) wanted, at most \($c.peak_open) open, \($c.open_at_end) at the end;" +
		      " the server closed \($c.closed_by_server) (\($c.statuses))" end) +
		"\n    log: \($lines) lines (level warn)"' "$W/$name/clients.json" "$W/$name/probe.json"
	result "slowloris.$name.idle_mb" "$idle"
	local k
	for k in rss_peak_mb p99_ms failures fds_peak; do
		result "slowloris.$name.$k" "$(jq -r ".$k" "$W/$name/probe.json")"
	done
	kill "$dpid" 2>/dev/null
	wait "$dpid" 2>/dev/null
}

echo "slowloris: $BUILD/slipwayd; $N clients, a header line every $INTERVAL s, $SECONDS_RUN s a pass;" \
	"$F clients with fat headers; $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
for p in ${PASSES:-limits open headers}; do
	case $p in
	limits | headers) pass "$p" "" ;;
	open) pass open "  read_timeout: 1h
  max_connections: 1000000" ;;
	*) echo "slowloris: no pass '$p'" >&2; exit 1 ;;
	esac
done
