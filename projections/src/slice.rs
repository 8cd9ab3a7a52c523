//! Slices of the read model (decision 0022): the directory's part, one
//! establishment's partition, or what a class's records need; and their
//! union ([`ReadModel::absorb`]). A node snapshots one slice per partition
//! and loads them back in parallel; a rebuild folds the partitions in
//! parallel and absorbs them.
//!
//! Every entry of the model has one place: the directory or one
//! establishment's partition, the partition of the events that wrote it
//! (`crate::partition::partition_of`, read here on the model's own facts).
//! Indexes that span partitions (a student's grades from two schools, a
//! person's messages, the audit index) are split entry by entry and merged
//! back in log order. [`ReadModel::split`] and [`ReadModel::absorb`]
//! destructure every field: a field added to the model does not compile
//! until it is placed here.

use crate::communication::Communication;
use crate::discipline::Discipline;
use crate::evaluation::Evaluation;
use crate::follower::LoggedEvent;
use crate::model::{ApplyError, ReadModel, Teaching};
use crate::school_day::SchoolDay;
use registre_domain::communication::{AttachedTo, AttachmentsLinked};
use registre_domain::{
    AbsenceId, AssessmentId, AttachmentId, ClassId, CourseId, DomainEvent, EstablishmentId,
    GradeId, HomeworkId, IncidentId, MessageId, PeriodId, PersonId, PunishmentId, SanctionId,
    StudentId, ThreadId,
};
use registre_store::{Partition, Position, RecordedEvent};
use std::collections::{BTreeMap, BTreeSet};

/// What a slice holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Persons, students, guardianships, establishments, classes, teaching
    /// assignments, the establishments' motives and holidays, notification
    /// settings: the directory partition's state.
    Directory,
    /// One establishment's partition (by its UAI); the directory's partition
    /// reads as [`Scope::Directory`].
    Partition(Partition),
    /// A self-contained small model for a class and its students' records:
    /// the directory entries they need (the class, its establishment, its
    /// students, their persons and guardians, its teachers) and their
    /// partition data, wherever it was written.
    Class(ClassId),
}

/// Where an entry lives: `None` is the directory, `Some(e)` the partition of
/// establishment `e`.
pub(crate) type Place = Option<EstablishmentId>;

/// A partition's fold in a parallel rebuild: what it reads of the directory
/// (folded before it, read as it was at each event's position) and the link
/// sides it leaves for the join.
#[derive(Debug)]
pub(crate) struct Aside<'a> {
    /// `None` while folding the directory itself.
    pub directory: Option<&'a ReadModel>,
    pub place: Place,
    /// Attachments' sides of `AttachmentsLinked`, applied in log order once
    /// the partitions are joined (the attachment may be another's).
    pub links: &'a mut Vec<(Position, AttachmentsLinked)>,
    /// The directory's students by hash, when it is folded to its end.
    pub students: Option<&'a StudentIndex>,
}

/// [`ReadModel::student_at`] of a directory folded to its end, by hash. A
/// partition's fold asks it of nearly every event (the student of a grade
/// or an absence), and its two searches of the directory's trees, each
/// missing the cache at their lower levels, were a tenth of a rebuild's CPU.
#[derive(Debug, Default)]
pub(crate) struct StudentIndex(rustc_hash::FxHashMap<StudentId, (PersonId, Position)>);

impl StudentIndex {
    fn of(directory: &ReadModel) -> Self {
        StudentIndex(
            directory
                .enrolments
                .iter()
                .filter_map(|(student, enrolments)| {
                    // In log order: the first is the earliest.
                    let (first, _) = enrolments.first()?;
                    let person = directory.students.get(student)?.person_id;
                    Some((*student, (person, *first)))
                })
                .collect(),
        )
    }

    /// The person of a student enrolled before `at`.
    pub(crate) fn student_at(&self, student: StudentId, at: Position) -> Option<PersonId> {
        self.0
            .get(&student)
            .filter(|(_, enrolled)| *enrolled < at)
            .map(|(person, _)| *person)
    }
}

/// An entry of the model, as a router decides where it goes.
#[derive(Clone, Copy, Debug)]
enum Entry<'a> {
    Establishment(EstablishmentId),
    /// An establishment's directory settings (motives, holidays).
    Setting(EstablishmentId),
    Class(ClassId),
    Person(PersonId),
    Student(StudentId),
    Teaching(&'a Teaching),
    Assessment(AssessmentId),
    Grade(GradeId),
    Absence(AbsenceId),
    Homework(HomeworkId),
    Message(MessageId),
    Thread(ThreadId),
    /// An audit index entry: the place of the events, the person.
    Audit(Place, PersonId),
    Course(CourseId),
    Period(PeriodId),
    Appreciation(StudentId, PeriodId),
    Incident(IncidentId),
    Punishment(PunishmentId),
    Sanction(SanctionId),
    Attachment(AttachmentId),
    /// An index's key whose list is empty (all its items gone): kept with
    /// the directory, so that the union is the whole model.
    Empty,
}

/// Decides which part an entry goes to (`None`: left out).
trait Router {
    fn route(&self, entry: Entry<'_>) -> Option<Place>;
}

/// By partition, keeping the places `keep` accepts.
struct ByPlace<'a, F> {
    model: &'a ReadModel,
    keep: F,
}

impl<F: Fn(Place) -> bool> Router for ByPlace<'_, F> {
    fn route(&self, entry: Entry<'_>) -> Option<Place> {
        let place = self.model.place_of_entry(entry);
        (self.keep)(place).then_some(place)
    }
}

/// What a class's records need, all in one part.
struct ForClass<'a> {
    model: &'a ReadModel,
    class: ClassId,
    establishment: Option<EstablishmentId>,
    students: BTreeSet<StudentId>,
    persons: BTreeSet<PersonId>,
    assessments: BTreeSet<AssessmentId>,
    incidents: BTreeSet<IncidentId>,
}

impl<'a> ForClass<'a> {
    fn new(model: &'a ReadModel, class: ClassId) -> Self {
        let students: BTreeSet<StudentId> = model
            .classes
            .get(&class)
            .map(|c| c.students.clone())
            .unwrap_or_default();
        let mut persons = BTreeSet::new();
        for s in students.iter().filter_map(|s| model.students.get(s)) {
            persons.insert(s.person_id);
            persons.extend(s.guardians.iter().copied());
        }
        persons.extend(
            model
                .teachings
                .iter()
                .filter(|t| t.class_id == class)
                .map(|t| t.teacher_id),
        );
        let mut assessments: BTreeSet<AssessmentId> = model
            .assessments_by_class
            .get(&class)
            .cloned()
            .unwrap_or_default();
        for s in &students {
            for g in model.grades_by_student.get(s).into_iter().flatten() {
                assessments.extend(model.grades.get(g).map(|g| g.assessment_id));
            }
        }
        let d = &model.discipline;
        let incidents = students
            .iter()
            .flat_map(|s| {
                let punished = d
                    .punishments_by_student
                    .get(s)
                    .into_iter()
                    .flatten()
                    .filter_map(|p| d.punishments.get(p)?.incident_id);
                let sanctioned = d
                    .sanctions_by_student
                    .get(s)
                    .into_iter()
                    .flatten()
                    .filter_map(|x| d.sanctions.get(x)?.incident_id);
                punished.chain(sanctioned).collect::<Vec<_>>()
            })
            .collect();
        Self {
            model,
            class,
            establishment: model.establishment_of_class(class),
            students,
            persons,
            assessments,
            incidents,
        }
    }

    fn wanted(&self, entry: Entry<'_>) -> bool {
        let m = self.model;
        let ours = |e: EstablishmentId| Some(e) == self.establishment;
        match entry {
            Entry::Establishment(e) | Entry::Setting(e) => ours(e),
            Entry::Class(c) => c == self.class,
            Entry::Person(p) | Entry::Audit(_, p) => self.persons.contains(&p),
            Entry::Student(s) | Entry::Appreciation(s, _) => self.students.contains(&s),
            Entry::Teaching(t) => t.class_id == self.class,
            Entry::Assessment(a) => self.assessments.contains(&a),
            // Every grade of their assessments: the class averages.
            Entry::Grade(g) => m
                .grades
                .get(&g)
                .is_some_and(|g| self.assessments.contains(&g.assessment_id)),
            Entry::Empty => false,
            Entry::Absence(a) => m
                .absences
                .get(&a)
                .is_some_and(|a| self.students.contains(&a.student_id)),
            Entry::Homework(h) => m.homework.get(&h).is_some_and(|h| h.class_id == self.class),
            Entry::Message(x) => m
                .messages
                .get(&x)
                .is_some_and(|x| self.wanted(Entry::Thread(x.thread_id))),
            Entry::Thread(t) => m
                .threads
                .get(&t)
                .is_some_and(|t| !t.participants.is_disjoint(&self.persons)),
            Entry::Course(c) => m
                .school_day
                .courses
                .get(&c)
                .is_some_and(|c| c.class_id == self.class),
            Entry::Period(p) => m
                .evaluation
                .periods
                .get(&p)
                .is_some_and(|p| ours(p.establishment_id)),
            Entry::Incident(i) => self.incidents.contains(&i),
            Entry::Punishment(p) => m
                .discipline
                .punishments
                .get(&p)
                .is_some_and(|p| self.students.contains(&p.student_id)),
            Entry::Sanction(s) => m
                .discipline
                .sanctions
                .get(&s)
                .is_some_and(|s| self.students.contains(&s.student_id)),
            Entry::Attachment(a) => m.communication.attachments.get(&a).is_some_and(|a| {
                a.attached_to.iter().any(|to| match *to {
                    AttachedTo::Message { message_id, .. } => {
                        self.wanted(Entry::Message(message_id))
                    }
                    AttachedTo::Homework(h) => self.wanted(Entry::Homework(h)),
                    AttachedTo::Justification(x) => self.wanted(Entry::Absence(x)),
                })
            }),
        }
    }
}

/// Copies the entries of `src` under `keys` (those it has) into `dst`.
fn copy_keys<K: Ord + Clone, V: Clone>(
    dst: &mut BTreeMap<K, V>,
    src: &BTreeMap<K, V>,
    keys: impl IntoIterator<Item = K>,
) {
    for k in keys {
        if let Some(v) = src.get(&k) {
            dst.insert(k, v.clone());
        }
    }
}

/// The ids of the sets (or lists) `index` holds under `keys`.
fn items_under<K: Ord, I: Copy + Ord, C>(
    index: &BTreeMap<K, C>,
    keys: impl IntoIterator<Item = K>,
) -> BTreeSet<I>
where
    for<'c> &'c C: IntoIterator<Item = &'c I>,
{
    keys.into_iter()
        .filter_map(|k| index.get(&k))
        .flat_map(|items| items.into_iter().copied())
        .collect()
}

impl ForClass<'_> {
    /// The entries the class's slice may take, found through the model's
    /// indexes: a superset of what [`ForClass::wanted`] keeps, so that the
    /// cut walks a class's worth of entries rather than the whole model
    /// (which grows with the node's set; a 3-school node spent 14 ms per
    /// cut walking it). The router still decides each entry, against the
    /// whole model, so the slice is the same
    /// (`replay-tests/tests/slices.rs` compares both).
    fn candidates(&self) -> ReadModel {
        let m = self.model;
        let mut c = ReadModel {
            position: m.position,
            ..ReadModel::default()
        };
        let class = self.class;
        let ours: Vec<EstablishmentId> = self.establishment.into_iter().collect();
        let students = self.students.iter().copied();
        let persons = self.persons.iter().copied();
        copy_keys(
            &mut c.establishments,
            &m.establishments,
            ours.iter().copied(),
        );
        copy_keys(&mut c.classes, &m.classes, [class]);
        copy_keys(&mut c.persons, &m.persons, persons.clone());
        copy_keys(
            &mut c.person_by_external_id,
            &m.person_by_external_id,
            persons
                .clone()
                .filter_map(|p| Some(m.persons.get(&p)?.external_id.clone())),
        );
        copy_keys(&mut c.students, &m.students, students.clone());
        copy_keys(
            &mut c.student_by_person,
            &m.student_by_person,
            students
                .clone()
                .filter_map(|s| Some(m.students.get(&s)?.person_id)),
        );
        copy_keys(&mut c.children, &m.children, persons.clone());
        copy_keys(&mut c.enrolments, &m.enrolments, students.clone());
        c.teachings = m
            .teachings
            .iter()
            .filter(|t| t.class_id == class)
            .cloned()
            .collect();
        copy_keys(
            &mut c.assessments,
            &m.assessments,
            self.assessments.iter().copied(),
        );
        let assessment_classes = self
            .assessments
            .iter()
            .filter_map(|a| Some(m.assessments.get(a)?.class_id))
            .chain([class])
            .collect::<BTreeSet<_>>();
        copy_keys(
            &mut c.assessments_by_class,
            &m.assessments_by_class,
            assessment_classes,
        );
        let grades: BTreeSet<GradeId> =
            items_under(&m.grades_by_assessment, self.assessments.iter().copied());
        copy_keys(&mut c.grades, &m.grades, grades.iter().copied());
        copy_keys(
            &mut c.grades_by_student,
            &m.grades_by_student,
            grades
                .iter()
                .filter_map(|g| Some(m.grades.get(g)?.student_id))
                .chain(students.clone())
                .collect::<BTreeSet<_>>(),
        );
        copy_keys(
            &mut c.grades_by_assessment,
            &m.grades_by_assessment,
            self.assessments.iter().copied(),
        );
        let absences: BTreeSet<AbsenceId> = items_under(&m.absences_by_student, students.clone());
        copy_keys(&mut c.absences, &m.absences, absences.iter().copied());
        copy_keys(
            &mut c.absences_by_student,
            &m.absences_by_student,
            students.clone(),
        );
        copy_keys(
            &mut c.cancelled_absences,
            &m.cancelled_absences,
            absences.iter().copied(),
        );
        let homework: BTreeSet<HomeworkId> = items_under(&m.homework_by_class, [class]);
        copy_keys(&mut c.homework, &m.homework, homework.iter().copied());
        copy_keys(&mut c.homework_by_class, &m.homework_by_class, [class]);
        copy_keys(
            &mut c.withdrawn_homework,
            &m.withdrawn_homework,
            homework.iter().copied(),
        );
        // A participant of a thread sent or received one of its messages.
        let threads: BTreeSet<ThreadId> = persons
            .clone()
            .flat_map(|p| {
                let received = m.received.get(&p).into_iter().flatten();
                let sent = m.sent.get(&p).into_iter().flatten();
                received.chain(sent)
            })
            .filter_map(|x| Some(m.messages.get(x)?.thread_id))
            .collect();
        copy_keys(&mut c.threads, &m.threads, threads.iter().copied());
        let messages: BTreeSet<MessageId> = threads
            .iter()
            .filter_map(|t| m.threads.get(t))
            .flat_map(|t| t.messages.iter().copied())
            .collect();
        copy_keys(&mut c.messages, &m.messages, messages.iter().copied());
        let participants: BTreeSet<PersonId> = threads
            .iter()
            .filter_map(|t| m.threads.get(t))
            .flat_map(|t| t.participants.iter().copied())
            .chain(persons.clone())
            .collect();
        copy_keys(&mut c.received, &m.received, participants.iter().copied());
        copy_keys(&mut c.sent, &m.sent, participants.iter().copied());
        copy_keys(&mut c.audit, &m.audit, persons.clone());
        for (e, by_person) in &m.audit_in {
            let mut kept = BTreeMap::new();
            copy_keys(&mut kept, by_person, persons.clone());
            if !kept.is_empty() {
                c.audit_in.insert(*e, kept);
            }
        }
        let (d, cd) = (&m.discipline, &mut c.discipline);
        copy_keys(
            &mut cd.incidents,
            &d.incidents,
            self.incidents.iter().copied(),
        );
        copy_keys(
            &mut cd.incidents_by_establishment,
            &d.incidents_by_establishment,
            self.incidents
                .iter()
                .filter_map(|i| Some(d.incidents.get(i)?.establishment_id))
                .collect::<BTreeSet<_>>(),
        );
        let punishments: BTreeSet<PunishmentId> =
            items_under(&d.punishments_by_student, students.clone());
        copy_keys(&mut cd.punishments, &d.punishments, punishments);
        copy_keys(
            &mut cd.punishments_by_student,
            &d.punishments_by_student,
            students.clone(),
        );
        let sanctions: BTreeSet<SanctionId> =
            items_under(&d.sanctions_by_student, students.clone());
        copy_keys(&mut cd.sanctions, &d.sanctions, sanctions);
        copy_keys(
            &mut cd.sanctions_by_student,
            &d.sanctions_by_student,
            students.clone(),
        );
        let (sd, csd) = (&m.school_day, &mut c.school_day);
        let courses: BTreeSet<CourseId> = sd
            .courses_by_class
            .get(&class)
            .into_iter()
            .flatten()
            .map(|(_, course)| *course)
            .collect();
        copy_keys(&mut csd.courses, &sd.courses, courses.iter().copied());
        copy_keys(&mut csd.courses_by_class, &sd.courses_by_class, [class]);
        copy_keys(
            &mut csd.courses_by_teacher,
            &sd.courses_by_teacher,
            courses
                .iter()
                .filter_map(|x| Some(sd.courses.get(x)?.teacher_id))
                .collect::<BTreeSet<_>>(),
        );
        csd.motives = sd
            .motives
            .iter()
            .filter(|(_, v)| ours.contains(&v.establishment_id))
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        copy_keys(
            &mut csd.motives_by_establishment,
            &sd.motives_by_establishment,
            ours.iter().copied(),
        );
        copy_keys(&mut csd.holidays, &sd.holidays, ours.iter().copied());
        copy_keys(
            &mut csd.absence_motive,
            &sd.absence_motive,
            absences.iter().copied(),
        );
        // A roll call's absence follows its course, whoever the student is
        // now: no index from course to absences, so this map is walked.
        csd.absence_course = sd
            .absence_course
            .iter()
            .filter(|(_, course)| courses.contains(course))
            .map(|(k, v)| (*k, *v))
            .collect();
        copy_keys(&mut csd.homework, &sd.homework, homework.iter().copied());
        copy_keys(
            &mut csd.homework_by_course,
            &sd.homework_by_course,
            courses.iter().copied(),
        );
        copy_keys(
            &mut csd.homework_done,
            &sd.homework_done,
            homework.iter().copied(),
        );
        let (ev, cev) = (&m.evaluation, &mut c.evaluation);
        let periods: BTreeSet<PeriodId> = items_under(&ev.by_establishment, ours.iter().copied());
        copy_keys(&mut cev.periods, &ev.periods, periods);
        copy_keys(
            &mut cev.by_establishment,
            &ev.by_establishment,
            ours.iter().copied(),
        );
        copy_keys(&mut cev.appreciations, &ev.appreciations, students.clone());
        let (cm, ccm) = (&m.communication, &mut c.communication);
        let attachments: BTreeSet<AttachmentId> =
            items_under::<_, AttachmentId, _>(&cm.of_message, messages.iter().copied())
                .into_iter()
                .chain(items_under::<_, AttachmentId, _>(
                    &cm.of_homework,
                    homework.iter().copied(),
                ))
                .chain(items_under::<_, AttachmentId, _>(
                    &cm.of_absence,
                    absences.iter().copied(),
                ))
                .collect();
        copy_keys(
            &mut ccm.attachments,
            &cm.attachments,
            attachments.iter().copied(),
        );
        copy_keys(
            &mut ccm.uploaded_by,
            &cm.uploaded_by,
            attachments
                .iter()
                .filter_map(|a| Some(cm.attachments.get(a)?.uploaded_by))
                .collect::<BTreeSet<_>>(),
        );
        copy_keys(
            &mut ccm.of_message,
            &cm.of_message,
            messages.iter().copied(),
        );
        copy_keys(
            &mut ccm.of_homework,
            &cm.of_homework,
            homework.iter().copied(),
        );
        copy_keys(
            &mut ccm.of_absence,
            &cm.of_absence,
            absences.iter().copied(),
        );
        copy_keys(&mut ccm.preferences, &cm.preferences, persons.clone());
        copy_keys(&mut ccm.push, &cm.push, persons);
        c
    }
}

impl Router for ForClass<'_> {
    fn route(&self, entry: Entry<'_>) -> Option<Place> {
        self.wanted(entry).then_some(None)
    }
}

/// The parts being filled, all at the model's position.
struct Parts<'r> {
    router: &'r dyn Router,
    position: Position,
    out: BTreeMap<Place, ReadModel>,
}

impl Parts<'_> {
    fn of(&mut self, entry: Entry<'_>) -> Option<&mut ReadModel> {
        let place = self.router.route(entry)?;
        let position = self.position;
        Some(self.out.entry(place).or_insert_with(|| ReadModel {
            position,
            ..ReadModel::default()
        }))
    }
}

/// Copies the entries of a map into the parts their key's entry goes to.
macro_rules! by_key {
    ($parts:ident, $src:expr, $($field:ident).+, $entry:expr) => {
        for (k, v) in $src {
            if let Some(m) = $parts.of($entry(k, v)) {
                m.$($field).+.insert(k.clone(), v.clone());
            }
        }
    };
}

/// Splits a map of sets (or lists, order kept) item by item.
macro_rules! by_item {
    ($parts:ident, $src:expr, $($field:ident).+, $entry:expr) => {
        for (k, items) in $src {
            if items.is_empty() {
                if let Some(m) = $parts.of(Entry::Empty) {
                    m.$($field).+.insert(k.clone(), Default::default());
                }
            }
            for item in items {
                if let Some(m) = $parts.of($entry(item)) {
                    Extend::extend(m.$($field).+.entry(k.clone()).or_default(), [item.clone()]);
                }
            }
        }
    };
}

impl ReadModel {
    /// A model holding exactly the entries of `scope`, at this model's position.
    pub fn slice(&self, scope: &Scope) -> ReadModel {
        let mut parts = match scope {
            Scope::Directory => self.split(|p| p.is_none()),
            Scope::Partition(p) if p.is_directory() => self.split(|p| p.is_none()),
            Scope::Partition(p) => match self.place_of_partition(p) {
                Some(wanted) => self.split(|p| p == wanted),
                None => BTreeMap::new(),
            },
            Scope::Class(c) => {
                let router = ForClass::new(self, *c);
                router.candidates().distribute(&router)
            }
        };
        let mut slice = parts.pop_first().map(|(_, m)| m).unwrap_or_default();
        slice.position = self.position;
        slice
    }

    /// A class's slice cut by walking every entry of the model: the
    /// reference the index-driven cut of [`Self::slice`] is tested against.
    #[doc(hidden)]
    pub fn class_slice_by_walking(&self, class: ClassId) -> ReadModel {
        let mut parts = self.distribute(&ForClass::new(self, class));
        let mut slice = parts.pop_first().map(|(_, m)| m).unwrap_or_default();
        slice.position = self.position;
        slice
    }

    /// The slices of every partition the model holds an entry of, by
    /// partition (the directory's under `Partition::directory()`), in one pass.
    pub fn slices(&self) -> BTreeMap<Partition, ReadModel> {
        self.slices_of(|_| true)
    }

    /// The slices of the partitions `keep` accepts.
    pub fn slices_of(&self, keep: impl Fn(&Partition) -> bool) -> BTreeMap<Partition, ReadModel> {
        let names: BTreeMap<Place, Partition> = std::iter::once((None, Partition::directory()))
            .chain(
                self.establishments
                    .values()
                    .map(|e| (Some(e.id), Partition::establishment(&e.uai))),
            )
            .collect();
        let mut slices: BTreeMap<Partition, ReadModel> = BTreeMap::new();
        for (place, model) in self.split(|p| names.get(&p).is_some_and(&keep)) {
            let Some(name) = names.get(&place) else {
                continue;
            };
            // Two establishments with one UAI (never given twice) share it.
            match slices.entry(name.clone()) {
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(model);
                }
                std::collections::btree_map::Entry::Occupied(mut slot) => {
                    slot.get_mut().absorb(model)
                }
            }
        }
        slices
    }

    /// The partition of a place (an unknown establishment reads as the directory).
    pub(crate) fn partition_of_place(&self, place: Place) -> Partition {
        place
            .and_then(|e| self.establishments.get(&e))
            .map(|e| Partition::establishment(&e.uai))
            .unwrap_or_else(Partition::directory)
    }

    /// The place of a partition; `None` for a UAI no establishment has.
    pub(crate) fn place_of_partition(&self, partition: &Partition) -> Option<Place> {
        if partition.is_directory() {
            return Some(None);
        }
        self.establishments
            .values()
            .find(|e| e.uai == partition.as_str())
            .map(|e| Some(e.id))
    }

    fn split(&self, keep: impl Fn(Place) -> bool) -> BTreeMap<Place, ReadModel> {
        self.distribute(&ByPlace { model: self, keep })
    }

    /// Copies every entry into the part its router gives it.
    fn distribute(&self, router: &dyn Router) -> BTreeMap<Place, ReadModel> {
        use Entry as E;
        let mut parts = Parts {
            router,
            position: self.position,
            out: BTreeMap::new(),
        };
        let p = &mut parts;
        let ReadModel {
            position: _,
            grade_figures_moved_at: _,
            establishments,
            classes,
            persons,
            person_by_external_id,
            students,
            student_by_person,
            children,
            enrolments,
            teachings,
            assessments,
            assessments_by_class,
            grades,
            grades_by_student,
            grades_by_assessment,
            absences,
            absences_by_student,
            cancelled_absences,
            homework,
            homework_by_class,
            withdrawn_homework,
            messages,
            threads,
            received,
            sent,
            audit,
            audit_in,
            discipline,
            school_day,
            evaluation,
            communication,
        } = self;
        by_key!(
            p,
            establishments,
            establishments,
            |k: &EstablishmentId, _| { E::Establishment(*k) }
        );
        by_key!(p, classes, classes, |k: &ClassId, _| E::Class(*k));
        by_key!(p, persons, persons, |k: &PersonId, _| E::Person(*k));
        by_key!(
            p,
            person_by_external_id,
            person_by_external_id,
            |_, v: &PersonId| { E::Person(*v) }
        );
        by_key!(p, students, students, |k: &StudentId, _| E::Student(*k));
        by_key!(
            p,
            student_by_person,
            student_by_person,
            |_, v: &StudentId| { E::Student(*v) }
        );
        by_item!(p, children, children, |s: &StudentId| E::Student(*s));
        by_key!(p, enrolments, enrolments, |k: &StudentId, _| E::Student(*k));
        for t in teachings {
            if let Some(m) = p.of(E::Teaching(t)) {
                m.teachings.insert(t.clone());
            }
        }
        by_key!(p, assessments, assessments, |k: &AssessmentId, _| {
            E::Assessment(*k)
        });
        by_item!(
            p,
            assessments_by_class,
            assessments_by_class,
            |a: &AssessmentId| { E::Assessment(*a) }
        );
        by_key!(p, grades, grades, |k: &GradeId, _| E::Grade(*k));
        by_item!(p, grades_by_student, grades_by_student, |g: &GradeId| {
            E::Grade(*g)
        });
        by_item!(
            p,
            grades_by_assessment,
            grades_by_assessment,
            |g: &GradeId| { E::Grade(*g) }
        );
        by_key!(p, absences, absences, |k: &AbsenceId, _| E::Absence(*k));
        by_item!(
            p,
            absences_by_student,
            absences_by_student,
            |a: &AbsenceId| { E::Absence(*a) }
        );
        by_key!(
            p,
            cancelled_absences,
            cancelled_absences,
            |k: &AbsenceId, _| { E::Absence(*k) }
        );
        by_key!(p, homework, homework, |k: &HomeworkId, _| E::Homework(*k));
        by_item!(p, homework_by_class, homework_by_class, |h: &HomeworkId| {
            E::Homework(*h)
        });
        by_key!(
            p,
            withdrawn_homework,
            withdrawn_homework,
            |k: &HomeworkId, _| { E::Homework(*k) }
        );
        by_key!(p, messages, messages, |k: &MessageId, _| E::Message(*k));
        by_key!(p, threads, threads, |k: &ThreadId, _| E::Thread(*k));
        by_item!(p, received, received, |m: &MessageId| E::Message(*m));
        by_item!(p, sent, sent, |m: &MessageId| E::Message(*m));
        by_key!(p, audit, audit, |k: &PersonId, _| E::Audit(None, *k));
        for (e, by_person) in audit_in {
            for (k, v) in by_person {
                if let Some(m) = p.of(E::Audit(Some(*e), *k)) {
                    m.audit_in.entry(*e).or_default().insert(*k, v.clone());
                }
            }
        }
        let Discipline {
            incidents,
            incidents_by_establishment,
            punishments,
            punishments_by_student,
            sanctions,
            sanctions_by_student,
        } = discipline;
        by_key!(p, incidents, discipline.incidents, |k: &IncidentId, _| {
            E::Incident(*k)
        });
        by_item!(
            p,
            incidents_by_establishment,
            discipline.incidents_by_establishment,
            |i: &IncidentId| E::Incident(*i)
        );
        by_key!(
            p,
            punishments,
            discipline.punishments,
            |k: &PunishmentId, _| { E::Punishment(*k) }
        );
        by_item!(
            p,
            punishments_by_student,
            discipline.punishments_by_student,
            |x: &PunishmentId| E::Punishment(*x)
        );
        by_key!(p, sanctions, discipline.sanctions, |k: &SanctionId, _| {
            E::Sanction(*k)
        });
        by_item!(
            p,
            sanctions_by_student,
            discipline.sanctions_by_student,
            |x: &SanctionId| E::Sanction(*x)
        );
        let SchoolDay {
            courses,
            courses_by_class,
            courses_by_teacher,
            motives,
            motives_by_establishment,
            holidays,
            absence_motive,
            absence_course,
            homework: details,
            homework_by_course,
            homework_done,
        } = school_day;
        by_key!(p, courses, school_day.courses, |k: &CourseId, _| E::Course(
            *k
        ));
        by_item!(
            p,
            courses_by_class,
            school_day.courses_by_class,
            |c: &(_, CourseId)| E::Course(c.1)
        );
        by_item!(
            p,
            courses_by_teacher,
            school_day.courses_by_teacher,
            |c: &(_, CourseId)| E::Course(c.1)
        );
        by_key!(
            p,
            motives,
            school_day.motives,
            |_, v: &crate::school_day::Motive| E::Setting(v.establishment_id)
        );
        by_key!(
            p,
            motives_by_establishment,
            school_day.motives_by_establishment,
            |k: &EstablishmentId, _| E::Setting(*k)
        );
        by_key!(
            p,
            holidays,
            school_day.holidays,
            |k: &EstablishmentId, _| { E::Setting(*k) }
        );
        by_key!(
            p,
            absence_motive,
            school_day.absence_motive,
            |k: &AbsenceId, _| { E::Absence(*k) }
        );
        // A roll call's absences are the course's (its class's partition).
        by_key!(
            p,
            absence_course,
            school_day.absence_course,
            |_, c: &CourseId| { E::Course(*c) }
        );
        by_key!(p, details, school_day.homework, |k: &HomeworkId, _| {
            E::Homework(*k)
        });
        by_item!(
            p,
            homework_by_course,
            school_day.homework_by_course,
            |h: &HomeworkId| E::Homework(*h)
        );
        by_key!(
            p,
            homework_done,
            school_day.homework_done,
            |k: &HomeworkId, _| { E::Homework(*k) }
        );
        let Evaluation {
            periods,
            by_establishment,
            appreciations,
        } = evaluation;
        by_key!(p, periods, evaluation.periods, |k: &PeriodId, _| E::Period(
            *k
        ));
        by_item!(
            p,
            by_establishment,
            evaluation.by_establishment,
            |x: &PeriodId| { E::Period(*x) }
        );
        for (s, sheets) in appreciations {
            for (period, sheet) in sheets {
                if let Some(m) = p.of(E::Appreciation(*s, *period)) {
                    m.evaluation
                        .appreciations
                        .entry(*s)
                        .or_default()
                        .insert(*period, sheet.clone());
                }
            }
        }
        let Communication {
            attachments,
            uploaded_by,
            of_message,
            of_homework,
            of_absence,
            preferences,
            push,
        } = communication;
        by_key!(
            p,
            attachments,
            communication.attachments,
            |k: &AttachmentId, _| { E::Attachment(*k) }
        );
        by_item!(
            p,
            uploaded_by,
            communication.uploaded_by,
            |a: &AttachmentId| { E::Attachment(*a) }
        );
        by_key!(
            p,
            of_message,
            communication.of_message,
            |k: &MessageId, _| { E::Message(*k) }
        );
        by_key!(
            p,
            of_homework,
            communication.of_homework,
            |k: &HomeworkId, _| { E::Homework(*k) }
        );
        by_key!(
            p,
            of_absence,
            communication.of_absence,
            |k: &AbsenceId, _| { E::Absence(*k) }
        );
        by_key!(
            p,
            preferences,
            communication.preferences,
            |k: &PersonId, _| { E::Person(*k) }
        );
        by_key!(p, push, communication.push, |k: &PersonId, _| E::Person(*k));
        parts.out
    }

    /// Adds the entries of `part` (another slice of the same log): the union
    /// of the two, indexes merged in log order, position the later of both.
    pub fn absorb(&mut self, part: ReadModel) {
        *self = union_of(vec![std::mem::take(self), part], 1);
    }

    // ---- The facts a slice and a partition's fold read ----------------------

    /// The class a student was in just before `at` (the enrolments before it).
    pub(crate) fn class_at(&self, student: StudentId, at: Position) -> Option<ClassId> {
        let list = self.enrolments.get(&student)?;
        let before = list.partition_point(|(p, _)| *p < at);
        before.checked_sub(1).map(|i| list[i].1)
    }

    /// The person of a student enrolled before `at`.
    pub(crate) fn student_at(&self, student: StudentId, at: Position) -> Option<PersonId> {
        self.class_at(student, at)?;
        self.students.get(&student).map(|s| s.person_id)
    }

    /// The establishment of a student's class just before `at`.
    pub(crate) fn establishment_of_student_at(
        &self,
        student: StudentId,
        at: Position,
    ) -> Option<EstablishmentId> {
        self.establishment_of_class(self.class_at(student, at)?)
    }

    /// `e` when it is a known establishment (a partition has a UAI).
    fn known(&self, e: EstablishmentId) -> Place {
        self.establishments.contains_key(&e).then_some(e)
    }

    fn class_place(&self, class: ClassId) -> Place {
        self.known(self.establishment_of_class(class)?)
    }

    fn student_place(&self, student: StudentId) -> Place {
        self.class_place(self.students.get(&student)?.class_id)
    }

    fn person_place(&self, person: PersonId) -> Place {
        self.known(self.persons.get(&person)?.establishment_id?)
    }

    fn assessment_place(&self, a: AssessmentId) -> Place {
        self.class_place(self.assessments.get(&a)?.class_id)
    }

    fn absence_place(&self, id: AbsenceId) -> Place {
        match self.absences.get(&id) {
            Some(a) => self.class_place(self.class_at(a.student_id, a.position)?),
            None => self.cancelled_absences.get(&id).copied().flatten(),
        }
    }

    fn homework_place(&self, id: HomeworkId) -> Place {
        match self.homework.get(&id) {
            Some(h) => self.class_place(h.class_id),
            None => self.withdrawn_homework.get(&id).copied().flatten(),
        }
    }

    /// A conversation's: its first message's sender's or recipients' school
    /// (as `partition_of` decides).
    fn thread_place(&self, id: ThreadId) -> Place {
        let first = self
            .messages
            .get(self.threads.get(&id)?.messages.first()?)?;
        std::iter::once(&first.from)
            .chain(&first.to)
            .find_map(|p| self.person_place(*p))
    }

    fn message_place(&self, id: MessageId) -> Place {
        self.thread_place(self.messages.get(&id)?.thread_id)
    }

    fn course_place(&self, id: CourseId) -> Place {
        self.known(self.school_day.courses.get(&id)?.establishment_id)
    }

    fn period_place(&self, id: PeriodId) -> Place {
        self.known(self.evaluation.periods.get(&id)?.establishment_id)
    }

    fn attachment_place(&self, id: AttachmentId) -> Place {
        self.person_place(self.communication.attachments.get(&id)?.uploaded_by)
    }

    fn place_of_entry(&self, entry: Entry<'_>) -> Place {
        let d = &self.discipline;
        match entry {
            Entry::Establishment(_)
            | Entry::Setting(_)
            | Entry::Class(_)
            | Entry::Person(_)
            | Entry::Student(_)
            | Entry::Teaching(_) => None,
            Entry::Assessment(a) => self.assessment_place(a),
            Entry::Grade(g) => self.assessment_place(self.grades.get(&g)?.assessment_id),
            Entry::Absence(a) => self.absence_place(a),
            Entry::Homework(h) => self.homework_place(h),
            Entry::Message(m) => self.message_place(m),
            Entry::Thread(t) => self.thread_place(t),
            Entry::Audit(place, _) => place,
            Entry::Course(c) => self.course_place(c),
            Entry::Period(p) | Entry::Appreciation(_, p) => self.period_place(p),
            Entry::Incident(i) => self.known(d.incidents.get(&i)?.establishment_id),
            Entry::Punishment(p) => self.known(d.punishments.get(&p)?.establishment_id?),
            Entry::Sanction(s) => self.known(d.sanctions.get(&s)?.establishment_id),
            Entry::Attachment(a) => self.attachment_place(a),
            Entry::Empty => None,
        }
    }

    /// The place of the event about to be folded into this (whole) model:
    /// the partition of its stream, as `crate::partition::partition_of`
    /// decided it when the stream was opened, read from what the event
    /// refers to (a test holds the two to the same answer on generated logs).
    pub(crate) fn place_of_event(&self, event: &DomainEvent) -> Place {
        use DomainEvent::*;
        let absence = |id: AbsenceId, student: StudentId| {
            if self.absences.contains_key(&id) || self.cancelled_absences.contains_key(&id) {
                self.absence_place(id)
            } else {
                self.student_place(student)
            }
        };
        let thread = |id: ThreadId| self.thread_place(id);
        match event {
            EstablishmentCreated(_) | ClassCreated(_) | TeacherAssigned(_) => None,
            PersonRegistered(_) | StudentEnrolled(_) | GuardianLinked(_) => None,
            PersonErased(_) | AccountClosed(_) => None,
            AbsenceReasonDefined(_) | HolidaysSet(_) => None,
            NotificationPreferenceSet(_) | WebPushRegistered(_) | WebPushDropped(_) => None,
            // interop (issue 17): the roster's changes are the directory's.
            GuardianUnlinked(_) | TeacherUnassigned(_) | PersonRenamed(_) => None,
            ClassRenamed(_) | SchoolYearStarted(_) | ClassClosed(_) => None,
            AssessmentCreated(e) => self.class_place(e.class_id),
            GradeRecorded(e) => self.assessment_place(e.assessment_id),
            GradeCorrected(e) => self.assessment_place(e.assessment_id),
            AbsenceReported(e) => absence(e.absence_id, e.student_id),
            AbsenceDeclared(e) => absence(e.absence_id, e.student_id),
            DeclaredAbsenceConfirmed(e) => absence(e.absence_id, e.student_id),
            AbsenceJustified(e) => absence(e.absence_id, e.student_id),
            JustificationReviewed(e) => absence(e.absence_id, e.student_id),
            AbsenceCancelled(e) => absence(e.absence_id, e.student_id),
            AbsenceMotiveGiven(e) => absence(e.absence_id, e.student_id),
            HomeworkAssigned(e) => self.class_place(e.class_id),
            HomeworkAmended(e) => self.class_place(e.class_id),
            HomeworkWithdrawn(e) => self.class_place(e.class_id),
            MessageSent(e) => match self.threads.get(&e.thread_id) {
                Some(t) if !t.messages.is_empty() => thread(e.thread_id),
                _ => std::iter::once(&e.from)
                    .chain(&e.to)
                    .find_map(|p| self.person_place(*p)),
            },
            MessageRead(e) => thread(e.thread_id),
            CoursePlanned(e) => self.known(e.establishment_id),
            CourseCancelled(e) => self.class_place(e.class_id),
            RollCallTaken(e) => self.class_place(e.class_id),
            LessonContentRecorded(e) => self.class_place(e.class_id),
            HomeworkDetailed(e) => self.class_place(e.class_id),
            HomeworkMarkedDone(e) => self.class_place(e.class_id),
            PeriodsDefined(e) => self.known(e.establishment_id),
            PeriodClosed(e) => self.known(e.establishment_id),
            PeriodReopened(e) => self.known(e.establishment_id),
            AppreciationWritten(e) => self.student_place(e.student_id),
            AttachmentUploaded(e) => self.person_place(e.uploaded_by),
            AttachmentsLinked(e) => match e.to {
                AttachedTo::Message { thread_id, .. } => thread(thread_id),
                AttachedTo::Justification(a) => match e.student_id {
                    Some(s) => absence(a, s),
                    None => self.absence_place(a),
                },
                AttachedTo::Homework(h) => self.homework_place(h),
            },
            IncidentReported(e) => self.known(e.establishment_id),
            PunishmentGiven(e) => self.student_place(e.student_id),
            SanctionImposed(e) => self.known(e.establishment_id),
            SanctionErased(e) => match self.discipline.sanctions.get(&e.sanction_id) {
                Some(s) => self.known(s.establishment_id),
                None => self.student_place(e.student_id),
            },
        }
    }

    /// The partitions whose slices folding `event` changes; `None`: any of
    /// them (an erasure, a person, class or establishment defined again,
    /// which may move entries between partitions).
    pub fn partitions_touched(&self, event: &DomainEvent) -> Option<Vec<Partition>> {
        use DomainEvent::*;
        let mut places = vec![self.place_of_event(event)];
        match event {
            PersonErased(_) => return None,
            PersonRegistered(e) if self.persons.contains_key(&e.person_id) => return None,
            ClassCreated(e) if self.classes.contains_key(&e.class_id) => return None,
            EstablishmentCreated(e) if self.establishments.contains_key(&e.establishment_id) => {
                return None
            }
            // An entry written again under its id (never by the domain, whose
            // ids are fresh) may change partition: its old row must not keep it.
            AssessmentCreated(e) if self.assessments.contains_key(&e.assessment_id) => return None,
            GradeRecorded(e) if self.grades.contains_key(&e.grade_id) => return None,
            MessageSent(e) if self.messages.contains_key(&e.message_id) => return None,
            AbsenceReported(e) if self.absence_known(e.absence_id) => return None,
            AbsenceDeclared(e) if self.absence_known(e.absence_id) => return None,
            HomeworkAssigned(e)
                if self.homework.contains_key(&e.homework_id)
                    || self.withdrawn_homework.contains_key(&e.homework_id) =>
            {
                return None
            }
            CoursePlanned(e) if self.school_day.courses.contains_key(&e.course_id) => return None,
            PeriodsDefined(e)
                if e.periods
                    .iter()
                    .any(|p| self.evaluation.periods.contains_key(&p.period_id)) =>
            {
                return None
            }
            // An index emptied keeps its key in the directory's slice.
            AbsenceCancelled(_)
            | HomeworkWithdrawn(_)
            | HomeworkDetailed(_)
            | HomeworkMarkedDone(_) => places.push(None),
            AttachmentsLinked(e) => {
                places.extend(e.attachments.iter().map(|a| self.attachment_place(*a)));
            }
            MessageRead(e) => places.push(self.message_place(e.message_id)),
            _ => {}
        }
        places.sort();
        places.dedup();
        Some(
            places
                .into_iter()
                .map(|p| self.partition_of_place(p))
                .collect(),
        )
    }

    fn absence_known(&self, id: AbsenceId) -> bool {
        self.absences.contains_key(&id) || self.cancelled_absences.contains_key(&id)
    }

    /// The partition of the event about to be folded (see `place_of_event`).
    pub fn partition_of_logged(&self, event: &DomainEvent) -> Partition {
        self.partition_of_place(self.place_of_event(event))
    }
}

// ---- Folding partitions in parallel -----------------------------------------

/// Links and erasures, the two ways a partition's events reach beyond it.
type Links = Vec<(Position, AttachmentsLinked)>;

/// The directory's fold, the first step of a parallel fold: it folds the
/// directory partition's events in log order, and keeps the erasures, which
/// every partition's fold applies at their position.
#[derive(Debug, Default)]
pub struct DirectoryFold {
    model: ReadModel,
    links: Links,
    erasures: Vec<(Position, PersonId)>,
    /// Built by the first partition folded against it, once it is complete.
    students: std::sync::OnceLock<StudentIndex>,
}

impl DirectoryFold {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the directory partition's next event.
    pub fn apply(&mut self, logged: LoggedEvent) {
        self.students.take();
        if let DomainEvent::PersonErased(e) = &logged.event {
            self.erasures.push((logged.position, e.person_id));
        }
        let mut aside = Aside {
            directory: None,
            place: None,
            links: &mut self.links,
            students: None,
        };
        self.model.apply_in(logged, Some(&mut aside));
    }

    /// The directory as folded so far (partition folds read it).
    pub fn model(&self) -> &ReadModel {
        &self.model
    }

    /// The partitions the directory knows (one per establishment).
    pub fn partitions(&self) -> Vec<Partition> {
        self.model
            .establishments
            .values()
            .map(|e| Partition::establishment(&e.uai))
            .collect()
    }

    /// One partition's fold against this directory (folded first, to at
    /// least the partition's last event).
    pub fn partition(&self, partition: &Partition) -> PartitionFold {
        PartitionFold {
            place: self.model.place_of_partition(partition).flatten(),
            model: ReadModel::new(),
            links: Vec::new(),
            next_erasure: 0,
        }
    }

    /// The union of the directory and the partitions folded against it, the
    /// attachments' link sides applied in log order: the model a fold of the
    /// whole log in order gives.
    pub fn join(self, parts: impl IntoIterator<Item = PartitionFold>, threads: usize) -> ReadModel {
        let DirectoryFold {
            model,
            mut links,
            erasures,
            students: _,
        } = self;
        let mut models = vec![model];
        for mut part in parts {
            part.erase_until(&erasures, Position::MAX);
            models.push(part.model);
            links.append(&mut part.links);
        }
        let mut model = union_of(models, threads);
        links.sort_by_key(|(p, _)| *p);
        for (_, link) in links {
            model.communication.link_attachments(link);
        }
        model
    }
}

/// One establishment partition's fold in a parallel fold (see
/// [`DirectoryFold`]): its events in log order, each reading the directory as
/// it was at the event's position.
#[derive(Debug)]
pub struct PartitionFold {
    place: Place,
    model: ReadModel,
    links: Links,
    /// The directory's erasures applied so far.
    next_erasure: usize,
}

impl PartitionFold {
    /// Applies the partition's next event; `directory` is the fold it was
    /// made by.
    pub fn apply(&mut self, directory: &DirectoryFold, logged: LoggedEvent) {
        self.erase_until(&directory.erasures, logged.position);
        let mut aside = Aside {
            directory: Some(&directory.model),
            place: self.place,
            links: &mut self.links,
            students: Some(
                directory
                    .students
                    .get_or_init(|| StudentIndex::of(&directory.model)),
            ),
        };
        self.model.apply_in(logged, Some(&mut aside));
    }

    /// An erasure blanks what the partition holds of the person when it is
    /// folded: the partition's events before it.
    fn erase_until(&mut self, erasures: &[(Position, PersonId)], before: Position) {
        while let Some((at, person)) = erasures.get(self.next_erasure) {
            if *at >= before {
                break;
            }
            self.model.erase(*person);
            self.next_erasure += 1;
        }
    }

    /// The last position folded.
    pub fn position(&self) -> Position {
        self.model.position
    }
}

/// Folds `events` (the whole log from position 1, each with its partition)
/// with the partitions in parallel on `threads` threads: the directory
/// first, then the establishments' partitions, then their union. Equal to
/// folding them in order ([`ReadModel::apply_all`]); a log whose events lack
/// a partition (before the backfill) is folded in order.
pub fn fold_in_parallel(events: &[RecordedEvent], threads: usize) -> Result<ReadModel, ApplyError> {
    if events.iter().any(|e| e.partition.is_none()) {
        let mut model = ReadModel::new();
        model.apply_all(events)?;
        return Ok(model);
    }
    let mut directory = DirectoryFold::new();
    let mut by_partition: BTreeMap<&Partition, Vec<&RecordedEvent>> = BTreeMap::new();
    for e in events {
        match &e.partition {
            Some(p) if !p.is_directory() => by_partition.entry(p).or_default().push(e),
            _ => directory.apply(LoggedEvent::decode(e)?),
        }
    }
    let work = std::sync::Mutex::new(by_partition.into_iter());
    let folded = &directory;
    let parts = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let next = work.lock().map(|mut w| w.next());
                        let Ok(Some((partition, events))) = next else {
                            break;
                        };
                        let mut fold = folded.partition(partition);
                        for e in events {
                            fold.apply(folded, LoggedEvent::decode(e)?);
                        }
                        done.push(fold);
                    }
                    Ok::<_, ApplyError>(done)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(directory.join(parts.into_iter().flatten(), threads))
}

/// The union of `parts` (slices of the same log, in log order of their
/// partitions): each map gathered from every part at once by a k-way merge
/// of their sorted entries, so an entry moves once whatever the number of
/// parts (merging pairwise rebuilt every map once per level: at 200
/// establishments, eight times). A key held by several parts keeps the
/// latest part's value, or merges the values where the map is an index.
/// The maps are gathered on up to `threads` threads, the largest first.
/// (Every field of the model must be gathered here: the slices tests compare
/// the union of a log's slices with its whole fold, every field filled.)
pub fn union_of(mut parts: Vec<ReadModel>, threads: usize) -> ReadModel {
    if parts.len() <= 1 {
        return parts.pop().unwrap_or_default();
    }
    // Every part's value of one field, taken out of the parts.
    macro_rules! all {
        ($($field:tt)+) => {
            parts
                .iter_mut()
                .map(|p| std::mem::take(&mut p.$($field)+))
                .collect::<Vec<_>>()
        };
    }
    let mut out = ReadModel {
        position: parts.iter().map(|p| p.position).max().unwrap_or(0),
        grade_figures_moved_at: crate::model::GradeFiguresMovedAt(
            parts
                .iter()
                .map(ReadModel::grade_figures_version)
                .max()
                .unwrap_or(0),
        ),
        ..ReadModel::default()
    };
    // Each job fills its own fields of `out` (closures borrow disjoint fields).
    let mut jobs: Vec<Box<dyn FnOnce() + Send + '_>> = Vec::new();
    macro_rules! job {
        ($($field:ident).+ => $merge:expr) => {
            job!($($field).+ with |taken| gather(taken, $merge))
        };
        ($($field:ident).+ with $union:expr) => {{
            let taken = all!($($field).+);
            let slot = &mut out.$($field).+;
            jobs.push(Box::new(move || *slot = $union(taken)));
        }};
    }
    // The largest first (a grade, an absence, an audit entry per event).
    job!(grades => keep_later);
    job!(audit => merge_positions);
    job!(absences => keep_later);
    job!(audit_in => |a, b| join_with(a, b, merge_positions));
    job!(grades_by_student => extend);
    job!(grades_by_assessment => extend);
    job!(absences_by_student => extend);
    job!(school_day.courses => keep_later);
    job!(school_day.courses_by_class => extend);
    job!(school_day.courses_by_teacher => extend);
    job!(school_day.absence_course => keep_later);
    job!(school_day.absence_motive => keep_later);
    {
        // Threads and mailboxes list messages in log order: they need the
        // messages gathered first.
        let (messages, threads_of, received, sent) =
            (all!(messages), all!(threads), all!(received), all!(sent));
        let (m, t, r, s) = (
            &mut out.messages,
            &mut out.threads,
            &mut out.received,
            &mut out.sent,
        );
        jobs.push(Box::new(move || {
            *m = gather(messages, keep_later);
            let messages = &*m;
            let at = |id: &MessageId| messages.get(id).map_or(0, |m| m.position);
            let in_log_order = |a: &mut Vec<MessageId>, b: Vec<MessageId>| {
                a.extend(b);
                a.sort_by_key(at);
            };
            *t = gather(
                threads_of,
                |a: &mut crate::model::Thread, b: crate::model::Thread| {
                    a.messages.extend(b.messages);
                    a.messages.sort_by_key(at);
                    a.participants.extend(b.participants);
                },
            );
            *r = gather(received, in_log_order);
            *s = gather(sent, in_log_order);
        }));
    }
    job!(homework => keep_later);
    job!(homework_by_class => extend);
    job!(school_day.homework => keep_later);
    job!(school_day.homework_by_course => extend);
    job!(school_day.homework_done => extend);
    job!(establishments => keep_later);
    job!(classes => keep_later);
    job!(persons => keep_later);
    job!(person_by_external_id => keep_later);
    job!(students => keep_later);
    job!(student_by_person => keep_later);
    job!(children => extend);
    job!(enrolments => |a: &mut Vec<(Position, ClassId)>, b| {
        a.extend(b);
        a.sort_unstable();
    });
    job!(teachings with |taken: Vec<BTreeSet<Teaching>>| taken.into_iter().flatten().collect());
    job!(assessments => keep_later);
    job!(assessments_by_class => extend);
    job!(cancelled_absences => keep_later);
    job!(withdrawn_homework => keep_later);
    job!(discipline.incidents => keep_later);
    job!(discipline.incidents_by_establishment => extend);
    job!(discipline.punishments => keep_later);
    job!(discipline.punishments_by_student => extend);
    job!(discipline.sanctions => keep_later);
    job!(discipline.sanctions_by_student => extend);
    job!(school_day.motives => keep_later);
    job!(school_day.motives_by_establishment => keep_later);
    job!(school_day.holidays => keep_later);
    job!(evaluation.periods => keep_later);
    job!(evaluation.by_establishment => keep_later);
    job!(evaluation.appreciations => join);
    job!(communication.attachments => keep_later);
    job!(communication.uploaded_by => append);
    job!(communication.of_message => append);
    job!(communication.of_homework => append);
    job!(communication.of_absence => append);
    job!(communication.preferences => keep_later);
    job!(communication.push => keep_later);
    crate::parallel::in_parallel(jobs, threads, |job| job());
    out
}

fn keep_later<V>(kept: &mut V, later: V) {
    *kept = later;
}

fn extend<T: Ord>(set: &mut BTreeSet<T>, more: BTreeSet<T>) {
    set.extend(more);
}

fn append<T>(list: &mut Vec<T>, more: Vec<T>) {
    list.extend(more);
}

/// The union of `maps` (in part order) by a k-way merge of their entries:
/// each entry moves once; a key in several maps folds their values with
/// `merge`, earlier first.
fn gather<K: Ord, V>(
    maps: Vec<BTreeMap<K, V>>,
    mut merge: impl FnMut(&mut V, V),
) -> BTreeMap<K, V> {
    let mut maps: Vec<BTreeMap<K, V>> = maps.into_iter().filter(|m| !m.is_empty()).collect();
    if maps.len() <= 1 {
        return maps.pop().unwrap_or_default();
    }
    let mut entries = Vec::with_capacity(maps.iter().map(BTreeMap::len).sum());
    let mut parts: Vec<_> = maps.into_iter().map(BTreeMap::into_iter).collect();
    let mut heads: Vec<Option<V>> = Vec::with_capacity(parts.len());
    // The smallest key first, and of equal keys the earlier part.
    let mut next = std::collections::BinaryHeap::with_capacity(parts.len());
    for (i, part) in parts.iter_mut().enumerate() {
        let head = part.next().map(|(k, v)| {
            next.push(std::cmp::Reverse((k, i)));
            v
        });
        heads.push(head);
    }
    while let Some(std::cmp::Reverse((key, i))) = next.pop() {
        let Some(value) = heads[i].take() else {
            continue;
        };
        if let Some((k, v)) = parts[i].next() {
            heads[i] = Some(v);
            next.push(std::cmp::Reverse((k, i)));
        }
        match entries.last_mut() {
            Some((last, kept)) if *last == key => merge(kept, value),
            _ => entries.push((key, value)),
        }
    }
    // Sorted already: the collection checks it in one pass and builds the
    // tree bottom-up.
    entries.into_iter().collect()
}

/// Moves `from`'s entries into `into`; the same key in both keeps `from`'s.
fn join<K: Ord, V>(into: &mut BTreeMap<K, V>, mut from: BTreeMap<K, V>) {
    if into.is_empty() {
        *into = from;
    } else {
        into.append(&mut from);
    }
}

/// Moves `from`'s entries into `into`, merging values of the same key.
fn join_with<K: Ord, V>(
    into: &mut BTreeMap<K, V>,
    from: BTreeMap<K, V>,
    mut merge: impl FnMut(&mut V, V),
) {
    if into.is_empty() {
        *into = from;
        return;
    }
    for (k, v) in from {
        match into.entry(k) {
            std::collections::btree_map::Entry::Occupied(mut o) => merge(o.get_mut(), v),
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(v);
            }
        }
    }
}

fn merge_positions(a: &mut Vec<Position>, b: Vec<Position>) {
    a.extend(b);
    a.sort_unstable();
    a.dedup();
}
