//! Who may define and close periods, write appreciations, and read report
//! cards, gradebooks and an assessment's grades (evaluation, issue 14).
//!
//! - definePeriods: ADMIN, or HEAD of the establishment;
//! - closePeriod, reopenPeriod: HEAD of the period's establishment;
//! - a subject's appreciation: the TEACHER of that subject in the student's
//!   class; the general appreciation: HEAD of the student's establishment;
//! - a report card: whoever may read the student's record (the student,
//!   their guardians, the HEAD and EDUCATION_STAFF of the establishment, the
//!   teachers of the class), whole: the class council is where every
//!   teacher of the class reads every subject of the card;
//! - a class's gradebook of a subject: the TEACHER of that subject in the
//!   class, HEAD and EDUCATION_STAFF of its establishment;
//! - the grades of one assessment: the TEACHER who owns it, HEAD and
//!   EDUCATION_STAFF of its establishment. Never students nor guardians.

use super::{can_manage_roster, can_read_record, teaches, Viewer};
use registre_domain::{AssessmentId, ClassId, EstablishmentId, PeriodId, Role, StudentId};
use registre_projections::ReadModel as Model;

/// definePeriods: ADMIN, or HEAD of that establishment.
pub fn can_define_periods(v: &Viewer, establishment: EstablishmentId) -> bool {
    can_manage_roster(v, Some(establishment))
}

/// closePeriod and reopenPeriod: HEAD of the period's establishment.
pub fn can_close_period(m: &Model, v: &Viewer, period: PeriodId) -> bool {
    m.period(period)
        .is_some_and(|p| v.has(Role::Head) && v.establishment == Some(p.establishment_id))
}

/// writeAppreciation: the subject's TEACHER in the student's class, or for
/// the general appreciation (`subject: None`) the HEAD of the student's
/// establishment.
pub fn can_write_appreciation(
    m: &Model,
    v: &Viewer,
    student: StudentId,
    subject: Option<&str>,
) -> bool {
    let Some(s) = m.student(student) else {
        return false;
    };
    match subject {
        Some(subject) => teaches(m, v, s.class_id, subject.trim()),
        None => {
            v.has(Role::Head)
                && v.establishment.is_some()
                && v.establishment == m.establishment_of_class(s.class_id)
        }
    }
}

/// Student.reportCard and its printable bulletin.
pub fn can_read_report_card(m: &Model, v: &Viewer, student: StudentId) -> bool {
    can_read_record(m, v, student)
}

/// SchoolClass.gradebook(subject).
pub fn can_read_gradebook(m: &Model, v: &Viewer, class: ClassId, subject: &str) -> bool {
    teaches(m, v, class, subject) || v.runs(m.establishment_of_class(class))
}

/// Assessment.grades.
pub fn can_read_assessment_grades(m: &Model, v: &Viewer, assessment: AssessmentId) -> bool {
    m.assessment(assessment).is_some_and(|a| {
        (v.has(Role::Teacher) && a.teacher_id == v.person)
            || v.runs(m.establishment_of_class(a.class_id))
    })
}
