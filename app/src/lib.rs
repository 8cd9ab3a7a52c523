//! The application layer: one [`App`] per process, shared by every request. It
//! resolves the caller into a [`Viewer`], runs commands against the log
//! (facts from the read model, the target stream's small state, decision,
//! append with an expected version and an idempotency key, bounded retries on
//! conflict), answers from the projection engine's in-memory read model once it
//! has reached the log head, records reads in the access log in the background
//! and fans live absences out to subscribers.
//!
//! A read that cannot be logged is not served: `record_access` waits for
//! room in the access-log queue (back-pressure, bounded by
//! `access_enqueue_timeout`, then UNAVAILABLE), the writer retries a failed
//! write instead of dropping it (the queue then fills and reads are refused),
//! and one request may record at most `access_reads_per_request` reads
//! (INVALID_INPUT past it: paginate).
//!
//! This crate knows no transport: no GraphQL, no HTTP, no WebSocket. The
//! `api` crate turns requests into calls on [`App`] and [`ApiError`]s into
//! GraphQL errors; the `registre` binary builds an [`AppConfig`] from the
//! configuration and starts everything.
//!
//! ```text
//! let app: Arc<App> = App::new(store, AppConfig::default()).await?;
//!     // starts the node's log follower (consumers: the vault's key cache, the
//!     // projection engine from its snapshot, the live absences) and the
//!     // access-log writer (tokio tasks owned by the App).
//! app.viewer(&caller)                      // who is asking, and what policy lets them do
//! app.execute(&cx, &command, key)          // every mutation (see `commands`)
//! app.stats(), app.engine(), app.store()   // for /metrics and /readyz
//! app.shutdown().await;   // ends live streams, flushes the access log, stops the
//!                         // follower and the engine (final read-model snapshot)
//! ```

// cluster (issue 12)
pub mod cluster;
pub mod commands;
pub mod discipline;
// communication (issue 16)
pub mod communication;
pub mod erasure;
pub mod error;
pub mod evaluation;
pub mod export;
mod follower;
pub mod import;
pub mod limits;
pub mod live;
pub mod notify;
pub mod policy;
pub mod usage;

pub use crate::policy::Viewer;
pub use error::ApiError;
pub use follower::LiveAbsence;

use crate::policy::Caller;
use parking_lot::Mutex;
use registre_domain::events::PersonRegistered;
use registre_domain::{ClassId, DomainEvent, PersonId, Role, StreamName};
use registre_projections::{EngineConfig, LogFollower, ProjectionEngine, ReadModel};
use registre_store::{
    Actor, AppendRequest, EventMetadata, EventStore, ExpectedVersion, NewAccess, NewEvent,
    Partition, Position, StoreError,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Tunables of the application layer. `Default` is what `registre serve` uses.
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// How long a request waits for the read model to reach the log head
    /// (read-your-writes) before failing with INTERNAL.
    pub consistency_timeout: Duration,
    /// Attempts of a command after an expected-version conflict.
    pub conflict_retries: u32,
    /// Access-log entries buffered between the reads and the writer. When
    /// it is full, reads wait for room (back-pressure), never drop entries.
    pub access_queue: usize,
    /// How long a read waits for room in the access-log queue before it is
    /// refused with UNAVAILABLE (the log cannot keep up: the store is down
    /// or far behind) rather than served unlogged.
    pub access_enqueue_timeout: Duration,
    /// Access-log entries one request may cause: a read wider than this
    /// (100 aliases of a whole establishment's grades) is refused with
    /// INVALID_INPUT past the bound and must be paginated.
    pub access_reads_per_request: usize,
    /// Per-person rate limits on mutations (see [`limits`]).
    pub limits: limits::PersonLimits,
    /// The access-log writer flushes when it holds this many entries...
    pub access_batch: usize,
    /// ...or this long after the first unflushed one.
    pub access_flush_every: Duration,
    /// Live absences kept for slow subscribers before they resume from the log.
    pub live_capacity: usize,
    /// The read model's engine (batch size, snapshots, the usage pseudonym key).
    pub engine: EngineConfig,
    /// How many school years after the decision's each sanction kind stays
    /// in the record (discipline, issue 15; R511-13's delays by default).
    pub sanction_erasure: registre_domain::discipline::ErasureDelays,
    /// Attachments and notifications (issue 16).
    pub communication: communication::CommunicationConfig,
    /// cluster (issue 12): the node's id, URL, key and registry timing
    /// (what it folds is `engine.partitions`).
    pub cluster: cluster::ClusterConfig,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            consistency_timeout: Duration::from_secs(5),
            conflict_retries: commands::CONFLICT_RETRIES,
            access_queue: 16_384,
            access_enqueue_timeout: Duration::from_secs(2),
            access_reads_per_request: 5_000,
            limits: limits::PersonLimits::default(),
            access_batch: 512,
            access_flush_every: Duration::from_millis(200),
            live_capacity: 1024,
            engine: EngineConfig::default(),
            sanction_erasure: Default::default(),
            communication: communication::CommunicationConfig::default(),
            cluster: cluster::ClusterConfig::default(),
        }
    }
}

/// Counters for /metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppStats {
    pub read_model_position: Position,
    pub live_subscribers: u64,
    pub access_log_written: u64,
    /// Entries lost: only when a write still fails at shutdown (reads wait
    /// or are refused instead of dropping their entry).
    pub access_log_dropped: u64,
    /// Reads refused (UNAVAILABLE) because their entry could not be queued in time.
    pub access_log_refused_reads: u64,
}

#[derive(Debug, Default)]
struct Counters {
    live_subscribers: AtomicU64,
    access_written: AtomicU64,
    access_dropped: AtomicU64,
    access_refused: AtomicU64,
}

/// The access-log entries one request has caused so far, shared by the
/// clones of its [`Viewer`] (the GraphQL layer resolves the viewer once per
/// request and clones it into every resolver).
#[derive(Clone, Debug, Default)]
pub struct RequestReads(Arc<AtomicU64>);

impl RequestReads {
    /// Counts one more entry; false past `limit`.
    fn charge(&self, limit: usize) -> bool {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        n <= limit as u64
    }
}

/// Two viewers are the same person whatever their requests have read.
impl PartialEq for RequestReads {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for RequestReads {}

enum AccessMsg {
    Entry(NewAccess),
    Flush(oneshot::Sender<()>),
}

/// The application service. Cheap to share (`Arc<App>`).
pub struct App {
    store: Arc<dyn EventStore>,
    engine: ProjectionEngine,
    live: broadcast::Sender<LiveAbsence>,
    published: Arc<AtomicU64>,
    access: mpsc::Sender<AccessMsg>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    counters: Arc<Counters>,
    limiter: limits::Limiter,
    /// Class figures per period (evaluation, issue 14; all time for the
    /// class averages every dashboard shows).
    class_figures: evaluation::FiguresCache,
    config: AppConfig,
    // communication (issue 16)
    notify_stats: Arc<notify::NotifyStats>,
    // cluster (issue 12)
    cluster: cluster::Cluster,
    /// The shared readers of schools watched from here, folded elsewhere.
    tails: live::Tails,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("store", &self.store)
            .field("position", &self.engine.position())
            .finish_non_exhaustive()
    }
}

impl App {
    /// Starts the projection engine (from its snapshot) and the background
    /// tasks. Requests wait for the read model to reach the log head, so this
    /// does not: a large log is folded while the server already answers
    /// /healthz (and /readyz reports the lag).
    pub async fn new(store: Arc<dyn EventStore>, config: AppConfig) -> Result<Arc<App>, ApiError> {
        let started = std::time::Instant::now();
        // A log from before partitions gets them before anything reads it
        // by partition (a no-op, one indexed probe, once it has).
        let assigned =
            registre_projections::backfill_partitions(store.as_ref(), config.engine.batch_size)
                .await
                .map_err(|e| match e {
                    registre_projections::BackfillError::Store(e) => ApiError::from(e),
                    other => {
                        tracing::error!(error = %other, "partition backfill failed");
                        ApiError::Internal("the log does not decode; see the server logs".into())
                    }
                })?;
        if assigned > 0 {
            tracing::info!(assigned, "partitions given to events written before them");
        }
        // Every read and append of the application goes through the vault,
        // whoever opened the store.
        let store =
            registre_store::VaultStore::wrap(store, registre_domain::personal::sealed_fields)?;
        // Live subscribers hear of absences appended from now on; `after`
        // replays older ones from the log.
        let start = store.head().await?;
        let (live_tx, _) = broadcast::channel(config.live_capacity.max(16));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (access_tx, access_rx) = mpsc::channel(config.access_queue.max(16));
        let counters = Arc::new(Counters::default());
        let published = Arc::new(AtomicU64::new(start));

        // One follower of the log for the node; its consumers in the order
        // they must see each page (see `follower`).
        let log = LogFollower::of_partitions(
            store.clone(),
            config.engine.batch_size,
            config.engine.idle_recheck,
            config.engine.read_set(),
        );
        let vault_keys = store.vault().map(|vault| {
            Arc::new(follower::VaultKeys {
                vault,
                position: AtomicU64::new(start),
            })
        });
        if let Some(keys) = &vault_keys {
            log.register(keys.clone());
        }
        let engine = ProjectionEngine::open_on(log.clone(), config.engine.clone())
            .await
            .map_err(internal)?;
        if let Some(keys) = &vault_keys {
            // The cache may predate this App (a store already wrapped): it
            // forgets from where the model resumes, as the model erases.
            keys.position
                .store(start.min(engine.position()), Ordering::SeqCst);
        }
        log.register(Arc::new(follower::LiveBroadcast {
            live: live_tx.clone(),
            published: published.clone(),
        }));
        log.start();
        let writer = tokio::spawn(access_writer(
            store.clone(),
            access_rx,
            shutdown_rx,
            config.access_batch.max(1),
            config.access_flush_every,
            counters.clone(),
        ));
        let cluster = cluster::Cluster::new(
            config.cluster.clone(),
            config.engine.partitions.clone(),
            store.nodes(),
        )?;
        let app = Arc::new(App {
            cluster,
            tails: live::Tails::default(),
            store,
            engine,
            live: live_tx,
            published,
            access: access_tx,
            shutdown: shutdown_tx,
            tasks: Mutex::new(vec![writer]),
            counters,
            limiter: limits::Limiter::new(config.limits.clone()),
            class_figures: evaluation::FiguresCache::default(),
            config,
            notify_stats: Arc::default(),
        });
        usage::start(&app);
        notify::start(&app).await?;
        let registry = tokio::spawn(cluster::run_registry(
            Arc::downgrade(&app),
            app.shutdown_signal(),
        ));
        app.tasks.lock().push(registry);
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            position = app.engine.position(),
            "application started"
        );
        Ok(app)
    }

    /// Stops the follower and live streams and flushes the access log. Idempotent.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            if let Err(e) = t.await {
                tracing::warn!(error = %e, "background task ended abnormally");
            }
        }
        if let Err(e) = self.engine.shutdown().await {
            tracing::warn!(error = %e, "projection engine shutdown");
        }
    }

    /// The projection engine (metrics, snapshots, rebuilds).
    pub fn engine(&self) -> &ProjectionEngine {
        &self.engine
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    pub fn read_model_position(&self) -> Position {
        self.engine.position()
    }

    pub fn stats(&self) -> AppStats {
        AppStats {
            read_model_position: self.read_model_position(),
            live_subscribers: self.counters.live_subscribers.load(Ordering::Relaxed),
            access_log_written: self.counters.access_written.load(Ordering::Relaxed),
            access_log_dropped: self.counters.access_dropped.load(Ordering::Relaxed),
            access_log_refused_reads: self.counters.access_refused.load(Ordering::Relaxed),
        }
    }

    /// Reads the model under its lock. Keep `f` short and free of awaits.
    pub fn read<R>(&self, f: impl FnOnce(&ReadModel) -> R) -> R {
        self.engine.read(f)
    }

    /// A class's figures over a period (all time: `None`) in `m`, the live
    /// model read under its lock; cached until the model moves.
    pub fn class_figures(
        &self,
        m: &ReadModel,
        class: ClassId,
        period: Option<&registre_projections::Period>,
    ) -> Arc<registre_projections::ClassFigures> {
        self.class_figures.get(m, class, period)
    }

    /// Waits until the read model holds `position`, within the consistency timeout.
    pub async fn wait_for(&self, position: Position) -> Result<(), ApiError> {
        wait_model(&self.engine, position, self.config.consistency_timeout).await
    }

    /// Read-your-writes: one `head()` round trip, then wait for the model.
    pub async fn consistent(&self) -> Result<(), ApiError> {
        let head = self.store.head().await?;
        self.wait_for(head).await
    }

    /// Resolves the caller in the roster (after [`App::consistent`] if the
    /// caller needs fresh data). An ADMIN subject gets its Person on first use.
    pub async fn viewer(&self, caller: &Caller) -> Result<Viewer, ApiError> {
        if let Some(v) = self.lookup_viewer(caller) {
            return Ok(v);
        }
        if !caller.admin {
            return Err(ApiError::Forbidden(
                "no person is registered for this identity".into(),
            ));
        }
        let person_id = PersonId::for_external_id(&caller.subject);
        let event = DomainEvent::PersonRegistered(PersonRegistered {
            person_id,
            external_id: caller.subject.clone(),
            display_name: caller.subject.clone(),
            roles: vec![Role::Admin],
            establishment_id: None,
        });
        let actor = Actor {
            person_id: person_id.0,
            role: Role::Admin.wire_name().into(),
        };
        let request = AppendRequest {
            stream_id: StreamName::person(person_id).into_string(),
            partition: Partition::directory(),
            expected: ExpectedVersion::NoStream,
            events: vec![new_event(
                &event,
                Some(actor),
                commands::new_id(),
                None,
                None,
            )],
            idempotency: None,
        };
        match self.store.append(request).await {
            Ok(outcome) => self.wait_for(outcome.last_position()).await?,
            // Another request (or node) registered it first: read theirs.
            Err(StoreError::Conflict { .. }) => self.consistent().await?,
            Err(e) => return Err(e.into()),
        }
        self.lookup_viewer(caller)
            .ok_or_else(|| ApiError::Internal("the admin person could not be registered".into()))
    }

    fn lookup_viewer(&self, caller: &Caller) -> Option<Viewer> {
        self.read(|m| {
            let p = m.person_by_external_id(&caller.subject)?;
            Some(Viewer {
                person: p.id,
                subject: caller.subject.clone(),
                admin: caller.admin || p.roles.contains(&Role::Admin),
                roles: p.roles.clone(),
                establishment: p.establishment_id,
                reads: RequestReads::default(),
            })
        })
    }

    /// Records a read of a person's data, before the data is served: waits
    /// for room in the access-log queue (back-pressure) up to
    /// `access_enqueue_timeout`, then refuses the read with UNAVAILABLE; a
    /// request past `access_reads_per_request` entries is refused with
    /// INVALID_INPUT. On error the caller must not serve the data.
    pub async fn record_access(
        &self,
        viewer: &Viewer,
        subject: Option<PersonId>,
        operation: String,
        service: &str,
    ) -> Result<(), ApiError> {
        let limit = self.config.access_reads_per_request;
        if !viewer.reads.charge(limit) {
            return Err(ApiError::invalid(
                "query",
                format!(
                    "this request reads too many records (more than {limit} person records); \
                     paginate or split it into smaller requests"
                ),
            ));
        }
        let entry = NewAccess {
            at: chrono::Utc::now(),
            viewer_id: viewer.person.0,
            viewer_profile: viewer.profile().into(),
            subject_id: subject.map(|p| p.0),
            operation,
            service: service.into(),
        };
        let queued = self
            .access
            .send_timeout(AccessMsg::Entry(entry), self.config.access_enqueue_timeout)
            .await;
        if queued.is_err() {
            self.counters.access_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("access log full or stopped: a read was refused");
            return Err(ApiError::Unavailable(
                "the access log cannot record this read right now, so it is not served; \
                 retry in a few seconds"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Waits until every access recorded so far is in the store (the
    /// `accessLog` query calls it so an auditor sees the latest reads).
    pub async fn flush_access(&self) -> Result<(), ApiError> {
        let unavailable =
            || ApiError::Unavailable("the access log is not being written; retry later".into());
        let (tx, rx) = oneshot::channel();
        // An auditor waits longer than a read: the writer may be retrying.
        let wait = self.config.consistency_timeout;
        self.access
            .send_timeout(AccessMsg::Flush(tx), wait)
            .await
            .map_err(|_| unavailable())?;
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(unavailable()),
        }
    }

    /// Refuses a mutation of `kind` by `viewer` past their per-person rate
    /// (RATE_LIMITED with the delay); called before anything is read or written.
    pub fn check_rate(&self, viewer: &Viewer, kind: limits::Limited) -> Result<(), ApiError> {
        self.limiter.check(viewer.person, kind)
    }

    /// Subscribes to the node-wide feed of new absences.
    pub fn live_absences(&self) -> broadcast::Receiver<LiveAbsence> {
        self.live.subscribe()
    }

    /// The position up to which the live feed has broadcast absences. Read it
    /// after [`App::live_absences`]: every absence above it reaches that receiver.
    pub fn live_position(&self) -> Position {
        self.published.load(Ordering::SeqCst)
    }

    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    pub(crate) fn subscriber_guard(self: &Arc<Self>) -> SubscriberGuard {
        self.counters
            .live_subscribers
            .fetch_add(1, Ordering::Relaxed);
        SubscriberGuard(self.counters.clone())
    }
}

/// Counts one open subscription while alive.
#[derive(Debug)]
pub(crate) struct SubscriberGuard(Arc<Counters>);

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.0.live_subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Waits until `engine` holds `position`, at most `timeout`; past it the
/// request fails with INTERNAL, saying the node is catching up.
pub(crate) async fn wait_model(
    engine: &ProjectionEngine,
    position: Position,
    timeout: Duration,
) -> Result<(), ApiError> {
    if engine.position() >= position {
        return Ok(());
    }
    engine.wait_for(position, timeout).await.map_err(|lag| {
        tracing::error!(
            wanted = lag.wanted,
            reached = lag.reached,
            "read model lagging"
        );
        // After a start without a usable snapshot, the node folds the
        // whole log before it can answer: say so, /readyz shows the lag.
        ApiError::Internal(format!(
            "the read model is at log position {} and did not reach {} within {:?} \
             (the node is still catching up with the log; /readyz reports when it is \
             ready); retry",
            lag.reached, lag.wanted, timeout
        ))
    })
}

fn new_event(
    event: &DomainEvent,
    actor: Option<Actor>,
    correlation: Uuid,
    idempotency_key: Option<String>,
    reason: Option<String>,
) -> NewEvent {
    let encoded = event.encode();
    NewEvent {
        event_id: commands::new_id(),
        event_type: encoded.event_type.to_owned(),
        schema_version: encoded.schema_version,
        data: encoded.data,
        metadata: EventMetadata {
            actor,
            correlation_id: correlation,
            causation_id: None,
            idempotency_key,
            occurred_at: commands::now(),
            reason,
        },
    }
}

/// Batches access records into the store: at most `batch` per write, at least
/// every `every` while entries wait. A failed write is retried (with a
/// growing pause) and nothing else is taken from the queue meanwhile, so the
/// queue fills and reads wait, then are refused: no read is served whose
/// record is being lost. On shutdown it drains what is queued.
async fn access_writer(
    store: Arc<dyn EventStore>,
    mut rx: mpsc::Receiver<AccessMsg>,
    mut shutdown: watch::Receiver<bool>,
    batch: usize,
    every: Duration,
    counters: Arc<Counters>,
) {
    let mut buf: Vec<NewAccess> = Vec::with_capacity(batch);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let flush_now = tokio::select! {
            msg = rx.recv() => match msg {
                Some(AccessMsg::Entry(e)) => { buf.push(e); buf.len() >= batch }
                Some(AccessMsg::Flush(tx)) => { waiting.push(tx); true }
                None => break,
            },
            _ = ticker.tick() => !buf.is_empty(),
            _ = follower::stopped(&mut shutdown) => break,
        };
        if flush_now {
            if !flush(store.as_ref(), &mut buf, &counters, Some(&mut shutdown)).await {
                break;
            }
            for w in waiting.drain(..) {
                let _ = w.send(());
            }
        }
    }
    while let Ok(msg) = rx.try_recv() {
        match msg {
            AccessMsg::Entry(e) => buf.push(e),
            AccessMsg::Flush(tx) => waiting.push(tx),
        }
    }
    flush(store.as_ref(), &mut buf, &counters, None).await;
    for w in waiting.drain(..) {
        let _ = w.send(());
    }
}

/// Attempts of the final write at shutdown before its entries are counted as dropped.
const SHUTDOWN_ATTEMPTS: u32 = 3;

/// Writes `buf`, retrying on failure. While running (`shutdown` given) it
/// retries until the write succeeds, or answers false when shutdown begins
/// (the caller then drains and makes the final attempts); at shutdown
/// (`None`) it tries [`SHUTDOWN_ATTEMPTS`] times, then counts the entries as
/// dropped: the process is stopping and cannot hold them.
async fn flush(
    store: &dyn EventStore,
    buf: &mut Vec<NewAccess>,
    counters: &Counters,
    mut shutdown: Option<&mut watch::Receiver<bool>>,
) -> bool {
    if buf.is_empty() {
        return true;
    }
    let n = buf.len() as u64;
    let mut pause = Duration::from_millis(50);
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store.record_access(buf.clone()).await {
            Ok(()) => {
                buf.clear();
                counters.access_written.fetch_add(n, Ordering::Relaxed);
                return true;
            }
            Err(e) => {
                tracing::error!(error = %e, entries = n, attempt, "access log write failed; retrying");
            }
        }
        match shutdown.as_deref_mut() {
            Some(rx) => {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = follower::stopped(rx) => return false,
                }
            }
            None if attempt < SHUTDOWN_ATTEMPTS => tokio::time::sleep(pause).await,
            None => {
                tracing::error!(entries = n, "access log entries lost at shutdown");
                counters.access_dropped.fetch_add(n, Ordering::Relaxed);
                buf.clear();
                return true;
            }
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

fn internal(e: registre_projections::ProjectionError) -> ApiError {
    match e {
        registre_projections::ProjectionError::Store(e) => e.into(),
        other => {
            tracing::error!(error = %other, "projection failure");
            ApiError::Internal("the read model failed; see the server logs".into())
        }
    }
}
