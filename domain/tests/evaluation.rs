//! Periods and appreciations (issue 14): definitions, closing and reopening,
//! the grading rule of a closed period, appreciations and their corrections.
#![allow(clippy::unwrap_used)]

use chrono::NaiveDate;
use registre_domain::evaluation::*;
use registre_domain::testing::{fresh, given, nothing, Rejection};
use registre_domain::{events::*, DomainEvent};
use registre_domain::{EstablishmentId, PeriodId, StudentId};

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn new(name: &str, start: NaiveDate, end: NaiveDate) -> NewPeriod {
    NewPeriod {
        period_id: fresh(),
        name: name.into(),
        start,
        end,
    }
}

/// Three trimestres of the school year starting in `y`.
fn trimestres(y: i32) -> Vec<NewPeriod> {
    vec![
        new("Trimestre 1", day(y, 9, 1), day(y, 11, 30)),
        new("Trimestre 2", day(y, 12, 1), day(y + 1, 2, 28)),
        new("Trimestre 3", day(y + 1, 3, 1), day(y + 1, 7, 4)),
    ]
}

const EXISTS: DefinePeriodsFacts = DefinePeriodsFacts {
    establishment_exists: true,
};

fn defined(est: EstablishmentId, y: i32) -> (Vec<PeriodId>, DomainEvent) {
    let cmd = DefinePeriods {
        establishment_id: est,
        periods: trimestres(y),
    };
    let events = define_periods(&Periods::default(), &cmd, &EXISTS).unwrap();
    (
        cmd.periods.iter().map(|p| p.period_id).collect(),
        events.into_iter().next().unwrap(),
    )
}

#[test]
fn trimestres_are_defined_in_order_with_trimmed_names() {
    let est = fresh();
    let mut periods = trimestres(2026);
    periods[0].name = "  Trimestre 1 ".into();
    let cmd = DefinePeriods {
        establishment_id: est,
        periods,
    };
    let (_, state) = nothing::<Periods>()
        .when(|s| define_periods(s, &cmd, &EXISTS))
        .then_expect([DomainEvent::PeriodsDefined(PeriodsDefined {
            establishment_id: est,
            periods: cmd
                .periods
                .iter()
                .map(|p| PeriodDefinition {
                    period_id: p.period_id,
                    name: p.name.trim().into(),
                    start: p.start,
                    end: p.end,
                })
                .collect(),
        })]);
    assert_eq!(state.periods.len(), 3);
    assert!(state.periods.iter().all(|p| !p.closed));
}

#[test]
fn period_definitions_that_are_refused() {
    let est = fresh();
    let y = 2026;
    let cases: Vec<(Vec<NewPeriod>, Rejection)> = vec![
        (vec![], Rejection::Invalid("periods")),
        (
            (0..5)
                .map(|i| new(&format!("P{i}"), day(y, 9, i + 1), day(y, 9, i + 1)))
                .collect(),
            Rejection::Invalid("periods"),
        ),
        // A gap between two periods.
        (
            vec![
                new("T1", day(y, 9, 1), day(y, 11, 30)),
                new("T2", day(y, 12, 2), day(y + 1, 2, 28)),
            ],
            Rejection::Invalid("periods"),
        ),
        // Overlapping.
        (
            vec![
                new("T1", day(y, 9, 1), day(y, 11, 30)),
                new("T2", day(y, 11, 15), day(y + 1, 2, 28)),
            ],
            Rejection::Invalid("periods"),
        ),
        // Out of order.
        (
            vec![
                new("T2", day(y, 12, 1), day(y + 1, 2, 28)),
                new("T1", day(y, 9, 1), day(y, 11, 30)),
            ],
            Rejection::Invalid("periods"),
        ),
        // Ends before it starts.
        (
            vec![new("T1", day(y, 11, 30), day(y, 9, 1))],
            Rejection::Invalid("periods"),
        ),
        // Across two school years.
        (
            vec![
                new("S1", day(y, 9, 1), day(y + 1, 1, 31)),
                new("S2", day(y + 1, 2, 1), day(y + 1, 9, 30)),
            ],
            Rejection::Invalid("periods"),
        ),
        // Twice the same name.
        (
            vec![
                new("T1", day(y, 9, 1), day(y, 11, 30)),
                new("t1", day(y, 12, 1), day(y + 1, 2, 28)),
            ],
            Rejection::Invalid("periods"),
        ),
        (
            vec![new("  ", day(y, 9, 1), day(y, 11, 30))],
            Rejection::Invalid("name"),
        ),
    ];
    for (periods, rejection) in cases {
        let cmd = DefinePeriods {
            establishment_id: est,
            periods,
        };
        nothing::<Periods>()
            .when(|s| define_periods(s, &cmd, &EXISTS))
            .then_reject(rejection);
    }
    let cmd = DefinePeriods {
        establishment_id: est,
        periods: trimestres(y),
    };
    nothing::<Periods>()
        .when(|s| define_periods(s, &cmd, &DefinePeriodsFacts::default()))
        .then_reject(Rejection::NotFound);
}

#[test]
fn a_later_school_year_may_be_added_but_never_overlap() {
    let est = fresh();
    let (_, first_year) = defined(est, 2026);
    let next = DefinePeriods {
        establishment_id: est,
        periods: vec![
            new("Semestre 1", day(2027, 9, 1), day(2028, 1, 31)),
            new("Semestre 2", day(2028, 2, 1), day(2028, 7, 5)),
        ],
    };
    given::<Periods>([first_year.clone()])
        .when(|s| define_periods(s, &next, &EXISTS))
        .then_expect(define_periods(&Periods::default(), &next, &EXISTS).unwrap());
    let again = DefinePeriods {
        establishment_id: est,
        periods: vec![new("Autre", day(2027, 1, 1), day(2027, 1, 31))],
    };
    let err = given::<Periods>([first_year])
        .when(|s| define_periods(s, &again, &EXISTS))
        .then_reject(Rejection::Invalid("periods"));
    assert!(err.to_string().contains("Trimestre 2"), "{err}");
}

#[test]
fn a_period_is_closed_then_reopened_with_a_reason() {
    let est = fresh();
    let (ids, defined) = defined(est, 2026);
    let close = ClosePeriod { period_id: ids[0] };
    let (_, state) = given::<Periods>([defined.clone()])
        .when(|s| close_period(s, &close))
        .then_expect([DomainEvent::PeriodClosed(PeriodClosed {
            establishment_id: est,
            period_id: ids[0],
        })]);
    assert!(state.periods[0].closed);
    let closed = DomainEvent::PeriodClosed(PeriodClosed {
        establishment_id: est,
        period_id: ids[0],
    });
    given::<Periods>([defined.clone(), closed.clone()])
        .when(|s| close_period(s, &close))
        .then_reject(Rejection::Conflict);
    let reopen = |reason: &str| ReopenPeriod {
        period_id: ids[0],
        reason: reason.into(),
    };
    given::<Periods>([defined.clone(), closed.clone()])
        .when(|s| reopen_period(s, &reopen("  ")))
        .then_reject(Rejection::Invalid("reason"));
    given::<Periods>([defined.clone()])
        .when(|s| reopen_period(s, &reopen("Erreur de saisie")))
        .then_reject(Rejection::Conflict);
    let (_, state) = given::<Periods>([defined.clone(), closed])
        .when(|s| reopen_period(s, &reopen(" Erreur de saisie ")))
        .then_expect([DomainEvent::PeriodReopened(PeriodReopened {
            establishment_id: est,
            period_id: ids[0],
            reason: "Erreur de saisie".into(),
        })]);
    assert!(!state.periods[0].closed);
    given::<Periods>([defined])
        .when(|s| close_period(s, &ClosePeriod { period_id: fresh() }))
        .then_reject(Rejection::NotFound);
}

#[test]
fn grades_are_refused_in_a_closed_period_naming_it() {
    assert_eq!(ensure_open_for_grades(None), Ok(()));
    let id: PeriodId = fresh();
    let err = ensure_open_for_grades(Some(&ClosedPeriod {
        id,
        name: "Trimestre 1".into(),
    }))
    .unwrap_err();
    assert!(Rejection::Invalid("period").matches(&err));
    let text = err.to_string();
    assert!(
        text.contains("Trimestre 1") && text.contains(&id.to_string()),
        "{text}"
    );
}

fn facts(est: EstablishmentId, closed: bool) -> AppreciationFacts {
    AppreciationFacts {
        student_establishment: Some(est),
        period: Some((est, "Trimestre 1".into(), closed)),
    }
}

#[test]
fn an_appreciation_is_written_then_corrected_keeping_the_earlier_text() {
    let est: EstablishmentId = fresh();
    let student: StudentId = fresh();
    let period: PeriodId = fresh();
    let write = |subject: Option<&str>, text: &str| WriteAppreciation {
        student_id: student,
        period_id: period,
        subject: subject.map(Into::into),
        text: text.into(),
    };
    let first = write(Some(" Mathématiques "), "Bon trimestre.");
    let (_, state) = nothing::<ReportCardSheet>()
        .when(|s| write_appreciation(s, &first, &facts(est, false)))
        .then_expect([DomainEvent::AppreciationWritten(AppreciationWritten {
            student_id: student,
            period_id: period,
            subject: Some("Mathématiques".into()),
            text: "Bon trimestre.".into(),
            previous: None,
        })]);
    let fix = write(Some("Mathématiques"), "Très bon trimestre.");
    let (_, state) = registre_domain::testing::given_state(state)
        .when(|s| write_appreciation(s, &fix, &facts(est, false)))
        .then_expect([DomainEvent::AppreciationWritten(AppreciationWritten {
            student_id: student,
            period_id: period,
            subject: Some("Mathématiques".into()),
            text: "Très bon trimestre.".into(),
            previous: Some("Bon trimestre.".into()),
        })]);
    // The same text again: nothing to write.
    registre_domain::testing::given_state(state.clone())
        .when(|s| write_appreciation(s, &fix, &facts(est, false)))
        .then_nothing();
    // The general appreciation is its own.
    let general = write(None, "Ensemble satisfaisant.");
    let events = write_appreciation(&state, &general, &facts(est, false)).unwrap();
    assert!(
        matches!(&events[..], [DomainEvent::AppreciationWritten(e)] if e.subject.is_none() && e.previous.is_none())
    );
}

#[test]
fn appreciations_that_are_refused() {
    let est: EstablishmentId = fresh();
    let cmd = WriteAppreciation {
        student_id: fresh(),
        period_id: fresh(),
        subject: Some("Français".into()),
        text: "Bien.".into(),
    };
    let err = nothing::<ReportCardSheet>()
        .when(|s| write_appreciation(s, &cmd, &facts(est, true)))
        .then_reject(Rejection::Invalid("periodId"));
    assert!(err.to_string().contains("Trimestre 1"));
    nothing::<ReportCardSheet>()
        .when(|s| write_appreciation(s, &cmd, &AppreciationFacts::default()))
        .then_reject(Rejection::NotFound);
    // A period of another establishment is not this student's.
    let elsewhere = AppreciationFacts {
        student_establishment: Some(est),
        period: Some((fresh(), "T1".into(), false)),
    };
    nothing::<ReportCardSheet>()
        .when(|s| write_appreciation(s, &cmd, &elsewhere))
        .then_reject(Rejection::NotFound);
    let blank = WriteAppreciation {
        text: " \n ".into(),
        ..cmd.clone()
    };
    nothing::<ReportCardSheet>()
        .when(|s| write_appreciation(s, &blank, &facts(est, false)))
        .then_reject(Rejection::Invalid("text"));
    let long = WriteAppreciation {
        text: "a".repeat(registre_domain::text::APPRECIATION_MAX + 1),
        ..cmd
    };
    nothing::<ReportCardSheet>()
        .when(|s| write_appreciation(s, &long, &facts(est, false)))
        .then_reject(Rejection::Invalid("text"));
}
