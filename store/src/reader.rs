//! The one way to read the log in order: [`LogReader`] pages `read_all` after
//! a position and, once it has caught up, waits for the store's wake-ups with
//! a slow poll as a safety net for a lost one.
//!
//! Every reader of the whole log uses it: the node's follower
//! (`registre_projections::follower`, which decodes each page once and hands
//! it to its consumers), the projection engine's rebuild, the auditor's
//! replay, a subscriber's replay of its history and the chain verifier. It
//! hands back the stored rows untouched (the store knows no domain type).
//!
//! Positions are gap-free and allocated in commit order, so reading after the
//! last position returned neither skips nor repeats an event. The reader does
//! not check for gaps itself: [`crate::chain::verify_chain`] is where a gap is
//! found and named.
//!
//! A reader restricted to some partitions ([`LogReader::partitions`], a node
//! serving a set of establishments) reads them with
//! [`EventStore::read_partitions`] and also says how far it has *scanned*
//! ([`LogReader::scanned_to`]): a short page read after taking the head means
//! the set holds nothing more up to that head (positions are allocated under
//! one lock held until commit, so no event below a committed head can still
//! appear). That is how a node whose partitions are quiet still knows it has
//! reached the log head (read-your-writes waits for it).

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{EventStore, Partition, Position, RecordedEvent, Result, StoreError};

/// Events per page, for every reader of the log unless it is given another
/// size (the projection engine's configuration).
pub const PAGE: usize = 1_000;

/// How long a caught-up reader waits for a wake-up before reading anyway
/// (the projection engine's default `idle_recheck`).
pub const FALLBACK_POLL: Duration = Duration::from_secs(2);

/// A page and how far it scanned the log (see [`LogReader::scanned_to`]).
type Read = (Vec<RecordedEvent>, Position);
type PageRead = JoinHandle<Result<Read>>;
type Spawner = Box<dyn Fn(Position, usize, Option<Arc<[Partition]>>) -> PageRead + Send + Sync>;

/// Reads the log in pages after a position. `S` is how the store is held: an
/// `Arc<dyn EventStore>` for a reader that lives in a task of its own, or a
/// `&dyn EventStore` for one call (a replay, a chain verification).
pub struct LogReader<S> {
    store: S,
    after: Position,
    page: usize,
    wakeups: watch::Receiver<Position>,
    /// The newest head heard when the last wait ended: a wake-up that brings
    /// nothing newer does not end the next wait, so a head the log does not
    /// show yet cannot spin the reader.
    heard: Position,
    /// Starts the read of the next page in a task (see [`LogReader::reading_ahead`]).
    spawn: Option<Spawner>,
    /// The read started for the page after this position.
    ahead: Option<(Position, PageRead)>,
    /// Only these partitions, when set (a node serving a set).
    partitions: Option<Arc<[Partition]>>,
    /// The log holds no event of the reader's partitions between its
    /// position and this one.
    scanned: Position,
}

/// One page after `after`, of the whole log or of `partitions`, and how far
/// the log was scanned: to the head taken before a short filtered read.
async fn read_page<T: EventStore + ?Sized>(
    store: &T,
    after: Position,
    page: usize,
    partitions: Option<&[Partition]>,
) -> Result<Read> {
    let Some(partitions) = partitions else {
        let events = store.read_all(after, page).await?;
        let to = events.last().map_or(after, |e| e.position);
        return Ok((events, to));
    };
    let head = store.head().await?;
    let events = store.read_partitions(after, partitions, page).await?;
    let last = events.last().map_or(after, |e| e.position);
    let to = if events.len() < page {
        last.max(head)
    } else {
        last
    };
    Ok((events, to))
}

impl<S, T> LogReader<S>
where
    S: Deref<Target = T>,
    T: EventStore + ?Sized,
{
    /// A reader of the events after `after`, [`PAGE`] at a time.
    pub fn new(store: S, after: Position) -> Self {
        let wakeups = store.wakeups();
        Self {
            store,
            after,
            page: PAGE,
            wakeups,
            heard: 0,
            spawn: None,
            ahead: None,
            partitions: None,
            scanned: after,
        }
    }

    /// Reads only `partitions` (`None`: the whole log).
    pub fn partitions(mut self, partitions: Option<Arc<[Partition]>>) -> Self {
        self.partitions = partitions;
        self
    }

    /// How far the log was read: no event of the reader's partitions lies
    /// between [`Self::position`] and this (equal to it when reading the
    /// whole log, or after a full page).
    pub fn scanned_to(&self) -> Position {
        self.scanned.max(self.after)
    }

    /// Reads `page` events at a time instead of [`PAGE`].
    pub fn page_size(mut self, page: usize) -> Self {
        self.page = page.max(1);
        self
    }

    pub fn page(&self) -> usize {
        self.page
    }

    /// The last position returned (or the one it was started or moved at).
    pub fn position(&self) -> Position {
        self.after
    }

    /// Reads after `after` from now on (a follower whose slowest consumer
    /// is elsewhere). A read ahead made for another position is dropped.
    pub fn seek(&mut self, after: Position) {
        if self.after != after {
            // Moving back below the scan starts it again from there.
            if after < self.after {
                self.scanned = after;
            }
            self.after = after;
            self.cancel_ahead();
        }
    }

    /// The next page, in position order; empty once the log has no event
    /// after the reader's position. When reading ahead and this page is
    /// full, the read of the next one has started before this returns.
    pub async fn next_page(&mut self) -> Result<Vec<RecordedEvent>> {
        let page = match self.ahead.take() {
            Some((after, read)) if after == self.after => read
                .await
                .map_err(|e| StoreError::Backend(format!("page read task failed: {e}")))??,
            other => {
                if let Some((_, read)) = other {
                    read.abort();
                }
                read_page(
                    &*self.store,
                    self.after,
                    self.page,
                    self.partitions.as_deref(),
                )
                .await?
            }
        };
        let (page, scanned) = page;
        self.scanned = self.scanned.max(scanned);
        if let Some(last) = page.last() {
            self.after = last.position;
            if page.len() >= self.page {
                if let Some(spawn) = &self.spawn {
                    self.ahead = Some((
                        self.after,
                        spawn(self.after, self.page, self.partitions.clone()),
                    ));
                }
            }
        }
        Ok(page)
    }

    /// Returns when the store has heard of a head above the reader's
    /// position, or after `poll` (wake-ups are best effort: a lost NOTIFY
    /// delays a reader by `poll`, it never stops it).
    pub async fn wait(&mut self, poll: Duration) {
        let after = self.scanned_to().max(self.heard);
        let woken =
            match tokio::time::timeout(poll, self.wakeups.wait_for(|head| *head > after)).await {
                Ok(Ok(head)) => Some(Some(*head)),
                Ok(Err(_)) => Some(None),
                Err(_) => None,
            };
        match woken {
            Some(Some(head)) => self.heard = head,
            // The store dropped its signal: take a fresh one and let the poll
            // stand in for it meanwhile.
            Some(None) => {
                self.wakeups = self.store.wakeups();
                tokio::time::sleep(poll).await;
            }
            None => {}
        }
    }

    fn cancel_ahead(&mut self) {
        if let Some((_, read)) = self.ahead.take() {
            read.abort();
        }
    }
}

impl LogReader<Arc<dyn EventStore>> {
    /// Reads the next page in another task while the caller works on this
    /// one, whenever this one was full: a rebuild or a catch-up then runs at
    /// the slower of reading and folding rather than their sum, and two
    /// pages are in memory at most.
    pub fn reading_ahead(mut self) -> Self {
        let store = Arc::clone(&self.store);
        self.spawn = Some(Box::new(move |after, page, partitions| {
            let store = Arc::clone(&store);
            tokio::spawn(
                async move { read_page(&*store, after, page, partitions.as_deref()).await },
            )
        }));
        self
    }
}

impl<S> Drop for LogReader<S> {
    fn drop(&mut self) {
        if let Some((_, read)) = self.ahead.take() {
            read.abort();
        }
    }
}

impl<S> std::fmt::Debug for LogReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("after", &self.after)
            .field("page", &self.page)
            .field("reading_ahead", &self.spawn.is_some())
            .finish_non_exhaustive()
    }
}
