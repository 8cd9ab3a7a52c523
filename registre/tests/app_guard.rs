//! The application layer's guards (issue 11), through the schema on a real
//! PostgreSQL database: every read is logged or not served, per-person rate
//! limits on mutations, pagination of the lists that grow, ADMIN's view of
//! grades in the audit trail, absence bounds, idempotency keys and invisible
//! format characters. Every refusal is checked to write nothing.
#![allow(clippy::unwrap_used)]

mod common;

use common::{codes, str_at, Node, World};
use registre_app::limits::{PersonLimits, Rate};
use registre_app::AppConfig;
use serde_json::{json, Value};
use std::time::Duration;

const SEND: &str = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }";
const REPORT: &str = "mutation($i: ReportAbsenceInput!) { reportAbsence(input: $i) { id } }";
const ACCESS_LOG: &str = "query($p: ID!, $first: Int, $offset: Int) { accessLog(subjectId: $p, first: $first, offset: $offset) { viewer { externalId } operation service } }";

async fn person_of(n: &Node, who: &str) -> String {
    str_at(&n.ok(who, "{ me { id } }", json!({})).await, "/me/id")
}

fn json_of(r: &async_graphql::Response) -> Value {
    serde_json::to_value(r).unwrap()
}

/// `n` aliases of a whole establishment's grades: one access-log entry per
/// student per alias.
/// The cost model refuses such a wide read before it runs
/// (api/tests/graphql_limits.rs); what these tests check is the access log
/// behind a read that is let through, as under an operator's higher
/// REGISTRE_GRAPHQL_MAX_COST.
fn without_cost_limit(mut node: Node) -> Node {
    node.schema = registre_api::graphql::build_schema_with(
        node.app.clone(),
        registre_api::graphql::QueryLimits {
            max_cost: 1 << 40,
            ..Default::default()
        },
    );
    node
}

fn wide_read(n: usize) -> String {
    let fields: String = (0..n)
        .map(|i| format!("a{i}: establishment(id: $e) {{ classes {{ students {{ grades {{ score }} }} }} }} "))
        .collect();
    format!("query($e: ID!) {{ {fields} }}")
}

/// The access-log entries about `who`'s person written by `viewer` for `service`.
async fn logged(n: &Node, who: &str, viewer: &str, service: &str) -> usize {
    let p = person_of(n, who).await;
    let d = n
        .ok("auditor", ACCESS_LOG, json!({"p": p, "first": 500}))
        .await;
    d["accessLog"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["viewer"]["externalId"] == viewer && e["service"] == service)
        .count()
}

// ---- 1. A read that cannot be logged is not served ---------------------------------------

#[tokio::test]
async fn a_wide_read_is_logged_whole_and_no_entry_is_dropped() {
    let w = World::postgres().await;
    // A queue far smaller than the read: before back-pressure, the entries
    // past the queue's room were dropped (and counted) while the read was served.
    let node = without_cost_limit(
        w.second_node_with(AppConfig {
            access_queue: 16,
            access_batch: 4,
            // Long enough for a loaded machine: this test is about waiting
            // for room rather than dropping, not about how fast.
            access_enqueue_timeout: Duration::from_secs(60),
            ..Default::default()
        })
        .await,
    );
    let a = node
        .ok(
            "teacher1",
            "mutation($i: CreateAssessmentInput!) { createAssessment(input: $i) { id } }",
            json!({"i": {"classId": w.id("C1"), "subject": "maths", "title": "T", "date": "2026-11-02", "coefficient": 1.0, "outOf": 20.0}}),
        )
        .await;
    node.ok(
        "teacher1",
        "mutation($i: RecordGradeInput!) { recordGrade(input: $i) { id } }",
        json!({"i": {"assessmentId": str_at(&a, "/createAssessment/id"), "studentId": w.id("s1"), "score": 13.0, "status": "GRADED"}}),
    )
    .await;
    let aliases = 40;
    let d = node
        .ok("staff1", &wide_read(aliases), json!({"e": w.id("E1")}))
        .await;
    assert_eq!(d.to_string().matches("13.0").count(), aliases, "{d}");
    // E1 holds s1 and s4 (C1) and s2 (C2): every alias read each of them.
    for who in ["student1", "student4", "student2"] {
        assert_eq!(
            logged(&node, who, "staff1", "Notes").await,
            aliases,
            "{who}"
        );
    }
    let stats = node.app.stats();
    assert_eq!(stats.access_log_dropped, 0);
    assert_eq!(stats.access_log_refused_reads, 0);
    node.app.shutdown().await;
}

#[tokio::test]
async fn a_request_reading_past_its_budget_is_refused_and_all_it_served_was_logged() {
    let w = World::postgres().await;
    let node = without_cost_limit(
        w.second_node_with(AppConfig {
            access_reads_per_request: 20,
            ..Default::default()
        })
        .await,
    );
    let r = node
        .run("staff1", &wide_read(30), json!({"e": w.id("E1")}))
        .await;
    assert!(
        codes(&r).iter().all(|c| c == "INVALID_INPUT"),
        "{:?}",
        r.errors
    );
    assert!(!r.errors.is_empty());
    assert!(
        r.errors[0].message.contains("paginate"),
        "{}",
        r.errors[0].message
    );
    // A student whose grades could not be logged is answered null: count
    // the grades lists actually served.
    let served = json_of(&r)["data"]
        .to_string()
        .matches("\"grades\"")
        .count();
    let mut logged_total = 0;
    for who in ["student1", "student4", "student2"] {
        logged_total += logged(&node, who, "staff1", "Notes").await;
    }
    // Exactly the budget was read and logged, and only that was served.
    assert_eq!(logged_total, 20);
    assert_eq!(served, 20);
    // The next request has its own budget.
    node.ok("staff1", &wide_read(3), json!({"e": w.id("E1")}))
        .await;
    node.app.shutdown().await;
}

#[tokio::test]
async fn while_the_access_log_cannot_be_written_reads_are_refused_then_every_served_read_is_logged()
{
    let w = World::postgres().await;
    let url = w.db.as_ref().unwrap().url.clone();
    let node = w
        .second_node_with(AppConfig {
            access_queue: 16,
            access_batch: 4,
            access_flush_every: Duration::from_millis(10),
            access_enqueue_timeout: Duration::from_millis(200),
            ..Default::default()
        })
        .await;
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    // The access log's table goes away (a full disk, a revoked grant, ...).
    client
        .batch_execute("ALTER TABLE access_log RENAME TO access_log_away")
        .await
        .unwrap();
    let read = "{ myChildren { grades { score } } }";
    let mut served = 0usize;
    let mut refused = None;
    for _ in 0..200 {
        let r = node.run("guardian1", read, json!({})).await;
        if r.errors.is_empty() {
            served += 1;
        } else {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("reads are refused once the queue is full");
    assert_eq!(codes(&refused), ["UNAVAILABLE"]);
    assert!(
        json_of(&refused)
            .pointer("/data/myChildren/0/grades")
            .is_none_or(Value::is_null),
        "nothing served: {:?}",
        json_of(&refused)
    );
    // Queue (16) and the writer's batch (4): what was served is what is held.
    assert!((16..=21).contains(&served), "{served} reads served");
    assert!(node.app.stats().access_log_refused_reads >= 1);
    client
        .batch_execute("ALTER TABLE access_log_away RENAME TO access_log")
        .await
        .unwrap();
    // The writer retries: every served read reaches the log, none is dropped.
    assert_eq!(
        logged(&node, "student1", "guardian1", "Notes").await,
        served
    );
    assert_eq!(node.app.stats().access_log_dropped, 0);
    node.ok("guardian1", read, json!({})).await;
    node.app.shutdown().await;
}

// ---- 2. Per-person rate limits --------------------------------------------------------------

fn retry_after(r: &async_graphql::Response) -> Option<u64> {
    json_of(r)
        .pointer("/errors/0/extensions/retryAfter")
        .and_then(Value::as_u64)
}

#[tokio::test]
async fn messages_past_thirty_a_minute_are_refused_with_a_retry_delay_and_nothing_written() {
    let w = World::postgres().await;
    let n = &w.node;
    let to = person_of(n, "teacher1").await;
    let msg = |k: usize| json!({"i": {"to": [to], "subject": format!("Question {k}"), "body": "x".repeat(20_000)}});
    // The default configuration: 30 a minute, a token back every 2 s (a
    // slow machine gets one more per 2 s the sends took).
    let mut accepted = 0;
    let (r, head) = loop {
        let head = n.head().await;
        let r = n.run("guardian1", SEND, msg(accepted)).await;
        if !r.errors.is_empty() {
            break (r, head);
        }
        accepted += 1;
        assert!(accepted <= 60, "no limit after {accepted} messages");
    };
    assert!(accepted >= 30, "refused after {accepted}: {:?}", r.errors);
    assert_eq!(codes(&r), ["RATE_LIMITED"]);
    let wait = retry_after(&r).expect("extensions.retryAfter");
    assert!((1..=2).contains(&wait), "one message every 2 s: {wait}");
    assert!(
        r.errors[0].message.contains("retry in"),
        "{}",
        r.errors[0].message
    );
    assert_eq!(n.head().await, head, "a refused message writes nothing");
    assert!(json_of(&r)["data"].is_null());
    // Another person is not affected; nor are other commands of the same one.
    let to_guardian = person_of(n, "guardian1").await;
    n.ok(
        "teacher1",
        SEND,
        json!({"i": {"to": [to_guardian], "subject": "Réponse", "body": "Oui"}}),
    )
    .await;
    n.ok(
        "guardian1",
        "mutation($i: DeclareAbsenceInput!) { declareAbsence(input: $i) { id } }",
        json!({"i": {"studentId": w.id("s1"), "start": (chrono::Utc::now() + chrono::TimeDelta::days(1)).to_rfc3339(),
                     "end": (chrono::Utc::now() + chrono::TimeDelta::days(1) + chrono::TimeDelta::hours(2)).to_rfc3339(),
                     "reason": "Orthophoniste"}}),
    )
    .await;
}

#[tokio::test]
async fn roll_calls_are_limited_per_person_as_configured() {
    let w = World::postgres().await;
    let node = w
        .second_node_with(AppConfig {
            limits: PersonLimits {
                roll_calls: vec![Rate::per_minute(3), Rate::per_day(1_000)],
                ..PersonLimits::default()
            },
            ..Default::default()
        })
        .await;
    let report = |m: u32| {
        json!({"i": {"studentId": w.id("s1"), "kind": "LATENESS", "minutesLate": m,
                                       "start": "2026-11-24T08:00:00Z", "end": "2026-11-24T09:00:00Z"}})
    };
    for m in 1..=3 {
        node.ok("teacher1", REPORT, report(m)).await;
    }
    let head = node.head().await;
    let r = node.run("teacher1", REPORT, report(4)).await;
    assert_eq!(codes(&r), ["RATE_LIMITED"]);
    let wait = retry_after(&r).expect("extensions.retryAfter");
    assert!((15..=20).contains(&wait), "one report every 20 s: {wait}");
    assert_eq!(node.head().await, head);
    // The CPE has their own allowance.
    node.ok("staff1", REPORT, report(5)).await;
    node.app.shutdown().await;
}

// ---- 3. Pagination ---------------------------------------------------------------------------

fn ids(d: &Value, list: &str) -> Vec<String> {
    d[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_teachers_inbox_of_many_messages_is_bounded_and_pageable() {
    let w = World::postgres().await;
    let node = w
        .second_node_with(AppConfig {
            limits: PersonLimits::unlimited(),
            ..Default::default()
        })
        .await;
    let to = person_of(&node, "teacher1").await;
    let mut sent = Vec::new();
    for k in 0..130 {
        let from = ["guardian1", "guardian2", "head1"][k % 3];
        let d = node
            .ok(
                from,
                SEND,
                json!({"i": {"to": [to], "subject": format!("n° {k}"), "body": "Bonjour"}}),
            )
            .await;
        sent.push(str_at(&d, "/sendMessage/id"));
    }
    sent.reverse(); // newest first
    let d = node.ok("teacher1", "{ inbox { id } }", json!({})).await;
    assert_eq!(
        ids(&d, "inbox"),
        sent[..100],
        "the default page: the 100 newest"
    );
    let page = "query($after: ID) { inbox(first: 50, after: $after) { id } }";
    let mut all = Vec::new();
    let mut after = Value::Null;
    loop {
        let d = node.ok("teacher1", page, json!({"after": after})).await;
        let got = ids(&d, "inbox");
        if got.is_empty() {
            break;
        }
        assert!(got.len() <= 50);
        after = json!(got.last().unwrap());
        all.extend(got);
    }
    assert_eq!(all, sent, "the pages, in order, are the whole mailbox once");
    for (vars, field) in [
        (json!({"first": 501}), "first"),
        (json!({"first": 0}), "first"),
        (json!({"after": uuid::Uuid::now_v7().to_string()}), "after"),
    ] {
        let r = node
            .run(
                "teacher1",
                "query($first: Int, $after: ID) { inbox(first: $first, after: $after) { id } }",
                vars,
            )
            .await;
        assert_eq!(codes(&r), ["INVALID_INPUT"]);
        assert_eq!(json_of(&r)["errors"][0]["extensions"]["field"], field);
    }
    node.app.shutdown().await;
}

#[tokio::test]
async fn the_audit_trail_and_the_access_log_are_paged() {
    let w = World::postgres().await;
    let n = &w.node;
    let p = person_of(n, "student1").await;
    for _ in 0..7 {
        n.ok(
            "guardian1",
            "{ myChildren { grades { score } } }",
            json!({}),
        )
        .await;
    }
    let trail = "query($p: ID!, $first: Int, $after: String) { auditTrail(subjectId: $p, first: $first, after: $after) { position eventType } }";
    let whole = n.ok("auditor", trail, json!({"p": p})).await["auditTrail"].clone();
    let whole = whole.as_array().unwrap().clone();
    assert!(whole.len() >= 3);
    let mut paged = Vec::new();
    let mut after = Value::Null;
    loop {
        let d = n
            .ok(
                "auditor",
                trail,
                json!({"p": p, "first": 2, "after": after}),
            )
            .await;
        let got = d["auditTrail"].as_array().unwrap().clone();
        if got.is_empty() {
            break;
        }
        after = got.last().unwrap()["position"].clone();
        paged.extend(got);
    }
    assert_eq!(paged, whole);
    let r = n
        .run("auditor", trail, json!({"p": p, "after": "soon"}))
        .await;
    assert_eq!(codes(&r), ["INVALID_INPUT"]);

    let log = |first: i32, offset: i32| {
        n.ok(
            "auditor",
            ACCESS_LOG,
            json!({"p": p, "first": first, "offset": offset}),
        )
    };
    let all = log(500, 0).await["accessLog"].as_array().unwrap().clone();
    assert!(all.len() >= 7);
    let mut paged = Vec::new();
    for offset in (0..all.len() as i32).step_by(3) {
        paged.extend(
            log(3, offset).await["accessLog"]
                .as_array()
                .unwrap()
                .clone(),
        );
    }
    // Later pages include the auditor's own earlier reads (appended at the
    // end, after the `all` snapshot): compare the common prefix.
    assert_eq!(paged[..all.len()], all[..]);
}

// ---- 4. ADMIN does not read grades through the audit trail ------------------------------------

#[tokio::test]
async fn admin_sees_grade_entries_without_their_values_and_the_auditor_sees_them_whole() {
    let w = World::postgres().await;
    let n = &w.node;
    let g = w.corrected_grade(7.5, 17.25, "7,5 au lieu de 17,25").await;
    let p = person_of(n, "student1").await;
    let q = "query($p: ID!) { auditTrail(subjectId: $p) { eventType reason data } }";
    let admin = n.ok("admin", q, json!({"p": p})).await;
    let text = admin.to_string();
    for secret in ["7.5", "17.25", "7,5", "GRADED", "score"] {
        assert!(
            !text.contains(secret),
            "ADMIN's audit trail shows {secret}: {text}"
        );
    }
    let grades: Vec<&Value> = admin["auditTrail"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["eventType"].as_str().unwrap().starts_with("Grade"))
        .collect();
    assert_eq!(grades.len(), 2);
    for e in &grades {
        assert_eq!(e["data"]["redacted"], true);
        assert_eq!(e["data"]["grade_id"], json!(g));
        assert_eq!(e["data"]["student_id"], json!(w.id("s1")));
    }
    assert_eq!(grades[1]["reason"], registre_app::policy::GRADE_REDACTED);
    // ADMIN still sees the rest of the trail whole.
    assert!(text.contains("StudentEnrolled"));

    let auditor = n.ok("auditor", q, json!({"p": p})).await;
    let corrected = auditor["auditTrail"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["eventType"] == "GradeCorrected")
        .unwrap()
        .clone();
    assert_eq!(corrected["data"]["previous_score"], 7.5);
    assert_eq!(corrected["data"]["score"], 17.25);
    assert_eq!(corrected["reason"], "7,5 au lieu de 17,25");
}

// ---- 5-7. Bounds on input, nothing written --------------------------------------------------

async fn refused(n: &Node, who: &str, doc: &str, vars: Value, field: &str) {
    let head = n.head().await;
    let r = n.run(who, doc, vars.clone()).await;
    assert_eq!(codes(&r), ["INVALID_INPUT"], "{vars}: {:?}", r.errors);
    assert_eq!(
        json_of(&r)["errors"][0]["extensions"]["field"],
        field,
        "{vars}: {:?}",
        r.errors
    );
    assert_eq!(n.head().await, head, "{vars}: a refusal writes nothing");
}

#[tokio::test]
async fn absences_out_of_bounds_are_refused() {
    let w = World::postgres().await;
    let n = &w.node;
    let s1 = w.id("s1");
    for (kind, start, end, field) in [
        (
            "ABSENCE",
            "0001-01-01T08:00:00Z",
            "9999-12-31T17:00:00Z",
            "end",
        ),
        (
            "ABSENCE",
            "0001-01-01T08:00:00Z",
            "0001-01-01T09:00:00Z",
            "start",
        ),
        (
            "ABSENCE",
            "9999-01-01T08:00:00Z",
            "9999-01-01T09:00:00Z",
            "end",
        ),
        (
            "LATENESS",
            "2026-11-24T08:00:00Z",
            "2026-11-26T08:00:00Z",
            "end",
        ),
    ] {
        let minutes = (kind == "LATENESS").then_some(10);
        refused(
            n,
            "teacher1",
            REPORT,
            json!({"i": {"studentId": s1, "kind": kind, "start": start, "end": end, "minutesLate": minutes}}),
            field,
        )
        .await;
    }
    refused(
        n,
        "guardian1",
        "mutation($i: DeclareAbsenceInput!) { declareAbsence(input: $i) { id } }",
        json!({"i": {"studentId": s1, "start": (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339(),
                     "end": "9999-12-31T17:00:00Z", "reason": "Longue maladie"}}),
        "end",
    )
    .await;
    // absenceStats over the class stays answerable.
    n.ok(
        "staff1",
        "query($c: ID!) { absenceStats(classId: $c, from: \"2026-09-01\", to: \"2027-07-04\") { halfDaysMissed } }",
        json!({"c": w.id("C1")}),
    )
    .await;
}

#[tokio::test]
async fn idempotency_keys_are_checked() {
    let w = World::postgres().await;
    let n = &w.node;
    let to = person_of(n, "teacher1").await;
    let send = |key: &str| json!({"i": {"to": [to], "subject": "RDV", "body": "Bonjour", "idempotencyKey": key}});
    for key in [
        String::new(),
        "k".repeat(201),
        "k".repeat(800_000),
        "clé".to_owned(),
        "two words".to_owned(),
        "tab\tkey".to_owned(),
    ] {
        refused(n, "guardian1", SEND, send(&key), "idempotencyKey").await;
    }
    refused(
        n,
        "teacher1",
        REPORT,
        json!({"i": {"studentId": w.id("s1"), "kind": "ABSENCE", "start": "2026-11-24T08:00:00Z",
                     "end": "2026-11-24T09:00:00Z", "idempotencyKey": ""}}),
        "idempotencyKey",
    )
    .await;
    // 200 visible ASCII characters are a key; the same key answers the same message.
    let key: String = "Ab0-_:.~!".chars().cycle().take(200).collect();
    let first = n.ok("guardian1", SEND, send(&key)).await;
    let head = n.head().await;
    let again = n.ok("guardian1", SEND, send(&key)).await;
    assert_eq!(first, again);
    assert_eq!(n.head().await, head);
}

#[tokio::test]
async fn direction_overrides_are_refused_in_subjects_names_bodies_and_reasons() {
    let w = World::postgres().await;
    let n = &w.node;
    let to = person_of(n, "teacher1").await;
    let rlo = "Bulletin_\u{202E}fdp.exe";
    refused(
        n,
        "guardian1",
        SEND,
        json!({"i": {"to": [to], "subject": rlo, "body": "Bonjour"}}),
        "subject",
    )
    .await;
    refused(
        n,
        "guardian1",
        SEND,
        json!({"i": {"to": [to], "subject": "Bonjour", "body": "a\u{2066}b\u{2069}"}}),
        "body",
    )
    .await;
    refused(
        n,
        "admin",
        "mutation($i: RegisterPersonInput!) { registerPerson(input: $i) { id } }",
        json!({"i": {"externalId": "x-1", "displayName": "Admin\u{200F}istrateur", "roles": ["GUARDIAN"]}}),
        "displayName",
    )
    .await;
    let absence = str_at(
        &n.ok(
            "teacher1",
            REPORT,
            json!({"i": {"studentId": w.id("s1"), "kind": "ABSENCE", "start": "2026-11-24T08:00:00Z", "end": "2026-11-24T09:00:00Z"}}),
        )
        .await,
        "/reportAbsence/id",
    );
    refused(
        n,
        "guardian1",
        "mutation($i: JustifyAbsenceInput!) { justifyAbsence(input: $i) { id } }",
        json!({"i": {"absenceId": absence, "reason": "Malade \u{202D}"}}),
        "reason",
    )
    .await;
}
