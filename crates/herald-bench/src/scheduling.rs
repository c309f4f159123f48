//! The scheduler's workloads, each against an unordered W2 measured on the same cluster just
//! before them: W7 (ordered by key over 1,000 keys), W7b (one hot key), W8 (5% of events
//! failing permanently into a 10-minute retry) and the rate limiter's cost per event, end to
//! end (the dispatcher's CPU per delivery under a limit it never reaches) and alone (a timing
//! loop of the governor bucket, `limiter.rs`).
//!
//! Each workload has a subscription of its own, deleted when it ends, so nothing it leaves
//! behind (a hot key's backlog, W8's scheduled retries) reaches the next one.

use std::time::{Duration, Instant};

use serde_json::json;

use herald_proto::v1 as pb;

use crate::cluster::{Cluster, SubscriptionOptions, unsubscribe};
use crate::load::Mode;
use crate::receiver::{self, poisoned_among};
use crate::report::{Row, emit, note};
use crate::stats::{percentiles, round3};
use crate::{Bench, DeliveryRun, baseline, limiter};

/// W8: one event in this many fails permanently (5%).
const POISON_ONE_IN: u64 = 20;

/// W8's retry delay: longer than the suite, so no failing event comes back during the run.
const POISON_RETRY_DELAY: Duration = Duration::from_secs(600);

/// The limited subscription's rate and burst: the API's highest, far above what one
/// subscription reaches on this machine, so the bucket never makes an attempt wait.
const UNREACHED_RATE: u32 = 100_000;

/// What one subscription's delivery run measured.
struct Measured {
    per_second: f64,
    recording: receiver::Recording,
    complete: bool,
    elapsed: Duration,
    /// The dispatcher's CPU per unique delivery, in microseconds.
    dispatcher_us: f64,
    /// Each process's CPU per 1,000 deliveries and peak RSS (the cost table's line).
    processes: serde_json::Value,
}

impl Measured {
    /// Returns the figure's suffix when not every expected delivery arrived.
    fn incomplete(&self, expected: u64) -> String {
        if self.complete {
            return String::new();
        }
        format!(
            " (INCOMPLETE: {} of {expected} delivered)",
            self.recording.unique
        )
    }
}

/// The unordered W2 measured just before the scheduler's workloads, and the run's first W2.
struct Reference {
    per_second: f64,
    dispatcher_us: f64,
    first_w2: Option<f64>,
}

impl Reference {
    /// Returns `per_second` as a share of this W2, and of the run's first W2.
    fn ratios(&self, per_second: f64) -> (f64, Option<f64>) {
        (
            per_second / self.per_second.max(1.0),
            self.first_w2.map(|w2| per_second / w2.max(1.0)),
        )
    }
}

impl Bench {
    /// Runs W2 again as the reference, then W7 and W7b (`--only w7`), W8 (`w8`) and the
    /// limiter's cost (`limiter`); a workload that fails is reported as failed and the others
    /// still run.
    pub(crate) async fn scheduling(
        &mut self,
        cluster: &Cluster,
        first_w2: Option<f64>,
    ) -> anyhow::Result<()> {
        let reference = self.w2_reference(cluster, first_w2).await?;
        if self.wants("w7") {
            if let Err(err) = self.w7(cluster, &reference).await {
                self.failed("W7", "W7 ordered by key, 1,000 keys", "≥ 80% of W2", &err);
            }
            if let Err(err) = self.w7b(cluster).await {
                self.failed("W7b", "W7b ordered, one hot key", "report", &err);
            }
        }
        if self.wants("w8")
            && let Err(err) = self.w8(cluster, &reference).await
        {
            self.failed("W8", "W8 poison", "healthy ≥ 90% of W2", &err);
        }
        if self.wants("limiter") {
            if let Err(err) = self.limiter_end_to_end(cluster, &reference).await {
                self.failed("limiter", "Limiter end to end", "report", &err);
            }
            if let Err(err) = self.limiter_alone().await {
                self.failed("limiter", "Limiter alone", "< 2 µs per event", &err);
            }
        }
        Ok(())
    }

    /// W2 once more, unordered and unlimited, right before the workloads compared with it.
    async fn w2_reference(
        &mut self,
        cluster: &Cluster,
        first_w2: Option<f64>,
    ) -> anyhow::Result<Reference> {
        note("W2 again (unordered), the reference of W7, W8 and the limiter");
        let event_type = "bench.w2ref";
        let ids = self.subscribe_flowing(cluster, event_type, 1).await?;
        let num_events = self.pick(50_000, 5_000);
        let delivery_run = unordered(event_type, "w2ref", num_events);
        let measured = self
            .measure(cluster, "W2 (reference of W7, W8, limiter)", &delivery_run)
            .await;
        self.remove(cluster, &ids).await?;
        let reference = Reference {
            per_second: measured.per_second,
            dispatcher_us: measured.dispatcher_us,
            first_w2,
        };
        let (_, ratio_to_first) = reference.ratios(measured.per_second);
        emit(&json!({
            "workload": "W2", "profile": "default", "tag": "w2ref", "events": num_events,
            "delivered": measured.recording.unique, "duplicates": measured.recording.duplicates,
            "complete": measured.complete, "seconds": round3(measured.elapsed.as_secs_f64()),
            "deliveries_per_s": measured.per_second.round(),
            "dispatcher_us_per_delivery": round3(measured.dispatcher_us),
            "ratio_to_first_w2": ratio_to_first.map(round3),
            "latency": percentiles(measured.recording.latencies_ns.clone()),
            "processes": measured.processes,
        }));
        self.rows.push(Row {
            workload: format!(
                "W2 again, unordered, {num_events} events: the reference of W7, W8 and the limiter"
            ),
            profile: "default".to_owned(),
            figure: format!(
                "{:.0} deliveries/s{}; dispatcher {:.1} µs per delivery{}",
                measured.per_second,
                ratio_to_first
                    .map(|ratio| format!(" ({:.0}% of the first W2)", ratio * 100.0))
                    .unwrap_or_default(),
                measured.dispatcher_us,
                measured.incomplete(delivery_run.expected),
            ),
            target: "baseline".to_owned(),
            met: None,
        });
        Ok(reference)
    }

    /// W7: an ordered subscription (`ordering = key`), events spread over 1,000 keys.
    async fn w7(&mut self, cluster: &Cluster, reference: &Reference) -> anyhow::Result<()> {
        note("W7 ordered delivery over 1,000 keys");
        let num_keys = 1_000;
        let event_type = "bench.w7";
        let ids = self
            .subscribe_flowing_with(cluster, event_type, 1, &ordered())
            .await?;
        let num_events = self.pick(50_000, 5_000);
        let num_requests = num_events / 100;
        let delivery_run = DeliveryRun {
            event_type,
            run: "w7",
            mode: Mode::KeyedBatch {
                size: 100,
                num_keys,
            },
            senders: 8,
            num_requests,
            expected: num_requests * 100,
            timeout: Duration::from_secs(180),
        };
        let measured = self
            .measure(cluster, "W7 (ordered, 1,000 keys)", &delivery_run)
            .await;
        self.remove(cluster, &ids).await?;
        let (ratio, ratio_to_first) = reference.ratios(measured.per_second);
        emit(&json!({
            "workload": "W7", "profile": "default", "ordering": "key", "keys": num_keys,
            "events": num_events, "delivered": measured.recording.unique,
            "duplicates": measured.recording.duplicates, "complete": measured.complete,
            "seconds": round3(measured.elapsed.as_secs_f64()),
            "deliveries_per_s": measured.per_second.round(), "ratio_to_w2": round3(ratio),
            "ratio_to_first_w2": ratio_to_first.map(round3),
            "dispatcher_us_per_delivery": round3(measured.dispatcher_us),
            "latency": percentiles(measured.recording.latencies_ns.clone()),
            "processes": measured.processes,
        }));
        self.rows.push(Row {
            workload: format!(
                "W7 ordered by key (`partitionkey`), 1,000 keys, {num_events} events"
            ),
            profile: "default".to_owned(),
            figure: format!(
                "{:.0} deliveries/s = {:.0}% of W2 ({:.0}/s just before); dispatcher {:.1} µs per delivery (W2 {:.1}){}",
                measured.per_second,
                ratio * 100.0,
                reference.per_second,
                measured.dispatcher_us,
                reference.dispatcher_us,
                measured.incomplete(delivery_run.expected),
            ),
            target: "≥ 80% of W2".to_owned(),
            met: Some(measured.complete && ratio >= 0.8),
        });
        Ok(())
    }

    /// W7b: an ordered subscription whose events all carry the same key, so they are delivered
    /// one at a time; published by one sender, so index order is stream order and the receiver
    /// can tell whether the key's order held.
    async fn w7b(&mut self, cluster: &Cluster) -> anyhow::Result<()> {
        note("W7b ordered delivery, one hot key");
        let event_type = "bench.w7b";
        let ids = self
            .subscribe_flowing_with(cluster, event_type, 1, &ordered())
            .await?;
        let num_events = self.pick(5_000, 500);
        let num_requests = num_events / 100;
        let delivery_run = DeliveryRun {
            event_type,
            run: "w7b",
            mode: Mode::KeyedBatch {
                size: 100,
                num_keys: 1,
            },
            senders: 1,
            num_requests,
            expected: num_requests * 100,
            timeout: self.pick(Duration::from_secs(60), Duration::from_secs(30)),
        };
        let measured = self
            .measure(cluster, "W7b (ordered, one key)", &delivery_run)
            .await;
        self.remove(cluster, &ids).await?;
        // Deliveries still under way when the subscription was deleted must not count for the
        // next workload.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.receiver.reset(0.0);
        let out_of_order = measured.recording.out_of_order;
        emit(&json!({
            "workload": "W7b", "profile": "default", "ordering": "key", "keys": 1,
            "events": num_events, "delivered": measured.recording.unique,
            "duplicates": measured.recording.duplicates, "out_of_order": out_of_order,
            "complete": measured.complete, "seconds": round3(measured.elapsed.as_secs_f64()),
            "deliveries_per_s": measured.per_second.round(),
            "dispatcher_us_per_delivery": round3(measured.dispatcher_us),
            "latency": percentiles(measured.recording.latencies_ns.clone()),
            "processes": measured.processes,
        }));
        self.rows.push(Row {
            workload: format!("W7b ordered, one hot key, {num_events} events"),
            profile: "default".to_owned(),
            figure: format!(
                "{:.0} deliveries/s, one at a time; {out_of_order} out of key order; dispatcher {:.1} µs per delivery{}",
                measured.per_second,
                measured.dispatcher_us,
                measured.incomplete(delivery_run.expected),
            ),
            target: "report (one at a time by design)".to_owned(),
            // No target; only a broken order counts as missed.
            met: (out_of_order > 0).then_some(false),
        });
        Ok(())
    }

    /// W8: 5% of events fail at the receiver on every attempt, under a retry policy whose first
    /// retry comes after 10 minutes; measures the healthy 95%.
    async fn w8(&mut self, cluster: &Cluster, reference: &Reference) -> anyhow::Result<()> {
        note("W8 poison: 5% of events fail permanently, first retry after 10 minutes");
        let event_type = "bench.w8";
        let options = SubscriptionOptions {
            retry_delay: Some(POISON_RETRY_DELAY),
            delivery: None,
        };
        let ids = self
            .subscribe_flowing_with(cluster, event_type, 1, &options)
            .await?;
        let num_events = self.pick(50_000, 5_000);
        let num_requests = num_events / 100;
        let num_poisoned = poisoned_among(num_requests * 100, POISON_ONE_IN);
        let delivery_run = DeliveryRun {
            expected: num_requests * 100 - num_poisoned,
            ..unordered(event_type, "w8", num_events)
        };
        // After the warm-up, whose event would be poisoned too.
        self.receiver.poison(POISON_ONE_IN);
        let measured = self
            .measure(cluster, "W8 (poison, per healthy delivery)", &delivery_run)
            .await;
        let num_scheduled = scheduled_retries(
            &cluster.nats_url,
            &ids[0],
            num_poisoned,
            Duration::from_secs(10),
        )
        .await?;
        // Deleting the subscription purges its scheduled retries.
        self.remove(cluster, &ids).await?;
        self.receiver.reset(0.0);
        let (ratio, ratio_to_first) = reference.ratios(measured.per_second);
        emit(&json!({
            "workload": "W8", "profile": "default", "events": num_events,
            "failing_permanently": num_poisoned, "first_retry_s": POISON_RETRY_DELAY.as_secs(),
            "healthy_delivered": measured.recording.unique,
            "failed_attempts": measured.recording.failed_on_purpose,
            "scheduled_retries": num_scheduled, "duplicates": measured.recording.duplicates,
            "complete": measured.complete, "seconds": round3(measured.elapsed.as_secs_f64()),
            "healthy_deliveries_per_s": measured.per_second.round(),
            "ratio_to_w2": round3(ratio), "ratio_to_first_w2": ratio_to_first.map(round3),
            "dispatcher_us_per_delivery": round3(measured.dispatcher_us),
            "latency": percentiles(measured.recording.latencies_ns.clone()),
            "processes": measured.processes,
        }));
        self.rows.push(Row {
            workload: format!(
                "W8 poison: 5% of {num_events} events fail permanently, first retry after 10 min"
            ),
            profile: "default".to_owned(),
            figure: format!(
                "healthy 95%: {:.0} deliveries/s = {:.0}% of W2 ({:.0}/s just before); {num_scheduled} of {num_poisoned} failing events in the retry backlog{}",
                measured.per_second,
                ratio * 100.0,
                reference.per_second,
                measured.incomplete(delivery_run.expected),
            ),
            target: "healthy ≥ 90% of W2".to_owned(),
            met: Some(measured.complete && ratio >= 0.9 && num_scheduled >= num_poisoned),
        });
        Ok(())
    }

    /// The limiter end to end: W2 on a subscription limited far above what it reaches, its
    /// dispatcher CPU per delivery against the reference W2's.
    async fn limiter_end_to_end(
        &mut self,
        cluster: &Cluster,
        reference: &Reference,
    ) -> anyhow::Result<()> {
        note("limiter: W2 under a rate limit it never reaches");
        let event_type = "bench.limited";
        let options = SubscriptionOptions {
            retry_delay: None,
            delivery: Some(pb::DeliverySettings {
                rate_limit: Some(pb::RateLimit {
                    per_second: UNREACHED_RATE,
                    burst: UNREACHED_RATE,
                }),
                ..Default::default()
            }),
        };
        let ids = self
            .subscribe_flowing_with(cluster, event_type, 1, &options)
            .await?;
        let num_events = self.pick(50_000, 5_000);
        let delivery_run = unordered(event_type, "limited", num_events);
        let measured = self
            .measure(cluster, "W2 rate-limited (limiter)", &delivery_run)
            .await;
        self.remove(cluster, &ids).await?;
        let (ratio, _) = reference.ratios(measured.per_second);
        let extra_us = measured.dispatcher_us - reference.dispatcher_us;
        emit(&json!({
            "workload": "limiter", "method": "dispatcher_cpu", "profile": "default",
            "rate_per_s": UNREACHED_RATE, "burst": UNREACHED_RATE, "events": num_events,
            "delivered": measured.recording.unique, "complete": measured.complete,
            "deliveries_per_s": measured.per_second.round(), "ratio_to_w2": round3(ratio),
            "dispatcher_us_per_delivery": round3(measured.dispatcher_us),
            "w2_dispatcher_us_per_delivery": round3(reference.dispatcher_us),
            "extra_us_per_delivery": round3(extra_us),
            "processes": measured.processes,
        }));
        self.rows.push(Row {
            workload: format!(
                "Limiter end to end: W2 limited to {UNREACHED_RATE}/s (never reached), {num_events} events"
            ),
            profile: "default".to_owned(),
            figure: format!(
                "dispatcher {:.1} µs per delivery against W2's {:.1}: {extra_us:+.1} µs; {:.0} deliveries/s = {:.0}% of W2{}",
                measured.dispatcher_us,
                reference.dispatcher_us,
                measured.per_second,
                ratio * 100.0,
                measured.incomplete(delivery_run.expected),
            ),
            target: "report: two runs differ by more than 2 µs anyway; the limiter alone is the next row".to_owned(),
            met: None,
        });
        Ok(())
    }

    /// The limiter alone: `limiter::measure`'s timing loops, on a blocking thread.
    async fn limiter_alone(&mut self) -> anyhow::Result<()> {
        note("limiter alone: timing loop of governor's check()");
        let (iterations, rounds) = self.pick((5_000_000, 5), (500_000, 3));
        let cost =
            tokio::task::spawn_blocking(move || limiter::measure(iterations, rounds)).await?;
        let per_event_ns = cost.per_event_ns();
        emit(&json!({
            "workload": "limiter", "method": "governor_check", "iterations": cost.iterations,
            "rounds": rounds, "check_ns": round3(cost.check_ns),
            "baseline_ns": round3(cost.baseline_ns), "per_event_ns": round3(per_event_ns),
            "refused": cost.refused,
        }));
        self.rows.push(Row {
            workload: format!(
                "Limiter alone: governor `check()` on the dispatcher's bucket type, in-process loop, best of {rounds} × {iterations}"
            ),
            profile: "".to_owned(),
            figure: format!(
                "{per_event_ns:.1} ns per event ({:.1} ns per checked iteration − {:.1} ns per empty one){}",
                cost.check_ns,
                cost.baseline_ns,
                if cost.refused > 0 {
                    format!("; {} checks refused", cost.refused)
                } else {
                    String::new()
                }
            ),
            target: "< 2 µs per event".to_owned(),
            met: Some(cost.refused == 0 && per_event_ns < 2_000.0),
        });
        Ok(())
    }

    /// Runs `delivery_run` between two snapshots of the cluster; records its line of the cost
    /// table under `cost_label`.
    async fn measure(
        &mut self,
        cluster: &Cluster,
        cost_label: &str,
        delivery_run: &DeliveryRun<'_>,
    ) -> Measured {
        let before = cluster.snapshot();
        let (per_second, recording, complete, elapsed) =
            self.deliver_run(cluster, delivery_run).await;
        let after = cluster.snapshot();
        let dispatcher_cpu = match (
            before.samples.get("dispatcher"),
            after.samples.get("dispatcher"),
        ) {
            (Some(start), Some(end)) => end.cpu.saturating_sub(start.cpu).as_secs_f64(),
            _ => 0.0,
        };
        let dispatcher_us = dispatcher_cpu / recording.unique.max(1) as f64 * 1e6;
        let processes = self.cost(cost_label, "default", &before, &after, recording.unique);
        Measured {
            per_second,
            recording,
            complete,
            elapsed,
            dispatcher_us,
            processes,
        }
    }

    /// Deletes the subscriptions a workload created.
    async fn remove(&self, cluster: &Cluster, ids: &[String]) -> anyhow::Result<()> {
        let mut control = cluster.control().await?;
        for id in ids {
            unsubscribe(&mut control, id).await?;
        }
        Ok(())
    }

    /// Reports a workload that could not run, as a JSON line and a missed row.
    fn failed(&mut self, workload: &str, what: &str, target: &str, err: &anyhow::Error) {
        note(&format!("{workload} failed: {err:#}"));
        emit(&json!({"workload": workload, "failed": format!("{err:#}")}));
        self.rows.push(Row {
            workload: what.to_owned(),
            profile: "default".to_owned(),
            figure: format!("failed: {err:#}"),
            target: target.to_owned(),
            met: Some(false),
        });
    }
}

/// Returns W2's shape: batches of 100 unkeyed events from 8 senders, every one expected.
fn unordered<'a>(event_type: &'a str, run: &'a str, num_events: u64) -> DeliveryRun<'a> {
    let num_requests = num_events / 100;
    DeliveryRun {
        event_type,
        run,
        mode: Mode::Batch(100),
        senders: 8,
        num_requests,
        expected: num_requests * 100,
        timeout: Duration::from_secs(180),
    }
}

/// Returns the options of an ordered subscription (`delivery.ordering = key`).
fn ordered() -> SubscriptionOptions {
    SubscriptionOptions {
        retry_delay: None,
        delivery: Some(pb::DeliverySettings {
            ordering: pb::delivery_settings::Ordering::Key.into(),
            ..Default::default()
        }),
    }
}

/// Waits until `expected` retries of a subscription are scheduled in `HERALD_RETRIES` (the
/// failing events' first attempts run among the healthy deliveries, the last ones may still be
/// finishing), or `patience` passed; returns how many are.
async fn scheduled_retries(
    nats_url: &str,
    subscription_id: &str,
    expected: u64,
    patience: Duration,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + patience;
    loop {
        let scheduled = baseline::scheduled_retries(nats_url, subscription_id).await?;
        if scheduled >= expected || Instant::now() >= deadline {
            return Ok(scheduled);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
