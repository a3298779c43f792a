#!/usr/bin/env bash
# loadtest/ab.sh: two ringftp builds (before/after a change) under the same
# mirror load, interleaved round by round, with the same generator; prints
# the median of each figure and the after/before ratio.
#
#   bash loadtest/ab.sh BEFORE_BIN AFTER_BIN [--clients N] [--duration D]
#                       [--rate R] [--rounds N] [--files N]
#
# Both servers serve one prepared tree (under $TMPDIR) on 127.0.0.1, with
# their whole process tree's CPU counted by the generator (--server-pid).
# Bounded: rounds x 2 runs of --duration each, every run under `timeout`.
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,11p "$0"; exit 2; }
BEFORE=$(realpath "$1"); AFTER=$(realpath "$2"); shift 2
CLIENTS=50 DURATION=6s RATE= ROUNDS=3 FILES=2000
while [ $# -gt 0 ]; do
    case $1 in
        --clients) CLIENTS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --rate) RATE=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --files) FILES=$2; shift ;;
        *) echo "ab.sh: unknown flag $1" >&2; exit 2 ;;
    esac
    shift
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ringftp-ab.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT INT TERM
"$AFTER" loadtest prepare --dir "$WORK/tree" --files "$FILES" --bigfile 0 --listing 0 >/dev/null
chmod -R a+rX "$WORK"   # readable by the account a root-started server drops to
start() { # BIN PORT PASV -> pid
    "$1" serve --listen "127.0.0.1:$2" --root "$WORK/tree" --pasv-ports "$3" >"$WORK/$2.log" 2>&1 &
    echo $!
}
B=$(start "$BEFORE" 3121 40000-40999); PIDS+=("$B")
A=$(start "$AFTER" 3122 41000-41999); PIDS+=("$A")
for port in 3121 3122; do
    for _ in $(seq 50); do grep -q "listening on" "$WORK/$port.log" && break; sleep 0.1; done
done
for r in $(seq "$ROUNDS"); do
    for side in before after; do
        if [ $side = before ]; then port=3121 pid=$B; else port=3122 pid=$A; fi
        timeout 120 "$AFTER" loadtest --target "127.0.0.1:$port" --scenario mirror \
            --clients "$CLIENTS" --duration "$DURATION" ${RATE:+--rate "$RATE"} \
            --server-pid "$pid" --json "$WORK/$side-$r.json" >/dev/null
    done
done
python3 - "$WORK" "$CLIENTS" "$DURATION" "${RATE:-closed loop}" "$ROUNDS" <<'PY'
import glob, json, statistics, sys
work, clients, duration, rate, rounds = sys.argv[1:]
def runs(side):
    return [json.load(open(f)) for f in sorted(glob.glob(f"{work}/{side}-*.json"))]
rows = [
    ("files/s", lambda d: d["totals"]["requests_per_s"]),
    ("request p99 (ms)", lambda d: d["phases"]["request"]["p99_ms"]),
    ("time to first byte p99.9 (ms)", lambda d: d["phases"]["first_byte"]["p99_9_ms"]),
    ("server CPU per file (ms)", lambda d: d["server"]["cpu_ms_per_request"]),
    ("errors", lambda d: d["totals"]["errors"]),
]
print(f"mirror, {clients} clients, {rate}, {rounds} interleaved rounds of {duration}; medians")
print("| | before | after | after/before |\n|---|---|---|---|")
b, a = runs("before"), runs("after")
for name, get in rows:
    mb, ma = statistics.median(map(get, b)), statistics.median(map(get, a))
    ratio = f"{ma / mb:.2f}" if mb else "-"
    print(f"| {name} | {mb:.3f} | {ma:.3f} | {ratio} |")
PY
