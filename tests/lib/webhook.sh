# tests/lib/webhook.sh - what end-to-end scripts use to play GitHub and read
# slipwayd's database. Source it after tests/lib/common.sh; it expects
# T (the test's directory, data under $T/data), URL (slipwayd's address)
# and WEBHOOK_SECRET; FIX (the GitHub fixtures) for pr, pid for the daemon.

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

# manual_sync ENV: `slipway sync ENV` against $URL (the token in
# $SLIPWAY_TOKEN), then until its run is final; prints the run's status
# (its output in $T/sync.out).
manual_sync() {
	local before
	before=$(q "select count(*) from runs")
	"$BUILD/slipway" --server "$URL" sync "$1" > "$T/sync.out" 2>&1 || { cat "$T/sync.out"; return 1; }
	wait_until "[ \$(q \"select count(*) from runs\") -gt $before ]" || return 1
	wait_final "$(q "select max(id) from runs")"
}

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

# start_daemon: slipwayd on $T/slipway.yaml, its log appended to
# $T/daemon.log; $pid is set, and it answers /readyz when this returns.
start_daemon() {
	"$BUILD/slipwayd" -c "$T/slipway.yaml" 2>> "$T/daemon.log" &
	pid=$!
	wait_for curl -sf "$URL/readyz" || { tail -30 "$T/daemon.log"; fail "daemon did not start"; }
}

# stop_daemon: SIGTERM; fails unless slipwayd exits, with 0.
stop_daemon() {
	local rc
	kill -TERM "$pid"
	wait_gone "$pid" 20 || fail "no clean stop"
	wait "$pid"; rc=$?; pid=
	[ $rc = 0 ] || fail "exit $rc on SIGTERM"
}

# pr SHA ACTION NUMBER [REPO]: a pull_request payload (fixture
# pull_request-opened.json) for head SHA of branch feature into main, in REPO
# (default acme/shop, the head in the same repository).
pr() {
	jq --arg sha "$1" --arg action "$2" --argjson n "$3" --arg repo "${4:-acme/shop}" '.action=$action
		| .number=$n | .pull_request.number=$n | .pull_request.head.sha=$sha
		| .pull_request.head.ref="feature" | .pull_request.base.ref="main"
		| .pull_request.draft=false | .pull_request.title="Change \($n)"
		| .repository.full_name=$repo | .pull_request.head.repo.full_name=$repo' \
		"$FIX/pull_request-opened.json"
}

# new_origin: a bare repository $T/origin.git and its clone $T/work on
# branch main, with a committer set; the shell is left in $T/work.
new_origin() {
	git init -q --bare "$T/origin.git"
	git clone -q "$T/origin.git" "$T/work" 2>/dev/null
	cd "$T/work" || fail "no clone"
	git config user.email dev@example.com
	git config user.name Dev
	git checkout -q -b main
}

# guestbook_origin: $T/origin.git with the guestbook manifests in deploy/ on
# branch dev (pushed); the shell stays where it was.
guestbook_origin() {
	(new_origin && git checkout -q -b dev && mkdir -p deploy &&
		cp "$(shared_dir)"/fixtures/manifests/guestbook/*.yaml deploy/ &&
		git add -A && git commit -qm guestbook && git push -q origin dev) || fail "guestbook origin"
}

# push_branch BRANCH SHA GUID [REPO]: deliver the push webhook GitHub sends
# when BRANCH of REPO (default acme/shop) moves to SHA; fails unless 202.
push_branch() {
	jq --arg ref "refs/heads/$1" --arg sha "$2" --arg repo "${4:-acme/shop}" '.ref=$ref | .after=$sha
		| .head_commit.id=$sha | .repository.full_name=$repo | .deleted=false' "$FIX/push-branch.json" > "$T/push.json"
	[ "$(deliver push "$T/push.json" "$3")" = 202 ] || fail "push $3 answered $(cat "$T/resp")"
}

# open_pr NUMBER SHA HEAD BASE REPO GUID [ACTION]: deliver the pull_request
# webhook (default action opened) of PR NUMBER from branch HEAD at SHA into
# BASE, in REPO (the head in the same repository); fails unless 202.
open_pr() {
	jq --argjson n "$1" --arg sha "$2" --arg head "$3" --arg base "$4" --arg repo "$5" \
		--arg act "${7:-opened}" '.action=$act | .number=$n
		| .pull_request.number=$n | .pull_request.head.sha=$sha | .pull_request.head.ref=$head
		| .pull_request.base.ref=$base | .pull_request.draft=false | .pull_request.title="Change \($n)"
		| .repository.full_name=$repo | .pull_request.head.repo.full_name=$repo' \
		"$FIX/pull_request-opened.json" > "$T/pr.json"
	[ "$(deliver pull_request "$T/pr.json" "$6")" = 202 ] || fail "PR $6 answered $(cat "$T/resp")"
}

# branch_commit NEWBRANCH BASE MSG: commit what is changed in $T/work to a
# new branch off BASE, push it to origin; prints the commit.
branch_commit() {
	(cd "$T/work" && git checkout -q "$2" && git checkout -q -b "$1" && git add -A &&
		git commit -qm "$3" && git push -q origin "$1") || fail "commit $1"
	git -C "$T/work" rev-parse HEAD
}

# comment_has RUN PY_COND: how many PR comment bodies the recorder saw for
# RUN for which PY_COND holds, over b (the body without '*').
comment_has() {
	sw_recorder_count "$T/rec" "r['route'].startswith('github.comment') and 'slipway:run:$1' in str(r['body']) and (lambda b: $2)(str(r['body']).replace('*',''))"
}
