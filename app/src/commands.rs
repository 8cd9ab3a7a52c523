//! The commands behind the mutations: one [`Command`] trait and one
//! [`Executor`] that every mutation, erasure included, goes through.
//!
//! The pipeline ([`Executor::run`]): authorize (the command asks `policy`),
//! look up the facts it needs in the read model, read and fold its stream,
//! decide, append with the stream's expected version and the idempotency key;
//! on a version conflict do it all again, a bounded number of times; then
//! wait until the read model holds the write (read-your-writes). A repeated
//! idempotency key answers the first request's events and writes nothing.
//!
//! # Adding a command
//!
//! 1. `domain`: the command struct, `#[derive(Serialize)]` (an id the caller
//!    generates is `#[serde(skip)]`: the serde form is what the request asked
//!    for, and its hash is the idempotency fingerprint), and its decision
//!    `fn(&State, &TheCommand, &Facts) -> Result<Vec<DomainEvent>, DomainError>`.
//! 2. `policy`: the function saying who may run it.
//! 3. Here: `impl Command for TheCommand` (name, aggregate state, facts,
//!    stream, `authorize` calling that policy function, `decide` calling that
//!    decision).
//! 4. `graphql::root`: the input converts into the struct (new ids from
//!    [`new_id`]) and the resolver calls [`App::execute`].
//!
//! Nothing else: no loop, no second authorization, no fingerprint by hand.
//!
//! A decision that must write to several streams at once (a roll call: the
//! course and each absence) is a [`school_day::MultiCommand`] instead, run
//! by `Executor::run_many`: the same pipeline over the streams it names,
//! appended in one transaction.

// school day (issue 13)
pub mod school_day;

mod evaluation;

use super::limits::Limited;

// communication (issue 16)
pub mod communication;
use super::{new_event, wait_model, ApiError, App, Viewer};
use crate::policy::{self, Issuer};
use chrono::{DateTime, Utc};
use registre_domain::events::{PersonErased, SanctionErased};
use registre_domain::messages::ThreadTarget;
use registre_domain::{absences, grades, homework, messages, roster, Aggregate};
use registre_domain::{
    AbsenceId, AbsenceKind, AssessmentId, ClassId, DomainEvent, PersonId, StreamName, ThreadId, Uai,
};
use registre_projections::{ProjectionEngine, ReadModel as Model};
use registre_store::{
    Actor, AppendOutcome, AppendRequest, EventStore, ExpectedVersion, Idempotency, NewEvent,
    Partition, Position, StoreError,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

// discipline (issue 15)
pub mod discipline;

// interop (issue 17)
pub mod interop;

/// A new identifier (UUIDv7, time-ordered) for an entity a command creates,
/// an event or a correlation. The application's one source of them: the
/// domain makes up none.
pub fn new_id<T: From<Uuid>>() -> T {
    T::from(Uuid::now_v7())
}

/// The application's clock: "now" in the facts of a decision and in events'
/// metadata (the domain has no clock).
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// A command: a domain command struct, seen by the executor.
pub trait Command: Serialize + Send + Sync {
    /// The operation's name, in the idempotency fingerprint and the logs.
    /// Never rename one: a stored key would no longer match its request.
    const NAME: &'static str;
    /// The per-person rate it counts against (see `app::limits`), if any.
    const RATE: Option<Limited> = None;
    /// The aggregate it is decided against, folded from [`Command::stream`].
    type State: Aggregate + Send;
    /// What [`Command::decide`] needs from the read model.
    type Facts: Send + Sync;

    /// Whether `by` may run it: one `policy` function. Asked first, on the
    /// read model; a refusal is FORBIDDEN and says nothing of existence.
    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool;
    /// The facts, looked up in the read model once `authorize` said yes;
    /// `now` is the application clock's.
    fn facts(&self, m: &Model, now: DateTime<Utc>) -> Self::Facts;
    /// The stream it is decided against and appended to.
    fn stream(&self, facts: &Self::Facts) -> StreamName;
    /// The events to append; none when the command is already satisfied
    /// (nothing is written).
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError>;
    /// The reason written in the events' metadata (a correction's, ...).
    fn reason(&self) -> Option<&str> {
        None
    }
}

/// Who runs a command, and the correlation id of the events it writes.
#[derive(Clone, Copy, Debug)]
pub struct CommandContext<'a> {
    pub issuer: Issuer<'a>,
    /// The request id (or one per command-line run).
    pub correlation: Uuid,
}

impl<'a> CommandContext<'a> {
    pub fn person(viewer: &'a Viewer, correlation: Uuid) -> Self {
        Self {
            issuer: Issuer::Person(viewer),
            correlation,
        }
    }

    pub fn system(correlation: Uuid) -> Self {
        Self {
            issuer: Issuer::System,
            correlation,
        }
    }
}

/// What a command did.
#[derive(Debug)]
pub struct Executed<F> {
    /// The events it wrote or, for a repeated idempotency key, the events the
    /// first request wrote; none when it was already satisfied.
    pub events: Vec<DomainEvent>,
    /// The facts it was decided with.
    pub facts: F,
}

/// Conflict retries of a command-line tool's executor (a node's are
/// `AppConfig::conflict_retries`).
pub const CONFLICT_RETRIES: u32 = 5;

/// The read model a command is authorized and decided with.
#[derive(Clone, Copy, Debug)]
enum ReadSide<'a> {
    /// A serving node's: it follows the log; the executor waits for it,
    /// within `timeout`, before deciding and after writing.
    Follows {
        engine: &'a ProjectionEngine,
        timeout: Duration,
    },
    /// None (a command-line tool deciding from streams alone): rules and
    /// facts see an empty model, so a command whose rule needs the roster is
    /// refused, and nothing is waited for.
    Nothing,
}

/// Runs commands against a store: the one pipeline of every mutation.
#[derive(Clone, Copy, Debug)]
pub struct Executor<'a> {
    store: &'a Arc<dyn EventStore>,
    model: ReadSide<'a>,
    conflict_retries: u32,
}

impl<'a> Executor<'a> {
    /// A command-line tool's executor, without a read model (see `ReadSide::Nothing`).
    pub fn offline(store: &'a Arc<dyn EventStore>) -> Self {
        Self {
            store,
            model: ReadSide::Nothing,
            conflict_retries: CONFLICT_RETRIES,
        }
    }

    fn read<R>(&self, f: impl FnOnce(&Model) -> R) -> R {
        match self.model {
            ReadSide::Follows { engine, .. } => engine.read(f),
            ReadSide::Nothing => f(&Model::default()),
        }
    }

    async fn reach(&self, position: Position) -> Result<(), ApiError> {
        match self.model {
            ReadSide::Follows { engine, timeout } => wait_model(engine, position, timeout).await,
            ReadSide::Nothing => Ok(()),
        }
    }

    /// cluster (issue 12): refuses, before anything is decided, a write to
    /// a partition this node does not fold (its model lacks the facts the
    /// decision needs); the transport sends the request to a holder.
    fn check_held(&self, partition: &Partition) -> Result<(), ApiError> {
        let held = match self.model {
            ReadSide::Follows { engine, .. } => {
                partition.served_by(engine.config().partitions.as_deref())
            }
            ReadSide::Nothing => true,
        };
        if held {
            Ok(())
        } else {
            Err(ApiError::Elsewhere(partition.clone()))
        }
    }

    /// Why a command was refused: FORBIDDEN, or, on a node folding some
    /// establishments only, [`ApiError::Elsewhere`] when one of its streams
    /// already lives in another one: the rule was asked on a model that
    /// lacks the stream's facts (the assessment of a grade, the absence a
    /// guardian justifies), so the node that folds it must decide. The
    /// facts looked up for this are only used to name the streams.
    async fn refusal<S: IntoIterator<Item = StreamName>>(
        &self,
        streams: impl FnOnce() -> S,
    ) -> ApiError {
        let partial = match self.model {
            ReadSide::Follows { engine, .. } => engine.config().partitions.is_some(),
            ReadSide::Nothing => false,
        };
        if partial {
            for stream in streams() {
                let first = match self.store.read_stream(stream.as_str(), 0).await {
                    Ok(recorded) => recorded.into_iter().next(),
                    Err(e) => return e.into(),
                };
                if let Some(Err(e)) = first.and_then(|e| e.partition).map(|p| self.check_held(&p)) {
                    return e;
                }
            }
        }
        ApiError::forbidden()
    }

    async fn reach_head(&self) -> Result<(), ApiError> {
        match self.model {
            ReadSide::Follows { .. } => self.reach(self.store.head().await?).await,
            ReadSide::Nothing => Ok(()),
        }
    }

    /// Runs `cmd` (see the module doc). `idempotency_key` is the client's
    /// key, scoped here to the person who runs the command.
    pub async fn run<C: Command>(
        &self,
        cx: &CommandContext<'_>,
        cmd: &C,
        idempotency_key: Option<&str>,
    ) -> Result<Executed<C::Facts>, ApiError> {
        let idempotency = idempotency_key
            .map(|key| idempotency(cx.issuer, key, cmd))
            .transpose()?;
        let actor = cx.issuer.viewer().map(actor);
        let reason = cmd.reason().map(|r| r.trim().to_owned());
        let mut attempt = 0;
        loop {
            self.reach_head().await?;
            let now = now();
            let Some(facts) = self.read(|m| cmd.authorize(m, cx.issuer).then(|| cmd.facts(m, now)))
            else {
                return Err(self
                    .refusal(|| [cmd.stream(&self.read(|m| cmd.facts(m, now)))])
                    .await);
            };
            if let (0, Some(idem)) = (attempt, &idempotency) {
                if let Some(original) = self.store.find_idempotent(&idem.key).await? {
                    // The answer is read from the model: the node folding
                    // the original's partition gives it (cluster, issue 12).
                    if let Some(p) = original.events.first().and_then(|e| e.partition.as_ref()) {
                        self.check_held(p)?;
                    }
                    let events = self.replay(original, idem).await?;
                    return Ok(Executed { events, facts });
                }
            }
            let stream = cmd.stream(&facts);
            let recorded = self.store.read_stream(stream.as_str(), 0).await?;
            if let Some(p) = recorded.first().and_then(|e| e.partition.as_ref()) {
                self.check_held(p)?;
            }
            let version = recorded.last().map_or(0, |e| e.stream_version);
            let state = <C::State as Aggregate>::fold(&decode_stream(&recorded)?);
            let events = cmd.decide(&state, &facts)?;
            if events.is_empty() {
                return Ok(Executed { events, facts });
            }
            destroy_erased_keys(self.store, &events, now).await?;
            let key = idempotency.as_ref().map(|i| i.key.clone());
            let partition = self.stream_partition(
                recorded.first().and_then(|e| e.partition.as_ref()),
                &events[0],
            );
            self.check_held(&partition)?;
            let request = AppendRequest {
                stream_id: stream.as_str().to_owned(),
                partition,
                expected: if version == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(version)
                },
                events: events
                    .iter()
                    .map(|e| {
                        new_event(
                            e,
                            actor.clone(),
                            cx.correlation,
                            key.clone(),
                            reason.clone(),
                        )
                    })
                    .collect(),
                idempotency: idempotency.clone(),
            };
            match self.store.append(request).await {
                Ok(outcome) => {
                    self.reach(outcome.last_position()).await?;
                    return Ok(Executed { events, facts });
                }
                Err(StoreError::Conflict { .. }) if attempt < self.conflict_retries => {
                    attempt += 1;
                    tracing::debug!(command = C::NAME, stream = %stream, attempt, "expected-version conflict; deciding again");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A stream stays in the partition of its first event: the one the log
    /// holds for it, or, for a new stream, the one `first` opens it in.
    pub(crate) fn stream_partition(
        &self,
        stored: Option<&Partition>,
        first: &DomainEvent,
    ) -> Partition {
        match stored {
            Some(p) => p.clone(),
            None => self.read(|m| m.partition_of(first)),
        }
    }

    /// A key seen before: the store compares the fingerprints (same command:
    /// the original outcome; another one: IdempotencyKeyReused) without
    /// writing, since the key is already taken.
    async fn replay(
        &self,
        original: AppendOutcome,
        idem: &Idempotency,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        let Some(first) = original.events.first() else {
            return Ok(Vec::new());
        };
        let request = AppendRequest {
            stream_id: first.stream_id.clone(),
            partition: first.partition.clone().unwrap_or_else(Partition::directory),
            expected: ExpectedVersion::Any,
            events: original
                .events
                .iter()
                .map(|e| NewEvent {
                    event_id: e.event_id,
                    event_type: e.event_type.clone(),
                    schema_version: e.schema_version,
                    data: e.data.clone(),
                    metadata: e.metadata.clone(),
                })
                .collect(),
            idempotency: Some(idem.clone()),
        };
        let outcome = self.store.append(request).await?;
        if !outcome.deduplicated {
            // Cannot happen with a store that keeps its promise; say so loudly.
            tracing::error!(key = %idem.key, "store re-appended an idempotent request");
        }
        self.reach(outcome.last_position()).await?;
        decode_stream(&outcome.events)
    }
}

/// An erasure destroys the person's keys before its `PersonErased` is
/// appended. If the append then fails, the text is already unreadable and a
/// retry logs the erasure (the domain decides from the stream, not from the
/// keys); the other order could log an erasure that did not happen.
async fn destroy_erased_keys(
    store: &Arc<dyn EventStore>,
    events: &[DomainEvent],
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    for event in events {
        if let DomainEvent::PersonErased(e) = event {
            let vault = store
                .vault()
                .ok_or_else(|| ApiError::Internal("this store keeps no subject keys".into()))?;
            vault
                .destroy(PersonErased::destroyed_keys(e.person_id).to_vec(), now)
                .await?;
        }
        // discipline (issue 15): a sanction leaving the record, its own key.
        if let DomainEvent::SanctionErased(e) = event {
            let vault = store
                .vault()
                .ok_or_else(|| ApiError::Internal("this store keeps no subject keys".into()))?;
            vault
                .destroy(SanctionErased::destroyed_keys(e.sanction_id).to_vec(), now)
                .await?;
        }
    }
    Ok(())
}

/// The person written in events' metadata.
fn actor(v: &Viewer) -> Actor {
    Actor {
        person_id: v.person.0,
        role: v.acting_role().wire_name().into(),
    }
}

/// Longest idempotency key: a UUID is 36 characters, a client's own scheme
/// ("roll-call:4B:2026-11-24:08h") rarely more than a few dozen. The key is
/// stored with every event of the command and in the key table, so an
/// unbounded one (an 800,000-character key was accepted) costs storage on
/// every write.
pub const IDEMPOTENCY_KEY_MAX: usize = 200;

/// An idempotency key is 1 to [`IDEMPOTENCY_KEY_MAX`] visible ASCII
/// characters (`!` to `~`: letters, digits, punctuation; no space, no
/// control, nothing that normalises differently): a key is compared byte for
/// byte, so it must not hold characters two clients could write two ways.
/// An empty key is refused rather than read as "no key": a client that sends
/// one believes it is protected against retries and is not.
pub fn check_idempotency_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::invalid(
            "idempotencyKey",
            "must not be empty (omit it to send no key)",
        ));
    }
    if key.len() > IDEMPOTENCY_KEY_MAX {
        return Err(ApiError::invalid(
            "idempotencyKey",
            format!("must be at most {IDEMPOTENCY_KEY_MAX} characters"),
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "idempotencyKey",
            "must hold only visible ASCII characters (! to ~), no space or control character",
        ));
    }
    Ok(())
}

/// The fingerprint stored with an idempotency key: the SHA-256 of the
/// command's name and serde form, i.e. of what the request asked for (ids
/// the caller generated are not part of it). Never its `Debug` form, which
/// Rust does not promise to keep. The same key with the same fingerprint
/// answers the first outcome; with another, the key is refused as reused.
pub fn fingerprint<C: Command>(cmd: &C) -> Result<String, ApiError> {
    named_fingerprint(C::NAME, cmd)
}

/// [`fingerprint`] of any command's name and serde form (multi-stream ones too).
fn named_fingerprint(name: &str, cmd: &impl Serialize) -> Result<String, ApiError> {
    let form = serde_json::to_vec(&(name, cmd)).map_err(|e| {
        tracing::error!(command = name, error = %e, "command not serialisable");
        ApiError::Internal("the request could not be fingerprinted".into())
    })?;
    Ok(hex::encode(Sha256::digest(&form)))
}

/// A client's key, scoped to who runs the command (another person's "roll-1"
/// is theirs), with the command's fingerprint.
fn idempotency<C: Command>(by: Issuer<'_>, key: &str, cmd: &C) -> Result<Idempotency, ApiError> {
    named_idempotency(by, key, C::NAME, cmd)
}

fn named_idempotency(
    by: Issuer<'_>,
    key: &str,
    name: &str,
    cmd: &impl Serialize,
) -> Result<Idempotency, ApiError> {
    check_idempotency_key(key)?;
    let scope = match by {
        Issuer::Person(v) => v.person.to_string(),
        Issuer::System => "system".to_owned(),
    };
    Ok(Idempotency {
        key: format!("{scope}:{key}"),
        fingerprint: named_fingerprint(name, cmd)?,
    })
}

fn decode_stream(events: &[registre_store::RecordedEvent]) -> Result<Vec<DomainEvent>, ApiError> {
    events
        .iter()
        .map(|r| {
            registre_projections::LoggedEvent::decode(r)
                .map(|logged| logged.event)
                .map_err(|e| {
                    tracing::error!(error = %e, "undecodable event");
                    ApiError::Internal("the log holds an undecodable event".into())
                })
        })
        .collect()
}

impl App {
    /// This node's executor: its read model follows the log.
    pub fn executor(&self) -> Executor<'_> {
        Executor {
            store: self.store(),
            model: ReadSide::Follows {
                engine: self.engine(),
                timeout: self.config().consistency_timeout,
            },
            conflict_retries: self.config().conflict_retries,
        }
    }

    /// Runs a mutation's command: the person's rate first (before anything is
    /// read or written), then [`Executor::run`].
    pub async fn execute<C: Command>(
        &self,
        cx: &CommandContext<'_>,
        cmd: &C,
        idempotency_key: Option<&str>,
    ) -> Result<Executed<C::Facts>, ApiError> {
        if let (Some(kind), Some(viewer)) = (C::RATE, cx.issuer.viewer()) {
            self.check_rate(viewer, kind)?;
        }
        self.executor().run(cx, cmd, idempotency_key).await
    }
}

/// What the domain needs to know of a person.
fn summary(m: &Model, person: PersonId) -> Option<roster::PersonSummary> {
    m.person(person).map(|p| roster::PersonSummary {
        roles: p.roles.clone(),
        establishment_id: p.establishment_id,
    })
}

// ---- Roster ---------------------------------------------------------------

impl Command for roster::CreateEstablishment {
    const NAME: &'static str = "createEstablishment";
    type State = roster::Establishment;
    type Facts = roster::EstablishmentFacts;

    fn authorize(&self, _: &Model, by: Issuer<'_>) -> bool {
        by.viewer().is_some_and(policy::can_create_establishment)
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> Self::Facts {
        roster::EstablishmentFacts {
            // A malformed UAI is the decision's to refuse.
            uai_taken: Uai::parse(&self.uai)
                .is_ok_and(|uai| m.establishment_by_uai(uai.as_str()).is_some()),
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::establishment(self.establishment_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(roster::create_establishment(state, self, facts)?)
    }
}

impl Command for roster::CreateClass {
    const NAME: &'static str = "createClass";
    type State = roster::Class;
    type Facts = roster::ClassFacts;

    fn authorize(&self, _: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_manage_roster(v, Some(self.establishment_id)))
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> Self::Facts {
        roster::ClassFacts {
            establishment_exists: m.establishment(self.establishment_id).is_some(),
            name_taken: interop::class_name_taken(m, self.establishment_id, &self.name, None),
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::class(self.class_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(roster::create_class(state, self, facts)?)
    }
}

impl Command for roster::RegisterPerson {
    const NAME: &'static str = "registerPerson";
    type State = roster::Person;
    type Facts = roster::PersonFacts;

    fn authorize(&self, _: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_register(v, &self.roles, self.establishment_id))
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> Self::Facts {
        roster::PersonFacts {
            establishment_exists: self
                .establishment_id
                .is_some_and(|e| m.establishment(e).is_some()),
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::person(self.person_id())
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(roster::register_person(state, self, facts)?)
    }
}

impl Command for roster::EnrollStudent {
    const NAME: &'static str = "enrollStudent";
    type State = roster::Student;
    type Facts = roster::EnrolmentFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_manage_roster(v, m.establishment_of_class(self.class_id)))
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> Self::Facts {
        roster::EnrolmentFacts {
            person: summary(m, self.person_id),
            class_exists: m.class(self.class_id).is_some(),
            class_closed: interop::closed_class(m, self.class_id),
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::student(self.student_id())
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(roster::enroll_student(state, self, facts)?)
    }
}

impl Command for roster::LinkGuardian {
    const NAME: &'static str = "linkGuardian";
    type State = roster::Student;
    type Facts = roster::GuardianFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer().is_some_and(|v| {
            policy::can_manage_roster(v, m.establishment_of_student(self.student_id))
        })
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> Self::Facts {
        roster::GuardianFacts {
            guardian: summary(m, self.guardian_id),
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::student(self.student_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(roster::link_guardian(state, self, facts)?)
    }
}

impl Command for roster::AssignTeacher {
    const NAME: &'static str = "assignTeacher";
    type State = roster::Class;
    type Facts = roster::AssignmentFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_manage_roster(v, m.establishment_of_class(self.class_id)))
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> Self::Facts {
        roster::AssignmentFacts {
            teacher: summary(m, self.teacher_id),
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::class(self.class_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(roster::assign_teacher(state, self, facts)?)
    }
}

/// closeAccount: the person no longer needs their account from
/// `effective_on`; it starts the retention period `registre retention apply`
/// enforces.
impl Command for roster::CloseAccount {
    const NAME: &'static str = "closeAccount";
    type State = roster::Person;
    type Facts = ();

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_close_account(m, v, self.person_id))
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::person(self.person_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(roster::close_account(state, self)?)
    }
    fn reason(&self) -> Option<&str> {
        Some(&self.reason)
    }
}

// ---- Absences ---------------------------------------------------------------

/// What a roll call is decided with.
#[derive(Clone, Debug)]
pub struct RollCallFacts {
    /// The student's class; `None` when there is no such student.
    pub student_class: Option<ClassId>,
    /// The earliest live absence declared in advance that an ABSENCE report
    /// overlaps: the report confirms it, on its stream, instead of recording
    /// a second absence.
    pub declared: Option<AbsenceId>,
    pub now: DateTime<Utc>,
}

impl Command for absences::ReportAbsence {
    const NAME: &'static str = "reportAbsence";
    const RATE: Option<Limited> = Some(Limited::RollCall);
    type State = absences::Absence;
    type Facts = RollCallFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_report_absence(m, v, self.student_id))
    }
    fn facts(&self, m: &Model, now: DateTime<Utc>) -> Self::Facts {
        let declared = m
            .absences_of(self.student_id)
            .into_iter()
            .filter(|a| {
                self.kind == AbsenceKind::Absence
                    && a.declared_in_advance
                    && !m.is_absence_cancelled(a.id)
                    && a.start < self.end
                    && self.start < a.end
            })
            .min_by_key(|a| a.start)
            .map(|a| a.id);
        RollCallFacts {
            student_class: m.student(self.student_id).map(|s| s.class_id),
            declared,
            now,
        }
    }
    fn stream(&self, facts: &Self::Facts) -> StreamName {
        StreamName::absence(facts.declared.unwrap_or(self.absence_id))
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        // `state` is the declared absence's when there is one; the report's
        // own stream is new otherwise.
        let fresh = absences::Absence::default();
        let (base, declared) = match facts.declared {
            Some(_) => (&fresh, vec![state.clone()]),
            None => (state, Vec::new()),
        };
        let decided = absences::report_absence(
            base,
            self,
            &absences::ReportFacts {
                student_class: facts.student_class,
                declared,
                now: facts.now,
            },
        )?;
        if decided.absence_id != facts.declared.unwrap_or(self.absence_id) {
            // The model saw a declaration the stream no longer has as live
            // (cancelled meanwhile): the client decides again.
            return Err(ApiError::Conflict(
                "the declared absence changed; retry".into(),
            ));
        }
        Ok(decided.events)
    }
}

/// A guardian announces an absence in advance; it starts PENDING review.
impl Command for absences::DeclareAbsence {
    const NAME: &'static str = "declareAbsence";
    const RATE: Option<Limited> = Some(Limited::AbsenceDeclaration);
    type State = absences::Absence;
    type Facts = absences::DeclareFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_declare_absence(m, v, self.student_id))
    }
    fn facts(&self, m: &Model, now: DateTime<Utc>) -> Self::Facts {
        absences::DeclareFacts {
            student_class: m.student(self.student_id).map(|s| s.class_id),
            now,
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::absence(self.absence_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(absences::declare_absence(state, self, facts)?)
    }
}

impl Command for absences::JustifyAbsence {
    const NAME: &'static str = "justifyAbsence";
    const RATE: Option<Limited> = Some(Limited::AbsenceDeclaration);
    type State = absences::Absence;
    type Facts = ();

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_justify_absence(m, v, self.absence_id))
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::absence(self.absence_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(absences::justify_absence(state, self)?)
    }
}

impl Command for absences::ReviewJustification {
    const NAME: &'static str = "reviewJustification";
    type State = absences::Absence;
    type Facts = ();

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_review_justification(m, v, self.absence_id))
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::absence(self.absence_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(absences::review_justification(state, self)?)
    }
}

// ---- Grades and homework --------------------------------------------------------

impl Command for grades::CreateAssessment {
    const NAME: &'static str = "createAssessment";
    type State = grades::Assessment;
    type Facts = grades::AssessmentFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer().is_some_and(|v| {
            policy::can_teach_as(m, v, self.teacher_id, self.class_id, &self.subject)
        })
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> Self::Facts {
        grades::AssessmentFacts {
            class_exists: m.class(self.class_id).is_some(),
            class_closed: interop::closed_class(m, self.class_id),
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::assessment(self.assessment_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(grades::create_assessment(state, self, facts)?)
    }
}

/// What a grade is recorded with: the student's class, and the closed
/// period the assessment's date falls in, if any (evaluation, issue 14).
#[derive(Clone, Debug)]
pub struct GradingFacts {
    pub grade: grades::GradeFacts,
    pub closed: Option<registre_domain::evaluation::ClosedPeriod>,
    /// interop (issue 17): the assessment's class, when it belongs to a
    /// past school year (read-only).
    pub class_closed: Option<(String, i32)>,
}

impl Command for grades::RecordGrade {
    const NAME: &'static str = "recordGrade";
    const RATE: Option<Limited> = Some(Limited::Grade);
    type State = grades::Assessment;
    type Facts = GradingFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_grade(m, v, self.assessment_id))
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> Self::Facts {
        GradingFacts {
            grade: grades::GradeFacts {
                student_class: m.student(self.student_id).map(|s| s.class_id),
            },
            closed: evaluation::closed_period_of(m, self.assessment_id),
            class_closed: m
                .assessment(self.assessment_id)
                .and_then(|a| interop::closed_class(m, a.class_id)),
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::assessment(self.assessment_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        registre_domain::evaluation::ensure_open_for_grades(facts.closed.as_ref())?;
        if let Some((name, year)) = &facts.class_closed {
            return Err(roster::closed_class(name, *year).into());
        }
        Ok(grades::record_grade(state, self, &facts.grade)?)
    }
}

/// correctGrade: decided on the grade's assessment, found in the read model.
impl Command for grades::CorrectGrade {
    const NAME: &'static str = "correctGrade";
    const RATE: Option<Limited> = Some(Limited::Grade);
    type State = grades::Assessment;
    /// The grade's assessment (authorized, so it exists) and the closed
    /// period its date falls in, if any.
    type Facts = (
        AssessmentId,
        Option<registre_domain::evaluation::ClosedPeriod>,
    );

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_correct_grade(m, v, self.grade_id))
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> Self::Facts {
        let assessment = m
            .grade(self.grade_id)
            .map(|g| g.assessment_id)
            .unwrap_or_default();
        (assessment, evaluation::closed_period_of(m, assessment))
    }
    fn stream(&self, facts: &Self::Facts) -> StreamName {
        StreamName::assessment(facts.0)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        registre_domain::evaluation::ensure_open_for_grades(facts.1.as_ref())?;
        Ok(grades::correct_grade(state, self)?)
    }
    fn reason(&self) -> Option<&str> {
        Some(&self.reason)
    }
}

impl Command for homework::AssignHomework {
    const NAME: &'static str = "assignHomework";
    type State = homework::Homework;
    type Facts = homework::HomeworkFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer().is_some_and(|v| {
            policy::can_teach_as(m, v, self.teacher_id, self.class_id, &self.subject)
        })
    }
    fn facts(&self, m: &Model, now: DateTime<Utc>) -> Self::Facts {
        let zone = m.zone_of_class(self.class_id);
        homework::HomeworkFacts {
            class_exists: m.class(self.class_id).is_some(),
            today: now.with_timezone(&zone).date_naive(),
            class_closed: interop::closed_class(m, self.class_id),
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::homework(self.homework_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(homework::assign_homework(state, self, facts)?)
    }
}

// ---- Messages ------------------------------------------------------------------

impl Command for messages::SendMessage {
    const NAME: &'static str = "sendMessage";
    const RATE: Option<Limited> = Some(Limited::Message);
    type State = messages::Thread;
    type Facts = messages::SendFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        let reply_in = match self.thread {
            ThreadTarget::Reply(thread) => Some(thread),
            ThreadTarget::New { .. } => None,
        };
        by.viewer()
            .is_some_and(|v| policy::can_send_message(m, v, self.from, &self.to, reply_in))
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> Self::Facts {
        messages::SendFacts {
            registered_recipients: self
                .to
                .iter()
                .copied()
                .filter(|p| m.person(*p).is_some())
                .collect(),
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::thread(self.thread_id())
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(messages::send_message(state, self, facts)?)
    }
}

/// markMessageRead: decided on the message's thread, found in the read model.
impl Command for messages::MarkRead {
    const NAME: &'static str = "markMessageRead";
    type State = messages::Thread;
    /// The message's thread (authorized, so it exists).
    type Facts = ThreadId;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_mark_read(m, v, self.message_id, self.reader))
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> ThreadId {
        m.message(self.message_id)
            .map(|msg| msg.thread_id)
            .unwrap_or_default()
    }
    fn stream(&self, thread: &ThreadId) -> StreamName {
        StreamName::thread(*thread)
    }
    fn decide(&self, state: &Self::State, _: &ThreadId) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(messages::mark_read(state, self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use registre_domain::StudentId;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, h, m, 0)
            .single()
            .expect("a valid instant")
    }

    fn roll_call(
        absence: u128,
        kind: AbsenceKind,
        minutes_late: Option<i64>,
    ) -> absences::ReportAbsence {
        absences::ReportAbsence {
            absence_id: AbsenceId::from_uuid(Uuid::from_u128(absence)),
            student_id: StudentId::from_uuid(Uuid::from_u128(5)),
            kind,
            start: at(8, 0),
            end: at(8, 15),
            minutes_late,
        }
    }

    fn fp<C: Command>(cmd: &C) -> String {
        fingerprint(cmd).expect("a command has a fingerprint")
    }

    /// Stored fingerprints outlive a deployment: a key sent before it and
    /// retried after must still match. This hash changes only if the
    /// command's name or serde form does.
    #[test]
    fn a_fingerprint_is_the_hash_of_the_serde_form_and_is_stable() {
        let cmd = roll_call(1, AbsenceKind::Lateness, Some(15));
        let form =
            serde_json::to_string(&(absences::ReportAbsence::NAME, &cmd)).expect("serialisable");
        // The wire names of enums, not Rust's Debug spelling ("Lateness").
        assert_eq!(
            form,
            r#"["reportAbsence",{"student_id":"00000000-0000-0000-0000-000000000005","kind":"LATENESS","start":"2026-11-24T08:00:00Z","end":"2026-11-24T08:15:00Z","minutes_late":15}]"#
        );
        assert_eq!(
            fp(&cmd),
            "538274d63a8ead27b6522868a2e8f8fbf3d6a730741ab18e930e65c751ebec4b"
        );
        // The id the caller generated is not part of the request...
        assert_eq!(fp(&roll_call(2, AbsenceKind::Lateness, Some(15))), fp(&cmd));
        // ...everything the client sent is.
        assert_ne!(fp(&roll_call(1, AbsenceKind::Lateness, Some(20))), fp(&cmd));
        assert_ne!(fp(&roll_call(1, AbsenceKind::Absence, None)), fp(&cmd));
    }

    #[test]
    fn a_new_thread_and_a_reply_are_different_requests() {
        let send = |message: u128, thread: ThreadTarget| messages::SendMessage {
            message_id: Uuid::from_u128(message).into(),
            thread,
            from: Uuid::from_u128(1).into(),
            to: vec![Uuid::from_u128(2).into()],
            subject: "Sortie".into(),
            body: "Bonjour".into(),
        };
        let new = |id: u128| ThreadTarget::New {
            id: Uuid::from_u128(id).into(),
        };
        let reply = |id: u128| ThreadTarget::Reply(Uuid::from_u128(id).into());
        assert_eq!(fp(&send(10, new(20))), fp(&send(11, new(21))));
        assert_ne!(fp(&send(10, new(20))), fp(&send(10, reply(20))));
        assert_ne!(fp(&send(10, reply(20))), fp(&send(10, reply(21))));
    }
}
