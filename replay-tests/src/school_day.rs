//! How `golden/school_day.jsonl` was written (issue 13): one week of a
//! collège's school day, produced by the domain's own decisions
//! (`cargo run -p registre-replay-tests --example write_school_day_golden`).
//!
//! Collège Jean Moulin (Europe/Paris), class 6eA (Lucas, Chloé, Hugo), week
//! of Monday 9 March 2026: Wednesday 11 is a holiday. Two motives (MED
//! justifies, CONV does not). Maths every day at 08:00 (planned weekly, so
//! none on Wednesday), French on Monday at 10:00 (cancelled). Roll calls:
//! Monday (Lucas absent, Hugo late), corrected (Lucas was there; Chloé
//! absent); Tuesday (Chloé absent, declared by her guardian: confirmed);
//! Thursday (Hugo absent, justified with CONV and accepted: still
//! unjustified); Friday's call forgotten. Lesson contents and homework given
//! in Monday's course, marked done by Lucas.

use crate::{line_of, GoldenLine};
use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use registre_domain::events::{self, DateRange};
use registre_domain::school_day::{self as day, ChosenBy, MotiveFacts, MotiveSummary};
use registre_domain::*;
use registre_domain::{absences, homework, Aggregate};
use registre_store::Actor;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

fn fixed(kind: u32, n: u32) -> Uuid {
    Uuid::from_u128((u128::from(kind) << 96) | u128::from(n))
}

pub fn person(external_id: &str) -> PersonId {
    PersonId::for_external_id(external_id)
}
pub fn student(external_id: &str) -> StudentId {
    StudentId::for_person(person(external_id))
}
pub fn establishment() -> EstablishmentId {
    EstablishmentId(fixed(0xE, 1))
}
pub fn class() -> ClassId {
    ClassId(fixed(0xC, 1))
}
pub fn course(n: u32) -> CourseId {
    CourseId(fixed(0xC0, n))
}
pub fn absence(n: u32) -> AbsenceId {
    AbsenceId(fixed(0xAB, n))
}
pub fn motive(n: u32) -> AbsenceReasonId {
    AbsenceReasonId(fixed(0x30, n))
}
pub fn homework_entry(n: u32) -> HomeworkId {
    HomeworkId(fixed(0x40, n))
}

/// `h:m` on March `d`, 2026, in Paris.
pub fn paris(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    chrono_tz::Europe::Paris
        .with_ymd_and_hms(2026, 3, d, h, m, 0)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

pub fn march(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap_or_default()
}

/// The log being written, with every stream's events to decide from.
#[derive(Default)]
struct Log {
    lines: Vec<GoldenLine>,
    streams: BTreeMap<String, Vec<DomainEvent>>,
}

impl Log {
    fn push(&mut self, at: DateTime<Utc>, by: &str, role: Role, events: Vec<DomainEvent>) {
        for event in events {
            let position = self.lines.len() as u64 + 1;
            let actor = Actor {
                person_id: person(by).0,
                role: role.wire_name().to_owned(),
            };
            let reason = event.reason().map(str::to_owned);
            self.lines
                .push(line_of(position, at, Some(actor), reason, &event));
            self.streams
                .entry(event.stream().into_string())
                .or_default()
                .push(event);
        }
    }

    fn fold<A: Aggregate>(&self, stream: StreamName) -> A {
        A::fold(self.streams.get(stream.as_str()).into_iter().flatten())
    }
}

fn decided<T>(r: Result<T, DomainError>) -> T {
    r.unwrap_or_else(|e| panic!("the golden week's decision was refused: {e}"))
}

const ADMIN: (&str, Role) = ("admin", Role::Admin);
const HEAD: (&str, Role) = ("h.durand", Role::Head);
const CPE: (&str, Role) = ("cpe.petit", Role::EducationStaff);
const MARTIN: (&str, Role) = ("t.martin", Role::Teacher);

/// The week's log, in order.
pub fn school_day_log() -> Vec<GoldenLine> {
    use DomainEvent::*;
    let mut log = Log::default();
    let setup = paris(2, 8, 0);
    let students = ["e.lucas", "e.chloe", "e.hugo"];
    let mut roster = vec![
        EstablishmentCreated(events::EstablishmentCreated {
            establishment_id: establishment(),
            uai: Uai::parse("0750001A").unwrap_or_else(|_| unreachable!("valid UAI")),
            name: "Collège Jean Moulin".into(),
            time_zone: TimeZone::parse("Europe/Paris").unwrap_or_default(),
        }),
        ClassCreated(events::ClassCreated {
            class_id: class(),
            establishment_id: establishment(),
            name: "6eA".into(),
        }),
    ];
    let people: [(&str, &str, Role, bool); 8] = [
        ("h.durand", "Claire Durand", Role::Head, true),
        ("cpe.petit", "Marc Petit", Role::EducationStaff, true),
        ("t.martin", "Sophie Martin", Role::Teacher, true),
        ("t.bernard", "Paul Bernard", Role::Teacher, true),
        ("p.moreau", "Nadia Moreau", Role::Guardian, false),
        ("e.lucas", "Lucas Leroy", Role::Student, false),
        ("e.chloe", "Chloé Moreau", Role::Student, false),
        ("e.hugo", "Hugo Fournier", Role::Student, false),
    ];
    for (ext, name, role, staff) in people {
        roster.push(PersonRegistered(events::PersonRegistered {
            person_id: person(ext),
            external_id: ext.into(),
            display_name: name.into(),
            roles: vec![role],
            establishment_id: staff.then(establishment),
        }));
    }
    for ext in students {
        roster.push(StudentEnrolled(events::StudentEnrolled {
            student_id: student(ext),
            person_id: person(ext),
            class_id: class(),
        }));
    }
    roster.push(GuardianLinked(events::GuardianLinked {
        student_id: student("e.chloe"),
        guardian_id: person("p.moreau"),
    }));
    for (teacher, subject) in [("t.martin", "Mathématiques"), ("t.bernard", "Français")] {
        roster.push(TeacherAssigned(events::TeacherAssigned {
            class_id: class(),
            teacher_id: person(teacher),
            subject: subject.into(),
        }));
    }
    log.push(setup, ADMIN.0, ADMIN.1, roster);

    // ---- Motives and holidays
    for (n, code, label, justifies, guardians) in [
        (1, "MED", "Rendez-vous médical", true, true),
        (2, "CONV", "Convenance personnelle", false, true),
    ] {
        let cmd = day::DefineAbsenceReason {
            reason_id: motive(n),
            establishment_id: establishment(),
            code: code.into(),
            label: label.into(),
            justifies,
            usable_by_guardians: guardians,
        };
        let state = log.fold::<day::Calendar>(StreamName::establishment(establishment()));
        log.push(
            setup,
            CPE.0,
            CPE.1,
            decided(day::define_absence_reason(&state, &cmd)),
        );
    }
    let holidays = day::SetHolidays {
        establishment_id: establishment(),
        holidays: vec![DateRange {
            from: march(11),
            to: march(11),
        }],
    };
    let state = log.fold::<day::Calendar>(StreamName::establishment(establishment()));
    log.push(
        setup,
        HEAD.0,
        HEAD.1,
        decided(day::set_holidays(&state, &holidays)),
    );

    // ---- The timetable
    let facts = |now| day::PlanFacts {
        establishment: Some(establishment()),
        teacher_assigned: true,
        zone: TimeZone::parse("Europe/Paris").unwrap_or_default(),
        holidays: holidays.holidays.clone(),
        now,
        class_closed: None,
    };
    for (weekday, first) in [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)] {
        let weekly = day::PlanWeeklyCourses {
            course_ids: vec![course(first)],
            class_id: class(),
            subject: "Mathématiques".into(),
            teacher_id: person("t.martin"),
            weekday,
            start_time: "08:00".into(),
            end_time: "09:00".into(),
            from: march(9),
            to: march(13),
            room: Some("B12".into()),
        };
        log.push(
            setup,
            HEAD.0,
            HEAD.1,
            decided(day::plan_weekly_courses(&weekly, &facts(setup))),
        );
    }
    let french = day::PlanCourse {
        course_id: course(10),
        class_id: class(),
        subject: "Français".into(),
        teacher_id: person("t.bernard"),
        start: paris(9, 10, 0),
        end: paris(9, 11, 0),
        room: None,
    };
    log.push(
        setup,
        HEAD.0,
        HEAD.1,
        decided(day::plan_course(
            &day::Course::default(),
            &french,
            &facts(setup),
        )),
    );
    let cancel = day::CancelCourse {
        course_id: course(10),
        reason: "Professeur en formation".into(),
    };
    let state = log.fold::<day::Course>(StreamName::course(course(10)));
    log.push(
        paris(6, 16, 0),
        CPE.0,
        CPE.1,
        decided(day::cancel_course(&state, &cancel)),
    );

    // ---- A guardian's declaration for Tuesday morning
    let declare = absences::DeclareAbsence {
        absence_id: absence(100),
        student_id: student("e.chloe"),
        start: paris(10, 8, 0),
        end: paris(10, 12, 0),
        reason: "Rendez-vous chez l'orthodontiste".into(),
    };
    let mut declared = decided(absences::declare_absence(
        &absences::Absence::default(),
        &declare,
        &absences::DeclareFacts {
            student_class: Some(class()),
            now: paris(9, 19, 0),
        },
    ));
    declared.extend(decided(day::give_motive(
        absence(100),
        student("e.chloe"),
        Some(motive(1)),
        &MotiveFacts {
            motive: Some(MotiveSummary {
                establishment_id: establishment(),
                usable_by_guardians: true,
            }),
            establishment: Some(establishment()),
        },
        ChosenBy::Guardian,
    )));
    log.push(paris(9, 19, 0), "p.moreau", Role::Guardian, declared);

    // ---- Roll calls
    let class_students: BTreeSet<StudentId> = students.iter().map(|s| student(s)).collect();
    let mut next_absence = 1;
    let mut call = |log: &mut Log,
                    c: u32,
                    at: DateTime<Utc>,
                    by: (&str, Role),
                    absent: &[&str],
                    late: &[(&str, i64)]| {
        let state = log.fold::<day::Course>(StreamName::course(course(c)));
        let entries = state.roll_call.clone().unwrap_or_default();
        let recorded = entries
            .iter()
            .map(|e| log.fold::<absences::Absence>(StreamName::absence(e.absence_id)))
            .collect();
        let declared = vec![log.fold::<absences::Absence>(StreamName::absence(absence(100)))];
        let cmd = day::TakeRollCall {
            course_id: course(c),
            absent: absent.iter().map(|s| student(s)).collect(),
            late: late
                .iter()
                .map(|(s, m)| day::Late {
                    student_id: student(s),
                    minutes_late: *m,
                })
                .collect(),
            new_ids: (0..absent.len() + late.len())
                .map(|k| absence(next_absence + k as u32))
                .collect(),
        };
        next_absence += (absent.len() + late.len()) as u32;
        let facts = day::RollCallFacts {
            class_students: class_students.clone(),
            declared,
            recorded,
            now: at,
        };
        log.push(
            at,
            by.0,
            by.1,
            decided(day::take_roll_call(&state, &cmd, &facts)),
        );
    };
    call(
        &mut log,
        1,
        paris(9, 8, 5),
        MARTIN,
        &["e.lucas"],
        &[("e.hugo", 10)],
    );
    // The correction: Lucas was in the CDI; Chloé was the one missing.
    call(
        &mut log,
        1,
        paris(9, 8, 40),
        CPE,
        &["e.chloe"],
        &[("e.hugo", 10)],
    );
    call(&mut log, 2, paris(10, 8, 5), MARTIN, &["e.chloe"], &[]);
    call(&mut log, 4, paris(12, 8, 5), MARTIN, &["e.hugo"], &[]);
    // Friday's call (course 5) is forgotten.

    // ---- Hugo's Thursday, justified with a motive that does not justify, accepted
    let thursday = log
        .lines
        .iter()
        .rev()
        .find_map(
            |l| match DomainEvent::decode(&l.event_type, l.schema_version, &l.data) {
                Ok(AbsenceReported(r))
                    if r.student_id == student("e.hugo") && r.kind == AbsenceKind::Absence =>
                {
                    Some(r.absence_id)
                }
                _ => None,
            },
        )
        .unwrap_or_default();
    let state = log.fold::<absences::Absence>(StreamName::absence(thursday));
    let justify = absences::JustifyAbsence {
        absence_id: thursday,
        reason: "Départ en week-end".into(),
    };
    let mut justified = decided(absences::justify_absence(&state, &justify));
    justified.push(AbsenceMotiveGiven(events::AbsenceMotiveGiven {
        absence_id: thursday,
        student_id: student("e.hugo"),
        motive_id: motive(2),
    }));
    log.push(paris(12, 18, 0), "p.moreau", Role::Guardian, justified);
    let state = log.fold::<absences::Absence>(StreamName::absence(thursday));
    let review = absences::ReviewJustification {
        absence_id: thursday,
        accept: true,
        comment: None,
    };
    log.push(
        paris(13, 9, 0),
        CPE.0,
        CPE.1,
        decided(absences::review_justification(&state, &review)),
    );

    // ---- Cahier de textes
    for (c, content, at) in [
        (1, "Fractions : comparer et additionner.", paris(9, 9, 0)),
        (2, "Fractions : exercices de synthèse.", paris(10, 9, 0)),
    ] {
        let state = log.fold::<day::Course>(StreamName::course(course(c)));
        let cmd = day::RecordLessonContent {
            course_id: course(c),
            content: content.into(),
        };
        log.push(
            at,
            MARTIN.0,
            MARTIN.1,
            decided(day::record_lesson_content(&state, &cmd)),
        );
    }
    for (n, title, minutes) in [
        (1, "Exercices 4 à 7 p. 52", 30),
        (2, "Réviser le contrôle", 60),
    ] {
        let assign = homework::AssignHomework {
            homework_id: homework_entry(n),
            class_id: class(),
            teacher_id: person("t.martin"),
            subject: "Mathématiques".into(),
            title: title.into(),
            description: String::new(),
            due: march(12),
        };
        let mut events = decided(homework::assign_homework(
            &homework::Homework::default(),
            &assign,
            &homework::HomeworkFacts {
                class_exists: true,
                today: march(9),
                class_closed: None,
            },
        ));
        let summary = day::CourseSummary {
            class_id: class(),
            subject: "Mathématiques".into(),
            cancelled: false,
        };
        events.extend(decided(day::detail_new_homework(
            &assign,
            Some(course(1)),
            Some(minutes),
            Some(&summary),
        )));
        log.push(paris(9, 9, 0), MARTIN.0, MARTIN.1, events);
    }
    let state = log.fold::<homework::Homework>(StreamName::homework(homework_entry(1)));
    let done = day::MarkHomeworkDone {
        homework_id: homework_entry(1),
        student_id: student("e.lucas"),
        done: true,
    };
    log.push(
        paris(11, 17, 0),
        "e.lucas",
        Role::Student,
        decided(day::mark_homework_done(&state, &done)),
    );
    log.lines
}
