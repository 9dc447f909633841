#!/bin/bash
# tests/lib/podman.sh - a private Podman service speaking the Docker Engine API,
# for tests. Follows /work/shared/notes/containers.md: runc, cgroupfs, low
# ulimits through a CONTAINERS_CONF file, a private --root/--runroot, no
# change under /etc.
#
# Sourced:
#     . tests/lib/podman.sh
#     sw_podman_start "$dir"      # sets SW_PODMAN_SOCK=$dir/podman.sock
#     ...                         # busybox image is "slipway-busybox:latest"
#     sw_terraform_image "$SW_PODMAN_SOCK"   # "slipway-terraform:latest": busybox
#                                            # and the host's (static) terraform
#     sw_podman_stop "$dir"
#
# Run as a command (what the C unit tests do through system()):
#     tests/lib/podman.sh start DIR   # prints the socket path on stdout
#     tests/lib/podman.sh stop DIR
#     tests/lib/podman.sh image SOCK  # import the busybox image elsewhere
#
# DIR holds everything: containers.conf, root/, run/, podman.sock, the
# service's pid and log. Stopping kills the service, force-removes what the
# store still holds and deletes DIR.

# Deadlines scale with SW_TEST_SLOW through common.sh, which callers that
# run this file as a command (the unit tests) or source it alone have not loaded.
declare -F sw_slow_ticks >/dev/null || . "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SW_BUSYBOX_IMAGE=${SW_BUSYBOX_IMAGE:-slipway-busybox}
SW_BUSYBOX_TAG=${SW_BUSYBOX_TAG:-latest}

# sw_busybox_rootfs_tar OUT.tar [PROGRAM...]: a root filesystem made of
# busybox-static's /bin/busybox plus the applet symlinks a shell step needs,
# and each PROGRAM (static binaries) copied into /usr/local/bin.
sw_busybox_rootfs_tar() {
	local out=$1 tmp bb
	shift
	bb=${SW_BUSYBOX:-/bin/busybox}
	if ! file -L "$bb" 2>/dev/null | grep -q 'statically linked'; then
		[ -x /usr/bin/busybox ] && bb=/usr/bin/busybox
	fi
	tmp=$(mktemp -d) || return 1
	mkdir -p "$tmp/bin" "$tmp/tmp" "$tmp/etc" "$tmp/workspace" "$tmp/proc" "$tmp/sys" "$tmp/dev"
	chmod 1777 "$tmp/tmp"
	cp "$bb" "$tmp/bin/busybox"
	local a
	for a in sh ash echo cat sleep ls env printf true false test mkdir rm cp mv \
	         head tail wc seq yes dd sed grep awk tr sort uniq touch id pwd \
	         kill date hostname uname whoami find xargs tee basename dirname nc; do
		ln -s busybox "$tmp/bin/$a"
	done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$tmp/etc/passwd"
	echo 'root:x:0:' >"$tmp/etc/group"
	if [ $# -gt 0 ]; then
		mkdir -p "$tmp/usr/local/bin"
		cp "$@" "$tmp/usr/local/bin/" || { rm -rf "$tmp"; return 1; }
	fi
	tar -C "$tmp" -cf "$out" . || { rm -rf "$tmp"; return 1; }
	rm -rf "$tmp"
}

# sw_podman_import SOCK TAR NAME TAG: import a root filesystem tar as NAME:TAG
# through the Docker API (POST /images/create?fromSrc=-).
sw_podman_import() {
	curl -sf --unix-socket "$1" -X POST -H 'Content-Type: application/x-tar' \
		--data-binary "@$2" "http://d/v1.41/images/create?fromSrc=-&repo=$3&tag=$4"
}

# sw_terraform_image SOCK: import "slipway-terraform:latest", busybox plus
# the host's terraform (a static Go binary), for Terraform in containers.
sw_terraform_image() {
	local sock=$1 tf t rc
	tf=$(command -v terraform) || { echo "no terraform on PATH" >&2; return 1; }
	file -L "$tf" 2>/dev/null | grep -q 'statically linked' ||
		{ echo "$tf is not statically linked" >&2; return 1; }
	t=$(mktemp) || return 1
	sw_busybox_rootfs_tar "$t" "$tf" || { rm -f "$t"; return 1; }
	sw_podman_import "$sock" "$t" slipway-terraform latest >/dev/null
	rc=$?
	rm -f "$t"
	return $rc
}

# sw_podman_start DIR: start the service, wait for its socket, import the
# busybox image. Sets SW_PODMAN_SOCK. Returns non-zero on failure with the
# service log on stderr.
sw_podman_start() {
	local dir=$1 i
	mkdir -p "$dir/root" "$dir/run" || return 1
	dir=$(cd "$dir" && pwd)
	cat >"$dir/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
	export CONTAINERS_CONF=$dir/containers.conf
	SW_PODMAN_SOCK=$dir/podman.sock
	rm -f "$SW_PODMAN_SOCK"
	# setsid: the service must outlive the shell that started it (system()
	# in a test) and must not receive the terminal's signals.
	setsid podman --root "$dir/root" --runroot "$dir/run" \
		system service --time=0 "unix://$SW_PODMAN_SOCK" \
		</dev/null >"$dir/podman.log" 2>&1 &
	echo $! >"$dir/podman.pid"
	for i in $(seq 1 $(sw_slow_ticks 40)); do
		if [ -S "$SW_PODMAN_SOCK" ] &&
		   curl -sf --unix-socket "$SW_PODMAN_SOCK" http://d/v1.41/_ping >/dev/null 2>&1; then
			break
		fi
		if ! kill -0 "$(cat "$dir/podman.pid")" 2>/dev/null; then
			echo "podman service exited:" >&2
			cat "$dir/podman.log" >&2
			return 1
		fi
		sleep 0.05
	done
	if ! curl -sf --unix-socket "$SW_PODMAN_SOCK" http://d/v1.41/_ping >/dev/null 2>&1; then
		echo "podman service did not answer on $SW_PODMAN_SOCK" >&2
		cat "$dir/podman.log" >&2
		return 1
	fi
	sw_busybox_rootfs_tar "$dir/busybox.tar" || return 1
	if ! sw_podman_import "$SW_PODMAN_SOCK" "$dir/busybox.tar" "$SW_BUSYBOX_IMAGE" \
		"$SW_BUSYBOX_TAG" >"$dir/import.log" 2>&1; then
		echo "busybox image import failed:" >&2
		cat "$dir/import.log" >&2
		return 1
	fi
	rm -f "$dir/busybox.tar"
	export SW_PODMAN_SOCK
}

# sw_podman_stop DIR: stop the service started by sw_podman_start DIR and
# delete DIR (container storage included).
sw_podman_stop() {
	local dir=$1 pid i
	[ -d "$dir" ] || return 0
	export CONTAINERS_CONF=$dir/containers.conf
	if [ -f "$dir/podman.pid" ]; then
		pid=$(cat "$dir/podman.pid")
		kill "$pid" 2>/dev/null
		for i in $(seq 1 $(sw_slow_ticks 20)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -9 "$pid" 2>/dev/null
	fi
	# Leftover containers (a test that failed half-way) and their mounts.
	podman --root "$dir/root" --runroot "$dir/run" rm -af -t 0 >/dev/null 2>&1
	podman --root "$dir/root" --runroot "$dir/run" system reset -f >/dev/null 2>&1 ||
	podman --root "$dir/root" --runroot "$dir/run" unshare true >/dev/null 2>&1
	# Overlay mounts under root/ would make rm -rf fail part-way.
	grep -o " $dir/[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r m; do
		umount -l "$m" 2>/dev/null
	done
	rm -rf "$dir"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	case ${1:-} in
	start)
		[ -n "${2:-}" ] || { echo "usage: $0 start DIR" >&2; exit 2; }
		sw_podman_start "$2" >&2 || exit 1
		echo "$SW_PODMAN_SOCK"
		;;
	stop)
		[ -n "${2:-}" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }
		sw_podman_stop "$2"
		;;
	image)
		# image SOCK: import the busybox image into any Docker API socket
		# (a real Docker's, say).
		[ -n "${2:-}" ] || { echo "usage: $0 image SOCK" >&2; exit 2; }
		t=$(mktemp) || exit 1
		sw_busybox_rootfs_tar "$t" || { rm -f "$t"; exit 1; }
		sw_podman_import "$2" "$t" "$SW_BUSYBOX_IMAGE" "$SW_BUSYBOX_TAG" >/dev/null
		rc=$?
		rm -f "$t"
		exit $rc
		;;
	*)
		echo "usage: $0 start|stop DIR | image SOCK" >&2
		exit 2
		;;
	esac
fi
