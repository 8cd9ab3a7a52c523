//! Measures the in-memory fold rate and the snapshot round trip on a large
//! random valid log: `cargo run --release -p registre-replay-tests --example fold_rate [OPS]`.

use registre_projections::ReadModel;
use registre_replay_tests::random::events_from_ops;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    // A fixed linear congruential sequence: the same log on every run.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (x >> 33) as u16
    };
    let ops: Vec<_> = (0..n)
        .map(|_| ((next() % 21) as u8, next(), next(), next()))
        .collect();
    let events = registre_replay_tests::to_recorded(&events_from_ops(&ops));
    let started = Instant::now();
    let mut model = ReadModel::new();
    model.apply_all(&events)?;
    let fold = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let bytes = model.to_snapshot()?;
    let save = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let restored = ReadModel::from_snapshot(&bytes)?;
    let load = started.elapsed().as_secs_f64();
    assert!(
        restored == model,
        "the snapshot round trip changed the model"
    );
    let json = model.to_json()?.len();
    println!(
        "{} events folded in {fold:.3}s: {:.0} events/s; snapshot {} KiB (JSON {} KiB, zstd), \
         serialise {save:.3}s, restore {load:.3}s",
        events.len(),
        events.len() as f64 / fold,
        bytes.len() / 1024,
        json / 1024
    );
    Ok(())
}
