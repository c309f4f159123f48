//! Control-plane metrics: the API's, prefixed `herald_control_`, and the gauges of what waits
//! for each subscription (`gauges.rs`), prefixed `herald_subscription_`.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::{Error, Result};

/// Label value of `method` for calls refused before their method is known (authentication).
pub(crate) const UNKNOWN_METHOD: &str = "unknown";

/// The control role's metrics.
#[derive(Clone)]
pub struct Metrics {
    /// gRPC calls of the Subscriptions and Deliveries APIs, by method (`CreateSubscription`, ...) and outcome
    /// code (`ok` or a Herald error code such as `invalid_argument`). Calls refused by
    /// authentication count with method `unknown`.
    pub requests: IntCounterVec,
    /// Messages on a subscription consumer's filter subjects not yet delivered to it, by
    /// subscription and stream (`HERALD_EVENTS`: its lag; `HERALD_RETRIES`: due retries).
    pub consumer_lag: IntGaugeVec,
    /// Messages delivered to a subscription's consumer and not yet acknowledged, by subscription
    /// and stream.
    pub consumer_ack_pending: IntGaugeVec,
    /// A subscription's retry backlog in `HERALD_RETRIES`, by state (`scheduled`, `due`,
    /// `held`).
    pub retry_backlog: IntGaugeVec,
    /// Dead letters stored for a subscription in `HERALD_DEAD_LETTERS`.
    pub dead_letters: IntGaugeVec,
    /// Stored subscriptions, as the last read of the gauges found them.
    pub subscriptions: IntGauge,
    /// Reads of the subscription gauges, by result (`ok`, `error`); on an error the gauges keep
    /// their previous values.
    pub gauge_refreshes: IntCounterVec,
}

impl Metrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn register(registry: &Registry) -> Result<Metrics> {
        let metrics = Metrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "herald_control_requests_total",
                    "Control API calls, by method and outcome code",
                ),
                &["method", "code"],
            )
            .map_err(Error::Metrics)?,
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    "herald_subscription_consumer_lag",
                    "Messages on a subscription consumer's subjects not yet delivered to it",
                ),
                &["subscription_id", "stream"],
            )
            .map_err(Error::Metrics)?,
            consumer_ack_pending: IntGaugeVec::new(
                Opts::new(
                    "herald_subscription_consumer_ack_pending",
                    "Messages delivered to a subscription's consumer and not yet acknowledged",
                ),
                &["subscription_id", "stream"],
            )
            .map_err(Error::Metrics)?,
            retry_backlog: IntGaugeVec::new(
                Opts::new(
                    "herald_subscription_retry_backlog",
                    "Events of a subscription in the retry backlog, by state",
                ),
                &["subscription_id", "state"],
            )
            .map_err(Error::Metrics)?,
            dead_letters: IntGaugeVec::new(
                Opts::new(
                    "herald_subscription_dead_letters",
                    "Dead letters stored for a subscription",
                ),
                &["subscription_id"],
            )
            .map_err(Error::Metrics)?,
            subscriptions: IntGauge::new(
                "herald_control_subscriptions",
                "Stored subscriptions at the last read of the subscription gauges",
            )
            .map_err(Error::Metrics)?,
            gauge_refreshes: IntCounterVec::new(
                Opts::new(
                    "herald_control_subscription_gauge_refreshes_total",
                    "Reads of the per-subscription gauges from NATS, by result",
                ),
                &["result"],
            )
            .map_err(Error::Metrics)?,
        };
        registry
            .register(Box::new(metrics.requests.clone()))
            .map_err(Error::Metrics)?;
        registry
            .register(Box::new(metrics.consumer_lag.clone()))
            .map_err(Error::Metrics)?;
        registry
            .register(Box::new(metrics.consumer_ack_pending.clone()))
            .map_err(Error::Metrics)?;
        registry
            .register(Box::new(metrics.retry_backlog.clone()))
            .map_err(Error::Metrics)?;
        registry
            .register(Box::new(metrics.dead_letters.clone()))
            .map_err(Error::Metrics)?;
        registry
            .register(Box::new(metrics.subscriptions.clone()))
            .map_err(Error::Metrics)?;
        registry
            .register(Box::new(metrics.gauge_refreshes.clone()))
            .map_err(Error::Metrics)?;
        Ok(metrics)
    }

    pub(crate) fn record(&self, method: &str, code: &str) {
        self.requests.with_label_values(&[method, code]).inc();
    }
}
