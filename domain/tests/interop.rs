//! The roster decisions of interoperability (issue 17): a guardian unlinked,
//! an assignment ended, a person and a class renamed, the school year
//! started (the past year's classes and periods closed, read-only after).
#![allow(clippy::unwrap_used)]

use chrono::NaiveDate;
use registre_domain::evaluation::{PeriodEntry, Periods};
use registre_domain::roster::*;
use registre_domain::testing::{fresh, given, given_state, nothing, Rejection};
use registre_domain::{events::*, DomainEvent};
use registre_domain::{Aggregate, Uai};
use registre_domain::{ClassId, EstablishmentId, PeriodId, PersonId, Role, StudentId, TimeZone};

fn class_events(class: ClassId, est: EstablishmentId, teacher: PersonId) -> Vec<DomainEvent> {
    vec![
        DomainEvent::ClassCreated(ClassCreated {
            class_id: class,
            establishment_id: est,
            name: "2NDE1".into(),
        }),
        DomainEvent::TeacherAssigned(TeacherAssigned {
            class_id: class,
            teacher_id: teacher,
            subject: "Mathématiques".into(),
        }),
    ]
}

#[test]
fn a_guardian_is_unlinked_once() {
    let pupil = PersonId::for_external_id("pupil");
    let parent = PersonId::for_external_id("parent");
    let student = StudentId::for_person(pupil);
    let history = history_of(student, pupil, parent);
    let cmd = UnlinkGuardian {
        student_id: student,
        guardian_id: parent,
    };
    let unlinked = DomainEvent::GuardianUnlinked(GuardianUnlinked {
        student_id: student,
        guardian_id: parent,
    });
    let (_, state) = given::<Student>(history)
        .when(|s| unlink_guardian(s, &cmd))
        .then_expect([unlinked.clone()]);
    assert!(state.guardians.is_empty());
    given::<Student>([history_of(student, pupil, parent), vec![unlinked]].concat())
        .when(|s| unlink_guardian(s, &cmd))
        .then_reject(Rejection::Conflict);
    nothing::<Student>()
        .when(|s| unlink_guardian(s, &cmd))
        .then_reject(Rejection::NotFound);
}

fn history_of(student: StudentId, pupil: PersonId, parent: PersonId) -> Vec<DomainEvent> {
    vec![
        DomainEvent::StudentEnrolled(StudentEnrolled {
            student_id: student,
            person_id: pupil,
            class_id: ClassId::default(),
        }),
        DomainEvent::GuardianLinked(GuardianLinked {
            student_id: student,
            guardian_id: parent,
        }),
    ]
}

#[test]
fn an_assignment_ends_with_the_subject_as_assigned() {
    let (class, est, teacher) = (fresh::<ClassId>(), fresh(), PersonId::for_external_id("t"));
    let cmd = UnassignTeacher {
        class_id: class,
        teacher_id: teacher,
        subject: " mathématiques ".into(),
    };
    let (_, state) = given::<Class>(class_events(class, est, teacher))
        .when(|s| unassign_teacher(s, &cmd))
        .then_expect([DomainEvent::TeacherUnassigned(TeacherUnassigned {
            class_id: class,
            teacher_id: teacher,
            subject: "Mathématiques".into(),
        })]);
    assert!(!state.teaches(teacher, "Mathématiques"));
    given_state(state)
        .when(|s| unassign_teacher(s, &cmd))
        .then_reject(Rejection::Conflict);
}

#[test]
fn a_person_is_renamed_unless_the_name_is_already_theirs_or_erased() {
    let person = PersonId::for_external_id("0700000001AB");
    let registered = DomainEvent::PersonRegistered(PersonRegistered {
        person_id: person,
        external_id: "0700000001AB".into(),
        display_name: "Hélène RIVIÈRE".into(),
        roles: vec![Role::Student],
        establishment_id: None,
    });
    let rename = |name: &str| RenamePerson {
        person_id: person,
        display_name: name.into(),
    };
    given::<Person>([registered.clone()])
        .when(|s| rename_person(s, &rename("  Zoë RIVIÈRE ")))
        .then_expect([DomainEvent::PersonRenamed(PersonRenamed {
            person_id: person,
            display_name: "Zoë RIVIÈRE".into(),
        })]);
    given::<Person>([registered.clone()])
        .when(|s| rename_person(s, &rename("Hélène RIVIÈRE")))
        .then_expect([]);
    given::<Person>([registered.clone()])
        .when(|s| rename_person(s, &rename("   ")))
        .then_reject(Rejection::Invalid("displayName"));
    given::<Person>([
        registered,
        DomainEvent::PersonErased(PersonErased {
            person_id: person,
            reason: "art. 17".into(),
        }),
    ])
    .when(|s| rename_person(s, &rename("Zoë RIVIÈRE")))
    .then_reject(Rejection::Conflict);
}

#[test]
fn a_class_is_renamed_unless_the_name_is_taken() {
    let (class, est, teacher) = (fresh::<ClassId>(), fresh(), PersonId::for_external_id("t"));
    let cmd = RenameClass {
        class_id: class,
        name: "2NDE A".into(),
    };
    given::<Class>(class_events(class, est, teacher))
        .when(|s| rename_class(s, &cmd, &ClassFacts::default()))
        .then_expect([DomainEvent::ClassRenamed(ClassRenamed {
            class_id: class,
            name: "2NDE A".into(),
        })]);
    given::<Class>(class_events(class, est, teacher))
        .when(|s| {
            rename_class(
                s,
                &cmd,
                &ClassFacts {
                    establishment_exists: true,
                    name_taken: true,
                },
            )
        })
        .then_reject(Rejection::Conflict);
}

fn establishment(est: EstablishmentId) -> Vec<DomainEvent> {
    vec![DomainEvent::EstablishmentCreated(EstablishmentCreated {
        establishment_id: est,
        uai: Uai::parse("0691234X").unwrap(),
        name: "Lycée Ampère".into(),
        time_zone: TimeZone::DEFAULT,
    })]
}

#[test]
fn a_school_year_closes_the_past_years_classes_and_periods() {
    let est = fresh::<EstablishmentId>();
    let teacher = PersonId::for_external_id("t");
    let (open, closed) = (fresh::<ClassId>(), fresh::<ClassId>());
    let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    let classes: Vec<Class> = [open, closed]
        .into_iter()
        .map(|c| {
            let mut class = Class::default();
            for e in class_events(c, est, teacher) {
                class.apply(&e);
            }
            class
        })
        .collect();
    let mut classes = classes;
    classes[1].closed_year = Some(2025);
    let (t1, t2, next) = (
        fresh::<PeriodId>(),
        fresh::<PeriodId>(),
        fresh::<PeriodId>(),
    );
    let entry = |id, start, end, closed| PeriodEntry {
        id,
        name: format!("{start}"),
        start,
        end,
        closed,
    };
    let periods = Periods {
        establishment_id: Some(est),
        periods: vec![
            entry(t1, day(2026, 9, 1), day(2026, 11, 30), true),
            entry(t2, day(2026, 12, 1), day(2027, 7, 4), false),
            entry(next, day(2027, 9, 1), day(2027, 11, 30), false),
        ],
        version: 1,
    };
    let cmd = StartSchoolYear {
        establishment_id: est,
        year: 2027,
    };
    let facts = SchoolYearFacts { current_year: 2026 };
    // Over several streams (each class's, the periods', the
    // establishment's): the events are compared whole.
    let state = Establishment::fold(&establishment(est));
    let events = start_school_year(&state, &classes, &periods, &cmd, &facts).unwrap();
    assert_eq!(
        events,
        [
            DomainEvent::ClassClosed(ClassClosed {
                class_id: open,
                establishment_id: est,
                year: 2026,
            }),
            DomainEvent::PeriodClosed(PeriodClosed {
                establishment_id: est,
                period_id: t2,
            }),
            DomainEvent::SchoolYearStarted(SchoolYearStarted {
                establishment_id: est,
                year: 2027,
            }),
        ]
    );
    let mut state = state;
    state.apply(&events[2]);
    assert_eq!(state.school_year, Some(2027));
    // Once, in order, current or next.
    let started = [
        establishment(est),
        vec![DomainEvent::SchoolYearStarted(SchoolYearStarted {
            establishment_id: est,
            year: 2027,
        })],
    ]
    .concat();
    given::<Establishment>(started)
        .when(|s| start_school_year(s, &classes, &periods, &cmd, &facts))
        .then_reject(Rejection::Conflict);
    for year in [2025, 2028] {
        given::<Establishment>(establishment(est))
            .when(|s| {
                start_school_year(
                    s,
                    &classes,
                    &periods,
                    &StartSchoolYear {
                        establishment_id: est,
                        year,
                    },
                    &facts,
                )
            })
            .then_reject(Rejection::Invalid("year"));
    }
    nothing::<Establishment>()
        .when(|s| start_school_year(s, &classes, &periods, &cmd, &facts))
        .then_reject(Rejection::NotFound);
}

#[test]
fn a_closed_class_is_read_only() {
    let (class, est, teacher) = (fresh::<ClassId>(), fresh(), PersonId::for_external_id("t"));
    let mut history = class_events(class, est, teacher);
    history.push(DomainEvent::ClassClosed(ClassClosed {
        class_id: class,
        establishment_id: est,
        year: 2026,
    }));
    let summary = PersonSummary {
        roles: vec![Role::Teacher],
        establishment_id: Some(est),
    };
    given::<Class>(history.clone())
        .when(|s| {
            assign_teacher(
                s,
                &AssignTeacher {
                    class_id: class,
                    teacher_id: teacher,
                    subject: "Physique".into(),
                },
                &AssignmentFacts {
                    teacher: Some(summary.clone()),
                },
            )
        })
        .then_reject(Rejection::Conflict);
    given::<Class>(history.clone())
        .when(|s| {
            unassign_teacher(
                s,
                &UnassignTeacher {
                    class_id: class,
                    teacher_id: teacher,
                    subject: "Mathématiques".into(),
                },
            )
        })
        .then_reject(Rejection::Conflict);
    given::<Class>(history)
        .when(|s| {
            rename_class(
                s,
                &RenameClass {
                    class_id: class,
                    name: "2NDE B".into(),
                },
                &ClassFacts::default(),
            )
        })
        .then_reject(Rejection::Conflict);
    let pupil = PersonId::for_external_id("pupil");
    nothing::<Student>()
        .when(|s| {
            enroll_student(
                s,
                &EnrollStudent {
                    person_id: pupil,
                    class_id: class,
                },
                &EnrolmentFacts {
                    person: Some(PersonSummary {
                        roles: vec![Role::Student],
                        establishment_id: None,
                    }),
                    class_exists: true,
                    class_closed: Some(("2NDE1".into(), 2026)),
                },
            )
        })
        .then_reject(Rejection::Conflict);
    // No assessment in it either.
    let cmd = registre_domain::grades::CreateAssessment {
        assessment_id: fresh(),
        class_id: class,
        teacher_id: teacher,
        subject: "Mathématiques".into(),
        title: "contrôle".into(),
        date: NaiveDate::from_ymd_opt(2027, 9, 20).unwrap(),
        coefficient: 1.0,
        out_of: 20.0,
    };
    nothing::<registre_domain::grades::Assessment>()
        .when(|s| {
            registre_domain::grades::create_assessment(
                s,
                &cmd,
                &registre_domain::grades::AssessmentFacts {
                    class_exists: true,
                    class_closed: Some(("2NDE1".into(), 2026)),
                },
            )
        })
        .then_reject(Rejection::Conflict);
}
