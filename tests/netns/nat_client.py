#!/usr/bin/env python3
"""Python ftplib as the client of the NAT and firewall tests (tests/nat.rs),
run inside a network namespace with `ip netns exec`.

    nat_client.py get HOST PORT FILE PATH [--mode pasv|epsv|active]
                  [--trust-pasv] [--count N] [--port-address ADDR]
    nat_client.py active-then-passive HOST PORT FILE PATH --port-address ADDR

FILE is the served file on disk (compared byte for byte with what arrives),
PATH its name on the server. Prints one `data-port P` line per transfer
(the server's passive port, or the client's active one) and OK last;
any check that fails exits non-zero with a message.

`get` downloads PATH N times in one session. `--trust-pasv` makes ftplib
connect to the address the 227 reply announces (by default ftplib, like
curl and lftp, ignores it and reuses the control connection's address: a
client-side workaround for servers behind NAT that announce a private
address). `--port-address` sends that address in PORT instead of the
local one, as a NAT-aware client that knows its public address does.

`active-then-passive` is the client-behind-NAT case: an active transfer
whose PORT names the NAT router (where nothing listens) must fail with 425
within the server's --data-timeout, and the same session must then
download in passive mode.
"""

import argparse
import hashlib
import socket
import sys
import time
import ftplib


def sha(b):
    return hashlib.sha256(b).hexdigest()


class Client(ftplib.FTP):
    mode = "pasv"
    port_address = None
    last_port = None

    def makepasv(self):
        if self.mode == "epsv":
            host, port = ftplib.parse229(self.sendcmd("EPSV"), self.sock.getpeername())
        else:
            host, port = super().makepasv()
        self.last_port = port
        return host, port

    def makeport(self):
        if self.port_address is None:
            sock = super().makeport()
            self.last_port = sock.getsockname()[1]
            return sock
        # Listen locally, announce another address (the NAT router's).
        sock = socket.create_server((self.sock.getsockname()[0], 0))
        port = sock.getsockname()[1]
        self.sendport(self.port_address, port)
        if self.timeout is not ftplib._GLOBAL_DEFAULT_TIMEOUT:
            sock.settimeout(self.timeout)
        self.last_port = port
        return sock


def connect(a):
    ftp = Client(timeout=30)
    ftp.trust_server_pasv_ipv4_address = a.trust_pasv
    ftp.port_address = a.port_address
    ftp.connect(a.host, a.port)
    ftp.login()
    ftp.voidcmd("TYPE I")
    return ftp


def fetch(ftp, path):
    buf = bytearray()
    ftp.retrbinary("RETR " + path, buf.extend)
    return bytes(buf)


def set_mode(ftp, mode):
    ftp.mode = mode
    ftp.set_pasv(mode != "active")


def get(a, want):
    ftp = connect(a)
    set_mode(ftp, a.mode)
    for i in range(a.count):
        got = fetch(ftp, a.path)
        if got != want:
            sys.exit(
                f"transfer {i + 1}: got {len(got)} bytes (sha256 {sha(got)}), "
                f"want {len(want)} (sha256 {sha(want)})"
            )
        print(f"data-port {ftp.last_port}")
    ftp.quit()
    print(f"OK {a.count}")


def active_then_passive(a, want):
    ftp = connect(a)
    set_mode(ftp, "active")
    start = time.monotonic()
    try:
        fetch(ftp, a.path)
        sys.exit("the active transfer through the client's NAT succeeded; it cannot")
    except ftplib.error_temp as e:
        print(f"active-failed {time.monotonic() - start:.3f}s: {e}")
        if not str(e).startswith("425"):
            sys.exit(f"expected 425, got {e}")
    # The same session carries on in passive mode.
    ftp.voidcmd("NOOP")
    set_mode(ftp, "pasv")
    got = fetch(ftp, a.path)
    if got != want:
        sys.exit(f"passive after the failed active transfer: {len(got)} bytes, want {len(want)}")
    print(f"data-port {ftp.last_port}")
    ftp.quit()
    print("OK")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["get", "active-then-passive"])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("file")
    p.add_argument("path")
    p.add_argument("--mode", choices=["pasv", "epsv", "active"], default="pasv")
    p.add_argument("--trust-pasv", action="store_true")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--port-address")
    a = p.parse_args()
    with open(a.file, "rb") as f:
        want = f.read()
    if a.scenario == "get":
        get(a, want)
    else:
        active_then_passive(a, want)


if __name__ == "__main__":
    main()
