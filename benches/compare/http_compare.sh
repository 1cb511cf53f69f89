#!/usr/bin/env bash
# http_compare.sh [bench.py http options] [NAME=COMMAND@PORT ...]
#
# Runs wrk (tools/announce.lua: random announces over a fixed pool of 1,000 torrents / 100,000 peers, numwant 30)
# against each target in turn (rounds alternate the order), starting and stopping each tracker itself, and prints
# a markdown table of medians (req/s, p50/p99 latency). With no targets the anchor set is used; ANCHORS=1 adds it
# to your targets in the same run: opentracker (open build; it closes the connection after every response),
# aquatic_http (1 socket + 1 swarm worker), torrust (only if built), limit_hyper (hyper responder with a fixed
# 30-peer body: the ceiling). Anchors listen on free ports picked per run.
# Defaults: pinned (tracker CPU 1, wrk CPU 0), wrk 1 thread x 64 connections, keep-alive, 3 rounds x 15 s after
# a 3 s warm-up. --close sends "Connection: close" (aquatic_http then runs with keep_alive = false, because it
# ignores the client's header).
# Examples (from the project root):
#   ANCHORS=1 benches/compare/http_compare.sh 'ours=target/release/mini-torrust --config /tmp/x.toml@3110'
#   ANCHORS=1 benches/compare/http_compare.sh --close 'ours=target/release/mini-torrust --config /tmp/x.toml@3110'
# Options: benches/compare/bench.py --help (--conns, --threads, --duration, --runs, --close, --torrents, --peers).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_cmd python3 taskset "${WRK:-wrk}"
ka=true
for a in "$@"; do if [ "$a" = --close ]; then ka=false; fi; done
T=$BENCH_DIR/trackers
anchors=()
if ! has_target "$@" || [ "${ANCHORS:-0}" = 1 ]; then
  need "$BENCH_TOOLS/bin/opentracker" "$BENCH_TOOLS/cargo/bin/aquatic_http" "$BENCH_TOOLS/bin/http_limit"
  anchors+=("opentracker=$(q "$T/opentracker.sh") %PORT% 0@auto")
  anchors+=("aquatic_http=$(q "$T/aquatic_http.sh") %PORT% 1 1 $ka@auto")
  # torrust: HTTP tracker on the TCP port, its (unused) UDP tracker on the same number
  if [ -x "$TORRUST_BIN" ]; then anchors+=("torrust=$(q "$T/torrust.sh") %PORT% %PORT%@auto"); fi
  anchors+=("limit_hyper=$(q "$T/http_limit.sh") %PORT% 1 30@auto")
fi
exec python3 "$BENCH_DIR/bench.py" http "$@" "${anchors[@]}"
