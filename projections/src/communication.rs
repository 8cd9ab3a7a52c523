//! Communication (issue 16) in the read model: attachments and what they
//! are attached to, each person's notification preferences and Web Push
//! subscriptions. Held by one field of [`crate::ReadModel`], folded by
//! delegation from its apply match, kept in its snapshot.

use chrono::{DateTime, Utc};
use registre_domain::communication::{
    AttachedTo, AttachmentUploaded, AttachmentsLinked, Channel, NotificationPreferenceSet,
    Preferences, WebPushDropped, WebPushRegistered,
};
use registre_domain::{
    AbsenceId, AttachmentId, HomeworkId, MessageId, PersonId, StudentId, WebPushId,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An uploaded file, as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub id: AttachmentId,
    pub uploaded_by: PersonId,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    #[serde(with = "crate::compact_time::instant")]
    pub uploaded_at: DateTime<Utc>,
    /// What it is attached to, in log order.
    pub attached_to: Vec<AttachedTo>,
    /// The student whose key sealed its bytes (a justification's document).
    pub sealed_for: Option<StudentId>,
}

/// One channel's switches of one person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChannelPreference {
    pub preferences: Preferences,
    pub email: Option<String>,
}

/// A browser's push subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushSubscription {
    pub id: WebPushId,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Communication {
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) attachments: BTreeMap<AttachmentId, Attachment>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) uploaded_by: BTreeMap<PersonId, Vec<AttachmentId>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) of_message: BTreeMap<MessageId, Vec<AttachmentId>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) of_homework: BTreeMap<HomeworkId, Vec<AttachmentId>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) of_absence: BTreeMap<AbsenceId, Vec<AttachmentId>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) preferences: BTreeMap<PersonId, BTreeMap<Channel, ChannelPreference>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) push: BTreeMap<PersonId, BTreeMap<WebPushId, PushSubscription>>,
}

impl Communication {
    pub(crate) fn uploaded(&mut self, e: AttachmentUploaded, at: DateTime<Utc>) {
        if self.attachments.contains_key(&e.attachment_id) {
            return;
        }
        self.uploaded_by
            .entry(e.uploaded_by)
            .or_default()
            .push(e.attachment_id);
        self.attachments.insert(
            e.attachment_id,
            Attachment {
                id: e.attachment_id,
                uploaded_by: e.uploaded_by,
                name: e.name,
                content_type: e.content_type,
                size: e.size,
                sha256: e.sha256,
                uploaded_at: at,
                attached_to: Vec::new(),
                sealed_for: None,
            },
        );
    }

    /// A link's side kept with what the files are attached to (in the
    /// link's partition).
    pub(crate) fn link_targets(&mut self, e: &AttachmentsLinked) {
        let list = match e.to {
            AttachedTo::Message { message_id, .. } => {
                self.of_message.entry(message_id).or_default()
            }
            AttachedTo::Homework(h) => self.of_homework.entry(h).or_default(),
            AttachedTo::Justification(a) => self.of_absence.entry(a).or_default(),
        };
        for id in &e.attachments {
            if !list.contains(id) {
                list.push(*id);
            }
        }
    }

    /// A link's side kept with each attachment (in the upload's partition,
    /// which may be another one).
    pub(crate) fn link_attachments(&mut self, e: AttachmentsLinked) {
        for id in e.attachments {
            if let Some(a) = self.attachments.get_mut(&id) {
                if !a.attached_to.contains(&e.to) {
                    a.attached_to.push(e.to);
                }
                if matches!(e.to, AttachedTo::Justification(_)) {
                    a.sealed_for = a.sealed_for.or(e.student_id);
                }
            }
        }
    }

    pub(crate) fn preference_set(&mut self, e: NotificationPreferenceSet) {
        self.preferences.entry(e.person_id).or_default().insert(
            e.channel,
            ChannelPreference {
                preferences: e.preferences,
                email: e.email,
            },
        );
    }

    pub(crate) fn push_registered(&mut self, e: WebPushRegistered) {
        self.push.entry(e.person_id).or_default().insert(
            e.subscription_id,
            PushSubscription {
                id: e.subscription_id,
                endpoint: e.endpoint,
                p256dh: e.p256dh,
                auth: e.auth,
            },
        );
    }

    pub(crate) fn push_dropped(&mut self, e: WebPushDropped) {
        if let Some(subs) = self.push.get_mut(&e.person_id) {
            subs.remove(&e.subscription_id);
        }
    }

    /// Erasure: the names of the files the person uploaded, their address,
    /// their push subscriptions (which identify a browser) go.
    pub(crate) fn erase(&mut self, person: PersonId) {
        for id in self.uploaded_by.get(&person).into_iter().flatten() {
            if let Some(a) = self.attachments.get_mut(id) {
                a.name = registre_store::ERASED.to_owned();
            }
        }
        if let Some(channels) = self.preferences.get_mut(&person) {
            for c in channels.values_mut() {
                c.email = None;
            }
        }
        self.push.remove(&person);
    }

    /// Whether some attachment with these bytes is kept as uploaded (not
    /// sealed for a student).
    pub fn plain_copy_needed(&self, sha256: &str) -> bool {
        self.attachments
            .values()
            .any(|a| a.sha256 == sha256 && a.sealed_for.is_none())
    }

    pub fn attachment(&self, id: AttachmentId) -> Option<&Attachment> {
        self.attachments.get(&id)
    }

    fn list(&self, ids: Option<&Vec<AttachmentId>>) -> Vec<Attachment> {
        ids.into_iter()
            .flatten()
            .filter_map(|id| self.attachments.get(id).cloned())
            .collect()
    }

    pub fn of_message(&self, id: MessageId) -> Vec<Attachment> {
        self.list(self.of_message.get(&id))
    }

    pub fn of_homework(&self, id: HomeworkId) -> Vec<Attachment> {
        self.list(self.of_homework.get(&id))
    }

    pub fn of_absence(&self, id: AbsenceId) -> Vec<Attachment> {
        self.list(self.of_absence.get(&id))
    }

    /// The person's switches for a channel (the defaults when never set).
    pub fn preference(&self, person: PersonId, channel: Channel) -> ChannelPreference {
        self.preferences
            .get(&person)
            .and_then(|c| c.get(&channel))
            .cloned()
            .unwrap_or(ChannelPreference {
                preferences: Preferences::default(),
                email: None,
            })
    }

    pub fn push_subscriptions(&self, person: PersonId) -> Vec<PushSubscription> {
        self.push
            .get(&person)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }
}
