#!/usr/bin/python3
"""Make IPv4 MIB events for kernel tests (run it inside a network namespace).

  ip_events.py udp DST COUNT SIZE [df]   COUNT UDP datagrams of SIZE payload bytes to DST:9;
                                         "df" sets Don't Fragment (IP_PMTUDISC_DO) and ignores
                                         EMSGSIZE after a PMTU update
  ip_events.py proto DST COUNT PROTO     COUNT raw IPv4 packets of protocol PROTO to DST
  ip_events.py frag DST COUNT            COUNT incomplete fragmented datagrams to DST: one half
                                         sends only the first fragment (offset 0, MF), the other
                                         only a middle one (offset 1480, MF); the receiver's
                                         reassembly times out for each

Prints "sent=N" (packets that left the socket). Bounded: COUNT <= 10000.
"""
import socket
import struct
import sys


def udp(dst, count, size, df):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if df:
        # IP_MTU_DISCOVER (10) = IP_PMTUDISC_DO (2); Python's socket module lacks the names
        s.setsockopt(socket.IPPROTO_IP, 10, 2)
    data = b"x" * size
    sent = 0
    for _ in range(count):
        try:
            s.sendto(data, (dst, 9))
            sent += 1
        except OSError:
            pass  # EMSGSIZE once the PMTU is known, ECONNREFUSED from an earlier ICMP
    return sent


def proto(dst, count, p):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, p)
    sent = 0
    for i in range(count):
        s.sendto(struct.pack("!I", i), (dst, 0))
        sent += 1
    return sent


def frag(dst, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)  # IP_HDRINCL
    daddr = socket.inet_aton(dst)
    sent = 0
    for i in range(count):
        payload = b"f" * 64
        off = 0 if i % 2 == 0 else 1480 // 8
        frag_off = 0x2000 | off  # MF set: never complete
        ident = 0x4000 + i
        # version/IHL, TOS, total length, id, flags/offset, TTL, protocol (UDP), checksum and
        # source (0: the kernel fills them in for IP_HDRINCL), destination
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag_off,
                          64, 17, 0, b"\0\0\0\0", daddr)
        s.sendto(hdr + payload, (dst, 0))
        sent += 1
    return sent


def main(argv):
    if len(argv) < 4:
        sys.exit(__doc__)
    what, dst, count = argv[1], argv[2], int(argv[3])
    if not 0 < count <= 10000:
        sys.exit("COUNT must be 1..10000")
    if what == "udp":
        n = udp(dst, count, int(argv[4]), len(argv) > 5 and argv[5] == "df")
    elif what == "proto":
        n = proto(dst, count, int(argv[4]))
    elif what == "frag":
        n = frag(dst, count)
    else:
        sys.exit(__doc__)
    print("sent=%d" % n)


if __name__ == "__main__":
    main(sys.argv)
