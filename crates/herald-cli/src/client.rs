//! The connection to the control plane: a gRPC channel with the bearer token attached to every
//! call, and the one-line description of what went wrong when a call fails.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use herald_proto::v1::audit_service_client::AuditServiceClient;
use herald_proto::v1::credential_service_client::CredentialServiceClient;
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

/// A Credentials API client (producer keys, operator tokens) that sends the bearer token.
pub(crate) type CredentialClient =
    CredentialServiceClient<InterceptedService<Channel, BearerToken>>;
/// An Audit API client that sends the bearer token.
pub(crate) type AuditClient = AuditServiceClient<InterceptedService<Channel, BearerToken>>;

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

/// Where the control plane is and how to reach it: its URL, the bearer token, and for an
/// `https://` URL the CA to trust and the client certificate to present.
#[derive(Debug, Clone, Default)]
pub(crate) struct Target {
    pub(crate) server: String,
    pub(crate) token: Option<String>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) cert_file: Option<PathBuf>,
    pub(crate) key_file: Option<PathBuf>,
}

/// Connects to the control plane (e.g. `http://127.0.0.1:50051`) for the Subscriptions API.
pub(crate) async fn connect(target: &Target) -> anyhow::Result<Client> {
    let (channel, token) = channel(target).await?;
    Ok(SubscriptionServiceClient::with_interceptor(channel, token))
}

/// Connects to the control plane for the Deliveries API.
pub(crate) async fn connect_deliveries(target: &Target) -> anyhow::Result<DeliveryClient> {
    let (channel, token) = channel(target).await?;
    Ok(DeliveryServiceClient::with_interceptor(channel, token))
}

/// Connects the Events API client to the control plane.
pub(crate) async fn connect_events(target: &Target) -> anyhow::Result<EventClient> {
    let (channel, token) = channel(target).await?;
    Ok(EventServiceClient::with_interceptor(channel, token))
}

/// Connects the EventTypes API client to the control plane.
pub(crate) async fn connect_types(target: &Target) -> anyhow::Result<TypeClient> {
    let (channel, token) = channel(target).await?;
    Ok(EventTypeServiceClient::with_interceptor(channel, token))
}

/// Connects the Credentials API client to the control plane.
pub(crate) async fn connect_credentials(target: &Target) -> anyhow::Result<CredentialClient> {
    let (channel, token) = channel(target).await?;
    Ok(CredentialServiceClient::with_interceptor(channel, token))
}

/// Connects the Audit API client to the control plane.
pub(crate) async fn connect_audit(target: &Target) -> anyhow::Result<AuditClient> {
    let (channel, token) = channel(target).await?;
    Ok(AuditServiceClient::with_interceptor(channel, token))
}

async fn channel(target: &Target) -> anyhow::Result<(Channel, BearerToken)> {
    let server = &target.server;
    let token = target
        .token
        .as_ref()
        .map(|token| MetadataValue::try_from(format!("Bearer {token}")))
        .transpose()
        .context("the token must be printable ASCII")?;
    let mut endpoint = Channel::from_shared(server.clone())
        .with_context(|| format!("`{server}` is not a valid server URL"))?;
    if let Some(tls) = tls_config(target)? {
        endpoint = endpoint
            .tls_config(tls)
            .with_context(|| format!("cannot use TLS with `{server}`"))?;
    }
    let channel = endpoint.connect().await.map_err(|source| ConnectError {
        server: server.clone(),
        source,
    })?;
    Ok((channel, BearerToken(token)))
}

/// Returns the TLS settings for an `https://` server: the CA from `--ca-file` or else the
/// system's roots, and the client certificate when given; `None` for plain `http://`.
fn tls_config(target: &Target) -> anyhow::Result<Option<ClientTlsConfig>> {
    let https = target
        .server
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
    if !https {
        if target.ca_file.is_some() || target.cert_file.is_some() {
            anyhow::bail!(
                "--ca-file, --cert and --key need an https:// server, not `{}`",
                target.server
            );
        }
        return Ok(None);
    }
    let read = |path: &Path, what: &str| {
        std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
    };
    let mut tls = ClientTlsConfig::new();
    tls = match &target.ca_file {
        Some(path) => tls.ca_certificate(Certificate::from_pem(read(path, "CA file")?)),
        None => tls.with_native_roots(),
    };
    if let (Some(cert), Some(key)) = (&target.cert_file, &target.key_file) {
        tls = tls.identity(Identity::from_pem(
            read(cert, "client certificate")?,
            read(key, "client key")?,
        ));
    }
    Ok(Some(tls))
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
