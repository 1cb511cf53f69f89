#!/usr/bin/env bash
# setup.sh [--with-torrust]: install and build everything the compare scripts need. Idempotent: a step whose
# product already exists is skipped, so re-running is cheap; delete a product to rebuild it.
#
#   apt-get       wrk gcc make zlib1g-dev (+ libc6-dev xz-utils patch python3, needed by the steps below);
#                 with --with-torrust also libssl-dev pkg-config libsqlite3-dev
#   cargo install aquatic_udp, aquatic_udp_load_test, aquatic_http 0.9.0 into $BENCH_TOOLS/cargo
#                 (--locked first; aquatic_udp/aquatic_http 0.9.0 fail --locked on rustc 1.95 (metrics
#                 0.22.3: E0521) and are then built unlocked; torrust-tracker 3.0.0 only with --with-torrust (~9 min)
#   opentracker   open-mode build of upstream b20b0b8 (Debian sid source package, see build_opentracker below)
#   ceilings      limit/udp_limit.c, limit/udp_fill.c (gcc), limit/http_limit (cargo) into $BENCH_TOOLS/bin
#
# Everything goes under BENCH_TOOLS (default ~/.cache/mini-torrust-bench); nothing is written next to this script.
# Build logs: $BENCH_TOOLS/logs. The shared cargo target dir ($BENCH_TOOLS/target, 1-2 GB) is deleted at the end
# unless BENCH_KEEP_BUILD=1. A fresh run takes ~7 min on 2 cores (+ ~9 min with --with-torrust).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

with_torrust=0
for a in "$@"; do
  case $a in
    --with-torrust) with_torrust=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown option: $a (see --help)" >&2; exit 2 ;;
  esac
done

HINT=$(setup_hint)
mkdir -p "$BENCH_TOOLS"/{bin,cargo,src,logs}
LOGS=$BENCH_TOOLS/logs
# work from BENCH_TOOLS, so that no .cargo/config.toml of the calling project affects the builds
cd "$BENCH_TOOLS"
export CARGO_TARGET_DIR=$BENCH_TOOLS/target   # shared by the cargo installs (common dependencies build once)
SUDO=; if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

summary=()
result=; current=; t0=0; t_all=$(date +%s)
on_exit() {
  local rc=$?
  if [ "$rc" != 0 ] && [ -n "$current" ]; then
    echo "setup.sh: step '$current' FAILED (exit $rc) after $(( $(date +%s) - t0 )) s; logs in $LOGS" >&2
  fi
}
trap on_exit EXIT

# step NAME FUNCTION [ARGS]: run one step, print and record how long it took.
step() {
  current=$1; shift
  t0=$(date +%s)
  echo "== $current"
  "$@"
  local dt=$(( $(date +%s) - t0 ))
  summary+=("$(printf '%-34s %5d s  %s' "$current" "$dt" "$result")")
  echo "   $result ($dt s)"
  current=
}

# show the end of a log after a failure, then fail
fail_log() { echo "---- last lines of $1" >&2; tail -n 40 "$1" >&2 || true; return 1; }

# ------------------------------------------------------------------------------------------- apt packages
apt_packages() {
  local pkgs=(wrk gcc make zlib1g-dev libc6-dev xz-utils patch python3) missing=() p
  [ "$with_torrust" = 1 ] && pkgs+=(libssl-dev pkg-config libsqlite3-dev)
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} = 0 ]; then result="skipped (installed: ${pkgs[*]})"; return; fi
  local log=$LOGS/apt.log
  echo "   installing: ${missing[*]} (log: $log)"
  local apt_get=($SUDO env DEBIAN_FRONTEND=noninteractive apt-get)
  # no package lists yet (fresh machine) or stale ones: apt-get update, then try again
  "${apt_get[@]}" install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1 || {
    "${apt_get[@]}" update >>"$log" 2>&1 || fail_log "$log"
    "${apt_get[@]}" install -y --no-install-recommends "${missing[@]}" >>"$log" 2>&1 || fail_log "$log"
  }
  result="installed ${missing[*]}"
}

# ------------------------------------------------------------------------------------------- ceilings (C)
build_c() { # NAME [gcc flags]
  local name=$1; shift
  local out=$BENCH_TOOLS/bin/$name src=$BENCH_DIR/limit/$name.c
  if [ -x "$out" ] && [ "$out" -nt "$src" ]; then result="skipped ($out exists)"; return; fi
  gcc -O2 -Wall "$@" -o "$out.tmp" "$src"
  mv "$out.tmp" "$out"
  result="built $out"
}

# ------------------------------------------------------------------------------------------- http_limit (cargo)
build_http_limit() {
  local out=$BENCH_TOOLS/bin/http_limit src=$BENCH_DIR/limit/http_limit work=$BENCH_TOOLS/src/http_limit
  if [ -x "$out" ] && [ "$out" -nt "$src/src/main.rs" ] && [ "$out" -nt "$src/Cargo.toml" ]; then
    result="skipped ($out exists)"; return
  fi
  # build a copy, so that cargo's Cargo.lock and target/ never land in the repository
  mkdir -p "$work/src"
  cp "$src/Cargo.toml" "$work/Cargo.toml"
  cp "$src/src/main.rs" "$work/src/main.rs"
  local log=$LOGS/http_limit.log
  (cd "$work" && cargo build --release) >>"$log" 2>&1 || fail_log "$log"
  cp "$CARGO_TARGET_DIR/release/http_limit" "$out.tmp" && mv "$out.tmp" "$out"
  local hyper; hyper=$(grep -A1 '^name = "hyper"$' "$work/Cargo.lock" | sed -n 's/^version = "\(.*\)"/\1/p' || true)
  result="built $out (hyper ${hyper:-?})"
}

# ------------------------------------------------------------------------------------------- cargo install
cargo_install() { # CRATE VERSION [BIN]
  local crate=$1 ver=$2 bin=${3:-$1}
  local out=$BENCH_TOOLS/cargo/bin/$bin log=$LOGS/cargo-install-$crate.log
  if [ -x "$out" ]; then result="skipped ($out exists)"; return; fi
  echo "   log: $log"
  if cargo install --root "$BENCH_TOOLS/cargo" --locked --version "$ver" "$crate" >>"$log" 2>&1; then
    result="installed $crate $ver (--locked)"
  else
    echo "   --locked build failed (expected for aquatic_udp/aquatic_http on recent rustc); retrying unlocked"
    cargo install --root "$BENCH_TOOLS/cargo" --version "$ver" "$crate" >>"$log" 2>&1 || fail_log "$log"
    result="installed $crate $ver (unlocked)"
  fi
}

# ------------------------------------------------------------------------------------------- opentracker (open mode)
# Debian bookworm's opentracker package (0.0~git20210823.110868e) is compiled with -DWANT_ACCESSLIST_WHITE, i.e.
# a closed tracker that answers every unlisted info hash with an error, and IPv4 only: it cannot be benchmarked.
# So: fetch the Debian sid source package (upstream git b20b0b8, 2025-04-25) and libowfat 0.34 with
# `apt-get source --download-only` through a private deb-src list (the system's apt sources are not touched), and
# build with upstream's Makefile defaults: open (no access list), dual-stack, WANT_FULLSCRAPE,
# WANT_COMPRESSION_GZIP, -O3. Debian's patches (man pages, Makefile) are applied. The mirror is the one this
# machine already uses, read from its own apt sources.
OT_VER=1.0+git20250425.b20b0b8
OT_DEB=$OT_VER-1
OT_GIT=b20b0b89264e9d28ab873b8b1cc9ba73cdb58aeb
OT_SHA=ebfc697143397d547776340124623ebb185b726c09130eaed98d8898777996d3
OWFAT_VER=0.34
OWFAT_DEB=0.34-2
OWFAT_SHA=d4330d373ac9581b397bc24a22ad1f7f5d58a7fe36d9d239fe352ceffc5d304b

apt_mirror() {
  local uri=
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then   # older one-line format
    uri=$(awk '$1 == "deb" && !/security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { echo "cannot find this machine's Debian mirror in /etc/apt/sources.list.d/debian.sources" >&2; return 1; }
  echo "$uri"
}

build_opentracker() {
  local out=$BENCH_TOOLS/bin/opentracker
  if [ -x "$out" ]; then result="skipped ($out exists)"; return; fi
  local src=$BENCH_TOOLS/src/opentracker log=$LOGS/opentracker.log uri
  local apt=$src/apt dl=$src/download
  mkdir -p "$apt/lists/partial" "$dl"
  uri=$(apt_mirror)
  echo "deb-src $uri sid main" > "$apt/src.list"
  local APT=(apt-get -o "Dir::Etc::sourcelist=$apt/src.list" -o Dir::Etc::sourceparts=/nonexistent
             -o "Dir::State::Lists=$apt/lists")
  echo "   log: $log"
  cd "$dl"
  "${APT[@]}" update >>"$log" 2>&1 || fail_log "$log"
  local ot_orig=opentracker_$OT_VER.orig.tar.xz ot_debian=opentracker_$OT_DEB.debian.tar.xz
  local ow_orig=libowfat_$OWFAT_VER.orig.tar.xz pinned=1
  if [ ! -f "$ot_orig" ] || [ ! -f "$ot_debian" ]; then
    if ! "${APT[@]}" source --download-only "opentracker=$OT_DEB" >>"$log" 2>&1; then
      # sid moved on: take its current opentracker, and say so (the reference figures are for b20b0b8)
      echo "   WARNING: opentracker $OT_DEB is no longer in sid; building sid's current version instead" | tee -a "$log"
      "${APT[@]}" source --download-only opentracker >>"$log" 2>&1 || fail_log "$log"
      pinned=0
      ot_orig=$(ls -t opentracker_*.orig.tar.* | head -1); ot_debian=$(ls -t opentracker_*.debian.tar.* | head -1)
    fi
  fi
  if [ ! -f "$ow_orig" ]; then
    # only the orig tarball is used; apt-get may still report an error for the rest of the source package
    "${APT[@]}" source --download-only "libowfat=$OWFAT_DEB" >>"$log" 2>&1 || true
    [ -f "$ow_orig" ] || "${APT[@]}" source --download-only libowfat >>"$log" 2>&1 || true
    [ -f "$ow_orig" ] || { ow_orig=$(ls -t libowfat_*.orig.tar.* 2>/dev/null | head -1); pinned=0; }
    [ -n "$ow_orig" ] && [ -f "$ow_orig" ] || { echo "libowfat source not found" >&2; fail_log "$log"; }
  fi
  # the pinned tarballs must match what the reference figures were measured with
  if [ "$ot_orig" = "opentracker_$OT_VER.orig.tar.xz" ]; then
    echo "$OT_SHA  $ot_orig" | sha256sum -c >>"$log" 2>&1 || fail_log "$log"
  fi
  if [ "$ow_orig" = "libowfat_$OWFAT_VER.orig.tar.xz" ]; then
    echo "$OWFAT_SHA  $ow_orig" | sha256sum -c >>"$log" 2>&1 || fail_log "$log"
  fi
  rm -rf "$src/build" && mkdir -p "$src/build/ot" "$src/build/owfat"
  tar -C "$src/build/ot" -xf "$ot_orig"
  tar -C "$src/build/ot" -xf "$ot_debian"
  tar -C "$src/build/owfat" -xf "$ow_orig"
  local owdir otdir
  owdir=$(ls -d "$src"/build/owfat/libowfat-*/ | head -1)
  otdir=$(ls -d "$src"/build/ot/opentracker*/ | head -1)
  (cd "$owdir" && make -j2) >>"$log" 2>&1 || fail_log "$log"
  (
    cd "$otdir"
    if [ -f ../debian/patches/series ]; then
      while read -r p; do
        case $p in ''|'#'*) continue ;; esac
        patch -p1 < "../debian/patches/$p"
      done < ../debian/patches/series
    fi
    local gitver=$OT_GIT
    [ "$pinned" = 1 ] || gitver=$(basename "$ot_orig" | sed -n 's/.*git[0-9]*\.\([0-9a-f]*\)\.orig.*/\1/p')
    make opentracker LIBOWFAT_HEADERS="$owdir" LIBOWFAT_LIBRARY="$owdir" GIT_VERSION="${gitver:-unknown}"
  ) >>"$log" 2>&1 || fail_log "$log"
  cp "$otdir/opentracker" "$out.tmp" && mv "$out.tmp" "$out"
  rm -rf "$apt/lists"   # the sid source index is large and no longer needed
  cd "$BENCH_TOOLS"
  result="built $out from $(basename "$ot_orig") + $(basename "$ow_orig")"
}

clean_build_dir() {
  if [ ! -d "$CARGO_TARGET_DIR" ]; then result="nothing to remove"; return; fi
  if [ "${BENCH_KEEP_BUILD:-0}" = 1 ]; then result="kept $CARGO_TARGET_DIR (BENCH_KEEP_BUILD=1)"; return; fi
  local sz; sz=$(du -sh "$CARGO_TARGET_DIR" | cut -f1)
  rm -rf "$CARGO_TARGET_DIR" "$BENCH_TOOLS/src/opentracker/build"
  result="removed $CARGO_TARGET_DIR ($sz; BENCH_KEEP_BUILD=1 keeps it)"
}

echo "setup.sh: BENCH_TOOLS=$BENCH_TOOLS ($(rustc --version 2>/dev/null || echo 'no rustc'), $(nproc) CPUs)"
need_cmd cargo rustc
step "apt packages"                       apt_packages
step "udp_limit (gcc)"                    build_c udp_limit -pthread
step "udp_fill (gcc)"                     build_c udp_fill
step "opentracker b20b0b8 (open build)"   build_opentracker
step "http_limit (cargo build)"           build_http_limit
step "aquatic_udp 0.9.0"                  cargo_install aquatic_udp 0.9.0
step "aquatic_udp_load_test 0.9.0"        cargo_install aquatic_udp_load_test 0.9.0
step "aquatic_http 0.9.0"                 cargo_install aquatic_http 0.9.0
if [ "$with_torrust" = 1 ]; then
  step "torrust-tracker 3.0.0"            cargo_install torrust-tracker 3.0.0
fi
step "clean build dir"                    clean_build_dir

echo
echo "setup.sh done in $(( $(date +%s) - t_all )) s (BENCH_TOOLS=$BENCH_TOOLS, $(du -sh "$BENCH_TOOLS" | cut -f1)):"
printf '  %s\n' "${summary[@]}"
if [ ! -x "$TORRUST_BIN" ]; then echo "  (torrust-tracker not built: the anchors skip it; add it with: $HINT --with-torrust)"; fi
