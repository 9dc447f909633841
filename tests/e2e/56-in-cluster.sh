#!/bin/bash
# slipwayd in a pod of the cluster it manages: `cluster: in-cluster` and no
# kubeconfig. The test API server (TLS, bearer token only) stands in for
# the cluster; the service account's files (ca.crt, token, namespace) are
# where SLIPWAY_SERVICEACCOUNT_DIR says (in a pod, the kubelet mounts them at
# /var/run/secrets/kubernetes.io/serviceaccount); KUBERNETES_SERVICE_HOST
# and _PORT name the API server, as in every pod. A manual sync deploys;
# kubectl sees it. Outside a pod the same config fails clearly.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/webhook.sh"
. "$SRC/tests/lib/kubeapi.sh"
T=$TMPDIR
SHARED=$(shared_dir)
export SLIPWAY_TOKEN=in-cluster-api-token
SA_TOKEN=sa-token-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')

pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	sw_kubeapi_stop "$T/c"
}
trap cleanup EXIT
sw_kubeapi_start "$T/c" --tls-dir "$T/c/tls" --token "$SA_TOKEN" --ready-delay-ms 100 || fail "cluster"
HOSTPORT=${SW_KUBEAPI_URL#https://}
mkdir -p "$T/sa"
cp "$T/c/tls/ca.crt" "$T/sa/ca.crt"
printf '%s' "$SA_TOKEN" > "$T/sa/token"
echo apps > "$T/sa/namespace"

guestbook_origin

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
    cluster: in-cluster
    manifests: [deploy]
    health_timeout: 20s
YAML

# outside a pod: a clear error, not a hang
env -u KUBERNETES_SERVICE_HOST -u KUBERNETES_SERVICE_PORT "$BUILD/slipwayd" -c "$T/slipway.yaml" \
	> "$T/outside.out" 2>&1 && fail "slipwayd started outside a pod with cluster: in-cluster"
grep -q "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set" "$T/outside.out" ||
	fail "outside a pod: $(cat "$T/outside.out")"

KUBERNETES_SERVICE_HOST=${HOSTPORT%:*} KUBERNETES_SERVICE_PORT=${HOSTPORT##*:} \
	SLIPWAY_SERVICEACCOUNT_DIR=$T/sa "$BUILD/slipwayd" -c "$T/slipway.yaml" 2>> "$T/daemon.log" &
pid=$!
wait_for curl -sf "$URL/readyz" || { tail -30 "$T/daemon.log"; fail "daemon did not start"; }
st=$(manual_sync dev) || fail "sync: $(cat "$T/sync.out")"
[ "$st" = success ] || { tail -20 "$T/daemon.log"; tail -5 "$T/c/log"; fail "the sync: $st"; }
kubectl --kubeconfig "$T/c/kubeconfig" get deployment guestbook-ui -n default > /dev/null 2>&1 ||
	fail "guestbook-ui is not in the cluster"
grep -q "$SA_TOKEN" "$T/daemon.log" && fail "the token is in the log"
ok "cluster: in-cluster: the service account's CA and token, the API server from KUBERNETES_SERVICE_*; a sync deploys"
