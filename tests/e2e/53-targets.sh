#!/bin/bash
# Several environments on one branch, and promotion (docs/config.md
# "environments"): one signed push of `dev` deploys `dev` and, beside it,
# `preview` (parallel: true); `staging` (after: dev) deploys the same commit
# only once dev's deploy went through; each has its own history. A deploy
# of dev that fails promotes nothing.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/webhook.sh"
. "$SRC/tests/lib/kubeapi.sh"
T=$TMPDIR
SHARED=$(shared_dir)
FIX=$SHARED/fixtures/github
export WEBHOOK_SECRET=targets-secret

pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	for c in dev preview staging; do sw_kubeapi_stop "$T/$c"; done
}
trap cleanup EXIT
for c in dev preview staging; do
	sw_kubeapi_start "$T/$c" --ready-delay-ms 100 || fail "$c cluster"
done

git init -q --bare "$T/origin.git"
git clone -q "$T/origin.git" "$T/work" 2>/dev/null
cd "$T/work" || fail "cd"
git config user.email dev@example.com; git config user.name Dev
git checkout -q -b dev
mkdir -p deploy
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  v: "1"\n' > deploy/app.yaml
git add -A && git commit -qm one && git push -q origin dev
C1=$(git rev-parse HEAD)
cd "$T" || fail "cd"

port=$(free_port)
URL=http://127.0.0.1:$port
env_yaml() {   # env_yaml NAME EXTRA
	printf '  - name: %s\n    branch: dev\n    cluster: {kubeconfig: %s, namespace: default}\n    manifests: [deploy]\n    health_timeout: 20s\n%s' \
		"$1" "$T/$1/kubeconfig" "${2:+    $2
}"
}
{
	cat <<YAML
server: {listen: 127.0.0.1:$port, data_dir: data}
github: {webhook_secret: {secret_env: WEBHOOK_SECRET}}
runner: {backend: local}
repositories:
  - {name: acme/shop, url: "file://$T/origin.git"}
environments:
YAML
	env_yaml staging "after: dev"
	env_yaml dev
	env_yaml preview "parallel: true"
} > "$T/slipway.yaml"
"$BUILD/slipwayd" -c "$T/slipway.yaml" --check > "$T/check.out" 2>&1 || fail "--check: $(cat "$T/check.out")"
start_daemon

kc() { kubectl --kubeconfig "$T/$1/kubeconfig" get configmap app -o jsonpath='{.data.v}' 2>/dev/null; }
final_of() {   # final_of ENV COMMIT: the status of ENV's run of COMMIT, once final
	wait_until "[ -n \"\$(q \"select id from runs where environment='$1' and commit_sha='$2' and status not in ('queued','running')\")\" ]" 60 || { echo none; return; }
	q "select status from runs where environment='$1' and commit_sha='$2' order by id desc limit 1"
}

# 1. one push: dev and preview at once, staging after dev
push_branch dev "$C1" p1
[ "$(final_of dev "$C1")" = success ] || { tail -20 "$T/daemon.log"; fail "dev"; }
[ "$(final_of preview "$C1")" = success ] || fail "preview (parallel) did not deploy"
[ "$(final_of staging "$C1")" = success ] || { tail -20 "$T/daemon.log"; fail "staging was not promoted"; }
for c in dev preview staging; do [ "$(kc $c)" = 1 ] || fail "$c lacks the object"; done
dev_done=$(q "select finished_at from runs where environment='dev' and commit_sha='$C1'")
staging_made=$(q "select created_at from runs where environment='staging' and commit_sha='$C1'")
[ "$staging_made" -ge "$dev_done" ] || fail "staging's run was made before dev's deploy ended"
grep -q "event=run.promoted .*environment=staging" "$T/daemon.log" || fail "no promotion line"
[ "$(q "select count(distinct environment) from syncs")" = 3 ] || fail "not one history per environment"
ok "one push deploys dev and preview (parallel: true) at once, and staging (after: dev) once dev's deploy went through"

# 2. a deploy of dev that fails promotes nothing
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  v: "2"\n---\napiVersion: nope/v1\nkind: Unknown\nmetadata: {name: x}\n' > "$T/work/deploy/app.yaml"
(cd "$T/work" && git commit -qam two && git push -q origin dev) || fail "push two"
C2=$(git -C "$T/work" rev-parse HEAD)
push_branch dev "$C2" p2
[ "$(final_of dev "$C2")" = failure ] || fail "dev's broken deploy did not fail"
[ "$(final_of preview "$C2")" = failure ] || fail "preview's broken deploy did not fail"
[ -z "$(q "select id from runs where environment='staging' and commit_sha='$C2'")" ] || fail "a failed deploy was promoted"
[ "$(kc staging)" = 1 ] || fail "staging changed"
ok "a deploy of dev that fails promotes nothing to staging"
