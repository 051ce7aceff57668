#!/usr/bin/python3
"""browser.py - headless Chromium for the monitor's tests, through chromedriver's
W3C WebDriver HTTP API (urllib only; every request has a timeout).

  browser.py screenshot URL OUT.png       a page's screenshot (1000 px wide)
  browser.py check-image PNG COLOR...     not blank, and each #rrggbb COLOR
                                          covers at least 200 pixels
  browser.py dashboard URL NODE OUT.png   follows the live dashboard while NODE
                                          is killed (the test sends SIGKILL when
                                          this prints "ready"; then it must show
                                          NODE failed within 2 s and keep updating)

chromedriver is started here on a free port and stopped by its PID.
"""
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Browser:
    def __init__(self, width=1000, height=1400):
        self.port = free_port()
        self.proc = subprocess.Popen(["chromedriver", "--port=%d" % self.port],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = "http://127.0.0.1:%d" % self.port
        deadline = time.time() + 20
        while True:
            try:
                self.call("GET", "/status")
                break
            except OSError:
                if time.time() > deadline:
                    self.close()
                    raise RuntimeError("chromedriver did not start within 20 s")
                time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                         "--disable-dev-shm-usage", "--window-size=%d,%d" % (width, height)]}}}}
        self.session = self.call("POST", "/session", caps, timeout=60)["sessionId"]

    def call(self, method, path, body=None, timeout=20):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read().decode())["value"]

    def s(self, method, path, body=None):
        return self.call(method, "/session/%s%s" % (self.session, path), body)

    def open(self, url):
        self.s("POST", "/url", {"url": url})

    def js(self, script):
        return self.s("POST", "/execute/sync", {"script": script, "args": []})

    def screenshot(self, out):
        with open(out, "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))

    def close(self):
        try:
            if getattr(self, "session", None):
                self.call("DELETE", "/session/" + self.session, timeout=10)
        except OSError:
            pass
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def check_image(path, colors):
    from PIL import Image
    im = Image.open(path).convert("RGB")
    hist = {}
    for c in im.getdata():
        hist[c] = hist.get(c, 0) + 1
    w, h = im.size
    top = max(hist.values())
    if top > 0.995 * w * h:
        sys.exit("%s is blank (one colour covers %.1f%%)" % (path, 100.0 * top / (w * h)))
    for c in colors:
        rgb = tuple(int(c.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4))
        n = sum(v for k, v in hist.items() if max(abs(k[i] - rgb[i]) for i in range(3)) <= 6)
        if n < 200:
            sys.exit("%s: colour %s covers %d pixels: its chart is missing" % (path, c, n))
    print("%s: %dx%d, %d colours, charts present" % (path, w, h, len(hist)))


def follow_dashboard(url, node, out):
    """Waits for the dashboard to show NODE alive and steps passing, prints
    'ready', then expects NODE shown failed within 2 s of that line and the
    step (or time) shown to change afterwards."""
    b = Browser(1000, 1800)
    try:
        b.open(url)
        state = "return [document.querySelector('[data-node=\"%s\"] .state') ? " \
                "document.querySelector('[data-node=\"%s\"] .state').textContent : ''," \
                "document.getElementById('updated') ? document.getElementById('updated')" \
                ".textContent : ''," \
                "document.getElementById('step') ? document.getElementById('step')" \
                ".textContent : '']" % (node, node)
        deadline = time.time() + 30
        while True:
            st, upd, step = b.js(state)
            if st == "alive" and step not in ("", "0"):
                break
            if time.time() > deadline:
                sys.exit("dashboard never showed %s alive with steps (state %r, step %r)" %
                         (node, st, step))
            time.sleep(0.05)
        print("ready", flush=True)
        t0 = time.time()
        while True:
            st, upd, step = b.js(state)
            if st == "failed":
                break
            if time.time() - t0 > 2.0:
                sys.exit("dashboard did not show %s failed within 2 s (state %r)" % (node, st))
            time.sleep(0.05)
        seen = time.time() - t0
        print("failed shown after %.2f s" % seen, flush=True)
        first = upd
        deadline = time.time() + 5
        while b.js(state)[1] == first:
            if time.time() > deadline:
                sys.exit("dashboard stopped updating after the failure (still %r)" % first)
            time.sleep(0.05)
        time.sleep(1.0)  # one more refresh or two: the charts drawn with the failure
        b.screenshot(out)
        print("updated after the failure; screenshot %s" % out)
    finally:
        b.close()


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "screenshot" and len(sys.argv) == 4:
        b = Browser()
        try:
            b.open(sys.argv[2])
            height = b.js("return document.documentElement.scrollHeight")
            b.s("POST", "/window/rect", {"width": 1000, "height": min(int(height) + 40, 6000)})
            b.screenshot(sys.argv[3])
        finally:
            b.close()
    elif cmd == "check-image" and len(sys.argv) >= 3:
        check_image(sys.argv[2], sys.argv[3:])
    elif cmd == "dashboard" and len(sys.argv) == 5:
        follow_dashboard(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
