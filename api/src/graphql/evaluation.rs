//! Evaluation (issue 14): periods, appreciations, report cards, the
//! gradebook, and the printable bulletin. The fields the contract adds to
//! existing types (Establishment.periods, Assessment.stats and grades,
//! Student.averages(periodId), overallAverage(periodId) and reportCard,
//! SchoolClass.gradebook, SubjectAverage.classMin and classMax) are declared
//! in `objects` beside theirs and answered here.
//!
//! The bulletin is served over HTTP (`GET /bulletins/<student>/<period>.pdf`,
//! see `server`) by running the GraphQL query of its report card with a
//! [`PrintBulletin`] in the request's data: the same token, the same policy,
//! the same access log as the report card itself; the resolver then renders
//! the PDF from the card it computed.

use super::objects::*;
use super::root::{command_context, parse};
use super::scalars::Date;
use super::{app, operation, viewer};
use crate::graphql::errors::GqlResult;
use async_graphql::{Context, InputObject, Object, Result, SimpleObject, ID};
use parking_lot::Mutex;
use registre_app::evaluation::bulletin;
use registre_app::{policy, ApiError, Viewer};
use registre_domain::evaluation as domain;
use registre_domain::{ClassId, PeriodId, StudentId};
use registre_projections::{self as model, ReadModel as Model};
use std::sync::Arc;

/// Request data the bulletin route adds: the report card resolver renders
/// its PDF into it. Only the transport can add request data, so a GraphQL
/// client cannot ask for it.
#[derive(Clone, Debug, Default)]
pub struct PrintBulletin(pub Arc<Mutex<Option<Vec<u8>>>>);

/// The path of a report card's bulletin, relative to the server.
pub fn bulletin_path(student: StudentId, period: PeriodId) -> String {
    format!("/bulletins/{student}/{period}.pdf")
}

/// The period named by `raw`, as a period of the student's establishment.
fn student_period(m: &Model, student: StudentId, period: PeriodId) -> Result<model::Period> {
    m.period_of_student(student, period)
        .cloned()
        .ok_or_else(|| ApiError::NotFound("period".into()))
        .gql()
}

// ---- Period -------------------------------------------------------------------------

#[derive(Debug)]
pub struct Period {
    pub data: model::Period,
    pub src: Src,
}

#[Object]
impl Period {
    async fn id(&self) -> ID {
        id(self.data.id)
    }
    async fn establishment(&self) -> Establishment {
        Establishment::new(self.data.establishment_id, self.src.clone())
    }
    async fn name(&self) -> &str {
        &self.data.name
    }
    async fn start(&self) -> Date {
        Date(self.data.start)
    }
    async fn end(&self) -> Date {
        Date(self.data.end)
    }
    /// closed by the HEAD: grades dated in it can no longer be recorded or corrected, report cards are final
    async fn closed(&self) -> bool {
        self.data.closed
    }
}

pub(super) fn periods_of(
    ctx: &Context<'_>,
    src: &Src,
    establishment: registre_domain::EstablishmentId,
) -> Result<Vec<Period>> {
    let list = src.read(ctx, |m| {
        m.periods_of(establishment)
            .into_iter()
            .cloned()
            .collect::<Vec<_>>()
    })?;
    Ok(list
        .into_iter()
        .map(|data| Period {
            data,
            src: src.clone(),
        })
        .collect())
}

// ---- Assessment statistics, grades and the gradebook ------------------------------------

#[derive(SimpleObject, Clone, Debug, PartialEq)]
pub struct AssessmentStats {
    /// GRADED grades counted
    pub count: i32,
    /// on the assessment's own scale (outOf)
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

pub(super) fn assessment_stats(m: &Model, assessment: &model::Assessment) -> AssessmentStats {
    let stats = m.assessment_stats(assessment);
    AssessmentStats {
        count: i32::try_from(stats.count).unwrap_or(i32::MAX),
        mean: stats.mean,
        min: stats.min,
        max: stats.max,
    }
}

/// Assessment.grades: the owner, HEAD, EDUCATION_STAFF; each student whose
/// grade is shown is recorded in the access log.
pub(super) async fn assessment_grades(
    ctx: &Context<'_>,
    src: &Src,
    assessment: &model::Assessment,
) -> Result<Vec<Grade>> {
    let (app, v) = viewer(ctx).await?;
    let live = matches!(src, Src::Live);
    // A past state is an auditor's (checked at studentAsOf).
    if live && !app.read(|m| policy::evaluation::can_read_assessment_grades(m, &v, assessment.id)) {
        return Err(ApiError::forbidden()).gql();
    }
    let grades = src.read(ctx, |m| {
        m.grades_of_assessment(assessment.id)
            .into_iter()
            .map(|g| (g.clone(), m.student(g.student_id).map(|s| s.person_id)))
            .collect::<Vec<_>>()
    })?;
    if live {
        for person in grades.iter().filter_map(|(_, p)| *p) {
            app.record_access(&v, Some(person), operation(ctx), "Notes")
                .await
                .gql()?;
        }
    }
    Ok(grades
        .into_iter()
        .map(|(g, _)| Grade::loaded(g, src.clone()))
        .collect())
}

/// SchoolClass.gradebook: the class's assessments of a subject (over a
/// period), by date.
pub(super) async fn gradebook(
    ctx: &Context<'_>,
    src: &Src,
    class: ClassId,
    subject: &str,
    period_id: Option<ID>,
) -> Result<Vec<Assessment>> {
    let (app, v) = viewer(ctx).await?;
    if matches!(src, Src::Live)
        && !app.read(|m| policy::evaluation::can_read_gradebook(m, &v, class, subject))
    {
        return Err(ApiError::forbidden()).gql();
    }
    let period = period_id
        .map(|p| parse::<PeriodId>("periodId", &p))
        .transpose()?;
    let assessments = src.read(ctx, |m| {
        let range = match period {
            None => None,
            Some(p) => {
                let establishment = m.establishment_of_class(class);
                match m
                    .period(p)
                    .filter(|p| Some(p.establishment_id) == establishment)
                {
                    Some(p) => Some(p.range()),
                    None => return Err(ApiError::NotFound("period".into())),
                }
            }
        };
        Ok(m.assessments_of_class(class)
            .into_iter()
            .filter(|a| a.subject == subject)
            .filter(|a| range.is_none_or(|(from, to)| from <= a.date && a.date <= to))
            .map(|a| a.id)
            .collect::<Vec<_>>())
    })?;
    Ok(assessments
        .gql()?
        .into_iter()
        .map(|a| Assessment::new(a, src.clone()))
        .collect())
}

// ---- Averages over a period ------------------------------------------------------------

/// Student.averages(periodId): the rows of the period the viewer may see.
pub(super) fn period_rows(
    ctx: &Context<'_>,
    src: &Src,
    v: Option<&Viewer>,
    student: StudentId,
    period: PeriodId,
) -> Result<Vec<SubjectAverage>> {
    let rows = match src {
        Src::Live => {
            let app = app(ctx)?;
            app.read(|m| {
                let p = student_period(m, student, period)?;
                let class = m.student(student).map(|s| s.class_id).unwrap_or_default();
                let figures = app.class_figures(m, class, Some(&p));
                Ok(visible_rows(
                    m,
                    v,
                    student,
                    class,
                    m.subject_rows(student, Some(p.range()), &figures),
                ))
            })
        }
        Src::AsOf(m, _) | Src::Remote(m) => {
            let p = student_period(m, student, period)?;
            let class = m.student(student).map(|s| s.class_id).unwrap_or_default();
            let figures = m.class_figures(class, Some(p.range()));
            Ok(visible_rows(
                m,
                v,
                student,
                class,
                m.subject_rows(student, Some(p.range()), &figures),
            ))
        }
    };
    rows
}

fn visible_rows(
    m: &Model,
    v: Option<&Viewer>,
    student: StudentId,
    class: ClassId,
    rows: Vec<model::SubjectRow>,
) -> Vec<SubjectAverage> {
    rows.into_iter()
        .filter(|r| v.is_none_or(|v| policy::can_see_subject(m, v, student, class, &r.subject)))
        .map(|r| SubjectAverage {
            subject: r.subject,
            average: r.average,
            class_average: r.class_average,
            class_min: r.class_min,
            class_max: r.class_max,
        })
        .collect()
}

// ---- Report card ----------------------------------------------------------------------

#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct ReportCardSubject {
    pub subject: String,
    #[graphql(skip)]
    pub teacher_id: Option<registre_domain::PersonId>,
    #[graphql(skip)]
    pub src: Src,
    pub average: Option<f64>,
    pub class_average: Option<f64>,
    pub class_min: Option<f64>,
    pub class_max: Option<f64>,
    pub appreciation: Option<String>,
}

#[async_graphql::ComplexObject]
impl ReportCardSubject {
    async fn teacher(&self) -> Option<Person> {
        self.teacher_id.map(|t| Person::new(t, self.src.clone()))
    }
}

#[derive(Debug)]
pub struct ReportCard {
    pub card: model::ReportCard,
    pub src: Src,
}

#[Object]
impl ReportCard {
    async fn student(&self) -> Student {
        Student::new(self.card.student_id, self.src.clone())
    }
    async fn period(&self) -> Period {
        Period {
            data: self.card.period.clone(),
            src: self.src.clone(),
        }
    }
    async fn subjects(&self) -> Vec<ReportCardSubject> {
        self.card
            .subjects
            .iter()
            .map(|s| ReportCardSubject {
                subject: s.subject.clone(),
                teacher_id: s.teacher,
                src: self.src.clone(),
                average: s.average,
                class_average: s.class_average,
                class_min: s.class_min,
                class_max: s.class_max,
                appreciation: s.appreciation.clone(),
            })
            .collect()
    }
    async fn overall_average(&self) -> Option<f64> {
        self.card.overall_average
    }
    async fn class_overall_average(&self) -> Option<f64> {
        self.card.class_overall_average
    }
    /// 1 = first of the class by overall average
    async fn rank(&self) -> Option<i32> {
        self.card.rank.map(|r| i32::try_from(r).unwrap_or(i32::MAX))
    }
    async fn class_size(&self) -> i32 {
        i32::try_from(self.card.class_size).unwrap_or(i32::MAX)
    }
    async fn general_appreciation(&self) -> Option<&str> {
        self.card.general_appreciation.as_deref()
    }
    async fn half_days_missed(&self) -> i32 {
        i32::try_from(self.card.half_days_missed).unwrap_or(i32::MAX)
    }
    async fn unjustified_half_days(&self) -> i32 {
        i32::try_from(self.card.unjustified_half_days).unwrap_or(i32::MAX)
    }
    async fn lateness_count(&self) -> i32 {
        i32::try_from(self.card.lateness_count).unwrap_or(i32::MAX)
    }
    // interop (issue 17)
    /// hours of the class's lessons in the period that the student's absences overlap (LSU's nb-heures-manquees)
    async fn missed_hours(&self) -> i32 {
        i32::try_from(self.card.missed_hours).unwrap_or(i32::MAX)
    }
    async fn r#final(&self) -> bool {
        self.card.r#final
    }
    /// GET it with the same bearer token: the printable bulletin (application/pdf)
    async fn pdf_url(&self) -> String {
        let path = bulletin_path(self.card.student_id, self.card.period.id);
        match &self.src {
            Src::Live | Src::Remote(_) => path,
            // RFC 3339 in UTC ("Z"): nothing in it needs escaping in a query.
            Src::AsOf(_, at) => format!(
                "{path}?at={}",
                at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
        }
    }
}

/// Student.reportCard(periodId): checked and logged by the caller
/// (`Student::record_viewer`); prints the bulletin when the request asks.
pub(super) fn report_card(
    ctx: &Context<'_>,
    src: &Src,
    student: StudentId,
    period_id: &ID,
) -> Result<Option<ReportCard>> {
    let period = parse::<PeriodId>("periodId", period_id)?;
    let print = ctx.data_opt::<PrintBulletin>();
    let computed: Result<(Option<model::ReportCard>, Option<bulletin::Bulletin>)> = match src {
        Src::Live => {
            let app = app(ctx)?;
            app.read(|m| {
                let p = student_period(m, student, period)?;
                let class = m.student(student).map(|s| s.class_id).unwrap_or_default();
                let figures = app.class_figures(m, class, Some(&p));
                let card = m.report_card(student, period, &figures);
                let printed = card
                    .as_ref()
                    .filter(|_| print.is_some())
                    .map(|c| bulletin::of(m, c));
                Ok((card, printed))
            })
        }
        Src::AsOf(m, _) | Src::Remote(m) => {
            let p = student_period(m, student, period)?;
            let class = m.student(student).map(|s| s.class_id).unwrap_or_default();
            let figures = m.class_figures(class, Some(p.range()));
            let card = m.report_card(student, period, &figures);
            let printed = card
                .as_ref()
                .filter(|_| print.is_some())
                .map(|c| bulletin::of(m, c));
            Ok((card, printed))
        }
    };
    let (card, printed) = computed?;
    if let (Some(sink), Some(b)) = (print, printed) {
        // Rendered outside the model's lock.
        *sink.0.lock() = Some(bulletin::render(&b));
    }
    Ok(card.map(|card| ReportCard {
        card,
        src: src.clone(),
    }))
}

// ---- Mutations -------------------------------------------------------------------------

#[derive(InputObject, Debug)]
pub struct PeriodInput {
    pub name: String,
    pub start: Date,
    pub end: Date,
}

#[derive(InputObject, Debug)]
pub struct DefinePeriodsInput {
    pub establishment_id: ID,
    /// consecutive, non-overlapping
    pub periods: Vec<PeriodInput>,
}

#[derive(InputObject, Debug)]
pub struct WriteAppreciationInput {
    pub student_id: ID,
    pub period_id: ID,
    /// null: the general appreciation (HEAD); otherwise the TEACHER of that subject
    pub subject: Option<String>,
    pub text: String,
}

#[derive(Debug, Default)]
pub struct EvaluationMutation;

#[Object]
impl EvaluationMutation {
    /// HEAD, ADMIN
    async fn define_periods(
        &self,
        ctx: &Context<'_>,
        input: DefinePeriodsInput,
    ) -> Result<Vec<Period>> {
        let (app, v) = viewer(ctx).await?;
        let cmd = domain::DefinePeriods {
            establishment_id: parse("establishmentId", &input.establishment_id)?,
            periods: input
                .periods
                .into_iter()
                .map(|p| domain::NewPeriod {
                    period_id: registre_app::commands::new_id(),
                    name: p.name,
                    start: p.start.0,
                    end: p.end.0,
                })
                .collect(),
        };
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        let ids: Vec<PeriodId> = cmd.periods.iter().map(|p| p.period_id).collect();
        let periods = app.read(|m| {
            ids.iter()
                .filter_map(|id| m.period(*id).cloned())
                .collect::<Vec<_>>()
        });
        Ok(periods
            .into_iter()
            .map(|data| Period {
                data,
                src: Src::Live,
            })
            .collect())
    }

    /// HEAD
    async fn close_period(&self, ctx: &Context<'_>, period_id: ID) -> Result<Period> {
        let (app, v) = viewer(ctx).await?;
        let cmd = domain::ClosePeriod {
            period_id: parse("periodId", &period_id)?,
        };
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        live_period(app, cmd.period_id)
    }

    /// HEAD; the reason stays in the audit trail
    async fn reopen_period(
        &self,
        ctx: &Context<'_>,
        period_id: ID,
        reason: String,
    ) -> Result<Period> {
        let (app, v) = viewer(ctx).await?;
        let cmd = domain::ReopenPeriod {
            period_id: parse("periodId", &period_id)?,
            reason,
        };
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        live_period(app, cmd.period_id)
    }

    async fn write_appreciation(
        &self,
        ctx: &Context<'_>,
        input: WriteAppreciationInput,
    ) -> Result<ReportCard> {
        let (app, v) = viewer(ctx).await?;
        let cmd = domain::WriteAppreciation {
            student_id: parse("studentId", &input.student_id)?,
            period_id: parse("periodId", &input.period_id)?,
            subject: input.subject,
            text: input.text,
        };
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        let person = app
            .read(|m| m.student(cmd.student_id).map(|s| s.person_id))
            .ok_or_else(|| ApiError::NotFound("student".into()))
            .gql()?;
        app.record_access(&v, Some(person), operation(ctx), "Notes")
            .await
            .gql()?;
        report_card(ctx, &Src::Live, cmd.student_id, &input.period_id)?
            .ok_or_else(|| ApiError::NotFound("report card".into()))
            .gql()
    }
}

fn live_period(app: &Arc<registre_app::App>, period: PeriodId) -> Result<Period> {
    app.read(|m| m.period(period).cloned())
        .map(|data| Period {
            data,
            src: Src::Live,
        })
        .ok_or_else(|| ApiError::NotFound("period".into()))
        .gql()
}
