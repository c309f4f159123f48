//! Herald's domain, without I/O: what a CloudEvent must look like, how events map to NATS
//! subjects, what a subscription is, how filters match, and how long to wait between attempts.
//!
//! This crate must not depend on an async runtime, on HTTP, gRPC or NATS crates, or read clocks,
//! files or the network: callers pass time and bytes in. Everything here is unit-testable with
//! plain values.

// Decoders, filters and subjects read untrusted input: no indexing that could panic.
#![warn(clippy::indexing_slicing)]

pub mod auth;
pub mod catalog;
pub mod credential;
pub mod delivery;
pub mod digest;
pub mod error;
pub mod event;
pub mod filter;
pub mod interest;
pub mod network;
pub mod record;
pub mod retry;
pub mod subject;
pub mod subscription;
pub mod test_event;
pub mod trace;

pub use error::ErrorCode;
pub use event::{Event, EventError, MessageId};
pub use filter::Filter;
pub use subscription::{
    DeliverySettings, Sink, SinkDigest, State, Subscription, SubscriptionId, WorkId,
};
