//! Region: many establishments, several nodes sharing one PostgreSQL (issue
//! 12). A generated region (200 establishments by default) is loaded once;
//! then for each node count (1, 2, 4) that many `registre serve` processes
//! each serve an equal share of the establishments (`REGISTRE_ESTABLISHMENTS`)
//! and advertise themselves to each other through the registry. Per node count
//! the run measures:
//!
//! - **first start**: spawn to `/readyz` with no snapshot of that share, so
//!   the node folds the directory and its partitions from the log (the
//!   rebuild rate is the events it read over that time);
//! - **cold start**: after a clean stop (SIGTERM: the node saves its
//!   snapshots), spawn to `/readyz` again, from the snapshots;
//! - **resident memory** of each node once ready and after the dashboards;
//! - **parent dashboards** through every node, for guardians whose child's
//!   establishment that node serves (local) and for guardians whose child is
//!   served by another node (forwarded), interleaved in one run;
//! - **live notifications** to guardians subscribed on the first node for
//!   children served by the last one, reported by their teacher through the
//!   node that serves them.

use crate::gen::GenConfig;
use crate::growth::Until;
use crate::node::ChildNode;
use anyhow::{bail, Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use registre_domain::{PersonId, StudentId};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, clap::Args)]
pub struct RegionArgs {
    /// Establishments in the region.
    #[arg(long, default_value_t = 200)]
    pub establishments: usize,
    /// Classes of 25 students per establishment (a collège has ~24; fewer keep
    /// the load of 200 of them within minutes).
    #[arg(long, default_value_t = 6)]
    pub classes: usize,
    /// Node counts (runs once per value), each node serving an equal share.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub nodes: Vec<usize>,
    /// Dashboards measured per node and kind (local, forwarded).
    #[arg(long, default_value_t = 200)]
    pub dashboards: usize,
    /// Absences reported for the live notification measurement.
    #[arg(long, default_value_t = 100)]
    pub absences: usize,
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Load the region into the database of this name and keep it there, or
    /// reuse it when an earlier run with the same establishments, classes and
    /// seed left it complete (a 10^7 region takes some twenty minutes to
    /// load). Dropped by hand: `DROP DATABASE name`.
    #[arg(long)]
    pub keep: Option<String>,
}

/// What one node of a run measured.
#[derive(Clone, Debug)]
pub struct NodeRow {
    pub establishments: usize,
    /// Events of its partitions and the directory.
    pub events: u64,
    pub first_start: Duration,
    pub cold_start: Duration,
    pub rss_ready: u64,
    pub rss_after: u64,
}

impl NodeRow {
    pub fn rebuild_rate(&self) -> f64 {
        self.events as f64 / self.first_start.as_secs_f64()
    }
}

#[derive(Clone, Debug)]
pub struct Latencies {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
}

#[derive(Clone, Debug)]
pub struct RegionRun {
    pub nodes: Vec<NodeRow>,
    pub local: Latencies,
    /// `None` with one node: nothing to forward.
    pub forwarded: Option<Latencies>,
    pub live: Latencies,
    /// Notifications owed and not received within 30 s.
    pub live_missing: usize,
}

#[derive(Clone, Debug)]
pub struct RegionReport {
    pub events: u64,
    /// The load's duration; `None` when a kept database was reused.
    pub load: Option<Duration>,
    pub runs: Vec<(usize, RegionRun)>,
}

const NODE_KEY: &str = "region-benchmark-node-key-0123456789";

pub async fn run(admin_url: &str, args: &RegionArgs) -> Result<RegionReport> {
    match &args.keep {
        None => {
            crate::db::with_fresh(admin_url, "region", async |db| {
                let (events, took) = load(&db.url, args).await?;
                run_in(&db.url, events, Some(took), args).await
            })
            .await
        }
        Some(name) => {
            let url = crate::db::kept(admin_url, name).await?;
            let (events, took) = match loaded(&url, args).await? {
                Some(events) => {
                    eprintln!("region: reusing {events} events loaded in database {name}");
                    (events, None)
                }
                None => {
                    let (events, took) = load(&url, args).await?;
                    mark_loaded(&url, args, events).await?;
                    (events, Some(took))
                }
            };
            run_in(&url, events, took, args).await
        }
    }
}

/// What a kept database's region was generated with: reused only if equal.
fn region_label(args: &RegionArgs) -> String {
    format!(
        "establishments={} classes={} seed={}",
        args.establishments, args.classes, args.seed
    )
}

/// The events of a complete region load with these arguments in the kept
/// database at `url`, if one is there.
async fn loaded(url: &str, args: &RegionArgs) -> Result<Option<u64>> {
    let client = registre_store::testing::connect(url).await?;
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS bench_region (label text PRIMARY KEY, events bigint NOT NULL)")
        .await?;
    let row = client
        .query_opt(
            "SELECT events FROM bench_region WHERE label = $1",
            &[&region_label(args)],
        )
        .await?;
    Ok(row.map(|r| r.get::<_, i64>(0) as u64))
}

async fn mark_loaded(url: &str, args: &RegionArgs, events: u64) -> Result<()> {
    let client = registre_store::testing::connect(url).await?;
    client
        .execute(
            "INSERT INTO bench_region (label, events) VALUES ($1, $2)",
            &[&region_label(args), &(events as i64)],
        )
        .await?;
    Ok(())
}

fn gen_config(args: &RegionArgs) -> GenConfig {
    GenConfig {
        seed: args.seed,
        classes_per_establishment: args.classes,
        ..GenConfig::default()
    }
}

/// The UAI the generator gives establishment `no` (`gen::establishment`).
fn uai(no: usize) -> String {
    format!("{:07}{}", 750_000 + no, (b'A' + (no % 26) as u8) as char)
}

/// Loads the region into the (empty) database at `url`; answers its events.
async fn load(url: &str, args: &RegionArgs) -> Result<(u64, Duration)> {
    let config = gen_config(args);
    let started = Instant::now();
    let separator = if url.contains('?') { '&' } else { '?' };
    let loading_url = format!("{url}{separator}options=-c%20synchronous_commit%3Doff");
    let (events, _) = crate::growth::load(
        crate::db::sealed_postgres(&loading_url).await?,
        &config,
        10_000,
        Until::Establishments(args.establishments),
    )
    .await?;
    let load = started.elapsed();
    eprintln!(
        "region: {} establishments, {events} events loaded in {load:.2?}",
        args.establishments
    );
    let admin = registre_store::testing::connect(url).await?;
    admin.batch_execute("VACUUM (ANALYZE) events").await?;
    admin.batch_execute("CHECKPOINT").await?;
    Ok((events, load))
}

async fn run_in(
    url: &str,
    events: u64,
    load: Option<Duration>,
    args: &RegionArgs,
) -> Result<RegionReport> {
    let admin = registre_store::testing::connect(url).await?;
    let mut runs = Vec::new();
    for &n in &args.nodes {
        let run = run_nodes(url, &admin, args, n.max(1)).await?;
        runs.push((n.max(1), run));
    }
    Ok(RegionReport { events, load, runs })
}

/// Establishment numbers served by node `i` of `n`: contiguous equal shares.
fn share(establishments: usize, n: usize, i: usize) -> std::ops::Range<usize> {
    let per = establishments.div_ceil(n);
    (i * per).min(establishments)..((i + 1) * per).min(establishments)
}

fn node_env(uais: &[String], addr: std::net::SocketAddr) -> Vec<(String, String)> {
    vec![
        ("REGISTRE_ESTABLISHMENTS".into(), uais.join(",")),
        ("REGISTRE_ADVERTISE_URL".into(), format!("http://{addr}")),
        ("REGISTRE_NODE_KEY".into(), NODE_KEY.into()),
        // Teachers report many absences in seconds here: what is measured is
        // delivery, not a teacher's per-minute limit.
        ("REGISTRE_PERSON_LIMITS".into(), "off".into()),
    ]
}

async fn start_all(
    url: &str,
    shares: &[Vec<String>],
    addrs: &[std::net::SocketAddr],
    ready_within: Duration,
) -> Result<(Vec<ChildNode>, Vec<Duration>)> {
    // Started together, as an operator's deployment would: the nodes fold in
    // parallel and each start time is its own.
    let starts = shares.iter().zip(addrs).map(|(uais, addr)| {
        let env = node_env(uais, *addr);
        let url = url.to_owned();
        let addr = *addr;
        async move {
            let started = Instant::now();
            let node = ChildNode::start_at(&url, addr, ready_within, &env, None).await?;
            Ok::<_, anyhow::Error>((node, started.elapsed()))
        }
    });
    let mut nodes = Vec::new();
    let mut times = Vec::new();
    for r in futures::future::join_all(starts).await {
        let (node, t) = r?;
        nodes.push(node);
        times.push(t);
    }
    Ok((nodes, times))
}

async fn run_nodes(
    url: &str,
    admin: &tokio_postgres::Client,
    args: &RegionArgs,
    n: usize,
) -> Result<RegionRun> {
    eprintln!("region: {n} node(s)");
    // A fresh start for every node count: no snapshot of another run's shares.
    admin.batch_execute("DELETE FROM snapshots").await?;
    let shares: Vec<Vec<String>> = (0..n)
        .map(|i| share(args.establishments, n, i).map(uai).collect())
        .collect();
    let addrs = (0..n)
        .map(|_| Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?))
        .collect::<Result<Vec<_>>>()?;
    let mut events = Vec::with_capacity(n);
    for uais in &shares {
        let mut partitions = uais.clone();
        partitions.push("directory".into());
        let count: i64 = admin
            .query_one(
                "SELECT count(*) FROM events WHERE partition = ANY($1)",
                &[&partitions],
            )
            .await?
            .get(0);
        events.push(count as u64);
    }
    let ready_within = Duration::from_secs(1800);
    let (nodes, first) = start_all(url, &shares, &addrs, ready_within).await?;
    for (i, t) in first.iter().enumerate() {
        eprintln!(
            "  node {i}: folded {} events in {t:.2?} ({:.0} events/s)",
            events[i],
            events[i] as f64 / t.as_secs_f64()
        );
    }
    // A clean stop saves each node's snapshots; the next start is from them.
    for node in nodes {
        node.terminate(Duration::from_secs(300)).await?;
    }
    let (nodes, cold) = start_all(url, &shares, &addrs, ready_within).await?;
    let result = measure(&nodes, args, &shares).await;
    let mut rows = Vec::with_capacity(n);
    for (i, node) in nodes.iter().enumerate() {
        let rss_after = node.rss_bytes()?;
        rows.push((i, rss_after));
    }
    let mut out = Vec::with_capacity(n);
    for (i, node) in nodes.into_iter().enumerate() {
        let tail = node.log_tail();
        node.stop().await?;
        if result.is_err() {
            eprintln!("  node {i} log: {tail}");
        }
    }
    let (rss_ready, local, forwarded, live, live_missing) = result?;
    for (i, rss_after) in rows {
        out.push(NodeRow {
            establishments: shares[i].len(),
            events: events[i],
            first_start: first[i],
            cold_start: cold[i],
            rss_ready: rss_ready[i],
            rss_after,
        });
    }
    Ok(RegionRun {
        nodes: out,
        local,
        forwarded,
        live,
        live_missing,
    })
}

type Measured = (Vec<u64>, Latencies, Option<Latencies>, Latencies, usize);

async fn measure(
    nodes: &[ChildNode],
    args: &RegionArgs,
    shares: &[Vec<String>],
) -> Result<Measured> {
    let rss_ready = nodes
        .iter()
        .map(ChildNode::rss_bytes)
        .collect::<Result<Vec<_>>>()?;
    let n = nodes.len();
    let client = reqwest::Client::new();
    let mut rng = StdRng::seed_from_u64(args.seed);
    let mut local = Vec::new();
    let mut forwarded = Vec::new();
    const WARMUP: usize = 20;
    let serving = |no: usize| {
        shares
            .iter()
            .position(|s| s.contains(&uai(no)))
            .unwrap_or(0)
    };
    for k in 0..WARMUP + args.dashboards {
        for (i, node) in nodes.iter().enumerate() {
            // Interleaved: a local and (with several nodes) a forwarded
            // dashboard through the same node, so both see the same machine.
            let mut kinds = vec![true];
            if n > 1 {
                kinds.push(false);
            }
            for is_local in kinds {
                let no = loop {
                    let no = rng.gen_range(0..args.establishments);
                    if (serving(no) == i) == is_local {
                        break no;
                    }
                };
                let subject = format!(
                    "parent-{no}-{}-{}-0",
                    rng.gen_range(0..args.classes),
                    rng.gen_range(0..25)
                );
                let elapsed = node.dashboard(&client, &subject).await?;
                if k >= WARMUP {
                    if is_local {
                        local.push(elapsed);
                    } else {
                        forwarded.push(elapsed);
                    }
                }
            }
        }
    }
    let (live, missing) = live(nodes, args, shares).await?;
    Ok((
        rss_ready,
        latencies(local),
        (!forwarded.is_empty()).then(|| latencies(forwarded)),
        live,
        missing,
    ))
}

fn latencies(mut v: Vec<Duration>) -> Latencies {
    v.sort_unstable();
    Latencies {
        count: v.len(),
        p50: crate::stats::percentile(&v, 0.5),
        p99: crate::stats::percentile(&v, 0.99),
    }
}

/// Guardians of children of the last node's first establishment subscribe
/// on the first node; their teachers report through the last node.
async fn live(
    nodes: &[ChildNode],
    args: &RegionArgs,
    shares: &[Vec<String>],
) -> Result<(Latencies, usize)> {
    let watching = nodes.first().context("no node")?;
    let reporting = nodes.last().context("no node")?;
    let no = share(args.establishments, nodes.len(), nodes.len() - 1).start;
    anyhow::ensure!(
        shares.last().is_some_and(|s| s.contains(&uai(no))),
        "establishment {no} is not the last node's"
    );
    let students: Vec<(usize, usize)> = (0..args.classes)
        .flat_map(|c| (0..25).map(move |i| (c, i)))
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let connecting = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for (c, i) in &students {
        let token = watching.token(&format!("parent-{no}-{c}-{i}-0"))?;
        tasks.push(tokio::spawn(crate::live::subscriber(
            watching.addr,
            token,
            tx.clone(),
            connecting.clone(),
        )));
    }
    drop(tx);
    let client = reqwest::Client::new();
    let url = reporting.graphql_url();
    let student_of = |(c, i): (usize, usize)| {
        StudentId::for_person(PersonId::for_external_id(&format!("eleve-{no}-{c}-{i}")))
    };
    let teacher = |c: usize| reporting.token(&format!("prof-{no}-{c}-0"));
    // Readiness without sleeping: every subscriber hears of one absence.
    let mut pending: HashMap<String, ()> = HashMap::new();
    for (k, &(c, i)) in students.iter().enumerate() {
        let id = crate::live::report(&client, &url, &teacher(c)?, student_of((c, i)), k).await?;
        pending.insert(id, ());
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while !pending.is_empty() {
        let (id, _) = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .with_context(|| {
                format!(
                    "subscribers not all notified within 120 s: {} missing",
                    pending.len()
                )
            })?
            .context("every subscriber stopped")?;
        pending.remove(&id);
    }
    let mut rng = StdRng::seed_from_u64(11);
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut received = Vec::new();
    for n in 0..args.absences {
        let (c, i) = students[rng.gen_range(0..students.len())];
        let t0 = Instant::now();
        let id = crate::live::report(
            &client,
            &url,
            &teacher(c)?,
            student_of((c, i)),
            students.len() + n,
        )
        .await?;
        sent.insert(id, t0);
        while let Ok(r) = rx.try_recv() {
            received.push(r);
        }
        tokio::time::sleep_until((t0 + Duration::from_millis(20)).into()).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut latencies = Vec::new();
    let mut take = |(id, at): (String, Instant), out: &mut Vec<Duration>| {
        if let Some(t0) = sent.remove(&id) {
            out.push(at.duration_since(t0));
        }
    };
    for r in received {
        take(r, &mut latencies);
    }
    while latencies.len() < args.absences {
        match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Ok(Some(r)) => take(r, &mut latencies),
            _ => break,
        }
    }
    for t in &tasks {
        t.abort();
    }
    let missing = args.absences - latencies.len();
    if latencies.is_empty() {
        bail!("none of {} notifications arrived", args.absences);
    }
    Ok((self::latencies(latencies), missing))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn print(report: &RegionReport, args: &RegionArgs) {
    println!();
    println!(
        "Region: {} establishments x {} classes, {} events ({})",
        args.establishments,
        args.classes,
        report.events,
        match report.load {
            Some(took) => format!("loaded in {:.1} s", took.as_secs_f64()),
            None => "loaded by an earlier run".into(),
        }
    );
    println!("| nodes | node | establishments | events folded | first start s | fold events/s | cold start s (snapshots) | RSS ready MB | RSS after MB |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (n, run) in &report.runs {
        for (i, row) in run.nodes.iter().enumerate() {
            println!(
                "| {n} | {i} | {} | {} | {:.2} | {:.0} | {:.2} | {:.0} | {:.0} |",
                row.establishments,
                row.events,
                row.first_start.as_secs_f64(),
                row.rebuild_rate(),
                row.cold_start.as_secs_f64(),
                row.rss_ready as f64 / 1e6,
                row.rss_after as f64 / 1e6
            );
        }
    }
    println!();
    println!("| nodes | local dashboards | local p50 ms | local p99 ms | forwarded | forwarded p50 ms | forwarded p99 ms | forwarded/local p99 | live p50 ms | live p99 ms | live missing |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (n, run) in &report.runs {
        let (fc, f50, f99, ratio) = match &run.forwarded {
            Some(f) => (
                f.count.to_string(),
                format!("{:.2}", ms(f.p50)),
                format!("{:.2}", ms(f.p99)),
                format!("{:.2}", ms(f.p99) / ms(run.local.p99)),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {n} | {} | {:.2} | {:.2} | {fc} | {f50} | {f99} | {ratio} | {:.2} | {:.2} | {} |",
            run.local.count,
            ms(run.local.p50),
            ms(run.local.p99),
            ms(run.live.p50),
            ms(run.live.p99),
            run.live_missing
        );
    }
    // The memory goal: each of two nodes at most 60 % of one node serving all.
    let one = report.runs.iter().find(|(n, _)| *n == 1);
    let two = report.runs.iter().find(|(n, _)| *n == 2);
    if let (Some((_, one)), Some((_, two))) = (one, two) {
        let all = one.nodes.first().map_or(0, |r| r.rss_after) as f64;
        for (i, row) in two.nodes.iter().enumerate() {
            println!(
                "memory: node {i} of 2 uses {:.0} % of one node serving all (goal <= 60 %)",
                100.0 * row.rss_after as f64 / all
            );
        }
    }
}
