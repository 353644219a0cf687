#!/usr/bin/python3
"""connect() workloads for the kernel test of the connect group (loopback only, bounded).

usage: connect_load.py MODE ADDR PORT COUNT
  MODE listen    a listener on ADDR:PORT (accepting in a thread), then COUNT sequential
                 blocking connects to it
       closed    COUNT sequential blocking connects to ADDR:PORT, where nothing listens
       nonblock  a listener, then COUNT non-blocking connects (EINPROGRESS), each waited for
       blackhole COUNT blocking connects whose SYNs the test drops (the kernel gives up
                 after net.ipv4.tcp_syn_retries retries)
Every connect() is a plain blocking (or non-blocking) syscall, no Python timeout, and is timed
around the call. prints: "result NAME N" per result (success or errno name), one
"latency_us N" per call, and "count=N avg_us=N max_us=N p50_us=N p99_us=N slow=N"
(nearest rank; slow = calls of 500 ms or more).
"""
import errno
import select
import socket
import sys
import threading
import time


def fam(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def listener(addr, port):
    ls = socket.socket(fam(addr), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(128)

    def serve():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    return ls


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("listen", "closed", "nonblock", "blackhole"):
        sys.exit(__doc__)
    mode, addr, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if not (1 <= n <= 200 and 1024 <= port <= 65535):
        sys.exit("COUNT 1-200, PORT 1024-65535")
    ls = listener(addr, port) if mode in ("listen", "nonblock") else None
    results, lat = {}, []
    for _ in range(n):
        s = socket.socket(fam(addr), socket.SOCK_STREAM)
        if mode == "nonblock":
            s.setblocking(False)
        t0 = time.monotonic()
        rc = s.connect_ex((addr, port))
        lat.append(int((time.monotonic() - t0) * 1e6))
        name = "success" if rc == 0 else errno.errorcode.get(rc, "errno-%d" % rc)
        results[name] = results.get(name, 0) + 1
        if mode == "nonblock" and rc == errno.EINPROGRESS:
            select.select([], [s], [], 10)
        s.close()
    if ls:
        ls.close()
    for k in sorted(results):
        print("result %s %d" % (k, results[k]))
    for v in lat:
        print("latency_us %d" % v)
    srt = sorted(lat)

    def rank(p):
        return srt[max(1, -(-n * p // 100)) - 1]

    print("count=%d avg_us=%d max_us=%d p50_us=%d p99_us=%d slow=%d" % (
        n, sum(srt) // n, srt[-1], rank(50), rank(99), sum(1 for v in srt if v >= 500000)))


if __name__ == "__main__":
    main()
