//! Absences and lateness. One `absence-*` stream per absence: the report (or
//! a guardian's declaration in advance), then its justification, review or
//! cancellation.
//!
//! Justification states: a reported absence starts UNJUSTIFIED; a guardian's
//! justification makes it PENDING; education staff accept or reject it
//! (REJECTED may be justified again). A declaration in advance starts PENDING
//! with the guardian's reason, and the roll call that later reports the
//! absence confirms it instead of creating a duplicate.

use crate::aggregate::Aggregate;
use crate::error::DomainError;
use crate::events::*;
use crate::ids::*;
use crate::text;
use crate::values::*;
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Largest `minutesLate`: a lateness of more than a day is an absence.
pub const MINUTES_LATE_MAX: i64 = 24 * 60;
/// Longest LATENESS from start to end: it happens within one school day.
pub const LATENESS_SPAN_MAX_HOURS: i64 = 24;
/// Longest ABSENCE from start to end: one school year (a leap year's 366
/// days). A longer one is a typing error, or a departure, which is closed
/// through the account, not recorded as an absence.
pub const ABSENCE_SPAN_MAX_DAYS: i64 = 366;

/// The dates absences may fall on, seen from `today`: from 1 September of
/// the previous school year to 31 August that ends the next one (three
/// school years; a school year starts on 1 September). Roll calls are made
/// on the day, justifications and corrections of last year still happen in
/// September, and guardians declare appointments a few months ahead; an
/// absence from year 0001 to 9999 is none of these, and would make every
/// statistic over its class walk eight thousand years.
pub fn accepted_dates(today: NaiveDate) -> (NaiveDate, NaiveDate) {
    let current = if today.month() >= 9 {
        today.year()
    } else {
        today.year() - 1
    };
    let first = NaiveDate::from_ymd_opt(current - 1, 9, 1).unwrap_or(NaiveDate::MIN);
    let last = NaiveDate::from_ymd_opt(current + 2, 8, 31).unwrap_or(NaiveDate::MAX);
    (first, last)
}

/// The bounds of an absence or lateness, besides start < end: its length
/// (see [`LATENESS_SPAN_MAX_HOURS`], [`ABSENCE_SPAN_MAX_DAYS`]) and its dates
/// ([`accepted_dates`] from `now`'s day; the domain has no clock, the
/// caller passes the time it decides at).
pub fn check_bounds(
    kind: AbsenceKind,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    interval(start, end)?;
    let span = end - start;
    match kind {
        AbsenceKind::Lateness if span > TimeDelta::hours(LATENESS_SPAN_MAX_HOURS) => {
            return Err(DomainError::invalid(
                "end",
                format!(
                    "a LATENESS lasts at most {LATENESS_SPAN_MAX_HOURS} hours; a longer one is an ABSENCE"
                ),
            ))
        }
        // A departure ends the day it happens.
        AbsenceKind::Departure if span > TimeDelta::hours(LATENESS_SPAN_MAX_HOURS) => {
            return Err(DomainError::invalid(
                "end",
                format!(
                    "a DEPARTURE lasts at most {LATENESS_SPAN_MAX_HOURS} hours (the rest of its day); a longer one is an ABSENCE"
                ),
            ))
        }
        AbsenceKind::Absence if span > TimeDelta::days(ABSENCE_SPAN_MAX_DAYS) => {
            return Err(DomainError::invalid(
                "end",
                format!("an ABSENCE lasts at most {ABSENCE_SPAN_MAX_DAYS} days (one school year)"),
            ))
        }
        _ => {}
    }
    let (first, last) = accepted_dates(now.date_naive());
    let outside = |field: &str| {
        DomainError::invalid(
            field,
            format!(
                "must fall between {first} and {last} (the previous, current and next school years)"
            ),
        )
    };
    if start.date_naive() < first {
        return Err(outside("start"));
    }
    if end.date_naive() > last {
        return Err(outside("end"));
    }
    Ok(())
}

/// Decision state of an `absence-*` stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Absence {
    pub id: Option<AbsenceId>,
    pub student_id: Option<StudentId>,
    pub kind: Option<AbsenceKind>,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// Declared in advance by a guardian.
    pub declared: bool,
    /// A declared absence the roll call has since reported.
    pub confirmed: bool,
    pub justification: Option<JustificationState>,
    pub cancelled: bool,
    pub version: u64,
}

impl Absence {
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    /// The current justification state (UNJUSTIFIED for an absence that does not exist).
    pub fn justification_state(&self) -> JustificationState {
        self.justification
            .unwrap_or(JustificationState::Unjustified)
    }

    /// Whether this is a live declaration in advance of `student` overlapping
    /// `[start, end)`, which a roll call report for that time must confirm.
    pub fn covers(&self, student: StudentId, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        match (
            self.declared,
            self.cancelled,
            self.student_id,
            self.start,
            self.end,
        ) {
            (true, false, Some(s), Some(ds), Some(de)) => s == student && ds < end && start < de,
            _ => false,
        }
    }

    fn live(&self, absence_id: AbsenceId) -> Result<(AbsenceId, StudentId), DomainError> {
        let (id, student) = match (self.id, self.student_id) {
            (Some(id), Some(s)) => (id, s),
            _ => return Err(DomainError::NotFound(format!("absence {absence_id}"))),
        };
        if self.cancelled {
            return Err(DomainError::Conflict("this absence was cancelled".into()));
        }
        Ok((id, student))
    }
}

impl Aggregate for Absence {
    fn apply(&mut self, event: &DomainEvent) {
        use DomainEvent::*;
        let me = self.id;
        match event {
            AbsenceReported(e) if self.id.is_none() => {
                self.id = Some(e.absence_id);
                self.student_id = Some(e.student_id);
                self.kind = Some(e.kind);
                self.start = Some(e.start);
                self.end = Some(e.end);
                self.justification = Some(JustificationState::Unjustified);
            }
            AbsenceDeclared(e) if self.id.is_none() => {
                self.id = Some(e.absence_id);
                self.student_id = Some(e.student_id);
                self.kind = Some(AbsenceKind::Absence);
                self.start = Some(e.start);
                self.end = Some(e.end);
                self.declared = true;
                self.justification = Some(JustificationState::Pending);
            }
            DeclaredAbsenceConfirmed(e) if me == Some(e.absence_id) => self.confirmed = true,
            AbsenceJustified(e) if me == Some(e.absence_id) => {
                self.justification = Some(JustificationState::Pending);
            }
            JustificationReviewed(e) if me == Some(e.absence_id) => {
                self.justification = Some(if e.accepted {
                    JustificationState::Accepted
                } else {
                    JustificationState::Rejected
                });
            }
            AbsenceCancelled(e) if me == Some(e.absence_id) => self.cancelled = true,
            // school day (issue 13): the motive is the read model's; the
            // stream's version still counts it.
            AbsenceMotiveGiven(e) if me == Some(e.absence_id) => {}
            // communication (issue 16): documents joined the justification.
            AttachmentsLinked(e) if matches!(e.to, crate::communication::AttachedTo::Justification(a) if me == Some(a)) =>
                {}
            _ => return,
        }
        self.version += 1;
    }
    fn version(&self) -> u64 {
        self.version
    }
}

fn interval(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<(), DomainError> {
    if start < end {
        Ok(())
    } else {
        Err(DomainError::invalid("end", "must be after start"))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportAbsence {
    /// Generated by the caller (UUIDv7); used unless a declared absence is
    /// confirmed. Not part of the serde form (the command's fingerprint): it
    /// differs on every request.
    #[serde(skip)]
    pub absence_id: AbsenceId,
    pub student_id: StudentId,
    pub kind: AbsenceKind,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// As received: required (> 0) for LATENESS, absent for ABSENCE.
    pub minutes_late: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportFacts {
    /// The class the student is enrolled in now; `None` when there is no such student.
    pub student_class: Option<ClassId>,
    /// Decision states of the student's absences declared in advance that may
    /// overlap the report (the caller finds them in the read model and loads
    /// their streams). The domain checks student, overlap and cancellation itself.
    pub declared: Vec<Absence>,
    /// When the report is decided: the accepted dates are relative to it.
    pub now: DateTime<Utc>,
}

/// What a report decided, and on which stream: `absence_id` is the new
/// absence, or the declared absence the report confirmed. `events` go to
/// `StreamName::absence(absence_id)`; they are empty when the report falls
/// within a declared absence that an earlier roll call already confirmed.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportOutcome {
    pub absence_id: AbsenceId,
    /// True when `absence_id` is an existing declared absence, whose stream
    /// the caller appends to at the version of the state it passed in the facts.
    pub confirms_declared: bool,
    pub events: Vec<DomainEvent>,
}

/// Records an absence or lateness seen by a roll call. An ABSENCE that
/// overlaps a live absence the student's guardian declared in advance
/// confirms that declaration instead (the earliest one, when several overlap).
/// A LATENESS is always its own entry: being late is not the declared absence.
pub fn report_absence(
    state: &Absence,
    cmd: &ReportAbsence,
    facts: &ReportFacts,
) -> Result<ReportOutcome, DomainError> {
    interval(cmd.start, cmd.end)?;
    let minutes_late = match (cmd.kind, cmd.minutes_late) {
        (AbsenceKind::Lateness, Some(m)) if (1..=MINUTES_LATE_MAX).contains(&m) => {
            u32::try_from(m).ok()
        }
        (AbsenceKind::Lateness, Some(_)) => {
            return Err(DomainError::invalid(
                "minutesLate",
                format!("must be between 1 and {MINUTES_LATE_MAX}"),
            ))
        }
        (AbsenceKind::Lateness, None) => {
            return Err(DomainError::invalid(
                "minutesLate",
                "a LATENESS needs minutesLate",
            ))
        }
        (AbsenceKind::Absence | AbsenceKind::Departure, Some(_)) => {
            return Err(DomainError::invalid(
                "minutesLate",
                "only a LATENESS carries minutesLate",
            ))
        }
        (AbsenceKind::Absence | AbsenceKind::Departure, None) => None,
    };
    if facts.student_class.is_none() {
        return Err(DomainError::NotFound(format!("student {}", cmd.student_id)));
    }
    check_bounds(cmd.kind, cmd.start, cmd.end, facts.now)?;
    if cmd.kind == AbsenceKind::Absence {
        let declared = facts
            .declared
            .iter()
            .filter(|d| d.covers(cmd.student_id, cmd.start, cmd.end))
            .min_by_key(|d| d.start);
        if let Some(d) = declared {
            let (absence_id, student_id) = d.live(cmd.absence_id)?;
            let events = if d.confirmed {
                Vec::new()
            } else {
                vec![DomainEvent::DeclaredAbsenceConfirmed(
                    DeclaredAbsenceConfirmed {
                        absence_id,
                        student_id,
                    },
                )]
            };
            return Ok(ReportOutcome {
                absence_id,
                confirms_declared: true,
                events,
            });
        }
    }
    if state.exists() {
        return Err(DomainError::Conflict(format!(
            "absence {} already exists",
            cmd.absence_id
        )));
    }
    Ok(ReportOutcome {
        absence_id: cmd.absence_id,
        confirms_declared: false,
        events: vec![DomainEvent::AbsenceReported(AbsenceReported {
            absence_id: cmd.absence_id,
            student_id: cmd.student_id,
            kind: cmd.kind,
            start: cmd.start,
            end: cmd.end,
            minutes_late,
        })],
    })
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeclareAbsence {
    /// Generated by the caller (UUIDv7). Not part of the serde form (the
    /// command's fingerprint): it differs on every request.
    #[serde(skip)]
    pub absence_id: AbsenceId,
    pub student_id: StudentId,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DeclareFacts {
    /// The class the student is enrolled in now; `None` when there is no such student.
    pub student_class: Option<ClassId>,
    pub now: DateTime<Utc>,
}

/// A guardian announces an absence in advance. "In advance" means it has not
/// ended yet: an absence that is over is justified after the roll call reports it.
pub fn declare_absence(
    state: &Absence,
    cmd: &DeclareAbsence,
    facts: &DeclareFacts,
) -> Result<Vec<DomainEvent>, DomainError> {
    if state.exists() {
        return Err(DomainError::Conflict(format!(
            "absence {} already exists",
            cmd.absence_id
        )));
    }
    check_bounds(AbsenceKind::Absence, cmd.start, cmd.end, facts.now)?;
    if cmd.end <= facts.now {
        return Err(DomainError::invalid(
            "end",
            "an absence declared in advance must not be over yet; justify the reported absence instead",
        ));
    }
    let reason = text::block("reason", &cmd.reason, text::REASON_MAX)?;
    if facts.student_class.is_none() {
        return Err(DomainError::NotFound(format!("student {}", cmd.student_id)));
    }
    Ok(vec![DomainEvent::AbsenceDeclared(AbsenceDeclared {
        absence_id: cmd.absence_id,
        student_id: cmd.student_id,
        start: cmd.start,
        end: cmd.end,
        reason,
    })])
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JustifyAbsence {
    pub absence_id: AbsenceId,
    pub reason: String,
}

/// A guardian's justification: UNJUSTIFIED or REJECTED becomes PENDING.
pub fn justify_absence(
    state: &Absence,
    cmd: &JustifyAbsence,
) -> Result<Vec<DomainEvent>, DomainError> {
    let (absence_id, student_id) = state.live(cmd.absence_id)?;
    let reason = text::block("reason", &cmd.reason, text::REASON_MAX)?;
    match state.justification_state() {
        JustificationState::Unjustified | JustificationState::Rejected => {}
        other => {
            return Err(DomainError::Conflict(format!(
                "the absence is {}; only UNJUSTIFIED or REJECTED absences can be justified",
                other.as_str()
            )))
        }
    }
    Ok(vec![DomainEvent::AbsenceJustified(AbsenceJustified {
        absence_id,
        student_id,
        reason,
    })])
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReviewJustification {
    pub absence_id: AbsenceId,
    pub accept: bool,
    pub comment: Option<String>,
}

/// Education staff's review: PENDING becomes ACCEPTED or REJECTED.
pub fn review_justification(
    state: &Absence,
    cmd: &ReviewJustification,
) -> Result<Vec<DomainEvent>, DomainError> {
    let (absence_id, student_id) = state.live(cmd.absence_id)?;
    let comment = text::optional_comment("comment", cmd.comment.as_deref(), text::REASON_MAX)?;
    if state.justification_state() != JustificationState::Pending {
        return Err(DomainError::Conflict(format!(
            "the absence is {}; only a PENDING justification can be reviewed",
            state.justification_state().as_str()
        )));
    }
    Ok(vec![DomainEvent::JustificationReviewed(
        JustificationReviewed {
            absence_id,
            student_id,
            accepted: cmd.accept,
            comment,
        },
    )])
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CancelAbsence {
    pub absence_id: AbsenceId,
    pub reason: String,
}

/// Withdraws an entry made in error (or a declaration that no longer holds).
/// It stays in the log with its reason; views drop it.
pub fn cancel_absence(
    state: &Absence,
    cmd: &CancelAbsence,
) -> Result<Vec<DomainEvent>, DomainError> {
    let (absence_id, student_id) = state.live(cmd.absence_id)?;
    let reason = text::block("reason", &cmd.reason, text::REASON_MAX)?;
    Ok(vec![DomainEvent::AbsenceCancelled(AbsenceCancelled {
        absence_id,
        student_id,
        reason,
    })])
}
