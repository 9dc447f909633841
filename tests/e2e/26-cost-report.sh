#!/bin/bash
# What the environments cost, end to end: slipwayd holding only IRSA-style
# web-identity files asks the AWS stand-in's Cost Explorer (each request's
# SigV4 checked by the stand-in's own code) for each environment's daily
# figures by its cost-allocation tag, and sends the scheduled Slack report
# (the Slack stand-in checks its shape) with the month so far against the
# month before and the biggest movers; the status page shows each
# environment's 30 days as an inline SVG, /metrics the figures. A restart
# neither asks Cost Explorer again the same day nor sends the report twice.
# AccessDenied is a clear line in the log, on the page and in the report;
# throttling is retried and yesterday's numbers are kept.
set -u
. "$SRC/tests/lib/common.sh"
. "$SRC/tests/lib/recorder.sh"
T=$TMPDIR
PY=$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)
ROLE=arn:aws:iam::111122223333:role/slipway

pid= spid=
cleanup() {
	[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
	[ -n "$spid" ] && kill "$spid" 2>/dev/null
	sw_recorder_stop "$T/rec"
}
trap cleanup EXIT

# dev: EC2 10 a day last month, 20 this month; VPC 1 a day throughout.
# prod is tagged "production" and costs 100 a day on RDS.
cat > "$T/costs.json" <<'JSON'
{"dev": {"Amazon Elastic Compute Cloud - Compute": [10, 20], "Amazon Virtual Private Cloud": [1, 1]},
 "production": {"Amazon Relational Database Service": [100, 100]}}
JSON
echo "eyJhbGciOiJSUzI1NiJ9.irsa.token" > "$T/irsa-token"
start_standin() {   # start_standin [options...]
	[ -n "$spid" ] && kill "$spid" 2>/dev/null && wait "$spid" 2>/dev/null
	: > "$T/sport"
	$PY "$SRC/tests/aws/standin.py" --port 0 --out "$T/aws.jsonl" --role "$ROLE" \
		--web-token-file "$T/irsa-token" --costs "$T/costs.json" "$@" > "$T/sport" 2> "$T/standin.log" &
	spid=$!
	wait_for test -s "$T/sport" || fail "the AWS stand-in did not start: $(cat "$T/standin.log")"
	AWS_URL=http://127.0.0.1:$(cat "$T/sport")
}
aws_count() {   # aws_count PY_COND over r, a request the stand-in recorded
	$PY -c 'import json, sys
print(sum(1 for r in map(json.loads, open(sys.argv[1])) if eval(sys.argv[2])))' "$T/aws.jsonl" "$1"
}
slack_count() {   # slack_count PY_COND over b, the text of a Slack webhook message
	$PY -c 'import json, sys
n = 0
for r in map(json.loads, open(sys.argv[1])):
    if r.get("route") == "slack.webhook" and r.get("status") == 200:
        b = json.dumps(r["body"], ensure_ascii=False)
        n += bool(eval(sys.argv[2]))
print(n)' "$T/rec/requests.jsonl" "$1"
}
start_standin
touch "$T/aws.jsonl"
sw_recorder_start "$T/rec" || fail "recorder"
export SW_E2E_HOOK=$SW_RECORDER_URL/slack/webhook

start_slipwayd() {   # start_slipwayd: slipwayd with only web-identity files for AWS
	port=$(free_port)
	URL=http://127.0.0.1:$port
	cat > "$T/slipway.yaml" <<YAML
server: {listen: 127.0.0.1:$port, public_url: $URL, data_dir: data, log_level: info}
slack:
  webhook_url: {secret_env: SW_E2E_HOOK}
aws: {region: us-east-1}
cost: {report: daily, at: "00:00", timezone: Europe/Berlin, tag: environment}
repositories:
  - {name: acme/app, url: "file://$T/none.git"}
environments:
  - {name: dev, branch: dev}
  - {name: prod, branch: main, cost_tag: production}
YAML
	env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_PROFILE HOME="$T/home" \
		AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL="$AWS_URL" AWS_ROLE_ARN="$ROLE" \
		AWS_WEB_IDENTITY_TOKEN_FILE="$T/irsa-token" \
		"$BUILD/slipwayd" -c "$T/slipway.yaml" 2>> "$T/daemon.log" &
	pid=$!
	wait_for curl -sf "$URL/readyz" || { tail -30 "$T/daemon.log"; fail "daemon did not start"; }
}
stop_slipwayd() {
	kill "$pid"; wait "$pid" 2>/dev/null; pid=
}
mkdir -p "$T/home"
# what the report must say, from the stand-in's rule (UTC days, to yesterday)
read -r MONTH DAYS SO_FAR PREV_MONTH PREV_SAME MOVE <<EOF
$($PY -c '
import datetime, calendar
y = datetime.datetime.now(datetime.timezone.utc).date() - datetime.timedelta(days=1)
p = (y.replace(day=1) - datetime.timedelta(days=1)).replace(day=1)
same = min(y.day, calendar.monthrange(p.year, p.month)[1])
print(calendar.month_name[y.month], y.day, "%.2f" % (21 * y.day), calendar.month_name[p.month],
      "%.2f" % (11 * same), "%.2f" % (20 * y.day - 10 * same))')
EOF
money() { $PY -c 'import sys; print("${:,.2f}".format(float(sys.argv[1])))' "$1"; }
SO_FAR_S=$(money "$SO_FAR") PREV_SAME_S=$(money "$PREV_SAME") MOVE_S=$(money "$MOVE")

# 1. the first start asks Cost Explorer once per environment and sends the report
start_slipwayd
wait_until '[ "$(slack_count "True")" -ge 1 ]' 60 || { tail -20 "$T/daemon.log"; fail "no cost report reached Slack: $(cat "$T/aws.jsonl")"; }
[ "$(slack_count "'Cost report, ' in b and '*dev*' in b and '$MONTH 1\u2013$DAYS: *$SO_FAR_S*' in b and '$PREV_MONTH 1\u2013$DAYS: $PREV_SAME_S' in b and 'Amazon Elastic Compute Cloud - Compute: ' in b and '(+$MOVE_S)' in b and '*prod*' in b and 'Amazon Relational Database Service' not in b.split('*prod*')[0]")" = 1 ] ||
	fail "the report lacks dev's figures ($MONTH 1-$DAYS $SO_FAR_S, $PREV_MONTH $PREV_SAME_S, EC2 +$MOVE_S): $(tail -c 3000 "$T/rec/requests.jsonl")"
[ "$(aws_count "r.get('route') == 'ce.GetCostAndUsage' and r['valid'] and r['status'] == 200 and r['key'].startswith('ASIAWEB') and r.get('tag') == 'environment=dev'")" -ge 1 ] ||
	fail "no signed GetCostAndUsage for dev with web-identity credentials: $(cat "$T/aws.jsonl")"
[ "$(aws_count "r.get('route') == 'ce.GetCostAndUsage' and r.get('tag') == 'environment=production'")" -ge 1 ] ||
	fail "prod was not asked by its cost_tag"
[ "$(aws_count "r.get('route', '').startswith('ce.') and not r['valid']")" = 0 ] || fail "an invalid Cost Explorer request: $(cat "$T/aws.jsonl")"
CALLS=$(aws_count "r.get('route') == 'ce.GetCostAndUsage'")
sw_recorder_invalid "$T/rec" || fail "the Slack stand-in refused what it got"
ok "the scheduled report: $MONTH so far $SO_FAR_S against $PREV_SAME_S, EC2 up $MOVE_S, from signed GetCostAndUsage ($CALLS pages) by each environment's tag"

page=$(curl -sf "$URL/environments/dev") || fail "environment page"
echo "$page" | grep -q '<svg class="cost"' || fail "no cost chart on the page"
[ "$(echo "$page" | grep -o '<rect ' | wc -l)" = 30 ] || fail "the chart has not 30 bars"
echo "$page" | grep -q "$SO_FAR_S in $MONTH so far ($DAYS day" || fail "the page lacks the month so far: $(echo "$page" | grep -o 'cost</dt>.\{0,300\}')"
m=$(curl -sf "$URL/metrics") || fail "metrics"
echo "$m" | grep -q "^slipway_cost_month_usd{environment=\"dev\"} $SO_FAR" ||
	echo "$m" | grep -q "^slipway_cost_month_usd{environment=\"dev\"} ${SO_FAR%.00}" || fail "metrics lack the month: $(echo "$m" | grep cost)"
echo "$m" | grep -q '^slipway_cost_daily_usd{environment="prod",service="Amazon Relational Database Service"} 100' ||
	fail "metrics lack yesterday by service: $(echo "$m" | grep cost)"
ok "the page charts 30 days and the month so far; /metrics has the month and yesterday by service"

# 2. a restart: Cost Explorer is not asked again today, the report not sent again
stop_slipwayd
start_slipwayd
wait_until 'grep -c "event=cost.report.*why=already-sent" "$T/daemon.log" | grep -q 1' 30 || fail "the restart did not find the report sent"
[ "$(aws_count "r.get('route') == 'ce.GetCostAndUsage'")" = "$CALLS" ] || fail "Cost Explorer asked again the same day"
[ "$(slack_count "True")" = 1 ] || fail "the report was sent twice"
curl -sf "$URL/environments/dev" | grep -q '<svg class="cost"' || fail "the chart is gone after a restart"
ok "a restart neither asks Cost Explorer again the same day nor sends the report twice"

# 3. AccessDenied: a clear line naming the action, in the log, on the page and in the report
stop_slipwayd
sqlite3 "$T/data/slipway.db" "delete from kv where key like 'cost:%'; delete from cost_daily where env = 'prod'" || fail "reset"
start_standin --ce-denied
start_slipwayd
wait_until '[ "$(slack_count "True")" -ge 2 ]' 60 || fail "no second report"
grep -q 'event=cost.fetch_failed env=dev retry_s=3600 err=.*AccessDeniedException.*ce:GetCostAndUsage' "$T/daemon.log" ||
	fail "the log lacks the refusal: $(grep cost "$T/daemon.log" | tail -5)"
[ "$(slack_count "'*prod*: no figures: no AWS' not in b and '*prod*: no figures: ce:GetCostAndUsage' in b and 'AccessDeniedException' in b and 'kept from before: ce:GetCostAndUsage' in b")" = 1 ] ||
	fail "the report lacks the refusal: $(tail -c 2500 "$T/rec/requests.jsonl")"
page=$(curl -sf "$URL/environments/prod")
echo "$page" | grep -q 'no cost figures: ce:GetCostAndUsage.*AccessDeniedException' || fail "the page lacks the refusal"
curl -sf "$URL/environments/dev" | grep -q 'kept from before: ce:GetCostAndUsage' || fail "dev's kept figures do not say they are old"
curl -sf "$URL/metrics" | grep -q '^slipway_cost_fetch_ok{environment="dev"} 0' || fail "metrics lack the failed fetch"
ok "AccessDenied names ce:GetCostAndUsage in the log, the report and the page; dev keeps yesterday's numbers"

# 4. throttled: tried again at once, then the figures come
stop_slipwayd
sqlite3 "$T/data/slipway.db" "delete from kv where key like 'cost:fetched:%'" || fail "reset"
start_standin --ce-throttle 2
start_slipwayd
wait_until '[ "$(grep -c "event=cost.fetched env=" "$T/daemon.log")" -ge 4 ]' 30 ||
	fail "throttled and not retried: $(grep cost "$T/daemon.log" | tail -5)"
[ "$(aws_count "r.get('route') == 'ce.GetCostAndUsage' and r.get('reason') == 'Rate exceeded'")" = 2 ] ||
	fail "the stand-in did not throttle twice"
curl -sf "$URL/metrics" | grep -q '^slipway_cost_fetch_ok{environment="dev"} 1' || fail "the fetch after throttling is not ok"
ok "throttling (LimitExceededException) is retried with back-off until the figures come"
[ "$(grep -c -e 'irsa.token' -e 'SecretAccessKey' "$T/daemon.log")" = 0 ] || fail "a secret in the log"
