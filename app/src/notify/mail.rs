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

/// `smtp://host[:port]` (port 25 by default).
fn host_port(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("smtp://")
        .ok_or_else(|| format!("REGISTRE_SMTP_URL must start with smtp:// (got {url:?})"))?;
    let authority = rest.trim_end_matches('/');
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((
            host.to_owned(),
            port.parse()
                .map_err(|_| format!("REGISTRE_SMTP_URL: bad port {port:?}"))?,
        )),
        None => Ok((authority.to_owned(), 25)),
    }
}

impl Mailer {
    pub fn new(config: &SmtpConfig, timeout: Duration) -> Result<Self, String> {
        let (host, port) = host_port(&config.url)?;
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| format!("REGISTRE_MAIL_FROM: {e}"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
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

    #[test]
    fn the_relay_url_gives_host_and_port() {
        assert_eq!(
            host_port("smtp://127.0.0.1:2525"),
            Ok(("127.0.0.1".into(), 2525))
        );
        assert_eq!(
            host_port("smtp://relay.local"),
            Ok(("relay.local".into(), 25))
        );
        assert!(host_port("http://x").is_err());
        assert!(host_port("smtp://x:port").is_err());
    }
}
