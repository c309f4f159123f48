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
    disabled: bool,
    api_tokens: Arc<[String]>,
    metrics: Metrics,
}

impl Authenticator {
    pub(crate) fn new(config: &AuthConfig, metrics: Metrics) -> Authenticator {
        Authenticator {
            disabled: config.disabled,
            api_tokens: config.api_tokens.clone().into(),
            metrics,
        }
    }

    fn accepts(&self, authorization: Option<&str>) -> bool {
        if self.disabled {
            return true;
        }
        let presented = authorization.and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        });
        presented.is_some_and(|token| {
            self.api_tokens
                .iter()
                .any(|known| constant_time_eq(known.as_bytes(), token.as_bytes()))
        })
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
