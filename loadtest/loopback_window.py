#!/usr/bin/env python3
"""Whether a slow reader's TCP receive window grows against a zero-copy sender.

No FTP server involved: one file goes over one TCP connection on loopback,
sent either with sendfile(2) (zero-copy, as ringftp sends) or with send(2)
from a buffer (a copy, as most FTP servers send), to a client that reads
1 MiB at a time and sleeps between reads, as a load generator sharing the
CPUs with the server does. Prints, for each way of sending, the time the
whole file took and the receive buffer (SO_RCVBUF) the client's kernel
grew to; rounds alternate the ways (`--methods`).

On Linux 6.18's loopback (MTU 64 KiB) the client's buffer often stays at
its initial size against sendfile, and the file takes several times as
long as against send; at an Ethernet MTU both grow. To see both:

    python3 loadtest/loopback_window.py
    unshare --net sh -c 'ip link set lo mtu 1500 up && python3 loadtest/loopback_window.py'

(root for unshare). docs/benchmarks.md, "Fifth pass", has a run.

`--methods sendfile,send,copyfirst256` adds a third way: the first 256
KiB by send(2), the rest by sendfile(2), as ringftp sends a download over
512 KiB on such a path; it does not stall ("Seventeenth pass").

Two more ways tell what stalls ("Eighteenth pass"): `sendmore64` copies
in sendfile's pattern (64 KiB send(2) calls with MSG_MORE); `vmsplice`
sends anonymous memory by reference (vmsplice(2) into a pipe, splice(2)
to the socket: 4 KiB page fragments, no page cache). Every way reads the
file before it accepts the connection, so all start alike (until the
eighteenth pass `send` read it after, starting later).
"""

import argparse
import os
import signal
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
    # Every way reads what it sends before it accepts, so all start alike:
    # a sender that read 16 MiB after the accept would find the reader
    # already waiting, which decides much of the outcome by itself.
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        data = f.read()
        pinned = Pinned(data) if method == "vmsplice" else None
        conn, _ = listener.accept()
        with conn:
            if method == "sendfile" or method.startswith("copyfirst"):
                # copyfirstN: the first N KiB by send(2) from a buffer, the
                # rest by sendfile(2), as ringftp sends a long download on
                # a path of large segments.
                off = 0
                if method != "sendfile":
                    off = min(int(method[len("copyfirst"):]) << 10, size)
                    conn.sendall(data[:off])
                while off < size:
                    off += os.sendfile(conn.fileno(), f.fileno(), off, size - off)
            elif method == "sendmore64":
                # A copy in sendfile's pattern: 64 KiB calls, MSG_MORE
                # but for the last.
                for off in range(0, size, 1 << 16):
                    end = min(off + (1 << 16), size)
                    conn.sendall(data[off:end], socket.MSG_MORE if end < size else 0)
            elif method == "vmsplice":
                pinned.send(conn)
            else:
                conn.sendall(data)


class Pinned:
    """`data` in anonymous memory, sent by reference: vmsplice(2) into a
    pipe and splice(2) to the socket, 64 KiB at a time, so the segments
    hold 4 KiB page fragments as sendfile's do, without the page cache."""

    def __init__(self, data):
        import ctypes
        import mmap

        class Iovec(ctypes.Structure):
            _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

        self.ctypes, self.iovec = ctypes, Iovec
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.size = len(data)
        self.mem = mmap.mmap(-1, self.size)
        self.mem[:] = data
        self.base = ctypes.addressof((ctypes.c_char * self.size).from_buffer(self.mem))

    def send(self, conn):
        r, w = os.pipe()
        try:
            off = 0
            while off < self.size:
                iov = self.iovec(self.base + off, min(1 << 16, self.size - off))
                n = self.libc.vmsplice(w, self.ctypes.byref(iov), 1, 0)
                if n < 0:
                    raise OSError(self.ctypes.get_errno(), "vmsplice")
                moved = 0
                while moved < n:
                    moved += os.splice(r, conn.fileno(), n - moved)
                off += n
        finally:
            os.close(r)
            os.close(w)


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
                         "copyfirstN (the first N KiB by send, then sendfile), "
                         "sendmore64, vmsplice (see above); "
                         "default sendfile,send")
    a = ap.parse_args()
    # SIGTERM (kill, timeout) unwinds like Ctrl-C, so the temporary file goes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if a.rounds < 1 or a.size_mib < 1 or a.delay_ms < 0:
        ap.error("--rounds and --size-mib must be at least 1, --delay-ms at least 0")
    methods = a.methods.split(",")
    for m in methods:
        if m not in ("sendfile", "send", "sendmore64", "vmsplice") and not (
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
