#!/usr/bin/env python3
"""Python ftplib upload scenarios against a running ringftp (driven by
tests/uploads.rs and tests/upload_faults.rs).

    python3 upload_client.py SCENARIO HOST PORT USER PASSWORD HOME [ARG]

HOME is the account's home directory on disk (the user's `/`): the script
reads it directly to check what the server wrote. ftplib's debug output
(*cmd*/*resp* lines) goes to stdout so the Rust side can check which
commands were used. A failed check exits non-zero with a message; success
prints OK last.
"""

import ftplib
import hashlib
import io
import os
import socket
import stat
import struct
import sys
import time


def sha(b):
    return hashlib.sha256(b).hexdigest()


def check(cond, msg):
    if not cond:
        sys.exit("CHECK FAILED: " + msg)


def same(label, got, want):
    check(
        got == want,
        f"{label}: got {len(got)} bytes (sha256 {sha(got)}), "
        f"want {len(want)} bytes (sha256 {sha(want)})",
    )


def pattern(seed, n):
    """Deterministic bytes (not the Rust pattern: only this script reads them)."""
    out = bytearray()
    block = 0
    while len(out) < n:
        out.extend(hashlib.sha256(f"{seed}:{block}".encode()).digest())
        block += 1
    return bytes(out[:n])


class RecFTP(ftplib.FTP):
    """Remembers the text of every reply sendcmd returned (ftplib keeps only
    the code), so the 150 reply of STOU can be read."""

    replies = []

    def sendcmd(self, cmd):
        resp = super().sendcmd(cmd)
        self.replies.append(resp)
        return resp


class Ctx:
    def __init__(self, host, port, user, password, home, arg):
        self.host, self.port = host, int(port)
        self.user, self.password, self.home, self.arg = user, password, home, arg

    def connect(self):
        ftp = RecFTP()
        ftp.set_debuglevel(1)
        ftp.connect(self.host, self.port, timeout=30)
        ftp.login(self.user, self.password)
        return ftp

    def disk(self, name):
        with open(os.path.join(self.home, name), "rb") as f:
            return f.read()

    def exists(self, name):
        return os.path.lexists(os.path.join(self.home, name))


def stor(ftp, name, data, rest=None, cmd="STOR"):
    ftp.storbinary(f"{cmd} {name}", io.BytesIO(data[rest or 0:]), blocksize=1 << 16, rest=rest)


def expect_error(code, fn, *args):
    try:
        resp = fn(*args)
    except ftplib.all_errors as e:
        check(str(e).startswith(str(code)), f"{fn.__name__}{args}: {e}, want {code}")
        return str(e)
    sys.exit(f"CHECK FAILED: {fn.__name__}{args} answered {resp!r}, want {code}")


def scenario_stor(c):
    """storbinary STOR in passive (PASV) and active (PORT) mode, several sizes."""
    ftp = c.connect()
    for pasv in (True, False):
        ftp.set_pasv(pasv)
        for size in (0, 1, 65535, 65536, 1 << 20, (3 << 20) + 7):
            name = f"stor-{'pasv' if pasv else 'port'}-{size}.bin"
            data = pattern(size, size)
            stor(ftp, name, data)
            same(f"STOR {name} on disk", c.disk(name), data)
            check(ftp.size(name) == size, f"SIZE {name} after STOR")
    # STOR over an existing file replaces it whole (longer, then shorter).
    for size in (2 << 20, 1000):
        data = pattern(size + 1, size)
        stor(ftp, "replaced.bin", data)
        same(f"STOR over an existing file ({size})", c.disk("replaced.bin"), data)
    ftp.quit()


def scenario_appe(c):
    """APPE appends; APPE of a new name creates it."""
    ftp = c.connect()
    a, b, d = pattern(1, 300_000), pattern(2, 1 << 20), pattern(3, 12345)
    stor(ftp, "log.bin", a)
    stor(ftp, "log.bin", b, cmd="APPE")
    same("STOR then APPE", c.disk("log.bin"), a + b)
    stor(ftp, "log.bin", d, cmd="APPE")
    same("STOR then APPE twice", c.disk("log.bin"), a + b + d)
    stor(ftp, "new-by-appe.bin", d, cmd="APPE")
    same("APPE of a new name", c.disk("new-by-appe.bin"), d)
    ftp.quit()


def stou(ftp, data, name=None):
    RecFTP.replies.clear()
    ftp.storbinary("STOU" + (f" {name}" if name else ""), io.BytesIO(data))
    opening = [r for r in RecFTP.replies if r.startswith("150")]
    check(len(opening) == 1, f"STOU: no single 150 reply in {RecFTP.replies}")
    resp = opening[0]
    check(resp.startswith("150 FILE: "), f"STOU 150 reply {resp!r} lacks 'FILE: name' (RFC 1123 4.1.2.9)")
    return resp[len("150 FILE: "):].strip()


def scenario_stou(c):
    ftp = c.connect()
    names = []
    for i, want_name in enumerate(["unique.bin", "unique.bin", "unique.bin", None]):
        data = pattern(100 + i, 50_000 + i)
        name = stou(ftp, data, want_name)
        check("/" not in name and name not in names, f"STOU named {name!r} (earlier: {names})")
        names.append(name)
        same(f"STOU file {name}", c.disk(name), data)
    check(names[0] == "unique.bin", f"STOU unique.bin on a free name should keep it: {names[0]}")
    print("STOU names:", names)
    ftp.quit()


def scenario_rest(c):
    """REST + STOR resumes: the first part is on the server, the rest follows."""
    ftp = c.connect()
    data = pattern(7, (5 << 20) + 3)
    for cut in (1, 4096, 1 << 20, len(data) - 1, len(data)):
        stor(ftp, "resumed.bin", data[:cut])
        same(f"first part ({cut})", c.disk("resumed.bin"), data[:cut])
        stor(ftp, "resumed.bin", data, rest=cut)
        same(f"REST {cut} + STOR", c.disk("resumed.bin"), data)
    # A resume point inside a longer file: what follows the new end is cut.
    stor(ftp, "resumed.bin", data)
    short = data[: 2 << 20]
    stor(ftp, "resumed.bin", short, rest=1 << 20)
    same("REST inside a longer file", c.disk("resumed.bin"), short)
    # REST past the end of the file is refused, the file untouched.
    expect_error(554, stor, ftp, "resumed.bin", data + b"x" * 10, len(data) + 5)
    same("after a refused REST", c.disk("resumed.bin"), short)
    ftp.quit()


def scenario_ascii(c):
    """TYPE A upload: CRLF on the wire becomes LF on disk."""
    ftp = c.connect()
    lines = [f"line {i}: the quick brown fox \u00e9\u65e5" for i in range(20_000)]
    want = ("\n".join(lines) + "\n").encode()
    ftp.storlines("STOR text.txt", io.BytesIO(want))  # ftplib sends CRLF
    same("storlines STOR text.txt", c.disk("text.txt"), want)
    # Raw CRLF bytes in odd-sized writes, so a CR lands at a chunk end.
    wire = want.replace(b"\n", b"\r\n")
    ftp.voidcmd("TYPE A")
    conn = ftp.transfercmd("STOR wire.txt")
    pos, step = 0, 1
    while pos < len(wire):
        n = 1 + (step * 7919) % 65521
        conn.sendall(wire[pos:pos + n])
        pos += n
        step += 1
    conn.close()
    ftp.voidresp()
    same("TYPE A STOR of CRLF bytes", c.disk("wire.txt"), want)
    # Binary again afterwards: CRLF stays CRLF.
    ftp.voidcmd("TYPE I")
    stor(ftp, "binary.txt", wire)
    same("TYPE I STOR", c.disk("binary.txt"), wire)
    ftp.quit()


def scenario_manage(c):
    """File management through ftplib's own calls."""
    ftp = c.connect()
    resp = ftp.sendcmd("MKD made")
    check(resp == '257 "/made" created', f"MKD made: {resp!r}")
    check(os.path.isdir(os.path.join(c.home, "made")), "MKD made: no directory on disk")
    check(ftp.mkd("made/sub dir") == "/made/sub dir", "ftplib mkd should parse the 257 path")
    stor(ftp, "made/f.bin", b"x" * 1000)
    ftp.rename("made/f.bin", "made/sub dir/g.bin")
    check(not c.exists("made/f.bin") and c.disk("made/sub dir/g.bin") == b"x" * 1000, "rename")
    ftp.delete("made/sub dir/g.bin")
    check(not c.exists("made/sub dir/g.bin"), "DELE: file still on disk")
    expect_error(550, ftp.rmd, "made")  # not empty
    ftp.rmd("made/sub dir")
    ftp.rmd("made")
    check(not c.exists("made"), "RMD: directory still on disk")
    stor(ftp, "t.bin", b"t")
    resp = ftp.sendcmd("MFMT 20200229123456 t.bin")
    check(resp.startswith("213 ") and "20200229123456" in resp, f"MFMT: {resp!r}")
    check(ftp.sendcmd("MDTM t.bin") == "213 20200229123456", "MDTM after MFMT")
    check(int(os.stat(os.path.join(c.home, "t.bin")).st_mtime) == 1582979696, "MFMT: mtime on disk")
    resp = ftp.sendcmd("SITE CHMOD 600 t.bin")
    check(resp.startswith("200"), f"SITE CHMOD: {resp!r}")
    check(stat.S_IMODE(os.stat(os.path.join(c.home, "t.bin")).st_mode) == 0o600, "SITE CHMOD: mode on disk")
    ftp.quit()


def send_then(c, ftp, name, data, upto):
    """STOR `name`, send the first `upto` bytes of data and wait until most
    of them are in the file; returns the open data socket."""
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd(f"STOR {name}")
    conn.sendall(data[:upto])
    # Let the server take the bytes in (splice) before the fault.
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            if os.path.getsize(os.path.join(c.home, name)) >= upto - (1 << 20):
                break
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    return conn


def rst(conn):
    """Close with RST (SO_LINGER 0): a broken connection, not an end of file."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def resume_check(c, ftp, name, data, keep):
    if keep:
        check(c.exists(name), f"--keep-partial: {name} should stay")
        part = c.disk(name)
        check(0 < len(part) < len(data), f"partial {name}: {len(part)} bytes of {len(data)}")
        same(f"partial {name} is a prefix", part, data[: len(part)])
        stor(ftp, name, data, rest=len(part))
        same(f"{name} resumed with REST {len(part)} + STOR", c.disk(name), data)
        print(f"resumed {name} at {len(part)}")
    else:
        check(not c.exists(name), f"{name}: the partial file should be deleted")
    hidden = [n for n in os.listdir(c.home) if n.startswith(".ringftp")]
    check(not hidden, f"temporary files left behind: {hidden}")


def scenario_abort(c):
    """ABOR mid-upload: 426 then 226; the partial is deleted (or kept)."""
    keep = c.arg == "keep"
    ftp = c.connect()
    data = pattern(9, 16 << 20)
    conn = send_then(c, ftp, "aborted.bin", data, 4 << 20)
    resp = ftp.abort()
    check(resp.startswith("426"), f"ABOR during STOR: first reply {resp!r}, want 426")
    resp = ftp.getresp()
    check(resp.startswith("226"), f"ABOR during STOR: second reply {resp!r}, want 226")
    conn.close()
    ftp.voidcmd("NOOP")
    resume_check(c, ftp, "aborted.bin", data, keep)
    ftp.quit()


def scenario_broken(c):
    """The data connection breaks (RST) mid-upload: 426; partial deleted (or kept)."""
    keep = c.arg == "keep"
    ftp = c.connect()
    data = pattern(10, 16 << 20)
    conn = send_then(c, ftp, "broken.bin", data, 4 << 20)
    rst(conn)
    try:
        resp = ftp.voidresp()
        sys.exit(f"CHECK FAILED: broken upload answered {resp!r}")
    except ftplib.all_errors as e:
        check(str(e)[:3] in ("426", "451"), f"broken upload: {e}, want 426")
    ftp.voidcmd("NOOP")
    resume_check(c, ftp, "broken.bin", data, keep)
    ftp.quit()


def main():
    scenario, host, port, user, password, home = sys.argv[1:7]
    arg = sys.argv[7] if len(sys.argv) > 7 else None
    c = Ctx(host, port, user, password, home, arg)
    globals()["scenario_" + scenario](c)
    print("OK")


if __name__ == "__main__":
    main()
