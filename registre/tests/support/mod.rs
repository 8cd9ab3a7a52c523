//! End-to-end test harness: a fresh PostgreSQL database per test, a signing
//! key whose JWKS the server trusts, the real server on port 0 (in process,
//! or the `registre` binary for crash tests), and HTTP and WebSocket clients.
//!
//! The database comes from REGISTRE_TEST_DATABASE_URL (default
//! postgres://postgres@127.0.0.1:5432/postgres): each test creates
//! `registre_test_<uuid>` there and drops it when done.

#![allow(dead_code, clippy::unwrap_used)]

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use futures::{SinkExt, StreamExt};
use registre::config::Config;
use registre_api::{
    auth::{jwks_json, SigningKey, TokenClaims},
    server::RunningServer,
};
use registre_domain::{events::*, *};
use registre_store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, NewEvent, Partition,
};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{
    client::IntoClientRequest, http::HeaderValue, protocol::Message,
};
use uuid::Uuid;

pub const ISSUER: &str = "https://idp.registre.test";
pub const AUDIENCE: &str = "registre-e2e";
pub const ADMIN: &str = "e2e-admin";
/// Guards every wait so that a broken server fails the test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(20);

pub use registre_store::testing::TestDb;

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("registre-e2e-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The test identity provider: one ES256 key, its JWKS in a file.
pub struct Idp {
    key: SigningKey,
    pub dir: TempDir,
    pub jwks: PathBuf,
}

impl Idp {
    pub fn new() -> Idp {
        let key = SigningKey::generate_es256("e2e-key").expect("P-256 key");
        let dir = TempDir::new();
        let jwks = dir.0.join("jwks.json");
        std::fs::write(&jwks, jwks_json(&[&key]).to_string()).expect("write JWKS");
        Idp { key, dir, jwks }
    }

    pub fn token(&self, subject: &str) -> String {
        self.key
            .sign(&TokenClaims::new(
                subject,
                ISSUER,
                AUDIENCE,
                Duration::from_secs(3600),
            ))
            .expect("sign")
    }

    /// The environment a node of this test runs with.
    pub fn env(&self, db: &TestDb) -> HashMap<String, String> {
        [
            ("DATABASE_URL", db.url.as_str()),
            ("REGISTRE_LISTEN", "127.0.0.1:0"),
            ("REGISTRE_JWKS", self.jwks.to_str().expect("utf-8 path")),
            ("REGISTRE_ISSUER", ISSUER),
            ("REGISTRE_AUDIENCE", AUDIENCE),
            ("REGISTRE_ADMIN_SUBJECTS", ADMIN),
            (
                "REGISTRE_DATA_DIR",
                self.dir.0.to_str().expect("utf-8 path"),
            ),
            ("REGISTRE_LOG", "warn"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    pub fn config(&self, db: &TestDb, overrides: &[(&str, &str)]) -> Config {
        let mut env = self.env(db);
        for (k, v) in overrides {
            env.insert(k.to_string(), v.to_string());
        }
        Config::from_lookup(|name| env.get(name).cloned()).expect("valid test configuration")
    }
}

/// A node of its own: a fresh database holding the small collège
/// ([`seed_roster`]), served in this process with the configuration of a new
/// identity provider and `overrides`.
pub async fn seeded_node(overrides: &[(&str, &str)]) -> (TestDb, Idp, Node, Roster) {
    let db = TestDb::create().await;
    let idp = Idp::new();
    let config = idp.config(&db, overrides);
    let store = registre::node::open_store(&config)
        .await
        .expect("open the store");
    let roster = seed_roster(store.as_ref()).await;
    let node = Node::start(&config).await;
    (db, idp, node, roster)
}

/// A server running in this process.
pub struct Node {
    pub addr: SocketAddr,
    server: Option<RunningServer>,
    pub store: Arc<dyn EventStore>,
    http: reqwest::Client,
}

impl Node {
    pub async fn start(config: &Config) -> Node {
        let store = registre::node::open_store(config)
            .await
            .expect("open the store");
        let server = registre::node::serve(config, store.clone(), std::future::pending())
            .await
            .expect("server starts");
        Node {
            addr: server.addr,
            server: Some(server),
            store,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until the node would answer 200 on /readyz (its read model has
    /// reached the log head), as an orchestrator would before routing
    /// traffic; fails the test after two minutes.
    pub async fn wait_ready(&self) {
        let server = self.server.as_ref().expect("the node is running");
        if let Err(reason) = server.wait_ready(std::time::Duration::from_secs(120)).await {
            panic!("the node did not become ready: {reason}");
        }
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The text of the node's /metrics page.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("the /metrics text")
    }

    /// POSTs one GraphQL operation; answers the JSON body.
    pub async fn graphql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .http
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST /graphql");
        response.json().await.expect("a JSON body")
    }

    /// Graceful stop; resolves when everything has closed.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown();
            server.stopped().await;
        }
    }
}

/// The `extensions.code` of each error of a GraphQL response.
pub fn error_codes(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    e["extensions"]["code"]
                        .as_str()
                        .unwrap_or("NONE")
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A small collège written straight into the log: one class, a teacher of
/// Mathématiques in it, a CPE, two students, each with one guardian.
pub struct Roster {
    pub teacher: &'static str,
    pub cpe: &'static str,
    pub guardian: &'static str,
    pub other_guardian: &'static str,
    pub student: StudentId,
    pub other_student: StudentId,
}

pub async fn seed_roster(store: &dyn EventStore) -> Roster {
    let establishment = EstablishmentId(Uuid::new_v4());
    let class = ClassId(Uuid::new_v4());
    let person = |external: &str, name: &str, roles: Vec<Role>, with_establishment: bool| {
        DomainEvent::PersonRegistered(PersonRegistered {
            person_id: PersonId::for_external_id(external),
            external_id: external.into(),
            display_name: name.into(),
            roles,
            establishment_id: with_establishment.then_some(establishment),
        })
    };
    let student_person = PersonId::for_external_id("e2e-student");
    let other_person = PersonId::for_external_id("e2e-other-student");
    let student = StudentId::for_person(student_person);
    let other_student = StudentId::for_person(other_person);
    let streams: Vec<Vec<DomainEvent>> = vec![
        vec![DomainEvent::EstablishmentCreated(EstablishmentCreated {
            establishment_id: establishment,
            uai: Uai::parse("0759999Z").expect("UAI"),
            name: "Collège de test".into(),
            time_zone: TimeZone::DEFAULT,
        })],
        vec![person(
            "e2e-teacher",
            "Claire Martin",
            vec![Role::Teacher],
            true,
        )],
        vec![person(
            "e2e-cpe",
            "Paul Durand",
            vec![Role::EducationStaff],
            true,
        )],
        vec![person(
            "e2e-guardian",
            "Nadia Benali",
            vec![Role::Guardian],
            false,
        )],
        vec![person(
            "e2e-other-guardian",
            "Marc Petit",
            vec![Role::Guardian],
            false,
        )],
        vec![person(
            "e2e-student",
            "Inès Benali",
            vec![Role::Student],
            true,
        )],
        vec![person(
            "e2e-other-student",
            "Tom Petit",
            vec![Role::Student],
            true,
        )],
        vec![
            DomainEvent::ClassCreated(ClassCreated {
                class_id: class,
                establishment_id: establishment,
                name: "4eB".into(),
            }),
            DomainEvent::TeacherAssigned(TeacherAssigned {
                class_id: class,
                teacher_id: PersonId::for_external_id("e2e-teacher"),
                subject: "Mathématiques".into(),
            }),
        ],
        vec![
            DomainEvent::StudentEnrolled(StudentEnrolled {
                student_id: student,
                person_id: student_person,
                class_id: class,
            }),
            DomainEvent::GuardianLinked(GuardianLinked {
                student_id: student,
                guardian_id: PersonId::for_external_id("e2e-guardian"),
            }),
        ],
        vec![
            DomainEvent::StudentEnrolled(StudentEnrolled {
                student_id: other_student,
                person_id: other_person,
                class_id: class,
            }),
            DomainEvent::GuardianLinked(GuardianLinked {
                student_id: other_student,
                guardian_id: PersonId::for_external_id("e2e-other-guardian"),
            }),
        ],
    ];
    for events in streams {
        let stream_id = events[0].stream().into_string();
        let events = events
            .into_iter()
            .map(|event| {
                let encoded = event.encode();
                NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: encoded.event_type.into(),
                    schema_version: encoded.schema_version,
                    data: encoded.data,
                    metadata: EventMetadata {
                        actor: None,
                        correlation_id: Uuid::now_v7(),
                        causation_id: None,
                        idempotency_key: None,
                        occurred_at: chrono::Utc::now(),
                        reason: None,
                    },
                }
            })
            .collect();
        store
            .append(AppendRequest {
                partition: Partition::directory(),
                stream_id,
                expected: ExpectedVersion::NoStream,
                events,
                idempotency: None,
            })
            .await
            .expect("seed the roster");
    }
    Roster {
        teacher: "e2e-teacher",
        cpe: "e2e-cpe",
        guardian: "e2e-guardian",
        other_guardian: "e2e-other-guardian",
        student,
        other_student,
    }
}

pub const REPORT_ABSENCE: &str = r#"
mutation($input: ReportAbsenceInput!) {
  reportAbsence(input: $input) { id kind state student { id } }
}"#;

/// Reports a one-hour absence through the API; answers the absence id.
pub async fn report_absence(
    node: &Node,
    token: &str,
    student: StudentId,
    hour: u32,
    key: Option<&str>,
) -> String {
    let start = format!("2026-11-16T{hour:02}:00:00+01:00");
    let end = format!("2026-11-16T{:02}:00:00+01:00", hour + 1);
    let response = node
        .graphql(
            Some(token),
            REPORT_ABSENCE,
            json!({ "input": {
                "studentId": student.to_string(),
                "kind": "ABSENCE",
                "start": start,
                "end": end,
                "idempotencyKey": key,
            }}),
        )
        .await;
    response["data"]["reportAbsence"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("reportAbsence failed: {response}"))
        .to_string()
}

/// A GraphQL WebSocket client speaking one of the two protocols.
pub struct WsClient {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    pub protocol: &'static str,
}

pub const TRANSPORT_WS: &str = "graphql-transport-ws";
pub const LEGACY_WS: &str = "graphql-ws";

impl WsClient {
    pub async fn connect(addr: SocketAddr, protocol: &'static str) -> WsClient {
        let mut request = format!("ws://{addr}/graphql")
            .into_client_request()
            .expect("request");
        request
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
        let (stream, response) = tokio_tungstenite::connect_async(request)
            .await
            .expect("WebSocket upgrade");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.as_bytes()),
            Some(protocol.as_bytes()),
            "the server speaks the protocol asked for"
        );
        WsClient { stream, protocol }
    }

    pub async fn send(&mut self, message: Value) {
        self.stream
            .send(Message::text(message.to_string()))
            .await
            .expect("send");
    }

    /// connection_init with the token; answers the server's reply.
    pub async fn init(&mut self, token: Option<&str>) -> Value {
        let payload = match token {
            Some(token) => json!({ "Authorization": format!("Bearer {token}") }),
            None => json!({}),
        };
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        self.next_json().await
    }

    /// Starts an operation (`subscribe` or, in the legacy protocol, `start`).
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.protocol == TRANSPORT_WS {
            "subscribe"
        } else {
            "start"
        };
        self.send(json!({ "id": id, "type": kind, "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// The next protocol message, skipping keep-alives and answering pings.
    pub async fn next_json(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("a message from the server in time")
                .expect("the connection is open")
                .expect("a well-formed frame");
            match message {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(&text).expect("JSON message");
                    match value["type"].as_str() {
                        Some("ka") => continue,
                        Some("ping") => {
                            self.send(json!({ "type": "pong" })).await;
                            continue;
                        }
                        _ => return value,
                    }
                }
                Message::Close(frame) => panic!("closed unexpectedly: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// Closes from the client side and waits until the server has answered
    /// the close (by then the server's session has ended).
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.stream.next()).await {}
    }

    /// Waits for the server to close; answers the close code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            let message = tokio::time::timeout(WAIT, self.stream.next())
                .await
                .expect("the server closes in time");
            match message {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string())
                }
                Some(Ok(Message::Close(None))) | None => return (1005, String::new()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("connection failed instead of closing: {e}"),
            }
        }
    }
}

pub const ABSENCE_SUBSCRIPTION: &str = r#"
subscription($studentId: ID, $after: String) {
  absenceReported(studentId: $studentId, after: $after) { position absence { id kind state student { id } } }
}"#;

/// The payload of a `next` (or legacy `data`) message for `id`.
pub fn next_payload(message: &Value, id: &str) -> Value {
    let kind = message["type"].as_str().unwrap_or_default();
    assert!(
        kind == "next" || kind == "data",
        "expected a result, got {message}"
    );
    assert_eq!(message["id"], id);
    message["payload"].clone()
}

// ---- Notifications: a real SMTP listener --------------------------------------------

/// A mail as the SMTP listener received it.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: Vec<String>,
    pub data: String,
}

/// An SMTP server on a local port: enough of RFC 5321 for a client
/// (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT). The first `refuse` DATA
/// commands are answered 451 (a relay away for a moment).
pub async fn smtp_server(refuse: usize) -> (String, tokio::sync::mpsc::UnboundedReceiver<Mail>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("smtp://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let refusals = Arc::new(std::sync::atomic::AtomicUsize::new(refuse));
    tokio::spawn(async move {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            let refusals = refusals.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = tokio::io::BufReader::new(read).lines();
                write.write_all(b"220 test.local ESMTP\r\n").await.unwrap();
                let mut to = Vec::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.get(..4).unwrap_or(&line).to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-test.local\r\n250 8BITMIME\r\n",
                        "HELO" | "MAIL" | "RSET" | "NOOP" => b"250 OK\r\n",
                        "RCPT" => {
                            to.push(
                                line[8..]
                                    .trim_matches(|c| c == '<' || c == '>' || c == ' ')
                                    .to_string(),
                            );
                            b"250 OK\r\n"
                        }
                        "DATA" => {
                            if refusals
                                .fetch_update(
                                    std::sync::atomic::Ordering::SeqCst,
                                    std::sync::atomic::Ordering::SeqCst,
                                    |n| n.checked_sub(1),
                                )
                                .is_ok()
                            {
                                to.clear();
                                b"451 try again later\r\n"
                            } else {
                                write.write_all(b"354 go ahead\r\n").await.unwrap();
                                let mut data = String::new();
                                while let Ok(Some(l)) = lines.next_line().await {
                                    if l == "." {
                                        break;
                                    }
                                    data.push_str(&l);
                                    data.push('\n');
                                }
                                let _ = tx.send(Mail {
                                    to: std::mem::take(&mut to),
                                    data,
                                });
                                b"250 queued\r\n"
                            }
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"500 unknown\r\n",
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, rx)
}
