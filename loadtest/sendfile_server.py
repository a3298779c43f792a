"""Plain sendfile(2) sender: every accepted connection gets the whole file, then close."""
import os, socket, sys, threading
path, port = sys.argv[1], int(sys.argv[2])
size = os.path.getsize(path)
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port)); srv.listen(64)
def serve(c):
    with c, open(path, "rb") as f:
        off = 0
        while off < size:
            n = os.sendfile(c.fileno(), f.fileno(), off, size - off)
            if n == 0: break
            off += n
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
