"""pyftpdlib as a reference server for tests/loadgen.rs.

Serves ROOT on 127.0.0.1, an ephemeral port, printed as `listening on
127.0.0.1:PORT` (the same line `ringftp serve` prints). Anonymous users
read; the user `writer` (password `secret`) may also write, for the
upload scenario. Exits when its stdin closes, so a test that dies never
leaves it behind.
"""
import logging
import os
import sys
import threading

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

root = sys.argv[1]
authorizer = DummyAuthorizer()
authorizer.add_anonymous(root)
authorizer.add_user("writer", "secret", root, perm="elradfmwMT")
handler = FTPHandler
handler.authorizer = authorizer
logging.basicConfig(level=logging.WARNING)
server = FTPServer(("127.0.0.1", 0), handler)
print("listening on 127.0.0.1:%d" % server.address[1], flush=True)


def exit_with_stdin():
    sys.stdin.read()
    os._exit(0)


threading.Thread(target=exit_with_stdin, daemon=True).start()
server.serve_forever()
