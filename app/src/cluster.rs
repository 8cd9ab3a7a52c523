//! Several nodes over one log (issue 12, decision 0021): what this node
//! folds, the registry of the others, and how it reaches them.
//!
//! A node folds the directory and its establishments
//! (`REGISTRE_ESTABLISHMENTS`, [`registre_projections::EngineConfig::partitions`]).
//! Whatever it lacks it asks a live node that holds it:
//! - a *view* (a student's record, read by a guardian whose child is served
//!   elsewhere): this node authorizes (policy reads the directory, which it
//!   folds) and logs the access (the access log is shared), then fetches the
//!   class's slice of the model from the holder ([`Cluster::fetch_slice`],
//!   `POST /internal/slice`, authenticated with the node key) at the
//!   request's position, so that the holder answers what this node's caller
//!   wrote a moment ago (read-your-writes);
//! - a *whole request* (a mutation of a stream held elsewhere: the executor
//!   refuses with [`ApiError::Elsewhere`] before deciding anything; a staff
//!   query of an establishment held elsewhere): the transport sends the HTTP
//!   request as it came, the caller's token included, to a live holder,
//!   once ([`FORWARDED_HEADER`]), and answers what it answers.
//!
//! No live holder: [`ApiError::PartitionUnavailable`], the partition named.
//!
//! The registry ([`registre_store::nodes`]) is a table beside the log: the
//! node registers at start, beats every `heartbeat` period from a task of
//! the App and deregisters at a clean stop; a node whose beat is older than
//! `liveness` is not asked.

use crate::policy::Caller;
use crate::{ApiError, App, Viewer};
use chrono::Utc;
use registre_domain::ClassId;
use registre_projections::ReadModel;
use registre_projections::Scope;
use registre_store::nodes::{NodeRecord, NodeRegistry};
use registre_store::{Partition, Position};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// The header carrying the node key on requests between nodes.
pub const NODE_KEY_HEADER: &str = "x-registre-node-key";
/// Marks a request a node forwarded: its receiver never forwards it again
/// (one hop at most, so two nodes that disagree cannot loop).
pub const FORWARDED_HEADER: &str = "x-registre-forwarded";
/// The internal route answering a slice of the model.
pub const SLICE_PATH: &str = "internal/slice";

/// The shared secret nodes authenticate each other with
/// (`REGISTRE_NODE_KEY`). Never printed.
#[derive(Clone)]
pub struct NodeKey(Arc<str>);

impl NodeKey {
    pub fn new(key: impl Into<Arc<str>>) -> Self {
        Self(key.into())
    }

    /// Whether `presented` is the key. Compared as SHA-256 digests, so the
    /// time taken says nothing about how much of it matched.
    pub fn matches(&self, presented: &str) -> bool {
        Sha256::digest(self.0.as_bytes()) == Sha256::digest(presented.as_bytes())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeKey(..)")
    }
}

/// How this node takes part in a region.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// This process's id in the registry (a new one per start).
    pub node_id: Uuid,
    /// The base URL the other nodes reach this one at
    /// (`REGISTRE_ADVERTISE_URL`); `None`: not registered, so never asked.
    pub advertise_url: Option<String>,
    /// `REGISTRE_NODE_KEY`; required with a served set (checked by the
    /// configuration), and without it this node answers no internal request.
    pub node_key: Option<NodeKey>,
    /// How often the node beats (`REGISTRE_HEARTBEAT_SECS`).
    pub heartbeat: Duration,
    /// A node silent this long is taken for dead (`REGISTRE_NODE_TIMEOUT_SECS`).
    pub liveness: Duration,
    /// How long a request to another node may take.
    pub request_timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_id: Uuid::now_v7(),
            advertise_url: None,
            node_key: None,
            heartbeat: Duration::from_secs(5),
            liveness: Duration::from_secs(15),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// What a slice covers, on the wire: one class's record (its students'
/// grades, absences, homework, timetable, the class figures), with the
/// directory entries it refers to (`Scope::Class` of the read model).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SliceScope {
    Class(ClassId),
}

/// `POST /internal/slice`'s body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SliceRequest {
    pub scope: SliceScope,
    /// The holder answers once its model has applied this position (the
    /// asking node's view of the head: read-your-writes across nodes).
    pub at: Position,
}

/// The node's place in the region. One per [`App`].
#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    served: Option<Vec<Partition>>,
    registry: Option<Arc<dyn NodeRegistry>>,
    /// The registry's live nodes as last read, and when: a forwarded request
    /// reads it at most once per [`REGISTRY_CACHE`] rather than once each.
    live: parking_lot::Mutex<Option<(std::time::Instant, Arc<Vec<NodeRecord>>)>>,
    http: reqwest::Client,
    started_at: chrono::DateTime<Utc>,
}

/// How long the registry's answer is reused. Well under a heartbeat, so a
/// node that took over a partition is asked within a second; a node that
/// stopped is dropped from it as soon as a request to it fails.
const REGISTRY_CACHE: Duration = Duration::from_secs(1);

impl Cluster {
    pub(crate) fn new(
        config: ClusterConfig,
        served: Option<Vec<Partition>>,
        registry: Option<Arc<dyn NodeRegistry>>,
    ) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| ApiError::Internal(format!("cluster client: {e}")))?;
        Ok(Self {
            config,
            served,
            registry,
            live: parking_lot::Mutex::new(None),
            http,
            started_at: Utc::now(),
        })
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The establishments this node folds; `None`: all of them.
    pub fn served(&self) -> Option<&[Partition]> {
        self.served.as_deref()
    }

    /// Whether this node folds `partition` (the directory: always).
    pub fn holds(&self, partition: &Partition) -> bool {
        partition.served_by(self.served())
    }

    /// Whether `presented` is the node key (no key configured: nothing is).
    pub fn authenticates(&self, presented: Option<&str>) -> bool {
        match (&self.config.node_key, presented) {
            (Some(key), Some(p)) => key.matches(p),
            _ => false,
        }
    }

    fn record(&self, heartbeat_at: chrono::DateTime<Utc>) -> NodeRecord {
        NodeRecord {
            node_id: self.config.node_id,
            advertise_url: self.config.advertise_url.clone().unwrap_or_default(),
            served: self.served.clone(),
            started_at: self.started_at,
            heartbeat_at,
        }
    }

    /// The live nodes other than this one that fold `partition`, the
    /// longest running first. Read from the registry at most once per
    /// [`REGISTRY_CACHE`]; no holder in the cached answer: read again, so
    /// that a node that has just taken a partition over is found at once.
    pub async fn holders(&self, partition: &Partition) -> Result<Vec<NodeRecord>, ApiError> {
        let fresh = self.live.lock().as_ref().and_then(|(at, nodes)| {
            (at.elapsed() < REGISTRY_CACHE.min(self.config.heartbeat)).then(|| Arc::clone(nodes))
        });
        if let Some(nodes) = fresh {
            let found = self.holders_among(&nodes, partition);
            if !found.is_empty() {
                return Ok(found);
            }
        }
        let Some(registry) = &self.registry else {
            return Ok(Vec::new());
        };
        let since = Utc::now()
            - chrono::Duration::from_std(self.config.liveness).unwrap_or(chrono::Duration::MAX);
        let nodes = Arc::new(registry.live_nodes(since).await?);
        *self.live.lock() = Some((std::time::Instant::now(), Arc::clone(&nodes)));
        Ok(self.holders_among(&nodes, partition))
    }

    fn holders_among(&self, nodes: &[NodeRecord], partition: &Partition) -> Vec<NodeRecord> {
        nodes
            .iter()
            .filter(|n| n.node_id != self.config.node_id && n.serves(partition))
            .cloned()
            .collect()
    }

    /// A node did not answer: the registry is read again on the next request.
    fn forget_live(&self) {
        *self.live.lock() = None;
    }

    /// The slice `request` asks for, from the first live holder of
    /// `partition` that answers it.
    pub async fn fetch_slice(
        &self,
        partition: &Partition,
        request: &SliceRequest,
    ) -> Result<ReadModel, ApiError> {
        let key = self.config.node_key.as_ref();
        for node in self.holders(partition).await? {
            let (Some(key), url) = (key, join(&node.advertise_url, SLICE_PATH)) else {
                break;
            };
            let answer = self
                .http
                .post(&url)
                .header(NODE_KEY_HEADER, key.expose())
                .json(request)
                .send()
                .await;
            let bytes = match answer {
                Ok(r) if r.status().is_success() => r.bytes().await,
                Ok(r) => {
                    tracing::warn!(node = %node.node_id, status = r.status().as_u16(), "a holder refused a slice");
                    continue;
                }
                Err(e) => Err(e),
            };
            match bytes {
                Ok(bytes) => match ReadModel::from_snapshot(&bytes) {
                    Ok(model) => return Ok(model),
                    Err(e) => {
                        tracing::warn!(node = %node.node_id, error = %e, "a holder's slice does not decode")
                    }
                },
                Err(e) => {
                    self.forget_live();
                    tracing::warn!(node = %node.node_id, error = %e, "a holder did not answer a slice")
                }
            }
        }
        Err(ApiError::PartitionUnavailable(partition.clone()))
    }

    /// Sends a GraphQL request as it came (its body, the caller's
    /// `Authorization`) to a live holder of `partition`, marked as
    /// forwarded; answers its status and body.
    pub async fn forward_graphql(
        &self,
        partition: &Partition,
        authorization: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), ApiError> {
        for node in self.holders(partition).await? {
            let mut request = self
                .http
                .post(join(&node.advertise_url, "graphql"))
                .header("content-type", "application/json")
                .header(FORWARDED_HEADER, self.config.node_id.to_string())
                .body(body.clone());
            if let Some(a) = authorization {
                request = request.header("authorization", a);
            }
            match request.send().await {
                // A holder that is saturated or stopping: the next one.
                Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                    tracing::warn!(node = %node.node_id, status = r.status().as_u16(), "a holder refused a forwarded request");
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    match r.bytes().await {
                        Ok(bytes) => return Ok((status, bytes.to_vec())),
                        Err(e) => {
                            tracing::warn!(node = %node.node_id, error = %e, "a holder's answer broke off")
                        }
                    }
                }
                Err(e) => {
                    self.forget_live();
                    tracing::warn!(node = %node.node_id, error = %e, "a holder did not answer a forwarded request")
                }
            }
        }
        Err(ApiError::PartitionUnavailable(partition.clone()))
    }
}

/// The partition of a class's record (from the directory, which every
/// node folds).
pub fn class_partition(m: &ReadModel, class: ClassId) -> Option<Partition> {
    use registre_projections::partition::PartitionFacts as _;
    let establishment = m.class_establishment(class)?;
    Some(Partition::establishment(
        m.establishment_uai(establishment)?,
    ))
}

/// The partitions a viewer's own records live in: their children's
/// schools and their own. Where a query about them is best answered, and
/// what a subscriber's absences come from.
pub fn home_partitions(m: &ReadModel, viewer: &Viewer) -> Vec<Partition> {
    let mut partitions: Vec<Partition> = m
        .children_of(viewer.person)
        .into_iter()
        .filter_map(|s| class_partition(m, s.class_id))
        .chain(
            viewer
                .establishment
                .and_then(|e| m.establishment(e))
                .map(|e| Partition::establishment(&e.uai)),
        )
        .collect();
    partitions.sort();
    partitions.dedup();
    partitions
}

fn join(base: &str, path: &str) -> String {
    format!("{}/{path}", base.trim_end_matches('/'))
}

impl App {
    /// This node's place in the region.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The partition to send a query of `caller` to, whole, when every
    /// record of theirs (their children's schools, their own) is in one
    /// partition this node does not fold: the holder answers it in one hop
    /// as it answers its own callers, where slices would be fetched,
    /// decoded and resolved here. `None`: answered here (nothing elsewhere,
    /// or some of it here: a two-school family is read from slices).
    pub fn home_elsewhere(&self, caller: &Caller) -> Option<Partition> {
        self.cluster.served()?;
        let viewer = self.lookup_viewer(caller)?;
        let mut home = self.read(|m| home_partitions(m, &viewer));
        match (home.pop(), home.is_empty()) {
            (Some(partition), true) if !self.cluster.holds(&partition) => Some(partition),
            _ => None,
        }
    }

    /// The holder's side of [`Cluster::fetch_slice`]: once the model has
    /// applied `request.at`, the slice as snapshot bytes (zstd JSON).
    pub async fn slice_bytes(&self, request: &SliceRequest) -> Result<Vec<u8>, ApiError> {
        self.wait_for(request.at).await?;
        let SliceScope::Class(class) = request.scope;
        let partition = self
            .read(|m| class_partition(m, class))
            .ok_or_else(|| ApiError::NotFound("class".into()))?;
        if !self.cluster.holds(&partition) {
            return Err(ApiError::Elsewhere(partition));
        }
        // Cut under the read lock, serialised outside it.
        let slice = self.read(|m| m.slice(&Scope::Class(class)));
        slice
            .to_snapshot()
            .map_err(|e| ApiError::Internal(format!("slice: {e}")))
    }
}

/// Registers the node, beats until `stop`, deregisters (a clean stop).
pub(crate) async fn run_registry(app: std::sync::Weak<App>, mut stop: watch::Receiver<bool>) {
    let Some((registry, record, every)) = app.upgrade().and_then(|app| {
        let c = &app.cluster;
        let registry = c.registry.clone()?;
        c.config.advertise_url.as_ref()?;
        Some((registry, c.record(Utc::now()), c.config.heartbeat))
    }) else {
        return;
    };
    let id = record.node_id;
    let mut registered = match registry.register_node(&record).await {
        Ok(()) => {
            tracing::info!(node = %id, url = %record.advertise_url, "registered in the node registry");
            true
        }
        Err(e) => {
            tracing::warn!(node = %id, error = %e, "registering the node failed; retrying");
            false
        }
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let now = Utc::now();
        let beat = if registered {
            registry.heartbeat(id, now).await
        } else {
            Ok(false)
        };
        registered = match beat {
            Ok(true) => true,
            // Removed by an operator, or never registered: register again.
            Ok(false) => registry
                .register_node(&NodeRecord {
                    heartbeat_at: now,
                    ..record.clone()
                })
                .await
                .map(|()| true)
                .unwrap_or_else(|e| {
                    tracing::warn!(node = %id, error = %e, "registering the node failed; retrying");
                    false
                }),
            Err(e) => {
                tracing::warn!(node = %id, error = %e, "node heartbeat failed; retrying");
                true
            }
        };
    }
    if let Err(e) = registry.deregister_node(id).await {
        tracing::warn!(node = %id, error = %e, "deregistering the node failed; its heartbeat will age out");
    } else {
        tracing::info!(node = %id, "deregistered from the node registry");
    }
}
