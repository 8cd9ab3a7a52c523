//! Evaluation end to end (issue 14), through the schema on a real
//! PostgreSQL database (a smoke run on the embedded SQLite store), and the
//! printable bulletin over HTTP read back with `pdftotext`: periods defined,
//! closed and reopened by the head; grading refused in a closed period;
//! averages over a period with the class's average, minimum and maximum;
//! assessment statistics; the gradebook and an assessment's grades by role;
//! appreciations and their corrections; the report card, final once its
//! period is closed, and as it stood at an earlier instant.
//!
//! Dates derive from today's school year (the absences' domain accepts the
//! previous, current and next school years only).
#![allow(clippy::unwrap_used)]

mod common;
mod support;

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use common::{codes, str_at, World};
use serde_json::{json, Value};

/// The school year of today, by the calendar year it starts in.
fn year() -> i32 {
    registre_domain::evaluation::school_year(chrono::Utc::now().date_naive())
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// The first Monday on or after `d`.
fn monday(mut d: NaiveDate) -> NaiveDate {
    while d.weekday() != Weekday::Mon {
        d += Duration::days(1);
    }
    d
}

fn trimestres(y: i32) -> Value {
    json!([
        {"name": "Trimestre 1", "start": day(y, 9, 1).to_string(), "end": day(y, 11, 30).to_string()},
        {"name": "Trimestre 2", "start": day(y, 12, 1).to_string(), "end": (day(y + 1, 3, 1) - Duration::days(1)).to_string()},
        {"name": "Trimestre 3", "start": day(y + 1, 3, 1).to_string(), "end": day(y + 1, 7, 4).to_string()},
    ])
}

const DEFINE: &str = "mutation($i: DefinePeriodsInput!) { definePeriods(input: $i) { id name start end closed establishment { id } } }";
const CLOSE: &str = "mutation($p: ID!) { closePeriod(periodId: $p) { id closed } }";
const REOPEN: &str =
    "mutation($p: ID!, $r: String!) { reopenPeriod(periodId: $p, reason: $r) { id closed } }";
const ASSESS: &str = "mutation($i: CreateAssessmentInput!) { createAssessment(input: $i) { id } }";
const GRADE: &str = "mutation($i: RecordGradeInput!) { recordGrade(input: $i) { id } }";
const CORRECT: &str = "mutation($i: CorrectGradeInput!) { correctGrade(input: $i) { id score } }";
const APPRECIATE: &str = "mutation($i: WriteAppreciationInput!) { writeAppreciation(input: $i) { generalAppreciation subjects { subject appreciation } } }";

/// head1 defines E1's three trimestres; answers their ids.
async fn define(w: &World) -> Vec<String> {
    let d = w
        .node
        .ok(
            "head1",
            DEFINE,
            json!({"i": {"establishmentId": w.id("E1"), "periods": trimestres(year())}}),
        )
        .await;
    d["definePeriods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn assessment(
    w: &World,
    teacher: &str,
    subject: &str,
    date: NaiveDate,
    out_of: f64,
) -> String {
    let d = w
        .node
        .ok(
            teacher,
            ASSESS,
            json!({"i": {"classId": w.id("C1"), "subject": subject, "title": "contrôle",
                         "date": date.to_string(), "coefficient": 1.0, "outOf": out_of}}),
        )
        .await;
    str_at(&d, "/createAssessment/id")
}

async fn grade(w: &World, teacher: &str, assessment: &str, student: &str, score: f64) -> String {
    let d = w
        .node
        .ok(
            teacher,
            GRADE,
            json!({"i": {"assessmentId": assessment, "studentId": w.id(student), "score": score, "status": "GRADED"}}),
        )
        .await;
    str_at(&d, "/recordGrade/id")
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

fn message(r: &async_graphql::Response) -> String {
    r.errors
        .iter()
        .map(|e| e.message.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn the_head_defines_closes_and_reopens_periods_and_refusals_write_nothing() {
    let w = World::postgres().await;
    let y = year();
    let n = &w.node;
    // Not the head of this establishment, or not a head: refused, nothing written.
    let head = n.head().await;
    for who in ["teacher1", "staff1", "guardian1"] {
        let r = n
            .run(
                who,
                DEFINE,
                json!({"i": {"establishmentId": w.id("E1"), "periods": trimestres(y)}}),
            )
            .await;
        assert_eq!(codes(&r), ["FORBIDDEN"], "{who}");
    }
    let r = n
        .run(
            "head1",
            DEFINE,
            json!({"i": {"establishmentId": w.id("E2"), "periods": trimestres(y)}}),
        )
        .await;
    assert_eq!(codes(&r), ["FORBIDDEN"]);
    // Overlapping, with a gap, across two school years: INVALID_INPUT.
    for periods in [
        json!([{"name": "S1", "start": day(y, 9, 1).to_string(), "end": day(y + 1, 1, 31).to_string()},
               {"name": "S2", "start": day(y + 1, 1, 15).to_string(), "end": day(y + 1, 7, 4).to_string()}]),
        json!([{"name": "S1", "start": day(y, 9, 1).to_string(), "end": day(y + 1, 1, 31).to_string()},
               {"name": "S2", "start": day(y + 1, 2, 3).to_string(), "end": day(y + 1, 7, 4).to_string()}]),
        json!([{"name": "S1", "start": day(y, 9, 1).to_string(), "end": day(y + 1, 1, 31).to_string()},
               {"name": "S2", "start": day(y + 1, 2, 1).to_string(), "end": day(y + 1, 9, 30).to_string()}]),
    ] {
        let r = n
            .run(
                "head1",
                DEFINE,
                json!({"i": {"establishmentId": w.id("E1"), "periods": periods}}),
            )
            .await;
        assert_eq!(codes(&r), ["INVALID_INPUT"], "{periods}");
    }
    assert_eq!(n.head().await, head, "refusals write nothing");

    let ids = define(&w).await;
    assert_eq!(ids.len(), 3);
    let d = n
        .ok(
            "guardian1",
            "query($e: ID!) { establishment(id: $e) { periods { id name start end closed establishment { id } } } }",
            json!({"e": w.id("E1")}),
        )
        .await;
    let periods = d["establishment"]["periods"].as_array().unwrap();
    let names: Vec<&str> = periods
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Trimestre 1", "Trimestre 2", "Trimestre 3"]);
    assert_eq!(periods[0]["start"], day(y, 9, 1).to_string());
    assert_eq!(periods[0]["establishment"]["id"], w.id("E1"));
    assert!(periods.iter().all(|p| p["closed"] == false));
    // A second definition overlapping the first is refused.
    let r = n
        .run(
            "head1",
            DEFINE,
            json!({"i": {"establishmentId": w.id("E1"), "periods": trimestres(y)}}),
        )
        .await;
    assert_eq!(codes(&r), ["INVALID_INPUT"]);
    assert!(message(&r).contains("Trimestre"), "{}", message(&r));

    // Closing: the head only.
    let head = n.head().await;
    for who in ["teacher1", "staff1", "admin"] {
        let r = n.run(who, CLOSE, json!({"p": ids[0]})).await;
        assert_eq!(codes(&r), ["FORBIDDEN"], "{who}");
    }
    assert_eq!(n.head().await, head);
    let d = n.ok("head1", CLOSE, json!({"p": ids[0]})).await;
    assert_eq!(d["closePeriod"]["closed"], true);
    let r = n.run("head1", CLOSE, json!({"p": ids[0]})).await;
    assert_eq!(codes(&r), ["CONFLICT"]);
    // Reopening needs a reason.
    let head = n.head().await;
    let r = n
        .run("head1", REOPEN, json!({"p": ids[0], "r": "  "}))
        .await;
    assert_eq!(codes(&r), ["INVALID_INPUT"]);
    let r = n
        .run("teacher1", REOPEN, json!({"p": ids[0], "r": "erreur"}))
        .await;
    assert_eq!(codes(&r), ["FORBIDDEN"]);
    assert_eq!(n.head().await, head);
    let d = n
        .ok(
            "head1",
            REOPEN,
            json!({"p": ids[0], "r": "Conseil de classe reporté"}),
        )
        .await;
    assert_eq!(d["reopenPeriod"]["closed"], false);
    // The reason is in the log, with the head as actor.
    let events = registre_store::EventStore::read_all(n.store.as_ref(), 0, 10_000)
        .await
        .unwrap();
    let reopened = events
        .iter()
        .find(|e| e.event_type == "PeriodReopened")
        .expect("a PeriodReopened event");
    assert_eq!(
        reopened.metadata.reason.as_deref(),
        Some("Conseil de classe reporté")
    );
    assert_eq!(reopened.data["reason"], "Conseil de classe reporté");
    // ...and in the audit trail, under the head who reopened it.
    let d = n
        .ok(
            "auditor",
            "query($p: ID!) { auditTrail(subjectId: $p) { eventType reason actor { externalId } } }",
            json!({"p": w.id("head1")}),
        )
        .await;
    let trail = d["auditTrail"].as_array().unwrap();
    let reopening = trail
        .iter()
        .find(|e| e["eventType"] == "PeriodReopened")
        .unwrap_or_else(|| panic!("{trail:?}"));
    assert_eq!(reopening["reason"], "Conseil de classe reporté");
    assert_eq!(reopening["actor"]["externalId"], "head1");
    let types: Vec<&str> = trail
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"PeriodsDefined") && types.contains(&"PeriodClosed"),
        "{types:?}"
    );
}

#[tokio::test]
async fn grades_dated_in_a_closed_period_are_neither_recorded_nor_corrected() {
    let w = World::postgres().await;
    let y = year();
    let n = &w.node;
    let ids = define(&w).await;
    let t1 = assessment(&w, "teacher1", "maths", day(y, 10, 6), 20.0).await;
    let t2 = assessment(&w, "teacher1", "maths", day(y, 12, 8), 20.0).await;
    let g = grade(&w, "teacher1", &t1, "s1", 12.0).await;
    n.ok("head1", CLOSE, json!({"p": ids[0]})).await;

    let head = n.head().await;
    let r = n
        .run("teacher1", GRADE, json!({"i": {"assessmentId": t1, "studentId": w.id("s4"), "score": 9.0, "status": "GRADED"}}))
        .await;
    assert_eq!(codes(&r), ["INVALID_INPUT"]);
    assert!(
        message(&r).contains("Trimestre 1") && message(&r).contains(&ids[0]),
        "{}",
        message(&r)
    );
    let r = n
        .run("teacher1", CORRECT, json!({"i": {"gradeId": g, "score": 14.0, "status": "GRADED", "reason": "erreur de report"}}))
        .await;
    assert_eq!(codes(&r), ["INVALID_INPUT"]);
    assert!(message(&r).contains("Trimestre 1"), "{}", message(&r));
    assert_eq!(n.head().await, head, "nothing written");
    // Another period is open.
    grade(&w, "teacher1", &t2, "s4", 9.0).await;
    // Reopened: the correction goes through.
    n.ok(
        "head1",
        REOPEN,
        json!({"p": ids[0], "r": "erreur de saisie signalée"}),
    )
    .await;
    let d = n
        .ok("teacher1", CORRECT, json!({"i": {"gradeId": g, "score": 14.0, "status": "GRADED", "reason": "erreur de report"}}))
        .await;
    assert!(close(&d["correctGrade"]["score"], 14.0));
}

#[tokio::test]
async fn averages_over_a_period_carry_the_class_average_minimum_and_maximum() {
    let w = World::postgres().await;
    let y = year();
    let n = &w.node;
    let ids = define(&w).await;
    let t1 = assessment(&w, "teacher1", "maths", day(y, 10, 6), 40.0).await;
    let t2 = assessment(&w, "teacher1", "maths", day(y, 12, 8), 20.0).await;
    grade(&w, "teacher1", &t1, "s1", 32.0).await; // 16/20
    grade(&w, "teacher1", &t1, "s4", 16.0).await; // 8/20
    grade(&w, "teacher1", &t2, "s1", 10.0).await;
    grade(&w, "teacher1", &t2, "s4", 12.0).await;
    let q = "query($s: ID!, $p: ID) { student(id: $s) { averages(periodId: $p) { subject average classAverage classMin classMax } overallAverage(periodId: $p) } }";
    let rows = |d: &Value| d["student"]["averages"][0].clone();
    let d = n
        .ok("guardian1", q, json!({"s": w.id("s1"), "p": ids[0]}))
        .await;
    let r = rows(&d);
    assert_eq!(r["subject"], "maths");
    assert!(
        close(&r["average"], 16.0) && close(&r["classAverage"], 12.0),
        "{r}"
    );
    assert!(
        close(&r["classMin"], 8.0) && close(&r["classMax"], 16.0),
        "{r}"
    );
    assert!(close(&d["student"]["overallAverage"], 16.0));
    let d = n
        .ok("guardian1", q, json!({"s": w.id("s1"), "p": ids[1]}))
        .await;
    let r = rows(&d);
    assert!(
        close(&r["average"], 10.0) && close(&r["classAverage"], 11.0),
        "{r}"
    );
    assert!(
        close(&r["classMin"], 10.0) && close(&r["classMax"], 12.0),
        "{r}"
    );
    // A period without grades: the subject rows of its assessments only (none).
    let d = n
        .ok("guardian1", q, json!({"s": w.id("s1"), "p": ids[2]}))
        .await;
    assert_eq!(d["student"]["averages"], json!([]));
    assert_eq!(d["student"]["overallAverage"], Value::Null);
    // All time, beside: s1 13, s4 10.
    let d = n
        .ok("guardian1", q, json!({"s": w.id("s1"), "p": null}))
        .await;
    let r = rows(&d);
    assert!(
        close(&r["average"], 13.0) && close(&r["classAverage"], 11.5),
        "{r}"
    );
    assert!(
        close(&r["classMin"], 10.0) && close(&r["classMax"], 13.0),
        "{r}"
    );
    // A period of another establishment, or no period at all.
    let r = n
        .run(
            "guardian1",
            q,
            json!({"s": w.id("s1"), "p": uuid::Uuid::now_v7().to_string()}),
        )
        .await;
    assert_eq!(codes(&r), ["NOT_FOUND", "NOT_FOUND"]);
    let r = n
        .run("guardian1", q, json!({"s": w.id("s1"), "p": "nope"}))
        .await;
    assert!(
        codes(&r).iter().all(|c| c == "INVALID_INPUT"),
        "{:?}",
        codes(&r)
    );
}

#[tokio::test]
async fn statistics_for_all_grades_and_gradebook_for_teacher_head_and_cpe_only() {
    let w = World::postgres().await;
    let y = year();
    let n = &w.node;
    let ids = define(&w).await;
    // teacher2 teaches french in C1 too: another subject of the class.
    n.ok(
        "admin",
        "mutation($i: AssignTeacherInput!) { assignTeacher(input: $i) }",
        json!({"i": {"teacherId": w.id("teacher2"), "classId": w.id("C1"), "subject": "french"}}),
    )
    .await;
    let t1 = assessment(&w, "teacher1", "maths", day(y, 10, 6), 40.0).await;
    let t2 = assessment(&w, "teacher1", "maths", day(y, 12, 8), 20.0).await;
    grade(&w, "teacher1", &t1, "s1", 32.0).await;
    grade(&w, "teacher1", &t1, "s4", 16.0).await;
    n.ok(
        "teacher1",
        GRADE,
        json!({"i": {"assessmentId": t2, "studentId": w.id("s1"), "score": null, "status": "ABSENT"}}),
    )
    .await;

    // Statistics on the assessment's own scale, for whoever sees the assessment.
    let stats = "query($s: ID!) { student(id: $s) { grades { assessment { id stats { count mean min max } } } } }";
    for who in ["guardian1", "student1", "teacher1"] {
        let d = n.ok(who, stats, json!({"s": w.id("s1")})).await;
        let grades = d["student"]["grades"].as_array().unwrap();
        let first = grades
            .iter()
            .find(|g| g["assessment"]["id"] == t1.as_str())
            .unwrap();
        let s = &first["assessment"]["stats"];
        assert_eq!(s["count"], 2, "{who}");
        assert!(
            close(&s["mean"], 24.0) && close(&s["min"], 16.0) && close(&s["max"], 32.0),
            "{s}"
        );
        let absent = grades
            .iter()
            .find(|g| g["assessment"]["id"] == t2.as_str())
            .unwrap();
        assert_eq!(
            absent["assessment"]["stats"],
            json!({"count": 0, "mean": null, "min": null, "max": null})
        );
    }

    // The gradebook: the subject's teacher, the head, the CPE.
    let book = "query($c: ID!, $p: ID) { schoolClass(id: $c) { gradebook(subject: \"maths\", periodId: $p) { id stats { count } grades { score student { id } } } } }";
    for who in ["teacher1", "head1", "staff1"] {
        let d = n.ok(who, book, json!({"c": w.id("C1"), "p": ids[0]})).await;
        let list = d["schoolClass"]["gradebook"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{who}: the first trimestre's only");
        assert_eq!(list[0]["id"], t1.as_str());
        let mut scores: Vec<f64> = list[0]["grades"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["score"].as_f64().unwrap())
            .collect();
        scores.sort_by(f64::total_cmp);
        assert_eq!(scores, [16.0, 32.0], "{who}");
        let d = n.ok(who, book, json!({"c": w.id("C1"), "p": null})).await;
        assert_eq!(
            d["schoolClass"]["gradebook"].as_array().unwrap().len(),
            2,
            "{who}: all year"
        );
    }
    // Another subject's teacher, a guardian, a student: FORBIDDEN.
    for who in ["teacher2", "guardian1", "student1"] {
        let r = n
            .run(who, book, json!({"c": w.id("C1"), "p": ids[0]}))
            .await;
        assert_eq!(codes(&r), ["FORBIDDEN"], "{who}");
    }
    // An assessment's grades: never for its students or their guardians.
    let grades =
        "query($s: ID!) { student(id: $s) { grades { assessment { grades { score } } } } }";
    for who in ["guardian1", "student1"] {
        let r = n.run(who, grades, json!({"s": w.id("s1")})).await;
        assert!(
            codes(&r).contains(&"FORBIDDEN".to_owned()),
            "{who}: {:?}",
            r.errors
        );
    }
    let d = n.ok("teacher1", grades, json!({"s": w.id("s1")})).await;
    assert_eq!(
        d["student"]["grades"][0]["assessment"]["grades"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

const CARD: &str = "query($s: ID!, $p: ID!) { student(id: $s) { reportCard(periodId: $p) {
    student { id } period { id name closed }
    subjects { subject teacher { externalId } average classAverage classMin classMax appreciation }
    overallAverage classOverallAverage rank classSize generalAppreciation
    halfDaysMissed unjustifiedHalfDays latenessCount final pdfUrl } } }";

#[tokio::test]
async fn appreciations_make_the_report_card_final_once_the_period_closes() {
    let w = World::postgres().await;
    let y = year();
    let n = &w.node;
    let ids = define(&w).await;
    n.ok(
        "admin",
        "mutation($i: AssignTeacherInput!) { assignTeacher(input: $i) }",
        json!({"i": {"teacherId": w.id("teacher2"), "classId": w.id("C1"), "subject": "french"}}),
    )
    .await;
    let t1 = assessment(&w, "teacher1", "maths", day(y, 10, 6), 20.0).await;
    grade(&w, "teacher1", &t1, "s1", 15.0).await;
    grade(&w, "teacher1", &t1, "s4", 9.0).await;
    let fr = assessment(&w, "teacher2", "french", day(y, 10, 13), 20.0).await;
    grade(&w, "teacher2", &fr, "s1", 11.0).await;
    grade(&w, "teacher2", &fr, "s4", 13.0).await;
    // A whole school day absent (unjustified), one lateness, in the first trimestre.
    let absent = monday(day(y, 10, 1)) + Duration::days(14);
    let at = |d: NaiveDate, h: u32| format!("{d}T{h:02}:00:00Z");
    n.ok(
        "staff1",
        "mutation($i: ReportAbsenceInput!) { reportAbsence(input: $i) { id } }",
        json!({"i": {"studentId": w.id("s1"), "kind": "ABSENCE", "start": at(absent, 7), "end": at(absent, 16)}}),
    )
    .await;
    n.ok(
        "staff1",
        "mutation($i: ReportAbsenceInput!) { reportAbsence(input: $i) { id } }",
        json!({"i": {"studentId": w.id("s1"), "kind": "LATENESS", "start": at(absent + Duration::days(1), 7), "end": at(absent + Duration::days(1), 8), "minutesLate": 10}}),
    )
    .await;

    let write = |subject: Option<&str>, text: &str| json!({"i": {"studentId": w.id("s1"), "periodId": ids[0], "subject": subject, "text": text}});
    // Refused: another subject, the general one by a teacher, a guardian, a
    // student of another class; nothing written.
    let head = n.head().await;
    for (who, subject) in [
        ("teacher1", Some("french")),
        ("teacher1", None),
        ("teacher2", Some("maths")),
        ("guardian1", Some("maths")),
        ("staff1", None),
        ("teacher3", Some("maths")),
    ] {
        let r = n.run(who, APPRECIATE, write(subject, "Bien.")).await;
        assert_eq!(codes(&r), ["FORBIDDEN"], "{who} {subject:?}");
    }
    let r = n
        .run("teacher1", APPRECIATE, write(Some("maths"), "  "))
        .await;
    assert_eq!(codes(&r), ["INVALID_INPUT"]);
    assert_eq!(n.head().await, head);

    n.ok(
        "teacher1",
        APPRECIATE,
        write(Some("maths"), "Bon trimestre."),
    )
    .await;
    let before_correction = chrono::Utc::now();
    let d = n
        .ok(
            "teacher1",
            APPRECIATE,
            write(Some("maths"), "Très bon trimestre : élève sérieuse."),
        )
        .await;
    let maths = d["writeAppreciation"]["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subject"] == "maths")
        .unwrap()
        .clone();
    assert_eq!(
        maths["appreciation"],
        "Très bon trimestre : élève sérieuse."
    );
    n.ok(
        "teacher2",
        APPRECIATE,
        write(Some("french"), "Des progrès à l’écrit."),
    )
    .await;
    n.ok(
        "head1",
        APPRECIATE,
        write(None, "Ensemble satisfaisant, félicitations."),
    )
    .await;

    let d = n
        .ok("guardian1", CARD, json!({"s": w.id("s1"), "p": ids[0]}))
        .await;
    let card = &d["student"]["reportCard"];
    assert_eq!(card["student"]["id"], w.id("s1"));
    assert_eq!(card["period"]["name"], "Trimestre 1");
    let subjects = card["subjects"].as_array().unwrap();
    let names: Vec<&str> = subjects
        .iter()
        .map(|s| s["subject"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["french", "maths"]);
    let (fr_row, ma_row) = (&subjects[0], &subjects[1]);
    assert_eq!(ma_row["teacher"]["externalId"], "teacher1");
    assert_eq!(fr_row["teacher"]["externalId"], "teacher2");
    assert!(
        close(&ma_row["average"], 15.0) && close(&ma_row["classAverage"], 12.0),
        "{ma_row}"
    );
    assert!(
        close(&ma_row["classMin"], 9.0) && close(&ma_row["classMax"], 15.0),
        "{ma_row}"
    );
    assert!(
        close(&fr_row["average"], 11.0) && close(&fr_row["classMax"], 13.0),
        "{fr_row}"
    );
    assert_eq!(
        ma_row["appreciation"],
        "Très bon trimestre : élève sérieuse."
    );
    assert_eq!(fr_row["appreciation"], "Des progrès à l’écrit.");
    // s1: (15 + 11) / 2 = 13; s4: (9 + 13) / 2 = 11.
    assert!(close(&card["overallAverage"], 13.0), "{card}");
    assert!(close(&card["classOverallAverage"], 12.0), "{card}");
    assert_eq!(card["rank"], 1);
    assert_eq!(card["classSize"], 2);
    assert_eq!(
        card["generalAppreciation"],
        "Ensemble satisfaisant, félicitations."
    );
    assert_eq!(card["halfDaysMissed"], 2);
    assert_eq!(card["unjustifiedHalfDays"], 2);
    assert_eq!(card["latenessCount"], 1);
    assert_eq!(card["final"], false);
    assert_eq!(
        card["pdfUrl"],
        format!("/bulletins/{}/{}.pdf", w.id("s1"), ids[0])
    );
    // The classmate's card: second.
    let d = n
        .ok("head1", CARD, json!({"s": w.id("s4"), "p": ids[0]}))
        .await;
    assert_eq!(d["student"]["reportCard"]["rank"], 2);
    assert_eq!(d["student"]["reportCard"]["halfDaysMissed"], 0);
    // Another family's bulletin: FORBIDDEN.
    let r = n
        .run("guardian2", CARD, json!({"s": w.id("s1"), "p": ids[0]}))
        .await;
    assert_eq!(codes(&r), ["FORBIDDEN"]);
    // Every teacher of the class reads the whole card (the class council).
    let d = n
        .ok("teacher2", CARD, json!({"s": w.id("s1"), "p": ids[0]}))
        .await;
    assert_eq!(
        d["student"]["reportCard"]["subjects"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The correction keeps the earlier text in the audit trail.
    let person = str_at(
        &n.ok("auditor", "query($s: ID!) { studentAsOf(id: $s, at: \"2100-01-01T00:00:00Z\") { person { id } } }", json!({"s": w.id("s1")})).await,
        "/studentAsOf/person/id",
    );
    let d = n
        .ok(
            "auditor",
            "query($p: ID!) { auditTrail(subjectId: $p) { eventType data } }",
            json!({"p": person}),
        )
        .await;
    let written: Vec<&Value> = d["auditTrail"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["eventType"] == "AppreciationWritten")
        .collect();
    assert_eq!(written.len(), 4);
    assert_eq!(written[1]["data"]["previous"], "Bon trimestre.");
    assert_eq!(
        written[1]["data"]["text"],
        "Très bon trimestre : élève sérieuse."
    );
    // ADMIN administers accounts: the appreciations' text is not theirs to read.
    let d = n
        .ok(
            "admin",
            "query($p: ID!) { auditTrail(subjectId: $p) { eventType data } }",
            json!({"p": person}),
        )
        .await;
    let seen: Vec<&Value> = d["auditTrail"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["eventType"] == "AppreciationWritten")
        .collect();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter()
            .all(|e| e["data"]["redacted"] == true && e["data"]["text"].is_null()),
        "{seen:?}"
    );

    // As it stood before the correction.
    let past = n
        .ok(
            "auditor",
            "query($s: ID!, $at: DateTime!, $p: ID!) { studentAsOf(id: $s, at: $at) { reportCard(periodId: $p) { subjects { subject appreciation } generalAppreciation pdfUrl } } }",
            json!({"s": w.id("s1"), "at": before_correction.to_rfc3339(), "p": ids[0]}),
        )
        .await;
    let card = &past["studentAsOf"]["reportCard"];
    let maths = card["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subject"] == "maths")
        .unwrap();
    assert_eq!(maths["appreciation"], "Bon trimestre.");
    assert_eq!(card["generalAppreciation"], Value::Null);
    assert!(card["pdfUrl"].as_str().unwrap().contains("?at="), "{card}");

    // Closed: final, and appreciations are refused naming the period.
    n.ok("head1", CLOSE, json!({"p": ids[0]})).await;
    let d = n
        .ok("guardian1", CARD, json!({"s": w.id("s1"), "p": ids[0]}))
        .await;
    assert_eq!(d["student"]["reportCard"]["final"], true);
    assert_eq!(d["student"]["reportCard"]["period"]["closed"], true);
    let head = n.head().await;
    let r = n
        .run("teacher1", APPRECIATE, write(Some("maths"), "Autre texte."))
        .await;
    assert_eq!(codes(&r), ["INVALID_INPUT"]);
    assert!(message(&r).contains("Trimestre 1"), "{}", message(&r));
    assert_eq!(n.head().await, head);
}

#[tokio::test]
async fn the_embedded_store_serves_periods_and_report_cards() {
    let w = World::sqlite().await;
    let y = year();
    let n = &w.node;
    let ids = define(&w).await;
    let t1 = assessment(&w, "teacher1", "maths", day(y, 10, 6), 20.0).await;
    grade(&w, "teacher1", &t1, "s1", 15.0).await;
    n.ok(
        "teacher1",
        APPRECIATE,
        json!({"i": {"studentId": w.id("s1"), "periodId": ids[0], "subject": "maths", "text": "Bien."}}),
    )
    .await;
    n.ok("head1", CLOSE, json!({"p": ids[0]})).await;
    let d = n
        .ok("student1", CARD, json!({"s": w.id("s1"), "p": ids[0]}))
        .await;
    let card = &d["student"]["reportCard"];
    assert_eq!(card["final"], true);
    assert_eq!(card["subjects"][0]["appreciation"], "Bien.");
    assert!(close(&card["overallAverage"], 15.0));
}

// ---- The printable bulletin, over HTTP ---------------------------------------------------

/// `pdftotext` (poppler-utils): found on the PATH, or installed with
/// apt-get when this test runs as root (CI), as the brief of the test asks.
fn pdftotext() -> std::path::PathBuf {
    use std::process::Command;
    let found = || Command::new("pdftotext").arg("-v").output().is_ok();
    if !found() {
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", "poppler-utils"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
        if !found() {
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
            let _ = Command::new("apt-get")
                .args(["install", "-y", "-qq", "poppler-utils"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status();
        }
    }
    assert!(
        found(),
        "pdftotext is needed to read the bulletin back: install poppler-utils"
    );
    "pdftotext".into()
}

fn pdf_text(pdf: &[u8]) -> String {
    let dir = support::TempDir::new();
    let path = dir.0.join("bulletin.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new(pdftotext())
        .arg("-enc")
        .arg("UTF-8")
        .arg(&path)
        .arg("-")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pdftotext: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Non-breaking spaces and line breaks read as plain spaces.
    String::from_utf8(out.stdout)
        .unwrap()
        .replace('\u{a0}', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn normalized(text: &str) -> String {
    text.replace('\u{a0}', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn french(v: &Value) -> String {
    registre_app::evaluation::bulletin::mark(v.as_f64())
}

#[tokio::test]
async fn the_bulletin_pdf_says_what_the_report_card_says() {
    let (_db, idp, node, roster) = support::seeded_node(&[]).await;
    let y = year();
    let admin = idp.token(support::ADMIN);
    let teacher = idp.token(roster.teacher);
    let guardian = idp.token(roster.guardian);
    let q = |token: &str, query: &str, vars: Value| {
        let token = token.to_owned();
        let query = query.to_owned();
        let node = &node;
        async move {
            let r = node.graphql(Some(&token), &query, vars).await;
            assert!(r["errors"].is_null(), "{query}: {r}");
            r["data"].clone()
        }
    };
    let class = q(
        &teacher,
        "query($s: ID!) { student(id: $s) { schoolClass { id establishment { id } } } }",
        json!({"s": roster.student.to_string()}),
    )
    .await;
    let class_id = class["student"]["schoolClass"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let establishment = class["student"]["schoolClass"]["establishment"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = q(
        &admin,
        DEFINE,
        json!({"i": {"establishmentId": establishment, "periods": trimestres(y)}}),
    )
    .await;
    let period = d["definePeriods"][0]["id"].as_str().unwrap().to_owned();
    let a = q(
        &teacher,
        ASSESS,
        json!({"i": {"classId": class_id, "subject": "Mathématiques", "title": "Fractions",
        "date": day(y, 10, 6).to_string(), "coefficient": 1.0, "outOf": 20.0}}),
    )
    .await;
    let a = a["createAssessment"]["id"].as_str().unwrap().to_owned();
    for (s, score) in [(roster.student, 14.5), (roster.other_student, 9.25)] {
        q(&teacher, GRADE, json!({"i": {"assessmentId": a, "studentId": s.to_string(), "score": score, "status": "GRADED"}})).await;
    }
    let before_appreciation = chrono::Utc::now();
    let text = "Très bon trimestre : élève sérieuse, « appliquée » et curieuse ; des progrès nets en géométrie, à poursuivre au trimestre prochain.";
    q(&teacher, APPRECIATE, json!({"i": {"studentId": roster.student.to_string(), "periodId": period, "subject": "Mathématiques", "text": text}})).await;

    let card = q(
        &guardian,
        CARD,
        json!({"s": roster.student.to_string(), "p": period}),
    )
    .await;
    let card = card["student"]["reportCard"].clone();
    let url = card["pdfUrl"].as_str().unwrap();
    let response = node
        .http()
        .get(node.url(url))
        .bearer_auth(&guardian)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    let pdf = response.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let printed = pdf_text(&pdf);
    let row = &card["subjects"][0];
    for expected in [
        "Collège de test".to_owned(),
        "UAI : 0759999Z".to_owned(),
        "Élève : Inès Benali".to_owned(),
        "Classe : 4eB".to_owned(),
        card["period"]["name"].as_str().unwrap().to_owned(),
        format!(
            "du {} au {}",
            day(y, 9, 1).format("%d/%m/%Y"),
            day(y, 11, 30).format("%d/%m/%Y")
        ),
        format!(
            "Mathématiques Claire Martin {} {} {} {}",
            french(&row["average"]),
            french(&row["classAverage"]),
            french(&row["classMin"]),
            french(&row["classMax"])
        ),
        normalized(text),
        format!("Moyenne générale : {}", french(&card["overallAverage"])),
        format!(
            "Moyenne de la classe : {}",
            french(&card["classOverallAverage"])
        ),
        format!("Rang : {} / {}", card["rank"], card["classSize"]),
        format!("Vie scolaire : {} demi-journée(s)", card["halfDaysMissed"]),
        "Bulletin provisoire".to_owned(),
    ] {
        assert!(
            printed.contains(&expected),
            "{expected:?} is not in the bulletin:\n{printed}"
        );
    }
    assert_eq!(french(&row["average"]), "14,50");
    let head = node.store.head().await.unwrap();
    assert!(
        printed.contains(&format!("position {head} du journal")),
        "{printed}"
    );

    // The same authorization as the report card: no token, another family,
    // an unknown period.
    let get = |token: Option<String>, path: String| {
        let node = &node;
        async move {
            let mut r = node.http().get(node.url(&path));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send().await.unwrap()
        }
    };
    let r = get(None, url.to_owned()).await;
    assert_eq!(r.status(), 401);
    let r = get(Some(idp.token(roster.other_guardian)), url.to_owned()).await;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(support::error_codes(&body), ["FORBIDDEN"]);
    let r = get(
        Some(guardian.clone()),
        format!("/bulletins/{}/{}.pdf", roster.student, uuid::Uuid::now_v7()),
    )
    .await;
    assert_eq!(r.status(), 404);

    // The read is in the access log, like any other.
    q(
        &admin,
        "mutation($i: RegisterPersonInput!) { registerPerson(input: $i) { id } }",
        json!({"i": {"externalId": "e2e-auditor", "displayName": "Audit", "roles": ["AUDITOR"]}}),
    )
    .await;
    let person = registre_domain::PersonId::for_external_id("e2e-student").to_string();
    let log = q(&idp.token("e2e-auditor"), "query($p: ID!) { accessLog(subjectId: $p, first: 500) { viewer { externalId } operation } }", json!({"p": person})).await;
    let entries = log["accessLog"].as_array().unwrap();
    let by_guardian = entries
        .iter()
        .filter(|e| {
            e["viewer"]["externalId"] == roster.guardian
                && e["operation"].as_str().unwrap().contains("reportCard")
        })
        .count();
    // The GraphQL read and the PDF read (the forbidden one is not logged).
    assert!(by_guardian >= 2, "{entries:?}");

    // An auditor's card as it stood at an instant prints as it stood then:
    // before the appreciation, none is printed.
    let auditor = idp.token("e2e-auditor");
    let past = q(
        &auditor,
        "query($s: ID!, $at: DateTime!, $p: ID!) { studentAsOf(id: $s, at: $at) { reportCard(periodId: $p) { pdfUrl subjects { appreciation } } } }",
        json!({"s": roster.student.to_string(), "at": before_appreciation.to_rfc3339(), "p": period}),
    )
    .await;
    let card = &past["studentAsOf"]["reportCard"];
    assert_eq!(card["subjects"][0]["appreciation"], Value::Null, "{card}");
    let url = card["pdfUrl"].as_str().unwrap();
    assert!(url.contains("?at="), "{url}");
    let r = get(Some(auditor), url.to_owned()).await;
    assert_eq!(r.status(), 200);
    let printed = pdf_text(&r.bytes().await.unwrap());
    assert!(printed.contains("Inès Benali"), "{printed}");
    assert!(!printed.contains("appliquée"), "{printed}");
    // studentAsOf is the auditor's: a guardian is refused the past bulletin.
    let r = get(Some(guardian.clone()), url.to_owned()).await;
    assert_eq!(r.status(), 403);
    node.stop().await;
}

#[tokio::test]
async fn the_demo_shows_a_final_report_card_and_its_bulletin() {
    let db = support::TestDb::create().await;
    let idp = support::Idp::new();
    let config = idp.config(&db, &[]);
    let store = registre::node::open_store(&config).await.unwrap();
    let seeded = registre::demo::seed(store.as_ref(), 2026, false)
        .await
        .unwrap();
    let node = support::Node::start(&config).await;
    node.wait_ready().await;
    let guardian = seeded
        .accounts
        .iter()
        .find(|a| a.role == "GUARDIAN")
        .unwrap()
        .subject
        .clone();
    let token = idp.token(&guardian);
    let d = node
        .graphql(
            Some(&token),
            "{ myChildren { id schoolClass { establishment { periods { id name closed } } } } }",
            json!({}),
        )
        .await;
    let child = &d["data"]["myChildren"][0];
    let periods = child["schoolClass"]["establishment"]["periods"]
        .as_array()
        .unwrap_or_else(|| panic!("{d}"));
    let closed: Vec<bool> = periods
        .iter()
        .map(|p| p["closed"].as_bool().unwrap())
        .collect();
    assert_eq!(closed, [true, false, false]);
    let d = node
        .graphql(
            Some(&token),
            CARD,
            json!({"s": child["id"], "p": periods[0]["id"]}),
        )
        .await;
    let card = &d["data"]["student"]["reportCard"];
    assert_eq!(card["final"], true, "{d}");
    assert!(card["generalAppreciation"].is_string(), "{card}");
    let subjects = card["subjects"].as_array().unwrap();
    assert!(subjects.len() >= 8, "{card}");
    assert!(
        subjects.iter().all(|s| s["appreciation"].is_string()),
        "{card}"
    );
    let response = node
        .http()
        .get(node.url(card["pdfUrl"].as_str().unwrap()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let printed = pdf_text(&response.bytes().await.unwrap());
    assert!(
        printed.contains("Collège Jean Moulin") && printed.contains("Bulletin définitif"),
        "{printed}"
    );
    assert!(
        printed.contains(&normalized(card["generalAppreciation"].as_str().unwrap())),
        "{printed}"
    );
    node.stop().await;
}
