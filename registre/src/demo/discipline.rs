//! The demo's discipline (issue 15): a term of incidents in the playground,
//! the corridors and the canteen, the punishments teachers and the CPE gave
//! for them (and a few without one), and two sanctions of the head: a
//! warning of last school year, already past its day to leave the record
//! (`registre retention apply` erases it), and a temporary exclusion of this
//! term. A child of the demo guardian is in one incident and has a
//! punishment, so that the demo family sees both. Every event comes from the domain's decision.

use super::{at, decided, Builder, DemoAccount, Entry, PersonInfo};
use anyhow::Context as _;
use chrono::{Days, NaiveDate};
use rand::Rng;
use registre_domain::discipline::*;
use registre_domain::*;

const PLACES: &[&str] = &[
    "Cour de récréation",
    "Couloir du 1er étage",
    "Cantine",
    "Gymnase",
    "Escalier B",
    "Abords du collège",
];
const WHAT: &[&str] = &[
    "Bousculade qui a dégénéré en bagarre",
    "Insultes répétées envers un camarade",
    "Dégradation d'un casier",
    "Téléphone utilisé en cours malgré les avertissements",
    "Moqueries sur les réseaux sociaux reprises en classe",
    "Refus d'obéir et propos insolents envers un surveillant",
];
const PUNISHMENT_KINDS: &[PunishmentKind] = &[
    PunishmentKind::NoteInLogbook,
    PunishmentKind::Apology,
    PunishmentKind::ExtraWork,
    PunishmentKind::Detention,
    PunishmentKind::ExclusionFromLesson,
];

/// What the demo's discipline is generated from.
pub(super) struct School<'a> {
    pub head: PersonInfo,
    pub cpe: PersonInfo,
    pub establishment: EstablishmentId,
    /// person, student record, class index, name
    pub students: &'a [(PersonInfo, StudentId, usize, String)],
    /// The guardians of each of `students`.
    pub guardians: &'a [Vec<PersonInfo>],
    pub class_teachers: &'a [Vec<(PersonInfo, &'a str)>],
    pub days: &'a [NaiveDate],
    pub accounts: &'a [DemoAccount],
}

pub(super) fn generate(b: &mut Builder, s: &School<'_>) -> anyhow::Result<()> {
    // A child of the demo guardian, so that the demo family sees discipline.
    let demo_guardian = s
        .accounts
        .iter()
        .find(|a| a.role == "GUARDIAN")
        .map(|a| PersonId::for_external_id(&a.subject));
    let demo_index = s
        .guardians
        .iter()
        .position(|g| g.iter().any(|g| Some(g.id) == demo_guardian))
        .context("a child of the demo guardian")?;
    let mut incidents: Vec<(IncidentId, NaiveDate, Vec<StudentId>)> = Vec::new();
    for n in 0..30 {
        let day = *b.pick(s.days);
        // Two or three students of one class; the demo family's child in the first.
        let first = if n == 0 {
            demo_index
        } else {
            b.rng.gen_range(0..s.students.len())
        };
        let class = s.students[first].2;
        let mut involved = vec![first];
        let classmates: Vec<usize> = (0..s.students.len())
            .filter(|i| s.students[*i].2 == class && *i != first)
            .collect();
        for _ in 0..b.rng.gen_range(1..=2) {
            if let Some(other) = classmates.get(b.rng.gen_range(0..classmates.len().max(1))) {
                if !involved.contains(other) {
                    involved.push(*other);
                }
            }
        }
        let roles = [
            ProtagonistRole::Author,
            ProtagonistRole::Victim,
            ProtagonistRole::Witness,
        ];
        let protagonists: Vec<Protagonist> = involved
            .iter()
            .zip(roles)
            .map(|(i, role)| Protagonist {
                student_id: s.students[*i].1,
                role,
            })
            .collect();
        let reporter = if b.rng.gen_bool(0.5) {
            s.cpe
        } else {
            s.class_teachers[class][b.rng.gen_range(0..s.class_teachers[class].len())].0
        };
        let when = at(day, b.rng.gen_range(10..16), b.rng.gen_range(0..60));
        let cmd = ReportIncident {
            incident_id: IncidentId(b.uuid()),
            establishment_id: s.establishment,
            occurred_at: when,
            place: Some((*b.pick(PLACES)).to_owned()),
            description: format!("{} ({} impliqués).", b.pick(WHAT), protagonists.len()),
            protagonists,
            reported_by: reporter.id,
        };
        let facts = IncidentFacts {
            establishment_exists: true,
            strangers: vec![],
            now: at(day, 17, 0),
        };
        let mut events: Vec<Entry> = Vec::new();
        decided(
            &mut Incident::default(),
            report_incident(&Incident::default(), &cmd, &facts),
            (reporter, at(day, 17, 0), None),
            &mut events,
        )?;
        b.stream(events);
        let authors = vec![s.students[involved[0]].1];
        incidents.push((cmd.incident_id, day, authors));
    }

    // A punishment for each incident's author, and a few without an incident.
    let unlinked: Vec<(Option<IncidentId>, NaiveDate, StudentId)> = (0..12)
        .map(|_| {
            let i = b.rng.gen_range(0..s.students.len());
            (None, *b.pick(s.days), s.students[i].1)
        })
        .collect();
    let linked = incidents
        .iter()
        .map(|(id, day, authors)| (Some(*id), *day, authors[0]));
    for (incident, day, student) in linked.collect::<Vec<_>>().into_iter().chain(unlinked) {
        let index = s
            .students
            .iter()
            .position(|(_, id, ..)| *id == student)
            .context("a student of the demo")?;
        let class = s.students[index].2;
        let giver = if incident.is_some() && b.rng.gen_bool(0.4) {
            s.cpe
        } else {
            s.class_teachers[class][b.rng.gen_range(0..s.class_teachers[class].len())].0
        };
        let kind = *b.pick(PUNISHMENT_KINDS);
        let cmd = GivePunishment {
            punishment_id: PunishmentId(b.uuid()),
            student_id: student,
            kind,
            reason: match kind {
                PunishmentKind::NoteInLogbook => "Bavardages répétés malgré les rappels",
                PunishmentKind::Apology => "Excuses écrites à la personne offensée",
                PunishmentKind::ExtraWork => "Exposé sur le respect d'autrui à rendre",
                PunishmentKind::Detention => "Retenue le mercredi après-midi",
                PunishmentKind::ExclusionFromLesson => {
                    "Perturbation du cours, accueilli en vie scolaire"
                }
            }
            .to_owned(),
            due_on: kind
                .has_due_date()
                .then(|| day.checked_add_days(Days::new(7)).unwrap_or(day)),
            incident_id: incident,
            given_by: giver.id,
        };
        let facts = PunishmentFacts {
            student_exists: true,
            incident: if incident.is_some() {
                LinkedIncident::Found {
                    involves_student: true,
                }
            } else {
                LinkedIncident::None
            },
            today: day,
        };
        let mut events: Vec<Entry> = Vec::new();
        decided(
            &mut Punishment::default(),
            give_punishment(&Punishment::default(), &cmd, &facts),
            (giver, at(day, 17, 30), None),
            &mut events,
        )?;
        b.stream(events);
    }

    // The head's two sanctions.
    let (worst, worst_day, worst_authors) = incidents
        .last()
        .cloned()
        .context("the term had incidents")?;
    let last_year = NaiveDate::from_ymd_opt(2026, 6, 12).context("a day of last year")?;
    let recorded = *s.days.first().context("a school day")?;
    let decisions = [
        (
            SanctionKind::Warning,
            s.students[(demo_index + 7) % s.students.len()].1,
            last_year,
            None,
            None,
            "Avertissement pour comportement irrespectueux répété (année précédente)",
            recorded,
        ),
        (
            SanctionKind::TemporaryExclusion,
            worst_authors[0],
            worst_day,
            Some(worst),
            Some(3),
            "Exclusion temporaire de trois jours dont un avec sursis, après une bagarre",
            worst_day,
        ),
    ];
    for (kind, student, decided_on, incident, days, reason, today) in decisions {
        let cmd = ImposeSanction {
            sanction_id: SanctionId(b.uuid()),
            student_id: student,
            kind,
            reason: reason.to_owned(),
            decided_on,
            days,
            suspended_days: days.map(|_| 1),
            incident_id: incident,
            decided_by: s.head.id,
        };
        let facts = SanctionFacts {
            establishment: Some(s.establishment),
            incident: if incident.is_some() {
                LinkedIncident::Found {
                    involves_student: true,
                }
            } else {
                LinkedIncident::None
            },
            today,
            school_years: SchoolYears::default(),
            delays: ErasureDelays::default(),
        };
        let mut events: Vec<Entry> = Vec::new();
        decided(
            &mut Sanction::default(),
            impose_sanction(&Sanction::default(), &cmd, &facts),
            (s.head, at(today, 18, 0), None),
            &mut events,
        )?;
        b.stream(events);
    }
    Ok(())
}
