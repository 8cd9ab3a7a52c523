//! Which partition of the log a new stream belongs to (decision 0019): the
//! establishment whose school life it records (grades, absences, homework,
//! conversations...), or the directory: persons, students and guardianships,
//! which cross establishments, and the establishments, classes and teaching
//! assignments every node needs to route a request. Decided when the
//! stream's first event is appended; the stream stays there.
//!
//! One rule ([`partition_of`]) over two sources of facts: the read model (the
//! executor, at append time) and a [`Partitioner`] that keeps only the few
//! links the rule needs (the backfill of logs written before partitions, the
//! demo and the benchmarks' generators, which write without a read model).

use crate::model::{ApplyError, ReadModel};
use registre_domain::communication::AttachedTo;
use registre_domain::{
    AssessmentId, ClassId, DomainEvent, EstablishmentId, PersonId, StudentId, ThreadId,
};
use registre_store::{EventStore, Partition, Position, RecordedEvent, StoreError};
use std::collections::HashMap;

/// The links between entities that decide a partition.
pub trait PartitionFacts {
    fn establishment_uai(&self, id: EstablishmentId) -> Option<&str>;
    fn class_establishment(&self, id: ClassId) -> Option<EstablishmentId>;
    fn assessment_class(&self, id: AssessmentId) -> Option<ClassId>;
    fn student_class(&self, id: StudentId) -> Option<ClassId>;
    fn person_establishment(&self, id: PersonId) -> Option<EstablishmentId>;
    /// The partition of a conversation already started.
    fn thread_partition(&self, id: ThreadId) -> Option<Partition>;
}

/// The partition of the stream that `event` opens. Falls back to the
/// directory when the facts do not know what the event refers to (decisions
/// refuse such commands before they reach the log).
pub fn partition_of(facts: &impl PartitionFacts, event: &DomainEvent) -> Partition {
    use DomainEvent::*;
    let establishment =
        |id: EstablishmentId| facts.establishment_uai(id).map(Partition::establishment);
    let class = |id: ClassId| establishment(facts.class_establishment(id)?);
    let student = |id: StudentId| class(facts.student_class(id)?);
    let assessment = |id: AssessmentId| class(facts.assessment_class(id)?);
    let person = |id: PersonId| establishment(facts.person_establishment(id)?);
    let found = match event {
        // The directory: who is who, and the structure every node needs to
        // route a request (which establishment a class, a student, a
        // teacher's classes belong to).
        EstablishmentCreated(_) | ClassCreated(_) | TeacherAssigned(_) => None,
        PersonRegistered(_) | StudentEnrolled(_) | GuardianLinked(_) => None,
        PersonErased(_) | AccountClosed(_) => None,
        AssessmentCreated(e) => class(e.class_id),
        GradeRecorded(e) => assessment(e.assessment_id),
        GradeCorrected(e) => assessment(e.assessment_id),
        AbsenceReported(e) => student(e.student_id),
        AbsenceDeclared(e) => student(e.student_id),
        DeclaredAbsenceConfirmed(e) => student(e.student_id),
        AbsenceJustified(e) => student(e.student_id),
        JustificationReviewed(e) => student(e.student_id),
        AbsenceCancelled(e) => student(e.student_id),
        HomeworkAssigned(e) => class(e.class_id),
        HomeworkAmended(e) => class(e.class_id),
        HomeworkWithdrawn(e) => class(e.class_id),
        // A conversation lives with the first establishment among its
        // sender and recipients: the school it is about.
        MessageSent(e) => facts.thread_partition(e.thread_id).or_else(|| {
            std::iter::once(&e.from)
                .chain(&e.to)
                .find_map(|p| person(*p))
        }),
        MessageRead(e) => facts.thread_partition(e.thread_id),
        // school day (issue 13): an establishment's motives and holidays are
        // on its (directory) stream, beside its structure.
        CoursePlanned(e) => establishment(e.establishment_id),
        CourseCancelled(e) => class(e.class_id),
        RollCallTaken(e) => class(e.class_id),
        LessonContentRecorded(e) => class(e.class_id),
        AbsenceReasonDefined(_) | HolidaysSet(_) => None,
        AbsenceMotiveGiven(e) => student(e.student_id),
        HomeworkDetailed(e) => class(e.class_id),
        HomeworkMarkedDone(e) => class(e.class_id),
        // evaluation (issue 14)
        PeriodsDefined(e) => establishment(e.establishment_id),
        PeriodClosed(e) => establishment(e.establishment_id),
        PeriodReopened(e) => establishment(e.establishment_id),
        AppreciationWritten(e) => student(e.student_id),
        // communication (issue 16): an upload with its uploader's school
        // (a guardian's is the directory's); a person's notification
        // settings with the person; files are linked inside the stream of
        // what they are attached to, which already has its partition.
        AttachmentUploaded(e) => person(e.uploaded_by),
        AttachmentsLinked(e) => match &e.to {
            AttachedTo::Message { thread_id, .. } => facts.thread_partition(*thread_id),
            AttachedTo::Justification(_) => e.student_id.and_then(student),
            AttachedTo::Homework(_) => None,
        },
        NotificationPreferenceSet(_) | WebPushRegistered(_) | WebPushDropped(_) => None,
        // interop (issue 17): roster events are directory events.
        GuardianUnlinked(_) | TeacherUnassigned(_) | PersonRenamed(_) | ClassRenamed(_) => None,
        SchoolYearStarted(_) | ClassClosed(_) => None,
        // discipline (issue 15)
        IncidentReported(e) => establishment(e.establishment_id),
        PunishmentGiven(e) => student(e.student_id),
        SanctionImposed(e) => establishment(e.establishment_id),
        SanctionErased(e) => student(e.student_id),
    };
    found.unwrap_or_else(Partition::directory)
}

impl PartitionFacts for ReadModel {
    fn establishment_uai(&self, id: EstablishmentId) -> Option<&str> {
        self.establishments.get(&id).map(|e| e.uai.as_str())
    }
    fn class_establishment(&self, id: ClassId) -> Option<EstablishmentId> {
        self.classes.get(&id).map(|c| c.establishment_id)
    }
    fn assessment_class(&self, id: AssessmentId) -> Option<ClassId> {
        self.assessments.get(&id).map(|a| a.class_id)
    }
    fn student_class(&self, id: StudentId) -> Option<ClassId> {
        self.students.get(&id).map(|s| s.class_id)
    }
    fn person_establishment(&self, id: PersonId) -> Option<EstablishmentId> {
        self.persons.get(&id)?.establishment_id
    }
    fn thread_partition(&self, id: ThreadId) -> Option<Partition> {
        let first = self
            .messages
            .get(self.threads.get(&id)?.messages.first()?)?;
        std::iter::once(&first.from)
            .chain(&first.to)
            .find_map(|p| {
                let e = self.person_establishment(*p)?;
                self.establishment_uai(e).map(Partition::establishment)
            })
            .or_else(|| Some(Partition::directory()))
    }
}

impl ReadModel {
    /// The partition of the stream `event` opens (see [`partition_of`]).
    pub fn partition_of(&self, event: &DomainEvent) -> Partition {
        partition_of(self, event)
    }
}

/// Assigns partitions to events in log order without a read model: it keeps
/// each stream's partition and the links [`partition_of`] reads.
#[derive(Debug, Default)]
pub struct Partitioner {
    streams: HashMap<String, Partition>,
    uai: HashMap<EstablishmentId, String>,
    class_establishment: HashMap<ClassId, EstablishmentId>,
    assessment_class: HashMap<AssessmentId, ClassId>,
    student_class: HashMap<StudentId, ClassId>,
    person_establishment: HashMap<PersonId, EstablishmentId>,
    threads: HashMap<ThreadId, Partition>,
}

impl Partitioner {
    pub fn new() -> Self {
        Self::default()
    }

    /// A stream whose partition the log already holds (a partly assigned log).
    pub fn known(&mut self, stream: &str, partition: Partition) {
        self.streams.entry(stream.to_owned()).or_insert(partition);
    }

    /// The partition of `event`, appended to `stream` after everything
    /// assigned so far; then learns the links it creates.
    pub fn assign(&mut self, stream: &str, event: &DomainEvent) -> Partition {
        let partition = match self.streams.get(stream) {
            Some(p) => p.clone(),
            None => {
                let p = partition_of(self, event);
                self.streams.insert(stream.to_owned(), p.clone());
                p
            }
        };
        self.learn(event, &partition);
        partition
    }

    fn learn(&mut self, event: &DomainEvent, partition: &Partition) {
        use DomainEvent::*;
        match event {
            EstablishmentCreated(e) => {
                self.uai
                    .insert(e.establishment_id, e.uai.as_str().to_owned());
            }
            ClassCreated(e) => {
                self.class_establishment
                    .insert(e.class_id, e.establishment_id);
            }
            AssessmentCreated(e) => {
                self.assessment_class.insert(e.assessment_id, e.class_id);
            }
            StudentEnrolled(e) => {
                self.student_class.insert(e.student_id, e.class_id);
            }
            PersonRegistered(e) => {
                if let Some(est) = e.establishment_id {
                    self.person_establishment.insert(e.person_id, est);
                }
            }
            MessageSent(e) => {
                self.threads
                    .entry(e.thread_id)
                    .or_insert_with(|| partition.clone());
            }
            _ => {}
        }
    }
}

impl PartitionFacts for Partitioner {
    fn establishment_uai(&self, id: EstablishmentId) -> Option<&str> {
        self.uai.get(&id).map(String::as_str)
    }
    fn class_establishment(&self, id: ClassId) -> Option<EstablishmentId> {
        self.class_establishment.get(&id).copied()
    }
    fn assessment_class(&self, id: AssessmentId) -> Option<ClassId> {
        self.assessment_class.get(&id).copied()
    }
    fn student_class(&self, id: StudentId) -> Option<ClassId> {
        self.student_class.get(&id).copied()
    }
    fn person_establishment(&self, id: PersonId) -> Option<EstablishmentId> {
        self.person_establishment.get(&id).copied()
    }
    fn thread_partition(&self, id: ThreadId) -> Option<Partition> {
        self.threads.get(&id).cloned()
    }
}

/// The log in order, page by page, each event with the partition the rule
/// gives it.
struct Walk {
    partitioner: Partitioner,
    after: Position,
    page: usize,
    /// Whether a partition the log already holds decides its stream's (the
    /// backfill: keep streams whole) or is only compared (the audit).
    trust_stored: bool,
}

impl Walk {
    fn new(page: usize, trust_stored: bool) -> Self {
        Self {
            partitioner: Partitioner::new(),
            after: 0,
            page: page.max(1),
            trust_stored,
        }
    }

    async fn next_page(
        &mut self,
        store: &dyn EventStore,
    ) -> Result<Option<Vec<(RecordedEvent, Partition)>>, BackfillError> {
        let events = store.read_all(self.after, self.page).await?;
        let Some(last) = events.last() else {
            return Ok(None);
        };
        self.after = last.position;
        let mut out = Vec::with_capacity(events.len());
        for recorded in events {
            let event = DomainEvent::decode(
                &recorded.event_type,
                recorded.schema_version,
                &recorded.data,
            )
            .map_err(|source| ApplyError::Decode {
                position: recorded.position,
                source,
            })?;
            if let (true, Some(p)) = (self.trust_stored, &recorded.partition) {
                self.partitioner.known(&recorded.stream_id, p.clone());
            }
            let partition = self.partitioner.assign(&recorded.stream_id, &event);
            out.push((recorded, partition));
        }
        Ok(Some(out))
    }
}

/// Gives a partition to every event of a log written before partitions
/// existed (migration 0007), from a fold of the log in order; returns how
/// many were set. Idempotent and safe beside writers and other nodes doing
/// the same: the assignment is deterministic and sets only missing ones.
pub async fn backfill(store: &dyn EventStore, page: usize) -> Result<u64, BackfillError> {
    if store.first_unassigned().await?.is_none() {
        return Ok(0);
    }
    let mut walk = Walk::new(page, true);
    let mut set = 0;
    while let Some(events) = walk.next_page(store).await? {
        let missing: Vec<(Position, Partition)> = events
            .into_iter()
            .filter(|(recorded, _)| recorded.partition.is_none())
            .map(|(recorded, partition)| (recorded.position, partition))
            .collect();
        set += store.assign_partitions(&missing).await?;
    }
    Ok(set)
}

/// What `registre audit verify` found of the partitions: the partition is not
/// covered by the hash chain, so the audit recomputes it from the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionReport {
    pub events_checked: u64,
    /// How many events are misplaced (see `misplaced`).
    pub misplaced_total: u64,
    /// The first events whose stored partition is not the rule's: moved, so a node
    /// serving that partition would not see them.
    pub misplaced: Vec<(Position, Option<Partition>, Partition)>,
}

/// Recomputes every event's partition from the log and compares (the first
/// `keep` misplaced events are listed, all are counted).
pub async fn verify(
    store: &dyn EventStore,
    page: usize,
    keep: usize,
    mut progress: impl FnMut(Position),
) -> Result<PartitionReport, BackfillError> {
    let mut walk = Walk::new(page, false);
    let mut report = PartitionReport::default();
    while let Some(events) = walk.next_page(store).await? {
        for (recorded, partition) in events {
            report.events_checked += 1;
            if recorded.partition.as_ref() != Some(&partition) {
                report.misplaced_total += 1;
                if report.misplaced.len() < keep {
                    report
                        .misplaced
                        .push((recorded.position, recorded.partition, partition));
                }
            }
        }
        progress(walk.after);
    }
    Ok(report)
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Decode(#[from] ApplyError),
}
