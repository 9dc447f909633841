#!/bin/bash
# Manifests written for Argo CD deploy the same way (docs/argocd.md): its
# sync-wave annotation orders the apply (-1, 0, 1), Prune=false keeps an
# object whose file was removed, Force=true deletes and creates again an
# object whose immutable field changed (and without it the sync fails with
# the API server's reason), options slipway does not act on are reported in
# the sync's message, and an option with a bad value fails the sync before
# anything is applied, naming the file and line. Manual syncs against the
# test API server, checked with kubectl. Hooks: a PreSync migration Job, a
# Sync Pod and a PostSync smoke-test Job (generateName) run in that order,
# each waited on, deleted as their policy says and never in the inventory;
# a failing PreSync Job stops the sync before anything else is applied, and
# the SyncFail hook runs. Fields left to others: an HPA takes its
# Deployment's spec.replicas, ignore_differences and the
# slipway.dev/ignore-differences annotation other fields, and none is healed.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/webhook.sh"
. "$SRC/tests/lib/kubeapi.sh"
T=$TMPDIR
export SLIPWAY_TOKEN=argocd-api-token

pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	sw_kubeapi_stop "$T/dev"
}
trap cleanup EXIT
sw_kubeapi_start "$T/dev" --ready-delay-ms 100 || fail "dev cluster"
k() { kubectl --kubeconfig "$T/dev/kubeconfig" "$@"; }

git init -q --bare "$T/origin.git"
git clone -q "$T/origin.git" "$T/work" 2>/dev/null
cd "$T/work" || fail "cd"
git config user.email dev@example.com; git config user.name Dev
git checkout -q -b dev
mkdir -p deploy
cm() {   # cm NAME ANNOTATIONS...: a ConfigMap with "key: value" annotation lines
	local name=$1; shift
	printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  annotations:\n    x: "y"\n' "$name"
	for a in "$@"; do printf '    %s\n' "$a"; done
	printf 'data:\n  k: v\n'
}
deployment() {   # deployment NAME SELECTOR_VALUE ANNOTATIONS...
	local name=$1 sel=$2; shift 2
	printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: %s\n  annotations:\n    x: "y"\n' "$name"
	for a in "$@"; do printf '    %s\n' "$a"; done
	cat <<YML
spec:
  replicas: 1
  selector: {matchLabels: {app: $sel}}
  template:
    metadata: {labels: {app: $sel}}
    spec:
      containers: [{name: web, image: "nginx:1.27"}]
YML
}
cm first 'argocd.argoproj.io/sync-wave: "-1"' > deploy/first.yaml
cm mid > deploy/mid.yaml
deployment web web 'argocd.argoproj.io/sync-options: Force=true' > deploy/web.yaml
deployment plain plain > deploy/plain.yaml
cm last 'argocd.argoproj.io/sync-wave: "1"' 'argocd.argoproj.io/sync-options: ApplyOutOfSyncOnly=true' > deploy/last.yaml
cm keep 'argocd.argoproj.io/sync-options: Prune=false' > deploy/keep.yaml
cm gone > deploy/gone.yaml
git add -A && git commit -qm "argo-style manifests" && git push -q origin dev
cd "$T" || fail "cd"

port=$(free_port)
URL=http://127.0.0.1:$port
cat > "$T/slipway.yaml" <<YAML
server: {listen: 127.0.0.1:$port, data_dir: data, api_token: {secret_env: SLIPWAY_TOKEN}}
runner: {backend: local}
repositories:
  - {name: acme/shop, url: "file://$T/origin.git"}
environments:
  - name: dev
    branch: dev
    cluster: {kubeconfig: $T/dev/kubeconfig, namespace: default}
    manifests: [deploy]
    health_timeout: 20s
    ignore_differences:
      - {kind: ConfigMap, name: tuned, json_pointers: [/data/level]}
YAML
"$BUILD/slipwayd" -c "$T/slipway.yaml" 2>> "$T/daemon.log" &
pid=$!
wait_for curl -sf "$URL/readyz" || { tail -30 "$T/daemon.log"; fail "daemon did not start"; }

last_message() { q "select coalesce(message, '') from syncs order by id desc limit 1"; }
# (a failed sync is followed by a rollback to the last good commit: rollback_on_failure)
failed_message() { q "select coalesce(message, '') from syncs where status = 'failure' order by id desc limit 1"; }
rv() { k get "$1" -o jsonpath='{.metadata.resourceVersion}'; }
push() {   # push MESSAGE: commit what deploy/ holds now
	(cd "$T/work" && git add -A deploy && git commit -qm "$1" && git push -q origin dev) || fail "push $1"
}

# 1. waves -1, 0, 1 in that order; a noted option in the message
st=$(manual_sync dev) || fail "sync: $(cat "$T/sync.out")"
[ "$st" = success ] || { tail -20 "$T/daemon.log"; fail "the first sync: $st ($(last_message))"; }
# (ConfigMaps: no controller writes them after the apply)
a=$(rv configmap/first) b=$(rv configmap/mid) c=$(rv configmap/last)
[ "$a" -lt "$b" ] && [ "$b" -lt "$c" ] || fail "not applied in wave order: first=$a mid=$b last=$c"
last_message | grep -q 'deploy/last.yaml:1:1 (/ConfigMap/default/last): ApplyOutOfSyncOnly is an Argo CD Application option' ||
	fail "the noted option is not in the sync's message: $(last_message)"
grep -q 'event=sync.note' "$T/daemon.log" || fail "no sync.note in the log"
ok "argocd.argoproj.io/sync-wave -1, 0, 1 applied in order; an Application option on an object is reported, not dropped"

# 2. files removed: Prune=false keeps its object, the other is pruned;
#    an immutable selector changed under Force=true: deleted and created again
uid=$(k get deployment/web -o jsonpath='{.metadata.uid}')
rm "$T/work/deploy/keep.yaml" "$T/work/deploy/gone.yaml"
deployment web web2 'argocd.argoproj.io/sync-options: Force=true' > "$T/work/deploy/web.yaml"
push "remove two, change web's selector"
st=$(manual_sync dev) || fail "sync 2: $(cat "$T/sync.out")"
[ "$st" = success ] || { tail -20 "$T/daemon.log"; fail "sync 2: $st ($(last_message))"; }
k get configmap/keep > /dev/null 2>&1 || fail "Prune=false did not keep configmap/keep"
k get configmap/gone > /dev/null 2>&1 && fail "configmap/gone was not pruned"
last_message | grep -q '/ConfigMap/default/keep kept: Prune=false' || fail "the kept object is not in the message: $(last_message)"
[ "$(k get deployment/web -o jsonpath='{.spec.selector.matchLabels.app}')" = web2 ] || fail "web's selector did not change"
[ "$(k get deployment/web -o jsonpath='{.metadata.uid}')" != "$uid" ] || fail "web was not created again"
last_message | grep -q 'apps/Deployment/default/web replaced: .*field is immutable.*(Force=true)' || fail "the replacement is not in the message: $(last_message)"
ok "Prune=false keeps an object whose file was removed; Force=true creates an object again when an immutable field changed"

# 3. the same change without Force=true fails with the API server's reason
deployment plain plain2 > "$T/work/deploy/plain.yaml"
push "change plain's selector"
st=$(manual_sync dev) || fail "sync 3: $(cat "$T/sync.out")"
[ "$st" = failure ] || fail "an immutable change without Force=true: $st"
failed_message | grep -q 'spec.selector: Invalid value: field is immutable' || fail "no reason: $(failed_message)"
ok "without Force=true an immutable field's change fails the sync with the API server's reason"

# 4. a bad option value: refused before anything is applied, with file and line
deployment plain plain > "$T/work/deploy/plain.yaml"
cm new > "$T/work/deploy/new.yaml"
cm typo 'argocd.argoproj.io/sync-options: Prune=flase' > "$T/work/deploy/typo.yaml"
push "a typo"
st=$(manual_sync dev) || fail "sync 4: $(cat "$T/sync.out")"
[ "$st" = failure ] || fail "a bad option value: $st"
failed_message | grep -q 'deploy/typo.yaml:1:1: annotation argocd.argoproj.io/sync-options: option Prune takes true|false|confirm, not "flase"' ||
	fail "the typo is not named with its place: $(failed_message)"
k get configmap/new > /dev/null 2>&1 && fail "an object was applied although the set was refused"
ok "a bad option value fails the sync before anything is applied, naming file:line"

# 5. hooks: PreSync, then the manifests, Sync, health, PostSync
job() {   # job NAME-OR-GENERATE HOOK [ANNOTATION...]
	local n=$1 hook=$2; shift 2
	printf 'apiVersion: batch/v1\nkind: Job\nmetadata:\n'
	case $n in *-) printf '  generateName: %s\n' "$n" ;; *) printf '  name: %s\n' "$n" ;; esac
	printf '  annotations:\n    argocd.argoproj.io/hook: %s\n' "$hook"
	for a in "$@"; do printf '    %s\n' "$a"; done
	printf 'spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: job, image: "busybox:1.36", command: [sh, -c, "true"]}]\n'
}
rm -f "$T"/work/deploy/*.yaml
{ job migrate PreSync; echo ---; job smoke- PostSync 'argocd.argoproj.io/hook-delete-policy: HookSucceeded'; echo ---
  printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  generateName: hello-\n  annotations: {argocd.argoproj.io/hook: Sync}\nspec:\n  restartPolicy: Never\n  containers: [{name: c, image: "busybox:1.36"}]\n'
  echo ---; cm app-config; echo ---; cm skipped 'argocd.argoproj.io/hook: Skip'
} > "$T/work/deploy/hooks.yaml"
push "hooks"
st=$(manual_sync dev) || fail "sync 5: $(cat "$T/sync.out")"
[ "$st" = success ] || { tail -20 "$T/daemon.log"; fail "sync with hooks: $st ($(last_message))"; }
msg=$(last_message)
echo "$msg" | grep -q 'PreSync hook batch/Job/default/migrate: Complete.*Sync hook /Pod/default/hello-[a-z0-9]*: Succeeded.*PostSync hook batch/Job/default/smoke-[a-z0-9]*: Complete' ||
	fail "the hooks did not run PreSync, Sync, PostSync: $msg"
[ "$(k get job migrate -o jsonpath='{.status.conditions[?(@.type=="Complete")].status}')" = True ] || fail "job/migrate is not Complete"
[ "$(rv job/migrate)" -lt "$(rv configmap/app-config)" ] || fail "the manifests were applied before the PreSync hook was done"
[ -z "$(k get jobs -o name | grep smoke-)" ] || fail "the PostSync hook was not deleted (HookSucceeded): $(k get jobs -o name)"
[ -n "$(k get pods -o name | grep hello-)" ] || fail "no Sync hook pod"
k get configmap skipped > /dev/null 2>&1 && fail "a Skip hook was applied"
[ "$(q "select count(*) from inventory where environment = 'dev' and (name like 'migrate%' or name like 'smoke%' or name like 'hello%')")" = 0 ] ||
	fail "hooks are in the inventory: $(q "select kind, name from inventory")"
k get job/migrate -o jsonpath='{.metadata.labels.slipway\.dev/hook}' | grep -q dev || fail "the hook lacks its label"
uid=$(k get job migrate -o jsonpath='{.metadata.uid}')
st=$(manual_sync dev) || fail "sync 5b"
[ "$st" = success ] || fail "sync 5b: $st ($(last_message))"
[ "$(k get job migrate -o jsonpath='{.metadata.uid}')" != "$uid" ] || fail "BeforeHookCreation did not replace job/migrate"
ok "PreSync Job, Sync Pod, PostSync Job (generateName) in order, each waited on; deleted by policy; none in the inventory; Skip not applied"

# 6. a PreSync hook that fails stops the sync; SyncFail hooks run
{ job migrate PreSync 'kubeapi.slipway.dev/never-ready: "true"'; echo ---; job on-fail- SyncFail; echo ---; cm after-fail; } > "$T/work/deploy/hooks.yaml"
push "a failing migration"
st=$(manual_sync dev) || fail "sync 6: $(cat "$T/sync.out")"
[ "$st" = failure ] || fail "a failing PreSync hook: $st"
failed_message | grep -q 'PreSync hook batch/Job/default/migrate failed: Failed: BackoffLimitExceeded' || fail "no reason: $(failed_message)"
k get configmap after-fail > /dev/null 2>&1 && fail "objects were applied after a failed PreSync hook"
[ -n "$(k get jobs -o name | grep on-fail-)" ] || fail "the SyncFail hook did not run: $(k get jobs -o name)"
ok "a failing PreSync Job stops the sync with its reason, nothing else applied; the SyncFail hook runs"

# 7. fields left to others: an HPA's target's replicas, ignore_differences, the annotation
rm -f "$T"/work/deploy/*.yaml
{ deployment scaled scaled; echo ---
  printf 'apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: scaled\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: scaled}\n  minReplicas: 1\n  maxReplicas: 10\n'
  echo ---; printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tuned\ndata:\n  level: "1"\n  other: a\n'
  echo ---; cm annotated 'slipway.dev/ignore-differences: /data/k'
  echo ---; cm marker
} > "$T/work/deploy/scale.yaml"
push "autoscaled"
st=$(manual_sync dev) || fail "sync 7: $(cat "$T/sync.out")"
[ "$st" = success ] || { tail -20 "$T/daemon.log"; fail "sync 7: $st ($(last_message))"; }
last_message | grep -q 'spec.replicas of apps/Deployment/default/scaled is left to HorizontalPodAutoscaler scaled' ||
	fail "the autoscaler's replicas are not said: $(last_message)"
[ "$(k get deployment scaled -o jsonpath='{.spec.replicas}')" = 1 ] || fail "the first create did not set replicas"
k patch deployment scaled --type merge -p '{"spec":{"replicas":5}}' > /dev/null || fail "scale"
k patch configmap tuned --type merge -p '{"data":{"level":"9"}}' > /dev/null || fail "tune"
k patch configmap annotated --type merge -p '{"data":{"k":"mine"}}' > /dev/null || fail "annotated"
k patch configmap marker --type merge -p '{"data":{"k":"drift"}}' > /dev/null || fail "marker"
# the watcher takes events in order: once the marker is healed, the others were seen
wait_until '[ "$(k get configmap marker -o jsonpath={.data.k})" = v ]' 30 || fail "the marker's drift was not healed"
[ "$(k get deployment scaled -o jsonpath='{.spec.replicas}')" = 5 ] || fail "the HPA's replicas were healed"
[ "$(k get configmap tuned -o jsonpath='{.data.level}')" = 9 ] || fail "an ignore_differences field was healed"
[ "$(k get configmap annotated -o jsonpath='{.data.k}')" = mine ] || fail "an annotated field was healed"
[ "$(q "select count(*) from drift_events where name in ('scaled', 'tuned', 'annotated')")" = 0 ] ||
	fail "drift recorded on fields left to others: $(q "select name, fields from drift_events")"
st=$(manual_sync dev) || fail "sync 7b"
[ "$st" = success ] || fail "sync 7b: $st ($(last_message))"
[ "$(k get deployment scaled -o jsonpath='{.spec.replicas}')" = 5 ] || fail "a sync took the HPA's replicas back"
[ "$(k get configmap tuned -o jsonpath='{.data.level}'),$(k get configmap tuned -o jsonpath='{.data.other}')" = 9,a ] ||
	fail "a sync took an ignored field back, or dropped another"
ok "an HPA takes spec.replicas, ignore_differences and the annotation keep their fields: not a single heal, and a sync leaves them"
