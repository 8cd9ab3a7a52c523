//! Discipline: incidents, punishments (punitions scolaires) and sanctions
//! (sanctions disciplinaires, Code de l'éducation art. R511-13), each in its
//! own stream (`incident-*`, `punishment-*`, `sanction-*`).
//!
//! A sanction leaves the student's administrative record on a day fixed when
//! it is imposed ([`erasure_day`]): the end of the school year of the
//! decision, or of a later one, by kind ([`ErasureDelays`], the law's delays
//! by default). `SanctionErased` records that it left, on schedule or early;
//! the application destroys the sanction's own vault key before appending it
//! (its reason is sealed with the sanction id as subject), so the text is
//! gone while the kind, dates and days stay for statistics.

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::events::DomainEvent;
use crate::ids::*;
use crate::text;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

// ---- Values -------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProtagonistRole {
    Author,
    Victim,
    Witness,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protagonist {
    pub student_id: StudentId,
    pub role: ProtagonistRole,
}

/// Punitions scolaires: given by any teacher or staff member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PunishmentKind {
    NoteInLogbook,
    Apology,
    ExtraWork,
    Detention,
    ExclusionFromLesson,
}

impl PunishmentKind {
    pub const ALL: [PunishmentKind; 5] = [
        Self::NoteInLogbook,
        Self::Apology,
        Self::ExtraWork,
        Self::Detention,
        Self::ExclusionFromLesson,
    ];

    /// Extra work is handed in and a detention is served on a day.
    pub fn has_due_date(self) -> bool {
        matches!(self, Self::ExtraWork | Self::Detention)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoteInLogbook => "NOTE_IN_LOGBOOK",
            Self::Apology => "APOLOGY",
            Self::ExtraWork => "EXTRA_WORK",
            Self::Detention => "DETENTION",
            Self::ExclusionFromLesson => "EXCLUSION_FROM_LESSON",
        }
    }
}

/// The closed list of R511-13 (version in force since September 2019).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SanctionKind {
    Warning,
    Reprimand,
    ResponsibilityMeasure,
    ClassExclusion,
    TemporaryExclusion,
    PermanentExclusion,
}

impl SanctionKind {
    pub const ALL: [SanctionKind; 6] = [
        Self::Warning,
        Self::Reprimand,
        Self::ResponsibilityMeasure,
        Self::ClassExclusion,
        Self::TemporaryExclusion,
        Self::PermanentExclusion,
    ];

    /// Temporary exclusions from the class or the establishment last a
    /// number of days (R511-13: at most eight).
    pub fn counts_days(self) -> bool {
        matches!(self, Self::ClassExclusion | Self::TemporaryExclusion)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warning => "WARNING",
            Self::Reprimand => "REPRIMAND",
            Self::ResponsibilityMeasure => "RESPONSIBILITY_MEASURE",
            Self::ClassExclusion => "CLASS_EXCLUSION",
            Self::TemporaryExclusion => "TEMPORARY_EXCLUSION",
            Self::PermanentExclusion => "PERMANENT_EXCLUSION",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

/// Longest temporary exclusion (from the class or the establishment), R511-13.
pub const EXCLUSION_DAYS_MAX: i64 = 8;
/// Most students named in one incident: a class fight fits.
pub const PROTAGONISTS_MAX: usize = 60;
/// Place of an incident ("cour de récréation", "salle B12").
pub const PLACE_MAX: usize = 200;

// ---- School years and erasure days ----------------------------------------------

/// The school years of an establishment, as far as Registre knows them: a
/// year ends with the last of its evaluation periods where the establishment
/// defined them (`ReadModel::school_years`), on 31 August otherwise;
/// [`SchoolYears::end_of_year_of`] is the one place that applies it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchoolYears {
    /// Last days of school years the establishment declared, ascending. Empty:
    /// the national rule, a year ends on 31 August.
    pub declared_ends: Vec<NaiveDate>,
}

impl SchoolYears {
    /// The last day of the school year `day` falls in.
    pub fn end_of_year_of(&self, day: NaiveDate) -> NaiveDate {
        if let Some(end) = self.declared_ends.iter().find(|end| **end >= day) {
            return *end;
        }
        // The summer after the last declared year already belongs to the next.
        let after_declared = self
            .declared_ends
            .last()
            .is_some_and(|last| last.year() == day.year());
        let year = if day.month() >= 9 || after_declared {
            day.year() + 1
        } else {
            day.year()
        };
        NaiveDate::from_ymd_opt(year, 8, 31).unwrap_or(NaiveDate::MAX)
    }

    /// The last day of the `n`th school year after the one `day` falls in.
    pub fn end_of_year_after(&self, day: NaiveDate, n: u8) -> NaiveDate {
        let mut end = self.end_of_year_of(day);
        for _ in 0..n {
            match end.succ_opt() {
                Some(next) => end = self.end_of_year_of(next),
                None => return NaiveDate::MAX,
            }
        }
        end
    }

    /// The first day of the school year `day` falls in.
    pub fn start_of_year_of(&self, day: NaiveDate) -> NaiveDate {
        let year = if day.month() >= 9 {
            day.year()
        } else {
            day.year() - 1
        };
        NaiveDate::from_ymd_opt(year, 9, 1).unwrap_or(NaiveDate::MIN)
    }
}

/// How many school years after the one of the decision each kind stays in
/// the record: 0 is "at the end of the school year". Configuration, with the
/// delays of R511-13 (version in force since 1 September 2019) as defaults.
/// A permanent exclusion stays until the end of the student's secondary
/// schooling, a day Registre does not know: it has no erasure day and leaves
/// only by `eraseSanction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureDelays {
    pub warning: u8,
    pub reprimand: u8,
    pub responsibility_measure: u8,
    pub class_exclusion: u8,
    pub temporary_exclusion: u8,
}

impl Default for ErasureDelays {
    fn default() -> Self {
        Self {
            warning: 0,
            reprimand: 1,
            responsibility_measure: 1,
            class_exclusion: 2,
            temporary_exclusion: 2,
        }
    }
}

/// Longest configurable delay, in school years: beyond it a typing error.
pub const ERASURE_DELAY_MAX: u8 = 10;

impl ErasureDelays {
    /// School years after the decision's, `None` for a permanent exclusion.
    pub fn years(&self, kind: SanctionKind) -> Option<u8> {
        match kind {
            SanctionKind::Warning => Some(self.warning),
            SanctionKind::Reprimand => Some(self.reprimand),
            SanctionKind::ResponsibilityMeasure => Some(self.responsibility_measure),
            SanctionKind::ClassExclusion => Some(self.class_exclusion),
            SanctionKind::TemporaryExclusion => Some(self.temporary_exclusion),
            SanctionKind::PermanentExclusion => None,
        }
    }

    /// Parses `KIND=YEARS` pairs separated by commas (kinds by their GraphQL
    /// names, case-insensitive); kinds left out keep the law's delay. The
    /// empty string is the law's delays.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut delays = Self::default();
        for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, years) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?}: expected KIND=YEARS"))?;
            let kind = SanctionKind::parse(&kind.trim().to_ascii_uppercase())
                .ok_or_else(|| format!("{kind:?} is not a sanction kind"))?;
            let years: u8 = years
                .trim()
                .parse()
                .ok()
                .filter(|y| *y <= ERASURE_DELAY_MAX)
                .ok_or_else(|| {
                    format!("{years:?}: a number of school years from 0 to {ERASURE_DELAY_MAX}")
                })?;
            let slot = match kind {
                SanctionKind::Warning => &mut delays.warning,
                SanctionKind::Reprimand => &mut delays.reprimand,
                SanctionKind::ResponsibilityMeasure => &mut delays.responsibility_measure,
                SanctionKind::ClassExclusion => &mut delays.class_exclusion,
                SanctionKind::TemporaryExclusion => &mut delays.temporary_exclusion,
                SanctionKind::PermanentExclusion => {
                    return Err(
                        "PERMANENT_EXCLUSION stays until the end of secondary schooling; it has no delay"
                            .into(),
                    )
                }
            };
            *slot = years;
        }
        Ok(delays)
    }
}

/// The day a sanction leaves the student's record: the last day of the
/// school year of `decided_on`, or of the `n`th following one (R511-13: "à
/// l'issue de l'année scolaire"); `None` for a permanent exclusion.
pub fn erasure_day(
    kind: SanctionKind,
    decided_on: NaiveDate,
    delays: &ErasureDelays,
    years: &SchoolYears,
) -> Option<NaiveDate> {
    delays
        .years(kind)
        .map(|n| years.end_of_year_after(decided_on, n))
}

/// The decision days a sanction may carry, seen from `today`: from the start
/// of the school year five years back (a sanction recorded late, whose
/// erasure day may already be past) to today (a decision is not announced
/// for later).
pub fn accepted_decision_days(today: NaiveDate, years: &SchoolYears) -> (NaiveDate, NaiveDate) {
    let start = years.start_of_year_of(today);
    let first = NaiveDate::from_ymd_opt(start.year() - 5, 9, 1).unwrap_or(NaiveDate::MIN);
    (first, today)
}

// ---- Events ---------------------------------------------------------------------

/// An incident, as the person who saw or heard of it reports it. Its place
/// and description are personal text about the students involved, sealed
/// with the incident's own key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentReported {
    pub incident_id: IncidentId,
    pub establishment_id: EstablishmentId,
    pub occurred_at: DateTime<Utc>,
    pub place: Option<String>,
    pub description: String,
    pub protagonists: Vec<Protagonist>,
    pub reported_by: PersonId,
}

/// A punishment (punition scolaire); its reason is sealed with the student.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PunishmentGiven {
    pub punishment_id: PunishmentId,
    pub student_id: StudentId,
    pub kind: PunishmentKind,
    pub reason: String,
    pub due_on: Option<NaiveDate>,
    pub incident_id: Option<IncidentId>,
    pub given_by: PersonId,
}

/// A disciplinary sanction, with the day it leaves the record (computed
/// when imposed, so that the log proves which rule applied). Its reason is
/// sealed with the sanction's own key, destroyed when it leaves the record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SanctionImposed {
    pub sanction_id: SanctionId,
    pub student_id: StudentId,
    pub establishment_id: EstablishmentId,
    pub kind: SanctionKind,
    pub reason: String,
    pub decided_on: NaiveDate,
    pub days: Option<u8>,
    pub suspended_days: Option<u8>,
    pub incident_id: Option<IncidentId>,
    pub decided_by: PersonId,
    pub erased_on: Option<NaiveDate>,
}

/// The sanction left the student's administrative record: on schedule
/// (`early` false, the reason names the rule) or early by the head (the
/// reason says why). Its key was destroyed just before this was appended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SanctionErased {
    pub sanction_id: SanctionId,
    pub student_id: StudentId,
    pub early: bool,
    pub reason: String,
}

impl SanctionErased {
    /// The vault subjects whose keys this erasure destroys: the sanction's own.
    pub fn destroyed_keys(sanction: SanctionId) -> [uuid::Uuid; 1] {
        [sanction.0]
    }
}

// ---- Aggregates ---------------------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: Option<IncidentId>,
    pub version: u64,
}

impl Aggregate for Incident {
    fn apply(&mut self, event: &DomainEvent) {
        if let DomainEvent::IncidentReported(e) = event {
            if self.id.is_none() {
                self.id = Some(e.incident_id);
                self.version += 1;
            }
        }
    }
    fn version(&self) -> u64 {
        self.version
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Punishment {
    pub id: Option<PunishmentId>,
    pub version: u64,
}

impl Aggregate for Punishment {
    fn apply(&mut self, event: &DomainEvent) {
        if let DomainEvent::PunishmentGiven(e) = event {
            if self.id.is_none() {
                self.id = Some(e.punishment_id);
                self.version += 1;
            }
        }
    }
    fn version(&self) -> u64 {
        self.version
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sanction {
    pub id: Option<SanctionId>,
    pub student_id: Option<StudentId>,
    pub erased_on: Option<NaiveDate>,
    pub erased: bool,
    pub version: u64,
}

impl Aggregate for Sanction {
    fn apply(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::SanctionImposed(e) if self.id.is_none() => {
                self.id = Some(e.sanction_id);
                self.student_id = Some(e.student_id);
                self.erased_on = e.erased_on;
            }
            DomainEvent::SanctionErased(e) if self.id == Some(e.sanction_id) => {
                self.erased = true;
            }
            _ => return,
        }
        self.version += 1;
    }
    fn version(&self) -> u64 {
        self.version
    }
}

// ---- Commands -------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportIncident {
    /// Generated by the caller (UUIDv7); not part of the request's serde form.
    #[serde(skip)]
    pub incident_id: IncidentId,
    pub establishment_id: EstablishmentId,
    pub occurred_at: DateTime<Utc>,
    pub place: Option<String>,
    pub description: String,
    pub protagonists: Vec<Protagonist>,
    /// The viewer.
    pub reported_by: PersonId,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IncidentFacts {
    pub establishment_exists: bool,
    /// Protagonists who are no student of the establishment.
    pub strangers: Vec<StudentId>,
    pub now: DateTime<Utc>,
}

/// Reports an incident. It may name no student (the authors are unknown);
/// each student named has one role.
pub fn report_incident(
    state: &Incident,
    cmd: &ReportIncident,
    facts: &IncidentFacts,
) -> Result<Vec<DomainEvent>, DomainError> {
    if state.id.is_some() {
        return Err(DomainError::Conflict(format!(
            "incident {} already exists",
            cmd.incident_id
        )));
    }
    let description = text::block("description", &cmd.description, text::DESCRIPTION_MAX)?;
    let place = match cmd.place.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => Some(text::line("place", p, PLACE_MAX)?),
    };
    if cmd.protagonists.len() > PROTAGONISTS_MAX {
        return Err(DomainError::invalid(
            "protagonists",
            format!("at most {PROTAGONISTS_MAX} students"),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    if !cmd.protagonists.iter().all(|p| seen.insert(p.student_id)) {
        return Err(DomainError::invalid(
            "protagonists",
            "a student is named once, with one role",
        ));
    }
    if cmd.occurred_at > facts.now {
        return Err(DomainError::invalid(
            "occurredAt",
            "an incident is reported once it happened",
        ));
    }
    let (first, _) = crate::absences::accepted_dates(facts.now.date_naive());
    if cmd.occurred_at.date_naive() < first {
        return Err(DomainError::invalid(
            "occurredAt",
            format!("must not be before {first} (the previous school year)"),
        ));
    }
    if !facts.establishment_exists {
        return Err(DomainError::NotFound(format!(
            "establishment {}",
            cmd.establishment_id
        )));
    }
    if let Some(s) = facts.strangers.first() {
        return Err(DomainError::NotFound(format!(
            "student {s} in this establishment"
        )));
    }
    Ok(vec![DomainEvent::IncidentReported(IncidentReported {
        incident_id: cmd.incident_id,
        establishment_id: cmd.establishment_id,
        occurred_at: cmd.occurred_at,
        place,
        description,
        protagonists: cmd.protagonists.clone(),
        reported_by: cmd.reported_by,
    })])
}

/// What a punishment or sanction linked to an incident needs to know of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkedIncident {
    /// No incident named.
    None,
    /// No such incident in the student's establishment.
    Unknown,
    /// It exists; whether the student is one of its protagonists.
    Found { involves_student: bool },
}

fn check_incident(id: Option<IncidentId>, link: LinkedIncident) -> Result<(), DomainError> {
    match (id, link) {
        (None, _)
        | (
            Some(_),
            LinkedIncident::Found {
                involves_student: true,
            },
        ) => Ok(()),
        (Some(i), LinkedIncident::None | LinkedIncident::Unknown) => {
            Err(DomainError::NotFound(format!("incident {i}")))
        }
        (Some(_), LinkedIncident::Found { .. }) => Err(DomainError::invalid(
            "incidentId",
            "the student is not one of this incident's protagonists",
        )),
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GivePunishment {
    #[serde(skip)]
    pub punishment_id: PunishmentId,
    pub student_id: StudentId,
    pub kind: PunishmentKind,
    pub reason: String,
    pub due_on: Option<NaiveDate>,
    pub incident_id: Option<IncidentId>,
    /// The viewer.
    pub given_by: PersonId,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PunishmentFacts {
    pub student_exists: bool,
    pub incident: LinkedIncident,
    /// Today in the student's establishment's time zone.
    pub today: NaiveDate,
}

/// Gives a punishment. Extra work and detention carry the day they are due
/// (not before today); the other kinds carry none.
pub fn give_punishment(
    state: &Punishment,
    cmd: &GivePunishment,
    facts: &PunishmentFacts,
) -> Result<Vec<DomainEvent>, DomainError> {
    if state.id.is_some() {
        return Err(DomainError::Conflict(format!(
            "punishment {} already exists",
            cmd.punishment_id
        )));
    }
    let reason = text::block("reason", &cmd.reason, text::REASON_MAX)?;
    match (cmd.kind.has_due_date(), cmd.due_on) {
        (true, None) => {
            return Err(DomainError::invalid(
                "dueOn",
                format!("a {} needs the day it is due", cmd.kind.as_str()),
            ))
        }
        (false, Some(_)) => {
            return Err(DomainError::invalid(
                "dueOn",
                format!("a {} has no due date", cmd.kind.as_str()),
            ))
        }
        (true, Some(due)) if due < facts.today => {
            return Err(DomainError::invalid(
                "dueOn",
                format!(
                    "must not be before today ({}) in the establishment's time zone",
                    facts.today
                ),
            ))
        }
        _ => {}
    }
    if !facts.student_exists {
        return Err(DomainError::NotFound(format!("student {}", cmd.student_id)));
    }
    check_incident(cmd.incident_id, facts.incident)?;
    Ok(vec![DomainEvent::PunishmentGiven(PunishmentGiven {
        punishment_id: cmd.punishment_id,
        student_id: cmd.student_id,
        kind: cmd.kind,
        reason,
        due_on: cmd.due_on,
        incident_id: cmd.incident_id,
        given_by: cmd.given_by,
    })])
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImposeSanction {
    #[serde(skip)]
    pub sanction_id: SanctionId,
    pub student_id: StudentId,
    pub kind: SanctionKind,
    pub reason: String,
    pub decided_on: NaiveDate,
    /// As received (validated here).
    pub days: Option<i64>,
    pub suspended_days: Option<i64>,
    pub incident_id: Option<IncidentId>,
    /// The viewer.
    pub decided_by: PersonId,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SanctionFacts {
    /// The student's establishment; `None` when there is no such student.
    pub establishment: Option<EstablishmentId>,
    pub incident: LinkedIncident,
    pub today: NaiveDate,
    pub school_years: SchoolYears,
    pub delays: ErasureDelays,
}

/// Imposes a sanction from the closed list. Temporary exclusions (from the
/// class or the establishment) last 1 to 8 days, of which some may be
/// suspended (sursis); the other kinds carry no days.
pub fn impose_sanction(
    state: &Sanction,
    cmd: &ImposeSanction,
    facts: &SanctionFacts,
) -> Result<Vec<DomainEvent>, DomainError> {
    if state.id.is_some() {
        return Err(DomainError::Conflict(format!(
            "sanction {} already exists",
            cmd.sanction_id
        )));
    }
    let reason = text::block("reason", &cmd.reason, text::REASON_MAX)?;
    let (days, suspended_days) = match (cmd.kind.counts_days(), cmd.days, cmd.suspended_days) {
        (true, None, _) => {
            return Err(DomainError::invalid(
                "days",
                format!("a {} lasts a number of days", cmd.kind.as_str()),
            ))
        }
        (true, Some(d), _) if !(1..=EXCLUSION_DAYS_MAX).contains(&d) => {
            return Err(DomainError::invalid(
                "days",
                format!(
                    "a {} lasts 1 to {EXCLUSION_DAYS_MAX} days (R511-13)",
                    cmd.kind.as_str()
                ),
            ))
        }
        (true, Some(d), Some(s)) if !(0..=d).contains(&s) => {
            return Err(DomainError::invalid(
                "suspendedDays",
                format!("between 0 and days ({d})"),
            ))
        }
        (true, Some(d), s) => (u8::try_from(d).ok(), s.and_then(|s| u8::try_from(s).ok())),
        (false, Some(_), _) => {
            return Err(DomainError::invalid(
                "days",
                format!("a {} carries no days", cmd.kind.as_str()),
            ))
        }
        (false, None, Some(_)) => {
            return Err(DomainError::invalid(
                "suspendedDays",
                "only an exclusion counted in days has suspended days",
            ))
        }
        (false, None, None) => (None, None),
    };
    let (first, last) = accepted_decision_days(facts.today, &facts.school_years);
    if cmd.decided_on > last {
        return Err(DomainError::invalid(
            "decidedOn",
            format!("must not be after today ({last}) in the establishment's time zone"),
        ));
    }
    if cmd.decided_on < first {
        return Err(DomainError::invalid(
            "decidedOn",
            format!("must not be before {first}"),
        ));
    }
    let Some(establishment_id) = facts.establishment else {
        return Err(DomainError::NotFound(format!("student {}", cmd.student_id)));
    };
    check_incident(cmd.incident_id, facts.incident)?;
    Ok(vec![DomainEvent::SanctionImposed(SanctionImposed {
        sanction_id: cmd.sanction_id,
        student_id: cmd.student_id,
        establishment_id,
        kind: cmd.kind,
        reason,
        decided_on: cmd.decided_on,
        days,
        suspended_days,
        incident_id: cmd.incident_id,
        decided_by: cmd.decided_by,
        erased_on: erasure_day(cmd.kind, cmd.decided_on, &facts.delays, &facts.school_years),
    })])
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EraseSanction {
    pub sanction_id: SanctionId,
    pub reason: String,
    /// For the retention rule's run: the day it erases as, in the sanction's
    /// establishment's calendar (the caller's clock; the domain has none).
    /// `None`: a head's early erasure.
    pub on_schedule: Option<NaiveDate>,
}

/// Erases a sanction from the record. Early (the head, with a reason): a
/// second erasure is a CONFLICT. On schedule: only once its day has come,
/// and nothing is written when it already left.
pub fn erase_sanction(
    state: &Sanction,
    cmd: &EraseSanction,
) -> Result<Vec<DomainEvent>, DomainError> {
    let reason = text::block("reason", &cmd.reason, text::REASON_MAX)?;
    let (Some(sanction_id), Some(student_id)) = (state.id, state.student_id) else {
        return Err(DomainError::NotFound(format!(
            "sanction {}",
            cmd.sanction_id
        )));
    };
    if state.erased {
        if cmd.on_schedule.is_some() {
            return Ok(Vec::new());
        }
        return Err(DomainError::Conflict(
            "this sanction was already erased".into(),
        ));
    }
    if let Some(today) = cmd.on_schedule {
        if state.erased_on.is_none_or(|day| day > today) {
            return Err(DomainError::Conflict(
                "this sanction's erasure day has not come".into(),
            ));
        }
    }
    Ok(vec![DomainEvent::SanctionErased(SanctionErased {
        sanction_id,
        student_id,
        early: cmd.on_schedule.is_none(),
        reason,
    })])
}
