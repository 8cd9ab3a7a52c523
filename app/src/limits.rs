//! Per-person limits on mutations: a keyed token bucket per (person, kind of
//! command), each bucket holding one or more rates (e.g. 30 messages a minute
//! *and* 500 a day). A command past any of its rates is refused with
//! RATE_LIMITED, `extensions.retryAfter` and a message saying when to retry,
//! before anything is read or written.
//!
//! Why a small bucket of our own rather than `governor`: the limits are
//! checked once per mutation (a few per second per node, not per packet),
//! a refusal must say when the *slowest* of several windows frees a slot
//! (governor answers per limiter, so two limiters per key and a merge of
//! their answers), and a refused request must consume nothing from any
//! window. Forty lines of arithmetic under one mutex do that.
//!
//! Limits hold per node: with N nodes behind a balancer a person gets up to
//! N times the rate in the worst case, which still bounds a flood (2,000
//! messages in 2.9 s became 30) without a shared store round trip per
//! mutation.

use super::ApiError;
use parking_lot::Mutex;
use registre_domain::PersonId;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// At most `count` commands per `per`, with bursts of up to `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    pub const fn per_minute(count: u32) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(60),
        }
    }
    pub const fn per_day(count: u32) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(24 * 3600),
        }
    }

    fn describe(&self) -> String {
        match self.per.as_secs() {
            60 => format!("{} per minute", self.count),
            3600 => format!("{} per hour", self.count),
            86_400 => format!("{} per day", self.count),
            s => format!("{} per {s} s", self.count),
        }
    }
}

/// The kinds of mutation that are limited per person. Other mutations are
/// administrative (ADMIN, HEAD), rare, and bounded by admission control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limited {
    /// sendMessage.
    Message,
    /// reportAbsence (a roll call reports one absence per call).
    RollCall,
    /// declareAbsence and justifyAbsence (guardians).
    AbsenceDeclaration,
    /// recordGrade and correctGrade.
    Grade,
}

impl Limited {
    fn noun(self) -> &'static str {
        match self {
            Limited::Message => "messages",
            Limited::RollCall => "absence reports",
            Limited::AbsenceDeclaration => "absence declarations and justifications",
            Limited::Grade => "grade entries",
        }
    }
}

/// The rates of each limited kind (`AppConfig.limits`). An empty list means
/// no limit for that kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersonLimits {
    /// Default 30 per minute and 500 per day: a teacher writing to each
    /// guardian of a class one by one fits; a flood does not.
    pub messages: Vec<Rate>,
    /// Default 120 per minute and 3,000 per day: a whole class's roll call
    /// in one go, and a CPE's morning for the establishment.
    pub roll_calls: Vec<Rate>,
    /// Default 20 per minute and 200 per day.
    pub absence_declarations: Vec<Rate>,
    /// Default 300 per minute and 5,000 per day: a class's marks typed in a row.
    pub grades: Vec<Rate>,
    /// Buckets kept before idle ones (full again, so equal to a new one)
    /// are forgotten: bounds the memory one node spends on limits.
    pub max_tracked: usize,
}

impl Default for PersonLimits {
    fn default() -> Self {
        Self {
            messages: vec![Rate::per_minute(30), Rate::per_day(500)],
            roll_calls: vec![Rate::per_minute(120), Rate::per_day(3_000)],
            absence_declarations: vec![Rate::per_minute(20), Rate::per_day(200)],
            grades: vec![Rate::per_minute(300), Rate::per_day(5_000)],
            max_tracked: 100_000,
        }
    }
}

impl PersonLimits {
    /// No limit at all (benchmarks that measure the command path itself).
    pub fn unlimited() -> Self {
        Self {
            messages: Vec::new(),
            roll_calls: Vec::new(),
            absence_declarations: Vec::new(),
            grades: Vec::new(),
            max_tracked: 0,
        }
    }

    fn rates(&self, kind: Limited) -> &[Rate] {
        match kind {
            Limited::Message => &self.messages,
            Limited::RollCall => &self.roll_calls,
            Limited::AbsenceDeclaration => &self.absence_declarations,
            Limited::Grade => &self.grades,
        }
    }
}

/// One window's tokens (fractional: refilled continuously).
#[derive(Clone, Copy, Debug)]
struct Window {
    tokens: f64,
}

#[derive(Debug)]
struct Bucket {
    windows: Vec<Window>,
    at: Instant,
}

#[derive(Debug, Default)]
struct Buckets {
    map: HashMap<(PersonId, Limited), Bucket>,
    /// Size at which idle buckets are next swept; doubles when a sweep frees
    /// little, so a crowd of active people costs amortised O(1) per check.
    sweep_at: usize,
}

/// The node's buckets. Cheap to check: one mutex, one map lookup.
#[derive(Debug)]
pub struct Limiter {
    limits: PersonLimits,
    buckets: Mutex<Buckets>,
}

impl Limiter {
    pub fn new(limits: PersonLimits) -> Self {
        let sweep_at = limits.max_tracked.max(1024);
        Self {
            limits,
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                sweep_at,
            }),
        }
    }

    /// Takes one token from each of `kind`'s windows for `person`, or none
    /// and answers RATE_LIMITED with the wait until every window has one.
    pub fn check(&self, person: PersonId, kind: Limited) -> Result<(), ApiError> {
        self.check_at(person, kind, Instant::now())
    }

    pub(crate) fn check_at(
        &self,
        person: PersonId,
        kind: Limited,
        now: Instant,
    ) -> Result<(), ApiError> {
        let rates = self.limits.rates(kind);
        if rates.is_empty() {
            return Ok(());
        }
        let mut guard = self.buckets.lock();
        let state = &mut *guard;
        if state.map.len() >= state.sweep_at {
            let all = &self.limits;
            state
                .map
                .retain(|(_, k), b| !is_full(b, all.rates(*k), now));
            state.sweep_at = (state.map.len() * 2).max(all.max_tracked.max(1024));
        }
        let bucket = state.map.entry((person, kind)).or_insert_with(|| Bucket {
            windows: rates
                .iter()
                .map(|r| Window {
                    tokens: f64::from(r.count),
                })
                .collect(),
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.at = now;
        let mut wait = 0f64;
        let mut slowest: Option<&Rate> = None;
        for (w, r) in bucket.windows.iter_mut().zip(rates) {
            let per_sec = f64::from(r.count) / r.per.as_secs_f64().max(1e-3);
            w.tokens = (w.tokens + elapsed * per_sec).min(f64::from(r.count));
            if w.tokens < 1.0 {
                let this = (1.0 - w.tokens) / per_sec;
                if this > wait {
                    wait = this;
                    slowest = Some(r);
                }
            }
        }
        if let Some(rate) = slowest {
            // Whole seconds, rounded up: retrying at the advertised time succeeds.
            let secs = (wait.ceil() as u64).max(1);
            return Err(ApiError::RetryLater {
                message: format!(
                    "too many {}: at most {}; retry in {} ({secs} s)",
                    kind.noun(),
                    rate.describe(),
                    human(secs)
                ),
                retry_after_secs: secs,
            });
        }
        for w in &mut bucket.windows {
            w.tokens -= 1.0;
        }
        Ok(())
    }
}

fn is_full(bucket: &Bucket, rates: &[Rate], now: Instant) -> bool {
    let elapsed = now.saturating_duration_since(bucket.at);
    rates.iter().zip(&bucket.windows).all(|(r, w)| {
        let missing = f64::from(r.count) - w.tokens;
        missing <= 0.0 || elapsed.as_secs_f64() >= r.per.as_secs_f64()
    })
}

fn human(secs: u64) -> String {
    match secs {
        0..=119 => format!("{secs} seconds"),
        120..=7199 => format!("{} minutes", secs.div_ceil(60)),
        _ => format!("{} hours", secs.div_ceil(3600)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use registre_domain::testing::fresh;

    fn limiter(rates: Vec<Rate>) -> Limiter {
        Limiter::new(PersonLimits {
            messages: rates,
            ..PersonLimits::default()
        })
    }

    fn retry_after(r: Result<(), ApiError>) -> Option<u64> {
        match r {
            Err(ApiError::RetryLater {
                retry_after_secs, ..
            }) => Some(retry_after_secs),
            Ok(()) => None,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_burst_up_to_the_rate_passes_then_the_next_waits_for_a_token() {
        let l = limiter(vec![Rate::per_minute(30)]);
        let me = fresh::<PersonId>();
        let t0 = Instant::now();
        for _ in 0..30 {
            assert_eq!(retry_after(l.check_at(me, Limited::Message, t0)), None);
        }
        // One token comes back every 2 s.
        assert_eq!(retry_after(l.check_at(me, Limited::Message, t0)), Some(2));
        let t1 = t0 + Duration::from_millis(1500);
        assert_eq!(retry_after(l.check_at(me, Limited::Message, t1)), Some(1));
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(retry_after(l.check_at(me, Limited::Message, t2)), None);
        assert_eq!(retry_after(l.check_at(me, Limited::Message, t2)), Some(2));
        // Someone else, or another kind, has their own bucket.
        assert_eq!(
            retry_after(l.check_at(fresh::<PersonId>(), Limited::Message, t2)),
            None
        );
        assert_eq!(retry_after(l.check_at(me, Limited::RollCall, t2)), None);
    }

    #[test]
    fn the_slowest_window_says_when_to_retry_and_a_refusal_costs_nothing() {
        let l = limiter(vec![Rate::per_minute(30), Rate::per_day(40)]);
        let me = fresh::<PersonId>();
        let mut t = Instant::now();
        for _ in 0..40 {
            // One every 2 s: the minute window never runs out.
            assert_eq!(retry_after(l.check_at(me, Limited::Message, t)), None);
            t += Duration::from_secs(2);
        }
        // The day window is empty: one token per 2,160 s (86,400 / 40).
        let wait = retry_after(l.check_at(me, Limited::Message, t)).expect("refused");
        assert!((2_000..=2_160).contains(&wait), "{wait}");
        // Refusals consumed nothing: the first retry at the advertised time passes.
        for _ in 0..5 {
            assert!(retry_after(l.check_at(me, Limited::Message, t)).is_some());
        }
        let later = t + Duration::from_secs(wait);
        assert_eq!(retry_after(l.check_at(me, Limited::Message, later)), None);
    }

    #[test]
    fn idle_buckets_are_forgotten_past_the_bound() {
        let l = Limiter::new(PersonLimits {
            max_tracked: 0,
            ..PersonLimits::default()
        });
        let t0 = Instant::now();
        for _ in 0..1_500 {
            l.check_at(fresh::<PersonId>(), Limited::Message, t0)
                .expect("a first message passes");
        }
        // Two days later those buckets are full again (like new ones): the
        // next sweep forgets them and keeps the people active now.
        let later = t0 + Duration::from_secs(2 * 86_400);
        for _ in 0..600 {
            l.check_at(fresh::<PersonId>(), Limited::Message, later)
                .expect("passes");
        }
        assert_eq!(l.buckets.lock().map.len(), 600);
    }

    #[test]
    fn no_rates_means_no_limit() {
        let l = Limiter::new(PersonLimits::unlimited());
        let me = fresh::<PersonId>();
        let t0 = Instant::now();
        for _ in 0..10_000 {
            l.check_at(me, Limited::Message, t0).expect("unlimited");
        }
        assert!(l.buckets.lock().map.is_empty());
    }
}
