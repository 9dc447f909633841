#!/bin/bash
# Stage containers are isolated (issue 11, defect 6), for real through Podman:
# a service the test binds on 0.0.0.0 of the host is reached by a push stage
# (runner.network: bridge) and by a pull request of a repository the server
# config trusts (runner.pr_network_repos), but neither through the host's
# address nor through the bridge's gateway by a fork's pull request or by a
# pull request of a repository it does not list (runner.pr_network: none).
# Every stage runs with no-new-privileges and only the default capabilities.
set -u
for lib in common webhook podman; do . "$SRC/tests/lib/$lib.sh"; done
T=$TMPDIR
FIX=$(shared_dir)/fixtures/github
export WEBHOOK_SECRET="It's a Secret to Everybody"

pid= svc=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	[ -n "$svc" ] && kill "$svc" 2>/dev/null
	sw_podman_stop "$T/podman"
}
trap cleanup EXIT

command -v podman >/dev/null 2>&1 || { echo "SKIP: podman is not installed"; exit 0; }
sw_podman_start "$T/podman" || fail "podman service"

# --- a service on 0.0.0.0 of the host: one line in $T/hits per connection ---
HOST_IP=$(ip -4 -o addr show scope global | awk '{ sub(/\/.*/, "", $4); print $4; exit }')
# no global address (a bare CI sandbox): the bridge gateway is the host too
[ -n "$HOST_IP" ] || HOST_IP=10.88.0.1
SVC_PORT=$(free_port)
: > "$T/hits"
python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16)
while True:
    c, a = s.accept(); open(sys.argv[2], "a").write(a[0] + "\n"); c.close()
' "$SVC_PORT" "$T/hits" &
svc=$!
wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$SVC_PORT" || fail "the host service did not start"
probe_hits=$(wc -l < "$T/hits")   # the readiness probe's own connection

# --- a repository whose stage probes it ------------------------------------
new_origin
cat > .slipway.yml <<YML
stages:
  - name: probe
    image: slipway-busybox:latest
    commands:
      - grep -E '^(CapEff|NoNewPrivs)' /proc/self/status
      - if nc -w 5 $HOST_IP $SVC_PORT </dev/null; then echo "host reached"; else echo "host blocked"; fi
      - if nc -w 5 10.88.0.1 $SVC_PORT </dev/null; then echo "gateway reached"; else echo "gateway blocked"; fi
YML
git add -A && git commit -qm "probe" && git push -q origin main
SHA=$(git rev-parse HEAD)
git push -q origin main:feature
cd "$T"

port=$(free_port)
URL=http://127.0.0.1:$port
cat > "$T/slipway.yaml" <<YAML
server: {listen: "127.0.0.1:$port", data_dir: data}
github: {api_url: "http://127.0.0.1:1", webhook_secret: {secret_env: WEBHOOK_SECRET}}
runner:
  backend: docker
  docker_socket: $SW_PODMAN_SOCK
  timeout: 2m
  pr_network_repos: [acme/shop]
repositories:
  - name: acme/shop
    url: file://$T/origin.git
  - name: acme/tools
    url: file://$T/origin.git
environments:
  - name: prod
    branch: main
    repository: acme/shop
YAML
start_daemon

# probe GUID: run the delivered run to its end; its probe stage's log.
probe() {
	local r st
	wait_until "test -n \"\$(run_of $1)\"" || fail "no run for $1"
	r=$(run_of "$1")
	st=$(wait_final "$r")
	[ "$st" = success ] || { tail -20 "$T/daemon.log"; fail "run $r ($1) ended $st: $(q "select reason from stages where run_id=$r")"; }
	q "select group_concat(data, '') from log_chunks where stage_id=(select id from stages where run_id=$r and name='probe')"
}
# CapEff: CHOWN DAC_OVERRIDE FOWNER FSETID SETGID SETUID (bits 0, 1, 3, 4, 6, 7)
CAPS="CapEff:	00000000000000db"

# 1. a fork's pull request, the repository trusted: no network at all
pr "$SHA" opened 1 | jq '.pull_request.head.repo.full_name="evil/shop"' > "$T/fork.json"
[ "$(deliver pull_request "$T/fork.json" guid-fork)" = 202 ] || fail "fork PR: $(cat "$T/resp")"
log=$(probe guid-fork)
echo "$log" | grep -qx "host blocked" || fail "a fork's stage reached the host: $log"
echo "$log" | grep -qx "gateway blocked" || fail "a fork's stage reached the gateway: $log"
echo "$log" | grep -qxF "$CAPS" || fail "fork stage capabilities: $log"
echo "$log" | grep -qxF "NoNewPrivs:	1" || fail "fork stage NoNewPrivs: $log"
ok "a fork's PR stage reaches neither the host's address nor the gateway; CapEff is the short list, NoNewPrivs 1"

# 2. a pull request of a repository the config does not list: the same
pr "$SHA" opened 2 acme/tools > "$T/tools.json"
[ "$(deliver pull_request "$T/tools.json" guid-tools)" = 202 ] || fail "tools PR: $(cat "$T/resp")"
log=$(probe guid-tools)
echo "$log" | grep -qx "host blocked" || fail "an untrusted repository's PR reached the host: $log"
echo "$log" | grep -qx "gateway blocked" || fail "an untrusted repository's PR reached the gateway: $log"
[ "$(wc -l < "$T/hits")" = "$probe_hits" ] || fail "the host service saw a PR stage: $(cat "$T/hits")"
ok "a PR of a repository not in runner.pr_network_repos is cut off too; the service saw nothing"

# 3. a same-repository PR of the trusted repository, and a push: the network
pr "$SHA" opened 3 > "$T/own.json"
[ "$(deliver pull_request "$T/own.json" guid-own)" = 202 ] || fail "own PR: $(cat "$T/resp")"
log=$(probe guid-own)
echo "$log" | grep -qx "host reached" || fail "the trusted repository's PR could not reach the host: $log"
jq --arg sha "$SHA" '.ref="refs/heads/main" | .before="0000000000000000000000000000000000000000"
	| .after=$sha | .head_commit.id=$sha | .repository.full_name="acme/shop"' \
	"$FIX/push-branch.json" > "$T/push.json"
[ "$(deliver push "$T/push.json" guid-push)" = 202 ] || fail "push: $(cat "$T/resp")"
log=$(probe guid-push)
echo "$log" | grep -qx "host reached" || fail "a push stage could not reach the host: $log"
echo "$log" | grep -qx "gateway reached" || fail "a push stage could not reach the gateway: $log"
echo "$log" | grep -qxF "$CAPS" || fail "push stage capabilities: $log"
[ "$(wc -l < "$T/hits")" -ge $((probe_hits + 3)) ] || fail "the host service saw $(cat "$T/hits")"
ok "a trusted repository's PR and a push stage still reach the host service"

stop_daemon
