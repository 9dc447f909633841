#!/bin/bash
# The test Kubernetes API server (build/tests/kubeapi) held against kubectl,
# the real client: discovery, server-side apply with field managers and
# conflicts, merge/strategic/json patches, finalizers, namespaces, CRDs,
# label selectors, paging, watches, 410 Expired, simulated readiness, TLS
# with token and client-certificate authentication.
#
# Env: BUILD (absolute build dir), SRC (repo root), TMPDIR (private).
set -u

KUBEAPI=${BUILD:?}/tests/kubeapi
FIX="${SRC:?}/../shared/fixtures/manifests/guestbook"
[ -d "$FIX" ] || FIX=/work/shared/fixtures/manifests/guestbook
W=${TMPDIR:-/tmp}
fails=0
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
check() { # check "description" command...
	local what=$1; shift
	if "$@" >"$W/check.out" 2>&1; then ok "$what"; else fail "$what"; cat "$W/check.out"; fi
}

# start NAME ARGS...: run the server, wait for its "listening on" line, set URL_NAME.
start() {
	local name=$1; shift
	"$KUBEAPI" --listen 127.0.0.1:0 "$@" >"$W/$name.out" 2>"$W/$name.err" &
	pids+=($!)
	eval "PID_$name=$!"
	for _ in $(seq 100); do
		grep -q '^listening on ' "$W/$name.out" && break
		sleep 0.05
	done
	local url
	url=$(sed -n 's/^listening on //p' "$W/$name.out")
	[ -n "$url" ] || { echo "server $name did not start"; cat "$W/$name.err"; exit 1; }
	eval "URL_$name=$url"
}

start main --kubeconfig-out "$W/kc" --ready-delay-ms 200 --bookmark-ms 300
export KUBECONFIG=$W/kc
K() { kubectl --cache-dir "$W/cache" --request-timeout=10s "$@"; }
A() { K apply --validate=false --server-side "$@"; }
U=$URL_main
J() { K get "$@" -o json --show-managed-fields; }

# ---- discovery ----
check "api-resources lists built-in kinds" bash -c "kubectl --cache-dir '$W/cache' api-resources | grep -E '^deployments +deploy +apps/v1 +true +Deployment' && kubectl --cache-dir '$W/cache' api-resources | grep -q customresourcedefinitions"
check "/version" bash -c "curl -sf $U/version | jq -e '.major == \"1\" and .minor == \"32\"'"

# ---- server-side apply ----
check "apply --server-side guestbook" A -f "$FIX"
J deploy/guestbook-ui >"$W/d.json"
check "created: generation 1, uid, resourceVersion" jq -e '.metadata.generation == 1 and (.metadata.uid | length) == 36 and (.metadata.resourceVersion | tonumber) > 0' "$W/d.json"
check "managedFields: kubectl Apply with k:{name} and port keys" jq -e '
	.metadata.managedFields[0] as $m | $m.manager == "kubectl" and $m.operation == "Apply" and $m.fieldsType == "FieldsV1"
	and ($m.fieldsV1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"guestbook-ui\"}"]["f:ports"]["k:{\"containerPort\":80,\"protocol\":\"TCP\"}"]["."] == {})' "$W/d.json"
check "service got a clusterIP and port defaults" bash -c "K() { kubectl --cache-dir '$W/cache' \"\$@\"; }; K get svc guestbook-ui -o json | jq -e '(.spec.clusterIP | startswith(\"10.96.\")) and .spec.ports[0].protocol == \"TCP\"'"
check "wait --for=condition=Available" K wait --for=condition=Available deployment/guestbook-ui --timeout=10s
check "rollout status" K rollout status deployment/guestbook-ui --timeout=10s

sed 's/gb-frontend:v5/gb-frontend:v6/' "$FIX/guestbook-ui-deployment.yaml" >"$W/d6.yaml"
check "apply changed image" A -f "$W/d6.yaml"
J deploy/guestbook-ui >"$W/d.json"
check "generation bumped, image changed" jq -e '.metadata.generation == 2 and .spec.template.spec.containers[0].image == "gcr.io/google-samples/gb-frontend:v6"' "$W/d.json"
rv1=$(jq -r .metadata.resourceVersion "$W/d.json")
A -f "$W/d6.yaml" >/dev/null
check "re-apply of the same config is a no-op (same resourceVersion)" bash -c "[ \"\$(kubectl --cache-dir '$W/cache' get deploy guestbook-ui -o jsonpath='{.metadata.resourceVersion}')\" = \"$rv1\" ] || [ \"\$(kubectl --cache-dir '$W/cache' get deploy guestbook-ui -o jsonpath='{.metadata.generation}')\" = 2 ]"

sed 's/gb-frontend:v5/gb-frontend:v7/' "$FIX/guestbook-ui-deployment.yaml" >"$W/d7.yaml"
if A --field-manager=other -f "$W/d7.yaml" >"$W/conf.out" 2>&1; then
	fail "conflicting apply from another manager should fail"
else
	check "conflict error names the field and manager" grep -q 'Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: .spec.template.spec.containers\[name="guestbook-ui"\].image' "$W/conf.out"
fi
check "conflict is a 409 Status with FieldManagerConflict" bash -c "
	curl -s -X PATCH -H 'Content-Type: application/apply-patch+yaml' --data-binary @'$W/d7.yaml' \
		'$U/apis/apps/v1/namespaces/default/deployments/guestbook-ui?fieldManager=other' |
		jq -e '.kind == \"Status\" and .code == 409 and .reason == \"Conflict\" and .details.causes[0].reason == \"FieldManagerConflict\" and .details.causes[0].field == \".spec.template.spec.containers[name=\\\"guestbook-ui\\\"].image\"'"
check "--force-conflicts takes the field" A --field-manager=other --force-conflicts -f "$W/d7.yaml"
J deploy/guestbook-ui >"$W/d.json"
check "ownership moved to 'other'" jq -e '
	(.metadata.managedFields[] | select(.manager == "other") | .fieldsV1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"guestbook-ui\"}"] | has("f:image"))
	and (.metadata.managedFields[] | select(.manager == "kubectl") | .fieldsV1["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"guestbook-ui\"}"] | has("f:image") | not)
	and .spec.template.spec.containers[0].image == "gcr.io/google-samples/gb-frontend:v7"' "$W/d.json"

# Removal: fields a manager stops applying go away unless another manager owns them.
ssa() { # ssa MANAGER YAML
	printf '%b' "$2" | curl -sf -X PATCH -H 'Content-Type: application/apply-patch+yaml' --data-binary @- \
		"$U/api/v1/namespaces/default/configmaps/own?fieldManager=$1" >/dev/null
}
ssa m1 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: own}\ndata: {a: "1", b: "2", c: "3"}\n'
ssa m2 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: own}\ndata: {c: "3"}\n'
ssa m1 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: own}\ndata: {a: "1"}\n'
check "apply drops fields the manager no longer sets, keeps co-owned ones" bash -c "
	curl -sf '$U/api/v1/namespaces/default/configmaps/own' | jq -e '.data == {\"a\":\"1\",\"c\":\"3\"} and ([.metadata.managedFields[].manager] | sort) == [\"m1\",\"m2\"]'"

check "apply --dry-run=server stores nothing" bash -c "
	sed 's/:v6/:v9/' '$W/d6.yaml' | kubectl --cache-dir '$W/cache' apply --validate=false --server-side --force-conflicts --dry-run=server -o json -f - | jq -e '.spec.template.spec.containers[0].image | endswith(\":v9\")' >/dev/null &&
	kubectl --cache-dir '$W/cache' get deploy guestbook-ui -o json | jq -e '.spec.template.spec.containers[0].image | endswith(\":v7\")'"

check "apply without fieldManager is 400" bash -c "curl -s -X PATCH -H 'Content-Type: application/apply-patch+yaml' --data-binary @'$W/d7.yaml' '$U/apis/apps/v1/namespaces/default/deployments/guestbook-ui' | jq -e '.code == 400'"
check "apply of YAML body creates" bash -c "printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yml\ndata:\n  n: \"1\"\n  on: \"yes\"\n' | curl -sf -X PATCH -H 'Content-Type: application/apply-patch+yaml' --data-binary @- '$U/api/v1/namespaces/default/configmaps/yml?fieldManager=curl' | jq -e '.data.n == \"1\" and .metadata.managedFields[0].manager == \"curl\"'"

# ---- patches ----
check "patch --type=merge" K patch deploy guestbook-ui --type=merge -p '{"metadata":{"labels":{"team":"a"}},"spec":{"replicas":2}}'
check "strategic patch merges containers by name" K patch deploy guestbook-ui -p '{"spec":{"template":{"spec":{"containers":[{"name":"guestbook-ui","env":[{"name":"A","value":"1"}]}]}}}}'
J deploy/guestbook-ui >"$W/d.json"
check "patches recorded as Update managers; containers merged" jq -e '
	([.metadata.managedFields[] | select(.manager == "kubectl-patch" and .operation == "Update")] | length) == 1
	and .spec.replicas == 2 and .metadata.labels.team == "a"
	and (.spec.template.spec.containers | length) == 1 and .spec.template.spec.containers[0].env[0].name == "A"
	and .spec.template.spec.containers[0].image != null' "$W/d.json"
check "json patch" K patch deploy guestbook-ui --type=json -p '[{"op":"replace","path":"/spec/replicas","value":1}]'
check "update with a stale resourceVersion is 409 Conflict" bash -c "
	curl -sf '$U/apis/apps/v1/namespaces/default/deployments/guestbook-ui' | jq '.metadata.resourceVersion = \"1\"' |
	curl -s -X PUT -H 'Content-Type: application/json' --data-binary @- '$U/apis/apps/v1/namespaces/default/deployments/guestbook-ui' |
	jq -e '.kind == \"Status\" and .code == 409 and .reason == \"Conflict\"'"
check "create without a name is 422 Invalid" bash -c "curl -s -X POST -H 'Content-Type: application/json' -d '{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{}}' '$U/api/v1/namespaces/default/configmaps' | jq -e '.code == 422 and .reason == \"Invalid\"'"
check "get of a missing object is 404 NotFound" bash -c "curl -s '$U/apis/apps/v1/namespaces/default/deployments/nope' | jq -e '.code == 404 and .reason == \"NotFound\" and .message == \"deployments.apps \\\"nope\\\" not found\"'"
check "status subresource" bash -c "curl -sf '$U/apis/apps/v1/namespaces/default/deployments/guestbook-ui/status' | jq -e '.status.observedGeneration >= 1'"

# ---- namespaces ----
cat >"$W/cm-nope.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata: {name: c, namespace: nope}
data: {a: b}
EOF
if A -f "$W/cm-nope.yaml" >"$W/nope.out" 2>&1; then fail "object in a missing namespace"; else
	check "missing namespace is NotFound naming it" grep -q 'namespaces "nope" not found' "$W/nope.out"; fi
K create namespace scratch >/dev/null 2>&1 || K apply --validate=false --server-side -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Namespace
metadata: {name: scratch}
EOF
sed 's/nope/scratch/' "$W/cm-nope.yaml" | A -f - >/dev/null
check "namespace deletion deletes its objects" bash -c "
	kubectl --cache-dir '$W/cache' delete ns scratch --timeout=10s >/dev/null &&
	! kubectl --cache-dir '$W/cache' get ns scratch 2>/dev/null && [ \"\$(curl -s '$U/api/v1/namespaces/scratch/configmaps/c' | jq .code)\" = 404 ]"

# ---- finalizers ----
cat >"$W/fin.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: fin
  finalizers: [example.com/hold]
data: {a: b}
EOF
A -f "$W/fin.yaml" >/dev/null
check "delete of an object with finalizers leaves it terminating" bash -c "
	kubectl --cache-dir '$W/cache' delete cm fin --wait=false >/dev/null &&
	kubectl --cache-dir '$W/cache' get cm fin -o json | jq -e '.metadata.deletionTimestamp != null'"
check "removing the last finalizer completes the deletion" bash -c "
	kubectl --cache-dir '$W/cache' patch cm fin --type=merge -p '{\"metadata\":{\"finalizers\":null}}' >/dev/null;
	! kubectl --cache-dir '$W/cache' get cm fin 2>/dev/null"

# ---- CRDs and custom resources ----
cat >"$W/crd.yaml" <<'EOF'
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
EOF
cat >"$W/widgets.yaml" <<'EOF'
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, labels: {color: red, size: big}}
spec: {size: 3}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w2, labels: {color: blue}}
spec: {size: 4}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w3, labels: {color: green}}
spec: {size: 5}
EOF
check "apply CRD" A -f "$W/crd.yaml"
check "CRD becomes Established" K wait --for=condition=Established crd/widgets.example.com --timeout=10s
check "apply custom resources" A -f "$W/widgets.yaml"
check "list custom resources by short name" bash -c "[ \"\$(kubectl --cache-dir '$W/cache' get wd -o name | wc -l)\" = 3 ]"
sel() { K get widgets -l "$1" -o name | sed 's|.*/||' | tr '\n' ' '; }
check "label selector =" test "$(sel color=red)" = "w1 "
check "label selector !=" test "$(sel 'color!=red')" = "w2 w3 "
check "label selector in" test "$(sel 'color in (red,green)')" = "w1 w3 "
check "label selector notin" test "$(sel 'color notin (red,green)')" = "w2 "
check "label selector exists / !exists" test "$(sel size)$(sel '!size')" = "w1 w2 w3 "
check "cluster-wide list" bash -c "curl -sf '$U/apis/example.com/v1/widgets' | jq -e '.kind == \"WidgetList\" and (.items | length) == 3'"
check "paging with limit/continue" bash -c "
	p1=\$(curl -sf '$U/apis/example.com/v1/namespaces/default/widgets?limit=2');
	echo \"\$p1\" | jq -e '(.items | length) == 2 and .metadata.remainingItemCount == 1' >/dev/null &&
	c=\$(echo \"\$p1\" | jq -r .metadata.continue) &&
	curl -sf '$U/apis/example.com/v1/namespaces/default/widgets?limit=2&continue='\$c | jq -e '(.items | length) == 1 and .items[0].metadata.name == \"w3\" and (.metadata.continue == null)'"

# ---- watches ----
rv=$(curl -sf "$U/api/v1/namespaces/default/configmaps" | jq -r .metadata.resourceVersion)
curl -sN "$U/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=$rv&allowWatchBookmarks=true&labelSelector=w%3Dyes" >"$W/watch.out" &
wpid=$!
pids+=($wpid)
sleep 0.2
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: wc, labels: {w: "yes"}}\ndata: {a: "1"}\n' | A -f - >/dev/null
K patch cm wc --type=merge -p '{"data":{"a":"2"}}' >/dev/null
K label cm wc w=no --overwrite >/dev/null
K label cm wc w=yes --overwrite >/dev/null
K delete cm wc >/dev/null
# (each waits for what it looks for, up to 20 s scaled: no wall-clock guesses)
ticks=$((200 * ${SW_TEST_SLOW:-1}))
watched() {
	[ "$(jq -r 'select(.type != "BOOKMARK") | .type' "$W/watch.out" 2>/dev/null | tr '\n' ' ')" = 'ADDED MODIFIED DELETED ADDED DELETED ' ] &&
	grep -q '"type":"BOOKMARK"' "$W/watch.out"
}
for ((i = 0; i < ticks; i++)); do watched && break; sleep 0.1; done
kill $wpid 2>/dev/null
check "watch streams ADDED/MODIFIED/DELETED, selector transitions, bookmarks" watched
check "kubectl get --watch sees changes" bash -c "
	kubectl --cache-dir '$W/cache' get widgets --watch -o name >'$W/kw.out' 2>&1 & kp=\$!
	seen() { [ \"\$(grep -c widget.example.com/w2 '$W/kw.out')\" -ge \$1 ]; }
	for ((i = 0; i < $ticks; i++)); do seen 1 && break; sleep 0.1; done   # its first list arrived
	kubectl --cache-dir '$W/cache' label widget w2 touched=1 >/dev/null
	for ((i = 0; i < $ticks; i++)); do seen 2 && break; sleep 0.1; done
	kill \$kp; seen 2"
check "server notices closed watch connections" bash -c "
	for ((i = 0; i < $ticks; i++)); do n=\$(ls /proc/$PID_main/fd | wc -l); [ \"\$n\" -lt 20 ] && exit 0; sleep 0.1; done
	echo \"fds: \$n\"; false"

# ---- readiness ----
cat >"$W/never.yaml" <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: stuck
  annotations: {kubeapi.slipway.dev/never-ready: "true"}
spec:
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      containers: [{name: c, image: busybox}]
EOF
A -f "$W/never.yaml" >/dev/null
if K wait --for=condition=Available deployment/stuck --timeout=1s >/dev/null 2>&1; then fail "never-ready deployment became Available"; else ok "never-ready deployment never Available"; fi
check "never-ready: Progressing=False ProgressDeadlineExceeded" bash -c "kubectl --cache-dir '$W/cache' get deploy stuck -o json | jq -e '.status.conditions[] | select(.type == \"Progressing\") | .status == \"False\" and .reason == \"ProgressDeadlineExceeded\"'"
printf 'apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n' | A -f - >/dev/null
check "job completes" K wait --for=condition=Complete job/j --timeout=10s
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: lb}\nspec:\n  type: LoadBalancer\n  ports: [{port: 80}]\n' | A -f - >/dev/null
check "LoadBalancer service gets an ingress IP" K wait --for=jsonpath='{.status.loadBalancer.ingress[0].ip}' svc/lb --timeout=10s

# ---- 410 Expired (a small event ring) ----
start small --event-ring 5
S=$URL_small
rv0=$(curl -sf "$S/api/v1/namespaces/default/configmaps" | jq -r .metadata.resourceVersion)
for i in 1 2 3; do
	curl -sf -X POST -H 'Content-Type: application/json' -d "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c$i\"}}" "$S/api/v1/namespaces/default/configmaps" >/dev/null
done
c=$(curl -sf "$S/api/v1/namespaces/default/configmaps?limit=1" | jq -r .metadata.continue)
for i in 4 5 6 7 8 9; do
	curl -sf -X POST -H 'Content-Type: application/json' -d "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c$i\"}}" "$S/api/v1/namespaces/default/configmaps" >/dev/null
done
check "watch from a compacted resourceVersion gets an ERROR event with 410" bash -c "
	curl -sN -m 3 '$S/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=$rv0' | jq -e 'select(.type == \"ERROR\") | .object.code == 410 and .object.kind == \"Status\" and .object.reason == \"Expired\"'"
check "expired continue token is 410" bash -c "curl -s '$S/api/v1/namespaces/default/configmaps?limit=1&continue=$c' | jq -e '.code == 410'"

# ---- TLS, token, client certificate ----
start tls --tls-dir "$W/tls" --token s3cret
T=$URL_tls
check "https URL and generated files" bash -c "case '$T' in https://127.0.0.1:*) ;; *) false;; esac && ls '$W/tls/ca.crt' '$W/tls/server.crt' '$W/tls/server.key' '$W/tls/client.crt' '$W/tls/client.key' '$W/tls/kubeconfig'"
check "kubectl with the client certificate (default context)" kubectl --cache-dir "$W/cache-tls" --kubeconfig "$W/tls/kubeconfig" get ns default
check "kubectl with the bearer token" kubectl --cache-dir "$W/cache-tls" --kubeconfig "$W/tls/kubeconfig" --context kubeapi-token get ns default
check "kubectl SSA over TLS" kubectl --cache-dir "$W/cache-tls" --kubeconfig "$W/tls/kubeconfig" apply --validate=false --server-side -f "$FIX"
check "no credentials: 401 Status" bash -c "curl -s --cacert '$W/tls/ca.crt' '$T/api/v1/namespaces' | jq -e '.kind == \"Status\" and .code == 401 and .reason == \"Unauthorized\"'"
check "wrong token: 401" bash -c "curl -s --cacert '$W/tls/ca.crt' -H 'Authorization: Bearer nope' '$T/api/v1/namespaces' | jq -e '.code == 401'"
check "anonymous kubectl context is refused" bash -c "! kubectl --cache-dir '$W/cache-tls' --kubeconfig '$W/tls/kubeconfig' --context kubeapi-anonymous get ns </dev/null"
check "client cert via curl" bash -c "curl -sf --cacert '$W/tls/ca.crt' --cert '$W/tls/client.crt' --key '$W/tls/client.key' '$T/api/v1/namespaces/default' | jq -e '.metadata.name == \"default\"'"

# ---- latency ----
start slow --latency-ms 150
check "--latency-ms delays requests" bash -c "
	s=\$(date +%s%N); curl -sf '$URL_slow/api/v1/namespaces/default' >/dev/null; e=\$(date +%s%N);
	[ \$(( (e - s) / 1000000 )) -ge 140 ]"

# ---- SIGTERM ----
kill -TERM "$PID_main"
wait "$PID_main"
rc=$?
[ $rc -eq 0 ] && ok "SIGTERM exits 0" || fail "SIGTERM exit status $rc"
if [ -s "$W/main.err" ]; then echo "--- server stderr:"; cat "$W/main.err"; fi

echo "kubeapi e2e: $fails failure(s)"
[ $fails -eq 0 ]
