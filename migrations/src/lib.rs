//! Registre's SQL schema as numbered, commented migrations, embedded in the
//! binary so that `registre migrate` needs no files beside it. A migration is
//! never edited once applied: a change is a new file. The runner lives in
//! `registre-store` (it needs the database drivers); this crate only holds the
//! text, so that tools can list or print the schema without a database.

/// One migration: applied in `version` order, once.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

impl Migration {
    /// The file it was read from, inside `postgres/` or `sqlite/`: what an
    /// operator is told about.
    pub fn file_name(&self) -> String {
        format!("{:04}_{}.sql", self.version, self.name)
    }
}

/// PostgreSQL migrations, in version order.
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "event_log",
        sql: include_str!("../postgres/0001_event_log.sql"),
    },
    Migration {
        version: 2,
        name: "snapshots",
        sql: include_str!("../postgres/0002_snapshots.sql"),
    },
    Migration {
        version: 3,
        name: "access_log",
        sql: include_str!("../postgres/0003_access_log.sql"),
    },
    Migration {
        version: 4,
        name: "subject_keys",
        sql: include_str!("../postgres/0004_subject_keys.sql"),
    },
    Migration {
        version: 5,
        name: "append_function",
        sql: include_str!("../postgres/0005_append_function.sql"),
    },
    Migration {
        version: 6,
        name: "usage_projection",
        sql: include_str!("../postgres/0006_usage_projection.sql"),
    },
    Migration {
        version: 7,
        name: "partitions",
        sql: include_str!("../postgres/0007_partitions.sql"),
    },
    // communication (issue 16)
    Migration {
        version: 8,
        name: "communication",
        sql: include_str!("../postgres/0008_communication.sql"),
    },
    // cluster (issue 12)
    Migration {
        version: 9,
        name: "nodes",
        sql: include_str!("../postgres/0009_nodes.sql"),
    },
    // append units (issue 13): roll calls inside the group commit
    Migration {
        version: 10,
        name: "append_units",
        sql: include_str!("../postgres/0010_append_units.sql"),
    },
    // notification outbox per partition (issue 12 follow-up)
    Migration {
        version: 11,
        name: "outbox_partitions",
        sql: include_str!("../postgres/0011_outbox_partitions.sql"),
    },
];

/// SQLite migrations, in version order; the same versions as [`POSTGRES`].
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "event_log",
        sql: include_str!("../sqlite/0001_event_log.sql"),
    },
    Migration {
        version: 2,
        name: "snapshots",
        sql: include_str!("../sqlite/0002_snapshots.sql"),
    },
    Migration {
        version: 3,
        name: "access_log",
        sql: include_str!("../sqlite/0003_access_log.sql"),
    },
    Migration {
        version: 4,
        name: "subject_keys",
        sql: include_str!("../sqlite/0004_subject_keys.sql"),
    },
    Migration {
        version: 5,
        name: "append_function",
        sql: include_str!("../sqlite/0005_append_function.sql"),
    },
    Migration {
        version: 6,
        name: "usage_projection",
        sql: include_str!("../sqlite/0006_usage_projection.sql"),
    },
    Migration {
        version: 7,
        name: "partitions",
        sql: include_str!("../sqlite/0007_partitions.sql"),
    },
    // communication (issue 16)
    Migration {
        version: 8,
        name: "communication",
        sql: include_str!("../sqlite/0008_communication.sql"),
    },
    // cluster (issue 12)
    Migration {
        version: 9,
        name: "nodes",
        sql: include_str!("../sqlite/0009_nodes.sql"),
    },
    // append units (issue 13): roll calls inside the group commit
    Migration {
        version: 10,
        name: "append_units",
        sql: include_str!("../sqlite/0010_append_units.sql"),
    },
    // notification outbox per partition (issue 12 follow-up)
    Migration {
        version: 11,
        name: "outbox_partitions",
        sql: include_str!("../sqlite/0011_outbox_partitions.sql"),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_increasing_and_match_across_backends() {
        for set in [POSTGRES, SQLITE] {
            for (i, m) in set.iter().enumerate() {
                assert_eq!(m.version as usize, i + 1, "{} is out of order", m.name);
                assert!(!m.sql.trim().is_empty(), "{} is empty", m.name);
            }
        }
        let pg: Vec<_> = POSTGRES.iter().map(|m| (m.version, m.name)).collect();
        let lite: Vec<_> = SQLITE.iter().map(|m| (m.version, m.name)).collect();
        assert_eq!(pg, lite);
    }

    #[test]
    fn file_names_are_the_embedded_files() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/");
        for (backend, set) in [("postgres", POSTGRES), ("sqlite", SQLITE)] {
            for m in set {
                let path = format!("{dir}{backend}/{}", m.file_name());
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                assert_eq!(text, m.sql, "{path} is not the text embedded as {}", m.name);
            }
        }
    }
}
