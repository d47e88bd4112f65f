//! The command line: `check-config` (the example validates; a bad file fails naming the key),
//! `serve --config` in front of the `emulator` binary, and `demo` serving its sample, all
//! run as real processes and fetched with curl.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

fn check(path: &std::path::Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dropcache"))
        .args(["check-config", "--config"])
        .arg(path)
        .env_remove("DROPCACHE_ACCOUNT_ALICE_ACCESS_TOKEN")
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn example_config_validates_as_shipped_and_its_account_with_the_token_from_the_environment() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dropcache.example.toml");
    let (ok, out, err) = check(&example, &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains("ok (0 account(s), listen 127.0.0.1:8080)"),
        "{out}"
    );
    // Its account, uncommented as the file says (one "#" off each line from `#[[account]]`).
    let text = std::fs::read_to_string(&example).unwrap();
    let at = text.find("#[[account]]").expect("the commented account");
    let uncommented: String = text[at..]
        .lines()
        .map(|l| format!("{}\n", l.strip_prefix('#').unwrap_or(l)))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let example = dir.path().join("with-account.toml");
    std::fs::write(&example, format!("{}{uncommented}", &text[..at])).unwrap();
    let (ok, out, err) = check(
        &example,
        &[("DROPCACHE_ACCOUNT_ALICE_ACCESS_TOKEN", "sl.from-env")],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("ok (1 account(s), listen 127.0.0.1:8080)"),
        "{out}"
    );
    assert!(!out.contains("sl.from-env") && !err.contains("sl.from-env"));
    // Without the token the account is incomplete, and the key is named.
    let (ok, _, err) = check(&example, &[]);
    assert!(!ok);
    assert!(err.contains("account[0].access_token"), "{err}");
}

#[test]
fn bad_files_fail_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[cache]\nmetadata_ttl = \"forever\"\n",
            "cache.metadata_ttl",
        ),
        ("[cache]\nttl = \"1s\"\n", "unknown field `ttl`"),
        ("[server\n", "not valid TOML at line 1, column 8"),
    ];
    for (text, want) in cases {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let (ok, _, err) = check(&path, &[]);
        assert!(!ok, "{text}");
        assert!(err.contains(want), "{text:?}: {err}");
    }
    let (ok, _, err) = check(&dir.path().join("missing.toml"), &[]);
    assert!(!ok && err.contains("cannot read"), "{err}");
}

/// A child process killed on drop, with its stdout lines.
struct Running {
    child: Child,
    stdout: BufReader<ChildStdout>,
    /// What the process has written to stderr so far (read by a thread as it comes, so the
    /// pipe never fills and a test can wait for a line).
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn start(args: &[&str], env: &[(&str, &str)]) -> (Running, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dropcache"))
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let reader = {
            let stderr = stderr.clone();
            let mut pipe = BufReader::new(child.stderr.take().unwrap());
            std::thread::spawn(move || {
                let mut line = String::new();
                while pipe.read_line(&mut line).is_ok_and(|n| n > 0) {
                    stderr.lock().unwrap().push_str(&line);
                    line.clear();
                }
            })
        };
        let mut running = Running {
            child,
            stdout,
            stderr,
            reader: Some(reader),
        };
        let first = running.line();
        let url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line {first:?}"))
            .to_owned();
        (running, url)
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("stdout");
        line.trim_end().to_owned()
    }

    /// Waits (up to 20 s) until what the process has written to stderr satisfies `done`.
    fn wait_for_stderr(&self, done: impl Fn(&str) -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !done(&self.stderr.lock().unwrap()) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Stops the process (SIGKILL) and returns what it wrote to stderr.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        std::mem::take(&mut *self.stderr.lock().unwrap())
    }
}

/// curl's status code, headers and body for `url`.
fn curl(url: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("h");
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", "-D"])
        .arg(&headers)
        .args(extra)
        .arg(url)
        .output()
        .expect("curl is installed");
    assert!(out.status.success(), "curl {url}: {:?}", out.status);
    let head = std::fs::read_to_string(headers).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_lowercase(), out.stdout)
}

/// `dropcache emulator` over `root`, with the token `cli-token`; and its URL.
fn emulator(root: &Path) -> (Running, String) {
    Running::start(
        &[
            "emulator",
            "--listen",
            "127.0.0.1:0",
            "--root",
            root.to_str().unwrap(),
        ],
        &[("DROPCACHE_EMULATOR_TOKEN", "cli-token")],
    )
}

/// A `serve` config in `dir` in front of the emulator at `emu_url`: the account `site` rooted
/// at `/www` (its token from the environment), and `extra` sections.
fn serve_config(dir: &Path, emu_url: &str, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{extra}[dropbox]\napi_url = {emu_url:?}\ncontent_url = {emu_url:?}\n\
         [store]\npath = {:?}\n[cache]\ndir = {:?}\n\
         [[account]]\nalias = \"site\"\nroot = \"/www\"\n",
        dir.join("store").display().to_string(),
        dir.join("cache").display().to_string()
    )
}

#[test]
fn serve_proxies_the_emulator_binary_with_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dropbox");
    std::fs::create_dir_all(root.join("www/css")).unwrap();
    std::fs::write(root.join("www/css/site.css"), "body{}\n").unwrap();
    std::fs::write(root.join("secret.txt"), "no").unwrap();
    let (_emulator, emu_url) = emulator(&root);
    let config = dir.path().join("proxy.toml");
    std::fs::write(&config, serve_config(dir.path(), &emu_url, "")).unwrap();
    let (proxy, url) = Running::start(
        &["serve", "--config", config.to_str().unwrap()],
        &[("DROPCACHE_ACCOUNT_SITE_ACCESS_TOKEN", "cli-token")],
    );
    let (status, head, body) = curl(&format!("{url}/site/css/site.css"), &[]);
    assert_eq!(status, 200, "{head}");
    assert_eq!(body, b"body{}\n");
    assert!(
        head.contains("content-type: text/css; charset=utf-8"),
        "{head}"
    );
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .to_owned();
    let (status, _, body) = curl(
        &format!("{url}/site/css/site.css"),
        &["-H", &format!("If-None-Match: {etag}")],
    );
    assert_eq!((status, body.len()), (304, 0));
    assert_eq!(curl(&format!("{url}/site/secret.txt"), &[]).0, 404);
    assert_eq!(
        curl(&format!("{url}/site/../secret.txt"), &["--path-as-is"]).0,
        400
    );
    let logs = proxy.stop();
    // One access line per request, nginx-style, with the cache status.
    assert!(
        logs.contains("\"GET /site/css/site.css HTTP/1.1\" 304 0 \"-\" \"curl/"),
        "{logs}"
    );
    assert!(
        logs.contains("\"GET /site/secret.txt HTTP/1.1\" 404 "),
        "{logs}"
    );
    // Written whole, as the text formatter writes any event: time, level, target, then the
    // line; the times to the millisecond, the id last.
    let line = logs
        .lines()
        .find(|l| l.contains("\"GET /site/secret.txt "))
        .unwrap();
    let (stamp, rest) = line
        .split_once("  INFO access: 127.0.0.1 - - [")
        .expect(line);
    assert!(
        stamp.len() == 27 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{line}"
    );
    let (_, rt) = rest.split_once(" rt=").expect(line);
    let (secs, id) = rt.split_once(" id=").expect(line);
    let (whole, ms) = secs.split_once('.').expect(line);
    assert!(
        whole.parse::<u64>().is_ok() && ms.len() == 3 && ms.parse::<u16>().is_ok(),
        "{line}"
    );
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{line}"
    );
    assert!(
        !logs.contains('\x1b'),
        "no colour codes in a log that is not a terminal"
    );
    assert!(!logs.contains("cli-token"), "a token in the logs: {logs}");
}

#[test]
fn serve_refuses_a_bad_config_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[http]\nmax_ranges = 0\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dropcache"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("http.max_ranges"));
}

#[test]
fn demo_serves_its_sample_with_nothing_to_set_up() {
    let dir = tempfile::tempdir().unwrap();
    let (mut demo, url) = Running::start(
        &[
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    let banner: Vec<String> = (0..9).map(|_| demo.line()).collect();
    let banner = banner.join("\n");
    assert!(
        banner.contains(&format!("{url}/demo/index.html")),
        "{banner}"
    );
    assert!(banner.contains(&format!("{url}/www/ ")), "{banner}");
    // The same folder as a site: index, clean URL, a redirect and a rewrite from its
    // _redirects, headers from its _headers, its own 404 page; the rule files unseen.
    let (status, head, body) = curl(&format!("{url}/www/"), &[]);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("<title>dropcache demo</title>"));
    assert!(head.contains("x-frame-options: deny"), "{head}");
    let (status, _, body) = curl(&format!("{url}/www/about"), &[]);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("About this demo"));
    let (status, head, _) = curl(&format!("{url}/www/old-about"), &[]);
    assert_eq!(status, 301);
    assert!(head.contains("location: /www/about"), "{head}");
    let (status, _, body) = curl(&format!("{url}/www/pictures/sunset.jpg"), &[]);
    assert_eq!(status, 200);
    assert_eq!(&body[..3], &[0xFF, 0xD8, 0xFF]);
    let (status, _, body) = curl(&format!("{url}/www/no-such-page"), &[]);
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("the site's own"));
    assert_eq!(curl(&format!("{url}/www/_redirects"), &[]).0, 404);
    let (status, head, body) = curl(&format!("{url}/demo/index.html"), &[]);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html; charset=utf-8"));
    assert!(String::from_utf8_lossy(&body).contains("<title>dropcache demo</title>"));
    let (status, head, body) = curl(&format!("{url}/demo/photos/2026/venice.jpg"), &[]);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: image/jpeg"));
    assert_eq!(&body[..3], &[0xFF, 0xD8, 0xFF]);
    let (status, _, body) = curl(&format!("{url}/demo/photos/"), &["-H", "Accept: text/html"]);
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&body);
    assert!(page.contains("href=\"/demo/photos/sunset.jpg\""), "{page}");
    assert!(page.contains("href=\"/demo/photos/2026/\""), "{page}");
    // The private file beside the published folder is out of reach.
    assert_eq!(curl(&format!("{url}/demo/private/notes.txt"), &[]).0, 404);
    assert_eq!(
        curl(
            &format!("{url}/demo/../private/notes.txt"),
            &["--path-as-is"]
        )
        .0,
        400
    );
    assert!(!banner.contains("reuses"), "{banner}");
    // A second run in the same directory says plainly that it reuses it.
    drop(demo);
    let args = [
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--dir",
        dir.path().to_str().unwrap(),
    ];
    let (mut again, _) = Running::start(&args, &[]);
    let banner: String = (0..10).map(|_| again.line() + "\n").collect();
    assert!(
        banner.contains(&format!("It reuses {}", dir.path().display())),
        "{banner}"
    );
}

#[test]
fn serve_writes_no_access_lines_when_the_access_log_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("dropbox");
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::write(root.join("www/a.txt"), "a\n").unwrap();
    let (_emulator, emu_url) = emulator(&root);
    let config = dir.path().join("proxy.toml");
    // Off, then on (the same requests: the second run shows the lines are there to miss).
    for on in [false, true] {
        let log = format!("[log]\naccess_log = {on}\n");
        std::fs::write(&config, serve_config(dir.path(), &emu_url, &log)).unwrap();
        let (proxy, url) = Running::start(
            &["serve", "--config", config.to_str().unwrap()],
            &[("DROPCACHE_ACCOUNT_SITE_ACCESS_TOKEN", "cli-token")],
        );
        for _ in 0..3 {
            assert_eq!(curl(&format!("{url}/site/a.txt"), &[]).0, 200);
        }
        // Then 200 over 16 connections at once: the workers gather their lines and write them
        // when out of work, so once the answers are in and the proxy is idle, every line is
        // written, whole, with no shutdown (the SIGKILL below leaves no time for anything
        // else). The wait is for the idle proxy's writes, not a shutdown: a batch that were
        // only written at 32 KiB, a second's age or shutdown would never come.
        let urls: Vec<String> = (0..200)
            .map(|i| format!("{url}/site/a.txt?n={i}"))
            .collect();
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}\n", "-Z"])
            .args(["--parallel-max", "16"])
            .args(&urls)
            .output()
            .unwrap();
        let codes = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            codes.lines().filter(|c| *c == "200").count(),
            200,
            "{codes}"
        );
        let access_lines = |logs: &str| logs.matches(" INFO access: ").count();
        if on {
            proxy.wait_for_stderr(|logs| access_lines(logs) >= 203);
        }
        let logs = proxy.stop();
        let lines: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(" INFO access: "))
            .collect();
        assert_eq!(
            lines.len(),
            if on { 203 } else { 0 },
            "access_log = {on}: {logs}"
        );
        let mut seen: Vec<u32> = lines
            .iter()
            .filter_map(|l| {
                // Each line whole: its own timestamp, the request, the status, the id at the end.
                assert!(l.starts_with("20"), "{l}");
                assert!(l.contains("\" 200 "), "{l}");
                assert!(
                    l.split(" id=").nth(1).is_some_and(|id| id.len() == 32),
                    "{l}"
                );
                let n = l.split("?n=").nth(1)?.split(' ').next()?;
                Some(n.parse().unwrap())
            })
            .collect();
        seen.sort_unstable();
        let want: Vec<u32> = if on { (0..200).collect() } else { vec![] };
        assert_eq!(seen, want);
    }
}
