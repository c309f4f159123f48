//! The bound on kept certificate clients: past it, the subscription whose clients were used
//! longest ago loses them.

use herald_core::SubscriptionId;
use herald_core::subscription::ClientCertificate;
use herald_test_support::TestCa;

use super::{ClientPair, IdentityClients};

fn certificate(ca: &TestCa, name: &str) -> ClientCertificate {
    let (certificate, key) = ca.issue(name);
    ClientCertificate {
        certificate,
        key,
        fingerprint: format!("{name:0>64}"),
        subject: format!("CN={name}"),
        not_after: time::OffsetDateTime::now_utc() + time::Duration::days(1),
    }
}

/// Builds clients presenting `identity`, as the delivery client's recipe does.
fn pair(identity: reqwest::Identity) -> Result<ClientPair, String> {
    let client = reqwest::Client::builder()
        .identity(identity)
        .build()
        .map_err(|err| err.to_string())?;
    Ok(ClientPair {
        http: client.clone(),
        fresh: client,
    })
}

#[test]
fn past_its_capacity_the_least_recently_used_subscriptions_clients_go() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = TestCa::new("client ca");
    let clients = IdentityClients::with_capacity(2);
    let [a, b, c] = [(); 3].map(|()| SubscriptionId::from_ulid(ulid::Ulid::generate()));
    let (cert_a, cert_b, cert_c) = (
        certificate(&ca, "a"),
        certificate(&ca, "b"),
        certificate(&ca, "c"),
    );
    clients.get_or_build(&a, &cert_a, pair).unwrap();
    clients.get_or_build(&b, &cert_b, pair).unwrap();
    // `a` used again: `b` is now the one used longest ago.
    clients
        .get_or_build(&a, &cert_a, |_| {
            Err("a's clients should be at hand".to_owned())
        })
        .unwrap();
    clients.get_or_build(&c, &cert_c, pair).unwrap();
    assert_eq!(clients.len(), 2);
    assert!(clients.holds(&a) && clients.holds(&c) && !clients.holds(&b));
    // A certificate that cannot be used is refused without its key, and keeps nothing.
    let mut broken = certificate(&ca, "broken");
    broken.key =
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n".to_owned();
    let Err(error) = clients.get_or_build(&b, &broken, pair) else {
        panic!("a key that is not one should be refused");
    };
    assert!(!error.contains("bm90IGEga2V5"), "{error}");
    assert!(!clients.holds(&b));
}
