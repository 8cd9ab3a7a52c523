//! LSU export (issue 17): the periodic assessments ("bilans périodiques") of
//! one establishment's period, in the XML the national Livret scolaire
//! unique imports (`lsun-bilans`, namespace
//! `urn:fr:edu:scolarite:lsun:bilans:import`, schema `import-bilan-complet.xsd`
//! version 3.0; docs/interop.md gives the source and the mapping).
//!
//! Every number comes from the report card ([`ReadModel::report_card`]):
//! subject averages and appreciations, the general appreciation, lateness,
//! justified and unjustified half-day absences and hours missed. LSU names
//! students by their SIECLE key (`ELEVE_ID`) and subjects by their national
//! code, which Registre does not keep: both are read from the same SIECLE
//! and STS-Web exports the roster was imported from. Whatever LSU requires
//! and Registre cannot say is refused before anything is written, naming
//! the students or subjects concerned.

use crate::import::Export;
use crate::ApiError;
use chrono::{DateTime, Utc};
use registre_domain::evaluation::school_year;
use registre_domain::{EstablishmentId, PeriodId, Role, StudentId};
use registre_projections::evaluation::ReportCard;
use registre_projections::ReadModel;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

/// The namespace of LSU's import schema.
pub const NAMESPACE: &str = "urn:fr:edu:scolarite:lsun:bilans:import";
/// The schema version written (3.0 is the current one; 2.0 is still read).
pub const SCHEMA_VERSION: &str = "3.0";
/// The one programme element written: Registre records no "éléments de
/// programme", which LSU requires on every subject.
const NO_PROGRAMME_ELEMENT: &str = "Pas d'élément de programme saisi pour la période";

/// An LSU document and the report cards it was written from.
#[derive(Debug)]
pub struct Lsu {
    pub xml: String,
    pub cards: Vec<ReportCard>,
}

/// Students and subjects LSU needs and Registre cannot name, and what else
/// the schema requires that is missing: one line each.
fn refuse(problems: &[String]) -> ApiError {
    ApiError::invalid("lsu", problems.join("; "))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// At most `n` characters, trimmed: LSU bounds its texts (Chaine40, 600, 1000).
fn bounded(s: &str, n: usize) -> String {
    s.trim()
        .chars()
        .take(n)
        .collect::<String>()
        .trim()
        .to_owned()
}

fn average(a: f64) -> String {
    format!("{a:.2}/20")
}

/// The bilans of `period` (a period of `establishment`) for the students now
/// in its classes of the current year. `exports`: the establishment's SIECLE
/// students export (for `id-be`) and its STS-Web export (subject codes,
/// teachers' STS ids), as `import::load` reads them.
pub fn bilans(
    m: &ReadModel,
    establishment: EstablishmentId,
    period: PeriodId,
    exports: &[(String, Export)],
    now: DateTime<Utc>,
) -> Result<Lsu, ApiError> {
    let est = m
        .establishment(establishment)
        .ok_or_else(|| ApiError::NotFound("establishment".into()))?;
    let p = m
        .period(period)
        .filter(|p| p.establishment_id == establishment)
        .ok_or_else(|| ApiError::NotFound("period".into()))?;
    let year = school_year(p.start);
    let same_year: Vec<_> = m
        .periods_of(establishment)
        .into_iter()
        .filter(|q| school_year(q.start) == year)
        .collect();
    let index = same_year.iter().position(|q| q.id == p.id).unwrap_or(0) + 1;

    // What only the national exports know.
    let mut eleve_ids: HashMap<String, String> = HashMap::new();
    let mut subject_codes: HashMap<String, String> = HashMap::new();
    for (_, export) in exports {
        let (uai, field) = match export {
            Export::Sts { uai, .. } => (uai, "sts"),
            Export::Students { uai, .. } | Export::Guardians { uai, .. } => (uai, "siecle"),
        };
        if uai.0 != est.uai {
            return Err(ApiError::invalid(
                field,
                format!("the export is about {}, not {}", uai.0, est.uai),
            ));
        }
        match export {
            Export::Students { students, .. } => {
                for s in students {
                    if let Some(ine) = &s.ine {
                        eleve_ids.insert(ine.clone(), s.eleve_id.clone());
                    }
                    eleve_ids.insert(
                        format!("siecle:{}:eleve:{}", est.uai, s.eleve_id),
                        s.eleve_id.clone(),
                    );
                }
            }
            Export::Sts { services, .. } => {
                for s in services {
                    subject_codes.insert(s.subject.trim().to_lowercase(), s.subject_code.clone());
                }
            }
            Export::Guardians { .. } => {}
        }
    }
    let sts_prefix = format!("sts:{}:", est.uai);
    let sts_id = |person: registre_domain::PersonId| -> Option<u64> {
        let p = m.person(person)?;
        p.external_id
            .strip_prefix(&sts_prefix)?
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
    };

    let mut problems = Vec::new();
    let mut cards = Vec::new();
    let mut students: Vec<(StudentId, String, String)> = Vec::new(); // id, id-be, division
    for class in m.classes_of(establishment) {
        if class.closed.is_some() {
            continue;
        }
        if class.name.trim().is_empty() || class.name.trim().chars().count() > 8 {
            problems.push(format!(
                "class {:?}: LSU names a division by a code of 1 to 8 characters",
                class.name
            ));
        }
        let figures = m.class_figures(class.id, Some(p.range()));
        for s in m.students_of_class(class.id) {
            let Some(person) = m.person(s.person_id) else {
                continue;
            };
            if person.account_closed_on.is_some_and(|on| on <= p.start) || person.erased {
                continue;
            }
            let Some(card) = m.report_card(s.id, period, &figures) else {
                continue;
            };
            match eleve_ids.get(&person.external_id) {
                Some(id) if id.parse::<u64>().is_ok_and(|n| n > 0) => {
                    students.push((s.id, id.clone(), class.name.trim().to_owned()))
                }
                _ => problems.push(format!(
                    "{} ({}) is not in the SIECLE students export: LSU needs their ELEVE_ID",
                    person.display_name, person.external_id
                )),
            }
            if card
                .general_appreciation
                .as_deref()
                .is_none_or(|a| a.trim().is_empty())
            {
                problems.push(format!(
                    "{} has no general appreciation for {}: LSU requires one (acquis-conseils)",
                    person.display_name, p.name
                ));
            }
            if card.subjects.is_empty() {
                problems.push(format!(
                    "{} has no subject in {}: LSU requires at least one",
                    person.display_name, p.name
                ));
            }
            cards.push(card);
        }
    }
    // Disciplines and teachers, in first-seen order of the cards.
    let mut disciplines: BTreeMap<String, (String, String)> = BTreeMap::new(); // key -> (code, label)
    let mut teachers: BTreeMap<u64, String> = BTreeMap::new();
    for card in &cards {
        for row in &card.subjects {
            let key = row.subject.trim().to_lowercase();
            match subject_codes.get(&key) {
                Some(code) if code.chars().count() == 6 => {
                    disciplines
                        .entry(key)
                        .or_insert_with(|| (code.clone(), bounded(&row.subject, 40)));
                }
                _ => {
                    let line = format!(
                        "subject {:?} has no national code in the STS-Web export",
                        row.subject
                    );
                    if !problems.contains(&line) {
                        problems.push(line);
                    }
                }
            }
            match row.teacher.and_then(|t| Some((t, sts_id(t)?))) {
                Some((t, id)) => {
                    teachers
                        .entry(id)
                        .or_insert_with(|| m.display_name(t).to_owned());
                }
                None => {
                    let line = format!(
                        "subject {:?} of {} has no teacher imported from STS-Web: LSU names teachers by their STS id",
                        row.subject,
                        m.class(card.class_id).map_or("?", |c| c.name.as_str())
                    );
                    if !problems.contains(&line) {
                        problems.push(line);
                    }
                }
            }
        }
    }
    if cards.is_empty() {
        problems.push(format!(
            "no student of {} has a report card for {}",
            est.uai, p.name
        ));
    }
    if !problems.is_empty() {
        return Err(refuse(&problems));
    }

    let head = m
        .persons()
        .find(|x| {
            x.establishment_id == Some(establishment) && x.roles.contains(&Role::Head) && !x.erased
        })
        .map_or_else(
            || "Le chef d'établissement".to_owned(),
            |h| h.display_name.clone(),
        );
    let ids: HashMap<StudentId, (String, String)> = students
        .iter()
        .map(|(s, be, d)| (*s, (be.clone(), d.clone())))
        .collect();
    let period_ref = format!("P_{index:02}");
    let verrou = now.format("%Y-%m-%dT%H:%M:%S");

    let mut x = String::with_capacity(4096 + cards.len() * 2048);
    let _ = writeln!(x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    let _ = writeln!(
        x,
        "<lsun-bilans xmlns=\"{NAMESPACE}\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xsi:schemaLocation=\"{NAMESPACE} import-bilan-complet.xsd\" schemaVersion=\"{SCHEMA_VERSION}\">"
    );
    let _ = writeln!(
        x,
        "  <entete>\n    <editeur>Registre</editeur>\n    <application>Registre</application>\n    <etablissement>{}</etablissement>\n  </entete>\n  <donnees>",
        esc(&est.uai)
    );
    let _ = writeln!(
        x,
        "    <responsables-etab>\n      <responsable-etab id=\"RESP_01\" libelle=\"{}\"/>\n    </responsables-etab>",
        esc(&bounded(&head, 100))
    );
    x.push_str("    <eleves>\n");
    let mut seen = BTreeSet::new();
    for (_, be, division) in &students {
        if seen.insert(be.clone()) {
            let _ = writeln!(
                x,
                "      <eleve id=\"EL_{be}\" id-be=\"{be}\" code-division=\"{}\"/>",
                esc(division)
            );
        }
    }
    x.push_str("    </eleves>\n    <periodes>\n");
    let _ = writeln!(
        x,
        "      <periode id=\"{period_ref}\" millesime=\"{year}\" indice=\"{index}\" nb-periodes=\"{}\"/>",
        same_year.len()
    );
    x.push_str("    </periodes>\n    <disciplines>\n");
    for (code, label) in disciplines.values() {
        let _ = writeln!(
            x,
            "      <discipline id=\"DI_{code}S\" code=\"{code}\" modalite-election=\"S\" libelle=\"{}\"/>",
            esc(label)
        );
    }
    x.push_str("    </disciplines>\n    <enseignants>\n");
    for (id, name) in &teachers {
        let _ = writeln!(
            x,
            "      <enseignant id=\"ENS_{id}\" type=\"epp\" id-sts=\"{id}\" nom=\"{}\"/>",
            esc(&bounded(name, 100))
        );
    }
    let _ = writeln!(
        x,
        "    </enseignants>\n    <elements-programme>\n      <element-programme id=\"EP_0000\" libelle=\"{}\"/>\n    </elements-programme>\n    <bilans-periodiques>",
        esc(NO_PROGRAMME_ELEMENT)
    );
    for card in &cards {
        let (be, _) = &ids[&card.student_id];
        let _ = writeln!(
            x,
            "      <bilan-periodique eleve-ref=\"EL_{be}\" periode-ref=\"{period_ref}\" date-conseil-classe=\"{}\" date-scolarite=\"{}\" date-verrou=\"{verrou}\" responsable-etab-ref=\"RESP_01\">\n        <liste-acquis>",
            p.end, p.start
        );
        for row in &card.subjects {
            let (code, _) = &disciplines[&row.subject.trim().to_lowercase()];
            let teacher = row.teacher.and_then(sts_id).unwrap_or_default();
            let _ = write!(
                x,
                "          <acquis discipline-ref=\"DI_{code}S\" enseignant-refs=\"ENS_{teacher}\" element-programme-refs=\"EP_0000\""
            );
            match row.average {
                Some(a) => {
                    let _ = write!(x, " moyenne-eleve=\"{}\"", average(a));
                }
                None => x.push_str(" eleve-non-note=\"true\""),
            }
            match row.class_average {
                Some(a) => {
                    let _ = write!(x, " moyenne-structure=\"{}\"", average(a));
                }
                None => x.push_str(" structure-non-notee=\"true\""),
            }
            match row
                .appreciation
                .as_deref()
                .map(|a| bounded(a, 600))
                .filter(|a| !a.is_empty())
            {
                Some(a) => {
                    let _ = writeln!(
                        x,
                        ">\n            <appreciation>{}</appreciation>\n          </acquis>",
                        esc(&a)
                    );
                }
                None => x.push_str("/>\n"),
            }
        }
        let general = card.general_appreciation.as_deref().unwrap_or_default();
        let _ = writeln!(
            x,
            "        </liste-acquis>\n        <acquis-conseils>{}</acquis-conseils>\n        <vie-scolaire nb-retards=\"{}\" nb-abs-justifiees=\"{}\" nb-abs-injustifiees=\"{}\" nb-heures-manquees=\"{}\"/>\n      </bilan-periodique>",
            esc(&bounded(general, 1000)),
            card.lateness_count,
            card.half_days_missed.saturating_sub(card.unjustified_half_days),
            card.unjustified_half_days,
            card.missed_hours,
        );
    }
    x.push_str("    </bilans-periodiques>\n  </donnees>\n</lsun-bilans>\n");
    Ok(Lsu { xml: x, cards })
}

/// `registre export lsu`: [`bilans`] for an operator who may read them
/// (ADMIN, or HEAD of the establishment), each student's bilan recorded in
/// the access log before the document is handed out, as the report card's
/// reads are.
pub async fn for_operator(
    app: &crate::App,
    operator: &crate::Viewer,
    uai: &str,
    period: PeriodId,
    exports: &[(String, Export)],
) -> Result<Lsu, ApiError> {
    app.consistent().await?;
    let now = crate::commands::now();
    let lsu = app.read(|m| {
        let establishment = m
            .establishment_by_uai(uai)
            .map(|e| e.id)
            .ok_or_else(|| ApiError::NotFound(format!("establishment {uai}")))?;
        if !crate::policy::can_import_roster(operator, establishment) {
            return Err(ApiError::forbidden());
        }
        bilans(m, establishment, period, exports, now)
    })?;
    let subjects: Vec<_> = app.read(|m| {
        lsu.cards
            .iter()
            .filter_map(|c| m.student(c.student_id).map(|s| s.person_id.0))
            .collect()
    });
    app.store()
        .record_access(
            subjects
                .into_iter()
                .map(|subject| registre_store::NewAccess {
                    at: now,
                    viewer_id: operator.person.0,
                    viewer_profile: operator.profile().into(),
                    subject_id: Some(subject),
                    operation: CLI_OPERATION.into(),
                    service: "Notes".into(),
                })
                .collect(),
        )
        .await?;
    Ok(lsu)
}

/// The access log's `operation` for an LSU export from the command line.
pub const CLI_OPERATION: &str = "cli:export lsu";
