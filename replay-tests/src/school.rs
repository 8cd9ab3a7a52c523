//! How `golden/school.jsonl` was written: a small, realistic school as Rust
//! code (`cargo run -p registre-replay-tests --example write_golden`). The
//! committed file is the golden log; this generator only saves typing ids.
//!
//! Collège Jean Moulin (0750001A, Europe/Paris) with classes 6eA and 5eB, and
//! Lycée Leconte de Lisle (9740001A, Indian/Reunion) with class 2nde1. March
//! 2026: grades with a correction and non-GRADED statuses, absences through
//! every justification state, one declared in advance and confirmed, one
//! cancelled, lateness, homework amended and withdrawn, messages with reads.

use crate::{line_of, GoldenLine};
use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use registre_domain::events::*;
use registre_domain::*;
use registre_store::Actor;
use uuid::Uuid;

/// A readable fixed id: `kind` in the first group, `n` in the last.
pub fn fixed(kind: u32, n: u32) -> Uuid {
    Uuid::from_u128((u128::from(kind) << 96) | u128::from(n))
}

pub fn person(external_id: &str) -> PersonId {
    PersonId::for_external_id(external_id)
}

pub fn student(external_id: &str) -> StudentId {
    StudentId::for_person(person(external_id))
}

pub const COLLEGE: u32 = 1;
pub const LYCEE: u32 = 2;
pub fn establishment(n: u32) -> EstablishmentId {
    EstablishmentId(fixed(0xE, n))
}
pub fn class(n: u32) -> ClassId {
    ClassId(fixed(0xC, n))
}
pub fn assessment(n: u32) -> AssessmentId {
    AssessmentId(fixed(0xA, n))
}
pub fn absence(n: u32) -> AbsenceId {
    AbsenceId(fixed(0xAB, n))
}
pub fn homework(n: u32) -> HomeworkId {
    HomeworkId(fixed(0x40, n))
}
pub fn thread(n: u32) -> ThreadId {
    ThreadId(fixed(0x7, n))
}
pub fn message(n: u32) -> MessageId {
    MessageId(fixed(0x8, n))
}

/// 6eA, 5eB (collège) and 2nde1 (lycée).
pub const SIXIEME_A: u32 = 1;
pub const CINQUIEME_B: u32 = 2;
pub const SECONDE_1: u32 = 3;

fn paris(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    chrono_tz::Europe::Paris
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

struct Log {
    lines: Vec<GoldenLine>,
}

impl Log {
    fn push(
        &mut self,
        at: DateTime<Utc>,
        actor: (&str, &str),
        reason: Option<&str>,
        event: DomainEvent,
    ) {
        let position = self.lines.len() as u64 + 1;
        let actor = Actor {
            person_id: person(actor.0).0,
            role: actor.1.to_owned(),
        };
        self.lines.push(line_of(
            position,
            at,
            Some(actor),
            reason.map(str::to_owned),
            &event,
        ));
    }
}

const ADMIN: (&str, &str) = ("admin", Role::Admin.wire_name());
const MARTIN: (&str, &str) = ("t.martin", Role::Teacher.wire_name());
const BERNARD: (&str, &str) = ("t.bernard", Role::Teacher.wire_name());
const PETIT: (&str, &str) = ("cpe.petit", Role::EducationStaff.wire_name());
const LEROY: (&str, &str) = ("p.leroy", Role::Guardian.wire_name());
const MOREAU: (&str, &str) = ("p.moreau", Role::Guardian.wire_name());
const HOARAU: (&str, &str) = ("t.hoarau", Role::Teacher.wire_name());

/// The school's log, in order.
pub fn school_log() -> Vec<GoldenLine> {
    use DomainEvent::*;
    let mut log = Log { lines: vec![] };
    let setup = paris(2026, 2, 23, 8, 0);

    // ---- Roster
    for (n, uai, name, zone) in [
        (COLLEGE, "0750001A", "Collège Jean Moulin", "Europe/Paris"),
        (
            LYCEE,
            "9740001A",
            "Lycée Leconte de Lisle",
            "Indian/Reunion",
        ),
    ] {
        log.push(
            setup,
            ADMIN,
            None,
            EstablishmentCreated(events::EstablishmentCreated {
                establishment_id: establishment(n),
                uai: Uai::parse(uai).unwrap_or_else(|_| unreachable!("valid UAI")),
                name: name.into(),
                time_zone: TimeZone::parse(zone).unwrap_or_default(),
            }),
        );
    }
    for (n, est, name) in [
        (SIXIEME_A, COLLEGE, "6eA"),
        (CINQUIEME_B, COLLEGE, "5eB"),
        (SECONDE_1, LYCEE, "2nde1"),
    ] {
        log.push(
            setup,
            ADMIN,
            None,
            ClassCreated(events::ClassCreated {
                class_id: class(n),
                establishment_id: establishment(est),
                name: name.into(),
            }),
        );
    }
    let people: [(&str, &str, Vec<Role>, Option<u32>); 16] = [
        ("admin", "Administrateur", vec![Role::Admin], None),
        ("h.durand", "Claire Durand", vec![Role::Head], Some(COLLEGE)),
        (
            "cpe.petit",
            "Marc Petit",
            vec![Role::EducationStaff],
            Some(COLLEGE),
        ),
        (
            "t.martin",
            "Sophie Martin",
            vec![Role::Teacher],
            Some(COLLEGE),
        ),
        (
            "t.bernard",
            "Paul Bernard",
            vec![Role::Teacher],
            Some(COLLEGE),
        ),
        ("t.hoarau", "Julie Hoarau", vec![Role::Teacher], Some(LYCEE)),
        ("p.leroy", "Antoine Leroy", vec![Role::Guardian], None),
        ("p.moreau", "Nadia Moreau", vec![Role::Guardian], None),
        ("p.fournier", "Karim Fournier", vec![Role::Guardian], None),
        ("e.lucas", "Lucas Leroy", vec![Role::Student], None),
        ("e.chloe", "Chloé Moreau", vec![Role::Student], None),
        ("e.hugo", "Hugo Fournier", vec![Role::Student], None),
        ("e.emma", "Emma Leroy", vec![Role::Student], None),
        ("e.lea", "Léa Girard", vec![Role::Student], None),
        ("e.noah", "Noah Payet", vec![Role::Student], None),
        ("auditor", "Inspection CNIL", vec![Role::Auditor], None),
    ];
    for (ext, name, roles, est) in people {
        log.push(
            setup,
            ADMIN,
            None,
            PersonRegistered(events::PersonRegistered {
                person_id: person(ext),
                external_id: ext.into(),
                display_name: name.into(),
                roles,
                establishment_id: est.map(establishment),
            }),
        );
    }
    for (ext, c) in [
        ("e.lucas", SIXIEME_A),
        ("e.chloe", SIXIEME_A),
        ("e.hugo", SIXIEME_A),
        ("e.emma", CINQUIEME_B),
        ("e.lea", CINQUIEME_B),
        ("e.noah", SECONDE_1),
    ] {
        log.push(
            setup,
            ADMIN,
            None,
            StudentEnrolled(events::StudentEnrolled {
                student_id: student(ext),
                person_id: person(ext),
                class_id: class(c),
            }),
        );
    }
    for (child, guardian) in [
        ("e.lucas", "p.leroy"),
        ("e.emma", "p.leroy"),
        ("e.chloe", "p.moreau"),
        ("e.hugo", "p.fournier"),
    ] {
        log.push(
            setup,
            ADMIN,
            None,
            GuardianLinked(events::GuardianLinked {
                student_id: student(child),
                guardian_id: person(guardian),
            }),
        );
    }
    for (teacher, c, subject) in [
        ("t.martin", SIXIEME_A, "Mathématiques"),
        ("t.martin", CINQUIEME_B, "Mathématiques"),
        ("t.bernard", SIXIEME_A, "Français"),
        ("t.hoarau", SECONDE_1, "Histoire-Géographie"),
    ] {
        log.push(
            setup,
            ADMIN,
            None,
            TeacherAssigned(events::TeacherAssigned {
                class_id: class(c),
                teacher_id: person(teacher),
                subject: subject.into(),
            }),
        );
    }

    // ---- Assessments and grades
    let assess = |log: &mut Log,
                  n,
                  c,
                  teacher: (&str, &str),
                  subject: &str,
                  title: &str,
                  d: NaiveDate,
                  coefficient,
                  out_of| {
        log.push(
            paris(2026, 3, 1, 18, 0) + chrono::Duration::days(i64::from(n)),
            teacher,
            None,
            AssessmentCreated(events::AssessmentCreated {
                assessment_id: assessment(n),
                class_id: class(c),
                teacher_id: person(teacher.0),
                subject: subject.into(),
                title: title.into(),
                date: d,
                coefficient,
                out_of,
            }),
        );
    };
    let grade =
        |log: &mut Log, a: u32, who: &str, teacher: (&str, &str), score: Option<f64>, status| {
            log.push(
                paris(2026, 3, 12, 19, 0) + chrono::Duration::minutes(i64::from(a) * 10),
                teacher,
                None,
                GradeRecorded(events::GradeRecorded {
                    grade_id: GradeId::for_pair(assessment(a), student(who)),
                    assessment_id: assessment(a),
                    student_id: student(who),
                    score,
                    status,
                }),
            );
        };
    use GradeStatus::*;
    assess(
        &mut log,
        1,
        SIXIEME_A,
        MARTIN,
        "Mathématiques",
        "Fractions",
        date(2026, 3, 3),
        1.0,
        20.0,
    );
    assess(
        &mut log,
        2,
        SIXIEME_A,
        MARTIN,
        "Mathématiques",
        "Géométrie",
        date(2026, 3, 10),
        2.0,
        10.0,
    );
    assess(
        &mut log,
        3,
        SIXIEME_A,
        BERNARD,
        "Français",
        "Dictée",
        date(2026, 3, 5),
        1.0,
        20.0,
    );
    assess(
        &mut log,
        4,
        CINQUIEME_B,
        MARTIN,
        "Mathématiques",
        "Équations",
        date(2026, 3, 6),
        1.0,
        20.0,
    );
    grade(&mut log, 1, "e.lucas", MARTIN, Some(12.0), Graded);
    grade(&mut log, 1, "e.chloe", MARTIN, Some(16.0), Graded);
    grade(&mut log, 1, "e.hugo", MARTIN, Some(8.0), Graded);
    grade(&mut log, 2, "e.lucas", MARTIN, Some(7.0), Graded);
    grade(&mut log, 2, "e.chloe", MARTIN, None, Absent);
    grade(&mut log, 2, "e.hugo", MARTIN, Some(5.0), Graded);
    grade(&mut log, 3, "e.lucas", BERNARD, Some(15.0), Graded);
    grade(&mut log, 3, "e.chloe", BERNARD, Some(11.0), Graded);
    grade(&mut log, 3, "e.hugo", BERNARD, None, Exempt);
    grade(&mut log, 4, "e.emma", MARTIN, Some(18.0), Graded);
    grade(&mut log, 4, "e.lea", MARTIN, None, NotSubmitted);
    let reason = "erreur de report: 6 et non 5";
    log.push(
        paris(2026, 3, 13, 8, 30),
        MARTIN,
        Some(reason),
        GradeCorrected(events::GradeCorrected {
            grade_id: GradeId::for_pair(assessment(2), student("e.hugo")),
            assessment_id: assessment(2),
            student_id: student("e.hugo"),
            previous_score: Some(5.0),
            previous_status: Graded,
            score: Some(6.0),
            status: Graded,
            reason: reason.into(),
        }),
    );

    // ---- Absences (CET until 2026-03-29, then CEST)
    let report = |log: &mut Log, n, who: &str, by: (&str, &str), kind, start, end, minutes_late| {
        log.push(
            start,
            by,
            None,
            AbsenceReported(events::AbsenceReported {
                absence_id: absence(n),
                student_id: student(who),
                kind,
                start,
                end,
                minutes_late,
            }),
        );
    };
    let justify = |log: &mut Log, n, who: &str, by: (&str, &str), at, reason: &str| {
        log.push(
            at,
            by,
            None,
            AbsenceJustified(events::AbsenceJustified {
                absence_id: absence(n),
                student_id: student(who),
                reason: reason.into(),
            }),
        );
    };
    let review = |log: &mut Log, n, who: &str, at, accepted, comment: Option<&str>| {
        log.push(
            at,
            PETIT,
            None,
            JustificationReviewed(events::JustificationReviewed {
                absence_id: absence(n),
                student_id: student(who),
                accepted,
                comment: comment.map(str::to_owned),
            }),
        );
    };
    use AbsenceKind::*;
    // Lucas: 2 + 1 + 1 unjustified half-days in March: flagged.
    report(
        &mut log,
        1,
        "e.lucas",
        MARTIN,
        Absence,
        paris(2026, 3, 2, 8, 0),
        paris(2026, 3, 2, 17, 0),
        None,
    );
    justify(
        &mut log,
        1,
        "e.lucas",
        LEROY,
        paris(2026, 3, 2, 20, 0),
        "panne de réveil",
    );
    review(
        &mut log,
        1,
        "e.lucas",
        paris(2026, 3, 3, 9, 0),
        false,
        Some("motif non recevable"),
    );
    report(
        &mut log,
        2,
        "e.lucas",
        MARTIN,
        Absence,
        paris(2026, 3, 3, 8, 0),
        paris(2026, 3, 3, 12, 0),
        None,
    );
    report(
        &mut log,
        3,
        "e.lucas",
        PETIT,
        Absence,
        paris(2026, 3, 5, 13, 30),
        paris(2026, 3, 5, 17, 0),
        None,
    );
    report(
        &mut log,
        4,
        "e.lucas",
        BERNARD,
        Lateness,
        paris(2026, 3, 6, 8, 0),
        paris(2026, 3, 6, 8, 15),
        Some(15),
    );
    // Chloé: declared in advance, confirmed, accepted; one cancelled; one pending.
    log.push(
        paris(2026, 3, 9, 18, 0),
        MOREAU,
        None,
        AbsenceDeclared(events::AbsenceDeclared {
            absence_id: absence(5),
            student_id: student("e.chloe"),
            start: paris(2026, 3, 11, 8, 0),
            end: paris(2026, 3, 11, 12, 0),
            reason: "rendez-vous médical".into(),
        }),
    );
    log.push(
        paris(2026, 3, 11, 8, 5),
        MARTIN,
        None,
        DeclaredAbsenceConfirmed(events::DeclaredAbsenceConfirmed {
            absence_id: absence(5),
            student_id: student("e.chloe"),
        }),
    );
    review(
        &mut log,
        5,
        "e.chloe",
        paris(2026, 3, 11, 10, 0),
        true,
        None,
    );
    report(
        &mut log,
        6,
        "e.chloe",
        BERNARD,
        Absence,
        paris(2026, 3, 12, 8, 0),
        paris(2026, 3, 12, 17, 0),
        None,
    );
    log.push(
        paris(2026, 3, 12, 9, 0),
        PETIT,
        Some("erreur de saisie: élève présente"),
        AbsenceCancelled(events::AbsenceCancelled {
            absence_id: absence(6),
            student_id: student("e.chloe"),
            reason: "erreur de saisie: élève présente".into(),
        }),
    );
    report(
        &mut log,
        7,
        "e.chloe",
        PETIT,
        Absence,
        paris(2026, 3, 16, 8, 0),
        paris(2026, 3, 18, 12, 0),
        None,
    );
    justify(
        &mut log,
        7,
        "e.chloe",
        MOREAU,
        paris(2026, 3, 18, 19, 0),
        "grippe, certificat à suivre",
    );
    // Hugo: Friday and Saturday morning; a Saturday afternoon that never counts.
    report(
        &mut log,
        8,
        "e.hugo",
        PETIT,
        Absence,
        paris(2026, 3, 13, 8, 0),
        paris(2026, 3, 14, 12, 0),
        None,
    );
    report(
        &mut log,
        9,
        "e.hugo",
        PETIT,
        Absence,
        paris(2026, 3, 28, 14, 0),
        paris(2026, 3, 28, 16, 0),
        None,
    );
    // Emma (5eB), after the change to summer time: accepted.
    report(
        &mut log,
        10,
        "e.emma",
        MARTIN,
        Absence,
        paris(2026, 3, 30, 8, 0),
        paris(2026, 3, 30, 17, 0),
        None,
    );
    justify(
        &mut log,
        10,
        "e.emma",
        LEROY,
        paris(2026, 3, 30, 18, 0),
        "enfant malade",
    );
    review(
        &mut log,
        10,
        "e.emma",
        paris(2026, 3, 31, 8, 0),
        true,
        Some("certificat reçu"),
    );
    // Noah (Réunion, UTC+4): 07:00-09:00 UTC is 11:00-13:00 local, a morning and an afternoon.
    let noah = (
        Utc.with_ymd_and_hms(2026, 3, 2, 7, 0, 0)
            .single()
            .unwrap_or_default(),
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
            .single()
            .unwrap_or_default(),
    );
    report(
        &mut log, 11, "e.noah", HOARAU, Absence, noah.0, noah.1, None,
    );

    // ---- Homework
    let assign =
        |log: &mut Log, n, c, teacher: (&str, &str), subject: &str, title: &str, due, on| {
            log.push(
                paris(2026, 3, 5, 17, 0) + chrono::Duration::minutes(i64::from(n)),
                teacher,
                None,
                HomeworkAssigned(events::HomeworkAssigned {
                    homework_id: homework(n),
                    class_id: class(c),
                    teacher_id: person(teacher.0),
                    subject: subject.into(),
                    title: title.into(),
                    description: format!("{title}: voir le cahier de textes"),
                    due,
                    assigned_on: on,
                }),
            );
        };
    assign(
        &mut log,
        1,
        SIXIEME_A,
        MARTIN,
        "Mathématiques",
        "Exercices p.42",
        date(2026, 3, 9),
        date(2026, 3, 5),
    );
    assign(
        &mut log,
        2,
        SIXIEME_A,
        BERNARD,
        "Français",
        "Lire le chapitre 3",
        date(2026, 3, 10),
        date(2026, 3, 5),
    );
    assign(
        &mut log,
        3,
        SIXIEME_A,
        MARTIN,
        "Mathématiques",
        "Fiche de révision",
        date(2026, 3, 12),
        date(2026, 3, 5),
    );
    assign(
        &mut log,
        4,
        SIXIEME_A,
        BERNARD,
        "Français",
        "Rédaction",
        date(2026, 3, 12),
        date(2026, 3, 5),
    );
    assign(
        &mut log,
        5,
        CINQUIEME_B,
        MARTIN,
        "Mathématiques",
        "Exercices 1 à 5",
        date(2026, 3, 9),
        date(2026, 3, 6),
    );
    log.push(
        paris(2026, 3, 6, 12, 0),
        MARTIN,
        Some("délai supplémentaire"),
        HomeworkAmended(events::HomeworkAmended {
            homework_id: homework(1),
            class_id: class(SIXIEME_A),
            title: "Exercices p.42 et p.43".into(),
            description: "Exercices 1 à 6 p.42 et 1 à 3 p.43".into(),
            due: date(2026, 3, 10),
            reason: Some("délai supplémentaire".into()),
        }),
    );
    log.push(
        paris(2026, 3, 6, 12, 5),
        MARTIN,
        Some("doublon"),
        HomeworkWithdrawn(events::HomeworkWithdrawn {
            homework_id: homework(3),
            class_id: class(SIXIEME_A),
            reason: "doublon".into(),
        }),
    );

    // ---- Messages
    let send =
        |log: &mut Log, n, t, from: (&str, &str), to: &[&str], at, subject: &str, body: &str| {
            log.push(
                at,
                from,
                None,
                MessageSent(events::MessageSent {
                    message_id: message(n),
                    thread_id: thread(t),
                    from: person(from.0),
                    to: to.iter().map(|p| person(p)).collect(),
                    subject: subject.into(),
                    body: body.into(),
                }),
            );
        };
    let read = |log: &mut Log, n, t, reader: (&str, &str), at| {
        log.push(
            at,
            reader,
            None,
            MessageRead(events::MessageRead {
                message_id: message(n),
                thread_id: thread(t),
                reader: person(reader.0),
            }),
        );
    };
    send(
        &mut log,
        1,
        1,
        MARTIN,
        &["p.leroy"],
        paris(2026, 3, 13, 17, 0),
        "Résultats de Lucas",
        "Lucas progresse en géométrie.",
    );
    read(&mut log, 1, 1, LEROY, paris(2026, 3, 13, 20, 30));
    send(
        &mut log,
        2,
        1,
        LEROY,
        &["t.martin"],
        paris(2026, 3, 13, 20, 45),
        "Re: Résultats de Lucas",
        "Merci pour ces nouvelles.",
    );
    send(
        &mut log,
        3,
        2,
        PETIT,
        &["p.leroy", "p.moreau"],
        paris(2026, 3, 16, 9, 0),
        "Sortie au musée",
        "La sortie aura lieu le 2 avril.",
    );
    read(&mut log, 3, 2, MOREAU, paris(2026, 3, 16, 12, 0));
    // A second receipt of the same reader keeps the first read time.
    read(&mut log, 3, 2, MOREAU, paris(2026, 3, 17, 12, 0));

    // Chronological order, as a live log would hold it (every effect above is
    // dated after its cause, so the stable sort keeps causes first).
    let mut lines = log.lines;
    lines.sort_by_key(|l| l.recorded_at);
    for (i, l) in lines.iter_mut().enumerate() {
        l.position = i as u64 + 1;
    }
    lines
}
