//! `usageIndicators`: the usage projection persisted in the database, on
//! PostgreSQL and on the embedded store. Reads recorded as several roles give
//! the report computed by hand below; the report is the same after the access
//! log is purged (`registre retention apply`'s function, on its own engine),
//! after a rebuild of the read model, and on a fresh node. The purge keeps
//! what the projection has not folded yet. And who may read the report.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::{DateTime, Duration, NaiveDate, TimeZone as _, Utc};
use common::{codes, Node, TempDir, TestDb, World};
use registre_app::erasure::{apply_retention, RetentionPolicy};
use registre_projections::ProjectionEngine;
use registre_store::{EventStore, NewAccess};
use serde_json::{json, Value};
use std::sync::Arc;

const REPORT: &str = "query($e: ID!, $f: Date!, $t: Date!) { usageIndicators(establishmentId: $e, from: $f, to: $t) { from to visits visitors shareOutsideSchoolHours cells { service profile hour visits visitors } } }";
const GRADES: &str = "query($s: ID!) { student(id: $s) { grades { id } } }";

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A local time in Paris (E1's zone), as UTC.
fn paris(d: u32, h: u32, min: u32) -> DateTime<Utc> {
    chrono_tz::Europe::Paris
        .with_ymd_and_hms(2026, 3, d, h, min, 0)
        .single()
        .unwrap()
        .with_timezone(&Utc)
}

fn read(
    w: &World,
    at: DateTime<Utc>,
    who: &str,
    profile: &str,
    subject: Option<&str>,
    service: &str,
) -> NewAccess {
    let viewer = match who {
        "admin" => registre_domain::PersonId::for_external_id("admin").0,
        _ => w.id(who).parse().unwrap(),
    };
    NewAccess {
        at,
        viewer_id: viewer,
        viewer_profile: profile.into(),
        subject_id: subject.map(|s| w.id(s).parse().unwrap()),
        operation: "test".into(),
        service: service.into(),
    }
}

/// The week of Monday 2 March 2026, as the API would have logged it.
fn week(w: &World) -> Vec<NewAccess> {
    vec![
        // A parent, Monday evening: 19:00 and 19:20 are one visit, 20:00 (40
        // minutes after the last read) another. Both outside school hours.
        read(
            w,
            paris(2, 19, 0),
            "guardian1",
            "PARENT",
            Some("student1"),
            "Notes",
        ),
        read(
            w,
            paris(2, 19, 20),
            "guardian1",
            "PARENT",
            Some("student1"),
            "Notes",
        ),
        read(
            w,
            paris(2, 20, 0),
            "guardian1",
            "PARENT",
            Some("student1"),
            "Notes",
        ),
        // A student, Tuesday morning: two services, two visits.
        read(
            w,
            paris(3, 10, 0),
            "student1",
            "ELEVE",
            Some("student1"),
            "Cahier_Textes",
        ),
        read(
            w,
            paris(3, 10, 5),
            "student1",
            "ELEVE",
            Some("student1"),
            "Notes",
        ),
        // A teacher's mail on Wednesday (in school hours) and Saturday (outside).
        read(
            w,
            paris(4, 11, 0),
            "teacher1",
            "ENSEIGNANT",
            Some("teacher1"),
            "Courrier_Electronique",
        ),
        read(
            w,
            paris(7, 11, 0),
            "teacher1",
            "ENSEIGNANT",
            Some("teacher1"),
            "Courrier_Electronique",
        ),
        // The head before 08:00.
        read(
            w,
            paris(5, 7, 30),
            "head1",
            "AUTRE",
            Some("student1"),
            "Services_Vie_Scolaire",
        ),
        // An auditor (no establishment) counts for the student's.
        read(
            w,
            paris(6, 9, 0),
            "auditor",
            "AUTRE",
            Some("student1"),
            "Services_Vie_Scolaire",
        ),
        // Another establishment's teacher: not in E1's report (10:00 in Paris
        // is 13:00 in E2's zone, Indian/Reunion).
        read(
            w,
            paris(2, 10, 0),
            "teacher3",
            "ENSEIGNANT",
            Some("teacher3"),
            "Notes",
        ),
        // The admin of no establishment reading about no one: counted nowhere.
        read(
            w,
            paris(2, 10, 0),
            "admin",
            "AUTRE",
            None,
            "Services_Vie_Scolaire",
        ),
    ]
}

fn cell(service: &str, profile: &str, hour: u32, visits: u64, visitors: u64) -> Value {
    json!({"service": service, "profile": profile, "hour": hour, "visits": visits, "visitors": visitors})
}

async fn report(node: &Node, who: &str, est: &str, from: NaiveDate, to: NaiveDate) -> Value {
    node.ok(
        who,
        REPORT,
        json!({"e": est, "f": from.to_string(), "t": to.to_string()}),
    )
    .await["usageIndicators"]
        .clone()
}

async fn scenario(w: World, fresh: impl AsyncFnOnce(&World) -> Node) {
    // The admin's person (registered on first use by the fixture) and the
    // access log's other readers are known to the read model.
    w.node.app.store().record_access(week(&w)).await.unwrap();
    // Live reads through the API, today: a guardian's grades (Notes).
    w.node
        .ok("guardian1", GRADES, json!({"s": w.id("s1")}))
        .await;
    let e1 = w.id("E1");
    let (from, to) = (day(2026, 3, 2), day(2026, 3, 8));
    let march = report(&w.node, "head1", &e1, from, to).await;
    assert_eq!(
        march,
        json!({
            "from": "2026-03-02", "to": "2026-03-08",
            // 2 (parent) + 2 (student) + 2 (teacher) + 1 (head) + 1 (auditor)
            "visits": 8,
            "visitors": 5,
            // The parent's two, Saturday's mail, the head's 07:30.
            "shareOutsideSchoolHours": 0.5,
            "cells": [
                cell("CahierDeTextes", "STUDENT", 10, 1, 1),
                cell("Messagerie", "TEACHER", 11, 2, 1),
                cell("Notes", "GUARDIAN", 19, 1, 1),
                cell("Notes", "GUARDIAN", 20, 1, 1),
                cell("Notes", "STUDENT", 10, 1, 1),
                cell("VieScolaire", "OTHER", 7, 1, 1),
                cell("VieScolaire", "OTHER", 9, 1, 1),
            ],
        })
    );
    let e2 = report(&w.node, "admin", &w.id("E2"), from, to).await;
    assert_eq!(e2["visits"], 1);
    assert_eq!(e2["cells"], json!([cell("Notes", "TEACHER", 13, 1, 1)]));
    // Today's live read (the range spans the zone's day boundaries).
    let today = Utc::now().date_naive();
    let (t0, t1) = (today - Duration::days(1), today + Duration::days(1));
    let live = report(&w.node, "auditor", &e1, t0, t1).await;
    let cells = live["cells"].as_array().unwrap();
    assert!(
        cells
            .iter()
            .any(|c| c["service"] == "Notes" && c["profile"] == "GUARDIAN"),
        "{live}"
    );

    // `registre retention apply` on its own engine, a day from now with a
    // one-day retention: every access record goes.
    let store = w.node.app.store().clone();
    let engine = ProjectionEngine::open(store.clone(), w.node.app.config().engine.clone())
        .await
        .unwrap();
    let policy = RetentionPolicy {
        account_days: 90,
        access_log: std::time::Duration::from_secs(86_400),
    };
    let purge = apply_retention(&store, &engine, &policy, Utc::now() + Duration::days(2))
        .await
        .unwrap();
    assert!(purge.access_records_purged >= 12, "{purge:?}");
    assert!(store.read_access(0, 100).await.unwrap().is_empty());
    assert_eq!(report(&w.node, "head1", &e1, from, to).await, march);
    assert_eq!(report(&w.node, "auditor", &e1, t0, t1).await, live);

    // A rebuild of the read model leaves the indicators alone.
    w.node.app.engine().rebuild(|_| {}).await.unwrap();
    assert_eq!(report(&w.node, "head1", &e1, from, to).await, march);

    // A fresh node reads the same answer.
    let other = fresh(&w).await;
    assert_eq!(report(&other, "admin", &e1, from, to).await, march);
    assert_eq!(report(&other, "auditor", &e1, t0, t1).await, live);
    other.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_survives_purge_rebuild_and_a_fresh_node_on_postgres() {
    let w = World::postgres().await;
    scenario(w, async |w: &World| {
        // A second node beside the first, with the same pseudonym key.
        w.second_node_with(w.node.app.config().clone()).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_survives_purge_rebuild_and_a_fresh_node_on_sqlite() {
    let w = World::sqlite().await;
    scenario(w, async |w: &World| {
        // One process owns the file: the first node stops, a new one starts.
        w.node.app.shutdown().await;
        let dir = &w._dir.as_ref().unwrap().0;
        let store = registre_store::open(None, dir).await.unwrap();
        Node::start_with(store, w.node.app.config().clone()).await
    })
    .await;
}

/// The purge deletes only entries at or below the usage checkpoint.
async fn purge_keeps_what_is_not_folded(store: Arc<dyn EventStore>) {
    let old = Utc::now() - Duration::days(400);
    let entry = |service: &str| NewAccess {
        at: old,
        viewer_id: uuid::Uuid::now_v7(),
        viewer_profile: "PARENT".into(),
        subject_id: None,
        operation: "test".into(),
        service: service.into(),
    };
    store
        .record_access(vec![entry("Notes"), entry("Absences")])
        .await
        .unwrap();
    let all = store.read_access(0, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(store.purge_access_before(Utc::now()).await.unwrap(), 0);
    assert_eq!(store.read_access(0, 10).await.unwrap(), all);

    let usage = store.usage().expect("the backend has usage tables");
    let status = usage.status().await.unwrap();
    assert_eq!((status.checkpoint, status.access_head), (0, all[1].id));
    // The first entry folded (nothing counted: no hits placed).
    assert!(usage
        .apply(
            0,
            all[0].id,
            vec![],
            registre_projections::usage::sessionize
        )
        .await
        .unwrap());
    // A second fold from the same checkpoint (another node) writes nothing.
    assert!(!usage
        .apply(
            0,
            all[1].id,
            vec![],
            registre_projections::usage::sessionize
        )
        .await
        .unwrap());
    assert_eq!(usage.status().await.unwrap().checkpoint, all[0].id);
    assert_eq!(store.purge_access_before(Utc::now()).await.unwrap(), 1);
    assert_eq!(store.read_access(0, 10).await.unwrap(), all[1..]);
}

#[tokio::test]
async fn the_purge_keeps_unfolded_entries_on_postgres() {
    let db = TestDb::create().await;
    let store = registre_store::open(Some(&db.url), std::path::Path::new("."))
        .await
        .unwrap();
    purge_keeps_what_is_not_folded(store).await;
}

#[tokio::test]
async fn the_purge_keeps_unfolded_entries_on_sqlite() {
    let dir = TempDir::new();
    let store = registre_store::open(None, &dir.0).await.unwrap();
    purge_keeps_what_is_not_folded(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_may_read_the_report() {
    let w = World::postgres().await;
    let vars = |est: &str, from: &str, to: &str| json!({"e": w.id(est), "f": from, "t": to});
    let march = vars("E1", "2026-03-01", "2026-03-31");
    for who in ["head1", "admin", "auditor"] {
        let r = w.node.run(who, REPORT, march.clone()).await;
        assert!(r.errors.is_empty(), "{who}: {:?}", r.errors);
    }
    for who in [
        "staff1",
        "teacher1",
        "guardian1",
        "student1",
        "staff2",
        "teacher3",
    ] {
        let r = w.node.run(who, REPORT, march.clone()).await;
        assert_eq!(codes(&r), ["FORBIDDEN"], "{who}");
    }
    // The head of E1 is no head of E2.
    let r = w
        .node
        .run("head1", REPORT, vars("E2", "2026-03-01", "2026-03-31"))
        .await;
    assert_eq!(codes(&r), ["FORBIDDEN"]);
    // Ranges: backwards, and longer than 366 days, are refused; 366 days pass.
    for (from, to, code) in [
        ("2026-03-31", "2026-03-01", Some("INVALID_INPUT")),
        ("2025-01-01", "2026-01-02", Some("INVALID_INPUT")),
        ("2024-01-01", "2024-12-31", None),
        ("2026-03-01", "2026-03-01", None),
    ] {
        let r = w.node.run("admin", REPORT, vars("E1", from, to)).await;
        match code {
            Some(code) => assert_eq!(codes(&r), [code], "{from}..{to}"),
            None => assert!(r.errors.is_empty(), "{from}..{to}: {:?}", r.errors),
        }
    }
    // An establishment that does not exist.
    let r = w
        .node
        .run(
            "admin",
            REPORT,
            json!({"e": uuid::Uuid::now_v7().to_string(), "f": "2026-03-01", "t": "2026-03-02"}),
        )
        .await;
    assert_eq!(codes(&r), ["NOT_FOUND"]);
}
