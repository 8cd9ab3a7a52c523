//! E-mail over SMTP with `lettre`: French, plain text and HTML, and no more
//! personal data than the notice needs (never a grade, never a message's
//! text; the subject line names no one).

use super::Notice;
use crate::communication::SmtpConfig;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// What became of a mail.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    Accepted,
    /// Worth trying again (the server is away, 4xx).
    Transient(String),
    /// Never (5xx, a malformed address).
    Permanent(String),
}

/// A transport to the configured relay.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").finish_non_exhaustive()
    }
}

impl Mailer {
    /// `REGISTRE_SMTP_URL` as lettre reads it: `smtp://host:port` (no
    /// TLS: a relay on the host or the local network),
    /// `smtp://host:587?tls=required` (STARTTLS), `smtps://host:465`, with
    /// `user:password@` when the relay asks for it.
    pub fn new(config: &SmtpConfig, timeout: Duration) -> Result<Self, String> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| format!("REGISTRE_MAIL_FROM: {e}"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.url)
            .map_err(|e| format!("REGISTRE_SMTP_URL: {e}"))?
            .timeout(Some(timeout))
            .build();
        Ok(Self { transport, from })
    }

    pub async fn send(&self, to: &str, notice: &Notice) -> Sent {
        let to: Mailbox = match to.parse() {
            Ok(m) => m,
            Err(e) => return Sent::Permanent(format!("address: {e}")),
        };
        let mail = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(notice.title.clone())
            .multipart(MultiPart::alternative_plain_html(
                format!("Bonjour,\n\n{}\n\n{}\n", notice.text, FOOTER_TEXT),
                html(notice),
            ));
        let mail = match mail {
            Ok(m) => m,
            Err(e) => return Sent::Permanent(format!("building the mail: {e}")),
        };
        match self.transport.send(mail).await {
            Ok(_) => Sent::Accepted,
            Err(e) if e.is_permanent() => Sent::Permanent(e.to_string()),
            Err(e) => Sent::Transient(e.to_string()),
        }
    }
}

const FOOTER_TEXT: &str = "Connectez-vous à Registre pour en savoir plus. \
Vous recevez ce message parce que vous l'avez demandé ; vos préférences de notification \
se règlent dans Registre.";

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html(notice: &Notice) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"fr\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><p>Bonjour,</p><p>{text}</p><p><small>{footer}</small></p></body></html>",
        title = escape(&notice.title),
        text = escape(&notice.text),
        footer = escape(FOOTER_TEXT),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailer(url: &str) -> Result<Mailer, String> {
        Mailer::new(
            &SmtpConfig {
                url: url.into(),
                from: "Vie scolaire <vie-scolaire@college.test>".into(),
            },
            Duration::from_secs(1),
        )
    }

    #[test]
    fn the_relay_url_may_ask_for_tls_and_credentials() {
        assert!(mailer("smtp://127.0.0.1:2525").is_ok());
        assert!(mailer("smtp://relay.local:587?tls=required").is_ok());
        assert!(mailer("smtps://user:secret@relay.local:465").is_ok());
        assert!(mailer("http://relay.local").is_err());
        assert!(mailer("smtp://relay.local:port").is_err());
    }
}
