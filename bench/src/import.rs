//! `scripts/bench import` (issue 17): a 2,000-student lycée's SIECLE and
//! STS-Web exports imported into an empty roster, then a re-import of exports
//! with 5 % of the students changed (class changes, departures, new
//! guardians). Seconds and events written for each; the re-import appends
//! only the changed facts.

use crate::db;
use anyhow::{anyhow, Result};
use registre_app::commands::CommandContext;
use registre_app::import::sample::{self, School};
use registre_app::import::{self, Input, Source};
use registre_app::policy::Caller;
use registre_app::{App, AppConfig};
use std::time::Instant;

const UAI: &str = "0691234X";

/// One import's cost.
#[derive(Debug)]
pub struct Run {
    pub label: &'static str,
    pub seconds: f64,
    pub changes: usize,
    pub events: usize,
}

pub async fn run(database_url: &str, students: usize) -> Result<Vec<Run>> {
    db::with_fresh(database_url, "import", async |test_db| {
        let store = registre_store::PostgresStore::connect(&test_db.url).await?;
        let app = App::new(store, AppConfig::default())
            .await
            .map_err(|e| anyhow!("starting the application: {e}"))?;
        let result = measure(&app, students).await;
        app.shutdown().await;
        result
    })
    .await
}

async fn measure(app: &App, students: usize) -> Result<Vec<Run>> {
    let caller = Caller {
        subject: "bench-admin".into(),
        admin: true,
    };
    let admin = app.viewer(&caller).await?;
    let cx = CommandContext::person(&admin, uuid::Uuid::now_v7());
    app.execute(
        &cx,
        &registre_domain::roster::CreateEstablishment {
            establishment_id: registre_app::commands::new_id(),
            uai: UAI.into(),
            name: "Lycée du banc d'essai".into(),
            time_zone: None,
        },
        None,
    )
    .await?;
    let mut school = School::generated(UAI, 2026, students);
    let mut runs = Vec::new();
    let siecle = |s: &School| -> Result<Vec<Input>> {
        Ok(vec![Input {
            name: "siecle.zip".into(),
            bytes: sample::zip(&[
                ("ElevesSansAdresses.xml", &s.eleves_xml()),
                ("ResponsablesAvecAdresses.xml", &s.responsables_xml()),
            ])?,
        }])
    };
    let sts = |s: &School| {
        vec![Input {
            name: "sts_emp.xml".into(),
            bytes: s.sts_xml(),
        }]
    };
    runs.push(
        timed(
            app,
            &cx,
            "SIECLE, first import",
            Source::Siecle,
            siecle(&school)?,
        )
        .await?,
    );
    runs.push(timed(app, &cx, "STS-Web, first import", Source::Sts, sts(&school)).await?);
    runs.push(
        timed(
            app,
            &cx,
            "SIECLE, same files again",
            Source::Siecle,
            siecle(&school)?,
        )
        .await?,
    );
    // 5 % of the students change: half move class, a quarter leave, a
    // quarter get a new legal representative.
    let changed = students / 20;
    let divisions = students.div_ceil(30).max(1);
    let mut gone = Vec::new();
    for k in 0..changed {
        let i = k * 20;
        match k % 4 {
            0 | 1 => {
                school.students[i].division = Some(format!("2NDE{}", (i / 30 + 1) % divisions + 1))
            }
            2 => gone.push(school.students[i].eleve_id.clone()),
            _ => school.guardians.push(sample::Guardian {
                personne_id: format!("{}", 900_000 + i),
                last_name: "NOUVEAU".into(),
                first_name: "Aurélien".into(),
                children: vec![(school.students[i].eleve_id.clone(), 1)],
            }),
        }
    }
    school.students.retain(|s| !gone.contains(&s.eleve_id));
    school
        .guardians
        .retain(|g| g.children.iter().all(|(e, _)| !gone.contains(e)));
    runs.push(
        timed(
            app,
            &cx,
            "SIECLE, 5 % changed",
            Source::Siecle,
            siecle(&school)?,
        )
        .await?,
    );
    // One event per changed fact: a move, a departure, a new guardian
    // registered and linked.
    let expected = (0..changed)
        .map(|k| match k % 4 {
            3 => 2,
            // With one division there is no other class to move to.
            0 | 1 if divisions == 1 => 0,
            _ => 1,
        })
        .sum::<usize>();
    if runs[2].events != 0 || runs[3].events != expected {
        return Err(anyhow!(
            "the re-imports wrote {} and {} events; expected 0 and {expected}",
            runs[2].events,
            runs[3].events
        ));
    }
    Ok(runs)
}

async fn timed(
    app: &App,
    cx: &CommandContext<'_>,
    label: &'static str,
    source: Source,
    inputs: Vec<Input>,
) -> Result<Run> {
    let started = Instant::now();
    let files = import::load(source, inputs, &mut |_, _| {}).map_err(|e| anyhow!("{e}"))?;
    app.consistent().await?;
    let today = registre_app::commands::now().date_naive();
    let diff = app
        .read(|m| import::diff(m, &files, today))
        .map_err(|e| anyhow!("{e}"))?;
    let applied = import::apply(app, cx, &diff, &mut |_| {}).await?;
    Ok(Run {
        label,
        seconds: started.elapsed().as_secs_f64(),
        changes: diff.changes.len(),
        events: applied.events,
    })
}
