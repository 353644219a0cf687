#!/usr/bin/env python3
"""Traffic for the drops scenario (tests/kernel/groups/drops.sh), bounded in count and time.

  drops_load.py udp PORT COUNT
      send COUNT 64-byte UDP datagrams to 127.0.0.1:PORT from one socket; prints "sent=N".

  drops_load.py sndbuf NBLOCK TIMEOUT_MS
      A TCP connection over lo whose receiver never reads, with small buffers on both sides.
      Phase 1 fills the sender's send buffer with non-blocking sends until EAGAIN; every
      non-blocking send() that returns short (partial or EAGAIN) went through
      sk_stream_wait_memory() exactly once (a zero timeout returns at its first check).
      Phase 2 makes NBLOCK blocking sends with SO_SNDTIMEO = TIMEOUT_MS on the stalled
      connection: each sleeps once in sk_stream_wait_memory() for the whole timeout and gets
      EAGAIN. Prints "short_nonblocking=S blocked=B blocked_ms=T blocked_min_ms=A
      blocked_max_ms=Z partial_blocked=P", where T is the summed wall time of the blocking
      calls and P counts blocking calls that sent data (they may have waited more than once).
"""
import errno
import socket
import struct
import sys
import time


def udp(port, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = 0
    for _ in range(count):
        s.sendto(b"x" * 64, ("127.0.0.1", port))
        sent += 1
    s.close()
    print(f"sent={sent}")


def sndbuf(nblock, timeout_ms):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # inherited by the child
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    c.connect(ls.getsockname())
    peer, _ = ls.accept()            # never read from
    chunk = b"y" * 65536
    short = 0
    c.setblocking(False)
    deadline = time.monotonic() + 30
    eagain = 0
    while eagain < 1 and time.monotonic() < deadline:
        try:
            n = c.send(chunk)
            if n < len(chunk):
                short += 1
        except BlockingIOError:
            short += 1
            eagain += 1
    time.sleep(1.0)                  # let the last ACKs and window updates settle
    try:                             # still stalled? (counts like any short send)
        n = c.send(chunk)
        short += 1 if n < len(chunk) else 0
    except BlockingIOError:
        short += 1
    c.setblocking(True)
    tv = struct.pack("ll", timeout_ms // 1000, (timeout_ms % 1000) * 1000)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    blocked = partial = 0
    total = 0.0
    mn, mx = None, 0.0
    for _ in range(nblock):
        t0 = time.monotonic()
        try:
            n = c.send(chunk)
            if n > 0:
                partial += 1
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                raise
        dt = time.monotonic() - t0
        blocked += 1
        total += dt
        mn = dt if mn is None else min(mn, dt)
        mx = max(mx, dt)
    c.close()
    peer.close()
    ls.close()
    print(f"short_nonblocking={short} blocked={blocked} blocked_ms={total * 1000:.0f} "
          f"blocked_min_ms={(mn or 0) * 1000:.0f} blocked_max_ms={mx * 1000:.0f} "
          f"partial_blocked={partial}")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "udp":
        port, count = int(sys.argv[2]), int(sys.argv[3])
        if not (1024 <= port <= 65535 and 1 <= count <= 100000):
            sys.exit("udp: PORT 1024-65535, COUNT 1-100000")
        udp(port, count)
    elif len(sys.argv) == 4 and sys.argv[1] == "sndbuf":
        nblock, tmo = int(sys.argv[2]), int(sys.argv[3])
        if not (1 <= nblock <= 100 and 10 <= tmo <= 5000):
            sys.exit("sndbuf: NBLOCK 1-100, TIMEOUT_MS 10-5000")
        sndbuf(nblock, tmo)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
