#!/usr/bin/env python3
"""Edit to live: how long after an edit in Dropbox the site serves it, and whether that first
answer is a cache HIT (warm on change). Starts `dropcache demo` (a release build), then edits
`about.html` of its site N times, each way:

  api   an upload through the emulator's Dropbox API (as the Dropbox client would sync it)
  disk  a plain file write into the emulator's root (an editor's save; the emulator watches it)

and polls GET /www/about every 2 ms until the new bytes come back. Prints a markdown table.

usage: python3 tests/bench/warm.py [--bin target/release/dropcache] [--edits 20]
"""
import argparse, json, os, re, shutil, statistics, subprocess, sys, tempfile, time, urllib.request


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read(), r.headers.get("x-cache-status")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default="target/release/dropcache")
    p.add_argument("--edits", type=int, default=20)
    a = p.parse_args()
    d = tempfile.mkdtemp(prefix="dropcache-warm-")
    proc = subprocess.Popen([os.path.abspath(a.bin), "demo", "--listen", "127.0.0.1:0", "--dir", d],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        banner = ""
        while "Ctrl-C" not in banner:
            line = proc.stdout.readline()
            if not line:
                sys.exit("the demo did not start")
            banner += line
        proxy = re.search(r"listening on (http://\S+)", banner).group(1)
        emu = re.search(r"emulator at (http://[^),]+)", banner).group(1)
        page = f"{proxy}/www/about"
        get(page)
        time.sleep(1)  # the change feed goes live
        rows = []
        for how in ("api", "disk"):
            took, hits = [], 0
            for i in range(a.edits):
                body = f"<!DOCTYPE html><title>About</title><p>edit {how} {i} {time.time()}</p>\n".encode()
                start = time.monotonic()
                if how == "api":
                    req = urllib.request.Request(f"{emu}/2/files/upload", data=body, method="POST", headers={
                        "Authorization": "Bearer demo-token", "Content-Type": "application/octet-stream",
                        "Dropbox-API-Arg": json.dumps({"path": "/site/about.html", "mode": "overwrite"})})
                    urllib.request.urlopen(req, timeout=10).read()
                else:
                    with open(os.path.join(d, "dropbox", "site", "about.html"), "wb") as f:
                        f.write(body)
                while True:
                    got, status = get(page)
                    if got == body:
                        break
                    time.sleep(0.002)
                took.append((time.monotonic() - start) * 1000)
                hits += status == "HIT"
                time.sleep(0.2)
            took.sort()
            rows.append((how, a.edits, statistics.median(took), took[int(len(took) * 0.9) - 1], hits))
        print("| edit | edits | edit to live, p50 ms | p90 ms | first new answer a HIT |")
        print("|---|---:|---:|---:|---:|")
        for how, n, p50, p90, hits in rows:
            print(f"| {how} | {n} | {p50:.0f} | {p90:.0f} | {hits} of {n} |")
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
