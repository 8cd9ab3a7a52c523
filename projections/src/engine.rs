//! The projection engine of one node: owns the in-memory [`ReadModel`], loads
//! it from its snapshot at start (or rebuilds it from position 0 when the
//! snapshot's version is not [`ReadModel::VERSION`]), then follows the log:
//! reads pages after its checkpoint, applies each page under one write lock,
//! and sleeps on the store's wake-up channel when it has caught up.
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
//! Erasure served by another node: before applying a page that holds a
//! `PersonErased`, the follower marks the person's keys destroyed in this
//! node's vault cache (later reads of their text, e.g. the audit trail and
//! the export, read it as erased); the fold of the event then erases their
//! text from the model. See `docs/decisions/0006-retention-and-erasure.md`.

use crate::model::{ApplyError, ReadModel};
use crate::usage::PseudonymKey;
use parking_lot::{Mutex, RwLock};
use registre_domain::events::PersonErased;
use registre_domain::DomainEvent;
use registre_store::{EventStore, Position, RecordedEvent, Snapshot, StoreError};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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
    /// Events read per page and applied per write lock.
    pub batch_size: usize,
    /// Events per page of a rebuild and of the catch-up at start, which read
    /// the next page while folding this one: large pages amortise the round
    /// trip, and two of them (the one folded, the one read) are in memory.
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
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch_size: 1_000,
            rebuild_page: 5_000,
            snapshot_every: 10_000,
            // Never a known key: person ids derive from external ids, so
            // pseudonyms under a public key could be reversed by a dictionary.
            pseudonym_key: PseudonymKey::random(),
            idle_recheck: Duration::from_secs(2),
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
    shutdown: watch::Sender<bool>,
}

/// The node's projection engine. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct ProjectionEngine {
    shared: Arc<Shared>,
    follower: Mutex<Option<JoinHandle<()>>>,
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
        let shared = Arc::clone(&engine.shared);
        *engine.follower.lock() = Some(tokio::spawn(follow(shared)));
        Ok(engine)
    }

    /// Like [`Self::start`] without the follower: the caller drives it with
    /// [`Self::catch_up`] (command-line tools, tests).
    pub async fn open(
        store: Arc<dyn EventStore>,
        config: EngineConfig,
    ) -> Result<Self, ProjectionError> {
        let model = match store.load_snapshot(ReadModel::NAME).await? {
            Some(s) if s.version == ReadModel::VERSION => {
                match ReadModel::from_snapshot(&s.state) {
                    Ok(model) => model,
                    Err(e) => {
                        tracing::warn!(error = %e, "read model snapshot unreadable; rebuilding from the log");
                        ReadModel::new()
                    }
                }
            }
            Some(s) => {
                tracing::info!(
                    snapshot_version = s.version,
                    version = ReadModel::VERSION,
                    "read model version changed; rebuilding from the log"
                );
                ReadModel::new()
            }
            None => ReadModel::new(),
        };
        let position = model.position();
        let (applied, _) = watch::channel(position);
        let (shutdown, _) = watch::channel(false);
        Ok(Self {
            shared: Arc::new(Shared {
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
                shutdown,
            }),
            follower: Mutex::new(None),
        })
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

    /// Applies everything up to the head, in the caller's task. Returns the
    /// position reached.
    pub async fn catch_up(&self) -> Result<Position, ProjectionError> {
        while self.shared.step().await? > 0 {}
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
        let mut fresh = ReadModel::new();
        let mut applied = 0u64;
        let mut report = |fresh: &ReadModel, applied: u64| {
            let elapsed = started.elapsed().as_secs_f64();
            let p = RebuildProgress {
                applied,
                position: fresh.position(),
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
        // Most of the log without pausing the follower. The next page is read
        // (rows fetched and parsed, in another task) while this one is folded,
        // so a rebuild runs at the slower of the two rather than their sum.
        let mut pages = Prefetch::start(
            shared.store.clone(),
            fresh.position(),
            shared.config.rebuild_page.max(1),
        );
        loop {
            if fresh.position() >= head {
                break;
            }
            let batch = pages.next().await?;
            if batch.is_empty() {
                break;
            }
            fresh.apply_all(&batch)?;
            applied += batch.len() as u64;
            report(&fresh, applied);
        }
        drop(pages);
        // ...then the tail with it paused, and the swap.
        let guard = shared.apply_lock.lock().await;
        let result = async {
            loop {
                let batch = shared
                    .store
                    .read_all(fresh.position(), shared.config.batch_size)
                    .await?;
                if batch.is_empty() {
                    break;
                }
                fresh.apply_all(&batch)?;
                applied += batch.len() as u64;
                report(&fresh, applied);
            }
            Ok::<_, ProjectionError>(())
        }
        .await;
        if let Err(e) = result {
            shared.metrics.lock().rebuilding = None;
            return Err(e);
        }
        let position = fresh.position();
        *shared.model.write() = fresh;
        shared.applied.send_if_modified(|p| {
            let changed = *p != position;
            *p = position;
            changed
        });
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
        let position = self.read(|m| m.position());
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
        self.shared.shutdown.send_replace(true);
        let handle = self.follower.lock().take();
        if let Some(handle) = handle {
            if let Err(e) = handle.await {
                tracing::warn!(error = %e, "projection follower ended abnormally");
            }
        }
        self.snapshot().await
    }
}

/// Reads `read_all` pages one ahead of the consumer.
struct Prefetch {
    store: Arc<dyn EventStore>,
    page: usize,
    /// `None` once the end of the log was reached.
    pending: Option<JoinHandle<Result<Vec<RecordedEvent>, StoreError>>>,
}

impl Prefetch {
    fn start(store: Arc<dyn EventStore>, after: Position, page: usize) -> Self {
        let pending = Some(Self::read(store.clone(), after, page));
        Self {
            store,
            page,
            pending,
        }
    }

    fn read(
        store: Arc<dyn EventStore>,
        after: Position,
        page: usize,
    ) -> JoinHandle<Result<Vec<RecordedEvent>, StoreError>> {
        tokio::spawn(async move { store.read_all(after, page).await })
    }

    /// The next page, and the read of the one after it started. Empty at the end.
    async fn next(&mut self) -> Result<Vec<RecordedEvent>, ProjectionError> {
        let Some(pending) = self.pending.take() else {
            return Ok(Vec::new());
        };
        let batch = pending
            .await
            .map_err(|e| StoreError::Backend(format!("page read task failed: {e}")))??;
        if let Some(last) = batch.last() {
            self.pending = Some(Self::read(self.store.clone(), last.position, self.page));
        }
        Ok(batch)
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        if let Some(p) = &self.pending {
            p.abort();
        }
    }
}

/// Dropping the engine stops its follower without a final snapshot; call
/// [`ProjectionEngine::shutdown`] for a clean stop.
impl Drop for ProjectionEngine {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

impl Shared {
    /// Applies one page of the log; returns how many events it read.
    async fn step(&self) -> Result<usize, ProjectionError> {
        let _guard = self.apply_lock.lock().await;
        let from = self.model.read().position();
        let batch = self.store.read_all(from, self.config.batch_size).await?;
        let (result, due) = self.apply_page(from, &batch);
        result?;
        if due {
            self.snapshot_best_effort().await;
        }
        Ok(batch.len())
    }

    /// Folds everything up to the head with reads one page ahead, then
    /// snapshots once. A start without a usable snapshot folds the whole log
    /// here; a snapshot every `snapshot_every` events on the way would
    /// serialise the whole, growing model each time (quadratic in the log).
    async fn catch_up_at_start(&self) -> Result<(), ProjectionError> {
        let _guard = self.apply_lock.lock().await;
        let mut pages = Prefetch::start(
            self.store.clone(),
            self.model.read().position(),
            self.config.rebuild_page.max(1),
        );
        let mut due = false;
        loop {
            if *self.shutdown.borrow() {
                break;
            }
            let batch = pages.next().await?;
            if batch.is_empty() {
                break;
            }
            let from = self.model.read().position();
            let (result, page_due) = self.apply_page(from, &batch);
            due |= page_due;
            result?;
        }
        if due {
            self.snapshot_best_effort().await;
        }
        Ok(())
    }

    /// Applies a page read after `from` under one write lock, updates the
    /// metrics and publishes the new position. Returns the fold's outcome and
    /// whether a snapshot is due. Callers hold `apply_lock`.
    fn apply_page(
        &self,
        from: Position,
        batch: &[RecordedEvent],
    ) -> (Result<(), ApplyError>, bool) {
        let Some(last) = batch.last() else {
            return (Ok(()), false);
        };
        self.forget_erased_keys(batch);
        let last_read = last.position;
        let (result, position) = {
            let mut model = self.model.write();
            let result = model.apply_all(batch);
            (result, model.position())
        };
        // Metrics first: whoever wakes up on the new position sees them current.
        let due = {
            let mut m = self.metrics.lock();
            m.head = m.head.max(last_read);
            m.count(
                batch
                    .iter()
                    .filter(|e| e.position > from && e.position <= position)
                    .count() as u64,
            );
            m.stalled = result.as_ref().err().map(|e| e.to_string());
            position.saturating_sub(m.last_snapshot.max(m.last_snapshot_attempt))
                >= self.config.snapshot_every
        };
        self.applied.send_if_modified(|p| {
            let changed = *p < position;
            if changed {
                *p = position;
            }
            changed
        });
        (result, due)
    }

    async fn snapshot_best_effort(&self) {
        let position = self.model.read().position();
        self.metrics.lock().last_snapshot_attempt = position;
        if let Err(e) = self.save_snapshot().await {
            tracing::warn!(error = %e, "saving the read model snapshot failed");
        }
    }

    /// Marks destroyed, in the vault's key cache, the keys of the people this
    /// page erases (their person id and their student record). Erasure
    /// destroys the keys before appending `PersonErased`, so the cache may
    /// only be behind: a key cached live here would keep opening their text.
    fn forget_erased_keys(&self, batch: &[RecordedEvent]) {
        let Some(vault) = self.store.vault() else {
            return;
        };
        let subjects: Vec<uuid::Uuid> = batch
            .iter()
            .filter(|e| e.event_type == "PersonErased")
            .filter_map(|e| DomainEvent::decode(&e.event_type, e.schema_version, &e.data).ok())
            .filter_map(|e| match e {
                DomainEvent::PersonErased(erased) => Some(erased.person_id),
                _ => None,
            })
            .flat_map(PersonErased::destroyed_keys)
            .collect();
        if !subjects.is_empty() {
            vault.forget_cached(subjects);
        }
    }

    /// Callers hold `apply_lock`, so the snapshot is of a settled model.
    async fn save_snapshot(&self) -> Result<Position, ProjectionError> {
        let (state, position) = {
            let model = self.model.read();
            (model.to_snapshot()?, model.position())
        };
        self.store
            .save_snapshot(Snapshot {
                key: ReadModel::NAME.to_owned(),
                version: ReadModel::VERSION,
                position,
                state,
            })
            .await?;
        self.metrics.lock().last_snapshot = position;
        Ok(position)
    }
}

async fn follow(shared: Arc<Shared>) {
    let mut wake = shared.store.wakeups();
    let mut wake_alive = true;
    let mut stop = shared.shutdown.subscribe();
    if let Err(e) = shared.catch_up_at_start().await {
        // The loop below retries page by page and reports the stall.
        tracing::warn!(error = %e, "projection catch-up at start stopped");
    }
    loop {
        if *stop.borrow() {
            break;
        }
        match shared.step().await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "projection follower cannot advance"),
        }
        let recheck = tokio::time::sleep(shared.config.idle_recheck);
        tokio::select! {
            changed = wake.changed(), if wake_alive => {
                if changed.is_err() {
                    wake_alive = false;
                }
            }
            _ = stop.changed() => {}
            _ = recheck => {}
        }
    }
}
