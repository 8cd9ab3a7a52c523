//! The 8:05 peak (issue 13): teachers taking a 28-student roll call at the
//! same time, against a single-absence `reportAbsence` of today in the same
//! run. In process, through the GraphQL schema over an App on a fresh
//! PostgreSQL database: every teacher has a class of 28 and a course that
//! started five minutes ago; each call lists two absent and one late student
//! (different ones each time, so every call after the first also corrects
//! the previous one). Goal: a roll call's p99 under three times a report's.

use crate::db;
use anyhow::{bail, Result};
use rand::{rngs::StdRng, Rng, SeedableRng};
use registre_api::context::Caller;
use registre_api::graphql::{build_schema, RegistreSchema};
use registre_app::limits::PersonLimits;
use registre_app::{App, AppConfig};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const STUDENTS: usize = 28;

#[derive(Clone, Debug)]
pub struct Row {
    pub kind: &'static str,
    pub teachers: usize,
    pub requests: usize,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

struct Class {
    teacher: String,
    course: String,
    students: Vec<String>,
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

/// One establishment, `teachers` classes of [`STUDENTS`], a course each.
async fn seed(schema: &RegistreSchema, teachers: usize) -> Result<Vec<Class>> {
    let est = id(
        &run_as(
            schema,
            "admin",
            "mutation($i: CreateEstablishmentInput!) { createEstablishment(input: $i) { id } }",
            json!({"i": {"uai": "0750001A", "name": "Collège de l'heure de pointe"}}),
        )
        .await?,
        "/createEstablishment/id",
    )?;
    let now = chrono::Utc::now();
    let (start, end) = (
        now - chrono::Duration::minutes(5),
        now + chrono::Duration::minutes(50),
    );
    let mut classes = Vec::with_capacity(teachers);
    for t in 0..teachers {
        let class = id(
            &run_as(
                schema,
                "admin",
                "mutation($i: CreateClassInput!) { createClass(input: $i) { id } }",
                json!({"i": {"establishmentId": est, "name": format!("C{t}")}}),
            )
            .await?,
            "/createClass/id",
        )?;
        let register = "mutation($i: RegisterPersonInput!) { registerPerson(input: $i) { id } }";
        let teacher = format!("teacher-{t}");
        let teacher_id = id(
            &run_as(
                schema,
                "admin",
                register,
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
        let mut students = Vec::with_capacity(STUDENTS);
        for s in 0..STUDENTS {
            let external = format!("student-{t}-{s}");
            let person = id(
                &run_as(
                    schema,
                    "admin",
                    register,
                    json!({"i": {"externalId": external, "displayName": external,
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
        classes.push(Class {
            teacher,
            course,
            students,
        });
    }
    Ok(classes)
}

const CALL: &str = "mutation($i: TakeRollCallInput!) { takeRollCall(input: $i) { presentCount } }";
const REPORT: &str = "mutation($i: ReportAbsenceInput!) { reportAbsence(input: $i) { id } }";

/// `per_teacher` requests of `kind` by each of the first `teachers`, all at once.
async fn load(
    schema: &RegistreSchema,
    classes: &Arc<Vec<Class>>,
    kind: &'static str,
    teachers: usize,
    per_teacher: usize,
) -> Result<Row> {
    let started = Instant::now();
    let mut workers = Vec::with_capacity(teachers);
    for t in 0..teachers {
        let schema = schema.clone();
        let classes = classes.clone();
        workers.push(tokio::spawn(async move {
            let class = &classes[t];
            let mut rng = StdRng::seed_from_u64(t as u64);
            let mut latencies = Vec::with_capacity(per_teacher);
            for _ in 0..per_teacher {
                let pick = |rng: &mut StdRng| class.students[rng.gen_range(0..STUDENTS)].clone();
                let (query, vars) = if kind == "takeRollCall" {
                    let mut three = Vec::new();
                    while three.len() < 3 {
                        let s = pick(&mut rng);
                        if !three.contains(&s) {
                            three.push(s);
                        }
                    }
                    (
                        CALL,
                        json!({"i": {"courseId": class.course, "absent": [three[0], three[1]],
                        "late": [{"studentId": three[2], "minutesLate": 7}]}}),
                    )
                } else {
                    let now = chrono::Utc::now();
                    (
                        REPORT,
                        json!({"i": {"studentId": pick(&mut rng), "kind": "ABSENCE",
                        "start": (now - chrono::Duration::minutes(5)).to_rfc3339(),
                        "end": (now + chrono::Duration::minutes(50)).to_rfc3339()}}),
                    )
                };
                let t0 = Instant::now();
                run_as(&schema, &class.teacher, query, vars).await?;
                latencies.push(t0.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await??);
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    Ok(Row {
        kind,
        teachers,
        requests: all.len(),
        elapsed,
        p50: crate::stats::percentile(&all, 0.5),
        p99: crate::stats::percentile(&all, 0.99),
    })
}

/// Every concurrency in `teachers`, roll calls then reports.
pub async fn run(url: &str, teachers: &[usize], per_teacher: usize) -> Result<Vec<Row>> {
    let most = teachers.iter().copied().max().unwrap_or(1);
    db::with_fresh(url, "rollcall", async |db| {
        let store = registre_store::open(Some(&db.url), std::path::Path::new(".")).await?;
        let config = AppConfig {
            limits: PersonLimits::unlimited(),
            ..AppConfig::default()
        };
        let app: Arc<App> = App::new(store, config).await?;
        let schema = build_schema(app.clone());
        let classes = Arc::new(seed(&schema, most).await?);
        let mut rows = Vec::new();
        for &n in teachers {
            rows.push(load(&schema, &classes, "takeRollCall", n, per_teacher).await?);
            rows.push(load(&schema, &classes, "reportAbsence", n, per_teacher).await?);
        }
        app.shutdown().await;
        Ok(rows)
    })
    .await
}

pub fn print(rows: &[Row]) {
    println!("Roll call of {STUDENTS} students (2 absent, 1 late) against one reportAbsence (PostgreSQL, in process)");
    println!("| request | teachers | requests | per second | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} |",
            r.kind,
            r.teachers,
            r.requests,
            r.requests as f64 / r.elapsed.as_secs_f64(),
            r.p50.as_secs_f64() * 1e3,
            r.p99.as_secs_f64() * 1e3,
        );
    }
    for pair in rows.chunks(2) {
        if let [call, report] = pair {
            let ratio = call.p99.as_secs_f64() / report.p99.as_secs_f64().max(1e-9);
            println!(
                "{} teachers: roll call p99 / reportAbsence p99 = {ratio:.2} (goal < 3: {})",
                call.teachers,
                if ratio < 3.0 { "met" } else { "missed" }
            );
        }
    }
}
