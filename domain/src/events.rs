//! The events of the log. Every fact Registre knows is one of these, and they
//! are never changed once written: a correction is a new event with a reason.
//!
//! The stored form (event type, schema version, JSON data) is separate from this
//! enum; [`crate::codec`] converts between the two and is the one place where
//! older schema versions are upcast.

use crate::ids::*;
use crate::values::*;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

// ---- Roster ---------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EstablishmentCreated {
    pub establishment_id: EstablishmentId,
    pub uai: Uai,
    pub name: String,
    pub time_zone: TimeZone,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassCreated {
    pub class_id: ClassId,
    pub establishment_id: EstablishmentId,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersonRegistered {
    pub person_id: PersonId,
    pub external_id: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub establishment_id: Option<EstablishmentId>,
}

/// A student record is created by its first enrolment; a later one moves the
/// student to another class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StudentEnrolled {
    pub student_id: StudentId,
    pub person_id: PersonId,
    pub class_id: ClassId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardianLinked {
    pub student_id: StudentId,
    pub guardian_id: PersonId,
}

/// The person no longer needs their Registre account (they left the
/// establishment, or their account was closed) from `effective_on`, a day in
/// the establishment's calendar. It starts the retention period of their
/// account data: `registre retention apply` erases them once it has passed.
/// The reason is personal text (sealed with the person's key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountClosed {
    pub person_id: PersonId,
    pub effective_on: NaiveDate,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TeacherAssigned {
    pub class_id: ClassId,
    pub teacher_id: PersonId,
    pub subject: String,
}

// interop (issue 17): what a later SIECLE or STS-Web export no longer says,
// and the turn of the school year.

/// A guardian is no longer a legal representative of the student.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuardianUnlinked {
    pub student_id: StudentId,
    pub guardian_id: PersonId,
}

/// A teacher no longer teaches `subject` in the class (a service gone from
/// STS-Web). Grades and assessments already given stay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TeacherUnassigned {
    pub class_id: ClassId,
    pub teacher_id: PersonId,
    pub subject: String,
}

/// The person's name changed (SIECLE corrects a name, a marriage). Personal
/// text, sealed with the person's key like the name it replaces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersonRenamed {
    pub person_id: PersonId,
    pub display_name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassRenamed {
    pub class_id: ClassId,
    pub name: String,
}

/// An establishment's school year `year` (named by the calendar year it
/// starts in, as [`crate::evaluation::school_year`]) has started: the classes
/// of the years before are closed ([`ClassClosed`]) and the next SIECLE
/// import creates the new ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchoolYearStarted {
    pub establishment_id: EstablishmentId,
    pub year: i32,
}

/// A class of a past school year: kept and readable, and read-only (roster
/// commands on it are refused). `year` is the school year it belonged to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassClosed {
    pub class_id: ClassId,
    pub establishment_id: EstablishmentId,
    pub year: i32,
}

// ---- Grades -----------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssessmentCreated {
    pub assessment_id: AssessmentId,
    pub class_id: ClassId,
    pub teacher_id: PersonId,
    pub subject: String,
    pub title: String,
    pub date: NaiveDate,
    pub coefficient: f64,
    pub out_of: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradeRecorded {
    pub grade_id: GradeId,
    pub assessment_id: AssessmentId,
    pub student_id: StudentId,
    /// Present exactly when `status` is GRADED.
    pub score: Option<f64>,
    pub status: GradeStatus,
}

/// Rectification: the earlier value stays in the event so that the audit trail
/// shows what was changed, by whom and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradeCorrected {
    pub grade_id: GradeId,
    pub assessment_id: AssessmentId,
    pub student_id: StudentId,
    pub previous_score: Option<f64>,
    pub previous_status: GradeStatus,
    pub score: Option<f64>,
    pub status: GradeStatus,
    pub reason: String,
}

// ---- Absences -----------------------------------------------------------

/// Reported by the roll call (a teacher) or by education staff.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AbsenceReported {
    pub absence_id: AbsenceId,
    pub student_id: StudentId,
    pub kind: AbsenceKind,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Present exactly when `kind` is LATENESS, and then > 0.
    pub minutes_late: Option<u32>,
}

/// A guardian announces an absence in advance (a medical appointment): it is
/// PENDING review with the guardian's reason from the start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AbsenceDeclared {
    pub absence_id: AbsenceId,
    pub student_id: StudentId,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: String,
}

/// The roll call found a student absent whose absence was already declared:
/// the declared absence is confirmed instead of a duplicate being reported.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeclaredAbsenceConfirmed {
    pub absence_id: AbsenceId,
    pub student_id: StudentId,
}

/// A guardian's justification: UNJUSTIFIED or REJECTED becomes PENDING.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AbsenceJustified {
    pub absence_id: AbsenceId,
    pub student_id: StudentId,
    pub reason: String,
}

/// Education staff's review: PENDING becomes ACCEPTED or REJECTED.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JustificationReviewed {
    pub absence_id: AbsenceId,
    pub student_id: StudentId,
    pub accepted: bool,
    pub comment: Option<String>,
}

/// An entry made in error; it stays in the log, and views drop it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AbsenceCancelled {
    pub absence_id: AbsenceId,
    pub student_id: StudentId,
    pub reason: String,
}

// ---- Homework (cahier de textes) -------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HomeworkAssigned {
    pub homework_id: HomeworkId,
    pub class_id: ClassId,
    pub teacher_id: PersonId,
    pub subject: String,
    pub title: String,
    pub description: String,
    pub due: NaiveDate,
    /// The day it was assigned, in the establishment's time zone.
    pub assigned_on: NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HomeworkAmended {
    pub homework_id: HomeworkId,
    pub class_id: ClassId,
    pub title: String,
    pub description: String,
    pub due: NaiveDate,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HomeworkWithdrawn {
    pub homework_id: HomeworkId,
    pub class_id: ClassId,
    pub reason: String,
}

// ---- Messages ----------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageSent {
    pub message_id: MessageId,
    pub thread_id: ThreadId,
    pub from: PersonId,
    pub to: Vec<PersonId>,
    pub subject: String,
    pub body: String,
}

/// Read receipt of one recipient.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageRead {
    pub message_id: MessageId,
    pub thread_id: ThreadId,
    pub reader: PersonId,
}

// ---- Erasure ------------------------------------------------------------------

/// The keys sealing a person's personal text were destroyed (GDPR art. 17):
/// on request (`forgetPerson`) or when their retention period passed. The
/// events about them stay; their names and free text read as erased.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PersonErased {
    pub person_id: PersonId,
    pub reason: String,
}

impl PersonErased {
    /// The vault subjects whose keys erasing `person` destroys: the person's
    /// own and their student record's (a pupil's grades and absences are
    /// sealed under the record, not the person). The one place this rule is
    /// written: erasure destroys these, the key cache forgets these.
    pub fn destroyed_keys(person: PersonId) -> [uuid::Uuid; 2] {
        [person.0, StudentId::for_person(person).0]
    }
}

// discipline (issue 15): payloads in their module.
pub use crate::discipline::{IncidentReported, PunishmentGiven, SanctionErased, SanctionImposed};
// ---- School day (issue 13) ------------------------------------------------------

/// A course of the timetable: one class, one subject, one teacher, one slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoursePlanned {
    pub course_id: CourseId,
    pub establishment_id: EstablishmentId,
    pub class_id: ClassId,
    pub subject: String,
    pub teacher_id: PersonId,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub room: Option<String>,
}

/// The course will not take place; it stays in the timetable, marked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CourseCancelled {
    pub course_id: CourseId,
    pub class_id: ClassId,
    pub reason: String,
}

/// One student missing from a roll call, and the absence that records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollCallEntry {
    pub student_id: StudentId,
    pub absence_id: AbsenceId,
    /// ABSENCE or LATENESS.
    pub kind: AbsenceKind,
    pub minutes_late: Option<u32>,
    /// A guardian's declaration the call confirmed (not recorded by the call
    /// itself, so a correction never cancels it).
    pub declared: bool,
}

/// The roll call of a course, as it stands after this call (a later one
/// replaces it; the absences it no longer lists were cancelled beside it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RollCallTaken {
    pub course_id: CourseId,
    pub class_id: ClassId,
    pub entries: Vec<RollCallEntry>,
    pub present_count: u32,
}

/// What was done in the lesson (cahier de textes); a later one replaces it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LessonContentRecorded {
    pub course_id: CourseId,
    pub class_id: ClassId,
    pub content: String,
}

/// One motive of an establishment's list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AbsenceReasonDefined {
    pub reason_id: AbsenceReasonId,
    pub establishment_id: EstablishmentId,
    pub code: String,
    pub label: String,
    pub justifies: bool,
    pub usable_by_guardians: bool,
}

/// Days `from` to `to`, both included, in the establishment's calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DateRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DateRange {
    pub fn contains(&self, day: NaiveDate) -> bool {
        self.from <= day && day <= self.to
    }
}

/// The establishment's holidays, the whole list (it replaces the previous one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HolidaysSet {
    pub establishment_id: EstablishmentId,
    pub holidays: Vec<DateRange>,
}

/// The motive of an absence, given with its report, declaration or
/// justification (appended beside that event, on the absence's stream).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AbsenceMotiveGiven {
    pub absence_id: AbsenceId,
    pub student_id: StudentId,
    pub motive_id: AbsenceReasonId,
}

/// Where a homework entry stands in the cahier de textes: the course it was
/// given in and the time it should take. The latest one holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HomeworkDetailed {
    pub homework_id: HomeworkId,
    pub class_id: ClassId,
    pub course_id: Option<CourseId>,
    pub estimated_minutes: Option<u32>,
}

/// A student marks homework done (or not done after all), for themself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HomeworkMarkedDone {
    pub homework_id: HomeworkId,
    pub class_id: ClassId,
    pub student_id: StudentId,
    pub done: bool,
}

// ---- Evaluation (issue 14) -------------------------------------------------------

/// One period (trimestre, semestre) of an establishment's school year.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeriodDefinition {
    pub period_id: PeriodId,
    pub name: String,
    pub start: NaiveDate,
    /// Inclusive: the period's last day.
    pub end: NaiveDate,
}

/// The periods of one school year of an establishment, consecutive and
/// non-overlapping, in order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeriodsDefined {
    pub establishment_id: EstablishmentId,
    pub periods: Vec<PeriodDefinition>,
}

/// The head closed a period: grades dated in it are frozen and its report
/// cards are final.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeriodClosed {
    pub establishment_id: EstablishmentId,
    pub period_id: PeriodId,
}

/// The head reopened a closed period; the reason stays in the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeriodReopened {
    pub establishment_id: EstablishmentId,
    pub period_id: PeriodId,
    pub reason: String,
}

/// A report card's appreciation: a subject's, by its teacher, or the general
/// one (`subject: None`), by the head. A later one replaces it on the report
/// card; `previous` keeps the text it replaced, so the audit trail shows
/// every version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppreciationWritten {
    pub student_id: StudentId,
    pub period_id: PeriodId,
    pub subject: Option<String>,
    pub text: String,
    pub previous: Option<String>,
}
// communication (issue 16)
pub use crate::communication::{
    AttachmentUploaded, AttachmentsLinked, NotificationPreferenceSet, WebPushDropped,
    WebPushRegistered,
};

/// Every fact of the log. Variant names are the stored event types.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum DomainEvent {
    EstablishmentCreated(EstablishmentCreated),
    ClassCreated(ClassCreated),
    PersonRegistered(PersonRegistered),
    StudentEnrolled(StudentEnrolled),
    GuardianLinked(GuardianLinked),
    TeacherAssigned(TeacherAssigned),
    AssessmentCreated(AssessmentCreated),
    GradeRecorded(GradeRecorded),
    GradeCorrected(GradeCorrected),
    AbsenceReported(AbsenceReported),
    AbsenceDeclared(AbsenceDeclared),
    DeclaredAbsenceConfirmed(DeclaredAbsenceConfirmed),
    AbsenceJustified(AbsenceJustified),
    JustificationReviewed(JustificationReviewed),
    AbsenceCancelled(AbsenceCancelled),
    HomeworkAssigned(HomeworkAssigned),
    HomeworkAmended(HomeworkAmended),
    HomeworkWithdrawn(HomeworkWithdrawn),
    MessageSent(MessageSent),
    MessageRead(MessageRead),
    PersonErased(PersonErased),
    AccountClosed(AccountClosed),
    // discipline (issue 15)
    IncidentReported(IncidentReported),
    PunishmentGiven(PunishmentGiven),
    SanctionImposed(SanctionImposed),
    SanctionErased(SanctionErased),
    // school day (issue 13)
    CoursePlanned(CoursePlanned),
    CourseCancelled(CourseCancelled),
    RollCallTaken(RollCallTaken),
    LessonContentRecorded(LessonContentRecorded),
    AbsenceReasonDefined(AbsenceReasonDefined),
    HolidaysSet(HolidaysSet),
    AbsenceMotiveGiven(AbsenceMotiveGiven),
    HomeworkDetailed(HomeworkDetailed),
    HomeworkMarkedDone(HomeworkMarkedDone),
    // evaluation (issue 14)
    PeriodsDefined(PeriodsDefined),
    PeriodClosed(PeriodClosed),
    PeriodReopened(PeriodReopened),
    AppreciationWritten(AppreciationWritten),
    // communication (issue 16)
    AttachmentUploaded(AttachmentUploaded),
    AttachmentsLinked(AttachmentsLinked),
    NotificationPreferenceSet(NotificationPreferenceSet),
    WebPushRegistered(WebPushRegistered),
    WebPushDropped(WebPushDropped),
    // interop (issue 17)
    GuardianUnlinked(GuardianUnlinked),
    TeacherUnassigned(TeacherUnassigned),
    PersonRenamed(PersonRenamed),
    ClassRenamed(ClassRenamed),
    SchoolYearStarted(SchoolYearStarted),
    ClassClosed(ClassClosed),
}

impl DomainEvent {
    /// Every person and every student record this fact is about: the index of
    /// the audit trail ("every change recorded about a person"). A student
    /// record's person is known from its `StudentEnrolled`, so the indexer maps
    /// student ids to person ids itself. Actors are in the metadata, not here:
    /// a teacher grading a student is a fact about the student.
    pub fn people_concerned(&self) -> (Vec<PersonId>, Vec<StudentId>) {
        use DomainEvent::*;
        match self {
            EstablishmentCreated(_) | ClassCreated(_) => (vec![], vec![]),
            PersonRegistered(e) => (vec![e.person_id], vec![]),
            StudentEnrolled(e) => (vec![e.person_id], vec![e.student_id]),
            GuardianLinked(e) => (vec![e.guardian_id], vec![e.student_id]),
            TeacherAssigned(e) => (vec![e.teacher_id], vec![]),
            AssessmentCreated(e) => (vec![e.teacher_id], vec![]),
            GradeRecorded(e) => (vec![], vec![e.student_id]),
            GradeCorrected(e) => (vec![], vec![e.student_id]),
            AbsenceReported(e) => (vec![], vec![e.student_id]),
            AbsenceDeclared(e) => (vec![], vec![e.student_id]),
            DeclaredAbsenceConfirmed(e) => (vec![], vec![e.student_id]),
            AbsenceJustified(e) => (vec![], vec![e.student_id]),
            JustificationReviewed(e) => (vec![], vec![e.student_id]),
            AbsenceCancelled(e) => (vec![], vec![e.student_id]),
            HomeworkAssigned(e) => (vec![e.teacher_id], vec![]),
            HomeworkAmended(_) | HomeworkWithdrawn(_) => (vec![], vec![]),
            MessageSent(e) => {
                let mut people = Vec::with_capacity(e.to.len() + 1);
                people.push(e.from);
                people.extend(e.to.iter().filter(|p| **p != e.from));
                (people, vec![])
            }
            MessageRead(e) => (vec![e.reader], vec![]),
            PersonErased(e) => (vec![e.person_id], vec![]),
            AccountClosed(e) => (vec![e.person_id], vec![]),
            // discipline (issue 15)
            IncidentReported(e) => (
                vec![e.reported_by],
                e.protagonists.iter().map(|p| p.student_id).collect(),
            ),
            PunishmentGiven(e) => (vec![], vec![e.student_id]),
            SanctionImposed(e) => (vec![], vec![e.student_id]),
            SanctionErased(e) => (vec![], vec![e.student_id]),
            // school day (issue 13)
            CoursePlanned(e) => (vec![e.teacher_id], vec![]),
            RollCallTaken(e) => (vec![], e.entries.iter().map(|x| x.student_id).collect()),
            AbsenceMotiveGiven(e) => (vec![], vec![e.student_id]),
            HomeworkMarkedDone(e) => (vec![], vec![e.student_id]),
            CourseCancelled(_)
            | LessonContentRecorded(_)
            | AbsenceReasonDefined(_)
            | HolidaysSet(_)
            | HomeworkDetailed(_) => (vec![], vec![]),
            // evaluation (issue 14)
            PeriodsDefined(_) | PeriodClosed(_) | PeriodReopened(_) => (vec![], vec![]),
            AppreciationWritten(e) => (vec![], vec![e.student_id]),
            // communication (issue 16)
            AttachmentUploaded(e) => (vec![e.uploaded_by], vec![]),
            AttachmentsLinked(e) => (vec![], e.student_id.into_iter().collect()),
            NotificationPreferenceSet(e) => (vec![e.person_id], vec![]),
            WebPushRegistered(e) => (vec![e.person_id], vec![]),
            WebPushDropped(e) => (vec![e.person_id], vec![]),
            // interop (issue 17)
            GuardianUnlinked(e) => (vec![e.guardian_id], vec![e.student_id]),
            TeacherUnassigned(e) => (vec![e.teacher_id], vec![]),
            PersonRenamed(e) => (vec![e.person_id], vec![]),
            ClassRenamed(_) | SchoolYearStarted(_) | ClassClosed(_) => (vec![], vec![]),
        }
    }

    /// The reason the event carries, if any (corrections, justifications,
    /// cancellations, withdrawals, declarations, review comments): what the
    /// audit trail shows as `reason`.
    pub fn reason(&self) -> Option<&str> {
        use DomainEvent::*;
        match self {
            GradeCorrected(e) => Some(&e.reason),
            AbsenceDeclared(e) => Some(&e.reason),
            AbsenceJustified(e) => Some(&e.reason),
            JustificationReviewed(e) => e.comment.as_deref(),
            AbsenceCancelled(e) => Some(&e.reason),
            HomeworkAmended(e) => e.reason.as_deref(),
            HomeworkWithdrawn(e) => Some(&e.reason),
            PersonErased(e) => Some(&e.reason),
            AccountClosed(e) => Some(&e.reason),
            // discipline (issue 15)
            SanctionErased(e) => Some(&e.reason),
            CourseCancelled(e) => Some(&e.reason),
            // evaluation (issue 14)
            PeriodReopened(e) => Some(&e.reason),
            _ => None,
        }
    }
}
