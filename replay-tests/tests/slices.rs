//! Slices of the read model by partition (decision 0022), on random valid
//! multi-establishment logs (students changing class and school, persons
//! erased between partitions' events): the slices' union is the whole model,
//! a class's slice answers its students' records as the whole model does,
//! and the partitions folded in parallel give the model folded in order.

#![allow(clippy::unwrap_used)]

mod common;

use proptest::prelude::*;
use registre_domain::communication::{AttachedTo, AttachmentsLinked};
use registre_domain::events::PersonErased;
use registre_domain::testing::samples;
use registre_domain::{DomainEvent, PersonId};
use registre_projections::{fold_in_parallel, Partitioner, ReadModel, Scope};
use registre_replay_tests::random::{events_from_ops, ops, Op};
use registre_replay_tests::{line_of, to_recorded, GoldenLine};
use registre_store::{Partition, RecordedEvent};
use serde_json::Value;
use std::sync::Arc;

fn decode(line: &GoldenLine) -> DomainEvent {
    DomainEvent::decode(&line.event_type, line.schema_version, &line.data)
        .unwrap_or_else(|e| panic!("generated line {} does not decode: {e}", line.position))
}

/// The log `ops` describe, with persons erased at the points `erasures`
/// name (which registered person, and where among the lines after them),
/// each event with the partition the executor gives it.
fn log(ops: &[Op], erasures: &[(u16, u16)]) -> Vec<RecordedEvent> {
    let mut lines = events_from_ops(ops);
    for (who, when) in erasures {
        let registered: Vec<(usize, PersonId)> = lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| match decode(l) {
                DomainEvent::PersonRegistered(e) => Some((i, e.person_id)),
                _ => None,
            })
            .collect();
        let (i, person) = registered[usize::from(*who) % registered.len()];
        let at = i + 1 + usize::from(*when) % (lines.len() - i);
        let time = lines[at - 1].recorded_at;
        let erased = DomainEvent::PersonErased(PersonErased {
            person_id: person,
            reason: "droit à l'effacement".into(),
        });
        lines.insert(at, line_of(0, time, None, None, &erased));
    }
    for (i, line) in lines.iter_mut().enumerate() {
        line.position = i as u64 + 1;
    }
    let mut partitioner = Partitioner::new();
    let mut events = to_recorded(&lines);
    for (e, line) in events.iter_mut().zip(&lines) {
        e.partition = Some(partitioner.assign(&e.stream_id, &decode(line)));
    }
    events
}

fn fold(events: &[RecordedEvent]) -> ReadModel {
    let mut model = ReadModel::new();
    model.apply_all(events).expect("generated events decode");
    model
}

fn json(model: &ReadModel) -> Value {
    serde_json::from_slice(&model.to_json().expect("model serializes")).expect("JSON")
}

fn union(parts: impl IntoIterator<Item = ReadModel>) -> ReadModel {
    let mut whole = ReadModel::new();
    for p in parts {
        whole.absorb(p);
    }
    whole
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn the_slices_union_is_the_whole_model(
        ops in ops(250),
        erasures in proptest::collection::vec(any::<(u16, u16)>(), 0..4),
    ) {
        let whole = fold(&log(&ops, &erasures));
        let slices = whole.slices();
        prop_assert!(slices.contains_key(&Partition::directory()));
        for (partition, slice) in &slices {
            prop_assert_eq!(json(slice), json(&whole.slice(&Scope::Partition(partition.clone()))));
        }
        prop_assert_eq!(
            json(&whole.slice(&Scope::Directory)),
            json(&slices[&Partition::directory()])
        );
        prop_assert_eq!(json(&union(slices.values().cloned())), json(&whole));
        // In any order: the partitions' slices first, the directory last;
        // merged pairwise on threads.
        prop_assert_eq!(json(&union(slices.values().rev().cloned())), json(&whole));
        prop_assert_eq!(
            json(&registre_projections::union_of(slices.into_values().collect(), 3)),
            json(&whole)
        );
    }

    #[test]
    fn partitions_folded_in_parallel_equal_the_fold_in_order(
        ops in ops(250),
        erasures in proptest::collection::vec(any::<(u16, u16)>(), 0..4),
        threads in 1usize..4,
    ) {
        let events = log(&ops, &erasures);
        let parallel = fold_in_parallel(&events, threads).expect("generated events decode");
        prop_assert_eq!(json(&parallel), json(&fold(&events)));
    }

    /// The model places each event where the executor put its stream: the
    /// slices and the audit index agree with the log's partitions.
    #[test]
    fn the_model_places_each_event_in_its_stored_partition(
        ops in ops(250),
        erasures in proptest::collection::vec(any::<(u16, u16)>(), 0..4),
    ) {
        let events = log(&ops, &erasures);
        let mut model = ReadModel::new();
        for e in &events {
            let event = DomainEvent::decode(&e.event_type, e.schema_version, &e.data)
                .expect("decodes");
            prop_assert_eq!(
                Some(model.partition_of_logged(&event)),
                e.partition.clone(),
                "event {} {}", e.position, e.event_type
            );
            model.apply(e).expect("applies");
        }
    }

    /// The class slice found through the indexes is the one found by
    /// walking the whole model.
    #[test]
    fn a_class_slice_cut_through_the_indexes_is_the_walked_one(
        ops in ops(250),
        erasures in proptest::collection::vec(any::<(u16, u16)>(), 0..4),
    ) {
        let whole = fold(&log(&ops, &erasures));
        for class in whole.classes() {
            prop_assert_eq!(
                json(&whole.slice(&Scope::Class(class.id))),
                json(&whole.class_slice_by_walking(class.id))
            );
        }
    }

    #[test]
    fn a_class_slice_answers_its_students_records(ops in ops(250)) {
        let whole = fold(&log(&ops, &[]));
        for class in whole.classes() {
            let slice = whole.slice(&Scope::Class(class.id));
            prop_assert!(slice.class(class.id).is_some());
            for s in &class.students {
                let views = |m: &ReadModel| -> Vec<Value> {
                    let guardians: Vec<_> = whole.guardians_of(*s).iter().map(|g| g.id).collect();
                    [
                        serde_json::to_value(m.student_record(*s)),
                        serde_json::to_value(m.grades_of(*s, None)),
                        serde_json::to_value(m.averages(*s)),
                        serde_json::to_value(m.overall_average(*s)),
                        serde_json::to_value(m.absences_of(*s)),
                        serde_json::to_value(
                            guardians.iter().map(|g| m.is_guardian_of(*g, *s)).collect::<Vec<_>>(),
                        ),
                    ]
                    .into_iter()
                    .map(|v| v.expect("serializes"))
                    .collect()
                };
                prop_assert_eq!(views(&slice), views(&whole));
            }
            prop_assert!(
                slice.persons().count() <= whole.persons().count()
                    && slice.classes().count() == 1,
                "a class slice holds that class only"
            );
        }
    }
}

/// Every list and map of the model, at any depth of its parts, is non-empty
/// after folding the domain's samples (one event of every type): so a field
/// added to the model is filled here, and the union of the slices, compared
/// whole, must carry it.
#[test]
fn every_field_of_the_model_is_placed_in_a_slice() {
    // The samples withdraw their homework and link files to a justification
    // only: a live entry and the other links too.
    let mut all = samples();
    let homework = all.iter().find_map(|e| match e {
        DomainEvent::HomeworkAssigned(h) => Some(h.clone()),
        _ => None,
    });
    let message = all.iter().find_map(|e| match e {
        DomainEvent::MessageSent(m) => Some((m.message_id, m.thread_id)),
        _ => None,
    });
    let link = all.iter().find_map(|e| match e {
        DomainEvent::AttachmentsLinked(l) => Some(l.clone()),
        _ => None,
    });
    let (Some(mut homework), Some((message_id, thread_id)), Some(link)) = (homework, message, link)
    else {
        panic!("the samples have homework, a message and a link");
    };
    homework.homework_id = registre_domain::HomeworkId(uuid::Uuid::from_u128(0x5eed));
    all.push(DomainEvent::HomeworkAssigned(homework.clone()));
    // They also unlink their guardian and end their teaching (interop,
    // issue 17): both again, live.
    let again: Vec<DomainEvent> = all
        .iter()
        .filter(|e| {
            matches!(
                e,
                DomainEvent::GuardianLinked(_) | DomainEvent::TeacherAssigned(_)
            )
        })
        .cloned()
        .collect();
    all.extend(again);
    for to in [
        AttachedTo::Homework(homework.homework_id),
        AttachedTo::Message {
            message_id,
            thread_id,
        },
    ] {
        all.push(DomainEvent::AttachmentsLinked(AttachmentsLinked {
            to,
            student_id: None,
            ..link.clone()
        }));
    }
    let events: Vec<GoldenLine> = all
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let at = chrono::DateTime::parse_from_rfc3339("2026-11-30T08:00:00Z")
                .expect("date")
                .with_timezone(&chrono::Utc)
                + chrono::Duration::minutes(i as i64);
            line_of(i as u64 + 1, at, None, None, e)
        })
        .collect();
    let mut recorded = to_recorded(&events);
    let mut partitioner = Partitioner::new();
    for (e, line) in recorded.iter_mut().zip(&events) {
        e.partition = Some(partitioner.assign(&e.stream_id, &decode(line)));
    }
    let whole = fold(&recorded);
    let value = json(&whole);
    let parallel = fold_in_parallel(&recorded, 2).expect("samples decode");
    assert_eq!(json(&parallel), value, "folded in parallel");
    let parts = ["schoolDay", "evaluation", "discipline", "communication"];
    let mut empty = Vec::new();
    for (name, field) in value.as_object().expect("an object") {
        let fields = if parts.contains(&name.as_str()) {
            field
                .as_object()
                .expect("a part")
                .iter()
                .map(|(n, f)| (format!("{name}.{n}"), f))
                .collect()
        } else {
            vec![(name.clone(), field)]
        };
        for (name, f) in fields {
            let is_empty = match f {
                Value::Object(m) => m.is_empty(),
                Value::Array(a) => a.is_empty(),
                _ => false,
            };
            if is_empty {
                empty.push(name);
            }
        }
    }
    for part in parts {
        assert!(value.get(part).is_some(), "{part} serialized");
    }
    assert!(
        empty.is_empty(),
        "fields the samples leave empty (fill them so that the slices are checked on them): {empty:?}"
    );
    let slices = whole.slices();
    assert!(
        slices.len() >= 2,
        "the directory and a school: {:?}",
        slices.keys()
    );
    assert_eq!(json(&union(slices.into_values())), value);
    // Every field filled: the class slice found through the indexes takes
    // what walking the model takes, field by field.
    let diff = class_cuts_differences(&whole);
    assert!(diff.is_empty(), "{diff:#?}");
}

/// The committed golden logs, as the executor partitions them.
fn golden_logs() -> Vec<(String, Vec<RecordedEvent>)> {
    let mut logs = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(registre_replay_tests::golden_dir())
        .expect("golden dir")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    paths.sort();
    for path in paths {
        let lines = registre_replay_tests::read_golden(&path).expect("golden log");
        if lines
            .iter()
            .any(|l| DomainEvent::decode(&l.event_type, l.schema_version, &l.data).is_err())
        {
            continue;
        }
        let mut partitioner = Partitioner::new();
        let mut events = to_recorded(&lines);
        for (e, line) in events.iter_mut().zip(&lines) {
            e.partition = Some(partitioner.assign(&e.stream_id, &decode(line)));
        }
        logs.push((path.display().to_string(), events));
    }
    logs
}

/// The paths where two JSON values differ (a test's message).
fn differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (l, r) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if l != r {
                    differences(l, r, &format!("{at}.{k}"), out);
                }
            }
        }
        _ if a != b => out.push(format!("{at}: {a} != {b}")),
        _ => {}
    }
}

/// Where each class's slice cut through the indexes differs from the one
/// cut by walking the model (the class's id before each path).
fn class_cuts_differences(whole: &ReadModel) -> Vec<String> {
    let mut diff = Vec::new();
    for class in whole.classes() {
        differences(
            &json(&whole.slice(&Scope::Class(class.id))),
            &json(&whole.class_slice_by_walking(class.id)),
            &format!("class {}", class.id),
            &mut diff,
        );
    }
    diff
}

#[test]
fn golden_logs_slice_and_fold_in_parallel_as_in_order() {
    let logs = golden_logs();
    assert!(logs.len() >= 3, "{} golden logs", logs.len());
    for (name, events) in logs {
        let whole = fold(&events);
        let value = json(&whole);
        let mut diff = Vec::new();
        differences(
            &json(&union(whole.slices().into_values())),
            &value,
            "",
            &mut diff,
        );
        assert!(diff.is_empty(), "{name}: slices' union: {diff:#?}");
        let mut diff = Vec::new();
        let parallel = fold_in_parallel(&events, 2).expect("decodes");
        differences(&json(&parallel), &value, "", &mut diff);
        assert!(diff.is_empty(), "{name}: folded in parallel: {diff:#?}");
        let diff = class_cuts_differences(&whole);
        assert!(diff.is_empty(), "{name}: class slices: {diff:#?}");
    }
}

/// The parallel fold reading a real store gives the fold in order, in small
/// pages, both ways it reads: every partition from one read of the log in
/// position order (`partitions: None`), and each partition of a set with
/// `read_partitions` (here the set of all of them). Also below the head.
async fn parallel_fold_from(test: common::TestStore) {
    let store = test.store;
    for (name, events) in golden_logs() {
        let lines = registre_replay_tests::read_golden(std::path::Path::new(&name)).expect("log");
        common::append_lines(store.as_ref(), &lines).await;
        let all = store.read_all(0, 1_000_000).await.expect("reads");
        assert!(all.len() >= events.len());
        let whole = fold(&all);
        let every: Vec<Partition> = whole
            .slices()
            .into_keys()
            .filter(|p| !p.is_directory())
            .collect();
        assert!(!every.is_empty(), "{name}: no establishment");
        let before_last = fold(&all[..all.len() - 1]);
        for (page, threads) in [(3, 1), (7, 2), (1000, 3)] {
            for partitions in [None, Some(every.clone())] {
                for expected in [&whole, &before_last] {
                    let parallel = registre_projections::parallel::ParallelFold {
                        head: expected.position(),
                        partitions: partitions.clone(),
                        page,
                        threads,
                    }
                    .run(&store, |_| {})
                    .await
                    .expect("folds");
                    let mut diff = Vec::new();
                    differences(&json(&parallel), &json(expected), "", &mut diff);
                    assert!(
                        diff.is_empty(),
                        "{name}, pages of {page}, {} partitions, head {}: {diff:#?}",
                        if partitions.is_some() {
                            "listed"
                        } else {
                            "all"
                        },
                        expected.position()
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_fold_from_sqlite() {
    parallel_fold_from(common::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_fold_from_postgres() {
    parallel_fold_from(common::postgres().await).await;
}

fn engine_config(partitions: Option<Vec<Partition>>) -> registre_projections::EngineConfig {
    registre_projections::EngineConfig {
        batch_size: 7,
        rebuild_page: 7,
        // Saved when the test says.
        snapshot_every: 1_000_000,
        pseudonym_key: registre_projections::PseudonymKey::new(b"slices".to_vec()),
        partitions,
        ..registre_projections::EngineConfig::default()
    }
}

async fn manifest(
    store: &dyn registre_store::EventStore,
    keys: &registre_projections::snapshots::Keys,
) -> registre_projections::snapshots::Manifest {
    let row = store
        .load_snapshot(&keys.manifest())
        .await
        .unwrap()
        .unwrap();
    serde_json::from_slice(&row.state).unwrap()
}

/// A node saves one row per partition and, later, only the rows of the
/// partitions that moved; a restart from the rows is the live model; a node
/// serving one establishment folds and saves the directory and that one.
async fn snapshots_by_partition(test: common::TestStore) {
    use registre_projections::snapshots::Keys;
    use registre_projections::ProjectionEngine;
    let store = test.store;
    let lines = registre_replay_tests::read_golden(
        &registre_replay_tests::golden_dir().join("school.jsonl"),
    )
    .unwrap();
    common::append_lines(store.as_ref(), &lines).await;
    let head = store.head().await.unwrap();
    let engine = ProjectionEngine::open(Arc::clone(&store), engine_config(None))
        .await
        .unwrap();
    assert_eq!(engine.position(), head, "folded at the start");
    assert_eq!(engine.snapshot().await.unwrap(), head);
    let all = Keys::new(None);
    let (paris, reunion) = (
        Partition::establishment("0750001A"),
        Partition::establishment("9740001A"),
    );
    let first = manifest(store.as_ref(), &all).await;
    assert_eq!(first.position, head);
    assert_eq!(
        first.partitions.keys().cloned().collect::<Vec<_>>(),
        vec![paris.clone(), reunion.clone(), Partition::directory()]
    );

    // One more grade in an establishment: its row alone is written again.
    let mut grade = lines
        .iter()
        .rev()
        .find(|l| l.event_type == "GradeRecorded")
        .unwrap()
        .clone();
    grade.data["grade_id"] = serde_json::json!(uuid::Uuid::now_v7());
    common::append_lines(store.as_ref(), &[grade]).await;
    let grade_partition = store.read_all(head, 1).await.unwrap()[0]
        .partition
        .clone()
        .unwrap();
    assert!(!grade_partition.is_directory());
    engine.catch_up().await.unwrap();
    assert_eq!(engine.snapshot().await.unwrap(), head + 1);
    let second = manifest(store.as_ref(), &all).await;
    assert_eq!(second.position, head + 1);
    for (p, at) in &second.partitions {
        let expected = if *p == grade_partition {
            head + 1
        } else {
            head
        };
        assert_eq!(*at, expected, "{p}");
        let row = store.load_snapshot(&all.row(p)).await.unwrap().unwrap();
        assert_eq!(row.position, expected, "{p}'s row");
    }
    let live = engine.read(ReadModel::clone);
    drop(engine);
    let restarted = ProjectionEngine::open(Arc::clone(&store), engine_config(None))
        .await
        .unwrap();
    assert_eq!(restarted.position(), head + 1);
    assert_eq!(json(&restarted.read(ReadModel::clone)), json(&live));
    drop(restarted);

    // A node serving La Réunion only: the directory and its partition.
    let one = Some(vec![reunion.clone()]);
    let node = ProjectionEngine::open(Arc::clone(&store), engine_config(one.clone()))
        .await
        .unwrap();
    let expected = union([
        live.slice(&Scope::Directory),
        live.slice(&Scope::Partition(reunion.clone())),
    ]);
    let mut diff = Vec::new();
    differences(
        &json(&node.read(ReadModel::clone)),
        &json(&expected),
        "",
        &mut diff,
    );
    assert!(diff.is_empty(), "{diff:#?}");
    node.snapshot().await.unwrap();
    let keys = Keys::new(one.as_deref());
    assert_ne!(
        keys.row(&Partition::directory()),
        all.row(&Partition::directory())
    );
    assert_eq!(keys.row(&reunion), all.row(&reunion));
    let saved = manifest(store.as_ref(), &keys).await;
    assert_eq!(
        saved.partitions.keys().cloned().collect::<Vec<_>>(),
        vec![reunion.clone(), Partition::directory()]
    );
    drop(node);
    let node = ProjectionEngine::open(Arc::clone(&store), engine_config(one))
        .await
        .unwrap();
    assert_eq!(json(&node.read(ReadModel::clone)), json(&expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_by_partition_on_sqlite() {
    snapshots_by_partition(common::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_by_partition_on_postgres() {
    snapshots_by_partition(common::postgres().await).await;
}
