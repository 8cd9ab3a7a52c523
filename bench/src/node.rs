//! A Registre node in a child process: the real `registre serve` binary on a
//! database the benchmark seeded, with an identity provider's key the
//! benchmark holds. Keeping the server out of the benchmark's process gives it
//! its own descriptor limit (10,000 WebSocket clients and their 10,000 server
//! ends do not fit under one limit of 20,000) and makes its resident memory
//! its own, readable from /proc/<pid>/status.

use crate::gen::GenConfig;
use anyhow::{bail, Context, Result};
use registre_api::auth::{jwks_json, SigningKey, TokenClaims};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ISSUER: &str = "https://idp.registre.bench";
const AUDIENCE: &str = "registre-bench";

/// The `registre` binary: `REGISTRE_BIN`, else next to this benchmark's binary
/// (`scripts/bench` builds both in `target/release`).
pub fn registre_binary() -> Result<PathBuf> {
    if let Ok(bin) = std::env::var("REGISTRE_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .context("the benchmark binary has no directory")?
        .join("registre");
    if !bin.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p registre-api) or set REGISTRE_BIN",
            bin.display()
        );
    }
    Ok(bin)
}

/// The benchmark's identity provider key: one per process, so that every
/// node of a region accepts the tokens any of them would mint.
fn bench_key() -> Result<Arc<SigningKey>> {
    static KEY: std::sync::OnceLock<Arc<SigningKey>> = std::sync::OnceLock::new();
    if let Some(k) = KEY.get() {
        return Ok(k.clone());
    }
    let key = SigningKey::generate_es256("bench").map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(KEY.get_or_init(|| Arc::new(key)).clone())
}

/// Resident set size of a process, from /proc/<pid>/status.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(kb * 1024)
}

/// A running `registre serve`; killed when dropped.
#[derive(Debug)]
pub struct ChildNode {
    child: tokio::process::Child,
    pub pid: u32,
    pub addr: SocketAddr,
    key: Arc<SigningKey>,
    dir: tempfile::TempDir,
}

impl ChildNode {
    /// The sum of a metric's samples (all label sets) on the node's /metrics.
    pub async fn metric(&self, client: &reqwest::Client, name: &str) -> Option<f64> {
        let text = client
            .get(format!("http://{}/metrics", self.addr))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let mut found = None;
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                continue;
            }
            if let Some(v) = rest
                .rsplit(' ')
                .next()
                .and_then(|v| v.trim().parse::<f64>().ok())
            {
                *found.get_or_insert(0.0) += v;
            }
        }
        found
    }

    /// Starts `registre serve` on `database_url` (already migrated and seeded
    /// or not: the node migrates at start) and waits until /readyz answers 200,
    /// that is until its read model has caught up with the log.
    pub async fn start(database_url: &str, ready_within: Duration) -> Result<Self> {
        Self::start_with_env(database_url, ready_within, &[], None).await
    }

    /// Runs `bench` against a node started with `extra_env` (and on `cpus`,
    /// see [`ChildNode::start_at`]) on a fresh database (`label`) seeded with
    /// one establishment of the generator before the node starts. An error
    /// carries the node's last log lines; the node and the database are gone
    /// afterwards.
    pub async fn on_seeded_db<T>(
        admin_url: &str,
        label: &str,
        extra_env: &[(String, String)],
        cpus: Option<&str>,
        bench: impl AsyncFnOnce(&ChildNode, &GenConfig) -> Result<T>,
    ) -> Result<T> {
        crate::db::with_fresh(admin_url, label, async |db| {
            let (gen_config, _) =
                crate::db::seed_establishment(&*crate::db::sealed_postgres(&db.url).await?).await?;
            let node =
                ChildNode::start_with_env(&db.url, Duration::from_secs(120), extra_env, cpus)
                    .await?;
            let r = bench(&node, &gen_config).await;
            let r = r.with_context(|| format!("node log: {}", node.log_tail()));
            node.stop().await?;
            r
        })
        .await
    }

    /// Like [`ChildNode::start`], with more environment for the node (a
    /// benchmark's limits, say), and on `cpus` (see [`ChildNode::start_at`]).
    pub async fn start_with_env(
        database_url: &str,
        ready_within: Duration,
        extra_env: &[(String, String)],
        cpus: Option<&str>,
    ) -> Result<Self> {
        // A port the kernel just handed out and released: another process
        // could take it in between, which a failed start would then say.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        Self::start_at(database_url, addr, ready_within, extra_env, cpus).await
    }

    /// Like [`ChildNode::start_with_env`], listening on `addr` (a node that
    /// advertises its address to others must know it before it starts).
    /// Every node of one benchmark shares the signing key: the identity
    /// provider of a region is one. With `cpus` (a `taskset` list, "0" or
    /// "0-3"), the node runs on those CPUs only, from its first instruction,
    /// so that it sizes its runtime and its admission control on them as it
    /// would on a machine of that many cores.
    pub async fn start_at(
        database_url: &str,
        addr: SocketAddr,
        ready_within: Duration,
        extra_env: &[(String, String)],
        cpus: Option<&str>,
    ) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let key = bench_key()?;
        let jwks = dir.path().join("jwks.json");
        std::fs::write(&jwks, jwks_json(&[&*key]).to_string())?;
        let log = std::fs::File::create(dir.path().join("node.log"))?;
        let data_dir = dir.path().join("data");
        let mut command = match cpus {
            Some(cpus) => {
                let mut c = tokio::process::Command::new("taskset");
                c.arg("--cpu-list").arg(cpus).arg(registre_binary()?);
                c
            }
            None => tokio::process::Command::new(registre_binary()?),
        };
        let child = command
            .arg("serve")
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("REGISTRE_LISTEN", addr.to_string())
            .env("REGISTRE_JWKS", &jwks)
            .env("REGISTRE_ISSUER", ISSUER)
            .env("REGISTRE_AUDIENCE", AUDIENCE)
            .env("REGISTRE_ADMIN_SUBJECTS", "bench-admin")
            .env("REGISTRE_DATA_DIR", &data_dir)
            .env("REGISTRE_LOG", "warn")
            .envs(extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting registre serve")?;
        let pid = child.id().context("registre serve exited at once")?;
        let mut node = ChildNode {
            child,
            pid,
            addr,
            key,
            dir,
        };
        node.wait_ready(ready_within).await?;
        Ok(node)
    }

    /// Polls /readyz: the node is another process, so there is nothing to
    /// await but its answer (or its exit).
    async fn wait_ready(&mut self, within: Duration) -> Result<()> {
        let client = reqwest::Client::new();
        let url = format!("http://{}/readyz", self.addr);
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("registre serve exited ({status}): {}", self.log_tail());
            }
            if let Ok(r) = client.get(&url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "registre serve not ready within {within:?}: {}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines the node logged, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// A bearer token for the person whose external id is `subject`.
    pub fn token(&self, subject: &str) -> Result<String> {
        let claims = TokenClaims::new(subject, ISSUER, AUDIENCE, Duration::from_secs(3600));
        self.key.sign(&claims).map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// One parent dashboard (`api::DASHBOARD`) of the guardian `subject`,
    /// timed from send to the whole answer; an error unless it lists
    /// children without errors (a broken setup must not pass for a fast one).
    pub async fn dashboard(&self, client: &reqwest::Client, subject: &str) -> Result<Duration> {
        let token = self.token(subject)?;
        let started = Instant::now();
        let response = client
            .post(self.graphql_url())
            .bearer_auth(&token)
            .json(&serde_json::json!({ "query": crate::api::DASHBOARD }))
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await?;
        let elapsed = started.elapsed();
        let children = body
            .pointer("/data/myChildren")
            .and_then(|c| c.as_array())
            .map_or(0, Vec::len);
        if !status.is_success() || body.get("errors").is_some() || children == 0 {
            bail!(
                "dashboard of {subject} through {} failed ({status}): {body}",
                self.addr
            );
        }
        Ok(elapsed)
    }

    pub fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    pub fn rss_bytes(&self) -> Result<u64> {
        rss_bytes(self.pid)
    }

    /// Stops the node as an operator does (SIGTERM: it drains, saves its
    /// snapshots and leaves the registry) and waits for it to exit.
    pub async fn terminate(mut self, within: Duration) -> Result<()> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .context("running kill")?;
        anyhow::ensure!(status.success(), "kill -TERM {} failed", self.pid);
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(exit) => {
                exit?;
                Ok(())
            }
            Err(_) => {
                let tail = self.log_tail();
                self.child.kill().await?;
                bail!("registre serve did not stop within {within:?}: {tail}")
            }
        }
    }

    /// Kills the node and waits for it, so that its connections are gone
    /// before the database is dropped.
    pub async fn stop(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}
