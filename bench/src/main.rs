//! `registre-bench`: the benchmarks of issue 6 as one binary, run by
//! `scripts/bench` (documented in docs/benchmarks.md). Each benchmark prints
//! its numbers and its ratios to the targets it is compared with; nothing here
//! is a timed test.

mod db;
mod gen;
mod rebuild;
mod throughput;

use anyhow::Result;
use clap::{Parser, Subcommand};
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
    /// Targets to run, among registre, raw, esrs, cqrs-es.
    #[arg(long, value_delimiter = ',', default_value = "raw,esrs,cqrs-es")]
    targets: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
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
        Command::Rebuild { events, seed } => run_rebuild(events, seed)?,
    }
    Ok(())
}

async fn run_throughput(url: &str, args: &ThroughputArgs) -> Result<()> {
    let duration = Duration::from_secs_f64(args.seconds);
    let mut results = Vec::new();
    for &preload in &args.preload {
        for &writers in &args.writers {
            for target in &args.targets {
                let db = db::FreshDb::create(url, &target.replace('-', "_")).await?;
                let ws = match target.as_str() {
                    "raw" => throughput::raw_writers(&db, writers, preload).await,
                    "esrs" => throughput::esrs_writers(&db, writers, preload).await,
                    "cqrs-es" => throughput::cqrs_writers(&db, writers, preload).await,
                    other => Err(anyhow::anyhow!("unknown target {other}")),
                };
                let m = match ws {
                    Ok(ws) => throughput::drive(target, preload, ws, duration).await,
                    Err(e) => Err(e),
                };
                db.drop_db().await?;
                let m = m?;
                eprintln!(
                    "  {:<9} preload {:>5} writers {:>2}: {:>8.0} ops/s  p50 {:>7.2?}  p99 {:>7.2?}",
                    m.target,
                    m.preload,
                    m.writers,
                    m.ops_per_sec(),
                    m.p50,
                    m.p99
                );
                results.push(m);
            }
        }
    }
    print_throughput(&results, args);
    Ok(())
}

fn print_throughput(results: &[throughput::Measurement], args: &ThroughputArgs) {
    let rate = |target: &str, preload: u64, writers: usize| {
        results
            .iter()
            .find(|m| m.target == target && m.preload == preload && m.writers == writers)
            .map(|m| m.ops_per_sec())
    };
    let subject = if args.targets.iter().any(|t| t == "registre") {
        "registre"
    } else {
        "raw"
    };
    let peers: Vec<&String> = args
        .targets
        .iter()
        .filter(|t| t.as_str() != subject)
        .collect();
    println!();
    print!("| stream before | writers |");
    for t in &args.targets {
        print!(" {t} ops/s |");
    }
    for p in &peers {
        print!(" {subject} / {p} |");
    }
    println!();
    println!("|{}", "---|".repeat(2 + args.targets.len() + peers.len()));
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
            println!();
        }
    }
}

fn run_rebuild(events: usize, seed: u64) -> Result<()> {
    let started = std::time::Instant::now();
    let log = rebuild::generate_log(events, seed);
    eprintln!(
        "generated {} events in {:.2?}",
        log.len(),
        started.elapsed()
    );
    let rates = vec![rebuild::pure_fold(&log, seed)?];
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
            if r.per_sec() >= 200_000.0 {
                "met"
            } else {
                "missed"
            }
        );
    }
    Ok(())
}
