//! The projection engine of one node: owns the in-memory [`ReadModel`], loads
//! it from its snapshot at start (or rebuilds it from position 0 when the
//! snapshot's version is not [`ReadModel::VERSION`]), then keeps it up to date
//! as a consumer of the node's [`LogFollower`]: each page is applied under one
//! write lock.
//!
//! Read-your-writes is done by waiting, not by writing the read model in the
//! append's transaction: the API appends, then calls [`ProjectionEngine::wait_for`]
//! with the position the store returned (or the head) before answering. The
//! wait is a `watch` channel of the applied position, bounded by a timeout.
//!
//! Batches and rebuilds are serialised by one async mutex, so a rebuild can
//! fold a fresh model aside while queries keep reading the current one, then
//! take the mutex, catch up the last events and swap the two in one write.
//!
//! Erasure served by another node: the vault's key cache is a consumer of the
//! same follower registered before the engine (by the API, which owns the
//! vault), so it has forgotten the keys of a `PersonErased` before the fold of
//! the event erases the person's text from the model. See
//! `docs/decisions/0006-retention-and-erasure.md`.

use crate::follower::{LogConsumer, LogFollower, LoggedEvent, Page};
use crate::model::{ApplyError, ReadModel};
use crate::parallel::ParallelFold;
use crate::snapshots::{self, Keys, Manifest};
use crate::usage::PseudonymKey;
use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use registre_store::{EventStore, LogReader, Partition, Position, RecordedEvent, StoreError};
use serde::Serialize;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::watch;

#[derive(Debug, Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("snapshot does not (de)serialize: {0}")]
    Snapshot(#[from] serde_json::Error),
    #[error("replay output: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Lagging(#[from] Lagging),
    /// A consumer of the log follower failed on a page (it is retried).
    #[error("log consumer {name}: {source}")]
    Consumer {
        name: &'static str,
        source: Box<ProjectionError>,
    },
}

/// The read model did not reach a position in time (API: answer with a
/// retryable error rather than stale data).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("read model at position {reached}, waited for {wanted}")]
pub struct Lagging {
    pub wanted: Position,
    pub reached: Position,
}

#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Events per page of the follower the engine opens for itself
    /// ([`ProjectionEngine::open`]), applied per write lock.
    pub batch_size: usize,
    /// Events per page of a rebuild, which reads the next page while folding
    /// this one: large pages amortise the round trip, and two of them (the
    /// one folded, the one read) are in memory.
    pub rebuild_page: usize,
    /// Save a snapshot after this many events since the last one.
    pub snapshot_every: u64,
    /// Key of the usage projection's pseudonyms (a server secret; the usage
    /// projection folds with the engine's model, `usage::fold_usage`). The default
    /// is random per process: set a persistent secret in production.
    pub pseudonym_key: PseudonymKey,
    /// Safety net when a wake-up is lost (wake-ups are best effort): the
    /// follower re-reads the log after this much idle time.
    pub idle_recheck: Duration,
    /// The establishments' partitions this node holds (by UAI), besides the
    /// directory; `None`: all of them (`REGISTRE_ESTABLISHMENTS`, decisions
    /// 0021 and 0022).
    pub partitions: Option<Vec<Partition>>,
    /// Threads of a parallel fold, snapshot encoding and loading (decision
    /// 0022); by default one per core.
    pub threads: usize,
}

impl EngineConfig {
    /// cluster (issue 12): what the node reads of the log: `None` for all
    /// of it, else its establishments and the directory.
    pub fn read_set(&self) -> Option<Arc<[Partition]>> {
        self.partitions.as_ref().map(|set| {
            let mut read: Vec<Partition> = set.clone();
            read.push(Partition::directory());
            read.sort();
            read.dedup();
            Arc::from(read)
        })
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_size: registre_store::reader::PAGE,
            rebuild_page: 5 * registre_store::reader::PAGE,
            snapshot_every: 10_000,
            // Never a known key: person ids derive from external ids, so
            // pseudonyms under a public key could be reversed by a dictionary.
            pseudonym_key: PseudonymKey::random(),
            idle_recheck: registre_store::reader::FALLBACK_POLL,
            partitions: None,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Where a rebuild stands (progress callback and metrics).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildProgress {
    pub applied: u64,
    pub position: Position,
    /// The log head when the rebuild started (the bar's length).
    pub head: Position,
    pub elapsed_secs: f64,
    pub events_per_second: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildReport {
    pub events: u64,
    pub position: Position,
    pub seconds: f64,
    pub events_per_second: f64,
}

/// What /metrics exposes about the projection.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionMetrics {
    pub name: &'static str,
    pub version: u32,
    pub position: Position,
    /// The newest head this node knows of (its wake-ups and its reads).
    pub head: Position,
    pub lag: u64,
    pub events_applied_total: u64,
    /// Over the last second or so of activity; 0 when idle.
    pub events_per_second: f64,
    pub last_snapshot_position: Position,
    pub rebuilding: Option<RebuildProgress>,
    pub last_rebuild: Option<RebuildReport>,
    /// Why the follower cannot advance (an event that does not decode, a
    /// store failure); `None` when healthy.
    pub stalled: Option<String>,
}

#[derive(Debug)]
struct MetricsState {
    head: Position,
    applied_total: u64,
    window_start: Instant,
    window_count: u64,
    rate: f64,
    last_snapshot: Position,
    /// Where the last snapshot attempt was made, saved or not: the next one
    /// waits another `snapshot_every` events, so a model whose snapshot fails
    /// (too large for the store, say) is not serialised again on every page.
    last_snapshot_attempt: Position,
    rebuilding: Option<RebuildProgress>,
    last_rebuild: Option<RebuildReport>,
    stalled: Option<String>,
}

impl MetricsState {
    fn count(&mut self, n: u64) {
        self.applied_total += n;
        self.window_count += n;
        let elapsed = self.window_start.elapsed();
        if elapsed >= Duration::from_secs(1) {
            self.rate = self.window_count as f64 / elapsed.as_secs_f64();
            self.window_start = Instant::now();
            self.window_count = 0;
        }
    }
}

#[derive(Debug)]
struct Shared {
    store: Arc<dyn EventStore>,
    config: EngineConfig,
    model: RwLock<ReadModel>,
    applied: watch::Sender<Position>,
    apply_lock: tokio::sync::Mutex<()>,
    metrics: Mutex<MetricsState>,
    /// A page short of full was applied since the engine opened. Until then
    /// snapshots wait: a start without a usable snapshot folds the whole log,
    /// and a snapshot every `snapshot_every` events on the way would
    /// serialise the whole, growing model each time (quadratic in the log).
    caught_up: AtomicBool,
    /// `snapshot_every` events were applied since the last attempt; taken
    /// in [`LogConsumer::settle`], after the consumers behind the model.
    snapshot_due: AtomicBool,
    /// This node's snapshot rows.
    keys: Keys,
    /// What the last save wrote.
    manifest: Mutex<Manifest>,
    /// The partitions whose slices changed since the last save; `None`: all.
    moved: Mutex<Option<BTreeSet<Partition>>>,
}

/// The node's projection engine. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct ProjectionEngine {
    shared: Arc<Shared>,
    follower: Arc<LogFollower>,
}

impl ProjectionEngine {
    /// Loads the snapshot (when its version matches) and starts following the
    /// log in a background task. Returns at once: use [`Self::wait_for`] or
    /// [`Self::catch_up`] to know when the model has reached a position.
    pub async fn start(
        store: Arc<dyn EventStore>,
        config: EngineConfig,
    ) -> Result<Self, ProjectionError> {
        let engine = Self::open(store, config).await?;
        engine.follower.start();
        Ok(engine)
    }

    /// Like [`Self::start`] without starting its follower: the caller drives
    /// it with [`Self::catch_up`] (command-line tools, tests).
    pub async fn open(
        store: Arc<dyn EventStore>,
        config: EngineConfig,
    ) -> Result<Self, ProjectionError> {
        let follower = LogFollower::of_partitions(
            store,
            config.batch_size,
            config.idle_recheck,
            config.read_set(),
        );
        Self::open_on(follower, config).await
    }

    /// Loads the snapshot and registers the read model's fold as a consumer
    /// of `follower`, after those already registered (the node's follower,
    /// started by its owner).
    pub async fn open_on(
        follower: Arc<LogFollower>,
        config: EngineConfig,
    ) -> Result<Self, ProjectionError> {
        let store = Arc::clone(follower.store());
        let keys = Keys::new(config.partitions.as_deref());
        // The snapshot's partitions, or the log folded in parallel. (The
        // single `read_model` row of version 4 and before is not read: the
        // version changed with the slices, a fold replaces it.)
        let (model, manifest, moved) = match snapshots::load(&store, &keys, config.threads).await? {
            Ok((model, manifest)) => (model, manifest, Some(BTreeSet::new())),
            Err(why) => {
                let head = store.head().await?;
                tracing::info!(?why, head, "no usable read model snapshot; folding the log");
                let folded = match head {
                    0 => Ok(ReadModel::new()),
                    _ => Self::parallel_fold(&config, head).run(&store, |_| {}).await,
                };
                // An event this build cannot decode (a newer build wrote it):
                // the follower folds up to it and stalls there, in order.
                let model = folded.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "the parallel fold failed; folding in order");
                    ReadModel::new()
                });
                (model, Manifest::default(), None)
            }
        };
        let position = model.position();
        let (applied, _) = watch::channel(position);
        let shared = Arc::new(Shared {
            store,
            config,
            model: RwLock::new(model),
            applied,
            apply_lock: tokio::sync::Mutex::new(()),
            metrics: Mutex::new(MetricsState {
                head: position,
                applied_total: 0,
                window_start: Instant::now(),
                window_count: 0,
                rate: 0.0,
                last_snapshot: position,
                last_snapshot_attempt: position,
                rebuilding: None,
                last_rebuild: None,
                stalled: None,
            }),
            caught_up: AtomicBool::new(false),
            // A model folded from the log is saved as soon as it caught up.
            snapshot_due: AtomicBool::new(moved.is_none() && position > 0),
            keys,
            manifest: Mutex::new(manifest),
            moved: Mutex::new(moved),
        });
        follower.register(Arc::clone(&shared) as Arc<dyn LogConsumer>);
        Ok(Self { shared, follower })
    }

    fn parallel_fold(config: &EngineConfig, head: Position) -> ParallelFold {
        ParallelFold {
            head,
            partitions: config.partitions.clone(),
            page: config.rebuild_page,
            threads: config.threads,
        }
    }

    /// The follower that feeds the model (its consumers' status for /metrics).
    pub fn follower(&self) -> &Arc<LogFollower> {
        &self.follower
    }

    /// Runs a query against the current model under a read lock. Keep `f`
    /// short and free of IO: writers wait for it.
    pub fn read<R>(&self, f: impl FnOnce(&ReadModel) -> R) -> R {
        f(&self.shared.model.read())
    }

    /// The configuration it was started with (the usage projection's
    /// pseudonym key among it).
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// The last applied position.
    pub fn position(&self) -> Position {
        *self.shared.applied.borrow()
    }

    /// A receiver of the applied position, for tasks that react to progress.
    pub fn applied_positions(&self) -> watch::Receiver<Position> {
        self.shared.applied.subscribe()
    }

    /// Waits until the model has applied `position`, at most `timeout`.
    pub async fn wait_for(&self, position: Position, timeout: Duration) -> Result<(), Lagging> {
        let mut rx = self.shared.applied.subscribe();
        let reached = tokio::time::timeout(timeout, async {
            rx.wait_for(|p| *p >= position).await.is_ok()
        })
        .await;
        match reached {
            Ok(true) => Ok(()),
            _ => Err(Lagging {
                wanted: position,
                reached: *self.shared.applied.borrow(),
            }),
        }
    }

    /// Waits until the model has reached the store's current head.
    pub async fn wait_for_head(&self, timeout: Duration) -> Result<Position, ProjectionError> {
        let head = self.shared.store.head().await?;
        self.wait_for(head, timeout).await?;
        Ok(head)
    }

    /// Brings every consumer of the follower (the model among them) to the
    /// head, in the caller's task. Returns the model's position.
    pub async fn catch_up(&self) -> Result<Position, ProjectionError> {
        self.follower.catch_up().await?;
        Ok(self.position())
    }

    /// Saves a snapshot of the current model now.
    pub async fn snapshot(&self) -> Result<Position, ProjectionError> {
        let _guard = self.shared.apply_lock.lock().await;
        self.shared.save_snapshot().await
    }

    /// Rebuilds the model from position 0 aside while queries keep answering
    /// from the current one, then swaps it in atomically and snapshots it.
    pub async fn rebuild(
        &self,
        mut progress: impl FnMut(&RebuildProgress) + Send,
    ) -> Result<RebuildReport, ProjectionError> {
        let shared = &self.shared;
        let started = Instant::now();
        let head = shared.store.head().await?;
        let mut applied = 0u64;
        let mut report = |position: Position, applied: u64| {
            let elapsed = started.elapsed().as_secs_f64();
            let p = RebuildProgress {
                applied,
                position,
                head,
                elapsed_secs: elapsed,
                events_per_second: if elapsed > 0.0 {
                    applied as f64 / elapsed
                } else {
                    0.0
                },
            };
            shared.metrics.lock().rebuilding = Some(p.clone());
            progress(&p);
        };
        // Most of the log without pausing the follower, the partitions
        // folded in parallel against the directory (decision 0022).
        let result = Self::parallel_fold(&shared.config, head)
            .run(&shared.store, |n| {
                applied = n;
                // The partitions end at various positions: the bar's is the
                // share of the events folded.
                report(0, n);
            })
            .await;
        let mut fresh = match result {
            Ok(model) => model,
            Err(e) => {
                shared.metrics.lock().rebuilding = None;
                return Err(e);
            }
        };
        // ...then the tail with the follower paused, and the swap. The fresh
        // model goes no further than the consumers registered before the
        // model (the vault's key cache): the follower hands it the rest.
        let swapped = self
            .follower
            .paused(async {
                let guard = shared.apply_lock.lock().await;
                let target = self
                    .follower
                    .reached_before(ReadModel::NAME)
                    .unwrap_or(Position::MAX);
                let mut tail = LogReader::new(Arc::clone(&shared.store), fresh.position())
                    .page_size(shared.config.batch_size)
                    .partitions(shared.config.read_set());
                while fresh.position() < target {
                    let page = tail.next_page().await?;
                    if page.is_empty() {
                        break;
                    }
                    applied += fold_records(&mut fresh, &page, target, &shared.keys)?;
                    report(fresh.position(), applied);
                }
                let position = fresh.position();
                let replaced = std::mem::replace(&mut *shared.model.write(), fresh);
                *shared.moved.lock() = None;
                shared.applied.send_if_modified(|p| {
                    let changed = *p != position;
                    *p = position;
                    changed
                });
                Ok::<_, ProjectionError>((guard, position, replaced))
            })
            .await;
        let (guard, position, replaced) = match swapped {
            Ok(swapped) => swapped,
            Err(e) => {
                shared.metrics.lock().rebuilding = None;
                return Err(e);
            }
        };
        // A whole model's millions of allocations take a second or more to
        // free: not under the model's lock, where readers would wait, nor on
        // the runtime's workers. (Where no thread can be started, the
        // refused closure, and the model with it, is dropped here.)
        let _ = std::thread::Builder::new()
            .name("registre-free-model".into())
            .spawn(move || drop(replaced));
        let seconds = started.elapsed().as_secs_f64();
        let done = RebuildReport {
            events: applied,
            position,
            seconds,
            events_per_second: if seconds > 0.0 {
                applied as f64 / seconds
            } else {
                0.0
            },
        };
        {
            let mut m = shared.metrics.lock();
            m.rebuilding = None;
            m.last_rebuild = Some(done.clone());
            m.head = m.head.max(position);
        }
        shared.save_snapshot().await?;
        drop(guard);
        Ok(done)
    }

    pub fn metrics(&self) -> ProjectionMetrics {
        // The applied position: past the model's last event on a node whose
        // partitions were quiet while the others wrote (`passed`).
        let position = self.position().max(self.read(|m| m.position()));
        let heard = *self.shared.store.wakeups().borrow();
        let mut m = self.shared.metrics.lock();
        m.head = m.head.max(heard).max(position);
        let idle = m.window_start.elapsed();
        let events_per_second = if idle > Duration::from_secs(2) {
            m.window_count as f64 / idle.as_secs_f64()
        } else {
            m.rate
        };
        ProjectionMetrics {
            name: ReadModel::NAME,
            version: ReadModel::VERSION,
            position,
            head: m.head,
            lag: m.head.saturating_sub(position),
            events_applied_total: m.applied_total,
            events_per_second,
            last_snapshot_position: m.last_snapshot,
            rebuilding: m.rebuilding.clone(),
            last_rebuild: m.last_rebuild.clone(),
            stalled: m.stalled.clone(),
        }
    }

    /// Stops the follower and saves a final snapshot.
    pub async fn shutdown(&self) -> Result<Position, ProjectionError> {
        self.follower.stop().await;
        self.snapshot().await
    }
}

/// Folds the events of `page` up to `until` into `model`, decoding each
/// (a rebuild reads pages no one else consumes, so the fold takes them by
/// value). Returns how many were applied.
fn fold_records(
    model: &mut ReadModel,
    page: &[RecordedEvent],
    until: Position,
    keys: &Keys,
) -> Result<u64, ApplyError> {
    let mut applied = 0;
    for r in page.iter().take_while(|r| r.position <= until) {
        if r.position <= model.position() {
            continue;
        }
        match &r.partition {
            // Another node's partition: passed over.
            Some(p) if !keys.holds(p) => model.position = r.position,
            _ => {
                model.apply_logged(LoggedEvent::decode(r)?);
                applied += 1;
            }
        }
    }
    Ok(applied)
}

/// Dropping the engine stops its follower without a final snapshot; call
/// [`ProjectionEngine::shutdown`] for a clean stop.
impl Drop for ProjectionEngine {
    fn drop(&mut self) {
        self.follower.signal_stop();
    }
}

#[async_trait]
impl LogConsumer for Shared {
    fn name(&self) -> &'static str {
        ReadModel::NAME
    }

    fn position(&self) -> Position {
        self.model.read().position()
    }

    /// Applies the page under one write lock, updates the metrics and
    /// publishes the new position. It cannot fail: decoding, the one way a
    /// stored event fails, happened in the follower.
    async fn consume(&self, page: Page<'_>) -> Result<(), ProjectionError> {
        let _guard = self.apply_lock.lock().await;
        let (from, position) = {
            let mut model = self.model.write();
            let mut moved = self.moved.lock();
            let from = model.position();
            for e in page.events.iter().filter(|e| e.position > from) {
                if let Some(set) = moved.as_mut() {
                    match model.partitions_touched(&e.event) {
                        Some(touched) => set.extend(touched),
                        None => *moved = None,
                    }
                }
                model.apply_logged(e.clone());
            }
            (from, model.position())
        };
        // Metrics first: whoever wakes up on the new position sees them current.
        let due = {
            let mut m = self.metrics.lock();
            m.head = m.head.max(page.read_to);
            m.count(
                page.events
                    .iter()
                    .filter(|e| e.position > from && e.position <= position)
                    .count() as u64,
            );
            m.stalled = None;
            position.saturating_sub(m.last_snapshot.max(m.last_snapshot_attempt))
                >= self.config.snapshot_every
        };
        if due {
            self.snapshot_due.store(true, Ordering::Relaxed);
        }
        self.applied.send_if_modified(|p| {
            let changed = *p < position;
            if changed {
                *p = position;
            }
            changed
        });
        Ok(())
    }

    /// The log holds nothing more for this node up to `position`: queries
    /// waiting for the head need not wait for events of other partitions.
    fn passed(&self, position: Position) {
        {
            let mut m = self.metrics.lock();
            m.head = m.head.max(position);
        }
        self.applied.send_if_modified(|p| {
            let changed = *p < position;
            if changed {
                *p = position;
            }
            changed
        });
    }

    async fn settle(&self, more: bool) {
        if !more {
            self.caught_up.store(true, Ordering::Relaxed);
        }
        if self.caught_up.load(Ordering::Relaxed)
            && self.snapshot_due.swap(false, Ordering::Relaxed)
        {
            let _guard = self.apply_lock.lock().await;
            self.snapshot_best_effort().await;
        }
    }

    fn stalled(&self, why: Option<&str>) {
        self.metrics.lock().stalled = why.map(str::to_owned);
    }
}

impl Shared {
    async fn snapshot_best_effort(&self) {
        let position = self.model.read().position();
        self.metrics.lock().last_snapshot_attempt = position;
        if let Err(e) = self.save_snapshot().await {
            tracing::warn!(error = %e, "saving the read model snapshot failed");
        }
    }

    /// Saves the partitions that moved and the manifest (decision 0022).
    /// Callers hold `apply_lock`, so the snapshot is of a settled model.
    async fn save_snapshot(&self) -> Result<Position, ProjectionError> {
        let moved = self.moved.lock().clone();
        let previous = self.manifest.lock().clone();
        let manifest = snapshots::save(
            &self.store,
            &self.keys,
            &self.model,
            moved.as_ref(),
            &previous,
            self.config.threads,
        )
        .await?;
        let position = manifest.position;
        *self.manifest.lock() = manifest;
        *self.moved.lock() = Some(BTreeSet::new());
        self.metrics.lock().last_snapshot = position;
        Ok(position)
    }
}
