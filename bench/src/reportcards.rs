//! The council week (issue 14): every report card of a 600-student collège,
//! through GraphQL and as PDF bulletins, on a real server over PostgreSQL.
//! One generated establishment (24 classes of 25), one period covering its
//! assessments, defined by the admin; each student's guardian asks for the
//! report card, then fetches its bulletin with the same token. Reported: report
//! cards per second (GraphQL), the time to fetch all 600 PDFs and their p50 and
//! p99 latency. Goal: all 600 PDFs in under 10 s.

use crate::api::start_node;
use crate::db::with_fresh;
use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use futures::stream::{self, StreamExt};
use registre_domain::DomainEvent;
use std::time::{Duration, Instant};

const REPORT_CARD: &str = r#"query($p: ID!) { myChildren { reportCard(periodId: $p) {
  subjects { subject teacher { displayName } average classAverage classMin classMax appreciation }
  overallAverage classOverallAverage rank classSize generalAppreciation
  halfDaysMissed unjustifiedHalfDays latenessCount final pdfUrl } } }"#;

#[derive(Debug)]
pub struct Report {
    pub cards: usize,
    pub concurrency: usize,
    pub graphql: Duration,
    pub pdfs: Duration,
    pub pdf_p50: Duration,
    pub pdf_p99: Duration,
    pub pdf_bytes: usize,
}

pub async fn run(admin_url: &str, concurrency: usize) -> Result<Report> {
    with_fresh(admin_url, "reportcards", async |db| {
        let node = start_node(db).await?;
        let establishment = node
            .log
            .iter()
            .find_map(|e| match &e.event {
                DomainEvent::EstablishmentCreated(x) => Some(x.establishment_id),
                _ => None,
            })
            .context("the generated establishment")?;
        let dates: Vec<NaiveDate> = node
            .log
            .iter()
            .filter_map(|e| match &e.event {
                DomainEvent::AssessmentCreated(a) => Some(a.date),
                _ => None,
            })
            .collect();
        let (first, last) = (
            dates.iter().min().context("assessments")?,
            dates.iter().max().context("assessments")?,
        );
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .build()?;
        let base = format!("http://{}", node.server.addr);
        let admin = node.token("bench-admin")?;
        let defined: serde_json::Value = client
            .post(format!("{base}/graphql"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({
                "query": "mutation($i: DefinePeriodsInput!) { definePeriods(input: $i) { id } }",
                "variables": {"i": {"establishmentId": establishment.to_string(), "periods": [
                    {"name": "Trimestre 1", "start": first.to_string(), "end": last.to_string()}
                ]}}
            }))
            .send()
            .await?
            .json()
            .await?;
        let period = defined["data"]["definePeriods"][0]["id"]
            .as_str()
            .with_context(|| format!("definePeriods: {defined}"))?
            .to_owned();
        let config = &node.gen_config;
        let mut tokens = Vec::new();
        for c in 0..config.classes_per_establishment {
            for i in 0..config.students_per_class {
                tokens.push(node.token(&format!("parent-0-{c}-{i}-0"))?);
            }
        }

        // Every report card through GraphQL.
        let started = Instant::now();
        let cards: Vec<Result<(String, String)>> = stream::iter(tokens.iter().cloned())
            .map(|token| {
                let client = client.clone();
                let url = format!("{base}/graphql");
                let period = period.clone();
                async move {
                    let answer: serde_json::Value = client
                        .post(url)
                        .bearer_auth(&token)
                        .json(
                            &serde_json::json!({"query": REPORT_CARD, "variables": {"p": period}}),
                        )
                        .send()
                        .await?
                        .json()
                        .await?;
                    let pdf = answer["data"]["myChildren"][0]["reportCard"]["pdfUrl"]
                        .as_str()
                        .with_context(|| format!("a report card: {answer}"))?
                        .to_owned();
                    Ok((token, pdf))
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let graphql = started.elapsed();
        let cards: Vec<(String, String)> = cards.into_iter().collect::<Result<_>>()?;

        // Every bulletin as a PDF.
        let started = Instant::now();
        let fetched: Vec<Result<(Duration, usize)>> = stream::iter(cards.iter().cloned())
            .map(|(token, path)| {
                let client = client.clone();
                let url = format!("{base}{path}");
                async move {
                    let t = Instant::now();
                    let response = client.get(url).bearer_auth(&token).send().await?;
                    let status = response.status();
                    let body = response.bytes().await?;
                    let elapsed = t.elapsed();
                    if !status.is_success() || !body.starts_with(b"%PDF-") {
                        bail!("bulletin failed ({status})");
                    }
                    Ok((elapsed, body.len()))
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let pdfs = started.elapsed();
        let fetched: Vec<(Duration, usize)> = fetched.into_iter().collect::<Result<_>>()?;
        let mut latencies: Vec<Duration> = fetched.iter().map(|f| f.0).collect();
        latencies.sort_unstable();
        let report = Report {
            cards: cards.len(),
            concurrency,
            graphql,
            pdfs,
            pdf_p50: crate::stats::percentile(&latencies, 0.50),
            pdf_p99: crate::stats::percentile(&latencies, 0.99),
            pdf_bytes: fetched.iter().map(|f| f.1).sum::<usize>() / fetched.len().max(1),
        };
        node.server.shutdown();
        node.server.stopped().await;
        Ok(report)
    })
    .await
}

pub fn print(r: &Report) {
    println!();
    println!(
        "The council week: every report card of a {}-student collège (PostgreSQL, {} requests in flight)",
        r.cards, r.concurrency
    );
    println!("| report cards | GraphQL s | report cards / s | all PDFs s | PDF p50 ms | PDF p99 ms | PDF size KB | goal: all PDFs < 10 s |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {} |",
        r.cards,
        r.graphql.as_secs_f64(),
        r.cards as f64 / r.graphql.as_secs_f64(),
        r.pdfs.as_secs_f64(),
        r.pdf_p50.as_secs_f64() * 1e3,
        r.pdf_p99.as_secs_f64() * 1e3,
        r.pdf_bytes as f64 / 1e3,
        if r.pdfs < Duration::from_secs(10) {
            "met"
        } else {
            "missed"
        },
    );
}
