//! The consent handshake's request: `OPTIONS <sink>` with the `WebHook-Request-*` headers and
//! the subscription's custom headers (an endpoint that wants an API key on every request wants
//! it on this one too) and client certificate, through the same SSRF-guarded client, timeouts, per-host bound and
//! egress proxy as every delivery.

use std::time::Instant;

use herald_core::SubscriptionId;
use herald_core::subscription::consent::{
    ALLOWED_ORIGIN, ALLOWED_RATE, HandshakeOutcome, HandshakeRequest, REQUEST_CALLBACK,
    REQUEST_ORIGIN, REQUEST_RATE,
};
use herald_core::subscription::{ClientCertificate, CustomHeader};

use super::DeliveryClient;

/// Longest header value kept from an answer; longer ones are cut.
const MAX_HEADER_VALUE: usize = 256;

impl DeliveryClient {
    /// Sends the validation request to `url` with `custom_headers` (presenting the client
    /// certificate, if any, when the endpoint asks for one) and returns the endpoint's
    /// status and `WebHook-Allowed-*` headers, or why it did not answer. Never follows a
    /// redirect (a 3xx is an answer without consent); reads no body.
    pub(crate) async fn handshake(
        &self,
        url: &url::Url,
        request: &HandshakeRequest,
        custom_headers: &[CustomHeader],
        client_certificate: Option<(&SubscriptionId, &ClientCertificate)>,
    ) -> HandshakeOutcome {
        let started = Instant::now();
        if let Some(range) = url.host().and_then(|host| self.policy.denied_host(&host)) {
            return HandshakeOutcome::Failed {
                error: format!("{range} addresses are not allowed as delivery targets"),
            };
        }
        let acquired = tokio::time::timeout(self.request_timeout, self.hosts.acquire(url)).await;
        let Ok(_permit) = acquired else {
            return HandshakeOutcome::Failed {
                error: "waited the whole request timeout for a place among the requests in \
                        flight to the endpoint's host"
                    .to_owned(),
            };
        };
        if let Some((_, error)) = self.refuse_target_through_proxy(url, started).await {
            return HandshakeOutcome::Failed { error };
        }
        let clients = match self.clients_for(client_certificate) {
            Ok(clients) => clients,
            Err(error) => return HandshakeOutcome::Failed { error },
        };
        let mut builder = clients
            .fresh
            .request(reqwest::Method::OPTIONS, url.clone())
            .timeout(self.request_timeout.saturating_sub(started.elapsed()));
        // Validated when stored: none is a `webhook-*` name, so none collides with those below.
        for header in custom_headers {
            builder = builder.header(header.name.as_str(), header.value.as_str());
        }
        builder = builder.header(REQUEST_ORIGIN, request.origin.as_str());
        if let Some(callback) = &request.callback {
            builder = builder.header(REQUEST_CALLBACK, callback.as_str());
        }
        if let Some(rate) = request.request_rate {
            builder = builder.header(REQUEST_RATE, rate.to_string());
        }
        match builder.send().await {
            Ok(response) => {
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|value| value.to_str().ok())
                        .map(|value| value.chars().take(MAX_HEADER_VALUE).collect::<String>())
                };
                HandshakeOutcome::Answered {
                    status: response.status().as_u16(),
                    allowed_origin: header(ALLOWED_ORIGIN),
                    allowed_rate: header(ALLOWED_RATE),
                }
            }
            Err(err) => HandshakeOutcome::Failed {
                error: self.describe_request_failure(err, url),
            },
        }
    }
}
