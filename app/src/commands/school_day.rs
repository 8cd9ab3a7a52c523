//! The school day's commands (issue 13), and the one thing the pipeline
//! lacked for them: a command decided over several streams and appended in
//! one transaction ([`MultiCommand`], [`Executor::run_many`]). A roll call
//! records, confirms and cancels absences on their own streams and records
//! itself on the course's; a weekly plan creates one stream per course.
//! Everything else is a plain [`Command`].

use super::{
    actor, decode_stream, named_idempotency, new_event, now, ApiError, App, Command,
    CommandContext, Executed, Executor,
};
use crate::limits::Limited;
use crate::policy::{school_day as rules, Issuer};
use chrono::{DateTime, Utc};
use registre_domain::school_day::{
    self as day, ChosenBy, CourseSummary, MotiveFacts, MotiveSummary,
};
use registre_domain::{absences, homework, Aggregate};
use registre_domain::{
    AbsenceId, AbsenceReasonId, CourseId, DomainEvent, Role, StreamName, StudentId,
};
use registre_projections::ReadModel as Model;
use registre_store::{AppendRequest, ExpectedVersion, StoreError};
use serde::Serialize;
use std::collections::BTreeMap;

// ---- Several streams, one transaction ------------------------------------------

/// The events of the streams a [`MultiCommand`] read, decoded.
#[derive(Debug, Default)]
pub struct Streams(BTreeMap<String, Vec<DomainEvent>>);

impl Streams {
    /// The aggregate `A` folded from `stream` (empty when it was not read or is new).
    pub fn fold<A: Aggregate>(&self, stream: &StreamName) -> A {
        A::fold(self.0.get(stream.as_str()).into_iter().flatten())
    }
}

/// A command decided over several streams. Like [`Command`], but it names
/// the streams it reads; each event goes to its own stream
/// ([`DomainEvent::stream`]), at the version read, or as a new stream when
/// it was not read. All of them are appended in one transaction.
pub trait MultiCommand: Serialize + Send + Sync {
    /// Never rename one (see [`Command::NAME`]).
    const NAME: &'static str;
    const RATE: Option<Limited> = None;
    /// Whether the stream of the last event (the command's own record, which
    /// carries the idempotency key) is appended first. Otherwise the streams
    /// keep the order of their first events, so that what an event refers
    /// to (an import's new class or person) is appended before it, as the
    /// read model folds the log (interop, issue 17).
    const OWN_RECORD_FIRST: bool = true;
    type Facts: Send + Sync;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool;
    fn facts(&self, m: &Model, now: DateTime<Utc>) -> Self::Facts;
    /// The streams the decision reads.
    fn streams(&self, facts: &Self::Facts) -> Vec<StreamName>;
    fn decide(&self, read: &Streams, facts: &Self::Facts) -> Result<Vec<DomainEvent>, ApiError>;
}

impl Executor<'_> {
    /// Runs a [`MultiCommand`]: the pipeline of [`Executor::run`] over its
    /// streams. The idempotency key is recorded with the stream of the last
    /// event (the command's own record: a roll call's `RollCallTaken`).
    pub async fn run_many<C: MultiCommand>(
        &self,
        cx: &CommandContext<'_>,
        cmd: &C,
        idempotency_key: Option<&str>,
    ) -> Result<Executed<C::Facts>, ApiError> {
        let idempotency = idempotency_key
            .map(|key| named_idempotency(cx.issuer, key, C::NAME, cmd))
            .transpose()?;
        let actor = cx.issuer.viewer().map(actor);
        let mut attempt = 0;
        loop {
            self.reach_head().await?;
            let now = now();
            let Some(facts) = self.read(|m| cmd.authorize(m, cx.issuer).then(|| cmd.facts(m, now)))
            else {
                return Err(self
                    .refusal(|| cmd.streams(&self.read(|m| cmd.facts(m, now))))
                    .await);
            };
            if let (0, Some(idem)) = (attempt, &idempotency) {
                if let Some(original) = self.store.find_idempotent(&idem.key).await? {
                    // The answer is read from the model: the node folding
                    // the original's partition gives it (cluster, issue 12).
                    if let Some(p) = original.events.first().and_then(|e| e.partition.as_ref()) {
                        self.check_held(p)?;
                    }
                    let events = self.replay(original, idem).await?;
                    return Ok(Executed { events, facts });
                }
            }
            let mut versions = BTreeMap::new();
            let mut partitions = BTreeMap::new();
            let mut read = Streams::default();
            for stream in cmd.streams(&facts) {
                let recorded = self.store.read_stream(stream.as_str(), 0).await?;
                versions.insert(
                    stream.as_str().to_owned(),
                    recorded.last().map_or(0, |e| e.stream_version),
                );
                if let Some(p) = recorded.first().and_then(|e| e.partition.clone()) {
                    self.check_held(&p)?;
                    partitions.insert(stream.as_str().to_owned(), p);
                }
                read.0
                    .insert(stream.into_string(), decode_stream(&recorded)?);
            }
            let events = cmd.decide(&read, &facts)?;
            if events.is_empty() {
                return Ok(Executed { events, facts });
            }
            let key = idempotency.as_ref().map(|i| i.key.clone());
            let mut requests: Vec<AppendRequest> = Vec::new();
            for e in &events {
                let stream = e.stream().into_string();
                let event = new_event(
                    e,
                    actor.clone(),
                    cx.correlation,
                    key.clone(),
                    e.reason().map(str::to_owned),
                );
                match requests.iter_mut().find(|r| r.stream_id == stream) {
                    Some(r) => r.events.push(event),
                    None => requests.push(AppendRequest {
                        partition: {
                            let p = self.stream_partition(partitions.get(&stream), e);
                            self.check_held(&p)?;
                            p
                        },
                        expected: match versions.get(&stream) {
                            Some(v) if *v > 0 => ExpectedVersion::Exact(*v),
                            _ => ExpectedVersion::NoStream,
                        },
                        stream_id: stream,
                        events: vec![event],
                        idempotency: None,
                    }),
                }
            }
            let own = if C::OWN_RECORD_FIRST {
                events.last().map(|e| e.stream().into_string())
            } else {
                None
            };
            if let Some(last) = own {
                if let Some(i) = requests.iter().position(|r| r.stream_id == last) {
                    let mut own = requests.remove(i);
                    own.idempotency = idempotency.clone();
                    requests.insert(0, own);
                }
            }
            let appended = if requests.len() == 1 {
                let request = requests.remove(0);
                self.store.append(request).await.map(|o| o.last_position())
            } else {
                self.store.append_batch(requests).await.map(|outcomes| {
                    outcomes
                        .iter()
                        .map(|o| o.last_position())
                        .max()
                        .unwrap_or_default()
                })
            };
            match appended {
                Ok(position) => {
                    self.reach(position).await?;
                    return Ok(Executed { events, facts });
                }
                Err(StoreError::Conflict { .. }) if attempt < self.conflict_retries => {
                    attempt += 1;
                    tracing::debug!(
                        command = C::NAME,
                        attempt,
                        "expected-version conflict; deciding again"
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl App {
    /// [`App::execute`] for a [`MultiCommand`].
    pub async fn execute_many<C: MultiCommand>(
        &self,
        cx: &CommandContext<'_>,
        cmd: &C,
        idempotency_key: Option<&str>,
    ) -> Result<Executed<C::Facts>, ApiError> {
        if let (Some(kind), Some(viewer)) = (C::RATE, cx.issuer.viewer()) {
            self.check_rate(viewer, kind)?;
        }
        self.executor().run_many(cx, cmd, idempotency_key).await
    }
}

// ---- Timetable -------------------------------------------------------------------

fn plan_facts(
    m: &Model,
    class: registre_domain::ClassId,
    teacher: registre_domain::PersonId,
    subject: &str,
    now: DateTime<Utc>,
) -> day::PlanFacts {
    let establishment = m.establishment_of_class(class);
    day::PlanFacts {
        establishment,
        teacher_assigned: m.has_role(teacher, Role::Teacher)
            && m.teaches(teacher, class, subject.trim()),
        zone: establishment
            .and_then(|e| m.establishment(e))
            .map(|e| e.time_zone)
            .unwrap_or_default(),
        holidays: establishment
            .map(|e| m.holidays_of(e).to_vec())
            .unwrap_or_default(),
        now,
        class_closed: super::interop::closed_class(m, class),
    }
}

impl Command for day::PlanCourse {
    const NAME: &'static str = "planCourse";
    type State = day::Course;
    type Facts = day::PlanFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| rules::can_plan_course(m, v, self.class_id))
    }
    fn facts(&self, m: &Model, now: DateTime<Utc>) -> Self::Facts {
        plan_facts(m, self.class_id, self.teacher_id, &self.subject, now)
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::course(self.course_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(day::plan_course(state, self, facts)?)
    }
}

impl MultiCommand for day::PlanWeeklyCourses {
    const NAME: &'static str = "planWeeklyCourses";
    type Facts = day::PlanFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| rules::can_plan_course(m, v, self.class_id))
    }
    fn facts(&self, m: &Model, now: DateTime<Utc>) -> Self::Facts {
        plan_facts(m, self.class_id, self.teacher_id, &self.subject, now)
    }
    fn streams(&self, _: &Self::Facts) -> Vec<StreamName> {
        // Every course is new: its stream must not exist.
        Vec::new()
    }
    fn decide(&self, _: &Streams, facts: &Self::Facts) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(day::plan_weekly_courses(self, facts)?)
    }
}

impl Command for day::CancelCourse {
    const NAME: &'static str = "cancelCourse";
    type State = day::Course;
    type Facts = ();

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| rules::can_cancel_course(m, v, self.course_id))
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::course(self.course_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(day::cancel_course(state, self)?)
    }
    fn reason(&self) -> Option<&str> {
        Some(&self.reason)
    }
}

impl Command for day::RecordLessonContent {
    const NAME: &'static str = "recordLessonContent";
    type State = day::Course;
    type Facts = ();

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| rules::can_record_lesson_content(m, v, self.course_id))
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::course(self.course_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(day::record_lesson_content(state, self)?)
    }
}

// ---- Roll call -------------------------------------------------------------------

/// What a roll call reads in the model before its streams.
#[derive(Clone, Debug, Default)]
pub struct RollCallPlan {
    pub class_students: std::collections::BTreeSet<StudentId>,
    /// Live declarations of the listed absent students overlapping the course.
    pub declared: Vec<AbsenceId>,
    /// The absences the course's current call lists.
    pub recorded: Vec<AbsenceId>,
    pub now: DateTime<Utc>,
}

impl MultiCommand for day::TakeRollCall {
    const NAME: &'static str = "takeRollCall";
    const RATE: Option<Limited> = Some(Limited::RollCall);
    type Facts = RollCallPlan;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| rules::can_take_roll_call(m, v, self.course_id))
    }
    fn facts(&self, m: &Model, now: DateTime<Utc>) -> Self::Facts {
        let Some(course) = m.course(self.course_id) else {
            return RollCallPlan {
                now,
                ..RollCallPlan::default()
            };
        };
        let declared = self
            .absent
            .iter()
            .flat_map(|s| m.absences_of(*s))
            .filter(|a| {
                a.declared_in_advance
                    && !m.is_absence_cancelled(a.id)
                    && a.start < course.end
                    && course.start < a.end
            })
            .map(|a| a.id)
            .collect();
        RollCallPlan {
            class_students: m
                .class(course.class_id)
                .map(|c| c.students.clone())
                .unwrap_or_default(),
            declared,
            recorded: course
                .roll_call
                .iter()
                .flat_map(|r| r.entries.iter().map(|e| e.absence_id))
                .collect(),
            now,
        }
    }
    fn streams(&self, facts: &Self::Facts) -> Vec<StreamName> {
        let mut streams = vec![StreamName::course(self.course_id)];
        streams.extend(
            facts
                .recorded
                .iter()
                .chain(&facts.declared)
                .map(|a| StreamName::absence(*a)),
        );
        streams.sort();
        streams.dedup();
        streams
    }
    fn decide(&self, read: &Streams, facts: &Self::Facts) -> Result<Vec<DomainEvent>, ApiError> {
        let absence = |id: &AbsenceId| read.fold::<absences::Absence>(&StreamName::absence(*id));
        let course = read.fold::<day::Course>(&StreamName::course(self.course_id));
        Ok(day::take_roll_call(
            &course,
            self,
            &day::RollCallFacts {
                class_students: facts.class_students.clone(),
                declared: facts.declared.iter().map(absence).collect(),
                recorded: facts.recorded.iter().map(absence).collect(),
                now: facts.now,
            },
        )?)
    }
}

// ---- Motives and holidays ---------------------------------------------------------

impl Command for day::DefineAbsenceReason {
    const NAME: &'static str = "defineAbsenceReason";
    type State = day::Calendar;
    type Facts = ();

    fn authorize(&self, _: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| rules::can_define_absence_reason(v, self.establishment_id))
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::establishment(self.establishment_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(day::define_absence_reason(state, self)?)
    }
}

impl Command for day::SetHolidays {
    const NAME: &'static str = "setHolidays";
    type State = day::Calendar;
    type Facts = ();

    fn authorize(&self, _: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| rules::can_set_holidays(v, self.establishment_id))
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::establishment(self.establishment_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(day::set_holidays(state, self)?)
    }
}

/// An absence command with the establishment's motive the caller chose:
/// `reportAbsence`, `declareAbsence` and `justifyAbsence` under their own
/// names (the serde form without a motive is the command's own, so the
/// fingerprints of keys stored before motives existed still match).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Motivated<C> {
    #[serde(flatten)]
    pub command: C,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub motive_id: Option<AbsenceReasonId>,
}

/// An absence command that may carry a motive.
pub trait WithMotive: Command {
    /// Who chooses the motive with this command.
    const CHOSEN_BY: ChosenBy;
    /// The student whose absence it is.
    fn student(&self, m: &Model) -> Option<StudentId>;
}

impl WithMotive for absences::ReportAbsence {
    const CHOSEN_BY: ChosenBy = ChosenBy::Staff;
    fn student(&self, _: &Model) -> Option<StudentId> {
        Some(self.student_id)
    }
}

impl WithMotive for absences::DeclareAbsence {
    const CHOSEN_BY: ChosenBy = ChosenBy::Guardian;
    fn student(&self, _: &Model) -> Option<StudentId> {
        Some(self.student_id)
    }
}

impl WithMotive for absences::JustifyAbsence {
    const CHOSEN_BY: ChosenBy = ChosenBy::Guardian;
    fn student(&self, m: &Model) -> Option<StudentId> {
        m.absence(self.absence_id).map(|a| a.student_id)
    }
}

/// A justification with documents (communication, issue 16) may carry a motive too.
impl WithMotive for crate::commands::communication::JustifyWithDocuments {
    const CHOSEN_BY: ChosenBy = ChosenBy::Guardian;
    fn student(&self, m: &Model) -> Option<StudentId> {
        self.command.justification.student(m)
    }
}

impl<C: WithMotive> Command for Motivated<C> {
    const NAME: &'static str = C::NAME;
    const RATE: Option<Limited> = C::RATE;
    type State = C::State;
    type Facts = (C::Facts, MotiveFacts);

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        self.command.authorize(m, by)
    }
    fn facts(&self, m: &Model, now: DateTime<Utc>) -> Self::Facts {
        let motive = MotiveFacts {
            motive: self
                .motive_id
                .and_then(|id| m.motive(id))
                .map(|mo| MotiveSummary {
                    establishment_id: mo.establishment_id,
                    usable_by_guardians: mo.usable_by_guardians,
                }),
            establishment: self
                .command
                .student(m)
                .and_then(|s| m.establishment_of_student(s)),
        };
        (self.command.facts(m, now), motive)
    }
    fn stream(&self, facts: &Self::Facts) -> StreamName {
        self.command.stream(&facts.0)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        let mut events = self.command.decide(state, &facts.0)?;
        let subject = events.iter().find_map(|e| match e {
            DomainEvent::AbsenceReported(e) => Some((e.absence_id, e.student_id)),
            DomainEvent::AbsenceDeclared(e) => Some((e.absence_id, e.student_id)),
            DomainEvent::DeclaredAbsenceConfirmed(e) => Some((e.absence_id, e.student_id)),
            DomainEvent::AbsenceJustified(e) => Some((e.absence_id, e.student_id)),
            _ => None,
        });
        if let Some((absence, student)) = subject {
            let given = day::give_motive(absence, student, self.motive_id, &facts.1, C::CHOSEN_BY)?;
            events.extend(given);
        } else if self.motive_id.is_some() {
            // Nothing else to write (a report within a declaration already
            // confirmed): the motive is still checked, and not written alone.
            let nobody = (AbsenceId::default(), StudentId::default());
            day::give_motive(nobody.0, nobody.1, self.motive_id, &facts.1, C::CHOSEN_BY)?;
        }
        Ok(events)
    }
    fn reason(&self) -> Option<&str> {
        self.command.reason()
    }
}

// ---- Homework follow-up -------------------------------------------------------------

/// `assignHomework` given in a course, with an estimated time (same name
/// and, without them, the same serde form as the plain command).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InCourse {
    /// The entry, with the files joined to it (communication, issue 16).
    #[serde(flatten)]
    pub assign: registre_domain::communication::AssignHomework,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub course_id: Option<CourseId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated_minutes: Option<i64>,
}

impl Command for InCourse {
    const NAME: &'static str = homework::AssignHomework::NAME;
    type State = homework::Homework;
    type Facts = (
        registre_domain::communication::HomeworkFacts,
        Option<CourseSummary>,
    );

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        self.assign.authorize(m, by)
    }
    fn facts(&self, m: &Model, now: DateTime<Utc>) -> Self::Facts {
        let course = self
            .course_id
            .and_then(|c| m.course(c))
            .map(|c| CourseSummary {
                class_id: c.class_id,
                subject: c.subject.clone(),
                cancelled: c.cancelled(),
            });
        (self.assign.facts(m, now), course)
    }
    fn stream(&self, facts: &Self::Facts) -> StreamName {
        self.assign.stream(&facts.0)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        let detail = day::detail_new_homework(
            &self.assign.homework,
            self.course_id,
            self.estimated_minutes,
            facts.1.as_ref(),
        )?;
        let mut events = self.assign.decide(state, &facts.0)?;
        events.extend(detail);
        Ok(events)
    }
}

impl Command for day::AmendCourseHomework {
    const NAME: &'static str = "amendHomework";
    type State = homework::Homework;
    type Facts = day::AmendDetailFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| rules::can_change_homework(m, v, self.homework_id))
    }
    fn facts(&self, m: &Model, now: DateTime<Utc>) -> Self::Facts {
        let entry = m.homework_entry(self.homework_id);
        let details = m.homework_details(self.homework_id);
        day::AmendDetailFacts {
            today: now
                .with_timezone(
                    &entry
                        .map(|h| m.zone_of_class(h.class_id))
                        .unwrap_or_default(),
                )
                .date_naive(),
            course_id: details.and_then(|d| d.course_id),
            estimated_minutes: details.and_then(|d| d.estimated_minutes),
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::homework(self.homework_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(day::amend_course_homework(state, self, facts)?)
    }
    fn reason(&self) -> Option<&str> {
        Some(&self.reason)
    }
}

impl Command for homework::WithdrawHomework {
    const NAME: &'static str = "withdrawHomework";
    type State = homework::Homework;
    type Facts = ();

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| rules::can_change_homework(m, v, self.homework_id))
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::homework(self.homework_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(homework::withdraw_homework(state, self)?)
    }
    fn reason(&self) -> Option<&str> {
        Some(&self.reason)
    }
}

impl Command for day::MarkHomeworkDone {
    const NAME: &'static str = "markHomeworkDone";
    type State = homework::Homework;
    type Facts = ();

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| rules::can_mark_homework_done(m, v, self.homework_id, self.student_id))
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::homework(self.homework_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(day::mark_homework_done(state, self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fingerprint;
    use uuid::Uuid;

    /// Keys stored before motives existed were fingerprinted without them:
    /// a report without a motive must keep the plain command's fingerprint.
    #[test]
    fn a_command_without_a_motive_keeps_its_fingerprint() {
        let report = absences::ReportAbsence {
            absence_id: AbsenceId::from_uuid(Uuid::from_u128(1)),
            student_id: StudentId::from_uuid(Uuid::from_u128(5)),
            kind: registre_domain::AbsenceKind::Absence,
            start: DateTime::<Utc>::MIN_UTC,
            end: DateTime::<Utc>::MAX_UTC,
            minutes_late: None,
        };
        let plain = fingerprint(&report).expect("fingerprint");
        let wrapped = Motivated {
            command: report.clone(),
            motive_id: None,
        };
        assert_eq!(fingerprint(&wrapped).expect("fingerprint"), plain);
        let with_motive = Motivated {
            command: report,
            motive_id: Some(AbsenceReasonId::from_uuid(Uuid::from_u128(9))),
        };
        assert_ne!(fingerprint(&with_motive).expect("fingerprint"), plain);
    }
}
