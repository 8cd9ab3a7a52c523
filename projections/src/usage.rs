//! Usage indicators as the national audience measurement of ENTs counts them,
//! folded from the store's access records (a second checkpoint, independent of
//! the event log's): hits per service code x profile x day x hour of day,
//! visits per pseudonymised user, and the share of activity outside school
//! hours (before 8:00, from 18:00, Saturday and Sunday, in the viewer's
//! establishment zone, Europe/Paris when unknown).
//!
//! A viewer is never stored: only an HMAC-SHA256 of their id under a secret key
//! (the pseudonym). A visit is a run of hits of one pseudonym with less than 30
//! minutes between consecutive hits, the usual web-analytics session rule.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use hmac::{Hmac, Mac};
use registre_store::AccessRecord;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::fmt;

/// Profiles of the audience measurement.
pub const PROFILES: [&str; 4] = ["ELEVE", "ENSEIGNANT", "PARENT", "AUTRE"];

/// Idle time after which a new hit starts a new visit.
pub const VISIT_IDLE_MINUTES: i64 = 30;

/// The secret key of the pseudonyms. Not serialized, not printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PseudonymKey(Vec<u8>);

impl PseudonymKey {
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self(key.into())
    }

    /// 32 random bytes (from the OS, through UUIDv4). Pseudonyms made with it
    /// do not survive a restart: use a persistent server secret in production
    /// so that a visitor stays one visitor across restarts.
    pub fn random() -> Self {
        let mut key = Vec::with_capacity(32);
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self(key)
    }

    /// The pseudonym of a viewer: hex of the first 16 bytes of HMAC-SHA256.
    pub fn pseudonymise(&self, viewer: uuid::Uuid) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return String::new();
        };
        mac.update(viewer.as_bytes());
        let digest = mac.finalize().into_bytes();
        hex::encode(&digest[..16])
    }
}

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey(..)")
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Visitor {
    pub profile: String,
    pub hits: u64,
    pub visits: u64,
    pub last_at: DateTime<Utc>,
}

/// The indicators. Keys are service code, then profile, then local day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageIndicators {
    checkpoint: u64,
    #[serde(skip)]
    key: PseudonymKey,
    /// Hits per service x profile x local day x local hour (24 counters).
    activity: BTreeMap<String, BTreeMap<String, BTreeMap<NaiveDate, [u64; 24]>>>,
    /// Per pseudonym.
    visitors: BTreeMap<String, Visitor>,
    /// Visits started per local day and profile.
    visits_by_day: BTreeMap<NaiveDate, BTreeMap<String, u64>>,
    hits: u64,
    hits_outside_school_hours: u64,
}

/// One cell of the activity table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityCell {
    pub service: String,
    pub profile: String,
    pub day: NaiveDate,
    pub hour: u32,
    pub hits: u64,
}

/// A summary for dashboards and the auditor's replay.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageSummary {
    pub hits: u64,
    pub visits: u64,
    pub visitors: u64,
    pub hits_outside_school_hours: u64,
    /// `hits_outside_school_hours / hits`; `None` before any hit.
    pub outside_school_hours_share: Option<f64>,
    /// Hits per service and profile.
    pub by_service_and_profile: BTreeMap<String, BTreeMap<String, u64>>,
    pub visits_by_day: BTreeMap<NaiveDate, BTreeMap<String, u64>>,
}

/// The audience-measurement profile of a stored profile string.
pub fn normalise_profile(raw: &str) -> &'static str {
    let upper = raw.trim().to_ascii_uppercase();
    PROFILES
        .into_iter()
        .find(|p| *p == upper)
        .unwrap_or("AUTRE")
}

/// Before 8:00, from 18:00, or on a weekend (local time).
pub fn outside_school_hours(local: chrono::NaiveDateTime) -> bool {
    matches!(local.weekday(), Weekday::Sat | Weekday::Sun) || local.hour() < 8 || local.hour() >= 18
}

impl UsageIndicators {
    pub(crate) fn set_key(&mut self, key: PseudonymKey) {
        self.key = key;
    }

    /// The last access-record id folded in.
    pub fn checkpoint(&self) -> u64 {
        self.checkpoint
    }

    pub(crate) fn apply(&mut self, record: &AccessRecord, zone: Tz) {
        if record.id <= self.checkpoint {
            return;
        }
        self.checkpoint = record.id;
        let access = &record.access;
        let local = access.at.with_timezone(&zone).naive_local();
        let profile = normalise_profile(&access.viewer_profile);
        let hour = local.hour() as usize;
        let hours = self
            .activity
            .entry(access.service.clone())
            .or_default()
            .entry(profile.to_owned())
            .or_default()
            .entry(local.date())
            .or_insert([0; 24]);
        if let Some(cell) = hours.get_mut(hour) {
            *cell += 1;
        }
        self.hits += 1;
        if outside_school_hours(local) {
            self.hits_outside_school_hours += 1;
        }
        let pseudonym = self.key.pseudonymise(access.viewer_id);
        let visitor = self.visitors.entry(pseudonym).or_insert(Visitor {
            profile: profile.to_owned(),
            hits: 0,
            visits: 0,
            last_at: access.at,
        });
        let new_visit = visitor.hits == 0
            || access.at - visitor.last_at >= Duration::minutes(VISIT_IDLE_MINUTES);
        visitor.hits += 1;
        visitor.last_at = visitor.last_at.max(access.at);
        if new_visit {
            visitor.visits += 1;
            *self
                .visits_by_day
                .entry(local.date())
                .or_default()
                .entry(profile.to_owned())
                .or_default() += 1;
        }
    }

    /// Non-zero cells of the activity table, ordered by service, profile, day, hour.
    pub fn activity(&self) -> Vec<ActivityCell> {
        let mut out = vec![];
        for (service, profiles) in &self.activity {
            for (profile, days) in profiles {
                for (day, hours) in days {
                    for (hour, hits) in hours.iter().enumerate() {
                        if *hits > 0 {
                            out.push(ActivityCell {
                                service: service.clone(),
                                profile: profile.clone(),
                                day: *day,
                                hour: hour as u32,
                                hits: *hits,
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// Visits and hits per pseudonym.
    pub fn visitors(&self) -> &BTreeMap<String, Visitor> {
        &self.visitors
    }

    pub fn summary(&self) -> UsageSummary {
        let mut by_service_and_profile: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for (service, profiles) in &self.activity {
            for (profile, days) in profiles {
                let total: u64 = days.values().flat_map(|h| h.iter()).sum();
                by_service_and_profile
                    .entry(service.clone())
                    .or_default()
                    .insert(profile.clone(), total);
            }
        }
        UsageSummary {
            hits: self.hits,
            visits: self.visitors.values().map(|v| v.visits).sum(),
            visitors: self.visitors.len() as u64,
            hits_outside_school_hours: self.hits_outside_school_hours,
            outside_school_hours_share: (self.hits > 0)
                .then(|| self.hits_outside_school_hours as f64 / self.hits as f64),
            by_service_and_profile,
            visits_by_day: self.visits_by_day.clone(),
        }
    }
}

impl crate::model::ReadModel {
    /// The usage indicators folded so far.
    pub fn usage(&self) -> &UsageIndicators {
        &self.usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use registre_store::NewAccess;

    fn record(id: u64, viewer: uuid::Uuid, at: DateTime<Utc>, profile: &str) -> AccessRecord {
        AccessRecord {
            id,
            access: NewAccess {
                at,
                viewer_id: viewer,
                viewer_profile: profile.into(),
                subject_id: None,
                operation: "student.grades".into(),
                service: "Notes".into(),
            },
        }
    }

    #[test]
    fn pseudonyms_depend_on_the_key_and_hide_the_id() {
        let id = uuid::Uuid::from_u128(42);
        let a = PseudonymKey::new(b"k1".to_vec()).pseudonymise(id);
        let b = PseudonymKey::new(b"k2".to_vec()).pseudonymise(id);
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(!a.contains(&id.simple().to_string()));
    }

    #[test]
    fn visits_split_after_thirty_idle_minutes_and_evenings_count_outside() {
        let mut usage = UsageIndicators::default();
        usage.set_key(PseudonymKey::new(b"secret".to_vec()));
        let viewer = uuid::Uuid::from_u128(7);
        let paris = chrono_tz::Europe::Paris;
        // Tuesday 2026-03-03, Paris: 19:00, 19:20 (same visit), 20:00 (new visit), 10:00 next day.
        let at = |d, h, m| {
            paris
                .with_ymd_and_hms(2026, 3, d, h, m, 0)
                .single()
                .expect("valid")
                .with_timezone(&Utc)
        };
        for (id, t) in [
            (1, at(3, 19, 0)),
            (2, at(3, 19, 20)),
            (3, at(3, 20, 0)),
            (4, at(4, 10, 0)),
        ] {
            usage.apply(&record(id, viewer, t, "parent"), paris);
        }
        // Already folded: ignored.
        usage.apply(&record(2, viewer, at(3, 19, 20), "PARENT"), paris);
        let s = usage.summary();
        assert_eq!(s.hits, 4);
        assert_eq!(s.visits, 3);
        assert_eq!(s.visitors, 1);
        assert_eq!(s.hits_outside_school_hours, 3);
        assert_eq!(s.outside_school_hours_share, Some(0.75));
        assert_eq!(s.by_service_and_profile["Notes"]["PARENT"], 4);
        assert_eq!(usage.checkpoint(), 4);
    }
}
