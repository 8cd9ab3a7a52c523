//! Projection rebuild rate: a generated demo-shaped log folded into the whole
//! read model (parent, teacher, statistics and audit views), once from memory
//! (the fold alone) and once from each store through the projection engine's
//! rebuild (store reads, decoding and fold), so that the read cost shows.

use crate::gen::{self, GenConfig, GenEvent};
use anyhow::Result;
use registre_projections::{EngineConfig, ProjectionEngine, PseudonymKey, ReadModel};
use registre_store::EventStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct FoldRate {
    pub label: String,
    pub events: u64,
    pub elapsed: Duration,
}

impl FoldRate {
    pub fn per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// Generates at least `n` events and keeps exactly `n` (whole establishments
/// are generated, then the time-ordered log is cut).
pub fn generate_log(n: usize, seed: u64) -> Vec<GenEvent> {
    let config = GenConfig {
        seed,
        ..GenConfig::default()
    };
    let (mut log, _) = gen::generate(&config, n);
    log.truncate(n);
    log
}

/// Folds an in-memory log: no store, no IO. Decoding the stored JSON form is
/// included, as every rebuild must do it.
pub fn pure_fold(log: &[GenEvent], seed: u64) -> Result<FoldRate> {
    let recorded = gen::to_recorded(log, seed);
    let mut model = ReadModel::new();
    let started = Instant::now();
    model.apply_all(&recorded)?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        model.position() == recorded.len() as u64,
        "fold stopped at {} of {}",
        model.position(),
        recorded.len()
    );
    Ok(FoldRate {
        label: "in-memory fold (decode + apply)".into(),
        events: recorded.len() as u64,
        elapsed,
    })
}

/// Appends a generated log to `store` in `append_batch` transactions of
/// `chunk` events. Returns the seeding rate (the bulk append rate).
pub async fn seed_store(
    store: &dyn EventStore,
    log: &[GenEvent],
    seed: u64,
    chunk: usize,
) -> Result<FoldRate> {
    let requests = gen::to_requests(log, seed);
    let started = Instant::now();
    let mut requests = requests.into_iter().peekable();
    while requests.peek().is_some() {
        let batch: Vec<_> = requests.by_ref().take(chunk).collect();
        store.append_batch(batch).await?;
    }
    Ok(FoldRate {
        label: "seeding (append_batch)".into(),
        events: log.len() as u64,
        elapsed: started.elapsed(),
    })
}

/// The projection engine on a store holding the log (decision 0022): a
/// start without a snapshot (the log folded with its partitions in
/// parallel), its own rebuild (the same, then the tail, the swap; the
/// closing snapshot is not timed), then a second node's start from the
/// snapshots the rebuild saved (one row per partition, read and decoded
/// concurrently, joined).
pub async fn engine_rebuild(store: Arc<dyn EventStore>, label: &str) -> Result<Vec<FoldRate>> {
    let config = EngineConfig {
        pseudonym_key: PseudonymKey::new(b"bench".to_vec()),
        ..EngineConfig::default()
    };
    let head = store.head().await?;
    let started = Instant::now();
    let engine = ProjectionEngine::open(Arc::clone(&store), config.clone()).await?;
    let cold = started.elapsed();
    anyhow::ensure!(
        engine.position() == head,
        "the start folded to {}",
        engine.position()
    );
    let report = engine.rebuild(|_| {}).await?;
    drop(engine);
    let started = Instant::now();
    let restarted = ProjectionEngine::open(store, config).await?;
    let warm = started.elapsed();
    anyhow::ensure!(
        restarted.position() == head,
        "the restart loaded {}",
        restarted.position()
    );
    Ok(vec![
        FoldRate {
            label: format!("{label}: start without a snapshot (parallel fold)"),
            events: head,
            elapsed: cold,
        },
        FoldRate {
            label: format!("{label}: engine rebuild (parallel fold + tail)"),
            events: report.events,
            elapsed: Duration::from_secs_f64(report.seconds),
        },
        FoldRate {
            label: format!("{label}: start from the snapshots (one per partition)"),
            events: head,
            elapsed: warm,
        },
    ])
}

/// The in-memory fold with the partitions in parallel (decode + apply).
pub fn parallel_fold(log: &[GenEvent], seed: u64, threads: usize) -> Result<FoldRate> {
    let recorded = gen::to_recorded(log, seed);
    let started = Instant::now();
    let model = registre_projections::fold_in_parallel(&recorded, threads)?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        model.position() == recorded.len() as u64,
        "parallel fold short"
    );
    Ok(FoldRate {
        label: format!("in-memory fold, partitions in parallel on {threads} threads"),
        events: recorded.len() as u64,
        elapsed,
    })
}

/// The snapshot of a folded log, one row per partition (decision 0022).
#[derive(Clone, Debug)]
pub struct SliceFigures {
    pub partitions: usize,
    /// Compressed bytes: the directory's, the largest establishment's, all.
    pub directory: usize,
    pub largest: usize,
    pub total: usize,
    /// The same slices as JSON, uncompressed.
    pub json_total: usize,
    pub split: Duration,
    pub encode: Duration,
    pub decode: Duration,
    pub join: Duration,
}

/// Slices, encodes, decodes and joins the model of `log`, one thread.
pub fn slice_snapshots(log: &[GenEvent], seed: u64) -> Result<SliceFigures> {
    let mut model = ReadModel::new();
    model.apply_all(&gen::to_recorded(log, seed))?;
    let started = Instant::now();
    let slices = model.slices();
    let split = started.elapsed();
    let started = Instant::now();
    let mut rows = Vec::new();
    for (partition, slice) in &slices {
        rows.push((partition.is_directory(), slice.to_snapshot()?));
    }
    let encode = started.elapsed();
    let json_total = slices
        .values()
        .map(|s| s.to_json().map_or(0, |j| j.len()))
        .sum();
    let started = Instant::now();
    let mut parts = Vec::new();
    for (_, row) in &rows {
        parts.push(ReadModel::from_snapshot(row)?);
    }
    let decode = started.elapsed();
    let started = Instant::now();
    let joined = registre_projections::union_of(parts, 1);
    let join = started.elapsed();
    anyhow::ensure!(joined == model, "the slices' union is not the model");
    Ok(SliceFigures {
        partitions: rows.len(),
        directory: rows.iter().filter(|(d, _)| *d).map(|(_, r)| r.len()).sum(),
        largest: rows
            .iter()
            .filter(|(d, _)| !*d)
            .map(|(_, r)| r.len())
            .max()
            .unwrap_or(0),
        total: rows.iter().map(|(_, r)| r.len()).sum(),
        json_total,
        split,
        encode,
        decode,
        join,
    })
}
