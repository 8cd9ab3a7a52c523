//! Value types that are only ever constructed valid ("parse, don't validate").

use crate::error::DomainError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Profiles of the ENT. A person may hold several (a teacher who is also a parent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    Admin,
    Head,
    EducationStaff,
    Teacher,
    Guardian,
    Student,
    Auditor,
}

impl Role {
    /// Roles that act inside one establishment and so must name it.
    pub fn needs_establishment(self) -> bool {
        matches!(self, Role::Head | Role::EducationStaff | Role::Teacher)
    }
}

/// Code UAI (unité administrative immatriculée): 7 digits and a letter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Uai(String);

impl Uai {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let s = raw.trim().to_ascii_uppercase();
        // Bytes, not a slice of the string: eight bytes may end inside a
        // character ("075000ؾ"), where slicing the `str` would panic.
        let b = s.as_bytes();
        let ok =
            b.len() == 8 && b[..7].iter().all(|c| c.is_ascii_digit()) && b[7].is_ascii_uppercase();
        if ok {
            Ok(Self(s))
        } else {
            Err(DomainError::invalid(
                "uai",
                "a UAI is 7 digits followed by a letter, e.g. 0750001A",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Uai {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<Uai> for String {
    fn from(u: Uai) -> String {
        u.0
    }
}
impl fmt::Display for Uai {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IANA time zone known to the tz database (Europe/Paris, Indian/Reunion, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(chrono_tz::Tz);

impl TimeZone {
    pub const DEFAULT: TimeZone = TimeZone(chrono_tz::Europe::Paris);

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        raw.trim()
            .parse::<chrono_tz::Tz>()
            .map(Self)
            .map_err(|_| DomainError::invalid("timeZone", "not an IANA time zone name"))
    }
    pub fn tz(&self) -> chrono_tz::Tz {
        self.0
    }
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        Self::DEFAULT
    }
}
impl TryFrom<String> for TimeZone {
    type Error = DomainError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}
impl From<TimeZone> for String {
    fn from(t: TimeZone) -> String {
        t.0.name().to_owned()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GradeStatus {
    Graded,
    Absent,
    Exempt,
    NotSubmitted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AbsenceKind {
    Absence,
    Lateness,
    // school day (issue 13)
    /// Left before the end of the day: counted in half-days like an absence.
    Departure,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JustificationState {
    Unjustified,
    Pending,
    Accepted,
    Rejected,
}

impl JustificationState {
    /// The stored and GraphQL name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            JustificationState::Unjustified => "UNJUSTIFIED",
            JustificationState::Pending => "PENDING",
            JustificationState::Accepted => "ACCEPTED",
            JustificationState::Rejected => "REJECTED",
        }
    }
}

impl TimeZone {
    /// The calendar day it is at `now` in this zone: "today" for due dates is
    /// the establishment's day, not the server's (Réunion is 3 hours ahead of Paris).
    pub fn today(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDate {
        now.with_timezone(&self.0).date_naive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `scripts/fuzz event_decode`: eight bytes ending inside a
    /// two-byte character made the check slice the string off a character
    /// boundary and panic, from any request or stored event naming a UAI.
    #[test]
    fn a_uai_is_refused_not_a_panic_whatever_its_characters() {
        for raw in ["075000ؾ", "07500ؾ1", "é750001A", "0750001é", "0750001", ""] {
            assert!(Uai::parse(raw).is_err(), "{raw:?} accepted");
        }
        assert_eq!(
            Uai::parse(" 0750001a ").map(|u| u.as_str().to_owned()),
            Ok("0750001A".to_owned())
        );
    }
}
