//! End-to-end: PostgreSQL restarts under two nodes. Neither node is
//! restarted; writes offered while the database is down fail with a typed
//! error (a phone retries them), every acknowledged write survives, both
//! nodes serve it afterwards, and a live notification still crosses nodes
//! (each node's LISTEN connection comes back by itself).
//!
//! The test runs its own PostgreSQL cluster (initdb into a temporary
//! directory, on a free port) so that restarting it disturbs no other test.

#![allow(clippy::unwrap_used)]

mod support;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::json;
use support::*;

/// A PostgreSQL cluster owned by one test, stopped and removed on drop.
struct PrivateCluster {
    bin: PathBuf,
    dir: TempDir,
    port: u16,
}

fn postgres_bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<PathBuf> = std::fs::read_dir(root)
        .unwrap_or_else(|_| {
            panic!(
                "PostgreSQL's server binaries are missing ({root:?}): apt-get install postgresql"
            )
        })
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a PostgreSQL version with pg_ctl under /usr/lib/postgresql")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// initdb and the server refuse to run as root: run them as `postgres` then.
fn as_cluster_owner(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl PrivateCluster {
    fn start() -> PrivateCluster {
        let bin = postgres_bin_dir();
        let dir = TempDir::new();
        if is_root() {
            // The cluster's owner, not root, must own its directory.
            let mut chown = Command::new("chown");
            chown.args(["-R", "postgres:postgres"]).arg(&dir.0);
            run(chown, "chown the cluster directory");
        }
        let data = dir.0.join("data");
        run(
            {
                let mut c = as_cluster_owner(&bin.join("initdb"));
                c.args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
                    .arg(&data);
                c
            },
            "initdb",
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let cluster = PrivateCluster { bin, dir, port };
        cluster.pg_ctl(&["start", "-w"]);
        cluster
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.0.join("data");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.0.display()
        );
        let mut command = as_cluster_owner(&self.bin.join("pg_ctl"));
        command
            .args(args)
            .arg("-D")
            .arg(&data)
            .args(["-m", "fast", "-o", &options, "-l"])
            .arg(self.dir.0.join("server.log"));
        run(command, &format!("pg_ctl {}", args.join(" ")));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// When the running server started: proves a restart happened.
    async fn started_at(&self) -> String {
        let (client, connection) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .expect("connect to the private cluster");
        tokio::spawn(connection);
        let row = client
            .query_one("SELECT pg_postmaster_start_time()::text", &[])
            .await
            .expect("the server's start time");
        row.get(0)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.dir.0.join("data");
        let _ = as_cluster_owner(&self.bin.join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-D"])
            .arg(&data)
            .output();
    }
}

/// Reports an absence, retrying as a client does while the node answers an
/// error (the database is restarting). Answers the absence id once
/// acknowledged, with the number of refused attempts.
async fn report_until_acknowledged(
    node: &Node,
    token: &str,
    student: &str,
    hour: u32,
    key: &str,
) -> (String, u32) {
    let mut refused = 0;
    loop {
        let response = node
            .graphql(
                Some(token),
                REPORT_ABSENCE,
                json!({ "input": {
                    "studentId": student,
                    "kind": "ABSENCE",
                    "start": format!("2026-11-16T{hour:02}:00:00+01:00"),
                    "end": format!("2026-11-16T{:02}:00:00+01:00", hour + 1),
                    "idempotencyKey": key,
                }}),
            )
            .await;
        if let Some(id) = response["data"]["reportAbsence"]["id"].as_str() {
            return (id.to_string(), refused);
        }
        let codes = error_codes(&response);
        assert!(
            !codes.is_empty() && codes.iter().all(|c| c != "NONE"),
            "a failed write says why with a code: {response}"
        );
        refused += 1;
        assert!(refused < 600, "the node never recovered: {response}");
        // A client's back-off between retries, not a synchronisation.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const ABSENCES: &str = r#"
query($id: ID!) { student(id: $id) { absences { id } } }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_two_nodes_loses_nothing_acknowledged() {
    let cluster = PrivateCluster::start();
    let db = TestDb::create().await; // unused by the nodes; Idp::config wants one
    let idp = Idp::new();
    let url = cluster.url();
    let config = idp.config(&db, &[("DATABASE_URL", url.as_str())]);
    let store = registre::node::open_store(&config)
        .await
        .expect("open the private cluster's store");
    let roster = seed_roster(store.as_ref()).await;
    drop(store);

    let a = Node::start(&config).await;
    let b = Node::start(&config).await;
    a.wait_ready().await;
    b.wait_ready().await;
    let teacher = idp.token(roster.teacher);
    let guardian = idp.token(roster.guardian);
    let student = roster.student.to_string();

    // The guardian listens on B; absences are reported on A.
    let mut ws = WsClient::connect(b.addr, TRANSPORT_WS).await;
    assert_eq!(ws.init(Some(&guardian)).await["type"], "connection_ack");
    ws.subscribe(
        "live",
        ABSENCE_SUBSCRIPTION,
        json!({ "studentId": student }),
    )
    .await;
    let (before, _) = report_until_acknowledged(&a, &teacher, &student, 8, "pg-before").await;
    let heard = next_payload(&ws.next_json().await, "live");
    assert_eq!(heard["data"]["absenceReported"]["absence"]["id"], before);

    // Writes keep coming while PostgreSQL restarts.
    let writer = {
        let teacher = teacher.clone();
        let student = student.clone();
        let a_url = a.url("/graphql");
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut acknowledged = Vec::new();
            for i in 0..40u32 {
                let response: serde_json::Value = match client
                    .post(&a_url)
                    .bearer_auth(&teacher)
                    .json(&json!({ "query": REPORT_ABSENCE, "variables": { "input": {
                        "studentId": student,
                        "kind": "LATENESS",
                        "start": format!("2026-11-17T08:{:02}:00+01:00", i),
                        "end": format!("2026-11-17T08:{:02}:30+01:00", i),
                        "idempotencyKey": format!("pg-during-{i}"),
                    }}}))
                    .send()
                    .await
                {
                    Ok(r) => r.json().await.expect("a JSON body, even when failing"),
                    Err(e) => panic!("the node itself must keep answering: {e}"),
                };
                if let Some(id) = response["data"]["reportAbsence"]["id"].as_str() {
                    acknowledged.push(id.to_string());
                } else {
                    let codes = error_codes(&response);
                    assert!(
                        codes.iter().all(|c| c != "NONE") && !codes.is_empty(),
                        "{response}"
                    );
                }
            }
            acknowledged
        })
    };
    let first_start = cluster.started_at().await;
    cluster.pg_ctl(&["restart", "-w"]);
    assert_ne!(
        cluster.started_at().await,
        first_start,
        "PostgreSQL restarted"
    );
    let during = writer.await.expect("the writer task");

    // After the restart: a new write through A is acknowledged (after the
    // client's retries) and B's subscriber hears of it.
    let (after, _) = report_until_acknowledged(&a, &teacher, &student, 14, "pg-after").await;
    let heard = loop {
        let message = ws.next_json().await;
        let payload = next_payload(&message, "live");
        let id = payload["data"]["absenceReported"]["absence"]["id"]
            .as_str()
            .map(str::to_string);
        if id.as_deref() == Some(after.as_str()) {
            break id;
        }
        // Lateness reported during the restart is heard first; fine.
    };
    assert_eq!(heard.as_deref(), Some(after.as_str()));

    // Every acknowledged write is served by both nodes.
    let cpe = idp.token(roster.cpe);
    for node in [&a, &b] {
        let response = node
            .graphql(Some(&cpe), ABSENCES, json!({ "id": student }))
            .await;
        let ids: Vec<String> = response["data"]["student"]["absences"]
            .as_array()
            .unwrap_or_else(|| panic!("absences listed: {response}"))
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect();
        for id in during.iter().chain([&before, &after]) {
            assert!(ids.contains(id), "acknowledged absence {id} lost: {ids:?}");
        }
    }
    a.stop().await;
    b.stop().await;
}
