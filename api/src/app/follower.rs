//! The node-wide log follower: one task per process reads the log from the
//! read model's checkpoint whenever the store signals a new head (its own
//! appends, or another node's through PostgreSQL NOTIFY), folds the events into
//! the model, publishes the new position and fans new absences out through a
//! bounded broadcast. A wake-up only says "read"; what is read is the log.

use super::model::Model;
use super::ApiError;
use parking_lot::RwLock;
use registre_domain::{AbsenceId, DomainEvent, StudentId};
use registre_store::{EventStore, Position, RecordedEvent};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch, Notify};

const PAGE: usize = 1000;

/// A new absence in the log, as broadcast to subscribers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveAbsence {
    pub position: Position,
    pub absence: AbsenceId,
    pub student: StudentId,
}

/// The absence a recorded event announces, if it is one subscribers hear of:
/// a roll-call report, a guardian's advance declaration or its confirmation.
pub fn announced_absence(rec: &RecordedEvent) -> Option<LiveAbsence> {
    let (absence, student) = match rec.event_type.as_str() {
        "AbsenceReported" | "AbsenceDeclared" | "DeclaredAbsenceConfirmed" => {
            match DomainEvent::decode(&rec.event_type, rec.schema_version, &rec.data).ok()? {
                DomainEvent::AbsenceReported(e) => (e.absence_id, e.student_id),
                DomainEvent::AbsenceDeclared(e) => (e.absence_id, e.student_id),
                DomainEvent::DeclaredAbsenceConfirmed(e) => (e.absence_id, e.student_id),
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(LiveAbsence {
        position: rec.position,
        absence,
        student,
    })
}

fn decode(rec: &RecordedEvent) -> Result<DomainEvent, ApiError> {
    DomainEvent::decode(&rec.event_type, rec.schema_version, &rec.data).map_err(|e| {
        tracing::error!(position = rec.position, error = %e, "undecodable event in the log");
        ApiError::Internal(format!(
            "the log holds an undecodable event at position {}",
            rec.position
        ))
    })
}

/// Applies one page of events; returns how many.
async fn step(
    store: &dyn EventStore,
    model: &RwLock<Model>,
    live: Option<&broadcast::Sender<LiveAbsence>>,
) -> Result<usize, ApiError> {
    let from = model.read().position;
    let page = store.read_all(from, PAGE).await?;
    let decoded = page
        .iter()
        .map(|r| decode(r).map(|e| (r, e)))
        .collect::<Result<Vec<_>, _>>()?;
    {
        let mut m = model.write();
        for (rec, event) in &decoded {
            if rec.position > m.position {
                m.apply(rec, event);
            }
        }
    }
    // Published after the model holds them, so a subscriber that resolves the
    // absence from the model finds it.
    if let Some(live) = live {
        for rec in &page {
            if let Some(a) = announced_absence(rec) {
                let _ = live.send(a);
            }
        }
    }
    Ok(page.len())
}

/// Folds the log into `model` until it holds `until`.
pub async fn catch_up(
    store: &dyn EventStore,
    model: &RwLock<Model>,
    live: Option<&broadcast::Sender<LiveAbsence>>,
    until: Position,
) -> Result<(), ApiError> {
    while model.read().position < until {
        if step(store, model, live).await? == 0 {
            break;
        }
    }
    Ok(())
}

#[derive(Debug)]
pub struct Follower {
    pub store: Arc<dyn EventStore>,
    pub model: Arc<RwLock<Model>>,
    pub position: watch::Sender<Position>,
    pub poke: Arc<Notify>,
    pub live: broadcast::Sender<LiveAbsence>,
    pub shutdown: watch::Receiver<bool>,
}

pub async fn run(mut f: Follower) {
    let mut wakeups = f.store.wakeups();
    let mut backoff = Duration::from_millis(50);
    loop {
        if *f.shutdown.borrow() {
            return;
        }
        match step(f.store.as_ref(), &f.model, Some(&f.live)).await {
            Ok(n) => {
                backoff = Duration::from_millis(50);
                let pos = f.model.read().position;
                f.position.send_replace(pos);
                if n > 0 {
                    continue;
                }
                let heard = *wakeups.borrow_and_update();
                if heard > pos {
                    continue;
                }
                tokio::select! {
                    r = wakeups.changed() => {
                        if r.is_err() {
                            // The store dropped its signal: fall back to pokes and a slow poll.
                            wakeups = f.store.wakeups();
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                    _ = f.poke.notified() => {}
                    _ = stopped(&mut f.shutdown) => return,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "log follower failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped(&mut f.shutdown) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Resolves once shutdown is signalled (or its sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}
