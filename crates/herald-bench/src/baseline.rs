//! Baselines B1 (raw JetStream publishing) and B3 (raw JetStream publish-to-consumer latency)
//! with async-nats, no Herald in the path.
//!
//! This is the one place outside `herald-nats` that imports `async_nats` (ARCHITECTURE.md
//! records the exception): the baseline must measure the client library and the server alone,
//! so routing it through Herald's publisher would measure part of what it is compared against.
//! The workloads' few reads of JetStream state (W6's consumer count, W8's retry backlog) are
//! here for the same reason: one module holds the harness's own NATS client.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;

/// What a raw publish run measured.
pub(crate) struct PublishRate {
    pub(crate) acknowledged: u64,
    pub(crate) elapsed: Duration,
}

/// Publishes 1 KiB messages to a file-storage stream of its own for `duration`, keeping up to
/// `window` publishes in flight and awaiting every acknowledgement.
pub(crate) async fn jetstream_publish(
    nats_url: &str,
    window: usize,
    duration: Duration,
    name: &str,
) -> anyhow::Result<PublishRate> {
    let (client, context, stream_name, subject) = bench_stream(nats_url, name, false).await?;
    let payload = Bytes::from(vec![b'x'; crate::load::EVENT_BYTES]);
    let started = Instant::now();
    let mut in_flight = VecDeque::with_capacity(window);
    let mut acknowledged = 0_u64;
    while started.elapsed() < duration {
        let ack = context.publish(subject.clone(), payload.clone()).await?;
        in_flight.push_back(ack);
        if in_flight.len() >= window
            && let Some(oldest) = in_flight.pop_front()
        {
            oldest.await?;
            acknowledged += 1;
        }
    }
    while let Some(ack) = in_flight.pop_front() {
        ack.await?;
        acknowledged += 1;
    }
    let elapsed = started.elapsed();
    remove_bench_stream(client, &context, &stream_name).await?;
    Ok(PublishRate {
        acknowledged,
        elapsed,
    })
}

/// Publishes 1 KiB messages as JetStream atomic batches (ADR-50) of `batch` messages to a
/// file-storage stream of its own for `duration`, with `concurrency` batches in flight: each
/// batch opens with a request, streams its middle messages, and commits with a request whose
/// acknowledgement covers the batch.
pub(crate) async fn jetstream_atomic_publish(
    nats_url: &str,
    batch: usize,
    concurrency: usize,
    duration: Duration,
    name: &str,
) -> anyhow::Result<PublishRate> {
    use async_nats::header;
    let (client, context, stream_name, subject) = bench_stream(nats_url, name, true).await?;
    let payload = Bytes::from(vec![b'x'; crate::load::EVENT_BYTES]);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..concurrency {
        let client = client.clone();
        let subject = subject.clone();
        let payload = payload.clone();
        tasks.spawn(async move {
            let mut acknowledged = 0_u64;
            let mut number = 0_u64;
            while started.elapsed() < duration {
                number += 1;
                let batch_id = format!("b{task}-{number}");
                for sequence in 1..=batch {
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert(header::NATS_BATCH_ID, batch_id.as_str());
                    headers.insert(header::NATS_BATCH_SEQUENCE, sequence.to_string().as_str());
                    if sequence == batch {
                        headers.insert(header::NATS_BATCH_COMMIT, header::NATS_BATCH_COMMIT_FINAL);
                    }
                    if sequence == 1 || sequence == batch {
                        let reply = client
                            .request_with_headers(subject.clone(), headers, payload.clone())
                            .await?;
                        anyhow::ensure!(
                            sequence == 1 || reply.payload.starts_with(b"{\"stream\""),
                            "batch refused: {}",
                            String::from_utf8_lossy(&reply.payload)
                        );
                    } else {
                        client
                            .publish_with_headers(subject.clone(), headers, payload.clone())
                            .await?;
                    }
                }
                acknowledged += batch as u64;
            }
            anyhow::Ok(acknowledged)
        });
    }
    let mut acknowledged = 0;
    while let Some(joined) = tasks.join_next().await {
        acknowledged += joined??;
    }
    let elapsed = started.elapsed();
    remove_bench_stream(client, &context, &stream_name).await?;
    Ok(PublishRate {
        acknowledged,
        elapsed,
    })
}

/// Publishes `rate` 1 KiB messages per second for `duration`, each stamped with its send time,
/// to a file-storage stream of its own, and receives them through a durable pull consumer with
/// explicit acks, as a Herald subscription does; returns each message's publish-to-receipt
/// latency in nanoseconds. This is the JetStream hop alone, the floor under W4.
pub(crate) async fn jetstream_latency(
    nats_url: &str,
    rate: u64,
    duration: Duration,
    name: &str,
) -> anyhow::Result<Vec<u64>> {
    use futures::StreamExt as _;
    let (client, context, stream_name, subject) = bench_stream(nats_url, name, false).await?;
    let total = (rate as f64 * duration.as_secs_f64()) as u64;
    let stream = context.get_stream(&stream_name).await?;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some(format!("bench_{name}")),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut receiving = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(total as usize);
        while (latencies.len() as u64) < total {
            let Some(message) = messages.next().await else {
                break;
            };
            let received_ns = crate::stats::unix_nanos();
            let message = message.map_err(|err| anyhow::anyhow!("{err}"))?;
            let sent: [u8; 8] = message.payload[..8].try_into()?;
            latencies.push(received_ns.saturating_sub(u64::from_le_bytes(sent)));
            message
                .ack()
                .await
                .map_err(|err| anyhow::anyhow!("{err}"))?;
        }
        anyhow::Ok(latencies)
    });
    let interval = Duration::from_nanos(1_000_000_000 / rate.max(1));
    let start = tokio::time::Instant::now();
    let mut payload = vec![b'x'; crate::load::EVENT_BYTES];
    for index in 0..total {
        tokio::time::sleep_until(start + interval * index as u32).await;
        payload[..8].copy_from_slice(&crate::stats::unix_nanos().to_le_bytes());
        context
            .publish(subject.clone(), Bytes::copy_from_slice(&payload))
            .await?
            .await?;
    }
    let latencies = match tokio::time::timeout(Duration::from_secs(30), &mut receiving).await {
        Ok(joined) => joined??,
        Err(_) => {
            receiving.abort();
            anyhow::bail!("the consumer received fewer than {total} messages within 30 s");
        }
    };
    remove_bench_stream(client, &context, &stream_name).await?;
    Ok(latencies)
}

/// Deletes a baseline's stream and drains its client.
async fn remove_bench_stream(
    client: async_nats::Client,
    context: &jetstream::Context,
    stream_name: &str,
) -> anyhow::Result<()> {
    context.delete_stream(stream_name).await?;
    client.drain().await?;
    Ok(())
}

/// Connects and creates a file-storage stream of the baseline's own, `BENCH_<name>` on subject
/// `bench.raw.<name>`; returns the client, its JetStream context, the stream name and subject.
async fn bench_stream(
    nats_url: &str,
    name: &str,
    allow_atomic_publish: bool,
) -> anyhow::Result<(async_nats::Client, jetstream::Context, String, String)> {
    let client = async_nats::connect(nats_url).await?;
    let context = jetstream::new(client.clone());
    let stream_name = format!("BENCH_{name}");
    let subject = format!("bench.raw.{name}");
    context
        .create_stream(jetstream::stream::Config {
            name: stream_name.clone(),
            subjects: vec![subject.clone()],
            storage: jetstream::stream::StorageType::File,
            allow_atomic_publish,
            ..Default::default()
        })
        .await?;
    Ok((client, context, stream_name, subject))
}

/// Returns the number of consumers on Herald's events stream.
pub(crate) async fn herald_consumers(nats_url: &str) -> anyhow::Result<usize> {
    let client = async_nats::connect(nats_url).await?;
    let context = jetstream::new(client.clone());
    let mut stream = context.get_stream("HERALD_EVENTS").await?;
    let count = stream.info().await?.state.consumer_count;
    Ok(count)
}

/// Returns how many retries of a subscription wait in Herald's retry backlog (`HERALD_RETRIES`,
/// one schedule per event on `herald.retry.sched.<subscription>.<event sequence>`).
pub(crate) async fn scheduled_retries(
    nats_url: &str,
    subscription_id: &str,
) -> anyhow::Result<u64> {
    use futures::TryStreamExt as _;

    let client = async_nats::connect(nats_url).await?;
    let context = jetstream::new(client);
    let stream = context.get_stream("HERALD_RETRIES").await?;
    let mut subjects = stream
        .info_with_subjects(format!("herald.retry.sched.{subscription_id}.>"))
        .await?;
    let mut scheduled = 0_u64;
    while let Some((_, count)) = subjects.try_next().await? {
        scheduled += count as u64;
    }
    Ok(scheduled)
}
