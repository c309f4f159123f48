//! Producer keys (issue 12): ingest refuses missing, wrong and revoked credentials with `401`,
//! events outside a key's scope with `403` (a batch with one such member publishes nothing),
//! spends a key's rate limit with `429` and `Retry-After`, and stores a key's events with its
//! tenant in the `Herald-Tenant` header, which the producer cannot set.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use herald_core::credential::{
    Credential, CredentialKind, IssuedToken, ProducerKey, TENANT_HEADER, TenantId,
};
use herald_core::subscription::RateLimit;
use herald_nats::{CredentialStore, Nats, Start};
use herald_test_support::NatsServer;

use crate::support::{Answer, HttpConnection, request};

const BOOTSTRAP: &str = "bootstrap-token-0123456789";

/// Ingest with a bootstrap token and the producer keys of its credentials bucket.
struct KeyedIngest {
    address: std::net::SocketAddr,
    nats: Nats,
    keys: CredentialStore,
    stop: CancellationToken,
    _server: NatsServer,
}

/// A producer key to store before ingest starts: tenant, type prefixes, rate limit.
type KeySpec<'a> = (&'a str, &'a [&'a str], Option<RateLimit>);

impl KeyedIngest {
    /// Stores the keys of `specs`, then starts ingest, which loads them before serving; returns
    /// each key with its token.
    async fn start(specs: &[KeySpec<'_>]) -> (KeyedIngest, Vec<(Credential, String)>) {
        let server = NatsServer::start().await;
        // Boxed: setting up the topology is a large future.
        let nats = Box::pin(Nats::connect(&herald_test_support::nats_config(
            &server.url(),
        )))
        .await
        .expect("nats should connect");
        let keys = nats.credentials().await.expect("the bucket should open");
        let mut created = Vec::new();
        for (tenant, type_prefixes, rate_limit) in specs {
            created.push(create_key(&keys, tenant, type_prefixes, *rate_limit).await);
        }
        let config = herald_ingest::Config {
            max_body_bytes: 64 * 1024,
            max_batch_events: 100,
            request_timeout: Duration::from_secs(20),
            auth: herald_ingest::AuthConfig {
                disabled: false,
                api_tokens: vec![BOOTSTRAP.to_owned()],
            },
        };
        let service = herald_ingest::build(
            Arc::new(config),
            nats.publisher(),
            &prometheus::Registry::new(),
        )
        .expect("ingest should build")
        .with_producer_keys(keys.clone())
        .await
        .expect("the keys should load");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(service.run(listener, stop.clone()));
        let ingest = KeyedIngest {
            address,
            nats,
            keys,
            stop,
            _server: server,
        };
        (ingest, created)
    }

    async fn post(&self, authorization: Option<&str>, content_type: &str, body: &str) -> Answer {
        let mut fields = vec![("content-type", content_type)];
        if let Some(authorization) = authorization {
            fields.push(("authorization", authorization));
        }
        HttpConnection::open(self.address)
            .await
            .send(&request("POST", "/v1/events", &fields, body.as_bytes()))
            .await
    }

    async fn post_event(&self, token: &str, source: &str, ty: &str, id: &str) -> Answer {
        self.post(
            Some(&format!("Bearer {token}")),
            "application/cloudevents+json",
            &event(source, ty, id),
        )
        .await
    }

    async fn stored(&self) -> u64 {
        self.nats.events_stored().await.unwrap()
    }

    /// Waits until `token` answers `status` to a fresh event, so a change of the bucket has
    /// reached ingest through its watch.
    async fn until_status(&self, token: &str, status: u16) {
        herald_test_support::eventually(
            &format!("ingest to answer {status}"),
            Duration::from_secs(10),
            || async {
                let id = ulid::Ulid::generate().to_string();
                let answer = self.post_event(token, "/shop", "com.acme.order", &id).await;
                (answer.status == status).then_some(())
            },
        )
        .await;
    }
}

impl Drop for KeyedIngest {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Stores a producer key of `tenant` (sources under `/shop`) and returns it with its token.
async fn create_key(
    keys: &CredentialStore,
    tenant: &str,
    type_prefixes: &[&str],
    rate_limit: Option<RateLimit>,
) -> (Credential, String) {
    let issued = IssuedToken::issue(
        CredentialKind::ProducerKey,
        ulid::Ulid::generate(),
        &herald_signing::random_token_bytes().unwrap(),
    );
    let credential = Credential::ProducerKey(ProducerKey {
        id: issued.id.clone(),
        tenant: TenantId::parse(tenant, "tenant").unwrap(),
        description: String::new(),
        source_prefixes: vec!["/shop".to_owned()],
        type_prefixes: type_prefixes.iter().map(|p| (*p).to_owned()).collect(),
        rate_limit,
        token_hash: issued.hash.clone(),
        created_at: OffsetDateTime::now_utc(),
        revoked_at: None,
    });
    keys.create(&credential).await.unwrap();
    (credential, issued.token)
}

fn event(source: &str, ty: &str, id: &str) -> String {
    format!(r#"{{"specversion":"1.0","id":"{id}","source":"{source}","type":"{ty}"}}"#)
}

#[tokio::test]
#[allow(clippy::print_stderr, reason = "the revocation delay is reported")]
async fn refuses_missing_wrong_malformed_and_revoked_credentials_with_401() {
    let (ingest, mut keys) = Box::pin(KeyedIngest::start(&[("acme", &[], None)])).await;
    let (credential, token) = keys.remove(0);
    // The same id with a wrong secret: the last character changed (to `A` unless it is one
    // already, when `A` would give the genuine token back).
    let mut forged = token.clone();
    let last = forged.pop();
    forged.push(if last == Some('A') { 'B' } else { 'A' });
    let cases = [
        None,
        Some("Bearer wrong-token-0123456789".to_owned()),
        Some(format!("Bearer {forged}")),
        Some(token.clone()),
        Some(format!("Basic {token}")),
        Some("Bearer hpk_".to_owned()),
    ];
    for authorization in &cases {
        let answer = ingest
            .post(
                authorization.as_deref(),
                "application/cloudevents+json",
                &event("/shop", "com.acme.order", "e1"),
            )
            .await;
        assert_eq!(answer.status, 401, "{authorization:?}: {answer:?}");
        assert_eq!(
            answer.problem()["type"],
            "urn:herald:problem:unauthenticated"
        );
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    }
    assert_eq!(ingest.stored().await, 0);
    let answer = ingest
        .post_event(&token, "/shop", "com.acme.order", "e2")
        .await;
    assert_eq!(answer.status, 202, "{answer:?}");
    let bootstrap = ingest.post_event(BOOTSTRAP, "/any", "any.type", "e3").await;
    assert_eq!(bootstrap.status, 202, "{bootstrap:?}");

    // Revoked in the bucket, refused by the running ingest without a restart.
    let mut revoked = credential;
    revoked.revoke(OffsetDateTime::now_utc());
    let stored = ingest.keys.get(revoked.id()).await.unwrap().unwrap();
    ingest.keys.update(&revoked, stored.revision).await.unwrap();
    let started = std::time::Instant::now();
    ingest.until_status(&token, 401).await;
    eprintln!("revocation seen by ingest after {:?}", started.elapsed());
    let after = ingest.stored().await;
    let refused = ingest
        .post_event(&token, "/shop", "com.acme.order", "e4")
        .await;
    assert_eq!(refused.status, 401, "{refused:?}");
    assert_eq!(ingest.stored().await, after);
}

#[tokio::test]
async fn refuses_events_outside_the_keys_scope_with_403_and_publishes_nothing_of_the_batch() {
    let (ingest, keys) = Box::pin(KeyedIngest::start(&[("acme", &["com.acme."], None)])).await;
    let token = &keys[0].1;
    let authorization = format!("Bearer {token}");
    let wrong_type = ingest.post_event(token, "/shop", "com.other.x", "e1").await;
    assert_eq!(wrong_type.status, 403, "{wrong_type:?}");
    let problem = wrong_type.problem();
    assert_eq!(problem["type"], "urn:herald:problem:forbidden");
    assert_eq!(problem["code"], "permission_denied");
    assert_eq!(problem["pointer"], "/type");
    let wrong_source = ingest
        .post_event(token, "/elsewhere", "com.acme.x", "e2")
        .await;
    assert_eq!(wrong_source.status, 403, "{wrong_source:?}");
    assert_eq!(wrong_source.problem()["pointer"], "/source");

    let batch = format!(
        "[{},{},{}]",
        event("/shop", "com.acme.a", "b1"),
        event("/shop", "com.evil.b", "b2"),
        event("/shop", "com.acme.c", "b3"),
    );
    let refused = ingest
        .post(
            Some(&authorization),
            "application/cloudevents-batch+json",
            &batch,
        )
        .await;
    assert_eq!(refused.status, 403, "{refused:?}");
    let errors = refused.problem()["errors"].clone();
    assert_eq!(errors.as_array().map(Vec::len), Some(1), "{errors}");
    assert_eq!(errors[0]["index"], 1);
    assert_eq!(errors[0]["pointer"], "/type");

    let binary = HttpConnection::open(ingest.address)
        .await
        .send(&request(
            "POST",
            "/v1/events",
            &[
                ("authorization", authorization.as_str()),
                ("ce-specversion", "1.0"),
                ("ce-id", "bin1"),
                ("ce-source", "/shop"),
                ("ce-type", "org.outside"),
            ],
            b"{}",
        ))
        .await;
    assert_eq!(binary.status, 403, "{binary:?}");
    assert_eq!(
        ingest.stored().await,
        0,
        "nothing outside the scope is stored"
    );
    let within = ingest
        .post_event(token, "/shop/eu", "com.acme.order", "ok")
        .await;
    assert_eq!(within.status, 202, "{within:?}");
    assert_eq!(ingest.stored().await, 1);
}

#[tokio::test]
async fn stores_a_keys_events_on_its_tenants_subjects_whatever_the_event_says() {
    let (ingest, keys) = Box::pin(KeyedIngest::start(&[("acme", &[], None)])).await;
    let token = &keys[0].1;
    // An attribute or a header claiming another tenant changes nothing.
    let event =
        r#"{"specversion":"1.0","id":"t1","source":"/shop","type":"com.acme.x","tenant":"globex"}"#;
    let answer = HttpConnection::open(ingest.address)
        .await
        .send(&request(
            "POST",
            "/v1/events",
            &[
                ("content-type", "application/cloudevents+json"),
                ("authorization", &format!("Bearer {token}")),
                ("herald-tenant", "globex"),
            ],
            event.as_bytes(),
        ))
        .await;
    assert_eq!(answer.status, 202, "{answer:?}");
    let bootstrap = ingest
        .post_event(BOOTSTRAP, "/shop", "com.acme.y", "t2")
        .await;
    assert_eq!(bootstrap.status, 202, "{bootstrap:?}");
    let scanned: Vec<_> = ingest
        .nats
        .scan_events(
            vec!["herald.events.>".to_owned(), "herald.t.>".to_owned()],
            Start::Sequence(1),
            None,
        )
        .await
        .unwrap()
        .collect()
        .await;
    // The key's event lies under its tenant's root, the bootstrap token's under the default's.
    let stored: Vec<(String, Option<String>)> = scanned
        .into_iter()
        .map(|message| {
            let message = message.unwrap();
            let tenant = message.header(TENANT_HEADER).map(str::to_owned);
            (message.subject, tenant)
        })
        .collect();
    assert!(
        stored[0].0.starts_with("herald.t.acme.") && stored[0].0.ends_with(".com.acme.x"),
        "{stored:?}"
    );
    assert_eq!(stored[0].1.as_deref(), Some("acme"));
    assert!(
        stored[1].0.starts_with("herald.events.") && stored[1].0.ends_with(".com.acme.y"),
        "{stored:?}"
    );
    assert_eq!(stored[1].1, None);
    assert_eq!(stored.len(), 2);
}

#[tokio::test]
async fn a_keys_rate_limit_answers_429_with_retry_after() {
    let limit = RateLimit {
        per_second: 1,
        burst: 3,
    };
    let (ingest, keys) = Box::pin(KeyedIngest::start(&[
        ("acme", &[], Some(limit)),
        ("acme", &[], None),
    ]))
    .await;
    let (limited_token, other_token) = (&keys[0].1, &keys[1].1);
    let authorization = format!("Bearer {limited_token}");
    // More events at once than the burst holds: never accepted whole.
    let batch = format!(
        "[{},{},{},{}]",
        event("/shop", "a", "x1"),
        event("/shop", "a", "x2"),
        event("/shop", "a", "x3"),
        event("/shop", "a", "x4"),
    );
    let too_many = ingest
        .post(
            Some(&authorization),
            "application/cloudevents-batch+json",
            &batch,
        )
        .await;
    assert_eq!(too_many.status, 429, "{too_many:?}");
    assert_eq!(
        too_many.problem()["type"],
        "urn:herald:problem:rate-limited"
    );
    assert!(too_many.header("retry-after").is_some(), "{too_many:?}");
    assert_eq!(ingest.stored().await, 0);

    // One a second refills the bucket; sending faster spends it.
    let mut accepted = 0;
    let limited = loop {
        let id = ulid::Ulid::generate().to_string();
        let answer = ingest.post_event(limited_token, "/shop", "a", &id).await;
        match answer.status {
            202 => accepted += 1,
            429 => break answer,
            _ => panic!("{answer:?}"),
        }
        assert!(accepted < 100, "the rate limit never refused an event");
    };
    assert!(
        accepted >= 3,
        "the burst of 3 was accepted first, got {accepted}"
    );
    let retry_after: u64 = limited
        .header("retry-after")
        .and_then(|value| value.parse().ok())
        .expect("a Retry-After in seconds");
    assert_eq!(retry_after, 1);
    // Another key of the same tenant has a budget of its own.
    let other = ingest.post_event(other_token, "/shop", "a", "free").await;
    assert_eq!(other.status, 202, "{other:?}");
}
