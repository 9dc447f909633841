# tests/lib/webhook.sh - what end-to-end scripts use to play GitHub and read
# slipwayd's database. Source it after tests/lib/common.sh; it expects
# T (the test's directory, data under $T/data), URL (slipwayd's address)
# and WEBHOOK_SECRET.

# q SQL: a query against slipwayd's database (waits for its write lock).
q() { sqlite3 -cmd '.timeout 5000' "$T/data/slipway.db" "$1"; }

# deliver EVENT FILE GUID [SECRET]: POST a signed delivery; prints the HTTP
# code, the body goes to $T/resp.
deliver() {
	local secret=${4:-$WEBHOOK_SECRET} sig
	sig=$(openssl dgst -sha256 -hmac "$secret" "$2" | sed 's/^.*= //')
	curl -s -o "$T/resp" -w '%{http_code}' -H "X-GitHub-Event: $1" -H "X-GitHub-Delivery: $3" \
		-H "X-Hub-Signature-256: sha256=$sig" -H 'Content-Type: application/json' \
		--data-binary "@$2" "$URL/hooks/github"
}

# run_of GUID: the run a delivery mapped to (empty until mapped).
run_of() { q "select run_id from deliveries where guid='$1'"; }

# wait_final RUN [SECONDS]: until the run is in a final status; prints it
# ("timeout:STATUS" when it is not, after SECONDS, default 90).
wait_final() {
	local i s
	for i in $(seq 1 $(sw_slow_ticks ${2:-90})); do
		s=$(q "select status from runs where id=$1")
		case "$s" in queued|running|"") sleep 0.1 ;; *) echo "$s"; return 0 ;; esac
	done
	echo "timeout:$s"
}
