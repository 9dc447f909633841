#!/bin/bash
# Terraform in the pipeline, end to end with the real terraform binary and the
# local runner: a PR that adds a resource -> a terraform-dev stage plans it,
# status slipway/terraform/dev success, the PR comment lists the address with
# "1 to add"; a PR that removes one -> the destroy is called out; a merge ->
# the `infra` stage applies (state changed, outputs recorded, infra_status)
# before the `deploy` stage syncs the manifests into a test API server; an
# upstream output changed out of band -> drift event, healed (heal: auto);
# the same change in prod (heal: report, infra only, no cluster) -> drift
# event reported once on Slack and through the API, nothing applied;
# a broken module -> the PR's status fails with Terraform's message; merged ->
# the infra stage fails with it, nothing applied, the manifests not synced.
# With SW_TF_CONTAINER=1 (59-terraform-container.sh) all of it runs again
# with every Terraform command in a container (terraform.image) on Podman.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/webhook.sh"
. "$SRC/tests/lib/recorder.sh"
. "$SRC/tests/lib/kubeapi.sh"
if ! command -v terraform >/dev/null 2>&1; then
	echo "SKIP: terraform is not on PATH"
	exit 0
fi
T=$TMPDIR
SHARED=$(shared_dir)
FIX=$SHARED/fixtures/github
export WEBHOOK_SECRET=tf-secret GH_TOKEN=ghp_tf_token SLACK_URL=placeholder
export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1

pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	sw_kubeapi_stop "$T/dev"
	sw_recorder_stop "$T/rec"
	[ -n "${SW_TF_CONTAINER:-}" ] && sw_podman_stop "$T/podman"
}
trap cleanup EXIT
RUNNER="runner: {backend: local}"
if [ -n "${SW_TF_CONTAINER:-}" ]; then
	. "$SRC/tests/lib/podman.sh"
	command -v podman >/dev/null 2>&1 || { echo "SKIP: podman is not installed"; exit 0; }
	sw_podman_start "$T/podman" || fail "podman"
	sw_terraform_image "$SW_PODMAN_SOCK" || fail "terraform image"
	# stages stay local; Terraform alone runs in containers, seeing the
	# state directory through terraform.mounts
	RUNNER="runner: {backend: local, docker_socket: $SW_PODMAN_SOCK}
terraform: {image: slipway-terraform:latest, mounts: [$T/state]}"
fi
sw_recorder_start "$T/rec" --token "$GH_TOKEN" || fail "recorder"
export SLACK_URL=$SW_RECORDER_URL/slack/webhook
sw_kubeapi_start "$T/dev" || fail "dev cluster"
kdev() { kubectl --kubeconfig "$T/dev/kubeconfig" "$@"; }

# state lives outside the repository; an "upstream" state whose output the
# dev root module reads through terraform_remote_state
mkdir -p "$T/state" "$T/upstream"
cat > "$T/upstream/main.tf" <<TF
terraform {
  backend "local" { path = "$T/state/upstream.tfstate" }
}
variable "version_out" { type = string }
output "version" { value = var.version_out }
TF
up() { (cd "$T/upstream" && terraform init -input=false -no-color >/dev/null 2>&1 && terraform apply -input=false -no-color -auto-approve -var "version_out=$1" >/dev/null 2>&1) || fail "upstream apply $1"; }
up v1

git init -q --bare "$T/origin.git"
git clone -q "$T/origin.git" "$T/work" 2>/dev/null
cd "$T/work"
git config user.email dev@example.com; git config user.name Dev
git checkout -q -b dev
mkdir -p infra/modules/app infra/environment/dev deploy
cat > infra/modules/app/main.tf <<'TF'
variable "name" {
  type = string
}

resource "terraform_data" "app" {
  input = var.name
}

output "id" {
  value = terraform_data.app.id
}
TF
cat > infra/environment/dev/main.tf <<TF
terraform {
  backend "local" {
    path = "$T/state/dev.tfstate"
  }
}

data "terraform_remote_state" "up" {
  backend = "local"
  config = {
    path = "$T/state/upstream.tfstate"
  }
}

module "app" {
  source = "../../modules/app"
  name   = "dev"
}

resource "terraform_data" "web" {
  input = data.terraform_remote_state.up.outputs.version
}

output "app_id" {
  value = module.app.id
}

output "upstream_version" {
  value = data.terraform_remote_state.up.outputs.version
}

output "db_password" {
  value     = "e2e-hunter2"
  sensitive = true
}
TF
mkdir -p infra/environment/prod
cat > infra/environment/prod/main.tf <<TF
terraform {
  backend "local" {
    path = "$T/state/prod.tfstate"
  }
}

data "terraform_remote_state" "up" {
  backend = "local"
  config = {
    path = "$T/state/upstream.tfstate"
  }
}

resource "terraform_data" "web" {
  input = data.terraform_remote_state.up.outputs.version
}

output "upstream_version" {
  value = data.terraform_remote_state.up.outputs.version
}
TF
cat > deploy/config.yaml <<'YML'
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  release: "one"
YML
git add -A && git commit -qm "infra and manifests" && git push -q origin dev && git push -q origin dev:main
C1=$(git rev-parse HEAD)
cd "$T"

port=$(free_port)
URL=http://127.0.0.1:$port
cat > "$T/slipway.yaml" <<YAML
server: {listen: 127.0.0.1:$port, public_url: $URL, data_dir: data}
github:
  api_url: $SW_RECORDER_URL
  webhook_secret: {secret_env: WEBHOOK_SECRET}
  token: {secret_env: GH_TOKEN}
slack: {webhook_url: {secret_env: SLACK_URL}}
$RUNNER
repositories:
  - {name: acme/infra, url: "file://$T/origin.git"}
environments:
  - name: dev
    branch: dev
    cluster: {kubeconfig: $T/dev/kubeconfig, namespace: default}
    manifests: [deploy]
    infra:
      modules: [infra/environment/dev]
      heal: auto
      drift_interval: 2s
      timeout: 2m
  - name: prod
    branch: main
    infra:
      modules: [infra/environment/prod]
      heal: report
      drift_interval: 2s
      timeout: 2m
YAML
"$BUILD/slipwayd" -c "$T/slipway.yaml" 2>> "$T/daemon.log" &
pid=$!
wait_for curl -sf "$URL/readyz" || { tail -30 "$T/daemon.log"; fail "daemon did not start"; }

stages() { q "select group_concat(s, ',') from (select name||':'||status as s from stages where run_id=$1 order by id)"; }
stage_log() { q "select group_concat(data,'') from log_chunks where stage_id=(select id from stages where run_id=$1 and name='$2')"; }
state_md5() { md5sum "$T/state/dev.tfstate" | cut -d' ' -f1; }

# 1. merge to dev: infra applied first, then the manifests synced
push_branch dev "$C1" m1 acme/infra
wait_until 'test -n "$(run_of m1)"'; R1=$(run_of m1)
st=$(wait_final "$R1")
[ "$st" = success ] || { tail -40 "$T/daemon.log"; fail "run $R1: $st $(q "select name||':'||status||':'||coalesce(reason,'') from stages where run_id=$R1")"; }
[ "$(stages "$R1")" = "infra:success,deploy:success" ] || fail "stages of $R1: $(stages "$R1")"
[ "$(q "select (select finished_at from stages where run_id=$R1 and name='infra') <= (select started_at from stages where run_id=$R1 and name='deploy')")" = 1 ] || fail "deploy started before infra finished"
grep -q '"terraform_data"' "$T/state/dev.tfstate" || fail "no state written"
kdev get configmap app-config -o jsonpath='{.data.release}' | grep -qx one || fail "manifests not synced"
q "select infra_status from environments where name='dev'" | grep -q "^applied ${C1:0:7}: 2 added, 0 changed, 0 destroyed" || fail "infra_status: $(q "select infra_status from environments where name='dev'")"
q "select value from kv where key='infra:outputs:dev'" | grep -q '"upstream_version"' || fail "outputs not recorded: $(q "select key, value from kv")"
stage_log "$R1" infra | grep -q '\$ terraform apply' || fail "apply output not in the log"
ok "merge: infra applied (2 added, outputs recorded), then the manifests synced"

# the outputs are on the sync, sensitive ones never stored or shown
curl -sf "$URL/api/v1/environments/dev/history" > "$T/hist.json" || fail "GET history"
jq -e --argjson run "$R1" '.syncs[] | select(.run_id == $run) | .infra_outputs["infra/environment/dev"]
	| .upstream_version == "v1" and .db_password == "(sensitive)" and (.app_id | type) == "string"' "$T/hist.json" >/dev/null \
	|| fail "history lacks the outputs: $(cat "$T/hist.json")"
S1=$(jq -r --argjson run "$R1" '.syncs[] | select(.run_id == $run) | .id' "$T/hist.json")
curl -sf "$URL/api/v1/environments/dev/history/$S1" | jq -e '.infra_outputs["infra/environment/dev"].upstream_version == "v1"' >/dev/null \
	|| fail "sync $S1 lacks the outputs"
curl -sf "$URL/environments/dev" > "$T/env.html" || fail "GET the environment page"
grep -q '3 Terraform outputs' "$T/env.html" && grep -q '(sensitive)' "$T/env.html" || fail "the page does not show the outputs"
for f in "$T/env.html" "$T/hist.json" "$T"/data/slipway.db*; do
	grep -qa e2e-hunter2 "$f" && fail "the sensitive output is in $f"
done
stage_log "$R1" infra | grep -q '"db_password":"(sensitive)"' || fail "the log lacks the redacted outputs"
ok "outputs recorded with the sync (API history and page), the sensitive one as (sensitive) and nowhere in the database"

# prod (infra only, heal: report) applied from main
push_branch main "$C1" mp1 acme/infra
wait_until 'test -n "$(run_of mp1)"'; RP=$(run_of mp1)
[ "$(wait_final "$RP")" = success ] || fail "prod run $RP: $(stages "$RP")"
[ "$(stages "$RP")" = "infra:success" ] || fail "stages of prod run $RP: $(stages "$RP")"
grep -q '"terraform_data"' "$T/state/prod.tfstate" || fail "no prod state written"
ok "merge to main: prod's infra applied (no cluster: the infra stage alone)"

# 2. a PR adding a resource: plan, status success, comment lists it with 1 to add
cat > "$T/work/infra/environment/dev/extra.tf" <<'TF'
resource "terraform_data" "extra" {
  input = "added by a pull request"
}
TF
P1=$(branch_commit feat-add dev "add a resource")
before=$(state_md5)
open_pr 11 "$P1" feat-add dev acme/infra p1
wait_until 'test -n "$(run_of p1)"'; RP1=$(run_of p1)
[ "$(wait_final "$RP1")" = success ] || fail "PR run $RP1: $(q "select name||':'||status||':'||coalesce(reason,'') from stages where run_id=$RP1")"
[ "$(stages "$RP1")" = "terraform-dev:success" ] || fail "PR stages: $(stages "$RP1")"
for i in $(seq 1 $(sw_slow_ticks 20)); do [ "$(comment_has "$RP1" "'terraform_data.extra' in b and '1 to add' in b")" -ge 1 ] && break; sleep 0.1; done
[ "$(comment_has "$RP1" "'terraform_data.extra' in b and '1 to add' in b")" -ge 1 ] || fail "the PR comment lacks the plan: $(tail -c 3000 "$T/rec/requests.jsonl")"
[ "$(sw_recorder_count "$T/rec" "r['route']=='github.status' and r['body']['context']=='slipway/terraform/dev' and r['body']['state']=='success' and r['path'].endswith('$P1')")" -ge 1 ] || fail "no slipway/terraform/dev success status"
[ "$(state_md5)" = "$before" ] || fail "a PR plan changed the state"
stage_log "$RP1" terraform-dev | grep -q '\$ terraform plan' || fail "plan output not in the stage log"
stage_log "$RP1" terraform-dev | grep -q 'terraform_data.extra will be created' || fail "plan text not in the stage log"
# (drift checks keep making plan files meanwhile: all must be owner-only)
[ -z "$(find "$T/data/terraform/plans" -type f ! -perm 600)" ] || fail "plan files not 0600: $(ls -l "$T/data/terraform/plans")"
ok "PR adding a resource: planned, status success, comment lists terraform_data.extra with 1 to add"

# 3. a PR removing one: the destroy is called out
(cd "$T/work" && git checkout -q dev) || fail "checkout dev"
python3 - "$T/work/infra/environment/dev/main.tf" <<'PY'
import re, sys
p = sys.argv[1]; s = open(p).read()
s = re.sub(r'resource "terraform_data" "web" \{.*?\n\}\n', '', s, flags=re.S)
open(p, "w").write(s)
PY
P2=$(branch_commit feat-remove dev "remove web")
open_pr 12 "$P2" feat-remove dev acme/infra p2
wait_until 'test -n "$(run_of p2)"'; RP2=$(run_of p2)
[ "$(wait_final "$RP2")" = success ] || fail "PR run $RP2: $(q "select name||':'||status||':'||coalesce(reason,'') from stages where run_id=$RP2")"
for i in $(seq 1 $(sw_slow_ticks 20)); do [ "$(comment_has "$RP2" "'1 to destroy' in b and 'destructive' in b and 'terraform_data.web' in b")" -ge 1 ] && break; sleep 0.1; done
[ "$(comment_has "$RP2" "'1 to destroy' in b and 'destructive' in b and 'terraform_data.web' in b")" -ge 1 ] || fail "the destroy is not called out"
ok "PR removing a resource: the destroy of terraform_data.web is called out"

# 4. merge of the first PR (with a manifest change): applied, state changed, then synced
(cd "$T/work" && git checkout -q dev && git merge -q --ff-only feat-add && sed -i 's/"one"/"two"/' deploy/config.yaml \
	&& git commit -qam "release two" && git push -q origin dev) || fail "merge"
C2=$(git -C "$T/work" rev-parse HEAD)
before=$(state_md5)
push_branch dev "$C2" m2 acme/infra
wait_until 'test -n "$(run_of m2)"'; R2=$(run_of m2)
[ "$(wait_final "$R2")" = success ] || fail "run $R2: $(q "select name||':'||status||':'||coalesce(reason,'') from stages where run_id=$R2")"
[ "$(state_md5)" != "$before" ] || fail "state not changed"
grep -q '"extra"' "$T/state/dev.tfstate" || fail "terraform_data.extra not in the state"
kdev get configmap app-config -o jsonpath='{.data.release}' | grep -qx two || fail "manifests not synced after the apply"
q "select infra_status from environments where name='dev'" | grep -q "^applied ${C2:0:7}: 1 added" || fail "infra_status: $(q "select infra_status from environments where name='dev'")"
ok "merge: terraform_data.extra applied, state changed, then the manifests synced"

# 5. drift: the upstream output changed out of band -> drift event, healed
prod_before=$(md5sum "$T/state/prod.tfstate" | cut -d' ' -f1)
up v2
wait_until 'test "$(q "select count(*) from drift_events where environment='\''dev'\'' and api_version='\''terraform'\'' and action='\''healed'\''")" -ge 1' 60 \
	|| { tail -20 "$T/daemon.log"; fail "no healed terraform drift event: $(q "select * from drift_events")"; }
q "select kind||' '||name from drift_events where api_version='terraform'" | grep -qx "output upstream_version" || fail "drift events: $(q "select kind, name from drift_events")"
wait_until 'grep -q "\"v2\"" "$T/state/dev.tfstate"' 60 || fail "not healed: the state does not hold v2"
for i in $(seq 1 $(sw_slow_ticks 20)); do [ "$(sw_recorder_count "$T/rec" "r['route']=='slack.webhook' and 'upstream_version' in str(r['body'])")" -ge 1 ] && break; sleep 0.1; done
[ "$(sw_recorder_count "$T/rec" "r['route']=='slack.webhook' and 'upstream_version' in str(r['body'])")" -ge 1 ] || fail "no Slack drift message"
ok "drift: upstream output changed out of band -> drift event, Slack told, healed by an apply"

# 5b. the same change seen by prod (heal: report): recorded and reported, not applied
prod_events() { q "select count(*) from drift_events where environment='prod' and api_version='terraform'"; }
wait_until 'test "$(prod_events)" -ge 1' 60 || { tail -20 "$T/daemon.log"; fail "no prod drift event: $(q "select * from drift_events")"; }
[ "$(q "select kind||' '||namespace||' '||name||' '||action from drift_events where environment='prod'")" = "output infra/environment/prod upstream_version reported" ] \
	|| fail "prod drift events: $(q "select * from drift_events where environment='prod'")"
for i in $(seq 1 $(sw_slow_ticks 20)); do [ "$(sw_recorder_count "$T/rec" "r['route']=='slack.webhook' and 'infra/environment/prod' in str(r['body']) and 'reported only' in str(r['body'])")" -ge 1 ] && break; sleep 0.1; done
[ "$(sw_recorder_count "$T/rec" "r['route']=='slack.webhook' and 'infra/environment/prod' in str(r['body']) and 'reported only' in str(r['body'])")" -ge 1 ] || fail "no Slack message for prod's drift"
curl -sf "$URL/api/v1/environments/prod/drift" > "$T/drift.json" || fail "GET prod drift"
[ "$(jq -r '[.events[] | select(.api_version=="terraform" and .kind=="output" and .name=="upstream_version" and .action=="reported")] | length' "$T/drift.json")" = 1 ] \
	|| fail "the API does not show prod's drift: $(cat "$T/drift.json")"
curl -sf "$URL/api/v1/environments/prod" > "$T/prod.json" || fail "GET prod"
jq -e '.drift_latest.action == "reported" and (.infra_status | startswith("drift: 1 resource in infra/environment/prod"))' "$T/prod.json" >/dev/null \
	|| fail "prod environment: $(cat "$T/prod.json")"
# later checks find the same drift: not recorded or sent again, still nothing applied
wait_until 'test "$(grep -c "infra.drift_unchanged.*env=prod" "$T/daemon.log")" -ge 2' 60 || fail "no further prod drift checks: $(tail -20 "$T/daemon.log")"
[ "$(prod_events)" = 1 ] || fail "prod's drift recorded again: $(prod_events) events"
[ "$(sw_recorder_count "$T/rec" "r['route']=='slack.webhook' and 'infra/environment/prod' in str(r['body'])")" = 1 ] || fail "prod's drift sent to Slack more than once"
[ "$(md5sum "$T/state/prod.tfstate" | cut -d' ' -f1)" = "$prod_before" ] || fail "prod's state changed: something was applied"
grep -q '"v1"' "$T/state/prod.tfstate" || fail "prod's state lost v1"
ok "drift in prod (heal: report): one drift event, reported on Slack and through the API, nothing applied"

# 6. a broken module merged: failure with Terraform's message, nothing applied, not synced
cat > "$T/work/infra/environment/dev/broken.tf" <<'TF'
resource "terraform_data" "bad" {
  input = terraform_data.nowhere.id
}
TF
sed -i 's/"two"/"three"/' "$T/work/deploy/config.yaml"
C3=$(branch_commit feat-broken dev "broken module")
open_pr 13 "$C3" feat-broken dev acme/infra p3
wait_until 'test -n "$(run_of p3)"'; RP3=$(run_of p3)
[ "$(wait_final "$RP3")" = failure ] || fail "PR run $RP3 should fail: $(stages "$RP3")"
for i in $(seq 1 $(sw_slow_ticks 20)); do [ "$(sw_recorder_count "$T/rec" "r['route']=='github.status' and r['body']['context']=='slipway/terraform/dev' and r['body']['state']=='failure' and 'Reference to undeclared resource' in r['body']['description']")" -ge 1 ] && break; sleep 0.1; done
[ "$(sw_recorder_count "$T/rec" "r['route']=='github.status' and r['body']['context']=='slipway/terraform/dev' and r['body']['state']=='failure' and 'Reference to undeclared resource' in r['body']['description']")" -ge 1 ] || fail "no failure status with terraform's message"
(cd "$T/work" && git checkout -q dev && git merge -q --ff-only feat-broken && git push -q origin dev) || fail "merge broken"
# let a drift check of dev finish, so that its apply cannot touch the state below
checks=$(grep -c "infra.no_drift env=dev" "$T/daemon.log")
wait_until 'test "$(grep -c "infra.no_drift env=dev" "$T/daemon.log")" -gt '"$checks" 60 || fail "no further dev drift check: $(tail -20 "$T/daemon.log")"
before=$(state_md5)
push_branch dev "$C3" m3 acme/infra
wait_until 'test -n "$(run_of m3)"'; R3=$(run_of m3)
[ "$(wait_final "$R3")" = failure ] || fail "run $R3 should fail: $(stages "$R3")"
[ "$(stages "$R3")" = "infra:failure,deploy:skipped" ] || fail "stages of $R3: $(stages "$R3")"
q "select reason from stages where run_id=$R3 and name='infra'" | grep -q "Reference to undeclared resource" || fail "reason: $(q "select reason from stages where run_id=$R3")"
q "select infra_status from environments where name='dev'" | grep -q "^apply of ${C3:0:7} failed" || fail "infra_status: $(q "select infra_status from environments where name='dev'")"
[ "$(state_md5)" = "$before" ] || fail "the broken merge changed the state"
kdev get configmap app-config -o jsonpath='{.data.release}' | grep -qx two || fail "manifests synced although the apply failed"
ok "broken module: PR status failure and merge failure with Terraform's message, nothing applied, deploy skipped"

if [ -n "${SW_TF_CONTAINER:-}" ]; then
	n=$(grep -c 'event=runner.start kind=docker image=slipway-terraform:latest' "$T/daemon.log")
	[ "$n" -ge 30 ] || fail "only $n terraform containers started"
	! grep -q 'event=runner.start kind=local' "$T/daemon.log" || fail "a step ran on the host"
	[ -z "$(find "$T/data" ! -user "$(id -u)" 2>/dev/null | head -1)" ] || fail "files in the data directory not owned by slipwayd's user"
	ok "Terraform ran in $n containers of slipway-terraform, nothing on the host"
fi

# drift checks start containers all the time: what counts is that none is
# left once slipwayd has stopped
kill -TERM "$pid"; wait_gone "$pid" 30 || fail "no clean stop"; wait "$pid"; rc=$?; pid=
[ $rc = 0 ] || fail "exit $rc"
if [ -n "${SW_TF_CONTAINER:-}" ]; then
	left=$(curl -sf --unix-socket "$SW_PODMAN_SOCK" "http://d/v1.41/containers/json?all=1")
	[ "$left" = "[]" ] || fail "containers left after the stop: $left"
	ok "no container left after the stop"
fi
[ -z "$(ls -A "$T/data/terraform/plans")" ] || fail "plan files left behind: $(ls -l "$T/data/terraform/plans")"
sw_recorder_invalid "$T/rec" || fail "invalid reports"
ok "clean stop"
