#!/usr/bin/env bash
# mem_compare.sh [bench.py mem options] [NAME=COMMAND@PORT ...]
#
# Starts each tracker, announces N distinct peers once each (default 1,000,000 peers in 100,000 torrents), and
# reports VmRSS/VmHWM before and after and bytes per peer = (RSS after - RSS at start) / peers acknowledged.
# UDP fill (default): limit/udp_fill, windowed, re-sends un-acked announces until --fill-timeout (default 60 s).
# HTTP fill (--proto-mem http): wrk walking the peers in order for --fill-timeout seconds.
# With no targets the anchor set is used; ANCHORS=1 adds it to your targets: opentracker, aquatic_udp
# (aquatic_http with --proto-mem http), torrust (only if built), and a stateless control (limit_mmsg /
# limit_hyper, ~0 bytes/peer). Anchors listen on free ports picked per run.
# Examples (from the project root):
#   ANCHORS=1 benches/compare/mem_compare.sh 'ours=target/release/mini-torrust --config /tmp/x.toml@3010'
#   benches/compare/mem_compare.sh --fill-torrents 1000                       # 1000 peers per torrent
#   ANCHORS=1 benches/compare/mem_compare.sh --proto-mem http --fill-peers 200000 --fill-torrents 20000 \
#       --fill-timeout 30 'ours=target/release/mini-torrust --config /tmp/x.toml@3110'
# Check that a UDP fill landed: benches/compare/tools/udp_fill_check.py PORT (scrapes the first torrents).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_cmd python3 taskset
proto=udp; prev=
for a in "$@"; do
  case $a in --proto-mem=http) proto=http ;; --proto-mem=udp) proto=udp ;; esac
  if [ "$prev" = --proto-mem ]; then proto=$a; fi
  prev=$a
done
if [ "$proto" = http ]; then need_cmd "${WRK:-wrk}"; else need "$BENCH_TOOLS/bin/udp_fill"; fi
T=$BENCH_DIR/trackers
anchors=()
if ! has_target "$@" || [ "${ANCHORS:-0}" = 1 ]; then
  need "$BENCH_TOOLS/bin/opentracker"
  anchors+=("opentracker=$(q "$T/opentracker.sh") %PORT% 0@auto")
  if [ "$proto" = http ]; then
    need "$BENCH_TOOLS/cargo/bin/aquatic_http" "$BENCH_TOOLS/bin/http_limit"
    anchors+=("aquatic_http=$(q "$T/aquatic_http.sh") %PORT% 1 1@auto")
    if [ -x "$TORRUST_BIN" ]; then anchors+=("torrust=$(q "$T/torrust.sh") %PORT% %PORT%@auto"); fi
    anchors+=("limit_hyper=$(q "$T/http_limit.sh") %PORT% 1 30@auto")
  else
    need "$BENCH_TOOLS/cargo/bin/aquatic_udp" "$BENCH_TOOLS/bin/udp_limit"
    anchors+=("aquatic_udp=$(q "$T/aquatic_udp.sh") %PORT% 1@auto")
    if [ -x "$TORRUST_BIN" ]; then anchors+=("torrust=$(q "$T/torrust.sh") %PORT%@auto"); fi
    anchors+=("limit_mmsg=$(q "$T/udp_limit.sh") %PORT% mmsg 0@auto")
  fi
fi
exec python3 "$BENCH_DIR/bench.py" mem --fill-timeout 60 "$@" "${anchors[@]}"
