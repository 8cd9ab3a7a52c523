//! Homework invariants: assign, amend, withdraw; due dates in the
//! establishment's time zone.
#![allow(clippy::unwrap_used)]

use chrono::{NaiveDate, TimeZone as _, Utc};
use registre_domain::homework::*;
use registre_domain::testing::{fresh, given, given_state, nothing, Rejection};
use registre_domain::{events::*, DomainEvent};
use registre_domain::{ClassId, HomeworkId, PersonId, TimeZone};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
}

fn assign(due: NaiveDate) -> AssignHomework {
    AssignHomework {
        homework_id: fresh::<HomeworkId>(),
        class_id: fresh::<ClassId>(),
        teacher_id: fresh::<PersonId>(),
        subject: "Histoire-Géographie".into(),
        title: " Leçon 4 ".into(),
        description: "Apprendre la leçon.\r\nFaire la carte p. 58.".into(),
        due,
    }
}

fn facts(today: NaiveDate) -> HomeworkFacts {
    HomeworkFacts {
        class_exists: true,
        today,
        class_closed: None,
    }
}

fn assigned(due: NaiveDate, today: NaiveDate) -> (AssignHomework, Vec<DomainEvent>) {
    let cmd = assign(due);
    let events = assign_homework(&Homework::default(), &cmd, &facts(today)).unwrap();
    (cmd, events)
}

#[test]
fn homework_due_today_or_later_is_assigned() {
    for due in [day(2), day(9)] {
        let cmd = assign(due);
        nothing::<Homework>()
            .when(|s| assign_homework(s, &cmd, &facts(day(2))))
            .then_expect([DomainEvent::HomeworkAssigned(HomeworkAssigned {
                homework_id: cmd.homework_id,
                class_id: cmd.class_id,
                teacher_id: cmd.teacher_id,
                subject: "Histoire-Géographie".into(),
                title: "Leçon 4".into(),
                description: "Apprendre la leçon.\nFaire la carte p. 58.".into(),
                due,
                assigned_on: day(2),
            })]);
    }
}

#[test]
fn today_is_the_establishment_s_day() {
    // 22:30 UTC on 1 December is already 2 December in Réunion (UTC+4) but
    // still 1 December in Cayenne (UTC-3).
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 22, 30, 0).unwrap();
    let reunion = TimeZone::parse("Indian/Reunion").unwrap().today(now);
    let cayenne = TimeZone::parse("America/Cayenne").unwrap().today(now);
    assert_eq!((reunion, cayenne), (day(2), day(1)));
    let cmd = assign(day(1));
    nothing::<Homework>()
        .when(|s| assign_homework(s, &cmd, &facts(reunion)))
        .then_reject(Rejection::Invalid("due"));
    assert!(assign_homework(&Homework::default(), &cmd, &facts(cayenne)).is_ok());
}

#[test]
fn assignment_rejections() {
    let ok = facts(day(2));
    let cases = [
        (
            AssignHomework {
                subject: "".into(),
                ..assign(day(3))
            },
            "subject",
        ),
        (
            AssignHomework {
                title: " ".into(),
                ..assign(day(3))
            },
            "title",
        ),
        (
            AssignHomework {
                description: "x".repeat(10_001),
                ..assign(day(3))
            },
            "description",
        ),
        (
            AssignHomework {
                description: "bip\u{7}".into(),
                ..assign(day(3))
            },
            "description",
        ),
        (assign(day(1)), "due"),
    ];
    for (cmd, field) in cases {
        nothing::<Homework>()
            .when(|s| assign_homework(s, &cmd, &ok))
            .then_reject(Rejection::Invalid(field));
    }
    let cmd = assign(day(3));
    nothing::<Homework>()
        .when(|s| {
            assign_homework(
                s,
                &cmd,
                &HomeworkFacts {
                    class_exists: false,
                    today: day(2),
                    class_closed: None,
                },
            )
        })
        .then_reject(Rejection::NotFound);
    // A class of a closed school year takes no new homework (interop, issue 17).
    nothing::<Homework>()
        .when(|s| {
            assign_homework(
                s,
                &cmd,
                &HomeworkFacts {
                    class_closed: Some(("3A".into(), 2025)),
                    ..facts(day(2))
                },
            )
        })
        .then_reject(Rejection::Conflict);
    // An empty description is fine: the title may say it all.
    let terse = AssignHomework {
        description: "  ".into(),
        ..assign(day(3))
    };
    assert!(assign_homework(&Homework::default(), &terse, &ok).is_ok());
}

#[test]
fn amendments() {
    let (cmd, history) = assigned(day(5), day(2));
    let amend = AmendHomework {
        homework_id: cmd.homework_id,
        title: "Leçon 4 et 5".into(),
        description: "Apprendre les leçons.".into(),
        due: day(8),
        reason: Some("Oubli".into()),
    };
    let (_, state) = given::<Homework>(history.clone())
        .when(|s| amend_homework(s, &amend, &AmendFacts { today: day(3) }))
        .then_expect([DomainEvent::HomeworkAmended(HomeworkAmended {
            homework_id: cmd.homework_id,
            class_id: cmd.class_id,
            title: "Leçon 4 et 5".into(),
            description: "Apprendre les leçons.".into(),
            due: day(8),
            reason: Some("Oubli".into()),
        })]);
    assert_eq!(state.due, Some(day(8)));
    // Moving the due date into the past is refused...
    let past = AmendHomework {
        due: day(4),
        ..amend.clone()
    };
    given_state(state.clone())
        .when(|s| amend_homework(s, &past, &AmendFacts { today: day(6) }))
        .then_reject(Rejection::Invalid("due"));
    // ...but fixing a typo after the due date keeps the date and is fine.
    let typo = AmendHomework {
        title: "Leçons 4 et 5".into(),
        ..amend.clone()
    };
    assert!(amend_homework(&state, &typo, &AmendFacts { today: day(20) }).is_ok());
    // Changing nothing is refused.
    given_state(state.clone())
        .when(|s| amend_homework(s, &amend, &AmendFacts { today: day(3) }))
        .then_reject(Rejection::Invalid("homework"));
    let untitled = AmendHomework {
        title: "".into(),
        ..amend.clone()
    };
    given_state(state)
        .when(|s| amend_homework(s, &untitled, &AmendFacts { today: day(3) }))
        .then_reject(Rejection::Invalid("title"));
    nothing::<Homework>()
        .when(|s| amend_homework(s, &amend, &AmendFacts { today: day(3) }))
        .then_reject(Rejection::NotFound);
}

#[test]
fn withdrawal_needs_a_reason_and_happens_once() {
    let (cmd, history) = assigned(day(5), day(2));
    let withdraw = WithdrawHomework {
        homework_id: cmd.homework_id,
        reason: "Mauvaise classe".into(),
    };
    let (_, withdrawn) = given::<Homework>(history.clone())
        .when(|s| withdraw_homework(s, &withdraw))
        .then_expect([DomainEvent::HomeworkWithdrawn(HomeworkWithdrawn {
            homework_id: cmd.homework_id,
            class_id: cmd.class_id,
            reason: "Mauvaise classe".into(),
        })]);
    given_state(withdrawn.clone())
        .when(|s| withdraw_homework(s, &withdraw))
        .then_reject(Rejection::Conflict);
    let amend = AmendHomework {
        homework_id: cmd.homework_id,
        title: "Autre".into(),
        description: "".into(),
        due: day(5),
        reason: None,
    };
    given_state(withdrawn)
        .when(|s| amend_homework(s, &amend, &AmendFacts { today: day(3) }))
        .then_reject(Rejection::Conflict);
    let no_reason = WithdrawHomework {
        reason: "\n".into(),
        ..withdraw
    };
    given::<Homework>(history)
        .when(|s| withdraw_homework(s, &no_reason))
        .then_reject(Rejection::Invalid("reason"));
}
