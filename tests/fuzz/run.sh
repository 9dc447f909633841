#!/bin/sh
# Run one libFuzzer target for FUZZ_SECONDS (default 60):
#     tests/fuzz/run.sh BIN NAME
# The corpus is tests/fuzz/corpus/NAME (not in git). Before the run it gets
# the target's seeds (tests/fuzz/seeds/NAME), its regression inputs
# (tests/fuzz/regress/NAME) and the fixtures that feed it: the shared ones
# (../shared/fixtures, else /work/shared/fixtures, or SW_FIXTURES) and
# tests/fixtures. A crash leaves its input as tests/fuzz/corpus/NAME-crash-*
# and fails the run; minimise it (docs/fuzzing.md) into regress/NAME.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=$1
name=$2
secs=${FUZZ_SECONDS:-60}
corpus=$here/corpus/$name
mkdir -p "$corpus"

shared=${SW_FIXTURES:-}
if [ -z "$shared" ]; then
	if [ -d "$root/../shared/fixtures" ]; then shared=$root/../shared/fixtures
	else shared=/work/shared/fixtures; fi
fi
seed() {
	for f in "$@"; do
		[ -f "$f" ] && cp -f "$f" "$corpus/seed-$(basename "$(dirname "$f")")-$(basename "$f")"
	done
	return 0
}
for d in "$here/seeds/$name" "$here/regress/$name"; do
	[ -d "$d" ] && seed "$d"/*
done
case $name in
webhook|json|form)
	seed "$shared"/github/*.json ;;
yaml)
	seed "$shared"/manifests/*/*.yaml "$root"/contrib/*.yaml "$root"/contrib/examples/*.yml ;;
config)
	seed "$root"/contrib/slipway.example.yaml ;;
spec)
	seed "$root"/contrib/examples/slipway.yml ;;
manifests)
	seed "$shared"/manifests/*/*.yaml ;;
tfplan)
	seed "$root"/tests/fixtures/terraform/*.json ;;
esac

# Two targets may run at once (make -j2 fuzz) next to other work: be nice.
# The libFuzzer logs go to a file; its last lines are shown.
log=$here/corpus/$name.log
echo "  FUZZ    $name (${secs}s)"
if nice -n 10 "$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
	-print_final_stats=1 -max_len=${FUZZ_MAX_LEN:-16384} -artifact_prefix="$here/corpus/$name-" "$corpus" >"$log" 2>&1; then
	sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/  FUZZ    '"$name"': \1 executions, no finding/p' "$log"
else
	tail -60 "$log"
	echo "fuzz: $name found a problem; the input is in tests/fuzz/corpus/$name-*" >&2
	exit 1
fi
