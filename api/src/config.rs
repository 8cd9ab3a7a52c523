//! The transport's settings: admission control and request limits
//! ([`Limits`]) and token verification ([`AuthConfig`]). The `registre`
//! binary reads them from flags and the environment (its `config` module);
//! tests and benchmarks build them directly.

use std::{collections::BTreeSet, path::PathBuf, time::Duration};

/// Where the token verification keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS JSON file, re-read when a token names an unknown key.
    File(PathBuf),
    /// An https URL, fetched, cached and refetched on an unknown key.
    Url(String),
    /// OpenID Connect discovery: the `jwks_uri` of the issuer's
    /// `/.well-known/openid-configuration`, read again at every refetch so
    /// that a provider moving its keys is followed.
    Discovery { issuer: String },
}

/// How bearer tokens are verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    pub jwks: JwksSource,
    pub issuer: String,
    pub audience: String,
    /// `sub` values that are ADMIN whatever the roster says.
    pub admin_subjects: BTreeSet<String>,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Least time between two JWKS refetches caused by unknown `kid`s, so that
    /// garbage tokens cannot make the server hammer the identity provider.
    pub refetch_min_interval: Duration,
    /// REGISTRE_JWKS_REFRESH_SECS: the JWKS is re-read this often whatever
    /// the tokens say, so that a key the provider withdrew stops verifying.
    pub refresh_interval: Duration,
    /// REGISTRE_ROLES_CLAIM: a claim (a dotted path such as Keycloak's
    /// `realm_access.roles`) holding the caller's roles; `ADMIN` among them
    /// makes the caller an ADMIN. `None`: roles come from the roster only.
    pub roles_claim: Option<String>,
}

/// Sizes and counts beyond which a request is refused with a clear error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: u64,
    /// Largest file of a multipart upload (issue 16), refused as it streams in.
    pub max_upload_bytes: u64,
    /// Most files in one multipart request.
    pub max_upload_files: usize,
    pub max_batch_operations: usize,
    pub ws_max_message_bytes: usize,
    pub ws_init_timeout: Duration,
    pub ws_max_subscriptions: usize,
    pub ws_keepalive: Duration,
    /// How long in-flight requests get to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Longest a write to a WebSocket client may take; a client that does
    /// not read its socket is disconnected after it.
    pub ws_write_timeout: Duration,
    /// REGISTRE_MAX_IN_FLIGHT: GraphQL requests executing at once on the node.
    pub max_in_flight: usize,
    /// REGISTRE_MUTATION_RESERVED: places of `max_in_flight` only mutations may take.
    pub mutation_reserved: usize,
    /// REGISTRE_MAX_QUEUED: requests waiting for a place; beyond, refused at once.
    pub max_queued: usize,
    /// REGISTRE_MAX_QUEUE_MS: longest a request waits for a place.
    pub max_queue_wait: Duration,
    /// REGISTRE_RETRY_AFTER_SECS: the shortest delay a refused client is told
    /// to wait (a quiet node's; under pressure the node asks for longer).
    pub retry_after: Duration,
    /// REGISTRE_RETRY_AFTER_MAX_SECS: the longest delay a refused client is
    /// told to wait, however saturated the node. Two minutes: at ten times
    /// its capacity a node refuses some 90 s of work in a ten-second surge,
    /// and a client told less than its place in the queue comes back into
    /// a second surge of the clients told the same (`scripts/bench surge`
    /// at 10x: 44 % of the requests served in the end with 30 s, 76 % with
    /// 120 s, decision 0026).
    pub retry_after_max: Duration,
    /// REGISTRE_MAX_SOCKETS_PER_PERSON: open WebSockets per token subject.
    pub max_sockets_per_person: usize,
    /// REGISTRE_MAX_ANONYMOUS_SOCKETS: open WebSockets on the node not (yet)
    /// tied to a person: before `connection_init`, or initialised without a token.
    pub max_anonymous_sockets: usize,
}

/// Cores the node may use, as the defaults of admission control are scaled on it.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

impl Default for Limits {
    fn default() -> Self {
        // Measured on 2 cores with the demo collège (issue #11): 1,901 req/s
        // with 8 concurrent dashboards (p99 10.9 ms), 2,103 with 64 (p99
        // 61 ms), 1,870 with 512 (p99 549 ms). Throughput hardly grows past
        // a few requests per core while latency grows with every one. With
        // admission control, `scripts/bench surge` at 64 connections: 16
        // places gave 595 admitted/s at p99 131 ms, 8 places 609/s at p99
        // 80 ms. Four executing operations per core keep the cores busy; a
        // request beyond them only waits, so it waits in the short queue or
        // is told to come back.
        Limits::with_places(4 * cores())
    }
}

impl Limits {
    /// The defaults with `max_in_flight` places, the mutation reserve and
    /// the queue scaled on them.
    pub fn with_places(max_in_flight: usize) -> Limits {
        Limits {
            ws_write_timeout: Duration::from_secs(10),
            max_in_flight,
            mutation_reserved: max_in_flight / 4,
            max_queued: 4 * max_in_flight,
            max_queue_wait: Duration::from_millis(50),
            retry_after: Duration::from_secs(1),
            retry_after_max: Duration::from_secs(120),
            max_sockets_per_person: 8,
            max_anonymous_sockets: 256,
            max_body_bytes: 1024 * 1024,
            max_upload_bytes: 10_000_000,
            max_upload_files: 10,
            max_batch_operations: 10,
            ws_max_message_bytes: 64 * 1024,
            ws_init_timeout: Duration::from_secs(10),
            ws_max_subscriptions: 20,
            ws_keepalive: Duration::from_secs(25),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}
