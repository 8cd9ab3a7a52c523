//! The root operations: queries, mutations and the `absenceReported`
//! subscription. A query or subscription checks the policy once at its entry
//! point; a mutation converts its input into the domain's command and runs it
//! with `App::execute`, whose executor asks the policy. A refusal answers
//! null (or an error for non-null results) with FORBIDDEN and says nothing
//! about existence.

use super::objects::*;
use super::scalars::Date;
use super::{operation, viewer};
use crate::context::RequestId;
use crate::graphql::errors::GqlResult;
use async_graphql::{Context, InputObject, Object, Result, Subscription, ID};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use registre_app::commands::communication::JustifyWithDocuments;
use registre_app::commands::school_day::{InCourse, Motivated};
use registre_app::commands::{new_id, CommandContext};
use registre_app::policy;
use registre_app::{ApiError, Viewer};
use registre_domain::communication as comm;
use registre_domain::messages::ThreadTarget;
use registre_domain::{absences, grades, homework, messages, roster, DomainEvent};
use registre_domain::{ClassId, EstablishmentId, PersonId, StudentId};
use registre_projections::ReadModel as Model;
use std::str::FromStr;
use std::sync::Arc;

pub(super) fn parse<T: FromStr>(field: &str, raw: &ID) -> Result<T> {
    raw.parse::<T>().map_err(|_| ApiError::bad_id(field)).gql()
}

pub(super) fn forbidden<T>() -> Result<T> {
    Err(ApiError::forbidden()).gql()
}

pub(super) fn correlation(ctx: &Context<'_>) -> uuid::Uuid {
    ctx.data_opt::<RequestId>()
        .map(|r| r.0)
        .unwrap_or_else(new_id)
}

pub(super) fn live<T>(f: impl FnOnce(Src) -> T) -> T {
    f(Src::Live)
}

/// Default page of the lists that grow without bound (inbox, auditTrail,
/// accessLog): small lists answer whole, as before they were paginated.
pub const PAGE_DEFAULT: i32 = 100;
/// Largest page a client may ask for.
pub const PAGE_MAX: i32 = 500;

pub(super) fn page_size(first: Option<i32>) -> Result<usize> {
    match first.unwrap_or(PAGE_DEFAULT) {
        n @ 1..=PAGE_MAX => Ok(n as usize),
        _ => Err(ApiError::invalid(
            "first",
            format!("must be between 1 and {PAGE_MAX}"),
        ))
        .gql(),
    }
}

/// What ADMIN sees of a grade event in the audit trail (see
/// `policy::audit_shows_grades`): its ids, not its values nor the reason. A
/// report card's appreciation is an evaluation too (issue 14).
fn redact_grades(mut event: registre_store::RecordedEvent) -> registre_store::RecordedEvent {
    if !matches!(
        event.event_type.as_str(),
        "GradeRecorded" | "GradeCorrected" | "AppreciationWritten"
    ) {
        return event;
    }
    let mut kept = serde_json::Map::new();
    if let serde_json::Value::Object(fields) = &event.data {
        for (k, v) in fields {
            if k.ends_with("_id") {
                kept.insert(k.clone(), v.clone());
            }
        }
    }
    kept.insert("redacted".into(), serde_json::Value::Bool(true));
    event.data = serde_json::Value::Object(kept);
    if event.metadata.reason.is_some() {
        event.metadata.reason = Some(policy::GRADE_REDACTED.into());
    }
    event
}

/// The record's queries (roster, grades, absences, homework, messages,
/// audit); each feature adds its own object to [`super::QueryRoot`].
#[derive(Debug, Default)]
pub struct RecordQuery;

#[Object]
impl RecordQuery {
    async fn me(&self, ctx: &Context<'_>) -> Result<Person> {
        let (_, v) = viewer(ctx).await?;
        Ok(Person::new(v.person, Src::Live))
    }

    /// null with a FORBIDDEN error when the viewer may not see this student
    async fn student(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Student>> {
        let (app, v) = viewer(ctx).await?;
        let Ok(sid) = id.parse::<StudentId>() else {
            return forbidden();
        };
        let person = app.read(|m| {
            policy::can_see_student(m, &v, sid)
                .then(|| m.student(sid).map(|s| s.person_id))
                .flatten()
        });
        let Some(person) = person else {
            return forbidden();
        };
        app.record_access(&v, Some(person), operation(ctx), "Services_Vie_Scolaire")
            .await
            .gql()?;
        Ok(Some(Student::new(sid, Src::Live)))
    }

    /// GUARDIAN: the students the viewer is guardian of
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::limits::size::CHILDREN, child_complexity)"
    )]
    async fn my_children(&self, ctx: &Context<'_>) -> Result<Vec<Student>> {
        let (app, v) = viewer(ctx).await?;
        let kids: Vec<registre_projections::Student> =
            app.read(|m| m.children_of(v.person).into_iter().cloned().collect());
        Ok(kids
            .into_iter()
            .map(|s| Student::loaded(s, Src::Live))
            .collect())
    }

    async fn school_class(&self, ctx: &Context<'_>, id: ID) -> Result<Option<SchoolClass>> {
        let (app, v) = viewer(ctx).await?;
        let Ok(cid) = id.parse::<ClassId>() else {
            return forbidden();
        };
        if !app.read(|m| policy::can_see_class(m, &v, cid)) {
            return forbidden();
        }
        // cluster (issue 12): a class held elsewhere is read from its slice.
        Ok(Some(SchoolClass::new(
            cid,
            super::class_src(ctx, cid).await?,
        )))
    }

    /// An establishment (its roster is public within Registre: names and classes).
    async fn establishment(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Establishment>> {
        let (app, _) = viewer(ctx).await?;
        let eid = parse::<EstablishmentId>("id", &id)?;
        let uai = app.read(|m| m.establishment(eid).map(|e| e.uai.clone()));
        let Some(uai) = uai else {
            return Err(ApiError::NotFound("establishment".into())).gql();
        };
        // cluster (issue 12): establishment-wide, so answered whole by a
        // node that folds it (the transport forwards the request).
        let partition = registre_store::Partition::establishment(uai.as_str());
        if !app.cluster().holds(&partition) {
            return Err(ApiError::Elsewhere(partition)).gql();
        }
        Ok(Some(Establishment::new(eid, Src::Live)))
    }

    /// the viewer's messages, newest first; `first` (1 to 500) at a time, after the message `after` (the last id of the previous page)
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::limits::page(first, crate::graphql::limits::size::INBOX), child_complexity)"
    )]
    async fn inbox(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] first: Option<i32>,
        after: Option<ID>,
    ) -> Result<Vec<Message>> {
        let first = page_size(first)?;
        let (app, v) = viewer(ctx).await?;
        let ids = app.read(|m| {
            // Received and sent: the viewer's whole mailbox.
            let mut list: Vec<&registre_projections::Message> = m
                .inbox(v.person)
                .into_iter()
                .filter_map(|mv| m.message(mv.message.id))
                .collect();
            list.extend(m.sent_by(v.person));
            list.sort_by_key(|m| std::cmp::Reverse((m.sent_at, m.id)));
            list.dedup_by_key(|m| m.id);
            list.into_iter().map(|m| m.id).collect::<Vec<_>>()
        });
        let start = match &after {
            None => 0,
            Some(after) => {
                let after = parse::<registre_domain::MessageId>("after", after)?;
                match ids.iter().position(|id| *id == after) {
                    Some(i) => i + 1,
                    None => {
                        return Err(ApiError::invalid(
                            "after",
                            "not the id of a message of this mailbox",
                        ))
                        .gql()
                    }
                }
            }
        };
        let ids: Vec<_> = ids.into_iter().skip(start).take(first).collect();
        app.record_access(&v, Some(v.person), operation(ctx), "Courrier_Electronique")
            .await
            .gql()?;
        Ok(ids
            .into_iter()
            .map(|id| Message::new(id, v.person))
            .collect())
    }

    /// AUDITOR, ADMIN: every change recorded about a person (a Person id; a student's is student.person.id), oldest first; `first` (1 to 500) at a time, after the entry whose position is `after`. Grade values (scores, statuses, correction reasons) are shown to AUDITOR only: ADMIN sees grade entries with their ids and `redacted: true`
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::limits::page(first, crate::graphql::limits::size::HISTORY), child_complexity)"
    )]
    async fn audit_trail(
        &self,
        ctx: &Context<'_>,
        subject_id: ID,
        #[graphql(default = 100)] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Vec<AuditEntry>> {
        let first = page_size(first)?;
        let after = after
            .map(|a| {
                a.trim()
                    .parse::<u64>()
                    .map_err(|_| ApiError::invalid("after", "a position is a decimal integer"))
            })
            .transpose()
            .gql()?;
        let (app, v) = viewer(ctx).await?;
        if !policy::can_audit(&v) {
            return forbidden();
        }
        let person = parse::<PersonId>("subjectId", &subject_id)?;
        let positions = app.read(|m| {
            m.person(person).map(|_| {
                m.audit_positions(person)
                    .iter()
                    .copied()
                    .filter(|p| after.is_none_or(|a| *p > a))
                    .take(first)
                    .collect::<Vec<_>>()
            })
        });
        let Some(positions) = positions else {
            return Err(ApiError::NotFound("person".into())).gql();
        };
        let events = app
            .store()
            .read_positions(&positions)
            .await
            .map_err(ApiError::from)
            .gql()?;
        app.record_access(&v, Some(person), operation(ctx), "Services_Vie_Scolaire")
            .await
            .gql()?;
        let whole = policy::audit_shows_grades(&v);
        Ok(events
            .into_iter()
            .map(|event| AuditEntry {
                event: if whole { event } else { redact_grades(event) },
            })
            .collect())
    }

    /// AUDITOR, ADMIN: who read a person's record (a Person id), oldest first; `first` (1 to 500) at a time, skipping the `offset` oldest (the log only grows at its end)
    #[graphql(
        complexity = "crate::graphql::limits::list(crate::graphql::limits::page(first, crate::graphql::limits::size::HISTORY), child_complexity)"
    )]
    async fn access_log(
        &self,
        ctx: &Context<'_>,
        subject_id: ID,
        #[graphql(default = 100)] first: Option<i32>,
        #[graphql(default = 0)] offset: Option<i32>,
    ) -> Result<Vec<AccessEntry>> {
        let first = page_size(first)?;
        let offset = match offset.unwrap_or(0) {
            n if n >= 0 => n as usize,
            _ => return Err(ApiError::invalid("offset", "must not be negative")).gql(),
        };
        let (app, v) = viewer(ctx).await?;
        if !policy::can_audit(&v) {
            return forbidden();
        }
        let person = parse::<PersonId>("subjectId", &subject_id)?;
        if !app.read(|m| m.person(person).is_some()) {
            return Err(ApiError::NotFound("person".into())).gql();
        }
        app.flush_access().await.gql()?;
        let records = app
            .store()
            .access_about(person.0)
            .await
            .map_err(ApiError::from)
            .gql()?;
        // Reading who read a person is itself a read about that person
        // (CNIL): it shows in the next answer, not in this one.
        app.record_access(&v, Some(person), operation(ctx), "Services_Vie_Scolaire")
            .await
            .gql()?;
        Ok(records
            .into_iter()
            .skip(offset)
            .take(first)
            .map(|record| AccessEntry { record })
            .collect())
    }

    /// AUDITOR, ADMIN: everything Registre holds about a person (a Person id), as one JSON document (GDPR art. 15 subject access)
    #[graphql(
        complexity = "crate::graphql::limits::fixed(crate::graphql::limits::weight::EXPORT, child_complexity)"
    )]
    async fn export_person_data(
        &self,
        ctx: &Context<'_>,
        person_id: ID,
    ) -> Result<async_graphql::Json<serde_json::Value>> {
        let (app, v) = viewer(ctx).await?;
        if !policy::can_export_person_data(&v) {
            return forbidden();
        }
        let person = parse::<PersonId>("personId", &person_id)?;
        if !app.read(|m| m.person(person).is_some()) {
            return Err(ApiError::NotFound("person".into())).gql();
        }
        // The document's access log includes every read recorded so far.
        app.flush_access().await.gql()?;
        let doc = registre_app::export::person_data(app.store().as_ref(), app.engine(), person)
            .await
            .gql()?;
        app.record_access(&v, Some(person), operation(ctx), "Services_Vie_Scolaire")
            .await
            .gql()?;
        Ok(async_graphql::Json(doc))
    }

    /// AUDITOR: the student's record exactly as the log stood at `at` (a Student id)
    #[graphql(
        complexity = "crate::graphql::limits::fixed(crate::graphql::limits::weight::AS_OF, child_complexity)"
    )]
    async fn student_as_of(
        &self,
        ctx: &Context<'_>,
        id: ID,
        at: DateTime<Utc>,
    ) -> Result<Option<Student>> {
        let (app, v) = viewer(ctx).await?;
        if !policy::can_read_as_of(&v) {
            return forbidden();
        }
        let sid = parse::<StudentId>("id", &id)?;
        let past = registre_projections::fold_until(app.store().as_ref(), at)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "replay for studentAsOf failed");
                ApiError::Internal("the log could not be replayed; see the server logs".into())
            })
            .gql()?;
        let Some(person) = past.student(sid).map(|s| s.person_id) else {
            return Err(ApiError::NotFound("student".into())).gql();
        };
        app.record_access(&v, Some(person), operation(ctx), "Services_Vie_Scolaire")
            .await
            .gql()?;
        Ok(Some(Student::new(sid, Src::AsOf(Arc::new(past), at))))
    }

    /// HEAD, EDUCATION_STAFF, AUDITOR
    #[graphql(
        complexity = "crate::graphql::limits::fixed(crate::graphql::limits::weight::STATS, child_complexity)"
    )]
    async fn absence_stats(
        &self,
        ctx: &Context<'_>,
        class_id: ID,
        from: Date,
        to: Date,
    ) -> Result<AbsenceStats> {
        let (app, v) = viewer(ctx).await?;
        let cid = parse::<ClassId>("classId", &class_id)?;
        if !app.read(|m| policy::can_read_absence_stats(m, &v, cid)) {
            return forbidden();
        }
        if to.0 < from.0 {
            return Err(ApiError::invalid("to", "must not be before from")).gql();
        }
        if (to.0 - from.0).num_days() > 400 {
            return Err(ApiError::invalid("to", "the range is limited to 400 days")).gql();
        }
        if !app.read(|m| m.class(cid).is_some()) {
            return Err(ApiError::NotFound("class".into())).gql();
        }
        Ok(app.read(|m| absence_stats(m, cid, from.0, to.0)))
    }

    /// HEAD of the establishment, ADMIN, AUDITOR; the same answer on every node and after any rebuild
    async fn usage_indicators(
        &self,
        ctx: &Context<'_>,
        establishment_id: ID,
        from: Date,
        to: Date,
    ) -> Result<UsageReport> {
        let (app, v) = viewer(ctx).await?;
        let eid = parse::<EstablishmentId>("establishmentId", &establishment_id)?;
        if !policy::can_read_usage(&v, eid) {
            return forbidden();
        }
        if !app.read(|m| m.establishment(eid).is_some()) {
            return Err(ApiError::NotFound("establishment".into())).gql();
        }
        // Counts of pseudonyms: reading them is no read of anyone's data, so
        // nothing goes to the access log.
        let report = app.usage_report(eid, from.0, to.0).await.gql()?;
        Ok(report.into())
    }
}

// ---- Mutations ---------------------------------------------------------------------------

#[derive(Debug, InputObject)]
pub struct CreateEstablishmentInput {
    pub uai: String,
    pub name: String,
    pub time_zone: Option<String>,
}

#[derive(Debug, InputObject)]
pub struct CreateClassInput {
    pub establishment_id: ID,
    pub name: String,
}

#[derive(Debug, InputObject)]
pub struct RegisterPersonInput {
    pub external_id: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    /// required for HEAD, EDUCATION_STAFF and TEACHER
    pub establishment_id: Option<ID>,
}

#[derive(Debug, InputObject)]
pub struct CloseAccountInput {
    pub person_id: ID,
    /// the first day the account is no longer needed (the departure date), in the establishment's calendar
    pub effective_on: Date,
    /// why (e.g. "left the establishment"); personal data, erased with the person
    pub reason: String,
}

#[derive(Debug, InputObject)]
pub struct EnrollStudentInput {
    pub person_id: ID,
    pub class_id: ID,
}

#[derive(Debug, InputObject)]
pub struct LinkGuardianInput {
    pub student_id: ID,
    pub guardian_id: ID,
}

#[derive(Debug, InputObject)]
pub struct AssignTeacherInput {
    pub teacher_id: ID,
    pub class_id: ID,
    pub subject: String,
}

#[derive(Debug, InputObject)]
pub struct ReportAbsenceInput {
    pub student_id: ID,
    pub kind: AbsenceKind,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub minutes_late: Option<i32>,
    /// the same key twice records one absence and answers the same Absence
    pub idempotency_key: Option<String>,
    /// one of the establishment's motives (AbsenceReason)
    pub motive_id: Option<ID>,
}

/// A guardian's advance declaration (a medical appointment).
#[derive(Debug, InputObject)]
pub struct DeclareAbsenceInput {
    pub student_id: ID,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: String,
    pub idempotency_key: Option<String>,
    /// one of the establishment's motives that guardians may choose
    pub motive_id: Option<ID>,
}

#[derive(Debug, InputObject)]
pub struct JustifyAbsenceInput {
    pub absence_id: ID,
    pub reason: String,
    /// one of the establishment's motives that guardians may choose
    pub motive_id: Option<ID>,
    pub attachment_ids: Option<Vec<ID>>,
}

#[derive(Debug, InputObject)]
pub struct ReviewJustificationInput {
    pub absence_id: ID,
    pub accept: bool,
    pub comment: Option<String>,
}

#[derive(Debug, InputObject)]
pub struct CreateAssessmentInput {
    pub class_id: ID,
    pub subject: String,
    pub title: String,
    pub date: Date,
    pub coefficient: f64,
    pub out_of: f64,
}

#[derive(Debug, InputObject)]
pub struct RecordGradeInput {
    pub assessment_id: ID,
    pub student_id: ID,
    pub score: Option<f64>,
    pub status: GradeStatus,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, InputObject)]
pub struct CorrectGradeInput {
    pub grade_id: ID,
    pub score: Option<f64>,
    pub status: GradeStatus,
    pub reason: String,
}

#[derive(Debug, InputObject)]
pub struct AssignHomeworkInput {
    pub class_id: ID,
    pub subject: String,
    pub title: String,
    pub description: String,
    pub due: Date,
    /// the course (of this class and subject) it is given in
    pub course_id: Option<ID>,
    /// how long it should take, 1 to 600 minutes
    pub estimated_minutes: Option<i32>,
    pub attachment_ids: Option<Vec<ID>>,
}

#[derive(Debug, InputObject)]
pub struct SendMessageInput {
    pub to: Vec<ID>,
    pub subject: String,
    pub body: String,
    /// reply in an existing thread
    pub thread_id: Option<ID>,
    pub idempotency_key: Option<String>,
    /// every guardian (or student, or teacher) of a class, resolved when sent
    pub to_groups: Option<Vec<super::communication::RecipientGroupInput>>,
    pub attachment_ids: Option<Vec<ID>>,
}

/// A referenced id the viewer must be allowed to act on: a malformed one is
/// refused like an unknown one (FORBIDDEN), so ids cannot be probed.
pub(super) fn opaque<T: FromStr + Default>(raw: &ID) -> T {
    raw.parse::<T>().unwrap_or_default()
}

/// Each input converts into its domain command, the one shape of a command
/// from here on; new entities get their ids from the application's source.
impl CreateEstablishmentInput {
    fn command(self) -> roster::CreateEstablishment {
        roster::CreateEstablishment {
            establishment_id: new_id(),
            uai: self.uai,
            name: self.name,
            time_zone: self.time_zone,
        }
    }
}

impl CreateClassInput {
    fn command(self) -> Result<roster::CreateClass> {
        Ok(roster::CreateClass {
            class_id: new_id(),
            establishment_id: parse("establishmentId", &self.establishment_id)?,
            name: self.name,
        })
    }
}

impl RegisterPersonInput {
    fn command(self) -> Result<roster::RegisterPerson> {
        Ok(roster::RegisterPerson {
            establishment_id: self
                .establishment_id
                .as_ref()
                .map(|e| parse("establishmentId", e))
                .transpose()?,
            external_id: self.external_id,
            display_name: self.display_name,
            roles: self.roles.into_iter().map(Into::into).collect(),
        })
    }
}

impl EnrollStudentInput {
    fn command(self) -> Result<roster::EnrollStudent> {
        Ok(roster::EnrollStudent {
            person_id: parse("personId", &self.person_id)?,
            class_id: parse("classId", &self.class_id)?,
        })
    }
}

impl LinkGuardianInput {
    fn command(self) -> Result<roster::LinkGuardian> {
        Ok(roster::LinkGuardian {
            student_id: parse("studentId", &self.student_id)?,
            guardian_id: parse("guardianId", &self.guardian_id)?,
        })
    }
}

impl AssignTeacherInput {
    fn command(self) -> Result<roster::AssignTeacher> {
        Ok(roster::AssignTeacher {
            teacher_id: parse("teacherId", &self.teacher_id)?,
            class_id: parse("classId", &self.class_id)?,
            subject: self.subject,
        })
    }
}

impl CloseAccountInput {
    fn command(self) -> Result<roster::CloseAccount> {
        Ok(roster::CloseAccount {
            person_id: parse("personId", &self.person_id)?,
            effective_on: self.effective_on.0,
            reason: self.reason,
        })
    }
}

/// An optional motive id: a malformed one is bad input.
fn motive(raw: Option<&ID>) -> Result<Option<registre_domain::AbsenceReasonId>> {
    raw.map(|m| parse("motiveId", m)).transpose()
}

impl ReportAbsenceInput {
    fn command(&self) -> Result<Motivated<absences::ReportAbsence>> {
        Ok(Motivated {
            command: absences::ReportAbsence {
                absence_id: new_id(),
                student_id: opaque(&self.student_id),
                kind: self.kind.into(),
                start: self.start,
                end: self.end,
                minutes_late: self.minutes_late.map(i64::from),
            },
            motive_id: motive(self.motive_id.as_ref())?,
        })
    }
}

impl DeclareAbsenceInput {
    fn command(self) -> Result<Motivated<absences::DeclareAbsence>> {
        Ok(Motivated {
            motive_id: motive(self.motive_id.as_ref())?,
            command: absences::DeclareAbsence {
                absence_id: new_id(),
                student_id: opaque(&self.student_id),
                start: self.start,
                end: self.end,
                reason: self.reason,
            },
        })
    }
}

impl JustifyAbsenceInput {
    /// Justified by the viewer, with a motive and the documents they uploaded.
    fn command(self, v: &Viewer) -> Result<Motivated<JustifyWithDocuments>> {
        Ok(Motivated {
            motive_id: motive(self.motive_id.as_ref())?,
            command: JustifyWithDocuments {
                command: comm::JustifyAbsence {
                    attachments: super::communication::attachment_ids(&self.attachment_ids),
                    justification: absences::JustifyAbsence {
                        absence_id: opaque(&self.absence_id),
                        reason: self.reason,
                    },
                },
                by: v.person,
            },
        })
    }
}

impl ReviewJustificationInput {
    fn command(self) -> absences::ReviewJustification {
        absences::ReviewJustification {
            absence_id: opaque(&self.absence_id),
            accept: self.accept,
            comment: self.comment,
        }
    }
}

impl CreateAssessmentInput {
    /// Created by the viewer, who owns it.
    fn command(self, v: &Viewer) -> grades::CreateAssessment {
        grades::CreateAssessment {
            assessment_id: new_id(),
            class_id: opaque(&self.class_id),
            teacher_id: v.person,
            subject: self.subject,
            title: self.title,
            date: self.date.0,
            coefficient: self.coefficient,
            out_of: self.out_of,
        }
    }
}

impl RecordGradeInput {
    fn command(&self) -> Result<grades::RecordGrade> {
        Ok(grades::RecordGrade {
            assessment_id: opaque(&self.assessment_id),
            student_id: parse("studentId", &self.student_id)?,
            score: self.score,
            status: self.status.into(),
        })
    }
}

impl CorrectGradeInput {
    fn command(self) -> grades::CorrectGrade {
        grades::CorrectGrade {
            grade_id: opaque(&self.grade_id),
            score: self.score,
            status: self.status.into(),
            reason: self.reason,
        }
    }
}

impl AssignHomeworkInput {
    /// Assigned by the viewer.
    fn command(self, v: &Viewer) -> Result<InCourse> {
        Ok(InCourse {
            course_id: self
                .course_id
                .as_ref()
                .map(|c| parse("courseId", c))
                .transpose()?,
            estimated_minutes: self.estimated_minutes.map(i64::from),
            assign: comm::AssignHomework {
                attachments: super::communication::attachment_ids(&self.attachment_ids),
                homework: homework::AssignHomework {
                    homework_id: new_id(),
                    class_id: opaque(&self.class_id),
                    teacher_id: v.person,
                    subject: self.subject,
                    title: self.title,
                    description: self.description,
                    due: self.due.0,
                },
            },
        })
    }
}

impl SendMessageInput {
    /// Sent by the viewer.
    fn command(&self, v: &Viewer) -> comm::SendMessage {
        comm::SendMessage {
            message: messages::SendMessage {
                message_id: new_id(),
                thread: match &self.thread_id {
                    Some(t) => ThreadTarget::Reply(opaque(t)),
                    None => ThreadTarget::New { id: new_id() },
                },
                from: v.person,
                to: self.to.iter().map(opaque).collect(),
                subject: self.subject.clone(),
                body: self.body.clone(),
            },
            to_groups: self.to_groups.iter().flatten().map(|g| g.group()).collect(),
            attachments: super::communication::attachment_ids(&self.attachment_ids),
        }
    }
}

pub(super) fn command_context<'a>(ctx: &Context<'_>, v: &'a Viewer) -> CommandContext<'a> {
    CommandContext::person(v, correlation(ctx))
}

#[derive(Debug, Default)]
pub struct RecordMutation;

#[Object]
impl RecordMutation {
    /// ADMIN
    async fn create_establishment(
        &self,
        ctx: &Context<'_>,
        input: CreateEstablishmentInput,
    ) -> Result<Establishment> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command();
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(live(|src| Establishment::new(cmd.establishment_id, src)))
    }

    /// ADMIN, HEAD
    async fn create_class(
        &self,
        ctx: &Context<'_>,
        input: CreateClassInput,
    ) -> Result<SchoolClass> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command()?;
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(live(|src| SchoolClass::new(cmd.class_id, src)))
    }

    /// ADMIN, HEAD
    async fn register_person(
        &self,
        ctx: &Context<'_>,
        input: RegisterPersonInput,
    ) -> Result<Person> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command()?;
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(live(|src| Person::new(cmd.person_id(), src)))
    }

    /// ADMIN, HEAD
    async fn enroll_student(
        &self,
        ctx: &Context<'_>,
        input: EnrollStudentInput,
    ) -> Result<Student> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command()?;
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(live(|src| Student::new(cmd.student_id(), src)))
    }

    /// ADMIN, HEAD
    async fn link_guardian(&self, ctx: &Context<'_>, input: LinkGuardianInput) -> Result<Student> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command()?;
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(live(|src| Student::new(cmd.student_id, src)))
    }

    /// ADMIN, HEAD
    async fn assign_teacher(&self, ctx: &Context<'_>, input: AssignTeacherInput) -> Result<bool> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command()?;
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(true)
    }

    /// TEACHER of the student's class, EDUCATION_STAFF of its establishment
    async fn report_absence(
        &self,
        ctx: &Context<'_>,
        input: ReportAbsenceInput,
    ) -> Result<Absence> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command()?;
        let done = app
            .execute(
                &command_context(ctx, &v),
                &cmd,
                input.idempotency_key.as_deref(),
            )
            .await
            .gql()?;
        // The absence recorded, or the declared one the report confirmed.
        let id = match done.events.first() {
            Some(DomainEvent::AbsenceReported(e)) => e.absence_id,
            Some(DomainEvent::DeclaredAbsenceConfirmed(e)) => e.absence_id,
            _ => done.facts.0.declared.unwrap_or(cmd.command.absence_id),
        };
        Ok(live(|src| Absence::new(id, src)))
    }

    /// GUARDIAN of the student: an absence announced in advance, PENDING review
    /// from the start; the roll call later confirms it instead of reporting a new one.
    async fn declare_absence(
        &self,
        ctx: &Context<'_>,
        input: DeclareAbsenceInput,
    ) -> Result<Absence> {
        let (app, v) = viewer(ctx).await?;
        let key = input.idempotency_key.clone();
        let cmd = input.command()?;
        let done = app
            .execute(&command_context(ctx, &v), &cmd, key.as_deref())
            .await
            .gql()?;
        let id = match done.events.first() {
            Some(DomainEvent::AbsenceDeclared(e)) => e.absence_id,
            _ => cmd.command.absence_id,
        };
        Ok(live(|src| Absence::new(id, src)))
    }

    /// GUARDIAN of the student: the state becomes PENDING
    async fn justify_absence(
        &self,
        ctx: &Context<'_>,
        input: JustifyAbsenceInput,
    ) -> Result<Absence> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command(&v)?;
        let justify = &cmd.command.command;
        let absence = justify.justification.absence_id;
        let done = app
            .execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        if !justify.attachments.is_empty() && !done.events.is_empty() {
            // The justification is recorded: a failure to seal now leaves
            // the copy as uploaded (still served only to those who may see
            // the absence) rather than failing a request that was done.
            if let Err(e) = app.seal_justification_documents(absence).await {
                tracing::warn!(absence = %absence, error = %e, "justification documents not sealed yet");
            }
        }
        Ok(live(|src| Absence::new(absence, src)))
    }

    /// EDUCATION_STAFF: PENDING becomes ACCEPTED or REJECTED
    async fn review_justification(
        &self,
        ctx: &Context<'_>,
        input: ReviewJustificationInput,
    ) -> Result<Absence> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command();
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(live(|src| Absence::new(cmd.absence_id, src)))
    }

    /// TEACHER assigned to that class and subject
    async fn create_assessment(
        &self,
        ctx: &Context<'_>,
        input: CreateAssessmentInput,
    ) -> Result<Assessment> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command(&v);
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(live(|src| Assessment::new(cmd.assessment_id, src)))
    }

    /// TEACHER who owns the assessment
    async fn record_grade(&self, ctx: &Context<'_>, input: RecordGradeInput) -> Result<Grade> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command()?;
        app.execute(
            &command_context(ctx, &v),
            &cmd,
            input.idempotency_key.as_deref(),
        )
        .await
        .gql()?;
        Ok(live(|src| Grade::new(cmd.grade_id(), src)))
    }

    /// TEACHER who owns the assessment; the earlier value stays in the audit trail
    async fn correct_grade(&self, ctx: &Context<'_>, input: CorrectGradeInput) -> Result<Grade> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command();
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(live(|src| Grade::new(cmd.grade_id, src)))
    }

    /// TEACHER assigned to that class and subject
    async fn assign_homework(
        &self,
        ctx: &Context<'_>,
        input: AssignHomeworkInput,
    ) -> Result<Homework> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command(&v)?;
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(live(|src| {
            Homework::new(cmd.assign.homework.homework_id, src)
        }))
    }

    /// any authenticated person, to people they may write to (see `app::policy::may_write`)
    async fn send_message(&self, ctx: &Context<'_>, input: SendMessageInput) -> Result<Message> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command(&v);
        let done = app
            .execute(
                &command_context(ctx, &v),
                &cmd,
                input.idempotency_key.as_deref(),
            )
            .await
            .gql()?;
        let id = match done.events.first() {
            Some(DomainEvent::MessageSent(e)) => e.message_id,
            _ => cmd.message.message_id,
        };
        Ok(Message::new(id, v.person))
    }

    /// a recipient of the message
    async fn mark_message_read(&self, ctx: &Context<'_>, message_id: ID) -> Result<Message> {
        let (app, v) = viewer(ctx).await?;
        let cmd = messages::MarkRead {
            message_id: opaque(&message_id),
            reader: v.person,
        };
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        Ok(Message::new(cmd.message_id, v.person))
    }

    /// ADMIN: erase a person (a Person id) on request (GDPR art. 17): their name and personal free text read as "[effacé]" from now on; the events, the chain and the statistics stay. The reason is mandatory and must not itself name the person. False when they were erased already
    async fn forget_person(
        &self,
        ctx: &Context<'_>,
        person_id: ID,
        reason: String,
    ) -> Result<bool> {
        let (app, v) = viewer(ctx).await?;
        let cmd = roster::ErasePerson {
            person_id: parse("personId", &person_id)?,
            reason,
        };
        let done = app
            .execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        let erased = !done.events.is_empty();
        if erased {
            tracing::info!(person = %cmd.person_id.0, "person erased");
        }
        Ok(erased)
    }

    /// ADMIN, HEAD of every establishment the person belongs to: the person no longer needs their account from effectiveOn (they left the establishment). Their data is erased by `registre retention apply` once the account retention period (REGISTRE_RETENTION_ACCOUNT_DAYS, 90 days by default) has passed after that day. An account is closed once (CONFLICT after)
    async fn close_account(&self, ctx: &Context<'_>, input: CloseAccountInput) -> Result<Person> {
        let (app, v) = viewer(ctx).await?;
        let cmd = input.command()?;
        app.execute(&command_context(ctx, &v), &cmd, None)
            .await
            .gql()?;
        tracing::info!(person = %cmd.person_id.0, "account closed");
        Ok(live(|src| Person::new(cmd.person_id, src)))
    }
}

// ---- Subscription ---------------------------------------------------------------------------

#[derive(Debug, Default)]
pub struct RecordSubscription;

#[Subscription]
impl RecordSubscription {
    /// GUARDIAN: absences of their children (of one child with studentId);
    /// EDUCATION_STAFF: of their establishment. With `after`, first every matching
    /// absence recorded after that position, then live ones, none missed.
    async fn absence_reported(
        &self,
        ctx: &Context<'_>,
        student_id: Option<ID>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<AbsenceNotification>>> {
        let (app, v) = viewer(ctx).await?;
        let student = student_id.as_ref().map(opaque::<StudentId>);
        if !app.read(|m| policy::can_follow_absences(m, &v, student)) {
            return forbidden();
        }
        let after = after
            .map(|a| {
                a.trim()
                    .parse::<u64>()
                    .map_err(|_| ApiError::invalid("after", "a position is a decimal integer"))
            })
            .transpose()
            .gql()?;
        let filter: Arc<registre_app::live::Filter> =
            Arc::new(move |m, v, of| absence_matches(m, v, student, of));
        let feed = registre_app::live::feed(app.clone(), v, after, filter);
        Ok(feed.map(|item| {
            item.map(|a| AbsenceNotification {
                position: a.position,
                absence: a.absence,
                student: a.student,
            })
            .gql()
        }))
    }
}

/// Used by the feed to decide what a subscriber sees.
pub(crate) fn absence_matches(
    m: &Model,
    v: &Viewer,
    student: Option<StudentId>,
    of: StudentId,
) -> bool {
    student.is_none_or(|s| s == of) && policy::absence_visible_live(m, v, of)
}
