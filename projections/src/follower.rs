//! The node's one log follower, and the one decode of a stored event.
//!
//! [`LogFollower`] is one task per node: it pages the log (through the
//! store's [`LogReader`]) after the position of its slowest consumer, decodes
//! each event once into a [`LoggedEvent`], and hands the page to its named
//! [`LogConsumer`]s in the order they registered; when it has caught up it
//! waits for the store's wake-ups, with a poll as a safety net. A node
//! registers, in this order: the vault's key-cache invalidation (the API,
//! which owns the vault), the read model's fold ([`crate::ProjectionEngine`])
//! and the live absence broadcast (the API).
//!
//! Why here and not in the store: the follower decodes into domain types,
//! and the store knows none (it keeps `(event_type, schema_version, data)`).
//! This crate already depends on the store and the domain, and both the
//! engine and the API depend on it.
//!
//! Guarantees:
//! - each consumer gets every event after its own [`LogConsumer::position`]
//!   exactly once and in order (a consumer registered late starts from its
//!   own position, and events at or below it are never handed to it);
//! - a consumer never runs ahead of the ones registered before it: the vault
//!   has forgotten an erased person's keys before the model shows the
//!   erasure, and the model has applied an absence before it is broadcast;
//! - nothing is skipped. An event that does not decode stops every consumer
//!   at the event before it; a consumer that fails keeps its position. In both
//!   cases the consumer is reported stalled and the follower retries the page
//!   with a growing pause (50 ms to 5 s) until it goes through.

use crate::engine::ProjectionError;
use crate::model::ApplyError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use registre_domain::{DomainEvent, PersonId};
use registre_store::{EventStore, LogReader, Partition, Position, RawEvent, RecordedEvent};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// The first pause after a failed round; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A stored event decoded into its domain type, with what a consumer needs
/// of its envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedEvent {
    pub position: Position,
    pub recorded_at: DateTime<Utc>,
    /// Who caused it; `None` for a system event.
    pub actor: Option<PersonId>,
    pub event: DomainEvent,
    /// The partition it was appended to, as stored (`None` only before the
    /// start's backfill has run): what serves it, without folding again.
    pub partition: Option<Partition>,
}

impl LoggedEvent {
    /// Decodes a stored event (upcasting older schema versions). Every reader
    /// of stored events decodes through here.
    pub fn decode(recorded: &RecordedEvent) -> Result<Self, ApplyError> {
        let event = DomainEvent::decode(
            &recorded.event_type,
            recorded.schema_version,
            &recorded.data,
        )
        .map_err(|source| ApplyError::Decode {
            position: recorded.position,
            source,
        })?;
        Ok(LoggedEvent {
            position: recorded.position,
            recorded_at: recorded.recorded_at,
            actor: recorded
                .metadata
                .actor
                .as_ref()
                .map(|a| PersonId(a.person_id)),
            event,
            partition: recorded.partition.clone(),
        })
    }

    /// [`LoggedEvent::decode`] of an event read as text (a rebuild's read).
    pub fn decode_raw(raw: RawEvent) -> Result<Self, ApplyError> {
        let event = DomainEvent::decode_text(&raw.event_type, raw.schema_version, &raw.data)
            .map_err(|source| ApplyError::Decode {
                position: raw.position,
                source,
            })?;
        Ok(LoggedEvent {
            position: raw.position,
            recorded_at: raw.recorded_at,
            actor: raw.actor.map(PersonId),
            event,
            partition: raw.partition,
        })
    }
}

/// Decodes `records` in order up to the first one that does not decode
/// (returned beside the events before it).
pub fn decode_page(records: &[RecordedEvent]) -> (Vec<LoggedEvent>, Option<ApplyError>) {
    let mut events = Vec::with_capacity(records.len());
    for r in records {
        match LoggedEvent::decode(r) {
            Ok(e) => events.push(e),
            Err(e) => return (events, Some(e)),
        }
    }
    (events, None)
}

/// What a consumer is handed: the events of a page after its position.
#[derive(Clone, Copy, Debug)]
pub struct Page<'a> {
    /// In position order, every one above the consumer's position.
    pub events: &'a [LoggedEvent],
    /// The last position read from the log (an event at or above the last
    /// one handed: the page may stop before an event that does not decode,
    /// or before what a consumer registered earlier has not reached).
    pub read_to: Position,
    /// The read filled a whole page: more is probably waiting.
    pub more: bool,
}

/// Something the follower keeps up to date with the log.
#[async_trait]
pub trait LogConsumer: Send + Sync + 'static {
    /// Its name in logs and metrics.
    fn name(&self) -> &'static str;

    /// The last position it has consumed. The follower hands it only events
    /// above it, and reads from the lowest position of its consumers.
    fn position(&self) -> Position;

    /// Consumes a page. On success its position must be the page's last
    /// event; on failure it stays where the consumer got to, and the
    /// follower hands it the rest again later.
    async fn consume(&self, page: Page<'_>) -> Result<(), ProjectionError>;

    /// Called once every consumer has been handed a page: slow work that
    /// must not delay the consumers after this one (the read model's
    /// snapshot). `more` as in [`Page::more`].
    async fn settle(&self, more: bool) {
        let _ = more;
    }

    /// The follower reads some partitions only (a node serving a set) and
    /// the log holds none of their events between this consumer's position
    /// and `position` (cluster, issue 12). Its position need not move: a
    /// consumer that answers "have you reached P" (the read model's
    /// read-your-writes) answers yes from here.
    fn passed(&self, position: Position) {
        let _ = position;
    }

    /// Told why it cannot advance (an event that does not decode, its own
    /// failure), then `None` once it has consumed again.
    fn stalled(&self, why: Option<&str>) {
        let _ = why;
    }
}

/// Where one consumer stands (/metrics).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerStatus {
    pub name: &'static str,
    pub position: Position,
    /// Events between the last position the follower read and this one.
    pub lag: u64,
    pub stalled: Option<String>,
}

struct Registered {
    consumer: Arc<dyn LogConsumer>,
    stalled: Mutex<Option<String>>,
}

impl Registered {
    fn stall(&self, why: String) {
        self.consumer.stalled(Some(&why));
        *self.stalled.lock() = Some(why);
    }

    fn unstall(&self) {
        if self.stalled.lock().take().is_some() {
            self.consumer.stalled(None);
        }
    }
}

/// The node's log follower. See the module documentation.
pub struct LogFollower {
    store: Arc<dyn EventStore>,
    /// The partitions read (`None`: the whole log).
    partitions: Option<Arc<[Partition]>>,
    page: usize,
    poll: Duration,
    consumers: Mutex<Vec<Arc<Registered>>>,
    /// One round at a time: the task's and those run by [`LogFollower::catch_up`].
    round: tokio::sync::Mutex<()>,
    registered: Notify,
    /// The last position read from the log.
    read_to: AtomicU64,
    /// Every consumer has every event of the partitions read up to here
    /// (the last [`LogConsumer::passed`]).
    passed: AtomicU64,
    /// Events decoded since start: once per event read, whatever the number
    /// of consumers.
    decoded: AtomicU64,
    shutdown: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for LogFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFollower")
            .field("consumers", &self.status())
            .finish_non_exhaustive()
    }
}

impl LogFollower {
    /// A follower reading `page` events at a time and re-reading the log
    /// after `poll` without a wake-up. Register consumers, then
    /// [`LogFollower::start`] it, or drive it with [`LogFollower::catch_up`].
    pub fn new(store: Arc<dyn EventStore>, page: usize, poll: Duration) -> Arc<Self> {
        Self::of_partitions(store, page, poll, None)
    }

    /// Like [`Self::new`], reading only `partitions` (`None`: the whole log;
    /// a node serving a set reads its establishments and the directory).
    pub fn of_partitions(
        store: Arc<dyn EventStore>,
        page: usize,
        poll: Duration,
        partitions: Option<Arc<[Partition]>>,
    ) -> Arc<Self> {
        let (shutdown, _) = watch::channel(false);
        Arc::new(Self {
            store,
            partitions,
            page: page.max(1),
            poll,
            consumers: Mutex::new(Vec::new()),
            round: tokio::sync::Mutex::new(()),
            registered: Notify::new(),
            read_to: AtomicU64::new(0),
            passed: AtomicU64::new(0),
            decoded: AtomicU64::new(0),
            shutdown,
            task: Mutex::new(None),
        })
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The partitions it reads (`None`: the whole log).
    pub fn partitions(&self) -> Option<&Arc<[Partition]>> {
        self.partitions.as_ref()
    }

    /// Adds a consumer after those already registered. It is handed the
    /// events after its own position from the next round on.
    pub fn register(&self, consumer: Arc<dyn LogConsumer>) {
        self.consumers.lock().push(Arc::new(Registered {
            consumer,
            stalled: Mutex::new(None),
        }));
        self.registered.notify_one();
    }

    /// Events decoded since start.
    pub fn decoded(&self) -> u64 {
        self.decoded.load(Ordering::Relaxed)
    }

    /// Where each consumer stands, in registration order.
    pub fn status(&self) -> Vec<ConsumerStatus> {
        let read_to = self.read_to.load(Ordering::Relaxed);
        let passed = self.passed.load(Ordering::Relaxed);
        let heard = *self.store.wakeups().borrow();
        let head = read_to.max(heard);
        self.consumers
            .lock()
            .iter()
            .map(|c| {
                let position = c.consumer.position();
                ConsumerStatus {
                    name: c.consumer.name(),
                    position,
                    lag: head.saturating_sub(position.max(passed)),
                    stalled: c.stalled.lock().clone(),
                }
            })
            .collect()
    }

    /// Follows the log in a task of its own until [`LogFollower::stop`].
    /// Does nothing when it already runs.
    pub fn start(self: &Arc<Self>) {
        let mut task = self.task.lock();
        if task.is_none() {
            *task = Some(tokio::spawn(Arc::clone(self).run()));
        }
    }

    /// Stops the task (the round in progress completes first). Idempotent.
    pub async fn stop(&self) {
        self.signal_stop();
        let task = self.task.lock().take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "log follower ended abnormally");
            }
        }
    }

    /// Asks the task to stop without waiting for it.
    pub fn signal_stop(&self) {
        self.shutdown.send_replace(true);
    }

    /// Hands every consumer the log up to the head, in the caller's task.
    pub async fn catch_up(&self) -> Result<(), ProjectionError> {
        let _round = self.round.lock().await;
        self.catch_up_locked().await
    }

    /// Runs `then` between two rounds, the follower paused meanwhile (the
    /// projection engine swaps a rebuilt model in).
    pub async fn paused<R>(&self, then: impl std::future::Future<Output = R>) -> R {
        let _round = self.round.lock().await;
        then.await
    }

    /// The lowest position of the consumers registered before the one named
    /// `name`: how far it may go without running ahead of them (`None` when
    /// it is the first).
    pub fn reached_before(&self, name: &str) -> Option<Position> {
        self.consumers
            .lock()
            .iter()
            .take_while(|c| c.consumer.name() != name)
            .map(|c| c.consumer.position())
            .min()
    }

    async fn catch_up_locked(&self) -> Result<(), ProjectionError> {
        let mut log = LogReader::new(Arc::clone(&self.store), 0)
            .page_size(self.page)
            .partitions(self.partitions.clone())
            .reading_ahead();
        while self.round_locked(&mut log).await? > 0 {}
        Ok(())
    }

    /// One page: read after the slowest consumer, decoded once, handed out.
    /// Returns the number of events read (0: the consumers are at the head).
    async fn round_locked(
        &self,
        log: &mut LogReader<Arc<dyn EventStore>>,
    ) -> Result<usize, ProjectionError> {
        let consumers: Vec<Arc<Registered>> = self.consumers.lock().clone();
        let Some(from) = consumers.iter().map(|c| c.consumer.position()).min() else {
            return Ok(0);
        };
        log.seek(from);
        let records = log.next_page().await?;
        let Some(last) = records.last() else {
            // Nothing of this node's partitions up to the scan: every
            // consumer, at or above `from`, has all of them.
            let scanned = log.scanned_to();
            if scanned > from {
                self.read_to.fetch_max(scanned, Ordering::Relaxed);
                self.passed.fetch_max(scanned, Ordering::Relaxed);
                for c in &consumers {
                    c.consumer.passed(scanned);
                }
            }
            // At the head: work put off while catching up is due now.
            for c in &consumers {
                c.consumer.settle(false).await;
            }
            return Ok(0);
        };
        let read_to = last.position;
        let more = records.len() >= log.page();
        self.read_to.fetch_max(read_to, Ordering::Relaxed);
        let (events, undecodable) = decode_page(&records);
        self.decoded
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        let mut limit = events.last().map_or(from, |e| e.position);
        let mut failed = None;
        for c in &consumers {
            let at = c.consumer.position();
            let start = events.partition_point(|e| e.position <= at);
            let end = events.partition_point(|e| e.position <= limit);
            if start < end {
                let page = Page {
                    events: &events[start..end],
                    read_to,
                    more,
                };
                match c.consumer.consume(page).await {
                    Ok(()) => c.unstall(),
                    Err(e) => {
                        // Its position did not move past what it consumed:
                        // the next round hands it the rest again.
                        tracing::warn!(consumer = c.consumer.name(), error = %e, "log consumer failed; retrying");
                        c.stall(e.to_string());
                        failed.get_or_insert(ProjectionError::Consumer {
                            name: c.consumer.name(),
                            source: Box::new(e),
                        });
                    }
                }
            }
            limit = limit.min(c.consumer.position());
        }
        for c in &consumers {
            c.consumer.settle(more).await;
        }
        if let Some(e) = undecodable {
            let ApplyError::Decode { position, .. } = &e;
            let why = e.to_string();
            for c in &consumers {
                if c.consumer.position() < *position {
                    c.stall(why.clone());
                }
            }
            return Err(e.into());
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(records.len()),
        }
    }

    async fn run(self: Arc<Self>) {
        let mut stop = self.shutdown.subscribe();
        let mut log = LogReader::new(Arc::clone(&self.store), 0)
            .page_size(self.page)
            .partitions(self.partitions.clone())
            .reading_ahead();
        let mut backoff = MIN_BACKOFF;
        loop {
            if *stop.borrow() {
                return;
            }
            let round = {
                let _round = self.round.lock().await;
                self.round_locked(&mut log).await
            };
            match round {
                Ok(n) if n > 0 => {
                    backoff = MIN_BACKOFF;
                    continue;
                }
                Ok(_) => {
                    backoff = MIN_BACKOFF;
                    tokio::select! {
                        () = log.wait(self.poll) => {}
                        () = self.registered.notified() => {}
                        _ = stop.changed() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "log follower cannot advance; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
