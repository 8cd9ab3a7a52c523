//! Typed server settings. Each one is a flag of every `registre` command and
//! an environment variable (clap's `env`): `registre serve --help` lists them
//! with their defaults, docs/operations.md says what each is for.
//!
//! [`Settings`] is what clap reads, each value parsed and checked on its own
//! by the value parsers at the end of this file; [`Settings::resolve`] checks
//! what depends on several of them and gives the [`Config`] the server runs
//! with. A bad value stops the process before it listens, with a message
//! naming the variable. The contract fixes the first seven names; the rest
//! tune limits and logging and all have defaults suited to one collège on one
//! small machine.

use std::{
    collections::BTreeSet, ffi::OsStr, fmt, net::SocketAddr, path::PathBuf, str::FromStr,
    time::Duration,
};

use clap::{builder::TypedValueParser, error::ErrorKind, Arg, Args, FromArgMatches};
use thiserror::Error;

use registre_api::config::{AuthConfig, JwksSource, Limits};
use registre_api::graphql::QueryLimits;
use registre_app::limits::{PersonLimits, Rate};
use registre_domain::discipline::ErasureDelays;

/// Why the configuration was refused. Each variant names the variable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{var}: {message} (got {value:?})")]
    Invalid {
        var: &'static str,
        value: String,
        message: String,
    },
    #[error("{var} must be set when {because}")]
    Missing {
        var: &'static str,
        because: &'static str,
    },
    /// A value refused as it was read; the message names the variable and
    /// its flag.
    #[error("{0}")]
    Rejected(String),
}

/// Where the event log lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// PostgreSQL, from DATABASE_URL.
    Postgres(String),
    /// The embedded SQLite store inside the data directory.
    Embedded(PathBuf),
}

// The URL may carry a password: never print it.
impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Postgres(_) => f.write_str("Postgres(<redacted>)"),
            Database::Embedded(path) => f.debug_tuple("Embedded").field(path).finish(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    #[default]
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected `text` or `json`".into()),
        }
    }
}

/// The server secret keying the usage indicators' viewer pseudonyms.
#[derive(Clone, PartialEq, Eq)]
pub struct PseudonymSecret(pub String);

impl fmt::Debug for PseudonymSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymSecret(<redacted>)")
    }
}

/// Everything the server needs to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub database: Database,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// `None` when REGISTRE_JWKS is unset: every token is then refused, and
    /// `registre serve` warns at start-up (the demo provides its own).
    pub auth: Option<AuthConfig>,
    pub limits: Limits,
    pub log_format: LogFormat,
    /// tracing-subscriber filter directives, e.g. `info,registre_api=debug`.
    pub log_filter: String,
    /// How long read-access records are kept before `retention apply` purges them.
    pub access_log_retention: Duration,
    /// REGISTRE_RETENTION_ACCOUNT_DAYS: days after an account was closed
    /// (`closeAccount`) before `retention apply` erases its holder (default
    /// 90: the ENT regulation erases account data within three months).
    pub account_retention_days: u32,
    /// REGISTRE_SANCTION_ERASURE_YEARS: school years each sanction kind stays
    /// in the record after the one of its decision (R511-13 by default).
    pub sanction_erasure: ErasureDelays,
    /// /readyz fails while the read model is more than this many events
    /// behind the log head.
    pub ready_max_lag: u64,
    /// REGISTRE_PSEUDONYM_KEY; `None`: a random key per process, so usage
    /// pseudonyms do not survive a restart (fine for the demo and tests).
    pub pseudonym_key: Option<PseudonymSecret>,
    /// What one GraphQL document may ask for (REGISTRE_GRAPHQL_MAX_COST,
    /// REGISTRE_GRAPHQL_INTROSPECTION).
    pub query_limits: QueryLimits,
    /// Per-person mutation rates (REGISTRE_PERSON_LIMITS=off turns them off,
    /// REGISTRE_MESSAGES_PER_MINUTE / _PER_DAY tune the busiest one).
    pub person_limits: PersonLimits,
    /// Attachments and notifications (issue 16).
    pub communication: CommunicationSettings,
    // cluster (issue 12)
    /// What this node folds and how it takes part in a region (checked:
    /// a node with a set has a key and an advertised URL).
    pub cluster: ClusterSettings,
}

// ---- Reading the settings ----------------------------------------------------------

/// Every setting of `registre`, read by clap from a flag or, when the flag
/// is absent, from its environment variable (empty counts as unset; see
/// [`blank_env_unset`]). The flags are global: `registre serve --max-batch 5`
/// and `registre --max-batch 5 serve` are the same.
#[derive(Clone, Debug, Args)]
pub struct Settings {
    #[command(flatten)]
    pub server: ServerSettings,
    #[command(flatten)]
    pub auth: AuthSettings,
    #[command(flatten)]
    pub requests: RequestSettings,
    #[command(flatten)]
    pub admission: AdmissionSettings,
    #[command(flatten)]
    pub graphql: GraphqlSettings,
    #[command(flatten)]
    pub records: RecordSettings,
    #[command(flatten)]
    pub communication: CommunicationSettings,
    // cluster (issue 12)
    #[command(flatten)]
    pub cluster: ClusterSettings,
}

// cluster (issue 12)
/// Several nodes over one PostgreSQL, each folding some establishments
/// (decision 0021, docs/operations.md "Running a region").
#[derive(Clone, Debug, PartialEq, Eq, Args)]
#[command(next_help_heading = "Region")]
pub struct ClusterSettings {
    /// The establishments this node folds, as comma-separated UAIs
    /// (`0750001A,0690002B`); every node folds the directory. Unset: all of
    /// them. Requests about the others are forwarded to a live node
    /// serving them.
    #[arg(
        long,
        env = "REGISTRE_ESTABLISHMENTS",
        global = true,
        value_name = "UAI,...",
        value_parser = setting(establishments)
    )]
    pub establishments: Option<Establishments>,
    /// The base URL the other nodes reach this one at
    /// (`http://10.0.0.2:8080`), registered with its set in the `nodes`
    /// table. Unset: the node is not registered, so no request is
    /// forwarded to it.
    #[arg(
        long,
        env = "REGISTRE_ADVERTISE_URL",
        global = true,
        value_name = "URL",
        value_parser = setting(advertise_url)
    )]
    pub advertise_url: Option<String>,
    /// Shared key (32+ characters) the nodes of a region authenticate each
    /// other with; the same on every node. Required with
    /// REGISTRE_ESTABLISHMENTS.
    #[arg(
        long,
        env = "REGISTRE_NODE_KEY",
        global = true,
        hide_env_values = true,
        value_name = "SECRET",
        value_parser = secret(node_key)
    )]
    pub node_key: Option<NodeSecret>,
    /// How often the node writes its heartbeat in the registry.
    #[arg(
        long,
        env = "REGISTRE_HEARTBEAT_SECS",
        global = true,
        value_name = "SECS",
        default_value_t = 5,
        value_parser = setting(positive::<u64>)
    )]
    pub heartbeat_secs: u64,
    /// A node whose last heartbeat is older than this is taken for dead:
    /// nothing is forwarded to it. More than REGISTRE_HEARTBEAT_SECS.
    #[arg(
        long,
        env = "REGISTRE_NODE_TIMEOUT_SECS",
        global = true,
        value_name = "SECS",
        default_value_t = 15,
        value_parser = setting(positive::<u64>)
    )]
    pub node_timeout_secs: u64,
}

/// REGISTRE_ESTABLISHMENTS: UAIs, sorted, without repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Establishments(pub Vec<registre_domain::Uai>);

/// REGISTRE_NODE_KEY.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeSecret(pub String);

impl fmt::Debug for NodeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeSecret(<redacted>)")
    }
}

/// Attachments, e-mail and Web Push (issue 16).
#[derive(Clone, Debug, PartialEq, Eq, Args)]
#[command(next_help_heading = "Communication")]
pub struct CommunicationSettings {
    /// Largest attachment accepted (uploadAttachment); larger is refused
    /// with INVALID_INPUT while it streams in.
    #[arg(
        long,
        env = "REGISTRE_MAX_ATTACHMENT_BYTES",
        global = true,
        value_name = "BYTES",
        default_value_t = registre_app::communication::ATTACHMENT_MAX_BYTES,
        value_parser = setting(positive::<u64>)
    )]
    pub max_attachment_bytes: u64,
    /// The SMTP relay e-mail notifications go through: `smtp://host:port`,
    /// `smtp://host:587?tls=required` (STARTTLS) or `smtps://host:465`,
    /// with `user:password@` if needed. Unset: no e-mail.
    #[arg(
        long,
        env = "REGISTRE_SMTP_URL",
        global = true,
        hide_env_values = true,
        value_name = "URL"
    )]
    pub smtp_url: Option<String>,
    /// The `From:` of notification mail, e.g. `Vie scolaire
    /// <vie-scolaire@college.fr>` (unset: `registre@localhost`).
    #[arg(
        long,
        env = "REGISTRE_MAIL_FROM",
        global = true,
        value_name = "ADDRESS"
    )]
    pub mail_from: Option<String>,
    /// A PEM file holding the VAPID private key (P-256, PKCS#8) of Web
    /// Push; `registre demo` creates one. Unset: no Web Push.
    #[arg(long, env = "REGISTRE_VAPID_KEY", global = true, value_name = "FILE")]
    pub vapid_key: Option<PathBuf>,
}

#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Server")]
pub struct ServerSettings {
    /// `postgres://…`: the PostgreSQL store. Unset: the embedded SQLite store
    /// in --data-dir.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        hide_env_values = true,
        value_name = "URL",
        value_parser = secret(postgres_url)
    )]
    pub database_url: Option<Database>,
    /// The embedded store (`registre.db`) and the demo's JWKS.
    #[arg(
        long,
        env = "REGISTRE_DATA_DIR",
        global = true,
        value_name = "DIR",
        default_value = "./registre-data"
    )]
    pub data_dir: PathBuf,
    /// `ip:port` to listen on (`0.0.0.0:8080` in a container; port 0 picks one).
    #[arg(
        long,
        env = "REGISTRE_LISTEN",
        global = true,
        value_name = "ADDR",
        default_value = "127.0.0.1:8080",
        value_parser = setting(socket_addr)
    )]
    pub listen: SocketAddr,
    /// /readyz fails while the read model is more events than this behind the
    /// log head.
    #[arg(
        long,
        env = "REGISTRE_READY_MAX_LAG",
        global = true,
        value_name = "EVENTS",
        default_value_t = 1000,
        value_parser = setting(whole::<u64>)
    )]
    pub ready_max_lag: u64,
    /// How long in-flight requests get after SIGTERM.
    #[arg(
        long,
        env = "REGISTRE_SHUTDOWN_GRACE_SECS",
        global = true,
        value_name = "SECS",
        default_value_t = Limits::default().shutdown_grace.as_secs(),
        value_parser = setting(whole::<u64>)
    )]
    pub shutdown_grace_secs: u64,
    /// Secret (32+ characters) keying the viewer pseudonyms of the usage
    /// indicators; the same on every node and for `retention apply`. Unset: a
    /// random key per process, so pseudonyms do not survive a restart.
    #[arg(
        long,
        env = "REGISTRE_PSEUDONYM_KEY",
        global = true,
        hide_env_values = true,
        value_name = "SECRET",
        value_parser = secret(pseudonym_key)
    )]
    pub pseudonym_key: Option<PseudonymSecret>,
}

#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Authentication")]
pub struct AuthSettings {
    /// JWKS file path, or `https://` URL. Unset: every token is refused.
    #[arg(
        long,
        env = "REGISTRE_JWKS",
        global = true,
        value_name = "PATH|URL",
        value_parser = setting(jwks_source)
    )]
    pub jwks: Option<JwksSource>,
    /// Expected `iss` (required with --jwks). Alone, an https issuer whose
    /// keys are found by OpenID Connect discovery (its
    /// /.well-known/openid-configuration names the JWKS, re-read on refresh).
    #[arg(long, env = "REGISTRE_ISSUER", global = true, value_name = "ISS")]
    pub issuer: Option<String>,
    /// A token claim listing the caller's roles (dotted path, e.g. Keycloak's
    /// `realm_access.roles`); ADMIN among them makes the caller an ADMIN.
    #[arg(
        long,
        env = "REGISTRE_ROLES_CLAIM",
        global = true,
        value_name = "CLAIM"
    )]
    pub roles_claim: Option<String>,
    /// Expected `aud` (required with --jwks).
    #[arg(long, env = "REGISTRE_AUDIENCE", global = true, value_name = "AUD")]
    pub audience: Option<String>,
    /// Comma-separated `sub` values that are ADMIN whatever the roster says.
    #[arg(
        long,
        env = "REGISTRE_ADMIN_SUBJECTS",
        global = true,
        value_name = "SUBS",
        value_parser = setting(subjects)
    )]
    pub admin_subjects: Option<BTreeSet<String>>,
    /// Clock skew tolerated on `exp` and `nbf`.
    #[arg(
        long,
        env = "REGISTRE_JWT_LEEWAY_SECS",
        global = true,
        value_name = "SECS",
        default_value_t = 60,
        value_parser = setting(whole::<u64>)
    )]
    pub jwt_leeway_secs: u64,
    /// Least time between two JWKS reloads caused by unknown `kid`s, so that
    /// garbage tokens cannot make the server hammer the identity provider.
    #[arg(
        long,
        env = "REGISTRE_JWKS_REFETCH_SECS",
        global = true,
        value_name = "SECS",
        default_value_t = 30,
        value_parser = setting(whole::<u64>)
    )]
    pub jwks_refetch_secs: u64,
    /// The JWKS is re-read this often and the keys replaced when it changed:
    /// a withdrawn key stops verifying within this delay.
    #[arg(
        long,
        env = "REGISTRE_JWKS_REFRESH_SECS",
        global = true,
        value_name = "SECS",
        default_value_t = 60,
        value_parser = setting(positive::<u64>)
    )]
    pub jwks_refresh_secs: u64,
}

#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Requests and WebSockets")]
pub struct RequestSettings {
    /// Largest POST body (413 beyond; a Content-Length is required).
    #[arg(
        long,
        env = "REGISTRE_MAX_BODY_BYTES",
        global = true,
        value_name = "BYTES",
        default_value_t = Limits::default().max_body_bytes,
        value_parser = setting(positive::<u64>)
    )]
    pub max_body_bytes: u64,
    /// Most operations in one batched POST.
    #[arg(
        long,
        env = "REGISTRE_MAX_BATCH",
        global = true,
        value_name = "N",
        default_value_t = Limits::default().max_batch_operations,
        value_parser = setting(positive::<usize>)
    )]
    pub max_batch: usize,
    /// Largest WebSocket message (closed with 1009 beyond).
    #[arg(
        long,
        env = "REGISTRE_WS_MAX_MESSAGE_BYTES",
        global = true,
        value_name = "BYTES",
        default_value_t = Limits::default().ws_max_message_bytes,
        value_parser = setting(positive::<usize>)
    )]
    pub ws_max_message_bytes: usize,
    /// A socket without `connection_init` by then is closed with 4408.
    #[arg(
        long,
        env = "REGISTRE_WS_INIT_TIMEOUT_SECS",
        global = true,
        value_name = "SECS",
        default_value_t = Limits::default().ws_init_timeout.as_secs(),
        value_parser = setting(positive::<u64>)
    )]
    pub ws_init_timeout_secs: u64,
    /// Operations running at once per socket; more are refused with RATE_LIMITED.
    #[arg(
        long,
        env = "REGISTRE_WS_MAX_SUBSCRIPTIONS",
        global = true,
        value_name = "N",
        default_value_t = Limits::default().ws_max_subscriptions,
        value_parser = setting(positive::<usize>)
    )]
    pub ws_max_subscriptions: usize,
    /// Server pings (`ping` in graphql-transport-ws, `ka` in graphql-ws).
    #[arg(
        long,
        env = "REGISTRE_WS_KEEPALIVE_SECS",
        global = true,
        value_name = "SECS",
        default_value_t = Limits::default().ws_keepalive.as_secs(),
        value_parser = setting(positive::<u64>)
    )]
    pub ws_keepalive_secs: u64,
    /// Longest one write to a WebSocket client may take; a client that does
    /// not read its socket is disconnected.
    #[arg(
        long,
        env = "REGISTRE_WS_WRITE_TIMEOUT_SECS",
        global = true,
        value_name = "SECS",
        default_value_t = Limits::default().ws_write_timeout.as_secs(),
        value_parser = setting(positive::<u64>)
    )]
    pub ws_write_timeout_secs: u64,
}

#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Admission control")]
pub struct AdmissionSettings {
    /// GraphQL requests executing at once on the node (default: 8 per core).
    #[arg(
        long,
        env = "REGISTRE_MAX_IN_FLIGHT",
        global = true,
        value_name = "N",
        default_value_t = Limits::default().max_in_flight,
        value_parser = setting(positive::<usize>)
    )]
    pub max_in_flight: usize,
    /// Places of --max-in-flight only mutations may take [default: a quarter
    /// of them].
    #[arg(
        long,
        env = "REGISTRE_MUTATION_RESERVED",
        global = true,
        value_name = "N",
        value_parser = setting(whole::<usize>)
    )]
    pub mutation_reserved: Option<usize>,
    /// Requests waiting for a place; one more is refused at once [default: 4
    /// times --max-in-flight].
    #[arg(
        long,
        env = "REGISTRE_MAX_QUEUED",
        global = true,
        value_name = "N",
        value_parser = setting(whole::<usize>)
    )]
    pub max_queued: Option<usize>,
    /// Longest a request waits for a place before it is refused.
    #[arg(
        long,
        env = "REGISTRE_MAX_QUEUE_MS",
        global = true,
        value_name = "MS",
        default_value_t = Limits::default().max_queue_wait.as_millis() as u64,
        value_parser = setting(whole::<u64>)
    )]
    pub max_queue_ms: u64,
    /// The shortest delay a refused client is told to wait (a quiet node's).
    #[arg(
        long,
        env = "REGISTRE_RETRY_AFTER_SECS",
        global = true,
        value_name = "SECS",
        default_value_t = Limits::default().retry_after.as_secs(),
        value_parser = setting(positive::<u64>)
    )]
    pub retry_after_secs: u64,
    /// The longest delay a refused client is told to wait: when the node
    /// refused k requests per admitted one in the last second, refused
    /// clients are told delays spread over k/2 to k seconds.
    #[arg(
        long,
        env = "REGISTRE_RETRY_AFTER_MAX_SECS",
        global = true,
        value_name = "SECS",
        default_value_t = Limits::default().retry_after_max.as_secs(),
        value_parser = setting(positive::<u64>)
    )]
    pub retry_after_max_secs: u64,
    /// Open WebSockets per token subject (`sub`).
    #[arg(
        long,
        env = "REGISTRE_MAX_SOCKETS_PER_PERSON",
        global = true,
        value_name = "N",
        default_value_t = Limits::default().max_sockets_per_person,
        value_parser = setting(positive::<usize>)
    )]
    pub max_sockets_per_person: usize,
    /// Open WebSockets on the node not tied to a person (before
    /// `connection_init`, or initialised without a token).
    #[arg(
        long,
        env = "REGISTRE_MAX_ANONYMOUS_SOCKETS",
        global = true,
        value_name = "N",
        default_value_t = Limits::default().max_anonymous_sockets,
        value_parser = setting(whole::<usize>)
    )]
    pub max_anonymous_sockets: usize,
}

#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "GraphQL and per-person limits")]
pub struct GraphqlSettings {
    /// The most one GraphQL document may cost.
    #[arg(
        long,
        env = "REGISTRE_GRAPHQL_MAX_COST",
        global = true,
        value_name = "COST",
        default_value_t = QueryLimits::default().max_cost,
        value_parser = setting(positive::<usize>)
    )]
    pub graphql_max_cost: usize,
    /// `false` turns `__schema` and `__type` off (production; the schema is
    /// published in docs/schema.graphql).
    #[arg(
        long,
        env = "REGISTRE_GRAPHQL_INTROSPECTION",
        global = true,
        value_name = "true|false",
        default_value = "true",
        action = clap::ArgAction::Set,
        value_parser = setting(true_or_false)
    )]
    pub graphql_introspection: bool,
    /// `off` removes every per-person mutation limit (benchmarks of the
    /// command path only).
    #[arg(
        long,
        env = "REGISTRE_PERSON_LIMITS",
        global = true,
        value_name = "on|off",
        default_value = "on",
        action = clap::ArgAction::Set,
        value_parser = setting(on_or_off)
    )]
    pub person_limits: bool,
    /// Messages one person may send per minute.
    #[arg(
        long,
        env = "REGISTRE_MESSAGES_PER_MINUTE",
        global = true,
        value_name = "N",
        default_value_t = default_messages(Rate::per_minute(0).per),
        value_parser = setting(message_rate)
    )]
    pub messages_per_minute: u32,
    /// Messages one person may send per day.
    #[arg(
        long,
        env = "REGISTRE_MESSAGES_PER_DAY",
        global = true,
        value_name = "N",
        default_value_t = default_messages(Rate::per_day(0).per),
        value_parser = setting(message_rate)
    )]
    pub messages_per_day: u32,
}

#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Retention and logs")]
pub struct RecordSettings {
    /// Age beyond which `retention apply` purges read-access records.
    #[arg(
        long,
        env = "REGISTRE_ACCESS_LOG_RETENTION_DAYS",
        global = true,
        value_name = "DAYS",
        default_value_t = 365,
        value_parser = setting(days::<u64>)
    )]
    pub access_log_retention_days: u64,
    /// Days after an account was closed (`closeAccount`) before `retention
    /// apply` erases its holder; the ENT regulation erases account data
    /// within three months.
    #[arg(
        long,
        env = "REGISTRE_RETENTION_ACCOUNT_DAYS",
        global = true,
        value_name = "DAYS",
        default_value_t = 90,
        value_parser = setting(days::<u32>)
    )]
    pub retention_account_days: u32,
    /// How many school years after the one of its decision each sanction
    /// kind stays in the student's record, as `KIND=YEARS` pairs separated
    /// by commas (e.g. `WARNING=0,REPRIMAND=1`); kinds left out, and the
    /// default, keep the delays of Code de l'éducation art. R511-13.
    #[arg(
        long,
        env = "REGISTRE_SANCTION_ERASURE_YEARS",
        global = true,
        value_name = "KIND=YEARS,...",
        default_value = "",
        value_parser = setting(ErasureDelays::parse)
    )]
    pub sanction_erasure_years: ErasureDelays,
    /// tracing filter, e.g. `info,registre_api=debug`.
    #[arg(
        long,
        env = "REGISTRE_LOG",
        global = true,
        value_name = "FILTER",
        default_value = "info"
    )]
    pub log: String,
    /// `text`, or `json` (one object per line, for a log collector).
    #[arg(
        long,
        env = "REGISTRE_LOG_FORMAT",
        global = true,
        value_name = "text|json",
        default_value = "text",
        value_parser = setting(log_format)
    )]
    pub log_format: LogFormat,
}

/// The default message rate over `per`, as [`PersonLimits`] states it.
fn default_messages(per: Duration) -> u32 {
    PersonLimits::default()
        .messages
        .iter()
        .find(|rate| rate.per == per)
        .map_or(0, |rate| rate.count)
}

impl Settings {
    /// Checks what depends on several settings and gives the configuration
    /// the server runs with.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let Settings {
            server,
            auth,
            requests,
            admission,
            graphql,
            records,
            communication,
            cluster,
        } = self;
        // cluster (issue 12): a node folding some establishments must be
        // reachable and trusted by the others, or its establishments
        // would answer nowhere.
        if cluster.establishments.is_some() {
            let because = "REGISTRE_ESTABLISHMENTS is set";
            if cluster.node_key.is_none() {
                return Err(ConfigError::Missing {
                    var: "REGISTRE_NODE_KEY",
                    because,
                });
            }
            if cluster.advertise_url.is_none() {
                return Err(ConfigError::Missing {
                    var: "REGISTRE_ADVERTISE_URL",
                    because,
                });
            }
        }
        if cluster.node_timeout_secs <= cluster.heartbeat_secs {
            return Err(ConfigError::Invalid {
                var: "REGISTRE_NODE_TIMEOUT_SECS",
                value: cluster.node_timeout_secs.to_string(),
                message: "must be more than REGISTRE_HEARTBEAT_SECS".into(),
            });
        }
        let jwks_given = auth.jwks.is_some();
        // REGISTRE_ISSUER alone: the keys are found by OpenID Connect
        // discovery (the provider's /.well-known/openid-configuration).
        let jwks = match (auth.jwks, &auth.issuer) {
            (Some(jwks), _) => Some(jwks),
            (None, Some(issuer)) => Some(JwksSource::Discovery {
                issuer: https_issuer(issuer)?,
            }),
            (None, None) => None,
        };
        let because = if jwks_given {
            "REGISTRE_JWKS is set"
        } else {
            "REGISTRE_ISSUER is set"
        };
        let auth = match jwks {
            None => None,
            Some(jwks) => Some(AuthConfig {
                jwks,
                issuer: auth.issuer.ok_or(ConfigError::Missing {
                    var: "REGISTRE_ISSUER",
                    because,
                })?,
                audience: auth.audience.ok_or(ConfigError::Missing {
                    var: "REGISTRE_AUDIENCE",
                    because,
                })?,
                roles_claim: auth.roles_claim,
                admin_subjects: auth.admin_subjects.unwrap_or_default(),
                leeway: Duration::from_secs(auth.jwt_leeway_secs),
                refetch_min_interval: Duration::from_secs(auth.jwks_refetch_secs),
                refresh_interval: Duration::from_secs(auth.jwks_refresh_secs),
            }),
        };
        // Unless set, the reserve and the queue scale with the places.
        let scaled = Limits::with_places(admission.max_in_flight);
        let limits = Limits {
            max_body_bytes: requests.max_body_bytes,
            max_upload_bytes: communication.max_attachment_bytes,
            max_upload_files: registre_domain::communication::ATTACHMENTS_MAX,
            max_batch_operations: requests.max_batch,
            ws_max_message_bytes: requests.ws_max_message_bytes,
            ws_init_timeout: Duration::from_secs(requests.ws_init_timeout_secs),
            ws_max_subscriptions: requests.ws_max_subscriptions,
            ws_keepalive: Duration::from_secs(requests.ws_keepalive_secs),
            shutdown_grace: Duration::from_secs(server.shutdown_grace_secs),
            ws_write_timeout: Duration::from_secs(requests.ws_write_timeout_secs),
            max_in_flight: admission.max_in_flight,
            mutation_reserved: admission
                .mutation_reserved
                .unwrap_or(scaled.mutation_reserved),
            max_queued: admission.max_queued.unwrap_or(scaled.max_queued),
            max_queue_wait: Duration::from_millis(admission.max_queue_ms),
            retry_after: Duration::from_secs(admission.retry_after_secs),
            retry_after_max: Duration::from_secs(admission.retry_after_max_secs),
            max_sockets_per_person: admission.max_sockets_per_person,
            max_anonymous_sockets: admission.max_anonymous_sockets,
        };
        if limits.retry_after_max < limits.retry_after {
            return Err(ConfigError::Invalid {
                var: "REGISTRE_RETRY_AFTER_MAX_SECS",
                value: limits.retry_after_max.as_secs().to_string(),
                message: "must be at least REGISTRE_RETRY_AFTER_SECS".into(),
            });
        }
        if limits.mutation_reserved >= limits.max_in_flight {
            return Err(ConfigError::Invalid {
                var: "REGISTRE_MUTATION_RESERVED",
                value: limits.mutation_reserved.to_string(),
                message: "must be less than REGISTRE_MAX_IN_FLIGHT (reads need a place too)".into(),
            });
        }
        let person_limits = if graphql.person_limits {
            PersonLimits {
                messages: vec![
                    Rate::per_minute(graphql.messages_per_minute),
                    Rate::per_day(graphql.messages_per_day),
                ],
                ..PersonLimits::default()
            }
        } else {
            PersonLimits::unlimited()
        };
        Ok(Config {
            database: server
                .database_url
                .unwrap_or_else(|| Database::Embedded(server.data_dir.clone())),
            data_dir: server.data_dir,
            listen: server.listen,
            auth,
            limits,
            log_format: records.log_format,
            log_filter: records.log,
            access_log_retention: Duration::from_secs(records.access_log_retention_days * 86_400),
            account_retention_days: records.retention_account_days,
            sanction_erasure: records.sanction_erasure_years,
            ready_max_lag: server.ready_max_lag,
            pseudonym_key: server.pseudonym_key,
            query_limits: QueryLimits {
                introspection: graphql.graphql_introspection,
                max_cost: graphql.graphql_max_cost,
                ..QueryLimits::default()
            },
            person_limits,
            communication,
            cluster,
        })
    }
}

impl Config {
    /// Reads the settings through `lookup`, by the names of their environment
    /// variables, instead of the process environment (tests, benchmarks):
    /// each value goes through the same parsers and checks as on `registre`'s
    /// command line. Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let value_of =
            |arg: &Arg| lookup(arg.get_env()?.to_str()?).filter(|value| !value.trim().is_empty());
        let command = Settings::augment_args(clap::Command::new("registre"));
        let mut argv = vec!["registre".to_string()];
        for arg in command.get_arguments() {
            if let (Some(long), Some(value)) = (arg.get_long(), value_of(arg)) {
                argv.push(format!("--{long}={value}"));
            }
        }
        // A setting `lookup` leaves unset takes its default, whatever the
        // process environment holds; the others keep their variable's name
        // for the error messages.
        let command = command.mut_args(|arg| {
            if value_of(&arg).is_some() {
                arg
            } else {
                arg.env(None::<&'static str>)
            }
        });
        let rejected = |e: clap::Error| {
            let text = e.to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            ConfigError::Rejected(text.trim_end().to_string())
        };
        let matches = command.try_get_matches_from(argv).map_err(rejected)?;
        Settings::from_arg_matches(&matches)
            .map_err(rejected)?
            .resolve()
    }
}

/// Forgets `arg`'s environment variable when it is set but blank, so that it
/// counts as unset: a deployment template's `REGISTRE_JWKS=` means no JWKS,
/// and `REGISTRE_MAX_BATCH=` the default, not a bad value.
pub fn blank_env_unset(arg: Arg) -> Arg {
    let blank = arg
        .get_env()
        .and_then(std::env::var_os)
        .is_some_and(|value| value.to_string_lossy().trim().is_empty());
    if blank {
        arg.env(None::<&'static str>)
    } else {
        arg
    }
}

// ---- Value parsers -------------------------------------------------------------------

/// The value parser of a setting: `parse`, with a refusal that names the
/// environment variable as well as the flag (clap's own names the flag
/// only, and an operator sets variables) and never echoes a secret.
#[derive(Clone)]
struct Setting<T> {
    parse: fn(&str) -> Result<T, String>,
    secret: bool,
}

fn setting<T>(parse: fn(&str) -> Result<T, String>) -> Setting<T> {
    Setting {
        parse,
        secret: false,
    }
}

fn secret<T>(parse: fn(&str) -> Result<T, String>) -> Setting<T> {
    Setting {
        parse,
        secret: true,
    }
}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Setting<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let parsed = value
            .to_str()
            .ok_or_else(|| "expected UTF-8 text".to_string())
            .and_then(self.parse);
        parsed.map_err(|message| {
            let var = arg.and_then(Arg::get_env).map(OsStr::to_string_lossy);
            let flag = arg.and_then(Arg::get_long).map(|long| format!("--{long}"));
            let name = match (var, flag) {
                (Some(var), Some(flag)) => format!("{var} ({flag})"),
                (Some(var), None) => var.into_owned(),
                (None, flag) => flag.unwrap_or_else(|| "a setting".into()),
            };
            let shown = if self.secret {
                "<redacted>".into()
            } else {
                value.to_string_lossy()
            };
            clap::Error::raw(
                ErrorKind::ValueValidation,
                format!("{name}: {message} (got {shown:?})\n"),
            )
            .with_cmd(cmd)
        })
    }
}

fn whole<T: FromStr>(value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| "expected a non-negative whole number".into())
}

fn positive<T: FromStr + Default + PartialEq>(value: &str) -> Result<T, String> {
    let n = whole::<T>(value)?;
    if n == T::default() {
        return Err("must be greater than zero".into());
    }
    Ok(n)
}

fn days<T: FromStr + Default + PartialEq>(value: &str) -> Result<T, String> {
    let n = whole::<T>(value)?;
    if n == T::default() {
        return Err("must be at least one day".into());
    }
    Ok(n)
}

fn message_rate(value: &str) -> Result<u32, String> {
    let n = whole(value)?;
    if n == 0 {
        return Err(
            "must be greater than zero (REGISTRE_PERSON_LIMITS=off removes every limit)".into(),
        );
    }
    Ok(n)
}

fn log_format(value: &str) -> Result<LogFormat, String> {
    value.trim().parse()
}

fn socket_addr(value: &str) -> Result<SocketAddr, String> {
    value
        .trim()
        .parse()
        .map_err(|_| "expected host:port with an IP address, e.g. 0.0.0.0:8080".into())
}

fn postgres_url(value: &str) -> Result<Database, String> {
    if !(value.starts_with("postgres://") || value.starts_with("postgresql://")) {
        return Err("expected a postgres:// URL".into());
    }
    Ok(Database::Postgres(value.to_string()))
}

/// An issuer whose discovery document is fetched: https only, like a JWKS URL.
fn https_issuer(issuer: &str) -> Result<String, ConfigError> {
    let issuer = issuer.trim();
    if issuer.starts_with("https://") {
        Ok(issuer.to_owned())
    } else {
        Err(ConfigError::Invalid {
            var: "REGISTRE_ISSUER",
            value: issuer.to_owned(),
            message: "without REGISTRE_JWKS, the issuer's keys are found by OpenID Connect \
                      discovery, which needs an https:// issuer"
                .into(),
        })
    }
}

fn jwks_source(value: &str) -> Result<JwksSource, String> {
    let value = value.trim();
    if value.starts_with("https://") {
        Ok(JwksSource::Url(value.to_string()))
    } else if value.contains("://") {
        // Keys fetched in clear could be swapped by anyone on the path.
        Err("a URL must use https".into())
    } else {
        Ok(JwksSource::File(PathBuf::from(value)))
    }
}

fn subjects(value: &str) -> Result<BTreeSet<String>, String> {
    Ok(value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect())
}

fn pseudonym_key(value: &str) -> Result<PseudonymSecret, String> {
    if value.len() < 32 {
        return Err("must be at least 32 characters of random text".into());
    }
    Ok(PseudonymSecret(value.to_string()))
}

// cluster (issue 12)
fn establishments(value: &str) -> Result<Establishments, String> {
    let mut uais = value
        .split(',')
        .map(str::trim)
        .filter(|uai| !uai.is_empty())
        .map(|uai| registre_domain::Uai::parse(uai).map_err(|e| format!("{uai}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if uais.is_empty() {
        return Err("expected one UAI or more, separated by commas".into());
    }
    uais.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    uais.dedup();
    Ok(Establishments(uais))
}

fn advertise_url(value: &str) -> Result<String, String> {
    let url = value.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("expected an http:// or https:// URL")?;
    if rest.is_empty() || rest.contains(['?', '#', ' ']) {
        return Err("expected a base URL such as http://10.0.0.2:8080".into());
    }
    Ok(url.to_owned())
}

fn node_key(value: &str) -> Result<NodeSecret, String> {
    if value.len() < 32 {
        return Err("must be at least 32 characters of random text".into());
    }
    Ok(NodeSecret(value.to_string()))
}

fn true_or_false(value: &str) -> Result<bool, String> {
    value
        .trim()
        .parse()
        .map_err(|_| "expected true or false".into())
}

fn on_or_off(value: &str) -> Result<bool, String> {
    match value.trim() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err("expected on or off".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    // cluster (issue 12)
    #[test]
    fn a_node_with_a_set_needs_a_key_and_an_url() {
        let key = "k".repeat(32);
        let c = config(&[
            ("REGISTRE_ESTABLISHMENTS", " 0690002b, 0750001A,0750001A "),
            ("REGISTRE_NODE_KEY", &key),
            ("REGISTRE_ADVERTISE_URL", "http://10.0.0.2:8080/"),
        ])
        .expect("valid");
        let set = c.cluster.establishments.expect("a set");
        let uais: Vec<&str> = set.0.iter().map(|u| u.as_str()).collect();
        assert_eq!(uais, ["0690002B", "0750001A"]);
        assert_eq!(
            c.cluster.advertise_url.as_deref(),
            Some("http://10.0.0.2:8080")
        );
        assert_eq!(config(&[]).expect("defaults").cluster.establishments, None);

        let err = config(&[
            ("REGISTRE_ESTABLISHMENTS", "0750001A"),
            ("REGISTRE_ADVERTISE_URL", "http://a:1"),
        ])
        .expect_err("a set without a key");
        assert!(
            err.to_string().contains("REGISTRE_NODE_KEY must be set"),
            "{err}"
        );
        let err = config(&[
            ("REGISTRE_ESTABLISHMENTS", "0750001A"),
            ("REGISTRE_NODE_KEY", &key),
        ])
        .expect_err("a set without an URL");
        assert!(err.to_string().contains("REGISTRE_ADVERTISE_URL"), "{err}");
        for (var, value) in [
            ("REGISTRE_ESTABLISHMENTS", "0750001A,paris"),
            ("REGISTRE_ESTABLISHMENTS", " , "),
            ("REGISTRE_ADVERTISE_URL", "10.0.0.2:8080"),
            ("REGISTRE_NODE_KEY", "short"),
            ("REGISTRE_NODE_TIMEOUT_SECS", "5"),
        ] {
            let err = config(&[(var, value)]).expect_err(value);
            assert!(err.to_string().contains(var), "{var}={value}: {err}");
            assert!(
                !err.to_string().contains("short\""),
                "the key is never echoed"
            );
        }
    }

    #[test]
    fn defaults_give_an_embedded_store_on_loopback() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(
            c.database,
            Database::Embedded(PathBuf::from("./registre-data"))
        );
        assert_eq!(c.listen, "127.0.0.1:8080".parse().expect("literal"));
        assert_eq!(c.auth, None);
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.account_retention_days, 90);
        assert_eq!(c.access_log_retention, Duration::from_secs(365 * 86_400));
        assert_eq!(c.sanction_erasure, ErasureDelays::default());
    }

    /// Issue 15: the sanctions' delays are configuration, R511-13's by default.
    #[test]
    fn sanction_erasure_delays_are_read_and_checked() {
        let c =
            config(&[("REGISTRE_SANCTION_ERASURE_YEARS", "warning=1,REPRIMAND=2")]).expect("valid");
        assert_eq!(
            (c.sanction_erasure.warning, c.sanction_erasure.reprimand),
            (1, 2)
        );
        assert_eq!(
            c.sanction_erasure.temporary_exclusion, 2,
            "left out: the law's"
        );
        let err = config(&[("REGISTRE_SANCTION_ERASURE_YEARS", "blame=1")]).expect_err("refused");
        assert!(
            err.to_string().contains("REGISTRE_SANCTION_ERASURE_YEARS"),
            "{err}"
        );
    }

    #[test]
    fn full_configuration_is_read() {
        let c = config(&[
            ("DATABASE_URL", "postgres://u@db:5432/registre"),
            ("REGISTRE_DATA_DIR", "/var/lib/registre"),
            ("REGISTRE_LISTEN", "0.0.0.0:9000"),
            ("REGISTRE_JWKS", "https://idp.example/jwks.json"),
            ("REGISTRE_ISSUER", "https://idp.example"),
            ("REGISTRE_AUDIENCE", "registre"),
            ("REGISTRE_ADMIN_SUBJECTS", " alice, bob ,,"),
            ("REGISTRE_LOG_FORMAT", "JSON"),
            ("REGISTRE_WS_MAX_SUBSCRIPTIONS", "5"),
        ])
        .expect("valid");
        assert_eq!(
            c.database,
            Database::Postgres("postgres://u@db:5432/registre".into())
        );
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/registre"));
        assert_eq!(c.listen.port(), 9000);
        let auth = c.auth.expect("auth configured");
        assert_eq!(
            auth.jwks,
            JwksSource::Url("https://idp.example/jwks.json".into())
        );
        assert_eq!(auth.issuer, "https://idp.example");
        assert_eq!(auth.audience, "registre");
        assert_eq!(
            auth.admin_subjects.into_iter().collect::<Vec<_>>(),
            vec!["alice".to_string(), "bob".to_string()]
        );
        assert_eq!(auth.leeway, Duration::from_secs(60));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.limits.ws_max_subscriptions, 5);
        assert_eq!(auth.refresh_interval, Duration::from_secs(60));
    }

    #[test]
    fn admission_settings_are_read() {
        let c = config(&[
            ("REGISTRE_MAX_IN_FLIGHT", "3"),
            ("REGISTRE_MUTATION_RESERVED", "1"),
            ("REGISTRE_MAX_QUEUED", "0"),
            ("REGISTRE_MAX_QUEUE_MS", "75"),
            ("REGISTRE_RETRY_AFTER_SECS", "2"),
            ("REGISTRE_MAX_SOCKETS_PER_PERSON", "2"),
        ])
        .expect("valid");
        assert_eq!(c.limits.max_in_flight, 3);
        assert_eq!(c.limits.mutation_reserved, 1);
        assert_eq!(c.limits.max_queued, 0);
        assert_eq!(c.limits.max_queue_wait, Duration::from_millis(75));
        assert_eq!(c.limits.retry_after, Duration::from_secs(2));
        assert_eq!(c.limits.max_sockets_per_person, 2);
        let d = Limits::default();
        assert!(d.mutation_reserved >= 1 && d.mutation_reserved < d.max_in_flight);
    }

    #[test]
    fn the_issuer_alone_means_openid_connect_discovery() {
        let c = config(&[
            ("REGISTRE_ISSUER", "https://sso.ent.example/realms/lycees"),
            ("REGISTRE_AUDIENCE", "registre"),
            ("REGISTRE_ROLES_CLAIM", "realm_access.roles"),
        ])
        .expect("valid");
        let auth = c.auth.expect("auth configured");
        assert_eq!(
            auth.jwks,
            JwksSource::Discovery {
                issuer: "https://sso.ent.example/realms/lycees".into()
            }
        );
        assert_eq!(auth.roles_claim.as_deref(), Some("realm_access.roles"));
        let err =
            config(&[("REGISTRE_ISSUER", "https://sso.ent.example")]).expect_err("no audience");
        assert!(
            err.to_string()
                .contains("REGISTRE_AUDIENCE must be set when REGISTRE_ISSUER is set"),
            "{err}"
        );
        let err = config(&[
            ("REGISTRE_ISSUER", "http://sso.ent.example"),
            ("REGISTRE_AUDIENCE", "registre"),
        ])
        .expect_err("keys in clear");
        assert!(err.to_string().contains("https"), "{err}");
    }

    #[test]
    fn a_jwks_path_is_a_file_source() {
        let c = config(&[
            ("REGISTRE_JWKS", "./keys/jwks.json"),
            ("REGISTRE_ISSUER", "i"),
            ("REGISTRE_AUDIENCE", "a"),
        ])
        .expect("valid");
        assert_eq!(
            c.auth.expect("auth").jwks,
            JwksSource::File(PathBuf::from("./keys/jwks.json"))
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("REGISTRE_LISTEN", "localhost")], "REGISTRE_LISTEN"),
            (&[("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
            (&[("REGISTRE_LOG_FORMAT", "xml")], "REGISTRE_LOG_FORMAT"),
            (&[("REGISTRE_MAX_BATCH", "-1")], "REGISTRE_MAX_BATCH"),
            (&[("REGISTRE_MAX_BATCH", "0")], "REGISTRE_MAX_BATCH"),
            (
                &[("REGISTRE_WS_INIT_TIMEOUT_SECS", "ten")],
                "REGISTRE_WS_INIT_TIMEOUT_SECS",
            ),
            (
                &[
                    ("REGISTRE_JWKS", "http://idp/jwks"),
                    ("REGISTRE_ISSUER", "i"),
                    ("REGISTRE_AUDIENCE", "a"),
                ],
                "REGISTRE_JWKS",
            ),
            (
                &[("REGISTRE_JWKS", "/k.json"), ("REGISTRE_AUDIENCE", "a")],
                "REGISTRE_ISSUER",
            ),
            (
                &[("REGISTRE_JWKS", "/k.json"), ("REGISTRE_ISSUER", "i")],
                "REGISTRE_AUDIENCE",
            ),
            (
                &[("REGISTRE_ACCESS_LOG_RETENTION_DAYS", "0")],
                "REGISTRE_ACCESS_LOG_RETENTION_DAYS",
            ),
            (
                &[("REGISTRE_RETENTION_ACCOUNT_DAYS", "0")],
                "REGISTRE_RETENTION_ACCOUNT_DAYS",
            ),
            (
                &[("REGISTRE_RETENTION_ACCOUNT_DAYS", "three months")],
                "REGISTRE_RETENTION_ACCOUNT_DAYS",
            ),
            (
                &[("REGISTRE_PSEUDONYM_KEY", "short")],
                "REGISTRE_PSEUDONYM_KEY",
            ),
            (&[("REGISTRE_MAX_IN_FLIGHT", "0")], "REGISTRE_MAX_IN_FLIGHT"),
            (
                &[
                    ("REGISTRE_MAX_IN_FLIGHT", "4"),
                    ("REGISTRE_MUTATION_RESERVED", "4"),
                ],
                "REGISTRE_MUTATION_RESERVED",
            ),
            (
                &[("REGISTRE_MAX_QUEUE_MS", "soon")],
                "REGISTRE_MAX_QUEUE_MS",
            ),
            (
                &[("REGISTRE_RETRY_AFTER_SECS", "0")],
                "REGISTRE_RETRY_AFTER_SECS",
            ),
            (
                &[("REGISTRE_MAX_IN_FLIGHT", "abc")],
                "REGISTRE_MAX_IN_FLIGHT",
            ),
            (
                &[("REGISTRE_JWKS_REFRESH_SECS", "0")],
                "REGISTRE_JWKS_REFRESH_SECS",
            ),
            (
                &[("REGISTRE_GRAPHQL_INTROSPECTION", "yes")],
                "REGISTRE_GRAPHQL_INTROSPECTION",
            ),
            (
                &[("REGISTRE_PERSON_LIMITS", "maybe")],
                "REGISTRE_PERSON_LIMITS",
            ),
            (
                &[("REGISTRE_MESSAGES_PER_DAY", "0")],
                "REGISTRE_MESSAGES_PER_DAY",
            ),
            (
                &[("REGISTRE_GRAPHQL_MAX_COST", "0")],
                "REGISTRE_GRAPHQL_MAX_COST",
            ),
        ];
        for (vars, var) in cases {
            let err = config(vars).expect_err("must be refused");
            assert!(err.to_string().starts_with(var), "{err} should name {var}");
        }
    }

    #[test]
    fn the_database_password_is_never_printed() {
        let err = config(&[("DATABASE_URL", "mysql://u:secret@h/db")]).expect_err("refused");
        assert!(!err.to_string().contains("secret"), "{err}");
        let err = config(&[("REGISTRE_PSEUDONYM_KEY", "secret")]).expect_err("refused");
        assert!(!err.to_string().contains("secret"), "{err}");
        let c = config(&[
            ("DATABASE_URL", "postgres://u:secret@h/db"),
            (
                "REGISTRE_PSEUDONYM_KEY",
                "secret-secret-secret-secret-secret",
            ),
        ])
        .expect("valid");
        assert!(!format!("{c:?}").contains("secret"));
        assert!(c.pseudonym_key.is_some());
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c = config(&[
            ("DATABASE_URL", ""),
            ("REGISTRE_JWKS", " "),
            ("REGISTRE_MAX_IN_FLIGHT", ""),
        ])
        .expect("valid");
        assert_eq!(c, config(&[]).expect("valid"));
    }

    /// Every variable Registre has read since its first release, by name:
    /// deployments set them, so none may be renamed or dropped.
    const VARIABLES: [&str; 48] = [
        "DATABASE_URL",
        "REGISTRE_DATA_DIR",
        "REGISTRE_LISTEN",
        "REGISTRE_JWKS",
        "REGISTRE_ISSUER",
        "REGISTRE_AUDIENCE",
        "REGISTRE_ADMIN_SUBJECTS",
        "REGISTRE_JWT_LEEWAY_SECS",
        "REGISTRE_JWKS_REFETCH_SECS",
        "REGISTRE_JWKS_REFRESH_SECS",
        "REGISTRE_MAX_BODY_BYTES",
        "REGISTRE_MAX_BATCH",
        "REGISTRE_WS_MAX_MESSAGE_BYTES",
        "REGISTRE_WS_INIT_TIMEOUT_SECS",
        "REGISTRE_WS_MAX_SUBSCRIPTIONS",
        "REGISTRE_WS_KEEPALIVE_SECS",
        "REGISTRE_WS_WRITE_TIMEOUT_SECS",
        "REGISTRE_SHUTDOWN_GRACE_SECS",
        "REGISTRE_MAX_IN_FLIGHT",
        "REGISTRE_MUTATION_RESERVED",
        "REGISTRE_MAX_QUEUED",
        "REGISTRE_MAX_QUEUE_MS",
        "REGISTRE_RETRY_AFTER_SECS",
        "REGISTRE_RETRY_AFTER_MAX_SECS",
        "REGISTRE_MAX_SOCKETS_PER_PERSON",
        "REGISTRE_MAX_ANONYMOUS_SOCKETS",
        "REGISTRE_GRAPHQL_MAX_COST",
        "REGISTRE_GRAPHQL_INTROSPECTION",
        "REGISTRE_PERSON_LIMITS",
        "REGISTRE_MESSAGES_PER_MINUTE",
        "REGISTRE_MESSAGES_PER_DAY",
        "REGISTRE_READY_MAX_LAG",
        "REGISTRE_ACCESS_LOG_RETENTION_DAYS",
        "REGISTRE_RETENTION_ACCOUNT_DAYS",
        "REGISTRE_SANCTION_ERASURE_YEARS",
        "REGISTRE_PSEUDONYM_KEY",
        "REGISTRE_LOG",
        "REGISTRE_LOG_FORMAT",
        // communication (issue 16)
        "REGISTRE_MAX_ATTACHMENT_BYTES",
        "REGISTRE_SMTP_URL",
        "REGISTRE_MAIL_FROM",
        "REGISTRE_VAPID_KEY",
        // interop (issue 17)
        "REGISTRE_ROLES_CLAIM",
        // cluster (issue 12)
        "REGISTRE_ESTABLISHMENTS",
        "REGISTRE_ADVERTISE_URL",
        "REGISTRE_NODE_KEY",
        "REGISTRE_HEARTBEAT_SECS",
        "REGISTRE_NODE_TIMEOUT_SECS",
    ];

    /// The rule docs/operations.md states: a variable's flag is its name
    /// without REGISTRE_, in lower case with dashes.
    fn flag_of(var: &str) -> String {
        var.trim_start_matches("REGISTRE_")
            .to_ascii_lowercase()
            .replace('_', "-")
    }

    fn settings_command() -> clap::Command {
        Settings::augment_args(clap::Command::new("registre"))
    }

    #[test]
    fn every_variable_is_a_documented_setting_with_the_flag_of_its_name() {
        let command = settings_command();
        let settings: Vec<(String, String)> = command
            .get_arguments()
            .filter_map(|arg| {
                let var = arg.get_env()?.to_str()?.to_string();
                Some((var, arg.get_long()?.to_string()))
            })
            .collect();
        let mut expected: Vec<&str> = VARIABLES.to_vec();
        let mut names: Vec<&str> = settings.iter().map(|(var, _)| var.as_str()).collect();
        names.sort_unstable();
        expected.sort_unstable();
        assert_eq!(names, expected);
        let operations = include_str!("../../docs/operations.md");
        for (var, long) in &settings {
            assert!(
                operations.contains(&format!("`{var}`")),
                "{var} is not in docs/operations.md"
            );
            assert_eq!(long, &flag_of(var), "the flag of {var}");
        }
    }

    /// Parses flags only, without the process environment.
    fn from_flags(flags: &[&str]) -> Result<Config, String> {
        let command = settings_command().mut_args(|arg| arg.env(None::<&'static str>));
        let matches = command
            .try_get_matches_from(std::iter::once("registre").chain(flags.iter().copied()))
            .map_err(|e| e.to_string())?;
        let settings = Settings::from_arg_matches(&matches).map_err(|e| e.to_string())?;
        settings.resolve().map_err(|e| e.to_string())
    }

    #[test]
    fn flags_are_the_same_settings_as_the_variables() {
        assert_eq!(from_flags(&[]), Ok(config(&[]).expect("valid")));
        let vars = [
            ("DATABASE_URL", "postgres://u@db/registre"),
            ("REGISTRE_LISTEN", "0.0.0.0:9000"),
            ("REGISTRE_JWKS", "/k.json"),
            ("REGISTRE_ISSUER", "i"),
            ("REGISTRE_AUDIENCE", "a"),
            ("REGISTRE_ADMIN_SUBJECTS", "alice,bob"),
            ("REGISTRE_MAX_IN_FLIGHT", "3"),
            ("REGISTRE_MAX_QUEUED", "0"),
            ("REGISTRE_GRAPHQL_INTROSPECTION", "false"),
            ("REGISTRE_PERSON_LIMITS", "off"),
            ("REGISTRE_LOG_FORMAT", "json"),
        ];
        let flags: Vec<String> = vars
            .iter()
            .map(|(var, value)| format!("--{}={value}", flag_of(var)))
            .collect();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let by_flags = from_flags(&flags).expect("valid flags");
        assert_eq!(by_flags, config(&vars).expect("valid variables"));
        assert_eq!(by_flags.limits.max_in_flight, 3);
        assert_eq!(by_flags.limits.mutation_reserved, 0, "a quarter of 3");
        assert_eq!(by_flags.limits.max_queued, 0);
        assert!(!by_flags.query_limits.introspection);
        assert_eq!(by_flags.person_limits, PersonLimits::unlimited());
        let err = from_flags(&["--max-in-flight", "abc"]).expect_err("refused");
        assert!(err.contains("--max-in-flight"), "{err}");
    }

    #[test]
    fn person_limits_take_the_message_rates() {
        let c = config(&[
            ("REGISTRE_MESSAGES_PER_MINUTE", "5"),
            ("REGISTRE_MESSAGES_PER_DAY", "50"),
        ])
        .expect("valid");
        assert_eq!(
            c.person_limits.messages,
            [Rate::per_minute(5), Rate::per_day(50)]
        );
        assert_eq!(
            config(&[]).expect("valid").person_limits,
            PersonLimits::default()
        );
    }
}
