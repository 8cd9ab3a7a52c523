//! Web Push, hand-rolled on RustCrypto: the payload encrypted per RFC 8291
//! (`aes128gcm`, RFC 8188 with one record), the request signed per RFC 8292
//! (VAPID: an ES256 JWT for the push service's origin), sent per RFC 8030.
//! Decision 0017 says why not the `web-push` crate.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::elliptic_curve::rand_core::{OsRng, RngCore};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use p256::{PublicKey, SecretKey};
use sha2::Sha256;

/// The record size announced in the header: the payload is one record.
const RECORD_SIZE: u32 = 4096;
/// Largest payload: a push service must accept 4096 bytes of body (RFC
/// 8030 §7.2), less the header (86) and the tag (16) and the delimiter.
pub const PAYLOAD_MAX: usize = 3993;

/// The application server's VAPID key pair (RFC 8292) and the contact the
/// push services see (`mailto:`).
pub struct VapidKey {
    secret: SecretKey,
    /// The uncompressed public key, base64url: the `k` of the header and the
    /// `applicationServerKey` a browser subscribes with.
    pub public_key: String,
    pub subject: String,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public_key", &self.public_key)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("the VAPID key: {0}")]
    Key(String),
    #[error("the subscription's keys: {0}")]
    Subscription(&'static str),
    #[error("the payload is {0} bytes, more than a push service must accept")]
    TooLarge(usize),
    #[error("encryption failed")]
    Crypto,
}

impl VapidKey {
    /// From a PKCS#8 PEM P-256 private key (`REGISTRE_VAPID_KEY` names the file).
    pub fn from_pem(pem: &str, subject: &str) -> Result<Self, PushError> {
        let secret = SecretKey::from_pkcs8_pem(pem).map_err(|e| PushError::Key(e.to_string()))?;
        Ok(Self::from_secret(secret, subject))
    }

    fn from_secret(secret: SecretKey, subject: &str) -> Self {
        let point = secret.public_key().to_encoded_point(false);
        Self {
            public_key: B64.encode(point.as_bytes()),
            secret,
            subject: subject.to_owned(),
        }
    }

    /// A new key, as the PEM file `registre demo` writes.
    pub fn generate_pem() -> Result<String, PushError> {
        let secret = SecretKey::random(&mut OsRng);
        secret
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| PushError::Key(e.to_string()))
    }

    /// The `Authorization` header for a request to `endpoint` (RFC 8292 §3):
    /// `vapid t=<ES256 JWT>, k=<public key>`, the JWT for the endpoint's
    /// origin, valid 12 hours.
    pub fn authorization(&self, endpoint: &str, now: DateTime<Utc>) -> Result<String, PushError> {
        let origin = origin(endpoint).ok_or(PushError::Subscription("endpoint is not a URL"))?;
        let header = B64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": origin,
            "exp": now.timestamp() + 12 * 3600,
            "sub": self.subject,
        });
        let claims = B64.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let key = p256::ecdsa::SigningKey::from(&self.secret);
        let signature: p256::ecdsa::Signature = key.sign(signing_input.as_bytes());
        Ok(format!(
            "vapid t={signing_input}.{}, k={}",
            B64.encode(signature.to_bytes()),
            self.public_key
        ))
    }
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// base64url as browsers give it, or the standard alphabet some libraries use.
fn decode(raw: &str, what: &'static str) -> Result<Vec<u8>, PushError> {
    let raw = raw.trim_end_matches('=');
    B64.decode(raw)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(raw))
        .map_err(|_| PushError::Subscription(what))
}

fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), PushError> {
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, out)
        .map_err(|_| PushError::Crypto)
}

/// Encrypts `payload` for a subscription (RFC 8291 §3.4): the body of the
/// push request, `salt ‖ rs ‖ idlen ‖ keyid ‖ ciphertext`.
pub fn encrypt(payload: &[u8], p256dh: &str, auth: &str) -> Result<Vec<u8>, PushError> {
    if payload.len() > PAYLOAD_MAX {
        return Err(PushError::TooLarge(payload.len()));
    }
    let ua_public_bytes = decode(p256dh, "p256dh is not base64url")?;
    let auth_secret = decode(auth, "auth is not base64url")?;
    let ua_public = PublicKey::from_sec1_bytes(&ua_public_bytes)
        .map_err(|_| PushError::Subscription("p256dh is not a P-256 point"))?;
    let as_secret = p256::ecdh::EphemeralSecret::random(&mut OsRng);
    let as_public = as_secret.public_key().to_encoded_point(false);
    let shared = as_secret.diffie_hellman(&ua_public);

    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(&ua_public_bytes);
    key_info.extend_from_slice(as_public.as_bytes());
    let mut ikm = [0u8; 32];
    hkdf(&auth_secret, shared.raw_secret_bytes(), &key_info, &mut ikm)?;

    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let mut cek = [0u8; 16];
    hkdf(&salt, &ikm, b"Content-Encoding: aes128gcm\0", &mut cek)?;
    let mut nonce = [0u8; 12];
    hkdf(&salt, &ikm, b"Content-Encoding: nonce\0", &mut nonce)?;

    // One record, the last: the delimiter 0x02, no padding.
    let mut record = payload.to_vec();
    record.push(2);
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|_| PushError::Crypto)?;
    let ciphertext = cipher
        .encrypt(&Nonce::from(nonce), record.as_slice())
        .map_err(|_| PushError::Crypto)?;

    let mut body = Vec::with_capacity(86 + ciphertext.len());
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(as_public.as_bytes().len() as u8);
    body.extend_from_slice(as_public.as_bytes());
    body.extend_from_slice(&ciphertext);
    Ok(body)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_origin_is_scheme_and_authority() {
        assert_eq!(
            origin("https://fcm.googleapis.com/fcm/send/abc?x=1").as_deref(),
            Some("https://fcm.googleapis.com")
        );
        assert_eq!(
            origin("http://127.0.0.1:8080/push/1").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(origin("not a url"), None);
    }

    #[test]
    fn a_key_survives_its_pem_and_signs_a_verifiable_jwt() {
        use p256::ecdsa::signature::Verifier;
        let pem = VapidKey::generate_pem().unwrap();
        let key = VapidKey::from_pem(&pem, "mailto:vie-scolaire@example.org").unwrap();
        let header = key
            .authorization("https://push.example.org/x", Utc::now())
            .unwrap();
        let (t, k) = header
            .strip_prefix("vapid t=")
            .unwrap()
            .split_once(", k=")
            .unwrap();
        let (signed, signature) = t.rsplit_once('.').unwrap();
        let public = PublicKey::from_sec1_bytes(&B64.decode(k).unwrap()).unwrap();
        let signature =
            p256::ecdsa::Signature::from_slice(&B64.decode(signature).unwrap()).unwrap();
        p256::ecdsa::VerifyingKey::from(&public)
            .verify(signed.as_bytes(), &signature)
            .unwrap();
        let claims = signed.split('.').nth(1).unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(claims).unwrap()).unwrap();
        assert_eq!(claims["aud"], "https://push.example.org");
    }

    #[test]
    fn an_oversized_payload_or_a_bad_key_is_refused() {
        let ua = SecretKey::random(&mut OsRng);
        let p256dh = B64.encode(ua.public_key().to_encoded_point(false).as_bytes());
        let auth = B64.encode([7u8; 16]);
        assert!(encrypt(b"{}", &p256dh, &auth).is_ok());
        assert!(matches!(
            encrypt(&[0u8; PAYLOAD_MAX + 1], &p256dh, &auth),
            Err(PushError::TooLarge(_))
        ));
        assert!(encrypt(b"{}", "AAAA", &auth).is_err());
    }
}
