//! The projection engine on the real stores (SQLite and PostgreSQL): the
//! incremental-equals-rebuild property through `save_snapshot`/`load_snapshot`
//! restarts, the live follower and read-your-writes, rebuild and version
//! change, and the auditor's replay up to an instant.
#![allow(clippy::unwrap_used)]

mod common;

use common::{append_lines, fresh_ids, TestStore};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use registre_projections::{
    fold_until, replay_to_dir, EngineConfig, ProjectionEngine, PseudonymKey, ReadModel,
};
use registre_replay_tests::random::{events_from_ops, ops};
use registre_replay_tests::school::*;
use registre_replay_tests::{golden_dir, read_golden, to_appends_after};
use registre_store::{EventStore, Snapshot};
use std::sync::Arc;
use std::time::Duration;

/// Bounds every wait so that a broken follower fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(20);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn config(batch_size: usize) -> EngineConfig {
    EngineConfig {
        batch_size,
        // Small pages too, so that rebuilds and catch-ups read several.
        rebuild_page: batch_size,
        snapshot_every: 7,
        pseudonym_key: PseudonymKey::new(b"backend".to_vec()),
        ..EngineConfig::default()
    }
}

async fn fold_from_zero(store: &dyn EventStore) -> ReadModel {
    let mut model = ReadModel::new();
    let all = store.read_all(0, 1_000_000).await.unwrap();
    model.apply_all(&all).unwrap();
    model
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// One case: appends a random log in random chunks; after each chunk the
/// engine catches up, sometimes after a restart from the store's snapshot with
/// another batch size. The store keeps the logs of earlier cases, so every
/// case also starts from the previous case's snapshot.
async fn incremental_case(
    store: &Arc<dyn EventStore>,
    ops: Vec<registre_replay_tests::random::Op>,
    chunks: Vec<usize>,
    restarts: Vec<bool>,
) -> Result<(), TestCaseError> {
    let mut partitions = common::partitioner_of(store.as_ref()).await;
    let appends = fresh_ids(to_appends_after(&mut partitions, &events_from_ops(&ops)));
    let mut engine = ProjectionEngine::open(Arc::clone(store), config(5))
        .await
        .map_err(fail)?;
    engine.catch_up().await.map_err(fail)?;
    let (mut start, mut k) = (0, 0);
    while start < appends.len() {
        let n = chunks[k % chunks.len()];
        let end = (start + n).min(appends.len());
        store
            .append_batch(appends[start..end].to_vec())
            .await
            .map_err(fail)?;
        if restarts[k % restarts.len()] {
            engine.shutdown().await.map_err(fail)?;
            engine = ProjectionEngine::open(Arc::clone(store), config(1 + n % 6))
                .await
                .map_err(fail)?;
        }
        engine.catch_up().await.map_err(fail)?;
        start = end;
        k += 1;
    }
    let incremental = engine.read(ReadModel::clone);
    let whole = fold_from_zero(store.as_ref()).await;
    prop_assert_eq!(incremental.position(), store.head().await.map_err(fail)?);
    prop_assert_eq!(&incremental, &whole);
    engine.shutdown().await.map_err(fail)?;
    Ok(())
}

fn incremental_equals_rebuild(
    open: fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = TestStore>>>,
) {
    let rt = runtime();
    let test_store = rt.block_on(open());
    let store = Arc::clone(&test_store.store);
    let mut runner = TestRunner::new(Config {
        cases: 16,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        ops(100),
        proptest::collection::vec(1usize..30, 1..6),
        proptest::collection::vec(any::<bool>(), 1..6),
    );
    runner
        .run(&strategy, |(ops, chunks, restarts)| {
            rt.block_on(incremental_case(&store, ops, chunks, restarts))
        })
        .unwrap();
}

#[test]
fn incremental_equals_rebuild_on_sqlite() {
    incremental_equals_rebuild(|| Box::pin(common::sqlite()));
}

#[test]
fn incremental_equals_rebuild_on_postgres() {
    incremental_equals_rebuild(|| Box::pin(common::postgres()));
}

/// The golden school through a real store: the follower catches up by
/// itself, read-your-writes holds, and the hand-computed figures come out.
async fn follower_and_views(test: TestStore) {
    let store = Arc::clone(&test.store);
    let engine = ProjectionEngine::start(Arc::clone(&store), config(10))
        .await
        .unwrap();
    let lines = read_golden(&golden_dir().join("school.jsonl")).unwrap();
    // Two appends: the follower must pick up both through its wake-ups.
    append_lines(store.as_ref(), &lines[..40]).await;
    append_lines(store.as_ref(), &lines[40..]).await;
    let head = store.head().await.unwrap();
    assert_eq!(head, lines.len() as u64);
    engine.wait_for(head, WAIT).await.unwrap();
    engine.read(|m| {
        let stats = m.absence_stats(
            class(SIXIEME_A),
            chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
            chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        );
        assert_eq!(stats.unjustified_half_days, 7);
        assert_eq!(stats.students_over_threshold, vec![student("e.lucas")]);
        let hugo = m.overall_average(student("e.hugo")).unwrap();
        assert!((hugo - 32.0 / 3.0).abs() < 1e-9);
    });
    // A position that does not exist yet is reported as lagging, not waited forever.
    let lagging = engine
        .wait_for(head + 1, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!((lagging.wanted, lagging.reached), (head + 1, head));
    let metrics = engine.metrics();
    assert_eq!((metrics.position, metrics.lag), (head, 0));
    assert_eq!(metrics.events_applied_total, head);
    assert!(metrics.stalled.is_none());

    // Rebuild aside and swap: same model, and the report counts every event.
    let before = engine.read(ReadModel::clone);
    let mut seen = 0;
    let report = engine.rebuild(|p| seen = p.applied).await.unwrap();
    assert_eq!((report.events, report.position, seen), (head, head, head));
    assert_eq!(engine.read(ReadModel::clone), before);
    assert_eq!(engine.metrics().last_rebuild.map(|r| r.events), Some(head));

    // Shutdown snapshots; a restart resumes from the snapshot.
    assert_eq!(engine.shutdown().await.unwrap(), head);
    let keys = registre_projections::snapshots::Keys::new(None);
    let snapshot = store
        .load_snapshot(&keys.manifest())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (snapshot.version, snapshot.position),
        (ReadModel::VERSION, head)
    );
    for row in [
        "readmodel:directory",
        "readmodel:0750001A",
        "readmodel:9740001A",
    ] {
        let row = store.load_snapshot(row).await.unwrap().unwrap();
        assert_eq!((row.version, row.position), (ReadModel::VERSION, head));
    }
    let restarted = ProjectionEngine::open(Arc::clone(&store), config(10))
        .await
        .unwrap();
    assert_eq!(restarted.position(), head, "resumed from the snapshot");
    assert_eq!(restarted.read(ReadModel::clone), before);

    // A snapshot of another version is discarded: the model is folded from
    // the log again, in parallel, at the start.
    store
        .save_snapshot(Snapshot {
            key: keys.manifest(),
            version: ReadModel::VERSION + 1,
            position: head,
            state: b"{\"not\": \"this shape\"}".to_vec(),
        })
        .await
        .unwrap();
    let rebuilt = ProjectionEngine::open(Arc::clone(&store), config(10))
        .await
        .unwrap();
    assert_eq!(rebuilt.position(), head);
    assert_eq!(rebuilt.read(ReadModel::clone), before);
    assert_eq!(rebuilt.catch_up().await.unwrap(), head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_rebuild_and_restart_on_sqlite() {
    follower_and_views(common::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_rebuild_and_restart_on_postgres() {
    follower_and_views(common::postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_until_an_instant_leaves_out_later_events() {
    let test = common::sqlite().await;
    let store = test.store.as_ref();
    let lines = read_golden(&golden_dir().join("school.jsonl")).unwrap();
    // The roster and everything before the grade correction...
    let correction = lines
        .iter()
        .position(|l| l.event_type == "GradeCorrected")
        .unwrap();
    append_lines(store, &lines[..correction]).await;
    let until = store
        .read_all(0, 1_000_000)
        .await
        .unwrap()
        .last()
        .unwrap()
        .recorded_at;
    // ...then the rest, recorded after `until`.
    append_lines(store, &lines[correction..]).await;
    let later = store
        .read_all(correction as u64, 1)
        .await
        .unwrap()
        .remove(0)
        .recorded_at;
    let as_of = fold_until(store, until).await.unwrap();
    if later > until {
        assert_eq!(as_of.position(), correction as u64);
        // Hugo's 5/10 before it was corrected to 6/10.
        let avg = as_of
            .subject_average(student("e.hugo"), "Mathématiques")
            .unwrap();
        assert!((avg - (8.0 + 20.0) / 3.0).abs() < 1e-9, "{avg}");
    }
    let now = fold_until(store, chrono::Utc::now()).await.unwrap();
    assert_eq!(now.position(), lines.len() as u64);

    let dir = tempfile::tempdir().unwrap();
    let mut last = None;
    let manifest = replay_to_dir(store, chrono::Utc::now(), dir.path(), |p| last = Some(p))
        .await
        .unwrap();
    assert_eq!(manifest.events_applied, lines.len() as u64);
    assert_eq!(last.map(|p| p.applied), Some(lines.len() as u64));
    for sub in ["establishments", "classes", "students"] {
        let n = std::fs::read_dir(dir.path().join(sub)).unwrap().count();
        assert!(n > 0, "{sub} is empty");
    }
    assert!(dir.path().join("manifest.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_indicators_fold_the_access_log_into_their_tables_with_pseudonyms() {
    use registre_store::NewAccess;
    let test = common::sqlite().await;
    let store = Arc::clone(&test.store);
    let lines = read_golden(&golden_dir().join("school.jsonl")).unwrap();
    append_lines(store.as_ref(), &lines).await;
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    let leroy = person("p.leroy").0;
    let martin = person("t.martin").0;
    let access = |viewer, profile: &str, service: &str, when| NewAccess {
        at: at(when),
        viewer_id: viewer,
        viewer_profile: profile.into(),
        subject_id: Some(student("e.lucas").0),
        operation: "student".into(),
        service: service.into(),
    };
    store
        .record_access(vec![
            // Tuesday 2026-03-03, Paris (UTC+1): 20:00 and 20:10 local, two
            // services: two visits, in the evening.
            access(leroy, "PARENT", "Notes", "2026-03-03T19:00:00Z"),
            access(leroy, "PARENT", "Absences", "2026-03-03T19:10:00Z"),
            // 10:00 local on a school day: inside school hours.
            access(martin, "ENSEIGNANT", "Notes", "2026-03-04T09:00:00Z"),
            // Saturday: outside.
            access(leroy, "PARENT", "Notes", "2026-03-07T09:00:00Z"),
        ])
        .await
        .unwrap();
    let engine = ProjectionEngine::open(Arc::clone(&store), config(100))
        .await
        .unwrap();
    let folded = registre_projections::usage::fold_usage(store.as_ref(), &engine, WAIT)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((folded.entries, folded.skipped), (4, 0));
    // The read model holds nothing of it: a rebuild cannot lose it.
    assert!(!String::from_utf8(engine.read(|m| m.to_json()).unwrap())
        .unwrap()
        .contains("usage"));
    let establishment = engine
        .read(|m| m.establishment_of_student(student("e.lucas")))
        .unwrap();
    let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
    let rows = store
        .usage()
        .unwrap()
        .rows(establishment.0, day(2), day(8))
        .await
        .unwrap();
    let report = registre_projections::UsageReport::from_rows(day(2), day(8), rows);
    assert_eq!((report.visits, report.visitors), (4, 2));
    assert_eq!(report.share_outside_school_hours, 0.75);
    let cells: Vec<(&str, &str, u8, u64)> = report
        .cells
        .iter()
        .map(|c| (c.service.as_str(), c.profile.as_str(), c.hour, c.visits))
        .collect();
    assert_eq!(
        cells,
        [
            ("Absences", "GUARDIAN", 20, 1),
            ("Notes", "GUARDIAN", 10, 1),
            ("Notes", "GUARDIAN", 20, 1),
            ("Notes", "TEACHER", 10, 1),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_does_not_decode_stalls_the_engine_where_it_is() {
    let test = common::sqlite().await;
    let store = Arc::clone(&test.store);
    let mut lines = read_golden(&golden_dir().join("school.jsonl")).unwrap();
    lines.truncate(10);
    // Written by a newer build (a rolling upgrade): this build must not skip it.
    lines[9].schema_version += 1;
    append_lines(store.as_ref(), &lines).await;
    let engine = ProjectionEngine::open(Arc::clone(&store), config(4))
        .await
        .unwrap();
    let err = engine.catch_up().await.unwrap_err();
    assert!(
        matches!(err, registre_projections::ProjectionError::Apply(_)),
        "{err}"
    );
    assert_eq!(engine.position(), 9);
    let metrics = engine.metrics();
    assert_eq!((metrics.position, metrics.lag), (9, 1));
    assert!(metrics.stalled.is_some());
    let lagging = engine
        .wait_for(10, Duration::from_millis(20))
        .await
        .unwrap_err();
    assert_eq!(lagging.reached, 9);
}

/// A snapshot the store refuses (PostgreSQL caps a value at 1 GB, which a
/// read model of a few million events reaches) is tried again only after
/// another `snapshot_every` events, not on every page: each attempt
/// serialises the whole model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_snapshot_is_not_retried_on_every_page() {
    let test = common::postgres().await;
    let store = Arc::clone(&test.store);
    let db_url = test.url().to_owned();
    let (client, connection) = tokio_postgres::connect(&db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // The sequence counts attempts: nextval survives the refusal's rollback.
    client
        .batch_execute(
            "CREATE SEQUENCE snapshot_attempts; \
             CREATE FUNCTION refuse_snapshot() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN PERFORM nextval('snapshot_attempts'); \
             RAISE EXCEPTION 'snapshot too large'; END; $$; \
             CREATE TRIGGER refuse_snapshot BEFORE INSERT OR UPDATE ON snapshots \
             FOR EACH ROW EXECUTE FUNCTION refuse_snapshot();",
        )
        .await
        .unwrap();
    let lines = read_golden(&golden_dir().join("school.jsonl")).unwrap();
    let engine = ProjectionEngine::open(Arc::clone(&store), config(2))
        .await
        .unwrap();
    append_lines(store.as_ref(), &lines).await;
    let head = engine.catch_up().await.unwrap();
    assert_eq!(head, lines.len() as u64);
    let attempts: i64 = client
        .query_one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM snapshot_attempts",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // Pages of 2 events, a snapshot due every 7: at most one attempt per 7
    // events (one per page would be head / 2).
    let most = head / 7 + 1;
    assert!(
        (1..=most as i64).contains(&attempts),
        "{attempts} snapshot attempts for {head} events (at most {most})"
    );
    assert_eq!(engine.metrics().last_snapshot_position, 0, "none was saved");
}
