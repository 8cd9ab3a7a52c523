//! Who may do what with communication (issue 16).
//!
//! - Writing to a whole group of a class (its guardians, students or
//!   teachers): a TEACHER of that class, or EDUCATION_STAFF or HEAD of its
//!   establishment. Never a GUARDIAN or a STUDENT: a parent does not write to
//!   all the parents of a class through Registre.
//! - Read receipts: the sender of a message only.
//! - Uploading a file: any authenticated person. Attaching it: only the one
//!   who uploaded it (the domain checks, NOT_FOUND otherwise).
//! - Downloading: whoever uploaded it, or may see what it is attached to,
//!   exactly: a message's sender and recipients; a homework entry, the
//!   class's students and their guardians, its teachers of that subject and
//!   the establishment's staff (as `can_see_subject`); a justification's
//!   documents, whoever may read the student's record (`can_read_record`:
//!   the family, the class's teachers, the establishment's staff).
//! - Preferences and push subscriptions: each person their own.

use super::Viewer;
use registre_domain::communication::{AttachedTo, RecipientGroup};
use registre_domain::{AttachmentId, ClassId, PersonId};
use registre_projections::ReadModel as Model;

/// sendMessage with `toGroups`: each group's class is one the viewer teaches
/// or runs.
pub fn can_write_to_groups(m: &Model, v: &Viewer, groups: &[RecipientGroup]) -> bool {
    groups.iter().all(|g| {
        m.class(g.class_id).is_some()
            && (super::teaches_class(m, v, g.class_id)
                || v.runs(m.establishment_of_class(g.class_id)))
    })
}

/// Whether the viewer sees a message's receipts: its sender.
pub fn sees_receipts(m: &Model, v: &Viewer, message: registre_domain::MessageId) -> bool {
    m.message(message).is_some_and(|msg| msg.from == v.person)
}

/// uploadAttachment: any authenticated person (the viewer exists).
pub fn can_upload(_: &Viewer) -> bool {
    true
}

/// Whoever sees this homework entry: as `can_see_subject` for some student
/// of the class, or a teacher of that subject there, or its staff.
fn sees_homework(m: &Model, v: &Viewer, class: ClassId, subject: &str) -> bool {
    super::teaches(m, v, class, subject)
        || v.runs(m.establishment_of_class(class))
        || m.students_of_class(class)
            .iter()
            .any(|s| super::can_see_subject(m, v, s.id, class, subject))
}

/// GET on an attachment's url.
pub fn can_download(m: &Model, v: &Viewer, attachment: AttachmentId) -> bool {
    let Some(a) = m.communication().attachment(attachment) else {
        return false;
    };
    a.uploaded_by == v.person
        || a.attached_to.iter().any(|to| match *to {
            AttachedTo::Message { message_id, .. } => m
                .message(message_id)
                .is_some_and(|msg| msg.from == v.person || msg.to.contains(&v.person)),
            AttachedTo::Homework(h) => m
                .homework_entry(h)
                .is_some_and(|h| sees_homework(m, v, h.class_id, &h.subject)),
            AttachedTo::Justification(absence) => m
                .absence(absence)
                .is_some_and(|abs| super::can_read_record(m, v, abs.student_id)),
        })
}

/// setNotificationPreference, registerWebPush: for oneself.
pub fn can_manage_notifications(v: &Viewer, person: PersonId) -> bool {
    v.person == person
}
