//! The discipline commands (issue 15): reportIncident, givePunishment,
//! imposeSanction, eraseSanction (a head's early erasure, or the retention
//! rule's on schedule).

use super::Command;
use crate::policy::{discipline as policy, Issuer};
use crate::ApiError;
use chrono::{DateTime, Utc};
use registre_domain::discipline::{self, ErasureDelays, LinkedIncident};
use registre_domain::{DomainEvent, IncidentId, StreamName, StudentId};
use registre_projections::ReadModel as Model;
use serde::Serialize;

impl Command for discipline::ReportIncident {
    const NAME: &'static str = "reportIncident";
    type State = discipline::Incident;
    type Facts = discipline::IncidentFacts;

    fn authorize(&self, _: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_report_incident(v, self.establishment_id))
    }
    fn facts(&self, m: &Model, now: DateTime<Utc>) -> Self::Facts {
        discipline::IncidentFacts {
            establishment_exists: m.establishment(self.establishment_id).is_some(),
            strangers: self
                .protagonists
                .iter()
                .map(|p| p.student_id)
                .filter(|s| m.establishment_of_student(*s) != Some(self.establishment_id))
                .collect(),
            now,
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::incident(self.incident_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(discipline::report_incident(state, self, facts)?)
    }
}

/// What a punishment or sanction linked to `incident` finds of it: it must
/// be an incident of the student's establishment.
fn linked_incident(m: &Model, incident: Option<IncidentId>, student: StudentId) -> LinkedIncident {
    let Some(id) = incident else {
        return LinkedIncident::None;
    };
    match m.discipline().incident(id) {
        Some(i) if Some(i.establishment_id) == m.establishment_of_student(student) => {
            LinkedIncident::Found {
                involves_student: i.protagonists.iter().any(|p| p.student_id == student),
            }
        }
        _ => LinkedIncident::Unknown,
    }
}

/// Today in the student's establishment's time zone.
fn today_of(m: &Model, student: StudentId, now: DateTime<Utc>) -> chrono::NaiveDate {
    let zone = m
        .student(student)
        .map(|s| m.zone_of_class(s.class_id))
        .unwrap_or(registre_domain::TimeZone::DEFAULT.tz());
    now.with_timezone(&zone).date_naive()
}

impl Command for discipline::GivePunishment {
    const NAME: &'static str = "givePunishment";
    type State = discipline::Punishment;
    type Facts = discipline::PunishmentFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_give_punishment(m, v, self.student_id))
    }
    fn facts(&self, m: &Model, now: DateTime<Utc>) -> Self::Facts {
        discipline::PunishmentFacts {
            student_exists: m.student(self.student_id).is_some(),
            incident: linked_incident(m, self.incident_id, self.student_id),
            today: today_of(m, self.student_id, now),
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::punishment(self.punishment_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(discipline::give_punishment(state, self, facts)?)
    }
}

/// imposeSanction with the node's erasure delays (configuration, not part
/// of the request: left out of the fingerprint).
#[derive(Clone, Debug, Serialize)]
pub struct ImposeSanction {
    #[serde(flatten)]
    pub sanction: discipline::ImposeSanction,
    #[serde(skip)]
    pub delays: ErasureDelays,
}

impl Command for ImposeSanction {
    const NAME: &'static str = "imposeSanction";
    type State = discipline::Sanction;
    type Facts = discipline::SanctionFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::can_impose_sanction(m, v, self.sanction.student_id))
    }
    fn facts(&self, m: &Model, now: DateTime<Utc>) -> Self::Facts {
        let student = self.sanction.student_id;
        let establishment = m.establishment_of_student(student);
        discipline::SanctionFacts {
            establishment,
            incident: linked_incident(m, self.sanction.incident_id, student),
            today: today_of(m, student, now),
            school_years: establishment.map(|e| m.school_years(e)).unwrap_or_default(),
            delays: self.delays,
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::sanction(self.sanction.sanction_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(discipline::impose_sanction(state, &self.sanction, facts)?)
    }
}

/// eraseSanction: decided from the sanction's stream; the executor destroys
/// the sanction's key before it appends `SanctionErased`.
impl Command for discipline::EraseSanction {
    const NAME: &'static str = "eraseSanction";
    type State = discipline::Sanction;
    type Facts = ();

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        policy::can_erase_sanction(m, by, self.sanction_id)
    }
    fn facts(&self, _: &Model, _: DateTime<Utc>) {}
    fn stream(&self, _: &()) -> StreamName {
        StreamName::sanction(self.sanction_id)
    }
    fn decide(&self, state: &Self::State, _: &()) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(discipline::erase_sanction(state, self)?)
    }
    fn reason(&self) -> Option<&str> {
        Some(&self.reason)
    }
}
