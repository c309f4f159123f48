//! What operators and tools see around the API: health, reflection and shutdown.

use futures::StreamExt as _;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::support::{Control, Options};

async fn health_of(control: &Control, service: &str) -> Result<ServingStatus, tonic::Status> {
    let answer = HealthClient::new(control.channel.clone())
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?
        .into_inner();
    Ok(answer.status())
}

#[tokio::test]
async fn health_reports_the_subscription_service_serving_without_credentials() {
    let control = Control::start(Options {
        auth_disabled: false,
        ..Options::default()
    })
    .await;
    assert_eq!(
        health_of(&control, "herald.v1.SubscriptionService")
            .await
            .unwrap(),
        ServingStatus::Serving
    );
    assert_eq!(
        health_of(&control, "herald.v1.DeliveryService")
            .await
            .unwrap(),
        ServingStatus::Serving
    );
    assert_eq!(
        health_of(&control, "").await.unwrap(),
        ServingStatus::Serving
    );
}

#[tokio::test]
async fn reflection_lists_the_subscription_service_without_credentials() {
    let control = Control::start(Options {
        auth_disabled: false,
        ..Options::default()
    })
    .await;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(control.channel.clone())
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("expected a list of services, got {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"herald.v1.SubscriptionService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"herald.v1.DeliveryService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
}

#[tokio::test]
async fn reflection_describes_the_subscription_messages() {
    let control = Control::start(Options::default()).await;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "herald.v1.Subscription".to_owned(),
        )),
    };
    let mut answers = ServerReflectionClient::new(control.channel.clone())
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = answer.message_response else {
        panic!("expected file descriptors, got {answer:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

#[tokio::test]
async fn run_returns_once_shutdown_is_cancelled() {
    let mut control = Control::start(Options::default()).await;
    control.stop().await.unwrap();
    let connect = tonic::transport::Channel::from_shared(format!("http://{}", control.address))
        .unwrap()
        .connect()
        .await;
    assert!(connect.is_err(), "the listener should be closed");
}
