//! The PostgreSQL append path: group commit over `registre_append`
//! (migration 0005), one round trip and one WAL flush per group.
//!
//! Positions must be allocated one transaction at a time (the append lock is
//! held until commit: that is what makes them gap-free and safe to tail), so a
//! store that commits each append alone pays one WAL flush per append and can
//! never go faster than 1 / (lock hold time). Instead one committer task per
//! node takes every single-request append waiting in its queue and sends them
//! as one call: while a group is being flushed, the next one gathers. Each
//! caller's requests form a unit, checked on its own (a conflict fails only
//! its caller): a single append is a unit of one, a small `append_batch` (a
//! roll call: a few dozen streams) one unit, all or nothing inside the shared
//! call (migration 0010). Large batches (imports, seeding) are committed alone,
//! planned in the process (`batch.rs`).
//!
//! One call at a time, on purpose. A second call sent while the first flushes
//! would wait on the lock and start the moment the first commits, saving the
//! gap between groups, but it splits the waiting appends into two groups and
//! two WAL flushes: where the flush dominates (1 ms and more here) that
//! commits fewer appends per second (measured: 5.7 appends per commit against
//! 8.5 with 16 writers).
//!
//! The client side does everything that needs no database before queueing:
//! validation and the canonical JSON the hash covers (`plan::prepare_event`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::{bump, event_from_row, pg, pool_err, to_i64, to_u64, EVENT_COLUMNS};
use crate::chain;
use crate::plan::{self, PreparedEvent};
use crate::{
    AppendOutcome, AppendRequest, ExpectedVersion, Idempotency, Partition, Position, RecordedEvent,
    Result, StoreError,
};

/// Events per group: bounds one call's arrays and the time the lock is held.
const MAX_GROUP_EVENTS: usize = 1000;

/// The largest `append_batch`, in events, that joins the group commit as one
/// unit. A roll call is ~30; above this the in-process plan of `batch.rs` is
/// cheaper than PL/pgSQL's per-event cost (measured there: 1,000 events in
/// 45 ms through the function).
pub(super) const MAX_UNIT_EVENTS: usize = 200;

/// A request that passed every check needing no database.
#[derive(Debug)]
pub(super) struct Prepared {
    stream_id: String,
    partition: Partition,
    expected: ExpectedVersion,
    idempotency: Option<Idempotency>,
    events: Vec<PreparedEvent>,
}

pub(super) fn prepare(requests: Vec<AppendRequest>) -> Result<Vec<Prepared>> {
    plan::validate(&requests)?;
    requests
        .into_iter()
        .map(|r| {
            Ok(Prepared {
                events: r
                    .events
                    .iter()
                    .map(plan::prepare_event)
                    .collect::<Result<_>>()?,
                stream_id: r.stream_id,
                partition: r.partition,
                expected: r.expected,
                idempotency: r.idempotency,
            })
        })
        .collect()
}

#[derive(Debug)]
pub(super) enum Job {
    /// One caller's append: grouped with other callers'.
    Single(Prepared, oneshot::Sender<Result<AppendOutcome>>),
    /// A small `append_batch`: one unit, all or nothing, grouped with other
    /// callers' appends.
    Unit(Vec<Prepared>, oneshot::Sender<Result<Vec<AppendOutcome>>>),
    /// A large `append_batch`: committed alone, planned in the process
    /// (`batch.rs`).
    Batch(
        Vec<AppendRequest>,
        oneshot::Sender<Result<Vec<AppendOutcome>>>,
    ),
}

/// Counts of the append path, for operators and tests: how well concurrent
/// appends are grouped is `requests / calls`.
#[derive(Debug, Default)]
pub struct AppendCounters {
    /// Requests handed to the committer (single appends and batches' requests).
    pub requests: AtomicU64,
    /// `registre_append` calls made (one transaction, one WAL flush each).
    pub calls: AtomicU64,
}

/// A reading of [`AppendCounters`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendStats {
    pub requests: u64,
    pub calls: u64,
}

impl AppendCounters {
    pub fn read(&self) -> AppendStats {
        AppendStats {
            requests: self.requests.load(Ordering::Relaxed),
            calls: self.calls.load(Ordering::Relaxed),
        }
    }
}

/// What the committer needs: connections, and the watches to raise after a
/// commit (this node's readers, and the NOTIFY task).
pub(super) struct Committer {
    pub pool: Pool,
    pub wake: watch::Sender<Position>,
    pub local: watch::Sender<Position>,
    pub counters: Arc<AppendCounters>,
}

/// One caller's requests inside a group, and where its answer goes.
#[derive(Debug)]
struct Unit {
    requests: Vec<Prepared>,
    reply: Reply,
}

#[derive(Debug)]
enum Reply {
    Single(oneshot::Sender<Result<AppendOutcome>>),
    Unit(oneshot::Sender<Result<Vec<AppendOutcome>>>),
}

impl Unit {
    fn events(&self) -> usize {
        self.requests.iter().map(|r| r.events.len()).sum()
    }

    fn answer(self, result: Result<Vec<AppendOutcome>>) {
        match self.reply {
            Reply::Single(reply) => {
                let _ = reply.send(result.and_then(|mut outcomes| {
                    outcomes
                        .pop()
                        .ok_or_else(|| StoreError::Backend("append produced no outcome".into()))
                }));
            }
            Reply::Unit(reply) => {
                let _ = reply.send(result);
            }
        }
    }
}

impl Committer {
    pub async fn run(self, mut jobs: mpsc::Receiver<Job>) {
        let mut held: Option<Job> = None;
        loop {
            let job = match held.take() {
                Some(job) => job,
                None => match jobs.recv().await {
                    Some(job) => job,
                    None => return,
                },
            };
            let first = match job {
                Job::Batch(requests, reply) => {
                    let _ = reply.send(self.commit_batch(&requests).await);
                    continue;
                }
                Job::Single(request, reply) => Unit {
                    requests: vec![request],
                    reply: Reply::Single(reply),
                },
                Job::Unit(requests, reply) => Unit {
                    requests,
                    reply: Reply::Unit(reply),
                },
            };
            let mut events = first.events();
            let mut group = vec![first];
            while events < MAX_GROUP_EVENTS {
                let unit = match jobs.try_recv() {
                    Ok(Job::Single(request, reply)) => Unit {
                        requests: vec![request],
                        reply: Reply::Single(reply),
                    },
                    Ok(Job::Unit(requests, reply)) => Unit {
                        requests,
                        reply: Reply::Unit(reply),
                    },
                    Ok(batch) => {
                        held = Some(batch);
                        break;
                    }
                    Err(_) => break,
                };
                events += unit.events();
                group.push(unit);
            }
            let results = self.commit_group(&group).await;
            for (unit, result) in group.into_iter().zip(results) {
                unit.answer(result);
            }
        }
    }

    async fn commit_batch(&self, requests: &[AppendRequest]) -> Result<Vec<AppendOutcome>> {
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        let (outcomes, head) = super::batch::append_planned(&self.pool, requests).await?;
        if let Some(head) = head {
            bump(&self.wake, head);
            bump(&self.local, head);
        }
        Ok(outcomes)
    }

    /// Each unit's outcomes.
    async fn commit_group(&self, group: &[Unit]) -> Vec<Result<Vec<AppendOutcome>>> {
        match self.commit_units(group).await {
            // One request's event id is already in the log (or twice in the
            // group): the whole call was rolled back. Find whose, one by one.
            Err(StoreError::InvalidAppend(_)) if group.len() > 1 => {
                let mut results = Vec::with_capacity(group.len());
                for unit in group {
                    results.push(match self.commit_units(std::slice::from_ref(unit)).await {
                        Ok(mut one) => one.pop().unwrap_or_else(|| {
                            Err(StoreError::Backend("append produced no outcome".into()))
                        }),
                        Err(e) => Err(e),
                    });
                }
                results
            }
            Ok(results) => results,
            Err(e) => group.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    /// One call for `group`; each unit's outcomes, or the call's error.
    async fn commit_units(&self, group: &[Unit]) -> Result<Vec<Result<Vec<AppendOutcome>>>> {
        let requests: Vec<&Prepared> = group.iter().flat_map(|u| &u.requests).collect();
        let units: Vec<i32> = group
            .iter()
            .zip(0i32..)
            .flat_map(|(u, n)| u.requests.iter().map(move |_| n))
            .collect();
        let slots = self.call(&requests, &units).await?;
        if slots.len() != requests.len() {
            return Err(StoreError::Backend(format!(
                "append answered {} of {} requests",
                slots.len(),
                requests.len()
            )));
        }
        // Each unit's slots follow one another, in the group's order.
        let mut first = 0;
        let failures: Vec<Option<StoreError>> = group
            .iter()
            .map(|unit| {
                let mine = &slots[first..first + unit.requests.len()];
                first += unit.requests.len();
                mine.iter().find_map(|slot| slot.failure(&requests))
            })
            .collect();
        let mut outcomes = self.outcomes(&requests, slots).await?.into_iter();
        Ok(group
            .iter()
            .zip(failures)
            .map(|(unit, failure)| {
                let mine: Vec<Result<AppendOutcome>> =
                    outcomes.by_ref().take(unit.requests.len()).collect();
                match failure {
                    Some(e) => Err(e),
                    None => mine.into_iter().collect(),
                }
            })
            .collect())
    }

    /// One `registre_append` call, committed on return.
    /// Requests with the same number in `units` (consecutive) are all or
    /// nothing.
    async fn call(&self, requests: &[&Prepared], units: &[i32]) -> Result<Vec<Slot>> {
        let n = requests.len();
        let events: usize = requests.iter().map(|r| r.events.len()).sum();
        let mut req_stream = Vec::with_capacity(n);
        let mut req_expect: Vec<i16> = Vec::with_capacity(n);
        let mut req_version: Vec<i64> = Vec::with_capacity(n);
        let mut req_key = Vec::with_capacity(n);
        let mut req_fingerprint = Vec::with_capacity(n);
        let mut req_events: Vec<i32> = Vec::with_capacity(n);
        let mut ev_id = Vec::with_capacity(events);
        let mut ev_type = Vec::with_capacity(events);
        let mut ev_schema: Vec<i32> = Vec::with_capacity(events);
        let mut ev_data = Vec::with_capacity(events);
        let mut ev_metadata = Vec::with_capacity(events);
        let mut ev_occurred = Vec::with_capacity(events);
        let mut ev_occurred_text = Vec::with_capacity(events);
        let mut ev_partition = Vec::with_capacity(events);
        for r in requests {
            req_stream.push(r.stream_id.as_str());
            let (kind, version) = match r.expected {
                ExpectedVersion::Any => (0, 0),
                ExpectedVersion::NoStream => (1, 0),
                ExpectedVersion::Exact(v) => (2, to_i64(v)?),
            };
            req_expect.push(kind);
            req_version.push(version);
            req_key.push(r.idempotency.as_ref().map(|i| i.key.as_str()));
            req_fingerprint.push(r.idempotency.as_ref().map(|i| i.fingerprint.as_str()));
            req_events.push(
                i32::try_from(r.events.len())
                    .map_err(|_| StoreError::InvalidAppend("too many events".into()))?,
            );
            for e in &r.events {
                ev_id.push(e.event_id);
                ev_type.push(e.event_type.as_str());
                ev_schema.push(i32::try_from(e.schema_version).map_err(|_| {
                    StoreError::InvalidAppend("schema version out of range".into())
                })?);
                ev_data.push(e.data_text.as_str());
                ev_metadata.push(e.metadata_text.as_str());
                ev_occurred.push(e.metadata.occurred_at);
                ev_occurred_text.push(chain::timestamp_text(&e.metadata.occurred_at));
                ev_partition.push(r.partition.as_str());
            }
        }

        let client = self.pool.get().await.map_err(pool_err)?;
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        let statement = client
            .prepare_cached(
                "SELECT req, status, first_position, last_position, version, same_as, \
                 recorded_at, hashes FROM registre_append($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                 $10, $11, $12, $13, $14, $15)",
            )
            .await
            .map_err(pg("prepare append"))?;
        let params: [&(dyn ToSql + Sync); 15] = [
            &units,
            &req_stream,
            &req_expect,
            &req_version,
            &req_key,
            &req_fingerprint,
            &req_events,
            &ev_id,
            &ev_type,
            &ev_schema,
            &ev_data,
            &ev_metadata,
            &ev_occurred,
            &ev_occurred_text,
            &ev_partition,
        ];
        let rows = client.query(&statement, &params).await.map_err(|e| {
            let is_event_id = e.code() == Some(&SqlState::UNIQUE_VIOLATION)
                && e.as_db_error().and_then(|d| d.constraint()) == Some("events_event_id_key");
            if is_event_id {
                StoreError::InvalidAppend("an event id is already in the log".into())
            } else {
                StoreError::Backend(format!("postgres: append: {e}"))
            }
        })?;
        let mut slots = rows
            .iter()
            .map(Slot::from_row)
            .collect::<Result<Vec<_>>>()?;
        // A failed unit wrote nothing: the positions its earlier requests were
        // answered were taken back (and given to later units).
        let failed: std::collections::HashSet<i32> = units
            .iter()
            .zip(&slots)
            .filter(|(_, slot)| slot.is_failure())
            .map(|(unit, _)| *unit)
            .collect();
        if !failed.is_empty() {
            for (slot, unit) in slots.iter_mut().zip(units) {
                if failed.contains(unit) && matches!(slot, Slot::Written { .. }) {
                    *slot = Slot::Aborted;
                }
            }
        }
        if let Some(head) = slots
            .iter()
            .filter_map(|s| match s {
                Slot::Written { last, .. } => Some(*last),
                _ => None,
            })
            .max()
        {
            bump(&self.wake, head);
            bump(&self.local, head);
        }
        Ok(slots)
    }

    /// Each request's outcome, reading the events of deduplicated retries.
    async fn outcomes(
        &self,
        requests: &[&Prepared],
        slots: Vec<Slot>,
    ) -> Result<Vec<Result<AppendOutcome>>> {
        if slots.len() != requests.len() {
            return Err(StoreError::Backend(format!(
                "append answered {} of {} requests",
                slots.len(),
                requests.len()
            )));
        }
        let mut dedup: Vec<i64> = Vec::new();
        for slot in &slots {
            if let Slot::Deduplicated { first, last } = slot {
                for p in *first..=*last {
                    dedup.push(to_i64(p)?);
                }
            }
        }
        let mut earlier: HashMap<Position, RecordedEvent> = HashMap::new();
        if !dedup.is_empty() {
            let client = self.pool.get().await.map_err(pool_err)?;
            let statement = client
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE position = ANY($1) ORDER BY position"
                ))
                .await
                .map_err(pg("prepare read"))?;
            for row in client
                .query(&statement, &[&dedup])
                .await
                .map_err(pg("read"))?
            {
                let event = event_from_row(&row)?;
                earlier.insert(event.position, event);
            }
        }

        let mut results: Vec<Result<AppendOutcome>> = Vec::with_capacity(requests.len());
        for (request, slot) in requests.iter().zip(slots) {
            let result = match slot {
                Slot::Written {
                    first,
                    version_before,
                    recorded_at,
                    hashes,
                    ..
                } => {
                    if hashes.len() != request.events.len() {
                        return Err(StoreError::Backend(
                            "append answered the wrong number of hashes".into(),
                        ));
                    }
                    let events = request
                        .events
                        .iter()
                        .zip(hashes)
                        .zip(0u64..)
                        .map(|((e, hash), i)| {
                            e.clone()
                                .into_row(
                                    &request.stream_id,
                                    &request.partition,
                                    first + i,
                                    version_before + i + 1,
                                    recorded_at,
                                    hash,
                                )
                                .event
                        })
                        .collect();
                    Ok(AppendOutcome {
                        events,
                        deduplicated: false,
                    })
                }
                Slot::Deduplicated { first, last } => (first..=last)
                    .map(|p| {
                        earlier.get(&p).cloned().ok_or_else(|| {
                            StoreError::Corrupt(format!(
                                "idempotency key points at missing position {p}"
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>>>()
                    .map(|events| AppendOutcome {
                        events,
                        deduplicated: true,
                    }),
                Slot::SameAs(i) => match results.get(i) {
                    Some(Ok(outcome)) => Ok(AppendOutcome {
                        events: outcome.events.clone(),
                        deduplicated: true,
                    }),
                    Some(Err(e)) => Err(e.clone()),
                    None => Err(StoreError::Corrupt(
                        "append refers to a later request".into(),
                    )),
                },
                failed => Err(failed.failure(requests).unwrap_or_else(|| {
                    StoreError::Backend("append status without outcome".into())
                })),
            };
            results.push(result);
        }
        Ok(results)
    }
}

/// What `registre_append` answered for one request.
#[derive(Debug)]
enum Slot {
    Written {
        first: Position,
        last: Position,
        version_before: u64,
        recorded_at: DateTime<Utc>,
        hashes: Vec<[u8; 32]>,
    },
    Deduplicated {
        first: Position,
        last: Position,
    },
    SameAs(usize),
    Conflict {
        request: usize,
        actual: u64,
    },
    KeyReused {
        request: usize,
    },
    /// Not written: another request of its unit failed.
    Aborted,
}

impl Slot {
    fn from_row(row: &tokio_postgres::Row) -> Result<Slot> {
        let col = |e: tokio_postgres::Error| StoreError::Backend(format!("append answer: {e}"));
        let position = |name: &str| -> Result<u64> {
            to_u64(
                row.try_get::<_, Option<i64>>(name)
                    .map_err(col)?
                    .ok_or_else(|| StoreError::Backend(format!("append answer: {name} missing")))?,
            )
        };
        let index = |name: &str| -> Result<usize> {
            let i: Option<i32> = row.try_get(name).map_err(col)?;
            i.and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| StoreError::Backend(format!("append answer: {name} missing")))
        };
        let status: i16 = row.try_get("status").map_err(col)?;
        Ok(match status {
            0 => {
                let hashes: Vec<Vec<u8>> = row.try_get("hashes").map_err(col)?;
                Slot::Written {
                    first: position("first_position")?,
                    last: position("last_position")?,
                    version_before: position("version")?,
                    recorded_at: row.try_get("recorded_at").map_err(col)?,
                    hashes: hashes
                        .into_iter()
                        .map(|h| {
                            h.try_into().map_err(|_| {
                                StoreError::Corrupt("append hash is not 32 bytes".into())
                            })
                        })
                        .collect::<Result<_>>()?,
                }
            }
            1 => Slot::Deduplicated {
                first: position("first_position")?,
                last: position("last_position")?,
            },
            2 => Slot::SameAs(index("same_as")?),
            3 => Slot::Conflict {
                request: index("req")?,
                actual: position("version")?,
            },
            4 => Slot::KeyReused {
                request: index("req")?,
            },
            5 => Slot::Aborted,
            other => {
                return Err(StoreError::Backend(format!(
                    "append answered unknown status {other}"
                )))
            }
        })
    }

    fn is_failure(&self) -> bool {
        matches!(
            self,
            Slot::Conflict { .. } | Slot::KeyReused { .. } | Slot::Aborted
        )
    }

    /// The error of a refused request (`None` for one aborted with its unit:
    /// the unit's failing request says why).
    fn failure(&self, requests: &[&Prepared]) -> Option<StoreError> {
        match self {
            Slot::Conflict { request, actual } => {
                let r = requests.get(*request)?;
                Some(StoreError::Conflict {
                    stream_id: r.stream_id.clone(),
                    expected: r.expected,
                    actual: *actual,
                })
            }
            Slot::KeyReused { request } => {
                let r = requests.get(*request)?;
                Some(StoreError::IdempotencyKeyReused(
                    r.idempotency.as_ref()?.key.clone(),
                ))
            }
            _ => None,
        }
    }
}
