#!/bin/bash
# What one client may hold (issue 11, defect 3), against the real daemon:
# a request target, a header block or a body too large is answered 414 /
# 431 / 413 in the API's JSON error shape at once; a request that has not
# arrived whole within server.read_timeout is closed (408) however it
# trickles; at server.max_connections the longest-idle connection makes
# room, and with none idle the newcomer gets 503; at the descriptor limit
# accept() errors pause the listener with one log line, and /healthz
# answers again once descriptors are free. Keep-alive still works.
set -u
. "$SRC/tests/lib/common.sh"
T=$TMPDIR
# the system python: a version manager's shim can take seconds to start
PY=$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || echo python3)
CLIENTS="$PY $SRC/tests/lib/clients.py"
port=$(free_port)
URL=http://127.0.0.1:$port
RT=3   # server.read_timeout
config() {
	cat > "$T/slipway.yaml" <<YAML
server:
  listen: 127.0.0.1:$port
  data_dir: data
  read_timeout: ${RT}s
  max_connections: $1
  max_uri_size: 4k
  max_header_size: 16k
runner:
  backend: local
YAML
}
config 16
. "$SRC/tests/lib/webhook.sh"
start_daemon
hpid=
trap '[ -n "$hpid" ] && kill $hpid 2>/dev/null; [ -n "${pid:-}" ] && kill $pid 2>/dev/null' EXIT

# expect CODE KEY: $T/body is the JSON error shape with that status,
# naming KEY; the answer closed the connection
expect() {
	jq -e --argjson c "$1" --arg k "$2" '.status == $c and (.error | contains($k))' "$T/body" >/dev/null ||
		fail "want a JSON $1 naming $2, got: $(head -c 300 "$T/body")"
	grep -qi '^content-type: application/json' "$T/headers" || fail "$1 is not JSON: $(cat "$T/headers")"
}
req() { curl -s -D "$T/headers" -o "$T/body" -w '%{http_code}' "$@"; }

# --- sizes -----------------------------------------------------------------
long=$(head -c 5000 /dev/zero | tr '\0' a)
[ "$(req "$URL/healthz?$long")" = 414 ] || fail "a 5000-byte target: $(cat "$T/headers")"
expect 414 server.max_uri_size
[ "$(req -H "X-Big: $(head -c 20000 /dev/zero | tr '\0' b)" "$URL/healthz")" = 431 ] || fail "20 kB of headers"
expect 431 server.max_header_size
# many small headers count together
hs=(); for i in $(seq 1 400); do hs+=(-H "X-H$i: 0123456789012345678901234567890123456789"); done
[ "$(req "${hs[@]}" "$URL/healthz")" = 431 ] || fail "400 headers of 50 bytes"
expect 431 server.max_header_size
head -c $((25 * 1024 * 1024 + 1)) /dev/zero > "$T/big"
[ "$(req --data-binary @"$T/big" "$URL/hooks/github")" = 413 ] || fail "a 25 MiB + 1 body"
expect 413 "request body"
# chunks count together: 4 KiB, then a chunk that brings the body to
# 25 MiB + 1 is refused at its size line, before its data (streaming
# 25 MiB through curl would race the short read deadline on a loaded
# machine; every byte position is in test_conn)
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'POST /hooks/github HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n%s\r\n%x\r\n' \
	"$(head -c 4096 /dev/zero | tr '\0' c)" $((25 * 1024 * 1024 - 4096 + 1)) >&3
cat <&3 > "$T/raw"; exec 3<&-
sed -n '1,/^\r$/p' "$T/raw" > "$T/headers"; sed '1,/^\r$/d' "$T/raw" > "$T/body"
head -1 "$T/headers" | grep -q '^HTTP/1.1 413 ' || fail "a chunked 25 MiB + 1 body: $(head -c 300 "$T/raw")"
expect 413 "request body"
# just below the limits is served
[ "$(req "$URL/healthz?$(head -c 4000 /dev/zero | tr '\0' a)")" = 200 ] || fail "a 4000-byte target"
[ "$(req -H "X-Big: $(head -c 15000 /dev/zero | tr '\0' b)" "$URL/healthz")" = 200 ] || fail "15 kB of headers"
grep -q 'event=server.request_refused status=431' "$T/daemon.log" || fail "no log line for the 431"
ok "414, 431 and 413 (length and chunked) in the JSON error shape; below the limits served"

# keep-alive is untouched: three requests, one connection
out=$(curl -s -o /dev/null -o /dev/null -o /dev/null -w '%{http_code}%{num_connects} ' \
	"$URL/healthz" "$URL/readyz" "$URL/api/v1/runs")
[ "$out" = "2001 2000 2000 " ] || fail "keep-alive: $out"
ok "keep-alive: three answers on one connection"
# a client that asks to close, or speaks HTTP/1.0, gets its whole answer
# before the close (evhttp shut the socket down under the filter's
# buffered answer: an empty reply)
curl -sf -H 'Connection: close' "$URL/healthz" | jq -e '.status == "alive"' >/dev/null ||
	fail "Connection: close got no answer"
curl -sf -0 "$URL/healthz" | jq -e '.status == "alive"' >/dev/null || fail "HTTP/1.0 got no answer"
[ "$(curl -sf -0 "$URL/" | wc -c)" = "$(curl -sf "$URL/" | wc -c)" ] || fail "HTTP/1.0: the page was cut"
grep -q 'event=libevent' "$T/daemon.log" && fail "libevent warned: $(grep event=libevent "$T/daemon.log" | head -3)"
ok "Connection: close and HTTP/1.0 answered whole"

# --- the read deadline ------------------------------------------------------
# 4 clients send a header line every 0.5 s: evhttp's timeout restarted on
# every byte and kept such clients forever; the deadline is for the whole
# request. They must be closed at RT seconds, not before, with a 408.
res=$($CLIENTS trickle "$port" 4 0.5 "$(awk -v s="${SW_TEST_SLOW:-1}" -v r=$RT 'BEGIN{print r + 5 * s}')")
echo "trickle: $res"
echo "$res" | jq -e --argjson rt $RT '.closed == 4 and .min_s >= $rt - 0.1 and .statuses == [408]
	and (.bodies[0] | fromjson | .status == 408 and (.error | contains("server.read_timeout")))' >/dev/null ||
	fail "trickling clients were not closed at the deadline with 408: $res"
ok "trickling clients closed at server.read_timeout ($RT s) with a JSON 408"

# --- the connection cap -----------------------------------------------------
# 16 connections idle in their headers fill the cap; a 17th client is
# served and the oldest of them closed for it
rm -f "$T/hold"
$CLIENTS hold "$port" 16 headers "$T/hold" & hpid=$!
wait_until "grep -q '^ready 16' '$T/hold'" 10 || fail "the holding clients did not connect"
[ "$(req "$URL/healthz")" = 200 ] || fail "at the cap, /healthz answered $(cat "$T/headers")"
wait_until "grep -q '^closed 0 ' '$T/hold'" 5 || fail "the oldest idle connection was not closed: $(cat "$T/hold")"
kill $hpid; wait $hpid 2>/dev/null; hpid=
ok "at max_connections the longest-idle connection makes room"

# 16 connections in the middle of a body are busy, not idle: the newcomer is refused
wait_until "[ \$(curl -s -o /dev/null -w '%{http_code}' '$URL/healthz') = 200 ]" 10
rm -f "$T/hold"
$CLIENTS hold "$port" 16 body "$T/hold" & hpid=$!
wait_until "grep -q '^ready 16' '$T/hold'" 10 || fail "the holding clients did not connect"
wait_until "grep -q 'event=server.conn_refused' '$T/daemon.log' || [ \$(curl -s -o '$T/body' -D '$T/headers' -w '%{http_code}' '$URL/healthz') = 503 ]" 5 ||
	fail "all 16 busy: no 503"
[ "$(req "$URL/healthz")" = 503 ] || fail "all busy: /healthz answered $(cat "$T/headers")"
expect 503 server.max_connections
grep -qi '^retry-after: 1' "$T/headers" || fail "503 without Retry-After"
kill $hpid; wait $hpid 2>/dev/null; hpid=
wait_until "[ \$(curl -s -o /dev/null -w '%{http_code}' '$URL/healthz') = 200 ]" 10 || fail "no 200 after the busy clients left"
ok "with every connection busy the newcomer gets a JSON 503 with Retry-After"

# /metrics counts what the limits did: 4 sizes refused (414, two 431, 413
# by length; the chunked one too), 4 deadlines, one eviction, one refusal
curl -sf "$URL/metrics" > "$T/metrics" || fail "/metrics"
m() { awk -v k="$1" '$1 == k { print $2 }' "$T/metrics"; }
[ "$(m slipway_http_max_connections)" = 16 ] || fail "max_connections gauge: $(grep http_ "$T/metrics")"
[ "$(m 'slipway_http_closed_total{reason="too_large"}')" -ge 5 ] &&
[ "$(m 'slipway_http_closed_total{reason="read_timeout"}')" -ge 4 ] &&
[ "$(m 'slipway_http_closed_total{reason="evicted"}')" -ge 1 ] &&
[ "$(m 'slipway_http_closed_total{reason="refused"}')" -ge 1 ] || fail "closed counts: $(grep http_ "$T/metrics")"
ok "/metrics: slipway_http_closed_total by reason, the cap in force"

# --- reload -------------------------------------------------------------------
# a larger server.max_uri_size holds after SIGHUP, without a restart
sed -i 's/max_uri_size: 4k/max_uri_size: 8k/' "$T/slipway.yaml"
kill -HUP $pid
wait_for grep -q 'event=config.reloaded' "$T/daemon.log" || fail "reload not logged"
[ "$(req "$URL/healthz?$long")" = 200 ] || fail "a 5000-byte target after max_uri_size: 8k: $(cat "$T/headers")"
long=$(head -c 9000 /dev/zero | tr '\0' a)
[ "$(req "$URL/healthz?$long")" = 414 ] || fail "a 9000-byte target after max_uri_size: 8k"
expect 414 server.max_uri_size
ok "SIGHUP: new request limits hold without a restart"
stop_daemon

# --- the descriptor limit ---------------------------------------------------
# with 48 descriptors and a cap far above them, 80 clients run the daemon
# out of descriptors for real: accept() fails with EMFILE
config 1000
: > "$T/daemon.log"
(ulimit -n 48; exec "$BUILD/slipwayd" -c "$T/slipway.yaml" 2>> "$T/daemon.log") & pid=$!
wait_for curl -sf "$URL/readyz" || { tail -20 "$T/daemon.log"; fail "daemon did not start with 48 descriptors"; }
rm -f "$T/hold"
$CLIENTS hold "$port" 80 headers "$T/hold" & hpid=$!
wait_until "grep -q 'event=server.accept_paused' '$T/daemon.log'" 10 || fail "no accept_paused: $(tail -5 "$T/daemon.log")"
grep -q 'err="Too many open files"' "$T/daemon.log" || fail "accept_paused without EMFILE: $(grep accept_paused "$T/daemon.log")"
# the clients are closed by the read deadline as they are accepted; once
# they are all gone /healthz is answered again
wait_until "grep -q '^done' '$T/hold'" $((RT * 6 + 10)) || fail "the held clients were not all closed"
kill $hpid; wait $hpid 2>/dev/null; hpid=
wait_until "[ \$(curl -s -o /dev/null -w '%{http_code}' '$URL/healthz') = 200 ]" 10 || fail "no /healthz after the descriptors freed up"
n=$(grep -c 'event=server.accept_paused' "$T/daemon.log")
[ "$n" -le 2 ] || fail "accept_paused logged $n times: one line per episode"
lines=$(grep -c '' "$T/daemon.log")
[ "$lines" -lt 400 ] || fail "the daemon logged $lines lines at the descriptor limit (a busy loop?)"
grep -q "Error from accept" "$T/daemon.log" && fail "libevent's own accept error was logged"
wait_until "curl -sf -o /dev/null '$URL/healthz'; grep -q 'event=server.accept_resumed' '$T/daemon.log'" 10 ||
	fail "no accept_resumed"
ok "EMFILE: one accept_paused line, $lines log lines in all, /healthz answers after"
stop_daemon
