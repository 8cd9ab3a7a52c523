//! Erasure (GDPR art. 17) through the schema, on PostgreSQL and on the
//! embedded store: after `forgetPerson` the person's name and personal free
//! text (message bodies, absence reasons) are unreadable through GraphQL and
//! the subject access export, the events stay, the hash chain of the stored
//! log still verifies, and the absence statistics are unchanged.
#![allow(clippy::unwrap_used)]

mod common;

use common::{codes, str_at, World};
use serde_json::{json, Value};

const FORGET: &str = "mutation($p: ID!, $r: String!) { forgetPerson(personId: $p, reason: $r) }";
const EXPORT: &str = "query($p: ID!) { exportPersonData(personId: $p) }";
const STATS: &str = "query($c: ID!) { absenceStats(classId: $c, from: \"2026-11-01\", to: \"2026-11-30\") { halfDaysMissed unjustifiedHalfDays } }";
const INBOX: &str = "{ inbox { from { displayName } subject body } }";
const SECRETS: [&str; 3] = [
    "Mon enfant a de la fièvre",
    "Fièvre et toux",
    "rendez-vous chez le pédiatre",
];

async fn person_of(w: &World, who: &str) -> String {
    str_at(&w.node.ok(who, "{ me { id } }", json!({})).await, "/me/id")
}

async fn erasure_leaves_the_log_but_not_the_text(w: World) {
    let n = &w.node;
    let student = person_of(&w, "student1").await;
    let teacher = person_of(&w, "teacher1").await;
    n.ok(
        "student1",
        "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
        json!({"i": {"to": [teacher], "subject": SECRETS[1], "body": SECRETS[0]}}),
    )
    .await;
    let absence = str_at(
        &n.ok(
            "teacher1",
            "mutation($i: ReportAbsenceInput!) { reportAbsence(input: $i) { id } }",
            json!({"i": {"studentId": w.id("s1"), "kind": "ABSENCE",
                         "start": "2026-11-10T08:00:00Z", "end": "2026-11-10T17:00:00Z"}}),
        )
        .await,
        "/reportAbsence/id",
    );
    n.ok(
        "guardian1",
        "mutation($i: JustifyAbsenceInput!) { justifyAbsence(input: $i) { id } }",
        json!({"i": {"absenceId": absence, "reason": SECRETS[2]}}),
    )
    .await;

    let before = n_export(&w, &student).await;
    for s in SECRETS {
        assert!(before.contains(s), "the export holds {s:?} before erasure");
    }
    let inbox_before = n.ok("teacher1", INBOX, json!({})).await.to_string();
    assert!(inbox_before.contains(SECRETS[0]) && inbox_before.contains("student1"));
    let stats_before = n.ok("head1", STATS, json!({"c": w.id("C1")})).await;
    assert!(
        stats_before["absenceStats"]["halfDaysMissed"]
            .as_i64()
            .unwrap()
            > 0
    );
    let head_before = n.head().await;

    // Only an admin, and only with a reason.
    let r = n
        .run("auditor", FORGET, json!({"p": student, "r": "x"}))
        .await;
    assert_eq!(codes(&r), ["FORBIDDEN"]);
    let r = n
        .run("admin", FORGET, json!({"p": student, "r": "  "}))
        .await;
    assert_eq!(codes(&r), ["INVALID_INPUT"]);
    assert_eq!(n.head().await, head_before, "refusals write nothing");

    let d = n
        .ok(
            "admin",
            FORGET,
            json!({"p": student, "r": "Demande RGPD n° 12"}),
        )
        .await;
    assert_eq!(d["forgetPerson"], true);
    let d = n
        .ok("admin", FORGET, json!({"p": student, "r": "encore"}))
        .await;
    assert_eq!(d["forgetPerson"], false, "a second erasure is a no-op");
    assert_eq!(
        n.head().await,
        head_before + 1,
        "one PersonErased, nothing removed"
    );

    let after = n_export(&w, &student).await;
    for s in SECRETS {
        assert!(
            !after.contains(s),
            "{s:?} is still readable in the export: {after}"
        );
    }
    assert!(after.contains(registre_store::ERASED));
    assert!(
        after.contains("PersonErased"),
        "the erasure is in the audit trail"
    );
    let inbox_after = n.ok("teacher1", INBOX, json!({})).await;
    let msg = &inbox_after["inbox"][0];
    assert_eq!(msg["body"], registre_store::ERASED);
    assert_eq!(msg["subject"], registre_store::ERASED);
    assert_eq!(msg["from"]["displayName"], registre_store::ERASED);
    assert!(!inbox_after.to_string().contains(SECRETS[0]));
    let stats_after = n.ok("head1", STATS, json!({"c": w.id("C1")})).await;
    assert_eq!(
        stats_after, stats_before,
        "statistics still count the erased"
    );

    // A fresh node (cold key cache, rebuilt read model) reads the same.
    let cold = common::Node::start(raw_store(&w).await).await;
    let inbox_cold = cold.ok("teacher1", INBOX, json!({})).await;
    assert_eq!(inbox_cold["inbox"][0]["body"], registre_store::ERASED);

    // The chain over the stored (sealed) log still verifies.
    let raw = raw_store(&w).await;
    let report = registre_store::verify_chain(raw.as_ref(), |_| {})
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.verified_head, head_before + 1);
    let stored: Value = raw
        .read_all(0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.data.clone())
        .collect();
    for s in SECRETS {
        assert!(!stored.to_string().contains(s), "{s:?} is stored in clear");
    }
}

async fn n_export(w: &World, person: &str) -> String {
    w.node
        .ok("auditor", EXPORT, json!({"p": person}))
        .await
        .to_string()
}

/// The world's store opened again, without the vault.
async fn raw_store(w: &World) -> std::sync::Arc<dyn registre_store::EventStore> {
    match (&w.db, &w._dir) {
        (Some(db), _) => registre_store::open(Some(&db.url), std::path::Path::new("."))
            .await
            .unwrap(),
        (None, Some(dir)) => registre_store::open(None, &dir.0).await.unwrap(),
        (None, None) => panic!("a world has a database or a directory"),
    }
}

#[tokio::test]
async fn forget_person_on_postgres() {
    erasure_leaves_the_log_but_not_the_text(World::postgres().await).await;
}

#[tokio::test]
async fn forget_person_on_sqlite() {
    erasure_leaves_the_log_but_not_the_text(World::sqlite().await).await;
}

/// Two nodes on one PostgreSQL database: the second one has opened (and
/// cached the key of) a student's message when the first one serves
/// `forgetPerson`. Reading the `PersonErased` from the log, the second node
/// drops the key and folds its read model again, without a restart.
#[tokio::test]
async fn another_node_forgets_the_key_when_it_reads_the_erasure() {
    let w = World::postgres().await;
    let other = w.second_node().await;
    let student = person_of(&w, "student1").await;
    let teacher = person_of(&w, "teacher1").await;
    w.node
        .ok(
            "student1",
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
            json!({"i": {"to": [teacher], "subject": SECRETS[1], "body": SECRETS[0]}}),
        )
        .await;
    let before = other.ok("teacher1", INBOX, json!({})).await;
    assert_eq!(
        before["inbox"][0]["body"], SECRETS[0],
        "the other node reads it"
    );

    w.node
        .ok(
            "admin",
            FORGET,
            json!({"p": student, "r": "Demande RGPD n° 3"}),
        )
        .await;

    // The other node answers once its read model has reached the log head,
    // which now holds the erasure.
    let after = other.ok("teacher1", INBOX, json!({})).await;
    let msg = &after["inbox"][0];
    assert_eq!(msg["body"], registre_store::ERASED);
    assert_eq!(msg["subject"], registre_store::ERASED);
    assert_eq!(msg["from"]["displayName"], registre_store::ERASED);
}

/// A node started from a read-model snapshot holds text it never opened
/// itself (no key cached): it must fold again all the same when it reads an
/// erasure served elsewhere.
#[tokio::test]
async fn a_node_started_from_a_snapshot_forgets_too() {
    let w = World::postgres().await;
    let student = person_of(&w, "student1").await;
    let teacher = person_of(&w, "teacher1").await;
    w.node
        .ok(
            "student1",
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
            json!({"i": {"to": [teacher], "subject": SECRETS[1], "body": SECRETS[0]}}),
        )
        .await;
    w.node.app.engine().snapshot().await.unwrap();
    let other = w.second_node().await;
    let before = other.ok("teacher1", INBOX, json!({})).await;
    assert_eq!(before["inbox"][0]["body"], SECRETS[0], "from the snapshot");

    w.node
        .ok(
            "admin",
            FORGET,
            json!({"p": student, "r": "Demande RGPD n° 4"}),
        )
        .await;
    let after = other.ok("teacher1", INBOX, json!({})).await;
    assert_eq!(after["inbox"][0]["body"], registre_store::ERASED);
    assert_eq!(
        after["inbox"][0]["from"]["displayName"],
        registre_store::ERASED
    );
}
