//! Deterministic generator of demo-shaped logs: a region-sized school year of
//! establishments, classes of ~25 students, and the yearly rates of grades,
//! absences (with lateness and justification flows), homework and messages
//! that a French collège produces. The same seed always yields the same log,
//! event ids included, so that runs on different days compare like with like.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone as _, Utc, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use registre_domain::events::*;
use registre_domain::*;
use registre_projections::Partitioner;
use registre_store::{
    Actor, AppendRequest, EventMetadata, ExpectedVersion, NewEvent, RecordedEvent,
};
use uuid::Uuid;

pub const SUBJECTS: [&str; 8] = [
    "Français",
    "Mathématiques",
    "Histoire-Géographie",
    "Anglais",
    "Espagnol",
    "SVT",
    "Physique-Chimie",
    "EPS",
];

/// Shape of the generated year. The defaults are the rates of issue 6.
#[derive(Clone, Debug)]
pub struct GenConfig {
    pub seed: u64,
    pub classes_per_establishment: usize,
    pub students_per_class: usize,
    pub assessments_per_subject: usize,
    pub absences_per_student: f64,
    pub homework_per_subject: usize,
    pub threads_per_class: usize,
}

impl Default for GenConfig {
    fn default() -> Self {
        Self {
            seed: 2026,
            classes_per_establishment: 24,
            students_per_class: 25,
            assessments_per_subject: 10,
            absences_per_student: 15.0,
            homework_per_subject: 34,
            threads_per_class: 60,
        }
    }
}

/// One generated fact with who caused it and when.
#[derive(Clone, Debug)]
pub struct GenEvent {
    pub at: DateTime<Utc>,
    pub actor: Option<(PersonId, Role)>,
    pub event: DomainEvent,
}

/// Counts of a generated log by event type, for the report.
#[derive(Clone, Debug, Default)]
pub struct GenSummary {
    pub establishments: usize,
    pub classes: usize,
    pub students: usize,
    pub by_type: std::collections::BTreeMap<&'static str, usize>,
}

#[derive(Debug)]
struct Year {
    first_day: NaiveDate,
    school_days: Vec<NaiveDate>,
}

impl Year {
    fn new() -> Self {
        let first_day = NaiveDate::from_ymd_opt(2025, 9, 1).unwrap_or_default();
        let last_day = NaiveDate::from_ymd_opt(2026, 7, 3).unwrap_or_default();
        let school_days = first_day
            .iter_days()
            .take_while(|d| *d <= last_day)
            .filter(|d| {
                !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && d.weekday() != Weekday::Wed
            })
            .collect();
        Self {
            first_day,
            school_days,
        }
    }
    fn day(&self, rng: &mut StdRng) -> NaiveDate {
        self.school_days[rng.gen_range(0..self.school_days.len())]
    }
}

fn at(day: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    let naive = day.and_hms_opt(hour, minute, 0).unwrap_or_default();
    Utc.from_utc_datetime(&naive)
}

fn uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.gen()).into_uuid()
}

/// Generates whole establishments until at least `min_events` facts exist, then
/// returns them in time order (ties keep generation order, so that each
/// stream's events stay in causal order). `min_events == 0` yields one establishment.
pub fn generate(config: &GenConfig, min_events: usize) -> (Vec<GenEvent>, GenSummary) {
    let mut establishments = Establishments::new(config);
    let mut out = Vec::with_capacity(min_events + 100_000);
    loop {
        out.append(&mut establishments.next_unsorted());
        if out.len() >= min_events {
            break;
        }
    }
    out.sort_by_key(|e| e.at);
    let mut summary = establishments.summary;
    for e in &out {
        *summary.by_type.entry(e.event.event_type()).or_default() += 1;
    }
    (out, summary)
}

/// The same year, one establishment at a time (the random sequence of
/// [`generate`]), so that logs of 10^7 events are written without holding
/// them in memory. Establishments share no stream, so a log made of one
/// establishment's time-ordered facts after another's keeps every stream in
/// causal order.
#[derive(Debug)]
pub struct Establishments {
    config: GenConfig,
    rng: StdRng,
    year: Year,
    no: usize,
    pub summary: GenSummary,
}

impl Establishments {
    pub fn new(config: &GenConfig) -> Self {
        Self {
            config: config.clone(),
            rng: StdRng::seed_from_u64(config.seed),
            year: Year::new(),
            no: 0,
            summary: GenSummary::default(),
        }
    }

    fn next_unsorted(&mut self) -> Vec<GenEvent> {
        let mut out = Vec::new();
        establishment(
            &self.config,
            &self.year,
            &mut self.rng,
            self.no,
            &mut out,
            &mut self.summary,
        );
        self.no += 1;
        out
    }

    /// The next establishment's facts in time order.
    pub fn next_sorted(&mut self) -> Vec<GenEvent> {
        let mut out = self.next_unsorted();
        out.sort_by_key(|e| e.at);
        out
    }
}

fn establishment(
    config: &GenConfig,
    year: &Year,
    rng: &mut StdRng,
    no: usize,
    out: &mut Vec<GenEvent>,
    summary: &mut GenSummary,
) {
    let start = at(year.first_day - Duration::days(7), 8, 0);
    let establishment_id = EstablishmentId(uuid(rng));
    let uai = Uai::parse(&format!(
        "{:07}{}",
        750_000 + no,
        (b'A' + (no % 26) as u8) as char
    ));
    let Ok(uai) = uai else { return };
    out.push(GenEvent {
        at: start,
        actor: None,
        event: DomainEvent::EstablishmentCreated(EstablishmentCreated {
            establishment_id,
            uai,
            name: format!("Collège n°{no}"),
            time_zone: registre_domain::TimeZone::DEFAULT,
        }),
    });
    summary.establishments += 1;
    let staff = person(
        out,
        start,
        format!("cpe-{no}"),
        "CPE",
        vec![Role::EducationStaff],
        Some(establishment_id),
    );
    for c in 0..config.classes_per_establishment {
        class(
            config,
            year,
            rng,
            establishment_id,
            staff,
            no,
            c,
            out,
            summary,
        );
    }
}

fn person(
    out: &mut Vec<GenEvent>,
    at: DateTime<Utc>,
    external_id: String,
    name: &str,
    roles: Vec<Role>,
    establishment_id: Option<EstablishmentId>,
) -> PersonId {
    let person_id = PersonId::for_external_id(&external_id);
    out.push(GenEvent {
        at,
        actor: None,
        event: DomainEvent::PersonRegistered(PersonRegistered {
            person_id,
            display_name: format!("{name} {external_id}"),
            external_id,
            roles,
            establishment_id,
        }),
    });
    person_id
}

#[allow(clippy::too_many_arguments)]
fn class(
    config: &GenConfig,
    year: &Year,
    rng: &mut StdRng,
    establishment_id: EstablishmentId,
    staff: PersonId,
    est_no: usize,
    class_no: usize,
    out: &mut Vec<GenEvent>,
    summary: &mut GenSummary,
) {
    let start = at(year.first_day - Duration::days(6), 9, 0);
    let class_id = ClassId(uuid(rng));
    out.push(GenEvent {
        at: start,
        actor: None,
        event: DomainEvent::ClassCreated(ClassCreated {
            class_id,
            establishment_id,
            name: format!("{}e{}", 6 + class_no % 4, class_no / 4 + 1),
        }),
    });
    summary.classes += 1;
    let tag = format!("{est_no}-{class_no}");
    let mut teachers = Vec::with_capacity(SUBJECTS.len());
    for (s, subject) in SUBJECTS.iter().enumerate() {
        let teacher = person(
            out,
            start,
            format!("prof-{tag}-{s}"),
            "Prof",
            vec![Role::Teacher],
            Some(establishment_id),
        );
        out.push(GenEvent {
            at: start,
            actor: None,
            event: DomainEvent::TeacherAssigned(TeacherAssigned {
                class_id,
                teacher_id: teacher,
                subject: (*subject).to_owned(),
            }),
        });
        teachers.push(teacher);
    }
    // (student, its guardians)
    let mut students: Vec<(StudentId, Vec<PersonId>)> =
        Vec::with_capacity(config.students_per_class);
    for i in 0..config.students_per_class {
        let person_id = person(
            out,
            start,
            format!("eleve-{tag}-{i}"),
            "Élève",
            vec![Role::Student],
            None,
        );
        let student_id = StudentId::for_person(person_id);
        out.push(GenEvent {
            at: start,
            actor: None,
            event: DomainEvent::StudentEnrolled(StudentEnrolled {
                student_id,
                person_id,
                class_id,
            }),
        });
        let mut guardians = Vec::new();
        for g in 0..rng.gen_range(1..=2) {
            let guardian = person(
                out,
                start,
                format!("parent-{tag}-{i}-{g}"),
                "Parent",
                vec![Role::Guardian],
                None,
            );
            out.push(GenEvent {
                at: start,
                actor: None,
                event: DomainEvent::GuardianLinked(GuardianLinked {
                    student_id,
                    guardian_id: guardian,
                }),
            });
            guardians.push(guardian);
        }
        students.push((student_id, guardians));
        summary.students += 1;
    }
    grades(config, year, rng, class_id, &teachers, &students, out);
    absences(config, year, rng, staff, &teachers, &students, out);
    homework(config, year, rng, class_id, &teachers, out);
    messages(config, year, rng, &teachers, &students, out);
}

fn grades(
    config: &GenConfig,
    year: &Year,
    rng: &mut StdRng,
    class_id: ClassId,
    teachers: &[PersonId],
    students: &[(StudentId, Vec<PersonId>)],
    out: &mut Vec<GenEvent>,
) {
    for (s, subject) in SUBJECTS.iter().enumerate() {
        let teacher = teachers[s];
        for a in 0..config.assessments_per_subject {
            let day = year.day(rng);
            let assessment_id = AssessmentId(uuid(rng));
            let created = at(day, 8 + rng.gen_range(0..8), rng.gen_range(0..60));
            let actor = Some((teacher, Role::Teacher));
            out.push(GenEvent {
                at: created,
                actor,
                event: DomainEvent::AssessmentCreated(AssessmentCreated {
                    assessment_id,
                    class_id,
                    teacher_id: teacher,
                    subject: (*subject).to_owned(),
                    title: format!("Évaluation {}", a + 1),
                    date: day,
                    coefficient: if a % 3 == 0 { 2.0 } else { 1.0 },
                    out_of: 20.0,
                }),
            });
            // Grades are entered a few days later, in one sitting.
            let entered = created + Duration::days(rng.gen_range(2..9)) + Duration::hours(10);
            for (student_id, _) in students {
                let roll: f64 = rng.gen();
                let (status, score) = if roll < 0.04 {
                    (GradeStatus::Absent, None)
                } else if roll < 0.05 {
                    (GradeStatus::Exempt, None)
                } else {
                    let base: f64 = (0..3).map(|_| rng.gen_range(0.0..20.0)).sum::<f64>() / 3.0;
                    (GradeStatus::Graded, Some((base * 2.0).round() / 2.0))
                };
                let grade_id = GradeId::for_pair(assessment_id, *student_id);
                out.push(GenEvent {
                    at: entered,
                    actor,
                    event: DomainEvent::GradeRecorded(GradeRecorded {
                        grade_id,
                        assessment_id,
                        student_id: *student_id,
                        score,
                        status,
                    }),
                });
                if score.is_some() && rng.gen_bool(0.02) {
                    out.push(GenEvent {
                        at: entered + Duration::days(3),
                        actor,
                        event: DomainEvent::GradeCorrected(GradeCorrected {
                            grade_id,
                            assessment_id,
                            student_id: *student_id,
                            previous_score: score,
                            previous_status: status,
                            score: score.map(|s| (s + 1.0).min(20.0)),
                            status,
                            reason: "Erreur de saisie".into(),
                        }),
                    });
                }
            }
        }
    }
}

fn absences(
    config: &GenConfig,
    year: &Year,
    rng: &mut StdRng,
    staff: PersonId,
    teachers: &[PersonId],
    students: &[(StudentId, Vec<PersonId>)],
    out: &mut Vec<GenEvent>,
) {
    for (student_id, guardians) in students {
        // Between half and one and a half times the mean, per student.
        let mean = config.absences_per_student;
        let count = rng.gen_range((mean * 0.5) as usize..=(mean * 1.5) as usize);
        for _ in 0..count {
            let student_id = *student_id;
            let absence_id = AbsenceId(uuid(rng));
            let day = year.day(rng);
            let hour = 8 + rng.gen_range(0..8);
            let start = at(day, hour, 0);
            let teacher = teachers[rng.gen_range(0..teachers.len())];
            let guardian = guardians[rng.gen_range(0..guardians.len())];
            let roll: f64 = rng.gen();
            if roll < 0.25 {
                let minutes = rng.gen_range(5..30);
                out.push(GenEvent {
                    at: start + Duration::minutes(i64::from(minutes)),
                    actor: Some((teacher, Role::Teacher)),
                    event: DomainEvent::AbsenceReported(AbsenceReported {
                        absence_id,
                        student_id,
                        kind: AbsenceKind::Lateness,
                        start,
                        end: start + Duration::minutes(i64::from(minutes)),
                        minutes_late: Some(minutes),
                    }),
                });
                continue;
            }
            let end = start + Duration::hours(rng.gen_range(1..4));
            let justified = if roll < 0.35 {
                // Announced in advance by a guardian, confirmed at roll call.
                out.push(GenEvent {
                    at: start - Duration::days(2),
                    actor: Some((guardian, Role::Guardian)),
                    event: DomainEvent::AbsenceDeclared(AbsenceDeclared {
                        absence_id,
                        student_id,
                        start,
                        end,
                        reason: "Rendez-vous médical".into(),
                    }),
                });
                out.push(GenEvent {
                    at: start + Duration::minutes(10),
                    actor: Some((teacher, Role::Teacher)),
                    event: DomainEvent::DeclaredAbsenceConfirmed(DeclaredAbsenceConfirmed {
                        absence_id,
                        student_id,
                    }),
                });
                true
            } else {
                out.push(GenEvent {
                    at: start + Duration::minutes(10),
                    actor: Some((teacher, Role::Teacher)),
                    event: DomainEvent::AbsenceReported(AbsenceReported {
                        absence_id,
                        student_id,
                        kind: AbsenceKind::Absence,
                        start,
                        end,
                        minutes_late: None,
                    }),
                });
                if rng.gen_bool(0.03) {
                    out.push(GenEvent {
                        at: start + Duration::hours(2),
                        actor: Some((staff, Role::EducationStaff)),
                        event: DomainEvent::AbsenceCancelled(AbsenceCancelled {
                            absence_id,
                            student_id,
                            reason: "Élève présent en salle d'étude".into(),
                        }),
                    });
                    continue;
                }
                if rng.gen_bool(0.65) {
                    out.push(GenEvent {
                        at: start + Duration::hours(rng.gen_range(6..48)),
                        actor: Some((guardian, Role::Guardian)),
                        event: DomainEvent::AbsenceJustified(AbsenceJustified {
                            absence_id,
                            student_id,
                            reason: "Malade".into(),
                        }),
                    });
                    true
                } else {
                    false
                }
            };
            if justified {
                let accepted = rng.gen_bool(0.9);
                out.push(GenEvent {
                    at: start + Duration::hours(50),
                    actor: Some((staff, Role::EducationStaff)),
                    event: DomainEvent::JustificationReviewed(JustificationReviewed {
                        absence_id,
                        student_id,
                        accepted,
                        comment: (!accepted).then(|| "Motif non recevable".to_owned()),
                    }),
                });
            }
        }
    }
}

fn homework(
    config: &GenConfig,
    year: &Year,
    rng: &mut StdRng,
    class_id: ClassId,
    teachers: &[PersonId],
    out: &mut Vec<GenEvent>,
) {
    for (s, subject) in SUBJECTS.iter().enumerate() {
        let teacher = teachers[s];
        let actor = Some((teacher, Role::Teacher));
        for h in 0..config.homework_per_subject {
            let day = year.day(rng);
            let homework_id = HomeworkId(uuid(rng));
            let due = day + Duration::days(rng.gen_range(2..10));
            let title = format!("{subject}: travail {}", h + 1);
            let description = "Relire le cours et faire les exercices 3 à 7 page 112.".to_owned();
            let when = at(day, 17, rng.gen_range(0..60));
            out.push(GenEvent {
                at: when,
                actor,
                event: DomainEvent::HomeworkAssigned(HomeworkAssigned {
                    homework_id,
                    class_id,
                    teacher_id: teacher,
                    subject: (*subject).to_owned(),
                    title: title.clone(),
                    description: description.clone(),
                    due,
                    assigned_on: day,
                }),
            });
            let roll: f64 = rng.gen();
            if roll < 0.05 {
                out.push(GenEvent {
                    at: when + Duration::hours(20),
                    actor,
                    event: DomainEvent::HomeworkAmended(HomeworkAmended {
                        homework_id,
                        class_id,
                        title,
                        description: format!("{description} Et l'exercice 8."),
                        due: due + Duration::days(1),
                        reason: Some("Précision".into()),
                    }),
                });
            } else if roll < 0.06 {
                out.push(GenEvent {
                    at: when + Duration::hours(20),
                    actor,
                    event: DomainEvent::HomeworkWithdrawn(HomeworkWithdrawn {
                        homework_id,
                        class_id,
                        reason: "Saisi dans la mauvaise classe".into(),
                    }),
                });
            }
        }
    }
}

fn messages(
    config: &GenConfig,
    year: &Year,
    rng: &mut StdRng,
    teachers: &[PersonId],
    students: &[(StudentId, Vec<PersonId>)],
    out: &mut Vec<GenEvent>,
) {
    for _ in 0..config.threads_per_class {
        let thread_id = ThreadId(uuid(rng));
        let teacher = teachers[rng.gen_range(0..teachers.len())];
        let (_, guardians) = &students[rng.gen_range(0..students.len())];
        let sent = at(year.day(rng), 12, rng.gen_range(0..60));
        let message_id = MessageId(uuid(rng));
        out.push(GenEvent {
            at: sent,
            actor: Some((teacher, Role::Teacher)),
            event: DomainEvent::MessageSent(MessageSent {
                message_id,
                thread_id,
                from: teacher,
                to: guardians.clone(),
                subject: "Suivi de votre enfant".into(),
                body: "Bonjour, je souhaiterais faire un point sur le travail de votre enfant ce trimestre.".into(),
            }),
        });
        for (g, guardian) in guardians.iter().enumerate() {
            if rng.gen_bool(0.8) {
                out.push(GenEvent {
                    at: sent + Duration::hours(3 + g as i64),
                    actor: Some((*guardian, Role::Guardian)),
                    event: DomainEvent::MessageRead(MessageRead {
                        message_id,
                        thread_id,
                        reader: *guardian,
                    }),
                });
            }
        }
        if rng.gen_bool(0.4) {
            let guardian = guardians[0];
            let reply = MessageId(uuid(rng));
            out.push(GenEvent {
                at: sent + Duration::hours(8),
                actor: Some((guardian, Role::Guardian)),
                event: DomainEvent::MessageSent(MessageSent {
                    message_id: reply,
                    thread_id,
                    from: guardian,
                    to: vec![teacher],
                    subject: "Re: Suivi de votre enfant".into(),
                    body: "Bonjour, merci, nous sommes disponibles jeudi soir.".into(),
                }),
            });
            out.push(GenEvent {
                at: sent + Duration::hours(20),
                actor: Some((teacher, Role::Teacher)),
                event: DomainEvent::MessageRead(MessageRead {
                    message_id: reply,
                    thread_id,
                    reader: teacher,
                }),
            });
        }
    }
}

/// The store form of a generated fact. Event ids are UUIDv7 stamped with the
/// fact's time and seeded random bits, so the log is reproducible.
pub fn to_new_event(e: &GenEvent, rng: &mut StdRng) -> NewEvent {
    let encoded = e.event.encode();
    let millis = u64::try_from(e.at.timestamp_millis()).unwrap_or(0);
    let random: [u8; 10] = rng.gen();
    NewEvent {
        event_id: uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid(),
        event_type: encoded.event_type.to_owned(),
        schema_version: encoded.schema_version,
        data: encoded.data,
        metadata: EventMetadata {
            actor: e.actor.map(|(person, role)| Actor {
                person_id: person.as_uuid(),
                role: role.wire_name().into(),
            }),
            correlation_id: uuid(rng),
            causation_id: None,
            idempotency_key: None,
            occurred_at: e.at,
            reason: None,
        },
    }
}

/// Turns generated facts into append requests, one per fact, with the
/// seeded event ids of [`to_new_event`]. The version check is skipped
/// (`Any`): seeding replays facts already decided.
#[derive(Debug)]
pub struct Requests {
    rng: StdRng,
    partitions: Partitioner,
}

impl Requests {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed ^ 0x5eed),
            partitions: Partitioner::new(),
        }
    }

    pub fn request(&mut self, e: &GenEvent) -> AppendRequest {
        let stream_id = e.event.stream().into_string();
        AppendRequest {
            partition: self.partitions.assign(&stream_id, &e.event),
            stream_id,
            expected: ExpectedVersion::Any,
            events: vec![to_new_event(e, &mut self.rng)],
            idempotency: None,
        }
    }
}

/// Append requests for a generated log, in log order (see [`Requests`]).
pub fn to_requests(events: &[GenEvent], seed: u64) -> Vec<AppendRequest> {
    let mut requests = Requests::new(seed);
    events.iter().map(|e| requests.request(e)).collect()
}

/// The log as a store would hand it back, without a store: positions and
/// stream versions assigned in order, hashes left zero (folding does not read
/// them). Used to measure the pure fold rate.
pub fn to_recorded(events: &[GenEvent], seed: u64) -> Vec<RecordedEvent> {
    let mut versions: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    to_requests(events, seed)
        .into_iter()
        .enumerate()
        .flat_map(|(i, request)| {
            let version = versions.entry(request.stream_id.clone()).or_default();
            *version += 1;
            let stream_version = *version;
            request.events.into_iter().map(move |n| RecordedEvent {
                position: i as u64 + 1,
                stream_id: request.stream_id.clone(),
                stream_version,
                event_id: n.event_id,
                event_type: n.event_type,
                schema_version: n.schema_version,
                data: n.data,
                recorded_at: n.metadata.occurred_at,
                metadata: n.metadata,
                hash: [0; 32],
                partition: Some(request.partition.clone()),
            })
        })
        .collect()
}

/// An AbsenceReported fact for the command benchmarks: the payload every
/// target writes, so that row sizes match.
pub fn absence_reported(rng: &mut StdRng, student_id: StudentId) -> AbsenceReported {
    let day = NaiveDate::from_ymd_opt(2026, 3, 12).unwrap_or_default();
    let start = at(day, 8 + rng.gen_range(0..8), 0);
    AbsenceReported {
        absence_id: AbsenceId(uuid(rng)),
        student_id,
        kind: AbsenceKind::Absence,
        start,
        end: start + Duration::hours(1),
        minutes_late: None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn same_seed_same_log() {
        let config = GenConfig {
            classes_per_establishment: 2,
            ..GenConfig::default()
        };
        let (a, _) = generate(&config, 0);
        let (b, _) = generate(&config, 0);
        assert_eq!(a.len(), b.len());
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| x.event == y.event && x.at == y.at));
        let ra = to_requests(&a, 1);
        let rb = to_requests(&b, 1);
        assert_eq!(ra, rb);
    }

    #[test]
    fn establishments_one_at_a_time_continue_the_same_sequence() {
        let config = GenConfig {
            classes_per_establishment: 2,
            ..GenConfig::default()
        };
        let (whole, _) = generate(&config, 0);
        let mut each = Establishments::new(&config);
        let first = each.next_sorted();
        assert!(first.iter().zip(&whole).all(|(x, y)| x.event == y.event));
        assert_eq!(first.len(), whole.len());
        // The second establishment is new people, not the first again.
        let second = each.next_sorted();
        assert!(!second.is_empty());
        let created = |log: &[GenEvent]| {
            log.iter()
                .find_map(|e| match &e.event {
                    DomainEvent::EstablishmentCreated(c) => Some(c.establishment_id),
                    _ => None,
                })
                .unwrap()
        };
        assert_ne!(created(&first), created(&second));
        assert_eq!(each.summary.establishments, 2);
    }

    #[test]
    fn rates_are_demo_shaped() {
        let config = GenConfig {
            classes_per_establishment: 4,
            ..GenConfig::default()
        };
        let (events, summary) = generate(&config, 0);
        assert_eq!(summary.classes, 4);
        assert_eq!(summary.students, 100);
        let grades = summary.by_type["GradeRecorded"];
        assert_eq!(grades, 4 * 25 * 8 * 10);
        let absences = summary.by_type["AbsenceReported"] + summary.by_type["AbsenceDeclared"];
        assert!(
            (1000..2000).contains(&absences),
            "{absences} absences for 100 students"
        );
        // Every event decodes back from its stored form.
        for e in &events {
            let enc = e.event.encode();
            let back = DomainEvent::decode(enc.event_type, enc.schema_version, &enc.data).unwrap();
            assert_eq!(back, e.event);
        }
    }
}
