//! Replays for auditors: the read model as the log stood at an instant
//! (`studentAsOf`, `registre replay --until`), and its views written out as
//! plain JSON files.
//!
//! Layout of a replay directory (every file is pretty-printed JSON, ids are
//! UUIDs as in the API):
//!
//! ```text
//! manifest.json                       until, position reached, events applied, file counts
//! establishments/<establishmentId>.json
//!     the establishment, its classes, pending justifications, half-days per
//!     student and month, students flagged by the absenteeism threshold
//! classes/<classId>.json
//!     the class and its students, a gradebook per subject, grade
//!     distributions per assessment, homework load per day, weekly absence
//!     rates, half-days per student and month
//! students/<studentId>.json
//!     the parent view of the student: grades with class averages, subject
//!     averages, overall average, absences with their justification state,
//!     homework
//! ```
//!
//! The usage indicators are not replayed: they are a projection of the access
//! log, which is purged after its retention period and is not part of the
//! record (decision 0010).

use crate::engine::ProjectionError;
use crate::model::ReadModel;
use crate::stats::{AbsenceStats, GradeDistribution, StudentMonth, WeeklyAbsenceRate};
use crate::teacher::{Gradebook, HomeworkDay};
use chrono::{DateTime, NaiveDate, Utc};
use registre_store::{EventStore, LogReader, Position};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

/// Where a replay stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayProgress {
    /// Events read so far (applied or past `until`).
    pub read: u64,
    pub applied: u64,
    /// The log head when the replay started (the bar's length).
    pub head: Position,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplayManifest {
    pub until: DateTime<Utc>,
    /// The last position applied.
    pub position: Position,
    pub events_applied: u64,
    pub establishments: usize,
    pub classes: usize,
    pub students: usize,
}

/// Folds every event recorded at or before `until` (the whole log is read:
/// `recorded_at` is not guaranteed monotonic in positions across nodes).
pub async fn fold_until(
    store: &dyn EventStore,
    until: DateTime<Utc>,
) -> Result<ReadModel, ProjectionError> {
    fold_until_with_progress(store, until, |_| {})
        .await
        .map(|(m, _)| m)
}

async fn fold_until_with_progress(
    store: &dyn EventStore,
    until: DateTime<Utc>,
    mut progress: impl FnMut(ReplayProgress),
) -> Result<(ReadModel, u64), ProjectionError> {
    let head = store.head().await?;
    let mut model = ReadModel::new();
    let mut log = LogReader::new(store, 0);
    let mut p = ReplayProgress {
        read: 0,
        applied: 0,
        head,
    };
    loop {
        let page = log.next_page().await?;
        if page.is_empty() {
            break;
        }
        for e in &page {
            p.read += 1;
            if e.recorded_at <= until {
                model.apply(e)?;
                p.applied += 1;
            }
        }
        progress(p);
    }
    Ok((model, p.applied))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EstablishmentFile<'a> {
    establishment: &'a crate::model::Establishment,
    classes: Vec<&'a crate::model::SchoolClass>,
    pending_justifications: Vec<&'a crate::model::Absence>,
    half_days_by_month: Vec<StudentMonth>,
    flagged_students: Vec<StudentMonth>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClassFile<'a> {
    class: &'a crate::model::SchoolClass,
    students: Vec<StudentLine<'a>>,
    gradebooks: Vec<Gradebook>,
    grade_distributions: Vec<GradeDistribution>,
    homework_load: Vec<HomeworkDay>,
    weekly_absence_rates: Vec<WeeklyAbsenceRate>,
    half_days_by_month: Vec<StudentMonth>,
    absence_stats: Option<AbsenceStats>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StudentLine<'a> {
    student_id: registre_domain::StudentId,
    display_name: &'a str,
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ProjectionError> {
    let bytes = serde_json::to_vec_pretty(value)?;
    std::fs::write(path, bytes)?;
    Ok(())
}

/// Folds the log up to `until` and writes its views under `out_dir` (see the
/// module documentation for the layout). `out_dir` is created if needed.
pub async fn replay_to_dir(
    store: &dyn EventStore,
    until: DateTime<Utc>,
    out_dir: &Path,
    progress: impl FnMut(ReplayProgress),
) -> Result<ReplayManifest, ProjectionError> {
    let (model, applied) = fold_until_with_progress(store, until, progress).await?;
    write_views(&model, until, applied, out_dir)
}

/// Writes the views of a model as the replay layout.
pub fn write_views(
    model: &ReadModel,
    until: DateTime<Utc>,
    events_applied: u64,
    out_dir: &Path,
) -> Result<ReplayManifest, ProjectionError> {
    let establishments_dir = out_dir.join("establishments");
    let classes_dir = out_dir.join("classes");
    let students_dir = out_dir.join("students");
    for d in [&establishments_dir, &classes_dir, &students_dir] {
        std::fs::create_dir_all(d)?;
    }
    let mut counts = (0, 0, 0);
    for e in model.establishments() {
        write_json(
            &establishments_dir.join(format!("{}.json", e.id)),
            &EstablishmentFile {
                establishment: e,
                classes: model.classes_of(e.id),
                pending_justifications: model.pending_justifications(e.id),
                half_days_by_month: model.establishment_half_days_by_month(e.id),
                flagged_students: model.flagged_students(e.id),
            },
        )?;
        counts.0 += 1;
    }
    for class in model.classes.values() {
        write_json(
            &classes_dir.join(format!("{}.json", class.id)),
            &class_file(model, class),
        )?;
        counts.1 += 1;
    }
    for id in model.students.keys() {
        if let Some(record) = model.student_record(*id) {
            write_json(&students_dir.join(format!("{id}.json")), &record)?;
            counts.2 += 1;
        }
    }
    let manifest = ReplayManifest {
        until,
        position: model.position(),
        events_applied,
        establishments: counts.0,
        classes: counts.1,
        students: counts.2,
    };
    write_json(&out_dir.join("manifest.json"), &manifest)?;
    Ok(manifest)
}

fn class_file<'a>(model: &'a ReadModel, class: &'a crate::model::SchoolClass) -> ClassFile<'a> {
    let assessments = model.assessments_of_class(class.id);
    let subjects: BTreeSet<&str> = assessments.iter().map(|a| a.subject.as_str()).collect();
    let homework = model.homework_of_class(class.id, None, None);
    let mut days: Vec<NaiveDate> = homework.iter().map(|h| h.due).collect();
    let mut absence_days: Vec<NaiveDate> = class
        .students
        .iter()
        .flat_map(|s| model.missed_half_days(*s).into_keys().map(|(d, _)| d))
        .collect();
    absence_days.sort();
    days.sort();
    let range = |d: &[NaiveDate]| d.first().copied().zip(d.last().copied());
    ClassFile {
        class,
        students: model
            .students_of_class(class.id)
            .into_iter()
            .map(|s| StudentLine {
                student_id: s.id,
                display_name: model.display_name(s.person_id),
            })
            .collect(),
        gradebooks: subjects
            .iter()
            .map(|s| model.gradebook(class.id, s))
            .collect(),
        grade_distributions: assessments
            .iter()
            .filter_map(|a| model.grade_distribution(a.id))
            .collect(),
        homework_load: range(&days)
            .map(|(from, to)| model.homework_load(class.id, from, to))
            .unwrap_or_default(),
        weekly_absence_rates: range(&absence_days)
            .map(|(from, to)| model.absence_rate_by_week(class.id, from, to))
            .unwrap_or_default(),
        half_days_by_month: model.half_days_by_month(class.id),
        absence_stats: range(&absence_days)
            .map(|(from, to)| model.absence_stats(class.id, from, to)),
    }
}
