//! The node-wide live-absence follower: one task per process reads the log
//! from its checkpoint whenever the store signals a new head (its own appends,
//! or another node's through PostgreSQL NOTIFY) and fans new absences out
//! through a bounded broadcast. A wake-up only says "read"; what is read is the
//! log. (The read model has its own follower, in the projection engine.)

use registre_domain::{AbsenceId, DomainEvent, StudentId};
use registre_store::{EventStore, Position, RecordedEvent};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

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

#[derive(Debug)]
pub struct Follower {
    pub store: Arc<dyn EventStore>,
    /// Last position read: absences after it are published.
    pub checkpoint: Position,
    pub live: broadcast::Sender<LiveAbsence>,
    /// The position up to which absences have been (or are being) broadcast.
    /// Raised before a page is sent, so that a subscriber that joins the
    /// broadcast and then reads it hears of every absence above it.
    pub published: Arc<AtomicU64>,
    pub shutdown: watch::Receiver<bool>,
}

pub async fn run(mut f: Follower) {
    let mut wakeups = f.store.wakeups();
    let mut backoff = Duration::from_millis(50);
    loop {
        if *f.shutdown.borrow() {
            return;
        }
        match f.store.read_all(f.checkpoint, PAGE).await {
            Ok(page) => {
                backoff = Duration::from_millis(50);
                if let Some(last) = page.last() {
                    f.checkpoint = last.position;
                    f.published.store(last.position, Ordering::SeqCst);
                    for rec in &page {
                        if let Some(a) = announced_absence(rec) {
                            // No receiver is not an error: nobody listens yet.
                            let _ = f.live.send(a);
                        }
                    }
                    continue;
                }
                let heard = *wakeups.borrow_and_update();
                if heard > f.checkpoint {
                    continue;
                }
                tokio::select! {
                    r = wakeups.changed() => {
                        if r.is_err() {
                            // The store dropped its signal: take a fresh one, and poll gently meanwhile.
                            wakeups = f.store.wakeups();
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                    _ = stopped(&mut f.shutdown) => return,
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "live absence follower failed; retrying");
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
