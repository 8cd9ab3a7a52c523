//! What an append writes, decided the same way by both backends once they hold
//! the write serialisation: expected versions, idempotency keys, positions,
//! `recorded_at` and the hash chain. The backends only read the inputs and
//! write the outputs.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::chain::{self, HashInput};
use crate::{
    AppendOutcome, AppendRequest, ExpectedVersion, Partition, Position, RecordedEvent, Result,
    StoreError, StreamVersion,
};

/// The newest event of the log, as the next append chains from it.
#[derive(Clone, Debug)]
pub(crate) struct Head {
    pub position: Position,
    pub hash: [u8; 32],
    pub recorded_at: Option<DateTime<Utc>>,
}

impl Head {
    pub fn empty() -> Self {
        Head {
            position: 0,
            hash: chain::GENESIS,
            recorded_at: None,
        }
    }
}

/// An idempotency key already in the log.
#[derive(Clone, Debug)]
pub(crate) struct KeyRecord {
    pub fingerprint: String,
    pub first_position: Position,
    pub last_position: Position,
}

/// One row to insert, with the stored text of its JSON columns.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub event: RecordedEvent,
    pub data_text: String,
    pub metadata_text: String,
}

#[derive(Clone, Debug)]
pub(crate) enum Planned {
    /// Written by this append: `rows[start..end]`.
    Written { start: usize, end: usize },
    /// A retry of an earlier append: its events are at these positions.
    Deduplicated { first: Position, last: Position },
    /// A repeat, within the same batch, of the request at this index.
    SameAs(usize),
}

#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub rows: Vec<Row>,
    /// `(key, fingerprint, first, last)` to insert.
    pub keys: Vec<(String, String, Position, Position)>,
    pub outcomes: Vec<Planned>,
}

/// The stream ids and idempotency keys whose state `plan` needs.
pub(crate) fn lookups(requests: &[AppendRequest]) -> (Vec<String>, Vec<String>) {
    let mut streams: Vec<String> = requests.iter().map(|r| r.stream_id.clone()).collect();
    streams.sort();
    streams.dedup();
    let mut keys: Vec<String> = requests
        .iter()
        .filter_map(|r| r.idempotency.as_ref().map(|i| i.key.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    (streams, keys)
}

/// Checks requests that need no database: run before taking any lock.
pub(crate) fn validate(requests: &[AppendRequest]) -> Result<()> {
    let mut ids = HashSet::new();
    for r in requests {
        if r.stream_id.is_empty() {
            return Err(StoreError::InvalidAppend("empty stream id".into()));
        }
        if let Some(i) = &r.idempotency {
            if i.key.is_empty() {
                return Err(StoreError::InvalidAppend("empty idempotency key".into()));
            }
        }
        for e in &r.events {
            if e.event_type.is_empty() {
                return Err(StoreError::InvalidAppend("empty event type".into()));
            }
            if !ids.insert(e.event_id) {
                return Err(StoreError::InvalidAppend(format!(
                    "event id {} appears twice",
                    e.event_id
                )));
            }
        }
    }
    Ok(())
}

/// An event in the form the log stores: canonical text for the hash and the
/// columns, and the values a reader will parse back.
#[derive(Clone, Debug)]
pub(crate) struct PreparedEvent {
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub data: serde_json::Value,
    pub data_text: String,
    pub metadata: crate::EventMetadata,
    pub metadata_text: String,
}

/// Canonicalises one event. Needs no database, so backends run it before
/// taking the write serialisation.
pub(crate) fn prepare_event(new: &crate::NewEvent) -> Result<PreparedEvent> {
    let mut metadata = new.metadata.clone();
    metadata.occurred_at = chain::truncate_micros(metadata.occurred_at);
    let data_text = chain::canonical_json(&new.data);
    let metadata_text = chain::canonical_metadata(&metadata)?;
    // What a reader will parse back: storing the canonical text and returning
    // its parse keeps append's answer equal to a later read.
    let data = serde_json::from_str(&data_text)
        .map_err(|e| StoreError::InvalidAppend(format!("data does not round-trip: {e}")))?;
    Ok(PreparedEvent {
        event_id: new.event_id,
        event_type: new.event_type.clone(),
        schema_version: new.schema_version,
        data,
        data_text,
        metadata,
        metadata_text,
    })
}

impl PreparedEvent {
    /// The row once the serialisation has given it its place in the log.
    pub fn into_row(
        self,
        stream_id: &str,
        partition: &Partition,
        position: Position,
        stream_version: StreamVersion,
        recorded_at: DateTime<Utc>,
        hash: [u8; 32],
    ) -> Row {
        Row {
            event: RecordedEvent {
                position,
                stream_id: stream_id.to_owned(),
                stream_version,
                event_id: self.event_id,
                event_type: self.event_type,
                schema_version: self.schema_version,
                data: self.data,
                metadata: self.metadata,
                recorded_at,
                hash,
                partition: Some(partition.clone()),
            },
            data_text: self.data_text,
            metadata_text: self.metadata_text,
        }
    }
}

/// Decides the append. `versions` holds the last version of each stream that
/// exists; `keys` the idempotency keys already used; `now` the clock.
pub(crate) fn plan(
    requests: &[AppendRequest],
    head: &Head,
    versions: &HashMap<String, StreamVersion>,
    keys: &HashMap<String, KeyRecord>,
    now: DateTime<Utc>,
) -> Result<Plan> {
    // recorded_at never goes backwards along the log, even when nodes' clocks
    // disagree: auditors read it as the order of record.
    let now = chain::truncate_micros(now);
    let recorded_at = match head.recorded_at {
        Some(prev) if prev > now => prev,
        _ => now,
    };
    let mut versions = versions.clone();
    let mut batch_keys: HashMap<&str, (&str, usize)> = HashMap::new();
    let mut position = head.position;
    let mut prev_hash = head.hash;
    let mut plan = Plan {
        rows: Vec::new(),
        keys: Vec::new(),
        outcomes: Vec::with_capacity(requests.len()),
    };

    for (index, request) in requests.iter().enumerate() {
        if let Some(idem) = &request.idempotency {
            if let Some(found) = keys.get(&idem.key) {
                if found.fingerprint != idem.fingerprint {
                    return Err(StoreError::IdempotencyKeyReused(idem.key.clone()));
                }
                plan.outcomes.push(Planned::Deduplicated {
                    first: found.first_position,
                    last: found.last_position,
                });
                continue;
            }
            if let Some((fingerprint, earlier)) = batch_keys.get(idem.key.as_str()) {
                if *fingerprint != idem.fingerprint {
                    return Err(StoreError::IdempotencyKeyReused(idem.key.clone()));
                }
                plan.outcomes.push(Planned::SameAs(*earlier));
                continue;
            }
        }

        let actual = versions.get(&request.stream_id).copied().unwrap_or(0);
        let ok = match request.expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        };
        if !ok {
            return Err(StoreError::Conflict {
                stream_id: request.stream_id.clone(),
                expected: request.expected,
                actual,
            });
        }

        let start = plan.rows.len();
        let mut version = actual;
        for new in &request.events {
            position += 1;
            version += 1;
            let prepared = prepare_event(new)?;
            let hash = chain::event_hash(
                &prev_hash,
                &HashInput {
                    position,
                    stream_id: &request.stream_id,
                    stream_version: version,
                    event_id: new.event_id,
                    event_type: &new.event_type,
                    schema_version: new.schema_version,
                    data: &prepared.data_text,
                    metadata: &prepared.metadata_text,
                    occurred_at: prepared.metadata.occurred_at,
                    recorded_at,
                },
            );
            prev_hash = hash;
            plan.rows.push(prepared.into_row(
                &request.stream_id,
                &request.partition,
                position,
                version,
                recorded_at,
                hash,
            ));
        }
        versions.insert(request.stream_id.clone(), version);
        let end = plan.rows.len();
        if let Some(idem) = &request.idempotency {
            batch_keys.insert(&idem.key, (&idem.fingerprint, index));
            // A request that wrote nothing has no positions to remember: its
            // retry re-checks the expected version and writes nothing either.
            if end > start {
                plan.keys.push((
                    idem.key.clone(),
                    idem.fingerprint.clone(),
                    plan.rows[start].event.position,
                    plan.rows[end - 1].event.position,
                ));
            }
        }
        plan.outcomes.push(Planned::Written { start, end });
    }
    Ok(plan)
}

impl Plan {
    /// The positions of deduplicated outcomes, which the backend must read.
    pub fn dedup_positions(&self) -> Vec<Position> {
        let mut out = Vec::new();
        for o in &self.outcomes {
            if let Planned::Deduplicated { first, last } = o {
                out.extend(*first..=*last);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The outcomes, given the events read at [`Plan::dedup_positions`].
    pub fn into_outcomes(self, earlier: Vec<RecordedEvent>) -> Result<Vec<AppendOutcome>> {
        let by_position: HashMap<Position, RecordedEvent> =
            earlier.into_iter().map(|e| (e.position, e)).collect();
        let mut outcomes: Vec<AppendOutcome> = Vec::with_capacity(self.outcomes.len());
        for o in &self.outcomes {
            let outcome = match o {
                Planned::Written { start, end } => AppendOutcome {
                    events: self.rows[*start..*end]
                        .iter()
                        .map(|r| r.event.clone())
                        .collect(),
                    deduplicated: false,
                },
                Planned::Deduplicated { first, last } => {
                    let events = (*first..=*last)
                        .map(|p| {
                            by_position.get(&p).cloned().ok_or_else(|| {
                                StoreError::Corrupt(format!(
                                    "idempotency key points at missing position {p}"
                                ))
                            })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    AppendOutcome {
                        events,
                        deduplicated: true,
                    }
                }
                Planned::SameAs(i) => {
                    let earlier = outcomes.get(*i).ok_or_else(|| {
                        StoreError::Corrupt("batch refers to a later request".into())
                    })?;
                    AppendOutcome {
                        events: earlier.events.clone(),
                        deduplicated: true,
                    }
                }
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }
}
