//! The read model's part of interoperability (issue 17): a guardianship and
//! an assignment ended, a person and a class renamed, a class closed with
//! the year (its students of that year kept as they move on), and a name
//! given after an erasure staying erased.
#![allow(clippy::unwrap_used)]

use registre_domain::events::*;
use registre_domain::{
    ClassId, DomainEvent, EstablishmentId, PersonId, Role, StudentId, TimeZone, Uai,
};
use registre_projections::ReadModel;
use registre_store::{EventMetadata, RecordedEvent};

fn fold(events: &[DomainEvent]) -> ReadModel {
    let at = chrono::DateTime::parse_from_rfc3339("2027-08-30T08:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let recorded: Vec<RecordedEvent> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let encoded = e.encode();
            RecordedEvent {
                position: i as u64 + 1,
                stream_id: e.stream().into_string(),
                stream_version: 1,
                event_id: uuid::Uuid::from_u128(i as u128 + 1),
                event_type: encoded.event_type.into(),
                schema_version: encoded.schema_version,
                data: encoded.data,
                metadata: EventMetadata {
                    actor: None,
                    correlation_id: uuid::Uuid::nil(),
                    causation_id: None,
                    idempotency_key: None,
                    occurred_at: at,
                    reason: None,
                },
                recorded_at: at,
                hash: [0; 32],
                partition: None,
            }
        })
        .collect();
    let mut model = ReadModel::default();
    model.apply_all(&recorded).unwrap();
    model
}

#[test]
fn the_roster_follows_what_the_exports_stop_saying_and_the_year_turns() {
    let est = EstablishmentId(uuid::Uuid::from_u128(1));
    let (old, new) = (
        ClassId(uuid::Uuid::from_u128(2)),
        ClassId(uuid::Uuid::from_u128(3)),
    );
    let person = |ext: &str, name: &str, role: Role| {
        DomainEvent::PersonRegistered(PersonRegistered {
            person_id: PersonId::for_external_id(ext),
            external_id: ext.into(),
            display_name: name.into(),
            roles: vec![role],
            establishment_id: Some(est),
        })
    };
    let (pupil, parent, teacher) = (
        PersonId::for_external_id("ine"),
        PersonId::for_external_id("resp"),
        PersonId::for_external_id("sts"),
    );
    let student = StudentId::for_person(pupil);
    let class = |id, name: &str| {
        DomainEvent::ClassCreated(ClassCreated {
            class_id: id,
            establishment_id: est,
            name: name.into(),
        })
    };
    let enrol = |class_id| {
        DomainEvent::StudentEnrolled(StudentEnrolled {
            student_id: student,
            person_id: pupil,
            class_id,
        })
    };
    let mut events = vec![
        DomainEvent::EstablishmentCreated(EstablishmentCreated {
            establishment_id: est,
            uai: Uai::parse("0691234X").unwrap(),
            name: "Lycée Ampère".into(),
            time_zone: TimeZone::DEFAULT,
        }),
        class(old, "2NDE1"),
        person("ine", "Hélène RIVIÈRE", Role::Student),
        person("resp", "Marc RIVIÈRE", Role::Guardian),
        person("sts", "Mme DURAND", Role::Teacher),
        enrol(old),
        DomainEvent::GuardianLinked(GuardianLinked {
            student_id: student,
            guardian_id: parent,
        }),
        DomainEvent::TeacherAssigned(TeacherAssigned {
            class_id: old,
            teacher_id: teacher,
            subject: "Mathématiques".into(),
        }),
        DomainEvent::GuardianUnlinked(GuardianUnlinked {
            student_id: student,
            guardian_id: parent,
        }),
        DomainEvent::TeacherUnassigned(TeacherUnassigned {
            class_id: old,
            teacher_id: teacher,
            subject: "Mathématiques".into(),
        }),
        DomainEvent::PersonRenamed(PersonRenamed {
            person_id: pupil,
            display_name: "Zoë RIVIÈRE".into(),
        }),
        DomainEvent::ClassRenamed(ClassRenamed {
            class_id: old,
            name: "2NDE A".into(),
        }),
    ];
    let m = fold(&events);
    assert!(m.guardians_of(student).is_empty());
    assert!(m.children_of(parent).is_empty());
    assert!(!m.teaches(teacher, old, "Mathématiques"));
    assert_eq!(m.person(pupil).unwrap().display_name, "Zoë RIVIÈRE");
    assert_eq!(m.class(old).unwrap().name, "2NDE A");

    events.extend([
        DomainEvent::ClassClosed(ClassClosed {
            class_id: old,
            establishment_id: est,
            year: 2026,
        }),
        DomainEvent::SchoolYearStarted(SchoolYearStarted {
            establishment_id: est,
            year: 2027,
        }),
        class(new, "2NDE1"),
        enrol(new),
    ]);
    let m = fold(&events);
    assert_eq!(m.establishment(est).unwrap().school_year, Some(2027));
    let past = m.class(old).unwrap();
    let closed = past.closed.as_ref().unwrap();
    assert_eq!(closed.year, 2026);
    assert!(
        closed.students.contains(&student),
        "its year's students stay"
    );
    assert!(past.students.is_empty(), "nobody is in it now");
    assert!(m.class(new).unwrap().students.contains(&student));
    assert!(m.class(new).unwrap().closed.is_none());

    // A name given after the erasure stays erased.
    events.extend([
        DomainEvent::PersonErased(PersonErased {
            person_id: pupil,
            reason: "art. 17".into(),
        }),
        DomainEvent::PersonRenamed(PersonRenamed {
            person_id: pupil,
            display_name: "Zoë R.".into(),
        }),
    ]);
    let m = fold(&events);
    assert_eq!(
        m.person(pupil).unwrap().display_name,
        registre_store::ERASED
    );
}
