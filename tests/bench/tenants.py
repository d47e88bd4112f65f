#!/usr/bin/env python3
"""Figures for the tenant and client bounds (issue 14). Build first:
    cargo build --release
then:
    python3 tests/bench/tenants.py slowloris [--conns 300] [--timeout 2s]
        opens N connections that send half a request head, and meanwhile a normal client
        GETs a file in a loop; prints when the half ones were closed and the normal client's
        latencies.
    python3 tests/bench/tenants.py multirange [--mib 20] [--above 1MiB]
        `Range: bytes=0-0,-1` of a cold N MB file: time to the whole 206, and the bytes the
        proxy asked of Dropbox (from the emulator's log). Above `cache.range_passthrough_above`
        each part is its own upstream Range; at or below it the file is filled through the
        cache.
    python3 tests/bench/tenants.py misses [--names 2000]
        lists a folder, then GETs N random names under it; prints the Dropbox calls they cost.
Each starts `dropcache emulator --admin` over a temp directory and `dropcache serve` in front.
"""
import argparse
import contextlib
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request

from spawn import BIN, start


@contextlib.contextmanager
def running(server_keys="", files=None, cache_keys=""):
    """A temp dir with `files` ({name: bytes}) as the Dropbox, the emulator and the proxy
    over it; yields (emulator URL, proxy URL); stops both and removes the dir after."""
    work = tempfile.mkdtemp(prefix="dropcache-bench-")
    procs = []
    try:
        os.makedirs(os.path.join(work, "dropbox"))
        for name, data in (files or {}).items():
            with open(os.path.join(work, "dropbox", name), "wb") as f:
                f.write(data)
        emu, emu_url, proxy, url = setup(work, server_keys, cache_keys)
        procs = [proxy, emu]
        yield emu_url, url
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


def setup(work, server_keys, cache_keys):
    root = os.path.join(work, "dropbox")
    os.makedirs(os.path.join(root, "dir"), exist_ok=True)
    with open(os.path.join(root, "a.txt"), "w") as f:
        f.write("hello")
    with open(os.path.join(root, "dir", "x.txt"), "w") as f:
        f.write("x")
    emu, emu_url = start(["emulator", "--listen", "127.0.0.1:0", "--root", root, "--admin"],
                         env={"DROPCACHE_EMULATOR_TOKEN": "bench-token"})
    cfg = os.path.join(work, "proxy.toml")
    with open(cfg, "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:0"\n{server_keys}'
                f'[log]\nlevel = "warn"\naccess_log = false\n'
                f'[dropbox]\napi_url = "{emu_url}"\ncontent_url = "{emu_url}"\n'
                f'notify_url = "{emu_url}"\n'
                f'[store]\npath = "{os.path.join(work, "store")}"\n'
                f'[cache]\ndir = "{os.path.join(work, "cache")}"\nmin_free = "0B"\n{cache_keys}'
                'metadata_ttl = "10m"\n[feed]\nenabled = false\n'
                '[[account]]\nalias = "b"\nroot = ""\naccess_token = "bench-token"\n')
    proxy, url = start(["serve", "--config", cfg])
    return emu, emu_url, proxy, url


def emu_log(emu_url, reset=False):
    req = urllib.request.Request(emu_url + "/_emulator/log", method="DELETE" if reset else "GET")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def host_port(url):
    hp = url.split("//", 1)[1]
    host, port = hp.rsplit(":", 1)
    return host, int(port)


def slowloris(conns, timeout):
    with running(f'header_read_timeout = "{timeout}"\n') as (_, url):
        host, port = host_port(url)
        with urllib.request.urlopen(url + "/b/a.txt", timeout=10) as r:
            assert r.read() == b"hello"
        half, opened = [], []
        for _ in range(conns):
            s = socket.create_connection((host, port))
            opened.append(time.monotonic())
            s.sendall(b"GET /b/a.txt HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
            half.append(s)
        closed = [None] * conns

        def wait_close(i, s):
            s.settimeout(30)
            try:
                while s.recv(4096):
                    pass
            except OSError:
                pass
            closed[i] = time.monotonic() - opened[i]

        threads = [threading.Thread(target=wait_close, args=(i, s)) for i, s in enumerate(half)]
        for t in threads:
            t.start()
        lat = []
        c = http.client.HTTPConnection(host, port, timeout=10)
        while any(t.is_alive() for t in threads):
            t1 = time.monotonic()
            c.request("GET", "/b/a.txt")
            r = c.getresponse()
            assert r.status == 200 and r.read() == b"hello"
            lat.append(time.monotonic() - t1)
        for t in threads:
            t.join()
        ok = [x for x in closed if x is not None]
        print(f"{conns} half-sent heads (header_read_timeout {timeout}): each closed "
              f"{min(ok):.2f} s to {max(ok):.2f} s after it opened ({len(ok)} of {conns}; "
              f"opening them took {opened[-1] - opened[0]:.2f} s)")
        lat.sort()
        print(f"a normal client meanwhile: {len(lat)} GETs, all 200; latency p50 "
              f"{statistics.median(lat) * 1000:.2f} ms, max {lat[-1] * 1000:.2f} ms")


def multirange(mib, above):
    keys = f'range_passthrough_above = "{above}"\n' if above else ""
    files = {"big.bin": random.randbytes(mib * 1_000_000)}
    with running(files=files, cache_keys=keys) as (emu_url, url):
        host, port = host_port(url)
        emu_log(emu_url, reset=True)
        c = http.client.HTTPConnection(host, port, timeout=60)
        t = time.monotonic()
        c.request("GET", "/b/big.bin", headers={"Range": "bytes=0-0,-1"})
        r = c.getresponse()
        body = r.read()
        took = time.monotonic() - t
        log = emu_log(emu_url)
        assert r.status == 206, r.status
        rule = f"range_passthrough_above {above or 'default (32MiB)'}"
        print(f"bytes=0-0,-1 of a cold {mib} MB file, {rule}: 206 ({len(body)} bytes) in "
              f"{took * 1000:.1f} ms; Dropbox sent {log['body_bytes']} body bytes in "
              f"{log['routes'].get('files/download', {}).get('total', 0)} downloads")


def misses(names):
    with running() as (emu_url, url):
        host, port = host_port(url)
        c = http.client.HTTPConnection(host, port, timeout=10)
        c.request("GET", "/b/dir/")
        r = c.getresponse()
        r.read()
        assert r.status == 200
        emu_log(emu_url, reset=True)
        t = time.monotonic()
        for _ in range(names):
            c.request("GET", f"/b/dir/{random.randbytes(8).hex()}.jpg")
            r = c.getresponse()
            r.read()
            assert r.status == 404, r.status
        took = time.monotonic() - t
        log = emu_log(emu_url)
        print(f"{names} random names under a listed folder: all 404 in {took:.2f} s, "
              f"{log['total']} Dropbox calls")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("slowloris")
    s.add_argument("--conns", type=int, default=300)
    s.add_argument("--timeout", default="2s")
    m = sub.add_parser("multirange")
    m.add_argument("--mib", type=int, default=20)
    m.add_argument("--above", default="", help="cache.range_passthrough_above, e.g. 1MiB")
    n = sub.add_parser("misses")
    n.add_argument("--names", type=int, default=2000)
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: run `cargo build --release` first")
    if a.cmd == "slowloris":
        slowloris(a.conns, a.timeout)
    elif a.cmd == "multirange":
        multirange(a.mib, a.above)
    else:
        misses(a.names)


if __name__ == "__main__":
    main()
