//! Evaluation (issue 14): the establishments' periods, the report cards'
//! appreciations, averages over a period with the class's average, minimum
//! and maximum, and the report card itself.
//!
//! Rules (decided here, pinned by the golden test):
//! - a grade belongs to a period when its assessment's date is inside it;
//! - a student's subject average over a period is the weighted /20 average
//!   of their GRADED grades of that subject in it (as `views` does over all
//!   time), their overall average the unweighted mean of those;
//! - the class's average, minimum and maximum of a subject are over the
//!   subject averages of the class's current students who have one; the
//!   class's overall average is the mean of their overall averages;
//! - the rank is 1 + the number of classmates with a strictly higher overall
//!   average (ties share a rank); none without an overall average;
//! - half-days missed and unjustified are those of `stats` whose local date is
//!   in the period; lateness counts LATENESS entries starting in it (local);
//! - hours missed are the lessons of the class's timetable in the period
//!   that the student's absences overlap (interop, issue 17: LSU);
//! - a report card is final once its period is closed.

use crate::model::ReadModel;
use crate::stats::HalfDayStanding;
use crate::views::{mean, on_20, weighted_average};
use chrono::NaiveDate;
use registre_domain::events::{AppreciationWritten, PeriodsDefined};
use registre_domain::{AbsenceKind, ClassId, EstablishmentId, PeriodId, PersonId, StudentId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Period {
    pub id: PeriodId,
    pub establishment_id: EstablishmentId,
    pub name: String,
    pub start: NaiveDate,
    /// Inclusive.
    pub end: NaiveDate,
    pub closed: bool,
}

impl Period {
    pub fn contains(&self, day: NaiveDate) -> bool {
        self.start <= day && day <= self.end
    }
    pub fn range(&self) -> DateRange {
        (self.start, self.end)
    }
}

/// Inclusive first and last day.
pub type DateRange = (NaiveDate, NaiveDate);

/// The appreciations of one student's report card for one period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Appreciations {
    pub general: Option<String>,
    pub subjects: BTreeMap<String, String>,
}

/// The read model's evaluation state (one field of `ReadModel`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) periods: BTreeMap<PeriodId, Period>,
    /// Each establishment's periods, by start.
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) by_establishment: BTreeMap<EstablishmentId, Vec<PeriodId>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) appreciations: BTreeMap<StudentId, BTreeMap<PeriodId, Appreciations>>,
}

impl Evaluation {
    /// Nothing to keep: left out of the model's JSON, so that the snapshots
    /// of logs without periods read as before.
    pub fn is_empty(&self) -> bool {
        self.periods.is_empty() && self.appreciations.is_empty()
    }

    pub(crate) fn periods_defined(&mut self, e: PeriodsDefined) {
        let list = self.by_establishment.entry(e.establishment_id).or_default();
        for p in e.periods {
            list.push(p.period_id);
            self.periods.insert(
                p.period_id,
                Period {
                    id: p.period_id,
                    establishment_id: e.establishment_id,
                    name: p.name,
                    start: p.start,
                    end: p.end,
                    closed: false,
                },
            );
        }
        let periods = &self.periods;
        list.sort_by_key(|id| periods.get(id).map(|p| (p.start, p.id)));
    }

    pub(crate) fn set_closed(&mut self, period: PeriodId, closed: bool) {
        if let Some(p) = self.periods.get_mut(&period) {
            p.closed = closed;
        }
    }

    pub(crate) fn appreciation_written(&mut self, e: AppreciationWritten) {
        let sheet = self
            .appreciations
            .entry(e.student_id)
            .or_default()
            .entry(e.period_id)
            .or_default();
        match e.subject {
            None => sheet.general = Some(e.text),
            Some(s) => {
                sheet.subjects.insert(s, e.text);
            }
        }
    }

    /// Erasure: the student's appreciations read as erased.
    pub(crate) fn erase_appreciations(&mut self, student: StudentId, erased: &str) {
        for sheet in self
            .appreciations
            .get_mut(&student)
            .into_iter()
            .flat_map(|m| m.values_mut())
        {
            if let Some(g) = &mut sheet.general {
                *g = erased.to_owned();
            }
            for text in sheet.subjects.values_mut() {
                *text = erased.to_owned();
            }
        }
    }
}

/// One subject's figures for a class over a period (or all time).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassSubject {
    pub average: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// A class's figures over a period (or all time): what every report card of
/// the class shares, computed once per class.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassFigures {
    pub subjects: BTreeMap<String, ClassSubject>,
    /// Each current student's overall average.
    pub overall: BTreeMap<StudentId, Option<f64>>,
    pub overall_average: Option<f64>,
    pub class_size: u32,
}

impl ClassFigures {
    /// 1 = the highest overall average; ties share a rank.
    pub fn rank_of(&self, student: StudentId) -> Option<u32> {
        let mine = self.overall.get(&student).copied().flatten()?;
        let above = self
            .overall
            .values()
            .filter(|o| o.is_some_and(|o| o > mine))
            .count();
        Some(u32::try_from(above).unwrap_or(u32::MAX).saturating_add(1))
    }
}

/// One subject row over a period: the student's and the class's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectRow {
    pub subject: String,
    pub average: Option<f64>,
    pub class_average: Option<f64>,
    pub class_min: Option<f64>,
    pub class_max: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportCardSubject {
    pub subject: String,
    pub teacher: Option<PersonId>,
    pub average: Option<f64>,
    pub class_average: Option<f64>,
    pub class_min: Option<f64>,
    pub class_max: Option<f64>,
    pub appreciation: Option<String>,
}

/// A student's report card (bulletin) for one period.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportCard {
    pub student_id: StudentId,
    pub class_id: ClassId,
    pub period: Period,
    pub subjects: Vec<ReportCardSubject>,
    pub overall_average: Option<f64>,
    pub class_overall_average: Option<f64>,
    pub rank: Option<u32>,
    pub class_size: u32,
    pub general_appreciation: Option<String>,
    pub half_days_missed: u32,
    pub unjustified_half_days: u32,
    pub lateness_count: u32,
    // interop (issue 17)
    /// Hours of lessons missed ([`ReadModel::missed_hours_in`]).
    pub missed_hours: u32,
    pub r#final: bool,
}

fn in_range(range: Option<DateRange>, day: NaiveDate) -> bool {
    range.is_none_or(|(from, to)| from <= day && day <= to)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl ReadModel {
    // ---- Periods -----------------------------------------------------------

    pub fn period(&self, id: PeriodId) -> Option<&Period> {
        self.evaluation.periods.get(&id)
    }

    /// An establishment's periods, by start.
    pub fn periods_of(&self, establishment: EstablishmentId) -> Vec<&Period> {
        self.evaluation
            .by_establishment
            .get(&establishment)
            .into_iter()
            .flatten()
            .filter_map(|p| self.evaluation.periods.get(p))
            .collect()
    }

    /// The period of the class's establishment containing `day`, if any.
    pub fn period_at(&self, class: ClassId, day: NaiveDate) -> Option<&Period> {
        let establishment = self.establishment_of_class(class)?;
        self.periods_of(establishment)
            .into_iter()
            .find(|p| p.contains(day))
    }

    /// A period of the student's establishment (`None`: no such period there).
    pub fn period_of_student(&self, student: StudentId, period: PeriodId) -> Option<&Period> {
        let establishment = self.establishment_of_student(student)?;
        self.period(period)
            .filter(|p| p.establishment_id == establishment)
    }

    pub fn appreciations(&self, student: StudentId, period: PeriodId) -> Option<&Appreciations> {
        self.evaluation.appreciations.get(&student)?.get(&period)
    }

    // ---- Averages over a period -----------------------------------------------

    /// The student's weighted /20 average per subject over `range` (all time
    /// when `None`), with every subject they have a grade of in it.
    pub fn subject_averages_in(
        &self,
        student: StudentId,
        range: Option<DateRange>,
    ) -> BTreeMap<String, Option<f64>> {
        let mut by_subject: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
        for g in self
            .grades_by_student
            .get(&student)
            .into_iter()
            .flatten()
            .filter_map(|g| self.grades.get(g))
        {
            let Some(a) = self.assessments.get(&g.assessment_id) else {
                continue;
            };
            if !in_range(range, a.date) {
                continue;
            }
            let entry = by_subject.entry(a.subject.as_str()).or_default();
            if let Some(score) = on_20(g, a) {
                entry.push((score, a.coefficient));
            }
        }
        by_subject
            .into_iter()
            .map(|(subject, items)| (subject.to_owned(), weighted_average(items)))
            .collect()
    }

    /// The student's overall average over `range`.
    pub fn overall_average_in(&self, student: StudentId, range: Option<DateRange>) -> Option<f64> {
        mean(
            self.subject_averages_in(student, range)
                .into_values()
                .flatten(),
        )
    }

    /// The class's figures over `range`: one pass over its current students.
    pub fn class_figures(&self, class: ClassId, range: Option<DateRange>) -> ClassFigures {
        let mut per_subject: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut overall = BTreeMap::new();
        let students: Vec<StudentId> = self
            .classes
            .get(&class)
            .map(|c| c.students.iter().copied().collect())
            .unwrap_or_default();
        for s in &students {
            let averages = self.subject_averages_in(*s, range);
            overall.insert(*s, mean(averages.values().copied().flatten()));
            for (subject, average) in averages {
                per_subject.entry(subject).or_default().extend(average);
            }
        }
        let subjects = per_subject
            .into_iter()
            .map(|(subject, list)| {
                let figures = ClassSubject {
                    average: mean(list.iter().copied()),
                    min: list.iter().copied().reduce(f64::min),
                    max: list.iter().copied().reduce(f64::max),
                };
                (subject, figures)
            })
            .collect();
        ClassFigures {
            subjects,
            overall_average: mean(overall.values().copied().flatten()),
            overall,
            class_size: count(students.len()),
        }
    }

    /// The subjects of a student's rows over `range`: those they have a grade
    /// of, and those of the class's assessments, in it.
    fn subjects_in(
        &self,
        student: StudentId,
        class: ClassId,
        range: Option<DateRange>,
    ) -> BTreeSet<String> {
        let mut subjects: BTreeSet<String> = self
            .subject_averages_in(student, range)
            .into_keys()
            .collect();
        subjects.extend(
            self.assessments_of_class(class)
                .into_iter()
                .filter(|a| in_range(range, a.date))
                .map(|a| a.subject.clone()),
        );
        subjects
    }

    /// One row per subject over `range` with the class's figures (`class`:
    /// [`Self::class_figures`] of the student's class over the same range).
    pub fn subject_rows(
        &self,
        student: StudentId,
        range: Option<DateRange>,
        class: &ClassFigures,
    ) -> Vec<SubjectRow> {
        let Some(s) = self.students.get(&student) else {
            return vec![];
        };
        let own = self.subject_averages_in(student, range);
        self.subjects_in(student, s.class_id, range)
            .into_iter()
            .map(|subject| {
                let figures = class.subjects.get(&subject).cloned().unwrap_or_default();
                SubjectRow {
                    average: own.get(&subject).copied().flatten(),
                    class_average: figures.average,
                    class_min: figures.min,
                    class_max: figures.max,
                    subject,
                }
            })
            .collect()
    }

    /// The teacher of a class's subject: the one assigned, else the author
    /// of its latest assessment.
    pub fn teacher_of(&self, class: ClassId, subject: &str) -> Option<PersonId> {
        self.teachings
            .iter()
            .find(|t| t.class_id == class && t.subject == subject)
            .map(|t| t.teacher_id)
            .or_else(|| {
                self.assessments_of_class(class)
                    .into_iter()
                    .rev()
                    .find(|a| a.subject == subject)
                    .map(|a| a.teacher_id)
            })
    }

    /// Half-days missed, unjustified half-days and lateness of a student
    /// over `range`.
    pub fn attendance_in(&self, student: StudentId, range: DateRange) -> (u32, u32, u32) {
        let missed = self.missed_half_days(student);
        let (mut all, mut unjustified) = (0u32, 0u32);
        for ((day, _), standing) in missed {
            if in_range(Some(range), day) {
                all += 1;
                if standing == HalfDayStanding::Unjustified {
                    unjustified += 1;
                }
            }
        }
        let zone = self
            .students
            .get(&student)
            .map(|s| self.zone_of_class(s.class_id))
            .unwrap_or(chrono_tz::Europe::Paris);
        let lateness = self
            .absences_of(student)
            .into_iter()
            .filter(|a| {
                a.kind == AbsenceKind::Lateness
                    && in_range(Some(range), a.start.with_timezone(&zone).date_naive())
            })
            .count();
        (all, unjustified, count(lateness))
    }

    // interop (issue 17)
    /// Hours of lessons a student missed over `range`: the time each
    /// course of their class (not cancelled, local date in the range)
    /// overlaps their absences (not lateness), summed and rounded to the
    /// nearest hour, as LSU's `nb-heures-manquees` counts them.
    pub fn missed_hours_in(&self, student: StudentId, range: DateRange) -> u32 {
        let Some(s) = self.students.get(&student) else {
            return 0;
        };
        let absences: Vec<_> = self
            .absences_of(student)
            .into_iter()
            .filter(|a| a.kind != AbsenceKind::Lateness)
            .collect();
        let minutes: i64 = self
            .class_timetable(s.class_id, range.0, range.1)
            .into_iter()
            .filter(|c| !c.cancelled())
            .map(|c| {
                absences
                    .iter()
                    .map(|a| {
                        let (from, to) = (a.start.max(c.start), a.end.min(c.end));
                        (to - from).num_minutes().max(0)
                    })
                    .max()
                    .unwrap_or(0)
            })
            .sum();
        u32::try_from((minutes + 30) / 60).unwrap_or(u32::MAX)
    }

    /// The student's report card for a period of their establishment
    /// (`class`: [`Self::class_figures`] of their class over the period).
    pub fn report_card(
        &self,
        student: StudentId,
        period: PeriodId,
        class: &ClassFigures,
    ) -> Option<ReportCard> {
        let s = self.students.get(&student)?;
        let period = self.period_of_student(student, period)?.clone();
        let range = Some(period.range());
        let appreciations = self.appreciations(student, period.id);
        let mut subjects = self.subjects_in(student, s.class_id, range);
        subjects.extend(
            self.teachings
                .iter()
                .filter(|t| t.class_id == s.class_id)
                .map(|t| t.subject.clone()),
        );
        subjects.extend(
            appreciations
                .into_iter()
                .flat_map(|a| a.subjects.keys().cloned()),
        );
        let own = self.subject_averages_in(student, range);
        let rows = subjects
            .into_iter()
            .map(|subject| {
                let figures = class.subjects.get(&subject).cloned().unwrap_or_default();
                ReportCardSubject {
                    teacher: self.teacher_of(s.class_id, &subject),
                    average: own.get(&subject).copied().flatten(),
                    class_average: figures.average,
                    class_min: figures.min,
                    class_max: figures.max,
                    appreciation: appreciations.and_then(|a| a.subjects.get(&subject).cloned()),
                    subject,
                }
            })
            .collect();
        let (half_days_missed, unjustified_half_days, lateness_count) =
            self.attendance_in(student, period.range());
        let missed_hours = self.missed_hours_in(student, period.range());
        Some(ReportCard {
            student_id: student,
            class_id: s.class_id,
            subjects: rows,
            overall_average: mean(own.values().copied().flatten()),
            class_overall_average: class.overall_average,
            rank: class.rank_of(student),
            class_size: class.class_size,
            general_appreciation: appreciations.and_then(|a| a.general.clone()),
            half_days_missed,
            unjustified_half_days,
            lateness_count,
            missed_hours,
            r#final: period.closed,
            period,
        })
    }
}
