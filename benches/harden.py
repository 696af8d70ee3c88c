#!/usr/bin/env python3
"""Before/after figures of the connection-layer hardening (issue 9, items 6-9).

    python3 benches/harden.py [--label NAME] [--bin PATH] [--extra-flags "..."]

Starts the binary (default target/debug/cometa) on 127.0.0.1 with a fresh
database, runs each scenario against it, and prints one line per figure:

- slow readers: 200 clients with a 4 KiB receive window each ask for the
  largest answer (50 messages of 1,000 emoji, ~600 KB) four times, pipelined,
  and read nothing: server RSS, kernel TCP memory and descriptors at 3 s, 25 s
  and 40 s (the default write timeout is 20 s);
- long heads: 100 clients each send one unfinished 400 KB header line: RSS;
- silent connections over the cap: a 50-connection server, 400 connections
  that send nothing: the server's most descriptors within 3 s.

Only loopback, bounded in count and time; every socket and the server are
closed at the end.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def tcp_mem_kib():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                return int(parts[parts.index("mem") + 1]) * 4
    return 0


class Server:
    def __init__(self, binary, flags):
        self.dir = tempfile.mkdtemp(prefix="cometa-harden-")
        os.mkdir(os.path.join(self.dir, "static"))
        cmd = [binary, "--listen", "127.0.0.1:0", "--db", os.path.join(self.dir, "chat.sqlite"),
               "--static-dir", os.path.join(self.dir, "static"), "--hold", "30"] + flags
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "RUST_LOG": "error"}, text=True)
        line = self.proc.stdout.readline()
        self.port = int(line.rsplit(":", 1)[1])
        self.pid = self.proc.pid

    def request(self, raw, timeout=30):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.sendall(raw)
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
        s.close()
        return got

    def send(self, user, message):
        body = urllib.parse.urlencode({"user": user, "message": message}).encode()
        head = (f"POST /sendMessage.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        return self.request(head + body)

    def close(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def small_window_socket(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def slow_readers(binary, flags, label):
    srv = Server(binary, flags)
    try:
        emoji = "\U0001F600" * 1000
        for i in range(50):
            srv.send(f"u{i}", emoji)
        base = rss_kib(srv.pid)
        tcp0 = tcp_mem_kib()
        poll = b"GET /listenToRecive.php?lastId=0 HTTP/1.1\r\nHost: x\r\n\r\n"
        socks = []
        for _ in range(200):
            s = small_window_socket(srv.port)
            s.sendall(poll * 4)
            socks.append(s)
        time.sleep(3)
        at3 = rss_kib(srv.pid)
        tcp3 = tcp_mem_kib()
        fd3 = fds(srv.pid)
        time.sleep(22)
        at25 = rss_kib(srv.pid)
        tcp25 = tcp_mem_kib()
        fd25 = fds(srv.pid)
        time.sleep(15)
        at40 = rss_kib(srv.pid)
        tcp40 = tcp_mem_kib()
        fd40 = fds(srv.pid)
        print(f"{label}: slow readers (200 x 4 pipelined ~600 KB answers, never read): "
              f"RSS {base // 1024} MiB idle, {at3 // 1024} / {at25 // 1024} / {at40 // 1024} MiB at 3 / 25 / 40 s; "
              f"kernel TCP memory +{(tcp3 - tcp0) // 1024} / +{(tcp25 - tcp0) // 1024} / +{(tcp40 - tcp0) // 1024} MiB; "
              f"server descriptors {fd3} / {fd25} / {fd40}")
        for s in socks:
            s.close()
    finally:
        srv.close()


def long_heads(binary, flags, label):
    srv = Server(binary, flags)
    try:
        base = rss_kib(srv.pid)
        socks = []
        line = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (400 * 1024)
        for _ in range(100):
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            s.setblocking(False)
            try:
                s.send(line)
            except (BlockingIOError, ConnectionError):
                pass
            socks.append(s)
        time.sleep(2)
        at2 = rss_kib(srv.pid)
        print(f"{label}: 100 unfinished 400 KB header lines: RSS {base // 1024} MiB idle, "
              f"{at2 // 1024} MiB with them (+{(at2 - base) // 100} KiB per connection)")
        for s in socks:
            s.close()
    finally:
        srv.close()


def silent_over_cap(binary, flags, label):
    srv = Server(binary, flags + ["--max-connections", "50"])
    try:
        base = fds(srv.pid)
        socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(450)]
        most = 0
        t0 = time.time()
        while time.time() - t0 < 3:
            most = max(most, fds(srv.pid))
            time.sleep(0.02)
        print(f"{label}: 50-cap server, 450 silent connections: {base} descriptors idle, "
              f"at most {most} within 3 s")
        for s in socks:
            s.close()
    finally:
        srv.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/debug/cometa")
    ap.add_argument("--label", default="cometa")
    ap.add_argument("--extra-flags", default="")
    ap.add_argument("--only", default="slow,heads,fds")
    a = ap.parse_args()
    flags = a.extra_flags.split()
    only = a.only.split(",")
    if "fds" in only:
        silent_over_cap(a.bin, flags, a.label)
    if "heads" in only:
        long_heads(a.bin, flags, a.label)
    if "slow" in only:
        slow_readers(a.bin, flags, a.label)


if __name__ == "__main__":
    sys.exit(main())
