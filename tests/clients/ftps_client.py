#!/usr/bin/env python3
"""Python ftplib.FTP_TLS scenarios against a running ringftp with FTPS
(driven by tests/ftps.rs).

    python3 ftps_client.py SCENARIO HOST PORT CAFILE USER PASSWORD ROOT

ROOT is the served directory as seen by USER (its home), read directly to
know what the server should answer. Every check failure exits non-zero
with a message; success prints OK last.
"""

import ftplib
import hashlib
import os
import socket
import ssl
import sys


def check(cond, msg):
    if not cond:
        sys.exit("CHECK FAILED: " + msg)


def same(label, got, want):
    check(
        got == want,
        f"{label}: got {len(got)} bytes (sha256 {hashlib.sha256(got).hexdigest()}), "
        f"want {len(want)} bytes (sha256 {hashlib.sha256(want).hexdigest()})",
    )


class ReusingFTP_TLS(ftplib.FTP_TLS):
    """Wraps each data connection with the control connection's TLS
    session, as FileZilla, WinSCP, lftp and curl do (RFC 4217 section 10
    session reuse). `session_from` may name another connection whose
    session to offer instead (the cross-session test)."""

    session_from = None

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            source = self.session_from or self
            conn = self.context.wrap_socket(
                conn, server_hostname=self.host, session=source.sock.session
            )
        return conn, size


def connect(cls, host, port, cafile, user, password, ctx=None):
    ctx = ctx or ssl.create_default_context(cafile=cafile)
    f = cls(context=ctx, timeout=30)
    f.connect(host, int(port))
    f.auth()
    f.login(user, password)
    f.prot_p()
    return f


def retr(f, path):
    chunks = []
    f.retrbinary("RETR " + path, chunks.append)
    return b"".join(chunks)


def expect_522(f, path):
    """RETR on a data connection the server refuses: ftplib sees the TLS
    handshake fail, and the refusal arrives as a 522 reply."""
    try:
        retr(f, path)
    except ftplib.error_perm as e:
        check(str(e).startswith("522"), f"want 522, got {e}")
        return
    except (ssl.SSLError, OSError) as e:
        print("data connection failed as expected:", type(e).__name__, e)
    try:
        f.voidresp()
    except ftplib.error_perm as e:
        check(str(e).startswith("522"), f"want 522, got {e}")
        print("refused:", e)
        return
    sys.exit("CHECK FAILED: the data connection was not refused with 522")


def cut(f, conn, what):
    """Closes the data connection's TCP under its TLS (no close_notify):
    the transfer must be answered as broken (426 or 451), and the session
    must go on."""
    raw = socket.socket(fileno=conn.detach())
    raw.close()
    try:
        r = f.voidresp()
        sys.exit(f"CHECK FAILED: a cut {what} got {r}")
    except (ftplib.error_temp, ftplib.error_perm) as e:
        check(str(e)[:3] in ("426", "451"), f"cut {what}: {e}")
        print(f"cut {what} refused:", e)
    check(f.sendcmd("NOOP").startswith("200"), f"NOOP after the cut {what}")


def main():
    scenario, host, port, cafile, user, password, root = sys.argv[1:8]
    want = open(os.path.join(root, "file.bin"), "rb").read()

    if scenario == "stock_refused":
        # Stock FTP_TLS does not resume the control session: 522, and the
        # session stays usable.
        f = connect(ftplib.FTP_TLS, host, port, cafile, user, password)
        expect_522(f, "file.bin")
        check(f.sendcmd("NOOP").startswith("200"), "NOOP after the 522")
        check("TLS" in f.sendcmd("STAT"), "STAT after the 522")
        f.quit()
    elif scenario == "stock_ok":
        # With --tls-session-reuse off, stock FTP_TLS works.
        f = connect(ftplib.FTP_TLS, host, port, cafile, user, password)
        same("stock RETR", retr(f, "file.bin"), want)
        f.quit()
    elif scenario == "reuse_ok":
        f = connect(ReusingFTP_TLS, host, port, cafile, user, password)
        for i in range(3):
            same(f"RETR {i}", retr(f, "file.bin"), want)
        stat = f.sendcmd("STAT")
        check("the last one was TLSv1.3" in stat and "(in place)" in stat or "kTLS" in stat,
              f"STAT does not say how the data connection was encrypted: {stat}")
        # Upload, then read it back (the upload's close_notify commits it).
        f.storbinary("STOR up.bin", __import__("io").BytesIO(want))
        same("uploaded file", open(os.path.join(root, "up.bin"), "rb").read(), want)
        same("read back", retr(f, "up.bin"), want)
        names = f.nlst()
        check("up.bin" in names and "file.bin" in names, f"NLST {names}")
        f.quit()
    elif scenario == "cross_session_refused":
        # B's data connection resumes A's TLS session: refused, although
        # it is a perfectly good resumption of *a* session.
        # One client context for both (Python offers a session only in
        # the context that made it, as one client process would).
        ctx = ssl.create_default_context(cafile=cafile)
        a = connect(ReusingFTP_TLS, host, port, cafile, user, password, ctx)
        same("A's own RETR", retr(a, "file.bin"), want)
        b = connect(ReusingFTP_TLS, host, port, cafile, user, password, ctx)
        b.session_from = a
        expect_522(b, "file.bin")
        b.session_from = None
        same("B's own RETR", retr(b, "file.bin"), want)
        a.quit()
        b.quit()
    elif scenario == "auth_sequence":
        ctx = ssl.create_default_context(cafile=cafile)
        f = ftplib.FTP_TLS(context=ctx, timeout=30)
        f.connect(host, int(port))
        for cmd in ("PBSZ 0", "PROT P"):
            try:
                f.sendcmd(cmd)
                sys.exit(f"CHECK FAILED: {cmd} before AUTH accepted")
            except ftplib.error_perm as e:
                check(str(e).startswith("503"), f"{cmd} before AUTH: {e}")
        f.auth()
        try:
            f.sendcmd("AUTH TLS")
            sys.exit("CHECK FAILED: AUTH TLS twice accepted")
        except ftplib.error_perm as e:
            check(str(e).startswith("503"), f"AUTH twice: {e}")
        f.login(user, password)
        check(f.sendcmd("PBSZ 0").startswith("200"), "PBSZ 0")
        for level, code in (("S", "536"), ("E", "536"), ("C", "534")):
            try:
                f.sendcmd("PROT " + level)
                sys.exit(f"CHECK FAILED: PROT {level} accepted")
            except ftplib.error_perm as e:
                check(str(e).startswith(code), f"PROT {level}: {e}")
        try:
            f.sendcmd("CCC")
            sys.exit("CHECK FAILED: CCC accepted")
        except ftplib.error_perm as e:
            check(str(e).startswith("534"), f"CCC: {e}")
        # PROT C is refused, so a transfer in clear is too (521).
        try:
            f.retrbinary("RETR file.bin", lambda b: None)
            sys.exit("CHECK FAILED: a transfer without PROT P went ahead")
        except ftplib.error_perm as e:
            check(str(e).startswith("521"), f"RETR before PROT P: {e}")
        f.quit()
    elif scenario == "cut_upload":
        # An upload whose data connection ends without close_notify is a
        # cut one: the server must not keep it as complete.
        f = connect(ReusingFTP_TLS, host, port, cafile, user, password)
        conn = f.transfercmd("STOR cut.bin")
        conn.sendall(want[: len(want) // 2])
        cut(f, conn, "upload")
        f.quit()
    elif scenario == "cut_download":
        # A PROT P download the client reads only part of, then cuts (no
        # close_notify) from a small receive buffer, so the server is in
        # the middle of a send when the cut comes. Prints the plaintext
        # bytes read, for the test to find in the server's counts.
        f = connect(ReusingFTP_TLS, host, port, cafile, user, password)
        f.voidcmd("TYPE I")
        dport = int(f.sendcmd("EPSV").split("|")[3])
        raw = socket.socket(f.sock.family)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        raw.connect((f.sock.getpeername()[0], dport))
        check(f.sendcmd("RETR big.bin").startswith("150"), "RETR big.bin")
        conn = f.context.wrap_socket(raw, server_hostname=f.host, session=f.sock.session)
        got = 0
        while got < (512 + 40) * 1024:
            chunk = conn.recv(16384)
            check(chunk, f"the download ended after {got} bytes")
            got += len(chunk)
        cut(f, conn, "download")
        f.quit()
        print("read", got)
    elif scenario == "refused_uploads_leave_nothing":
        # A PROT P upload whose data connection's TLS is refused gets 522,
        # and by the time the client reads it the server has removed the
        # new file (a client listing the directory then must not find an
        # empty file that vanishes a moment later).
        f = connect(ftplib.FTP_TLS, host, port, cafile, user, password)
        for i in range(100):
            name = f"refused-{i}.bin"
            if i % 2:
                # Stock FTP_TLS: its data connection does not resume the
                # control connection's TLS session.
                try:
                    f.storbinary("STOR " + name, __import__("io").BytesIO(b"x" * 1000))
                    sys.exit(f"CHECK FAILED: STOR {name} was not refused")
                except ftplib.error_perm as e:
                    check(str(e).startswith("522"), f"STOR {name}: {e}")
                except (ssl.SSLError, OSError):
                    try:
                        f.voidresp()
                        sys.exit(f"CHECK FAILED: STOR {name} was not refused")
                    except ftplib.error_perm as e:
                        check(str(e).startswith("522"), f"STOR {name}: {e}")
            else:
                # Plain bytes where the TLS handshake should be.
                conn, _ = ftplib.FTP.ntransfercmd(f, "STOR " + name)
                conn.sendall(b"this is not TLS\r\n")
                conn.close()
                try:
                    f.voidresp()
                    sys.exit(f"CHECK FAILED: STOR {name} was not refused")
                except ftplib.error_perm as e:
                    check(str(e).startswith("522"), f"STOR {name}: {e}")
            check(
                not os.path.exists(os.path.join(root, name)),
                f"{name} still there when its 522 was read",
            )
        check(f.sendcmd("NOOP").startswith("200"), "NOOP after the refusals")
        f.quit()
    else:
        sys.exit("unknown scenario " + scenario)
    print("OK")


if __name__ == "__main__":
    main()
