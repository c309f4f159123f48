//! The load generator: keep-alive HTTP/1.1 POSTs of ~1 KiB CloudEvents.
//!
//! Closed loop (a fixed number of workers, each sending its next request when the previous one
//! was answered) measures capacity; open loop (sends scheduled by the clock, whatever the
//! answers) measures latency at a fixed rate, queueing included. Every event carries the time it
//! was meant to be sent in `data.sent_ns` (unix nanoseconds), which the receiver turns into
//! end-to-end latency. Requests to ingest carry the roles' bearer token (`cluster::API_TOKEN`).
//! Keyed batches give each event a CloudEvents `partitionkey` extension, for ordered
//! subscriptions (W7, W7b).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::API_TOKEN;
use crate::stats::{mix, unix_nanos};

/// Size of one event's JSON, padding included.
pub(crate) const EVENT_BYTES: usize = 1024;

/// What a request carries and where it goes.
#[derive(Clone)]
pub(crate) enum Mode {
    /// One event per request, `application/cloudevents+json`, to ingest, with the bearer token.
    Structured,
    /// `size` events per request, `application/cloudevents-batch+json`, to ingest, with the
    /// bearer token.
    Batch(usize),
    /// As `Batch`, each event with a `partitionkey` of `num_keys` keys (`key-<k>`), drawn from
    /// the event's index by a pseudo-random spread, as unrelated producers' keys interleave.
    KeyedBatch { size: usize, num_keys: u64 },
    /// One event per request straight to the receiver, signed as the dispatcher would sign it.
    SignedDirect(Arc<herald_signing::Secret>),
}

/// When a closed loop stops.
#[derive(Clone, Copy)]
pub(crate) enum Until {
    /// After this many requests.
    Requests(u64),
    /// After this long.
    Elapsed(Duration),
}

/// What a closed loop measured.
pub(crate) struct LoopResult {
    pub(crate) events_accepted: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
    pub(crate) latencies_ns: Vec<u64>,
}

/// Returns an HTTP client for the load: keep-alive, no timeouts beyond a generous one.
pub(crate) fn client(max_connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(max_connections)
        .tcp_nodelay(true)
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// Returns one structured event of about [`EVENT_BYTES`] bytes.
pub(crate) fn event_json(id: &str, event_type: &str, sent_ns: u64) -> String {
    keyed_event_json(id, event_type, None, sent_ns)
}

/// Returns one structured event of about [`EVENT_BYTES`] bytes, with a `partitionkey` when
/// `key` is set.
pub(crate) fn keyed_event_json(
    id: &str,
    event_type: &str,
    key: Option<&str>,
    sent_ns: u64,
) -> String {
    let extension = key
        .map(|key| format!(r#""partitionkey":"{key}","#))
        .unwrap_or_default();
    let head = format!(
        r#"{{"specversion":"1.0","id":"{id}","source":"/herald-bench","type":"{event_type}",{extension}"datacontenttype":"application/json","data":{{"sent_ns":{sent_ns},"pad":""#
    );
    let tail = r#""}}"#;
    let pad = EVENT_BYTES.saturating_sub(head.len() + tail.len());
    let mut json = String::with_capacity(EVENT_BYTES);
    json.push_str(&head);
    json.extend(std::iter::repeat_n('x', pad));
    json.push_str(tail);
    json
}

/// Sends with `concurrency` workers until `until`; ids are `<run>-<n>`.
pub(crate) async fn closed_loop(
    client: &reqwest::Client,
    url: &str,
    mode: Mode,
    concurrency: usize,
    until: Until,
    event_type: &str,
    run: &str,
) -> LoopResult {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.to_owned();
        let mode = mode.clone();
        let next = Arc::clone(&next);
        let event_type = event_type.to_owned();
        let run = run.to_owned();
        workers.spawn(async move {
            let mut accepted = 0_u64;
            let mut errors = 0_u64;
            let mut latencies = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let done = match until {
                    Until::Requests(total) => index >= total,
                    Until::Elapsed(limit) => started.elapsed() >= limit,
                };
                if done {
                    break;
                }
                let sent = Instant::now();
                let (request, num_events) =
                    build_request(&client, &url, &mode, index, &event_type, &run);
                let ok = match request.send().await {
                    Ok(response) => {
                        let status = response.status();
                        let _ = response.bytes().await;
                        status.is_success()
                    }
                    Err(_) => false,
                };
                if ok {
                    accepted += num_events;
                    latencies.push(sent.elapsed().as_nanos() as u64);
                } else {
                    errors += 1;
                }
            }
            (accepted, errors, latencies)
        });
    }
    let mut result = LoopResult {
        events_accepted: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_ns: Vec::new(),
    };
    while let Some(joined) = workers.join_next().await {
        let Ok((accepted, errors, latencies)) = joined else {
            result.errors += 1;
            continue;
        };
        result.events_accepted += accepted;
        result.errors += errors;
        result.latencies_ns.extend(latencies);
    }
    result.elapsed = started.elapsed();
    result
}

fn build_request(
    client: &reqwest::Client,
    url: &str,
    mode: &Mode,
    index: u64,
    event_type: &str,
    run: &str,
) -> (reqwest::RequestBuilder, u64) {
    match mode {
        Mode::Structured => {
            let body = event_json(&format!("{run}-{index}"), event_type, unix_nanos());
            let request = client
                .post(url)
                .bearer_auth(API_TOKEN)
                .header("content-type", "application/cloudevents+json")
                .body(body);
            (request, 1)
        }
        Mode::Batch(size) => {
            let first = index * *size as u64;
            let sent_ns = unix_nanos();
            let members: Vec<String> = (first..first + *size as u64)
                .map(|n| event_json(&format!("{run}-{n}"), event_type, sent_ns))
                .collect();
            let body = format!("[{}]", members.join(","));
            let request = client
                .post(url)
                .bearer_auth(API_TOKEN)
                .header("content-type", "application/cloudevents-batch+json")
                .body(body);
            (request, *size as u64)
        }
        Mode::KeyedBatch { size, num_keys } => {
            let first = index * *size as u64;
            let sent_ns = unix_nanos();
            let members: Vec<String> = (first..first + *size as u64)
                .map(|n| {
                    let key = format!("key-{}", key_index(n, *num_keys));
                    keyed_event_json(&format!("{run}-{n}"), event_type, Some(&key), sent_ns)
                })
                .collect();
            let body = format!("[{}]", members.join(","));
            let request = client
                .post(url)
                .bearer_auth(API_TOKEN)
                .header("content-type", "application/cloudevents-batch+json")
                .body(body);
            (request, *size as u64)
        }
        Mode::SignedDirect(secret) => {
            let message_id = format!("msg_{run}_{index}");
            let body = event_json(&format!("{run}-{index}"), event_type, unix_nanos());
            let timestamp = (unix_nanos() / 1_000_000_000) as i64;
            let signature = herald_signing::sign(secret, &message_id, timestamp, body.as_bytes());
            let request = client
                .post(url)
                .header("content-type", "application/cloudevents+json")
                .header(herald_signing::HEADER_ID, message_id)
                .header(herald_signing::HEADER_TIMESTAMP, timestamp.to_string())
                .header(herald_signing::HEADER_SIGNATURE, signature)
                .body(body);
            (request, 1)
        }
    }
}

/// Returns the key of event `index` among `num_keys` (0 to `num_keys - 1`).
fn key_index(index: u64, num_keys: u64) -> u64 {
    mix(index) % num_keys.max(1)
}

/// Sends `rate` single events per second for `duration` to ingest (with the bearer token), each
/// at its scheduled time whatever the answers to earlier ones.
pub(crate) async fn open_loop(
    client: &reqwest::Client,
    url: &str,
    rate: u64,
    duration: Duration,
    event_type: &str,
    run: &str,
) -> OpenLoop {
    let total = (rate as f64 * duration.as_secs_f64()) as u64;
    let interval_ns = 1_000_000_000 / rate.max(1);
    let start = tokio::time::Instant::now();
    let mut sends = tokio::task::JoinSet::new();
    for index in 0..total {
        let offset = Duration::from_nanos(index * interval_ns);
        tokio::time::sleep_until(start + offset).await;
        // Stamped when it leaves, not when it was due: tokio's timer wakes up to a millisecond
        // late, and that lag is the load generator's, not Herald's.
        let body = event_json(&format!("{run}-{index}"), event_type, unix_nanos());
        let request = client
            .post(url)
            .bearer_auth(API_TOKEN)
            .header("content-type", "application/cloudevents+json")
            .body(body);
        sends.spawn(async move {
            let sent = Instant::now();
            match request.send().await {
                Ok(response) if response.status().is_success() => {
                    Some(sent.elapsed().as_nanos() as u64)
                }
                _ => None,
            }
        });
    }
    let mut result = OpenLoop {
        accepted: 0,
        errors: 0,
        ack_latencies_ns: Vec::with_capacity(total as usize),
    };
    while let Some(joined) = sends.join_next().await {
        match joined {
            Ok(Some(latency)) => {
                result.accepted += 1;
                result.ack_latencies_ns.push(latency);
            }
            _ => result.errors += 1,
        }
    }
    result
}

/// What an open-loop run sent.
pub(crate) struct OpenLoop {
    pub(crate) accepted: u64,
    pub(crate) errors: u64,
    /// From each accepted request's send to its response (ingest's acknowledgement).
    pub(crate) ack_latencies_ns: Vec<u64>,
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{EVENT_BYTES, event_json, key_index, keyed_event_json};

    #[test]
    fn events_are_one_kibibyte_of_valid_json() {
        let json = event_json("run-1", "bench.test", 42);
        assert_eq!(json.len(), EVENT_BYTES);
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(value["data"]["sent_ns"], 42);
    }

    #[test]
    fn keyed_events_carry_the_partitionkey_extension_in_the_same_size() {
        let json = keyed_event_json("run-1", "bench.test", Some("key-999"), 42);
        assert_eq!(json.len(), EVENT_BYTES);
        let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(value["partitionkey"], "key-999");
    }

    #[test]
    fn keys_spread_over_all_of_them() {
        let keys: HashSet<u64> = (0..50_000).map(|index| key_index(index, 1_000)).collect();
        assert_eq!(keys.len(), 1_000);
        assert!((0..100).all(|index| key_index(index, 1) == 0));
    }
}
