#!/bin/bash
# Login and token limits per client (issue 11, defect 9), against the real
# daemon: 20 wrong logins from one client lock out that client (429 with
# Retry-After), not the real token from another; the client is the peer,
# or X-Forwarded-For's last untrusted hop only when the peer is in
# server.trusted_proxies (else the header cannot dodge the limit); wrong
# bearer tokens are limited the same way; the log API's size is the bytes
# stored even when asked past the end; 413 is the API's JSON error shape.
set -u
. "$SRC/tests/lib/common.sh"
T=$TMPDIR
port=$(free_port)
URL=http://127.0.0.1:$port
export API_TOKEN="tok_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
config() {
	cat > "$T/slipway.yaml" <<YAML
server:
  listen: 127.0.0.1:$port
  data_dir: data
  read_access: token
  api_token: {secret_env: API_TOKEN}
  trusted_proxies: [$1]
runner:
  backend: local
YAML
}
config "127.0.0.1/32, '::1'"
. "$SRC/tests/lib/webhook.sh"
start_daemon
trap '[ -n "${pid:-}" ] && kill $pid 2>/dev/null' EXIT

# login FROM TOKEN: POST /login as client FROM (X-Forwarded-For); prints the code
login() {
	curl -s -D "$T/headers" -o "$T/body" -w '%{http_code}' -H 'Accept: application/json' \
		-H "X-Forwarded-For: $1" --data-urlencode "token=$2" "$URL/login"
}
# bearer FROM TOKEN: GET /api/v1/runs as client FROM with the token
bearer() {
	curl -s -D "$T/headers" -o "$T/body" -w '%{http_code}' -H "X-Forwarded-For: $1" \
		-H "Authorization: Bearer $2" "$URL/api/v1/runs"
}
limited() {   # $T/body and $T/headers are a 429 with Retry-After in 1..60
	jq -e '.status == 429 and (.error | contains("too many failed"))' "$T/body" >/dev/null ||
		fail "429 body: $(cat "$T/body")"
	ra=$(sed -n 's/^[Rr]etry-[Aa]fter: *\([0-9]*\).*/\1/p' "$T/headers")
	[ -n "$ra" ] && [ "$ra" -ge 1 ] && [ "$ra" -le 60 ] || fail "Retry-After: '$ra'"
}

# --- /login ------------------------------------------------------------------
for i in $(seq 1 20); do
	[ "$(login 198.51.100.1 wrong$i)" = 401 ] || fail "wrong login $i: $(cat "$T/body")"
done
[ "$(login "198.51.100.1" wrong21)" = 429 ] || fail "21st wrong login: $(cat "$T/body")"
limited
[ "$(login "198.51.100.1" "$API_TOKEN")" = 429 ] || fail "the locked-out client logged in"
# the lockout was global: anyone's 21 wrong tries locked out the real token
[ "$(login "198.51.100.2" "$API_TOKEN")" = 200 ] || fail "another client is locked out too: $(cat "$T/body")"
jq -e '.ok == true' "$T/body" >/dev/null || fail "login body: $(cat "$T/body")"
# behind the trusted proxy the hops it added are skipped: the client is the
# last hop the proxy did not vouch for
[ "$(login "198.51.100.1, 127.0.0.1" "$API_TOKEN")" = 429 ] || fail "trusted hop not skipped"
grep -q 'event=auth.limited client=198.51.100.1 what=logins' "$T/daemon.log" || fail "no auth.limited line"
ok "/login: 20 wrong tries lock out that client only (429, Retry-After), the real token works elsewhere"

# --- bearer tokens -------------------------------------------------------------
for i in $(seq 1 20); do
	[ "$(bearer 198.51.100.3 wrong$i)" = 401 ] || fail "wrong bearer $i: $(cat "$T/body")"
done
[ "$(bearer 198.51.100.3 wrong21)" = 429 ] || fail "21st wrong bearer token: $(cat "$T/body")"
limited
[ "$(bearer 198.51.100.3 "$API_TOKEN")" = 429 ] || fail "the locked-out client's right token was taken"
[ "$(bearer 198.51.100.4 "$API_TOKEN")" = 200 ] || fail "another client's token: $(cat "$T/body")"
# the IPv6 neighbours of one /64 are one client
for i in $(seq 1 20); do bearer "2001:db8:1:2::$i" wrong >/dev/null; done
[ "$(bearer 2001:db8:1:2::ffff "$API_TOKEN")" = 429 ] || fail "a /64 is one client"
[ "$(bearer 2001:db8:1:3::1 "$API_TOKEN")" = 200 ] || fail "the next /64 is another"
ok "bearer tokens: 20 wrong ones lock out that client (per /64 for IPv6), not others"

# --- an untrusted peer's X-Forwarded-For counts for nothing ----------------------
config 10.0.0.0/8
kill -HUP $pid
wait_until "grep -q event=config.reloaded '$T/daemon.log'" 10 || fail "no reload"
for i in $(seq 1 20); do login "203.0.113.$i" wrong >/dev/null; done
[ "$(login 203.0.113.99 "$API_TOKEN")" = 429 ] || fail "X-Forwarded-For from an untrusted peer dodged the limit"
grep -q 'event=auth.limited client=127.0.0.1 what=logins' "$T/daemon.log" || fail "the limited client is not the peer"
ok "an untrusted peer is the client whatever X-Forwarded-For says"

# --- the log API's size ------------------------------------------------------------
now=$(date +%s000)
q "insert into runs (id, kind, repo, commit_sha, status, created_at) values (901, 'manual', 'acme/shop', 'abc', 'success', $now);
   insert into stages (id, run_id, idx, name, status) values (901, 901, 0, 'lint', 'success');
   insert into log_chunks (stage_id, seq, off, ts, len, data) values (901, 0, 0, $now, 6, cast('hello ' as blob));
   insert into log_chunks (stage_id, seq, off, ts, len, data) values (901, 1, 6, $now, 5, cast('world' as blob));"
B=(-H "Authorization: Bearer $API_TOKEN")
curl -sf "${B[@]}" "$URL/api/v1/runs/901/stages/lint/log?offset=3&max=4" > "$T/log" || fail "log read"
jq -e '.data == "lo w" and .offset == 3 and .next_offset == 7 and .size == 11 and .complete == false' "$T/log" >/dev/null ||
	fail "log page: $(cat "$T/log")"
curl -sf "${B[@]}" "$URL/api/v1/runs/901/stages/lint/log?offset=7" > "$T/log" || fail "log read"
jq -e '.data == "orld" and .next_offset == 11 and .size == 11 and .complete' "$T/log" >/dev/null || fail "log end: $(cat "$T/log")"
# past the end: size stays the bytes stored, next_offset says where the end is
curl -sf "${B[@]}" "$URL/api/v1/runs/901/stages/lint/log?offset=5000" > "$T/log" || fail "log read"
jq -e '.data == "" and .size == 11 and .next_offset == 11 and .complete' "$T/log" >/dev/null ||
	fail "log past the end: $(cat "$T/log")"
ok "log API: size is the bytes stored, next_offset never passes it"

# --- 413 as JSON --------------------------------------------------------------------
head -c $((25 * 1024 * 1024 + 1)) /dev/zero > "$T/big"
code=$(curl -s -o "$T/body" -D "$T/headers" -w '%{http_code}' "${B[@]}" --data-binary @"$T/big" "$URL/api/v1/backup")
[ "$code" = 413 ] || fail "a 25 MiB + 1 body to the API: $code"
jq -e '.status == 413' "$T/body" >/dev/null || fail "413 is not the JSON error shape: $(head -c 200 "$T/body")"
grep -qi '^content-type: application/json' "$T/headers" || fail "413 content type"
ok "413 in the API's JSON error shape"
stop_daemon
