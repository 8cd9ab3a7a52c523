//! The usage projection's worker and report. The fold itself is
//! `registre_projections::usage::fold_usage`; this module runs it in the
//! background on every node (whichever node commits a batch first wins, the
//! others find the checkpoint moved and write nothing) and answers
//! `usageIndicators` from the store's usage tables, so every node reads the
//! same answer whatever its read model or its uptime.
//!
//! It is not a consumer of the node's log follower: it folds the access log,
//! not the event log, and its checkpoint is the usage tables' own, read back
//! and compared-and-set in each batch's transaction (any node may fold), so
//! it pages with `read_access` after that checkpoint rather than with a
//! cursor of its own.

use super::{ApiError, App};
use chrono::NaiveDate;
use registre_domain::EstablishmentId;
use registre_projections::usage::{fold_usage, UsageReport};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::watch;

/// How often the worker looks for access-log entries to fold. Entries stay in
/// the access log until folded, so a slow worker delays the purge, nothing else.
pub const FOLD_EVERY: Duration = Duration::from_secs(1);

/// The longest range of a report (a school year and a bit).
pub const MAX_RANGE_DAYS: i64 = 366;

/// Starts the background fold; [`App::shutdown`] stops it. It holds a weak
/// reference: the App owns the task, not the other way round.
pub(crate) fn start(app: &Arc<App>) {
    let task = tokio::spawn(run(Arc::downgrade(app), app.shutdown_signal()));
    app.tasks.lock().push(task);
}

async fn run(app: Weak<App>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = super::follower::stopped(&mut shutdown) => return,
            _ = tokio::time::sleep(FOLD_EVERY) => {}
        }
        let Some(app) = app.upgrade() else {
            return;
        };
        // No patience: a busy lock means another node is folding.
        if let Err(e) = fold_usage(app.store().as_ref(), app.engine(), Duration::ZERO).await {
            tracing::warn!(error = %e, "usage projection cannot advance");
        }
    }
}

impl App {
    /// The usage report of `establishment` over local days `from..=to`, after
    /// folding every access recorded so far (this node's included).
    pub async fn usage_report(
        &self,
        establishment: EstablishmentId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<UsageReport, ApiError> {
        if to < from {
            return Err(ApiError::invalid("to", "must not be before from"));
        }
        if (to - from).num_days() >= MAX_RANGE_DAYS {
            return Err(ApiError::invalid(
                "to",
                format!("the range is limited to {MAX_RANGE_DAYS} days"),
            ));
        }
        let Some(usage) = self.store.usage() else {
            return Err(ApiError::Internal(
                "this store has no usage indicators".into(),
            ));
        };
        self.flush_access().await?;
        fold_usage(
            self.store.as_ref(),
            &self.engine,
            self.config.consistency_timeout,
        )
        .await
        .map_err(super::internal)?;
        let rows = usage.rows(establishment.0, from, to).await?;
        Ok(UsageReport::from_rows(from, to, rows))
    }
}
