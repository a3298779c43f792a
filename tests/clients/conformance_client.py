#!/usr/bin/env python3
"""Python ftplib scenarios for tests/conformance.rs and
tests/conformance_listing.rs (issue 11: what strict real clients need).

    python3 conformance_client.py legacy_names HOST PORT DIR
    python3 conformance_client.py full_disk HOST PORT USER PASSWORD BYTES
    python3 conformance_client.py wildcards HOST PORT

ftplib decodes every reply and listing as strict UTF-8 (its default
encoding since Python 3.9), so a name the server sends raw in Latin-1
raises UnicodeDecodeError: that is the failure legacy_names looks for.
Every check failure exits non-zero with a message; success prints OK last.
"""

import ftplib
import io
import sys


def check(cond, msg):
    if not cond:
        sys.exit("CHECK FAILED: " + msg)


class EpsvFTP(ftplib.FTP):
    """Passive mode over EPSV on IPv4 too (RFC 2428)."""

    def makepasv(self):
        return ftplib.parse229(self.sendcmd("EPSV"), self.sock.getpeername())


def connect(host, port, user=None, password=None):
    ftp = EpsvFTP(encoding="utf-8")
    ftp.connect(host, int(port), timeout=30)
    if user:
        ftp.login(user, password)
    else:
        ftp.login()
    return ftp


def fetch(ftp, path):
    buf = io.BytesIO()
    ftp.retrbinary("RETR " + path, buf.write)
    return buf.getvalue()


def legacy_names(host, port, directory):
    """Lists DIR with mlsd(), nlst() and LIST (all strict UTF-8) and
    downloads every file mlsd() named, by that name."""
    ftp = connect(host, port)
    ftp.cwd(directory)
    facts = {name: f for name, f in ftp.mlsd()}
    names = sorted(ftp.nlst())
    lines = []
    ftp.retrlines("LIST", lines.append)
    check(sorted(facts) == names, f"mlsd {sorted(facts)} != nlst {names}")
    check(len(lines) == len(names), f"LIST has {len(lines)} lines, NLST {len(names)}")
    for line in lines:
        check(any(line.endswith(" " + n) for n in names), f"LIST line {line!r}")
    for name in names:
        data = fetch(ftp, name)
        size = ftp.size(name)
        check(size == len(data), f"SIZE {name} = {size}, RETR gave {len(data)}")
        check(int(facts[name]["size"]) == len(data), f"MLSD size of {name}")
        print(f"fetched {name} {len(data)}")
    ftp.quit()


def full_disk(host, port, user, password, nbytes):
    """STOR NBYTES onto a disk with less room: ftplib must raise
    error_temp 452 (not a broken pipe), then the session goes on."""
    ftp = connect(host, port, user, password)
    try:
        ftp.storbinary("STOR big.bin", io.BytesIO(b"\xa5" * int(nbytes)))
        sys.exit("CHECK FAILED: STOR onto a full disk succeeded")
    except ftplib.error_temp as e:
        check(str(e).startswith("452 "), f"want 452, got {e}")
        print(f"STOR big.bin: {e}")
    check(ftp.voidcmd("NOOP").startswith("200"), "NOOP after the 452")
    check("big.bin" not in ftp.nlst(), "the partial big.bin stayed")
    ftp.storbinary("STOR fits.bin", io.BytesIO(b"fits\n"))
    check(fetch(ftp, "fits.bin") == b"fits\n", "fits.bin after the 452")
    ftp.quit()


def wildcards(host, port):
    """nlst() with a pattern, as mget-style tools use it, and STAT with
    ls options on the control connection."""
    ftp = connect(host, port)
    got = ftp.nlst("reports/*.txt")
    check(got == ["reports/feb.txt", "reports/jan.txt"], f"nlst reports/*.txt: {got}")
    for name in got:
        print(f"fetched {name} {len(fetch(ftp, name))}")
    check(ftp.nlst("reports/*.pdf") == [], "a pattern matching nothing")
    stat = ftp.sendcmd("STAT -la reports")
    check(stat.startswith("213-"), f"STAT -la reports: {stat!r}")
    check(" .hidden.txt\n" in stat + "\n", f"STAT shows dot-files: {stat!r}")
    ftp.cwd("reports")
    check(ftp.nlst("*.txt") == ["feb.txt", "jan.txt"], "nlst *.txt in reports")
    ftp.quit()


if __name__ == "__main__":
    scenario, args = sys.argv[1], sys.argv[2:]
    {"legacy_names": legacy_names, "full_disk": full_disk, "wildcards": wildcards}[scenario](*args)
    print("OK")
