//! Communication (issue 16): messages to whole groups of a class, attachments
//! referenced by messages, homework and justifications, and each person's
//! choice of the notifications that reach them outside the app (Web Push,
//! e-mail).
//!
//! The bytes of an attachment are not in the log: `AttachmentUploaded` holds
//! their SHA-256 (the store keeps the bytes content-addressed), and
//! `AttachmentsLinked` says what they were attached to, appended with the
//! message, homework entry or justification on that entity's stream.
//!
//! The commands that attach ([`SendMessage`], [`AssignHomework`],
//! [`JustifyAbsence`]) wrap the existing ones: their serde form is the inner
//! command's when nothing is attached and no group is named (`flatten`,
//! empty lists skipped), so an idempotency key stored before keeps matching.

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::events::DomainEvent;
use crate::ids::*;
use crate::text;
use crate::{absences, homework, messages};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

const PUSH_NS: Uuid = Uuid::from_u128(0x3b0f_7d52_91a4_4e0c_8f61_5c2a_0d9e_b714);

impl WebPushId {
    pub fn for_endpoint(person: PersonId, endpoint: &str) -> Self {
        Self(Uuid::new_v5(
            &PUSH_NS,
            format!("{}:{endpoint}", person.0).as_bytes(),
        ))
    }
}

/// Who of a class a group message goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Audience {
    Guardians,
    Students,
    Teachers,
}

/// Every guardian (or student, or teacher) of a class, resolved when sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RecipientGroup {
    pub class_id: ClassId,
    pub audience: Audience,
}

/// Distinct recipients of a message sent to groups: the guardians of a few
/// classes, not of the whole establishment.
pub const GROUP_RECIPIENTS_MAX: usize = 500;
/// Groups one message names.
pub const GROUPS_MAX: usize = 10;
/// Attachments of one message, homework entry or justification.
pub const ATTACHMENTS_MAX: usize = 10;
/// The longest file name kept.
pub const FILE_NAME_MAX: usize = 255;
/// An e-mail address (RFC 5321's path limit).
pub const EMAIL_MAX: usize = 254;
/// A push service URL.
pub const ENDPOINT_MAX: usize = 2_048;

/// The channels a notification reaches a person by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Channel {
    WebPush,
    Email,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::WebPush, Channel::Email];
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::WebPush => "WEB_PUSH",
            Channel::Email => "EMAIL",
        }
    }
}

/// What a notification is about. New kinds are appended (sanctions arrive
/// with the discipline issue); [`Preferences::wants`] is the one place a
/// kind meets its switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationKind {
    Absence,
    Grade,
    Message,
    Sanction,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Absence => "ABSENCE",
            NotificationKind::Grade => "GRADE",
            NotificationKind::Message => "MESSAGE",
            NotificationKind::Sanction => "SANCTION",
        }
    }
}

/// One person's switches for one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preferences {
    pub absences: bool,
    pub grades: bool,
    pub messages: bool,
    pub sanctions: bool,
}

impl Default for Preferences {
    /// Absences on, the rest off (the defaults: what a family must
    /// hear of at once, nothing that would make them switch everything off).
    fn default() -> Self {
        Self {
            absences: true,
            grades: false,
            messages: false,
            sanctions: false,
        }
    }
}

impl Preferences {
    pub fn wants(&self, kind: NotificationKind) -> bool {
        match kind {
            NotificationKind::Absence => self.absences,
            NotificationKind::Grade => self.grades,
            NotificationKind::Message => self.messages,
            NotificationKind::Sanction => self.sanctions,
        }
    }
}

/// What an attachment is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttachedTo {
    Message {
        message_id: MessageId,
        thread_id: ThreadId,
    },
    Homework(HomeworkId),
    /// A justification of this absence (the student's personal data).
    Justification(AbsenceId),
}

// ---- Events ---------------------------------------------------------------------

/// A file was uploaded: its bytes are in the store under `sha256`; its name
/// is the uploader's personal text (a doctor's note names the child).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttachmentUploaded {
    pub attachment_id: AttachmentId,
    pub uploaded_by: PersonId,
    pub name: String,
    /// Decided by sniffing the content, never the declared type.
    pub content_type: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
}

/// Attachments joined a message, homework entry or justification, appended
/// with it on its stream. `student_id` names the student whose key seals the
/// bytes of a justification's documents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttachmentsLinked {
    pub to: AttachedTo,
    pub attachments: Vec<AttachmentId>,
    pub student_id: Option<StudentId>,
}

/// A person's switches for one channel (and, for EMAIL, the address).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NotificationPreferenceSet {
    pub person_id: PersonId,
    pub channel: Channel,
    pub preferences: Preferences,
    pub email: Option<String>,
}

/// A browser's push subscription (RFC 8030 endpoint, RFC 8291 keys).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebPushRegistered {
    pub person_id: PersonId,
    pub subscription_id: WebPushId,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

/// The push service said the subscription is gone (404 or 410).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebPushDropped {
    pub person_id: PersonId,
    pub subscription_id: WebPushId,
    pub status: u16,
}

// ---- Attachments ----------------------------------------------------------------

/// Decision state of an `attachment-*` stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub uploaded: bool,
    pub version: u64,
}

impl Aggregate for Attachment {
    fn apply(&mut self, event: &DomainEvent) {
        if let DomainEvent::AttachmentUploaded(_) = event {
            self.uploaded = true;
            self.version += 1;
        }
    }
    fn version(&self) -> u64 {
        self.version
    }
}

/// Records an uploaded file whose bytes the caller has stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UploadAttachment {
    #[serde(skip)]
    pub attachment_id: AttachmentId,
    pub uploaded_by: PersonId,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
}

pub fn upload_attachment(
    state: &Attachment,
    cmd: &UploadAttachment,
) -> Result<Vec<DomainEvent>, DomainError> {
    if state.uploaded {
        return Err(DomainError::Conflict(format!(
            "attachment {} already exists",
            cmd.attachment_id
        )));
    }
    // A file name is whatever the phone called it: keep its last path
    // segment, and fall back to a neutral name rather than refuse.
    let base = cmd.name.rsplit(['/', '\\']).next().unwrap_or_default();
    let name = text::line("name", base, FILE_NAME_MAX)
        .or_else(|_| text::line("name", "document", FILE_NAME_MAX))?;
    if cmd.size == 0 {
        return Err(DomainError::invalid("file", "must not be empty"));
    }
    if cmd.sha256.len() != 64 || !cmd.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DomainError::invalid("sha256", "must be 64 hex digits"));
    }
    Ok(vec![DomainEvent::AttachmentUploaded(AttachmentUploaded {
        attachment_id: cmd.attachment_id,
        uploaded_by: cmd.uploaded_by,
        name,
        content_type: cmd.content_type.clone(),
        size: cmd.size,
        sha256: cmd.sha256.to_ascii_lowercase(),
    })])
}

/// The attachments a command names, checked against the facts: at most
/// [`ATTACHMENTS_MAX`], each uploaded by the one attaching it (NOT_FOUND
/// otherwise: another person's upload is not theirs to know of).
fn attachments(
    ids: &[AttachmentId],
    own: &BTreeSet<AttachmentId>,
) -> Result<Vec<AttachmentId>, DomainError> {
    let mut out: Vec<AttachmentId> = Vec::with_capacity(ids.len());
    for a in ids {
        if !out.contains(a) {
            out.push(*a);
        }
    }
    if out.len() > ATTACHMENTS_MAX {
        return Err(DomainError::invalid(
            "attachmentIds",
            format!("at most {ATTACHMENTS_MAX} attachments"),
        ));
    }
    if let Some(missing) = out.iter().find(|a| !own.contains(a)) {
        return Err(DomainError::NotFound(format!("attachment {missing}")));
    }
    Ok(out)
}

fn linked(
    to: AttachedTo,
    ids: Vec<AttachmentId>,
    student_id: Option<StudentId>,
) -> Option<DomainEvent> {
    if ids.is_empty() {
        return None;
    }
    Some(DomainEvent::AttachmentsLinked(AttachmentsLinked {
        to,
        attachments: ids,
        student_id,
    }))
}

// ---- Messages to groups, with attachments -----------------------------------------

/// sendMessage: individual recipients, groups, attachments.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SendMessage {
    #[serde(flatten)]
    pub message: messages::SendMessage,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub to_groups: Vec<RecipientGroup>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentId>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SendFacts {
    pub message: messages::SendFacts,
    /// The members of the groups, resolved in the roster now.
    pub group_members: Vec<PersonId>,
    /// Attachments the sender uploaded, among those named.
    pub own_attachments: BTreeSet<AttachmentId>,
}

pub fn send_message(
    state: &messages::Thread,
    cmd: &SendMessage,
    facts: &SendFacts,
) -> Result<Vec<DomainEvent>, DomainError> {
    if cmd.to_groups.len() > GROUPS_MAX {
        return Err(DomainError::invalid(
            "toGroups",
            format!("at most {GROUPS_MAX} groups"),
        ));
    }
    let ids = attachments(&cmd.attachments, &facts.own_attachments)?;
    let mut events = if cmd.to_groups.is_empty() {
        messages::send_message(state, &cmd.message, &facts.message)?
    } else {
        let mut message = cmd.message.clone();
        let mut registered = facts.message.registered_recipients.clone();
        for p in &facts.group_members {
            if *p != message.from && !message.to.contains(p) {
                message.to.push(*p);
            }
            registered.push(*p);
        }
        if message.to.is_empty() {
            return Err(DomainError::invalid(
                "toGroups",
                "the groups have no member other than the sender",
            ));
        }
        messages::send_message_with_limit(
            state,
            &message,
            &messages::SendFacts {
                registered_recipients: registered,
            },
            GROUP_RECIPIENTS_MAX,
        )?
    };
    events.extend(linked(
        AttachedTo::Message {
            message_id: cmd.message.message_id,
            thread_id: cmd.message.thread_id(),
        },
        ids,
        None,
    ));
    Ok(events)
}

/// assignHomework with attachments (a worksheet).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AssignHomework {
    #[serde(flatten)]
    pub homework: homework::AssignHomework,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentId>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HomeworkFacts {
    pub homework: homework::HomeworkFacts,
    pub own_attachments: BTreeSet<AttachmentId>,
}

pub fn assign_homework(
    state: &homework::Homework,
    cmd: &AssignHomework,
    facts: &HomeworkFacts,
) -> Result<Vec<DomainEvent>, DomainError> {
    let ids = attachments(&cmd.attachments, &facts.own_attachments)?;
    let mut events = homework::assign_homework(state, &cmd.homework, &facts.homework)?;
    events.extend(linked(
        AttachedTo::Homework(cmd.homework.homework_id),
        ids,
        None,
    ));
    Ok(events)
}

/// justifyAbsence with documents (a doctor's note).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JustifyAbsence {
    #[serde(flatten)]
    pub justification: absences::JustifyAbsence,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentId>,
}

pub fn justify_absence(
    state: &absences::Absence,
    cmd: &JustifyAbsence,
    own_attachments: &BTreeSet<AttachmentId>,
) -> Result<Vec<DomainEvent>, DomainError> {
    let ids = attachments(&cmd.attachments, own_attachments)?;
    let mut events = absences::justify_absence(state, &cmd.justification)?;
    let student = events.iter().find_map(|e| match e {
        DomainEvent::AbsenceJustified(j) => Some(j.student_id),
        _ => None,
    });
    events.extend(linked(
        AttachedTo::Justification(cmd.justification.absence_id),
        ids,
        student,
    ));
    Ok(events)
}

// ---- Notification preferences and push subscriptions ------------------------------

/// Decision state of a `notifications-*` stream (one per person).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Notifications {
    pub preferences: BTreeMap<Channel, (Preferences, Option<String>)>,
    pub push: BTreeSet<WebPushId>,
    pub version: u64,
}

impl Aggregate for Notifications {
    fn apply(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::NotificationPreferenceSet(e) => {
                self.preferences
                    .insert(e.channel, (e.preferences, e.email.clone()));
            }
            DomainEvent::WebPushRegistered(e) => {
                self.push.insert(e.subscription_id);
            }
            DomainEvent::WebPushDropped(e) => {
                self.push.remove(&e.subscription_id);
            }
            _ => return,
        }
        self.version += 1;
    }
    fn version(&self) -> u64 {
        self.version
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SetNotificationPreference {
    pub person_id: PersonId,
    pub channel: Channel,
    pub preferences: Preferences,
    pub email: Option<String>,
}

/// A plausible address: one `@`, something on each side, a dot in the
/// domain, no space or control. Deliverability is the mail server's to say.
fn email(raw: &str) -> Result<String, DomainError> {
    let s = raw.trim();
    let bad = |why: &str| Err(DomainError::invalid("email", why));
    if s.len() > EMAIL_MAX {
        return bad("is too long");
    }
    let Some((local, domain)) = s.split_once('@') else {
        return bad("must be an address such as nom@exemple.fr");
    };
    if local.is_empty()
        || domain.len() < 3
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains('@')
        || s.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"')
        })
    {
        return bad("must be an address such as nom@exemple.fr");
    }
    Ok(s.to_owned())
}

pub fn set_notification_preference(
    state: &Notifications,
    cmd: &SetNotificationPreference,
) -> Result<Vec<DomainEvent>, DomainError> {
    let email = match (cmd.channel, &cmd.email) {
        (Channel::Email, Some(raw)) => Some(email(raw)?),
        // Switching e-mail on needs an address, given now or before.
        (Channel::Email, None) => state
            .preferences
            .get(&Channel::Email)
            .and_then(|(_, e)| e.clone()),
        (Channel::WebPush, Some(_)) => {
            return Err(DomainError::invalid(
                "email",
                "is only for the EMAIL channel",
            ))
        }
        (Channel::WebPush, None) => None,
    };
    let any_on = [
        NotificationKind::Absence,
        NotificationKind::Grade,
        NotificationKind::Message,
        NotificationKind::Sanction,
    ]
    .iter()
    .any(|k| cmd.preferences.wants(*k));
    if cmd.channel == Channel::Email && any_on && email.is_none() {
        return Err(DomainError::invalid(
            "email",
            "an address is needed to receive e-mail",
        ));
    }
    if state.preferences.get(&cmd.channel) == Some(&(cmd.preferences, email.clone())) {
        return Ok(Vec::new());
    }
    Ok(vec![DomainEvent::NotificationPreferenceSet(
        NotificationPreferenceSet {
            person_id: cmd.person_id,
            channel: cmd.channel,
            preferences: cmd.preferences,
            email,
        },
    )])
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RegisterWebPush {
    pub person_id: PersonId,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

fn base64url_len(field: &str, raw: &str) -> Result<usize, DomainError> {
    let s = raw.trim_end_matches('=');
    // Browsers give base64url; some libraries the standard alphabet.
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/'))
    {
        return Err(DomainError::invalid(field, "must be base64url"));
    }
    Ok(s.len() * 6 / 8)
}

pub fn register_web_push(
    state: &Notifications,
    cmd: &RegisterWebPush,
) -> Result<Vec<DomainEvent>, DomainError> {
    let endpoint = cmd.endpoint.trim();
    if endpoint.len() > ENDPOINT_MAX
        || !(endpoint.starts_with("https://") || endpoint.starts_with("http://"))
        || endpoint
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(DomainError::invalid(
            "endpoint",
            "must be the push service's URL",
        ));
    }
    // RFC 8291: an uncompressed P-256 point and a 16-byte secret.
    if base64url_len("p256dh", &cmd.p256dh)? != 65 {
        return Err(DomainError::invalid(
            "p256dh",
            "must be a P-256 public key (65 bytes, base64url)",
        ));
    }
    if base64url_len("auth", &cmd.auth)? != 16 {
        return Err(DomainError::invalid(
            "auth",
            "must be the 16-byte authentication secret (base64url)",
        ));
    }
    let id = WebPushId::for_endpoint(cmd.person_id, endpoint);
    if state.push.contains(&id) {
        return Ok(Vec::new());
    }
    Ok(vec![DomainEvent::WebPushRegistered(WebPushRegistered {
        person_id: cmd.person_id,
        subscription_id: id,
        endpoint: endpoint.to_owned(),
        p256dh: cmd.p256dh.trim_end_matches('=').to_owned(),
        auth: cmd.auth.trim_end_matches('=').to_owned(),
    })])
}

/// The delivery found the subscription gone.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DropWebPush {
    pub person_id: PersonId,
    pub subscription_id: WebPushId,
    pub status: u16,
}

pub fn drop_web_push(
    state: &Notifications,
    cmd: &DropWebPush,
) -> Result<Vec<DomainEvent>, DomainError> {
    if !state.push.contains(&cmd.subscription_id) {
        return Ok(Vec::new());
    }
    Ok(vec![DomainEvent::WebPushDropped(WebPushDropped {
        person_id: cmd.person_id,
        subscription_id: cmd.subscription_id,
        status: cmd.status,
    })])
}
