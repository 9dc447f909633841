#!/bin/bash
# slipway as a GitHub App (issue 13), against the stand-in as the App's
# GitHub (tests/recorder: it verifies every JWT with the App's public key,
# hands out installation tokens that expire after a few seconds and takes
# nothing else on the REST routes), with the local runner:
#  - a key that does not parse is a config error naming the file, never
#    showing the key; `slipwayd --check` fetches a token per repository;
#  - a pull request's statuses and comment go out with installation tokens,
#    and its clone comes over smart HTTP from the stand-in's git server
#    with user x-access-token and the installation token;
#  - a 401 to a token refreshes it once; a token past its expiry is never
#    sent: the second half of the run goes out with a new one;
#  - a revoked installation: a clear error in the log, as the run's reason
#    (on its page), in a banner on the status page, as the waiting outbox
#    rows' last error and in `slipwayd --check`.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/webhook.sh"
. "$SRC/tests/lib/recorder.sh"
T=$TMPDIR
FIX=$(shared_dir)/fixtures/github
export WEBHOOK_SECRET=app-secret
TTL=6

pid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	sw_recorder_stop "$T/rec"
}
trap cleanup EXIT

# the App's key pair, made here
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/app.pem" 2>/dev/null ||
	fail "openssl genpkey"
openssl pkey -in "$T/app.pem" -pubout -out "$T/app.pub" || fail "openssl pkey -pubout"

# the repository, served by the stand-in at /git/acme/shop.git; its one
# stage waits for a file the test creates
new_origin
mkdir -p "$T/git/acme" && mv "$T/origin.git" "$T/git/acme/shop.git" &&
	git remote set-url origin "$T/git/acme/shop.git" || fail "origin"
printf 'stages:\n  - name: wait\n    commands:\n      - cat app.txt\n      - %s\n' \
	"while [ ! -e \"$T/go-\$SLIPWAY_RUN_ID\" ]; do sleep 0.05; done" > .slipway.yml
echo hello > app.txt
git add -A && git commit -qm initial && git push -q origin main
C1=$(git rev-parse HEAD)
cd "$T"

sw_recorder_start "$T/rec" --app-id 4242 --app-public-key "$T/app.pub" \
	--app-install acme/shop=11 --app-token-ttl "$TTL" --git-root "$T/git" \
	--fail 'POST /repos/*/statuses/*:401:1' || fail "recorder"

port=$(free_port)
URL=http://127.0.0.1:$port
config() {  # config KEYFILE
	cat <<YAML
server: {listen: 127.0.0.1:$port, public_url: $URL, data_dir: data, log_level: debug}
github:
  api_url: $SW_RECORDER_URL
  webhook_secret: {secret_env: WEBHOOK_SECRET}
  app:
    id: 4242
    private_key: {secret_file: $1}
runner: {backend: local}
repositories:
  - {name: acme/shop, url: "$SW_RECORDER_URL/git/acme/shop.git"}
YAML
}

# --- a key that does not parse ----------------------------------------------
printf -- '-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYTEXT\n-----END PRIVATE KEY-----\n' > "$T/bad.pem"
config "$T/bad.pem" > "$T/bad.yaml"
out=$("$BUILD/slipwayd" -c "$T/bad.yaml" --check 2>&1); rc=$?
[ $rc = 2 ] || fail "--check with a bad key exited $rc: $out"
echo "$out" | grep -q "github.app.private_key: file $T/bad.pem: not a PEM private key" ||
	fail "--check does not say which key is bad: $out"
echo "$out" | grep -q TOPSECRETKEYTEXT && fail "--check printed the key: $out"
ok "a key that does not parse: $out"

# --- --check reaches GitHub --------------------------------------------------
config "$T/app.pem" > "$T/slipway.yaml"
out=$("$BUILD/slipwayd" -c "$T/slipway.yaml" --check 2>&1) || fail "--check: $out"
echo "$out" | grep -q "github.app: acme/shop: ok (installation 11)" || fail "--check: $out"
ok "--check: $(echo "$out" | tail -1)"
sed "s|api_url: .*|api_url: http://127.0.0.1:$(free_port)|" "$T/slipway.yaml" > "$T/off.yaml"
out=$("$BUILD/slipwayd" -c "$T/off.yaml" --check 2>&1) || fail "--check without GitHub failed: $out"
echo "$out" | grep -q "github.app: acme/shop: not checked, GitHub is out of reach" || fail "--check: $out"
ok "--check with GitHub out of reach says so and passes"

# --- a pull request with the App ---------------------------------------------
start_daemon
pr "$C1" opened 1 > "$T/pr1.json"
[ "$(deliver pull_request "$T/pr1.json" guid-1)" = 202 ] || fail "delivery answered $(cat "$T/resp")"
wait_until 'test -n "$(run_of guid-1)"' || fail "no run"
R1=$(run_of guid-1)
wait_until "test \"\$(q \"select status from stages where run_id=$R1 and name='wait'\")\" = running" 60 ||
	fail "run $R1 never ran its stage: $(q "select status, reason from runs where id=$R1")"
# the clone came over HTTP with the installation token
[ "$(sw_recorder_count "$T/rec" "r['route']=='git' and r.get('auth')=='installation:11' and r['status']==200")" -ge 1 ] ||
	fail "no git request with the installation token: $(grep '"git"' "$T/rec/requests.jsonl" | head -3)"
ok "run $R1's clone came over smart HTTP as x-access-token with installation 11's token"
# the running statuses went out (one refused once with 401 and sent again)
wait_until "test \"\$(q \"select count(*) from outbox where state='pending'\")\" = 0" 30 ||
	fail "outbox did not drain: $(q "select idempotency_key, attempts, last_error from outbox where state='pending'")"
[ "$(sw_recorder_count "$T/rec" "r.get('injected')==401")" = 1 ] || fail "the 401 was not injected"
tokens_before=$(sw_recorder_count "$T/rec" "r['route']=='github.app.token' and r['status']==201")
[ "$tokens_before" -ge 2 ] || fail "the 401 did not refresh the token ($tokens_before tokens)"
python3 - "$T/rec/requests.jsonl" <<'PY' || fail "the status refused with 401 was not sent again with another token"
import json, sys
st = [r for r in map(json.loads, open(sys.argv[1])) if r["route"] == "github.status"]
i = next(i for i, r in enumerate(st) if r.get("injected") == 401)
again = [r for r in st[i + 1:] if r["path"] == st[i]["path"] and r["status"] == 201]
sys.exit(0 if again and again[0]["token_no"] != st[i]["token_no"] else 1)
PY
ok "a 401 dropped the token and the status went out with a new one ($tokens_before tokens so far)"

# let every token minted so far expire (the stand-in says when), then finish
last_exp=$(python3 -c "
import json
print(max(json.loads(l).get('expires_at', 0) for l in open('$T/rec/requests.jsonl')))")
wait_until "test \$(date +%s) -gt $last_exp" $((TTL * 3)) || fail "the tokens did not expire"
touch "$T/go-$R1"
st=$(wait_final "$R1" 60)
[ "$st" = success ] || fail "run $R1 ended $st: $(q "select reason from runs where id=$R1")"
wait_until "test \"\$(q \"select count(*) from outbox where state='pending'\")\" = 0" 30 ||
	fail "outbox did not drain: $(q "select idempotency_key, attempts, last_error from outbox where state='pending'")"
sent() { sw_recorder_count "$T/rec" "r['route']=='$1' and r['status'] in (200, 201) and r.get('auth')=='installation:11'"; }
[ "$(sw_recorder_count "$T/rec" "r['route']=='github.status' and r['body']['state']=='success' and r['body']['context']=='slipway'")" = 1 ] ||
	fail "the run's success status did not go out"
[ "$(sent github.comment.create)" -ge 1 ] || fail "the PR comment was not created with an installation token"
tokens_after=$(sw_recorder_count "$T/rec" "r['route']=='github.app.token' and r['status']==201")
[ "$tokens_after" -gt "$tokens_before" ] || fail "no new token after the old ones expired"
ok "run $R1's statuses ($(sent github.status)) and comment ($(sent github.comment.create)) went out with installation tokens; a new one ($tokens_after in all) after expiry"

# every JWT the stand-in got verified; no expired token was ever sent; nothing else invalid
[ "$(sw_recorder_count "$T/rec" "'jwt' in r and 'invalid' in r['jwt']")" = 0 ] ||
	fail "a JWT did not verify: $(grep -m1 '"invalid"' "$T/rec/requests.jsonl")"
njwt=$(sw_recorder_count "$T/rec" "'jwt' in r and 'iss' in r['jwt']")
[ "$njwt" -ge "$tokens_after" ] || fail "only $njwt JWTs for $tokens_after tokens"
[ "$(sw_recorder_count "$T/rec" "r.get('token_expired')")" = 0 ] || fail "an expired token was sent"
[ "$(sw_recorder_count "$T/rec" "r.get('auth') in ('jwt', None) and r['route'].startswith('github.') and not r['route'].startswith('github.app')")" = 0 ] ||
	fail "a REST request went out without an installation token"
sw_recorder_invalid "$T/rec" || fail "invalid requests (above)"
ok "all $njwt JWTs verified with the App's public key (RS256, iss, iat/exp); no expired or foreign token sent"
grep -q 'TOPSECRET\|ghs_' "$T/daemon.log" && fail "a token reached the log"
q "select payload || coalesce(last_error, '') from outbox" | grep -q 'ghs_' && fail "a token reached the database"

# --- the installation revoked ------------------------------------------------
# a new commit, so that the run must fetch
(cd "$T/work" && echo again > app.txt && git add -A && git commit -qm second && git push -q origin main) ||
	fail "push"
C2=$(git -C "$T/work" rev-parse HEAD)
curl -sf -X POST "$SW_RECORDER_URL/_recorder/revoke?installation=11" >/dev/null || fail "revoke"
pr "$C2" synchronize 1 > "$T/pr2.json"
[ "$(deliver pull_request "$T/pr2.json" guid-2)" = 202 ] || fail "delivery answered $(cat "$T/resp")"
wait_until 'test -n "$(run_of guid-2)"' || fail "no run"
R2=$(run_of guid-2)
st=$(wait_final "$R2" 60)
reason=$(q "select reason from runs where id=$R2")
[ "$st" = error ] || fail "run $R2 after the revocation ended $st: $reason"
echo "$reason" | grep -Eq "installation 11 .*revoked|not installed on acme/shop" ||
	fail "run $R2's reason does not say the App lost its installation: $reason"
curl -s "$URL/runs/$R2" | grep -Eq "revoked|not installed" || fail "the run page does not show the reason"
curl -s "$URL/" | grep -Eq "<b>GitHub App</b>: no token for 1 repository.*(revoked|not installed)" ||
	fail "the status page has no GitHub App banner"
grep -Eq 'event=github.token_failed repo=acme/shop err=.*(revoked|not installed)' "$T/daemon.log" ||
	fail "no clear log line: $(grep github.token "$T/daemon.log" | tail -3)"
wait_until "q \"select last_error from outbox where state='pending'\" | grep -Eq 'revoked|not installed'" 30 ||
	fail "the outbox does not say why it waits: $(q "select idempotency_key, last_error from outbox where state='pending'")"
ok "a revoked installation: run $R2 failed with: $reason"
out=$("$BUILD/slipwayd" -c "$T/slipway.yaml" --check 2>&1); rc=$?
[ $rc = 1 ] || fail "--check after the revocation exited $rc: $out"
echo "$out" | grep -q "github.app: acme/shop: GitHub App 4242 is not installed on acme/shop" || fail "--check: $out"
ok "--check: $(echo "$out" | tail -1)"
stop_daemon
