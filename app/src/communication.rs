//! Communication (issue 16) on the application side: attachments (limits,
//! sniffing, content-addressed storage, sealing a justification's documents
//! with the student's key, access-checked and access-logged downloads) and
//! the settings of the notification delivery (`crate::notify`).

use crate::commands::{new_id, CommandContext};
use crate::notify::VapidKey;
use crate::{policy, ApiError, App, Viewer};
use registre_domain::communication::{AttachedTo, UploadAttachment};
use registre_domain::{AbsenceId, AttachmentId, StudentId};
use registre_projections::communication::Attachment;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Default largest attachment: 10 MB (10,000,000 bytes: the issue's
/// "10 MB", whichever way a client counts it, is never exceeded).
pub const ATTACHMENT_MAX_BYTES: u64 = 10_000_000;

/// Settings of communication.
#[derive(Clone, Debug)]
pub struct CommunicationConfig {
    /// Largest attachment accepted (INVALID_INPUT past it, nothing stored).
    pub attachment_max_bytes: u64,
    /// E-mail: the SMTP server's URL (`smtp://host:port`) and the sender.
    pub smtp: Option<SmtpConfig>,
    /// Web Push: the VAPID key (RFC 8292) and its contact.
    pub vapid: Option<Arc<VapidKey>>,
    pub delivery: DeliveryConfig,
}

impl Default for CommunicationConfig {
    fn default() -> Self {
        Self {
            attachment_max_bytes: ATTACHMENT_MAX_BYTES,
            smtp: None,
            vapid: None,
            delivery: DeliveryConfig::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpConfig {
    /// `smtp://host:port` (no TLS: a relay on the same host or network).
    pub url: String,
    /// `From:` of every mail (`REGISTRE_MAIL_FROM`).
    pub from: String,
}

/// How the outbox is worked.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// How long a claimed notification is this node's before another may
    /// take it (a node that died mid-send).
    pub lease: Duration,
    /// Notifications claimed and sent at once.
    pub batch: usize,
    /// Attempts before giving up (the row stays, `failed`).
    pub max_attempts: u32,
    /// First retry delay, doubled per attempt up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// How often the sender looks for due retries when nothing wakes it.
    pub poll: Duration,
    /// Timeout of one push request or SMTP conversation.
    pub timeout: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            // Twice a send's timeout (a batch is sent concurrently): a node
            // killed mid-send has its notifications taken over within it.
            lease: Duration::from_secs(30),
            // A batch is sent concurrently and the next waits for its
            // slowest: at 64, an 8:05 roll call of a collège (2,400
            // notices) reached phones at p99 2.8 s; at 256, 1.4 s
            // (docs/benchmarks.md section 9).
            batch: 256,
            max_attempts: 8,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(3600),
            poll: Duration::from_secs(1),
            timeout: Duration::from_secs(15),
        }
    }
}

/// The allow-list, decided from the first bytes of the content: a declared
/// type or a file name is the client's word, not the file's.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    const ODF: &[(&[u8], &str)] = &[
        (
            b"application/vnd.oasis.opendocument.text",
            "application/vnd.oasis.opendocument.text",
        ),
        (
            b"application/vnd.oasis.opendocument.spreadsheet",
            "application/vnd.oasis.opendocument.spreadsheet",
        ),
        (
            b"application/vnd.oasis.opendocument.presentation",
            "application/vnd.oasis.opendocument.presentation",
        ),
    ];
    if bytes.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else if bytes.starts_with(b"PK\x03\x04") && bytes.get(30..38) == Some(b"mimetype") {
        // ODF stores its type first, uncompressed, as the entry "mimetype".
        let rest = bytes.get(38..).unwrap_or_default();
        ODF.iter()
            .find(|(magic, _)| rest.starts_with(magic))
            .map(|(_, t)| *t)
    } else {
        None
    }
}

/// An attachment's bytes, for a download.
#[derive(Clone, Debug)]
pub struct Download {
    pub attachment: Attachment,
    pub bytes: Vec<u8>,
}

/// The owner of bytes stored as uploaded.
const PLAIN: Uuid = Uuid::nil();

impl App {
    fn communication_store(
        &self,
    ) -> Result<Arc<dyn registre_store::communication::CommunicationStore>, ApiError> {
        self.store()
            .communication()
            .ok_or_else(|| ApiError::Internal("this store keeps no attachments".into()))
    }

    /// uploadAttachment: checks the size and the type (by content), stores
    /// the bytes under their SHA-256, then records the upload. A refusal
    /// stores nothing.
    pub async fn upload_attachment(
        &self,
        cx: &CommandContext<'_>,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<AttachmentId, ApiError> {
        let viewer = cx.issuer.viewer().ok_or_else(ApiError::forbidden)?;
        let max = self.config().communication.attachment_max_bytes;
        if bytes.len() as u64 > max {
            return Err(ApiError::invalid(
                "file",
                format!("is larger than the {max} bytes allowed"),
            ));
        }
        let Some(content_type) = sniff(&bytes) else {
            return Err(ApiError::invalid(
                "file",
                "is not an accepted type (PDF, PNG, JPEG, GIF, WebP, OpenDocument), judged by its content",
            ));
        };
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let cmd = UploadAttachment {
            attachment_id: new_id(),
            uploaded_by: viewer.person,
            name: name.to_owned(),
            content_type: content_type.to_owned(),
            size: bytes.len() as u64,
            sha256: sha256.clone(),
        };
        // Authorized before anything is stored.
        if !self.read(|m| policy::can_upload(viewer) && m.person(viewer.person).is_some()) {
            return Err(ApiError::forbidden());
        }
        self.communication_store()?
            .put_blob(&sha256, PLAIN, bytes)
            .await?;
        self.execute(cx, &cmd, None).await?;
        Ok(cmd.attachment_id)
    }

    /// After a justification with documents: their bytes are sealed with the
    /// student's key (erasing the student erases them), and the copy as
    /// uploaded goes unless another attachment still needs it.
    pub async fn seal_justification_documents(&self, absence: AbsenceId) -> Result<(), ApiError> {
        let (student, documents, keep_plain) = self.read(|m| {
            let c = m.communication();
            let documents = c.of_absence(absence);
            let student = m.absence(absence).map(|a| a.student_id);
            let keep: Vec<bool> = documents
                .iter()
                .map(|d| c.plain_copy_needed(&d.sha256))
                .collect();
            (student, documents, keep)
        });
        let Some(student) = student else {
            return Ok(());
        };
        let store = self.communication_store()?;
        let vault = self
            .store()
            .vault()
            .ok_or_else(|| ApiError::Internal("this store keeps no subject keys".into()))?;
        for (doc, keep) in documents.iter().zip(keep_plain) {
            if store.blob(&doc.sha256, student.0).await?.is_none() {
                let Some(plain) = store.blob(&doc.sha256, PLAIN).await? else {
                    continue;
                };
                let Some(sealed) = vault.seal_bytes(student.0, &plain).await? else {
                    continue;
                };
                store.put_blob(&doc.sha256, student.0, sealed).await?;
            }
            if !keep {
                store.delete_blob(&doc.sha256, PLAIN).await?;
            }
        }
        Ok(())
    }

    /// GET on an attachment's url: allowed to whoever may see what it is
    /// attached to (FORBIDDEN otherwise, existence not told), logged in the
    /// access log before the bytes are served.
    pub async fn download_attachment(
        &self,
        viewer: &Viewer,
        id: AttachmentId,
    ) -> Result<Download, ApiError> {
        let found = self.read(|m| {
            policy::can_download(m, viewer, id)
                .then(|| m.communication().attachment(id).cloned())
                .flatten()
                .map(|a| {
                    let subject = subject_of(m, &a);
                    (a, subject)
                })
        });
        let Some((attachment, subject)) = found else {
            return Err(ApiError::forbidden());
        };
        self.record_access(
            viewer,
            subject,
            format!("attachment/{id}"),
            service_of(&attachment),
        )
        .await?;
        let store = self.communication_store()?;
        let bytes = match attachment.sealed_for {
            Some(student) => self.sealed_bytes(&attachment, student).await?,
            None => store.blob(&attachment.sha256, PLAIN).await?,
        };
        let bytes = bytes.ok_or_else(|| ApiError::NotFound(format!("attachment {id}")))?;
        Ok(Download { attachment, bytes })
    }

    async fn sealed_bytes(
        &self,
        attachment: &Attachment,
        student: StudentId,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        let store = self.communication_store()?;
        let vault = self
            .store()
            .vault()
            .ok_or_else(|| ApiError::Internal("this store keeps no subject keys".into()))?;
        match store.blob(&attachment.sha256, student.0).await? {
            Some(sealed) => Ok(vault.open_bytes(student.0, &sealed).await?),
            // Not sealed yet (the node stopped in between, or sealing
            // failed): unless the student was erased meanwhile, the copy as
            // uploaded, sealed now so that it is not left as it was.
            None if vault.keys().is_destroyed(student.0).await? => Ok(None),
            None => {
                let plain = store.blob(&attachment.sha256, PLAIN).await?;
                if let Some(bytes) = &plain {
                    if let Some(sealed) = vault.seal_bytes(student.0, bytes).await? {
                        store
                            .put_blob(&attachment.sha256, student.0, sealed)
                            .await?;
                        if !self.read(|m| m.communication().plain_copy_needed(&attachment.sha256)) {
                            store.delete_blob(&attachment.sha256, PLAIN).await?;
                        }
                    }
                }
                Ok(plain)
            }
        }
    }
}

/// Whose data a download reads, for the access log: a justification's
/// student, else the uploader.
fn subject_of(
    m: &registre_projections::ReadModel,
    a: &Attachment,
) -> Option<registre_domain::PersonId> {
    a.sealed_for
        .and_then(|s| m.student(s).map(|s| s.person_id))
        .or(Some(a.uploaded_by))
}

/// ENT service code of a download.
fn service_of(a: &Attachment) -> &'static str {
    match a.attached_to.first() {
        Some(AttachedTo::Justification(_)) => "Absences",
        Some(AttachedTo::Homework(_)) => "Cahier_Textes",
        _ => "Courrier_Electronique",
    }
}

#[cfg(test)]
mod tests {
    use super::sniff;

    #[test]
    fn the_type_is_the_contents_not_the_name() {
        assert_eq!(sniff(b"%PDF-1.7\n..."), Some("application/pdf"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0"), Some("image/png"));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        let mut odt = b"PK\x03\x04".to_vec();
        odt.resize(30, 0);
        odt.extend_from_slice(b"mimetypeapplication/vnd.oasis.opendocument.text");
        assert_eq!(sniff(&odt), Some("application/vnd.oasis.opendocument.text"));
        // An executable or a script called "certificat.pdf" is refused.
        assert_eq!(sniff(b"MZ\x90\0"), None);
        assert_eq!(sniff(b"<html><script>"), None);
        assert_eq!(sniff(b"PK\x03\x04 a plain zip"), None);
        assert_eq!(sniff(b""), None);
    }
}
