#!/usr/bin/python3
"""Steady TCP load over loopback for kernel tests: THREADS clients, each
connecting over and over to a local listener and sending SIZE bytes, for
SECONDS. One process, so it keeps going under qemu's TCG where starting a
process per transfer costs 50-120 ms. With netem loss on lo, every new
connection sends its first flight (and its SYN) into the loss, so
retransmits arrive at a steady rate instead of one stream stalling in RTO
backoff. Loopback only; bounded in time.

usage: tcp_load.py PORT SECONDS [THREADS] [SIZE] [PAUSE]
(PAUSE: seconds each client waits between connections, default 0)
prints: connections=N completed=N bytes=N seconds=S
"""
import socket
import sys
import threading
import time


def serve(listener, stop):
    listener.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            continue
        threading.Thread(target=drain, args=(conn,), daemon=True).start()


def drain(conn):
    conn.settimeout(30)
    total = 0
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            total += len(data)
        conn.sendall(str(total).encode())
    except OSError:
        pass
    finally:
        conn.close()


def client(port, size, pause, deadline, stats, lock):
    payload = b"x" * size
    while time.monotonic() < deadline:
        ok = 0
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                ok = int(s.recv(32) or b"0") == size
        except (OSError, ValueError):
            pass
        with lock:
            stats["connections"] += 1
            stats["completed"] += ok
            stats["bytes"] += size if ok else 0
        if pause:
            time.sleep(pause)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    port, seconds = int(sys.argv[1]), float(sys.argv[2])
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 20000
    pause = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    if not (1024 <= port <= 65535 and 0 < seconds <= 3600 and 1 <= threads <= 64
            and 1 <= size <= 10**8 and 0 <= pause <= 60):
        sys.exit("tcp_load.py: PORT 1024-65535, SECONDS 0-3600, THREADS 1-64, "
                 "SIZE 1-1e8, PAUSE 0-60")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    stop = threading.Event()
    threading.Thread(target=serve, args=(listener, stop), daemon=True).start()
    stats = {"connections": 0, "completed": 0, "bytes": 0}
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + seconds
    workers = [threading.Thread(target=client, args=(port, size, pause, deadline, stats, lock))
               for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=seconds + 30)
    stop.set()
    listener.close()
    print("connections=%d completed=%d bytes=%d seconds=%.1f" % (
        stats["connections"], stats["completed"], stats["bytes"], time.monotonic() - start))


if __name__ == "__main__":
    main()
