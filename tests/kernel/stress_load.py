#!/usr/bin/env python3
"""Load for the stress scenario (tests/kernel/stress/stress.sh), inside the VM only.

  stress_load.py netns-udp PREFIX COUNT PORT SECONDS
      one UDP socket inside each network namespace PREFIX0 .. PREFIX{COUNT-1} (made by the
      scenario, each holding one end of a veth pair whose root end is 10.99.I.1/30 and inner
      end 10.99.I.2/30), sending 64-byte datagrams round-robin to 10.99.I.1:PORT for SECONDS.
  stress_load.py syn-flood BASEPORT NPORTS PER_PORT
      NPORTS listeners (backlog 8, never accepting) on 127.0.0.1:BASEPORT.., then PER_PORT
      non-blocking connects to each: the accept queues fill and overflow.
  stress_load.py cpu-load PORT SECONDS
      on every CPU (pinned): one bulk TCP stream to a local sink and one sender of 32-byte UDP
      datagrams to a local reader, for SECONDS.
Each prints key=value lines of what it did.
"""
import ctypes
import os
import resource
import select
import socket
import sys
import time

CLONE_NEWNET = 0x40000000


def setns(path):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f'setns {path}')
    finally:
        os.close(fd)


def netns_udp(prefix, count, port, seconds):
    home = '/proc/self/ns/net'
    home_fd = os.open(home, os.O_RDONLY)
    socks = []
    for i in range(count):
        setns(f'/run/netns/{prefix}{i}')
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect((f'10.99.{i}.1', port))
        s.setblocking(False)
        socks.append(s)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.setns(home_fd, CLONE_NEWNET)
    payload = b'x' * 64
    sent = errors = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for s in socks:
            try:
                s.send(payload)
                sent += 1
            except OSError:
                errors += 1
    print(f'sent={sent}\nerrors={errors}')


def syn_flood(base, nports, per_port):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = nports * (per_port + 1) + 100
    if hard < want:
        hard = want
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    listeners = []
    for p in range(base, base + nports):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('127.0.0.1', p))
        s.listen(8)
        listeners.append(s)
    clients = []
    for p in range(base, base + nports):
        for _ in range(per_port):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            c.connect_ex(('127.0.0.1', p))
            clients.append(c)
    time.sleep(2)   # let the handshakes and overflows happen before everything closes
    for c in clients:
        c.close()
    for s in listeners:
        s.close()
    print(f'listeners={nports}\nconnects={len(clients)}')


def cpu_worker(cpu, port, seconds):
    os.sched_setaffinity(0, {cpu})
    end = time.monotonic() + seconds
    t = socket.create_connection(('127.0.0.1', port))
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.setblocking(False)
    chunk = b'y' * 65536
    small = b'z' * 32
    tcp_bytes = udp_sent = 0
    while time.monotonic() < end:
        tcp_bytes += t.send(chunk)
        for _ in range(16):
            try:
                u.sendto(small, ('127.0.0.1', port + 1))
                udp_sent += 1
            except OSError:
                pass
    t.close()
    print(f'cpu{cpu}_tcp_bytes={tcp_bytes}\ncpu{cpu}_udp_sent={udp_sent}', flush=True)


def cpu_load(port, seconds):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(('127.0.0.1', port))
    srv.listen(64)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(('127.0.0.1', port + 1))
    cpus = sorted(os.sched_getaffinity(0))
    kids = []
    for cpu in cpus:
        pid = os.fork()
        if pid == 0:
            srv.close()
            udp.close()
            cpu_worker(cpu, port, seconds)
            os._exit(0)
        kids.append(pid)
    conns = [srv.accept()[0] for _ in cpus]
    received = udp_read = 0
    open_conns = list(conns)
    while open_conns:
        r, _, _ = select.select(open_conns + [udp], [], [], 1.0)
        for s in r:
            if s is udp:
                try:
                    while True:
                        udp.recv(2048, socket.MSG_DONTWAIT)
                        udp_read += 1
                except BlockingIOError:
                    pass
                continue
            data = s.recv(1 << 20)
            if not data:
                open_conns.remove(s)
                s.close()
            received += len(data)
    for pid in kids:
        os.waitpid(pid, 0)
    print(f'cpus={len(cpus)}\ntcp_received={received}\nudp_read={udp_read}')


def main(argv):
    if len(argv) >= 1 and argv[0] == 'netns-udp' and len(argv) == 5:
        netns_udp(argv[1], int(argv[2]), int(argv[3]), float(argv[4]))
    elif len(argv) == 4 and argv[0] == 'syn-flood':
        syn_flood(int(argv[1]), int(argv[2]), int(argv[3]))
    elif len(argv) == 3 and argv[0] == 'cpu-load':
        cpu_load(int(argv[1]), float(argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main(sys.argv[1:])
