//! Starting a node: the configured store, the application on it and the
//! transport in front, and stopping them in order. The command line, the
//! end-to-end tests and the benchmarks all start nodes through here.

use crate::config::{Config, Database, LogFormat};
use anyhow::Context as _;
use async_trait::async_trait;
use registre_api::auth::Authenticator;
use registre_api::metrics::Metrics;
use registre_api::server::{serve_executor, Readiness, RunningServer, Transport};
use registre_store::EventStore;
use std::future::Future;
use std::sync::Arc;

/// Opens (and migrates) the configured store behind the vault: personal text
/// is sealed on append and opened on read (`registre_store::vault`).
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn EventStore>> {
    Ok(registre_store::VaultStore::wrap(
        open_raw_store(config).await?,
        registre_domain::personal::sealed_fields,
    )?)
}

/// The configured store as stored, sealed fields included: what the hash
/// chain covers (`registre audit`).
pub async fn open_raw_store(config: &Config) -> anyhow::Result<Arc<dyn EventStore>> {
    let (url, dir) = match &config.database {
        Database::Postgres(url) => (Some(url.as_str()), config.data_dir.as_path()),
        Database::Embedded(dir) => (None, dir.as_path()),
    };
    let backend = registre_store::open_backend(url, dir)
        .await
        .with_context(|| match url {
            Some(_) => "opening the PostgreSQL store (DATABASE_URL)".to_string(),
            None => format!(
                "opening the embedded store in {} (REGISTRE_DATA_DIR)",
                dir.display()
            ),
        })?;
    Ok(backend.store())
}

/// The embedded store's database file inside the data directory (the store
/// crate's file name; `demo --reset` deletes it).
pub fn embedded_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("registre.db")
}

/// Starts the application on `store` and serves it on `config.listen` until
/// `shutdown` resolves; then stops accepting, lets in-flight requests finish,
/// closes WebSockets and shuts the application down (flushing the access log).
pub async fn serve<F>(
    config: &Config,
    store: Arc<dyn registre_store::EventStore>,
    shutdown: F,
) -> anyhow::Result<RunningServer>
where
    F: Future<Output = ()> + Send + 'static,
{
    let app_config = registre_app::AppConfig {
        engine: engine_config(config),
        limits: config.person_limits.clone(),
        sanction_erasure: config.sanction_erasure,
        communication: communication_config(config)?,
        cluster: cluster_config(config),
        ..registre_app::AppConfig::default()
    };
    let app = registre_app::App::new(store, app_config)
        .await
        .map_err(|e| anyhow::anyhow!("starting the application: {e}"))?;
    let schema = registre_api::graphql::build_schema_with(app.clone(), config.query_limits);
    let auth = match &config.auth {
        Some(auth) => Authenticator::load(auth.clone()).await.context(
            "loading the token keys (REGISTRE_JWKS, or REGISTRE_ISSUER's OpenID discovery)",
        )?,
        None => {
            tracing::warn!(
                "neither REGISTRE_JWKS nor REGISTRE_ISSUER is set: every request will be unauthenticated"
            );
            Authenticator::disabled()
        }
    };
    let metrics = Metrics::new().context("registering metrics")?;
    let transport = Transport {
        executor: schema,
        auth,
        limits: config.limits.clone(),
        metrics: metrics.clone(),
        readiness: Arc::new(AppReadiness {
            app: app.clone(),
            max_lag: config.ready_max_lag,
        }),
        downloads: Some(Arc::new(
            registre_api::graphql::communication::AppDownloads(app.clone()),
        )),
        // cluster (issue 12)
        peers: Some(Arc::new(registre_api::cluster::AppPeers(app.clone()))),
    };
    let inner = serve_executor(transport, config.listen, shutdown)
        .await
        .with_context(|| format!("listening on {} (REGISTRE_LISTEN)", config.listen))?;

    let sampler = tokio::spawn(sample_app(app.clone(), metrics));
    Ok(inner.then(async move {
        sampler.abort();
        app.shutdown().await;
        tracing::info!("application stopped");
    }))
}

/// Attachments and notifications from the configuration: the VAPID key is
/// read from its file here, so a bad file stops the start with its name.
pub fn communication_config(
    config: &Config,
) -> anyhow::Result<registre_app::communication::CommunicationConfig> {
    let c = &config.communication;
    let smtp = c.smtp_url.as_ref().map(|url| {
        let from = c.mail_from.clone().unwrap_or_else(|| {
            tracing::warn!(
                "REGISTRE_MAIL_FROM is not set: notification mail is sent from registre@localhost"
            );
            "Registre <registre@localhost>".to_owned()
        });
        registre_app::communication::SmtpConfig {
            url: url.clone(),
            from,
        }
    });
    let vapid = match &c.vapid_key {
        Some(path) => {
            if !path.exists() {
                // Like `registre demo`: a node told where its key is makes
                // one there; every node must then be given that file.
                let pem = registre_app::notify::VapidKey::generate_pem()
                    .map_err(|e| anyhow::anyhow!("making the VAPID key: {e}"))?;
                std::fs::write(path, pem)
                    .with_context(|| format!("writing REGISTRE_VAPID_KEY ({})", path.display()))?;
                tracing::warn!(path = %path.display(), "REGISTRE_VAPID_KEY did not exist: a new key was written there");
            }
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("reading REGISTRE_VAPID_KEY ({})", path.display()))?;
            // RFC 8292's contact: the mail sender, else the project's.
            let subject = match &c.mail_from {
                Some(from) => format!(
                    "mailto:{}",
                    from.rsplit_once('<')
                        .map_or(from.as_str(), |(_, a)| a.trim_end_matches('>'))
                        .trim()
                ),
                None => "mailto:registre@localhost".to_owned(),
            };
            let key = registre_app::notify::VapidKey::from_pem(&pem, &subject)
                .map_err(|e| anyhow::anyhow!("REGISTRE_VAPID_KEY ({}): {e}", path.display()))?;
            Some(Arc::new(key))
        }
        None => None,
    };
    Ok(registre_app::communication::CommunicationConfig {
        attachment_max_bytes: c.max_attachment_bytes,
        smtp,
        vapid,
        ..Default::default()
    })
}

// cluster (issue 12)
/// The node's place in a region from the configuration (what it folds is
/// the engine's `partitions`, [`engine_config`]).
pub fn cluster_config(config: &Config) -> registre_app::cluster::ClusterConfig {
    let c = &config.cluster;
    registre_app::cluster::ClusterConfig {
        advertise_url: c.advertise_url.clone(),
        node_key: c
            .node_key
            .as_ref()
            .map(|k| registre_app::cluster::NodeKey::new(k.0.as_str())),
        heartbeat: std::time::Duration::from_secs(c.heartbeat_secs),
        liveness: std::time::Duration::from_secs(c.node_timeout_secs),
        ..Default::default()
    }
}

/// The projection engine's settings from the configuration.
pub fn engine_config(config: &Config) -> registre_projections::EngineConfig {
    let mut engine = registre_projections::EngineConfig {
        // cluster (issue 12)
        partitions: config.cluster.establishments.as_ref().map(|set| {
            set.0
                .iter()
                .map(|uai| registre_store::Partition::establishment(uai.as_str()))
                .collect()
        }),
        ..Default::default()
    };
    match &config.pseudonym_key {
        Some(key) => {
            engine.pseudonym_key = registre_projections::PseudonymKey::new(key.0.as_bytes())
        }
        None => tracing::warn!(
            "REGISTRE_PSEUDONYM_KEY is not set: usage pseudonyms are keyed per process"
        ),
    }
    engine
}

/// Copies the application's gauges into the metrics every few seconds.
async fn sample_app(app: Arc<registre_app::App>, metrics: Metrics) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        every.tick().await;
        let stats = app.stats();
        metrics
            .live_subscribers
            .set(i64::try_from(stats.live_subscribers).unwrap_or(i64::MAX));
        metrics
            .access_log_dropped
            .set(i64::try_from(stats.access_log_dropped).unwrap_or(i64::MAX));
        if let Ok(head) = app.store().head().await {
            metrics
                .log_head
                .set(i64::try_from(head).unwrap_or(i64::MAX));
        }
        let engine = app.engine().metrics();
        metrics
            .projection_lag
            .with_label_values(&[engine.name])
            .set(i64::try_from(engine.lag).unwrap_or(i64::MAX));
        let notify = app.notify_stats();
        for (outcome, counter) in [
            ("enqueued", &notify.enqueued),
            ("delivered", &notify.delivered),
            ("retried", &notify.retried),
            ("failed", &notify.failed),
            ("subscription_dropped", &notify.subscriptions_dropped),
        ] {
            let n = counter.load(std::sync::atomic::Ordering::Relaxed);
            metrics
                .notifications
                .with_label_values(&[outcome])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for consumer in app.engine().follower().status() {
            metrics
                .log_consumer_lag
                .with_label_values(&[consumer.name])
                .set(i64::try_from(consumer.lag).unwrap_or(i64::MAX));
        }
    }
}

/// Readiness of a node: the database answers and the read model is within
/// `max_lag` events of the log head.
struct AppReadiness {
    app: Arc<registre_app::App>,
    max_lag: u64,
}

#[async_trait]
impl Readiness for AppReadiness {
    async fn check(&self) -> Result<(), String> {
        let head = self.app.store().head().await.map_err(|e| {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            "the database does not answer".to_string()
        })?;
        if let Some(reason) = self.app.engine().metrics().stalled {
            return Err(format!("the read model is stalled: {reason}"));
        }
        let lag = head.saturating_sub(self.app.read_model_position());
        if lag > self.max_lag {
            return Err(format!("the read model is {lag} events behind the log"));
        }
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    {
        let ctrl_c = async {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => tracing::info!("SIGINT received"),
            () = terminate => tracing::info!("SIGTERM received"),
        }
    }
}

/// Installs the global tracing subscriber. Errors (a second install, in
/// tests) are ignored: the first subscriber stays.
pub fn init_logging(config: &Config) {
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
