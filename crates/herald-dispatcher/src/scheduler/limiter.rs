//! A subscription's pace: a token bucket (the `governor` crate's GCRA) for its rate limit (a
//! `herald_core::subscription::Pace`: the configured limit, or the rate the endpoint allowed
//! when it consented if that is slower), and a pause that an endpoint's `Retry-After` on
//! `429`/`503` imposes on the whole subscription.
//!
//! Waiting here is not an attempt: the scheduler asks for a token before it starts one, and a
//! refusal only says how long to wait. Generic over the clock so tests drive time by hand.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, MonotonicClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use herald_core::subscription::Pace;

/// The longest an endpoint's `Retry-After` pauses a whole subscription; the event that got it
/// follows its own retry policy.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(3600);

type Bucket<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

pub(crate) struct Limiter<C: Clock = MonotonicClock> {
    clock: C,
    limit: Option<Pace>,
    bucket: Option<Bucket<C>>,
    paused_until: Option<C::Instant>,
}

impl Limiter<MonotonicClock> {
    pub(crate) fn new(limit: Option<impl Into<Pace>>) -> Limiter<MonotonicClock> {
        Limiter::with_clock(limit.map(Into::into), MonotonicClock)
    }
}

impl<C: Clock + Clone> Limiter<C> {
    pub(crate) fn with_clock(limit: Option<Pace>, clock: C) -> Limiter<C> {
        let bucket = limit.and_then(|limit| bucket(limit, clock.clone()));
        Limiter {
            clock,
            limit,
            bucket,
            paused_until: None,
        }
    }

    /// Applies a changed rate limit; an unchanged one keeps its bucket (and its tokens).
    pub(crate) fn set_limit(&mut self, limit: Option<impl Into<Pace>>) {
        let limit = limit.map(Into::into);
        if limit != self.limit {
            self.limit = limit;
            self.bucket = limit.and_then(|limit| bucket(limit, self.clock.clone()));
        }
    }

    /// Takes a token for one attempt now, or returns how long to wait before asking again.
    pub(crate) fn try_acquire(&mut self) -> Result<(), Duration> {
        let now = self.clock.now();
        if let Some(until) = self.paused_until {
            if until > now {
                return Err(until.duration_since(now).into());
            }
            self.paused_until = None;
        }
        match &self.bucket {
            None => Ok(()),
            Some(bucket) => bucket
                .check()
                .map_err(|not_until| not_until.wait_time_from(now)),
        }
    }

    /// Whether an endpoint's pause still holds attempts back.
    pub(crate) fn is_paused(&self) -> bool {
        self.paused_until
            .is_some_and(|until| until > self.clock.now())
    }

    /// Holds every attempt of the subscription back for `delay` (at most [`MAX_PAUSE`]); a
    /// shorter pause never cuts a longer one short.
    pub(crate) fn pause_for(&mut self, delay: Duration) {
        let until = self.clock.now() + delay.min(MAX_PAUSE).into();
        if self.paused_until.is_none_or(|current| until > current) {
            self.paused_until = Some(until);
        }
    }
}

/// A bucket that starts empty: a subscription taken over from another replica (or started
/// again) may have just had its burst spent there, so the first requests here are paced, and
/// the endpoint sees at most `rate × window + burst` across the hand-over too.
fn bucket<C: Clock>(limit: Pace, clock: C) -> Option<Bucket<C>> {
    let burst = NonZeroU32::new(limit.burst.max(1))?;
    let quota = Quota::with_period(limit.interval)?.allow_burst(burst);
    let bucket = RateLimiter::direct_with_clock(quota, clock);
    // Taking the whole burst cannot fail on a fresh bucket; if it did, it would only start full.
    let _ = bucket.check_n(burst);
    Some(bucket)
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use herald_core::subscription::RateLimit;

    use super::*;

    fn limiter(per_second: u32, burst: u32) -> (Limiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let limit = RateLimit { per_second, burst };
        (
            Limiter::with_clock(Some(limit.into()), clock.clone()),
            clock,
        )
    }

    /// How many attempts the limiter lets start over `seconds`, asking every millisecond.
    fn admitted(
        limiter: &mut Limiter<FakeRelativeClock>,
        clock: &FakeRelativeClock,
        seconds: u64,
    ) -> u64 {
        let mut admitted = 0;
        for _ in 0..seconds * 1000 {
            while limiter.try_acquire().is_ok() {
                admitted += 1;
            }
            clock.advance(Duration::from_millis(1));
        }
        admitted
    }

    #[test]
    fn over_any_window_at_most_rate_times_window_plus_burst_start() {
        for (rate, burst, seconds) in [(10, 1, 10), (10, 5, 10), (50, 50, 3), (1, 3, 20)] {
            let (mut limiter, clock) = limiter(rate, burst);
            let admitted = admitted(&mut limiter, &clock, seconds);
            let bound = u64::from(rate) * seconds + u64::from(burst);
            assert!(
                admitted <= bound,
                "{rate}/s burst {burst}: {admitted} > {bound}"
            );
            // And the limiter does not hold back more than one token's worth.
            assert!(
                admitted + 1 >= u64::from(rate) * seconds,
                "{rate}/s: only {admitted}"
            );
        }
    }

    #[test]
    fn a_new_bucket_starts_empty_so_a_hand_over_adds_no_second_burst() {
        let (mut limiter, clock) = limiter(10, 5);
        assert_eq!(limiter.try_acquire(), Err(Duration::from_millis(100)));
        clock.advance(Duration::from_secs(1));
        let burst = std::iter::from_fn(|| limiter.try_acquire().ok()).count();
        assert_eq!(burst, 5, "the burst builds up while idle");
    }

    #[test]
    fn a_refusal_says_how_long_to_wait() {
        let (mut limiter, clock) = limiter(4, 1);
        clock.advance(Duration::from_millis(250));
        assert_eq!(limiter.try_acquire(), Ok(()));
        let wait = limiter.try_acquire().unwrap_err();
        assert_eq!(wait, Duration::from_millis(250));
        clock.advance(wait);
        assert_eq!(limiter.try_acquire(), Ok(()));
    }

    #[test]
    fn an_allowed_rate_per_minute_paces_below_one_a_second() {
        let clock = FakeRelativeClock::default();
        let mut limiter = Limiter::with_clock(Some(Pace::per_minute(5)), clock.clone());
        let admitted = admitted(&mut limiter, &clock, 60);
        assert!(
            (4..=6).contains(&admitted),
            "{admitted} in a minute at 5/min"
        );
    }

    #[test]
    fn retry_after_pauses_every_attempt_and_a_shorter_one_does_not_shorten_it() {
        let clock = FakeRelativeClock::default();
        let mut limiter = Limiter::with_clock(None, clock.clone());
        assert_eq!(limiter.try_acquire(), Ok(()));
        limiter.pause_for(Duration::from_secs(30));
        limiter.pause_for(Duration::from_secs(1));
        assert_eq!(limiter.try_acquire(), Err(Duration::from_secs(30)));
        clock.advance(Duration::from_secs(29));
        assert_eq!(limiter.try_acquire(), Err(Duration::from_secs(1)));
        clock.advance(Duration::from_secs(1));
        assert_eq!(limiter.try_acquire(), Ok(()));
        limiter.pause_for(Duration::MAX);
        assert_eq!(limiter.try_acquire(), Err(MAX_PAUSE));
    }

    #[test]
    fn no_limit_admits_everything_and_a_changed_limit_applies() {
        let clock = FakeRelativeClock::default();
        let mut limiter = Limiter::with_clock(None, clock.clone());
        assert!((0..10_000).all(|_| limiter.try_acquire().is_ok()));
        limiter.set_limit(Some(RateLimit {
            per_second: 1,
            burst: 1,
        }));
        assert!(limiter.try_acquire().is_err());
        clock.advance(Duration::from_secs(1));
        assert_eq!(limiter.try_acquire(), Ok(()));
        assert!(limiter.try_acquire().is_err());
    }
}
