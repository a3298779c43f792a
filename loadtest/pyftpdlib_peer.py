#!/usr/bin/env python3
"""pyftpdlib configured as a peer for loadtest/compare.sh.

Anonymous read-only on ROOT (with --upload-dir, anonymous may also STOR
into that one directory: pyftpdlib's `-w`, confined), bound to one address, passive ports from a
given range, sendfile on (os.sendfile), connection limits raised, long idle
timeouts, warnings only to the log file. Single process, runs in the
foreground until SIGTERM/SIGINT.

    python3 pyftpdlib_peer.py --listen 127.0.0.1:2125 --root TREE \
        --pasv-ports 44000-44999 --log FILE
"""
import argparse
import logging
import os
import resource
import signal
import sys


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", required=True, metavar="ADDR:PORT")
    p.add_argument("--root", required=True)
    p.add_argument("--pasv-ports", required=True, metavar="LO-HI")
    p.add_argument("--log", default=None, help="log file (default stderr)")
    p.add_argument("--max-cons", type=int, default=20000)
    p.add_argument("--timeout", type=int, default=3600, help="idle seconds")
    p.add_argument("--backlog", type=int, default=4096)
    p.add_argument(
        "--upload-dir",
        default=None,
        help="a directory under ROOT where anonymous may also write (STOR)",
    )
    a = p.parse_args()

    from pyftpdlib import __ver__
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import DTPHandler, FTPHandler
    from pyftpdlib.servers import FTPServer

    # Enough descriptors for max_cons sessions (one per control connection,
    # one per data connection / passive listener).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    logging.basicConfig(
        filename=a.log,
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )

    host, port = a.listen.rsplit(":", 1)
    lo, hi = (int(x) for x in a.pasv_ports.split("-"))

    auth = DummyAuthorizer()
    auth.add_anonymous(os.path.abspath(a.root), perm="elr")  # read-only
    if a.upload_dir:
        # pyftpdlib warns that anonymous may write; that is the point here
        import warnings

        warnings.simplefilter("ignore", RuntimeWarning)
        auth.override_perm("anonymous", os.path.abspath(a.upload_dir), "elrw", recursive=True)

    class Handler(FTPHandler):
        pass

    Handler.authorizer = auth
    Handler.passive_ports = list(range(lo, hi + 1))
    Handler.use_sendfile = hasattr(os, "sendfile")
    Handler.timeout = a.timeout
    Handler.banner = "pyftpdlib %s ready." % __ver__

    class Dtp(DTPHandler):
        timeout = a.timeout

    Handler.dtp_handler = Dtp

    server = FTPServer((host, int(port)), Handler, backlog=a.backlog)
    server.max_cons = a.max_cons
    server.max_cons_per_ip = 0  # unlimited

    def stop(_sig, _frm):
        server.close_all()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        "pyftpdlib %s listening on %s:%s root %s sendfile %s"
        % (__ver__, host, port, a.root, Handler.use_sendfile),
        flush=True,
    )
    server.serve_forever(handle_exit=False)


if __name__ == "__main__":
    main()
