//! The school day's decisions: planning (one course, weekly, holidays),
//! the roll call over several streams and its correction, motives.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use registre_domain::absences::{self, Absence};
use registre_domain::events::*;
use registre_domain::school_day::*;
use registre_domain::testing::{fresh, given, nothing, Rejection};
use registre_domain::{
    AbsenceId, AbsenceKind, Aggregate, ClassId, CourseId, DomainEvent, EstablishmentId, PersonId,
    StudentId, TimeZone,
};
use std::collections::BTreeSet;

fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, h, m, 0).unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

fn facts(holidays: Vec<DateRange>) -> PlanFacts {
    PlanFacts {
        establishment: Some(EstablishmentId::from_uuid(uuid::Uuid::from_u128(1))),
        teacher_assigned: true,
        zone: TimeZone::parse("Europe/Paris").unwrap(),
        holidays,
        now: at(2, 7, 0),
        class_closed: None,
    }
}

fn plan(start: DateTime<Utc>, end: DateTime<Utc>) -> PlanCourse {
    PlanCourse {
        course_id: fresh(),
        class_id: fresh(),
        subject: " maths ".into(),
        teacher_id: fresh(),
        start,
        end,
        room: Some("  ".into()),
    }
}

#[test]
fn a_course_is_planned_by_an_assigned_teacher_never_on_a_holiday() {
    let cmd = plan(at(16, 8, 0), at(16, 9, 0));
    nothing::<Course>()
        .when(|s| plan_course(s, &cmd, &facts(vec![])))
        .then_expect([DomainEvent::CoursePlanned(CoursePlanned {
            course_id: cmd.course_id,
            establishment_id: facts(vec![]).establishment.unwrap(),
            class_id: cmd.class_id,
            subject: "maths".into(),
            teacher_id: cmd.teacher_id,
            start: cmd.start,
            end: cmd.end,
            room: None,
        })]);
    let unassigned = PlanFacts {
        teacher_assigned: false,
        ..facts(vec![])
    };
    nothing::<Course>()
        .when(|s| plan_course(s, &cmd, &unassigned))
        .then_reject(Rejection::Invalid("teacherId"));
    // 16 November in Paris, whatever the UTC day of its start.
    let holiday = DateRange {
        from: day(16),
        to: day(16),
    };
    nothing::<Course>()
        .when(|s| plan_course(s, &cmd, &facts(vec![holiday])))
        .then_reject(Rejection::Invalid("start"));
    let late_evening = plan(at(15, 23, 30), at(16, 0, 30));
    nothing::<Course>()
        .when(|s| plan_course(s, &late_evening, &facts(vec![holiday])))
        .then_reject(Rejection::Invalid("start"));
    let too_long = plan(at(16, 8, 0), at(16, 21, 0));
    nothing::<Course>()
        .when(|s| plan_course(s, &too_long, &facts(vec![])))
        .then_reject(Rejection::Invalid("end"));
}

#[test]
fn weekly_courses_fall_on_their_weekday_in_local_time_and_skip_holidays() {
    let cmd = PlanWeeklyCourses {
        course_ids: (0..WEEKLY_COURSES_MAX).map(|_| fresh()).collect(),
        class_id: fresh(),
        subject: "maths".into(),
        teacher_id: fresh(),
        weekday: 3,
        start_time: "08:05".into(),
        end_time: "09:00".into(),
        from: day(2),
        to: day(30),
        room: None,
    };
    let holiday = DateRange {
        from: day(11),
        to: day(11),
    };
    let events = plan_weekly_courses(&cmd, &facts(vec![holiday])).unwrap();
    let starts: Vec<DateTime<Utc>> = events
        .iter()
        .map(|e| match e {
            DomainEvent::CoursePlanned(c) => c.start,
            other => panic!("{other:?}"),
        })
        .collect();
    // Wednesdays 4, 18 and 25 November at 08:05 in Paris (UTC+1).
    assert_eq!(starts, vec![at(4, 7, 5), at(18, 7, 5), at(25, 7, 5)]);
    let bad = PlanWeeklyCourses {
        end_time: "08:00".into(),
        ..cmd.clone()
    };
    assert!(Rejection::Invalid("endTime")
        .matches(&plan_weekly_courses(&bad, &facts(vec![])).unwrap_err()));
    let bad = PlanWeeklyCourses {
        start_time: "8h".into(),
        ..cmd
    };
    assert!(Rejection::Invalid("startTime")
        .matches(&plan_weekly_courses(&bad, &facts(vec![])).unwrap_err()));
}

struct Class {
    course: Course,
    course_id: CourseId,
    a: StudentId,
    b: StudentId,
    c: StudentId,
}

fn class() -> Class {
    let course_id: CourseId = fresh();
    let class_id: ClassId = fresh();
    let course = Course::fold(&[DomainEvent::CoursePlanned(CoursePlanned {
        course_id,
        establishment_id: fresh(),
        class_id,
        subject: "maths".into(),
        teacher_id: fresh::<PersonId>(),
        start: at(16, 8, 0),
        end: at(16, 9, 0),
        room: None,
    })]);
    Class {
        course,
        course_id,
        a: fresh(),
        b: fresh(),
        c: fresh(),
    }
}

fn call(k: &Class, absent: Vec<StudentId>, late: Vec<(StudentId, i64)>) -> TakeRollCall {
    TakeRollCall {
        course_id: k.course_id,
        new_ids: (0..absent.len() + late.len()).map(|_| fresh()).collect(),
        absent,
        late: late
            .into_iter()
            .map(|(student_id, minutes_late)| Late {
                student_id,
                minutes_late,
            })
            .collect(),
    }
}

fn call_facts(k: &Class, declared: Vec<Absence>, recorded: Vec<Absence>) -> RollCallFacts {
    RollCallFacts {
        class_students: BTreeSet::from([k.a, k.b, k.c]),
        declared,
        recorded,
        now: at(16, 9, 5),
    }
}

fn reported(events: &[DomainEvent]) -> Vec<(StudentId, AbsenceKind)> {
    events
        .iter()
        .filter_map(|e| match e {
            DomainEvent::AbsenceReported(r) => Some((r.student_id, r.kind)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_roll_call_reports_each_absent_and_late_student_of_its_course() {
    let k = class();
    let cmd = call(&k, vec![k.a], vec![(k.b, 10)]);
    let events = take_roll_call(&k.course, &cmd, &call_facts(&k, vec![], vec![])).unwrap();
    assert_eq!(
        reported(&events),
        vec![(k.a, AbsenceKind::Absence), (k.b, AbsenceKind::Lateness)]
    );
    match events.last().unwrap() {
        DomainEvent::RollCallTaken(t) => {
            assert_eq!(t.present_count, 2);
            assert_eq!(t.entries.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    // The course's times, in every absence.
    assert!(events.iter().all(|e| match e {
        DomainEvent::AbsenceReported(r) => r.start == at(16, 8, 0) && r.end == at(16, 9, 0),
        _ => true,
    }));
}

#[test]
fn a_roll_call_refuses_a_cancelled_course_a_stranger_and_a_double_listing() {
    let k = class();
    let stranger = call(&k, vec![fresh()], vec![]);
    assert!(Rejection::Invalid("absent").matches(
        &take_roll_call(&k.course, &stranger, &call_facts(&k, vec![], vec![])).unwrap_err()
    ));
    let twice = call(&k, vec![k.a], vec![(k.a, 5)]);
    assert!(Rejection::Invalid("late")
        .matches(&take_roll_call(&k.course, &twice, &call_facts(&k, vec![], vec![])).unwrap_err()));
    let zero = call(&k, vec![], vec![(k.b, 0)]);
    assert!(Rejection::Invalid("minutesLate")
        .matches(&take_roll_call(&k.course, &zero, &call_facts(&k, vec![], vec![])).unwrap_err()));
    let mut cancelled = k.course.clone();
    cancelled.apply(&DomainEvent::CourseCancelled(CourseCancelled {
        course_id: k.course_id,
        class_id: cancelled.class_id.unwrap(),
        reason: "grève".into(),
    }));
    let ok = call(&k, vec![k.a], vec![]);
    assert!(Rejection::Invalid("courseId")
        .matches(&take_roll_call(&cancelled, &ok, &call_facts(&k, vec![], vec![])).unwrap_err()));
    let unknown = Course::default();
    assert!(Rejection::NotFound
        .matches(&take_roll_call(&unknown, &ok, &call_facts(&k, vec![], vec![])).unwrap_err()));
}

#[test]
fn a_second_call_keeps_what_stands_cancels_what_is_gone_and_records_what_is_new() {
    let k = class();
    let first = take_roll_call(
        &k.course,
        &call(&k, vec![k.a, k.b], vec![]),
        &call_facts(&k, vec![], vec![]),
    )
    .unwrap();
    let streams: Vec<Absence> = first
        .iter()
        .filter(|e| matches!(e, DomainEvent::AbsenceReported(_)))
        .map(|e| Absence::fold([e]))
        .collect();
    let mut course = k.course.clone();
    course.apply(first.last().unwrap());
    let a_absence = streams[0].id.unwrap();
    let b_absence = streams[1].id.unwrap();

    // a is still absent, b was there, c is absent now.
    let second = take_roll_call(
        &course,
        &call(&k, vec![k.a, k.c], vec![]),
        &call_facts(&k, vec![], streams),
    )
    .unwrap();
    assert_eq!(reported(&second), vec![(k.c, AbsenceKind::Absence)]);
    let cancelled: Vec<(AbsenceId, &str)> = second
        .iter()
        .filter_map(|e| match e {
            DomainEvent::AbsenceCancelled(c) => Some((c.absence_id, c.reason.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(cancelled, vec![(b_absence, ROLL_CALL_CORRECTED)]);
    match second.last().unwrap() {
        DomainEvent::RollCallTaken(t) => {
            assert_eq!(t.entries[0].absence_id, a_absence, "a keeps their absence");
            assert_eq!(t.present_count, 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_absent_student_declared_by_a_guardian_confirms_the_declaration() {
    let k = class();
    let declared_id: AbsenceId = fresh();
    let declaration = Absence::fold(&[DomainEvent::AbsenceDeclared(AbsenceDeclared {
        absence_id: declared_id,
        student_id: k.a,
        start: at(16, 7, 0),
        end: at(16, 12, 0),
        reason: "orthodontiste".into(),
    })]);
    let events = take_roll_call(
        &k.course,
        &call(&k, vec![k.a], vec![]),
        &call_facts(&k, vec![declaration], vec![]),
    )
    .unwrap();
    assert!(reported(&events).is_empty(), "not duplicated");
    assert!(
        matches!(&events[0], DomainEvent::DeclaredAbsenceConfirmed(c) if c.absence_id == declared_id)
    );
    match events.last().unwrap() {
        DomainEvent::RollCallTaken(t) => assert!(t.entries[0].declared),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_motive_is_the_students_establishments_and_guardians_choose_only_theirs() {
    let est: EstablishmentId = fresh();
    let absence: AbsenceId = fresh();
    let student: StudentId = fresh();
    let motive = fresh();
    let facts = |usable: bool, of: EstablishmentId| MotiveFacts {
        motive: Some(MotiveSummary {
            establishment_id: of,
            usable_by_guardians: usable,
        }),
        establishment: Some(est),
    };
    assert!(give_motive(
        absence,
        student,
        None,
        &facts(true, est),
        ChosenBy::Guardian
    )
    .unwrap()
    .is_none());
    assert!(give_motive(
        absence,
        student,
        Some(motive),
        &facts(false, est),
        ChosenBy::Staff
    )
    .unwrap()
    .is_some());
    let staff_only = give_motive(
        absence,
        student,
        Some(motive),
        &facts(false, est),
        ChosenBy::Guardian,
    );
    assert!(Rejection::Invalid("motiveId").matches(&staff_only.unwrap_err()));
    let elsewhere = give_motive(
        absence,
        student,
        Some(motive),
        &facts(true, fresh()),
        ChosenBy::Staff,
    );
    assert!(Rejection::Invalid("motiveId").matches(&elsewhere.unwrap_err()));
    let unknown = MotiveFacts {
        motive: None,
        establishment: Some(est),
    };
    assert!(give_motive(absence, student, Some(motive), &unknown, ChosenBy::Staff).is_err());
}

#[test]
fn motive_codes_are_unique_per_establishment_and_holidays_well_formed() {
    let est: EstablishmentId = fresh();
    let created = DomainEvent::EstablishmentCreated(EstablishmentCreated {
        establishment_id: est,
        uai: registre_domain::Uai::parse("0750001A").unwrap(),
        name: "Collège".into(),
        time_zone: TimeZone::default(),
    });
    let define = DefineAbsenceReason {
        reason_id: fresh(),
        establishment_id: est,
        code: " CONV ".into(),
        label: "Convenance personnelle".into(),
        justifies: false,
        usable_by_guardians: true,
    };
    let (_, state) = given::<Calendar>([created])
        .when(|s| define_absence_reason(s, &define))
        .then_expect([DomainEvent::AbsenceReasonDefined(AbsenceReasonDefined {
            reason_id: define.reason_id,
            establishment_id: est,
            code: "CONV".into(),
            label: "Convenance personnelle".into(),
            justifies: false,
            usable_by_guardians: true,
        })]);
    let again = DefineAbsenceReason {
        reason_id: fresh(),
        code: "conv".into(),
        ..define.clone()
    };
    registre_domain::testing::given_state(state.clone())
        .when(|s| define_absence_reason(s, &again))
        .then_reject(Rejection::Conflict);
    nothing::<Calendar>()
        .when(|s| define_absence_reason(s, &define))
        .then_reject(Rejection::NotFound);
    let backwards = SetHolidays {
        establishment_id: est,
        holidays: vec![DateRange {
            from: day(20),
            to: day(10),
        }],
    };
    registre_domain::testing::given_state(state.clone())
        .when(|s| set_holidays(s, &backwards))
        .then_reject(Rejection::Invalid("holidays"));
    let two = SetHolidays {
        establishment_id: est,
        holidays: vec![
            DateRange {
                from: day(20),
                to: day(21),
            },
            DateRange {
                from: day(2),
                to: day(3),
            },
        ],
    };
    registre_domain::testing::given_state(state)
        .when(|s| set_holidays(s, &two))
        .then_expect([DomainEvent::HolidaysSet(HolidaysSet {
            establishment_id: est,
            holidays: vec![
                DateRange {
                    from: day(2),
                    to: day(3),
                },
                DateRange {
                    from: day(20),
                    to: day(21),
                },
            ],
        })]);
    let _ = absences::MINUTES_LATE_MAX;
}
