//! Absence invariants: reports, declarations in advance, justification,
//! review, cancellation.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, TimeZone, Utc};
use registre_domain::absences::*;
use registre_domain::testing::{fresh, given, given_state, nothing, Rejection};
use registre_domain::{events::*, Aggregate, DomainEvent};
use registre_domain::{AbsenceId, AbsenceKind, ClassId, JustificationState, StudentId};

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
}

fn enrolled() -> ReportFacts {
    ReportFacts {
        student_class: Some(fresh::<ClassId>()),
        declared: vec![],
        now: at(7, 0),
    }
}

fn report(student: StudentId, kind: AbsenceKind, minutes: Option<i64>) -> ReportAbsence {
    ReportAbsence {
        absence_id: fresh::<AbsenceId>(),
        student_id: student,
        kind,
        start: at(8, 0),
        end: at(9, 0),
        minutes_late: minutes,
    }
}

fn reported(student: StudentId) -> (AbsenceId, Vec<DomainEvent>) {
    let cmd = report(student, AbsenceKind::Absence, None);
    let outcome = report_absence(&Absence::default(), &cmd, &enrolled()).unwrap();
    (cmd.absence_id, outcome.events)
}

#[test]
fn absence_and_lateness_are_reported_unjustified() {
    let student = fresh::<StudentId>();
    let cmd = report(student, AbsenceKind::Lateness, Some(7));
    let (outcome, state) = nothing::<Absence>()
        .when(|s| report_absence(s, &cmd, &enrolled()))
        .then_expect([DomainEvent::AbsenceReported(AbsenceReported {
            absence_id: cmd.absence_id,
            student_id: student,
            kind: AbsenceKind::Lateness,
            start: at(8, 0),
            end: at(9, 0),
            minutes_late: Some(7),
        })]);
    assert_eq!(
        (outcome.absence_id, outcome.confirms_declared),
        (cmd.absence_id, false)
    );
    assert_eq!(state.justification_state(), JustificationState::Unjustified);
}

#[test]
fn report_rejections() {
    let student = fresh::<StudentId>();
    let cases = [
        (
            report(student, AbsenceKind::Lateness, None),
            Rejection::Invalid("minutesLate"),
        ),
        (
            report(student, AbsenceKind::Lateness, Some(0)),
            Rejection::Invalid("minutesLate"),
        ),
        (
            report(student, AbsenceKind::Lateness, Some(-5)),
            Rejection::Invalid("minutesLate"),
        ),
        (
            report(student, AbsenceKind::Absence, Some(5)),
            Rejection::Invalid("minutesLate"),
        ),
        (
            ReportAbsence {
                end: at(8, 0),
                ..report(student, AbsenceKind::Absence, None)
            },
            Rejection::Invalid("end"),
        ),
        (
            ReportAbsence {
                end: at(7, 0),
                ..report(student, AbsenceKind::Absence, None)
            },
            Rejection::Invalid("end"),
        ),
    ];
    for (cmd, rejection) in cases {
        nothing::<Absence>()
            .when(|s| report_absence(s, &cmd, &enrolled()))
            .then_reject(rejection);
    }
    let cmd = report(student, AbsenceKind::Absence, None);
    nothing::<Absence>()
        .when(|s| report_absence(s, &cmd, &ReportFacts::default()))
        .then_reject(Rejection::NotFound);
}

fn declaration(
    student: StudentId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (AbsenceId, Vec<DomainEvent>) {
    let cmd = DeclareAbsence {
        absence_id: fresh::<AbsenceId>(),
        student_id: student,
        start: from,
        end: to,
        reason: "Rendez-vous chez l'orthophoniste".into(),
    };
    let facts = DeclareFacts {
        student_class: Some(fresh::<ClassId>()),
        now: at(7, 0),
    };
    (
        cmd.absence_id,
        declare_absence(&Absence::default(), &cmd, &facts).unwrap(),
    )
}

#[test]
fn a_guardian_declares_an_absence_in_advance_as_pending() {
    let student = fresh::<StudentId>();
    let cmd = DeclareAbsence {
        absence_id: fresh::<AbsenceId>(),
        student_id: student,
        start: at(10, 0),
        end: at(12, 0),
        reason: " Rendez-vous médical ".into(),
    };
    let facts = DeclareFacts {
        student_class: Some(fresh::<ClassId>()),
        now: at(7, 0),
    };
    let (_, state) = nothing::<Absence>()
        .when(|s| declare_absence(s, &cmd, &facts))
        .then_expect([DomainEvent::AbsenceDeclared(AbsenceDeclared {
            absence_id: cmd.absence_id,
            student_id: student,
            start: at(10, 0),
            end: at(12, 0),
            reason: "Rendez-vous médical".into(),
        })]);
    assert_eq!(state.justification_state(), JustificationState::Pending);

    let no_reason = DeclareAbsence {
        reason: "".into(),
        ..cmd.clone()
    };
    nothing::<Absence>()
        .when(|s| declare_absence(s, &no_reason, &facts))
        .then_reject(Rejection::Invalid("reason"));
    let backwards = DeclareAbsence {
        end: at(9, 0),
        ..cmd.clone()
    };
    nothing::<Absence>()
        .when(|s| declare_absence(s, &backwards, &facts))
        .then_reject(Rejection::Invalid("end"));
    let over = DeclareFacts {
        now: at(12, 0),
        ..facts.clone()
    };
    nothing::<Absence>()
        .when(|s| declare_absence(s, &cmd, &over))
        .then_reject(Rejection::Invalid("end"));
    nothing::<Absence>()
        .when(|s| {
            declare_absence(
                s,
                &cmd,
                &DeclareFacts {
                    student_class: None,
                    now: at(7, 0),
                },
            )
        })
        .then_reject(Rejection::NotFound);
}

#[test]
fn the_roll_call_confirms_a_declared_absence_instead_of_a_duplicate() {
    let student = fresh::<StudentId>();
    let (declared_id, declared_events) = declaration(student, at(8, 30), at(11, 0));
    let declared: Absence = Aggregate::fold(&declared_events);
    let facts = ReportFacts {
        student_class: Some(fresh::<ClassId>()),
        declared: vec![declared.clone()],
        now: at(7, 0),
    };
    let cmd = report(student, AbsenceKind::Absence, None);
    let outcome = report_absence(&Absence::default(), &cmd, &facts).unwrap();
    assert_eq!(outcome.absence_id, declared_id);
    assert!(outcome.confirms_declared);
    assert_eq!(
        outcome.events,
        vec![DomainEvent::DeclaredAbsenceConfirmed(
            DeclaredAbsenceConfirmed {
                absence_id: declared_id,
                student_id: student,
            }
        )]
    );
    // Folded on the declared absence's stream, it stays PENDING with its reason.
    let (_, confirmed) = given::<Absence>(declared_events.clone())
        .when(|_| Ok(outcome.events.clone()))
        .then_expect(outcome.events.clone());
    assert!(confirmed.confirmed);
    assert_eq!(confirmed.justification_state(), JustificationState::Pending);

    // The next hour's roll call is covered too: nothing new is written.
    let later = ReportAbsence {
        start: at(10, 0),
        end: at(11, 0),
        ..report(student, AbsenceKind::Absence, None)
    };
    let facts = ReportFacts {
        declared: vec![confirmed],
        ..facts
    };
    let again = report_absence(&Absence::default(), &later, &facts).unwrap();
    assert_eq!((again.absence_id, again.events.len()), (declared_id, 0));
}

#[test]
fn declarations_that_do_not_apply_leave_a_normal_report() {
    let student = fresh::<StudentId>();
    let (_, other_time) = declaration(student, at(14, 0), at(16, 0));
    let (_, other_student) = declaration(fresh::<StudentId>(), at(8, 0), at(9, 0));
    let (cancelled_id, mut cancelled) = declaration(student, at(8, 0), at(9, 0));
    cancelled.push(DomainEvent::AbsenceCancelled(AbsenceCancelled {
        absence_id: cancelled_id,
        student_id: student,
        reason: "Rendez-vous annulé".into(),
    }));
    // Touching at the boundary is not overlapping.
    let (_, adjacent) = declaration(student, at(9, 0), at(10, 0));
    let facts = ReportFacts {
        student_class: Some(fresh::<ClassId>()),
        declared: [other_time, other_student, cancelled, adjacent]
            .iter()
            .map(Aggregate::fold)
            .collect(),
        now: at(7, 0),
    };
    let cmd = report(student, AbsenceKind::Absence, None);
    let outcome = report_absence(&Absence::default(), &cmd, &facts).unwrap();
    assert_eq!(
        (outcome.absence_id, outcome.confirms_declared),
        (cmd.absence_id, false)
    );
    assert_eq!(outcome.events[0].event_type(), "AbsenceReported");

    // Lateness is its own entry even during a declared absence.
    let (_, overlapping) = declaration(student, at(8, 0), at(9, 0));
    let late = report(student, AbsenceKind::Lateness, Some(10));
    let facts = ReportFacts {
        declared: vec![Aggregate::fold(&overlapping)],
        ..facts
    };
    let outcome = report_absence(&Absence::default(), &late, &facts).unwrap();
    assert_eq!(
        (outcome.absence_id, outcome.confirms_declared),
        (late.absence_id, false)
    );
}

#[test]
fn justification_review_and_rejustification() {
    let student = fresh::<StudentId>();
    let (id, history) = reported(student);
    let justify = JustifyAbsence {
        absence_id: id,
        reason: "Malade, certificat joint".into(),
    };
    let (_, pending) = given::<Absence>(history.clone())
        .when(|s| justify_absence(s, &justify))
        .then_expect([DomainEvent::AbsenceJustified(AbsenceJustified {
            absence_id: id,
            student_id: student,
            reason: "Malade, certificat joint".into(),
        })]);
    assert_eq!(pending.justification_state(), JustificationState::Pending);
    // Already PENDING: no second justification.
    assert!(matches!(
        justify_absence(&pending, &justify),
        Err(registre_domain::DomainError::Conflict(_))
    ));
    let reject = ReviewJustification {
        absence_id: id,
        accept: false,
        comment: Some("  Certificat illisible ".into()),
    };
    let (_, rejected) = given_state(pending)
        .when(|s| review_justification(s, &reject))
        .then_expect([DomainEvent::JustificationReviewed(JustificationReviewed {
            absence_id: id,
            student_id: student,
            accepted: false,
            comment: Some("Certificat illisible".into()),
        })]);
    assert_eq!(rejected.justification_state(), JustificationState::Rejected);
    assert!(matches!(
        review_justification(&rejected, &reject),
        Err(registre_domain::DomainError::Conflict(_))
    ));
    // REJECTED may be justified again, then accepted.
    let (_, pending_again) = given_state(rejected)
        .when(|s| justify_absence(s, &justify))
        .then_expect([DomainEvent::AbsenceJustified(AbsenceJustified {
            absence_id: id,
            student_id: student,
            reason: "Malade, certificat joint".into(),
        })]);
    let accept = ReviewJustification {
        absence_id: id,
        accept: true,
        comment: Some(" ".into()),
    };
    let (_, accepted) = given_state(pending_again)
        .when(|s| review_justification(s, &accept))
        .then_expect([DomainEvent::JustificationReviewed(JustificationReviewed {
            absence_id: id,
            student_id: student,
            accepted: true,
            comment: None,
        })]);
    assert_eq!(accepted.justification_state(), JustificationState::Accepted);
    assert_eq!(accepted.version(), 5);
    // ACCEPTED: neither justified nor reviewed again.
    given_state(accepted.clone())
        .when(|s| justify_absence(s, &justify))
        .then_reject(Rejection::Conflict);
    given_state(accepted)
        .when(|s| review_justification(s, &accept))
        .then_reject(Rejection::Conflict);
}

#[test]
fn justification_and_review_rejections() {
    let student = fresh::<StudentId>();
    let (id, history) = reported(student);
    let blank = JustifyAbsence {
        absence_id: id,
        reason: "   ".into(),
    };
    given::<Absence>(history.clone())
        .when(|s| justify_absence(s, &blank))
        .then_reject(Rejection::Invalid("reason"));
    let review = ReviewJustification {
        absence_id: id,
        accept: true,
        comment: None,
    };
    // UNJUSTIFIED is not reviewable.
    given::<Absence>(history.clone())
        .when(|s| review_justification(s, &review))
        .then_reject(Rejection::Conflict);
    nothing::<Absence>()
        .when(|s| review_justification(s, &review))
        .then_reject(Rejection::NotFound);
    nothing::<Absence>()
        .when(|s| {
            justify_absence(
                s,
                &JustifyAbsence {
                    absence_id: id,
                    reason: "x".into(),
                },
            )
        })
        .then_reject(Rejection::NotFound);
    // A declared absence is PENDING from the start and can be reviewed.
    let (declared_id, declared) = declaration(student, at(10, 0), at(11, 0));
    given::<Absence>(declared)
        .when(|s| {
            review_justification(
                s,
                &ReviewJustification {
                    absence_id: declared_id,
                    accept: true,
                    comment: None,
                },
            )
        })
        .then_expect([DomainEvent::JustificationReviewed(JustificationReviewed {
            absence_id: declared_id,
            student_id: student,
            accepted: true,
            comment: None,
        })]);
}

#[test]
fn cancellation_needs_a_reason_happens_once_and_freezes_the_absence() {
    let student = fresh::<StudentId>();
    let (id, history) = reported(student);
    let cancel = CancelAbsence {
        absence_id: id,
        reason: "Mauvais élève".into(),
    };
    let (_, cancelled) = given::<Absence>(history.clone())
        .when(|s| cancel_absence(s, &cancel))
        .then_expect([DomainEvent::AbsenceCancelled(AbsenceCancelled {
            absence_id: id,
            student_id: student,
            reason: "Mauvais élève".into(),
        })]);
    let no_reason = CancelAbsence {
        reason: "".into(),
        ..cancel.clone()
    };
    given::<Absence>(history)
        .when(|s| cancel_absence(s, &no_reason))
        .then_reject(Rejection::Invalid("reason"));
    assert!(matches!(
        cancel_absence(&cancelled, &cancel),
        Err(registre_domain::DomainError::Conflict(_))
    ));
    let justify = JustifyAbsence {
        absence_id: id,
        reason: "Malade".into(),
    };
    assert!(matches!(
        justify_absence(&cancelled, &justify),
        Err(registre_domain::DomainError::Conflict(_))
    ));
}

#[test]
fn a_report_on_an_existing_stream_is_a_conflict() {
    let student = fresh::<StudentId>();
    let (id, history) = reported(student);
    let cmd = ReportAbsence {
        absence_id: id,
        ..report(student, AbsenceKind::Absence, None)
    };
    given::<Absence>(history)
        .when(|s| report_absence(s, &cmd, &enrolled()))
        .then_reject(Rejection::Conflict);
}

// ---- Bounds: a lateness within a day, an absence within a school year ----------

fn on(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()
}

fn report_between(kind: AbsenceKind, start: DateTime<Utc>, end: DateTime<Utc>) -> ReportAbsence {
    ReportAbsence {
        start,
        end,
        ..report(
            fresh::<StudentId>(),
            kind,
            (kind == AbsenceKind::Lateness).then_some(10),
        )
    }
}

#[test]
fn the_accepted_dates_are_the_previous_current_and_next_school_years() {
    let d = |y, m, day| chrono::NaiveDate::from_ymd_opt(y, m, day).unwrap();
    // In December 2026 the school year is 2026-27.
    assert_eq!(
        accepted_dates(d(2026, 12, 1)),
        (d(2025, 9, 1), d(2028, 8, 31))
    );
    // On 31 August it is still 2025-26; on 1 September 2026-27 begins.
    assert_eq!(
        accepted_dates(d(2026, 8, 31)),
        (d(2024, 9, 1), d(2027, 8, 31))
    );
    assert_eq!(
        accepted_dates(d(2026, 9, 1)),
        (d(2025, 9, 1), d(2028, 8, 31))
    );
}

#[test]
fn an_absence_from_year_one_to_9999_is_refused() {
    // Given an enrolled student, on 1 December 2026 (enrolled().now),
    // when a roll call reports an absence from 0001 to 9999,
    // then it is refused and nothing is recorded.
    let cmd = report_between(AbsenceKind::Absence, on(1, 1, 1, 8), on(9999, 12, 31, 8));
    nothing::<Absence>()
        .when(|s| report_absence(s, &cmd, &enrolled()))
        .then_reject(Rejection::Invalid("end"));
    // Short, but long ago or far ahead: refused on the date itself.
    for (cmd, field) in [
        (
            report_between(AbsenceKind::Absence, on(1, 1, 1, 8), on(1, 1, 1, 9)),
            "start",
        ),
        (
            report_between(AbsenceKind::Absence, on(2025, 8, 31, 8), on(2025, 9, 1, 9)),
            "start",
        ),
        (
            report_between(AbsenceKind::Absence, on(2028, 8, 31, 8), on(2028, 9, 1, 9)),
            "end",
        ),
        (
            report_between(AbsenceKind::Absence, on(9999, 1, 1, 8), on(9999, 1, 1, 9)),
            "end",
        ),
    ] {
        nothing::<Absence>()
            .when(|s| report_absence(s, &cmd, &enrolled()))
            .then_reject(Rejection::Invalid(field));
    }
}

#[test]
fn an_absence_lasts_at_most_a_school_year_and_a_lateness_a_day() {
    let start = on(2026, 9, 1, 8);
    // A whole school year (leap-year long) is accepted...
    let year = report_between(
        AbsenceKind::Absence,
        start,
        start + chrono::TimeDelta::days(366),
    );
    nothing::<Absence>()
        .when(|s| report_absence(s, &year, &enrolled()))
        .then_expect([DomainEvent::AbsenceReported(AbsenceReported {
            absence_id: year.absence_id,
            student_id: year.student_id,
            kind: AbsenceKind::Absence,
            start,
            end: start + chrono::TimeDelta::days(366),
            minutes_late: None,
        })]);
    // ...one second more is not.
    let longer = report_between(
        AbsenceKind::Absence,
        start,
        start + chrono::TimeDelta::days(366) + chrono::TimeDelta::seconds(1),
    );
    nothing::<Absence>()
        .when(|s| report_absence(s, &longer, &enrolled()))
        .then_reject(Rejection::Invalid("end"));
    // A lateness within a day is accepted, over a day it is refused.
    let late = report_between(AbsenceKind::Lateness, at(8, 0), at(8, 10));
    assert!(report_absence(&Absence::default(), &late, &enrolled()).is_ok());
    let day_long = report_between(
        AbsenceKind::Lateness,
        at(8, 0),
        at(8, 0) + chrono::TimeDelta::hours(24),
    );
    assert!(report_absence(&Absence::default(), &day_long, &enrolled()).is_ok());
    let two_days = report_between(
        AbsenceKind::Lateness,
        at(8, 0),
        at(8, 0) + chrono::TimeDelta::hours(25),
    );
    nothing::<Absence>()
        .when(|s| report_absence(s, &two_days, &enrolled()))
        .then_reject(Rejection::Invalid("end"));
}

#[test]
fn a_declaration_in_advance_is_bounded_like_a_report() {
    // Given 1 December 2026, 07:00, when a guardian declares an absence
    // running to 9999 or longer than a school year, then it is refused.
    let facts = DeclareFacts {
        student_class: Some(fresh::<ClassId>()),
        now: at(7, 0),
    };
    for (start, end) in [
        (at(10, 0), on(9999, 12, 31, 8)),
        (at(10, 0), at(10, 0) + chrono::TimeDelta::days(367)),
        (on(2028, 9, 1, 8), on(2028, 9, 1, 10)),
    ] {
        let cmd = DeclareAbsence {
            absence_id: fresh::<AbsenceId>(),
            student_id: fresh::<StudentId>(),
            start,
            end,
            reason: "Hospitalisation".into(),
        };
        nothing::<Absence>()
            .when(|s| declare_absence(s, &cmd, &facts))
            .then_reject(Rejection::Invalid("end"));
    }
}
