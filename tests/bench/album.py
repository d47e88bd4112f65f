#!/usr/bin/env python3
"""Album figures: the first and the second `?album` answer for a folder of N photos (time,
Dropbox calls, bytes Dropbox sent), with dropcache (release build, embedded store) in front of
`dropcache emulator --admin --latency L` (a round trip per call, as to Dropbox).

The photos are the demo's generated ones (`dropcache demo` writes them), each made distinct by
a JPEG comment segment, so every one has its own content hash; each is padded to about 1 MiB
so a whole-file read would show in the bytes. Prints a markdown table.

usage: python3 tests/bench/album.py [--bin target/release/dropcache] [--photos 500] [--latency 20ms]
"""
import argparse, json, os, re, subprocess, sys, tempfile, time, urllib.request

import spawn


def start(cmd, what):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    m = re.search(r"listening on (http://\S+)", line)
    if not m:
        p.kill()
        sys.exit(f"{what} did not start: {line!r}")
    return p, m.group(1)


def get_json(url):
    with urllib.request.urlopen(url, timeout=600) as r:
        return json.load(r)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--bin", default="target/release/dropcache")
    a.add_argument("--photos", type=int, default=500)
    a.add_argument("--latency", default="20ms")
    args = a.parse_args()
    bin_ = os.path.abspath(args.bin)
    d = tempfile.mkdtemp(prefix="dropcache-album-")
    procs = []
    try:
        # The demo's photos, as seeds.
        demo, _ = start([bin_, "demo", "--listen", "127.0.0.1:0", "--dir", os.path.join(d, "demo")], "the demo")
        demo.terminate()
        demo.wait(10)
        seeds_dir = os.path.join(d, "demo", "dropbox", "site", "photos")
        seeds = [open(os.path.join(seeds_dir, n), "rb").read()
                 for n in sorted(os.listdir(seeds_dir)) if n.startswith("photo-")]
        root = os.path.join(d, "dropbox")
        os.makedirs(os.path.join(root, "photos"))
        for i in range(args.photos):
            seed = seeds[i % len(seeds)]
            # SOI, a COM segment naming the photo, the rest; then padding after EOI.
            com = f"photo {i}".encode()
            body = seed[:2] + b"\xff\xfe" + (len(com) + 2).to_bytes(2, "big") + com + seed[2:]
            body += os.urandom(max(0, (1 << 20) - len(body)))
            with open(os.path.join(root, "photos", f"p-{i:04}.jpg"), "wb") as f:
                f.write(body)
        emu_proc, emu = start([bin_, "emulator", "--listen", "127.0.0.1:0", "--root", root, "--admin",
                               "--token", "bench-token", "--latency", args.latency], "the emulator")
        procs.append(emu_proc)
        config = os.path.join(d, "dropcache.toml")
        with open(config, "w") as f:
            f.write(f"""[server]
listen = "127.0.0.1:0"
[log]
access_log = false
[dropbox]
api_url = "{emu}"
content_url = "{emu}"
notify_url = "{emu}"
oauth_url = "{emu}"
max_concurrent = 64
max_concurrent_per_account = 16
[store]
path = "{os.path.join(d, 'store')}"
[cache]
dir = "{os.path.join(d, 'cache')}"
[[account]]
alias = "bench"
root = ""
access_token = "bench-token"
""")
        proxy_proc, proxy = start([bin_, "serve", "--config", config], "dropcache")
        procs.append(proxy_proc)
        rows = []
        for which in ("first", "second"):
            before = get_json(f"{emu}/_emulator/log")
            t = time.monotonic()
            album = get_json(f"{proxy}/bench/photos/?album")
            took = time.monotonic() - t
            after = get_json(f"{emu}/_emulator/log")
            calls = after["total"] - before["total"]
            by_route = {r: after["routes"][r]["total"] - before["routes"].get(r, {"total": 0})["total"]
                        for r in after["routes"]}
            with_facts = sum(1 for i in album["images"] if "width" in i and "placeholder" in i)
            rows.append((which, len(album["images"]), with_facts, took, calls,
                         by_route.get("files/download", 0), by_route.get("files/get_thumbnail_v2", 0),
                         after["body_bytes"] - before["body_bytes"]))
        print(f"{args.photos} photos of about 1 MiB each; emulator latency {args.latency} per call\n")
        print("| answer | images | with facts | time s | Dropbox calls | downloads (Range) | thumbnails | bytes from Dropbox |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for which, n, facts, took, calls, dl, th, b in rows:
            print(f"| {which} | {n} | {facts} | {took:.2f} | {calls} | {dl} | {th} | {b / 1024:,.0f} KiB |")
    finally:
        spawn.stop(procs, remove=d)


if __name__ == "__main__":
    main()
