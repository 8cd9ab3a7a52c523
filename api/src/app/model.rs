//! The API's in-memory index of the log: the roster, grades, absences,
//! homework and messages, shaped for the resolvers (every list a resolver walks
//! is one map lookup away, so a dashboard costs no store round trip per child or
//! grade). It is a pure fold of [`DomainEvent`]s with their log metadata; the
//! follower in [`super::follower`] keeps it at the log head.
//!
//! Integration note: `registre-projections` is meant to own the read model; it
//! was empty while this was written, so the API folds what it needs itself.
//! When the projections engine lands, this index can be replaced by its views
//! behind the same accessors.

use chrono::{DateTime, NaiveDate, Utc};
use registre_domain::{
    AbsenceId, AbsenceKind, AssessmentId, ClassId, DomainEvent, EstablishmentId, GradeId,
    GradeStatus, HomeworkId, JustificationState, MessageId, PersonId, Role, StudentId, ThreadId,
    TimeZone,
};
use registre_store::{Position, RecordedEvent};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

#[derive(Clone, Debug)]
pub struct Establishment {
    pub id: EstablishmentId,
    pub uai: String,
    pub name: String,
    pub time_zone: TimeZone,
    pub classes: Vec<ClassId>,
}

#[derive(Clone, Debug)]
pub struct Class {
    pub id: ClassId,
    pub establishment: EstablishmentId,
    pub name: String,
    pub students: BTreeSet<StudentId>,
    /// (teacher, subject) pairs.
    pub teachers: BTreeSet<(PersonId, String)>,
}

#[derive(Clone, Debug)]
pub struct Person {
    pub id: PersonId,
    pub external_id: String,
    pub display_name: String,
    pub roles: Vec<Role>,
    pub establishment: Option<EstablishmentId>,
}

#[derive(Clone, Debug)]
pub struct Student {
    pub id: StudentId,
    pub person: PersonId,
    pub class: ClassId,
    pub guardians: Vec<PersonId>,
    pub grades: Vec<GradeId>,
    pub absences: Vec<AbsenceId>,
}

#[derive(Clone, Debug)]
pub struct Assessment {
    pub id: AssessmentId,
    pub class: ClassId,
    pub teacher: PersonId,
    pub subject: String,
    pub title: String,
    pub date: NaiveDate,
    pub coefficient: f64,
    pub out_of: f64,
}

#[derive(Clone, Debug)]
pub struct Grade {
    pub id: GradeId,
    pub assessment: AssessmentId,
    pub student: StudentId,
    pub score: Option<f64>,
    pub status: GradeStatus,
    pub recorded_at: DateTime<Utc>,
    pub recorded_by: Option<PersonId>,
}

#[derive(Clone, Debug)]
pub struct Absence {
    pub id: AbsenceId,
    pub student: StudentId,
    pub kind: AbsenceKind,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub minutes_late: Option<u32>,
    pub state: JustificationState,
    pub reason: Option<String>,
    /// True while a guardian's advance declaration has not been confirmed by a roll call.
    pub declared: bool,
    pub cancelled: bool,
    pub reported_by: Option<PersonId>,
    pub reported_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct Homework {
    pub id: HomeworkId,
    pub class: ClassId,
    pub subject: String,
    pub title: String,
    pub description: String,
    pub due: NaiveDate,
    pub assigned_by: PersonId,
    pub withdrawn: bool,
}

#[derive(Clone, Debug)]
pub struct Message {
    pub id: MessageId,
    pub thread: ThreadId,
    pub from: PersonId,
    pub to: Vec<PersonId>,
    pub subject: String,
    pub body: String,
    pub sent_at: DateTime<Utc>,
    pub read_at: HashMap<PersonId, DateTime<Utc>>,
}

/// The whole index. Cheap to clone per entity, never cloned whole on the read path.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub position: Position,
    pub establishments: HashMap<EstablishmentId, Establishment>,
    pub classes: HashMap<ClassId, Class>,
    pub persons: HashMap<PersonId, Person>,
    pub person_by_external: HashMap<String, PersonId>,
    pub students: HashMap<StudentId, Student>,
    pub student_by_person: HashMap<PersonId, StudentId>,
    pub children: HashMap<PersonId, BTreeSet<StudentId>>,
    pub assessments: HashMap<AssessmentId, Assessment>,
    pub grades: HashMap<GradeId, Grade>,
    pub absences: HashMap<AbsenceId, Absence>,
    pub homework: HashMap<HomeworkId, Homework>,
    pub homework_by_class: HashMap<ClassId, Vec<HomeworkId>>,
    pub messages: HashMap<MessageId, Message>,
    /// Participants of each thread (senders and recipients).
    pub threads: HashMap<ThreadId, BTreeSet<PersonId>>,
    /// Messages each person sent or received, in log order.
    pub mailbox: HashMap<PersonId, Vec<MessageId>>,
    /// Positions of the events about each person (their Person id), for the audit trail.
    pub about_person: HashMap<Uuid, Vec<Position>>,
    /// (position, recorded_at) of every event, in order: `studentAsOf` finds the
    /// last position at a given instant without reading the log.
    pub timeline: BTreeMap<Position, DateTime<Utc>>,
}

impl Model {
    pub fn person_of_student(&self, id: StudentId) -> Option<PersonId> {
        self.students.get(&id).map(|s| s.person)
    }

    pub fn establishment_of_class(&self, id: ClassId) -> Option<EstablishmentId> {
        self.classes.get(&id).map(|c| c.establishment)
    }

    pub fn establishment_of_student(&self, id: StudentId) -> Option<EstablishmentId> {
        self.students
            .get(&id)
            .and_then(|s| self.establishment_of_class(s.class))
    }

    /// The last position recorded at or before `at` (0 when none).
    pub fn position_at(&self, at: DateTime<Utc>) -> Position {
        self.timeline
            .iter()
            .take_while(|(_, t)| **t <= at)
            .last()
            .map(|(p, _)| *p)
            .unwrap_or(0)
    }

    fn note_about(&mut self, person: Option<PersonId>, position: Position) {
        if let Some(p) = person {
            self.about_person.entry(p.0).or_default().push(position);
        }
    }

    /// Folds one recorded event. Unknown references are tolerated (the domain
    /// refused them when they were written; an old log may still hold them).
    pub fn apply(&mut self, rec: &RecordedEvent, event: &DomainEvent) {
        use DomainEvent as E;
        let at = rec.recorded_at;
        let actor = rec.metadata.actor.as_ref().map(|a| PersonId(a.person_id));
        let pos = rec.position;
        self.position = self.position.max(pos);
        self.timeline.insert(pos, at);
        match event {
            E::EstablishmentCreated(e) => {
                self.establishments.insert(
                    e.establishment_id,
                    Establishment {
                        id: e.establishment_id,
                        uai: e.uai.as_str().to_owned(),
                        name: e.name.clone(),
                        time_zone: e.time_zone,
                        classes: Vec::new(),
                    },
                );
            }
            E::ClassCreated(e) => {
                self.classes.insert(
                    e.class_id,
                    Class {
                        id: e.class_id,
                        establishment: e.establishment_id,
                        name: e.name.clone(),
                        students: BTreeSet::new(),
                        teachers: BTreeSet::new(),
                    },
                );
                if let Some(est) = self.establishments.get_mut(&e.establishment_id) {
                    est.classes.push(e.class_id);
                }
            }
            E::PersonRegistered(e) => {
                self.person_by_external
                    .insert(e.external_id.clone(), e.person_id);
                self.persons.insert(
                    e.person_id,
                    Person {
                        id: e.person_id,
                        external_id: e.external_id.clone(),
                        display_name: e.display_name.clone(),
                        roles: e.roles.clone(),
                        establishment: e.establishment_id,
                    },
                );
                self.note_about(Some(e.person_id), pos);
            }
            E::StudentEnrolled(e) => {
                let previous = self.students.get(&e.student_id).map(|s| s.class);
                if let Some(old) = previous.and_then(|c| self.classes.get_mut(&c)) {
                    old.students.remove(&e.student_id);
                }
                if let Some(class) = self.classes.get_mut(&e.class_id) {
                    class.students.insert(e.student_id);
                }
                let student = self
                    .students
                    .entry(e.student_id)
                    .or_insert_with(|| Student {
                        id: e.student_id,
                        person: e.person_id,
                        class: e.class_id,
                        guardians: Vec::new(),
                        grades: Vec::new(),
                        absences: Vec::new(),
                    });
                student.class = e.class_id;
                self.student_by_person.insert(e.person_id, e.student_id);
                self.note_about(Some(e.person_id), pos);
            }
            E::GuardianLinked(e) => {
                if let Some(s) = self.students.get_mut(&e.student_id) {
                    if !s.guardians.contains(&e.guardian_id) {
                        s.guardians.push(e.guardian_id);
                    }
                }
                self.children
                    .entry(e.guardian_id)
                    .or_default()
                    .insert(e.student_id);
                let person = self.person_of_student(e.student_id);
                self.note_about(person, pos);
            }
            E::TeacherAssigned(e) => {
                if let Some(c) = self.classes.get_mut(&e.class_id) {
                    c.teachers.insert((e.teacher_id, e.subject.clone()));
                }
            }
            E::AssessmentCreated(e) => {
                self.assessments.insert(
                    e.assessment_id,
                    Assessment {
                        id: e.assessment_id,
                        class: e.class_id,
                        teacher: e.teacher_id,
                        subject: e.subject.clone(),
                        title: e.title.clone(),
                        date: e.date,
                        coefficient: e.coefficient,
                        out_of: e.out_of,
                    },
                );
            }
            E::GradeRecorded(e) => {
                self.grades.insert(
                    e.grade_id,
                    Grade {
                        id: e.grade_id,
                        assessment: e.assessment_id,
                        student: e.student_id,
                        score: e.score,
                        status: e.status,
                        recorded_at: at,
                        recorded_by: actor,
                    },
                );
                if let Some(s) = self.students.get_mut(&e.student_id) {
                    s.grades.push(e.grade_id);
                }
                let person = self.person_of_student(e.student_id);
                self.note_about(person, pos);
            }
            E::GradeCorrected(e) => {
                if let Some(g) = self.grades.get_mut(&e.grade_id) {
                    g.score = e.score;
                    g.status = e.status;
                    g.recorded_at = at;
                    g.recorded_by = actor.or(g.recorded_by);
                }
                let person = self.person_of_student(e.student_id);
                self.note_about(person, pos);
            }
            E::AbsenceReported(e) => {
                self.absences.insert(
                    e.absence_id,
                    Absence {
                        id: e.absence_id,
                        student: e.student_id,
                        kind: e.kind,
                        start: e.start,
                        end: e.end,
                        minutes_late: e.minutes_late,
                        state: JustificationState::Unjustified,
                        reason: None,
                        declared: false,
                        cancelled: false,
                        reported_by: actor,
                        reported_at: at,
                    },
                );
                self.push_absence(e.student_id, e.absence_id, pos);
            }
            E::AbsenceDeclared(e) => {
                self.absences.insert(
                    e.absence_id,
                    Absence {
                        id: e.absence_id,
                        student: e.student_id,
                        kind: AbsenceKind::Absence,
                        start: e.start,
                        end: e.end,
                        minutes_late: None,
                        state: JustificationState::Pending,
                        reason: Some(e.reason.clone()),
                        declared: true,
                        cancelled: false,
                        reported_by: actor,
                        reported_at: at,
                    },
                );
                self.push_absence(e.student_id, e.absence_id, pos);
            }
            E::DeclaredAbsenceConfirmed(e) => {
                if let Some(a) = self.absences.get_mut(&e.absence_id) {
                    a.declared = false;
                }
                let person = self.person_of_student(e.student_id);
                self.note_about(person, pos);
            }
            E::AbsenceJustified(e) => {
                if let Some(a) = self.absences.get_mut(&e.absence_id) {
                    a.state = JustificationState::Pending;
                    a.reason = Some(e.reason.clone());
                }
                let person = self.person_of_student(e.student_id);
                self.note_about(person, pos);
            }
            E::JustificationReviewed(e) => {
                if let Some(a) = self.absences.get_mut(&e.absence_id) {
                    a.state = if e.accepted {
                        JustificationState::Accepted
                    } else {
                        JustificationState::Rejected
                    };
                }
                let person = self.person_of_student(e.student_id);
                self.note_about(person, pos);
            }
            E::AbsenceCancelled(e) => {
                if let Some(a) = self.absences.get_mut(&e.absence_id) {
                    a.cancelled = true;
                }
                let person = self.person_of_student(e.student_id);
                self.note_about(person, pos);
            }
            E::HomeworkAssigned(e) => {
                self.homework.insert(
                    e.homework_id,
                    Homework {
                        id: e.homework_id,
                        class: e.class_id,
                        subject: e.subject.clone(),
                        title: e.title.clone(),
                        description: e.description.clone(),
                        due: e.due,
                        assigned_by: e.teacher_id,
                        withdrawn: false,
                    },
                );
                self.homework_by_class
                    .entry(e.class_id)
                    .or_default()
                    .push(e.homework_id);
            }
            E::HomeworkAmended(e) => {
                if let Some(h) = self.homework.get_mut(&e.homework_id) {
                    h.title = e.title.clone();
                    h.description = e.description.clone();
                    h.due = e.due;
                }
            }
            E::HomeworkWithdrawn(e) => {
                if let Some(h) = self.homework.get_mut(&e.homework_id) {
                    h.withdrawn = true;
                }
            }
            E::MessageSent(e) => {
                self.messages.insert(
                    e.message_id,
                    Message {
                        id: e.message_id,
                        thread: e.thread_id,
                        from: e.from,
                        to: e.to.clone(),
                        subject: e.subject.clone(),
                        body: e.body.clone(),
                        sent_at: at,
                        read_at: HashMap::new(),
                    },
                );
                let participants = self.threads.entry(e.thread_id).or_default();
                participants.insert(e.from);
                participants.extend(e.to.iter().copied());
                let mut boxes: BTreeSet<PersonId> = e.to.iter().copied().collect();
                boxes.insert(e.from);
                for p in boxes {
                    self.mailbox.entry(p).or_default().push(e.message_id);
                }
            }
            E::MessageRead(e) => {
                if let Some(m) = self.messages.get_mut(&e.message_id) {
                    m.read_at.entry(e.reader).or_insert(at);
                }
            }
        }
    }

    fn push_absence(&mut self, student: StudentId, absence: AbsenceId, pos: Position) {
        if let Some(s) = self.students.get_mut(&student) {
            s.absences.push(absence);
        }
        let person = self.person_of_student(student);
        self.note_about(person, pos);
    }
}
