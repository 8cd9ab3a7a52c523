//! The embedded SQLite backend: the zero-setup default, one file
//! `<data_dir>/registre.db`.
//!
//! One writer connection, used under `BEGIN IMMEDIATE` on the blocking pool,
//! serialises appends as the advisory lock does on PostgreSQL, so both
//! backends share the same semantics and the same hash chain. WAL lets readers
//! (a small pool of their own connections) run beside the writer;
//! `synchronous=FULL` makes an acknowledged append survive a power cut.
//! Wake-ups are this process's own appends: one process owns the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::watch;
use uuid::Uuid;

use crate::chain::timestamp_text;
use crate::plan::{self, Head, KeyRecord};
use crate::postgres::bump;
use crate::schema;
use crate::{
    AccessRecord, AppendOutcome, AppendRequest, EventMetadata, EventStore, FoldMetadata, NewAccess,
    Partition, Position, RawEvent, RecordedEvent, Result, Snapshot, StoreError, StreamVersion,
};

/// The database file inside the data directory.
pub const FILE_NAME: &str = "registre.db";

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle reader connections kept open.
const MAX_IDLE_READERS: usize = 8;

const EVENT_COLUMNS: &str = "position, stream_id, stream_version, event_id, event_type, \
     schema_version, data, metadata, recorded_at, hash, partition";
/// [`raw_event_from_row`] reads them by index, in this order.
const RAW_EVENT_COLUMNS: &str =
    "position, event_type, schema_version, data, metadata, recorded_at, partition";

fn lite(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Backend(format!("sqlite: {context}: {e}"))
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::InvalidAppend(format!("{v} is out of range")))
}

fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative value {v}")))
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {text:?}: {e}")))
}

fn open_connection(path: &Path, write: bool) -> Result<Connection> {
    // Readers open read-write with query_only: a read-only connection cannot
    // recover the WAL index after a crash of the writer.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(lite("open"))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(lite("busy_timeout"))?;
    if write {
        // journal_mode is persistent in the file; synchronous is per connection.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(lite("journal_mode"))?;
    } else {
        conn.pragma_update(None, "query_only", true)
            .map_err(lite("query_only"))?;
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(lite("synchronous"))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(lite("foreign_keys"))?;
    Ok(conn)
}

/// Applies the pending migrations on `conn`. `BEGIN IMMEDIATE` makes two
/// processes opening the same file at once apply each migration once. Returns
/// the versions this call applied.
pub fn migrate_sqlite(conn: &mut Connection) -> Result<Vec<u32>> {
    record_checksums(conn)?;
    let mut done = Vec::new();
    for m in registre_migrations::SQLITE {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(lite("begin migration"))?;
        let applied: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [m.version],
                |r| r.get(0),
            )
            .map_err(lite("read schema_migrations"))?;
        if applied {
            continue;
        }
        tx.execute_batch(m.sql).map_err(|e| {
            StoreError::Backend(format!("sqlite: migration {} ({}): {e}", m.version, m.name))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, sha256) VALUES (?1, ?2, ?3)",
            params![m.version, m.name, schema::checksum(m.sql)],
        )
        .map_err(lite("record migration"))?;
        tx.commit().map_err(lite("commit migration"))?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        done.push(m.version);
    }
    Ok(done)
}

/// Creates the bookkeeping table (adding the checksum column to one made
/// before checksums were recorded), refuses a changed applied migration and
/// records the checksums missing. One immediate transaction: two processes
/// opening an old file at once add the column once.
fn record_checksums(conn: &mut Connection) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(lite("begin migration bookkeeping"))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version     INTEGER PRIMARY KEY,
            name        TEXT NOT NULL,
            applied_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            sha256      TEXT
        )",
    )
    .map_err(lite("create schema_migrations"))?;
    let has_column: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info('schema_migrations') \
             WHERE name = 'sha256')",
            [],
            |r| r.get(0),
        )
        .map_err(lite("read schema_migrations columns"))?;
    if !has_column {
        tx.execute_batch("ALTER TABLE schema_migrations ADD COLUMN sha256 TEXT")
            .map_err(lite("add schema_migrations.sha256"))?;
    }
    let applied: Vec<schema::Applied> = {
        let mut stmt = tx
            .prepare("SELECT version, sha256 FROM schema_migrations")
            .map_err(lite("read schema_migrations"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, u32>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .map_err(lite("read schema_migrations"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(lite("read schema_migrations"))?
    };
    for m in schema::verify("sqlite", registre_migrations::SQLITE, &applied)? {
        tx.execute(
            "UPDATE schema_migrations SET sha256 = ?2 WHERE version = ?1 AND sha256 IS NULL",
            params![m.version, schema::checksum(m.sql)],
        )
        .map_err(lite("record migration checksum"))?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "recorded migration checksum"
        );
    }
    tx.commit().map_err(lite("commit migration bookkeeping"))
}

/// Opens `<data_dir>/registre.db` (creating it) and migrates it.
pub fn migrate_dir(data_dir: &Path) -> Result<Vec<u32>> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        StoreError::Backend(format!("sqlite: cannot create {}: {e}", data_dir.display()))
    })?;
    let mut conn = open_connection(&data_dir.join(FILE_NAME), true)?;
    migrate_sqlite(&mut conn)
}

/// Runs `f` on tokio's blocking pool: rusqlite calls block, and must not
/// stall the runtime's worker threads.
async fn on_blocking_thread<T: Send + 'static>(
    inner: &Arc<Inner>,
    f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
) -> Result<T> {
    let inner = inner.clone();
    tokio::task::spawn_blocking(move || f(&inner))
        .await
        .map_err(|e| StoreError::Backend(format!("sqlite: task: {e}")))?
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl Inner {
    /// Runs `f` on a reader connection, opening one when none is idle.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let idle = self.readers.lock().pop();
        let conn = match idle {
            Some(c) => c,
            None => open_connection(&self.path, false)?,
        };
        let result = f(&conn);
        let mut readers = self.readers.lock();
        if readers.len() < MAX_IDLE_READERS {
            readers.push(conn);
        }
        result
    }
}

/// The SQLite event store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
    wake: watch::Sender<Position>,
}

impl SqliteStore {
    /// Opens (creating it if needed) `<data_dir>/registre.db` and migrates it.
    pub async fn open(data_dir: &Path) -> Result<Arc<SqliteStore>> {
        let data_dir = data_dir.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(&data_dir))
            .await
            .map_err(|e| StoreError::Backend(format!("sqlite: open task: {e}")))?
    }

    fn open_blocking(data_dir: &Path) -> Result<Arc<SqliteStore>> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Backend(format!("sqlite: cannot create {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join(FILE_NAME);
        let mut writer = open_connection(&path, true)?;
        migrate_sqlite(&mut writer)?;
        let head: i64 = writer
            .query_row("SELECT coalesce(max(position), 0) FROM events", [], |r| {
                r.get(0)
            })
            .map_err(lite("head"))?;
        let (wake, _) = watch::channel(to_u64(head)?);
        Ok(Arc::new(SqliteStore {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
            }),
            wake,
        }))
    }

    /// The database file, for tools and tests that need raw SQL.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        on_blocking_thread(&self.inner, f).await
    }

    /// The rows of `columns` after `after` in `partitions`, in position order.
    async fn partition_rows<T: Send + 'static>(
        &self,
        columns: &'static str,
        after: Position,
        partitions: &[Partition],
        limit: usize,
        from_row: fn(&rusqlite::Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        if partitions.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let after = to_i64(after)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let names = serde_json::to_string(partitions)
            .map_err(|e| StoreError::Backend(format!("sqlite: partition names: {e}")))?;
        self.blocking(move |inner| {
            inner.read(|conn| {
                query_rows(
                    conn,
                    &format!(
                        "SELECT {columns} FROM events WHERE position > ?1 \
                         AND partition IN (SELECT value FROM json_each(?2)) \
                         ORDER BY position LIMIT ?3"
                    ),
                    params![after, names, limit],
                    from_row,
                )
            })
        })
        .await
    }

    async fn append_many(&self, requests: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>> {
        plan::validate(&requests)?;
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let (outcomes, new_head) = self
            .blocking(move |inner| {
                let mut conn = inner.writer.lock();
                append_blocking(&mut conn, &requests)
            })
            .await?;
        if let Some(p) = new_head {
            bump(&self.wake, p);
        }
        Ok(outcomes)
    }
}

fn append_blocking(
    conn: &mut Connection,
    requests: &[AppendRequest],
) -> Result<(Vec<AppendOutcome>, Option<Position>)> {
    let (streams, keys) = plan::lookups(requests);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(lite("begin append"))?;

    let head = tx
        .prepare_cached(
            "SELECT position, hash, recorded_at FROM events ORDER BY position DESC LIMIT 1",
        )
        .map_err(lite("prepare head"))?
        .query_row([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .optional()
        .map_err(lite("head"))?;
    let head = match head {
        None => Head::empty(),
        Some((position, hash, recorded_at)) => Head {
            position: to_u64(position)?,
            hash: hash
                .try_into()
                .map_err(|_| StoreError::Corrupt("head hash is not 32 bytes".into()))?,
            recorded_at: Some(parse_time(&recorded_at)?),
        },
    };

    let mut versions: HashMap<String, StreamVersion> = HashMap::new();
    {
        let mut stmt = tx
            .prepare_cached("SELECT max(stream_version) FROM events WHERE stream_id = ?1")
            .map_err(lite("prepare stream version"))?;
        for s in &streams {
            let v: Option<i64> = stmt
                .query_row([s], |r| r.get(0))
                .map_err(lite("stream version"))?;
            if let Some(v) = v {
                versions.insert(s.clone(), to_u64(v)?);
            }
        }
    }
    let mut used: HashMap<String, KeyRecord> = HashMap::new();
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT fingerprint, first_position, last_position FROM idempotency_keys \
                 WHERE key = ?1",
            )
            .map_err(lite("prepare idempotency"))?;
        for k in &keys {
            let found = stmt
                .query_row([k], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .optional()
                .map_err(lite("idempotency"))?;
            if let Some((fingerprint, first, last)) = found {
                used.insert(
                    k.clone(),
                    KeyRecord {
                        fingerprint,
                        first_position: to_u64(first)?,
                        last_position: to_u64(last)?,
                    },
                );
            }
        }
    }

    let plan = plan::plan(requests, &head, &versions, &used, Utc::now())?;
    let earlier = read_positions_on(&tx, &plan.dedup_positions())?;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO events (position, stream_id, stream_version, event_id, event_type, \
                 schema_version, data, metadata, occurred_at, recorded_at, hash, partition) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .map_err(lite("prepare insert"))?;
        for row in &plan.rows {
            let e = &row.event;
            insert
                .execute(params![
                    to_i64(e.position)?,
                    e.stream_id,
                    to_i64(e.stream_version)?,
                    e.event_id.as_bytes().as_slice(),
                    e.event_type,
                    e.schema_version,
                    row.data_text,
                    row.metadata_text,
                    timestamp_text(&e.metadata.occurred_at),
                    timestamp_text(&e.recorded_at),
                    e.hash.as_slice(),
                    e.partition.as_ref().map(Partition::as_str),
                ])
                .map_err(|err| match err {
                    rusqlite::Error::SqliteFailure(f, Some(ref msg))
                        if f.code == rusqlite::ErrorCode::ConstraintViolation
                            && msg.contains("events.event_id") =>
                    {
                        StoreError::InvalidAppend("an event id is already in the log".into())
                    }
                    other => StoreError::Backend(format!("sqlite: insert event: {other}")),
                })?;
        }
        let mut insert_key = tx
            .prepare_cached(
                "INSERT INTO idempotency_keys (key, fingerprint, first_position, last_position) \
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(lite("prepare insert key"))?;
        for (key, fingerprint, first, last) in &plan.keys {
            insert_key
                .execute(params![key, fingerprint, to_i64(*first)?, to_i64(*last)?])
                .map_err(lite("insert idempotency key"))?;
        }
    }
    tx.commit().map_err(lite("commit append"))?;
    let new_head = plan.rows.last().map(|r| r.event.position);
    Ok((plan.into_outcomes(earlier)?, new_head))
}

fn event_from_row(r: &rusqlite::Row<'_>) -> Result<RecordedEvent> {
    let col = |e: rusqlite::Error| StoreError::Corrupt(format!("event row: {e}"));
    let position = to_u64(r.get(0).map_err(col)?)?;
    let event_id: Vec<u8> = r.get(3).map_err(col)?;
    let data = text_column(r, 6)?;
    let metadata = text_column(r, 7)?;
    let recorded_at: String = r.get(8).map_err(col)?;
    let hash: Vec<u8> = r.get(9).map_err(col)?;
    Ok(RecordedEvent {
        position,
        stream_id: r.get(1).map_err(col)?,
        stream_version: to_u64(r.get(2).map_err(col)?)?,
        event_id: Uuid::from_slice(&event_id)
            .map_err(|e| StoreError::Corrupt(format!("event id at {position}: {e}")))?,
        event_type: r.get(4).map_err(col)?,
        schema_version: r.get(5).map_err(col)?,
        data: serde_json::from_str(data)
            .map_err(|e| StoreError::Corrupt(format!("data at {position}: {e}")))?,
        metadata: serde_json::from_str::<EventMetadata>(metadata)
            .map_err(|e| StoreError::Corrupt(format!("metadata at {position}: {e}")))?,
        recorded_at: parse_time(&recorded_at)?,
        hash: hash
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("hash at {position} is not 32 bytes")))?,
        partition: r
            .get::<_, Option<String>>(10)
            .map_err(col)?
            .map(Partition::from_stored)
            .transpose()?,
    })
}

/// Text column `i` of a row, borrowed: the JSON is parsed, never copied as
/// a `String` first.
fn text_column<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str> {
    r.get_ref(i)
        .map_err(|e| StoreError::Corrupt(format!("event row: {e}")))?
        .as_str()
        .map_err(|e| StoreError::Corrupt(format!("event row: {e}")))
}

/// A row of [`RAW_EVENT_COLUMNS`]: the data copied as text, the metadata
/// read for its actor only.
fn raw_event_from_row(r: &rusqlite::Row<'_>) -> Result<RawEvent> {
    let col = |e: rusqlite::Error| StoreError::Corrupt(format!("event row: {e}"));
    let position = to_u64(r.get(0).map_err(col)?)?;
    Ok(RawEvent {
        position,
        event_type: r.get(1).map_err(col)?,
        schema_version: r.get(2).map_err(col)?,
        data: text_column(r, 3)?.to_owned(),
        actor: FoldMetadata::parse(text_column(r, 4)?, position)?,
        recorded_at: parse_time(text_column(r, 5)?)?,
        partition: r
            .get::<_, Option<String>>(6)
            .map_err(col)?
            .map(Partition::from_stored)
            .transpose()?,
    })
}

fn query_events(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RecordedEvent>> {
    query_rows(conn, sql, params, event_from_row)
}

fn query_rows<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    from_row: impl Fn(&rusqlite::Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(lite("prepare read"))?;
    let mut rows = stmt.query(params).map_err(lite("read"))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(lite("read"))? {
        out.push(from_row(row)?);
    }
    Ok(out)
}

fn read_positions_on(conn: &Connection, positions: &[Position]) -> Result<Vec<RecordedEvent>> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE position = ?1");
    let mut out = Vec::with_capacity(positions.len());
    let mut sorted = positions.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    for p in sorted {
        out.extend(query_events(conn, &sql, [to_i64(p)?])?);
    }
    Ok(out)
}

fn access_from_row(r: &rusqlite::Row<'_>) -> Result<AccessRecord> {
    let col = |e: rusqlite::Error| StoreError::Corrupt(format!("access row: {e}"));
    let uuid = |bytes: Vec<u8>| {
        Uuid::from_slice(&bytes).map_err(|e| StoreError::Corrupt(format!("access uuid: {e}")))
    };
    let at: String = r.get(1).map_err(col)?;
    let subject: Option<Vec<u8>> = r.get(4).map_err(col)?;
    Ok(AccessRecord {
        id: to_u64(r.get(0).map_err(col)?)?,
        access: NewAccess {
            at: parse_time(&at)?,
            viewer_id: uuid(r.get(2).map_err(col)?)?,
            viewer_profile: r.get(3).map_err(col)?,
            subject_id: subject.map(uuid).transpose()?,
            operation: r.get(5).map_err(col)?,
            service: r.get(6).map_err(col)?,
        },
    })
}

fn query_access(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<AccessRecord>> {
    let mut stmt = conn.prepare_cached(sql).map_err(lite("prepare access"))?;
    let mut rows = stmt.query(params).map_err(lite("read access"))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(lite("read access"))? {
        out.push(access_from_row(row)?);
    }
    Ok(out)
}

const ACCESS_COLUMNS: &str = "id, at, viewer_id, viewer_profile, subject_id, operation, service";

const SAVE_SNAPSHOT: &str = "INSERT INTO snapshots (key, version, position, state, saved_at) \
     VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) \
     ON CONFLICT (key) DO UPDATE SET version = excluded.version, \
     position = excluded.position, state = excluded.state, saved_at = excluded.saved_at";

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome> {
        let mut outcomes = self.append_many(vec![request]).await?;
        outcomes
            .pop()
            .ok_or_else(|| StoreError::Backend("append produced no outcome".into()))
    }

    async fn append_batch(&self, requests: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>> {
        self.append_many(requests).await
    }

    async fn find_idempotent(&self, key: &str) -> Result<Option<AppendOutcome>> {
        let key = key.to_owned();
        self.blocking(move |inner| {
            inner.read(|conn| {
                let events = query_events(
                    conn,
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events e JOIN idempotency_keys k \
                         ON e.position BETWEEN k.first_position AND k.last_position \
                         WHERE k.key = ?1 ORDER BY e.position"
                    ),
                    [&key],
                )?;
                Ok((!events.is_empty()).then_some(AppendOutcome {
                    events,
                    deduplicated: true,
                }))
            })
        })
        .await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: StreamVersion,
    ) -> Result<Vec<RecordedEvent>> {
        let stream_id = stream_id.to_owned();
        let after = to_i64(after_version)?;
        self.blocking(move |inner| {
            inner.read(|conn| {
                query_events(
                    conn,
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events \
                         WHERE stream_id = ?1 AND stream_version > ?2 ORDER BY stream_version"
                    ),
                    params![stream_id, after],
                )
            })
        })
        .await
    }

    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>> {
        let after = to_i64(after)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.blocking(move |inner| {
            inner.read(|conn| {
                query_events(
                    conn,
                    &format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 \
                         ORDER BY position LIMIT ?2"
                    ),
                    params![after, limit],
                )
            })
        })
        .await
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
        self.blocking(|inner| {
            inner.read(|conn| {
                let first: Option<i64> = conn
                    .query_row(
                        "SELECT min(position) FROM events WHERE partition IS NULL",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(lite("first_unassigned"))?;
                first.map(to_u64).transpose()
            })
        })
        .await
    }

    async fn assign_partitions(&self, assignments: &[(Position, Partition)]) -> Result<u64> {
        if assignments.is_empty() {
            return Ok(0);
        }
        let assignments = assignments
            .iter()
            .map(|(p, n)| Ok((to_i64(*p)?, n.as_str().to_owned())))
            .collect::<Result<Vec<_>>>()?;
        self.blocking(move |inner| {
            let mut conn = inner.writer.lock();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(lite("begin assign"))?;
            let mut set = 0u64;
            {
                let mut update = tx
                    .prepare_cached(
                        "UPDATE events SET partition = ?2 WHERE position = ?1 AND partition IS NULL",
                    )
                    .map_err(lite("prepare assign"))?;
                for (position, name) in &assignments {
                    set += update
                        .execute(params![position, name])
                        .map_err(lite("assign partition"))? as u64;
                }
            }
            tx.commit().map_err(lite("commit assign"))?;
            Ok(set)
        })
        .await
    }

    async fn read_positions(&self, positions: &[Position]) -> Result<Vec<RecordedEvent>> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let positions = positions.to_vec();
        self.blocking(move |inner| inner.read(|conn| read_positions_on(conn, &positions)))
            .await
    }

    async fn head(&self) -> Result<Position> {
        self.blocking(|inner| {
            inner.read(|conn| {
                let head: i64 = conn
                    .query_row("SELECT coalesce(max(position), 0) FROM events", [], |r| {
                        r.get(0)
                    })
                    .map_err(lite("head"))?;
                to_u64(head)
            })
        })
        .await
    }

    fn wakeups(&self) -> watch::Receiver<Position> {
        self.wake.subscribe()
    }

    async fn load_snapshot(&self, key: &str) -> Result<Option<Snapshot>> {
        let key = key.to_owned();
        self.blocking(move |inner| {
            inner.read(|conn| {
                let row = conn
                    .query_row(
                        "SELECT version, position, state FROM snapshots WHERE key = ?1",
                        [&key],
                        |r| {
                            Ok((
                                r.get::<_, u32>(0)?,
                                r.get::<_, i64>(1)?,
                                r.get::<_, Vec<u8>>(2)?,
                            ))
                        },
                    )
                    .optional()
                    .map_err(lite("load_snapshot"))?;
                row.map(|(version, position, state)| {
                    Ok(Snapshot {
                        key: key.clone(),
                        version,
                        position: to_u64(position)?,
                        state,
                    })
                })
                .transpose()
            })
        })
        .await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        let position = to_i64(snapshot.position)?;
        self.blocking(move |inner| {
            let conn = inner.writer.lock();
            conn.execute(
                SAVE_SNAPSHOT,
                params![snapshot.key, snapshot.version, position, snapshot.state],
            )
            .map_err(lite("save_snapshot"))?;
            Ok(())
        })
        .await
    }

    async fn save_snapshots(&self, snapshots: Vec<Snapshot>) -> Result<()> {
        self.blocking(move |inner| {
            let mut conn = inner.writer.lock();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(lite("begin snapshots"))?;
            {
                let mut stmt = tx
                    .prepare_cached(SAVE_SNAPSHOT)
                    .map_err(lite("prepare snapshots"))?;
                for s in &snapshots {
                    // A refusal here rolls the transaction back (dropped).
                    let position = to_i64(s.position)?;
                    stmt.execute(params![s.key, s.version, position, s.state])
                        .map_err(lite("save_snapshots"))?;
                }
            }
            tx.commit().map_err(lite("commit snapshots"))?;
            Ok(())
        })
        .await
    }

    async fn record_access(&self, entries: Vec<NewAccess>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.blocking(move |inner| {
            let mut conn = inner.writer.lock();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(lite("begin access"))?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO access_log (at, viewer_id, viewer_profile, subject_id, \
                         operation, service) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .map_err(lite("prepare access"))?;
                for e in &entries {
                    stmt.execute(params![
                        timestamp_text(&e.at),
                        e.viewer_id.as_bytes().as_slice(),
                        e.viewer_profile,
                        e.subject_id.as_ref().map(|s| s.as_bytes().to_vec()),
                        e.operation,
                        e.service,
                    ])
                    .map_err(lite("record_access"))?;
                }
            }
            tx.commit().map_err(lite("commit access"))
        })
        .await
    }

    async fn read_access(&self, after: u64, limit: usize) -> Result<Vec<AccessRecord>> {
        let after = to_i64(after)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.blocking(move |inner| {
            inner.read(|conn| {
                query_access(
                    conn,
                    &format!(
                        "SELECT {ACCESS_COLUMNS} FROM access_log WHERE id > ?1 ORDER BY id LIMIT ?2"
                    ),
                    params![after, limit],
                )
            })
        })
        .await
    }

    async fn access_about(&self, subject_id: Uuid) -> Result<Vec<AccessRecord>> {
        self.blocking(move |inner| {
            inner.read(|conn| {
                query_access(
                    conn,
                    &format!(
                        "SELECT {ACCESS_COLUMNS} FROM access_log WHERE subject_id = ?1 ORDER BY id"
                    ),
                    [subject_id.as_bytes().as_slice()],
                )
            })
        })
        .await
    }

    async fn purge_access_before(&self, before: DateTime<Utc>) -> Result<u64> {
        let before = timestamp_text(&before);
        self.blocking(move |inner| {
            let conn = inner.writer.lock();
            let n = conn
                .execute(
                    "DELETE FROM access_log WHERE at < ?1 \
                     AND id <= (SELECT last_access_id FROM usage_checkpoint)",
                    [before],
                )
                .map_err(lite("purge_access_before"))?;
            Ok(n as u64)
        })
        .await
    }

    fn subject_keys(&self) -> Option<Arc<dyn crate::vault::SubjectKeys>> {
        Some(Arc::new(SqliteKeys {
            inner: self.inner.clone(),
        }))
    }

    fn usage(&self) -> Option<Arc<dyn crate::usage::UsageStore>> {
        Some(Arc::new(crate::usage::SqliteUsage {
            store: Arc::new(self.clone()),
        }))
    }

    fn communication(&self) -> Option<Arc<dyn crate::communication::CommunicationStore>> {
        let dir = self.inner.path.parent()?.join("attachments");
        Some(Arc::new(crate::communication::SqliteCommunication {
            store: Arc::new(self.clone()),
            blobs: dir,
        }))
    }

    fn nodes(&self) -> Option<Arc<dyn crate::nodes::NodeRegistry>> {
        Some(Arc::new(crate::nodes::SqliteNodes {
            store: Arc::new(self.clone()),
        }))
    }
}

impl SqliteStore {
    /// Runs `f` on a reader connection on the blocking pool (the usage tables).
    pub(crate) async fn on_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.blocking(move |inner| inner.read(f)).await
    }

    /// Runs `f` on the writer connection on the blocking pool (the usage tables).
    pub(crate) async fn on_writer<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.blocking(move |inner| f(&mut inner.writer.lock()))
            .await
    }
}

/// The `subject_keys` table of a SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteKeys {
    inner: Arc<Inner>,
}

impl SqliteKeys {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        on_blocking_thread(&self.inner, f).await
    }
}

fn key_bytes(subject: Uuid, bytes: Option<Vec<u8>>) -> Result<Option<crate::vault::SubjectKey>> {
    match bytes {
        Some(b) => Ok(Some(b.try_into().map_err(|_| {
            StoreError::Corrupt(format!("key of {subject} is not 32 bytes"))
        })?)),
        None => Ok(None),
    }
}

#[async_trait]
impl crate::vault::SubjectKeys for SqliteKeys {
    async fn key_for_write(
        &self,
        subject: Uuid,
        fresh: crate::vault::SubjectKey,
    ) -> Result<Option<crate::vault::SubjectKey>> {
        self.blocking(move |inner| {
            let conn = inner.writer.lock();
            conn.execute(
                "INSERT OR IGNORE INTO subject_keys (subject_id, key_bytes, created_at) \
                 VALUES (?1, ?2, ?3)",
                params![
                    subject.as_bytes().as_slice(),
                    fresh.as_slice(),
                    timestamp_text(&Utc::now())
                ],
            )
            .map_err(lite("create subject key"))?;
            let bytes: Option<Vec<u8>> = conn
                .query_row(
                    "SELECT key_bytes FROM subject_keys WHERE subject_id = ?1",
                    [subject.as_bytes().as_slice()],
                    |r| r.get(0),
                )
                .map_err(lite("read subject key"))?;
            key_bytes(subject, bytes)
        })
        .await
    }

    async fn keys(
        &self,
        subjects: Vec<Uuid>,
    ) -> Result<HashMap<Uuid, Option<crate::vault::SubjectKey>>> {
        self.blocking(move |inner| {
            inner.read(|conn| {
                let mut stmt = conn
                    .prepare_cached("SELECT key_bytes FROM subject_keys WHERE subject_id = ?1")
                    .map_err(lite("prepare subject keys"))?;
                let mut out = HashMap::new();
                for s in subjects {
                    let found: Option<Option<Vec<u8>>> = stmt
                        .query_row([s.as_bytes().as_slice()], |r| r.get(0))
                        .optional()
                        .map_err(lite("read subject keys"))?;
                    if let Some(bytes) = found {
                        out.insert(s, key_bytes(s, bytes)?);
                    }
                }
                Ok(out)
            })
        })
        .await
    }

    async fn destroy(&self, subjects: Vec<Uuid>, at: DateTime<Utc>) -> Result<u64> {
        self.blocking(move |inner| {
            let mut conn = inner.writer.lock();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(lite("begin destroy"))?;
            let at = timestamp_text(&at);
            let mut live = 0u64;
            for s in &subjects {
                let id = s.as_bytes().as_slice();
                live += tx
                    .execute(
                        "UPDATE subject_keys SET key_bytes = NULL, destroyed_at = ?2 \
                         WHERE subject_id = ?1 AND key_bytes IS NOT NULL",
                        params![id, at],
                    )
                    .map_err(lite("destroy subject key"))? as u64;
                tx.execute(
                    "INSERT OR IGNORE INTO subject_keys \
                     (subject_id, key_bytes, created_at, destroyed_at) VALUES (?1, NULL, ?2, ?2)",
                    params![id, at],
                )
                .map_err(lite("record destroyed key"))?;
            }
            // Snapshots of the read model hold decrypted text: the next start
            // rebuilds from the log instead.
            tx.execute("DELETE FROM snapshots", [])
                .map_err(lite("drop snapshots"))?;
            tx.commit().map_err(lite("commit destroy"))?;
            Ok(live)
        })
        .await
    }
}
