//! Roster invariants: establishments, classes, people, enrolment, guardians,
//! teaching assignments.
#![allow(clippy::unwrap_used)]

use registre_domain::roster::*;
use registre_domain::testing::{fresh, given, nothing, Rejection};
use registre_domain::{events::*, Aggregate, DomainEvent};
use registre_domain::{ClassId, EstablishmentId, PersonId, Role, StudentId, TimeZone, Uai};

fn create_est(tz: Option<&str>) -> CreateEstablishment {
    CreateEstablishment {
        establishment_id: fresh::<EstablishmentId>(),
        uai: " 0974567x ".into(),
        name: "  Collège Les Alizés ".into(),
        time_zone: tz.map(str::to_owned),
    }
}

#[test]
fn establishment_is_created_with_normalized_uai_and_default_zone() {
    let cmd = create_est(None);
    nothing::<Establishment>()
        .when(|s| create_establishment(s, &cmd, &EstablishmentFacts::default()))
        .then_expect([DomainEvent::EstablishmentCreated(EstablishmentCreated {
            establishment_id: cmd.establishment_id,
            uai: Uai::parse("0974567X").unwrap(),
            name: "Collège Les Alizés".into(),
            time_zone: TimeZone::parse("Europe/Paris").unwrap(),
        })]);
}

#[test]
fn establishment_accepts_overseas_zones() {
    for zone in [
        "Indian/Reunion",
        "America/Cayenne",
        "Pacific/Noumea",
        "Indian/Mayotte",
    ] {
        let cmd = create_est(Some(zone));
        let (events, _) = nothing::<Establishment>()
            .when(|s| create_establishment(s, &cmd, &EstablishmentFacts::default()))
            .then_expect([DomainEvent::EstablishmentCreated(EstablishmentCreated {
                establishment_id: cmd.establishment_id,
                uai: Uai::parse("0974567X").unwrap(),
                name: "Collège Les Alizés".into(),
                time_zone: TimeZone::parse(zone).unwrap(),
            })]);
        assert_eq!(events.len(), 1);
    }
}

#[test]
fn establishment_rejections() {
    let facts = EstablishmentFacts::default();
    for bad in [
        "075001A",
        "07500011",
        "0750001AB",
        "A750001A",
        "",
        "0750 01A",
    ] {
        let cmd = CreateEstablishment {
            uai: bad.into(),
            ..create_est(None)
        };
        nothing::<Establishment>()
            .when(|s| create_establishment(s, &cmd, &facts))
            .then_reject(Rejection::Invalid("uai"));
    }
    let cmd = create_est(Some("Europe/Pariss"));
    nothing::<Establishment>()
        .when(|s| create_establishment(s, &cmd, &facts))
        .then_reject(Rejection::Invalid("timeZone"));
    for name in ["   ", "Collège\u{0}", &"x".repeat(201)] {
        let cmd = CreateEstablishment {
            name: name.into(),
            ..create_est(None)
        };
        nothing::<Establishment>()
            .when(|s| create_establishment(s, &cmd, &facts))
            .then_reject(Rejection::Invalid("name"));
    }
    let cmd = create_est(None);
    nothing::<Establishment>()
        .when(|s| create_establishment(s, &cmd, &EstablishmentFacts { uai_taken: true }))
        .then_reject(Rejection::Conflict);
    let (_, created) = nothing::<Establishment>()
        .when(|s| create_establishment(s, &cmd, &facts))
        .then_expect(create_establishment(&Establishment::default(), &cmd, &facts).unwrap());
    assert_eq!(created.version(), 1);
    assert!(matches!(
        create_establishment(&created, &cmd, &facts),
        Err(registre_domain::DomainError::Conflict(_))
    ));
}

#[test]
fn class_needs_an_existing_establishment_a_name_and_a_free_name() {
    let cmd = CreateClass {
        class_id: fresh::<ClassId>(),
        establishment_id: fresh::<EstablishmentId>(),
        name: " 4e B ".into(),
    };
    let ok = ClassFacts {
        establishment_exists: true,
        name_taken: false,
    };
    nothing::<Class>()
        .when(|s| create_class(s, &cmd, &ok))
        .then_expect([DomainEvent::ClassCreated(ClassCreated {
            class_id: cmd.class_id,
            establishment_id: cmd.establishment_id,
            name: "4e B".into(),
        })]);
    nothing::<Class>()
        .when(|s| create_class(s, &cmd, &ClassFacts::default()))
        .then_reject(Rejection::NotFound);
    nothing::<Class>()
        .when(|s| {
            create_class(
                s,
                &cmd,
                &ClassFacts {
                    name_taken: true,
                    ..ok.clone()
                },
            )
        })
        .then_reject(Rejection::Conflict);
    let blank = CreateClass {
        name: "\t".into(),
        ..cmd.clone()
    };
    nothing::<Class>()
        .when(|s| create_class(s, &blank, &ok))
        .then_reject(Rejection::Invalid("name"));
    let existing = create_class(&Class::default(), &cmd, &ok).unwrap();
    given::<Class>(existing)
        .when(|s| create_class(s, &cmd, &ok))
        .then_reject(Rejection::Conflict);
}

fn register(ext: &str, roles: &[Role], est: Option<EstablishmentId>) -> RegisterPerson {
    RegisterPerson {
        external_id: ext.into(),
        display_name: " Mme Hoarau ".into(),
        roles: roles.to_vec(),
        establishment_id: est,
    }
}

#[test]
fn person_id_derives_from_external_id_and_roles_are_sorted_unique() {
    let est = fresh::<EstablishmentId>();
    let cmd = register(
        "ent|4321",
        &[Role::Guardian, Role::Teacher, Role::Guardian],
        Some(est),
    );
    nothing::<Person>()
        .when(|s| {
            register_person(
                s,
                &cmd,
                &PersonFacts {
                    establishment_exists: true,
                },
            )
        })
        .then_expect([DomainEvent::PersonRegistered(PersonRegistered {
            person_id: PersonId::for_external_id("ent|4321"),
            external_id: "ent|4321".into(),
            display_name: "Mme Hoarau".into(),
            roles: vec![Role::Teacher, Role::Guardian],
            establishment_id: Some(est),
        })]);
}

#[test]
fn person_rejections() {
    let est = fresh::<EstablishmentId>();
    let exists = PersonFacts {
        establishment_exists: true,
    };
    for ext in ["", " padded", "tab\there", &"x".repeat(256)] {
        let cmd = register(ext, &[Role::Guardian], None);
        nothing::<Person>()
            .when(|s| register_person(s, &cmd, &exists))
            .then_reject(Rejection::Invalid("externalId"));
    }
    let cmd = RegisterPerson {
        display_name: " ".into(),
        ..register("a", &[Role::Guardian], None)
    };
    nothing::<Person>()
        .when(|s| register_person(s, &cmd, &exists))
        .then_reject(Rejection::Invalid("displayName"));
    let cmd = register("a", &[], None);
    nothing::<Person>()
        .when(|s| register_person(s, &cmd, &exists))
        .then_reject(Rejection::Invalid("roles"));
    for role in [Role::Head, Role::EducationStaff, Role::Teacher] {
        let cmd = register("a", &[Role::Guardian, role], None);
        nothing::<Person>()
            .when(|s| register_person(s, &cmd, &exists))
            .then_reject(Rejection::Invalid("establishmentId"));
    }
    let cmd = register("a", &[Role::Teacher], Some(est));
    nothing::<Person>()
        .when(|s| register_person(s, &cmd, &PersonFacts::default()))
        .then_reject(Rejection::NotFound);
    // Guardians, students, admins and auditors need no establishment.
    for role in [Role::Guardian, Role::Student, Role::Admin, Role::Auditor] {
        let cmd = register("a", &[role], None);
        nothing::<Person>()
            .when(|s| register_person(s, &cmd, &PersonFacts::default()))
            .then_expect(
                register_person(&Person::default(), &cmd, &PersonFacts::default()).unwrap(),
            );
    }
    // The same externalId twice: the stream exists.
    let cmd = register("a", &[Role::Guardian], None);
    let first = register_person(&Person::default(), &cmd, &exists).unwrap();
    given::<Person>(first)
        .when(|s| register_person(s, &cmd, &exists))
        .then_reject(Rejection::Conflict);
}

fn summary(roles: &[Role], est: Option<EstablishmentId>) -> Option<PersonSummary> {
    Some(PersonSummary {
        roles: roles.to_vec(),
        establishment_id: est,
    })
}

#[test]
fn enrolment_creates_then_moves_and_is_idempotent_in_the_same_class() {
    let person = fresh::<PersonId>();
    let (a, b) = (fresh::<ClassId>(), fresh::<ClassId>());
    let facts = EnrolmentFacts {
        person: summary(&[Role::Student], None),
        class_exists: true,
        class_closed: None,
    };
    let into_a = EnrollStudent {
        person_id: person,
        class_id: a,
    };
    let student = StudentId::for_person(person);
    let (_, state) = nothing::<Student>()
        .when(|s| enroll_student(s, &into_a, &facts))
        .then_expect([DomainEvent::StudentEnrolled(StudentEnrolled {
            student_id: student,
            person_id: person,
            class_id: a,
        })]);
    assert_eq!(state.class_id, Some(a));
    let enrolled = vec![DomainEvent::StudentEnrolled(StudentEnrolled {
        student_id: student,
        person_id: person,
        class_id: a,
    })];
    given::<Student>(enrolled.clone())
        .when(|s| enroll_student(s, &into_a, &facts))
        .then_nothing();
    let into_b = EnrollStudent {
        person_id: person,
        class_id: b,
    };
    let (_, moved) = given::<Student>(enrolled)
        .when(|s| enroll_student(s, &into_b, &facts))
        .then_expect([DomainEvent::StudentEnrolled(StudentEnrolled {
            student_id: student,
            person_id: person,
            class_id: b,
        })]);
    assert_eq!((moved.class_id, moved.version()), (Some(b), 2));
}

#[test]
fn enrolment_rejections() {
    let cmd = EnrollStudent {
        person_id: fresh::<PersonId>(),
        class_id: fresh::<ClassId>(),
    };
    nothing::<Student>()
        .when(|s| {
            enroll_student(
                s,
                &cmd,
                &EnrolmentFacts {
                    person: None,
                    class_exists: true,
                    class_closed: None,
                },
            )
        })
        .then_reject(Rejection::NotFound);
    nothing::<Student>()
        .when(|s| {
            enroll_student(
                s,
                &cmd,
                &EnrolmentFacts {
                    person: summary(&[Role::Guardian, Role::Teacher], None),
                    class_exists: true,
                    class_closed: None,
                },
            )
        })
        .then_reject(Rejection::Invalid("personId"));
    nothing::<Student>()
        .when(|s| {
            enroll_student(
                s,
                &cmd,
                &EnrolmentFacts {
                    person: summary(&[Role::Student], None),
                    class_exists: false,
                    class_closed: None,
                },
            )
        })
        .then_reject(Rejection::NotFound);
}

fn enrolled(person: PersonId) -> Vec<DomainEvent> {
    vec![DomainEvent::StudentEnrolled(StudentEnrolled {
        student_id: StudentId::for_person(person),
        person_id: person,
        class_id: fresh::<ClassId>(),
    })]
}

#[test]
fn guardian_link_and_its_rejections() {
    let pupil = fresh::<PersonId>();
    let student = StudentId::for_person(pupil);
    let parent = fresh::<PersonId>();
    let cmd = LinkGuardian {
        student_id: student,
        guardian_id: parent,
    };
    let guardian = GuardianFacts {
        guardian: summary(&[Role::Teacher, Role::Guardian], None),
    };
    let (_, linked) = given::<Student>(enrolled(pupil))
        .when(|s| link_guardian(s, &cmd, &guardian))
        .then_expect([DomainEvent::GuardianLinked(GuardianLinked {
            student_id: student,
            guardian_id: parent,
        })]);
    assert_eq!(linked.guardians, vec![parent]);
    assert!(matches!(
        link_guardian(&linked, &cmd, &guardian),
        Err(registre_domain::DomainError::Conflict(_))
    ));
    nothing::<Student>()
        .when(|s| link_guardian(s, &cmd, &guardian))
        .then_reject(Rejection::NotFound);
    given::<Student>(enrolled(pupil))
        .when(|s| link_guardian(s, &cmd, &GuardianFacts { guardian: None }))
        .then_reject(Rejection::NotFound);
    given::<Student>(enrolled(pupil))
        .when(|s| {
            link_guardian(
                s,
                &cmd,
                &GuardianFacts {
                    guardian: summary(&[Role::Teacher], None),
                },
            )
        })
        .then_reject(Rejection::Invalid("guardianId"));
    let self_link = LinkGuardian {
        student_id: student,
        guardian_id: pupil,
    };
    given::<Student>(enrolled(pupil))
        .when(|s| link_guardian(s, &self_link, &guardian))
        .then_reject(Rejection::Invalid("guardianId"));
}

#[test]
fn teaching_assignment_and_its_rejections() {
    let est = fresh::<EstablishmentId>();
    let class = fresh::<ClassId>();
    let teacher = fresh::<PersonId>();
    let history = vec![DomainEvent::ClassCreated(ClassCreated {
        class_id: class,
        establishment_id: est,
        name: "6e A".into(),
    })];
    let cmd = AssignTeacher {
        class_id: class,
        teacher_id: teacher,
        subject: " Mathématiques ".into(),
    };
    let ok = AssignmentFacts {
        teacher: summary(&[Role::Teacher], Some(est)),
    };
    let (_, state) = given::<Class>(history.clone())
        .when(|s| assign_teacher(s, &cmd, &ok))
        .then_expect([DomainEvent::TeacherAssigned(TeacherAssigned {
            class_id: class,
            teacher_id: teacher,
            subject: "Mathématiques".into(),
        })]);
    assert!(state.teaches(teacher, "mathématiques"));
    // Twice, even with different case: a conflict.
    let again = AssignTeacher {
        subject: "MATHÉMATIQUES".into(),
        ..cmd.clone()
    };
    assert!(matches!(
        assign_teacher(&state, &again, &ok),
        Err(registre_domain::DomainError::Conflict(_))
    ));
    // Another subject is fine.
    let physics = AssignTeacher {
        subject: "Physique-Chimie".into(),
        ..cmd.clone()
    };
    assert_eq!(
        assign_teacher(&state, &physics, &ok).map(|e| e.len()),
        Ok(1)
    );

    nothing::<Class>()
        .when(|s| assign_teacher(s, &cmd, &ok))
        .then_reject(Rejection::NotFound);
    given::<Class>(history.clone())
        .when(|s| assign_teacher(s, &cmd, &AssignmentFacts { teacher: None }))
        .then_reject(Rejection::NotFound);
    given::<Class>(history.clone())
        .when(|s| {
            assign_teacher(
                s,
                &cmd,
                &AssignmentFacts {
                    teacher: summary(&[Role::Guardian], Some(est)),
                },
            )
        })
        .then_reject(Rejection::Invalid("teacherId"));
    given::<Class>(history.clone())
        .when(|s| {
            assign_teacher(
                s,
                &cmd,
                &AssignmentFacts {
                    teacher: summary(&[Role::Teacher], Some(fresh::<EstablishmentId>())),
                },
            )
        })
        .then_reject(Rejection::Invalid("teacherId"));
    let blank = AssignTeacher {
        subject: "  ".into(),
        ..cmd
    };
    given::<Class>(history)
        .when(|s| assign_teacher(s, &blank, &ok))
        .then_reject(Rejection::Invalid("subject"));
}

#[test]
fn states_snapshot_and_restore() {
    let cmd = EnrollStudent {
        person_id: fresh::<PersonId>(),
        class_id: fresh::<ClassId>(),
    };
    let facts = EnrolmentFacts {
        person: summary(&[Role::Student], None),
        class_exists: true,
        class_closed: None,
    };
    let (_, state) = nothing::<Student>()
        .when(|s| enroll_student(s, &cmd, &facts))
        .then_expect(enroll_student(&Student::default(), &cmd, &facts).unwrap());
    let json = serde_json::to_string(&state).unwrap();
    let back: Student = serde_json::from_str(&json).unwrap();
    assert_eq!(back, state);
}

// ---- Account closure and erasure ----------------------------------------------

fn registered(ext: &str) -> (PersonId, DomainEvent) {
    let id = PersonId::for_external_id(ext);
    let event = DomainEvent::PersonRegistered(PersonRegistered {
        person_id: id,
        external_id: ext.into(),
        display_name: "Inès Durand".into(),
        roles: vec![Role::Student],
        establishment_id: None,
    });
    (id, event)
}

fn closing(person: PersonId, day: u32, reason: &str) -> CloseAccount {
    CloseAccount {
        person_id: person,
        effective_on: chrono::NaiveDate::from_ymd_opt(2026, 7, day).unwrap(),
        reason: reason.into(),
    }
}

#[test]
fn an_account_is_closed_once_with_a_date_and_a_reason() {
    let (p, reg) = registered("eleve-parti");
    let cmd = closing(p, 4, "  Départ de l'établissement ");
    let (_, closed) = given::<Person>([reg])
        .when(|s| close_account(s, &cmd))
        .then_expect([DomainEvent::AccountClosed(AccountClosed {
            person_id: p,
            effective_on: cmd.effective_on,
            reason: "Départ de l'établissement".into(),
        })]);
    assert_eq!(closed.closed_on, Some(cmd.effective_on));
    // A second closure, even with another date, would move the start of the
    // retention period: refused.
    registre_domain::testing::given_state(closed)
        .when(|s| close_account(s, &closing(p, 20, "autre")))
        .then_reject(Rejection::Conflict);
}

#[test]
fn closing_needs_a_registered_person_and_a_reason_and_no_erasure() {
    let (p, reg) = registered("eleve-x");
    nothing::<Person>()
        .when(|s| close_account(s, &closing(p, 4, "départ")))
        .then_reject(Rejection::NotFound);
    given::<Person>([reg.clone()])
        .when(|s| close_account(s, &closing(p, 4, "   ")))
        .then_reject(Rejection::Invalid("reason"));
    let erased = DomainEvent::PersonErased(PersonErased {
        person_id: p,
        reason: "demande RGPD".into(),
    });
    given::<Person>([reg, erased])
        .when(|s| close_account(s, &closing(p, 4, "départ")))
        .then_reject(Rejection::Conflict);
}

#[test]
fn erasure_is_logged_once_and_needs_a_reason() {
    let (p, reg) = registered("eleve-y");
    let cmd = ErasePerson {
        person_id: p,
        reason: " Rétention : compte fermé depuis plus de 90 jours ".into(),
    };
    let (_, erased) = given::<Person>([reg.clone()])
        .when(|s| erase_person(s, &cmd))
        .then_expect([DomainEvent::PersonErased(PersonErased {
            person_id: p,
            reason: "Rétention : compte fermé depuis plus de 90 jours".into(),
        })]);
    assert!(erased.erased);
    // Idempotent: a second run of the retention rule writes nothing.
    registre_domain::testing::given_state(erased)
        .when(|s| erase_person(s, &cmd))
        .then_nothing();
    given::<Person>([reg])
        .when(|s| {
            erase_person(
                s,
                &ErasePerson {
                    person_id: p,
                    reason: "".into(),
                },
            )
        })
        .then_reject(Rejection::Invalid("reason"));
    nothing::<Person>()
        .when(|s| erase_person(s, &cmd))
        .then_reject(Rejection::NotFound);
}
