#!/usr/bin/env bash
# Builds every cargo-fuzz target once and runs each for SECONDS_PER_TARGET (default 30), one
# fuzzer process at a time, on a fresh working corpus copied from fuzz/seeds/<target>/.
#
#   fuzz/run.sh [SECONDS_PER_TARGET]
#
# Prints one summary line per target and exits non-zero if any target crashed (the crash input
# is in fuzz/artifacts/<target>/, the fuzzer's log in fuzz/logs/<target>.log).
set -euo pipefail

SECS="${1:-30}"
if ! [[ "$SECS" =~ ^[0-9]+$ ]] || [ "$SECS" -lt 1 ]; then
    echo "usage: fuzz/run.sh [SECONDS_PER_TARGET]" >&2
    exit 2
fi

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$FUZZ_DIR")"
# torrent_file last: it is the one expected to hit deep-nesting trouble in the parser.
TARGETS=(udp_request http_query http_direct snapshot_load admin_api torrent_file)

if ! command -v rustup >/dev/null 2>&1 || ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz: skipped (no nightly toolchain)"
    exit 0
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz not found; installing it with: cargo install cargo-fuzz --locked"
    if ! cargo install cargo-fuzz --locked; then
        echo "fuzz: cannot install cargo-fuzz ('cargo install cargo-fuzz --locked' failed, see above);" \
            "install it by hand and run again" >&2
        exit 1
    fi
fi

cd "$ROOT"
echo "fuzz: building ${#TARGETS[@]} targets (cargo +nightly fuzz build)"
cargo +nightly fuzz build --fuzz-dir "$FUZZ_DIR"

LOGS="$FUZZ_DIR/logs"
mkdir -p "$LOGS" "$FUZZ_DIR/corpus"
failed=()
for t in "${TARGETS[@]}"; do
    corpus="$FUZZ_DIR/corpus/$t"
    rm -rf "$corpus"
    mkdir -p "$corpus"
    if [ -d "$FUZZ_DIR/seeds/$t" ]; then
        cp "$FUZZ_DIR/seeds/$t"/* "$corpus"/
    fi
    work="$(mktemp -d)"
    log="$LOGS/$t.log"
    rc=0
    # -jobs=1 -workers=1: exactly one fuzzing process, whose output libFuzzer writes to
    # fuzz-0.log in the current directory (hence the cd into a scratch directory).
    (
        cd "$work"
        cargo +nightly fuzz run --fuzz-dir "$FUZZ_DIR" "$t" "$corpus" -- \
            -max_total_time="$SECS" -jobs=1 -workers=1 -print_final_stats=1 \
            >"$work/driver.log" 2>&1
    ) || rc=$?
    # In -jobs mode libFuzzer copies the job's log into its own output once the job ends; take
    # fuzz-0.log as well only if that did not happen (e.g. the driver was interrupted).
    cp "$work/driver.log" "$log"
    if ! grep -aq 'INFO: Seed' "$log"; then
        cat "$work"/fuzz-*.log >>"$log" 2>/dev/null || true
    fi
    rm -rf "$work"
    # The snapshot target keeps a per-process directory under /dev/shm: drop those of dead processes.
    for d in /dev/shm/mini-torrust-fuzz-*; do
        [ -d "$d" ] || continue
        pid="${d##*-}"
        kill -0 "$pid" 2>/dev/null || rm -rf "$d"
    done

    execs="$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)"
    rate="$(grep -ao 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)"
    status_line="$(grep -a -E '^#[0-9]+' "$log" | grep -a 'cov:' | tail -1 || true)"
    cov="$(grep -o 'cov: [0-9]*' <<<"$status_line" | grep -o '[0-9]*' || true)"
    ft="$(grep -o 'ft: [0-9]*' <<<"$status_line" | grep -o '[0-9]*' || true)"
    corp="$(find "$corpus" -type f | wc -l)"
    crash=no
    if [ "$rc" -ne 0 ] || grep -aq -E '^==[0-9]+==ERROR|^SUMMARY: |panicked at|deadly signal' "$log"; then
        crash=yes
        failed+=("$t")
    fi
    printf 'fuzz: %-14s execs=%s exec/s=%s cov=%s ft=%s corpus=%s crash=%s\n' \
        "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$corp" "$crash"
    if [ "$crash" = yes ]; then
        grep -a -E 'panicked at|^==[0-9]+==ERROR|Test unit written to' "$log" | head -5 | sed 's/^/      /'
        echo "      log: $log"
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: crashed: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: all ${#TARGETS[@]} targets ran ${SECS}s without a crash"
