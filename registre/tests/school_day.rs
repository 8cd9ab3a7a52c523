//! The school day end to end (issue 13), on a real PostgreSQL database (and a
//! smoke run on the embedded SQLite store): the timetable and holidays, the
//! roll call per course with its correction and a guardian's declaration,
//! missing roll calls, motives and the absenteeism rule, departures, the
//! cahier de textes, pending justifications; every refusal with its code and
//! nothing written.
//!
//! Dates are derived from today (Paris) so that nothing goes stale: courses
//! that must be over are placed hours before now, those to plan weeks ahead.
#![allow(clippy::unwrap_used)]

mod common;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone as _, Timelike, Utc, Weekday};
use chrono_tz::Europe::Paris;
use common::{codes, str_at, World};
use serde_json::{json, Value};

const PLAN: &str = "mutation($i: PlanCourseInput!) { planCourse(input: $i) { id start end subject room cancelled teacher { id } schoolClass { id } } }";
const WEEKLY: &str =
    "mutation($i: PlanWeeklyCoursesInput!) { planWeeklyCourses(input: $i) { id start end } }";
const HOLIDAYS: &str =
    "mutation($i: SetHolidaysInput!) { setHolidays(input: $i) { id holidays { from to } } }";
const CALL: &str = "mutation($i: TakeRollCallInput!) { takeRollCall(input: $i) { presentCount takenAt takenBy { id } course { id } absent { id declared student { id } course { id } } late { id minutesLate student { id } } } }";
const CANCEL: &str = "mutation($c: ID!, $r: String!) { cancelCourse(courseId: $c, reason: $r) { id cancelled cancelledReason } }";
const REPORT: &str =
    "mutation($i: ReportAbsenceInput!) { reportAbsence(input: $i) { id motive { code } } }";
const DEFINE: &str = "mutation($i: DefineAbsenceReasonInput!) { defineAbsenceReason(input: $i) { id code label justifies usableByGuardians } }";
const STATS: &str = "query($c: ID!, $f: Date!, $t: Date!) { absenceStats(classId: $c, from: $f, to: $t) { halfDaysMissed unjustifiedHalfDays studentsOverThreshold { id } } }";

fn today() -> NaiveDate {
    Utc::now().with_timezone(&Paris).date_naive()
}

/// `h:m` on `day` in Paris, as RFC 3339.
fn paris(day: NaiveDate, h: u32, m: u32) -> String {
    Paris
        .from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap())
        .earliest()
        .unwrap()
        .to_rfc3339()
}

/// The first `weekday` on or after `from`.
fn next(from: NaiveDate, weekday: Weekday) -> NaiveDate {
    let mut d = from;
    while d.weekday() != weekday {
        d = d.succ_opt().unwrap();
    }
    d
}

/// An instant `minutes` from now, to the minute, as RFC 3339 UTC.
fn from_now(minutes: i64) -> String {
    let t = Utc::now() + Duration::minutes(minutes);
    t.with_second(0)
        .unwrap()
        .with_nanosecond(0)
        .unwrap()
        .to_rfc3339()
}

/// The Paris day of an RFC 3339 instant.
fn day_of(instant: &str) -> String {
    DateTime::parse_from_rfc3339(instant)
        .unwrap()
        .with_timezone(&Paris)
        .date_naive()
        .to_string()
}

async fn plan(w: &World, start: &str, end: &str) -> Value {
    w.node
        .ok(
            "head1",
            PLAN,
            json!({"i": {"classId": w.id("C1"), "subject": "maths", "teacherId": w.id("teacher1"),
                         "start": start, "end": end, "room": "B12"}}),
        )
        .await["planCourse"]
        .clone()
}

/// Runs `query` as `who`, expects one error with `code`, and checks nothing was written.
async fn refused(w: &World, who: &str, query: &str, vars: Value, code: &str) {
    let before = w.node.head().await;
    let r = w.node.run(who, query, vars).await;
    assert_eq!(codes(&r), vec![code.to_owned()], "{who}: {:?}", r.errors);
    assert_eq!(
        w.node.head().await,
        before,
        "{who}: a refusal wrote something"
    );
}

async fn absences_of(w: &World, who: &str, student: &str) -> Vec<Value> {
    let d = w
        .node
        .ok(
            who,
            "query($s: ID!) { student(id: $s) { absences { id kind state declared motive { code } course { id } } } }",
            json!({"s": w.id(student)}),
        )
        .await;
    d["student"]["absences"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_timetable_is_planned_by_the_head_never_on_holidays_and_read_in_local_time() {
    let w = World::postgres().await;
    let day = next(today() + Duration::days(14), Weekday::Mon);
    let course = plan(&w, &paris(day, 9, 0), &paris(day, 10, 0)).await;
    // Shown in the establishment's offset, not UTC.
    let start = course["start"].as_str().unwrap();
    assert!(
        start.ends_with("+01:00") || start.ends_with("+02:00"),
        "{start}"
    );
    assert!(start.starts_with(&format!("{day}T09:00:00")), "{start}");
    assert_eq!(course["teacher"]["id"], w.id("teacher1"));
    assert_eq!(course["room"], "B12");

    // Only a teacher assigned to the class and subject teaches it.
    let wrong_teacher = json!({"i": {"classId": w.id("C1"), "subject": "maths",
        "teacherId": w.id("teacher2"), "start": paris(day, 11, 0), "end": paris(day, 12, 0)}});
    refused(&w, "head1", PLAN, wrong_teacher, "INVALID_INPUT").await;
    let other_subject = json!({"i": {"classId": w.id("C1"), "subject": "french",
        "teacherId": w.id("teacher1"), "start": paris(day, 11, 0), "end": paris(day, 12, 0)}});
    refused(&w, "head1", PLAN, other_subject, "INVALID_INPUT").await;
    let backwards = json!({"i": {"classId": w.id("C1"), "subject": "maths",
        "teacherId": w.id("teacher1"), "start": paris(day, 11, 0), "end": paris(day, 10, 0)}});
    refused(&w, "head1", PLAN, backwards, "INVALID_INPUT").await;
    // Who plans: HEAD (or ADMIN), not a teacher nor another establishment's staff.
    let ok_vars = json!({"i": {"classId": w.id("C1"), "subject": "maths",
        "teacherId": w.id("teacher1"), "start": paris(day, 14, 0), "end": paris(day, 15, 0)}});
    refused(&w, "teacher1", PLAN, ok_vars.clone(), "FORBIDDEN").await;
    refused(&w, "staff2", PLAN, ok_vars, "FORBIDDEN").await;

    // Holidays: the week after `day` (Monday to Sunday).
    let holiday = day + Duration::days(7);
    let d = w
        .node
        .ok(
            "head1",
            HOLIDAYS,
            json!({"i": {"establishmentId": w.id("E1"), "holidays": [
                {"from": holiday.to_string(), "to": (holiday + Duration::days(6)).to_string()}]}}),
        )
        .await;
    assert_eq!(d["setHolidays"]["holidays"][0]["from"], holiday.to_string());
    refused(
        &w,
        "teacher1",
        HOLIDAYS,
        json!({"i": {"establishmentId": w.id("E1"), "holidays": []}}),
        "FORBIDDEN",
    )
    .await;
    let on_holiday = json!({"i": {"classId": w.id("C1"), "subject": "maths",
        "teacherId": w.id("teacher1"), "start": paris(holiday + Duration::days(1), 9, 0),
        "end": paris(holiday + Duration::days(1), 10, 0)}});
    refused(&w, "head1", PLAN, on_holiday, "INVALID_INPUT").await;

    // Weekly: every Wednesday of four weeks, the holiday week's skipped.
    let from = day;
    let to = day + Duration::days(27);
    let d = w
        .node
        .ok(
            "head1",
            WEEKLY,
            json!({"i": {"classId": w.id("C1"), "subject": "maths", "teacherId": w.id("teacher1"),
                         "weekday": 3, "startTime": "08:05", "endTime": "09:00",
                         "from": from.to_string(), "to": to.to_string()}}),
        )
        .await;
    let weekly = d["planWeeklyCourses"].as_array().unwrap();
    let wednesdays: Vec<String> = (0..4)
        .map(|k| from + Duration::days(2 + 7 * k))
        .filter(|d| *d != holiday + Duration::days(2))
        .map(|d| d.to_string())
        .collect();
    let planned: Vec<String> = weekly
        .iter()
        .map(|c| c["start"].as_str().unwrap()[..10].to_owned())
        .collect();
    assert_eq!(planned, wednesdays);
    assert!(weekly[0]["start"].as_str().unwrap().contains("T08:05:00+0"));
    let bad_weekday = json!({"i": {"classId": w.id("C1"), "subject": "maths", "teacherId": w.id("teacher1"),
        "weekday": 8, "startTime": "08:05", "endTime": "09:00", "from": from.to_string(), "to": to.to_string()}});
    refused(&w, "head1", WEEKLY, bad_weekday, "INVALID_INPUT").await;

    // The class's, the student's and the teacher's timetables.
    let range =
        json!({"c": w.id("C1"), "s": w.id("s1"), "f": from.to_string(), "t": to.to_string()});
    let d = w
        .node
        .ok(
            "student1",
            "query($c: ID!, $s: ID!, $f: Date!, $t: Date!) { schoolClass(id: $c) { timetable(from: $f, to: $t) { id } } student(id: $s) { timetable(from: $f, to: $t) { id subject } } }",
            range.clone(),
        )
        .await;
    assert_eq!(d["schoolClass"]["timetable"].as_array().unwrap().len(), 4);
    assert_eq!(d["student"]["timetable"].as_array().unwrap().len(), 4);
    let mine = "query($f: Date!, $t: Date!) { myCourses(from: $f, to: $t) { id } }";
    let d = w.node.ok("teacher1", mine, range.clone()).await;
    assert_eq!(d["myCourses"].as_array().unwrap().len(), 4);
    let d = w.node.ok("staff1", mine, range.clone()).await;
    assert_eq!(d["myCourses"].as_array().unwrap().len(), 4);
    let d = w.node.ok("teacher2", mine, range.clone()).await;
    assert_eq!(d["myCourses"].as_array().unwrap().len(), 0);
    let r = w.node.run("guardian2", mine, range.clone()).await;
    assert_eq!(codes(&r), vec!["FORBIDDEN"]);
    let r = w
        .node
        .run(
            "student2",
            "query($c: ID!, $f: Date!, $t: Date!) { schoolClass(id: $c) { timetable(from: $f, to: $t) { id } } }",
            range,
        )
        .await;
    assert_eq!(codes(&r), vec!["FORBIDDEN"]);

    // Cancelled with a reason, by the vie scolaire.
    let id = course["id"].as_str().unwrap();
    refused(
        &w,
        "teacher1",
        CANCEL,
        json!({"c": id, "r": "sortie"}),
        "FORBIDDEN",
    )
    .await;
    let d = w
        .node
        .ok("staff1", CANCEL, json!({"c": id, "r": "Sortie au musée"}))
        .await;
    assert_eq!(d["cancelCourse"]["cancelled"], true);
    assert_eq!(d["cancelCourse"]["cancelledReason"], "Sortie au musée");
    refused(
        &w,
        "staff1",
        CANCEL,
        json!({"c": id, "r": "encore"}),
        "CONFLICT",
    )
    .await;
    // A cancelled course has no roll call.
    refused(
        &w,
        "teacher1",
        CALL,
        json!({"i": {"courseId": id, "absent": [w.id("s1")]}}),
        "INVALID_INPUT",
    )
    .await;
}

#[tokio::test]
async fn a_roll_call_records_absences_per_course_and_a_second_call_corrects_it() {
    let w = World::postgres().await;
    let course = plan(&w, &from_now(-180), &from_now(-120)).await;
    let id = course["id"].as_str().unwrap().to_owned();
    let call = json!({"i": {"courseId": id, "absent": [w.id("s1")],
        "late": [{"studentId": w.id("s4"), "minutesLate": 10}], "idempotencyKey": "call-1"}});
    let d = w.node.ok("teacher1", CALL, call.clone()).await;
    let rc = &d["takeRollCall"];
    assert_eq!(
        rc["presentCount"], 1,
        "C1 holds s1 and s4; s4 is late, present"
    );
    assert_eq!(rc["takenBy"]["id"], w.id("teacher1"));
    assert_eq!(rc["absent"][0]["student"]["id"], w.id("s1"));
    assert_eq!(rc["absent"][0]["course"]["id"], id.as_str());
    assert_eq!(rc["late"][0]["minutesLate"], 10);
    let first_absence = str_at(rc, "/absent/0/id");
    assert!(!rc["takenAt"].as_str().unwrap().ends_with('Z'));

    // The same key: the same call, nothing written.
    let head = w.node.head().await;
    let again = w.node.ok("teacher1", CALL, call).await;
    assert_eq!(str_at(&again, "/takeRollCall/absent/0/id"), first_absence);
    assert_eq!(w.node.head().await, head);

    // The same key for another call is refused, and writes nothing.
    refused(
        &w,
        "teacher1",
        CALL,
        json!({"i": {"courseId": id, "absent": [w.id("s4")], "idempotencyKey": "call-1"}}),
        "CONFLICT",
    )
    .await;

    // A normal absence: the guardian sees it, linked to its course.
    let list = absences_of(&w, "guardian1", "s1").await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["course"]["id"], id.as_str());
    assert_eq!(list[0]["state"], "UNJUSTIFIED");

    // Refusals: another teacher, a student of another class, a late minute count out of range.
    refused(
        &w,
        "teacher2",
        CALL,
        json!({"i": {"courseId": id, "absent": []}}),
        "FORBIDDEN",
    )
    .await;
    refused(
        &w,
        "staff2",
        CALL,
        json!({"i": {"courseId": id, "absent": []}}),
        "FORBIDDEN",
    )
    .await;
    refused(
        &w,
        "teacher1",
        CALL,
        json!({"i": {"courseId": id, "absent": [w.id("s1"), w.id("s2")]}}),
        "INVALID_INPUT",
    )
    .await;
    refused(
        &w,
        "teacher1",
        CALL,
        json!({"i": {"courseId": id, "absent": [], "late": [{"studentId": w.id("s4"), "minutesLate": 0}]}}),
        "INVALID_INPUT",
    )
    .await;

    // The correction, by the vie scolaire: s1 was there after all.
    let d = w
        .node
        .ok(
            "staff1",
            CALL,
            json!({"i": {"courseId": id, "absent": [],
                         "late": [{"studentId": w.id("s4"), "minutesLate": 10}]}}),
        )
        .await;
    assert_eq!(d["takeRollCall"]["presentCount"], 2);
    assert_eq!(d["takeRollCall"]["absent"], json!([]));
    assert_eq!(d["takeRollCall"]["late"].as_array().unwrap().len(), 1);
    assert!(absences_of(&w, "guardian1", "s1").await.is_empty());
    // The audit trail keeps both: the report and its cancellation.
    let person = w
        .node
        .ok(
            "admin",
            "query($s: ID!) { student(id: $s) { person { id } } }",
            json!({"s": w.id("s1")}),
        )
        .await;
    let trail = w
        .node
        .ok(
            "auditor",
            "query($p: ID!) { auditTrail(subjectId: $p) { eventType reason } }",
            json!({"p": str_at(&person, "/student/person/id")}),
        )
        .await;
    let entries = trail["auditTrail"].as_array().unwrap();
    assert!(entries.iter().any(|e| e["eventType"] == "AbsenceReported"));
    assert!(entries
        .iter()
        .any(|e| e["eventType"] == "AbsenceCancelled" && e["reason"] == "roll call corrected"));

    // Listed again: a new absence, not the cancelled one.
    let d = w
        .node
        .ok(
            "teacher1",
            CALL,
            json!({"i": {"courseId": id, "absent": [w.id("s1")]}}),
        )
        .await;
    assert_ne!(str_at(&d, "/takeRollCall/absent/0/id"), first_absence);
    assert_eq!(absences_of(&w, "guardian1", "s1").await.len(), 1);
    // s4 no longer late: their lateness is cancelled.
    assert!(absences_of(&w, "staff1", "s4").await.is_empty());
}

#[tokio::test]
async fn a_guardians_declaration_covering_the_course_is_confirmed_not_duplicated() {
    let w = World::postgres().await;
    let course = plan(&w, &from_now(60), &from_now(120)).await;
    let id = course["id"].as_str().unwrap().to_owned();
    let d = w
        .node
        .ok(
            "guardian1",
            "mutation($i: DeclareAbsenceInput!) { declareAbsence(input: $i) { id } }",
            json!({"i": {"studentId": w.id("s1"), "start": from_now(30), "end": from_now(300),
                         "reason": "rendez-vous médical"}}),
        )
        .await;
    let declared = str_at(&d, "/declareAbsence/id");
    let d = w
        .node
        .ok(
            "teacher1",
            CALL,
            json!({"i": {"courseId": id, "absent": [w.id("s1")]}}),
        )
        .await;
    assert_eq!(str_at(&d, "/takeRollCall/absent/0/id"), declared);
    assert_eq!(d["takeRollCall"]["absent"][0]["declared"], false);
    let list = absences_of(&w, "guardian1", "s1").await;
    assert_eq!(list.len(), 1, "confirmed, not duplicated: {list:?}");
    assert_eq!(list[0]["state"], "PENDING");
    // A correction does not cancel the guardian's declaration.
    w.node
        .ok(
            "teacher1",
            CALL,
            json!({"i": {"courseId": id, "absent": []}}),
        )
        .await;
    assert_eq!(absences_of(&w, "guardian1", "s1").await.len(), 1);
}

#[tokio::test]
async fn the_vie_scolaire_sees_the_courses_whose_roll_call_was_forgotten() {
    let w = World::postgres().await;
    let forgotten = plan(&w, &from_now(-180), &from_now(-120)).await;
    let called = plan(&w, &from_now(-180), &from_now(-120)).await;
    let cancelled = plan(&w, &from_now(-180), &from_now(-120)).await;
    let later = plan(&w, &from_now(-170), &from_now(30)).await;
    w.node
        .ok(
            "teacher1",
            CALL,
            json!({"i": {"courseId": called["id"], "absent": []}}),
        )
        .await;
    w.node
        .ok(
            "staff1",
            CANCEL,
            json!({"c": cancelled["id"], "r": "professeur absent"}),
        )
        .await;
    let date = day_of(forgotten["start"].as_str().unwrap());
    let q = "query($e: ID!, $d: Date!, $g: Int) { missingRollCalls(establishmentId: $e, date: $d, graceMinutes: $g) { id } }";
    let d = w
        .node
        .ok("staff1", q, json!({"e": w.id("E1"), "d": date, "g": null}))
        .await;
    let ids: Vec<&Value> = d["missingRollCalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(ids, vec![&forgotten["id"]], "later: {}", later["id"]);
    // Within its grace, a course is not chased yet.
    let d = w
        .node
        .ok("head1", q, json!({"e": w.id("E1"), "d": date, "g": 180}))
        .await;
    assert_eq!(d["missingRollCalls"], json!([]));
    for who in ["teacher1", "staff2", "guardian1"] {
        let r = w
            .node
            .run(who, q, json!({"e": w.id("E1"), "d": date, "g": null}))
            .await;
        assert_eq!(codes(&r), vec!["FORBIDDEN"], "{who}");
    }
    let r = w
        .node
        .run("staff1", q, json!({"e": w.id("E1"), "d": date, "g": -1}))
        .await;
    assert_eq!(codes(&r), vec!["INVALID_INPUT"]);
    // A day that became a holiday is not chased.
    w.node
        .ok(
            "head1",
            HOLIDAYS,
            json!({"i": {"establishmentId": w.id("E1"), "holidays": [{"from": date, "to": date}]}}),
        )
        .await;
    let d = w
        .node
        .ok("staff1", q, json!({"e": w.id("E1"), "d": date, "g": null}))
        .await;
    assert_eq!(d["missingRollCalls"], json!([]));
}

/// Monday of the first full school week of the month two months back.
fn past_monday() -> NaiveDate {
    let back = today() - Duration::days(60);
    next(back.with_day(1).unwrap(), Weekday::Mon)
}

async fn define(
    w: &World,
    who: &str,
    est: &str,
    code: &str,
    justifies: bool,
    guardians: bool,
) -> String {
    let d = w
        .node
        .ok(
            who,
            DEFINE,
            json!({"i": {"establishmentId": w.id(est), "code": code, "label": format!("motif {code}"),
                         "justifies": justifies, "usableByGuardians": guardians}}),
        )
        .await;
    str_at(&d, "/defineAbsenceReason/id")
}

#[tokio::test]
async fn motives_are_the_establishments_own_and_a_non_justifying_one_stays_unjustified() {
    let w = World::postgres().await;
    let med = define(&w, "staff1", "E1", "MED", true, true).await;
    let conv = define(&w, "head1", "E1", "CONV", false, true).await;
    let staff_only = define(&w, "staff1", "E1", "EXCL", true, false).await;
    let elsewhere = define(&w, "staff2", "E2", "MED", true, true).await;
    let d = w
        .node
        .ok(
            "guardian1",
            "query($e: ID!) { establishment(id: $e) { absenceReasons { code justifies usableByGuardians } } }",
            json!({"e": w.id("E1")}),
        )
        .await;
    let codes_listed: Vec<&str> = d["establishment"]["absenceReasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes_listed, vec!["MED", "CONV", "EXCL"]);
    let dup = json!({"i": {"establishmentId": w.id("E1"), "code": "med", "label": "x", "justifies": true, "usableByGuardians": true}});
    refused(&w, "staff1", DEFINE, dup.clone(), "CONFLICT").await;
    refused(&w, "teacher1", DEFINE, dup.clone(), "FORBIDDEN").await;
    refused(&w, "staff2", DEFINE, dup, "FORBIDDEN").await;

    let monday = past_monday();
    let report = |day: NaiveDate, motive: Option<&str>| {
        json!({"i": {"studentId": w.id("s1"), "kind": "ABSENCE", "start": paris(day, 8, 0),
                     "end": paris(day, 17, 0), "motiveId": motive}})
    };
    // Staff give any motive of the establishment, not another's.
    let d = w
        .node
        .ok("teacher1", REPORT, report(monday, Some(&staff_only)))
        .await;
    assert_eq!(d["reportAbsence"]["motive"]["code"], "EXCL");
    refused(
        &w,
        "teacher1",
        REPORT,
        report(monday, Some(&elsewhere)),
        "INVALID_INPUT",
    )
    .await;
    refused(
        &w,
        "teacher1",
        REPORT,
        report(monday, Some("not-a-uuid")),
        "INVALID_INPUT",
    )
    .await;

    // Two days justified with a motive that does not justify, accepted: 4
    // unjustified half-days, over the threshold; a third with MED is justified.
    let justify = "mutation($i: JustifyAbsenceInput!) { justifyAbsence(input: $i) { state motive { code } } }";
    let review =
        "mutation($i: ReviewJustificationInput!) { reviewJustification(input: $i) { state } }";
    let mut ids = vec![];
    for (k, motive) in [(1, &conv), (2, &conv), (3, &med)] {
        let d = w
            .node
            .ok("teacher1", REPORT, report(monday + Duration::days(k), None))
            .await;
        let absence = str_at(&d, "/reportAbsence/id");
        if k == 1 {
            // A guardian may not choose a staff-only motive, nor another establishment's.
            for m in [&staff_only, &elsewhere] {
                refused(
                    &w,
                    "guardian1",
                    justify,
                    json!({"i": {"absenceId": absence, "reason": "x", "motiveId": m}}),
                    "INVALID_INPUT",
                )
                .await;
            }
        }
        let d = w
            .node
            .ok(
                "guardian1",
                justify,
                json!({"i": {"absenceId": absence, "reason": "voir motif", "motiveId": motive}}),
            )
            .await;
        assert_eq!(d["justifyAbsence"]["state"], "PENDING");
        w.node
            .ok(
                "staff1",
                review,
                json!({"i": {"absenceId": absence, "accept": true}}),
            )
            .await;
        ids.push(absence);
    }
    let d = w
        .node
        .ok(
            "staff1",
            STATS,
            json!({"c": w.id("C1"), "f": (monday + Duration::days(1)).to_string(),
                   "t": (monday + Duration::days(3)).to_string()}),
        )
        .await;
    let stats = &d["absenceStats"];
    assert_eq!(stats["halfDaysMissed"], 6);
    assert_eq!(
        stats["unjustifiedHalfDays"], 4,
        "CONV accepted stays unjustified"
    );
    assert_eq!(stats["studentsOverThreshold"][0]["id"], w.id("s1"));

    // A guardian declaring: a staff-only motive is refused, theirs accepted.
    let declare =
        "mutation($i: DeclareAbsenceInput!) { declareAbsence(input: $i) { id motive { code } } }";
    let ahead = json!({"i": {"studentId": w.id("s1"), "start": from_now(60 * 24), "end": from_now(60 * 26),
        "reason": "dentiste", "motiveId": staff_only}});
    refused(&w, "guardian1", declare, ahead, "INVALID_INPUT").await;
    let d = w
        .node
        .ok(
            "guardian1",
            declare,
            json!({"i": {"studentId": w.id("s1"), "start": from_now(60 * 24), "end": from_now(60 * 26),
                         "reason": "dentiste", "motiveId": med}}),
        )
        .await;
    assert_eq!(d["declareAbsence"]["motive"]["code"], "MED");
}

#[tokio::test]
async fn departures_count_in_half_days_and_holidays_count_none() {
    let w = World::postgres().await;
    let monday = past_monday();
    // Left at 14:00 on Monday: one afternoon.
    w.node
        .ok(
            "staff1",
            REPORT,
            json!({"i": {"studentId": w.id("s4"), "kind": "DEPARTURE", "start": paris(monday, 14, 0),
                         "end": paris(monday, 17, 0)}}),
        )
        .await;
    let departure_with_minutes = json!({"i": {"studentId": w.id("s4"), "kind": "DEPARTURE",
        "start": paris(monday, 14, 0), "end": paris(monday, 17, 0), "minutesLate": 5}});
    refused(
        &w,
        "staff1",
        REPORT,
        departure_with_minutes,
        "INVALID_INPUT",
    )
    .await;
    // Absent Tuesday and Wednesday; Wednesday is a holiday.
    let tuesday = monday + Duration::days(1);
    let wednesday = monday + Duration::days(2);
    w.node
        .ok(
            "staff1",
            REPORT,
            json!({"i": {"studentId": w.id("s4"), "kind": "ABSENCE", "start": paris(tuesday, 8, 0),
                         "end": paris(wednesday, 17, 0)}}),
        )
        .await;
    let vars = json!({"c": w.id("C1"), "f": monday.to_string(), "t": wednesday.to_string()});
    let d = w.node.ok("staff1", STATS, vars.clone()).await;
    assert_eq!(d["absenceStats"]["halfDaysMissed"], 5);
    w.node
        .ok(
            "head1",
            HOLIDAYS,
            json!({"i": {"establishmentId": w.id("E1"), "holidays": [
                {"from": wednesday.to_string(), "to": wednesday.to_string()}]}}),
        )
        .await;
    let d = w.node.ok("staff1", STATS, vars).await;
    assert_eq!(
        d["absenceStats"]["halfDaysMissed"], 3,
        "departure 1 + Tuesday 2"
    );
    let d = w
        .node
        .ok(
            "student1",
            "query($e: ID!) { establishment(id: $e) { holidays { from to } } }",
            json!({"e": w.id("E1")}),
        )
        .await;
    assert_eq!(
        d["establishment"]["holidays"][0]["to"],
        wednesday.to_string()
    );
}

#[tokio::test]
async fn the_cahier_de_textes_records_lessons_homework_and_who_did_it() {
    let w = World::postgres().await;
    let course = plan(&w, &from_now(-120), &from_now(-60)).await;
    let id = course["id"].as_str().unwrap().to_owned();
    let lesson = "mutation($i: RecordLessonContentInput!) { recordLessonContent(input: $i) { lessonContent } }";
    refused(
        &w,
        "teacher2",
        lesson,
        json!({"i": {"courseId": id, "content": "x"}}),
        "FORBIDDEN",
    )
    .await;
    refused(
        &w,
        "teacher1",
        lesson,
        json!({"i": {"courseId": id, "content": "  "}}),
        "INVALID_INPUT",
    )
    .await;
    let d = w
        .node
        .ok(
            "teacher1",
            lesson,
            json!({"i": {"courseId": id, "content": "Fractions : addition."}}),
        )
        .await;
    assert_eq!(
        d["recordLessonContent"]["lessonContent"],
        "Fractions : addition."
    );

    let due = next(today() + Duration::days(7), Weekday::Thu);
    let assign = "mutation($i: AssignHomeworkInput!) { assignHomework(input: $i) { id estimatedMinutes course { id } } }";
    let hw = |title: &str, minutes: i32| {
        json!({"i": {"classId": w.id("C1"), "subject": "maths", "title": title, "description": "",
                     "due": due.to_string(), "courseId": id, "estimatedMinutes": minutes}})
    };
    let d = w
        .node
        .ok("teacher1", assign, hw("Exercices p. 12", 30))
        .await;
    let homework = str_at(&d, "/assignHomework/id");
    assert_eq!(d["assignHomework"]["course"]["id"], id.as_str());
    w.node
        .ok("teacher1", assign, hw("Contrôle à réviser", 60))
        .await;
    refused(
        &w,
        "teacher1",
        assign,
        hw("Trop long", 601),
        "INVALID_INPUT",
    )
    .await;
    // A course of another class and subject is refused.
    let other = w
        .node
        .ok(
            "head1",
            PLAN,
            json!({"i": {"classId": w.id("C2"), "subject": "french", "teacherId": w.id("teacher2"),
                         "start": from_now(-120), "end": from_now(-60)}}),
        )
        .await;
    let mismatched = json!({"i": {"classId": w.id("C1"), "subject": "maths", "title": "x", "description": "",
        "due": due.to_string(), "courseId": other["planCourse"]["id"]}});
    refused(&w, "teacher1", assign, mismatched, "INVALID_INPUT").await;

    let load = "query($c: ID!, $f: Date!, $t: Date!) { schoolClass(id: $c) { homeworkLoad(from: $f, to: $t) { date count estimatedMinutes } } }";
    let vars = json!({"c": w.id("C1"), "f": today().to_string(), "t": (due + Duration::days(7)).to_string()});
    let d = w.node.ok("teacher1", load, vars.clone()).await;
    assert_eq!(
        d["schoolClass"]["homeworkLoad"],
        json!([{"date": due.to_string(), "count": 2, "estimatedMinutes": 90}])
    );

    // Students mark it done, for themselves only.
    let mark =
        "mutation($h: ID!, $d: Boolean!) { markHomeworkDone(homeworkId: $h, done: $d) { done } }";
    let d = w
        .node
        .ok("student1", mark, json!({"h": homework, "d": true}))
        .await;
    assert_eq!(d["markHomeworkDone"]["done"], true);
    refused(
        &w,
        "student2",
        mark,
        json!({"h": homework, "d": true}),
        "FORBIDDEN",
    )
    .await;
    refused(
        &w,
        "teacher1",
        mark,
        json!({"h": homework, "d": true}),
        "FORBIDDEN",
    )
    .await;
    let course_hw = "query($c: ID!) { course(id: $c) { homework { id done } } }";
    let seen = |d: &Value| -> Value {
        d["course"]["homework"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["id"] == homework.as_str())
            .unwrap()["done"]
            .clone()
    };
    assert_eq!(
        seen(&w.node.ok("student1", course_hw, json!({"c": id})).await),
        true
    );
    assert_eq!(
        seen(&w.node.ok("student4", course_hw, json!({"c": id})).await),
        false
    );
    assert_eq!(
        seen(&w.node.ok("teacher1", course_hw, json!({"c": id})).await),
        Value::Null
    );
    let r = w.node.run("student2", course_hw, json!({"c": id})).await;
    assert_eq!(codes(&r), vec!["FORBIDDEN"]);

    // Amended and withdrawn by its teacher, with a reason.
    let amend =
        "mutation($i: AmendHomeworkInput!) { amendHomework(input: $i) { title estimatedMinutes } }";
    refused(
        &w,
        "teacher2",
        amend,
        json!({"i": {"homeworkId": homework, "estimatedMinutes": 45, "reason": "x"}}),
        "FORBIDDEN",
    )
    .await;
    refused(
        &w,
        "teacher1",
        amend,
        json!({"i": {"homeworkId": homework, "estimatedMinutes": 30, "reason": "rien"}}),
        "INVALID_INPUT",
    )
    .await;
    let d = w
        .node
        .ok(
            "teacher1",
            amend,
            json!({"i": {"homeworkId": homework, "estimatedMinutes": 45, "reason": "plus long que prévu"}}),
        )
        .await;
    assert_eq!(d["amendHomework"]["estimatedMinutes"], 45);
    assert_eq!(d["amendHomework"]["title"], "Exercices p. 12");
    let withdraw =
        "mutation($h: ID!, $r: String!) { withdrawHomework(homeworkId: $h, reason: $r) }";
    refused(
        &w,
        "teacher2",
        withdraw,
        json!({"h": homework, "r": "x"}),
        "FORBIDDEN",
    )
    .await;
    let d = w
        .node
        .ok(
            "teacher1",
            withdraw,
            json!({"h": homework, "r": "donné par erreur"}),
        )
        .await;
    assert_eq!(d["withdrawHomework"], true);
    let d = w.node.ok("teacher1", load, vars).await;
    assert_eq!(d["schoolClass"]["homeworkLoad"][0]["count"], 1);
    let d = w.node.ok("teacher1", course_hw, json!({"c": id})).await;
    assert_eq!(d["course"]["homework"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn pending_justifications_wait_for_the_vie_scolaire_oldest_first() {
    let w = World::postgres().await;
    let monday = past_monday();
    let mut ids = vec![];
    for k in [2, 0] {
        let day = monday + Duration::days(k);
        let d = w
            .node
            .ok(
                "teacher1",
                REPORT,
                json!({"i": {"studentId": w.id("s1"), "kind": "ABSENCE", "start": paris(day, 8, 0), "end": paris(day, 12, 0)}}),
            )
            .await;
        let absence = str_at(&d, "/reportAbsence/id");
        w.node
            .ok(
                "guardian1",
                "mutation($i: JustifyAbsenceInput!) { justifyAbsence(input: $i) { state } }",
                json!({"i": {"absenceId": absence, "reason": "malade"}}),
            )
            .await;
        ids.push(absence);
    }
    let q = "query($e: ID!) { pendingJustifications(establishmentId: $e) { id } }";
    let d = w.node.ok("staff1", q, json!({"e": w.id("E1")})).await;
    let listed: Vec<&str> = d["pendingJustifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![ids[1].as_str(), ids[0].as_str()]);
    for who in ["teacher1", "staff2", "guardian1"] {
        let r = w.node.run(who, q, json!({"e": w.id("E1")})).await;
        assert_eq!(codes(&r), vec!["FORBIDDEN"], "{who}");
    }
}

#[tokio::test]
async fn the_embedded_store_plans_calls_and_corrects_too() {
    let w = World::sqlite().await;
    let course = plan(&w, &from_now(-120), &from_now(-60)).await;
    let id = course["id"].as_str().unwrap().to_owned();
    let d = w
        .node
        .ok(
            "teacher1",
            CALL,
            json!({"i": {"courseId": id, "absent": [w.id("s1"), w.id("s4")]}}),
        )
        .await;
    assert_eq!(d["takeRollCall"]["absent"].as_array().unwrap().len(), 2);
    assert_eq!(d["takeRollCall"]["presentCount"], 0);
    let d = w
        .node
        .ok(
            "teacher1",
            CALL,
            json!({"i": {"courseId": id, "absent": [w.id("s4")]}}),
        )
        .await;
    assert_eq!(d["takeRollCall"]["presentCount"], 1);
    assert!(absences_of(&w, "guardian1", "s1").await.is_empty());
    assert_eq!(absences_of(&w, "staff1", "s4").await.len(), 1);
}

#[tokio::test]
async fn a_guardian_is_notified_live_of_an_absence_the_roll_call_records() {
    use futures::StreamExt;
    let w = World::postgres().await;
    let course = plan(&w, &from_now(-60), &from_now(-5)).await;
    let from = w.node.head().await;
    let request = async_graphql::Request::new(
        "subscription($after: String) { absenceReported(after: $after) { absence { id course { id } } } }",
    )
    .variables(async_graphql::Variables::from_json(
        json!({"after": from.to_string()}),
    ))
    .data(registre_api::context::Caller {
        subject: "guardian1".into(),
        admin: false,
    });
    let mut live = w.node.schema.execute_stream(request);
    let d = w
        .node
        .ok(
            "teacher1",
            CALL,
            json!({"i": {"courseId": course["id"], "absent": [w.id("s1")],
                         "late": [{"studentId": w.id("s4"), "minutesLate": 3}]}}),
        )
        .await;
    let item = live.next().await.expect("the feed stays open");
    assert!(item.errors.is_empty(), "{:?}", item.errors);
    let v = item.data.into_json().unwrap();
    assert_eq!(
        str_at(&v, "/absenceReported/absence/id"),
        str_at(&d, "/takeRollCall/absent/0/id")
    );
    assert_eq!(
        v["absenceReported"]["absence"]["course"]["id"],
        course["id"]
    );
}
