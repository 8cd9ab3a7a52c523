//! Notifications at 8:05 (issue 16): every class of a collège takes its roll
//! call at once, and the guardians of the absent students, who all chose
//! Web Push and e-mail for absences, are told by both. In process, on a
//! fresh PostgreSQL database: an App configured as a delivering node (a
//! VAPID key, an SMTP relay) whose outbox consumer follows the log as in
//! production; the SMTP listener and the push endpoint are real TCP servers
//! of this process (`crate::sinks`), the endpoint checking each VAPID
//! signature and decrypting each payload.
//!
//! Measured: from the moment a class's `takeRollCall` answered (its commit
//! is done by then) to each push request's arrival at the endpoint and to
//! each mail's `DATA` end at the listener, p50/p99/max, and deliveries per
//! second from the first roll call to the last arrival. Checked: every
//! (event, person, channel) owed arrives exactly once and nothing else
//! arrives; the outbox's own rows all end `delivered`.

use crate::db;
use crate::sinks::{self, Browser};
use anyhow::{bail, Context, Result};
use futures::StreamExt;
use registre_api::context::Caller;
use registre_api::graphql::{build_schema, RegistreSchema};
use registre_app::communication::{CommunicationConfig, DeliveryConfig, SmtpConfig};
use registre_app::limits::PersonLimits;
use registre_app::notify::VapidKey;
use registre_app::{App, AppConfig};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Requests in flight while seeding.
const SEEDERS: usize = 16;

#[derive(Debug, Clone, clap::Args)]
pub struct NotifyArgs {
    /// Guardians, each with Web Push and e-mail on for absences; spread
    /// evenly over the students (one child each).
    #[arg(long, default_value_t = 10_000)]
    pub guardians: usize,
    /// Students of the collège.
    #[arg(long, default_value_t = 600)]
    pub students: usize,
    /// Students per class (one roll call per class, all at once).
    #[arg(long, default_value_t = 25)]
    pub class_size: usize,
    /// Share of each class marked absent by its roll call (at least one).
    #[arg(long, default_value_t = 0.1)]
    pub absent: f64,
    /// Notifications the sender claims and sends at once (the node's
    /// default is 64).
    #[arg(long, default_value_t = DeliveryConfig::default().batch)]
    pub batch: usize,
    /// Seconds to wait for the last delivery before reporting what is missing.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
}

#[derive(Debug)]
pub struct Report {
    pub args: NotifyArgs,
    pub classes: usize,
    pub absent_students: usize,
    pub owed_guardians: usize,
    pub seed_time: Duration,
    pub rollcall_p99: Duration,
    pub push: Latencies,
    pub mail: Latencies,
    /// First roll call sent to the last arrival.
    pub span: Duration,
    /// Keys owed but never received, received more than once, received
    /// but not owed.
    pub missing: usize,
    pub duplicated: usize,
    pub unexpected: usize,
    pub rejected: Vec<String>,
    /// Outbox rows by state.
    pub outbox: BTreeMap<String, usize>,
}

#[derive(Debug, Default)]
pub struct Latencies {
    pub received: usize,
    pub owed: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latencies {
    fn of(mut all: Vec<Duration>, owed: usize) -> Self {
        all.sort_unstable();
        Latencies {
            received: all.len(),
            owed,
            p50: crate::stats::percentile(&all, 0.5),
            p99: crate::stats::percentile(&all, 0.99),
            max: all.last().copied().unwrap_or_default(),
        }
    }
}

async fn run_as(schema: &RegistreSchema, who: &str, query: &str, vars: Value) -> Result<Value> {
    let request = async_graphql::Request::new(query)
        .variables(async_graphql::Variables::from_json(vars))
        .data(Caller {
            subject: who.to_owned(),
            admin: who == "admin",
        });
    let response = schema.execute(request).await;
    if !response.errors.is_empty() {
        bail!("{who}: {:?}", response.errors);
    }
    Ok(response.data.into_json()?)
}

fn id(v: &Value, pointer: &str) -> Result<String> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no id at {pointer} in {v}"))
}

const REGISTER: &str = "mutation($i: RegisterPersonInput!) { registerPerson(input: $i) { id } }";

struct Class {
    teacher: String,
    course: String,
    /// Enrolment ids.
    students: Vec<String>,
}

/// The collège: classes of `class_size` with a teacher and a course that
/// began five minutes ago; answers the classes.
async fn seed_classes(schema: &RegistreSchema, args: &NotifyArgs) -> Result<Vec<Class>> {
    let est = id(
        &run_as(
            schema,
            "admin",
            "mutation($i: CreateEstablishmentInput!) { createEstablishment(input: $i) { id } }",
            json!({"i": {"uai": "0750016A", "name": "Collège des avis de 8 h 05"}}),
        )
        .await?,
        "/createEstablishment/id",
    )?;
    let now = chrono::Utc::now();
    let (start, end) = (
        now - chrono::Duration::minutes(5),
        now + chrono::Duration::minutes(50),
    );
    let size = args.class_size.max(1);
    let count = args.students.div_ceil(size);
    let classes = futures::stream::iter(0..count)
        .map(|c| {
            let est = est.clone();
            async move {
                let class = id(
                    &run_as(
                        schema,
                        "admin",
                        "mutation($i: CreateClassInput!) { createClass(input: $i) { id } }",
                        json!({"i": {"establishmentId": est, "name": format!("C{c}")}}),
                    )
                    .await?,
                    "/createClass/id",
                )?;
                let teacher = format!("teacher-{c}");
                let teacher_id = id(
                    &run_as(
                        schema,
                        "admin",
                        REGISTER,
                        json!({"i": {"externalId": teacher, "displayName": teacher,
                        "roles": ["TEACHER"], "establishmentId": est}}),
                    )
                    .await?,
                    "/registerPerson/id",
                )?;
                run_as(
                    schema,
                    "admin",
                    "mutation($i: AssignTeacherInput!) { assignTeacher(input: $i) }",
                    json!({"i": {"teacherId": teacher_id, "classId": class, "subject": "maths"}}),
                )
                .await?;
                let members = (c * size..((c + 1) * size).min(args.students)).collect::<Vec<_>>();
                let mut students = Vec::with_capacity(members.len());
                for s in members {
                    let external = format!("student-{s}");
                    let person = id(
                        &run_as(
                            schema,
                            "admin",
                            REGISTER,
                            json!({"i": {"externalId": external, "displayName": format!("Élève {s}"),
                            "roles": ["STUDENT"]}}),
                        )
                        .await?,
                        "/registerPerson/id",
                    )?;
                    students.push(id(
                        &run_as(
                            schema,
                            "admin",
                            "mutation($i: EnrollStudentInput!) { enrollStudent(input: $i) { id } }",
                            json!({"i": {"personId": person, "classId": class}}),
                        )
                        .await?,
                        "/enrollStudent/id",
                    )?);
                }
                let course = id(
                    &run_as(
                        schema,
                        "admin",
                        "mutation($i: PlanCourseInput!) { planCourse(input: $i) { id } }",
                        json!({"i": {"classId": class, "subject": "maths", "teacherId": teacher_id,
                            "start": start.to_rfc3339(), "end": end.to_rfc3339()}}),
                    )
                    .await?,
                    "/planCourse/id",
                )?;
                Ok::<_, anyhow::Error>(Class {
                    teacher,
                    course,
                    students,
                })
            }
        })
        .buffered(SEEDERS)
        .collect::<Vec<_>>()
        .await;
    classes.into_iter().collect()
}

fn guardian_email(g: usize) -> String {
    format!("responsable-{g}@familles.test")
}

/// Guardian `g`: registered, linked to `student`, e-mail and Web Push on
/// for absences, one browser subscribed at `/push/<g>` of the endpoint.
async fn seed_guardian(
    schema: &RegistreSchema,
    g: usize,
    student: &str,
    push_base: &str,
    browser: &Browser,
) -> Result<()> {
    let external = format!("guardian-{g}");
    let person = id(
        &run_as(
            schema,
            "admin",
            REGISTER,
            json!({"i": {"externalId": external, "displayName": format!("Responsable {g}"),
            "roles": ["GUARDIAN"]}}),
        )
        .await?,
        "/registerPerson/id",
    )?;
    run_as(
        schema,
        "admin",
        "mutation($i: LinkGuardianInput!) { linkGuardian(input: $i) { id } }",
        json!({"i": {"studentId": student, "guardianId": person}}),
    )
    .await?;
    let prefs = "mutation($i: NotificationPreferenceInput!) { setNotificationPreference(input: $i) { channel } }";
    run_as(
        schema,
        &external,
        prefs,
        json!({"i": {"channel": "EMAIL", "absences": true, "grades": false,
            "messages": false, "sanctions": false, "email": guardian_email(g)}}),
    )
    .await?;
    run_as(
        schema,
        &external,
        prefs,
        json!({"i": {"channel": "WEB_PUSH", "absences": true, "grades": false,
            "messages": false, "sanctions": false}}),
    )
    .await?;
    run_as(
        schema,
        &external,
        "mutation($i: WebPushSubscriptionInput!) { registerWebPush(input: $i) }",
        json!({"i": {"endpoint": format!("{push_base}/push/{g}"),
            "p256dh": browser.p256dh(), "auth": browser.auth()}}),
    )
    .await?;
    Ok(())
}

pub async fn run(url: &str, args: &NotifyArgs) -> Result<Report> {
    if args.students == 0 || args.guardians == 0 {
        bail!("--students and --guardians must be at least 1");
    }
    let pem = VapidKey::generate_pem()?;
    let vapid = VapidKey::from_pem(&pem, "mailto:vie-scolaire@college.test")?;
    let browsers: Arc<Vec<Browser>> =
        Arc::new((0..args.guardians).map(|_| Browser::new()).collect());
    let (smtp_url, mut mails) = sinks::smtp_server().await?;
    let (push_base, mut pushes, mut rejected) =
        sinks::push_service(browsers.clone(), vapid.public_key.clone());

    db::with_fresh(url, "notify", async |db| {
        let store = registre_store::open(Some(&db.url), std::path::Path::new(".")).await?;
        let config = AppConfig {
            limits: PersonLimits::unlimited(),
            communication: CommunicationConfig {
                smtp: Some(SmtpConfig {
                    url: smtp_url.clone(),
                    from: "Vie scolaire <vie-scolaire@college.test>".into(),
                }),
                vapid: Some(Arc::new(vapid)),
                delivery: DeliveryConfig {
                    batch: args.batch.max(1),
                    ..DeliveryConfig::default()
                },
                ..CommunicationConfig::default()
            },
            ..AppConfig::default()
        };
        let app: Arc<App> = App::new(store, config).await?;
        let schema = build_schema(app.clone());

        // ---- Seeding ----
        let seeding = Instant::now();
        let classes = seed_classes(&schema, args)
            .await
            .context("seeding classes")?;
        // Student s of the collège, as (class, enrolment id).
        let roster: Vec<(usize, String)> = classes
            .iter()
            .enumerate()
            .flat_map(|(c, class)| class.students.iter().map(move |s| (c, s.clone())))
            .collect();
        let student_of = |g: usize| g % roster.len();
        let seeded = futures::stream::iter(0..args.guardians)
            .map(|g| {
                let (schema, browsers, push_base) = (&schema, &browsers, &push_base);
                let student = &roster[student_of(g)].1;
                async move { seed_guardian(schema, g, student, push_base, &browsers[g]).await }
            })
            .buffer_unordered(SEEDERS)
            .collect::<Vec<_>>()
            .await;
        for r in seeded {
            r.context("seeding guardians")?;
        }
        let seed_time = seeding.elapsed();
        eprintln!(
            "  seeded {} classes, {} students, {} guardians in {seed_time:.2?}",
            classes.len(),
            roster.len(),
            args.guardians
        );

        // ---- Who is owed what ----
        // The absent: the first share of each class (at least one).
        let mut absent_of_class: Vec<Vec<String>> = Vec::with_capacity(classes.len());
        let mut absent_student = vec![false; roster.len()];
        let mut s0 = 0;
        for class in &classes {
            let n = ((class.students.len() as f64 * args.absent).ceil() as usize)
                .clamp(1, class.students.len());
            absent_of_class.push(class.students[..n].to_vec());
            for flag in &mut absent_student[s0..s0 + n] {
                *flag = true;
            }
            s0 += class.students.len();
        }
        let owed: Vec<bool> = (0..args.guardians)
            .map(|g| absent_student[student_of(g)])
            .collect();
        let owed_guardians = owed.iter().filter(|o| **o).count();

        // ---- 8:05: every roll call at once ----
        let started = Instant::now();
        let calls = classes.iter().zip(&absent_of_class).map(|(class, absent)| {
            let schema = &schema;
            async move {
                let t0 = Instant::now();
                run_as(
                    schema,
                    &class.teacher,
                    "mutation($i: TakeRollCallInput!) { takeRollCall(input: $i) { presentCount } }",
                    json!({"i": {"courseId": class.course, "absent": absent}}),
                )
                .await?;
                Ok::<_, anyhow::Error>((t0, Instant::now()))
            }
        });
        let mut committed = Vec::with_capacity(classes.len());
        let mut call_latencies = Vec::with_capacity(classes.len());
        for r in futures::future::join_all(calls).await {
            let (t0, t1) = r.context("roll call")?;
            committed.push(t1);
            call_latencies.push(t1 - t0);
        }
        call_latencies.sort_unstable();
        let rollcall_p99 = crate::stats::percentile(&call_latencies, 0.99);
        let commit_of = |g: usize| committed[roster[student_of(g)].0];

        // ---- Arrivals ----
        // (event, guardian) per channel, with each arrival's latency. A
        // guardian has one child, absent once: the mail's event is that
        // child's absence; the push names its absence.
        let mut push_seen: HashMap<(String, usize), usize> = HashMap::new();
        let mut mail_seen: HashMap<(String, usize), usize> = HashMap::new();
        let mut push_lat = Vec::new();
        let mut mail_lat = Vec::new();
        let mut unexpected = 0usize;
        let mut last = started;
        let by_email: HashMap<String, usize> = (0..args.guardians)
            .map(|g| (guardian_email(g), g))
            .collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.timeout);
        let mut grace: Option<tokio::time::Instant> = None;
        loop {
            let done = push_lat.len() >= owed_guardians && mail_lat.len() >= owed_guardians;
            if done && grace.is_none() {
                // Anything sent twice would follow soon: listen a little more.
                grace = Some(tokio::time::Instant::now() + Duration::from_secs(2));
            }
            let until = grace.unwrap_or(deadline).min(deadline);
            tokio::select! {
                Some(p) = pushes.recv() => {
                    last = last.max(p.at);
                    let g = p.subscriber;
                    let about = p.payload["id"].as_str().unwrap_or_default().to_owned();
                    if g >= owed.len() || !owed[g] || p.payload["kind"] != "ABSENCE" {
                        unexpected += 1;
                        continue;
                    }
                    push_lat.push(p.at.saturating_duration_since(commit_of(g)));
                    *push_seen.entry((about, g)).or_default() += 1;
                }
                Some(m) = mails.recv() => {
                    last = last.max(m.at);
                    for to in &m.to {
                        match by_email.get(to) {
                            Some(&g) if owed[g] => {
                                mail_lat.push(m.at.saturating_duration_since(commit_of(g)));
                                let event = roster[student_of(g)].1.clone();
                                *mail_seen.entry((event, g)).or_default() += 1;
                            }
                            _ => unexpected += 1,
                        }
                    }
                    if m.to.is_empty() || !m.data.contains("Subject:") {
                        unexpected += 1;
                    }
                }
                _ = tokio::time::sleep_until(until) => break,
            }
        }
        let span = last.saturating_duration_since(started);
        let mut rejections = Vec::new();
        while let Ok(r) = rejected.try_recv() {
            rejections.push(r);
        }

        // ---- Exactly once ----
        let mut missing = 0;
        let mut duplicated = 0;
        for seen in [&push_seen, &mail_seen] {
            let mut per_guardian = vec![0usize; args.guardians];
            for ((_, g), n) in seen {
                per_guardian[*g] += 1;
                if *n > 1 {
                    duplicated += n - 1;
                }
            }
            for g in 0..args.guardians {
                if owed[g] {
                    match per_guardian[g] {
                        0 => missing += 1,
                        // Two different events for one absence.
                        n => duplicated += n - 1,
                    }
                }
            }
        }
        let mut outbox = BTreeMap::new();
        for row in app.notification_outbox().await? {
            *outbox.entry(row.state).or_default() += 1;
        }
        app.shutdown().await;
        drop(schema);
        drop(app);
        Ok(Report {
            args: args.clone(),
            classes: classes.len(),
            absent_students: absent_student.iter().filter(|a| **a).count(),
            owed_guardians,
            seed_time,
            rollcall_p99,
            push: Latencies::of(push_lat, owed_guardians),
            mail: Latencies::of(mail_lat, owed_guardians),
            span,
            missing,
            duplicated,
            unexpected,
            rejected: rejections,
            outbox,
        })
    })
    .await
}

pub fn print(r: &Report) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "Notifications at 8:05 (PostgreSQL, in process): {} students in {} classes, one roll call each at once; \
         {} absent; {} guardians with Web Push and e-mail on, {} of them owed a notice on each channel; \
         sender batch {}",
        r.args.students,
        r.classes,
        r.absent_students,
        r.args.guardians,
        r.owed_guardians,
        r.args.batch
    );
    println!(
        "(seeded in {:.1} s; roll call p99 {:.1} ms, latencies count from each roll call's answer)",
        r.seed_time.as_secs_f64(),
        ms(r.rollcall_p99)
    );
    println!("| channel | received / owed | p50 ms | p99 ms | max ms | goal |");
    println!("|---|---|---|---|---|---|");
    for (name, l, goal) in [
        (
            "Web Push (request at the endpoint)",
            &r.push,
            if l_ok(&r.push) && r.push.p99 < Duration::from_secs(2) {
                "p99 < 2 s: met"
            } else {
                "p99 < 2 s: missed"
            },
        ),
        ("e-mail (SMTP DATA end)", &r.mail, ""),
    ] {
        println!(
            "| {name} | {} / {} | {:.1} | {:.1} | {:.1} | {goal} |",
            l.received,
            l.owed,
            ms(l.p50),
            ms(l.p99),
            ms(l.max)
        );
    }
    let delivered = r.push.received + r.mail.received;
    println!(
        "{delivered} deliveries in {:.2} s from the first roll call to the last arrival: {:.0} deliveries/s",
        r.span.as_secs_f64(),
        delivered as f64 / r.span.as_secs_f64().max(1e-9)
    );
    let outbox: Vec<String> = r.outbox.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!("outbox rows: {}", outbox.join(", "));
    let exact = r.missing == 0 && r.duplicated == 0 && r.unexpected == 0 && r.rejected.is_empty();
    println!(
        "exactly once per (event, person, channel): {} missing, {} duplicated, {} unexpected, {} rejected by the endpoint (goal: all zero: {})",
        r.missing,
        r.duplicated,
        r.unexpected,
        r.rejected.len(),
        if exact { "met" } else { "missed" }
    );
    for why in r.rejected.iter().take(5) {
        println!("  rejected {why}");
    }
}

fn l_ok(l: &Latencies) -> bool {
    l.received >= l.owed
}
