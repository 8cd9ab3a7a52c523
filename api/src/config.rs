//! Typed server settings, read once from the environment at start-up.
//!
//! Every variable is parsed here and nowhere else, so that a bad value stops
//! the process before it listens, with a message naming the variable. The
//! contract fixes the first seven names; the rest tune limits and logging and
//! all have defaults suited to one collège on one small machine.

use std::{
    collections::BTreeSet, fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration,
};

use thiserror::Error;

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

/// Where the token verification keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS JSON file, re-read when a token names an unknown key.
    File(PathBuf),
    /// An https URL, fetched, cached and refetched on an unknown key.
    Url(String),
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
}

/// Sizes and counts beyond which a request is refused with a clear error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: u64,
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
    /// told to wait, however saturated the node.
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
        let max_in_flight = 4 * cores();
        Limits {
            ws_write_timeout: Duration::from_secs(10),
            max_in_flight,
            mutation_reserved: max_in_flight / 4,
            max_queued: 4 * max_in_flight,
            max_queue_wait: Duration::from_millis(50),
            retry_after: Duration::from_secs(1),
            retry_after_max: Duration::from_secs(30),
            max_sockets_per_person: 8,
            max_anonymous_sockets: 256,
            max_body_bytes: 1024 * 1024,
            max_batch_operations: 10,
            ws_max_message_bytes: 64 * 1024,
            ws_init_timeout: Duration::from_secs(10),
            ws_max_subscriptions: 20,
            ws_keepalive: Duration::from_secs(25),
            shutdown_grace: Duration::from_secs(30),
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
    /// /readyz fails while the read model is more than this many events
    /// behind the log head.
    pub ready_max_lag: u64,
    /// REGISTRE_PSEUDONYM_KEY; `None`: a random key per process, so usage
    /// pseudonyms do not survive a restart (fine for the demo and tests).
    pub pseudonym_key: Option<PseudonymSecret>,
    /// What one GraphQL document may ask for (REGISTRE_GRAPHQL_MAX_COST,
    /// REGISTRE_GRAPHQL_INTROSPECTION).
    pub query_limits: crate::graphql::QueryLimits,
    /// Per-person mutation rates (REGISTRE_PERSON_LIMITS=off turns them off,
    /// REGISTRE_MESSAGES_PER_MINUTE / _PER_DAY tune the busiest one).
    pub person_limits: registre_app::limits::PersonLimits,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process
    /// environment. Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let data_dir =
            PathBuf::from(get("REGISTRE_DATA_DIR").unwrap_or_else(|| "./registre-data".into()));
        let database = match get("DATABASE_URL") {
            Some(url) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(invalid(
                        "DATABASE_URL",
                        "<redacted>",
                        "expected a postgres:// URL",
                    ));
                }
                Database::Postgres(url)
            }
            None => Database::Embedded(data_dir.clone()),
        };
        let listen = parse_with(
            "REGISTRE_LISTEN",
            get("REGISTRE_LISTEN"),
            "127.0.0.1:8080",
            |v| {
                v.parse::<SocketAddr>()
                    .map_err(|_| "expected host:port with an IP address, e.g. 0.0.0.0:8080".into())
            },
        )?;

        let auth = match get("REGISTRE_JWKS") {
            None => None,
            Some(jwks) => {
                let jwks = parse_jwks(&jwks)?;
                let issuer = get("REGISTRE_ISSUER").ok_or(ConfigError::Missing {
                    var: "REGISTRE_ISSUER",
                    because: "REGISTRE_JWKS is set",
                })?;
                let audience = get("REGISTRE_AUDIENCE").ok_or(ConfigError::Missing {
                    var: "REGISTRE_AUDIENCE",
                    because: "REGISTRE_JWKS is set",
                })?;
                Some(AuthConfig {
                    jwks,
                    issuer,
                    audience,
                    admin_subjects: parse_subjects(get("REGISTRE_ADMIN_SUBJECTS").as_deref()),
                    leeway: secs(&get, "REGISTRE_JWT_LEEWAY_SECS", 60)?,
                    refetch_min_interval: secs(&get, "REGISTRE_JWKS_REFETCH_SECS", 30)?,
                    refresh_interval: secs(&get, "REGISTRE_JWKS_REFRESH_SECS", 60)?,
                })
            }
        };

        let defaults = Limits::default();
        let max_in_flight = number(&get, "REGISTRE_MAX_IN_FLIGHT", defaults.max_in_flight)?;
        let limits = Limits {
            max_body_bytes: number(&get, "REGISTRE_MAX_BODY_BYTES", defaults.max_body_bytes)?,
            max_batch_operations: number(
                &get,
                "REGISTRE_MAX_BATCH",
                defaults.max_batch_operations,
            )?,
            ws_max_message_bytes: number(
                &get,
                "REGISTRE_WS_MAX_MESSAGE_BYTES",
                defaults.ws_max_message_bytes,
            )?,
            ws_init_timeout: secs(&get, "REGISTRE_WS_INIT_TIMEOUT_SECS", 10)?,
            ws_max_subscriptions: number(
                &get,
                "REGISTRE_WS_MAX_SUBSCRIPTIONS",
                defaults.ws_max_subscriptions,
            )?,
            ws_keepalive: secs(&get, "REGISTRE_WS_KEEPALIVE_SECS", 25)?,
            shutdown_grace: secs(&get, "REGISTRE_SHUTDOWN_GRACE_SECS", 30)?,
            ws_write_timeout: secs(&get, "REGISTRE_WS_WRITE_TIMEOUT_SECS", 10)?,
            max_in_flight,
            // Unless set, the reserve and the queue scale with the places.
            mutation_reserved: number(&get, "REGISTRE_MUTATION_RESERVED", max_in_flight / 4)?,
            max_queued: number(&get, "REGISTRE_MAX_QUEUED", 4 * max_in_flight)?,
            max_queue_wait: number(
                &get,
                "REGISTRE_MAX_QUEUE_MS",
                defaults.max_queue_wait.as_millis() as u64,
            )
            .map(Duration::from_millis)?,
            retry_after: secs(&get, "REGISTRE_RETRY_AFTER_SECS", 1)?,
            retry_after_max: secs(&get, "REGISTRE_RETRY_AFTER_MAX_SECS", 30)?,
            max_sockets_per_person: number(
                &get,
                "REGISTRE_MAX_SOCKETS_PER_PERSON",
                defaults.max_sockets_per_person,
            )?,
            max_anonymous_sockets: number(
                &get,
                "REGISTRE_MAX_ANONYMOUS_SOCKETS",
                defaults.max_anonymous_sockets,
            )?,
        };
        for (var, zero) in [
            ("REGISTRE_MAX_BODY_BYTES", limits.max_body_bytes == 0),
            ("REGISTRE_MAX_BATCH", limits.max_batch_operations == 0),
            (
                "REGISTRE_WS_MAX_MESSAGE_BYTES",
                limits.ws_max_message_bytes == 0,
            ),
            (
                "REGISTRE_WS_INIT_TIMEOUT_SECS",
                limits.ws_init_timeout.is_zero(),
            ),
            (
                "REGISTRE_WS_MAX_SUBSCRIPTIONS",
                limits.ws_max_subscriptions == 0,
            ),
            ("REGISTRE_WS_KEEPALIVE_SECS", limits.ws_keepalive.is_zero()),
            (
                "REGISTRE_WS_WRITE_TIMEOUT_SECS",
                limits.ws_write_timeout.is_zero(),
            ),
            ("REGISTRE_MAX_IN_FLIGHT", limits.max_in_flight == 0),
            ("REGISTRE_RETRY_AFTER_SECS", limits.retry_after.is_zero()),
            (
                "REGISTRE_MAX_SOCKETS_PER_PERSON",
                limits.max_sockets_per_person == 0,
            ),
        ] {
            if zero {
                return Err(invalid(var, "0", "must be greater than zero"));
            }
        }

        if limits.retry_after_max < limits.retry_after {
            return Err(invalid(
                "REGISTRE_RETRY_AFTER_MAX_SECS",
                &limits.retry_after_max.as_secs().to_string(),
                "must be at least REGISTRE_RETRY_AFTER_SECS",
            ));
        }
        if limits.mutation_reserved >= limits.max_in_flight {
            return Err(invalid(
                "REGISTRE_MUTATION_RESERVED",
                &limits.mutation_reserved.to_string(),
                "must be less than REGISTRE_MAX_IN_FLIGHT (reads need a place too)",
            ));
        }
        if auth
            .as_ref()
            .is_some_and(|a: &AuthConfig| a.refresh_interval.is_zero())
        {
            return Err(invalid(
                "REGISTRE_JWKS_REFRESH_SECS",
                "0",
                "must be greater than zero",
            ));
        }

        let log_format = parse_with(
            "REGISTRE_LOG_FORMAT",
            get("REGISTRE_LOG_FORMAT"),
            "text",
            |v| v.parse::<LogFormat>(),
        )?;
        let log_filter = get("REGISTRE_LOG").unwrap_or_else(|| "info".into());
        let retention_days: u64 = number(&get, "REGISTRE_ACCESS_LOG_RETENTION_DAYS", 365)?;
        if retention_days == 0 {
            return Err(invalid(
                "REGISTRE_ACCESS_LOG_RETENTION_DAYS",
                "0",
                "must be at least one day",
            ));
        }
        let account_retention_days: u32 = number(&get, "REGISTRE_RETENTION_ACCOUNT_DAYS", 90)?;
        if account_retention_days == 0 {
            return Err(invalid(
                "REGISTRE_RETENTION_ACCOUNT_DAYS",
                "0",
                "must be at least one day",
            ));
        }
        let pseudonym_key = match get("REGISTRE_PSEUDONYM_KEY") {
            Some(key) if key.len() < 32 => {
                return Err(invalid(
                    "REGISTRE_PSEUDONYM_KEY",
                    "<redacted>",
                    "must be at least 32 characters of random text",
                ))
            }
            Some(key) => Some(PseudonymSecret(key)),
            None => None,
        };
        let query_defaults = crate::graphql::QueryLimits::default();
        let query_limits = crate::graphql::QueryLimits {
            introspection: parse_with(
                "REGISTRE_GRAPHQL_INTROSPECTION",
                get("REGISTRE_GRAPHQL_INTROSPECTION"),
                "true",
                |v| {
                    v.parse::<bool>()
                        .map_err(|_| "expected true or false".into())
                },
            )?,
            max_cost: number(&get, "REGISTRE_GRAPHQL_MAX_COST", query_defaults.max_cost)?,
            ..query_defaults
        };
        if query_limits.max_cost == 0 {
            return Err(invalid(
                "REGISTRE_GRAPHQL_MAX_COST",
                "0",
                "must be greater than zero",
            ));
        }
        let person_limits = match get("REGISTRE_PERSON_LIMITS").as_deref().map(str::trim) {
            None | Some("on") => {
                use registre_app::limits::{PersonLimits, Rate};
                let defaults = PersonLimits::default();
                let per_minute: u32 = number(&get, "REGISTRE_MESSAGES_PER_MINUTE", 30)?;
                let per_day: u32 = number(&get, "REGISTRE_MESSAGES_PER_DAY", 500)?;
                if per_minute == 0 || per_day == 0 {
                    return Err(invalid(
                        "REGISTRE_MESSAGES_PER_MINUTE",
                        "0",
                        "must be greater than zero (REGISTRE_PERSON_LIMITS=off removes every limit)",
                    ));
                }
                PersonLimits {
                    messages: vec![Rate::per_minute(per_minute), Rate::per_day(per_day)],
                    ..defaults
                }
            }
            Some("off") => registre_app::limits::PersonLimits::unlimited(),
            Some(other) => {
                return Err(invalid(
                    "REGISTRE_PERSON_LIMITS",
                    other,
                    "expected on or off",
                ))
            }
        };
        Ok(Config {
            query_limits,
            person_limits,
            pseudonym_key,
            database,
            data_dir,
            listen,
            auth,
            limits,
            log_format,
            log_filter,
            access_log_retention: Duration::from_secs(retention_days * 86_400),
            account_retention_days,
            ready_max_lag: number(&get, "REGISTRE_READY_MAX_LAG", 1000)?,
        })
    }
}

fn invalid(var: &'static str, value: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        var,
        value: value.to_string(),
        message: message.into(),
    }
}

fn parse_with<T>(
    var: &'static str,
    value: Option<String>,
    default: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let value = value.unwrap_or_else(|| default.to_string());
    parse(value.trim()).map_err(|message| invalid(var, &value, message))
}

fn number<T: FromStr + ToString>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    parse_with(var, get(var), &default.to_string(), |v| {
        v.parse::<T>()
            .map_err(|_| "expected a non-negative whole number".into())
    })
}

fn secs(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    number(get, var, default).map(Duration::from_secs)
}

fn parse_jwks(value: &str) -> Result<JwksSource, ConfigError> {
    let value = value.trim();
    if value.starts_with("https://") {
        Ok(JwksSource::Url(value.to_string()))
    } else if value.contains("://") {
        // Keys fetched in clear could be swapped by anyone on the path.
        Err(invalid("REGISTRE_JWKS", value, "a URL must use https"))
    } else {
        Ok(JwksSource::File(PathBuf::from(value)))
    }
}

fn parse_subjects(value: Option<&str>) -> BTreeSet<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
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
        ];
        for (vars, var) in cases {
            let err = config(vars).expect_err("must be refused");
            assert!(err.to_string().starts_with(var), "{err} should name {var}");
        }
    }

    #[test]
    fn the_database_password_is_never_printed() {
        let err = config(&[("DATABASE_URL", "mysql://u:secret@h/db")]).expect_err("refused");
        assert!(!err.to_string().contains("secret"));
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
}
