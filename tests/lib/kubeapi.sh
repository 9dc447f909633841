# tests/lib/kubeapi.sh - start and stop the test Kubernetes API server
# (build/tests/kubeapi) from end-to-end scripts and the demo.
#
#     . "$SRC/tests/lib/kubeapi.sh"
#     sw_kubeapi_start "$TMPDIR/dev" [kubeapi options...]   # sets SW_KUBEAPI_URL, writes DIR/kubeconfig
#     kubectl --kubeconfig "$TMPDIR/dev/kubeconfig" get deploy
#     sw_kubeapi_stop "$TMPDIR/dev"

# Deadlines scale with SW_TEST_SLOW through common.sh, which callers that
# run this file as a command (the unit tests) or source it alone have not loaded.
declare -F sw_slow_ticks >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/common.sh"

sw_kubeapi_start() {
	local dir=$1 i
	shift
	mkdir -p "$dir"
	"$BUILD/tests/kubeapi" --listen 127.0.0.1:0 --kubeconfig-out "$dir/kubeconfig" "$@" \
		> "$dir/out" 2> "$dir/log" &
	echo $! > "$dir/pid"
	for i in $(seq 1 $(sw_slow_ticks 20)); do
		grep -q '^listening on' "$dir/out" 2>/dev/null && break
		sleep 0.05
	done
	SW_KUBEAPI_URL=$(sed -n 's/^listening on //p' "$dir/out" | head -1)
	[ -n "$SW_KUBEAPI_URL" ] || { echo "kubeapi did not start:" >&2; cat "$dir/log" >&2; return 1; }
	export SW_KUBEAPI_URL
}

sw_kubeapi_stop() {
	local dir=$1
	[ -f "$dir/pid" ] || return 0
	kill "$(cat "$dir/pid")" 2>/dev/null
	rm -f "$dir/pid"
	return 0
}
