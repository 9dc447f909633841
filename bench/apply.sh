#!/bin/bash
# bench/apply.sh - apply 2,000 objects (ConfigMaps, Services, Deployments
# across 20 namespaces, plus the 20 Namespaces) into the test API server:
# slipway's sync versus `kubectl apply --server-side --validate=false -f DIR`
# against the same server, once answering at once and once adding 5 ms to
# every request (a real API server writes to etcd). Targets: slipway at most
# one fifth of kubectl's time at 5 ms, and no slower than kubectl at 0 ms.
#
# Method: for each latency and each round, a fresh test API server
# (build/tests/kubeapi --latency-ms L --ready-delay-ms 0); kubectl applies
# the directory twice (create, then the same again: every object unchanged),
# each timed as the whole command, as a user runs it. Then a fresh server
# again, and bench/harness.c (apply) runs two syncs of the same directory
# through the real syncer, each timed from the request to the recorded
# result: render, live-state lists, server-side apply in waves (Namespaces
# first; the objects of a wave concurrently), health of every object, and
# the sync row and inventory written to SQLite. kubectl does not wait for
# health. The median of ROUNDS rounds is reported.
#
#   bench/apply.sh [ROUNDS] [OBJECTS_PER_KIND_PER_NAMESPACE]
#
# Env: BUILD (default ./build), HARNESS_BIN (prebuilt bench/harness.c),
# LATENCIES (default "0 5").
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/lib.sh"
ROUNDS=${1:-3}
PER=${2:-33}
LATENCIES=${LATENCIES:-0 5}
NS=20
W=$(mktemp -d /tmp/slipway-apply.XXXXXX)
KUBEAPI_PID=
cleanup() {
	[ -n "$KUBEAPI_PID" ] && kill "$KUBEAPI_PID" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
need kubectl python3 cc pkg-config
BIN=$(build_harness "$W") || exit 1

gen_manifests "$W/m" "$NS" "$PER"
TOTAL=$((NS + NS * PER * 3))

stop_kubeapi() {
	kill "$KUBEAPI_PID" 2>/dev/null
	wait "$KUBEAPI_PID" 2>/dev/null
	KUBEAPI_PID=
}

# ms CMD...: run CMD, print its wall time in ms (exit status kept).
ms() {
	local t0 t1 rc
	t0=$(date +%s%N)
	"$@" > "$W/cmd.out" 2> "$W/cmd.err"
	rc=$?
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
	return $rc
}

median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "apply: $TOTAL objects ($NS namespaces x $PER each of ConfigMap, Service, Deployment), $ROUNDS rounds"
rc=0
for lat in $LATENCIES; do
	k1= k2= s1= s2=
	for r in $(seq 1 "$ROUNDS"); do
		start_kubeapi "$W" --latency-ms "$lat" --ready-delay-ms 0 || exit 1
		K="kubectl --kubeconfig $W/kubeconfig --cache-dir $W/kcache --request-timeout=60s"
		a=$(ms $K apply --server-side --validate=false -f "$W/m") ||
			{ echo "apply: kubectl failed: $(tail -3 "$W/cmd.err")" >&2; exit 1; }
		n=$(grep -c 'serverside-applied' "$W/cmd.out")
		[ "$n" = "$TOTAL" ] || { echo "apply: kubectl applied $n of $TOTAL" >&2; exit 1; }
		b=$(ms $K apply --server-side --validate=false -f "$W/m") ||
			{ echo "apply: kubectl failed: $(tail -3 "$W/cmd.err")" >&2; exit 1; }
		stop_kubeapi
		k1="$k1 $a" k2="$k2 $b"

		start_kubeapi "$W" --latency-ms "$lat" --ready-delay-ms 0 || exit 1
		rm -rf "$W/data" && mkdir -p "$W/data"
		"$BIN" apply "$W/kubeconfig" "$W/m" "$W/data" 2 > "$W/harness.out" 2> "$W/harness.err" ||
			{ echo "apply: slipway sync failed: $(cat "$W/harness.err")" >&2; exit 1; }
		stop_kubeapi
		line1=$(sed -n 1p "$W/harness.out") line2=$(sed -n 2p "$W/harness.out")
		[ "$(kv "$line1" created)" = "$TOTAL" ] && [ "$(kv "$line2" unchanged)" = "$TOTAL" ] ||
			{ echo "apply: unexpected sync results: $line1 / $line2" >&2; exit 1; }
		s1="$s1 $(kv "$line1" ms)" s2="$s2 $(kv "$line2" ms)"
		echo "  latency ${lat} ms round $r: kubectl ${a} ms + ${b} ms, slipway $(kv "$line1" ms) ms + $(kv "$line2" ms) ms"
	done
	k1=$(echo "$k1" | median) k2=$(echo "$k2" | median)
	s1=$(echo "$s1" | median) s2=$(echo "$s2" | median)
	result "apply.$lat.kubectl_create_ms" "$k1"
	result "apply.$lat.kubectl_again_ms" "$k2"
	result "apply.$lat.slipway_create_ms" "$s1"
	result "apply.$lat.slipway_again_ms" "$s2"
	result "apply.$lat.ratio" "$(ratio "$s1" "$k1")"
	result "apply.$lat.ratio_again" "$(ratio "$s2" "$k2")"
	printf '  %-14s %16s %16s %14s\n' "latency ${lat} ms" "kubectl ms" "slipway ms" "slipway/kubectl"
	printf '  %-14s %16s %16s %14s\n' "  create" "$k1" "$s1" "$(ratio "$s1" "$k1")"
	printf '  %-14s %16s %16s %14s\n' "  again" "$k2" "$s2" "$(ratio "$s2" "$k2")"
done
exit $rc
