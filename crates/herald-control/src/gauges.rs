//! The gauges of what waits for each subscription: its consumers' lag and unacknowledged
//! deliveries, its retry backlog and its dead letters, read from NATS every
//! `subscription_metrics.interval` by a task the control service owns.
//!
//! Control computes them because it is the one process that sees every subscription whoever
//! delivers it, and reading them here keeps the dispatchers' delivery path untouched. Each read
//! is a fixed handful of JetStream API calls ([`herald_nats::Backlogs::read`]). Labels are
//! bounded: at most `subscription_metrics.max_subscriptions` subscriptions have series of their
//! own (those with the most waiting), the rest are summed under `subscription_id="_other"`; the
//! series of a subscription that is gone, or no longer among them, are removed at the next
//! read. A read that fails leaves every gauge as it was and counts `result="error"`.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};

use prometheus::IntGaugeVec;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use herald_core::SubscriptionId;
use herald_nats::{Backlog, Backlogs, ConsumerLevel, EVENTS_STREAM, Nats, RETRIES_STREAM};

use crate::config::SubscriptionMetricsConfig;
use crate::metrics::Metrics;

/// The `subscription_id` of the series summing the subscriptions beyond the limit.
pub(crate) const OTHER: &str = "_other";

/// What the gauge task needs: the connection it reads through, the gauges it sets, and how
/// often (`None`: no task).
pub(crate) struct Setup {
    pub(crate) nats: Nats,
    pub(crate) metrics: Metrics,
    pub(crate) config: Option<SubscriptionMetricsConfig>,
}

/// The running gauge task, stopped with the service.
pub(crate) struct GaugeTask {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl GaugeTask {
    /// Starts reading the gauges now and then every `config.interval`, until `shutdown` is
    /// cancelled or [`GaugeTask::stop`] is called; `None` when `setup` has no configuration.
    pub(crate) fn spawn(setup: Setup, shutdown: &CancellationToken) -> Option<GaugeTask> {
        let config = setup.config?;
        let stop = shutdown.child_token();
        let task = tokio::spawn(
            run(setup.nats, setup.metrics, config, stop.clone())
                .instrument(tracing::info_span!("task", name = "subscription_gauges")),
        );
        Some(GaugeTask { stop, task })
    }

    /// Stops the task and waits for it to end.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "the subscription gauge task panicked");
        }
    }
}

async fn run(
    nats: Nats,
    metrics: Metrics,
    config: SubscriptionMetricsConfig,
    stop: CancellationToken,
) {
    let mut gauges = Gauges::new(&metrics, config.max_subscriptions);
    let mut backlogs: Option<Backlogs> = None;
    let mut failing = false;
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let read = tokio::select! {
            () = stop.cancelled() => return,
            read = read(&nats, &mut backlogs) => read,
        };
        match read {
            Ok(read) => {
                if failing {
                    tracing::info!("subscription gauges read again");
                    failing = false;
                }
                gauges.update(&read);
                metrics.gauge_refreshes.with_label_values(&["ok"]).inc();
            }
            Err(err) => {
                // Once per run of failures: NATS being away is reported elsewhere too.
                if !failing {
                    tracing::warn!(error = %err, "failed to read the subscription gauges; keeping the last values");
                    failing = true;
                }
                metrics.gauge_refreshes.with_label_values(&["error"]).inc();
            }
        }
    }
}

/// Reads every subscription's backlog, opening the reader first if need be.
async fn read(
    nats: &Nats,
    backlogs: &mut Option<Backlogs>,
) -> herald_nats::Result<BTreeMap<SubscriptionId, Backlog>> {
    let reader = match backlogs {
        Some(reader) => reader,
        None => backlogs.insert(nats.backlogs().await?),
    };
    reader.read().await
}

/// The gauges and the series each last exported, so that those not read again are removed.
struct Gauges {
    subscriptions: prometheus::IntGauge,
    consumer_lag: Series,
    consumer_ack_pending: Series,
    retry_backlog: Series,
    dead_letters: Series,
    max_subscriptions: usize,
}

impl Gauges {
    fn new(metrics: &Metrics, max_subscriptions: usize) -> Gauges {
        Gauges {
            subscriptions: metrics.subscriptions.clone(),
            consumer_lag: Series::new(&metrics.consumer_lag),
            consumer_ack_pending: Series::new(&metrics.consumer_ack_pending),
            retry_backlog: Series::new(&metrics.retry_backlog),
            dead_letters: Series::new(&metrics.dead_letters),
            max_subscriptions,
        }
    }

    /// Sets every gauge to `read`, removing the series of subscriptions it no longer has.
    fn update(&mut self, read: &BTreeMap<SubscriptionId, Backlog>) {
        self.subscriptions
            .set(i64::try_from(read.len()).unwrap_or(i64::MAX));
        let labelled = bounded(read, self.max_subscriptions);
        let mut lag = Vec::new();
        let mut ack_pending = Vec::new();
        let mut retry_backlog = Vec::new();
        let mut dead_letters = Vec::new();
        for (subscription, backlog) in &labelled {
            for (stream, level) in [
                (EVENTS_STREAM, backlog.events),
                (RETRIES_STREAM, backlog.retries),
            ] {
                if let Some(level) = level {
                    let labels = vec![subscription.clone(), stream.to_owned()];
                    lag.push((labels.clone(), level.pending));
                    ack_pending.push((labels, level.ack_pending));
                }
            }
            for (state, count) in [
                ("scheduled", backlog.retries_scheduled),
                ("due", backlog.retries_due),
                ("held", backlog.held),
            ] {
                retry_backlog.push((vec![subscription.clone(), state.to_owned()], count));
            }
            dead_letters.push((vec![subscription.clone()], backlog.dead_letters));
        }
        self.consumer_lag.set(lag);
        self.consumer_ack_pending.set(ack_pending);
        self.retry_backlog.set(retry_backlog);
        self.dead_letters.set(dead_letters);
    }
}

/// One gauge family and the label values it last exported.
struct Series {
    gauge: IntGaugeVec,
    exported: HashSet<Vec<String>>,
}

impl Series {
    fn new(gauge: &IntGaugeVec) -> Series {
        Series {
            gauge: gauge.clone(),
            exported: HashSet::new(),
        }
    }

    /// Sets exactly `values`: series set before and missing now are removed (never reset
    /// all at once, so a scrape never sees the family empty between two reads).
    fn set(&mut self, values: Vec<(Vec<String>, u64)>) {
        let fresh: HashSet<Vec<String>> = values.iter().map(|(labels, _)| labels.clone()).collect();
        for labels in self.exported.difference(&fresh) {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            // Absent only if someone else removed it, which nothing does.
            let _ = self.gauge.remove_label_values(&labels);
        }
        for (labels, value) in &values {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            self.gauge
                .with_label_values(&labels)
                .set(i64::try_from(*value).unwrap_or(i64::MAX));
        }
        self.exported = fresh;
    }
}

/// The backlogs by `subscription_id` label value: every subscription's own when there are at
/// most `max_subscriptions`; otherwise the `max_subscriptions` with the most waiting (ties by
/// id, so the choice is stable) and the sum of the rest under [`OTHER`].
pub(crate) fn bounded(
    read: &BTreeMap<SubscriptionId, Backlog>,
    max_subscriptions: usize,
) -> BTreeMap<String, Backlog> {
    if read.len() <= max_subscriptions {
        return read
            .iter()
            .map(|(id, backlog)| (id.as_str().to_owned(), backlog.clone()))
            .collect();
    }
    let mut ranked: Vec<(&SubscriptionId, &Backlog)> = read.iter().collect();
    // `read` is ordered by id, and the sort is stable: ties keep the id order.
    ranked.sort_by_key(|(_, backlog)| std::cmp::Reverse(waiting(backlog)));
    let mut labelled: BTreeMap<String, Backlog> = BTreeMap::new();
    let mut other = Backlog::default();
    for (rank, (id, backlog)) in ranked.into_iter().enumerate() {
        if rank < max_subscriptions {
            labelled.insert(id.as_str().to_owned(), backlog.clone());
        } else {
            add(&mut other, backlog);
        }
    }
    labelled.insert(OTHER.to_owned(), other);
    labelled
}

/// How much waits for a subscription: what the ranking orders by.
fn waiting(backlog: &Backlog) -> u64 {
    let consumer = |level: Option<ConsumerLevel>| {
        level.map_or(0, |level| level.pending.saturating_add(level.ack_pending))
    };
    consumer(backlog.events)
        .saturating_add(backlog.retries_scheduled)
        .saturating_add(backlog.retries_due)
        .saturating_add(backlog.held)
        .saturating_add(backlog.dead_letters)
}

fn add(total: &mut Backlog, backlog: &Backlog) {
    let add_level = |total: &mut Option<ConsumerLevel>, level: Option<ConsumerLevel>| {
        if let Some(level) = level {
            let sum = total.get_or_insert_with(ConsumerLevel::default);
            sum.pending = sum.pending.saturating_add(level.pending);
            sum.ack_pending = sum.ack_pending.saturating_add(level.ack_pending);
        }
    };
    add_level(&mut total.events, backlog.events);
    add_level(&mut total.retries, backlog.retries);
    total.retries_scheduled = total
        .retries_scheduled
        .saturating_add(backlog.retries_scheduled);
    total.retries_due = total.retries_due.saturating_add(backlog.retries_due);
    total.held = total.held.saturating_add(backlog.held);
    total.dead_letters = total.dead_letters.saturating_add(backlog.dead_letters);
}
