#!/usr/bin/env bash
# udp_compare.sh [bench.py udp options] [NAME=COMMAND@PORT ...]
#
# Runs the stock aquatic_udp_load_test 0.9.0 against each target in turn (rounds alternate the order), starting
# and stopping every tracker itself (own process group, stopped by its PID), and prints a markdown table of
# medians. With no targets the anchor set is used; ANCHORS=1 adds the anchors to your targets in the same run:
#   opentracker (open build, 1 UDP worker), aquatic_udp (1 socket worker), torrust (only if setup.sh
#   --with-torrust built it), limit_simple / limit_mmsg (stateless responders: the ceiling of this rig).
# Anchors listen on free ports picked per run. Defaults: pinned (tracker CPU 1, load generator CPU 0),
# 3 rounds x 20 s (last 15 s averaged), aquatic_bencher's mix (announce 100 : scrape 1), 1M torrents.
# Examples (from the project root):
#   ANCHORS=1 benches/compare/udp_compare.sh 'ours=target/release/mini-torrust --config /tmp/x.toml@3010'
#   benches/compare/udp_compare.sh --runs 5 --mode free
# Options: benches/compare/bench.py --help (--runs, --duration, --mode, --profile, --lt-workers, --sockets, ...).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_cmd python3 taskset
need "$BENCH_TOOLS/cargo/bin/aquatic_udp_load_test"
T=$BENCH_DIR/trackers
anchors=()
if ! has_target "$@" || [ "${ANCHORS:-0}" = 1 ]; then
  need "$BENCH_TOOLS/bin/opentracker" "$BENCH_TOOLS/cargo/bin/aquatic_udp" "$BENCH_TOOLS/bin/udp_limit"
  anchors+=("opentracker=$(q "$T/opentracker.sh") %PORT% 1@auto")
  anchors+=("aquatic_udp=$(q "$T/aquatic_udp.sh") %PORT% 1@auto")
  if [ -x "$TORRUST_BIN" ]; then anchors+=("torrust=$(q "$T/torrust.sh") %PORT%@auto"); fi
  anchors+=("limit_simple=$(q "$T/udp_limit.sh") %PORT% simple 0@auto")
  anchors+=("limit_mmsg=$(q "$T/udp_limit.sh") %PORT% mmsg 0@auto")
fi
exec python3 "$BENCH_DIR/bench.py" udp "$@" "${anchors[@]}"
