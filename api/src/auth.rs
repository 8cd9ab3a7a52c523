//! Bearer-token authentication: verifies a JWT against the configured JWKS
//! and turns it into a [`Caller`] or an [`AuthRejection`].
//!
//! Only RS256 and ES256 are accepted, each only with a key of its own family,
//! so neither `alg: none` nor the classic "HS256 signed with the public key"
//! forgery can pass. Keys are cached; a token naming an unknown `kid` makes the
//! verifier reload the JWKS (the identity provider rotated its keys), at most
//! once per configured interval so that garbage tokens cannot turn the server
//! into a flood against the provider. The JWKS is also re-read on a period
//! (REGISTRE_JWKS_REFRESH_SECS) and swapped when its content changed, so that
//! a key the provider withdrew stops verifying tokens without waiting for a
//! token with an unknown `kid`. The module also signs tokens, for the
//! demo and the tests: there is no other issuer in the product.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::Engine as _;
use jsonwebtoken::{
    errors::ErrorKind,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse},
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::{
    config::{AuthConfig, JwksSource},
    context::{AuthRejection, Caller},
};

/// Why a token was refused. The text is what the client reads in the
/// UNAUTHENTICATED error: precise enough to fix a client, and it never
/// echoes the token.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("the Authorization value must be `Bearer <token>`")]
    NotBearer,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token algorithm {0} is not accepted (RS256 and ES256 only)")]
    AlgorithmNotAllowed(String),
    #[error("the token is signed by an unknown key")]
    UnknownKey,
    #[error("the token signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is meant for another audience")]
    WrongAudience,
    #[error("the token lacks the {0} claim")]
    MissingClaim(String),
    #[error("the server has no token verification keys configured")]
    NotConfigured,
}

impl From<AuthError> for AuthRejection {
    fn from(e: AuthError) -> Self {
        AuthRejection(e.to_string())
    }
}

/// Why the verification keys could not be loaded.
#[derive(Debug, Error)]
pub enum JwksError {
    #[error("cannot read the JWKS file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot fetch the JWKS from {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("the JWKS is not valid JSON with a `keys` array: {0}")]
    Parse(String),
    #[error("the JWKS holds no RS256 or ES256 (P-256) signing key")]
    NoUsableKey,
}

#[derive(Clone)]
struct VerifyingKey {
    alg: Algorithm,
    key: DecodingKey,
}

#[derive(Clone, Default)]
struct KeySet {
    by_kid: HashMap<String, VerifyingKey>,
    /// Keys published without a `kid`: used only for tokens without one.
    anonymous: Vec<VerifyingKey>,
}

impl KeySet {
    fn len(&self) -> usize {
        self.by_kid.len() + self.anonymous.len()
    }

    /// Keeps the keys that may verify RS256 or ES256 signatures; skips the
    /// rest (encryption keys, HMAC secrets, other curves) rather than failing,
    /// since providers publish such keys beside the signing ones.
    fn parse(json: &[u8]) -> Result<KeySet, JwksError> {
        #[derive(Deserialize)]
        struct Raw {
            keys: Vec<serde_json::Value>,
        }
        let raw: Raw = serde_json::from_slice(json).map_err(|e| JwksError::Parse(e.to_string()))?;
        let mut set = KeySet::default();
        for value in raw.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            let Some(key) = usable(&jwk) else { continue };
            match jwk.common.key_id {
                Some(kid) => {
                    set.by_kid.insert(kid, key);
                }
                None => set.anonymous.push(key),
            }
        }
        if set.len() == 0 {
            return Err(JwksError::NoUsableKey);
        }
        Ok(set)
    }
}

fn usable(jwk: &Jwk) -> Option<VerifyingKey> {
    let (alg, key_alg) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        _ => return None,
    };
    if jwk.common.key_algorithm.is_some_and(|a| a != key_alg) {
        return None;
    }
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(VerifyingKey { alg, key })
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// Required by the validation; a number of seconds (an integer or not).
    exp: f64,
    /// The other claims, where a configured roles claim is looked for.
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

/// The roles a token's claim `path` (dotted: `realm_access.roles`) lists:
/// an array of strings, or one string of roles separated by spaces or commas.
fn claimed_roles(claims: &serde_json::Map<String, serde_json::Value>, path: &str) -> Vec<String> {
    let mut parts = path.split('.');
    let Some(first) = parts.next() else {
        return Vec::new();
    };
    let value = parts.try_fold(claims.get(first), |v, part| {
        Ok::<_, ()>(v.and_then(|v| v.get(part)))
    });
    match value.ok().flatten() {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str())
            .map(str::to_owned)
            .collect(),
        Some(serde_json::Value::String(s)) => s
            .split([' ', ','])
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// Most tokens remembered as verified. A client sends the same token with
/// every request until it expires, and verifying an ES256 or RS256 signature
/// costs more than the rest of a small query; past this many live tokens the
/// cache is emptied rather than grown.
const MAX_VERIFIED: usize = 10_000;

/// A token that verified, remembered until its `exp`.
#[derive(Clone)]
struct Verified {
    caller: Caller,
    /// Unix seconds: `exp`, without the leeway (after it, the token goes
    /// through full verification again, leeway included).
    until: u64,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

struct Verifier {
    config: AuthConfig,
    keys: RwLock<KeySet>,
    /// Serializes reloads and remembers the last one, for the rate limit.
    last_reload: tokio::sync::Mutex<Instant>,
    http: reqwest::Client,
    /// Tokens already verified, by the SHA-256 of the whole token (header,
    /// claims and signature: any change to a token misses). Emptied when the
    /// keys are reloaded, so a key the provider withdrew stops being trusted.
    verified: Mutex<HashMap<[u8; 32], Verified>>,
    /// SHA-256 of the JWKS document the keys come from: a periodic re-read
    /// that finds the same bytes changes nothing.
    loaded: Mutex<[u8; 32]>,
    /// Periodic refreshes completed (whether or not the keys changed).
    refreshes: tokio::sync::watch::Sender<u64>,
}

/// Verifies bearer tokens. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Option<Arc<Verifier>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("config", &self.inner.as_ref().map(|v| &v.config))
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Loads the keys now, so that a wrong path or an unreachable provider
    /// stops start-up instead of failing every request later.
    pub async fn load(config: AuthConfig) -> Result<Authenticator, JwksError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| JwksError::Fetch {
                url: String::new(),
                message: e.to_string(),
            })?;
        let bytes = fetch(&config.jwks, &http).await?;
        let keys = KeySet::parse(&bytes)?;
        let period = config.refresh_interval;
        let verifier = Arc::new(Verifier {
            config,
            keys: RwLock::new(keys),
            last_reload: tokio::sync::Mutex::new(Instant::now()),
            http,
            verified: Mutex::new(HashMap::new()),
            loaded: Mutex::new(Sha256::digest(&bytes).into()),
            refreshes: tokio::sync::watch::Sender::new(0),
        });
        if !period.is_zero() {
            tokio::spawn(refresh_periodically(Arc::downgrade(&verifier), period));
        }
        Ok(Authenticator {
            inner: Some(verifier),
        })
    }

    /// Re-reads the JWKS now; `Ok(true)` when its content changed and the
    /// keys (and the tokens verified with the old ones) were replaced.
    pub async fn refresh_now(&self) -> Result<bool, JwksError> {
        match &self.inner {
            Some(verifier) => verifier.refresh().await,
            None => Ok(false),
        }
    }

    /// Counts the periodic refreshes done so far, so that a caller can wait
    /// for the next one to have run.
    pub fn refreshes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.as_ref().map(|v| v.refreshes.subscribe())
    }

    /// Refuses every token: for a server started without REGISTRE_JWKS.
    pub fn disabled() -> Authenticator {
        Authenticator { inner: None }
    }

    /// Interprets an `Authorization` header (HTTP) or connection_init field
    /// (WebSocket). `None` when no credentials were presented at all.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Option<Result<Caller, AuthRejection>> {
        let value = authorization?.trim();
        if value.is_empty() {
            return None;
        }
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Some(Err(AuthError::NotBearer.into())),
        };
        Some(self.verify(token).await.map_err(AuthRejection::from))
    }

    /// Verifies one token, or finds it among those verified before and not
    /// yet expired.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let verifier = self.inner.as_ref().ok_or(AuthError::NotConfigured)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = unix_now();
        if let Some(v) = verifier.verified.lock().get(&digest) {
            if now < v.until {
                return Ok(v.caller.clone());
            }
        }
        let (caller, until) = verifier.verify_signed(token).await?;
        if now < until {
            let mut cache = verifier.verified.lock();
            if cache.len() >= MAX_VERIFIED {
                cache.retain(|_, v| now < v.until);
                if cache.len() >= MAX_VERIFIED {
                    cache.clear();
                }
            }
            cache.insert(
                digest,
                Verified {
                    caller: caller.clone(),
                    until,
                },
            );
        }
        Ok(caller)
    }
}

impl Verifier {
    /// Full verification: header, key, signature and claims. Returns the
    /// caller and the token's `exp`.
    async fn verify_signed(&self, token: &str) -> Result<(Caller, u64), AuthError> {
        let verifier = self;
        let (alg, kid) = inspect_header(token)?;
        let key = match verifier.find(kid.as_deref()) {
            Some(key) => key,
            None => {
                verifier.reload_if_allowed().await;
                verifier.find(kid.as_deref()).ok_or(AuthError::UnknownKey)?
            }
        };
        if key.alg != alg {
            return Err(AuthError::AlgorithmNotAllowed(format!("{alg:?}")));
        }
        let mut validation = Validation::new(key.alg);
        validation.set_issuer(&[&verifier.config.issuer]);
        validation.set_audience(&[&verifier.config.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.leeway = verifier.config.leeway.as_secs();
        validation.validate_nbf = true;
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::ExpiredSignature => AuthError::Expired,
                    ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                    ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                    ErrorKind::InvalidAudience => AuthError::WrongAudience,
                    ErrorKind::InvalidSignature => AuthError::BadSignature,
                    ErrorKind::InvalidAlgorithm => {
                        AuthError::AlgorithmNotAllowed(format!("{alg:?}"))
                    }
                    ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
                    _ => AuthError::Malformed,
                }
            })?;
        let subject = data.claims.sub;
        if subject.trim().is_empty() {
            return Err(AuthError::MissingClaim("sub".into()));
        }
        let admin = verifier.config.admin_subjects.contains(&subject)
            || verifier.config.roles_claim.as_deref().is_some_and(|path| {
                claimed_roles(&data.claims.other, path)
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case("ADMIN"))
            });
        // `exp` verified, so finite and not far in the past; `as` saturates.
        let until = data.claims.exp as u64;
        Ok((Caller { subject, admin }, until))
    }
}

/// Reads `alg` and `kid` before anything else, so that `none`, HMAC and
/// every algorithm outside the two accepted ones are refused by name.
fn inspect_header(token: &str) -> Result<(Algorithm, Option<String>), AuthError> {
    #[derive(Deserialize)]
    struct RawHeader {
        alg: String,
        kid: Option<String>,
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed)?;
    let raw: RawHeader = serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?;
    let alg = match raw.alg.as_str() {
        "RS256" => Algorithm::RS256,
        "ES256" => Algorithm::ES256,
        other => {
            return Err(AuthError::AlgorithmNotAllowed(
                other.chars().take(16).collect(),
            ))
        }
    };
    Ok((alg, raw.kid))
}

impl Verifier {
    fn find(&self, kid: Option<&str>) -> Option<VerifyingKey> {
        let keys = self.keys.read();
        match kid {
            Some(kid) => keys.by_kid.get(kid).cloned(),
            // A token without `kid` is accepted only when the choice is unambiguous.
            None if keys.len() == 1 => keys
                .by_kid
                .values()
                .chain(keys.anonymous.iter())
                .next()
                .cloned(),
            None => None,
        }
    }

    async fn reload_if_allowed(&self) {
        let mut last = self.last_reload.lock().await;
        if last.elapsed() < self.config.refetch_min_interval {
            return;
        }
        *last = Instant::now();
        match self.load_if_changed().await {
            Ok(true) => tracing::info!("reloaded the JWKS after an unknown key id"),
            Ok(false) => {}
            // Keep the keys we have: a provider outage must not log everyone out.
            Err(e) => tracing::warn!(error = %e, "JWKS reload failed; keeping the cached keys"),
        }
    }

    /// The periodic re-read, serialised with the reloads on unknown `kid`s.
    async fn refresh(&self) -> Result<bool, JwksError> {
        let _serialised = self.last_reload.lock().await;
        self.load_if_changed().await
    }

    /// Fetches the JWKS and, when its bytes differ from those loaded, swaps
    /// the keys and forgets every token verified with the previous ones. A
    /// document that does not parse leaves the keys as they are.
    async fn load_if_changed(&self) -> Result<bool, JwksError> {
        let bytes = fetch(&self.config.jwks, &self.http).await?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        if *self.loaded.lock() == digest {
            return Ok(false);
        }
        let keys = KeySet::parse(&bytes)?;
        tracing::info!(keys = keys.len(), "the JWKS changed; keys replaced");
        *self.keys.write() = keys;
        self.verified.lock().clear();
        *self.loaded.lock() = digest;
        Ok(true)
    }
}

/// Re-reads the JWKS every `period` while the verifier lives.
async fn refresh_periodically(verifier: std::sync::Weak<Verifier>, period: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(verifier) = verifier.upgrade() else {
            return;
        };
        if let Err(e) = verifier.refresh().await {
            tracing::warn!(error = %e, "periodic JWKS refresh failed; keeping the cached keys");
        }
        verifier.refreshes.send_modify(|n| *n += 1);
    }
}

async fn fetch(source: &JwksSource, http: &reqwest::Client) -> Result<Vec<u8>, JwksError> {
    let bytes = match source {
        JwksSource::File(path) => {
            tokio::fs::read(path)
                .await
                .map_err(|source| JwksError::Read {
                    path: path.display().to_string(),
                    source,
                })?
        }
        JwksSource::Url(url) => get(http, url).await?,
        JwksSource::Discovery { issuer } => {
            let url = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            );
            let document = get(http, &url).await?;
            let jwks_uri = jwks_uri(&document, issuer).map_err(|message| JwksError::Fetch {
                url: url.clone(),
                message,
            })?;
            get(http, &jwks_uri).await?
        }
    };
    Ok(bytes)
}

async fn get(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, JwksError> {
    let fail = |message: String| JwksError::Fetch {
        url: url.to_owned(),
        message,
    };
    let response = http
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| fail(e.to_string()))?;
    Ok(response
        .bytes()
        .await
        .map_err(|e| fail(e.to_string()))?
        .to_vec())
}

/// The `jwks_uri` of a discovery document, which must name `issuer` as its
/// `issuer` (OpenID Connect Discovery 1.0, section 4.3: otherwise another
/// provider's keys could be trusted) and serve its keys with the issuer's
/// scheme (https in production; the configuration refuses another).
fn jwks_uri(document: &[u8], issuer: &str) -> Result<String, String> {
    #[derive(Deserialize)]
    struct Discovery {
        issuer: String,
        jwks_uri: String,
    }
    let d: Discovery = serde_json::from_slice(document)
        .map_err(|e| format!("not an OpenID provider configuration ({e})"))?;
    if d.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(format!(
            "the provider says its issuer is {:?}, not {issuer:?}",
            d.issuer
        ));
    }
    let scheme = |u: &str| u.split("://").next().map(str::to_ascii_lowercase);
    if scheme(&d.jwks_uri) != scheme(issuer) {
        return Err(format!(
            "jwks_uri {:?} does not use the issuer's scheme",
            d.jwks_uri
        ));
    }
    Ok(d.jwks_uri)
}

/// The claims a Registre token carries.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenClaims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

impl TokenClaims {
    /// Claims valid from now for `lifetime`.
    pub fn new(sub: &str, iss: &str, aud: &str, lifetime: Duration) -> TokenClaims {
        let now = chrono::Utc::now().timestamp();
        TokenClaims {
            sub: sub.into(),
            iss: iss.into(),
            aud: aud.into(),
            iat: now,
            nbf: now,
            exp: now.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX)),
        }
    }
}

/// Why a signing key could not be made or used.
#[derive(Debug, Error)]
#[error("signing key: {0}")]
pub struct SigningError(String);

/// A private key that signs tokens: the demo's own issuer, and the tests'.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
    jwk: Jwk,
    pem: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh P-256 key for ES256.
    pub fn generate_es256(kid: &str) -> Result<SigningKey, SigningError> {
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        let secret = p256::SecretKey::random(&mut rand::rngs::OsRng);
        let pem = secret
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| SigningError(e.to_string()))?;
        SigningKey::from_pem(kid, Algorithm::ES256, pem.as_bytes())
    }

    /// A key from its PKCS#8 PEM: `alg` is RS256 or ES256.
    pub fn from_pem(kid: &str, alg: Algorithm, pem: &[u8]) -> Result<SigningKey, SigningError> {
        let encoding = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
            other => return Err(SigningError(format!("{other:?} is not accepted"))),
        }
        .map_err(|e| SigningError(e.to_string()))?;
        let mut jwk =
            Jwk::from_encoding_key(&encoding, alg).map_err(|e| SigningError(e.to_string()))?;
        jwk.common.key_id = Some(kid.into());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let pem = String::from_utf8(pem.to_vec()).map_err(|e| SigningError(e.to_string()))?;
        Ok(SigningKey {
            kid: kid.into(),
            alg,
            encoding,
            jwk,
            pem,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key, PKCS#8 PEM (the demo keeps it to mint tokens again).
    pub fn private_pem(&self) -> &str {
        &self.pem
    }

    /// The public half, as a JWK.
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    pub fn sign(&self, claims: &TokenClaims) -> Result<String, SigningError> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| SigningError(e.to_string()))
    }
}

/// A JWKS document publishing the public halves of `keys`.
pub fn jwks_json(keys: &[&SigningKey]) -> serde_json::Value {
    serde_json::json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{collections::BTreeSet, path::Path};

    const RSA_PEM: &[u8] = include_bytes!("../testdata/TEST-ONLY-rsa-private-key.pem");
    const ISS: &str = "https://idp.test";
    const AUD: &str = "registre-test";

    struct Fixture {
        _dir: TempDir,
        path: std::path::PathBuf,
        rsa: SigningKey,
        ec: SigningKey,
    }

    /// A throwaway directory removed on drop.
    struct TempDir(std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn fixture() -> Fixture {
        let dir = std::env::temp_dir().join(format!("registre-auth-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let rsa = SigningKey::from_pem("rsa-1", Algorithm::RS256, RSA_PEM).expect("test RSA key");
        let ec = SigningKey::generate_es256("ec-1").expect("P-256 key");
        let path = dir.join("jwks.json");
        write_jwks(&path, &[&rsa, &ec]);
        Fixture {
            _dir: TempDir(dir),
            path,
            rsa,
            ec,
        }
    }

    fn write_jwks(path: &Path, keys: &[&SigningKey]) {
        std::fs::write(path, jwks_json(keys).to_string()).expect("write JWKS");
    }

    async fn authenticator(path: &Path, refetch: Duration) -> Authenticator {
        refreshing_authenticator(path, refetch, Duration::from_secs(3600)).await
    }

    async fn refreshing_authenticator(
        path: &Path,
        refetch: Duration,
        refresh: Duration,
    ) -> Authenticator {
        Authenticator::load(AuthConfig {
            jwks: JwksSource::File(path.to_path_buf()),
            issuer: ISS.into(),
            audience: AUD.into(),
            admin_subjects: ["root".to_string()].into_iter().collect(),
            leeway: Duration::from_secs(60),
            refetch_min_interval: refetch,
            refresh_interval: refresh,
            roles_claim: None,
        })
        .await
        .expect("JWKS loads")
    }

    fn claims(sub: &str) -> TokenClaims {
        TokenClaims::new(sub, ISS, AUD, Duration::from_secs(600))
    }

    fn b64(json: &serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
    }

    #[tokio::test]
    async fn valid_rs256_and_es256_tokens_are_accepted() {
        let f = fixture();
        let auth = authenticator(&f.path, Duration::from_secs(30)).await;
        for key in [&f.rsa, &f.ec] {
            let token = key.sign(&claims("parent-1")).expect("sign");
            let caller = auth.verify(&token).await.expect("accepted");
            assert_eq!(
                caller,
                Caller {
                    subject: "parent-1".into(),
                    admin: false
                }
            );
        }
        let token = f.ec.sign(&claims("root")).expect("sign");
        let header = format!("Bearer {token}");
        let caller = auth
            .authenticate(Some(&header))
            .await
            .expect("presented")
            .expect("accepted");
        assert!(caller.admin, "root is an admin subject");
        assert!(auth.authenticate(None).await.is_none());
        assert_eq!(
            auth.authenticate(Some("Basic abc")).await,
            Some(Err(AuthRejection(AuthError::NotBearer.to_string())))
        );
    }

    #[tokio::test]
    async fn alg_none_and_hmac_with_the_public_key_are_refused() {
        let f = fixture();
        let auth = authenticator(&f.path, Duration::from_secs(30)).await;
        let body = b64(&serde_json::to_value(claims("x")).expect("claims"));
        let none = format!(
            "{}.{body}.",
            b64(&serde_json::json!({"alg": "none", "kid": "rsa-1"}))
        );
        assert_eq!(
            auth.verify(&none).await,
            Err(AuthError::AlgorithmNotAllowed("none".into()))
        );

        // HS256 keyed with the public key's bytes, the textbook confusion attack.
        let public = serde_json::to_vec(f.rsa.public_jwk()).expect("jwk");
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rsa-1".into());
        let hs = jsonwebtoken::encode(&header, &claims("x"), &EncodingKey::from_secret(&public))
            .expect("sign");
        assert_eq!(
            auth.verify(&hs).await,
            Err(AuthError::AlgorithmNotAllowed("HS256".into()))
        );

        // ES256 header naming the RSA key: refused before any signature check.
        let ps = f.ec.sign(&claims("x")).expect("sign");
        let mut parts: Vec<&str> = ps.split('.').collect();
        let swapped = b64(&serde_json::json!({"alg": "ES256", "kid": "rsa-1"}));
        parts[0] = &swapped;
        assert_eq!(
            auth.verify(&parts.join(".")).await,
            Err(AuthError::AlgorithmNotAllowed("ES256".into()))
        );
    }

    #[tokio::test]
    async fn claims_are_checked() {
        let f = fixture();
        let auth = authenticator(&f.path, Duration::from_secs(30)).await;
        let now = chrono::Utc::now().timestamp();
        let mut expired = claims("x");
        expired.exp = now - 120;
        let mut early = claims("x");
        early.nbf = now + 120;
        let mut within_leeway = claims("x");
        within_leeway.exp = now - 30;
        let mut wrong_iss = claims("x");
        wrong_iss.iss = "https://evil.test".into();
        let mut wrong_aud = claims("x");
        wrong_aud.aud = "another-app".into();
        for (claims, expected) in [
            (expired, Err(AuthError::Expired)),
            (early, Err(AuthError::NotYetValid)),
            (wrong_iss, Err(AuthError::WrongIssuer)),
            (wrong_aud, Err(AuthError::WrongAudience)),
            (
                within_leeway,
                Ok(Caller {
                    subject: "x".into(),
                    admin: false,
                }),
            ),
        ] {
            let token = f.ec.sign(&claims).expect("sign");
            assert_eq!(auth.verify(&token).await, expected, "{claims:?}");
        }
    }

    #[tokio::test]
    async fn tampered_tokens_and_unknown_keys_are_refused() {
        let f = fixture();
        let auth = authenticator(&f.path, Duration::from_secs(3600)).await;
        let token = f.rsa.sign(&claims("student-1")).expect("sign");
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[1] = b64(&serde_json::to_value(claims("head-1")).expect("claims"));
        assert_eq!(
            auth.verify(&parts.join(".")).await,
            Err(AuthError::BadSignature)
        );
        assert_eq!(auth.verify("not-a-jwt").await, Err(AuthError::Malformed));

        let stranger = SigningKey::generate_es256("ec-2").expect("key");
        let token = stranger.sign(&claims("x")).expect("sign");
        assert_eq!(auth.verify(&token).await, Err(AuthError::UnknownKey));

        // A key under a known kid but not the published one: signature fails.
        let impostor = SigningKey::generate_es256("ec-1").expect("key");
        let token = impostor.sign(&claims("x")).expect("sign");
        assert_eq!(auth.verify(&token).await, Err(AuthError::BadSignature));
    }

    #[tokio::test]
    async fn rotated_keys_are_picked_up_within_the_rate_limit() {
        let f = fixture();
        let rotated = SigningKey::generate_es256("ec-2").expect("key");
        let token = rotated.sign(&claims("x")).expect("sign");

        // Rate limited: the reload happened at load, so the new key is not seen.
        let limited = authenticator(&f.path, Duration::from_secs(3600)).await;
        write_jwks(&f.path, &[&f.ec, &rotated]);
        assert_eq!(limited.verify(&token).await, Err(AuthError::UnknownKey));

        write_jwks(&f.path, &[&f.ec]);
        let eager = authenticator(&f.path, Duration::ZERO).await;
        assert_eq!(eager.verify(&token).await, Err(AuthError::UnknownKey));
        write_jwks(&f.path, &[&f.ec, &rotated]);
        assert!(
            eager.verify(&token).await.is_ok(),
            "reloaded on the unknown kid"
        );
    }

    #[tokio::test]
    async fn verified_tokens_are_remembered_only_while_their_key_is_published() {
        let f = fixture();
        let auth = authenticator(&f.path, Duration::ZERO).await;
        let token = f.ec.sign(&claims("guardian-1")).expect("sign");
        let caller = auth.verify(&token).await.expect("a valid token");
        assert_eq!(auth.verify(&token).await, Ok(caller), "again, remembered");

        // The same header and claims with another signature are another token.
        let (signed, signature) = token.rsplit_once('.').expect("three parts");
        let mut forged: Vec<u8> = signature.bytes().collect();
        forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
        let forged = format!("{signed}.{}", String::from_utf8(forged).expect("ascii"));
        assert!(auth.verify(&forged).await.is_err());

        // The provider withdraws the key: the reload (on an unknown kid)
        // forgets what it verified, and the token is refused from then on.
        let rotated = SigningKey::generate_es256("ec-2").expect("key");
        write_jwks(&f.path, &[&f.rsa, &rotated]);
        let fresh = rotated.sign(&claims("x")).expect("sign");
        assert!(auth.verify(&fresh).await.is_ok(), "reloaded");
        assert_eq!(auth.verify(&token).await, Err(AuthError::UnknownKey));
    }

    #[tokio::test]
    async fn a_withdrawn_key_stops_verifying_at_the_next_refresh() {
        let f = fixture();
        // Reloads on unknown kids are rate limited away: only the refresh can see the change.
        let auth = authenticator(&f.path, Duration::from_secs(3600)).await;
        let token = f.ec.sign(&claims("guardian-1")).expect("sign");
        assert!(auth.verify(&token).await.is_ok(), "verified and remembered");
        assert!(!auth.refresh_now().await.expect("readable"), "unchanged");
        assert!(auth.verify(&token).await.is_ok());

        write_jwks(&f.path, &[&f.rsa]);
        assert!(auth.refresh_now().await.expect("readable"), "changed");
        assert_eq!(auth.verify(&token).await, Err(AuthError::UnknownKey));
        let rsa = f.rsa.sign(&claims("x")).expect("sign");
        assert!(
            auth.verify(&rsa).await.is_ok(),
            "the remaining key still verifies"
        );

        // A broken document keeps the keys in place.
        std::fs::write(&f.path, "{").expect("write");
        assert!(auth.refresh_now().await.is_err());
        assert!(auth.verify(&rsa).await.is_ok());
    }

    #[tokio::test]
    async fn the_jwks_is_re_read_on_a_period() {
        let f = fixture();
        let auth = refreshing_authenticator(
            &f.path,
            Duration::from_secs(3600),
            Duration::from_millis(50),
        )
        .await;
        let token = f.ec.sign(&claims("guardian-1")).expect("sign");
        assert!(auth.verify(&token).await.is_ok());
        let mut refreshes = auth.refreshes().expect("configured");
        write_jwks(&f.path, &[&f.rsa]);
        // A refresh that started after the write has completed once two more have.
        let seen = *refreshes.borrow_and_update();
        tokio::time::timeout(
            Duration::from_secs(20),
            refreshes.wait_for(|n| *n >= seen + 2),
        )
        .await
        .expect("refreshed in time")
        .expect("the verifier lives");
        assert_eq!(auth.verify(&token).await, Err(AuthError::UnknownKey));
    }

    #[tokio::test]
    async fn unusable_jwks_are_refused_at_load() {
        let f = fixture();
        std::fs::write(&f.path, r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).expect("write");
        let err = Authenticator::load(AuthConfig {
            jwks: JwksSource::File(f.path.clone()),
            issuer: ISS.into(),
            audience: AUD.into(),
            admin_subjects: BTreeSet::new(),
            leeway: Duration::from_secs(60),
            refetch_min_interval: Duration::from_secs(30),
            refresh_interval: Duration::from_secs(60),
            roles_claim: None,
        })
        .await
        .expect_err("HMAC keys are not usable");
        assert!(matches!(err, JwksError::NoUsableKey));
        assert_eq!(
            Authenticator::disabled().verify("a.b.c").await,
            Err(AuthError::NotConfigured)
        );
    }
}
