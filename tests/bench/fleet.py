#!/usr/bin/env python3
"""A fleet on one machine, for the end-to-end test of several instances (tests/fleet.rs) and
the chaos script (tests/bench/chaos.py): the emulator behind a relay that can cut it off,
one redis-server (or a three-primary Redis Cluster), N `dropcache serve` processes on one
store, and nginx in front with deploy/nginx/dropcache-pool.conf as shipped (but for its
ports). A steady mixed load goes over nginx, and every answer is checked against the bytes
of the file it names, so a corrupt or cut body is counted, not missed.

    python3 tests/bench/fleet.py check [--instances 3] [--cluster]

runs the end-to-end check and prints one JSON object: each body fetched from Dropbox once in
the fleet; a change seen on every instance (ms); an instance SIGKILLed under load and
restarted (failed requests for cached content, for misses in flight); and the restarted
instance back in rotation. Uses target/release/dropcache, or $DROPCACHE_BIN.
"""
import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from spawn import BIN, ROOT, free_port, start

TOKEN = "fleet-token"
ALIAS = "site"


def wait_port(port, secs=20, what="a server"):
    deadline = time.time() + secs
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on {port}")


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Relay:
    """A TCP relay in front of the emulator: `pass` forwards, `refuse` closes the listener
    and resets every open connection (Dropbox unreachable), `silent` accepts and never
    answers (Dropbox gone quiet)."""

    def __init__(self, target_port):
        self.target = target_port
        self.port = steady_ports(1)[0]
        self.mode = "pass"
        self.lock = threading.Lock()
        self.conns = set()
        self.listener = None
        self._listen()

    def _listen(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(256)
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            if s is not self.listener:
                c.close()
                return
            if self.mode == "silent":
                with self.lock:
                    self.conns.add(c)
                continue
            try:
                up = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                c.close()
                continue
            # Connected: from now on a connection waits as long as its peers do (a longpoll
            # is idle for 30 s and more).
            up.settimeout(None)
            # Small writes go out at once, as they would without the relay (Nagle's wait
            # against a delayed ACK would add 40 ms to an answer).
            for sock in (c, up):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.conns.update((c, up))
            for a, b in ((c, up), (up, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _reset_all(self):
        with self.lock:
            conns, self.conns = self.conns, set()
        for c in conns:
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
                c.close()
            except OSError:
                pass

    def set(self, mode):
        if mode == self.mode:
            return
        if self.listener is not None and mode == "refuse":
            # shutdown, not only close: a thread blocked in accept() holds the socket open
            # (and listening) past close() until a connection comes; shutdown takes it out of
            # LISTEN at once and wakes that thread, so nothing is accepted and the port can
            # be bound again.
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        self.mode = mode
        self._reset_all()
        if mode != "refuse" and self.listener is None:
            self._listen()


class Redis:
    """One redis-server, or a three-primary cluster; `stop` and `start` for outages (nothing
    is saved: a restarted store is empty)."""

    def __init__(self, work, cluster=False):
        self.work = work
        self.cluster = cluster
        self.ports = steady_ports(3, bus=True) if cluster else steady_ports(1)
        self.procs = {}
        self.start()
        if cluster:
            addrs = [f"127.0.0.1:{p}" for p in self.ports]
            subprocess.run(["redis-cli", "--cluster", "create", *addrs, "--cluster-replicas",
                            "0", "--cluster-yes"], check=True, stdout=subprocess.DEVNULL)
            for p in self.ports:
                deadline = time.time() + 20
                while b"cluster_state:ok" not in subprocess.run(
                        ["redis-cli", "-p", str(p), "cluster", "info"],
                        capture_output=True).stdout:
                    if time.time() > deadline:
                        raise RuntimeError("the cluster did not come up")
                    time.sleep(0.05)
            self.url = "redis+cluster://" + ",".join(addrs)
        else:
            self.url = f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self):
        for p in self.ports:
            d = os.path.join(self.work, f"redis-{p}")
            os.makedirs(d, exist_ok=True)
            extra = ["--cluster-enabled", "yes"] if self.cluster else []
            self.procs[p] = subprocess.Popen(
                ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", d, *extra],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_port(p, what="redis-server")

    def stop(self):
        for p in self.procs.values():
            p.kill()
            p.wait()

    def close(self):
        self.stop()


def steady_ports(n, bus=False):
    """`n` free ports below the kernel's ephemeral range, for servers stopped and started again
    on them (the relay, Redis): a client retrying `connect` to a closed port in that range can
    be given that very port as its own, connect to itself and hold it, and the server's bind
    then fails. `bus`: each port + 10000 free too (a cluster node's bus)."""
    ports = []
    while len(ports) < n:
        p = random.randint(20000, 29999)
        ok = True
        for q in (p, p + 10000) if bus else (p,):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", q))
                except OSError:
                    ok = False
        if ok and p not in ports:
            ports.append(p)
    return ports


class Fleet:
    """The emulator (through a relay), a store, `n` instances and nginx over them."""

    def __init__(self, work, n=3, cluster=False, hot=40, cold=400, big=0, cache_dir=None,
                 hot_size=(512, 96 * 1024), big_size=1 << 20, metadata_ttl="2s",
                 populate=None):
        self.work = work
        self.procs = []
        self.root = os.path.join(work, "dropbox")
        self.files = {}
        rnd = random.Random(7)
        for kind, count, lo, hi in (("hot", hot, *hot_size), ("cold", cold, 256, 8192),
                                    ("big", big, big_size, big_size)):
            os.makedirs(os.path.join(self.root, kind), exist_ok=True)
            for i in range(count):
                data = rnd.randbytes(rnd.randint(lo, hi))
                name = f"/{kind}/{i}.bin"
                with open(self.root + name, "wb") as f:
                    f.write(data)
                self.files[name] = data
        if populate:
            populate(self.root)
        self.emu_proc, self.emu_url = self._start(
            ["emulator", "--listen", "127.0.0.1:0", "--root", self.root, "--admin"],
            env={"DROPCACHE_EMULATOR_TOKEN": TOKEN}, log=os.path.join(work, "emulator.log"))
        self.relay = Relay(int(self.emu_url.rsplit(":", 1)[1]))
        self.redis = Redis(work, cluster)
        self.cache_root = cache_dir or os.path.join(work, "cache")
        self.metadata_ttl = metadata_ttl
        self.ports = [free_port() for _ in range(n)]
        self.instances = [None] * n
        for i in range(n):
            self.start_instance(i)
        self.nginx_port = free_port()
        self._start_nginx()
        self.front = f"127.0.0.1:{self.nginx_port}"

    def _start(self, args, env=None, log=None):
        """`start`, with the log appended to (a restart keeps the first run's lines), and the
        process stopped by `close`."""
        p, url = start(args, env=env, log=open(log, "a"))
        self.procs.append(p)
        return p, url

    def config(self, i):
        relay = f"http://127.0.0.1:{self.relay.port}"
        cache = os.path.join(self.cache_root, f"i{i}")
        path = os.path.join(self.work, f"dropcache-{i}.toml")
        with open(path, "w") as f:
            f.write(
                f'[server]\nlisten = "127.0.0.1:{self.ports[i]}"\n'
                '[log]\nformat = "json"\n'
                f'[dropbox]\napi_url = "{relay}"\ncontent_url = "{relay}"\n'
                f'notify_url = "{relay}"\nconnect_timeout = "1s"\nread_timeout = "5s"\n'
                f'[store]\nredis_url = "{self.redis.url}"\n'
                f'[cache]\ndir = "{cache}"\nmetadata_ttl = "{self.metadata_ttl}"\n'
                'min_free = "0B"\nmax_size = "256MiB"\n'
                '[feed]\nenabled = true\nlease_ttl = "3s"\n'
                f'[[account]]\nalias = "{ALIAS}"\nroot = ""\naccess_token = "{TOKEN}"\n')
        return path

    def log_path(self, i):
        return os.path.join(self.work, f"dropcache-{i}.log")

    def start_instance(self, i):
        p, _ = self._start(["serve", "--config", self.config(i)], log=self.log_path(i))
        self.instances[i] = p

    def kill_instance(self, i):
        p = self.instances[i]
        p.send_signal(signal.SIGKILL)
        p.wait()

    def _start_nginx(self):
        d = os.path.join(self.work, "nginx")
        os.makedirs(os.path.join(d, "snippets"), exist_ok=True)
        pool = open(os.path.join(ROOT, "deploy/nginx/dropcache-pool.conf")).read()
        shipped = [f"server 127.0.0.1:{8081 + i} " for i in range(3)]
        assert all(s in pool for s in shipped), "the shipped pool lists 8081-8083"
        lines = pool.split("\n")
        first = next(k for k, l in enumerate(lines) if shipped[0] in l)
        template = lines[first]
        lines = [l for l in lines if not any(s in l for s in shipped)]
        servers = [template.replace("127.0.0.1:8081", f"127.0.0.1:{p}") for p in self.ports]
        lines[first:first] = servers
        site = "\n".join(lines).replace("listen 80;", f"listen 127.0.0.1:{self.nginx_port};")
        with open(os.path.join(d, "site.conf"), "w") as f:
            f.write(site)
        shutil.copy(os.path.join(ROOT, "deploy/nginx/snippets/dropcache-proxy.conf"),
                    os.path.join(d, "snippets"))
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(f"worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\n"
                    f"error_log {d}/error.log;\nevents {{ worker_connections 1024; }}\n"
                    f"http {{\n access_log {d}/access.log;\n client_body_temp_path {d}/body;\n"
                    f" proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fastcgi;\n"
                    f" uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n"
                    f" include {d}/site.conf;\n}}\n")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        subprocess.run([nginx, "-p", d, "-c", f"{d}/nginx.conf", "-t", "-q"], check=True)
        self.nginx = subprocess.Popen([nginx, "-p", d, "-c", f"{d}/nginx.conf"],
                                      stderr=subprocess.DEVNULL)
        wait_port(self.nginx_port, what="nginx")

    def emulator(self, method, route, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.emu_url + "/_emulator/" + route, data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def faults(self, rules, latency_ms=0):
        self.emulator("PUT", "faults", {"rules": rules, "latency_ms": latency_ms})

    def clear_faults(self):
        self.emulator("DELETE", "faults")

    def log(self):
        return self.emulator("GET", "log")

    def upload(self, name, data):
        arg = json.dumps({"path": name, "mode": "overwrite"})
        req = urllib.request.Request(self.emu_url + "/2/files/upload", data=data,
                                     method="POST", headers={
                                         "Authorization": f"Bearer {TOKEN}",
                                         "Dropbox-API-Arg": arg,
                                         "Content-Type": "application/octet-stream"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
        self.files[name] = data

    def access_count(self, i):
        """Requests instance i has answered, by its access log (all its runs)."""
        try:
            with open(self.log_path(i)) as f:
                return sum(1 for l in f if '"target":"access"' in l)
        except FileNotFoundError:
            return 0

    def close(self):
        for p in [self.nginx, *self.procs]:
            try:
                if p is self.nginx:
                    p.send_signal(signal.SIGQUIT)
                    p.wait(timeout=10)
                else:
                    p.kill()
                    p.wait()
            except Exception:
                p.kill()
        self.redis.close()


class Conn:
    """A keep-alive HTTP/1.1 connection, made again after any failure."""

    def __init__(self, hostport, timeout=30):
        self.hostport = hostport
        self.timeout = timeout
        self.c = None

    def get(self, path, headers=None):
        if self.c is None:
            host, port = self.hostport.split(":")
            self.c = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
        try:
            self.c.request("GET", path, headers=headers or {})
            r = self.c.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        except Exception:
            self.c.close()
            self.c = None
            raise


class Load:
    """A steady mixed load over `hostport`: hits, 304s, ranges and listings of the warmed
    files (cached content), and misses of files never asked for before (uncached). Each
    answer is checked against the file's bytes. `threads` lanes of cached requests, one of
    misses."""

    def __init__(self, fleet, hostport, threads=6, misses=True, cold=None, pace=0.0,
                 miss_pace=0.0):
        self.fleet = fleet
        self.hostport = hostport
        self.threads = threads
        self.misses = misses
        self.pace = pace
        self.miss_pace = miss_pace
        self.hot = sorted(n for n in fleet.files if n.startswith("/hot/"))
        self.cold = list(cold if cold is not None else
                         sorted(n for n in fleet.files if n.startswith("/cold/")))
        self.etags = {}
        self.records = []
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.workers = []

    def warm(self):
        """Every hot file, twice (the second a hit), its ETag kept; the listing too."""
        c = Conn(self.hostport)
        for _ in range(2):
            for n in self.hot:
                status, h, body = c.get(f"/{ALIAS}{n}")
                assert status == 200 and body == self.fleet.files[n], (n, status)
                self.etags[n] = h["etag"]
            status, _, _ = c.get(f"/{ALIAS}/hot/", {"Accept": "application/json"})
            assert status == 200

    def one(self, conn, kind, rnd):
        """One request of `kind`: (cached, status, ok, corrupt)."""
        if kind == "miss":
            with self.lock:
                if not self.cold:
                    return None
                n = self.cold.pop()
            want = self.fleet.files[n]
            status, _, body = conn.get(f"/{ALIAS}{n}")
            corrupt = status == 200 and body != want
            return False, status, status == 200 and not corrupt, corrupt
        n = rnd.choice(self.hot)
        want = self.fleet.files[n]
        if kind == "hit":
            status, _, body = conn.get(f"/{ALIAS}{n}")
            corrupt = status == 200 and body != want
            return True, status, status == 200 and not corrupt, corrupt
        if kind == "cond":
            status, _, body = conn.get(f"/{ALIAS}{n}", {"If-None-Match": self.etags[n]})
            corrupt = status == 200 and body != want
            return True, status, status == 304 or (status == 200 and not corrupt), corrupt
        if kind == "range":
            a = rnd.randrange(len(want))
            b = min(len(want) - 1, a + rnd.randrange(1, 16384))
            status, _, body = conn.get(f"/{ALIAS}{n}", {"Range": f"bytes={a}-{b}"})
            corrupt = status == 206 and body != want[a:b + 1]
            return True, status, status == 206 and not corrupt, corrupt
        status, _, body = conn.get(f"/{ALIAS}/hot/", {"Accept": "application/json"})
        ok = False
        if status == 200:
            try:
                ok = len(json.loads(body)["entries"]) == len(self.hot)
            except (ValueError, KeyError):
                ok = False
        return True, status, ok, status == 200 and not ok

    def _lane(self, kinds, seed, pace):
        rnd = random.Random(seed)
        conn = Conn(self.hostport)
        while not self.stop_flag.is_set():
            kind = rnd.choice(kinds)
            t = time.time()
            try:
                r = self.one(conn, kind, rnd)
                if r is None:
                    time.sleep(0.05)
                    continue
                cached, status, ok, corrupt = r
            except Exception as e:
                cached, status, ok, corrupt = kind != "miss", type(e).__name__, False, False
            with self.lock:
                self.records.append((t, time.time(), kind, cached, status, ok, corrupt))
            if pace:
                time.sleep(pace)

    def start(self):
        self.stop_flag.clear()
        cached = ["hit", "hit", "hit", "cond", "cond", "range", "list"]
        self.workers = [threading.Thread(target=self._lane, args=(cached, i, self.pace),
                                         daemon=True)
                        for i in range(self.threads)]
        if self.misses:
            self.workers.append(threading.Thread(target=self._lane,
                                                 args=(["miss"], 99, self.miss_pace),
                                                 daemon=True))
        for w in self.workers:
            w.start()

    def stop(self):
        self.stop_flag.set()
        for w in self.workers:
            w.join(timeout=60)
        with self.lock:
            out, self.records = self.records, []
        return out


def summary(records, fault_end=None):
    """Counts over load records; recovery: from `fault_end` to the end of the last failed
    request that started after it (0 when none failed after it)."""
    failed_cached = [r for r in records if r[3] and not r[5]]
    failed_uncached = [r for r in records if not r[3] and not r[5]]
    statuses = {}
    for r in failed_cached + failed_uncached:
        key = f"{'cached' if r[3] else 'uncached'} {r[4]}"
        statuses[key] = statuses.get(key, 0) + 1
    recovery = 0.0
    if fault_end is not None:
        late = [r[1] for r in records if not r[5] and r[0] >= fault_end]
        recovery = max(late) - fault_end if late else 0.0
    return {
        "requests": len(records),
        "cached": sum(1 for r in records if r[3]),
        "uncached": sum(1 for r in records if not r[3]),
        "failed_cached": len(failed_cached),
        "failed_uncached": len(failed_uncached),
        "statuses": statuses,
        "corrupt": sum(1 for r in records if r[6]),
        "recovery_s": round(recovery, 2),
    }


def check(args):
    """The end-to-end check of several instances behind nginx (tests/fleet.rs)."""
    work = tempfile.mkdtemp(prefix="dropcache-fleet-")
    out = {}
    fleet = Fleet(work, n=args.instances, cluster=args.cluster, hot=30, cold=300,
                  metadata_ttl="1h")
    try:
        load = Load(fleet, fleet.front, threads=4)
        # 1. Each body cached on one instance: warming every file twice over nginx costs one
        # download per file in the whole fleet.
        load.warm()
        log = fleet.log()
        out["files"] = len(load.hot)
        out["downloads"] = log["routes"].get("files/download", {}).get("total", 0)
        out["served_by"] = [fleet.access_count(i) for i in range(args.instances)]
        # 2. A change in Dropbox, seen by every instance (asked directly, not through nginx).
        time.sleep(1.0)  # the feed's lease and first longpoll
        name = load.hot[0]
        new = b"changed " + os.urandom(64)
        conns = [Conn(f"127.0.0.1:{p}") for p in fleet.ports]
        for c in conns:
            assert c.get(f"/{ALIAS}{name}")[2] == fleet.files[name]
        fleet.upload(name, new)
        t0 = time.time()
        seen = [None] * len(conns)
        while None in seen and time.time() - t0 < 10:
            for i, c in enumerate(conns):
                if seen[i] is None and c.get(f"/{ALIAS}{name}")[2] == new:
                    seen[i] = round((time.time() - t0) * 1000)
            time.sleep(0.005)
        out["change_seen_ms"] = seen
        load.etags[name] = conns[0].get(f"/{ALIAS}{name}")[1]["etag"]
        # 3. One instance SIGKILLed under load, then restarted.
        victim = args.instances - 1
        load.start()
        time.sleep(2.0)
        before_kill = time.time()
        fleet.kill_instance(victim)
        time.sleep(2.0)
        served_before = fleet.access_count(victim)
        fleet.start_instance(victim)
        restarted = time.time()
        # 4. Back in rotation: the restarted instance answers its share of the load again
        # (nginx tries it once its fail_timeout is over).
        while fleet.access_count(victim) == served_before and time.time() - restarted < 15:
            time.sleep(0.02)
        out["back_in_rotation_s"] = round(time.time() - restarted, 2)
        time.sleep(2.0)
        records = load.stop()
        out["kill"] = summary(records)
        out["kill"]["killed_at_s"] = round(before_kill - records[0][0], 2) if records else 0
        out["served_after_restart"] = fleet.access_count(victim) - served_before
        c = Conn(fleet.front)
        # Every body still right through nginx.
        bad = [n for n in load.hot if c.get(f"/{ALIAS}{n}")[2] != fleet.files[n]]
        out["wrong_after"] = bad
    finally:
        fleet.close()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("--instances", type=int, default=3)
    c.add_argument("--cluster", action="store_true")
    args = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: cargo build --release (or set DROPCACHE_BIN)")
    check(args)


if __name__ == "__main__":
    main()
