#!/bin/bash
# bench/ingest.sh - webhook ingest: slipwayd against adnanh/webhook, same run.
#
# Both servers receive the same signed ~7.5 KB GitHub push delivery from
# `wrk -t2 -c16 -d10s` (bench/ingest.lua: a unique X-GitHub-Delivery per
# request). Measured, one after the other on the same machine:
#   peer         adnanh/webhook: payload-hmac-sha256 on X-Hub-Signature-256,
#                runs /bin/true, stores nothing
#   slipway      slipwayd: HMAC check, durable insert (WAL, synchronous=NORMAL,
#                group commit per loop turn), 202; then the pipeline engine maps
#                the delivery (a push to an untracked branch: recorded as ignored)
#   slipway-full the same binary with `server.durability: full` (SQLite
#                synchronous=FULL: every group commit is fsync'd)
# After each slipwayd run the daemon is killed with SIGKILL and the database
# is checked: every delivery wrk saw acknowledged (2xx) must be a row.
#
# Environment: BUILD (default SRC/build), DURATION (10s), THREADS (2),
# CONNS (16), ROUNDS (3: peer, slipway, slipway-full, repeated; medians
# reported), BENCH_RESULTS (file to append key=value results to),
# BENCH_KEEP=1 keeps the scratch directory, INGEST_ONLY="peer slipway" to
# run a subset.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/lib.sh"
need wrk webhook sqlite3 jq openssl curl python3

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
CONNS=${CONNS:-16}
ONLY=${INGEST_ONLY:-peer slipway slipway-full}
SECRET="It's a Secret to Everybody"
T=$(mktemp -d /tmp/slipway-bench-ingest.XXXXXX)
RUN=b$(date +%s)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	[ "${BENCH_KEEP:-0}" = 1 ] && echo "bench: kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT

# --- the delivery: push-branch.json, compact (7.5 KB), to a configured
# repository but a branch no environment tracks: the engine maps it (parse,
# decision, state update) and starts nothing.
jq -c '.repository.full_name = "acme/shop" | .repository.name = "shop"
	| .repository.owner.login = "acme" | .ref = "refs/heads/bench-untracked"' \
	"$FIX/push-branch.json" > "$T/body.json"
SIG=$(sign "$T/body.json" "$SECRET")
BADSIG=$(sign "$T/body.json" "not the secret")
BODY_BYTES=$(wc -c < "$T/body.json")
export BENCH_BODY=$T/body.json BENCH_SECRET=$SECRET

echo "ingest: wrk -t$THREADS -c$CONNS -d$DURATION, push delivery of $BODY_BYTES bytes, $(nproc) CPUs"

# run_wrk NAME URL: prints the RESULT line (and keeps wrk's output)
run_wrk() {
	BENCH_RUN=$RUN-r$ROUND-$1 BENCH_ACKED=$T/$1.r$ROUND.acked BENCH_PATH=$3 \
		wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --timeout 5s -s "$SRC/bench/ingest.lua" "$2" \
		> "$T/$1.r$ROUND.wrk" 2>&1
	grep '^RESULT ' "$T/$1.r$ROUND.wrk" || { cat "$T/$1.r$ROUND.wrk" >&2; echo "RESULT failed"; }
}

report() {   # NAME RESULT-LINE
	local r=$2
	echo "$1 $2" >> "$T/all"
	printf '  r%s %-13s %9s deliveries/s  p50 %7s ms  p90 %7s ms  p99 %7s ms  max %7s ms  (2xx %s, non-2xx %s, socket errors %s)\n' \
		"$ROUND" "$1" "$(kv "$r" rps)" "$(kv "$r" p50_ms)" "$(kv "$r" p90_ms)" "$(kv "$r" p99_ms)" \
		"$(kv "$r" max_ms)" "$(kv "$r" ok2xx)" "$(kv "$r" non2xx)" "$(kv "$r" errors)"
}

# --- peer: adnanh/webhook --------------------------------------------------------
bench_peer() {
	local port code
	port=$(free_port)
	jq -n --arg secret "$SECRET" '[{
		id: "github", "execute-command": "/bin/true", "command-working-directory": "/",
		"response-message": "queued", "trigger-rule-mismatch-http-response-code": 401,
		"trigger-rule": { match: { type: "payload-hmac-sha256", secret: $secret,
			parameter: { source: "header", name: "X-Hub-Signature-256" } } } }]' > "$T/hooks.json"
	webhook -hooks "$T/hooks.json" -ip 127.0.0.1 -port "$port" > "$T/peer.log" 2>&1 &
	pids+=($!)
	local ppid=$!
	wait_http "http://127.0.0.1:$port/hooks/github" || { cat "$T/peer.log" >&2; echo "bench: webhook did not start" >&2; return 1; }
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Hub-Signature-256: $SIG" -H 'Content-Type: application/json' \
		--data-binary "@$T/body.json" "http://127.0.0.1:$port/hooks/github")
	[ "$code" = 200 ] || { echo "bench: peer answered a signed delivery $code" >&2; return 1; }
	code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Hub-Signature-256: $BADSIG" -H 'Content-Type: application/json' \
		--data-binary "@$T/body.json" "http://127.0.0.1:$port/hooks/github")
	# webhook 2.8.0 answers a signature mismatch with 500 ("Error occurred
	# while evaluating hook rules") and runs nothing
	case $code in 2*) echo "bench: peer accepted a badly signed delivery ($code)" >&2; return 1 ;; esac
	local r
	r=$(run_wrk peer "http://127.0.0.1:$port" /hooks/github)
	kill "$ppid" 2>/dev/null; wait "$ppid" 2>/dev/null
	report peer "$r"
}

# --- slipwayd --------------------------------------------------------------------
# bench_slipway NAME DURABILITY
bench_slipway() {
	local name=$1 durability=$2 port dir code r
	port=$(free_port)
	dir=$T/$name.r$ROUND
	local tag=$RUN-r$ROUND-$name
	mkdir -p "$dir"
	cat > "$dir/slipway.yaml" <<YAML
server:
  listen: 127.0.0.1:$port
  data_dir: data
  log_level: info
  durability: $durability
github:
  api_url: http://127.0.0.1:9
  webhook_secret: {secret_env: BENCH_WEBHOOK_SECRET}
runner:
  backend: local
repositories:
  - name: acme/shop
    url: file://$dir/none.git
environments:
  - name: production
    repository: acme/shop
    branch: main
YAML
	BENCH_WEBHOOK_SECRET=$SECRET "$BUILD/slipwayd" -c "$dir/slipway.yaml" 2> "$dir/daemon.log" &
	local spid=$!
	pids+=($spid)
	wait_http "http://127.0.0.1:$port/readyz" || { tail -20 "$dir/daemon.log" >&2; echo "bench: slipwayd did not start" >&2; return 1; }
	if ! grep -q "event=daemon.start .*durability=$durability" "$dir/daemon.log"; then
		echo "bench: slipwayd did not start with durability=$durability" >&2; return 1
	fi
	code=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: $tag-check" \
		-H "X-Hub-Signature-256: $SIG" -H 'Content-Type: application/json' \
		--data-binary "@$T/body.json" "http://127.0.0.1:$port/hooks/github")
	[ "$code" = 202 ] || { echo "bench: slipwayd answered a signed delivery $code" >&2; return 1; }
	code=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: $tag-bad" \
		-H "X-Hub-Signature-256: $BADSIG" -H 'Content-Type: application/json' \
		--data-binary "@$T/body.json" "http://127.0.0.1:$port/hooks/github")
	[ "$code" = 401 ] || { echo "bench: slipwayd answered a badly signed delivery $code" >&2; return 1; }

	r=$(run_wrk "$name" "http://127.0.0.1:$port" /hooks/github)
	# the mapping runs right after each batch's answers; give the loop a moment
	sleep 0.5
	# durability: a crash right after the run must lose no acknowledged delivery
	kill -9 "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
	report "$name" "$r"
	local db=$dir/data/slipway.db ok acked rows missing ignored queued
	ok=$(kv "$r" ok2xx)
	sort -u "$T/$name.r$ROUND.acked" > "$T/$name.r$ROUND.acked.sorted"
	acked=$(wc -l < "$T/$name.r$ROUND.acked.sorted")
	rows=$(sqlite3 "$db" "select count(*) from deliveries where guid like '$tag-%' and guid not like '%-check'")
	ignored=$(sqlite3 "$db" "select count(*) from deliveries where guid like '$tag-%' and guid not like '%-check' and state='ignored'")
	queued=$(sqlite3 "$db" "select count(*) from deliveries where guid like '$tag-%' and state='queued'")
	missing=$(sqlite3 "$db" <<SQL
create temp table acked(guid text);
.mode csv
.import $T/$name.r$ROUND.acked.sorted acked
select count(*) from acked where guid not in (select guid from deliveries);
SQL
)
	printf '  %-13s durability: wrk 2xx %s, acknowledged GUIDs %s, rows after kill -9 %s, acknowledged but missing %s; mapped as ignored %s, still queued %s\n' \
		"" "$ok" "$acked" "$rows" "$missing" "$ignored" "$queued"
	echo "$name $ok $rows $missing" >> "$T/durability"
	if [ "$missing" != 0 ] || [ "$acked" != "$ok" ] || [ "$rows" -lt "$ok" ]; then
		echo "  DURABILITY FAILURE ($name): $missing acknowledged deliveries are not stored" >&2
		DURABILITY_FAILED=1
	fi
}

DURABILITY_FAILED=0
: > "$T/all"
: > "$T/durability"
for ROUND in $(seq 1 "$ROUNDS"); do
	for what in $ONLY; do
		case $what in
		peer) bench_peer || exit 1 ;;
		slipway) bench_slipway slipway normal || exit 1 ;;
		slipway-full) bench_slipway slipway-full full || exit 1 ;;
		esac
		sleep 1
	done
done

# medians over the rounds (the servers alternate, so load that comes and
# goes on a shared machine hits them alike)
med() {   # NAME KEY
	grep "^$1 RESULT " "$T/all" | tr ' ' '\n' | sed -n "s/^$2=//p" | sort -g |
		awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo "  median of $ROUNDS round(s):"
for n in $ONLY; do
	rps=$(printf '%.1f' "$(med "$n" rps)"); p50=$(printf '%.2f' "$(med "$n" p50_ms)"); p99=$(printf '%.2f' "$(med "$n" p99_ms)")
	result "ingest.$n.rps" "$rps"
	result "ingest.$n.p50_ms" "$p50"
	result "ingest.$n.p99_ms" "$p99"
	line="$(printf '  %-13s %9s deliveries/s  p50 %7s ms  p99 %7s ms' "$n" "$rps" "$p50" "$p99")"
	if [ "$n" != peer ] && grep -q '^peer RESULT' "$T/all"; then
		x=$(ratio "$rps" "$(med peer rps)")
		p=$(ratio "$p99" "$(med peer p99_ms)")
		line="$line   x peer: throughput $x (target >= 2), p99 $p (target < 1)"
		result "ingest.$n.ratio" "$x"
		result "ingest.$n.p99_ratio" "$p"
	fi
	echo "$line"
	if [ "$n" != peer ]; then
		read -r ok rows missing <<< "$(awk -v n="$n" '$1 == n { a += $2; r += $3; m += $4 } END { print a + 0, r + 0, m + 0 }' "$T/durability")"
		result "ingest.$n.ok2xx" "$ok"
		result "ingest.$n.rows" "$rows"
		result "ingest.$n.missing" "$missing"
	fi
done
exit $DURABILITY_FAILED
