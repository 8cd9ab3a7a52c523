//! The school day (issue 13): the timetable (one `course-*` stream per
//! course: planned, cancelled, its roll calls, its lesson content), the
//! establishment's absence motives and holidays (on its `establishment-*`
//! stream), the motive of an absence (on the absence's stream) and the
//! cahier de textes' follow-up of homework (on the homework's stream).
//!
//! A roll call is one decision over several streams: the course's, and the
//! absences it records, confirms or cancels. The caller reads them all and
//! appends the events of every stream in one transaction (each event's
//! stream is [`DomainEvent::stream`]).
//!
//! Times: a course's start and end are instants; its day, its weekly slot
//! and holidays are read in the establishment's time zone, which the
//! caller passes in the facts.

use crate::absences::{self, accepted_dates, check_bounds, MINUTES_LATE_MAX};
use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::events::*;
use crate::homework;
use crate::ids::*;
use crate::text;
use crate::values::*;
use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, TimeZone as _, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Longest course: a morning or an afternoon is long, a whole day is not a course.
pub const COURSE_HOURS_MAX: i64 = 12;
/// Longest range `planWeeklyCourses` fills: one school year.
pub const WEEKLY_SPAN_DAYS_MAX: i64 = 366;
/// Most courses one `planWeeklyCourses` plans (a course a week for a year).
pub const WEEKLY_COURSES_MAX: usize = 53;
/// Most holiday ranges of an establishment (a school year has about six).
pub const HOLIDAY_RANGES_MAX: usize = 60;
/// Longest holiday range.
pub const HOLIDAY_SPAN_DAYS_MAX: i64 = 366;
/// Longest motive code ("MED", "CONV", ...).
pub const MOTIVE_CODE_MAX: usize = 32;
/// Longest room name.
pub const ROOM_MAX: usize = 100;
/// Largest estimated time of one homework entry, in minutes (ten hours).
pub const ESTIMATED_MINUTES_MAX: i64 = 600;
/// The reason of an absence a corrected roll call no longer lists.
pub const ROLL_CALL_CORRECTED: &str = "roll call corrected";

// ---- Course -----------------------------------------------------------------

/// Decision state of a `course-*` stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Course {
    pub id: Option<CourseId>,
    pub class_id: Option<ClassId>,
    pub teacher_id: Option<PersonId>,
    pub subject: String,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub cancelled: bool,
    /// The current roll call's entries; `None` before the first call.
    pub roll_call: Option<Vec<RollCallEntry>>,
    pub version: u64,
}

impl Course {
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    fn live(&self, course: CourseId) -> Result<Planned, DomainError> {
        match (self.id, self.class_id, self.start, self.end) {
            (Some(id), Some(class_id), Some(start), Some(end)) => Ok(Planned {
                id,
                class_id,
                start,
                end,
            }),
            _ => Err(DomainError::NotFound(format!("course {course}"))),
        }
    }
}

struct Planned {
    id: CourseId,
    class_id: ClassId,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Aggregate for Course {
    fn apply(&mut self, event: &DomainEvent) {
        use DomainEvent::*;
        let me = self.id;
        match event {
            CoursePlanned(e) if me.is_none() => {
                self.id = Some(e.course_id);
                self.class_id = Some(e.class_id);
                self.teacher_id = Some(e.teacher_id);
                self.subject = e.subject.clone();
                self.start = Some(e.start);
                self.end = Some(e.end);
            }
            CourseCancelled(e) if me == Some(e.course_id) => self.cancelled = true,
            RollCallTaken(e) if me == Some(e.course_id) => {
                self.roll_call = Some(e.entries.clone());
            }
            LessonContentRecorded(e) if me == Some(e.course_id) => {}
            _ => return,
        }
        self.version += 1;
    }
    fn version(&self) -> u64 {
        self.version
    }
}

/// What planning a course is decided with (from the read model).
#[derive(Clone, Debug, PartialEq)]
pub struct PlanFacts {
    /// The class's establishment; `None` when there is no such class.
    pub establishment: Option<EstablishmentId>,
    /// The teacher is a TEACHER assigned to this class and subject.
    pub teacher_assigned: bool,
    /// The establishment's time zone: a course's day is read there.
    pub zone: TimeZone,
    pub holidays: Vec<DateRange>,
    pub now: DateTime<Utc>,
    /// interop (issue 17): the class's name and school year when that year
    /// is closed (`startSchoolYear`): its timetable is read-only.
    pub class_closed: Option<(String, i32)>,
}

impl PlanFacts {
    fn on_holiday(&self, day: NaiveDate) -> bool {
        self.holidays.iter().any(|h| h.contains(day))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanCourse {
    /// Generated by the caller; not part of the serde form (the fingerprint).
    #[serde(skip)]
    pub course_id: CourseId,
    pub class_id: ClassId,
    pub subject: String,
    pub teacher_id: PersonId,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub room: Option<String>,
}

/// The checks every planned course passes, whatever planned it.
struct Slot<'a> {
    class_id: ClassId,
    subject: &'a str,
    teacher_id: PersonId,
    room: Option<&'a str>,
}

impl Slot<'_> {
    fn checked(
        &self,
        facts: &PlanFacts,
    ) -> Result<(EstablishmentId, String, Option<String>), DomainError> {
        let subject = text::line("subject", self.subject, text::SUBJECT_MAX)?;
        let room = match self.room.map(str::trim) {
            None | Some("") => None,
            Some(r) => Some(text::line("room", r, ROOM_MAX)?),
        };
        let Some(establishment) = facts.establishment else {
            return Err(DomainError::NotFound(format!("class {}", self.class_id)));
        };
        if let Some((name, year)) = &facts.class_closed {
            return Err(crate::roster::closed_class(name, *year));
        }
        if !facts.teacher_assigned {
            return Err(DomainError::invalid(
                "teacherId",
                "only a teacher assigned to this class and subject may teach the course",
            ));
        }
        Ok((establishment, subject, room))
    }

    fn course(
        &self,
        course_id: CourseId,
        checked: &(EstablishmentId, String, Option<String>),
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> DomainEvent {
        DomainEvent::CoursePlanned(CoursePlanned {
            course_id,
            establishment_id: checked.0,
            class_id: self.class_id,
            subject: checked.1.clone(),
            teacher_id: self.teacher_id,
            start,
            end,
            room: checked.2.clone(),
        })
    }
}

fn course_interval(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<(), DomainError> {
    if end <= start {
        return Err(DomainError::invalid("end", "must be after start"));
    }
    if end - start > TimeDelta::hours(COURSE_HOURS_MAX) {
        return Err(DomainError::invalid(
            "end",
            format!("a course lasts at most {COURSE_HOURS_MAX} hours"),
        ));
    }
    Ok(())
}

/// Plans one course. Never on a holiday of the establishment (the day of its
/// start, in the establishment's time zone).
pub fn plan_course(
    state: &Course,
    cmd: &PlanCourse,
    facts: &PlanFacts,
) -> Result<Vec<DomainEvent>, DomainError> {
    if state.exists() {
        return Err(DomainError::Conflict(format!(
            "course {} already exists",
            cmd.course_id
        )));
    }
    course_interval(cmd.start, cmd.end)?;
    check_bounds(AbsenceKind::Absence, cmd.start, cmd.end, facts.now)?;
    let slot = Slot {
        class_id: cmd.class_id,
        subject: &cmd.subject,
        teacher_id: cmd.teacher_id,
        room: cmd.room.as_deref(),
    };
    let checked = slot.checked(facts)?;
    let day = facts.zone.today(cmd.start);
    if facts.on_holiday(day) {
        return Err(DomainError::invalid(
            "start",
            format!("{day} is a holiday of the establishment: no course is planned on it"),
        ));
    }
    Ok(vec![slot.course(
        cmd.course_id,
        &checked,
        cmd.start,
        cmd.end,
    )])
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanWeeklyCourses {
    /// Generated by the caller, [`WEEKLY_COURSES_MAX`] of them; the courses
    /// take them in order. Not part of the serde form.
    #[serde(skip)]
    pub course_ids: Vec<CourseId>,
    pub class_id: ClassId,
    pub subject: String,
    pub teacher_id: PersonId,
    /// 1 = Monday ... 7 = Sunday.
    pub weekday: i64,
    /// HH:MM in the establishment's time zone.
    pub start_time: String,
    pub end_time: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub room: Option<String>,
}

fn clock(field: &str, raw: &str) -> Result<NaiveTime, DomainError> {
    NaiveTime::parse_from_str(raw.trim(), "%H:%M")
        .map_err(|_| DomainError::invalid(field, "must be HH:MM (24-hour clock)"))
}

/// One course a week on `weekday` between `from` and `to` (both included),
/// none on the establishment's holidays. Every new course's stream is new.
pub fn plan_weekly_courses(
    cmd: &PlanWeeklyCourses,
    facts: &PlanFacts,
) -> Result<Vec<DomainEvent>, DomainError> {
    let weekday = u32::try_from(cmd.weekday)
        .ok()
        .filter(|d| (1..=7).contains(d))
        .ok_or_else(|| DomainError::invalid("weekday", "must be 1 (Monday) to 7 (Sunday)"))?;
    let start_time = clock("startTime", &cmd.start_time)?;
    let end_time = clock("endTime", &cmd.end_time)?;
    if end_time <= start_time {
        return Err(DomainError::invalid("endTime", "must be after startTime"));
    }
    if cmd.to < cmd.from {
        return Err(DomainError::invalid("to", "must not be before from"));
    }
    if (cmd.to - cmd.from).num_days() > WEEKLY_SPAN_DAYS_MAX {
        return Err(DomainError::invalid(
            "to",
            format!("the range is limited to {WEEKLY_SPAN_DAYS_MAX} days"),
        ));
    }
    let (first, last) = accepted_dates(facts.zone.today(facts.now));
    if cmd.from < first || cmd.to > last {
        return Err(DomainError::invalid(
            "from",
            format!("must fall between {first} and {last} (the previous, current and next school years)"),
        ));
    }
    let slot = Slot {
        class_id: cmd.class_id,
        subject: &cmd.subject,
        teacher_id: cmd.teacher_id,
        room: cmd.room.as_deref(),
    };
    let checked = slot.checked(facts)?;
    let offset = (weekday + 7 - cmd.from.weekday().number_from_monday()) % 7;
    let mut day = cmd.from + TimeDelta::days(i64::from(offset));
    let mut ids = cmd.course_ids.iter();
    let mut events = Vec::new();
    let tz = facts.zone.tz();
    while day <= cmd.to {
        if !facts.on_holiday(day) {
            let local = |t: NaiveTime| {
                tz.from_local_datetime(&day.and_time(t))
                    .earliest()
                    .map(|d| d.with_timezone(&Utc))
                    .ok_or_else(|| {
                        DomainError::invalid(
                            "startTime",
                            format!("{day} {t} does not exist in the establishment's time zone"),
                        )
                    })
            };
            let (start, end) = (local(start_time)?, local(end_time)?);
            course_interval(start, end)?;
            let id = ids.next().ok_or_else(|| {
                DomainError::invalid(
                    "to",
                    format!("at most {WEEKLY_COURSES_MAX} courses at once"),
                )
            })?;
            events.push(slot.course(*id, &checked, start, end));
        }
        day += TimeDelta::days(7);
    }
    Ok(events)
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CancelCourse {
    pub course_id: CourseId,
    pub reason: String,
}

/// Cancels a course, with a reason. A course whose roll call was taken took
/// place: its absences stand, so it is not cancelled (correct the call).
pub fn cancel_course(state: &Course, cmd: &CancelCourse) -> Result<Vec<DomainEvent>, DomainError> {
    let course = state.live(cmd.course_id)?;
    if state.cancelled {
        return Err(DomainError::Conflict(
            "the course is already cancelled".into(),
        ));
    }
    if state.roll_call.is_some() {
        return Err(DomainError::Conflict(
            "the roll call of this course was taken: it took place".into(),
        ));
    }
    let reason = text::block("reason", &cmd.reason, text::REASON_MAX)?;
    Ok(vec![DomainEvent::CourseCancelled(CourseCancelled {
        course_id: course.id,
        class_id: course.class_id,
        reason,
    })])
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordLessonContent {
    pub course_id: CourseId,
    pub content: String,
}

pub fn record_lesson_content(
    state: &Course,
    cmd: &RecordLessonContent,
) -> Result<Vec<DomainEvent>, DomainError> {
    let course = state.live(cmd.course_id)?;
    if state.cancelled {
        return Err(DomainError::invalid(
            "courseId",
            "the course was cancelled: it has no lesson content",
        ));
    }
    let content = text::block("content", &cmd.content, text::DESCRIPTION_MAX)?;
    Ok(vec![DomainEvent::LessonContentRecorded(
        LessonContentRecorded {
            course_id: course.id,
            class_id: course.class_id,
            content,
        },
    )])
}

// ---- Roll call ----------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Late {
    pub student_id: StudentId,
    /// As received; 1 to [`MINUTES_LATE_MAX`].
    pub minutes_late: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TakeRollCall {
    pub course_id: CourseId,
    pub absent: Vec<StudentId>,
    pub late: Vec<Late>,
    /// Generated by the caller, one per student listed; a new absence takes
    /// the next one. Not part of the serde form.
    #[serde(skip)]
    pub new_ids: Vec<AbsenceId>,
}

/// What a roll call is decided with: the class from the read model, and the
/// states of the absence streams the caller read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RollCallFacts {
    /// The students of the course's class now.
    pub class_students: BTreeSet<StudentId>,
    /// The class's live absences declared in advance that may overlap the
    /// course (the domain checks student, overlap and cancellation itself).
    pub declared: Vec<absences::Absence>,
    /// The absences the current call lists, as their streams stand.
    pub recorded: Vec<absences::Absence>,
    pub now: DateTime<Utc>,
}

impl RollCallFacts {
    fn live(&self, absence: AbsenceId) -> bool {
        self.recorded
            .iter()
            .any(|a| a.id == Some(absence) && !a.cancelled)
    }
}

/// The roll call of a course: its absent and late students in one decision.
/// An absent student whose guardian declared an absence covering the course
/// confirms that declaration; one already recorded by the previous call
/// keeps their absence. Entries of the previous call no longer listed are
/// cancelled ("roll call corrected"), except the guardians' declarations.
/// Then `RollCallTaken` records the call as it now stands.
pub fn take_roll_call(
    state: &Course,
    cmd: &TakeRollCall,
    facts: &RollCallFacts,
) -> Result<Vec<DomainEvent>, DomainError> {
    let course = state.live(cmd.course_id)?;
    if state.cancelled {
        return Err(DomainError::invalid(
            "courseId",
            "the course was cancelled: it has no roll call",
        ));
    }
    let mut seen = BTreeSet::new();
    let listed = cmd
        .absent
        .iter()
        .map(|s| ("absent", *s))
        .chain(cmd.late.iter().map(|l| ("late", l.student_id)));
    for (field, student) in listed {
        if !facts.class_students.contains(&student) {
            return Err(DomainError::invalid(
                field,
                format!("student {student} is not in the course's class"),
            ));
        }
        if !seen.insert(student) {
            return Err(DomainError::invalid(
                field,
                format!("student {student} is listed twice"),
            ));
        }
    }
    let mut minutes = Vec::with_capacity(cmd.late.len());
    for l in &cmd.late {
        let m = u32::try_from(l.minutes_late)
            .ok()
            .filter(|m| (1..=MINUTES_LATE_MAX).contains(&i64::from(*m)))
            .ok_or_else(|| {
                DomainError::invalid(
                    "minutesLate",
                    format!("must be between 1 and {MINUTES_LATE_MAX}"),
                )
            })?;
        minutes.push(m);
    }
    check_bounds(AbsenceKind::Absence, course.start, course.end, facts.now)?;

    let previous = state.roll_call.clone().unwrap_or_default();
    let mut ids = cmd.new_ids.iter().copied();
    let mut next_id = || {
        ids.next()
            .ok_or_else(|| DomainError::invalid("absent", "more students than absence ids"))
    };
    let mut events = Vec::new();
    let mut entries = Vec::new();
    let mut report = |student_id, kind, minutes_late, events: &mut Vec<DomainEvent>| {
        let absence_id = next_id()?;
        events.push(DomainEvent::AbsenceReported(AbsenceReported {
            absence_id,
            student_id,
            kind,
            start: course.start,
            end: course.end,
            minutes_late,
        }));
        Ok::<_, DomainError>(RollCallEntry {
            student_id,
            absence_id,
            kind,
            minutes_late,
            declared: false,
        })
    };
    for &student in &cmd.absent {
        // A declaration cancelled since is not kept: the student is reported.
        let kept = previous.iter().find(|e| {
            e.student_id == student && e.kind == AbsenceKind::Absence && facts.live(e.absence_id)
        });
        if let Some(e) = kept {
            entries.push(e.clone());
            continue;
        }
        let declared = facts
            .declared
            .iter()
            .filter(|d| d.covers(student, course.start, course.end))
            .min_by_key(|d| d.start);
        match declared.and_then(|d| d.id.map(|id| (id, d.confirmed))) {
            Some((absence_id, confirmed)) => {
                if !confirmed {
                    events.push(DomainEvent::DeclaredAbsenceConfirmed(
                        DeclaredAbsenceConfirmed {
                            absence_id,
                            student_id: student,
                        },
                    ));
                }
                entries.push(RollCallEntry {
                    student_id: student,
                    absence_id,
                    kind: AbsenceKind::Absence,
                    minutes_late: None,
                    declared: true,
                });
            }
            None => entries.push(report(student, AbsenceKind::Absence, None, &mut events)?),
        }
    }
    for (l, m) in cmd.late.iter().zip(minutes) {
        let kept = previous.iter().find(|e| {
            e.student_id == l.student_id
                && e.kind == AbsenceKind::Lateness
                && e.minutes_late == Some(m)
                && facts.live(e.absence_id)
        });
        match kept {
            Some(e) => entries.push(e.clone()),
            None => entries.push(report(
                l.student_id,
                AbsenceKind::Lateness,
                Some(m),
                &mut events,
            )?),
        }
    }
    for old in &previous {
        let still = entries.iter().any(|e| e.absence_id == old.absence_id);
        if !still && !old.declared && facts.live(old.absence_id) {
            events.push(DomainEvent::AbsenceCancelled(AbsenceCancelled {
                absence_id: old.absence_id,
                student_id: old.student_id,
                reason: ROLL_CALL_CORRECTED.into(),
            }));
        }
    }
    let absent = u32::try_from(cmd.absent.len()).unwrap_or(u32::MAX);
    let class_size = u32::try_from(facts.class_students.len()).unwrap_or(u32::MAX);
    events.push(DomainEvent::RollCallTaken(RollCallTaken {
        course_id: course.id,
        class_id: course.class_id,
        entries,
        present_count: class_size.saturating_sub(absent),
    }));
    Ok(events)
}

// ---- Motives and holidays ---------------------------------------------------------

/// Decision state of an establishment's stream, as the school day sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Calendar {
    pub exists: bool,
    /// Codes of its motives, lower-cased (a code is unique whatever its case).
    pub motive_codes: BTreeSet<String>,
    pub version: u64,
}

impl Aggregate for Calendar {
    fn apply(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::EstablishmentCreated(_) => self.exists = true,
            DomainEvent::AbsenceReasonDefined(e) => {
                self.motive_codes.insert(e.code.to_lowercase());
            }
            DomainEvent::HolidaysSet(_) => {}
            _ => return,
        }
        self.version += 1;
    }
    fn version(&self) -> u64 {
        self.version
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DefineAbsenceReason {
    /// Generated by the caller; not part of the serde form.
    #[serde(skip)]
    pub reason_id: AbsenceReasonId,
    pub establishment_id: EstablishmentId,
    pub code: String,
    pub label: String,
    pub justifies: bool,
    pub usable_by_guardians: bool,
}

pub fn define_absence_reason(
    state: &Calendar,
    cmd: &DefineAbsenceReason,
) -> Result<Vec<DomainEvent>, DomainError> {
    let code = text::line("code", &cmd.code, MOTIVE_CODE_MAX)?;
    let label = text::line("label", &cmd.label, text::TITLE_MAX)?;
    if !state.exists {
        return Err(DomainError::NotFound(format!(
            "establishment {}",
            cmd.establishment_id
        )));
    }
    if state.motive_codes.contains(&code.to_lowercase()) {
        return Err(DomainError::Conflict(format!(
            "the establishment already has a motive {code}"
        )));
    }
    Ok(vec![DomainEvent::AbsenceReasonDefined(
        AbsenceReasonDefined {
            reason_id: cmd.reason_id,
            establishment_id: cmd.establishment_id,
            code,
            label,
            justifies: cmd.justifies,
            usable_by_guardians: cmd.usable_by_guardians,
        },
    )])
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SetHolidays {
    pub establishment_id: EstablishmentId,
    pub holidays: Vec<DateRange>,
}

/// Replaces the establishment's holidays (sorted by first day).
pub fn set_holidays(state: &Calendar, cmd: &SetHolidays) -> Result<Vec<DomainEvent>, DomainError> {
    if cmd.holidays.len() > HOLIDAY_RANGES_MAX {
        return Err(DomainError::invalid(
            "holidays",
            format!("at most {HOLIDAY_RANGES_MAX} ranges"),
        ));
    }
    for h in &cmd.holidays {
        if h.to < h.from {
            return Err(DomainError::invalid(
                "holidays",
                "a range's to must not be before its from",
            ));
        }
        if (h.to - h.from).num_days() > HOLIDAY_SPAN_DAYS_MAX {
            return Err(DomainError::invalid(
                "holidays",
                format!("a range lasts at most {HOLIDAY_SPAN_DAYS_MAX} days"),
            ));
        }
    }
    if !state.exists {
        return Err(DomainError::NotFound(format!(
            "establishment {}",
            cmd.establishment_id
        )));
    }
    let mut holidays = cmd.holidays.clone();
    holidays.sort();
    holidays.dedup();
    Ok(vec![DomainEvent::HolidaysSet(HolidaysSet {
        establishment_id: cmd.establishment_id,
        holidays,
    })])
}

/// A motive as the decision about an absence needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MotiveSummary {
    pub establishment_id: EstablishmentId,
    pub usable_by_guardians: bool,
}

/// What giving a motive is decided with (from the read model).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MotiveFacts {
    /// The motive asked for; `None` when there is no such motive.
    pub motive: Option<MotiveSummary>,
    /// The student's establishment.
    pub establishment: Option<EstablishmentId>,
}

/// Who chooses a motive: staff may give any motive of the establishment,
/// guardians only those it lets them choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChosenBy {
    Staff,
    Guardian,
}

/// The motive of an absence, given beside its report, declaration or
/// justification: one of the student's establishment's motives, and one
/// guardians may choose when a guardian gives it. `None` without a motive.
pub fn give_motive(
    absence_id: AbsenceId,
    student_id: StudentId,
    motive_id: Option<AbsenceReasonId>,
    facts: &MotiveFacts,
    by: ChosenBy,
) -> Result<Option<DomainEvent>, DomainError> {
    let Some(motive_id) = motive_id else {
        return Ok(None);
    };
    let motive = facts
        .motive
        .filter(|m| facts.establishment == Some(m.establishment_id))
        .ok_or_else(|| {
            DomainError::invalid("motiveId", "not a motive of the student's establishment")
        })?;
    if by == ChosenBy::Guardian && !motive.usable_by_guardians {
        return Err(DomainError::invalid(
            "motiveId",
            "guardians may not choose this motive (the school's staff give it)",
        ));
    }
    Ok(Some(DomainEvent::AbsenceMotiveGiven(AbsenceMotiveGiven {
        absence_id,
        student_id,
        motive_id,
    })))
}

// ---- Homework follow-up --------------------------------------------------------

/// A course as the cahier de textes needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CourseSummary {
    pub class_id: ClassId,
    pub subject: String,
    pub cancelled: bool,
}

fn estimate(minutes: Option<i64>) -> Result<Option<u32>, DomainError> {
    minutes
        .map(|m| {
            u32::try_from(m)
                .ok()
                .filter(|m| (1..=ESTIMATED_MINUTES_MAX).contains(&i64::from(*m)))
                .ok_or_else(|| {
                    DomainError::invalid(
                        "estimatedMinutes",
                        format!("must be between 1 and {ESTIMATED_MINUTES_MAX}"),
                    )
                })
        })
        .transpose()
}

/// The course and estimated time of new homework, given beside its
/// `HomeworkAssigned`: a course of the same class and subject, not
/// cancelled. `None` when neither is given.
pub fn detail_new_homework(
    assigned: &homework::AssignHomework,
    course_id: Option<CourseId>,
    estimated_minutes: Option<i64>,
    course: Option<&CourseSummary>,
) -> Result<Option<DomainEvent>, DomainError> {
    let estimated = estimate(estimated_minutes)?;
    if let Some(id) = course_id {
        let c =
            course.ok_or_else(|| DomainError::invalid("courseId", format!("no course {id}")))?;
        if c.class_id != assigned.class_id || c.subject != assigned.subject.trim() {
            return Err(DomainError::invalid(
                "courseId",
                "the course is not of this class and subject",
            ));
        }
        if c.cancelled {
            return Err(DomainError::invalid("courseId", "the course was cancelled"));
        }
    }
    if course_id.is_none() && estimated.is_none() {
        return Ok(None);
    }
    Ok(Some(DomainEvent::HomeworkDetailed(HomeworkDetailed {
        homework_id: assigned.homework_id,
        class_id: assigned.class_id,
        course_id,
        estimated_minutes: estimated,
    })))
}

/// `amendHomework`: every field but the reason is optional and keeps its
/// value when absent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AmendCourseHomework {
    pub homework_id: HomeworkId,
    pub title: Option<String>,
    pub description: Option<String>,
    pub due: Option<NaiveDate>,
    pub estimated_minutes: Option<i64>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct AmendDetailFacts {
    /// Today in the class's establishment's time zone.
    pub today: NaiveDate,
    pub course_id: Option<CourseId>,
    pub estimated_minutes: Option<u32>,
}

/// Amends homework by its teacher, with a reason: the text and due date
/// through `homework::amend_homework` (its rules), the estimated time
/// beside it. An amendment that changes nothing is refused.
pub fn amend_course_homework(
    state: &homework::Homework,
    cmd: &AmendCourseHomework,
    facts: &AmendDetailFacts,
) -> Result<Vec<DomainEvent>, DomainError> {
    let (homework_id, class_id) = match (state.id, state.class_id) {
        (Some(h), Some(c)) => (h, c),
        _ => {
            return Err(DomainError::NotFound(format!(
                "homework {}",
                cmd.homework_id
            )))
        }
    };
    if state.withdrawn {
        return Err(DomainError::Conflict("this homework was withdrawn".into()));
    }
    let reason = text::block("reason", &cmd.reason, text::REASON_MAX)?;
    let estimated = estimate(cmd.estimated_minutes)?;
    let amend = homework::AmendHomework {
        homework_id,
        title: cmd.title.clone().unwrap_or_else(|| state.title.clone()),
        description: cmd
            .description
            .clone()
            .unwrap_or_else(|| state.description.clone()),
        due: cmd.due.or(state.due).unwrap_or(facts.today),
        reason: Some(reason),
    };
    let text_changes = amend.title.trim() != state.title
        || amend.description.replace("\r\n", "\n").trim() != state.description
        || Some(amend.due) != state.due;
    let mut events = if text_changes {
        homework::amend_homework(state, &amend, &homework::AmendFacts { today: facts.today })?
    } else {
        Vec::new()
    };
    if estimated.is_some() && estimated != facts.estimated_minutes {
        events.push(DomainEvent::HomeworkDetailed(HomeworkDetailed {
            homework_id,
            class_id,
            course_id: facts.course_id,
            estimated_minutes: estimated,
        }));
    }
    if events.is_empty() {
        return Err(DomainError::invalid(
            "homework",
            "the amendment changes nothing",
        ));
    }
    Ok(events)
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MarkHomeworkDone {
    pub homework_id: HomeworkId,
    pub student_id: StudentId,
    pub done: bool,
}

pub fn mark_homework_done(
    state: &homework::Homework,
    cmd: &MarkHomeworkDone,
) -> Result<Vec<DomainEvent>, DomainError> {
    let (homework_id, class_id) = match (state.id, state.class_id) {
        (Some(h), Some(c)) => (h, c),
        _ => {
            return Err(DomainError::NotFound(format!(
                "homework {}",
                cmd.homework_id
            )))
        }
    };
    if state.withdrawn {
        return Err(DomainError::Conflict("this homework was withdrawn".into()));
    }
    Ok(vec![DomainEvent::HomeworkMarkedDone(HomeworkMarkedDone {
        homework_id,
        class_id,
        student_id: cmd.student_id,
        done: cmd.done,
    })])
}
