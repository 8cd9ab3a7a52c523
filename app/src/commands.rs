//! The commands behind the mutations. Each one: authorize (policy, from the
//! read model), read the target stream's state, decide the events, append with
//! the stream's expected version; on a version conflict re-read and decide
//! again, a bounded number of times. With an idempotency key, a repeated
//! request answers the first one's outcome and writes nothing.
//!
//! Integration note: the domain crate's per-aggregate `handle` functions were
//! not there when this was written; the invariants they will hold are checked
//! here, in `decide` closures, from the same inputs (stream state + facts).

use super::limits::Limited;
use super::{ApiError, App, Viewer};
use crate::policy;
use chrono::{DateTime, NaiveDate, Utc};
use registre_domain::{absences, grades, homework, messages, roster, Aggregate};
use registre_domain::{
    AbsenceId, AbsenceKind, AssessmentId, ClassId, DomainEvent, EstablishmentId, GradeId,
    GradeStatus, HomeworkId, MessageId, PersonId, Role, StreamName, StudentId, ThreadId, Uai,
};
use registre_projections::ReadModel as Model;
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

/// Longest idempotency key: a UUID is 36 characters, a client's own scheme
/// ("roll-call:4B:2026-11-24:08h") rarely more than a few dozen. The key is
/// stored with every event of the command and in the key table, so an
/// unbounded one (an 800,000-character key was accepted) costs storage on
/// every write.
pub const IDEMPOTENCY_KEY_MAX: usize = 200;

/// An idempotency key is 1 to [`IDEMPOTENCY_KEY_MAX`] visible ASCII
/// characters (`!` to `~`: letters, digits, punctuation; no space, no
/// control, nothing that normalises differently): a key is compared byte for
/// byte, so it must not hold characters two clients could write two ways.
/// An empty key is refused rather than read as "no key": a client that sends
/// one believes it is protected against retries and is not.
pub fn check_idempotency_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::invalid(
            "idempotencyKey",
            "must not be empty (omit it to send no key)",
        ));
    }
    if key.len() > IDEMPOTENCY_KEY_MAX {
        return Err(ApiError::invalid(
            "idempotencyKey",
            format!("must be at most {IDEMPOTENCY_KEY_MAX} characters"),
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "idempotencyKey",
            "must hold only visible ASCII characters (! to ~), no space or control character",
        ));
    }
    Ok(())
}

pub(super) fn decode_stream(
    events: &[registre_store::RecordedEvent],
) -> Result<Vec<DomainEvent>, ApiError> {
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
        if let Some(i) = &idempotency {
            check_idempotency_key(&i.client_key)?;
        }
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
        let cmd = roster::CreateEstablishment {
            establishment_id: EstablishmentId::new(),
            uai: uai.to_owned(),
            name: name.to_owned(),
            time_zone: time_zone.map(str::to_owned),
        };
        let id = cmd.establishment_id;
        self.run_command(
            cx,
            &StreamName::establishment(id),
            None,
            None,
            |m, state| {
                let uai = Uai::parse(&cmd.uai)?;
                let facts = roster::EstablishmentFacts {
                    uai_taken: m.establishment_by_uai(uai.as_str()).is_some(),
                };
                Ok(roster::create_establishment(
                    &Aggregate::fold(state),
                    &cmd,
                    &facts,
                )?)
            },
        )
        .await?;
        Ok(id)
    }

    pub async fn create_class(
        &self,
        cx: &CommandContext<'_>,
        establishment: EstablishmentId,
        name: &str,
    ) -> Result<ClassId, ApiError> {
        let cmd = roster::CreateClass {
            class_id: ClassId::new(),
            establishment_id: establishment,
            name: name.to_owned(),
        };
        let id = cmd.class_id;
        let wanted = name.trim().to_lowercase();
        self.run_command(cx, &StreamName::class(id), None, None, |m, state| {
            if !policy::can_manage_roster(cx.viewer, Some(establishment)) {
                return Err(ApiError::forbidden());
            }
            let exists = m.establishment(establishment).is_some();
            let facts = roster::ClassFacts {
                establishment_exists: exists,
                name_taken: m
                    .classes_of(establishment)
                    .iter()
                    .any(|c| c.name.trim().to_lowercase() == wanted),
            };
            Ok(roster::create_class(&Aggregate::fold(state), &cmd, &facts)?)
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
        let cmd = roster::RegisterPerson {
            external_id: external_id.to_owned(),
            display_name: display_name.to_owned(),
            roles: roles.to_vec(),
            establishment_id: establishment,
        };
        let id = cmd.person_id();
        self.run_command(cx, &StreamName::person(id), None, None, |m, state| {
            let facts = roster::PersonFacts {
                establishment_exists: establishment.is_some_and(|e| m.establishment(e).is_some()),
            };
            Ok(roster::register_person(
                &Aggregate::fold(state),
                &cmd,
                &facts,
            )?)
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
        let cmd = roster::EnrollStudent {
            person_id: person,
            class_id: class,
        };
        let id = cmd.student_id();
        self.run_command(cx, &StreamName::student(id), None, None, |m, state| {
            if !policy::can_manage_roster(cx.viewer, m.establishment_of_class(class)) {
                return Err(ApiError::forbidden());
            }
            let facts = roster::EnrolmentFacts {
                person: summary(m, person),
                class_exists: m.class(class).is_some(),
            };
            Ok(roster::enroll_student(
                &Aggregate::fold(state),
                &cmd,
                &facts,
            )?)
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
        let cmd = roster::LinkGuardian {
            student_id: student,
            guardian_id: guardian,
        };
        self.run_command(cx, &StreamName::student(student), None, None, |m, state| {
            if !policy::can_manage_roster(cx.viewer, m.establishment_of_student(student)) {
                return Err(ApiError::forbidden());
            }
            let facts = roster::GuardianFacts {
                guardian: summary(m, guardian),
            };
            Ok(roster::link_guardian(
                &Aggregate::fold(state),
                &cmd,
                &facts,
            )?)
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
        let cmd = roster::AssignTeacher {
            class_id: class,
            teacher_id: teacher,
            subject: subject.to_owned(),
        };
        self.run_command(cx, &StreamName::class(class), None, None, |m, state| {
            if !policy::can_manage_roster(cx.viewer, m.establishment_of_class(class)) {
                return Err(ApiError::forbidden());
            }
            let facts = roster::AssignmentFacts {
                teacher: summary(m, teacher),
            };
            Ok(roster::assign_teacher(
                &Aggregate::fold(state),
                &cmd,
                &facts,
            )?)
        })
        .await?;
        Ok(())
    }

    /// A roll-call report. When the student's guardian declared an absence
    /// covering it in advance, that absence is confirmed instead of a second
    /// one being recorded (the domain decides; this finds the candidate).
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
        self.check_rate(cx.viewer, Limited::RollCall)?;
        if !self.read(|m| policy::can_report_absence(m, cx.viewer, student)) {
            return Err(ApiError::forbidden());
        }
        let cmd = absences::ReportAbsence {
            absence_id: AbsenceId::new(),
            student_id: student,
            kind,
            start,
            end,
            minutes_late: minutes_late.map(i64::from),
        };
        // The earliest live declared absence the report overlaps, if any: its
        // stream is the one to append to.
        let declared = self.read(|m| {
            m.absences_of(student)
                .into_iter()
                .filter(|a| {
                    a.declared_in_advance
                        && !m.is_absence_cancelled(a.id)
                        && kind == AbsenceKind::Absence
                        && a.start < end
                        && start < a.end
                })
                .min_by_key(|a| a.start)
                .map(|a| a.id)
        });
        let stream_id = declared.unwrap_or(cmd.absence_id);
        let outcome = self
            .run_command(
                cx,
                &StreamName::absence(stream_id),
                idempotency,
                None,
                |m, state| {
                    if !policy::can_report_absence(m, cx.viewer, student) {
                        return Err(ApiError::forbidden());
                    }
                    let state: absences::Absence = Aggregate::fold(state);
                    let facts = absences::ReportFacts {
                        student_class: m.student(student).map(|s| s.class_id),
                        declared: if declared.is_some() {
                            vec![state.clone()]
                        } else {
                            Vec::new()
                        },
                        now: Utc::now(),
                    };
                    let fresh = absences::Absence::default();
                    let base = if declared.is_some() { &fresh } else { &state };
                    let decided = absences::report_absence(base, &cmd, &facts)?;
                    if decided.absence_id != stream_id {
                        // The model saw a declaration the stream no longer has as
                        // live (cancelled meanwhile): decide again on a new stream.
                        return Err(ApiError::Conflict(
                            "the declared absence changed; retry".into(),
                        ));
                    }
                    Ok(decided.events)
                },
            )
            .await?;
        Ok(match first_event(&outcome)? {
            Some(DomainEvent::AbsenceReported(e)) => e.absence_id,
            Some(DomainEvent::DeclaredAbsenceConfirmed(e)) => e.absence_id,
            _ => stream_id,
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
        self.check_rate(cx.viewer, Limited::AbsenceDeclaration)?;
        if !self.read(|m| policy::can_justify_absence(m, cx.viewer, student)) {
            return Err(ApiError::forbidden());
        }
        let cmd = absences::DeclareAbsence {
            absence_id: AbsenceId::new(),
            student_id: student,
            start,
            end,
            reason: reason.to_owned(),
        };
        let id = cmd.absence_id;
        let outcome = self
            .run_command(
                cx,
                &StreamName::absence(id),
                idempotency,
                None,
                |m, state| {
                    let facts = absences::DeclareFacts {
                        student_class: m.student(student).map(|s| s.class_id),
                        now: Utc::now(),
                    };
                    Ok(absences::declare_absence(
                        &Aggregate::fold(state),
                        &cmd,
                        &facts,
                    )?)
                },
            )
            .await?;
        Ok(match first_event(&outcome)? {
            Some(DomainEvent::AbsenceDeclared(e)) => e.absence_id,
            _ => id,
        })
    }

    fn absence_student(&self, id: AbsenceId) -> Option<StudentId> {
        self.read(|m| m.absence(id).map(|a| a.student_id))
    }

    pub async fn justify_absence(
        &self,
        cx: &CommandContext<'_>,
        absence: AbsenceId,
        reason: &str,
    ) -> Result<(), ApiError> {
        self.check_rate(cx.viewer, Limited::AbsenceDeclaration)?;
        let student = self
            .absence_student(absence)
            .ok_or_else(ApiError::forbidden)?;
        if !self.read(|m| policy::can_justify_absence(m, cx.viewer, student)) {
            return Err(ApiError::forbidden());
        }
        let cmd = absences::JustifyAbsence {
            absence_id: absence,
            reason: reason.to_owned(),
        };
        self.run_command(cx, &StreamName::absence(absence), None, None, |_, state| {
            Ok(absences::justify_absence(&Aggregate::fold(state), &cmd)?)
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
        let cmd = absences::ReviewJustification {
            absence_id: absence,
            accept,
            comment: comment.map(str::to_owned),
        };
        self.run_command(cx, &StreamName::absence(absence), None, None, |_, state| {
            Ok(absences::review_justification(
                &Aggregate::fold(state),
                &cmd,
            )?)
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
        let cmd = grades::CreateAssessment {
            assessment_id: AssessmentId::new(),
            class_id: class,
            teacher_id: cx.viewer.person,
            subject: subject.to_owned(),
            title: title.to_owned(),
            date,
            coefficient,
            out_of,
        };
        let id = cmd.assessment_id;
        self.run_command(cx, &StreamName::assessment(id), None, None, |m, state| {
            if !policy::can_teach(m, cx.viewer, class, subject.trim()) {
                return Err(ApiError::forbidden());
            }
            let facts = grades::AssessmentFacts {
                class_exists: m.class(class).is_some(),
            };
            Ok(grades::create_assessment(
                &Aggregate::fold(state),
                &cmd,
                &facts,
            )?)
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
        self.check_rate(cx.viewer, Limited::Grade)?;
        let cmd = grades::RecordGrade {
            assessment_id: assessment,
            student_id: student,
            score,
            status,
        };
        let id = cmd.grade_id();
        let outcome = self
            .run_command(
                cx,
                &StreamName::assessment(assessment),
                idempotency,
                None,
                |m, state| {
                    let owns = m
                        .assessment(assessment)
                        .is_some_and(|a| policy::owns_assessment(cx.viewer, a));
                    if !owns {
                        return Err(ApiError::forbidden());
                    }
                    let facts = grades::GradeFacts {
                        student_class: m.student(student).map(|s| s.class_id),
                    };
                    Ok(grades::record_grade(&Aggregate::fold(state), &cmd, &facts)?)
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
        self.check_rate(cx.viewer, Limited::Grade)?;
        let assessment = self
            .read(|m| {
                let g = m.grade(grade)?;
                m.assessment(g.assessment_id).cloned()
            })
            .filter(|a| policy::owns_assessment(cx.viewer, a))
            .ok_or_else(ApiError::forbidden)?;
        let cmd = grades::CorrectGrade {
            grade_id: grade,
            score,
            status,
            reason: reason.to_owned(),
        };
        let why = reason.trim();
        self.run_command(
            cx,
            &StreamName::assessment(assessment.id),
            None,
            Some(why),
            |_, state| Ok(grades::correct_grade(&Aggregate::fold(state), &cmd)?),
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
        let cmd = homework::AssignHomework {
            homework_id: HomeworkId::new(),
            class_id: class,
            teacher_id: cx.viewer.person,
            subject: subject.to_owned(),
            title: title.to_owned(),
            description: description.to_owned(),
            due,
        };
        let id = cmd.homework_id;
        self.run_command(cx, &StreamName::homework(id), None, None, |m, state| {
            if !policy::can_teach(m, cx.viewer, class, subject.trim()) {
                return Err(ApiError::forbidden());
            }
            let tz = m.zone_of_class(class);
            let facts = homework::HomeworkFacts {
                class_exists: m.class(class).is_some(),
                today: Utc::now().with_timezone(&tz).date_naive(),
            };
            Ok(homework::assign_homework(
                &Aggregate::fold(state),
                &cmd,
                &facts,
            )?)
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
        self.check_rate(cx.viewer, Limited::Message)?;
        let me = cx.viewer.person;
        let cmd = messages::SendMessage {
            message_id: MessageId::new(),
            // Not `unwrap_or_default`: the default id is nil, a new thread needs a fresh one.
            thread_id: match thread {
                Some(t) => t,
                None => ThreadId::new(),
            },
            from: me,
            to: to.to_vec(),
            subject: subject.to_owned(),
            body: body.to_owned(),
        };
        let id = cmd.message_id;
        let outcome = self
            .run_command(
                cx,
                &StreamName::thread(cmd.thread_id),
                idempotency,
                None,
                |m, state| {
                    // Unknown recipients are refused like forbidden ones: whether
                    // an id is a person is not the sender's business.
                    if cmd
                        .to
                        .iter()
                        .any(|r| *r != me && !policy::may_write(m, me, *r))
                    {
                        return Err(ApiError::Forbidden(
                            "one of the recipients is not someone this viewer may write to".into(),
                        ));
                    }
                    let state: messages::Thread = Aggregate::fold(state);
                    if thread.is_some() && !state.exists() {
                        return Err(ApiError::forbidden());
                    }
                    let facts = messages::SendFacts {
                        registered_recipients: cmd
                            .to
                            .iter()
                            .copied()
                            .filter(|p| m.person(*p).is_some())
                            .collect(),
                    };
                    Ok(if thread.is_some() {
                        messages::reply(&state, &cmd, &facts)?
                    } else {
                        messages::start_thread(&state, &cmd, &facts)?
                    })
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
                m.message(message)
                    .filter(|msg| msg.to.contains(&me))
                    .map(|msg| msg.thread_id)
            })
            .ok_or_else(ApiError::forbidden)?;
        let cmd = messages::MarkRead {
            thread_id: thread,
            message_id: message,
            reader: me,
        };
        self.run_command(cx, &StreamName::thread(thread), None, None, |_, state| {
            Ok(messages::mark_read(&Aggregate::fold(state), &cmd)?)
        })
        .await?;
        Ok(())
    }
}

impl App {
    /// closeAccount: the person no longer needs their account from
    /// `effective_on` (they left the establishment). It starts the account
    /// retention period that `registre retention apply` enforces.
    pub async fn close_account(
        &self,
        cx: &CommandContext<'_>,
        person: PersonId,
        effective_on: NaiveDate,
        reason: &str,
    ) -> Result<PersonId, ApiError> {
        let cmd = roster::CloseAccount {
            person_id: person,
            effective_on,
            reason: reason.to_owned(),
        };
        let reason = reason.trim();
        self.run_command(
            cx,
            &StreamName::person(person),
            None,
            Some(reason),
            |m, state| {
                if !policy::can_close_account(m, cx.viewer, person) {
                    return Err(ApiError::forbidden());
                }
                Ok(roster::close_account(&Aggregate::fold(state), &cmd)?)
            },
        )
        .await?;
        tracing::info!(person = %person.0, "account closed");
        Ok(person)
    }
}

/// What the domain needs to know of a person.
fn summary(m: &Model, person: PersonId) -> Option<roster::PersonSummary> {
    m.person(person).map(|p| roster::PersonSummary {
        roles: p.roles.clone(),
        establishment_id: p.establishment_id,
    })
}
