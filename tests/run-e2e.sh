#!/bin/bash
# Run every end-to-end script tests/e2e/*.sh (or those named in E2E=..., as
# paths or as names: E2E="55-deploy 57-poll").
# Each script gets BUILD (absolute build dir), SRC (repo root), a private
# TMPDIR, and exits 0 on success. Output of a failing script is shown.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
export SRC BUILD=${BUILD:-$SRC/build}
# sanitizer builds (make check): known leaks of system libraries only
export LSAN_OPTIONS="suppressions=$SRC/tests/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
pass=0 fail=0 failed=""
scripts=${E2E:-$(ls "$SRC"/tests/e2e/*.sh 2>/dev/null)}
for s in $scripts; do
	[ -f "$s" ] || s=$SRC/tests/e2e/${s%.sh}.sh
	name=$(basename "$s" .sh)
	dir=$(mktemp -d /tmp/slipway-e2e.XXXXXX)
	start=$(date +%s)
	if TMPDIR=$dir timeout 900 bash "$s" >"$dir/log" 2>&1; then
		echo "ok   $name ($(( $(date +%s) - start ))s)"
		pass=$((pass + 1))
		rm -rf "$dir"
	else
		echo "FAIL $name ($(( $(date +%s) - start ))s), log in $dir/log:"
		tail -n 60 "$dir/log"
		fail=$((fail + 1))
		failed="$failed $name"
	fi
done
echo "e2e: $pass passed, $fail failed"
[ $fail -eq 0 ] || { echo "failed:$failed"; exit 1; }
