//! Communication (issue 16): the bytes of attachments and the notification
//! outbox, beside the event log (never in it).
//!
//! - Blobs are content-addressed: `(sha256, owner)`, `owner` the nil uuid
//!   for bytes as uploaded or the vault subject whose key sealed them (the
//!   caller seals; the store keeps bytes). PostgreSQL keeps them in a table,
//!   the embedded store as files in its data directory.
//! - The outbox holds one row per (log position, person, channel), ids only,
//!   with the partition of the event it announces. Each partition has its
//!   own checkpoint (cluster, issue 12: a node serving a set sees only its
//!   partitions). [`CommunicationStore::enqueue`] adds a page's rows and
//!   moves the checkpoints of the partitions they come from in one
//!   transaction, if each is still the one the page was read after: two
//!   nodes, a restart or a node taking a school over never enqueue twice,
//!   and the primary key makes a repeated row a no-op anyway.
//!   [`CommunicationStore::claim`] leases due rows to one sender (PostgreSQL:
//!   `FOR UPDATE SKIP LOCKED`), so each notification has one sender at a
//!   time, and only rows of the partitions the sender can compose.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::sqlite::SqliteStore;
use crate::{Position, Result, StoreError};

/// One notification to send: who, by which channel, about what.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OutboxItem {
    /// The log position of the event it announces.
    pub position: Position,
    pub person_id: Uuid,
    /// `WEB_PUSH` or `EMAIL`.
    pub channel: String,
    /// `ABSENCE`, `GRADE`, `MESSAGE`, ...
    pub kind: String,
    /// The absence, grade or message it is about.
    pub about_id: Uuid,
    /// The partition of the event it announces (an establishment's UAI or
    /// the directory); `None` for a row enqueued before partitions had
    /// checkpoints (migration 0011), which a node folding everything sends.
    pub partition: Option<String>,
}

/// One partition's checkpoint moved by [`CommunicationStore::enqueue`]: from
/// the position the page was read after, to the page's last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointMove {
    pub partition: String,
    pub expected: Position,
    pub to: Position,
}

/// An outbox row as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    pub item: OutboxItem,
    /// `pending`, `delivered` or `failed` (given up).
    pub state: String,
    pub attempts: u32,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// What became of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// Try again at this instant.
    Retry(DateTime<Utc>),
    /// Never again (a subscription gone, no address, too many attempts).
    GiveUp,
}

#[async_trait]
pub trait CommunicationStore: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` under `(sha256, owner)`; storing them again is a no-op.
    async fn put_blob(&self, sha256: &str, owner: Uuid, bytes: Vec<u8>) -> Result<()>;
    async fn blob(&self, sha256: &str, owner: Uuid) -> Result<Option<Vec<u8>>>;
    async fn delete_blob(&self, sha256: &str, owner: Uuid) -> Result<()>;

    /// The single checkpoint of the whole log from before partitions had
    /// their own (migration 0008; no longer moved): where a partition
    /// without a checkpoint starts when it is above 0, so that an upgraded
    /// region loses nothing.
    async fn outbox_checkpoint(&self) -> Result<Position>;
    /// Every partition's checkpoint: the log position up to which its
    /// notifications were enqueued.
    async fn partition_checkpoints(&self) -> Result<BTreeMap<String, Position>>;
    /// Gives each partition of `starts` that has no checkpoint the position
    /// paired with it; a checkpoint already there (another node's) is kept.
    async fn open_partitions(&self, starts: Vec<(String, Position)>) -> Result<()>;
    /// Adds `items` and moves each partition's checkpoint of `moves` from
    /// its `expected` to its `to`, in one transaction; false, writing
    /// nothing, when any of them is no longer `expected` or has none
    /// (another node got there first). A partition appears once in `moves`.
    async fn enqueue(
        &self,
        moves: Vec<CheckpointMove>,
        items: Vec<OutboxItem>,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Leases up to `limit` due pending rows until `lease_until`, oldest
    /// first: of `partitions` only (rows without a partition excluded), or
    /// every row when `None`.
    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        partitions: Option<&[String]>,
    ) -> Result<Vec<OutboxEntry>>;
    /// Records an attempt's outcome (and releases the lease).
    async fn settle(&self, item: &OutboxItem, attempt: Attempt, at: DateTime<Utc>) -> Result<()>;
    /// Every row (operators' and tests' view), in key order.
    async fn outbox(&self) -> Result<Vec<OutboxEntry>>;
}

fn i64_of(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::InvalidAppend(format!("{v} is out of range")))
}

fn u64_of(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative value {v}")))
}

/// A partition named twice would make the compare-and-set's count wrong.
fn check_moves(moves: &[CheckpointMove]) -> Result<()> {
    let distinct: BTreeSet<&str> = moves.iter().map(|m| m.partition.as_str()).collect();
    if distinct.len() == moves.len() {
        Ok(())
    } else {
        Err(StoreError::InvalidAppend(
            "a partition's checkpoint is moved once per enqueue".into(),
        ))
    }
}

fn check_sha(sha256: &str) -> Result<()> {
    if sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        Ok(())
    } else {
        Err(StoreError::InvalidAppend(
            "a blob key is 64 lowercase hex digits".into(),
        ))
    }
}

// ---------------------------------------------------------------- PostgreSQL

#[derive(Clone, Debug)]
pub struct PostgresCommunication {
    pub(crate) pool: Pool,
}

fn pg(context: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::Backend(format!("postgres: communication: {context}: {e}"))
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Backend(format!("postgres pool: {e}"))
}

fn pg_entry(row: &tokio_postgres::Row) -> Result<OutboxEntry> {
    Ok(OutboxEntry {
        item: OutboxItem {
            position: u64_of(row.get("position"))?,
            person_id: row.get("person_id"),
            channel: row.get("channel"),
            kind: row.get("kind"),
            about_id: row.get("about_id"),
            partition: row.get("partition"),
        },
        state: row.get("state"),
        attempts: u32::try_from(row.get::<_, i32>("attempts")).unwrap_or(0),
        delivered_at: row.get("delivered_at"),
    })
}

const COLUMNS: &str =
    "position, person_id, channel, kind, about_id, state, attempts, delivered_at, partition";

#[async_trait]
impl CommunicationStore for PostgresCommunication {
    async fn put_blob(&self, sha256: &str, owner: Uuid, bytes: Vec<u8>) -> Result<()> {
        check_sha(sha256)?;
        let client = self.pool.get().await.map_err(pool_err)?;
        client
            .execute(
                "INSERT INTO attachment_blobs (sha256, owner, bytes) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
                &[&sha256, &owner, &bytes],
            )
            .await
            .map_err(pg("put_blob"))?;
        Ok(())
    }

    async fn blob(&self, sha256: &str, owner: Uuid) -> Result<Option<Vec<u8>>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_opt(
                "SELECT bytes FROM attachment_blobs WHERE sha256 = $1 AND owner = $2",
                &[&sha256, &owner],
            )
            .await
            .map_err(pg("blob"))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn delete_blob(&self, sha256: &str, owner: Uuid) -> Result<()> {
        let client = self.pool.get().await.map_err(pool_err)?;
        client
            .execute(
                "DELETE FROM attachment_blobs WHERE sha256 = $1 AND owner = $2",
                &[&sha256, &owner],
            )
            .await
            .map_err(pg("delete_blob"))?;
        Ok(())
    }

    async fn outbox_checkpoint(&self) -> Result<Position> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_one(
                "SELECT position FROM notification_checkpoint WHERE id = 1",
                &[],
            )
            .await
            .map_err(pg("checkpoint"))?;
        u64_of(row.get(0))
    }

    async fn partition_checkpoints(&self) -> Result<BTreeMap<String, Position>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let rows = client
            .query(
                "SELECT partition, position FROM notification_partition_checkpoints",
                &[],
            )
            .await
            .map_err(pg("partition checkpoints"))?;
        rows.iter()
            .map(|r| Ok((r.get(0), u64_of(r.get(1))?)))
            .collect()
    }

    async fn open_partitions(&self, starts: Vec<(String, Position)>) -> Result<()> {
        let names: Vec<&str> = starts.iter().map(|(p, _)| p.as_str()).collect();
        let positions = starts
            .iter()
            .map(|(_, at)| i64_of(*at))
            .collect::<Result<Vec<_>>>()?;
        let client = self.pool.get().await.map_err(pool_err)?;
        client
            .execute(
                "INSERT INTO notification_partition_checkpoints (partition, position) \
                 SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING",
                &[&names, &positions],
            )
            .await
            .map_err(pg("open partitions"))?;
        Ok(())
    }

    async fn enqueue(
        &self,
        moves: Vec<CheckpointMove>,
        items: Vec<OutboxItem>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        check_moves(&moves)?;
        let names: Vec<&str> = moves.iter().map(|m| m.partition.as_str()).collect();
        let expected = moves
            .iter()
            .map(|m| i64_of(m.expected))
            .collect::<Result<Vec<_>>>()?;
        let to = moves
            .iter()
            .map(|m| i64_of(m.to))
            .collect::<Result<Vec<_>>>()?;
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg("begin"))?;
        // Read committed: a row another transaction moved is re-checked
        // against its new position, so a lost race counts short.
        let moved = tx
            .execute(
                "UPDATE notification_partition_checkpoints c SET position = m.target \
                 FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS m(partition, expected, target) \
                 WHERE c.partition = m.partition AND c.position = m.expected",
                &[&names, &expected, &to],
            )
            .await
            .map_err(pg("move checkpoints"))?;
        if moved != moves.len() as u64 {
            return Ok(false);
        }
        let insert = tx
            .prepare(
                "INSERT INTO notification_outbox \
                 (position, person_id, channel, kind, about_id, next_at, partition) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(pg("prepare"))?;
        for i in &items {
            tx.execute(
                &insert,
                &[
                    &i64_of(i.position)?,
                    &i.person_id,
                    &i.channel,
                    &i.kind,
                    &i.about_id,
                    &now,
                    &i.partition,
                ],
            )
            .await
            .map_err(pg("insert"))?;
        }
        tx.commit().await.map_err(pg("commit"))?;
        Ok(true)
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        partitions: Option<&[String]>,
    ) -> Result<Vec<OutboxEntry>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let partitions: Option<Vec<&str>> =
            partitions.map(|set| set.iter().map(String::as_str).collect());
        let rows = client
            .query(
                &format!(
                    "UPDATE notification_outbox o SET lease_until = $2 \
                     FROM (SELECT position, person_id, channel FROM notification_outbox \
                           WHERE state = 'pending' AND next_at <= $1 \
                             AND (lease_until IS NULL OR lease_until < $1) \
                             AND ($4::text[] IS NULL OR partition = ANY($4)) \
                           ORDER BY position LIMIT $3 FOR UPDATE SKIP LOCKED) due \
                     WHERE o.position = due.position AND o.person_id = due.person_id \
                       AND o.channel = due.channel \
                     RETURNING {}",
                    COLUMNS
                        .split(", ")
                        .map(|c| format!("o.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                &[&now, &lease_until, &limit, &partitions],
            )
            .await
            .map_err(pg("claim"))?;
        let mut out = rows.iter().map(pg_entry).collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| a.item.cmp(&b.item));
        Ok(out)
    }

    async fn settle(&self, item: &OutboxItem, attempt: Attempt, at: DateTime<Utc>) -> Result<()> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let (state, next_at, delivered_at) = match attempt {
            Attempt::Delivered => ("delivered", at, Some(at)),
            Attempt::Retry(next) => ("pending", next, None),
            Attempt::GiveUp => ("failed", at, None),
        };
        client
            .execute(
                "UPDATE notification_outbox SET state = $4, next_at = $5, delivered_at = $6, \
                 attempts = attempts + 1, lease_until = NULL \
                 WHERE position = $1 AND person_id = $2 AND channel = $3 AND state = 'pending'",
                &[
                    &i64_of(item.position)?,
                    &item.person_id,
                    &item.channel,
                    &state,
                    &next_at,
                    &delivered_at,
                ],
            )
            .await
            .map_err(pg("settle"))?;
        Ok(())
    }

    async fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM notification_outbox ORDER BY position, person_id, channel"
                ),
                &[],
            )
            .await
            .map_err(pg("outbox"))?;
        rows.iter().map(pg_entry).collect()
    }
}

// ---------------------------------------------------------------- SQLite

/// The embedded store's: blobs as files under `<data_dir>/attachments/`,
/// the outbox in its database (one writer connection serialises claims).
#[derive(Clone, Debug)]
pub struct SqliteCommunication {
    pub(crate) store: Arc<SqliteStore>,
    pub(crate) blobs: PathBuf,
}

fn lite(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Backend(format!("sqlite: communication: {context}: {e}"))
}

fn io(context: &'static str) -> impl Fn(std::io::Error) -> StoreError {
    move |e| StoreError::Backend(format!("attachments: {context}: {e}"))
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// An outbox row as SQLite gives it.
type LiteRow = (
    i64,
    Uuid,
    String,
    String,
    Uuid,
    String,
    i64,
    Option<i64>,
    Option<String>,
);

fn lite_entry(row: &rusqlite::Row<'_>) -> rusqlite::Result<LiteRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
    ))
}

fn entry_of(r: LiteRow) -> Result<OutboxEntry> {
    let (position, person_id, channel, kind, about_id, state, attempts, delivered, partition) = r;
    Ok(OutboxEntry {
        item: OutboxItem {
            position: u64_of(position)?,
            person_id,
            channel,
            kind,
            about_id,
            partition,
        },
        state,
        attempts: u32::try_from(attempts).unwrap_or(0),
        delivered_at: delivered.and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
    })
}

impl SqliteCommunication {
    fn path(&self, sha256: &str, owner: Uuid) -> PathBuf {
        self.blobs.join(owner.to_string()).join(sha256)
    }
}

#[async_trait]
impl CommunicationStore for SqliteCommunication {
    async fn put_blob(&self, sha256: &str, owner: Uuid, bytes: Vec<u8>) -> Result<()> {
        check_sha(sha256)?;
        let path = self.path(sha256, owner);
        if tokio::fs::try_exists(&path).await.map_err(io("stat"))? {
            return Ok(());
        }
        let dir = self.blobs.join(owner.to_string());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(io("create dir"))?;
        // Written aside and renamed: a reader never sees half a file.
        let partial = dir.join(format!("{sha256}.{}.part", Uuid::now_v7()));
        tokio::fs::write(&partial, &bytes)
            .await
            .map_err(io("write"))?;
        tokio::fs::rename(&partial, &path)
            .await
            .map_err(io("rename"))?;
        Ok(())
    }

    async fn blob(&self, sha256: &str, owner: Uuid) -> Result<Option<Vec<u8>>> {
        if check_sha(sha256).is_err() {
            return Ok(None);
        }
        match tokio::fs::read(self.path(sha256, owner)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read")(e)),
        }
    }

    async fn delete_blob(&self, sha256: &str, owner: Uuid) -> Result<()> {
        if check_sha(sha256).is_err() {
            return Ok(());
        }
        match tokio::fs::remove_file(self.path(sha256, owner)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("delete")(e)),
            _ => Ok(()),
        }
    }

    async fn outbox_checkpoint(&self) -> Result<Position> {
        let position: i64 = self
            .store
            .on_reader(|conn| {
                conn.query_row(
                    "SELECT position FROM notification_checkpoint WHERE id = 1",
                    [],
                    |r| r.get(0),
                )
                .map_err(lite("checkpoint"))
            })
            .await?;
        u64_of(position)
    }

    async fn partition_checkpoints(&self) -> Result<BTreeMap<String, Position>> {
        let rows: Vec<(String, i64)> = self
            .store
            .on_reader(|conn| {
                let mut stmt = conn
                    .prepare("SELECT partition, position FROM notification_partition_checkpoints")
                    .map_err(lite("partition checkpoints"))?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .map_err(lite("partition checkpoints"))?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(lite("partition checkpoints"))?;
                Ok(rows)
            })
            .await?;
        rows.into_iter()
            .map(|(p, at)| Ok((p, u64_of(at)?)))
            .collect()
    }

    async fn open_partitions(&self, starts: Vec<(String, Position)>) -> Result<()> {
        let starts = starts
            .into_iter()
            .map(|(p, at)| Ok((p, i64_of(at)?)))
            .collect::<Result<Vec<_>>>()?;
        self.store
            .on_writer(move |conn| {
                let tx = conn.transaction().map_err(lite("begin"))?;
                {
                    let mut insert = tx
                        .prepare(
                            "INSERT OR IGNORE INTO notification_partition_checkpoints \
                             (partition, position) VALUES (?1, ?2)",
                        )
                        .map_err(lite("prepare"))?;
                    for (partition, at) in &starts {
                        insert
                            .execute(rusqlite::params![partition, at])
                            .map_err(lite("open partition"))?;
                    }
                }
                tx.commit().map_err(lite("commit"))
            })
            .await
    }

    async fn enqueue(
        &self,
        moves: Vec<CheckpointMove>,
        items: Vec<OutboxItem>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        check_moves(&moves)?;
        let moves = moves
            .into_iter()
            .map(|m| Ok((m.partition, i64_of(m.expected)?, i64_of(m.to)?)))
            .collect::<Result<Vec<_>>>()?;
        let rows = items
            .into_iter()
            .map(|i| {
                Ok((
                    i64_of(i.position)?,
                    i.person_id,
                    i.channel,
                    i.kind,
                    i.about_id,
                    i.partition,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        self.store
            .on_writer(move |conn| {
                let tx = conn.transaction().map_err(lite("begin"))?;
                {
                    let mut cas = tx
                        .prepare(
                            "UPDATE notification_partition_checkpoints SET position = ?3 \
                             WHERE partition = ?1 AND position = ?2",
                        )
                        .map_err(lite("prepare"))?;
                    for (partition, expected, to) in &moves {
                        let moved = cas
                            .execute(rusqlite::params![partition, expected, to])
                            .map_err(lite("move checkpoint"))?;
                        if moved != 1 {
                            // Dropped unfinished: rolled back.
                            return Ok(false);
                        }
                    }
                    let mut insert = tx
                        .prepare(
                            "INSERT OR IGNORE INTO notification_outbox \
                             (position, person_id, channel, kind, about_id, next_at, partition) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        )
                        .map_err(lite("prepare"))?;
                    for (position, person, channel, kind, about, partition) in &rows {
                        insert
                            .execute(rusqlite::params![
                                position,
                                person,
                                channel,
                                kind,
                                about,
                                millis(now),
                                partition
                            ])
                            .map_err(lite("insert"))?;
                    }
                }
                tx.commit().map_err(lite("commit"))?;
                Ok(true)
            })
            .await
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
        partitions: Option<&[String]>,
    ) -> Result<Vec<OutboxEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // SQLite has no arrays: the set goes as a JSON array.
        let partitions = partitions.map(|set| serde_json::json!(set).to_string());
        let rows: Vec<LiteRow> = self
            .store
            .on_writer(move |conn| {
                let mut stmt = conn
                    .prepare(&format!(
                        "UPDATE notification_outbox SET lease_until = ?2 \
                         WHERE rowid IN (SELECT rowid FROM notification_outbox \
                           WHERE state = 'pending' AND next_at <= ?1 \
                             AND (lease_until IS NULL OR lease_until < ?1) \
                             AND (?4 IS NULL OR partition IN (SELECT value FROM json_each(?4))) \
                           ORDER BY position LIMIT ?3) \
                         RETURNING {COLUMNS}"
                    ))
                    .map_err(lite("claim"))?;
                let rows = stmt
                    .query_map(
                        rusqlite::params![millis(now), millis(lease_until), limit, partitions],
                        lite_entry,
                    )
                    .map_err(lite("claim"))?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(lite("claim"))?;
                Ok(rows)
            })
            .await?;
        let mut out = rows.into_iter().map(entry_of).collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| a.item.cmp(&b.item));
        Ok(out)
    }

    async fn settle(&self, item: &OutboxItem, attempt: Attempt, at: DateTime<Utc>) -> Result<()> {
        let (state, next_at, delivered_at) = match attempt {
            Attempt::Delivered => ("delivered", at, Some(millis(at))),
            Attempt::Retry(next) => ("pending", next, None),
            Attempt::GiveUp => ("failed", at, None),
        };
        let position = i64_of(item.position)?;
        let (person, channel) = (item.person_id, item.channel.clone());
        self.store
            .on_writer(move |conn| {
                conn.execute(
                    "UPDATE notification_outbox SET state = ?4, next_at = ?5, delivered_at = ?6, \
                     attempts = attempts + 1, lease_until = NULL \
                     WHERE position = ?1 AND person_id = ?2 AND channel = ?3 AND state = 'pending'",
                    rusqlite::params![
                        position,
                        person,
                        channel,
                        state,
                        millis(next_at),
                        delivered_at
                    ],
                )
                .map_err(lite("settle"))?;
                Ok(())
            })
            .await
    }

    async fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        let rows: Vec<LiteRow> = self
            .store
            .on_reader(|conn| {
                let mut stmt = conn
                    .prepare(&format!(
                        "SELECT {COLUMNS} FROM notification_outbox ORDER BY position, person_id, channel"
                    ))
                    .map_err(lite("outbox"))?;
                let rows = stmt
                    .query_map([], lite_entry)
                    .map_err(lite("outbox"))?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(lite("outbox"))?;
                Ok(rows)
            })
            .await?;
        rows.into_iter().map(entry_of).collect()
    }
}
