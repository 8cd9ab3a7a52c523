//! End-to-end: live absence notifications over WebSocket on real PostgreSQL:
//! a guardian hears of their child's absence and only theirs, resumes with
//! `after` without a gap or a repeat, hears of an absence reported on another
//! node, and nothing acknowledged is lost when a node is killed.

#![allow(clippy::unwrap_used)]

mod support;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use serde_json::{json, Value};
use support::*;

async fn setup() -> (TestDb, Idp, Roster) {
    let db = TestDb::create().await;
    let idp = Idp::new();
    let config = idp.config(&db, &[]);
    let store = registre::node::open_store(&config)
        .await
        .expect("open the store");
    let roster = seed_roster(store.as_ref()).await;
    (db, idp, roster)
}

/// Reads notifications for subscription `id` until `n` have arrived; answers
/// (absence id, position) pairs in arrival order.
async fn notifications(ws: &mut WsClient, id: &str, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let message = ws.next_json().await;
        let payload = next_payload(&message, id);
        assert!(payload["errors"].is_null(), "{payload}");
        let n = &payload["data"]["absenceReported"];
        out.push((
            n["absence"]["id"].as_str().unwrap().to_string(),
            n["position"].as_str().unwrap().to_string(),
        ));
    }
    out
}

#[tokio::test]
async fn a_guardian_hears_of_their_childs_absence_only() {
    let (db, idp, roster) = setup().await;
    let node = Node::start(&idp.config(&db, &[])).await;
    let mut ws = WsClient::connect(node.addr, TRANSPORT_WS).await;
    assert_eq!(
        ws.init(Some(&idp.token(roster.guardian))).await["type"],
        "connection_ack"
    );
    ws.subscribe("live", ABSENCE_SUBSCRIPTION, json!({})).await;
    // The subscription is registered once the server answers a later
    // operation on the same connection (operations are handled in order).
    ws.subscribe("sync", "{ me { id } }", json!({})).await;
    next_payload(&ws.next_json().await, "sync");
    assert_eq!(ws.next_json().await["type"], "complete");

    let teacher = idp.token(roster.teacher);
    let not_mine = report_absence(&node, &teacher, roster.other_student, 9, None).await;
    let mine = report_absence(&node, &teacher, roster.student, 10, None).await;
    let got = notifications(&mut ws, "live", 1).await;
    assert_eq!(
        got[0].0, mine,
        "the other child's absence ({not_mine}) is not delivered"
    );
    node.stop().await;
}

#[tokio::test]
async fn resuming_with_after_misses_none_and_repeats_none() {
    let (db, idp, roster) = setup().await;
    let node = Node::start(&idp.config(&db, &[])).await;
    let teacher = idp.token(roster.teacher);
    let guardian = idp.token(roster.guardian);

    let first = report_absence(&node, &teacher, roster.student, 8, None).await;
    let mut ws = WsClient::connect(node.addr, TRANSPORT_WS).await;
    assert_eq!(ws.init(Some(&guardian)).await["type"], "connection_ack");
    // From the start of the log: the first absence is replayed.
    ws.subscribe("s", ABSENCE_SUBSCRIPTION, json!({ "after": "0" }))
        .await;
    let replayed = notifications(&mut ws, "s", 1).await;
    assert_eq!(replayed[0].0, first);
    let checkpoint = replayed[0].1.clone();
    drop(ws);

    // While disconnected.
    let second = report_absence(&node, &teacher, roster.student, 9, None).await;
    let third = report_absence(&node, &teacher, roster.student, 10, None).await;

    let mut ws = WsClient::connect(node.addr, LEGACY_WS).await;
    assert_eq!(ws.init(Some(&guardian)).await["type"], "connection_ack");
    ws.subscribe("s", ABSENCE_SUBSCRIPTION, json!({ "after": checkpoint }))
        .await;
    let caught_up = notifications(&mut ws, "s", 2).await;
    let fourth = report_absence(&node, &teacher, roster.student, 11, None).await;
    let live = notifications(&mut ws, "s", 1).await;

    let ids: Vec<&str> = caught_up
        .iter()
        .chain(&live)
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(ids, [second.as_str(), third.as_str(), fourth.as_str()]);
    let positions: Vec<u64> = caught_up
        .iter()
        .chain(&live)
        .map(|(_, p)| p.parse().unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions increase: {positions:?}"
    );
    assert!(positions[0] > checkpoint.parse::<u64>().unwrap());
    node.stop().await;
}

#[tokio::test]
async fn an_absence_reported_on_one_node_reaches_a_subscriber_on_another() {
    let (db, idp, roster) = setup().await;
    let a = Node::start(&idp.config(&db, &[])).await;
    let b = Node::start(&idp.config(&db, &[])).await;
    let mut ws = WsClient::connect(b.addr, TRANSPORT_WS).await;
    assert_eq!(
        ws.init(Some(&idp.token(roster.guardian))).await["type"],
        "connection_ack"
    );
    ws.subscribe(
        "live",
        ABSENCE_SUBSCRIPTION,
        json!({ "studentId": roster.student.to_string() }),
    )
    .await;
    ws.subscribe("sync", "{ me { id } }", json!({})).await;
    next_payload(&ws.next_json().await, "sync");
    assert_eq!(ws.next_json().await["type"], "complete");

    let absence = report_absence(&a, &idp.token(roster.teacher), roster.student, 14, None).await;
    let got = notifications(&mut ws, "live", 1).await;
    assert_eq!(got[0].0, absence);

    // Read-your-writes across nodes: B answers with A's absence.
    let query = "query($id: ID!) { student(id: $id) { absences { id } } }";
    let seen = b
        .graphql(
            Some(&idp.token(roster.guardian)),
            query,
            json!({ "id": roster.student.to_string() }),
        )
        .await;
    let ids: Vec<&Value> = seen["data"]["student"]["absences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(ids, [&json!(absence)], "{seen}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn nothing_acknowledged_is_lost_when_a_node_is_killed() {
    let (db, idp, roster) = setup().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_registre"))
        .arg("serve")
        .env_clear()
        .envs(idp.env(&db))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the registre binary");
    let stdout = child.stdout.take().unwrap();
    // The binary prints its bound address once it listens.
    let addr = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        lines
            .find_map(|line| {
                let line = line.ok()?;
                let rest = line.strip_prefix("Registre listening on http://")?;
                rest.strip_suffix("/graphql").map(str::to_string)
            })
            .expect("the listening line")
    })
    .await
    .unwrap();

    let http = reqwest::Client::new();
    let teacher = idp.token(roster.teacher);
    let mut acknowledged = Vec::new();
    for hour in 8..13 {
        let response: Value = http
            .post(format!("http://{addr}/graphql"))
            .bearer_auth(&teacher)
            .json(&json!({ "query": REPORT_ABSENCE, "variables": { "input": {
                "studentId": roster.student.to_string(), "kind": "ABSENCE",
                "start": format!("2026-11-17T{hour:02}:00:00+01:00"),
                "end": format!("2026-11-17T{:02}:00:00+01:00", hour + 1),
            }}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        acknowledged.push(
            response["data"]["reportAbsence"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{response}"))
                .to_string(),
        );
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    let node = Node::start(&idp.config(&db, &[])).await;
    let query = "query($id: ID!) { student(id: $id) { absences { id } } }";
    let seen = node
        .graphql(
            Some(&idp.token(roster.guardian)),
            query,
            json!({ "id": roster.student.to_string() }),
        )
        .await;
    let mut ids: Vec<String> = seen["data"]["student"]["absences"]
        .as_array()
        .unwrap_or_else(|| panic!("{seen}"))
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    acknowledged.sort();
    assert_eq!(ids, acknowledged);
    node.stop().await;
}
