//! The usage projection: the ENT audience measure (visits and distinct
//! pseudonymous visitors per establishment, service, profile and local hour,
//! and the share of visits outside school hours), folded from the store's
//! access log into the store's usage tables (migration 0006).
//!
//! It is the one non-replayable projection: its source, the access log, is
//! purged after its retention period, so the counts are persisted with their
//! own checkpoint and never rebuilt; the read model (replayable, folded from
//! the event log) does not hold them. See
//! `docs/decisions/0010-projection-kinds.md`.
//!
//! A viewer is never stored: only an HMAC-SHA256 of their id under a secret key
//! (the pseudonym). A visit is one person's reads of one service with less than
//! 30 minutes between consecutive reads, the usual web-analytics session rule.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use hmac::{Hmac, Mac};
use registre_store::AccessRecord;
use serde::Serialize;
use sha2::Sha256;
use std::collections::BTreeMap;
use std::fmt;

/// Profiles of the access log (the SDET's names).
pub const PROFILES: [&str; 4] = ["ELEVE", "ENSEIGNANT", "PARENT", "AUTRE"];

/// Idle time after which a new read starts a new visit.
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

/// The audience-measurement profile of a stored profile string.
pub fn normalise_profile(raw: &str) -> &'static str {
    let upper = raw.trim().to_ascii_uppercase();
    PROFILES
        .into_iter()
        .find(|p| *p == upper)
        .unwrap_or("AUTRE")
}

// ------------------------------------------------------------------------
// The usage projection: non-replayable, persisted in the store's usage tables
// (migration 0006) with its own checkpoint in the access log. See
// docs/decisions/0010-projection-kinds.md.

/// The profiles of the report, as the contract's `UsageProfile` spells them.
pub const USAGE_PROFILES: [&str; 4] = ["STUDENT", "TEACHER", "GUARDIAN", "OTHER"];

/// Access-log entries read per fold transaction.
pub const FOLD_BATCH: usize = 2_000;

/// Pause before trying again while another node's fold holds the lock.
const FOLD_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

/// The report's profile of an access-log profile (ELEVE, ENSEIGNANT, PARENT, AUTRE).
pub fn usage_profile(access_profile: &str) -> &'static str {
    match normalise_profile(access_profile) {
        "ELEVE" => "STUDENT",
        "ENSEIGNANT" => "TEACHER",
        "PARENT" => "GUARDIAN",
        _ => "OTHER",
    }
}

/// The contract's service code of an access-log service (the SDET names the
/// API records: Notes, Absences, Cahier_Textes, Courrier_Electronique,
/// Services_Vie_Scolaire). Unknown names are kept as they are.
pub fn service_code(access_service: &str) -> String {
    match access_service {
        "Cahier_Textes" => "CahierDeTextes".into(),
        "Courrier_Electronique" => "Messagerie".into(),
        "Services_Vie_Scolaire" => "VieScolaire".into(),
        other => other.into(),
    }
}

/// School hours: Monday to Friday, 08:00 to 18:00 local. Registre knows no
/// holiday calendar, so only weekends are outside school days.
pub fn in_school_hours(day: NaiveDate, hour: u8) -> bool {
    !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) && (8..18).contains(&hour)
}

/// The establishment a read counts for, and its zone: the viewer's (their
/// own, their student record's, a child's), else, for a viewer of no
/// establishment (an ADMIN, an AUDITOR), the person read about's.
pub fn placement(
    m: &crate::model::ReadModel,
    viewer: registre_domain::PersonId,
    subject: Option<registre_domain::PersonId>,
) -> Option<(registre_domain::EstablishmentId, Tz)> {
    let of = |p| {
        m.person(p)
            .and_then(|p| p.establishment_id)
            .or_else(|| m.establishments_of_person(p).into_iter().next())
    };
    let establishment = of(viewer).or_else(|| subject.and_then(of))?;
    let zone = m
        .establishment(establishment)
        .map(|e| e.time_zone)
        .unwrap_or_default()
        .tz();
    Some((establishment, zone))
}

/// Entries of the access log placed for the usage tables.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Placed {
    /// The last entry consumed (placed or skipped).
    pub checkpoint: u64,
    pub hits: Vec<registre_store::usage::UsageHit>,
    /// Entries that count for no establishment (a viewer of none reading
    /// about no one of one, or a viewer unknown to the log).
    pub skipped: u64,
}

/// Places `records` (read after `after`) with the model. An entry whose
/// viewer the model does not know and whose id is above `settled` was written
/// after the model's position was chosen (a person registered and read in
/// between): the batch stops before it, and the next fold places it.
pub fn place(
    m: &crate::model::ReadModel,
    key: &PseudonymKey,
    after: u64,
    records: &[AccessRecord],
    settled: u64,
) -> Placed {
    let mut out = Placed {
        checkpoint: after,
        ..Placed::default()
    };
    for r in records {
        let a = &r.access;
        let viewer = registre_domain::PersonId(a.viewer_id);
        if m.person(viewer).is_none() && r.id > settled {
            break;
        }
        out.checkpoint = r.id;
        let Some((establishment, zone)) =
            placement(m, viewer, a.subject_id.map(registre_domain::PersonId))
        else {
            out.skipped += 1;
            continue;
        };
        let local = a.at.with_timezone(&zone).naive_local();
        out.hits.push(registre_store::usage::UsageHit {
            at: a.at,
            establishment_id: establishment.0,
            day: local.date(),
            hour: local.hour() as u8,
            service: service_code(&a.service),
            profile: usage_profile(&a.viewer_profile).into(),
            pseudonym: key.pseudonymise(a.viewer_id),
        });
    }
    out
}

/// The session rule ([`registre_store::usage::Sessionize`]): a read starts a
/// visit unless the same pseudonym read the same service less than 30
/// minutes before it (stored session or earlier in the batch).
pub fn sessionize(
    hits: &[registre_store::usage::UsageHit],
    sessions: &[registre_store::usage::UsageSession],
) -> registre_store::usage::UsageDelta {
    use registre_store::usage::{UsageDelta, UsageSession, UsageVisit};
    let mut last: BTreeMap<(&str, &str), DateTime<Utc>> = sessions
        .iter()
        .map(|s| ((s.pseudonym.as_str(), s.service.as_str()), s.last_at))
        .collect();
    let mut delta = UsageDelta::default();
    for h in hits {
        let slot = (h.pseudonym.as_str(), h.service.as_str());
        let continues = last
            .get(&slot)
            .is_some_and(|prev| h.at - *prev < Duration::minutes(VISIT_IDLE_MINUTES));
        if !continues {
            delta.visits.push(UsageVisit {
                establishment_id: h.establishment_id,
                day: h.day,
                service: h.service.clone(),
                profile: h.profile.clone(),
                hour: h.hour,
                pseudonym: h.pseudonym.clone(),
            });
        }
        let at = last.entry(slot).or_insert(h.at);
        *at = (*at).max(h.at);
    }
    delta.sessions = last
        .into_iter()
        .map(|((pseudonym, service), last_at)| UsageSession {
            pseudonym: pseudonym.into(),
            service: service.into(),
            last_at,
        })
        .collect();
    delta
}

/// What one call of [`fold_usage`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageFold {
    /// The checkpoint reached.
    pub checkpoint: u64,
    pub entries: u64,
    pub skipped: u64,
}

/// Folds the access log into the usage tables up to the entries committed
/// when it is called. Any node may call it at any time: each batch commits
/// only if the checkpoint did not move since it was read, under the store's
/// fold lock, so nothing is counted twice. While another node's fold holds
/// the lock, it retries for at most `patience`, then returns where the
/// checkpoint stands (the other fold will have counted or will count the
/// rest). `None` when the store has no usage tables.
pub async fn fold_usage(
    store: &dyn registre_store::EventStore,
    engine: &crate::engine::ProjectionEngine,
    patience: std::time::Duration,
) -> Result<Option<UsageFold>, crate::engine::ProjectionError> {
    let deadline = tokio::time::Instant::now() + patience;
    let Some(usage) = store.usage() else {
        return Ok(None);
    };
    let key = engine.config().pseudonym_key.clone();
    let mut done = UsageFold::default();
    loop {
        // Read the access log's head before the event log's: every viewer of
        // an entry at or below it was registered before the model's target.
        let status = usage.status().await?;
        done.checkpoint = status.checkpoint;
        if status.checkpoint >= status.access_head {
            return Ok(Some(done));
        }
        engine.catch_up().await?;
        let records = store.read_access(status.checkpoint, FOLD_BATCH).await?;
        let placed =
            engine.read(|m| place(m, &key, status.checkpoint, &records, status.access_head));
        if placed.checkpoint == status.checkpoint {
            // Nothing to read (purged or not yet visible) or the first entry
            // is above the settled head: read the heads again.
            if records.is_empty() {
                return Ok(Some(done));
            }
            continue;
        }
        let entries = records.iter().filter(|r| r.id <= placed.checkpoint).count() as u64;
        let skipped = placed.skipped;
        if usage
            .apply(
                status.checkpoint,
                placed.checkpoint,
                placed.hits,
                sessionize,
            )
            .await?
        {
            done.entries += entries;
            done.skipped += skipped;
            done.checkpoint = placed.checkpoint;
        } else if usage.status().await?.checkpoint == status.checkpoint {
            // Another fold holds the lock: wait for it a little, not forever.
            if tokio::time::Instant::now() >= deadline {
                return Ok(Some(done));
            }
            tokio::time::sleep(FOLD_RETRY).await;
        }
    }
}

/// The usage report of one establishment over local days `from..=to`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub visits: u64,
    pub visitors: u64,
    /// Visits started outside school hours over all visits (0 without visits).
    pub share_outside_school_hours: f64,
    /// Ordered by service, profile and hour.
    pub cells: Vec<UsageCell>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageCell {
    pub service: String,
    pub profile: String,
    pub hour: u8,
    pub visits: u64,
    pub visitors: u64,
}

impl UsageReport {
    pub fn from_rows(
        from: NaiveDate,
        to: NaiveDate,
        rows: registre_store::usage::UsageRows,
    ) -> Self {
        let mut cells: Vec<UsageCell> = rows
            .cells
            .into_iter()
            .map(|c| UsageCell {
                service: c.service,
                profile: c.profile,
                hour: c.hour,
                visits: c.visits,
                visitors: c.visitors,
            })
            .collect();
        // Byte order, whatever the database's collation: every node and both
        // backends list the cells alike.
        cells.sort_by(|a, b| {
            (a.service.as_bytes(), a.profile.as_bytes(), a.hour).cmp(&(
                b.service.as_bytes(),
                b.profile.as_bytes(),
                b.hour,
            ))
        });
        let visits: u64 = rows.by_day_hour.iter().map(|(_, _, n)| n).sum();
        let outside: u64 = rows
            .by_day_hour
            .iter()
            .filter(|(day, hour, _)| !in_school_hours(*day, *hour))
            .map(|(_, _, n)| n)
            .sum();
        Self {
            from,
            to,
            visits,
            visitors: rows.visitors,
            share_outside_school_hours: if visits == 0 {
                0.0
            } else {
                outside as f64 / visits as f64
            },
            cells,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn pseudonyms_depend_on_the_key_and_hide_the_id() {
        let id = uuid::Uuid::from_u128(42);
        let a = PseudonymKey::new(b"k1".to_vec()).pseudonymise(id);
        let b = PseudonymKey::new(b"k2".to_vec()).pseudonymise(id);
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(!a.contains(&id.simple().to_string()));
    }

    fn hit(pseudonym: &str, service: &str, at: DateTime<Utc>) -> registre_store::usage::UsageHit {
        registre_store::usage::UsageHit {
            at,
            establishment_id: uuid::Uuid::from_u128(1),
            day: at.date_naive(),
            hour: at.hour() as u8,
            service: service.into(),
            profile: "GUARDIAN".into(),
            pseudonym: pseudonym.into(),
        }
    }

    #[test]
    fn a_visit_is_one_service_read_within_thirty_minutes_of_the_last_read() {
        let t = |h, m| {
            Utc.with_ymd_and_hms(2026, 3, 3, h, m, 0)
                .single()
                .expect("valid")
        };
        let stored = [registre_store::usage::UsageSession {
            pseudonym: "a".into(),
            service: "Notes".into(),
            last_at: t(9, 50),
        }];
        let hits = [
            hit("a", "Notes", t(10, 0)),    // continues the stored session
            hit("a", "Notes", t(10, 29)),   // continues
            hit("a", "Notes", t(10, 59)),   // 30 minutes after 10:29: a new visit
            hit("a", "Absences", t(11, 0)), // another service: a new visit
            hit("b", "Notes", t(10, 0)),    // another person: a new visit
            hit("b", "Notes", t(9, 55)),    // out of order, before b's last read: same visit
        ];
        let delta = sessionize(&hits, &stored);
        let started: Vec<(&str, &str, u8)> = delta
            .visits
            .iter()
            .map(|v| (v.pseudonym.as_str(), v.service.as_str(), v.hour))
            .collect();
        assert_eq!(
            started,
            [
                ("a", "Notes", 10),
                ("a", "Absences", 11),
                ("b", "Notes", 10)
            ]
        );
        let last: BTreeMap<(String, String), DateTime<Utc>> = delta
            .sessions
            .into_iter()
            .map(|s| ((s.pseudonym, s.service), s.last_at))
            .collect();
        assert_eq!(last[&("a".into(), "Notes".into())], t(10, 59));
        assert_eq!(last[&("a".into(), "Absences".into())], t(11, 0));
        assert_eq!(last[&("b".into(), "Notes".into())], t(10, 0));
    }

    #[test]
    fn school_hours_are_weekdays_from_eight_to_eighteen() {
        let monday = NaiveDate::from_ymd_opt(2026, 3, 2).expect("valid");
        let saturday = NaiveDate::from_ymd_opt(2026, 3, 7).expect("valid");
        assert!(!in_school_hours(monday, 7));
        assert!(in_school_hours(monday, 8));
        assert!(in_school_hours(monday, 17));
        assert!(!in_school_hours(monday, 18));
        assert!(!in_school_hours(saturday, 10));
    }

    #[test]
    fn services_and_profiles_take_the_contract_names() {
        assert_eq!(service_code("Cahier_Textes"), "CahierDeTextes");
        assert_eq!(service_code("Courrier_Electronique"), "Messagerie");
        assert_eq!(service_code("Notes"), "Notes");
        assert_eq!(usage_profile("parent"), "GUARDIAN");
        assert_eq!(usage_profile("ELEVE"), "STUDENT");
        assert_eq!(usage_profile("ENSEIGNANT"), "TEACHER");
        assert_eq!(usage_profile("AUTRE"), "OTHER");
        assert_eq!(usage_profile("anything"), "OTHER");
    }

    #[test]
    fn the_report_sums_days_and_shares_visits_outside_school_hours() {
        use registre_store::usage::{UsageCellRow, UsageRows};
        let d = |day| NaiveDate::from_ymd_opt(2026, 3, day).expect("valid");
        let row = |service: &str, hour, visits| UsageCellRow {
            service: service.into(),
            profile: "STUDENT".into(),
            hour,
            visits,
            visitors: 1,
        };
        let rows = UsageRows {
            // Monday 10:00 (in), Monday 19:00 (out), Saturday 10:00 (out).
            by_day_hour: vec![(d(2), 10, 3), (d(2), 19, 1), (d(7), 10, 4)],
            cells: vec![row("Notes", 19, 1), row("Absences", 10, 7)],
            visitors: 2,
        };
        let r = UsageReport::from_rows(d(1), d(8), rows);
        assert_eq!(r.visits, 8);
        assert_eq!(r.visitors, 2);
        assert_eq!(r.share_outside_school_hours, 5.0 / 8.0);
        assert_eq!(r.cells[0].service, "Absences");
        let empty = UsageReport::from_rows(d(1), d(8), UsageRows::default());
        assert_eq!(empty.share_outside_school_hours, 0.0);
        assert!(empty.cells.is_empty());
    }
}
