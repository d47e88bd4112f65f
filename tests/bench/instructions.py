#!/usr/bin/env python3
"""What one request costs dropcache in user-space instructions and allocations: a count, not a
timing, so it does not move with the host (a shared VM moves req/s by a third between two runs
of the same build; this moves by well under 1%).

usage: python3 tests/bench/instructions.py [--bin target/release/dropcache] [--against OLD_BIN]
                                           [--requests 2000] [--conns 4] [--keep DIR]

Starts Redis and `dropcache emulator` in a temp dir, and `dropcache serve` under valgrind's
callgrind (one with the access log off, one with it on; the same again for --against's build),
warms each, then for every case zeroes the counters, sends --requests requests over --conns
keep-alive connections, and reads the counters back. Prints a markdown table: instructions
(Ir) and calls to malloc per request, for each build, and the change. --keep DIR keeps each
case's callgrind dump there, for `callgrind_annotate` (where the instructions go, by function).

Cases: 200 of 1 KiB, 64 KiB and 1 MiB (the memory tier, then sendfile), 304 by the file's own
ETag, 206 of the first 64 KiB of 1 MiB, and the 1 KiB 200 with the access log on. Kernel time
(the socket calls) is not counted: `perf stat` or `vs_nginx.py` see that. Needs: valgrind,
redis-server, a release build.
"""
import argparse, http.client, os, re, shutil, subprocess, sys, tempfile, threading, time

import spawn

PORTS = dict(emu=18385, redis=18386, dropcache=18387, log=18388, other=18389, other_log=18390)
OBJECTS = {"1k.bin": 1024, "64k.bin": 65536, "1m.bin": 1 << 20}
CASES = [  # (name, instance, path, headers (or "etag": the file's own), status)
    ("200, 1 KiB", "", "/b/1k.bin", {}, 200),
    ("200, 64 KiB", "", "/b/64k.bin", {}, 200),
    ("200, 1 MiB (sendfile)", "", "/b/1m.bin", {}, 200),
    ("304, If-None-Match", "", "/b/1k.bin", "etag", 304),
    ("206, first 64 KiB of 1 MiB", "", "/b/1m.bin", {"Range": "bytes=0-65535"}, 206),
    ("200, 1 KiB, access log on", "log", "/b/1k.bin", {}, 200),
]


def get(port, path, headers):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, r.headers, body


def wait_up(port, path, secs=120):
    end = time.time() + secs
    while time.time() < end:
        try:
            if get(port, path, {})[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    sys.exit(f"nothing answers on port {port}")


def send(port, path, headers, n, conns, status):
    """n requests over `conns` keep-alive connections; every answer must have `status`."""
    bad = []

    def run(k):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(k):
            c.request("GET", path, headers=headers)
            r = c.getresponse()
            r.read()
            if r.status != status:
                bad.append(r.status)
        c.close()

    threads = [threading.Thread(target=run, args=(n // conns,)) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if bad:
        sys.exit(f"port {port} {path}: {len(bad)} answers were not {status} (first: {bad[0]})")
    return n // conns * conns


def counts(dump):
    """(instructions, calls to malloc) in a callgrind dump."""
    total, mallocs, names, callee = 0, 0, {}, None
    for line in open(dump):
        if line.startswith(("summary:", "totals:")):
            total = int(line.split()[1])
        elif line.startswith("cfn="):
            m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line.strip())
            if m:
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                callee = names.get(m.group(1))
        elif line.startswith("fn="):
            m = re.match(r"fn=\((\d+)\)(?: (.*))?", line.strip())
            if m and m.group(2):
                names[m.group(1)] = m.group(2)
        elif line.startswith("calls=") and callee in ("malloc", "__GI___libc_malloc"):
            mallocs += int(line.split("=")[1].split()[0])
    return total, mallocs


class Server:
    """`dropcache serve` under callgrind."""

    def __init__(self, d, name, binary, log):
        self.d, self.name, self.port = d, name, PORTS[name]
        cfg = os.path.join(d, name + ".toml")
        open(cfg, "w").write(spawn.hit_config(
            self.port, f"http://127.0.0.1:{PORTS['emu']}",
            f"redis://127.0.0.1:{PORTS['redis']}/{list(PORTS).index(name)}", f"{d}/cache-{name}",
            access_log=log, max_size="1GiB"))
        self.out = os.path.join(d, f"cg-{name}")
        self.proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}.%p", binary, "serve",
             "--config", cfg], stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, name + ".err"), "w"))

    def measure(self, path, headers, n, conns, status, keep=None):
        send(self.port, path, headers, min(n, 200), conns, status)  # warm: fills, memory tier
        pid = str(self.proc.pid)
        subprocess.run(["callgrind_control", "-z", pid], check=True, capture_output=True)
        sent = send(self.port, path, headers, n, conns, status)
        for f in os.listdir(self.d):
            if f.startswith(f"cg-{self.name}.{pid}."):
                os.remove(os.path.join(self.d, f))
        subprocess.run(["callgrind_control", "-d", pid], check=True, capture_output=True)
        dump = None
        for _ in range(100):
            dumps = [f for f in os.listdir(self.d) if f.startswith(f"cg-{self.name}.{pid}.")]
            if dumps:
                dump = os.path.join(self.d, dumps[0])
                time.sleep(0.3)  # written whole
                break
            time.sleep(0.1)
        if not dump:
            sys.exit(f"{self.name}: callgrind wrote no dump")
        ir, mallocs = counts(dump)
        if keep:
            shutil.copy(dump, keep)
        return ir / sent, mallocs / sent


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default="target/release/dropcache")
    p.add_argument("--against", help="another build (an older commit, say), counted beside this one")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--conns", type=int, default=4)
    p.add_argument("--keep", metavar="DIR", help="keep each case's callgrind dump in DIR")
    a = p.parse_args()
    for tool in ("valgrind", "callgrind_control", "redis-server"):
        if not shutil.which(tool):
            sys.exit(f"needs {tool} (Debian: valgrind, redis-server)")
    d = tempfile.mkdtemp(prefix="dropcache-instr-")
    site = os.path.join(d, "dropbox", "site")
    os.makedirs(site)
    for name, size in OBJECTS.items():
        with open(os.path.join(site, name), "wb") as f:
            f.write(os.urandom(size))
    procs = []
    try:
        procs.append(subprocess.Popen(["redis-server", "--port", str(PORTS["redis"]), "--save", "",
                                       "--appendonly", "no", "--dir", d], stdout=subprocess.DEVNULL))
        procs.append(subprocess.Popen([a.bin, "emulator", "--listen", f"127.0.0.1:{PORTS['emu']}", "--root",
                                       os.path.join(d, "dropbox"), "--token", "BENCHTOKEN"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        builds = [("this", a.bin, "dropcache", "log")]
        if a.against:
            builds.append(("against", a.against, "other", "other_log"))
        servers = {}
        for label, binary, plain, logged in builds:
            servers[(label, "")] = Server(d, plain, binary, False)
            servers[(label, "log")] = Server(d, logged, binary, True)
            procs += [servers[(label, "")].proc, servers[(label, "log")].proc]
        for s in servers.values():
            wait_up(s.port, "/b/1k.bin")
        rows = []
        for case, inst, path, headers, status in CASES:
            row = [case]
            for label, *_ in builds:
                s = servers[(label, inst)]
                h = headers
                if headers == "etag":
                    h = {"If-None-Match": get(s.port, path, {})[1]["ETag"]}
                keep = None
                if a.keep:
                    os.makedirs(a.keep, exist_ok=True)
                    slug = re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-")
                    keep = os.path.join(a.keep, f"callgrind.{label}.{slug}")
                ir, mallocs = s.measure(path, h, a.requests, a.conns, status, keep)
                row += [ir, mallocs]
            rows.append(row)
            print(f"  {case}: " + ", ".join(f"{v:,.0f}" for v in row[1::2]), file=sys.stderr)
        head = "| request | Ir/request | malloc/request |"
        rule = "|---|---:|---:|"
        if a.against:
            head = "| request | Ir/request | against | change | malloc/request | against |"
            rule = "|---|---:|---:|---:|---:|---:|"
        print(f"### user-space instructions and allocations per request ({a.requests} requests, "
              f"{a.conns} connections, callgrind)\n")
        print(head)
        print(rule)
        for r in rows:
            if a.against:
                print(f"| {r[0]} | {r[1]:,.0f} | {r[3]:,.0f} | {(r[1] / r[3] - 1) * 100:+.1f}% | "
                      f"{r[2]:.1f} | {r[4]:.1f} |")
            else:
                print(f"| {r[0]} | {r[1]:,.0f} | {r[2]:.1f} |")
    finally:
        spawn.stop(procs, grace=20, remove=d)  # callgrind writes its dumps on the way out


if __name__ == "__main__":
    main()
