//! One conformance suite for both backends: every property below runs against
//! the embedded SQLite store (in a temporary directory) and against PostgreSQL
//! (a fresh database `registre_test_<uuid>` created through
//! REGISTRE_TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres,
//! and dropped afterwards).

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use registre_domain::personal::sealed_fields;
use registre_store::chain::{self, BreakKind};
use registre_store::communication::{CheckpointMove, OutboxItem};
use registre_store::testing::{self, TestDb};
use registre_store::{
    AccessRecord, AppendOutcome, AppendRequest, EventMetadata, EventStore, ExpectedVersion,
    Idempotency, LogReader, NewAccess, NewEvent, Partition, PostgresStore, RawEvent, RecordedEvent,
    Snapshot, SqliteStore, StoreError, VaultStore, ERASED,
};
use serde_json::json;
use tokio::sync::Barrier;
use uuid::Uuid;

/// Bounds every wait so that a broken property fails instead of hanging.
const HANG_GUARD: Duration = Duration::from_secs(60);

enum Raw {
    Sqlite {
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    Postgres(TestDb),
}

/// One backend under test: its store, and the database behind it for raw SQL.
struct Subject {
    store: Arc<dyn EventStore>,
    raw: Raw,
}

async fn pg_client(url: &str) -> tokio_postgres::Client {
    testing::connect(url)
        .await
        .expect("PostgreSQL must be reachable (REGISTRE_TEST_DATABASE_URL)")
}

impl Subject {
    async fn sqlite() -> Subject {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(dir.path()).await.expect("open sqlite");
        Subject {
            raw: Raw::Sqlite {
                path: store.path().to_owned(),
                _dir: dir,
            },
            store,
        }
    }

    async fn postgres() -> Subject {
        let db = TestDb::create().await;
        let store = PostgresStore::connect(&db.url)
            .await
            .expect("open postgres");
        Subject {
            store,
            raw: Raw::Postgres(db),
        }
    }

    fn store(&self) -> Arc<dyn EventStore> {
        self.store.clone()
    }

    /// Runs SQL on a connection of its own, as any client of the database could.
    async fn exec(&self, sql: &str) -> Result<(), String> {
        match &self.raw {
            Raw::Sqlite { path, .. } => {
                let path = path.clone();
                let sql = sql.to_owned();
                tokio::task::spawn_blocking(move || {
                    let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
                    conn.busy_timeout(Duration::from_secs(10))
                        .map_err(|e| e.to_string())?;
                    conn.execute_batch(&sql).map_err(|e| e.to_string())
                })
                .await
                .expect("sqlite task")
            }
            Raw::Postgres(db) => pg_client(&db.url)
                .await
                .batch_execute(sql)
                .await
                .map_err(|e| match e.as_db_error() {
                    Some(db) => db.message().to_owned(),
                    None => e.to_string(),
                }),
        }
    }

    /// Runs SQL with the append-only triggers out of the way, as a database
    /// superuser who set out to rewrite history could.
    async fn tamper(&self, sql: &str) {
        let bypass = match &self.raw {
            Raw::Sqlite { .. } => {
                "DROP TRIGGER IF EXISTS events_no_update; DROP TRIGGER IF EXISTS events_no_delete;"
            }
            Raw::Postgres(_) => "SET session_replication_role = replica;",
        };
        self.exec(&format!("{bypass} {sql}"))
            .await
            .expect("tampering as superuser works");
    }

    fn is_postgres(&self) -> bool {
        matches!(self.raw, Raw::Postgres(_))
    }
}

fn event(kind: &str, n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: kind.to_owned(),
        schema_version: 1,
        // Keys out of order and a float: the stored text is canonical anyway.
        data: json!({"n": n, "z": {"b": [1.5, "é\"x"], "a": null}, "a": true}),
        metadata: EventMetadata {
            actor: Some(registre_store::Actor {
                person_id: Uuid::now_v7(),
                role: "TEACHER".into(),
            }),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            idempotency_key: None,
            occurred_at: Utc::now(),
            reason: Some("because".into()),
        },
    }
}

fn request(stream: &str, expected: ExpectedVersion, n: usize) -> AppendRequest {
    AppendRequest {
        partition: Partition::directory(),
        stream_id: stream.to_owned(),
        expected,
        events: (0..n).map(|i| event("Something", i as i64)).collect(),
        idempotency: None,
    }
}

fn keyed(mut r: AppendRequest, key: &str, fingerprint: &str) -> AppendRequest {
    r.idempotency = Some(Idempotency {
        key: key.into(),
        fingerprint: fingerprint.into(),
    });
    r
}

fn micros(t: DateTime<Utc>) -> DateTime<Utc> {
    chain::truncate_micros(t)
}

// ---------------------------------------------------------------- properties

async fn append_and_read(db: &Subject) {
    let store = db.store();
    assert_eq!(store.head().await.unwrap(), 0);
    let input = request("s1", ExpectedVersion::NoStream, 3);
    let a = store.append(input.clone()).await.unwrap();
    assert!(!a.deduplicated);
    assert_eq!(
        a.events
            .iter()
            .map(|e| (e.position, e.stream_version))
            .collect::<Vec<_>>(),
        vec![(1, 1), (2, 2), (3, 3)]
    );
    for (recorded, new) in a.events.iter().zip(&input.events) {
        assert_eq!(recorded.event_id, new.event_id);
        assert_eq!(recorded.data, new.data);
        assert_eq!(
            recorded.metadata.occurred_at,
            micros(new.metadata.occurred_at)
        );
    }
    let b = store
        .append(request("s2", ExpectedVersion::Any, 2))
        .await
        .unwrap();
    assert_eq!(b.last_position(), 5);
    assert_eq!(b.events[0].stream_version, 1);

    assert_eq!(store.read_stream("s1", 0).await.unwrap(), a.events);
    assert_eq!(store.read_stream("s1", 2).await.unwrap(), a.events[2..]);
    assert!(store.read_stream("nope", 0).await.unwrap().is_empty());
    let all = store.read_all(0, 100).await.unwrap();
    let expected: Vec<_> = a.events.iter().chain(&b.events).cloned().collect();
    assert_eq!(all, expected);
    let page: Vec<u64> = store
        .read_all(2, 2)
        .await
        .unwrap()
        .iter()
        .map(|e| e.position)
        .collect();
    assert_eq!(page, vec![3, 4]);
    let picked = store.read_positions(&[5, 1, 42]).await.unwrap();
    assert_eq!(picked, vec![expected[0].clone(), expected[4].clone()]);
    assert_eq!(store.head().await.unwrap(), 5);
    assert_eq!(*store.wakeups().borrow(), 5);

    // recorded_at never goes backwards along the log.
    assert!(all.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at));

    let empty = store
        .append(request("s3", ExpectedVersion::NoStream, 0))
        .await
        .unwrap();
    assert!(empty.events.is_empty());
    assert_eq!(store.head().await.unwrap(), 5);
}

async fn conflict_on_wrong_expected_version(db: &Subject) {
    let store = db.store();
    store
        .append(request("s", ExpectedVersion::NoStream, 1))
        .await
        .unwrap();
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(2),
    ] {
        match store.append(request("s", expected, 1)).await {
            Err(StoreError::Conflict {
                stream_id, actual, ..
            }) => {
                assert_eq!(stream_id, "s");
                assert_eq!(actual, 1);
            }
            other => panic!("expected a conflict for {expected:?}, got {other:?}"),
        }
    }
    assert_eq!(store.head().await.unwrap(), 1);
    let ok = store
        .append(request("s", ExpectedVersion::Exact(1), 1))
        .await
        .unwrap();
    assert_eq!(ok.events[0].stream_version, 2);
    let any = store
        .append(request("s", ExpectedVersion::Any, 1))
        .await
        .unwrap();
    assert_eq!(any.events[0].stream_version, 3);
}

async fn concurrent_appends_one_wins(db: &Subject) {
    let store = db.store();
    store
        .append(request("race", ExpectedVersion::NoStream, 1))
        .await
        .unwrap();
    for round in 1..=10u64 {
        let barrier = Arc::new(Barrier::new(2));
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .append(request("race", ExpectedVersion::Exact(round), 1))
                        .await
                })
            })
            .collect();
        let mut wins = 0;
        let mut conflicts = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => wins += 1,
                Err(StoreError::Conflict { actual, .. }) => {
                    assert_eq!(actual, round + 1);
                    conflicts += 1;
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert_eq!((wins, conflicts), (1, 1), "round {round}");
    }
    assert_eq!(store.read_stream("race", 0).await.unwrap().len(), 11);
}

async fn idempotency(db: &Subject) {
    let store = db.store();
    let first = store
        .append(keyed(
            request("s", ExpectedVersion::NoStream, 2),
            "k1",
            "fp-a",
        ))
        .await
        .unwrap();
    assert!(!first.deduplicated);
    // A retry carries the same key, its own fresh event ids, and an expected
    // version that is now stale: it still answers the original outcome.
    let again = store
        .append(keyed(
            request("s", ExpectedVersion::NoStream, 2),
            "k1",
            "fp-a",
        ))
        .await
        .unwrap();
    assert!(again.deduplicated);
    assert_eq!(again.events, first.events);
    assert_eq!(store.head().await.unwrap(), 2);

    let found = store.find_idempotent("k1").await.unwrap().unwrap();
    assert_eq!(found.events, first.events);
    assert!(store.find_idempotent("unknown").await.unwrap().is_none());

    match store
        .append(keyed(
            request("s", ExpectedVersion::Exact(2), 1),
            "k1",
            "fp-b",
        ))
        .await
    {
        Err(StoreError::IdempotencyKeyReused(k)) => assert_eq!(k, "k1"),
        other => panic!("expected IdempotencyKeyReused, got {other:?}"),
    }
    assert_eq!(store.head().await.unwrap(), 2);

    // Racing retries of one command write once.
    let barrier = Arc::new(Barrier::new(4));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .append(keyed(request("t", ExpectedVersion::Any, 1), "k2", "fp"))
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap().unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| !o.deduplicated).count(), 1);
    assert!(outcomes.windows(2).all(|w| w[0].events == w[1].events));
    assert_eq!(store.head().await.unwrap(), 3);

    // The same key twice within one batch is one write too.
    let batch = store
        .append_batch(vec![
            keyed(request("u", ExpectedVersion::Any, 1), "k3", "fp"),
            keyed(request("u", ExpectedVersion::Any, 1), "k3", "fp"),
        ])
        .await
        .unwrap();
    assert!(!batch[0].deduplicated && batch[1].deduplicated);
    assert_eq!(batch[0].events, batch[1].events);
    assert_eq!(store.head().await.unwrap(), 4);
}

async fn ordering_under_concurrent_writers(db: &Subject) {
    const WRITERS: usize = 8;
    const APPENDS: usize = 50;
    const TOTAL: u64 = (WRITERS * APPENDS) as u64;
    let store = db.store();

    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut wakeups = store.wakeups();
            let mut seen = Vec::new();
            let mut last = 0;
            while last < TOTAL {
                let page = store.read_all(last, 37).await.unwrap();
                if page.is_empty() {
                    let after = last;
                    wakeups.wait_for(|head| *head > after).await.unwrap();
                    continue;
                }
                for e in page {
                    // Never below or equal to what was already read, never a hole.
                    assert_eq!(
                        e.position,
                        last + 1,
                        "tailing reader saw a gap or a step back"
                    );
                    last = e.position;
                    seen.push(e);
                }
            }
            seen
        })
    };

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for _ in 0..APPENDS {
                    // Two writers per stream: versions are contended too.
                    let outcome = store
                        .append(request(&format!("w{}", w % 4), ExpectedVersion::Any, 1))
                        .await
                        .unwrap();
                    ids.push(outcome.events[0].event_id);
                }
                ids
            })
        })
        .collect();
    let mut written = HashSet::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    let seen = tokio::time::timeout(HANG_GUARD, reader)
        .await
        .expect("reader caught up")
        .unwrap();

    assert_eq!(written.len() as u64, TOTAL);
    let positions: Vec<u64> = seen.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=TOTAL).collect::<Vec<_>>());
    let seen_ids: HashSet<Uuid> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(seen_ids.len() as u64, TOTAL, "an event was seen twice");
    assert_eq!(seen_ids, written);
    let mut versions: HashMap<&str, Vec<u64>> = HashMap::new();
    for e in &seen {
        versions
            .entry(&e.stream_id)
            .or_default()
            .push(e.stream_version);
    }
    for (stream, v) in versions {
        assert_eq!(v, (1..=100).collect::<Vec<_>>(), "versions of {stream}");
    }
    assert!(chain::verify_chain(store.as_ref(), |_| {})
        .await
        .unwrap()
        .is_intact());
}

/// Many callers at once, as the PostgreSQL store groups them into one commit:
/// each caller still gets its own answer, and one caller's refusal writes
/// nothing for it but does not fail the others.
async fn concurrent_callers_fail_alone(db: &Subject) {
    #[derive(Debug)]
    enum Kind {
        Contested,
        Own,
        SameKey,
        SameEventId,
    }
    let store = db.store();
    let shared_id = Uuid::now_v7();
    let mut jobs: Vec<(Kind, AppendRequest)> = Vec::new();
    for i in 0..16 {
        jobs.push((
            Kind::Contested,
            request("contested", ExpectedVersion::NoStream, 1),
        ));
        jobs.push((
            Kind::Own,
            request(&format!("own-{i}"), ExpectedVersion::NoStream, 2),
        ));
    }
    for _ in 0..8 {
        jobs.push((
            Kind::SameKey,
            keyed(request("keyed", ExpectedVersion::Any, 1), "k-shared", "f"),
        ));
    }
    for i in 0..2 {
        let mut r = request(&format!("dup-{i}"), ExpectedVersion::NoStream, 1);
        r.events[0].event_id = shared_id;
        jobs.push((Kind::SameEventId, r));
    }
    let barrier = Arc::new(Barrier::new(jobs.len()));
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|(kind, r)| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                (kind, store.append(r).await)
            })
        })
        .collect();
    let (mut contested_wins, mut conflicts, mut own, mut key_writes, mut dedups) = (0, 0, 0, 0, 0);
    let (mut id_wins, mut id_refusals) = (0, 0);
    let mut keyed_events = HashSet::new();
    for t in tasks {
        match tokio::time::timeout(HANG_GUARD, t).await.unwrap().unwrap() {
            (Kind::Contested, Ok(o)) => {
                assert_eq!(o.events[0].stream_version, 1);
                contested_wins += 1;
            }
            (Kind::Contested, Err(StoreError::Conflict { actual, .. })) => {
                assert_eq!(actual, 1);
                conflicts += 1;
            }
            (Kind::Own, Ok(o)) => {
                assert_eq!(o.events.len(), 2);
                assert_eq!(o.events[1].position, o.events[0].position + 1);
                own += 1;
            }
            (Kind::SameKey, Ok(o)) => {
                if o.deduplicated {
                    dedups += 1;
                } else {
                    key_writes += 1;
                }
                keyed_events.insert(o.events[0].event_id);
            }
            (Kind::SameEventId, Ok(_)) => id_wins += 1,
            (Kind::SameEventId, Err(StoreError::InvalidAppend(_))) => id_refusals += 1,
            (kind, other) => panic!("{kind:?}: unexpected {other:?}"),
        }
    }
    assert_eq!((contested_wins, conflicts), (1, 15));
    assert_eq!(own, 16);
    assert_eq!((key_writes, dedups), (1, 7));
    assert_eq!(keyed_events.len(), 1, "every retry answers the same event");
    assert_eq!((id_wins, id_refusals), (1, 1));

    let all = store.read_all(0, 1000).await.unwrap();
    let expected_total = 1 + 16 * 2 + 1 + 1;
    let positions: Vec<u64> = all.iter().map(|e| e.position).collect();
    assert_eq!(positions, (1..=expected_total).collect::<Vec<_>>());
    assert_eq!(store.read_stream("contested", 0).await.unwrap().len(), 1);
    assert!(chain::verify_chain(store.as_ref(), |_| {})
        .await
        .unwrap()
        .is_intact());
}

/// The hash chain holds for any text and any instant the store accepts,
/// whichever side computes it (PostgreSQL hashes inside the database, SQLite in
/// the process, `verify_chain` always in the process).
async fn chain_covers_any_text(db: &Subject) {
    let store = db.store();
    let odd_times = [
        "0100-01-01T00:00:00.000001Z",
        "1969-12-31T23:59:59.999999Z",
        "2026-03-29T01:30:00Z",
        "9999-12-31T23:59:59.999999Z",
    ];
    let texts = [
        "ordinaire",
        "é\"\\\u{1}\t\n",
        "🦀 élève — “guillemets” ß",
        "",
        "中文 עברית",
    ];
    let mut appended = Vec::new();
    for (i, (time, text)) in odd_times.iter().zip(texts.iter().cycle()).enumerate() {
        let mut e = event(&format!("Type-{text}"), i as i64);
        e.data = json!({ "text": text, "big": u64::MAX, "neg": -1.25e-7, "nested": [[{}], []] });
        e.metadata.occurred_at = time.parse().unwrap();
        e.metadata.reason = Some((*text).to_owned());
        let outcome = store
            .append(AppendRequest {
                partition: Partition::directory(),
                stream_id: format!("flux-{text}-{i}"),
                expected: ExpectedVersion::NoStream,
                events: vec![e],
                idempotency: Some(Idempotency {
                    key: format!("clé-{text}-{i}"),
                    fingerprint: (*text).to_owned(),
                }),
            })
            .await
            .unwrap();
        appended.extend(outcome.events);
    }
    let mut prev = chain::GENESIS;
    for e in &appended {
        assert_eq!(
            chain::recompute(&prev, e).unwrap(),
            e.hash,
            "append answered a hash the process does not recompute at {}",
            e.position
        );
        prev = e.hash;
    }
    let read = store.read_all(0, 100).await.unwrap();
    assert_eq!(read, appended, "append answered what a later read returns");
    assert!(chain::verify_chain(store.as_ref(), |_| {})
        .await
        .unwrap()
        .is_intact());
}

async fn log_is_immutable(db: &Subject) {
    let store = db.store();
    store
        .append(keyed(request("s", ExpectedVersion::NoStream, 2), "k", "fp"))
        .await
        .unwrap();
    let before = store.read_all(0, 10).await.unwrap();
    let mut statements = vec![
        "UPDATE events SET data = '{}' WHERE position = 1",
        "DELETE FROM events WHERE position = 2",
        "DELETE FROM events",
        "UPDATE idempotency_keys SET fingerprint = 'other'",
        "DELETE FROM idempotency_keys",
    ];
    if db.is_postgres() {
        statements.push("TRUNCATE events CASCADE");
        statements.push("TRUNCATE idempotency_keys");
    }
    for sql in statements {
        let err = db.exec(sql).await.expect_err(sql);
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(store.read_all(0, 10).await.unwrap(), before);
    assert!(store.find_idempotent("k").await.unwrap().is_some());
}

/// Roll calls (small batches) and single appends arriving together: each
/// batch is all or nothing and fails alone, whatever it was committed with
/// (PostgreSQL groups them into one call, migration 0010), and a large batch
/// between them keeps its own transaction.
async fn batches_and_singles_fail_alone(db: &Subject) {
    let store = db.store();
    store
        .append(request("taken", ExpectedVersion::NoStream, 1))
        .await
        .unwrap();
    #[derive(Debug)]
    enum Job {
        Single(AppendRequest),
        Batch(Vec<AppendRequest>, bool),
    }
    let mut jobs = Vec::new();
    for i in 0..12 {
        jobs.push(Job::Single(request(
            &format!("single-{i}"),
            ExpectedVersion::NoStream,
            1,
        )));
        // A roll call: several new streams and one already written.
        jobs.push(Job::Batch(
            vec![
                request(&format!("call-{i}-a"), ExpectedVersion::NoStream, 2),
                request(&format!("call-{i}-b"), ExpectedVersion::NoStream, 1),
            ],
            true,
        ));
        jobs.push(Job::Batch(
            vec![
                request(&format!("doomed-{i}-a"), ExpectedVersion::NoStream, 2),
                request("taken", ExpectedVersion::Exact(9), 1),
                request(&format!("doomed-{i}-c"), ExpectedVersion::NoStream, 1),
            ],
            false,
        ));
    }
    // Above any grouping threshold.
    jobs.push(Job::Batch(
        (0..3)
            .map(|k| request(&format!("large-{k}"), ExpectedVersion::NoStream, 90))
            .collect(),
        true,
    ));
    let barrier = Arc::new(Barrier::new(jobs.len()));
    let tasks: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                match job {
                    Job::Single(r) => (true, store.append(r).await.map(|o| vec![o])),
                    Job::Batch(rs, ok) => (ok, store.append_batch(rs).await),
                }
            })
        })
        .collect();
    let mut written = 1;
    for t in tasks {
        let (should_succeed, result) = tokio::time::timeout(HANG_GUARD, t).await.unwrap().unwrap();
        if should_succeed {
            let outcomes = result.unwrap();
            let positions: Vec<u64> = outcomes
                .iter()
                .flat_map(|o| &o.events)
                .map(|e| e.position)
                .collect();
            // One caller's events are contiguous: nothing of another caller
            // is interleaved with them.
            assert!(
                positions.windows(2).all(|w| w[1] == w[0] + 1),
                "{positions:?}"
            );
            written += positions.len() as u64;
        } else {
            assert!(
                matches!(result, Err(StoreError::Conflict { ref stream_id, actual: 1, .. }) if stream_id == "taken"),
                "{result:?}"
            );
        }
    }
    assert_eq!(store.head().await.unwrap(), written);
    for i in 0..12 {
        assert!(store
            .read_stream(&format!("doomed-{i}-a"), 0)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store
                .read_stream(&format!("call-{i}-a"), 0)
                .await
                .unwrap()
                .len(),
            2
        );
    }
    let all = store.read_all(0, 10_000).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=written).collect::<Vec<_>>(),
        "positions are gap-free"
    );
    let report = chain::verify_chain(store.as_ref(), |_| {}).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
}

async fn failed_batch_writes_nothing(db: &Subject) {
    let store = db.store();
    let first = store
        .append(request("b", ExpectedVersion::NoStream, 1))
        .await
        .unwrap();

    let conflicting = store
        .append_batch(vec![
            request("a", ExpectedVersion::NoStream, 2),
            request("b", ExpectedVersion::Exact(7), 1),
        ])
        .await;
    assert!(
        matches!(conflicting, Err(StoreError::Conflict { .. })),
        "{conflicting:?}"
    );

    // A failure the database itself detects, at insert time: a reused event id.
    let mut reused = request("c", ExpectedVersion::NoStream, 2);
    reused.events[1].event_id = first.events[0].event_id;
    let failed = store
        .append_batch(vec![request("a", ExpectedVersion::NoStream, 2), reused])
        .await;
    assert!(
        matches!(failed, Err(StoreError::InvalidAppend(_))),
        "{failed:?}"
    );

    assert_eq!(store.head().await.unwrap(), 1);
    assert!(store.read_stream("a", 0).await.unwrap().is_empty());

    let ok = store
        .append_batch(vec![
            request("a", ExpectedVersion::NoStream, 2),
            request("b", ExpectedVersion::Exact(1), 1),
            request("a", ExpectedVersion::Exact(2), 1),
        ])
        .await
        .unwrap();
    let got: Vec<(u64, &str, u64)> = ok
        .iter()
        .flat_map(|o| &o.events)
        .map(|e| (e.position, e.stream_id.as_str(), e.stream_version))
        .collect();
    assert_eq!(
        got,
        vec![(2, "a", 1), (3, "a", 2), (4, "b", 2), (5, "a", 3)]
    );
    assert!(store.append_batch(Vec::new()).await.unwrap().is_empty());
}

async fn append_n(db: &Subject, n: usize) {
    db.store()
        .append(request("s", ExpectedVersion::Any, n))
        .await
        .unwrap();
}

async fn chain_verifies(db: &Subject) {
    let store = db.store();
    let empty = chain::verify_chain(store.as_ref(), |_| {}).await.unwrap();
    assert!(empty.is_intact());
    assert_eq!((empty.verified_head, empty.head_hash), (0, chain::GENESIS));
    append_n(db, 4).await;
    store
        .append(request("other", ExpectedVersion::Any, 2))
        .await
        .unwrap();
    let mut progress = Vec::new();
    let report = chain::verify_chain(store.as_ref(), |p| progress.push(p))
        .await
        .unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.verified_head, 6);
    assert_eq!(report.events_checked, 6);
    assert_eq!(progress, vec![6]);
    let last = store.read_positions(&[6]).await.unwrap();
    assert_eq!(report.head_hash, last[0].hash);
    let checkpoint = chain::checkpoint(store.as_ref()).await.unwrap();
    assert_eq!((checkpoint.position, checkpoint.hash), (6, last[0].hash));
    assert!(chain::verify_checkpoint(store.as_ref(), &checkpoint)
        .await
        .unwrap());
    // A checkpoint round-trips through JSON, as an auditor would keep it.
    let text = serde_json::to_string(&checkpoint).unwrap();
    assert_eq!(
        serde_json::from_str::<chain::ChainCheckpoint>(&text).unwrap(),
        checkpoint
    );
}

async fn chain_detects_altered_row(db: &Subject) {
    append_n(db, 6).await;
    db.tamper(r#"UPDATE events SET data = '{"n":999}' WHERE position = 3"#)
        .await;
    let report = chain::verify_chain(db.store().as_ref(), |_| {})
        .await
        .unwrap();
    let broken = report.first_break.expect("tampering detected");
    assert_eq!((broken.position, broken.kind), (3, BreakKind::HashMismatch));
    assert_eq!(report.verified_head, 2);
}

async fn chain_detects_deleted_row(db: &Subject) {
    append_n(db, 6).await;
    let store = db.store();
    let checkpoint = chain::checkpoint(store.as_ref()).await.unwrap();
    db.tamper("DELETE FROM events WHERE position = 3").await;
    let report = chain::verify_chain(store.as_ref(), |_| {}).await.unwrap();
    let broken = report.first_break.expect("tampering detected");
    assert_eq!(
        (broken.position, broken.kind),
        (3, BreakKind::Gap { found: 4 })
    );

    // Cutting the newest event leaves a chain that verifies on its own: the
    // auditor's checkpoint is what exposes it.
    db.tamper("DELETE FROM events WHERE position = 6").await;
    assert!(!chain::verify_checkpoint(store.as_ref(), &checkpoint)
        .await
        .unwrap());
}

async fn chain_detects_reordered_rows(db: &Subject) {
    append_n(db, 6).await;
    db.tamper(
        "UPDATE events SET position = 1000 WHERE position = 2; \
         UPDATE events SET position = 2 WHERE position = 3; \
         UPDATE events SET position = 3 WHERE position = 1000;",
    )
    .await;
    let report = chain::verify_chain(db.store().as_ref(), |_| {})
        .await
        .unwrap();
    let broken = report.first_break.expect("tampering detected");
    assert_eq!((broken.position, broken.kind), (2, BreakKind::HashMismatch));
}

async fn snapshots_round_trip(db: &Subject) {
    let store = db.store();
    assert!(store.load_snapshot("proj").await.unwrap().is_none());
    let first = Snapshot {
        key: "proj".into(),
        version: 3,
        position: 42,
        state: vec![0, 1, 2, 255],
    };
    store.save_snapshot(first.clone()).await.unwrap();
    assert_eq!(store.load_snapshot("proj").await.unwrap(), Some(first));
    let second = Snapshot {
        key: "proj".into(),
        version: 4,
        position: 43,
        state: vec![9; 10_000],
    };
    store.save_snapshot(second.clone()).await.unwrap();
    assert_eq!(store.load_snapshot("proj").await.unwrap(), Some(second));
    assert!(store.load_snapshot("other").await.unwrap().is_none());
}

/// Several snapshots in one transaction: all of them, or none when one is
/// refused (here the last, after the others were written in it).
async fn snapshots_saved_together(db: &Subject) {
    let store = db.store();
    let snapshot = |key: &str, position: u64, byte: u8| Snapshot {
        key: key.into(),
        version: 5,
        position,
        state: vec![byte; 1000],
    };
    store.save_snapshot(snapshot("p:a", 1, 1)).await.unwrap();
    let refused = store
        .save_snapshots(vec![
            snapshot("p:a", 2, 2),
            snapshot("p:b", 2, 2),
            // Positions are stored as bigint: this one cannot be.
            snapshot("p:manifest", u64::MAX, 2),
        ])
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(
        store.load_snapshot("p:a").await.unwrap(),
        Some(snapshot("p:a", 1, 1)),
        "the refused batch left the old row"
    );
    assert!(store.load_snapshot("p:b").await.unwrap().is_none());
    assert!(store.load_snapshot("p:manifest").await.unwrap().is_none());

    let batch = vec![
        snapshot("p:a", 3, 3),
        snapshot("p:b", 3, 4),
        snapshot("p:b", 3, 5),
        snapshot("p:manifest", 3, 6),
    ];
    store.save_snapshots(batch).await.unwrap();
    assert_eq!(
        store.load_snapshot("p:a").await.unwrap(),
        Some(snapshot("p:a", 3, 3))
    );
    assert_eq!(
        store.load_snapshot("p:b").await.unwrap(),
        Some(snapshot("p:b", 3, 5)),
        "the last of a key stays"
    );
    assert_eq!(
        store.load_snapshot("p:manifest").await.unwrap(),
        Some(snapshot("p:manifest", 3, 6))
    );
    store.save_snapshots(Vec::new()).await.unwrap();
}

async fn access_log(db: &Subject) {
    let store = db.store();
    let subject = Uuid::now_v7();
    let old = micros(Utc::now() - chrono::Duration::days(400));
    let recent = micros(Utc::now());
    let access = |at, subject_id| NewAccess {
        at,
        viewer_id: Uuid::now_v7(),
        viewer_profile: "PARENT".into(),
        subject_id,
        operation: "student.grades".into(),
        service: "Notes".into(),
    };
    let entries = vec![
        access(old, Some(subject)),
        access(old, None),
        access(recent, Some(subject)),
    ];
    store.record_access(entries.clone()).await.unwrap();
    store.record_access(Vec::new()).await.unwrap();

    let all = store.read_access(0, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.access.clone()).collect::<Vec<_>>(),
        entries
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    let rest = store.read_access(all[0].id, 10).await.unwrap();
    assert_eq!(rest, all[1..]);
    assert_eq!(store.read_access(0, 1).await.unwrap(), all[..1]);
    let about = store.access_about(subject).await.unwrap();
    assert_eq!(about, vec![all[0].clone(), all[2].clone()]);

    let cutoff = micros(Utc::now() - chrono::Duration::days(365));
    // Nothing is purged before the usage projection has folded it.
    assert_eq!(store.purge_access_before(cutoff).await.unwrap(), 0);
    mark_access_folded(store.as_ref(), all[2].id).await;
    assert_eq!(store.purge_access_before(cutoff).await.unwrap(), 2);
    assert_eq!(store.read_access(0, 10).await.unwrap(), all[2..]);

    // Ids are never reused, even once every record was purged.
    assert_eq!(
        store
            .purge_access_before(Utc::now() + chrono::Duration::days(1))
            .await
            .unwrap(),
        1
    );
    store
        .record_access(vec![access(recent, None)])
        .await
        .unwrap();
    let after = store.read_access(0, 10).await.unwrap();
    assert_eq!(after.len(), 1);
    assert!(after[0].id > all[2].id);
}

/// Moves the usage projection's checkpoint to `id`, counting nothing.
async fn mark_access_folded(store: &dyn registre_store::EventStore, id: u64) {
    let usage = store.usage().expect("the backend has usage tables");
    let from = usage.status().await.unwrap().checkpoint;
    let nothing: registre_store::usage::Sessionize = |_, _| Default::default();
    assert!(usage.apply(from, id, Vec::new(), nothing).await.unwrap());
}

/// The positions a reader returns until it has returned `n` events, waiting
/// on the store's wake-ups whenever it has caught up.
async fn follow_n(log: &mut LogReader<Arc<dyn EventStore>>, n: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    tokio::time::timeout(HANG_GUARD, async {
        while seen.len() < n {
            let page = log.next_page().await.unwrap();
            if page.is_empty() {
                log.wait(registre_store::reader::FALLBACK_POLL).await;
            }
            seen.extend(page.iter().map(|e| e.position));
        }
    })
    .await
    .expect("the reader delivers");
    seen
}

async fn reader_pages_history_then_live(db: &Subject) {
    let store = db.store();
    append_n(db, 5).await;
    // Pages of 2 from position 2: the history comes in several pages.
    let mut log = LogReader::new(store.clone(), 2).page_size(2);
    assert_eq!(log.next_page().await.unwrap().len(), 2);
    assert_eq!(log.position(), 4);
    assert_eq!(follow_n(&mut log, 1).await, [5]);
    let appender = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..5 {
                store
                    .append(request("live", ExpectedVersion::Any, 2))
                    .await
                    .unwrap();
            }
        })
    };
    assert_eq!(follow_n(&mut log, 10).await, (6..=15).collect::<Vec<_>>());
    appender.await.unwrap();
    // Reading ahead returns the same pages, and moving the reader drops a
    // page read ahead for the old position.
    let mut ahead = LogReader::new(store.clone(), 0)
        .page_size(4)
        .reading_ahead();
    assert_eq!(follow_n(&mut ahead, 15).await, (1..=15).collect::<Vec<_>>());
    ahead.seek(3);
    assert_eq!(ahead.next_page().await.unwrap()[0].position, 4);
    ahead.seek(13);
    assert_eq!(follow_n(&mut ahead, 2).await, [14, 15]);
}

async fn read_stream_reads_only_after_version(db: &Subject) {
    let store = db.store();
    for i in 0..10u64 {
        let expected = if i == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(i * 100)
        };
        store.append(request("long", expected, 100)).await.unwrap();
        store
            .append(request("noise", ExpectedVersion::Any, 5))
            .await
            .unwrap();
    }
    let tail = store.read_stream("long", 995).await.unwrap();
    assert_eq!(
        tail.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        (996..=1000).collect::<Vec<_>>()
    );
    assert!(store.read_stream("long", 1000).await.unwrap().is_empty());
    if db.is_postgres() {
        // Flat cost by construction: the read is an index range scan on
        // (stream_id, stream_version), not a scan of the stream.
        let Raw::Postgres(pg) = &db.raw else {
            unreachable!()
        };
        let client = pg_client(&pg.url).await;
        client.batch_execute("ANALYZE events").await.unwrap();
        let plan: Vec<String> = client
            .query(
                "EXPLAIN SELECT * FROM events WHERE stream_id = 'long' AND stream_version > 995 \
                 ORDER BY stream_version",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains("events_stream_version_key"), "{plan}");
    }
}

/// Crypto-shredding: personal text is stored sealed, reads back in clear
/// through the vault, and reads as erased once the person's key is destroyed,
/// while the log, its chain and the other fields are untouched.
async fn crypto_shredding(db: &Subject) {
    let raw = db.store();
    let store = VaultStore::wrap(raw.clone(), sealed_fields).unwrap();
    assert!(store.vault().is_some(), "the backend keeps subject keys");
    let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
    let mut registered = event("PersonRegistered", 0);
    registered.data = json!({"person_id": alice, "external_id": "ext-a", "display_name": "Alice Martin",
        "roles": ["GUARDIAN"], "establishment_id": null});
    let mut sent = event("MessageSent", 1);
    sent.data = json!({"message_id": Uuid::now_v7(), "thread_id": Uuid::now_v7(), "from": alice,
        "to": [bob], "subject": "Rendez-vous", "body": "Mon fils est malade."});
    sent.metadata.reason = None;
    let mut other = event("PersonRegistered", 2);
    other.data = json!({"person_id": bob, "external_id": "ext-b", "display_name": "Bob Durand",
        "roles": ["TEACHER"], "establishment_id": null});
    let outcome = store
        .append(AppendRequest {
            partition: Partition::directory(),
            stream_id: "people".into(),
            expected: ExpectedVersion::NoStream,
            events: vec![registered, sent, other],
            idempotency: Some(Idempotency {
                key: "k-vault".into(),
                fingerprint: "f".into(),
            }),
        })
        .await
        .unwrap();
    assert_eq!(
        outcome.events[0].data["display_name"], "Alice Martin",
        "the outcome reads in clear"
    );

    // What the table holds: no plaintext, the person's id in clear.
    let stored = raw.read_all(0, 10).await.unwrap();
    let text = serde_json::to_string(&stored.iter().map(|e| &e.data).collect::<Vec<_>>()).unwrap();
    for secret in [
        "Alice Martin",
        "Mon fils est malade",
        "Rendez-vous",
        "Bob Durand",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} is stored in clear: {text}"
        );
    }
    assert!(text.contains("ext-a"), "ids are not sealed");
    assert_eq!(
        stored[0]
            .metadata
            .reason
            .as_deref()
            .map(|r| r.starts_with("enc:v1:")),
        Some(true)
    );

    let opened = store.read_all(0, 10).await.unwrap();
    assert_eq!(
        raw_reads(store.as_ref()).await,
        opened.iter().map(RawEvent::of).collect::<Vec<_>>(),
        "a fold's read opens what a whole read opens"
    );
    assert_eq!(opened[0].data["display_name"], "Alice Martin");
    assert_eq!(opened[0].metadata.reason.as_deref(), Some("because"));
    assert_eq!(opened[1].data["body"], "Mon fils est malade.");
    assert_eq!(opened[2].data["display_name"], "Bob Durand");

    // Erasure, seen by a vault with a cold cache (another process) too.
    let vault = store.vault().unwrap();
    assert_eq!(vault.destroy(vec![alice], Utc::now()).await.unwrap(), 1);
    for reader in [
        store.clone(),
        VaultStore::wrap(raw.clone(), sealed_fields).unwrap(),
    ] {
        let after = reader.read_all(0, 10).await.unwrap();
        assert_eq!(
            raw_reads(reader.as_ref()).await,
            after.iter().map(RawEvent::of).collect::<Vec<_>>(),
            "a fold's read shows the erasure"
        );
        assert_eq!(after.len(), 3, "the events stay");
        assert_eq!(after[0].data["display_name"], ERASED);
        assert_eq!(after[0].metadata.reason.as_deref(), Some(ERASED));
        assert_eq!(after[1].data["subject"], ERASED);
        assert_eq!(after[1].data["body"], ERASED);
        assert_eq!(after[1].data["to"], json!([bob]), "ids stay readable");
        assert_eq!(
            after[2].data["display_name"], "Bob Durand",
            "others are untouched"
        );
    }
    assert!(vault.keys().is_destroyed(alice).await.unwrap());
    let raw_after = raw.read_all(0, 10).await.unwrap();
    assert_eq!(raw_after, stored, "erasure does not touch the log");
    let report = chain::verify_chain(raw.as_ref(), |_| {}).await.unwrap();
    assert!(report.first_break.is_none(), "{report:?}");

    // New text about an erased person is not sealed with a new key.
    let mut late = event("MessageSent", 3);
    late.data = json!({"message_id": Uuid::now_v7(), "thread_id": Uuid::now_v7(), "from": alice,
        "to": [bob], "subject": "Encore", "body": "Texte tardif"});
    store
        .append(AppendRequest {
            partition: Partition::directory(),
            stream_id: "late".into(),
            expected: ExpectedVersion::NoStream,
            events: vec![late],
            idempotency: None,
        })
        .await
        .unwrap();
    let late_raw = raw.read_stream("late", 0).await.unwrap();
    assert_eq!(late_raw[0].data["body"], ERASED);

    // An idempotent retry still answers the original outcome.
    let again = store.find_idempotent("k-vault").await.unwrap().unwrap();
    assert_eq!(again.events.len(), 3);
}

/// The directory's events as a fold reads them, parsed back to compare.
async fn raw_reads(store: &dyn EventStore) -> Vec<RawEvent> {
    let raw = store
        .read_partitions_raw(0, &[Partition::directory()], 10)
        .await
        .unwrap();
    for e in &raw {
        let _: serde_json::Value = serde_json::from_str(&e.data).expect("the data is JSON");
    }
    raw
}

/// A backend of someone else's making that keeps no subject keys: every call
/// goes to a real store, but `subject_keys` is the trait's default (none).
#[derive(Debug)]
struct Unkeyed(Arc<dyn EventStore>);

#[async_trait::async_trait]
impl EventStore for Unkeyed {
    async fn append(&self, r: AppendRequest) -> registre_store::Result<AppendOutcome> {
        self.0.append(r).await
    }
    async fn append_batch(
        &self,
        r: Vec<AppendRequest>,
    ) -> registre_store::Result<Vec<AppendOutcome>> {
        self.0.append_batch(r).await
    }
    async fn find_idempotent(&self, key: &str) -> registre_store::Result<Option<AppendOutcome>> {
        self.0.find_idempotent(key).await
    }
    async fn read_stream(&self, s: &str, after: u64) -> registre_store::Result<Vec<RecordedEvent>> {
        self.0.read_stream(s, after).await
    }
    async fn read_all(
        &self,
        after: u64,
        limit: usize,
    ) -> registre_store::Result<Vec<RecordedEvent>> {
        self.0.read_all(after, limit).await
    }
    async fn read_partitions(
        &self,
        after: u64,
        p: &[Partition],
        limit: usize,
    ) -> registre_store::Result<Vec<RecordedEvent>> {
        self.0.read_partitions(after, p, limit).await
    }
    async fn first_unassigned(&self) -> registre_store::Result<Option<u64>> {
        self.0.first_unassigned().await
    }
    async fn assign_partitions(&self, a: &[(u64, Partition)]) -> registre_store::Result<u64> {
        self.0.assign_partitions(a).await
    }
    async fn read_positions(&self, p: &[u64]) -> registre_store::Result<Vec<RecordedEvent>> {
        self.0.read_positions(p).await
    }
    async fn head(&self) -> registre_store::Result<u64> {
        self.0.head().await
    }
    fn wakeups(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.wakeups()
    }
    async fn load_snapshot(&self, key: &str) -> registre_store::Result<Option<Snapshot>> {
        self.0.load_snapshot(key).await
    }
    async fn save_snapshot(&self, s: Snapshot) -> registre_store::Result<()> {
        self.0.save_snapshot(s).await
    }
    async fn save_snapshots(&self, s: Vec<Snapshot>) -> registre_store::Result<()> {
        self.0.save_snapshots(s).await
    }
    async fn record_access(&self, e: Vec<NewAccess>) -> registre_store::Result<()> {
        self.0.record_access(e).await
    }
    async fn read_access(
        &self,
        after: u64,
        limit: usize,
    ) -> registre_store::Result<Vec<AccessRecord>> {
        self.0.read_access(after, limit).await
    }
    async fn access_about(&self, s: Uuid) -> registre_store::Result<Vec<AccessRecord>> {
        self.0.access_about(s).await
    }
    async fn purge_access_before(&self, t: DateTime<Utc>) -> registre_store::Result<u64> {
        self.0.purge_access_before(t).await
    }
}

/// The vault refuses a backend without a key table instead of handing back a
/// store that would write personal text in clear; it wraps a store once.
async fn vault_refuses_a_store_without_keys(db: &Subject) {
    let unkeyed: Arc<dyn EventStore> = Arc::new(Unkeyed(db.store()));
    let refused = VaultStore::wrap(unkeyed.clone(), sealed_fields);
    assert!(
        matches!(refused, Err(StoreError::NoKeyTable(_))),
        "{refused:?}"
    );
    assert_eq!(db.store().head().await.unwrap(), 0, "nothing was written");

    let wrapped = VaultStore::wrap(db.store(), sealed_fields).unwrap();
    let again = VaultStore::wrap(wrapped.clone(), sealed_fields).unwrap();
    assert!(
        Arc::ptr_eq(&wrapped, &again),
        "a vault store is not wrapped twice"
    );
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = super::Subject::sqlite().await;
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = super::Subject::postgres().await;
                    super::$name(&db).await;
                }
            )*
        }
    };
}

conformance!(
    append_and_read,
    conflict_on_wrong_expected_version,
    concurrent_appends_one_wins,
    idempotency,
    ordering_under_concurrent_writers,
    log_is_immutable,
    failed_batch_writes_nothing,
    batches_and_singles_fail_alone,
    chain_verifies,
    chain_detects_altered_row,
    chain_detects_deleted_row,
    chain_detects_reordered_rows,
    snapshots_round_trip,
    snapshots_saved_together,
    access_log,
    reader_pages_history_then_live,
    read_stream_reads_only_after_version,
    crypto_shredding,
    vault_refuses_a_store_without_keys,
    concurrent_callers_fail_alone,
    chain_covers_any_text,
    partitions_are_kept_and_read_by_set,
    a_partition_is_assigned_once,
    // cluster (issue 12)
    a_partition_reader_scans_to_the_head,
    the_node_registry,
    // notification outbox per partition (issue 12 follow-up)
    outbox_checkpoints_move_per_partition_once,
    outbox_claims_only_the_partitions_asked,
);

// ---------------------------------------------------------------- partitions

fn in_partition(stream: &str, partition: &Partition, n: usize) -> AppendRequest {
    AppendRequest {
        partition: partition.clone(),
        ..request(stream, ExpectedVersion::Any, n)
    }
}

fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position).collect()
}

async fn partitions_are_kept_and_read_by_set(db: &Subject) {
    let store = db.store();
    let (a, b, dir) = (
        Partition::establishment("0750001A"),
        Partition::establishment("0690002B"),
        Partition::directory(),
    );
    // One append, one batch, then concurrent callers (grouped in one commit
    // on PostgreSQL): each event keeps its own request's partition.
    store.append(in_partition("a-1", &a, 2)).await.unwrap(); // 1, 2
    store
        .append_batch(vec![
            in_partition("p-1", &dir, 1), // 3
            in_partition("b-1", &b, 2),   // 4, 5
        ])
        .await
        .unwrap();
    let (x, y) = tokio::join!(
        store.append(in_partition("a-2", &a, 1)),
        store.append(in_partition("b-2", &b, 1)),
    );
    x.unwrap();
    y.unwrap(); // 6, 7 in either order
    let all = store.read_all(0, 100).await.unwrap();
    assert_eq!(all.len(), 7);
    for e in &all {
        let expected = match e.stream_id.chars().next() {
            Some('a') => &a,
            Some('b') => &b,
            _ => &dir,
        };
        assert_eq!(e.partition.as_ref(), Some(expected), "{}", e.stream_id);
    }
    let of = |p: &Partition| -> Vec<u64> {
        all.iter()
            .filter(|e| e.partition.as_ref() == Some(p))
            .map(|e| e.position)
            .collect()
    };

    let only_a = store
        .read_partitions(0, std::slice::from_ref(&a), 100)
        .await
        .unwrap();
    assert_eq!(positions(&only_a), of(&a));
    assert!(only_a.iter().all(|e| e.partition.as_ref() == Some(&a)));
    // What read_all answers, filtered: same rows, same hashes.
    for e in &only_a {
        assert_eq!(Some(e), all.iter().find(|x| x.position == e.position));
    }

    let mut a_and_dir = of(&a);
    a_and_dir.extend(of(&dir));
    a_and_dir.sort();
    let read = store
        .read_partitions(0, &[dir.clone(), a.clone()], 100)
        .await
        .unwrap();
    assert_eq!(positions(&read), a_and_dir, "merged in log order");

    // `after` and `limit` page through the set as read_all pages the log.
    let first_two = store
        .read_partitions(0, &[a.clone(), dir.clone()], 2)
        .await
        .unwrap();
    assert_eq!(positions(&first_two), a_and_dir[..2]);
    let rest = store
        .read_partitions(a_and_dir[1], &[a.clone(), dir.clone()], 100)
        .await
        .unwrap();
    assert_eq!(positions(&rest), a_and_dir[2..]);

    // A fold's read answers the same events, pages and all, in the fold's
    // form: the backend's own query, not the trait's default.
    for (after, set, limit) in [
        (0, vec![a.clone()], 100),
        (0, vec![a.clone(), dir.clone()], 2),
        (a_and_dir[1], vec![a.clone(), dir.clone()], 100),
        (0, vec![b.clone(), a.clone(), dir.clone()], 100),
    ] {
        let whole = store.read_partitions(after, &set, limit).await.unwrap();
        let raw = store.read_partitions_raw(after, &set, limit).await.unwrap();
        assert_eq!(
            raw,
            whole.iter().map(RawEvent::of).collect::<Vec<_>>(),
            "after {after}, {set:?}, limit {limit}"
        );
    }
    assert!(store
        .read_partitions_raw(0, &[], 100)
        .await
        .unwrap()
        .is_empty());

    assert!(store.read_partitions(0, &[], 100).await.unwrap().is_empty());
    let unknown = Partition::establishment("0130003C");
    assert!(store
        .read_partitions(0, &[unknown], 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.first_unassigned().await.unwrap(), None);
    // The partition is not in the hash: the chain is the one it always was.
    assert!(chain::verify_chain(store.as_ref(), |_| {})
        .await
        .unwrap()
        .is_intact());
}

async fn a_partition_is_assigned_once(db: &Subject) {
    let store = db.store();
    let a = Partition::establishment("0750001A");
    store.append(in_partition("s", &a, 3)).await.unwrap();
    // Once set, a partition is as immutable as the rest of the row.
    let err = db
        .exec("UPDATE events SET partition = 'directory' WHERE position = 1")
        .await
        .expect_err("changing a partition");
    assert!(err.contains("append-only"), "{err}");
    assert_eq!(
        store
            .assign_partitions(&[(1, Partition::directory())])
            .await
            .unwrap(),
        0
    );

    // A log written before partitions existed: rows without one.
    db.tamper("UPDATE events SET partition = NULL WHERE position >= 2")
        .await;
    assert_eq!(store.first_unassigned().await.unwrap(), Some(2));
    let before = store.read_all(0, 10).await.unwrap();
    assert_eq!(before[1].partition, None);
    // The backfill sets them; a row that has one keeps it.
    let set = store
        .assign_partitions(&[(1, Partition::directory()), (2, a.clone()), (3, a.clone())])
        .await
        .unwrap();
    assert_eq!(set, 2);
    assert_eq!(store.first_unassigned().await.unwrap(), None);
    let after = store.read_all(0, 10).await.unwrap();
    assert!(after.iter().all(|e| e.partition.as_ref() == Some(&a)));
    for (x, y) in before.iter().zip(&after) {
        assert_eq!((x.position, &x.data, x.hash), (y.position, &y.data, y.hash));
    }
    assert_eq!(
        positions(&store.read_partitions(0, &[a], 10).await.unwrap()),
        vec![1, 2, 3]
    );
    assert!(chain::verify_chain(store.as_ref(), |_| {})
        .await
        .unwrap()
        .is_intact());
}

// ---------------------------------------------------------------- cluster (issue 12)

/// A reader of some partitions knows how far the log holds nothing for it:
/// a node whose establishments are quiet still reaches the head.
async fn a_partition_reader_scans_to_the_head(db: &Subject) {
    let store = db.store();
    let (a, b) = (
        Partition::establishment("0750001A"),
        Partition::establishment("0690002B"),
    );
    store.append(in_partition("a-1", &a, 2)).await.unwrap(); // 1, 2
    store.append(in_partition("b-1", &b, 3)).await.unwrap(); // 3..5
    let set: Arc<[Partition]> = Arc::from(vec![a.clone(), Partition::directory()]);
    let mut log = LogReader::new(store.clone(), 0)
        .page_size(2)
        .partitions(Some(set))
        .reading_ahead();
    // A full page says nothing past its last event.
    assert_eq!(positions(&log.next_page().await.unwrap()), vec![1, 2]);
    assert_eq!(log.scanned_to(), 2);
    // The short read after it covers the head taken before it.
    assert!(log.next_page().await.unwrap().is_empty());
    assert_eq!((log.position(), log.scanned_to()), (2, 5));
    store.append(in_partition("b-2", &b, 1)).await.unwrap(); // 6
    store.append(in_partition("a-2", &a, 1)).await.unwrap(); // 7
    tokio::time::timeout(HANG_GUARD, log.wait(HANG_GUARD))
        .await
        .expect("woken by the appends");
    assert_eq!(positions(&log.next_page().await.unwrap()), vec![7]);
    assert_eq!(log.scanned_to(), 7);
    // Moving back rescans from there.
    log.seek(0);
    assert_eq!(log.scanned_to(), 0);
    assert_eq!(positions(&log.next_page().await.unwrap()), vec![1, 2]);
}

async fn the_node_registry(db: &Subject) {
    use registre_store::nodes::NodeRecord;
    let nodes = db.store().nodes().expect("both backends keep a registry");
    // Whole milliseconds: what the embedded store keeps of an instant.
    let t0 = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let s = chrono::Duration::seconds;
    let a = NodeRecord {
        node_id: Uuid::now_v7(),
        advertise_url: "http://10.0.0.1:8080".into(),
        served: Some(vec![Partition::establishment("0750001A")]),
        started_at: t0,
        heartbeat_at: t0,
    };
    let all = NodeRecord {
        node_id: Uuid::now_v7(),
        advertise_url: "http://10.0.0.2:8080".into(),
        served: None,
        started_at: t0 + s(1),
        heartbeat_at: t0 + s(1),
    };
    nodes.register_node(&a).await.unwrap();
    nodes.register_node(&all).await.unwrap();
    assert_eq!(
        nodes.live_nodes(t0).await.unwrap(),
        vec![a.clone(), all.clone()]
    );
    assert!(a.serves(&Partition::establishment("0750001A")));
    assert!(a.serves(&Partition::directory()));
    assert!(!a.serves(&Partition::establishment("0690002B")));
    assert!(all.serves(&Partition::establishment("0690002B")));

    // Liveness is the last heartbeat: `a` beats, `all` does not.
    assert!(nodes.heartbeat(a.node_id, t0 + s(30)).await.unwrap());
    let live = nodes.live_nodes(t0 + s(20)).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].heartbeat_at, t0 + s(30));
    assert_eq!(live[0].served, a.served);

    // Registering again (a restart under the same id) replaces the row.
    let moved = NodeRecord {
        advertise_url: "http://10.0.0.3:8080".into(),
        served: Some(vec![
            Partition::establishment("0750001A"),
            Partition::establishment("0690002B"),
        ]),
        started_at: t0 + s(40),
        heartbeat_at: t0 + s(40),
        ..a.clone()
    };
    nodes.register_node(&moved).await.unwrap();
    assert_eq!(
        nodes.live_nodes(t0 + s(35)).await.unwrap(),
        vec![moved.clone()]
    );

    // A clean stop removes it; a heartbeat then says so (register again).
    nodes.deregister_node(a.node_id).await.unwrap();
    assert!(nodes.live_nodes(t0 + s(35)).await.unwrap().is_empty());
    assert!(!nodes.heartbeat(a.node_id, t0 + s(50)).await.unwrap());
    assert_eq!(nodes.live_nodes(t0).await.unwrap(), vec![all]);
}

/// The one change the log accepts sets a missing partition and nothing else
/// (PostgreSQL only: the SQLite `tamper` drops the triggers it would test).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_assigning_a_partition_changes_nothing_else() {
    let db = Subject::postgres().await;
    db.store()
        .append(request("s", ExpectedVersion::Any, 1))
        .await
        .unwrap();
    db.tamper("UPDATE events SET partition = NULL").await;
    let err = db
        .exec("UPDATE events SET partition = '0750001A', data = '{}' WHERE position = 1")
        .await
        .expect_err("rewriting data with the partition");
    assert!(err.contains("append-only"), "{err}");
    db.exec("UPDATE events SET partition = '0750001A' WHERE position = 1")
        .await
        .expect("the backfill's update");
}

// ------------------------------------------------- backend-specific properties

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_migrations_apply_once() {
    let pg = TestDb::create().await;
    let url = pg.url.clone();
    let (a, b) = tokio::join!(
        registre_store::migrate_postgres(&url),
        registre_store::migrate_postgres(&url)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let all: Vec<u32> = registre_migrations::POSTGRES
        .iter()
        .map(|m| m.version)
        .collect();
    let mut applied = [a, b].concat();
    applied.sort_unstable();
    assert_eq!(applied, all, "each migration applied exactly once");
    let rows = pg_client(&url)
        .await
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| r.get::<_, i32>(0) as u32)
            .collect::<Vec<_>>(),
        all
    );
    assert!(registre_store::migrate_postgres(&url)
        .await
        .unwrap()
        .is_empty());
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_reopen_keeps_the_log_and_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = tokio::join!(SqliteStore::open(dir.path()), SqliteStore::open(dir.path()));
    let (a, b) = (a.unwrap(), b.unwrap());
    let outcome = a
        .append(request("s", ExpectedVersion::NoStream, 3))
        .await
        .unwrap();
    assert_eq!(b.read_all(0, 10).await.unwrap(), outcome.events);
    drop((a, b));
    let again = registre_store::open(None, dir.path()).await.unwrap();
    assert_eq!(again.head().await.unwrap(), 3);
    assert_eq!(*again.wakeups().borrow(), 3);
    let conn = rusqlite::Connection::open(dir.path().join("registre.db")).unwrap();
    let count: i64 = conn
        .query_row("SELECT count(*) FROM schema_migrations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count as usize, registre_migrations::SQLITE.len());
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_migrate_command_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    let all: Vec<u32> = registre_migrations::SQLITE
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(
        registre_store::migrate(None, dir.path()).await.unwrap(),
        all
    );
    assert!(registre_store::migrate(None, dir.path())
        .await
        .unwrap()
        .is_empty());
    let backend = registre_store::open_backend(None, dir.path())
        .await
        .unwrap();
    assert!(matches!(backend, registre_store::Backend::Sqlite(_)));
    assert_eq!(backend.store().head().await.unwrap(), 0);
}

/// The recorded checksums of every migration, in version order.
fn expected_checksums(set: &[registre_migrations::Migration]) -> Vec<(u32, String)> {
    set.iter()
        .map(|m| (m.version, registre_store::schema::checksum(m.sql)))
        .collect()
}

/// A changed migration is refused by name, with both checksums.
fn assert_refused(
    err: StoreError,
    file: &str,
    recorded: &str,
    set: &[registre_migrations::Migration],
) {
    let actual = registre_store::schema::checksum(set[2].sql);
    assert_eq!(
        err.to_string(),
        format!(
            "migration {file} was changed after it was applied: recorded sha256 {recorded}, \
             file sha256 {actual}; migrations are never edited once applied, add a new one"
        )
    );
    assert!(matches!(err, StoreError::MigrationChanged { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_migrations_are_checksummed() {
    let set = registre_migrations::POSTGRES;
    let pg = TestDb::create().await;
    let url = pg.url.clone();
    let recorded = |url: String| async move {
        pg_client(&url)
            .await
            .query(
                "SELECT version, sha256 FROM schema_migrations ORDER BY version",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, i32>(0) as u32, r.get::<_, Option<String>>(1)))
            .collect::<Vec<_>>()
    };
    let full: Vec<(u32, Option<String>)> = expected_checksums(set)
        .into_iter()
        .map(|(v, c)| (v, Some(c)))
        .collect();
    registre_store::migrate_postgres(&url).await.unwrap();
    assert_eq!(recorded(url.clone()).await, full);

    // A database migrated before checksums were recorded: the column is
    // added and filled in with the text this binary carries, nothing re-run.
    pg_client(&url)
        .await
        .batch_execute("ALTER TABLE schema_migrations DROP COLUMN sha256")
        .await
        .unwrap();
    assert!(registre_store::migrate_postgres(&url)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(recorded(url.clone()).await, full);

    let other = "ab".repeat(32);
    pg_client(&url)
        .await
        .execute(
            "UPDATE schema_migrations SET sha256 = $1 WHERE version = 3",
            &[&other],
        )
        .await
        .unwrap();
    let err = registre_store::migrate_postgres(&url).await.unwrap_err();
    assert_refused(err, "postgres/0003_access_log.sql", &other, set);
    let err = PostgresStore::connect(&url).await.unwrap_err();
    assert_refused(err, "postgres/0003_access_log.sql", &other, set);
    // The refusal changed nothing: the recorded checksum is kept as evidence.
    let after = recorded(url.clone()).await;
    assert_eq!(after[2].1.as_deref(), Some(other.as_str()));
    assert_eq!(after.len(), set.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_migrations_are_checksummed() {
    let set = registre_migrations::SQLITE;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registre.db");
    let recorded = |path: &std::path::Path| {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut stmt = conn
            .prepare("SELECT version, sha256 FROM schema_migrations ORDER BY version")
            .unwrap();
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, u32>(0)?, r.get::<_, Option<String>>(1)?))
            })
            .unwrap();
        rows.collect::<rusqlite::Result<Vec<_>>>().unwrap()
    };
    let full: Vec<(u32, Option<String>)> = expected_checksums(set)
        .into_iter()
        .map(|(v, c)| (v, Some(c)))
        .collect();
    registre_store::migrate(None, dir.path()).await.unwrap();
    assert_eq!(recorded(&path), full);

    // A file migrated before checksums were recorded: the table as it was.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("ALTER TABLE schema_migrations DROP COLUMN sha256")
            .unwrap();
    }
    let store = SqliteStore::open(dir.path()).await.unwrap();
    drop(store);
    assert_eq!(recorded(&path), full);

    let other = "cd".repeat(32);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE schema_migrations SET sha256 = ?1 WHERE version = 3",
            [&other],
        )
        .unwrap();
    }
    let err = SqliteStore::open(dir.path()).await.unwrap_err();
    assert_refused(err, "sqlite/0003_access_log.sql", &other, set);
    let err = registre_store::migrate(None, dir.path()).await.unwrap_err();
    assert_refused(err, "sqlite/0003_access_log.sql", &other, set);
    assert_eq!(recorded(&path)[2].1.as_deref(), Some(other.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_nodes_wake_each_other() {
    let db = Subject::postgres().await;
    let Raw::Postgres(pg) = &db.raw else {
        unreachable!()
    };
    let url = &pg.url;
    let other = registre_store::open(Some(url), std::path::Path::new("/nonexistent"))
        .await
        .unwrap();
    let mut wakeups = other.wakeups();
    let mut positions = Vec::new();
    for _ in 0..3 {
        let outcome = db
            .store()
            .append(request("s", ExpectedVersion::Any, 2))
            .await
            .unwrap();
        positions.push(outcome.last_position());
    }
    let target = *positions.last().unwrap();
    // Only a NOTIFY (or the head published after LISTEN) can raise the other
    // node's wake-up value: it made no append of its own.
    tokio::time::timeout(HANG_GUARD, wakeups.wait_for(|p| *p >= target))
        .await
        .expect("the other node heard the appends")
        .unwrap();
    let mut log = LogReader::new(other.clone(), 0);
    assert_eq!(follow_n(&mut log, 6).await, (1..=6).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_listener_reconnects_and_catches_up() {
    let db = Subject::postgres().await;
    let Raw::Postgres(pg) = &db.raw else {
        unreachable!()
    };
    let url = &pg.url;
    let other = PostgresStore::connect(url).await.unwrap();
    let mut wakeups = other.wakeups();
    let first = db
        .store()
        .append(request("s", ExpectedVersion::Any, 1))
        .await
        .unwrap()
        .last_position();
    // Heard: the other node's LISTEN connection is up.
    tokio::time::timeout(HANG_GUARD, wakeups.wait_for(|p| *p >= first))
        .await
        .expect("heard the first append")
        .unwrap();

    let terminated: i64 = pg_client(url)
        .await
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = $1) t",
            &[&registre_store::postgres::LISTENER_APPLICATION_NAME],
        )
        .await
        .unwrap()
        .get(0);
    // One per store: this test's two nodes.
    assert_eq!(terminated, 2);

    let second = db
        .store()
        .append(request("s", ExpectedVersion::Any, 3))
        .await
        .unwrap()
        .last_position();
    tokio::time::timeout(HANG_GUARD, wakeups.wait_for(|p| *p >= second))
        .await
        .expect("the other node reconnected and caught up")
        .unwrap();
}

/// Group commit: appends that arrive while a commit is in flight go out
/// together in the next one. The test holds the append lock itself so that
/// the first call is stuck until every append has been handed over; then
/// exactly one more call (one transaction, one WAL flush) carries the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_appends_share_one_commit() {
    const CALLERS: u64 = 32;
    let pg = TestDb::create().await;
    let url = pg.url.clone();
    let store = PostgresStore::connect(&url).await.unwrap();
    let blocker = pg_client(&url).await;
    blocker
        .execute(
            "SELECT pg_advisory_lock($1)",
            &[&registre_store::postgres::APPEND_LOCK],
        )
        .await
        .unwrap();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(request(&format!("g-{i}"), ExpectedVersion::NoStream, 1))
                    .await
            })
        })
        .collect();
    let observer = pg_client(&url).await;
    tokio::time::timeout(HANG_GUARD, async {
        loop {
            let waiting: i64 = observer
                .query_one(
                    // Only this test's database: other tests' stores wait on
                    // their own append locks on the same server.
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting >= 1 && store.append_stats().requests == CALLERS {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("every append reached the committer");
    blocker
        .execute(
            "SELECT pg_advisory_unlock($1)",
            &[&registre_store::postgres::APPEND_LOCK],
        )
        .await
        .unwrap();
    for t in tasks {
        tokio::time::timeout(HANG_GUARD, t)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    let stats = store.append_stats();
    assert_eq!(stats.requests, CALLERS);
    // The stuck call, then everyone else at once; or, when every append had
    // reached the committer before it took the first, all of them in the
    // stuck call. Never one call each.
    assert!(
        (1..=2).contains(&stats.calls),
        "{} calls for {CALLERS} appends: the waiting appends did not share a commit",
        stats.calls
    );
    assert_eq!(store.head().await.unwrap(), CALLERS);
    assert!(chain::verify_chain(store.as_ref(), |_| {})
        .await
        .unwrap()
        .is_intact());
}

// ---------------------------------------------------------------- outbox per partition

fn outbox_item(position: u64, partition: Option<&str>) -> OutboxItem {
    OutboxItem {
        position,
        person_id: Uuid::now_v7(),
        channel: "EMAIL".into(),
        kind: "ABSENCE".into(),
        about_id: Uuid::now_v7(),
        partition: partition.map(str::to_owned),
    }
}

fn cp_move(partition: &str, expected: u64, to: u64) -> CheckpointMove {
    CheckpointMove {
        partition: partition.into(),
        expected,
        to,
    }
}

/// Each partition's checkpoint is opened once (the first node's start is
/// kept), moved only from the position it holds, all of a page's moves and
/// rows together or none; two nodes racing on one page enqueue it once.
async fn outbox_checkpoints_move_per_partition_once(db: &Subject) {
    let outbox = db.store().communication().expect("an outbox");
    let (a, b, dir) = ("0750001A", "0690002B", "directory");
    assert_eq!(outbox.outbox_checkpoint().await.unwrap(), 0);
    assert!(outbox.partition_checkpoints().await.unwrap().is_empty());

    outbox
        .open_partitions(vec![(a.into(), 5), (dir.into(), 5)])
        .await
        .unwrap();
    // A second node starting later keeps the first one's.
    outbox
        .open_partitions(vec![(a.into(), 9), (b.into(), 9), (dir.into(), 9)])
        .await
        .unwrap();
    let opened = outbox.partition_checkpoints().await.unwrap();
    assert_eq!(
        opened.into_iter().collect::<Vec<_>>(),
        [(b.to_owned(), 9), (a.to_owned(), 5), (dir.to_owned(), 5)]
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .collect::<Vec<_>>()
    );

    let now = Utc::now();
    let first = vec![outbox_item(7, Some(a)), outbox_item(8, Some(dir))];
    assert!(outbox
        .enqueue(
            vec![cp_move(a, 5, 10), cp_move(dir, 5, 10)],
            first.clone(),
            now
        )
        .await
        .unwrap());
    // A stale expectation on one partition refuses the whole page: the
    // other partition's move and the rows are not written either.
    assert!(!outbox
        .enqueue(
            vec![cp_move(b, 9, 12), cp_move(a, 5, 12)],
            vec![outbox_item(11, Some(b)), outbox_item(12, Some(a))],
            now
        )
        .await
        .unwrap());
    // A partition without a checkpoint is not moved either.
    assert!(!outbox
        .enqueue(
            vec![cp_move("0130003C", 0, 12)],
            vec![outbox_item(12, Some("0130003C"))],
            now
        )
        .await
        .unwrap());
    let cps = outbox.partition_checkpoints().await.unwrap();
    assert_eq!((cps[a], cps[b], cps[dir]), (10, 9, 10));
    assert!(!cps.contains_key("0130003C"));
    let mut rows: Vec<OutboxItem> = outbox
        .outbox()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.item)
        .collect();
    rows.sort();
    let mut expected = first.clone();
    expected.sort();
    assert_eq!(rows, expected, "the refused pages wrote nothing");

    // Two nodes race on the same page of B: one enqueues it, the other
    // learns it lost and writes nothing.
    let page = vec![outbox_item(11, Some(b))];
    let (one, two) = tokio::join!(
        outbox.enqueue(vec![cp_move(b, 9, 12)], page.clone(), now),
        outbox.enqueue(vec![cp_move(b, 9, 12)], page.clone(), now),
    );
    assert_eq!(
        [one.unwrap(), two.unwrap()]
            .iter()
            .filter(|won| **won)
            .count(),
        1
    );
    assert_eq!(outbox.partition_checkpoints().await.unwrap()[b], 12);
    assert_eq!(outbox.outbox().await.unwrap().len(), 3);

    // A partition named twice is refused, nothing written.
    let twice = outbox
        .enqueue(
            vec![cp_move(a, 10, 13), cp_move(a, 10, 14)],
            vec![outbox_item(13, Some(a))],
            now,
        )
        .await;
    assert!(
        matches!(twice, Err(StoreError::InvalidAppend(_))),
        "{twice:?}"
    );
    assert_eq!(outbox.partition_checkpoints().await.unwrap()[a], 10);
}

/// A sender claims only the rows of the partitions it can compose; rows
/// from before partitions (none) go to a sender that composes everything.
async fn outbox_claims_only_the_partitions_asked(db: &Subject) {
    let outbox = db.store().communication().expect("an outbox");
    let (a, b, dir) = ("0750001A", "0690002B", "directory");
    outbox
        .open_partitions(vec![(a.into(), 0), (b.into(), 0), (dir.into(), 0)])
        .await
        .unwrap();
    let now = Utc::now();
    let rows = vec![
        outbox_item(1, Some(a)),
        outbox_item(2, Some(b)),
        outbox_item(3, Some(dir)),
        outbox_item(4, None),
    ];
    assert!(outbox
        .enqueue(
            vec![cp_move(a, 0, 4), cp_move(b, 0, 4), cp_move(dir, 0, 4)],
            rows,
            now
        )
        .await
        .unwrap());
    let lease = now + chrono::Duration::seconds(60);
    let set_a = [a.to_owned(), dir.to_owned()];
    let claimed = outbox.claim(now, lease, 10, Some(&set_a)).await.unwrap();
    assert_eq!(
        claimed.iter().map(|e| e.item.position).collect::<Vec<_>>(),
        [1, 3]
    );
    assert_eq!(claimed[0].item.partition.as_deref(), Some(a));
    let set_b = [b.to_owned()];
    let claimed = outbox.claim(now, lease, 10, Some(&set_b)).await.unwrap();
    assert_eq!(
        claimed.iter().map(|e| e.item.position).collect::<Vec<_>>(),
        [2]
    );
    // Nothing of the leased ones again; the row without a partition only
    // to a sender of everything.
    let none: [String; 0] = [];
    assert!(outbox
        .claim(now, lease, 10, Some(&none))
        .await
        .unwrap()
        .is_empty());
    let claimed = outbox.claim(now, lease, 10, None).await.unwrap();
    assert_eq!(
        claimed.iter().map(|e| e.item.position).collect::<Vec<_>>(),
        [4]
    );
    assert_eq!(claimed[0].item.partition, None);
}
