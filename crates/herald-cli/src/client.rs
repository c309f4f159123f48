//! The connection to the control plane: a gRPC channel with the bearer token attached to every
//! call, and the one-line description of what went wrong when a call fails.

use anyhow::Context as _;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use herald_proto::v1::delivery_service_client::DeliveryServiceClient;
use herald_proto::v1::event_service_client::EventServiceClient;
use herald_proto::v1::event_type_service_client::EventTypeServiceClient;
use herald_proto::v1::subscription_service_client::SubscriptionServiceClient;

/// A Subscriptions API client that sends the bearer token, if any.
pub(crate) type Client = SubscriptionServiceClient<InterceptedService<Channel, BearerToken>>;

/// An Events API client that sends the bearer token, if any.
pub(crate) type EventClient = EventServiceClient<InterceptedService<Channel, BearerToken>>;
/// An EventTypes API client that sends the bearer token, if any.
pub(crate) type TypeClient = EventTypeServiceClient<InterceptedService<Channel, BearerToken>>;
/// A Deliveries API client that sends the bearer token, if any.
pub(crate) type DeliveryClient = DeliveryServiceClient<InterceptedService<Channel, BearerToken>>;

/// Adds `authorization: Bearer <token>` to each call.
#[derive(Clone)]
pub(crate) struct BearerToken(Option<AsciiMetadataValue>);

impl tonic::service::Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The connection failed before any call was made.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to the control plane at {server}")]
pub(crate) struct ConnectError {
    pub(crate) server: String,
    #[source]
    pub(crate) source: tonic::transport::Error,
}

/// Connects to `server` (e.g. `http://127.0.0.1:50051`) for the Subscriptions API.
pub(crate) async fn connect(server: &str, token: Option<&str>) -> anyhow::Result<Client> {
    let (channel, token) = channel(server, token).await?;
    Ok(SubscriptionServiceClient::with_interceptor(channel, token))
}

/// Connects to `server` for the Deliveries API.
pub(crate) async fn connect_deliveries(
    server: &str,
    token: Option<&str>,
) -> anyhow::Result<DeliveryClient> {
    let (channel, token) = channel(server, token).await?;
    Ok(DeliveryServiceClient::with_interceptor(channel, token))
}

/// Connects the Events API client to `server`.
pub(crate) async fn connect_events(
    server: &str,
    token: Option<&str>,
) -> anyhow::Result<EventClient> {
    let (channel, token) = channel(server, token).await?;
    Ok(EventServiceClient::with_interceptor(channel, token))
}

/// Connects the EventTypes API client to `server`.
pub(crate) async fn connect_types(server: &str, token: Option<&str>) -> anyhow::Result<TypeClient> {
    let (channel, token) = channel(server, token).await?;
    Ok(EventTypeServiceClient::with_interceptor(channel, token))
}

async fn channel(server: &str, token: Option<&str>) -> anyhow::Result<(Channel, BearerToken)> {
    let token = token
        .map(|token| MetadataValue::try_from(format!("Bearer {token}")))
        .transpose()
        .context("the token must be printable ASCII")?;
    let endpoint = Channel::from_shared(server.to_owned())
        .with_context(|| format!("`{server}` is not a valid server URL"))?;
    let channel = endpoint.connect().await.map_err(|source| ConnectError {
        server: server.to_owned(),
        source,
    })?;
    Ok((channel, BearerToken(token)))
}

/// Returns the one-line message for a failed command: `<CODE>: <message>` for a gRPC status,
/// the cause chain otherwise, with a hint when the control plane is not running.
pub(crate) fn describe(error: &anyhow::Error) -> String {
    if let Some(status) = error.downcast_ref::<tonic::Status>() {
        return format!(
            "{}: {}",
            herald_proto::code_name(status.code()),
            status.message()
        );
    }
    if let Some(connect) = error.downcast_ref::<ConnectError>() {
        // hyper and tonic repeat some messages down the chain ("tcp connect error"): keep one.
        let mut causes: Vec<String> = Vec::new();
        let mut source_opt: Option<&dyn std::error::Error> = Some(&connect.source);
        while let Some(source) = source_opt {
            let message = source.to_string();
            if causes.last() != Some(&message) {
                causes.push(message);
            }
            source_opt = source.source();
        }
        return format!(
            "{connect}: {} (is Herald running? start a dev instance with `make run`)",
            causes.join(": ")
        );
    }
    format!("{error:#}")
}
