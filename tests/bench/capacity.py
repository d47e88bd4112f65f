#!/usr/bin/env python3
"""The per-path and per-change costs that deploy/SCALING.md builds on, measured on a fleet
(tests/bench/fleet.py) of one instance on one redis-server, feed on:

  * Redis memory per cached path: N files in folders of 100 are each asked for once (and
    every folder listed once); Redis's used_memory and key count before and after.
  * Dropbox calls per miss (a file never asked for) and per hit (none, once cached).
  * Dropbox calls per change: C uploads, each file asked for again after its change.
  * The feed's own calls while nothing changes, per account and minute.

    cargo build --release
    python3 tests/bench/capacity.py [--files 20000] [--changes 200] [--quiet-secs 60]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from fleet import ALIAS, BIN, Conn, Fleet


def redis_info(port):
    out = subprocess.run(["redis-cli", "-p", str(port), "info", "memory"],
                         capture_output=True, text=True).stdout
    used = int(next(l.split(":")[1] for l in out.splitlines() if l.startswith("used_memory:")))
    keys = int(subprocess.run(["redis-cli", "-p", str(port), "dbsize"],
                              capture_output=True, text=True).stdout.strip())
    return used, keys


def calls(log, skip_longpoll=True):
    return sum(r["total"] for name, r in log["routes"].items()
               if not (skip_longpoll and name == "files/list_folder/longpoll"))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--quiet-secs", type=float, default=60)
    args = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: cargo build --release (or set DROPCACHE_BIN)")
    work = tempfile.mkdtemp(prefix="dropcache-capacity-")
    names = [f"/photos/{i // 100:04d}/img_{i:06d}.jpg" for i in range(args.files)]

    def populate(root):
        for name in names:
            os.makedirs(os.path.dirname(root + name), exist_ok=True)
            with open(root + name, "wb") as f:
                f.write(os.urandom(200))

    fleet = Fleet(work, n=1, hot=0, cold=0, metadata_ttl="1h", populate=populate)
    out = {}
    try:
        time.sleep(2.0)  # the feed's lease and first longpoll
        port = fleet.redis.ports[0]
        used0, keys0 = redis_info(port)
        log0 = fleet.log()
        c = Conn(f"127.0.0.1:{fleet.ports[0]}")
        t0 = time.time()
        for n in names:
            status, _, _ = c.get(f"/{ALIAS}{n}")
            assert status == 200, (n, status)
        miss_secs = time.time() - t0
        folders = sorted({os.path.dirname(n) for n in names})
        for d in folders:
            assert c.get(f"/{ALIAS}{d}/", {"Accept": "application/json"})[0] == 200
        log1 = fleet.log()
        used1, keys1 = redis_info(port)
        out["paths"] = len(names)
        out["folders"] = len(folders)
        out["redis_bytes_per_path"] = round((used1 - used0) / (len(names) + len(folders)))
        out["redis_keys_per_path"] = round((keys1 - keys0) / (len(names) + len(folders)), 2)
        out["dropbox_calls_per_miss"] = round((calls(log1) - calls(log0)) / len(names), 2)
        out["miss_ms_serial"] = round(miss_secs * 1000 / len(names), 2)
        # Hits: every file again, no call.
        for n in names[:2000]:
            assert c.get(f"/{ALIAS}{n}")[0] == 200
        log2 = fleet.log()
        out["dropbox_calls_per_hit"] = (calls(log2) - calls(log1)) / 2000
        # Changes: each upload, then the file asked for until the new bytes come back.
        changed = names[: args.changes]
        for n in changed:
            fleet.upload(n, os.urandom(200))
        deadline = time.time() + 60
        for n in changed:
            while c.get(f"/{ALIAS}{n}")[2] != fleet.files[n]:
                assert time.time() < deadline, "changes did not arrive"
                time.sleep(0.01)
        log3 = fleet.log()
        uploads = args.changes
        out["dropbox_calls_per_change"] = round((calls(log3) - calls(log2) - uploads) / uploads, 2)
        out["calls_per_change_by_route"] = {
            k: v["total"] - log2["routes"].get(k, {}).get("total", 0)
            for k, v in log3["routes"].items()
            if k not in ("files/upload",) and v["total"] > log2["routes"].get(k, {}).get("total", 0)}
        # Quiet: what the feed costs while nothing changes.
        time.sleep(args.quiet_secs)
        log4 = fleet.log()
        out["feed_calls_per_minute_quiet"] = round(
            (calls(log4, skip_longpoll=False) - calls(log3, skip_longpoll=False))
            * 60 / args.quiet_secs, 2)
        out["quiet_calls_by_route"] = {
            k: v["total"] - log3["routes"].get(k, {}).get("total", 0)
            for k, v in log4["routes"].items()
            if v["total"] > log3["routes"].get(k, {}).get("total", 0)}
    finally:
        fleet.close()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
