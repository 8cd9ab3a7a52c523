//! Command throughput: single-event "report an absence" commands with 1, 4 and
//! 16 concurrent writers, through Registre's store and, side by side in the
//! same run and on the same PostgreSQL, through raw single-row INSERTs (the
//! physical limit), the `esrs` crate's PgStore and `cqrs-es` + `postgres-es`.
//! Every target gets a fresh database.

use crate::db::TestDb;
use crate::gen::absence_reported;
use anyhow::{anyhow, Context, Result};
use async_trait::async_trait;
use rand::rngs::StdRng;
use rand::SeedableRng;
use registre_domain::events::AbsenceReported;
use registre_domain::{DomainEvent, StudentId};
use registre_store::{AppendRequest, EventStore, ExpectedVersion, NewEvent, Partition};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Barrier;
use uuid::Uuid;

/// One writer's loop body: one command, one committed transaction.
#[async_trait]
pub trait Writer: Send {
    async fn op(&mut self) -> Result<()>;
}

/// Ops each writer runs before the clock starts (connections warm, statements
/// prepared, the first autovacuum-free pages allocated).
const WARMUP_OPS: usize = 20;

#[derive(Clone, Debug)]
pub struct Measurement {
    pub target: String,
    pub writers: usize,
    pub preload: u64,
    pub ops: u64,
    /// Events each op writes (1 but for batched appends).
    pub events_per_op: u64,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

impl Measurement {
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
    pub fn events_per_sec(&self) -> f64 {
        self.ops_per_sec() * self.events_per_op as f64
    }
}

/// Runs every writer in its own task for `duration`, after a barrier so that
/// all start together.
pub async fn drive(
    target: &str,
    preload: u64,
    events_per_op: u64,
    writers: Vec<Box<dyn Writer>>,
    duration: Duration,
) -> Result<Measurement> {
    let n = writers.len();
    let barrier = Arc::new(Barrier::new(n + 1));
    let mut tasks = Vec::with_capacity(n);
    for mut w in writers {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..WARMUP_OPS {
                w.op().await?;
            }
            barrier.wait().await;
            let deadline = Instant::now() + duration;
            let mut latencies = Vec::with_capacity(4096);
            while Instant::now() < deadline {
                let t = Instant::now();
                w.op().await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.context("writer task panicked")??);
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    Ok(Measurement {
        target: target.to_owned(),
        writers: n,
        preload,
        ops: all.len() as u64,
        events_per_op,
        elapsed,
        p50: crate::stats::percentile(&all, 0.50),
        p99: crate::stats::percentile(&all, 0.99),
    })
}

fn absence_payload(rng: &mut StdRng) -> (AbsenceReported, serde_json::Value) {
    let student = StudentId(Uuid::from_u128(rand::Rng::gen(rng)));
    let e = absence_reported(rng, student);
    let data = DomainEvent::AbsenceReported(e.clone()).encode().data;
    (e, data)
}

fn metadata_json() -> serde_json::Value {
    serde_json::json!({
        "actor": {"person_id": Uuid::now_v7(), "role": registre_domain::Role::Teacher.wire_name()},
        "correlation_id": Uuid::now_v7(),
        "causation_id": null,
        "idempotency_key": null,
        "occurred_at": chrono::Utc::now(),
        "reason": null,
    })
}

// ---- Registre's store ------------------------------------------------------------

fn registre_event(rng: &mut StdRng) -> NewEvent {
    let (e, _) = absence_payload(rng);
    let generated = crate::gen::GenEvent {
        at: e.start,
        actor: Some((
            registre_domain::PersonId(Uuid::now_v7()),
            registre_domain::Role::Teacher,
        )),
        event: DomainEvent::AbsenceReported(e),
    };
    crate::gen::to_new_event(&generated, rng)
}

/// The command path's write: one `append` with its expected version, to a new
/// absence stream (`NoStream`, as reporting an absence does) or, with a
/// preload, to the writer's own long stream at its current version.
struct RegistreWriter {
    store: Arc<dyn EventStore>,
    stream: Option<(String, u64)>,
    rng: StdRng,
}

#[async_trait]
impl Writer for RegistreWriter {
    async fn op(&mut self) -> Result<()> {
        let event = registre_event(&mut self.rng);
        let (stream_id, expected) = match &self.stream {
            Some((s, v)) => (s.clone(), ExpectedVersion::Exact(*v)),
            None => (
                format!("absence-{}", Uuid::now_v7()),
                ExpectedVersion::NoStream,
            ),
        };
        self.store
            .append(AppendRequest {
                partition: Partition::directory(),
                stream_id,
                expected,
                events: vec![event],
                idempotency: None,
            })
            .await?;
        if let Some((_, v)) = &mut self.stream {
            *v += 1;
        }
        Ok(())
    }
}

pub async fn registre_writers(
    store: Arc<dyn EventStore>,
    writers: usize,
    preload: u64,
) -> Result<Vec<Box<dyn Writer>>> {
    let mut out: Vec<Box<dyn Writer>> = Vec::with_capacity(writers);
    for w in 0..writers {
        let mut rng = StdRng::seed_from_u64(w as u64);
        let stream = if preload > 0 {
            let stream_id = format!("student-{}", Uuid::now_v7());
            let events = (0..preload).map(|_| registre_event(&mut rng)).collect();
            store
                .append(AppendRequest {
                    partition: Partition::directory(),
                    stream_id: stream_id.clone(),
                    expected: ExpectedVersion::NoStream,
                    events,
                    idempotency: None,
                })
                .await?;
            Some((stream_id, preload))
        } else {
            None
        };
        out.push(Box::new(RegistreWriter {
            store: store.clone(),
            stream,
            rng,
        }));
    }
    Ok(out)
}

/// Commands per `append_batch` in the batched variant.
pub const BATCH: u64 = 50;

/// `append_batch`: [`BATCH`] single-event commands, each to a new absence
/// stream with its own version check, in one transaction (imports, seeding,
/// or a server that groups concurrent commands into one commit).
struct RegistreBatchWriter {
    store: Arc<dyn EventStore>,
    rng: StdRng,
}

#[async_trait]
impl Writer for RegistreBatchWriter {
    async fn op(&mut self) -> Result<()> {
        let requests = (0..BATCH)
            .map(|_| AppendRequest {
                partition: Partition::directory(),
                stream_id: format!("absence-{}", Uuid::now_v7()),
                expected: ExpectedVersion::NoStream,
                events: vec![registre_event(&mut self.rng)],
                idempotency: None,
            })
            .collect();
        self.store.append_batch(requests).await?;
        Ok(())
    }
}

pub fn registre_batch_writers(store: Arc<dyn EventStore>, writers: usize) -> Vec<Box<dyn Writer>> {
    (0..writers)
        .map(|w| {
            Box::new(RegistreBatchWriter {
                store: store.clone(),
                rng: StdRng::seed_from_u64(w as u64),
            }) as Box<dyn Writer>
        })
        .collect()
}

// ---- (a) raw single-row INSERT ------------------------------------------------

/// The row shape of Registre's `events` table (migrations/postgres/0001), with
/// its primary key, unique and check constraints, but without the store's lock,
/// version check or hash chain: positions are handed out by the client, so
/// nothing serialises the writers but PostgreSQL's own WAL flush.
const RAW_SCHEMA: &str = "
CREATE TABLE raw_events (
    position        bigint      PRIMARY KEY CHECK (position > 0),
    stream_id       text        NOT NULL CHECK (stream_id <> ''),
    stream_version  bigint      NOT NULL CHECK (stream_version > 0),
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL CHECK (event_type <> ''),
    schema_version  integer     NOT NULL CHECK (schema_version >= 0),
    data            text        NOT NULL,
    metadata        text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    hash            bytea       NOT NULL CHECK (octet_length(hash) = 32),
    UNIQUE (stream_id, stream_version)
);";

const RAW_INSERT: &str = "INSERT INTO raw_events
 (position, stream_id, stream_version, event_id, event_type, schema_version, data, metadata, occurred_at, recorded_at, hash)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

struct RawWriter {
    client: tokio_postgres::Client,
    statement: tokio_postgres::Statement,
    positions: Arc<AtomicI64>,
    stream: Option<(String, i64)>,
    rng: StdRng,
}

#[async_trait]
impl Writer for RawWriter {
    async fn op(&mut self) -> Result<()> {
        use sha2::Digest;
        let (_, data) = absence_payload(&mut self.rng);
        let (stream, version) = match &mut self.stream {
            Some((s, v)) => {
                *v += 1;
                (s.clone(), *v)
            }
            None => (format!("absence-{}", Uuid::now_v7()), 1),
        };
        let data = data.to_string();
        let metadata = metadata_json().to_string();
        let hash = sha2::Sha256::digest(data.as_bytes()).to_vec();
        let position = self.positions.fetch_add(1, Ordering::Relaxed);
        let now = chrono::Utc::now();
        self.client
            .execute(
                &self.statement,
                &[
                    &position,
                    &stream,
                    &version,
                    &Uuid::now_v7(),
                    &"AbsenceReported",
                    &1i32,
                    &data,
                    &metadata,
                    &now,
                    &now,
                    &hash,
                ],
            )
            .await?;
        Ok(())
    }
}

pub async fn raw_writers(
    db: &TestDb,
    writers: usize,
    preload: u64,
) -> Result<Vec<Box<dyn Writer>>> {
    let setup = db.connect().await?;
    setup.batch_execute(RAW_SCHEMA).await?;
    let positions = Arc::new(AtomicI64::new(1));
    let mut out: Vec<Box<dyn Writer>> = Vec::with_capacity(writers);
    for w in 0..writers {
        let client = db.connect().await?;
        let statement = client.prepare(RAW_INSERT).await?;
        let mut writer = RawWriter {
            client,
            statement,
            positions: positions.clone(),
            stream: None,
            rng: StdRng::seed_from_u64(w as u64),
        };
        if preload > 0 {
            writer.stream = Some((format!("student-{}", Uuid::now_v7()), 0));
            for _ in 0..preload {
                writer.op().await?;
            }
        }
        out.push(Box::new(writer));
    }
    Ok(out)
}

// ---- the peers' aggregate ---------------------------------------------------------

/// Both peers decide with the same trivial aggregate: the command becomes its
/// event, and the state counts what was applied. The work measured is theirs:
/// load (replay) the aggregate, decide, persist with their concurrency check.
#[derive(Clone, Debug)]
pub enum PeerCommand {
    Report(AbsenceReported),
    /// Fills a stream before the clock starts.
    Preload(Vec<AbsenceReported>),
}

#[derive(Debug, thiserror::Error)]
#[error("rejected")]
pub struct PeerRejected;

fn decide(command: PeerCommand) -> Vec<AbsenceReported> {
    match command {
        PeerCommand::Report(e) => vec![e],
        PeerCommand::Preload(v) => v,
    }
}

fn preload_events(rng: &mut StdRng, n: u64) -> Vec<AbsenceReported> {
    (0..n).map(|_| absence_payload(rng).0).collect()
}

// ---- (b) esrs ------------------------------------------------------------------------

#[derive(Debug)]
pub struct EsrsAbsences;

impl esrs::Aggregate for EsrsAbsences {
    const NAME: &'static str = "absences";
    type State = u64;
    type Command = PeerCommand;
    type Event = AbsenceReported;
    type Error = PeerRejected;

    fn handle_command(
        _state: &u64,
        command: PeerCommand,
    ) -> Result<Vec<AbsenceReported>, PeerRejected> {
        Ok(decide(command))
    }

    fn apply_event(state: u64, _event: AbsenceReported) -> u64 {
        state + 1
    }
}

struct EsrsWriter {
    manager: Arc<esrs::manager::AggregateManager<esrs::store::postgres::PgStore<EsrsAbsences>>>,
    aggregate: Option<Uuid>,
    rng: StdRng,
}

impl EsrsWriter {
    async fn run(&mut self, command: PeerCommand) -> Result<()> {
        let id = self.aggregate.unwrap_or_else(Uuid::now_v7);
        let state = self
            .manager
            .load(id)
            .await?
            .unwrap_or_else(|| esrs::AggregateState::with_id(id));
        self.manager
            .handle_command(state, command)
            .await?
            .map_err(|e| anyhow!("esrs: {e}"))?;
        Ok(())
    }
}

#[async_trait]
impl Writer for EsrsWriter {
    async fn op(&mut self) -> Result<()> {
        let (e, _) = absence_payload(&mut self.rng);
        self.run(PeerCommand::Report(e)).await
    }
}

pub async fn esrs_writers(
    db: &TestDb,
    writers: usize,
    preload: u64,
) -> Result<Vec<Box<dyn Writer>>> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(writers as u32)
        .connect(&db.url)
        .await?;
    let store = esrs::store::postgres::PgStoreBuilder::<EsrsAbsences>::new(pool)
        .try_build()
        .await?;
    let manager = Arc::new(esrs::manager::AggregateManager::new(store));
    let mut out: Vec<Box<dyn Writer>> = Vec::with_capacity(writers);
    for w in 0..writers {
        let mut writer = EsrsWriter {
            manager: manager.clone(),
            aggregate: None,
            rng: StdRng::seed_from_u64(w as u64),
        };
        if preload > 0 {
            writer.aggregate = Some(Uuid::now_v7());
            let events = preload_events(&mut writer.rng, preload);
            writer.run(PeerCommand::Preload(events)).await?;
        }
        out.push(Box::new(writer));
    }
    Ok(out)
}

// ---- (c) cqrs-es + postgres-es ---------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CqrsEvent(AbsenceReported);

impl cqrs_es::DomainEvent for CqrsEvent {
    fn event_type(&self) -> String {
        "AbsenceReported".into()
    }
    fn event_version(&self) -> String {
        "1".into()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CqrsAbsences {
    count: u64,
}

#[async_trait]
impl cqrs_es::Aggregate for CqrsAbsences {
    type Command = PeerCommand;
    type Event = CqrsEvent;
    type Error = PeerRejected;
    type Services = ();

    fn aggregate_type() -> String {
        "absences".into()
    }

    async fn handle(
        &self,
        command: PeerCommand,
        _services: &(),
    ) -> Result<Vec<CqrsEvent>, PeerRejected> {
        Ok(decide(command).into_iter().map(CqrsEvent).collect())
    }

    fn apply(&mut self, _event: CqrsEvent) {
        self.count += 1;
    }
}

/// postgres-es ships its schema as db/init.sql for the user to run.
const CQRS_SCHEMA: &str = "
CREATE TABLE events (
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    sequence bigint CHECK (sequence >= 0) NOT NULL,
    event_type text NOT NULL,
    event_version text NOT NULL,
    payload json NOT NULL,
    metadata json NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE TABLE snapshots (
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    last_sequence bigint CHECK (last_sequence >= 0) NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload json NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);";

struct CqrsWriter {
    cqrs: Arc<postgres_es::PostgresCqrs<CqrsAbsences>>,
    aggregate: Option<String>,
    rng: StdRng,
}

impl CqrsWriter {
    async fn run(&mut self, command: PeerCommand) -> Result<()> {
        let id = match &self.aggregate {
            Some(id) => id.clone(),
            None => Uuid::now_v7().to_string(),
        };
        self.cqrs
            .execute(&id, command)
            .await
            .map_err(|e| anyhow!("cqrs-es: {e}"))
    }
}

#[async_trait]
impl Writer for CqrsWriter {
    async fn op(&mut self) -> Result<()> {
        let (e, _) = absence_payload(&mut self.rng);
        self.run(PeerCommand::Report(e)).await
    }
}

pub async fn cqrs_writers(
    db: &TestDb,
    writers: usize,
    preload: u64,
) -> Result<Vec<Box<dyn Writer>>> {
    db.connect().await?.batch_execute(CQRS_SCHEMA).await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(writers as u32)
        .connect(&db.url)
        .await?;
    let cqrs = Arc::new(postgres_es::postgres_cqrs(pool, vec![], ()));
    let mut out: Vec<Box<dyn Writer>> = Vec::with_capacity(writers);
    for w in 0..writers {
        let mut writer = CqrsWriter {
            cqrs: cqrs.clone(),
            aggregate: None,
            rng: StdRng::seed_from_u64(w as u64),
        };
        if preload > 0 {
            writer.aggregate = Some(Uuid::now_v7().to_string());
            let events = preload_events(&mut writer.rng, preload);
            writer.run(PeerCommand::Preload(events)).await?;
        }
        out.push(Box::new(writer));
    }
    Ok(out)
}
