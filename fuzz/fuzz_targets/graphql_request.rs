//! GraphQL requests, as any client could send them, executed by the real
//! schema (`registre_api::graphql::build_schema`) over the real App on an
//! embedded SQLite store seeded with a small school: the path a request takes
//! after the transport has authenticated it.
//!
//! The input is split as `[role byte][document] 0x00 [variables JSON]`. The
//! role byte picks the caller: anonymous (no `Caller` in the request data),
//! the platform admin, or one person of each role of the school, or a valid
//! token of nobody the school knows. In the document and the variables,
//! `@E1`, `@C1`, `@s1`... stand for the seeded school's ids (see `Ids`), so
//! that the corpus reaches past NOT_FOUND.
//!
//! Asserted, for every input:
//! - no panic (libFuzzer reports one as a crash);
//! - admission's lexical reading of the operation's type agrees with the
//!   parser on every document that parses;
//! - every error of the response has `extensions.code` (the contract's rule;
//!   `REGISTRE_FUZZ_UNCODED_OK=1` relaxes it, for a build without issue 11's
//!   typed validation errors, see docs/fuzzing.md);
//! - nothing is written unless a mutation succeeded: a query, a document
//!   that does not parse or does not select one operation, and a mutation of
//!   one field that failed (an error at the root field, not in reading back
//!   its result) leave the log head where it was.
#![no_main]

use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection};
use async_graphql::{Request, Variables};
use libfuzzer_sys::fuzz_target;
use registre_api::context::Caller;
use registre_api::graphql::{build_schema, RegistreSchema};
use registre_app::{App, AppConfig};
use registre_store::EventStore;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Who sends a request: `None` is anonymous, "admin" is the platform admin
/// (REGISTRE_ADMIN_SUBJECTS), "stranger" a valid token for no known person.
const CALLERS: [Option<&str>; 9] = [
    None,
    Some("admin"),
    Some("head1"),
    Some("staff1"),
    Some("teacher1"),
    Some("guardian1"),
    Some("student1"),
    Some("auditor"),
    Some("stranger"),
];

struct World {
    runtime: tokio::runtime::Runtime,
    schema: RegistreSchema,
    store: Arc<dyn EventStore>,
    /// Placeholder (`@C1`) -> the seeded id, longest placeholders first so
    /// that `@s1` does not eat the start of `@s10`.
    ids: Vec<(String, String)>,
    require_codes: bool,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        // One worker: the App's follower and access-log writer keep running
        // between inputs, as they do in a node.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (schema, store, ids) = runtime.block_on(async {
            let store = registre_store::open(None, dir.path())
                .await
                .expect("open the embedded store");
            let app = App::new(store.clone(), AppConfig::default())
                .await
                .expect("the App starts");
            let schema = build_schema(app);
            let ids = seed(&schema).await;
            (schema, store, ids)
        });
        let mut ids: Vec<(String, String)> =
            ids.into_iter().map(|(k, v)| (format!("@{k}"), v)).collect();
        ids.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
        World {
            runtime,
            schema,
            store,
            ids,
            require_codes: std::env::var_os("REGISTRE_FUZZ_UNCODED_OK").is_none(),
            _dir: dir,
        }
    })
}

async fn run(schema: &RegistreSchema, who: Option<&str>, query: &str, vars: Value) -> Value {
    let mut request = Request::new(query).variables(Variables::from_json(vars));
    if let Some(who) = who {
        request = request.data(Caller {
            subject: who.to_owned(),
            admin: who == "admin",
        });
    }
    serde_json::to_value(schema.execute(request).await).expect("a response is JSON")
}

/// Runs a seeding operation as the admin or a teacher; answers the id at
/// `field` of `data`.
async fn seeded(
    schema: &RegistreSchema,
    who: &str,
    query: &str,
    vars: Value,
    field: &str,
) -> String {
    let r = run(schema, Some(who), query, vars).await;
    r["data"][field]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("seeding failed: {query}: {r}"))
        .to_owned()
}

/// The school of api/tests/common (one establishment, two classes, a person
/// of each role) with an assessment, a grade, an absence, homework and a
/// message, so that every kind of record can be read.
async fn seed(schema: &RegistreSchema) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    // Two weeks ago: absences are bounded to the school years around today,
    // so fixed dates would stop seeding some day.
    let today = chrono::Utc::now().date_naive();
    let day = today - chrono::Days::new(14);
    // Homework is due from today on.
    let due = today + chrono::Days::new(4);
    let e1 = seeded(
        schema,
        "admin",
        "mutation($i: CreateEstablishmentInput!) { createEstablishment(input: $i) { id } }",
        json!({"i": {"uai": "0750001A", "name": "Collège du fuzz", "timeZone": "Europe/Paris"}}),
        "createEstablishment",
    )
    .await;
    ids.insert("E1".to_owned(), e1.clone());
    for class in ["C1", "C2"] {
        let id = seeded(
            schema,
            "admin",
            "mutation($i: CreateClassInput!) { createClass(input: $i) { id } }",
            json!({"i": {"establishmentId": e1, "name": class}}),
            "createClass",
        )
        .await;
        ids.insert(class.to_owned(), id);
    }
    for (name, role, in_establishment) in [
        ("head1", "HEAD", true),
        ("staff1", "EDUCATION_STAFF", true),
        ("teacher1", "TEACHER", true),
        ("student1", "STUDENT", false),
        ("student2", "STUDENT", false),
        ("guardian1", "GUARDIAN", false),
        ("auditor", "AUDITOR", false),
    ] {
        let id = seeded(
            schema,
            "admin",
            "mutation($i: RegisterPersonInput!) { registerPerson(input: $i) { id } }",
            json!({"i": {"externalId": name, "displayName": name, "roles": [role],
                         "establishmentId": in_establishment.then(|| e1.clone())}}),
            "registerPerson",
        )
        .await;
        ids.insert(name.to_owned(), id);
    }
    for (student, person, class) in [("s1", "student1", "C1"), ("s2", "student2", "C2")] {
        let id = seeded(
            schema,
            "admin",
            "mutation($i: EnrollStudentInput!) { enrollStudent(input: $i) { id } }",
            json!({"i": {"personId": ids[person], "classId": ids[class]}}),
            "enrollStudent",
        )
        .await;
        ids.insert(student.to_owned(), id);
    }
    seeded(
        schema,
        "admin",
        "mutation($i: LinkGuardianInput!) { linkGuardian(input: $i) { id } }",
        json!({"i": {"studentId": ids["s1"], "guardianId": ids["guardian1"]}}),
        "linkGuardian",
    )
    .await;
    let r = run(
        schema,
        Some("admin"),
        "mutation($i: AssignTeacherInput!) { assignTeacher(input: $i) }",
        json!({"i": {"teacherId": ids["teacher1"], "classId": ids["C1"], "subject": "maths"}}),
    )
    .await;
    assert_eq!(r["data"]["assignTeacher"], true, "seeding failed: {r}");
    let a1 = seeded(
        schema,
        "teacher1",
        "mutation($i: CreateAssessmentInput!) { createAssessment(input: $i) { id } }",
        json!({"i": {"classId": ids["C1"], "subject": "maths", "title": "Fractions",
                     "date": day.to_string(), "coefficient": 2.0, "outOf": 20.0}}),
        "createAssessment",
    )
    .await;
    ids.insert("A1".to_owned(), a1.clone());
    let g1 = seeded(
        schema,
        "teacher1",
        "mutation($i: RecordGradeInput!) { recordGrade(input: $i) { id } }",
        json!({"i": {"assessmentId": a1, "studentId": ids["s1"], "score": 14.5, "status": "GRADED"}}),
        "recordGrade",
    )
    .await;
    ids.insert("G1".to_owned(), g1);
    let ab1 = seeded(
        schema,
        "teacher1",
        "mutation($i: ReportAbsenceInput!) { reportAbsence(input: $i) { id } }",
        json!({"i": {"studentId": ids["s1"], "kind": "ABSENCE",
                     "start": format!("{day}T08:00:00+01:00"), "end": format!("{day}T10:00:00+01:00")}}),
        "reportAbsence",
    )
    .await;
    ids.insert("AB1".to_owned(), ab1);
    let h1 = seeded(
        schema,
        "teacher1",
        "mutation($i: AssignHomeworkInput!) { assignHomework(input: $i) { id } }",
        json!({"i": {"classId": ids["C1"], "subject": "maths", "title": "Exercices",
                     "description": "p. 42", "due": due.to_string()}}),
        "assignHomework",
    )
    .await;
    ids.insert("H1".to_owned(), h1);
    let m1 = seeded(
        schema,
        "teacher1",
        "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
        json!({"i": {"to": [ids["guardian1"]], "subject": "Bonjour", "body": "À demain."}}),
        "sendMessage",
    )
    .await;
    ids.insert("M1".to_owned(), m1);
    ids
}

fn substitute(text: &str, ids: &[(String, String)]) -> String {
    if !text.contains('@') {
        return text.to_owned();
    }
    let mut out = text.to_owned();
    for (placeholder, id) in ids {
        out = out.replace(placeholder, id);
    }
    out
}

/// What the document would execute, if it parses and selects one operation
/// (no operation name is sent): its type and its number of root selections.
fn selected_operation(doc: &ExecutableDocument) -> Option<(OperationType, usize)> {
    let mut operations = doc.operations.iter();
    let (_, op) = operations.next()?;
    if operations.next().is_some() {
        return None;
    }
    let op = &op.node;
    let roots = op
        .selection_set
        .node
        .items
        .iter()
        .map(|s| match &s.node {
            Selection::Field(_) => 1,
            // A spread at the root may hold any number of fields.
            Selection::FragmentSpread(_) | Selection::InlineFragment(_) => 2,
        })
        .sum();
    Some((op.ty, roots))
}

fn missing_codes(response: &Value) -> Vec<&Value> {
    response["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter(|e| !e["extensions"]["code"].is_string())
                .collect()
        })
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let who = CALLERS[usize::from(pick) % CALLERS.len()];
    let (document, variables) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let w = world();
    let document = substitute(&String::from_utf8_lossy(document), &w.ids);
    let variables =
        serde_json::from_str::<Value>(&substitute(&String::from_utf8_lossy(variables), &w.ids))
            .unwrap_or(Value::Null);
    let parsed = async_graphql::parser::parse_query(&document).ok();
    let operation = parsed.as_ref().and_then(selected_operation);
    if parsed.is_some() {
        // Admission reads the operation lexically where it can: on a document
        // that parses, it must agree with the parser.
        assert_eq!(
            registre_api::admission::is_mutation(&document, None),
            matches!(operation, Some((OperationType::Mutation, _))),
            "admission's reading of the operation differs from the parser's: {document}"
        );
    }

    let (before, response, after) = w.runtime.block_on(async {
        let before = w.store.head().await.expect("head before");
        let response = run(&w.schema, who, &document, variables).await;
        let after = w.store.head().await.expect("head after");
        (before, response, after)
    });

    if w.require_codes {
        let uncoded = missing_codes(&response);
        assert!(
            uncoded.is_empty(),
            "errors without extensions.code as {who:?}: {uncoded:?}\ndocument: {document}"
        );
    }
    // An error below the root field (path longer than one) is in reading
    // back what the mutation returned: the command itself succeeded.
    let errors = response["errors"].as_array().cloned().unwrap_or_default();
    let command_failed = !errors.is_empty()
        && errors
            .iter()
            .all(|e| e["path"].as_array().is_none_or(|path| path.len() <= 1));
    let wrote_nothing_expected = match operation {
        None => true,
        Some((OperationType::Query | OperationType::Subscription, _)) => true,
        Some((OperationType::Mutation, roots)) => command_failed && roots == 1,
    };
    if wrote_nothing_expected {
        assert_eq!(
            before, after,
            "the log moved for a request that wrote nothing as {who:?}: {document}\nresponse: {response}"
        );
    }
});
