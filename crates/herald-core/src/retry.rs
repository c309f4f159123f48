//! Retry policies: how long to wait before the next attempt, and when to give up.
//!
//! A policy is a backoff (a fixed list of delays, or exponential), a jitter percentage, a
//! maximum number of attempts, a maximum age, and status codes that end delivery at once.
//! Attempt numbers are 1-based and counted by JetStream (a message's delivery count), so they
//! survive dispatcher restarts. Jitter takes a caller-supplied uniform number, so this stays
//! pure. The serde form is part of the subscription storage format.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// Upper bound of any single delay, and of a policy's maximum age.
pub const MAX_DELAY: Duration = Duration::from_secs(30 * 24 * 3600);

/// Upper bound of `max_attempts`.
pub const MAX_ATTEMPTS: u32 = 1000;

/// How a subscription retries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    /// Each delay varies randomly by up to this percentage either way.
    pub jitter_percent: u32,
    /// Attempts in all, the first included; the event is dead-lettered after the last.
    pub max_attempts: u32,
    /// An event older than this (since it was stored) is dead-lettered instead of retried.
    #[serde(with = "duration_ms")]
    pub max_age: Duration,
    /// Response codes that dead-letter the event at once, without retrying.
    #[serde(default)]
    pub terminal_status_codes: Vec<u16>,
}

/// The delay before attempt `n + 1`, after attempt `n` failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// `delays[n - 1]` after attempt `n`; past the end the last delay repeats.
    Fixed {
        #[serde(with = "durations_ms")]
        delays: Vec<Duration>,
    },
    /// `initial * multiplier^(n - 1)`, at most `max_delay`.
    Exponential {
        #[serde(with = "duration_ms")]
        initial: Duration,
        multiplier: f64,
        #[serde(with = "duration_ms")]
        max_delay: Duration,
    },
}

/// Why a policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PolicyError {
    pub field: &'static str,
    pub reason: String,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy::standard()
    }
}

impl RetryPolicy {
    /// Herald's default: immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (eight
    /// attempts over about 28 hours, as Svix does), each delay ±20 %, for at most three days.
    pub fn standard() -> RetryPolicy {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        RetryPolicy {
            backoff: Backoff::Fixed {
                delays: vec![
                    Duration::from_secs(5),
                    minutes(5),
                    minutes(30),
                    minutes(120),
                    minutes(300),
                    minutes(600),
                    minutes(600),
                ],
            },
            jitter_percent: 20,
            max_attempts: 8,
            max_age: Duration::from_secs(3 * 24 * 3600),
            terminal_status_codes: Vec::new(),
        }
    }

    /// A fixed schedule without jitter, attempts = delays + 1 (handy for tests and tools).
    pub fn fixed(delays: Vec<Duration>) -> RetryPolicy {
        let max_attempts = u32::try_from(delays.len() + 1).unwrap_or(MAX_ATTEMPTS);
        RetryPolicy {
            backoff: Backoff::Fixed { delays },
            jitter_percent: 0,
            max_attempts,
            max_age: MAX_DELAY,
            terminal_status_codes: Vec::new(),
        }
    }

    /// Returns the delay after failed attempt `attempt` (1-based), before jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let index = attempt.max(1) - 1;
        match &self.backoff {
            Backoff::Fixed { delays } => {
                let index = usize::try_from(index)
                    .unwrap_or(usize::MAX)
                    .min(delays.len().saturating_sub(1));
                delays.get(index).copied().unwrap_or(Duration::ZERO)
            }
            Backoff::Exponential {
                initial,
                multiplier,
                max_delay,
            } => {
                let exponent = i32::try_from(index).unwrap_or(i32::MAX);
                let seconds = initial.as_secs_f64() * multiplier.powi(exponent);
                let capped = seconds.min(max_delay.as_secs_f64());
                Duration::try_from_secs_f64(capped.max(0.0)).unwrap_or(*max_delay)
            }
        }
    }

    /// Returns the delay after failed attempt `attempt`, with jitter from `unit`, a uniform
    /// random number in `[0, 1)`: within ±`jitter_percent` of the base delay.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.base_delay(attempt).as_secs_f64();
        let spread = f64::from(self.jitter_percent.min(100)) / 100.0;
        let factor = 1.0 + spread * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        // Saturates instead of panicking on a stored policy that was never validated.
        Duration::try_from_secs_f64((base * factor).max(0.0)).unwrap_or(Duration::MAX)
    }

    /// Returns the longest delay the policy can ask for (jitter included).
    pub fn max_delay(&self) -> Duration {
        let longest = match &self.backoff {
            Backoff::Fixed { delays } => delays.iter().max().copied().unwrap_or(Duration::ZERO),
            Backoff::Exponential { max_delay, .. } => *max_delay,
        };
        let factor = 1.0 + f64::from(self.jitter_percent.min(100)) / 100.0;
        Duration::try_from_secs_f64(longest.as_secs_f64() * factor).unwrap_or(Duration::MAX)
    }

    /// Checks the policy's bounds.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let error = |field, reason: &str| {
            Err(PolicyError {
                field,
                reason: reason.to_owned(),
            })
        };
        match &self.backoff {
            Backoff::Fixed { delays } => {
                if delays.is_empty() || delays.len() > 100 {
                    return error("retry_policy.fixed.delays", "must hold 1 to 100 delays");
                }
                if delays.iter().any(|delay| *delay > MAX_DELAY) {
                    return error(
                        "retry_policy.fixed.delays",
                        "each delay must be at most 30 days",
                    );
                }
            }
            Backoff::Exponential {
                initial,
                multiplier,
                max_delay,
            } => {
                if initial.is_zero() || *initial > MAX_DELAY {
                    return error(
                        "retry_policy.exponential.initial",
                        "must be between 1 ms and 30 days",
                    );
                }
                if !(1.0..=10.0).contains(multiplier) {
                    return error(
                        "retry_policy.exponential.multiplier",
                        "must be between 1 and 10",
                    );
                }
                if max_delay < initial || *max_delay > MAX_DELAY {
                    return error(
                        "retry_policy.exponential.max_delay",
                        "must be at least the initial delay and at most 30 days",
                    );
                }
            }
        }
        if self.jitter_percent > 100 {
            return error("retry_policy.jitter_percent", "must be at most 100");
        }
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return error("retry_policy.max_attempts", "must be between 1 and 1000");
        }
        if self.max_age.is_zero() || self.max_age > MAX_DELAY {
            return error("retry_policy.max_age", "must be between 1 ms and 30 days");
        }
        let invalid_code = self
            .terminal_status_codes
            .iter()
            .any(|code| !(300..=599).contains(code));
        if invalid_code {
            return error(
                "retry_policy.terminal_status_codes",
                "each code must be in 300..=599",
            );
        }
        Ok(())
    }
}

/// Durations stored as whole milliseconds.
mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        duration: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(deserializer)?))
    }
}

mod durations_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        durations: &[Duration],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            durations
                .iter()
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        )
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Duration>, D::Error> {
        Ok(Vec::<u64>::deserialize(deserializer)?
            .into_iter()
            .map(Duration::from_millis)
            .collect())
    }
}

/// A uniform number in [0, 1) for [`RetryPolicy::delay`]'s jitter, from values that differ per
/// attempt: the event's stream sequence, the attempt's unix timestamp, and a per-process salt
/// (the caller's process id), so events that failed together are retried apart.
pub fn jitter_unit(sequence: u64, timestamp: i64, salt: u32) -> f64 {
    // SplitMix64's finaliser: cheap, and enough to decorrelate retries.
    let mut z = sequence ^ (timestamp as u64).rotate_left(32) ^ u64::from(salt);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1_u64 << 53) as f64
}
