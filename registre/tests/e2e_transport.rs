//! End-to-end: the transport of a real server on a real PostgreSQL database:
//! probes, metrics, authentication, GraphiQL, request limits and both
//! WebSocket protocols with their hygiene (init timeout, subscription cap,
//! message size, clean close on shutdown).

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{json, Value};
use support::*;

#[tokio::test]
async fn probes_and_metrics_answer() {
    let (_db, idp, node, roster) = seeded_node(&[]).await;
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
    let (_db, _idp, node, roster) = seeded_node(&[]).await;
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
    let (_db, _idp, node, _roster) = seeded_node(&[]).await;
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
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("http"), "no remote origin is allowed: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{csp}");
    let script_src = csp
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .unwrap();
    assert!(!script_src.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    assert!(html.contains("graphiql"), "{html}");

    // Every script and stylesheet is a same-origin path the node serves,
    // and no script is inline.
    let mut assets = Vec::new();
    for tag in html
        .split('<')
        .filter(|t| t.starts_with("script") || t.starts_with("link"))
    {
        assert!(
            !tag.contains("http://") && !tag.contains("https://") && !tag.contains("//unpkg"),
            "{tag}"
        );
        let attr = if tag.starts_with("script") {
            "src=\""
        } else {
            "href=\""
        };
        let start = tag
            .find(attr)
            .unwrap_or_else(|| panic!("inline script or link without href: {tag}"))
            + attr.len();
        let url = &tag[start..start + tag[start..].find('"').unwrap()];
        assert!(url.starts_with('/') && !url.starts_with("//"), "{url}");
        assets.push(url.to_string());
    }
    assert!(assets.len() >= 5, "{assets:?}");
    let mut sources = String::new();
    for url in &assets {
        let asset = node.http().get(node.url(url)).send().await.unwrap();
        assert_eq!(asset.status(), 200, "{url}");
        assert_eq!(
            asset.headers()["x-content-type-options"],
            "nosniff",
            "{url}"
        );
        let content_type = asset.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        let expected = if url.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(content_type.starts_with(expected), "{url}: {content_type}");
        let text = asset.text().await.unwrap();
        assert!(text.len() > 50, "{url}");
        if url.ends_with("init.js") {
            sources.push_str(&text);
        }
    }
    assert!(
        sources.contains("wsConnectionParams") && sources.contains("/graphql"),
        "subscriptions carry the editor's token: {sources}"
    );
    let missing = node
        .http()
        .get(node.url("/graphiql/0.0.0/graphiql.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

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
    let (_db, idp, node, roster) = seeded_node(&[
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
    let (_db, idp, node, roster) = seeded_node(&[]).await;
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
    let metrics = node.metrics().await;
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
    let (_db, _idp, node, _roster) = seeded_node(&[("REGISTRE_WS_INIT_TIMEOUT_SECS", "1")]).await;
    let mut ws = WsClient::connect(node.addr, TRANSPORT_WS).await;
    let (code, reason) = ws.closed().await;
    assert_eq!(code, 4408);
    assert!(reason.contains("initialisation timeout"), "{reason}");
    node.stop().await;
}

#[tokio::test]
async fn oversized_websocket_messages_close_the_connection() {
    let (_db, idp, node, roster) = seeded_node(&[("REGISTRE_WS_MAX_MESSAGE_BYTES", "1024")]).await;
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
    let (_db, idp, node, roster) = seeded_node(&[("REGISTRE_WS_MAX_SUBSCRIPTIONS", "2")]).await;
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
    let (_db, idp, node, roster) = seeded_node(&[]).await;
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

/// Metrics text, polled until `line` appears (the server ends a session
/// right after the client's close; this waits for that, with a deadline).
async fn wait_for_metric(node: &Node, line: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = node.metrics().await;
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{line} never appeared:\n{text}"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn an_anonymous_flood_of_pings_unread_does_not_wedge_the_socket() {
    let (_db, _idp, node, _roster) = seeded_node(&[]).await;
    let mut ws = WsClient::connect(node.addr, TRANSPORT_WS).await;
    ws.send(json!({ "type": "connection_init", "payload": {} }))
        .await;
    for _ in 0..200 {
        ws.send(json!({ "type": "ping" })).await;
    }
    // Only now does the client read: everything was answered.
    assert_eq!(ws.next_json().await["type"], "connection_ack");
    for n in 0..200 {
        let pong = ws.next_json().await;
        assert_eq!(pong["type"], "pong", "pong {n}: {pong}");
    }
    // And it still runs operations.
    ws.subscribe("x", "{ me { externalId } }", json!({})).await;
    let result = next_payload(&ws.next_json().await, "x");
    assert_eq!(error_codes(&result), ["UNAUTHENTICATED"], "{result}");
    ws.close().await;
    wait_for_metric(&node, "registre_open_websockets 0").await;

    // Many such clients at once, closed without reading anything. (Before
    // the fix, whether one socket wedged depended on the order in which the
    // session's loop happened to poll reading and answering; with twenty
    // sockets of a thousand pings some always did.)
    let mut clients = Vec::new();
    for _ in 0..20 {
        let mut ws = WsClient::connect(node.addr, TRANSPORT_WS).await;
        ws.send(json!({ "type": "connection_init", "payload": {} }))
            .await;
        for _ in 0..1000 {
            ws.send(json!({ "type": "ping" })).await;
        }
        clients.push(ws);
    }
    wait_for_metric(&node, "registre_open_websockets 20").await;
    for ws in clients {
        ws.close().await;
    }
    wait_for_metric(&node, "registre_open_websockets 0").await;
    let health = node.http().get(node.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    node.stop().await;
}

#[tokio::test]
async fn subscribing_before_connection_init_closes_with_4401() {
    let (_db, _idp, node, _roster) = seeded_node(&[]).await;
    for protocol in [TRANSPORT_WS, LEGACY_WS] {
        let mut ws = WsClient::connect(node.addr, protocol).await;
        ws.subscribe("early", "{ me { externalId } }", json!({}))
            .await;
        let (code, reason) = ws.closed().await;
        assert_eq!(code, 4401, "{protocol}: {reason}");
        assert_eq!(reason, "Unauthorized");
    }
    wait_for_metric(&node, "registre_open_websockets 0").await;
    node.stop().await;
}

#[tokio::test]
async fn open_sockets_are_capped_per_person() {
    let (_db, idp, node, roster) = seeded_node(&[("REGISTRE_MAX_SOCKETS_PER_PERSON", "2")]).await;
    let guardian = idp.token(roster.guardian);
    let mut first = WsClient::connect(node.addr, TRANSPORT_WS).await;
    assert_eq!(first.init(Some(&guardian)).await["type"], "connection_ack");
    let mut second = WsClient::connect(node.addr, LEGACY_WS).await;
    assert_eq!(second.init(Some(&guardian)).await["type"], "connection_ack");

    let mut third = WsClient::connect(node.addr, TRANSPORT_WS).await;
    third
        .send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {guardian}") } }))
        .await;
    let (code, reason) = third.closed().await;
    assert_eq!(code, 4429, "{reason}");
    assert!(reason.contains("retry in"), "{reason}");

    // Someone else is not affected, and the first two still work.
    let mut teacher = WsClient::connect(node.addr, TRANSPORT_WS).await;
    assert_eq!(
        teacher.init(Some(&idp.token(roster.teacher))).await["type"],
        "connection_ack"
    );
    first
        .subscribe("1", "{ me { externalId } }", json!({}))
        .await;
    let me = next_payload(&first.next_json().await, "1");
    assert_eq!(me["data"]["me"]["externalId"], roster.guardian);

    // Closing one frees a place.
    second.close().await;
    let mut again = WsClient::connect(node.addr, TRANSPORT_WS).await;
    assert_eq!(again.init(Some(&guardian)).await["type"], "connection_ack");
    let metrics = node.metrics().await;
    assert!(
        metrics.contains(r#"registre_admission_refused_total{reason="sockets_per_person"} 1"#),
        "{metrics}"
    );
    node.stop().await;
}

#[tokio::test]
async fn anonymous_sockets_are_capped_per_node() {
    let (_db, idp, node, roster) = seeded_node(&[("REGISTRE_MAX_ANONYMOUS_SOCKETS", "2")]).await;
    let mut a = WsClient::connect(node.addr, TRANSPORT_WS).await;
    let _b = WsClient::connect(node.addr, TRANSPORT_WS).await;
    wait_for_metric(&node, "registre_open_websockets 2").await;
    let mut c = WsClient::connect(node.addr, TRANSPORT_WS).await;
    let (code, reason) = c.closed().await;
    assert_eq!(code, 4429, "{reason}");
    // A socket that authenticates is no longer anonymous: room again.
    assert_eq!(
        a.init(Some(&idp.token(roster.guardian))).await["type"],
        "connection_ack"
    );
    let mut d = WsClient::connect(node.addr, TRANSPORT_WS).await;
    assert_eq!(d.init(None).await["type"], "connection_ack");
    node.stop().await;
}
