//! The lockdown Monday (issue 11): a node offered more than it can serve.
//!
//! A `registre serve` child process ([`ChildNode`]) on one generated
//! establishment (24 classes, 600 students and their guardians, a school
//! year), and from this process a mix of guardians' dashboards (the `api`
//! benchmark's query) and teachers' roll calls (`reportAbsence`), 90/10 by
//! default. Three measurements:
//!
//! 1. capacity: closed loop at 64 connections, admitted requests per second;
//! 2. surge levels: 1x, 3x and 10x that rate offered open-loop (requests
//!    leave on schedule whatever the earlier ones are doing), over at most
//!    2,000 connections, by clients that wait `Retry-After` and try again on
//!    a 429 (a bounded number of times), with a 10 s client time-out;
//! 3. fixed connections: closed loop at 8, 64, 512 and 2,000 connections,
//!    the issue's `wrk` figures.
//!
//! Per level: offered rate, admitted throughput, latency of admitted
//! requests, refusals (and whether each 429 said when to come back),
//! time-outs, other errors, and the node's `registre_access_log_dropped`
//! before and after. Every level is bounded in time: a request still waiting
//! for a connection or an answer at its time-out counts as a time-out.

use crate::gen::{self, GenConfig};
use crate::node::ChildNode;
use anyhow::{Context, Result};
use registre_domain::{PersonId, StudentId};
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What a guardian's home screen asks for (the `api` benchmark's query).
use crate::api::DASHBOARD;

const REPORT: &str =
    "mutation($input: ReportAbsenceInput!) { reportAbsence(input: $input) { id } }";

#[derive(Clone, Debug, clap::Args)]
pub struct SurgeArgs {
    /// Connections of the closed-loop run that measures capacity.
    #[arg(long, default_value_t = 64)]
    pub capacity_connections: usize,
    /// Seconds of the capacity run.
    #[arg(long, default_value_t = 10.0)]
    pub capacity_seconds: f64,
    /// Skip the capacity run and take this rate (req/s) as the capacity, so
    /// that two builds can be offered the same load.
    #[arg(long)]
    pub capacity: Option<f64>,
    /// Offered rates, as multiples of the capacity (open loop).
    #[arg(long, value_delimiter = ',', default_value = "1,3,10")]
    pub levels: Vec<f64>,
    /// Seconds during which each level's requests leave.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Connections the open-loop clients may hold at once (each request in
    /// flight holds one; a request that finds none free waits, on its clock).
    #[arg(long, default_value_t = 2000)]
    pub max_connections: usize,
    /// Closed-loop runs at these numbers of connections.
    #[arg(long, value_delimiter = ',', default_value = "8,64,512,2000")]
    pub fixed: Vec<usize>,
    /// Seconds of each fixed-connections run.
    #[arg(long, default_value_t = 10.0)]
    pub fixed_seconds: f64,
    /// Share of roll calls (reportAbsence by a teacher), in percent; the rest
    /// are guardians' dashboards.
    #[arg(long, default_value_t = 10)]
    pub mutation_percent: u32,
    /// Client time-out of one attempt, seconds (a phone's).
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Attempts after the first when refused (429 or RATE_LIMITED).
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// Longest wait before a retry, seconds, whatever Retry-After says (a
    /// phone honours the node's delay up to a minute; the node's own cap is two).
    #[arg(long, default_value_t = 60.0)]
    pub max_retry_wait: f64,
    /// Extra environment of the node, KEY=VALUE (repeatable), e.g. admission
    /// control limits: REGISTRE_MAX_IN_FLIGHT=32.
    #[arg(long = "node-env", value_parser = parse_env)]
    pub node_env: Vec<(String, String)>,
    /// The node on the first half of the CPUs, the load generator (this
    /// process) on the other half, as if each had a machine of its own:
    /// otherwise the generator's work, which in a real surge is done by the
    /// phones, takes CPU from the node being measured. PostgreSQL, when it
    /// runs on this machine, goes beside the generator for the run (its own
    /// server in production), so that the node's CPUs are the node's.
    #[arg(long)]
    pub split_cores: bool,
}

/// The CPUs of the node and of the load generator under `--split-cores`, as
/// `taskset` lists.
fn split_cores() -> Result<(String, String)> {
    let n = std::thread::available_parallelism().map_or(1, usize::from);
    anyhow::ensure!(
        n >= 2,
        "--split-cores needs at least 2 CPUs, this process may use {n}"
    );
    let half = n / 2;
    let list = |from: usize, to: usize| {
        if from == to {
            from.to_string()
        } else {
            format!("{from}-{to}")
        }
    };
    Ok((list(0, half - 1), list(half, n - 1)))
}

/// Moves every thread of this process onto `cpus`.
fn pin_this_process(cpus: &str) -> Result<()> {
    let status = taskset(std::process::id(), &["--cpu-list", cpus])?;
    anyhow::ensure!(status.success(), "taskset --pid failed: {status}");
    Ok(())
}

/// `taskset --all-tasks --pid <how> <pid>`: every thread of `pid`.
fn taskset(pid: u32, how: &[&str]) -> Result<std::process::ExitStatus> {
    std::process::Command::new("taskset")
        .args(["--all-tasks", "--pid"])
        .args(how)
        .arg(pid.to_string())
        .stdout(std::process::Stdio::null())
        .status()
        .context("running taskset (util-linux)")
}

/// PostgreSQL's processes moved onto other CPUs for a run, put back on the
/// CPUs they had when this is dropped.
///
/// Left where the scheduler puts them, they follow the node that wakes them:
/// measured at ten times capacity with the generator busy on its own half,
/// PostgreSQL took 14 % of the node's only CPU (and little of it at
/// capacity, when the generator's half was idle enough to take it), so the
/// surge was measured on a node with less CPU than its capacity run had.
struct PostgresMoved {
    postmaster: u32,
    /// The postmaster's CPUs before, as `taskset` prints them (a hex mask).
    mask: String,
}

impl PostgresMoved {
    /// Moves the server behind `admin_url` and every process it started onto
    /// `cpus`; `None` (said on stderr) when it does not run on this machine
    /// or may not be moved by this user.
    async fn onto(admin_url: &str, cpus: &str) -> Result<Option<PostgresMoved>> {
        let client = registre_store::testing::connect(admin_url).await?;
        let backend: i32 = client
            .query_one("select pg_backend_pid()", &[])
            .await?
            .get(0);
        // Read while the backend lives: its parent is the postmaster.
        let postmaster = u32::try_from(backend)
            .ok()
            .and_then(|backend| process_parent(backend).map(|parent| (backend, parent)))
            .filter(|&(backend, parent)| {
                process_name(backend).as_deref() == Some("postgres")
                    && process_name(parent).as_deref() == Some("postgres")
            })
            .map(|(_, parent)| parent);
        drop(client);
        let Some(postmaster) = postmaster else {
            eprintln!("  PostgreSQL does not run on this machine: nothing to move");
            return Ok(None);
        };
        let mask = std::process::Command::new("taskset")
            .args(["--pid", &postmaster.to_string()])
            .output()
            .context("running taskset (util-linux)")?;
        let mask = String::from_utf8_lossy(&mask.stdout)
            .rsplit(' ')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        if mask.is_empty() {
            // Without the CPUs it had, it could not be put back.
            eprintln!("  PostgreSQL's CPUs could not be read: it is left where it is");
            return Ok(None);
        }
        let moved = PostgresMoved { postmaster, mask };
        if moved.set(&["--cpu-list", cpus]) {
            eprintln!("  PostgreSQL (postmaster {postmaster}) on CPUs {cpus}");
            Ok(Some(moved))
        } else {
            // Dropping `moved` puts back the processes that did move.
            eprintln!(
                "  PostgreSQL could not be moved onto CPUs {cpus} (taskset refused): it shares the node's"
            );
            Ok(None)
        }
    }

    /// Applies `taskset` arguments to the postmaster and its children (new
    /// backends inherit the postmaster's CPUs); whether all were applied.
    fn set(&self, how: &[&str]) -> bool {
        let mut pids = vec![self.postmaster];
        pids.extend(children_of(self.postmaster));
        pids.into_iter()
            .all(|pid| taskset(pid, how).is_ok_and(|status| status.success()))
    }
}

impl Drop for PostgresMoved {
    fn drop(&mut self) {
        if !self.set(&[&self.mask]) {
            eprintln!(
                "  PostgreSQL's CPUs could not be put back (mask {}): `taskset -a -p {} {}`",
                self.mask, self.mask, self.postmaster
            );
        }
    }
}

/// `/proc/<pid>/stat`'s fields after the command name (which may hold spaces).
fn process_stat(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn process_parent(pid: u32) -> Option<u32> {
    process_stat(pid)?.get(1)?.parse().ok()
}

fn process_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|name| name.trim().to_owned())
}

fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| process_parent(pid) == Some(parent))
        .collect()
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s}: expected KEY=VALUE"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dashboard,
    RollCall,
}

/// How one attempt ended.
#[derive(Debug)]
enum Attempt {
    Admitted(Duration),
    /// HTTP 429 (`http`) or a GraphQL RATE_LIMITED error, with the delay the
    /// node asked for.
    Refused {
        http: bool,
        retry_after: Option<Duration>,
    },
    TimedOut,
    Failed(String),
}

/// One request as the client saw it, retries included.
#[derive(Debug)]
struct Record {
    kind: Kind,
    /// Latency of the admitted attempt: from its intended start (the
    /// schedule, or the end of the back-off) to its answer.
    admitted: Option<Duration>,
    /// From the first attempt's intended start to the admitted answer.
    end_to_end: Option<Duration>,
    /// When the admitted answer arrived.
    done_at: Option<Instant>,
    refused_http: u32,
    refused_http_without_retry_after: u32,
    refused_graphql: u32,
    gave_up: bool,
    timed_out: bool,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Answer {
    data: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    errors: Vec<AnswerError>,
}

#[derive(Deserialize)]
struct AnswerError {
    #[serde(default)]
    message: String,
    extensions: Option<Extensions>,
}

#[derive(Deserialize)]
struct Extensions {
    code: Option<String>,
    #[serde(rename = "retryAfter")]
    retry_after: Option<f64>,
}

struct Load {
    /// For the node's /metrics.
    client: reqwest::Client,
    /// For the load itself (see `crate::wire`).
    wire: crate::wire::Wire,
    dashboard: Arc<[u8]>,
    guardians: Vec<String>,
    /// The eight teachers of class c (one per subject), and its students.
    /// Roll calls rotate over all of them: a teacher's own rate limit (120
    /// reports a minute) is not what this benchmark measures.
    teachers: Vec<Vec<String>>,
    students: Vec<Vec<StudentId>>,
    /// Roll calls so far: each gets an hour of its own, so that no report
    /// overlaps an earlier one (which would be refused as a conflict).
    slots: AtomicUsize,
    mutation_percent: u32,
    timeout: Duration,
    retries: u32,
    max_retry_wait: Duration,
}

impl Load {
    fn kind(&self, n: usize) -> Kind {
        // 37 is prime to 100: roll calls are spread through any run of
        // consecutive requests instead of coming ten in a row per hundred.
        if (n.wrapping_mul(37) % 100) < self.mutation_percent as usize {
            Kind::RollCall
        } else {
            Kind::Dashboard
        }
    }

    fn body(&self, kind: Kind, n: usize) -> (String, Arc<[u8]>) {
        match kind {
            Kind::Dashboard => (
                self.guardians[n.wrapping_mul(7919) % self.guardians.len()].clone(),
                self.dashboard.clone(),
            ),
            Kind::RollCall => {
                let slot = self.slots.fetch_add(1, Ordering::Relaxed);
                let classes = self.students.len();
                let class = slot % classes;
                let in_class = &self.students[class];
                let round = slot / classes;
                let student = in_class[round % in_class.len()];
                // Eight hours a day from the first Monday of September 2026,
                // after the generated school year: a new slot per report.
                let per_student = round / in_class.len();
                let day = chrono::NaiveDate::from_ymd_opt(2026, 9, 7).unwrap_or_default()
                    + chrono::Duration::days((per_student / 8) as i64);
                let hour = 8 + per_student % 8;
                let teachers = &self.teachers[class];
                (
                    teachers[round % teachers.len()].clone(),
                    json!({ "query": REPORT, "variables": { "input": {
                        "studentId": student.to_string(),
                        "kind": "ABSENCE",
                        "start": format!("{day}T{hour:02}:00:00Z"),
                        "end": format!("{day}T{hour:02}:55:00Z"),
                    }}})
                    .to_string()
                    .into_bytes()
                    .into(),
                )
            }
        }
    }

    /// One attempt, timed from `intended` (which may be before now: the time
    /// spent waiting for a connection counts).
    async fn attempt(&self, kind: Kind, token: &str, body: &[u8], intended: Instant) -> Attempt {
        let deadline = intended + self.timeout;
        let sent = async {
            let reply = self.wire.post("/graphql", token, body).await?;
            Ok::<_, std::io::Error>((reply, Instant::now()))
        };
        let (reply, at) = match tokio::time::timeout_at(deadline.into(), sent).await {
            Err(_) => return Attempt::TimedOut,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => return Attempt::TimedOut,
            Ok(Err(e)) => return Attempt::Failed(format!("{e}")),
            Ok(Ok(r)) => r,
        };
        let crate::wire::Reply {
            status,
            retry_after,
            body: bytes,
        } = reply;
        if status == 429 {
            return Attempt::Refused {
                http: true,
                retry_after,
            };
        }
        // The common case read without a JSON parse (the node writes compact
        // JSON); anything else is parsed below and explained.
        let marker: &[u8] = match kind {
            Kind::Dashboard => br#"{"data":{"myChildren":[{"#,
            Kind::RollCall => br#"{"data":{"reportAbsence":{"#,
        };
        if status == 200 && bytes.starts_with(marker) && !contains(&bytes, br#""errors""#) {
            return Attempt::Admitted(at.saturating_duration_since(intended));
        }
        let status =
            reqwest::StatusCode::from_u16(status).unwrap_or(reqwest::StatusCode::BAD_GATEWAY);
        let answer: Answer = match serde_json::from_slice(&bytes) {
            Ok(a) => a,
            Err(e) => {
                return Attempt::Failed(format!(
                    "{status}: not a GraphQL answer ({e}): {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ))
            }
        };
        if let Some(limited) = answer
            .errors
            .iter()
            .find(|e| e.extensions.as_ref().and_then(|x| x.code.as_deref()) == Some("RATE_LIMITED"))
        {
            return Attempt::Refused {
                http: false,
                retry_after: limited
                    .extensions
                    .as_ref()
                    .and_then(|x| x.retry_after)
                    .map(Duration::from_secs_f64)
                    .or(retry_after),
            };
        }
        let field = match kind {
            Kind::Dashboard => "myChildren",
            Kind::RollCall => "reportAbsence",
        };
        let answered = answer
            .data
            .as_ref()
            .and_then(|d| d.get(field))
            .is_some_and(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()));
        if !status.is_success() || !answer.errors.is_empty() || !answered {
            let first = answer.errors.first().map_or_else(String::new, |e| {
                format!(
                    "{} ({})",
                    e.message,
                    e.extensions
                        .as_ref()
                        .and_then(|x| x.code.clone())
                        .unwrap_or_default()
                )
            });
            return Attempt::Failed(format!("{status} {field}: {first}"));
        }
        Attempt::Admitted(at.saturating_duration_since(intended))
    }

    /// Request `n`: attempts until admitted, out of retries, timed out or
    /// failed. With `connections`, each attempt first takes a connection (the
    /// open loop's bound); the back-off between attempts holds none.
    async fn request(
        &self,
        n: usize,
        scheduled: Instant,
        connections: Option<&Semaphore>,
    ) -> Record {
        let kind = self.kind(n);
        let (token, body) = self.body(kind, n);
        let body: &[u8] = &body;
        let mut record = Record {
            kind,
            admitted: None,
            end_to_end: None,
            done_at: None,
            refused_http: 0,
            refused_http_without_retry_after: 0,
            refused_graphql: 0,
            gave_up: false,
            timed_out: false,
            error: None,
        };
        let mut intended = scheduled;
        for attempt in 0..=self.retries {
            let permit = match connections {
                Some(s) => {
                    match tokio::time::timeout_at((intended + self.timeout).into(), s.acquire())
                        .await
                    {
                        Ok(Ok(p)) => Some(p),
                        Ok(Err(_)) | Err(_) => {
                            record.timed_out = true;
                            return record;
                        }
                    }
                }
                None => None,
            };
            let outcome = self.attempt(kind, &token, body, intended).await;
            drop(permit);
            match outcome {
                Attempt::Admitted(latency) => {
                    let now = Instant::now();
                    record.admitted = Some(latency);
                    record.end_to_end = Some(now.saturating_duration_since(scheduled));
                    record.done_at = Some(now);
                    return record;
                }
                Attempt::TimedOut => {
                    record.timed_out = true;
                    return record;
                }
                Attempt::Failed(e) => {
                    record.error = Some(e);
                    return record;
                }
                Attempt::Refused { http, retry_after } => {
                    if http {
                        record.refused_http += 1;
                        if retry_after.is_none() {
                            record.refused_http_without_retry_after += 1;
                        }
                    } else {
                        record.refused_graphql += 1;
                    }
                    if attempt == self.retries {
                        record.gave_up = true;
                        return record;
                    }
                    // Without a Retry-After, a second: what a polite client does.
                    let wait = retry_after
                        .unwrap_or(Duration::from_secs(1))
                        .min(self.max_retry_wait);
                    // Jitter, so that refused clients do not all come back at
                    // the same instant (a retry storm of their own making).
                    let jitter = Duration::from_millis((n as u64 * 7919) % 250);
                    tokio::time::sleep(wait + jitter).await;
                    intended = Instant::now();
                }
            }
        }
        record
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[derive(Debug)]
pub struct LevelResult {
    pub label: String,
    /// Offered requests per second (first attempts); `None` for closed loops.
    pub offered: Option<f64>,
    pub requests: usize,
    /// Admitted requests per second over the level's window.
    pub throughput: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// p99 from the first attempt's intended start, retries included.
    pub end_to_end_p99: Duration,
    pub admitted: usize,
    pub roll_calls_admitted: usize,
    pub roll_calls: usize,
    pub roll_call_p99: Duration,
    pub refused_http: u64,
    pub refused_http_without_retry_after: u64,
    pub refused_graphql: u64,
    pub gave_up: usize,
    pub timed_out: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub dropped_before: Option<f64>,
    pub dropped_after: Option<f64>,
}

fn summarise(
    label: String,
    offered: Option<f64>,
    window: (Instant, Duration),
    records: &[Record],
    dropped: (Option<f64>, Option<f64>),
) -> LevelResult {
    let (start, length) = window;
    let end = start + length;
    let mut admitted: Vec<Duration> = records.iter().filter_map(|r| r.admitted).collect();
    admitted.sort_unstable();
    let mut end_to_end: Vec<Duration> = records.iter().filter_map(|r| r.end_to_end).collect();
    end_to_end.sort_unstable();
    let mut roll: Vec<Duration> = records
        .iter()
        .filter(|r| r.kind == Kind::RollCall)
        .filter_map(|r| r.admitted)
        .collect();
    roll.sort_unstable();
    let in_window = records
        .iter()
        .filter(|r| r.done_at.is_some_and(|t| t <= end))
        .count();
    let pick = crate::stats::percentile;
    LevelResult {
        label,
        offered,
        requests: records.len(),
        throughput: in_window as f64 / length.as_secs_f64(),
        p50: pick(&admitted, 0.5),
        p99: pick(&admitted, 0.99),
        max: admitted.last().copied().unwrap_or_default(),
        end_to_end_p99: pick(&end_to_end, 0.99),
        admitted: admitted.len(),
        roll_calls_admitted: roll.len(),
        roll_calls: records.iter().filter(|r| r.kind == Kind::RollCall).count(),
        roll_call_p99: pick(&roll, 0.99),
        refused_http: records.iter().map(|r| u64::from(r.refused_http)).sum(),
        refused_http_without_retry_after: records
            .iter()
            .map(|r| u64::from(r.refused_http_without_retry_after))
            .sum(),
        refused_graphql: records.iter().map(|r| u64::from(r.refused_graphql)).sum(),
        gave_up: records.iter().filter(|r| r.gave_up).count(),
        timed_out: records.iter().filter(|r| r.timed_out).count(),
        errors: records.iter().filter(|r| r.error.is_some()).count(),
        first_error: records.iter().find_map(|r| r.error.clone()),
        dropped_before: dropped.0,
        dropped_after: dropped.1,
    }
}

const DROPPED: &str = "registre_access_log_dropped";

/// Closed loop: `connections` clients, each sending its next request when the
/// previous one is answered (retries included), for `seconds`.
async fn closed_loop(
    load: &Arc<Load>,
    node: &ChildNode,
    connections: usize,
    seconds: f64,
    next: &Arc<AtomicUsize>,
) -> Result<LevelResult> {
    let before = node.metric(&load.client, DROPPED).await;
    let length = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let deadline = start + length;
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let load = load.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut records = Vec::new();
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                records.push(load.request(n, Instant::now(), None).await);
            }
            records
        }));
    }
    let mut records = Vec::new();
    for t in tasks {
        records.extend(t.await?);
    }
    let after = node.metric(&load.client, DROPPED).await;
    Ok(summarise(
        format!("closed loop, {connections} connections"),
        None,
        (start, length),
        &records,
        (before, after),
    ))
}

/// Open loop: `rate` requests per second leave on schedule for `seconds`,
/// over at most `connections` connections.
async fn open_loop(
    load: &Arc<Load>,
    node: &ChildNode,
    label: String,
    rate: f64,
    seconds: f64,
    connections: usize,
    next: &Arc<AtomicUsize>,
) -> Result<LevelResult> {
    let before = node.metric(&load.client, DROPPED).await;
    let semaphore = Arc::new(Semaphore::new(connections));
    let length = Duration::from_secs_f64(seconds);
    let total = (rate * seconds).round() as usize;
    let period = Duration::from_secs_f64(1.0 / rate.max(1e-9));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let scheduled = start + period.mul_f64(i as f64);
        if scheduled > Instant::now() {
            tokio::time::sleep_until(scheduled.into()).await;
        }
        let n = next.fetch_add(1, Ordering::Relaxed);
        let load = load.clone();
        let semaphore = semaphore.clone();
        tasks.push(tokio::spawn(async move {
            load.request(n, scheduled, Some(&semaphore)).await
        }));
    }
    let mut records = Vec::with_capacity(total);
    for t in tasks {
        records.push(t.await?);
    }
    let after = node.metric(&load.client, DROPPED).await;
    Ok(summarise(
        label,
        Some(rate),
        (start, length),
        &records,
        (before, after),
    ))
}

/// The soft limit on open files of this process (the node, its child,
/// inherits it), from /proc/self/limits.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

pub struct SurgeReport {
    /// The CPUs of the node and of the load generator, under `--split-cores`.
    pub split: Option<(String, String)>,
    /// Whether PostgreSQL ran on the load generator's CPUs (`--split-cores`,
    /// a server on this machine).
    pub postgres_beside_load: bool,
    pub capacity: f64,
    pub capacity_measured: Option<LevelResult>,
    pub levels: Vec<LevelResult>,
    pub fixed: Vec<LevelResult>,
}

pub async fn run(admin_url: &str, args: &SurgeArgs) -> Result<SurgeReport> {
    let split = args.split_cores.then(split_cores).transpose()?;
    let mut postgres_moved = None;
    if let Some((node_cpus, load_cpus)) = &split {
        eprintln!("  node on CPUs {node_cpus}, load generator on CPUs {load_cpus}");
        pin_this_process(load_cpus)?;
        postgres_moved = PostgresMoved::onto(admin_url, load_cpus).await?;
    }
    let node_cpus = split.as_ref().map(|(node, _)| node.as_str());
    let report = ChildNode::on_seeded_db(
        admin_url,
        "surge",
        &args.node_env,
        node_cpus,
        async |node, g| run_on(node, g, args).await,
    )
    .await?;
    Ok(SurgeReport {
        split,
        postgres_beside_load: postgres_moved.is_some(),
        ..report
    })
}

async fn run_on(node: &ChildNode, g: &GenConfig, args: &SurgeArgs) -> Result<SurgeReport> {
    // Each connection is a descriptor here and another in the node (which
    // inherits this process's limit); scripts/bench raises it to the hard one.
    let mut args = args.clone();
    if let Some(limit) = open_files_limit() {
        let usable = (limit.saturating_sub(200) / 2) as usize;
        if args.max_connections > usable {
            eprintln!(
                "  open files limited to {limit}: at most {usable} connections (raise `ulimit -n`)"
            );
            args.max_connections = usable;
            for c in &mut args.fixed {
                *c = (*c).min(usable);
            }
        }
    }
    let mut guardians = Vec::new();
    let mut students = Vec::new();
    let mut teachers = Vec::new();
    for c in 0..g.classes_per_establishment {
        teachers.push(
            (0..gen::SUBJECTS.len())
                .map(|s| node.token(&format!("prof-0-{c}-{s}")))
                .collect::<Result<Vec<_>>>()?,
        );
        let mut class = Vec::new();
        for i in 0..g.students_per_class {
            guardians.push(node.token(&format!("parent-0-{c}-{i}-0"))?);
            class.push(StudentId::for_person(PersonId::for_external_id(&format!(
                "eleve-0-{c}-{i}"
            ))));
        }
        students.push(class);
    }
    let load = Arc::new(Load {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(
                args.max_connections
                    .max(args.fixed.iter().copied().max().unwrap_or(0)),
            )
            .build()?,
        wire: crate::wire::Wire::new(node.addr),
        dashboard: json!({ "query": DASHBOARD })
            .to_string()
            .into_bytes()
            .into(),
        guardians,
        teachers,
        students,
        slots: AtomicUsize::new(0),
        mutation_percent: args.mutation_percent.min(100),
        timeout: Duration::from_secs_f64(args.timeout),
        retries: args.retries,
        max_retry_wait: Duration::from_secs_f64(args.max_retry_wait),
    });
    let next = Arc::new(AtomicUsize::new(0));

    // Warm-up: as many dashboards as there are guardians and a roll call per
    // class, so that the node's caches and the client's first connections
    // are made before anything is measured.
    for i in 0..load.guardians.len() {
        let r = load.request(i * 100 + 50, Instant::now(), None).await;
        if let Some(e) = r.error {
            anyhow::bail!("warm-up dashboard failed: {e}");
        }
    }
    for _ in 0..load.teachers.len() {
        let r = load.request(0, Instant::now(), None).await;
        if load.mutation_percent > 0 {
            if let Some(e) = r.error {
                anyhow::bail!("warm-up roll call failed: {e}");
            }
        }
    }

    let (capacity, capacity_measured) = match args.capacity {
        Some(c) => (c, None),
        None => {
            let r = closed_loop(
                &load,
                node,
                args.capacity_connections,
                args.capacity_seconds,
                &next,
            )
            .await?;
            let r = LevelResult {
                label: format!("capacity: {}", r.label),
                ..r
            };
            eprintln!(
                "  capacity: {:.0} req/s admitted at {} connections (p99 {:.2?})",
                r.throughput, args.capacity_connections, r.p99
            );
            (r.throughput, Some(r))
        }
    };
    let mut levels = Vec::new();
    for &multiple in &args.levels {
        let rate = capacity * multiple;
        let r = open_loop(
            &load,
            node,
            format!("open loop, {multiple}x capacity"),
            rate,
            args.seconds,
            args.max_connections,
            &next,
        )
        .await?;
        eprintln!(
            "  {}: {:.0} offered, {:.0} admitted/s, p99 {:.2?}, {} refused, {} timed out",
            r.label,
            rate,
            r.throughput,
            r.p99,
            r.refused_http + r.refused_graphql,
            r.timed_out
        );
        levels.push(r);
    }
    let mut fixed = Vec::new();
    for &c in &args.fixed {
        let r = closed_loop(&load, node, c, args.fixed_seconds, &next).await?;
        eprintln!(
            "  {}: {:.0} admitted/s, p99 {:.2?}",
            r.label, r.throughput, r.p99
        );
        fixed.push(r);
    }
    Ok(SurgeReport {
        split: None,
        postgres_beside_load: false,
        capacity,
        capacity_measured,
        levels,
        fixed,
    })
}

/// The report as a markdown table, with the issue's goals checked where the
/// run measured what they compare.
pub fn print(report: &SurgeReport, args: &SurgeArgs) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let dropped = |r: &LevelResult| match (r.dropped_before, r.dropped_after) {
        (Some(a), Some(b)) => format!("{a:.0} -> {b:.0}"),
        _ => "?".to_owned(),
    };
    println!();
    println!(
        "Surge: dashboards and roll calls ({}% roll calls) on one node{}, capacity {:.0} req/s{}",
        args.mutation_percent,
        match &report.split {
            Some((node, load)) => format!(
                " on CPUs {node} (the load generator{} on CPUs {load})",
                if report.postgres_beside_load {
                    " and PostgreSQL"
                } else {
                    ""
                }
            ),
            None => " sharing the CPUs with the load generator".to_owned(),
        },
        report.capacity,
        if report.capacity_measured.is_some() {
            format!(
                " (measured, closed loop at {} connections)",
                args.capacity_connections
            )
        } else {
            " (given)".to_owned()
        }
    );
    println!("| load | offered req/s | admitted / requests | admitted req/s | p50 ms | p99 ms | max ms | end-to-end p99 ms | roll calls admitted | roll call p99 ms | 429 (without Retry-After) | RATE_LIMITED | gave up | time-outs | other errors | access log dropped |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let rows = report
        .capacity_measured
        .iter()
        .chain(&report.levels)
        .chain(&report.fixed);
    for r in rows {
        println!(
            "| {} | {} | {} / {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} / {} | {:.2} | {} ({}) | {} | {} | {} | {} | {} |",
            r.label,
            r.offered.map_or_else(|| "-".to_owned(), |o| format!("{o:.0}")),
            r.admitted,
            r.requests,
            r.throughput,
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
            ms(r.end_to_end_p99),
            r.roll_calls_admitted,
            r.roll_calls,
            ms(r.roll_call_p99),
            r.refused_http,
            r.refused_http_without_retry_after,
            r.refused_graphql,
            r.gave_up,
            r.timed_out,
            r.errors,
            dropped(r),
        );
    }
    for r in report
        .capacity_measured
        .iter()
        .chain(&report.levels)
        .chain(&report.fixed)
    {
        if let Some(e) = &r.first_error {
            println!("{}: first other error: {e}", r.label);
        }
    }
    // The issue's goals: at 10x (and at the most connections), admitted p99
    // within 3x the p99 at the capacity run, admitted throughput at least 80 %
    // of the peak, every refusal a 429 with Retry-After, no time-out, no
    // dropped access-log record.
    let Some(base) = report.capacity_measured.as_ref().or_else(|| {
        report
            .fixed
            .iter()
            .find(|r| r.label.ends_with(" 64 connections"))
    }) else {
        return;
    };
    let peak = report
        .capacity_measured
        .iter()
        .chain(&report.levels)
        .chain(&report.fixed)
        .map(|r| r.throughput)
        .fold(0.0, f64::max);
    let worst = report.levels.last().into_iter().chain(report.fixed.last());
    println!();
    for r in worst {
        let checks = [
            ("p99 <= 3x base p99", r.p99 <= base.p99 * 3),
            ("throughput >= 80% of peak", r.throughput >= 0.8 * peak),
            (
                "every refusal a 429 with Retry-After",
                r.refused_http_without_retry_after == 0 && r.refused_graphql == 0,
            ),
            ("no time-out", r.timed_out == 0),
            (
                "no access-log record dropped",
                matches!((r.dropped_before, r.dropped_after), (Some(a), Some(b)) if a == b),
            ),
        ];
        let verdicts: Vec<String> = checks
            .iter()
            .map(|(what, ok)| format!("{what}: {}", if *ok { "met" } else { "missed" }))
            .collect();
        println!(
            "{} (base p99 {:.2} ms, peak {:.0} req/s): {}",
            r.label,
            ms(base.p99),
            peak,
            verdicts.join("; ")
        );
    }
}
