#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and prints one summary line per
# target (the figures in docs/reliability.md come from here).
#
#   bash fuzz/run-all.sh [SECONDS_PER_TARGET]   (default 300)
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# New corpus entries go to a scratch directory, not to the small seed
# corpus kept in the repository; a crash stops that target and leaves its
# input under fuzz/artifacts/TARGET/.
set -uo pipefail
cd "$(dirname "$0")"
secs="${1:-300}"
scratch="${FUZZ_SCRATCH:-$(mktemp -d /tmp/ringftp-fuzz.XXXXXX)}"
targets=(command line_reader addr path resolve session)
cargo +nightly fuzz build >/dev/null 2>&1 || { echo "cargo +nightly fuzz build failed" >&2; exit 1; }
echo "target seconds executions exec/s corpus_units result"
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    log="$scratch/$t.log"
    cargo +nightly fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    units=$(find "$scratch/$t" -type f | wc -l)
    result=ok
    [ "$rc" -ne 0 ] && result="FAILED (rc $rc, see $log)"
    echo "$t $secs ${execs:-?} ${rate:-?} $units $result"
done
echo "logs and grown corpora: $scratch"
