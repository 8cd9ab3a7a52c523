//! How `golden/term.jsonl` was written (evaluation, issue 14): the school of
//! [`crate::school`], then its second trimestre ending. The collège defines
//! three trimestres (the second holds every assessment of March 2026), its
//! teachers and head write appreciations, the head closes the trimestre,
//! reopens it for a grade found wrongly copied, the teacher corrects the
//! grade and the appreciation, and the head closes it again.

use crate::school::{assessment, establishment, person, school_log, student, COLLEGE};
use crate::{line_of, GoldenLine};
use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use registre_domain::events::{self, *};
use registre_domain::{GradeId, GradeStatus, PeriodId, Role};
use registre_store::Actor;
use uuid::Uuid;

/// The collège's trimestres: 1, 2, 3.
pub fn period(n: u32) -> PeriodId {
    PeriodId(Uuid::from_u128((0x9e_u128 << 96) | u128::from(n)))
}

fn paris(m: u32, d: u32, h: u32) -> DateTime<Utc> {
    chrono_tz::Europe::Paris
        .with_ymd_and_hms(2026, m, d, h, 0, 0)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

const HEAD: (&str, Role) = ("h.durand", Role::Head);
const MARTIN: (&str, Role) = ("t.martin", Role::Teacher);
const BERNARD: (&str, Role) = ("t.bernard", Role::Teacher);

/// The school's log followed by the end of its second trimestre.
pub fn term_log() -> Vec<GoldenLine> {
    let mut lines = school_log();
    let mut push =
        |at: DateTime<Utc>, actor: (&str, Role), reason: Option<&str>, event: DomainEvent| {
            let position = lines.len() as u64 + 1;
            lines.push(line_of(
                position,
                at,
                Some(Actor {
                    person_id: person(actor.0).0,
                    role: actor.1.wire_name().to_owned(),
                }),
                reason.map(str::to_owned),
                &event,
            ));
        };
    use DomainEvent::*;
    let t2 = period(2);
    push(
        paris(3, 16, 9),
        HEAD,
        None,
        PeriodsDefined(events::PeriodsDefined {
            establishment_id: establishment(COLLEGE),
            periods: vec![
                PeriodDefinition {
                    period_id: period(1),
                    name: "Trimestre 1".into(),
                    start: date(2025, 9, 1),
                    end: date(2025, 11, 28),
                },
                PeriodDefinition {
                    period_id: t2,
                    name: "Trimestre 2".into(),
                    start: date(2025, 11, 29),
                    end: date(2026, 3, 13),
                },
                PeriodDefinition {
                    period_id: period(3),
                    name: "Trimestre 3".into(),
                    start: date(2026, 3, 14),
                    end: date(2026, 7, 4),
                },
            ],
        }),
    );
    let appreciation = |who: &str, subject: Option<&str>, text: &str, previous: Option<&str>| {
        AppreciationWritten(events::AppreciationWritten {
            student_id: student(who),
            period_id: t2,
            subject: subject.map(str::to_owned),
            text: text.into(),
            previous: previous.map(str::to_owned),
        })
    };
    push(
        paris(3, 16, 17),
        MARTIN,
        None,
        appreciation(
            "e.lucas",
            Some("Mathématiques"),
            "Bon trimestre, des progrès en géométrie.",
            None,
        ),
    );
    push(
        paris(3, 16, 18),
        BERNARD,
        None,
        appreciation(
            "e.lucas",
            Some("Français"),
            "Très bonne dictée ; continuez ainsi.",
            None,
        ),
    );
    push(
        paris(3, 16, 19),
        MARTIN,
        None,
        appreciation(
            "e.hugo",
            Some("Mathématiques"),
            "Résultats fragiles : il faut travailler régulièrement.",
            None,
        ),
    );
    push(
        paris(3, 17, 8),
        HEAD,
        None,
        appreciation(
            "e.lucas",
            None,
            "Trimestre satisfaisant. Encouragements du conseil de classe.",
            None,
        ),
    );
    push(
        paris(3, 17, 18),
        HEAD,
        None,
        PeriodClosed(events::PeriodClosed {
            establishment_id: establishment(COLLEGE),
            period_id: t2,
        }),
    );
    let reopening = "Note de Hugo en fractions mal reportée";
    push(
        paris(3, 18, 9),
        HEAD,
        Some(reopening),
        PeriodReopened(events::PeriodReopened {
            establishment_id: establishment(COLLEGE),
            period_id: t2,
            reason: reopening.into(),
        }),
    );
    let correction = "erreur de report : 9 et non 8";
    push(
        paris(3, 18, 10),
        MARTIN,
        Some(correction),
        GradeCorrected(events::GradeCorrected {
            grade_id: GradeId::for_pair(assessment(1), student("e.hugo")),
            assessment_id: assessment(1),
            student_id: student("e.hugo"),
            previous_score: Some(8.0),
            previous_status: GradeStatus::Graded,
            score: Some(9.0),
            status: GradeStatus::Graded,
            reason: correction.into(),
        }),
    );
    push(
        paris(3, 18, 11),
        MARTIN,
        None,
        appreciation(
            "e.hugo",
            Some("Mathématiques"),
            "Résultats fragiles mais en progrès : il faut travailler régulièrement.",
            Some("Résultats fragiles : il faut travailler régulièrement."),
        ),
    );
    push(
        paris(3, 18, 17),
        HEAD,
        None,
        PeriodClosed(events::PeriodClosed {
            establishment_id: establishment(COLLEGE),
            period_id: t2,
        }),
    );
    lines
}
