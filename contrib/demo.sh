#!/bin/bash
# contrib/demo.sh - slipway end to end on one machine (run by `make demo`).
#
# Creates a demo repository (app, Kubernetes manifests, a .slipway.yml with
# a static-analysis stage and an acceptance stage), starts a private Podman
# service (or falls back to the local runner), two test Kubernetes API
# servers standing in for the dev and prod clusters, a stand-in for
# GitHub's and Slack's APIs that records what it receives, and slipwayd.
# Then it plays, as signed GitHub webhooks: a pull request (stages in
# containers, statuses, PR comment, Slack), a merge to dev (deploy, health,
# acceptance stage), a merge to main (prod); edits a live object out of band
# so self-heal can be seen; and leaves slipwayd running with its address.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$SRC/build}
D=${DEMO_DIR:-$SRC/demo}
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/podman.sh"
. "$SRC/tests/lib/recorder.sh"
. "$SRC/tests/lib/kubeapi.sh"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# a previous demo's processes and files (`contrib/demo.sh stop`: only that)
if [ -f "$D/slipwayd.pid" ]; then kill "$(cat "$D/slipwayd.pid")" 2>/dev/null || true; fi
sw_recorder_stop "$D/recorder" 2>/dev/null || true
sw_kubeapi_stop "$D/dev" 2>/dev/null || true
sw_kubeapi_stop "$D/prod" 2>/dev/null || true
sw_podman_stop "$D/podman" 2>/dev/null || true
rm -rf "$D"
if [ "${1:-}" = stop ]; then
	echo "demo stopped and $D removed"
	exit 0
fi
mkdir -p "$D"

say "Container runner"
RUNNER=local
if command -v podman >/dev/null && sw_podman_start "$D/podman" >/dev/null 2>"$D/podman-start.log"; then
	RUNNER=docker
	echo "Podman's Docker-compatible API at $SW_PODMAN_SOCK (image slipway-busybox:latest)"
else
	echo "Podman cannot run here: stages run as local processes (unisolated)"
fi

say "Two clusters: test Kubernetes API servers for dev and prod"
sw_kubeapi_start "$D/dev" --ready-delay-ms 500 >/dev/null
DEV=$SW_KUBEAPI_URL
sw_kubeapi_start "$D/prod" --ready-delay-ms 500 >/dev/null
PROD=$SW_KUBEAPI_URL
echo "dev:  $DEV   (kubectl --kubeconfig $D/dev/kubeconfig ...)"
echo "prod: $PROD   (kubectl --kubeconfig $D/prod/kubeconfig ...)"
kdev() { kubectl --kubeconfig "$D/dev/kubeconfig" "$@"; }

say "A stand-in for GitHub's and Slack's APIs (records what slipway sends)"
export GH_TOKEN=ghp_demo_token SLACK_URL=placeholder
export WEBHOOK_SECRET=demo-webhook-secret NPM_TOKEN=npm_demo_secret_value
export SLIPWAY_TOKEN=demo-api-token
sw_recorder_start "$D/recorder" --token "$GH_TOKEN" >/dev/null
export SLACK_URL=$SW_RECORDER_URL/slack/webhook
echo "listening at $SW_RECORDER_URL"

say "A repository: acme/shop with manifests and a .slipway.yml"
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
    when: {event: [pull_request, push]}
    secrets: [NPM_TOKEN]
    commands:
      - 'echo "registry token: $NPM_TOKEN (masked in stored logs)"'
      - sh ./test.sh
  - name: acceptance
    image: slipway-busybox:latest
    when: {event: deploy, environment: [dev]}
    commands:
      - echo "acceptance tests of $SLIPWAY_COMMIT on $SLIPWAY_ENVIRONMENT ($SLIPWAY_KUBE_SERVER)"
      - sh ./test.sh
YML
	mkdir -p deploy
	cp "$(shared_dir)"/fixtures/manifests/guestbook/*.yaml deploy/
	printf '#!/bin/sh\necho "hello from acme/shop"\n' > app.sh
	printf '#!/bin/sh\nout=$(sh ./app.sh)\n[ "$out" = "hello from acme/shop" ] && echo "1 passed, 0 failed"\n' > test.sh
	git add -A && git commit -qm "shop: first version" && git push -q origin main
	git push -q origin main:dev
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
  api_token: {secret_env: SLIPWAY_TOKEN}
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
    cluster: {kubeconfig: $D/dev/kubeconfig, namespace: default}
    manifests: [deploy]
    self_heal: true
    rollback_on_failure: true
    health_timeout: 30s
  - name: prod
    branch: main
    cluster: {kubeconfig: $D/prod/kubeconfig, namespace: default}
    manifests: [deploy]
    self_heal: true
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
	| .repository.full_name="acme/shop" | .pull_request.head.repo.full_name="acme/shop"' \
	"$(shared_dir)/fixtures/github/pull_request-opened.json" > "$D/pr.json"
sig=$(openssl dgst -sha256 -hmac "$WEBHOOK_SECRET" "$D/pr.json" | sed 's/^.*= //')
curl -s -H "X-GitHub-Event: pull_request" -H "X-GitHub-Delivery: demo-$(date +%s)" \
	-H "X-Hub-Signature-256: sha256=$sig" -H 'Content-Type: application/json' \
	--data-binary "@$D/pr.json" "$URL/hooks/github" | jq -c .

export SLIPWAY_SERVER=$URL
SW=$BUILD/slipway
# wait_run: until the newest run is final; prints its id
wait_run() {
	local i id st
	for i in $(seq 1 900); do
		id=$("$SW" --json runs --limit 1 | jq -r '.runs[0].id // empty')
		st=$("$SW" --json runs --limit 1 | jq -r '.runs[0].status // empty')
		case "$st" in queued|running|"") sleep 0.2 ;; *) echo "$id"; return 0 ;; esac
	done
	return 1
}
push() {   # push BRANCH SHA: GitHub's push webhook
	jq --arg ref "refs/heads/$1" --arg sha "$2" '.ref=$ref | .after=$sha | .head_commit.id=$sha
		| .head_commit.message="Merge feature/greeting" | .repository.full_name="acme/shop"
		| .deleted=false' "$(shared_dir)/fixtures/github/push-branch.json" > "$D/push.json"
	sig=$(openssl dgst -sha256 -hmac "$WEBHOOK_SECRET" "$D/push.json" | sed 's/^.*= //')
	curl -s -H "X-GitHub-Event: push" -H "X-GitHub-Delivery: demo-push-$1-$(date +%s%N)" \
		-H "X-Hub-Signature-256: sha256=$sig" -H 'Content-Type: application/json' \
		--data-binary "@$D/push.json" "$URL/hooks/github" | jq -c .
}

RUN=$(wait_run)
say "Run $RUN (the pull request), as the CLI shows it"
"$SW" run "$RUN"
echo
"$SW" logs "$RUN" unit | sed 's/^/    | /'

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

say "The PR is merged into dev: GitHub sends a push"
git -C "$D/work" push -q origin feature/greeting:dev
push dev "$HEAD_SHA"
RUN=$(wait_run)
"$SW" run "$RUN"
echo
"$SW" logs "$RUN" deploy | sed 's/^/    | /'
echo "  live in the dev cluster:"
kdev get deployments,services | sed 's/^/    /'

say "Someone edits a live object: kubectl scale to 5 replicas"
kdev patch deployment guestbook-ui --type=merge -p '{"spec":{"replicas":5}}' | sed 's/^/    /'
for i in $(seq 1 50); do
	[ "$(kdev get deployment guestbook-ui -o jsonpath='{.spec.replicas}')" = 1 ] && break
	sleep 0.1
done
echo "  replicas now: $(kdev get deployment guestbook-ui -o jsonpath='{.spec.replicas}') (self-healed)"
curl -s "$URL/api/v1/environments/dev/drift?limit=1" | jq -r '.drift[0] // .events[0] // . | "  drift event: \(.kind) \(.name) \(.fields) changed by \(.manager), \(.action)"' 2>/dev/null || true

say "dev is merged into main: prod is deployed"
git -C "$D/work" push -q origin feature/greeting:main
push main "$HEAD_SHA"
RUN=$(wait_run)
"$SW" run "$RUN"

say "slipway status"
"$SW" status

say "slipwayd keeps running"
echo "  status page: $URL/"
echo "  server:      $URL   (/api/v1/..., /metrics, /healthz, POST /hooks/github)"
echo "  CLI:         SLIPWAY_SERVER=$URL SLIPWAY_TOKEN=$SLIPWAY_TOKEN $BUILD/slipway status"
echo "  clusters:    kubectl --kubeconfig $D/dev/kubeconfig get all   (and $D/prod/kubeconfig)"
echo "  config:      $D/slipway.yaml"
echo "  log:         $D/slipwayd.log"
echo "  database:    $D/data/slipway.db"
echo "  stop it:     $0 stop   (slipwayd, both clusters, the GitHub/Slack stand-in, Podman)"
