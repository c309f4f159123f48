//! Bearer-token authentication settings, shared by the ingest (HTTP) and control (gRPC) APIs.
//!
//! Pure: the settings, their validation, and the check of an `Authorization` value, with tokens
//! compared in constant time and never printed. Each API applies it at its own edge.

use serde::Deserialize;

#[cfg(test)]
mod tests;

/// Shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// Who may call an API: bearer tokens, or nobody checked (dev mode only).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BearerAuth {
    /// Accept calls without credentials. Only dev mode sets this.
    #[serde(default)]
    pub disabled: bool,
    /// Accepted `Authorization: Bearer <token>` tokens, each at least 16 characters.
    #[serde(default)]
    pub api_tokens: Vec<String>,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth")
            .field("disabled", &self.disabled)
            .field(
                "api_tokens",
                &format_args!("<{} redacted>", self.api_tokens.len()),
            )
            .finish()
    }
}

impl BearerAuth {
    /// Returns every problem with the settings of `section` (`ingest`, `control`).
    pub fn problems(&self, section: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.disabled && self.api_tokens.is_empty() {
            let variable = format!("HERALD_{}__AUTH__API_TOKENS", section.to_ascii_uppercase());
            problems.push(format!(
                "{section}.auth.api_tokens is empty: set {variable} or run `herald dev`"
            ));
        }
        if self
            .api_tokens
            .iter()
            .any(|token| token.len() < MIN_TOKEN_LEN)
        {
            problems.push(format!(
                "{section}.auth.api_tokens must each be at least 16 characters"
            ));
        }
        problems
    }

    /// Returns true when a request with this `Authorization` value may proceed.
    pub fn accepts(&self, authorization: Option<&str>) -> bool {
        self.disabled || self.bootstrap_index(authorization).is_some()
    }

    /// Returns the index in `api_tokens` of the token this `Authorization` value presents, if
    /// any: it names the token (`config.<index>`) in audit records without showing it. Every
    /// configured token is compared, in constant time.
    pub fn bootstrap_index(&self, authorization: Option<&str>) -> Option<usize> {
        let token = bearer_token(authorization)?;
        self.api_tokens
            .iter()
            .enumerate()
            .fold(None, |found, (index, known)| {
                let matches = constant_time_eq(known.as_bytes(), token.as_bytes());
                found.or(matches.then_some(index))
            })
    }
}

/// Returns the token of an `Authorization: Bearer <token>` value (`bearer` accepted too).
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    authorization.and_then(|value| {
        value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
    })
}

use crate::credential::constant_time_eq;
