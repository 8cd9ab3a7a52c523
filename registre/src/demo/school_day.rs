//! The demo collège's school day (issue 13): its motives and the zone C
//! holidays (on the establishment's stream), a weekly timetable for every
//! class over the term and the current week, the roll calls of the courses
//! that are over (today's last ones forgotten, for the vie scolaire to
//! chase), lesson contents, and the course each homework was given in.
//!
//! The timetable is a 27-hour week (Wednesday afternoon free); class `c`'s
//! hour `k` is `WEEK[(k + c) % 27]`, so classes rotate through the same
//! subjects at different hours.

use super::{at, Builder, Entry, PersonInfo};
use chrono::{DateTime, Datelike, Days, NaiveDate, Utc, Weekday};
use rand::Rng;
use registre_domain::events::*;
use registre_domain::*;
use std::collections::BTreeMap;

/// The establishment's motives: code, label, justifies, usable by guardians.
const MOTIVES: &[(&str, &str, bool, bool)] = &[
    ("MAL", "Maladie", true, true),
    ("MED", "Rendez-vous médical", true, true),
    ("FAM", "Raison familiale", true, true),
    ("TRANS", "Problème de transport", true, true),
    ("CONV", "Convenance personnelle", false, true),
    ("SCO", "Activité scolaire (sortie, examen)", true, false),
];

/// A day as (year, month, day).
type Ymd = (i32, u32, u32);

/// Zone C holidays of the 2026-2027 school year (days without class).
const HOLIDAYS: &[(Ymd, Ymd)] = &[
    ((2026, 10, 17), (2026, 11, 2)),
    ((2026, 12, 19), (2027, 1, 3)),
    ((2027, 2, 20), (2027, 3, 7)),
    ((2027, 4, 17), (2027, 5, 2)),
    ((2027, 7, 3), (2027, 8, 31)),
];

/// The hours of a day: start (h, m), one hour each.
const SLOTS: &[(u32, u32)] = &[(8, 0), (9, 0), (10, 15), (11, 15), (14, 0), (15, 0)];

/// The subjects of a week, by weekly hours (27).
const WEEK: &[&str] = &[
    "Français",
    "Mathématiques",
    "Histoire-Géographie",
    "Anglais",
    "SVT",
    "Français",
    "Mathématiques",
    "Physique-Chimie",
    "EPS",
    "EPS",
    "Français",
    "Mathématiques",
    "Technologie",
    "Anglais",
    "Histoire-Géographie",
    "Arts plastiques",
    "Français",
    "Mathématiques",
    "Éducation musicale",
    "Anglais",
    "Histoire-Géographie",
    "SVT",
    "Physique-Chimie",
    "Technologie",
    "Anglais",
    "EPS",
    "Français",
];

const LESSONS: &[&str] = &[
    "Correction des exercices, puis cours.",
    "Activité de découverte en groupes.",
    "Évaluation de fin de chapitre.",
    "Cours et exercices d'application.",
    "Travail sur documents.",
];

/// What the school day needs from the rest of the demo.
pub(super) struct Input<'a> {
    pub establishment: EstablishmentId,
    pub classes: &'a [(ClassId, String)],
    /// Each class's teachers, by subject.
    pub class_teachers: &'a [Vec<(PersonInfo, &'a str)>],
    /// Each class's students.
    pub class_students: Vec<Vec<StudentId>>,
    /// The days of the term with class (holidays already left out).
    pub days: &'a [NaiveDate],
    pub cpe: PersonInfo,
    pub now: DateTime<Utc>,
}

/// The courses planned, for linking homework to them.
#[derive(Default)]
pub(super) struct Timetable {
    courses: BTreeMap<(usize, NaiveDate, String), CourseId>,
}

impl Timetable {
    /// The first course of `subject` for class `class_index` on `day`.
    pub fn course_on(&self, class_index: usize, subject: &str, day: NaiveDate) -> Option<CourseId> {
        self.courses
            .get(&(class_index, day, subject.to_owned()))
            .copied()
    }
}

fn date((y, m, d): Ymd) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

/// The motives and holidays, written on the establishment's stream after its creation.
/// A motive's id, derived from the establishment and the code, so that the
/// generator's random sequence (names, grades...) is the same as before.
fn motive_id(establishment: EstablishmentId, code: &str) -> AbsenceReasonId {
    AbsenceReasonId(uuid::Uuid::new_v5(
        &establishment.0,
        format!("motive:{code}").as_bytes(),
    ))
}

/// A motive guardians may choose, for a justification: mostly illness.
pub(super) fn guardian_motive(b: &mut Builder, establishment: EstablishmentId) -> AbsenceReasonId {
    let usable: Vec<&str> = MOTIVES.iter().filter(|m| m.3).map(|m| m.0).collect();
    let code = if b.rng.gen_bool(0.5) {
        usable[0]
    } else {
        usable[b.rng.gen_range(0..usable.len())]
    };
    motive_id(establishment, code)
}

pub(super) fn calendar(establishment: EstablishmentId, when: DateTime<Utc>) -> Vec<Entry> {
    let mut events: Vec<Entry> = MOTIVES
        .iter()
        .map(|(code, label, justifies, guardians)| {
            (
                DomainEvent::AbsenceReasonDefined(AbsenceReasonDefined {
                    reason_id: motive_id(establishment, code),
                    establishment_id: establishment,
                    code: (*code).into(),
                    label: (*label).into(),
                    justifies: *justifies,
                    usable_by_guardians: *guardians,
                }),
                None,
                when,
                None,
            )
        })
        .collect();
    events.push((
        DomainEvent::HolidaysSet(HolidaysSet {
            establishment_id: establishment,
            holidays: HOLIDAYS
                .iter()
                .map(|(from, to)| DateRange {
                    from: date(*from),
                    to: date(*to),
                })
                .collect(),
        }),
        None,
        when,
        None,
    ));
    events
}

/// The days the timetable covers: the term's, and the current week's
/// (Monday to Friday, holidays left out) when it is not in the term.
fn timetable_days(input: &Input<'_>) -> Vec<NaiveDate> {
    let mut days = input.days.to_vec();
    let today = input
        .now
        .with_timezone(&chrono_tz::Europe::Paris)
        .date_naive();
    let monday = today - Days::new(u64::from(today.weekday().num_days_from_monday()));
    for offset in 0..5 {
        let day = monday + Days::new(offset);
        let holiday = HOLIDAYS
            .iter()
            .any(|(from, to)| date(*from) <= day && day <= date(*to));
        if !holiday && !days.contains(&day) {
            days.push(day);
        }
    }
    days
}

/// The class's hours on `day`: (slot, subject).
fn hours(class_index: usize, day: NaiveDate) -> Vec<(usize, &'static str)> {
    let before = match day.weekday() {
        Weekday::Mon => 0,
        Weekday::Tue => 6,
        Weekday::Wed => 12,
        Weekday::Thu => 15,
        Weekday::Fri => 21,
        _ => return Vec::new(),
    };
    let count = if day.weekday() == Weekday::Wed { 3 } else { 6 };
    (0..count)
        .map(|slot| (slot, WEEK[(before + slot + class_index) % WEEK.len()]))
        .collect()
}

/// Plans every class's courses, with the roll calls of those over by `now`
/// (the absences they record on their own streams) and some lesson contents.
pub(super) fn timetable(b: &mut Builder, input: &Input<'_>) -> Timetable {
    let mut table = Timetable::default();
    let today = input
        .now
        .with_timezone(&chrono_tz::Europe::Paris)
        .date_naive();
    for day in timetable_days(input) {
        for (ci, (class_id, _)) in input.classes.iter().enumerate() {
            for (slot, subject) in hours(ci, day) {
                let Some((teacher, _)) = input.class_teachers[ci]
                    .iter()
                    .find(|(_, s)| *s == subject)
                    .copied()
                else {
                    continue;
                };
                let (h, m) = SLOTS[slot];
                let (start, end) = (at(day, h, m), at(day, h + 1, m));
                let course_id = CourseId(b.uuid());
                table
                    .courses
                    .entry((ci, day, subject.to_owned()))
                    .or_insert(course_id);
                let mut events: Vec<Entry> = vec![(
                    DomainEvent::CoursePlanned(CoursePlanned {
                        course_id,
                        establishment_id: input.establishment,
                        class_id: *class_id,
                        subject: subject.into(),
                        teacher_id: teacher.id,
                        start,
                        end,
                        room: Some(format!("Salle {}", 101 + ci)),
                    }),
                    None,
                    at(input.days.first().copied().unwrap_or(day), 7, 0),
                    None,
                )];
                // Over, and called, except a third of today's (forgotten).
                let forgotten = day == today && b.rng.gen_range(0..3) == 0;
                if end < input.now && !forgotten {
                    let students = &input.class_students[ci];
                    let mut entries = Vec::new();
                    if !students.is_empty() && b.rng.gen_range(0..10) < 3 {
                        let student_id = students[b.rng.gen_range(0..students.len())];
                        let late = b.rng.gen_bool(0.4);
                        let absence_id = AbsenceId(b.uuid());
                        let minutes_late = late.then(|| b.rng.gen_range(3..20));
                        let kind = if late {
                            AbsenceKind::Lateness
                        } else {
                            AbsenceKind::Absence
                        };
                        b.stream(vec![(
                            DomainEvent::AbsenceReported(AbsenceReported {
                                absence_id,
                                student_id,
                                kind,
                                start,
                                end,
                                minutes_late,
                            }),
                            Some(teacher),
                            start,
                            None,
                        )]);
                        entries.push(RollCallEntry {
                            student_id,
                            absence_id,
                            kind,
                            minutes_late,
                            declared: false,
                        });
                    }
                    let absent = entries
                        .iter()
                        .filter(|e| e.kind == AbsenceKind::Absence)
                        .count();
                    let taker = if b.rng.gen_range(0..20) == 0 {
                        input.cpe
                    } else {
                        teacher
                    };
                    events.push((
                        DomainEvent::RollCallTaken(RollCallTaken {
                            course_id,
                            class_id: *class_id,
                            entries,
                            present_count: u32::try_from(students.len() - absent).unwrap_or(0),
                        }),
                        Some(taker),
                        start + chrono::Duration::minutes(5),
                        None,
                    ));
                    if b.rng.gen_range(0..3) == 0 {
                        let content = LESSONS[b.rng.gen_range(0..LESSONS.len())];
                        events.push((
                            DomainEvent::LessonContentRecorded(LessonContentRecorded {
                                course_id,
                                class_id: *class_id,
                                content: format!("{subject} : {content}"),
                            }),
                            Some(teacher),
                            end,
                            None,
                        ));
                    }
                }
                b.stream(events);
            }
        }
    }
    table
}

/// The course a homework entry was given in and its estimated time, on the
/// homework's stream.
pub(super) fn homework_details(
    b: &mut Builder,
    table: &Timetable,
    (homework_id, class_id, class_index): (HomeworkId, ClassId, usize),
    subject: &str,
    assigned_on: NaiveDate,
    teacher: PersonInfo,
) -> Entry {
    let minutes = [15, 20, 30, 45, 60][b.rng.gen_range(0..5)];
    (
        DomainEvent::HomeworkDetailed(HomeworkDetailed {
            homework_id,
            class_id,
            course_id: table.course_on(class_index, subject, assigned_on),
            estimated_minutes: Some(minutes),
        }),
        Some(teacher),
        at(assigned_on, 17, 0),
        None,
    )
}
