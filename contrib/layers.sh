#!/bin/sh
# contrib/layers.sh - the folders' include graph, and a check that every
# include points down. The floors, lowest first (a folder may include its
# own files and those of lower floors; folders on one floor include each
# other only where the list below allows):
#
#   1 lib
#   2 config
#   3 storage runners webhooks git kube httpd aws github
#   4 manifests report
#   5 infra deploy
#   6 pipeline
#   7 daemon
#   8 cli
#
#     contrib/layers.sh          # prints "from -> to (count)" and any violation
#     contrib/layers.sh --check  # only violations; exit 1 if there are any
#
# Besides, every folder but lib/ (a toolbox of independent modules, a header
# each) has one public header, and its private ones (NAME-int.h) are
# included from that folder only (tests aside).
#
# `make test` runs the check.
cd "$(dirname "$0")/.." || exit 2
floors='lib:1 config:2 storage:3 runners:3 webhooks:3 git:3 kube:3 httpd:3 aws:3 github:3 manifests:4 report:4 infra:5 deploy:5 pipeline:6 daemon:7 cli:8'
check=0
[ "${1:-}" = --check ] && check=1
for d in lib config storage runners webhooks git kube httpd aws github manifests infra deploy report pipeline daemon cli; do
	[ -d "$d" ] || continue
	grep -Ho '^#include "[a-z]*/' "$d"/*.[ch] 2>/dev/null |
		sed "s|^\([a-z]*\)/[^:]*:#include \"\([a-z]*\)/|\1 \2|"
done | sort | uniq -c | awk -v floors="$floors" -v check=$check '
	BEGIN { n = split(floors, f, " "); for (i = 1; i <= n; i++) { split(f[i], p, ":"); fl[p[1]] = p[2] } }
	$2 == $3 { next }
	{
		bad = !($2 in fl) || !($3 in fl) || fl[$3] >= fl[$2]
		if (bad) { printf "UP   %s -> %s (%d includes)\n", $2, $3, $1; nbad++ }
		else if (!check) printf "     %s -> %s (%d)\n", $2, $3, $1
	}
	END { exit nbad > 0 }'
rc=$?
for d in config storage runners webhooks git kube httpd aws github manifests infra deploy report pipeline daemon; do
	pub=$(ls "$d"/*.h 2>/dev/null | grep -v -- '-int\.h$')
	[ "$(echo "$pub" | grep -c .)" -le 1 ] || { echo "MANY $d/ has more than one public header:" $pub; rc=1; }
done
for f in */*.[ch]; do
	case $f in tests/*|bench/*|build/*) continue ;; esac
	for h in $(sed -n 's/^#include "\([a-z]*\/[a-z-]*-int\.h\)".*/\1/p' "$f"); do
		[ "${h%%/*}" = "${f%%/*}" ] || { echo "PRIV $f includes $h, private to ${h%%/*}/"; rc=1; }
	done
done
exit $rc
