//! Dispatcher metrics, all prefixed `herald_dispatch_`. Labels are bounded: no ids, no URLs.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::Result;

/// The dispatcher's metrics.
#[derive(Clone)]
pub struct Metrics {
    /// Delivery attempts, by outcome (`delivered`, `retry`) and status class (`2xx`, ..., `error`).
    pub attempts: IntCounterVec,
    /// Attempt duration, by outcome.
    pub attempt_duration: HistogramVec,
    /// Events a subscription's filters did not match (after NATS pre-filtering).
    pub events_filtered: IntCounterVec,
    /// `sql` and `cel` filter expressions that failed to evaluate on an event, by dialect; such an
    /// event does not match.
    pub filter_errors: IntCounterVec,
    /// Stored messages moved to the rejected-events stream, by reason (only direct NATS
    /// producers can cause it); counted once per message, however many subscriptions saw it.
    pub events_rejected: IntCounterVec,
    /// Subscriptions with a running worker.
    pub subscriptions: IntGauge,
    /// Events dead-lettered, by reason.
    pub dead_letters: IntCounterVec,
    /// Subscriptions Herald disabled (410 Gone, or failing past the threshold).
    pub subscriptions_disabled: IntCounter,
    /// Records that could not be written, by kind (`attempt`, `dead_letter`, ...).
    pub records_failed: IntCounterVec,
    /// Delivery workers restarted after they panicked or ended on their own.
    pub worker_restarts: IntCounter,
    /// Subscriptions whose worker ended and waits for its restart (not ready while > 0).
    pub subscriptions_unserved: IntGauge,
    /// Subscriptions parked: idle, holding no pull, woken by the next event for them.
    pub subscriptions_parked: IntGauge,
    /// Parked subscriptions woken, by cause: `event` (a wake-up for one of its subjects),
    /// `gap` (wake-ups were missed: all are woken), `stopped` (the follower stopped following),
    /// `recheck` (its own look at its consumer found something).
    pub subscriptions_woken: IntCounterVec,
    /// Deliveries whose processing panicked; the event is redelivered after the ack wait.
    pub delivery_panics: IntCounter,
    /// Failed attempts handed to the retry backlog (`HERALD_RETRIES`) for a later attempt.
    pub retries_scheduled: IntCounter,
    /// Events of an ordered key moved to its hold while an earlier event of the key waits.
    pub events_held: IntCounter,
    /// Held events released from their key's hold for delivery.
    pub events_released: IntCounter,
    /// Test sends (`SendTestEvent`), by result class (`2xx`, ..., or the failure class); never
    /// counted in `attempts`.
    pub test_sends: IntCounterVec,
    /// Deliveries, test sends and consent handshakes the egress proxy failed: it could not be
    /// reached, refused the tunnel or asked for credentials.
    pub egress_proxy_failures: IntCounter,
}

impl Metrics {
    pub fn register(registry: &Registry) -> Result<Metrics> {
        let metrics = Metrics {
            attempts: IntCounterVec::new(
                Opts::new("herald_dispatch_attempts_total", "Delivery attempts"),
                &["outcome", "status_class"],
            )?,
            attempt_duration: HistogramVec::new(
                HistogramOpts::new(
                    "herald_dispatch_attempt_duration_seconds",
                    "Duration of delivery attempts",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 15.0,
                ]),
                &["outcome"],
            )?,
            events_filtered: IntCounterVec::new(
                Opts::new(
                    "herald_dispatch_events_filtered_total",
                    "Events skipped by filters",
                ),
                &["reason"],
            )?,
            filter_errors: IntCounterVec::new(
                Opts::new(
                    "herald_dispatch_filter_errors_total",
                    "Filter expressions that failed to evaluate on an event",
                ),
                &["dialect"],
            )?,
            events_rejected: IntCounterVec::new(
                Opts::new(
                    "herald_dispatch_events_rejected_total",
                    "Stored messages moved to the rejected-events stream",
                ),
                &["reason"],
            )?,
            subscriptions: IntGauge::new(
                "herald_dispatch_subscriptions",
                "Subscriptions with a running delivery worker",
            )?,
            dead_letters: IntCounterVec::new(
                Opts::new("herald_dispatch_dead_letters_total", "Events dead-lettered"),
                &["reason"],
            )?,
            subscriptions_disabled: IntCounter::new(
                "herald_dispatch_subscriptions_disabled_total",
                "Subscriptions disabled by Herald",
            )?,
            records_failed: IntCounterVec::new(
                Opts::new(
                    "herald_dispatch_records_failed_total",
                    "Delivery records that could not be written",
                ),
                &["kind"],
            )?,
            worker_restarts: IntCounter::new(
                "herald_dispatch_worker_restarts_total",
                "Delivery workers restarted after they panicked or ended on their own",
            )?,
            subscriptions_unserved: IntGauge::new(
                "herald_dispatch_subscriptions_unserved",
                "Subscriptions whose delivery worker ended and waits for its restart",
            )?,
            subscriptions_parked: IntGauge::new(
                "herald_dispatch_subscriptions_parked",
                "Idle subscriptions holding no pull, woken by the next event stored for them",
            )?,
            subscriptions_woken: IntCounterVec::new(
                Opts::new(
                    "herald_dispatch_subscriptions_woken_total",
                    "Parked subscriptions woken, by cause",
                ),
                &["cause"],
            )?,
            delivery_panics: IntCounter::new(
                "herald_dispatch_delivery_panics_total",
                "Deliveries whose processing panicked",
            )?,
            retries_scheduled: IntCounter::new(
                "herald_dispatch_retries_scheduled_total",
                "Failed attempts handed to the retry backlog for a later attempt",
            )?,
            events_held: IntCounter::new(
                "herald_dispatch_events_held_total",
                "Events of an ordered key moved out of the live consumer while an earlier event of the key waits",
            )?,
            events_released: IntCounter::new(
                "herald_dispatch_events_released_total",
                "Held events released from their key's hold for delivery",
            )?,
            test_sends: IntCounterVec::new(
                Opts::new(
                    "herald_dispatch_test_sends_total",
                    "Test events sent to one subscription on request",
                ),
                &["result"],
            )?,
            egress_proxy_failures: egress_proxy_failures()?,
        };
        registry.register(Box::new(metrics.egress_proxy_failures.clone()))?;
        registry.register(Box::new(metrics.test_sends.clone()))?;
        registry.register(Box::new(metrics.events_held.clone()))?;
        registry.register(Box::new(metrics.events_released.clone()))?;
        registry.register(Box::new(metrics.retries_scheduled.clone()))?;
        registry.register(Box::new(metrics.worker_restarts.clone()))?;
        registry.register(Box::new(metrics.subscriptions_unserved.clone()))?;
        registry.register(Box::new(metrics.subscriptions_parked.clone()))?;
        registry.register(Box::new(metrics.subscriptions_woken.clone()))?;
        registry.register(Box::new(metrics.delivery_panics.clone()))?;
        registry.register(Box::new(metrics.dead_letters.clone()))?;
        registry.register(Box::new(metrics.subscriptions_disabled.clone()))?;
        registry.register(Box::new(metrics.records_failed.clone()))?;
        registry.register(Box::new(metrics.attempts.clone()))?;
        registry.register(Box::new(metrics.attempt_duration.clone()))?;
        registry.register(Box::new(metrics.events_filtered.clone()))?;
        registry.register(Box::new(metrics.filter_errors.clone()))?;
        registry.register(Box::new(metrics.events_rejected.clone()))?;
        registry.register(Box::new(metrics.subscriptions.clone()))?;
        Ok(metrics)
    }
}

/// `herald_dispatch_egress_proxy_failures_total`, unregistered: the delivery client counts into
/// one of its own until the service hands it the registered one.
pub(crate) fn egress_proxy_failures() -> prometheus::Result<IntCounter> {
    IntCounter::new(
        "herald_dispatch_egress_proxy_failures_total",
        "Requests the egress proxy failed: unreachable, tunnel refused or credentials asked for",
    )
}
