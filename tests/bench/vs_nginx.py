#!/usr/bin/env python3
"""dropcache beside nginx, on the same objects, in one run: the hit-path benchmark.

usage: python3 tests/bench/vs_nginx.py [--bin target/release/dropcache] [--modes hit,log,cond,range,big,fanin]
                                       [--against OLD_BIN] [--other-cache 'KEY = VALUE; ...']

Starts, in a temp dir:
  dropcache   `dropcache serve` (Redis store, access log off) in front of `dropcache emulator`
  dropcache+log  the same with `log.access_log = true` (the default), 1 KiB hits only
  nginx       nginx `proxy_cache` in front of an nginx origin over the same files (the peer)
  static      nginx serving the files from disk (the practical limit)
  other       with --against BIN: that build of dropcache, as `dropcache` (to tell a change from
              the host's mood: both are measured in the same run, alternating); with
              --other-cache: this build (or --against's) with those `[cache]` settings
warms every cache, then measures with wrk (Debian `wrk`), alternating the targets within each
cell, each cell --reps times after waiting for a quiet machine. Servers run on the last CPU,
wrk on the first (as `taskset` allows). Prints markdown tables with the ratio to nginx, in
requests per second and in the server's CPU time per request (user + system, from /proc: on a
shared VM whose speed moves from run to run, the steadier of the two).

Modes: hit (200s: 1 KiB, 64 KiB, 1 MiB at each --conns), log (1 KiB 200s with and without the
access log), cond (304 by each target's own ETag), range (206 for the first 64 KiB of 1 MiB, beside 200s of 64 KiB),
paced (latency at a set load below saturation: c=64, each connection pausing 2 ms between
requests; 1 KiB 200s and 304s, 64 KiB 200s, 206s of 64 KiB), big (16 MiB in a loop over one keep-alive connection, read 1 MiB at a time), fanin (200 clients at once on one cold 16 MiB file: downloads from the origin, first and
last byte), syscalls (not by default: system calls and context switches per request, each
target, 1 KiB 200s at c=64 and c=8, and per MiB of the 16 MiB stream, from `perf stat`), profile (not by default: where dropcache's CPU goes under 1 KiB 200s, 304s and 200s
with the access log on, 64 KiB 200s and 206s of 64 KiB, with `perf`; BENCH_CHILDREN=1 adds inclusive times, BENCH_PERF_DIR=DIR keeps
the perf data). Needs: nginx, wrk, redis-server, a release build (cargo build --release).
"""
import argparse, contextlib, http.client, json, os, shutil, socket, statistics, subprocess, sys, tempfile
import threading, time, urllib.error, urllib.parse, urllib.request

import spawn

NCPU = os.cpu_count() or 1
SERVER_CPU, CLIENT_CPU = str(NCPU - 1), "0"
PORTS = dict(static=18280, origin=18281, nginx=18282, dropcache=18283, log=18284, emu=18285, redis=18286,
             other=18287)
OBJECTS = {"1k.bin": 1024, "64k.bin": 65536, "1m.bin": 1 << 20, "16m.bin": 16 << 20}
TARGET_OF = {"dropcache": "dropcache", "log": "dropcache+log", "other": "other"}
WRK_LUA = """done = function(s, lat, req)
  io.write(string.format("RESULT %.0f %.0f %.0f %.0f %.0f %.0f\\n", s.duration, s.requests,
    s.bytes, lat:percentile(50), lat:percentile(99),
    s.errors.connect + s.errors.read + s.errors.write + s.errors.timeout + s.errors.status))
end
"""


def pinned(cpu, cmd):
    return (["taskset", "-c", cpu] + cmd) if shutil.which("taskset") and NCPU > 1 else cmd


class Bench:
    def __init__(self, a):
        self.a, self.procs = a, []
        self.dir = tempfile.mkdtemp(prefix="dropcache-bench-")
        self.site = os.path.join(self.dir, "dropbox", "site")
        os.makedirs(self.site)
        for d in ("logs", "cache", "tmp"):
            os.makedirs(os.path.join(self.dir, d))

    def path(self, *p):
        return os.path.join(self.dir, *p)

    def spawn(self, name, cmd):
        out = open(self.path("logs", name + ".log"), "w")
        p = subprocess.Popen(pinned(SERVER_CPU, cmd), stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def stop(self):
        spawn.stop(self.procs, remove=self.dir)

    def start(self):
        for name, size in OBJECTS.items():
            with open(os.path.join(self.site, name), "wb") as f:
                f.write(os.urandom(size))
        t, s = self.dir, self.site
        nginx = f"""worker_processes 1; pid {t}/nginx.pid; error_log {t}/logs/nginx.err warn;
worker_rlimit_nofile 65536; events {{ worker_connections 8192; }}
http {{
  access_log off; default_type application/octet-stream; sendfile on; tcp_nodelay on;
  keepalive_timeout 75s; keepalive_requests 1000000;
  open_file_cache max=1024 inactive=60s; open_file_cache_valid 60s;
  client_body_temp_path {t}/tmp/b; proxy_temp_path {t}/tmp/p; fastcgi_temp_path {t}/tmp/f;
  uwsgi_temp_path {t}/tmp/u; scgi_temp_path {t}/tmp/s;
  log_format fetched '$uri';
  upstream origin {{ server 127.0.0.1:{PORTS['origin']}; keepalive 64; }}
  proxy_cache_path {t}/cache/nginx levels=1:2 keys_zone=c:64m max_size=20g inactive=60m use_temp_path=off;
  server {{ listen 127.0.0.1:{PORTS['static']}; root {s}; }}
  server {{ listen 127.0.0.1:{PORTS['origin']}; root {s}; access_log {t}/logs/origin.log fetched; }}
  server {{ listen 127.0.0.1:{PORTS['nginx']}; proxy_cache c; proxy_cache_lock on;
    proxy_http_version 1.1; proxy_set_header Connection ""; proxy_cache_valid 200 10m;
    proxy_cache_revalidate on; add_header X-Cache-Status $upstream_cache_status;
    location / {{ proxy_pass http://origin; }} }}
}}
"""
        open(self.path("nginx.conf"), "w").write(nginx)
        user = ["-g", "daemon off; user root;"] if os.geteuid() == 0 else ["-g", "daemon off;"]
        self.spawn("nginx", ["nginx", "-p", t, "-e", self.path("logs", "nginx.err"), "-c", self.path("nginx.conf")] + user)
        self.spawn("redis", ["redis-server", "--port", str(PORTS["redis"]), "--save", "", "--appendonly", "no", "--dir", t])
        emu = f"http://127.0.0.1:{PORTS['emu']}"
        self.emu = emu
        self.spawn("emulator", [self.a.bin, "emulator", "--listen", f"127.0.0.1:{PORTS['emu']}", "--admin",
                                "--root", self.path("dropbox"), "--token", "BENCHTOKEN"])
        wait_up(emu + "/2/check/app", method="POST")
        self.dc = {}
        # (name, access log, binary): "other" is --against's build, beside this one.
        instances = [("dropcache", False, self.a.bin), ("log", True, self.a.bin)]
        if self.a.against or self.a.other_cache:
            instances.append(("other", False, self.a.against or self.a.bin))
        for name, log, binary in instances:
            cfg = spawn.hit_config(
                PORTS[name], emu, f"redis://127.0.0.1:{PORTS['redis']}/{dict(dropcache=0, log=1, other=2)[name]}",
                f"{t}/cache/{name}", access_log=log,
                cache_extra=self.a.other_cache.replace(";", chr(10)) if name == "other" else "")
            open(self.path(name + ".toml"), "w").write(cfg)
            # The access log goes to /dev/null: the cost measured is writing it, not the disk.
            self.dc[name] = subprocess.Popen(pinned(SERVER_CPU, [binary, "serve", "--config", self.path(name + ".toml")]),
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append(self.dc[name])
        self.targets = {
            "dropcache": f"http://127.0.0.1:{PORTS['dropcache']}/b",
            "nginx": f"http://127.0.0.1:{PORTS['nginx']}",
            "static": f"http://127.0.0.1:{PORTS['static']}",
            "dropcache+log": f"http://127.0.0.1:{PORTS['log']}/b",
        }
        if "other" in self.dc:
            self.targets["other"] = f"http://127.0.0.1:{PORTS['other']}/b"
        for base in self.targets.values():
            wait_up(base + "/1k.bin")
            for name in OBJECTS:
                for _ in range(3):  # a fill, then a hit from disk (kept in memory if small)
                    status, _, body = fetch(f"{base}/{name}")
                    assert status == 200 and len(body) == OBJECTS[name], (base, name, status)

    def pids(self, target):
        """The processes that serve `target`: a dropcache, or the nginx workers (one nginx
        serves the peer, the origin and the static files: a run touches one of them)."""
        if target == "dropcache+log":
            return [self.dc["log"].pid]
        if target in self.dc:
            return [self.dc[target].pid]
        master = self.procs[0].pid
        try:
            return [int(p) for p in open(f"/proc/{master}/task/{master}/children").read().split()]
        except OSError:
            return []

    def rss_mib(self, name="dropcache"):
        for line in open(f"/proc/{self.dc[name].pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0


def wait_up(url, method="GET", secs=30):
    deadline = time.time() + secs
    while True:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method=method, data=b"null" if method == "POST" else None,
                                                          headers={"Content-Type": "application/json"}), timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if time.time() > deadline:
                sys.exit(f"not up: {url}")
            time.sleep(0.1)


def fetch(url, headers=None):
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    c.request("GET", u.path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, r.getheader("ETag"), body


def busy_percent(secs=0.5):
    def sample():
        f = open("/proc/stat").readline().split()[1:9]
        v = list(map(int, f))
        return sum(v) - v[3] - v[4], sum(v)
    a = sample()
    time.sleep(secs)
    b = sample()
    return 100.0 * NCPU * (b[0] - a[0]) / max(1, b[1] - a[1])


def wait_quiet(limit=15.0, most=60):
    t0 = time.time()
    while (bg := busy_percent()) > limit and time.time() - t0 < most:
        time.sleep(1)
    return bg


def cpu_seconds(pids):
    """User and system CPU time of the processes `pids` (all their threads) so far."""
    ticks = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def report_lua(bench, pace_ms=0):
    """The wrk script that prints a RESULT line (and paces, with `pace_ms`)."""
    lua = bench.path(f"report-{pace_ms}.lua")
    if not os.path.exists(lua):
        open(lua, "w").write(WRK_LUA + (f"delay = function() return {pace_ms} end\n" if pace_ms else ""))
    return lua


def wrk(bench, url, conns, headers, pids=(), pace_ms=0):
    """One wrk run; `pace_ms`: each connection waits that long after an answer before it
    asks again (wrk's `delay`), so the load is a set rate below saturation."""
    lua = report_lua(bench, pace_ms)
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{bench.a.duration}", "--latency", "-s", lua]
    for h in headers:
        cmd += ["-H", h]
    cpu = cpu_seconds(pids)
    out = subprocess.run(pinned(CLIENT_CPU, cmd + [url]), capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pids) - cpu
    dur, reqs, _bytes, p50, p99, errors = map(float, [l for l in out.splitlines() if l.startswith("RESULT")][-1].split()[1:])
    return dict(rps=reqs / (dur / 1e6), p50=p50 / 1000, p99=p99 / 1000, errors=errors,
                cpu=1e6 * cpu / max(1.0, reqs))


def alternated(bench, targets):
    """Each target once per rep, in an order that rotates from rep to rep (drift on the host
    falls on each in turn)."""
    for rep in range(bench.a.reps):
        k = rep % len(targets)
        yield from targets[k:] + targets[:k]


def matrix(bench, title, cells, targets):
    """cells: [(object, conns, headers_by_target)]; prints one table, medians over reps."""
    print(f"\n### {title}\n")
    print("| target | object | conns | req/s | spread | p50 ms | p99 ms | errors | ratio to nginx | paired ratio "
          "| CPU µs/req | CPU ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for obj, conns, headers in cells:
        runs = {t: [] for t in targets}
        for t in alternated(bench, targets):
            wait_quiet()
            runs[t].append(wrk(bench, f"{bench.targets[t]}/{obj}", conns, headers(t), bench.pids(t)))
        med = {t: {k: statistics.median(r[k] for r in runs[t]) for k in ("rps", "p50", "p99", "cpu")} for t in targets}
        for t in targets:
            rps = [r["rps"] for r in runs[t]]
            spread = 100.0 * (max(rps) - min(rps)) / max(1e-9, med[t]["rps"])
            ratio = med[t]["rps"] / med["nginx"]["rps"] if "nginx" in med else float("nan")
            errors = int(sum(r["errors"] for r in runs[t]))
            cpu_ratio = med["nginx"]["cpu"] / max(1e-9, med[t]["cpu"]) if "nginx" in med else float("nan")
            # Each rep's ratio to nginx's run beside it, then the median: the host's drift between
            # reps cancels (on a shared VM it moves cells by tens of percent).
            paired = statistics.median(a["rps"] / max(1e-9, b["rps"]) for a, b in zip(runs[t], runs["nginx"])) \
                if "nginx" in runs else float("nan")
            print(f"| {t} | {obj} | {conns} | {med[t]['rps']:,.0f} | {spread:.0f}% | {med[t]['p50']:.3f} | "
                  f"{med[t]['p99']:.3f} | {errors} | {ratio:.2f}x | {paired:.2f}x | {med[t]['cpu']:.1f} | "
                  f"{cpu_ratio:.2f}x |", flush=True)


def paced(bench, targets, pace_ms=2, conns=64):
    """Latency at a set load: wrk's connections each wait `pace_ms` after an answer, so every
    target serves about the same rate, below what any of them can do. At saturation (the other
    tables) p99 also measures the client: wrk, on one CPU, is busier the faster the server,
    and nginx serving files itself shows the same wider tail at dropcache's rates."""
    print(f"\n### latency at a set load: c={conns}, each connection pausing {pace_ms} ms between requests\n")
    print("| target | answer | req/s | p50 ms | p99 ms | p99 ratio (nginx's / this) |")
    print("|---|---|---:|---:|---:|---:|")
    etag = {t: fetch(f"{bench.targets[t]}/1k.bin")[1] for t in targets}
    cells = [("200, 1 KiB", "1k.bin", lambda t: []),
             ("304, 1 KiB", "1k.bin", lambda t: [f"If-None-Match: {etag[t]}"]),
             ("200, 64 KiB", "64k.bin", lambda t: []),
             ("206, 64 KiB of 1 MiB", "1m.bin", lambda t: ["Range: bytes=0-65535"])]
    for what, obj, headers in cells:
        runs = {t: [] for t in targets}
        for t in alternated(bench, targets):
            wait_quiet()
            runs[t].append(wrk(bench, f"{bench.targets[t]}/{obj}", conns, headers(t), pace_ms=pace_ms))
        med = {t: {k: statistics.median(r[k] for r in runs[t]) for k in ("rps", "p50", "p99")} for t in targets}
        for t in targets:
            print(f"| {t} | {what} | {med[t]['rps']:,.0f} | {med[t]['p50']:.3f} | {med[t]['p99']:.3f} | "
                  f"{med['nginx']['p99'] / max(1e-9, med[t]['p99']):.2f}x |", flush=True)


def big_rate(url, secs, bufsz=1 << 20):
    """MiB/s of GETs of `url` in a loop over one keep-alive connection for `secs`, read with
    recv_into a `bufsz` buffer (no copy into Python objects: the client is not the limit)."""
    u = urllib.parse.urlsplit(url)
    s = socket.create_connection((u.hostname, u.port))
    buf = bytearray(bufsz)
    mv = memoryview(buf)
    req = f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}\r\n\r\n".encode()
    t0, total = time.perf_counter(), 0
    while time.perf_counter() - t0 < secs:
        s.sendall(req)
        got = s.recv_into(mv)
        while b"\r\n\r\n" not in buf[:got]:
            got += s.recv_into(mv[got:])
        head = bytes(buf[:got]).partition(b"\r\n\r\n")[0]
        assert head.startswith(b"HTTP/1.1 200"), head[:60]
        length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n")
                      if l.lower().startswith(b"content-length:"))
        assert length == OBJECTS["16m.bin"], length
        left = length - (got - len(head) - 4)
        while left > 0:
            n = s.recv_into(mv, min(left, bufsz))
            assert n > 0, "closed mid-body"
            left -= n
        total += length
    s.close()
    return total / (1 << 20) / (time.perf_counter() - t0), total / (1 << 30)


@contextlib.contextmanager
def on_client_cpu():
    """This process (a Python client) on wrk's CPU, as wrk, while the block runs."""
    cpus = os.sched_getaffinity(0)
    if NCPU > 1:
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cpus)


def big(bench, targets):
    print("\n### 16 MiB over one keep-alive connection, GETs in a loop, read 1 MiB at a time\n")
    print("| target | MiB/s (median) | spread | ratio to nginx | server CPU ms/GiB | CPU ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    secs = float(bench.a.duration.rstrip("s"))
    rates = {t: [] for t in targets}
    cpu = {t: [] for t in targets}
    with on_client_cpu():
        for t in alternated(bench, targets):
            wait_quiet()
            before = cpu_seconds(bench.pids(t))
            rate, gib = big_rate(f"{bench.targets[t]}/16m.bin", secs)
            rates[t].append(rate)
            cpu[t].append(1e3 * (cpu_seconds(bench.pids(t)) - before) / max(gib, 1e-9))
    med = {t: statistics.median(v) for t, v in rates.items()}
    mcpu = {t: statistics.median(v) for t, v in cpu.items()}
    for t in targets:
        spread = 100.0 * (max(rates[t]) - min(rates[t])) / med[t]
        print(f"| {t} | {med[t]:,.0f} | {spread:.0f}% | {med[t] / med['nginx']:.2f}x | {mcpu[t]:.0f} | "
              f"{mcpu['nginx'] / max(mcpu[t], 1e-9):.2f}x |", flush=True)


def fanin(bench, clients=200):
    print(f"\n### cold fan-in: {clients} clients at once on one cold 16 MiB file\n")
    data = os.urandom(16 << 20)
    open(os.path.join(bench.site, "cold.bin"), "wb").write(data)  # nginx's origin reads the directory
    req = urllib.request.Request(bench.emu + "/2/files/upload", data=data, headers={
        "Authorization": "Bearer BENCHTOKEN", "Content-Type": "application/octet-stream",
        "Dropbox-API-Arg": json.dumps({"path": "/site/cold.bin", "mode": "overwrite"})})
    urllib.request.urlopen(req).read()  # the emulator learns it through its API
    print("| target | fetched from the origin | first byte p50 ms | last byte p50 ms | last byte max ms |")
    print("|---|---:|---:|---:|---:|")
    for t in ("dropcache", "nginx"):
        before = origin_fetches(bench, t)
        firsts, lasts, start = [], [], threading.Barrier(clients)

        def one():
            u = urllib.parse.urlsplit(f"{bench.targets[t]}/cold.bin")
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
            start.wait()
            t0 = time.perf_counter()
            c.request("GET", u.path)
            r = c.getresponse()
            r.read(1)
            firsts.append(time.perf_counter() - t0)
            rest = 1 + len(r.read())
            lasts.append(time.perf_counter() - t0)
            assert rest == len(data), rest

        threads = [threading.Thread(target=one) for _ in range(clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        fetched = origin_fetches(bench, t) - before
        print(f"| {t} | {fetched} | {1000 * statistics.median(firsts):.0f} | {1000 * statistics.median(lasts):.0f} | "
              f"{1000 * max(lasts):.0f} |")


def profile(bench, title, headers, name="dropcache", obj="1k.bin"):
    """perf record of dropcache (`name`: "dropcache", or "log" for the one with its access log on)
    under requests for `obj` at c=64; the top symbols."""
    print(f"\n### where dropcache's CPU goes: {title} (perf, {obj}, c=64)\n")
    if not shutil.which("perf"):
        print("(perf is not installed: apt-get install linux-perf)")
        return
    data = bench.path("perf.data")
    lua = report_lua(bench)
    load = subprocess.Popen(pinned(CLIENT_CPU, ["wrk", "-t1", "-c64", "-d8s", "-s", lua]
                                   + sum((["-H", h] for h in headers), []) + [f"{bench.targets[TARGET_OF[name]]}/{obj}"]),
                            stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    subprocess.run(["perf", "record", "-F", "1999", "-g", "-p", str(bench.dc[name].pid), "-o", data,
                    "--", "sleep", "5"], capture_output=True)
    out = load.communicate()[0]
    dur, reqs = map(float, [l for l in out.splitlines() if l.startswith("RESULT")][-1].split()[1:3])
    print(f"{reqs / (dur / 1e6):,.0f} req/s while profiled\n\n```")
    def report(*args):
        out = subprocess.run(["perf", "report", "-i", data, "--stdio", "-g", "none"] + list(args),
                             capture_output=True, text=True).stdout
        return [l.rstrip()[:110] for l in out.splitlines() if l.strip()[:1].isdigit()]
    print("by binary:")
    print("\n".join(report("--no-children", "--sort", "dso")[:6]))
    print("self time, top symbols:")
    print("\n".join(report("--no-children", "--sort", "dso,symbol", "--percent-limit", "1")[:20]))
    print("dropcache's own functions (self time):")
    print("\n".join(report("--no-children", "--sort", "symbol", "--dsos", os.path.basename(bench.a.bin))[:25]))
    if os.environ.get("BENCH_CHILDREN"):
        # Inclusive times need frame pointers: RUSTFLAGS="-C force-frame-pointers=yes".
        print("inclusive (with what each calls):")
        print("\n".join(report("--children", "--sort", "symbol", "--percent-limit", "2")[:60]))
    print("```")
    if os.environ.get("BENCH_PERF_DIR"):  # kept for `perf report -i` after the run
        os.makedirs(os.environ["BENCH_PERF_DIR"], exist_ok=True)
        shutil.copy(data, os.path.join(os.environ["BENCH_PERF_DIR"], f"perf-{name}-{title.split()[0]}-{obj}.data"))


SYSCALLS = ("read", "recvfrom", "write", "writev", "sendto", "sendfile64", "epoll_wait", "epoll_pwait",
            "epoll_ctl", "futex", "openat", "close", "newfstatat", "statx", "accept4")


def perf_counts(bench, t, events, secs, load):
    """`perf stat` counts of `events` in target `t`'s processes over `secs` seconds, while
    `load()` runs (it must outlast them); and what `load` returned."""
    out = bench.path("perf-stat.txt")
    stat = subprocess.Popen(["perf", "stat", "-x,", "-o", out, "-e", ",".join(events),
                             "-p", ",".join(map(str, bench.pids(t))), "--", "sleep", str(secs)])
    res = load()
    stat.wait()
    counts = {}
    for line in open(out):
        f = line.strip().split(",")
        if len(f) > 2 and f[0].replace(".", "").isdigit():
            counts[f[2].split(":")[-1].replace("sys_enter_", "")] = float(f[0])
    return counts, res


def syscalls(bench, targets, obj="1k.bin", conns=64, headers=()):
    """System calls and context switches per request for each target under wrk on `obj`, or
    (obj "16m.bin") per MiB of the 16 MiB stream (`perf stat` of syscall tracepoints:
    counting, not tracing, so the load runs at speed)."""
    stream = obj == "16m.bin"
    what = "the 16 MiB stream, per MiB sent" if stream else f"{obj}, c={conns}"
    print(f"\n### system calls per {'MiB' if stream else 'request'} ({what}{', ' + headers[0] if headers else ''})\n")
    if not shutil.which("perf"):
        print("(perf is not installed: apt-get install linux-perf)")
        return
    events = ["raw_syscalls:sys_enter", "context-switches"] + [f"syscalls:sys_enter_{n}" for n in SYSCALLS]
    print(f"| target | {'MiB/s' if stream else 'req/s'} | all | ctx switches | " + " | ".join(SYSCALLS) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(SYSCALLS))
    for t in targets:
        if stream:
            # The stream runs 5 s with perf's 4 s inside it: MiB in the window = rate x 4 s.
            load = lambda: big_rate(f"{bench.targets[t]}/16m.bin", 5.0)[0]
        else:
            # wrk runs for the duration with perf's 4 s inside it: requests = rate x 4 s.
            load = lambda: wrk(bench, f"{bench.targets[t]}/{obj}", conns, list(headers))["rps"]
        with on_client_cpu():
            counts, rate = perf_counts(bench, t, events, 4, load)
        n = rate * 4
        cells = [counts.get(k, 0) / n for k in ["sys_enter", "context-switches"] + list(SYSCALLS)]
        print(f"| {t} | {rate:,.0f} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")


def origin_fetches(bench, target):
    """Downloads the origin has served so far: nginx's origin log of cold.bin, or the emulator's
    count of files/download (every dropcache download; the warm-up ones are subtracted)."""
    if target == "nginx":
        log = bench.path("logs", "origin.log")
        return sum(1 for l in open(log) if "cold.bin" in l) if os.path.exists(log) else 0
    log = json.load(urllib.request.urlopen(bench.emu + "/_emulator/log"))
    return log["routes"].get("files/download", {}).get("total", 0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default="target/release/dropcache")
    p.add_argument("--modes", default="hit,log,cond,range,paced,big,fanin")
    p.add_argument("--duration", default="5s")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--conns", default="64,8")
    p.add_argument("--other-cache", default="", metavar="TOML",
                   help="`[cache]` settings for `other` (this build unless --against), `;` between "
                        "them: measures a setting beside the defaults, e.g. 'memory_max_object = \"16KiB\"'")
    p.add_argument("--against", metavar="BIN",
                   help="another dropcache build (an older commit, say), measured beside this one as `other`")
    a = p.parse_args()
    a.bin = os.path.abspath(a.bin)
    if a.against:
        a.against = os.path.abspath(a.against)
    for tool in ("nginx", "wrk", "redis-server"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"{tool} is needed (apt-get install nginx wrk redis-server)")
    os.environ["PATH"] += ":/usr/sbin"
    bench = Bench(a)
    try:
        bench.start()
        conns = [int(c) for c in a.conns.split(",")]
        main3 = ["dropcache", "nginx", "static"] + (["other"] if "other" in bench.dc else [])
        print(f"dropcache beside nginx: {NCPU} CPUs, servers on CPU {SERVER_CPU}, wrk on CPU {CLIENT_CPU}, "
              f"wrk -t1 -d{a.duration}, median of {a.reps}")
        modes = a.modes.split(",")
        none = lambda t: []
        if "hit" in modes:
            matrix(bench, "200 (hits)", [(o, c, none) for o in ("1k.bin", "64k.bin", "1m.bin") for c in conns], main3)
        if "log" in modes:
            matrix(bench, "200 (hits), dropcache with its access log on", [("1k.bin", c, none) for c in conns],
                   ["dropcache", "dropcache+log", "nginx"])
        if "cond" in modes:
            tags = {t: fetch(f"{bench.targets[t]}/1k.bin")[1] for t in main3}
            matrix(bench, "304 (If-None-Match: the target's own ETag)",
                   [("1k.bin", c, lambda t: [f"If-None-Match: {tags[t]}"]) for c in conns], main3)
        if "range" in modes:
            # Beside the 200 of the same size (64k.bin, no Range), in the same run.
            matrix(bench, "206 (Range: bytes=0-65535 of 1 MiB), beside 200s of 64 KiB",
                   [(o, c, (lambda t: ["Range: bytes=0-65535"]) if o == "1m.bin" else none)
                    for c in conns for o in ("1m.bin", "64k.bin")], main3)
        if "paced" in modes:
            paced(bench, main3)
        if "big" in modes:
            big(bench, main3)
        if "fanin" in modes:
            fanin(bench)
        if "syscalls" in modes:
            syscalls(bench, ["dropcache", "nginx", "static"])
            syscalls(bench, ["dropcache", "nginx", "static"], conns=8)
            syscalls(bench, ["dropcache", "nginx", "static"], obj="16m.bin")
        if "profile" in modes:
            profile(bench, "200 hits", [])
            profile(bench, "304s", [f"If-None-Match: {fetch(bench.targets['dropcache'] + '/1k.bin')[1]}"])
            profile(bench, "200 hits, access log on", [], name="log")
            profile(bench, "200 hits", [], obj="64k.bin")
            profile(bench, "206s", ["Range: bytes=0-65535"], obj="1m.bin")
            if "other" in bench.dc:
                profile(bench, "200 hits (other)", [], name="other", obj="64k.bin")
        print(f"\ndropcache peak RSS: {bench.rss_mib():.1f} MiB")
    finally:
        bench.stop()


if __name__ == "__main__":
    main()
