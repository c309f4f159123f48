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

/// How ingest checks events against the event-type catalog; a section of its own (`[catalog]`)
/// passed beside [`Config`], whose literal users it leaves alone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// What becomes of an event whose type the catalog does not list: `accept` it unchecked,
    /// or `refuse` it (strict mode). Events of registered types are always checked.
    pub unregistered: Unregistered,
}

/// What ingest does with an event of an unregistered type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unregistered {
    /// Accept it without a schema check.
    Accept,
    /// Refuse it with `400`, type `urn:herald:problem:unregistered-type`.
    Refuse,
}

/// Producer authentication: bearer tokens.
pub use herald_core::auth::BearerAuth as AuthConfig;

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
        problems.extend(self.auth.problems("ingest"));
        problems
    }
}
