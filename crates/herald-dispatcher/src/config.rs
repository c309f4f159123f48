//! Dispatcher configuration.

use std::time::Duration;

use serde::Deserialize;

use herald_core::retry::RetrySchedule;

/// Settings of the dispatcher role; defaults live in the server's `herald.default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Deadline of one delivery attempt, from connecting to the end of the response.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Deadline for establishing the connection.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// At most this much of a response body is read.
    pub max_response_body_bytes: usize,
    /// Delays between attempts; the last one repeats.
    #[serde(deserialize_with = "durations")]
    pub retry_schedule: Vec<Duration>,
    /// Each delay varies randomly by up to this percentage.
    pub retry_jitter_percent: u32,
    /// Deliveries in flight per subscription.
    pub max_in_flight_per_subscription: usize,
    /// How long in-flight attempts may run after shutdown begins.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace_period: Duration,
}

impl Config {
    /// Returns the retry schedule.
    pub fn schedule(&self) -> RetrySchedule {
        RetrySchedule::new(self.retry_schedule.clone(), self.retry_jitter_percent)
    }

    /// Returns the consumer's ack wait: longer than an attempt can take, counting the time a
    /// pulled message may wait for a free slot (one more attempt), so JetStream never
    /// redelivers an event whose attempt is still running.
    pub fn ack_wait(&self) -> Duration {
        self.request_timeout * 2 + self.connect_timeout + Duration::from_secs(5)
    }

    /// Returns every problem with the configuration, empty when it is usable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.request_timeout.is_zero() {
            problems.push("dispatcher.request_timeout must be positive".to_owned());
        }
        if self.max_in_flight_per_subscription == 0 {
            problems.push("dispatcher.max_in_flight_per_subscription must be positive".to_owned());
        }
        if self.retry_jitter_percent > 100 {
            problems.push("dispatcher.retry_jitter_percent must be at most 100".to_owned());
        }
        problems
    }
}

fn durations<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Duration>, D::Error> {
    let texts: Vec<String> = Vec::deserialize(deserializer)?;
    texts
        .iter()
        .map(|text| humantime::parse_duration(text).map_err(serde::de::Error::custom))
        .collect()
}
