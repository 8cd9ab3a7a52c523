//! The discipline part of the read model (issue 15): incidents, punishments
//! and sanctions, folded from their events by [`ReadModel`](crate::ReadModel)'s
//! apply, and the head's monthly statistics.
//!
//! An erased sanction stays here with its kind, dates and days (statistics
//! count it) but its reason reads as erased and `erased` is set: the
//! `sanctions` of a student leave it out. A person's erasure blanks the
//! punishments' reasons of their student record; incident and sanction text
//! is sealed with the record's own key and is not a person's to erase.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use registre_domain::discipline::{
    IncidentReported, Protagonist, PunishmentGiven, PunishmentKind, SanctionErased,
    SanctionImposed, SanctionKind, SchoolYears,
};
use registre_domain::{
    EstablishmentId, IncidentId, PersonId, PunishmentId, SanctionId, StudentId, TimeZone,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Incident {
    pub id: IncidentId,
    pub establishment_id: EstablishmentId,
    #[serde(with = "crate::compact_time::instant")]
    pub occurred_at: DateTime<Utc>,
    pub place: Option<String>,
    pub description: String,
    pub protagonists: Vec<Protagonist>,
    pub reported_by: PersonId,
    #[serde(with = "crate::compact_time::instant")]
    pub reported_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Punishment {
    pub id: PunishmentId,
    pub student_id: StudentId,
    /// The student's establishment when it was given (for statistics).
    pub establishment_id: Option<EstablishmentId>,
    pub kind: PunishmentKind,
    pub reason: String,
    pub due_on: Option<NaiveDate>,
    pub incident_id: Option<IncidentId>,
    pub given_by: PersonId,
    #[serde(with = "crate::compact_time::instant")]
    pub given_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sanction {
    pub id: SanctionId,
    pub student_id: StudentId,
    pub establishment_id: EstablishmentId,
    pub kind: SanctionKind,
    pub reason: String,
    #[serde(with = "crate::compact_time::day")]
    pub decided_on: NaiveDate,
    pub days: Option<u8>,
    pub suspended_days: Option<u8>,
    pub incident_id: Option<IncidentId>,
    pub decided_by: PersonId,
    pub erased_on: Option<NaiveDate>,
    pub erased: bool,
}

/// The discipline state of the read model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Discipline {
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) incidents: BTreeMap<IncidentId, Incident>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) incidents_by_establishment: BTreeMap<EstablishmentId, BTreeSet<IncidentId>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) punishments: BTreeMap<PunishmentId, Punishment>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) punishments_by_student: BTreeMap<StudentId, BTreeSet<PunishmentId>>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) sanctions: BTreeMap<SanctionId, Sanction>,
    #[serde(deserialize_with = "crate::sorted::map")]
    pub(crate) sanctions_by_student: BTreeMap<StudentId, BTreeSet<SanctionId>>,
}

/// One row of the head's statistics: how many of a kind in a month.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DisciplineCount {
    /// The first day of the month.
    pub month: NaiveDate,
    pub category: DisciplineCategory,
    /// The kind's wire name (a PunishmentKind or SanctionKind); `None` for incidents.
    pub kind: Option<&'static str>,
    pub count: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DisciplineCategory {
    Incident,
    Punishment,
    Sanction,
}

fn month_of(day: NaiveDate) -> NaiveDate {
    day.with_day(1).unwrap_or(day)
}

impl Discipline {
    /// Nothing folded yet: left out of the model's JSON, so that snapshots
    /// and golden views of logs without discipline are unchanged.
    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty() && self.punishments.is_empty() && self.sanctions.is_empty()
    }

    pub(crate) fn incident_reported(&mut self, e: IncidentReported, at: DateTime<Utc>) {
        if self.incidents.contains_key(&e.incident_id) {
            return;
        }
        self.incidents_by_establishment
            .entry(e.establishment_id)
            .or_default()
            .insert(e.incident_id);
        self.incidents.insert(
            e.incident_id,
            Incident {
                id: e.incident_id,
                establishment_id: e.establishment_id,
                occurred_at: e.occurred_at,
                place: e.place,
                description: e.description,
                protagonists: e.protagonists,
                reported_by: e.reported_by,
                reported_at: at,
            },
        );
    }

    pub(crate) fn punishment_given(
        &mut self,
        e: PunishmentGiven,
        establishment_id: Option<EstablishmentId>,
        at: DateTime<Utc>,
    ) {
        if self.punishments.contains_key(&e.punishment_id) {
            return;
        }
        self.punishments_by_student
            .entry(e.student_id)
            .or_default()
            .insert(e.punishment_id);
        self.punishments.insert(
            e.punishment_id,
            Punishment {
                id: e.punishment_id,
                student_id: e.student_id,
                establishment_id,
                kind: e.kind,
                reason: e.reason,
                due_on: e.due_on,
                incident_id: e.incident_id,
                given_by: e.given_by,
                given_at: at,
            },
        );
    }

    pub(crate) fn sanction_imposed(&mut self, e: SanctionImposed) {
        if self.sanctions.contains_key(&e.sanction_id) {
            return;
        }
        self.sanctions_by_student
            .entry(e.student_id)
            .or_default()
            .insert(e.sanction_id);
        self.sanctions.insert(
            e.sanction_id,
            Sanction {
                id: e.sanction_id,
                student_id: e.student_id,
                establishment_id: e.establishment_id,
                kind: e.kind,
                reason: e.reason,
                decided_on: e.decided_on,
                days: e.days,
                suspended_days: e.suspended_days,
                incident_id: e.incident_id,
                decided_by: e.decided_by,
                erased_on: e.erased_on,
                erased: false,
            },
        );
    }

    /// The sanction's key is destroyed: its reason reads as erased, as the
    /// vault reads it after a rebuild.
    pub(crate) fn sanction_erased(&mut self, e: SanctionErased) {
        if let Some(s) = self.sanctions.get_mut(&e.sanction_id) {
            s.erased = true;
            s.reason = registre_store::ERASED.to_owned();
        }
    }

    /// A person's erasure: the punishments' reasons of their student record.
    pub(crate) fn erase_punishment_reasons(&mut self, student: StudentId) {
        for id in self
            .punishments_by_student
            .get(&student)
            .into_iter()
            .flatten()
        {
            if let Some(p) = self.punishments.get_mut(id) {
                p.reason = registre_store::ERASED.to_owned();
            }
        }
    }

    pub fn incident(&self, id: IncidentId) -> Option<&Incident> {
        self.incidents.get(&id)
    }

    pub fn punishment(&self, id: PunishmentId) -> Option<&Punishment> {
        self.punishments.get(&id)
    }

    pub fn sanction(&self, id: SanctionId) -> Option<&Sanction> {
        self.sanctions.get(&id)
    }

    /// The establishment's incidents that occurred from `from` to `to`
    /// (days in its time zone `zone`), oldest first.
    pub fn incidents_between(
        &self,
        establishment: EstablishmentId,
        zone: TimeZone,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Vec<&Incident> {
        let mut list: Vec<&Incident> = self
            .incidents_by_establishment
            .get(&establishment)
            .into_iter()
            .flatten()
            .filter_map(|id| self.incidents.get(id))
            .filter(|i| (from..=to).contains(&zone.today(i.occurred_at)))
            .collect();
        list.sort_by_key(|i| (i.occurred_at, i.id));
        list
    }

    /// Incidents naming `student`.
    pub fn incidents_of(&self, student: StudentId) -> impl Iterator<Item = &Incident> {
        self.incidents
            .values()
            .filter(move |i| i.protagonists.iter().any(|p| p.student_id == student))
    }

    /// The student's punishments, latest first.
    pub fn punishments_of(&self, student: StudentId) -> Vec<&Punishment> {
        let mut list: Vec<&Punishment> = self
            .punishments_by_student
            .get(&student)
            .into_iter()
            .flatten()
            .filter_map(|id| self.punishments.get(id))
            .collect();
        list.sort_by_key(|p| std::cmp::Reverse((p.given_at, p.id)));
        list
    }

    /// The student's sanctions still in their record, latest decision first.
    pub fn sanctions_of(&self, student: StudentId) -> Vec<&Sanction> {
        let mut list: Vec<&Sanction> = self
            .sanctions_by_student
            .get(&student)
            .into_iter()
            .flatten()
            .filter_map(|id| self.sanctions.get(id))
            .filter(|s| !s.erased)
            .collect();
        list.sort_by_key(|s| std::cmp::Reverse((s.decided_on, s.id)));
        list
    }

    /// Every sanction of the student, erased ones included, by decision day.
    pub fn sanctions_by_student(&self, student: StudentId) -> Vec<&Sanction> {
        let mut list: Vec<&Sanction> = self
            .sanctions_by_student
            .get(&student)
            .into_iter()
            .flatten()
            .filter_map(|id| self.sanctions.get(id))
            .collect();
        list.sort_by_key(|s| (s.decided_on, s.id));
        list
    }

    /// Sanctions whose erasure day has come by `today(establishment)` and
    /// that are still in the record.
    pub fn sanctions_due(&self, today: impl Fn(EstablishmentId) -> NaiveDate) -> Vec<&Sanction> {
        self.sanctions
            .values()
            .filter(|s| !s.erased && s.erased_on.is_some_and(|d| d <= today(s.establishment_id)))
            .collect()
    }

    /// Incidents (by the day they occurred), punishments (given) and
    /// sanctions (decided, erased ones included: the facts survive the
    /// text) of an establishment per month and kind, from `from` to `to`.
    /// Counts only, no names.
    pub fn statistics(
        &self,
        establishment: EstablishmentId,
        zone: TimeZone,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Vec<DisciplineCount> {
        let mut counts: BTreeMap<(NaiveDate, DisciplineCategory, Option<&'static str>), u32> =
            BTreeMap::new();
        let mut add = |day: NaiveDate, category, kind| {
            if (from..=to).contains(&day) {
                *counts.entry((month_of(day), category, kind)).or_default() += 1;
            }
        };
        for i in self.incidents_between(establishment, zone, from, to) {
            add(
                zone.today(i.occurred_at),
                DisciplineCategory::Incident,
                None,
            );
        }
        for p in self
            .punishments
            .values()
            .filter(|p| p.establishment_id == Some(establishment))
        {
            add(
                zone.today(p.given_at),
                DisciplineCategory::Punishment,
                Some(p.kind.as_str()),
            );
        }
        for s in self
            .sanctions
            .values()
            .filter(|s| s.establishment_id == establishment)
        {
            add(
                s.decided_on,
                DisciplineCategory::Sanction,
                Some(s.kind.as_str()),
            );
        }
        counts
            .into_iter()
            .map(|((month, category, kind), count)| DisciplineCount {
                month,
                category,
                kind,
                count,
            })
            .collect()
    }
}

impl crate::ReadModel {
    /// Incidents, punishments and sanctions.
    pub fn discipline(&self) -> &Discipline {
        &self.discipline
    }
}

impl crate::ReadModel {
    /// The school years of an establishment. The one place that will learn
    /// the evaluation periods' dates once they exist; until then the national
    /// rule (a year ends on 31 August) for every establishment.
    pub fn school_years(&self, establishment: EstablishmentId) -> SchoolYears {
        // Where the establishment defined its periods (evaluation, issue 14),
        // a school year ends with its last period; elsewhere on 31 August.
        let mut ends: BTreeMap<i32, NaiveDate> = BTreeMap::new();
        for p in self.periods_of(establishment) {
            let year = if p.start.month() >= 8 {
                p.start.year()
            } else {
                p.start.year() - 1
            };
            let end = ends.entry(year).or_insert(p.end);
            *end = (*end).max(p.end);
        }
        SchoolYears {
            declared_ends: ends.into_values().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::ReadModel;
    use chrono::NaiveDate;
    use registre_domain::testing::samples;
    use registre_domain::EstablishmentId;
    use registre_store::{EventMetadata, RecordedEvent};

    /// The discipline state survives a snapshot and a restore, and folds the
    /// same from the log.
    #[test]
    fn discipline_survives_snapshot_and_restore() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-30T08:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let events: Vec<RecordedEvent> = samples()
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let encoded = e.encode();
                RecordedEvent {
                    position: i as u64 + 1,
                    stream_id: e.stream().into_string(),
                    stream_version: 1,
                    event_id: uuid::Uuid::from_u128(i as u128 + 1),
                    event_type: encoded.event_type.into(),
                    schema_version: encoded.schema_version,
                    data: encoded.data,
                    metadata: EventMetadata {
                        actor: None,
                        correlation_id: uuid::Uuid::nil(),
                        causation_id: None,
                        idempotency_key: None,
                        occurred_at: at,
                        reason: None,
                    },
                    recorded_at: at,
                    hash: [0; 32],
                    partition: None,
                }
            })
            .collect();
        let mut model = ReadModel::default();
        model.apply_all(&events).unwrap();
        let d = model.discipline();
        assert_eq!(
            (d.incidents.len(), d.punishments.len(), d.sanctions.len()),
            (1, 1, 1)
        );
        assert!(
            d.sanctions.values().all(|s| s.erased),
            "the sample is erased"
        );
        let restored = ReadModel::from_snapshot(&model.to_snapshot().unwrap()).unwrap();
        assert_eq!(restored, model);
        assert_eq!(restored.discipline(), model.discipline());

        // The sample establishment's one period (1 September to 30 November)
        // ends its school year; another establishment keeps 31 August.
        let est = model
            .discipline()
            .sanctions
            .values()
            .next()
            .unwrap()
            .establishment_id;
        let years = model.school_years(est);
        assert_eq!(
            years.declared_ends,
            [NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()]
        );
        let day = NaiveDate::from_ymd_opt(2026, 10, 5).unwrap();
        assert_eq!(
            years.end_of_year_of(day),
            NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()
        );
        let elsewhere = model.school_years(EstablishmentId::default());
        assert_eq!(
            elsewhere.end_of_year_of(day),
            NaiveDate::from_ymd_opt(2027, 8, 31).unwrap()
        );
    }
}
