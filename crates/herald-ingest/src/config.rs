//! Ingest configuration.

use std::time::Duration;

use serde::Deserialize;

/// Settings of the ingest role; defaults live in the server's `herald.default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Most events accepted in one batch.
    pub max_batch_events: usize,
    /// Deadline for answering a request, publish acknowledgement included.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Who may publish.
    pub auth: AuthConfig,
}

/// Producer authentication: bearer tokens.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Accept requests without credentials. Only dev mode sets this.
    #[serde(default)]
    pub disabled: bool,
    /// Accepted `Authorization: Bearer` tokens.
    #[serde(default)]
    pub api_tokens: Vec<String>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("disabled", &self.disabled)
            .field(
                "api_tokens",
                &format_args!("<{} redacted>", self.api_tokens.len()),
            )
            .finish()
    }
}

impl Config {
    /// Returns every problem with the configuration, empty when it is usable.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.max_body_bytes == 0 {
            problems.push("ingest.max_body_bytes must be positive".to_owned());
        }
        if self.max_batch_events == 0 {
            problems.push("ingest.max_batch_events must be positive".to_owned());
        }
        if !self.auth.disabled && self.auth.api_tokens.is_empty() {
            problems.push(
                "ingest.auth.api_tokens is empty: set HERALD_INGEST__AUTH__API_TOKENS or run `herald dev`"
                    .to_owned(),
            );
        }
        if self.auth.api_tokens.iter().any(|token| token.len() < 16) {
            problems.push("ingest.auth.api_tokens must each be at least 16 characters".to_owned());
        }
        problems
    }
}
