#!/bin/bash
# bench/first-container.sh - latency from a delivery's acknowledgement to its
# first step's container running, Podman runner, local image.
#
# A private Podman service (tests/lib/podman.sh, image slipway-busybox:latest
# imported through the Docker API) and a slipwayd with the docker runner on
# its socket. A bare git repository holds a .slipway.yml whose first stage's
# first command is `cat /proc/uptime`. N (30) times, one at a time: commit
# and push a new head, send a signed pull_request "opened" delivery for it
# (PR number i, so no run supersedes another) with curl, wait until the run
# is final.
#
# Per delivery, from the database and the stored log:
#   ack        deliveries.received_at (stamped at the insert, before the 202;
#              curl's own completion time is recorded too as a check)
#   start      the container's first command: /proc/uptime (CLOCK_BOOTTIME,
#              10 ms resolution, not namespaced) printed inside the container,
#              turned into epoch ms with the host's realtime-boottime offset
#   stored     log_chunks.ts of the stage's first chunk (the engine flushes
#              logs every 250 ms, so this adds up to 250 ms of batching)
# Reported: p50/p90/max of start - ack (the figure the target is about) and
# of stored - ack, plus the stage's started_at - ack (engine side).
#
# Environment: BUILD, N (30), BENCH_RESULTS, BENCH_KEEP=1.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/lib.sh"
need podman runc git jq sqlite3 openssl curl python3
. "$SRC/tests/lib/podman.sh"

N=${N:-30}
SECRET="It's a Secret to Everybody"
T=$(mktemp -d /tmp/slipway-bench-fc.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && { kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
	sw_podman_stop "$T/podman"
	[ "${BENCH_KEEP:-0}" = 1 ] && echo "bench: kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT

sw_podman_start "$T/podman" > "$T/podman-start.log" 2>&1 || { cat "$T/podman-start.log" >&2; echo "bench: podman service did not start" >&2; exit 1; }

git init -q --bare "$T/origin.git"
git clone -q "$T/origin.git" "$T/work" 2>/dev/null
cd "$T/work" || exit 1
git config user.email bench@example.com
git config user.name Bench
git checkout -q -b main
cat > .slipway.yml <<'YML'
stages:
  - name: first
    image: slipway-busybox:latest
    commands:
      - cat /proc/uptime
      - echo done
YML
echo 0 > n.txt
git add -A && git commit -qm initial && git push -q origin main
git checkout -q -b feature
cd "$T" || exit 1

port=$(free_port)
URL=http://127.0.0.1:$port
cat > "$T/slipway.yaml" <<YAML
server:
  listen: 127.0.0.1:$port
  public_url: $URL
  data_dir: data
  max_concurrent_runs: 4
github:
  api_url: http://127.0.0.1:9
  webhook_secret: {secret_env: BENCH_WEBHOOK_SECRET}
runner:
  backend: docker
  docker_socket: $SW_PODMAN_SOCK
  network: none
  timeout: 2m
repositories:
  - name: acme/shop
    url: file://$T/origin.git
YAML
BENCH_WEBHOOK_SECRET=$SECRET "$BUILD/slipwayd" -c "$T/slipway.yaml" 2> "$T/daemon.log" &
pid=$!
wait_http "$URL/readyz" || { tail -20 "$T/daemon.log" >&2; echo "bench: slipwayd did not start" >&2; exit 1; }

q() { sqlite3 -cmd '.timeout 5000' "$T/data/slipway.db" "$1"; }
now_ms() { date +%s%3N; }
# epoch ms minus CLOCK_BOOTTIME ms, measured now (they drift apart by ppm only)
OFFSET_MS=$(python3 -c 'import time; print(int(round((time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)) * 1000)))')

echo "first-container: $N pull_request deliveries one at a time, Podman (runc), image slipway-busybox:latest"
: > "$T/samples"
for i in $(seq 1 "$N"); do
	(cd "$T/work" && echo "$i" > n.txt && git commit -qam "change $i" && git push -q -f origin feature) || exit 1
	sha=$(git -C "$T/work" rev-parse HEAD)
	jq -c --arg sha "$sha" --argjson n "$((1000 + i))" '.action="opened" | .number=$n
		| .pull_request.number=$n | .pull_request.head.sha=$sha | .pull_request.head.ref="feature"
		| .pull_request.base.ref="main" | .pull_request.draft=false | .pull_request.title="Bench \($n)"
		| .repository.full_name="acme/shop" | .pull_request.head.repo.full_name="acme/shop"' \
		"$FIX/pull_request-opened.json" > "$T/pr.json"
	sig=$(sign "$T/pr.json" "$SECRET")
	guid=fc-$(date +%s)-$i
	code=$(curl -s -o "$T/resp" -w '%{http_code}' -H 'X-GitHub-Event: pull_request' -H "X-GitHub-Delivery: $guid" \
		-H "X-Hub-Signature-256: $sig" -H 'Content-Type: application/json' --data-binary "@$T/pr.json" "$URL/hooks/github")
	acked=$(now_ms)
	[ "$code" = 202 ] || { echo "bench: delivery $i answered $code: $(cat "$T/resp")" >&2; exit 1; }
	run=
	for _ in $(seq 1 600); do
		run=$(q "select r.id from runs r join deliveries d on d.run_id = r.id where d.guid='$guid' and r.status not in ('queued','running')")
		[ -n "$run" ] && break
		sleep 0.1
	done
	[ -n "$run" ] || { tail -20 "$T/daemon.log" >&2; echo "bench: run of delivery $i did not finish" >&2; exit 1; }
	st=$(q "select status from runs where id=$run")
	[ "$st" = success ] || { echo "bench: run $run ended $st: $(q "select name, status, reason from stages where run_id=$run")" >&2; exit 1; }
	row=$(q "select d.received_at, s.started_at, (select ts from log_chunks c where c.stage_id = s.id order by seq limit 1),
		(select cast(data as text) from log_chunks c where c.stage_id = s.id order by seq limit 1)
		from deliveries d join runs r on r.id = d.run_id join stages s on s.run_id = r.id and s.idx = 0
		where d.guid = '$guid'")
	IFS='|' read -r received stage_started first_ts first_data <<< "$row"
	up=$(echo "$first_data" | awk 'NF >= 2 && $1 ~ /^[0-9]+\.[0-9]+$/ { print $1; exit }')
	[ -n "$up" ] || { echo "bench: no uptime in the first log chunk of run $run: $first_data" >&2; exit 1; }
	start=$(awk -v u="$up" -v o="$OFFSET_MS" 'BEGIN { printf "%.0f", u * 1000 + o }')
	echo "$i $run $received $acked $stage_started $start $first_ts" >> "$T/samples"
	printf '  %2d run %-4s ack->engine stage start %5d ms  ack->container first command %5d ms  ack->first log chunk stored %5d ms\n' \
		"$i" "$run" $((stage_started - received)) $((start - received)) $((first_ts - received))
done

# stats COLUMN-EXPRESSION: p50 p90 max (nearest rank) of an awk expression over the samples
stats() {
	awk "{ print $1 }" "$T/samples" | sort -n | awk '{ v[NR] = $1 } END {
		p50 = v[int((NR + 1) * 0.5)]; i90 = int(NR * 0.9 + 0.999); if (i90 < 1) i90 = 1
		printf "%.0f %.0f %.0f", p50, v[i90], v[NR] }'
}
read -r c50 c90 cmax <<< "$(stats '$6 - $3')"
read -r l50 l90 lmax <<< "$(stats '$7 - $3')"
read -r s50 s90 smax <<< "$(stats '$5 - $3')"
read -r k50 k90 kmax <<< "$(stats '$4 - $3')"
echo "  ack -> container's first command:  p50 $c50 ms  p90 $c90 ms  max $cmax ms  (target p50 < 300 ms)"
echo "  ack -> engine marks stage running: p50 $s50 ms  p90 $s90 ms  max $smax ms"
echo "  ack -> first log chunk stored:     p50 $l50 ms  p90 $l90 ms  max $lmax ms  (includes the 250 ms log flush)"
echo "  (received_at -> curl returned:     p50 $k50 ms  p90 $k90 ms  max $kmax ms)"
result first_container.p50_ms "$c50"
result first_container.p90_ms "$c90"
result first_container.max_ms "$cmax"
result first_log_chunk.p50_ms "$l50"
result first_log_chunk.p90_ms "$l90"
result first_log_chunk.max_ms "$lmax"
