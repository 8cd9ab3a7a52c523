//! Roster look-ups (for authorization and command facts) and the parent and
//! student view: grades by subject with /20 averages, absences, homework and
//! messages. Everything is computed from the model in memory at query time, so
//! a guardian's dashboard costs no database round trip at all.
//!
//! Averages: a grade counts only when GRADED; its score is normalised to /20
//! (`score / outOf * 20`) and weighted by the assessment's coefficient. A
//! student's subject average covers all their grades in that subject; the
//! class average of a subject is the mean of the subject averages of the
//! class's current students who have one (the usual "moyenne de la classe");
//! the class average of an assessment is the mean of its GRADED scores on /20.
//! The overall average is the unweighted mean of the subject averages, `None`
//! when the student has no GRADED grade.

use crate::model::*;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use registre_domain::{
    AbsenceId, AssessmentId, ClassId, EstablishmentId, GradeId, GradeStatus, HomeworkId, MessageId,
    PersonId, Role, StudentId, ThreadId, TimeZone,
};
use registre_store::Position;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A grade as the parent and teacher views show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GradeView {
    pub grade: Grade,
    pub subject: String,
    pub assessment_title: String,
    pub assessment_date: NaiveDate,
    pub coefficient: f64,
    pub out_of: f64,
    /// The score on /20, when GRADED.
    pub score_on_20: Option<f64>,
    /// Mean of the assessment's GRADED scores on /20.
    pub class_average: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectAverage {
    pub subject: String,
    /// The student's weighted average on /20; `None` without a GRADED grade.
    pub average: Option<f64>,
    pub class_average: Option<f64>,
}

/// A message from one viewer's point of view.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub message: Message,
    /// When the viewer read it; `None` while unread (or when the viewer sent it).
    pub read_at: Option<DateTime<Utc>>,
}

/// Everything a guardian (or the student) sees about one child: the shape of
/// the parent dashboard and of the auditor's per-student replay file.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StudentRecord {
    pub student: Student,
    pub person: Option<Person>,
    pub class_name: Option<String>,
    pub grades: Vec<GradeView>,
    pub averages: Vec<SubjectAverage>,
    pub overall_average: Option<f64>,
    pub absences: Vec<Absence>,
    pub homework: Vec<Homework>,
}

/// Weighted average on /20 of `(score_on_20, coefficient)` pairs.
pub(crate) fn weighted_average(items: impl IntoIterator<Item = (f64, f64)>) -> Option<f64> {
    let (sum, weights) = items.into_iter().fold((0.0, 0.0), |(s, w), (score, coef)| {
        (s + score * coef, w + coef)
    });
    (weights > 0.0).then(|| sum / weights)
}

pub(crate) fn mean(items: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = items
        .into_iter()
        .fold((0.0, 0u32), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

/// The score of a GRADED grade on /20.
pub(crate) fn on_20(grade: &Grade, assessment: &Assessment) -> Option<f64> {
    match (grade.status, grade.score) {
        (GradeStatus::Graded, Some(score)) if assessment.out_of > 0.0 => {
            Some(score / assessment.out_of * 20.0)
        }
        _ => None,
    }
}

impl ReadModel {
    // ---- Roster ---------------------------------------------------------

    pub fn establishment(&self, id: EstablishmentId) -> Option<&Establishment> {
        self.establishments.get(&id)
    }
    pub fn establishments(&self) -> impl Iterator<Item = &Establishment> {
        self.establishments.values()
    }
    pub fn establishment_by_uai(&self, uai: &str) -> Option<&Establishment> {
        self.establishments.values().find(|e| e.uai == uai)
    }
    /// Every class, by id.
    pub fn classes(&self) -> impl Iterator<Item = &SchoolClass> {
        self.classes.values()
    }
    /// Every student record, by id.
    pub fn students(&self) -> impl Iterator<Item = &Student> {
        self.students.values()
    }
    /// Every person, by id.
    pub fn persons(&self) -> impl Iterator<Item = &Person> {
        self.persons.values()
    }
    pub fn class(&self, id: ClassId) -> Option<&SchoolClass> {
        self.classes.get(&id)
    }
    /// The classes of an establishment, in creation order.
    pub fn classes_of(&self, establishment: EstablishmentId) -> Vec<&SchoolClass> {
        self.establishments
            .get(&establishment)
            .map(|e| {
                e.classes
                    .iter()
                    .filter_map(|c| self.classes.get(c))
                    .collect()
            })
            .unwrap_or_default()
    }
    pub fn person(&self, id: PersonId) -> Option<&Person> {
        self.persons.get(&id)
    }
    pub fn person_by_external_id(&self, external_id: &str) -> Option<&Person> {
        self.person_by_external_id
            .get(external_id)
            .and_then(|id| self.persons.get(id))
    }
    pub fn has_role(&self, person: PersonId, role: Role) -> bool {
        self.persons
            .get(&person)
            .is_some_and(|p| p.roles.contains(&role))
    }
    pub fn student(&self, id: StudentId) -> Option<&Student> {
        self.students.get(&id)
    }
    /// The student record of a person, if they are enrolled.
    pub fn student_of_person(&self, person: PersonId) -> Option<&Student> {
        self.student_by_person
            .get(&person)
            .and_then(|id| self.students.get(id))
    }
    /// Students of a class, by display name then id.
    pub fn students_of_class(&self, class: ClassId) -> Vec<&Student> {
        let mut students: Vec<&Student> = self
            .classes
            .get(&class)
            .map(|c| {
                c.students
                    .iter()
                    .filter_map(|s| self.students.get(s))
                    .collect()
            })
            .unwrap_or_default();
        students.sort_by(|a, b| {
            (self.display_name(a.person_id), a.id).cmp(&(self.display_name(b.person_id), b.id))
        });
        students
    }
    pub fn display_name(&self, person: PersonId) -> &str {
        self.persons
            .get(&person)
            .map(|p| p.display_name.as_str())
            .unwrap_or("")
    }
    /// The students a guardian is linked to.
    pub fn children_of(&self, guardian: PersonId) -> Vec<&Student> {
        self.children
            .get(&guardian)
            .map(|set| set.iter().filter_map(|s| self.students.get(s)).collect())
            .unwrap_or_default()
    }
    pub fn guardians_of(&self, student: StudentId) -> Vec<&Person> {
        self.students
            .get(&student)
            .map(|s| {
                s.guardians
                    .iter()
                    .filter_map(|g| self.persons.get(g))
                    .collect()
            })
            .unwrap_or_default()
    }
    pub fn is_guardian_of(&self, guardian: PersonId, student: StudentId) -> bool {
        self.children
            .get(&guardian)
            .is_some_and(|set| set.contains(&student))
    }
    /// All teaching assignments, ordered by class, subject, teacher.
    pub fn teachings(&self) -> impl Iterator<Item = &Teaching> {
        self.teachings.iter()
    }
    pub fn teachings_of(&self, teacher: PersonId) -> Vec<&Teaching> {
        self.teachings
            .iter()
            .filter(|t| t.teacher_id == teacher)
            .collect()
    }
    pub fn teaches(&self, teacher: PersonId, class: ClassId, subject: &str) -> bool {
        self.teachings.contains(&Teaching {
            class_id: class,
            subject: subject.to_owned(),
            teacher_id: teacher,
        })
    }
    pub fn teaches_class(&self, teacher: PersonId, class: ClassId) -> bool {
        self.teachings
            .iter()
            .any(|t| t.class_id == class && t.teacher_id == teacher)
    }
    pub fn establishment_of_class(&self, class: ClassId) -> Option<EstablishmentId> {
        self.classes.get(&class).map(|c| c.establishment_id)
    }
    pub fn establishment_of_student(&self, student: StudentId) -> Option<EstablishmentId> {
        self.students
            .get(&student)
            .and_then(|s| self.establishment_of_class(s.class_id))
    }
    /// Time zone of a class's establishment (Europe/Paris when unknown).
    pub fn zone_of_class(&self, class: ClassId) -> Tz {
        self.establishment_of_class(class)
            .and_then(|e| self.establishments.get(&e))
            .map(|e| e.time_zone)
            .unwrap_or(TimeZone::DEFAULT)
            .tz()
    }
    /// Time zone of a person: their establishment's, else their own or a
    /// child's class's, else Europe/Paris.
    pub fn zone_of_person(&self, person: PersonId) -> Tz {
        let establishment = self
            .persons
            .get(&person)
            .and_then(|p| p.establishment_id)
            .or_else(|| {
                self.student_by_person
                    .get(&person)
                    .and_then(|s| self.establishment_of_student(*s))
            })
            .or_else(|| {
                self.children
                    .get(&person)
                    .and_then(|set| set.iter().next())
                    .and_then(|s| self.establishment_of_student(*s))
            });
        establishment
            .and_then(|e| self.establishments.get(&e))
            .map(|e| e.time_zone)
            .unwrap_or(TimeZone::DEFAULT)
            .tz()
    }

    /// Every establishment a person belongs to: their own (staff), their
    /// student record's, their children's (a guardian). Who may close their
    /// account is decided from it.
    pub fn establishments_of_person(&self, person: PersonId) -> BTreeSet<EstablishmentId> {
        let own = self.persons.get(&person).and_then(|p| p.establishment_id);
        let as_student = self
            .student_by_person
            .get(&person)
            .and_then(|s| self.establishment_of_student(*s));
        let as_guardian = self
            .children
            .get(&person)
            .into_iter()
            .flatten()
            .filter_map(|s| self.establishment_of_student(*s));
        own.into_iter()
            .chain(as_student)
            .chain(as_guardian)
            .collect()
    }

    /// People not erased yet whose account was closed at least `days` days
    /// ago, counted in their establishment's calendar (a departure date is
    /// a day there): whom the account retention rule erases at `now`.
    pub fn accounts_past_retention(&self, now: DateTime<Utc>, days: u32) -> Vec<PersonId> {
        self.persons
            .values()
            .filter(|p| !p.erased)
            .filter(|p| {
                p.account_closed_on.is_some_and(|on| {
                    let today = now.with_timezone(&self.zone_of_person(p.id)).date_naive();
                    (today - on).num_days() >= i64::from(days)
                })
            })
            .map(|p| p.id)
            .collect()
    }

    // ---- Command facts ----------------------------------------------------

    pub fn assessment(&self, id: AssessmentId) -> Option<&Assessment> {
        self.assessments.get(&id)
    }
    /// Assessments of a class, by date then id.
    pub fn assessments_of_class(&self, class: ClassId) -> Vec<&Assessment> {
        let mut list: Vec<&Assessment> = self
            .assessments_by_class
            .get(&class)
            .map(|set| set.iter().filter_map(|a| self.assessments.get(a)).collect())
            .unwrap_or_default();
        list.sort_by_key(|a| (a.date, a.id));
        list
    }
    pub fn grade(&self, id: GradeId) -> Option<&Grade> {
        self.grades.get(&id)
    }
    /// Grades of an assessment, in student id order.
    pub fn grades_of_assessment(&self, assessment: AssessmentId) -> Vec<&Grade> {
        self.grades_by_assessment
            .get(&assessment)
            .map(|set| set.iter().filter_map(|g| self.grades.get(g)).collect())
            .unwrap_or_default()
    }
    /// A live (not cancelled) absence.
    pub fn absence(&self, id: AbsenceId) -> Option<&Absence> {
        self.absences.get(&id)
    }
    pub fn is_absence_cancelled(&self, id: AbsenceId) -> bool {
        self.cancelled_absences.contains_key(&id)
    }
    /// A live (not withdrawn) homework entry, amendments applied.
    pub fn homework_entry(&self, id: HomeworkId) -> Option<&Homework> {
        self.homework.get(&id)
    }
    pub fn is_homework_withdrawn(&self, id: HomeworkId) -> bool {
        self.withdrawn_homework.contains_key(&id)
    }
    pub fn message(&self, id: MessageId) -> Option<&Message> {
        self.messages.get(&id)
    }
    pub fn thread(&self, id: ThreadId) -> Option<&Thread> {
        self.threads.get(&id)
    }
    /// Log positions of the events about a person, oldest first (auditTrail:
    /// read them with `EventStore::read_positions`).
    pub fn audit_positions(&self, person: PersonId) -> Vec<Position> {
        let mut positions: Vec<Position> = std::iter::once(&self.audit)
            .chain(self.audit_in.values())
            .filter_map(|audit| audit.get(&person))
            .flatten()
            .copied()
            .collect();
        positions.sort_unstable();
        positions
    }

    // ---- Parent and student view --------------------------------------------

    /// The student's grades with their assessments, optionally of one
    /// subject, by assessment date (then subject and assessment). Borrowed:
    /// the GraphQL objects take what they need.
    pub fn student_grades(
        &self,
        student: StudentId,
        subject: Option<&str>,
    ) -> Vec<(&Grade, &Assessment)> {
        let Some(ids) = self.grades_by_student.get(&student) else {
            return vec![];
        };
        let mut list: Vec<(&Grade, &Assessment)> = ids
            .iter()
            .filter_map(|g| self.grades.get(g))
            .filter_map(|g| {
                let a = self.assessments.get(&g.assessment_id)?;
                subject.is_none_or(|s| s == a.subject).then_some((g, a))
            })
            .collect();
        list.sort_by(|(ga, a), (gb, b)| {
            (a.date, &a.subject, ga.assessment_id).cmp(&(b.date, &b.subject, gb.assessment_id))
        });
        list
    }

    /// The student's grades, optionally of one subject, by assessment date,
    /// each with its assessment's details and class average.
    pub fn grades_of(&self, student: StudentId, subject: Option<&str>) -> Vec<GradeView> {
        self.student_grades(student, subject)
            .into_iter()
            .map(|(g, a)| GradeView {
                grade: g.clone(),
                subject: a.subject.clone(),
                assessment_title: a.title.clone(),
                assessment_date: a.date,
                coefficient: a.coefficient,
                out_of: a.out_of,
                score_on_20: on_20(g, a),
                class_average: self.assessment_average(a.id),
            })
            .collect()
    }

    /// Mean of an assessment's GRADED scores on /20.
    pub fn assessment_average(&self, assessment: AssessmentId) -> Option<f64> {
        let a = self.assessments.get(&assessment)?;
        mean(
            self.grades_of_assessment(assessment)
                .into_iter()
                .filter_map(|g| on_20(g, a)),
        )
    }

    /// The student's weighted /20 average in each subject (all their GRADED
    /// grades of that subject).
    fn student_subject_averages(&self, student: StudentId) -> BTreeMap<String, Option<f64>> {
        // Keyed by the borrowed name: one `String` per subject, not per grade.
        let mut by_subject: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
        for g in self
            .grades_by_student
            .get(&student)
            .into_iter()
            .flatten()
            .filter_map(|g| self.grades.get(g))
        {
            let Some(a) = self.assessments.get(&g.assessment_id) else {
                continue;
            };
            let entry = by_subject.entry(a.subject.as_str()).or_default();
            if let Some(score) = on_20(g, a) {
                entry.push((score, a.coefficient));
            }
        }
        by_subject
            .into_iter()
            .map(|(subject, items)| (subject.to_owned(), weighted_average(items)))
            .collect()
    }

    /// The student's average in one subject.
    pub fn subject_average(&self, student: StudentId, subject: &str) -> Option<f64> {
        self.student_subject_averages(student)
            .get(subject)
            .copied()
            .flatten()
    }

    /// Mean of the subject averages of the class's current students.
    pub fn class_subject_average(&self, class: ClassId, subject: &str) -> Option<f64> {
        self.class_subject_averages(class)
            .get(subject)
            .copied()
            .flatten()
    }

    /// [`Self::class_subject_average`] for every subject at once: one pass
    /// over the class's grades, whatever the number of subjects.
    pub fn class_subject_averages(&self, class: ClassId) -> BTreeMap<String, Option<f64>> {
        let mut per_subject: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for s in self
            .classes
            .get(&class)
            .into_iter()
            .flat_map(|c| c.students.iter())
        {
            for (subject, average) in self.student_subject_averages(*s) {
                let entry = per_subject.entry(subject).or_default();
                entry.extend(average);
            }
        }
        per_subject
            .into_iter()
            .map(|(subject, averages)| (subject, mean(averages)))
            .collect()
    }

    /// One row per subject with at least one assessment in the student's class
    /// or one grade of the student, by subject name.
    pub fn averages(&self, student: StudentId) -> Vec<SubjectAverage> {
        let Some(s) = self.students.get(&student) else {
            return vec![];
        };
        let class_averages = self.class_subject_averages(s.class_id);
        self.averages_with(student, |subject| {
            class_averages.get(subject).copied().flatten()
        })
    }

    /// [`Self::averages`] given the class average of a subject in the
    /// student's class (the API reads it from the class's cached
    /// [`crate::ClassFigures`]): it costs the whole class's grades, the
    /// student's own averages only theirs.
    pub fn averages_with(
        &self,
        student: StudentId,
        class_average: impl Fn(&str) -> Option<f64>,
    ) -> Vec<SubjectAverage> {
        let Some(s) = self.students.get(&student) else {
            return vec![];
        };
        let own = self.student_subject_averages(student);
        let mut subjects: BTreeSet<String> = own.keys().cloned().collect();
        subjects.extend(
            self.assessments_of_class(s.class_id)
                .into_iter()
                .map(|a| a.subject.clone()),
        );
        subjects
            .into_iter()
            .map(|subject| SubjectAverage {
                average: own.get(&subject).copied().flatten(),
                class_average: class_average(&subject),
                subject,
            })
            .collect()
    }

    /// Mean of the subject averages; `None` without any GRADED grade.
    pub fn overall_average(&self, student: StudentId) -> Option<f64> {
        mean(
            self.student_subject_averages(student)
                .into_values()
                .flatten(),
        )
    }

    /// The student's live absences and lateness, by start.
    pub fn absences_of(&self, student: StudentId) -> Vec<&Absence> {
        let mut list: Vec<&Absence> = self
            .absences_by_student
            .get(&student)
            .map(|set| set.iter().filter_map(|a| self.absences.get(a)).collect())
            .unwrap_or_default();
        list.sort_by_key(|a| (a.start, a.id));
        list
    }

    /// Homework of a class due in `[from, to]` (either bound optional), by due
    /// date then subject.
    pub fn homework_of_class(
        &self,
        class: ClassId,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Vec<&Homework> {
        let mut list: Vec<&Homework> = self
            .homework_by_class
            .get(&class)
            .into_iter()
            .flatten()
            .filter_map(|h| self.homework.get(h))
            .filter(|h| from.is_none_or(|f| h.due >= f) && to.is_none_or(|t| h.due <= t))
            .collect();
        list.sort_by(|a, b| (a.due, &a.subject, a.id).cmp(&(b.due, &b.subject, b.id)));
        list
    }

    /// Homework of the student's current class (see [`Self::homework_of_class`]).
    pub fn homework_of(
        &self,
        student: StudentId,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Vec<&Homework> {
        self.students
            .get(&student)
            .map(|s| self.homework_of_class(s.class_id, from, to))
            .unwrap_or_default()
    }

    /// Messages received by a person, newest first, with their read time.
    pub fn inbox(&self, person: PersonId) -> Vec<MessageView> {
        self.received
            .get(&person)
            .into_iter()
            .flatten()
            .rev()
            .filter_map(|m| self.messages.get(m))
            .map(|m| MessageView {
                message: m.clone(),
                read_at: m.read_at.get(&person).copied(),
            })
            .collect()
    }

    /// Messages sent by a person, newest first.
    pub fn sent_by(&self, person: PersonId) -> Vec<&Message> {
        self.sent
            .get(&person)
            .into_iter()
            .flatten()
            .rev()
            .filter_map(|m| self.messages.get(m))
            .collect()
    }

    pub fn unread_count(&self, person: PersonId) -> usize {
        self.received
            .get(&person)
            .into_iter()
            .flatten()
            .filter_map(|m| self.messages.get(m))
            .filter(|m| !m.read_at.contains_key(&person))
            .count()
    }

    /// The messages of a thread in log order, as `viewer` sees them.
    pub fn thread_messages(&self, thread: ThreadId, viewer: PersonId) -> Vec<MessageView> {
        self.threads
            .get(&thread)
            .into_iter()
            .flat_map(|t| t.messages.iter())
            .filter_map(|m| self.messages.get(m))
            .map(|m| MessageView {
                message: m.clone(),
                read_at: m.read_at.get(&viewer).copied(),
            })
            .collect()
    }

    /// The whole parent view of one child (homework: all, by due date).
    pub fn student_record(&self, student: StudentId) -> Option<StudentRecord> {
        let s = self.students.get(&student)?;
        Some(StudentRecord {
            student: s.clone(),
            person: self.persons.get(&s.person_id).cloned(),
            class_name: self.classes.get(&s.class_id).map(|c| c.name.clone()),
            grades: self.grades_of(student, None),
            averages: self.averages(student),
            overall_average: self.overall_average(student),
            absences: self.absences_of(student).into_iter().cloned().collect(),
            homework: self
                .homework_of(student, None, None)
                .into_iter()
                .cloned()
                .collect(),
        })
    }
}
