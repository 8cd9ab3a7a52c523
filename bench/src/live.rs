//! Live notification latency: N guardians hold a GraphQL WebSocket
//! subscription (`absenceReported`, graphql-transport-ws) on a real node while
//! a teacher reports absences through the `reportAbsence` mutation; latency is
//! from the moment the mutation is sent to the moment each subscribed guardian
//! receives the notification (so it includes the command's commit).
//!
//! The node is a `registre serve` child process ([`ChildNode`]): the clients'
//! sockets and the server's are then under two descriptor limits, and the
//! server's resident memory is its own, so the growth per subscriber is the
//! server's cost of a subscriber.

use crate::gen::GenConfig;
use crate::node::ChildNode;
use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use registre_domain::{PersonId, StudentId};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const SUBSCRIPTION: &str =
    "subscription { absenceReported { position absence { id student { id } } } }";
const REPORT: &str =
    "mutation($input: ReportAbsenceInput!) { reportAbsence(input: $input) { id } }";

#[derive(Debug)]
pub struct LiveResult {
    pub subscribers: usize,
    pub absences: usize,
    pub deliveries: usize,
    /// Notifications owed to subscribers (one per subscriber of the student).
    pub expected: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// The server's resident memory before the subscribers connected and once
    /// all of them had been notified once.
    pub rss_before: u64,
    pub rss_after: u64,
    /// The server's resident memory growth over the same warm-up absences
    /// reported with no subscriber connected (what the warm-up itself costs).
    pub rss_warmup_alone: u64,
    /// `registre_open_subscriptions` on the server once all were notified.
    pub open_subscriptions: Option<i64>,
}

impl LiveResult {
    /// Server memory per subscriber: its RSS growth while they connected and
    /// received their first notification, divided by their number.
    pub fn rss_per_subscriber(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.subscribers as f64
    }
}

/// Connects, authenticates and subscribes; then forwards (absence id, time
/// received) for every notification until the channel closes.
pub(crate) async fn subscriber(
    addr: SocketAddr,
    token: String,
    tx: mpsc::UnboundedSender<(String, Instant)>,
    connecting: Arc<Semaphore>,
) -> Result<()> {
    // Connections open in waves: thousands of simultaneous handshakes on two
    // cores would outlast the server's connection_init timeout.
    let mut permit = Some(connecting.acquire_owned().await?);
    let mut request = format!("ws://{addr}/graphql").into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    ws.send(Message::text(init.to_string())).await?;
    let sub = json!({ "id": "1", "type": "subscribe", "payload": { "query": SUBSCRIPTION } });
    ws.send(Message::text(sub.to_string())).await?;
    while let Some(message) = ws.next().await {
        let Message::Text(text) = message? else {
            continue;
        };
        let at = Instant::now();
        let value: Value = serde_json::from_str(&text)?;
        match value["type"].as_str() {
            Some("next") => {
                let id = value
                    .pointer("/payload/data/absenceReported/absence/id")
                    .and_then(Value::as_str)
                    .with_context(|| format!("notification without an absence: {value}"))?;
                if tx.send((id.to_owned(), at)).is_err() {
                    return Ok(());
                }
            }
            Some("connection_ack") => drop(permit.take()),
            Some("ping") => {
                ws.send(Message::text(json!({"type": "pong"}).to_string()))
                    .await?
            }
            Some("error") | Some("complete") => bail!("subscription ended: {value}"),
            _ => {}
        }
    }
    Ok(())
}

pub(crate) async fn report(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    student: StudentId,
    n: usize,
) -> Result<String> {
    // Absence n has a slot of its own, after the generated school year (which
    // ends on 2026-07-03): a report overlapping an earlier one, or a
    // guardian's declaration in advance, would confirm that absence instead of
    // notifying a new one, and the run would wait for a notification that
    // never comes.
    let day = chrono::NaiveDate::from_ymd_opt(2026, 8, 1).unwrap_or_default()
        + chrono::Duration::days((n / 8) as i64);
    let hour = 8 + (n % 8);
    let body: Value = client
        .post(url)
        .bearer_auth(token)
        .json(&json!({ "query": REPORT, "variables": { "input": {
            "studentId": student.to_string(),
            "kind": "ABSENCE",
            "start": format!("{day}T{hour:02}:00:00Z"),
            "end": format!("{day}T{hour:02}:55:00Z"),
        }}}))
        .send()
        .await?
        .json()
        .await?;
    body.pointer("/data/reportAbsence/id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("reportAbsence failed: {body}"))
}

pub async fn run(admin_url: &str, subscribers: usize, absences: usize) -> Result<LiveResult> {
    // A few teachers report thousands of absences in seconds: what is
    // measured is delivery, not a teacher's per-minute limit.
    let no_person_limits = [("REGISTRE_PERSON_LIMITS".to_string(), "off".to_string())];
    ChildNode::on_seeded_db(
        admin_url,
        "live",
        &no_person_limits,
        None,
        async |node, g| run_on(node, g, subscribers, absences).await,
    )
    .await
}

async fn run_on(
    node: &ChildNode,
    g: &GenConfig,
    subscribers: usize,
    absences: usize,
) -> Result<LiveResult> {
    let students = g.classes_per_establishment * g.students_per_class;
    let student_of = |k: usize| {
        let (c, i) = (
            (k % students) / g.students_per_class,
            (k % students) % g.students_per_class,
        );
        (
            c,
            StudentId::for_person(PersonId::for_external_id(&format!("eleve-0-{c}-{i}"))),
        )
    };
    let addr = node.addr;
    let url = node.graphql_url();
    let client = reqwest::Client::new();
    let teachers: Vec<String> = (0..g.classes_per_establishment)
        .map(|c| node.token(&format!("prof-0-{c}-0")))
        .collect::<Result<_>>()?;

    // The same warm-up as below, with no subscriber yet: it brings the
    // server's allocator, pools and read model to their working size, and
    // says what the warm-up's events cost in memory on their own.
    let warmup_students = subscribers.min(students);
    let rss_start = node.rss_bytes()?;
    for k in 0..warmup_students {
        let (c, student) = student_of(k);
        report(&client, &url, &teachers[c], student, k).await?;
    }
    let rss_before = node.rss_bytes()?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let connecting = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::with_capacity(subscribers);
    // Subscriber k is the first guardian of student k mod 600: with more
    // subscribers than students, a guardian has several devices connected.
    for k in 0..subscribers {
        let (c, i) = (
            (k % students) / g.students_per_class,
            (k % students) % g.students_per_class,
        );
        let token = node.token(&format!("parent-0-{c}-{i}-0"))?;
        tasks.push(tokio::spawn(subscriber(
            addr,
            token,
            tx.clone(),
            connecting.clone(),
        )));
    }
    drop(tx);

    // Readiness without sleeping: one absence per student with subscribers,
    // then wait until every subscriber has been notified once.
    let mut pending: HashMap<String, usize> = HashMap::new();
    for k in 0..warmup_students {
        let (c, student) = student_of(k);
        let id = report(&client, &url, &teachers[c], student, students + k).await?;
        *pending.entry(id).or_default() +=
            subscribers / students + usize::from(k < subscribers % students);
    }
    let mut outstanding: usize = pending.values().sum();
    let deadline = Instant::now() + Duration::from_secs(120);
    while outstanding > 0 {
        let (id, _) = tokio::time::timeout_at(deadline.into(), rx.recv())
            .await
            .with_context(|| {
                format!("subscribers not all notified within 120 s: {outstanding} notifications missing")
            })?
            .context("every subscriber stopped")?;
        if let Some(n) = pending.get_mut(&id) {
            if *n > 0 {
                *n -= 1;
                outstanding -= 1;
            }
        }
    }
    let rss_after = node.rss_bytes()?;
    let open_subscriptions = node
        .metric(&client, "registre_open_subscriptions")
        .await
        .map(|v| v as i64);

    // Measurement: absences for random students, one every 20 ms.
    let mut rng = StdRng::seed_from_u64(7);
    let mut sent: HashMap<String, (Instant, usize)> = HashMap::new();
    let mut received: Vec<(String, Instant)> = Vec::new();
    let mut expected = 0usize;
    for n in 0..absences {
        let k = rng.gen_range(0..students.min(subscribers));
        let (c, student) = student_of(k);
        let t0 = Instant::now();
        let id = report(&client, &url, &teachers[c], student, 2 * students + n).await?;
        let fanout = subscribers / students + usize::from(k < subscribers % students);
        expected += fanout;
        sent.insert(id, (t0, fanout));
        while let Ok(r) = rx.try_recv() {
            received.push(r);
        }
        tokio::time::sleep_until((t0 + Duration::from_millis(20)).into()).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut latencies = Vec::with_capacity(expected);
    let take = |(id, at): (String, Instant), latencies: &mut Vec<Duration>| {
        if let Some((t0, _)) = sent.get(&id) {
            latencies.push(at.duration_since(*t0));
        }
    };
    for r in received {
        take(r, &mut latencies);
    }
    while latencies.len() < expected {
        match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
            Ok(Some(r)) => take(r, &mut latencies),
            _ => break,
        }
    }
    for t in &tasks {
        t.abort();
    }
    if latencies.is_empty() {
        bail!("none of {expected} notifications arrived");
    }
    latencies.sort_unstable();
    let pick = |q: f64| crate::stats::percentile(&latencies, q);
    Ok(LiveResult {
        subscribers,
        absences,
        deliveries: latencies.len(),
        expected,
        p50: pick(0.5),
        p99: pick(0.99),
        max: latencies[latencies.len() - 1],
        rss_before,
        rss_after,
        rss_warmup_alone: rss_before.saturating_sub(rss_start),
        open_subscriptions,
    })
}
