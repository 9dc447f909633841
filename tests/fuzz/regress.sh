#!/bin/sh
# Replay the fuzz targets' seeds and regression inputs through their plain
# drivers: tests/fuzz/regress.sh BINDIR NAME...  (BINDIR/fuzz-NAME each).
# Every file in tests/fuzz/seeds/NAME/ and tests/fuzz/regress/NAME/ is fed to
# the target once; a crash or a sanitizer report fails the run.
set -u
here=$(cd "$(dirname "$0")" && pwd)
bindir=$1
shift
export LSAN_OPTIONS="suppressions=$here/../lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
files=0 fail=0 failed=""
for name in "$@"; do
	set --
	for d in "$here/seeds/$name" "$here/regress/$name"; do
		[ -d "$d" ] || continue
		for f in "$d"/*; do
			[ -f "$f" ] && set -- "$@" "$f"
		done
	done
	[ $# -eq 0 ] && continue
	if out=$("$bindir/fuzz-$name" "$@" 2>&1); then
		files=$((files + $#))
	else
		printf '%s\n' "$out" | tail -40
		fail=$((fail + 1))
		failed="$failed $name"
	fi
done
echo "fuzz regressions: $files inputs replayed, $fail targets failed"
[ $fail -eq 0 ] || { echo "failed:$failed"; exit 1; }
