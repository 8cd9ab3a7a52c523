//! End-to-end: the transport of a real server on a real PostgreSQL database:
//! probes, metrics, authentication, GraphiQL, request limits and both
//! WebSocket protocols with their hygiene (init timeout, subscription cap,
//! message size, clean close on shutdown).

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{json, Value};
use support::*;

async fn setup(overrides: &[(&str, &str)]) -> (TestDb, Idp, Node, Roster) {
    let db = TestDb::create().await;
    let idp = Idp::new();
    let config = idp.config(&db, overrides);
    let store = registre_api::cli::open_store(&config)
        .await
        .expect("open the store");
    let roster = seed_roster(store.as_ref()).await;
    let node = Node::start(&config).await;
    (db, idp, node, roster)
}

#[tokio::test]
async fn probes_and_metrics_answer() {
    let (_db, idp, node, roster) = setup(&[]).await;
    let health = node.http().get(node.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = node.http().get(node.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{:?}", ready.text().await);

    let token = idp.token(roster.guardian);
    let raw = node
        .http()
        .post(node.url("/graphql"))
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    let request_id = raw.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(request_id).is_ok(), "{request_id}");
    let me = node
        .graphql(Some(&token), "{ me { externalId } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["externalId"], roster.guardian, "{me}");
    let anonymous = node.graphql(None, "{ me { externalId } }", json!({})).await;
    assert_eq!(error_codes(&anonymous), ["UNAUTHENTICATED"]);

    let metrics = node.http().get(node.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(r#"registre_graphql_requests_total{outcome="ok",transport="http"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"registre_graphql_errors_total{code="UNAUTHENTICATED"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("registre_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(text.contains("registre_open_subscriptions 0"), "{text}");
    node.stop().await;
}

#[tokio::test]
async fn refused_tokens_are_unauthenticated_with_a_reason() {
    let (_db, _idp, node, roster) = setup(&[]).await;
    let stranger = Idp::new(); // same kid, another key: the signature fails
    let forged = stranger.token(roster.guardian);
    let response = node
        .graphql(Some(&forged), "{ me { externalId } }", json!({}))
        .await;
    assert_eq!(error_codes(&response), ["UNAUTHENTICATED"], "{response}");
    assert!(response["data"].is_null() || response["data"]["me"].is_null());

    let garbage = node
        .graphql(Some("not.a.token"), "{ me { externalId } }", json!({}))
        .await;
    assert_eq!(error_codes(&garbage), ["UNAUTHENTICATED"], "{garbage}");
    node.stop().await;
}

#[tokio::test]
async fn graphiql_is_served_to_browsers_only() {
    let (_db, _idp, node, _roster) = setup(&[]).await;
    let page = node
        .http()
        .get(node.url("/graphql"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(
        html.contains("graphiql") && html.contains("/graphql"),
        "{html}"
    );
    assert!(
        html.contains("wsConnectionParams"),
        "subscriptions carry the editor's token"
    );

    let api = node
        .http()
        .get(node.url("/graphql"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 405);
    let body: Value = api.json().await.unwrap();
    assert_eq!(error_codes(&body), ["INVALID_INPUT"]);
    node.stop().await;
}

#[tokio::test]
async fn body_and_batch_limits_refuse_clearly() {
    let (_db, idp, node, roster) = setup(&[
        ("REGISTRE_MAX_BODY_BYTES", "2048"),
        ("REGISTRE_MAX_BATCH", "2"),
    ])
    .await;
    let token = idp.token(roster.guardian);
    let big = json!({ "query": format!("{{ me {{ id }} }} #{}", "x".repeat(4096)) });
    let response = node
        .http()
        .post(node.url("/graphql"))
        .bearer_auth(&token)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_codes(&body), ["INVALID_INPUT"]);
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("2048"));

    let op = json!({ "query": "{ me { externalId } }" });
    let three = node
        .http()
        .post(node.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!([op, op, op]))
        .send()
        .await
        .unwrap();
    assert_eq!(three.status(), 400);
    let body: Value = three.json().await.unwrap();
    assert_eq!(error_codes(&body), ["INVALID_INPUT"]);

    let two = node
        .http()
        .post(node.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!([op, op]))
        .send()
        .await
        .unwrap();
    assert_eq!(two.status(), 200);
    let body: Value = two.json().await.unwrap();
    assert_eq!(body.as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(body[1]["data"]["me"]["externalId"], roster.guardian);

    let junk = node
        .http()
        .post(node.url("/graphql"))
        .body("{nope")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(junk.status(), 400);
    node.stop().await;
}

#[tokio::test]
async fn both_websocket_protocols_carry_operations_with_the_caller() {
    let (_db, idp, node, roster) = setup(&[]).await;
    let token = idp.token(roster.teacher);
    for protocol in [TRANSPORT_WS, LEGACY_WS] {
        let mut ws = WsClient::connect(node.addr, protocol).await;
        let ack = ws.init(Some(&token)).await;
        assert_eq!(ack["type"], "connection_ack", "{protocol}: {ack}");
        ws.subscribe("1", "{ me { externalId } }", json!({})).await;
        let result = next_payload(&ws.next_json().await, "1");
        assert_eq!(
            result["data"]["me"]["externalId"], roster.teacher,
            "{protocol}"
        );
        let complete = ws.next_json().await;
        assert_eq!(complete["type"], "complete", "{protocol}: {complete}");
        assert_eq!(complete["id"], "1");
    }
    // Without a token the connection opens, and operations answer UNAUTHENTICATED.
    let mut ws = WsClient::connect(node.addr, TRANSPORT_WS).await;
    assert_eq!(ws.init(None).await["type"], "connection_ack");
    ws.subscribe("x", "{ me { externalId } }", json!({})).await;
    let result = next_payload(&ws.next_json().await, "x");
    assert_eq!(error_codes(&result), ["UNAUTHENTICATED"], "{result}");
    let metrics = node
        .http()
        .get(node.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"registre_graphql_errors_total{code="UNAUTHENTICATED"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"registre_graphql_requests_total{outcome="started",transport="ws"} 3"#),
        "{metrics}"
    );
    node.stop().await;
}

#[tokio::test]
async fn a_connection_that_never_initialises_is_closed() {
    let (_db, _idp, node, _roster) = setup(&[("REGISTRE_WS_INIT_TIMEOUT_SECS", "1")]).await;
    let mut ws = WsClient::connect(node.addr, TRANSPORT_WS).await;
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 4408);
    assert!(reason.contains("initialisation timeout"), "{reason}");
    node.stop().await;
}

#[tokio::test]
async fn oversized_websocket_messages_close_the_connection() {
    let (_db, idp, node, roster) = setup(&[("REGISTRE_WS_MAX_MESSAGE_BYTES", "1024")]).await;
    let mut ws = WsClient::connect(node.addr, TRANSPORT_WS).await;
    assert_eq!(
        ws.init(Some(&idp.token(roster.guardian))).await["type"],
        "connection_ack"
    );
    ws.subscribe(
        "big",
        &format!("{{ me {{ id }} }} #{}", "x".repeat(2000)),
        json!({}),
    )
    .await;
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 1009);
    assert!(reason.contains("1024"), "{reason}");
    node.stop().await;
}

#[tokio::test]
async fn subscriptions_per_connection_are_capped() {
    let (_db, idp, node, roster) = setup(&[("REGISTRE_WS_MAX_SUBSCRIPTIONS", "2")]).await;
    let mut ws = WsClient::connect(node.addr, TRANSPORT_WS).await;
    assert_eq!(
        ws.init(Some(&idp.token(roster.guardian))).await["type"],
        "connection_ack"
    );
    ws.subscribe("a", ABSENCE_SUBSCRIPTION, json!({})).await;
    ws.subscribe("b", ABSENCE_SUBSCRIPTION, json!({})).await;
    ws.subscribe("c", ABSENCE_SUBSCRIPTION, json!({})).await;
    let refusal = ws.next_json().await;
    assert_eq!(refusal["type"], "error", "{refusal}");
    assert_eq!(refusal["id"], "c");
    assert_eq!(refusal["payload"][0]["extensions"]["code"], "RATE_LIMITED");

    // Completing one frees a place.
    ws.send(json!({ "id": "a", "type": "complete" })).await;
    ws.subscribe("d", ABSENCE_SUBSCRIPTION, json!({})).await;
    let teacher = idp.token(roster.teacher);
    let absence = report_absence(&node, &teacher, roster.student, 9, None).await;
    let mut got = Vec::new();
    while got.len() < 2 {
        let message = ws.next_json().await;
        if message["type"] == "complete" {
            continue;
        }
        let id = message["id"].as_str().unwrap().to_string();
        let payload = next_payload(&message, &id);
        assert_eq!(
            payload["data"]["absenceReported"]["absence"]["id"],
            absence.as_str()
        );
        got.push(id);
    }
    got.sort();
    assert_eq!(got, ["b", "d"]);
    node.stop().await;
}

#[tokio::test]
async fn shutdown_closes_websockets_cleanly() {
    let (_db, idp, node, roster) = setup(&[]).await;
    let mut ws = WsClient::connect(node.addr, LEGACY_WS).await;
    assert_eq!(
        ws.init(Some(&idp.token(roster.guardian))).await["type"],
        "connection_ack"
    );
    ws.subscribe("s", ABSENCE_SUBSCRIPTION, json!({})).await;
    let addr = node.addr;
    let stopping = tokio::spawn(node.stop());
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 1001);
    assert_eq!(reason, "server shutting down");
    stopping.await.unwrap();
    assert!(
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .is_err(),
        "no longer accepting"
    );
}
