//! The school day's part of the contract (../shared/contracts/school-day.graphql):
//! courses and their roll calls, motives, holidays, the cahier de textes'
//! follow-up. Times of courses and calls are shown in the establishment's
//! offset (`2026-11-18T09:00:00+01:00` in Paris), not in UTC.

use super::objects::{id, Absence, Establishment, Homework, Person, SchoolClass, Src};
use super::root::{command_context, forbidden, live, parse};
use super::scalars::Date;
use super::viewer;
use crate::graphql::errors::GqlResult;
use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, FixedOffset, NaiveDate, TimeDelta, Utc};
use registre_app::commands::new_id;
use registre_app::policy::{self, school_day as rules};
use registre_app::{ApiError, App};
use registre_domain::events::DateRange as DomainRange;
use registre_domain::school_day as day;
use registre_domain::{AbsenceKind, CourseId, DomainEvent, EstablishmentId, HomeworkId};
use registre_projections::school_day as model;
use registre_projections::ReadModel as Model;
use std::str::FromStr;

/// The courses a timetable typically holds, for the cost of a query.
pub const COURSES: usize = 40;
/// Longest range of a timetable query.
const RANGE_DAYS_MAX: i64 = 400;
/// `missingRollCalls`' default grace after a course ends.
const GRACE_DEFAULT: i32 = 15;

/// A referenced id the viewer must be allowed to act on: a malformed one is
/// refused like an unknown one (FORBIDDEN).
fn opaque<T: FromStr + Default>(raw: &ID) -> T {
    raw.parse::<T>().unwrap_or_default()
}

fn range(from: Date, to: Date) -> Result<(NaiveDate, NaiveDate)> {
    if to.0 < from.0 {
        return Err(ApiError::invalid("to", "must not be before from")).gql();
    }
    if (to.0 - from.0).num_days() > RANGE_DAYS_MAX {
        return Err(ApiError::invalid(
            "to",
            format!("the range is limited to {RANGE_DAYS_MAX} days"),
        ))
        .gql();
    }
    Ok((from.0, to.0))
}

/// An instant in an establishment's time zone, with its offset.
fn local(m: &Model, establishment: EstablishmentId, at: DateTime<Utc>) -> DateTime<FixedOffset> {
    let zone = m
        .establishment(establishment)
        .map(|e| e.time_zone)
        .unwrap_or_default();
    at.with_timezone(&zone.tz()).fixed_offset()
}

// ---- Objects ----------------------------------------------------------------------

/// A course, read from the model with the list or query it came from.
#[derive(Debug)]
pub struct Course {
    data: model::Course,
    start: DateTime<FixedOffset>,
    end: DateTime<FixedOffset>,
}

impl Course {
    pub(crate) fn of(m: &Model, data: &model::Course) -> Self {
        Self {
            start: local(m, data.establishment_id, data.start),
            end: local(m, data.establishment_id, data.end),
            data: data.clone(),
        }
    }

    fn load(app: &App, course: CourseId) -> Result<Self> {
        app.read(|m| m.course(course).map(|c| Self::of(m, c)))
            .ok_or_else(|| ApiError::NotFound("course".into()))
            .gql()
    }

    pub(crate) fn list<'a>(
        m: &Model,
        courses: impl IntoIterator<Item = &'a model::Course>,
    ) -> Vec<Self> {
        courses.into_iter().map(|c| Self::of(m, c)).collect()
    }
}

#[Object]
impl Course {
    async fn id(&self) -> ID {
        id(self.data.id)
    }
    async fn school_class(&self) -> SchoolClass {
        SchoolClass::new(self.data.class_id, Src::Live)
    }
    async fn subject(&self) -> &str {
        &self.data.subject
    }
    async fn teacher(&self) -> Person {
        Person::new(self.data.teacher_id, Src::Live)
    }
    async fn start(&self) -> DateTime<FixedOffset> {
        self.start
    }
    async fn end(&self) -> DateTime<FixedOffset> {
        self.end
    }
    async fn room(&self) -> Option<&str> {
        self.data.room.as_deref()
    }
    async fn cancelled(&self) -> bool {
        self.data.cancelled()
    }
    async fn cancelled_reason(&self) -> Option<&str> {
        self.data.cancelled_reason.as_deref()
    }
    /// null until the roll call of this course is taken
    async fn roll_call(&self, ctx: &Context<'_>) -> Result<Option<RollCall>> {
        let Some(call) = &self.data.roll_call else {
            return Ok(None);
        };
        let (app, _) = viewer(ctx).await?;
        let taken_at = app.read(|m| local(m, self.data.establishment_id, call.taken_at));
        Ok(Some(RollCall {
            course: self.data.clone(),
            call: call.clone(),
            taken_at,
        }))
    }
    /// what was done in the lesson (cahier de textes); null until written
    async fn lesson_content(&self) -> Option<&str> {
        self.data.lesson_content.as_deref()
    }
    /// homework given in this course
    async fn homework(&self, ctx: &Context<'_>) -> Result<Vec<Homework>> {
        let (app, _) = viewer(ctx).await?;
        Ok(app.read(|m| {
            m.homework_of_course(self.data.id)
                .into_iter()
                .map(|h| Homework::loaded(h.clone(), Src::Live))
                .collect()
        }))
    }
}

#[derive(Debug)]
pub struct RollCall {
    course: model::Course,
    call: model::CourseRollCall,
    taken_at: DateTime<FixedOffset>,
}

impl RollCall {
    /// The call's live absences of `kind` whose student's record the viewer may read.
    async fn absences(&self, ctx: &Context<'_>, kind: AbsenceKind) -> Result<Vec<Absence>> {
        let (app, v) = viewer(ctx).await?;
        Ok(app.read(|m| {
            m.roll_call_absences(&self.course, kind)
                .into_iter()
                .filter(|a| policy::can_read_record(m, &v, a.student_id))
                .map(|a| Absence::loaded(a.clone(), Src::Live))
                .collect()
        }))
    }
}

#[Object]
impl RollCall {
    async fn course(&self, ctx: &Context<'_>) -> Result<Course> {
        let (app, _) = viewer(ctx).await?;
        Ok(app.read(|m| Course::of(m, &self.course)))
    }
    async fn taken_by(&self) -> Result<Person> {
        self.call
            .taken_by
            .map(|p| Person::new(p, Src::Live))
            .ok_or_else(|| ApiError::NotFound("the person who took the call".into()))
            .gql()
    }
    async fn taken_at(&self) -> DateTime<FixedOffset> {
        self.taken_at
    }
    async fn absent(&self, ctx: &Context<'_>) -> Result<Vec<Absence>> {
        self.absences(ctx, AbsenceKind::Absence).await
    }
    async fn late(&self, ctx: &Context<'_>) -> Result<Vec<Absence>> {
        self.absences(ctx, AbsenceKind::Lateness).await
    }
    async fn present_count(&self) -> i32 {
        i32::try_from(self.call.present_count).unwrap_or(i32::MAX)
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct AbsenceReason {
    pub id: ID,
    pub code: String,
    pub label: String,
    /// an absence with this motive, once accepted, is justified; false: it stays unjustified (e.g. convenience)
    pub justifies: bool,
    /// guardians may choose it when they declare or justify
    pub usable_by_guardians: bool,
}

impl From<&model::Motive> for AbsenceReason {
    fn from(m: &model::Motive) -> Self {
        Self {
            id: id(m.id),
            code: m.code.clone(),
            label: m.label.clone(),
            justifies: m.justifies,
            usable_by_guardians: m.usable_by_guardians,
        }
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct HomeworkDay {
    pub date: Date,
    pub count: i32,
    pub estimated_minutes: i32,
}

impl From<model::HomeworkLoadDay> for HomeworkDay {
    fn from(d: model::HomeworkLoadDay) -> Self {
        Self {
            date: Date(d.date),
            count: i32::try_from(d.count).unwrap_or(i32::MAX),
            estimated_minutes: i32::try_from(d.estimated_minutes).unwrap_or(i32::MAX),
        }
    }
}

#[derive(SimpleObject, Clone, Debug)]
pub struct DateRange {
    pub from: Date,
    pub to: Date,
}

impl From<&DomainRange> for DateRange {
    fn from(r: &DomainRange) -> Self {
        Self {
            from: Date(r.from),
            to: Date(r.to),
        }
    }
}

// ---- Fields added to the record's types (resolved from objects.rs) -----------------

/// `Student.timetable`: the courses of the student's class (the caller
/// checked the record may be read).
pub(crate) fn class_timetable(
    m: &Model,
    class: registre_domain::ClassId,
    from: Date,
    to: Date,
) -> Result<Vec<Course>> {
    let (from, to) = range(from, to)?;
    Ok(Course::list(m, m.class_timetable(class, from, to)))
}

/// `SchoolClass.homeworkLoad`.
pub(crate) fn homework_load(
    m: &Model,
    class: registre_domain::ClassId,
    from: Date,
    to: Date,
) -> Result<Vec<HomeworkDay>> {
    let (from, to) = range(from, to)?;
    Ok(m.class_homework_load(class, from, to)
        .into_iter()
        .map(HomeworkDay::from)
        .collect())
}

/// Whether the viewer sees the class's timetable and homework load.
pub(crate) async fn may_see_class(
    ctx: &Context<'_>,
    class: registre_domain::ClassId,
) -> Result<()> {
    let (app, v) = viewer(ctx).await?;
    if app.read(|m| policy::can_see_class(m, &v, class)) {
        Ok(())
    } else {
        forbidden()
    }
}

/// `Homework.done`: the STUDENT viewer's mark; null for anyone else.
pub(crate) async fn homework_done(ctx: &Context<'_>, homework: HomeworkId) -> Result<Option<bool>> {
    let (app, v) = viewer(ctx).await?;
    if !v.has(registre_domain::Role::Student) {
        return Ok(None);
    }
    Ok(app.read(|m| {
        m.student_of_person(v.person)
            .map(|s| m.homework_done_by(homework, s.id))
    }))
}

// ---- Queries ---------------------------------------------------------------------

#[derive(Debug, Default)]
pub struct SchoolDayQuery;

#[Object]
impl SchoolDayQuery {
    /// TEACHER: their courses; EDUCATION_STAFF, HEAD: every course of their establishment
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::school_day::COURSES, child_complexity)"
    )]
    async fn my_courses(&self, ctx: &Context<'_>, from: Date, to: Date) -> Result<Vec<Course>> {
        let (app, v) = viewer(ctx).await?;
        if !rules::has_courses(&v) {
            return forbidden();
        }
        let (from, to) = range(from, to)?;
        Ok(app.read(|m| {
            let mut courses = m.teacher_timetable(v.person, from, to);
            if let (true, Some(e)) = (rules::sees_every_course(&v), v.establishment) {
                courses.extend(m.establishment_timetable(e, from, to));
            }
            courses.sort_by_key(|c| (c.start, c.id));
            courses.dedup_by_key(|c| c.id);
            Course::list(m, courses)
        }))
    }

    async fn course(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Course>> {
        let (app, v) = viewer(ctx).await?;
        let course: CourseId = opaque(&id);
        if !app.read(|m| rules::can_see_course(m, &v, course)) {
            return forbidden();
        }
        Ok(Some(Course::load(app, course)?))
    }

    /// EDUCATION_STAFF, HEAD: courses of that day, not cancelled, ended more than graceMinutes (default 15) ago, with no roll call
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::school_day::COURSES, child_complexity)"
    )]
    async fn missing_roll_calls(
        &self,
        ctx: &Context<'_>,
        establishment_id: ID,
        date: Date,
        grace_minutes: Option<i32>,
    ) -> Result<Vec<Course>> {
        let (app, v) = viewer(ctx).await?;
        let establishment: EstablishmentId = opaque(&establishment_id);
        if !rules::can_chase_roll_calls(&v, establishment) {
            return forbidden();
        }
        let grace = grace_minutes.unwrap_or(GRACE_DEFAULT);
        if !(0..=24 * 60).contains(&grace) {
            return Err(ApiError::invalid(
                "graceMinutes",
                "must be between 0 and 1440",
            ))
            .gql();
        }
        let now = registre_app::commands::now();
        Ok(app.read(|m| {
            Course::list(
                m,
                m.missing_roll_calls(
                    establishment,
                    date.0,
                    TimeDelta::minutes(i64::from(grace)),
                    now,
                ),
            )
        }))
    }

    /// EDUCATION_STAFF: absences whose justification waits for review, oldest first
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::limits::size::HISTORY, child_complexity)"
    )]
    async fn pending_justifications(
        &self,
        ctx: &Context<'_>,
        establishment_id: ID,
    ) -> Result<Vec<Absence>> {
        let (app, v) = viewer(ctx).await?;
        let establishment: EstablishmentId = opaque(&establishment_id);
        if !rules::can_review_justifications_of(&v, establishment) {
            return forbidden();
        }
        let (absences, people) = app.read(|m| {
            let list: Vec<registre_projections::Absence> = m
                .pending_justifications(establishment)
                .into_iter()
                .cloned()
                .collect();
            let mut people: Vec<_> = list
                .iter()
                .filter_map(|a| m.student(a.student_id).map(|s| s.person_id))
                .collect();
            people.sort();
            people.dedup();
            (list, people)
        });
        for person in people {
            app.record_access(&v, Some(person), super::operation(ctx), "Absences")
                .await
                .gql()?;
        }
        Ok(absences
            .into_iter()
            .map(|a| Absence::loaded(a, Src::Live))
            .collect())
    }
}

// ---- Mutations ---------------------------------------------------------------------

#[derive(Debug, InputObject)]
pub struct PlanCourseInput {
    pub class_id: ID,
    pub subject: String,
    pub teacher_id: ID,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub room: Option<String>,
}

#[derive(Debug, InputObject)]
pub struct PlanWeeklyCoursesInput {
    pub class_id: ID,
    pub subject: String,
    pub teacher_id: ID,
    /// 1 = Monday ... 7 = Sunday
    pub weekday: i32,
    /// HH:MM, in the establishment's time zone
    pub start_time: String,
    pub end_time: String,
    pub from: Date,
    pub to: Date,
    pub room: Option<String>,
}

#[derive(Debug, InputObject)]
pub struct LateInput {
    pub student_id: ID,
    pub minutes_late: i32,
}

#[derive(Debug, InputObject)]
pub struct TakeRollCallInput {
    pub course_id: ID,
    /// Student ids absent from this course; every other student of the class is present
    pub absent: Vec<ID>,
    pub late: Option<Vec<LateInput>>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, InputObject)]
pub struct DefineAbsenceReasonInput {
    pub establishment_id: ID,
    pub code: String,
    pub label: String,
    pub justifies: bool,
    pub usable_by_guardians: bool,
}

#[derive(Debug, InputObject)]
pub struct DateRangeInput {
    pub from: Date,
    pub to: Date,
}

#[derive(Debug, InputObject)]
pub struct SetHolidaysInput {
    pub establishment_id: ID,
    pub holidays: Vec<DateRangeInput>,
}

#[derive(Debug, InputObject)]
pub struct RecordLessonContentInput {
    pub course_id: ID,
    pub content: String,
}

#[derive(Debug, InputObject)]
pub struct AmendHomeworkInput {
    pub homework_id: ID,
    pub title: Option<String>,
    pub description: Option<String>,
    pub due: Option<Date>,
    pub estimated_minutes: Option<i32>,
    pub reason: String,
}

/// A teacher id in an input: malformed is bad input; unknown is the decision's.
fn teacher(raw: &ID) -> Result<registre_domain::PersonId> {
    parse("teacherId", raw)
}

fn students(field: &str, raw: &[ID]) -> Result<Vec<registre_domain::StudentId>> {
    raw.iter().map(|s| parse(field, s)).collect()
}

#[derive(Debug, Default)]
pub struct SchoolDayMutation;

#[Object]
impl SchoolDayMutation {
    /// HEAD, ADMIN
    async fn plan_course(&self, ctx: &Context<'_>, input: PlanCourseInput) -> Result<Course> {
        let (app, v) = viewer(ctx).await?;
        let cmd = day::PlanCourse {
            course_id: new_id(),
            class_id: opaque(&input.class_id),
            subject: input.subject,
            teacher_id: teacher(&input.teacher_id)?,
            start: input.start,
            end: input.end,
            room: input.room,
        };
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Course::load(app, cmd.course_id)
    }

    /// HEAD, ADMIN: one course a week between from and to, none on holidays
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::school_day::COURSES, child_complexity)"
    )]
    async fn plan_weekly_courses(
        &self,
        ctx: &Context<'_>,
        input: PlanWeeklyCoursesInput,
    ) -> Result<Vec<Course>> {
        let (app, v) = viewer(ctx).await?;
        let cmd = day::PlanWeeklyCourses {
            course_ids: (0..day::WEEKLY_COURSES_MAX).map(|_| new_id()).collect(),
            class_id: opaque(&input.class_id),
            subject: input.subject,
            teacher_id: teacher(&input.teacher_id)?,
            weekday: i64::from(input.weekday),
            start_time: input.start_time,
            end_time: input.end_time,
            from: input.from.0,
            to: input.to.0,
            room: input.room,
        };
        let done = app
            .execute_many(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(app.read(|m| {
            let courses = done.events.iter().filter_map(|e| match e {
                DomainEvent::CoursePlanned(e) => m.course(e.course_id),
                _ => None,
            });
            Course::list(m, courses)
        }))
    }

    /// HEAD, EDUCATION_STAFF
    async fn cancel_course(
        &self,
        ctx: &Context<'_>,
        course_id: ID,
        reason: String,
    ) -> Result<Course> {
        let (app, v) = viewer(ctx).await?;
        let cmd = day::CancelCourse {
            course_id: opaque(&course_id),
            reason,
        };
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Course::load(app, cmd.course_id)
    }

    /// TEACHER of the course, EDUCATION_STAFF of the establishment: the absences and
    /// lateness of this course in one step. A guardian's declaration covering the course
    /// is confirmed, not duplicated. Taken again, it corrects the earlier call: an absence
    /// no longer listed is cancelled, a new one is recorded, the audit trail keeps both.
    async fn take_roll_call(
        &self,
        ctx: &Context<'_>,
        input: TakeRollCallInput,
    ) -> Result<RollCall> {
        let (app, v) = viewer(ctx).await?;
        let late = input
            .late
            .unwrap_or_default()
            .iter()
            .map(|l| {
                Ok(day::Late {
                    student_id: parse("late", &l.student_id)?,
                    minutes_late: i64::from(l.minutes_late),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let absent = students("absent", &input.absent)?;
        let cmd = day::TakeRollCall {
            course_id: opaque(&input.course_id),
            new_ids: (0..absent.len() + late.len()).map(|_| new_id()).collect(),
            absent,
            late,
        };
        app.execute_many(
            &command_context(ctx, &v),
            &cmd,
            input.idempotency_key.as_deref(),
        )
        .await
        .gql()?;
        let course = Course::load(app, cmd.course_id)?;
        course
            .roll_call(ctx)
            .await?
            .ok_or_else(|| ApiError::Internal("the roll call is not in the model".into()))
            .gql()
    }

    /// HEAD, EDUCATION_STAFF
    async fn define_absence_reason(
        &self,
        ctx: &Context<'_>,
        input: DefineAbsenceReasonInput,
    ) -> Result<AbsenceReason> {
        let (app, v) = viewer(ctx).await?;
        let cmd = day::DefineAbsenceReason {
            reason_id: new_id(),
            establishment_id: opaque(&input.establishment_id),
            code: input.code,
            label: input.label,
            justifies: input.justifies,
            usable_by_guardians: input.usable_by_guardians,
        };
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        app.read(|m| m.motive(cmd.reason_id).map(AbsenceReason::from))
            .ok_or_else(|| ApiError::Internal("the motive is not in the model".into()))
            .gql()
    }

    /// HEAD, ADMIN: no course is planned and no half-day counted on holidays
    async fn set_holidays(
        &self,
        ctx: &Context<'_>,
        input: SetHolidaysInput,
    ) -> Result<Establishment> {
        let (app, v) = viewer(ctx).await?;
        let cmd = day::SetHolidays {
            establishment_id: opaque(&input.establishment_id),
            holidays: input
                .holidays
                .iter()
                .map(|h| DomainRange {
                    from: h.from.0,
                    to: h.to.0,
                })
                .collect(),
        };
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(live(|src| Establishment::new(cmd.establishment_id, src)))
    }

    /// TEACHER of the course
    async fn record_lesson_content(
        &self,
        ctx: &Context<'_>,
        input: RecordLessonContentInput,
    ) -> Result<Course> {
        let (app, v) = viewer(ctx).await?;
        let cmd = day::RecordLessonContent {
            course_id: opaque(&input.course_id),
            content: input.content,
        };
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Course::load(app, cmd.course_id)
    }

    /// TEACHER who assigned it; the earlier version stays in the audit trail
    async fn amend_homework(
        &self,
        ctx: &Context<'_>,
        input: AmendHomeworkInput,
    ) -> Result<Homework> {
        let (app, v) = viewer(ctx).await?;
        let cmd = day::AmendCourseHomework {
            homework_id: opaque(&input.homework_id),
            title: input.title,
            description: input.description,
            due: input.due.map(|d| d.0),
            estimated_minutes: input.estimated_minutes.map(i64::from),
            reason: input.reason,
        };
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(live(|src| Homework::new(cmd.homework_id, src)))
    }

    /// TEACHER who assigned it
    async fn withdraw_homework(
        &self,
        ctx: &Context<'_>,
        homework_id: ID,
        reason: String,
    ) -> Result<bool> {
        let (app, v) = viewer(ctx).await?;
        let cmd = registre_domain::homework::WithdrawHomework {
            homework_id: opaque(&homework_id),
            reason,
        };
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(true)
    }

    /// STUDENT of the class
    async fn mark_homework_done(
        &self,
        ctx: &Context<'_>,
        homework_id: ID,
        done: bool,
    ) -> Result<Homework> {
        let (app, v) = viewer(ctx).await?;
        let Some(student) = app.read(|m| m.student_of_person(v.person).map(|s| s.id)) else {
            return forbidden();
        };
        let cmd = day::MarkHomeworkDone {
            homework_id: opaque(&homework_id),
            student_id: student,
            done,
        };
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(live(|src| Homework::new(cmd.homework_id, src)))
    }
}
