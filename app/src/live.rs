//! One subscriber's feed of new absences. It joins the node-wide broadcast
//! first, then (with `after`) replays the log after that position, then
//! forwards live ones, skipping every position already sent: none missed, none
//! twice. A subscriber that falls behind the bounded broadcast resumes from the
//! log instead of buffering without bound. Each feed is one task feeding a
//! small channel; it ends when the client goes away or the App shuts down.
//!
//! cluster (issue 12): on a node that does not fold a school the subscriber
//! hears of (a child's, a staff member's own), the feed reads those
//! schools' partitions of the shared log itself ([`LogReader::partitions`],
//! woken by the store's wake-ups) instead of the node's broadcast: every
//! absence reaches them, in log order, resumable with `after` (positions
//! are global), even while the node holding the school is down.

use super::follower::{announced_absence, stopped, LiveAbsence};
use super::{ApiError, App, Viewer};
use registre_domain::StudentId;
use registre_projections::{LoggedEvent, ReadModel as Model};
use registre_store::{LogReader, Partition, Position};
use std::sync::Arc;
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
                    tail_partitions(&app, &viewer, after, partitions, filter.as_ref(), &tx).await
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

/// The feed of a subscriber whose schools are not all folded here: their
/// partitions of the log, after `after` (or the head), then as they grow.
async fn tail_partitions(
    app: &App,
    viewer: &Viewer,
    after: Option<Position>,
    partitions: Vec<Partition>,
    filter: &Filter,
    tx: &mpsc::Sender<Result<LiveAbsence, ApiError>>,
) {
    let start = match after {
        Some(after) => after,
        None => match app.store().head().await {
            Ok(head) => head,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        },
    };
    let mut log = LogReader::new(app.store().clone(), start).partitions(Some(partitions.into()));
    let poll = app.engine().config().idle_recheck;
    loop {
        let page = match log.next_page().await {
            Ok(page) => page,
            Err(e) => {
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        };
        if page.is_empty() {
            log.wait(poll).await;
            continue;
        }
        for rec in &page {
            let logged = match LoggedEvent::decode(rec) {
                Ok(logged) => logged,
                Err(e) => {
                    tracing::error!(error = %e, "live tail stopped at an undecodable event");
                    let _ = tx
                        .send(Err(ApiError::Internal(
                            "the log holds an event this server cannot read".into(),
                        )))
                        .await;
                    return;
                }
            };
            if let Some(item) = announced_absence(&logged) {
                if send(app, viewer, filter, item, tx).await.is_err() {
                    return;
                }
            }
        }
    }
}

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
