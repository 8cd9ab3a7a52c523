//! The read model's snapshot, one row per partition (decision 0022):
//! `readmodel:directory` and `readmodel:<UAI>`, each a slice of the model
//! ([`crate::Scope`]) as zstd-compressed JSON, plus a manifest naming the
//! model's position and each partition's row with the position it was
//! saved at. A save writes only the partitions that moved since the last
//! one, and the manifest, in one transaction; a row not rewritten still
//! holds its partition as it is at the manifest's position (nothing of it
//! moved since). A start loads the manifest, reads the rows it names
//! concurrently, then decompresses and deserializes them on threads that
//! end before it joins them.
//!
//! A node serving a set of establishments has its own manifest and
//! directory row (suffixed with its set's digest): the directory's rows of
//! two nodes differ by what their partitions' events add to it (the links
//! to a guardian's uploads), and each node's manifest must name rows that
//! agree with it. Rows that do not (another node rewrote a partition since)
//! make the start fold the log instead.

use crate::model::ReadModel;
use crate::parallel::in_parallel;
use crate::ProjectionError;
use registre_store::{EventStore, Partition, Position, Snapshot};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Key prefix of the rows.
const PREFIX: &str = "readmodel";

/// What a save wrote: the model's position and each partition's row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub position: Position,
    /// The position each partition's row was saved at.
    pub partitions: BTreeMap<Partition, Position>,
}

/// The keys of one node's rows.
#[derive(Clone, Debug)]
pub struct Keys {
    /// `None`: every partition.
    set: Option<BTreeSet<Partition>>,
    suffix: String,
}

impl Keys {
    pub fn new(partitions: Option<&[Partition]>) -> Self {
        let set: Option<BTreeSet<Partition>> = partitions.map(|p| p.iter().cloned().collect());
        let suffix = match &set {
            None => String::new(),
            Some(set) => {
                let mut digest = sha2::Sha256::new();
                for p in set {
                    digest.update(p.as_str().as_bytes());
                    digest.update([0]);
                }
                format!("@{}", &hex::encode(digest.finalize())[..16])
            }
        };
        Self { set, suffix }
    }

    pub fn manifest(&self) -> String {
        format!("{PREFIX}:manifest{}", self.suffix)
    }

    /// The row of a partition.
    pub fn row(&self, partition: &Partition) -> String {
        if partition.is_directory() {
            format!("{PREFIX}:{}{}", Partition::DIRECTORY, self.suffix)
        } else {
            format!("{PREFIX}:{}", partition.as_str())
        }
    }

    /// Whether this node holds `partition` (the directory always).
    pub fn holds(&self, partition: &Partition) -> bool {
        partition.is_directory() || self.set.as_ref().is_none_or(|s| s.contains(partition))
    }
}

/// Saves the slices of `partitions` (those that moved, or all) of `model`
/// and the manifest in one transaction; returns the new manifest.
/// `previous` is the manifest saved before (its rows not rewritten stay).
pub async fn save(
    store: &Arc<dyn EventStore>,
    keys: &Keys,
    model: &parking_lot::RwLock<ReadModel>,
    moved: Option<&BTreeSet<Partition>>,
    previous: &Manifest,
    threads: usize,
) -> Result<Manifest, ProjectionError> {
    let (position, slices) = {
        let model = model.read();
        let wanted = |p: &Partition| {
            keys.holds(p)
                && (moved.is_none_or(|m| m.contains(p)) || !previous.partitions.contains_key(p))
        };
        (model.position(), model.slices_of(wanted))
    };
    let mut manifest = Manifest {
        position,
        partitions: previous.partitions.clone(),
    };
    // A partition that moved and holds nothing now (its entries gone, or
    // placed elsewhere since: a person registered again in another school
    // moves their conversations) is rewritten empty, or its old row would
    // come back at the next start.
    let mut slices: Vec<(Partition, ReadModel)> = slices.into_iter().collect();
    let emptied: Vec<&Partition> = match moved {
        Some(moved) => moved.iter().collect(),
        None => previous.partitions.keys().collect(),
    };
    for p in emptied {
        if keys.holds(p) && !slices.iter().any(|(q, _)| q == p) {
            let empty = ReadModel {
                position,
                ..ReadModel::default()
            };
            slices.push((p.clone(), empty));
        }
    }
    let rows = tokio::task::spawn_blocking({
        let keys = keys.clone();
        move || {
            in_parallel(slices, threads, |(partition, slice)| {
                let state = slice.to_snapshot()?;
                Ok::<_, serde_json::Error>((
                    partition.clone(),
                    Snapshot {
                        key: keys.row(&partition),
                        version: ReadModel::VERSION,
                        position,
                        state,
                    },
                ))
            })
        }
    })
    .await
    .map_err(|e| ProjectionError::Io(std::io::Error::other(e)))?;
    let mut snapshots = Vec::with_capacity(rows.len() + 1);
    for row in rows {
        let (partition, snapshot) = row?;
        manifest.partitions.insert(partition, position);
        snapshots.push(snapshot);
    }
    snapshots.push(Snapshot {
        key: keys.manifest(),
        version: ReadModel::VERSION,
        position,
        state: serde_json::to_vec(&manifest)?,
    });
    store.save_snapshots(snapshots).await?;
    Ok(manifest)
}

/// Why a start found no usable snapshot (logged; the log is folded instead).
#[derive(Debug)]
pub enum Unusable {
    None,
    Version(u32),
    /// A row the manifest names is missing, of another version or position,
    /// or does not decode.
    Row(String),
}

/// Loads this node's rows and joins them, or says why it cannot.
pub async fn load(
    store: &Arc<dyn EventStore>,
    keys: &Keys,
    threads: usize,
) -> Result<Result<(ReadModel, Manifest), Unusable>, ProjectionError> {
    let Some(row) = store.load_snapshot(&keys.manifest()).await? else {
        return Ok(Err(Unusable::None));
    };
    if row.version != ReadModel::VERSION {
        return Ok(Err(Unusable::Version(row.version)));
    }
    let manifest: Manifest = match serde_json::from_slice(&row.state) {
        Ok(m) => m,
        Err(e) => return Ok(Err(Unusable::Row(format!("{}: {e}", keys.manifest())))),
    };
    let wanted: Vec<(Partition, Position)> = manifest
        .partitions
        .iter()
        .filter(|(p, _)| keys.holds(p))
        .map(|(p, at)| (p.clone(), *at))
        .collect();
    let started = std::time::Instant::now();
    // Every row is read first, concurrently; then decoded on threads of
    // their own that end before the join begins: the join's threads take
    // over the memory the parts free (the allocator hands an ended
    // thread's pages to the next that asks), where a decoding pool that
    // outlived the join kept it, and the join faulted in fresh pages, the
    // dearest thing a start does on a virtual machine (decision 0025).
    let reads: Vec<_> = wanted
        .iter()
        .map(|(p, at)| {
            let store = Arc::clone(store);
            let key = keys.row(p);
            let at = *at;
            tokio::spawn(async move {
                let row = store.load_snapshot(&key).await?;
                Ok::<_, ProjectionError>(match row {
                    Some(r) if r.version == ReadModel::VERSION && r.position == at => {
                        Ok((key, r.state))
                    }
                    Some(r) => Err(format!(
                        "{key}: version {} position {}",
                        r.version, r.position
                    )),
                    None => Err(format!("{key}: missing")),
                })
            })
        })
        .collect();
    let mut states = Vec::with_capacity(reads.len());
    for read in reads {
        match read
            .await
            .map_err(|e| ProjectionError::Io(std::io::Error::other(e)))??
        {
            Ok(state) => states.push(state),
            Err(why) => return Ok(Err(Unusable::Row(why))),
        }
    }
    let read = started.elapsed();
    let rows = states.len();
    let bytes: usize = states.iter().map(|(_, s)| s.len()).sum();
    let joined = tokio::task::spawn_blocking(move || {
        let decoding = std::time::Instant::now();
        let parts = in_parallel(states, threads, |(key, state)| {
            ReadModel::from_snapshot(&state).map_err(|e| format!("{key}: {e}"))
        })
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
        let decoded = decoding.elapsed();
        Ok((crate::slice::union_of(parts, threads), decoded))
    })
    .await
    .map_err(|e| ProjectionError::Io(std::io::Error::other(e)))?;
    let (mut model, decoded) = match joined {
        Ok(joined) => joined,
        Err(why) => return Ok(Err(Unusable::Row(why))),
    };
    model.position = manifest.position;
    // What an operator compares when a start from snapshots is slow: the
    // reading, the decoding and the joining.
    tracing::info!(
        rows,
        bytes,
        read_ms = read.as_millis() as u64,
        decoded_ms = decoded.as_millis() as u64,
        joined_ms = (started.elapsed() - read - decoded).as_millis() as u64,
        position = manifest.position,
        "read model loaded from its snapshots"
    );
    Ok(Ok((model, manifest)))
}
