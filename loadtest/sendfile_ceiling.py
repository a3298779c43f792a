#!/usr/bin/env python3
"""The single-stream ceiling for loadtest/compare.sh's bigfile row.

A deliberately minimal FTP server whose RETR is nothing but a blocking
sendfile(2) loop from the file into the data socket: no splice through a
pipe, no chunking policy, no per-chunk bookkeeping. It speaks just enough
of RFC 959 / RFC 2428 / RFC 3659 for `ringftp loadtest` to log in and
download (USER, PASS, TYPE, EPSV, PASV, SIZE, RETR, QUIT, plus harmless
replies to SYST, FEAT, OPTS, PWD, CWD, NOOP, MODE, STRU), so the same
generator reader measures it and ringftp. Read-only, anonymous, one thread
per control connection, loopback use only.

    python3 sendfile_ceiling.py --listen 127.0.0.1:2126 --root TREE \
        --pasv-ports 45000-45099
"""
import argparse
import itertools
import os
import posixpath
import signal
import socket
import sys
import threading

DATA_ACCEPT_TIMEOUT = 30.0
CHUNK = 0x7FFFF000  # the most one sendfile(2) call moves on Linux


class Ports:
    """Hands out passive ports from LO..HI round-robin (thread-safe)."""

    def __init__(self, lo, hi):
        self._it = itertools.cycle(range(lo, hi + 1))
        self._n = hi - lo + 1
        self._lock = threading.Lock()

    def listen(self, host):
        for _ in range(self._n):
            with self._lock:
                port = next(self._it)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                s.close()
                continue
            s.listen(1)
            s.settimeout(DATA_ACCEPT_TIMEOUT)
            return s
        raise OSError("no free passive port")


class Session(threading.Thread):
    def __init__(self, conn, root, ports):
        super().__init__(daemon=True)
        self.conn = conn
        self.root = root
        self.ports = ports
        self.cwd = "/"
        self.pasv = None
        self.rfile = conn.makefile("rb")

    def reply(self, line):
        self.conn.sendall(line.encode() + b"\r\n")

    def local(self, path):
        """Client path -> local path under root, or None if it escapes."""
        virt = posixpath.normpath(posixpath.join(self.cwd, path or "."))
        if not virt.startswith("/"):
            virt = "/" + virt
        full = os.path.realpath(os.path.join(self.root, virt.lstrip("/")))
        if full != self.root and not full.startswith(self.root + os.sep):
            return None, virt
        return full, virt

    def open_pasv(self):
        if self.pasv is not None:
            self.pasv.close()
        self.pasv = self.ports.listen(self.conn.getsockname()[0])
        return self.pasv.getsockname()

    def run(self):
        try:
            self.reply("220 sendfile ceiling ready")
            while True:
                raw = self.rfile.readline(4096)
                if not raw:
                    break
                line = raw.decode("latin-1").rstrip("\r\n")
                cmd, _, arg = line.partition(" ")
                cmd = cmd.upper()
                if cmd == "QUIT":
                    self.reply("221 bye")
                    break
                self.dispatch(cmd, arg)
        except OSError:
            pass
        finally:
            if self.pasv is not None:
                self.pasv.close()
            try:
                self.conn.close()
            except OSError:
                pass

    def dispatch(self, cmd, arg):
        if cmd == "USER":
            self.reply("331 any password will do")
        elif cmd == "PASS":
            self.reply("230 logged in")
        elif cmd == "SYST":
            self.reply("215 UNIX Type: L8")
        elif cmd == "FEAT":
            self.conn.sendall(b"211-Features:\r\n EPSV\r\n PASV\r\n SIZE\r\n211 End\r\n")
        elif cmd in ("TYPE", "MODE", "STRU", "OPTS", "NOOP"):
            self.reply("200 ok")
        elif cmd == "PWD":
            self.reply('257 "%s"' % self.cwd)
        elif cmd == "CWD":
            full, virt = self.local(arg)
            if full and os.path.isdir(full):
                self.cwd = virt
                self.reply("250 ok")
            else:
                self.reply("550 no such directory")
        elif cmd == "EPSV":
            _, port = self.open_pasv()
            self.reply("229 Entering Extended Passive Mode (|||%d|)" % port)
        elif cmd == "PASV":
            host, port = self.open_pasv()
            self.reply(
                "227 Entering Passive Mode (%s,%d,%d)"
                % (host.replace(".", ","), port >> 8, port & 0xFF)
            )
        elif cmd == "SIZE":
            full, _ = self.local(arg)
            if full and os.path.isfile(full):
                self.reply("213 %d" % os.path.getsize(full))
            else:
                self.reply("550 no such file")
        elif cmd == "RETR":
            self.retr(arg)
        else:
            self.reply("502 not implemented")

    def retr(self, arg):
        full, _ = self.local(arg)
        if self.pasv is None:
            self.reply("425 use PASV or EPSV first")
            return
        try:
            fd = os.open(full, os.O_RDONLY) if full else -1
        except OSError:
            fd = -1
        if fd < 0 or not os.path.isfile(full):
            if fd >= 0:
                os.close(fd)
            self.reply("550 no such file")
            return
        lsock, self.pasv = self.pasv, None
        try:
            size = os.fstat(fd).st_size
            self.reply("150 opening BINARY data connection (%d bytes)" % size)
            try:
                data, _ = lsock.accept()
            except OSError:
                self.reply("425 no data connection")
                return
            finally:
                lsock.close()
            data.settimeout(None)  # blocking sendfile
            offset = 0
            try:
                while offset < size:
                    n = os.sendfile(data.fileno(), fd, offset, min(CHUNK, size - offset))
                    if n == 0:
                        break
                    offset += n
            except OSError:
                data.close()
                self.reply("426 transfer aborted")
                return
            data.close()
            self.reply("226 transfer complete" if offset == size else "451 short read")
        finally:
            os.close(fd)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:2126", metavar="ADDR:PORT")
    p.add_argument("--root", required=True)
    p.add_argument("--pasv-ports", default="45000-45099", metavar="LO-HI")
    a = p.parse_args()
    host, port = a.listen.rsplit(":", 1)
    lo, hi = (int(x) for x in a.pasv_ports.split("-"))
    root = os.path.realpath(a.root)
    ports = Ports(lo, hi)

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen(128)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("sendfile ceiling listening on %s:%s root %s" % (host, port, root), flush=True)
    try:
        while True:
            conn, _ = srv.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            Session(conn, root, ports).start()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
