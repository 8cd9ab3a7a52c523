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

/// The projection engine's own rebuild from the store: pages of `read_all`,
/// decode, fold, swap (the closing snapshot is not timed).
pub async fn engine_rebuild(store: Arc<dyn EventStore>, label: &str) -> Result<FoldRate> {
    let config = EngineConfig {
        pseudonym_key: PseudonymKey::new(b"bench".to_vec()),
        ..EngineConfig::default()
    };
    let engine = ProjectionEngine::open(store, config).await?;
    let report = engine.rebuild(|_| {}).await?;
    Ok(FoldRate {
        label: label.to_owned(),
        events: report.events,
        elapsed: Duration::from_secs_f64(report.seconds),
    })
}
