//! Instants and days of the model as numbers in its binary snapshot.
//!
//! chrono writes an instant as RFC 3339 text and reads it back through its
//! general format parser: at 10^7 events that parsing was a sixth of a
//! start from the snapshots (decision 0025). A binary format (MessagePack,
//! whose serializer says it is not human-readable) gets an instant as its
//! seconds and nanoseconds since the epoch and a day as its number from the
//! common era; JSON (views, exports, the snapshots written before) keeps
//! chrono's text, so nothing a person reads changes.
//!
//! Used on the fields read once per event (grades, absences, homework,
//! messages, courses); the rest keep chrono's form in both formats.

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `#[serde(with = "crate::compact_time::instant")]`.
pub mod instant {
    use super::*;

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            at.serialize(s)
        } else {
            (at.timestamp(), at.timestamp_subsec_nanos()).serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        if d.is_human_readable() {
            DateTime::deserialize(d)
        } else {
            let (secs, nanos) = <(i64, u32)>::deserialize(d)?;
            DateTime::from_timestamp(secs, nanos)
                .ok_or_else(|| D::Error::custom(format!("no instant at {secs}.{nanos:09} s")))
        }
    }
}

/// `#[serde(with = "crate::compact_time::day")]`.
pub mod day {
    use super::*;

    pub fn serialize<S: Serializer>(day: &NaiveDate, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            day.serialize(s)
        } else {
            chrono::Datelike::num_days_from_ce(day).serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
        if d.is_human_readable() {
            NaiveDate::deserialize(d)
        } else {
            let n = i32::deserialize(d)?;
            NaiveDate::from_num_days_from_ce_opt(n)
                .ok_or_else(|| D::Error::custom(format!("no day numbered {n}")))
        }
    }
}

/// `#[serde(with = "crate::compact_time::optional_instant")]`.
pub mod optional_instant {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Wrapped(#[serde(with = "instant")] DateTime<Utc>);

    pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        at.map(Wrapped).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use chrono::TimeZone as _;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Held {
        #[serde(with = "super::instant")]
        at: chrono::DateTime<chrono::Utc>,
        #[serde(with = "super::day")]
        on: chrono::NaiveDate,
        #[serde(with = "super::optional_instant")]
        maybe: Option<chrono::DateTime<chrono::Utc>>,
    }

    fn held(maybe: bool) -> Held {
        let at = chrono::Utc.with_ymd_and_hms(2026, 9, 1, 8, 5, 0).unwrap()
            + chrono::Duration::nanoseconds(123_456_789);
        Held {
            at,
            on: chrono::NaiveDate::from_ymd_opt(1, 1, 1).unwrap(),
            maybe: maybe.then_some(at + chrono::Duration::days(400_000)),
        }
    }

    #[test]
    fn binary_form_is_numbers_and_round_trips_to_the_nanosecond() {
        for maybe in [true, false] {
            let h = held(maybe);
            let packed = rmp_serde::to_vec_named(&h).unwrap();
            assert!(
                !packed.windows(4).any(|w| w == b"2026"),
                "no text date in MessagePack"
            );
            assert_eq!(rmp_serde::from_slice::<Held>(&packed).unwrap(), h);
        }
    }

    #[test]
    fn json_keeps_chronos_text() {
        let h = held(true);
        let json = serde_json::to_value(&h).unwrap();
        assert_eq!(json["at"], "2026-09-01T08:05:00.123456789Z");
        assert_eq!(json["on"], "0001-01-01");
        assert_eq!(serde_json::from_value::<Held>(json).unwrap(), h);
    }

    #[test]
    fn numbers_out_of_chronos_range_are_refused() {
        let packed = rmp_serde::to_vec_named(&serde_json::json!({
            "at": [i64::MAX, 0], "on": 5, "maybe": null
        }))
        .unwrap();
        assert!(rmp_serde::from_slice::<Held>(&packed).is_err());
    }
}
