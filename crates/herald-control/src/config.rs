//! Control-plane configuration.

use std::time::Duration;

use serde::Deserialize;

/// Settings of the control role; defaults live in the server's `herald.default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who may call the Subscriptions API. Health and reflection stay open.
    pub auth: AuthConfig,
}

/// Operator authentication: bearer tokens in the `authorization` metadata.
pub use herald_core::auth::BearerAuth as AuthConfig;

impl Config {
    /// Returns every problem with the configuration, empty when it is usable.
    pub fn problems(&self) -> Vec<String> {
        self.auth.problems("control")
    }
}

/// How control exports what waits for each subscription (consumer lag, retry backlog, dead
/// letters) as gauges; the server's `[subscription_metrics]` section, a section of its own so
/// that [`Config`]'s literal users are unaffected.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionMetricsConfig {
    /// How often the gauges are read from NATS (a fixed handful of JetStream API calls however
    /// many subscriptions there are).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Most subscriptions with series of their own: beyond it, those with the most waiting
    /// keep theirs and the rest are summed under `subscription_id="_other"`; 0 exports only
    /// that sum, no series per subscription.
    pub max_subscriptions: usize,
}

impl SubscriptionMetricsConfig {
    /// Returns every problem with the configuration, empty when it is usable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.interval < Duration::from_millis(100) {
            problems.push("subscription_metrics.interval: must be at least 100ms".to_owned());
        }
        problems
    }
}
