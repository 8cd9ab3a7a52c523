//! Admission control on the real transport (`serve_executor`, the warp
//! server `registre serve` runs), in front of a small schema whose `hold`
//! field waits until the test lets it go: so "the node is busy" is a state
//! the test sets, not a race it hopes to win.

#![allow(clippy::unwrap_used)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use async_graphql::{Context, EmptySubscription, Object, Schema};
use futures::{SinkExt, StreamExt};
use registre_api::{
    auth::Authenticator,
    config::Limits,
    metrics::Metrics,
    server::{serve_executor, Readiness, RunningServer, Transport},
};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::{
    client::IntoClientRequest, http::HeaderValue, protocol::Message,
};

const WAIT: Duration = Duration::from_secs(20);

/// `hold` signals `entered`, then waits for a permit of `release`.
#[derive(Clone)]
struct Gate {
    entered: Arc<Semaphore>,
    release: Arc<Semaphore>,
}

struct Query;

#[Object]
impl Query {
    async fn hold(&self, ctx: &Context<'_>) -> i32 {
        let gate = ctx.data_unchecked::<Gate>();
        gate.entered.add_permits(1);
        gate.release.acquire().await.unwrap().forget();
        1
    }

    async fn quick(&self) -> i32 {
        2
    }

    /// A megabyte of answer, to fill a socket whose client does not read.
    async fn big(&self) -> String {
        "x".repeat(1 << 20)
    }
}

struct Mutation;

#[Object]
impl Mutation {
    async fn roll_call(&self) -> bool {
        true
    }

    async fn hold_write(&self, ctx: &Context<'_>) -> bool {
        let gate = ctx.data_unchecked::<Gate>();
        gate.entered.add_permits(1);
        gate.release.acquire().await.unwrap().forget();
        true
    }
}

struct Ready;

#[async_trait::async_trait]
impl Readiness for Ready {
    async fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

struct Node {
    server: RunningServer,
    addr: SocketAddr,
    gate: Gate,
    http: reqwest::Client,
}

impl Node {
    async fn start(limits: Limits) -> Node {
        let gate = Gate {
            entered: Arc::new(Semaphore::new(0)),
            release: Arc::new(Semaphore::new(0)),
        };
        let schema = Schema::build(Query, Mutation, EmptySubscription)
            .data(gate.clone())
            .finish();
        let transport = Transport {
            executor: schema,
            auth: Authenticator::disabled(),
            limits,
            metrics: Metrics::new().unwrap(),
            readiness: Arc::new(Ready),
            downloads: None,
            peers: None,
        };
        let server = serve_executor(
            transport,
            "127.0.0.1:0".parse().unwrap(),
            std::future::pending(),
        )
        .await
        .unwrap();
        let addr = server.addr;
        Node {
            server,
            addr,
            gate,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn post(&self, query: &str) -> reqwest::Response {
        self.http
            .post(self.url("/graphql"))
            .json(&json!({ "query": query }))
            .send()
            .await
            .unwrap()
    }

    /// Starts `query` (which holds) and returns once it executes, holding its place.
    async fn hold(&self, query: &'static str) -> tokio::task::JoinHandle<reqwest::Response> {
        let http = self.http.clone();
        let url = self.url("/graphql");
        let task = tokio::spawn(async move {
            http.post(url)
                .json(&json!({ "query": query }))
                .send()
                .await
                .unwrap()
        });
        tokio::time::timeout(WAIT, self.gate.entered.acquire())
            .await
            .expect("the held request executes")
            .unwrap()
            .forget();
        task
    }

    fn release(&self, n: usize) {
        self.gate.release.add_permits(n);
    }

    async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.server.shutdown();
        self.server.stopped().await;
    }
}

fn limits(in_flight: usize, reserved: usize, queued: usize, wait: Duration) -> Limits {
    Limits {
        max_in_flight: in_flight,
        mutation_reserved: reserved,
        max_queued: queued,
        max_queue_wait: wait,
        // Pinned: the delay's growth under pressure is the unit tests' (admission.rs).
        retry_after: Duration::from_secs(2),
        retry_after_max: Duration::from_secs(2),
        ..Limits::default()
    }
}

async fn assert_rate_limited(response: reqwest::Response) {
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry_after, 2);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], 2, "{body}");
}

#[tokio::test]
async fn a_full_node_refuses_reads_at_once_and_still_admits_mutations_and_probes() {
    // Two places, one of them reserved for mutations; no queue.
    let node = Node::start(limits(2, 1, 0, Duration::from_millis(50))).await;
    let held = node.hold("{ hold }").await;

    let started = std::time::Instant::now();
    let refused = node.post("{ quick }").await;
    let elapsed = started.elapsed();
    assert_rate_limited(refused).await;
    // A sanity bound only: the refusal does not wait for the held request.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");

    // The teacher's roll call takes the reserved place.
    let mutation = node.post("mutation { rollCall }").await;
    assert_eq!(mutation.status(), 200);
    let body: Value = mutation.json().await.unwrap();
    assert_eq!(body["data"]["rollCall"], true, "{body}");

    // A document naming several operations is classified by the one selected.
    let named = node
        .http
        .post(node.url("/graphql"))
        .json(&json!({
            "query": "query Q { quick } mutation M { rollCall }",
            "operationName": "M",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(named.status(), 200);
    let read_named = node
        .http
        .post(node.url("/graphql"))
        .json(&json!({
            "query": "query Q { quick } mutation M { rollCall }",
            "operationName": "Q",
        }))
        .send()
        .await
        .unwrap();
    assert_rate_limited(read_named).await;

    // Probes and metrics bypass admission.
    let health = node.http.get(node.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = node.http.get(node.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = node.metrics().await;
    assert!(
        metrics.contains("registre_admission_in_flight 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"registre_admission_refused_total{reason="queue_full"} 2"#),
        "{metrics}"
    );

    node.release(1);
    let held = held.await.unwrap();
    assert_eq!(held.status(), 200);
    assert_eq!(node.post("{ quick }").await.status(), 200, "room again");
    assert!(node
        .metrics()
        .await
        .contains("registre_admission_in_flight 0"));
    node.stop().await;
}

#[tokio::test]
async fn a_queued_request_is_refused_when_its_wait_runs_out_and_admitted_when_a_place_frees() {
    let node = Node::start(limits(1, 0, 4, Duration::from_millis(100))).await;
    let held = node.hold("{ hold }").await;
    assert_rate_limited(node.post("{ quick }").await).await;
    let metrics = node.metrics().await;
    assert!(
        metrics.contains(r#"registre_admission_refused_total{reason="queue_timeout"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("registre_admission_queue_wait_seconds_count 1"),
        "{metrics}"
    );
    node.release(1);
    assert_eq!(held.await.unwrap().status(), 200);
    node.stop().await;

    // With a long wait, a queued read gets the place its predecessor frees.
    let node = Node::start(limits(1, 0, 4, Duration::from_secs(60))).await;
    let first = node.hold("{ hold }").await;
    let second = node.hold_queued("{ hold }");
    node.release(1);
    assert_eq!(first.await.unwrap().status(), 200);
    tokio::time::timeout(WAIT, node.gate.entered.acquire())
        .await
        .expect("the queued request executes")
        .unwrap()
        .forget();
    node.release(1);
    assert_eq!(second.await.unwrap().status(), 200);
    node.stop().await;
}

impl Node {
    /// Sends `query` without waiting for it to execute.
    fn hold_queued(&self, query: &'static str) -> tokio::task::JoinHandle<reqwest::Response> {
        let http = self.http.clone();
        let url = self.url("/graphql");
        tokio::spawn(async move {
            http.post(url)
                .json(&json!({ "query": query }))
                .send()
                .await
                .unwrap()
        })
    }
}

async fn ws_connect(
    addr: SocketAddr,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = format!("ws://{addr}/graphql")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

async fn ws_next(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .expect("a frame");
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["type"] != "ping" {
                return value;
            }
        }
    }
}

#[tokio::test]
async fn operations_over_a_websocket_are_refused_without_closing_it() {
    let node = Node::start(limits(2, 1, 0, Duration::from_millis(50))).await;
    let mut ws = ws_connect(node.addr).await;
    ws.send(Message::text(
        json!({ "type": "connection_init", "payload": {} }).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(ws_next(&mut ws).await["type"], "connection_ack");

    let held = node.hold("{ hold }").await;
    ws.send(Message::text(
        json!({ "id": "r", "type": "subscribe", "payload": { "query": "{ quick }" } }).to_string(),
    ))
    .await
    .unwrap();
    let refusal = ws_next(&mut ws).await;
    assert_eq!(refusal["type"], "error", "{refusal}");
    assert_eq!(refusal["id"], "r");
    assert_eq!(refusal["payload"][0]["extensions"]["code"], "RATE_LIMITED");
    assert_eq!(refusal["payload"][0]["extensions"]["retryAfter"], 2);

    // A mutation is admitted on the reserved place, on the same socket.
    ws.send(Message::text(
        json!({ "id": "m", "type": "subscribe", "payload": { "query": "mutation { rollCall }" } })
            .to_string(),
    ))
    .await
    .unwrap();
    let result = ws_next(&mut ws).await;
    assert_eq!(result["type"], "next", "{result}");
    assert_eq!(result["payload"]["data"]["rollCall"], true);
    assert_eq!(ws_next(&mut ws).await["type"], "complete");

    node.release(1);
    assert_eq!(held.await.unwrap().status(), 200);
    ws.send(Message::text(
        json!({ "id": "q", "type": "subscribe", "payload": { "query": "{ quick }" } }).to_string(),
    ))
    .await
    .unwrap();
    let result = ws_next(&mut ws).await;
    assert_eq!(result["payload"]["data"]["quick"], 2, "{result}");
    node.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_disconnected_after_the_write_timeout() {
    let node = Node::start(Limits {
        ws_write_timeout: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    let mut ws = ws_connect(node.addr).await;
    ws.send(Message::text(
        json!({ "type": "connection_init", "payload": {} }).to_string(),
    ))
    .await
    .unwrap();
    // Far more answer than the socket buffers hold; the client reads none of it.
    for n in 0..40 {
        ws.send(Message::text(
            json!({ "id": n.to_string(), "type": "subscribe", "payload": { "query": "{ big }" } })
                .to_string(),
        ))
        .await
        .unwrap();
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let metrics = node.metrics().await;
        if metrics.lines().any(|l| l == "registre_open_websockets 0") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session never ended: {metrics}"
        );
        tokio::task::yield_now().await;
    }
    // The node is unaffected.
    assert_eq!(node.post("{ quick }").await.status(), 200);
    drop(ws);
    node.stop().await;
}
