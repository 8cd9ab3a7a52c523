//! CNIL compliance through the schema on a real PostgreSQL database: the
//! subject access export (GDPR art. 15: `exportPersonData` and the library
//! function behind `registre export person`), who may ask for it, and the
//! access log recording reads of itself.
#![allow(clippy::unwrap_used)]

mod common;

use common::{codes, str_at, World};
use registre_projections::{EngineConfig, ProjectionEngine};
use registre_store::EventStore;
use serde_json::{json, Value};
use std::sync::Arc;

const EXPORT: &str = "query($p: ID!) { exportPersonData(personId: $p) }";
const ACCESS_LOG: &str =
    "query($p: ID!) { accessLog(subjectId: $p) { viewer { externalId } operation service } }";

async fn person_of(w: &World, who: &str) -> String {
    str_at(&w.node.ok(who, "{ me { id } }", json!({})).await, "/me/id")
}

/// student1 (s1, C1) gets a grade that is then corrected, an absence and a
/// message from teacher1; guardian1 reads the grades. Returns the grade id.
async fn record_of_student1(w: &World) -> String {
    let n = &w.node;
    let g = w.corrected_grade(12.0, 14.0, "erreur de report").await;
    n.ok(
        "teacher1",
        "mutation($i: ReportAbsenceInput!) { reportAbsence(input: $i) { id } }",
        json!({"i": {"studentId": w.id("s1"), "kind": "ABSENCE",
                     "start": "2026-11-10T08:00:00Z", "end": "2026-11-10T09:00:00Z"}}),
    )
    .await;
    n.ok(
        "teacher1",
        "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
        json!({"i": {"to": [person_of(w, "student1").await], "subject": "Devoir", "body": "Pense au cahier"}}),
    )
    .await;
    n.ok(
        "guardian1",
        "{ myChildren { grades { score } } }",
        json!({}),
    )
    .await;
    g
}

fn array<'a>(doc: &'a Value, pointer: &str) -> &'a Vec<Value> {
    doc.pointer(pointer)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no array at {pointer} in {doc}"))
}

#[tokio::test]
async fn the_subject_access_export_holds_the_record_its_corrections_and_its_access_log() {
    let w = World::postgres().await;
    let grade = record_of_student1(&w).await;
    let person = person_of(&w, "student1").await;
    let d = w.node.ok("auditor", EXPORT, json!({"p": person})).await;
    let doc = &d["exportPersonData"];

    assert_eq!(doc["format"], "registre.person-export/1");
    assert_eq!(doc["person"]["externalId"], "student1");
    assert_eq!(doc["person"]["roles"], json!(["STUDENT"]));
    assert_eq!(doc["student"]["id"], w.id("s1"));
    assert_eq!(doc["student"]["class"]["name"], "C1");
    let guardians: Vec<String> = array(doc, "/student/guardians")
        .iter()
        .map(|g| str_at(g, "/externalId"))
        .collect();
    assert_eq!(guardians, ["guardian1"]);

    // The grade shows its current value and its whole history.
    let grades = array(doc, "/grades");
    assert_eq!(grades.len(), 1, "{grades:?}");
    assert_eq!(grades[0]["grade"]["id"], grade);
    assert_eq!(grades[0]["grade"]["score"], 14.0);
    assert_eq!(grades[0]["assessmentTitle"], "Fractions");
    let history = array(&grades[0], "/history");
    let types: Vec<&str> = history
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["GradeRecorded", "GradeCorrected"]);
    assert_eq!(history[0]["data"]["score"], 12.0);
    assert_eq!(history[1]["reason"], "erreur de report");
    assert_eq!(history[1]["data"]["previous_score"], 12.0);
    assert_eq!(history[1]["actor"]["role"], "TEACHER");

    let absences = array(doc, "/absences");
    assert_eq!(absences.len(), 1);
    assert_eq!(absences[0]["start"], "2026-11-10T08:00:00Z");

    let received = array(doc, "/messages/received");
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["message"]["body"], "Pense au cahier");
    assert!(array(doc, "/messages/sent").is_empty());

    // The audit trail about them, in log order, with the why.
    let trail = array(doc, "/auditTrail");
    let positions: Vec<u64> = trail
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]), "{positions:?}");
    let trail_types: Vec<&str> = trail
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    for t in [
        "PersonRegistered",
        "StudentEnrolled",
        "GuardianLinked",
        "GradeRecorded",
        "GradeCorrected",
        "AbsenceReported",
        "MessageSent",
    ] {
        assert!(trail_types.contains(&t), "{t} missing from {trail_types:?}");
    }
    assert!(trail.iter().all(|e| e["correlationId"].is_string()));

    // And who read their record: the guardian's read of the grades.
    let guardian = person_of(&w, "guardian1").await;
    let access = array(doc, "/accessLog");
    assert!(
        access
            .iter()
            .any(|a| a["viewerId"] == guardian && a["operation"] == "myChildren.0.grades"),
        "{access:?}"
    );

    // The export itself is a read of their data, and is logged.
    let d = w.node.ok("auditor", ACCESS_LOG, json!({"p": person})).await;
    let log = array(&d, "/accessLog");
    assert!(
        log.iter()
            .any(|e| str_at(e, "/viewer/externalId") == "auditor"
                && str_at(e, "/operation") == "exportPersonData"),
        "{log:?}"
    );
}

#[tokio::test]
async fn the_command_line_export_is_the_same_document() {
    let w = World::postgres().await;
    record_of_student1(&w).await;
    let person = person_of(&w, "student1").await;
    let d = w.node.ok("admin", EXPORT, json!({"p": person})).await;
    let served = &d["exportPersonData"];

    // What `registre export person` does: its own engine caught up with the
    // log, read through the vault (`cli::open_store`).
    let store: Arc<dyn EventStore> = registre_store::VaultStore::wrap(
        w.node.store.clone(),
        registre_domain::personal::sealed_fields,
    )
    .expect("the store keeps subject keys");
    let engine = ProjectionEngine::open(store.clone(), EngineConfig::default())
        .await
        .expect("open the engine");
    engine.catch_up().await.expect("catch up");
    let id: uuid::Uuid = person.parse().expect("a person id is a UUID");
    let cli =
        registre_app::export::person_data(store.as_ref(), &engine, registre_domain::PersonId(id))
            .await
            .expect("export");
    for section in [
        "person",
        "student",
        "children",
        "grades",
        "absences",
        "homework",
        "messages",
        "auditTrail",
        "logPosition",
    ] {
        assert_eq!(cli[section], served[section], "section {section}");
    }
    assert_eq!(array(&cli, "/grades").len(), 1);

    let unknown = registre_app::export::person_data(
        store.as_ref(),
        &engine,
        registre_domain::PersonId(uuid::Uuid::now_v7()),
    )
    .await;
    assert_eq!(unknown.map(|_| ()).map_err(|e| e.code()), Err("NOT_FOUND"));
}

#[tokio::test]
async fn a_guardian_may_not_export_anyone() {
    let w = World::postgres().await;
    record_of_student1(&w).await;
    let person = person_of(&w, "student1").await;
    for who in ["guardian1", "student1", "teacher1", "head1"] {
        let r = w.node.run(who, EXPORT, json!({"p": person})).await;
        assert_eq!(codes(&r), ["FORBIDDEN"], "{who}");
        assert_eq!(
            r.data.into_json().unwrap_or(Value::Null),
            Value::Null,
            "{who} got data"
        );
    }
    // A refused export is not a read: nothing about it in the access log.
    let d = w.node.ok("auditor", ACCESS_LOG, json!({"p": person})).await;
    assert!(array(&d, "/accessLog")
        .iter()
        .all(|e| str_at(e, "/operation") != "exportPersonData"));
    let r = w
        .node
        .run(
            "auditor",
            EXPORT,
            json!({"p": uuid::Uuid::now_v7().to_string()}),
        )
        .await;
    assert_eq!(codes(&r), ["NOT_FOUND"]);
}

#[tokio::test]
async fn reading_the_access_log_is_itself_logged() {
    let w = World::postgres().await;
    let person = person_of(&w, "student4").await;
    let by_auditor = |d: &Value| {
        array(d, "/accessLog")
            .iter()
            .filter(|e| {
                str_at(e, "/viewer/externalId") == "auditor"
                    && str_at(e, "/operation") == "accessLog"
            })
            .count()
    };
    let first = w.node.ok("auditor", ACCESS_LOG, json!({"p": person})).await;
    assert_eq!(by_auditor(&first), 0, "{first}");
    let second = w.node.ok("auditor", ACCESS_LOG, json!({"p": person})).await;
    assert_eq!(by_auditor(&second), 1, "{second}");
    // Its subject is the person whose log was read, and nobody else.
    w.node.app.flush_access().await.expect("flush");
    let auditor = person_of(&w, "auditor").await;
    let records = w
        .node
        .store
        .access_about(auditor.parse().expect("uuid"))
        .await
        .expect("access records");
    assert!(records.iter().all(|r| r.access.operation != "accessLog"));
}

#[tokio::test]
async fn an_event_answers_who_what_when_why_and_through_which_request() {
    let w = World::postgres().await;
    let grade = record_of_student1(&w).await;
    let request_id = uuid::Uuid::now_v7();
    let request = async_graphql::Request::new(
        "mutation($i: CorrectGradeInput!) { correctGrade(input: $i) { id } }",
    )
    .variables(async_graphql::Variables::from_json(json!({
        "i": {"gradeId": grade, "score": 15.0, "status": "GRADED", "reason": "barème revu"}
    })))
    .data(registre_api::context::Caller {
        subject: "teacher1".into(),
        admin: false,
    })
    .data(registre_api::context::RequestId(request_id));
    let r = w.node.schema.execute(request).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);

    let person = person_of(&w, "student1").await;
    let d = w.node.ok("auditor", EXPORT, json!({"p": person})).await;
    let trail = array(&d, "/exportPersonData/auditTrail");
    let last = trail.last().expect("the correction is in the trail");
    let teacher = person_of(&w, "teacher1").await;
    assert_eq!(last["eventType"], "GradeCorrected");
    assert_eq!(
        last["actor"],
        json!({"personId": teacher, "role": "TEACHER"})
    );
    assert_eq!(last["data"]["previous_score"], 14.0);
    assert_eq!(last["data"]["score"], 15.0);
    assert!(last["recordedAt"].is_string() && last["occurredAt"].is_string());
    assert_eq!(last["reason"], "barème revu");
    assert_eq!(last["correlationId"], request_id.to_string());
}

/// Runs SQL on the test database with the append-only triggers disabled, as a
/// database superuser who set out to rewrite history could.
async fn tamper(w: &World, sql: &str) {
    let url = &w.db.as_ref().expect("a PostgreSQL world").url;
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(conn);
    client
        .batch_execute(&format!("SET session_replication_role = replica; {sql}"))
        .await
        .expect("tampering as superuser works");
}

#[tokio::test]
async fn audit_verify_uses_kept_checkpoints_and_fails_on_tampering() {
    let w = World::postgres().await;
    record_of_student1(&w).await;
    let store = w.node.store.as_ref();
    let dir = common::TempDir::new();
    let kept = dir.0.join("checkpoint.json");
    let text = registre::cli::audit_checkpoint(store)
        .await
        .expect("checkpoint");
    std::fs::write(&kept, &text).expect("keep the checkpoint");
    let checkpoint: registre_store::ChainCheckpoint =
        serde_json::from_str(&text).expect("a checkpoint is JSON");
    assert_eq!(checkpoint.position, w.node.head().await);

    let ok = registre::cli::audit_verify(store, std::slice::from_ref(&kept))
        .await
        .expect("an untouched log verifies");
    assert!(ok.contains("1 checkpoint(s) hold"), "{ok}");

    // Cutting the newest event leaves a chain that verifies on its own; the
    // kept checkpoint is what exposes it.
    tamper(
        &w,
        &format!(
            "DELETE FROM events WHERE position = {}",
            checkpoint.position
        ),
    )
    .await;
    registre::cli::audit_verify(store, &[])
        .await
        .expect("a cut tail is still a valid chain");
    let cut = registre::cli::audit_verify(store, std::slice::from_ref(&kept))
        .await
        .expect_err("the checkpoint exposes the cut");
    assert!(cut.to_string().contains("no longer holds"), "{cut}");

    // An altered row breaks the chain at its position.
    tamper(
        &w,
        r#"UPDATE events SET data = '{"forged":true}' WHERE position = 3"#,
    )
    .await;
    let altered = registre::cli::audit_verify(store, &[])
        .await
        .expect_err("an altered row is found");
    assert!(
        altered.to_string().contains("breaks at position 3"),
        "{altered}"
    );
    let missing = registre::cli::audit_verify(store, &[dir.0.join("absent.json")])
        .await
        .expect_err("a missing checkpoint file is an error");
    assert!(missing.to_string().contains("absent.json"), "{missing}");
}
