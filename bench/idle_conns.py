#!/usr/bin/env python3
"""Opens N keep-alive connections to HOST:PORT, sends one `GET /` on each and
reads the answer, then keeps them open and idle until stdin closes (or a line
arrives). Prints `ready N` once all answered. For bench/proxy.sh: RSS per
1,000 idle keep-alive connections.

usage: idle_conns.py PORT [N=1000] [HOST=127.0.0.1]
"""
import resource
import socket
import sys


def main() -> None:
    port = int(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    conns = []
    for _ in range(n):
        s = socket.create_connection((host, port))
        s.sendall(request)
        conns.append(s)
    for s in conns:
        answer = b""
        # Head, then the (small, Content-Length) body.
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(65536)
            if not chunk:
                sys.exit(f"connection closed before an answer: {answer!r}")
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
             if line.lower().startswith(b"content-length:")),
            0,
        )
        while len(body) < length:
            body += s.recv(65536)
        if not head.startswith(b"HTTP/1.1 200"):
            sys.exit(f"not 200: {head[:80]!r}")
    print(f"ready {len(conns)}", flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main()
