#!/bin/bash
# What a pull request's Terraform change will cost, end to end: the real
# terraform with the real AWS provider (from a local provider mirror: a plan
# of new resources asks AWS nothing) plans a PR adding a NAT gateway and an
# EKS node group of two m5.large; slipway, holding only IRSA-style
# web-identity files, gets credentials from the AWS stand-in's STS, asks its
# Price List (GetProducts, each request's SigV4 checked by the stand-in's
# own code) and the PR comment shows the monthly cost of each line and the
# total. A second push is priced from the cache (no new GetProducts);
# without credentials the section says why.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/webhook.sh"
. "$SRC/tests/lib/recorder.sh"
command -v terraform >/dev/null 2>&1 || { echo "SKIP: terraform is not on PATH"; exit 0; }
MIRROR=${SW_TF_MIRROR:-/opt/tf-plugins}
[ -d "$MIRROR/registry.terraform.io/hashicorp/aws" ] ||
	{ echo "SKIP: no AWS provider in a local mirror ($MIRROR; set SW_TF_MIRROR)"; exit 0; }
T=$TMPDIR
SHARED=$(shared_dir)
FIX=$SHARED/fixtures/github
PY=$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)
ROLE=arn:aws:iam::111122223333:role/slipway
export WEBHOOK_SECRET=cost-secret GH_TOKEN=ghp_cost_token
export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
printf '%s\n' 'provider_installation {' '  filesystem_mirror {' "    path    = \"$MIRROR\"" \
	'    include = ["registry.terraform.io/hashicorp/aws"]' '  }' \
	'  direct { exclude = ["registry.terraform.io/hashicorp/aws"] }' '}' > "$T/cli.tfrc"

pid= spid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	[ -n "$spid" ] && kill "$spid" 2>/dev/null
	sw_recorder_stop "$T/rec"
}
trap cleanup EXIT

# the stand-in: STS for the web identity, and prices (a Windows twin at the
# same price, eu-west-1 dearer, the NAT's bytes: the filters must pick one)
cat > "$T/prices.json" <<'JSON'
[
 {"service": "AmazonEC2", "unit": "Hrs", "usd": "0.0960000000", "attributes": {"regionCode": "us-east-1",
  "instanceType": "m5.large", "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
  "capacitystatus": "Used", "productFamily": "Compute Instance"}},
 {"service": "AmazonEC2", "unit": "Hrs", "usd": "0.1880000000", "attributes": {"regionCode": "us-east-1",
  "instanceType": "m5.large", "operatingSystem": "Windows", "tenancy": "Shared", "preInstalledSw": "NA",
  "capacitystatus": "Used", "productFamily": "Compute Instance"}},
 {"service": "AmazonEC2", "unit": "Hrs", "usd": "0.1070000000", "attributes": {"regionCode": "eu-west-1",
  "instanceType": "m5.large", "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
  "capacitystatus": "Used", "productFamily": "Compute Instance"}},
 {"service": "AmazonEC2", "unit": "Hrs", "usd": "0.0450000000", "attributes": {"regionCode": "us-east-1",
  "productFamily": "NAT Gateway", "usagetype": "NatGateway-Hours"}},
 {"service": "AmazonEC2", "unit": "GB", "usd": "0.0450000000", "attributes": {"regionCode": "us-east-1",
  "productFamily": "NAT Gateway", "usagetype": "NatGateway-Bytes"}}
]
JSON
echo "eyJhbGciOiJSUzI1NiJ9.irsa.token" > "$T/irsa-token"
$PY "$SRC/tests/aws/standin.py" --port 0 --out "$T/aws.jsonl" --role "$ROLE" \
	--web-token-file "$T/irsa-token" --prices "$T/prices.json" > "$T/sport" 2> "$T/standin.log" &
spid=$!
wait_for test -s "$T/sport" || fail "the AWS stand-in did not start: $(cat "$T/standin.log")"
AWS_URL=http://127.0.0.1:$(cat "$T/sport")
aws_count() {   # aws_count PY_COND over r, a request the stand-in recorded
	$PY -c 'import json, sys
print(sum(1 for r in map(json.loads, open(sys.argv[1])) if eval(sys.argv[2])))' "$T/aws.jsonl" "$1"
}

sw_recorder_start "$T/rec" --token "$GH_TOKEN" || fail "recorder"

git init -q --bare "$T/origin.git"
git clone -q "$T/origin.git" "$T/work" 2>/dev/null || fail "clone"
cd "$T/work" || fail "cd work"
git config user.email dev@example.com; git config user.name Dev
git checkout -q -b dev
mkdir -p infra/environment/dev
cat > infra/environment/dev/main.tf <<TF
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
  backend "local" { path = "$T/state/dev.tfstate" }
}
provider "aws" {
  region                      = "us-east-1"
  access_key                  = "AKIDPLANONLY"
  secret_key                  = "plan-only"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
}
TF
git add -A && git commit -qm "infra" && git push -q origin dev
cd "$T" || fail "cd"
wait_comment() {   # wait_comment RUN PY_COND
	for _ in $(seq 1 "$(sw_slow_ticks 30)"); do [ "$(comment_has "$1" "$2")" -ge 1 ] && return 0; sleep 0.1; done
	return 1
}
pr_run() {   # pr_run GUID: waits for the run of a delivery to end, prints its id
	wait_until 'test -n "$(run_of '"$1"')"' || fail "delivery $1 not mapped"
	local r; r=$(run_of "$1")
	[ "$(wait_final "$r" 300)" = success ] || { tail -30 "$T/daemon.log" >&2; fail "run $r: $(q "select name||':'||status||':'||coalesce(reason,'') from stages where run_id=$r")"; }
	echo "$r"
}
start_slipwayd() {   # start_slipwayd [VAR=VALUE...]: slipwayd with only this of AWS
	port=$(free_port)
	URL=http://127.0.0.1:$port
	cat > "$T/slipway.yaml" <<YAML
server: {listen: 127.0.0.1:$port, public_url: $URL, data_dir: data}
github:
  api_url: $SW_RECORDER_URL
  webhook_secret: {secret_env: WEBHOOK_SECRET}
  token: {secret_env: GH_TOKEN}
runner: {backend: local}
terraform: {cli_config: $T/cli.tfrc}
aws: {region: us-east-1, pricing: true}
repositories:
  - {name: acme/infra, url: "file://$T/origin.git"}
environments:
  - name: dev
    branch: dev
    infra:
      modules: [infra/environment/dev]
      timeout: 5m
YAML
	env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_PROFILE HOME="$T/home" \
		AWS_EC2_METADATA_DISABLED=true "$@" "$BUILD/slipwayd" -c "$T/slipway.yaml" 2>> "$T/daemon.log" &
	pid=$!
	wait_for curl -sf "$URL/readyz" || { tail -30 "$T/daemon.log"; fail "daemon did not start"; }
}
mkdir -p "$T/home"
start_slipwayd AWS_ENDPOINT_URL="$AWS_URL" AWS_ROLE_ARN="$ROLE" AWS_WEB_IDENTITY_TOKEN_FILE="$T/irsa-token"

# 1. a PR adding a NAT gateway and two m5.large nodes (and a bucket, not priced)
cat >> "$T/work/infra/environment/dev/main.tf" <<'TF'
resource "aws_nat_gateway" "main" {
  allocation_id = "eipalloc-0123456789abcdef0"
  subnet_id     = "subnet-0123456789abcdef0"
}
resource "aws_eks_node_group" "workers" {
  cluster_name    = "dev"
  node_group_name = "workers"
  node_role_arn   = "arn:aws:iam::111122223333:role/node"
  subnet_ids      = ["subnet-0123456789abcdef0"]
  instance_types  = ["m5.large"]
  scaling_config {
    desired_size = 2
    max_size     = 3
    min_size     = 1
  }
}
resource "aws_s3_bucket" "logs" {
  bucket = "acme-logs"
}
TF
P1=$(branch_commit nat dev "a NAT gateway and two nodes")
open_pr 21 "$P1" nat dev acme/infra p1
R1=$(pr_run p1)
# 0.045 * 730 = 32.85; 2 * 0.096 * 730 = 140.16; total 173.01
wait_comment "$R1" "'Cost: \`dev\` (us-east-1)' in b and '+\$173.01 a month' in b and '| \`aws_eks_node_group.workers\` | 2 × m5.large | \$140.16 | +\$140.16 |' in b and '| \`aws_nat_gateway.main\` | hours (data processed not priced) | \$32.85 | +\$32.85 |' in b and 'aws_s3_bucket.logs' in b and 'prices of 2026-11-01' in b" ||
	fail "the PR comment lacks the cost: $(tail -c 4000 "$T/rec/requests.jsonl")"
[ "$(comment_has "$R1" "'Cost:' in b and (lambda c: c.index('aws_eks_node_group.workers') < c.index('aws_nat_gateway.main') < c.index('aws_s3_bucket.logs'))(b[b.index('Cost:'):])")" -ge 1 ] ||
	fail "cost lines not biggest first, the unpriced last"
n=$(aws_count "r.get('route') == 'pricing.GetProducts' and r['valid'] and r['status'] == 200 and r['key'].startswith('ASIAWEB') and r['matched'] == 1")
[ "$n" = 2 ] || fail "expected 2 signed GetProducts naming one product each, from web-identity credentials; saw $n: $(cat "$T/aws.jsonl")"
[ "$(aws_count "r.get('route') == 'pricing.GetProducts' and not r['valid']")" = 0 ] || fail "an invalid GetProducts: $(cat "$T/aws.jsonl")"
[ "$(aws_count "r.get('route') == 'sts.AssumeRoleWithWebIdentity' and r['valid']")" -ge 1 ] || fail "no web identity exchange"
q "select group_concat(data,'') from log_chunks where stage_id=(select id from stages where run_id=$R1 and name='terraform-dev')" |
	grep -q 'cost of infra/environment/dev: +173.01 USD a month (2 priced, 0 unknown)' || fail "the stage log lacks the cost line"
ok "a PR adding a NAT gateway and 2 × m5.large: +\$173.01 a month in its comment, priced by signed GetProducts with web-identity credentials"

# 2. pushed again: the prices come from the cache
(cd "$T/work" && git checkout -q nat && echo "# again" >> infra/environment/dev/main.tf && git commit -qam again && git push -q origin nat) || fail "push again"
P2=$(git -C "$T/work" rev-parse HEAD)
open_pr 21 "$P2" nat dev acme/infra p2 synchronize
R2=$(pr_run p2)
wait_comment "$R2" "'+\$173.01 a month' in b" || fail "the second comment lacks the cost"
[ "$(aws_count "r.get('route') == 'pricing.GetProducts'")" = 2 ] || fail "prices asked again instead of the cache"
[ "$(q "select count(*) from kv where key like 'price:AmazonEC2:%'")" = 2 ] || fail "the price cache: $(q "select key from kv where key like 'price:%'")"
ok "the same PR pushed again: priced from the cache (no new GetProducts)"

# 3. no AWS credentials: the plan is shown, the cost section says why it is empty
kill "$pid"; wait "$pid" 2>/dev/null; pid=
start_slipwayd AWS_ENDPOINT_URL="$AWS_URL"
(cd "$T/work" && git checkout -q nat && echo "# third" >> infra/environment/dev/main.tf && git commit -qam third && git push -q origin nat) || fail "push third"
P3=$(git -C "$T/work" rev-parse HEAD)
open_pr 21 "$P3" nat dev acme/infra p3 synchronize
R3=$(pr_run p3)
wait_comment "$R3" "'Cost: \`dev\`' in b and 'Not shown: no AWS credentials for prices' in b and '3 to add' in b" ||
	fail "no credentials: $(tail -c 3000 "$T/rec/requests.jsonl")"
ok "no AWS credentials: the plan is shown, the cost section says why it is empty"
