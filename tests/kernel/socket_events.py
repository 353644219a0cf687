#!/usr/bin/python3
"""Socket I/O with known calls and bytes for kernel tests, one process, no threads.

  socket_events.py N

For each of four kinds, inet-stream (TCP over 127.0.0.1), inet-dgram (UDP over 127.0.0.1),
unix-stream and unix-dgram (socketpair), N messages of known sizes are sent, cycling through
send(), sendmsg(), os.write() and os.writev(), and read back cycling through recv(),
recvmsg(), os.read() and os.readv(). Stream reads may return less than a message; every call
is counted with the bytes it returned, so the totals are exact whatever the kernel does.
Bounded: N <= 2000, messages <= 1000 bytes, all sockets closed at the end.

Prints, per kind, "KIND send_calls send_bytes recv_calls recv_bytes creates closes".

  socket_events.py rows

Creates and closes one socket of each family/type pair this kernel makes without extra
modules (unix, inet, inet6: stream, dgram and raw or seqpacket; netlink raw and dgram; packet
raw, dgram and the old SOCK_PACKET type, which the module counts as type "other"), so that the
module prints many rows (its batch cost grows with them). Prints "KIND created" per success.
"""
import os
import socket
import sys


def exchange(tx, rx, n, stream, st):
    for i in range(n):
        size = (i * 37) % 1000 + 1
        data = b"s" * size
        k = i % 4
        if k == 0:
            sent = tx.send(data)
        elif k == 1:
            sent = tx.sendmsg([data])
        elif k == 2:
            sent = os.write(tx.fileno(), data)
        else:
            sent = os.writev(tx.fileno(), [data[: size // 3], data[size // 3:]])
        assert sent == size
        st[0] += 1
        st[1] += sent
        want = size
        while want > 0:
            if k == 0:
                got = len(rx.recv(want))
            elif k == 1:
                got = len(rx.recvmsg(want)[0])
            elif k == 2:
                got = len(os.read(rx.fileno(), want))
            else:
                a, b = bytearray(want // 2 or 1), bytearray(want - (want // 2 or 1))
                got = os.readv(rx.fileno(), [a, b] if len(b) else [a])
            st[2] += 1
            st[3] += got
            if not stream:
                break  # one datagram per read
            want -= got


def rows():
    fams = (("unix", socket.AF_UNIX), ("inet", socket.AF_INET), ("inet6", socket.AF_INET6),
            ("netlink", socket.AF_NETLINK), ("packet", socket.AF_PACKET))
    types = (("stream", socket.SOCK_STREAM), ("dgram", socket.SOCK_DGRAM),
             ("raw", socket.SOCK_RAW), ("seqpacket", socket.SOCK_SEQPACKET),
             ("other", 10))                     # SOCK_PACKET (AF_PACKET only)
    for fname, fam in fams:
        for tname, typ in types:
            proto = 0
            if typ == socket.SOCK_RAW and fam in (socket.AF_INET, socket.AF_INET6):
                proto = 1 if fam == socket.AF_INET else 58     # ICMP, ICMPv6
            try:
                s = socket.socket(fam, typ, proto)
            except OSError:
                continue
            s.close()
            print("%s-%s created" % (fname, tname))


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "rows":
        rows()
        return
    n = int(sys.argv[1])
    if not 0 < n <= 2000:
        sys.exit("N must be 1..2000")
    out = {}

    # inet-stream: listener + client (created) and the accepted socket (not created by
    # socket(), but closed).
    st = [0, 0, 0, 0, 2, 3]
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.connect(ls.getsockname())
    a, _ = ls.accept()
    exchange(c, a, n, True, st)
    for s in (c, a, ls):
        s.close()
    out["inet-stream"] = st

    st = [0, 0, 0, 0, 2, 2]
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    exchange(tx, rx, n, False, st)
    tx.close()
    rx.close()
    out["inet-dgram"] = st

    for kind, typ, stream in (("unix-stream", socket.SOCK_STREAM, True),
                              ("unix-dgram", socket.SOCK_DGRAM, False)):
        st = [0, 0, 0, 0, 2, 2]
        x, y = socket.socketpair(socket.AF_UNIX, typ)
        exchange(x, y, n, stream, st)
        x.close()
        y.close()
        out[kind] = st

    for k, st in out.items():
        print(k, *st)


if __name__ == "__main__":
    main()
