//! Writes `golden/school.jsonl` from `src/school.rs`. Run it only to change the
//! golden log on purpose, then review the snapshot diffs it causes.

fn main() -> std::io::Result<()> {
    let path = registre_replay_tests::golden_dir().join("school.jsonl");
    let lines = registre_replay_tests::school::school_log();
    std::fs::write(&path, registre_replay_tests::to_jsonl(&lines))?;
    println!("{} events written to {}", lines.len(), path.display());
    // The same school, then the end of its second trimestre (issue 14).
    let path = registre_replay_tests::golden_dir().join("term.jsonl");
    let lines = registre_replay_tests::term::term_log();
    std::fs::write(&path, registre_replay_tests::to_jsonl(&lines))?;
    println!("{} events written to {}", lines.len(), path.display());
    Ok(())
}
