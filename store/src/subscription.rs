//! Catch-up subscription: the log's history from a position, then its live
//! tail, each event once and in position order.
//!
//! Followers (projections, notifications) resume from their checkpoint: the
//! stream reads pages with `read_all`, and when it has caught up waits on the
//! store's wake-ups, with a slow poll as a safety net for a lost notification.
//! Because positions are gap-free and allocated in commit order, reading from
//! the last position seen can neither skip nor repeat an event; a gap would
//! mean a broken log and ends the stream with [`StoreError::Corrupt`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::watch;

use crate::{EventStore, Position, RecordedEvent, Result, StoreError};

/// Events read per page while catching up.
pub const PAGE: usize = 500;
/// How long a caught-up subscription waits for a wake-up before reading anyway.
pub const FALLBACK_POLL: Duration = Duration::from_secs(1);

struct State {
    store: Arc<dyn EventStore>,
    after: Position,
    buffer: VecDeque<RecordedEvent>,
    wakeups: watch::Receiver<Position>,
    wakeups_closed: bool,
    done: bool,
}

/// Every event with position > `after`, then the live ones as they commit.
/// The stream ends after yielding its first error: resubscribe from the last
/// position processed.
pub fn subscribe(
    store: Arc<dyn EventStore>,
    after: Position,
) -> impl Stream<Item = Result<RecordedEvent>> + Send {
    let wakeups = store.wakeups();
    let state = State {
        store,
        after,
        buffer: VecDeque::new(),
        wakeups,
        wakeups_closed: false,
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.done {
                return None;
            }
            if let Some(event) = s.buffer.pop_front() {
                if event.position != s.after + 1 {
                    s.done = true;
                    let err = StoreError::Corrupt(format!(
                        "log gap: expected position {}, read {}",
                        s.after + 1,
                        event.position
                    ));
                    return Some((Err(err), s));
                }
                s.after = event.position;
                return Some((Ok(event), s));
            }
            match s.store.read_all(s.after, PAGE).await {
                Err(e) => {
                    s.done = true;
                    return Some((Err(e), s));
                }
                Ok(page) if !page.is_empty() => s.buffer.extend(page),
                Ok(_) => wait(&mut s).await,
            }
        }
    })
}

async fn wait(s: &mut State) {
    let after = s.after;
    if s.wakeups_closed {
        tokio::time::sleep(FALLBACK_POLL).await;
        return;
    }
    tokio::select! {
        changed = s.wakeups.wait_for(|head| *head > after) => {
            if changed.is_err() {
                s.wakeups_closed = true;
            }
        }
        () = tokio::time::sleep(FALLBACK_POLL) => {}
    }
}
