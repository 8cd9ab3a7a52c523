//! The `registre` command line: `serve`, `demo`, `migrate`, and the
//! maintenance commands (`projections rebuild`, `replay`, `audit verify`,
//! `audit checkpoint`, `retention apply`, `export person`, `forget`).
//!
//! Every command takes the same settings ([`crate::config::Settings`]), each
//! a global flag and an environment variable; the other flags are specific to
//! one run.
//! The functions here are thin: they open the store, call the library and
//! turn its errors into a message and an exit code.

use std::{path::PathBuf, sync::Arc};

use anyhow::Context as _;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use registre_store::EventStore;

use crate::config::{Config, Database, Settings};
use crate::node::{init_logging, open_raw_store, open_store, shutdown_signal};

#[derive(Debug, Parser)]
#[command(
    name = "registre",
    version,
    about = "Registre: the school life record, event-sourced"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments and environment as [`Parser::parse`]
    /// does (exiting with clap's message on an error), except that an empty
    /// variable counts as unset.
    pub fn from_process() -> Cli {
        let mut command = Cli::command().mut_args(crate::config::blank_env_unset);
        let mut matches = command.get_matches_mut();
        Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.format(&mut command).exit())
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the GraphQL API (the settings below, or their variables; see docs/operations.md).
    Serve,
    /// Seed a demonstration collège, print one bearer token per role, and serve it.
    Demo(crate::demo::DemoArgs),
    /// Apply the database migrations and exit (also done at every start).
    Migrate,
    /// Maintain the projections' persisted read model.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Write the views of every record as the log stood at an instant.
    Replay(ReplayArgs),
    /// Check the log's integrity.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Apply the retention periods.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Answer a subject access request (GDPR art. 15).
    #[command(subcommand)]
    Export(ExportCommand),
    /// Erase a person on request (GDPR art. 17), as the forgetPerson mutation does.
    Forget(ForgetArgs),
    /// Bring the roster in line with SIECLE or STS-Web exports (docs/interop.md).
    #[command(subcommand)]
    Import(ImportCommand),
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Students, classes and legal guardians from SIECLE's ElevesSansAdresses.xml
    /// and ResponsablesAvecAdresses.xml (zipped or not).
    Siecle {
        /// The export files (XML or zip), of one establishment.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        run: ImportRun,
    },
    /// Teachers and their services per class and subject from STS-Web's
    /// sts_emp_<UAI>_<year>.xml (zipped or not).
    Sts {
        file: PathBuf,
        #[command(flatten)]
        run: ImportRun,
    },
}

#[derive(Debug, clap::Args)]
pub struct ImportRun {
    /// Print the changes (counts and list) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The externalId of the registered ADMIN, or HEAD of the establishment,
    /// running the import: the actor of the events it writes.
    #[arg(long, env = "REGISTRE_OPERATOR")]
    pub operator: String,
}

#[derive(Debug, clap::Args)]
pub struct ForgetArgs {
    /// The person's id (a UUID).
    pub id: uuid::Uuid,
    /// Why (mandatory; stored in clear, so it must not name the person).
    #[arg(long)]
    pub reason: String,
    /// The externalId of the registered ADMIN running the command: the
    /// erasure's actor in the audit trail.
    #[arg(long, env = "REGISTRE_OPERATOR")]
    pub operator: String,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write everything Registre holds about a person as one JSON document.
    Person {
        /// The person's id (a UUID: `me { id }`, `student.person.id`).
        id: uuid::Uuid,
        /// Write the document to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The externalId of the registered AUDITOR or ADMIN running the
        /// command: the reader recorded in the person's access log.
        #[arg(long, env = "REGISTRE_OPERATOR")]
        operator: String,
    },
    // interop (issue 17)
    /// Write a period's periodic assessments as the XML the Livret scolaire
    /// unique (LSU) imports (docs/interop.md).
    Lsu(LsuArgs),
}

#[derive(Debug, clap::Args)]
pub struct LsuArgs {
    /// The establishment's UAI.
    #[arg(long)]
    pub establishment: String,
    /// The period's id (`establishment { periods { id } }`).
    #[arg(long)]
    pub period: uuid::Uuid,
    /// Where to write the XML.
    #[arg(long)]
    pub out: PathBuf,
    /// SIECLE's students export (ElevesSansAdresses, XML or zip): LSU names
    /// students by their ELEVE_ID, which Registre does not keep.
    #[arg(long)]
    pub siecle: PathBuf,
    /// STS-Web's export (sts_emp_<UAI>_<year>.xml): the subjects' national codes.
    #[arg(long)]
    pub sts: PathBuf,
    /// The externalId of the registered ADMIN, or HEAD of the establishment,
    /// running the export: the reader recorded in each student's access log.
    #[arg(long, env = "REGISTRE_OPERATOR")]
    pub operator: String,
}

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Fold the whole log again and replace the read model's snapshot.
    Rebuild {
        /// The projection to rebuild (default: all; there is one, `read_model`).
        name: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// RFC 3339 instant: events recorded after it are ignored.
    #[arg(long)]
    pub until: chrono::DateTime<chrono::FixedOffset>,
    /// Directory the views are written to (created if needed).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain over the whole log; fails on the first break,
    /// and when the log no longer holds a checkpoint given with --checkpoint.
    Verify {
        /// A checkpoint file written earlier by `audit checkpoint` (repeatable).
        #[arg(long = "checkpoint")]
        checkpoints: Vec<PathBuf>,
    },
    /// Write the chain head (position, hash, time) as a JSON checkpoint for an
    /// auditor to keep; `audit verify --checkpoint` later proves the log up to
    /// it was neither rewritten nor cut.
    Checkpoint {
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Erase the people whose account was closed REGISTRE_RETENTION_ACCOUNT_DAYS
    /// ago or more, and purge read-access records older than
    /// REGISTRE_ACCESS_LOG_RETENTION_DAYS. Safe to run again (daily).
    Apply,
}

/// Runs one command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.settings.resolve().context("configuration")?;
    init_logging(&config);
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => migrate(&config).await,
        Command::Demo(args) => crate::demo::run(config, args).await,
        Command::Projections(ProjectionsCommand::Rebuild { name }) => {
            rebuild(&config, name.as_deref()).await
        }
        Command::Replay(args) => replay(&config, args).await,
        Command::Audit(AuditCommand::Verify { checkpoints }) => {
            let store = open_raw_store(&config).await?;
            let summary = audit_verify(store.as_ref(), &checkpoints).await?;
            println!("{summary}");
            Ok(())
        }
        Command::Audit(AuditCommand::Checkpoint { out }) => {
            let store = open_raw_store(&config).await?;
            let text = audit_checkpoint(store.as_ref()).await?;
            write_output(out.as_deref(), &text)
        }
        Command::Retention(RetentionCommand::Apply) => retention_apply(&config).await,
        Command::Export(ExportCommand::Person { id, out, operator }) => {
            export_person(&config, id, out.as_deref(), &operator).await
        }
        Command::Export(ExportCommand::Lsu(args)) => export_lsu(&config, &args).await,
        Command::Forget(args) => forget(&config, args).await,
        Command::Import(ImportCommand::Siecle { files, run }) => {
            let summary =
                import(&config, registre_app::import::Source::Siecle, &files, &run).await?;
            println!("{summary}");
            Ok(())
        }
        Command::Import(ImportCommand::Sts { file, run }) => {
            let summary = import(
                &config,
                registre_app::import::Source::Sts,
                std::slice::from_ref(&file),
                &run,
            )
            .await?;
            println!("{summary}");
            Ok(())
        }
    }
}

/// `import siecle|sts`: read and check every file, decide the whole diff on
/// a caught-up read model, then (unless `--dry-run`) run it through the
/// command pipeline. Returns what to print: the diff and what was written.
pub async fn import(
    config: &Config,
    source: registre_app::import::Source,
    files: &[PathBuf],
    run: &ImportRun,
) -> anyhow::Result<String> {
    use registre_app::import;
    let mut inputs = Vec::with_capacity(files.len());
    for path in files {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        inputs.push(import::Input {
            name: path.display().to_string(),
            bytes,
        });
    }
    let total: u64 = inputs.iter().map(|i| i.bytes.len() as u64).sum();
    let bar = progress_bar(total, "reading");
    let exports = import::load(source, inputs, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .map_err(|e| anyhow::anyhow!("{e}; nothing was written"))?;
    bar.finish_and_clear();
    let store = open_store(config).await?;
    let app_config = registre_app::AppConfig {
        engine: crate::node::engine_config(config),
        ..registre_app::AppConfig::default()
    };
    let app = registre_app::App::new(store, app_config)
        .await
        .map_err(|e| anyhow::anyhow!("starting the application: {e}"))?;
    let outcome = import_into(&app, &exports, run).await;
    app.shutdown().await;
    outcome
}

async fn import_into(
    app: &registre_app::App,
    exports: &[(String, registre_app::import::Export)],
    run: &ImportRun,
) -> anyhow::Result<String> {
    use registre_app::import;
    app.consistent()
        .await
        .map_err(|e| anyhow::anyhow!("catching the read model up with the log: {e}"))?;
    let operator = registre_app::erasure::operator(app.engine(), &run.operator)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let today = registre_app::commands::now()
        .with_timezone(&chrono_tz::Europe::Paris)
        .date_naive();
    let diff = app
        .read(|m| import::diff(m, exports, today))
        .map_err(|e| anyhow::anyhow!("{e}; nothing was written"))?;
    let mut text = diff.render();
    if run.dry_run {
        text.push_str("\n(dry run: nothing was written)");
        return Ok(text);
    }
    let cx = registre_app::commands::CommandContext::person(&operator, uuid::Uuid::now_v7());
    let bar = progress_bar(diff.changes.len() as u64, "importing");
    let applied = import::apply(app, &cx, &diff, &mut |done| bar.set_position(done))
        .await
        .map_err(|e| anyhow::anyhow!("importing into {}: {e}", diff.uai))?;
    bar.finish_and_clear();
    text.push_str(&format!(
        "\n{} event(s) written by {} command(s)",
        applied.events, applied.commands
    ));
    Ok(text)
}

fn progress_bar(length: u64, message: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

async fn rebuild(config: &Config, name: Option<&str>) -> anyhow::Result<()> {
    use registre_projections::{ProjectionEngine, ReadModel};
    if let Some(name) = name.filter(|n| *n != ReadModel::NAME) {
        anyhow::bail!("unknown projection {name:?}; known: {}", ReadModel::NAME);
    }
    let store = open_store(config).await?;
    let head = store.head().await.context("reading the log head")?;
    let engine = ProjectionEngine::open(store, crate::node::engine_config(config))
        .await
        .context("opening the projection engine")?;
    let bar = progress_bar(head, "rebuilding");
    let report = engine
        .rebuild(|p| bar.set_position(p.applied))
        .await
        .context("rebuilding the read model")?;
    bar.finish();
    println!(
        "{} rebuilt: {} events up to position {} in {:.1} s ({:.0} events/s)",
        ReadModel::NAME,
        report.events,
        report.position,
        report.seconds,
        report.events_per_second
    );
    Ok(())
}

async fn replay(config: &Config, args: ReplayArgs) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let head = store.head().await.context("reading the log head")?;
    let bar = progress_bar(head, "replaying");
    let until = args.until.with_timezone(&chrono::Utc);
    let manifest = registre_projections::replay_to_dir(store.as_ref(), until, &args.out, |p| {
        bar.set_position(p.read)
    })
    .await
    .context("replaying the log")?;
    bar.finish();
    println!(
        "the log as of {} (position {}, {} events): {} establishments, {} classes, {} students written to {}",
        manifest.until.to_rfc3339(),
        manifest.position,
        manifest.events_applied,
        manifest.establishments,
        manifest.classes,
        manifest.students,
        args.out.display()
    );
    Ok(())
}

/// `audit verify`: the whole chain, then each checkpoint. Returns the
/// summary to print; any break or missing checkpoint is an error (non-zero exit).
pub async fn audit_verify(
    store: &dyn EventStore,
    checkpoints: &[PathBuf],
) -> anyhow::Result<String> {
    // Read the checkpoint files first: a typo should not cost a full walk.
    let mut kept = Vec::with_capacity(checkpoints.len());
    for path in checkpoints {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the checkpoint {}", path.display()))?;
        let checkpoint: registre_store::ChainCheckpoint = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a checkpoint", path.display()))?;
        kept.push((path, checkpoint));
    }
    let head = store.head().await.context("reading the log head")?;
    let bar = progress_bar(head, "verifying");
    let report = registre_store::verify_chain(store, |p| bar.set_position(p))
        .await
        .context("verifying the hash chain")?;
    bar.finish();
    if let Some(broken) = &report.first_break {
        anyhow::bail!(
            "the hash chain breaks at position {} ({:?}); verified up to {}",
            broken.position,
            broken.kind,
            report.verified_head
        );
    }
    // The partition routes an event to the nodes that serve it and is not
    // hashed: recomputed from the log, it must be the one stored.
    let bar = progress_bar(head, "checking partitions");
    let partitions =
        registre_projections::verify_partitions(store, 5_000, 10, |p| bar.set_position(p))
            .await
            .context("checking the partitions")?;
    bar.finish();
    if partitions.misplaced_total > 0 {
        let listed: Vec<String> = partitions
            .misplaced
            .iter()
            .map(|(position, stored, expected)| {
                let stored = stored.as_ref().map_or("none".to_owned(), |p| p.to_string());
                format!("position {position}: stored {stored}, expected {expected}")
            })
            .collect();
        anyhow::bail!(
            "{} event(s) are not in the partition the log gives them (a node serving it would \
             not see them): {}",
            partitions.misplaced_total,
            listed.join("; ")
        );
    }
    for (path, checkpoint) in &kept {
        let holds = registre_store::chain::verify_checkpoint(store, checkpoint)
            .await
            .context("checking a checkpoint")?;
        if !holds {
            anyhow::bail!(
                "the log no longer holds the checkpoint {} (position {}, hash {}, taken {}): \
                 it was rewritten or cut since",
                path.display(),
                checkpoint.position,
                hex::encode(checkpoint.hash),
                checkpoint.at.to_rfc3339()
            );
        }
    }
    Ok(format!(
        "the hash chain is intact: {} events, head {} hash {}; every event is in its \
         partition; {} checkpoint(s) hold",
        report.events_checked,
        report.verified_head,
        hex::encode(report.head_hash),
        kept.len()
    ))
}

/// `audit checkpoint`: the chain head as pretty JSON.
pub async fn audit_checkpoint(store: &dyn EventStore) -> anyhow::Result<String> {
    let checkpoint = registre_store::chain::checkpoint(store)
        .await
        .context("reading the chain head")?;
    serde_json::to_string_pretty(&checkpoint).context("encoding the checkpoint")
}

/// Writes a document to `out`, or to standard output.
fn write_output(out: Option<&std::path::Path>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(path) => std::fs::write(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display())),
        None => {
            use std::io::Write as _;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.write_all(b"\n"))
                .context("writing to standard output")
        }
    }
}

async fn retention_apply(config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let engine = registre_projections::ProjectionEngine::open(
        store.clone(),
        crate::node::engine_config(config),
    )
    .await
    .context("opening the projection engine")?;
    let policy = registre_app::erasure::RetentionPolicy {
        account_days: config.account_retention_days,
        access_log: config.access_log_retention,
    };
    let report =
        registre_app::erasure::apply_retention(&store, &engine, &policy, chrono::Utc::now())
            .await
            .map_err(|e| anyhow::anyhow!("applying the retention periods: {e}"))?;
    println!(
        "erased {} person(s) whose account was closed {} days ago or more (log position {}); \
         purged {} read-access records older than {}",
        report.erased.len(),
        policy.account_days,
        report.position,
        report.access_records_purged,
        report.access_log_purged_before.to_rfc3339()
    );
    for person in &report.erased {
        println!("erased {}", person.0);
    }
    println!(
        "erased {} sanction(s) whose day to leave the record had come (Code de l'éducation R511-13)",
        report.sanctions_erased.len()
    );
    for sanction in &report.sanctions_erased {
        println!("erased sanction {}", sanction.0);
    }
    Ok(())
}

/// A projection engine caught up with the log, for the commands that read
/// the roster (the operator, the person).
async fn caught_up_engine(
    config: &Config,
    store: &Arc<dyn EventStore>,
) -> anyhow::Result<(registre_projections::ProjectionEngine, u64)> {
    let engine = registre_projections::ProjectionEngine::open(
        store.clone(),
        crate::node::engine_config(config),
    )
    .await
    .context("opening the projection engine")?;
    let position = engine
        .catch_up()
        .await
        .context("catching the read model up with the log")?;
    Ok((engine, position))
}

async fn export_person(
    config: &Config,
    id: uuid::Uuid,
    out: Option<&std::path::Path>,
    operator: &str,
) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let (engine, position) = caught_up_engine(config, &store).await?;
    let operator =
        registre_app::erasure::operator(&engine, operator).map_err(|e| anyhow::anyhow!("{e}"))?;
    let person = registre_domain::PersonId(id);
    let doc =
        registre_app::export::person_data_for_operator(store.as_ref(), &engine, &operator, person)
            .await
            .map_err(|e| anyhow::anyhow!("exporting person {id}: {e}"))?;
    let text = serde_json::to_string_pretty(&doc).context("encoding the document")?;
    // Ids only in the operator's log: the document itself is personal data.
    tracing::info!(person = %id, operator = %operator.person.0, position, "subject access export");
    write_output(out, &text)?;
    if let Some(path) = out {
        eprintln!(
            "exported person {id} as of log position {position} to {}",
            path.display()
        );
    }
    Ok(())
}

/// `export lsu`: the national exports read first (a bad file refuses the
/// run before the store is opened), then the bilans of the period.
async fn export_lsu(config: &Config, args: &LsuArgs) -> anyhow::Result<()> {
    use registre_app::import;
    let read = |path: &std::path::Path, source| -> anyhow::Result<Vec<(String, import::Export)>> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        import::load(
            source,
            vec![import::Input {
                name: path.display().to_string(),
                bytes,
            }],
            &mut |_, _| {},
        )
        .map_err(|e| anyhow::anyhow!("{e}; nothing was written"))
    };
    let mut exports = read(&args.siecle, import::Source::Siecle)?;
    exports.extend(read(&args.sts, import::Source::Sts)?);
    let store = open_store(config).await?;
    let app_config = registre_app::AppConfig {
        engine: crate::node::engine_config(config),
        ..registre_app::AppConfig::default()
    };
    let app = registre_app::App::new(store, app_config)
        .await
        .map_err(|e| anyhow::anyhow!("starting the application: {e}"))?;
    let outcome = async {
        app.consistent()
            .await
            .map_err(|e| anyhow::anyhow!("catching the read model up with the log: {e}"))?;
        let operator = registre_app::erasure::operator(app.engine(), &args.operator)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let period = registre_domain::PeriodId(args.period);
        registre_app::export::lsu::for_operator(
            &app,
            &operator,
            args.establishment.trim(),
            period,
            &exports,
        )
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "exporting LSU for {}: {e}; nothing was written",
                args.establishment
            )
        })
    }
    .await;
    app.shutdown().await;
    let lsu = outcome?;
    std::fs::write(&args.out, &lsu.xml)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{} bilan(s) of period {} written to {}",
        lsu.cards.len(),
        args.period,
        args.out.display()
    );
    Ok(())
}

async fn forget(config: &Config, args: ForgetArgs) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let (engine, _) = caught_up_engine(config, &store).await?;
    let operator = registre_app::erasure::operator(&engine, &args.operator)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let person = registre_domain::PersonId(args.id);
    let erased =
        registre_app::erasure::forget_for_operator(&store, &operator, person, &args.reason)
            .await
            .map_err(|e| anyhow::anyhow!("erasing person {}: {e}", args.id))?;
    if erased {
        println!("erased person {}", args.id);
    } else {
        println!("person {} was already erased; nothing written", args.id);
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let server = crate::node::serve(&config, store, shutdown_signal()).await?;
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
    let assigned = registre_projections::backfill_partitions(store.as_ref(), 5_000)
        .await
        .context("giving partitions to events written before migration 0007")?;
    if assigned > 0 {
        println!("gave a partition to {assigned} events written before partitions existed");
    }
    if applied.is_empty() {
        println!("the schema is up to date; the log holds {head} events");
    } else {
        println!("applied migrations {applied:?}; the log holds {head} events");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogFormat;

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
        let replay = Cli::try_parse_from([
            "registre",
            "replay",
            "--until",
            "2026-03-15T00:00:00+01:00",
            "--out",
            "/tmp/r",
        ])
        .expect("valid");
        match replay.command {
            Command::Replay(args) => {
                assert_eq!(args.until.to_rfc3339(), "2026-03-15T00:00:00+01:00")
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(
            Cli::try_parse_from(["registre", "replay", "--until", "yesterday", "--out", "x"])
                .is_err()
        );
        assert!(matches!(
            Cli::try_parse_from(["registre", "projections", "rebuild", "read_model"])
                .expect("valid")
                .command,
            Command::Projections(ProjectionsCommand::Rebuild { name: Some(_) })
        ));
        assert!(matches!(
            Cli::try_parse_from(["registre", "audit", "verify"])
                .expect("valid")
                .command,
            Command::Audit(AuditCommand::Verify { ref checkpoints }) if checkpoints.is_empty()
        ));
        match Cli::try_parse_from([
            "registre",
            "audit",
            "verify",
            "--checkpoint",
            "a.json",
            "--checkpoint",
            "b.json",
        ])
        .expect("valid")
        .command
        {
            Command::Audit(AuditCommand::Verify { checkpoints }) => assert_eq!(
                checkpoints,
                [PathBuf::from("a.json"), PathBuf::from("b.json")]
            ),
            other => panic!("parsed as {other:?}"),
        }
        assert!(matches!(
            Cli::try_parse_from(["registre", "audit", "checkpoint", "--out", "c.json"])
                .expect("valid")
                .command,
            Command::Audit(AuditCommand::Checkpoint { out: Some(_) })
        ));
        assert!(matches!(
            Cli::try_parse_from(["registre", "retention", "apply"])
                .expect("valid")
                .command,
            Command::Retention(RetentionCommand::Apply)
        ));
        let export = Cli::try_parse_from([
            "registre",
            "export",
            "person",
            "0190f0a0-0000-7000-8000-000000000001",
            "--out",
            "/tmp/p.json",
            "--operator",
            "dpo",
        ])
        .expect("valid");
        match export.command {
            Command::Export(ExportCommand::Person { id, out, operator }) => {
                assert_eq!(id.to_string(), "0190f0a0-0000-7000-8000-000000000001");
                assert_eq!(out, Some(PathBuf::from("/tmp/p.json")));
                assert_eq!(operator, "dpo");
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from([
            "registre",
            "export",
            "person",
            "not-a-uuid",
            "--operator",
            "dpo"
        ])
        .is_err());
        let forget = Cli::try_parse_from([
            "registre",
            "forget",
            "0190f0a0-0000-7000-8000-000000000001",
            "--reason",
            "demande RGPD n° 12",
            "--operator",
            "admin",
        ])
        .expect("valid");
        match forget.command {
            Command::Forget(args) => {
                assert_eq!(args.reason, "demande RGPD n° 12");
                assert_eq!(args.operator, "admin");
            }
            other => panic!("parsed as {other:?}"),
        }
        // The reason is mandatory.
        assert!(Cli::try_parse_from([
            "registre",
            "forget",
            "0190f0a0-0000-7000-8000-000000000001",
            "--operator",
            "admin"
        ])
        .is_err());
    }

    #[test]
    fn import_takes_files_a_dry_run_and_an_operator() {
        let cli = Cli::try_parse_from([
            "registre",
            "import",
            "siecle",
            "--dry-run",
            "eleves.zip",
            "responsables.xml",
            "--operator",
            "proviseur",
        ])
        .expect("valid");
        match cli.command {
            Command::Import(ImportCommand::Siecle { files, run }) => {
                assert_eq!(
                    files,
                    [
                        PathBuf::from("eleves.zip"),
                        PathBuf::from("responsables.xml")
                    ]
                );
                assert!(run.dry_run);
                assert_eq!(run.operator, "proviseur");
            }
            other => panic!("parsed as {other:?}"),
        }
        // At least one file; STS takes exactly one.
        assert!(Cli::try_parse_from(["registre", "import", "siecle", "--operator", "p"]).is_err());
        assert!(Cli::try_parse_from([
            "registre",
            "import",
            "sts",
            "a.xml",
            "b.xml",
            "--operator",
            "p"
        ])
        .is_err());
    }

    // interop (issue 17)
    #[test]
    fn export_lsu_takes_a_period_the_national_exports_and_an_operator() {
        let cli = Cli::try_parse_from([
            "registre",
            "export",
            "lsu",
            "--establishment",
            "0691234X",
            "--period",
            "0190f0a0-0000-7000-8000-000000000009",
            "--out",
            "bilans.xml",
            "--siecle",
            "eleves.zip",
            "--sts",
            "sts.xml",
            "--operator",
            "proviseur",
        ])
        .expect("valid");
        match cli.command {
            Command::Export(ExportCommand::Lsu(args)) => {
                assert_eq!(args.establishment, "0691234X");
                assert_eq!(
                    args.period.to_string(),
                    "0190f0a0-0000-7000-8000-000000000009"
                );
                assert_eq!(args.out, PathBuf::from("bilans.xml"));
                assert_eq!(args.siecle, PathBuf::from("eleves.zip"));
                assert_eq!(args.sts, PathBuf::from("sts.xml"));
                assert_eq!(args.operator, "proviseur");
            }
            other => panic!("parsed as {other:?}"),
        }
        // The SIECLE export is required: LSU names students by its keys.
        assert!(Cli::try_parse_from([
            "registre",
            "export",
            "lsu",
            "--establishment",
            "0691234X",
            "--period",
            "0190f0a0-0000-7000-8000-000000000009",
            "--out",
            "bilans.xml",
            "--sts",
            "sts.xml",
            "--operator",
            "p"
        ])
        .is_err());
    }

    #[test]
    fn settings_are_flags_of_every_command_in_any_position() {
        for argv in [
            ["registre", "serve", "--max-batch", "3"],
            ["registre", "--max-batch", "3", "serve"],
        ] {
            let cli = Cli::try_parse_from(argv).expect("valid");
            assert!(matches!(cli.command, Command::Serve));
            assert_eq!(cli.settings.requests.max_batch, 3, "{argv:?}");
        }
        let cli = Cli::try_parse_from(["registre", "audit", "verify", "--log-format", "json"])
            .expect("valid");
        assert_eq!(cli.settings.records.log_format, LogFormat::Json);
    }

    #[test]
    fn a_bad_setting_is_refused_naming_its_variable_and_flag() {
        let err = Cli::try_parse_from(["registre", "serve", "--max-in-flight", "abc"])
            .expect_err("refused");
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        let text = err.to_string();
        assert!(
            text.contains("REGISTRE_MAX_IN_FLIGHT (--max-in-flight)")
                && text.contains("expected a non-negative whole number"),
            "{text}"
        );
        let err = Cli::try_parse_from([
            "registre",
            "migrate",
            "--database-url",
            "mysql://u:secret@db/registre",
        ])
        .expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("DATABASE_URL") && !text.contains("secret"),
            "{text}"
        );
    }

    #[test]
    fn serve_help_lists_the_settings_with_their_variables_and_defaults() {
        let mut command = Cli::command();
        command.build();
        let serve = command
            .find_subcommand_mut("serve")
            .expect("a serve command");
        let help = serve.render_long_help().to_string();
        for expected in [
            "--max-in-flight <N>",
            "env: REGISTRE_MAX_IN_FLIGHT",
            "--listen <ADDR>",
            "env: REGISTRE_LISTEN",
            "[default: 127.0.0.1:8080]",
            "env: DATABASE_URL",
            "[default: 1000]",
            "Admission control:",
        ] {
            assert!(help.contains(expected), "no {expected:?} in\n{help}");
        }
    }
}
