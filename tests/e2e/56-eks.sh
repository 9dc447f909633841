#!/bin/bash
# An EKS-style cluster reached without the aws CLI: slipwayd has nothing
# but IRSA-style web-identity files; `slipway eks-kubeconfig` writes its
# kubeconfig from eks:DescribeCluster, naming `slipway eks-token` as the
# exec plugin; the test API server takes only EKS tokens
# and checks each one as EKS's authenticator does, with the AWS stand-in's
# STS (which checks the presigned signature with its own SigV4). A manual
# sync deploys; kubectl, through the same plugin, sees it; once the first
# token is past the life the API server gives it, the next sync gets a 401,
# makes a new token, and succeeds.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/webhook.sh"
. "$SRC/tests/lib/kubeapi.sh"
T=$TMPDIR
SHARED=$(shared_dir)
PY=$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)
ROLE=arn:aws:iam::111122223333:role/slipway
LIFE=6   # seconds the API server takes a token for (EKS: 900)
export SLIPWAY_TOKEN=eks-api-token

pid=
spid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	[ -n "$spid" ] && kill "$spid" 2>/dev/null
	sw_kubeapi_stop "$T/dev"
}
trap cleanup EXIT

echo "eyJhbGciOiJSUzI1NiJ9.irsa.token" > "$T/irsa-token"
$PY "$SRC/tests/aws/standin.py" --port 0 --out "$T/aws.jsonl" --role "$ROLE" \
	--web-token-file "$T/irsa-token" --cluster "dev=@$T/cluster" > "$T/sport" 2> "$T/standin.log" &
spid=$!
wait_for test -s "$T/sport" || fail "the AWS stand-in did not start: $(cat "$T/standin.log")"
AWS=http://127.0.0.1:$(cat "$T/sport")
# TLS, as EKS (kubectl runs exec plugins only for https servers)
sw_kubeapi_start "$T/dev" --tls-dir "$T/dev/tls" --ready-delay-ms 100 --eks-sts "$AWS/" \
	--eks-cluster dev --eks-token-life $LIFE || fail "dev cluster"
DEV=$SW_KUBEAPI_URL

# IRSA as EKS sets it up for a pod, and the stand-in as AWS
export AWS_ROLE_ARN=$ROLE AWS_WEB_IDENTITY_TOKEN_FILE=$T/irsa-token AWS_ENDPOINT_URL=$AWS
export AWS_EC2_METADATA_DISABLED=true
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE
k() { kubectl --kubeconfig "$T/eks.kubeconfig" "$@"; }

# the cluster as EKS describes it, then what `aws eks update-kubeconfig`
# would write, with slipway as the plugin
echo "$DEV=$(base64 -w0 "$T/dev/tls/ca.crt")" > "$T/cluster"
"$BUILD/slipway" eks-kubeconfig dev "$T/eks.kubeconfig" --region us-east-1 2> "$T/ekc.err" ||
	fail "eks-kubeconfig: $(cat "$T/ekc.err")"
grep -q "cluster dev (ACTIVE) at $DEV" "$T/ekc.err" || fail "eks-kubeconfig said: $(cat "$T/ekc.err")"
"$BUILD/slipway" eks-kubeconfig prod "$T/x" > "$T/ekc.err" 2>&1 && fail "an unknown cluster was described"
grep -q "EKS DescribeCluster prod in us-east-1: HTTP 404: No cluster found for name: prod." "$T/ekc.err" ||
	fail "an unknown cluster: $(cat "$T/ekc.err")"
ok "eks-kubeconfig: endpoint and CA from DescribeCluster (signed, checked by the stand-in); an unknown cluster named"

# without a token the API server refuses
code=$(curl -s --cacert "$T/dev/tls/ca.crt" -o /dev/null -w '%{http_code}' "$DEV/api/v1/namespaces/default/configmaps")
[ "$code" = 401 ] || fail "the API server took a request without a token: $code"
k get configmaps > "$T/k.out" 2>&1 || fail "kubectl through slipway eks-token: $(cat "$T/k.out"; tail -5 "$T/dev/log")"
ok "kubectl reaches the cluster with an EKS token slipway made from web identity"

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
    cluster: {kubeconfig: $T/eks.kubeconfig, namespace: default}
    manifests: [deploy]
    health_timeout: 20s
YAML
"$BUILD/slipwayd" -c "$T/slipway.yaml" 2>> "$T/daemon.log" &
pid=$!
wait_for curl -sf "$URL/readyz" || { tail -30 "$T/daemon.log"; fail "daemon did not start"; }

st=$(manual_sync dev) || fail "sync: $(cat "$T/sync.out")"
[ "$st" = success ] || { tail -20 "$T/daemon.log"; tail -5 "$T/dev/log"; fail "the first sync: $st"; }
k get deployment guestbook-ui > /dev/null 2>&1 || fail "guestbook-ui is not in the cluster"
grep -q "STS answered 200" "$T/dev/log" || fail "the API server did not check a token with STS"
ok "a manual sync deployed through EKS tokens, each checked with STS"

# the API server drops the first token after LIFE seconds; the client's
# cache still holds it (EKS tokens say 14 minutes), so the next requests
# get a 401 and make a new one
first=$(grep -c "STS answered 200" "$T/dev/log")
sleep $((LIFE + 1))   # not a guess: the token's own X-Amz-Date and LIFE decide
st=$(manual_sync dev) || fail "sync after expiry: $(cat "$T/sync.out")"
grep -q "expired" "$T/dev/log" || fail "the first token was not refused after $LIFE s: $(tail -5 "$T/dev/log")"
[ "$st" = success ] || { tail -20 "$T/daemon.log"; tail -5 "$T/dev/log"; fail "the sync after the token expired: $st"; }
[ "$(grep -c "STS answered 200" "$T/dev/log")" -gt "$first" ] || fail "no new token after the 401"
n=$(jq -s '[.[] | select(.route == "sts.AssumeRoleWithWebIdentity" and .valid)] | length' "$T/aws.jsonl")
[ "$n" -ge 1 ] || fail "web identity was not used"
[ "$(jq -s '[.[] | select(.valid == false and .path != "/clusters/prod")] | length' "$T/aws.jsonl")" = 0 ] ||
	fail "the stand-in refused: $(jq -c 'select(.valid == false)' "$T/aws.jsonl")"
ok "after the token expired: a 401, a new token, the sync succeeded ($(grep -c "STS answered 200" "$T/dev/log") tokens checked)"
