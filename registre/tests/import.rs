//! Roster import from SIECLE and STS-Web exports (issue 17), end to end: the
//! real `registre import` binary against PostgreSQL, on files the test
//! generates in the real structure and encoding (ISO-8859-15, zipped or
//! not, accents, two legal representatives and a contact per student).
//! First import, re-import (nothing written), a changed export (a class
//! change, a departure by DATE_SORTIE, a student missing, a new guardian:
//! exactly their events), each bad input refused naming its line with
//! nothing written, and a smoke run of the library on the embedded store.
#![allow(clippy::unwrap_used)]

mod common;

use common::{str_at, TempDir, World};
use registre_app::import::sample::{self, School};
use registre_app::import::{self, Input, Source};
use serde_json::json;
use std::path::{Path, PathBuf};

const UAI: &str = "0691234X";
const YEAR: i32 = 2026;

/// Runs the `registre` binary against the world's database.
fn registre(w: &World, args: &[&str]) -> std::process::Output {
    common::run_registre(w, args, &[("REGISTRE_OPERATOR", "admin")])
}

fn out(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A lycée in the world, and the ADMIN operator registered.
async fn lycee(w: &World) -> String {
    let n = &w.node;
    n.ok("admin", "{ me { id } }", json!({})).await;
    let d = n
        .ok(
            "admin",
            "mutation($i: CreateEstablishmentInput!) { createEstablishment(input: $i) { id } }",
            json!({"i": {"uai": UAI, "name": "Lycée Ampère", "timeZone": "Europe/Paris"}}),
        )
        .await;
    str_at(&d, "/createEstablishment/id")
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn siecle_zip(dir: &Path, name: &str, school: &School) -> PathBuf {
    let zip = sample::zip(&[
        ("ElevesSansAdresses.xml", &school.eleves_xml()),
        ("ResponsablesAvecAdresses.xml", &school.responsables_xml()),
    ])
    .unwrap();
    write(dir, name, &zip)
}

/// Runs an import that must succeed; answers its output and how many
/// events it appended.
async fn imported(w: &World, args: &[&str]) -> (String, u64) {
    let before = w.node.head().await;
    let o = registre(w, args);
    let (stdout, stderr) = out(&o);
    assert!(o.status.success(), "{args:?}\n{stdout}\n{stderr}");
    let after = w.node.head().await;
    w.node.app.consistent().await.unwrap();
    (stdout, after - before)
}

/// Runs an import that must be refused, with nothing written; answers the message.
async fn refused(w: &World, args: &[&str]) -> String {
    let before = w.node.head().await;
    let o = registre(w, args);
    let (stdout, stderr) = out(&o);
    assert!(!o.status.success(), "{args:?} was accepted:\n{stdout}");
    assert_eq!(
        w.node.head().await,
        before,
        "{args:?} wrote events: {stderr}"
    );
    stderr
}

/// The line of the first occurrence of `needle` in a generated file.
fn line_of(bytes: &[u8], needle: &str) -> usize {
    let text = encoding_rs::ISO_8859_15.decode(bytes).0;
    let at = text.find(needle).unwrap_or_else(|| panic!("no {needle}"));
    text[..at].matches('\n').count() + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siecle_and_sts_imports_on_postgresql() {
    let w = World::postgres().await;
    let establishment = lycee(&w).await;
    let dir = TempDir::new();
    let mut school = School::generated(UAI, YEAR, 35);
    let first = siecle_zip(&dir.0, "export-siecle.zip", &school);
    let first = first.to_str().unwrap();

    // --dry-run: the diff, counted and listed, and nothing written.
    let (text, written) = imported(&w, &["import", "siecle", "--dry-run", first]).await;
    assert_eq!(written, 0, "{text}");
    for expected in [
        "2 classes created",
        "35 students registered",
        "70 guardians registered",
        "35 enrolments",
        "70 guardian links",
        "+ enrol Éloïse LEFÈVRE in 2NDE1",
        "7 contact person(s) who are not legal representatives",
        "dry run",
    ] {
        assert!(text.contains(expected), "no {expected:?} in\n{text}");
    }

    // The import: one event per change.
    let (text, written) = imported(&w, &["import", "siecle", first]).await;
    assert_eq!(written, 2 + 35 + 70 + 35 + 70, "{text}");
    let student0 = school.students[0].clone();
    w.node.app.read(|m| {
        let p = m
            .person_by_external_id(&student0.ine)
            .expect("the INE is the externalId");
        assert_eq!(p.display_name, "Éloïse LEFÈVRE");
        let s = m.student_of_person(p.id).expect("enrolled");
        assert_eq!(m.class(s.class_id).unwrap().name, "2NDE1");
        assert_eq!(
            m.class(s.class_id).unwrap().establishment_id.to_string(),
            establishment
        );
        let guardians = m.guardians_of(s.id);
        assert_eq!(
            guardians.len(),
            2,
            "the two legal representatives, not the contact"
        );
        assert!(guardians
            .iter()
            .all(|g| g.external_id.starts_with("siecle:0691234X:resp:")));
        // ISO-8859-15's œ (absent from Latin-1) survived the decoding.
        let s2 = m.person_by_external_id(&school.students[2].ine).unwrap();
        assert_eq!(s2.display_name, "Chloé CŒURDACIER");
    });

    // The same file again: nothing.
    let (text, written) = imported(&w, &["import", "siecle", first]).await;
    assert_eq!(written, 0, "{text}");
    assert!(text.contains("0 change(s)"), "{text}");

    // STS-Web, not zipped: teachers and their services.
    let sts = write(&dir.0, "sts_emp_0691234X_2026.xml", &school.sts_xml());
    let sts = sts.to_str().unwrap();
    let (text, written) = imported(&w, &["import", "sts", sts]).await;
    assert_eq!(written, 6 + 12, "{text}");
    let teacher = &school.teachers[1];
    w.node.app.read(|m| {
        let p = m
            .person_by_external_id(&format!("sts:{UAI}:{}", teacher.id))
            .unwrap();
        let class = m.classes().find(|c| c.name == "2NDE2").unwrap();
        assert!(m.teaches(p.id, class.id, "Mathématiques"));
    });
    let (_, written) = imported(&w, &["import", "sts", sts]).await;
    assert_eq!(written, 0);
    // A service gone from STS-Web ends: one TeacherUnassigned.
    let mut fewer = school.clone();
    fewer.teachers[0].services.pop();
    let fewer = write(&dir.0, "sts_emp_fewer.xml", &fewer.sts_xml());
    let (text, written) = imported(&w, &["import", "sts", fewer.to_str().unwrap()]).await;
    assert_eq!(written, 1, "{text}");
    assert!(
        text.contains("no longer teaches Français in 2NDE2") && text.contains("1 services ended"),
        "{text}"
    );
    w.node.app.read(|m| {
        let p = m
            .person_by_external_id(&format!("sts:{UAI}:{}", school.teachers[0].id))
            .unwrap();
        let class = m.classes().find(|c| c.name == "2NDE2").unwrap();
        assert!(!m.teaches(p.id, class.id, "Français"));
    });
    let (_, written) = imported(&w, &["import", "sts", fewer.to_str().unwrap()]).await;
    assert_eq!(written, 0, "an ended service is not ended twice");
    // An STS file is not a SIECLE export.
    let message = refused(&w, &["import", "siecle", sts]).await;
    assert!(message.contains("STS_EDT"), "{message}");

    // A later export: student 0 changes class, student 1 left (DATE_SORTIE),
    // student 3 is no longer listed, student 4 has a new legal representative.
    let today = chrono::Utc::now().date_naive();
    school.students[0].division = Some("2NDE2".into());
    school.students[1].left_on = Some(today - chrono::Duration::days(3));
    let gone = school.students.remove(3);
    school
        .guardians
        .retain(|g| g.children.iter().all(|(e, _)| *e != gone.eleve_id));
    school.guardians.push(sample::Guardian {
        personne_id: "777777".into(),
        last_name: "DE LA FONTAINE".into(),
        first_name: "Bérénice".into(),
        children: vec![(school.students[3].eleve_id.clone(), 1)],
    });
    // A legal representative no longer listed, a new first name.
    school.guardians.retain(|g| g.personne_id != "500016");
    school
        .students
        .iter_mut()
        .filter(|s| s.eleve_id == "100006")
        .for_each(|s| s.first_name = "Zoë".into());
    // A student who arrived and left between two exports: nothing of theirs
    // (nor their guardian) is imported.
    school.students.push(sample::Student {
        eleve_id: "999001".into(),
        ine: "999001999ZZ".into(),
        last_name: "PASSAGÈRE".into(),
        first_name: "Aude".into(),
        division: Some("2NDE1".into()),
        left_on: Some(today - chrono::Duration::days(1)),
    });
    school.guardians.push(sample::Guardian {
        personne_id: "888888".into(),
        last_name: "PASSAGÈRE".into(),
        first_name: "Marc".into(),
        children: vec![("999001".into(), 1)],
    });
    let changed = siecle_zip(&dir.0, "export-siecle-2.zip", &school);
    let changed = changed.to_str().unwrap();
    let (text, _) = imported(&w, &["import", "siecle", "--dry-run", changed]).await;
    for expected in [
        "~ move Éloïse LEFÈVRE from 2NDE1 to 2NDE2",
        "2 departures",
        "1 guardians registered",
        "+ guardian Bérénice DE LA FONTAINE of",
        "- guardian ",
        "1 guardian links ended",
        "~ rename Hélène RIVIÈRE to Zoë RIVIÈRE",
        "1 renamings",
    ] {
        assert!(text.contains(expected), "no {expected:?} in\n{text}");
    }
    let (text, written) = imported(&w, &["import", "siecle", changed]).await;
    // A move, two departures, a guardian registered and linked, a link
    // ended, a renaming: one event each.
    assert_eq!(written, 1 + 2 + 1 + 1 + 1 + 1, "{text}");
    assert!(!text.contains("PASSAGÈRE"), "{text}");
    w.node.app.read(|m| {
        let p = m.person_by_external_id(&student0.ine).unwrap();
        let s = m.student_of_person(p.id).unwrap();
        assert_eq!(m.class(s.class_id).unwrap().name, "2NDE2");
        let left = m.person_by_external_id(&school.students[1].ine).unwrap();
        assert_eq!(left.account_closed_on, school.students[1].left_on);
        assert!(m
            .person_by_external_id(&gone.ine)
            .unwrap()
            .account_closed_on
            .is_some());
        let zoe = school
            .students
            .iter()
            .find(|s| s.eleve_id == "100006")
            .unwrap();
        assert_eq!(
            m.person_by_external_id(&zoe.ine).unwrap().display_name,
            "Zoë RIVIÈRE"
        );
        let unlinked = m
            .person_by_external_id("siecle:0691234X:resp:500016")
            .unwrap();
        assert!(
            m.children_of(unlinked.id).is_empty(),
            "the guardian no longer listed has no child left"
        );
    });
    let (_, written) = imported(&w, &["import", "siecle", changed]).await;
    assert_eq!(written, 0, "a departure is not repeated");

    // Bad input: every case refused, naming where, nothing written. Each
    // file also carries a new student, so a partial write would show.
    school.students.push(sample::Student {
        eleve_id: "424242".into(),
        ine: "424242424XY".into(),
        last_name: "NOUVELLE".into(),
        first_name: "Inès".into(),
        division: Some("2NDE1".into()),
        left_on: None,
    });
    let eleves = school.eleves_xml();
    let responsables = school.responsables_xml();
    let plain = |name: &str, bytes: &[u8]| write(&dir.0, name, bytes).to_str().unwrap().to_owned();
    let resp = plain("ResponsablesAvecAdresses.xml", &responsables);
    // The sound pair is accepted in a dry run (the cases below fail for their own reason).
    let good = plain("ElevesSansAdresses.xml", &eleves);
    let (text, _) = imported(&w, &["import", "siecle", "--dry-run", &good, &resp]).await;
    assert!(text.contains("+ enrol Inès NOUVELLE in 2NDE1"), "{text}");

    // Malformed: a mismatched end tag.
    let broken = String::from_utf8_lossy(&eleves).replacen("</PRENOM>", "</PRENON>", 1);
    let line = line_of(&eleves, "</PRENOM>");
    let m = refused(
        &w,
        &[
            "import",
            "siecle",
            &plain("malformed.xml", &sample::latin9(&broken)),
            &resp,
        ],
    )
    .await;
    assert!(
        m.contains(&format!("line {line}")) && m.contains("malformed XML"),
        "{m}"
    );
    assert!(m.contains("nothing was written"), "{m}");

    // Truncated: the file stops in the middle of the students.
    let cut = &eleves[..eleves.len() / 2];
    let m = refused(
        &w,
        &["import", "siecle", &plain("truncated.xml", cut), &resp],
    )
    .await;
    assert!(m.contains("truncated") && m.contains("line "), "{m}");
    // A truncated zip.
    let zip = sample::zip(&[("ElevesSansAdresses.xml", &eleves)]).unwrap();
    let m = refused(
        &w,
        &[
            "import",
            "siecle",
            &plain("truncated.zip", &zip[..zip.len() - 40]),
        ],
    )
    .await;
    assert!(m.contains("truncated.zip"), "{m}");

    // Mis-encoded: UTF-8 bytes under an ISO-8859-15 declaration.
    let utf8 = encoding_rs::ISO_8859_15.decode(&eleves).0.into_owned();
    // The first accent of the file: the first student's family name.
    let line = line_of(&eleves, "LEFÈVRE");
    let m = refused(
        &w,
        &[
            "import",
            "siecle",
            &plain("utf8.xml", utf8.as_bytes()),
            &resp,
        ],
    )
    .await;
    assert!(
        m.contains(&format!("line {line}, <NOM_DE_FAMILLE>")) && m.contains("UTF-8"),
        "{m}"
    );

    // Unknown UAI.
    let mut elsewhere = school.clone();
    elsewhere.uai = "0999999Z".into();
    let m = refused(
        &w,
        &[
            "import",
            "siecle",
            &plain("elsewhere.xml", &elsewhere.eleves_xml()),
        ],
    )
    .await;
    assert!(
        m.contains("unknown UAI 0999999Z") && m.contains("<UAJ>") && m.contains("line 4"),
        "{m}"
    );

    // A student without a class.
    let mut classless = school.clone();
    classless.students[5].division = None;
    let bytes = classless.eleves_xml();
    let line = line_of(
        &bytes,
        &format!("ELEVE_ID=\"{}\"", classless.students[5].eleve_id),
    );
    let m = refused(
        &w,
        &["import", "siecle", &plain("classless.xml", &bytes), &resp],
    )
    .await;
    assert!(
        m.contains(&format!("line {line}")) && m.contains("has no class"),
        "{m}"
    );

    // Two students exports in one run.
    let m = refused(
        &w,
        &["import", "siecle", &good, &plain("again.xml", &eleves)],
    )
    .await;
    assert!(m.contains("a second students export"), "{m}");

    // A HEAD of another establishment may not import here.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_registre"))
        .args(["import", "siecle", &good, &resp, "--operator", "head1"])
        .env_clear()
        .env("DATABASE_URL", &w.db.as_ref().unwrap().url)
        .env("REGISTRE_LOG", "warn")
        .output()
        .unwrap();
    let (_, stderr) = out(&o);
    assert!(
        !o.status.success() && stderr.contains("needs ADMIN, or HEAD"),
        "{stderr}"
    );

    // The audit still holds: every event in its partition.
    let o = registre(&w, &["audit", "verify"]);
    assert!(o.status.success(), "{:?}", out(&o));
}

/// The library on the embedded store: import, then the same files again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_smoke_on_the_embedded_store() {
    let w = World::sqlite().await;
    lycee(&w).await;
    let school = School::generated(UAI, YEAR, 8);
    let inputs = || {
        vec![
            Input {
                name: "ElevesSansAdresses.xml".into(),
                bytes: school.eleves_xml(),
            },
            Input {
                name: "ResponsablesAvecAdresses.xml".into(),
                bytes: school.responsables_xml(),
            },
        ]
    };
    let app = &w.node.app;
    let operator = registre_app::erasure::operator(app.engine(), "admin").unwrap();
    let cx = registre_app::commands::CommandContext::person(&operator, uuid::Uuid::now_v7());
    let today = chrono::Utc::now().date_naive();
    let mut written = Vec::new();
    for _ in 0..2 {
        let files = import::load(Source::Siecle, inputs(), &mut |_, _| {}).unwrap();
        app.consistent().await.unwrap();
        let diff = app.read(|m| import::diff(m, &files, today)).unwrap();
        let applied = import::apply(app, &cx, &diff, &mut |_| {}).await.unwrap();
        written.push(applied.events);
    }
    assert_eq!(written, [1 + 8 + 16 + 8 + 16, 0]);
}

/// All or nothing: the diff decided, then the roster changed under it (one
/// of the students it registers is registered meanwhile): the import's
/// decision refuses, and none of its other changes (the classes, the
/// students before that one) is written. Decided again, it goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_refused_part_way_writes_nothing() {
    let w = World::postgres().await;
    lycee(&w).await;
    let school = School::generated(UAI, YEAR, 12);
    let inputs = || {
        vec![Input {
            name: "ElevesSansAdresses.xml".into(),
            bytes: school.eleves_xml(),
        }]
    };
    let app = &w.node.app;
    let operator = registre_app::erasure::operator(app.engine(), "admin").unwrap();
    let cx = registre_app::commands::CommandContext::person(&operator, uuid::Uuid::now_v7());
    let today = chrono::Utc::now().date_naive();
    let files = import::load(Source::Siecle, inputs(), &mut |_, _| {}).unwrap();
    app.consistent().await.unwrap();
    let diff = app.read(|m| import::diff(m, &files, today)).unwrap();
    // The last student of the diff, registered by someone else meanwhile.
    let last = school.students.last().unwrap();
    w.node
        .ok(
            "admin",
            "mutation($i: RegisterPersonInput!) { registerPerson(input: $i) { id } }",
            json!({"i": {"externalId": last.ine, "displayName": "Déjà Là", "roles": ["STUDENT"]}}),
        )
        .await;
    let before = w.node.head().await;
    let refused = import::apply(app, &cx, &diff, &mut |_| {}).await;
    assert!(
        matches!(refused, Err(registre_app::ApiError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(w.node.head().await, before, "a refused import wrote events");
    app.read(|m| {
        assert!(
            m.classes().all(|c| c.name != "2NDE1"),
            "the class was written"
        );
        assert!(m.person_by_external_id(&school.students[0].ine).is_none());
    });
    // Decided afresh: everything but the person already there.
    app.consistent().await.unwrap();
    let diff = app.read(|m| import::diff(m, &files, today)).unwrap();
    let applied = import::apply(app, &cx, &diff, &mut |_| {}).await.unwrap();
    // And the name SIECLE gives to the one registered meanwhile.
    assert_eq!(applied.events, 1 + 11 + 12 + 1);
}
