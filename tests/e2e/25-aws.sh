#!/bin/bash
# AWS credentials as the SDKs find them, against the AWS stand-in
# (tests/aws/standin.py, which checks every signature with its own SigV4):
# environment keys, a profile in the shared files (and a role assumed from
# it), IRSA web identity, EKS Pod Identity, IMDSv2; what each wrong answer
# looks like; an EKS token that the stand-in's STS accepts for its cluster
# and refuses once expired; the secret key never printed.
set -u
. "$SRC/tests/lib/common.sh"
T=$TMPDIR
S=$BUILD/slipway
PY=$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)
ROLE=arn:aws:iam::111122223333:role/slipway
SECRET=base-secret-never-shown

echo "eyJhbGciOiJSUzI1NiJ9.irsa.token" > "$T/irsa-token"
echo "pod-identity-token" > "$T/pod-token"
$PY "$SRC/tests/aws/standin.py" --port 0 --out "$T/aws.jsonl" --key "AKIDBASE:$SECRET" \
	--role "$ROLE" --web-token-file "$T/irsa-token" --pod-token pod-identity-token \
	--cluster "dev=https://127.0.0.1:1=$(printf 'PEM' | base64)" > "$T/port" 2> "$T/standin.log" &
spid=$!
trap 'kill $spid 2>/dev/null' EXIT
wait_for test -s "$T/port" || fail "the AWS stand-in did not start: $(cat "$T/standin.log")"
URL=http://127.0.0.1:$(cat "$T/port")

# a clean environment: nothing but what each case sets
clean() {
	env -i PATH="$PATH" HOME="$T/home" AWS_ENDPOINT_URL="$URL" \
		AWS_EC2_METADATA_SERVICE_ENDPOINT="$URL" AWS_EC2_METADATA_DISABLED=true "$@"
}
mkdir -p "$T/home"
never_secret() { ! grep -q "$SECRET" "$@" || fail "the secret key was printed: $(cat "$@")"; }

# --- where credentials come from -------------------------------------------
clean AWS_ACCESS_KEY_ID=AKIDBASE AWS_SECRET_ACCESS_KEY=$SECRET "$S" --json aws-identity > "$T/out" 2>&1 ||
	fail "environment keys: $(cat "$T/out")"
jq -e '.source == "environment" and .access_key_id == "AKIDBASE" and .account == "111122223333"' "$T/out" >/dev/null ||
	fail "environment keys: $(cat "$T/out")"
never_secret "$T/out"
ok "environment keys sign a GetCallerIdentity the stand-in checks"

clean AWS_ACCESS_KEY_ID=AKIDBASE AWS_SECRET_ACCESS_KEY=wrong "$S" aws-identity > "$T/out" 2>&1 && fail "a wrong secret key was accepted"
grep -q "SignatureDoesNotMatch" "$T/out" || fail "a wrong secret: $(cat "$T/out")"
clean AWS_ACCESS_KEY_ID=AKIDNOBODY AWS_SECRET_ACCESS_KEY=x "$S" aws-identity > "$T/out" 2>&1 && fail "an unknown key was accepted"
grep -q "InvalidClientTokenId" "$T/out" || fail "an unknown key: $(cat "$T/out")"
ok "a wrong secret and an unknown key: AWS's error code and message"

mkdir -p "$T/home/.aws"
cat > "$T/home/.aws/credentials" <<EOF
[default]
aws_access_key_id = AKIDBASE
aws_secret_access_key = $SECRET   # an inline comment
EOF
cat > "$T/home/.aws/config" <<EOF
[default]
region = eu-west-1
[profile ops]
role_arn = $ROLE
source_profile = default
[profile loop]
role_arn = $ROLE
source_profile = loop
EOF
clean "$S" --json aws-identity > "$T/out" 2>&1 || fail "the default profile: $(cat "$T/out")"
jq -e '.source == "profile default" and .region == "eu-west-1"' "$T/out" >/dev/null || fail "default profile: $(cat "$T/out")"
clean AWS_PROFILE=ops "$S" --json aws-identity > "$T/out" 2>&1 || fail "profile ops: $(cat "$T/out")"
jq -e '(.source | startswith("role '"$ROLE"' assumed with profile default")) and (.access_key_id | startswith("ASIAROLE")) and .expires_ms > 0' \
	"$T/out" >/dev/null || fail "profile ops: $(cat "$T/out")"
clean AWS_PROFILE=loop "$S" aws-identity > "$T/out" 2>&1 && fail "a source_profile loop was accepted"
grep -q "goes round" "$T/out" || fail "a source_profile loop: $(cat "$T/out")"
clean AWS_PROFILE=nope "$S" aws-identity > "$T/out" 2>&1 && fail "an unknown profile was accepted"
grep -q "profile nope is in neither" "$T/out" || fail "unknown profile: $(cat "$T/out")"
never_secret "$T/out"
rm -rf "$T/home/.aws"
ok "shared files: a profile's keys, a role assumed from a source_profile, a loop and a missing profile named"

clean AWS_ROLE_ARN=$ROLE AWS_WEB_IDENTITY_TOKEN_FILE="$T/irsa-token" "$S" --json aws-identity > "$T/out" 2>&1 ||
	fail "web identity: $(cat "$T/out")"
jq -e '(.source | startswith("web identity")) and (.access_key_id | startswith("ASIAWEB"))' "$T/out" >/dev/null ||
	fail "web identity: $(cat "$T/out")"
echo wrong > "$T/bad-token"
clean AWS_ROLE_ARN=$ROLE AWS_WEB_IDENTITY_TOKEN_FILE="$T/bad-token" "$S" aws-identity > "$T/out" 2>&1 &&
	fail "a wrong web identity token was accepted"
grep -q "InvalidIdentityToken" "$T/out" || fail "wrong web identity token: $(cat "$T/out")"
ok "IRSA: AssumeRoleWithWebIdentity with the token file; a refused token says InvalidIdentityToken"

clean AWS_CONTAINER_CREDENTIALS_FULL_URI="$URL/v1/credentials" AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$T/pod-token" \
	"$S" --json aws-identity > "$T/out" 2>&1 || fail "pod identity: $(cat "$T/out")"
jq -e '(.source | contains("pod identity")) and (.access_key_id | startswith("ASIAPOD"))' "$T/out" >/dev/null ||
	fail "pod identity: $(cat "$T/out")"
ok "EKS Pod Identity: the agent's URI with the token file"

env -i PATH="$PATH" HOME="$T/home" AWS_ENDPOINT_URL="$URL" AWS_EC2_METADATA_SERVICE_ENDPOINT="$URL" \
	"$S" --json aws-identity > "$T/out" 2>&1 || fail "IMDSv2: $(cat "$T/out")"
jq -e '.source == "instance role slipway-node" and (.access_key_id | startswith("ASIAIMDS"))' "$T/out" >/dev/null ||
	fail "IMDSv2: $(cat "$T/out")"
env -i PATH="$PATH" HOME="$T/home" AWS_ENDPOINT_URL="$URL" AWS_EC2_METADATA_SERVICE_ENDPOINT="$URL" \
	"$S" --json aws-identity --role-arn "$ROLE" > "$T/out" 2>&1 || fail "IMDSv2 + role: $(cat "$T/out")"
jq -e '(.source | startswith("role")) and (.access_key_id | startswith("ASIAROLE"))' "$T/out" >/dev/null ||
	fail "IMDSv2 + role: $(cat "$T/out")"
ok "IMDSv2 (a token first) and a role assumed on top"

clean "$S" aws-identity > "$T/out" 2>&1 && fail "no credentials, yet it succeeded"
grep -q "no AWS credentials: none in the environment" "$T/out" || fail "no credentials: $(cat "$T/out")"
ok "no credentials anywhere: one message naming every source"

# --- the EKS token ----------------------------------------------------------
clean AWS_ACCESS_KEY_ID=AKIDBASE AWS_SECRET_ACCESS_KEY=$SECRET "$S" eks-token dev > "$T/cred" 2>&1 || fail "eks-token: $(cat "$T/cred")"
jq -e '.kind == "ExecCredential" and (.status.token | startswith("k8s-aws-v1.")) and .status.expirationTimestamp' \
	"$T/cred" >/dev/null || fail "eks-token: $(cat "$T/cred")"
never_secret "$T/cred"
# what EKS's authenticator does with it: decode, GET the presigned URL with the cluster header
presigned=$($PY -c 'import base64,json,sys; t=json.load(open(sys.argv[1]))["status"]["token"][11:]; print(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4)).decode())' "$T/cred")
case $presigned in "$URL/?Action=GetCallerIdentity&Version=2011-06-15&"*) ;; *) fail "the token's URL: $presigned" ;; esac
code=$(curl -s -o "$T/sts" -w '%{http_code}' -H "x-k8s-aws-id: dev" "$presigned")
[ "$code" = 200 ] && grep -q "<Account>111122223333</Account>" "$T/sts" || fail "the stand-in refused the token: $code $(cat "$T/sts")"
code=$(curl -s -o "$T/sts" -w '%{http_code}' -H "x-k8s-aws-id: prod" "$presigned")
[ "$code" = 403 ] || fail "the token was accepted for another cluster: $code"
info='{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}'
clean AWS_ACCESS_KEY_ID=AKIDBASE AWS_SECRET_ACCESS_KEY=$SECRET KUBERNETES_EXEC_INFO="$info" \
	"$S" eks-token dev > "$T/cred1" 2>&1 || fail "eks-token with KUBERNETES_EXEC_INFO: $(cat "$T/cred1")"
jq -e '.apiVersion == "client.authentication.k8s.io/v1"' "$T/cred1" >/dev/null ||
	fail "eks-token does not answer in the apiVersion kubectl asks for: $(cat "$T/cred1")"
ok "eks-token: an ExecCredential whose presigned GetCallerIdentity the stand-in accepts for its cluster only"

# every signed request the stand-in saw was checked; the only refusals are the ones provoked
n=$(jq -s '[.[] | select(.valid == false)] | length' "$T/aws.jsonl")
[ "$n" -le 6 ] || fail "$n requests refused: $(jq -c 'select(.valid == false)' "$T/aws.jsonl")"
! grep -q "$SECRET" "$T/aws.jsonl" || fail "a secret reached the stand-in's record"
ok "the stand-in saw $(grep -c '' "$T/aws.jsonl") requests, only the $n provoked refused"
