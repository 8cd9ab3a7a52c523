//! The exported schema (docs/schema.graphql) is the code's schema, and it keeps
//! the public contract (checked by ../shared/tools/contract-check).
//! Regenerate the file with `REGISTRE_UPDATE_SCHEMA=1 cargo test -p registre --test graphql_schema`.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the api crate sits in the repository")
        .to_path_buf()
}

#[test]
fn exported_schema_matches_the_code() {
    let path = repo().join("docs/schema.graphql");
    let sdl = registre_api::graphql::sdl();
    if std::env::var_os("REGISTRE_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &sdl).expect("write docs/schema.graphql");
    }
    let on_disk = std::fs::read_to_string(&path).expect("docs/schema.graphql exists");
    assert!(
        on_disk == sdl,
        "docs/schema.graphql drifted from the code; regenerate it with REGISTRE_UPDATE_SCHEMA=1"
    );
}

#[test]
fn exported_schema_keeps_the_contract() {
    let tool = std::env::var_os("REGISTRE_CONTRACT_CHECK")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/tools/contract-check"));
    assert!(
        tool.exists(),
        "contract-check not found at {}",
        tool.display()
    );
    let out = Command::new(&tool)
        .arg(repo().join("docs/schema.graphql"))
        .output()
        .expect("run contract-check");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the schema breaks the contract:\n{report}"
    );
    assert!(
        report.contains("0 breaks"),
        "unexpected contract-check report:\n{report}"
    );
}

/// `contract-check` of the exported schema against one part of the contract
/// (`../shared/contracts/<part>.graphql`): every member it names exists.
fn assert_keeps_contract_part(part: &str) {
    let tool = std::env::var_os("REGISTRE_CONTRACT_CHECK")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/tools/contract-check"));
    let file = repo().join(format!("../shared/contracts/{part}.graphql"));
    assert!(
        file.exists(),
        "contract part not found at {}",
        file.display()
    );
    let out = Command::new(&tool)
        .arg(repo().join("docs/schema.graphql"))
        .arg(&file)
        .output()
        .expect("run contract-check");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.contains("0 breaks"),
        "the schema breaks the {part} contract part:\n{report}"
    );
}

/// The ENT usage indicators.
#[test]
fn exported_schema_keeps_the_usage_contract_part() {
    assert_keeps_contract_part("usage");
}

/// Issue 13: timetable, roll call, motives, cahier de textes.
#[test]
fn exported_schema_keeps_the_school_day_contract_part() {
    assert_keeps_contract_part("school-day");
}

/// Issue 15: incidents, punishments and sanctions.
#[test]
fn exported_schema_keeps_the_discipline_contract_part() {
    assert_keeps_contract_part("discipline");
}

/// Issue 14: periods, gradebook, report cards.
#[test]
fn exported_schema_keeps_the_evaluation_contract_part() {
    assert_keeps_contract_part("evaluation");
}

/// Issue 16: group messages, receipts, attachments, notifications.
#[test]
fn exported_schema_keeps_the_communication_contract_part() {
    assert_keeps_contract_part("communication");
}
