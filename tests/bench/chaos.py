#!/usr/bin/env python3
"""Chaos under load: a fleet (tests/bench/fleet.py: the emulator behind a relay, Redis,
three instances, nginx with deploy/nginx/dropcache-pool.conf) under a steady mixed load
(hits, 304s, ranges, listings of warmed files; misses of files never asked for), while one
fault at a time is applied and then lifted:

  5xx        Dropbox answers 503 to every call
  refused    Dropbox unreachable: connections refused, open ones reset
  silent     Dropbox accepts connections and never answers
  429        Dropbox answers 429 with Retry-After: 5 to every call
  redis      Redis killed, started again empty
  kill       an instance SIGKILLed during 100 concurrent fills of cold 1 MiB files (their
             downloads slowed), and restarted
  disk       the cache disk fills up (a small tmpfs; needs root, else skipped)

For each: requests sent, failed requests for cached content (goal 0), failed requests for
uncached content and their statuses, calls that reached Dropbox before a Retry-After had
elapsed (goal 0; the emulator counts them), corrupt or cut bodies (goal 0; every body is
checked against the file's bytes), and the time from the fault's end to the end of the last
failed request (recovery). Prints a markdown table, and with --json one JSON object per line.

    cargo build --release
    python3 tests/bench/chaos.py [--fault-secs 60] [--redis-secs 30] [--only 5xx,429]
    python3 tests/bench/chaos.py --short --json     # the test command's run (tests/fleet.rs)

Uses target/release/dropcache, or $DROPCACHE_BIN.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from fleet import ALIAS, BIN, Conn, Fleet, Load, summary

SCENARIOS = ["5xx", "refused", "silent", "429", "redis", "kill", "disk"]


def mount_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path],
                       capture_output=True)
    return r.returncode == 0


def run_fault(fleet, load, name, secs, lead, tail):
    """Load before, during and after one fault; the summary, with the fault's own figures."""
    before = fleet.log()
    load.start()
    time.sleep(lead)
    extra = {}
    if name == "5xx":
        fleet.faults([{"route": "*", "kind": "503"}])
        time.sleep(secs)
        fleet.clear_faults()
    elif name == "refused":
        fleet.relay.set("refuse")
        time.sleep(secs)
        fleet.relay.set("pass")
    elif name == "silent":
        fleet.relay.set("silent")
        time.sleep(secs)
        fleet.relay.set("pass")
    elif name == "429":
        fleet.faults([{"route": "*", "kind": "429:5"}])
        time.sleep(secs)
        fleet.clear_faults()
    elif name == "redis":
        fleet.redis.stop()
        time.sleep(secs)
        fleet.redis.start()
    elif name == "kill":
        extra = kill_during_fills(fleet)
    elif name == "disk":
        extra = fill_disk(fleet, secs)
        if extra is None:
            load.stop()
            return None
    end = time.time()
    time.sleep(tail)
    records = load.stop()
    after = fleet.log()
    out = summary(records, end)
    out["scenario"] = name
    out["early_calls"] = after["early"] - before["early"]
    out["early_by_route"] = {k: v - before["early_calls"].get(k, 0)
                             for k, v in after["early_calls"].items()
                             if v > before["early_calls"].get(k, 0)}
    out["rate_limited"] = after["rate_limited"] - before["rate_limited"]
    out["dropbox_calls"] = after["total"] - before["total"]
    out.update(extra)
    return out


def kill_during_fills(fleet):
    """100 concurrent requests for cold 1 MiB files (downloads slowed to ~1 MiB/s), one
    instance SIGKILLed a second in, restarted a second later; then every one of the files is
    asked for again and must come back whole."""
    big = sorted(n for n in fleet.files if n.startswith("/big/"))[:100]
    fleet.faults([{"route": "files/download", "kind": "slow:1048576"}])
    results = [None] * len(big)

    def fetch(i):
        c = Conn(fleet.front, timeout=60)
        try:
            status, _, body = c.get(f"/{ALIAS}{big[i]}")
            results[i] = (status, body == fleet.files[big[i]] if status == 200 else None)
        except Exception as e:
            results[i] = (type(e).__name__, None)

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(len(big))]
    for t in threads:
        t.start()
    time.sleep(1.0)
    victim = len(fleet.instances) - 1
    fleet.kill_instance(victim)
    time.sleep(1.0)
    fleet.start_instance(victim)
    for t in threads:
        t.join(timeout=120)
    fleet.clear_faults()
    failed = sum(1 for r in results if r is None or r[0] != 200)
    corrupt = sum(1 for r in results if r and r[0] == 200 and r[1] is False)
    # Afterwards, each file whole through nginx (a cut fill must not have left a bad blob).
    c = Conn(fleet.front, timeout=60)
    wrong_after = sum(1 for n in big if c.get(f"/{ALIAS}{n}")[2] != fleet.files[n])
    return {"fills": len(big), "fills_failed": failed, "fills_corrupt": corrupt,
            "wrong_after_restart": wrong_after}


def fill_disk(fleet, secs):
    """Fills the tmpfs under the instances' caches with a junk file, for `secs`."""
    if not fleet.cache_on_tmpfs:
        return None
    junk = os.path.join(fleet.cache_root, "junk")
    st = os.statvfs(fleet.cache_root)
    with open(junk, "wb") as f:
        try:
            left = st.f_bavail * st.f_frsize
            while left > 0:
                f.write(b"\0" * min(left, 1 << 20))
                left -= 1 << 20
            f.flush()
        except OSError:
            pass
    free = os.statvfs(fleet.cache_root).f_bavail * os.statvfs(fleet.cache_root).f_frsize
    time.sleep(secs)
    os.remove(junk)
    return {"free_bytes_while_full": free}


def table(rows):
    head = ("| fault | requests | failed, cached | failed, uncached (status) | early calls "
            "| corrupt | recovery s |")
    lines = [head, "|---|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        statuses = ", ".join(f"{k.split(' ', 1)[1]}: {v}" for k, v in sorted(r["statuses"].items())
                             if k.startswith("uncached"))
        extra = ""
        if r["scenario"] == "kill":
            extra = (f"; fills: {r['fills_failed']} of {r['fills']} failed, "
                     f"{r['wrong_after_restart']} wrong after")
        lines.append(
            f"| {r['scenario']} | {r['requests']} | {r['failed_cached']} | "
            f"{r['failed_uncached']} of {r['uncached']}{' (' + statuses + ')' if statuses else ''}"
            f"{extra} | {r['early_calls']} | {r['corrupt'] + r.get('fills_corrupt', 0)} | "
            f"{r['recovery_s']} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fault-secs", type=float, default=60)
    ap.add_argument("--redis-secs", type=float, default=30)
    ap.add_argument("--lead", type=float, default=3)
    ap.add_argument("--tail", type=float, default=10)
    ap.add_argument("--threads", type=int, default=6)
    ap.add_argument("--only", default=",".join(SCENARIOS))
    ap.add_argument("--short", action="store_true",
                    help="5 s faults, 1 s before, 4 s after (the test command's run)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.short:
        args.fault_secs, args.redis_secs, args.lead, args.tail, args.threads = 5, 5, 1, 4, 3
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: cargo build --release (or set DROPCACHE_BIN)")
    work = tempfile.mkdtemp(prefix="dropcache-chaos-")
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        sys.exit(f"unknown scenario(s) {sorted(unknown)}; known: {SCENARIOS}")
    cache_root = os.path.join(work, "cache")
    on_tmpfs = "disk" in only and mount_tmpfs(cache_root, "96m")
    fleet = None
    rows = []
    try:
        # Misses at up to 20 a second, each of a file never asked for: enough files for all.
        per_scenario = args.lead + max(args.fault_secs, args.redis_secs) + args.tail + 10
        cold = int(per_scenario * len(only) * 20 * 1.2) + 200
        fleet = Fleet(work, n=3, hot=40, cold=cold, big=100 if "kill" in only else 0,
                      cache_dir=cache_root, metadata_ttl="2s")
        fleet.cache_on_tmpfs = on_tmpfs
        load = Load(fleet, fleet.front, threads=args.threads, pace=0.002, miss_pace=0.05)
        load.warm()
        for name in only:
            secs = args.redis_secs if name == "redis" else args.fault_secs
            row = run_fault(fleet, load, name, secs, args.lead, args.tail)
            if row is None:
                print(f"{name}: skipped (needs root to mount a tmpfs)", file=sys.stderr)
                continue
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(f"{name}: {json.dumps(row)}", file=sys.stderr, flush=True)
    finally:
        if fleet:
            fleet.close()
        if on_tmpfs:
            subprocess.run(["umount", "-l", cache_root])
        shutil.rmtree(work, ignore_errors=True)
    if not args.json:
        print(table(rows))


if __name__ == "__main__":
    main()
