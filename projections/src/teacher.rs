//! The teacher and education staff views: the gradebook of a class and
//! subject, the roll-call sheet of a class for a day, the homework load of a
//! class per day, and the justifications waiting for review.

use crate::model::*;
use crate::views::{mean, on_20, weighted_average};
use chrono::{Duration, NaiveDate};
use registre_domain::{ClassId, EstablishmentId, JustificationState, StudentId};
use serde::Serialize;

/// Statistics of one assessment on its own scale (`outOf`), GRADED grades only.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssessmentStats {
    pub count: u32,
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The mean on /20, comparable across assessments.
    pub mean_on_20: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GradebookColumn {
    pub assessment: Assessment,
    pub stats: AssessmentStats,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GradebookRow {
    pub student_id: StudentId,
    pub display_name: String,
    /// One cell per column, `None` where no grade was recorded.
    pub cells: Vec<Option<Grade>>,
    /// The student's weighted /20 average over these assessments.
    pub average: Option<f64>,
}

/// Assessments (columns, by date) x current students (rows, by name).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gradebook {
    pub class_id: ClassId,
    pub subject: String,
    pub columns: Vec<GradebookColumn>,
    pub rows: Vec<GradebookRow>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollCallRow {
    pub student_id: StudentId,
    pub display_name: String,
    /// Absences and lateness overlapping the day (local time), by start.
    pub entries: Vec<Absence>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollCall {
    pub class_id: ClassId,
    pub date: NaiveDate,
    pub rows: Vec<RollCallRow>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HomeworkDay {
    pub due: NaiveDate,
    pub count: u32,
    pub subjects: Vec<String>,
    pub homework: Vec<Homework>,
}

impl ReadModel {
    pub fn assessment_stats(&self, assessment: &Assessment) -> AssessmentStats {
        let scores: Vec<(f64, f64)> = self
            .grades_of_assessment(assessment.id)
            .into_iter()
            .filter_map(|g| on_20(g, assessment).and_then(|s20| g.score.map(|s| (s, s20))))
            .collect();
        AssessmentStats {
            count: u32::try_from(scores.len()).unwrap_or(u32::MAX),
            mean: mean(scores.iter().map(|s| s.0)),
            min: scores.iter().map(|s| s.0).reduce(f64::min),
            max: scores.iter().map(|s| s.0).reduce(f64::max),
            mean_on_20: mean(scores.iter().map(|s| s.1)),
        }
    }

    /// The gradebook of a class and subject.
    pub fn gradebook(&self, class: ClassId, subject: &str) -> Gradebook {
        let assessments: Vec<&Assessment> = self
            .assessments_of_class(class)
            .into_iter()
            .filter(|a| a.subject == subject)
            .collect();
        let rows = self
            .students_of_class(class)
            .into_iter()
            .map(|s| {
                let cells: Vec<Option<Grade>> = assessments
                    .iter()
                    .map(|a| {
                        self.grades_by_assessment
                            .get(&a.id)
                            .into_iter()
                            .flatten()
                            .filter_map(|g| self.grades.get(g))
                            .find(|g| g.student_id == s.id)
                            .cloned()
                    })
                    .collect();
                let average =
                    weighted_average(assessments.iter().zip(&cells).filter_map(|(a, g)| {
                        g.as_ref()
                            .and_then(|g| on_20(g, a))
                            .map(|s| (s, a.coefficient))
                    }));
                GradebookRow {
                    student_id: s.id,
                    display_name: self.display_name(s.person_id).to_owned(),
                    cells,
                    average,
                }
            })
            .collect();
        Gradebook {
            class_id: class,
            subject: subject.to_owned(),
            columns: assessments
                .iter()
                .map(|a| GradebookColumn {
                    assessment: (*a).clone(),
                    stats: self.assessment_stats(a),
                })
                .collect(),
            rows,
        }
    }

    /// The roll-call sheet: every current student of the class, with the
    /// absences and lateness overlapping `date` in the establishment's zone.
    pub fn roll_call(&self, class: ClassId, date: NaiveDate) -> RollCall {
        let zone = self.zone_of_class(class);
        let day_start = date.and_hms_opt(0, 0, 0).unwrap_or_default();
        let day_end = day_start + Duration::days(1);
        let rows = self
            .students_of_class(class)
            .into_iter()
            .map(|s| RollCallRow {
                student_id: s.id,
                display_name: self.display_name(s.person_id).to_owned(),
                entries: self
                    .absences_of(s.id)
                    .into_iter()
                    .filter(|a| {
                        let start = a.start.with_timezone(&zone).naive_local();
                        let end = a.end.with_timezone(&zone).naive_local();
                        start < day_end && (end > day_start || (end <= start && start >= day_start))
                    })
                    .cloned()
                    .collect(),
            })
            .collect();
        RollCall {
            class_id: class,
            date,
            rows,
        }
    }

    /// Homework load of a class per due day in `[from, to]`, all subjects:
    /// days with no homework are left out.
    pub fn homework_load(
        &self,
        class: ClassId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Vec<HomeworkDay> {
        let mut days: Vec<HomeworkDay> = vec![];
        for h in self.homework_of_class(class, Some(from), Some(to)) {
            match days.last_mut() {
                Some(day) if day.due == h.due => {
                    day.count += 1;
                    if !day.subjects.contains(&h.subject) {
                        day.subjects.push(h.subject.clone());
                    }
                    day.homework.push(h.clone());
                }
                _ => days.push(HomeworkDay {
                    due: h.due,
                    count: 1,
                    subjects: vec![h.subject.clone()],
                    homework: vec![h.clone()],
                }),
            }
        }
        days
    }

    /// Absences of the establishment's current students whose justification
    /// waits for review (PENDING), oldest first.
    pub fn pending_justifications(&self, establishment: EstablishmentId) -> Vec<&Absence> {
        let mut list: Vec<&Absence> = self
            .classes_of(establishment)
            .into_iter()
            .flat_map(|c| c.students.iter())
            .flat_map(|s| self.absences_of(*s))
            .filter(|a| a.state == JustificationState::Pending)
            .collect();
        list.sort_by_key(|a| (a.start, a.id));
        list
    }
}
