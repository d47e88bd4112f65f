"""A headless Chromium driven over the DevTools protocol with nothing but Python's standard
library (a small WebSocket client below), for the browser tests (tests/browser.rs): each
script imports `Browser` and prints one JSON line of what it saw."""
import base64, json, os, shutil, socket, struct, subprocess, tempfile, time, urllib.request

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
         "--remote-debugging-port=0", "--window-size=1200,900"]


class WebSocket:
    """RFC 6455, client side, text frames: enough for the DevTools protocol."""

    def __init__(self, url):
        assert url.startswith("ws://"), url
        hostport, path = url[5:].split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the DevTools socket closed during the handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(head.decode(errors="replace"))

    def send(self, text):
        data = text.encode()
        n = len(data)
        header = bytes([0x81])
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("the DevTools socket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            op = b0 & 0x0F
            if op == 0x9:  # ping
                continue
            if op == 0x8:
                raise ConnectionError("the DevTools socket was closed")
            message += payload
            if b0 & 0x80:
                return message.decode()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Browser:
    def __init__(self, executable=None):
        exe = executable or os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
        self.profile = tempfile.mkdtemp(prefix="dropcache-chromium-")
        self.proc = subprocess.Popen([exe] + FLAGS + [f"--user-data-dir={self.profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 20
        lines = []
        while time.time() < deadline:
            if os.path.exists(port_file):
                lines = open(port_file).read().split("\n")
                if len(lines) >= 2 and lines[0].strip():
                    break
            time.sleep(0.05)
        else:
            self.close()
            raise RuntimeError("chromium did not start")
        port = lines[0].strip()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
        page = json.load(urllib.request.urlopen(req, timeout=10))
        self.ws = WebSocket(page["webSocketDebuggerUrl"])
        self.next_id, self.events = 1, []
        for domain in ("Page", "Network", "Runtime"):
            self.send(f"{domain}.enable")

    def send(self, method, **params):
        i = self.next_id
        self.next_id += 1
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, method, since, pred=lambda p: True, timeout=15):
        """The first event `method` at or after index `since` matching `pred`."""
        deadline = time.time() + timeout
        i = since
        while True:
            while i < len(self.events):
                e = self.events[i]
                i += 1
                if e["method"] == method and pred(e["params"]):
                    return e["params"]
            if time.time() > deadline:
                raise TimeoutError(method)
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)

    def settle(self, ms=200):
        """Reads events for a moment (subresources after the load event)."""
        self.ws.sock.settimeout(ms / 1000)
        try:
            while True:
                msg = json.loads(self.ws.recv())
                if "method" in msg:
                    self.events.append(msg)
        except (socket.timeout, TimeoutError):
            pass
        finally:
            self.ws.sock.settimeout(30)

    def go(self, url=None):
        """Navigates (or reloads) and waits for the load; the main document's response."""
        since = len(self.events)
        if url:
            self.send("Page.navigate", url=url)
        else:
            self.send("Page.reload")
        self.wait_for("Page.loadEventFired", since)
        self.settle()
        docs = [e["params"]["response"] for e in self.events[since:]
                if e["method"] == "Network.responseReceived" and e["params"].get("type") == "Document"]
        return docs[-1]

    def evaluate(self, expression):
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return r["result"].get("value")

    def responses(self, since):
        """Responses from index `since` on: url, status, and whether the browser's own cache
        answered (memory or disk) rather than the server."""
        cached = {e["params"]["requestId"] for e in self.events[since:]
                  if e["method"] == "Network.requestServedFromCache"}
        return [{"url": e["params"]["response"]["url"], "status": e["params"]["response"]["status"],
                 "from_cache": e["params"]["requestId"] in cached
                 or bool(e["params"]["response"].get("fromDiskCache"))}
                for e in self.events[since:] if e["method"] == "Network.responseReceived"]

    def screenshot(self, path):
        data = self.send("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        if getattr(self, "ws", None):
            self.ws.close()
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
