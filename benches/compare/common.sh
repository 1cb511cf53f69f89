# common.sh: sourced by setup.sh, the *_compare.sh scripts and trackers/*.sh. Not meant to be run.
#   BENCH_DIR    this directory (scripts and sources only; nothing is ever written here)
#   BENCH_TOOLS  installs and build products   (default ~/.cache/mini-torrust-bench)
#   BENCH_RUNS   run logs, tables, tracker configs (default /tmp/mini-torrust-bench-runs)
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_TOOLS=${BENCH_TOOLS:-$HOME/.cache/mini-torrust-bench}
BENCH_RUNS=${BENCH_RUNS:-/tmp/mini-torrust-bench-runs}
BENCH_TOOLS=$(realpath -m -- "$BENCH_TOOLS"); BENCH_RUNS=$(realpath -m -- "$BENCH_RUNS")   # absolute
export BENCH_TOOLS BENCH_RUNS

# setup.sh as seen from the caller's directory (e.g. ./benches/compare/setup.sh from the project root)
setup_hint() {
  local p
  p=$(realpath --relative-to="$PWD" "$BENCH_DIR/setup.sh" 2>/dev/null || echo "$BENCH_DIR/setup.sh")
  case $p in /*|.*) ;; *) p=./$p ;; esac
  echo "$p"
}

# need FILE...: every FILE must be an executable; otherwise stop at once.
need() {
  local f
  for f in "$@"; do
    if [ ! -x "$f" ]; then
      echo "error: $f is missing (BENCH_TOOLS=$BENCH_TOOLS): run $(setup_hint) first" >&2
      exit 1
    fi
  done
}

# need_cmd NAME...: every NAME must be on PATH.
need_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || { echo "error: '$c' is not installed: run $(setup_hint) first" >&2; exit 1; }
  done
}

# has_target ARGS...: true if any argument looks like a NAME=COMMAND@PORT target.
has_target() {
  local a
  for a in "$@"; do case $a in *=*@*) return 0 ;; esac; done
  return 1
}

# q STRING: STRING quoted for /bin/sh (tracker commands are run with sh -c).
q() { printf '%q' "$1"; }

TORRUST_BIN=$BENCH_TOOLS/cargo/bin/torrust-tracker
# where trackers/*.sh write the configs they generate: the current run's directory (set by bench.py)
CFG_DIR=${BENCH_RUN_DIR:-$BENCH_RUNS}/cfg
