//! Crypto-shredding (GDPR art. 17 in an append-only log): personal free text
//! of events is stored encrypted with a key per person, and the keys live in
//! the `subject_keys` table, outside the event table. Erasing a person is
//! destroying their keys: the events stay, the hash chain (computed over the
//! stored ciphertext) still verifies, counts and statistics are unchanged, and
//! the text reads as [`ERASED`] from then on.
//!
//! [`VaultStore`] wraps any [`EventStore`]: it seals the personal fields of
//! events on append and opens them on every read, so the domain, projections
//! and API see plaintext and never handle keys. Tools that must see the stored
//! form (`registre audit verify`) use the unwrapped store.
//!
//! Which fields are personal, and whose key seals them, the domain declares
//! (`registre_domain::personal`, handed to [`VaultStore::wrap`] as a
//! [`PersonalFields`]): the store knows no event types. A sealed string is
//! `enc:v1:<owner uuid>:<nonce>:<ciphertext>` (base64url), in place of the
//! plaintext string, so that the JSON shape of an event is unchanged and logs
//! written before the vault (plaintext) still read.
//!
//! The nonce is derived from the key and the plaintext (HMAC-SHA256, the SIV
//! construction): the same text sealed twice gives the same ciphertext, which
//! keeps idempotent re-appends byte-identical, and two different texts never
//! share a nonce.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{
    AccessRecord, AppendOutcome, AppendRequest, EventMetadata, EventStore, NewAccess, Partition,
    Position, RawEvent, RecordedEvent, Result, Snapshot, StoreError, StreamVersion,
};

/// What an erased person's text reads as.
pub const ERASED: &str = "[effacé]";

const PREFIX: &str = "enc:v1:";

/// A person's AES-256 key.
pub type SubjectKey = [u8; 32];

/// Which data fields of an event type are personal text, and whose: the
/// field naming the key's owner (a person or student record id) and the
/// fields sealed with that owner's key; `None` for an event holding none. The
/// metadata's `reason` of an event holding personal text is sealed with the
/// same key. Erasing a person destroys the keys of their person id and of
/// their student records.
pub type PersonalFields = fn(&str) -> Option<(&'static str, &'static [&'static str])>;

/// Where the keys are kept (the `subject_keys` table of each backend).
#[async_trait]
pub trait SubjectKeys: Send + Sync + std::fmt::Debug + 'static {
    /// The subject's key, stored as `fresh` if the subject has none yet;
    /// `None` when it was destroyed.
    async fn key_for_write(&self, subject: Uuid, fresh: SubjectKey) -> Result<Option<SubjectKey>>;
    /// The keys of these subjects: `Some(key)` live, `None` destroyed; a
    /// subject that never had a key is absent.
    async fn keys(&self, subjects: Vec<Uuid>) -> Result<HashMap<Uuid, Option<SubjectKey>>>;
    /// Destroys the keys of these subjects (also of those that have none yet,
    /// so that later text about them is not sealed with a new key), and drops
    /// the stored read-model snapshots, which hold decrypted text. Returns
    /// the number of subjects whose key was live until now.
    async fn destroy(&self, subjects: Vec<Uuid>, at: DateTime<Utc>) -> Result<u64>;
    /// Whether the subject's key was destroyed.
    async fn is_destroyed(&self, subject: Uuid) -> Result<bool> {
        Ok(matches!(
            self.keys(vec![subject]).await?.get(&subject),
            Some(None)
        ))
    }
}

/// Seals and opens the personal fields of events, caching keys.
#[derive(Debug)]
pub struct Vault {
    keys: Arc<dyn SubjectKeys>,
    personal: PersonalFields,
    /// Keys read so far (`None`: destroyed). In-process erasure updates it; a
    /// key destroyed by another process is dropped when this process reads
    /// that erasure from the log ([`Vault::forget_cached`], called by a
    /// consumer of the node's log follower that the vault's owner registers).
    cache: Mutex<HashMap<Uuid, Option<SubjectKey>>>,
}

impl Vault {
    pub fn new(keys: Arc<dyn SubjectKeys>, personal: PersonalFields) -> Self {
        Vault {
            keys,
            personal,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn keys(&self) -> &Arc<dyn SubjectKeys> {
        &self.keys
    }

    /// Destroys the keys of these subjects (see [`SubjectKeys::destroy`]).
    pub async fn destroy(&self, subjects: Vec<Uuid>, at: DateTime<Utc>) -> Result<u64> {
        let n = self.keys.destroy(subjects.clone(), at).await?;
        let mut cache = self.cache.lock();
        for s in subjects {
            cache.insert(s, None);
        }
        Ok(n)
    }

    /// Marks these subjects' keys destroyed in this process's cache, because
    /// another process destroyed them: its `PersonErased` was read from the
    /// log, and erasure destroys the keys before appending that event.
    pub fn forget_cached(&self, subjects: impl IntoIterator<Item = Uuid>) {
        let mut cache = self.cache.lock();
        for s in subjects {
            cache.insert(s, None);
        }
    }

    async fn write_key(&self, owner: Uuid) -> Result<Option<SubjectKey>> {
        if let Some(k) = self.cache.lock().get(&owner) {
            return Ok(*k);
        }
        let fresh: SubjectKey = Aes256Gcm::generate_key(OsRng).into();
        let key = self.keys.key_for_write(owner, fresh).await?;
        self.cache.lock().insert(owner, key);
        Ok(key)
    }

    /// Replaces the personal fields of one event by their sealed form.
    pub async fn seal(
        &self,
        event_type: &str,
        data: &mut Value,
        metadata: &mut EventMetadata,
    ) -> Result<()> {
        let Some((owner, fields)) = self.spec(event_type, data) else {
            return Ok(());
        };
        let key = self.write_key(owner).await?;
        let seal_one = |text: &str| match &key {
            Some(k) if !text.starts_with(PREFIX) => seal_text(k, owner, text),
            Some(_) => Ok(text.to_owned()),
            None => Ok(ERASED.to_owned()),
        };
        if let Value::Object(map) = data {
            for f in fields {
                if let Some(Value::String(s)) = map.get_mut(*f) {
                    *s = seal_one(s)?;
                }
            }
        }
        if let Some(reason) = &mut metadata.reason {
            *reason = seal_one(reason)?;
        }
        Ok(())
    }

    /// Seals a file's bytes with `owner`'s key (a justification's documents
    /// with the student's, issue 16): `nonce || AES-256-GCM(bytes)`, the
    /// owner as associated data. `None` when the key was destroyed.
    pub async fn seal_bytes(&self, owner: Uuid, bytes: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(key) = self.write_key(owner).await? else {
            return Ok(None);
        };
        let nonce = Aes256Gcm::generate_nonce(OsRng);
        let ct = cipher(&key)
            .encrypt(
                &nonce,
                Payload {
                    msg: bytes,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Backend("vault: encryption failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(Some(out))
    }

    /// Opens what [`Vault::seal_bytes`] sealed; `None` once the owner's key
    /// is destroyed (or was never made).
    pub async fn open_bytes(&self, owner: Uuid, sealed: &[u8]) -> Result<Option<Vec<u8>>> {
        let cached = self.cache.lock().get(&owner).copied();
        let key = match cached {
            Some(k) => k,
            None => {
                let found = self
                    .keys
                    .keys(vec![owner])
                    .await?
                    .get(&owner)
                    .copied()
                    .flatten();
                self.cache.lock().insert(owner, found);
                found
            }
        };
        let Some(key) = key else {
            return Ok(None);
        };
        if sealed.len() < 12 {
            return Err(StoreError::Corrupt("sealed file: too short".into()));
        }
        let (nonce, ct) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce
            .try_into()
            .map_err(|_| StoreError::Corrupt("sealed file: short nonce".into()))?;
        let plain = cipher(&key)
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Corrupt("sealed file: does not open".into()))?;
        Ok(Some(plain))
    }

    /// Opens the sealed fields of these events in place; text whose key was
    /// destroyed becomes [`ERASED`].
    pub async fn open(&self, events: &mut [RecordedEvent]) -> Result<()> {
        let mut items: Vec<_> = events
            .iter_mut()
            .map(|e| {
                (
                    e.event_type.as_str(),
                    &mut e.data,
                    e.metadata.reason.as_mut(),
                )
            })
            .collect();
        self.open_each(&mut items).await
    }

    /// [`Vault::open`] for events read as text: only an event of a type that
    /// holds personal text is parsed (and written back), the rest are left
    /// as read. A fold never reads the metadata's reason, so it is not there
    /// to open.
    pub async fn open_raw(&self, events: &mut [RawEvent]) -> Result<()> {
        let mut personal = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if (self.personal)(&e.event_type).is_some() {
                let data: Value = serde_json::from_str(&e.data)
                    .map_err(|err| StoreError::Corrupt(format!("data at {}: {err}", e.position)))?;
                personal.push((i, data));
            }
        }
        if personal.is_empty() {
            return Ok(());
        }
        let mut items: Vec<_> = personal
            .iter_mut()
            .map(|(i, data)| (events[*i].event_type.as_str(), data, None))
            .collect();
        self.open_each(&mut items).await?;
        drop(items);
        for (i, data) in personal {
            events[i].data = data.to_string();
        }
        Ok(())
    }

    /// Opens each (event type, data, reason) in place.
    async fn open_each(&self, items: &mut [(&str, &mut Value, Option<&mut String>)]) -> Result<()> {
        let mut owners = HashSet::new();
        for (event_type, data, _) in items.iter() {
            if let Some((owner, _)) = self.spec(event_type, data) {
                owners.insert(owner);
            }
        }
        let missing: Vec<Uuid> = {
            let cache = self.cache.lock();
            owners
                .into_iter()
                .filter(|o| !cache.contains_key(o))
                .collect()
        };
        if !missing.is_empty() {
            let found = self.keys.keys(missing.clone()).await?;
            let mut cache = self.cache.lock();
            for o in missing {
                // No row at all: no key was ever made, so nothing sealed with
                // it can be read either.
                cache.insert(o, found.get(&o).copied().flatten());
            }
        }
        let cache = self.cache.lock();
        for (event_type, data, reason) in items.iter_mut() {
            let Some((_, fields)) = self.spec(event_type, data) else {
                continue;
            };
            if let Value::Object(map) = &mut **data {
                for f in fields {
                    if let Some(Value::String(s)) = map.get_mut(*f) {
                        *s = open_text(&cache, s)?;
                    }
                }
            }
            if let Some(reason) = reason {
                **reason = open_text(&cache, reason)?;
            }
        }
        Ok(())
    }

    /// The owner of an event's personal text and the fields sealed with
    /// their key.
    fn spec(&self, event_type: &str, data: &Value) -> Option<(Uuid, &'static [&'static str])> {
        let (owner_field, fields) = (self.personal)(event_type)?;
        let owner = data.get(owner_field)?.as_str()?.parse().ok()?;
        Some((owner, fields))
    }
}

fn cipher(key: &SubjectKey) -> Aes256Gcm {
    Aes256Gcm::new(key.into())
}

fn seal_text(key: &SubjectKey, owner: Uuid, text: &str) -> Result<String> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .map_err(|e| StoreError::Backend(format!("vault: {e}")))?;
    mac.update(b"registre-vault-nonce-v1\0");
    mac.update(text.as_bytes());
    let tag = mac.finalize().into_bytes();
    let nonce_bytes: [u8; 12] = tag[..12]
        .try_into()
        .map_err(|_| StoreError::Backend("vault: short nonce".into()))?;
    let nonce = Nonce::from(nonce_bytes);
    let ct = cipher(key)
        .encrypt(
            &nonce,
            Payload {
                msg: text.as_bytes(),
                aad: owner.as_bytes(),
            },
        )
        .map_err(|_| StoreError::Backend("vault: encryption failed".into()))?;
    Ok(format!(
        "{PREFIX}{owner}:{}:{}",
        URL_SAFE_NO_PAD.encode(nonce),
        URL_SAFE_NO_PAD.encode(ct)
    ))
}

fn open_text(cache: &HashMap<Uuid, Option<SubjectKey>>, stored: &str) -> Result<String> {
    let Some(rest) = stored.strip_prefix(PREFIX) else {
        // Written before the vault, or by a tool that does not seal.
        return Ok(stored.to_owned());
    };
    let corrupt = |why: &str| StoreError::Corrupt(format!("sealed field: {why}"));
    let mut parts = rest.splitn(3, ':');
    let (Some(owner), Some(nonce), Some(ct)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(corrupt("not owner:nonce:ciphertext"));
    };
    let owner: Uuid = owner.parse().map_err(|_| corrupt("owner is no uuid"))?;
    let Some(Some(key)) = cache.get(&owner) else {
        return Ok(ERASED.to_owned());
    };
    let nonce = URL_SAFE_NO_PAD
        .decode(nonce)
        .map_err(|_| corrupt("nonce is no base64"))?;
    let nonce: [u8; 12] = nonce
        .try_into()
        .map_err(|_| corrupt("nonce is not 12 bytes"))?;
    let ct = URL_SAFE_NO_PAD
        .decode(ct)
        .map_err(|_| corrupt("ciphertext is no base64"))?;
    let plain = cipher(key)
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &ct,
                aad: owner.as_bytes(),
            },
        )
        .map_err(|_| corrupt("does not authenticate"))?;
    String::from_utf8(plain).map_err(|_| corrupt("not UTF-8"))
}

/// An [`EventStore`] that seals personal fields on append and opens them on
/// read; everything else is delegated.
#[derive(Debug)]
pub struct VaultStore {
    inner: Arc<dyn EventStore>,
    vault: Arc<Vault>,
}

impl VaultStore {
    /// `inner` behind a vault sealing the `personal` fields; `inner` itself
    /// when it is already wrapped. A backend that keeps no subject keys is
    /// refused ([`StoreError::NoKeyTable`]): personal text would be stored in
    /// clear.
    pub fn wrap(
        inner: Arc<dyn EventStore>,
        personal: PersonalFields,
    ) -> Result<Arc<dyn EventStore>> {
        if inner.vault().is_some() {
            return Ok(inner);
        }
        match inner.subject_keys() {
            Some(keys) => Ok(Arc::new(VaultStore {
                inner,
                vault: Arc::new(Vault::new(keys, personal)),
            })),
            None => Err(StoreError::NoKeyTable(
                "this store keeps no subject keys; personal text would be stored in clear".into(),
            )),
        }
    }

    async fn seal_request(&self, request: &mut AppendRequest) -> Result<()> {
        for e in &mut request.events {
            self.vault
                .seal(&e.event_type, &mut e.data, &mut e.metadata)
                .await?;
        }
        Ok(())
    }

    async fn opened(&self, mut events: Vec<RecordedEvent>) -> Result<Vec<RecordedEvent>> {
        self.vault.open(&mut events).await?;
        Ok(events)
    }

    async fn opened_outcome(&self, mut outcome: AppendOutcome) -> Result<AppendOutcome> {
        self.vault.open(&mut outcome.events).await?;
        Ok(outcome)
    }
}

#[async_trait]
impl EventStore for VaultStore {
    async fn append(&self, mut request: AppendRequest) -> Result<AppendOutcome> {
        self.seal_request(&mut request).await?;
        let outcome = self.inner.append(request).await?;
        self.opened_outcome(outcome).await
    }

    async fn append_batch(&self, mut requests: Vec<AppendRequest>) -> Result<Vec<AppendOutcome>> {
        for r in &mut requests {
            self.seal_request(r).await?;
        }
        let outcomes = self.inner.append_batch(requests).await?;
        let mut out = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            out.push(self.opened_outcome(o).await?);
        }
        Ok(out)
    }

    async fn find_idempotent(&self, key: &str) -> Result<Option<AppendOutcome>> {
        match self.inner.find_idempotent(key).await? {
            Some(o) => Ok(Some(self.opened_outcome(o).await?)),
            None => Ok(None),
        }
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        after_version: StreamVersion,
    ) -> Result<Vec<RecordedEvent>> {
        let events = self.inner.read_stream(stream_id, after_version).await?;
        self.opened(events).await
    }

    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>> {
        let events = self.inner.read_all(after, limit).await?;
        self.opened(events).await
    }

    async fn read_partitions(
        &self,
        after: Position,
        partitions: &[Partition],
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let events = self.inner.read_partitions(after, partitions, limit).await?;
        self.opened(events).await
    }

    async fn read_partitions_raw(
        &self,
        after: Position,
        partitions: &[Partition],
        limit: usize,
    ) -> Result<Vec<RawEvent>> {
        let mut events = self
            .inner
            .read_partitions_raw(after, partitions, limit)
            .await?;
        self.vault.open_raw(&mut events).await?;
        Ok(events)
    }

    async fn first_unassigned(&self) -> Result<Option<Position>> {
        self.inner.first_unassigned().await
    }

    async fn assign_partitions(&self, assignments: &[(Position, Partition)]) -> Result<u64> {
        self.inner.assign_partitions(assignments).await
    }

    async fn read_positions(&self, positions: &[Position]) -> Result<Vec<RecordedEvent>> {
        let events = self.inner.read_positions(positions).await?;
        self.opened(events).await
    }

    async fn head(&self) -> Result<Position> {
        self.inner.head().await
    }

    fn wakeups(&self) -> watch::Receiver<Position> {
        self.inner.wakeups()
    }

    async fn load_snapshot(&self, key: &str) -> Result<Option<Snapshot>> {
        self.inner.load_snapshot(key).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<()> {
        self.inner.save_snapshot(snapshot).await
    }

    async fn save_snapshots(&self, snapshots: Vec<Snapshot>) -> Result<()> {
        self.inner.save_snapshots(snapshots).await
    }

    async fn record_access(&self, entries: Vec<NewAccess>) -> Result<()> {
        self.inner.record_access(entries).await
    }

    async fn read_access(&self, after: u64, limit: usize) -> Result<Vec<AccessRecord>> {
        self.inner.read_access(after, limit).await
    }

    async fn access_about(&self, subject_id: Uuid) -> Result<Vec<AccessRecord>> {
        self.inner.access_about(subject_id).await
    }

    async fn purge_access_before(&self, before: DateTime<Utc>) -> Result<u64> {
        self.inner.purge_access_before(before).await
    }

    fn subject_keys(&self) -> Option<Arc<dyn SubjectKeys>> {
        Some(self.vault.keys().clone())
    }

    fn vault(&self) -> Option<Arc<Vault>> {
        Some(self.vault.clone())
    }

    fn usage(&self) -> Option<Arc<dyn crate::usage::UsageStore>> {
        self.inner.usage()
    }

    fn communication(&self) -> Option<Arc<dyn crate::communication::CommunicationStore>> {
        self.inner.communication()
    }

    fn nodes(&self) -> Option<Arc<dyn crate::nodes::NodeRegistry>> {
        self.inner.nodes()
    }
}
