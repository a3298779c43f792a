#!/usr/bin/env python3
"""Whether a slow reader's TCP receive window grows against a zero-copy sender.

No FTP server involved: one file goes over one TCP connection on loopback,
sent either with sendfile(2) (zero-copy, as ringftp sends) or with send(2)
from a buffer (a copy, as most FTP servers send), to a client that reads
1 MiB at a time and sleeps between reads, as a load generator sharing the
CPUs with the server does. Prints, for each way of sending, the time the
whole file took and the receive buffer (SO_RCVBUF) the client's kernel
grew to; rounds alternate the two ways.

On Linux 6.18's loopback (MTU 64 KiB) the client's buffer often stays at
its initial size against sendfile, and the file takes several times as
long as against send; at an Ethernet MTU both grow. To see both:

    python3 loadtest/loopback_window.py
    unshare --net sh -c 'ip link set lo mtu 1500 up && python3 loadtest/loopback_window.py'

(root for unshare). docs/benchmarks.md, "Fifth pass", has a run.

`--methods sendfile,send,copyfirst256` adds a third way: the first 256
KiB by send(2), the rest by sendfile(2), as ringftp sends a download over
512 KiB on such a path; it does not stall ("Seventeenth pass").
"""

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time


def loopback_mtu():
    """The MTU of this network namespace's loopback (SIOCGIFMTU; sysfs
    may show another namespace's)."""
    import fcntl
    import struct

    with socket.socket() as s:
        ifreq = struct.pack("16si12x", b"lo", 0)
        return struct.unpack_from("i", fcntl.ioctl(s, 0x8921, ifreq), 16)[0]


def serve_once(listener, path, method):
    conn, _ = listener.accept()
    with conn, open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if method == "sendfile" or method.startswith("copyfirst"):
            # copyfirstN: the first N KiB by send(2) from a buffer, the
            # rest by sendfile(2), as ringftp sends a long download on a
            # path of large segments.
            off = 0
            if method != "sendfile":
                first = os.pread(f.fileno(), int(method[len("copyfirst"):]) << 10, 0)
                conn.sendall(first)
                off = len(first)
            while off < size:
                off += os.sendfile(conn.fileno(), f.fileno(), off, size - off)
        else:
            data = f.read()
            conn.sendall(data)


def one_transfer(path, method, delay):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    # The sender in a process of its own, as a server is.
    pid = os.fork()
    if pid == 0:
        try:
            serve_once(listener, path, method)
        finally:
            os._exit(0)
    c = socket.create_connection(("127.0.0.1", port))
    got = 0
    start = time.monotonic()
    while True:
        d = c.recv(1 << 20)
        if not d:
            break
        got += len(d)
        time.sleep(delay)
    took = time.monotonic() - start
    rcvbuf = c.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    c.close()
    os.waitpid(pid, 0)
    listener.close()
    return took, rcvbuf, got


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=16, help="file size (default 16)")
    ap.add_argument("--delay-ms", type=float, default=2.0,
                    help="the reader's sleep between reads (default 2)")
    ap.add_argument("--rounds", type=int, default=6, help="rounds (default 6)")
    ap.add_argument("--methods", default="sendfile,send",
                    help="ways of sending, alternated each round: sendfile, send, "
                         "copyfirstN (the first N KiB by send, then sendfile); "
                         "default sendfile,send")
    a = ap.parse_args()
    if a.rounds < 1 or a.size_mib < 1 or a.delay_ms < 0:
        ap.error("--rounds and --size-mib must be at least 1, --delay-ms at least 0")
    methods = a.methods.split(",")
    for m in methods:
        if m not in ("sendfile", "send") and not (
            m.startswith("copyfirst") and m[len("copyfirst"):].isdigit()
        ):
            ap.error(f"unknown method {m!r}")
    mtu = loopback_mtu()
    with tempfile.NamedTemporaryFile(dir="/var/tmp", prefix="loopback-window.") as tmp:
        tmp.write(os.urandom(1 << 20) * a.size_mib)
        tmp.flush()
        results = {m: [] for m in methods}
        for _ in range(a.rounds):
            for method in results:
                took, rcvbuf, got = one_transfer(tmp.name, method, a.delay_ms / 1000)
                if got != a.size_mib << 20:
                    sys.exit(f"{method}: received {got} bytes, not {a.size_mib << 20}")
                results[method].append((took, rcvbuf))
    print(f"loopback MTU {mtu}, {a.size_mib} MiB, reader sleeps {a.delay_ms} ms between 1 MiB reads")
    for method, runs in results.items():
        times = " ".join(f"{t * 1000:.0f}" for t, _ in runs)
        bufs = " ".join(f"{b >> 10}" for _, b in runs)
        med = statistics.median(t for t, _ in runs) * 1000
        print(f"{method:13} median {med:6.0f} ms   by round: {times} ms   client SO_RCVBUF KiB: {bufs}")


if __name__ == "__main__":
    main()
