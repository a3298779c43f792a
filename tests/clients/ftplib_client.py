#!/usr/bin/env python3
"""Python ftplib scenarios against a running ringftp (driven by tests/ftplib.rs).

    python3 ftplib_client.py SCENARIO HOST PORT ROOT OUTDIR

ROOT is the served directory (read directly to know what the server should
answer); downloads are also written to OUTDIR so the Rust side compares
them with the source a second time. ftplib's debug output (*cmd*/*resp*
lines) goes to stdout so the Rust side can check which commands were used.
Every check failure exits non-zero with a message; success prints OK last.
"""

import ftplib
import hashlib
import os
import socket
import stat
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


class EpsvFTP(ftplib.FTP):
    """ftplib uses EPSV by itself only on IPv6; this makes passive mode use
    EPSV on IPv4 too (RFC 2428 allows EPSV for any protocol)."""

    def makepasv(self):
        return ftplib.parse229(self.sendcmd("EPSV"), self.sock.getpeername())


class Ctx:
    def __init__(self, host, port, root, out):
        self.host, self.port, self.root, self.out = host, int(port), root, out

    def connect(self, cls=ftplib.FTP):
        ftp = cls()
        ftp.set_debuglevel(1)
        ftp.connect(self.host, self.port, timeout=30)
        ftp.login()  # anonymous
        return ftp

    def src(self, path):
        with open(os.path.join(self.root, path), "rb") as f:
            return f.read()

    def save(self, name, data):
        with open(os.path.join(self.out, name), "wb") as f:
            f.write(data)


def fetch(ftp, path, rest=None):
    buf = bytearray()
    ftp.retrbinary("RETR " + path, buf.extend, rest=rest)
    return bytes(buf)


FILES = [
    "dir/b.bin",
    "dir/a.bin",
    "hello.txt",
    "empty",
    "with space.txt",
    "h\u00e9llo w\u00f6rld.txt",
    "\u65e5\u672c.txt",
    "link-to-a",
]


def download_all(c, ftp):
    """Downloads FILES, checks each against the source, saves it as
    OUTDIR/<index>."""
    for i, path in enumerate(FILES):
        got = fetch(ftp, path)
        same(path, got, c.src(path))
        c.save(str(i), got)


def scenario_pasv(c):
    ftp = c.connect()
    ftp.set_pasv(True)
    download_all(c, ftp)
    ftp.quit()


def scenario_port(c):
    ftp = c.connect()
    ftp.set_pasv(False)
    download_all(c, ftp)
    ftp.quit()


def scenario_epsv(c):
    ftp = c.connect(EpsvFTP)
    ftp.set_pasv(True)
    download_all(c, ftp)
    ftp.quit()


def scenario_default(c):
    """Whatever ftplib does by itself (on IPv6: EPSV, and EPRT when active)."""
    ftp = c.connect()
    download_all(c, ftp)
    ftp.set_pasv(False)
    got = fetch(ftp, "dir/b.bin")
    same("dir/b.bin (active)", got, c.src("dir/b.bin"))
    c.save("active", got)
    names = ftp.nlst()
    check("dir" in names and "hello.txt" in names, f"NLST over IPv6: {names}")
    ftp.quit()


ALL_FACTS = ["type", "size", "modify", "perm", "unique", "unix.mode"]


def check_mlsd_entries(c, ftp, vdir, entries):
    local = os.path.join(c.root, vdir)
    seen = {}
    uniques = {}
    for name, facts in entries:
        kind = facts.get("type")
        if kind in ("cdir", "pdir"):
            continue
        check(name not in seen, f"MLSD {vdir}: {name} listed twice")
        seen[name] = facts
        st = os.stat(os.path.join(local, name))
        what = f"MLSD {vdir}: {name} {facts}"
        for f in ALL_FACTS:
            if f == "size" and stat.S_ISDIR(st.st_mode):
                continue
            check(f in facts, f"{what}: fact {f} missing")
        if stat.S_ISDIR(st.st_mode):
            check(kind == "dir", f"{what}: type should be dir")
            # Anonymous (these scenarios' login): enter needs o+x, list o+r too.
            listable = st.st_mode & 0o005 == 0o005
            check("e" in facts["perm"], f"{what}: perm should allow e")
            check(("l" in facts["perm"]) == listable,
                  f"{what}: perm should {'' if listable else 'not '}allow l (mode {oct(st.st_mode & 0o777)})")
        else:
            check(kind == "file", f"{what}: type should be file")
            check(int(facts["size"]) == st.st_size, f"{what}: size should be {st.st_size}")
            check("r" in facts["perm"], f"{what}: perm should allow r")
        # Read-only server: no write permission is ever advertised.
        for p in "acdfmpw":
            check(p not in facts["perm"], f"{what}: perm advertises {p!r} on a read-only server")
        want_time = time.strftime("%Y%m%d%H%M%S", time.gmtime(st.st_mtime))
        check(facts["modify"][:14] == want_time, f"{what}: modify should be {want_time} (UTC)")
        check(int(facts["unix.mode"], 8) == stat.S_IMODE(st.st_mode),
              f"{what}: unix.mode should be {oct(stat.S_IMODE(st.st_mode))}")
        uniques.setdefault(facts["unique"], []).append(name)
    want_names = set(os.listdir(local))
    check(set(seen) == want_names, f"MLSD {vdir}: names {sorted(seen)} != {sorted(want_names)}")
    for u, names in uniques.items():
        check(len(names) == 1, f"MLSD {vdir}: unique={u} shared by {names}")


def scenario_mlsd(c):
    ftp = c.connect()
    for vdir in ["dir", "mlsd"]:
        entries = list(ftp.mlsd(vdir, facts=ALL_FACTS))
        check_mlsd_entries(c, ftp, vdir, entries)
    # Without OPTS MLST the default facts include type, size and modify.
    entries = [e for e in ftp.mlsd("mlsd") if e[1].get("type") == "file"]
    check(entries, "MLSD mlsd: no files")
    for name, facts in entries:
        for f in ["type", "size", "modify"]:
            check(f in facts, f"default MLSD facts of {name}: {f} missing in {facts}")
    # MLSD from inside the directory (no argument), names with spaces/UTF-8.
    ftp.cwd("/mlsd")
    names = {n for n, f in ftp.mlsd(facts=["type"]) if f["type"] not in ("cdir", "pdir")}
    check(names == set(os.listdir(os.path.join(c.root, "mlsd"))), f"MLSD in cwd: {names}")
    # MLST of one file over the control channel, with every fact enabled
    # again (the OPTS MLST above left only "type").
    ftp.sendcmd("OPTS MLST " + "".join(f + ";" for f in ALL_FACTS))
    resp = ftp.sendcmd("MLST /mlsd/x.bin")
    check(resp.startswith("250"), f"MLST: {resp}")
    size = os.path.getsize(os.path.join(c.root, "mlsd/x.bin"))
    check(f"size={size};" in resp.lower() and "type=file;" in resp.lower(), f"MLST facts: {resp}")
    ftp.quit()


def scenario_nlst(c):
    ftp = c.connect()
    root_names = sorted(n for n in os.listdir(c.root) if not n.startswith("."))
    got = sorted(ftp.nlst())
    check(got == root_names, f"NLST /: {got} != {root_names}")
    got = ftp.nlst("dir")
    base = sorted(n.rsplit("/", 1)[-1] for n in got)
    check(base == sorted(os.listdir(os.path.join(c.root, "dir"))), f"NLST dir: {got}")
    # The names NLST gives are usable as given (what mget does).
    for n in got:
        if not n.endswith("sub"):
            same(f"RETR {n} (name from NLST)", fetch(ftp, n), c.src(os.path.join("dir", n.rsplit("/", 1)[-1])))
    ftp.cwd("dir")
    got = sorted(ftp.nlst())
    check(got == ["a.bin", "b.bin", "sub"], f"NLST in /dir: {got}")
    ftp.quit()


def scenario_size_mdtm(c):
    ftp = c.connect()
    for path in ["dir/b.bin", "hello.txt", "empty", "h\u00e9llo w\u00f6rld.txt"]:
        ftp.voidcmd("TYPE I")
        size = ftp.size(path)
        want = os.path.getsize(os.path.join(c.root, path))
        check(size == want, f"SIZE {path}: {size} != {want}")
        resp = ftp.sendcmd("MDTM " + path)
        want = time.strftime("%Y%m%d%H%M%S", time.gmtime(os.stat(os.path.join(c.root, path)).st_mtime))
        check(resp.startswith("213 "), f"MDTM {path}: {resp}")
        check(resp[4:18] == want, f"MDTM {path}: {resp} should be {want} (UTC)")
    # The fixture set hello.txt's mtime to a known instant.
    resp = ftp.sendcmd("MDTM hello.txt")
    check(resp == "213 20010909014640", f"MDTM hello.txt: {resp}")
    for bad in ["SIZE dir", "SIZE no-such", "MDTM no-such", "MDTM dir"]:
        try:
            resp = ftp.sendcmd(bad)
        except ftplib.error_perm as e:
            check(str(e).startswith("550"), f"{bad}: {e}")
        else:
            sys.exit(f"CHECK FAILED: {bad} answered {resp}")
    ftp.quit()


def scenario_rest(c):
    ftp = c.connect()
    for path in ["dir/b.bin", "rest.bin"]:
        data = c.src(path)
        for off in [1, 100, 4095, 4096, 12345, len(data) // 2 + 1, len(data) - 1, len(data)]:
            got = fetch(ftp, path, rest=off)
            same(f"RETR {path} from REST {off}", got, data[off:])
            if off == 12345:
                c.save(path.replace("/", "_") + ".tail", got)
        # REST applies to one transfer only: the next RETR is whole again.
        same(f"RETR {path} after a REST transfer", fetch(ftp, path), data)
    ftp.quit()


def scenario_abort(c):
    ftp = c.connect()
    big = c.src("big.bin")
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("RETR big.bin")
    got = bytearray()
    while len(got) < (1 << 20):
        chunk = conn.recv(65536)
        check(chunk, "data connection ended before 1 MiB")
        got.extend(chunk)
    resp = ftp.abort()
    check(resp.startswith("426"), f"ABOR during a transfer: first reply {resp!r}, want 426")
    # The transfer stops: what is still in flight ends well before the file.
    conn.settimeout(30)
    try:
        while True:
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            got.extend(chunk)
    except (ConnectionResetError, socket.timeout) as e:
        check(not isinstance(e, socket.timeout), "data connection still open 30 s after ABOR")
    conn.close()
    check(len(got) < len(big), f"ABOR did not stop the transfer: {len(got)} of {len(big)} bytes arrived")
    same("bytes received before ABOR", bytes(got), big[: len(got)])
    resp = ftp.getresp()
    check(resp.startswith("226"), f"ABOR: second reply {resp!r}, want 226")
    # The session is still usable.
    ftp.voidcmd("NOOP")
    got = fetch(ftp, "dir/b.bin")
    same("download after ABOR", got, c.src("dir/b.bin"))
    c.save("after-abort", got)
    ftp.quit()


def scenario_ascii(c):
    ftp = c.connect()
    src = c.src("hello.txt")
    check(b"\r" not in src and src.count(b"\n") > 1, "fixture: hello.txt should have LF line ends")
    ftp.voidcmd("TYPE A")
    conn = ftp.transfercmd("RETR hello.txt")
    wire = bytearray()
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        wire.extend(chunk)
    conn.close()
    ftp.voidresp()
    same("TYPE A RETR hello.txt on the wire", bytes(wire), src.replace(b"\n", b"\r\n"))
    c.save("wire", bytes(wire))
    # retrlines (TYPE A, as ftplib does it) gives the lines back.
    lines = []
    ftp.retrlines("RETR hello.txt", lines.append)
    check(lines == src.decode().splitlines(), "retrlines RETR hello.txt: lines differ")
    # And TYPE I afterwards is binary again.
    same("TYPE I after TYPE A", fetch(ftp, "hello.txt"), src)
    ftp.quit()


def main():
    scenario, host, port, root, out = sys.argv[1:6]
    c = Ctx(host, port, root, out)
    globals()["scenario_" + scenario](c)
    print("OK")


if __name__ == "__main__":
    main()
