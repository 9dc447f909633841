#!/bin/bash
# bench/page.sh - how fast slipwayd renders the status page with 10,000 runs
# stored. Fills a temporary data directory through storage's own API
# (bench/page/fill-runs.c, linked with libslipway.a), starts slipwayd on it
# and measures GET / with wrk (one connection: the render time a person
# waits; then 8 connections) and hyperfine (whole curl requests). Prints
# p50/p99; the goal is "well under 100 ms".
#   RUNS=10000 DURATION=10s bench/page.sh
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/lib.sh"
need wrk hyperfine curl cc pkg-config python3
RUNS=${RUNS:-10000}
DURATION=${DURATION:-10s}
[ -f "$BUILD/libslipway.a" ] || { echo "bench: $BUILD/libslipway.a missing; run make first" >&2; exit 1; }

T=$(mktemp -d /tmp/slipway-bench-page.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

PKGS="libevent libevent_pthreads libevent_openssl libgit2 libcurl openssl jansson yaml-0.1 sqlite3"
cc -std=c11 -D_GNU_SOURCE -O2 -I"$SRC" $(pkg-config --cflags $PKGS) -o "$T/fill-runs" \
	"$SRC/bench/page/fill-runs.c" "$BUILD/libslipway.a" $(pkg-config --libs $PKGS) -lpthread -lm ||
	exit 1
start=$(date +%s.%N)
"$T/fill-runs" "$T/data" "$RUNS" || exit 1
echo "filled $RUNS runs in $(python3 -c "print(round($(date +%s.%N) - $start, 1))")s"

port=$(free_port)
URL=http://127.0.0.1:$port
cat > "$T/slipway.yaml" <<YAML
server:
  listen: 127.0.0.1:$port
  data_dir: $T/data
  log_level: warn
runner:
  backend: local
repositories:
  - name: acme/shop
    url: file://$T/none.git
environments:
  - name: dev
    branch: dev
  - name: prod
    branch: main
YAML
"$BUILD/slipwayd" -c "$T/slipway.yaml" 2>"$T/daemon.log" &
pid=$!
wait_http "$URL/readyz" || { cat "$T/daemon.log"; echo "bench: slipwayd did not start" >&2; exit 1; }
size=$(curl -s "$URL/" | wc -c)
curl -s "$URL/" | grep -q 'href="/runs/'"$RUNS"'"' || { echo "bench: / does not show the newest run" >&2; exit 1; }
echo "GET / : $size bytes (2 environment cards, 30 runs with their stages)"

# wrk prints its latency distribution with --latency; pick 50% and 99% in ms
ms() { awk -v k="$1" '$1 == k { v = $2; if (v ~ /us$/) { sub(/us/, "", v); v /= 1000 }
	else if (v ~ /ms$/) { sub(/ms/, "", v) } else if (v ~ /s$/) { sub(/s/, "", v); v *= 1000 }
	printf "%.2f", v }' "$2"; }
for c in 1 8; do
	wrk -t1 -c$c -d"$DURATION" --latency "$URL/" > "$T/wrk$c.txt" 2>&1
	p50=$(ms 50% "$T/wrk$c.txt"); p99=$(ms 99% "$T/wrk$c.txt")
	rps=$(awk '/Requests\/sec/ { print $2 }' "$T/wrk$c.txt")
	printf 'wrk -c%-2s GET /            p50 %7s ms   p99 %7s ms   %8s req/s\n' "$c" "$p50" "$p99" "$rps"
	result "page.c$c.p50_ms" "$p50"
	result "page.c$c.p99_ms" "$p99"
done
wrk -t1 -c1 -d"$DURATION" --latency "$URL/?before=5000" > "$T/wrkb.txt" 2>&1
printf 'wrk -c1  GET /?before=5000 p50 %7s ms   p99 %7s ms\n' "$(ms 50% "$T/wrkb.txt")" "$(ms 99% "$T/wrkb.txt")"
wrk -t1 -c1 -d"$DURATION" --latency "$URL/runs/$RUNS" > "$T/wrkr.txt" 2>&1
printf 'wrk -c1  GET /runs/%s   p50 %7s ms   p99 %7s ms\n' "$RUNS" "$(ms 50% "$T/wrkr.txt")" "$(ms 99% "$T/wrkr.txt")"
wrk -t1 -c1 -d"$DURATION" --latency "$URL/metrics" > "$T/wrkm.txt" 2>&1
printf 'wrk -c1  GET /metrics      p50 %7s ms   p99 %7s ms\n' "$(ms 50% "$T/wrkm.txt")" "$(ms 99% "$T/wrkm.txt")"
hyperfine -N --warmup 20 --runs 300 --export-json "$T/hf.json" "curl -s -o /dev/null $URL/" >/dev/null 2>&1 &&
	python3 - "$T/hf.json" <<'PY'
import json, sys
t = sorted(json.load(open(sys.argv[1]))["results"][0]["times"])
p = lambda q: t[min(len(t) - 1, int(q * len(t)))] * 1000
print("hyperfine curl GET /      p50 %7.2f ms   p99 %7.2f ms   (a whole curl process per request)" % (p(0.5), p(0.99)))
PY
p99=$(ms 99% "$T/wrk1.txt")
awk -v v="$p99" 'BEGIN { exit !(v + 0 < 100) }' && echo "goal met: p99 $p99 ms < 100 ms with $RUNS runs" ||
	{ echo "goal MISSED: p99 $p99 ms with $RUNS runs"; exit 1; }
