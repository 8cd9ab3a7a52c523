//! One subscriber's feed of new absences. It joins the node-wide broadcast
//! first, then (with `after`) replays the log after that position, then
//! forwards live ones, skipping every position already sent: none missed, none
//! twice. A subscriber that falls behind the bounded broadcast resumes from the
//! log instead of buffering without bound. Each feed is one task feeding a
//! small channel; it ends when the client goes away or the App shuts down.
//!
//! cluster (issue 12): on a node that does not fold a school the subscriber
//! hears of (a child's, a staff member's own), the feed hears of those
//! schools' absences from a [`Tail`]: one reader of their partitions of
//! the shared log ([`LogReader::partitions`], woken by the store's
//! wake-ups) per set of schools, shared by every subscriber watching that
//! set, broadcasting as the node's own feed does (one query per wake-up
//! and set, not per subscriber). Every absence reaches them, in log order,
//! resumable with `after` (positions are global), even while the node
//! holding the school is down.

use super::follower::{announced_absence, stopped, LiveAbsence};
use super::{ApiError, App, Viewer};
use registre_domain::StudentId;
use registre_projections::{LoggedEvent, ReadModel as Model};
use registre_store::{LogReader, Partition, Position};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

/// Decides whether an absence of a student goes to this subscriber.
pub type Filter = dyn Fn(&Model, &Viewer, StudentId) -> bool + Send + Sync;

/// Starts a feed. `after: None` means "from now on".
pub fn feed(
    app: Arc<App>,
    viewer: Viewer,
    after: Option<Position>,
    filter: Arc<Filter>,
) -> ReceiverStream<Result<LiveAbsence, ApiError>> {
    let (tx, rx) = mpsc::channel(64);
    // Subscribe before reading anything so that nothing falls between the
    // history and the live part.
    let live = app.live_absences();
    let start = after.unwrap_or_else(|| app.live_position());
    let replay = after.is_some();
    let guard = app.subscriber_guard();
    let watched = app.read(|m| crate::cluster::home_partitions(m, &viewer));
    let tail = watched
        .iter()
        .any(|p| !app.cluster().holds(p))
        .then_some(watched);
    tokio::spawn(async move {
        let _guard = guard;
        let mut shutdown = app.shutdown_signal();
        let feed = async {
            match tail {
                Some(partitions) => {
                    drop(live);
                    match app.tails.of(&app, partitions).await {
                        Ok(tail) => {
                            let live = tail.live.subscribe();
                            let start =
                                after.unwrap_or_else(|| tail.published.load(Ordering::SeqCst));
                            run(&app, &viewer, start, replay, live, filter.as_ref(), &tx).await;
                            drop(tail);
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                        }
                    }
                }
                None => run(&app, &viewer, start, replay, live, filter.as_ref(), &tx).await,
            }
        };
        tokio::select! {
            () = feed => {}
            _ = stopped(&mut shutdown) => {}
            _ = tx.closed() => {}
        }
    });
    ReceiverStream::new(rx)
}

async fn send(
    app: &App,
    viewer: &Viewer,
    filter: &Filter,
    item: LiveAbsence,
    tx: &mpsc::Sender<Result<LiveAbsence, ApiError>>,
) -> Result<(), ()> {
    if app.wait_for(item.position).await.is_err() {
        // The model is behind: the absence could not be answered in full. The
        // client gets an error and resumes with `after`.
        let _ = tx
            .send(Err(ApiError::Internal(
                "the read model is behind; resubscribe with `after`".into(),
            )))
            .await;
        return Err(());
    }
    if app.read(|m| filter(m, viewer, item.student)) {
        tx.send(Ok(item)).await.map_err(|_| ())?;
    }
    Ok(())
}

/// Sends every matching absence of the log after `*last`; advances `*last`.
async fn replay_log(
    app: &App,
    viewer: &Viewer,
    filter: &Filter,
    last: &mut Position,
    tx: &mpsc::Sender<Result<LiveAbsence, ApiError>>,
) -> Result<(), ()> {
    let mut log = LogReader::new(app.store().as_ref(), *last);
    loop {
        let page = match log.next_page().await {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return Err(());
            }
        };
        let Some(end) = page.last().map(|r| r.position) else {
            return Ok(());
        };
        for rec in &page {
            // An event this build cannot read is never skipped: the
            // subscriber is told and resumes with `after` once it can.
            let logged = match LoggedEvent::decode(rec) {
                Ok(logged) => logged,
                Err(e) => {
                    tracing::error!(error = %e, "live replay stopped at an undecodable event");
                    let _ = tx
                        .send(Err(ApiError::Internal(
                            "the log holds an event this server cannot read".into(),
                        )))
                        .await;
                    return Err(());
                }
            };
            if let Some(item) = announced_absence(&logged) {
                send(app, viewer, filter, item, tx).await?;
            }
        }
        *last = end;
    }
}

/// The readers of the schools subscribers of this node watch and another
/// node folds, by set of partitions; each lives while a subscriber holds it.
#[derive(Debug, Default)]
pub(crate) struct Tails(parking_lot::Mutex<HashMap<Vec<Partition>, Weak<Tail>>>);

/// One reader of some partitions of the log, broadcasting their absences.
#[derive(Debug)]
pub(crate) struct Tail {
    live: broadcast::Sender<LiveAbsence>,
    /// Raised before a page's absences are sent (as the node's own feed):
    /// a subscriber that joins and then reads it hears of every absence
    /// above it.
    published: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tails {
    /// The reader of `partitions`, started at the log's head when no
    /// subscriber watches them yet.
    async fn of(&self, app: &Arc<App>, partitions: Vec<Partition>) -> Result<Arc<Tail>, ApiError> {
        if let Some(tail) = self.0.lock().get(&partitions).and_then(Weak::upgrade) {
            return Ok(tail);
        }
        let head = app.store().head().await?;
        let mut tails = self.0.lock();
        if let Some(tail) = tails.get(&partitions).and_then(Weak::upgrade) {
            return Ok(tail);
        }
        let (live, _) = broadcast::channel(app.config.live_capacity.max(16));
        let published = Arc::new(AtomicU64::new(head));
        let task = tokio::spawn(read_tail(
            Arc::downgrade(app),
            partitions.clone(),
            head,
            live.clone(),
            Arc::clone(&published),
        ));
        let tail = Arc::new(Tail {
            live,
            published,
            task,
        });
        tails.retain(|_, t| t.strong_count() > 0);
        tails.insert(partitions, Arc::downgrade(&tail));
        Ok(tail)
    }
}

/// Reads `partitions` of the log after `start` as they grow and broadcasts
/// their absences. A read that fails is retried after a pause that doubles
/// (the store is down: subscribers resume where it stopped); an event
/// this build cannot decode stops it there, as it stops the node's
/// follower.
async fn read_tail(
    app: Weak<App>,
    partitions: Vec<Partition>,
    start: Position,
    live: broadcast::Sender<LiveAbsence>,
    published: Arc<AtomicU64>,
) {
    let Some((store, poll)) = app
        .upgrade()
        .map(|a| (Arc::clone(a.store()), a.engine().config().idle_recheck))
    else {
        return;
    };
    let mut log = LogReader::new(store, start).partitions(Some(partitions.into()));
    let mut pause = MIN_PAUSE;
    loop {
        let page = match log.next_page().await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "reading the watched schools' log failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
                continue;
            }
        };
        pause = MIN_PAUSE;
        let Some(end) = page.last().map(|r| r.position) else {
            log.wait(poll).await;
            continue;
        };
        let mut absences = Vec::new();
        for rec in &page {
            match LoggedEvent::decode(rec) {
                Ok(logged) => absences.extend(announced_absence(&logged)),
                Err(e) => {
                    tracing::error!(error = %e, "live tail stopped at an undecodable event");
                    published.store(rec.position.saturating_sub(1), Ordering::SeqCst);
                    for a in absences {
                        let _ = live.send(a);
                    }
                    return;
                }
            }
        }
        published.store(end, Ordering::SeqCst);
        for a in absences {
            // No receiver is not an error: the last subscriber just left.
            let _ = live.send(a);
        }
    }
}

const MIN_PAUSE: std::time::Duration = std::time::Duration::from_millis(50);
const MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);

async fn run(
    app: &App,
    viewer: &Viewer,
    start: Position,
    replay: bool,
    mut live: broadcast::Receiver<LiveAbsence>,
    filter: &Filter,
    tx: &mpsc::Sender<Result<LiveAbsence, ApiError>>,
) {
    let mut last = start;
    if replay
        && replay_log(app, viewer, filter, &mut last, tx)
            .await
            .is_err()
    {
        return;
    }
    loop {
        match live.recv().await {
            Ok(item) if item.position <= last => {}
            Ok(item) => {
                last = item.position;
                if send(app, viewer, filter, item, tx).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "slow absence subscriber resumes from the log");
                if replay_log(app, viewer, filter, &mut last, tx)
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
