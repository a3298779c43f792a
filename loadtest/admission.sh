#!/usr/bin/env bash
# Benchmark (not a test): what 1,000 --allow/--deny entries cost.
#  1. start-up: from exec to the first 220 greeting, 7 starts each, median;
#  2. connect-to-220 latency: `ringftp loadtest --scenario login-storm`
#     (connect, greeting, anonymous login, QUIT), its `greeting` phase.
# Both with no list and with 1,000 entries (999 --deny /24s and /32s plus
# an --allow for loopback, so every client is checked against both kinds).
# Usage: bash loadtest/admission.sh [target/release/ringftp] [requests]
set -euo pipefail
B=$(readlink -f "${1:-target/release/ringftp}")
N=${2:-20000}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
chmod 755 "$T"; mkdir "$T/root"; echo hi > "$T/root/f"
python3 - "$T/lists.toml" <<'PY'
import sys
deny = [f'"198.{18 + i // 256}.{i % 256}.0/24"' for i in range(900)]
deny += [f'"203.0.113.{i}"' for i in range(99)]
open(sys.argv[1], "w").write(f'allow = ["127.0.0.0/8"]\ndeny = [{", ".join(deny)}]\n')
PY
: > "$T/none.toml"
for list in none lists; do
    python3 - "$B" "$T" "$list" <<'PY'
import socket, statistics, subprocess, sys, time
b, t, name = sys.argv[1:4]
args = [b, "serve", "--listen", "127.0.0.1:0", "--root", f"{t}/root", "--cores", "2",
        "--pasv-ports", "53200-53299", "--config", f"{t}/{name}.toml", "--log-level", "warn"]
times = []
for _ in range(7):
    t0 = time.perf_counter()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(p.stdout.readline().rsplit(":", 1)[1])
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port))
            ok = s.recv(64).startswith(b"220")
            s.close()
            if ok:
                break
        except OSError:
            pass
    times.append(time.perf_counter() - t0)
    p.terminate(); p.wait()
print(f"{name}: start-up to first 220: median {statistics.median(times)*1000:.1f} ms "
      f"(min {min(times)*1000:.1f}, max {max(times)*1000:.1f}, 7 starts)")
PY
    "$B" serve --listen 127.0.0.1:0 --root "$T/root" --cores 1 --pasv-ports 53300-53399 \
        --config "$T/$list.toml" --log-level warn >"$T/srv.out" 2>/dev/null &
    S=$!
    for _ in $(seq 100); do grep -q listening "$T/srv.out" && break; sleep 0.05; done
    P=$(grep -o '[0-9]*$' "$T/srv.out" | head -1)
    "$B" loadtest --target 127.0.0.1:$P --scenario login-storm --requests "$N" --clients 8 --cores 1 \
        2>/dev/null | grep -E '^(requests|greeting)' | sed "s/^/$list: /"
    kill $S; wait $S 2>/dev/null || true
done
