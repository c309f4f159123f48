//! How long to wait before the next delivery attempt.
//!
//! A schedule is a list of delays: after the first failed attempt wait `delays[0]`, after the
//! second `delays[1]`, and so on; past the end the last delay repeats. Jitter spreads retries of
//! many events that failed together; the caller supplies the random number, so this stays pure.

use std::time::Duration;

#[cfg(test)]
mod tests;

/// Delays between attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter_percent: u32,
}

impl RetrySchedule {
    /// Builds a schedule; an empty list means "retry after one second".
    pub fn new(delays: Vec<Duration>, jitter_percent: u32) -> RetrySchedule {
        let delays = if delays.is_empty() {
            vec![Duration::from_secs(1)]
        } else {
            delays
        };
        RetrySchedule {
            delays,
            jitter_percent: jitter_percent.min(100),
        }
    }

    /// Herald's default: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 28 hours in all, as
    /// Svix does), each with ±20 % jitter.
    pub fn standard() -> RetrySchedule {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        RetrySchedule::new(
            vec![
                Duration::from_secs(5),
                minutes(5),
                minutes(30),
                minutes(120),
                minutes(300),
                minutes(600),
                minutes(600),
            ],
            20,
        )
    }

    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// Returns the delay after failed attempt number `attempt` (1-based), before jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let index = usize::try_from(attempt.max(1) - 1).unwrap_or(usize::MAX);
        *self
            .delays
            .get(index)
            .unwrap_or_else(|| self.delays.last().expect("never empty"))
    }

    /// Returns the delay after failed attempt `attempt`, with jitter taken from `unit`, a
    /// uniform random number in `[0, 1)`: the result lies within ±jitter of the base delay.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.base_delay(attempt).as_secs_f64();
        let spread = f64::from(self.jitter_percent) / 100.0;
        let factor = 1.0 + spread * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Duration::from_secs_f64((base * factor).max(0.0))
    }
}
