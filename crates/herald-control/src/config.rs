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
pub use herald_core::auth::BearerAuth as AuthConfig;

impl Config {
    /// Returns every problem with the configuration, empty when it is usable.
    pub fn problems(&self) -> Vec<String> {
        self.auth.problems("control")
    }
}
