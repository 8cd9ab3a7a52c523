//! Interoperability (issue 17), end to end on PostgreSQL: the SIECLE and
//! STS-Web imports as GraphQL mutations with uploaded files (the real
//! server, a multipart request, a signed token), refused with their codes
//! and nothing written; the turn of the school year (the past year's
//! classes and periods closed and read-only, history readable, the new
//! classes from the next import); and the LSU export of a period, whose
//! numbers are the report card's.
#![allow(clippy::unwrap_used)]

mod common;
mod support;

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use common::{codes, str_at, TempDir, World};
use registre_app::import::sample::{self, School};
use registre_domain::{PersonId, StudentId};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const UAI: &str = "0691234X";

fn year() -> i32 {
    registre_domain::evaluation::school_year(chrono::Utc::now().date_naive())
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// The first Monday on or after `d`.
fn monday(mut d: NaiveDate) -> NaiveDate {
    while d.weekday() != Weekday::Mon {
        d += Duration::days(1);
    }
    d
}

fn siecle_zip(school: &School) -> Vec<u8> {
    sample::zip(&[
        ("ElevesSansAdresses.xml", &school.eleves_xml()),
        ("ResponsablesAvecAdresses.xml", &school.responsables_xml()),
    ])
    .unwrap()
}

fn student_id(ine: &str) -> String {
    StudentId::for_person(PersonId::for_external_id(ine)).to_string()
}

// ---- Imports through GraphQL ---------------------------------------------------------

const IMPORT_SIECLE: &str = "mutation($e: ID!, $files: [Upload!]!, $dry: Boolean) { importSiecle(establishmentId: $e, files: $files, dryRun: $dry) { dryRun counts { kind count } changes notes eventsWritten } }";
const IMPORT_STS: &str = "mutation($e: ID!, $file: Upload!, $dry: Boolean) { importSts(establishmentId: $e, file: $file, dryRun: $dry) { dryRun counts { kind count } changes notes eventsWritten } }";

/// Uploaded files: name and bytes.
type Files<'a> = Vec<(&'a str, Vec<u8>)>;

/// POSTs an import as a GraphQL multipart request (the spec's `operations`,
/// `map` and one part per file); answers the JSON body.
async fn upload(
    node: &support::Node,
    token: &str,
    query: &str,
    establishment: &str,
    files: &[(&str, Vec<u8>)],
    dry_run: bool,
) -> Value {
    let boundary = "registre-interop-boundary-91c2";
    let siecle = query.contains("importSiecle");
    let placeholders: Vec<Value> = files.iter().map(|_| Value::Null).collect();
    let variables = if siecle {
        json!({"e": establishment, "files": placeholders, "dry": dry_run})
    } else {
        json!({"e": establishment, "file": null, "dry": dry_run})
    };
    let map: serde_json::Map<String, Value> = (0..files.len())
        .map(|i| {
            let path = if siecle {
                format!("variables.files.{i}")
            } else {
                "variables.file".to_owned()
            };
            (i.to_string(), json!([path]))
        })
        .collect();
    let mut body = Vec::new();
    let mut part = |headers: String, content: &[u8]| {
        body.extend_from_slice(format!("--{boundary}\r\n{headers}\r\n\r\n").as_bytes());
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    };
    part(
        "Content-Disposition: form-data; name=\"operations\"".into(),
        json!({"query": query, "variables": variables})
            .to_string()
            .as_bytes(),
    );
    part(
        "Content-Disposition: form-data; name=\"map\"".into(),
        Value::Object(map).to_string().as_bytes(),
    );
    for (i, (name, bytes)) in files.iter().enumerate() {
        part(
            format!("Content-Disposition: form-data; name=\"{i}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream"),
            bytes,
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    node.http()
        .post(node.url("/graphql"))
        .bearer_auth(token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("POST multipart")
        .json()
        .await
        .expect("a JSON body")
}

fn count(result: &Value, kind: &str) -> i64 {
    result["counts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == kind)
        .map_or(0, |c| c["count"].as_i64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_through_graphql_with_uploaded_files() {
    let (_db, idp, node, _) = support::seeded_node(&[]).await;
    let admin = idp.token(support::ADMIN);
    let ok = |r: Value| {
        assert!(r["errors"].is_null(), "{r}");
        r["data"].clone()
    };
    ok(node.graphql(Some(&admin), "{ me { id } }", json!({})).await);
    let mut establishments = Vec::new();
    for (uai, name) in [(UAI, "Lycée Ampère"), ("0691235Y", "Lycée du Parc")] {
        let d = ok(node
            .graphql(
                Some(&admin),
                "mutation($i: CreateEstablishmentInput!) { createEstablishment(input: $i) { id } }",
                json!({"i": {"uai": uai, "name": name}}),
            )
            .await);
        establishments.push(str_at(&d, "/createEstablishment/id"));
    }
    let (lycee, parc) = (&establishments[0], &establishments[1]);
    for (ext, role, est) in [
        ("head-ampere", "HEAD", lycee),
        ("head-parc", "HEAD", parc),
        ("teacher-ampere", "TEACHER", lycee),
    ] {
        ok(node
            .graphql(
                Some(&admin),
                "mutation($i: RegisterPersonInput!) { registerPerson(input: $i) { id } }",
                json!({"i": {"externalId": ext, "displayName": ext, "roles": [role], "establishmentId": est}}),
            )
            .await);
    }
    let head = idp.token("head-ampere");
    let mut school = School::generated(UAI, year(), 35);
    let files = vec![("export-siecle.zip", siecle_zip(&school))];
    let written = || async { node.store.head().await.unwrap() };

    // Other roles, and a HEAD of another establishment: FORBIDDEN, nothing written.
    let before = written().await;
    for token in [idp.token("teacher-ampere"), idp.token("head-parc")] {
        let r = upload(&node, &token, IMPORT_SIECLE, lycee, &files, false).await;
        assert_eq!(support::error_codes(&r), ["FORBIDDEN"], "{r}");
    }
    assert_eq!(written().await, before);

    // The dry run: the diff, nothing written.
    let r = upload(&node, &head, IMPORT_SIECLE, lycee, &files, true).await;
    let dry = &ok(r)["importSiecle"];
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["eventsWritten"], 0);
    assert_eq!(count(dry, "students registered"), 35);
    assert_eq!(count(dry, "guardian links"), 70);
    assert!(dry["changes"]
        .as_array()
        .unwrap()
        .contains(&json!("+ enrol Éloïse LEFÈVRE in 2NDE1")));
    assert_eq!(written().await, before);

    // The import, then the same file again: nothing.
    let r = upload(&node, &head, IMPORT_SIECLE, lycee, &files, false).await;
    let done = &ok(r)["importSiecle"];
    assert_eq!(done["eventsWritten"], 2 + 35 + 70 + 35 + 70);
    let after_first = written().await;
    assert_eq!(after_first - before, 2 + 35 + 70 + 35 + 70);
    let r = upload(&node, &head, IMPORT_SIECLE, lycee, &files, false).await;
    assert_eq!(ok(r)["importSiecle"]["eventsWritten"], 0);
    assert_eq!(written().await, after_first);

    // The student is readable through GraphQL, in their class.
    let d = ok(node
        .graphql(
            Some(&head),
            "query($id: ID!) { student(id: $id) { person { displayName } schoolClass { name } } }",
            json!({"id": student_id(&school.students[0].ine)}),
        )
        .await);
    assert_eq!(d["student"]["schoolClass"]["name"], "2NDE1");

    // STS-Web: teachers and services; then a service gone ends.
    let sts = school.sts_xml();
    let r = upload(
        &node,
        &head,
        IMPORT_STS,
        lycee,
        &[("sts_emp.xml", sts)],
        false,
    )
    .await;
    assert_eq!(ok(r)["importSts"]["eventsWritten"], 6 + 12);
    let mut fewer = school.clone();
    fewer.teachers[0].services.pop();
    let r = upload(
        &node,
        &head,
        IMPORT_STS,
        lycee,
        &[("sts_emp.xml", fewer.sts_xml())],
        false,
    )
    .await;
    let ended = &ok(r)["importSts"];
    assert_eq!(ended["eventsWritten"], 1, "{ended}");
    assert_eq!(count(ended, "services ended"), 1);

    // A changed export: a class change, a guardian no longer listed, a new
    // first name: exactly their events.
    school.students[0].division = Some("2NDE2".into());
    school.guardians.retain(|g| g.personne_id != "500016");
    school
        .students
        .iter_mut()
        .filter(|s| s.eleve_id == "100006")
        .for_each(|s| s.first_name = "Zoë".into());
    let changed = vec![("export-siecle-2.zip", siecle_zip(&school))];
    let r = upload(&node, &head, IMPORT_SIECLE, lycee, &changed, false).await;
    let minimal = &ok(r)["importSiecle"];
    assert_eq!(minimal["eventsWritten"], 3, "{minimal}");
    for kind in ["class changes", "guardian links ended", "renamings"] {
        assert_eq!(count(minimal, kind), 1, "{kind}: {minimal}");
    }

    // Bad input, each refused naming where, nothing written.
    let before = written().await;
    let eleves = school.eleves_xml();
    let broken = String::from_utf8_lossy(&eleves).replacen("</PRENOM>", "</PRENON>", 1);
    let cases: Vec<(&str, Files, &str)> = vec![
        (
            lycee,
            vec![("ElevesSansAdresses.xml", sample::latin9(&broken))],
            "malformed XML",
        ),
        (
            lycee,
            vec![("truncated.xml", eleves[..eleves.len() / 2].to_vec())],
            "truncated",
        ),
        (
            // The export of the Lycée Ampère, given as the Lycée du Parc's.
            parc,
            vec![("ElevesSansAdresses.xml", eleves.clone())],
            "not the one given as establishmentId",
        ),
        (lycee, vec![("sts.xml", school.sts_xml())], "STS_EDT"),
    ];
    for (establishment, files, expected) in cases {
        let token = if establishment == parc { &admin } else { &head };
        let r = upload(&node, token, IMPORT_SIECLE, establishment, &files, false).await;
        assert_eq!(support::error_codes(&r), ["INVALID_INPUT"], "{r}");
        let message = r["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{expected}: {message}");
    }
    let r = upload(&node, &head, IMPORT_SIECLE, lycee, &[], false).await;
    assert_eq!(support::error_codes(&r), ["INVALID_INPUT"], "{r}");
    assert_eq!(written().await, before);
    node.stop().await;
}

// ---- The school year and the LSU export ----------------------------------------------

/// Runs the `registre` binary against the world's database.
fn registre(w: &World, args: &[&str]) -> std::process::Output {
    common::run_registre(w, args, &[])
}

fn succeeded(o: &std::process::Output) -> String {
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stdout}\n{stderr}");
    stdout.into_owned()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The value of `attribute` in the first `<element ...>` of `xml` that
/// carries `marker`.
fn attribute(xml: &str, element: &str, marker: &str, attribute: &str) -> Option<String> {
    xml.split(&format!("<{element} "))
        .skip(1)
        .map(|rest| &rest[..rest.find('>').unwrap()])
        .find(|tag| tag.contains(marker))
        .and_then(|tag| {
            let key = format!("{attribute}=\"");
            let at = tag.find(&key)? + key.len();
            Some(tag[at..at + tag[at..].find('"')?].to_owned())
        })
}

/// The text of the bilan of the student whose ELEVE_ID is `eleve`.
fn bilan<'a>(xml: &'a str, eleve: &str) -> &'a str {
    let start = xml
        .find(&format!("<bilan-periodique eleve-ref=\"EL_{eleve}\""))
        .unwrap_or_else(|| panic!("no bilan of {eleve}"));
    let end = start + xml[start..].find("</bilan-periodique>").unwrap();
    &xml[start..end]
}

fn lsu_average(v: &Value) -> Option<String> {
    v.as_f64().map(|a| format!("{a:.2}/20"))
}

async fn appreciate(
    n: &common::Node,
    period: &str,
    who: &str,
    student: &str,
    subject: Option<&str>,
    text: &str,
) {
    n.ok(
        who,
        "mutation($i: WriteAppreciationInput!) { writeAppreciation(input: $i) { generalAppreciation } }",
        json!({"i": {"studentId": student, "periodId": period, "subject": subject, "text": text}}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_school_year_turns_and_a_period_is_exported_to_lsu() {
    let w = World::postgres().await;
    let n = &w.node;
    let y = year();
    n.ok("admin", "{ me { id } }", json!({})).await;
    let d = n
        .ok(
            "admin",
            "mutation($i: CreateEstablishmentInput!) { createEstablishment(input: $i) { id } }",
            json!({"i": {"uai": UAI, "name": "Lycée Ampère"}}),
        )
        .await;
    let lycee = str_at(&d, "/createEstablishment/id");
    n.ok(
        "admin",
        "mutation($i: RegisterPersonInput!) { registerPerson(input: $i) { id } }",
        json!({"i": {"externalId": "head-ampere", "displayName": "Mme Proviseure", "roles": ["HEAD"], "establishmentId": lycee}}),
    )
    .await;
    let dir = TempDir::new();
    let school = School::generated(UAI, y, 6);
    let siecle = write(&dir.0, "siecle.zip", &siecle_zip(&school));
    let sts = write(&dir.0, "sts_emp.xml", &school.sts_xml());
    for args in [["import", "siecle", &siecle], ["import", "sts", &sts]] {
        let mut args = args.to_vec();
        args.extend(["--operator", "head-ampere"]);
        succeeded(&registre(&w, &args));
    }
    n.app.consistent().await.unwrap();
    let class = n.app.read(|m| {
        m.classes()
            .find(|c| c.name == "2NDE1")
            .unwrap()
            .id
            .to_string()
    });
    let teacher_of = |code: &str| {
        let t = school
            .teachers
            .iter()
            .find(|t| t.services.iter().any(|(_, s)| s == code))
            .unwrap();
        format!("sts:{UAI}:{}", t.id)
    };
    let (maths, french) = (teacher_of("061300"), teacher_of("020700"));
    let students: Vec<String> = school.students.iter().map(|s| student_id(&s.ine)).collect();

    // The first trimestre: grades, appreciations, an absence over a course, a lateness.
    let d = n
        .ok(
            "head-ampere",
            "mutation($i: DefinePeriodsInput!) { definePeriods(input: $i) { id } }",
            json!({"i": {"establishmentId": lycee, "periods": [
                {"name": "Trimestre 1", "start": day(y, 9, 1).to_string(), "end": day(y, 11, 30).to_string()},
                {"name": "Trimestre 2", "start": day(y, 12, 1).to_string(), "end": (day(y + 1, 3, 1) - Duration::days(1)).to_string()},
                {"name": "Trimestre 3", "start": day(y + 1, 3, 1).to_string(), "end": day(y + 1, 7, 4).to_string()},
            ]}}),
        )
        .await;
    let t1 = d["definePeriods"][0]["id"].as_str().unwrap().to_owned();
    for (teacher, subject, date, scores) in [
        (
            &maths,
            "Mathématiques",
            day(y, 10, 6),
            vec![15.5, 9.0, 12.0],
        ),
        (&french, "Français", day(y, 10, 13), vec![11.0, 14.0]),
    ] {
        let d = n
            .ok(
                teacher,
                "mutation($i: CreateAssessmentInput!) { createAssessment(input: $i) { id } }",
                json!({"i": {"classId": class, "subject": subject, "title": "contrôle",
                             "date": date.to_string(), "coefficient": 1.0, "outOf": 20.0}}),
            )
            .await;
        let assessment = str_at(&d, "/createAssessment/id");
        for (student, score) in students.iter().zip(scores) {
            n.ok(
                teacher,
                "mutation($i: RecordGradeInput!) { recordGrade(input: $i) { id } }",
                json!({"i": {"assessmentId": assessment, "studentId": student, "score": score, "status": "GRADED"}}),
            )
            .await;
        }
    }
    appreciate(
        n,
        &t1,
        &maths,
        &students[0],
        Some("Mathématiques"),
        "Très bon trimestre, élève sérieuse & appliquée.",
    )
    .await;
    let absent = monday(day(y, 10, 1)) + Duration::days(14);
    let at = |d: NaiveDate, h: u32| format!("{d}T{h:02}:00:00Z");
    n.ok(
        "head-ampere",
        "mutation($i: PlanCourseInput!) { planCourse(input: $i) { id } }",
        json!({"i": {"classId": class, "subject": "Mathématiques", "teacherId": PersonId::for_external_id(&maths).to_string(),
                     "start": at(absent, 8), "end": at(absent, 10)}}),
    )
    .await;
    for (kind, d, from, to) in [
        ("ABSENCE", absent, 7, 16),
        ("LATENESS", absent + Duration::days(1), 7, 8),
    ] {
        let mut input =
            json!({"studentId": students[0], "kind": kind, "start": at(d, from), "end": at(d, to)});
        if kind == "LATENESS" {
            input["minutesLate"] = json!(10);
        }
        n.ok(
            &maths,
            "mutation($i: ReportAbsenceInput!) { reportAbsence(input: $i) { id } }",
            json!({ "i": input }),
        )
        .await;
    }
    for (i, student) in students.iter().enumerate().skip(1) {
        appreciate(
            n,
            &t1,
            "head-ampere",
            student,
            None,
            &format!("Ensemble correct ({i})."),
        )
        .await;
    }

    // LSU export: refused while a student has no general appreciation (LSU
    // requires one), and to a HEAD of another establishment; nothing written.
    let out = dir.0.join("lsu.xml");
    let out_arg = out.to_str().unwrap().to_owned();
    let lsu = |operator: &'static str| {
        let args = [
            "export",
            "lsu",
            "--establishment",
            UAI,
            "--period",
            &t1,
            "--out",
            &out_arg,
            "--siecle",
            &siecle,
            "--sts",
            &sts,
            "--operator",
            operator,
        ];
        registre(&w, &args)
    };
    let o = lsu("head-ampere");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && stderr.contains("has no general appreciation"),
        "{stderr}"
    );
    assert!(!out.exists());
    appreciate(
        n,
        &t1,
        "head-ampere",
        &students[0],
        None,
        "Excellent trimestre.",
    )
    .await;
    let o = lsu("head1");
    assert!(!o.status.success() && !out.exists(), "{o:?}");
    succeeded(&lsu("head-ampere"));
    let xml = std::fs::read_to_string(&out).unwrap();
    assert!(xml.contains("xmlns=\"urn:fr:edu:scolarite:lsun:bilans:import\""));
    assert!(xml.contains("<etablissement>0691234X</etablissement>"));

    // Its numbers are the report card's.
    let card_query = "query($s: ID!, $p: ID!) { student(id: $s) { reportCard(periodId: $p) {
        subjects { subject average classAverage appreciation } generalAppreciation
        halfDaysMissed unjustifiedHalfDays latenessCount missedHours } } }";
    for (i, s) in school.students.iter().enumerate() {
        let d = n
            .ok(
                "head-ampere",
                card_query,
                json!({"s": students[i], "p": t1}),
            )
            .await;
        let card = &d["student"]["reportCard"];
        let b = bilan(&xml, &s.eleve_id);
        let vie = |a: &str| attribute(b, "vie-scolaire", "nb-retards", a).unwrap();
        assert_eq!(vie("nb-retards"), card["latenessCount"].to_string());
        assert_eq!(
            vie("nb-abs-injustifiees"),
            card["unjustifiedHalfDays"].to_string()
        );
        let justified = card["halfDaysMissed"].as_u64().unwrap()
            - card["unjustifiedHalfDays"].as_u64().unwrap();
        assert_eq!(vie("nb-abs-justifiees"), justified.to_string());
        assert_eq!(vie("nb-heures-manquees"), card["missedHours"].to_string());
        assert!(b.contains(&format!(
            "<acquis-conseils>{}</acquis-conseils>",
            card["generalAppreciation"].as_str().unwrap()
        )));
        for row in card["subjects"].as_array().unwrap() {
            let code = sample::SUBJECTS
                .iter()
                .find(|(_, label)| *label == row["subject"])
                .unwrap()
                .0;
            let marker = format!("discipline-ref=\"DI_{code}S\"");
            let got = |a: &str| attribute(b, "acquis", &marker, a);
            assert_eq!(got("moyenne-eleve"), lsu_average(&row["average"]), "{row}");
            assert_eq!(
                got("moyenne-structure"),
                lsu_average(&row["classAverage"]),
                "{row}"
            );
            if let Some(text) = row["appreciation"].as_str() {
                assert!(b.contains(&format!(
                    "<appreciation>{}</appreciation>",
                    text.replace('&', "&amp;")
                )));
            }
        }
    }
    // The student absent over a two-hour course, late the next day.
    let first = bilan(&xml, &school.students[0].eleve_id);
    assert!(
        first.contains("nb-retards=\"1\"")
            && first.contains("nb-abs-injustifiees=\"2\"")
            && first.contains("nb-heures-manquees=\"2\""),
        "{first}"
    );

    // A class of the current year is renamed by its HEAD, not by a teacher.
    let rename =
        "mutation($c: ID!, $n: String!) { renameClass(classId: $c, name: $n) { id name } }";
    let r = n
        .run(&maths, rename, json!({"c": class, "n": "2NDE-A"}))
        .await;
    assert_eq!(codes(&r), ["FORBIDDEN"]);
    for name in ["2NDE-A", "2NDE1"] {
        let d = n
            .ok("head-ampere", rename, json!({"c": class, "n": name}))
            .await;
        assert_eq!(d["renameClass"]["name"], name);
    }

    // The new school year: refused to a teacher, to another establishment's
    // HEAD, for a year too far, then started once.
    let start = "mutation($e: ID!, $y: Int!) { startSchoolYear(establishmentId: $e, year: $y) {
        schoolYear classes { id name closedYear } periods { closed } } }";
    let head = n.head().await;
    for (who, year, code) in [
        (maths.as_str(), y + 1, "FORBIDDEN"),
        ("head1", y + 1, "FORBIDDEN"),
        ("head-ampere", y + 5, "INVALID_INPUT"),
    ] {
        let r = n.run(who, start, json!({"e": lycee, "y": year})).await;
        assert_eq!(codes(&r), [code], "{who} {year}");
    }
    assert_eq!(n.head().await, head);
    let d = n
        .ok("head-ampere", start, json!({"e": lycee, "y": y + 1}))
        .await;
    let est = &d["startSchoolYear"];
    assert_eq!(est["schoolYear"], y + 1);
    assert_eq!(est["classes"][0]["closedYear"], y);
    assert!(est["periods"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["closed"] == true));
    let r = n
        .run("head-ampere", start, json!({"e": lycee, "y": y + 1}))
        .await;
    assert_eq!(codes(&r), ["CONFLICT"]);

    // The past year's class is read-only: every change refused, nothing written.
    let head = n.head().await;
    let refusals = [
        (
            "mutation($i: EnrollStudentInput!) { enrollStudent(input: $i) { id } }",
            json!({"i": {"personId": PersonId::for_external_id(&school.students[0].ine).to_string(), "classId": class}}),
        ),
        (
            "mutation($c: ID!, $n: String!) { renameClass(classId: $c, name: $n) { id } }",
            json!({"c": class, "n": "2NDE-A"}),
        ),
        (
            "mutation($i: AssignTeacherInput!) { assignTeacher(input: $i) }",
            json!({"i": {"teacherId": PersonId::for_external_id(&maths).to_string(), "classId": class, "subject": "Physique"}}),
        ),
    ];
    let assessment = json!({"i": {"classId": class, "subject": "Mathématiques", "title": "rentrée",
        "date": day(y + 1, 9, 14).to_string(), "coefficient": 1.0, "outOf": 20.0}});
    let r = n
        .run(
            &maths,
            "mutation($i: CreateAssessmentInput!) { createAssessment(input: $i) { id } }",
            assessment,
        )
        .await;
    assert_eq!(codes(&r), ["CONFLICT"], "{:?}", r.errors);
    assert!(r.errors[0].message.contains("read-only"), "{:?}", r.errors);
    for (query, vars) in refusals {
        let r = n.run("admin", query, vars).await;
        assert_eq!(codes(&r), ["CONFLICT"], "{query}");
        assert!(r.errors[0].message.contains("read-only"), "{:?}", r.errors);
    }
    // Nor does its timetable or its cahier de textes take anything new.
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).date_naive();
    let maths_id = PersonId::for_external_id(&maths).to_string();
    let r = n
        .run(
            "admin",
            "mutation($i: PlanCourseInput!) { planCourse(input: $i) { id } }",
            json!({"i": {"classId": class, "subject": "Mathématiques", "teacherId": maths_id,
                "start": format!("{tomorrow}T08:00:00Z"), "end": format!("{tomorrow}T08:55:00Z")}}),
        )
        .await;
    assert_eq!(codes(&r), ["CONFLICT"], "{:?}", r.errors);
    assert!(r.errors[0].message.contains("read-only"), "{:?}", r.errors);
    let r = n
        .run(
            &maths,
            "mutation($i: AssignHomeworkInput!) { assignHomework(input: $i) { id } }",
            json!({"i": {"classId": class, "subject": "Mathématiques", "title": "exercices",
                "description": "p. 12", "due": tomorrow.to_string()}}),
        )
        .await;
    assert_eq!(codes(&r), ["CONFLICT"], "{:?}", r.errors);
    assert!(r.errors[0].message.contains("read-only"), "{:?}", r.errors);
    assert_eq!(n.head().await, head);

    // The next SIECLE export: a new 2NDE1 of the new year, every student moved.
    let o = registre(
        &w,
        &["import", "siecle", &siecle, "--operator", "head-ampere"],
    );
    let text = succeeded(&o);
    assert!(
        text.contains("1 classes created") && text.contains("6 class changes"),
        "{text}"
    );
    let d = n
        .ok(
            "head-ampere",
            "query($e: ID!) { establishment(id: $e) { classes { id name closedYear students { id } } } }",
            json!({"e": lycee}),
        )
        .await;
    let classes = d["establishment"]["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 2);
    let (past, new): (Vec<&Value>, Vec<&Value>) =
        classes.iter().partition(|c| c["closedYear"] == y);
    assert_eq!(past.len(), 1);
    assert_eq!(past[0]["id"], class.as_str());
    assert_eq!(new[0]["name"], "2NDE1");
    assert!(new[0]["closedYear"].is_null());
    // History: the past class still lists its year's students.
    assert_eq!(past[0]["students"].as_array().unwrap().len(), 6);
    assert_eq!(new[0]["students"].as_array().unwrap().len(), 6);
    let o = registre(&w, &["audit", "verify"]);
    succeeded(&o);
}
