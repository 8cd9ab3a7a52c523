//! The node's log follower on the real stores (SQLite and PostgreSQL): every
//! consumer gets every event once and in order across pages, whether it
//! follows from the start or registers late; each event is decoded once
//! whatever the number of consumers; a failing consumer keeps its position,
//! holds back the consumers registered after it, and gets the rest when it
//! is retried; an event that does not decode stops them all before it.
#![allow(clippy::unwrap_used)]

mod common;

use async_trait::async_trait;
use common::{append_lines, TestStore};
use parking_lot::Mutex;
use registre_projections::{
    LogConsumer, LogFollower, Page, ProjectionEngine, ProjectionError, ReadModel,
};
use registre_replay_tests::{golden_dir, read_golden, GoldenLine};
use registre_store::{Position, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Bounds every wait so that a broken follower fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(20);

/// Pages of 7: the golden school (83 events) spans twelve of them.
const PAGE: usize = 7;

/// A consumer that writes down every position it is handed.
struct Recorder {
    name: &'static str,
    seen: Mutex<Vec<Position>>,
    position: watch::Sender<Position>,
    /// Fails once on the page holding this position, after consuming the
    /// events before it.
    fail_at: Mutex<Option<Position>>,
}

impl Recorder {
    fn new(name: &'static str, after: Position) -> Arc<Self> {
        Arc::new(Self {
            name,
            seen: Mutex::new(Vec::new()),
            position: watch::channel(after).0,
            fail_at: Mutex::new(None),
        })
    }

    fn seen(&self) -> Vec<Position> {
        self.seen.lock().clone()
    }

    async fn reached(&self, position: Position) {
        let mut rx = self.position.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|p| *p >= position))
            .await
            .unwrap_or_else(|_| panic!("{} did not reach {position}", self.name))
            .unwrap();
    }
}

#[async_trait]
impl LogConsumer for Recorder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn position(&self) -> Position {
        *self.position.borrow()
    }

    async fn consume(&self, page: Page<'_>) -> Result<(), ProjectionError> {
        let fail_at = *self.fail_at.lock();
        for e in page.events {
            assert!(
                e.position > self.position(),
                "{} was handed {} again",
                self.name,
                e.position
            );
            if Some(e.position) == fail_at {
                *self.fail_at.lock() = None;
                return Err(StoreError::Backend("injected failure".into()).into());
            }
            self.seen.lock().push(e.position);
            self.position.send_replace(e.position);
        }
        Ok(())
    }
}

fn school() -> Vec<GoldenLine> {
    read_golden(&golden_dir().join("school.jsonl")).unwrap()
}

fn upto(n: usize) -> Vec<Position> {
    (1..=n as Position).collect()
}

async fn consumers_get_every_event_once_in_order(test: TestStore) {
    let store = Arc::clone(&test.store);
    let lines = school();
    append_lines(store.as_ref(), &lines[..30]).await;
    let follower = LogFollower::new(Arc::clone(&store), PAGE, WAIT);
    let first = Recorder::new("first", 0);
    let second = Recorder::new("second", 0);
    let third = Recorder::new("third", 0);
    for c in [&first, &second, &third] {
        follower.register(c.clone());
    }
    follower.start();
    // The rest arrives while it follows: it must hear of it by its wake-ups
    // (the poll is as long as the test's patience).
    append_lines(store.as_ref(), &lines[30..]).await;
    let head = lines.len();
    for c in [&first, &second, &third] {
        c.reached(head as Position).await;
        assert_eq!(c.seen(), upto(head), "{}", c.name);
    }
    // One decode per event, not one per consumer.
    assert_eq!(follower.decoded(), head as u64);
    let status = follower.status();
    let names: Vec<_> = status.iter().map(|s| (s.name, s.position, s.lag)).collect();
    assert_eq!(
        names,
        [
            ("first", head as Position, 0),
            ("second", head as Position, 0),
            ("third", head as Position, 0)
        ]
    );

    // Late consumers start from their own position; the others get nothing twice.
    let late = Recorder::new("late", 40);
    let from_zero = Recorder::new("from_zero", 0);
    follower.register(late.clone());
    follower.register(from_zero.clone());
    late.reached(head as Position).await;
    from_zero.reached(head as Position).await;
    assert_eq!(late.seen(), (41..=head as Position).collect::<Vec<_>>());
    assert_eq!(from_zero.seen(), upto(head));
    for c in [&first, &second, &third] {
        assert_eq!(c.seen(), upto(head), "{}", c.name);
    }
    follower.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_get_every_event_once_in_order_on_sqlite() {
    consumers_get_every_event_once_in_order(common::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_get_every_event_once_in_order_on_postgres() {
    consumers_get_every_event_once_in_order(common::postgres().await).await;
}

async fn a_failing_consumer_is_retried_and_holds_back_those_after_it(test: TestStore) {
    let store = Arc::clone(&test.store);
    let lines = school();
    append_lines(store.as_ref(), &lines).await;
    let head = lines.len();
    let follower = LogFollower::new(Arc::clone(&store), PAGE, WAIT);
    let before = Recorder::new("before", 0);
    let failing = Recorder::new("failing", 0);
    let after = Recorder::new("after", 0);
    *failing.fail_at.lock() = Some(10);
    for c in [&before, &failing, &after] {
        follower.register(c.clone());
    }
    let err = follower.catch_up().await.unwrap_err();
    assert!(
        matches!(
            err,
            ProjectionError::Consumer {
                name: "failing",
                ..
            }
        ),
        "{err}"
    );
    // It kept what it consumed; the one after it went no further.
    assert_eq!((failing.position(), after.position()), (9, 9));
    assert_eq!(before.position(), 14);
    let status = follower.status();
    assert!(status[1].stalled.is_some());
    assert!(status[0].stalled.is_none() && status[2].stalled.is_none());

    follower.catch_up().await.unwrap();
    for c in [&before, &failing, &after] {
        assert_eq!(c.seen(), upto(head), "{}", c.name);
    }
    assert!(follower.status().iter().all(|s| s.stalled.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_consumer_is_retried_on_sqlite() {
    a_failing_consumer_is_retried_and_holds_back_those_after_it(common::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_consumer_is_retried_on_postgres() {
    a_failing_consumer_is_retried_and_holds_back_those_after_it(common::postgres().await).await;
}

/// The read model is one consumer among others: it and a consumer
/// registered before it see the same events, decoded once, and an event
/// that does not decode stops both before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_event_stops_every_consumer_before_it() {
    let test = common::sqlite().await;
    let store = Arc::clone(&test.store);
    let mut lines = school();
    lines.truncate(20);
    // Written by a newer build (a rolling upgrade): no consumer may skip it.
    lines[15].schema_version += 1;
    append_lines(store.as_ref(), &lines).await;
    let follower = LogFollower::new(Arc::clone(&store), PAGE, WAIT);
    let before = Recorder::new("before", 0);
    follower.register(before.clone());
    let engine = ProjectionEngine::open_on(Arc::clone(&follower), Default::default())
        .await
        .unwrap();
    let err = engine.catch_up().await.unwrap_err();
    assert!(matches!(err, ProjectionError::Apply(_)), "{err}");
    assert_eq!((before.position(), engine.position()), (15, 15));
    assert_eq!(follower.decoded(), 15);
    let status = follower.status();
    assert_eq!(status[1].name, ReadModel::NAME);
    assert!(status.iter().all(|s| s.stalled.is_some()));
    assert!(engine.metrics().stalled.is_some());
}
