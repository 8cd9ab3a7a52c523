//! End-to-end: the demo collège seeded into a real PostgreSQL database is
//! complete, is not seeded twice, never mixes with other data, and its
//! accounts work through the API.

#![allow(clippy::unwrap_used)]

mod support;

use registre::demo;
use serde_json::json;
use support::*;

#[tokio::test]
async fn the_demo_seeds_once_and_its_accounts_work() {
    let db = TestDb::create().await;
    let idp = Idp::new();
    let config = idp.config(&db, &[]);
    let store = registre::node::open_store(&config).await.unwrap();

    let first = demo::seed(store.as_ref(), 2026, false).await.unwrap();
    assert!(first.seeded);
    assert!(first.events > 20_000, "{} events", first.events);
    assert_eq!(store.head().await.unwrap(), first.events);

    let again = demo::seed(store.as_ref(), 2026, false).await.unwrap();
    assert!(!again.seeded, "a second run does not duplicate");
    assert_eq!(store.head().await.unwrap(), first.events);
    assert_eq!(again.accounts, first.accounts);

    let other = demo::seed(store.as_ref(), 7, false).await;
    assert!(other.is_err(), "another collège is not mixed into this log");
    assert_eq!(store.head().await.unwrap(), first.events);

    let node = Node::start(&config).await;
    // A cold start folds the demo's 23,000 events before it answers.
    node.wait_ready().await;
    let account = |role: &str| {
        first
            .accounts
            .iter()
            .find(|a| a.role == role)
            .unwrap_or_else(|| panic!("a {role} account"))
            .subject
            .clone()
    };
    let guardian = idp.token(&account("GUARDIAN"));
    let children = node
        .graphql(
            Some(&guardian),
            "{ myChildren { id schoolClass { name } grades { score status } absences { id } punishments { kind reason } } }",
            json!({}),
        )
        .await;
    let list = children["data"]["myChildren"]
        .as_array()
        .unwrap_or_else(|| panic!("{children}"));
    assert_eq!(list.len(), 2, "the demo guardian has two children");
    for child in list {
        assert!(!child["grades"].as_array().unwrap().is_empty(), "{child}");
        // Three or more recorded; cancelled ones are not shown.
        assert!(!child["absences"].as_array().unwrap().is_empty(), "{child}");
    }
    // Discipline (issue 15): the demo family sees a punishment at once.
    assert!(
        list.iter()
            .any(|c| !c["punishments"].as_array().unwrap().is_empty()),
        "{children}"
    );
    for (role, expected) in [
        ("STUDENT", "STUDENT"),
        ("TEACHER", "TEACHER"),
        ("EDUCATION_STAFF", "EDUCATION_STAFF"),
        ("HEAD", "HEAD"),
        ("AUDITOR", "AUDITOR"),
        ("ADMIN", "ADMIN"),
    ] {
        let me = node
            .graphql(
                Some(&idp.token(&account(role))),
                "{ me { roles } }",
                json!({}),
            )
            .await;
        let roles = me["data"]["me"]["roles"]
            .as_array()
            .unwrap_or_else(|| panic!("{role}: {me}"));
        assert!(roles.contains(&json!(expected)), "{role}: {me}");
    }
    node.stop().await;

    // The demo's warning of last school year is past its day to leave the
    // record: `retention apply` erases it (and only what is due).
    let engine = registre_projections::ProjectionEngine::open(
        store.clone(),
        registre_projections::EngineConfig::default(),
    )
    .await
    .unwrap();
    let policy = registre_app::erasure::RetentionPolicy {
        account_days: 90,
        access_log: std::time::Duration::from_secs(365 * 86_400),
    };
    engine.catch_up().await.unwrap();
    let now = chrono::Utc::now();
    let today = now.with_timezone(&chrono_tz::Europe::Paris).date_naive();
    let due = engine.read(|m| m.discipline().sanctions_due(|_| today).len());
    assert!(due >= 1, "last school year's warning is past its day");
    let report = registre_app::erasure::apply_retention(&store, &engine, &policy, now)
        .await
        .unwrap();
    assert_eq!(report.sanctions_erased.len(), due, "{report:?}");
}
