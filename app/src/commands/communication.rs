//! The commands of communication (issue 16). `sendMessage`, `assignHomework`
//! and `justifyAbsence` run through the wrappers of
//! `registre_domain::communication` (same names and serde forms as the plain
//! commands when nothing new is asked, so idempotency keys keep matching).

use super::{Command, Issuer, Model};
use crate::policy;
use crate::ApiError;
use chrono::{DateTime, Utc};
use registre_domain::communication::{self as comm, Audience};
use registre_domain::messages::{self, ThreadTarget};
use registre_domain::{absences, homework, AttachmentId, DomainEvent, PersonId, StreamName};
use std::collections::BTreeSet;

/// The attachments among `ids` that `person` uploaded.
fn own_attachments(m: &Model, person: PersonId, ids: &[AttachmentId]) -> BTreeSet<AttachmentId> {
    ids.iter()
        .copied()
        .filter(|id| {
            m.communication()
                .attachment(*id)
                .is_some_and(|a| a.uploaded_by == person)
        })
        .collect()
}

/// Every member of the groups, resolved in the roster now.
pub fn group_members(m: &Model, groups: &[comm::RecipientGroup]) -> Vec<PersonId> {
    let mut out: Vec<PersonId> = Vec::new();
    for g in groups {
        match g.audience {
            Audience::Guardians => {
                for s in m.students_of_class(g.class_id) {
                    out.extend(s.guardians.iter().copied());
                }
            }
            Audience::Students => {
                out.extend(m.students_of_class(g.class_id).iter().map(|s| s.person_id));
            }
            Audience::Teachers => {
                out.extend(
                    m.teachings()
                        .filter(|t| t.class_id == g.class_id)
                        .map(|t| t.teacher_id),
                );
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

impl Command for comm::SendMessage {
    const NAME: &'static str = "sendMessage";
    const RATE: Option<crate::limits::Limited> = Some(crate::limits::Limited::Message);
    type State = messages::Thread;
    type Facts = comm::SendFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        let reply_in = match self.message.thread {
            ThreadTarget::Reply(thread) => Some(thread),
            ThreadTarget::New { .. } => None,
        };
        by.viewer().is_some_and(|v| {
            policy::can_send_message(m, v, self.message.from, &self.message.to, reply_in)
                && (self.to_groups.is_empty() || policy::can_write_to_groups(m, v, &self.to_groups))
        })
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> Self::Facts {
        comm::SendFacts {
            message: messages::SendFacts {
                registered_recipients: self
                    .message
                    .to
                    .iter()
                    .copied()
                    .filter(|p| m.person(*p).is_some())
                    .collect(),
            },
            group_members: group_members(m, &self.to_groups),
            own_attachments: own_attachments(m, self.message.from, &self.attachments),
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::thread(self.message.thread_id())
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(comm::send_message(state, self, facts)?)
    }
}

impl Command for comm::AssignHomework {
    const NAME: &'static str = "assignHomework";
    type State = homework::Homework;
    type Facts = comm::HomeworkFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        let h = &self.homework;
        by.viewer()
            .is_some_and(|v| policy::can_teach_as(m, v, h.teacher_id, h.class_id, &h.subject))
    }
    fn facts(&self, m: &Model, now: DateTime<Utc>) -> Self::Facts {
        let zone = m.zone_of_class(self.homework.class_id);
        comm::HomeworkFacts {
            homework: homework::HomeworkFacts {
                class_exists: m.class(self.homework.class_id).is_some(),
                today: now.with_timezone(&zone).date_naive(),
                class_closed: super::interop::closed_class(m, self.homework.class_id),
            },
            own_attachments: own_attachments(m, self.homework.teacher_id, &self.attachments),
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::homework(self.homework.homework_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(comm::assign_homework(state, self, facts)?)
    }
}

/// justifyAbsence with documents; `by` is the guardian attaching them.
#[derive(Debug, serde::Serialize)]
pub struct JustifyWithDocuments {
    #[serde(flatten)]
    pub command: comm::JustifyAbsence,
    #[serde(skip)]
    pub by: PersonId,
}

impl Command for JustifyWithDocuments {
    const NAME: &'static str = "justifyAbsence";
    const RATE: Option<crate::limits::Limited> = Some(crate::limits::Limited::AbsenceDeclaration);
    type State = absences::Absence;
    type Facts = BTreeSet<AttachmentId>;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer().is_some_and(|v| {
            v.person == self.by
                && policy::can_justify_absence(m, v, self.command.justification.absence_id)
        })
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> Self::Facts {
        own_attachments(m, self.by, &self.command.attachments)
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::absence(self.command.justification.absence_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(comm::justify_absence(state, &self.command, facts)?)
    }
}

impl Command for comm::UploadAttachment {
    const NAME: &'static str = "uploadAttachment";
    type State = comm::Attachment;
    type Facts = ();

    fn authorize(&self, _: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| v.person == self.uploaded_by && policy::can_upload(v))
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::attachment(self.attachment_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(comm::upload_attachment(state, self)?)
    }
}

impl Command for comm::SetNotificationPreference {
    const NAME: &'static str = "setNotificationPreference";
    type State = comm::Notifications;
    type Facts = ();

    fn authorize(&self, _: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_manage_notifications(v, self.person_id))
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::notifications(self.person_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(comm::set_notification_preference(state, self)?)
    }
}

impl Command for comm::RegisterWebPush {
    const NAME: &'static str = "registerWebPush";
    type State = comm::Notifications;
    type Facts = ();

    fn authorize(&self, _: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_manage_notifications(v, self.person_id))
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::notifications(self.person_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(comm::register_web_push(state, self)?)
    }
}

/// The delivery drops a subscription its push service said is gone: the
/// system does it, no person.
impl Command for comm::DropWebPush {
    const NAME: &'static str = "dropWebPush";
    type State = comm::Notifications;
    type Facts = ();

    fn authorize(&self, _: &Model, by: Issuer<'_>) -> bool {
        matches!(by, Issuer::System)
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::notifications(self.person_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(comm::drop_web_push(state, self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fingerprint;
    use uuid::Uuid;

    /// An idempotency key stored before issue 16 must keep matching: with no
    /// group and no attachment, the wrapper is the plain command.
    #[test]
    fn without_groups_or_attachments_the_wrappers_fingerprint_as_before() {
        let plain = messages::SendMessage {
            message_id: Uuid::from_u128(1).into(),
            thread: ThreadTarget::New {
                id: Uuid::from_u128(2).into(),
            },
            from: Uuid::from_u128(3).into(),
            to: vec![Uuid::from_u128(4).into()],
            subject: "Sortie".into(),
            body: "Bonjour".into(),
        };
        let wrapped = comm::SendMessage {
            message: plain.clone(),
            to_groups: Vec::new(),
            attachments: Vec::new(),
        };
        assert_eq!(
            fingerprint(&wrapped).expect("fingerprint"),
            fingerprint(&plain).expect("fingerprint")
        );
        let with_file = comm::SendMessage {
            attachments: vec![Uuid::from_u128(9).into()],
            ..wrapped
        };
        assert_ne!(
            fingerprint(&with_file).expect("fingerprint"),
            fingerprint(&plain).expect("fingerprint")
        );
        let justify = absences::JustifyAbsence {
            absence_id: Uuid::from_u128(5).into(),
            reason: "Malade".into(),
        };
        let wrapped = JustifyWithDocuments {
            command: comm::JustifyAbsence {
                justification: justify.clone(),
                attachments: Vec::new(),
            },
            by: Uuid::from_u128(6).into(),
        };
        assert_eq!(
            fingerprint(&wrapped).expect("fingerprint"),
            fingerprint(&justify).expect("fingerprint")
        );
    }
}
