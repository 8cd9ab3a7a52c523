//! Stored events, as a corrupted or hostile log could hold them, through the
//! decoding and upcasting path (`registre_domain::codec`) and the read
//! model's fold (`ReadModel::apply`, what a node does with every event at
//! start and after every commit).
//!
//! The input is a JSON array of `{"type", "version", "data"}` records (the
//! seed corpus holds real encoded events: one of every type); bytes that are
//! not such an array are taken as one record whose type is picked by the
//! first byte and whose data is the rest.
//!
//! Asserted: no panic; decoding the data's text (a rebuild's path) answers
//! what decoding its tree answers; every refusal is a typed `DecodeError` of the right
//! kind (an unknown type is `UnknownType`, a version above the current one
//! `FutureVersion`); whatever decodes encodes back to data that decodes to
//! the same event (the stored form is a fixed point); the fold either applies
//! an event or stops with `ApplyError::Decode` at its position.
#![no_main]

use chrono::Utc;
use libfuzzer_sys::fuzz_target;
use registre_domain::codec::{current_schema_version, DecodeError, EVENT_TYPES};
use registre_domain::DomainEvent;
use registre_projections::ReadModel;
use registre_store::{EventMetadata, RecordedEvent};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "type")]
    event_type: String,
    version: u32,
    data: Value,
}

fn records(data: &[u8]) -> Vec<Raw> {
    if let Ok(list) = serde_json::from_slice::<Vec<Raw>>(data) {
        return list;
    }
    let Some((&pick, rest)) = data.split_first() else {
        return Vec::new();
    };
    let event_type = EVENT_TYPES
        .get(usize::from(pick) % (EVENT_TYPES.len() + 1))
        .map_or_else(
            || String::from_utf8_lossy(rest).into_owned(),
            |t| (*t).to_owned(),
        );
    let data = serde_json::from_slice(rest).unwrap_or(Value::Null);
    vec![Raw {
        event_type,
        version: 1,
        data,
    }]
}

fn check_decode(raw: &Raw) {
    // A rebuild decodes the stored text (`decode_text`, no tree); it must
    // answer what decoding the tree answers.
    let from_tree = DomainEvent::decode(&raw.event_type, raw.version, &raw.data);
    let from_text = DomainEvent::decode_text(&raw.event_type, raw.version, &raw.data.to_string());
    match (&from_tree, &from_text) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the text decodes to the tree's event"),
        (Err(a), Err(b)) => assert_eq!(
            std::mem::discriminant(a),
            std::mem::discriminant(b),
            "refused alike: {a} / {b}"
        ),
        _ => panic!("tree {from_tree:?}, text {from_text:?}"),
    }
    match from_tree {
        Ok(event) => {
            assert_eq!(
                event.event_type(),
                raw.event_type,
                "decoded as its own type"
            );
            let encoded = event.encode();
            assert_eq!(
                encoded.schema_version,
                current_schema_version(encoded.event_type)
            );
            let again =
                DomainEvent::decode(encoded.event_type, encoded.schema_version, &encoded.data);
            assert_eq!(
                again.as_ref(),
                Ok(&event),
                "encode then decode is the identity"
            );
        }
        Err(DecodeError::UnknownType(t)) => {
            assert_eq!(t, raw.event_type);
            assert!(
                !EVENT_TYPES.contains(&t.as_str()),
                "a known type called unknown"
            );
        }
        Err(DecodeError::FutureVersion { version, .. }) => {
            assert!(version > current_schema_version(&raw.event_type));
        }
        Err(DecodeError::Malformed { event_type, .. }) => {
            assert_eq!(event_type, raw.event_type);
            assert!(EVENT_TYPES.contains(&event_type.as_str()));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let list = records(data);
    for raw in &list {
        check_decode(raw);
    }
    // The fold over the whole list, as a node rebuilding from this log would.
    let mut model = ReadModel::new();
    for (i, raw) in list.into_iter().enumerate() {
        let position = i as u64 + 1;
        let recorded = RecordedEvent {
            position,
            stream_id: format!("fuzz-{i}"),
            stream_version: 1,
            event_id: uuid::Uuid::nil(),
            event_type: raw.event_type,
            schema_version: raw.version,
            data: raw.data,
            metadata: EventMetadata {
                actor: None,
                correlation_id: uuid::Uuid::nil(),
                causation_id: None,
                idempotency_key: None,
                occurred_at: Utc::now(),
                reason: None,
            },
            recorded_at: Utc::now(),
            hash: [0; 32],
            partition: None,
        };
        match model.apply(&recorded) {
            Ok(()) => assert_eq!(model.position(), position),
            Err(registre_projections::ApplyError::Decode { position: at, .. }) => {
                assert_eq!(at, position);
                break;
            }
        }
    }
});
