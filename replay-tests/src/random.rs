//! Random *valid* event sequences for the property tests. proptest draws a
//! list of small integer tuples ("ops"); [`events_from_ops`] interprets each
//! against what exists so far and emits the event the domain would have
//! accepted (an op that has nothing to act on is skipped). Shrinking works on
//! the ops, so a failure shrinks to a short, still valid, log.

use crate::{line_of, GoldenLine};
use chrono::{DateTime, Duration, NaiveDate, TimeZone as _, Utc};
use proptest::prelude::*;
use registre_domain::events::*;
use registre_domain::*;
use registre_store::Actor;
use uuid::Uuid;

/// One op: a kind and three numbers it uses to pick and shape things.
pub type Op = (u8, u16, u16, u16);

pub fn ops(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(any::<Op>(), 1..max_len)
}

const SUBJECTS: [&str; 3] = ["Mathématiques", "Français", "Anglais"];
const ZONES: [&str; 3] = ["Europe/Paris", "Indian/Reunion", "America/Cayenne"];
const STATUSES: [GradeStatus; 4] = [
    GradeStatus::Graded,
    GradeStatus::Graded,
    GradeStatus::Absent,
    GradeStatus::Exempt,
];

#[derive(Default)]
struct World {
    establishments: Vec<EstablishmentId>,
    classes: Vec<ClassId>,
    teachers: Vec<PersonId>,
    guardians: Vec<PersonId>,
    students: Vec<(StudentId, PersonId)>,
    teachings: Vec<(PersonId, ClassId, &'static str)>,
    assessments: Vec<(AssessmentId, ClassId, PersonId, f64)>,
    grades: Vec<(
        GradeId,
        AssessmentId,
        StudentId,
        Option<f64>,
        GradeStatus,
        PersonId,
    )>,
    /// id, student, state, declared and unconfirmed, cancelled
    absences: Vec<(AbsenceId, StudentId, JustificationState, bool, bool)>,
    homework: Vec<(HomeworkId, ClassId, PersonId, bool)>,
    messages: Vec<(MessageId, ThreadId, Vec<PersonId>)>,
    lines: Vec<GoldenLine>,
    next: u128,
}

fn pick<T: Clone>(items: &[T], n: u16) -> Option<T> {
    if items.is_empty() {
        None
    } else {
        items.get(usize::from(n) % items.len()).cloned()
    }
}

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 6, 0, 0)
        .single()
        .unwrap_or_default()
}

impl World {
    fn id(&mut self) -> Uuid {
        self.next += 1;
        Uuid::from_u128(0x5eed_0000_0000_0000_0000_0000_0000_0000 | self.next)
    }

    fn emit(&mut self, actor: Option<PersonId>, event: DomainEvent) {
        let position = self.lines.len() as u64 + 1;
        // One event a minute: recorded_at grows with position.
        let at = base() + Duration::minutes(position as i64);
        let actor = actor.map(|p| Actor {
            person_id: p.0,
            role: Role::Teacher.wire_name().into(),
        });
        self.lines.push(line_of(position, at, actor, None, &event));
    }

    fn person(&mut self, roles: Vec<Role>, establishment: Option<EstablishmentId>) -> PersonId {
        let external_id = format!("p{}", self.id().as_u128() & 0xffff);
        let person_id = PersonId::for_external_id(&external_id);
        self.emit(
            None,
            DomainEvent::PersonRegistered(PersonRegistered {
                person_id,
                external_id: external_id.clone(),
                display_name: format!("Personne {external_id}"),
                roles,
                establishment_id: establishment,
            }),
        );
        person_id
    }

    fn op(&mut self, (kind, a, b, c): Op) -> Option<()> {
        use DomainEvent as E;
        match kind % 21 {
            0 => {
                let establishment_id = pick(&self.establishments, a)?;
                let class_id = ClassId(self.id());
                self.classes.push(class_id);
                self.emit(
                    None,
                    E::ClassCreated(ClassCreated {
                        class_id,
                        establishment_id,
                        name: format!("C{}", self.classes.len()),
                    }),
                );
            }
            1 | 2 if !self.students.is_empty() && kind % 21 == 2 => {
                let (student_id, person_id) = pick(&self.students, a)?;
                let class_id = pick(&self.classes, b)?;
                self.emit(
                    None,
                    E::StudentEnrolled(StudentEnrolled {
                        student_id,
                        person_id,
                        class_id,
                    }),
                );
            }
            1 | 2 => {
                let class_id = pick(&self.classes, b)?;
                let person_id = self.person(vec![Role::Student], None);
                let student_id = StudentId::for_person(person_id);
                self.students.push((student_id, person_id));
                self.emit(
                    None,
                    E::StudentEnrolled(StudentEnrolled {
                        student_id,
                        person_id,
                        class_id,
                    }),
                );
            }
            3 => {
                let (student_id, _) = pick(&self.students, a)?;
                let guardian_id = pick(&self.guardians, b)?;
                self.emit(
                    None,
                    E::GuardianLinked(GuardianLinked {
                        student_id,
                        guardian_id,
                    }),
                );
            }
            4 => {
                let g = self.person(vec![Role::Guardian], None);
                self.guardians.push(g);
            }
            5 => {
                let class_id = pick(&self.classes, a)?;
                let teacher_id = pick(&self.teachers, b)?;
                let subject = SUBJECTS[usize::from(c) % SUBJECTS.len()];
                self.teachings.push((teacher_id, class_id, subject));
                self.emit(
                    None,
                    E::TeacherAssigned(TeacherAssigned {
                        class_id,
                        teacher_id,
                        subject: subject.into(),
                    }),
                );
            }
            6 => {
                let (teacher_id, class_id, subject) = pick(&self.teachings, a)?;
                let assessment_id = AssessmentId(self.id());
                let out_of = [10.0, 20.0, 40.0][usize::from(b) % 3];
                self.assessments
                    .push((assessment_id, class_id, teacher_id, out_of));
                self.emit(
                    Some(teacher_id),
                    E::AssessmentCreated(AssessmentCreated {
                        assessment_id,
                        class_id,
                        teacher_id,
                        subject: subject.into(),
                        title: format!("Évaluation {}", self.assessments.len()),
                        date: NaiveDate::from_ymd_opt(2026, 3, 1 + u32::from(c % 28))
                            .unwrap_or_default(),
                        coefficient: f64::from(1 + c % 4) / 2.0,
                        out_of,
                    }),
                );
            }
            7 => {
                let (assessment_id, _, teacher, out_of) = pick(&self.assessments, a)?;
                let (student_id, _) = pick(&self.students, b)?;
                let grade_id = GradeId::for_pair(assessment_id, student_id);
                if self.grades.iter().any(|g| g.0 == grade_id) {
                    return None;
                }
                let status = STATUSES[usize::from(c) % STATUSES.len()];
                // Quarter points: exact in binary, so averages compare exactly.
                let score = (status == GradeStatus::Graded)
                    .then(|| f64::from(c % (out_of as u16 * 4 + 1)) / 4.0);
                self.grades
                    .push((grade_id, assessment_id, student_id, score, status, teacher));
                self.emit(
                    Some(teacher),
                    E::GradeRecorded(GradeRecorded {
                        grade_id,
                        assessment_id,
                        student_id,
                        score,
                        status,
                    }),
                );
            }
            8 => {
                let i = usize::from(a) % self.grades.len().max(1);
                let (grade_id, assessment_id, student_id, previous_score, previous_status, teacher) =
                    self.grades.get(i).cloned()?;
                let out_of = self.assessments.iter().find(|x| x.0 == assessment_id)?.3;
                let status = STATUSES[usize::from(b) % STATUSES.len()];
                let score = (status == GradeStatus::Graded)
                    .then(|| f64::from(c % (out_of as u16 * 4 + 1)) / 4.0);
                if let Some(g) = self.grades.get_mut(i) {
                    g.3 = score;
                    g.4 = status;
                }
                self.emit(
                    Some(teacher),
                    E::GradeCorrected(GradeCorrected {
                        grade_id,
                        assessment_id,
                        student_id,
                        previous_score,
                        previous_status,
                        score,
                        status,
                        reason: "correction".into(),
                    }),
                );
            }
            9 | 10 => {
                let (student_id, _) = pick(&self.students, a)?;
                let absence_id = AbsenceId(self.id());
                let start = base() + Duration::hours(i64::from(b % (24 * 40)));
                let end = start + Duration::minutes(i64::from(1 + c % (60 * 80)));
                if kind % 21 == 10 {
                    self.absences.push((
                        absence_id,
                        student_id,
                        JustificationState::Pending,
                        true,
                        false,
                    ));
                    self.emit(
                        None,
                        E::AbsenceDeclared(AbsenceDeclared {
                            absence_id,
                            student_id,
                            start,
                            end,
                            reason: "rendez-vous".into(),
                        }),
                    );
                } else {
                    let lateness = c % 3 == 0;
                    self.absences.push((
                        absence_id,
                        student_id,
                        JustificationState::Unjustified,
                        false,
                        false,
                    ));
                    self.emit(
                        None,
                        E::AbsenceReported(AbsenceReported {
                            absence_id,
                            student_id,
                            kind: if lateness {
                                AbsenceKind::Lateness
                            } else {
                                AbsenceKind::Absence
                            },
                            start,
                            end,
                            minutes_late: lateness.then_some(u32::from(1 + c % 30)),
                        }),
                    );
                }
            }
            11..=14 => {
                // Pick among the absences this op applies to, so that most ops emit.
                let candidates: Vec<usize> = (0..self.absences.len())
                    .filter(|i| {
                        let (_, _, state, unconfirmed, cancelled) = self.absences[*i];
                        !cancelled
                            && match kind % 21 {
                                11 => matches!(
                                    state,
                                    JustificationState::Unjustified | JustificationState::Rejected
                                ),
                                12 => state == JustificationState::Pending,
                                14 => unconfirmed,
                                _ => true,
                            }
                    })
                    .collect();
                let i = pick(&candidates, a)?;
                let (absence_id, student_id, state, unconfirmed, _) =
                    self.absences.get(i).cloned()?;
                let (event, new_state, confirmed_now, cancel) = match kind % 21 {
                    11 if matches!(
                        state,
                        JustificationState::Unjustified | JustificationState::Rejected
                    ) =>
                    {
                        (
                            E::AbsenceJustified(AbsenceJustified {
                                absence_id,
                                student_id,
                                reason: "malade".into(),
                            }),
                            JustificationState::Pending,
                            false,
                            false,
                        )
                    }
                    12 if state == JustificationState::Pending => {
                        let accepted = b % 2 == 0;
                        (
                            E::JustificationReviewed(JustificationReviewed {
                                absence_id,
                                student_id,
                                accepted,
                                comment: None,
                            }),
                            if accepted {
                                JustificationState::Accepted
                            } else {
                                JustificationState::Rejected
                            },
                            false,
                            false,
                        )
                    }
                    13 => (
                        E::AbsenceCancelled(AbsenceCancelled {
                            absence_id,
                            student_id,
                            reason: "erreur".into(),
                        }),
                        state,
                        false,
                        true,
                    ),
                    14 if unconfirmed => (
                        E::DeclaredAbsenceConfirmed(DeclaredAbsenceConfirmed {
                            absence_id,
                            student_id,
                        }),
                        state,
                        true,
                        false,
                    ),
                    _ => return None,
                };
                if let Some(x) = self.absences.get_mut(i) {
                    x.2 = new_state;
                    x.3 = unconfirmed && !confirmed_now;
                    x.4 = cancel;
                }
                self.emit(None, event);
            }
            15 => {
                let (teacher_id, class_id, subject) = pick(&self.teachings, a)?;
                let homework_id = HomeworkId(self.id());
                self.homework
                    .push((homework_id, class_id, teacher_id, false));
                let due =
                    NaiveDate::from_ymd_opt(2026, 3, 1 + u32::from(b % 28)).unwrap_or_default();
                self.emit(
                    Some(teacher_id),
                    E::HomeworkAssigned(HomeworkAssigned {
                        homework_id,
                        class_id,
                        teacher_id,
                        subject: subject.into(),
                        title: "Devoir".into(),
                        description: "À faire".into(),
                        due,
                        assigned_on: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default(),
                    }),
                );
            }
            16 | 17 => {
                let i = usize::from(a) % self.homework.len().max(1);
                let (homework_id, class_id, teacher, withdrawn) = self.homework.get(i).cloned()?;
                if withdrawn {
                    return None;
                }
                if kind % 21 == 16 {
                    self.emit(
                        Some(teacher),
                        E::HomeworkAmended(HomeworkAmended {
                            homework_id,
                            class_id,
                            title: format!("Devoir modifié {b}"),
                            description: "Modifié".into(),
                            due: NaiveDate::from_ymd_opt(2026, 3, 1 + u32::from(c % 28))
                                .unwrap_or_default(),
                            reason: None,
                        }),
                    );
                } else {
                    if let Some(h) = self.homework.get_mut(i) {
                        h.3 = true;
                    }
                    self.emit(
                        Some(teacher),
                        E::HomeworkWithdrawn(HomeworkWithdrawn {
                            homework_id,
                            class_id,
                            reason: "retiré".into(),
                        }),
                    );
                }
            }
            18 => {
                let everyone: Vec<PersonId> = self
                    .teachers
                    .iter()
                    .chain(&self.guardians)
                    .copied()
                    .chain(self.students.iter().map(|s| s.1))
                    .collect();
                let from = pick(&everyone, a)?;
                let to: Vec<PersonId> = (0..=(c % 3))
                    .filter_map(|k| pick(&everyone, b.wrapping_add(k.wrapping_mul(7919))))
                    .filter(|p| *p != from)
                    .collect();
                if to.is_empty() {
                    return None;
                }
                let thread_id = match pick(&self.messages, c).filter(|_| c % 2 == 0) {
                    Some(m) => m.1,
                    None => ThreadId(self.id()),
                };
                let message_id = MessageId(self.id());
                self.messages.push((message_id, thread_id, to.clone()));
                self.emit(
                    Some(from),
                    E::MessageSent(MessageSent {
                        message_id,
                        thread_id,
                        from,
                        to,
                        subject: "Objet".into(),
                        body: "Texte".into(),
                    }),
                );
            }
            19 => {
                let (message_id, thread_id, to) = pick(&self.messages, a)?;
                let reader = pick(&to, b)?;
                self.emit(
                    Some(reader),
                    E::MessageRead(MessageRead {
                        message_id,
                        thread_id,
                        reader,
                    }),
                );
            }
            _ => {
                let establishment_id = EstablishmentId(self.id());
                self.establishments.push(establishment_id);
                let uai = format!("{:07}X", self.establishments.len());
                self.emit(
                    None,
                    E::EstablishmentCreated(EstablishmentCreated {
                        establishment_id,
                        uai: Uai::parse(&uai).ok()?,
                        name: format!("Établissement {}", self.establishments.len()),
                        time_zone: TimeZone::parse(ZONES[usize::from(a) % ZONES.len()])
                            .unwrap_or_default(),
                    }),
                );
                let t = self.person(vec![Role::Teacher], Some(establishment_id));
                self.teachers.push(t);
            }
        }
        Some(())
    }
}

/// The valid log the ops describe; it always starts with an establishment,
/// a class, a teacher and a guardian so that most ops have something to act on.
pub fn events_from_ops(ops: &[Op]) -> Vec<GoldenLine> {
    let mut world = World::default();
    world.op((20, 0, 0, 0));
    world.op((0, 0, 0, 0));
    world.op((4, 0, 0, 0));
    for op in ops {
        world.op(*op);
    }
    world.lines
}
