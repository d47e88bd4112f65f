"""What the benchmark scripts share: the release binary ($DROPCACHE_BIN instead, if set),
a free port, and starting one of the binary's commands."""
import os
import shutil
import signal
import socket
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("DROPCACHE_BIN") or os.path.join(ROOT, "target", "release", "dropcache")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hit_config(port, emu, redis_url, cache_dir, access_log=False, max_size="4GiB", cache_extra=""):
    """The config of a `dropcache serve` on `port` in front of the emulator at `emu` (every
    Dropbox host), with Redis at `redis_url`, publishing `/site` as the account `b` (token
    BENCHTOKEN): what the hit-path benchmarks measure. `cache_extra`: more `[cache]` lines."""
    return f"""[server]
listen = "127.0.0.1:{port}"
[log]
level = "warn"
access_log = {"true" if access_log else "false"}
[dropbox]
api_url = "{emu}"
content_url = "{emu}"
notify_url = "{emu}"
oauth_url = "{emu}"
[store]
redis_url = "{redis_url}"
[cache]
dir = "{cache_dir}"
max_size = "{max_size}"
min_free = "64MiB"
{cache_extra}
[[account]]
alias = "b"
root = "/site"
access_token = "BENCHTOKEN"
"""


def start(args, env=None, log=None):
    """Runs `dropcache ARGS` and waits for its first line, `listening on URL`; returns
    (process, URL). Its log goes to `log` (a file), or nowhere."""
    p = subprocess.Popen([BIN] + args, stdout=subprocess.PIPE,
                         stderr=log or subprocess.DEVNULL,
                         env={**os.environ, **(env or {})}, text=True)
    line = p.stdout.readline().strip()
    if not line.startswith("listening on "):
        p.kill()
        sys.exit(f"{args[0]} did not start: {line!r}")
    return p, line[len("listening on "):]


def stop(procs, grace=10, remove=None):
    """SIGTERM to `procs` (the last started first), then up to `grace` seconds each to exit
    before SIGKILL; then deletes the directory `remove`, if given."""
    for p in reversed(procs):
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
    if remove:
        shutil.rmtree(remove, ignore_errors=True)
