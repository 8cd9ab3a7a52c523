//! Shared harness of the `graphql_*` tests: a fresh PostgreSQL database per
//! test (dropped afterwards), the real store counted by a delegating wrapper,
//! the App and schema, a seeded school, and a way to run an operation as a
//! given person (the `Caller` the transport would put in the request).
#![allow(dead_code, clippy::unwrap_used)]

use async_graphql::async_trait::async_trait;
use async_graphql::{Request, Response, Variables};
use chrono::{DateTime, Utc};
use registre_api::context::Caller;
use registre_api::graphql::{build_schema, RegistreSchema};
use registre_app::{App, AppConfig};
use registre_store::{
    AccessRecord, AppendOutcome, AppendRequest, EventStore, NewAccess, Partition, Position,
    RecordedEvent, Snapshot, StreamVersion,
};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

// ---- A database per test ---------------------------------------------------------

pub use registre_store::testing::TestDb;

// ---- Counting the store round trips of a request -------------------------------------

tokio::task_local! {
    /// Set around one request's execution: only its round trips are counted
    /// (the App's background follower and access-log writer run in other tasks).
    static COUNTING: ();
}

/// The real store, with a count per method of the calls made while
/// [`CountingStore::count`] runs. Every call is delegated.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn EventStore>,
    calls: parking_lot::Mutex<HashMap<&'static str, u64>>,
    total: AtomicU64,
    race: parking_lot::Mutex<Option<AppendRequest>>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn EventStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            calls: Default::default(),
            total: AtomicU64::new(0),
            race: Default::default(),
        })
    }

    /// Another writer appends `request` right after the next read of its
    /// stream: the reader decides on a version that is no longer the
    /// stream's, and its append meets a real expected-version conflict.
    /// Written past the vault: `request` must hold no personal field.
    pub fn race_after_next_read(&self, request: AppendRequest) {
        *self.race.lock() = Some(request);
    }

    /// Whether the race set by [`CountingStore::race_after_next_read`] is still to run.
    pub fn race_pending(&self) -> bool {
        self.race.lock().is_some()
    }

    fn hit(&self, method: &'static str) {
        if COUNTING.try_with(|_| ()).is_ok() {
            *self.calls.lock().entry(method).or_default() += 1;
            self.total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Runs `f` counting its round trips; returns its output and the counts.
    pub async fn count<F: std::future::Future>(
        &self,
        f: F,
    ) -> (F::Output, HashMap<&'static str, u64>) {
        self.calls.lock().clear();
        let out = COUNTING.scope((), f).await;
        (out, self.calls.lock().clone())
    }
}

#[async_trait]
impl EventStore for CountingStore {
    async fn append(&self, request: AppendRequest) -> registre_store::Result<AppendOutcome> {
        self.hit("append");
        self.inner.append(request).await
    }
    async fn append_batch(
        &self,
        requests: Vec<AppendRequest>,
    ) -> registre_store::Result<Vec<AppendOutcome>> {
        self.hit("append_batch");
        self.inner.append_batch(requests).await
    }
    async fn find_idempotent(&self, key: &str) -> registre_store::Result<Option<AppendOutcome>> {
        self.hit("find_idempotent");
        self.inner.find_idempotent(key).await
    }
    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: StreamVersion,
    ) -> registre_store::Result<Vec<RecordedEvent>> {
        self.hit("read_stream");
        let events = self.inner.read_stream(stream_id, after_version).await?;
        let race = {
            let mut race = self.race.lock();
            match race.as_ref() {
                Some(r) if r.stream_id == stream_id => race.take(),
                _ => None,
            }
        };
        if let Some(request) = race {
            self.inner.append(request).await?;
        }
        Ok(events)
    }
    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> registre_store::Result<Vec<RecordedEvent>> {
        self.hit("read_all");
        self.inner.read_all(after, limit).await
    }
    async fn read_partitions(
        &self,
        after: Position,
        partitions: &[Partition],
        limit: usize,
    ) -> registre_store::Result<Vec<RecordedEvent>> {
        self.hit("read_partitions");
        self.inner.read_partitions(after, partitions, limit).await
    }

    async fn first_unassigned(&self) -> registre_store::Result<Option<Position>> {
        self.hit("first_unassigned");
        self.inner.first_unassigned().await
    }

    async fn assign_partitions(
        &self,
        assignments: &[(Position, Partition)],
    ) -> registre_store::Result<u64> {
        self.hit("assign_partitions");
        self.inner.assign_partitions(assignments).await
    }

    async fn read_positions(
        &self,
        positions: &[Position],
    ) -> registre_store::Result<Vec<RecordedEvent>> {
        self.hit("read_positions");
        self.inner.read_positions(positions).await
    }
    async fn head(&self) -> registre_store::Result<Position> {
        self.hit("head");
        self.inner.head().await
    }
    fn wakeups(&self) -> watch::Receiver<Position> {
        self.inner.wakeups()
    }
    async fn load_snapshot(&self, key: &str) -> registre_store::Result<Option<Snapshot>> {
        self.hit("load_snapshot");
        self.inner.load_snapshot(key).await
    }
    async fn save_snapshot(&self, snapshot: Snapshot) -> registre_store::Result<()> {
        self.hit("save_snapshot");
        self.inner.save_snapshot(snapshot).await
    }
    async fn save_snapshots(&self, snapshots: Vec<Snapshot>) -> registre_store::Result<()> {
        self.hit("save_snapshots");
        self.inner.save_snapshots(snapshots).await
    }
    async fn record_access(&self, entries: Vec<NewAccess>) -> registre_store::Result<()> {
        self.hit("record_access");
        self.inner.record_access(entries).await
    }
    async fn read_access(
        &self,
        after: u64,
        limit: usize,
    ) -> registre_store::Result<Vec<AccessRecord>> {
        self.hit("read_access");
        self.inner.read_access(after, limit).await
    }
    async fn access_about(
        &self,
        subject_id: uuid::Uuid,
    ) -> registre_store::Result<Vec<AccessRecord>> {
        self.hit("access_about");
        self.inner.access_about(subject_id).await
    }
    async fn purge_access_before(&self, before: DateTime<Utc>) -> registre_store::Result<u64> {
        self.hit("purge_access_before");
        self.inner.purge_access_before(before).await
    }

    fn subject_keys(&self) -> Option<Arc<dyn registre_store::SubjectKeys>> {
        self.inner.subject_keys()
    }

    fn communication(&self) -> Option<Arc<dyn registre_store::communication::CommunicationStore>> {
        self.inner.communication()
    }

    fn usage(&self) -> Option<Arc<dyn registre_store::usage::UsageStore>> {
        self.inner.usage()
    }
}

// ---- The harness ---------------------------------------------------------------------

/// One node: App + schema over a (counted) store.
pub struct Node {
    pub app: Arc<App>,
    pub schema: RegistreSchema,
    pub store: Arc<CountingStore>,
}

impl Node {
    pub async fn start(store: Arc<dyn EventStore>) -> Node {
        Node::start_with(store, AppConfig::default()).await
    }

    pub async fn start_with(store: Arc<dyn EventStore>, config: AppConfig) -> Node {
        let store = CountingStore::new(store);
        let app = App::new(store.clone(), config)
            .await
            .expect("the App starts");
        Node {
            schema: build_schema(app.clone()),
            app,
            store,
        }
    }

    /// Runs `query` as the person whose `sub` is `who` ("admin" is an admin subject).
    pub async fn run(&self, who: &str, query: &str, vars: Value) -> Response {
        let request = Request::new(query)
            .variables(Variables::from_json(vars))
            .data(Caller {
                subject: who.to_owned(),
                admin: who == "admin",
            });
        self.schema.execute(request).await
    }

    /// Runs and expects success; returns `data` as JSON.
    pub async fn ok(&self, who: &str, query: &str, vars: Value) -> Value {
        let r = self.run(who, query, vars).await;
        assert!(
            r.errors.is_empty(),
            "{who}: {query}\nerrors: {:?}",
            r.errors
        );
        r.data.into_json().expect("data is JSON")
    }

    pub async fn head(&self) -> Position {
        self.store.inner.head().await.expect("head")
    }
}

/// The `extensions.code` of every error of a response.
pub fn codes(r: &Response) -> Vec<String> {
    r.errors
        .iter()
        .filter_map(|e| {
            e.extensions
                .as_ref()
                .and_then(|x| x.get("code"))
                .map(|c| c.to_string())
        })
        .map(|c| c.trim_matches('"').to_owned())
        .collect()
}

/// A test's world: a database, a node, a seeded school.
pub struct World {
    pub db: Option<TestDb>,
    pub _dir: Option<TempDir>,
    pub node: Node,
    pub ids: HashMap<&'static str, String>,
}

impl World {
    pub fn id(&self, name: &str) -> String {
        self.ids
            .get(name)
            .unwrap_or_else(|| panic!("no id {name} in the fixture"))
            .clone()
    }

    pub async fn postgres() -> World {
        let db = TestDb::create().await;
        let store = registre_store::open(Some(&db.url), std::path::Path::new("."))
            .await
            .expect("open the PostgreSQL store");
        let node = Node::start(store).await;
        let mut w = World {
            db: Some(db),
            _dir: None,
            node,
            ids: HashMap::new(),
        };
        w.seed().await;
        w
    }

    pub async fn sqlite() -> World {
        let dir = TempDir::new();
        let store = registre_store::open(None, &dir.0)
            .await
            .expect("open the embedded store");
        let node = Node::start(store).await;
        let mut w = World {
            db: None,
            _dir: Some(dir),
            node,
            ids: HashMap::new(),
        };
        w.seed().await;
        w
    }

    /// teacher1 grades s1 `score` in a maths assessment of C1, then corrects
    /// the grade to `corrected` for `reason`. Answers the grade's id.
    pub async fn corrected_grade(&self, score: f64, corrected: f64, reason: &str) -> String {
        let n = &self.node;
        let a = str_at(
            &n.ok(
                "teacher1",
                "mutation($i: CreateAssessmentInput!) { createAssessment(input: $i) { id } }",
                json!({"i": {"classId": self.id("C1"), "subject": "maths", "title": "Fractions",
                             "date": "2026-11-02", "coefficient": 2.0, "outOf": 20.0}}),
            )
            .await,
            "/createAssessment/id",
        );
        let g = str_at(
            &n.ok(
                "teacher1",
                "mutation($i: RecordGradeInput!) { recordGrade(input: $i) { id } }",
                json!({"i": {"assessmentId": a, "studentId": self.id("s1"), "score": score, "status": "GRADED"}}),
            )
            .await,
            "/recordGrade/id",
        );
        n.ok(
            "teacher1",
            "mutation($i: CorrectGradeInput!) { correctGrade(input: $i) { id } }",
            json!({"i": {"gradeId": g, "score": corrected, "status": "GRADED", "reason": reason}}),
        )
        .await;
        g
    }

    /// Another node on the same PostgreSQL database.
    pub async fn second_node(&self) -> Node {
        self.second_node_with(AppConfig::default()).await
    }

    pub async fn second_node_with(&self, config: AppConfig) -> Node {
        let db = self.db.as_ref().expect("a PostgreSQL world");
        let store = registre_store::open(Some(&db.url), std::path::Path::new("."))
            .await
            .expect("open the PostgreSQL store");
        Node::start_with(store, config).await
    }

    async fn register(&mut self, name: &'static str, roles: &[&str], est: Option<&str>) {
        let est = est.map(|e| self.id(e));
        let d = self
            .node
            .ok(
                "admin",
                "mutation($i: RegisterPersonInput!) { registerPerson(input: $i) { id } }",
                json!({"i": {"externalId": name, "displayName": name, "roles": roles, "establishmentId": est}}),
            )
            .await;
        self.ids.insert(name, str_at(&d, "/registerPerson/id"));
    }

    async fn enroll(&mut self, student_key: &'static str, person: &'static str, class: &str) {
        let d = self
            .node
            .ok(
                "admin",
                "mutation($i: EnrollStudentInput!) { enrollStudent(input: $i) { id } }",
                json!({"i": {"personId": self.id(person), "classId": self.id(class)}}),
            )
            .await;
        self.ids
            .insert(student_key, str_at(&d, "/enrollStudent/id"));
    }

    async fn link(&self, student: &str, guardian: &str) {
        self.node
            .ok(
                "admin",
                "mutation($i: LinkGuardianInput!) { linkGuardian(input: $i) { id } }",
                json!({"i": {"studentId": self.id(student), "guardianId": self.id(guardian)}}),
            )
            .await;
    }

    async fn assign(&self, teacher: &str, class: &str, subject: &str) {
        self.node
            .ok(
                "admin",
                "mutation($i: AssignTeacherInput!) { assignTeacher(input: $i) }",
                json!({"i": {"teacherId": self.id(teacher), "classId": self.id(class), "subject": subject}}),
            )
            .await;
    }

    /// Two establishments. In E1: classes C1, C2; head1, staff1, teacher1
    /// (maths in C1), teacher2 (french in C2), students s1 and s4 in C1 (s1's
    /// guardian: guardian1), s2 in C2 (guardian2). In E2: class C3, staff2,
    /// teacher3 (maths in C3), s3 (guardian3). And an auditor.
    async fn seed(&mut self) {
        for (key, uai) in [("E1", "0750001A"), ("E2", "9740002B")] {
            let tz = if key == "E1" {
                "Europe/Paris"
            } else {
                "Indian/Reunion"
            };
            let d = self
                .node
                .ok(
                    "admin",
                    "mutation($i: CreateEstablishmentInput!) { createEstablishment(input: $i) { id } }",
                    json!({"i": {"uai": uai, "name": key, "timeZone": tz}}),
                )
                .await;
            self.ids.insert(key, str_at(&d, "/createEstablishment/id"));
        }
        for (key, est) in [("C1", "E1"), ("C2", "E1"), ("C3", "E2")] {
            let d = self
                .node
                .ok(
                    "admin",
                    "mutation($i: CreateClassInput!) { createClass(input: $i) { id } }",
                    json!({"i": {"establishmentId": self.id(est), "name": key}}),
                )
                .await;
            self.ids.insert(key, str_at(&d, "/createClass/id"));
        }
        self.register("head1", &["HEAD"], Some("E1")).await;
        self.register("staff1", &["EDUCATION_STAFF"], Some("E1"))
            .await;
        self.register("staff2", &["EDUCATION_STAFF"], Some("E2"))
            .await;
        self.register("teacher1", &["TEACHER"], Some("E1")).await;
        self.register("teacher2", &["TEACHER"], Some("E1")).await;
        self.register("teacher3", &["TEACHER"], Some("E2")).await;
        for (p, g) in [
            ("student1", "guardian1"),
            ("student2", "guardian2"),
            ("student3", "guardian3"),
        ] {
            self.register(p, &["STUDENT"], None).await;
            self.register(g, &["GUARDIAN"], None).await;
        }
        self.register("student4", &["STUDENT"], None).await;
        self.register("auditor", &["AUDITOR"], None).await;
        self.enroll("s1", "student1", "C1").await;
        self.enroll("s2", "student2", "C2").await;
        self.enroll("s3", "student3", "C3").await;
        self.enroll("s4", "student4", "C1").await;
        self.link("s1", "guardian1").await;
        self.link("s2", "guardian2").await;
        self.link("s3", "guardian3").await;
        self.assign("teacher1", "C1", "maths").await;
        self.assign("teacher2", "C2", "french").await;
        self.assign("teacher3", "C3", "maths").await;
    }
}

/// Runs the `registre` binary against the world's PostgreSQL database, with
/// `env` beside `DATABASE_URL`. The world's node runs in this process: the
/// command runs in `block_in_place` (tests calling it use the multi-thread
/// runtime), since blocking the runtime's only thread while the command waits
/// on a row the node's access-log writer holds in an open transaction would
/// wait forever.
pub fn run_registre(w: &World, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let db = w.db.as_ref().expect("a PostgreSQL world");
    tokio::task::block_in_place(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_registre"))
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &db.url)
            .env("REGISTRE_LOG", "warn")
            .envs(env.iter().copied())
            .output()
            .expect("run registre")
    })
}

pub fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
        .to_owned()
}

/// A temporary directory removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let p =
            std::env::temp_dir().join(format!("registre-gql-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p).expect("create a temporary directory");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
