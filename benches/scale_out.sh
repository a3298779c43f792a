#!/usr/bin/env bash
# The scale-out measurement of docs/scale-out.md: the mirror scenario of
# `ringftp loadtest` through HAProxy's VIP (PROXY protocol v2) to two
# nodes, and to one (the other disabled on HAProxy's admin socket),
# against one node reached directly (routed through the balancer's
# namespace, not through HAProxy), in the same run, interleaved, on the
# network of tests/netns/balancer.sh. Needs root, iproute2 and haproxy.
#
#   sudo bash benches/scale_out.sh [ROUNDS] [SECONDS] [CLIENTS]
#
# Defaults: 3 rounds of 10 s per target (three targets), 4 clients. Every run is bounded
# in time (--duration) and the whole script in count (ROUNDS x 2 runs).
# Prints one line per run and the medians; the JSON reports stay in
# $OUT (default: a temporary directory, printed).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
secs=${2:-10}
clients=${3:-4}
bin=$PWD/target/release/ringftp
[ -x "$bin" ] || cargo build --release
command -v haproxy >/dev/null || { echo "scale_out.sh: haproxy is not installed" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "scale_out.sh: needs root (network namespaces)" >&2; exit 2; }

prefix=rsbench-$$
out=${OUT:-$(mktemp -d /tmp/ringftp-scale-out.XXXXXX)}
chmod 755 "$out"
root=$out/root
cleanup() {
    bash tests/netns/balancer.sh down "$prefix" >/dev/null 2>&1 || true
}
trap cleanup EXIT
bash tests/netns/balancer.sh up "$prefix" >/dev/null

# A small mirror tree (the same for every run; --verify checks it).
"$bin" loadtest prepare --dir "$root" --files 400 --max-size 1MiB --bigfile 0 --listing 0 >/dev/null
chmod -R a+rX "$root"

node() { # NS LISTEN PASV LOG [extra flags]
    local ns=$1 listen=$2 pasv=$3 log=$4
    shift 4
    ip netns exec "$prefix-$ns" "$bin" serve --root "$root" --listen "$listen" --cores 1 \
        --pasv-ports "$pasv" --log-level warn "$@" >/dev/null 2>"$log" &
    disown
}
node node1 0.0.0.0:21 50000-50049 "$out/node1.log" --pasv-address 203.0.113.10 \
    --proxy-protocol --proxy-from 192.0.2.1
node node2 0.0.0.0:21 50050-50099 "$out/node2.log" --pasv-address 203.0.113.10 \
    --proxy-protocol --proxy-from 192.0.2.1
# The same node, reached directly: no balancer, no PROXY header.
node node1 0.0.0.0:2121 50100-50149 "$out/direct.log"

cat >"$out/haproxy.cfg" <<EOF
global
    stats socket $out/admin.sock mode 600 level admin
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend ftp
    bind 203.0.113.10:21
    default_backend nodes
backend nodes
    balance leastconn
    option tcp-check
    tcp-check expect string 220
    default-server send-proxy-v2 check inter 2s fall 2 rise 1
    server node1 192.0.2.11:21
    server node2 192.0.2.12:21
frontend pasv_node1
    bind 203.0.113.10:50000-50049
    default_backend pasv_node1
backend pasv_node1
    server node1 192.0.2.11 send-proxy-v2
frontend pasv_node2
    bind 203.0.113.10:50050-50099
    default_backend pasv_node2
backend pasv_node2
    server node2 192.0.2.12 send-proxy-v2
EOF
ip netns exec "$prefix-lb" haproxy -db -f "$out/haproxy.cfg" >"$out/haproxy.log" 2>&1 &
disown
admin() { # COMMAND: HAProxy's admin socket
    python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode() + b"\n")
d = b""
while (x := s.recv(65536)): d += x
print(d.decode())
' "$out/admin.sock" "$1"
}

# Both nodes up (HAProxy's view), the direct one answering.
for _ in $(seq 100); do
    up=$(admin "show stat" 2>/dev/null | grep -c '^nodes,node[12],.*,UP,' || true)
    [ "$up" = 2 ] && break
    sleep 0.2
done
[ "$up" = 2 ] || { echo "scale_out.sh: HAProxy never saw both nodes up" >&2; exit 1; }

run() { # NAME TARGET ROUND
    local json=$out/$1-$3.json
    ip netns exec "$prefix-client" "$bin" loadtest --target "$2" --scenario mirror --files /pub \
        --mode epsv --clients "$clients" --duration "${secs}s" --cores 1 --verify \
        --timeout 10s --json "$json" >/dev/null
    python3 - "$json" "$1" "$3" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t, q = r["totals"], r["phases"]["request"]
print(f"{sys.argv[2]:>6} round {sys.argv[3]}: {t['requests_per_s']:8.1f} files/s  "
      f"{t['mib_per_s']:7.1f} MiB/s  request p50 {q['p50_ms']:6.2f} ms  p99 {q['p99_ms']:7.2f} ms  "
      f"ok {t['ok']} errors {t['errors']}")
PY
}

echo "mirror scenario, $clients clients, ${secs}s per run, $rounds rounds, interleaved (JSON in $out)"
echo "  vip2: through HAProxy, both nodes; vip1: through HAProxy, node2 disabled; direct: node1 alone, no balancer"
for r in $(seq "$rounds"); do
    run vip2 203.0.113.10:21 "$r"
    admin "disable server nodes/node2" >/dev/null
    run vip1 203.0.113.10:21 "$r"
    admin "enable server nodes/node2" >/dev/null
    run direct 192.0.2.11:2121 "$r"
done
python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
for name in ("vip2", "vip1", "direct"):
    rs = [json.load(open(f"{out}/{name}-{i}.json")) for i in range(1, rounds + 1)]
    fps = statistics.median(r["totals"]["requests_per_s"] for r in rs)
    p50 = statistics.median(r["phases"]["request"]["p50_ms"] for r in rs)
    p99 = statistics.median(r["phases"]["request"]["p99_ms"] for r in rs)
    print(f"median {name:>6}: {fps:8.1f} files/s  request p50 {p50:6.2f} ms  p99 {p99:7.2f} ms")
PY
