#!/usr/bin/env python3
"""N dashboard pages' event streams for SECONDS: each line printed as
`t=<ns> n=<i> …` is timed from print to arrival. Prints the median and p99
latency in ms, lines received per page, and whether any page missed a line.

usage: dashboard_client.py URL TOKEN PAGES SECONDS
"""
import json, socket, sys, threading, time
from urllib.parse import urlparse

url, token, pages, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
u = urlparse(url)
lat = [[] for _ in range(pages)]
seen = [set() for _ in range(pages)]
start_ns = time.time_ns()
stop_at = time.monotonic() + seconds


def page(i):
    s = socket.create_connection((u.hostname, u.port))
    s.settimeout(0.5)
    s.sendall(("GET %sapi/stream HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n" % (u.path, u.netloc, token)).encode())
    buf = b""
    while time.monotonic() < stop_at:
        try:
            chunk = s.recv(1 << 20)
        except socket.timeout:
            continue
        if not chunk:
            break
        now = time.time_ns()
        buf += chunk
        # Frames end with a blank line; chunk-size lines of the transfer
        # encoding sit between them and are not `data:` lines.
        while b"\n\n" in buf:
            frame, buf = buf.split(b"\n\n", 1)
            if b"event: logs" not in frame:
                continue
            for line in frame.split(b"\n"):
                if not line.startswith(b"data: "):
                    continue
                for rec in json.loads(line[6:]):
                    text = rec.get("line", "")
                    if not text.startswith("t="):
                        continue
                    t, n = text.split()[:2]
                    t = int(t[2:])
                    if t < start_ns:
                        continue  # history the page was given on connecting
                    lat[i].append((now - t) / 1e6)
                    seen[i].add(int(n[2:]))
    s.close()


threads = [threading.Thread(target=page, args=(i,)) for i in range(pages)]
for t in threads:
    t.start()
for t in threads:
    t.join()
alll = sorted(x for l in lat for x in l)
if not alll:
    print("no line arrived")
    sys.exit(1)
print("p50 %.1f" % alll[len(alll) // 2])
print("p99 %.1f" % alll[min(len(alll) - 1, int(len(alll) * 0.99))])
print("lines/page %s" % " ".join(str(len(l)) for l in lat))
gaps = []
for s_ in seen:
    if s_:
        lo, hi = min(s_), max(s_)
        gaps.append(hi - lo + 1 - len(s_))
print("missed %s" % " ".join(map(str, gaps)))
