#!/bin/bash
# bench/retention.sh - a simulated year of a busy team: database size and
# ingest rate without retention, and after a retention pass with the
# defaults (deliveries 30 days, logs 90 days, runs 1 year, ...).
#
# The year is written directly with SQL (sqlite3 CLI) into a database
# slipwayd created: DAYS days (365) of RUNS_PER_DAY runs (200) spread over
# each day, one delivery each (a 7.5 KB push body), 3 stages per run,
# LINES log lines per stage (50, one chunk per 5 lines as the engine
# flushes, 80 bytes a line), every fourth run a push to `prod` with a sync.
# The year ends today minus 1 day, so with the defaults everything older
# than a year (nothing), the logs older than 90 days and the deliveries
# older than 30 days go. Then, measured with bench/retention-tool.c (the
# store API as slipwayd's worker uses it):
#   size      the file (after a checkpoint) before and after, and the free
#             pages given back
#   ingest    a day's writes (RUNS_PER_DAY runs with their deliveries,
#             stages, logs and status changes) on the full year, then on the
#             retained database
#   retain    one pass: time, batches, and the longest single batch (the
#             longest one batch can hold the write lock)
#
# Environment: BUILD, DAYS (365), RUNS_PER_DAY (200), LINES (50),
# BENCH_RESULTS, BENCH_KEEP=1 keeps the scratch directory.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/lib.sh"
need sqlite3 curl python3 pkg-config

DAYS=${DAYS:-365}
RUNS_PER_DAY=${RUNS_PER_DAY:-200}
LINES=${LINES:-50}
T=$(mktemp -d /tmp/slipway-bench-retention.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	[ "${BENCH_KEEP:-0}" = 1 ] && echo "bench: kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
result() { [ -n "${BENCH_RESULTS:-}" ] && echo "$1" >> "$BENCH_RESULTS"; echo "  $1"; }

pkgs="libevent libevent_pthreads libevent_openssl libgit2 libcurl openssl jansson yaml-0.1 sqlite3"
make -s -C "$SRC" "$BUILD/libslipway.a" >/dev/null || exit 1
cc -std=c11 -D_GNU_SOURCE -O2 -I"$SRC" $(pkg-config --cflags $pkgs) -o "$T/tool" \
	"$SRC/bench/retention-tool.c" "$BUILD/libslipway.a" $(pkg-config --libs $pkgs) -lpthread -lm ||
	{ echo "bench: bench/retention-tool.c did not build" >&2; exit 1; }

# slipwayd creates the database (schema, auto_vacuum) and the environment.
port=$(free_port)
cat > "$T/slipway.yaml" <<YAML
server: {listen: 127.0.0.1:$port, data_dir: $T/data}
retention: {interval: 0}
repositories: [{name: acme/shop, url: "file:///nonexistent"}]
environments: [{name: prod, branch: main}]
YAML
"$BUILD/slipwayd" -c "$T/slipway.yaml" 2> "$T/daemon.log" &
pid=$!
wait_http "http://127.0.0.1:$port/healthz" || { cat "$T/daemon.log"; exit 1; }
kill -TERM "$pid"; wait "$pid"; pid=
DB=$T/data/slipway.db

RUNS=$((DAYS * RUNS_PER_DAY))
NOW=$(( $(date +%s) * 1000 ))
START=$(( NOW - (DAYS + 1) * 86400000 ))
STEP=$(( 86400000 / RUNS_PER_DAY ))
CHUNKS=$(( (LINES + 4) / 5 ))
echo "retention: $DAYS days x $RUNS_PER_DAY runs = $RUNS runs, 3 stages, $LINES log lines a stage, $(nproc) CPUs"
t0=$(date +%s%N)
sqlite3 "$DB" > /dev/null <<SQL || exit 1
PRAGMA foreign_keys = OFF;
BEGIN;
WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < $RUNS)
INSERT INTO deliveries (id, guid, event, repo, received_at, body, state, run_id)
  SELECT k, 'year-' || k, CASE WHEN k % 4 = 0 THEN 'push' ELSE 'pull_request' END,
         'acme/shop', $START + k * $STEP, zeroblob(7500), 'mapped', k FROM n;
INSERT INTO runs (id, delivery_id, kind, repo, branch, commit_sha, pr_number, environment,
                  status, created_at, started_at, finished_at)
  SELECT id, id, CASE WHEN id % 4 = 0 THEN 'push' ELSE 'pull_request' END, 'acme/shop',
         CASE WHEN id % 4 = 0 THEN 'main' ELSE 'feature-' || (id % 97) END,
         printf('%040x', id), CASE WHEN id % 4 = 0 THEN NULL ELSE id % 97 END,
         CASE WHEN id % 4 = 0 THEN 'prod' END,
         CASE WHEN id % 10 = 0 THEN 'failure' ELSE 'success' END,
         received_at, received_at + 1000, received_at + 240000 FROM deliveries;
INSERT INTO syncs (environment, commit_sha, "trigger", status, health, started_at, finished_at, run_id)
  SELECT 'prod', commit_sha, 'merge', 'success', 'healthy', finished_at, finished_at + 20000, id
  FROM runs WHERE environment = 'prod' AND id > (SELECT max(id) FROM runs) - 200;
WITH s(i) AS (VALUES (0), (1), (2))
INSERT INTO stages (run_id, idx, name, image, status, exit_code, started_at, finished_at)
  SELECT r.id, s.i, 'stage' || s.i, 'alpine', 'success', 0, r.started_at + s.i * 80000,
         r.started_at + s.i * 80000 + 60000 FROM runs r, s ORDER BY r.id, s.i;
WITH RECURSIVE c(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM c WHERE k < $CHUNKS - 1)
INSERT INTO log_chunks (stage_id, seq, off, len, ts, data)
  SELECT st.id, c.k, c.k * 400, 400, st.started_at + c.k * 1000,
         CAST(printf('%0400d', st.id * 100 + c.k) AS BLOB) FROM stages st, c ORDER BY st.id, c.k;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
gen_s=$(( ($(date +%s%N) - t0) / 1000000000 ))
rows() { sqlite3 "$1" "select (select count(*) from runs)||' runs, '||(select count(*) from stages)||' stages, '||(select count(*) from log_chunks)||' log chunks, '||(select count(*) from deliveries)||' deliveries'"; }
size_mb() { sqlite3 "$1" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null; python3 -c "import os,sys; print('%.0f' % (os.path.getsize(sys.argv[1]) / 1048576))" "$1"; }
echo "  generated in ${gen_s}s: $(rows "$DB")"
result "retention_year_db_mb=$(size_mb "$DB")"

cp "$DB" "$T/year.db"
ing() { "$T/tool" ingest "$T/data" "$RUNS_PER_DAY" "$LINES" | sed -n 's/.*runs_per_s=//p'; }
result "retention_ingest_year_runs_per_s=$(ing)"

# with retention: back to the year as generated, one pass, then a day's ingest
cp "$T/year.db" "$DB"
r=$("$T/tool" retain "$T/data") || exit 1
echo "  $r"
result "retention_pass_ms=$(echo "$r" | sed -n 's/.* ms=\([0-9]*\).*/\1/p')"
result "retention_worst_step_ms=$(echo "$r" | sed -n 's/.* worst_step_ms=\([0-9]*\).*/\1/p')"
result "retention_worst_vacuum_step_ms=$(echo "$r" | sed -n 's/.*worst_vacuum_step_ms=//p')"
echo "  after retention: $(rows "$DB")"
result "retention_retained_db_mb=$(size_mb "$DB")"
result "retention_ingest_retained_runs_per_s=$(ing)"
