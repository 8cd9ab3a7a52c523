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
        }
    }
}
