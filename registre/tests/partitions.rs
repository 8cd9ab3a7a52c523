//! Every event the application appends lands in its partition (decision
//! 0019): school life in its establishment's, persons, students,
//! guardianships, establishments and classes in the directory; a stream
//! never moves. A log written
//! before partitions is given the same ones by the backfill a node runs at
//! start, on a real PostgreSQL database.
#![allow(clippy::unwrap_used)]

mod common;

use common::{str_at, World};
use registre_store::{EventStore, Partition, RecordedEvent};
use serde_json::json;
use std::collections::HashMap;

const E1: &str = "0750001A";
const E2: &str = "9740002B";

async fn all_events(store: &dyn EventStore) -> Vec<RecordedEvent> {
    store.read_all(0, 100_000).await.unwrap()
}

/// Some of each kind of stream, through the mutations (the executor's path).
async fn school_activity(w: &World) {
    w.corrected_grade(12.0, 13.0, "copie mal additionnée").await;
    w.node
        .ok(
            "staff2",
            "mutation($i: ReportAbsenceInput!) { reportAbsence(input: $i) { id } }",
            json!({"i": {"studentId": w.id("s3"), "kind": "ABSENCE",
                         "start": "2026-11-23T08:00:00+04:00", "end": "2026-11-23T12:00:00+04:00"}}),
        )
        .await;
    let teacher1 = str_at(
        &w.node.ok("teacher1", "{ me { id } }", json!({})).await,
        "/me/id",
    );
    w.node
        .ok(
            "guardian1",
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
            json!({"i": {"to": [teacher1], "subject": "Sortie", "body": "Bonjour"}}),
        )
        .await;
}

fn expected_partition(e: &RecordedEvent) -> Partition {
    let (category, _) = e.stream_id.split_once('-').unwrap();
    let dir = Partition::directory();
    match category {
        "person" | "student" | "establishment" | "class" => dir,
        // teacher1's maths assessment in C1, guardian1 writing to teacher1.
        "assessment" | "thread" => Partition::establishment(E1),
        // s3 is in C3.
        "absence" => Partition::establishment(E2),
        other => panic!("a stream category the test does not know: {other}"),
    }
}

#[tokio::test]
async fn appended_events_land_in_their_partition() {
    let w = World::postgres().await;
    school_activity(&w).await;
    let store = w.node.app.store().clone();
    let events = all_events(store.as_ref()).await;
    assert!(events.len() > 30, "{} events", events.len());
    for e in &events {
        assert_eq!(
            e.partition,
            Some(expected_partition(e)),
            "{} at {}",
            e.stream_id,
            e.position
        );
    }
    assert_eq!(store.first_unassigned().await.unwrap(), None);

    // A node serving E2 reads its partition and the directory, nothing of E1.
    let e2 = store
        .read_partitions(
            0,
            &[Partition::establishment(E2), Partition::directory()],
            100_000,
        )
        .await
        .unwrap();
    let expected: Vec<u64> = events
        .iter()
        .filter(|e| e.partition != Some(Partition::establishment(E1)))
        .map(|e| e.position)
        .collect();
    assert_eq!(e2.iter().map(|e| e.position).collect::<Vec<_>>(), expected);
    assert!(e2.iter().any(|e| e.stream_id.starts_with("absence-")));
    assert!(!e2.iter().any(|e| e.stream_id.starts_with("assessment-")));
}

#[tokio::test]
async fn a_log_from_before_partitions_is_backfilled_at_start() {
    let w = World::postgres().await;
    school_activity(&w).await;
    let db = w.db.as_ref().unwrap();
    let store = w.node.app.store().clone();
    let assigned: HashMap<u64, Option<Partition>> = all_events(store.as_ref())
        .await
        .into_iter()
        .map(|e| (e.position, e.partition))
        .collect();

    // What a log written before migration 0007 looks like.
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("SET session_replication_role = replica; UPDATE events SET partition = NULL")
        .await
        .unwrap();
    assert_eq!(store.first_unassigned().await.unwrap(), Some(1));

    // A node starting on it gives every event the partition the executor
    // gave it: one rule, whether decided from the read model or the log.
    let second = w.second_node().await;
    let after = all_events(second.app.store().as_ref()).await;
    assert_eq!(after.len(), assigned.len());
    for e in &after {
        assert_eq!(e.partition, assigned[&e.position], "{}", e.stream_id);
    }
    assert_eq!(second.app.store().first_unassigned().await.unwrap(), None);
    // And the chain (over the stored, sealed text) is untouched.
    assert!(registre_store::verify_chain(w.node.store.as_ref(), |_| {})
        .await
        .unwrap()
        .is_intact());
}

#[tokio::test]
async fn audit_verify_exposes_an_event_moved_to_another_partition() {
    let w = World::postgres().await;
    school_activity(&w).await;
    let store = w.node.store.as_ref();
    let ok = registre::cli::audit_verify(store, &[]).await.unwrap();
    assert!(ok.contains("every event is in its partition"), "{ok}");

    // The partition is outside the hash chain: moving a grade to E2's
    // partition (hiding it from the nodes serving E1) leaves the chain whole,
    // and the audit's recomputation is what exposes it.
    let moved: Vec<u64> = all_events(store)
        .await
        .iter()
        .filter(|e| e.event_type == "GradeRecorded")
        .map(|e| e.position)
        .collect();
    assert_eq!(moved.len(), 1);
    let (client, conn) =
        tokio_postgres::connect(&w.db.as_ref().unwrap().url, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "SET session_replication_role = replica; \
             UPDATE events SET partition = '{E2}' WHERE position = {}",
            moved[0]
        ))
        .await
        .unwrap();
    assert!(registre_store::verify_chain(store, |_| {})
        .await
        .unwrap()
        .is_intact());
    let err = registre::cli::audit_verify(store, &[])
        .await
        .expect_err("a moved event is found")
        .to_string();
    assert!(err.contains("1 event(s) are not in the partition"), "{err}");
    assert!(
        err.contains(&format!(
            "position {}: stored {E2}, expected {E1}",
            moved[0]
        )),
        "{err}"
    );
}
