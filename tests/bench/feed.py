#!/usr/bin/env python3
"""Figures of the change feed (issue 5), with the emulator's request log as the witness.
Build first:
    cargo build --release
then:
    python3 tests/bench/feed.py propagation [--instances 2] [--changes 20]
        N `dropcache serve` processes on one redis-server, feed on, metadata_ttl 1h; each
        change is an upload through the emulator's API, and the time until every instance
        serves the new version is measured (p50 / p95 / max per instance).
    python3 tests/bench/feed.py unchanged [--requests 10000]
        one instance, feed on, metadata_ttl 1s; N requests over an unchanged folder (its files
        and its listing) lasting longer than the TTL; prints the Dropbox calls beyond the feed.
Needs redis-server on PATH.
"""
import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from spawn import BIN, free_port, start
TOKEN = "bench-token"


def redis_server(work):
    port = free_port()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", work],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.01)
    sys.exit("redis-server did not start")


def config(path, emulator, work, redis=None, ttl="1h"):
    store = f'redis_url = "{redis}"' if redis else f'path = "{work}/store"'
    with open(path, "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:0"\n[dropbox]\napi_url = "{emulator}"\n'
                f'content_url = "{emulator}"\nnotify_url = "{emulator}"\n'
                f'[store]\n{store}\n'
                f'[cache]\ndir = "{work}/cache"\nmetadata_ttl = "{ttl}"\nmin_free = "0B"\n'
                '[feed]\nenabled = true\nlease_ttl = "3s"\n'
                f'[[account]]\nalias = "bench"\nroot = ""\naccess_token = "{TOKEN}"\n')


def upload(emulator, path, data):
    arg = json.dumps({"path": path, "mode": "overwrite"})
    req = urllib.request.Request(emulator + "/2/files/upload", data=data, method="POST", headers={
        "Authorization": f"Bearer {TOKEN}", "Dropbox-API-Arg": arg,
        "Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def emulator_log(emulator):
    with urllib.request.urlopen(emulator + "/_emulator/log", timeout=10) as r:
        return json.load(r)


class Client:
    """A keep-alive HTTP/1.1 connection to one instance."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)

    def get(self, path, method="GET"):
        self.conn.request(method, path)
        r = self.conn.getresponse()
        return r.status, r.read()


def start_emulator(work):
    root = os.path.join(work, "dropbox")
    os.makedirs(root)
    return start(["emulator", "--listen", "127.0.0.1:0", "--root", root, "--admin"],
                 env={"DROPCACHE_EMULATOR_TOKEN": TOKEN})


def wait_live():
    """The first GET after the feed is up; the feed's start is not observable from outside,
    so give the lease and the first longpoll a moment."""
    time.sleep(1.0)


def propagation(instances, changes):
    work = tempfile.mkdtemp(prefix="dropcache-bench-")
    procs = []
    try:
        emu, emu_url = start_emulator(work)
        procs.append(emu)
        rp, redis = redis_server(work)
        procs.append(rp)
        upload(emu_url, "/site/page.txt", b"v0")
        urls = []
        for i in range(instances):
            d = os.path.join(work, f"i{i}")
            os.makedirs(d)
            cfg = os.path.join(d, "proxy.toml")
            config(cfg, emu_url, d, redis=redis)
            p, url = start(["serve", "--config", cfg], log=open(os.path.join(d, "log"), "w"))
            procs.append(p)
            urls.append(url)
        wait_live()
        clients = [Client(u) for u in urls]
        for c in clients:
            assert c.get("/bench/site/page.txt") == (200, b"v0")
        lat = [[] for _ in urls]
        for n in range(1, changes + 1):
            body = f"v{n}".encode()
            t0 = time.monotonic()
            upload(emu_url, "/site/page.txt", body)

            def watch(i):
                while time.monotonic() - t0 < 30:
                    if clients[i].get("/bench/site/page.txt") == (200, body):
                        lat[i].append(time.monotonic() - t0)
                        return
                    time.sleep(0.002)
                lat[i].append(float("inf"))

            threads = [threading.Thread(target=watch, args=(i,)) for i in range(instances)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        everyone = [max(ls) for ls in zip(*lat)]
        for i, ls in enumerate(lat):
            s = sorted(ls)
            print(f"instance {i}: {changes} changes, visible after p50 {s[len(s) // 2] * 1000:.0f} ms, "
                  f"p95 {s[int(len(s) * 0.95) - 1] * 1000:.0f} ms, max {s[-1] * 1000:.0f} ms")
        within = sum(1 for t in everyone if t <= 1.0)
        print(f"on every instance: max {max(everyone) * 1000:.0f} ms; "
              f"{within}/{changes} changes served new everywhere within 1 s")
        log = emulator_log(emu_url)
        routes = log["routes"]
        print("emulator calls: " + ", ".join(f"{k} {v['total']}" for k, v in routes.items()))
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


def unchanged(requests):
    work = tempfile.mkdtemp(prefix="dropcache-bench-")
    procs = []
    try:
        emu, emu_url = start_emulator(work)
        procs.append(emu)
        for i in range(10):
            upload(emu_url, f"/gallery/{i}.jpg", f"photo {i}".encode() * 100)
        cfg = os.path.join(work, "proxy.toml")
        config(cfg, emu_url, work, ttl="1s")
        p, url = start(["serve", "--config", cfg])
        procs.append(p)
        wait_live()
        paths = [f"/bench/gallery/{i}.jpg" for i in range(10)] + ["/bench/gallery/"]
        c = Client(url)
        for path in paths:
            assert c.get(path)[0] == 200
        before = emulator_log(emu_url)
        t0 = time.monotonic()
        lanes = 8
        counts = [0] * lanes

        def lane(k):
            cl = Client(url)
            for n in range(k, requests, lanes):
                status, _ = cl.get(paths[n % len(paths)])
                counts[k] += status == 200

        threads = [threading.Thread(target=lane, args=(k,)) for k in range(lanes)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - t0
        after = emulator_log(emu_url)

        def non_feed(log):
            return log["total"] - log["routes"].get("files/list_folder/longpoll", {}).get("total", 0)

        print(f"{requests} requests ({sum(counts)} OK) over an unchanged folder in {took:.2f} s "
              f"(metadata_ttl 1s, so a TTL cache would have revalidated ~{int(took) * len(paths)} times)")
        print(f"Dropbox calls beyond the feed during the run: {non_feed(after) - non_feed(before)} "
              f"(longpolls: {after['routes'].get('files/list_folder/longpoll', {}).get('total', 0)})")
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("propagation")
    p.add_argument("--instances", type=int, default=2)
    p.add_argument("--changes", type=int, default=20)
    u = sub.add_parser("unchanged")
    u.add_argument("--requests", type=int, default=10_000)
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"build first: cargo build --release ({BIN} is missing)")
    if a.cmd == "propagation":
        propagation(a.instances, a.changes)
    else:
        unchanged(a.requests)


if __name__ == "__main__":
    main()
