//! The hash chain that makes the log tamper-evident.
//!
//! Every event's hash is SHA-256 over the previous event's hash (32 zero bytes
//! for position 1) followed by a length-prefixed encoding of its fields: each
//! field is an 8-byte big-endian length then its bytes. Integers are 8-byte
//! big-endian, the event id its 16 bytes, strings UTF-8, data and metadata
//! their canonical JSON ([`canonical_json`]), timestamps RFC 3339 with
//! microseconds and `Z`. Length prefixes make the encoding unambiguous: no two
//! different rows encode to the same bytes.
//!
//! [`verify_chain`] walks the whole log and names the first position where an
//! altered, removed or reordered row breaks the chain. Removing the newest rows
//! leaves a shorter chain that still verifies: an auditor who kept a
//! [`ChainCheckpoint`] proves that with [`verify_checkpoint`].
//!
//! Verification recomputes hashes from the decoded events, so the serialised
//! form of [`EventMetadata`] is part of the chain's format: a field added to it
//! later must be skipped when absent (`skip_serializing_if`), or events written
//! before the change would no longer verify.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    EventMetadata, EventStore, LogReader, Position, RecordedEvent, Result, StoreError,
    StreamVersion,
};

/// The previous hash of the first event.
pub const GENESIS: [u8; 32] = [0; 32];

/// JSON with object keys sorted (by their UTF-8 bytes) at every depth and no
/// whitespace. Written out here rather than through serde_json's map, whose
/// order depends on a crate feature any dependency may turn on.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    // serde_json's string escaping is deterministic (it does not depend on
    // any feature), so it is reused for the escapes.
    match serde_json::to_string(s) {
        Ok(escaped) => out.push_str(&escaped),
        // Serialising a &str into a String cannot fail.
        Err(_) => out.push_str("\"\""),
    }
}

/// Canonical JSON of event metadata, as stored and hashed.
pub fn canonical_metadata(metadata: &EventMetadata) -> Result<String> {
    let value = serde_json::to_value(metadata)
        .map_err(|e| StoreError::InvalidAppend(format!("metadata does not serialise: {e}")))?;
    Ok(canonical_json(&value))
}

/// A timestamp as the chain encodes it (and the SQLite backend stores it).
pub fn timestamp_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `t` without its sub-microsecond part: the precision both backends keep, so
/// that what is hashed at append is what is read back.
pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// The fields of an event the hash covers, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct HashInput<'a> {
    pub position: Position,
    pub stream_id: &'a str,
    pub stream_version: StreamVersion,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub schema_version: u32,
    /// Canonical JSON.
    pub data: &'a str,
    /// Canonical JSON.
    pub metadata: &'a str,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

/// The hash of one event given the hash of the one before it.
pub fn event_hash(prev_hash: &[u8; 32], input: &HashInput<'_>) -> [u8; 32] {
    fn field(h: &mut Sha256, bytes: &[u8]) {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    let mut h = Sha256::new();
    h.update(prev_hash);
    field(&mut h, &input.position.to_be_bytes());
    field(&mut h, input.stream_id.as_bytes());
    field(&mut h, &input.stream_version.to_be_bytes());
    field(&mut h, input.event_id.as_bytes());
    field(&mut h, input.event_type.as_bytes());
    field(&mut h, &u64::from(input.schema_version).to_be_bytes());
    field(&mut h, input.data.as_bytes());
    field(&mut h, input.metadata.as_bytes());
    field(&mut h, timestamp_text(&input.occurred_at).as_bytes());
    field(&mut h, timestamp_text(&input.recorded_at).as_bytes());
    h.finalize().into()
}

/// Recomputes a recorded event's hash from its fields.
pub fn recompute(prev_hash: &[u8; 32], event: &RecordedEvent) -> Result<[u8; 32]> {
    let data = canonical_json(&event.data);
    let metadata = canonical_metadata(&event.metadata)?;
    Ok(event_hash(
        prev_hash,
        &HashInput {
            position: event.position,
            stream_id: &event.stream_id,
            stream_version: event.stream_version,
            event_id: event.event_id,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            data: &data,
            metadata: &metadata,
            occurred_at: event.metadata.occurred_at,
            recorded_at: event.recorded_at,
        },
    ))
}

/// Why the chain broke.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BreakKind {
    /// The stored hash is not the hash of the row's content and its
    /// predecessor: the row (or one before it) was altered, or rows were
    /// reordered.
    HashMismatch,
    /// The position read is not the one expected: rows were removed (or
    /// reordered so that a position is missing).
    Gap { found: Position },
}

/// The first position where the chain does not hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    pub position: Position,
    pub kind: BreakKind,
}

/// The outcome of [`verify_chain`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    /// Events read and checked (up to the break, if any).
    pub events_checked: u64,
    /// The last position that verified.
    pub verified_head: Position,
    /// The hash at `verified_head` ([`GENESIS`] for an empty log).
    #[serde(with = "crate::hex_bytes")]
    pub head_hash: [u8; 32],
    pub first_break: Option<ChainBreak>,
}

impl ChainReport {
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Walks the whole log in pages and checks every link. `progress` is called
/// after each page with the last position read.
pub async fn verify_chain(
    store: &dyn EventStore,
    mut progress: impl FnMut(Position),
) -> Result<ChainReport> {
    let mut report = ChainReport {
        events_checked: 0,
        verified_head: 0,
        head_hash: GENESIS,
        first_break: None,
    };
    let mut log = LogReader::new(store, 0);
    loop {
        let page = log.next_page().await?;
        let Some(last) = page.last() else {
            return Ok(report);
        };
        let after = last.position;
        for event in &page {
            report.events_checked += 1;
            let expected = report.verified_head + 1;
            if event.position != expected {
                report.first_break = Some(ChainBreak {
                    position: expected,
                    kind: BreakKind::Gap {
                        found: event.position,
                    },
                });
                return Ok(report);
            }
            let hash = recompute(&report.head_hash, event)?;
            if hash != event.hash {
                report.first_break = Some(ChainBreak {
                    position: event.position,
                    kind: BreakKind::HashMismatch,
                });
                return Ok(report);
            }
            report.verified_head = event.position;
            report.head_hash = hash;
        }
        progress(after);
    }
}

/// The log's head at a moment: kept by an auditor (printed, mailed, signed),
/// it later proves that the log up to `position` was not rewritten or cut.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainCheckpoint {
    pub position: Position,
    #[serde(with = "crate::hex_bytes")]
    pub hash: [u8; 32],
    /// When the checkpoint was taken.
    pub at: DateTime<Utc>,
}

/// The current head as a checkpoint (position 0 and [`GENESIS`] for an empty log).
pub async fn checkpoint(store: &dyn EventStore) -> Result<ChainCheckpoint> {
    let at = Utc::now();
    let head = store.head().await?;
    if head == 0 {
        return Ok(ChainCheckpoint {
            position: 0,
            hash: GENESIS,
            at,
        });
    }
    let events = store.read_positions(&[head]).await?;
    let event = events
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt(format!("head position {head} is missing")))?;
    Ok(ChainCheckpoint {
        position: event.position,
        hash: event.hash,
        at,
    })
}

/// Whether the log still holds the checkpoint's event with the same hash.
/// Combined with an intact [`verify_chain`], this proves that nothing up to the
/// checkpoint was rewritten or removed since it was taken.
pub async fn verify_checkpoint(
    store: &dyn EventStore,
    checkpoint: &ChainCheckpoint,
) -> Result<bool> {
    if checkpoint.position == 0 {
        return Ok(checkpoint.hash == GENESIS);
    }
    let events = store.read_positions(&[checkpoint.position]).await?;
    Ok(events
        .first()
        .is_some_and(|e| e.position == checkpoint.position && e.hash == checkpoint.hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth_without_whitespace() {
        let v = json!({"b": 1, "a": {"z": [true, null, {"y": 2, "x": "é\n"}], "c": 1.5}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":1.5,"z":[true,null,{"x":"é\n","y":2}]},"b":1}"#
        );
    }

    #[test]
    fn canonical_json_reparses_to_the_same_text() {
        let v = json!({"n": -12.25, "big": 12345678901234567u64, "s": "\u{1}\"q\""});
        let text = canonical_json(&v);
        let back: Value = serde_json::from_str(&text).expect("canonical JSON parses");
        assert_eq!(canonical_json(&back), text);
    }

    #[test]
    fn every_field_changes_the_hash() {
        let t = DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid time");
        let base = HashInput {
            position: 1,
            stream_id: "s",
            stream_version: 1,
            event_id: Uuid::nil(),
            event_type: "T",
            schema_version: 1,
            data: "{}",
            metadata: "{}",
            occurred_at: t,
            recorded_at: t,
        };
        let h = event_hash(&GENESIS, &base);
        let later = t + chrono::Duration::microseconds(1);
        let variants = [
            HashInput {
                position: 2,
                ..base
            },
            HashInput {
                stream_id: "t",
                ..base
            },
            HashInput {
                stream_version: 2,
                ..base
            },
            HashInput {
                event_id: Uuid::max(),
                ..base
            },
            HashInput {
                event_type: "U",
                ..base
            },
            HashInput {
                schema_version: 2,
                ..base
            },
            HashInput { data: "[]", ..base },
            HashInput {
                metadata: "[]",
                ..base
            },
            HashInput {
                occurred_at: later,
                ..base
            },
            HashInput {
                recorded_at: later,
                ..base
            },
            // Moving bytes between adjacent fields must not collide.
            HashInput {
                stream_id: "sT",
                event_type: "",
                ..base
            },
        ];
        for v in variants {
            assert_ne!(event_hash(&GENESIS, &v), h, "{v:?}");
        }
        assert_ne!(event_hash(&[1; 32], &base), h);
    }
}
