#!/usr/bin/env bash
# tests/interop/run.sh: real BitTorrent clients (libtorrent, aria2, Transmission) download through
# our tracker over HTTP and UDP, IPv4 and IPv6, and across a tracker restart (issue 7).
#
# Builds the release binary, installs the clients when missing (Debian/Ubuntu: apt-get), starts the
# tracker on free loopback ports (127.0.0.1 and ::1) with a temporary config and snapshot dir, runs
# tests/interop/interop.py, and stops everything it started, by PID. Prints one line per check and
# `N passed, M failed`; exits 0 only if no check failed.
#
# Environment:
#   INTEROP_TRACKER   mini-torrust (default) or opentracker (the stand-in used while developing)
#   INTEROP_ONLY      comma list of check groups: libtorrent,aria2,transmission,ipv6,restart,cluster
#                     (cluster: two mini-torrust nodes sharing swarms through a private redis-server)
#   INTEROP_KEEP=1    keep the scratch directory (logs of the tracker and every client)
#   INTEROP_SUMMARY   write the results and client versions as JSON to this file
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/tests/interop
PY=/usr/bin/python3                # Debian's python: python3-libtorrent is built for it
TRACKER=${INTEROP_TRACKER:-mini-torrust}
export PYTHONDONTWRITEBYTECODE=1   # no __pycache__ in the source tree
SUITE_TIMEOUT=540                  # seconds for all checks (the build and installs come before)

say() { printf '%s\n' "$*"; }
die() { say "FAIL $1"; say "0 passed, 1 failed"; exit 1; }

# ---------------------------------------------------------------- the tracker under test
# The one place that says which tracker runs and how; everything else only sees the URLs.
tracker_cmd() {
  case $TRACKER in
    mini-torrust) printf '%q --config %q' "$ROOT/target/release/mini-torrust" "$WORK/tracker.toml" ;;
    opentracker)  printf '%q -f %q' "$OPENTRACKER_BIN" "$WORK/opentracker.conf" ;;
    *) return 1 ;;
  esac
}

write_tracker_config() {
  case $TRACKER in
    mini-torrust)
      mkdir -p "$WORK/state"
      cat >"$WORK/tracker.toml" <<EOF
# written by tests/interop/run.sh
[http]
bind = ["127.0.0.1:$HTTP_PORT", "[::1]:$HTTP_PORT"]

[udp]
bind = ["127.0.0.1:$UDP_PORT", "[::1]:$UDP_PORT"]

[admin]
bind = ["127.0.0.1:$ADMIN_PORT"]

[snapshot]
enabled = true
path = "$WORK/state/snapshot.json"

[log]
filter = "warn"
EOF
      ;;
    opentracker)
      # HTTP and UDP on the same port number (opentracker serves both from one config line each)
      UDP_PORT=$HTTP_PORT
      mkdir -p "$WORK/opentracker"
      cat >"$WORK/opentracker.conf" <<EOF
listen.tcp 127.0.0.1:$HTTP_PORT
listen.udp 127.0.0.1:$HTTP_PORT
listen.tcp [::1]:$HTTP_PORT
listen.udp [::1]:$HTTP_PORT
tracker.rootdir $WORK/opentracker
EOF
      ;;
  esac
}

# The cluster group's two nodes (mini-torrust only): each its own ports, no snapshot, [cluster]
# on a private redis-server that interop.py starts on $REDIS_PORT. They listen on 127.0.0.2, not
# 127.0.0.1: libtorrent keeps UDP connection ids per tracker IP address (not per port, and across
# sessions), so it would hand the main tracker's id to node A; two trackers on one IP with
# different keys is an artifact of this suite (nodes behind one name share their key).
write_node_config() { # name http udp admin
  cat >"$WORK/node-$1.toml" <<EOF
# written by tests/interop/run.sh (cluster group, node $1)
[http]
bind = ["127.0.0.2:$2"]

[udp]
bind = ["127.0.0.2:$3"]

[admin]
bind = ["127.0.0.1:$4"]

[snapshot]
enabled = false

[log]
filter = "warn"

[cluster]
redis_url = "redis://127.0.0.1:$REDIS_PORT/0"
node_name = "interop-$1"
EOF
}

cluster_args() {
  [ "$TRACKER" = mini-torrust ] || return 0
  local p
  write_node_config a "$A_HTTP" "$A_UDP" "$A_ADMIN"
  write_node_config b "$B_HTTP" "$B_UDP" "$B_ADMIN"
  p=$ROOT/target/release/mini-torrust
  CLUSTER_ARGS=(
    --redis-server "$(command -v redis-server)" --redis-port "$REDIS_PORT"
    --node-a-cmd "$(printf '%q --config %q' "$p" "$WORK/node-a.toml")"
    --node-a-http "http://127.0.0.2:$A_HTTP/announce" --node-a-udp "udp://127.0.0.2:$A_UDP/announce"
    --node-b-cmd "$(printf '%q --config %q' "$p" "$WORK/node-b.toml")"
    --node-b-http "http://127.0.0.2:$B_HTTP/announce" --node-b-udp "udp://127.0.0.2:$B_UDP/announce"
  )
}

# ---------------------------------------------------------------- clients
install_clients() {
  local missing=()
  "$PY" -c 'import libtorrent' 2>/dev/null || missing+=(python3-libtorrent)
  command -v aria2c >/dev/null || missing+=(aria2)
  command -v transmission-daemon >/dev/null || missing+=(transmission-daemon)
  command -v transmission-remote >/dev/null || missing+=(transmission-cli)
  command -v redis-server >/dev/null || missing+=(redis-server)
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 "${sudo[@]}" apt-get update -q >"$WORK/apt.log" 2>&1 &&
    timeout 300 "${sudo[@]}" apt-get install -y -q \
      "${missing[@]}" </dev/null >>"$WORK/apt.log" 2>&1 ||
    { tail -20 "$WORK/apt.log"; return 1; }
}

# ---------------------------------------------------------------- cleanup (only what we started)
DRIVER_PID=
cleanup() {
  local rc=$? pid f
  trap - EXIT INT TERM
  if [ -n "$DRIVER_PID" ] && kill -0 "$DRIVER_PID" 2>/dev/null; then
    kill -TERM "$DRIVER_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$DRIVER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$DRIVER_PID" 2>/dev/null
  fi
  # the tracker and clients the driver started, if it could not stop them itself: only PIDs it
  # recorded, and only if the process still refers to our scratch directory (no PID reuse mix-up)
  if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
    for f in "$WORK/tracker.pid" "$WORK/children.pids"; do
      [ -f "$f" ] || continue
      while read -r pid; do
        [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || continue
        if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$WORK"; then kill -KILL "$pid" 2>/dev/null; fi
      done <"$f"
    done
    if [ "${INTEROP_KEEP:-0}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# the tracker must see only our temporary config: no config overrides or systemd sockets from outside
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(MINI_TORRUST_|NOTIFY_SOCKET$|WATCHDOG_)')

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mini-torrust-interop.XXXXXX") || die "mktemp"

t0=$SECONDS
install_clients || die "installing clients (python3-libtorrent aria2 transmission-daemon transmission-cli redis-server)"

case $TRACKER in
  mini-torrust)
    say "building target/release/mini-torrust"
    (cd "$ROOT" && timeout 1500 cargo build --release -p mini-torrust --bin mini-torrust) >"$WORK/build.log" 2>&1 ||
      { tail -30 "$WORK/build.log"; die "build (cargo build --release -p mini-torrust)"; }
    [ -x "$ROOT/target/release/mini-torrust" ] || die "build: target/release/mini-torrust missing"
    ;;
  opentracker)
    OPENTRACKER_BIN=${OPENTRACKER_BIN:-${BENCH_TOOLS:-$HOME/.cache/mini-torrust-bench}/bin/opentracker}
    [ -x "$OPENTRACKER_BIN" ] || die "opentracker not found at $OPENTRACKER_BIN (run benches/compare/setup.sh)"
    ;;
  *) die "unknown INTEROP_TRACKER=$TRACKER (mini-torrust or opentracker)" ;;
esac
case $TRACKER in
  mini-torrust) version=$(timeout 10 "$ROOT/target/release/mini-torrust" --version 2>&1 | head -1) ;;
  *) version=$TRACKER ;;
esac
say "tracker: $version; setup (installs, build) took $((SECONDS - t0))s"

# the tracker's three, then redis-server's and the cluster nodes' (one probe: no overlap)
read -r HTTP_PORT UDP_PORT ADMIN_PORT REDIS_PORT A_HTTP A_UDP A_ADMIN B_HTTP B_UDP B_ADMIN \
  < <(timeout 30 "$PY" "$HERE/tracker_probe.py" free-ports 10) ||
  die "finding free ports"
write_tracker_config
cmd=$(tracker_cmd) || die "tracker command"
CLUSTER_ARGS=()
cluster_args

timeout -k 15 "$SUITE_TIMEOUT" "$PY" "$HERE/interop.py" \
  --work "$WORK" \
  --tracker-cmd "$cmd" \
  --http4 "http://127.0.0.1:$HTTP_PORT/announce" \
  --udp4 "udp://127.0.0.1:$UDP_PORT/announce" \
  --http6 "http://[::1]:$HTTP_PORT/announce" \
  --udp6 "udp://[::1]:$UDP_PORT/announce" \
  --wait-v6 \
  --only "${INTEROP_ONLY:-}" \
  "${CLUSTER_ARGS[@]}" \
  --summary "$WORK/summary.json" > >(tee "$WORK/driver.out") &
DRIVER_PID=$!
wait "$DRIVER_PID"
rc=$?
DRIVER_PID=
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  sleep 0.5  # let tee finish
  pass=$(grep -c '^PASS ' "$WORK/driver.out"); fail=$(grep -c '^FAIL ' "$WORK/driver.out")
  say "FAIL suite: did not finish within ${SUITE_TIMEOUT}s"
  say "$pass passed, $((fail + 1)) failed"
fi
if [ -n "${INTEROP_SUMMARY:-}" ] && [ -f "$WORK/summary.json" ]; then cp "$WORK/summary.json" "$INTEROP_SUMMARY"; fi
say "interop suite took $((SECONDS - t0))s"
exit "$rc"
