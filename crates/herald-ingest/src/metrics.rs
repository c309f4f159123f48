//! Ingest metrics, all prefixed `herald_ingest_`.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use crate::{Error, Result};

/// The ingest role's metrics.
#[derive(Clone)]
pub struct Metrics {
    /// Events received, by content mode.
    pub events_received: IntCounterVec,
    /// Events persisted, by whether JetStream saw them as duplicates.
    pub events_accepted: IntCounterVec,
    /// Requests refused, by HTTP status.
    pub requests_rejected: IntCounterVec,
    /// Time from request to publish acknowledgement, by content mode.
    pub publish_duration: HistogramVec,
}

impl Metrics {
    pub fn register(registry: &Registry) -> Result<Metrics> {
        let metrics = Metrics {
            events_received: IntCounterVec::new(
                Opts::new(
                    "herald_ingest_events_received_total",
                    "Events received over HTTP",
                ),
                &["mode"],
            )
            .map_err(Error::Metrics)?,
            events_accepted: IntCounterVec::new(
                Opts::new(
                    "herald_ingest_events_accepted_total",
                    "Events persisted to JetStream",
                ),
                &["duplicate"],
            )
            .map_err(Error::Metrics)?,
            requests_rejected: IntCounterVec::new(
                Opts::new("herald_ingest_requests_rejected_total", "Requests refused"),
                &["status"],
            )
            .map_err(Error::Metrics)?,
            publish_duration: HistogramVec::new(
                HistogramOpts::new(
                    "herald_ingest_publish_duration_seconds",
                    "Time until JetStream acknowledged the request's events",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ]),
                &["mode"],
            )
            .map_err(Error::Metrics)?,
        };
        registry
            .register(Box::new(metrics.events_received.clone()))
            .map_err(Error::Metrics)?;
        registry
            .register(Box::new(metrics.events_accepted.clone()))
            .map_err(Error::Metrics)?;
        registry
            .register(Box::new(metrics.requests_rejected.clone()))
            .map_err(Error::Metrics)?;
        registry
            .register(Box::new(metrics.publish_duration.clone()))
            .map_err(Error::Metrics)?;
        Ok(metrics)
    }
}
