//! The incremental-equals-rebuild property, in memory: a model fed a random
//! valid log in random batch sizes, with snapshot/restore restarts and
//! re-delivered events in between, equals the model folded in one go.
//! (`backends.rs` checks the same through the SQLite and PostgreSQL stores.)

use proptest::prelude::*;
use registre_projections::ReadModel;
use registre_replay_tests::random::{events_from_ops, ops};
use registre_replay_tests::to_recorded;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn incremental_with_restarts_equals_rebuild(
        ops in ops(200),
        batches in proptest::collection::vec(1usize..25, 1..10),
        restarts in proptest::collection::vec(any::<bool>(), 1..10),
        redeliver in proptest::collection::vec(0usize..4, 1..10),
    ) {
        let events = to_recorded(&events_from_ops(&ops));
        let mut whole = ReadModel::new();
        whole.apply_all(&events).map_err(|e| TestCaseError::fail(e.to_string()))?;

        let mut incremental = ReadModel::new();
        let (mut start, mut k) = (0, 0);
        while start < events.len() {
            let end = (start + batches[k % batches.len()]).min(events.len());
            // Re-delivering a few already applied events must change nothing.
            let from = start.saturating_sub(redeliver[k % redeliver.len()]);
            incremental
                .apply_all(&events[from..end])
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            if restarts[k % restarts.len()] {
                let bytes = incremental.to_snapshot().map_err(|e| TestCaseError::fail(e.to_string()))?;
                incremental = ReadModel::from_snapshot(&bytes)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            start = end;
            k += 1;
        }
        prop_assert_eq!(incremental.position(), events.len() as u64);
        prop_assert_eq!(&incremental, &whole);
        // The snapshot form is canonical too (what a restart would load).
        prop_assert_eq!(incremental.to_snapshot().ok(), whole.to_snapshot().ok());
    }
}

/// The generator must reach every event type, or the property says little.
#[test]
fn the_generator_reaches_every_event_type() {
    let mut ops = vec![];
    for round in 0..12u16 {
        for kind in 0..21u8 {
            ops.push((kind, round, round.wrapping_mul(3), round.wrapping_mul(5)));
        }
    }
    let lines = events_from_ops(&ops);
    let types: std::collections::BTreeSet<&str> =
        lines.iter().map(|l| l.event_type.as_str()).collect();
    assert_eq!(types.len(), 20, "{types:?}");
}
