//! Writes `golden/school_day.jsonl` from `src/school_day.rs` (issue 13). Run
//! it only to change the golden week on purpose, then review the snapshot
//! diffs it causes.

fn main() -> std::io::Result<()> {
    let path = registre_replay_tests::golden_dir().join("school_day.jsonl");
    let lines = registre_replay_tests::school_day::school_day_log();
    std::fs::write(&path, registre_replay_tests::to_jsonl(&lines))?;
    println!("{} events written to {}", lines.len(), path.display());
    Ok(())
}
