//! The commands behind the mutations. Each one: authorize (policy, from the
//! read model), read the target stream's state, decide the events, append with
//! the stream's expected version; on a version conflict re-read and decide
//! again, a bounded number of times. With an idempotency key, a repeated
//! request answers the first one's outcome and writes nothing.
//!
//! Integration note: the domain crate's per-aggregate `handle` functions were
//! not there when this was written; the invariants they will hold are checked
//! here, in `decide` closures, from the same inputs (stream state + facts).

use super::model::Model;
use super::{ApiError, App, Viewer};
use crate::policy;
use chrono::{DateTime, NaiveDate, Utc};
use registre_domain::events::*;
use registre_domain::{
    AbsenceId, AbsenceKind, AssessmentId, ClassId, DomainEvent, EstablishmentId, GradeId,
    GradeStatus, HomeworkId, JustificationState, MessageId, PersonId, Role, StreamName, StudentId,
    ThreadId, TimeZone, Uai,
};
use registre_store::{AppendOutcome, ExpectedVersion, Idempotency, NewEvent, StoreError};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What a mutation's caller passes besides its input.
#[derive(Clone, Debug)]
pub struct CommandContext<'a> {
    pub viewer: &'a Viewer,
    /// The request id: the correlation id of every event written.
    pub correlation: Uuid,
}

/// A client's idempotency key and the normalised input it came with.
#[derive(Clone, Debug)]
pub struct IdempotencyInput {
    pub client_key: String,
    pub input: serde_json::Value,
}

fn non_empty(field: &str, value: &str) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        Err(ApiError::invalid(field, "must not be empty"))
    } else {
        Ok(v.to_owned())
    }
}

fn decode_stream(events: &[registre_store::RecordedEvent]) -> Result<Vec<DomainEvent>, ApiError> {
    events
        .iter()
        .map(|r| {
            DomainEvent::decode(&r.event_type, r.schema_version, &r.data).map_err(|e| {
                tracing::error!(position = r.position, error = %e, "undecodable event");
                ApiError::Internal("the log holds an undecodable event".into())
            })
        })
        .collect()
}

/// The first event of an outcome, decoded (to answer a repeated request).
pub fn first_event(outcome: &AppendOutcome) -> Result<Option<DomainEvent>, ApiError> {
    Ok(decode_stream(&outcome.events)?.into_iter().next())
}

fn score_rule(
    score: Option<f64>,
    status: GradeStatus,
    out_of: f64,
) -> Result<Option<f64>, ApiError> {
    match (status, score) {
        (GradeStatus::Graded, Some(s)) if s.is_finite() && (0.0..=out_of).contains(&s) => {
            Ok(Some(s))
        }
        (GradeStatus::Graded, Some(_)) => Err(ApiError::invalid(
            "score",
            format!("must be between 0 and {out_of}"),
        )),
        (GradeStatus::Graded, None) => {
            Err(ApiError::invalid("score", "required when status is GRADED"))
        }
        (_, Some(_)) => Err(ApiError::invalid(
            "score",
            "must be null unless status is GRADED",
        )),
        (_, None) => Ok(None),
    }
}

impl App {
    /// The shared loop of every command. `decide` gets the read model and the
    /// decoded events of `stream`, and returns the events to append (none: the
    /// command is already satisfied, nothing is written).
    pub async fn run_command(
        &self,
        cx: &CommandContext<'_>,
        stream: &StreamName,
        idempotency: Option<IdempotencyInput>,
        reason: Option<&str>,
        decide: impl Fn(&Model, &[DomainEvent]) -> Result<Vec<DomainEvent>, ApiError>,
    ) -> Result<AppendOutcome, ApiError> {
        let idem = idempotency.map(|i| {
            let fingerprint = hex::encode(Sha256::digest(i.input.to_string().as_bytes()));
            Idempotency {
                key: format!("{}:{}", cx.viewer.person, i.client_key),
                fingerprint,
            }
        });
        if let Some(idem) = &idem {
            if let Some(original) = self.store().find_idempotent(&idem.key).await? {
                return self.replay_idempotent(original, idem).await;
            }
        }
        let mut attempt = 0;
        loop {
            self.consistent().await?;
            let recorded = self.store().read_stream(stream.as_str(), 0).await?;
            let version = recorded.last().map(|e| e.stream_version).unwrap_or(0);
            let state = decode_stream(&recorded)?;
            let events = self.read(|m| decide(m, &state))?;
            if events.is_empty() {
                return Ok(AppendOutcome {
                    events: Vec::new(),
                    deduplicated: false,
                });
            }
            match self
                .append(
                    cx.viewer,
                    cx.correlation,
                    stream,
                    version,
                    &events,
                    idem.as_ref(),
                    reason,
                )
                .await
            {
                Ok(outcome) => {
                    self.wait_for(outcome.last_position()).await?;
                    return Ok(outcome);
                }
                Err(StoreError::Conflict { .. }) if attempt < self.config().conflict_retries => {
                    attempt += 1;
                    tracing::debug!(stream = %stream, attempt, "expected-version conflict; deciding again");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A key seen before: the store compares the fingerprints (same command:
    /// the original outcome; another one: IdempotencyKeyReused) without
    /// writing, since the key is already taken.
    async fn replay_idempotent(
        &self,
        original: AppendOutcome,
        idem: &Idempotency,
    ) -> Result<AppendOutcome, ApiError> {
        let Some(first) = original.events.first() else {
            return Ok(original);
        };
        let request = registre_store::AppendRequest {
            stream_id: first.stream_id.clone(),
            expected: ExpectedVersion::Any,
            events: original
                .events
                .iter()
                .map(|e| NewEvent {
                    event_id: e.event_id,
                    event_type: e.event_type.clone(),
                    schema_version: e.schema_version,
                    data: e.data.clone(),
                    metadata: e.metadata.clone(),
                })
                .collect(),
            idempotency: Some(idem.clone()),
        };
        let outcome = self.store().append(request).await?;
        if !outcome.deduplicated {
            // Cannot happen with a store that keeps its promise; say so loudly.
            tracing::error!(key = %idem.key, "store re-appended an idempotent request");
        }
        self.wait_for(outcome.last_position()).await?;
        Ok(outcome)
    }

    pub async fn create_establishment(
        &self,
        cx: &CommandContext<'_>,
        uai: &str,
        name: &str,
        time_zone: Option<&str>,
    ) -> Result<EstablishmentId, ApiError> {
        if !policy::can_create_establishment(cx.viewer) {
            return Err(ApiError::forbidden());
        }
        let uai = Uai::parse(uai)?;
        let name = non_empty("name", name)?;
        let time_zone = time_zone
            .map(TimeZone::parse)
            .transpose()?
            .unwrap_or_default();
        let id = EstablishmentId::new();
        self.run_command(cx, &StreamName::establishment(id), None, None, |m, _| {
            if m.establishments.values().any(|e| e.uai == uai.as_str()) {
                return Err(ApiError::Conflict(format!(
                    "an establishment with UAI {uai} exists"
                )));
            }
            Ok(vec![DomainEvent::EstablishmentCreated(
                EstablishmentCreated {
                    establishment_id: id,
                    uai: uai.clone(),
                    name: name.clone(),
                    time_zone,
                },
            )])
        })
        .await?;
        Ok(id)
    }

    pub async fn create_class(
        &self,
        cx: &CommandContext<'_>,
        establishment: EstablishmentId,
        name: &str,
    ) -> Result<ClassId, ApiError> {
        let name = non_empty("name", name)?;
        let id = ClassId::new();
        self.run_command(cx, &StreamName::class(id), None, None, |m, _| {
            if !policy::can_manage_roster(cx.viewer, Some(establishment)) {
                return Err(ApiError::forbidden());
            }
            let Some(est) = m.establishments.get(&establishment) else {
                return Err(ApiError::NotFound("establishment".into()));
            };
            if est
                .classes
                .iter()
                .any(|c| m.classes.get(c).is_some_and(|c| c.name == name))
            {
                return Err(ApiError::Conflict(format!(
                    "class {name} exists in this establishment"
                )));
            }
            Ok(vec![DomainEvent::ClassCreated(ClassCreated {
                class_id: id,
                establishment_id: establishment,
                name: name.clone(),
            })])
        })
        .await?;
        Ok(id)
    }

    pub async fn register_person(
        &self,
        cx: &CommandContext<'_>,
        external_id: &str,
        display_name: &str,
        roles: &[Role],
        establishment: Option<EstablishmentId>,
    ) -> Result<PersonId, ApiError> {
        if !policy::can_register(cx.viewer, roles, establishment) {
            return Err(ApiError::forbidden());
        }
        let external_id = non_empty("externalId", external_id)?;
        let display_name = non_empty("displayName", display_name)?;
        if roles.is_empty() {
            return Err(ApiError::invalid("roles", "at least one role"));
        }
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        if roles.iter().any(|r| r.needs_establishment()) && establishment.is_none() {
            return Err(ApiError::invalid(
                "establishmentId",
                "required for HEAD, EDUCATION_STAFF and TEACHER",
            ));
        }
        let id = PersonId::for_external_id(&external_id);
        self.run_command(cx, &StreamName::person(id), None, None, |m, state| {
            if !state.is_empty() {
                return Err(ApiError::Conflict(
                    "this externalId is already registered".into(),
                ));
            }
            if let Some(est) = establishment {
                if !m.establishments.contains_key(&est) {
                    return Err(ApiError::NotFound("establishment".into()));
                }
            }
            Ok(vec![DomainEvent::PersonRegistered(PersonRegistered {
                person_id: id,
                external_id: external_id.clone(),
                display_name: display_name.clone(),
                roles: roles.clone(),
                establishment_id: establishment,
            })])
        })
        .await?;
        Ok(id)
    }

    pub async fn enroll_student(
        &self,
        cx: &CommandContext<'_>,
        person: PersonId,
        class: ClassId,
    ) -> Result<StudentId, ApiError> {
        let id = StudentId::for_person(person);
        self.run_command(cx, &StreamName::student(id), None, None, |m, _| {
            let est = m.establishment_of_class(class);
            if !policy::can_manage_roster(cx.viewer, est) {
                return Err(ApiError::forbidden());
            }
            if est.is_none() {
                return Err(ApiError::NotFound("class".into()));
            }
            let Some(p) = m.persons.get(&person) else {
                return Err(ApiError::NotFound("person".into()));
            };
            if !p.roles.contains(&Role::Student) {
                return Err(ApiError::invalid(
                    "personId",
                    "this person is not a STUDENT",
                ));
            }
            if m.students.get(&id).is_some_and(|s| s.class == class) {
                return Ok(vec![]);
            }
            Ok(vec![DomainEvent::StudentEnrolled(StudentEnrolled {
                student_id: id,
                person_id: person,
                class_id: class,
            })])
        })
        .await?;
        Ok(id)
    }

    pub async fn link_guardian(
        &self,
        cx: &CommandContext<'_>,
        student: StudentId,
        guardian: PersonId,
    ) -> Result<(), ApiError> {
        self.run_command(cx, &StreamName::student(student), None, None, |m, _| {
            let est = m.establishment_of_student(student);
            if !policy::can_manage_roster(cx.viewer, est) {
                return Err(ApiError::forbidden());
            }
            let Some(s) = m.students.get(&student) else {
                return Err(ApiError::NotFound("student".into()));
            };
            let Some(g) = m.persons.get(&guardian) else {
                return Err(ApiError::NotFound("guardian".into()));
            };
            if !g.roles.contains(&Role::Guardian) {
                return Err(ApiError::invalid(
                    "guardianId",
                    "this person is not a GUARDIAN",
                ));
            }
            if s.guardians.contains(&guardian) {
                return Ok(vec![]);
            }
            Ok(vec![DomainEvent::GuardianLinked(GuardianLinked {
                student_id: student,
                guardian_id: guardian,
            })])
        })
        .await?;
        Ok(())
    }

    pub async fn assign_teacher(
        &self,
        cx: &CommandContext<'_>,
        teacher: PersonId,
        class: ClassId,
        subject: &str,
    ) -> Result<(), ApiError> {
        let subject = non_empty("subject", subject)?;
        self.run_command(cx, &StreamName::class(class), None, None, |m, _| {
            let est = m.establishment_of_class(class);
            if !policy::can_manage_roster(cx.viewer, est) {
                return Err(ApiError::forbidden());
            }
            let Some(c) = m.classes.get(&class) else {
                return Err(ApiError::NotFound("class".into()));
            };
            let Some(t) = m.persons.get(&teacher) else {
                return Err(ApiError::NotFound("teacher".into()));
            };
            if !t.roles.contains(&Role::Teacher) || t.establishment != Some(c.establishment) {
                return Err(ApiError::invalid(
                    "teacherId",
                    "not a TEACHER of this class's establishment",
                ));
            }
            if c.teachers.contains(&(teacher, subject.clone())) {
                return Ok(vec![]);
            }
            Ok(vec![DomainEvent::TeacherAssigned(TeacherAssigned {
                class_id: class,
                teacher_id: teacher,
                subject: subject.clone(),
            })])
        })
        .await?;
        Ok(())
    }

    /// A roll-call report. When the student's guardian declared an absence
    /// covering it in advance, that absence is confirmed instead of a second
    /// one being recorded.
    #[allow(clippy::too_many_arguments)]
    pub async fn report_absence(
        &self,
        cx: &CommandContext<'_>,
        student: StudentId,
        kind: AbsenceKind,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        minutes_late: Option<i32>,
        idempotency: Option<IdempotencyInput>,
    ) -> Result<AbsenceId, ApiError> {
        let allowed = self.read(|m| policy::can_report_absence(m, cx.viewer, student));
        if !allowed {
            return Err(ApiError::forbidden());
        }
        if end <= start {
            return Err(ApiError::invalid("end", "must be after start"));
        }
        let minutes_late = match (kind, minutes_late) {
            (AbsenceKind::Lateness, Some(n)) if n > 0 => Some(n as u32),
            (AbsenceKind::Lateness, _) => {
                return Err(ApiError::invalid(
                    "minutesLate",
                    "a positive number is required for LATENESS",
                ))
            }
            (AbsenceKind::Absence, None) => None,
            (AbsenceKind::Absence, Some(_)) => {
                return Err(ApiError::invalid("minutesLate", "only for LATENESS"))
            }
        };
        let declared = self.read(|m| {
            m.students.get(&student).and_then(|s| {
                s.absences.iter().copied().find(|a| {
                    m.absences.get(a).is_some_and(|a| {
                        a.declared
                            && !a.cancelled
                            && kind == AbsenceKind::Absence
                            && a.start < end
                            && start < a.end
                    })
                })
            })
        });
        let (id, fresh) = match declared {
            Some(a) => (a, false),
            None => (AbsenceId::new(), true),
        };
        let outcome = self
            .run_command(
                cx,
                &StreamName::absence(id),
                idempotency,
                None,
                |m, state| {
                    if !policy::can_report_absence(m, cx.viewer, student) {
                        return Err(ApiError::forbidden());
                    }
                    if fresh {
                        return Ok(vec![DomainEvent::AbsenceReported(AbsenceReported {
                            absence_id: id,
                            student_id: student,
                            kind,
                            start,
                            end,
                            minutes_late,
                        })]);
                    }
                    let confirmed = state
                        .iter()
                        .any(|e| matches!(e, DomainEvent::DeclaredAbsenceConfirmed(_)));
                    if confirmed {
                        return Ok(vec![]);
                    }
                    Ok(vec![DomainEvent::DeclaredAbsenceConfirmed(
                        DeclaredAbsenceConfirmed {
                            absence_id: id,
                            student_id: student,
                        },
                    )])
                },
            )
            .await?;
        Ok(match first_event(&outcome)? {
            Some(DomainEvent::AbsenceReported(e)) => e.absence_id,
            Some(DomainEvent::DeclaredAbsenceConfirmed(e)) => e.absence_id,
            _ => id,
        })
    }

    /// A guardian announces an absence in advance; it starts PENDING review.
    pub async fn declare_absence(
        &self,
        cx: &CommandContext<'_>,
        student: StudentId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        reason: &str,
        idempotency: Option<IdempotencyInput>,
    ) -> Result<AbsenceId, ApiError> {
        if !self.read(|m| policy::can_justify_absence(m, cx.viewer, student)) {
            return Err(ApiError::forbidden());
        }
        if end <= start {
            return Err(ApiError::invalid("end", "must be after start"));
        }
        let reason = non_empty("reason", reason)?;
        let id = AbsenceId::new();
        let outcome = self
            .run_command(cx, &StreamName::absence(id), idempotency, None, |_, _| {
                Ok(vec![DomainEvent::AbsenceDeclared(AbsenceDeclared {
                    absence_id: id,
                    student_id: student,
                    start,
                    end,
                    reason: reason.clone(),
                })])
            })
            .await?;
        Ok(match first_event(&outcome)? {
            Some(DomainEvent::AbsenceDeclared(e)) => e.absence_id,
            _ => id,
        })
    }

    fn absence_student(&self, id: AbsenceId) -> Option<StudentId> {
        self.read(|m| m.absences.get(&id).map(|a| a.student))
    }

    pub async fn justify_absence(
        &self,
        cx: &CommandContext<'_>,
        absence: AbsenceId,
        reason: &str,
    ) -> Result<(), ApiError> {
        let student = self
            .absence_student(absence)
            .ok_or_else(ApiError::forbidden)?;
        if !self.read(|m| policy::can_justify_absence(m, cx.viewer, student)) {
            return Err(ApiError::forbidden());
        }
        let reason = non_empty("reason", reason)?;
        self.run_command(cx, &StreamName::absence(absence), None, None, |_, state| {
            match absence_state(state) {
                (_, true) => Err(ApiError::Conflict("this absence was cancelled".into())),
                (JustificationState::Unjustified | JustificationState::Rejected, _) => {
                    Ok(vec![DomainEvent::AbsenceJustified(AbsenceJustified {
                        absence_id: absence,
                        student_id: student,
                        reason: reason.clone(),
                    })])
                }
                (s, _) => Err(ApiError::Conflict(format!(
                    "an absence in state {s:?} cannot be justified"
                ))),
            }
        })
        .await?;
        Ok(())
    }

    pub async fn review_justification(
        &self,
        cx: &CommandContext<'_>,
        absence: AbsenceId,
        accept: bool,
        comment: Option<&str>,
    ) -> Result<(), ApiError> {
        let student = self
            .absence_student(absence)
            .ok_or_else(ApiError::forbidden)?;
        if !self.read(|m| policy::can_review_justification(m, cx.viewer, student)) {
            return Err(ApiError::forbidden());
        }
        let comment = comment
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        self.run_command(cx, &StreamName::absence(absence), None, None, |_, state| {
            match absence_state(state) {
                (_, true) => Err(ApiError::Conflict("this absence was cancelled".into())),
                (JustificationState::Pending, _) => Ok(vec![DomainEvent::JustificationReviewed(
                    JustificationReviewed {
                        absence_id: absence,
                        student_id: student,
                        accepted: accept,
                        comment: comment.clone(),
                    },
                )]),
                (s, _) => Err(ApiError::Conflict(format!(
                    "only a PENDING justification can be reviewed (state {s:?})"
                ))),
            }
        })
        .await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn create_assessment(
        &self,
        cx: &CommandContext<'_>,
        class: ClassId,
        subject: &str,
        title: &str,
        date: NaiveDate,
        coefficient: f64,
        out_of: f64,
    ) -> Result<AssessmentId, ApiError> {
        let subject = subject.trim().to_owned();
        if !self.read(|m| policy::can_teach(m, cx.viewer, class, &subject)) {
            return Err(ApiError::forbidden());
        }
        let title = non_empty("title", title)?;
        if !(coefficient.is_finite() && coefficient > 0.0) {
            return Err(ApiError::invalid(
                "coefficient",
                "must be a positive number",
            ));
        }
        if !(out_of.is_finite() && out_of > 0.0) {
            return Err(ApiError::invalid("outOf", "must be a positive number"));
        }
        let id = AssessmentId::new();
        self.run_command(cx, &StreamName::assessment(id), None, None, |_, _| {
            Ok(vec![DomainEvent::AssessmentCreated(AssessmentCreated {
                assessment_id: id,
                class_id: class,
                teacher_id: cx.viewer.person,
                subject: subject.clone(),
                title: title.clone(),
                date,
                coefficient,
                out_of,
            })])
        })
        .await?;
        Ok(id)
    }

    pub async fn record_grade(
        &self,
        cx: &CommandContext<'_>,
        assessment: AssessmentId,
        student: StudentId,
        score: Option<f64>,
        status: GradeStatus,
        idempotency: Option<IdempotencyInput>,
    ) -> Result<GradeId, ApiError> {
        let a = self
            .read(|m| m.assessments.get(&assessment).cloned())
            .filter(|a| policy::owns_assessment(cx.viewer, a))
            .ok_or_else(ApiError::forbidden)?;
        let score = score_rule(score, status, a.out_of)?;
        let id = GradeId::for_pair(assessment, student);
        let outcome = self
            .run_command(
                cx,
                &StreamName::assessment(assessment),
                idempotency,
                None,
                |m, state| {
                    if m.students.get(&student).map(|s| s.class) != Some(a.class) {
                        return Err(ApiError::invalid(
                            "studentId",
                            "not a student of this assessment's class",
                        ));
                    }
                    let exists = state
                        .iter()
                        .any(|e| matches!(e, DomainEvent::GradeRecorded(g) if g.grade_id == id));
                    if exists {
                        return Err(ApiError::Conflict(
                            "a grade is already recorded for this student; use correctGrade".into(),
                        ));
                    }
                    Ok(vec![DomainEvent::GradeRecorded(GradeRecorded {
                        grade_id: id,
                        assessment_id: assessment,
                        student_id: student,
                        score,
                        status,
                    })])
                },
            )
            .await?;
        Ok(match first_event(&outcome)? {
            Some(DomainEvent::GradeRecorded(g)) => g.grade_id,
            _ => id,
        })
    }

    pub async fn correct_grade(
        &self,
        cx: &CommandContext<'_>,
        grade: GradeId,
        score: Option<f64>,
        status: GradeStatus,
        reason: &str,
    ) -> Result<(), ApiError> {
        let (a, student) = self
            .read(|m| {
                let g = m.grades.get(&grade)?;
                Some((m.assessments.get(&g.assessment)?.clone(), g.student))
            })
            .filter(|(a, _)| policy::owns_assessment(cx.viewer, a))
            .ok_or_else(ApiError::forbidden)?;
        let reason = non_empty("reason", reason)?;
        let score = score_rule(score, status, a.out_of)?;
        self.run_command(
            cx,
            &StreamName::assessment(a.id),
            None,
            Some(&reason),
            |_, state| {
                let mut current = None;
                for e in state {
                    match e {
                        DomainEvent::GradeRecorded(g) if g.grade_id == grade => {
                            current = Some((g.score, g.status))
                        }
                        DomainEvent::GradeCorrected(g) if g.grade_id == grade => {
                            current = Some((g.score, g.status))
                        }
                        _ => {}
                    }
                }
                let Some((previous_score, previous_status)) = current else {
                    return Err(ApiError::NotFound("grade".into()));
                };
                Ok(vec![DomainEvent::GradeCorrected(GradeCorrected {
                    grade_id: grade,
                    assessment_id: a.id,
                    student_id: student,
                    previous_score,
                    previous_status,
                    score,
                    status,
                    reason: reason.clone(),
                })])
            },
        )
        .await?;
        Ok(())
    }

    pub async fn assign_homework(
        &self,
        cx: &CommandContext<'_>,
        class: ClassId,
        subject: &str,
        title: &str,
        description: &str,
        due: NaiveDate,
    ) -> Result<HomeworkId, ApiError> {
        let subject = subject.trim().to_owned();
        let tz = self.read(|m| {
            policy::can_teach(m, cx.viewer, class, &subject)
                .then(|| {
                    m.establishment_of_class(class)
                        .and_then(|e| m.establishments.get(&e))
                        .map(|e| e.time_zone)
                })
                .flatten()
        });
        let tz = tz.ok_or_else(ApiError::forbidden)?;
        let title = non_empty("title", title)?;
        let description = description.trim().to_owned();
        let assigned_on = Utc::now().with_timezone(&tz.tz()).date_naive();
        let id = HomeworkId::new();
        self.run_command(cx, &StreamName::homework(id), None, None, |_, _| {
            Ok(vec![DomainEvent::HomeworkAssigned(HomeworkAssigned {
                homework_id: id,
                class_id: class,
                teacher_id: cx.viewer.person,
                subject: subject.clone(),
                title: title.clone(),
                description: description.clone(),
                due,
                assigned_on,
            })])
        })
        .await?;
        Ok(id)
    }

    pub async fn send_message(
        &self,
        cx: &CommandContext<'_>,
        to: &[PersonId],
        subject: &str,
        body: &str,
        thread: Option<ThreadId>,
        idempotency: Option<IdempotencyInput>,
    ) -> Result<MessageId, ApiError> {
        let mut to = to.to_vec();
        to.sort();
        to.dedup();
        if to.is_empty() {
            return Err(ApiError::invalid("to", "at least one recipient"));
        }
        let subject = non_empty("subject", subject)?;
        let body = non_empty("body", body)?;
        let me = cx.viewer.person;
        let thread_id = thread.unwrap_or_default();
        let thread_id = if thread.is_some() {
            thread_id
        } else {
            ThreadId::new()
        };
        let id = MessageId::new();
        let outcome = self
            .run_command(
                cx,
                &StreamName::thread(thread_id),
                idempotency,
                None,
                |m, _| {
                    if to.iter().any(|r| !policy::may_write(m, me, *r)) {
                        return Err(ApiError::Forbidden(
                            "one of the recipients is not someone this viewer may write to".into(),
                        ));
                    }
                    if thread.is_some()
                        && !m.threads.get(&thread_id).is_some_and(|p| p.contains(&me))
                    {
                        return Err(ApiError::forbidden());
                    }
                    Ok(vec![DomainEvent::MessageSent(MessageSent {
                        message_id: id,
                        thread_id,
                        from: me,
                        to: to.clone(),
                        subject: subject.clone(),
                        body: body.clone(),
                    })])
                },
            )
            .await?;
        Ok(match first_event(&outcome)? {
            Some(DomainEvent::MessageSent(e)) => e.message_id,
            _ => id,
        })
    }

    pub async fn mark_message_read(
        &self,
        cx: &CommandContext<'_>,
        message: MessageId,
    ) -> Result<(), ApiError> {
        let me = cx.viewer.person;
        let thread = self
            .read(|m| {
                m.messages
                    .get(&message)
                    .filter(|msg| msg.to.contains(&me))
                    .map(|msg| msg.thread)
            })
            .ok_or_else(ApiError::forbidden)?;
        self.run_command(cx, &StreamName::thread(thread), None, None, |_, state| {
            let already = state
                .iter()
                .any(|e| matches!(e, DomainEvent::MessageRead(r) if r.message_id == message && r.reader == me));
            if already {
                return Ok(vec![]);
            }
            Ok(vec![DomainEvent::MessageRead(MessageRead {
                message_id: message,
                thread_id: thread,
                reader: me,
            })])
        })
        .await?;
        Ok(())
    }
}

/// (justification state, cancelled) of an absence stream.
fn absence_state(events: &[DomainEvent]) -> (JustificationState, bool) {
    let mut state = JustificationState::Unjustified;
    let mut cancelled = false;
    for e in events {
        match e {
            DomainEvent::AbsenceReported(_) => state = JustificationState::Unjustified,
            DomainEvent::AbsenceDeclared(_) | DomainEvent::AbsenceJustified(_) => {
                state = JustificationState::Pending
            }
            DomainEvent::JustificationReviewed(r) => {
                state = if r.accepted {
                    JustificationState::Accepted
                } else {
                    JustificationState::Rejected
                }
            }
            DomainEvent::AbsenceCancelled(_) => cancelled = true,
            _ => {}
        }
    }
    (state, cancelled)
}
