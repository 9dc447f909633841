#!/bin/bash
# contrib/demo.sh - slipway end to end on one machine (run by `make demo`).
#
# Creates a demo repository with a .slipway.yml, starts a private Podman
# service (or falls back to the local runner), a stand-in for GitHub's and
# Slack's APIs that records what it receives, and slipwayd; then plays a
# pull request as a signed GitHub webhook and shows the stages running in
# containers, the commit statuses, the PR comment and the Slack message.
# slipwayd is left running; the last lines say where and how to stop it.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$SRC/build}
D=${DEMO_DIR:-$SRC/demo}
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/podman.sh"
. "$SRC/tests/lib/recorder.sh"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# a previous demo's processes and files
if [ -f "$D/slipwayd.pid" ]; then kill "$(cat "$D/slipwayd.pid")" 2>/dev/null || true; fi
sw_recorder_stop "$D/recorder" 2>/dev/null || true
sw_podman_stop "$D/podman" 2>/dev/null || true
rm -rf "$D"
mkdir -p "$D"

say "Container runner"
RUNNER=local
if command -v podman >/dev/null && sw_podman_start "$D/podman" >/dev/null 2>"$D/podman-start.log"; then
	RUNNER=docker
	echo "Podman's Docker-compatible API at $SW_PODMAN_SOCK (image slipway-busybox:latest)"
else
	echo "Podman cannot run here: stages run as local processes (unisolated)"
fi

say "A stand-in for GitHub's and Slack's APIs (records what slipway sends)"
export GH_TOKEN=ghp_demo_token SLACK_URL=placeholder
export WEBHOOK_SECRET=demo-webhook-secret NPM_TOKEN=npm_demo_secret_value
sw_recorder_start "$D/recorder" --token "$GH_TOKEN" >/dev/null
export SLACK_URL=$SW_RECORDER_URL/slack/webhook
echo "listening at $SW_RECORDER_URL"

say "A repository: acme/shop with a .slipway.yml"
git init -q --bare "$D/origin.git"
git clone -q "$D/origin.git" "$D/work" 2>/dev/null
(
	cd "$D/work"
	git config user.email dev@example.com
	git config user.name "Dana Developer"
	git checkout -q -b main
	cat > .slipway.yml <<'YML'
stages:
  - name: lint
    image: slipway-busybox:latest
    commands:
      - echo "checking shell scripts in $(pwd)"
      - for f in *.sh; do sh -n "$f" && echo "ok $f"; done
  - name: unit
    image: slipway-busybox:latest
    secrets: [NPM_TOKEN]
    commands:
      - 'echo "registry token: $NPM_TOKEN (masked in stored logs)"'
      - sh ./test.sh
YML
	printf '#!/bin/sh\necho "hello from acme/shop"\n' > app.sh
	printf '#!/bin/sh\nout=$(sh ./app.sh)\n[ "$out" = "hello from acme/shop" ] && echo "1 passed, 0 failed"\n' > test.sh
	git add -A && git commit -qm "shop: first version" && git push -q origin main
	git checkout -q -b feature/greeting
	sed -i 's/hello from/greetings from/' app.sh test.sh
	git commit -qam "Friendlier greeting" && git push -q origin feature/greeting
)
HEAD_SHA=$(git -C "$D/work" rev-parse HEAD)
echo "branch feature/greeting at ${HEAD_SHA:0:12}"

say "slipwayd"
PORT=${SLIPWAY_DEMO_PORT:-$(free_port)}
URL=http://127.0.0.1:$PORT
cat > "$D/slipway.yaml" <<YAML
server:
  listen: 127.0.0.1:$PORT
  public_url: $URL
  data_dir: data
github:
  api_url: $SW_RECORDER_URL
  webhook_secret: {secret_env: WEBHOOK_SECRET}
  token: {secret_env: GH_TOKEN}
slack:
  webhook_url: {secret_env: SLACK_URL}
runner:
  backend: $RUNNER
  docker_socket: ${SW_PODMAN_SOCK:-/var/run/docker.sock}
  network: none
secrets:
  NPM_TOKEN: {secret_env: NPM_TOKEN}
repositories:
  - name: acme/shop
    url: file://$D/origin.git
environments:
  - name: dev
    branch: dev
  - name: prod
    branch: main
YAML
"$BUILD/slipwayd" -c "$D/slipway.yaml" --check
setsid "$BUILD/slipwayd" -c "$D/slipway.yaml" > "$D/slipwayd.log" 2>&1 < /dev/null &
echo $! > "$D/slipwayd.pid"
wait_for curl -sf "$URL/readyz" || { tail -20 "$D/slipwayd.log"; fail "slipwayd did not start"; }
echo "slipwayd $(curl -s "$URL/healthz" | jq -r .version) is ready at $URL"

say "GitHub sends: pull request #7 opened (a signed webhook)"
jq --arg sha "$HEAD_SHA" '.action="opened" | .number=7 | .pull_request.number=7
	| .pull_request.head.sha=$sha | .pull_request.head.ref="feature/greeting"
	| .pull_request.base.ref="main" | .pull_request.draft=false
	| .pull_request.title="Friendlier greeting" | .pull_request.user.login="dana"
	| .repository.full_name="acme/shop"' \
	"$(shared_dir)/fixtures/github/pull_request-opened.json" > "$D/pr.json"
sig=$(openssl dgst -sha256 -hmac "$WEBHOOK_SECRET" "$D/pr.json" | sed 's/^.*= //')
curl -s -H "X-GitHub-Event: pull_request" -H "X-GitHub-Delivery: demo-$(date +%s)" \
	-H "X-Hub-Signature-256: sha256=$sig" -H 'Content-Type: application/json' \
	--data-binary "@$D/pr.json" "$URL/hooks/github" | jq -c .

q() { sqlite3 -cmd '.timeout 5000' "$D/data/slipway.db" "$1"; }
for i in $(seq 1 600); do
	st=$(q "select status from runs order by id desc limit 1")
	case "$st" in queued|running|"") sleep 0.1 ;; *) break ;; esac
done
RUN=$(q "select id from runs order by id desc limit 1")
say "Run $RUN: $st"
q "select '  ' || name || ': ' || status || ' (exit ' || exit_code || ', ' || (finished_at - started_at) || ' ms)' from stages where run_id=$RUN order by idx"
echo "  log of stage unit, as stored:"
q "select group_concat(data, '') from log_chunks where stage_id=(select id from stages where run_id=$RUN and name='unit')" | sed 's/^/    | /'

say "What GitHub and Slack received (from the stand-in)"
sleep 2
python3 - "$D/recorder/requests.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    b = r.get("body") or {}
    if r["route"] == "github.status":
        print("  %s %-40s %-8s %s" % (r["status"], "status " + b["context"], b["state"], b.get("description", "")))
    elif r["route"].startswith("github.comment"):
        print("  %s %s on PR: %s..." % (r["status"], r["route"], b.get("body", "")[:60].replace("\n", " ")))
    elif r["route"] == "slack.webhook":
        print("  %s slack message: %s" % (r["status"], b.get("text", "")[:80]))
PY

say "slipwayd keeps running"
echo "  server:      $URL   (/healthz, /readyz, POST /hooks/github)"
echo "  config:      $D/slipway.yaml"
echo "  log:         $D/slipwayd.log"
echo "  database:    $D/data/slipway.db"
echo "  stop it:     kill \$(cat $D/slipwayd.pid)"
