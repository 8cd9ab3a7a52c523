//! The tables of the usage projection (migration 0006): visits per
//! establishment, local day, service, profile and local hour, the pseudonyms
//! that started them, the sessionization state, and the projection's own
//! checkpoint in the access log.
//!
//! Unlike the read model, this projection is not replayable: it is folded from
//! the access log, which the retention purge deletes, so the tables are the
//! only copy of past periods. What the store guarantees:
//! - [`UsageStore::apply`] writes the counts, the sessions and the checkpoint
//!   in one transaction, and only if the checkpoint is still the one the batch
//!   was read after: a crash or a second node never counts an access twice.
//! - PostgreSQL: the transaction takes `pg_try_advisory_xact_lock(USAGE_LOCK)`,
//!   so one node at a time folds; a node that finds it taken writes nothing
//!   and says so (it never waits on a lock whose holder may be stalled).
//!   SQLite: the single writer connection.
//! - [`crate::EventStore::purge_access_before`] deletes only entries at or
//!   below the checkpoint: an access is never purged before it was counted.
//!
//! What a visit is (the session rule) is the projection's business, not the
//! store's: it is passed in as a plain function ([`Sessionize`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Pool;
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use uuid::Uuid;

use crate::{Result, StoreError};

/// Advisory lock key serialising folds of the usage projection ("REGIUSAG").
pub const USAGE_LOCK: i64 = 0x5245_4749_5553_4147;

/// One access-log entry placed: where and when it counts, and for whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageHit {
    pub at: DateTime<Utc>,
    pub establishment_id: Uuid,
    /// Local day and hour of the establishment.
    pub day: NaiveDate,
    pub hour: u8,
    pub service: String,
    pub profile: String,
    pub pseudonym: String,
}

/// The last read of a pseudonym in a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageSession {
    pub pseudonym: String,
    pub service: String,
    pub last_at: DateTime<Utc>,
}

/// A visit started in a cell, by a pseudonym.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsageVisit {
    pub establishment_id: Uuid,
    pub day: NaiveDate,
    pub service: String,
    pub profile: String,
    pub hour: u8,
    pub pseudonym: String,
}

/// What a batch changes: the visits it starts and the sessions' new last reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageDelta {
    pub visits: Vec<UsageVisit>,
    pub sessions: Vec<UsageSession>,
}

/// The session rule: the batch's hits (in access-log order) and the stored
/// sessions of their pseudonyms give the visits started and the new sessions.
pub type Sessionize = fn(&[UsageHit], &[UsageSession]) -> UsageDelta;

/// Where the projection stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UsageStatus {
    /// The last access-log id folded.
    pub checkpoint: u64,
    /// The last access-log id ever allocated (committed), purged or not.
    pub access_head: u64,
}

/// Visits of one cell summed over days.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageCellRow {
    pub service: String,
    pub profile: String,
    pub hour: u8,
    pub visits: u64,
    pub visitors: u64,
}

/// The rows a report is computed from, for one establishment and date range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageRows {
    /// Visits per local day and hour (school hours depend on both).
    pub by_day_hour: Vec<(NaiveDate, u8, u64)>,
    /// Per service, profile and hour, ordered by them.
    pub cells: Vec<UsageCellRow>,
    /// Distinct pseudonyms over the whole range.
    pub visitors: u64,
}

#[async_trait]
pub trait UsageStore: Send + Sync + std::fmt::Debug {
    async fn status(&self) -> Result<UsageStatus>;

    /// Folds `hits` (the placed entries of the access log after `expected`, up
    /// to and including `checkpoint`) in one transaction, if the stored
    /// checkpoint is still `expected`. Returns false, writing nothing, when
    /// another fold got there first or is under way.
    async fn apply(
        &self,
        expected: u64,
        checkpoint: u64,
        hits: Vec<UsageHit>,
        sessionize: Sessionize,
    ) -> Result<bool>;

    /// The rows of one establishment's days `from..=to`.
    async fn rows(
        &self,
        establishment_id: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<UsageRows>;
}

/// Counts per cell and distinct rows, ready to write.
struct Writes {
    counts: Vec<(UsageVisit, i64)>,
    visitors: Vec<UsageVisit>,
    sessions: Vec<UsageSession>,
}

fn writes(delta: UsageDelta) -> Writes {
    let mut counts: BTreeMap<UsageVisit, i64> = BTreeMap::new();
    let mut visitors: BTreeSet<UsageVisit> = BTreeSet::new();
    for v in delta.visits {
        let cell = UsageVisit {
            pseudonym: String::new(),
            ..v.clone()
        };
        *counts.entry(cell).or_default() += 1;
        visitors.insert(v);
    }
    // One row per session (an upsert may not touch a row twice).
    let mut sessions: HashMap<(String, String), DateTime<Utc>> = HashMap::new();
    for s in delta.sessions {
        let last = sessions
            .entry((s.pseudonym, s.service))
            .or_insert(s.last_at);
        *last = (*last).max(s.last_at);
    }
    Writes {
        counts: counts.into_iter().collect(),
        visitors: visitors.into_iter().collect(),
        sessions: sessions
            .into_iter()
            .map(|((pseudonym, service), last_at)| UsageSession {
                pseudonym,
                service,
                last_at,
            })
            .collect(),
    }
}

fn pseudonyms_of(hits: &[UsageHit]) -> Vec<String> {
    hits.iter()
        .map(|h| h.pseudonym.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::InvalidAppend(format!("{v} is out of range")))
}

fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative count {v}")))
}

fn to_hour(v: i64) -> Result<u8> {
    u8::try_from(v)
        .ok()
        .filter(|h| *h < 24)
        .ok_or_else(|| StoreError::Corrupt(format!("hour {v}")))
}

// ---------------------------------------------------------------- PostgreSQL

/// The usage tables of a PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PostgresUsage {
    pub(crate) pool: Pool,
}

fn pg(context: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| StoreError::Backend(format!("postgres: usage: {context}: {e}"))
}

#[async_trait]
impl UsageStore for PostgresUsage {
    async fn status(&self) -> Result<UsageStatus> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_one(
                "SELECT (SELECT last_access_id FROM usage_checkpoint), \
                        (SELECT last_id FROM access_log_counter)",
                &[],
            )
            .await
            .map_err(pg("status"))?;
        Ok(UsageStatus {
            checkpoint: to_u64(row.try_get(0).map_err(pg("status"))?)?,
            access_head: to_u64(row.try_get(1).map_err(pg("status"))?)?,
        })
    }

    async fn apply(
        &self,
        expected: u64,
        checkpoint: u64,
        hits: Vec<UsageHit>,
        sessionize: Sessionize,
    ) -> Result<bool> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg("begin"))?;
        let locked: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&USAGE_LOCK])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(pg("lock"))?;
        if !locked {
            return Ok(false);
        }
        let stored: i64 = tx
            .query_one(
                "SELECT last_access_id FROM usage_checkpoint FOR UPDATE",
                &[],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(pg("checkpoint"))?;
        if to_u64(stored)? != expected {
            return Ok(false);
        }
        let pseudonyms = pseudonyms_of(&hits);
        let rows = tx
            .query(
                "SELECT pseudonym, service, last_at FROM usage_sessions \
                 WHERE pseudonym = ANY($1)",
                &[&pseudonyms],
            )
            .await
            .map_err(pg("sessions"))?;
        let sessions = rows
            .iter()
            .map(|r| {
                Ok(UsageSession {
                    pseudonym: r.try_get(0)?,
                    service: r.try_get(1)?,
                    last_at: r.try_get(2)?,
                })
            })
            .collect::<std::result::Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(pg("sessions"))?;
        let w = writes(sessionize(&hits, &sessions));
        if !w.counts.is_empty() {
            let est: Vec<Uuid> = w.counts.iter().map(|(c, _)| c.establishment_id).collect();
            let day: Vec<NaiveDate> = w.counts.iter().map(|(c, _)| c.day).collect();
            let service: Vec<&str> = w.counts.iter().map(|(c, _)| c.service.as_str()).collect();
            let profile: Vec<&str> = w.counts.iter().map(|(c, _)| c.profile.as_str()).collect();
            let hour: Vec<i16> = w.counts.iter().map(|(c, _)| i16::from(c.hour)).collect();
            let n: Vec<i64> = w.counts.iter().map(|(_, n)| *n).collect();
            tx.execute(
                "INSERT INTO usage_visits (establishment_id, day, service, profile, hour, visits) \
                 SELECT * FROM UNNEST($1::uuid[], $2::date[], $3::text[], $4::text[], \
                 $5::int2[], $6::bigint[]) \
                 ON CONFLICT (establishment_id, day, service, profile, hour) \
                 DO UPDATE SET visits = usage_visits.visits + EXCLUDED.visits",
                &[&est, &day, &service, &profile, &hour, &n],
            )
            .await
            .map_err(pg("visits"))?;
            let est: Vec<Uuid> = w.visitors.iter().map(|v| v.establishment_id).collect();
            let day: Vec<NaiveDate> = w.visitors.iter().map(|v| v.day).collect();
            let service: Vec<&str> = w.visitors.iter().map(|v| v.service.as_str()).collect();
            let profile: Vec<&str> = w.visitors.iter().map(|v| v.profile.as_str()).collect();
            let hour: Vec<i16> = w.visitors.iter().map(|v| i16::from(v.hour)).collect();
            let who: Vec<&str> = w.visitors.iter().map(|v| v.pseudonym.as_str()).collect();
            tx.execute(
                "INSERT INTO usage_visitors \
                 (establishment_id, day, service, profile, hour, pseudonym) \
                 SELECT * FROM UNNEST($1::uuid[], $2::date[], $3::text[], $4::text[], \
                 $5::int2[], $6::text[]) ON CONFLICT DO NOTHING",
                &[&est, &day, &service, &profile, &hour, &who],
            )
            .await
            .map_err(pg("visitors"))?;
        }
        if !w.sessions.is_empty() {
            let who: Vec<&str> = w.sessions.iter().map(|s| s.pseudonym.as_str()).collect();
            let service: Vec<&str> = w.sessions.iter().map(|s| s.service.as_str()).collect();
            let at: Vec<DateTime<Utc>> = w.sessions.iter().map(|s| s.last_at).collect();
            tx.execute(
                "INSERT INTO usage_sessions (pseudonym, service, last_at) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[]) \
                 ON CONFLICT (pseudonym, service) DO UPDATE SET last_at = EXCLUDED.last_at",
                &[&who, &service, &at],
            )
            .await
            .map_err(pg("sessions"))?;
        }
        tx.execute(
            "UPDATE usage_checkpoint SET last_access_id = $1",
            &[&to_i64(checkpoint)?],
        )
        .await
        .map_err(pg("checkpoint"))?;
        tx.commit().await.map_err(pg("commit"))?;
        Ok(true)
    }

    async fn rows(
        &self,
        establishment_id: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<UsageRows> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let by_day_hour = client
            .query(
                "SELECT day, hour::bigint, sum(visits)::bigint FROM usage_visits \
                 WHERE establishment_id = $1 AND day BETWEEN $2 AND $3 \
                 GROUP BY day, hour ORDER BY day, hour",
                &[&establishment_id, &from, &to],
            )
            .await
            .map_err(pg("rows"))?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<_, NaiveDate>(0).map_err(pg("rows"))?,
                    to_hour(r.try_get(1).map_err(pg("rows"))?)?,
                    to_u64(r.try_get(2).map_err(pg("rows"))?)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let cells = client
            .query(
                "SELECT v.service, v.profile, v.hour::bigint, v.visits, \
                        (SELECT count(DISTINCT p.pseudonym) FROM usage_visitors p \
                         WHERE p.establishment_id = $1 AND p.day BETWEEN $2 AND $3 \
                           AND p.service = v.service AND p.profile = v.profile \
                           AND p.hour = v.hour) \
                 FROM (SELECT service, profile, hour, sum(visits)::bigint AS visits \
                       FROM usage_visits \
                       WHERE establishment_id = $1 AND day BETWEEN $2 AND $3 \
                       GROUP BY service, profile, hour) v \
                 ORDER BY v.service, v.profile, v.hour",
                &[&establishment_id, &from, &to],
            )
            .await
            .map_err(pg("rows"))?
            .iter()
            .map(|r| {
                Ok(UsageCellRow {
                    service: r.try_get(0).map_err(pg("rows"))?,
                    profile: r.try_get(1).map_err(pg("rows"))?,
                    hour: to_hour(r.try_get(2).map_err(pg("rows"))?)?,
                    visits: to_u64(r.try_get(3).map_err(pg("rows"))?)?,
                    visitors: to_u64(r.try_get(4).map_err(pg("rows"))?)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let visitors: i64 = client
            .query_one(
                "SELECT count(DISTINCT pseudonym) FROM usage_visitors \
                 WHERE establishment_id = $1 AND day BETWEEN $2 AND $3",
                &[&establishment_id, &from, &to],
            )
            .await
            .and_then(|r| r.try_get(0))
            .map_err(pg("rows"))?;
        Ok(UsageRows {
            by_day_hour,
            cells,
            visitors: to_u64(visitors)?,
        })
    }
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Backend(format!("postgres: usage: pool: {e}"))
}

// -------------------------------------------------------------------- SQLite

/// The usage tables of a SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteUsage {
    pub(crate) store: Arc<crate::SqliteStore>,
}

fn lite(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Backend(format!("sqlite: usage: {context}: {e}"))
}

fn day_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn parse_day(text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|e| StoreError::Corrupt(format!("usage day {text:?}: {e}")))
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("usage instant {text:?}: {e}")))
}

#[async_trait]
impl UsageStore for SqliteUsage {
    async fn status(&self) -> Result<UsageStatus> {
        self.store
            .on_reader(|conn| {
                let (checkpoint, head): (i64, i64) = conn
                    .query_row(
                        "SELECT (SELECT last_access_id FROM usage_checkpoint), \
                         coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'access_log'), 0)",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(lite("status"))?;
                Ok(UsageStatus {
                    checkpoint: to_u64(checkpoint)?,
                    access_head: to_u64(head)?,
                })
            })
            .await
    }

    async fn apply(
        &self,
        expected: u64,
        checkpoint: u64,
        hits: Vec<UsageHit>,
        sessionize: Sessionize,
    ) -> Result<bool> {
        let checkpoint = to_i64(checkpoint)?;
        self.store
            .on_writer(move |conn| {
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(lite("begin"))?;
                let stored: i64 = tx
                    .query_row("SELECT last_access_id FROM usage_checkpoint", [], |r| {
                        r.get(0)
                    })
                    .map_err(lite("checkpoint"))?;
                if to_u64(stored)? != expected {
                    return Ok(false);
                }
                let mut sessions = Vec::new();
                {
                    let mut stmt = tx
                        .prepare_cached(
                            "SELECT service, last_at FROM usage_sessions WHERE pseudonym = ?1",
                        )
                        .map_err(lite("prepare sessions"))?;
                    for p in pseudonyms_of(&hits) {
                        let mut rows = stmt.query([&p]).map_err(lite("sessions"))?;
                        while let Some(r) = rows.next().map_err(lite("sessions"))? {
                            let last: String = r.get(1).map_err(lite("sessions"))?;
                            sessions.push(UsageSession {
                                pseudonym: p.clone(),
                                service: r.get(0).map_err(lite("sessions"))?,
                                last_at: parse_time(&last)?,
                            });
                        }
                    }
                }
                let w = writes(sessionize(&hits, &sessions));
                {
                    let mut visits = tx
                        .prepare_cached(
                            "INSERT INTO usage_visits \
                             (establishment_id, day, service, profile, hour, visits) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                             ON CONFLICT (establishment_id, day, service, profile, hour) \
                             DO UPDATE SET visits = visits + excluded.visits",
                        )
                        .map_err(lite("prepare visits"))?;
                    for (c, n) in &w.counts {
                        visits
                            .execute(params![
                                c.establishment_id.as_bytes().as_slice(),
                                day_text(c.day),
                                c.service,
                                c.profile,
                                c.hour,
                                n
                            ])
                            .map_err(lite("visits"))?;
                    }
                    let mut visitors = tx
                        .prepare_cached(
                            "INSERT OR IGNORE INTO usage_visitors \
                             (establishment_id, day, service, profile, hour, pseudonym) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        )
                        .map_err(lite("prepare visitors"))?;
                    for v in &w.visitors {
                        visitors
                            .execute(params![
                                v.establishment_id.as_bytes().as_slice(),
                                day_text(v.day),
                                v.service,
                                v.profile,
                                v.hour,
                                v.pseudonym
                            ])
                            .map_err(lite("visitors"))?;
                    }
                    let mut upsert = tx
                        .prepare_cached(
                            "INSERT INTO usage_sessions (pseudonym, service, last_at) \
                             VALUES (?1, ?2, ?3) ON CONFLICT (pseudonym, service) \
                             DO UPDATE SET last_at = excluded.last_at",
                        )
                        .map_err(lite("prepare sessions"))?;
                    for s in &w.sessions {
                        upsert
                            .execute(params![
                                s.pseudonym,
                                s.service,
                                crate::chain::timestamp_text(&s.last_at)
                            ])
                            .map_err(lite("sessions"))?;
                    }
                }
                tx.execute(
                    "UPDATE usage_checkpoint SET last_access_id = ?1",
                    [checkpoint],
                )
                .map_err(lite("checkpoint"))?;
                tx.commit().map_err(lite("commit"))?;
                Ok(true)
            })
            .await
    }

    async fn rows(
        &self,
        establishment_id: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<UsageRows> {
        let (from, to) = (day_text(from), day_text(to));
        self.store
            .on_reader(move |conn| {
                let est = establishment_id.as_bytes().as_slice();
                let mut by_day_hour = Vec::new();
                {
                    let mut stmt = conn
                        .prepare_cached(
                            "SELECT day, hour, sum(visits) FROM usage_visits \
                             WHERE establishment_id = ?1 AND day BETWEEN ?2 AND ?3 \
                             GROUP BY day, hour ORDER BY day, hour",
                        )
                        .map_err(lite("prepare rows"))?;
                    let mut rows = stmt.query(params![est, from, to]).map_err(lite("rows"))?;
                    while let Some(r) = rows.next().map_err(lite("rows"))? {
                        let day: String = r.get(0).map_err(lite("rows"))?;
                        by_day_hour.push((
                            parse_day(&day)?,
                            to_hour(r.get(1).map_err(lite("rows"))?)?,
                            to_u64(r.get(2).map_err(lite("rows"))?)?,
                        ));
                    }
                }
                let mut cells = Vec::new();
                {
                    let mut stmt = conn
                        .prepare_cached(
                            "SELECT v.service, v.profile, v.hour, v.visits, \
                                    (SELECT count(DISTINCT p.pseudonym) FROM usage_visitors p \
                                     WHERE p.establishment_id = ?1 AND p.day BETWEEN ?2 AND ?3 \
                                       AND p.service = v.service AND p.profile = v.profile \
                                       AND p.hour = v.hour) \
                             FROM (SELECT service, profile, hour, sum(visits) AS visits \
                                   FROM usage_visits \
                                   WHERE establishment_id = ?1 AND day BETWEEN ?2 AND ?3 \
                                   GROUP BY service, profile, hour) v \
                             ORDER BY v.service, v.profile, v.hour",
                        )
                        .map_err(lite("prepare rows"))?;
                    let mut rows = stmt.query(params![est, from, to]).map_err(lite("rows"))?;
                    while let Some(r) = rows.next().map_err(lite("rows"))? {
                        cells.push(UsageCellRow {
                            service: r.get(0).map_err(lite("rows"))?,
                            profile: r.get(1).map_err(lite("rows"))?,
                            hour: to_hour(r.get(2).map_err(lite("rows"))?)?,
                            visits: to_u64(r.get(3).map_err(lite("rows"))?)?,
                            visitors: to_u64(r.get(4).map_err(lite("rows"))?)?,
                        });
                    }
                }
                let visitors: i64 = conn
                    .query_row(
                        "SELECT count(DISTINCT pseudonym) FROM usage_visitors \
                         WHERE establishment_id = ?1 AND day BETWEEN ?2 AND ?3",
                        params![est, from, to],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(lite("rows"))?
                    .unwrap_or(0);
                Ok(UsageRows {
                    by_day_hour,
                    cells,
                    visitors: to_u64(visitors)?,
                })
            })
            .await
    }
}
