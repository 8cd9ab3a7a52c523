//! A region on several nodes (issue 12, decision 0021): nodes over one
//! PostgreSQL, each folding some establishments and the directory, started
//! in this process on ports of their own. A family with a child in each of
//! two schools held by two nodes is answered the same from either; a
//! mutation sent to the node that does not hold its school lands once, on
//! the one that does; a stopped node's school answers UNAVAILABLE, naming
//! it, until a node serving it starts, and nothing acknowledged is lost.

mod support;

use std::time::Duration;

use registre_domain::{events::*, *};
use registre_store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, NewEvent, Partition,
};
use serde_json::{json, Value};
use support::{error_codes, Idp, Node, TestDb, WAIT};
use uuid::Uuid;

const SCHOOL_A: &str = "0750001A";
const SCHOOL_B: &str = "0690002B";
const NODE_KEY: &str = "region-test-node-key-0123456789abcdef";

/// The directory of the region, written straight into the log: two
/// collèges, a class and a teacher in each, a guardian with a child in
/// each.
struct Region {
    class_a: ClassId,
    class_b: ClassId,
    establishment_b: EstablishmentId,
    child_a: StudentId,
    child_b: StudentId,
}

async fn seed_region(store: &dyn EventStore) -> Region {
    let (est_a, est_b) = (
        EstablishmentId(Uuid::new_v4()),
        EstablishmentId(Uuid::new_v4()),
    );
    let (class_a, class_b) = (ClassId(Uuid::new_v4()), ClassId(Uuid::new_v4()));
    let person = |external: &str, roles: Vec<Role>, establishment: Option<EstablishmentId>| {
        DomainEvent::PersonRegistered(PersonRegistered {
            person_id: PersonId::for_external_id(external),
            external_id: external.into(),
            display_name: external.into(),
            roles,
            establishment_id: establishment,
        })
    };
    let establishment = |id, uai: &str| {
        DomainEvent::EstablishmentCreated(EstablishmentCreated {
            establishment_id: id,
            uai: Uai::parse(uai).expect("UAI"),
            name: format!("Collège {uai}"),
            time_zone: TimeZone::DEFAULT,
        })
    };
    let child = |external: &str, class: ClassId| {
        let person = PersonId::for_external_id(external);
        let student = StudentId::for_person(person);
        vec![
            DomainEvent::StudentEnrolled(StudentEnrolled {
                student_id: student,
                person_id: person,
                class_id: class,
            }),
            DomainEvent::GuardianLinked(GuardianLinked {
                student_id: student,
                guardian_id: PersonId::for_external_id("guardian"),
            }),
        ]
    };
    let class = |id, establishment_id, teacher: &str, subject: &str| {
        vec![
            DomainEvent::ClassCreated(ClassCreated {
                class_id: id,
                establishment_id,
                name: "4eB".into(),
            }),
            DomainEvent::TeacherAssigned(TeacherAssigned {
                class_id: id,
                teacher_id: PersonId::for_external_id(teacher),
                subject: subject.into(),
            }),
        ]
    };
    let streams = vec![
        vec![establishment(est_a, SCHOOL_A)],
        vec![establishment(est_b, SCHOOL_B)],
        vec![person("teacher-a", vec![Role::Teacher], Some(est_a))],
        vec![person("teacher-b", vec![Role::Teacher], Some(est_b))],
        vec![person("guardian", vec![Role::Guardian], None)],
        vec![person("child-a", vec![Role::Student], Some(est_a))],
        vec![person("child-b", vec![Role::Student], Some(est_b))],
        class(class_a, est_a, "teacher-a", "Mathématiques"),
        class(class_b, est_b, "teacher-b", "Français"),
        child("child-a", class_a),
        child("child-b", class_b),
    ];
    for events in streams {
        append_stream(store, Partition::directory(), events).await;
    }
    let student = |external: &str| StudentId::for_person(PersonId::for_external_id(external));
    Region {
        class_a,
        class_b,
        establishment_b: est_b,
        child_a: student("child-a"),
        child_b: student("child-b"),
    }
}

/// Appends `events` (one stream's, a new one) to `partition` straight into
/// the log, as a node acknowledging them would have.
async fn append_stream(store: &dyn EventStore, partition: Partition, events: Vec<DomainEvent>) {
    append_events(store, partition, ExpectedVersion::NoStream, events).await;
}

async fn append_events(
    store: &dyn EventStore,
    partition: Partition,
    expected: ExpectedVersion,
    events: Vec<DomainEvent>,
) {
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
            partition,
            stream_id,
            expected,
            events,
            idempotency: None,
        })
        .await
        .expect("append straight into the log");
}

/// A free port on the loopback: a node must know the URL it advertises
/// before it listens.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

async fn start_node(idp: &Idp, db: &TestDb, schools: &str) -> Node {
    start_node_with(idp, db, schools, &[]).await
}

/// A node folding `schools` (empty: all of them) on a port of its own.
async fn start_node_with(idp: &Idp, db: &TestDb, schools: &str, more: &[(&str, &str)]) -> Node {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let url = format!("http://127.0.0.1:{port}");
    let mut settings = vec![
        ("REGISTRE_LISTEN", listen.as_str()),
        ("REGISTRE_ESTABLISHMENTS", schools),
        ("REGISTRE_ADVERTISE_URL", url.as_str()),
        ("REGISTRE_NODE_KEY", NODE_KEY),
        ("REGISTRE_HEARTBEAT_SECS", "1"),
        ("REGISTRE_NODE_TIMEOUT_SECS", "3"),
    ];
    settings.extend_from_slice(more);
    Node::start(&idp.config(db, &settings)).await
}

/// A fresh database holding the seeded region, its identity provider and
/// a store over it.
async fn seeded_region() -> (TestDb, Idp, std::sync::Arc<dyn EventStore>, Region) {
    let db = TestDb::create().await;
    let idp = Idp::new();
    let store = registre::node::open_store(&idp.config(&db, &[]))
        .await
        .expect("open the store");
    let region = seed_region(store.as_ref()).await;
    (db, idp, store, region)
}

/// A node folding school A and one folding school B, both registered.
async fn two_nodes(idp: &Idp, db: &TestDb, store: &dyn EventStore) -> (Node, Node) {
    let node_a = start_node(idp, db, SCHOOL_A).await;
    let node_b = start_node(idp, db, SCHOOL_B).await;
    wait_registered(store, &[&node_a, &node_b]).await;
    (node_a, node_b)
}

/// Waits until the registry lists a live node at each of `nodes`' URLs.
async fn wait_registered(store: &dyn EventStore, nodes: &[&Node]) {
    let registry = store.nodes().expect("PostgreSQL keeps a registry");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let since = chrono::Utc::now() - chrono::Duration::seconds(3);
        let live = registry.live_nodes(since).await.expect("the registry");
        let all = nodes.iter().all(|n| {
            live.iter()
                .any(|r| r.advertise_url == n.url("").trim_end_matches('/'))
        });
        if all {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nodes not registered: {live:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Answers `data`, failing the test on any error.
async fn ok(node: &Node, token: &str, query: &str, variables: Value) -> Value {
    let response = node.graphql(Some(token), query, variables).await;
    assert!(
        response["errors"].is_null(),
        "{query} on {}: {response}",
        node.addr
    );
    response["data"].clone()
}

const DASHBOARD: &str = r#"{
  myChildren {
    id
    schoolClass { name }
    grades { score status assessment { subject outOf } recordedBy { id } }
    averages { subject average classAverage }
    overallAverage
    absences { id kind }
    homework { title subject }
  }
}"#;

/// The guardian's dashboard, children in id order.
async fn dashboard(node: &Node, token: &str) -> Vec<Value> {
    let data = ok(node, token, DASHBOARD, json!({})).await;
    let mut children = data["myChildren"].as_array().expect("children").clone();
    children.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    children
}

async fn create_assessment(node: &Node, token: &str, class: ClassId, subject: &str) -> String {
    let data = ok(
        node,
        token,
        "mutation($i: CreateAssessmentInput!) { createAssessment(input: $i) { id } }",
        json!({"i": {"classId": class.to_string(), "subject": subject, "title": "contrôle",
                     "date": "2026-11-16", "coefficient": 1.0, "outOf": 20.0}}),
    )
    .await;
    data["createAssessment"]["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

const GRADE: &str = "mutation($i: RecordGradeInput!) { recordGrade(input: $i) { id score } }";

fn grade_input(assessment: &str, student: StudentId, score: f64, key: &str) -> Value {
    json!({"i": {"assessmentId": assessment, "studentId": student.to_string(),
                 "score": score, "status": "GRADED", "idempotencyKey": key}})
}

async fn report_absence(node: &Node, token: &str, student: StudentId) -> String {
    let data = ok(
        node,
        token,
        "mutation($i: ReportAbsenceInput!) { reportAbsence(input: $i) { id } }",
        json!({"i": {"studentId": student.to_string(), "kind": "ABSENCE",
                     "start": "2026-11-16T09:00:00+01:00", "end": "2026-11-16T10:00:00+01:00"}}),
    )
    .await;
    data["reportAbsence"]["id"].as_str().expect("id").to_owned()
}

async fn assign_homework(node: &Node, token: &str, class: ClassId, subject: &str) {
    ok(
        node,
        token,
        "mutation($i: AssignHomeworkInput!) { assignHomework(input: $i) { id } }",
        json!({"i": {"classId": class.to_string(), "subject": subject,
                     "title": format!("exercices de {subject}"), "description": "p. 12",
                     "due": (chrono::Utc::now().date_naive() + chrono::Days::new(7)).to_string()}}),
    )
    .await;
}

/// Events of `event_type` in the whole log.
async fn count_events(store: &dyn EventStore, event_type: &str) -> usize {
    let mut n = 0;
    let mut after = 0;
    loop {
        let page = store.read_all(after, 1000).await.expect("read the log");
        let Some(last) = page.last() else {
            return n;
        };
        after = last.position;
        n += page.iter().filter(|e| e.event_type == event_type).count();
    }
}

/// The `extensions.partition` of each error of a response.
fn error_partitions(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["extensions"]["partition"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_family_across_two_nodes_is_served_whole_from_either() {
    let (db, idp, store, region) = seeded_region().await;
    let (node_a, node_b) = two_nodes(&idp, &db, store.as_ref()).await;
    let (teacher_a, teacher_b, guardian) = (
        idp.token("teacher-a"),
        idp.token("teacher-b"),
        idp.token("guardian"),
    );

    // School A's teacher on school A's node.
    let maths = create_assessment(&node_a, &teacher_a, region.class_a, "Mathématiques").await;
    ok(
        &node_a,
        &teacher_a,
        GRADE,
        grade_input(&maths, region.child_a, 15.0, "a-1"),
    )
    .await;
    report_absence(&node_a, &teacher_a, region.child_a).await;
    assign_homework(&node_a, &teacher_a, region.class_a, "Mathématiques").await;

    // School B's teacher on school A's node: every write is forwarded to B.
    let french = create_assessment(&node_a, &teacher_b, region.class_b, "Français").await;
    let graded = ok(
        &node_a,
        &teacher_b,
        GRADE,
        grade_input(&french, region.child_b, 12.0, "b-1"),
    )
    .await;
    assert_eq!(graded["recordGrade"]["score"], json!(12.0));
    report_absence(&node_a, &teacher_b, region.child_b).await;
    assign_homework(&node_b, &teacher_b, region.class_b, "Français").await;
    // The same request again (a client retrying): the same grade, once.
    let again = ok(
        &node_a,
        &teacher_b,
        GRADE,
        grade_input(&french, region.child_b, 12.0, "b-1"),
    )
    .await;
    assert_eq!(again["recordGrade"]["id"], graded["recordGrade"]["id"]);
    assert_eq!(count_events(store.as_ref(), "AssessmentCreated").await, 2);
    assert_eq!(count_events(store.as_ref(), "GradeRecorded").await, 2);
    // A report retried with its idempotency key, the second time on the
    // wrong node: the first one's answer, from the node folding it, once.
    let report = "mutation($i: ReportAbsenceInput!) { reportAbsence(input: $i) { id kind } }";
    let keyed = json!({"i": {"studentId": region.child_b.to_string(), "kind": "LATENESS",
        "start": "2026-11-17T08:00:00+01:00", "end": "2026-11-17T08:10:00+01:00",
        "minutesLate": 10, "idempotencyKey": "late-1"}});
    let first = ok(&node_b, &teacher_b, report, keyed.clone()).await;
    assert_eq!(ok(&node_a, &teacher_b, report, keyed).await, first);
    assert_eq!(count_events(store.as_ref(), "AbsenceReported").await, 3);
    // Each school's events are in its partition, whichever node took them.
    let in_b = store
        .read_partitions(0, &[Partition::establishment(SCHOOL_B)], 100)
        .await
        .expect("read B");
    assert_eq!(in_b.len(), 5, "assessment, grade, two absences, homework");

    // The guardian's dashboard, from either node: both children, whole.
    let from_a = dashboard(&node_a, &guardian).await;
    let from_b = dashboard(&node_b, &guardian).await;
    assert_eq!(from_a, from_b);
    assert_eq!(from_a.len(), 2);
    let of = |student: StudentId| {
        from_a
            .iter()
            .find(|c| c["id"] == json!(student.to_string()))
            .expect("the child")
            .clone()
    };
    let (a, b) = (of(region.child_a), of(region.child_b));
    assert_eq!(a["grades"][0]["score"], json!(15.0));
    assert_eq!(b["grades"][0]["score"], json!(12.0));
    assert_eq!(
        b["grades"][0]["recordedBy"]["id"],
        json!(PersonId::for_external_id("teacher-b").to_string())
    );
    assert_eq!(b["averages"][0]["subject"], json!("Français"));
    assert_eq!(b["overallAverage"], json!(12.0));
    for (child, absences) in [(&a, 1), (&b, 2)] {
        assert_eq!(
            child["absences"].as_array().map(Vec::len),
            Some(absences),
            "{child}"
        );
        assert_eq!(
            child["homework"].as_array().map(Vec::len),
            Some(1),
            "{child}"
        );
    }
    // The node that served the reads logged them (written in the
    // background: waited for), in the access log every node shares.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let about_b = store
            .access_about(PersonId::for_external_id("child-b").0)
            .await
            .expect("access log");
        if about_b
            .iter()
            .any(|r| r.access.operation.contains("grades"))
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{about_b:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An establishment-wide query of school B through A: answered by B.
    let query = "query($id: ID!) { establishment(id: $id) { uai classes { name } } }";
    let vars = json!({"id": region.establishment_b.to_string()});
    assert_eq!(
        ok(&node_a, &teacher_b, query, vars.clone()).await,
        ok(&node_b, &teacher_b, query, vars.clone()).await
    );

    // A request already forwarded once is not forwarded again: refused,
    // nothing written, the school named.
    let response: Value = node_a
        .http()
        .post(node_a.url("/graphql"))
        .bearer_auth(&teacher_b)
        .header("x-registre-forwarded", "a-node")
        .json(&json!({"query": GRADE, "variables": grade_input(&french, region.child_b, 19.0, "b-3")}))
        .send()
        .await
        .expect("POST /graphql")
        .json()
        .await
        .expect("JSON");
    assert_eq!(error_codes(&response), ["UNAVAILABLE"], "{response}");
    assert_eq!(error_partitions(&response), [SCHOOL_B], "{response}");
    assert!(
        response["errors"][0]["extensions"]["forward"].is_null(),
        "{response}"
    );
    assert_eq!(count_events(store.as_ref(), "GradeRecorded").await, 2);

    // School B's node stops: B's records answer UNAVAILABLE naming it, on
    // the dashboard and for a write; school A's still answer.
    node_b.stop().await;
    let response = node_a.graphql(Some(&guardian), DASHBOARD, json!({})).await;
    assert!(
        error_codes(&response).contains(&"UNAVAILABLE".to_string()),
        "{response}"
    );
    assert!(
        error_partitions(&response).contains(&SCHOOL_B.to_string()),
        "{response}"
    );
    let response = node_a
        .graphql(
            Some(&teacher_b),
            GRADE,
            grade_input(&french, region.child_b, 18.0, "b-2"),
        )
        .await;
    assert_eq!(error_codes(&response), ["UNAVAILABLE"], "{response}");
    assert_eq!(error_partitions(&response), [SCHOOL_B], "{response}");
    assert_eq!(count_events(store.as_ref(), "GradeRecorded").await, 2);
    let child_a_only = ok(
        &node_a,
        &guardian,
        "query($id: ID!) { student(id: $id) { grades { score } } }",
        json!({"id": region.child_a.to_string()}),
    )
    .await;
    assert_eq!(child_a_only["student"]["grades"][0]["score"], json!(15.0));

    // Another node takes school B over: the same dashboard, nothing lost.
    let node_c = start_node(&idp, &db, SCHOOL_B).await;
    wait_registered(store.as_ref(), &[&node_c]).await;
    assert_eq!(dashboard(&node_a, &guardian).await, from_a);
    assert_eq!(dashboard(&node_c, &guardian).await, from_a);

    node_a.stop().await;
    node_c.stop().await;
}

/// A guardian whose only child's school another node folds is answered by
/// that node, whole, in one hop rather than from a slice fetched here: the
/// same answer from either node, the read logged; once no node holds the
/// school, UNAVAILABLE naming it, never an empty family.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_about_a_family_held_elsewhere_is_answered_by_the_node_holding_it() {
    let (db, idp, store, region) = seeded_region().await;
    let guardian_b = PersonId::for_external_id("guardian-b");
    append_stream(
        store.as_ref(),
        Partition::directory(),
        vec![DomainEvent::PersonRegistered(PersonRegistered {
            person_id: guardian_b,
            external_id: "guardian-b".into(),
            display_name: "guardian-b".into(),
            roles: vec![Role::Guardian],
            establishment_id: None,
        })],
    )
    .await;
    link_guardian(store.as_ref(), region.child_b, guardian_b).await;
    let (node_a, node_b) = two_nodes(&idp, &db, store.as_ref()).await;
    let teacher_b = idp.token("teacher-b");
    let french = create_assessment(&node_b, &teacher_b, region.class_b, "Français").await;
    ok(
        &node_b,
        &teacher_b,
        GRADE,
        grade_input(&french, region.child_b, 13.5, "h-1"),
    )
    .await;

    let guardian = idp.token("guardian-b");
    let from_a = dashboard(&node_a, &guardian).await;
    assert_eq!(from_a, dashboard(&node_b, &guardian).await);
    assert_eq!(from_a.len(), 1);
    assert_eq!(from_a[0]["grades"][0]["score"], json!(13.5));
    let forwarded = |metrics: &str, outcome: &str| {
        metrics.lines().any(|l| {
            l.starts_with("registre_forwarded_requests_total{")
                && l.contains("reason=\"home\"")
                && l.contains(&format!("outcome=\"{outcome}\""))
                && l.ends_with(" 1")
        })
    };
    let metrics = node_a.metrics().await;
    assert!(forwarded(&metrics, "answered"), "{metrics}");
    // The node holding the school logged the read, in the shared log.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let about = store
            .access_about(PersonId::for_external_id("child-b").0)
            .await
            .expect("access log");
        if about.iter().any(|r| r.access.operation.contains("grades")) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{about:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // B stops (and leaves the registry): A tries, then answers from here,
    // where every field of the child's record is UNAVAILABLE, naming B.
    node_b.stop().await;
    let response = node_a.graphql(Some(&guardian), DASHBOARD, json!({})).await;
    let codes = error_codes(&response);
    assert!(
        !codes.is_empty() && codes.iter().all(|c| c == "UNAVAILABLE"),
        "{response}"
    );
    assert!(error_partitions(&response).iter().all(|p| p == SCHOOL_B));
    assert!(
        response["data"]["myChildren"][0]["grades"].is_null(),
        "{response}"
    );
    let metrics = node_a.metrics().await;
    assert!(forwarded(&metrics, "unavailable"), "{metrics}");
}

/// Links `guardian` to `student` in the student's stream, after what it holds.
async fn link_guardian(store: &dyn EventStore, student: StudentId, guardian: PersonId) {
    let event = DomainEvent::GuardianLinked(GuardianLinked {
        student_id: student,
        guardian_id: guardian,
    });
    append_events(
        store,
        Partition::directory(),
        ExpectedVersion::Any,
        vec![event],
    )
    .await;
}

/// A node serving a set reads only its partitions and the directory, yet
/// reaches the log head when the others write (read-your-writes waits for
/// it), and saves and restarts from its own partitions' snapshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_folds_only_its_schools_and_keeps_its_own_snapshot() {
    let (db, idp, store, region) = seeded_region().await;
    let (node_a, node_b) = two_nodes(&idp, &db, store.as_ref()).await;
    let teacher_b = idp.token("teacher-b");
    create_assessment(&node_b, &teacher_b, region.class_b, "Français").await;
    // Node A is ready (at the head) although the last event is B's.
    node_a.wait_ready().await;
    let (teacher_a, guardian) = (idp.token("teacher-a"), idp.token("guardian"));
    let maths = create_assessment(&node_a, &teacher_a, region.class_a, "Mathématiques").await;
    ok(
        &node_a,
        &teacher_a,
        GRADE,
        grade_input(&maths, region.child_a, 9.5, "a"),
    )
    .await;
    node_a.stop().await;
    node_b.stop().await;
    // One row per school, written by the node folding it (decision 0022);
    // no node folding everything ran, so there is no whole-model manifest.
    for school in [SCHOOL_A, SCHOOL_B] {
        let key = format!("readmodel:{school}");
        assert!(
            store.load_snapshot(&key).await.expect("snapshot").is_some(),
            "{key} saved at shutdown"
        );
    }
    assert!(store
        .load_snapshot("readmodel:manifest")
        .await
        .expect("snapshot")
        .is_none());
    // A restarted node A starts from its own snapshot and answers.
    let node_a = start_node(&idp, &db, SCHOOL_A).await;
    let data = ok(
        &node_a,
        &guardian,
        "query($id: ID!) { student(id: $id) { grades { score } } }",
        json!({"id": region.child_a.to_string()}),
    )
    .await;
    assert_eq!(data["student"]["grades"][0]["score"], json!(9.5));
    node_a.stop().await;
}

/// Reads notifications of subscription `id` until `n` have arrived: their
/// (absence id, position, student id).
async fn notifications(
    ws: &mut support::WsClient,
    id: &str,
    n: usize,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let payload = support::next_payload(&ws.next_json().await, id);
        assert!(payload["errors"].is_null(), "{payload}");
        let n = &payload["data"]["absenceReported"];
        out.push((
            n["absence"]["id"].as_str().expect("absence").to_owned(),
            n["position"].as_str().expect("position").to_owned(),
            n["absence"]["student"]["id"]
                .as_str()
                .expect("student")
                .to_owned(),
        ));
    }
    out
}

async fn subscribe(node: &Node, token: &str, after: Option<&str>) -> support::WsClient {
    let mut ws = support::WsClient::connect(node.addr, support::TRANSPORT_WS).await;
    assert_eq!(ws.init(Some(token)).await["type"], "connection_ack");
    ws.subscribe(
        "live",
        support::ABSENCE_SUBSCRIPTION,
        json!({ "after": after }),
    )
    .await;
    if after.is_some() {
        // It replays the log from there first: read what it answers.
        return ws;
    }
    // Operations are handled in order: once this answers, `live` is on.
    ws.subscribe("sync", "{ me { id } }", json!({})).await;
    support::next_payload(&ws.next_json().await, "sync");
    assert_eq!(ws.next_json().await["type"], "complete");
    ws
}

/// A guardian subscribed on school A's node hears of an absence reported
/// in school B on B's node, and resumes after it with `after`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_absence_crosses_nodes() {
    let (db, idp, store, region) = seeded_region().await;
    let (node_a, node_b) = two_nodes(&idp, &db, store.as_ref()).await;
    let guardian = idp.token("guardian");
    // Two subscribers watching the same schools share one reader of them.
    let mut ws = subscribe(&node_a, &guardian, None).await;
    let mut twin = subscribe(&node_a, &guardian, None).await;

    let in_b = report_absence(&node_b, &idp.token("teacher-b"), region.child_b).await;
    let in_a = report_absence(&node_a, &idp.token("teacher-a"), region.child_a).await;
    let got = notifications(&mut ws, "live", 2).await;
    assert_eq!(notifications(&mut twin, "live", 2).await, got);
    twin.close().await;
    assert_eq!(
        got.iter()
            .map(|g| (g.0.as_str(), g.2.as_str()))
            .collect::<Vec<_>>(),
        [
            (in_b.as_str(), region.child_b.to_string().as_str()),
            (in_a.as_str(), region.child_a.to_string().as_str()),
        ]
    );
    ws.close().await;

    // Resumed on the other node after the first one: the second only, then
    // a new one, none missed, none twice.
    let mut ws = subscribe(&node_b, &guardian, Some(&got[0].1)).await;
    let resumed = notifications(&mut ws, "live", 1).await;
    assert_eq!(resumed[0].0, in_a);
    let again = report_absence(&node_b, &idp.token("teacher-b"), region.child_b).await;
    assert_eq!(notifications(&mut ws, "live", 1).await[0].0, again);
    ws.close().await;
    node_a.stop().await;
    node_b.stop().await;
}

/// School B's node is a process of its own, killed (SIGKILL: no clean stop,
/// its registry row left behind): B answers UNAVAILABLE through A at once
/// (the dead URL refuses, and the row ages out), and every grade B had
/// acknowledged is there when another node takes school B over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_nodes_school_is_unavailable_until_taken_over_and_nothing_is_lost() {
    let (db, idp, store, region) = seeded_region().await;
    let node_a = start_node(&idp, &db, SCHOOL_A).await;
    let port = free_port();
    let mut env = idp.env(&db);
    for (k, v) in [
        ("REGISTRE_LISTEN", format!("127.0.0.1:{port}")),
        ("REGISTRE_ESTABLISHMENTS", SCHOOL_B.to_owned()),
        ("REGISTRE_ADVERTISE_URL", format!("http://127.0.0.1:{port}")),
        ("REGISTRE_NODE_KEY", NODE_KEY.to_owned()),
        ("REGISTRE_HEARTBEAT_SECS", "1".to_owned()),
        ("REGISTRE_NODE_TIMEOUT_SECS", "3".to_owned()),
    ] {
        env.insert(k.to_owned(), v);
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_registre"))
        .arg("serve")
        .env_clear()
        .envs(env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the registre binary");
    let registry = store.nodes().expect("a registry");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let since = chrono::Utc::now() - chrono::Duration::seconds(3);
        let live = registry.live_nodes(since).await.expect("the registry");
        if live.iter().any(|n| n.advertise_url == url) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "B never registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_registered(store.as_ref(), &[&node_a]).await;

    // Grades acknowledged by B (sent through A, forwarded).
    let teacher_b = idp.token("teacher-b");
    let french = create_assessment(&node_a, &teacher_b, region.class_b, "Français").await;
    let graded = ok(
        &node_a,
        &teacher_b,
        GRADE,
        grade_input(&french, region.child_b, 14.0, "k-1"),
    )
    .await;
    let grade_id = graded["recordGrade"]["id"].clone();

    child.kill().expect("kill B");
    child.wait().expect("B is gone");
    let guardian = idp.token("guardian");
    let query = "query($id: ID!) { student(id: $id) { grades { id score } } }";
    let vars = json!({"id": region.child_b.to_string()});
    let response = node_a.graphql(Some(&guardian), query, vars.clone()).await;
    assert_eq!(error_codes(&response), ["UNAVAILABLE"], "{response}");
    assert_eq!(error_partitions(&response), [SCHOOL_B], "{response}");
    assert!(
        response["data"]["student"].is_null(),
        "no record presented as whole: {response}"
    );

    // A node takes school B over: what B acknowledged is there.
    let node_c = start_node(&idp, &db, SCHOOL_B).await;
    wait_registered(store.as_ref(), &[&node_c]).await;
    let data = ok(&node_a, &guardian, query, vars).await;
    assert_eq!(data["student"]["grades"][0]["id"], grade_id);
    assert_eq!(data["student"]["grades"][0]["score"], json!(14.0));
    node_a.stop().await;
    node_c.stop().await;
}

/// The notification outbox per partition: two nodes with disjoint sets,
/// each filling and sending its school's notices (and the directory's),
/// through a real SMTP listener. An absence acknowledged in school B as its
/// node stops is sent by the node that takes B over, from B's checkpoint:
/// every absence reaches the guardian once, none lost, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_schools_notices_are_sent_once_by_its_node_and_after_a_takeover() {
    let (smtp, mut mails) = support::smtp_server(0).await;
    let (db, idp, store, region) = seeded_region().await;
    let mail = [
        ("REGISTRE_SMTP_URL", smtp.as_str()),
        (
            "REGISTRE_MAIL_FROM",
            "Vie scolaire <vie-scolaire@college.test>",
        ),
    ];
    let node_a = start_node_with(&idp, &db, SCHOOL_A, &mail).await;
    let node_b = start_node_with(&idp, &db, SCHOOL_B, &mail).await;
    wait_registered(store.as_ref(), &[&node_a, &node_b]).await;
    let guardian = idp.token("guardian");
    ok(
        &node_b,
        &guardian,
        "mutation($i: NotificationPreferenceInput!) { setNotificationPreference(input: $i) { channel } }",
        json!({"i": {"channel": "EMAIL", "absences": true, "grades": false, "messages": false,
                     "sanctions": false, "email": "parent@example.org"}}),
    )
    .await;

    let in_a = report_absence(&node_a, &idp.token("teacher-a"), region.child_a).await;
    let in_b = report_absence(&node_b, &idp.token("teacher-b"), region.child_b).await;
    let outbox = store.communication().expect("an outbox");
    let delivered = |n: usize| {
        let outbox = outbox.clone();
        async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let rows = outbox.outbox().await.expect("the outbox");
                if rows.len() >= n && rows.iter().all(|r| r.state == "delivered") {
                    return rows;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "not delivered: {rows:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let rows = delivered(2).await;
    let sent: Vec<(String, Option<String>)> = rows
        .iter()
        .map(|r| (r.item.about_id.to_string(), r.item.partition.clone()))
        .collect();
    let mut expected = vec![
        (in_a.clone(), Some(SCHOOL_A.to_owned())),
        (in_b.clone(), Some(SCHOOL_B.to_owned())),
    ];
    expected.sort();
    let mut got = sent.clone();
    got.sort();
    assert_eq!(got, expected, "each school's absence, by its own node");
    for _ in 0..2 {
        let m = tokio::time::timeout(WAIT, mails.recv())
            .await
            .expect("a mail")
            .expect("the listener runs");
        assert_eq!(m.to, ["parent@example.org"]);
    }

    // B's node stops; an absence it acknowledged last is in the log, past
    // B's checkpoint, and no node folds B.
    node_b.stop().await;
    let late = AbsenceId(Uuid::now_v7());
    append_stream(
        store.as_ref(),
        Partition::establishment(SCHOOL_B),
        vec![DomainEvent::AbsenceReported(AbsenceReported {
            absence_id: late,
            student_id: region.child_b,
            kind: AbsenceKind::Absence,
            start: chrono::Utc::now(),
            end: chrono::Utc::now() + chrono::Duration::hours(1),
            minutes_late: None,
        })],
    )
    .await;
    // A folds A: B's absence is not its to announce.
    let in_a_again = report_absence(&node_a, &idp.token("teacher-a"), region.child_a).await;
    delivered(3).await;

    // A node takes B over: it resumes from B's checkpoint.
    let node_c = start_node_with(&idp, &db, SCHOOL_B, &mail).await;
    wait_registered(store.as_ref(), &[&node_c]).await;
    let in_b_again = report_absence(&node_c, &idp.token("teacher-b"), region.child_b).await;
    let rows = delivered(5).await;
    let mut got: Vec<(String, Option<String>)> = rows
        .iter()
        .map(|r| (r.item.about_id.to_string(), r.item.partition.clone()))
        .collect();
    got.sort();
    let mut expected = vec![
        (in_a, Some(SCHOOL_A.to_owned())),
        (in_b, Some(SCHOOL_B.to_owned())),
        (in_a_again, Some(SCHOOL_A.to_owned())),
        (late.to_string(), Some(SCHOOL_B.to_owned())),
        (in_b_again, Some(SCHOOL_B.to_owned())),
    ];
    expected.sort();
    assert_eq!(got, expected, "one row per absence, none lost, none twice");
    assert!(rows.iter().all(|r| r.attempts == 1), "{rows:?}");
    for _ in 0..3 {
        let m = tokio::time::timeout(WAIT, mails.recv())
            .await
            .expect("a mail")
            .expect("the listener runs");
        assert_eq!(m.to, ["parent@example.org"]);
    }
    assert!(mails.try_recv().is_err(), "no sixth mail");
    node_a.stop().await;
    node_c.stop().await;
}
