#!/usr/bin/env python3
"""Whether an urgent ABOR behind a command is ever answered late.

ftplib's FTP.abort() sends "ABOR\r\n" with MSG_OOB; sent right behind
another command, the server's read stops at the urgent mark with a byte
left. The next read, at the mark with nothing copied yet, answers EAGAIN
whenever a signal is pending (tcp_recvmsg), and on an io_uring shard
that is whenever task work is queued for the thread (TIF_NOTIFY_SIGNAL):
a reader that took that EAGAIN for "empty" waited for an edge that never
came, and read the byte 250-500 ms later. Rare (a few in 10,000 rounds),
so this runs many: victim sessions loop NOOP + urgent ABOR while quiet
noise sessions (a command every 0.5-0.7 s, each completing a POLL op on
the shard) keep task work coming. Exit 1 if any reply took over 100 ms.

    ringftp serve --root DIR --listen 127.0.0.1:2121 &
    python3 loadtest/urgent_abor_late.py 2121 [NOISE=100] [VICTIMS=200] [SECONDS=20] [PAUSE=0.3]

(ulimit -n 4096 for the default 300 sessions.) docs/benchmarks.md,
"Eleventh pass", has runs before and after the fix.
"""
import asyncio, socket, sys, time, random

PORT = int(sys.argv[1])
NOISE = int(sys.argv[2]) if len(sys.argv) > 2 else 100
VICTIMS = int(sys.argv[3]) if len(sys.argv) > 3 else 200
SECS = float(sys.argv[4]) if len(sys.argv) > 4 else 20
VPAUSE = float(sys.argv[5]) if len(sys.argv) > 5 else 0.3
late = []; rounds = [0]; stop = [False]


async def session():
    loop = asyncio.get_running_loop()
    s = socket.socket(); s.setblocking(False)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await loop.sock_connect(s, ("127.0.0.1", PORT))
    buf = [b""]

    async def reply():
        while b"\r\n" not in buf[0]:
            d = await asyncio.wait_for(loop.sock_recv(s, 4096), 10)
            if not d:
                raise EOFError
            buf[0] += d
        l, buf[0] = buf[0].split(b"\r\n", 1)
        return l.decode("latin1")
    await reply()
    s.send(b"USER anonymous\r\n"); await reply()
    s.send(b"PASS x@\r\n"); assert (await reply()).startswith("230")
    return s, reply


async def noise():
    s, reply = await session()
    while not stop[0]:
        await asyncio.sleep(random.uniform(0.5, 0.7))  # quiet: back on the ring
        s.send(b"NOOP\r\n"); await reply()
    s.close()


async def victim(k):
    s, reply = await session()
    while not stop[0]:
        t0 = time.monotonic()
        s.send(b"NOOP\r\n")
        s.send(b"ABOR\r\n", socket.MSG_OOB)
        r1 = await reply(); t1 = time.monotonic()
        r2 = await reply(); t2 = time.monotonic()
        assert r1.startswith("200") and r2.startswith("225"), (r1, r2)
        rounds[0] += 1
        if t2 - t0 > 0.1:
            late.append((round((t1 - t0) * 1e3, 1), round((t2 - t0) * 1e3, 1)))
        await asyncio.sleep(VPAUSE)
    s.close()


async def main():
    ns = [asyncio.create_task(noise()) for _ in range(NOISE)]
    await asyncio.sleep(1.0)
    vs = [asyncio.create_task(victim(k)) for k in range(VICTIMS)]
    await asyncio.sleep(SECS)
    stop[0] = True
    await asyncio.wait_for(asyncio.gather(*vs, *ns), 15)

asyncio.run(main())
print(f"{rounds[0]} NOOP + urgent ABOR rounds; {len(late)} answered late (>100 ms)")
for l in late[:10]:
    print(f"  200 after {l[0]} ms, 225 after {l[1]} ms")
sys.exit(1 if late else 0)
