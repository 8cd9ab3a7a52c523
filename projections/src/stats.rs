//! The stats view: half-days missed per student and month with the French
//! absenteeism threshold, absence rate per class and week, and grade
//! distributions per assessment.
//!
//! Counting rules (decided, and what the golden tests pin down):
//! - Half-days are taken in the establishment's time zone: the morning is the
//!   part of a day before 12:00 local, the afternoon the part from 12:00. An
//!   absence counts every half-day its `[start, end)` interval overlaps (an
//!   absence with `end <= start` counts the half-day containing `start`).
//! - School half-days follow French usage: Monday to Friday mornings and
//!   afternoons, and Saturday morning (11 a week). Sunday and Saturday
//!   afternoon never count.
//! - ABSENCE and DEPARTURE entries count (a departure is the rest of a day
//!   missed); LATENESS never does. Cancelled absences are gone from the
//!   model and never count.
//! - The establishment's holidays (`setHolidays`) are no school half-days:
//!   an absence covering them counts none there.
//! - An ACCEPTED absence whose motive does not justify (the establishment
//!   says so of the motive, e.g. "convenance personnelle") stays
//!   *unjustified*: the family gave a reason, and the reason is not one the
//!   law accepts, so it counts towards the threshold.
//! - A half-day is *unjustified* when every absence covering it is UNJUSTIFIED
//!   or REJECTED. A PENDING justification is not counted as unjustified: the
//!   family has given a reason and the threshold opens a formal procedure, so
//!   the benefit of the doubt holds until staff reject it (it is then counted).
//!   PENDING half-days are reported separately. ACCEPTED is justified.
//! - The threshold: 4 or more unjustified half-days within one calendar month
//!   (code de l'éducation, art. L131-8). In a range, only the range's
//!   half-days count towards each month.

use crate::model::*;
use crate::views::{mean, on_20};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Weekday};
use chrono_tz::Tz;
use registre_domain::{
    AbsenceKind, AssessmentId, ClassId, EstablishmentId, GradeStatus, JustificationState, StudentId,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// The absenteeism threshold of French law, in unjustified half-days a month.
pub const ABSENTEEISM_THRESHOLD: u32 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HalfDay {
    Morning,
    Afternoon,
}

/// How a missed half-day stands, from the most to the least favourable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HalfDayStanding {
    Unjustified,
    Pending,
    Justified,
}

impl HalfDayStanding {
    fn of(state: JustificationState) -> Self {
        match state {
            JustificationState::Unjustified | JustificationState::Rejected => Self::Unjustified,
            JustificationState::Pending => Self::Pending,
            JustificationState::Accepted => Self::Justified,
        }
    }
}

/// Whether a half-day is a school half-day (Mon–Fri, and Saturday morning).
pub fn is_school_half_day(date: NaiveDate, half: HalfDay) -> bool {
    match date.weekday() {
        Weekday::Sun => false,
        Weekday::Sat => half == HalfDay::Morning,
        _ => true,
    }
}

/// The school half-days an interval overlaps, in the zone `tz`, in order.
pub fn half_days(
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
    tz: Tz,
) -> Vec<(NaiveDate, HalfDay)> {
    let start = start.with_timezone(&tz).naive_local();
    let end = end.with_timezone(&tz).naive_local();
    let noon = NaiveTime::from_hms_opt(12, 0, 0).unwrap_or_default();
    let overlaps = |from: NaiveDateTime, to: NaiveDateTime| {
        if end <= start {
            from <= start && start < to
        } else {
            start < to && end > from
        }
    };
    let mut out = vec![];
    let mut day = start.date();
    let last = end.max(start).date();
    while day <= last {
        let midnight = day.and_time(NaiveTime::MIN);
        let midday = day.and_time(noon);
        let next = midnight + Duration::days(1);
        for (half, from, to) in [
            (HalfDay::Morning, midnight, midday),
            (HalfDay::Afternoon, midday, next),
        ] {
            if is_school_half_day(day, half) && overlaps(from, to) {
                out.push((day, half));
            }
        }
        match day.succ_opt() {
            Some(d) => day = d,
            None => break,
        }
    }
    out
}

/// One student's half-days in one calendar month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StudentMonth {
    pub student_id: StudentId,
    /// `YYYY-MM`.
    pub month: String,
    pub half_days_missed: u32,
    pub unjustified_half_days: u32,
    pub pending_half_days: u32,
    /// 4 or more unjustified half-days this month.
    pub over_threshold: bool,
}

/// The contract's AbsenceStats for a class over a date range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AbsenceStats {
    pub half_days_missed: u32,
    pub unjustified_half_days: u32,
    /// Students with 4+ unjustified half-days within one calendar month of the range.
    pub students_over_threshold: Vec<StudentId>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WeeklyAbsenceRate {
    /// The Monday of the week.
    pub week_start: NaiveDate,
    pub students: u32,
    /// Students x school half-days of the week inside the range.
    pub school_half_days: u32,
    pub half_days_missed: u32,
    /// `half_days_missed / school_half_days`; `None` when there is nothing to divide by.
    pub rate: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DistributionBucket {
    /// Lower bound on /20, inclusive.
    pub from: f64,
    /// Upper bound on /20, exclusive except for the last bucket (20 included).
    pub to: f64,
    pub count: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GradeDistribution {
    pub assessment_id: AssessmentId,
    pub graded: u32,
    pub absent: u32,
    pub exempt: u32,
    pub not_submitted: u32,
    /// Five buckets of 4 points on /20.
    pub buckets: Vec<DistributionBucket>,
    pub mean_on_20: Option<f64>,
    pub median_on_20: Option<f64>,
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl ReadModel {
    /// Every missed school half-day of a student with its standing.
    pub fn missed_half_days(
        &self,
        student: StudentId,
    ) -> BTreeMap<(NaiveDate, HalfDay), HalfDayStanding> {
        let zone = self
            .students
            .get(&student)
            .map(|s| self.zone_of_class(s.class_id))
            .unwrap_or(chrono_tz::Europe::Paris);
        let establishment = self.establishment_of_student(student);
        let mut missed: BTreeMap<(NaiveDate, HalfDay), HalfDayStanding> = BTreeMap::new();
        for a in self.absences_of(student) {
            if a.kind == AbsenceKind::Lateness {
                continue;
            }
            let motive_justifies = self.motive_of_absence(a.id).is_none_or(|m| m.justifies);
            let standing = match HalfDayStanding::of(a.state) {
                HalfDayStanding::Justified if !motive_justifies => HalfDayStanding::Unjustified,
                other => other,
            };
            for slot in half_days(a.start, a.end, zone) {
                if establishment.is_some_and(|e| self.is_holiday(e, slot.0)) {
                    continue;
                }
                let entry = missed.entry(slot).or_insert(standing);
                *entry = (*entry).max(standing);
            }
        }
        missed
    }

    fn months_of(
        &self,
        student: StudentId,
        range: Option<(NaiveDate, NaiveDate)>,
    ) -> Vec<StudentMonth> {
        let mut months: BTreeMap<String, StudentMonth> = BTreeMap::new();
        for ((date, _), standing) in self.missed_half_days(student) {
            if range.is_some_and(|(from, to)| date < from || date > to) {
                continue;
            }
            let month = format!("{:04}-{:02}", date.year(), date.month());
            let m = months.entry(month.clone()).or_insert(StudentMonth {
                student_id: student,
                month,
                half_days_missed: 0,
                unjustified_half_days: 0,
                pending_half_days: 0,
                over_threshold: false,
            });
            m.half_days_missed += 1;
            match standing {
                HalfDayStanding::Unjustified => m.unjustified_half_days += 1,
                HalfDayStanding::Pending => m.pending_half_days += 1,
                HalfDayStanding::Justified => {}
            }
            m.over_threshold = m.unjustified_half_days >= ABSENTEEISM_THRESHOLD;
        }
        months.into_values().collect()
    }

    /// Half-days per student (current students of the class, by name) and month.
    pub fn half_days_by_month(&self, class: ClassId) -> Vec<StudentMonth> {
        self.students_of_class(class)
            .into_iter()
            .flat_map(|s| self.months_of(s.id, None))
            .collect()
    }

    /// Half-days per student and month for every class of an establishment.
    pub fn establishment_half_days_by_month(
        &self,
        establishment: EstablishmentId,
    ) -> Vec<StudentMonth> {
        self.classes_of(establishment)
            .into_iter()
            .flat_map(|c| self.half_days_by_month(c.id))
            .collect()
    }

    /// Students of an establishment over the threshold in some month.
    pub fn flagged_students(&self, establishment: EstablishmentId) -> Vec<StudentMonth> {
        self.establishment_half_days_by_month(establishment)
            .into_iter()
            .filter(|m| m.over_threshold)
            .collect()
    }

    /// The contract's `absenceStats(classId, from, to)`: current students of
    /// the class, half-days whose local date is within `[from, to]`.
    pub fn absence_stats(&self, class: ClassId, from: NaiveDate, to: NaiveDate) -> AbsenceStats {
        let mut stats = AbsenceStats {
            half_days_missed: 0,
            unjustified_half_days: 0,
            students_over_threshold: vec![],
        };
        for s in self.students_of_class(class) {
            let months = self.months_of(s.id, Some((from, to)));
            stats.half_days_missed += months.iter().map(|m| m.half_days_missed).sum::<u32>();
            stats.unjustified_half_days +=
                months.iter().map(|m| m.unjustified_half_days).sum::<u32>();
            if months.iter().any(|m| m.over_threshold) {
                stats.students_over_threshold.push(s.id);
            }
        }
        stats
    }

    /// Absence rate of a class for each week (Monday-based) meeting `[from, to]`.
    pub fn absence_rate_by_week(
        &self,
        class: ClassId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Vec<WeeklyAbsenceRate> {
        let students = self.students_of_class(class);
        let n = count(students.len());
        let mut missed: BTreeMap<NaiveDate, u32> = BTreeMap::new();
        for s in &students {
            for (date, _) in self.missed_half_days(s.id).into_keys() {
                if date >= from && date <= to {
                    *missed.entry(monday_of(date)).or_default() += 1;
                }
            }
        }
        let establishment = self.establishment_of_class(class);
        let mut out = vec![];
        let mut week = monday_of(from);
        while week <= to {
            let mut school = 0u32;
            for offset in 0..7 {
                let day = week + Duration::days(offset);
                let holiday = establishment.is_some_and(|e| self.is_holiday(e, day));
                if day < from || day > to || holiday {
                    continue;
                }
                school += [HalfDay::Morning, HalfDay::Afternoon]
                    .into_iter()
                    .filter(|h| is_school_half_day(day, *h))
                    .count() as u32;
            }
            let school_half_days = school * n;
            let half_days_missed = missed.get(&week).copied().unwrap_or(0);
            out.push(WeeklyAbsenceRate {
                week_start: week,
                students: n,
                school_half_days,
                half_days_missed,
                rate: (school_half_days > 0)
                    .then(|| f64::from(half_days_missed) / f64::from(school_half_days)),
            });
            week += Duration::days(7);
        }
        out
    }

    /// How an assessment's grades spread on /20.
    pub fn grade_distribution(&self, assessment: AssessmentId) -> Option<GradeDistribution> {
        let a = self.assessments.get(&assessment)?;
        let grades = self.grades_of_assessment(assessment);
        let status_count =
            |st: GradeStatus| count(grades.iter().filter(|g| g.status == st).count());
        let mut scores: Vec<f64> = grades.iter().filter_map(|g| on_20(g, a)).collect();
        scores.sort_by(f64::total_cmp);
        let buckets = (0..5)
            .map(|i| {
                let from = f64::from(i) * 4.0;
                let to = from + 4.0;
                let last = i == 4;
                DistributionBucket {
                    from,
                    to,
                    count: count(
                        scores
                            .iter()
                            .filter(|s| **s >= from && (**s < to || (last && **s <= to)))
                            .count(),
                    ),
                }
            })
            .collect();
        let median = match scores.len() {
            0 => None,
            n if n % 2 == 1 => Some(scores[n / 2]),
            n => Some((scores[n / 2 - 1] + scores[n / 2]) / 2.0),
        };
        Some(GradeDistribution {
            assessment_id: assessment,
            graded: status_count(GradeStatus::Graded),
            absent: status_count(GradeStatus::Absent),
            exempt: status_count(GradeStatus::Exempt),
            not_submitted: status_count(GradeStatus::NotSubmitted),
            buckets,
            mean_on_20: mean(scores.iter().copied()),
            median_on_20: median,
        })
    }
}

fn monday_of(date: NaiveDate) -> NaiveDate {
    date - Duration::days(i64::from(date.weekday().num_days_from_monday()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone as _, Utc};

    fn paris(y: i32, m: u32, d: u32, h: u32, min: u32) -> chrono::DateTime<Utc> {
        chrono_tz::Europe::Paris
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .expect("unambiguous local time")
            .with_timezone(&Utc)
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    #[test]
    fn a_full_day_counts_two_half_days_and_a_morning_one() {
        let tz = chrono_tz::Europe::Paris;
        // Monday 2026-03-02.
        let full = half_days(paris(2026, 3, 2, 8, 0), paris(2026, 3, 2, 17, 0), tz);
        assert_eq!(
            full,
            vec![
                (date(2026, 3, 2), HalfDay::Morning),
                (date(2026, 3, 2), HalfDay::Afternoon)
            ]
        );
        let morning = half_days(paris(2026, 3, 2, 8, 0), paris(2026, 3, 2, 12, 0), tz);
        assert_eq!(morning, vec![(date(2026, 3, 2), HalfDay::Morning)]);
    }

    #[test]
    fn a_week_counts_eleven_school_half_days() {
        let tz = chrono_tz::Europe::Paris;
        // Monday 08:00 to the next Monday 00:00: Sunday and Saturday afternoon do not count.
        let week = half_days(paris(2026, 3, 2, 8, 0), paris(2026, 3, 9, 0, 0), tz);
        assert_eq!(week.len(), 11);
    }

    #[test]
    fn half_days_are_local_to_the_establishment() {
        // 07:00 UTC is 11:00 in Réunion (UTC+4): a morning there, and
        // 09:00 UTC is 13:00 there: the afternoon too.
        let start = Utc
            .with_ymd_and_hms(2026, 3, 2, 7, 0, 0)
            .single()
            .expect("valid");
        let end = Utc
            .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
            .single()
            .expect("valid");
        assert_eq!(half_days(start, end, chrono_tz::Indian::Reunion).len(), 2);
        // In Paris (UTC+1) the same interval is 08:00-10:00: one morning.
        assert_eq!(half_days(start, end, chrono_tz::Europe::Paris).len(), 1);
    }
}
