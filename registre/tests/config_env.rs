//! The `registre` binary reads its settings from its environment through
//! clap: a bad variable is refused before anything opens, with a message
//! naming it; an empty one counts as unset; a flag wins over its variable;
//! `serve --help` lists every setting with its variable and default, and
//! hides the values of the secrets.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

/// Runs `registre` with exactly `env` as its environment.
fn registre(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_registre"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run registre")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_bad_variable_is_refused_naming_it() {
    let o = registre(&["migrate"], &[("REGISTRE_MAX_IN_FLIGHT", "abc")]);
    let stderr = text(&o.stderr);
    // 2: clap's exit code for a usage error.
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            r#"REGISTRE_MAX_IN_FLIGHT (--max-in-flight): expected a non-negative whole number (got "abc")"#
        ),
        "{stderr}"
    );

    // Settings that depend on each other are checked before the store opens.
    let o = registre(
        &["migrate"],
        &[
            ("REGISTRE_MAX_IN_FLIGHT", "4"),
            ("REGISTRE_MUTATION_RESERVED", "4"),
        ],
    );
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "configuration: REGISTRE_MUTATION_RESERVED: must be less than REGISTRE_MAX_IN_FLIGHT"
        ),
        "{stderr}"
    );

    let o = registre(
        &["migrate"],
        &[("DATABASE_URL", "mysql://registre:secret@db/registre")],
    );
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("DATABASE_URL") && !stderr.contains("secret"),
        "{stderr}"
    );
}

#[test]
fn empty_variables_count_as_unset_and_flags_win_over_variables() {
    let dir = std::env::temp_dir().join(format!("registre-config-{}", uuid::Uuid::new_v4()));
    let data_dir = dir.to_str().unwrap();
    // 4 places with 4 reserved for mutations would be refused: the flag's 8
    // places are the ones taken.
    let o = registre(
        &["migrate", "--max-in-flight", "8"],
        &[
            ("DATABASE_URL", ""),
            ("REGISTRE_JWKS", " "),
            ("REGISTRE_MAX_BATCH", ""),
            ("REGISTRE_MAX_IN_FLIGHT", "4"),
            ("REGISTRE_MUTATION_RESERVED", "4"),
            ("REGISTRE_DATA_DIR", data_dir),
            ("REGISTRE_LOG", "warn"),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(o.status.success(), "{}", text(&o.stderr));
    // The empty DATABASE_URL left the embedded store in REGISTRE_DATA_DIR.
    assert!(
        text(&o.stdout).contains("the log holds 0 events"),
        "{}",
        text(&o.stdout)
    );
}

#[test]
fn serve_help_lists_the_settings_and_hides_the_secrets() {
    let o = registre(
        &["serve", "--help"],
        &[
            ("DATABASE_URL", "postgres://registre:secret@db/registre"),
            (
                "REGISTRE_PSEUDONYM_KEY",
                "secret-secret-secret-secret-secret",
            ),
            ("REGISTRE_MAX_BATCH", "7"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let help = text(&o.stdout);
    for expected in [
        "--max-batch <N>",
        "[env: REGISTRE_MAX_BATCH=7]",
        "[default: 10]",
        "--retention-account-days <DAYS>",
        "[env: REGISTRE_RETENTION_ACCOUNT_DAYS=]",
        "[default: 90]",
        "[env: DATABASE_URL]",
        "[env: REGISTRE_PSEUDONYM_KEY]",
    ] {
        assert!(help.contains(expected), "no {expected:?} in\n{help}");
    }
    assert!(!help.contains("secret"), "{help}");
}
