//! Erasure (GDPR art. 17) and retention (art. 5(1)(e)): destroying the keys
//! that seal a person's personal text and logging it as `PersonErased`. One
//! command, `roster::ErasePerson`, run by the one command executor for every
//! trigger: the `forgetPerson` mutation (`App::execute`), `registre forget`
//! ([`forget_for_operator`]) and `registre retention apply`
//! ([`apply_retention`]). The executor destroys the keys before it appends
//! the event (`commands::destroy_erased_keys` says why).
//!
//! Every node, this one included, learns of an erasure from the log: its
//! projection engine marks the person's keys destroyed in its vault's cache
//! and the fold of `PersonErased` erases their text from its read model
//! (`registre_projections::engine`, `ReadModel::erase`).

use super::commands::{new_id, Command, CommandContext, Executor};
use super::{ApiError, Viewer};
use crate::policy::{self, Issuer};
use chrono::{DateTime, Utc};
use registre_domain::{roster, DomainEvent, PersonId, Role, StreamName};
use registre_projections::{ProjectionEngine, ReadModel as Model};
use registre_store::{EventStore, Position};
use serde::Serialize;
use std::sync::Arc;
use uuid::Uuid;

/// The environment variable of the account retention period: the rule named
/// in the reason of each erasure it causes.
pub const ACCOUNT_RETENTION_VAR: &str = "REGISTRE_RETENTION_ACCOUNT_DAYS";

/// Erases a person: decided from their stream alone (nothing when the log
/// already records their erasure). The reason is stored in clear, so it
/// names the request or the rule, never the person.
impl Command for roster::ErasePerson {
    const NAME: &'static str = "erasePerson";
    type State = roster::Person;
    type Facts = ();

    fn authorize(&self, _: &Model, by: Issuer<'_>) -> bool {
        policy::can_erase(by)
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::person(self.person_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(roster::erase_person(state, self)?)
    }
    fn reason(&self) -> Option<&str> {
        Some(&self.reason)
    }
}

/// Erases `person` from a command-line tool (no read model). True when this
/// call logged the erasure, false when the log already held it.
async fn erase(
    store: &Arc<dyn EventStore>,
    cx: &CommandContext<'_>,
    person: PersonId,
    reason: &str,
) -> Result<bool, ApiError> {
    let cmd = roster::ErasePerson {
        person_id: person,
        reason: reason.to_owned(),
    };
    let erased = !Executor::offline(store)
        .run(cx, &cmd, None)
        .await?
        .events
        .is_empty();
    if erased {
        tracing::info!(person = %person.0, "person erased");
    }
    Ok(erased)
}

/// The person an operator of the command line acts as: registered in the
/// roster under `external_id` (their identity provider `sub`), resolved as a
/// request's caller would be. Commands that read or erase personal data take
/// one so that the access log and the audit trail name who ran them.
pub fn operator(engine: &ProjectionEngine, external_id: &str) -> Result<Viewer, ApiError> {
    engine
        .read(|m| {
            m.person_by_external_id(external_id).map(|p| Viewer {
                person: p.id,
                subject: external_id.to_owned(),
                admin: p.roles.contains(&Role::Admin),
                roles: p.roles.clone(),
                establishment: p.establishment_id,
                reads: Default::default(),
            })
        })
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "operator {external_id}: no person is registered with this externalId"
            ))
        })
}

/// `registre forget`: the erasure on behalf of an operator, who must be an
/// ADMIN, as the `forgetPerson` mutation requires. The serving nodes fold
/// the erasure when they read it from the log.
pub async fn forget_for_operator(
    store: &Arc<dyn EventStore>,
    operator: &Viewer,
    person: PersonId,
    reason: &str,
) -> Result<bool, ApiError> {
    erase(
        store,
        &CommandContext::person(operator, new_id()),
        person,
        reason,
    )
    .await
}

/// The retention periods `registre retention apply` enforces, by category.
#[derive(Clone, Debug)]
pub struct RetentionPolicy {
    /// Days after the account was closed before its holder is erased
    /// (REGISTRE_RETENTION_ACCOUNT_DAYS; the ENT regulation: three months).
    pub account_days: u32,
    /// Age at which read-access records are purged
    /// (REGISTRE_ACCESS_LOG_RETENTION_DAYS).
    pub access_log: std::time::Duration,
}

/// What one retention run did.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionReport {
    /// The log position the decision was taken at.
    pub position: Position,
    /// People erased by this run (already erased ones are not counted).
    pub erased: Vec<PersonId>,
    pub access_records_purged: u64,
    pub access_log_purged_before: DateTime<Utc>,
    /// Sanctions that left the student's record in this run (R511-13).
    pub sanctions_erased: Vec<registre_domain::SanctionId>,
}

/// How long `retention apply` waits for another node's usage fold to finish
/// before purging what has been counted so far.
const USAGE_FOLD_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Applies every retention rule at `now`: erases the people whose account
/// was closed at least `account_days` ago, each as a system `PersonErased`
/// whose reason names the rule, and purges the old access records. Running
/// it twice writes nothing the second time. `engine` is caught up with the
/// log first, to decide; serving nodes fold the erasures when they read them.
pub async fn apply_retention(
    store: &Arc<dyn EventStore>,
    engine: &ProjectionEngine,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
) -> Result<RetentionReport, ApiError> {
    let position = engine.catch_up().await.map_err(super::internal)?;
    let due = engine.read(|m| m.accounts_past_retention(now, policy.account_days));
    let reason = format!(
        "retention: account closed {} days ago or more ({ACCOUNT_RETENTION_VAR}={})",
        policy.account_days, policy.account_days
    );
    // One correlation id for the run: an auditor finds every erasure of one
    // night together.
    let run = CommandContext::system(new_id::<Uuid>());
    let mut erased = Vec::new();
    for person in due {
        if erase(store, &run, person, &reason).await? {
            erased.push(person);
        }
    }
    let sanctions_erased = super::discipline::erase_due_sanctions(store, engine, &run, now).await?;
    let retention = chrono::Duration::from_std(policy.access_log)
        .map_err(|_| ApiError::invalid("accessLogRetention", "out of range"))?;
    let before = now - retention;
    // The purge deletes only what the usage projection has counted: fold
    // first (waiting a little for a node folding at the same moment).
    registre_projections::usage::fold_usage(store.as_ref(), engine, USAGE_FOLD_PATIENCE)
        .await
        .map_err(super::internal)?;
    let purged = store.purge_access_before(before).await?;
    Ok(RetentionReport {
        position,
        erased,
        access_records_purged: purged,
        access_log_purged_before: before,
        sanctions_erased,
    })
}
