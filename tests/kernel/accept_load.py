#!/usr/bin/python3
"""Listen-queue workloads for the kernel test of the accept group (loopback only, bounded).

usage:
  accept_load.py overflow ADDR PORT CONNECTS SECONDS
      A listener on ADDR:PORT with backlog 1 that never accepts; CONNECTS non-blocking
      connects to it at once, kept open SECONDS (their SYNs are retransmitted meanwhile),
      then everything is closed. prints: connects=N established=N seconds=S
  latency ADDR PORT DELAYS_MS...
      A listener (backlog 128). For each delay D: one blocking connect, then sleep D ms,
      then accept() it. The test's stopwatch runs from before connect() to after accept()
      returned, so it brackets the kernel's interval (child socket created during the
      handshake, accept() returning it). prints one line per connection (latency_us=N)
      and a summary: count=N avg_us=N max_us=N p50_us=N p99_us=N (nearest rank).
  many ADDR BASEPORT NPORTS CONNECTS SECONDS
      NPORTS listeners with backlog 1 that never accept, on ADDR:BASEPORT.., CONNECTS
      non-blocking connects to each (all issued at once), kept open SECONDS, then everything
      is closed. prints: listeners=N connects=N seconds=S
"""
import errno
import resource
import socket
import sys
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def overflow(addr, port, n, seconds):
    fam = family(addr)
    listener = socket.socket(fam, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((addr, port))
    listener.listen(1)
    clients = []
    for _ in range(n):
        c = socket.socket(fam, socket.SOCK_STREAM)
        c.setblocking(False)
        err = c.connect_ex((addr, port))
        if err not in (0, errno.EINPROGRESS):
            print("connect error %d" % err, file=sys.stderr)
        clients.append(c)
    time.sleep(seconds)
    est = 0
    for c in clients:
        if c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            try:
                c.getpeername()
                est += 1
            except OSError:
                pass
        c.close()
    listener.close()
    print("connects=%d established=%d seconds=%.1f" % (n, est, seconds))


def latency(addr, port, delays):
    fam = family(addr)
    listener = socket.socket(fam, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((addr, port))
    listener.listen(128)
    lat = []
    for d in delays:
        t0 = time.monotonic()
        c = socket.create_connection((addr, port), timeout=10)
        time.sleep(d / 1000.0)
        s, _ = listener.accept()
        us = int((time.monotonic() - t0) * 1e6)
        lat.append(us)
        print("latency_us=%d" % us)
        s.close()
        c.close()
    listener.close()
    srt = sorted(lat)
    n = len(srt)

    def rank(p):
        return srt[max(1, -(-n * p // 100)) - 1]

    print("count=%d avg_us=%d max_us=%d p50_us=%d p99_us=%d" % (
        n, sum(srt) // n, srt[-1], rank(50), rank(99)))


def many(addr, base, nports, n, seconds):
    fam = family(addr)
    want = nports * (n + 1) + 100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    listeners, clients = [], []
    for p in range(base, base + nports):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, p))
        s.listen(1)
        listeners.append(s)
    for p in range(base, base + nports):
        for _ in range(n):
            c = socket.socket(fam, socket.SOCK_STREAM)
            c.setblocking(False)
            err = c.connect_ex((addr, p))
            if err not in (0, errno.EINPROGRESS):
                print("connect error %d" % err, file=sys.stderr)
            clients.append(c)
    time.sleep(seconds)
    for c in clients:
        c.close()
    for s in listeners:
        s.close()
    print("listeners=%d connects=%d seconds=%.1f" % (nports, len(clients), seconds))


def main():
    a = sys.argv[1:]
    if len(a) >= 5 and a[0] == "overflow":
        n, secs = int(a[3]), float(a[4])
        if not (1 <= n <= 500 and 0 < secs <= 120):
            sys.exit("overflow: CONNECTS 1-500, SECONDS 0-120")
        overflow(a[1], int(a[2]), n, secs)
    elif len(a) >= 4 and a[0] == "latency":
        delays = [int(x) for x in a[3:]]
        if not (len(delays) <= 200 and all(0 <= d <= 5000 for d in delays)):
            sys.exit("latency: at most 200 delays of 0-5000 ms")
        latency(a[1], int(a[2]), delays)
    elif len(a) == 6 and a[0] == "many":
        base, nports, n, secs = int(a[2]), int(a[3]), int(a[4]), float(a[5])
        if not (1024 <= base and base + nports <= 65536 and 1 <= nports <= 1000 and
                1 <= n <= 20 and 0 < secs <= 60):
            sys.exit("many: NPORTS 1-1000, CONNECTS 1-20, SECONDS 0-60")
        many(a[1], base, nports, n, secs)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
