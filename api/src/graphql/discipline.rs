//! The contract part "discipline" (issue 15): incidents, punishments and
//! sanctions, their mutations, the establishment's incidents and the head's
//! statistics. Need-to-know on incidents (`policy::discipline`): a guardian
//! or student sees only their own line of an incident.
//!
//! Guardians see a punishment or sanction through `Student.punishments` and
//! `Student.sanctions` as soon as it is written (read-your-writes on every
//! node); the notification to guardians is the communication issue's, to be
//! hooked on `PunishmentGiven` and `SanctionImposed` when both are merged.

use super::objects::{gql_enum, id, Establishment, Person, Src, Student};
use super::root::{command_context, forbidden, opaque, parse};
use super::scalars::Date;
use super::{operation, viewer};
use crate::graphql::errors::GqlResult;
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject, ID};
use chrono::{DateTime, Utc};
use registre_app::commands::discipline::ImposeSanction;
use registre_app::commands::new_id;
use registre_app::policy::discipline as policy;
use registre_app::{ApiError, App, Viewer};
use registre_domain::discipline as domain;
use registre_domain::{EstablishmentId, IncidentId, PersonId, SanctionId, StudentId};
use registre_projections::discipline as model;
use registre_projections::ReadModel as Model;
use std::collections::BTreeSet;

gql_enum!(ProtagonistRole, domain::ProtagonistRole, { Author, Victim, Witness });
gql_enum!(PunishmentKind, domain::PunishmentKind, {
    NoteInLogbook, Apology, ExtraWork, Detention, ExclusionFromLesson
});
gql_enum!(SanctionKind, domain::SanctionKind, {
    Warning, Reprimand, ResponsibilityMeasure, ClassExclusion, TemporaryExclusion, PermanentExclusion
});

/// Typical lengths of the discipline lists, for the cost model (`limits`).
pub(super) mod size {
    /// `Student.punishments`: a school year.
    pub const PUNISHMENTS: usize = 20;
    /// `Student.sanctions` still in the record.
    pub const SANCTIONS: usize = 5;
    /// `Incident.protagonists`.
    pub const PROTAGONISTS: usize = 4;
    /// `incidents` of an establishment over a range.
    pub const INCIDENTS: usize = 200;
    /// `disciplineStatistics`: months times kinds.
    pub const COUNTS: usize = 60;
}

/// Longest range of `incidents` and `disciplineStatistics`: a school year and a bit.
const RANGE_DAYS_MAX: i64 = 400;

fn check_range(from: Date, to: Date) -> Result<()> {
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
    Ok(())
}

// ---- Objects ------------------------------------------------------------------------

/// An incident as one viewer may see it: its protagonists already narrowed
/// to what they may know.
#[derive(Debug)]
pub struct Incident {
    data: model::Incident,
    protagonists: Vec<domain::Protagonist>,
}

impl Incident {
    /// The incident as `v` sees it; `None` when they may not see it.
    fn visible(m: &Model, v: &Viewer, id: IncidentId) -> Option<Incident> {
        let data = m.discipline().incident(id)?;
        policy::visible_protagonists(m, v, data).map(|protagonists| Incident {
            data: data.clone(),
            protagonists,
        })
    }
}

#[derive(Debug)]
pub struct Protagonist(domain::Protagonist);

#[Object]
impl Protagonist {
    async fn student(&self) -> Student {
        Student::new(self.0.student_id, Src::Live)
    }
    async fn role(&self) -> ProtagonistRole {
        self.0.role.into()
    }
}

#[Object]
impl Incident {
    async fn id(&self) -> ID {
        id(self.data.id)
    }
    async fn establishment(&self) -> Establishment {
        Establishment::new(self.data.establishment_id, Src::Live)
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.data.occurred_at
    }
    async fn place(&self) -> Option<&str> {
        self.data.place.as_deref()
    }
    async fn description(&self) -> &str {
        &self.data.description
    }
    /// a guardian or student viewer sees only their own child's (their own) line
    #[graphql(complexity = "crate::graphql::limits::list(size::PROTAGONISTS, child_complexity)")]
    async fn protagonists(&self) -> Vec<Protagonist> {
        self.protagonists.iter().copied().map(Protagonist).collect()
    }
    async fn reported_by(&self) -> Person {
        Person::new(self.data.reported_by, Src::Live)
    }
    async fn reported_at(&self) -> DateTime<Utc> {
        self.data.reported_at
    }
}

#[derive(Debug)]
pub struct Punishment {
    data: model::Punishment,
    incident: Option<Incident>,
}

impl Punishment {
    fn new(m: &Model, v: &Viewer, data: model::Punishment) -> Punishment {
        let incident = data.incident_id.and_then(|i| Incident::visible(m, v, i));
        Punishment { data, incident }
    }
}

#[Object]
impl Punishment {
    async fn id(&self) -> ID {
        id(self.data.id)
    }
    async fn student(&self) -> Student {
        Student::new(self.data.student_id, Src::Live)
    }
    async fn kind(&self) -> PunishmentKind {
        self.data.kind.into()
    }
    async fn reason(&self) -> &str {
        &self.data.reason
    }
    async fn given_by(&self) -> Person {
        Person::new(self.data.given_by, Src::Live)
    }
    async fn given_at(&self) -> DateTime<Utc> {
        self.data.given_at
    }
    async fn due_on(&self) -> Option<Date> {
        self.data.due_on.map(Date)
    }
    /// null when there is none, or the viewer may not see it
    async fn incident(&self) -> Option<&Incident> {
        self.incident.as_ref()
    }
}

#[derive(Debug)]
pub struct Sanction {
    data: model::Sanction,
    incident: Option<Incident>,
}

impl Sanction {
    fn new(m: &Model, v: &Viewer, data: model::Sanction) -> Sanction {
        let incident = data.incident_id.and_then(|i| Incident::visible(m, v, i));
        Sanction { data, incident }
    }
}

#[Object]
impl Sanction {
    async fn id(&self) -> ID {
        id(self.data.id)
    }
    async fn student(&self) -> Student {
        Student::new(self.data.student_id, Src::Live)
    }
    async fn kind(&self) -> SanctionKind {
        self.data.kind.into()
    }
    /// reads as erased once the sanction left the record
    async fn reason(&self) -> &str {
        &self.data.reason
    }
    async fn decided_by(&self) -> Person {
        Person::new(self.data.decided_by, Src::Live)
    }
    async fn decided_on(&self) -> Date {
        Date(self.data.decided_on)
    }
    /// exclusions: length in days (at most 8 for temporary ones)
    async fn days(&self) -> Option<i32> {
        self.data.days.map(i32::from)
    }
    /// days suspended (sursis)
    async fn suspended_days(&self) -> Option<i32> {
        self.data.suspended_days.map(i32::from)
    }
    /// null when there is none, or the viewer may not see it
    async fn incident(&self) -> Option<&Incident> {
        self.incident.as_ref()
    }
    /// the day it leaves the student's administrative record, from the kind and the school year
    async fn erased_on(&self) -> Option<Date> {
        self.data.erased_on.map(Date)
    }
    async fn erased(&self) -> bool {
        self.data.erased
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
pub enum DisciplineCategory {
    Incident,
    Punishment,
    Sanction,
}

/// How many incidents, punishments or sanctions of a kind in a month.
#[derive(Debug, SimpleObject)]
pub struct DisciplineCount {
    /// the first day of the month
    pub month: Date,
    pub category: DisciplineCategory,
    /// the PunishmentKind or SanctionKind; null for incidents
    pub kind: Option<String>,
    pub count: i32,
}

// ---- Student fields (objects.rs delegates) --------------------------------------------

/// Student.punishments: latest first.
pub(super) async fn punishments_of(
    ctx: &Context<'_>,
    src: &super::Src,
    student: StudentId,
    person: PersonId,
) -> Result<Vec<Punishment>> {
    let (app, v) = viewer(ctx).await?;
    if !app.read(|m| policy::can_see_punishments(m, &v, student)) {
        return forbidden();
    }
    app.record_access(&v, Some(person), operation(ctx), "Services_Vie_Scolaire")
        .await
        .gql()?;
    src.read(ctx, |m| {
        m.discipline()
            .punishments_of(student)
            .into_iter()
            .map(|p| Punishment::new(m, &v, p.clone()))
            .collect()
    })
}

/// Student.sanctions: those still in the record, latest first.
pub(super) async fn sanctions_of(
    ctx: &Context<'_>,
    src: &super::Src,
    student: StudentId,
    person: PersonId,
) -> Result<Vec<Sanction>> {
    let (app, v) = viewer(ctx).await?;
    if !app.read(|m| policy::can_see_sanctions(m, &v, student)) {
        return forbidden();
    }
    app.record_access(&v, Some(person), operation(ctx), "Services_Vie_Scolaire")
        .await
        .gql()?;
    src.read(ctx, |m| {
        m.discipline()
            .sanctions_of(student)
            .into_iter()
            .map(|s| Sanction::new(m, &v, s.clone()))
            .collect()
    })
}

/// Records one read per student named in `incidents`.
async fn record_incident_reads(
    app: &App,
    ctx: &Context<'_>,
    v: &Viewer,
    incidents: &[Incident],
) -> Result<()> {
    let students: BTreeSet<StudentId> = incidents
        .iter()
        .flat_map(|i| i.protagonists.iter().map(|p| p.student_id))
        .collect();
    let people: Vec<PersonId> = app.read(|m| {
        students
            .iter()
            .filter_map(|s| m.student(*s).map(|s| s.person_id))
            .collect()
    });
    for person in people {
        app.record_access(v, Some(person), operation(ctx), "Services_Vie_Scolaire")
            .await
            .gql()?;
    }
    Ok(())
}

// ---- Queries ----------------------------------------------------------------------------

#[derive(Debug, Default)]
pub struct DisciplineQuery;

#[Object]
impl DisciplineQuery {
    /// EDUCATION_STAFF, HEAD
    #[graphql(complexity = "crate::graphql::limits::list(size::INCIDENTS, child_complexity)")]
    async fn incidents(
        &self,
        ctx: &Context<'_>,
        establishment_id: ID,
        from: Date,
        to: Date,
    ) -> Result<Vec<Incident>> {
        let (app, v) = viewer(ctx).await?;
        let eid = parse::<EstablishmentId>("establishmentId", &establishment_id)?;
        if !policy::can_list_incidents(&v, eid) {
            return forbidden();
        }
        check_range(from, to)?;
        let incidents: Vec<Incident> = app.read(|m| {
            let zone = m
                .establishment(eid)
                .map(|e| e.time_zone)
                .unwrap_or_default();
            m.discipline()
                .incidents_between(eid, zone, from.0, to.0)
                .into_iter()
                .filter_map(|i| Incident::visible(m, &v, i.id))
                .collect()
        });
        record_incident_reads(app, ctx, &v, &incidents).await?;
        Ok(incidents)
    }

    /// HEAD of the establishment: incidents (by the day they occurred), punishments (given) and sanctions (decided, erased ones included) per month and kind; counts only, no names
    #[graphql(complexity = "crate::graphql::limits::list(size::COUNTS, child_complexity)")]
    async fn discipline_statistics(
        &self,
        ctx: &Context<'_>,
        establishment_id: ID,
        from: Date,
        to: Date,
    ) -> Result<Vec<DisciplineCount>> {
        let (app, v) = viewer(ctx).await?;
        let eid = parse::<EstablishmentId>("establishmentId", &establishment_id)?;
        if !policy::can_read_discipline_statistics(&v, eid) {
            return forbidden();
        }
        check_range(from, to)?;
        Ok(app.read(|m| {
            let zone = m
                .establishment(eid)
                .map(|e| e.time_zone)
                .unwrap_or_default();
            m.discipline()
                .statistics(eid, zone, from.0, to.0)
                .into_iter()
                .map(|c| DisciplineCount {
                    month: Date(c.month),
                    category: match c.category {
                        model::DisciplineCategory::Incident => DisciplineCategory::Incident,
                        model::DisciplineCategory::Punishment => DisciplineCategory::Punishment,
                        model::DisciplineCategory::Sanction => DisciplineCategory::Sanction,
                    },
                    kind: c.kind.map(str::to_owned),
                    count: i32::try_from(c.count).unwrap_or(i32::MAX),
                })
                .collect()
        }))
    }
}

// ---- Mutations ----------------------------------------------------------------------------

#[derive(Debug, InputObject)]
pub struct ProtagonistInput {
    pub student_id: ID,
    pub role: ProtagonistRole,
}

#[derive(Debug, InputObject)]
pub struct ReportIncidentInput {
    pub establishment_id: ID,
    pub occurred_at: DateTime<Utc>,
    pub place: Option<String>,
    pub description: String,
    pub protagonists: Vec<ProtagonistInput>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, InputObject)]
pub struct GivePunishmentInput {
    pub student_id: ID,
    pub kind: PunishmentKind,
    pub reason: String,
    pub due_on: Option<Date>,
    pub incident_id: Option<ID>,
}

#[derive(Debug, InputObject)]
pub struct ImposeSanctionInput {
    pub student_id: ID,
    pub kind: SanctionKind,
    pub reason: String,
    pub decided_on: Date,
    pub days: Option<i32>,
    pub suspended_days: Option<i32>,
    pub incident_id: Option<ID>,
}

fn incident_id(raw: &Option<ID>) -> Result<Option<IncidentId>> {
    raw.as_ref().map(|i| parse("incidentId", i)).transpose()
}

impl ReportIncidentInput {
    fn command(&self, v: &Viewer) -> Result<domain::ReportIncident> {
        Ok(domain::ReportIncident {
            incident_id: new_id(),
            establishment_id: opaque(&self.establishment_id),
            occurred_at: self.occurred_at,
            place: self.place.clone(),
            description: self.description.clone(),
            protagonists: self
                .protagonists
                .iter()
                .map(|p| {
                    Ok(domain::Protagonist {
                        student_id: parse("protagonists.studentId", &p.student_id)?,
                        role: p.role.into(),
                    })
                })
                .collect::<Result<_>>()?,
            reported_by: v.person,
        })
    }
}

impl GivePunishmentInput {
    fn command(self, v: &Viewer) -> Result<domain::GivePunishment> {
        Ok(domain::GivePunishment {
            punishment_id: new_id(),
            student_id: opaque(&self.student_id),
            kind: self.kind.into(),
            reason: self.reason,
            due_on: self.due_on.map(|d| d.0),
            incident_id: incident_id(&self.incident_id)?,
            given_by: v.person,
        })
    }
}

impl ImposeSanctionInput {
    fn command(self, app: &App, v: &Viewer) -> Result<ImposeSanction> {
        Ok(ImposeSanction {
            sanction: domain::ImposeSanction {
                sanction_id: new_id(),
                student_id: opaque(&self.student_id),
                kind: self.kind.into(),
                reason: self.reason,
                decided_on: self.decided_on.0,
                days: self.days.map(i64::from),
                suspended_days: self.suspended_days.map(i64::from),
                incident_id: incident_id(&self.incident_id)?,
                decided_by: v.person,
            },
            delays: app.config().sanction_erasure,
        })
    }
}

#[derive(Debug, Default)]
pub struct DisciplineMutation;

#[Object]
impl DisciplineMutation {
    /// TEACHER, EDUCATION_STAFF, HEAD of the establishment
    async fn report_incident(
        &self,
        ctx: &Context<'_>,
        input: ReportIncidentInput,
    ) -> Result<Incident> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command(&v)?;
        let done = app
            .execute(
                &command_context(ctx, &v),
                &cmd,
                input.idempotency_key.as_deref(),
            )
            .await
            .gql()?;
        let id = match done.events.first() {
            Some(registre_domain::DomainEvent::IncidentReported(e)) => e.incident_id,
            _ => cmd.incident_id,
        };
        app.read(|m| Incident::visible(m, &v, id))
            .ok_or_else(|| ApiError::NotFound("incident".into()))
            .gql()
    }

    /// TEACHER of the student's class, EDUCATION_STAFF, HEAD
    async fn give_punishment(
        &self,
        ctx: &Context<'_>,
        input: GivePunishmentInput,
    ) -> Result<Punishment> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command(&v)?;
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        app.read(|m| {
            m.discipline()
                .punishment(cmd.punishment_id)
                .map(|p| Punishment::new(m, &v, p.clone()))
        })
        .ok_or_else(|| ApiError::NotFound("punishment".into()))
        .gql()
    }

    /// HEAD of the student's establishment
    async fn impose_sanction(
        &self,
        ctx: &Context<'_>,
        input: ImposeSanctionInput,
    ) -> Result<Sanction> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command(app, &v)?;
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        sanction(app, &v, cmd.sanction.sanction_id)
    }

    /// HEAD: early erasure (e.g. on a change of establishment); the reason stays in the audit trail
    async fn erase_sanction(
        &self,
        ctx: &Context<'_>,
        sanction_id: ID,
        reason: String,
    ) -> Result<Sanction> {
        let (app, v) = viewer(ctx).await?;
        let cmd = domain::EraseSanction {
            sanction_id: opaque::<SanctionId>(&sanction_id),
            reason,
            on_schedule: None,
        };
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        sanction(app, &v, cmd.sanction_id)
    }
}

fn sanction(app: &App, v: &Viewer, id: SanctionId) -> Result<Sanction> {
    app.read(|m| {
        m.discipline()
            .sanction(id)
            .map(|s| Sanction::new(m, v, s.clone()))
    })
    .ok_or_else(|| ApiError::NotFound("sanction".into()))
    .gql()
}
