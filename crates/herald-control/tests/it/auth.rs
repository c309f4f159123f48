//! Bearer-token authentication of the Subscriptions API.

use tonic::Request;

use herald_proto::v1 as pb;

use crate::support::{Control, Options, TOKEN};

fn list_request(authorization: Option<&str>) -> Request<pb::ListSubscriptionsRequest> {
    let mut request = Request::new(pb::ListSubscriptionsRequest::default());
    if let Some(authorization) = authorization {
        request
            .metadata_mut()
            .insert("authorization", authorization.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated_when_auth_is_enabled() {
    let control = Control::start(Options {
        auth_disabled: false,
        ..Options::default()
    })
    .await;
    let mut client = control.client();
    for authorization in [None, Some("Bearer wrong-token-0123456789"), Some(TOKEN)] {
        let status = client
            .list_subscriptions(list_request(authorization))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::Unauthenticated,
            "{authorization:?}"
        );
    }
    assert_eq!(control.requests_total("unknown", "unauthenticated"), 3);
}

#[tokio::test]
async fn calls_with_a_valid_token_succeed_when_auth_is_enabled() {
    let control = Control::start(Options {
        auth_disabled: false,
        ..Options::default()
    })
    .await;
    let authorization = format!("Bearer {TOKEN}");
    let answer = control
        .client()
        .list_subscriptions(list_request(Some(&authorization)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.subscriptions.len(), 0);
}

#[tokio::test]
async fn calls_without_a_token_succeed_when_auth_is_disabled() {
    let control = Control::start(Options::default()).await;
    control
        .client()
        .list_subscriptions(list_request(None))
        .await
        .unwrap();
}
