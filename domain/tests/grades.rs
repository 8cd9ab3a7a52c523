//! Grade invariants: assessments, one grade per student, score bounds,
//! enrolment, corrections.
#![allow(clippy::unwrap_used)]

use chrono::NaiveDate;
use proptest::prelude::*;
use registre_domain::grades::*;
use registre_domain::testing::{fresh, given, nothing, Rejection};
use registre_domain::{events::*, DomainEvent};
use registre_domain::{AssessmentId, ClassId, GradeId, GradeStatus, PersonId, StudentId};

fn create(class: ClassId) -> CreateAssessment {
    CreateAssessment {
        assessment_id: fresh::<AssessmentId>(),
        class_id: class,
        teacher_id: fresh::<PersonId>(),
        subject: " Français ".into(),
        title: "Dictée n°3".into(),
        date: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        coefficient: 1.5,
        out_of: 20.0,
    }
}

fn created(class: ClassId) -> (AssessmentId, Vec<DomainEvent>) {
    let cmd = create(class);
    let events = create_assessment(
        &Assessment::default(),
        &cmd,
        &AssessmentFacts {
            class_exists: true,
            class_closed: None,
        },
    )
    .unwrap();
    (cmd.assessment_id, events)
}

#[test]
fn assessment_is_created() {
    let cmd = create(fresh::<ClassId>());
    nothing::<Assessment>()
        .when(|s| {
            create_assessment(
                s,
                &cmd,
                &AssessmentFacts {
                    class_exists: true,
                    class_closed: None,
                },
            )
        })
        .then_expect([DomainEvent::AssessmentCreated(AssessmentCreated {
            assessment_id: cmd.assessment_id,
            class_id: cmd.class_id,
            teacher_id: cmd.teacher_id,
            subject: "Français".into(),
            title: "Dictée n°3".into(),
            date: cmd.date,
            coefficient: 1.5,
            out_of: 20.0,
        })]);
}

#[test]
fn assessment_rejections() {
    let ok = AssessmentFacts {
        class_exists: true,
        class_closed: None,
    };
    let base = create(fresh::<ClassId>());
    let cases: Vec<(CreateAssessment, Rejection)> = vec![
        (
            CreateAssessment {
                subject: " ".into(),
                ..base.clone()
            },
            Rejection::Invalid("subject"),
        ),
        (
            CreateAssessment {
                title: "".into(),
                ..base.clone()
            },
            Rejection::Invalid("title"),
        ),
        (
            CreateAssessment {
                coefficient: 0.0,
                ..base.clone()
            },
            Rejection::Invalid("coefficient"),
        ),
        (
            CreateAssessment {
                coefficient: -1.0,
                ..base.clone()
            },
            Rejection::Invalid("coefficient"),
        ),
        (
            CreateAssessment {
                coefficient: f64::NAN,
                ..base.clone()
            },
            Rejection::Invalid("coefficient"),
        ),
        (
            CreateAssessment {
                coefficient: f64::INFINITY,
                ..base.clone()
            },
            Rejection::Invalid("coefficient"),
        ),
        (
            CreateAssessment {
                out_of: 0.0,
                ..base.clone()
            },
            Rejection::Invalid("outOf"),
        ),
        (
            CreateAssessment {
                out_of: -20.0,
                ..base.clone()
            },
            Rejection::Invalid("outOf"),
        ),
        (
            CreateAssessment {
                out_of: f64::NAN,
                ..base.clone()
            },
            Rejection::Invalid("outOf"),
        ),
        (
            CreateAssessment {
                out_of: f64::INFINITY,
                ..base.clone()
            },
            Rejection::Invalid("outOf"),
        ),
    ];
    for (cmd, rejection) in cases {
        nothing::<Assessment>()
            .when(|s| create_assessment(s, &cmd, &ok))
            .then_reject(rejection);
    }
    nothing::<Assessment>()
        .when(|s| {
            create_assessment(
                s,
                &base,
                &AssessmentFacts {
                    class_exists: false,
                    class_closed: None,
                },
            )
        })
        .then_reject(Rejection::NotFound);
    let existing = create_assessment(&Assessment::default(), &base, &ok).unwrap();
    given::<Assessment>(existing)
        .when(|s| create_assessment(s, &base, &ok))
        .then_reject(Rejection::Conflict);
}

fn record(
    assessment: AssessmentId,
    student: StudentId,
    score: Option<f64>,
    status: GradeStatus,
) -> RecordGrade {
    RecordGrade {
        assessment_id: assessment,
        student_id: student,
        score,
        status,
    }
}

#[test]
fn a_grade_is_recorded_once_per_student() {
    let class = fresh::<ClassId>();
    let (assessment, history) = created(class);
    let student = fresh::<StudentId>();
    let facts = GradeFacts {
        student_class: Some(class),
    };
    let cmd = record(assessment, student, Some(14.5), GradeStatus::Graded);
    let expected = DomainEvent::GradeRecorded(GradeRecorded {
        grade_id: GradeId::for_pair(assessment, student),
        assessment_id: assessment,
        student_id: student,
        score: Some(14.5),
        status: GradeStatus::Graded,
    });
    let (_, state) = given::<Assessment>(history.clone())
        .when(|s| record_grade(s, &cmd, &facts))
        .then_expect([expected.clone()]);
    // A second grade for the pair, even with another status, is a conflict.
    let again = record(assessment, student, None, GradeStatus::Absent);
    assert!(matches!(
        record_grade(&state, &again, &facts),
        Err(registre_domain::DomainError::Conflict(_))
    ));
    // Another student of the class is independent.
    let other = record(
        assessment,
        fresh::<StudentId>(),
        None,
        GradeStatus::NotSubmitted,
    );
    assert_eq!(record_grade(&state, &other, &facts).map(|e| e.len()), Ok(1));
}

#[test]
fn grade_rejections() {
    let class = fresh::<ClassId>();
    let (assessment, history) = created(class);
    let student = fresh::<StudentId>();
    let enrolled = GradeFacts {
        student_class: Some(class),
    };
    for (score, status, field) in [
        (None, GradeStatus::Graded, "score"),
        (Some(-0.5), GradeStatus::Graded, "score"),
        (Some(20.01), GradeStatus::Graded, "score"),
        (Some(f64::NAN), GradeStatus::Graded, "score"),
        (Some(12.0), GradeStatus::Absent, "score"),
        (Some(0.0), GradeStatus::Exempt, "score"),
        (Some(3.0), GradeStatus::NotSubmitted, "score"),
    ] {
        let cmd = record(assessment, student, score, status);
        given::<Assessment>(history.clone())
            .when(|s| record_grade(s, &cmd, &enrolled))
            .then_reject(Rejection::Invalid(field));
    }
    let cmd = record(assessment, student, Some(10.0), GradeStatus::Graded);
    given::<Assessment>(history.clone())
        .when(|s| {
            record_grade(
                s,
                &cmd,
                &GradeFacts {
                    student_class: Some(fresh::<ClassId>()),
                },
            )
        })
        .then_reject(Rejection::Invalid("studentId"));
    given::<Assessment>(history)
        .when(|s| {
            record_grade(
                s,
                &cmd,
                &GradeFacts {
                    student_class: None,
                },
            )
        })
        .then_reject(Rejection::NotFound);
    nothing::<Assessment>()
        .when(|s| record_grade(s, &cmd, &enrolled))
        .then_reject(Rejection::NotFound);
}

fn graded(class: ClassId, student: StudentId, score: f64) -> (AssessmentId, Vec<DomainEvent>) {
    let (assessment, mut history) = created(class);
    let state = registre_domain::Aggregate::fold(&history);
    history.extend(
        record_grade(
            &state,
            &record(assessment, student, Some(score), GradeStatus::Graded),
            &GradeFacts {
                student_class: Some(class),
            },
        )
        .unwrap(),
    );
    (assessment, history)
}

#[test]
fn a_correction_keeps_the_earlier_value_and_needs_a_reason() {
    let class = fresh::<ClassId>();
    let student = fresh::<StudentId>();
    let (assessment, history) = graded(class, student, 8.0);
    let grade_id = GradeId::for_pair(assessment, student);
    let cmd = CorrectGrade {
        grade_id,
        score: None,
        status: GradeStatus::Exempt,
        reason: " Certificat médical reçu ".into(),
    };
    let (_, state) = given::<Assessment>(history.clone())
        .when(|s| correct_grade(s, &cmd))
        .then_expect([DomainEvent::GradeCorrected(GradeCorrected {
            grade_id,
            assessment_id: assessment,
            student_id: student,
            previous_score: Some(8.0),
            previous_status: GradeStatus::Graded,
            score: None,
            status: GradeStatus::Exempt,
            reason: "Certificat médical reçu".into(),
        })]);
    let current = &state.grades[&grade_id];
    assert_eq!((current.score, current.status), (None, GradeStatus::Exempt));

    let no_reason = CorrectGrade {
        reason: " \n ".into(),
        ..cmd.clone()
    };
    given::<Assessment>(history.clone())
        .when(|s| correct_grade(s, &no_reason))
        .then_reject(Rejection::Invalid("reason"));
    let unchanged = CorrectGrade {
        score: Some(8.0),
        status: GradeStatus::Graded,
        ..cmd.clone()
    };
    given::<Assessment>(history.clone())
        .when(|s| correct_grade(s, &unchanged))
        .then_reject(Rejection::Invalid("score"));
    let out_of_range = CorrectGrade {
        score: Some(21.0),
        status: GradeStatus::Graded,
        ..cmd.clone()
    };
    given::<Assessment>(history.clone())
        .when(|s| correct_grade(s, &out_of_range))
        .then_reject(Rejection::Invalid("score"));
    let unknown = CorrectGrade {
        grade_id: fresh::<GradeId>(),
        ..cmd
    };
    given::<Assessment>(history)
        .when(|s| correct_grade(s, &unknown))
        .then_reject(Rejection::NotFound);
}

proptest! {
    #[test]
    fn any_score_within_zero_and_out_of_is_accepted(out_of in 0.5f64..=1000.0, fraction in 0.0f64..=1.0) {
        let class = fresh::<ClassId>();
        let cmd = CreateAssessment { out_of, ..create(class) };
        let history = create_assessment(&Assessment::default(), &cmd, &AssessmentFacts { class_exists: true, class_closed: None }).unwrap();
        let state: Assessment = registre_domain::Aggregate::fold(&history);
        let score = (out_of * fraction).min(out_of);
        let grade = record(cmd.assessment_id, fresh::<StudentId>(), Some(score), GradeStatus::Graded);
        let events = record_grade(&state, &grade, &GradeFacts { student_class: Some(class) });
        prop_assert!(matches!(&events, Ok(e) if e.len() == 1), "{score} of {out_of}: {events:?}");
    }

    #[test]
    fn any_score_outside_zero_and_out_of_is_rejected(
        out_of in 0.5f64..=1000.0,
        beyond in prop_oneof![(1e-9f64..1e6).prop_map(|d| -d), (1e-6f64..1e6)],
    ) {
        let class = fresh::<ClassId>();
        let cmd = CreateAssessment { out_of, ..create(class) };
        let history = create_assessment(&Assessment::default(), &cmd, &AssessmentFacts { class_exists: true, class_closed: None }).unwrap();
        let state: Assessment = registre_domain::Aggregate::fold(&history);
        let score = if beyond < 0.0 { beyond } else { out_of + beyond };
        let grade = record(cmd.assessment_id, fresh::<StudentId>(), Some(score), GradeStatus::Graded);
        let result = record_grade(&state, &grade, &GradeFacts { student_class: Some(class) });
        prop_assert!(Rejection::Invalid("score").matches(&result.unwrap_err()));
    }
}
