//! Who may report, punish, sanction, erase and read what (issue 15).
//!
//! Need-to-know on incidents: EDUCATION_STAFF and HEAD see every incident of
//! their establishment; a TEACHER the ones they reported or that name a
//! student of a class they teach; a GUARDIAN or STUDENT only their child's
//! (their own) line of an incident naming them, never the other students.

use super::{is_family, teaches_class, Issuer, Viewer};
use registre_domain::discipline::Protagonist;
use registre_domain::{EstablishmentId, Role, SanctionId, StudentId};
use registre_projections::discipline::Incident;
use registre_projections::ReadModel as Model;

/// reportIncident: TEACHER, EDUCATION_STAFF, HEAD of the establishment.
pub fn can_report_incident(v: &Viewer, establishment: EstablishmentId) -> bool {
    v.establishment == Some(establishment)
        && (v.has(Role::Teacher) || v.has(Role::EducationStaff) || v.has(Role::Head))
}

/// givePunishment: TEACHER of the student's class, EDUCATION_STAFF or HEAD of
/// its establishment.
pub fn can_give_punishment(m: &Model, v: &Viewer, student: StudentId) -> bool {
    let Some(s) = m.student(student) else {
        return false;
    };
    teaches_class(m, v, s.class_id) || v.runs(m.establishment_of_class(s.class_id))
}

/// imposeSanction: HEAD of the student's establishment.
pub fn can_impose_sanction(m: &Model, v: &Viewer, student: StudentId) -> bool {
    let establishment = m.establishment_of_student(student);
    v.has(Role::Head) && establishment.is_some() && v.establishment == establishment
}

/// eraseSanction: HEAD of the sanction's establishment; the system when the
/// retention rule says its day has come.
pub fn can_erase_sanction(m: &Model, by: Issuer<'_>, sanction: SanctionId) -> bool {
    match by {
        Issuer::System => true,
        Issuer::Person(v) => m
            .discipline()
            .sanction(sanction)
            .is_some_and(|s| v.has(Role::Head) && v.establishment == Some(s.establishment_id)),
    }
}

/// Student.punishments: the student, their guardians, their teachers,
/// EDUCATION_STAFF and HEAD (whoever reads the record).
pub fn can_see_punishments(m: &Model, v: &Viewer, student: StudentId) -> bool {
    super::can_read_record(m, v, student)
}

/// Student.sanctions: the student, their guardians, EDUCATION_STAFF and
/// HEAD; not teachers (the administrative record is the head's).
pub fn can_see_sanctions(m: &Model, v: &Viewer, student: StudentId) -> bool {
    is_family(m, v, student) || v.runs(m.establishment_of_student(student))
}

/// incidents(establishmentId): EDUCATION_STAFF and HEAD of it.
pub fn can_list_incidents(v: &Viewer, establishment: EstablishmentId) -> bool {
    v.runs(Some(establishment))
}

/// Discipline statistics: HEAD of the establishment.
pub fn can_read_discipline_statistics(v: &Viewer, establishment: EstablishmentId) -> bool {
    v.has(Role::Head) && v.establishment == Some(establishment)
}

/// The protagonists of `incident` the viewer may see: `None` when they may
/// not see the incident at all; all of them for staff, the head and the
/// teachers concerned; the family's own lines only for a guardian or student.
pub fn visible_protagonists(
    m: &Model,
    v: &Viewer,
    incident: &Incident,
) -> Option<Vec<Protagonist>> {
    let whole = v.runs(Some(incident.establishment_id))
        || (v.has(Role::Teacher)
            && (incident.reported_by == v.person
                || incident.protagonists.iter().any(|p| {
                    m.student(p.student_id)
                        .is_some_and(|s| teaches_class(m, v, s.class_id))
                })));
    if whole {
        return Some(incident.protagonists.clone());
    }
    let own: Vec<Protagonist> = incident
        .protagonists
        .iter()
        .filter(|p| is_family(m, v, p.student_id))
        .copied()
        .collect();
    (!own.is_empty()).then_some(own)
}
