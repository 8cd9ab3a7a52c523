//! Discipline's retention rule (issue 15): the sanctions whose erasure day
//! has come leave the student's record when `registre retention apply` runs
//! (Code de l'éducation art. R511-13; docs/compliance.md).

use super::commands::{CommandContext, Executor};
use super::ApiError;
use chrono::{DateTime, Utc};
use registre_domain::discipline::EraseSanction;
use registre_domain::SanctionId;
use registre_projections::ProjectionEngine;
use registre_store::EventStore;
use std::sync::Arc;

/// The rule named in the reason of every erasure on schedule.
pub const SANCTION_RULE: &str = "Code de l'éducation art. R511-13";

/// Erases every sanction whose erasure day (in its establishment's calendar)
/// is `now`'s day or earlier, each as a `SanctionErased` of the system whose
/// reason names the rule and the day; the sanction's key is destroyed first.
/// `engine` is caught up with the log by the caller. Answers the sanctions
/// this run erased (none the second time).
pub async fn erase_due_sanctions(
    store: &Arc<dyn EventStore>,
    engine: &ProjectionEngine,
    cx: &CommandContext<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<SanctionId>, ApiError> {
    let due = engine.read(|m| {
        m.discipline()
            .sanctions_due(|e| {
                m.establishment(e)
                    .map(|est| est.time_zone)
                    .unwrap_or_default()
                    .today(now)
            })
            .into_iter()
            .filter_map(|s| {
                let today = m
                    .establishment(s.establishment_id)
                    .map(|est| est.time_zone)
                    .unwrap_or_default()
                    .today(now);
                s.erased_on.map(|day| EraseSanction {
                    sanction_id: s.id,
                    reason: format!(
                        "retention: a {} decided on {} leaves the record on {day} ({SANCTION_RULE})",
                        s.kind.as_str(),
                        s.decided_on
                    ),
                    on_schedule: Some(today),
                })
            })
            .collect::<Vec<_>>()
    });
    let mut erased = Vec::new();
    for cmd in due {
        let done = Executor::offline(store).run(cx, &cmd, None).await?;
        if !done.events.is_empty() {
            tracing::info!(sanction = %cmd.sanction_id.0, "sanction erased on schedule");
            erased.push(cmd.sanction_id);
        }
    }
    Ok(erased)
}
