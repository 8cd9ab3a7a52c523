//! Roster import from SIECLE (students, guardians) and STS-Web (teachers and
//! their services): `registre import siecle|sts`.
//!
//! An import reads every file of the run ([`load`]: unzip, decode, parse,
//! refuse bad input naming file, line and element), computes the difference
//! with the read model ([`diff`]: the changes that make the roster say what
//! the files say, validated whole), and only then runs them through the
//! command pipeline ([`apply`]), so a refused run writes nothing and the
//! same files imported twice append nothing.

mod formats;
mod read;
pub mod sample;

pub use formats::Export;
pub use read::Input;

use crate::commands::school_day::{MultiCommand, Streams};
use crate::commands::{new_id, CommandContext};
use crate::policy::Issuer;
use crate::{ApiError, App};
use chrono::{DateTime, NaiveDate, Utc};
use registre_domain::{
    roster, text, Aggregate, ClassId, DomainEvent, EstablishmentId, PersonId, Role, StreamName,
    StudentId, Uai,
};
use registre_projections::ReadModel;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

/// A file refused, with where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportError {
    pub file: String,
    pub line: Option<usize>,
    pub element: Option<String>,
    pub message: String,
}

impl ImportError {
    pub(crate) fn file(file: &str, message: String) -> Self {
        Self {
            file: file.to_owned(),
            line: None,
            element: None,
            message,
        }
    }
    fn at(file: &str, line: usize, element: &str, message: String) -> Self {
        Self {
            file: file.to_owned(),
            line: Some(line),
            element: Some(element.to_owned()),
            message,
        }
    }
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if let Some(element) = &self.element {
            write!(f, ", <{element}>")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ImportError {}

/// Which exports a run accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `ElevesSansAdresses.xml` and `ResponsablesAvecAdresses.xml`.
    Siecle,
    /// `sts_emp_<UAI>_<year>.xml`.
    Sts,
}

/// Reads the files of a run. `progress(done, total)` counts bytes parsed.
pub fn load(
    source: Source,
    inputs: Vec<Input>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<(String, Export)>, ImportError> {
    let mut files = Vec::new();
    for input in inputs {
        files.extend(read::expand(input)?);
    }
    let total: u64 = files.iter().map(|f| f.bytes.len() as u64).sum();
    let mut done = 0u64;
    let mut out = Vec::new();
    for file in files {
        let text = read::decode(&file)?;
        let root = read::parse(&file.name, &text, &mut |at| progress(done + at, total))?;
        done += file.bytes.len() as u64;
        progress(done, total);
        let export = formats::read(&file.name, &root)?;
        let accepted = matches!(
            (&export, source),
            (
                Export::Students { .. } | Export::Guardians { .. },
                Source::Siecle
            ) | (Export::Sts { .. }, Source::Sts)
        );
        if !accepted {
            return Err(ImportError::at(
                &file.name,
                root.line,
                &root.name,
                format!(
                    "this export is not read by `registre import {}`",
                    match source {
                        Source::Siecle => "siecle",
                        Source::Sts => "sts",
                    }
                ),
            ));
        }
        out.push((file.name, export));
    }
    Ok(out)
}

/// The external id (the identity provider's `sub`) of an imported person.
/// Students: their INE, which EduConnect and the ENTs carry; without one,
/// the establishment's SIECLE key. Guardians and teachers have no national
/// id in the exports: the establishment's key.
fn student_external_id(uai: &str, s: &formats::SiecleStudent) -> String {
    s.ine
        .clone()
        .unwrap_or_else(|| format!("siecle:{uai}:eleve:{}", s.eleve_id))
}
fn guardian_external_id(uai: &str, personne_id: &str) -> String {
    format!("siecle:{uai}:resp:{personne_id}")
}
fn teacher_external_id(uai: &str, id: &str) -> String {
    format!("sts:{uai}:{id}")
}

/// One change an import makes to the roster.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Change {
    CreateClass {
        name: String,
    },
    RegisterPerson {
        external_id: String,
        name: String,
        role: Role,
    },
    Enroll {
        external_id: String,
        name: String,
        class: String,
        from: Option<String>,
    },
    LinkGuardian {
        student: String,
        student_name: String,
        guardian: String,
        guardian_name: String,
    },
    AssignTeacher {
        class: String,
        teacher: String,
        teacher_name: String,
        subject: String,
    },
    Depart {
        external_id: String,
        name: String,
        on: NaiveDate,
    },
    // interop (issue 17): what a later export no longer says.
    RenamePerson {
        external_id: String,
        from: String,
        to: String,
    },
    UnlinkGuardian {
        student: String,
        student_name: String,
        guardian: String,
        guardian_name: String,
    },
    UnassignTeacher {
        class: String,
        teacher: String,
        teacher_name: String,
        subject: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateClass { name } => write!(f, "+ class {name}"),
            Change::RegisterPerson {
                external_id,
                name,
                role,
            } => {
                write!(f, "+ {} {name} ({external_id})", role.wire_name())
            }
            Change::Enroll {
                name,
                class,
                from: None,
                ..
            } => write!(f, "+ enrol {name} in {class}"),
            Change::Enroll {
                name,
                class,
                from: Some(from),
                ..
            } => {
                write!(f, "~ move {name} from {from} to {class}")
            }
            Change::LinkGuardian {
                student_name,
                guardian_name,
                ..
            } => {
                write!(f, "+ guardian {guardian_name} of {student_name}")
            }
            Change::AssignTeacher {
                class,
                teacher_name,
                subject,
                ..
            } => {
                write!(f, "+ {teacher_name} teaches {subject} in {class}")
            }
            Change::Depart { name, on, .. } => write!(f, "- {name} left on {on}"),
            Change::RenamePerson { from, to, .. } => write!(f, "~ rename {from} to {to}"),
            Change::UnlinkGuardian {
                student_name,
                guardian_name,
                ..
            } => write!(f, "- guardian {guardian_name} of {student_name}"),
            Change::UnassignTeacher {
                class,
                teacher_name,
                subject,
                ..
            } => write!(f, "- {teacher_name} no longer teaches {subject} in {class}"),
        }
    }
}

/// What an import would change, decided whole before anything is written.
#[derive(Clone, Debug)]
pub struct Diff {
    pub establishment: EstablishmentId,
    pub uai: String,
    /// In the order they are applied.
    pub changes: Vec<Change>,
    /// What the files say and Registre keeps as it is (no command for it
    /// yet, or nothing to import): told, never silently dropped.
    pub notes: Vec<String>,
}

impl Diff {
    /// Counts by kind of change, for the summary line.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for c in &self.changes {
            let kind = match c {
                Change::CreateClass { .. } => "classes created",
                Change::RegisterPerson {
                    role: Role::Student,
                    ..
                } => "students registered",
                Change::RegisterPerson {
                    role: Role::Guardian,
                    ..
                } => "guardians registered",
                Change::RegisterPerson { .. } => "teachers registered",
                Change::Enroll { from: None, .. } => "enrolments",
                Change::Enroll { .. } => "class changes",
                Change::LinkGuardian { .. } => "guardian links",
                Change::AssignTeacher { .. } => "services assigned",
                Change::Depart { .. } => "departures",
                Change::RenamePerson { .. } => "renamings",
                Change::UnlinkGuardian { .. } => "guardian links ended",
                Change::UnassignTeacher { .. } => "services ended",
            };
            *counts.entry(kind).or_default() += 1;
        }
        counts
    }

    /// The readable diff `--dry-run` prints.
    pub fn render(&self) -> String {
        let mut out = format!(
            "establishment {}: {} change(s)",
            self.uai,
            self.changes.len()
        );
        for (kind, n) in self.counts() {
            out.push_str(&format!("\n  {n} {kind}"));
        }
        for c in &self.changes {
            out.push_str(&format!("\n{c}"));
        }
        for n in &self.notes {
            out.push_str(&format!("\nnote: {n}"));
        }
        out
    }
}

fn display_name(first: &str, last: &str) -> String {
    format!("{} {}", first.trim(), last.trim())
        .trim()
        .to_owned()
}

/// Checks what a command would refuse, naming the file's line, so that the
/// whole run is refused before its first write.
fn checked_name(file: &str, line: usize, element: &str, name: &str) -> Result<(), ImportError> {
    text::line("displayName", name, text::NAME_MAX)
        .map(drop)
        .map_err(|e| ImportError::at(file, line, element, e.to_string()))
}

fn checked_external_id(
    file: &str,
    line: usize,
    element: &str,
    id: &str,
) -> Result<(), ImportError> {
    if id.is_empty()
        || id.trim() != id
        || id.chars().any(char::is_control)
        || id.chars().count() > text::EXTERNAL_ID_MAX
    {
        return Err(ImportError::at(
            file,
            line,
            element,
            format!("identifier {id:?} is not usable as an externalId"),
        ));
    }
    Ok(())
}

/// The changes that make the roster of the files' establishment say what
/// the files say. `today` dates the departures of students missing from a
/// students export that gives no `DATE_SORTIE`.
pub fn diff(
    m: &ReadModel,
    files: &[(String, Export)],
    today: NaiveDate,
) -> Result<Diff, ImportError> {
    let (first_file, first) = files
        .first()
        .ok_or_else(|| ImportError::file("(no file)", "nothing to import".into()))?;
    let (uai_text, uai_line) = first.uai().clone();
    for (file, export) in files {
        if export.uai().0 != uai_text {
            return Err(ImportError::at(file, export.uai().1, "UAJ", format!(
                "establishment {} differs from {} in {first_file}: import one establishment at a time",
                export.uai().0, uai_text
            )));
        }
    }
    let uai = Uai::parse(&uai_text)
        .map_err(|e| ImportError::at(first_file, uai_line, "UAJ", e.to_string()))?;
    let establishment = m.establishment_by_uai(uai.as_str()).ok_or_else(|| {
        ImportError::at(
            first_file,
            uai_line,
            "UAJ",
            format!("unknown UAI {uai}: no establishment has it in Registre (create it first)"),
        )
    })?;
    let uai = uai.as_str().to_owned();
    // The classes of the current school year: a past year's (closed) class
    // is never imported into, and its name is free for the new year's.
    let classes: HashMap<String, &registre_projections::model::SchoolClass> = m
        .classes_of(establishment.id)
        .into_iter()
        .filter(|c| c.closed.is_none())
        .map(|c| (c.name.trim().to_lowercase(), c))
        .collect();
    let mut new_classes = BTreeSet::new();
    let mut class_names: HashMap<String, String> = HashMap::new();
    let mut want_class =
        |name: &str, file: &str, line: usize, element: &str| -> Result<String, ImportError> {
            let key = name.trim().to_lowercase();
            if let Some(c) = classes.get(&key) {
                return Ok(c.name.clone());
            }
            text::line("name", name, text::NAME_MAX)
                .map_err(|e| ImportError::at(file, line, element, e.to_string()))?;
            let shown = class_names
                .entry(key)
                .or_insert_with(|| name.trim().to_owned())
                .clone();
            new_classes.insert(shown.clone());
            Ok(shown)
        };
    let mut persons = Vec::new();
    let mut enrolments = Vec::new();
    let mut links = Vec::new();
    let mut assignments = Vec::new();
    let mut departures = Vec::new();
    let mut notes = Vec::new();
    let mut registering = HashSet::new();
    let mut register = |persons: &mut Vec<Change>, ext: &str, name: &str, role: Role| match m
        .person_by_external_id(ext)
    {
        None if registering.insert(ext.to_owned()) => persons.push(Change::RegisterPerson {
            external_id: ext.to_owned(),
            name: name.to_owned(),
            role,
        }),
        Some(p) if !p.erased && p.display_name != name && registering.insert(ext.to_owned()) => {
            persons.push(Change::RenamePerson {
                external_id: ext.to_owned(),
                from: p.display_name.clone(),
                to: name.to_owned(),
            })
        }
        _ => {}
    };
    // ELEVE_ID → the student's external id and name, for the guardians file.
    let mut eleves: HashMap<String, (String, String)> = HashMap::new();
    // Students who leave or left: their guardians are not linked anew.
    let mut leaving: HashSet<String> = HashSet::new();
    // Links and services already listed (a file may repeat one).
    let mut seen: BTreeSet<Change> = BTreeSet::new();
    let students_files: Vec<&String> = files
        .iter()
        .filter(|(_, e)| matches!(e, Export::Students { .. }))
        .map(|(f, _)| f)
        .collect();
    if let [_, second, ..] = students_files.as_slice() {
        // Each students export is the whole establishment: with two, each
        // would make the other's students depart.
        return Err(ImportError::file(
            second,
            "a second students export (BEE_ELEVES) in one run: give one".into(),
        ));
    }
    let students_file = !students_files.is_empty();
    for (file, export) in files {
        if let Export::Students { students, .. } = export {
            let mut present = HashSet::new();
            for s in students {
                let ext = student_external_id(&uai, s);
                checked_external_id(file, s.line, "ID_NATIONAL", &ext)?;
                let name = display_name(&s.first_name, &s.last_name);
                checked_name(file, s.line, "ELEVE", &name)?;
                eleves.insert(s.eleve_id.clone(), (ext.clone(), name.clone()));
                present.insert(ext.clone());
                let person = m.person_by_external_id(&ext);
                let closed = person.is_some_and(|p| p.account_closed_on.is_some() || p.erased);
                if closed {
                    leaving.insert(ext.clone());
                }
                if let Some(on) = s.left_on.filter(|on| *on <= today) {
                    leaving.insert(ext.clone());
                    if person.is_some() && !closed {
                        departures.push(Change::Depart {
                            external_id: ext,
                            name,
                            on,
                        });
                    }
                    continue;
                }
                let division = s.division.as_deref().ok_or_else(|| ImportError::at(
                    file, s.line, "ELEVE",
                    format!("student {} (ELEVE_ID {}) has no class: no STRUCTURE of TYPE_STRUCTURE D in STRUCTURES_ELEVE", name, s.eleve_id),
                ))?;
                let class = want_class(division, file, s.line, "CODE_STRUCTURE")?;
                if closed {
                    notes.push(format!("{name} ({ext}) is in the export but their account was closed: not enrolled again"));
                    continue;
                }
                match person {
                    Some(p) if !p.roles.contains(&Role::Student) => {
                        return Err(ImportError::at(
                            file,
                            s.line,
                            "ELEVE",
                            format!("{ext} is registered without the STUDENT role"),
                        ));
                    }
                    _ => {}
                }
                register(&mut persons, &ext, &name, Role::Student);
                let current = person
                    .and_then(|p| m.student_of_person(p.id))
                    .and_then(|st| m.class(st.class_id));
                // A student still in a past year's class moves, whatever its name.
                let stays = current.is_some_and(|c| {
                    c.closed.is_none()
                        && c.name.trim().to_lowercase() == class.trim().to_lowercase()
                });
                let current = current.map(|c| c.name.clone());
                if !stays {
                    enrolments.push(Change::Enroll {
                        external_id: ext,
                        name,
                        class,
                        from: current,
                    });
                }
            }
            // A student of this establishment missing from its students
            // export has left it (in a class of this year or of the last).
            for class in m.classes_of(establishment.id) {
                for student in m.students_of_class(class.id) {
                    let Some(p) = m.person(student.person_id) else {
                        continue;
                    };
                    if present.contains(&p.external_id) || p.account_closed_on.is_some() || p.erased
                    {
                        continue;
                    }
                    departures.push(Change::Depart {
                        external_id: p.external_id.clone(),
                        name: p.display_name.clone(),
                        on: today,
                    });
                }
            }
        }
    }
    for (file, export) in files {
        match export {
            Export::Guardians {
                guardians,
                links: responsible,
                ..
            } => {
                if !students_file {
                    return Err(ImportError::file(file, "ResponsablesAvecAdresses links guardians to students by ELEVE_ID: import it together with ElevesSansAdresses".into()));
                }
                let people: HashMap<&str, &formats::SiecleGuardian> = guardians
                    .iter()
                    .map(|g| (g.personne_id.as_str(), g))
                    .collect();
                let mut contacts = 0;
                for link in responsible {
                    let g = people.get(link.personne_id.as_str()).ok_or_else(|| {
                        ImportError::at(
                            file,
                            link.line,
                            "RESPONSABLE_ELEVE",
                            format!("PERSONNE_ID {} is not in PERSONNES", link.personne_id),
                        )
                    })?;
                    let (student_ext, student_name) =
                        eleves.get(&link.eleve_id).ok_or_else(|| {
                            ImportError::at(
                                file,
                                link.line,
                                "RESPONSABLE_ELEVE",
                                format!("ELEVE_ID {} is not in the students export", link.eleve_id),
                            )
                        })?;
                    if !link.legal {
                        contacts += 1;
                        continue;
                    }
                    let ext = guardian_external_id(&uai, &g.personne_id);
                    let name = display_name(&g.first_name, &g.last_name);
                    checked_name(file, g.line, "PERSONNE", &name)?;
                    let student = m.person_by_external_id(student_ext);
                    if leaving.contains(student_ext) {
                        continue;
                    }
                    let guardian = m.person_by_external_id(&ext);
                    if let Some(p) = guardian.filter(|p| !p.roles.contains(&Role::Guardian)) {
                        return Err(ImportError::at(
                            file,
                            g.line,
                            "PERSONNE",
                            format!("{} is registered without the GUARDIAN role", p.external_id),
                        ));
                    }
                    register(&mut persons, &ext, &name, Role::Guardian);
                    let linked = match (student, guardian) {
                        (Some(s), Some(g)) => m
                            .student_of_person(s.id)
                            .is_some_and(|st| st.guardians.contains(&g.id)),
                        _ => false,
                    };
                    let change = Change::LinkGuardian {
                        student: student_ext.clone(),
                        student_name: student_name.clone(),
                        guardian: ext,
                        guardian_name: name,
                    };
                    if !linked && seen.insert(change.clone()) {
                        links.push(change);
                    }
                }
                // Links of SIECLE guardians the export no longer lists end.
                let listed: HashSet<(&str, String)> = responsible
                    .iter()
                    .filter(|l| l.legal)
                    .filter_map(|l| {
                        let (student, _) = eleves.get(&l.eleve_id)?;
                        Some((student.as_str(), guardian_external_id(&uai, &l.personne_id)))
                    })
                    .collect();
                let imported = format!("siecle:{uai}:resp:");
                for (student_ext, student_name) in eleves.values() {
                    if leaving.contains(student_ext) {
                        continue;
                    }
                    let Some(record) = m
                        .person_by_external_id(student_ext)
                        .and_then(|p| m.student_of_person(p.id))
                    else {
                        continue;
                    };
                    for g in m.guardians_of(record.id) {
                        if g.external_id.starts_with(&imported)
                            && !listed.contains(&(student_ext.as_str(), g.external_id.clone()))
                        {
                            links.push(Change::UnlinkGuardian {
                                student: student_ext.clone(),
                                student_name: student_name.clone(),
                                guardian: g.external_id.clone(),
                                guardian_name: g.display_name.clone(),
                            });
                        }
                    }
                }
                if contacts > 0 {
                    notes.push(format!("{contacts} contact person(s) who are not legal representatives (RESP_LEGAL 0) are not imported"));
                }
            }
            Export::Sts {
                teachers, services, ..
            } => {
                let people: HashMap<&str, &formats::StsTeacher> =
                    teachers.iter().map(|t| (t.id.as_str(), t)).collect();
                for t in teachers {
                    let ext = teacher_external_id(&uai, &t.id);
                    let name = display_name(&t.first_name, &t.last_name);
                    checked_name(file, t.line, "INDIVIDU", &name)?;
                    if let Some(p) = m
                        .person_by_external_id(&ext)
                        .filter(|p| !p.roles.contains(&Role::Teacher))
                    {
                        return Err(ImportError::at(
                            file,
                            t.line,
                            "INDIVIDU",
                            format!("{} is registered without the TEACHER role", p.external_id),
                        ));
                    }
                    register(&mut persons, &ext, &name, Role::Teacher);
                }
                for s in services {
                    let t = people.get(s.teacher_id.as_str()).ok_or_else(|| {
                        ImportError::at(
                            file,
                            s.line,
                            "ENSEIGNANT",
                            format!("ID {} is not an INDIVIDU of INDIVIDUS", s.teacher_id),
                        )
                    })?;
                    text::line("subject", &s.subject, text::SUBJECT_MAX)
                        .map_err(|e| ImportError::at(file, s.line, "SERVICE", e.to_string()))?;
                    let class = want_class(&s.division, file, s.line, "DIVISION")?;
                    let ext = teacher_external_id(&uai, &t.id);
                    let taught = match (
                        m.person_by_external_id(&ext),
                        classes.get(&class.trim().to_lowercase()),
                    ) {
                        (Some(p), Some(c)) => m.teaches(p.id, c.id, &s.subject),
                        _ => false,
                    };
                    let change = Change::AssignTeacher {
                        class,
                        teacher: ext,
                        teacher_name: display_name(&t.first_name, &t.last_name),
                        subject: s.subject.clone(),
                    };
                    if !taught && seen.insert(change.clone()) {
                        assignments.push(change);
                    }
                }
            }
            Export::Students { .. } => {}
        }
        if let Export::Sts { services, .. } = export {
            // Services of STS teachers the export no longer lists end.
            let listed: HashSet<(String, String, String)> = services
                .iter()
                .map(|s| {
                    (
                        s.division.trim().to_lowercase(),
                        teacher_external_id(&uai, &s.teacher_id),
                        s.subject.trim().to_lowercase(),
                    )
                })
                .collect();
            let imported = format!("sts:{uai}:");
            for class in classes.values() {
                for t in m.teachings().filter(|t| t.class_id == class.id) {
                    let Some(teacher) = m.person(t.teacher_id) else {
                        continue;
                    };
                    let key = (
                        class.name.trim().to_lowercase(),
                        teacher.external_id.clone(),
                        t.subject.trim().to_lowercase(),
                    );
                    if teacher.external_id.starts_with(&imported) && !listed.contains(&key) {
                        assignments.push(Change::UnassignTeacher {
                            class: class.name.clone(),
                            teacher: teacher.external_id.clone(),
                            teacher_name: teacher.display_name.clone(),
                            subject: t.subject.clone(),
                        });
                    }
                }
            }
        }
    }
    departures.sort();
    departures.dedup_by(|a, b| matches!((a, b), (Change::Depart { external_id: x, .. }, Change::Depart { external_id: y, .. }) if x == y));
    let mut changes: Vec<Change> = new_classes
        .into_iter()
        .map(|name| Change::CreateClass { name })
        .collect();
    changes.extend(persons);
    changes.extend(enrolments);
    changes.extend(links);
    changes.extend(assignments);
    changes.extend(departures);
    Ok(Diff {
        establishment: establishment.id,
        uai,
        changes,
        notes,
    })
}

impl From<ImportError> for ApiError {
    /// The file, line and element the refusal names, as the message of an
    /// INVALID_INPUT on `files`.
    fn from(e: ImportError) -> Self {
        ApiError::invalid("files", e.to_string())
    }
}

/// What an import through the API did: its diff, and what it wrote (none
/// in a dry run).
#[derive(Clone, Debug)]
pub struct Outcome {
    pub diff: Diff,
    pub applied: Option<Applied>,
}

/// An import asked for through the API (`importSiecle`, `importSts`): who
/// may import into `establishment` is checked before any file is read;
/// then the files are read and checked (off the async runtime), the diff
/// decided on a caught-up read model, refused unless it is about that
/// establishment, and written in one transaction unless `dry_run`.
pub async fn run(
    app: &App,
    cx: &CommandContext<'_>,
    establishment: EstablishmentId,
    source: Source,
    inputs: Vec<Input>,
    dry_run: bool,
) -> Result<Outcome, ApiError> {
    let allowed = cx
        .issuer
        .viewer()
        .is_some_and(|v| crate::policy::can_import_roster(v, establishment));
    if !allowed {
        return Err(ApiError::forbidden());
    }
    if inputs.is_empty() {
        return Err(ApiError::invalid("files", "give at least one file"));
    }
    let files = tokio::task::spawn_blocking(move || load(source, inputs, &mut |_, _| {}))
        .await
        .map_err(|e| ApiError::Internal(format!("reading the import: {e}")))??;
    app.consistent().await?;
    let today = crate::commands::now();
    let diff = app.read(|m| {
        let zone = m
            .establishment(establishment)
            .map(|e| e.time_zone)
            .unwrap_or_default();
        diff(m, &files, zone.today(today))
    })?;
    if diff.establishment != establishment {
        return Err(ApiError::invalid(
            "files",
            format!(
                "the export is about the establishment {}, not the one given as establishmentId",
                diff.uai
            ),
        ));
    }
    if dry_run {
        return Ok(Outcome {
            diff,
            applied: None,
        });
    }
    let applied = apply(app, cx, &diff, &mut |_| {}).await?;
    Ok(Outcome {
        diff,
        applied: Some(applied),
    })
}

/// What [`apply`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub commands: usize,
    pub events: usize,
}

/// Writes the diff: every change decided by its roster command's own
/// decision (the same rules as the mutations), over the streams it touches,
/// and all of them appended in one transaction ([`ImportRoster`]): a
/// refusal or a failure part way writes nothing, and the import can simply
/// be run again. Authorized for the person running the import: ADMIN, or
/// HEAD of the establishment.
pub async fn apply(
    app: &App,
    cx: &CommandContext<'_>,
    diff: &Diff,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Applied, ApiError> {
    // Said before anything is decided, and in words, for the command line.
    let allowed = cx
        .issuer
        .viewer()
        .is_none_or(|v| crate::policy::can_import_roster(v, diff.establishment));
    if !allowed {
        return Err(ApiError::Forbidden(format!(
            "importing into {} needs ADMIN, or HEAD of that establishment",
            diff.uai
        )));
    }
    if diff.changes.is_empty() {
        return Ok(Applied::default());
    }
    let cmd = ImportRoster::new(diff);
    let executed = app.execute_many(cx, &cmd, None).await?;
    progress(diff.changes.len() as u64);
    Ok(Applied {
        commands: diff.changes.len(),
        events: executed.events.len(),
    })
}

/// The whole diff of an import as one command over many streams.
#[derive(Debug, Serialize)]
pub struct ImportRoster<'a> {
    establishment: EstablishmentId,
    uai: &'a str,
    changes: &'a [Change],
    /// The ids of the classes the import creates, by lower-cased name.
    #[serde(skip)]
    new_classes: HashMap<String, ClassId>,
}

impl<'a> ImportRoster<'a> {
    pub fn new(diff: &'a Diff) -> Self {
        let new_classes = diff
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::CreateClass { name } => Some((name.trim().to_lowercase(), new_id())),
                _ => None,
            })
            .collect();
        Self {
            establishment: diff.establishment,
            uai: &diff.uai,
            changes: &diff.changes,
            new_classes,
        }
    }
}

/// What the import is decided with, from the read model: the persons and
/// classes it refers to that exist already, and the existing streams it
/// writes to (new ones are not read: they are appended as new streams).
#[derive(Debug)]
pub struct ImportFacts {
    establishment_exists: bool,
    persons: HashMap<PersonId, roster::PersonSummary>,
    /// Open classes of the establishment by lower-cased name: id, and
    /// whether another open class has the name (for createClass).
    classes: HashMap<String, ClassId>,
    read: Vec<StreamName>,
}

fn person(ext: &str) -> PersonId {
    PersonId::for_external_id(ext)
}

impl ImportRoster<'_> {
    fn class_id(&self, facts: &ImportFacts, name: &str) -> Result<ClassId, ApiError> {
        let key = name.trim().to_lowercase();
        self.new_classes
            .get(&key)
            .or_else(|| facts.classes.get(&key))
            .copied()
            .ok_or_else(|| ApiError::NotFound(format!("class {name}")))
    }
}

impl MultiCommand for ImportRoster<'_> {
    const NAME: &'static str = "importRoster";
    // Classes and persons first, as the diff orders them.
    const OWN_RECORD_FIRST: bool = false;
    type Facts = ImportFacts;

    fn authorize(&self, _: &ReadModel, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| crate::policy::can_import_roster(v, self.establishment))
    }

    fn facts(&self, m: &ReadModel, _: DateTime<Utc>) -> ImportFacts {
        let classes: HashMap<String, ClassId> = m
            .classes_of(self.establishment)
            .into_iter()
            .filter(|c| c.closed.is_none())
            .map(|c| (c.name.trim().to_lowercase(), c.id))
            .collect();
        let mut persons = HashMap::new();
        let mut read = BTreeSet::new();
        let known = |ext: &str, persons: &mut HashMap<PersonId, roster::PersonSummary>| {
            let id = person(ext);
            if let Some(p) = m.person(id) {
                persons.insert(
                    id,
                    roster::PersonSummary {
                        roles: p.roles.clone(),
                        establishment_id: p.establishment_id,
                    },
                );
                true
            } else {
                false
            }
        };
        let student_stream = |ext: &str| {
            let record = StudentId::for_person(person(ext));
            m.student(record)
                .is_some()
                .then(|| StreamName::student(record))
        };
        let class_stream = |name: &str| {
            classes
                .get(&name.trim().to_lowercase())
                .map(|id| StreamName::class(*id))
        };
        for change in self.changes {
            match change {
                Change::CreateClass { .. } | Change::RegisterPerson { .. } => {}
                Change::Enroll { external_id, .. } => {
                    known(external_id, &mut persons);
                    read.extend(student_stream(external_id));
                }
                Change::LinkGuardian {
                    student, guardian, ..
                }
                | Change::UnlinkGuardian {
                    student, guardian, ..
                } => {
                    known(guardian, &mut persons);
                    read.extend(student_stream(student));
                }
                Change::AssignTeacher { class, teacher, .. }
                | Change::UnassignTeacher { class, teacher, .. } => {
                    known(teacher, &mut persons);
                    read.extend(class_stream(class));
                }
                Change::Depart { external_id, .. } | Change::RenamePerson { external_id, .. } => {
                    if known(external_id, &mut persons) {
                        read.insert(StreamName::person(person(external_id)));
                    }
                }
            }
        }
        ImportFacts {
            establishment_exists: m.establishment(self.establishment).is_some(),
            persons,
            classes,
            read: read.into_iter().collect(),
        }
    }

    fn streams(&self, facts: &ImportFacts) -> Vec<StreamName> {
        facts.read.clone()
    }

    fn decide(&self, read: &Streams, facts: &ImportFacts) -> Result<Vec<DomainEvent>, ApiError> {
        // The events decided so far, by stream: each change is decided on
        // the state its stream has after the changes before it.
        let mut decided: HashMap<StreamName, Vec<DomainEvent>> = HashMap::new();
        fn state<A: Aggregate>(
            read: &Streams,
            decided: &HashMap<StreamName, Vec<DomainEvent>>,
            stream: &StreamName,
        ) -> A {
            let mut a: A = read.fold(stream);
            for e in decided.get(stream).into_iter().flatten() {
                a.apply(e);
            }
            a
        }
        let summary = |decided: &HashMap<StreamName, Vec<DomainEvent>>, id: PersonId| {
            let registered: roster::Person = state(read, decided, &StreamName::person(id));
            registered
                .summary()
                .or_else(|| facts.persons.get(&id).cloned())
        };
        let mut out = Vec::new();
        for change in self.changes {
            let events = match change {
                Change::CreateClass { name } => {
                    let cmd = roster::CreateClass {
                        class_id: self.class_id(facts, name)?,
                        establishment_id: self.establishment,
                        name: name.clone(),
                    };
                    let stream = StreamName::class(cmd.class_id);
                    roster::create_class(
                        &state(read, &decided, &stream),
                        &cmd,
                        &roster::ClassFacts {
                            establishment_exists: facts.establishment_exists,
                            name_taken: facts.classes.contains_key(&name.trim().to_lowercase()),
                        },
                    )?
                }
                Change::RegisterPerson {
                    external_id,
                    name,
                    role,
                } => {
                    let cmd = roster::RegisterPerson {
                        external_id: external_id.clone(),
                        display_name: name.clone(),
                        roles: vec![*role],
                        establishment_id: Some(self.establishment),
                    };
                    let stream = StreamName::person(cmd.person_id());
                    roster::register_person(
                        &state(read, &decided, &stream),
                        &cmd,
                        &roster::PersonFacts {
                            establishment_exists: facts.establishment_exists,
                        },
                    )?
                }
                Change::Enroll {
                    external_id, class, ..
                } => {
                    let cmd = roster::EnrollStudent {
                        person_id: person(external_id),
                        class_id: self.class_id(facts, class)?,
                    };
                    let stream = StreamName::student(cmd.student_id());
                    roster::enroll_student(
                        &state(read, &decided, &stream),
                        &cmd,
                        &roster::EnrolmentFacts {
                            person: summary(&decided, cmd.person_id),
                            class_exists: true,
                            class_closed: None,
                        },
                    )?
                }
                Change::LinkGuardian {
                    student, guardian, ..
                } => {
                    let cmd = roster::LinkGuardian {
                        student_id: StudentId::for_person(person(student)),
                        guardian_id: person(guardian),
                    };
                    let stream = StreamName::student(cmd.student_id);
                    roster::link_guardian(
                        &state(read, &decided, &stream),
                        &cmd,
                        &roster::GuardianFacts {
                            guardian: summary(&decided, cmd.guardian_id),
                        },
                    )?
                }
                Change::UnlinkGuardian {
                    student, guardian, ..
                } => {
                    let cmd = roster::UnlinkGuardian {
                        student_id: StudentId::for_person(person(student)),
                        guardian_id: person(guardian),
                    };
                    let stream = StreamName::student(cmd.student_id);
                    roster::unlink_guardian(&state(read, &decided, &stream), &cmd)?
                }
                Change::AssignTeacher {
                    class,
                    teacher,
                    subject,
                    ..
                } => {
                    let cmd = roster::AssignTeacher {
                        class_id: self.class_id(facts, class)?,
                        teacher_id: person(teacher),
                        subject: subject.clone(),
                    };
                    let stream = StreamName::class(cmd.class_id);
                    roster::assign_teacher(
                        &state(read, &decided, &stream),
                        &cmd,
                        &roster::AssignmentFacts {
                            teacher: summary(&decided, cmd.teacher_id),
                        },
                    )?
                }
                Change::UnassignTeacher {
                    class,
                    teacher,
                    subject,
                    ..
                } => {
                    let cmd = roster::UnassignTeacher {
                        class_id: self.class_id(facts, class)?,
                        teacher_id: person(teacher),
                        subject: subject.clone(),
                    };
                    let stream = StreamName::class(cmd.class_id);
                    roster::unassign_teacher(&state(read, &decided, &stream), &cmd)?
                }
                Change::Depart {
                    external_id, on, ..
                } => {
                    let cmd = roster::CloseAccount {
                        person_id: person(external_id),
                        effective_on: *on,
                        reason: format!("départ de l'établissement {} (import SIECLE)", self.uai),
                    };
                    let stream = StreamName::person(cmd.person_id);
                    roster::close_account(&state(read, &decided, &stream), &cmd)?
                }
                Change::RenamePerson {
                    external_id, to, ..
                } => {
                    let cmd = roster::RenamePerson {
                        person_id: person(external_id),
                        display_name: to.clone(),
                    };
                    let stream = StreamName::person(cmd.person_id);
                    roster::rename_person(&state(read, &decided, &stream), &cmd)?
                }
            };
            for e in events {
                decided.entry(e.stream()).or_default().push(e.clone());
                out.push(e);
            }
        }
        Ok(out)
    }
}
