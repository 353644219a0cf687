#!/usr/bin/python3
"""Retransmits from many ports, peers and flows at once, for the tcp group's caps test (inside
the VM only; the scenario drops every SYN to the ports with nftables, so each connect
retransmits its SYN at 1 s, 3 s, ... while it is kept open).

usage: tcp_caps_load.py BASEPORT NPORTS PREFIX6 NPEERS SECONDS
  NPEERS non-blocking connects, connect i to [PREFIX6<i+1>]:BASEPORT + i % NPORTS (PREFIX6 is
  an IPv6 prefix routed to lo as local, e.g. 2001:db8:77::), all issued at once, kept open
  SECONDS, then closed. Every connect is its own peer (remote address) and its own flow.
prints: connects=N errors=N seconds=S
"""
import errno
import resource
import socket
import sys
import time


def main(a):
    if len(a) != 5:
        sys.exit(__doc__)
    base, nports, prefix, npeers, secs = int(a[0]), int(a[1]), a[2], int(a[3]), float(a[4])
    if not (1 <= nports <= 1000 and 1 <= base and base + nports <= 65536 and
            1 <= npeers <= 2000 and 0 < secs <= 60):
        sys.exit("NPORTS 1-1000, NPEERS 1-2000, SECONDS 0-60")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = npeers + 100
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    socks, errors = [], 0
    for i in range(npeers):
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex(("%s%x" % (prefix, i + 1), base + i % nports))
        if rc not in (0, errno.EINPROGRESS):
            errors += 1
        socks.append(s)
    time.sleep(secs)
    for s in socks:
        s.close()
    print("connects=%d errors=%d seconds=%.1f" % (npeers, errors, secs))


if __name__ == "__main__":
    main(sys.argv[1:])
