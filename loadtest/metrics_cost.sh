#!/usr/bin/env bash
# What --metrics-listen costs, and how much the log says at INFO, on the
# mirror scenario (issue 13).
#
#   bash loadtest/metrics_cost.sh target/release/ringftp [ROUNDS] [BASE_BIN]
#
# Each round runs the mirror scenario three ways, in a rotating order so
# that drift on a shared machine spreads evenly: ringftp as is ("plain"),
# ringftp with --metrics-listen scraped every second (/metrics and
# /sessions, by curl; "metrics"), and, with BASE_BIN, another build
# ("base", e.g. the commit before) at --log-level warn, so that logging
# does not count in its CPU. Every server runs with --cores 1 and
# --log-level info (base: warn), the load is open-loop at a fixed rate
# (RATE, default 3000 requests/s) so every run does the same work, and the
# server's CPU per request comes from `ringftp loadtest --server-pid`. A
# last run of BASE_BIN at INFO gives the log volume before.
#
# Prints one line per run, then the medians. Loopback only; each run is
# bounded by DURATION (default 8s) and a 60 s timeout.
set -u
BIN=$(readlink -f "${1:?usage: $0 RINGFTP_BIN [ROUNDS] [BASE_BIN]}")
ROUNDS=${2:-6}
BASE=${3:+$(readlink -f "$3")}
RATE=${RATE:-3000}
CLIENTS=${CLIENTS:-20}
DURATION=${DURATION:-8s}
PASV=${PASV:-47000-47999}
OUT=$(mktemp -d /tmp/ringftp-metrics-cost.XXXXXX)
# Started as root, the server drops to an unprivileged user: the tree must
# stay reachable for it.
chmod 755 "$OUT"
TREE=${TREE:-$OUT/tree}
trap 'kill $(jobs -p) 2>/dev/null' EXIT

if [[ ! -f $TREE/index.txt ]]; then
    "$BIN" loadtest prepare --dir "$TREE" --files 1000 --bigfile 0 --listing 0 >/dev/null
fi

# run VARIANT BIN ROUND: one server, one load run; prints the run's line.
run() {
    local v=$1 bin=$2 r=$3 level=info extra=()
    [[ $v == metrics ]] && extra=(--metrics-listen 127.0.0.1:0)
    [[ $v == base ]] && level=warn
    "$bin" serve --listen 127.0.0.1:0 --root "$TREE" --cores 1 --pasv-ports "$PASV" \
        --idle-timeout 3600 --log-level "$level" "${extra[@]}" \
        >"$OUT/$v-$r.out" 2>"$OUT/$v-$r.err" &
    local srv=$! port="" scraper=""
    for _ in $(seq 100); do
        port=$(grep -m1 -o '[0-9]*$' "$OUT/$v-$r.out" 2>/dev/null) && [[ -n $port ]] && break
        sleep 0.1
    done
    if [[ $v == metrics ]]; then
        local m=""
        for _ in $(seq 100); do
            m=$(awk '/^metrics on/{print $3}' "$OUT/$v-$r.out") && [[ -n $m ]] && break
            sleep 0.1
        done
        (for _ in $(seq 60); do
            curl -s -m 2 "http://$m/metrics" >/dev/null
            curl -s -m 2 "http://$m/sessions" >/dev/null
            sleep 1
        done) &
        scraper=$!
    fi
    timeout 60 "$BIN" loadtest --target "127.0.0.1:$port" --scenario mirror \
        --clients "$CLIENTS" --duration "$DURATION" --rate "$RATE" \
        --files "$TREE/index.txt" --server-pid "$srv" --json "$OUT/$v-$r.json" \
        >"$OUT/$v-$r.log" 2>&1
    [[ -n $scraper ]] && kill "$scraper" 2>/dev/null
    kill -TERM "$srv"
    wait "$srv" 2>/dev/null
    python3 - "$OUT/$v-$r.json" "$OUT/$v-$r.err" "$v" "$r" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
t, s = j["totals"], j["server"]
lines = sum(1 for _ in open(sys.argv[2], errors="replace"))
print(f'{sys.argv[3]:10} round {sys.argv[4]}: ok={t["ok"]} req/s={t["requests_per_s"]:.0f} '
      f'server_cpu_s={s["cpu_s"]:.2f} cpu_ms/req={s["cpu_ms_per_request"]:.4f} '
      f'log_lines={lines} per_1000_req={1000 * lines / max(t["ok"], 1):.1f}')
PY
}

variants=(plain metrics)
[[ -n $BASE ]] && variants+=(base)
n=${#variants[@]}
for r in $(seq "$ROUNDS"); do
    for i in $(seq 0 $((n - 1))); do
        v=${variants[$(((i + r) % n))]}
        if [[ $v == base ]]; then run base "$BASE" "$r"; else run "$v" "$BIN" "$r"; fi
    done
done | tee "$OUT/runs.txt"
if [[ -n $BASE ]]; then
    # The log volume before: the other build at INFO.
    run base-info "$BASE" 1 | tee -a "$OUT/runs.txt"
fi
python3 - "$OUT/runs.txt" <<'PY'
import re, statistics, sys
by = {}
for line in open(sys.argv[1]):
    m = re.match(r'(\S+)\s+round \d+: .* cpu_ms/req=([\d.]+) .* per_1000_req=([\d.]+)', line)
    if m:
        by.setdefault(m.group(1), []).append((float(m.group(2)), float(m.group(3))))
med = {v: statistics.median(c for c, _ in runs) for v, runs in by.items()}
for v, runs in by.items():
    print(f'{v:10} median cpu_ms/req={med[v]:.4f} over {len(runs)} runs; '
          f'log lines per 1000 requests: median {statistics.median(l for _, l in runs):.1f}')
if "plain" in med and "metrics" in med:
    print(f'metrics/plain CPU per request: {med["metrics"] / med["plain"]:.3f}')
if "plain" in med and "base" in med:
    print(f'plain/base CPU per request: {med["plain"] / med["base"]:.3f}')
PY
echo "runs and logs in $OUT"
