//! The parent dashboard over HTTP: a real server (`registre::node::serve`)
//! on a fresh PostgreSQL database seeded with one generated establishment,
//! real ES256 tokens checked against a JWKS file, and guardians asking for
//! their children's dashboard. Two loads: closed-loop at a fixed concurrency
//! (the throughput ceiling) and open-loop at a fixed request rate (the latency
//! a given load sees, without coordinated omission hiding the queueing).

use crate::db::TestDb;
use crate::gen::{self, GenConfig};
use anyhow::{bail, Context, Result};
use registre::config::Config;
use registre_api::auth::{jwks_json, SigningKey, TokenClaims};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ISSUER: &str = "https://idp.registre.bench";
const AUDIENCE: &str = "registre-bench";

/// What a guardian's home screen asks for: every child with class, averages,
/// grades, absences and the fortnight's homework.
pub const DASHBOARD: &str = r#"query Dashboard {
  myChildren {
    id
    person { displayName }
    schoolClass { name }
    averages { subject average classAverage }
    overallAverage
    grades { score status assessment { subject title date coefficient } }
    absences { id kind start end minutesLate state }
    homework(from: "2026-03-02", to: "2026-03-15") { subject title due }
  }
}"#;

#[derive(Clone, Debug)]
pub struct LoadResult {
    pub label: String,
    pub requests: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// CPU time of the whole process (server and load generator) per
    /// request: comparable between runs on a loaded machine, where
    /// latencies are not. `None` where /proc is not readable.
    pub cpu_per_request: Option<Duration>,
}

impl LoadResult {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// User + system CPU time of this process so far, from /proc/self/stat
/// (fields 14 and 15, in clock ticks of 1/100 s: `USER_HZ` on Linux).
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; fields are counted after it.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

fn summarise(
    label: String,
    mut latencies: Vec<Duration>,
    elapsed: Duration,
    cpu_before: Option<Duration>,
) -> LoadResult {
    let cpu_per_request = cpu_before
        .zip(process_cpu())
        .filter(|_| !latencies.is_empty())
        .map(|(before, after)| after.saturating_sub(before) / latencies.len() as u32);
    latencies.sort_unstable();
    let pick = |q: f64| crate::stats::percentile(&latencies, q);
    LoadResult {
        label,
        requests: latencies.len() as u64,
        elapsed,
        p50: pick(0.50),
        p99: pick(0.99),
        max: latencies.last().copied().unwrap_or_default(),
        cpu_per_request,
    }
}

#[derive(serde::Deserialize)]
struct Answer {
    data: Option<AnswerData>,
    errors: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct AnswerData {
    #[serde(rename = "myChildren")]
    my_children: Vec<serde::de::IgnoredAny>,
}

struct Target {
    client: reqwest::Client,
    url: String,
    tokens: Vec<String>,
}

impl Target {
    /// One dashboard request; an answer with GraphQL errors is a failure, so
    /// that a broken setup cannot pass for a fast one.
    async fn dashboard(&self, i: usize) -> Result<Duration> {
        let token = &self.tokens[i % self.tokens.len()];
        let started = Instant::now();
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(token)
            .json(&serde_json::json!({ "query": DASHBOARD }))
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        let elapsed = started.elapsed();
        // The client shares the two cores with the server: it decodes only
        // what the check needs, not a `Value` tree of the ~30 kB answer, and
        // after the clock stopped.
        let body: Answer = serde_json::from_slice(&bytes)?;
        let children = body.data.map_or(0, |d| d.my_children.len());
        if !status.is_success() || body.errors.is_some() || children == 0 {
            bail!(
                "dashboard failed ({status}, {children} children): {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(elapsed)
    }
}

pub struct Setup {
    pub events: usize,
    pub guardians: usize,
}

pub async fn run(
    admin_url: &str,
    concurrency: &[usize],
    rates: &[f64],
    seconds: f64,
) -> Result<(Setup, Vec<LoadResult>)> {
    crate::db::with_fresh(admin_url, "api", async |db| {
        run_in(db, concurrency, rates, seconds).await
    })
    .await
}

/// A seeded node serving on a fresh database, with the identity provider's key.
pub struct Node {
    pub server: registre_api::server::RunningServer,
    pub key: SigningKey,
    pub gen_config: GenConfig,
    pub log: Vec<gen::GenEvent>,
    _dir: tempfile::TempDir,
}

impl Node {
    pub fn token(&self, subject: &str) -> Result<String> {
        let claims = TokenClaims::new(subject, ISSUER, AUDIENCE, Duration::from_secs(3600));
        self.key.sign(&claims).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

pub async fn start_node(db: &TestDb) -> Result<Node> {
    let dir = tempfile::tempdir()?;
    let key = SigningKey::generate_es256("bench").map_err(|e| anyhow::anyhow!("{e}"))?;
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, jwks_json(&[&key]).to_string())?;
    let path = |p: &std::path::Path| p.to_str().map(str::to_owned).context("utf-8 path");
    let env: HashMap<String, String> = [
        ("DATABASE_URL", db.url.clone()),
        ("REGISTRE_LISTEN", "127.0.0.1:0".to_owned()),
        ("REGISTRE_JWKS", path(&jwks)?),
        ("REGISTRE_ISSUER", ISSUER.to_owned()),
        ("REGISTRE_AUDIENCE", AUDIENCE.to_owned()),
        ("REGISTRE_ADMIN_SUBJECTS", "bench-admin".to_owned()),
        ("REGISTRE_DATA_DIR", path(dir.path())?),
        ("REGISTRE_LOG", "warn".to_owned()),
        // This benchmark measures the read path at a fixed concurrency, as
        // before admission control existed: places above any concurrency it
        // runs, so that nothing waits for one or is refused. Admission
        // control is the surge benchmark's subject (docs/benchmarks.md §6).
        ("REGISTRE_MAX_IN_FLIGHT", "1024".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config =
        Config::from_lookup(|name| env.get(name).cloned()).context("bench configuration")?;

    let store = registre::node::open_store(&config).await?;
    let (gen_config, log) = crate::db::seed_establishment(&*store).await?;
    let server = registre::node::serve(&config, store, std::future::pending()).await?;
    Ok(Node {
        server,
        key,
        gen_config,
        log,
        _dir: dir,
    })
}

async fn run_in(
    db: &TestDb,
    concurrency: &[usize],
    rates: &[f64],
    seconds: f64,
) -> Result<(Setup, Vec<LoadResult>)> {
    let node = start_node(db).await?;
    let gen_config = node.gen_config.clone();
    let mut tokens = Vec::new();
    for c in 0..gen_config.classes_per_establishment {
        for i in 0..gen_config.students_per_class {
            tokens.push(node.token(&format!("parent-0-{c}-{i}-0"))?);
        }
    }
    let target = Arc::new(Target {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .build()?,
        url: format!("http://{}/graphql", node.server.addr),
        tokens,
    });
    // Warm-up: every guardian once (the server's read model has caught up
    // when the first answer comes back: queries wait for the log head).
    for i in 0..target.tokens.len() {
        target.dashboard(i).await?;
    }

    let duration = Duration::from_secs_f64(seconds);
    let mut results = Vec::new();
    for &c in concurrency {
        let cpu_before = process_cpu();
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = Vec::new();
        for w in 0..c {
            let target = target.clone();
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = w * 7919;
                while Instant::now() < deadline {
                    latencies.push(target.dashboard(i).await?);
                    i += 1;
                }
                Ok::<_, anyhow::Error>(latencies)
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await??);
        }
        let r = summarise(
            format!("closed loop, {c} concurrent"),
            all,
            started.elapsed(),
            cpu_before,
        );
        eprintln!(
            "  {}: {:.0} req/s p50 {:.2?} p99 {:.2?}",
            r.label,
            r.rps(),
            r.p50,
            r.p99
        );
        results.push(r);
    }
    for &rate in rates {
        // Open loop: requests leave on a fixed schedule whatever the previous
        // ones are doing; latency counts from the scheduled send time.
        let period = Duration::from_secs_f64(1.0 / rate);
        let total = (rate * seconds) as usize;
        let cpu_before = process_cpu();
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(total);
        for n in 0..total {
            let scheduled = started + period * n as u32;
            tokio::time::sleep_until(scheduled.into()).await;
            let target = target.clone();
            tasks.push(tokio::spawn(async move {
                target.dashboard(n).await?;
                Ok::<_, anyhow::Error>(scheduled.elapsed())
            }));
        }
        let mut all = Vec::with_capacity(total);
        for t in tasks {
            all.push(t.await??);
        }
        let r = summarise(
            format!("open loop, {rate:.0} req/s offered"),
            all,
            started.elapsed(),
            cpu_before,
        );
        eprintln!(
            "  {}: {:.0} req/s p50 {:.2?} p99 {:.2?}",
            r.label,
            r.rps(),
            r.p50,
            r.p99
        );
        results.push(r);
    }
    node.server.shutdown();
    let events = node.log.len();
    node.server.stopped().await;
    Ok((
        Setup {
            events,
            guardians: target.tokens.len(),
        },
        results,
    ))
}
