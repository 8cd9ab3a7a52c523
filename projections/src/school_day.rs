//! The school day's views (issue 13): the timetable and its roll calls,
//! lesson contents, the establishments' motives and holidays, the motive and
//! course of each absence, and the cahier de textes' follow-up of homework.
//!
//! Its state is one field of the [`ReadModel`] ([`SchoolDay`]), folded by
//! [`SchoolDay::fold`] from the model's apply match. It holds no personal
//! text: course subjects and rooms, lesson contents and motive labels are
//! written about a class or an establishment (`registre_domain::personal`),
//! so erasure has nothing to blank here.

use crate::model::{Absence, Homework, ReadModel};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use registre_domain::events::{DateRange, RollCallEntry};
use registre_domain::{
    AbsenceId, AbsenceKind, AbsenceReasonId, ClassId, CourseId, DomainEvent, EstablishmentId,
    HomeworkId, PersonId, StudentId,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CourseRollCall {
    pub taken_by: Option<PersonId>,
    #[serde(with = "crate::compact_time::instant")]
    pub taken_at: DateTime<Utc>,
    pub entries: Vec<RollCallEntry>,
    pub present_count: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Course {
    pub id: CourseId,
    pub establishment_id: EstablishmentId,
    pub class_id: ClassId,
    pub subject: String,
    pub teacher_id: PersonId,
    #[serde(with = "crate::compact_time::instant")]
    pub start: DateTime<Utc>,
    #[serde(with = "crate::compact_time::instant")]
    pub end: DateTime<Utc>,
    pub room: Option<String>,
    pub cancelled_reason: Option<String>,
    pub roll_call: Option<CourseRollCall>,
    pub lesson_content: Option<String>,
}

impl Course {
    pub fn cancelled(&self) -> bool {
        self.cancelled_reason.is_some()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Motive {
    pub id: AbsenceReasonId,
    pub establishment_id: EstablishmentId,
    pub code: String,
    pub label: String,
    pub justifies: bool,
    pub usable_by_guardians: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HomeworkDetails {
    pub course_id: Option<CourseId>,
    pub estimated_minutes: Option<u32>,
}

/// Homework due on one day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HomeworkLoadDay {
    pub date: NaiveDate,
    pub count: u32,
    /// The sum of the entries' estimates (entries without one add nothing).
    pub estimated_minutes: u32,
}

/// The school day's part of the read model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchoolDay {
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) courses: BTreeMap<CourseId, Course>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) courses_by_class: BTreeMap<ClassId, BTreeSet<(DateTime<Utc>, CourseId)>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) courses_by_teacher: BTreeMap<PersonId, BTreeSet<(DateTime<Utc>, CourseId)>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) motives: BTreeMap<AbsenceReasonId, Motive>,
    /// Each establishment's motives, in definition order.
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) motives_by_establishment: BTreeMap<EstablishmentId, Vec<AbsenceReasonId>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) holidays: BTreeMap<EstablishmentId, Vec<DateRange>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) absence_motive: BTreeMap<AbsenceId, AbsenceReasonId>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) absence_course: BTreeMap<AbsenceId, CourseId>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) homework: BTreeMap<HomeworkId, HomeworkDetails>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) homework_by_course: BTreeMap<CourseId, BTreeSet<HomeworkId>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) homework_done: BTreeMap<HomeworkId, BTreeSet<StudentId>>,
}

impl SchoolDay {
    /// Folds one event; others are ignored.
    pub(crate) fn fold(&mut self, event: &DomainEvent, at: DateTime<Utc>, actor: Option<PersonId>) {
        use DomainEvent::*;
        match event {
            CoursePlanned(e) => {
                self.courses_by_class
                    .entry(e.class_id)
                    .or_default()
                    .insert((e.start, e.course_id));
                self.courses_by_teacher
                    .entry(e.teacher_id)
                    .or_default()
                    .insert((e.start, e.course_id));
                self.courses.insert(
                    e.course_id,
                    Course {
                        id: e.course_id,
                        establishment_id: e.establishment_id,
                        class_id: e.class_id,
                        subject: e.subject.clone(),
                        teacher_id: e.teacher_id,
                        start: e.start,
                        end: e.end,
                        room: e.room.clone(),
                        cancelled_reason: None,
                        roll_call: None,
                        lesson_content: None,
                    },
                );
            }
            CourseCancelled(e) => {
                if let Some(c) = self.courses.get_mut(&e.course_id) {
                    c.cancelled_reason = Some(e.reason.clone());
                }
            }
            RollCallTaken(e) => {
                if let Some(c) = self.courses.get_mut(&e.course_id) {
                    for entry in &e.entries {
                        self.absence_course.insert(entry.absence_id, e.course_id);
                    }
                    c.roll_call = Some(CourseRollCall {
                        taken_by: actor,
                        taken_at: at,
                        entries: e.entries.clone(),
                        present_count: e.present_count,
                    });
                }
            }
            LessonContentRecorded(e) => {
                if let Some(c) = self.courses.get_mut(&e.course_id) {
                    c.lesson_content = Some(e.content.clone());
                }
            }
            AbsenceReasonDefined(e) => {
                self.motives_by_establishment
                    .entry(e.establishment_id)
                    .or_default()
                    .push(e.reason_id);
                self.motives.insert(
                    e.reason_id,
                    Motive {
                        id: e.reason_id,
                        establishment_id: e.establishment_id,
                        code: e.code.clone(),
                        label: e.label.clone(),
                        justifies: e.justifies,
                        usable_by_guardians: e.usable_by_guardians,
                    },
                );
            }
            HolidaysSet(e) => {
                self.holidays.insert(e.establishment_id, e.holidays.clone());
            }
            AbsenceMotiveGiven(e) => {
                self.absence_motive.insert(e.absence_id, e.motive_id);
            }
            HomeworkDetailed(e) => {
                let details = self.homework.entry(e.homework_id).or_default();
                if let Some(old) = details.course_id {
                    if let Some(set) = self.homework_by_course.get_mut(&old) {
                        set.remove(&e.homework_id);
                    }
                }
                details.course_id = e.course_id;
                details.estimated_minutes = e.estimated_minutes;
                if let Some(course) = e.course_id {
                    self.homework_by_course
                        .entry(course)
                        .or_default()
                        .insert(e.homework_id);
                }
            }
            HomeworkMarkedDone(e) => {
                let done = self.homework_done.entry(e.homework_id).or_default();
                if e.done {
                    done.insert(e.student_id);
                } else {
                    done.remove(&e.student_id);
                }
            }
            _ => {}
        }
    }
}

/// Courses of `index` whose start falls in `[from, to)`, by start.
fn in_range(
    index: Option<&BTreeSet<(DateTime<Utc>, CourseId)>>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> impl Iterator<Item = CourseId> + '_ {
    index
        .into_iter()
        .flat_map(move |set| set.range((from, CourseId::default())..(to, CourseId::default())))
        .map(|(_, id)| *id)
}

impl ReadModel {
    fn school_day(&self) -> &SchoolDay {
        &self.school_day
    }

    pub fn course(&self, id: CourseId) -> Option<&Course> {
        self.school_day().courses.get(&id)
    }

    /// Midnight starting `from` to midnight ending `to`, in the class's zone.
    fn local_days(
        &self,
        class: ClassId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> (DateTime<Utc>, DateTime<Utc>) {
        let zone = self.zone_of_class(class);
        let at = |d: NaiveDate| {
            d.and_hms_opt(0, 0, 0)
                .and_then(|n| n.and_local_timezone(zone).earliest())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        (at(from), at(to + TimeDelta::days(1)))
    }

    /// A class's courses starting on the days `from` to `to` (its
    /// establishment's calendar), cancelled ones included, by start.
    pub fn class_timetable(&self, class: ClassId, from: NaiveDate, to: NaiveDate) -> Vec<&Course> {
        let (start, end) = self.local_days(class, from, to);
        in_range(self.school_day().courses_by_class.get(&class), start, end)
            .filter_map(|id| self.course(id))
            .collect()
    }

    /// A teacher's courses starting on the days `from` to `to`, by start.
    pub fn teacher_timetable(
        &self,
        teacher: PersonId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Vec<&Course> {
        let zone = self.zone_of_person(teacher);
        let at = |d: NaiveDate| {
            d.and_hms_opt(0, 0, 0)
                .and_then(|n| n.and_local_timezone(zone).earliest())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(DateTime::<Utc>::MIN_UTC)
        };
        in_range(
            self.school_day().courses_by_teacher.get(&teacher),
            at(from),
            at(to + TimeDelta::days(1)),
        )
        .filter_map(|id| self.course(id))
        .collect()
    }

    /// Every course of an establishment's classes starting on the days
    /// `from` to `to`, by start.
    pub fn establishment_timetable(
        &self,
        establishment: EstablishmentId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Vec<&Course> {
        let mut all: Vec<&Course> = self
            .classes_of(establishment)
            .into_iter()
            .flat_map(|c| self.class_timetable(c.id, from, to))
            .collect();
        all.sort_by_key(|c| (c.start, c.id));
        all
    }

    /// The courses of `date` not cancelled, ended more than `grace` before
    /// `now`, whose roll call was not taken: what the vie scolaire chases.
    /// None on a holiday (courses planned before the holidays were set are
    /// not held).
    pub fn missing_roll_calls(
        &self,
        establishment: EstablishmentId,
        date: NaiveDate,
        grace: TimeDelta,
        now: DateTime<Utc>,
    ) -> Vec<&Course> {
        if self.is_holiday(establishment, date) {
            return Vec::new();
        }
        self.establishment_timetable(establishment, date, date)
            .into_iter()
            .filter(|c| !c.cancelled() && c.roll_call.is_none() && c.end + grace < now)
            .collect()
    }

    /// The live absences a course's roll call lists, of one kind.
    pub fn roll_call_absences(&self, course: &Course, kind: AbsenceKind) -> Vec<&Absence> {
        course
            .roll_call
            .iter()
            .flat_map(|r| r.entries.iter())
            .filter(|e| e.kind == kind)
            .filter_map(|e| self.absence(e.absence_id))
            .collect()
    }

    pub fn motive(&self, id: AbsenceReasonId) -> Option<&Motive> {
        self.school_day().motives.get(&id)
    }

    /// An establishment's motives, in definition order.
    pub fn motives_of(&self, establishment: EstablishmentId) -> Vec<&Motive> {
        self.school_day()
            .motives_by_establishment
            .get(&establishment)
            .into_iter()
            .flatten()
            .filter_map(|id| self.motive(*id))
            .collect()
    }

    /// An absence's motive, if one was given.
    pub fn motive_of_absence(&self, absence: AbsenceId) -> Option<&Motive> {
        self.school_day()
            .absence_motive
            .get(&absence)
            .and_then(|m| self.motive(*m))
    }

    /// The course whose roll call recorded (or confirmed) an absence.
    pub fn course_of_absence(&self, absence: AbsenceId) -> Option<&Course> {
        self.school_day()
            .absence_course
            .get(&absence)
            .and_then(|c| self.course(*c))
    }

    /// An establishment's holidays, by first day.
    pub fn holidays_of(&self, establishment: EstablishmentId) -> &[DateRange] {
        self.school_day()
            .holidays
            .get(&establishment)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Whether `day` is a holiday of the establishment.
    pub fn is_holiday(&self, establishment: EstablishmentId, day: NaiveDate) -> bool {
        self.holidays_of(establishment)
            .iter()
            .any(|h| h.contains(day))
    }

    pub fn homework_details(&self, homework: HomeworkId) -> Option<&HomeworkDetails> {
        self.school_day().homework.get(&homework)
    }

    /// The live homework given in a course.
    pub fn homework_of_course(&self, course: CourseId) -> Vec<&Homework> {
        self.school_day()
            .homework_by_course
            .get(&course)
            .into_iter()
            .flatten()
            .filter_map(|h| self.homework_entry(*h))
            .collect()
    }

    /// Whether the student marked this homework done.
    pub fn homework_done_by(&self, homework: HomeworkId, student: StudentId) -> bool {
        self.school_day()
            .homework_done
            .get(&homework)
            .is_some_and(|s| s.contains(&student))
    }

    /// A class's homework due per day in `[from, to]`: days with none are left out.
    pub fn class_homework_load(
        &self,
        class: ClassId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Vec<HomeworkLoadDay> {
        let mut days: BTreeMap<NaiveDate, HomeworkLoadDay> = BTreeMap::new();
        for h in self.homework_of_class(class, Some(from), Some(to)) {
            let day = days.entry(h.due).or_insert(HomeworkLoadDay {
                date: h.due,
                count: 0,
                estimated_minutes: 0,
            });
            day.count += 1;
            let minutes = self
                .homework_details(h.id)
                .and_then(|d| d.estimated_minutes)
                .unwrap_or(0);
            day.estimated_minutes = day.estimated_minutes.saturating_add(minutes);
        }
        days.into_values().collect()
    }
}
