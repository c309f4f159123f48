//! Tenants, operator tokens and the audit stream (issue 12): a tenant's operator sees and changes
//! only its tenant's subscriptions, dead letters and attempts (another tenant's are `NOT_FOUND`),
//! read-only tokens get `PERMISSION_DENIED` on mutations, tenant tokens on admin methods, a
//! revoked token is `UNAUTHENTICATED` within seconds without a restart, and every mutation is in
//! the audit stream, newest first, with credential ids and revisions and never a secret.

use std::time::Duration;

use tonic::transport::Channel;
use tonic::{Code, Request};

use herald_proto::v1 as pb;
use herald_proto::v1::audit_service_client::AuditServiceClient;
use herald_proto::v1::credential_service_client::CredentialServiceClient;
use herald_proto::v1::delivery_service_client::DeliveryServiceClient;
use herald_proto::v1::subscription_service_client::SubscriptionServiceClient;

use crate::support::{Control, Options, PUBLIC_SINK, TOKEN};

/// A request carrying `token` as its bearer token.
fn authorized<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

async fn start() -> Control {
    Control::start(Options {
        auth_disabled: false,
        ..Options::default()
    })
    .await
}

fn credentials(control: &Control) -> CredentialServiceClient<Channel> {
    CredentialServiceClient::new(control.channel.clone())
}

/// Creates an operator token with the bootstrap token; returns its id and secret.
async fn operator_token(control: &Control, tenant: &str, read_only: bool) -> (String, String) {
    let created = credentials(control)
        .create_operator_token(authorized(
            TOKEN,
            pb::CreateOperatorTokenRequest {
                tenant: tenant.to_owned(),
                read_only,
                description: format!("{tenant} operator"),
            },
        ))
        .await
        .expect("an admin creates operator tokens")
        .into_inner();
    let token = created.token.expect("the token's metadata");
    assert!(created.secret.starts_with("hot_"), "{}", created.secret);
    assert_eq!(token.tenant, tenant);
    // Control learns of the new token through its credentials watch, moments after the create
    // call answered: wait until it accepts the token, so the test's first call is not refused.
    herald_test_support::eventually(
        "control to accept the new operator token",
        Duration::from_secs(10),
        || {
            let mut client = control.client();
            let secret = created.secret.clone();
            async move {
                let result = client
                    .list_subscriptions(authorized(
                        &secret,
                        pb::ListSubscriptionsRequest::default(),
                    ))
                    .await;
                (code_of(result) == Code::Ok).then_some(())
            }
        },
    )
    .await;
    (token.id, created.secret)
}

/// `token` with its last character changed: the same id, a wrong secret. (Replacing it with a
/// fixed character would give the genuine token back whenever it already ended in that one.)
fn forge(token: &str) -> String {
    let mut forged = token.to_owned();
    let last = forged.pop();
    forged.push(if last == Some('A') { 'B' } else { 'A' });
    forged
}

async fn create_in(control: &Control, token: &str, tenant: &str) -> pb::Subscription {
    control
        .client()
        .create_subscription(authorized(
            token,
            pb::CreateSubscriptionRequest {
                sink: PUBLIC_SINK.to_owned(),
                tenant: tenant.to_owned(),
                ..Default::default()
            },
        ))
        .await
        .expect("creating the subscription should succeed")
        .into_inner()
}

fn code_of<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn a_tenants_operator_sees_and_changes_only_its_own_subscriptions() {
    let control = start().await;
    let (_, acme) = operator_token(&control, "acme", false).await;
    let (_, acme_read_only) = operator_token(&control, "acme", true).await;
    let globex_subscription = create_in(&control, TOKEN, "globex").await;
    assert_eq!(globex_subscription.tenant, "globex");
    let default_subscription = create_in(&control, TOKEN, "").await;
    assert_eq!(default_subscription.tenant, "default");
    let acme_subscription = create_in(&control, &acme, "").await;
    assert_eq!(
        acme_subscription.tenant, "acme",
        "a tenant creates in its own tenant"
    );

    let mut subscriptions = control.client();
    let listed = subscriptions
        .list_subscriptions(authorized(&acme, pb::ListSubscriptionsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<&str> = listed.subscriptions.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, [acme_subscription.id.as_str()]);
    let all = subscriptions
        .list_subscriptions(authorized(TOKEN, pb::ListSubscriptionsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.subscriptions.len(), 3, "an admin sees every tenant");
    let only_globex = subscriptions
        .list_subscriptions(authorized(
            TOKEN,
            pb::ListSubscriptionsRequest {
                tenant: "globex".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(only_globex.subscriptions.len(), 1);
    let asking_for_another = subscriptions
        .list_subscriptions(authorized(
            &acme,
            pb::ListSubscriptionsRequest {
                tenant: "globex".to_owned(),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(code_of(asking_for_another), Code::PermissionDenied);

    // Another tenant's subscription is not found, whatever the call, and stays unchanged.
    let other = globex_subscription.id.clone();
    let mut deliveries = DeliveryServiceClient::new(control.channel.clone());
    let calls = [
        (
            "get",
            code_of(
                subscriptions
                    .get_subscription(authorized(
                        &acme,
                        pb::GetSubscriptionRequest { id: other.clone() },
                    ))
                    .await,
            ),
        ),
        (
            "update",
            code_of(
                subscriptions
                    .update_subscription(authorized(
                        &acme,
                        pb::UpdateSubscriptionRequest {
                            id: other.clone(),
                            description: Some("taken over".to_owned()),
                            ..Default::default()
                        },
                    ))
                    .await,
            ),
        ),
        (
            "pause",
            code_of(
                subscriptions
                    .pause_subscription(authorized(
                        &acme,
                        pb::PauseSubscriptionRequest { id: other.clone() },
                    ))
                    .await,
            ),
        ),
        (
            "rotate",
            code_of(
                subscriptions
                    .rotate_secret(authorized(
                        &acme,
                        pb::RotateSecretRequest {
                            id: other.clone(),
                            ..Default::default()
                        },
                    ))
                    .await,
            ),
        ),
        (
            "delete",
            code_of(
                subscriptions
                    .delete_subscription(authorized(
                        &acme,
                        pb::DeleteSubscriptionRequest {
                            id: other.clone(),
                            expected_revision: 0,
                        },
                    ))
                    .await,
            ),
        ),
        (
            "dead letters",
            code_of(
                deliveries
                    .list_dead_letters(authorized(
                        &acme,
                        pb::ListDeadLettersRequest {
                            subscription_id: other.clone(),
                            ..Default::default()
                        },
                    ))
                    .await,
            ),
        ),
        (
            "purge",
            code_of(
                deliveries
                    .purge_dead_letters(authorized(
                        &acme,
                        pb::PurgeDeadLettersRequest {
                            subscription_id: other.clone(),
                            all: true,
                            ..Default::default()
                        },
                    ))
                    .await,
            ),
        ),
        (
            "attempts",
            code_of(
                deliveries
                    .list_attempts(authorized(
                        &acme,
                        pb::ListAttemptsRequest {
                            subscription_id: other.clone(),
                            ..Default::default()
                        },
                    ))
                    .await,
            ),
        ),
    ];
    for (call, code) in calls {
        assert_eq!(
            code,
            Code::NotFound,
            "{call} of another tenant's subscription"
        );
    }
    let unchanged = subscriptions
        .get_subscription(authorized(
            TOKEN,
            pb::GetSubscriptionRequest { id: other.clone() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unchanged.revision, globex_subscription.revision);
    assert_eq!(unchanged.description, "");
    let every_attempt = deliveries
        .list_attempts(authorized(&acme, pb::ListAttemptsRequest::default()))
        .await;
    assert_eq!(code_of(every_attempt), Code::InvalidArgument);
    let status = deliveries
        .get_event_delivery_status(authorized(
            &acme,
            pb::GetEventDeliveryStatusRequest {
                event_id: "e1".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let seen: Vec<&str> = status
        .statuses
        .iter()
        .map(|s| s.subscription_id.as_str())
        .collect();
    assert_eq!(seen, [acme_subscription.id.as_str()]);

    // Its own subscriptions it may change; naming another tenant is refused.
    let own = subscriptions
        .pause_subscription(authorized(
            &acme,
            pb::PauseSubscriptionRequest {
                id: acme_subscription.id.clone(),
            },
        ))
        .await;
    assert_eq!(code_of(own), Code::Ok);
    let into_another = subscriptions
        .create_subscription(authorized(
            &acme,
            pb::CreateSubscriptionRequest {
                sink: PUBLIC_SINK.to_owned(),
                tenant: "globex".to_owned(),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(code_of(into_another), Code::PermissionDenied);

    // A read-only token reads its tenant and changes nothing.
    let read = subscriptions
        .get_subscription(authorized(
            &acme_read_only,
            pb::GetSubscriptionRequest {
                id: acme_subscription.id.clone(),
            },
        ))
        .await;
    assert_eq!(code_of(read), Code::Ok);
    let write = subscriptions
        .resume_subscription(authorized(
            &acme_read_only,
            pb::ResumeSubscriptionRequest {
                id: acme_subscription.id.clone(),
            },
        ))
        .await;
    assert_eq!(code_of(write), Code::PermissionDenied);
    let create = subscriptions
        .create_subscription(authorized(
            &acme_read_only,
            pb::CreateSubscriptionRequest {
                sink: PUBLIC_SINK.to_owned(),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(code_of(create), Code::PermissionDenied);

    // Admin methods are not a tenant's.
    let keys = credentials(&control)
        .list_producer_keys(authorized(&acme, pb::ListProducerKeysRequest::default()))
        .await;
    assert_eq!(code_of(keys), Code::PermissionDenied);
    let audit = AuditServiceClient::new(control.channel.clone())
        .list_audit_records(authorized(&acme, pb::ListAuditRecordsRequest::default()))
        .await;
    assert_eq!(code_of(audit), Code::PermissionDenied);
}

#[tokio::test]
async fn a_tenants_read_write_operator_verifies_only_its_own_subscriptions_endpoints() {
    let control = start().await;
    let (_, acme) = operator_token(&control, "acme", false).await;
    let (_, acme_read_only) = operator_token(&control, "acme", true).await;
    let own = create_in(&control, &acme, "").await;
    let other = create_in(&control, TOKEN, "globex").await;
    let verify = |token: String, id: String| {
        let mut subscriptions = control.client();
        async move {
            subscriptions
                .verify_endpoint(authorized(&token, pb::VerifyEndpointRequest { id }))
                .await
        }
    };
    // No dispatcher runs here: an optional consent asked of nobody is answered with the
    // subscription as stored, its endpoint still to be asked.
    let verified = verify(acme.clone(), own.id.clone()).await;
    assert_eq!(code_of(verified), Code::Ok, "its own subscription");
    let another = verify(acme.clone(), other.id.clone()).await;
    assert_eq!(code_of(another), Code::NotFound, "another tenant's");
    let read_only = verify(acme_read_only, own.id.clone()).await;
    assert_eq!(code_of(read_only), Code::PermissionDenied, "read-only");
    let unchanged = control
        .client()
        .get_subscription(authorized(
            TOKEN,
            pb::GetSubscriptionRequest {
                id: other.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unchanged.revision, other.revision);
    let admin = verify(TOKEN.to_owned(), other.id.clone()).await;
    assert_eq!(code_of(admin), Code::Ok, "an admin verifies any tenant's");
    // Verifying writes the subscription: audited with the revisions, once per call that did.
    let page = AuditServiceClient::new(control.channel.clone())
        .list_audit_records(authorized(TOKEN, pb::ListAuditRecordsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let verified: Vec<(&str, &str)> = page
        .records
        .iter()
        .filter(|record| record.rpc == "VerifyEndpoint")
        .map(|record| (record.resource.as_str(), record.tenant.as_str()))
        .collect();
    assert_eq!(
        verified,
        [(other.id.as_str(), "globex"), (own.id.as_str(), "acme")],
        "newest first"
    );
    assert!(
        page.records
            .iter()
            .all(|record| record.rpc != "VerifyEndpoint"
                || record.new_revision > record.old_revision)
    );
}

#[tokio::test]
#[allow(clippy::print_stderr, reason = "the revocation delay is reported")]
async fn missing_wrong_and_revoked_operator_tokens_are_unauthenticated_within_seconds() {
    let control = start().await;
    let (id, token) = operator_token(&control, "acme", false).await;
    let key = credentials(&control)
        .create_producer_key(authorized(
            TOKEN,
            pb::CreateProducerKeyRequest {
                tenant: "acme".to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let forged = forge(&token);
    let mut client: SubscriptionServiceClient<Channel> = control.client();
    for presented in [
        "",
        "wrong-token-0123456789",
        forged.as_str(),
        key.token.as_str(),
    ] {
        let mut request = Request::new(pb::ListSubscriptionsRequest::default());
        if !presented.is_empty() {
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {presented}").parse().unwrap(),
            );
        }
        let result = client.list_subscriptions(request).await;
        assert_eq!(code_of(result), Code::Unauthenticated, "{presented}");
    }
    let accepted = client
        .list_subscriptions(authorized(&token, pb::ListSubscriptionsRequest::default()))
        .await;
    assert_eq!(code_of(accepted), Code::Ok);

    let revoked = credentials(&control)
        .revoke_operator_token(authorized(
            TOKEN,
            pb::RevokeCredentialRequest { id: id.clone() },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoke_time.is_some());
    let started = std::time::Instant::now();
    herald_test_support::eventually(
        "the revoked token to be refused",
        Duration::from_secs(10),
        || {
            let mut client = control.client();
            let token = token.clone();
            async move {
                let result = client
                    .list_subscriptions(authorized(&token, pb::ListSubscriptionsRequest::default()))
                    .await;
                (code_of(result) == Code::Unauthenticated).then_some(())
            }
        },
    )
    .await;
    eprintln!("revocation seen by control after {:?}", started.elapsed());
    let listed = credentials(&control)
        .list_operator_tokens(authorized(TOKEN, pb::ListOperatorTokensRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let revoked_listed = listed.tokens.iter().find(|listed| listed.id == id).unwrap();
    assert!(
        revoked_listed.revoke_time.is_some(),
        "a revoked token stays listed"
    );
}

#[tokio::test]
async fn the_audit_stream_records_each_mutation_newest_first_without_secrets() {
    let control = start().await;
    let (operator_id, operator) = operator_token(&control, "acme", false).await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let created = control
        .client()
        .create_subscription(authorized(
            &operator,
            pb::CreateSubscriptionRequest {
                sink: PUBLIC_SINK.to_owned(),
                secret: secret.to_owned(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut client = control.client();
    let rotated = client
        .rotate_secret(authorized(
            &operator,
            pb::RotateSecretRequest {
                id: created.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let paused = client
        .pause_subscription(authorized(
            &operator,
            pb::PauseSubscriptionRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    client
        .delete_subscription(authorized(
            TOKEN,
            pb::DeleteSubscriptionRequest {
                id: created.id.clone(),
                expected_revision: 0,
            },
        ))
        .await
        .unwrap();
    let key = credentials(&control)
        .create_producer_key(authorized(
            TOKEN,
            pb::CreateProducerKeyRequest {
                tenant: "acme".to_owned(),
                type_prefixes: vec!["com.acme.".to_owned()],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let key_id = key.key.as_ref().unwrap().id.clone();
    // A refused call changes nothing and is not recorded.
    let refused = client
        .get_subscription(authorized(
            &operator,
            pb::GetSubscriptionRequest {
                id: created.id.clone(),
            },
        ))
        .await;
    assert_eq!(code_of(refused), Code::NotFound);

    let mut audit = AuditServiceClient::new(control.channel.clone());
    let page = audit
        .list_audit_records(authorized(TOKEN, pb::ListAuditRecordsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let summary: Vec<(&str, &str, &str, u64, u64)> = page
        .records
        .iter()
        .map(|record| {
            (
                record.rpc.as_str(),
                record.credential.as_str(),
                record.resource.as_str(),
                record.old_revision,
                record.new_revision,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "CreateProducerKey",
                "config.0",
                key_id.as_str(),
                0,
                key.key.as_ref().unwrap().revision
            ),
            (
                "DeleteSubscription",
                "config.0",
                created.id.as_str(),
                paused.revision,
                0
            ),
            (
                "PauseSubscription",
                operator_id.as_str(),
                created.id.as_str(),
                rotated.revision,
                paused.revision
            ),
            (
                "RotateSecret",
                operator_id.as_str(),
                created.id.as_str(),
                created.revision,
                rotated.revision
            ),
            (
                "CreateSubscription",
                operator_id.as_str(),
                created.id.as_str(),
                0,
                created.revision
            ),
            (
                "CreateOperatorToken",
                "config.0",
                operator_id.as_str(),
                0,
                page.records[5].new_revision
            ),
        ]
    );
    assert!(page.records.iter().all(|record| record.time.is_some()));
    assert_eq!(page.records[4].tenant, "acme");
    assert_eq!(page.records[4].credential_tenant, "acme");
    assert_eq!(page.records[0].credential_tenant, "");
    assert!(page.next_page_token.is_empty());

    // Paged: two at a time, newest first, then oldest first.
    let mut paged = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = audit
            .list_audit_records(authorized(
                TOKEN,
                pb::ListAuditRecordsRequest {
                    page_size: 2,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(page.records.len() <= 2);
        paged.extend(page.records.into_iter().map(|record| record.sequence));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(paged, [6, 5, 4, 3, 2, 1]);
    let oldest = audit
        .list_audit_records(authorized(
            TOKEN,
            pb::ListAuditRecordsRequest {
                page_size: 4,
                oldest_first: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let sequences: Vec<u64> = oldest
        .records
        .iter()
        .map(|record| record.sequence)
        .collect();
    assert_eq!(sequences, [1, 2, 3, 4]);
    assert!(!oldest.next_page_token.is_empty());

    // Nothing secret in the stream: not the subscription's secrets, not the tokens, not the
    // sink's query.
    let text = format!("{:?}", page.records);
    for forbidden in [
        secret,
        rotated.secret.as_str(),
        operator.as_str(),
        key.token.as_str(),
        TOKEN,
        "token=abc",
    ] {
        assert!(
            !text.contains(forbidden),
            "the audit stream shows {forbidden}: {text}"
        );
    }
}
