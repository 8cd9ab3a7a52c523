//! Replays `golden/school.jsonl` into every view and compares the result with
//! the reviewed insta snapshots in `tests/snapshots/`; a few figures are also
//! computed by hand below so that a wrong snapshot cannot be accepted unseen.
#![allow(clippy::unwrap_used)]

use chrono::NaiveDate;
use registre_domain::{AbsenceKind, GradeStatus, JustificationState};
use registre_projections::{HalfDay, ReadModel};
use registre_replay_tests::school::*;
use registre_replay_tests::{golden_dir, read_golden, to_recorded};

fn school() -> ReadModel {
    let lines = read_golden(&golden_dir().join("school.jsonl")).expect("golden log reads");
    let mut model = ReadModel::new();
    model
        .apply_all(&to_recorded(&lines))
        .expect("golden log folds");
    assert_eq!(model.position(), lines.len() as u64);
    model
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn close(actual: Option<f64>, expected: f64) {
    let a = actual.expect("an average");
    assert!((a - expected).abs() < 1e-9, "{a} != {expected}");
}

#[test]
fn averages_match_the_hand_computation() {
    let m = school();
    let lucas = student("e.lucas");
    let chloe = student("e.chloe");
    let hugo = student("e.hugo");
    // Lucas, maths: 12/20 coef 1 and 7/10 = 14/20 coef 2: (12 + 28) / 3.
    close(m.subject_average(lucas, "Mathématiques"), 40.0 / 3.0);
    close(m.subject_average(lucas, "Français"), 15.0);
    close(m.overall_average(lucas), (40.0 / 3.0 + 15.0) / 2.0);
    // Chloé was ABSENT at the coef-2 test: only 16/20 counts.
    close(m.subject_average(chloe, "Mathématiques"), 16.0);
    close(m.overall_average(chloe), (16.0 + 11.0) / 2.0);
    // Hugo: 8/20 coef 1 and 5/10 corrected to 6/10 = 12/20 coef 2: (8 + 24) / 3.
    close(m.subject_average(hugo, "Mathématiques"), 32.0 / 3.0);
    // EXEMPT in French: no average there, and the overall is maths alone.
    assert_eq!(m.subject_average(hugo, "Français"), None);
    close(m.overall_average(hugo), 32.0 / 3.0);
    let french = m
        .averages(hugo)
        .into_iter()
        .find(|a| a.subject == "Français")
        .expect("a French row: the class has a French assessment");
    assert_eq!(french.average, None);
    close(french.class_average, (15.0 + 11.0) / 2.0);
    // Class averages: mean of the students' subject averages, and per assessment.
    close(
        m.class_subject_average(class(SIXIEME_A), "Mathématiques"),
        (40.0 / 3.0 + 16.0 + 32.0 / 3.0) / 3.0,
    );
    close(m.assessment_average(assessment(2)), (14.0 + 12.0) / 2.0);
    // Léa's only grade is NOT_SUBMITTED: no overall average.
    assert_eq!(m.overall_average(student("e.lea")), None);
    let hugo_grade = m
        .grades_of(hugo, Some("Mathématiques"))
        .into_iter()
        .find(|g| g.grade.assessment_id == assessment(2))
        .unwrap();
    assert_eq!(hugo_grade.grade.score, Some(6.0));
    assert_eq!(hugo_grade.grade.corrections, 1);
    assert_eq!(hugo_grade.grade.status, GradeStatus::Graded);
}

#[test]
fn gradebook_statistics_are_on_the_assessment_scale() {
    let m = school();
    let book = m.gradebook(class(SIXIEME_A), "Mathématiques");
    let geometry = &book.columns[1].stats;
    assert_eq!(geometry.count, 2);
    assert_eq!((geometry.min, geometry.max), (Some(6.0), Some(7.0)));
    close(geometry.mean, 6.5);
    close(geometry.mean_on_20, 13.0);
    assert_eq!(book.rows.len(), 3);
}

#[test]
fn absenteeism_counts_half_days_in_the_establishment_zone() {
    let m = school();
    let lucas = student("e.lucas");
    // Mon full day (2), Tue morning (1), Thu afternoon (1): 4 unjustified (the
    // first one REJECTED), lateness not counted.
    let missed = m.missed_half_days(lucas);
    assert_eq!(missed.len(), 4);
    assert!(missed.contains_key(&(date(2026, 3, 5), HalfDay::Afternoon)));
    let months = m.half_days_by_month(class(SIXIEME_A));
    let lucas_march = months.iter().find(|s| s.student_id == lucas).unwrap();
    assert_eq!(lucas_march.unjustified_half_days, 4);
    assert!(lucas_march.over_threshold);

    // 6eA in March: Lucas 4, Chloé 1 (declared, accepted) + 5 (Mon, Tue, Wed
    // morning; PENDING) and the cancelled day not at all, Hugo 2 + Saturday
    // morning 1 (his Saturday afternoon never counts).
    let stats = m.absence_stats(class(SIXIEME_A), date(2026, 3, 1), date(2026, 3, 31));
    assert_eq!(stats.half_days_missed, 4 + 6 + 3);
    assert_eq!(stats.unjustified_half_days, 4 + 3);
    assert_eq!(stats.students_over_threshold, vec![lucas]);
    // From the 3rd, Lucas has 2 unjustified half-days left: under the threshold.
    let later = m.absence_stats(class(SIXIEME_A), date(2026, 3, 3), date(2026, 3, 31));
    assert_eq!(later.unjustified_half_days, 2 + 3);
    assert!(later.students_over_threshold.is_empty());

    // Réunion: 07:00-09:00 UTC is 11:00-13:00 local, two half-days.
    let noah = m.absence_stats(class(SECONDE_1), date(2026, 3, 2), date(2026, 3, 2));
    assert_eq!(noah.half_days_missed, 2);
}

#[test]
fn absences_show_their_justification_state_and_cancelled_ones_are_gone() {
    let m = school();
    let chloe = m.absences_of(student("e.chloe"));
    assert_eq!(chloe.len(), 2, "the cancelled absence is dropped");
    assert!(chloe[0].declared_in_advance && chloe[0].confirmed);
    assert_eq!(chloe[0].state, JustificationState::Accepted);
    assert_eq!(chloe[1].state, JustificationState::Pending);
    assert!(m.is_absence_cancelled(absence(6)));
    assert!(m.absence(absence(6)).is_none());
    let lucas = m.absences_of(student("e.lucas"));
    assert_eq!(lucas[0].state, JustificationState::Rejected);
    assert_eq!(lucas[3].kind, AbsenceKind::Lateness);
    assert_eq!(lucas[3].minutes_late, Some(15));
    let pending = m.pending_justifications(establishment(COLLEGE));
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, absence(7));
}

#[test]
fn homework_is_amended_and_withdrawn() {
    let m = school();
    let load = m.homework_load(class(SIXIEME_A), date(2026, 3, 1), date(2026, 3, 31));
    let days: Vec<(NaiveDate, u32)> = load.iter().map(|d| (d.due, d.count)).collect();
    assert_eq!(days, vec![(date(2026, 3, 10), 2), (date(2026, 3, 12), 1)]);
    let amended = m.homework_entry(homework(1)).unwrap();
    assert_eq!(amended.title, "Exercices p.42 et p.43");
    assert!(m.homework_entry(homework(3)).is_none());
    assert!(m.is_homework_withdrawn(homework(3)));
    let range = m.homework_of(student("e.lucas"), Some(date(2026, 3, 11)), None);
    assert_eq!(range.len(), 1);
}

#[test]
fn messages_count_unread_per_recipient() {
    let m = school();
    let leroy = person("p.leroy");
    let inbox = m.inbox(leroy);
    assert_eq!(inbox.len(), 2);
    assert_eq!(inbox[0].message.id, message(3), "newest first");
    assert_eq!(inbox[0].read_at, None);
    assert!(inbox[1].read_at.is_some());
    assert_eq!(m.unread_count(leroy), 1);
    assert_eq!(m.unread_count(person("p.moreau")), 0);
    assert_eq!(m.unread_count(person("t.martin")), 1);
    let first_read = m.inbox(person("p.moreau"))[0].read_at.unwrap();
    assert_eq!(
        first_read.to_rfc3339(),
        "2026-03-16T11:00:00+00:00",
        "the first receipt stays"
    );
}

#[test]
fn the_audit_index_lists_every_event_about_a_person() {
    let m = school();
    let lines = read_golden(&golden_dir().join("school.jsonl")).unwrap();
    let hugo = person("e.hugo");
    let positions = m.audit_positions(hugo);
    let types: Vec<&str> = positions
        .iter()
        .map(|p| lines[(*p - 1) as usize].event_type.as_str())
        .collect();
    assert_eq!(
        types,
        vec![
            "PersonRegistered",
            "StudentEnrolled",
            "GuardianLinked",
            "GradeRecorded",
            "GradeRecorded",
            "GradeRecorded",
            "AbsenceReported",
            "GradeCorrected",
            "AbsenceReported",
        ]
    );
}

#[test]
fn every_view_matches_its_snapshot() {
    let m = school();
    for (name, ext) in [
        ("lucas", "e.lucas"),
        ("chloe", "e.chloe"),
        ("hugo", "e.hugo"),
        ("emma", "e.emma"),
        ("lea", "e.lea"),
        ("noah", "e.noah"),
    ] {
        insta::assert_json_snapshot!(format!("student_{name}"), m.student_record(student(ext)));
    }
    insta::assert_json_snapshot!(
        "gradebook_6eA_maths",
        m.gradebook(class(SIXIEME_A), "Mathématiques")
    );
    insta::assert_json_snapshot!(
        "gradebook_6eA_francais",
        m.gradebook(class(SIXIEME_A), "Français")
    );
    insta::assert_json_snapshot!(
        "roll_call_6eA_2026-03-02",
        m.roll_call(class(SIXIEME_A), date(2026, 3, 2))
    );
    insta::assert_json_snapshot!(
        "roll_call_6eA_2026-03-06",
        m.roll_call(class(SIXIEME_A), date(2026, 3, 6))
    );
    insta::assert_json_snapshot!(
        "homework_load_6eA",
        m.homework_load(class(SIXIEME_A), date(2026, 3, 1), date(2026, 3, 31))
    );
    insta::assert_json_snapshot!(
        "pending_justifications_college",
        m.pending_justifications(establishment(COLLEGE))
    );
    insta::assert_json_snapshot!(
        "half_days_college",
        m.establishment_half_days_by_month(establishment(COLLEGE))
    );
    insta::assert_json_snapshot!(
        "weekly_rates_6eA",
        m.absence_rate_by_week(class(SIXIEME_A), date(2026, 3, 2), date(2026, 3, 29))
    );
    insta::assert_json_snapshot!(
        "absence_stats_6eA_march",
        m.absence_stats(class(SIXIEME_A), date(2026, 3, 1), date(2026, 3, 31))
    );
    let distributions: Vec<_> = (1..=4)
        .filter_map(|a| m.grade_distribution(assessment(a)))
        .collect();
    insta::assert_json_snapshot!("grade_distributions", distributions);
    insta::assert_json_snapshot!("inbox_leroy", m.inbox(person("p.leroy")));
    insta::assert_json_snapshot!(
        "thread_1_as_martin",
        m.thread_messages(thread(1), person("t.martin"))
    );
}

#[test]
fn the_replay_directory_holds_one_file_per_establishment_class_and_student() {
    let m = school();
    let dir = tempfile::tempdir().unwrap();
    let until = chrono::DateTime::parse_from_rfc3339("2026-04-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let manifest = registre_projections::write_views(&m, until, m.position(), dir.path()).unwrap();
    assert_eq!(
        (manifest.establishments, manifest.classes, manifest.students),
        (2, 3, 6)
    );
    let lucas: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join("students")
                .join(format!("{}.json", student("e.lucas"))),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(lucas["absences"].as_array().map(Vec::len), Some(4));
    let class_file: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join("classes")
                .join(format!("{}.json", class(SIXIEME_A))),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(class_file["absenceStats"]["unjustifiedHalfDays"], 7);
}
