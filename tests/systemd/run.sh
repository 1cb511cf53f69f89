#!/usr/bin/env bash
# mini-torrust under a real systemd: builds the .deb (`cargo deb`), makes a Debian 12 minbase
# rootfs with debootstrap (cached in target/systemd-test/rootfs, so a second run skips it),
# boots a throwaway copy of it with systemd-nspawn on a private network, and runs check.sh in
# it as a oneshot unit after boot: it installs the .deb and drives mini-torrust.service with
# systemctl (start, reload, restart, watchdog, a port below 1024, stop, remove, purge). Prints
# check.sh's lines and its "N passed, M failed"; exits 0 only if every check passed.
#
# Needs root, systemd-nspawn (systemd-container), debootstrap and cargo-deb; Debian's mirror
# only when the rootfs is not cached yet (MINI_TORRUST_DEBIAN_MIRROR overrides the mirror).
# tests/it/systemd.rs runs this from `cargo test` when those are present. With --prepare it
# only builds the .deb and the rootfs (.ci/run, before the tests).
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/systemd
work=target/systemd-test
cache=$work/rootfs
# What the cached rootfs is made of; a change here remakes it.
packages=systemd,systemd-sysv,dbus,curl
stamp="bookworm minbase $packages"
mirror=${MINI_TORRUST_DEBIAN_MIRROR:-http://deb.debian.org/debian}

die() {
	echo "tests/systemd/run.sh: $*" >&2
	exit 1
}
[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, systemd-nspawn)"
for tool in systemd-nspawn debootstrap; do
	command -v "$tool" >/dev/null || die "$tool missing (apt-get install systemd-container debootstrap)"
done
cargo deb --version >/dev/null 2>&1 || die "cargo-deb missing (cargo install cargo-deb --locked)"
mkdir -p "$work"
t0=$SECONDS

# 1. The .deb, as an operator builds it (README, "From a .deb"). Without the variables cargo sets
# for a running test (when tests/it/systemd.rs runs this): ring's build script tracks
# CARGO_MANIFEST_DIR, so they would make every other release build start over.
for v in $(compgen -e); do
	case $v in
	CARGO_MANIFEST_* | CARGO_PKG_* | CARGO_CRATE_NAME | CARGO_BIN_NAME | CARGO_BIN_EXE_* | \
		CARGO_PRIMARY_PACKAGE | CARGO_TARGET_TMPDIR) unset "$v" ;;
	esac
done
deb=$(cargo deb --quiet --output "$work/mini-torrust.deb" | tail -n 1)
[ -f "$deb" ] || die "cargo deb made no .deb"
echo "built $deb ($((SECONDS - t0)) s)"

# 2. The rootfs, made once.
if [ "$(cat "$cache/.mini-torrust-stamp" 2>/dev/null)" != "$stamp" ]; then
	t1=$SECONDS
	rm -rf "$cache" "$cache.partial"
	echo "debootstrap: $stamp (cached in $cache afterwards)"
	if ! timeout 900 debootstrap --variant=minbase --include="$packages" bookworm "$cache.partial" "$mirror" \
		>"$work/debootstrap.log" 2>&1; then
		tail -n 20 "$work/debootstrap.log" >&2
		die "debootstrap failed (log: $work/debootstrap.log)"
	fi
	# Nothing but the test's unit runs after boot (no login prompt on the console).
	rm -f "$cache.partial/etc/systemd/system/getty.target.wants/"*
	echo "$stamp" >"$cache.partial/.mini-torrust-stamp"
	mv "$cache.partial" "$cache"
	echo "rootfs made in $((SECONDS - t1)) s"
fi
[ "${1:-}" != --prepare ] || exit 0

# 3. A throwaway copy: an overlay on the cached rootfs where the kernel allows it, else a copy.
run=$work/run.$$
machine=mini-torrust-test-$$
mkdir -p "$run/upper" "$run/work" "$run/root"
cleanup() {
	mountpoint -q "$run/root" && umount "$run/root"
	rm -rf "$run"
}
trap cleanup EXIT
if ! mount -t overlay overlay -o "lowerdir=$PWD/$cache,upperdir=$PWD/$run/upper,workdir=$PWD/$run/work" \
	"$run/root" 2>/dev/null; then
	cp -a "$cache/." "$run/root/"
fi
root=$run/root

# The inputs: the .deb, the checks, and the low-port drop-in exactly as the README gives it.
cp "$deb" "$root/root/mini-torrust.deb"
install -m 0755 "$here/check.sh" "$root/root/check.sh"
awk '/^```/ { if (keep) exit; next } /^# \/etc\/systemd\/system\/mini-torrust.service.d\/low-port.conf$/ { keep = 1 } keep' \
	README.md >"$root/root/low-port.conf"
grep -q '^\[Service\]' "$root/root/low-port.conf" || die "README.md has no low-port.conf drop-in block"
rm -f "$root/root/results"
cat >"$root/etc/systemd/system/mini-torrust-check.service" <<'EOF'
[Unit]
Description=mini-torrust systemd test (tests/systemd/check.sh)
After=multi-user.target
SuccessAction=poweroff-force
FailureAction=poweroff-force

[Service]
Type=oneshot
ExecStart=/root/check.sh
TimeoutStartSec=400
EOF
# Pulled in at boot, run once the system is up (default.target, not multi-user: no cycle).
mkdir -p "$root/etc/systemd/system/default.target.wants"
ln -sf ../mini-torrust-check.service "$root/etc/systemd/system/default.target.wants/"

# 4. Boot. The checks power the container off when they end; timeout bounds a hang.
t2=$SECONDS
set +e
timeout --kill-after=10 500 systemd-nspawn -q -D "$root" -b --private-network --register=no \
	--keep-unit --console=pipe -M "$machine" </dev/null >"$work/boot.log" 2>&1
boot=$?
set -e
echo "booted and checked in $((SECONDS - t2)) s (systemd-nspawn exit $boot)"

if [ ! -f "$root/root/results" ]; then
	cat "$root/root/results.partial" 2>/dev/null
	echo "--- boot log (last 40 lines)"
	tail -n 40 "$work/boot.log"
	die "the checks did not finish (no results)"
fi
cat "$root/root/results"
echo "total $((SECONDS - t0)) s"
grep -qE '^[0-9]+ passed, 0 failed$' "$root/root/results"
