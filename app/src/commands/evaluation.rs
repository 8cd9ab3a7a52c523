//! The evaluation commands (issue 14): definePeriods, closePeriod,
//! reopenPeriod, writeAppreciation; and the closed-period fact of
//! recordGrade and correctGrade.

use super::Command;
use crate::policy::{self, Issuer};
use crate::ApiError;
use chrono::{DateTime, Utc};
use registre_domain::evaluation::{self, ClosedPeriod};
use registre_domain::{AssessmentId, DomainEvent, EstablishmentId, StreamName};
use registre_projections::ReadModel as Model;

/// The closed period containing the assessment's date, if any: grades dated
/// in it are neither recorded nor corrected.
pub(crate) fn closed_period_of(m: &Model, assessment: AssessmentId) -> Option<ClosedPeriod> {
    let a = m.assessment(assessment)?;
    m.period_at(a.class_id, a.date)
        .filter(|p| p.closed)
        .map(|p| ClosedPeriod {
            id: p.id,
            name: p.name.clone(),
        })
}

impl Command for evaluation::DefinePeriods {
    const NAME: &'static str = "definePeriods";
    type State = evaluation::Periods;
    type Facts = evaluation::DefinePeriodsFacts;

    fn authorize(&self, _: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::evaluation::can_define_periods(v, self.establishment_id))
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> Self::Facts {
        evaluation::DefinePeriodsFacts {
            establishment_exists: m.establishment(self.establishment_id).is_some(),
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::periods(self.establishment_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(evaluation::define_periods(state, self, facts)?)
    }
}

impl Command for evaluation::ClosePeriod {
    const NAME: &'static str = "closePeriod";
    type State = evaluation::Periods;
    /// The period's establishment (authorized, so it exists).
    type Facts = EstablishmentId;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::evaluation::can_close_period(m, v, self.period_id))
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> EstablishmentId {
        m.period(self.period_id)
            .map(|p| p.establishment_id)
            .unwrap_or_default()
    }
    fn stream(&self, establishment: &EstablishmentId) -> StreamName {
        StreamName::periods(*establishment)
    }
    fn decide(
        &self,
        state: &Self::State,
        _: &EstablishmentId,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(evaluation::close_period(state, self)?)
    }
}

impl Command for evaluation::ReopenPeriod {
    const NAME: &'static str = "reopenPeriod";
    type State = evaluation::Periods;
    type Facts = EstablishmentId;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer()
            .is_some_and(|v| policy::evaluation::can_close_period(m, v, self.period_id))
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> EstablishmentId {
        m.period(self.period_id)
            .map(|p| p.establishment_id)
            .unwrap_or_default()
    }
    fn stream(&self, establishment: &EstablishmentId) -> StreamName {
        StreamName::periods(*establishment)
    }
    fn decide(
        &self,
        state: &Self::State,
        _: &EstablishmentId,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(evaluation::reopen_period(state, self)?)
    }
    fn reason(&self) -> Option<&str> {
        Some(&self.reason)
    }
}

impl Command for evaluation::WriteAppreciation {
    const NAME: &'static str = "writeAppreciation";
    type State = evaluation::ReportCardSheet;
    type Facts = evaluation::AppreciationFacts;

    fn authorize(&self, m: &Model, by: Issuer<'_>) -> bool {
        by.viewer().is_some_and(|v| {
            policy::evaluation::can_write_appreciation(
                m,
                v,
                self.student_id,
                self.subject.as_deref(),
            )
        })
    }
    fn facts(&self, m: &Model, _: DateTime<Utc>) -> Self::Facts {
        evaluation::AppreciationFacts {
            student_establishment: m.establishment_of_student(self.student_id),
            period: m
                .period(self.period_id)
                .map(|p| (p.establishment_id, p.name.clone(), p.closed)),
        }
    }
    fn stream(&self, _: &Self::Facts) -> StreamName {
        StreamName::report_card(self.student_id, self.period_id)
    }
    fn decide(
        &self,
        state: &Self::State,
        facts: &Self::Facts,
    ) -> Result<Vec<DomainEvent>, ApiError> {
        Ok(evaluation::write_appreciation(state, self, facts)?)
    }
}
