#!/usr/bin/env python3
"""Benchmarks of the body cache, printing figures (issue 4). Build first:
    cargo build --release
then:
    python3 tests/bench/body_cache.py restart [--blobs 100000]
        fills a cache directory with N blobs, starts `dropcache serve` on it, and prints the
        time from spawn to the first 200 from /readyz (the index is rebuilt before that).
    python3 tests/bench/body_cache.py rss [--mib 1024]
        serves a cold N MiB file through the proxy (emulator in front of a directory) and
        prints the proxy's peak RSS (VmHWM from /proc) and the throughput.
"""
import argparse
import hashlib
import os
import random
import shutil
import sys
import tempfile
import time
import urllib.request

from spawn import BIN, start


def config(path, emulator, cache, store, **cache_keys):
    extra = "".join(f'{k} = "{v}"\n' for k, v in cache_keys.items())
    with open(path, "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:0"\n[dropbox]\napi_url = "{emulator}"\n'
                f'content_url = "{emulator}"\n[store]\npath = "{store}"\n'
                f'[cache]\ndir = "{cache}"\n{extra}'
                '[[account]]\nalias = "bench"\nroot = ""\naccess_token = "bench-token"\n')


def restart(n):
    work = tempfile.mkdtemp(prefix="dropcache-bench-")
    try:
        cache = os.path.join(work, "cache")
        t = time.monotonic()
        for i in range(n):
            h = hashlib.sha256(i.to_bytes(8, "big")).hexdigest()
            d = os.path.join(cache, h[:2], h[2:4])
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, h), "wb") as f:
                f.write(b"x" * 64)
        os.makedirs(os.path.join(cache, "tmp"), exist_ok=True)
        print(f"created {n} blobs in {time.monotonic() - t:.1f} s")
        cfg = os.path.join(work, "proxy.toml")
        # No emulator needed: readiness does not call Dropbox.
        config(cfg, "http://127.0.0.1:9", cache, os.path.join(work, "store"),
               max_size="10GiB", min_free="0B")
        # Drop the page cache's advantage as far as an unprivileged run can: none; report both.
        for run in ("first", "second"):
            t0 = time.monotonic()
            p, url = start(["serve", "--config", cfg])
            while True:
                try:
                    with urllib.request.urlopen(url + "/readyz", timeout=5) as r:
                        if r.status == 200:
                            break
                except OSError:
                    time.sleep(0.002)
            ready = time.monotonic() - t0
            p.terminate()
            p.wait()
            print(f"restart with {n} blobs ({run} run): ready in {ready:.3f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def rss(mib):
    work = tempfile.mkdtemp(prefix="dropcache-bench-")
    try:
        root = os.path.join(work, "dropbox")
        os.makedirs(root)
        with open(os.path.join(root, "big.bin"), "wb") as f:
            block = random.randbytes(1 << 20)
            for _ in range(mib):
                f.write(block)
        emu, emu_url = start(["emulator", "--listen", "127.0.0.1:0", "--root", root],
                             env={"DROPCACHE_EMULATOR_TOKEN": "bench-token"})
        cfg = os.path.join(work, "proxy.toml")
        config(cfg, emu_url, os.path.join(work, "cache"), os.path.join(work, "store"),
               max_size=f"{2 * mib}MiB", min_free="0B")
        proxy, url = start(["serve", "--config", cfg])
        try:
            before = peak_rss_kib(proxy.pid)
            for label in ("cold (fill from Dropbox)", "warm (from the disk cache)"):
                t = time.monotonic()
                with urllib.request.urlopen(url + "/bench/big.bin", timeout=600) as r:
                    status = r.headers["X-Cache-Status"]
                    total = 0
                    while chunk := r.read(1 << 20):
                        total += len(chunk)
                took = time.monotonic() - t
                assert total == mib << 20, (total, mib << 20)
                print(f"{label}: {mib} MiB, X-Cache-Status {status}, {took:.2f} s "
                      f"({mib / took:.0f} MiB/s), proxy peak RSS so far "
                      f"{peak_rss_kib(proxy.pid) / 1024:.1f} MiB")
            print(f"proxy peak RSS: {peak_rss_kib(proxy.pid) / 1024:.1f} MiB "
                  f"(at start {before / 1024:.1f} MiB)")
        finally:
            proxy.terminate()
            emu.terminate()
            proxy.wait()
            emu.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("restart")
    r.add_argument("--blobs", type=int, default=100_000)
    m = sub.add_parser("rss")
    m.add_argument("--mib", type=int, default=1024)
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: run `cargo build --release` first")
    if a.cmd == "restart":
        restart(a.blobs)
    else:
        rss(a.mib)


if __name__ == "__main__":
    main()
