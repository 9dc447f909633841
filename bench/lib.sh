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
