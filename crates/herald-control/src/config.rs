//! Control-plane configuration.

use serde::Deserialize;

/// Settings of the control role; defaults live in the server's `herald.default.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Who may call the Subscriptions API. Health and reflection stay open.
    pub auth: AuthConfig,
}

/// Operator authentication: bearer tokens in the `authorization` metadata.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Accept calls without credentials. Only dev mode sets this.
    #[serde(default)]
    pub disabled: bool,
    /// Accepted `authorization: Bearer <token>` tokens, each at least 16 characters.
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
        if !self.auth.disabled && self.auth.api_tokens.is_empty() {
            problems.push(
                "control.auth.api_tokens is empty: set HERALD_CONTROL__AUTH__API_TOKENS or run `herald dev`"
                    .to_owned(),
            );
        }
        if self.auth.api_tokens.iter().any(|token| token.len() < 16) {
            problems.push("control.auth.api_tokens must each be at least 16 characters".to_owned());
        }
        problems
    }
}
