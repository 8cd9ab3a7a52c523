//! The far ends of a notification, as real TCP servers in the benchmark's
//! process (issue 16): an SMTP listener and a Web Push service endpoint.
//! Both stamp each arrival with the instant it completed (the SMTP `DATA`
//! end, the push request's body read) and hand it over on a channel. The
//! push endpoint does what a push service and then a browser would: it
//! checks the VAPID signature (RFC 8292) for its own origin against the
//! node's public key, and decrypts the RFC 8291 payload with the
//! subscription's keys. The end-to-end tests (registre/tests/communication.rs)
//! keep their own copies, which also refuse mail on demand and play a gone
//! subscription.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde_json::Value;
use sha2::Sha256;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// A mail as the SMTP listener received it.
#[derive(Debug)]
pub struct Mail {
    pub to: Vec<String>,
    pub data: String,
    /// When the `.` ending `DATA` was read.
    pub at: Instant,
}

/// An SMTP server on a local port: enough of RFC 5321 for a client (EHLO,
/// HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT). Answers its `smtp://` URL.
pub async fn smtp_server() -> std::io::Result<(String, mpsc::UnboundedReceiver<Mail>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("smtp://{}", listener.local_addr()?);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                if write.write_all(b"220 bench.local ESMTP\r\n").await.is_err() {
                    return;
                }
                let mut to = Vec::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.get(..4).unwrap_or(&line).to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-bench.local\r\n250 8BITMIME\r\n",
                        "HELO" | "MAIL" | "RSET" | "NOOP" => b"250 OK\r\n",
                        "RCPT" => {
                            to.push(
                                line.get(8..)
                                    .unwrap_or_default()
                                    .trim_matches(|c| c == '<' || c == '>' || c == ' ')
                                    .to_string(),
                            );
                            b"250 OK\r\n"
                        }
                        "DATA" => {
                            if write.write_all(b"354 go ahead\r\n").await.is_err() {
                                return;
                            }
                            let mut data = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                data.push_str(&l);
                                data.push('\n');
                            }
                            let _ = tx.send(Mail {
                                to: std::mem::take(&mut to),
                                data,
                                at: Instant::now(),
                            });
                            b"250 queued\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"500 unknown\r\n",
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok((url, rx))
}

/// A browser's push subscription: its keys, kept to decrypt.
pub struct Browser {
    secret: p256::SecretKey,
    pub auth: [u8; 16],
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Browser {
            secret: p256::SecretKey::random(&mut rand::rngs::OsRng),
            auth: rand::random(),
        }
    }

    /// The subscription's `p256dh`, base64url.
    pub fn p256dh(&self) -> String {
        B64.encode(self.secret.public_key().to_encoded_point(false).as_bytes())
    }

    /// The subscription's `auth`, base64url.
    pub fn auth(&self) -> String {
        B64.encode(self.auth)
    }

    /// RFC 8291 §3.4 from the user agent's side (one record).
    pub fn decrypt(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        use aes_gcm::aead::{Aead, KeyInit};
        if body.len() < 21 {
            return Err("a body shorter than the aes128gcm header".into());
        }
        let (salt, rest) = body.split_at(16);
        let idlen = rest[4] as usize;
        if rest.len() < 5 + idlen {
            return Err("a truncated key id".into());
        }
        let (as_public, ciphertext) = rest[5..].split_at(idlen);
        let as_key = p256::PublicKey::from_sec1_bytes(as_public)
            .map_err(|_| "the sender's key is no P-256 point")?;
        let shared =
            p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), as_key.as_affine());
        let ua_public = self.secret.public_key().to_encoded_point(false);
        let mut info = b"WebPush: info\0".to_vec();
        info.extend_from_slice(ua_public.as_bytes());
        info.extend_from_slice(as_public);
        let mut ikm = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(Some(&self.auth), shared.raw_secret_bytes())
            .expand(&info, &mut ikm)
            .map_err(|_| "hkdf")?;
        let prk = hkdf::Hkdf::<Sha256>::new(Some(salt), &ikm);
        let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
        prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
            .map_err(|_| "hkdf")?;
        prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
            .map_err(|_| "hkdf")?;
        let mut plain = aes_gcm::Aes128Gcm::new_from_slice(&cek)
            .map_err(|_| "key length")?
            .decrypt(&aes_gcm::Nonce::from(nonce), ciphertext)
            .map_err(|_| "the payload does not decrypt with the subscription's keys")?;
        // Padding, then the last record's delimiter 2.
        while plain.last() == Some(&0) {
            plain.pop();
        }
        if plain.pop() != Some(2) {
            return Err("no last-record delimiter".into());
        }
        Ok(plain)
    }
}

/// A push request as the endpoint accepted it: `/push/<subscriber>`, its
/// decrypted JSON payload, when its body had been read.
#[derive(Debug)]
pub struct Push {
    pub subscriber: usize,
    pub payload: Value,
    pub at: Instant,
}

/// Checks a `vapid t=<jwt>, k=<key>` authorization: the key is the node's,
/// the ES256 signature holds, the audience is this origin, the subject a
/// `mailto:`.
fn check_vapid(authorization: &str, vapid_public: &str, origin: &str) -> Result<(), String> {
    use p256::ecdsa::signature::Verifier;
    let (t, k) = authorization
        .strip_prefix("vapid t=")
        .and_then(|v| v.split_once(", k="))
        .ok_or("not a VAPID authorization")?;
    if k != vapid_public {
        return Err("not the node's VAPID key".into());
    }
    let (signed, signature) = t.rsplit_once('.').ok_or("not a JWT")?;
    let key = p256::PublicKey::from_sec1_bytes(&B64.decode(k).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let signature =
        p256::ecdsa::Signature::from_slice(&B64.decode(signature).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    p256::ecdsa::VerifyingKey::from(&key)
        .verify(signed.as_bytes(), &signature)
        .map_err(|_| "a bad ES256 signature")?;
    let claims = signed.split('.').nth(1).ok_or("no claims")?;
    let claims: Value = serde_json::from_slice(&B64.decode(claims).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    if claims["aud"].as_str() != Some(origin) {
        return Err(format!("audience {} is not {origin}", claims["aud"]));
    }
    if !claims["sub"]
        .as_str()
        .is_some_and(|s| s.starts_with("mailto:"))
    {
        return Err("the subject is no mailto:".into());
    }
    Ok(())
}

/// A push service on a local port: `POST /push/<i>` is answered 201 once
/// the VAPID signature is checked and the payload decrypted with
/// `browsers[i]`'s keys, 400 otherwise (the reason goes on `rejected`).
/// Answers its origin (`http://127.0.0.1:<port>`).
pub fn push_service(
    browsers: Arc<Vec<Browser>>,
    vapid_public: String,
) -> (
    String,
    mpsc::UnboundedReceiver<Push>,
    mpsc::UnboundedReceiver<String>,
) {
    use warp::Filter;
    let (tx, rx) = mpsc::unbounded_channel();
    let (rejected_tx, rejected) = mpsc::unbounded_channel();
    let origin_cell: Arc<std::sync::OnceLock<String>> = Arc::default();
    let origin = origin_cell.clone();
    let route = warp::post()
        .and(warp::path!("push" / usize))
        .and(warp::header::<String>("authorization"))
        .and(warp::header::<String>("content-encoding"))
        .and(warp::body::bytes())
        .map(
            move |subscriber: usize,
                  authorization: String,
                  encoding: String,
                  body: warp::hyper::body::Bytes| {
                let at = Instant::now();
                let checked = (|| {
                    if encoding != "aes128gcm" {
                        return Err(format!("content-encoding {encoding}"));
                    }
                    let origin = origin.get().ok_or("no origin yet")?;
                    check_vapid(&authorization, &vapid_public, origin)?;
                    let browser = browsers.get(subscriber).ok_or("no such subscriber")?;
                    let plain = browser.decrypt(&body)?;
                    serde_json::from_slice::<Value>(&plain).map_err(|e| e.to_string())
                })();
                match checked {
                    Ok(payload) => {
                        let _ = tx.send(Push {
                            subscriber,
                            payload,
                            at,
                        });
                        warp::reply::with_status("", warp::http::StatusCode::CREATED)
                    }
                    Err(why) => {
                        let _ = rejected_tx.send(format!("/push/{subscriber}: {why}"));
                        warp::reply::with_status("", warp::http::StatusCode::BAD_REQUEST)
                    }
                }
            },
        );
    let (addr, server) = warp::serve(route).bind_ephemeral(([127, 0, 0, 1], 0));
    tokio::spawn(server);
    let base = format!("http://{addr}");
    let _ = origin_cell.set(base.clone());
    (base, rx, rejected)
}
