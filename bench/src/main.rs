//! `registre-bench`: the benchmarks of issue 6 as one binary, run by
//! `scripts/bench` (documented in docs/benchmarks.md). Each benchmark prints
//! its numbers and its ratios to the targets it is compared with; nothing here
//! is a timed test.

/// The node's allocator, so that in-process folds and decodes measure what a
/// node does; `--features system-allocator` measures glibc's for comparison
/// (decision 0025).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod api;
mod db;
mod gen;
mod growth;
mod import;
mod live;
mod node;
// communication (issue 16)
mod notify;
mod rebuild;
// scale (issue 12)
mod region;
// school day (issue 13)
mod reportcards;
mod rollcall;
mod sinks;
mod stats;
mod surge;
mod throughput;
mod wire;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "registre-bench", about = "Registre's benchmarks (issue 6)")]
struct Cli {
    /// A PostgreSQL server where this user may create databases; each benchmark
    /// runs in a fresh database of its own, dropped afterwards.
    #[arg(
        long,
        env = "REGISTRE_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        global = true
    )]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generates a demo-shaped log and prints its composition.
    Generate {
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long, default_value_t = 2026)]
        seed: u64,
    },
    /// Single-event command throughput against raw INSERT, esrs and cqrs-es.
    Throughput(ThroughputArgs),
    /// Projection rebuild rate from memory and from each store.
    Rebuild {
        /// Events in the generated log.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Only the in-memory fold (no store).
        #[arg(long)]
        memory_only: bool,
        /// Only PostgreSQL's figures (no in-memory fold, no SQLite).
        #[arg(long, conflicts_with = "memory_only")]
        postgres_only: bool,
        /// Keep the PostgreSQL log in the database of this name: seeded when
        /// empty, reused when it holds exactly `--events` events (a 10^7 log
        /// takes minutes to write; A/B runs of builds read the same one).
        #[arg(long)]
        keep: Option<String>,
    },
    /// Absence -> guardian subscription latency over WebSockets.
    Live {
        /// Concurrent subscribers (runs once per value).
        #[arg(long, value_delimiter = ',', default_value = "1000")]
        subscribers: Vec<usize>,
        /// Absences reported during the measurement (one every 20 ms).
        #[arg(long, default_value_t = 300)]
        absences: usize,
    },
    /// Command, dashboard and rebuild cost as the log grows.
    Growth {
        /// Log sizes, in events (each loaded into its own fresh database).
        #[arg(long, value_delimiter = ',', default_value = "100000,1000000,10000000")]
        sizes: Vec<usize>,
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Events per append_batch transaction while loading.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// Seconds of single-writer commands per size.
        #[arg(long, default_value_t = 3.0)]
        command_seconds: f64,
        /// Dashboard requests per size (after 50 warm-up requests).
        #[arg(long, default_value_t = 300)]
        dashboards: usize,
        /// Run verify_chain over logs up to this many events.
        #[arg(long, default_value_t = 1_000_000)]
        verify_up_to: usize,
    },
    /// Parent dashboard over HTTP: closed-loop rps and open-loop latency.
    Api {
        /// Closed-loop concurrencies.
        #[arg(long, value_delimiter = ',', default_value = "8,64")]
        concurrency: Vec<usize>,
        /// Open-loop offered rates, requests per second.
        #[arg(long, value_delimiter = ',', default_value = "50,500")]
        rates: Vec<f64>,
        /// Seconds per load.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// A node offered 1x, 3x and 10x its capacity (dashboards and roll calls
    /// from clients that retry after 429), and at 8 to 2,000 connections.
    Surge(surge::SurgeArgs),
    /// The 8:05 peak: 28-student roll calls by concurrent teachers against
    /// one reportAbsence each (issue 13).
    Rollcall {
        /// Concurrent teachers (runs once per value).
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        teachers: Vec<usize>,
        /// Requests of each kind per teacher.
        #[arg(long, default_value_t = 50)]
        per_teacher: usize,
    },
    /// Notifications at 8:05 (issue 16): a roll call per class of a
    /// collège at once, its absences told to every guardian by Web Push
    /// and e-mail through real local servers; latency and exactly once.
    Notify(notify::NotifyArgs),
    /// The council week (issue 14): every report card of a 600-student
    /// collège through GraphQL, then every PDF bulletin.
    Reportcards {
        /// Requests in flight.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// A region of establishments on 1, 2 and 4 nodes sharing PostgreSQL
    /// (issue 12): memory, starts, forwarded dashboards, live across nodes.
    Region(region::RegionArgs),
    /// A lycée's SIECLE and STS-Web exports: first import, then 5 % changed.
    Import {
        /// Students in the generated lycée.
        #[arg(long, default_value_t = 2_000)]
        students: usize,
    },
}

#[derive(Debug, clap::Args)]
struct ThroughputArgs {
    /// Concurrent writers, each on its own stream.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    writers: Vec<usize>,
    /// Seconds measured per target and writer count.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Stream lengths before the measured appends (0: a new stream per command).
    #[arg(long, value_delimiter = ',', default_value = "0,1000")]
    preload: Vec<u64>,
    /// Targets to run, among registre, raw, esrs, cqrs-es, registre-batch.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "registre,raw,esrs,cqrs-es,registre-batch"
    )]
    targets: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    // The engine's own log lines (a fold's phases, say) on stderr, filtered
    // as a node's are: `REGISTRE_LOG=info registre-bench rebuild ...`.
    if let Ok(filter) = std::env::var("REGISTRE_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }
    match cli.command {
        Command::Generate { events, seed } => {
            let config = gen::GenConfig {
                seed,
                ..gen::GenConfig::default()
            };
            let started = std::time::Instant::now();
            let (log, summary) = gen::generate(&config, events);
            println!(
                "{} events in {:.2?}: {} establishments, {} classes, {} students",
                log.len(),
                started.elapsed(),
                summary.establishments,
                summary.classes,
                summary.students
            );
            for (t, n) in &summary.by_type {
                println!(
                    "  {t:<26} {n:>9}  {:>6.2} / student",
                    *n as f64 / summary.students.max(1) as f64
                );
            }
        }
        Command::Throughput(args) => run_throughput(&cli.database_url, &args).await?,
        Command::Rollcall {
            teachers,
            per_teacher,
        } => {
            let rows = rollcall::run(&cli.database_url, &teachers, per_teacher).await?;
            rollcall::print(&rows);
        }
        Command::Notify(args) => {
            let report = notify::run(&cli.database_url, &args).await?;
            notify::print(&report);
        }
        Command::Reportcards { concurrency } => {
            let report = reportcards::run(&cli.database_url, concurrency.max(1)).await?;
            reportcards::print(&report);
        }
        Command::Surge(args) => {
            let report = surge::run(&cli.database_url, &args).await?;
            surge::print(&report, &args);
        }
        Command::Rebuild {
            events,
            seed,
            memory_only,
            postgres_only,
            keep,
        } => {
            run_rebuild(
                &cli.database_url,
                events,
                seed,
                memory_only,
                postgres_only,
                keep.as_deref(),
            )
            .await?
        }
        Command::Live {
            subscribers,
            absences,
        } => {
            let mut results = Vec::new();
            for n in subscribers {
                let r = live::run(&cli.database_url, n, absences).await?;
                eprintln!("  {n} subscribers: p50 {:.2?} p99 {:.2?}", r.p50, r.p99);
                results.push(r);
            }
            println!();
            println!("| subscribers | absences | notifications received / owed | p50 ms | p99 ms | max ms | server open subscriptions | server RSS before -> after | server RSS per subscriber | goal p99 < 50 ms | goal < 30 KB / subscriber |");
            println!("|---|---|---|---|---|---|---|---|---|---|---|");
            for r in &results {
                let per = r.rss_per_subscriber();
                println!(
                    "| {} | {} | {} / {} | {:.2} | {:.2} | {:.2} | {} | {:.1} -> {:.1} MB | {:.1} KB | {} | {} |",
                    r.subscribers,
                    r.absences,
                    r.deliveries,
                    r.expected,
                    r.p50.as_secs_f64() * 1e3,
                    r.p99.as_secs_f64() * 1e3,
                    r.max.as_secs_f64() * 1e3,
                    r.open_subscriptions
                        .map_or_else(|| "?".to_owned(), |n| n.to_string()),
                    r.rss_before as f64 / 1e6,
                    r.rss_after as f64 / 1e6,
                    per / 1e3,
                    if r.p99 < Duration::from_millis(50) { "met" } else { "missed" },
                    if per < 30e3 { "met" } else { "missed" },
                );
            }
            println!();
            for r in &results {
                println!(
                    "{} subscribers: the warm-up absences alone, before any subscriber, grew the server's RSS by {:.1} MB",
                    r.subscribers,
                    r.rss_warmup_alone as f64 / 1e6
                );
            }
        }
        Command::Growth {
            sizes,
            seed,
            batch,
            command_seconds,
            dashboards,
            verify_up_to,
        } => {
            let options = growth::GrowthOptions {
                seed,
                batch,
                command_seconds,
                dashboards,
                verify_up_to,
            };
            let mut rows = Vec::new();
            for size in sizes {
                rows.push(growth::run(&cli.database_url, size, &options).await?);
            }
            print_growth(&rows);
        }
        Command::Region(args) => {
            let report = region::run(&cli.database_url, &args).await?;
            region::print(&report, &args);
        }
        Command::Import { students } => {
            let runs = import::run(&cli.database_url, students).await?;
            println!();
            println!("Roster import, a {students}-student lycée (PostgreSQL)");
            println!("| run | changes | events written | seconds |");
            println!("|---|---|---|---|");
            for r in &runs {
                println!(
                    "| {} | {} | {} | {:.2} |",
                    r.label, r.changes, r.events, r.seconds
                );
            }
            if let [first, _, _, changed] = runs.as_slice() {
                let ratio = changed.seconds / first.seconds.max(f64::EPSILON);
                println!(
                    "5 % re-import / first import: {:.1} % (goal under 10 %: {})",
                    ratio * 100.0,
                    if ratio < 0.10 { "met" } else { "missed" }
                );
            }
        }
        Command::Api {
            concurrency,
            rates,
            seconds,
        } => {
            let (setup, results) =
                api::run(&cli.database_url, &concurrency, &rates, seconds).await?;
            println!();
            println!(
                "Parent dashboard over HTTP ({} events in the log, {} guardians, PostgreSQL)",
                setup.events, setup.guardians
            );
            println!("| load | requests | req/s | p50 ms | p99 ms | max ms | CPU ms / request (process) | goal p99 < 10 ms at 500 req/s |");
            println!("|---|---|---|---|---|---|---|---|");
            for r in &results {
                let goal = if r.label.starts_with("open loop, 500 ") {
                    if r.p99 < Duration::from_millis(10) {
                        "met"
                    } else {
                        "missed"
                    }
                } else {
                    ""
                };
                let cpu = r
                    .cpu_per_request
                    .map(|c| format!("{:.2}", c.as_secs_f64() * 1e3))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {cpu} | {goal} |",
                    r.label,
                    r.requests,
                    r.rps(),
                    r.p50.as_secs_f64() * 1e3,
                    r.p99.as_secs_f64() * 1e3,
                    r.max.as_secs_f64() * 1e3
                );
            }
        }
    }
    Ok(())
}

async fn run_throughput(url: &str, args: &ThroughputArgs) -> Result<()> {
    let duration = Duration::from_secs_f64(args.seconds);
    let mut results = Vec::new();
    for &preload in &args.preload {
        for &writers in &args.writers {
            for target in &args.targets {
                let db = db::fresh(url, &target.replace('-', "_")).await?;
                let mut registre_store = None;
                let mut grouping = None;
                let mut per_op = 1;
                let ws = match target.as_str() {
                    "registre" | "registre-batch" => {
                        let options = registre_store::postgres::PostgresOptions {
                            pool_size: writers,
                            migrate: true,
                        };
                        match registre_store::PostgresStore::connect_with(&db.url, options).await {
                            Ok(store) => {
                                grouping = Some(store.clone());
                                let store: Arc<dyn registre_store::EventStore> = store;
                                registre_store = Some(store.clone());
                                if target == "registre" {
                                    throughput::registre_writers(store, writers, preload).await
                                } else if preload == 0 {
                                    per_op = throughput::BATCH;
                                    Ok(throughput::registre_batch_writers(store, writers))
                                } else {
                                    // Batches write new streams: a preloaded run says nothing more.
                                    drop(store);
                                    db.drop_db().await?;
                                    continue;
                                }
                            }
                            Err(e) => Err(e.into()),
                        }
                    }
                    "raw" => throughput::raw_writers(&db, writers, preload).await,
                    "esrs" => throughput::esrs_writers(&db, writers, preload).await,
                    "cqrs-es" => throughput::cqrs_writers(&db, writers, preload).await,
                    other => Err(anyhow::anyhow!("unknown target {other}")),
                };
                let m = match ws {
                    Ok(ws) => throughput::drive(target, preload, per_op, ws, duration).await,
                    Err(e) => Err(e),
                };
                // How well group commit grouped: appends per transaction.
                let grouped = grouping.take().map(|store| {
                    let stats = store.append_stats();
                    stats.requests as f64 / stats.calls.max(1) as f64
                });
                // The store's pool and listener must let go before DROP DATABASE.
                drop(registre_store);
                db.drop_db().await?;
                let m = m?;
                eprintln!(
                    "  {:<14} preload {:>5} writers {:>2}: {:>8.0} commits/s {:>8.0} events/s  p50 {:>7.2?}  p99 {:>7.2?}",
                    m.target,
                    m.preload,
                    m.writers,
                    m.ops_per_sec(),
                    m.events_per_sec(),
                    m.p50,
                    m.p99
                );
                if let Some(per_commit) = grouped {
                    eprintln!("  {:<14} {per_commit:.1} appends per commit", "");
                }
                results.push(m);
            }
        }
    }
    print_throughput(&results, args);
    Ok(())
}

fn print_growth(rows: &[growth::GrowthRow]) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!();
    println!("| events in the log | load s | load events/s | database | chain | commands | command p50 ms | command p99 ms | dashboard p50 ms | dashboard p99 ms | rebuild s | rebuild events/s | snapshot | node ready s |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let (d50, d99) = match r.dashboard {
            Some((p50, p99)) => (format!("{:.2}", ms(p50)), format!("{:.2}", ms(p99))),
            None => ("-".to_owned(), "-".to_owned()),
        };
        println!(
            "| {} | {:.1} | {:.0} | {:.2} GB | {} | {} | {:.2} | {:.2} | {d50} | {d99} | {:.1} | {:.0} | {} | {} |",
            r.size,
            r.load.as_secs_f64(),
            r.load_rate(),
            r.db_bytes as f64 / 1e9,
            match r.chain_intact {
                Some(true) => "verified",
                Some(false) => "BROKEN",
                None => "-",
            },
            r.commands,
            ms(r.command_p50),
            ms(r.command_p99),
            r.rebuild.as_secs_f64(),
            r.rebuild_rate(),
            match &r.snapshot {
                Ok(bytes) => format!("{:.0} MB", *bytes as f64 / 1e6),
                Err(_) => "not saved".to_owned(),
            },
            r.node_start
                .map_or_else(|| "-".to_owned(), |d| format!("{:.1}", d.as_secs_f64())),
        );
    }
    for r in rows {
        if let Err(e) = &r.snapshot {
            println!();
            println!("{}: the rebuild could not save its snapshot ({e}); no node was started, so the dashboard is not measured at this size.", r.size);
        }
    }
    // Flat means the largest log's latency within a small factor of the
    // smallest's; linear means a constant rebuild rate.
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        if rows.len() > 1 {
            println!();
            println!(
                "{}x the events: command p99 x{:.2}, rebuild time x{:.2} (linear: x{:.2})",
                last.size / first.size.max(1),
                ms(last.command_p99) / ms(first.command_p99).max(1e-9),
                last.rebuild.as_secs_f64() / first.rebuild.as_secs_f64().max(1e-9),
                last.size as f64 / first.size.max(1) as f64
            );
        }
    }
}

fn print_throughput(results: &[throughput::Measurement], args: &ThroughputArgs) {
    let rate = |target: &str, preload: u64, writers: usize| {
        results
            .iter()
            .find(|m| m.target == target && m.preload == preload && m.writers == writers)
            .map(|m| m.events_per_sec())
    };
    let subject = if args.targets.iter().any(|t| t == "registre") {
        "registre"
    } else {
        "raw"
    };
    let peers: Vec<&String> = args
        .targets
        .iter()
        .filter(|t| t.as_str() != subject && t.as_str() != "registre-batch")
        .collect();
    let batch_vs_raw = args.targets.iter().any(|t| t == "registre-batch")
        && args.targets.iter().any(|t| t == "raw");
    println!();
    print!("| stream before | writers |");
    for t in &args.targets {
        print!(" {t} events/s |");
    }
    for p in &peers {
        print!(" {subject} / {p} |");
    }
    if batch_vs_raw {
        print!(" registre-batch / raw |");
    }
    println!();
    println!(
        "|{}",
        "---|".repeat(2 + args.targets.len() + peers.len() + usize::from(batch_vs_raw))
    );
    for &preload in &args.preload {
        for &writers in &args.writers {
            print!("| {preload} | {writers} |");
            for t in &args.targets {
                match rate(t, preload, writers) {
                    Some(r) => print!(" {r:.0} |"),
                    None => print!(" - |"),
                }
            }
            for p in &peers {
                match (rate(subject, preload, writers), rate(p, preload, writers)) {
                    (Some(a), Some(b)) if b > 0.0 => print!(" {:.2}x |", a / b),
                    _ => print!(" - |"),
                }
            }
            if batch_vs_raw {
                match (
                    rate("registre-batch", preload, writers),
                    rate("raw", preload, writers),
                ) {
                    (Some(a), Some(b)) if b > 0.0 => print!(" {:.2}x |", a / b),
                    _ => print!(" - |"),
                }
            }
            println!();
        }
    }
}

async fn run_rebuild(
    url: &str,
    events: usize,
    seed: u64,
    memory_only: bool,
    postgres_only: bool,
    keep: Option<&str>,
) -> Result<()> {
    let kept = match keep {
        Some(name) => Some(db::kept(url, name).await?),
        None => None,
    };
    let already_seeded = match &kept {
        Some(kept_url) => {
            let store: Arc<dyn registre_store::EventStore> =
                registre_store::PostgresStore::connect(kept_url).await?;
            let head = store.head().await?;
            anyhow::ensure!(
                head == 0 || head == events as u64,
                "database {} holds {head} events, not {events}: drop it or name another",
                keep.unwrap_or_default()
            );
            head != 0
        }
        None => false,
    };
    let log = if already_seeded && postgres_only {
        Vec::new()
    } else {
        let started = std::time::Instant::now();
        let log = rebuild::generate_log(events, seed);
        eprintln!(
            "generated {} events in {:.2?}",
            log.len(),
            started.elapsed()
        );
        log
    };
    let mut rates = Vec::new();
    if !postgres_only {
        rates.push(rebuild::pure_fold(&log, seed)?);
        eprintln!("  {}: {:.0} events/s", rates[0].label, rates[0].per_sec());
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        rates.push(rebuild::parallel_fold(&log, seed, threads)?);
        eprintln!("  {}: {:.0} events/s", rates[1].label, rates[1].per_sec());
        let s = rebuild::slice_snapshots(&log, seed)?;
        println!();
        println!("Snapshot, one row per partition (zstd MessagePack): {} rows; directory {:.1} MB, largest establishment {:.1} MB, all {:.1} MB ({:.1} MB as JSON); split {:.2} s, encode {:.2} s, decode {:.2} s, join {:.2} s (one thread)",
            s.partitions,
            s.directory as f64 / 1e6,
            s.largest as f64 / 1e6,
            s.total as f64 / 1e6,
            s.json_total as f64 / 1e6,
            s.split.as_secs_f64(),
            s.encode.as_secs_f64(),
            s.decode.as_secs_f64(),
            s.join.as_secs_f64(),
        );
    }
    if !memory_only {
        let on_postgres = async |db_url: &str| -> Result<Vec<rebuild::FoldRate>> {
            let store: Arc<dyn registre_store::EventStore> =
                registre_store::PostgresStore::connect(db_url).await?;
            let mut rates = Vec::new();
            if already_seeded {
                eprintln!("  postgres: reusing the {events} events of the kept database");
                // The snapshots a previous run saved would make the first
                // start a start from snapshots.
                registre_store::testing::connect(db_url)
                    .await?
                    .batch_execute("DELETE FROM snapshots")
                    .await?;
            } else {
                let seeded = rebuild::seed_store(&*store, &log, seed, 5_000).await?;
                eprintln!(
                    "  postgres {}: {:.0} events/s",
                    seeded.label,
                    seeded.per_sec()
                );
                rates.push(rebuild::FoldRate {
                    label: format!("PostgreSQL: {}", seeded.label),
                    ..seeded
                });
            }
            let folded = rebuild::engine_rebuild(store, "PostgreSQL").await?;
            for f in &folded {
                eprintln!("  {}: {:.0} events/s", f.label, f.per_sec());
            }
            rates.extend(folded);
            Ok(rates)
        };
        let pg = match &kept {
            Some(kept_url) => on_postgres(kept_url).await?,
            None => db::with_fresh(url, "rebuild", async |db| on_postgres(&db.url).await).await?,
        };
        rates.extend(pg);
    }
    if !memory_only && !postgres_only {
        let dir = tempfile::tempdir()?;
        let store: Arc<dyn registre_store::EventStore> =
            registre_store::SqliteStore::open(dir.path()).await?;
        let seeded = rebuild::seed_store(&*store, &log, seed, 5_000).await?;
        eprintln!(
            "  sqlite {}: {:.0} events/s",
            seeded.label,
            seeded.per_sec()
        );
        let folded = rebuild::engine_rebuild(store, "SQLite").await?;
        for f in &folded {
            eprintln!("  {}: {:.0} events/s", f.label, f.per_sec());
        }
        rates.push(rebuild::FoldRate {
            label: format!("SQLite: {}", seeded.label),
            ..seeded
        });
        rates.extend(folded);
    }
    println!();
    println!("| source | events | seconds | events/s | goal 200,000/s |");
    println!("|---|---|---|---|---|");
    for r in &rates {
        println!(
            "| {} | {} | {:.2} | {:.0} | {} |",
            r.label,
            r.events,
            r.elapsed.as_secs_f64(),
            r.per_sec(),
            if r.label.contains("seeding") {
                "n/a (write path)"
            } else if r.per_sec() >= 200_000.0 {
                "met"
            } else {
                "missed"
            }
        );
    }
    Ok(())
}
