//! The node registry (issue 12, decision 0021): which node serves which
//! establishments, and the URL the other nodes reach it at. Every node of a
//! region shares one database, so the registry is a table beside the log:
//! a node registers at start, beats every heartbeat period and deregisters
//! at a clean stop. A node whose last beat is older than the liveness
//! timeout is taken for dead: no request is forwarded to it.
//!
//! Times are the nodes' clocks (kept by NTP like every server's): liveness
//! is counted in seconds, far above their skew.

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;

use crate::sqlite::SqliteStore;
use crate::{Partition, Result, StoreError};

/// One node's row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub node_id: Uuid,
    /// The base URL of its HTTP server (`http://10.0.0.2:8080`).
    pub advertise_url: String,
    /// The establishments' partitions it folds; `None`: all of them.
    pub served: Option<Vec<Partition>>,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

impl NodeRecord {
    /// Whether it folds `partition` (every node folds the directory).
    pub fn serves(&self, partition: &Partition) -> bool {
        partition.served_by(self.served.as_deref())
    }
}

#[async_trait]
pub trait NodeRegistry: Send + Sync + std::fmt::Debug {
    /// Writes the node's row, replacing one of the same id.
    async fn register_node(&self, node: &NodeRecord) -> Result<()>;
    /// Moves the node's heartbeat to `at`; false when it has no row (an
    /// operator removed it: the caller registers again).
    async fn heartbeat(&self, node_id: Uuid, at: DateTime<Utc>) -> Result<bool>;
    /// Deletes the node's row (a clean stop).
    async fn deregister_node(&self, node_id: Uuid) -> Result<()>;
    /// Every node whose last heartbeat is at or after `alive_since`, oldest
    /// start first (the longest-running holder is asked first).
    async fn live_nodes(&self, alive_since: DateTime<Utc>) -> Result<Vec<NodeRecord>>;
}

fn served_json(served: &Option<Vec<Partition>>) -> Result<Option<String>> {
    served
        .as_ref()
        .map(|s| serde_json::to_string(s).map_err(|e| StoreError::InvalidAppend(e.to_string())))
        .transpose()
}

fn served_of(text: Option<String>) -> Result<Option<Vec<Partition>>> {
    text.map(|t| {
        serde_json::from_str(&t)
            .map_err(|e| StoreError::Corrupt(format!("nodes.served is not a list of UAIs: {e}")))
    })
    .transpose()
}

// ---------------------------------------------------------------- PostgreSQL

#[derive(Clone, Debug)]
pub struct PostgresNodes {
    pub(crate) pool: Pool,
}

fn pg(context: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::Backend(format!("postgres: nodes: {context}: {e}"))
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Backend(format!("postgres pool: {e}"))
}

#[async_trait]
impl NodeRegistry for PostgresNodes {
    async fn register_node(&self, node: &NodeRecord) -> Result<()> {
        let served = served_json(&node.served)?;
        let client = self.pool.get().await.map_err(pool_err)?;
        client
            .execute(
                "INSERT INTO nodes (node_id, advertise_url, served, started_at, heartbeat_at) \
                 VALUES ($1, $2, $3::text::jsonb, $4, $5) \
                 ON CONFLICT (node_id) DO UPDATE SET advertise_url = EXCLUDED.advertise_url, \
                 served = EXCLUDED.served, started_at = EXCLUDED.started_at, \
                 heartbeat_at = EXCLUDED.heartbeat_at",
                &[
                    &node.node_id,
                    &node.advertise_url,
                    &served,
                    &node.started_at,
                    &node.heartbeat_at,
                ],
            )
            .await
            .map_err(pg("register"))?;
        Ok(())
    }

    async fn heartbeat(&self, node_id: Uuid, at: DateTime<Utc>) -> Result<bool> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let n = client
            .execute(
                "UPDATE nodes SET heartbeat_at = $2 WHERE node_id = $1",
                &[&node_id, &at],
            )
            .await
            .map_err(pg("heartbeat"))?;
        Ok(n > 0)
    }

    async fn deregister_node(&self, node_id: Uuid) -> Result<()> {
        let client = self.pool.get().await.map_err(pool_err)?;
        client
            .execute("DELETE FROM nodes WHERE node_id = $1", &[&node_id])
            .await
            .map_err(pg("deregister"))?;
        Ok(())
    }

    async fn live_nodes(&self, alive_since: DateTime<Utc>) -> Result<Vec<NodeRecord>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let rows = client
            .query(
                "SELECT node_id, advertise_url, served::text AS served, started_at, heartbeat_at \
                 FROM nodes WHERE heartbeat_at >= $1 ORDER BY started_at, node_id",
                &[&alive_since],
            )
            .await
            .map_err(pg("live"))?;
        rows.iter()
            .map(|r| {
                Ok(NodeRecord {
                    node_id: r.get("node_id"),
                    advertise_url: r.get("advertise_url"),
                    served: served_of(r.get("served"))?,
                    started_at: r.get("started_at"),
                    heartbeat_at: r.get("heartbeat_at"),
                })
            })
            .collect()
    }
}

// ---------------------------------------------------------------- SQLite

#[derive(Clone, Debug)]
pub struct SqliteNodes {
    pub(crate) store: Arc<SqliteStore>,
}

fn lite(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Backend(format!("sqlite: nodes: {context}: {e}"))
}

fn instant(ms: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("nodes: instant {ms} out of range")))
}

#[async_trait]
impl NodeRegistry for SqliteNodes {
    async fn register_node(&self, node: &NodeRecord) -> Result<()> {
        let served = served_json(&node.served)?;
        let node = node.clone();
        self.store
            .on_writer(move |conn| {
                conn.execute(
                    "INSERT INTO nodes (node_id, advertise_url, served, started_at, heartbeat_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (node_id) DO UPDATE SET advertise_url = excluded.advertise_url, \
                     served = excluded.served, started_at = excluded.started_at, \
                     heartbeat_at = excluded.heartbeat_at",
                    rusqlite::params![
                        node.node_id,
                        node.advertise_url,
                        served,
                        node.started_at.timestamp_millis(),
                        node.heartbeat_at.timestamp_millis(),
                    ],
                )
                .map_err(lite("register"))?;
                Ok(())
            })
            .await
    }

    async fn heartbeat(&self, node_id: Uuid, at: DateTime<Utc>) -> Result<bool> {
        self.store
            .on_writer(move |conn| {
                let n = conn
                    .execute(
                        "UPDATE nodes SET heartbeat_at = ?2 WHERE node_id = ?1",
                        rusqlite::params![node_id, at.timestamp_millis()],
                    )
                    .map_err(lite("heartbeat"))?;
                Ok(n > 0)
            })
            .await
    }

    async fn deregister_node(&self, node_id: Uuid) -> Result<()> {
        self.store
            .on_writer(move |conn| {
                conn.execute("DELETE FROM nodes WHERE node_id = ?1", [node_id])
                    .map_err(lite("deregister"))?;
                Ok(())
            })
            .await
    }

    async fn live_nodes(&self, alive_since: DateTime<Utc>) -> Result<Vec<NodeRecord>> {
        type Row = (Uuid, String, Option<String>, i64, i64);
        let rows: Vec<Row> = self
            .store
            .on_reader(move |conn| {
                let mut stmt = conn
                    .prepare(
                        "SELECT node_id, advertise_url, served, started_at, heartbeat_at \
                         FROM nodes WHERE heartbeat_at >= ?1 ORDER BY started_at, node_id",
                    )
                    .map_err(lite("live"))?;
                let rows = stmt
                    .query_map([alive_since.timestamp_millis()], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .map_err(lite("live"))?
                    .collect::<rusqlite::Result<Vec<Row>>>()
                    .map_err(lite("live"))?;
                Ok(rows)
            })
            .await?;
        rows.into_iter()
            .map(|(node_id, advertise_url, served, started, beat)| {
                Ok(NodeRecord {
                    node_id,
                    advertise_url,
                    served: served_of(served)?,
                    started_at: instant(started)?,
                    heartbeat_at: instant(beat)?,
                })
            })
            .collect()
    }
}
