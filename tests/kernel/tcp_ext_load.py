#!/usr/bin/python3
"""TCP socket-call workload for the kernel test of the tcp group (loopback only, bounded).

usage: tcp_ext_load.py ADDR PORT CONNS CHUNKS SIZE SETSOCKOPTS LINGER REFUSED
  CONNS connections to a listener on ADDR:PORT; each client calls setsockopt(TCP_NODELAY)
  SETSOCKOPTS times, sends CHUNKS x SIZE bytes with send(), shuts down its write side and
  reads the listener's answer (the byte count) until EOF. Then LINGER connections closed at
  once with SO_LINGER {1, 0} (an abortive close: a reset), and REFUSED connects to PORT+1,
  where nothing listens. Every send()/recv() call is counted, whatever it returns.
prints one line: key=value for sends, send_bytes, recvs, recv_bytes, setsockopts, linger,
refused, conns.
"""
import socket
import struct
import sys
import threading

lock = threading.Lock()
st = {"sends": 0, "send_bytes": 0, "recvs": 0, "recv_bytes": 0, "setsockopts": 0,
      "linger": 0, "refused": 0, "conns": 0}


def add(k, v):
    with lock:
        st[k] += v


def send_all(s, data):
    while data:
        add("sends", 1)  # a failed send() is a call too
        n = s.send(data)
        add("send_bytes", n)
        data = data[n:]


def recv_all(s):
    total = 0
    while True:
        try:
            d = s.recv(65536)
        except OSError:
            add("recvs", 1)
            return total
        add("recvs", 1)
        add("recv_bytes", len(d))
        if not d:
            return total
        total += len(d)


def handle(c):
    total = recv_all(c)
    try:
        send_all(c, str(total).encode())
    except OSError:
        pass
    c.close()


def serve(ls, workers, stop):
    # A timeout, not shutdown(), ends the loop: shutdown() of a listener is a disconnect.
    ls.settimeout(0.2)
    while not stop.is_set():
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        except OSError:
            return
        c.settimeout(None)
        t = threading.Thread(target=handle, args=(c,))
        t.start()
        workers.append(t)


def main():
    a = sys.argv[1:]
    if len(a) != 8:
        sys.exit(__doc__)
    addr, port = a[0], int(a[1])
    conns, chunks, size, ssos, linger, refused = (int(x) for x in a[2:])
    if not (1024 <= port < 65535 and conns <= 100 and chunks <= 100 and size <= 1000000
            and ssos <= 100 and linger <= 100 and refused <= 100):
        sys.exit("bounds: CONNS, CHUNKS, SETSOCKOPTS, LINGER, REFUSED <= 100, SIZE <= 1e6")
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(128)
    workers = []
    stop = threading.Event()
    acc = threading.Thread(target=serve, args=(ls, workers, stop))
    acc.start()
    payload = b"y" * size
    for _ in range(conns):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.connect((addr, port))
        add("conns", 1)
        for _ in range(ssos):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            add("setsockopts", 1)
        for _ in range(chunks):
            send_all(s, payload)
        s.shutdown(socket.SHUT_WR)
        recv_all(s)
        s.close()
    for _ in range(linger):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.connect((addr, port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        add("linger", 1)
    for _ in range(refused):
        s = socket.socket(fam, socket.SOCK_STREAM)
        if s.connect_ex((addr, port + 1)) != 0:
            add("refused", 1)
        s.close()
    # Let the server threads finish (each ends at EOF or reset), then stop accepting.
    for _ in range(100):
        with lock:
            done = len(workers) >= conns + linger
        if done:
            break
        threading.Event().wait(0.05)
    for t in list(workers):
        t.join(timeout=10)
    stop.set()
    acc.join(timeout=5)
    ls.close()
    print(" ".join("%s=%d" % (k, st[k]) for k in
                   ("sends", "send_bytes", "recvs", "recv_bytes", "setsockopts", "linger",
                    "refused", "conns")))


if __name__ == "__main__":
    main()
