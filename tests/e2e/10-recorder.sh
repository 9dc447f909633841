#!/bin/bash
# 10-recorder: the GitHub/Slack stand-in answers and records what it should,
# refuses (and flags) what GitHub and Slack would refuse, and injects faults.
set -eu
SRC=${SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$SRC/tests/lib/recorder.sh"
dir=${TMPDIR:-/tmp}/rec
trap 'sw_recorder_stop "$dir"' EXIT

sw_recorder_start "$dir" --token gh-token --slack-token xoxb-test \
	--fail 'POST /repos/*/statuses/*:500:1' \
	--fail 'POST /slack/webhook:429:1:3'
U=$SW_RECORDER_URL
SHA=0123456789abcdef0123456789abcdef01234567
fails=0
check() {   # check NAME EXPECTED ACTUAL
	if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: expected [$2], got [$3]"; fails=$((fails + 1)); fi
}
# gh METHOD PATH BODY [extra curl args]: prints "STATUS BODY"
gh() {
	local m=$1 p=$2 b=$3
	shift 3
	# GH_UA= and GH_VER= (set but empty) leave those headers out
	curl -s -o "$dir/resp" -w '%{http_code}' -X "$m" "$U$p" \
		-H 'Accept: application/vnd.github+json' \
		-H "X-GitHub-Api-Version:${GH_VER-2022-11-28}" \
		-H "User-Agent:${GH_UA-slipway-test}" -H 'Authorization: Bearer gh-token' \
		-H 'Content-Type: application/json' --data-binary "$b" "$@"
}
status_body='{"state":"success","context":"slipway/test","description":"ok","target_url":"http://x/runs/1"}'

# a fault first, then the real answer
check "status: injected 500" 500 "$(gh POST /repos/acme/shop/statuses/$SHA "$status_body")"
check "status: 201" 201 "$(gh POST /repos/acme/shop/statuses/$SHA "$status_body")"
check "status: echoes state" success "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$dir/resp")"

long=$(printf 'x%.0s' $(seq 141))
check "status: description > 140 -> 422" 422 \
	"$(gh POST /repos/acme/shop/statuses/$SHA "{\"state\":\"success\",\"description\":\"$long\"}")"
check "status: 422 has GitHub's shape" "Validation Failed" \
	"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["message"])' "$dir/resp")"
check "status: bad state -> 422" 422 "$(gh POST /repos/acme/shop/statuses/$SHA '{"state":"done"}')"
check "status: bad JSON -> 400" 400 "$(gh POST /repos/acme/shop/statuses/$SHA '{nope')"
check "status: no User-Agent -> 403" 403 \
	"$(GH_UA= gh POST /repos/acme/shop/statuses/$SHA "$status_body")"
check "status: wrong token -> 401" 401 \
	"$(gh POST /repos/acme/shop/statuses/$SHA "$status_body" -H 'Authorization: Bearer nope')"
check "status: no API version -> 400" 400 \
	"$(GH_VER= gh POST /repos/acme/shop/statuses/$SHA "$status_body")"

check "comment: 201" 201 "$(gh POST /repos/acme/shop/issues/12/comments '{"body":"hello"}')"
cid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$dir/resp")
check "comment: edit 200" 200 "$(gh PATCH /repos/acme/shop/issues/comments/$cid '{"body":"edited"}')"
check "comment: edit unknown 404" 404 "$(gh PATCH /repos/acme/shop/issues/comments/999999 '{"body":"x"}')"
python3 -c 'import json; print(json.dumps({"body": "y" * 65537}))' >"$dir/big.json"
check "comment: > 65536 -> 422" 422 "$(gh POST /repos/acme/shop/issues/12/comments @"$dir/big.json")"
check "unknown GitHub route -> 404" 404 "$(gh GET /repos/acme/shop/nothing '')"

# Slack incoming webhook: the first is throttled with Retry-After
sl() { curl -s -o "$dir/resp" -D "$dir/hdr" -w '%{http_code}' -X POST "$U/slack/webhook" \
	-H 'Content-Type: application/json' --data-binary "$1"; }
msg='{"text":"run 1 passed","blocks":[{"type":"header","text":{"type":"plain_text","text":"Passed"}},{"type":"section","text":{"type":"mrkdwn","text":"*ok*"}}]}'
check "slack: injected 429" 429 "$(sl "$msg")"
check "slack: Retry-After" 3 "$(tr -d '\r' <"$dir/hdr" | sed -n 's/^Retry-After: //Ip')"
check "slack: 200 ok" "200 ok" "$(sl "$msg") $(cat "$dir/resp")"
blocks=$(python3 -c 'import json; print(json.dumps({"text":"t","blocks":[{"type":"divider"}]*51}))')
check "slack: 51 blocks -> 400 invalid_payload" "400 invalid_payload" "$(sl "$blocks") $(cat "$dir/resp")"
check "slack: not JSON -> 400" 400 "$(sl 'text=hi')"
longsec=$(python3 -c 'import json; print(json.dumps({"text":"t","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"x"*3001}}]}))')
check "slack: section > 3000 -> 400" 400 "$(sl "$longsec")"

# Slack Web API
api() { curl -s -o "$dir/resp" -w '%{http_code}' -X POST "$U/api/$1" \
	-H 'Content-Type: application/json; charset=utf-8' "${@:3}" --data-binary "$2"; }
api chat.postMessage '{"channel":"C1","text":"hi"}' -H 'Authorization: Bearer xoxb-test' >/dev/null
ts=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"] and d["channel"]=="C1"; print(d["ts"])' "$dir/resp")
check "chat.postMessage: ts" 1 "$([ -n "$ts" ] && echo 1)"
api chat.update "{\"channel\":\"C1\",\"ts\":\"$ts\",\"text\":\"done\"}" -H 'Authorization: Bearer xoxb-test' >/dev/null
check "chat.update: ok" True "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ok"])' "$dir/resp")"
api chat.postMessage '{"channel":"C1","text":"hi"}' >/dev/null
check "chat.postMessage without token: ok false" not_authed \
	"$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"])' "$dir/resp")"

# what was recorded
n_total=$(wc -l <"$dir/requests.jsonl")
check "recorded every request" 21 "$n_total"
check "valid statuses recorded" 2 "$(sw_recorder_count "$dir" 'r["route"] == "github.status" and r["valid"]')"
check "injected faults recorded" 2 "$(sw_recorder_count "$dir" '"injected" in r')"
check "invalid requests flagged" 13 "$(sw_recorder_count "$dir" 'not r["valid"]')"
check "reason given for the long description" 1 \
	"$(sw_recorder_count "$dir" '"description is too long" in (r.get("reason") or "")')"
check "token not recorded" 0 "$(grep -c 'gh-token\|xoxb-test' "$dir/requests.jsonl" || true)"
check "body recorded as JSON" 1 \
	"$(sw_recorder_count "$dir" 'r["route"] == "github.comment.update" and r["body"] == {"body": "edited"}')"
if sw_recorder_invalid "$dir" >/dev/null; then check "sw_recorder_invalid fails" 1 0; fi

[ $fails -eq 0 ]
