//! The App's consumers of the node's log follower
//! (`registre_projections::LogFollower`, which reads the log whenever the
//! store signals a new head, its own appends or another node's through
//! PostgreSQL NOTIFY, and decodes each event once). [`App::new`](super::App::new)
//! registers, in this order:
//! - [`VaultKeys`]: the App owns the vault, so it tells the vault's key cache
//!   which keys another node's erasure destroyed;
//! - the projection engine's read model;
//! - [`LiveBroadcast`]: new absences fanned out through a bounded broadcast,
//!   after the model has applied them.

use async_trait::async_trait;
use registre_domain::events::{PersonErased, SanctionErased};
use registre_domain::{AbsenceId, DomainEvent, StudentId};
use registre_projections::{LogConsumer, LoggedEvent, Page, ProjectionError};
use registre_store::{Position, Vault};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// A new absence in the log, as broadcast to subscribers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveAbsence {
    pub position: Position,
    pub absence: AbsenceId,
    pub student: StudentId,
}

/// The absence an event announces, if it is one subscribers hear of: a
/// roll-call report, a guardian's advance declaration or its confirmation.
pub fn announced_absence(logged: &LoggedEvent) -> Option<LiveAbsence> {
    let (absence, student) = match &logged.event {
        DomainEvent::AbsenceReported(e) => (e.absence_id, e.student_id),
        DomainEvent::AbsenceDeclared(e) => (e.absence_id, e.student_id),
        DomainEvent::DeclaredAbsenceConfirmed(e) => (e.absence_id, e.student_id),
        _ => return None,
    };
    Some(LiveAbsence {
        position: logged.position,
        absence,
        student,
    })
}

/// Publishes the absences of each page to the node-wide broadcast.
#[derive(Debug)]
pub(super) struct LiveBroadcast {
    pub live: broadcast::Sender<LiveAbsence>,
    /// The position up to which absences have been (or are being) broadcast:
    /// the consumer's position. Raised before a page is sent, so that a
    /// subscriber that joins the broadcast and then reads it hears of every
    /// absence above it.
    pub published: Arc<AtomicU64>,
}

#[async_trait]
impl LogConsumer for LiveBroadcast {
    fn name(&self) -> &'static str {
        "live_absences"
    }

    fn position(&self) -> Position {
        self.published.load(Ordering::SeqCst)
    }

    async fn consume(&self, page: Page<'_>) -> Result<(), ProjectionError> {
        if let Some(last) = page.events.last() {
            self.published.store(last.position, Ordering::SeqCst);
        }
        for a in page.events.iter().filter_map(announced_absence) {
            // No receiver is not an error: nobody listens yet.
            let _ = self.live.send(a);
        }
        Ok(())
    }
}

/// Marks destroyed, in the vault's key cache, the keys each `PersonErased`
/// destroyed. Erasure destroys the keys before appending the event, so the
/// cache may only be behind: a key cached live here would keep opening an
/// erased person's text (the audit trail, the export).
#[derive(Debug)]
pub(super) struct VaultKeys {
    pub vault: Arc<Vault>,
    pub position: AtomicU64,
}

#[async_trait]
impl LogConsumer for VaultKeys {
    fn name(&self) -> &'static str {
        "vault_key_cache"
    }

    fn position(&self) -> Position {
        self.position.load(Ordering::SeqCst)
    }

    async fn consume(&self, page: Page<'_>) -> Result<(), ProjectionError> {
        let destroyed: Vec<uuid::Uuid> = page
            .events
            .iter()
            .flat_map(|e| match &e.event {
                DomainEvent::PersonErased(erased) => {
                    PersonErased::destroyed_keys(erased.person_id).to_vec()
                }
                // discipline (issue 15)
                DomainEvent::SanctionErased(erased) => {
                    SanctionErased::destroyed_keys(erased.sanction_id).to_vec()
                }
                _ => Vec::new(),
            })
            .collect();
        if !destroyed.is_empty() {
            self.vault.forget_cached(destroyed);
        }
        if let Some(last) = page.events.last() {
            self.position.store(last.position, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Resolves once shutdown is signalled (or its sender is gone).
pub async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(|_| ());
}
