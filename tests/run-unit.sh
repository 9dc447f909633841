#!/bin/sh
# Run each cmocka unit-test binary given; print a summary line.
# Exit non-zero when any test fails.
set -u
# sanitizer builds (make check): known leaks of system libraries only
export LSAN_OPTIONS="suppressions=$(cd "$(dirname "$0")" && pwd)/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
pass=0 fail=0 failed=""
for t in "$@"; do
	out=$("$t" 2>&1)
	rc=$?
	n_pass=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
	n_fail=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
	pass=$((pass + ${n_pass:-0}))
	if [ $rc -ne 0 ]; then
		printf '%s\n' "$out"
		fail=$((fail + ${n_fail:-1}))
		failed="$failed $(basename "$t")"
	else
		echo "ok   $(basename "$t") (${n_pass:-0} tests)"
	fi
done
echo "unit: $pass passed, $fail failed"
[ $fail -eq 0 ] || { echo "failed:$failed"; exit 1; }
