//! Communication (issue 16) in the contract
//! (`../shared/contracts/communication.graphql`): attachments and their
//! upload (GraphQL multipart request, the `Upload` scalar), read receipts,
//! recipient groups, notification preferences and Web Push subscriptions.
//! The fields the contract adds to Message, Homework and Absence are in
//! `objects.rs` beside theirs; the inputs it extends in `root.rs`.

use super::objects::{id, Person, Src};
use super::root::command_context;
use super::viewer;
use crate::graphql::errors::GqlResult;
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, Upload, ID};
use chrono::{DateTime, Utc};
use registre_app::ApiError;
use registre_domain::communication as comm;
use registre_projections::communication as model;
use std::io::Read;

/// The path an attachment is downloaded from (GET, same bearer token).
pub fn attachment_url(id: registre_domain::AttachmentId) -> String {
    format!("/attachments/{id}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum Audience {
    Guardians,
    Students,
    Teachers,
}

impl From<Audience> for comm::Audience {
    fn from(a: Audience) -> Self {
        match a {
            Audience::Guardians => comm::Audience::Guardians,
            Audience::Students => comm::Audience::Students,
            Audience::Teachers => comm::Audience::Teachers,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum Channel {
    WebPush,
    Email,
}

impl From<Channel> for comm::Channel {
    fn from(c: Channel) -> Self {
        match c {
            Channel::WebPush => comm::Channel::WebPush,
            Channel::Email => comm::Channel::Email,
        }
    }
}

impl From<comm::Channel> for Channel {
    fn from(c: comm::Channel) -> Self {
        match c {
            comm::Channel::WebPush => Channel::WebPush,
            comm::Channel::Email => Channel::Email,
        }
    }
}

/// An uploaded file.
#[derive(Debug, SimpleObject)]
pub struct Attachment {
    pub id: ID,
    pub name: String,
    pub content_type: String,
    pub size: i32,
    pub sha256: String,
    pub url: String,
}

impl From<model::Attachment> for Attachment {
    fn from(a: model::Attachment) -> Self {
        Self {
            id: id(a.id),
            url: attachment_url(a.id),
            name: a.name,
            content_type: a.content_type,
            size: i32::try_from(a.size).unwrap_or(i32::MAX),
            sha256: a.sha256,
        }
    }
}

/// One recipient's receipt, as the sender sees it.
#[derive(Debug)]
pub struct ReadReceipt {
    pub person: registre_domain::PersonId,
    pub read_at: Option<DateTime<Utc>>,
}

#[Object]
impl ReadReceipt {
    async fn person(&self) -> Person {
        Person::new(self.person, Src::Live)
    }
    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.read_at
    }
}

#[derive(Debug, SimpleObject)]
pub struct NotificationPreference {
    pub channel: Channel,
    pub absences: bool,
    pub grades: bool,
    pub messages: bool,
    pub sanctions: bool,
}

fn preferences_of(
    m: &registre_projections::ReadModel,
    person: registre_domain::PersonId,
) -> Vec<NotificationPreference> {
    comm::Channel::ALL
        .iter()
        .map(|c| {
            let p = m.communication().preference(person, *c).preferences;
            NotificationPreference {
                channel: (*c).into(),
                absences: p.absences,
                grades: p.grades,
                messages: p.messages,
                sanctions: p.sanctions,
            }
        })
        .collect()
}

#[derive(Debug, InputObject)]
pub struct RecipientGroupInput {
    pub class_id: ID,
    pub audience: Audience,
}

impl RecipientGroupInput {
    pub(super) fn group(&self) -> comm::RecipientGroup {
        comm::RecipientGroup {
            // An unknown or malformed class is refused by the policy.
            class_id: self.class_id.parse().unwrap_or_default(),
            audience: self.audience.into(),
        }
    }
}

/// Attachment ids as given: a malformed one names no attachment (NOT_FOUND
/// from the decision, like another person's).
pub(super) fn attachment_ids(ids: &Option<Vec<ID>>) -> Vec<registre_domain::AttachmentId> {
    ids.iter()
        .flatten()
        .map(|raw| raw.parse().unwrap_or_default())
        .collect()
}

#[derive(Debug, InputObject)]
pub struct WebPushSubscriptionInput {
    pub endpoint: String,
    #[graphql(name = "p256dh")]
    pub p256dh: String,
    pub auth: String,
}

#[derive(Debug, InputObject)]
pub struct NotificationPreferenceInput {
    pub channel: Channel,
    pub absences: bool,
    pub grades: bool,
    pub messages: bool,
    pub sanctions: bool,
    /// EMAIL: the address to use
    pub email: Option<String>,
}

#[derive(Debug, Default)]
pub struct CommunicationQuery;

#[Object]
impl CommunicationQuery {
    /// the viewer's switches, one per channel (defaults: absences on, the rest off)
    async fn my_notification_preferences(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<NotificationPreference>> {
        let (app, v) = viewer(ctx).await?;
        Ok(app.read(|m| preferences_of(m, v.person)))
    }

    /// the applicationServerKey a browser subscribes with (the node's VAPID public key, base64url); null when this node sends no Web Push
    async fn web_push_public_key(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        let (app, _) = viewer(ctx).await?;
        Ok(app
            .config()
            .communication
            .vapid
            .as_ref()
            .map(|k| k.public_key.clone()))
    }
}

#[derive(Debug, Default)]
pub struct CommunicationMutation;

#[Object]
impl CommunicationMutation {
    /// any authenticated person; size and type limits apply (INVALID_INPUT past them)
    async fn upload_attachment(&self, ctx: &Context<'_>, file: Upload) -> Result<Attachment> {
        let (app, v) = viewer(ctx).await?;
        let value = file.value(ctx)?;
        let max = app.config().communication.attachment_max_bytes;
        // The multipart parser already refused a file past the limit; this
        // holds for any transport that hands us a file.
        let size = value
            .size()
            .map_err(|e| ApiError::Internal(format!("upload: {e}")))
            .gql()?;
        if size > max {
            return Err(ApiError::invalid(
                "file",
                format!("is larger than the {max} bytes allowed"),
            ))
            .gql();
        }
        let name = value.filename.clone();
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        value
            .into_read()
            .take(max + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ApiError::Internal(format!("upload: {e}")))
            .gql()?;
        let cx = command_context(ctx, &v);
        let id = app.upload_attachment(&cx, &name, bytes).await.gql()?;
        app.read(|m| m.communication().attachment(id).cloned())
            .map(Attachment::from)
            .ok_or_else(|| ApiError::Internal("the upload is not in the model".into()))
            .gql()
    }

    /// the viewer's browser subscription (RFC 8030 endpoint, RFC 8291 keys); true once registered
    async fn register_web_push(
        &self,
        ctx: &Context<'_>,
        input: WebPushSubscriptionInput,
    ) -> Result<bool> {
        let (app, v) = viewer(ctx).await?;
        let cmd = comm::RegisterWebPush {
            person_id: v.person,
            endpoint: input.endpoint,
            p256dh: input.p256dh,
            auth: input.auth,
        };
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(true)
    }

    /// the viewer's switches for one channel; answers every channel's
    async fn set_notification_preference(
        &self,
        ctx: &Context<'_>,
        input: NotificationPreferenceInput,
    ) -> Result<Vec<NotificationPreference>> {
        let (app, v) = viewer(ctx).await?;
        let cmd = comm::SetNotificationPreference {
            person_id: v.person,
            channel: input.channel.into(),
            preferences: comm::Preferences {
                absences: input.absences,
                grades: input.grades,
                messages: input.messages,
                sanctions: input.sanctions,
            },
            email: input.email,
        };
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(app.read(|m| preferences_of(m, v.person)))
    }
}

/// `GET /attachments/<id>` on the application: the caller's viewer (read
/// model caught up first, read-your-writes), then `App::download_attachment`
/// (policy, access log, bytes).
#[derive(Debug)]
pub struct AppDownloads(pub std::sync::Arc<registre_app::App>);

#[async_trait::async_trait]
impl crate::server::Downloads for AppDownloads {
    async fn download(
        &self,
        caller: &crate::context::Caller,
        raw: &str,
    ) -> std::result::Result<crate::server::DownloadReply, crate::server::DownloadRefusal> {
        let refuse = |e: ApiError| crate::server::DownloadRefusal::from(&e);
        let app = &self.0;
        app.consistent().await.map_err(refuse)?;
        let viewer = app.viewer(caller).await.map_err(refuse)?;
        // A malformed id is refused like another family's document.
        let id = raw.parse().map_err(|_| refuse(ApiError::forbidden()))?;
        let file = app.download_attachment(&viewer, id).await.map_err(refuse)?;
        Ok(crate::server::DownloadReply {
            name: file.attachment.name,
            content_type: file.attachment.content_type,
            bytes: file.bytes,
        })
    }
}
