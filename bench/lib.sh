# bench/lib.sh - helpers shared by the benchmark scripts (sourced).
# Expects SRC (repository root); sets BUILD (default SRC/build) and SHARED.

BUILD=${BUILD:-$SRC/build}
BUILD=$(cd "$BUILD" && pwd) || { echo "bench: no build directory; run make first" >&2; exit 1; }
[ -x "$BUILD/slipwayd" ] || { echo "bench: $BUILD/slipwayd missing; run make first" >&2; exit 1; }
if [ -d "$SRC/../shared/fixtures" ]; then SHARED=$(cd "$SRC/../shared" && pwd); else SHARED=/work/shared; fi
FIX=$SHARED/fixtures/github

need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || { echo "bench: '$c' is not installed" >&2; exit 1; }
	done
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# bench_dir NAME: a fresh work directory in W; the processes listed in
# PIDS are killed and W removed on exit (kept with BENCH_KEEP set).
bench_dir() {
	W=$(mktemp -d "/tmp/slipway-$1.XXXXXX")
	PIDS=
	trap bench_cleanup EXIT
}
bench_cleanup() {
	local p
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	[ -n "${BENCH_KEEP:-}" ] && echo "bench: kept $W" >&2 || rm -rf "$W"
}

# wait_http URL [CODE...]: until URL answers (any HTTP code), up to 10 s.
wait_http() {
	local i
	for i in $(seq 1 200); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$1" 2>/dev/null)" != 000 ] && return 0
		sleep 0.05
	done
	return 1
}

# sign FILE SECRET: "sha256=<hex>" as GitHub sends it.
sign() {
	echo "sha256=$(openssl dgst -sha256 -hmac "$2" "$1" | sed 's/^.*= //')"
}

# result KEY VALUE: remember a number for the summary (BENCH_RESULTS file).
result() {
	[ -n "${BENCH_RESULTS:-}" ] && echo "$1=$2" >> "$BENCH_RESULTS"
	return 0
}

# kv LINE KEY: the value of KEY=VALUE in a RESULT line.
kv() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# ratio A B: A/B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# build_harness DIR: build bench/harness.c (the real syncer and drift
# watcher on one loop) against BUILD/libslipway.a into DIR/harness and print
# its path; HARNESS_BIN names a prebuilt one instead.
build_harness() {
	if [ -n "${HARNESS_BIN:-}" ]; then
		echo "$HARNESS_BIN"
		return 0
	fi
	local pkgs="libevent libevent_pthreads libevent_openssl libgit2 libcurl openssl jansson yaml-0.1 sqlite3"
	make -s -C "$SRC" "$BUILD/libslipway.a" >/dev/null || { echo "bench: make failed" >&2; return 1; }
	cc -std=c11 -D_GNU_SOURCE -O2 -I"$SRC" $(pkg-config --cflags $pkgs) -o "$1/harness" \
		"$SRC/bench/harness.c" "$BUILD/libslipway.a" $(pkg-config --libs $pkgs) -lpthread -lm ||
		{ echo "bench: bench/harness.c did not build" >&2; return 1; }
	echo "$1/harness"
}

# start_kubeapi DIR [ARGS...]: start the test API server (BUILD/tests/kubeapi)
# writing DIR/kubeconfig; sets KUBEAPI_PID and KUBEAPI_URL.
start_kubeapi() {
	local d=$1 i
	shift
	[ -x "$BUILD/tests/kubeapi" ] || { echo "bench: $BUILD/tests/kubeapi missing; run make first" >&2; return 1; }
	"$BUILD/tests/kubeapi" --listen 127.0.0.1:0 --kubeconfig-out "$d/kubeconfig" "$@" \
		> "$d/kubeapi.out" 2> "$d/kubeapi.err" &
	KUBEAPI_PID=$!
	for i in $(seq 1 100); do grep -q "listening on" "$d/kubeapi.out" && break; sleep 0.05; done
	KUBEAPI_URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$d/kubeapi.out" | head -1)
	[ -n "$KUBEAPI_URL" ] || { echo "bench: kubeapi did not start: $(cat "$d/kubeapi.err")" >&2; return 1; }
}

# gen_manifests DIR NAMESPACES PER: NAMESPACES Namespaces (bench-NN, in
# DIR/00-namespaces.yaml), each holding PER ConfigMaps, Services and
# Deployments (DIR/ns-NN.yaml): NAMESPACES * (1 + 3 * PER) objects.
gen_manifests() {
	local d=$1 ns=$2 per=$3 n i
	mkdir -p "$d"
	for n in $(seq -w 0 $((ns - 1))); do
		printf -- '---\napiVersion: v1\nkind: Namespace\nmetadata: {name: bench-%s}\n' "$n"
	done > "$d/00-namespaces.yaml"
	for n in $(seq -w 0 $((ns - 1))); do
		for i in $(seq 0 $((per - 1))); do
			printf -- '---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%s, namespace: bench-%s}\ndata: {greeting: "hello %s", level: "info"}\n' $i $n $i
			printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: svc-%s, namespace: bench-%s}\nspec:\n  selector: {app: web-%s}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n' $i $n $i
			printf -- '---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web-%s, namespace: bench-%s, labels: {app: web-%s}}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web-%s}}\n  template:\n    metadata: {labels: {app: web-%s}}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.25\n        ports: [{containerPort: 8080}]\n        env: [{name: LEVEL, value: info}]\n' $i $n $i $i $i
		done > "$d/ns-$n.yaml"
	done
}
