//! The pages (issue 18) in a real browser: the demo collège served on
//! PostgreSQL, Debian's Chromium driven by Playwright through the parent's,
//! the teacher's, the vie scolaire's and the head's pages
//! (`tests/browser/pages.test.mjs`), and what the pages did checked here
//! again through GraphQL.
//!
//! Needs /usr/bin/chromium, node and `npm ci` in tests/browser: `scripts/test`
//! installs them where missing (`scripts/ensure-browser`). With
//! REGISTRE_SCREENSHOTS=1 the screenshots of docs/pages/ are taken again.

#![allow(clippy::unwrap_used)]

mod support;

use std::{collections::BTreeSet, path::Path, process::Stdio, time::Duration};

use chrono::{Days, Utc};
use registre::demo;
use serde_json::{json, Value};
use support::*;

const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser"))
}

/// What the test needs from outside Cargo, said plainly when it is missing.
fn prerequisites() {
    let mut missing = Vec::new();
    let chromium = std::env::var("REGISTRE_CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
    if !Path::new(&chromium).exists() {
        missing.push(format!("Chromium at {chromium} (apt-get install chromium)"));
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .map_or(true, |o| !o.status.success())
    {
        missing.push("node on the PATH (apt-get install nodejs npm)".into());
    }
    for package in ["playwright-core", "axe-core"] {
        if !browser_dir().join("node_modules").join(package).exists() {
            missing.push(format!(
                "the npm package {package} (npm ci in registre/tests/browser)"
            ));
        }
    }
    assert!(
        missing.is_empty(),
        "the browser tests cannot run; missing: {}. scripts/ensure-browser installs them.",
        missing.join("; ")
    );
}

fn ids(list: &Value, path: &[&str]) -> BTreeSet<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|item| {
            path.iter()
                .fold(item, |v, key| &v[*key])
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// Without a browser: the routes answer, gzipped when asked, cached for
/// good under their version, behind the strict policy.
#[tokio::test]
async fn the_pages_are_served_by_the_node() {
    let db = TestDb::create().await;
    let idp = Idp::new();
    let node = Node::start(&idp.config(&db, &[])).await;
    let page = node
        .http()
        .get(node.url("/"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(headers["cache-control"], "no-cache");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'none'; script-src 'self'; style-src 'self';"));
    assert!(!policy.contains("unsafe"), "{policy}");

    let html = node
        .http()
        .get(node.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("<html lang=\"fr\">"), "{html}");
    let script = html
        .split('"')
        .find(|part| part.starts_with("/app/") && part.ends_with("/app.js"))
        .unwrap_or_else(|| panic!("the page names its script: {html}"));
    let asset = node.http().get(node.url(script)).send().await.unwrap();
    assert_eq!(asset.status(), 200);
    assert_eq!(
        asset.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(asset.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let stale = node
        .http()
        .get(node.url("/app/0/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 404);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_work_in_a_real_browser() {
    prerequisites();
    let db = TestDb::create().await;
    let idp = Idp::new();
    let config = idp.config(&db, &[]);
    let store = registre::node::open_store(&config).await.unwrap();
    let summary = demo::seed(store.as_ref(), 2026, false).await.unwrap();
    let node = Node::start(&config).await;
    node.wait_ready().await;
    let token = |role: &str| {
        let account = summary
            .accounts
            .iter()
            .find(|a| a.role == role)
            .unwrap_or_else(|| panic!("a {role} account"));
        idp.token(&account.subject)
    };
    let (guardian, teacher, staff, head) = (
        token("GUARDIAN"),
        token("TEACHER"),
        token("EDUCATION_STAFF"),
        token("HEAD"),
    );

    let children = node
        .graphql(
            Some(&guardian),
            "{ myChildren { id schoolClass { id establishment { id } } } }",
            json!({}),
        )
        .await;
    let child = &children["data"]["myChildren"][0];
    let child_id = child["id"].as_str().unwrap_or_else(|| panic!("{children}"));
    let class_id = child["schoolClass"]["id"].as_str().unwrap();
    let establishment = child["schoolClass"]["establishment"]["id"]
        .as_str()
        .unwrap();

    // A teacher of the child's class reports the absences; the head sees
    // every course of the establishment.
    let today = Utc::now().date_naive();
    let week = json!({ "from": today - Days::new(14), "to": today + Days::new(7) });
    let courses = node
        .graphql(
            Some(&head),
            "query ($from: Date!, $to: Date!) { myCourses(from: $from, to: $to) { schoolClass { id } teacher { externalId } } }",
            week.clone(),
        )
        .await;
    let reporter = courses["data"]["myCourses"]
        .as_array()
        .unwrap_or_else(|| panic!("{courses}"))
        .iter()
        .find(|c| c["schoolClass"]["id"] == class_id)
        .map(|c| c["teacher"]["externalId"].as_str().unwrap().to_owned())
        .expect("a course of the child's class in the last two weeks");

    // The roll call: the demo teacher's course of today, else their latest.
    let mine = node
        .graphql(
            Some(&teacher),
            "query ($from: Date!, $to: Date!) { myCourses(from: $from, to: $to) { id start cancelled } }",
            json!({ "from": today - Days::new(14), "to": today }),
        )
        .await;
    let course = mine["data"]["myCourses"]
        .as_array()
        .unwrap_or_else(|| panic!("{mine}"))
        .iter()
        .filter(|c| c["cancelled"] == false)
        .max_by_key(|c| c["start"].as_str().unwrap().to_owned())
        .expect("a course of the demo teacher in the last two weeks")
        .clone();
    let course_id = course["id"].as_str().unwrap();
    // The page shows courses by the establishment's day (Europe/Paris).
    let roll_date = chrono::DateTime::parse_from_rfc3339(course["start"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono_tz::Europe::Paris)
        .date_naive()
        .to_string();

    let screenshots = std::env::var("REGISTRE_SCREENSHOTS")
        .is_ok_and(|v| v == "1")
        .then(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/pages").to_owned());
    let mut command = tokio::process::Command::new("node");
    command
        .arg(browser_dir().join("pages.test.mjs"))
        .current_dir(browser_dir())
        .env("REGISTRE_URL", node.url(""))
        .env("ESTABLISHMENT_ID", establishment)
        .env("TOKEN_GUARDIAN", &guardian)
        .env("TOKEN_TEACHER", &teacher)
        .env("TOKEN_STAFF", &staff)
        .env("TOKEN_HEAD", &head)
        .env("TOKEN_REPORTER", idp.token(&reporter))
        .env("CHILD_ID", child_id)
        .env("ROLL_COURSE_ID", course_id)
        .env("ROLL_DATE", &roll_date)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(dir) = &screenshots {
        command.env("REGISTRE_SCREENSHOTS", dir);
    }
    let output = tokio::time::timeout(Duration::from_secs(240), command.output())
        .await
        .expect("the browser test finished within 4 minutes")
        .expect("node runs pages.test.mjs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no JSON report; stdout:\n{stdout}\nstderr:\n{stderr}"));
    // Figures for the record (not asserted): bytes moved by each page's first
    // load and the time until it was usable.
    println!(
        "pages: {}\nlive: {}",
        serde_json::to_string_pretty(&report["pages"]).unwrap(),
        report["live"]
    );
    assert!(
        output.status.success() && report["failures"] == json!([]),
        "the browser found failures:\n{}\nreport: {report}\nstderr:\n{stderr}",
        serde_json::to_string_pretty(&report["failures"]).unwrap()
    );

    // The roll call recorded exactly the students tapped.
    let taken = node
        .graphql(
            Some(&teacher),
            "query ($id: ID!) { course(id: $id) { rollCall { absent { student { id } } late { minutesLate student { id } } } } }",
            json!({ "id": course_id }),
        )
        .await;
    let roll = &taken["data"]["course"]["rollCall"];
    assert_eq!(
        ids(&roll["absent"], &["student", "id"]),
        ids(&report["rollCall"]["absent"], &[]),
        "{taken}"
    );
    assert_eq!(
        ids(&roll["late"], &["student", "id"]),
        ids(&report["rollCall"]["late"], &[]),
        "{taken}"
    );
    assert_eq!(roll["late"][0]["minutesLate"], 12, "{taken}");

    // The grid recorded the grades entered, and those only.
    let grades = &report["grades"];
    let book = node
        .graphql(
            Some(&teacher),
            "query ($id: ID!, $subject: String!) { schoolClass(id: $id) { gradebook(subject: $subject) { title grades { score status student { id } } } } }",
            json!({ "id": grades["classId"], "subject": grades["subject"] }),
        )
        .await;
    let assessment = book["data"]["schoolClass"]["gradebook"]
        .as_array()
        .unwrap_or_else(|| panic!("{book}"))
        .iter()
        .find(|a| a["title"] == grades["title"])
        .unwrap_or_else(|| panic!("the assessment made in the page: {book}"));
    let recorded = assessment["grades"].as_array().unwrap();
    assert_eq!(recorded.len(), 3, "{assessment}");
    for grade in recorded {
        let student = grade["student"]["id"].as_str().unwrap();
        match grade["status"].as_str().unwrap() {
            "GRADED" => assert_eq!(
                grade["score"].as_f64(),
                grades["scores"][student].as_f64(),
                "{assessment}"
            ),
            "ABSENT" => assert_eq!(grades["absent"][0], student, "{assessment}"),
            other => panic!("{other}: {assessment}"),
        }
    }

    // The justification sent from the parent's page, with its document, was
    // accepted from the vie scolaire's.
    let justified = report["justified"].as_str().expect("an absence justified");
    let absence = node
        .graphql(
            Some(&guardian),
            "{ myChildren { absences { id state motive { label } attachments { name contentType } } } }",
            json!({}),
        )
        .await;
    let found = absence["data"]["myChildren"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["absences"].as_array().unwrap())
        .find(|a| a["id"] == justified)
        .unwrap_or_else(|| panic!("{absence}"));
    assert_eq!(found["state"], "ACCEPTED", "{found}");
    assert!(found["motive"]["label"].is_string(), "{found}");
    assert_eq!(found["attachments"][0]["name"], "certificat.pdf", "{found}");

    // The head's chart: four profiles, one bar per hour, the API's numbers.
    assert_eq!(report["usage"]["matched"], true, "{report}");
    assert_eq!(report["usage"]["barsPerProfile"], json!([24, 24, 24, 24]));
    assert!(report["live"]["shownWithinMs"].as_u64().unwrap() <= 2_000);
    for page in ["parent", "teacher", "staff", "head", "sign-in"] {
        assert_eq!(report["axe"][page], json!([]), "axe-core on {page}");
    }
    node.stop().await;
}
