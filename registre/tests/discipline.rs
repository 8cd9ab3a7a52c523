//! Discipline (issue 15), end to end through GraphQL on PostgreSQL, with a
//! smoke run on the embedded store: incidents and their need-to-know,
//! punishments, sanctions with their erasure day at the school-year
//! boundaries for every kind, early erasure, erasure on schedule by
//! `registre retention apply` (the function, on its own store and read
//! model, with a clock passed in), the head's statistics; every refusal with
//! its code and nothing written.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone as _, Utc};
use common::{codes, str_at, World};
use registre_app::erasure::{apply_retention, RetentionPolicy};
use registre_projections::{EngineConfig, ProjectionEngine};
use registre_store::{EventStore, ERASED};
use serde_json::{json, Value};
use std::sync::Arc;

const REPORT: &str = "mutation($i: ReportIncidentInput!) { reportIncident(input: $i) {
    id place description occurredAt reportedAt reportedBy { id } establishment { id }
    protagonists { role student { id } } } }";
const PUNISH: &str = "mutation($i: GivePunishmentInput!) { givePunishment(input: $i) {
    id kind reason dueOn givenAt givenBy { id } student { id } incident { id } } }";
const IMPOSE: &str = "mutation($i: ImposeSanctionInput!) { imposeSanction(input: $i) {
    id kind reason decidedOn days suspendedDays erasedOn erased decidedBy { id } incident { id } } }";
const ERASE: &str = "mutation($s: ID!, $r: String!) { eraseSanction(sanctionId: $s, reason: $r) {
    id erased reason kind } }";
const PUNISHMENTS: &str = "query($s: ID!) { student(id: $s) { punishments {
    id kind reason dueOn incident { id description protagonists { role student { id } } } } } }";
const SANCTIONS: &str = "query($s: ID!) { student(id: $s) { sanctions {
    id kind reason erasedOn erased incident { id protagonists { role student { id } } } } } }";
const INCIDENTS: &str =
    "query($e: ID!, $f: Date!, $t: Date!) { incidents(establishmentId: $e, from: $f, to: $t) {
    id description protagonists { role student { id } } } }";
const STATS: &str = "query($e: ID!, $f: Date!, $t: Date!) { disciplineStatistics(establishmentId: $e, from: $f, to: $t) {
    month category kind count } }";
const TRAIL: &str =
    "query($p: ID!) { auditTrail(subjectId: $p) { eventType reason actor { id } data } }";
const FIGHT: &str = "Bousculade dans la cour : Léo a poussé Inès contre le grillage";
const MOTIVE: &str = "Violences physiques envers une camarade, récidive";

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// The last 31 August before today and the 1 September after it: the
/// boundary between two school years, both in the past.
fn boundary() -> (NaiveDate, NaiveDate) {
    let t = today();
    let y = if t.month() >= 9 {
        t.year()
    } else {
        t.year() - 1
    };
    (
        NaiveDate::from_ymd_opt(y, 8, 31).unwrap(),
        NaiveDate::from_ymd_opt(y, 9, 1).unwrap(),
    )
}

fn aug31(year: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, 8, 31).unwrap()
}

/// Noon UTC of `day`: the same day in Paris (the E1 establishment).
fn noon(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(12, 0, 0).unwrap())
}

fn policy() -> RetentionPolicy {
    RetentionPolicy {
        account_days: 90,
        access_log: std::time::Duration::from_secs(365 * 86_400),
    }
}

/// What `registre retention apply` opens: its own vault and read model.
async fn command_line(w: &World) -> (Arc<dyn EventStore>, ProjectionEngine) {
    let raw = match (&w.db, &w._dir) {
        (Some(db), _) => registre_store::open(Some(&db.url), std::path::Path::new("."))
            .await
            .unwrap(),
        (None, Some(dir)) => registre_store::open(None, &dir.0).await.unwrap(),
        (None, None) => panic!("a world has a database or a directory"),
    };
    let store =
        registre_store::VaultStore::wrap(raw, registre_domain::personal::sealed_fields).unwrap();
    let engine = ProjectionEngine::open(store.clone(), EngineConfig::default())
        .await
        .unwrap();
    (store, engine)
}

async fn report(
    w: &World,
    who: &str,
    occurred: DateTime<Utc>,
    protagonists: Value,
) -> async_graphql::Response {
    w.node
        .run(
            who,
            REPORT,
            json!({"i": {"establishmentId": w.id("E1"), "occurredAt": occurred.to_rfc3339(),
                         "place": "Cour", "description": FIGHT, "protagonists": protagonists}}),
        )
        .await
}

/// The fight of s1 (author) against s4 (victim), reported by teacher1.
async fn fight(w: &World) -> String {
    let r = report(
        w,
        "teacher1",
        Utc::now() - Duration::hours(2),
        json!([{"studentId": w.id("s1"), "role": "AUTHOR"}, {"studentId": w.id("s4"), "role": "VICTIM"}]),
    )
    .await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    str_at(&r.data.into_json().unwrap(), "/reportIncident/id")
}

async fn impose(w: &World, who: &str, input: Value) -> async_graphql::Response {
    w.node.run(who, IMPOSE, json!({ "i": input })).await
}

fn sanction(w: &World, kind: &str, decided_on: NaiveDate) -> Value {
    let days = matches!(kind, "CLASS_EXCLUSION" | "TEMPORARY_EXCLUSION").then_some(2);
    json!({"studentId": w.id("s1"), "kind": kind, "reason": MOTIVE,
           "decidedOn": decided_on.to_string(), "days": days})
}

fn student_ids(protagonists: &Value) -> Vec<String> {
    protagonists
        .as_array()
        .unwrap()
        .iter()
        .map(|p| str_at(p, "/student/id"))
        .collect()
}

#[tokio::test]
async fn incidents_are_reported_by_staff_and_seen_on_a_need_to_know_basis() {
    let w = World::postgres().await;
    let n = &w.node;
    let head = n.head().await;
    let now = Utc::now();
    let s1 = json!([{"studentId": w.id("s1"), "role": "AUTHOR"}]);
    // Refusals, nothing written.
    assert_eq!(
        codes(&report(&w, "guardian1", now, s1.clone()).await),
        ["FORBIDDEN"]
    );
    assert_eq!(
        codes(&report(&w, "teacher3", now, s1.clone()).await),
        ["FORBIDDEN"],
        "another establishment's teacher"
    );
    assert_eq!(
        codes(&report(&w, "student1", now, s1.clone()).await),
        ["FORBIDDEN"]
    );
    let r = report(&w, "teacher1", now + Duration::days(1), s1.clone()).await;
    assert_eq!(
        codes(&r),
        ["INVALID_INPUT"],
        "an incident that has not happened"
    );
    let twice = json!([{"studentId": w.id("s1"), "role": "AUTHOR"}, {"studentId": w.id("s1"), "role": "VICTIM"}]);
    assert_eq!(
        codes(&report(&w, "teacher1", now, twice).await),
        ["INVALID_INPUT"]
    );
    let stranger = json!([{"studentId": w.id("s3"), "role": "WITNESS"}]);
    assert_eq!(
        codes(&report(&w, "staff1", now, stranger).await),
        ["NOT_FOUND"],
        "s3 is in E2"
    );
    let r = w
        .node
        .run(
            "teacher1",
            REPORT,
            json!({"i": {"establishmentId": w.id("E1"), "occurredAt": now.to_rfc3339(),
                         "description": "  ", "protagonists": []}}),
        )
        .await;
    assert_eq!(codes(&r), ["INVALID_INPUT"], "a description is required");
    assert_eq!(n.head().await, head, "refusals write nothing");

    let r = report(
        &w,
        "teacher1",
        now - Duration::hours(2),
        json!([{"studentId": w.id("s1"), "role": "AUTHOR"}, {"studentId": w.id("s4"), "role": "VICTIM"}]),
    )
    .await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let d = r.data.into_json().unwrap();
    let incident = str_at(&d, "/reportIncident/id");
    assert_eq!(d["reportIncident"]["description"], FIGHT);
    assert_eq!(d["reportIncident"]["reportedBy"]["id"], w.id("teacher1"));
    assert_eq!(
        student_ids(&d["reportIncident"]["protagonists"]),
        [w.id("s1"), w.id("s4")]
    );
    assert_eq!(n.head().await, head + 1);
    // An incident whose authors are unknown names no one.
    let r = report(&w, "staff1", now - Duration::days(3), json!([])).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);

    // The establishment's incidents: EDUCATION_STAFF and HEAD of it only.
    let range = json!({"e": w.id("E1"), "f": (today() - Duration::days(7)).to_string(), "t": (today() + Duration::days(1)).to_string()});
    for who in ["staff1", "head1"] {
        let d = n.ok(who, INCIDENTS, range.clone()).await;
        let list = d["incidents"].as_array().unwrap();
        assert_eq!(list.len(), 2, "{who}: {d}");
        assert_eq!(list[1]["id"], incident.as_str(), "oldest first");
        assert_eq!(student_ids(&list[1]["protagonists"]).len(), 2);
    }
    for who in ["teacher1", "guardian1", "student1", "staff2"] {
        let r = n.run(who, INCIDENTS, range.clone()).await;
        assert_eq!(codes(&r), ["FORBIDDEN"], "{who}");
    }
    let r = n
        .run(
            "staff1",
            INCIDENTS,
            json!({"e": w.id("E1"), "f": today().to_string(), "t": (today() - Duration::days(1)).to_string()}),
        )
        .await;
    assert_eq!(codes(&r), ["INVALID_INPUT"]);

    // Through a punishment linked to it, each viewer sees what they may.
    n.ok(
        "teacher1",
        PUNISH,
        json!({"i": {"studentId": w.id("s1"), "kind": "NOTE_IN_LOGBOOK", "reason": "A poussé une camarade", "incidentId": incident}}),
    )
    .await;
    n.ok(
        "staff1",
        PUNISH,
        json!({"i": {"studentId": w.id("s4"), "kind": "APOLOGY", "reason": "Insultes en retour", "incidentId": incident}}),
    )
    .await;
    let seen = |d: &Value| student_ids(&d["student"]["punishments"][0]["incident"]["protagonists"]);
    // The guardian and the student: their own line, never the other child's.
    let d = n
        .ok("guardian1", PUNISHMENTS, json!({"s": w.id("s1")}))
        .await;
    assert_eq!(seen(&d), [w.id("s1")]);
    assert_eq!(
        d["student"]["punishments"][0]["incident"]["protagonists"][0]["role"],
        "AUTHOR"
    );
    assert!(!d.to_string().contains(&w.id("s4")), "{d}");
    let d = n
        .ok("student4", PUNISHMENTS, json!({"s": w.id("s4")}))
        .await;
    assert_eq!(seen(&d), [w.id("s4")]);
    // The teacher who reported it, and the CPE: everyone.
    let d = n
        .ok("teacher1", PUNISHMENTS, json!({"s": w.id("s1")}))
        .await;
    assert_eq!(seen(&d), [w.id("s1"), w.id("s4")]);
    let d = n.ok("staff1", PUNISHMENTS, json!({"s": w.id("s4")})).await;
    assert_eq!(seen(&d), [w.id("s1"), w.id("s4")]);
    // Another family reads neither.
    let r = n
        .run("guardian2", PUNISHMENTS, json!({"s": w.id("s1")}))
        .await;
    assert_eq!(codes(&r), ["FORBIDDEN"]);

    // A retried report with its idempotency key records one incident.
    let retried = json!({"i": {"establishmentId": w.id("E1"), "occurredAt": now.to_rfc3339(),
        "description": "Vitre brisée", "protagonists": [], "idempotencyKey": "incident-vitre-1"}});
    let before = n.head().await;
    let first = n.ok("staff1", REPORT, retried.clone()).await;
    let again = n.ok("staff1", REPORT, retried).await;
    assert_eq!(first["reportIncident"]["id"], again["reportIncident"]["id"]);
    assert_eq!(n.head().await, before + 1);
}

#[tokio::test]
async fn punishments_are_given_by_the_students_teachers_and_staff() {
    let w = World::postgres().await;
    let n = &w.node;
    let incident = fight(&w).await;
    let due = today() + Duration::days(2);
    let give = |who: &'static str, input: Value| async move {
        n.run(who, PUNISH, json!({ "i": input })).await
    };
    let head = n.head().await;
    let s1 = w.id("s1");
    let detention = json!({"studentId": s1, "kind": "DETENTION", "reason": "Retenue pour la bousculade", "dueOn": due.to_string(), "incidentId": incident});
    // Refusals.
    assert_eq!(
        codes(&give("teacher2", detention.clone()).await),
        ["FORBIDDEN"],
        "not s1's teacher"
    );
    assert_eq!(
        codes(&give("guardian1", detention.clone()).await),
        ["FORBIDDEN"]
    );
    assert_eq!(
        codes(&give("staff2", detention.clone()).await),
        ["FORBIDDEN"],
        "another establishment"
    );
    let r = give(
        "teacher1",
        json!({"studentId": s1, "kind": "DETENTION", "reason": "Retenue"}),
    )
    .await;
    assert_eq!(codes(&r), ["INVALID_INPUT"], "a detention has a day");
    let r = give(
        "teacher1",
        json!({"studentId": s1, "kind": "APOLOGY", "reason": "Excuses", "dueOn": due.to_string()}),
    )
    .await;
    assert_eq!(codes(&r), ["INVALID_INPUT"], "an apology has none");
    let r = give("teacher1", json!({"studentId": s1, "kind": "EXTRA_WORK", "reason": "Devoir", "dueOn": (today() - Duration::days(2)).to_string()})).await;
    assert_eq!(codes(&r), ["INVALID_INPUT"], "due in the past");
    let r = give(
        "teacher1",
        json!({"studentId": s1, "kind": "APOLOGY", "reason": " "}),
    )
    .await;
    assert_eq!(codes(&r), ["INVALID_INPUT"], "a reason is required");
    let r = give("teacher1", json!({"studentId": s1, "kind": "APOLOGY", "reason": "Excuses", "incidentId": uuid::Uuid::now_v7().to_string()})).await;
    assert_eq!(codes(&r), ["NOT_FOUND"]);
    let r = give(
        "teacher1",
        json!({"studentId": s1, "kind": "LINES", "reason": "Lignes"}),
    )
    .await;
    assert_eq!(codes(&r), ["INVALID_INPUT"], "not a punishment kind");
    assert_eq!(n.head().await, head, "refusals write nothing");

    let d = n.ok("teacher1", PUNISH, json!({ "i": detention })).await;
    let p = &d["givePunishment"];
    assert_eq!(p["kind"], "DETENTION");
    assert_eq!(p["dueOn"], due.to_string());
    assert_eq!(p["incident"]["id"], incident.as_str());
    assert_eq!(p["givenBy"]["id"], w.id("teacher1"));
    n.ok("head1", PUNISH, json!({"i": {"studentId": s1, "kind": "EXCLUSION_FROM_LESSON", "reason": "Refus de travailler"}})).await;
    assert_eq!(n.head().await, head + 2);

    // Visible at once to the student, their guardians, teachers, the CPE and
    // the head; the reason is sealed in the log.
    for who in ["student1", "guardian1", "teacher1", "staff1", "head1"] {
        let d = n.ok(who, PUNISHMENTS, json!({"s": s1})).await;
        let list = d["student"]["punishments"].as_array().unwrap();
        assert_eq!(list.len(), 2, "{who}");
        assert_eq!(
            list[0]["kind"], "EXCLUSION_FROM_LESSON",
            "{who}: latest first"
        );
        assert_eq!(list[1]["reason"], "Retenue pour la bousculade");
    }
    for who in ["teacher2", "guardian2", "student4", "staff2"] {
        let r = n.run(who, PUNISHMENTS, json!({"s": s1})).await;
        assert_eq!(codes(&r), ["FORBIDDEN"], "{who}");
    }
    let (raw, _) = command_line(&w).await;
    let stored = raw.read_all(0, 10_000).await.unwrap();
    assert!(
        serde_json::to_string(&stored)
            .unwrap()
            .contains("Retenue pour la bousculade"),
        "the vault opens it"
    );
    let sealed = registre_store::open(Some(&w.db.as_ref().unwrap().url), std::path::Path::new("."))
        .await
        .unwrap();
    let text = serde_json::to_string(&sealed.read_all(0, 10_000).await.unwrap()).unwrap();
    assert!(
        !text.contains("Retenue pour la bousculade"),
        "sealed in the log"
    );
    assert!(!text.contains("Léo a poussé"), "the incident's text too");
}

#[tokio::test]
async fn sanctions_are_the_heads_from_the_closed_list_with_their_erasure_day() {
    let w = World::postgres().await;
    let n = &w.node;
    let incident = fight(&w).await;
    let head = n.head().await;
    let t = today();
    let exclusion = json!({"studentId": w.id("s1"), "kind": "TEMPORARY_EXCLUSION", "reason": MOTIVE,
                           "decidedOn": t.to_string(), "days": 3, "suspendedDays": 1, "incidentId": incident});
    // Refusals, nothing written.
    for who in ["teacher1", "staff1", "guardian1", "admin"] {
        assert_eq!(
            codes(&impose(&w, who, exclusion.clone()).await),
            ["FORBIDDEN"],
            "{who}"
        );
    }
    let mut nine = exclusion.clone();
    nine["days"] = json!(9);
    assert_eq!(
        codes(&impose(&w, "head1", nine).await),
        ["INVALID_INPUT"],
        "at most 8 days"
    );
    let mut zero = exclusion.clone();
    zero["days"] = json!(0);
    assert_eq!(codes(&impose(&w, "head1", zero).await), ["INVALID_INPUT"]);
    let mut suspended = exclusion.clone();
    suspended["suspendedDays"] = json!(4);
    assert_eq!(
        codes(&impose(&w, "head1", suspended).await),
        ["INVALID_INPUT"],
        "more suspended than days"
    );
    let mut no_days = exclusion.clone();
    no_days["days"] = Value::Null;
    assert_eq!(
        codes(&impose(&w, "head1", no_days).await),
        ["INVALID_INPUT"]
    );
    let mut warning_days = sanction(&w, "WARNING", t);
    warning_days["days"] = json!(2);
    assert_eq!(
        codes(&impose(&w, "head1", warning_days).await),
        ["INVALID_INPUT"]
    );
    let mut other = exclusion.clone();
    other["kind"] = json!("DETENTION");
    assert_eq!(
        codes(&impose(&w, "head1", other).await),
        ["INVALID_INPUT"],
        "not in R511-13's list"
    );
    let mut later = exclusion.clone();
    later["decidedOn"] = json!((t + Duration::days(2)).to_string());
    assert_eq!(
        codes(&impose(&w, "head1", later).await),
        ["INVALID_INPUT"],
        "decided in the future"
    );
    let mut elsewhere = exclusion.clone();
    elsewhere["studentId"] = json!(w.id("s3"));
    assert_eq!(
        codes(&impose(&w, "head1", elsewhere).await),
        ["FORBIDDEN"],
        "a student of E2"
    );
    let mut unrelated = exclusion.clone();
    unrelated["studentId"] = json!(w.id("s2"));
    assert_eq!(
        codes(&impose(&w, "head1", unrelated).await),
        ["INVALID_INPUT"],
        "s2 is not in the incident"
    );
    assert_eq!(n.head().await, head, "refusals write nothing");

    let r = impose(&w, "head1", exclusion).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let d = r.data.into_json().unwrap();
    let s = &d["imposeSanction"];
    assert_eq!(s["kind"], "TEMPORARY_EXCLUSION");
    assert_eq!(
        (s["days"].as_i64(), s["suspendedDays"].as_i64()),
        (Some(3), Some(1))
    );
    assert_eq!(s["erased"], false);
    assert_eq!(s["incident"]["id"], incident.as_str());
    assert_eq!(s["decidedBy"]["id"], w.id("head1"));
    let year_end = if t.month() >= 9 {
        t.year() + 1
    } else {
        t.year()
    };
    assert_eq!(
        s["erasedOn"],
        aug31(year_end + 2).to_string(),
        "the end of the second following school year"
    );
    assert_eq!(n.head().await, head + 1);

    // Visible at once to the student, their guardians, the CPE and the head;
    // not to teachers or another family.
    for who in ["student1", "guardian1", "staff1", "head1"] {
        let d = n.ok(who, SANCTIONS, json!({"s": w.id("s1")})).await;
        let list = d["student"]["sanctions"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{who}");
        assert_eq!(list[0]["reason"], MOTIVE);
    }
    let d = n.ok("guardian1", SANCTIONS, json!({"s": w.id("s1")})).await;
    assert_eq!(
        student_ids(&d["student"]["sanctions"][0]["incident"]["protagonists"]),
        [w.id("s1")]
    );
    for who in ["teacher1", "guardian2", "student4"] {
        let r = n.run(who, SANCTIONS, json!({"s": w.id("s1")})).await;
        assert_eq!(codes(&r), ["FORBIDDEN"], "{who}");
    }
}

/// R511-13 (since September 2019), for every kind decided on each side of
/// the boundary between two school years: a warning leaves at the end of
/// its year, a reprimand and a responsibility measure at the end of the
/// next one, temporary exclusions at the end of the second next one, a
/// permanent exclusion has no day (end of secondary schooling).
#[tokio::test]
async fn every_kind_gets_its_erasure_day_at_the_school_year_boundary() {
    let w = World::postgres().await;
    let (last_day, first_day) = boundary();
    let y = last_day.year();
    let expected = [
        ("WARNING", Some(0)),
        ("REPRIMAND", Some(1)),
        ("RESPONSIBILITY_MEASURE", Some(1)),
        ("CLASS_EXCLUSION", Some(2)),
        ("TEMPORARY_EXCLUSION", Some(2)),
        ("PERMANENT_EXCLUSION", None),
    ];
    for (kind, years) in expected {
        for (decided, year_end) in [(last_day, y), (first_day, y + 1)] {
            let r = impose(&w, "head1", sanction(&w, kind, decided)).await;
            assert!(r.errors.is_empty(), "{kind} {decided}: {:?}", r.errors);
            let d = r.data.into_json().unwrap();
            let want = years.map(|n| aug31(year_end + n).to_string());
            assert_eq!(
                d["imposeSanction"]["erasedOn"].as_str().map(str::to_owned),
                want,
                "{kind} decided on {decided}"
            );
        }
    }
}

#[tokio::test]
async fn the_head_erases_a_sanction_early_and_its_text_goes_with_its_key() {
    let w = World::postgres().await;
    let n = &w.node;
    let d = impose(&w, "head1", sanction(&w, "REPRIMAND", today())).await;
    let id = str_at(&d.data.into_json().unwrap(), "/imposeSanction/id");
    // A second node caches the sanction's key by reading it.
    let other = w.second_node().await;
    let d = other
        .ok("guardian1", SANCTIONS, json!({"s": w.id("s1")}))
        .await;
    assert_eq!(d["student"]["sanctions"][0]["reason"], MOTIVE);

    let head = n.head().await;
    let why = "Changement d'établissement : effacement demandé par la famille";
    for who in ["teacher1", "staff1", "guardian1"] {
        let r = n.run(who, ERASE, json!({"s": id, "r": why})).await;
        assert_eq!(codes(&r), ["FORBIDDEN"], "{who}");
    }
    let r = n.run("head1", ERASE, json!({"s": id, "r": "  "})).await;
    assert_eq!(codes(&r), ["INVALID_INPUT"], "a reason is required");
    let r = n
        .run(
            "head1",
            ERASE,
            json!({"s": uuid::Uuid::now_v7().to_string(), "r": why}),
        )
        .await;
    assert_eq!(codes(&r), ["FORBIDDEN"], "an unknown sanction says nothing");
    assert_eq!(n.head().await, head, "refusals write nothing");

    let d = n.ok("head1", ERASE, json!({"s": id, "r": why})).await;
    assert_eq!(d["eraseSanction"]["erased"], true);
    assert_eq!(d["eraseSanction"]["reason"], ERASED);
    assert_eq!(d["eraseSanction"]["kind"], "REPRIMAND", "the facts stay");
    let r = n.run("head1", ERASE, json!({"s": id, "r": why})).await;
    assert_eq!(codes(&r), ["CONFLICT"], "erased once");
    assert_eq!(n.head().await, head + 1);

    // No longer listed, on this node and on the other one.
    for node in [n, &other] {
        let d = node
            .ok("guardian1", SANCTIONS, json!({"s": w.id("s1")}))
            .await;
        assert_eq!(d["student"]["sanctions"], json!([]));
    }
    // The key is destroyed: the log reads as erased, a fresh fold too.
    let keys = registre_store::open(Some(&w.db.as_ref().unwrap().url), std::path::Path::new("."))
        .await
        .unwrap()
        .subject_keys()
        .unwrap();
    assert!(keys
        .is_destroyed(uuid::Uuid::parse_str(&id).unwrap())
        .await
        .unwrap());
    let (store, _) = command_line(&w).await;
    let text = serde_json::to_string(&store.read_all(0, 10_000).await.unwrap()).unwrap();
    assert!(!text.contains(MOTIVE), "the motive is unreadable");
    assert!(text.contains(why), "the erasure's reason stays");
    let third = w.second_node().await;
    let stats = third
        .ok("head1", STATS, json!({"e": w.id("E1"), "f": (today() - Duration::days(40)).to_string(), "t": today().to_string()}))
        .await;
    assert!(
        stats.to_string().contains("REPRIMAND"),
        "statistics keep the fact: {stats}"
    );

    // The subject access export lists the facts, the motive gone.
    let export = n
        .ok(
            "auditor",
            "query($p: ID!) { exportPersonData(personId: $p) }",
            json!({"p": w.id("student1")}),
        )
        .await;
    let sanctions = &export["exportPersonData"]["discipline"]["sanctions"];
    assert_eq!(sanctions[0]["kind"], "REPRIMAND", "{export}");
    assert_eq!(sanctions[0]["erased"], true);
    assert_eq!(sanctions[0]["reason"], ERASED);
    assert!(!export.to_string().contains(MOTIVE));

    // The audit trail shows the erasure, who did it and why.
    let trail = n.ok("auditor", TRAIL, json!({"p": w.id("student1")})).await;
    let last = trail["auditTrail"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["eventType"], "SanctionErased");
    assert_eq!(last["reason"], why);
    assert_eq!(last["actor"]["id"], w.id("head1"));
    assert_eq!(last["data"]["early"], true);
}

async fn erasure_on_schedule(w: World) {
    let n = &w.node;
    let (last_day, first_day) = boundary();
    let ids =
        |d: async_graphql::Response| str_at(&d.data.into_json().unwrap(), "/imposeSanction/id");
    // Past its day already: a warning of the school year that ended.
    let old = ids(impose(&w, "head1", sanction(&w, "WARNING", last_day)).await);
    // Due at the end of this school year.
    let current = ids(impose(&w, "head1", sanction(&w, "WARNING", first_day)).await);
    // Due one year later.
    let reprimand = ids(impose(&w, "head1", sanction(&w, "REPRIMAND", first_day)).await);
    let permanent = ids(impose(&w, "head1", sanction(&w, "PERMANENT_EXCLUSION", first_day)).await);
    let listed = |d: &Value| -> Vec<String> {
        d["student"]["sanctions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| str_at(s, "/id"))
            .collect()
    };
    assert_eq!(
        listed(&n.ok("guardian1", SANCTIONS, json!({"s": w.id("s1")})).await).len(),
        4
    );

    let (store, engine) = command_line(&w).await;
    let run = |now: DateTime<Utc>| {
        let (store, engine) = (&store, &engine);
        async move {
            let report = apply_retention(store, engine, &policy(), now)
                .await
                .unwrap();
            report
                .sanctions_erased
                .iter()
                .map(|s| s.0.to_string())
                .collect::<Vec<_>>()
        }
    };
    let end = aug31(first_day.year() + 1);
    if today() < end {
        assert_eq!(run(Utc::now()).await, [old.as_str()]);
        assert_eq!(
            run(Utc::now()).await,
            Vec::<String>::new(),
            "twice writes nothing"
        );
        assert_eq!(
            run(noon(end - Duration::days(1))).await,
            Vec::<String>::new(),
            "the day before"
        );
        assert_eq!(
            run(noon(end)).await,
            [current.as_str()],
            "on the last day of the school year"
        );
    } else {
        // Run on the last day of a school year: this year's warning is due too.
        assert_eq!(run(Utc::now()).await, [old.as_str(), current.as_str()]);
    }
    let next_end = aug31(first_day.year() + 2);
    assert_eq!(
        run(noon(next_end - Duration::days(1))).await,
        Vec::<String>::new()
    );
    assert_eq!(run(noon(next_end)).await, [reprimand.as_str()]);
    assert_eq!(
        run(noon(aug31(first_day.year() + 20))).await,
        Vec::<String>::new(),
        "a permanent exclusion waits for the head"
    );

    // The serving node learns it from the log.
    let d = n.ok("guardian1", SANCTIONS, json!({"s": w.id("s1")})).await;
    assert_eq!(listed(&d), [permanent]);
    let trail = n.ok("auditor", TRAIL, json!({"p": w.id("student1")})).await;
    let erasures: Vec<&Value> = trail["auditTrail"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["eventType"] == "SanctionErased")
        .collect();
    assert_eq!(erasures.len(), 3);
    for e in erasures {
        assert!(e["actor"].is_null(), "the system: {e}");
        assert_eq!(e["data"]["early"], false);
        assert!(e["reason"].as_str().unwrap().contains("R511-13"), "{e}");
    }
    let text = serde_json::to_string(&store.read_all(0, 10_000).await.unwrap()).unwrap();
    assert_eq!(
        text.matches(MOTIVE).count(),
        1,
        "only the permanent exclusion's motive is readable"
    );
}

#[tokio::test]
async fn retention_erases_sanctions_on_their_day_on_postgres() {
    erasure_on_schedule(World::postgres().await).await;
}

#[tokio::test]
async fn retention_erases_sanctions_on_their_day_on_the_embedded_store() {
    erasure_on_schedule(World::sqlite().await).await;
}

#[tokio::test]
async fn the_head_counts_incidents_punishments_and_sanctions_per_month_without_names() {
    let w = World::sqlite().await;
    let n = &w.node;
    let incident = fight(&w).await;
    n.ok("teacher1", PUNISH, json!({"i": {"studentId": w.id("s1"), "kind": "APOLOGY", "reason": "Excuses écrites", "incidentId": incident}})).await;
    n.ok(
        "staff1",
        PUNISH,
        json!({"i": {"studentId": w.id("s4"), "kind": "APOLOGY", "reason": "Excuses orales"}}),
    )
    .await;
    let (last_day, _) = boundary();
    impose(&w, "head1", sanction(&w, "WARNING", last_day)).await;
    let range = json!({"e": w.id("E1"), "f": (last_day - Duration::days(1)).to_string(), "t": (today() + Duration::days(1)).to_string()});
    let d = n.ok("head1", STATS, range.clone()).await;
    let rows = d["disciplineStatistics"].as_array().unwrap();
    let month = |day: NaiveDate| day.with_day(1).unwrap().to_string();
    let find = |category: &str, kind: Value| {
        rows.iter()
            .find(|r| r["category"] == category && r["kind"] == kind)
            .unwrap_or_else(|| panic!("no {category} row in {d}"))
            .clone()
    };
    let incidents = find("INCIDENT", Value::Null);
    assert_eq!(incidents["count"], 1);
    let apologies = find("PUNISHMENT", json!("APOLOGY"));
    assert_eq!(apologies["count"], 2);
    let warnings = find("SANCTION", json!("WARNING"));
    assert_eq!(
        (warnings["month"].clone(), warnings["count"].clone()),
        (json!(month(last_day)), json!(1))
    );
    for name in ["student1", "student4", FIGHT, "Excuses"] {
        assert!(!d.to_string().contains(name), "no names: {d}");
    }
    for who in ["staff2", "teacher1", "guardian1", "auditor"] {
        assert_eq!(
            codes(&n.run(who, STATS, range.clone()).await),
            ["FORBIDDEN"],
            "{who}"
        );
    }
    // And the embedded store's smoke run of the mutations.
    let r = impose(&w, "teacher1", sanction(&w, "WARNING", today())).await;
    assert_eq!(codes(&r), ["FORBIDDEN"]);
    let d = n
        .ok("guardian1", PUNISHMENTS, json!({"s": w.id("s1")}))
        .await;
    assert_eq!(
        student_ids(&d["student"]["punishments"][0]["incident"]["protagonists"]),
        [w.id("s1")]
    );
}
