//! Registre's SQL schema as numbered, commented migrations, embedded in the
//! binary so that `registre migrate` needs no files beside it. A migration is
//! never edited once applied: a change is a new file.

/// One migration: applied in `version` order, once.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const POSTGRES: &[Migration] = &[];
pub const SQLITE: &[Migration] = &[];
