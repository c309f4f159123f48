//! The rate limiter's cost alone: a timing loop of `governor`'s `check()` on a bucket of the
//! type the dispatcher's scheduler uses (`scheduler/limiter.rs`: direct, not keyed, in-memory
//! state, the monotonic clock, no middleware), beside the same loop without the limiter.
//!
//! The bucket's rate (one token a nanosecond, a burst of `u32::MAX`) is far above what the loop
//! reaches, so every check takes a token, as on a subscription whose limit is never reached.
//! One thread, as one scheduler task owns its bucket. The whole dispatcher's cost with a limit
//! is measured end to end beside W2; this loop isolates the limiter from that run's noise.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use governor::clock::MonotonicClock;
use governor::{Quota, RateLimiter};

/// What the timing loops measured, the best of several rounds each.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LimiterCost {
    /// Nanoseconds per iteration of the loop calling `check()`.
    pub(crate) check_ns: f64,
    /// Nanoseconds per iteration of the same loop without it.
    pub(crate) baseline_ns: f64,
    /// Checks that found no token (should be none).
    pub(crate) refused: u64,
    pub(crate) iterations: u64,
}

impl LimiterCost {
    /// Returns the limiter's own cost per event: the difference of the two loops.
    pub(crate) fn per_event_ns(&self) -> f64 {
        (self.check_ns - self.baseline_ns).max(0.0)
    }
}

/// Times `rounds` rounds of `iterations` checks and of the baseline loop, alternating; keeps
/// each loop's fastest round (the one least disturbed by the rest of the machine).
pub(crate) fn measure(iterations: u64, rounds: u32) -> LimiterCost {
    let rate = Quota::with_period(Duration::from_nanos(1))
        .expect("one nanosecond should be a valid period")
        .allow_burst(NonZeroU32::MAX);
    let bucket = RateLimiter::direct_with_clock(rate, MonotonicClock);
    let mut best = LimiterCost {
        check_ns: f64::MAX,
        baseline_ns: f64::MAX,
        refused: 0,
        iterations,
    };
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        let mut refused = 0_u64;
        for _ in 0..iterations {
            if black_box(&bucket).check().is_err() {
                refused += 1;
            }
        }
        let check_ns = started.elapsed().as_nanos() as f64 / iterations.max(1) as f64;
        best.check_ns = best.check_ns.min(check_ns);
        best.refused += refused;

        let started = Instant::now();
        let mut refused = 0_u64;
        for _ in 0..iterations {
            if black_box(Ok::<(), ()>(())).is_err() {
                refused += 1;
            }
        }
        black_box(refused);
        let baseline_ns = started.elapsed().as_nanos() as f64 / iterations.max(1) as f64;
        best.baseline_ns = best.baseline_ns.min(baseline_ns);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::measure;

    #[test]
    fn a_limit_far_above_the_loop_never_refuses() {
        let cost = measure(10_000, 2);
        assert_eq!(cost.refused, 0);
        assert_eq!(cost.iterations, 10_000);
    }
}
