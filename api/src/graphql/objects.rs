//! The contract's object types. Each is an id plus the model it is read from
//! (the live one, or a past state rebuilt for `studentAsOf`); fields look the
//! rest up in memory, so nesting costs no store round trip. Authorization is
//! checked where an object is reached from an id, and again on the record
//! fields of a student (grades, averages, absences, homework).

use super::scalars::Date;
use super::school_day;
use super::{app, operation, viewer};
use crate::graphql::errors::GqlResult;
use async_graphql::{ComplexObject, Context, Enum, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use registre_app::policy;
use registre_app::{ApiError, Viewer};
use registre_domain::{
    AbsenceId, AssessmentId, ClassId, EstablishmentId, GradeId, HomeworkId, MessageId, PersonId,
    StudentId,
};
use registre_projections::{self as model, ReadModel as Model};
use std::sync::{Arc, OnceLock};

/// Where an object's data comes from.
#[derive(Clone, Debug)]
pub enum Src {
    /// The node's read model at the log head.
    Live,
    /// A past state of the log, rebuilt for an auditor (`studentAsOf`), and
    /// the instant asked for (the printed bulletin's link carries it).
    AsOf(Arc<Model>, DateTime<Utc>),
    /// cluster (issue 12): the slice of a class whose establishment another
    /// node folds, fetched from it for this request
    /// ([`super::class_src`]). The live state for every purpose but where
    /// it is read from: this node authorizes (the directory) and logs.
    Remote(Arc<Model>),
}

impl Src {
    pub(crate) fn read<R>(&self, ctx: &Context<'_>, f: impl FnOnce(&Model) -> R) -> Result<R> {
        match self {
            Src::Live => Ok(app(ctx)?.read(f)),
            Src::AsOf(m, _) | Src::Remote(m) => Ok(f(m)),
        }
    }

    /// A past state: what an auditor asked for, checked where it was
    /// rebuilt; the viewer's policy does not filter it.
    pub(crate) fn is_past(&self) -> bool {
        matches!(self, Src::AsOf(..))
    }
}

/// An object's entity, read from its source once: on the first field that
/// needs it, or with the list the object came from. Every field of one object
/// then answers from the same state of the model, and a field costs no lock
/// and no copy of the entity.
#[derive(Debug)]
pub struct Loaded<T>(OnceLock<T>);

impl<T> Default for Loaded<T> {
    fn default() -> Self {
        Self(OnceLock::new())
    }
}

impl<T> Loaded<T> {
    fn with(value: T) -> Self {
        Self(OnceLock::from(value))
    }

    fn get_or_load(&self, load: impl FnOnce() -> Result<T>) -> Result<&T> {
        if let Some(v) = self.0.get() {
            return Ok(v);
        }
        let v = load()?;
        // Fields of one object may race here; the first read wins for all.
        Ok(self.0.get_or_init(|| v))
    }
}

fn missing(what: &str) -> async_graphql::Error {
    crate::graphql::errors::to_gql(&ApiError::NotFound(what.into()))
}

macro_rules! gql_enum {
    ($name:ident, $domain:ty, { $($v:ident),* }) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
        #[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
        pub enum $name { $($v),* }
        impl From<$domain> for $name {
            fn from(d: $domain) -> Self { match d { $(<$domain>::$v => $name::$v),* } }
        }
        impl From<$name> for $domain {
            fn from(d: $name) -> Self { match d { $($name::$v => <$domain>::$v),* } }
        }
    };
}

pub(crate) use gql_enum;

gql_enum!(Role, registre_domain::Role, { Admin, Head, EducationStaff, Teacher, Guardian, Student, Auditor });
gql_enum!(GradeStatus, registre_domain::GradeStatus, { Graded, Absent, Exempt, NotSubmitted });
gql_enum!(AbsenceKind, registre_domain::AbsenceKind, { Absence, Lateness, Departure });
gql_enum!(JustificationState, registre_domain::JustificationState, { Unjustified, Pending, Accepted, Rejected });

pub(crate) fn id<T: std::fmt::Display>(v: T) -> ID {
    ID(v.to_string())
}

// ---- Person ----------------------------------------------------------------

#[derive(Debug)]
pub struct Person {
    pub id: PersonId,
    pub src: Src,
    data: Loaded<model::Person>,
}

impl Person {
    pub fn new(id: PersonId, src: Src) -> Self {
        Self {
            id,
            src,
            data: Loaded::default(),
        }
    }

    fn get(&self, ctx: &Context<'_>) -> Result<&model::Person> {
        self.data.get_or_load(|| {
            self.src
                .read(ctx, |m| m.person(self.id).cloned())?
                .ok_or_else(|| missing("person"))
        })
    }
}

#[Object]
impl Person {
    async fn id(&self) -> ID {
        id(self.id)
    }
    async fn external_id(&self, ctx: &Context<'_>) -> Result<&str> {
        Ok(&self.get(ctx)?.external_id)
    }
    async fn display_name(&self, ctx: &Context<'_>) -> Result<&str> {
        Ok(&self.get(ctx)?.display_name)
    }
    async fn roles(&self, ctx: &Context<'_>) -> Result<Vec<Role>> {
        Ok(self
            .get(ctx)?
            .roles
            .iter()
            .copied()
            .map(Role::from)
            .collect())
    }
    // pages (issue 18)
    /// The establishment a HEAD, EDUCATION_STAFF or TEACHER works in; null for anyone else
    async fn establishment(&self, ctx: &Context<'_>) -> Result<Option<Establishment>> {
        Ok(self
            .get(ctx)?
            .establishment_id
            .map(|e| Establishment::new(e, self.src.clone())))
    }
}

// ---- Establishment, SchoolClass ------------------------------------------------

#[derive(Debug)]
pub struct Establishment {
    pub id: EstablishmentId,
    pub src: Src,
    data: Loaded<model::Establishment>,
}

impl Establishment {
    pub fn new(id: EstablishmentId, src: Src) -> Self {
        Self {
            id,
            src,
            data: Loaded::default(),
        }
    }

    fn get(&self, ctx: &Context<'_>) -> Result<&model::Establishment> {
        self.data.get_or_load(|| {
            self.src
                .read(ctx, |m| m.establishment(self.id).cloned())?
                .ok_or_else(|| missing("establishment"))
        })
    }
}

#[Object]
impl Establishment {
    async fn id(&self) -> ID {
        id(self.id)
    }
    /// UAI code: 7 digits and a letter, e.g. 0750001A
    async fn uai(&self, ctx: &Context<'_>) -> Result<&str> {
        Ok(&self.get(ctx)?.uai)
    }
    async fn name(&self, ctx: &Context<'_>) -> Result<&str> {
        Ok(&self.get(ctx)?.name)
    }
    /// IANA time zone, default Europe/Paris (Indian/Reunion, America/Cayenne, ...)
    async fn time_zone(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(self.get(ctx)?.time_zone.name().to_owned())
    }
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::limits::size::CLASSES, child_complexity)"
    )]
    async fn classes(&self, ctx: &Context<'_>) -> Result<Vec<SchoolClass>> {
        let establishment = self.get(ctx)?;
        let classes = self.src.read(ctx, |m| {
            establishment
                .classes
                .iter()
                .filter_map(|&id| m.class(id).cloned())
                .collect::<Vec<_>>()
        })?;
        Ok(classes
            .into_iter()
            .map(|c| SchoolClass::loaded(c, self.src.clone()))
            .collect())
    }
    // school day (issue 13)
    async fn absence_reasons(&self, ctx: &Context<'_>) -> Result<Vec<school_day::AbsenceReason>> {
        self.src.read(ctx, |m| {
            m.motives_of(self.id)
                .into_iter()
                .map(school_day::AbsenceReason::from)
                .collect()
        })
    }
    async fn holidays(&self, ctx: &Context<'_>) -> Result<Vec<school_day::DateRange>> {
        self.src.read(ctx, |m| {
            m.holidays_of(self.id)
                .iter()
                .map(<school_day::DateRange as From<&_>>::from)
                .collect()
        })
    }
    /// The establishment's evaluation periods (trimestres or semestres), in order
    async fn periods(&self, ctx: &Context<'_>) -> Result<Vec<super::evaluation::Period>> {
        super::evaluation::periods_of(ctx, &self.src, self.id)
    }
    // interop (issue 17)
    /// the school year last started (startSchoolYear), named by the year it starts in
    async fn school_year(&self, ctx: &Context<'_>) -> Result<Option<i32>> {
        Ok(self.get(ctx)?.school_year)
    }
}

#[derive(Debug)]
pub struct SchoolClass {
    pub id: ClassId,
    pub src: Src,
    data: Loaded<model::SchoolClass>,
}

impl SchoolClass {
    pub fn new(id: ClassId, src: Src) -> Self {
        Self {
            id,
            src,
            data: Loaded::default(),
        }
    }

    /// An object whose entity was read with the list it belongs to.
    pub(crate) fn loaded(data: model::SchoolClass, src: Src) -> Self {
        Self {
            id: data.id,
            src,
            data: Loaded::with(data),
        }
    }

    fn get(&self, ctx: &Context<'_>) -> Result<&model::SchoolClass> {
        self.data.get_or_load(|| {
            self.src
                .read(ctx, |m| m.class(self.id).cloned())?
                .ok_or_else(|| missing("class"))
        })
    }
}

#[Object]
impl SchoolClass {
    async fn id(&self) -> ID {
        id(self.id)
    }
    async fn name(&self, ctx: &Context<'_>) -> Result<&str> {
        Ok(&self.get(ctx)?.name)
    }
    async fn establishment(&self, ctx: &Context<'_>) -> Result<Establishment> {
        Ok(Establishment::new(
            self.get(ctx)?.establishment_id,
            self.src.clone(),
        ))
    }
    // interop (issue 17)
    /// the school year of a closed class (read-only since startSchoolYear); null for a class of the current year
    async fn closed_year(&self, ctx: &Context<'_>) -> Result<Option<i32>> {
        Ok(self.get(ctx)?.closed.as_ref().map(|c| c.year))
    }
    /// The students of the class the viewer may see; for a class of a past
    /// school year, those who were in it when the year closed.
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::limits::size::STUDENTS, child_complexity)"
    )]
    async fn students(&self, ctx: &Context<'_>) -> Result<Vec<Student>> {
        let class = self.get(ctx)?;
        let all = self.src.is_past();
        let (_, v) = viewer(ctx).await?;
        let members = class
            .closed
            .as_ref()
            .map_or(&class.students, |c| &c.students);
        let visible = self.src.read(ctx, |m| {
            members
                .iter()
                .filter(|s| all || policy::can_see_student(m, &v, **s))
                .filter_map(|s| m.student(*s).cloned())
                .collect::<Vec<_>>()
        })?;
        Ok(visible
            .into_iter()
            .map(|s| Student::loaded(s, self.src.clone()))
            .collect())
    }
    // school day (issue 13)
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::school_day::COURSES, child_complexity)"
    )]
    async fn timetable(
        &self,
        ctx: &Context<'_>,
        from: Date,
        to: Date,
    ) -> Result<Vec<school_day::Course>> {
        school_day::may_see_class(ctx, self.id).await?;
        self.src
            .read(ctx, |m| school_day::class_timetable(m, self.id, from, to))?
    }
    /// homework due per day: what a class's teachers look at before giving more
    async fn homework_load(
        &self,
        ctx: &Context<'_>,
        from: Date,
        to: Date,
    ) -> Result<Vec<school_day::HomeworkDay>> {
        school_day::may_see_class(ctx, self.id).await?;
        self.src
            .read(ctx, |m| school_day::homework_load(m, self.id, from, to))?
    }
    /// TEACHER of that subject in the class, HEAD, EDUCATION_STAFF: assessments with their grades
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::limits::size::GRADES, child_complexity)"
    )]
    async fn gradebook(
        &self,
        ctx: &Context<'_>,
        subject: String,
        period_id: Option<ID>,
    ) -> Result<Vec<Assessment>> {
        super::evaluation::gradebook(ctx, &self.src, self.id, subject.trim(), period_id).await
    }
}

// ---- Student ---------------------------------------------------------------------

#[derive(Debug)]
pub struct Student {
    pub id: StudentId,
    pub src: Src,
    data: Loaded<model::Student>,
    /// The averages rows, shared by `averages` and `overallAverage`.
    average_rows: Loaded<Vec<SubjectAverage>>,
    /// Where the record fields read: `src`, or the class's slice from the
    /// node that folds it (cluster, issue 12).
    record_src: tokio::sync::OnceCell<Src>,
}

/// One subject row of the averages.
#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct SubjectAverage {
    pub subject: String,
    pub average: Option<f64>,
    pub class_average: Option<f64>,
    /// the lowest of the class's students' averages in this subject (evaluation, issue 14)
    pub class_min: Option<f64>,
    /// the highest of the class's students' averages in this subject
    pub class_max: Option<f64>,
}

/// The averages rows the viewer may see (a teacher: the subjects they teach
/// in the student's class); `None` for an auditor's past state.
fn averages_of(
    m: &Model,
    figures: &model::ClassFigures,
    v: Option<&Viewer>,
    student: StudentId,
) -> Vec<SubjectAverage> {
    let Some(class) = m.student(student).map(|s| s.class_id) else {
        return Vec::new();
    };
    // The class averages are the figures' (the same mean of the same
    // students' averages), computed once per class and cached with them.
    m.averages_with(student, |subject| {
        figures.subjects.get(subject).and_then(|f| f.average)
    })
    .into_iter()
    .filter(|row| v.is_none_or(|v| policy::can_see_subject(m, v, student, class, &row.subject)))
    .map(|row| {
        let spread = figures.subjects.get(&row.subject);
        SubjectAverage {
            class_min: spread.and_then(|f| f.min),
            class_max: spread.and_then(|f| f.max),
            subject: row.subject,
            average: row.average,
            class_average: row.class_average,
        }
    })
    .collect()
}

impl Student {
    pub fn new(id: StudentId, src: Src) -> Self {
        Self {
            id,
            src,
            data: Loaded::default(),
            average_rows: Loaded::default(),
            record_src: tokio::sync::OnceCell::new(),
        }
    }

    /// An object whose entity was read with the list it belongs to.
    pub(crate) fn loaded(data: model::Student, src: Src) -> Self {
        Self {
            id: data.id,
            src,
            data: Loaded::with(data),
            average_rows: Loaded::default(),
            record_src: tokio::sync::OnceCell::new(),
        }
    }

    /// Where the record is read (see `record_src`): the student and their
    /// class are in the directory every node folds; their grades, absences
    /// and homework in the establishment's partition.
    async fn record_src(&self, ctx: &Context<'_>) -> Result<&Src> {
        if !matches!(self.src, Src::Live) {
            return Ok(&self.src);
        }
        let class = self.get(ctx)?.class_id;
        self.record_src
            .get_or_try_init(|| super::class_src(ctx, class))
            .await
    }

    fn get(&self, ctx: &Context<'_>) -> Result<&model::Student> {
        self.data.get_or_load(|| {
            self.src
                .read(ctx, |m| m.student(self.id).cloned())?
                .ok_or_else(|| missing("student"))
        })
    }

    /// The averages rows for `v`; on the live model with the App's cached
    /// class averages.
    fn average_rows(
        &self,
        ctx: &Context<'_>,
        src: &Src,
        v: Option<&Viewer>,
    ) -> Result<&[SubjectAverage]> {
        // One viewer per request, so one set of rows per object.
        let rows = self
            .average_rows
            .get_or_load(|| self.compute_average_rows(ctx, src, v))?;
        Ok(rows)
    }

    fn compute_average_rows(
        &self,
        ctx: &Context<'_>,
        src: &Src,
        v: Option<&Viewer>,
    ) -> Result<Vec<SubjectAverage>> {
        match src {
            Src::Live => {
                let app = app(ctx)?;
                Ok(app.read(|m| {
                    let class = m.student(self.id).map(|s| s.class_id).unwrap_or_default();
                    let figures = app.class_figures(m, class, None);
                    averages_of(m, &figures, v, self.id)
                }))
            }
            Src::AsOf(m, _) | Src::Remote(m) => {
                let class = m.student(self.id).map(|s| s.class_id).unwrap_or_default();
                let figures = m.class_figures(class, None);
                Ok(averages_of(m, &figures, v, self.id))
            }
        }
    }

    /// The viewer, after checking they may read this record; `None` for an
    /// auditor's past state (checked at `studentAsOf`). Records the read.
    async fn record_viewer(&self, ctx: &Context<'_>, service: &str) -> Result<Option<Viewer>> {
        let (app, v) = viewer(ctx).await?;
        let person = self.get(ctx)?.person_id;
        let live = !self.src.is_past();
        if live && !app.read(|m| policy::can_read_record(m, &v, self.id)) {
            return Err(ApiError::forbidden()).gql();
        }
        app.record_access(&v, Some(person), operation(ctx), service)
            .await
            .gql()?;
        Ok(live.then_some(v))
    }
}

#[Object]
impl Student {
    async fn id(&self) -> ID {
        id(self.id)
    }
    async fn person(&self, ctx: &Context<'_>) -> Result<Person> {
        Ok(Person::new(self.get(ctx)?.person_id, self.src.clone()))
    }
    async fn school_class(&self, ctx: &Context<'_>) -> Result<SchoolClass> {
        Ok(SchoolClass::new(self.get(ctx)?.class_id, self.src.clone()))
    }
    async fn guardians(&self, ctx: &Context<'_>) -> Result<Vec<Person>> {
        Ok(self
            .get(ctx)?
            .guardians
            .iter()
            .map(|&id| Person::new(id, self.src.clone()))
            .collect())
    }
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::limits::size::GRADES, child_complexity)"
    )]
    async fn grades(&self, ctx: &Context<'_>, subject: Option<String>) -> Result<Vec<Grade>> {
        let v = self.record_viewer(ctx, "Notes").await?;
        let src = self.record_src(ctx).await?;
        let grades = src.read(ctx, |m| {
            m.student_grades(self.id, subject.as_deref())
                .into_iter()
                .filter(|(_, a)| {
                    v.as_ref().is_none_or(|v| {
                        policy::can_see_subject(m, v, self.id, a.class_id, &a.subject)
                    })
                })
                .map(|(g, _)| g.clone())
                .collect::<Vec<_>>()
        })?;
        Ok(grades
            .into_iter()
            .map(|g| Grade::loaded(g, src.clone()))
            .collect())
    }
    /// one row per subject with at least one assessment; averages on a /20 scale, weighted by coefficient, counting GRADED grades only. With periodId: over that period only (assessments dated in it)
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::limits::size::SUBJECTS, child_complexity)"
    )]
    async fn averages(
        &self,
        ctx: &Context<'_>,
        period_id: Option<ID>,
    ) -> Result<Vec<SubjectAverage>> {
        let v = self.record_viewer(ctx, "Notes").await?;
        let src = self.record_src(ctx).await?;
        match period_id {
            None => Ok(self.average_rows(ctx, src, v.as_ref())?.to_vec()),
            Some(p) => {
                let period = super::root::parse("periodId", &p)?;
                super::evaluation::period_rows(ctx, src, v.as_ref(), self.id, period)
            }
        }
    }
    /// mean of the subject averages; null when the student has no GRADED grade. With periodId: over that period only
    async fn overall_average(
        &self,
        ctx: &Context<'_>,
        period_id: Option<ID>,
    ) -> Result<Option<f64>> {
        let v = self.record_viewer(ctx, "Notes").await?;
        let src = self.record_src(ctx).await?;
        let period_rows;
        let rows = match period_id {
            None => self.average_rows(ctx, src, v.as_ref())?,
            Some(p) => {
                let period = super::root::parse("periodId", &p)?;
                period_rows =
                    super::evaluation::period_rows(ctx, src, v.as_ref(), self.id, period)?;
                &period_rows
            }
        };
        let known: Vec<f64> = rows.iter().filter_map(|r| r.average).collect();
        Ok((!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64))
    }
    /// The report card (bulletin) of a period of the student's establishment: the student, their guardians, the HEAD and EDUCATION_STAFF of the establishment, the teachers of the class
    #[graphql(
        complexity = "crate::graphql::limits::fixed(crate::graphql::limits::weight::STATS, child_complexity)"
    )]
    async fn report_card(
        &self,
        ctx: &Context<'_>,
        period_id: ID,
    ) -> Result<Option<super::evaluation::ReportCard>> {
        self.record_viewer(ctx, "Notes").await?;
        let src = self.record_src(ctx).await?;
        super::evaluation::report_card(ctx, src, self.id, &period_id)
    }
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::limits::size::ABSENCES, child_complexity)"
    )]
    async fn absences(&self, ctx: &Context<'_>) -> Result<Vec<Absence>> {
        self.record_viewer(ctx, "Absences").await?;
        let src = self.record_src(ctx).await?;
        let absences = src.read(ctx, |m| {
            m.absences_of(self.id)
                .into_iter()
                .filter(|a| !m.is_absence_cancelled(a.id))
                .cloned()
                .collect::<Vec<_>>()
        })?;
        Ok(absences
            .into_iter()
            .map(|a| Absence::loaded(a, src.clone()))
            .collect())
    }
    /// the student, their guardians, their teachers, EDUCATION_STAFF, HEAD
    #[graphql(
        complexity = "crate::graphql::limits::list(super::discipline::size::PUNISHMENTS, child_complexity)"
    )]
    async fn punishments(&self, ctx: &Context<'_>) -> Result<Vec<super::discipline::Punishment>> {
        let src = self.record_src(ctx).await?;
        super::discipline::punishments_of(ctx, src, self.id, self.get(ctx)?.person_id).await
    }
    /// the student, their guardians, EDUCATION_STAFF, HEAD; erased sanctions are not listed
    #[graphql(
        complexity = "crate::graphql::limits::list(super::discipline::size::SANCTIONS, child_complexity)"
    )]
    async fn sanctions(&self, ctx: &Context<'_>) -> Result<Vec<super::discipline::Sanction>> {
        let src = self.record_src(ctx).await?;
        super::discipline::sanctions_of(ctx, src, self.id, self.get(ctx)?.person_id).await
    }
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::limits::size::HOMEWORK, child_complexity)"
    )]
    async fn homework(
        &self,
        ctx: &Context<'_>,
        from: Option<Date>,
        to: Option<Date>,
    ) -> Result<Vec<Homework>> {
        let v = self.record_viewer(ctx, "Cahier_Textes").await?;
        let src = self.record_src(ctx).await?;
        let entries = src.read(ctx, |m| {
            m.homework_of(self.id, from.map(|d| d.0), to.map(|d| d.0))
                .into_iter()
                .filter(|h| {
                    !m.is_homework_withdrawn(h.id)
                        && v.as_ref().is_none_or(|v| {
                            policy::can_see_subject(m, v, self.id, h.class_id, &h.subject)
                        })
                })
                .cloned()
                .collect::<Vec<_>>()
        })?;
        Ok(entries
            .into_iter()
            .map(|h| Homework::loaded(h, src.clone()))
            .collect())
    }
    // school day (issue 13)
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::school_day::COURSES, child_complexity)"
    )]
    async fn timetable(
        &self,
        ctx: &Context<'_>,
        from: Date,
        to: Date,
    ) -> Result<Vec<school_day::Course>> {
        self.record_viewer(ctx, "Emploi_Du_Temps").await?;
        let class = self.get(ctx)?.class_id;
        self.record_src(ctx)
            .await?
            .read(ctx, |m| school_day::class_timetable(m, class, from, to))?
    }
}

// ---- Grades ---------------------------------------------------------------------------

#[derive(Debug)]
pub struct Assessment {
    pub id: AssessmentId,
    pub src: Src,
    data: Loaded<model::Assessment>,
}

impl Assessment {
    pub fn new(id: AssessmentId, src: Src) -> Self {
        Self {
            id,
            src,
            data: Loaded::default(),
        }
    }

    fn get(&self, ctx: &Context<'_>) -> Result<&model::Assessment> {
        self.data.get_or_load(|| {
            self.src
                .read(ctx, |m| m.assessment(self.id).cloned())?
                .ok_or_else(|| missing("assessment"))
        })
    }
}

#[Object]
impl Assessment {
    async fn id(&self) -> ID {
        id(self.id)
    }
    async fn school_class(&self, ctx: &Context<'_>) -> Result<SchoolClass> {
        Ok(SchoolClass::new(self.get(ctx)?.class_id, self.src.clone()))
    }
    async fn subject(&self, ctx: &Context<'_>) -> Result<&str> {
        Ok(&self.get(ctx)?.subject)
    }
    async fn title(&self, ctx: &Context<'_>) -> Result<&str> {
        Ok(&self.get(ctx)?.title)
    }
    async fn date(&self, ctx: &Context<'_>) -> Result<Date> {
        Ok(Date(self.get(ctx)?.date))
    }
    async fn coefficient(&self, ctx: &Context<'_>) -> Result<f64> {
        Ok(self.get(ctx)?.coefficient)
    }
    async fn out_of(&self, ctx: &Context<'_>) -> Result<f64> {
        Ok(self.get(ctx)?.out_of)
    }
    /// count, mean, min and max of the GRADED grades, on the assessment's own scale
    async fn stats(&self, ctx: &Context<'_>) -> Result<super::evaluation::AssessmentStats> {
        let a = self.get(ctx)?;
        self.src
            .read(ctx, |m| super::evaluation::assessment_stats(m, a))
    }
    /// TEACHER who owns it, HEAD, EDUCATION_STAFF; FORBIDDEN for students and guardians
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::limits::size::STUDENTS, child_complexity)"
    )]
    async fn grades(&self, ctx: &Context<'_>) -> Result<Vec<Grade>> {
        let a = self.get(ctx)?;
        super::evaluation::assessment_grades(ctx, &self.src, a).await
    }
}

#[derive(Debug)]
pub struct Grade {
    pub id: GradeId,
    pub src: Src,
    data: Loaded<model::Grade>,
}

impl Grade {
    pub fn new(id: GradeId, src: Src) -> Self {
        Self {
            id,
            src,
            data: Loaded::default(),
        }
    }

    /// An object whose entity was read with the list it belongs to.
    pub(crate) fn loaded(data: model::Grade, src: Src) -> Self {
        Self {
            id: data.id,
            src,
            data: Loaded::with(data),
        }
    }

    fn get(&self, ctx: &Context<'_>) -> Result<&model::Grade> {
        self.data.get_or_load(|| {
            self.src
                .read(ctx, |m| m.grade(self.id).cloned())?
                .ok_or_else(|| missing("grade"))
        })
    }
}

#[Object]
impl Grade {
    async fn id(&self) -> ID {
        id(self.id)
    }
    async fn assessment(&self, ctx: &Context<'_>) -> Result<Assessment> {
        Ok(Assessment::new(
            self.get(ctx)?.assessment_id,
            self.src.clone(),
        ))
    }
    async fn student(&self, ctx: &Context<'_>) -> Result<Student> {
        Ok(Student::new(self.get(ctx)?.student_id, self.src.clone()))
    }
    /// null unless status is GRADED; 0 <= score <= assessment.outOf
    async fn score(&self, ctx: &Context<'_>) -> Result<Option<f64>> {
        Ok(self.get(ctx)?.score)
    }
    async fn status(&self, ctx: &Context<'_>) -> Result<GradeStatus> {
        Ok(self.get(ctx)?.status.into())
    }
    async fn recorded_at(&self, ctx: &Context<'_>) -> Result<DateTime<Utc>> {
        Ok(self.get(ctx)?.recorded_at)
    }
    async fn recorded_by(&self, ctx: &Context<'_>) -> Result<Person> {
        Ok(Person::new(self.get(ctx)?.recorded_by, self.src.clone()))
    }
}

// ---- Absences ------------------------------------------------------------------------------

#[derive(Debug)]
pub struct Absence {
    pub id: AbsenceId,
    pub src: Src,
    data: Loaded<model::Absence>,
}

impl Absence {
    pub fn new(id: AbsenceId, src: Src) -> Self {
        Self {
            id,
            src,
            data: Loaded::default(),
        }
    }

    /// An object whose entity was read with the list it belongs to.
    pub(crate) fn loaded(data: model::Absence, src: Src) -> Self {
        Self {
            id: data.id,
            src,
            data: Loaded::with(data),
        }
    }

    fn get(&self, ctx: &Context<'_>) -> Result<&model::Absence> {
        self.data.get_or_load(|| {
            self.src
                .read(ctx, |m| m.absence(self.id).cloned())?
                .ok_or_else(|| missing("absence"))
        })
    }
}

#[Object]
impl Absence {
    async fn id(&self) -> ID {
        id(self.id)
    }
    /// documents a guardian gave with the justification
    async fn attachments(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<super::communication::Attachment>> {
        visible_attachments(ctx, &self.src, |m| m.communication().of_absence(self.id)).await
    }
    async fn student(&self, ctx: &Context<'_>) -> Result<Student> {
        Ok(Student::new(self.get(ctx)?.student_id, self.src.clone()))
    }
    async fn kind(&self, ctx: &Context<'_>) -> Result<AbsenceKind> {
        Ok(self.get(ctx)?.kind.into())
    }
    async fn start(&self, ctx: &Context<'_>) -> Result<DateTime<Utc>> {
        Ok(self.get(ctx)?.start)
    }
    async fn end(&self, ctx: &Context<'_>) -> Result<DateTime<Utc>> {
        Ok(self.get(ctx)?.end)
    }
    async fn minutes_late(&self, ctx: &Context<'_>) -> Result<Option<i32>> {
        Ok(self
            .get(ctx)?
            .minutes_late
            .map(|n| i32::try_from(n).unwrap_or(i32::MAX)))
    }
    async fn state(&self, ctx: &Context<'_>) -> Result<JustificationState> {
        Ok(self.get(ctx)?.state.into())
    }
    async fn reason(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        Ok(self.get(ctx)?.reason.as_deref())
    }
    /// Declared in advance by a guardian and not yet confirmed by a roll call.
    async fn declared(&self, ctx: &Context<'_>) -> Result<bool> {
        let a = self.get(ctx)?;
        Ok(a.declared_in_advance && !a.confirmed)
    }
    async fn reported_by(&self, ctx: &Context<'_>) -> Result<Person> {
        let by = self
            .get(ctx)?
            .reported_by
            .ok_or_else(|| missing("reporter"))?;
        Ok(Person::new(by, self.src.clone()))
    }
    async fn reported_at(&self, ctx: &Context<'_>) -> Result<DateTime<Utc>> {
        Ok(self.get(ctx)?.reported_at)
    }
    // school day (issue 13)
    /// the establishment's motive, null when none was given
    async fn motive(&self, ctx: &Context<'_>) -> Result<Option<school_day::AbsenceReason>> {
        self.src.read(ctx, |m| {
            m.motive_of_absence(self.id)
                .map(school_day::AbsenceReason::from)
        })
    }
    /// the course whose roll call recorded it, null otherwise
    async fn course(&self, ctx: &Context<'_>) -> Result<Option<school_day::Course>> {
        self.src.read(ctx, |m| {
            m.course_of_absence(self.id)
                .map(|c| school_day::Course::of(m, c))
        })
    }
}

#[derive(Debug)]
pub struct AbsenceNotification {
    pub position: u64,
    pub absence: AbsenceId,
    pub student: StudentId,
}

#[Object]
impl AbsenceNotification {
    /// position of the event in the log; pass it back as `after` to resume without missing any
    async fn position(&self) -> String {
        self.position.to_string()
    }
    async fn absence(&self, ctx: &Context<'_>) -> Result<Absence> {
        // cluster (issue 12): an absence of a school folded elsewhere is
        // read from its class's slice, taken at the absence's position.
        let class = app(ctx)?.read(|m| m.student(self.student).map(|s| s.class_id));
        let src = match class {
            Some(class) => super::class_src_at(ctx, class, self.position).await?,
            None => Src::Live,
        };
        Ok(Absence::new(self.absence, src))
    }
}

#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct AbsenceStats {
    pub half_days_missed: i32,
    pub unjustified_half_days: i32,
    #[graphql(skip)]
    pub over_threshold: Vec<StudentId>,
}

#[ComplexObject]
impl AbsenceStats {
    /// students with 4 or more unjustified half-days within one calendar month of the range
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::limits::size::OVER_THRESHOLD, child_complexity)"
    )]
    async fn students_over_threshold(&self) -> Vec<Student> {
        self.over_threshold
            .iter()
            .map(|id| Student::new(*id, Src::Live))
            .collect()
    }
}

/// Half-day counts of a class between two days (inclusive), from the stats view.
pub(crate) fn absence_stats(
    m: &Model,
    class: ClassId,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> AbsenceStats {
    let stats = m.absence_stats(class, from, to);
    AbsenceStats {
        half_days_missed: i32::try_from(stats.half_days_missed).unwrap_or(i32::MAX),
        unjustified_half_days: i32::try_from(stats.unjustified_half_days).unwrap_or(i32::MAX),
        over_threshold: stats.students_over_threshold,
    }
}

// ---- Homework, messages -------------------------------------------------------------------

#[derive(Debug)]
pub struct Homework {
    pub id: HomeworkId,
    pub src: Src,
    data: Loaded<model::Homework>,
}

impl Homework {
    pub fn new(id: HomeworkId, src: Src) -> Self {
        Self {
            id,
            src,
            data: Loaded::default(),
        }
    }

    /// An object whose entity was read with the list it belongs to.
    pub(crate) fn loaded(data: model::Homework, src: Src) -> Self {
        Self {
            id: data.id,
            src,
            data: Loaded::with(data),
        }
    }

    fn get(&self, ctx: &Context<'_>) -> Result<&model::Homework> {
        self.data.get_or_load(|| {
            self.src
                .read(ctx, |m| m.homework_entry(self.id).cloned())?
                .ok_or_else(|| missing("homework"))
        })
    }
}

#[Object]
impl Homework {
    async fn id(&self) -> ID {
        id(self.id)
    }
    async fn attachments(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<super::communication::Attachment>> {
        visible_attachments(ctx, &self.src, |m| m.communication().of_homework(self.id)).await
    }
    async fn school_class(&self, ctx: &Context<'_>) -> Result<SchoolClass> {
        Ok(SchoolClass::new(self.get(ctx)?.class_id, self.src.clone()))
    }
    async fn subject(&self, ctx: &Context<'_>) -> Result<&str> {
        Ok(&self.get(ctx)?.subject)
    }
    async fn title(&self, ctx: &Context<'_>) -> Result<&str> {
        Ok(&self.get(ctx)?.title)
    }
    async fn description(&self, ctx: &Context<'_>) -> Result<&str> {
        Ok(&self.get(ctx)?.description)
    }
    async fn due(&self, ctx: &Context<'_>) -> Result<Date> {
        Ok(Date(self.get(ctx)?.due))
    }
    async fn assigned_by(&self, ctx: &Context<'_>) -> Result<Person> {
        Ok(Person::new(self.get(ctx)?.teacher_id, self.src.clone()))
    }
    // school day (issue 13)
    /// the course it was given in, when there is one
    async fn course(&self, ctx: &Context<'_>) -> Result<Option<school_day::Course>> {
        self.src.read(ctx, |m| {
            m.homework_details(self.id)
                .and_then(|d| d.course_id)
                .and_then(|c| m.course(c))
                .map(|c| school_day::Course::of(m, c))
        })
    }
    async fn estimated_minutes(&self, ctx: &Context<'_>) -> Result<Option<i32>> {
        self.src.read(ctx, |m| {
            m.homework_details(self.id)
                .and_then(|d| d.estimated_minutes)
                .map(|n| i32::try_from(n).unwrap_or(i32::MAX))
        })
    }
    /// STUDENT viewer: whether they marked it done; null for any other viewer
    async fn done(&self, ctx: &Context<'_>) -> Result<Option<bool>> {
        school_day::homework_done(ctx, self.id).await
    }
}

/// A message as one viewer sees it (`readAt` is theirs).
#[derive(Debug)]
pub struct Message {
    pub id: MessageId,
    pub reader: PersonId,
    data: Loaded<model::Message>,
}

impl Message {
    pub fn new(id: MessageId, reader: PersonId) -> Self {
        Self {
            id,
            reader,
            data: Loaded::default(),
        }
    }

    fn get(&self, ctx: &Context<'_>) -> Result<&model::Message> {
        self.data.get_or_load(|| {
            app(ctx)?
                .read(|m| m.message(self.id).cloned())
                .ok_or_else(|| missing("message"))
        })
    }
}

#[Object]
impl Message {
    async fn id(&self) -> ID {
        id(self.id)
    }
    async fn thread_id(&self, ctx: &Context<'_>) -> Result<ID> {
        Ok(id(self.get(ctx)?.thread_id))
    }
    async fn from(&self, ctx: &Context<'_>) -> Result<Person> {
        Ok(Person::new(self.get(ctx)?.from, Src::Live))
    }
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::limits::size::RECIPIENTS, child_complexity)"
    )]
    async fn to(&self, ctx: &Context<'_>) -> Result<Vec<Person>> {
        Ok(self
            .get(ctx)?
            .to
            .iter()
            .map(|&id| Person::new(id, Src::Live))
            .collect())
    }
    async fn subject(&self, ctx: &Context<'_>) -> Result<&str> {
        Ok(&self.get(ctx)?.subject)
    }
    async fn body(&self, ctx: &Context<'_>) -> Result<&str> {
        Ok(&self.get(ctx)?.body)
    }
    async fn sent_at(&self, ctx: &Context<'_>) -> Result<DateTime<Utc>> {
        Ok(self.get(ctx)?.sent_at)
    }
    /// when the viewer read it; null while unread
    async fn read_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>> {
        Ok(self.get(ctx)?.read_at.get(&self.reader).copied())
    }
    /// the sender sees one receipt per recipient; any other viewer sees an empty list
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::limits::size::RECIPIENTS, child_complexity)"
    )]
    async fn receipts(&self, ctx: &Context<'_>) -> Result<Vec<super::communication::ReadReceipt>> {
        let msg = self.get(ctx)?;
        if msg.from != self.reader {
            return Ok(Vec::new());
        }
        Ok(msg
            .to
            .iter()
            .map(|p| super::communication::ReadReceipt {
                person: *p,
                read_at: msg.read_at.get(p).copied(),
            })
            .collect())
    }
    async fn attachments(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<super::communication::Attachment>> {
        visible_attachments(ctx, &Src::Live, |m| m.communication().of_message(self.id)).await
    }
}

/// The attachments of an entity that the viewer may download (a teacher who
/// sees an absence does not see the doctor's note given with it).
async fn visible_attachments(
    ctx: &Context<'_>,
    src: &Src,
    list: impl FnOnce(&Model) -> Vec<model::communication::Attachment>,
) -> Result<Vec<super::communication::Attachment>> {
    let (_, v) = viewer(ctx).await?;
    src.read(ctx, |m| {
        list(m)
            .into_iter()
            .filter(|a| policy::can_download(m, &v, a.id))
            .map(super::communication::Attachment::from)
            .collect()
    })
}

// ---- Audit -------------------------------------------------------------------------------

#[derive(Debug)]
pub struct AuditEntry {
    pub event: registre_store::RecordedEvent,
}

#[Object]
impl AuditEntry {
    async fn position(&self) -> String {
        self.event.position.to_string()
    }
    async fn event_type(&self) -> &str {
        &self.event.event_type
    }
    async fn recorded_at(&self) -> DateTime<Utc> {
        self.event.recorded_at
    }
    /// null for system events
    async fn actor(&self) -> Option<Person> {
        self.event
            .metadata
            .actor
            .as_ref()
            .map(|a| Person::new(PersonId(a.person_id), Src::Live))
    }
    /// mandatory on corrections
    async fn reason(&self) -> Option<&str> {
        self.event.metadata.reason.as_deref()
    }
    async fn data(&self) -> async_graphql::Json<serde_json::Value> {
        async_graphql::Json(self.event.data.clone())
    }
}

#[derive(Debug)]
pub struct AccessEntry {
    pub record: registre_store::AccessRecord,
}

#[Object]
impl AccessEntry {
    async fn viewer(&self) -> Person {
        Person::new(PersonId(self.record.access.viewer_id), Src::Live)
    }
    async fn at(&self) -> DateTime<Utc> {
        self.record.access.at
    }
    /// what was read, e.g. the GraphQL field path or operation name
    async fn operation(&self) -> &str {
        &self.record.access.operation
    }
    /// ENT service code of what was read (Notes, Absences, ...).
    async fn service(&self) -> &str {
        &self.record.access.service
    }
}

// ---- Usage indicators --------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum UsageProfile {
    Student,
    Teacher,
    Guardian,
    Other,
}

impl UsageProfile {
    fn of(profile: &str) -> Self {
        match profile {
            "STUDENT" => Self::Student,
            "TEACHER" => Self::Teacher,
            "GUARDIAN" => Self::Guardian,
            _ => Self::Other,
        }
    }
}

#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct UsageCell {
    /// ENT service code, e.g. Notes, Absences, CahierDeTextes, Messagerie
    pub service: String,
    pub profile: UsageProfile,
    /// 0-23, local hour of the establishment
    pub hour: i32,
    pub visits: i32,
    /// distinct pseudonymous visitors
    pub visitors: i32,
}

#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct UsageReport {
    pub from: Date,
    pub to: Date,
    pub visits: i32,
    pub visitors: i32,
    /// share of visits outside school hours, 0..1
    pub share_outside_school_hours: f64,
    pub cells: Vec<UsageCell>,
}

fn count(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl From<model::usage::UsageReport> for UsageReport {
    fn from(r: model::usage::UsageReport) -> Self {
        Self {
            from: Date(r.from),
            to: Date(r.to),
            visits: count(r.visits),
            visitors: count(r.visitors),
            share_outside_school_hours: r.share_outside_school_hours,
            cells: r
                .cells
                .into_iter()
                .map(|c| UsageCell {
                    service: c.service,
                    profile: UsageProfile::of(&c.profile),
                    hour: i32::from(c.hour),
                    visits: count(c.visits),
                    visitors: count(c.visitors),
                })
                .collect(),
        }
    }
}
