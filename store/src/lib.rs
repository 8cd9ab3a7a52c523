//! The event log of Registre: append-only, globally ordered, hash-chained.
//!
//! One [`EventStore`] interface, two backends: PostgreSQL for production and an
//! embedded SQLite file as the zero-setup default. The store knows nothing of
//! the domain: it keeps `(event_type, schema_version, data)` and metadata, and
//! hands back [`RecordedEvent`]s with their global [`Position`].
//!
//! Entry points: [`open`] (the configured backend, migrated), [`migrate`]
//! (`registre migrate`), [`LogReader`] (the log in pages after a position,
//! then its wake-ups: every reader of the whole log),
//! [`chain::verify_chain`] and [`chain::ChainCheckpoint`] (tamper evidence),
//! [`vault::VaultStore`] (personal text sealed with per-person keys).
//! Why the log is built this way: `docs/decisions/0001-event-store.md`.

pub mod chain;
pub mod communication;
// cluster (issue 12)
pub mod nodes;
mod plan;
pub mod postgres;
pub mod reader;
pub mod schema;
pub mod sqlite;
pub mod testing;
pub mod usage;
pub mod vault;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;
use tokio::sync::watch;
use uuid::Uuid;

/// Global position in the log: starts at 1, gap-free, and a reader that has
/// seen position P never later sees a new event below P.
pub type Position = u64;

/// Version of an event within its stream: the first event is version 1.
pub type StreamVersion = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds (used only where order does not matter).
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last version must be exactly this.
    Exact(StreamVersion),
}

/// Who caused an event. `None` in [`EventMetadata::actor`] marks a system event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub person_id: Uuid,
    pub role: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventMetadata {
    pub actor: Option<Actor>,
    /// The request that caused it (one per GraphQL operation or CLI command).
    pub correlation_id: Uuid,
    /// The event or command that caused it, when there is one.
    pub causation_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// Why: mandatory on corrections, cancellations and withdrawals.
    pub reason: Option<String>,
}

/// An event to append.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// UUIDv7.
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub data: Value,
    pub metadata: EventMetadata,
}

/// An idempotency key and a fingerprint of the command it was sent with. The
/// same key with the same fingerprint answers the original outcome; the same
/// key with another fingerprint is refused ([`StoreError::IdempotencyKeyReused`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub fingerprint: String,
}

/// The part of the log an event belongs to: one establishment's (named by its
/// UAI) or the directory's (persons, students and guardianships, which cross
/// establishments). A stream stays in the partition of its first event. A
/// node serving some establishments reads only their partitions and the
/// directory ([`EventStore::read_partitions`]); see decision 0019.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Partition(String);

impl Partition {
    /// The stored name of the directory; no UAI can take it.
    pub const DIRECTORY: &'static str = "directory";

    pub fn directory() -> Self {
        Self(Self::DIRECTORY.to_owned())
    }

    /// An establishment's partition, by its UAI (validated by the domain).
    pub fn establishment(uai: &str) -> Self {
        Self(uai.to_owned())
    }

    /// A stored name read back from the log.
    pub fn from_stored(name: String) -> Result<Self> {
        if name.is_empty() {
            return Err(StoreError::Corrupt("an empty partition name".into()));
        }
        Ok(Self(name))
    }

    pub fn is_directory(&self) -> bool {
        self.0 == Self::DIRECTORY
    }

    /// Whether a node folding the establishments `served` (`None`: all of
    /// them) folds this partition: the directory, every node does.
    pub fn served_by(&self, served: Option<&[Partition]>) -> bool {
        self.is_directory() || served.is_none_or(|set| set.contains(self))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AppendRequest {
    pub stream_id: String,
    /// Where every event of this request goes (see [`Partition`]).
    pub partition: Partition,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    pub idempotency: Option<Idempotency>,
}

/// An event as the log holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub position: Position,
    pub stream_id: String,
    pub stream_version: StreamVersion,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub data: Value,
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
    /// SHA-256 chaining this event to the one before it (see [`chain`]).
    #[serde(with = "hex_bytes")]
    pub hash: [u8; 32],
    /// `None` only for an event written before partitions existed and not yet
    /// assigned one by the backfill ([`EventStore::assign_partitions`]). Not
    /// covered by the hash: it is recomputed from the fold by `audit verify`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<Partition>,
}

/// An event as a fold reads it: the envelope without the chain's fields, the
/// data as the stored JSON text (personal fields opened), parsed by the reader
/// straight into its own types. Rebuilding a read model reads every event of
/// the log: parsing each into a [`Value`] tree first, then the tree into the
/// domain's types, cost as much as the fold itself (docs/benchmarks.md,
/// section 2).
#[derive(Clone, Debug, PartialEq)]
pub struct RawEvent {
    pub position: Position,
    pub event_type: String,
    pub schema_version: u32,
    /// Canonical JSON text of the event's data.
    pub data: String,
    /// The person who caused it (the metadata's actor); `None` for a system
    /// event.
    pub actor: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
    pub partition: Option<Partition>,
}

impl RawEvent {
    /// The fold's view of an event already read whole.
    pub fn of(event: &RecordedEvent) -> Self {
        RawEvent {
            position: event.position,
            event_type: event.event_type.clone(),
            schema_version: event.schema_version,
            data: event.data.to_string(),
            actor: event.metadata.actor.as_ref().map(|a| a.person_id),
            recorded_at: event.recorded_at,
            partition: event.partition.clone(),
        }
    }
}

/// The part of the stored metadata a fold reads; the rest is skipped without
/// being built.
#[derive(Deserialize)]
pub(crate) struct FoldMetadata {
    actor: Option<FoldActor>,
}

#[derive(Deserialize)]
struct FoldActor {
    person_id: Uuid,
}

impl FoldMetadata {
    pub(crate) fn parse(text: &str, position: Position) -> Result<Option<Uuid>> {
        serde_json::from_str::<FoldMetadata>(text)
            .map(|m| m.actor.map(|a| a.person_id))
            .map_err(|e| StoreError::Corrupt(format!("metadata at {position}: {e}")))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AppendOutcome {
    pub events: Vec<RecordedEvent>,
    /// True when the idempotency key had been seen: nothing new was written and
    /// `events` are the ones the first request wrote.
    pub deduplicated: bool,
}

impl AppendOutcome {
    pub fn last_position(&self) -> Position {
        self.events.last().map(|e| e.position).unwrap_or(0)
    }
}

/// A persisted fold (projection state or aggregate snapshot) with the log
/// position it reflects.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub key: String,
    pub version: u32,
    pub position: Position,
    pub state: Vec<u8>,
}

#[derive(Clone, Debug, Error)]
pub enum StoreError {
    /// Someone else appended to the stream first. Retry with fresh state.
    #[error("stream {stream_id} is at version {actual}, expected {expected:?}")]
    Conflict {
        stream_id: String,
        expected: ExpectedVersion,
        actual: StreamVersion,
    },
    #[error("idempotency key {0} was already used for a different command")]
    IdempotencyKeyReused(String),
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    /// The database is unreachable or failed. Its text is for logs only.
    #[error("storage failure: {0}")]
    Backend(String),
    /// The log does not verify or does not decode.
    #[error("corrupt log: {0}")]
    Corrupt(String),
    /// An applied migration's text differs from the one this binary carries:
    /// the node refuses to start (see [`schema`]).
    #[error(
        "migration {file} was changed after it was applied: recorded sha256 {recorded}, \
         file sha256 {actual}; migrations are never edited once applied, add a new one"
    )]
    MigrationChanged {
        file: String,
        recorded: String,
        actual: String,
    },
    /// Personal text would be stored in plaintext: the backend keeps no
    /// subject keys ([`vault::VaultStore::wrap`]).
    #[error("no subject key table: {0}")]
    NoKeyTable(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[async_trait]
pub trait EventStore: Send + Sync + std::fmt::Debug + 'static {
    /// Appends atomically: all events or none. Checks `expected` and the
    /// idempotency key under the same serialization that allocates positions.
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome>;

    /// Appends several streams in one transaction, all or nothing (seeding,
    /// imports, benchmarks). Each request is checked as [`EventStore::append`] would.
    async fn append_batch(&self, requests: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>>;

    /// The outcome recorded for an idempotency key, if it was used.
    async fn find_idempotent(&self, key: &str) -> Result<Option<AppendOutcome>>;

    /// Events of one stream with version > `after_version`, in order.
    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: StreamVersion,
    ) -> Result<Vec<RecordedEvent>>;

    /// At most `limit` events with position > `after`, in order.
    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>>;

    /// At most `limit` events with position > `after` in the given
    /// partitions (the directory only when listed), in order.
    async fn read_partitions(
        &self,
        after: Position,
        partitions: &[Partition],
        limit: usize,
    ) -> Result<Vec<RecordedEvent>>;

    /// [`EventStore::read_partitions`] as a fold reads it: the data left as
    /// text. A backend that parses rows itself should answer it without
    /// building the [`Value`] tree this default goes through.
    async fn read_partitions_raw(
        &self,
        after: Position,
        partitions: &[Partition],
        limit: usize,
    ) -> Result<Vec<RawEvent>> {
        let events = self.read_partitions(after, partitions, limit).await?;
        Ok(events.iter().map(RawEvent::of).collect())
    }

    /// The lowest position whose event has no partition yet (a log written
    /// before partitions existed), if any.
    async fn first_unassigned(&self) -> Result<Option<Position>>;

    /// Sets the partition of events that have none (the backfill); an event
    /// that already has one is left as it is. Returns how many were set.
    async fn assign_partitions(&self, assignments: &[(Position, Partition)]) -> Result<u64>;

    /// Events at the given positions (any order in, position order out).
    async fn read_positions(&self, positions: &[Position]) -> Result<Vec<RecordedEvent>>;

    /// The last committed position (0 for an empty log).
    async fn head(&self) -> Result<Position>;

    /// A wake-up signal carrying the newest head this node has heard of, from
    /// its own appends or from other nodes. Best effort: readers still read the
    /// log itself from their checkpoint.
    fn wakeups(&self) -> watch::Receiver<Position>;

    async fn load_snapshot(&self, key: &str) -> Result<Option<Snapshot>>;
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()>;
    /// Saves several snapshots in one transaction: all of them or none (a
    /// read model's partitions and the manifest that names them, decision
    /// 0022). The same key twice: the last one stays.
    async fn save_snapshots(&self, snapshots: Vec<Snapshot>) -> Result<()>;

    /// Appends read-access records (the CNIL access log and the usage
    /// indicators' input). Not events: they are purged after their retention
    /// period. Ids are allocated in commit order, like positions.
    async fn record_access(&self, entries: Vec<NewAccess>) -> Result<()>;
    /// Access records with id > `after`, oldest first.
    async fn read_access(&self, after: u64, limit: usize) -> Result<Vec<AccessRecord>>;
    /// Access records about one person, oldest first.
    async fn access_about(&self, subject_id: Uuid) -> Result<Vec<AccessRecord>>;
    /// Deletes access records older than `before` that the usage projection
    /// has folded (at or below its checkpoint: an access is counted before it
    /// is purged); returns how many.
    async fn purge_access_before(&self, before: DateTime<Utc>) -> Result<u64>;

    /// The per-person key table of crypto-shredding, when the backend has one.
    fn subject_keys(&self) -> Option<Arc<dyn vault::SubjectKeys>> {
        None
    }

    /// The vault sealing and opening personal fields, when this store is a
    /// [`vault::VaultStore`].
    fn vault(&self) -> Option<Arc<vault::Vault>> {
        None
    }

    /// The usage projection's tables, when the backend has them.
    fn usage(&self) -> Option<Arc<dyn usage::UsageStore>> {
        None
    }

    /// Attachment bytes and the notification outbox (issue 16), when the
    /// backend has them.
    fn communication(&self) -> Option<Arc<dyn communication::CommunicationStore>> {
        None
    }

    /// The node registry (issue 12, decision 0021), when the backend has it.
    fn nodes(&self) -> Option<Arc<dyn nodes::NodeRegistry>> {
        None
    }
}

pub use chain::{verify_chain, ChainCheckpoint, ChainReport};
pub use postgres::{migrate_postgres, PostgresStore};
pub use reader::LogReader;
pub use sqlite::{migrate_sqlite, SqliteStore};
pub use vault::{PersonalFields, SubjectKeys, Vault, VaultStore, ERASED};

/// The store the configuration asks for, migrated: PostgreSQL when
/// `database_url` is set, else the embedded SQLite file `<data_dir>/registre.db`.
pub async fn open(database_url: Option<&str>, data_dir: &Path) -> Result<Arc<dyn EventStore>> {
    Ok(open_backend(database_url, data_dir).await?.store())
}

/// Like [`open`], keeping the concrete backend reachable (raw SQL in tools and
/// tests, the database file's path, the pool).
pub async fn open_backend(database_url: Option<&str>, data_dir: &Path) -> Result<Backend> {
    Ok(match database_url {
        Some(url) => Backend::Postgres(PostgresStore::connect(url).await?),
        None => Backend::Sqlite(SqliteStore::open(data_dir).await?),
    })
}

/// Applies pending migrations and returns the versions applied, without
/// starting a store (`registre migrate`). Safe when several nodes run it at once.
pub async fn migrate(database_url: Option<&str>, data_dir: &Path) -> Result<Vec<u32>> {
    match database_url {
        Some(url) => migrate_postgres(url).await,
        None => {
            let data_dir = data_dir.to_owned();
            tokio::task::spawn_blocking(move || sqlite::migrate_dir(&data_dir))
                .await
                .map_err(|e| StoreError::Backend(format!("sqlite: migrate task: {e}")))?
        }
    }
}

/// A store with its concrete backend.
#[derive(Clone, Debug)]
pub enum Backend {
    Postgres(Arc<PostgresStore>),
    Sqlite(Arc<SqliteStore>),
}

impl Backend {
    pub fn store(&self) -> Arc<dyn EventStore> {
        match self {
            Backend::Postgres(s) => s.clone(),
            Backend::Sqlite(s) => s.clone(),
        }
    }
}

/// One read of a person's data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewAccess {
    pub at: DateTime<Utc>,
    pub viewer_id: Uuid,
    /// ENT profile of the viewer for usage indicators: ELEVE, ENSEIGNANT, PARENT, AUTRE.
    pub viewer_profile: String,
    /// Whose data was read; `None` for reads about no one in particular.
    pub subject_id: Option<Uuid>,
    /// What was read: the GraphQL field path or operation name.
    pub operation: String,
    /// ENT service code: Notes, Absences, Cahier_Textes, Courrier_Electronique, Services_Vie_Scolaire...
    pub service: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccessRecord {
    pub id: u64,
    #[serde(flatten)]
    pub access: NewAccess,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let v = hex::decode(s).map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("a hash is 32 bytes"))
    }
}
