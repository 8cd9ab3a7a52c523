//! The `registre` command line: `serve`, `demo` and `migrate`.
//!
//! Each subcommand reads the same environment configuration
//! ([`crate::config::Config`]); flags only cover what is specific to one run.
//! The functions here are thin: they open the store, call the library and
//! turn its errors into a message and an exit code.

use std::{path::PathBuf, sync::Arc};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use registre_store::EventStore;

use crate::config::{Config, Database, LogFormat};

#[derive(Debug, Parser)]
#[command(
    name = "registre",
    version,
    about = "Registre: the school life record, event-sourced"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the GraphQL API (configuration from the environment; see docs/operations.md).
    Serve,
    /// Seed a demonstration collège, print one bearer token per role, and serve it.
    Demo(DemoArgs),
    /// Apply the database migrations and exit (also done at every start).
    Migrate,
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Seed of the generator: the same seed gives the same collège.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// Delete the demo data directory first (embedded store only).
    #[arg(long)]
    pub reset: bool,
    /// Seed and print the tokens, but do not serve.
    #[arg(long)]
    pub no_serve: bool,
}

/// Runs one command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::from_env().context("configuration")?;
    init_logging(&config);
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => migrate(&config).await,
        Command::Demo(args) => crate::demo::run(config, args).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let server = crate::server::serve(&config, store, shutdown_signal()).await?;
    println!("Registre listening on http://{}/graphql", server.addr);
    server.stopped().await;
    Ok(())
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let applied = match &config.database {
        Database::Postgres(url) => registre_store::migrate_postgres(url)
            .await
            .context("migrating the PostgreSQL store (DATABASE_URL)")?,
        // Opening the embedded store applies its pending migrations.
        Database::Embedded(_) => Vec::new(),
    };
    let store = open_store(config).await?;
    let head = store
        .head()
        .await
        .context("reading the log head after migrating")?;
    if applied.is_empty() {
        println!("the schema is up to date; the log holds {head} events");
    } else {
        println!("applied migrations {applied:?}; the log holds {head} events");
    }
    Ok(())
}

/// Opens (and migrates) the configured store.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn EventStore>> {
    match &config.database {
        Database::Postgres(url) => {
            let store = registre_store::PostgresStore::connect(url)
                .await
                .context("opening the PostgreSQL store (DATABASE_URL)")?;
            Ok(store)
        }
        Database::Embedded(dir) => {
            let store = registre_store::SqliteStore::open(dir)
                .await
                .with_context(|| {
                    format!(
                        "opening the embedded store in {} (REGISTRE_DATA_DIR)",
                        dir.display()
                    )
                })?;
            Ok(store)
        }
    }
}

/// The embedded store's database file inside the data directory (the store
/// crate's file name; `demo --reset` deletes it).
pub fn embedded_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("registre.db")
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_parses() {
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["registre", "demo", "--seed", "7", "--reset"]).expect("valid");
        match cli.command {
            Command::Demo(args) => {
                assert_eq!(args.seed, 7);
                assert!(args.reset);
                assert!(!args.no_serve);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(matches!(
            Cli::try_parse_from(["registre", "migrate"])
                .expect("valid")
                .command,
            Command::Migrate
        ));
        assert!(Cli::try_parse_from(["registre", "frobnicate"]).is_err());
    }
}
