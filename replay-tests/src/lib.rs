//! Golden event logs for the replay tests: reading and writing the JSON-lines
//! format (see README.md), turning golden lines into the store's
//! [`RecordedEvent`]s (in memory) or [`AppendRequest`]s (to load a real store),
//! and a generator of random *valid* event sequences for the property tests.

pub mod random;
pub mod school;
// school day (issue 13)
pub mod school_day;
pub mod term;

use chrono::{DateTime, Utc};
use registre_domain::DomainEvent;
use registre_projections::Partitioner;
use registre_store::{
    Actor, AppendRequest, EventMetadata, ExpectedVersion, NewEvent, Partition, Position,
    RecordedEvent,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// One line of a golden log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GoldenLine {
    /// Global position: 1, 2, 3... in file order.
    pub position: Position,
    pub recorded_at: DateTime<Utc>,
    /// `None` for a system event.
    #[serde(default)]
    pub actor: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(rename = "type")]
    pub event_type: String,
    pub schema_version: u32,
    pub data: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    #[error("{file}:{line}: {message}")]
    Line {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// Namespace of the event ids derived for golden lines.
const GOLDEN_NS: Uuid = Uuid::from_u128(0x9f0c_2a51_7d3e_4b86_a1c4_5e2f_0b9d_7c31);

/// The directory of the committed golden logs.
pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// Reads a golden log. Blank lines and lines starting with `//` are skipped.
pub fn read_golden(path: &Path) -> Result<Vec<GoldenLine>, GoldenError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| GoldenError::Io(file.clone(), e))?;
    let mut lines = vec![];
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with("//") {
            continue;
        }
        let line: GoldenLine = serde_json::from_str(raw).map_err(|e| GoldenError::Line {
            file: file.clone(),
            line: i + 1,
            message: e.to_string(),
        })?;
        let expected = lines.len() as u64 + 1;
        if line.position != expected {
            return Err(GoldenError::Line {
                file,
                line: i + 1,
                message: format!("position {} where {expected} was expected", line.position),
            });
        }
        lines.push(line);
    }
    Ok(lines)
}

/// Serialises golden lines, one JSON object per line.
pub fn to_jsonl(lines: &[GoldenLine]) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(&serde_json::to_string(l).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// A golden line for a domain event at its current schema version.
pub fn line_of(
    position: Position,
    recorded_at: DateTime<Utc>,
    actor: Option<Actor>,
    reason: Option<String>,
    event: &DomainEvent,
) -> GoldenLine {
    let encoded = event.encode();
    GoldenLine {
        position,
        recorded_at,
        actor,
        reason,
        event_type: encoded.event_type.to_owned(),
        schema_version: encoded.schema_version,
        data: encoded.data,
    }
}

fn metadata(line: &GoldenLine) -> EventMetadata {
    EventMetadata {
        actor: line.actor.clone(),
        correlation_id: Uuid::new_v5(
            &GOLDEN_NS,
            format!("correlation:{}", line.position).as_bytes(),
        ),
        causation_id: None,
        idempotency_key: None,
        occurred_at: line.recorded_at,
        reason: line.reason.clone(),
    }
}

/// The stream of a golden line (decoding it), or a `golden-` stream when the
/// line does not decode (so that undecodable lines still reach the fold).
fn stream_of(line: &GoldenLine) -> String {
    DomainEvent::decode(&line.event_type, line.schema_version, &line.data)
        .map(|e| e.stream().into_string())
        .unwrap_or_else(|_| format!("golden-{}", line.event_type))
}

/// The golden lines as the log would hand them back. The hash is left zero:
/// the projections do not read it (the store's chain tests cover it).
pub fn to_recorded(lines: &[GoldenLine]) -> Vec<RecordedEvent> {
    let mut versions: HashMap<String, u64> = HashMap::new();
    lines
        .iter()
        .map(|l| {
            let stream_id = stream_of(l);
            let version = versions.entry(stream_id.clone()).or_default();
            *version += 1;
            RecordedEvent {
                position: l.position,
                stream_id,
                stream_version: *version,
                event_id: Uuid::new_v5(&GOLDEN_NS, format!("event:{}", l.position).as_bytes()),
                event_type: l.event_type.clone(),
                schema_version: l.schema_version,
                data: l.data.clone(),
                metadata: metadata(l),
                recorded_at: l.recorded_at,
                hash: [0; 32],
                partition: None,
            }
        })
        .collect()
}

/// One append per line, in order, to load a golden log into a real store.
/// The store sets its own `recorded_at`; `occurred_at` keeps the golden time.
pub fn to_appends(lines: &[GoldenLine]) -> Vec<AppendRequest> {
    to_appends_after(&mut Partitioner::new(), lines)
}

/// As [`to_appends`], after the log `partitions` has assigned (a store that
/// already holds events: their links decide the new streams' partitions,
/// as the executor's read model does).
pub fn to_appends_after(partitions: &mut Partitioner, lines: &[GoldenLine]) -> Vec<AppendRequest> {
    lines
        .iter()
        .map(|l| AppendRequest {
            partition: DomainEvent::decode(&l.event_type, l.schema_version, &l.data)
                .map(|e| partitions.assign(&stream_of(l), &e))
                .unwrap_or_else(|_| Partition::directory()),
            stream_id: stream_of(l),
            expected: ExpectedVersion::Any,
            events: vec![NewEvent {
                event_id: Uuid::new_v5(&GOLDEN_NS, format!("event:{}", l.position).as_bytes()),
                event_type: l.event_type.clone(),
                schema_version: l.schema_version,
                data: l.data.clone(),
                metadata: metadata(l),
            }],
            idempotency: None,
        })
        .collect()
}
