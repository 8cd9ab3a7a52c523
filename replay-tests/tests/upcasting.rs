//! Old schema versions replay to the same views. No event type has a second
//! schema version yet (`domain::codec::upcast` is the identity and every type
//! is at v1), so this checks the path every upcaster will go through: golden
//! lines are decoded at the version they were *written* with, and folding them
//! equals folding their re-encoding at today's version. When an event type
//! gets a v2, the golden log keeps its v1 lines and this test starts proving
//! the upcaster. A version newer than the build stops the fold cleanly.
#![allow(clippy::unwrap_used)]

use registre_domain::codec::{current_schema_version, DecodeError};
use registre_domain::DomainEvent;
use registre_projections::{ApplyError, ReadModel};
use registre_replay_tests::{golden_dir, read_golden, to_recorded, GoldenLine};

fn fold(lines: &[GoldenLine]) -> ReadModel {
    let mut model = ReadModel::new();
    model.apply_all(&to_recorded(lines)).unwrap();
    model
}

#[test]
fn stored_versions_replay_to_the_same_views_as_the_current_encoding() {
    let stored = read_golden(&golden_dir().join("school.jsonl")).unwrap();
    let current: Vec<GoldenLine> = stored
        .iter()
        .map(|l| {
            let event = DomainEvent::decode(&l.event_type, l.schema_version, &l.data)
                .unwrap_or_else(|e| panic!("position {}: {e}", l.position));
            let encoded = event.encode();
            assert_eq!(
                encoded.schema_version,
                current_schema_version(&l.event_type)
            );
            GoldenLine {
                schema_version: encoded.schema_version,
                data: encoded.data,
                ..l.clone()
            }
        })
        .collect();
    assert_eq!(fold(&stored), fold(&current));
}

#[test]
fn a_version_newer_than_the_build_stops_the_fold_at_the_event_before() {
    let mut lines = read_golden(&golden_dir().join("school.jsonl")).unwrap();
    let at = 30;
    lines[at].schema_version = current_schema_version(&lines[at].event_type) + 1;
    let mut model = ReadModel::new();
    let err = model.apply_all(&to_recorded(&lines)).unwrap_err();
    let ApplyError::Decode { position, source } = err;
    assert_eq!(position, at as u64 + 1);
    assert!(matches!(source, DecodeError::FutureVersion { .. }));
    assert_eq!(
        model.position(),
        at as u64,
        "consistent at the event before"
    );
    assert_eq!(model, fold(&lines[..at]));
}
