//! Control-plane metrics, all prefixed `herald_control_`.

use prometheus::{IntCounterVec, Opts, Registry};

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
        };
        registry
            .register(Box::new(metrics.requests.clone()))
            .map_err(Error::Metrics)?;
        Ok(metrics)
    }

    pub(crate) fn record(&self, method: &str, code: &str) {
        self.requests.with_label_values(&[method, code]).inc();
    }
}
