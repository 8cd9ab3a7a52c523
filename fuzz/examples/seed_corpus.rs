//! Writes the committed seed corpus (fuzz/corpus/<target>/): real queries and
//! mutations of the test suites and the benchmarks, one encoded event of
//! every type, and texts of the text rules' tests. Run from fuzz/:
//! `cargo run --example seed_corpus [DIR]` (DIR defaults to fuzz/corpus); the
//! files are named after their content, so a second run rewrites the same
//! files.

use registre_domain::testing::samples;
use serde_json::{json, Value};
use std::path::Path;

/// Role bytes, as `CALLERS` in fuzz_targets/graphql_request.rs orders them.
const ANONYMOUS: u8 = 0;
const ADMIN: u8 = 1;
const HEAD: u8 = 2;
const STAFF: u8 = 3;
const TEACHER: u8 = 4;
const GUARDIAN: u8 = 5;
const STUDENT: u8 = 6;
const AUDITOR: u8 = 7;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("corpus directory");
    std::fs::write(dir.join(name), bytes).expect("write a corpus file");
}

fn request(role: u8, query: &str, variables: Value) -> Vec<u8> {
    let mut bytes = vec![role];
    bytes.extend_from_slice(query.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(variables.to_string().as_bytes());
    bytes
}

fn main() {
    let root = std::env::args().nth(1).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"),
        Into::into,
    );
    let graphql = root.join("graphql_request");
    let requests: Vec<(&str, u8, &str, Value)> = vec![
        ("dashboard", GUARDIAN, r#"query Dashboard {
  myChildren {
    id
    person { displayName }
    schoolClass { name }
    averages { subject average classAverage }
    overallAverage
    grades { score status assessment { subject title date coefficient } }
    absences { id kind start end minutesLate state }
    homework(from: "2026-11-02", to: "2026-11-30") { subject title due }
  }
}"#, json!({})),
        ("me-anonymous", ANONYMOUS, "{ me { id displayName roles } }", json!({})),
        ("me-student", STUDENT, "{ me { id displayName roles } }", json!({})),
        ("student-averages", TEACHER,
         "query($s: ID!) { student(id: $s) { averages { subject average } overallAverage } }",
         json!({"s": "@s1"})),
        ("student-absences", STAFF,
         "query($id: ID!) { student(id: $id) { absences { id state } } }",
         json!({"id": "@s1"})),
        ("absence-stats", STAFF,
         "query($c: ID!) { absenceStats(classId: $c, from: \"2026-11-01\", to: \"2026-11-30\") { halfDaysMissed unjustifiedHalfDays studentsOverThreshold { id } } }",
         json!({"c": "@C1"})),
        ("class-grades", HEAD,
         "query($c: ID!) { schoolClass(id: $c) { students { grades { score } } } }",
         json!({"c": "@C1"})),
        ("audit-trail", AUDITOR,
         "query($p: ID!) { auditTrail(subjectId: $p) { position eventType reason actor { externalId } data } }",
         json!({"p": "@student1"})),
        ("access-log", AUDITOR,
         "query($p: ID!) { accessLog(subjectId: $p) { viewer { externalId } operation service } }",
         json!({"p": "@student1"})),
        ("report-absence", TEACHER,
         "mutation($i: ReportAbsenceInput!) { reportAbsence(input: $i) { id kind state student { id } } }",
         json!({"i": {"studentId": "@s1", "kind": "ABSENCE",
                      "start": "2026-11-17T08:00:00+01:00", "end": "2026-11-17T09:00:00+01:00"}})),
        ("report-lateness", TEACHER,
         "mutation($i: ReportAbsenceInput!) { reportAbsence(input: $i) { id state declared } }",
         json!({"i": {"studentId": "@s1", "kind": "LATENESS", "minutesLate": 10,
                      "start": "2026-11-18T08:00:00+01:00", "end": "2026-11-18T08:10:00+01:00",
                      "idempotencyKey": "fuzz-late-1"}})),
        ("justify-absence", GUARDIAN,
         "mutation($i: JustifyAbsenceInput!) { justifyAbsence(input: $i) { state reason } }",
         json!({"i": {"absenceId": "@AB1", "reason": "Rendez-vous médical"}})),
        ("review-justification", STAFF,
         "mutation($i: ReviewJustificationInput!) { reviewJustification(input: $i) { state } }",
         json!({"i": {"absenceId": "@AB1", "accept": true, "comment": "ok"}})),
        ("record-grade", TEACHER,
         "mutation($i: RecordGradeInput!) { recordGrade(input: $i) { id score status } }",
         json!({"i": {"assessmentId": "@A1", "studentId": "@s1", "score": 12.0, "status": "GRADED"}})),
        ("correct-grade", TEACHER,
         "mutation($i: CorrectGradeInput!) { correctGrade(input: $i) { id score status } }",
         json!({"i": {"gradeId": "@G1", "score": 15.0, "status": "GRADED", "reason": "erreur de report"}})),
        ("send-message", GUARDIAN,
         "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id threadId } }",
         json!({"i": {"to": ["@teacher1"], "subject": "Absence", "body": "Bonjour,\nmerci."}})),
        ("mark-read", GUARDIAN,
         "mutation($m: ID!) { markMessageRead(messageId: $m) { readAt } }",
         json!({"m": "@M1"})),
        ("create-class", ADMIN,
         "mutation($i: CreateClassInput!) { createClass(input: $i) { id } }",
         json!({"i": {"establishmentId": "@E1", "name": "6eA"}})),
        ("fragments", GUARDIAN,
         "query { me { ...F1 } } fragment F0 on Person { id displayName } fragment F1 on Person { ...F0 ...F0 }",
         json!({})),
        ("aliases", STAFF,
         "query($e: ID!) { a: establishment(id: $e) { classes { students { id } } } b: establishment(id: $e) { name } }",
         json!({"e": "@E1"})),
        ("introspection", ANONYMOUS, "{ __schema { queryType { name } types { name kind } } }", json!({})),
        ("bad-date", TEACHER,
         "query($c: ID!) { absenceStats(classId: $c, from: \"2026-02-30\", to: \"2026-11-30\") { halfDaysMissed } }",
         json!({"c": "@C1"})),
    ];
    for (name, role, query, variables) in requests {
        write(&graphql, name, &request(role, query, variables));
    }

    let events = root.join("event_decode");
    let encoded: Vec<Value> = samples()
        .iter()
        .map(|e| {
            let e = e.encode();
            json!({"type": e.event_type, "version": e.schema_version, "data": e.data})
        })
        .collect();
    write(
        &events,
        "all-types",
        Value::Array(encoded.clone()).to_string().as_bytes(),
    );
    for e in &encoded {
        let name = e["type"].as_str().unwrap_or("unknown");
        write(
            &events,
            name,
            Value::Array(vec![e.clone()]).to_string().as_bytes(),
        );
    }

    let texts = root.join("text_rules");
    for (name, pick, text) in [
        ("name", 0u8, "  4e B \t"),
        ("subject", 1, "Histoire-Géographie"),
        ("short-bound", 2 + 4 * 5, "abcdef"),
        ("body-crlf", 3, "\r\nBonjour,\r\n\tà demain\n"),
        ("control", 0, "a\u{7}b"),
        ("escape", 3, "a\u{1b}[31m"),
        ("bidi", 0, "facture\u{202E}fdp.exe"),
        ("isolate", 3, "ligne \u{2067}rtl\u{2069}"),
        ("nel", 0, "\u{85}x\u{85}"),
    ] {
        let mut bytes = vec![pick];
        bytes.extend_from_slice(text.as_bytes());
        write(&texts, name, &bytes);
    }
}
