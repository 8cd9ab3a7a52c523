//! The PostgreSQL backend: the production store, shared by every node.
//!
//! Appends take `pg_advisory_xact_lock(APPEND_LOCK)` first, so position
//! allocation is serialised and the lock is held until commit: commit order is
//! position order, positions are gap-free, and a reader that has seen position
//! P never later sees a new event below P. The checks, positions and hash chain
//! are decided inside PostgreSQL by `registre_append` (migration 0005), so an
//! append is one round trip, and concurrent appends of a node share one call
//! and one WAL flush ([`append`]: group commit).
//!
//! Wake-ups: a local append updates the node's watch channel at once. NOTIFY is
//! kept out of the append transaction (a transaction with a pending NOTIFY takes
//! a cluster-wide lock at commit): a background task coalesces local appends
//! and notifies on its own connection, and one LISTEN connection per node,
//! reconnecting with backoff, feeds the watch channel with other nodes' heads.

mod append;
mod batch;

use append::AppendCounters;
pub use append::AppendStats;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls, Row};
use uuid::Uuid;

use crate::plan;
use crate::schema;
use crate::{
    AccessRecord, AppendOutcome, AppendRequest, EventMetadata, EventStore, FoldMetadata, NewAccess,
    Partition, Position, RawEvent, RecordedEvent, Result, Snapshot, StoreError, StreamVersion,
};

/// Advisory lock key serialising appends ("REGISTRE" in ASCII).
pub const APPEND_LOCK: i64 = 0x5245_4749_5354_5245;
/// Advisory lock key serialising migrations ("REGIMIGR").
pub const MIGRATION_LOCK: i64 = 0x5245_4749_4d49_4752;
/// `application_name` of each node's LISTEN connection.
pub const LISTENER_APPLICATION_NAME: &str = "registre-listen";
/// The NOTIFY channel carrying new heads between nodes.
pub const CHANNEL: &str = "registre_log";

const DEFAULT_POOL_SIZE: usize = 16;
/// Appends waiting for the committer; callers beyond it wait to enqueue.
const APPEND_QUEUE: usize = 4096;
const POOL_TIMEOUT: Duration = Duration::from_secs(30);
const LISTEN_BACKOFF_MIN: Duration = Duration::from_millis(100);
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(10);

const EVENT_COLUMNS: &str = "position, stream_id, stream_version, event_id, event_type, \
     schema_version, data, metadata, recorded_at, hash, partition";
/// [`raw_event_from_row`] reads them by index, in this order.
const RAW_EVENT_COLUMNS: &str =
    "position, event_type, schema_version, data, metadata, recorded_at, partition";

fn pg(context: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::Backend(format!("postgres: {context}: {e}"))
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Backend(format!("postgres pool: {e}"))
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::InvalidAppend(format!("{v} is out of range")))
}

fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative value {v}")))
}

fn parse_config(url: &str) -> Result<tokio_postgres::Config> {
    // The URL may carry a password: it is not repeated in the error.
    url.parse()
        .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL: {e}")))
}

/// Applies the pending migrations under a session advisory lock, so that
/// nodes starting at once apply each migration once. Returns the versions this
/// call applied.
pub async fn migrate_postgres(url: &str) -> Result<Vec<u32>> {
    let config = parse_config(url)?;
    let (mut client, connection) = config.connect(NoTls).await.map_err(pg("connect"))?;
    let driver = tokio::spawn(connection);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg("migration lock"))?;
    let result = apply_migrations(&mut client).await;
    // Closing the session would release the lock too; unlocking says so.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    drop(client);
    let _ = driver.await;
    result
}

async fn apply_migrations(client: &mut tokio_postgres::Client) -> Result<Vec<u32>> {
    // The column is added to tables made before checksums were recorded.
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version     integer PRIMARY KEY,
                name        text NOT NULL,
                applied_at  timestamptz NOT NULL DEFAULT now(),
                sha256      text
            );
            ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS sha256 text;",
        )
        .await
        .map_err(pg("create schema_migrations"))?;
    let applied: Vec<schema::Applied> = client
        .query("SELECT version, sha256 FROM schema_migrations", &[])
        .await
        .map_err(pg("read schema_migrations"))?
        .iter()
        .map(|r| (r.get::<_, i32>(0) as u32, r.get(1)))
        .collect();
    if let Some((newer, _)) = applied.iter().find(|(v, _)| {
        !registre_migrations::POSTGRES
            .iter()
            .any(|m| m.version == *v)
    }) {
        tracing::warn!(
            version = newer,
            "database schema has a migration this binary does not know"
        );
    }
    for m in schema::verify("postgres", registre_migrations::POSTGRES, &applied)? {
        client
            .execute(
                "UPDATE schema_migrations SET sha256 = $2 WHERE version = $1 AND sha256 IS NULL",
                &[&(m.version as i32), &schema::checksum(m.sql)],
            )
            .await
            .map_err(pg("record migration checksum"))?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "recorded migration checksum"
        );
    }
    let mut done = Vec::new();
    for m in registre_migrations::POSTGRES {
        if applied.iter().any(|(v, _)| *v == m.version) {
            continue;
        }
        let tx = client.transaction().await.map_err(pg("begin migration"))?;
        tx.batch_execute(m.sql).await.map_err(|e| {
            StoreError::Backend(format!(
                "postgres: migration {} ({}): {e}",
                m.version, m.name
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
            &[&(m.version as i32), &m.name, &schema::checksum(m.sql)],
        )
        .await
        .map_err(pg("record migration"))?;
        tx.commit().await.map_err(pg("commit migration"))?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        done.push(m.version);
    }
    Ok(done)
}

/// The PostgreSQL event store. Dropping it stops its background tasks.
#[derive(Debug)]
pub struct PostgresStore {
    pool: Pool,
    /// What `wakeups()` hands out: the newest head heard of, from anywhere.
    wake: watch::Sender<Position>,
    /// The queue of the node's committer task (group commit).
    appends: mpsc::Sender<append::Job>,
    counters: Arc<AppendCounters>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Options for [`PostgresStore::connect_with`].
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// Connections in the pool (the LISTEN connection is extra).
    pub pool_size: usize,
    /// Apply pending migrations before serving.
    pub migrate: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: DEFAULT_POOL_SIZE,
            migrate: true,
        }
    }
}

impl PostgresStore {
    /// Migrates, connects and starts the wake-up tasks.
    pub async fn connect(url: &str) -> Result<Arc<PostgresStore>> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Arc<PostgresStore>> {
        if options.migrate {
            migrate_postgres(url).await?;
        }
        let config = parse_config(url)?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        // Bounded waits: a saturated pool or an unreachable database fails a
        // request with a Backend error instead of hanging it.
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Backend(format!("postgres pool: {e}")))?;
        let head = read_head_position(&pool).await?;
        let (wake, _) = watch::channel(head);
        let (local, local_rx) = watch::channel(head);
        let mut listen_config = config;
        // Named so that operators (and tests) can tell it from pool connections.
        listen_config.application_name(LISTENER_APPLICATION_NAME);
        let (appends, jobs) = mpsc::channel(APPEND_QUEUE);
        let counters = Arc::new(AppendCounters::default());
        let committer = append::Committer {
            pool: pool.clone(),
            wake: wake.clone(),
            local,
            counters: counters.clone(),
        };
        let tasks = vec![
            tokio::spawn(notifier(pool.clone(), local_rx)),
            tokio::spawn(listener(listen_config, wake.clone())),
            tokio::spawn(committer.run(jobs)),
        ];
        Ok(Arc::new(PostgresStore {
            pool,
            wake,
            appends,
            counters,
            tasks,
        }))
    }

    /// The connection pool, for tools and tests that need raw SQL.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// How many append requests were made and in how many commits.
    pub fn append_stats(&self) -> AppendStats {
        self.counters.read()
    }

    /// The rows of `columns` after `after` in `partitions`, in position
    /// order, each turned by `from_row`.
    async fn partition_rows<T>(
        &self,
        columns: &str,
        after: Position,
        partitions: &[Partition],
        limit: usize,
        from_row: fn(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        if partitions.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let client = self.pool.get().await.map_err(pool_err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        if let [one] = partitions {
            // One partition (a parallel rebuild reads each on its own): one
            // range scan of (partition, position), no merge.
            let stmt = client
                .prepare_cached(&format!(
                    "SELECT {columns} FROM events WHERE partition = $1 AND position > $2 \
                     ORDER BY partition, position LIMIT $3"
                ))
                .await
                .map_err(pg("prepare read_partition"))?;
            let rows = client
                .query(&stmt, &[&one.as_str(), &to_i64(after)?, &limit])
                .await
                .map_err(pg("read_partition"))?;
            return rows.iter().map(from_row).collect();
        }
        let names: Vec<&str> = partitions.iter().map(Partition::as_str).collect();
        // One index-only range scan per partition on (partition, position),
        // merged, then the rows: a node serving few partitions never walks
        // the other establishments' events.
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {columns} FROM events WHERE position IN ( \
                   SELECT q.position FROM unnest($1::text[]) AS p(name), \
                   LATERAL (SELECT position FROM events \
                            WHERE partition = p.name AND position > $2 \
                            ORDER BY position LIMIT $3) AS q \
                   ORDER BY q.position LIMIT $3) \
                 ORDER BY position"
            ))
            .await
            .map_err(pg("prepare read_partitions"))?;
        let rows = client
            .query(&stmt, &[&names, &to_i64(after)?, &limit])
            .await
            .map_err(pg("read_partitions"))?;
        rows.iter().map(from_row).collect()
    }

    async fn submit(&self, job: append::Job) -> Result<()> {
        let requests = match &job {
            append::Job::Single(..) => 1,
            append::Job::Unit(requests, _) => requests.len() as u64,
            append::Job::Batch(requests, _) => requests.len() as u64,
        };
        self.counters
            .requests
            .fetch_add(requests, Ordering::Relaxed);
        self.appends.send(job).await.map_err(|_| committer_gone())
    }
}

fn committer_gone() -> StoreError {
    StoreError::Backend("postgres: the append committer stopped".into())
}

pub(crate) fn event_from_row(row: &Row) -> Result<RecordedEvent> {
    let col = |e: tokio_postgres::Error| StoreError::Corrupt(format!("event row: {e}"));
    // Borrowed from the row: the JSON is parsed, never copied as text.
    let data: &str = row.try_get("data").map_err(col)?;
    let metadata: &str = row.try_get("metadata").map_err(col)?;
    let hash: &[u8] = row.try_get("hash").map_err(col)?;
    let position = to_u64(row.try_get("position").map_err(col)?)?;
    let schema_version: i32 = row.try_get("schema_version").map_err(col)?;
    Ok(RecordedEvent {
        position,
        stream_id: row.try_get("stream_id").map_err(col)?,
        stream_version: to_u64(row.try_get("stream_version").map_err(col)?)?,
        event_id: row.try_get("event_id").map_err(col)?,
        event_type: row.try_get("event_type").map_err(col)?,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| StoreError::Corrupt(format!("schema version at {position}")))?,
        data: serde_json::from_str(data)
            .map_err(|e| StoreError::Corrupt(format!("data at {position}: {e}")))?,
        metadata: serde_json::from_str::<EventMetadata>(metadata)
            .map_err(|e| StoreError::Corrupt(format!("metadata at {position}: {e}")))?,
        recorded_at: row.try_get("recorded_at").map_err(col)?,
        hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("hash at {position} is not 32 bytes")))?,
        partition: row
            .try_get::<_, Option<String>>("partition")
            .map_err(col)?
            .map(Partition::from_stored)
            .transpose()?,
    })
}

/// A row of [`RAW_EVENT_COLUMNS`]: the data copied as text, the metadata
/// read for its actor only.
fn raw_event_from_row(row: &Row) -> Result<RawEvent> {
    let col = |e: tokio_postgres::Error| StoreError::Corrupt(format!("event row: {e}"));
    let position = to_u64(row.try_get(0).map_err(col)?)?;
    let schema_version: i32 = row.try_get(2).map_err(col)?;
    let data: &str = row.try_get(3).map_err(col)?;
    let metadata: &str = row.try_get(4).map_err(col)?;
    Ok(RawEvent {
        position,
        event_type: row.try_get(1).map_err(col)?,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| StoreError::Corrupt(format!("schema version at {position}")))?,
        data: data.to_owned(),
        actor: FoldMetadata::parse(metadata, position)?,
        recorded_at: row.try_get(5).map_err(col)?,
        partition: row
            .try_get::<_, Option<String>>(6)
            .map_err(col)?
            .map(Partition::from_stored)
            .transpose()?,
    })
}

fn access_from_row(row: &Row) -> Result<AccessRecord> {
    let col = |e: tokio_postgres::Error| StoreError::Corrupt(format!("access row: {e}"));
    Ok(AccessRecord {
        id: to_u64(row.try_get("id").map_err(col)?)?,
        access: NewAccess {
            at: row.try_get("at").map_err(col)?,
            viewer_id: row.try_get("viewer_id").map_err(col)?,
            viewer_profile: row.try_get("viewer_profile").map_err(col)?,
            subject_id: row.try_get("subject_id").map_err(col)?,
            operation: row.try_get("operation").map_err(col)?,
            service: row.try_get("service").map_err(col)?,
        },
    })
}

/// Raises a watch value, never lowers it.
pub(crate) fn bump(tx: &watch::Sender<Position>, p: Position) {
    tx.send_if_modified(|current| {
        if p > *current {
            *current = p;
            true
        } else {
            false
        }
    });
}

async fn read_head_position(pool: &Pool) -> Result<Position> {
    let client = pool.get().await.map_err(pool_err)?;
    let row = client
        .query_one("SELECT coalesce(max(position), 0) FROM events", &[])
        .await
        .map_err(pg("head"))?;
    to_u64(row.try_get(0).map_err(pg("head"))?)
}

/// Tells the other nodes about this node's appends, coalesced: while a NOTIFY
/// is in flight, later appends only raise the value sent next.
async fn notifier(pool: Pool, mut local: watch::Receiver<Position>) {
    while local.changed().await.is_ok() {
        let position = *local.borrow_and_update();
        let sent = async {
            let client = pool.get().await.map_err(pool_err)?;
            client
                .execute(
                    "SELECT pg_notify($1, $2)",
                    &[&CHANNEL, &position.to_string()],
                )
                .await
                .map_err(pg("notify"))
        }
        .await;
        if let Err(e) = sent {
            // Other nodes' fallback poll covers a lost notification.
            tracing::warn!(error = %e, position, "could not notify other nodes");
        }
    }
}

/// Keeps one LISTEN connection open and feeds other nodes' heads into `wake`.
async fn listener(config: tokio_postgres::Config, wake: watch::Sender<Position>) {
    let mut backoff = LISTEN_BACKOFF_MIN;
    loop {
        if let Err(e) = listen_once(&config, &wake, &mut backoff).await {
            tracing::warn!(error = %e, retry_in = ?backoff, "LISTEN connection lost");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    wake: &watch::Sender<Position>,
    backoff: &mut Duration,
) -> Result<()> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(pg("listen connect"))?;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(pg("listen"))?;
    *backoff = LISTEN_BACKOFF_MIN;
    // Appends made while this node was not listening were not heard: publish
    // the current head so followers catch up.
    let row = client
        .query_one("SELECT coalesce(max(position), 0) FROM events", &[])
        .await
        .map_err(pg("head"))?;
    bump(wake, to_u64(row.try_get(0).map_err(pg("head"))?)?);
    while let Some(payload) = rx.recv().await {
        match payload.parse::<Position>() {
            Ok(p) => bump(wake, p),
            Err(_) => tracing::warn!(payload, "ignoring a malformed notification"),
        }
    }
    match driver.await {
        Ok(Ok(())) => Err(StoreError::Backend(
            "postgres: LISTEN connection closed".into(),
        )),
        Ok(Err(e)) => Err(pg("listen")(e)),
        Err(e) => Err(StoreError::Backend(format!("postgres: listen task: {e}"))),
    }
}

const SAVE_SNAPSHOT: &str = "INSERT INTO snapshots (key, version, position, state, saved_at) \
     VALUES ($1, $2, $3, $4, now()) \
     ON CONFLICT (key) DO UPDATE SET version = EXCLUDED.version, \
     position = EXCLUDED.position, state = EXCLUDED.state, saved_at = now()";

fn snapshot_version(s: &Snapshot) -> Result<i32> {
    i32::try_from(s.version)
        .map_err(|_| StoreError::InvalidAppend("snapshot version out of range".into()))
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome> {
        let mut prepared = append::prepare(vec![request])?;
        let request = prepared
            .pop()
            .ok_or_else(|| StoreError::Backend("append prepared nothing".into()))?;
        let (reply, answer) = oneshot::channel();
        self.submit(append::Job::Single(request, reply)).await?;
        answer.await.map_err(|_| committer_gone())?
    }

    async fn append_batch(&self, requests: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>> {
        plan::validate(&requests)?;
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        let events: usize = requests.iter().map(|r| r.events.len()).sum();
        if events <= append::MAX_UNIT_EVENTS {
            self.submit(append::Job::Unit(append::prepare(requests)?, reply))
                .await?;
        } else {
            self.submit(append::Job::Batch(requests, reply)).await?;
        }
        answer.await.map_err(|_| committer_gone())?
    }

    async fn find_idempotent(&self, key: &str) -> Result<Option<AppendOutcome>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events e JOIN idempotency_keys k \
                 ON e.position BETWEEN k.first_position AND k.last_position \
                 WHERE k.key = $1 ORDER BY e.position"
            ))
            .await
            .map_err(pg("prepare find_idempotent"))?;
        let rows = client
            .query(&stmt, &[&key])
            .await
            .map_err(pg("find_idempotent"))?;
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(AppendOutcome {
            events: rows.iter().map(event_from_row).collect::<Result<_>>()?,
            deduplicated: true,
        }))
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: StreamVersion,
    ) -> Result<Vec<RecordedEvent>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version > $2 \
                 ORDER BY stream_version"
            ))
            .await
            .map_err(pg("prepare read_stream"))?;
        let rows = client
            .query(&stmt, &[&stream_id, &to_i64(after_version)?])
            .await
            .map_err(pg("read_stream"))?;
        rows.iter().map(event_from_row).collect()
    }

    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2"
            ))
            .await
            .map_err(pg("prepare read_all"))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&stmt, &[&to_i64(after)?, &limit])
            .await
            .map_err(pg("read_all"))?;
        rows.iter().map(event_from_row).collect()
    }

    async fn read_partitions(
        &self,
        after: Position,
        partitions: &[Partition],
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        self.partition_rows(EVENT_COLUMNS, after, partitions, limit, event_from_row)
            .await
    }

    async fn read_partitions_raw(
        &self,
        after: Position,
        partitions: &[Partition],
        limit: usize,
    ) -> Result<Vec<RawEvent>> {
        self.partition_rows(
            RAW_EVENT_COLUMNS,
            after,
            partitions,
            limit,
            raw_event_from_row,
        )
        .await
    }

    async fn first_unassigned(&self) -> Result<Option<Position>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_one(
                "SELECT min(position) FROM events WHERE partition IS NULL",
                &[],
            )
            .await
            .map_err(pg("first_unassigned"))?;
        row.try_get::<_, Option<i64>>(0)
            .map_err(pg("first_unassigned"))?
            .map(to_u64)
            .transpose()
    }

    async fn assign_partitions(&self, assignments: &[(Position, Partition)]) -> Result<u64> {
        if assignments.is_empty() {
            return Ok(0);
        }
        let positions = assignments
            .iter()
            .map(|(p, _)| to_i64(*p))
            .collect::<Result<Vec<_>>>()?;
        let names: Vec<&str> = assignments.iter().map(|(_, n)| n.as_str()).collect();
        let client = self.pool.get().await.map_err(pool_err)?;
        client
            .execute(
                "UPDATE events SET partition = a.name \
                 FROM unnest($1::bigint[], $2::text[]) AS a(position, name) \
                 WHERE events.position = a.position AND events.partition IS NULL",
                &[&positions, &names],
            )
            .await
            .map_err(pg("assign_partitions"))
    }

    async fn read_positions(&self, positions: &[Position]) -> Result<Vec<RecordedEvent>> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let positions = positions
            .iter()
            .map(|p| to_i64(*p))
            .collect::<Result<Vec<_>>>()?;
        let client = self.pool.get().await.map_err(pool_err)?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE position = ANY($1) ORDER BY position"
            ))
            .await
            .map_err(pg("prepare read_positions"))?;
        let rows = client
            .query(&stmt, &[&positions])
            .await
            .map_err(pg("read_positions"))?;
        rows.iter().map(event_from_row).collect()
    }

    async fn head(&self) -> Result<Position> {
        read_head_position(&self.pool).await
    }

    fn wakeups(&self) -> watch::Receiver<Position> {
        self.wake.subscribe()
    }

    async fn load_snapshot(&self, key: &str) -> Result<Option<Snapshot>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_opt(
                "SELECT version, position, state FROM snapshots WHERE key = $1",
                &[&key],
            )
            .await
            .map_err(pg("load_snapshot"))?;
        let Some(row) = row else { return Ok(None) };
        let version: i32 = row.try_get(0).map_err(pg("snapshot version"))?;
        Ok(Some(Snapshot {
            key: key.to_owned(),
            version: u32::try_from(version)
                .map_err(|_| StoreError::Corrupt("negative snapshot version".into()))?,
            position: to_u64(row.try_get(1).map_err(pg("snapshot position"))?)?,
            state: row.try_get(2).map_err(pg("snapshot state"))?,
        }))
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let version = snapshot_version(&snapshot)?;
        client
            .execute(
                SAVE_SNAPSHOT,
                &[
                    &snapshot.key,
                    &version,
                    &to_i64(snapshot.position)?,
                    &snapshot.state,
                ],
            )
            .await
            .map_err(pg("save_snapshot"))?;
        Ok(())
    }

    async fn save_snapshots(&self, snapshots: Vec<Snapshot>) -> Result<()> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg("begin snapshots"))?;
        let stmt = tx
            .prepare_cached(SAVE_SNAPSHOT)
            .await
            .map_err(pg("prepare snapshots"))?;
        for s in &snapshots {
            // A refusal here drops the transaction: nothing of the batch stays.
            let version = snapshot_version(s)?;
            tx.execute(&stmt, &[&s.key, &version, &to_i64(s.position)?, &s.state])
                .await
                .map_err(pg("save_snapshots"))?;
        }
        tx.commit().await.map_err(pg("commit snapshots"))?;
        Ok(())
    }

    async fn record_access(&self, entries: Vec<NewAccess>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let n = i64::try_from(entries.len())
            .map_err(|_| StoreError::InvalidAppend("too many access records".into()))?;
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg("begin access"))?;
        // The counter row stays locked until commit: ids are allocated in
        // commit order, like positions, and never reused after a purge.
        let last: i64 = tx
            .query_one(
                "UPDATE access_log_counter SET last_id = last_id + $1 RETURNING last_id",
                &[&n],
            )
            .await
            .map_err(pg("allocate access ids"))?
            .try_get(0)
            .map_err(pg("allocate access ids"))?;
        let ids: Vec<i64> = (last - n + 1..=last).collect();
        let at: Vec<DateTime<Utc>> = entries.iter().map(|e| e.at).collect();
        let viewer: Vec<Uuid> = entries.iter().map(|e| e.viewer_id).collect();
        let profile: Vec<&str> = entries.iter().map(|e| e.viewer_profile.as_str()).collect();
        let subject: Vec<Option<Uuid>> = entries.iter().map(|e| e.subject_id).collect();
        let operation: Vec<&str> = entries.iter().map(|e| e.operation.as_str()).collect();
        let service: Vec<&str> = entries.iter().map(|e| e.service.as_str()).collect();
        tx.execute(
            "INSERT INTO access_log (id, at, viewer_id, viewer_profile, subject_id, operation, service) \
             SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::uuid[], $4::text[], \
             $5::uuid[], $6::text[], $7::text[])",
            &[&ids, &at, &viewer, &profile, &subject, &operation, &service],
        )
        .await
        .map_err(pg("record_access"))?;
        tx.commit().await.map_err(pg("commit access"))?;
        Ok(())
    }

    async fn read_access(&self, after: u64, limit: usize) -> Result<Vec<AccessRecord>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT id, at, viewer_id, viewer_profile, subject_id, operation, service \
                 FROM access_log WHERE id > $1 ORDER BY id LIMIT $2",
                &[&to_i64(after)?, &limit],
            )
            .await
            .map_err(pg("read_access"))?;
        rows.iter().map(access_from_row).collect()
    }

    async fn access_about(&self, subject_id: Uuid) -> Result<Vec<AccessRecord>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let rows = client
            .query(
                "SELECT id, at, viewer_id, viewer_profile, subject_id, operation, service \
                 FROM access_log WHERE subject_id = $1 ORDER BY id",
                &[&subject_id],
            )
            .await
            .map_err(pg("access_about"))?;
        rows.iter().map(access_from_row).collect()
    }

    async fn purge_access_before(&self, before: DateTime<Utc>) -> Result<u64> {
        let client = self.pool.get().await.map_err(pool_err)?;
        client
            .execute(
                "DELETE FROM access_log WHERE at < $1 \
                 AND id <= (SELECT last_access_id FROM usage_checkpoint)",
                &[&before],
            )
            .await
            .map_err(pg("purge_access_before"))
    }

    fn subject_keys(&self) -> Option<Arc<dyn crate::vault::SubjectKeys>> {
        Some(Arc::new(PostgresKeys {
            pool: self.pool.clone(),
        }))
    }

    fn usage(&self) -> Option<Arc<dyn crate::usage::UsageStore>> {
        Some(Arc::new(crate::usage::PostgresUsage {
            pool: self.pool.clone(),
        }))
    }

    fn communication(&self) -> Option<Arc<dyn crate::communication::CommunicationStore>> {
        Some(Arc::new(crate::communication::PostgresCommunication {
            pool: self.pool.clone(),
        }))
    }

    fn nodes(&self) -> Option<Arc<dyn crate::nodes::NodeRegistry>> {
        Some(Arc::new(crate::nodes::PostgresNodes {
            pool: self.pool.clone(),
        }))
    }
}

/// The `subject_keys` table of a PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PostgresKeys {
    pool: Pool,
}

fn key_from_row(row: &Row) -> Result<(Uuid, Option<crate::vault::SubjectKey>)> {
    let subject: Uuid = row.try_get(0).map_err(pg("subject_keys"))?;
    let bytes: Option<Vec<u8>> = row.try_get(1).map_err(pg("subject_keys"))?;
    let key = match bytes {
        Some(b) => Some(
            b.try_into()
                .map_err(|_| StoreError::Corrupt(format!("key of {subject} is not 32 bytes")))?,
        ),
        None => None,
    };
    Ok((subject, key))
}

#[async_trait]
impl crate::vault::SubjectKeys for PostgresKeys {
    async fn key_for_write(
        &self,
        subject: Uuid,
        fresh: crate::vault::SubjectKey,
    ) -> Result<Option<crate::vault::SubjectKey>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        // Two writers creating the same subject's key at once: the first
        // insert wins and both read it back.
        client
            .execute(
                "INSERT INTO subject_keys (subject_id, key_bytes, created_at) \
                 VALUES ($1, $2, now()) ON CONFLICT (subject_id) DO NOTHING",
                &[&subject, &fresh.as_slice()],
            )
            .await
            .map_err(pg("create subject key"))?;
        let row = client
            .query_one(
                "SELECT subject_id, key_bytes FROM subject_keys WHERE subject_id = $1",
                &[&subject],
            )
            .await
            .map_err(pg("read subject key"))?;
        Ok(key_from_row(&row)?.1)
    }

    async fn keys(
        &self,
        subjects: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, Option<crate::vault::SubjectKey>>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let rows = client
            .query(
                "SELECT subject_id, key_bytes FROM subject_keys WHERE subject_id = ANY($1)",
                &[&subjects],
            )
            .await
            .map_err(pg("read subject keys"))?;
        rows.iter().map(key_from_row).collect()
    }

    async fn destroy(&self, subjects: Vec<Uuid>, at: DateTime<Utc>) -> Result<u64> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg("begin destroy"))?;
        let live = tx
            .execute(
                "UPDATE subject_keys SET key_bytes = NULL, destroyed_at = $2 \
                 WHERE subject_id = ANY($1) AND key_bytes IS NOT NULL",
                &[&subjects, &at],
            )
            .await
            .map_err(pg("destroy subject keys"))?;
        tx.execute(
            "INSERT INTO subject_keys (subject_id, key_bytes, created_at, destroyed_at) \
             SELECT s, NULL, $2, $2 FROM UNNEST($1::uuid[]) AS s \
             ON CONFLICT (subject_id) DO NOTHING",
            &[&subjects, &at],
        )
        .await
        .map_err(pg("record destroyed keys"))?;
        // Snapshots of the read model hold decrypted text: the next start
        // rebuilds from the log instead.
        tx.execute("DELETE FROM snapshots", &[])
            .await
            .map_err(pg("drop snapshots"))?;
        tx.commit().await.map_err(pg("commit destroy"))?;
        Ok(live)
    }
}
