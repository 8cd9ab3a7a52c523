//! Account closure and retention-driven erasure (GDPR art. 5(1)(e), the ENT
//! regulation's three months), on PostgreSQL and on the embedded store:
//! `closeAccount` records the departure, `registre retention apply` (the
//! function it calls, on its own store and key cache, as the command-line
//! process would) erases the people whose account was closed long enough ago,
//! logs each erasure with the rule as its reason, purges the old access
//! records, and writes nothing when run again. The serving node learns of the
//! erasures from the log alone. On PostgreSQL the real binary runs
//! `export person`, `forget` and `retention apply` too.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::{Duration, Utc};
use common::{codes, str_at, World};
use registre_app::erasure::{apply_retention, RetentionPolicy, ACCOUNT_RETENTION_VAR};
use registre_projections::{EngineConfig, ProjectionEngine};
use registre_store::{EventStore, NewAccess, ERASED};
use serde_json::{json, Value};
use std::sync::Arc;

const CLOSE: &str = "mutation($i: CloseAccountInput!) { closeAccount(input: $i) { id } }";
const INBOX: &str = "{ inbox { from { displayName } body } }";
const TRAIL: &str =
    "query($p: ID!) { auditTrail(subjectId: $p) { eventType reason actor { id } data } }";
const SECRET: &str = "Je déménage à Trifouilly-les-Oies";
const DEPARTURE: &str = "Départ pour un autre collège";

fn policy() -> RetentionPolicy {
    RetentionPolicy {
        account_days: 90,
        access_log: std::time::Duration::from_secs(365 * 86_400),
    }
}

/// The world's store opened again, without the vault.
async fn raw_store(w: &World) -> Arc<dyn EventStore> {
    match (&w.db, &w._dir) {
        (Some(db), _) => registre_store::open(Some(&db.url), std::path::Path::new("."))
            .await
            .unwrap(),
        (None, Some(dir)) => registre_store::open(None, &dir.0).await.unwrap(),
        (None, None) => panic!("a world has a database or a directory"),
    }
}

/// What `registre retention apply` opens: its own vault (and key cache) and
/// its own read model.
async fn command_line(w: &World) -> (Arc<dyn EventStore>, ProjectionEngine) {
    let store = registre_store::VaultStore::wrap(
        raw_store(w).await,
        registre_domain::personal::sealed_fields,
    )
    .unwrap();
    let engine = ProjectionEngine::open(store.clone(), EngineConfig::default())
        .await
        .unwrap();
    (store, engine)
}

async fn close(
    w: &World,
    who: &str,
    person: &str,
    on: chrono::NaiveDate,
) -> async_graphql::Response {
    w.node
        .run(
            who,
            CLOSE,
            json!({"i": {"personId": w.id(person), "effectiveOn": on.to_string(), "reason": DEPARTURE}}),
        )
        .await
}

async fn trail(w: &World, person: &str) -> Vec<Value> {
    w.node
        .ok("auditor", TRAIL, json!({"p": w.id(person)}))
        .await["auditTrail"]
        .as_array()
        .unwrap()
        .clone()
}

/// A student's name as the head of their establishment sees it.
async fn name_of(w: &World, student: &str) -> String {
    let d = w
        .node
        .ok(
            "head1",
            "query($s: ID!) { student(id: $s) { person { displayName } } }",
            json!({"s": w.id(student)}),
        )
        .await;
    str_at(&d, "/student/person/displayName")
}

async fn retention_erases_closed_accounts(w: World) {
    let n = &w.node;
    let today = Utc::now().date_naive();
    n.ok(
        "student1",
        "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
        json!({"i": {"to": [w.id("teacher1")], "subject": "Départ", "body": SECRET}}),
    )
    .await;
    // The node opens (and caches the key of) student1's text.
    let inbox = n.ok("teacher1", INBOX, json!({})).await;
    assert_eq!(inbox["inbox"][0]["body"], SECRET);

    // Closing: the HEAD of the establishment, once; a teacher may not.
    let head = n.head().await;
    let r = close(&w, "teacher1", "student1", today).await;
    assert_eq!(codes(&r), ["FORBIDDEN"]);
    let r = close(&w, "head1", "student1", today - Duration::days(120)).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let r = close(&w, "admin", "student1", today).await;
    assert_eq!(codes(&r), ["CONFLICT"], "an account is closed once");
    assert_eq!(
        n.head().await,
        head + 1,
        "one AccountClosed, refusals write nothing"
    );
    // student4 left ten days ago: not yet due.
    let r = close(&w, "admin", "student4", today - Duration::days(10)).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);

    let closed = trail(&w, "student1").await;
    let event = closed.last().unwrap();
    assert_eq!(event["eventType"], "AccountClosed");
    assert_eq!(event["reason"], DEPARTURE);
    assert_eq!(
        event["data"]["effective_on"],
        (today - Duration::days(120)).to_string()
    );
    let export = n
        .ok(
            "auditor",
            "query($p: ID!) { exportPersonData(personId: $p) }",
            json!({"p": w.id("student1")}),
        )
        .await;
    assert_eq!(
        export["exportPersonData"]["person"]["accountClosedOn"],
        (today - Duration::days(120)).to_string()
    );
    // The departure reason is personal text: stored sealed.
    let stored = raw_store(&w).await.read_all(0, 10_000).await.unwrap();
    assert!(!serde_json::to_string(&stored).unwrap().contains(DEPARTURE));

    // An access record older than its retention period.
    let raw = raw_store(&w).await;
    raw.record_access(vec![NewAccess {
        at: Utc::now() - Duration::days(400),
        viewer_id: uuid::Uuid::parse_str(&w.id("head1")).unwrap(),
        viewer_profile: "AUTRE".into(),
        subject_id: Some(uuid::Uuid::parse_str(&w.id("student4")).unwrap()),
        operation: "old read".into(),
        service: "Services_Vie_Scolaire".into(),
    }])
    .await
    .unwrap();

    let (store, engine) = command_line(&w).await;
    let report = apply_retention(&store, &engine, &policy(), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        report
            .erased
            .iter()
            .map(|p| p.0.to_string())
            .collect::<Vec<_>>(),
        [w.id("student1")]
    );
    assert_eq!(report.access_records_purged, 1);

    // The serving node did not run the erasure: it reads it from the log,
    // drops the key it cached and shows the person as erased.
    let inbox = n.ok("teacher1", INBOX, json!({})).await;
    assert_eq!(inbox["inbox"][0]["body"], ERASED);
    assert_eq!(inbox["inbox"][0]["from"]["displayName"], ERASED);
    assert!(!inbox.to_string().contains(SECRET));
    let erased = trail(&w, "student1").await;
    let event = erased.last().unwrap();
    assert_eq!(event["eventType"], "PersonErased");
    assert!(event["actor"].is_null(), "a system event: {event}");
    assert!(
        event["reason"]
            .as_str()
            .unwrap()
            .contains(ACCOUNT_RETENTION_VAR),
        "the reason names the rule: {event}"
    );
    // The departure reason went with the key.
    let closed = erased
        .iter()
        .find(|e| e["eventType"] == "AccountClosed")
        .unwrap();
    assert_eq!(closed["reason"], ERASED);
    // student4 is untouched.
    assert_eq!(name_of(&w, "s4").await, "student4");

    // Idempotent: a second run (a fresh process) writes nothing.
    let head = n.head().await;
    let (store, engine) = command_line(&w).await;
    let again = apply_retention(&store, &engine, &policy(), Utc::now())
        .await
        .unwrap();
    assert!(again.erased.is_empty(), "{again:?}");
    assert_eq!(again.access_records_purged, 0);
    assert_eq!(n.head().await, head);
    // Closing an erased person's account is refused.
    let r = close(&w, "admin", "student1", today).await;
    assert_eq!(codes(&r), ["CONFLICT"]);

    let report = registre_store::verify_chain(raw_store(&w).await.as_ref(), |_| {})
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_postgres() {
    retention_erases_closed_accounts(World::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_sqlite() {
    retention_erases_closed_accounts(World::sqlite().await).await;
}

/// Runs the `registre` binary against the world's database.
fn registre(w: &World, args: &[&str]) -> std::process::Output {
    common::run_registre(w, args, &[])
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exports_forgets_and_applies_retention() {
    let w = World::postgres().await;
    let n = &w.node;
    // The operators are registered people: "admin" (ADMIN) and "auditor".
    n.ok("admin", "{ me { id } }", json!({})).await;
    let student = w.id("student2");
    let dir = common::TempDir::new();
    let out = dir.0.join("export.json");

    // export person: the operator's read lands in the person's access log.
    let o = registre(
        &w,
        &[
            "export",
            "person",
            &student,
            "--out",
            out.to_str().unwrap(),
            "--operator",
            "auditor",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(doc["format"], "registre.person-export/1");
    assert_eq!(doc["person"]["erased"], false);
    let log = n
        .ok(
            "auditor",
            "query($p: ID!) { accessLog(subjectId: $p) { viewer { externalId } operation } }",
            json!({"p": student}),
        )
        .await;
    assert!(
        log["accessLog"].as_array().unwrap().iter().any(
            |e| e["operation"] == "cli:export person" && e["viewer"]["externalId"] == "auditor"
        ),
        "{log}"
    );
    // A teacher may not export, from the command line either; an unknown
    // operator is refused; both with a non-zero exit and nothing written.
    let head = n.head().await;
    for operator in ["teacher1", "nobody"] {
        let o = registre(&w, &["export", "person", &student, "--operator", operator]);
        assert!(!o.status.success(), "{operator}: {o:?}");
        assert!(stdout(&o).is_empty(), "no document for {operator}");
    }

    // forget: the same erasure as the mutation, the operator as its actor.
    let o = registre(
        &w,
        &[
            "forget",
            &student,
            "--reason",
            "Demande RGPD n° 7",
            "--operator",
            "teacher1",
        ],
    );
    assert!(!o.status.success(), "only an ADMIN erases: {o:?}");
    assert_eq!(n.head().await, head, "refusals write nothing");
    let o = registre(
        &w,
        &[
            "forget",
            &student,
            "--reason",
            "Demande RGPD n° 7",
            "--operator",
            "admin",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).starts_with("erased person"), "{}", stdout(&o));
    let o = registre(
        &w,
        &[
            "forget",
            &student,
            "--reason",
            "encore",
            "--operator",
            "admin",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("already erased"), "{}", stdout(&o));
    assert_eq!(n.head().await, head + 1, "one PersonErased");
    let events = trail(&w, "student2").await;
    let erased = events.last().unwrap();
    assert_eq!(erased["eventType"], "PersonErased");
    assert_eq!(erased["reason"], "Demande RGPD n° 7");
    assert_eq!(
        erased["actor"]["id"],
        str_at(&n.ok("admin", "{ me { id } }", json!({})).await, "/me/id")
    );
    assert_eq!(name_of(&w, "s2").await, ERASED);

    // retention apply: nobody's account was closed, so nobody is erased.
    let o = registre(&w, &["retention", "apply"]);
    assert!(o.status.success(), "{o:?}");
    assert!(
        stdout(&o).starts_with("erased 0 person(s)"),
        "{}",
        stdout(&o)
    );
    assert_eq!(n.head().await, head + 1);
}
