#!/bin/bash
# bench/memory.sh - resident memory of slipwayd managing 10,000 objects
# across two environments (target: under 64 MB; Argo CD's and Flux's
# controllers are reported at hundreds of MB to GBs for far fewer).
#
# Method: two test API servers stand in for the dev and prod clusters. One
# git repository (file://) holds, on branches dev and main, the same
# generated manifests: NS namespaces x PER each of ConfigMap, Service and
# Deployment, plus the Namespaces (default 50 x 33: 5,000 objects per
# environment). slipwayd (the build's binary, runner local, log to a file)
# gets a signed push for each branch, deploys both (fetch, render, apply,
# health), then keeps them: a drift watch per managed kind and the periodic
# full comparison. Read from /proc/PID/status: VmRSS before any push, VmRSS
# once both environments are synced and the watches have settled, VmRSS
# after one more forced comparison of each (`slipway sync`), and VmHWM, the
# peak over the whole run.
#
#   bench/memory.sh [NS] [PER]
#
# Env: BUILD (default ./build).
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/bench/lib.sh"
NS=${1:-50}
PER=${2:-33}
bench_dir memory
need kubectl python3 sqlite3 jq openssl curl git

mkdir -p "$W/dev" "$W/prod"
start_kubeapi "$W/dev" --ready-delay-ms 0 || exit 1
PIDS="$PIDS $KUBEAPI_PID"
start_kubeapi "$W/prod" --ready-delay-ms 0 || exit 1
PIDS="$PIDS $KUBEAPI_PID"

git init -q -b dev "$W/repo"
gen_manifests "$W/repo/deploy" "$NS" "$PER"
PER_ENV=$((NS + NS * PER * 3))
git -C "$W/repo" add -A
git -C "$W/repo" -c user.email=b@example.com -c user.name=bench commit -qm manifests
git -C "$W/repo" branch main
SHA=$(git -C "$W/repo" rev-parse HEAD)

port=$(free_port)
URL=http://127.0.0.1:$port
export WEBHOOK_SECRET=memory-bench SLIPWAY_TOKEN=memory-token
cat > "$W/slipway.yaml" <<YAML
server: {listen: 127.0.0.1:$port, public_url: $URL, data_dir: $W/data, log_level: warn, api_token: {secret_env: SLIPWAY_TOKEN}}
github: {webhook_secret: {secret_env: WEBHOOK_SECRET}}
runner: {backend: local}
repositories:
  - {name: acme/shop, url: "file://$W/repo"}
environments:
  - name: dev
    branch: dev
    cluster: {kubeconfig: $W/dev/kubeconfig}
    manifests: [deploy]
    health_timeout: 120s
  - name: prod
    branch: main
    cluster: {kubeconfig: $W/prod/kubeconfig}
    manifests: [deploy]
    health_timeout: 120s
YAML
${WRAP:-} "$BUILD/slipwayd" -c "$W/slipway.yaml" > "$W/daemon.log" 2>&1 &
DPID=$!
PIDS="$PIDS $DPID"
wait_http "$URL/readyz" || { echo "memory: slipwayd did not start: $(tail -5 "$W/daemon.log")" >&2; exit 1; }
status() { awk -v k="$1:" '$1 == k { print int($2 / 1024 + 0.5) }' "/proc/$DPID/status"; }
sleep 1
idle=$(status VmRSS)

q() { sqlite3 -cmd '.timeout 5000' "$W/data/slipway.db" "$1"; }
push() {
	jq -c --arg ref "refs/heads/$1" --arg sha "$SHA" '.ref=$ref | .after=$sha | .head_commit.id=$sha
		| .repository.full_name="acme/shop" | .deleted=false' "$FIX/push-branch.json" > "$W/push.json"
	code=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: mem-$1" \
		-H "X-Hub-Signature-256: $(sign "$W/push.json" "$WEBHOOK_SECRET")" \
		-H 'Content-Type: application/json' --data-binary "@$W/push.json" "$URL/hooks/github")
	[ "$code" = 202 ] || { echo "memory: push $1 answered $code" >&2; exit 1; }
}
echo "memory: slipwayd managing $((2 * PER_ENV)) objects ($PER_ENV per environment, 2 clusters)"
t0=$(date +%s%N)
push dev
push main
for _ in $(seq 1 1200); do
	[ "$(q "select count(*) from environments where sync_status='synced' and health='healthy' and synced_commit='$SHA'")" = 2 ] && break
	sleep 0.25
done
[ "$(q "select count(*) from environments where sync_status='synced' and synced_commit='$SHA'")" = 2 ] ||
	{ echo "memory: environments not synced: $(q 'select name, sync_status, health, message from environments')" >&2; exit 1; }
t1=$(date +%s%N)
n=$(q "select count(*) from inventory")
[ "$n" = $((2 * PER_ENV)) ] || { echo "memory: inventory holds $n objects, not $((2 * PER_ENV))" >&2; exit 1; }
sleep 7   # the drift watches list and settle; slipwayd trims its heap every 5 s
synced=$(status VmRSS)
for e in dev prod; do
	"$BUILD/slipway" --server "$URL" sync "$e" > "$W/sync-$e.out" 2>&1 ||
		{ echo "memory: slipway sync $e: $(cat "$W/sync-$e.out")" >&2; exit 1; }
done
for _ in $(seq 1 600); do
	[ "$(q "select count(*) from syncs where "trigger"='manual' and finished_at is not null")" -ge 2 ] && break
	sleep 0.25
done
sleep 7
after=$(status VmRSS)
[ -n "${MEMORY_SMAPS:-}" ] && awk '/^[0-9a-f]+-[0-9a-f]+ /{name=$6" "$2} /^Rss:/{rss[name]+=$2} END{for(n in rss) if (rss[n]>1000) print rss[n], n}' "/proc/$DPID/smaps" | sort -rn | head -15
[ -n "${MEMORY_GDB:-}" ] && gdb -p "$DPID" -batch -ex "call (void)malloc_stats()" >/dev/null 2>&1 && tail -12 "$W/daemon.log"
hwm=$(status VmHWM)
printf '  %-44s %6s MB\n' "VmRSS idle (config loaded, nothing synced)" "$idle"
printf '  %-44s %6s MB\n' "VmRSS both synced, drift watches running" "$synced"
printf '  %-44s %6s MB\n' "VmRSS after a manual sync of each" "$after"
printf '  %-44s %6s MB\n' "VmHWM (peak over the run)" "$hwm"
printf '  %-44s %6s ms\n' "first deploy of both, push to healthy" "$(((t1 - t0) / 1000000))"
result memory.idle_mb "$idle"
result memory.synced_mb "$synced"
result memory.after_mb "$after"
result memory.hwm_mb "$hwm"
ok=0
[ "$synced" -lt 64 ] && [ "$after" -lt 64 ] && ok=1
echo "  target < 64 MB managing them (steady VmRSS): $([ $ok = 1 ] && echo met || echo MISSED);" \
	"peak while both first deploys ran: $hwm MB"
exit $((1 - ok))
