//! End-to-end flows through the schema on a real PostgreSQL database (and a
//! smoke run on the embedded SQLite store): averages, the absence lifecycle,
//! corrections in the audit trail, idempotency, read-your-writes across two
//! nodes, the access log, the live absence feed and the store round trips of a
//! guardian's dashboard.
#![allow(clippy::unwrap_used)]

mod common;

use common::{codes, str_at, World};
use futures::StreamExt;
use registre_api::context::Caller;
use serde_json::{json, Value};

const ASSESS: &str = "mutation($i: CreateAssessmentInput!) { createAssessment(input: $i) { id } }";
const GRADE: &str =
    "mutation($i: RecordGradeInput!) { recordGrade(input: $i) { id score status } }";
const REPORT: &str =
    "mutation($i: ReportAbsenceInput!) { reportAbsence(input: $i) { id state declared } }";

async fn assessment(
    w: &World,
    teacher: &str,
    class: &str,
    subject: &str,
    coef: f64,
    out_of: f64,
) -> String {
    let d = w
        .node
        .ok(
            teacher,
            ASSESS,
            json!({"i": {"classId": w.id(class), "subject": subject, "title": "contrôle",
                         "date": "2026-11-20", "coefficient": coef, "outOf": out_of}}),
        )
        .await;
    str_at(&d, "/createAssessment/id")
}

async fn grade(
    w: &World,
    teacher: &str,
    assessment: &str,
    student: &str,
    score: Option<f64>,
    status: &str,
) -> String {
    let d = w
        .node
        .ok(
            teacher,
            GRADE,
            json!({"i": {"assessmentId": assessment, "studentId": w.id(student), "score": score, "status": status}}),
        )
        .await;
    str_at(&d, "/recordGrade/id")
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

#[tokio::test]
async fn a_classmate_s_new_grade_moves_the_class_average_of_the_next_answer() {
    let w = World::postgres().await;
    let a1 = assessment(&w, "teacher1", "C1", "maths", 1.0, 20.0).await;
    grade(&w, "teacher1", &a1, "s1", Some(15.0), "GRADED").await;
    let q = "{ myChildren { averages { subject classAverage } } }";
    let before = w.node.ok("guardian1", q, json!({})).await;
    let row = &before["myChildren"][0]["averages"][0];
    assert!(close(&row["classAverage"], 15.0), "{row}");
    // The class averages are cached per class: the cache must not outlive
    // the model state it was computed from.
    grade(&w, "teacher1", &a1, "s4", Some(5.0), "GRADED").await;
    let after = w.node.ok("guardian1", q, json!({})).await;
    let row = &after["myChildren"][0]["averages"][0];
    assert!(close(&row["classAverage"], 10.0), "{row}");
}

#[tokio::test]
async fn averages_are_weighted_on_twenty_and_count_graded_only() {
    let w = World::postgres().await;
    let a1 = assessment(&w, "teacher1", "C1", "maths", 1.0, 20.0).await;
    let a2 = assessment(&w, "teacher1", "C1", "maths", 2.0, 10.0).await;
    let a3 = assessment(&w, "teacher1", "C1", "maths", 3.0, 20.0).await;
    grade(&w, "teacher1", &a1, "s1", Some(15.0), "GRADED").await;
    grade(&w, "teacher1", &a2, "s1", Some(8.0), "GRADED").await;
    grade(&w, "teacher1", &a3, "s1", None, "ABSENT").await;
    grade(&w, "teacher1", &a1, "s4", Some(10.0), "GRADED").await;
    grade(&w, "teacher1", &a2, "s4", Some(5.0), "GRADED").await;

    let d = w
        .node
        .ok(
            "guardian1",
            "{ myChildren { id grades { score status } averages { subject average classAverage } overallAverage } }",
            json!({}),
        )
        .await;
    let kid = &d["myChildren"][0];
    assert_eq!(d["myChildren"].as_array().unwrap().len(), 1);
    assert_eq!(kid["grades"].as_array().unwrap().len(), 3);
    let row = &kid["averages"][0];
    assert_eq!(row["subject"], "maths");
    // (15/20*20*1 + 8/10*20*2) / 3 = 47/3; s4: (10 + 10*2)/3 = 10.
    assert!(close(&row["average"], 47.0 / 3.0), "{row}");
    assert!(
        close(&row["classAverage"], (47.0 / 3.0 + 10.0) / 2.0),
        "{row}"
    );
    assert!(close(&kid["overallAverage"], 47.0 / 3.0), "{kid}");

    // A score above outOf is refused with the field named, and nothing is written.
    let head = w.node.head().await;
    let r = w
        .node
        .run(
            "teacher1",
            GRADE,
            json!({"i": {"assessmentId": a3, "studentId": w.id("s4"), "score": 21.0, "status": "GRADED"}}),
        )
        .await;
    assert_eq!(codes(&r), ["INVALID_INPUT"]);
    let field = r.errors[0]
        .extensions
        .as_ref()
        .and_then(|e| e.get("field"))
        .map(|f| f.to_string());
    assert_eq!(field.as_deref(), Some("\"score\""));
    assert_eq!(w.node.head().await, head);

    // No GRADED grade: overallAverage is null, the subject row is still there.
    let d = w
        .node
        .ok(
            "teacher1",
            "query($s: ID!) { student(id: $s) { averages { subject average } overallAverage } }",
            json!({"s": w.id("s4")}),
        )
        .await;
    assert!(close(&d["student"]["overallAverage"], 10.0));
    let solo = assessment(&w, "teacher2", "C2", "french", 1.0, 20.0).await;
    grade(&w, "teacher2", &solo, "s2", None, "EXEMPT").await;
    let d = w
        .node
        .ok(
            "guardian2",
            "{ myChildren { averages { subject average } overallAverage } }",
            json!({}),
        )
        .await;
    assert_eq!(
        d["myChildren"][0]["averages"],
        json!([{"subject": "french", "average": null}])
    );
    assert_eq!(d["myChildren"][0]["overallAverage"], Value::Null);
}

#[tokio::test]
async fn absence_lifecycle_including_a_declared_absence() {
    let w = World::postgres().await;
    let start = "2026-11-23T08:00:00+01:00";
    let end = "2026-11-23T12:00:00+01:00";
    let d = w
        .node
        .ok(
            "teacher1",
            REPORT,
            json!({"i": {"studentId": w.id("s1"), "kind": "ABSENCE", "start": start, "end": end}}),
        )
        .await;
    let absence = str_at(&d, "/reportAbsence/id");
    assert_eq!(d["reportAbsence"]["state"], "UNJUSTIFIED");

    let justify =
        "mutation($i: JustifyAbsenceInput!) { justifyAbsence(input: $i) { state reason } }";
    let review =
        "mutation($i: ReviewJustificationInput!) { reviewJustification(input: $i) { state } }";
    let d = w
        .node
        .ok(
            "guardian1",
            justify,
            json!({"i": {"absenceId": absence, "reason": "malade"}}),
        )
        .await;
    assert_eq!(
        d["justifyAbsence"],
        json!({"state": "PENDING", "reason": "malade"})
    );
    let d = w
        .node
        .ok(
            "staff1",
            review,
            json!({"i": {"absenceId": absence, "accept": false, "comment": "no note"}}),
        )
        .await;
    assert_eq!(d["reviewJustification"]["state"], "REJECTED");
    w.node
        .ok(
            "guardian1",
            justify,
            json!({"i": {"absenceId": absence, "reason": "certificat"}}),
        )
        .await;
    let d = w
        .node
        .ok(
            "staff1",
            review,
            json!({"i": {"absenceId": absence, "accept": true}}),
        )
        .await;
    assert_eq!(d["reviewJustification"]["state"], "ACCEPTED");
    // An accepted absence cannot be justified again, nor reviewed again.
    let r = w
        .node
        .run(
            "guardian1",
            justify,
            json!({"i": {"absenceId": absence, "reason": "again"}}),
        )
        .await;
    assert_eq!(codes(&r), ["CONFLICT"]);
    let r = w
        .node
        .run(
            "staff1",
            review,
            json!({"i": {"absenceId": absence, "accept": false}}),
        )
        .await;
    assert_eq!(codes(&r), ["CONFLICT"]);

    // Declared in advance by the guardian, then confirmed by the roll call:
    // one absence, PENDING from the start, no longer "declared" once confirmed.
    // In advance, and within the school years absences may fall in.
    let ahead = (chrono::Utc::now() + chrono::TimeDelta::days(60)).format("%Y-%m-%d");
    let d = w
        .node
        .ok(
            "guardian1",
            "mutation($i: DeclareAbsenceInput!) { declareAbsence(input: $i) { id state declared } }",
            json!({"i": {"studentId": w.id("s1"), "start": format!("{ahead}T13:00:00+01:00"),
                         "end": format!("{ahead}T17:00:00+01:00"), "reason": "orthodontiste"}}),
        )
        .await;
    let declared = str_at(&d, "/declareAbsence/id");
    assert_eq!(d["declareAbsence"]["state"], "PENDING");
    assert_eq!(d["declareAbsence"]["declared"], true);
    let d = w
        .node
        .ok(
            "teacher1",
            REPORT,
            json!({"i": {"studentId": w.id("s1"), "kind": "ABSENCE",
                         "start": format!("{ahead}T14:00:00+01:00"), "end": format!("{ahead}T15:00:00+01:00")}}),
        )
        .await;
    assert_eq!(str_at(&d, "/reportAbsence/id"), declared);
    assert_eq!(d["reportAbsence"]["declared"], false);
    assert_eq!(d["reportAbsence"]["state"], "PENDING");

    let d = w
        .node
        .ok(
            "guardian1",
            "query($id: ID!) { student(id: $id) { absences { id state } } }",
            json!({"id": w.id("s1")}),
        )
        .await;
    assert_eq!(d["student"]["absences"].as_array().unwrap().len(), 2);

    // Lateness needs minutesLate; absence refuses it.
    let r = w
        .node
        .run(
            "teacher1",
            REPORT,
            json!({"i": {"studentId": w.id("s1"), "kind": "LATENESS", "start": start, "end": end}}),
        )
        .await;
    assert_eq!(codes(&r), ["INVALID_INPUT"]);

    // Half-day statistics of November: s1's accepted morning; then two full
    // unjustified days of s4 put s4 over the threshold of 4 half-days.
    let stats = "query($c: ID!) { absenceStats(classId: $c, from: \"2026-11-01\", to: \"2026-11-30\") { halfDaysMissed unjustifiedHalfDays studentsOverThreshold { id } } }";
    let d = w.node.ok("staff1", stats, json!({"c": w.id("C1")})).await;
    assert_eq!(d["absenceStats"]["halfDaysMissed"], 1);
    assert_eq!(d["absenceStats"]["unjustifiedHalfDays"], 0);
    for day in ["2026-11-02", "2026-11-03"] {
        w.node
            .ok(
                "staff1",
                REPORT,
                json!({"i": {"studentId": w.id("s4"), "kind": "ABSENCE",
                             "start": format!("{day}T08:00:00+01:00"), "end": format!("{day}T17:00:00+01:00")}}),
            )
            .await;
    }
    let d = w.node.ok("auditor", stats, json!({"c": w.id("C1")})).await;
    assert_eq!(d["absenceStats"]["halfDaysMissed"], 5);
    assert_eq!(d["absenceStats"]["unjustifiedHalfDays"], 4);
    assert_eq!(
        d["absenceStats"]["studentsOverThreshold"],
        json!([{"id": w.id("s4")}])
    );
}

#[tokio::test]
async fn a_correction_keeps_the_earlier_value_in_the_audit_trail() {
    let w = World::postgres().await;
    let a = assessment(&w, "teacher1", "C1", "maths", 1.0, 20.0).await;
    let g = grade(&w, "teacher1", &a, "s1", Some(12.0), "GRADED").await;
    let correct =
        "mutation($i: CorrectGradeInput!) { correctGrade(input: $i) { id score status } }";
    let r = w
        .node
        .run(
            "teacher1",
            correct,
            json!({"i": {"gradeId": g, "score": 14.0, "status": "GRADED", "reason": " "}}),
        )
        .await;
    assert_eq!(codes(&r), ["INVALID_INPUT"], "a correction needs a reason");
    let d = w
        .node
        .ok(
            "teacher1",
            correct,
            json!({"i": {"gradeId": g, "score": 14.0, "status": "GRADED", "reason": "erreur de report"}}),
        )
        .await;
    assert_eq!(
        d["correctGrade"],
        json!({"id": g, "score": 14.0, "status": "GRADED"})
    );
    // A second recordGrade for the same pair is a conflict, not a silent overwrite.
    let r = w
        .node
        .run("teacher1", GRADE, json!({"i": {"assessmentId": a, "studentId": w.id("s1"), "score": 3.0, "status": "GRADED"}}))
        .await;
    assert_eq!(codes(&r), ["CONFLICT"]);

    let d = w.node.ok("student1", "{ me { id } }", json!({})).await;
    let person = str_at(&d, "/me/id");
    let d = w
        .node
        .ok(
            "auditor",
            "query($p: ID!) { auditTrail(subjectId: $p) { position eventType reason actor { externalId } data } }",
            json!({"p": person}),
        )
        .await;
    let trail = d["auditTrail"].as_array().unwrap();
    let types: Vec<&str> = trail
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "PersonRegistered",
            "StudentEnrolled",
            "GuardianLinked",
            "GradeRecorded",
            "GradeCorrected"
        ]
    );
    let corrected = &trail[4];
    assert_eq!(corrected["reason"], "erreur de report");
    assert_eq!(corrected["actor"]["externalId"], "teacher1");
    assert_eq!(corrected["data"]["previous_score"], 12.0);
    assert_eq!(corrected["data"]["score"], 14.0);
    assert_eq!(trail[3]["data"]["score"], 12.0);
    let positions: Vec<u64> = trail
        .iter()
        .map(|e| e["position"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]), "oldest first");
}

#[tokio::test]
async fn an_idempotency_key_answers_the_same_object_and_writes_once() {
    let w = World::postgres().await;
    let input = json!({"i": {"studentId": w.id("s1"), "kind": "LATENESS", "start": "2026-11-24T08:00:00Z",
                             "end": "2026-11-24T08:15:00Z", "minutesLate": 15, "idempotencyKey": "roll-1"}});
    let first = w.node.ok("teacher1", REPORT, input.clone()).await;
    let head = w.node.head().await;
    let again = w.node.ok("teacher1", REPORT, input.clone()).await;
    assert_eq!(first, again);
    assert_eq!(w.node.head().await, head, "a repeated key writes nothing");

    // The key is scoped by caller: another teacher's "roll-1" is their own.
    let d = w.node.ok("staff1", REPORT, input.clone()).await;
    assert_ne!(
        str_at(&d, "/reportAbsence/id"),
        str_at(&first, "/reportAbsence/id")
    );

    // The same key with another command is refused, and writes nothing.
    let head = w.node.head().await;
    let mut other = input.clone();
    other["i"]["minutesLate"] = json!(20);
    let r = w.node.run("teacher1", REPORT, other).await;
    assert_eq!(codes(&r), ["CONFLICT"]);
    assert_eq!(w.node.head().await, head);

    // recordGrade and sendMessage take keys too.
    let a = assessment(&w, "teacher1", "C1", "maths", 1.0, 20.0).await;
    let g = json!({"i": {"assessmentId": a, "studentId": w.id("s1"), "score": 11.0, "status": "GRADED", "idempotencyKey": "g-1"}});
    let g1 = w.node.ok("teacher1", GRADE, g.clone()).await;
    let g2 = w.node.ok("teacher1", GRADE, g).await;
    assert_eq!(g1, g2);
    let send = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id threadId } }";
    let m = json!({"i": {"to": [w.id("teacher1")], "subject": "RDV", "body": "Bonjour", "idempotencyKey": "m-1"}});
    let m1 = w.node.ok("guardian1", send, m.clone()).await;
    let m2 = w.node.ok("guardian1", send, m).await;
    assert_eq!(m1, m2);
}

#[tokio::test]
async fn a_write_on_one_node_is_read_on_another_at_once() {
    let w = World::postgres().await;
    let other = w.second_node().await;
    let a = assessment(&w, "teacher1", "C1", "maths", 1.0, 20.0).await;
    grade(&w, "teacher1", &a, "s1", Some(17.0), "GRADED").await;
    // No waiting in the test: the second node's query itself waits for the head.
    let d = other
        .ok(
            "guardian1",
            "{ myChildren { grades { score } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["myChildren"][0]["grades"], json!([{"score": 17.0}]));
    // And the other way round, for a message.
    let send = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }";
    let m = other
        .ok(
            "teacher1",
            send,
            json!({"i": {"to": [w.id("guardian1")], "subject": "Info", "body": "Sortie"}}),
        )
        .await;
    let d = w
        .node
        .ok(
            "guardian1",
            "{ inbox { id subject readAt from { externalId } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["inbox"][0]["id"], m["sendMessage"]["id"]);
    assert_eq!(d["inbox"][0]["readAt"], Value::Null);
    let read = w
        .node
        .ok(
            "guardian1",
            "mutation($m: ID!) { markMessageRead(messageId: $m) { readAt } }",
            json!({"m": m["sendMessage"]["id"]}),
        )
        .await;
    assert!(read["markMessageRead"]["readAt"].is_string());
    other.app.shutdown().await;
}

#[tokio::test]
async fn reads_of_a_record_land_in_the_access_log() {
    let w = World::postgres().await;
    w.node
        .ok(
            "guardian1",
            "{ myChildren { grades { score } absences { id } } }",
            json!({}),
        )
        .await;
    let d = w.node.ok("student1", "{ me { id } }", json!({})).await;
    let person = str_at(&d, "/me/id");
    let d = w
        .node
        .ok(
            "auditor",
            "query($p: ID!) { accessLog(subjectId: $p) { viewer { externalId } operation service } }",
            json!({"p": person}),
        )
        .await;
    let log = d["accessLog"].as_array().unwrap();
    let seen: Vec<(String, String)> = log
        .iter()
        .map(|e| (str_at(e, "/viewer/externalId"), str_at(e, "/operation")))
        .collect();
    assert!(
        seen.contains(&("guardian1".into(), "myChildren.0.grades".into())),
        "{seen:?}"
    );
    assert!(
        seen.contains(&("guardian1".into(), "myChildren.0.absences".into())),
        "{seen:?}"
    );
    let services: Vec<&str> = log.iter().map(|e| e["service"].as_str().unwrap()).collect();
    assert!(services.contains(&"Notes") && services.contains(&"Absences"));
    // Other people are not in this person's log.
    assert!(seen.iter().all(|(v, _)| v == "guardian1"));
}

#[tokio::test]
async fn a_guardian_dashboard_costs_one_store_round_trip_whatever_its_size() {
    let w = World::postgres().await;
    let dashboard = "{ me { displayName } myChildren { person { displayName } schoolClass { name }
        grades { score assessment { title subject } recordedBy { displayName } }
        averages { subject average classAverage } overallAverage
        absences { state start } homework { title due } } inbox { subject from { displayName } } }";

    let (_, small) = w
        .node
        .store
        .count(w.node.run("guardian1", dashboard, json!({})))
        .await;

    // Grow it: a second child, many grades, absences, homework and messages.
    w.node
        .ok(
            "admin",
            "mutation($i: LinkGuardianInput!) { linkGuardian(input: $i) { id } }",
            json!({"i": {"studentId": w.id("s4"), "guardianId": w.id("guardian1")}}),
        )
        .await;
    for n in 0..6 {
        let a = assessment(&w, "teacher1", "C1", "maths", 1.0 + n as f64, 20.0).await;
        grade(&w, "teacher1", &a, "s1", Some(10.0 + n as f64), "GRADED").await;
        grade(&w, "teacher1", &a, "s4", Some(5.0 + n as f64), "GRADED").await;
        w.node
            .ok(
                "teacher1",
                "mutation($i: AssignHomeworkInput!) { assignHomework(input: $i) { id } }",
                json!({"i": {"classId": w.id("C1"), "subject": "maths", "title": format!("ex {n}"), "description": "p. 12", "due": "2099-12-01"}}),
            )
            .await;
        w.node
            .ok(
                "teacher1",
                REPORT,
                json!({"i": {"studentId": w.id("s4"), "kind": "ABSENCE",
                             "start": format!("2026-11-0{}T08:00:00Z", n + 1), "end": format!("2026-11-0{}T10:00:00Z", n + 1)}}),
            )
            .await;
    }
    let (r, big) = w
        .node
        .store
        .count(w.node.run("guardian1", dashboard, json!({})))
        .await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let data = r.data.into_json().unwrap();
    assert_eq!(data["myChildren"].as_array().unwrap().len(), 2);
    assert_eq!(data["myChildren"][0]["grades"].as_array().unwrap().len(), 6);

    assert_eq!(small, big, "round trips must not grow with the data");
    assert_eq!(
        big.get("head"),
        Some(&1),
        "one head() for read-your-writes: {big:?}"
    );
    assert_eq!(big.values().sum::<u64>(), 1, "nothing else: {big:?}");
}

#[tokio::test]
async fn absences_arrive_live_and_resume_after_a_position() {
    let w = World::postgres().await;
    let sub = "subscription($after: String) { absenceReported(after: $after) { position absence { id student { id } } } }";
    let stream_for = |who: &str, after: Option<String>| {
        let request = async_graphql::Request::new(sub)
            .variables(async_graphql::Variables::from_json(json!({"after": after})))
            .data(Caller {
                subject: who.to_owned(),
                admin: false,
            });
        w.node.schema.execute_stream(request)
    };
    let report = |student: &'static str, day: u32| {
        let w = &w;
        async move {
            let d = w
                .node
                .ok(
                    "staff1",
                    REPORT,
                    json!({"i": {"studentId": w.id(student), "kind": "ABSENCE",
                                 "start": format!("2026-11-{day:02}T08:00:00Z"), "end": format!("2026-11-{day:02}T09:00:00Z")}}),
                )
                .await;
            str_at(&d, "/reportAbsence/id")
        }
    };
    let first = report("s1", 2).await;
    let _elsewhere = report("s4", 3).await;

    // Subscribed "after" the current head: whether the subscription registers
    // before or after the next reports, they reach it (from the log or live),
    // each once, in log order, and only guardian1's child's.
    let from = w.node.head().await;
    let mut live = stream_for("guardian1", Some(from.to_string()));
    let collector = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 2 {
            let item = live.next().await.expect("the feed stays open");
            assert!(item.errors.is_empty(), "{:?}", item.errors);
            let v = item.data.into_json().unwrap();
            got.push(v["absenceReported"].clone());
        }
        got
    });
    let a = report("s1", 4).await;
    let _not_mine = report("s4", 5).await;
    let b = report("s1", 6).await;
    let got = collector.await.unwrap();
    let ids: Vec<String> = got.iter().map(|n| str_at(n, "/absence/id")).collect();
    assert_eq!(ids, [a.clone(), b.clone()]);
    let positions: Vec<u64> = got
        .iter()
        .map(|n| str_at(n, "/position").parse().unwrap())
        .collect();
    assert!(from < positions[0] && positions[0] < positions[1]);

    // Resuming from 0 replays the history: guardian1's child's absences only.
    let mut replay = stream_for("guardian1", Some("0".into()));
    let mut replayed = Vec::new();
    for _ in 0..3 {
        let item = replay.next().await.expect("an item");
        assert!(item.errors.is_empty(), "{:?}", item.errors);
        let v = item.data.into_json().unwrap();
        replayed.push(str_at(&v, "/absenceReported/absence/id"));
    }
    assert_eq!(replayed, [first, a, b]);

    // A teacher may not follow absences; a guardian may not follow another's child.
    let mut refused = stream_for("teacher1", None);
    let r = refused.next().await.expect("an answer");
    assert_eq!(codes(&r), ["FORBIDDEN"]);
    let request = async_graphql::Request::new(
        "subscription($s: ID) { absenceReported(studentId: $s) { position } }",
    )
    .variables(async_graphql::Variables::from_json(
        json!({"s": w.id("s3")}),
    ))
    .data(Caller {
        subject: "guardian1".into(),
        admin: false,
    });
    let r = w
        .node
        .schema
        .execute_stream(request)
        .next()
        .await
        .expect("an answer");
    assert_eq!(codes(&r), ["FORBIDDEN"]);
}

#[tokio::test]
async fn the_embedded_store_serves_the_same_schema() {
    let w = World::sqlite().await;
    let a = assessment(&w, "teacher1", "C1", "maths", 2.0, 20.0).await;
    grade(&w, "teacher1", &a, "s1", Some(13.0), "GRADED").await;
    let d = w
        .node
        .ok(
            "guardian1",
            "{ myChildren { averages { subject average } overallAverage } }",
            json!({}),
        )
        .await;
    assert!(close(&d["myChildren"][0]["overallAverage"], 13.0));
    // Idempotency keys behave the same on the embedded store.
    let input = json!({"i": {"studentId": w.id("s1"), "kind": "ABSENCE", "start": "2026-11-24T08:00:00Z",
                             "end": "2026-11-24T09:00:00Z", "idempotencyKey": "k"}});
    let first = w.node.ok("teacher1", REPORT, input.clone()).await;
    let head = w.node.head().await;
    assert_eq!(w.node.ok("teacher1", REPORT, input).await, first);
    assert_eq!(w.node.head().await, head);
    let r = w
        .node
        .run(
            "guardian3",
            "query($s: ID!) { student(id: $s) { id } }",
            json!({"s": w.id("s1")}),
        )
        .await;
    assert_eq!(codes(&r), ["FORBIDDEN"]);
    w.node.app.shutdown().await;
}

#[tokio::test]
async fn unauthenticated_and_unknown_callers_are_refused() {
    let w = World::postgres().await;
    let r = w
        .node
        .schema
        .execute(async_graphql::Request::new("{ me { id } }"))
        .await;
    assert_eq!(codes(&r), ["UNAUTHENTICATED"]);
    let r = w
        .node
        .schema
        .execute(
            async_graphql::Request::new("{ me { id } }")
                .data(registre_api::context::AuthRejection("token expired".into())),
        )
        .await;
    assert_eq!(codes(&r), ["UNAUTHENTICATED"]);
    assert!(r.errors[0].message.contains("expired"));
    let r = w.node.run("nobody", "{ me { id } }", json!({})).await;
    assert_eq!(codes(&r), ["FORBIDDEN"]);
    // Concurrent first uses of a new admin subject both succeed, with one Person.
    let q = "{ me { id roles } }";
    let (a, b) = tokio::join!(
        w.node
            .schema
            .execute(async_graphql::Request::new(q).data(Caller {
                subject: "root2".into(),
                admin: true
            })),
        w.node
            .schema
            .execute(async_graphql::Request::new(q).data(Caller {
                subject: "root2".into(),
                admin: true
            })),
    );
    assert!(
        a.errors.is_empty() && b.errors.is_empty(),
        "{:?} {:?}",
        a.errors,
        b.errors
    );
    assert_eq!(a.data, b.data);
}

#[tokio::test]
async fn a_slow_subscriber_resumes_from_the_log_and_misses_nothing() {
    let w = World::postgres().await;
    // A second node with the smallest live buffer: a subscriber that is not
    // read falls behind it and must resume from the log.
    let node = w
        .second_node_with(registre_app::AppConfig {
            live_capacity: 16,
            ..Default::default()
        })
        .await;
    let from = node.head().await;
    let request = async_graphql::Request::new(
        "subscription($after: String) { absenceReported(after: $after) { position absence { id } } }",
    )
    .variables(async_graphql::Variables::from_json(json!({"after": from.to_string()})))
    .data(Caller {
        subject: "staff1".into(),
        admin: false,
    });
    let mut feed = node.schema.execute_stream(request);
    let mut reported = Vec::new();
    for n in 0..120u32 {
        let d = w
            .node
            .ok(
                "teacher1",
                REPORT,
                json!({"i": {"studentId": w.id(if n % 2 == 0 { "s1" } else { "s4" }), "kind": "LATENESS",
                             "minutesLate": 1 + n, "start": "2026-11-24T08:00:00Z", "end": "2026-11-24T09:00:00Z"}}),
            )
            .await;
        reported.push(str_at(&d, "/reportAbsence/id"));
    }
    // Only now is the feed read: 120 absences, each once, in log order.
    let mut got = Vec::new();
    let mut last = from;
    while got.len() < reported.len() {
        let item = feed.next().await.expect("the feed stays open");
        assert!(item.errors.is_empty(), "{:?}", item.errors);
        let v = item.data.into_json().unwrap();
        let position: u64 = str_at(&v, "/absenceReported/position").parse().unwrap();
        assert!(
            position > last,
            "positions increase: {position} after {last}"
        );
        last = position;
        got.push(str_at(&v, "/absenceReported/absence/id"));
    }
    assert_eq!(got, reported);
    node.app.shutdown().await;
}

#[tokio::test]
async fn concurrent_commands_on_one_stream_both_land() {
    let w = World::postgres().await;
    let a = assessment(&w, "teacher1", "C1", "maths", 1.0, 20.0).await;
    let other = w.second_node().await;
    // Two nodes append to the same assessment stream at once: one of them
    // meets an expected-version conflict, re-reads and decides again.
    let one = json!({"i": {"assessmentId": a, "studentId": w.id("s1"), "score": 11.0, "status": "GRADED"}});
    let two = json!({"i": {"assessmentId": a, "studentId": w.id("s4"), "score": 12.0, "status": "GRADED"}});
    let (r1, r2) = tokio::join!(
        w.node.run("teacher1", GRADE, one),
        other.run("teacher1", GRADE, two)
    );
    assert!(
        r1.errors.is_empty() && r2.errors.is_empty(),
        "{:?} {:?}",
        r1.errors,
        r2.errors
    );
    let d = w
        .node
        .ok(
            "teacher1",
            "query($c: ID!) { schoolClass(id: $c) { students { grades { score } } } }",
            json!({"c": w.id("C1")}),
        )
        .await;
    let mut scores: Vec<f64> = d["schoolClass"]["students"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["grades"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["score"].as_f64().unwrap())
        })
        .collect();
    scores.sort_by(f64::total_cmp);
    assert_eq!(scores, [11.0, 12.0]);
    other.app.shutdown().await;
}

#[tokio::test]
async fn a_command_that_meets_a_version_conflict_reads_and_decides_again() {
    use registre_domain::events::GradeRecorded;
    use registre_domain::{AssessmentId, DomainEvent, GradeId, GradeStatus, StudentId};
    use registre_store::{AppendRequest, EventMetadata, ExpectedVersion, NewEvent, Partition};

    let w = World::postgres().await;
    let a = assessment(&w, "teacher1", "C1", "maths", 1.0, 20.0).await;
    let assessment_id: AssessmentId = a.parse().unwrap();
    let s4: StudentId = w.id("s4").parse().unwrap();
    // Another writer grades s4 between the executor's read of the
    // assessment's stream and its append of s1's grade.
    let theirs = DomainEvent::GradeRecorded(GradeRecorded {
        grade_id: GradeId::for_pair(assessment_id, s4),
        assessment_id,
        student_id: s4,
        score: Some(12.0),
        status: GradeStatus::Graded,
    })
    .encode();
    w.node.store.race_after_next_read(AppendRequest {
        partition: Partition::directory(),
        stream_id: format!("assessment-{a}"),
        expected: ExpectedVersion::Any,
        events: vec![NewEvent {
            event_id: uuid::Uuid::now_v7(),
            event_type: theirs.event_type.to_owned(),
            schema_version: theirs.schema_version,
            data: theirs.data,
            metadata: EventMetadata {
                actor: None,
                correlation_id: uuid::Uuid::now_v7(),
                causation_id: None,
                idempotency_key: None,
                occurred_at: chrono::Utc::now(),
                reason: None,
            },
        }],
        idempotency: None,
    });
    let mine = json!({"i": {"assessmentId": a, "studentId": w.id("s1"), "score": 11.0, "status": "GRADED"}});
    let (r, calls) = w
        .node
        .store
        .count(w.node.run("teacher1", GRADE, mine))
        .await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(!w.node.store.race_pending(), "the other writer ran");
    assert_eq!(
        (calls.get("read_stream"), calls.get("append")),
        (Some(&2), Some(&2)),
        "read, append (conflict), read again, append: {calls:?}"
    );
    let d = w
        .node
        .ok(
            "teacher1",
            "query($c: ID!) { schoolClass(id: $c) { students { grades { score } } } }",
            json!({"c": w.id("C1")}),
        )
        .await;
    let mut scores: Vec<f64> = d["schoolClass"]["students"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["grades"].as_array().unwrap().clone())
        .map(|g| g["score"].as_f64().unwrap())
        .collect();
    scores.sort_by(f64::total_cmp);
    assert_eq!(scores, [11.0, 12.0], "both grades are in");
}

#[tokio::test]
async fn query_depth_and_complexity_are_limited() {
    let w = World::postgres().await;
    // Student -> schoolClass -> students -> schoolClass -> ... beyond the depth limit.
    let mut q = String::from("id");
    for _ in 0..8 {
        q = format!("schoolClass {{ students {{ {q} }} }}");
    }
    let r = w
        .node
        .run(
            "teacher1",
            &format!("query($s: ID!) {{ student(id: $s) {{ {q} }} }}"),
            json!({"s": w.id("s1")}),
        )
        .await;
    assert!(!r.errors.is_empty());
    assert!(
        r.errors[0]
            .message
            .to_lowercase()
            .contains("nested too deep"),
        "{:?}",
        r.errors
    );
    assert_eq!(r.data, async_graphql::Value::Null);
    // Many aliases of a cheap field exceed the complexity budget.
    let wide: String = (0..2100).map(|n| format!("a{n}: me {{ id }} ")).collect();
    let r = w
        .node
        .run("teacher1", &format!("{{ {wide} }}"), json!({}))
        .await;
    assert!(
        r.errors[0].message.to_lowercase().contains("complex"),
        "{:?}",
        r.errors
    );
}
