//! Tenants end to end (issue 12): every role in-process with bearer tokens, secrets sealed at
//! rest, producer keys and operator tokens created through the control plane. An event
//! published with a tenant's key, or by a direct NATS producer on the tenant's root
//! (`herald.t.<tenant>.…`), reaches only that tenant's subscriptions, whose consumers NATS
//! hands nothing from another tenant's subjects; a revoked key is
//! refused by the running ingest within seconds; and no secret, token or full sink URL used
//! appears in any log line captured during the run, in any stream or bucket on the
//! nats-server's disk (the subscriptions bucket included: the sink is sealed there like the
//! secrets), or in the audit stream.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::Request;
use tonic::transport::Channel;

use herald_core::network::NetworkPolicy;
use herald_nats::Nats;
use herald_proto::v1 as pb;
use herald_proto::v1::audit_service_client::AuditServiceClient;
use herald_proto::v1::credential_service_client::CredentialServiceClient;
use herald_proto::v1::subscription_service_client::SubscriptionServiceClient;
use herald_signing::kek::{Kek, Keyring};
use herald_test_support::{NatsServer, TestReceiver, eventually};

const INGEST_TOKEN: &str = "ingest-bootstrap-5ecret-0123";
const CONTROL_TOKEN: &str = "control-bootstrap-5ecret-0123";
const SUBSCRIPTION_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const QUERY_SECRET: &str = "query_5ecret_t0ken";

/// Log output captured by a tracing subscriber that is the default on this test's thread.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Ingest, control and a dispatcher with bootstrap tokens, over one nats-server.
struct TenantCluster {
    nats_server: NatsServer,
    ingest_url: String,
    control: Channel,
    http: reqwest::Client,
    stop: CancellationToken,
    dispatcher_registry: prometheus::Registry,
}

impl TenantCluster {
    async fn start() -> TenantCluster {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let nats_server = NatsServer::start().await;
        let keyring = Keyring::new(vec![Kek::new("e2e", [42; 32]).unwrap()]).unwrap();
        let nats = Nats::connect(&herald_test_support::nats_config(&nats_server.url()))
            .await
            .unwrap()
            .with_keyring(keyring);
        let stop = CancellationToken::new();

        let ingest_config = herald_ingest::Config {
            max_body_bytes: 64 * 1024,
            max_batch_events: 100,
            request_timeout: Duration::from_secs(10),
            auth: herald_ingest::AuthConfig {
                disabled: false,
                api_tokens: vec![INGEST_TOKEN.to_owned()],
            },
        };
        let ingest = herald_ingest::build(
            Arc::new(ingest_config),
            nats.publisher(),
            &prometheus::Registry::new(),
        )
        .unwrap()
        .with_producer_keys(nats.credentials().await.unwrap())
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ingest_url = format!("http://{}/v1/events", listener.local_addr().unwrap());
        tokio::spawn(ingest.run(listener, stop.clone()));

        let control_config = herald_control::Config {
            auth: herald_control::AuthConfig {
                disabled: false,
                api_tokens: vec![CONTROL_TOKEN.to_owned()],
            },
        };
        let control = Box::pin(herald_control::build(
            Arc::new(control_config),
            nats.clone(),
            NetworkPolicy::new(true, true),
            &prometheus::Registry::new(),
        ))
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let control_address = listener.local_addr().unwrap();
        tokio::spawn(control.run(listener, stop.clone()));

        let dispatcher_registry = prometheus::Registry::new();
        let dispatcher = herald_dispatcher::build(
            Arc::new(crate::cluster::dispatcher_config()),
            nats.clone(),
            NetworkPolicy::new(true, true),
            &dispatcher_registry,
        )
        .unwrap();
        let token = stop.clone();
        tokio::spawn(async move { Box::pin(dispatcher.run(token)).await });
        let control = Channel::from_shared(format!("http://{control_address}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        TenantCluster {
            nats_server,
            ingest_url,
            control,
            http: reqwest::Client::builder().build().unwrap(),
            stop,
            dispatcher_registry,
        }
    }

    fn credentials(&self) -> CredentialServiceClient<Channel> {
        CredentialServiceClient::new(self.control.clone())
    }

    fn subscriptions(&self) -> SubscriptionServiceClient<Channel> {
        SubscriptionServiceClient::new(self.control.clone())
    }

    /// Creates a producer key for `tenant`; returns its id and token.
    async fn producer_key(&self, tenant: &str) -> (String, String) {
        let created = self
            .credentials()
            .create_producer_key(authorized(
                CONTROL_TOKEN,
                pb::CreateProducerKeyRequest {
                    tenant: tenant.to_owned(),
                    type_prefixes: vec!["com.shared.".to_owned()],
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        (created.key.unwrap().id, created.token)
    }

    /// Creates a subscription to `com.shared.ping` with `token`, in `tenant` (empty: the
    /// token's own).
    async fn subscribe(&self, token: &str, tenant: &str, sink: &str) -> pb::Subscription {
        let filter: herald_core::Filter =
            serde_json::from_str(r#"{"exact": {"type": "com.shared.ping"}}"#).unwrap();
        self.subscriptions()
            .create_subscription(authorized(
                token,
                pb::CreateSubscriptionRequest {
                    sink: sink.to_owned(),
                    filters: vec![pb::Filter::from(filter)],
                    secret: if tenant.is_empty() {
                        SUBSCRIPTION_SECRET.to_owned()
                    } else {
                        String::new()
                    },
                    tenant: tenant.to_owned(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
    }

    async fn publish(&self, token: &str, id: &str) -> u16 {
        let event = format!(
            r#"{{"specversion":"1.0","id":"{id}","source":"/shop","type":"com.shared.ping"}}"#
        );
        self.http
            .post(&self.ingest_url)
            .bearer_auth(token)
            .header("content-type", "application/cloudevents+json")
            .body(event)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Reads a consumer of the events stream through NATS itself (nats-py); `None` while it
    /// does not exist.
    async fn consumer(&self, name: &str) -> Option<ConsumerInfo> {
        let output = crate::run_nats_py(
            "consumer_info.py",
            &[&self.nats_server.url(), herald_nats::EVENTS_STREAM, name],
            "",
        )
        .await;
        let info: serde_json::Value =
            serde_json::from_str(output.trim()).expect("consumer_info.py prints one JSON line");
        if info.is_null() {
            return None;
        }
        let mut filter_subjects: Vec<String> = info["filter_subjects"]
            .as_array()
            .expect("filter subjects are a list")
            .iter()
            .map(|subject| subject.as_str().unwrap_or_default().to_owned())
            .collect();
        filter_subjects.sort();
        Some(ConsumerInfo {
            filter_subjects,
            delivered_stream_seq: info["delivered_stream_seq"].as_u64().unwrap_or(u64::MAX),
            num_pending: info["num_pending"].as_u64().unwrap_or(u64::MAX),
        })
    }

    /// Publishes structured events straight to NATS with nats-py (a direct producer, no
    /// ingest): `(subject, Herald-Tenant header, event id)`; returns their stream sequences.
    async fn publish_to_nats(&self, messages: &[(&str, Option<&str>, &str)]) -> Vec<u64> {
        let count = messages.len();
        let messages: Vec<serde_json::Value> = messages
            .iter()
            .map(|(subject, tenant, id)| {
                let mut headers = serde_json::json!({
                    "Content-Type": "application/cloudevents+json",
                    "Nats-Msg-Id": format!("direct-{id}"),
                });
                if let Some(tenant) = tenant {
                    headers["Herald-Tenant"] = serde_json::json!(tenant);
                }
                let event = serde_json::json!({
                    "specversion": "1.0", "id": id, "source": "/direct", "type": "com.shared.ping",
                });
                serde_json::json!({"subject": subject, "headers": headers, "payload": event.to_string()})
            })
            .collect();
        let printed = crate::run_nats_py(
            "publish.py",
            &[&self.nats_server.url()],
            &serde_json::Value::Array(messages).to_string(),
        )
        .await;
        let sequences: Vec<u64> = printed
            .lines()
            .map(|line| line.trim().parse().expect("publish.py prints sequences"))
            .collect();
        assert_eq!(
            sequences.len(),
            count,
            "one sequence per message: {printed}"
        );
        sequences
    }

    fn filtered_by_tenant(&self) -> u64 {
        self.dispatcher_registry
            .gather()
            .iter()
            .filter(|family| family.name() == "herald_dispatch_events_filtered_total")
            .flat_map(|family| family.get_metric())
            .filter(|metric| {
                metric
                    .get_label()
                    .iter()
                    .any(|label| label.name() == "reason" && label.value() == "tenant")
            })
            .map(|metric| metric.get_counter().get_value() as u64)
            .sum()
    }
}

/// What NATS says of a consumer of the events stream.
#[derive(Debug)]
struct ConsumerInfo {
    /// Sorted.
    filter_subjects: Vec<String>,
    /// The stream sequence of the last message NATS handed out (0: none yet).
    delivered_stream_seq: u64,
    /// Messages matching its filter subjects not handed out yet.
    num_pending: u64,
}

impl Drop for TenantCluster {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn authorized<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn event_ids(receiver: &TestReceiver) -> Vec<String> {
    let mut ids: Vec<String> = receiver
        .requests()
        .iter()
        .map(|request| request.json()["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Returns the bytes every file holds, by stream (the directories below each `streams`
/// directory of the store), for the streams and buckets of the test's nats-server.
fn stored_by_stream(data_dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(path: &Path, bytes: &mut Vec<u8>) {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).unwrap().flatten() {
                walk(&entry.path(), bytes);
            }
        } else if let Ok(contents) = std::fs::read(path) {
            bytes.extend_from_slice(&contents);
        }
    }
    /// Finds the `streams` directories under `path` (one per account).
    fn streams_dirs(path: &Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            let entry_path = entry.path();
            if entry_path.is_dir() {
                if entry.file_name() == "streams" {
                    found.push(entry_path);
                } else {
                    streams_dirs(&entry_path, found);
                }
            }
        }
    }
    let mut found = Vec::new();
    streams_dirs(data_dir, &mut found);
    let mut stored = Vec::new();
    for streams in found {
        for entry in std::fs::read_dir(&streams).into_iter().flatten().flatten() {
            let mut bytes = Vec::new();
            walk(&entry.path(), &mut bytes);
            stored.push((entry.file_name().to_string_lossy().into_owned(), bytes));
        }
    }
    stored
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test]
#[allow(clippy::print_stderr, reason = "the revocation delay is reported")]
async fn a_tenants_events_reach_only_its_subscriptions_and_no_secret_is_logged_or_stored() {
    // As in e2e_sink_privacy: a second, silent dispatcher makes every callsite ask each one.
    let _silent = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let cluster = TenantCluster::start().await;
    let acme_endpoint = TestReceiver::start().await;
    let globex_endpoint = TestReceiver::start().await;
    let acme_sink = format!("{}?token={QUERY_SECRET}", acme_endpoint.url());

    let (acme_key_id, acme_key) = cluster.producer_key("acme").await;
    let (_, globex_key) = cluster.producer_key("globex").await;
    let operator = cluster
        .credentials()
        .create_operator_token(authorized(
            CONTROL_TOKEN,
            pb::CreateOperatorTokenRequest {
                tenant: "acme".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let operator_secret = operator.secret.clone();
    // Control answers once the token is stored and learns of it through its credentials watch
    // moments later: the token is used once control accepts it.
    eventually(
        "control to accept the new operator token",
        Duration::from_secs(10),
        || async {
            cluster
                .subscriptions()
                .list_subscriptions(authorized(
                    &operator_secret,
                    pb::ListSubscriptionsRequest::default(),
                ))
                .await
                .ok()
        },
    )
    .await;
    let acme_subscription = cluster.subscribe(&operator_secret, "", &acme_sink).await;
    assert_eq!(acme_subscription.tenant, "acme");
    let globex_subscription = cluster
        .subscribe(CONTROL_TOKEN, "globex", globex_endpoint.url())
        .await;
    assert_eq!(globex_subscription.tenant, "globex");
    let rotated = cluster
        .subscriptions()
        .rotate_secret(authorized(
            &operator_secret,
            pb::RotateSecretRequest {
                id: acme_subscription.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();

    // Keys created through control reach ingest through the bucket's watch.
    eventually(
        "ingest to accept the new keys",
        Duration::from_secs(10),
        || async {
            let acme = cluster.publish(&acme_key, "acme-1").await;
            let globex = cluster.publish(&globex_key, "globex-1").await;
            (acme == 202 && globex == 202).then_some(())
        },
    )
    .await;
    assert_eq!(cluster.publish(INGEST_TOKEN, "default-1").await, 202);

    acme_endpoint.wait_for(1, Duration::from_secs(30)).await;
    globex_endpoint.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(event_ids(&acme_endpoint), ["acme-1"]);
    assert_eq!(event_ids(&globex_endpoint), ["globex-1"]);
    // Each key's event was stored under its tenant's root, so NATS handed each subscription's
    // consumer its own tenant's event only: nothing pending, nothing the dispatcher had to skip.
    for subscription in [&acme_subscription, &globex_subscription] {
        let consumer = cluster.consumer(&subscription.id).await.unwrap();
        assert_eq!(consumer.num_pending, 0, "{consumer:?}");
    }
    assert_eq!(cluster.filtered_by_tenant(), 0);

    // Revoked through control, refused by the running ingest without a restart.
    cluster
        .credentials()
        .revoke_producer_key(authorized(
            CONTROL_TOKEN,
            pb::RevokeCredentialRequest {
                id: acme_key_id.clone(),
            },
        ))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    eventually(
        "ingest to refuse the revoked key",
        Duration::from_secs(10),
        || async {
            let id = format!("after-revoke-{}", started.elapsed().as_nanos());
            (cluster.publish(&acme_key, &id).await == 401).then_some(())
        },
    )
    .await;
    eprintln!(
        "revoked key refused by ingest after {:?}",
        started.elapsed()
    );

    let audit = AuditServiceClient::new(cluster.control.clone())
        .list_audit_records(authorized(
            CONTROL_TOKEN,
            pb::ListAuditRecordsRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner();
    let rpcs: Vec<&str> = audit
        .records
        .iter()
        .map(|record| record.rpc.as_str())
        .collect();
    assert_eq!(
        rpcs,
        [
            "RevokeProducerKey",
            "RotateSecret",
            "CreateSubscription",
            "CreateSubscription",
            "CreateOperatorToken",
            "CreateProducerKey",
            "CreateProducerKey",
        ]
    );
    let audit_text = format!("{:?}", audit.records);

    // What reached the disk: wait until the audit stream and the buckets hold what was done.
    let data_dir = cluster.nats_server.data_dir().to_path_buf();
    let stored = eventually(
        "the stores to reach the disk",
        Duration::from_secs(30),
        || {
            let data_dir = data_dir.clone();
            let subscription_id = acme_subscription.id.clone();
            let key_id = acme_key_id.clone();
            async move {
                let stored = stored_by_stream(&data_dir);
                let holds = |stream: &str, needle: &str| {
                    stored
                        .iter()
                        .any(|(name, bytes)| name == stream && contains(bytes, needle))
                };
                let written = holds("HERALD_AUDIT", "RevokeProducerKey")
                    && holds("KV_herald_credentials", &key_id)
                    && holds("KV_herald_subscriptions", &subscription_id)
                    && holds("HERALD_ATTEMPTS", &subscription_id);
                written.then_some(stored)
            }
        },
    )
    .await;
    drop(cluster);
    let log_text = logs.text();
    assert!(
        log_text.contains("subscription created"),
        "the capture works"
    );

    let secrets = [
        ("the acme producer key", acme_key.as_str()),
        ("the globex producer key", globex_key.as_str()),
        ("the operator token", operator_secret.as_str()),
        ("the ingest bootstrap token", INGEST_TOKEN),
        ("the control bootstrap token", CONTROL_TOKEN),
        ("the subscription's first secret", SUBSCRIPTION_SECRET),
        ("the subscription's rotated secret", rotated.secret.as_str()),
        ("the sink's query", QUERY_SECRET),
    ];
    for (what, secret) in secrets {
        assert!(!log_text.contains(secret), "a log line shows {what}");
        assert!(
            !audit_text.contains(secret),
            "the audit stream shows {what}"
        );
        for (stream, bytes) in &stored {
            assert!(!contains(bytes, secret), "{stream} on disk holds {what}");
        }
    }
    assert!(
        !log_text.contains(&acme_sink),
        "a log line shows the full sink URL"
    );
    assert!(!audit_text.contains(&acme_sink));
}

#[tokio::test]
async fn a_tenants_consumer_reads_only_its_root_and_direct_publishes_there_reach_it_alone() {
    let cluster = TenantCluster::start().await;
    let acme_endpoint = TestReceiver::start().await;
    let globex_endpoint = TestReceiver::start().await;
    let default_endpoint = TestReceiver::start().await;
    let acme = cluster
        .subscribe(CONTROL_TOKEN, "acme", acme_endpoint.url())
        .await;
    let globex = cluster
        .subscribe(CONTROL_TOKEN, "globex", globex_endpoint.url())
        .await;
    let default = cluster
        .subscribe(CONTROL_TOKEN, "", default_endpoint.url())
        .await;
    assert_eq!(default.tenant, "default");

    // Each consumer filters under its own tenant's root only (the default tenant's being
    // `herald.events`, as before tenants had subjects), besides its redeliver subject.
    for (subscription, expected) in [
        (&acme, "herald.t.acme.*.com.shared.ping"),
        (&globex, "herald.t.globex.*.com.shared.ping"),
        (&default, "herald.events.*.com.shared.ping"),
    ] {
        let mut expected = vec![
            expected.to_owned(),
            format!("herald.redeliver.{}", subscription.id),
        ];
        expected.sort();
        let consumer = eventually(
            "the dispatcher to set up the consumer",
            Duration::from_secs(30),
            || cluster.consumer(&subscription.id),
        )
        .await;
        assert_eq!(
            consumer.filter_subjects, expected,
            "{}",
            subscription.tenant
        );
    }

    // A direct NATS producer of acme publishes on acme's root without the header: the subject
    // is its tenant's proof. A header naming another tenant there makes an event nobody's, and
    // a direct producer of the default tenant still publishes on `herald.events`; what it
    // publishes on `herald.t.default.…` (no root) the stream stores on `herald.events.…`, where
    // the default tenant's consumers read it, so it is not lost.
    let sequences = cluster
        .publish_to_nats(&[
            ("herald.t.acme.0.com.shared.ping", None, "direct-acme"),
            (
                "herald.t.acme.3.com.shared.ping",
                Some("globex"),
                "forged-globex",
            ),
            ("herald.events.0.com.shared.ping", None, "direct-default"),
            (
                "herald.t.default.5.com.shared.ping",
                None,
                "direct-default-alias",
            ),
        ])
        .await;
    acme_endpoint.wait_for(1, Duration::from_secs(30)).await;
    default_endpoint.wait_for(2, Duration::from_secs(30)).await;
    eventually(
        "acme's subscription to skip the event whose header names globex",
        Duration::from_secs(30),
        || async { (cluster.filtered_by_tenant() >= 1).then_some(()) },
    )
    .await;
    // NATS never handed globex's consumer anything: not acme's event, not the one whose
    // header names globex, not the default tenant's.
    let globex_consumer = cluster.consumer(&globex.id).await.unwrap();
    assert_eq!(
        globex_consumer.delivered_stream_seq, 0,
        "{globex_consumer:?}"
    );
    assert_eq!(globex_consumer.num_pending, 0, "{globex_consumer:?}");
    // Nor did it hand acme's consumer the default tenant's event, nor the default's acme's.
    let acme_consumer = cluster.consumer(&acme.id).await.unwrap();
    assert_eq!(
        acme_consumer.delivered_stream_seq, sequences[1],
        "{acme_consumer:?}"
    );
    assert_eq!(acme_consumer.num_pending, 0, "{acme_consumer:?}");
    let default_consumer = cluster.consumer(&default.id).await.unwrap();
    assert_eq!(
        default_consumer.delivered_stream_seq, sequences[3],
        "{default_consumer:?}"
    );
    assert_eq!(event_ids(&acme_endpoint), ["direct-acme"]);
    assert_eq!(
        event_ids(&default_endpoint),
        ["direct-default", "direct-default-alias"]
    );
    assert!(globex_endpoint.requests().is_empty());
    assert_eq!(cluster.filtered_by_tenant(), 1);
}

#[tokio::test]
async fn a_tenants_consumer_made_under_the_old_filter_is_updated_in_place_to_its_root() {
    let cluster = TenantCluster::start().await;
    let acme_endpoint = TestReceiver::start().await;
    let acme = cluster
        .subscribe(CONTROL_TOKEN, "acme", acme_endpoint.url())
        .await;
    let redeliver = format!("herald.redeliver.{}", acme.id);
    eventually(
        "the dispatcher to set up acme's consumer",
        Duration::from_secs(30),
        || cluster.consumer(&acme.id),
    )
    .await;
    cluster
        .publish_to_nats(&[("herald.t.acme.0.com.shared.ping", None, "before")])
        .await;
    acme_endpoint.wait_for(1, Duration::from_secs(30)).await;

    // The consumer as a version without tenant subjects made it: on `herald.events` only. An
    // event stored on acme's root meanwhile is beyond its delivery position.
    let printed = crate::run_nats_py(
        "set_consumer_filter.py",
        &[
            &cluster.nats_server.url(),
            herald_nats::EVENTS_STREAM,
            &acme.id,
            "herald.events.*.com.shared.ping",
            &redeliver,
        ],
        "",
    )
    .await;
    assert!(
        printed.contains("herald.events.*.com.shared.ping"),
        "{printed}"
    );
    cluster
        .publish_to_nats(&[("herald.t.acme.1.com.shared.ping", None, "meanwhile")])
        .await;

    // A worker setting the consumer up again (here for new filters) updates it in place to
    // acme's root, from where it was: the event stored meanwhile is delivered, the one before
    // is not delivered again.
    let filter: herald_core::Filter =
        serde_json::from_str(r#"{"prefix": {"type": "com.shared."}}"#).unwrap();
    cluster
        .subscriptions()
        .update_subscription(authorized(
            CONTROL_TOKEN,
            pb::UpdateSubscriptionRequest {
                id: acme.id.clone(),
                filters: vec![pb::Filter::from(filter)],
                replace_filters: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let mut expected = vec!["herald.t.acme.*.com.shared.>".to_owned(), redeliver];
    expected.sort();
    eventually(
        "acme's consumer to filter on acme's root",
        Duration::from_secs(30),
        || async {
            let consumer = cluster.consumer(&acme.id).await?;
            (consumer.filter_subjects == expected).then_some(())
        },
    )
    .await;
    acme_endpoint.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(event_ids(&acme_endpoint), ["before", "meanwhile"]);
    let deliveries_of_before = acme_endpoint
        .requests()
        .iter()
        .filter(|request| request.json()["id"] == "before")
        .count();
    assert_eq!(deliveries_of_before, 1);
    assert_eq!(cluster.filtered_by_tenant(), 0);
}
