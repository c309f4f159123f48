//! Dispatcher role: keeps one durable JetStream consumer per subscription and delivers each
//! matching event to the subscription's sink as a signed Standard Webhooks request.
//!
//! The service watches the subscriptions bucket and reconciles workers with it: a new
//! subscription gets a consumer and a worker, an updated one has its consumer's filter subjects
//! and its worker's route swapped in place, a deleted one has both removed. Events are
//! acknowledged only after a 2xx; anything else is nak'd with the retry schedule's delay. Stored
//! messages that are not valid CloudEvents are moved to the rejected-events stream. Every
//! replica also serves test sends (`test_send.rs`): one signed event to one subscription, on
//! request, beside delivery and without touching it.
//! Depends on `herald-nats` and `herald-signing`, never on other roles. See README.md for the
//! delivery algorithm.

mod admission;
mod announce;
mod attempt;
mod client;
mod config;
mod consent;
mod context;
mod error;
mod health;
mod metrics;
pub mod ownership;
mod parking;
mod readiness;
mod reject;
mod responder;
mod scheduler;
mod service;
mod supervisor;
mod test_send;
mod worker;

pub use config::{Config, EgressProxy};
pub use error::{Error, Result};
pub use metrics::Metrics;
pub use readiness::Readiness;
pub use service::{Service, build};
pub use supervisor::Unserved;
