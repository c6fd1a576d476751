#!/usr/bin/env python3
"""One real dashboard page in headless Chromium (driven through
chromedriver's WebDriver API): the page's own EventSource on the dashboard's
stream times each `t=<ns> n=<i>` line from print to arrival in the browser,
for SECONDS. Prints the median and p99 latency in ms and the lines seen.

usage: dashboard_browser.py LOGIN_URL SECONDS
"""
import json, socket, subprocess, sys, tempfile, time, urllib.request

login, seconds = sys.argv[1], float(sys.argv[2])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


port = free_port()
driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
profile = tempfile.mkdtemp()


def call(method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.load(r)["value"]


try:
    deadline = time.monotonic() + 20
    while True:
        try:
            call("GET", "/status")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    session = call("POST", "/session", {"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            f"--user-data-dir={profile}"]}}}})["sessionId"]
    s = f"/session/{session}"
    call("POST", f"{s}/url", {"url": login})
    # The page itself is open too (its own stream); this one measures.
    call("POST", f"{s}/execute/sync", {"args": [], "script": """
        window.lat = []; const start = Date.now();
        const es = new EventSource('api/stream');
        es.addEventListener('logs', (m) => {
          const now = Date.now();
          for (const r of JSON.parse(m.data)) {
            if (!r.line || !r.line.startsWith('t=')) continue;
            const t = Number(r.line.slice(2, r.line.indexOf(' ')).slice(0, -6));
            if (t >= start) window.lat.push(now - t);
          }
        });
        return true;"""})
    time.sleep(seconds)
    lat = sorted(call("POST", f"{s}/execute/sync", {"args": [], "script": "return window.lat;"}))
    call("DELETE", s)
finally:
    driver.kill()
if not lat:
    print("no line arrived")
    sys.exit(1)
print("p50 %.1f" % lat[len(lat) // 2])
print("p99 %.1f" % lat[min(len(lat) - 1, int(len(lat) * 0.99))])
print("lines %d" % len(lat))
