//! A Redis Cluster of the test's own: three `redis-server` primaries (no
//! replicas) on free ports, joined by `redis-cli --cluster create`; killed,
//! and its files removed, when dropped. Never the shared Redis.
//!
//! Blocking (std only), so both keygate-redis's async tests and
//! keygate-cli's process tests use it (`#[path]`).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const REDIS_CLI: &str = "/usr/bin/redis-cli";

/// Nodes of a cluster, started or not.
pub(crate) struct OwnCluster {
    pub ports: Vec<u16>,
    dir: PathBuf,
    children: Vec<Option<Child>>,
}

impl OwnCluster {
    /// Three nodes on free ports, none started yet.
    pub(crate) fn new() -> Self {
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let dir = std::env::temp_dir().join(format!("keygate-cluster-{}", ports[0]));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cluster directory");
        Self {
            children: ports.iter().map(|_| None).collect(),
            ports,
            dir,
        }
    }

    /// A started, formed cluster (every slot served); `Err` says what is
    /// missing (the binaries) or failed.
    pub(crate) fn start() -> Result<Self, String> {
        let mut cluster = Self::new();
        cluster.form()?;
        Ok(cluster)
    }

    /// Starts every node and joins them into one cluster.
    pub(crate) fn form(&mut self) -> Result<(), String> {
        for i in 0..self.ports.len() {
            self.start_node(i)?;
        }
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = Command::new(REDIS_CLI)
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {REDIS_CLI}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        self.wait_ok(Duration::from_secs(20))
    }

    /// Starts node `i` (again, after [`kill`](Self::kill): it keeps its
    /// slots, from its `nodes.conf`) and waits until it answers.
    pub(crate) fn start_node(&mut self, i: usize) -> Result<(), String> {
        assert!(self.children[i].is_none(), "node {i} is running");
        let port = self.ports[i].to_string();
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args(["--cluster-node-timeout", "1000"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {REDIS_SERVER}: {e}"))?;
        self.children[i] = Some(child);
        let start = Instant::now();
        while self.cli(i, &["PING"]).as_deref() != Some("PONG") {
            if start.elapsed() > Duration::from_secs(10) {
                return Err(format!("cluster node on port {port} did not answer"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Waits until every running node says `cluster_state:ok`.
    pub(crate) fn wait_ok(&self, within: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let ok = (0..self.ports.len())
                .filter(|&i| self.children[i].is_some())
                .all(|i| {
                    self.cli(i, &["CLUSTER", "INFO"])
                        .is_some_and(|info| info.contains("cluster_state:ok"))
                });
            if ok {
                return Ok(());
            }
            if start.elapsed() > within {
                return Err(format!("the cluster was not ok within {within:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL to node `i` (no clean shutdown).
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `redis://127.0.0.1:PORT` of every node.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// How many keys node `i` holds.
    pub(crate) fn dbsize(&self, i: usize) -> u64 {
        self.cli(i, &["DBSIZE"])
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("DBSIZE of node {i}"))
    }

    /// `redis-cli -p PORT ARGS…`'s output, trimmed; `None` if it failed.
    pub(crate) fn cli(&self, i: usize, args: &[&str]) -> Option<String> {
        let out = Command::new(REDIS_CLI)
            .args(["-h", "127.0.0.1", "-p", &self.ports[i].to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !text.starts_with("Could not connect")).then_some(text)
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port that is free, and whose cluster bus port (+10 000) is free too,
/// outside the ephemeral range (so no client socket takes it meanwhile).
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = u16::try_from(std::process::id() % 20_000).unwrap_or(0);
    let _ = NEXT.compare_exchange(0, 11_000 + seed, Ordering::Relaxed, Ordering::Relaxed);
    loop {
        let port = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 11_000 + port.wrapping_sub(11_000) % 20_000;
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
}
