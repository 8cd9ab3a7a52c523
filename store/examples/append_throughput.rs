//! Rough append throughput of both backends, for the decision records: not a
//! benchmark suite (those live with the benchmarks), a quick look at the cost
//! of serialised appends and the effect of batching.
//!
//! `cargo run --release -p registre-store --example append_throughput [postgres-admin-url]`

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use registre_store::{
    AppendRequest, EventMetadata, EventStore, ExpectedVersion, NewEvent, Partition, PostgresStore,
    SqliteStore,
};
use uuid::Uuid;

fn request(stream: String, n: usize) -> AppendRequest {
    AppendRequest {
        partition: Partition::directory(),
        stream_id: stream,
        expected: ExpectedVersion::Any,
        events: (0..n)
            .map(|i| NewEvent {
                event_id: Uuid::now_v7(),
                event_type: "GradeRecorded".into(),
                schema_version: 1,
                data: serde_json::json!({"score": 14.5, "outOf": 20, "student": Uuid::now_v7(), "i": i}),
                metadata: EventMetadata {
                    actor: None,
                    correlation_id: Uuid::now_v7(),
                    causation_id: None,
                    idempotency_key: None,
                    occurred_at: Utc::now(),
                    reason: None,
                },
            })
            .collect(),
        idempotency: None,
    }
}

async fn measure(name: &str, store: Arc<dyn EventStore>) -> anyhow::Result<()> {
    const SEQUENTIAL: usize = 300;
    let t = Instant::now();
    for i in 0..SEQUENTIAL {
        store.append(request(format!("seq-{}", i % 10), 1)).await?;
    }
    let e = t.elapsed();
    println!(
        "{name}: {SEQUENTIAL} sequential single-event appends: {:.0}/s ({:.2} ms each)",
        SEQUENTIAL as f64 / e.as_secs_f64(),
        e.as_secs_f64() * 1000.0 / SEQUENTIAL as f64
    );

    const WRITERS: usize = 8;
    const EACH: usize = 100;
    let t = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..EACH {
                    store.append(request(format!("conc-{w}"), 1)).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let e = t.elapsed();
    println!(
        "{name}: {WRITERS} writers x {EACH} appends: {:.0} appends/s",
        (WRITERS * EACH) as f64 / e.as_secs_f64()
    );

    const BATCH: usize = 1000;
    let t = Instant::now();
    let requests = (0..BATCH / 10)
        .map(|i| request(format!("batch-{i}"), 10))
        .collect();
    store.append_batch(requests).await?;
    let e = t.elapsed();
    println!(
        "{name}: one append_batch of {BATCH} events: {:.0} events/s",
        BATCH as f64 / e.as_secs_f64()
    );
    let t = Instant::now();
    let report = registre_store::verify_chain(store.as_ref(), |_| {}).await?;
    println!(
        "{name}: verify_chain of {} events: {:.0} events/s",
        report.events_checked,
        report.events_checked as f64 / t.elapsed().as_secs_f64()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    measure("sqlite", SqliteStore::open(dir.path()).await?).await?;

    let admin = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("registre_bench_{}", Uuid::new_v4().simple());
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => anyhow::bail!("admin URL has no database name"),
    };
    let result = async { measure("postgres", PostgresStore::connect(&url).await?).await }.await;
    client
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await?;
    result
}
