//! Discipline decisions (issue 15): incidents, punishments, sanctions from
//! R511-13's closed list, their erasure day at the school-year boundaries,
//! and their erasure, early or on schedule.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use registre_domain::discipline::*;
use registre_domain::testing::{fresh, given_state, nothing, Rejection};
use registre_domain::{
    Aggregate, DomainEvent, EstablishmentId, IncidentId, PersonId, SanctionId, StudentId,
};

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap()
}

const LAW: ErasureDelays = ErasureDelays {
    warning: 0,
    reprimand: 1,
    responsibility_measure: 1,
    class_exclusion: 2,
    temporary_exclusion: 2,
};

#[test]
fn the_default_delays_are_the_laws() {
    assert_eq!(ErasureDelays::default(), LAW);
    assert_eq!(ErasureDelays::parse("").unwrap(), LAW);
}

/// Every kind, decided on the last day of a school year and on the first
/// day of the next: R511-13 in its version in force since September 2019.
#[test]
fn each_kind_leaves_the_record_at_the_end_of_its_school_year_or_a_later_one() {
    let years = SchoolYears::default();
    let cases = [
        (SanctionKind::Warning, Some(0)),
        (SanctionKind::Reprimand, Some(1)),
        (SanctionKind::ResponsibilityMeasure, Some(1)),
        (SanctionKind::ClassExclusion, Some(2)),
        (SanctionKind::TemporaryExclusion, Some(2)),
        (SanctionKind::PermanentExclusion, None),
    ];
    for (kind, n) in cases {
        for (decided, year_end) in [
            (day(2026, 8, 31), 2026),
            (day(2026, 9, 1), 2027),
            (day(2027, 1, 1), 2027),
            (day(2024, 2, 29), 2024),
        ] {
            assert_eq!(
                erasure_day(kind, decided, &LAW, &years),
                n.map(|n| day(year_end + n, 8, 31)),
                "{kind:?} decided on {decided}"
            );
        }
    }
}

#[test]
fn declared_school_years_replace_the_31_august_rule() {
    let years = SchoolYears {
        declared_ends: vec![day(2026, 7, 4), day(2027, 7, 3)],
    };
    assert_eq!(years.end_of_year_of(day(2026, 7, 4)), day(2026, 7, 4));
    assert_eq!(years.end_of_year_of(day(2026, 7, 5)), day(2027, 7, 3));
    assert_eq!(
        erasure_day(SanctionKind::Reprimand, day(2026, 3, 1), &LAW, &years),
        Some(day(2027, 7, 3))
    );
    // Beyond what was declared, the national rule again.
    assert_eq!(
        erasure_day(
            SanctionKind::TemporaryExclusion,
            day(2026, 3, 1),
            &LAW,
            &years
        ),
        Some(day(2028, 8, 31))
    );
}

#[test]
fn delays_are_configuration() {
    let d = ErasureDelays::parse("warning=1, TEMPORARY_EXCLUSION=3").unwrap();
    assert_eq!((d.warning, d.reprimand, d.temporary_exclusion), (1, 1, 3));
    assert_eq!(
        erasure_day(
            SanctionKind::Warning,
            day(2026, 9, 1),
            &d,
            &SchoolYears::default()
        ),
        Some(day(2028, 8, 31))
    );
    for bad in [
        "warning",
        "blame=1",
        "warning=-1",
        "warning=11",
        "permanent_exclusion=2",
    ] {
        assert!(ErasureDelays::parse(bad).is_err(), "{bad}");
    }
}

fn sanction_facts() -> SanctionFacts {
    SanctionFacts {
        establishment: Some(fresh::<EstablishmentId>()),
        incident: LinkedIncident::None,
        today: day(2026, 12, 2),
        school_years: SchoolYears::default(),
        delays: LAW,
    }
}

fn impose(kind: SanctionKind, days: Option<i64>, suspended: Option<i64>) -> ImposeSanction {
    ImposeSanction {
        sanction_id: fresh::<SanctionId>(),
        student_id: fresh::<StudentId>(),
        kind,
        reason: "Violences envers un camarade".into(),
        decided_on: day(2026, 12, 1),
        days,
        suspended_days: suspended,
        incident_id: None,
        decided_by: fresh::<PersonId>(),
    }
}

#[test]
fn a_sanction_is_imposed_with_its_erasure_day() {
    let facts = sanction_facts();
    let cmd = impose(SanctionKind::TemporaryExclusion, Some(8), Some(3));
    let (_, state) = nothing::<Sanction>()
        .when(|s| impose_sanction(s, &cmd, &facts))
        .then_expect([DomainEvent::SanctionImposed(SanctionImposed {
            sanction_id: cmd.sanction_id,
            student_id: cmd.student_id,
            establishment_id: facts.establishment.unwrap(),
            kind: SanctionKind::TemporaryExclusion,
            reason: "Violences envers un camarade".into(),
            decided_on: day(2026, 12, 1),
            days: Some(8),
            suspended_days: Some(3),
            incident_id: None,
            decided_by: cmd.decided_by,
            erased_on: Some(day(2029, 8, 31)),
        })]);
    assert_eq!(state.erased_on, Some(day(2029, 8, 31)));
    given_state(state)
        .when(|s| impose_sanction(s, &cmd, &facts))
        .then_reject(Rejection::Conflict);
}

#[test]
fn sanction_rejections() {
    let facts = sanction_facts();
    let reject = |cmd: ImposeSanction, facts: &SanctionFacts, why: Rejection| {
        nothing::<Sanction>()
            .when(|s| impose_sanction(s, &cmd, facts))
            .then_reject(why);
    };
    use SanctionKind::*;
    reject(
        impose(TemporaryExclusion, Some(9), None),
        &facts,
        Rejection::Invalid("days"),
    );
    reject(
        impose(ClassExclusion, Some(9), None),
        &facts,
        Rejection::Invalid("days"),
    );
    reject(
        impose(TemporaryExclusion, None, None),
        &facts,
        Rejection::Invalid("days"),
    );
    reject(
        impose(TemporaryExclusion, Some(0), None),
        &facts,
        Rejection::Invalid("days"),
    );
    reject(
        impose(ClassExclusion, Some(2), Some(3)),
        &facts,
        Rejection::Invalid("suspendedDays"),
    );
    reject(
        impose(Warning, Some(1), None),
        &facts,
        Rejection::Invalid("days"),
    );
    reject(
        impose(PermanentExclusion, None, Some(1)),
        &facts,
        Rejection::Invalid("suspendedDays"),
    );
    let mut blank = impose(Warning, None, None);
    blank.reason = "  ".into();
    reject(blank, &facts, Rejection::Invalid("reason"));
    let mut tomorrow = impose(Warning, None, None);
    tomorrow.decided_on = day(2026, 12, 3);
    reject(tomorrow, &facts, Rejection::Invalid("decidedOn"));
    let mut ancient = impose(Warning, None, None);
    ancient.decided_on = day(2021, 8, 31);
    reject(ancient, &facts, Rejection::Invalid("decidedOn"));
    let unknown = SanctionFacts {
        establishment: None,
        ..sanction_facts()
    };
    reject(impose(Warning, None, None), &unknown, Rejection::NotFound);
    let mut linked = impose(Warning, None, None);
    linked.incident_id = Some(fresh::<IncidentId>());
    reject(linked.clone(), &facts, Rejection::NotFound);
    let elsewhere = SanctionFacts {
        incident: LinkedIncident::Found {
            involves_student: false,
        },
        ..sanction_facts()
    };
    reject(linked, &elsewhere, Rejection::Invalid("incidentId"));
}

fn imposed(erased_on: Option<NaiveDate>) -> (SanctionId, Sanction) {
    let mut cmd = impose(SanctionKind::Reprimand, None, None);
    if erased_on.is_none() {
        cmd.kind = SanctionKind::PermanentExclusion;
    }
    let events = impose_sanction(&Sanction::default(), &cmd, &sanction_facts()).unwrap();
    let state = Sanction::fold(&events);
    assert_eq!(state.erased_on, erased_on);
    (cmd.sanction_id, state)
}

#[test]
fn a_sanction_is_erased_early_once_with_a_reason() {
    let (id, state) = imposed(Some(day(2028, 8, 31)));
    let early = EraseSanction {
        sanction_id: id,
        reason: "Changement d'établissement".into(),
        on_schedule: None,
    };
    let (_, erased) = given_state(state.clone())
        .when(|s| erase_sanction(s, &early))
        .then_expect([DomainEvent::SanctionErased(SanctionErased {
            sanction_id: id,
            student_id: state.student_id.unwrap(),
            early: true,
            reason: "Changement d'établissement".into(),
        })]);
    given_state(erased.clone())
        .when(|s| erase_sanction(s, &early))
        .then_reject(Rejection::Conflict);
    let blank = EraseSanction {
        reason: " ".into(),
        ..early.clone()
    };
    given_state(state)
        .when(|s| erase_sanction(s, &blank))
        .then_reject(Rejection::Invalid("reason"));
    nothing::<Sanction>()
        .when(|s| erase_sanction(s, &early))
        .then_reject(Rejection::NotFound);
}

#[test]
fn on_schedule_a_sanction_is_erased_from_its_day_and_once() {
    let (id, state) = imposed(Some(day(2028, 8, 31)));
    let on = |today: NaiveDate| EraseSanction {
        sanction_id: id,
        reason: "retention: R511-13".into(),
        on_schedule: Some(today),
    };
    given_state(state.clone())
        .when(|s| erase_sanction(s, &on(day(2028, 8, 30))))
        .then_reject(Rejection::Conflict);
    let student_id = state.student_id.unwrap();
    let (_, erased) = given_state(state)
        .when(|s| erase_sanction(s, &on(day(2028, 8, 31))))
        .then_expect([DomainEvent::SanctionErased(SanctionErased {
            sanction_id: id,
            student_id,
            early: false,
            reason: "retention: R511-13".into(),
        })]);
    given_state(erased)
        .when(|s| erase_sanction(s, &on(day(2028, 9, 1))))
        .then_nothing();
    // A permanent exclusion has no day: only the head erases it.
    let (id, permanent) = imposed(None);
    given_state(permanent)
        .when(|s| {
            erase_sanction(
                s,
                &EraseSanction {
                    sanction_id: id,
                    reason: "retention".into(),
                    on_schedule: Some(day(2099, 1, 1)),
                },
            )
        })
        .then_reject(Rejection::Conflict);
}

#[test]
fn an_incident_names_each_student_once_and_has_happened() {
    let establishment = fresh::<EstablishmentId>();
    let (s1, s2) = (fresh::<StudentId>(), fresh::<StudentId>());
    let cmd = ReportIncident {
        incident_id: fresh::<IncidentId>(),
        establishment_id: establishment,
        occurred_at: now() - chrono::Duration::hours(1),
        place: Some("  ".into()),
        description: "Bagarre à la cantine".into(),
        protagonists: vec![
            Protagonist {
                student_id: s1,
                role: ProtagonistRole::Author,
            },
            Protagonist {
                student_id: s2,
                role: ProtagonistRole::Victim,
            },
        ],
        reported_by: fresh::<PersonId>(),
    };
    let facts = IncidentFacts {
        establishment_exists: true,
        strangers: vec![],
        now: now(),
    };
    nothing::<Incident>()
        .when(|s| report_incident(s, &cmd, &facts))
        .then_expect([DomainEvent::IncidentReported(IncidentReported {
            incident_id: cmd.incident_id,
            establishment_id: establishment,
            occurred_at: cmd.occurred_at,
            place: None,
            description: "Bagarre à la cantine".into(),
            protagonists: cmd.protagonists.clone(),
            reported_by: cmd.reported_by,
        })]);
    let mut twice = cmd.clone();
    twice.protagonists[1].student_id = s1;
    nothing::<Incident>()
        .when(|s| report_incident(s, &twice, &facts))
        .then_reject(Rejection::Invalid("protagonists"));
    let mut later = cmd.clone();
    later.occurred_at = now() + chrono::Duration::minutes(5);
    nothing::<Incident>()
        .when(|s| report_incident(s, &later, &facts))
        .then_reject(Rejection::Invalid("occurredAt"));
    let strangers = IncidentFacts {
        strangers: vec![s2],
        ..facts.clone()
    };
    nothing::<Incident>()
        .when(|s| report_incident(s, &cmd, &strangers))
        .then_reject(Rejection::NotFound);
}

#[test]
fn a_punishment_has_a_due_day_exactly_when_its_kind_has_one() {
    let today = day(2026, 12, 2);
    let facts = PunishmentFacts {
        student_exists: true,
        incident: LinkedIncident::None,
        today,
    };
    let give = |kind: PunishmentKind, due_on: Option<NaiveDate>| GivePunishment {
        punishment_id: fresh(),
        student_id: fresh(),
        kind,
        reason: "Travail non fait".into(),
        due_on,
        incident_id: None,
        given_by: fresh(),
    };
    for kind in PunishmentKind::ALL {
        let (ok, bad) = if kind.has_due_date() {
            (Some(today), None)
        } else {
            (None, Some(today))
        };
        let cmd = give(kind, ok);
        nothing::<Punishment>()
            .when(|s| give_punishment(s, &cmd, &facts))
            .then_expect([DomainEvent::PunishmentGiven(PunishmentGiven {
                punishment_id: cmd.punishment_id,
                student_id: cmd.student_id,
                kind,
                reason: "Travail non fait".into(),
                due_on: ok,
                incident_id: None,
                given_by: cmd.given_by,
            })]);
        nothing::<Punishment>()
            .when(|s| give_punishment(s, &give(kind, bad), &facts))
            .then_reject(Rejection::Invalid("dueOn"));
    }
    nothing::<Punishment>()
        .when(|s| {
            give_punishment(
                s,
                &give(PunishmentKind::Detention, Some(day(2026, 12, 1))),
                &facts,
            )
        })
        .then_reject(Rejection::Invalid("dueOn"));
}
