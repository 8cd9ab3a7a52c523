//! Which stream (aggregate) each fact belongs to. Streams are kept small on
//! purpose (one per assessment, absence, homework entry, thread...) so that
//! deciding a command never folds a student's whole year.

use crate::events::DomainEvent;
use crate::ids::*;
use std::fmt;

/// A stream name: `<category>-<uuid>`. The category prefix lets auditors and
/// tooling filter the log without decoding payloads.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamName(String);

impl StreamName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
    pub fn establishment(id: EstablishmentId) -> Self {
        Self(format!("establishment-{id}"))
    }
    pub fn class(id: ClassId) -> Self {
        Self(format!("class-{id}"))
    }
    pub fn person(id: PersonId) -> Self {
        Self(format!("person-{id}"))
    }
    pub fn student(id: StudentId) -> Self {
        Self(format!("student-{id}"))
    }
    pub fn assessment(id: AssessmentId) -> Self {
        Self(format!("assessment-{id}"))
    }
    pub fn absence(id: AbsenceId) -> Self {
        Self(format!("absence-{id}"))
    }
    pub fn homework(id: HomeworkId) -> Self {
        Self(format!("homework-{id}"))
    }
    pub fn thread(id: ThreadId) -> Self {
        Self(format!("thread-{id}"))
    }
    // discipline (issue 15)
    pub fn incident(id: IncidentId) -> Self {
        Self(format!("incident-{id}"))
    }
    pub fn punishment(id: PunishmentId) -> Self {
        Self(format!("punishment-{id}"))
    }
    pub fn sanction(id: SanctionId) -> Self {
        Self(format!("sanction-{id}"))
    }
    // school day (issue 13)
    pub fn course(id: CourseId) -> Self {
        Self(format!("course-{id}"))
    }
    /// The periods of an establishment (evaluation, issue 14): one stream, so
    /// that "consecutive, non-overlapping" is decided under one version.
    pub fn periods(id: EstablishmentId) -> Self {
        Self(format!("periods-{id}"))
    }
    /// The appreciations of one student's report card for one period.
    pub fn report_card(student: StudentId, period: PeriodId) -> Self {
        Self(format!(
            "reportcard-{}",
            ReportCardId::for_pair(student, period)
        ))
    }
    // communication (issue 16)
    pub fn attachment(id: AttachmentId) -> Self {
        Self(format!("attachment-{id}"))
    }
    /// A person's notification preferences and push subscriptions.
    pub fn notifications(id: PersonId) -> Self {
        Self(format!("notifications-{id}"))
    }
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl DomainEvent {
    /// The stream this event is appended to.
    pub fn stream(&self) -> StreamName {
        use DomainEvent::*;
        match self {
            EstablishmentCreated(e) => StreamName::establishment(e.establishment_id),
            ClassCreated(e) => StreamName::class(e.class_id),
            TeacherAssigned(e) => StreamName::class(e.class_id),
            PersonRegistered(e) => StreamName::person(e.person_id),
            StudentEnrolled(e) => StreamName::student(e.student_id),
            GuardianLinked(e) => StreamName::student(e.student_id),
            AssessmentCreated(e) => StreamName::assessment(e.assessment_id),
            GradeRecorded(e) => StreamName::assessment(e.assessment_id),
            GradeCorrected(e) => StreamName::assessment(e.assessment_id),
            AbsenceReported(e) => StreamName::absence(e.absence_id),
            AbsenceDeclared(e) => StreamName::absence(e.absence_id),
            DeclaredAbsenceConfirmed(e) => StreamName::absence(e.absence_id),
            AbsenceJustified(e) => StreamName::absence(e.absence_id),
            JustificationReviewed(e) => StreamName::absence(e.absence_id),
            AbsenceCancelled(e) => StreamName::absence(e.absence_id),
            HomeworkAssigned(e) => StreamName::homework(e.homework_id),
            HomeworkAmended(e) => StreamName::homework(e.homework_id),
            HomeworkWithdrawn(e) => StreamName::homework(e.homework_id),
            MessageSent(e) => StreamName::thread(e.thread_id),
            MessageRead(e) => StreamName::thread(e.thread_id),
            PersonErased(e) => StreamName::person(e.person_id),
            AccountClosed(e) => StreamName::person(e.person_id),
            // discipline (issue 15)
            IncidentReported(e) => StreamName::incident(e.incident_id),
            PunishmentGiven(e) => StreamName::punishment(e.punishment_id),
            SanctionImposed(e) => StreamName::sanction(e.sanction_id),
            SanctionErased(e) => StreamName::sanction(e.sanction_id),
            // school day (issue 13): an establishment's motives and holidays
            // go to its own stream.
            CoursePlanned(e) => StreamName::course(e.course_id),
            CourseCancelled(e) => StreamName::course(e.course_id),
            RollCallTaken(e) => StreamName::course(e.course_id),
            LessonContentRecorded(e) => StreamName::course(e.course_id),
            AbsenceReasonDefined(e) => StreamName::establishment(e.establishment_id),
            HolidaysSet(e) => StreamName::establishment(e.establishment_id),
            AbsenceMotiveGiven(e) => StreamName::absence(e.absence_id),
            HomeworkDetailed(e) => StreamName::homework(e.homework_id),
            HomeworkMarkedDone(e) => StreamName::homework(e.homework_id),
            // evaluation (issue 14)
            PeriodsDefined(e) => StreamName::periods(e.establishment_id),
            PeriodClosed(e) => StreamName::periods(e.establishment_id),
            PeriodReopened(e) => StreamName::periods(e.establishment_id),
            AppreciationWritten(e) => StreamName::report_card(e.student_id, e.period_id),
            // communication (issue 16): links go with what they attach to.
            AttachmentUploaded(e) => StreamName::attachment(e.attachment_id),
            AttachmentsLinked(e) => match e.to {
                crate::communication::AttachedTo::Message { thread_id, .. } => {
                    StreamName::thread(thread_id)
                }
                crate::communication::AttachedTo::Homework(h) => StreamName::homework(h),
                crate::communication::AttachedTo::Justification(a) => StreamName::absence(a),
            },
            NotificationPreferenceSet(e) => StreamName::notifications(e.person_id),
            WebPushRegistered(e) => StreamName::notifications(e.person_id),
            WebPushDropped(e) => StreamName::notifications(e.person_id),
            // interop (issue 17): each on the stream of what it changes; the
            // year's turn on the establishment's.
            GuardianUnlinked(e) => StreamName::student(e.student_id),
            TeacherUnassigned(e) => StreamName::class(e.class_id),
            PersonRenamed(e) => StreamName::person(e.person_id),
            ClassRenamed(e) => StreamName::class(e.class_id),
            SchoolYearStarted(e) => StreamName::establishment(e.establishment_id),
            ClassClosed(e) => StreamName::class(e.class_id),
        }
    }
}
