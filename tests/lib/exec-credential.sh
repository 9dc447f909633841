#!/bin/sh
# exec-credential.sh - a client.authentication.k8s.io exec credential plugin
# for tests (what `aws eks get-token` is in production).
#
#   exec-credential.sh STATE_DIR TTL_SECONDS [API_VERSION]
#
# Each run appends a line to STATE_DIR/calls (so a test can count runs),
# saves KUBERNETES_EXEC_INFO to STATE_DIR/info, and prints an ExecCredential
# whose status.token is line N of STATE_DIR/tokens for the N-th run (the
# last line once they run out), expiring TTL_SECONDS from now.
# Fails (exit 1, message on stderr) when KUBERNETES_EXEC_INFO is missing or
# is not an ExecCredential with spec.interactive false, as a real plugin
# that reads it would.
set -eu
dir=$1
ttl=$2
api=${3:-client.authentication.k8s.io/v1}

case "${KUBERNETES_EXEC_INFO:-}" in
"") echo "KUBERNETES_EXEC_INFO is not set" >&2; exit 1 ;;
*'"kind":"ExecCredential"'*'"interactive":false'*|*'"interactive":false'*'"kind":"ExecCredential"'*) ;;
*) echo "KUBERNETES_EXEC_INFO is not a non-interactive ExecCredential: $KUBERNETES_EXEC_INFO" >&2; exit 1 ;;
esac
printf '%s\n' "$KUBERNETES_EXEC_INFO" > "$dir/info"

echo call >> "$dir/calls"
n=$(wc -l < "$dir/calls")
total=$(wc -l < "$dir/tokens")
[ "$n" -le "$total" ] || n=$total
token=$(sed -n "${n}p" "$dir/tokens")
exp=$(date -u -d "+$ttl seconds" +%Y-%m-%dT%H:%M:%SZ)

printf '{"apiVersion":"%s","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"%s"}}\n' \
	"$api" "$token" "$exp"
