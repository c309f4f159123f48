//! Bearer-token authentication of the Subscriptions and Deliveries APIs, as a tonic interceptor.
//!
//! Only those two services are wrapped: health checks and reflection stay open so probes
//! and `grpcurl describe` work without credentials. Tokens are compared in constant time.

use std::sync::Arc;

use crate::metrics::{Metrics, UNKNOWN_METHOD};
use crate::{AuthConfig, Error};

#[cfg(test)]
mod tests;

/// Checks `authorization: Bearer <token>` against the configured tokens.
#[derive(Clone)]
pub(crate) struct Authenticator {
    auth: Arc<AuthConfig>,
    metrics: Metrics,
}

impl Authenticator {
    pub(crate) fn new(config: &AuthConfig, metrics: Metrics) -> Authenticator {
        Authenticator {
            auth: Arc::new(config.clone()),
            metrics,
        }
    }

    fn accepts(&self, authorization: Option<&str>) -> bool {
        self.auth.accepts(authorization)
    }
}

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok());
        if self.accepts(authorization) {
            return Ok(request);
        }
        let error = Error::Unauthenticated;
        self.metrics.record(UNKNOWN_METHOD, error.code().as_str());
        Err(error.into())
    }
}
