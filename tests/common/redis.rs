//! A real `redis-server` for tests, on a free loopback port, stopped on drop.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub url: String,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        // Ask the kernel for a free port, then hand it to redis-server.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = spawn(port, dir.path());
        RedisServer {
            child: Some(child),
            url: format!("redis://127.0.0.1:{port}/0"),
            port,
            dir,
        }
    }

    /// Kills the server (an outage).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty: nothing is saved).
    pub fn restart(&mut self) {
        self.kill();
        self.child = Some(spawn(self.port, self.dir.path()));
    }
}

fn spawn(port: u16, dir: &std::path::Path) -> Child {
    spawn_with(port, dir, &[])
}

fn spawn_with(port: u16, dir: &std::path::Path, extra: &[&str]) -> Child {
    let child = Command::new("redis-server")
        .args(extra)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed (.ci/run installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not start on port {port}"
        );
        std::thread::yield_now();
    }
    child
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A real three-primary Redis Cluster (no replicas) on free loopback ports, made with
/// `redis-cli --cluster create`; stopped on drop.
pub struct RedisCluster {
    children: Vec<Child>,
    pub ports: Vec<u16>,
    /// `redis+cluster://127.0.0.1:a,127.0.0.1:b,127.0.0.1:c`, as dropcache's config takes it.
    pub url: String,
    dir: tempfile::TempDir,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let ports = cluster_ports(3);
        let mut children = Vec::new();
        for port in &ports {
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir(&node_dir).unwrap();
            children.push(spawn_with(
                *port,
                &node_dir,
                &["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"],
            ));
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli is installed (.ci/run installs it)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster {
            children,
            url: format!("redis+cluster://{}", addrs.join(",")),
            ports,
            dir,
        };
        cluster.wait_ok();
        cluster
    }

    /// Waits until every node says the cluster is up and agrees on all slots.
    fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in &self.ports {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "cluster", "info"])
                    .output()
                    .unwrap();
                let info = String::from_utf8_lossy(&info.stdout);
                if info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster never came up: {info}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Each node's own URL (for direct looks at what a node holds).
    pub fn node_urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `n` ports that are free, and whose cluster bus ports (+10000) are free too.
fn cluster_ports(n: usize) -> Vec<u16> {
    // Spread by process and by call, so concurrent tests rarely try the same ones.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut ports = Vec::new();
    let mut step = std::process::id().wrapping_mul(131) + call * 997;
    while ports.len() < n {
        step = step.wrapping_add(7);
        let candidate = 20000 + (step % 9000) as u16;
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if !ports.contains(&candidate) && free(candidate) && free(candidate + 10000) {
            ports.push(candidate);
        }
    }
    ports
}
