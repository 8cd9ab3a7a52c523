//! The read model's state and its fold: one in-memory structure, updated event
//! by event, whose checkpoint (the last applied log position) is a field of the
//! state itself. A snapshot of the struct is therefore always consistent: it
//! cannot hold an event's effect without also holding its position, so a
//! restart from it neither applies an event twice nor skips one.
//!
//! Every map is a `BTreeMap` keyed by a typed id: the JSON form is stable (golden
//! snapshots diff cleanly) and two models folded from the same log compare equal.
//! Events that reference something the model does not know (a grade for an
//! unknown assessment, a read receipt for an unknown message) are recorded in
//! the audit index and otherwise ignored: the domain refuses such commands, and
//! a fold must never panic on the log it is given.

use crate::follower::LoggedEvent;
use crate::slice::Aside;
use chrono::{DateTime, NaiveDate, Utc};
use registre_domain::codec::DecodeError;
use registre_domain::personal;
use registre_domain::{
    AbsenceId, AbsenceKind, AssessmentId, ClassId, DomainEvent, EstablishmentId, GradeId,
    GradeStatus, HomeworkId, JustificationState, MessageId, PersonId, Role, StudentId, ThreadId,
    TimeZone,
};
use registre_store::{Position, RecordedEvent};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// Why an event could not be applied: it does not decode (the one way a
/// stored event fails, [`LoggedEvent::decode`]). The model, and every
/// consumer of the node's follower, is left at the event before.
#[derive(Debug, Error)]
pub enum ApplyError {
    #[error("event at position {position} does not decode: {source}")]
    Decode {
        position: Position,
        #[source]
        source: DecodeError,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Establishment {
    pub id: EstablishmentId,
    pub uai: String,
    pub name: String,
    pub time_zone: TimeZone,
    /// In creation order.
    pub classes: Vec<ClassId>,
    // interop (issue 17)
    /// The school year the establishment last started (`startSchoolYear`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school_year: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchoolClass {
    pub id: ClassId,
    pub establishment_id: EstablishmentId,
    pub name: String,
    /// Students currently enrolled in this class.
    pub students: BTreeSet<StudentId>,
    // interop (issue 17)
    /// Set when the class belongs to a past school year: read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<ClosedClass>,
}

/// A class of a past school year (interop, issue 17): its year and who was
/// in it when it closed, kept after they move to the next year's classes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClosedClass {
    pub year: i32,
    pub students: BTreeSet<StudentId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub id: PersonId,
    pub external_id: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub establishment_id: Option<EstablishmentId>,
    #[serde(with = "crate::compact_time::instant")]
    pub registered_at: DateTime<Utc>,
    /// The day their account stopped being needed (`AccountClosed`): the
    /// retention period of their data runs from it. Left out of the JSON
    /// when absent so that views and snapshots of open accounts are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_closed_on: Option<NaiveDate>,
    /// Their personal text was crypto-shredded (`PersonErased`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Student {
    pub id: StudentId,
    pub person_id: PersonId,
    pub class_id: ClassId,
    pub guardians: BTreeSet<PersonId>,
}

/// A teacher teaches a subject to a class.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Teaching {
    pub class_id: ClassId,
    pub subject: String,
    pub teacher_id: PersonId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment {
    pub id: AssessmentId,
    pub class_id: ClassId,
    /// The owner: only they record and correct its grades.
    pub teacher_id: PersonId,
    pub subject: String,
    pub title: String,
    #[serde(with = "crate::compact_time::day")]
    pub date: NaiveDate,
    pub coefficient: f64,
    pub out_of: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Grade {
    pub id: GradeId,
    pub assessment_id: AssessmentId,
    pub student_id: StudentId,
    /// The current value: a correction replaces it (the audit trail keeps the old one).
    pub score: Option<f64>,
    pub status: GradeStatus,
    /// When and by whom the current value was recorded (the correction's, if any).
    #[serde(with = "crate::compact_time::instant")]
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: PersonId,
    pub corrections: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Absence {
    pub id: AbsenceId,
    pub student_id: StudentId,
    pub kind: AbsenceKind,
    #[serde(with = "crate::compact_time::instant")]
    pub start: DateTime<Utc>,
    #[serde(with = "crate::compact_time::instant")]
    pub end: DateTime<Utc>,
    pub minutes_late: Option<u32>,
    pub state: JustificationState,
    /// The guardian's latest reason (declaration or justification).
    pub reason: Option<String>,
    pub review_comment: Option<String>,
    /// Announced by a guardian before the roll call.
    pub declared_in_advance: bool,
    /// For a declared absence: the roll call found the student absent.
    pub confirmed: bool,
    /// The actor of the first event; `None` for a system import.
    pub reported_by: Option<PersonId>,
    #[serde(with = "crate::compact_time::instant")]
    pub reported_at: DateTime<Utc>,
    /// Position of the event that created it (subscriptions resume from it).
    pub position: Position,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Homework {
    pub id: HomeworkId,
    pub class_id: ClassId,
    pub teacher_id: PersonId,
    pub subject: String,
    pub title: String,
    pub description: String,
    #[serde(with = "crate::compact_time::day")]
    pub due: NaiveDate,
    #[serde(with = "crate::compact_time::day")]
    pub assigned_on: NaiveDate,
    #[serde(with = "crate::compact_time::instant")]
    pub assigned_at: DateTime<Utc>,
    #[serde(with = "crate::compact_time::optional_instant")]
    pub amended_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: MessageId,
    pub thread_id: ThreadId,
    pub from: PersonId,
    pub to: Vec<PersonId>,
    pub subject: String,
    pub body: String,
    #[serde(with = "crate::compact_time::instant")]
    pub sent_at: DateTime<Utc>,
    /// First read receipt of each recipient.
    pub read_at: BTreeMap<PersonId, DateTime<Utc>>,
    pub position: Position,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thread {
    pub id: ThreadId,
    /// In log order.
    pub messages: Vec<MessageId>,
    /// Senders and recipients of any message of the thread.
    pub participants: BTreeSet<PersonId>,
}

/// The whole read model of one node. Queries are methods (see the `views`,
/// `teacher` and `stats` modules); [`ReadModel::apply`] is the only writer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadModel {
    /// Last applied log position (0: nothing applied).
    pub(crate) position: Position,
    /// See [`GradeFiguresMovedAt`].
    #[serde(skip)]
    pub(crate) grade_figures_moved_at: GradeFiguresMovedAt,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) establishments: BTreeMap<EstablishmentId, Establishment>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) classes: BTreeMap<ClassId, SchoolClass>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) persons: BTreeMap<PersonId, Person>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) person_by_external_id: BTreeMap<String, PersonId>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) students: BTreeMap<StudentId, Student>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) student_by_person: BTreeMap<PersonId, StudentId>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) children: BTreeMap<PersonId, BTreeSet<StudentId>>,
    /// Each student's classes, with the position of the enrolment: what a
    /// partition's fold and a slice read of the directory is the class a
    /// student was in at an event's position (decision 0022).
    #[serde(default)]
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) enrolments: BTreeMap<StudentId, Vec<(Position, ClassId)>>,
    #[serde(deserialize_with = "crate::sorted::set")]
    pub(crate) teachings: BTreeSet<Teaching>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) assessments: BTreeMap<AssessmentId, Assessment>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) assessments_by_class: BTreeMap<ClassId, BTreeSet<AssessmentId>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) grades: BTreeMap<GradeId, Grade>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) grades_by_student: BTreeMap<StudentId, BTreeSet<GradeId>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) grades_by_assessment: BTreeMap<AssessmentId, BTreeSet<GradeId>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) absences: BTreeMap<AbsenceId, Absence>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) absences_by_student: BTreeMap<StudentId, BTreeSet<AbsenceId>>,
    /// With the establishment whose partition cancelled it (`None`: the
    /// directory), so that the tombstone stays in that partition's slice.
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) cancelled_absences: BTreeMap<AbsenceId, Option<EstablishmentId>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) homework: BTreeMap<HomeworkId, Homework>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) homework_by_class: BTreeMap<ClassId, BTreeSet<HomeworkId>>,
    /// With the establishment whose partition withdrew it (as above).
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) withdrawn_homework: BTreeMap<HomeworkId, Option<EstablishmentId>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) messages: BTreeMap<MessageId, Message>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) threads: BTreeMap<ThreadId, Thread>,
    /// Messages received by each person, in log order.
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) received: BTreeMap<PersonId, Vec<MessageId>>,
    /// Messages sent by each person, in log order.
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) sent: BTreeMap<PersonId, Vec<MessageId>>,
    /// Audit index: the log positions of the directory's events about each
    /// person (those of an establishment's partition are in `audit_in`).
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) audit: BTreeMap<PersonId, Vec<Position>>,
    /// The audit index of each establishment's partition: an index spanning
    /// partitions, split so that each partition's slice holds its own.
    #[serde(default)]
    #[serde(deserialize_with = "crate::sorted::map_of_maps")]
    pub(crate) audit_in: BTreeMap<EstablishmentId, BTreeMap<PersonId, Vec<Position>>>,
    // discipline (issue 15); absent from the JSON while empty.
    #[serde(
        default,
        skip_serializing_if = "crate::discipline::Discipline::is_empty"
    )]
    pub(crate) discipline: crate::discipline::Discipline,
    // school day (issue 13)
    /// The timetable, roll calls, motives, holidays and homework follow-up.
    #[serde(default)]
    pub(crate) school_day: crate::school_day::SchoolDay,
    /// Periods and appreciations (evaluation, issue 14).
    #[serde(
        default,
        skip_serializing_if = "crate::evaluation::Evaluation::is_empty"
    )]
    pub(crate) evaluation: crate::evaluation::Evaluation,
    // communication (issue 16)
    #[serde(default)]
    pub(crate) communication: crate::communication::Communication,
}

/// Where the model keeps the text of a personal field the domain declares,
/// so that erasure can blank it (see [`ReadModel::erase`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kept {
    /// `Person::display_name` of the subject.
    PersonName,
    /// `Message::subject` of the messages the subject sent.
    SentSubject,
    /// `Message::body` of the messages the subject sent.
    SentBody,
    /// `Absence::reason` of the absences of the subject's student record.
    AbsenceReason,
    /// `Absence::review_comment` of the absences of the subject's student record.
    ReviewComment,
    /// `Punishment::reason` of the punishments of the subject's student record.
    PunishmentReason,
    /// Text sealed with a record's own key (an incident's, a sanction's):
    /// no person's erasure reaches it; the record's own erasure does
    /// (`SanctionErased`).
    OwnKey,
    /// The report cards' appreciations of the subject's student record
    /// (evaluation, issue 14).
    Appreciation,
    /// Attachment names, addresses, push subscriptions (issue 16): see
    /// `Communication::erase`.
    Communication,
    /// The model does not keep that text (grade corrections' and departures'
    /// reasons, cancelled absences), or the field is not one it knows: a
    /// test requires every declared personal field to be placed.
    Nowhere,
}

fn kept(event_type: &str, field: &str) -> Kept {
    match (event_type, field) {
        ("PersonRegistered", "display_name") | ("PersonRenamed", "display_name") => {
            Kept::PersonName
        }
        ("MessageSent", "subject") => Kept::SentSubject,
        ("MessageSent", "body") => Kept::SentBody,
        ("AbsenceDeclared" | "AbsenceJustified", "reason") => Kept::AbsenceReason,
        ("JustificationReviewed", "comment") => Kept::ReviewComment,
        // discipline (issue 15)
        ("PunishmentGiven", "reason") => Kept::PunishmentReason,
        ("IncidentReported", "place" | "description") | ("SanctionImposed", "reason") => {
            Kept::OwnKey
        }
        ("AppreciationWritten", "text") => Kept::Appreciation,
        // communication (issue 16)
        ("AttachmentUploaded", "name")
        | ("NotificationPreferenceSet", "email")
        | ("WebPushRegistered", "endpoint" | "p256dh" | "auth") => Kept::Communication,
        _ => Kept::Nowhere,
    }
}

/// Declared personal fields that the model does not keep: the reason is in
/// the event only (and the audit trail reads it from the log, through the
/// vault). Listed so that a newly declared field must be placed, here or in
/// [`kept`].
#[cfg(test)]
const NOT_KEPT: &[(&str, &str)] = &[
    ("GradeCorrected", "reason"),
    ("AbsenceCancelled", "reason"),
    ("AccountClosed", "reason"),
    // The text an appreciation replaced: in the event only (the audit trail).
    ("AppreciationWritten", "previous"),
];

/// The first bytes of a zstd frame: how a compressed snapshot is told from
/// the plain JSON ones written before (which start with `{`).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Fast over small: level 1 already shrinks the JSON about tenfold and costs
/// little next to serializing it.
const SNAPSHOT_ZSTD_LEVEL: i32 = 1;

/// The people an event is about, students mapped to their person by
/// `student_person` (the roster as it was at the event), plus the teacher of
/// an amended or withdrawn homework entry (`model` holds the entry).
fn concerned_with(
    event: &DomainEvent,
    student_person: impl Fn(StudentId) -> Option<PersonId>,
    model: &ReadModel,
) -> Vec<PersonId> {
    let (mut people, students) = event.people_concerned();
    people.extend(students.iter().filter_map(|s| student_person(*s)));
    let homework = match event {
        DomainEvent::HomeworkAmended(e) => Some(e.homework_id),
        DomainEvent::HomeworkWithdrawn(e) => Some(e.homework_id),
        _ => None,
    };
    people.extend(
        homework
            .and_then(|h| model.homework.get(&h))
            .map(|h| h.teacher_id),
    );
    people.sort();
    people.dedup();
    people
}

/// What [`ReadModel::grade_figures_version`] answers. A hint for caches kept
/// beside one model instance, not part of the state: never saved, and equal
/// in every model, so that a model compares equal to its snapshot.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct GradeFiguresMovedAt(pub(crate) Position);

impl PartialEq for GradeFiguresMovedAt {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// Whether `event` may change what is computed from grades, assessments,
/// enrolments and periods ([`ReadModel::grade_figures_version`]). Listed by
/// what cannot: a kind of event added later moves the figures until it is
/// shown not to, so that a cache errs on the side of recomputing.
fn moves_grade_figures(event: &DomainEvent) -> bool {
    !matches!(
        event,
        DomainEvent::AbsenceReported(_)
            | DomainEvent::AbsenceDeclared(_)
            | DomainEvent::DeclaredAbsenceConfirmed(_)
            | DomainEvent::AbsenceJustified(_)
            | DomainEvent::JustificationReviewed(_)
            | DomainEvent::AbsenceCancelled(_)
            | DomainEvent::AbsenceMotiveGiven(_)
            | DomainEvent::RollCallTaken(_)
            | DomainEvent::CoursePlanned(_)
            | DomainEvent::CourseCancelled(_)
            | DomainEvent::LessonContentRecorded(_)
            | DomainEvent::HomeworkAssigned(_)
            | DomainEvent::HomeworkAmended(_)
            | DomainEvent::HomeworkWithdrawn(_)
            | DomainEvent::HomeworkDetailed(_)
            | DomainEvent::HomeworkMarkedDone(_)
            | DomainEvent::MessageSent(_)
            | DomainEvent::MessageRead(_)
            | DomainEvent::AttachmentUploaded(_)
            | DomainEvent::AttachmentsLinked(_)
            | DomainEvent::NotificationPreferenceSet(_)
            | DomainEvent::WebPushRegistered(_)
            | DomainEvent::WebPushDropped(_)
            | DomainEvent::IncidentReported(_)
            | DomainEvent::PunishmentGiven(_)
            | DomainEvent::SanctionImposed(_)
            | DomainEvent::SanctionErased(_)
    )
}

/// What the fold needs from an event's envelope.
#[derive(Clone, Copy, Debug)]
struct Envelope {
    position: Position,
    recorded_at: DateTime<Utc>,
    actor: Option<PersonId>,
}

/// The largest decompression buffer a thread keeps between snapshot rows.
const PLAIN_KEPT: usize = 256 << 20;

impl ReadModel {
    /// Name of the projection: the snapshot key.
    pub const NAME: &'static str = "read_model";
    /// Bump whenever the fold or the state's shape changes: a snapshot of
    /// another version is discarded and the model is rebuilt from the log.
    /// 3: the usage indicators left the model (their own projection, decision 0010).
    /// 4: the school day, evaluation, discipline and communication parts.
    /// 5: slices by partition (decision 0022): enrolments, the audit index
    /// split by partition, tombstones with their partition.
    /// 6: instants and days as numbers in the binary snapshot (decision 0025).
    pub const VERSION: u32 = 6;

    /// An empty model (position 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Restores a model from its snapshot bytes: zstd-compressed
    /// MessagePack (decision 0022) or JSON, or plain JSON as snapshots were
    /// written before compression.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        if !bytes.starts_with(&ZSTD_MAGIC) {
            return serde_json::from_slice(bytes);
        }
        // Decompressed into this thread's buffer, kept from one row to the
        // next: a fresh buffer grown by doubling for every row was a tenth
        // of a 10^7-event start, the kernel zeroing the pages it faulted in.
        thread_local! {
            static PLAIN: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        PLAIN.with(|plain| {
            let mut plain = plain.borrow_mut();
            plain.clear();
            zstd::stream::copy_decode(bytes, &mut *plain).map_err(serde_json::Error::io)?;
            // A JSON model is an object; MessagePack's map never starts with `{`.
            let model = if plain.first() == Some(&b'{') {
                serde_json::from_slice(&plain)
            } else {
                rmp_serde::from_slice(&plain)
                    .map_err(|e| serde_json::Error::io(std::io::Error::other(e)))
            };
            // A buffer far larger than a row needs is not kept for good.
            if plain.capacity() > PLAIN_KEPT {
                *plain = Vec::new();
            }
            model
        })
    }

    /// The snapshot bytes of this model, position included: its MessagePack
    /// (the serde model with its field names, ids as bytes: decoded faster
    /// than its JSON, decision 0022) compressed with zstd, so that a large
    /// log's snapshot stays under PostgreSQL's 1 GB value limit and loads
    /// from fewer bytes. Streamed: the encoding is never whole in memory.
    pub fn to_snapshot(&self) -> Result<Vec<u8>, serde_json::Error> {
        use std::io::Write as _;
        let mut encoder =
            zstd::Encoder::new(Vec::new(), SNAPSHOT_ZSTD_LEVEL).map_err(serde_json::Error::io)?;
        {
            let mut buffered = std::io::BufWriter::with_capacity(1 << 16, &mut encoder);
            rmp_serde::encode::write_named(&mut buffered, self)
                .map_err(|e| serde_json::Error::io(std::io::Error::other(e)))?;
            buffered.flush().map_err(serde_json::Error::io)?;
        }
        encoder.finish().map_err(serde_json::Error::io)
    }

    /// The model as JSON (what a snapshot holds, uncompressed): for tests and
    /// tools that look inside.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Attachments, notification preferences, push subscriptions (issue 16).
    pub fn communication(&self) -> &crate::communication::Communication {
        &self.communication
    }

    /// The last log position applied (0 for an empty model).
    pub fn position(&self) -> Position {
        self.position
    }

    /// The position of the last event this instance applied that may have
    /// changed a class's grade figures (averages, ranks, minima and
    /// maxima), or 0 if none since it was created or loaded: whatever is
    /// computed from grades, assessments, enrolments and periods alone is the
    /// same for every state of this instance since then. Caches of such
    /// figures beside the live model (which is loaded once per process and
    /// only folded after) are keyed by it, so that the absences, roll calls
    /// and messages of a school morning do not throw them away.
    pub fn grade_figures_version(&self) -> Position {
        self.grade_figures_moved_at.0
    }

    /// Applies one recorded event. An event at or below the checkpoint was
    /// already applied and is skipped, which makes re-delivery harmless.
    pub fn apply(&mut self, recorded: &RecordedEvent) -> Result<(), ApplyError> {
        if recorded.position <= self.position {
            return Ok(());
        }
        self.apply_logged(LoggedEvent::decode(recorded)?);
        Ok(())
    }

    /// Applies the events of a decoded page above the checkpoint, in order
    /// (the follower's pages are shared by several consumers, hence the copy
    /// of each event the fold keeps).
    pub fn apply_page(&mut self, page: &[LoggedEvent]) {
        for e in page {
            if e.position > self.position {
                self.apply_logged(e.clone());
            }
        }
    }

    /// Applies one decoded event; one at or below the checkpoint is skipped.
    pub fn apply_logged(&mut self, logged: LoggedEvent) {
        self.apply_in(logged, None);
    }

    /// Applies one decoded event, in the whole model's fold (`aside` is
    /// `None`) or in one partition's fold of a parallel rebuild
    /// (`crate::slice`), which reads the directory as it was at the event.
    pub(crate) fn apply_in(&mut self, logged: LoggedEvent, aside: Option<&mut Aside<'_>>) {
        if logged.position <= self.position {
            return;
        }
        let LoggedEvent {
            position,
            recorded_at,
            actor,
            event,
            partition: _,
        } = logged;
        let envelope = Envelope {
            position,
            recorded_at,
            actor,
        };
        // The audit index is computed before the fold: an absence's student is
        // looked up in the state as it was when the event was written.
        let (place, mut concerned) = match aside.as_deref() {
            None => (self.place_of_event(&event), self.people_concerned(&event)),
            Some(a) => {
                let directory = a.directory.unwrap_or(&*self);
                let concerned = match a.students {
                    Some(index) => concerned_with(&event, |s| index.student_at(s, position), self),
                    None => concerned_with(&event, |s| directory.student_at(s, position), self),
                };
                (a.place, concerned)
            }
        };
        // A period's definition, closing or reopening is about no one: it is
        // filed under the head who did it, so that the reopening's reason
        // stays in an audit trail (evaluation, issue 14).
        if matches!(
            event,
            DomainEvent::PeriodsDefined(_)
                | DomainEvent::PeriodClosed(_)
                | DomainEvent::PeriodReopened(_)
        ) {
            concerned.extend(actor);
        }
        let audit = match place {
            None => &mut self.audit,
            Some(e) => self.audit_in.entry(e).or_default(),
        };
        for person in concerned {
            audit.entry(person).or_default().push(position);
        }
        if moves_grade_figures(&event) {
            self.grade_figures_moved_at = GradeFiguresMovedAt(position);
        }
        self.fold(event, envelope, place, aside);
        self.position = position;
    }

    /// Applies a batch in order; stops at the first event that does not decode,
    /// leaving the model consistent at the event before it.
    pub fn apply_all<'a>(
        &mut self,
        events: impl IntoIterator<Item = &'a RecordedEvent>,
    ) -> Result<(), ApplyError> {
        for e in events {
            self.apply(e)?;
        }
        Ok(())
    }

    /// The people an event is about, for the audit trail: the domain's
    /// [`DomainEvent::people_concerned`] with students mapped to their person
    /// through the roster, plus the teacher of an amended or withdrawn
    /// homework entry (the event itself does not name them).
    pub fn people_concerned(&self, event: &DomainEvent) -> Vec<PersonId> {
        concerned_with(event, |s| self.students.get(&s).map(|s| s.person_id), self)
    }

    fn fold(
        &mut self,
        event: DomainEvent,
        env: Envelope,
        place: Option<EstablishmentId>,
        aside: Option<&mut Aside<'_>>,
    ) {
        use DomainEvent::*;
        self.school_day.fold(&event, env.recorded_at, env.actor);
        match event {
            EstablishmentCreated(e) => {
                let classes = self
                    .establishments
                    .get(&e.establishment_id)
                    .map(|x| x.classes.clone())
                    .unwrap_or_default();
                self.establishments.insert(
                    e.establishment_id,
                    Establishment {
                        id: e.establishment_id,
                        uai: e.uai.as_str().to_owned(),
                        name: e.name,
                        time_zone: e.time_zone,
                        classes,
                        school_year: None,
                    },
                );
            }
            ClassCreated(e) => {
                if let Some(est) = self.establishments.get_mut(&e.establishment_id) {
                    if !est.classes.contains(&e.class_id) {
                        est.classes.push(e.class_id);
                    }
                }
                let students = self
                    .classes
                    .get(&e.class_id)
                    .map(|c| c.students.clone())
                    .unwrap_or_default();
                self.classes.insert(
                    e.class_id,
                    SchoolClass {
                        id: e.class_id,
                        establishment_id: e.establishment_id,
                        name: e.name,
                        students,
                        closed: None,
                    },
                );
            }
            PersonRegistered(e) => {
                if let Some(old) = self.persons.get(&e.person_id) {
                    if old.external_id != e.external_id {
                        self.person_by_external_id.remove(&old.external_id);
                    }
                }
                self.person_by_external_id
                    .insert(e.external_id.clone(), e.person_id);
                self.persons.insert(
                    e.person_id,
                    Person {
                        id: e.person_id,
                        external_id: e.external_id,
                        display_name: e.display_name,
                        roles: e.roles,
                        establishment_id: e.establishment_id,
                        registered_at: env.recorded_at,
                        account_closed_on: None,
                        erased: false,
                    },
                );
            }
            StudentEnrolled(e) => {
                let guardians = match self.students.get(&e.student_id) {
                    Some(previous) => {
                        if let Some(c) = self.classes.get_mut(&previous.class_id) {
                            c.students.remove(&e.student_id);
                        }
                        previous.guardians.clone()
                    }
                    None => BTreeSet::new(),
                };
                if let Some(c) = self.classes.get_mut(&e.class_id) {
                    c.students.insert(e.student_id);
                }
                self.student_by_person.insert(e.person_id, e.student_id);
                self.enrolments
                    .entry(e.student_id)
                    .or_default()
                    .push((env.position, e.class_id));
                self.students.insert(
                    e.student_id,
                    Student {
                        id: e.student_id,
                        person_id: e.person_id,
                        class_id: e.class_id,
                        guardians,
                    },
                );
            }
            GuardianLinked(e) => {
                if let Some(s) = self.students.get_mut(&e.student_id) {
                    s.guardians.insert(e.guardian_id);
                    self.children
                        .entry(e.guardian_id)
                        .or_default()
                        .insert(e.student_id);
                }
            }
            TeacherAssigned(e) => {
                self.teachings.insert(Teaching {
                    class_id: e.class_id,
                    subject: e.subject,
                    teacher_id: e.teacher_id,
                });
            }
            AssessmentCreated(e) => {
                self.assessments_by_class
                    .entry(e.class_id)
                    .or_default()
                    .insert(e.assessment_id);
                self.assessments.insert(
                    e.assessment_id,
                    Assessment {
                        id: e.assessment_id,
                        class_id: e.class_id,
                        teacher_id: e.teacher_id,
                        subject: e.subject,
                        title: e.title,
                        date: e.date,
                        coefficient: e.coefficient,
                        out_of: e.out_of,
                    },
                );
            }
            GradeRecorded(e) => {
                let Some(assessment) = self.assessments.get(&e.assessment_id) else {
                    return;
                };
                let recorded_by = env.actor.unwrap_or(assessment.teacher_id);
                self.grades_by_student
                    .entry(e.student_id)
                    .or_default()
                    .insert(e.grade_id);
                self.grades_by_assessment
                    .entry(e.assessment_id)
                    .or_default()
                    .insert(e.grade_id);
                self.grades.insert(
                    e.grade_id,
                    Grade {
                        id: e.grade_id,
                        assessment_id: e.assessment_id,
                        student_id: e.student_id,
                        score: e.score,
                        status: e.status,
                        recorded_at: env.recorded_at,
                        recorded_by,
                        corrections: 0,
                    },
                );
            }
            GradeCorrected(e) => {
                if let Some(g) = self.grades.get_mut(&e.grade_id) {
                    g.score = e.score;
                    g.status = e.status;
                    g.recorded_at = env.recorded_at;
                    if let Some(actor) = env.actor {
                        g.recorded_by = actor;
                    }
                    g.corrections += 1;
                }
            }
            AbsenceReported(e) => {
                self.insert_absence(Absence {
                    id: e.absence_id,
                    student_id: e.student_id,
                    kind: e.kind,
                    start: e.start,
                    end: e.end,
                    minutes_late: e.minutes_late,
                    state: JustificationState::Unjustified,
                    reason: None,
                    review_comment: None,
                    declared_in_advance: false,
                    confirmed: true,
                    reported_by: env.actor,
                    reported_at: env.recorded_at,
                    position: env.position,
                });
            }
            AbsenceDeclared(e) => {
                self.insert_absence(Absence {
                    id: e.absence_id,
                    student_id: e.student_id,
                    kind: AbsenceKind::Absence,
                    start: e.start,
                    end: e.end,
                    minutes_late: None,
                    state: JustificationState::Pending,
                    reason: Some(e.reason),
                    review_comment: None,
                    declared_in_advance: true,
                    confirmed: false,
                    reported_by: env.actor,
                    reported_at: env.recorded_at,
                    position: env.position,
                });
            }
            DeclaredAbsenceConfirmed(e) => {
                if let Some(a) = self.absences.get_mut(&e.absence_id) {
                    a.confirmed = true;
                }
            }
            AbsenceJustified(e) => {
                if let Some(a) = self.absences.get_mut(&e.absence_id) {
                    a.state = JustificationState::Pending;
                    a.reason = Some(e.reason);
                    a.review_comment = None;
                }
            }
            JustificationReviewed(e) => {
                if let Some(a) = self.absences.get_mut(&e.absence_id) {
                    a.state = if e.accepted {
                        JustificationState::Accepted
                    } else {
                        JustificationState::Rejected
                    };
                    a.review_comment = e.comment;
                }
            }
            AbsenceCancelled(e) => {
                if let Some(a) = self.absences.remove(&e.absence_id) {
                    if let Some(set) = self.absences_by_student.get_mut(&a.student_id) {
                        set.remove(&e.absence_id);
                    }
                }
                self.cancelled_absences.insert(e.absence_id, place);
            }
            HomeworkAssigned(e) => {
                self.homework_by_class
                    .entry(e.class_id)
                    .or_default()
                    .insert(e.homework_id);
                self.homework.insert(
                    e.homework_id,
                    Homework {
                        id: e.homework_id,
                        class_id: e.class_id,
                        teacher_id: e.teacher_id,
                        subject: e.subject,
                        title: e.title,
                        description: e.description,
                        due: e.due,
                        assigned_on: e.assigned_on,
                        assigned_at: env.recorded_at,
                        amended_at: None,
                    },
                );
            }
            HomeworkAmended(e) => {
                if let Some(h) = self.homework.get_mut(&e.homework_id) {
                    h.title = e.title;
                    h.description = e.description;
                    h.due = e.due;
                    h.amended_at = Some(env.recorded_at);
                }
            }
            HomeworkWithdrawn(e) => {
                if let Some(h) = self.homework.remove(&e.homework_id) {
                    if let Some(set) = self.homework_by_class.get_mut(&h.class_id) {
                        set.remove(&e.homework_id);
                    }
                }
                self.withdrawn_homework.insert(e.homework_id, place);
            }
            MessageSent(e) => {
                let thread = self.threads.entry(e.thread_id).or_insert_with(|| Thread {
                    id: e.thread_id,
                    ..Thread::default()
                });
                if self.messages.contains_key(&e.message_id) {
                    return;
                }
                thread.messages.push(e.message_id);
                thread.participants.insert(e.from);
                thread.participants.extend(e.to.iter().copied());
                self.sent.entry(e.from).or_default().push(e.message_id);
                let mut recipients = e.to.clone();
                recipients.sort();
                recipients.dedup();
                for r in &recipients {
                    self.received.entry(*r).or_default().push(e.message_id);
                }
                self.messages.insert(
                    e.message_id,
                    Message {
                        id: e.message_id,
                        thread_id: e.thread_id,
                        from: e.from,
                        to: e.to,
                        subject: e.subject,
                        body: e.body,
                        sent_at: env.recorded_at,
                        read_at: BTreeMap::new(),
                        position: env.position,
                    },
                );
            }
            MessageRead(e) => {
                if let Some(m) = self.messages.get_mut(&e.message_id) {
                    if m.to.contains(&e.reader) {
                        m.read_at.entry(e.reader).or_insert(env.recorded_at);
                    }
                }
            }
            PersonErased(e) => self.erase(e.person_id),
            AccountClosed(e) => {
                if let Some(p) = self.persons.get_mut(&e.person_id) {
                    p.account_closed_on = Some(e.effective_on);
                }
            }
            // discipline (issue 15)
            IncidentReported(e) => self.discipline.incident_reported(e, env.recorded_at),
            PunishmentGiven(e) => {
                let establishment = match aside.as_deref().and_then(|a| a.directory) {
                    Some(d) => d.establishment_of_student_at(e.student_id, env.position),
                    None => self.establishment_of_student(e.student_id),
                };
                self.discipline
                    .punishment_given(e, establishment, env.recorded_at);
            }
            SanctionImposed(e) => self.discipline.sanction_imposed(e),
            SanctionErased(e) => self.discipline.sanction_erased(e),
            // school day (issue 13): folded by `SchoolDay::fold` above.
            CoursePlanned(_)
            | CourseCancelled(_)
            | RollCallTaken(_)
            | LessonContentRecorded(_)
            | AbsenceReasonDefined(_)
            | HolidaysSet(_)
            | AbsenceMotiveGiven(_)
            | HomeworkDetailed(_)
            | HomeworkMarkedDone(_) => {}
            // evaluation (issue 14)
            PeriodsDefined(e) => self.evaluation.periods_defined(e),
            PeriodClosed(e) => self.evaluation.set_closed(e.period_id, true),
            PeriodReopened(e) => self.evaluation.set_closed(e.period_id, false),
            AppreciationWritten(e) => self.evaluation.appreciation_written(e),
            // communication (issue 16)
            AttachmentUploaded(e) => self.communication.uploaded(e, env.recorded_at),
            AttachmentsLinked(e) => match aside {
                // The attachment may be another partition's (a guardian's
                // upload is the directory's): its side of the link waits
                // for the partitions to be joined.
                Some(a) => {
                    self.communication.link_targets(&e);
                    a.links.push((env.position, e));
                }
                None => {
                    self.communication.link_targets(&e);
                    self.communication.link_attachments(e);
                }
            },
            NotificationPreferenceSet(e) => self.communication.preference_set(e),
            WebPushRegistered(e) => self.communication.push_registered(e),
            WebPushDropped(e) => self.communication.push_dropped(e),
            // interop (issue 17)
            GuardianUnlinked(e) => {
                if let Some(s) = self.students.get_mut(&e.student_id) {
                    s.guardians.remove(&e.guardian_id);
                }
                if let Some(children) = self.children.get_mut(&e.guardian_id) {
                    children.remove(&e.student_id);
                    if children.is_empty() {
                        self.children.remove(&e.guardian_id);
                    }
                }
            }
            TeacherUnassigned(e) => {
                self.teachings.remove(&Teaching {
                    class_id: e.class_id,
                    subject: e.subject,
                    teacher_id: e.teacher_id,
                });
            }
            PersonRenamed(e) => {
                // An erased person's name stays erased, whatever came after.
                if let Some(p) = self.persons.get_mut(&e.person_id).filter(|p| !p.erased) {
                    p.display_name = e.display_name;
                }
            }
            ClassRenamed(e) => {
                if let Some(c) = self.classes.get_mut(&e.class_id) {
                    c.name = e.name;
                }
            }
            SchoolYearStarted(e) => {
                if let Some(est) = self.establishments.get_mut(&e.establishment_id) {
                    est.school_year = Some(e.year);
                }
            }
            ClassClosed(e) => {
                if let Some(c) = self.classes.get_mut(&e.class_id) {
                    c.closed = Some(ClosedClass {
                        year: e.year,
                        students: c.students.clone(),
                    });
                }
            }
        }
    }

    /// The fold of `PersonErased`: the person's personal text, every field
    /// the domain declares personal with them (or their student record) as
    /// its subject (`registre_domain::personal`, which the vault seals by),
    /// reads as erased from this event on. A model folded from the log after
    /// the keys were destroyed reads the same from the vault; a model that
    /// folded that text earlier (this node's, or one restored from a
    /// snapshot) is brought in step here, without a rebuild. Ids, dates and
    /// counts stay, so statistics are unchanged.
    pub(crate) fn erase(&mut self, person: PersonId) {
        let places: BTreeSet<Kept> = personal::DECLARATIONS
            .iter()
            .flat_map(|d| d.personal.iter().map(|f| kept(d.event_type, f)))
            .collect();
        for place in places {
            self.blank(place, person);
        }
    }

    fn blank(&mut self, place: Kept, person: PersonId) {
        let erased = || registre_store::ERASED.to_owned();
        let student = StudentId::for_person(person);
        match place {
            Kept::Nowhere | Kept::OwnKey => {}
            Kept::PunishmentReason => self.discipline.erase_punishment_reasons(student),
            Kept::Appreciation => self
                .evaluation
                .erase_appreciations(student, registre_store::ERASED),
            Kept::Communication => self.communication.erase(person),
            Kept::PersonName => {
                if let Some(p) = self.persons.get_mut(&person) {
                    p.display_name = erased();
                    p.erased = true;
                }
            }
            Kept::SentSubject | Kept::SentBody => {
                for id in self.sent.get(&person).into_iter().flatten() {
                    if let Some(m) = self.messages.get_mut(id) {
                        match place {
                            Kept::SentSubject => m.subject = erased(),
                            _ => m.body = erased(),
                        }
                    }
                }
            }
            Kept::AbsenceReason | Kept::ReviewComment => {
                for id in self.absences_by_student.get(&student).into_iter().flatten() {
                    if let Some(a) = self.absences.get_mut(id) {
                        let text = match place {
                            Kept::AbsenceReason => &mut a.reason,
                            _ => &mut a.review_comment,
                        };
                        if text.is_some() {
                            *text = Some(erased());
                        }
                    }
                }
            }
        }
    }

    fn insert_absence(&mut self, absence: Absence) {
        if self.cancelled_absences.contains_key(&absence.id) {
            return;
        }
        self.absences_by_student
            .entry(absence.student_id)
            .or_default()
            .insert(absence.id);
        self.absences.insert(absence.id, absence);
    }
}

#[cfg(test)]
mod erasure_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use registre_domain::testing::samples;
    use registre_store::EventMetadata;
    use serde_json::Value;

    /// Every event the figures' caches let pass ([`moves_grade_figures`])
    /// leaves every class's grade figures as they were, in the real fold;
    /// the others move the version, and a grade moves the figures.
    #[test]
    fn events_said_not_to_move_grade_figures_do_not() {
        let events: Vec<RecordedEvent> = samples()
            .iter()
            .enumerate()
            .map(|(i, e)| recorded(i as Position + 1, e))
            .collect();
        let figures = |m: &ReadModel| {
            m.classes
                .keys()
                .map(|c| (m.class_figures(*c, None), m.class_subject_averages(*c)))
                .collect::<Vec<_>>()
        };
        let mut model = ReadModel::new();
        let mut let_pass = 0;
        for e in &events {
            let before = (figures(&model), model.grade_figures_version());
            model.apply(e).unwrap();
            let event = LoggedEvent::decode(e).unwrap().event;
            if moves_grade_figures(&event) {
                assert_eq!(
                    model.grade_figures_version(),
                    e.position,
                    "{}",
                    e.event_type
                );
            } else {
                let_pass += 1;
                assert_eq!(
                    (figures(&model), model.grade_figures_version()),
                    before,
                    "{} changed the grade figures",
                    e.event_type
                );
            }
            if e.event_type == "GradeRecorded" {
                assert_ne!(figures(&model), before.0, "a grade moves the figures");
            }
        }
        assert!(let_pass >= 20, "the samples hold the events let pass");
    }

    #[test]
    fn snapshots_are_compressed_and_plain_json_ones_still_load() {
        let mut model = ReadModel::new();
        let events: Vec<RecordedEvent> = samples()
            .iter()
            .enumerate()
            .map(|(i, e)| recorded(i as Position + 1, e))
            .collect();
        model.apply_all(&events).unwrap();
        let json = model.to_json().unwrap();
        let snapshot = model.to_snapshot().unwrap();
        assert!(snapshot.starts_with(&ZSTD_MAGIC));
        assert!(
            snapshot.len() < json.len() / 2,
            "{} compressed from {}",
            snapshot.len(),
            json.len()
        );
        assert_eq!(ReadModel::from_snapshot(&snapshot).unwrap(), model);
        // Written before compression: plain JSON.
        assert_eq!(ReadModel::from_snapshot(&json).unwrap(), model);
        // Written before MessagePack (decision 0022): zstd-compressed JSON.
        let compressed_json = zstd::encode_all(&json[..], SNAPSHOT_ZSTD_LEVEL).unwrap();
        assert_ne!(compressed_json, snapshot);
        assert_eq!(ReadModel::from_snapshot(&compressed_json).unwrap(), model);
        assert!(ReadModel::from_snapshot(&snapshot[..snapshot.len() / 2]).is_err());
    }

    #[test]
    fn every_declared_personal_field_is_placed() {
        for d in personal::DECLARATIONS {
            for f in d.personal {
                let placed = kept(d.event_type, f) != Kept::Nowhere;
                let not_kept = NOT_KEPT.contains(&(d.event_type, *f));
                assert!(
                    placed != not_kept,
                    "{}.{f}: say where the read model keeps it (`kept`) or that it does not \
                     (`NOT_KEPT`), once",
                    d.event_type
                );
            }
        }
        for (t, f) in NOT_KEPT {
            assert!(
                personal::declaration(t).is_some_and(|d| d.personal.contains(f)),
                "{t}.{f} is not declared personal"
            );
        }
    }

    fn recorded(position: Position, event: &DomainEvent) -> RecordedEvent {
        let encoded = event.encode();
        let at = DateTime::parse_from_rfc3339("2026-11-30T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        RecordedEvent {
            position,
            stream_id: format!("s-{position}"),
            stream_version: 1,
            event_id: uuid::Uuid::from_u128(position.into()),
            event_type: encoded.event_type.into(),
            schema_version: encoded.schema_version,
            data: encoded.data,
            metadata: EventMetadata {
                actor: None,
                correlation_id: uuid::Uuid::nil(),
                causation_id: None,
                idempotency_key: None,
                occurred_at: at,
                reason: None,
            },
            recorded_at: at,
            hash: [0; 32],
            partition: None,
        }
    }

    /// The texts of the personal fields sealed with a record's own key.
    fn own_key_texts() -> Vec<String> {
        let own = |d: &personal::Declaration| -> &'static [&'static str] {
            if d.personal
                .iter()
                .all(|f| kept(d.event_type, f) == Kept::OwnKey)
            {
                d.personal
            } else {
                &[]
            }
        };
        texts(own)
    }

    /// The texts of the fields `pick` selects in every sample, JSON-escaped.
    fn texts(pick: impl Fn(&personal::Declaration) -> &'static [&'static str]) -> Vec<String> {
        let mut out = Vec::new();
        for event in samples() {
            let encoded = event.encode();
            let d = personal::declaration(encoded.event_type).unwrap();
            for f in pick(d) {
                // As the snapshot spells it (newlines escaped).
                if let Some(text @ Value::String(_)) = encoded.data.get(*f) {
                    let json = text.to_string();
                    out.push(json[1..json.len() - 1].to_owned());
                }
            }
        }
        out
    }

    /// Erasing everyone the samples hold personal text about leaves none of
    /// that text in the model (its snapshot form: all it keeps), and every
    /// clear text it kept.
    #[test]
    fn erasure_blanks_every_declared_personal_text_and_nothing_else() {
        let mut model = ReadModel::default();
        let events: Vec<RecordedEvent> = samples()
            .iter()
            .filter(|e| !matches!(e, DomainEvent::PersonErased(_)))
            .enumerate()
            .map(|(i, e)| recorded(i as Position + 1, e))
            .collect();
        model.apply_all(&events).unwrap();
        let snapshot = |m: &ReadModel| {
            let json = String::from_utf8(m.to_json().unwrap()).unwrap();
            // The snapshot is that JSON, compressed.
            assert_eq!(
                ReadModel::from_snapshot(&m.to_snapshot().unwrap()).unwrap(),
                *m
            );
            json
        };
        let before = snapshot(&model);
        // Text sealed with a record's own key leaves with the record (the
        // samples' sanction is erased by its own event), not with a person.
        let personal_texts: Vec<String> = texts(|d| d.personal)
            .into_iter()
            .filter(|t| !own_key_texts().contains(t))
            .collect();
        let kept_before: Vec<&String> = personal_texts
            .iter()
            .filter(|t| before.contains(t.as_str()))
            .collect();
        assert!(
            kept_before.len() >= 4,
            "the model keeps names, messages and reasons: {kept_before:?}"
        );

        let people: Vec<PersonId> = model.persons.keys().copied().collect();
        let students: Vec<PersonId> = model.students.values().map(|s| s.person_id).collect();
        for p in people.into_iter().chain(students) {
            model.erase(p);
        }
        let after = snapshot(&model);
        for t in &personal_texts {
            assert!(!after.contains(t.as_str()), "{t:?} survived the erasure");
        }
        for t in texts(|d| d.clear) {
            assert_eq!(
                before.contains(t.as_str()),
                after.contains(t.as_str()),
                "{t:?} is not personal: the erasure leaves it as it was"
            );
        }
        assert!(after.contains("Fractions"), "clear text kept");
    }
}
