//! A small given/when/then harness for decisions, public so that other crates'
//! tests can use it too. No database: the state is folded from the given
//! events, the decision runs, and the outcome is compared.
//!
//! ```
//! use registre_domain::grades::{record_grade, GradeFacts, RecordGrade};
//! use registre_domain::testing::{fresh, given, samples, Rejection};
//! use registre_domain::{DomainEvent, GradeStatus};
//!
//! let created = samples().into_iter().find(|e| e.event_type() == "AssessmentCreated").expect("sample");
//! let DomainEvent::AssessmentCreated(a) = &created else { unreachable!() };
//! let cmd = RecordGrade {
//!     assessment_id: a.assessment_id,
//!     student_id: fresh(),
//!     score: Some(25.0),
//!     status: GradeStatus::Graded,
//! };
//! let facts = GradeFacts { student_class: Some(a.class_id) };
//! given([created.clone()])
//!     .when(|s| record_grade(s, &cmd, &facts))
//!     .then_reject(Rejection::Invalid("score"));
//! ```

use crate::absences::ReportOutcome;
use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::events::*;
use crate::ids::*;
use crate::values::*;
use chrono::{NaiveDate, TimeZone as _, Utc};
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

/// A new identifier for a test, distinct from every other one this process
/// made and from the [`samples`]' ids. A counter: the domain has neither
/// clock nor randomness, and a test's ids need only be distinct.
pub fn fresh<T: From<Uuid>>() -> T {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    T::from(Uuid::from_u128(
        0x7e57_0000_0000_4000_8000_0000_0000_0000 | u128::from(n),
    ))
}

/// Events given as history; the aggregate's state is folded from them.
pub fn given<S: Aggregate>(events: impl IntoIterator<Item = DomainEvent>) -> Given<S> {
    let mut state = S::default();
    for e in events {
        state.apply(&e);
    }
    Given { state }
}

/// A state reached earlier (e.g. returned by [`Then::then_expect`]), to chain decisions.
pub fn given_state<S: Aggregate>(state: S) -> Given<S> {
    Given { state }
}

/// An empty history.
pub fn nothing<S: Aggregate>() -> Given<S> {
    Given {
        state: S::default(),
    }
}

#[derive(Debug)]
pub struct Given<S> {
    state: S,
}

impl<S: Aggregate> Given<S> {
    pub fn state(&self) -> &S {
        &self.state
    }

    /// Runs a decision against the folded state.
    pub fn when<O: Outcome>(self, decide: impl FnOnce(&S) -> Result<O, DomainError>) -> Then<S, O> {
        let result = decide(&self.state);
        Then {
            state: self.state,
            result,
        }
    }
}

/// What a decision returns, seen as the events it emits.
pub trait Outcome {
    fn events(&self) -> &[DomainEvent];
}
impl Outcome for Vec<DomainEvent> {
    fn events(&self) -> &[DomainEvent] {
        self
    }
}
impl Outcome for ReportOutcome {
    fn events(&self) -> &[DomainEvent] {
        &self.events
    }
}

/// The kind of rejection expected; `Invalid` names the offending field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    Invalid(&'static str),
    NotFound,
    Conflict,
}

impl Rejection {
    pub fn matches(&self, error: &DomainError) -> bool {
        match (self, error) {
            (Rejection::Invalid(f), DomainError::Invalid { field, .. }) => field == f,
            (Rejection::NotFound, DomainError::NotFound(_))
            | (Rejection::Conflict, DomainError::Conflict(_)) => true,
            _ => false,
        }
    }
}

#[derive(Debug)]
pub struct Then<S, O> {
    state: S,
    result: Result<O, DomainError>,
}

impl<S: Aggregate, O: Outcome + std::fmt::Debug> Then<S, O> {
    /// The raw result, for assertions the helpers below do not cover.
    pub fn result(&self) -> &Result<O, DomainError> {
        &self.result
    }

    /// Asserts the decision emitted exactly `expected`, and that the aggregate
    /// folds each of them (its version moves by one per event). Returns the
    /// outcome and the state after the events, to chain further decisions.
    #[track_caller]
    pub fn then_expect(self, expected: impl IntoIterator<Item = DomainEvent>) -> (O, S) {
        let expected: Vec<DomainEvent> = expected.into_iter().collect();
        let outcome = match self.result {
            Ok(o) => o,
            Err(e) => panic!("expected events {expected:#?}, got the rejection {e:?}"),
        };
        assert_eq!(outcome.events(), expected.as_slice(), "emitted events");
        let mut state = self.state;
        let before = state.version();
        for e in outcome.events() {
            state.apply(e);
        }
        assert_eq!(
            state.version(),
            before + outcome.events().len() as u64,
            "the aggregate must fold every event it emits"
        );
        (outcome, state)
    }

    /// Asserts the decision succeeded without emitting anything (an idempotent no-op).
    #[track_caller]
    pub fn then_nothing(self) -> O {
        self.then_expect([]).0
    }

    /// Asserts the decision was rejected as `expected`; returns the error.
    #[track_caller]
    pub fn then_reject(self, expected: Rejection) -> DomainError {
        match self.result {
            Ok(o) => panic!("expected a rejection {expected:?}, got {o:#?}"),
            Err(e) if expected.matches(&e) => e,
            Err(e) => panic!("expected a rejection {expected:?}, got {e:?}"),
        }
    }
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
}

/// One event of every variant, with fixed ids and consistent references
/// (the assessment belongs to the class, the grade to the assessment...).
/// For codec round trips and other crates' replay tests.
pub fn samples() -> Vec<DomainEvent> {
    let est = EstablishmentId(id(1));
    let class = ClassId(id(2));
    let teacher = PersonId::for_external_id("teacher-1");
    let pupil = PersonId::for_external_id("student-1");
    let parent = PersonId::for_external_id("guardian-1");
    let student = StudentId::for_person(pupil);
    let assessment = AssessmentId(id(3));
    let grade = GradeId::for_pair(assessment, student);
    let absence = AbsenceId(id(4));
    let declared = AbsenceId(id(5));
    let homework = HomeworkId(id(6));
    let thread = ThreadId(id(7));
    let message = MessageId(id(8));
    let course = CourseId(id(9));
    let motive = AbsenceReasonId(id(10));
    let period = PeriodId(id(9));
    let day = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap_or_default();
    let at = |h: u32| {
        Utc.with_ymd_and_hms(2026, 11, 30, h, 0, 0)
            .single()
            .unwrap_or_default()
    };
    let uai = Uai::parse("0750001A").unwrap_or_else(|e| panic!("sample UAI: {e}"));
    use DomainEvent as E;
    vec![
        E::EstablishmentCreated(EstablishmentCreated {
            establishment_id: est,
            uai,
            name: "Collège Jean Moulin".into(),
            time_zone: TimeZone::parse("Indian/Reunion").unwrap_or_default(),
        }),
        E::ClassCreated(ClassCreated {
            class_id: class,
            establishment_id: est,
            name: "4e B".into(),
        }),
        E::PersonRegistered(PersonRegistered {
            person_id: teacher,
            external_id: "teacher-1".into(),
            display_name: "Mme Durand".into(),
            roles: vec![Role::Teacher, Role::Guardian],
            establishment_id: Some(est),
        }),
        E::StudentEnrolled(StudentEnrolled {
            student_id: student,
            person_id: pupil,
            class_id: class,
        }),
        E::GuardianLinked(GuardianLinked {
            student_id: student,
            guardian_id: parent,
        }),
        E::TeacherAssigned(TeacherAssigned {
            class_id: class,
            teacher_id: teacher,
            subject: "Mathématiques".into(),
        }),
        E::AssessmentCreated(AssessmentCreated {
            assessment_id: assessment,
            class_id: class,
            teacher_id: teacher,
            subject: "Mathématiques".into(),
            title: "Fractions".into(),
            date: day,
            coefficient: 2.0,
            out_of: 20.0,
        }),
        E::GradeRecorded(GradeRecorded {
            grade_id: grade,
            assessment_id: assessment,
            student_id: student,
            score: Some(13.5),
            status: GradeStatus::Graded,
        }),
        E::GradeCorrected(GradeCorrected {
            grade_id: grade,
            assessment_id: assessment,
            student_id: student,
            previous_score: Some(13.5),
            previous_status: GradeStatus::Graded,
            score: None,
            status: GradeStatus::Exempt,
            reason: "Dispensé (certificat médical)".into(),
        }),
        E::AbsenceReported(AbsenceReported {
            absence_id: absence,
            student_id: student,
            kind: AbsenceKind::Lateness,
            start: at(8),
            end: at(9),
            minutes_late: Some(12),
        }),
        E::AbsenceDeclared(AbsenceDeclared {
            absence_id: declared,
            student_id: student,
            start: at(13),
            end: at(15),
            reason: "Rendez-vous chez l'orthodontiste".into(),
        }),
        E::DeclaredAbsenceConfirmed(DeclaredAbsenceConfirmed {
            absence_id: declared,
            student_id: student,
        }),
        E::AbsenceJustified(AbsenceJustified {
            absence_id: absence,
            student_id: student,
            reason: "Bus en retard".into(),
        }),
        E::JustificationReviewed(JustificationReviewed {
            absence_id: absence,
            student_id: student,
            accepted: true,
            comment: Some("Grève des transports".into()),
        }),
        E::AbsenceCancelled(AbsenceCancelled {
            absence_id: absence,
            student_id: student,
            reason: "Saisie sur le mauvais élève".into(),
        }),
        E::HomeworkAssigned(HomeworkAssigned {
            homework_id: homework,
            class_id: class,
            teacher_id: teacher,
            subject: "Mathématiques".into(),
            title: "Exercices p. 42".into(),
            description: "Exercices 1 à 4.\n\tRédiger proprement.".into(),
            due: day,
            assigned_on: day,
        }),
        E::HomeworkAmended(HomeworkAmended {
            homework_id: homework,
            class_id: class,
            title: "Exercices p. 42 et 43".into(),
            description: "Exercices 1 à 6.".into(),
            due: day,
            reason: None,
        }),
        E::HomeworkWithdrawn(HomeworkWithdrawn {
            homework_id: homework,
            class_id: class,
            reason: "Donné par erreur à cette classe".into(),
        }),
        E::MessageSent(MessageSent {
            message_id: message,
            thread_id: thread,
            from: teacher,
            to: vec![parent],
            subject: "Sortie au musée".into(),
            body: "Bonjour,\nL'autorisation est à rendre lundi.".into(),
        }),
        E::MessageRead(MessageRead {
            message_id: message,
            thread_id: thread,
            reader: parent,
        }),
        E::PersonErased(PersonErased {
            person_id: parent,
            reason: "Demande d'effacement (RGPD art. 17)".into(),
        }),
        E::AccountClosed(AccountClosed {
            person_id: pupil,
            effective_on: day,
            reason: "Départ de l'établissement".into(),
        }),
        // discipline (issue 15)
        E::IncidentReported(IncidentReported {
            incident_id: IncidentId(id(9)),
            establishment_id: est,
            occurred_at: at(10),
            place: Some("Cour de récréation".into()),
            description: "Bousculade près du préau, un élève tombé".into(),
            protagonists: vec![crate::discipline::Protagonist {
                student_id: student,
                role: crate::discipline::ProtagonistRole::Author,
            }],
            reported_by: teacher,
        }),
        E::PunishmentGiven(PunishmentGiven {
            punishment_id: PunishmentId(id(10)),
            student_id: student,
            kind: crate::discipline::PunishmentKind::Detention,
            reason: "A bousculé un camarade dans la cour".into(),
            due_on: Some(day),
            incident_id: Some(IncidentId(id(9))),
            given_by: teacher,
        }),
        E::SanctionImposed(SanctionImposed {
            sanction_id: SanctionId(id(11)),
            student_id: student,
            establishment_id: est,
            kind: crate::discipline::SanctionKind::TemporaryExclusion,
            reason: "Violence physique répétée envers un camarade".into(),
            decided_on: day,
            days: Some(3),
            suspended_days: Some(1),
            incident_id: Some(IncidentId(id(9))),
            decided_by: teacher,
            erased_on: NaiveDate::from_ymd_opt(2029, 8, 31),
        }),
        E::SanctionErased(SanctionErased {
            sanction_id: SanctionId(id(11)),
            student_id: student,
            early: true,
            reason: "Changement d'établissement (R511-13)".into(),
        }),
        // school day (issue 13)
        E::CoursePlanned(CoursePlanned {
            course_id: course,
            establishment_id: est,
            class_id: class,
            subject: "Mathématiques".into(),
            teacher_id: teacher,
            start: at(8),
            end: at(9),
            room: Some("Salle 12".into()),
        }),
        E::CourseCancelled(CourseCancelled {
            course_id: course,
            class_id: class,
            reason: "Sortie pédagogique".into(),
        }),
        E::RollCallTaken(RollCallTaken {
            course_id: course,
            class_id: class,
            entries: vec![RollCallEntry {
                student_id: student,
                absence_id: absence,
                kind: AbsenceKind::Lateness,
                minutes_late: Some(12),
                declared: false,
            }],
            present_count: 24,
        }),
        E::LessonContentRecorded(LessonContentRecorded {
            course_id: course,
            class_id: class,
            content: "Chapitre 3 : les fractions.\nCorrection des exercices.".into(),
        }),
        E::AbsenceReasonDefined(AbsenceReasonDefined {
            reason_id: motive,
            establishment_id: est,
            code: "MED".into(),
            label: "Rendez-vous médical".into(),
            justifies: true,
            usable_by_guardians: true,
        }),
        E::HolidaysSet(HolidaysSet {
            establishment_id: est,
            holidays: vec![DateRange { from: day, to: day }],
        }),
        E::AbsenceMotiveGiven(AbsenceMotiveGiven {
            absence_id: declared,
            student_id: student,
            motive_id: motive,
        }),
        E::HomeworkDetailed(HomeworkDetailed {
            homework_id: homework,
            class_id: class,
            course_id: Some(course),
            estimated_minutes: Some(30),
        }),
        E::HomeworkMarkedDone(HomeworkMarkedDone {
            homework_id: homework,
            class_id: class,
            student_id: student,
            done: true,
        }),
        // evaluation (issue 14)
        E::PeriodsDefined(PeriodsDefined {
            establishment_id: est,
            periods: vec![PeriodDefinition {
                period_id: period,
                name: "Trimestre 1".into(),
                start: NaiveDate::from_ymd_opt(2026, 9, 1).unwrap_or_default(),
                end: day,
            }],
        }),
        E::PeriodClosed(PeriodClosed {
            establishment_id: est,
            period_id: period,
        }),
        E::PeriodReopened(PeriodReopened {
            establishment_id: est,
            period_id: period,
            reason: "Conseil de classe reporté".into(),
        }),
        E::AppreciationWritten(AppreciationWritten {
            student_id: student,
            period_id: period,
            subject: Some("Mathématiques".into()),
            text: "Très bon trimestre, élève sérieux.".into(),
            previous: Some("Bon trimestre.".into()),
        }),
        // communication (issue 16)
        E::AttachmentUploaded(crate::communication::AttachmentUploaded {
            attachment_id: AttachmentId(id(9)),
            uploaded_by: teacher,
            name: "certificat.pdf".into(),
            content_type: "application/pdf".into(),
            size: 1234,
            sha256: "ab".repeat(32),
        }),
        E::AttachmentsLinked(crate::communication::AttachmentsLinked {
            to: crate::communication::AttachedTo::Justification(absence),
            attachments: vec![AttachmentId(id(9))],
            student_id: Some(student),
        }),
        E::NotificationPreferenceSet(crate::communication::NotificationPreferenceSet {
            person_id: teacher,
            channel: crate::communication::Channel::Email,
            preferences: crate::communication::Preferences::default(),
            email: Some("enseignant@example.org".into()),
        }),
        E::WebPushRegistered(crate::communication::WebPushRegistered {
            person_id: teacher,
            subscription_id: WebPushId(id(10)),
            endpoint: "https://push.example.org/abc".into(),
            p256dh: "BA".repeat(43),
            auth: "QUFBQUFBQUFBQUFBQUFBQQ".into(),
        }),
        E::WebPushDropped(crate::communication::WebPushDropped {
            person_id: teacher,
            subscription_id: WebPushId(id(10)),
            status: 410,
        }),
        // interop (issue 17)
        E::GuardianUnlinked(GuardianUnlinked {
            student_id: student,
            guardian_id: parent,
        }),
        E::TeacherUnassigned(TeacherUnassigned {
            class_id: class,
            teacher_id: teacher,
            subject: "Mathématiques".into(),
        }),
        E::PersonRenamed(PersonRenamed {
            person_id: teacher,
            display_name: "Mme Durand-Martin".into(),
        }),
        E::ClassRenamed(ClassRenamed {
            class_id: class,
            name: "4e B bis".into(),
        }),
        E::SchoolYearStarted(SchoolYearStarted {
            establishment_id: est,
            year: 2027,
        }),
        E::ClassClosed(ClassClosed {
            class_id: class,
            establishment_id: est,
            year: 2026,
        }),
    ]
}
