//! Account closure in the read model: the fold records the departure day,
//! the account retention rule counts days in the person's establishment's
//! calendar, an erased person is no longer due, and people without a
//! departure serialise exactly as before (golden snapshots stay unchanged).
#![allow(clippy::unwrap_used)]

use chrono::{NaiveDate, TimeZone as _, Utc};
use registre_domain::events::{AccountClosed, PersonErased};
use registre_domain::DomainEvent;
use registre_projections::ReadModel;
use registre_replay_tests::school::person;
use registre_replay_tests::{golden_dir, line_of, read_golden, to_recorded};

#[test]
fn departures_are_folded_and_counted_in_the_establishment_calendar() {
    let mut lines = read_golden(&golden_dir().join("school.jsonl")).unwrap();
    let at = Utc.with_ymd_and_hms(2026, 4, 1, 10, 0, 0).unwrap();
    let april_first = NaiveDate::from_ymd_opt(2026, 4, 1).unwrap();
    // Noah is at the lycée in La Réunion (UTC+4), Lucas at the collège in Paris.
    for who in ["e.noah", "e.lucas"] {
        let position = lines.len() as u64 + 1;
        lines.push(line_of(
            position,
            at,
            None,
            Some("départ".into()),
            &DomainEvent::AccountClosed(AccountClosed {
                person_id: person(who),
                effective_on: april_first,
                reason: "départ".into(),
            }),
        ));
    }
    let mut m = ReadModel::new();
    m.apply_all(&to_recorded(&lines)).unwrap();
    assert_eq!(
        m.person(person("e.noah")).unwrap().account_closed_on,
        Some(april_first)
    );

    // 2026-06-29 20:30 UTC is already June 30 in La Réunion (90 days after
    // April 1st) but still June 29 in Paris (89 days).
    let now = Utc.with_ymd_and_hms(2026, 6, 29, 20, 30, 0).unwrap();
    assert_eq!(m.accounts_past_retention(now, 90), [person("e.noah")]);
    assert_eq!(m.accounts_past_retention(now, 91), []);

    let position = lines.len() as u64 + 1;
    let erased = line_of(
        position,
        now,
        None,
        Some("retention".into()),
        &DomainEvent::PersonErased(PersonErased {
            person_id: person("e.noah"),
            reason: "retention".into(),
        }),
    );
    m.apply_all(&to_recorded(&[erased])).unwrap();
    let noah = m.person(person("e.noah")).unwrap();
    assert!(noah.erased);
    assert_eq!(noah.display_name, registre_store::ERASED);
    let later = Utc.with_ymd_and_hms(2026, 7, 1, 0, 0, 0).unwrap();
    assert_eq!(m.accounts_past_retention(later, 90), [person("e.lucas")]);

    // Someone who never left serialises without the new fields.
    let hugo = serde_json::to_value(m.person(person("e.hugo")).unwrap()).unwrap();
    assert!(
        hugo.get("accountClosedOn").is_none() && hugo.get("erased").is_none(),
        "{hugo}"
    );
    let lucas = serde_json::to_value(m.person(person("e.lucas")).unwrap()).unwrap();
    assert_eq!(lucas["accountClosedOn"], "2026-04-01");
}
