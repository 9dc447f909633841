#!/bin/sh
# Install the Debian/Ubuntu packages slipway needs to build, test and demo
# (clang and its runtime for `make fuzz`); with --bench also the peers and
# load tools `make bench` measures against (wrk, adnanh/webhook).
# Does nothing when everything is already there. Uses sudo when not root.
set -eu

PKGS="build-essential pkg-config git curl ca-certificates jq python3 openssl
libevent-dev libgit2-dev libcurl4-openssl-dev libssl-dev libjansson-dev
libyaml-dev libsqlite3-dev libcmocka-dev sqlite3
podman runc busybox-static kubectl chromium
clang-14 libclang-rt-14-dev"
[ "${1:-}" = --bench ] && PKGS="$PKGS wrk webhook"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: missing packages:$missing (no apt-get here; install them by hand)" >&2
	exit 1
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing$missing"
$SUDO apt-get update -qq
# kubectl is not in every Debian release: install what can be had, then
# report what is still missing.
if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null; then
	for p in $missing; do
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1 ||
			echo "install-deps: could not install $p" >&2
	done
fi
