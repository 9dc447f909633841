#!/bin/bash
# bench/run.sh - every benchmark, then one summary table with the ratios.
# `make bench` runs it with BUILD set; each part runs alone too:
#   bench/ingest.sh            webhook ingest, slipwayd vs adnanh/webhook (wrk)
#   bench/first-container.sh   delivery acknowledged -> first container running
#   bench/apply.sh             2,000 objects: slipway's sync vs kubectl apply --server-side
#   bench/drift-heal.sh        kubectl patch -> healed, 100 edits
#   bench/memory.sh            slipwayd's RSS managing 10,000 objects in two clusters
#   bench/retention.sh         a year of a busy team: database size and ingest, with and without retention
#   bench/slowloris.sh         slipwayd's RSS and /healthz latency under 1,500 slow clients and fat headers
# Benchmarks are never part of `make test`. Method and results:
# docs/benchmarks.md.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
export BUILD=${BUILD:-$SRC/build}
export BENCH_RESULTS
BENCH_RESULTS=$(mktemp /tmp/slipway-bench-results.XXXXXX)
trap 'rm -f "$BENCH_RESULTS"' EXIT

rc=0
echo "slipway benchmarks on $(uname -n): $(nproc) CPUs, $(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo '?')"
"$SRC/bench/ingest.sh" || rc=1
echo
"$SRC/bench/first-container.sh" || rc=1
echo
"$SRC/bench/apply.sh" || rc=1
echo
"$SRC/bench/drift-heal.sh" || rc=1
echo
"$SRC/bench/memory.sh" || rc=1
echo
"$SRC/bench/retention.sh" || rc=1
echo
"$SRC/bench/slowloris.sh" || rc=1

v() { sed -n "s/^$1=//p" "$BENCH_RESULTS" | tail -1; }
verdict() { [ "$1" = 1 ] && echo met || echo MISSED; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && a + 0 >= b + 0) }'; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && a + 0 < b + 0) }'; }

echo
echo "summary"
printf '  %-32s %12s %10s %10s %12s %10s\n' "ingest (median of rounds)" "deliveries/s" "p50 ms" "p99 ms" "x peer rps" "x peer p99"
for n in peer slipway slipway-full; do
	[ -n "$(v "ingest.$n.rps")" ] || continue
	label=$n
	case $n in
	peer) label="adnanh/webhook (stores nothing)" ;;
	slipway) label="slipwayd (durability: normal)" ;;
	slipway-full) label="slipwayd (durability: full)" ;;
	esac
	printf '  %-32s %12s %10s %10s %12s %10s\n' "$label" "$(v "ingest.$n.rps")" "$(v "ingest.$n.p50_ms")" \
		"$(v "ingest.$n.p99_ms")" "$(v "ingest.$n.ratio")" "$(v "ingest.$n.p99_ratio")"
done
for n in slipway slipway-full; do
	[ -n "$(v "ingest.$n.rps")" ] || continue
	printf '  %-32s acknowledged %s, stored %s, missing %s\n' "durability ($n)" "$(v "ingest.$n.ok2xx")" \
		"$(v "ingest.$n.rows")" "$(v "ingest.$n.missing")"
done
if [ -n "$(v ingest.slipway.ratio)" ]; then
	t=0; ge "$(v ingest.slipway.ratio)" 2 && t=1
	p=0; lt "$(v ingest.slipway.p99_ratio)" 1 && p=1
	d=0; [ "$(v ingest.slipway.missing)" = 0 ] && d=1
	echo "  target: throughput >= 2x peer: $(verdict $t); p99 below peer: $(verdict $p); every acknowledged delivery stored: $(verdict $d)"
fi
if [ -n "$(v first_container.p50_ms)" ]; then
	printf '  %-32s p50 %s ms, p90 %s ms, max %s ms\n' "ack -> first container" \
		"$(v first_container.p50_ms)" "$(v first_container.p90_ms)" "$(v first_container.max_ms)"
	printf '  %-32s p50 %s ms, p90 %s ms, max %s ms\n' "ack -> first log chunk stored" \
		"$(v first_log_chunk.p50_ms)" "$(v first_log_chunk.p90_ms)" "$(v first_log_chunk.max_ms)"
	t=0; lt "$(v first_container.p50_ms)" 300 && t=1
	echo "  target: ack -> first container p50 < 300 ms: $(verdict $t)"
fi
for lat in 0 5; do
	[ -n "$(v "apply.$lat.ratio")" ] || continue
	printf '  %-32s kubectl %s ms, slipway %s ms: x%s (again: x%s)\n' "apply 2,000 objects, ${lat} ms" \
		"$(v "apply.$lat.kubectl_create_ms")" "$(v "apply.$lat.slipway_create_ms")" \
		"$(v "apply.$lat.ratio")" "$(v "apply.$lat.ratio_again")"
done
if [ -n "$(v apply.5.ratio)" ]; then
	a=0; awk -v r="$(v apply.5.ratio)" 'BEGIN { exit !(r <= 0.2) }' && a=1
	b=0; awk -v r="$(v apply.0.ratio)" 'BEGIN { exit !(r <= 1) }' && b=1
	echo "  target: <= 1/5 of kubectl at 5 ms: $(verdict $a); no slower at 0 ms: $(verdict $b)"
fi
if [ -n "$(v memory.synced_mb)" ]; then
	printf '  %-32s synced %s MB, after a sync %s MB, peak %s MB\n' "slipwayd RSS, 10,000 objects" \
		"$(v memory.synced_mb)" "$(v memory.after_mb)" "$(v memory.hwm_mb)"
fi
for n in limits open headers; do
	[ -n "$(v "slowloris.$n.rss_peak_mb")" ] || continue
	printf '  %-32s RSS peak %s MB, /healthz p99 %s ms, %s failed\n' "slow clients ($n)" \
		"$(v "slowloris.$n.rss_peak_mb")" "$(v "slowloris.$n.p99_ms")" "$(v "slowloris.$n.failures")"
done
exit $rc
