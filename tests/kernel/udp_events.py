#!/usr/bin/python3
"""UDP events with known counts for kernel tests (IPv4, loopback), one process.

  udp_events.py PORT N
  udp_events.py v6 PORT N

  1. traffic: N datagrams of sizes 1..N*7 % 1400 + 1 (known) from one socket to a receiver on
     127.0.0.1:PORT, sent in turn with send() on a connected socket, sendto() and sendmsg();
     the receiver reads every one with recv()/recvfrom()/recvmsg() in turn.
  2. disconnects: N/10 times connect() then connect(AF_UNSPEC) on a fresh socket.
  3. drops: a receiver on 127.0.0.1:PORT+1 with the smallest SO_RCVBUF that never reads;
     N datagrams of 1000 bytes are sent at it (most are dropped: RcvbufErrors).

Prints one "key=value" per line: sendmsg_calls, sendmsg_bytes, recvmsg_calls, recvmsg_bytes,
disconnects, blast_sent. Bounded: N <= 5000.

With "v6": AF_INET6 sockets only. A dual-stack receiver on [::]:PORT reads every datagram;
N datagrams of known sizes go from an AF_INET6 socket to [::1]:PORT (IPv6), then N from another
AF_INET6 socket to the v4-mapped [::ffff:127.0.0.1]:PORT (the kernel sends those as IPv4:
udpv6_sendmsg() hands them to udp_sendmsg(), and counts them in Udp, not Udp6). Prints v6_sends,
v6_send_bytes (to ::1), mapped_sends, mapped_send_bytes, v6_reads, v6_read_bytes (of the ::1
datagrams), mapped_reads, mapped_read_bytes.
"""
import ctypes
import socket
import struct
import sys


def v6(port, n):
    if not 0 < n <= 5000:
        sys.exit("N must be 1..5000")
    res = {k: 0 for k in ("v6_sends", "v6_send_bytes", "mapped_sends", "mapped_send_bytes",
                          "v6_reads", "v6_read_bytes", "mapped_reads", "mapped_read_bytes")}
    rx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.bind(("::", port))
    rx.settimeout(10)
    for kind, dst in (("v6", ("::1", port)), ("mapped", ("::ffff:127.0.0.1", port))):
        tx = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        for i in range(n):
            size = (i * 11) % 1200 + 1
            res[kind + "_send_bytes"] += tx.sendto(b"6" * size, dst)
            res[kind + "_sends"] += 1
            res[kind + "_read_bytes"] += len(rx.recvfrom(2000)[0])
            res[kind + "_reads"] += 1
        tx.close()
    rx.close()
    for k, v in res.items():
        print("%s=%d" % (k, v))


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "v6":
        v6(int(sys.argv[2]), int(sys.argv[3]))
        return
    port, n = int(sys.argv[1]), int(sys.argv[2])
    if not 0 < n <= 5000:
        sys.exit("N must be 1..5000")
    res = {"sendmsg_calls": 0, "sendmsg_bytes": 0, "recvmsg_calls": 0, "recvmsg_bytes": 0,
           "disconnects": 0, "blast_sent": 0}
    dst = ("127.0.0.1", port)

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.bind(dst)
    rx.settimeout(10)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    txc = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    txc.connect(dst)
    for i in range(n):
        size = (i * 7) % 1400 + 1
        data = b"u" * size
        if i % 3 == 0:
            sent = txc.send(data)
        elif i % 3 == 1:
            sent = tx.sendto(data, dst)
        else:
            sent = tx.sendmsg([data[: size // 2], data[size // 2:]], [], 0, dst)
        res["sendmsg_calls"] += 1
        res["sendmsg_bytes"] += sent
        if i % 3 == 0:
            got = len(rx.recv(2000))
        elif i % 3 == 1:
            got = len(rx.recvfrom(2000)[0])
        else:
            got = len(rx.recvmsg(2000)[0])
        res["recvmsg_calls"] += 1
        res["recvmsg_bytes"] += got

    libc = ctypes.CDLL(None, use_errno=True)
    unspec = struct.pack("=H14x", socket.AF_UNSPEC)
    for _ in range(max(1, n // 10)):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(dst)
        if libc.connect(s.fileno(), unspec, len(unspec)) != 0:
            sys.exit("connect(AF_UNSPEC) failed: errno %d" % ctypes.get_errno())
        res["disconnects"] += 1
        s.close()

    slow = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the kernel's minimum
    slow.bind(("127.0.0.1", port + 1))
    blaster = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(n):
        blaster.sendto(b"b" * 1000, ("127.0.0.1", port + 1))
        res["blast_sent"] += 1
    res["sendmsg_calls"] += n
    res["sendmsg_bytes"] += 1000 * n

    for k, v in res.items():
        print("%s=%d" % (k, v))


if __name__ == "__main__":
    main()
