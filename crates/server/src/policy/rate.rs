//! Per-rule, per-principal token buckets.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::RuleId;

/// Most buckets a [`RateLimiter`] keeps, across all rules, before it evicts.
pub const MAX_BUCKETS: usize = 100_000;

/// Slowest `requests_per_second` a policy may set (one request every 1000 s).
pub const MIN_RATE: f64 = 0.001;

/// Fastest `requests_per_second` a policy may set.
pub const MAX_RATE: f64 = 1e9;

/// Largest `burst` a policy may set.
pub const MAX_BURST: u32 = 1_000_000_000;

/// A rule's `rate_limit`: a token bucket that refills at `requests_per_second` and holds at
/// most `burst` requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained rate; may be fractional (`0.5` is one request every two seconds).
    pub requests_per_second: f64,
    /// Bucket size: how many requests may arrive at once after a quiet period.
    pub burst: u32,
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s burst {}", self.requests_per_second, self.burst)
    }
}

/// A request over its rule's rate limit; retry after the duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit exceeded: retry after {:.3}s", .0.as_secs_f64())]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// The value for an HTTP `Retry-After` header: whole seconds, rounded up, at least 1.
    pub fn header_secs(&self) -> u64 {
        let secs = self.0.as_secs() + u64::from(self.0.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// A bucket kept as its "theoretical arrival time" (the GCRA form of a token bucket): the
/// bucket is full when `tat <= now`, and each request pushes `tat` one interval later. Exact
/// integer time arithmetic, no floating-point drift.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tat: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Limit {
    limit: RateLimit,
    /// Time to earn one request.
    interval: Duration,
    /// How far ahead of `now` the bucket may run: `interval × (burst − 1)`.
    tolerance: Duration,
}

struct Buckets {
    /// One map per rule, indexed by [`RuleId`]; empty for rules without a limit.
    per_rule: Vec<HashMap<Box<str>, Bucket>>,
    total: usize,
}

/// Token buckets for the rate-limited rules of one [`PolicySet`](super::PolicySet), one bucket
/// per (rule, principal).
///
/// Every `PolicySet` owns a fresh limiter ([`PolicySet::rate_limiter`](super::PolicySet::rate_limiter)),
/// so a reloaded set starts with full buckets and a [`RuleId`] is always checked against the
/// limits of the set that produced it. Thread-safe; one short critical section per check.
///
/// Memory is bounded: beyond [`MAX_BUCKETS`] buckets, the limiter first forgets the buckets that
/// have refilled completely (forgetting those changes nothing), then the fullest remaining ones,
/// down to 90% of the bound. Forcing eviction takes that many distinct authenticated principals
/// matching rate-limited rules.
pub struct RateLimiter {
    limits: Box<[Option<Limit>]>,
    buckets: Mutex<Buckets>,
    max_buckets: usize,
}

impl RateLimiter {
    pub(crate) fn new(limits: Vec<Option<RateLimit>>) -> RateLimiter {
        RateLimiter::with_max_buckets(limits, MAX_BUCKETS)
    }

    pub(crate) fn with_max_buckets(limits: Vec<Option<RateLimit>>, max: usize) -> RateLimiter {
        let limits: Box<[Option<Limit>]> = limits
            .into_iter()
            .map(|l| {
                l.map(|limit| {
                    // The loader keeps the rate within [MIN_RATE, MAX_RATE], so this is finite.
                    let interval = Duration::try_from_secs_f64(1.0 / limit.requests_per_second)
                        .unwrap_or(Duration::MAX);
                    Limit {
                        limit,
                        interval,
                        tolerance: interval.saturating_mul(limit.burst.saturating_sub(1)),
                    }
                })
            })
            .collect();
        RateLimiter {
            buckets: Mutex::new(Buckets {
                per_rule: limits.iter().map(|_| HashMap::new()).collect(),
                total: 0,
            }),
            limits,
            max_buckets: max.max(1),
        }
    }

    /// The rate limit of `rule`, if it has one.
    pub fn limit(&self, rule: RuleId) -> Option<RateLimit> {
        self.limits
            .get(rule.index())
            .copied()
            .flatten()
            .map(|l| l.limit)
    }

    /// Takes one request from `principal`'s bucket for `rule`, or says how long until one is
    /// available (a refused request takes nothing). Rules without a `rate_limit`, and ids from
    /// another set, always pass. Does not allocate once the principal has a bucket.
    pub fn check(&self, rule: RuleId, principal: &str, now: Instant) -> Result<(), RetryAfter> {
        let Some(Some(limit)) = self.limits.get(rule.index()).copied() else {
            return Ok(());
        };
        let mut guard = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let state = &mut *guard;
        if let Some(bucket) = state.per_rule[rule.index()].get_mut(principal) {
            let tat = bucket.tat.max(now);
            let ahead = tat - now;
            if ahead > limit.tolerance {
                return Err(RetryAfter(ahead - limit.tolerance));
            }
            bucket.tat = tat + limit.interval;
            return Ok(());
        }
        if state.total >= self.max_buckets {
            self.evict(state, now);
        }
        state.per_rule[rule.index()].insert(
            principal.into(),
            Bucket {
                tat: now + limit.interval,
            },
        );
        state.total += 1;
        Ok(())
    }

    /// How many buckets are held.
    pub fn len(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Makes room: drops full buckets, then the fullest others down to 90% of the bound.
    fn evict(&self, state: &mut Buckets, now: Instant) {
        for map in &mut state.per_rule {
            map.retain(|_, b| b.tat > now);
        }
        state.total = state.per_rule.iter().map(HashMap::len).sum();
        let keep = self.max_buckets - self.max_buckets.div_ceil(10);
        if state.total > keep {
            let mut tats: Vec<Instant> = state
                .per_rule
                .iter()
                .flat_map(|m| m.values().map(|b| b.tat))
                .collect();
            let drop = state.total - keep;
            // The drop-th smallest: everything at or before it goes (ties may take a few more).
            let (_, cutoff, _) = tats.select_nth_unstable(drop - 1);
            let cutoff = *cutoff;
            for map in &mut state.per_rule {
                map.retain(|_, b| b.tat > cutoff);
            }
            state.total = state.per_rule.iter().map(HashMap::len).sum();
        }
    }
}

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limits: Vec<_> = self.limits.iter().map(|l| l.map(|l| l.limit)).collect();
        f.debug_struct("RateLimiter")
            .field("limits", &limits)
            .field("buckets", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rps: f64, burst: u32) -> RateLimiter {
        RateLimiter::new(vec![
            Some(RateLimit {
                requests_per_second: rps,
                burst,
            }),
            None,
        ])
    }

    const R0: RuleId = RuleId(0);
    const R1: RuleId = RuleId(1);

    #[test]
    fn burst_then_refill() {
        let l = limiter(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check(R0, "p", t0), Ok(()));
        }
        let RetryAfter(wait) = l.check(R0, "p", t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500), "one token per 0.5 s");
        // A refused request takes nothing.
        assert_eq!(
            l.check(R0, "p", t0 + Duration::from_millis(499)),
            Err(RetryAfter(Duration::from_millis(1)))
        );
        assert_eq!(l.check(R0, "p", t0 + Duration::from_millis(500)), Ok(()));
        assert!(l.check(R0, "p", t0 + Duration::from_millis(500)).is_err());
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(l.check(R0, "p", later), Ok(()));
        }
        assert!(l.check(R0, "p", later).is_err());
    }

    #[test]
    fn buckets_are_per_principal_and_per_rule() {
        let l = RateLimiter::new(vec![
            Some(RateLimit {
                requests_per_second: 1.0,
                burst: 1,
            }),
            Some(RateLimit {
                requests_per_second: 1.0,
                burst: 1,
            }),
        ]);
        let t = Instant::now();
        assert!(l.check(R0, "a", t).is_ok());
        assert!(l.check(R0, "a", t).is_err());
        assert!(
            l.check(R0, "b", t).is_ok(),
            "another principal has its own bucket"
        );
        assert!(
            l.check(R1, "a", t).is_ok(),
            "another rule has its own bucket"
        );
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn unlimited_rules_and_foreign_ids_pass() {
        let l = limiter(1.0, 1);
        let t = Instant::now();
        for _ in 0..100 {
            assert!(l.check(R1, "p", t).is_ok());
            assert!(l.check(RuleId(7), "p", t).is_ok());
        }
        assert!(l.is_empty());
    }

    #[test]
    fn time_going_backwards_does_not_mint_tokens() {
        let l = limiter(1.0, 1);
        let t = Instant::now() + Duration::from_secs(10);
        assert!(l.check(R0, "p", t).is_ok());
        assert!(l.check(R0, "p", t - Duration::from_secs(5)).is_err());
        assert!(l.check(R0, "p", t + Duration::from_millis(999)).is_err());
        assert!(l.check(R0, "p", t + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn fractional_rates() {
        let l = limiter(0.5, 1);
        let t = Instant::now();
        assert!(l.check(R0, "p", t).is_ok());
        let err = l.check(R0, "p", t).unwrap_err();
        assert_eq!(err.0, Duration::from_secs(2));
        assert_eq!(err.header_secs(), 2);
        assert_eq!(RetryAfter(Duration::from_millis(1)).header_secs(), 1);
        assert_eq!(RetryAfter(Duration::ZERO).header_secs(), 1);
        assert_eq!(RetryAfter(Duration::from_millis(2001)).header_secs(), 3);
    }

    #[test]
    fn bounded_eviction_prefers_full_then_oldest() {
        let limits = vec![Some(RateLimit {
            requests_per_second: 1.0,
            burst: 2,
        })];
        let l = RateLimiter::with_max_buckets(limits, 10);
        let t0 = Instant::now();
        // Ten principals, each drained (2 requests used), at increasing times.
        for i in 0..10u64 {
            let t = t0 + Duration::from_millis(i);
            let p = format!("p{i}");
            assert!(l.check(R0, &p, t).is_ok());
            assert!(l.check(R0, &p, t).is_ok());
            assert!(l.check(R0, &p, t).is_err());
        }
        assert_eq!(l.len(), 10);
        // An eleventh: nobody has refilled yet, so the fullest (p0) goes, down to 9, then it is
        // added.
        let t = t0 + Duration::from_millis(20);
        assert!(l.check(R0, "new", t).is_ok());
        assert_eq!(l.len(), 10);
        assert!(l.check(R0, "p0", t).is_ok(), "p0 was evicted: fresh bucket");
        assert!(l.check(R0, "p9", t).is_err(), "p9 was kept: still drained");
        // Much later every bucket is full again: all are forgotten at the next insertion.
        let t = t0 + Duration::from_secs(100);
        assert!(l.check(R0, "another", t).is_ok());
        assert_eq!(l.len(), 1);
    }
}
