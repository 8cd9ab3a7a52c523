//! Bookkeeping of applied migrations, shared by both runners
//! ([`crate::migrate_postgres`], [`crate::migrate_sqlite`]).
//!
//! Each applied migration is recorded in `schema_migrations` with the SHA-256
//! of its file text. A migration is never edited once applied (a database
//! migrated by the old text would differ from one migrated by the new text,
//! silently), so a node whose binary carries a different text for an applied
//! version refuses to start. Databases migrated before checksums were recorded
//! (the column is empty) get the checksum of the text this binary carries on
//! their first start: from then on it is enforced.

use registre_migrations::Migration;
use sha2::{Digest, Sha256};

use crate::{Result, StoreError};

/// Hex SHA-256 of a migration's file text.
pub fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// A row of `schema_migrations`: version and recorded checksum, if any.
pub(crate) type Applied = (u32, Option<String>);

/// Checks the recorded checksums of applied migrations against `set`, and
/// returns the applied migrations that have none recorded yet (to backfill).
/// Versions this binary does not know are left to the caller (a newer binary
/// applied them; this one warns and goes on).
pub(crate) fn verify<'a>(
    backend: &str,
    set: &'a [Migration],
    applied: &[Applied],
) -> Result<Vec<&'a Migration>> {
    let mut backfill = Vec::new();
    for (version, recorded) in applied {
        let Some(m) = set.iter().find(|m| m.version == *version) else {
            continue;
        };
        let actual = checksum(m.sql);
        match recorded {
            None => backfill.push(m),
            Some(r) if *r == actual => {}
            Some(r) => {
                return Err(StoreError::MigrationChanged {
                    file: format!("{backend}/{}", m.file_name()),
                    recorded: r.clone(),
                    actual,
                })
            }
        }
    }
    Ok(backfill)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_sha256_of_the_text() {
        assert_eq!(
            checksum(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn verify_backfills_missing_and_refuses_changed() {
        let set = registre_migrations::SQLITE;
        let good = checksum(set[0].sql);
        let backfill = verify("sqlite", set, &[(1, Some(good.clone())), (2, None)])
            .expect("unchanged files verify");
        assert_eq!(backfill.iter().map(|m| m.version).collect::<Vec<_>>(), [2]);
        // A version this binary does not know is not its to judge.
        assert!(verify("sqlite", set, &[(99, Some("x".into()))])
            .expect("unknown versions pass")
            .is_empty());
        let err = verify("sqlite", set, &[(1, Some(good)), (3, Some("0".repeat(64)))])
            .expect_err("a changed file is refused");
        let text = err.to_string();
        assert!(
            text.starts_with("migration sqlite/0003_access_log.sql was changed after it was applied: recorded sha256 0000"),
            "{text}"
        );
        assert!(text.contains(&format!("file sha256 {}", checksum(set[2].sql))));
        assert!(text.ends_with("migrations are never edited once applied, add a new one"));
    }
}
