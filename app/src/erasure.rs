//! Erasure (GDPR art. 17) and retention (art. 5(1)(e)): destroying the keys
//! that seal a person's personal text and logging it as `PersonErased`. One
//! path for every trigger: the `forgetPerson` mutation, `registre forget` and
//! `registre retention apply` all call [`erase_person`].
//!
//! Every node, this one included, learns of an erasure from the log: its
//! projection engine marks the person's keys destroyed in its vault's cache
//! and the fold of `PersonErased` erases their text from its read model
//! (`registre_projections::engine`, `ReadModel::erase`).

use super::commands::{decode_stream, CommandContext};
use super::{new_event, role_name, ApiError, App, Viewer};
use crate::policy;
use chrono::{DateTime, Utc};
use registre_domain::events::PersonErased;
use registre_domain::{roster, Aggregate, PersonId, Role, StreamName};
use registre_projections::ProjectionEngine;
use registre_store::{Actor, AppendRequest, EventStore, ExpectedVersion, Position, StoreError};
use serde::Serialize;
use std::sync::Arc;
use uuid::Uuid;

/// The environment variable of the account retention period: the rule named
/// in the reason of each erasure it causes.
pub const ACCOUNT_RETENTION_VAR: &str = "REGISTRE_RETENTION_ACCOUNT_DAYS";

/// Attempts after an expected-version conflict on the person's stream.
const CONFLICT_RETRIES: u32 = 5;

/// Destroys the keys of `person` (their person id and their student record)
/// and appends `PersonErased` with `reason` to their stream. Returns false,
/// writing nothing, when the log already records their erasure. `actor` is
/// `None` for a system event (the retention rule, an operator's command).
///
/// Keys go first: if the append fails, the text is already unreadable and a
/// retry logs the erasure (the domain decides from the stream, not from the
/// keys); the other order could log an erasure that did not happen.
pub async fn erase_person(
    store: &Arc<dyn EventStore>,
    person: PersonId,
    reason: &str,
    actor: Option<Actor>,
    correlation: Uuid,
) -> Result<bool, ApiError> {
    let vault = store
        .vault()
        .ok_or_else(|| ApiError::Internal("this store keeps no subject keys".into()))?;
    let cmd = roster::ErasePerson {
        person_id: person,
        reason: reason.to_owned(),
    };
    let stream = StreamName::person(person);
    let mut attempt = 0;
    loop {
        let recorded = store.read_stream(stream.as_str(), 0).await?;
        let version = recorded.last().map(|e| e.stream_version).unwrap_or(0);
        let state: roster::Person = Aggregate::fold(&decode_stream(&recorded)?);
        let events = roster::erase_person(&state, &cmd)?;
        if events.is_empty() {
            return Ok(false);
        }
        vault
            .destroy(PersonErased::destroyed_keys(person).to_vec(), Utc::now())
            .await?;
        let request = AppendRequest {
            stream_id: stream.as_str().to_owned(),
            expected: ExpectedVersion::Exact(version),
            events: events
                .iter()
                .map(|e| {
                    new_event(
                        e,
                        actor.clone(),
                        correlation,
                        None,
                        Some(reason.trim().into()),
                    )
                })
                .collect(),
            idempotency: None,
        };
        match store.append(request).await {
            Ok(_) => {
                tracing::info!(person = %person.0, "person erased");
                return Ok(true);
            }
            Err(StoreError::Conflict { .. }) if attempt < CONFLICT_RETRIES => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

impl App {
    /// forgetPerson (GDPR art. 17 on request): [`erase_person`] as the
    /// viewer; answers once this node's read model holds the erasure.
    /// Returns false when they were erased already.
    pub async fn forget_person(
        &self,
        cx: &CommandContext<'_>,
        person: PersonId,
        reason: &str,
    ) -> Result<bool, ApiError> {
        if !policy::can_forget_person(cx.viewer) {
            return Err(ApiError::forbidden());
        }
        if reason.trim().is_empty() {
            return Err(ApiError::invalid("reason", "an erasure needs a reason"));
        }
        self.consistent().await?;
        let actor = Actor {
            person_id: cx.viewer.person.0,
            role: role_name(cx.viewer.acting_role()).into(),
        };
        let erased =
            erase_person(self.store(), person, reason, Some(actor), cx.correlation).await?;
        self.consistent().await?;
        Ok(erased)
    }
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

/// `registre forget`: [`erase_person`] on behalf of an operator, who must be
/// an ADMIN, as the `forgetPerson` mutation requires. The serving nodes fold
/// the erasure when they read it from the log.
pub async fn forget_for_operator(
    store: &Arc<dyn EventStore>,
    operator: &Viewer,
    person: PersonId,
    reason: &str,
) -> Result<bool, ApiError> {
    if !policy::can_forget_person(operator) {
        return Err(ApiError::forbidden());
    }
    if reason.trim().is_empty() {
        return Err(ApiError::invalid("reason", "an erasure needs a reason"));
    }
    let actor = Actor {
        person_id: operator.person.0,
        role: role_name(operator.acting_role()).into(),
    };
    erase_person(store, person, reason, Some(actor), Uuid::now_v7()).await
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
    let correlation = Uuid::now_v7();
    let mut erased = Vec::new();
    for person in due {
        if erase_person(store, person, &reason, None, correlation).await? {
            erased.push(person);
        }
    }
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
    })
}
