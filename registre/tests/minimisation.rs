//! Minimisation (GDPR art. 5(1)(c)): the server's logs and metrics carry ids,
//! never names or free text. A real server on PostgreSQL runs the flows that
//! handle personal text (registering a person, a message, an absence
//! justification, refused input, closing an account, an erasure) with
//! distinctive strings, with Registre's own crates logging at TRACE; the
//! captured log output and the /metrics page must not contain any of them.
//!
//! This file holds one test on purpose: it installs the process-wide tracing
//! subscriber, which would capture other tests' logs too.
#![allow(clippy::unwrap_used)]

mod support;

use parking_lot::Mutex;
use registre_domain::PersonId;
use serde_json::json;
use std::sync::Arc;
use support::*;

const NAME: &str = "Zéphyrine Quetzalcoatl-Minimis";
const SUBJECT: &str = "Sujet Ornithorynque confidentiel";
const BODY: &str = "Corps du message Ornithorynque: ma fille est suivie pour une maladie";
const JUSTIFICATION: &str = "Justification Kinkajou: hospitalisation";
const CLOSING: &str = "Fermeture Capybara: déménagement à Lyon";
const ERASURE: &str = "Effacement Pangolin demandé";
const BAD_INPUT: &str = "Tatou-0750001A-invalide";
const MARKERS: [&str; 7] = [
    "Quetzalcoatl",
    "Ornithorynque",
    "Kinkajou",
    "Capybara",
    "Pangolin",
    "Tatou",
    "Zéphyrine",
];

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_and_metrics_carry_ids_not_names_or_free_text() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter(
            "info,registre_api=trace,registre_store=trace,registre_projections=trace,registre_domain=trace",
        )
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the only subscriber of this test binary");

    let (_db, idp, node, roster) = seeded_node(&[]).await;
    let admin = idp.token(ADMIN);
    let teacher = idp.token(roster.teacher);
    let guardian = idp.token(roster.guardian);
    let ok = |r: serde_json::Value| {
        assert!(r["errors"].is_null(), "{r}");
        r
    };

    let registered = ok(node
        .graphql(
            Some(&admin),
            "mutation($i: RegisterPersonInput!) { registerPerson(input: $i) { id } }",
            json!({"i": {"externalId": "minimis-1", "displayName": NAME, "roles": ["GUARDIAN"]}}),
        )
        .await);
    let person = registered["data"]["registerPerson"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let guardian_id = PersonId::for_external_id(roster.guardian);
    ok(node
        .graphql(
            Some(&teacher),
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
            json!({"i": {"to": [guardian_id.to_string()], "subject": SUBJECT, "body": BODY}}),
        )
        .await);
    ok(node
        .graphql(
            Some(&guardian),
            "{ inbox { subject body from { displayName } } }",
            json!({}),
        )
        .await);
    let absence = report_absence(&node, &teacher, roster.student, 9, None).await;
    ok(node
        .graphql(
            Some(&guardian),
            "mutation($i: JustifyAbsenceInput!) { justifyAbsence(input: $i) { id } }",
            json!({"i": {"absenceId": absence, "reason": JUSTIFICATION}}),
        )
        .await);
    // Refused input: the client hears why, the logs do not repeat it.
    let refused = node
        .graphql(
            Some(&admin),
            "mutation($i: CreateEstablishmentInput!) { createEstablishment(input: $i) { id } }",
            json!({"i": {"uai": BAD_INPUT, "name": NAME}}),
        )
        .await;
    assert_eq!(error_codes(&refused), ["INVALID_INPUT"], "{refused}");
    ok(node
        .graphql(
            Some(&admin),
            "mutation($i: CloseAccountInput!) { closeAccount(input: $i) { id } }",
            json!({"i": {"personId": person, "effectiveOn": "2026-07-04", "reason": CLOSING}}),
        )
        .await);
    ok(node
        .graphql(
            Some(&admin),
            "mutation($p: ID!, $r: String!) { forgetPerson(personId: $p, reason: $r) }",
            json!({"p": person, "r": ERASURE}),
        )
        .await);
    let metrics = node.metrics().await;
    node.stop().await;

    let logs = String::from_utf8_lossy(&captured.0.lock()).into_owned();
    // The capture works and logs name people by id.
    assert!(
        logs.contains(&person),
        "the erasure is logged with the person's id:\n{logs}"
    );
    assert!(
        metrics.contains("registre_graphql_requests_total"),
        "{metrics}"
    );
    for marker in MARKERS {
        assert!(
            !logs.contains(marker),
            "{marker:?} appears in the logs:\n{}",
            logs.lines()
                .filter(|l| l.contains(marker))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(!metrics.contains(marker), "{marker:?} appears in /metrics");
    }
}
