//! Growth: what a bigger log costs. For each size (10^5, 10^6, 10^7 events by
//! default) a fresh database is loaded with the generator's log through the
//! store's own bulk path, then three things are timed on it: a command (report
//! an absence through the store API, single writer), the parent dashboard over
//! HTTP against a `registre serve` node on that log, and a full projection
//! rebuild. Command and dashboard latency should not depend on the size (both
//! touch a bounded part of the data through indexes); the rebuild folds every
//! event, so its time should grow linearly.

use crate::db::TestDb;
use crate::gen::{Establishments, GenConfig, Requests};
use crate::node::ChildNode;
use crate::throughput;
use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use registre_projections::{EngineConfig, ProjectionEngine, PseudonymKey};
use registre_store::{AppendRequest, EventStore};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct GrowthOptions {
    pub seed: u64,
    /// Events per `append_batch` transaction while loading.
    pub batch: usize,
    /// Seconds of single-writer commands measured per size.
    pub command_seconds: f64,
    /// Dashboard requests measured per size (one at a time).
    pub dashboards: usize,
    /// Verify the hash chain of logs up to this size.
    pub verify_up_to: usize,
}

#[derive(Clone, Debug)]
pub struct GrowthRow {
    pub size: usize,
    pub load: Duration,
    /// The database's size after loading (`pg_database_size`).
    pub db_bytes: i64,
    /// `Some(true)` when `verify_chain` passed over the whole loaded log.
    pub chain_intact: Option<bool>,
    pub commands: u64,
    pub command_p50: Duration,
    pub command_p99: Duration,
    /// Dashboard p50 and p99; `None` when no node could be started.
    pub dashboard: Option<(Duration, Duration)>,
    pub rebuild: Duration,
    pub rebuild_events: u64,
    /// The read model's snapshot as stored after the rebuild, or why the
    /// rebuild could not save it.
    pub snapshot: Result<i64, String>,
    /// From spawning `registre serve` to its /readyz answering 200.
    pub node_start: Option<Duration>,
}

impl GrowthRow {
    pub fn load_rate(&self) -> f64 {
        self.size as f64 / self.load.as_secs_f64()
    }
    pub fn rebuild_rate(&self) -> f64 {
        self.rebuild_events as f64 / self.rebuild.as_secs_f64()
    }
}

pub async fn run(admin_url: &str, size: usize, options: &GrowthOptions) -> Result<GrowthRow> {
    crate::db::with_fresh(admin_url, &format!("growth_{size}"), async |db| {
        run_in(db, size, options).await
    })
    .await
}

async fn run_in(db: &TestDb, size: usize, options: &GrowthOptions) -> Result<GrowthRow> {
    // Loading goes through the store behind the vault (personal text sealed,
    // hash chain), so the rows are those the server writes. Its sessions
    // commit asynchronously: the vault creates each new person's key in a
    // commit of its own, and waiting for a WAL flush per person (thousands
    // per establishment) would make 10^7 events a matter of hours. The rows
    // are the same; the CHECKPOINT below makes them durable.
    let separator = if db.url.contains('?') { '&' } else { '?' };
    let loading_url = format!("{}{separator}options=-c%20synchronous_commit%3Doff", db.url);
    let started = Instant::now();
    let (_, establishments) = load(
        crate::db::sealed_postgres(&loading_url).await?,
        &GenConfig {
            seed: options.seed,
            ..GenConfig::default()
        },
        options.batch,
        Until::Events(size),
    )
    .await?;
    let load = started.elapsed();
    eprintln!(
        "  {size}: loaded in {load:.2?} ({:.0} events/s, {establishments} whole establishments)",
        size as f64 / load.as_secs_f64()
    );
    let admin = db.connect().await?;
    let head: i64 = admin
        .query_one("SELECT coalesce(max(position), 0) FROM events", &[])
        .await?
        .get(0);
    anyhow::ensure!(
        head == size as i64,
        "the log holds {head} events, not {size}"
    );
    // A bulk load leaves the table to autovacuum and its statistics stale; a
    // log that grew over a year has neither problem, so both are settled
    // before measuring, and the checkpoint keeps the load's dirty pages from
    // being flushed during the measurement.
    // Two statements: VACUUM refuses the implicit transaction of a batch.
    admin.batch_execute("VACUUM (ANALYZE) events").await?;
    admin.batch_execute("CHECKPOINT").await?;
    let db_bytes: i64 = admin
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await?
        .get(0);

    // Measurements use the production settings (synchronous commit).
    let raw: Arc<dyn EventStore> = registre_store::PostgresStore::connect(&db.url).await?;
    let store = crate::db::sealed(raw.clone())?;

    let chain_intact = if size <= options.verify_up_to {
        // The stored form, sealed fields included, is what the chain covers.
        let report = registre_store::chain::verify_chain(&*raw, |_| {}).await?;
        anyhow::ensure!(
            report.events_checked == size as u64,
            "verify_chain read {} events of {size}",
            report.events_checked
        );
        eprintln!("  {size}: verify_chain: intact = {}", report.is_intact());
        Some(report.is_intact())
    } else {
        None
    };

    // The command path of the throughput benchmark: one writer, one
    // AbsenceReported to a new stream per append.
    let writers = throughput::registre_writers(store.clone(), 1, 0).await?;
    let commands = throughput::drive(
        "registre",
        0,
        1,
        writers,
        Duration::from_secs_f64(options.command_seconds),
    )
    .await?;
    eprintln!(
        "  {size}: command p50 {:.2?} p99 {:.2?} ({} commands)",
        commands.p50, commands.p99, commands.ops
    );

    let rebuilt = rebuild_timed(store.clone()).await?;
    eprintln!(
        "  {size}: rebuild {} events in {:.2?}",
        rebuilt.events, rebuilt.elapsed
    );
    // The node starts from the snapshot the rebuild saved: the sum of its
    // rows, one per partition (decision 0022; a bytea value caps at 1 GB).
    let snapshot = match &rebuilt.snapshot_error {
        None => Ok(admin
            .query_one(
                "SELECT coalesce(sum(octet_length(state)), 0)::bigint FROM snapshots",
                &[],
            )
            .await?
            .get::<_, i64>(0)),
        Some(e) => Err(e.clone()),
    };
    drop(store);
    drop(raw);

    let (node_start, dashboard) = if let Err(e) = &snapshot {
        // Without a snapshot the node folds the log from the start and, the
        // snapshot being due and failing again after every page, retries the
        // whole serialisation every 1,000 events: it does not come up in any
        // useful time, so there is no dashboard to measure.
        eprintln!("  {size}: no snapshot ({e}): node and dashboard not measured");
        (None, None)
    } else {
        let started = Instant::now();
        // Generous: the node folds the log when it cannot use the snapshot.
        let ready_within = Duration::from_secs(120) + Duration::from_millis(size as u64 / 10);
        let node = ChildNode::start(&db.url, ready_within).await?;
        let node_start = started.elapsed();
        eprintln!("  {size}: node ready in {node_start:.2?}");
        let dashboards = dashboards(&node, establishments.max(1), options).await;
        node.stop().await?;
        let (p50, p99) = dashboards?;
        eprintln!("  {size}: dashboard p50 {p50:.2?} p99 {p99:.2?}");
        (Some(node_start), Some((p50, p99)))
    };

    Ok(GrowthRow {
        size,
        load,
        db_bytes,
        chain_intact,
        commands: commands.ops,
        command_p50: commands.p50,
        command_p99: commands.p99,
        dashboard,
        rebuild: rebuilt.elapsed,
        rebuild_events: rebuilt.events,
        snapshot,
        node_start,
    })
}

struct Rebuilt {
    events: u64,
    elapsed: Duration,
    snapshot_error: Option<String>,
}

/// The projection engine's rebuild (as `rebuild::engine_rebuild`), timed
/// from its own progress reports so that the fold's time is known even when
/// the closing snapshot cannot be saved.
async fn rebuild_timed(store: Arc<dyn EventStore>) -> Result<Rebuilt> {
    let config = EngineConfig {
        pseudonym_key: PseudonymKey::new(b"bench".to_vec()),
        ..EngineConfig::default()
    };
    let engine = ProjectionEngine::open(store, config).await?;
    let mut last = (0u64, 0f64);
    let result = engine.rebuild(|p| last = (p.applied, p.elapsed_secs)).await;
    Ok(match result {
        Ok(report) => Rebuilt {
            events: report.events,
            elapsed: Duration::from_secs_f64(report.seconds),
            snapshot_error: None,
        },
        Err(e) => {
            anyhow::ensure!(last.0 > 0, "rebuild failed: {e}");
            Rebuilt {
                events: last.0,
                elapsed: Duration::from_secs_f64(last.1),
                snapshot_error: Some(e.to_string()),
            }
        }
    })
}

/// How much of the generator's log [`load`] writes.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// Exactly this many events (the last establishment may be cut short).
    Events(usize),
    /// This many whole establishments.
    Establishments(usize),
}

/// Appends the generator's log for `config` until `until`, in
/// `append_batch` transactions of `batch`, one establishment after another,
/// each in time order; generation runs on a blocking thread while the
/// previous batch is written. Returns the events written and how many
/// establishments were loaded whole.
pub async fn load(
    store: Arc<dyn EventStore>,
    config: &GenConfig,
    batch: usize,
    until: Until,
) -> Result<(u64, usize)> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<AppendRequest>>(2);
    let batch = batch.max(1);
    let config = config.clone();
    let producer = tokio::task::spawn_blocking(move || {
        let mut establishments = Establishments::new(&config);
        let mut requests = Requests::new(config.seed);
        let mut written = 0usize;
        let mut whole = 0;
        let mut chunk = Vec::with_capacity(batch);
        loop {
            let left = match until {
                Until::Events(size) => size - written,
                Until::Establishments(n) if whole < n => usize::MAX,
                Until::Establishments(_) => 0,
            };
            if left == 0 {
                break;
            }
            let events = establishments.next_sorted();
            if events.len() <= left {
                whole += 1;
            }
            for e in events.iter().take(left) {
                chunk.push(requests.request(e));
                written += 1;
                if chunk.len() == batch && tx.blocking_send(std::mem::take(&mut chunk)).is_err() {
                    // The writer stopped: its error is the one to report.
                    return whole;
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.blocking_send(chunk);
        }
        whole
    });
    let mut written = 0u64;
    while let Some(chunk) = rx.recv().await {
        written += chunk.len() as u64;
        store.append_batch(chunk).await?;
    }
    let whole = producer.await.context("generator thread panicked")?;
    Ok((written, whole))
}

/// Dashboard latency, one request at a time, for guardians spread over the
/// whole establishments of the log (each request a different guardian, so
/// nothing is answered from a warm cache of the previous one).
async fn dashboards(
    node: &ChildNode,
    establishments: usize,
    options: &GrowthOptions,
) -> Result<(Duration, Duration)> {
    let g = GenConfig::default();
    let client = reqwest::Client::new();
    let mut rng = StdRng::seed_from_u64(options.seed);
    const WARMUP: usize = 50;
    let mut latencies = Vec::with_capacity(options.dashboards);
    for n in 0..WARMUP + options.dashboards {
        let subject = format!(
            "parent-{}-{}-{}-0",
            rng.gen_range(0..establishments),
            rng.gen_range(0..g.classes_per_establishment),
            rng.gen_range(0..g.students_per_class)
        );
        let elapsed = node.dashboard(&client, &subject).await?;
        if n >= WARMUP {
            latencies.push(elapsed);
        }
    }
    latencies.sort_unstable();
    let pick = |q: f64| crate::stats::percentile(&latencies, q);
    Ok((pick(0.50), pick(0.99)))
}
