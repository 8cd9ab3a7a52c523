//! Real stores for the backend tests: SQLite in a temporary directory, and
//! PostgreSQL in a fresh `registre_test_<uuid>` database created at
//! REGISTRE_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)
//! and dropped afterwards.
#![allow(dead_code, clippy::unwrap_used)]

use registre_domain::DomainEvent;
use registre_projections::Partitioner;
use registre_replay_tests::GoldenLine;
use registre_store::{AppendRequest, EventStore};
use std::sync::Arc;
use uuid::Uuid;

/// A store and what must outlive it (the directory, the database).
pub struct TestStore {
    pub store: Arc<dyn EventStore>,
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDb>,
}

impl TestStore {
    /// The PostgreSQL database's URL, for raw SQL beside the store.
    pub fn url(&self) -> &str {
        self._db.as_ref().map(|db| db.url.as_str()).unwrap_or("")
    }
}

pub async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = registre_store::open(None, dir.path())
        .await
        .expect("the SQLite store opens");
    TestStore {
        store,
        _dir: Some(dir),
        _db: None,
    }
}

pub async fn postgres() -> TestStore {
    let db = TestDb::create().await;
    let store = registre_store::open(Some(&db.url), std::path::Path::new("."))
        .await
        .expect("the PostgreSQL store opens");
    TestStore {
        store,
        _dir: None,
        _db: Some(db),
    }
}

/// Appends requests with fresh event ids (the golden ids are per file, and a
/// store holds several generated logs in these tests).
pub fn fresh_ids(mut requests: Vec<AppendRequest>) -> Vec<AppendRequest> {
    for r in &mut requests {
        for e in &mut r.events {
            e.event_id = Uuid::now_v7();
        }
    }
    requests
}

pub async fn append_lines(store: &dyn EventStore, lines: &[GoldenLine]) {
    let mut partitions = partitioner_of(store).await;
    let appends = registre_replay_tests::to_appends_after(&mut partitions, lines);
    store
        .append_batch(fresh_ids(appends))
        .await
        .expect("the log appends");
}

/// A partitioner that has seen the store's log: new lines' streams get the
/// partitions the executor would give them after it.
pub async fn partitioner_of(store: &dyn EventStore) -> Partitioner {
    let mut partitions = Partitioner::new();
    for e in store.read_all(0, 10_000_000).await.expect("the log reads") {
        if let Some(p) = &e.partition {
            partitions.known(&e.stream_id, p.clone());
        }
        if let Ok(event) = DomainEvent::decode(&e.event_type, e.schema_version, &e.data) {
            partitions.assign(&e.stream_id, &event);
        }
    }
    partitions
}

pub use registre_store::testing::TestDb;
