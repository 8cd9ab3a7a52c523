//! The demo's evaluation (issue 14): three trimestres, the first closed by
//! the head once every teacher wrote their appreciations and the head the
//! general one, so the demo shows a final report card and its PDF.
//!
//! Every stream is written whole (see the module above): the periods stream
//! (definition, then closing) is written after the appreciations, so that in
//! the log the closing follows them, as it would through the API.

use super::{at, decided, Builder, Entry, PersonInfo};
use anyhow::Context as _;
use chrono::NaiveDate;
use rand::Rng;
use registre_domain::evaluation::{self, AppreciationFacts, NewPeriod};
use registre_domain::{Aggregate, EstablishmentId, PeriodId, PersonId, Role, StudentId};

const SUBJECT_TEXTS: &[&str] = &[
    "Très bon trimestre : un travail sérieux et régulier.",
    "Des résultats satisfaisants ; la participation orale doit s’affirmer.",
    "Un trimestre encourageant, des progrès nets depuis la rentrée.",
    "Ensemble fragile : il faut reprendre les leçons avec plus de régularité.",
    "Élève appliqué(e) et curieux(se), qui s’investit en classe.",
    "Des capacités certaines, mais un travail personnel trop irrégulier.",
    "Bon trimestre ; attention aux bavardages.",
    "Résultats en baisse : un sursaut est attendu au deuxième trimestre.",
];

const GENERAL_TEXTS: &[&str] = &[
    "Bon trimestre dans l’ensemble. Félicitations du conseil de classe.",
    "Trimestre satisfaisant ; poursuivez vos efforts.",
    "Des résultats encourageants, à confirmer au prochain trimestre.",
    "Trimestre insuffisant : le conseil attend un travail plus régulier.",
];

fn day(y: i32, m: u32, d: u32) -> anyhow::Result<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d).context("a demo date")
}

/// Writes the periods, the first trimestre's appreciations and its closing.
pub(super) fn seed(
    b: &mut Builder,
    establishment: EstablishmentId,
    class_teachers: &[Vec<(PersonInfo, &str)>],
    students: &[(PersonInfo, StudentId, usize, String)],
) -> anyhow::Result<()> {
    let head = PersonInfo {
        id: PersonId::for_external_id("demo-head"),
        role: Role::Head,
    };
    let define = evaluation::DefinePeriods {
        establishment_id: establishment,
        periods: vec![
            NewPeriod {
                period_id: PeriodId(b.uuid()),
                name: "Trimestre 1".into(),
                start: day(2026, 9, 1)?,
                end: day(2026, 11, 30)?,
            },
            NewPeriod {
                period_id: PeriodId(b.uuid()),
                name: "Trimestre 2".into(),
                start: day(2026, 12, 1)?,
                end: day(2027, 2, 28)?,
            },
            NewPeriod {
                period_id: PeriodId(b.uuid()),
                name: "Trimestre 3".into(),
                start: day(2027, 3, 1)?,
                end: day(2027, 7, 3)?,
            },
        ],
    };
    let first = define.periods[0].period_id;
    let council = day(2026, 11, 30)?;
    let facts = AppreciationFacts {
        student_establishment: Some(establishment),
        period: Some((establishment, "Trimestre 1".into(), false)),
    };
    for (_, student, class_index, _) in students {
        let mut state = evaluation::ReportCardSheet::default();
        let mut events: Vec<Entry> = Vec::new();
        for (teacher, subject) in class_teachers.get(*class_index).into_iter().flatten() {
            let text = SUBJECT_TEXTS[b.rng.gen_range(0..SUBJECT_TEXTS.len())];
            let write = evaluation::WriteAppreciation {
                student_id: *student,
                period_id: first,
                subject: Some((*subject).into()),
                text: text.into(),
            };
            let decision = evaluation::write_appreciation(&state, &write, &facts);
            decided(
                &mut state,
                decision,
                (*teacher, at(council, 17, 0), None),
                &mut events,
            )?;
        }
        let text = GENERAL_TEXTS[b.rng.gen_range(0..GENERAL_TEXTS.len())];
        let general = evaluation::WriteAppreciation {
            student_id: *student,
            period_id: first,
            subject: None,
            text: text.into(),
        };
        let decision = evaluation::write_appreciation(&state, &general, &facts);
        decided(
            &mut state,
            decision,
            (head, at(council, 19, 0), None),
            &mut events,
        )?;
        b.stream(events);
    }
    let mut periods = evaluation::Periods::default();
    let mut events: Vec<Entry> = Vec::new();
    let decision = evaluation::define_periods(
        &periods,
        &define,
        &evaluation::DefinePeriodsFacts {
            establishment_exists: true,
        },
    );
    decided(
        &mut periods,
        decision,
        (head, at(day(2026, 8, 28)?, 10, 0), None),
        &mut events,
    )?;
    let decision =
        evaluation::close_period(&periods, &evaluation::ClosePeriod { period_id: first });
    decided(
        &mut periods,
        decision,
        (head, at(day(2026, 12, 1)?, 18, 0), None),
        &mut events,
    )?;
    debug_assert_eq!(periods.version(), 2);
    b.stream(events);
    Ok(())
}
