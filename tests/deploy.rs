//! deploy/ run for real: nginx with `deploy/nginx/dropcache.conf` in front of the `dropcache`
//! binary configured from `deploy/dropcache.toml` (the emulator upstream, a real Redis), a real
//! Prometheus scraping it with `deploy/prometheus/`, promtool on the rules, the alert tests and
//! the live metrics, the Grafana dashboard's queries evaluated by that Prometheus, and
//! `systemd-analyze verify` on the unit. Then the process itself: JSON logs, the log level
//! changed by SIGHUP and by the admin API, and SIGTERM draining a request under way.
//!
//! nginx, prometheus, promtool and systemd-analyze come from Debian's packages (tests/run
//! installs them when missing).

mod common;

use common::redis::RedisServer;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "deploy-test-token";
const ADMIN: &str = "deploy-admin-token-0123456789";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A program the test needs, or a clear failure saying how to get it.
fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} is not installed: `bash tests/run` installs it (as root), or apt-get install it"
    );
}

/// Runs `cmd` and fails the test, with what it said, unless it succeeds.
fn succeeds(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to 30 s) until `check` holds.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process stopped on drop (killed, or asked with `quit` and waited for, up to 10 s);
/// stderr goes to a file that can be read while it runs.
struct Running {
    child: Child,
    stdout: Option<BufReader<ChildStdout>>,
    stderr: PathBuf,
    /// The signal that stops it with its own children (nginx: QUIT, or its workers outlive a
    /// killed master).
    quit: Option<&'static str>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(sig) = self.quit {
            let asked = Command::new(tool("kill"))
                .args([sig, &self.child.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            let deadline = Instant::now() + Duration::from_secs(10);
            while asked && Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn spawn(mut cmd: Command, dir: &Path, name: &str) -> Running {
        let stderr = dir.join(format!("{name}.stderr"));
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} runs: {e}"));
        let stdout = child.stdout.take().map(BufReader::new);
        Running {
            child,
            stdout,
            stderr,
            quit: None,
        }
    }

    /// Stopped on drop by `sig`, and waited for.
    fn quit_with(mut self, sig: &'static str) -> Running {
        self.quit = Some(sig);
        self
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.as_mut().unwrap().read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new(tool("kill"))
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }
}

/// The `dropcache emulator` binary over `root`, with `extra` arguments; its base URL.
fn emulator(dir: &Path, root: &Path, extra: &[&str]) -> (Running, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dropcache"));
    cmd.args(["emulator", "--listen", "127.0.0.1:0", "--root"])
        .arg(root)
        .args(extra)
        .env("DROPCACHE_EMULATOR_TOKEN", TOKEN);
    let mut emu = Running::spawn(cmd, dir, "emulator");
    let url = emu.line().strip_prefix("listening on ").unwrap().to_owned();
    (emu, url)
}

/// `dropcache serve` with `config`; its proxy URL and (if printed) its metrics URL.
fn proxy(dir: &Path, config: &Path) -> (Running, String, Option<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dropcache"));
    cmd.args(["serve", "--config"])
        .arg(config)
        .env("DROPCACHE_ACCOUNT_SITE_ACCESS_TOKEN", TOKEN)
        .env("DROPCACHE_ADMIN_TOKEN", ADMIN)
        .env_remove("RUST_LOG");
    let mut p = Running::spawn(cmd, dir, "proxy");
    let first = p.line();
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{first:?}: {}", p.stderr()))
        .to_owned();
    let metrics = if config_text(config).contains("[metrics]") {
        let line = p.line();
        Some(line.strip_prefix("metrics on ").unwrap().to_owned())
    } else {
        None
    };
    (p, url, metrics)
}

fn config_text(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// An answer from curl: status, lowercased head, body.
struct Got {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map(str::trim)
    }
}

fn curl(url: &str, extra: &[&str]) -> Got {
    let dir = tempfile::tempdir().unwrap();
    let head = dir.path().join("h");
    let out = Command::new("curl")
        .args(["-s", "--max-time", "30", "-D"])
        .arg(&head)
        .args(extra)
        .arg(url)
        .output()
        .expect("curl is installed");
    assert!(out.status.success(), "curl {url}: {:?}", out.status);
    let head = std::fs::read_to_string(head).unwrap().to_lowercase();
    Got {
        status: head.split(' ').nth(1).unwrap().parse().unwrap(),
        head,
        body: out.stdout,
    }
}

/// A Prometheus HTTP API query's `data`.
fn prom(base: &str, path: &str, query: Option<&str>) -> Value {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "10", "-G"]);
    if let Some(q) = query {
        cmd.arg("--data-urlencode").arg(format!("query={q}"));
    }
    let out = cmd.arg(format!("{base}{path}")).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(v["status"], "success", "{path} {query:?}: {v}");
    v["data"].clone()
}

/// The access-log events (JSON) in `stderr`.
fn access_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v| v["target"] == "access")
        .collect()
}

/// deploy/dropcache.toml with this test's addresses, directories and upstream.
fn deploy_config(dir: &Path, emu: &str, redis: &str) -> PathBuf {
    let text = read("deploy/dropcache.toml")
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"")
        .replace("listen = \"127.0.0.1:9181\"", "listen = \"127.0.0.1:0\"")
        .replace(
            "path = \"/var/lib/dropcache/store\"",
            &format!("redis_url = {redis:?}"),
        )
        .replace(
            "\"/var/cache/dropcache\"",
            &format!("{:?}", dir.join("cache").display().to_string()),
        )
        .replace(
            "[dropbox]\n",
            &format!("[dropbox]\napi_url = {emu:?}\ncontent_url = {emu:?}\nnotify_url = {emu:?}\n"),
        )
        + "\n[[account]]\nalias = \"site\"\nroot = \"/site\"\n";
    let path = dir.join("dropcache.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn nginx_in_front_and_prometheus_scraping_with_the_shipped_files() {
    let (nginx, prometheus, promtool) = (tool("nginx"), tool("prometheus"), tool("promtool"));
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let root = dir.join("dropbox");
    std::fs::create_dir_all(root.join("site")).unwrap();
    std::fs::write(root.join("site/index.html"), "<h1>hello</h1>\n").unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("site/big.bin"), &big).unwrap();

    // The shipped configs validate as they are.
    for file in ["deploy/dropcache.toml", "deploy/container/dropcache.toml"] {
        succeeds(
            Command::new(env!("CARGO_BIN_EXE_dropcache"))
                .args(["check-config", "--config"])
                .arg(repo(file)),
            file,
        );
    }

    let redis = RedisServer::start();
    let (_emu, emu_url) = emulator(dir, &root, &[]);
    let config = deploy_config(dir, &emu_url, &redis.url);
    let (proxy, proxy_url, metrics_url) = proxy(dir, &config);
    let metrics_url = metrics_url.expect("deploy/dropcache.toml has a metrics listener");
    let upstream = proxy_url.strip_prefix("http://").unwrap();

    // nginx with the site file as shipped, but for its two addresses.
    let port = free_port();
    let site = read("deploy/nginx/dropcache.conf")
        .replace("server 127.0.0.1:8080;", &format!("server {upstream};"))
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
    assert!(site.contains(&format!("server {upstream};")) && site.contains(&format!(":{port};")));
    std::fs::write(dir.join("site.conf"), site).unwrap();
    // The snippet it includes, where nginx looks for it (beside nginx.conf).
    std::fs::create_dir_all(dir.join("snippets")).unwrap();
    std::fs::write(
        dir.join("snippets/dropcache-proxy.conf"),
        read("deploy/nginx/snippets/dropcache-proxy.conf"),
    )
    .unwrap();
    let d = dir.display();
    std::fs::write(
        dir.join("nginx.conf"),
        format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  log_format ids '$request_id $remote_addr $status';\n  access_log {d}/nginx-access.log ids;\n  client_body_temp_path {d}/body;\n\
             proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
             scgi_temp_path {d}/scgi;\n  include {d}/site.conf;\n}}\n"
        ),
    )
    .unwrap();
    let nginx_args = |extra: &[&str]| {
        let mut c = Command::new(&nginx);
        c.arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(extra);
        c
    };
    succeeds(&mut nginx_args(&["-t", "-q"]), "nginx -t");
    // QUIT: nginx's master stops its workers and exits (a killed master leaves them running).
    let _nginx = Running::spawn(nginx_args(&[]), dir, "nginx").quit_with("-QUIT");
    let front = format!("http://127.0.0.1:{port}");
    eventually("nginx listens", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    // Through nginx from another address than nginx's own (127.0.0.2), with a forged
    // X-Forwarded-For that must not be believed.
    let client = ["--interface", "127.0.0.2", "-H", "X-Forwarded-For: 6.6.6.6"];
    let first = curl(&format!("{front}/site/index.html"), &client);
    assert_eq!(
        (first.status, first.body.as_slice()),
        (200, &b"<h1>hello</h1>\n"[..])
    );
    assert_eq!(first.header("x-cache-status"), Some("miss"));
    let etag = first.header("etag").expect("an etag").to_owned();
    let again = curl(&format!("{front}/site/index.html"), &client);
    assert_eq!(again.header("x-cache-status"), Some("hit"));
    let not_modified = curl(
        &format!("{front}/site/index.html"),
        &[&client[..], &["-H", &format!("If-None-Match: {etag}")]].concat(),
    );
    assert_eq!((not_modified.status, not_modified.body.len()), (304, 0));
    let ranged = curl(
        &format!("{front}/site/big.bin"),
        &[&client[..], &["-H", "Range: bytes=1000-1999"]].concat(),
    );
    assert_eq!(ranged.status, 206, "{}", ranged.head);
    assert_eq!(
        ranged.header("content-range"),
        Some("bytes 1000-1999/300000")
    );
    assert_eq!(ranged.body, &big[1000..2000]);
    let whole = curl(&format!("{front}/site/big.bin"), &client);
    assert_eq!(whole.body, big, "a large body streams through whole");
    // Operators' routes are not public.
    assert_eq!(curl(&format!("{front}/metrics"), &client).status, 404);
    assert_eq!(curl(&format!("{front}/admin/cache"), &client).status, 403);

    // dropcache's access log: one JSON line per request, the client nginx saw (not nginx's
    // own address, not the forged one), the id nginx made, the status and cache status.
    let ids: Vec<String> = [&first, &not_modified, &ranged]
        .iter()
        .map(|g| g.header("x-request-id").expect("echoed").to_owned())
        .collect();
    eventually("the access lines are written", || {
        let lines = access_lines(&proxy.stderr());
        ids.iter().all(|id| {
            lines
                .iter()
                .any(|l| l["fields"]["request_id"] == id.as_str())
        })
    });
    let lines = access_lines(&proxy.stderr());
    for (id, status, cache) in [
        (&ids[0], 200, "MISS"),
        (&ids[1], 304, "HIT"),
        (&ids[2], 206, "MISS"),
    ] {
        let l = lines
            .iter()
            .find(|l| l["fields"]["request_id"] == id.as_str())
            .unwrap();
        let f = &l["fields"];
        assert_eq!(f["client"], "127.0.0.2", "{l}");
        assert_eq!(
            (f["status"].as_u64(), f["cache"].as_str()),
            (Some(status), Some(cache)),
            "{l}"
        );
        let message = f["message"].as_str().unwrap();
        assert!(message.starts_with("127.0.0.2 - - ["), "{message}");
        assert!(message.contains(&format!("id={id}")), "{message}");
        assert!(!message.contains("6.6.6.6"), "{message}");
    }
    // The ids are nginx's own $request_id, as its access log has them.
    let nginx_log = std::fs::read_to_string(dir.join("nginx-access.log")).unwrap();
    for id in &ids {
        assert!(
            nginx_log.contains(&format!("{id} 127.0.0.2 ")),
            "{id}: {nginx_log}"
        );
    }

    // promtool: the scrape config, the rules and their tests, and the live metrics.
    let prom_dir = dir.join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let metrics_addr = metrics_url
        .strip_prefix("http://")
        .unwrap()
        .trim_end_matches("/metrics");
    let prom_config = read("deploy/prometheus/prometheus.yml")
        .replace("127.0.0.1:9181", metrics_addr)
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    std::fs::write(prom_dir.join("prometheus.yml"), prom_config).unwrap();
    std::fs::copy(
        repo("deploy/prometheus/alerts.yml"),
        prom_dir.join("alerts.yml"),
    )
    .unwrap();
    for args in [
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "alerts.yml"],
    ] {
        succeeds(
            Command::new(&promtool).args(args).current_dir(&prom_dir),
            &format!("promtool {args:?}"),
        );
    }
    succeeds(
        Command::new(&promtool)
            .args(["test", "rules", "alerts_test.yml"])
            .current_dir(repo("deploy/prometheus")),
        "promtool test rules",
    );
    let scrape = curl(&metrics_url, &[]);
    assert_eq!(scrape.status, 200);
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut check.stdin.take().unwrap(), &scrape.body).unwrap();
    let out = check.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}"
    );

    // A real Prometheus scrapes the metrics listener and loads the alert rules.
    let web = free_port();
    let base = format!("http://127.0.0.1:{web}");
    let mut cmd = Command::new(&prometheus);
    cmd.arg(format!(
        "--config.file={}",
        prom_dir.join("prometheus.yml").display()
    ))
    .arg(format!(
        "--storage.tsdb.path={}",
        prom_dir.join("data").display()
    ))
    .arg(format!("--web.listen-address=127.0.0.1:{web}"));
    let _prometheus = Running::spawn(cmd, dir, "prometheus");
    eventually("Prometheus reports dropcache up", || {
        let out = Command::new("curl")
            .args(["-s", &format!("{base}/api/v1/targets")])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v["data"]["activeTargets"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["labels"]["job"] == "dropcache" && t["health"] == "up")
        })
    });
    let up = prom(&base, "/api/v1/query", Some("up{job=\"dropcache\"}"));
    assert_eq!(up["result"][0]["value"][1], "1", "{up}");
    let served = prom(
        &base,
        "/api/v1/query",
        Some("sum by (cache) (dropcache_http_requests_total{route=\"/{alias}/{path}\"})"),
    );
    let caches: Vec<&str> = served["result"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["metric"]["cache"].as_str())
        .collect();
    assert!(
        caches.contains(&"HIT") && caches.contains(&"MISS"),
        "{served}"
    );
    for series in [
        "dropcache_http_request_duration_seconds_bucket",
        "dropcache_http_response_bytes_total",
        "dropcache_dropbox_requests_total",
        "dropcache_cache_bytes",
        "dropcache_metadata_lookups_total",
        "dropcache_feed_lag_seconds",
        "dropcache_account_relink_required",
        "dropcache_store_up",
    ] {
        let r = prom(&base, "/api/v1/query", Some(series));
        assert!(
            !r["result"].as_array().unwrap().is_empty(),
            "no {series} in Prometheus"
        );
    }
    let rules = prom(&base, "/api/v1/rules", None);
    let loaded: Vec<&Value> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert_eq!(loaded.len(), 6, "{rules}");
    assert!(loaded.iter().all(|r| r["health"] == "ok"), "{rules}");
    // Every query of the Grafana dashboard runs on this Prometheus and names real metrics.
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/dropcache.json")).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| {
            t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
        })
        .collect();
    assert!(exprs.len() >= 16);
    let exposed = String::from_utf8(scrape.body).unwrap();
    for e in &exprs {
        prom(&base, "/api/v1/query", Some(e));
        let names: Vec<&str> = e
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("dropcache_"))
            .collect();
        assert!(!names.is_empty(), "{e}");
        for n in names {
            assert!(
                exposed.contains(n),
                "the dashboard asks for {n}, which is not exported"
            );
        }
    }
    drop(redis);
}

#[test]
fn the_shipped_unit_verifies_and_the_container_runs_as_a_user() {
    // systemd-analyze verify checks every directive and that the commands exist: run it on
    // the unit with the binary's path put where the unit expects /usr/local/bin/dropcache.
    let analyze = tool("systemd-analyze");
    let dir = tempfile::tempdir().unwrap();
    let unit = read("deploy/systemd/dropcache.service");
    for must in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "CacheDirectory=dropcache",
        "StateDirectory=dropcache",
        "NoNewPrivileges=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ] {
        assert!(unit.contains(must), "{must}");
    }
    let path = dir.path().join("dropcache.service");
    let verify = |text: &str| {
        std::fs::write(&path, text).unwrap();
        Command::new(&analyze)
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap()
    };
    let out = verify(&unit.replace("/usr/local/bin/dropcache", env!("CARGO_BIN_EXE_dropcache")));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
    // ... and a broken copy fails, so the check means something.
    let out = verify(&unit.replace("ProtectSystem=strict", "ProtectSystem=sometimes"));
    assert!(!out.status.success() || !out.stderr.is_empty());

    // The Dockerfile (no Docker engine here to build it): two stages, the runtime one as a
    // numbered non-root user, and everything it copies exists.
    let docker = read("deploy/container/Dockerfile");
    let stages: Vec<&str> = docker.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(docker.contains("COPY --from=build "));
    let user = docker
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(!user.contains("root") && !user.contains(" 0"), "{user}");
    let runtime = &docker[docker.rfind("FROM ").unwrap()..];
    assert!(runtime.find("USER ").unwrap() < runtime.find("ENTRYPOINT").unwrap());
    for line in docker
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for src in &words[1..words.len() - 1] {
            assert!(repo(src).exists(), "{line}: {src} is not in the repository");
        }
    }
}

#[test]
fn the_process_logs_json_takes_a_new_level_and_drains_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let root = dir.join("dropbox");
    std::fs::create_dir_all(root.join("site")).unwrap();
    std::fs::write(root.join("site/slow.txt"), "worth the wait").unwrap();
    let (_emu, emu_url) = emulator(dir, &root, &["--latency", "1500ms", "--admin"]);
    let write = |level: &str| {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_timeout = \"10s\"\n\
             [log]\nformat = \"json\"\nlevel = {level:?}\n\
             [dropbox]\napi_url = {emu_url:?}\ncontent_url = {emu_url:?}\n\
             [store]\npath = {:?}\n[cache]\ndir = {:?}\n\
             [[account]]\nalias = \"site\"\nroot = \"/site\"\n",
            dir.join("store").display().to_string(),
            dir.join("cache").display().to_string(),
        );
        std::fs::write(dir.join("proxy.toml"), text).unwrap();
    };
    write("warn");
    let (p, url, _) = proxy(dir, &dir.join("proxy.toml"));
    let bearer = format!("Authorization: Bearer {ADMIN}");
    let purge = || {
        let got = curl(
            &format!("{url}/admin/purge?account=site"),
            &["-X", "POST", "-H", &bearer],
        );
        assert_eq!(got.status, 200);
    };
    let purged_lines = |p: &Running| p.stderr().matches("\"message\":\"purged\"").count();

    // At warn, a purge's info line is not written.
    purge();
    assert_eq!(purged_lines(&p), 0);
    assert!(
        !p.stderr().contains("proxy started"),
        "info filtered at start"
    );
    // SIGHUP re-reads the file: now at info.
    write("info");
    p.signal("-HUP");
    eventually("SIGHUP applied", || {
        p.stderr().contains("SIGHUP: log.level applied")
    });
    purge();
    eventually("the purge is logged", || purged_lines(&p) == 1);
    // The admin API reads and sets it too; a bad level is refused and changes nothing.
    let level = curl(&format!("{url}/admin/log"), &["-H", &bearer]);
    assert_eq!(
        serde_json::from_slice::<Value>(&level.body).unwrap()["level"],
        "info"
    );
    let bad = curl(
        &format!("{url}/admin/log?level=loud%3D%3D"),
        &["-X", "PUT", "-H", &bearer],
    );
    assert_eq!(bad.status, 400, "{}", String::from_utf8_lossy(&bad.body));
    let set = curl(
        &format!("{url}/admin/log?level=warn"),
        &["-X", "PUT", "-H", &bearer],
    );
    assert_eq!(set.status, 200);
    purge();
    assert_eq!(purged_lines(&p), 1, "back at warn");
    // Every line is JSON; the access lines carry their fields.
    let access = access_lines(&p.stderr());
    assert!(
        access
            .iter()
            .any(|l| l["fields"]["target_uri"] == "/admin/log?level=warn")
    );
    assert!(!p.stderr().contains(ADMIN), "the admin token in the logs");

    // A client that gives up before the answer: logged as 499.
    let gave_up = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "0.5",
            &format!("{url}/site/slow.txt?leaving"),
        ])
        .status()
        .unwrap();
    assert!(!gave_up.success(), "curl timed out");
    eventually("the abandoned request is logged", || {
        access_lines(&p.stderr()).iter().any(|l| {
            l["fields"]["target_uri"] == "/site/slow.txt?leaving" && l["fields"]["status"] == 499
        })
    });
    // An OAuth callback's code and state are not logged.
    let callback = curl(
        &format!("{url}/oauth/callback?code=SECRETCODE&state=x.y.z"),
        &[],
    );
    assert_ne!(callback.status, 200);
    eventually("the callback is logged", || {
        p.stderr().contains("/oauth/callback?[redacted]")
    });
    assert!(!p.stderr().contains("SECRETCODE"));

    // SIGTERM with a request under way (1.5 s of Dropbox latency, twice): it finishes, new
    // connections are refused meanwhile, and the process exits 0. First the abandoned
    // request's call to Dropbox ends, so what is seen in flight below is this request's.
    let in_flight = || {
        let log = curl(&format!("{emu_url}/_emulator/log"), &[]);
        serde_json::from_slice::<Value>(&log.body)
            .ok()
            .and_then(|v| v["in_flight"].as_u64())
    };
    eventually("no call to Dropbox in flight", || in_flight() == Some(0));
    // The calls a request for the file makes (another call in flight, the change feed's, say,
    // would not tell that this request has arrived). The emulator counts a call once answered.
    let file_calls = || {
        let log = curl(&format!("{emu_url}/_emulator/log"), &[]);
        let log = serde_json::from_slice::<Value>(&log.body).unwrap_or_default();
        ["files/download", "files/get_metadata"]
            .iter()
            .filter_map(|r| log["routes"][r]["total"].as_u64())
            .sum::<u64>()
    };
    let before = file_calls();
    let slow = {
        let url = url.clone();
        std::thread::spawn(move || curl(&format!("{url}/site/slow.txt"), &[]))
    };
    // Once it is under way: its metadata is in (1.5 s), its download is on its way (1.5 s).
    eventually("the request is under way", || file_calls() > before);
    let asked = Instant::now();
    p.signal("-TERM");
    let addr = url.strip_prefix("http://").unwrap().to_owned();
    eventually("new connections are refused", || {
        std::net::TcpStream::connect(&addr).is_err()
    });
    let got = slow.join().unwrap();
    assert_eq!(
        (got.status, got.body.as_slice()),
        (200, &b"worth the wait"[..])
    );
    let mut p = p;
    let status = loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            break s;
        }
        assert!(asked.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    let stderr = p.stderr();
    for line in stderr.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert!(
        access_lines(&stderr)
            .iter()
            .any(|l| l["fields"]["target_uri"] == "/site/slow.txt" && l["fields"]["status"] == 200),
        "the drained request is logged"
    );
}
