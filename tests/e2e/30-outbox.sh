#!/bin/bash
# 30-outbox: the real daemon delivers outbox rows to the GitHub/Slack
# stand-in (tests/recorder): a commit status through an injected 500, a PR
# comment created then edited in place, a Slack webhook message through a
# 429 with Retry-After; every request valid by GitHub's and Slack's rules,
# and neither the token nor the webhook URL in the daemon's log.
#
# Rows are written with the sqlite3 CLI while the daemon runs, as another
# process would through storage (the database is in WAL mode), in the
# envelope format of report/outbox.c.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/recorder.sh"
T=$TMPDIR
command -v sqlite3 >/dev/null || { echo "skip: no sqlite3 CLI"; exit 0; }
rec=$T/rec
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	sw_recorder_stop "$rec"
}
trap cleanup EXIT

GH_TOKEN=ghp_e2eSeCrEt0123456789
BOT_TOKEN=xoxb-e2e-SeCrEt
sw_recorder_start "$rec" --token "$GH_TOKEN" --slack-token "$BOT_TOKEN" \
	--fail 'POST /repos/*/statuses/*:500:1' \
	--fail 'POST /slack/webhook:429:1:1' || fail "recorder did not start"
U=$SW_RECORDER_URL

port=$(free_port)
export SW_E2E_GH_TOKEN=$GH_TOKEN SW_E2E_HOOK=$U/slack/webhook
cat > "$T/slipway.yaml" <<YAML
server:
  listen: 127.0.0.1:$port
  data_dir: data
  log_level: info
github:
  api_url: $U
  token: {secret_env: SW_E2E_GH_TOKEN}
slack:
  webhook_url: {secret_env: SW_E2E_HOOK}
  api_url: $U/api
YAML

"$BUILD/slipwayd" -c "$T/slipway.yaml" 2> "$T/daemon.log" &
pid=$!
wait_for curl -sf "http://127.0.0.1:$port/readyz" || { cat "$T/daemon.log"; fail "daemon not ready"; }
DB=$T/data/slipway.db

sql() { sqlite3 -cmd '.timeout 5000' "$DB" "$@"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# enqueue TARGET KIND KEY PAYLOAD
enqueue() {
	local n
	n=$(now_ms)
	sql "INSERT INTO outbox (target, kind, idempotency_key, payload, created_at, enqueued_at,
	     next_attempt_at) VALUES ('$1', '$2', '$3', '$4', $n, $n, $n)" || fail "insert $3"
}
# count PY_EXPR: recorded requests matching
count() { sw_recorder_count "$rec" "$1"; }
wait_count() {   # wait_count N PY_EXPR [SECONDS]
	local i
	for i in $(seq 1 $(sw_slow_ticks ${3:-20})); do
		[ "$(count "$2")" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

SHA=0123456789abcdef0123456789abcdef01234567
enqueue github commit_status "gh:status:acme/shop:$SHA:slipway" \
	"{\"repo\":\"acme/shop\",\"sha\":\"$SHA\",\"body\":{\"state\":\"success\",\"context\":\"slipway\",\"description\":\"all green\"}}"
enqueue github pr_comment "gh:comment:acme/shop:7" \
	'{"repo":"acme/shop","pr":12,"run":7,"body":"<!-- slipway:run:7 -->\nrunning"}'
enqueue slack slack "slack:run:7" '{"channel":null,"message":{"text":"run 7 started"}}'

# The status: a 500 first, then after the backoff (5 s) a 201.
wait_count 2 'r["route"] == "github.status"' 20 || { cat "$T/daemon.log"; fail "status not retried"; }
wait_count 1 'r["route"] == "github.comment.create"' || fail "no comment created"
wait_count 2 'r["route"] == "slack.webhook"' || fail "webhook not retried after 429"
ok "status through a 500, comment created, webhook through a 429"

# A new version of the comment (what storage's enqueue does to a sent row).
wait_for sh -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$DB' \"SELECT state FROM outbox WHERE idempotency_key = 'gh:comment:acme/shop:7'\")\" = sent ]" \
	|| fail "comment row not marked sent"
n=$(now_ms)
sql "UPDATE outbox SET payload = '{\"repo\":\"acme/shop\",\"pr\":12,\"run\":7,\"body\":\"<!-- slipway:run:7 -->\npassed\"}',
     rev = rev + 1, state = 'pending', attempts = 0, next_attempt_at = $n, enqueued_at = $n
     WHERE idempotency_key = 'gh:comment:acme/shop:7'"
wait_count 1 'r["route"] == "github.comment.update"' || { cat "$T/daemon.log"; fail "comment not edited"; }
[ "$(count 'r["route"] == "github.comment.create"')" = 1 ] || fail "a second comment was created"
ok "comment edited in place"

wait_for sh -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$DB' \"SELECT count(*) FROM outbox WHERE state = 'sent'\")\" = 3 ]" \
	|| { sql "SELECT idempotency_key, state, last_error FROM outbox"; fail "not every row sent"; }
sw_recorder_invalid "$rec" || fail "slipway sent requests GitHub or Slack would refuse"
grep -q 'event=outbox.retry.*status=500' "$T/daemon.log" || fail "no retry line for the 500"
grep -q 'event=outbox.sent.*target=slack' "$T/daemon.log" || fail "no sent line for Slack"
if grep -q -e "$GH_TOKEN" -e 'slack/webhook' "$T/daemon.log"; then
	grep -e "$GH_TOKEN" -e 'slack/webhook' "$T/daemon.log"
	fail "a secret in the daemon log"
fi
ok "all rows sent, all requests valid, no secret in the log"

kill -TERM $pid
wait_gone $pid 10 || fail "slipwayd did not stop"
wait $pid; rc=$?
pid=
[ "$rc" = 0 ] || fail "exit code $rc after SIGTERM"
