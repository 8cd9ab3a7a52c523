//! The shape every aggregate shares: a compact decision state folded from its
//! own stream's events.
//!
//! The state holds only what decisions need (not what views show), so that it
//! stays small, is cheap to snapshot, and deciding a command never replays
//! more than one small stream. Decisions themselves are free functions in each
//! aggregate module: `fn(&State, &Command, &Facts) -> Result<Vec<DomainEvent>,
//! DomainError>`, where the facts are what the caller looked up beforehand in
//! the read model (another aggregate's existence, the establishment's `today`).

use crate::events::DomainEvent;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;

pub trait Aggregate: Default + Clone + Debug + Serialize + DeserializeOwned {
    /// Folds one event of this aggregate's stream. Events of other streams are
    /// ignored, so that folding a mixed sequence is harmless; folding never
    /// fails, because the log holds facts that were already decided.
    fn apply(&mut self, event: &DomainEvent);

    /// The stream version this state reflects: the number of this stream's
    /// events folded so far (0: the stream does not exist). The caller appends
    /// with `ExpectedVersion::NoStream` when it is 0 and `Exact(version)` otherwise.
    fn version(&self) -> u64;

    /// The state after `events`, from scratch.
    fn fold<'a>(events: impl IntoIterator<Item = &'a DomainEvent>) -> Self {
        let mut state = Self::default();
        for e in events {
            state.apply(e);
        }
        state
    }
}
