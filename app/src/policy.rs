//! Every authorization rule of Registre, in one place, decided from the roster
//! held in the read model. Resolvers and commands ask here and nowhere else.
//!
//! Reading:
//! - a STUDENT sees only themself; a GUARDIAN only their children;
//! - a TEACHER sees the students of the classes they teach, and of those only
//!   the grades and homework of the subjects they teach there;
//! - EDUCATION_STAFF and HEAD see everything of their establishment;
//! - an AUDITOR reads the audit queries (auditTrail, accessLog, studentAsOf,
//!   absenceStats, exportPersonData) and nothing else;
//! - ADMIN sees the roster (establishments, classes, people, enrolments) but not
//!   grades, absences, homework or messages: administering accounts is no reason
//!   to read a child's record. The one exception is answering a subject access
//!   request (GDPR art. 15, `exportPersonData`), which the DPO's administrator
//!   or an auditor does on the person's behalf, and which the access log records.
//! - the audit trail follows the same need-to-know: ADMIN reads `auditTrail`
//!   (who changed which account, when, why) but not the grades in it; in a
//!   GradeRecorded or GradeCorrected entry ADMIN sees the ids (grade,
//!   assessment, student) and the event type only: the score, the status,
//!   the previous ones and the correction's reason (which often quotes the
//!   marks) are redacted ([`audit_shows_grades`]). The AUDITOR (the DPO, the
//!   inspection) sees every entry whole: checking grade corrections is their job.
//!
//! Writing to someone (`sendMessage`), the rule this file defines because the
//! contract leaves it open: two people may write to each other when
//! - one is a GUARDIAN and the other a TEACHER, EDUCATION_STAFF or HEAD of an
//!   establishment where one of the guardian's children is enrolled;
//! - both work in the same establishment (TEACHER, EDUCATION_STAFF, HEAD);
//! - one is a STUDENT and the other teaches their class, or is EDUCATION_STAFF or
//!   HEAD of their establishment.
//!
//! Guardians do not write to each other and students do not write to each
//! other through Registre. Replying in a thread needs being one of its
//! participants, and every recipient must still be someone the sender may
//! write to.
//!
//! A refusal never says whether the thing exists: callers answer FORBIDDEN for
//! anything the viewer could not see even if it existed.
//!
//! Every mutation asks here through its command's `authorize`
//! (`app::commands::Command`), which the command executor calls before it
//! reads or decides anything; the domain holds no who-may-do-what.

// discipline (issue 15)
pub mod discipline;
pub mod evaluation;

use registre_domain::{
    AbsenceId, AssessmentId, ClassId, EstablishmentId, GradeId, MessageId, PersonId, Role,
    StudentId, ThreadId,
};
use registre_projections::ReadModel as Model;

// school day (issue 13)
pub mod school_day;
// communication (issue 16)
mod communication;
pub use communication::*;

/// Who runs a command: a person (a request's viewer, or an operator of the
/// command line resolved in the roster), or Registre itself (a retention
/// rule), which no person stands behind.
#[derive(Clone, Copy, Debug)]
pub enum Issuer<'a> {
    Person(&'a Viewer),
    System,
}

impl<'a> Issuer<'a> {
    /// The person, unless the system runs the command.
    pub fn viewer(self) -> Option<&'a Viewer> {
        match self {
            Issuer::Person(v) => Some(v),
            Issuer::System => None,
        }
    }
}

/// An authenticated caller, as proven by a verified JWT. Its `subject` is the
/// `sub` claim, i.e. the `Person.externalId`; `admin` is true when the subject
/// is listed in REGISTRE_ADMIN_SUBJECTS. The transport produces it; absent
/// when the request carried no token (the caller is then UNAUTHENTICATED).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub admin: bool,
}

/// The authenticated person behind a request, resolved in the roster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Viewer {
    pub person: PersonId,
    pub subject: String,
    /// Listed in REGISTRE_ADMIN_SUBJECTS (or registered with the ADMIN role).
    pub admin: bool,
    pub roles: Vec<Role>,
    pub establishment: Option<EstablishmentId>,
    /// Access-log entries this request has caused (bounded per request).
    pub reads: crate::RequestReads,
}

impl Viewer {
    pub fn has(&self, role: Role) -> bool {
        (role == Role::Admin && self.admin) || self.roles.contains(&role)
    }

    /// HEAD or EDUCATION_STAFF of this establishment.
    fn runs(&self, establishment: Option<EstablishmentId>) -> bool {
        establishment.is_some()
            && self.establishment == establishment
            && (self.has(Role::Head) || self.has(Role::EducationStaff))
    }

    /// ENT usage profile (for the access log's indicators).
    pub fn profile(&self) -> &'static str {
        if self.has(Role::Student) {
            "ELEVE"
        } else if self.has(Role::Teacher) {
            "ENSEIGNANT"
        } else if self.has(Role::Guardian) {
            "PARENT"
        } else {
            "AUTRE"
        }
    }

    /// The role written in events' actor metadata: the most specific one held.
    pub fn acting_role(&self) -> Role {
        const ORDER: [Role; 7] = [
            Role::Admin,
            Role::Head,
            Role::EducationStaff,
            Role::Teacher,
            Role::Auditor,
            Role::Guardian,
            Role::Student,
        ];
        ORDER
            .into_iter()
            .find(|r| self.has(*r))
            .unwrap_or(Role::Student)
    }
}

/// A teacher of this class (any subject).
pub fn teaches_class(m: &Model, v: &Viewer, class: ClassId) -> bool {
    v.has(Role::Teacher) && m.teaches_class(v.person, class)
}

/// A teacher of this class and subject.
pub fn teaches(m: &Model, v: &Viewer, class: ClassId, subject: &str) -> bool {
    v.has(Role::Teacher) && m.teaches(v.person, class, subject)
}

/// The student themself, or one of their guardians.
fn is_family(m: &Model, v: &Viewer, student: StudentId) -> bool {
    m.student(student).is_some_and(|s| {
        (v.has(Role::Student) && s.person_id == v.person)
            || (v.has(Role::Guardian) && s.guardians.contains(&v.person))
    })
}

/// May the viewer see this student's roster entry (person, class, guardians)?
pub fn can_see_student(m: &Model, v: &Viewer, student: StudentId) -> bool {
    let Some(s) = m.student(student) else {
        return false;
    };
    v.has(Role::Admin) || can_read_record(m, v, student) || s.person_id == v.person
}

/// May the viewer read this student's record (grades, absences, homework)?
pub fn can_read_record(m: &Model, v: &Viewer, student: StudentId) -> bool {
    let Some(s) = m.student(student) else {
        return false;
    };
    is_family(m, v, student)
        || teaches_class(m, v, s.class_id)
        || v.runs(m.establishment_of_class(s.class_id))
}

/// May the viewer see this student's grades and homework of `subject` in
/// `class`? Teachers see the subjects they teach; everyone else who may read
/// the record sees all of it.
pub fn can_see_subject(
    m: &Model,
    v: &Viewer,
    student: StudentId,
    class: ClassId,
    subject: &str,
) -> bool {
    is_family(m, v, student)
        || v.runs(m.establishment_of_class(class))
        || teaches(m, v, class, subject)
}

/// `schoolClass(id)`: its staff, its teachers, its students and their guardians.
pub fn can_see_class(m: &Model, v: &Viewer, class: ClassId) -> bool {
    let Some(c) = m.class(class) else {
        return false;
    };
    v.has(Role::Admin)
        || v.runs(Some(c.establishment_id))
        || teaches_class(m, v, class)
        || c.students.iter().any(|s| {
            m.student(*s)
                .is_some_and(|st| st.person_id == v.person || st.guardians.contains(&v.person))
        })
}

/// auditTrail and accessLog.
pub fn can_audit(v: &Viewer) -> bool {
    v.has(Role::Auditor) || v.has(Role::Admin)
}

/// The reason of a grade correction as a viewer who may not see grades reads
/// it in the audit trail.
pub const GRADE_REDACTED: &str = "[masqué]";

/// Whether grade values (scores, statuses, correction reasons) in audit
/// entries are shown to the viewer: AUDITOR only (see the module doc).
pub fn audit_shows_grades(v: &Viewer) -> bool {
    v.has(Role::Auditor)
}

/// exportPersonData (GDPR art. 15 subject access): AUDITOR, ADMIN.
pub fn can_export_person_data(v: &Viewer) -> bool {
    v.has(Role::Auditor) || v.has(Role::Admin)
}

/// forgetPerson (GDPR art. 17 erasure on request): ADMIN only.
pub fn can_forget_person(v: &Viewer) -> bool {
    v.has(Role::Admin)
}

/// closeAccount: ADMIN, or HEAD of every establishment the person belongs to
/// (a guardian's children may be in several: one head may not close the
/// account the others' families still need).
pub fn can_close_account(m: &Model, v: &Viewer, person: PersonId) -> bool {
    if v.has(Role::Admin) {
        return true;
    }
    let establishments = m.establishments_of_person(person);
    v.has(Role::Head)
        && !establishments.is_empty()
        && establishments.iter().all(|e| Some(*e) == v.establishment)
}

/// studentAsOf: auditors only.
pub fn can_read_as_of(v: &Viewer) -> bool {
    v.has(Role::Auditor)
}

/// absenceStats of a class: HEAD and EDUCATION_STAFF of its establishment, AUDITOR.
pub fn can_read_absence_stats(m: &Model, v: &Viewer, class: ClassId) -> bool {
    v.has(Role::Auditor) || v.runs(m.establishment_of_class(class))
}

/// usageIndicators: HEAD of that establishment, ADMIN, AUDITOR. The report
/// holds counts of pseudonyms only, so no personal-data rule applies.
pub fn can_read_usage(v: &Viewer, establishment: EstablishmentId) -> bool {
    v.has(Role::Admin)
        || v.has(Role::Auditor)
        || (v.has(Role::Head) && v.establishment == Some(establishment))
}

// ---- Mutations -----------------------------------------------------------
//
// One function per command, over the command's own inputs; the system
// issuer runs only what `can_erase` lets it.

pub fn can_create_establishment(v: &Viewer) -> bool {
    v.has(Role::Admin)
}

/// createClass, enrollStudent, linkGuardian, assignTeacher: ADMIN, or HEAD of
/// the establishment concerned.
pub fn can_manage_roster(v: &Viewer, establishment: Option<EstablishmentId>) -> bool {
    v.has(Role::Admin)
        || (v.has(Role::Head) && establishment.is_some() && v.establishment == establishment)
}

// interop (issue 17)
/// importSiecle, importSts, `registre import`, `registre export lsu`: who may
/// manage the establishment's roster and register its students, guardians
/// and teachers (ADMIN, or HEAD of that establishment).
pub fn can_import_roster(v: &Viewer, establishment: EstablishmentId) -> bool {
    can_manage_roster(v, Some(establishment))
        && can_register(
            v,
            &[Role::Student, Role::Guardian, Role::Teacher],
            Some(establishment),
        )
}

/// registerPerson: ADMIN anything; a HEAD registers teachers, staff, students
/// and guardians, and only into their own establishment.
pub fn can_register(v: &Viewer, roles: &[Role], establishment: Option<EstablishmentId>) -> bool {
    if v.has(Role::Admin) {
        return true;
    }
    let head_grantable = |r: &Role| {
        matches!(
            r,
            Role::Teacher | Role::EducationStaff | Role::Student | Role::Guardian
        )
    };
    v.has(Role::Head)
        && roles.iter().all(head_grantable)
        && (establishment.is_none() || establishment == v.establishment)
}

/// reportAbsence: TEACHER of the student's class, EDUCATION_STAFF of its establishment.
pub fn can_report_absence(m: &Model, v: &Viewer, student: StudentId) -> bool {
    let Some(s) = m.student(student) else {
        return false;
    };
    teaches_class(m, v, s.class_id)
        || (v.has(Role::EducationStaff)
            && v.establishment.is_some()
            && v.establishment == m.establishment_of_class(s.class_id))
}

/// declareAbsence: a GUARDIAN of the student.
pub fn can_declare_absence(m: &Model, v: &Viewer, student: StudentId) -> bool {
    v.has(Role::Guardian) && m.is_guardian_of(v.person, student)
}

/// justifyAbsence: a GUARDIAN of the absent student (a live absence).
pub fn can_justify_absence(m: &Model, v: &Viewer, absence: AbsenceId) -> bool {
    m.absence(absence)
        .is_some_and(|a| can_declare_absence(m, v, a.student_id))
}

/// reviewJustification: EDUCATION_STAFF of the absent student's establishment.
pub fn can_review_justification(m: &Model, v: &Viewer, absence: AbsenceId) -> bool {
    m.absence(absence).is_some_and(|a| {
        v.has(Role::EducationStaff)
            && v.establishment.is_some()
            && v.establishment == m.establishment_of_student(a.student_id)
    })
}

/// createAssessment, assignHomework: a TEACHER assigned to that class and
/// subject, in their own name (`teacher` is the viewer).
pub fn can_teach_as(
    m: &Model,
    v: &Viewer,
    teacher: PersonId,
    class: ClassId,
    subject: &str,
) -> bool {
    teacher == v.person && teaches(m, v, class, subject.trim())
}

/// recordGrade: the TEACHER who owns the assessment.
pub fn can_grade(m: &Model, v: &Viewer, assessment: AssessmentId) -> bool {
    v.has(Role::Teacher)
        && m.assessment(assessment)
            .is_some_and(|a| a.teacher_id == v.person)
}

/// correctGrade: the TEACHER who owns the grade's assessment.
pub fn can_correct_grade(m: &Model, v: &Viewer, grade: GradeId) -> bool {
    m.grade(grade)
        .is_some_and(|g| can_grade(m, v, g.assessment_id))
}

/// sendMessage, in their own name (`from` is the viewer): every recipient
/// is someone they may write to ([`may_write`]; an unknown id is refused
/// like a forbidden one: whether an id is a person is not the sender's
/// business), and a reply goes to a thread they take part in.
pub fn can_send_message(
    m: &Model,
    v: &Viewer,
    from: PersonId,
    to: &[PersonId],
    reply_in: Option<ThreadId>,
) -> bool {
    from == v.person
        && to.iter().all(|r| *r == from || may_write(m, from, *r))
        && reply_in.is_none_or(|t| m.thread(t).is_some_and(|t| t.participants.contains(&from)))
}

/// markMessageRead: a recipient of the message, for themself.
pub fn can_mark_read(m: &Model, v: &Viewer, message: MessageId, reader: PersonId) -> bool {
    reader == v.person
        && m.message(message)
            .is_some_and(|msg| msg.to.contains(&reader))
}

/// Erasing a person (GDPR art. 17): on request, an ADMIN ([`can_forget_person`]);
/// the system, when a retention rule says so.
pub fn can_erase(by: Issuer<'_>) -> bool {
    match by {
        Issuer::Person(v) => can_forget_person(v),
        Issuer::System => true,
    }
}

/// The establishment where `p` works (TEACHER, EDUCATION_STAFF, HEAD).
fn works_in(m: &Model, p: PersonId) -> Option<EstablishmentId> {
    let person = m.person(p)?;
    let staff = person
        .roles
        .iter()
        .any(|r| matches!(r, Role::Teacher | Role::EducationStaff | Role::Head));
    if staff {
        person.establishment_id
    } else {
        None
    }
}

fn is_staff_of_student(m: &Model, staff: PersonId, student: StudentId) -> bool {
    let Some(s) = m.student(student) else {
        return false;
    };
    let Some(person) = m.person(staff) else {
        return false;
    };
    let teaches_it = person.roles.contains(&Role::Teacher) && m.teaches_class(staff, s.class_id);
    let runs_it = person
        .roles
        .iter()
        .any(|r| matches!(r, Role::EducationStaff | Role::Head))
        && person.establishment_id.is_some()
        && person.establishment_id == m.establishment_of_class(s.class_id);
    teaches_it || runs_it
}

fn guardian_meets_staff(m: &Model, guardian: PersonId, staff: PersonId) -> bool {
    let Some(est) = works_in(m, staff) else {
        return false;
    };
    m.children_of(guardian)
        .iter()
        .any(|k| m.establishment_of_student(k.id) == Some(est))
}

fn student_meets_staff(m: &Model, student_person: PersonId, staff: PersonId) -> bool {
    m.student_of_person(student_person)
        .is_some_and(|s| is_staff_of_student(m, staff, s.id))
}

/// May `from` write to `to`? Symmetric by construction.
pub fn may_write(m: &Model, from: PersonId, to: PersonId) -> bool {
    if from == to {
        return false;
    }
    let same_workplace =
        matches!((works_in(m, from), works_in(m, to)), (Some(a), Some(b)) if a == b);
    same_workplace
        || guardian_meets_staff(m, from, to)
        || guardian_meets_staff(m, to, from)
        || student_meets_staff(m, from, to)
        || student_meets_staff(m, to, from)
}

/// absenceReported: a GUARDIAN for their children; EDUCATION_STAFF and HEAD
/// for their establishment. `student` narrows to one student.
pub fn can_follow_absences(m: &Model, v: &Viewer, student: Option<StudentId>) -> bool {
    match student {
        Some(s) => absence_visible_live(m, v, s),
        None => {
            v.has(Role::Guardian)
                || ((v.has(Role::EducationStaff) || v.has(Role::Head)) && v.establishment.is_some())
        }
    }
}

/// Whether a live absence of `student` goes to this subscriber.
pub fn absence_visible_live(m: &Model, v: &Viewer, student: StudentId) -> bool {
    (v.has(Role::Guardian) && m.is_guardian_of(v.person, student))
        || v.runs(m.establishment_of_student(student))
}
